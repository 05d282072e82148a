#include "gatedrnn/threads.h"

#include <cstring>

#include <atomic>
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

}  // namespace

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
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
}  // namespace detail

}  // namespace gatedrnn
