// The helper threads behind run_shares (parallel.h).
#include "parallel.h"

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#ifdef __unix__
#include <pthread.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace gatedrnn::detail {
namespace {

// A helper spins this long after its last share before it sleeps: a streaming caller's next
// step (Python in between: ~5-10 us) finds it awake. libgomp's workers spin ~6-9 ms on the
// machine of gatedrnn/threads.h; ours stand down at once when an OpenMP region starts
// (quiet_helpers), so their spin never competes with a team of ours.
constexpr int64_t kSpinNs = 2'000'000;
constexpr int kMaxShares = 255;   // shares per job fit in 8 bits of the job word

// The current job in one word, so that a claim is one compare-and-swap: epoch (bits 24..63,
// new for every job), the helpers it wants (bits 16..23), shares (bits 8..15) and the next
// unclaimed share (bits 0..7).
constexpr uint64_t job_word(uint64_t epoch, int helpers, int shares, int next) {
    return epoch << 24 | static_cast<uint64_t>(helpers) << 16 | static_cast<uint64_t>(shares) << 8 |
           static_cast<uint64_t>(next);
}
constexpr uint64_t epoch_of(uint64_t w) { return w >> 24; }
constexpr int helpers_of(uint64_t w) { return static_cast<int>(w >> 16 & 0xff); }
constexpr int shares_of(uint64_t w) { return static_cast<int>(w >> 8 & 0xff); }
constexpr int next_of(uint64_t w) { return static_cast<int>(w & 0xff); }

struct Pool {
    alignas(64) std::atomic<uint64_t> job{0};
    alignas(64) std::atomic<int> done{0};        // shares of the current job finished
    alignas(64) std::atomic<int> sleepers{0};
    std::atomic<bool> stand_down{false};         // an OpenMP region started: sleep now
    std::atomic<int64_t> helped{0};              // jobs in which a helper ran a share (tests)
    std::atomic_flag busy = ATOMIC_FLAG_INIT;    // one caller's job at a time
    void (*fn)(void*, int) = nullptr;
    void* ctx = nullptr;
    std::exception_ptr error;
    std::mutex error_lock;
    std::mutex sleep_lock;
    std::condition_variable wake;
    int helpers = 0;                             // changed only by the caller holding busy

    // Runs share s of the current job on this thread; the first exception is kept.
    void run(int s) {
        try {
            DenormalsAreZero daz;
            fn(ctx, s);
        } catch (...) {
            std::lock_guard<std::mutex> guard(error_lock);
            if (!error) error = std::current_exception();
        }
        done.fetch_add(1, std::memory_order_acq_rel);
    }

    // Claims and runs unclaimed shares of the job in w (of that job only) until none is left;
    // returns how many.
    int claim(uint64_t w) {
        const uint64_t epoch = epoch_of(w);
        int ran = 0;
        while (epoch_of(w) == epoch && next_of(w) < shares_of(w)) {
            if (job.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
                run(next_of(w));
                ++ran;
                w = job.load(std::memory_order_acquire);
            }
        }
        return ran;
    }

    // Helper `index` (0, 1, ...) serves jobs that want more than index helpers: the others
    // leave it spinning out its time and then asleep (a pool started for a wide job does not
    // keep every helper spinning through a stream of two-share jobs).
    void helper_loop(int index) {
        const auto wanted = [index](uint64_t w) { return index < helpers_of(w); };
        uint64_t seen = epoch_of(job.load(std::memory_order_acquire));
        for (;;) {
            int64_t deadline = monotonic_ns() + kSpinNs;
            for (int spins = 1;; ++spins) {
                const uint64_t w = job.load(std::memory_order_acquire);
                if (epoch_of(w) != seen) {
                    seen = epoch_of(w);
                    if (wanted(w)) {
                        if (claim(w) > 0) helped.fetch_add(1, std::memory_order_relaxed);
                        deadline = monotonic_ns() + kSpinNs;
                    }
                    continue;
                }
                GATEDRNN_PAUSE();
                if (spins % 256 == 0 &&
                    (stand_down.load(std::memory_order_relaxed) || monotonic_ns() > deadline))
                    break;
            }
            std::unique_lock<std::mutex> lock(sleep_lock);
            sleepers.fetch_add(1, std::memory_order_seq_cst);
            for (;;) {   // (the predicate also absorbs spurious wake-ups)
                const uint64_t w = job.load(std::memory_order_seq_cst);
                if (epoch_of(w) != seen && wanted(w)) break;
                wake.wait(lock);
            }
            sleepers.fetch_sub(1, std::memory_order_relaxed);
        }
    }

