// Internal: a parallel-for over [0, n) that never lets an exception escape an OpenMP region
// (the first one is caught, stored and rethrown after the region), and aligned scratch buffers
// whose sizes are checked for overflow (an impossible request is std::bad_alloc, which the
// bindings report as MemoryError).
#pragma once

#include "gatedrnn/memory.h"
#include "gatedrnn/threads.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE2__) || defined(_M_X64)
#include <xmmintrin.h>
#define GATEDRNN_HAVE_MXCSR 1
#endif
#include <condition_variable>
#include <thread>
// One look of a spin-wait: the pause hint where there is one (SSE2, part of x86-64).
#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define GATEDRNN_PAUSE() _mm_pause()
#else
#define GATEDRNN_PAUSE() std::this_thread::yield()
#endif

namespace gatedrnn::detail {

// Flush-to-zero and denormals-are-zero on the calling thread for the guard's lifetime, then the
// caller's setting back: subnormal operands would otherwise slow every multiply-add that meets
// them by orders of magnitude. Every thread that runs core work holds one.
class DenormalsAreZero {
public:
#ifdef GATEDRNN_HAVE_MXCSR
    DenormalsAreZero() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }  // FTZ | DAZ
    ~DenormalsAreZero() { _mm_setcsr(saved_); }

private:
    unsigned saved_;
#endif
};

// a * b * ... for sizes, throwing std::bad_alloc on overflow.
inline int64_t checked_mul(int64_t a, int64_t b) {
    if (a < 0 || b < 0) throw std::bad_alloc();
    if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) throw std::bad_alloc();
    return a * b;
}
inline int64_t checked_add(int64_t a, int64_t b) {
    if (a > std::numeric_limits<int64_t>::max() - b) throw std::bad_alloc();
    return a + b;
}

