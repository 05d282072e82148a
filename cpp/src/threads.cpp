#include "gatedrnn/threads.h"

#include "gatedrnn/common.h"

#include <cstring>
#include <limits>
#include <string>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

#ifdef __linux__
#include <sched.h>
#include <unistd.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace gatedrnn {
namespace {

std::atomic<int> explicit_cap{0};  // 0: not set by the user
thread_local int scoped_cap = 0;   // 0: none (see ScopedThreadCap)

int cpus_available() {
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    const unsigned n = std::thread::hardware_concurrency();
    return n > 0 ? static_cast<int>(n) : 1;
}

int from_environment() {
    // OMP_NUM_THREADS may be a list ("4,2"): its first entry is the outer level.
    const char* value = std::getenv("OMP_NUM_THREADS");
    if (!value) return 0;
    char* end = nullptr;
    const long n = std::strtol(value, &end, 10);
    if (end == value || n < 1) return 0;
    return n > 4096 ? 4096 : static_cast<int>(n);
}

// Cold starts (see CallThreads).
constexpr int64_t kNever = std::numeric_limits<int64_t>::min() / 4;
// A team used within this long is still awake: libgomp's idle workers spin ~6-9 ms after a
// region on the machine above, and a vCPU idle for 10 ms still woke in tens of microseconds.
constexpr int64_t kTeamWarmNs = 10'000'000;
// Calls closer together than this belong to one burst.
constexpr int64_t kBurstGapNs = 10'000'000;
std::atomic<int64_t> team_end{kNever};       // when a team region last ended
std::atomic<int64_t> wake_cost{0};            // estimated cost of a cold start, 0: none seen
std::atomic<int64_t> team_count{0};
std::atomic<int64_t> burst_start{0};
std::atomic<int64_t> last_call_end{kNever};
std::atomic<bool> last_team_ran_shares{false};

std::atomic<bool> cold_start_adaptive_on{true};

}  // namespace

void cold_start_from_environment() {
    const char* v = std::getenv("GATEDRNN_COLD_START");
    if (!v || !*v) return;
    if (std::strcmp(v, "adaptive") == 0 || std::strcmp(v, "team") == 0) {
        set_cold_start_adaptive(std::strcmp(v, "adaptive") == 0);
        return;
    }
    throw ValueError(std::string("GATEDRNN_COLD_START: expected 'adaptive' or 'team', got '") + v + "'");
}
bool cold_start_adaptive() { return cold_start_adaptive_on.load(std::memory_order_relaxed); }
void set_cold_start_adaptive(bool on) { cold_start_adaptive_on.store(on, std::memory_order_relaxed); }

int64_t monotonic_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

bool team_is_cold(int64_t now_ns) {
    return now_ns - team_end.load(std::memory_order_relaxed) >= kTeamWarmNs;
}

void record_team_run(int64_t start_ns, bool cold, int64_t last_arrival_ns, int64_t last_finish_ns,
                     int64_t end_ns) {
    team_count.fetch_add(1, std::memory_order_relaxed);
    team_end.store(end_ns, std::memory_order_relaxed);
    last_team_ran_shares.store(false, std::memory_order_relaxed);
    if (!cold) return;
    // A cold start costs the latest worker's late arrival and, when the caller finished first
    // and fell asleep waiting at the region's end, its own wake-up after the last one finished.
    // The estimate takes a new cost at once and lets an old one go by halves: one cheap start
    // (a short pause, or a host that happened to have a core free) does not hide the next
    // expensive one.
    const int64_t cost = std::max<int64_t>(0, last_arrival_ns - start_ns) +
                         std::max<int64_t>(0, end_ns - last_finish_ns);
    const int64_t old = wake_cost.load(std::memory_order_relaxed);
    wake_cost.store(std::max(cost, old / 2), std::memory_order_relaxed);
}

void note_team_ran_shares() { last_team_ran_shares.store(true, std::memory_order_relaxed); }
bool team_ran_shares() { return last_team_ran_shares.load(std::memory_order_relaxed); }

