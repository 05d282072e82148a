// Internal: the sequence driver shared by every cell (level 1 of the core, DESIGN.md §3-4).
//
// It owns what does not depend on the cell: the packed schedule of (t, b) pairs, the input
// projection as big GEMMs over blocks of valid rows ahead of the steps that read them (each
// thread projecting the rows or gate columns its own steps read, where the team splits that
// way), the time loop itself, the training workspace, and in backward the weight and input
// gradients as big GEMMs over all valid rows after the loop (the bias gradients are summed
// during it).
//
// The time loop runs in ONE parallel region for the whole sequence. Two ways to split a step:
// - by hidden units ("weight-stationary"): each thread owns a fixed slice of hidden units with
//   ALL their gates (the recurrent weights are packed per gate, in panels, so a slice is a range
//   of panels) and computes that slice's GEMM and pointwise math; its slice of W_hh stays in its
//   cache for the whole sequence. One barrier per GEMM phase and step.
// - by batch rows: each thread runs whole sequences (every hidden unit), no barrier at all.
//   Chosen when the batch gives every thread at least kBatchSplitRows rows and W_hh is small
//   enough to stream from cache at every step (plan_team; a one-step call is stricter).
// A cell (rnn_cell.h, gru_cell.h, lstm_cell.h) supplies its phases: which packed gate blocks
// each phase multiplies and which pointwise kernel (isa/kernels.h) it applies.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "gatedrnn/common.h"
#include "gatedrnn/gemm.h"
#include "gatedrnn/threads.h"
#include "isa/dispatch.h"
#include "packed.h"
#include "parallel.h"
#include "schedule.h"