// An uninitialised, 64-byte aligned array of n elements; large ones come from the block cache
// (gatedrnn/memory.h), so the same step run again does not fault its memory in again. An empty
// one (n <= 0) holds no block and get() is null: a call sets up several it does not need (no
// mask, no cell state, ...), and their blocks overflowed the per-thread cache of small blocks
// (LSTM H=64 one-step call, one process alternated: 2% of its ~5.7 us).
template <typename T>
class Buffer {
public:
    Buffer() = default;
    explicit Buffer(int64_t n) { reset(n); }
    Buffer(Buffer&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_), size_(other.size_) {
        other.ptr_ = nullptr;
        other.bytes_ = 0;
        other.size_ = 0;
    }
    Buffer& operator=(Buffer&& other) noexcept {
        if (this != &other) {
            release_block(ptr_, bytes_);
            ptr_ = other.ptr_;
            bytes_ = other.bytes_;
            size_ = other.size_;
            other.ptr_ = nullptr;
            other.bytes_ = 0;
            other.size_ = 0;
        }
        return *this;
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { release_block(ptr_, bytes_); }

    void reset(int64_t n) {
        if (n <= 0) {
            *this = Buffer();
            return;
        }
        const int64_t bytes = checked_mul(n, static_cast<int64_t>(sizeof(T)));
        if (static_cast<uint64_t>(bytes) > std::numeric_limits<size_t>::max() / 2) throw std::bad_alloc();
        T* p = static_cast<T*>(acquire_block(static_cast<size_t>(bytes)));
        release_block(ptr_, bytes_);
        ptr_ = p;
        bytes_ = static_cast<size_t>(bytes);
        size_ = n;
    }
    T* get() const { return ptr_; }
    int64_t size() const { return size_; }

private:
    T* ptr_ = nullptr;
    size_t bytes_ = 0;
    int64_t size_ = 0;
};

// Helper threads for short jobs of shares (helpers.cpp). An OpenMP region costs ~1.2 us to
// start and end on the machine of gatedrnn/threads.h when its threads have just streamed a
// megabyte each (a streaming step: LSTM I=H=256, two threads, ~17 us in all); a helper spinning
// on one word takes its share ~1 us sooner. run_phases_on_helpers runs fn(ctx, phase, part) for
// `phases` rounds of `parts` shares, each once, each under DenormalsAreZero, every part of a
// round after every part of the round before has finished. It is one job of parts * phases
// shares, claimed in order: the caller runs share 0 and then every share no helper has claimed,
// so a helper that sleeps, or whose core the host has taken away, never holds the job up (it
// just does not help), and a share that waits for the round before (a spin on a counter, where
// a team would meet at a barrier) only waits for shares that threads already run. It wakes
// parts - 1 helpers. It returns false, having run nothing, when the helpers are busy with
// another caller's job or cannot be started, or where OpenMP would limit or bind the threads
// (inside a parallel region, OMP_THREAD_LIMIT, OMP_PROC_BIND): parallel_region then follows
// OpenMP's rules; and while an OpenMP team of ours is still awake (team_is_cold: its idle
// workers spin on the cores helpers would use), when an OpenMP region is the cheaper hand-off
// anyway, unless that team last ran a job of shares itself (run_phases' fallback, see
// helpers.cpp). Helpers spin 2 ms after a job, then sleep; quiet_helpers (called as an OpenMP
// region starts) sends spinning ones to sleep at once, so they never compete with an OpenMP
// team for cores. helped_jobs: jobs in which a helper ran a share (tests).
bool run_phases_on_helpers(int parts, int phases, void (*fn)(void*, int, int), void* ctx);
void quiet_helpers();
int64_t helped_jobs();

// Threads now running in gatedrnn's OpenMP regions (parallel_region), all callers together.
std::atomic<int>& threads_in_teams();

// The barrier between the steps (or phases) of one region's threads: each thread counts the
// barriers it has reached on its own cache line and waits until every other thread of the team
// has reached as many. A waiting thread needs one cache-line transfer per other thread, where
// OpenMP's central barrier (libgomp) takes several in a row: two threads, ~50 ns a barrier
// against ~300 ns on the machine of gatedrnn/threads.h (see run_team, driver.h, for what that
// gives). A waiter spins with pause for up to kSpinNs (as long as the helpers spin, about as
// long as libgomp's), then sleeps until the thread it waits for arrives and wakes it. While
// gatedrnn's teams have more threads than the process has CPUs (several Python threads calling
// at once, or a cap above the CPU count), a spin would hold the core that the awaited thread
// needs: the waiter yields its core a few times instead, then sleeps. LSTM B=1 H=256 T=150,
// ms per call with this barrier / OpenMP's: two callers of two threads each 3.4 / 4.4, one
// caller with 4 threads 2.1 / 3.4, with 3 threads 2.4 / 3.9 (spinning 1 ms before yielding,
// 85-160 ms); two threads while another process keeps one of the two CPUs busy half the time
// 2.8 / 2.9 and, at H=1024 T=50, 13.4 / 14.7 (a 0.2 ms spin: 3.8 / 3.3 and 18.1 / 15.3).
// Every thread of the team must reach every barrier (a region's body must not throw, as with
// an OpenMP barrier). Arriving (store the count, then look for sleepers) and going to sleep
// (register as a sleeper, then look at the count, under the lock) each store before they
// load, sequentially consistent: one of the two sees the other, so no wake-up is lost.
class TeamBarrier {
public:
    explicit TeamBarrier(int threads) : counts_(new Count[std::max(threads, 1)]) {}

