// Internal: a matrix packed once into the active ISA's B-panel layout, for GEMMs that reuse the
// same right-hand side many times (the recurrent weights, every time step of a sequence).
#pragma once

#include <algorithm>

#include "gatedrnn/common.h"
#include "gatedrnn/gemm.h"
#include "isa/table.h"
#include "parallel.h"

namespace gatedrnn::detail {

template <typename T>
struct PackedB {
    const isa::Kernels<T>* kernels = nullptr;  // the ISA it was packed for (panel width)
    int64_t K = 0, N = 0, panels = 0;
    Buffer<T> data;                            // [panel][K][nr]
    // Or, not packed at all: op(B) = direct^T for direct (N, K) row-major, read in place by
    // the dot-product kernel. For a call too small to pay for packing (see view_b).
    const T* direct = nullptr;
    int64_t ld_direct = 0;
    // Or B (K, N) row-major read in place: panel p < N / nr is columns [p nr, (p + 1) nr) at
    // row stride ld_strided; a last, partial panel is packed into data (see view_b_strided).
    const T* strided = nullptr;
    int64_t ld_strided = 0;
    const T* panel(int64_t p) const { return data.get() + p * K * kernels->nr; }
};

// A PackedB that reads B (K, N) row-major in place (only a partial last panel is packed): for
// GEMMs with too few rows of A to pay for packing B, which costs two passes over it.
template <typename T>
void view_b_strided(PackedB<T>& out, const T* B, int64_t ldb, int64_t K, int64_t N);

// GEMMs with at most this many rows of A read a non-transposed B in place (view_b_strided).
constexpr int64_t kStridedBRows = 64;

// A PackedB that reads B^T (B (N, K) row-major) in place; panels still split its columns.
template <typename T>
void view_b(PackedB<T>& out, const T* B, int64_t ldb, int64_t K, int64_t N);

// Packs op(B) (K, N): B (K, N) when trans_b is no, B (N, K) read transposed when yes.
template <typename T>
void pack_b(PackedB<T>& out, Trans trans_b, const T* B, int64_t ldb, int64_t K, int64_t N);

// C (M, columns of panels [p_begin, p_end)) = A (M, K) . op(B) + beta C, on the calling thread.
// reverse: the panels in descending order (the same results: see Sweep in driver.h).
// whole_rows: the rows of the whole product when these M are a share of them (one thread's
// rows of a step): the path and the partial sums per element follow the whole product
// (isa::chains_for), so each row's results do not depend on the share. 0: M.
// depth_blocks: a packed B's depth in the blocks gemm_prepacked splits it into, each block's
// sums added to C in turn, so that every element is the same sum as gemm_prepacked's (an
// input projection that runs here for some thread counts and there for others). Otherwise
// the whole depth is one pass, as the steps' recurrent products (gemm_packed_a too) take it.
template <typename T>
void gemm_packed(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, int64_t p_begin,
                 int64_t p_end, T beta, T* C, int64_t ldc, bool reverse = false,
                 int64_t whole_rows = 0, bool depth_blocks = false);

// C (M, columns of panels [p_begin, p_end)) = A (M, K) . B + beta C for B (K, N) read in place,
// element (k, n) at B[n * b_n + k * b_k], on the calling thread, the way gemm_packed multiplies
// a strided view (b_n 1, b_k its row stride) or a direct one (b_n its row stride, b_k 1);
// whole_rows as there. Returns false, having done nothing, where that is not by
// Kernels::gemm_small_m (too few rows, or its scratch over the limit): gemm_packed then takes
// another path. Allocates nothing that can throw. k: the kernels of the views it stands in for.
template <typename T>
bool gemm_small_m_in_place(const isa::Kernels<T>& k, int64_t M, const T* A, int64_t lda,
                           const T* B, int64_t b_n, int64_t b_k, int64_t K, int64_t N,
                           int64_t p_begin, int64_t p_end, T beta, T* C, int64_t ldc,
                           int64_t whole_rows = 0);

// A subset of a packed B's panels: `count` runs of `length` panels, the r-th starting at panel
// first + r * stride (the gate blocks of one thread's hidden units). length -1: all panels.
struct PanelRuns {
    int64_t first = 0, length = -1, stride = 0, count = 1;
};

// C (M, N) = alpha op(A) . B + beta C for a packed B: the cache-blocked, threaded GEMM, on at
// least `min_threads` threads (a caller keeping B cache-resident across calls asks for more).
// With serial_scratch (gemm_serial_scratch_elements(B) elements), it runs on the calling thread
// only and packs A there: it allocates nothing, so it cannot throw inside a parallel region.
// It may then multiply only some of B's panels (`runs`), into those columns of C (C still
// points at column 0); each block of A is packed once for all of them. whole_rows: as for
// gemm_packed.
template <typename T>
void gemm_prepacked(Trans trans_a, int64_t M, const T* A, int64_t lda, const PackedB<T>& B,
                    T alpha, T beta, T* C, int64_t ldc, int min_threads = 1,
                    T* serial_scratch = nullptr, PanelRuns runs = {}, int64_t whole_rows = 0);
template <typename T>
int64_t gemm_serial_scratch_elements(const PackedB<T>& B);

// The same with A already packed into row panels (the kernels' pack_a layout, depth B.K).
// With fetch_next, each panel's tiles fetch the next panel into L2 while they run, and the
// last panel's tiles `after` (a panel the caller multiplies next, or nullptr): for panels that
// come from L3 or memory. reverse: the panels in descending order ("next" follows it).
// whole_rows: as for gemm_packed.
template <typename T>
void gemm_packed_a(int64_t M, const T* a_packed, const PackedB<T>& B, int64_t p_begin,
                   int64_t p_end, T beta, T* C, int64_t ldc, bool fetch_next = false,
                   const T* after = nullptr, bool reverse = false, int64_t whole_rows = 0);

// The same over all panels, spread over threads by panels.
template <typename T>
void gemm_packed_parallel(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, T beta, T* C,
                          int64_t ldc, int min_threads = 1);

}  // namespace gatedrnn::detail