namespace gatedrnn::detail {

// The training workspace, carved into planes over the packed rows (capacity T*B rows).
template <typename T>
struct Planes {
    T* act = nullptr;     // (T*B, G*H) input projection, then gate activations
    T* h_prev = nullptr;  // (T*B, H) unmasked h_{t-1}
    T* extra[2] = {nullptr, nullptr};  // (T*B, H) cell-specific
};

template <typename T>
Planes<T> carve_workspace(T* ws, const Sequence& seq, int G, int extra_planes) {
    Planes<T> p;
    const int64_t rows = seq.rows(), H = seq.H;
    p.act = ws;
    p.h_prev = p.act + rows * G * H;
    for (int e = 0; e < extra_planes; ++e) p.extra[e] = p.h_prev + rows * H * (e + 1);
    return p;
}

inline int64_t workspace_elements(const Sequence& seq, int G, int extra_planes) {
    return checked_mul(seq.rows(), checked_mul(seq.H, G + 1 + extra_planes));
}

// The part of a step one thread computes: rows [row_first, row_end) of the running prefix, and
// the hidden units of panels [p_begin, p_end) = units [u_begin, u_end).
// reverse: the step's recurrent GEMMs visit the gates and panels in descending order (a zig-zag
// sweep, see zigzag_bytes; the results are the same either way).
struct Slice {
    int64_t row_first = 0, row_end = INT64_MAX;
    int64_t p_begin = 0, p_end = 0, u_begin = 0, u_end = 0;
    bool reverse = false;
    // The end of the slice's rows in a step of Bs running rows.
    int64_t row_limit(int64_t Bs) const { return std::min(Bs, row_end); }
    int64_t rows(int64_t Bs) const {
        const int64_t end = row_limit(Bs);
        return row_first < end ? end - row_first : 0;
    }
};

// Everything a step of the forward pass reads and writes. Buffers are (B, .) over the sorted
// batch; the planes' pointers are already offset to this step's first packed row.
template <typename T>
struct StepForward {
    int64_t Bs, H;
    T* xw;                  // (Bs, G*H) input projection
    int64_t xw_first;       // the row of the step that xw's first row belongs to
    T* act;                 // (Bs, G*H) training: where the activations go (xw itself, or the
                            // workspace's rows when xw is a thread's own scratch); else null
    const T* bias;          // (G*H) folded bias, added to xw in the pointwise step
    const T* h;             // (B, H) h_{t-1}
    const T* h_rec;         // (B, H) m (.) h_{t-1}: what feeds W_hh
    T* h_out;               // (B, H) h_t
    T* h_rec_out;           // (B, H) m (.) h_t, or nullptr without a mask
    const T* mask;          // (B, H) or nullptr
    T* c;                   // (B, H) LSTM state, updated in place
    T* gates;               // (B, G*H) recurrent pre-activations
    T* rh;                  // (B, H) reset-before GRU: r (.) h'
    T* save[2];             // (Bs, H) rows of the extra planes (training), else nullptr
    bool training;
    const Weights<T>* w;
    const PackedB<T>* packed;   // G blocks: W_hh[g]^T (H, H)
    const isa::Kernels<T>* k;
    T* a_pack;              // this thread's scratch for packing the GEMMs' A rows
    bool* a_packed;         // or nullptr; else true once a_pack holds this phase's shared A
    bool gemm0_done;        // the cell's forward_gemm0 already ran for this step
};

template <typename T>
struct StepBackward {
    int64_t Bs, H;
    const T* act;           // (Bs, G*H) saved activations
    const T* h_prev;        // (Bs, H) unmasked h_{t-1}
    const T* mask;          // (B, H) or nullptr
    const T* saved[2];      // (Bs, H) extra planes
    T* dh;                  // (B, H) in dL/dh_t, out dL/dh_{t-1}
    T* dc;                  // (B, H) LSTM
    T* dg;                  // (Bs, G*H) this step's rows of dG
    T* dg_extra;            // (Bs, H) reset-after GRU: dn_pre (.) r
    T* dh_rec;              // (B, H) gradient reaching h' = m (.) h_{t-1}
    T* direct;              // (B, H) GRU: z (.) dh_t
    const PackedB<T>* packed;   // G blocks: W_hh[g] (H, H)
    const isa::Kernels<T>* k;
    T* a_pack;              // this thread's scratch for packing the GEMMs' A rows
};

// What a cell needs to form dW_hh and db_hh after the loop (all over the N packed rows).
template <typename T>
struct HiddenGrads {
    int64_t N, H;
    T* dw_hh;              // (G*H, H)
    T* db_hh;              // (G*H) or nullptr
    const T* db_ih;        // (G*H) column sums of dg (always computed)
    const T* db_extra;     // (H) column sums of dg_extra, or nullptr without it
    const T* dg;           // (N, G*H)
    const T* dg_extra;     // (N, H)
    const T* h_rec;        // (N, H) m (.) h_{t-1}
    const T* saved[2];     // (N, H) extra planes
};

// C rows of the slice (+)= A rows . packed gate block g, for the slice's panels. A and C are
// row-major with the given row strides; the slice's rows are consecutive rows of both. The
// step's Bs rows, not the slice's, choose the GEMM's path and partial sums (gemm_packed's
// whole_rows): a row's results do not depend on how the rows are split between threads.
template <typename T>
void slice_gemm(const Slice& sl, int64_t Bs, const T* A, int64_t lda, const PackedB<T>& Bg,
                T beta, T* C, int64_t ldc) {
    const int64_t M = sl.rows(Bs);
    if (M == 0) return;
    gemm_packed(M, A + sl.row_first * lda, lda, Bg, sl.p_begin, sl.p_end, beta,
                C + sl.row_first * ldc, ldc, sl.reverse, Bs);
}

// sums[own units of each of the G blocks of H columns] += those columns of the slice's rows
// below Bs of m (row stride ld): the rows' share of a column sum. Each sum adds
// the rows one at a time in that order, four rows per pass over the sums: the same roundings
// as a pass per row, with a quarter of the loads and stores of the sums. The batch split's
// pass over all of dG after the time loop (LSTM H=256 T=150 B=32, backward, two threads: 3%
// of the call with a pass per row) costs 0.8% of it so.
template <typename T>
void add_slice_rows(T* sums, const T* m, int64_t ld, const Slice& sl, int64_t Bs, int G, int64_t H) {
    for (int g = 0; g < G; ++g) {
        T* const out = sums + g * H;
        const T* row = m + sl.row_first * ld + g * H;
        int64_t j = sl.row_first;
        for (; j + 3 < sl.row_limit(Bs); j += 4, row += 4 * ld) {
            const T *r0 = row, *r1 = row + ld, *r2 = row + 2 * ld, *r3 = row + 3 * ld;
            for (int64_t u = sl.u_begin; u < sl.u_end; ++u)
                out[u] = (((out[u] + r0[u]) + r1[u]) + r2[u]) + r3[u];
        }
        for (; j < sl.row_limit(Bs); ++j, row += ld)
            for (int64_t u = sl.u_begin; u < sl.u_end; ++u) out[u] += row[u];
    }
}

// out (N, cols) = rows of the sequence matrix in packed order (or the matrix itself).
template <typename T>
const T* packed_view(Buffer<T>& storage, const T* x, const Schedule& sched, int64_t cols) {
    if (sched.identity) return x;
    storage.reset(checked_mul(sched.packed, cols));
    gather_rows(storage.get(), x, sched.source, cols);
    return storage.get();
}

// Split by units, each thread's share of a step's phase is cut into at most this many chunks,
// claimed in order from a counter: the owner takes its chunks from the first, and a thread
// done with its own takes the next unclaimed chunk of another's. On a shared machine one core
// now and then runs slower than the other for seconds at a time (another tenant), and every
// step would wait at the barrier for it; this way the faster core takes over part of its
// share. The results do not depend on who computes a chunk.
constexpr int64_t kStealChunks = 8;
// One claim counter per cache line: the threads' counters of a step are updated at the same
// time by different cores.
struct alignas(64) ClaimCounter {
    std::atomic<int64_t> next{0};
};
// (steal_others_first, parallel.h: a test switch that has chunks change hands at every step.)

// The chunks of an owner's slice: how many, and chunk c as a slice. Chunks are counted from
// the sweep's start (the last panels first when reversed), so that a chunk index means the
// same panels to every thread that sweeps the same way.
struct Chunks {
    Slice own;
    int64_t per = 1, count = 0;  // panels per chunk, chunks
    explicit Chunks(const Slice& owner) : own(owner) {
        const int64_t panels = own.p_end - own.p_begin;
        per = std::max<int64_t>(1, (panels + kStealChunks - 1) / kStealChunks);
        count = (panels + per - 1) / per;
    }
    Slice at(int64_t c, bool reverse, int64_t nr, int64_t H) const {
        Slice sl = own;
        sl.reverse = reverse;
        sl.p_begin = reverse ? std::max(own.p_begin, own.p_end - (c + 1) * per) : own.p_begin + c * per;
        sl.p_end = reverse ? own.p_end - c * per : std::min(own.p_end, own.p_begin + (c + 1) * per);
        sl.u_begin = std::min(sl.p_begin * nr, H);
        sl.u_end = std::min(sl.p_end * nr, H);
        return sl;
    }
};

// Calls with at most this many valid (t, b) rows read unpacked weights in place.
constexpr int64_t kInPlaceRows = 8;
// A single step reads each weight matrix once for all its rows: packing (two passes over the
// weights) pays back only for a batch this large.
constexpr int64_t kInPlaceSingleStepRows = 64;
// Blocks of at most this many rows are projected inside the time loop's region without
// packing or depth blocks (streaming steps).
constexpr int64_t kFusedProjectionRows = 32;

// Inference: steps per block of the input projection. A block holds about 4 MB of projected
// rows (so it is still in cache when its steps read it), and at least 192 rows (so its GEMM
// runs at full speed).
inline int64_t projection_block_steps(int64_t B, int64_t GH, size_t element) {
    const int64_t row_bytes = GH * static_cast<int64_t>(element);
    const int64_t rows = std::max<int64_t>(192, (int64_t(4) << 20) / std::max<int64_t>(row_bytes, 1));
    return std::max<int64_t>(1, rows / std::max<int64_t>(B, 1));
}

// Split by batch rows: steps per block of the input projection when each thread projects its
// own rows (row_ranges below), about 2 MB of them per thread. Measured
// with 2 threads, LSTM H=256 T=150, B=16/32/64 forward, against the shared projection: 2 MB
// per thread gains 1-2%; 0.25 MB loses 2% (short GEMMs), 4 MB ties, 8 MB loses 3-5%.
inline int64_t own_rows_block_steps(int64_t B, int64_t GH, size_t element, int threads) {
    const int64_t row_bytes = std::max<int64_t>(GH * static_cast<int64_t>(element), 1);
    const int64_t rows = std::max<int64_t>(1, (int64_t(2) << 20) / row_bytes);
    const int64_t per_thread = std::max<int64_t>(1, (B + threads - 1) / threads);
    return std::max<int64_t>(1, rows / per_thread);
}

// Zig-zag sweeps. A thread whose share of W_hh (and, for a one-step call, its columns of W_ih^T
// too) does not fit in its L2 next to the step's other data reads them from L3 or memory on
// every step: each sweep evicts the lines the next sweep will want first. Reading them in
// alternate directions (gates and panels in descending order every other time) starts each
// sweep on the lines the previous one read last, and finds about an L2 of them still there.
// Each thread alternates its own direction, from step to step and from call to call (a
// streaming caller's one-step calls included); the order of the products within an output
// element is the same either way, so are the results.
inline double zigzag_bytes() { return 0.75 * l2_cache_bytes(); }  // 384 KB of a 512 KB L2
inline bool& thread_sweep_parity() {
    static thread_local bool parity = false;
    return parity;
}

// Rows per thread from which a step splits by batch rows (no barrier) rather than by units.
// Each thread then streams all of W_hh from its cache for its rows instead of half of it for
// all rows, and the per-step barrier goes. That barrier costs more than its own latency on a
// shared machine: now and then one core runs slower than the other for seconds at a time
// (another tenant, the host), and a step split by units waits for it at every step, while a
// batch split lets each thread run its own sequences through. At 4 rows per thread (B=8) the
// batch split gains only 2-3%, at 2 (B=4) it loses a third: the short tiles run below speed.
// A sequence of many steps splits by batch rows from kBatchSplitRows rows per thread while
// W_hh is at most kBatchSplitWeightBytes, read from L3 each step where it does not fit in L2.
// AMD EPYC (Zen 3, 512 KB L2, 32 MB L3), two threads, one process, rounds alternated, time of
// the batch split relative to the split by units (runs minutes apart): LSTM H=256 (1 MB) T=150
// forward B=16 0.91/0.74/0.91, B=24 0.74/0.75/0.96, training B=16 0.96; LSTM H=512 (4 MB) T=25
// forward B=16 0.97/0.94/0.98/1.05, B=32 0.93/0.90, B=64 1.00, B=128 1.00, training B=16/32/64
// 1.00/1.00/0.97; GRU H=512 (3 MB) T=50 forward B=16 0.98 (reset-before 0.96), B=32 1.03/0.87
// (1.09/0.86), training B=16/32 0.95/0.95; RNN H=1024 (4 MB) T=50 forward B=16/32 1.00/1.02,
// training B=16/64 0.99/0.98. (The unit split's times spread most: 18-27 ms for the same
// H=256 B=16 forward.) A one-step call reads its weights once, from memory: the batch split
// would read them once per thread, so it keeps the earlier rule, from twice as many rows
// per thread where W_hh does not fit in L2 and for W_hh up to 2 MB (GRU H=512 B=32, one step:
// batch split forward 1.04, training 0.92).
constexpr int64_t kBatchSplitRows = 8;
constexpr double kBatchSplitWeightBytes = 4.0 * 1024 * 1024;
constexpr int64_t kOneStepBatchSplitRowsL3 = 2 * kBatchSplitRows;
constexpr double kOneStepBatchSplitWeightBytes = 2.0 * 1024 * 1024;

// How one sequence's time loop is spread over threads.
struct TeamPlan {
    int threads = 1;
    bool batch_split = false;
};

// Weights one call streams through: W_ih and W_hh.
template <typename T>
double call_weight_bytes(int64_t G, int64_t I, int64_t H) {
    return static_cast<double>(G) * H * (I + H) * sizeof(T);
}

template <typename T>
TeamPlan plan_team(int64_t B, int64_t G, int64_t I, int64_t H, int64_t panels, int64_t steps) {
    TeamPlan plan;
    const double step_work = static_cast<double>(B) * G * H * H;
    const double weight_bytes = static_cast<double>(G) * H * H * sizeof(T);
    plan.threads = std::max(threads_for_work(step_work), threads_for_cache(call_weight_bytes<T>(G, I, H)));
    if (plan.threads <= 1) return plan;
    const bool one_step = steps <= 1;
    const int64_t min_rows = one_step && weight_bytes > l2_cache_bytes() ? kOneStepBatchSplitRowsL3
                                                                         : kBatchSplitRows;
    const double max_bytes = one_step ? kOneStepBatchSplitWeightBytes : kBatchSplitWeightBytes;
    plan.batch_split = B >= min_rows * plan.threads && weight_bytes <= max_bytes;
    if (!plan.batch_split) plan.threads = static_cast<int>(std::min<int64_t>(plan.threads, panels));
    return plan;
}

// Split by batch rows: the rows [first, end) of the sorted batch that thread tid of `team` owns.
// Each thread owns one contiguous range for the whole sequence (so that its rows of h, c and y,
// and its steps' projected rows, stay in its own cache). Rows are sorted longest first, so a
// thread's running rows at every step are a prefix of its range, and the ranges are cut where
// the threads' valid (t, b) rows, the work they do, come out most even: the cut between
// threads t - 1 and t where the running sum of lengths comes closest to t / team of the total
// (every sequence full length: counts as even as they go). With no barrier between the
// threads' steps, a thread with fewer but longer sequences simply runs on after the others.
// Against every team-th row (what ragged lengths and reversed calls got before; time with
// ranges relative to it, two threads, rounds alternated, cores near / far, see slice_for):
// lengths uniform in [T/2, T], LSTM H=256 T=150 B=16/32 forward 0.93/0.96 and 0.74/0.77, B=32
// training 0.99 / 0.88; lengths uniform in [1, T], B=32 forward 0.91 / 0.82, B=64 training
// 0.96 / 0.88; LSTM H=512 T=25 B=64 forward 0.98 / 0.92, training 1.00 / 0.92; GRU H=512 T=50
// B=32 forward 0.99 / 0.95, training 0.99 / 0.92; RNN H=1024 T=50 B=32 forward 0.97 / 0.91;
// every sequence full length but reversed, LSTM H=256 T=150 B=32 forward 0.92 / 0.77.
inline void row_range(const Schedule& sched, int tid, int team, int64_t& first, int64_t& end) {
    const int64_t B = sched.seq.B, total = sched.packed;
    const auto cut = [&](int t) {
        if (t <= 0) return int64_t(0);
        if (t >= team) return B;
        // |team * P[j] - t * total|, smallest over j (the first on ties); P[j] = sum of len[< j]
        const auto gap = [&](int64_t sum) {
            const int64_t d = team * sum - t * total;
            return d < 0 ? -d : d;
        };
        int64_t j = 0, sum = 0, best = 0, best_gap = gap(0);
        while (j < B) {
            sum += sched.len[j++];
            const int64_t g = gap(sum);
            if (g < best_gap) best = j, best_gap = g;
            if (team * sum >= t * total) break;  // past the target: no later j comes closer
        }
        return best;
    };
    first = cut(tid);
    end = cut(tid + 1);
}

// The slice of thread tid in a team of `team` threads (the team OpenMP actually started, which
// can be smaller than the plan: OMP_THREAD_LIMIT, or a call from inside another parallel region).
// Split by batch rows: all units of the rows of row_range. Split by units: a range of panels.
//
// Why ranges, not every team-th row: interleaved 1 KB rows (h, c, y at H=256) put lines the
// other core is writing next to each thread's own: the hardware prefetchers fetch them, and
// the owner has to take them back. Where the two vCPUs sit far apart (core-to-core latency
// ~90-160 ns instead of ~27 ns, which this host's placement switches between for tens of
// seconds at a time), that made an LSTM H=256 T=150 B=32 forward 30.4 ms instead of 25.6.
// With ranges it takes 0.87 times as long as with interleaved rows in far phases and 0.97
// times in near ones (two threads, one process, rounds alternated, split by the latency
// measured before each round: 446 and 825 rounds). Training, whose backward takes the same
// ranges (forward + backward, time with ranges relative to interleaved rows, far / near
// phases): LSTM H=256 T=150 B=16/32/64 0.93/0.91/0.90 and 0.98/0.99/0.98; LSTM H=512 T=25
// B=32/64 0.96/0.96 and 0.99/0.99; GRU H=512 T=50 B=32 0.94 (far); RNN H=1024 T=50 B=32/128
// 0.98/0.99 and 0.99/1.00.
inline Slice slice_for(const TeamPlan& plan, int tid, int team, int64_t panels, int64_t nr,
                       int64_t H, const Schedule& sched) {
    Slice sl;
    if (plan.batch_split) {
        row_range(sched, tid, team, sl.row_first, sl.row_end);
        sl.p_begin = 0;
        sl.p_end = panels;
    } else {
        sl.p_begin = panels * tid / team;
        sl.p_end = panels * (tid + 1) / team;
    }
    sl.u_begin = std::min(sl.p_begin * nr, H);
    sl.u_end = std::min(sl.p_end * nr, H);
    return sl;
}

// Runs body(tid, team, barrier) on up to plan.threads threads (inline when one); team is the
// number OpenMP actually started, which every partition must use. body must not throw: a
// thread that left the loop early would leave the others waiting at a barrier. A body that
// never calls barrier (no_barrier: one step of one phase, or a batch split) runs its
// plan.threads parts as independent shares instead (run_shares: helper threads, ~1 us sooner
// for a streaming step than an OpenMP region), with team = plan.threads.
template <typename Body>
void run_team(const TeamPlan& plan, bool no_barrier, Body&& body) {
    if (no_barrier && plan.threads > 1) {
        run_shares(plan.threads, [&](int share) { body(share, plan.threads, [] {}); });
        return;
    }
    // TeamBarrier (parallel.h), not OpenMP's. Two threads split by units, time per step with it
    // relative to OpenMP's barrier (median over alternated rounds, cores near / far, see
    // slice_for): LSTM B=1 H=256 0.971 / 0.967 (~9 us a step); reset-before GRU B=1 H=512
    // (two barriers a step) 0.973 / 0.975; RNN B=1 H=512 0.981 / 0.979; LSTM B=4 H=256
    // 0.987 / 0.979; LSTM B=1 H=512 0.994 / 0.986; reset-after GRU B=1 and reset-before B=2,
    // H=1024 (100-150 us a step) 0.99-1.00.
    const TeamBarrier barrier(plan.threads);
    parallel_region(plan.threads, [&](int tid, int team) {
        body(tid, team, [&barrier, tid, team] { barrier.wait(tid, team); });
    });
}

// Copies own units of own rows: dst row dst_row(j) = src row j.
template <typename T, typename DstRow>
void copy_slice_rows(const Slice& sl, int64_t Bs, const T* src, int64_t H, DstRow dst_row) {
    const int64_t n = sl.u_end - sl.u_begin;
    for (int64_t j = sl.row_first; j < sl.row_limit(Bs); ++j) {
        T* d = dst_row(j);
        if (d) std::memcpy(d + sl.u_begin, src + j * H + sl.u_begin, n * sizeof(T));
    }
}

template <typename Cell, typename T>
void forward_sequence(const Cell& cell, T* y, T* h_n, T* c_n, const T* x, const Weights<T>& w,
                      const T* h0, const T* c0, const T* mask, T* workspace, const Sequence& seq,
                      const PackedLayer<T>* prepared) {
    constexpr int G = Cell::G;
    const int64_t B = seq.B, H = seq.H, I = seq.I, GH = G * H, ld_y = seq.ld_out();
    // A handle packed for another ISA (the path was switched since) is repacked for this call.
    if (prepared && !prepared->current()) prepared = nullptr;
    if (B == 0) return;
    const Schedule sched(seq);
    const int64_t N = sched.packed;
    const bool training = workspace != nullptr;
    Planes<T> planes;
    if (training) planes = carve_workspace(workspace, seq, G, Cell::extra_planes);

    // 1. The input projection xw = x W_ih^T as big GEMMs over the valid rows, before the steps
    //    that read them. Training projects into the workspace (backward needs it), every row at
    //    once unless each thread projects its own rows (below); inference projects blocks of
    //    steps into a bounded buffer, each block just before its steps, so memory stays small
    //    whatever T*B is. In packed order a block of steps is a contiguous range of rows. The
    //    folded bias is added in each step's pointwise kernel, where xw is read anyway.
    Buffer<T> bias_local(prepared ? 0 : GH);
    if (!prepared) cell.fold_bias(bias_local.get(), w, H);
    const T* bias = prepared ? prepared->bias.get() : bias_local.get();
    // Packing a matrix costs two passes over it and pays back over many rows or steps; a call
    // with only a few (a single step of a small batch) reads the weights in place instead.
    const bool in_place = !prepared && (N <= kInPlaceRows ||
                                        (sched.steps == 1 && N <= kInPlaceSingleStepRows));
    PackedB<T> ih_local;
    if (!prepared) {
        if (in_place)
            view_b(ih_local, w.w_ih, I, I, GH);
        else
            pack_b(ih_local, Trans::yes, w.w_ih, I, I, GH);
    }
    const PackedB<T>& ih = prepared ? prepared->ih : ih_local;
    // 2. The time loop, one parallel region per block of steps (one for the whole sequence
    //    when training projects all rows at once, or when one block holds every step).
    PackedB<T> local[G];
    if (!prepared)
        for (int g = 0; g < G; ++g) {
            if (in_place)
                view_b(local[g], w.w_hh + g * H * H, H, H, H);
            else
                pack_b(local[g], Trans::yes, w.w_hh + g * H * H, H, H, H);
        }
    const PackedB<T>* packed = prepared ? prepared->hh : local;
    const isa::Kernels<T>& k = *packed[0].kernels;
    Buffer<T> h_buf[2] = {Buffer<T>(B * H), Buffer<T>(B * H)};
    Buffer<T> h_rec_buf[2] = {Buffer<T>(mask ? B * H : 0), Buffer<T>(mask ? B * H : 0)};
    Buffer<T> c(Cell::has_cell_state ? B * H : 0), mask_sorted(mask ? B * H : 0), gates(B * GH),
        rh(B * H);
    gather_state(h_buf[0].get(), h0, sched.order, H);
    if (Cell::has_cell_state) gather_state(c.get(), c0, sched.order, H);
    if (mask) {
        gather_state(mask_sorted.get(), mask, sched.order, H);
        for (int64_t i = 0; i < B * H; ++i) h_rec_buf[0].get()[i] = h_buf[0].get()[i] * mask_sorted.get()[i];
    }
    if (N != seq.rows())
        for (int64_t r = 0; r < seq.rows(); ++r) std::fill(y + r * ld_y, y + r * ld_y + H, T(0));
    // Entries of length 0 keep their initial state; the others are written at their last step.
    for (int64_t j = 0; j < B; ++j)
        if (sched.len[j] == 0) {
            std::copy(h_buf[0].get() + j * H, h_buf[0].get() + (j + 1) * H, h_n + sched.order[j] * H);
            if (Cell::has_cell_state)
                std::copy(c.get() + j * H, c.get() + (j + 1) * H, c_n + sched.order[j] * H);
        }

    const TeamPlan plan = plan_team<T>(B, G, I, H, packed[0].panels, sched.steps);
    const int64_t a_pack_size = checked_mul((B + k.mr - 1) / k.mr * k.mr, H);
    Buffer<T> a_packs(checked_mul(plan.threads, a_pack_size));
    // Split by batch rows, each thread owns a range of rows (row_range) and projects its own
    // rows of a block of steps at the start of the block: it copies its running rows of the
    // block's steps from x into one dense matrix and projects them as one GEMM into its own
    // part of the block buffer. It reads back only rows it wrote, from its own cache, and the
    // threads share nothing, so the whole sequence runs in one parallel region with no barrier
    // (a thread whose sequences are longer runs on alone at the end). Training writes the
    // activations to the workspace's rows in packed order (StepForward::act), where backward
    // reads them.
    const bool row_ranges = plan.batch_split;
    // Inference split by units: each thread projects the gate columns of its own units, which
    // are all its steps read, at the start of each block inside the loop's region (for a
    // streaming step, no second region and no extra barrier). Needs each gate's block of
    // W_ih^T to start on a panel boundary. Training keeps its one projection of all rows here
    // (by blocks it measured the same at LSTM H=512 B=64 and 1% slower at H=1024 B=16).
    const int64_t ih_nr = ih.kernels->nr;
    const bool own_cols_projection = !training && !plan.batch_split && plan.threads > 1 &&
                                     H % ih_nr == 0;
    const int64_t block_steps =
        row_ranges ? own_rows_block_steps(B, GH, sizeof(T), plan.threads)
        : own_cols_projection ? projection_block_steps(B, GH, sizeof(T))
        : training ? std::max<int64_t>(sched.steps, 1)
                   : projection_block_steps(B, GH, sizeof(T));
    // With row ranges a thread's part of the block buffers starts at part_steps rows for each
    // row before its range (threads can be in different blocks at the same time).
    const int64_t part_steps = std::min(block_steps, sched.steps);
    const int64_t max_block_rows =
        row_ranges ? checked_mul(part_steps, B) : std::min(N, checked_mul(block_steps, B));
    // Training without row ranges projects straight into the workspace, and the activations
    // overwrite the projection there.
    const bool xw_in_workspace = training && !row_ranges;
    Buffer<T> xw_storage(xw_in_workspace ? 0 : checked_mul(max_block_rows, GH));
    Buffer<T> x_block(sched.identity || row_ranges ? 0 : checked_mul(max_block_rows, I));
    Buffer<T> x_ranges(row_ranges ? checked_mul(max_block_rows, I) : 0);
    // The rows of x for steps [s0, s1), in packed order.
    auto block_input = [&](int64_t s0, int64_t s1) {
        const int64_t r0 = sched.offset[s0], rows = sched.offset[s1] - r0;
        if (sched.identity) return x + r0 * I;
        gather_rows(x_block.get(), x, sched.source, I, r0, rows);
        return static_cast<const T*>(x_block.get());
    };
    auto project = [&](int64_t s0, int64_t s1, T* out) {
        const int64_t rows = sched.offset[s1] - sched.offset[s0];
        // As many threads as keep W_ih^T cache-resident across calls (streaming).
        gemm_prepacked<T>(Trans::no, rows, block_input(s0, s1), I, ih, T(1), T(0), out, GH,
                          threads_for_cache(call_weight_bytes<T>(G, I, H)));
    };

    // Scratch for the threads' serial projection GEMMs (none when every block is a few rows).
    const int64_t projection_scratch_size =
        row_ranges || (own_cols_projection && max_block_rows > kFusedProjectionRows)
            ? gemm_serial_scratch_elements(ih) : 0;
    Buffer<T> projection_scratch(checked_mul(plan.threads, projection_scratch_size));
    // When y's rows are in packed order with row stride H (every sequence full length, not
    // reversed, one direction), a step's rows of y are one dense (B, H) block: h_t is written
    // straight into it and read back from there as the next step's h_{t-1}, with no copy.
    const bool h_in_y = sched.identity && ld_y == H;
    const int phases = cell.forward_phases();
    // The block the team runs now, where it runs a parallel region per block (not with row
    // ranges): its buffer of projected rows, its rows of x when the team projects them, and
    // the claim counters of its steps when threads take over each other's units.
    T* xw = xw_storage.get();
    const T* x_rows = nullptr;
    bool stealing = false;
    std::unique_ptr<ClaimCounter[]> claims;
    // One step of several phases split by units (the reset-before GRU's one-step call) runs
    // each thread's part of each phase as a share of a job of rounds (run_phases: helpers where
    // they are free, whose hand-off costs ~1.5 us less than an OpenMP region's): body(...,
    // only = p) runs phase p of the step only. The zig-zag direction each part chose in phase 0
    // is kept for its later phases, which another thread may run.
    const bool by_phases = sched.steps == 1 && !plan.batch_split && plan.threads > 1 && phases > 1;
    std::unique_ptr<bool[]> part_reverse(by_phases ? new bool[plan.threads]() : nullptr);
    // Steps [s0, s0 + block_steps) of thread tid.
    auto body = [&](int64_t s0, int tid, int team, auto barrier, int only) {
        const int64_t s1 = std::min(sched.steps, s0 + block_steps);
        const Slice sl = slice_for(plan, tid, team, packed[0].panels, k.nr, H, sched);
        const int64_t block_rows = sched.offset[s1] - sched.offset[s0];
        const bool fused_projection = own_cols_projection && block_rows <= kFusedProjectionRows;
        // Zig-zag (see zigzag_bytes): the bytes of one sweep of this thread. A one-step block
        // sweeps its W_ih^T columns too: reversed, it runs the step's recurrent GEMM first.
        const bool one_step = fused_projection && s1 - s0 == 1;
        const double sweep_bytes = static_cast<double>(G) * (sl.u_end - sl.u_begin) *
                                   (H + (one_step ? I : 0)) * sizeof(T);
        const bool zigzag = sweep_bytes > zigzag_bytes();
        bool& parity = thread_sweep_parity();
        const bool defer_projection = one_step && zigzag && parity && only <= 0;
        auto project_own = [&](bool reverse) {  // this thread's columns of the block's xw
            PanelRuns own;   // this thread's units in each gate's block of columns
            own.first = sl.u_begin / ih_nr;
            own.length = (sl.u_end + ih_nr - 1) / ih_nr - own.first;
            own.stride = H / ih_nr;
            own.count = G;
            if (fused_projection) {  // a few rows: A not packed, the same depth blocks
                for (int q = 0; q < G; ++q) {
                    const int g = reverse ? G - 1 - q : q;
                    gemm_packed<T>(block_rows, x_rows, I, ih, own.first + g * own.stride,
                                   own.first + g * own.stride + own.length, T(0), xw, GH, reverse,
                                   0, true);
                }
            } else {
                gemm_prepacked<T>(Trans::no, block_rows, x_rows, I, ih, T(1), T(0), xw, GH, 1,
                                  projection_scratch.get() + tid * projection_scratch_size, own);
            }
        };
        if (own_cols_projection && !defer_projection && only <= 0) project_own(false);
        // With row ranges: this thread's rows of the block's xw, its running rows of each
        // step in turn (own_block in all), in its own part of the buffer.
        T* const xw_own = row_ranges ? xw + part_steps * sl.row_first * GH : xw;
        int64_t own_block = 0;
        if (row_ranges) {
            for (int64_t s = s0; s < s1; ++s) own_block += sl.rows(sched.active[s]);
            // Every row of every step (a team of one, full lengths) is one dense matrix in x.
            const T* x_own = x + sched.offset[s0] * I;
            if (!(sched.identity && own_block == block_rows)) {
                T* const dense = x_ranges.get() + part_steps * sl.row_first * I;
                T* d = dense;
                for (int64_t s = s0; s < s1; ++s) {
                    const int64_t n = sl.rows(sched.active[s]);
                    const int64_t* src = sched.source.data() + sched.offset[s] + sl.row_first;
                    for (int64_t i = 0; i < n; ++i, d += I)
                        std::memcpy(d, x + src[i] * I, I * sizeof(T));
                }
                x_own = dense;
            }
            if (own_block > 0)
                gemm_prepacked<T>(Trans::no, own_block, x_own, I, ih, T(1), T(0), xw_own, GH, 1,
                                  projection_scratch.get() + tid * projection_scratch_size, {},
                                  block_rows);
        }
        int64_t own_done = 0;  // rows of xw_own that earlier steps of the block read
        for (int64_t s = s0; s < s1; ++s) {
            const int64_t Bs = sched.active[s], p0 = sched.offset[s];
            const int cur = s & 1, nxt = cur ^ 1;
            StepForward<T> a{};
            a.Bs = Bs;
            a.H = H;
            a.xw = row_ranges ? xw_own + own_done * GH : xw + (p0 - sched.offset[s0]) * GH;
            if (row_ranges) own_done += sl.rows(Bs);
            a.xw_first = row_ranges ? sl.row_first : 0;
            a.act = !training ? nullptr : xw_in_workspace ? a.xw : planes.act + p0 * GH;
            a.bias = bias;
            a.h = h_in_y && s > 0 ? y + sched.offset[s - 1] * H : h_buf[cur].get();
            a.h_rec = mask ? h_rec_buf[cur].get() : a.h;
            a.h_out = h_in_y ? y + p0 * H : h_buf[nxt].get();
            a.h_rec_out = mask ? h_rec_buf[nxt].get() : nullptr;
            a.mask = mask ? mask_sorted.get() : nullptr;
            a.c = c.get();
            a.gates = gates.get();
            a.rh = rh.get();
            for (int e = 0; e < Cell::extra_planes; ++e)
                a.save[e] = training ? planes.extra[e] + p0 * H : nullptr;
            a.training = training;
            a.w = &w;
            a.packed = packed;
            a.k = &k;
            a.a_pack = a_packs.get() + tid * a_pack_size;
            a.gemm0_done = false;
            Slice ssl = sl;
            if (only > 0)
                ssl.reverse = part_reverse[tid];
            else if (zigzag)
                ssl.reverse = parity, parity = !parity;
            if (only == 0) part_reverse[tid] = ssl.reverse;
            if (defer_projection && s == s0) {  // reversed one-step sweep: W_hh, then W_ih^T
                cell.forward_gemm0(a, ssl);
                project_own(true);
                a.gemm0_done = true;
            }
            if (training && only <= 0)
                copy_slice_rows(sl, Bs, a.h, H, [&](int64_t j) { return planes.h_prev + (p0 + j) * H; });
            // Copies the finished units of u out to y, h_n and c_n.
            auto publish = [&](const Slice& u) {
                if (!h_in_y)
                    copy_slice_rows(u, Bs, a.h_out, H, [&](int64_t j) { return y + sched.source[p0 + j] * ld_y; });
                copy_slice_rows(u, Bs, a.h_out, H, [&](int64_t j) {
                    return sched.len[j] == s + 1 ? h_n + sched.order[j] * H : nullptr;
                });
                if (Cell::has_cell_state)
                    copy_slice_rows(u, Bs, a.c, H, [&](int64_t j) {
                        return sched.len[j] == s + 1 ? c_n + sched.order[j] * H : nullptr;
                    });
            };
            // A barrier after each phase: the next phase (or step) reads every thread's units
            // of h. After the region's last phase each thread copies out only the units it
            // computed (its own, or with stealing each chunk it took, as it finishes it), and
            // the end of the region waits for every thread anyway (one barrier less, ~0.6 us,
            // for each one-step call). Stealing needs every thread's projection of the block
            // done, so it starts at the block's second step.
            const bool steal = stealing && team > 1 && s > s0;
            for (int phase = 0; phase < phases; ++phase) {
                if (only >= 0 && phase != only) continue;
                if (!steal) {
                    cell.forward_phase(phase, a, ssl);
                } else {
                    // Every thread sweeps in the step's direction (a zig-zag by step parity,
                    // the same for the whole team), so that a chunk index means the same
                    // panels to its owner and to a thief.
                    bool a_packed = false;
                    a.a_packed = &a_packed;
                    const bool dir = (s & 1) != 0;
                    const int first = steal_others_first() ? 1 : 0;
                    for (int v = 0; v < team; ++v) {
                        const int owner = (tid + first + v) % team;
                        const Chunks chunks(slice_for(plan, owner, team, packed[0].panels, k.nr, H, sched));
                        std::atomic<int64_t>& next =
                            claims[((s - s0) * phases + phase) * plan.threads + owner].next;
                        for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks.count;) {
                            const Slice csl = chunks.at(c, dir, k.nr, H);
                            cell.forward_phase(phase, a, csl);
                            if (phase == phases - 1) publish(csl);
                        }
                    }
                    a.a_packed = nullptr;
                }
                if (!plan.batch_split && !(s == s1 - 1 && phase == phases - 1)) barrier();
            }
            if (!steal && (only < 0 || only == phases - 1)) publish(sl);
        }
    };
    if (row_ranges) {
        run_team(plan, sched.steps == 1, [&](int tid, int team, auto barrier) {
            for (int64_t s0 = 0; s0 < sched.steps; s0 += block_steps) body(s0, tid, team, barrier, -1);
        });
        return;
    }
    for (int64_t s0 = 0; s0 < sched.steps; s0 += block_steps) {
        const int64_t s1 = std::min(sched.steps, s0 + block_steps);
        xw = xw_in_workspace ? planes.act + sched.offset[s0] * GH : xw_storage.get();
        if (own_cols_projection)
            x_rows = block_input(s0, s1);
        else
            project(s0, s1, xw);
        // Split by units, a thread that has finished its own units of a phase takes the others'
        // not yet started (see kStealChunks): one claim counter per step, phase and owner.
        stealing = plan.threads > 1 && s1 - s0 > 1;
        const int64_t claim_count = stealing ? (s1 - s0) * phases * plan.threads : 0;
        claims.reset(claim_count ? new ClaimCounter[claim_count] : nullptr);
        // One step of one phase calls no barrier (see below).
        const bool no_barrier = sched.steps == 1 && phases == 1;
        if (by_phases)
            run_phases(plan.threads, phases,
                       [&](int phase, int part) { body(s0, part, plan.threads, [] {}, phase); });
        else
            run_team(plan, no_barrier,
                     [&](int tid, int team, auto barrier) { body(s0, tid, team, barrier, -1); });
    }
}