    // Thread tid of a team of `team` threads (at most the constructor's) has arrived; returns
    // once every other thread has arrived at this barrier too. Writes made before it are then
    // visible to every thread.
    void wait(int tid, int team) const {
        if (team <= 1) return;
        const int64_t reached = counts_[tid].n.load(std::memory_order_relaxed) + 1;
        counts_[tid].n.store(reached, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            { std::lock_guard<std::mutex> guard(lock_); }
            wake_.notify_all();
        }
        for (int u = 0; u < team; ++u) {
            if (u == tid) continue;
            const std::atomic<int64_t>& other = counts_[u].n;
            if (other.load(std::memory_order_acquire) >= reached) continue;
            if (threads_in_teams().load(std::memory_order_relaxed) <= available_cpus()) {
                const int64_t until = monotonic_ns() + kSpinNs;
                for (int looks = 1; other.load(std::memory_order_acquire) < reached; ++looks) {
                    GATEDRNN_PAUSE();
                    if (looks % 256 == 0 && monotonic_ns() > until) break;
                }
            } else {
                for (int looks = 0; looks < kYields; ++looks) {
                    if (other.load(std::memory_order_acquire) >= reached) break;
                    std::this_thread::yield();
                }
            }
            if (other.load(std::memory_order_acquire) >= reached) continue;
            sleepers_.fetch_add(1, std::memory_order_seq_cst);
            {
                std::unique_lock<std::mutex> guard(lock_);
                wake_.wait(guard, [&] { return other.load(std::memory_order_seq_cst) >= reached; });
            }
            sleepers_.fetch_sub(1, std::memory_order_relaxed);
        }
    }

private:
    static constexpr int64_t kSpinNs = 2'000'000;
    static constexpr int kYields = 64;
    struct alignas(64) Count {
        std::atomic<int64_t> n{0};
    };
    std::unique_ptr<Count[]> counts_;
    alignas(64) mutable std::atomic<int> sleepers_{0};
    mutable std::mutex lock_;
    mutable std::condition_variable wake_;
};

// Counts a region's `threads` in threads_in_teams while it lives.
class TeamThreads {
public:
    explicit TeamThreads(int threads) : threads_(threads > 1 ? threads : 0) {
        if (threads_) threads_in_teams().fetch_add(threads_, std::memory_order_relaxed);
    }
    ~TeamThreads() {
        if (threads_) threads_in_teams().fetch_sub(threads_, std::memory_order_relaxed);
    }
    TeamThreads(const TeamThreads&) = delete;
    TeamThreads& operator=(const TeamThreads&) = delete;

private:
    int threads_;
};

// Runs body(thread_index, team) on up to `threads` threads (team: how many OpenMP started),
// each holding DenormalsAreZero; inline on the caller when threads <= 1. The first exception
// a thread throws is caught, kept, and rethrown after the region (none may escape it).
template <typename Body>
void parallel_region(int threads, Body&& body) {
#ifdef _OPENMP
    if (threads > 1) {
        quiet_helpers();
        const TeamThreads running(threads);
        std::exception_ptr error;
        std::mutex error_lock;
        // Timings for the cold-start estimate (gatedrnn/threads.h, CallThreads).
        const int64_t start = monotonic_ns();
        const bool cold = team_is_cold(start);
        std::atomic<int64_t> last_arrival{start}, last_finish{start};
        const auto latest = [](std::atomic<int64_t>& at, int64_t t) {
            int64_t seen = at.load(std::memory_order_relaxed);
            while (seen < t && !at.compare_exchange_weak(seen, t, std::memory_order_relaxed)) {
            }
        };
#pragma omp parallel num_threads(threads)
        {
            if (omp_get_thread_num() != 0) latest(last_arrival, monotonic_ns());
            {
                DenormalsAreZero daz;
                try {
                    body(omp_get_thread_num(), omp_get_num_threads());
                } catch (...) {
                    std::lock_guard<std::mutex> guard(error_lock);
                    if (!error) error = std::current_exception();
                }
            }
            latest(last_finish, monotonic_ns());
        }
        record_team_run(start, cold, last_arrival.load(), last_finish.load(), monotonic_ns());
        if (error) std::rethrow_exception(error);
        return;
    }
#endif
    (void)threads;
    DenormalsAreZero daz;
    body(0, 1);
}

// Runs body(phase, part) for each of `parts` parts in each of `phases` phases, a phase's parts
// only after every part of the phase before (a two-phase step of one call: the reset-before
// GRU's). On helpers where they are free (run_phases_on_helpers), otherwise on an OpenMP
// region with a barrier between phases, each thread taking parts tid, tid + team, ...
template <typename Body>
void run_phases(int parts, int phases, Body&& body) {
    using Fn = std::remove_reference_t<Body>;
    if (parts > 1 &&
        run_phases_on_helpers(parts, phases,
                              [](void* c, int phase, int part) { (*static_cast<Fn*>(c))(phase, part); },
                              const_cast<void*>(static_cast<const void*>(&body))))
        return;
    const TeamBarrier barrier(parts);
    parallel_region(parts, [&](int tid, int team) {
        for (int phase = 0; phase < phases; ++phase) {
            if (phase > 0) barrier.wait(tid, team);
            for (int s = tid; s < parts; s += team) body(phase, s);
        }
    });
    if (parts > 1) note_team_ran_shares();
}

// Runs body(s) for the `shares` independent shares s in [0, shares) (no barrier between them:
// they may run one after another on one thread): run_phases with one phase.
template <typename Body>
void run_shares(int shares, Body&& body) {
    run_phases(shares, 1, [&](int, int s) { body(s); });
}

// Calls body(begin, end, thread_index) on `threads` contiguous chunks of [0, n).
template <typename Body>
void parallel_chunks(int64_t n, int threads, Body&& body) {
    if (n <= 0) return;
    if (threads > n) threads = static_cast<int>(n);
    parallel_region(threads, [&](int tid, int team) {
        const int64_t begin = n * tid / team, end = n * (tid + 1) / team;
        if (begin < end) body(begin, end, tid);
    });
}

// Calls body(begin, end, thread_index) on runs of `grain` consecutive items of [0, n) that
// `threads` threads claim in turn as each finishes its last: the same items as
// parallel_chunks, but a thread that runs slower (on a shared machine, a core whose sibling
// another tenant keeps busy, or one the host takes away for a while) takes fewer of them
// instead of holding the others up. Each item is still done by one thread, whole, so results
// do not depend on who did what.
template <typename Body>
void parallel_claims(int64_t n, int threads, int64_t grain, Body&& body) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    const int64_t runs = (n + grain - 1) / grain;
    if (threads > runs) threads = static_cast<int>(runs);
    std::atomic<int64_t> next{0};
    std::atomic<bool> failed{false};   // after an exception the others stop claiming
    parallel_region(threads, [&](int tid, int) {
        try {
            while (!failed.load(std::memory_order_relaxed)) {
                const int64_t begin = next.fetch_add(grain, std::memory_order_relaxed);
                if (begin >= n) break;
                body(begin, std::min(n, begin + grain), tid);
            }
        } catch (...) {
            failed.store(true, std::memory_order_relaxed);
            throw;
        }
    });
}