namespace gatedrnn {

namespace detail {

// out (G*H) = the bias the pointwise step adds to the input projection: b_ih + b_hh (a missing
// one is zeros), except that with keep_last_hh (the reset-after GRU) the last gate's b_hh is left
// out: it stays inside r (.) (W_hn h' + b_hn).
template <typename T>
void fold_bias(T* out, const Weights<T>& w, int G, int64_t H, bool keep_last_hh) {
    const int64_t GH = G * H, hh_end = keep_last_hh ? GH - H : GH;
    if (w.b_ih)
        std::copy(w.b_ih, w.b_ih + GH, out);
    else
        std::fill(out, out + GH, T(0));
    if (w.b_hh)
        for (int64_t k = 0; k < hh_end; ++k) out[k] += w.b_hh[k];
}

}  // namespace detail

// The weights of one layer and direction, packed once for the forward pass
// (gatedrnn.functional.pack_weights): W_ih^T for the input projection, W_hh[g]^T per gate for
// the time loop, and the folded bias (detail::fold_bias), which a streaming step would otherwise
// recompute from two cold arrays at every call (~0.5 us of an ~18 us LSTM I=H=256 step). Valid
// for the ISA it was packed with; drivers repack when that changed.
template <typename T>
struct PackedLayer {
    int G = 0;
    int64_t I = 0, H = 0;
    detail::PackedB<T> ih;     // W_ih^T (I, G*H)
    detail::PackedB<T> hh[4];  // W_hh[g]^T (H, H), g < G
    detail::Buffer<T> bias;    // (G*H) folded for the cell
    bool current() const;
};

template <typename T>
void pack_layer(PackedLayer<T>& out, const Weights<T>& w, CellType cell, int64_t I, int64_t H);

}  // namespace gatedrnn