template <typename Cell, typename T>
void backward_sequence(const Cell& cell, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih,
                       T* db_hh, T* dh_seq, const T* dy, const T* dh_n, const T* dc_n,
                       const T* x, const Weights<T>& w, const T* mask, const T* workspace,
                       const Sequence& seq) {
    constexpr int G = Cell::G;
    const int64_t B = seq.B, H = seq.H, I = seq.I, GH = G * H, ld_y = seq.ld_out();
    const Schedule sched(seq);
    const int64_t N = sched.packed;
    const Planes<T> planes =
        carve_workspace(const_cast<T*>(workspace), seq, G, Cell::extra_planes);

    // 1. The sequential part: per step the pointwise gate gradients and dh_{t-1} = dG W_hh.
    // A single step of a few rows reads W_hh in place (packing would cost two passes over it).
    const bool hh_in_place = sched.steps == 1 && N <= kStridedBRows;
    PackedB<T> packed[G];
    for (int g = 0; g < G; ++g) {
        if (hh_in_place)
            view_b_strided(packed[g], w.w_hh + g * H * H, H, H, H);
        else
            pack_b(packed[g], Trans::no, w.w_hh + g * H * H, H, H, H);
    }
    const isa::Kernels<T>& k = *packed[0].kernels;
    Buffer<T> dg(checked_mul(N, GH)), dg_extra(cell.uses_dg_extra() ? checked_mul(N, H) : 0);
    Buffer<T> dh(B * H), dc(Cell::has_cell_state ? B * H : 0), mask_sorted(mask ? B * H : 0),
        dh_rec(B * H), direct(B * H);
    gather_state(dh.get(), dh_n, sched.order, H);
    if (Cell::has_cell_state) gather_state(dc.get(), dc_n, sched.order, H);
    if (mask) gather_state(mask_sorted.get(), mask, sched.order, H);
    if (dh_seq && N != seq.rows())
        for (int64_t r = 0; r < seq.rows(); ++r) std::fill(dh_seq + r * ld_y, dh_seq + r * ld_y + H, T(0));

    const TeamPlan plan = plan_team<T>(B, G, I, H, packed[0].panels, sched.steps);
    const int64_t a_pack_size = checked_mul((B + k.mr - 1) / k.mr * k.mr, H);
    Buffer<T> a_packs(checked_mul(plan.threads, a_pack_size));
    // The bias gradients, column sums of dG (and of dg_extra) over all rows, are added up
    // step by step while each thread's rows and columns of them are still in its cache: one
    // partial sum per thread, added together after the loop. Split by units, a thread owns
    // whole columns and adds every row of them in order, as one thread alone would. Split by
    // batch rows, partial sums over each thread's rows would round differently from that, so
    // after the loop each thread adds up the columns of the units it would own split by units,
    // over all rows in that same order: the results do not depend on the split or the thread
    // count (one more pass over dG, which the weight gradients read next anyway).
    const int64_t sum_cols = GH + (cell.uses_dg_extra() ? H : 0);
    Buffer<T> db_parts(checked_mul(plan.threads, sum_cols));
    std::fill(db_parts.get(), db_parts.get() + plan.threads * sum_cols, T(0));
    run_team(plan, false, [&](int tid, int team, auto barrier) {
        // Split by batch rows, each thread owns the range of rows it owns in forward.
        const Slice sl = slice_for(plan, tid, team, packed[0].panels, k.nr, H, sched);
        const int64_t n = sl.u_end - sl.u_begin;
        T* db_part = db_parts.get() + tid * sum_cols;
        for (int64_t s = sched.steps - 1; s >= 0; --s) {
            const int64_t Bs = sched.active[s], p0 = sched.offset[s];
            for (int64_t j = sl.row_first; j < sl.row_limit(Bs); ++j) {
                T* d = dh.get() + j * H + sl.u_begin;
                if (dy) {
                    const T* src = dy + sched.source[p0 + j] * ld_y + sl.u_begin;
                    for (int64_t u = 0; u < n; ++u) d[u] += src[u];
                }
                if (dh_seq) std::memcpy(dh_seq + sched.source[p0 + j] * ld_y + sl.u_begin, d, n * sizeof(T));
            }
            StepBackward<T> a{};
            a.Bs = Bs;
            a.H = H;
            a.act = planes.act + p0 * GH;
            a.h_prev = planes.h_prev + p0 * H;
            a.mask = mask ? mask_sorted.get() : nullptr;
            for (int e = 0; e < Cell::extra_planes; ++e) a.saved[e] = planes.extra[e] + p0 * H;
            a.dh = dh.get();
            a.dc = dc.get();
            a.dg = dg.get() + p0 * GH;
            a.dg_extra = cell.uses_dg_extra() ? dg_extra.get() + p0 * H : nullptr;
            a.dh_rec = dh_rec.get();
            a.direct = direct.get();
            a.packed = packed;
            a.k = &k;
            a.a_pack = a_packs.get() + tid * a_pack_size;
            // Phases are separated by barriers; the last (the dh GEMM) only reads rows of dG that
            // every thread finished before the barrier, so steps need none between them.
            for (int phase = 0; phase < cell.backward_phases(); ++phase) {
                if (phase > 0 && !plan.batch_split) barrier();
                cell.backward_phase(phase, a, sl);
            }
            if (plan.batch_split) continue;
            add_slice_rows(db_part, a.dg, GH, sl, Bs, G, H);
            if (a.dg_extra) add_slice_rows(db_part + GH, a.dg_extra, H, sl, Bs, 1, H);
        }
        if (!plan.batch_split) return;
        barrier();
        const TeamPlan by_units{team, false};
        const Slice own = slice_for(by_units, tid, team, packed[0].panels, k.nr, H, sched);
        for (int64_t s = sched.steps - 1; s >= 0; --s) {
            const int64_t Bs = sched.active[s], p0 = sched.offset[s];
            add_slice_rows(db_part, dg.get() + p0 * GH, GH, own, Bs, G, H);
            if (cell.uses_dg_extra())
                add_slice_rows(db_part + GH, dg_extra.get() + p0 * H, H, own, Bs, 1, H);
        }
    });
    scatter_state(dh0, dh.get(), sched.order, H);
    if (Cell::has_cell_state) scatter_state(dc0, dc.get(), sched.order, H);

    // 2. Everything else as big GEMMs / reductions over the N valid rows.
    Buffer<T> x_packed, dx_packed;
    const T* xp = packed_view(x_packed, x, sched, I);
    gemm_tn<T>(GH, I, N, dg.get(), GH, xp, I, T(0), dw_ih, I);          // dW_ih = dG^T X
    // A null dx skips dX = dG W_ih (a first layer, whose input is data): a quarter of the
    // backward pass's multiply-adds when I = H.
    if (dx && sched.identity) {
        gemm_nn<T>(N, I, GH, dg.get(), GH, w.w_ih, I, seq.accumulate_dx ? T(1) : T(0), dx, I);  // dX = dG W_ih
    } else if (dx) {
        dx_packed.reset(checked_mul(N, I));
        gemm_nn<T>(N, I, GH, dg.get(), GH, w.w_ih, I, T(0), dx_packed.get(), I);
        scatter_rows(dx, seq.rows(), dx_packed.get(), sched.source, I, seq.accumulate_dx);
    }
    std::vector<T> db(sum_cols, T(0));
    for (int t = 0; t < plan.threads; ++t)
        for (int64_t c = 0; c < sum_cols; ++c) db[c] += db_parts.get()[t * sum_cols + c];
    if (db_ih) std::copy(db.begin(), db.begin() + GH, db_ih);

    Buffer<T> h_rec_storage;
    const T* h_rec = planes.h_prev;
    if (mask) {
        h_rec_storage.reset(checked_mul(N, H));
        for (int64_t s = 0; s < sched.steps; ++s)
            for (int64_t i = 0; i < sched.active[s] * H; ++i) {
                const int64_t at = sched.offset[s] * H + i;
                h_rec_storage.get()[at] = planes.h_prev[at] * mask_sorted.get()[i];
            }
        h_rec = h_rec_storage.get();
    }
    HiddenGrads<T> hg{};
    hg.N = N;
    hg.H = H;
    hg.dw_hh = dw_hh;
    hg.db_hh = db_hh;
    hg.db_ih = db.data();
    hg.db_extra = cell.uses_dg_extra() ? db.data() + GH : nullptr;
    hg.dg = dg.get();
    hg.dg_extra = dg_extra.get();
    hg.h_rec = h_rec;
    for (int e = 0; e < Cell::extra_planes; ++e) hg.saved[e] = planes.extra[e];
    cell.hidden_weight_grads(hg);
}