// Runs body(d, concurrent) for the D directions of a layer, each `work` multiply-adds. With 2 or
// 3 threads a bidirectional pair worth threading runs its two directions at the same time, one
// thread each (ScopedThreadCap(1) inside): the same arithmetic with no per-step barrier at all.
// Small pairs (which would run on one thread anyway: waking a second thread costs more than it
// saves), more threads, or GATEDRNN_BIDIRECTIONAL=sequential: one direction after the other.
// `concurrent` tells body that the other direction runs at the same time, so the two must not
// write to the same memory.
bool concurrent_directions_allowed();

// Tests only: with it set, each thread of a step split by units takes the next thread's chunks
// first, then its own (driver.h, kStealChunks), so that chunks change hands at every step and
// not only when one thread falls behind.
bool steal_others_first();
void set_steal_others_first(bool on);

template <typename Body>
void for_each_direction(int D, double work, Body&& body) {
#ifdef _OPENMP
    const int n = max_threads();
    if (D == 2 && (n == 2 || n == 3) && threads_for_work(work) >= 2 &&
        concurrent_directions_allowed()) {
        parallel_region(2, [&](int tid, int team) {
            ScopedThreadCap one(1);
            if (team == 2) {
                body(tid, true);
            } else {            // the runtime gave us fewer threads than asked
                body(0, true);
                body(1, true);
            }
        });
        return;
    }
#endif
    for (int d = 0; d < D; ++d) body(d, false);
}

}  // namespace gatedrnn::detail
