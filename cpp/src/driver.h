// Internal: the sequence driver shared by every cell (level 1 of the core, DESIGN.md §3).
//
// It owns what does not depend on the cell: the packed schedule of (t, b) pairs, the input
// projection as ONE GEMM over all valid rows before the time loop, the time loop over the
// running prefix of the batch, the training workspace, and in backward the weight and input
// gradients as big GEMMs/reductions over all valid rows after the loop. A cell (rnn_cell.h,
// gru_cell.h, lstm_cell.h) supplies its gate count, bias folding and the per-step work: the
// recurrent GEMM(s) and the pointwise math (levels 2-3).
//
// Cell interface (all sizes in elements; `Bs` rows of the running prefix):
//   static constexpr int G;                     gates
//   static constexpr int extra_planes;          saved (T*B, H) planes beyond act and h_prev
//   static constexpr bool has_cell_state;       LSTM's c
//   void fold_bias(T* bias, const Weights<T>&, H)  (G*H) bias added to the input projection
//   void pack_forward(PackedB<T> (&)[2], const Weights<T>&, H)   recurrent weights, once a call
//   void pack_backward(PackedB<T> (&)[2], const Weights<T>&, H)
//   void forward_step(const StepForward<T>&)
//   void backward_step(const StepBackward<T>&)
//   void hidden_weight_grads(const HiddenGrads<T>&)  dW_hh and db_hh after the loop
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "gatedrnn/common.h"
#include "gatedrnn/gemm.h"
#include "gatedrnn/threads.h"
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

// What a cell's forward step sees: the Bs running rows of iteration s.
template <typename T>
struct StepForward {
    int64_t Bs, H;
    T* xw;              // (Bs, G*H) projected inputs + folded bias; training: overwritten by gate activations
    const T* h_rec;     // (Bs, H) m (.) h_{t-1}: what feeds W_hh
    T* h;               // (Bs, H) in h_{t-1}, out h_t
    T* c;               // (Bs, H) LSTM: in c_{t-1}, out c_t
    T* gates;           // (Bs, G*H) scratch
    T* scratch;         // (Bs, H) scratch
    T* save[2];         // (Bs, H) this step's rows of the extra planes (training), else nullptr
    bool training;
    const Weights<T>* w;
    const PackedB<T>* packed;  // the cell's pack_forward result
};

// What a cell's backward step sees: the Bs running rows of iteration s.
template <typename T>
struct StepBackward {
    int64_t Bs, H;
    const T* act;       // (Bs, G*H) saved gate activations
    const T* h_prev;    // (Bs, H) unmasked h_{t-1}
    const T* mask;      // (Bs, H) recurrent mask rows, or nullptr
    const T* saved[2];  // (Bs, H) this step's rows of the extra planes
    T* dh;              // (Bs, H) in dL/dh_t, out dL/dh_{t-1}
    T* dc;              // (Bs, H) LSTM: in dL/dc_t, out dL/dc_{t-1}
    T* dg;              // (Bs, G*H) out: gradient of the input-side gate pre-activations
    T* dg_extra;        // (Bs, H) out: cell-specific recurrent-side gradient plane rows
    T* scratch;         // (Bs, H) scratch
    T* scratch2;        // (Bs, H) scratch
    const Weights<T>* w;
    const PackedB<T>* packed;  // the cell's pack_backward result
};

// What a cell needs to form dW_hh and db_hh after the loop (all over the N packed rows).
template <typename T>
struct HiddenGrads {
    int64_t N, H;
    T* dw_hh;              // (G*H, H)
    T* db_hh;              // (G*H) or nullptr
    const T* db_ih;        // (G*H) column sums of dg (always computed)
    const T* dg;           // (N, G*H)
    const T* dg_extra;     // (N, H)
    const T* h_rec;        // (N, H) m (.) h_{t-1}
    const T* saved[2];     // (N, H) extra planes
};

// Applies m (.) h for the running rows (h_rec = h when there is no mask).
template <typename T>
const T* masked_rows(T* out, const T* h, const T* mask, int64_t Bs, int64_t H) {
    if (!mask) return h;
    for (int64_t k = 0; k < Bs * H; ++k) out[k] = h[k] * mask[k];
    return out;
}