// A row of a cell's pointwise kernel: own units of row j of a forward step.
template <typename T>
isa::Row<T> forward_row(const StepForward<T>& a, const Slice& sl, int64_t j) {
    const int64_t H = a.H, u = sl.u_begin;
    isa::Row<T> r;
    r.n = sl.u_end - sl.u_begin;
    r.H = H;
    r.training = a.training;
    r.h_prev = a.h + j * H + u;
    r.h_rec = a.h_rec + j * H + u;
    r.mask = a.mask ? a.mask + j * H + u : nullptr;
    r.h_out = a.h_out + j * H + u;
    r.h_rec_out = a.h_rec_out ? a.h_rec_out + j * H + u : nullptr;
    r.c = a.c ? a.c + j * H + u : nullptr;
    r.save0 = a.save[0] ? a.save[0] + j * H + u : nullptr;
    r.save1 = a.save[1] ? a.save[1] + j * H + u : nullptr;
    r.rh = a.rh + j * H + u;
    return r;
}

template <typename T>
isa::Row<T> backward_row(const StepBackward<T>& a, const Slice& sl, int64_t j) {
    const int64_t H = a.H, u = sl.u_begin;
    isa::Row<T> r;
    r.n = sl.u_end - sl.u_begin;
    r.H = H;
    r.h_prev = a.h_prev + j * H + u;
    r.mask = a.mask ? a.mask + j * H + u : nullptr;
    r.saved0 = a.saved[0] ? a.saved[0] + j * H + u : nullptr;
    r.saved1 = a.saved[1] ? a.saved[1] + j * H + u : nullptr;
    r.dh = a.dh + j * H + u;
    r.dc = a.dc ? a.dc + j * H + u : nullptr;
    r.dg_extra = a.dg_extra ? a.dg_extra + j * H + u : nullptr;
    r.direct = a.direct + j * H + u;
    r.d_rh = a.dh_rec + j * H + u;
    return r;
}

