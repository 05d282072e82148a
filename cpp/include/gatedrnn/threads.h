// gatedrnn core: thread policy.
//
// A process-wide cap on worker threads, kept in an atomic and passed to every parallel region
// as num_threads(...) (omp_set_num_threads is per calling thread and would not reach calls
// made from other Python threads). Precedence: set_max_threads(), then OMP_NUM_THREADS, then
// the CPUs this process may run on (affinity).
#pragma once

#include <cstdint>

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

// Threads worth using for `work` multiply-adds of parallel work: small problems run on one
// thread, so they do not pay for waking a team.
int threads_for_work(double work);

// Bytes of one core's L2 cache as the system reports it (1 MB where it does not): the size the
// cache-aware choices are made against (threads for a call, which weights are fetched ahead, when
// weight sweeps zig-zag).
double l2_cache_bytes();

// Threads needed so that each one's share of `bytes` of weights fits in half of its L2 cache:
// weights read every call or step (streaming) then stay cache-resident instead of streaming
// from L3 or memory each time, even when the arithmetic alone would not need the threads.
int threads_for_cache(double bytes);

}  // namespace gatedrnn