int64_t team_wake_cost_ns() { return wake_cost.load(std::memory_order_relaxed); }
void set_team_wake_cost_ns(int64_t ns) { wake_cost.store(ns > 0 ? ns : 0, std::memory_order_relaxed); }
int64_t team_runs() { return team_count.load(std::memory_order_relaxed); }

double single_thread_seconds(double work, double weight_bytes) {
    // ~40 G multiply-adds/s and ~40 GB/s of weights for one core: the order of magnitude.
    return std::max(work, weight_bytes) / 40e9;
}

CallThreads::CallThreads(double seconds) {
    const int64_t now = monotonic_ns();
    if (now - last_call_end.load(std::memory_order_relaxed) > kBurstGapNs)
        burst_start.store(now, std::memory_order_relaxed);
    if (!cold_start_adaptive() || max_threads() <= 1) return;
    const int64_t wake = wake_cost.load(std::memory_order_relaxed);
    const bool alone = wake > 0 && team_is_cold(now) && seconds * 1e9 < static_cast<double>(wake) &&
                       now - burst_start.load(std::memory_order_relaxed) < wake;
    if (alone) alone_.emplace(1);
}

CallThreads::~CallThreads() {
    last_call_end.store(monotonic_ns(), std::memory_order_relaxed);
}

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

int available_cpus() {
    static const int value = cpus_available();
    return value;
}

int default_threads() {
    if (!openmp_enabled()) return 1;
    static const int value = [] {
        const int env = from_environment();
        return env > 0 ? env : cpus_available();
    }();
    return value;
}

int max_threads() {
    if (!openmp_enabled()) return 1;
    const int cap = explicit_cap.load(std::memory_order_relaxed);
    const int n = cap > 0 ? cap : default_threads();
    return scoped_cap > 0 && scoped_cap < n ? scoped_cap : n;
}

ScopedThreadCap::ScopedThreadCap(int n) : previous_(scoped_cap) { scoped_cap = n > 0 ? n : 1; }
ScopedThreadCap::~ScopedThreadCap() { scoped_cap = previous_; }

void set_max_threads(int n) { explicit_cap.store(n > 0 ? n : 0, std::memory_order_relaxed); }

int threads_for_work(double work) {
    // About 256k multiply-adds (several microseconds) per thread before another thread pays
    // for waking it and for the barrier: a streaming step (B = 1, H = 256) stays on one thread,
    // and a loaded machine, where a barrier can cost a scheduler time slice, hurts less.
    constexpr double per_thread = 262144.0;
    const int cap = max_threads();
    if (cap <= 1 || work < 2 * per_thread) return 1;
    const double want = work / per_thread;
    return want >= cap ? cap : static_cast<int>(want);
}

double l2_cache_bytes() {
    static const double bytes = [] {
        long l2 = 0;
#if defined(__linux__) && defined(_SC_LEVEL2_CACHE_SIZE)
        l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        if (l2 <= 0) l2 = 1L << 20;  // unknown: assume 1 MB
        return static_cast<double>(l2);
    }();
    return bytes;
}

int threads_for_cache(double bytes) {
    const double budget = 0.5 * l2_cache_bytes();
    const int cap = max_threads();
    if (cap <= 1 || bytes <= budget) return 1;
    const double want = bytes / budget + 0.999;
    return want >= cap ? cap : static_cast<int>(want);
}

namespace detail {
bool concurrent_directions_allowed() {
    static const bool allowed = [] {
        const char* v = std::getenv("GATEDRNN_BIDIRECTIONAL");
        return !(v && std::strcmp(v, "sequential") == 0);
    }();
    return allowed;
}

namespace {
std::atomic<bool> steal_others_first_flag{false};
}
std::atomic<int>& threads_in_teams() {
    static std::atomic<int> count{0};
    return count;
}
bool steal_others_first() { return steal_others_first_flag.load(std::memory_order_relaxed); }
void set_steal_others_first(bool on) { steal_others_first_flag.store(on, std::memory_order_relaxed); }
}  // namespace detail

}  // namespace gatedrnn