// For each gate g in [g0, g1): C_g (+)= A_g . packed[g] over the slice, where A_g = A + g * a_gate
// and C_g = C + g * c_gate (a_gate/c_gate 0: the same A or C for every gate). With accumulate,
// the first gate adds to C too; otherwise it overwrites. sl.reverse visits the gates from the
// last (only where each gate has its own C: a shared C's sum keeps its order).
//
// From kPackRows rows of the slice on, A is first packed into `a_pack` (this thread's scratch,
// round_up(B, mr) * H elements) once per call when every gate shares it: the packed-A kernel
// then reads it for all of the thread's panels without an index register per row.
constexpr int64_t kPackRows = 8;

// A step's recurrent GEMM has each row tile fetch a slice of the next panel into L2 while it
// runs (gemm_packed_a's fetch_next) only when the GEMM's panels (every thread's) exceed this
// many bytes. Below it they come from L3, where the hardware prefetchers keep up and the
// software fetches cost more than they save; above it part of them comes from memory, and
// the fetches pay. AMD EPYC (Zen 3, 512 KB L2, ~16 MB of L3 in use), forward, alternated
// rounds, time without the fetches relative to with them: LSTM H=256 (1 MB) two threads B=16
// 0.92-0.97, B=32 0.85-0.92, B=64 0.95-1.01, one thread B=16 0.81-0.94; LSTM H=512 (4 MB) two
// threads B=16/32/64/128 0.92/0.98/0.985/0.995, one thread B=16 0.90; GRU H=768 (7 MB)
// B=32/64 1.02/0.88; LSTM H=768 (9.4 MB) B=32/64 1.10/1.02; GRU H=1024 (12.6 MB) B=32
// 1.06; LSTM H=1024 (16.8 MB) B=16/32/64 1.05-1.10/1.07/1.08.
constexpr double kFetchNextBytes = 4.0 * 1024 * 1024;

