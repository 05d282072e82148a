// gatedrnn core: thread policy.
//
// A process-wide cap on worker threads, kept in an atomic and passed to every parallel region
// as num_threads(...) (omp_set_num_threads is per calling thread and would not reach calls
// made from other Python threads). Precedence: set_max_threads(), then OMP_NUM_THREADS, then
// the CPUs this process may run on (affinity).
#pragma once

#include <cstdint>
#include <optional>

namespace gatedrnn {

int max_threads();              // current cap, >= 1 (the lower of the process-wide cap and
                                // the calling thread's ScopedThreadCap)
void set_max_threads(int n);    // n >= 1; n == 0 restores the default (environment/affinity)
int default_threads();          // what the cap is without set_max_threads
bool openmp_enabled();

// Lowers max_threads() for the calling thread while it lives: a call running inside another
// parallel region (one direction of a bidirectional pair) sizes its own work for its share.
class ScopedThreadCap {
public:
    explicit ScopedThreadCap(int n);
    ~ScopedThreadCap();
    ScopedThreadCap(const ScopedThreadCap&) = delete;
    ScopedThreadCap& operator=(const ScopedThreadCap&) = delete;

private:
    int previous_;
};

// Cold starts. An OpenMP team idle for more than a few milliseconds has gone to sleep; waking it
// costs microseconds on a dedicated machine, but on a virtual machine whose host hands an idle
// vCPU's core to another guest it can cost milliseconds (measured on a 2-vCPU KVM guest: an
// empty parallel region 1 us back to back, 28 us after 10 ms idle, 4.6 ms after 50 ms, 7.8 ms
// after 100 ms or more; a one-step GRU call, B=1, H=512: 70 us warm, 7.8 ms after a pause, where
// one thread takes 0.6 ms). So a call that one thread finishes sooner than the team would wake
// runs on the calling thread alone, while the team is cold and until a burst of calls (calls
// less than 10 ms apart) has lasted as long as a wake-up: from then on waking the team pays. The
// wake-up cost is measured at every cold start of the team (parallel_region), so where it is
// cheap nothing changes. Results never depend on the thread count. (A one-step call whose parts
// need no barrier runs on helper threads instead, cpp/src/parallel.h run_shares, which never
// wait for a sleeping thread: there a cold start costs nothing but the help. This policy may
// still run the first calls of a burst alone while the OpenMP team counts as cold.)
// GATEDRNN_COLD_START=team (read at import; "adaptive" is the default, anything else a
// ValueError) or set_cold_start_adaptive(false) turns this off: every call then sizes its team
// as if the team were awake. The bindings hold a CallThreads for each call into the core
// (forward, backward, matmul), around everything the call runs.
void cold_start_from_environment();
bool cold_start_adaptive();
void set_cold_start_adaptive(bool on);
class CallThreads {
public:
    // seconds: what the call would take on one thread (single_thread_seconds)
    explicit CallThreads(double seconds);
    ~CallThreads();
    CallThreads(const CallThreads&) = delete;
    CallThreads& operator=(const CallThreads&) = delete;

private:
    std::optional<ScopedThreadCap> alone_;   // engaged: capped at one thread for the call
};

// A rough single-thread time for a call of `work` multiply-adds that reads `weight_bytes` of
// weights (from cache or memory): only compared with a wake-up cost, which is milliseconds
// where it matters.
double single_thread_seconds(double work, double weight_bytes);

// The bookkeeping behind CallThreads, kept by parallel_region: a monotonic clock, whether the
// team has been idle long enough to have gone to sleep, and a team run's timings (the latest
// worker's arrival after the start, and the caller's return after the last thread finished).
int64_t monotonic_ns();
bool team_is_cold(int64_t now_ns);
void record_team_run(int64_t start_ns, bool cold, int64_t last_arrival_ns, int64_t last_finish_ns,
                     int64_t end_ns);
int64_t team_wake_cost_ns();         // the current estimate (0: no cold start seen yet)
void set_team_wake_cost_ns(int64_t ns);   // tests: pretend a measured cost
int64_t team_runs();                 // parallel regions run with a team so far (tests)
// Whether the team's last region ran shares no helper took (run_shares' fallback), rather than
// work that needs a team: then only such fallbacks keep the team awake (see run_shares).
void note_team_ran_shares();
bool team_ran_shares();

// The CPUs this process may run on (affinity), at least 1.
int available_cpus();

// Threads worth using for `work` multiply-adds of parallel work: small problems run on one
// thread, so they do not pay for waking a team.
int threads_for_work(double work);

// Bytes of one core's L2 cache as the system reports it (1 MB where it does not): the size the
// cache-aware choices are made against (threads for a call, when weight sweeps zig-zag, when
// the batch splits).
double l2_cache_bytes();

// Threads needed so that each one's share of `bytes` of weights fits in half of its L2 cache:
// weights read every call or step (streaming) then stay cache-resident instead of streaming
// from L3 or memory each time, even when the arithmetic alone would not need the threads.
int threads_for_cache(double bytes);

}  // namespace gatedrnn