// out (G*H) = column sums of m (N, G*H).
template <typename T>
void column_sums(T* out, const T* m, int64_t N, int64_t cols) {
    std::fill(out, out + cols, T(0));
    for (int64_t r = 0; r < N; ++r) {
        const T* row = m + r * cols;
        for (int64_t k = 0; k < cols; ++k) out[k] += row[k];
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

template <typename Cell, typename T>
void forward_sequence(const Cell& cell, T* y, T* h_n, T* c_n, const T* x, const Weights<T>& w,
                      const T* h0, const T* c0, const T* mask, T* workspace, const Sequence& seq) {
    constexpr int G = Cell::G;
    const int64_t B = seq.B, H = seq.H, I = seq.I, GH = G * H;
    if (B == 0) return;
    const Schedule sched(seq);
    const int64_t N = sched.packed;
    const bool training = workspace != nullptr;
    Planes<T> planes;
    if (training) planes = carve_workspace(workspace, seq, G, Cell::extra_planes);

    // 1. The input projection, one GEMM over every valid row: xw (N, G*H) = x W_ih^T + bias.
    Buffer<T> xw_storage, x_packed;
    T* xw = planes.act;
    if (!training) {
        xw_storage.reset(checked_mul(N, GH));
        xw = xw_storage.get();
    }
    {
        std::vector<T> bias(GH);
        cell.fold_bias(bias.data(), w, H);
        for (int64_t p = 0; p < N; ++p) std::copy(bias.begin(), bias.end(), xw + p * GH);
        const T* xp = packed_view(x_packed, x, sched, I);
        gemm_nt<T>(N, GH, I, xp, I, w.w_ih, I, T(1), xw, GH);
    }

    // 2. The time loop over the running prefix of the sorted batch.
    PackedB<T> packed[2];
    cell.pack_forward(packed, w, H);
    Buffer<T> h(B * H), c(Cell::has_cell_state ? B * H : 0), h_rec(mask ? B * H : 0),
        mask_sorted(mask ? B * H : 0), gates(B * GH), scratch(B * H);
    gather_state(h.get(), h0, sched.order, H);
    if (Cell::has_cell_state) gather_state(c.get(), c0, sched.order, H);
    if (mask) gather_state(mask_sorted.get(), mask, sched.order, H);
    if (N != seq.rows()) std::fill(y, y + seq.rows() * H, T(0));

    for (int64_t s = 0; s < sched.steps; ++s) {
        const int64_t Bs = sched.active[s], p0 = sched.offset[s];
        if (training) std::copy(h.get(), h.get() + Bs * H, planes.h_prev + p0 * H);
        StepForward<T> step{};
        step.Bs = Bs;
        step.H = H;
        step.xw = xw + p0 * GH;
        step.h_rec = masked_rows(h_rec.get(), h.get(), mask ? mask_sorted.get() : nullptr, Bs, H);
        step.h = h.get();
        step.c = c.get();
        step.gates = gates.get();
        step.scratch = scratch.get();
        for (int e = 0; e < Cell::extra_planes; ++e)
            step.save[e] = training ? planes.extra[e] + p0 * H : nullptr;
        step.training = training;
        step.w = &w;
        step.packed = packed;
        cell.forward_step(step);
        for (int64_t j = 0; j < Bs; ++j)
            std::copy(h.get() + j * H, h.get() + (j + 1) * H, y + sched.source[p0 + j] * H);
    }
    scatter_state(h_n, h.get(), sched.order, H);
    if (Cell::has_cell_state) scatter_state(c_n, c.get(), sched.order, H);
}

template <typename Cell, typename T>
void backward_sequence(const Cell& cell, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih,
                       T* db_hh, T* dh_seq, const T* dy, const T* dh_n, const T* dc_n,
                       const T* x, const Weights<T>& w, const T* mask, const T* workspace,
                       const Sequence& seq) {
    constexpr int G = Cell::G;
    const int64_t B = seq.B, H = seq.H, I = seq.I, GH = G * H;
    const Schedule sched(seq);
    const int64_t N = sched.packed;
    const Planes<T> planes =
        carve_workspace(const_cast<T*>(workspace), seq, G, Cell::extra_planes);

    // 1. The sequential part: per step the pointwise gate gradients and dh_{t-1} = dG W_hh.
    PackedB<T> packed[2];
    cell.pack_backward(packed, w, H);
    Buffer<T> dg(checked_mul(N, GH)), dg_extra(cell.uses_dg_extra() ? checked_mul(N, H) : 0);
    Buffer<T> dh(B * H), dc(Cell::has_cell_state ? B * H : 0), mask_sorted(mask ? B * H : 0),
        scratch(B * H), scratch2(B * H);
    gather_state(dh.get(), dh_n, sched.order, H);
    if (Cell::has_cell_state) gather_state(dc.get(), dc_n, sched.order, H);
    if (mask) gather_state(mask_sorted.get(), mask, sched.order, H);
    if (dh_seq && N != seq.rows()) std::fill(dh_seq, dh_seq + seq.rows() * H, T(0));

    for (int64_t s = sched.steps - 1; s >= 0; --s) {
        const int64_t Bs = sched.active[s], p0 = sched.offset[s];
        if (dy)
            for (int64_t j = 0; j < Bs; ++j) {
                const T* src = dy + sched.source[p0 + j] * H;
                T* d = dh.get() + j * H;
                for (int64_t k = 0; k < H; ++k) d[k] += src[k];
            }
        if (dh_seq)
            for (int64_t j = 0; j < Bs; ++j)
                std::copy(dh.get() + j * H, dh.get() + (j + 1) * H,
                          dh_seq + sched.source[p0 + j] * H);
        StepBackward<T> step{};
        step.Bs = Bs;
        step.H = H;
        step.act = planes.act + p0 * GH;
        step.h_prev = planes.h_prev + p0 * H;
        step.mask = mask ? mask_sorted.get() : nullptr;
        for (int e = 0; e < Cell::extra_planes; ++e) step.saved[e] = planes.extra[e] + p0 * H;
        step.dh = dh.get();
        step.dc = dc.get();
        step.dg = dg.get() + p0 * GH;
        step.dg_extra = dg_extra.get() + p0 * H;
        step.scratch = scratch.get();
        step.scratch2 = scratch2.get();
        step.w = &w;
        step.packed = packed;
        cell.backward_step(step);
    }
    scatter_state(dh0, dh.get(), sched.order, H);
    if (Cell::has_cell_state) scatter_state(dc0, dc.get(), sched.order, H);

    // 2. Everything else as big GEMMs / reductions over the N valid rows.
    Buffer<T> x_packed, dx_packed;
    const T* xp = packed_view(x_packed, x, sched, I);
    gemm_tn<T>(GH, I, N, dg.get(), GH, xp, I, T(0), dw_ih, I);          // dW_ih = dG^T X
    if (sched.identity) {
        gemm_nn<T>(N, I, GH, dg.get(), GH, w.w_ih, I, T(0), dx, I);      // dX = dG W_ih
    } else {
        dx_packed.reset(checked_mul(N, I));
        gemm_nn<T>(N, I, GH, dg.get(), GH, w.w_ih, I, T(0), dx_packed.get(), I);
        scatter_rows(dx, seq.rows(), dx_packed.get(), sched.source, I);
    }
    std::vector<T> db(GH);
    column_sums(db.data(), dg.get(), N, GH);
    if (db_ih) std::copy(db.begin(), db.end(), db_ih);

    Buffer<T> h_rec_storage;
    const T* h_rec = planes.h_prev;
    if (mask) {
        h_rec_storage.reset(checked_mul(N, H));
        for (int64_t s = 0; s < sched.steps; ++s)
            masked_rows(h_rec_storage.get() + sched.offset[s] * H,
                        planes.h_prev + sched.offset[s] * H, mask_sorted.get(), sched.active[s], H);
        h_rec = h_rec_storage.get();
    }
    HiddenGrads<T> hg{};
    hg.N = N;
    hg.H = H;
    hg.dw_hh = dw_hh;
    hg.db_hh = db_hh;
    hg.db_ih = db.data();
    hg.dg = dg.get();
    hg.dg_extra = dg_extra.get();
    hg.h_rec = h_rec;
    for (int e = 0; e < Cell::extra_planes; ++e) hg.saved[e] = planes.extra[e];
    cell.hidden_weight_grads(hg);
}

// Runs body(j) for the Bs rows of a step, on as many threads as the work is worth.
template <typename Body>
void for_rows(int64_t Bs, int64_t work_per_row, Body&& body) {
    const int threads = threads_for_work(static_cast<double>(Bs) * work_per_row);
    parallel_chunks(Bs, threads, [&](int64_t begin, int64_t end, int) {
        for (int64_t j = begin; j < end; ++j) body(j);
    });
}

}  // namespace gatedrnn::detail