template <typename T>
void gates_gemm(const Slice& sl, int64_t Bs, const T* A, int64_t lda, int64_t a_gate,
                const PackedB<T>* packed, int g0, int g1, T* C, int64_t ldc, int64_t c_gate,
                bool accumulate, T* a_pack, bool* a_packed = nullptr) {
    const int64_t M = sl.rows(Bs);
    if (M == 0) return;
    // Gates that add into one C from consecutive column blocks of A, against W_hh read in place
    // (consecutive row blocks of one matrix: a one-step backward's dh), are one product of
    // depth (g1 - g0) K: the small-M kernel then reads and writes C once, not once per gate.
    // Each element is then one sum over all those gates' rows in order rather than a sum per
    // gate added to C: other roundings, the same for every split of the rows. Two threads,
    // one-step training call (forward + backward), time relative to a product per gate,
    // cores near / far (alternated rounds): reset-after GRU B=32 I=H=512 (2 products instead
    // of 3) 0.984 / 0.976, reset-before 0.969 / 0.972; LSTM (1 instead of 4) B=32 H=512
    // 1.00 / 0.98, B=16 H=256 0.99 / 0.97.
    const PackedB<T>& first = packed[g0];
    if (c_gate == 0 && g1 - g0 > 1 && first.strided && a_gate == first.K) {
        bool consecutive = true;
        for (int g = g0 + 1; g < g1; ++g)
            consecutive = consecutive && packed[g].ld_strided == first.ld_strided &&
                          packed[g].N == first.N && packed[g].K == first.K &&
                          packed[g].strided == first.strided + (g - g0) * first.K * first.ld_strided;
        if (consecutive &&
            gemm_small_m_in_place(*first.kernels, M, A + g0 * a_gate + sl.row_first * lda, lda,
                                  first.strided, 1, first.ld_strided, (g1 - g0) * first.K, first.N,
                                  sl.p_begin, sl.p_end, accumulate ? T(1) : T(0),
                                  C + sl.row_first * ldc, ldc, Bs))
            return;
    }
    const bool pack = a_pack && M >= kPackRows && !packed[g0].direct && !packed[g0].strided;
    // Fetch each next panel ahead (see kFetchNextBytes) when the step's panels, all threads'
    // together, are too many to stay in L3 next to everything else.
    const bool fetch_next = pack && static_cast<double>((g1 - g0) * packed[g0].panels *
                                                        packed[g0].K * packed[g0].kernels->nr *
                                                        int64_t(sizeof(T))) > kFetchNextBytes;
    const bool reverse = sl.reverse && c_gate != 0;
    Slice gsl = sl;  // the panels' order within each gate follows the gates'
    gsl.reverse = reverse;
    for (int q = g0; q < g1; ++q) {
        const int g = reverse ? g0 + g1 - 1 - q : q;
        const T beta = (accumulate || (c_gate == 0 && g > g0)) ? T(1) : T(0);
        if (!pack) {
            slice_gemm(gsl, Bs, A + g * a_gate, lda, packed[g], beta, C + g * c_gate, ldc);
            continue;
        }
        if (a_gate != 0 || (q == g0 && !(a_packed && *a_packed))) {
            packed[g].kernels->pack_a(false, A + g * a_gate + sl.row_first * lda, lda,
                                      0, M, 0, packed[g].K, a_pack);
            if (a_packed && a_gate == 0) *a_packed = true;
        }
        // the panel multiplied next: the next gate's first (its last when reversed)
        const T* after = !fetch_next || q + 1 >= g1 ? nullptr
                         : reverse                  ? packed[g - 1].panel(sl.p_end - 1)
                                                    : packed[g + 1].panel(sl.p_begin);
        gemm_packed_a(M, a_pack, packed[g], sl.p_begin, sl.p_end, beta,
                      C + g * c_gate + sl.row_first * ldc, ldc, fetch_next, after,
                      reverse, Bs);
    }
}