    // Starts helpers until there are n; false if the system would not start one.
    bool ensure_helpers(int n) {
        while (helpers < n) {
            try {
                const int index = helpers;
                std::thread([this, index] { helper_loop(index); }).detach();
            } catch (...) {   // std::system_error, or std::bad_alloc
                return false;
            }
            ++helpers;
        }
        return true;
    }
};

std::atomic<Pool*> current_pool{nullptr};
std::once_flag pool_once;

// A forked child has none of the parent's helper threads: it starts a new pool (the parent's,
// whose locks may have been held at the fork, is left alone).
void after_fork_in_child() { current_pool.store(nullptr, std::memory_order_release); }

Pool& pool() {
    Pool* p = current_pool.load(std::memory_order_acquire);
    if (p) return *p;
    std::call_once(pool_once, [] {
#ifdef __unix__
        pthread_atfork(nullptr, nullptr, after_fork_in_child);
#endif
    });
    Pool* fresh = new Pool;   // never freed: helpers may be waiting on it at exit
    Pool* expected = nullptr;
    if (!current_pool.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
        delete fresh;
        return *expected;
    }
    return *fresh;
}

// Runs fn(ctx, s) for s in [0, shares) on the caller and up to width - 1 helpers (see
// run_phases_on_helpers, parallel.h).
bool run_shares_on_helpers(int shares, void (*fn)(void*, int), void* ctx, int width) {
    if (width > shares) width = shares;
    if (shares <= 1 || shares > kMaxShares || width <= 1) return false;
#ifdef _OPENMP
    // Where OpenMP would give the call fewer threads (inside a parallel region, under
    // OMP_THREAD_LIMIT) or bind them (OMP_PROC_BIND: helpers would share the caller's core),
    // it decides: parallel_region.
    if (omp_in_parallel() || omp_get_thread_limit() < width ||
        omp_get_proc_bind() != omp_proc_bind_false)
        return false;
    // Nor while an OpenMP team of ours is still awake: its idle workers spin for milliseconds
    // after a region, on the cores the helpers would use, and a helper that got a share then
    // ran at half speed or waited for a time slice. A one-step training call (forward on the
    // helpers, backward on a team, GRU B=32 H=512) took 4.0 ms instead of 2.4 ms. Unless the
    // team's last region was itself such a fallback: then nothing but our own fallbacks keeps
    // it awake, and without this exception a stream of one-step calls that started while a
    // team was awake (right after pack_weights, say) would keep waking it, call after call,
    // and never reach the helpers. Helpers take it from the next call on, once a spinning
    // worker's last milliseconds are over. Two threads, GRU I=H=512 one-step calls right after
    // packing, one process, alternated: B=1 46.9 -> 45.3 us, B=2 51.6 -> 50.2 us; GRU I=H=256
    // B=1 18.8 -> 17.5 us.
    if (!team_is_cold(monotonic_ns()) && !team_ran_shares()) return false;
#endif
    Pool& p = pool();
    if (p.busy.test_and_set(std::memory_order_acquire)) return false;   // another caller's job
    if (!p.ensure_helpers(width - 1)) {
        p.busy.clear(std::memory_order_release);
        return false;
    }
    p.fn = fn;
    p.ctx = ctx;   // (p.error is null between jobs: each job takes its own out)
    p.done.store(0, std::memory_order_relaxed);
    if (p.stand_down.load(std::memory_order_relaxed)) p.stand_down.store(false, std::memory_order_relaxed);
    const uint64_t epoch = epoch_of(p.job.load(std::memory_order_relaxed)) + 1;
    p.job.store(job_word(epoch, width - 1, shares, 1), std::memory_order_seq_cst);   // share 0 is ours
    if (p.sleepers.load(std::memory_order_seq_cst) > 0) {
        // Sleeping helpers: woken now, they may still take a share of a long job (a streaming
        // step is over before they are up; the next one finds them awake).
        { std::lock_guard<std::mutex> guard(p.sleep_lock); }
        p.wake.notify_all();
    }
    p.run(0);
    p.claim(p.job.load(std::memory_order_acquire));
    // Every share is claimed now; wait for those a helper is still running.
    while (p.done.load(std::memory_order_acquire) != shares) GATEDRNN_PAUSE();
    std::exception_ptr error = std::exchange(p.error, nullptr);
    p.busy.clear(std::memory_order_release);
    if (error) std::rethrow_exception(error);
    return true;
}

// A job of rounds (run_phases_on_helpers): share s is part s % parts of round s / parts.
struct PhasedJob {
    static constexpr int kMaxPhases = 4;
    int parts;
    void (*fn)(void*, int, int);
    void* ctx;
    std::atomic<int> finished[kMaxPhases];   // parts of each round finished

    static void share(void* c, int s) {
        PhasedJob& job = *static_cast<PhasedJob*>(c);
        const int phase = s / job.parts, part = s % job.parts;
        if (phase > 0)
            while (job.finished[phase - 1].load(std::memory_order_acquire) < job.parts) GATEDRNN_PAUSE();
        struct Finish {   // (a part that threw counts as finished too: nobody waits forever)
            std::atomic<int>& n;
            ~Finish() { n.fetch_add(1, std::memory_order_acq_rel); }
        } finish{job.finished[phase]};
        job.fn(job.ctx, phase, part);
    }
};
}  // namespace

bool run_phases_on_helpers(int parts, int phases, void (*fn)(void*, int, int), void* ctx) {
    if (parts < 1 || phases < 1 || phases > PhasedJob::kMaxPhases || parts * phases > kMaxShares)
        return false;
    PhasedJob job{parts, fn, ctx, {}};
    for (auto& n : job.finished) n.store(0, std::memory_order_relaxed);
    return run_shares_on_helpers(parts * phases, &PhasedJob::share, &job, parts);
}

void quiet_helpers() {
    Pool* p = current_pool.load(std::memory_order_acquire);
    if (p && !p->stand_down.load(std::memory_order_relaxed))
        p->stand_down.store(true, std::memory_order_relaxed);
}

int64_t helped_jobs() {
    Pool* p = current_pool.load(std::memory_order_acquire);
    return p ? p->helped.load(std::memory_order_relaxed) : 0;
}

}  // namespace gatedrnn::detail