// Calls f(row) for own rows of the running prefix, the row's gate-strided pointers set.
template <typename T, typename F>
void forward_rows(const StepForward<T>& a, const Slice& sl, int64_t G, F f) {
    for (int64_t j = sl.row_first; j < sl.row_limit(a.Bs); ++j) {
        isa::Row<T> r = forward_row(a, sl, j);
        r.xw = a.xw + (j - a.xw_first) * G * a.H + sl.u_begin;
        r.act_out = a.act ? a.act + j * G * a.H + sl.u_begin : nullptr;
        r.bias = a.bias + sl.u_begin;
        r.gates = a.gates + j * G * a.H + sl.u_begin;
        f(r, j);
    }
}
template <typename T, typename F>
void backward_rows(const StepBackward<T>& a, const Slice& sl, int64_t G, F f) {
    for (int64_t j = sl.row_first; j < sl.row_limit(a.Bs); ++j) {
        isa::Row<T> r = backward_row(a, sl, j);
        r.act = a.act + j * G * a.H + sl.u_begin;
        r.dg = a.dg + j * G * a.H + sl.u_begin;
        f(r, j);
    }
}

// dh_{t-1} over the slice = m (.) dh_rec (+ direct, the GRU's unmasked z (.) dh_t path).
template <typename T>
void finish_dh(const StepBackward<T>& a, const Slice& sl, bool with_direct) {
    const int64_t H = a.H;
    for (int64_t j = sl.row_first; j < sl.row_limit(a.Bs); ++j)
        for (int64_t u = sl.u_begin; u < sl.u_end; ++u) {
            const int64_t i = j * H + u;
            T v = a.mask ? a.dh_rec[i] * a.mask[i] : a.dh_rec[i];
            a.dh[i] = with_direct ? v + a.direct[i] : v;
        }
}

}  // namespace gatedrnn::detail
