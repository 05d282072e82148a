// The kernels one ISA provides, as plain function pointers: the only thing the rest of the core
// sees of an ISA unit. Everything an ISA unit compiles has internal linkage (see vec.h); the
// blocking, threading and allocation around these leaves live in baseline-compiled code.
#pragma once

#include <cstdint>

namespace gatedrnn::isa {

// One batch row of a cell's pointwise step, over a slice of n hidden units. Every pointer is
// already offset to the row and to the slice's first unit; gate g of unit k is at [g * H + k]
// in xw, gates, act and dg. Unused pointers are null.
template <typename T>
struct Row {
    int64_t n = 0, H = 0;
    int activation = 0;          // rnn: 0 tanh, 1 relu
    bool training = false;
    // forward
    const T* xw = nullptr;       // input projection (read only)
    T* act_out = nullptr;        // training: where the activations go (can be xw itself)
    const T* bias = nullptr;     // folded bias added to xw (gate-strided like xw), or null
    T* gates = nullptr;          // recurrent pre-activations (reset-before GRU: r, z stored
                                 // back; LSTM inference: o, between its two sweeps)
    const T* b_hn = nullptr;     // reset-after GRU: b_hn slice
    const T* h_prev = nullptr;   // unmasked h_{t-1}
    const T* h_rec = nullptr;    // m (.) h_{t-1}
    const T* mask = nullptr;     // recurrent mask row
    T* h_out = nullptr;          // h_t
    T* h_rec_out = nullptr;      // m (.) h_t (when there is a mask)
    T* c = nullptr;              // LSTM: c_{t-1} in, c_t out
    T* save0 = nullptr;          // training planes (lstm: c_{t-1}, tanh c_t; gru: hn or r (.) h')
    T* save1 = nullptr;
    T* rh = nullptr;             // reset-before GRU: r (.) h' out (phase 1)
    // backward
    const T* act = nullptr;      // saved activations
    const T* saved0 = nullptr;
    const T* saved1 = nullptr;
    const T* dh = nullptr;       // dL/dh_t
    T* dc = nullptr;             // LSTM: dL/dc_t in, dL/dc_{t-1} out
    T* dg = nullptr;             // gate pre-activation gradients (input side)
    T* dg_extra = nullptr;       // reset-after GRU: dn_pre (.) r
    T* direct = nullptr;         // GRU: z (.) dh_t
    T* d_rh = nullptr;           // reset-before GRU: d(r (.) h') in, d h' through it out
};

// Height of the row tile that starts at row i of an M-row block: mr, except that the last
// mr + r rows, for a remainder r below mr / 2, are split evenly (16 = 8 + 8, not 12 + 4): a
// tile of a few rows has too few independent sums to keep both FMA units busy (and in a
// product of 4 rows or more it keeps one sum per element, chains_for). For the same reason,
// with mr = 6 the last 13 rows are 5 + 4 + 4 rather than 6 + 4 + 3; only a 7-row product
// still ends in 3. LSTM H=256 forward, one and two threads, against 6 + 4 + 3 with two sums
// in its 3-row tile (tile heights choosing the sums): B=13 0.6-2.5% slower, B=19 and B=25
// 0-2%; 6 + 4 + 3 with one sum was 1-3% (B=13) and 2-6% (B=19) slower, B=7 2%. A packed
// A panel is exactly its tile's height (pack_a), and every walk over a packed A's tiles uses
// this.
inline int64_t row_tile(int64_t M, int64_t i, int64_t mr) {
    const int64_t rest = M - i;
    if (rest > mr && 2 * rest < 3 * mr) return (rest + 1) / 2;
    if (rest == mr + 7 && mr < 7) return mr - 1;
    return rest < mr ? rest : mr;
}

// Independent partial sums each output element of a micro-kernel keeps over k (see
// GemmKernels::tile): a tile of a few rows has too few sums to keep both FMA units busy, and
// splits each one over k (every other k, or every fourth) and adds the parts at the end. That
// changes its rounding, so it is chosen from the rows of the whole product the caller computes
// (all rows of a step, whichever thread or tile takes each), never from one tile's height:
// otherwise a row would round one way in a tile of 3 rows and another in a tile of 6, and
// results would depend on how threads and tiles split the rows. One row: 4 sums; 2 or 3: 2;
// from 4 rows on, 1 (a tile of fewer rows at the end of a larger product keeps 1 and runs
// below speed; a short tail, so that costs little).
inline int chains_for(int64_t rows) { return rows >= 4 ? 1 : rows == 1 ? 4 : 2; }

// A depth block shorter than this (the weight gradients of a one-step call: K = B) spends
// too few k steps per tile to hide the fetch of its tile of C. GemmKernels' tile then does not
// fetch C itself, and gemm_prepacked walks such a block's tiles along the rows of C (each row
// tile across all its panels) rather than down each panel: the writes then run along C's rows,
// which the hardware prefetchers follow. Single-thread dW = dG^T X, 1536 x 512, K = 32, one
// process alternated: 790 -> 657 us (two threads 478 -> 368); tiles walked down each panel
// while fetching the next tile's C, as before, 790; the same walk without the fetch 757.
constexpr int64_t kShortDepth = 128;

template <typename T>
struct Kernels {
    int nr;  // columns of a packed B panel (two vectors)
    int mr;  // most rows one micro-kernel call handles

    // dst: column panels of op(B) (K, N), columns [n0, n0 + nc), rows [k0, k0 + kc), laid out
    // [panel][k][nr], zero-padded to whole panels. op(B) = B (K, N), or B^T for B (N, K).
    void (*pack_b)(bool trans, const T* B, int64_t ldb, int64_t k0, int64_t kc, int64_t n0,
                   int64_t nc, T* dst);
    // dst: row panels of op(A) (M, K), rows [m0, m0 + mc), one per row tile of the mc rows
    // (row_tile), laid out [panel][k][h] for a panel of h rows, the panel of rows from i at i * kc.
    void (*pack_a)(bool trans, const T* A, int64_t lda, int64_t m0, int64_t mc, int64_t k0,
                   int64_t kc, T* dst);
    // C (rows, cols) = beta C + alpha a . b  (overwrite; beta 0: C not read) or C += alpha a . b,
    // with a element (i, k) at a[i * a_row + k * a_col] (a packed A panel: a_row 1, a_col rows),
    // rows <= mr, b one packed panel from k = 0,
    // cols <= nr, `chains` partial sums per element (chains_for the whole product's rows). The
    // `next_lines` 64-byte lines from `next` (none: nullptr, 0) are fetched into L2, spread over
    // the k steps, at most one per step (with one chain; with more they are ignored): a hint,
    // lines past that are not fetched.
    void (*kernel)(int64_t kc, const T* a, int64_t a_row, int64_t a_col, int64_t rows,
                   const T* b, T* C, int64_t ldc, int64_t cols, T alpha, T beta, bool overwrite,
                   const void* next, int64_t next_lines, int chains);
    // kernel for a packed A panel of `rows` rows against `panels` consecutive packed panels,
    // panel j at b + j * panel_stride and writing C's columns from j * nr, `cols` columns in
    // all (the last panel may be partial).
    void (*kernel_panels)(int64_t kc, const T* a, int64_t rows, const T* b, int64_t panel_stride,
                          int64_t panels, T* C, int64_t ldc, int64_t cols, T alpha, T beta,
                          bool overwrite, int chains);
    // The same for nr whole columns of a row-major B (K, N) read in place: row k of the panel
    // at b + k * ldb (every nr entries of each of the kc rows must be readable).
    void (*kernel_strided_b)(int64_t kc, const T* a, int64_t a_row, int64_t a_col, int64_t rows,
                             const T* b, int64_t ldb, T* C, int64_t ldc, T alpha, T beta,
                             bool overwrite, int chains);

    // C (M, N) = A (M, K) . B^T + beta C for B (N, K) read in place, no packing: dot products
    // along K, B streamed once per 4 rows. For calls too small to pay for packing B.
    void (*gemm_nt_direct)(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                           int64_t ldb, T beta, T* C, int64_t ldc);
    // C (M, N) = A (M, K) . op(B) + beta C for op(B) (K, N) read in place, element (k, n) at
    // b[n * b_n + k * b_k], computed as C^T = op(B)^T A^T with A^T packed into `scratch`
    // (small_m_scratch(M, K) elements): for M of about nr / 2 up to a few nr.
    void (*gemm_small_m)(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* b,
                         int64_t b_n, int64_t b_k, T beta, T* C, int64_t ldc, T* scratch);
    int64_t (*small_m_scratch)(int64_t M, int64_t K);

    // out[i] = sigma(in[i]) / tanh(in[i]) for i < n; in and out may alias.
    void (*sigmoid)(int64_t n, const T* in, T* out);
    void (*tanh)(int64_t n, const T* in, T* out);

    // Pointwise steps (kernels.h has the math). Reset-before GRU runs in two phases around
    // the W_hn GEMM, forward and backward.
    void (*rnn_forward)(const Row<T>&);
    void (*rnn_backward)(const Row<T>&);
    void (*lstm_forward)(const Row<T>&);
    void (*lstm_backward)(const Row<T>&);
    void (*gru_ra_forward)(const Row<T>&);
    void (*gru_ra_backward)(const Row<T>&);
    void (*gru_rb_forward1)(const Row<T>&);
    void (*gru_rb_forward2)(const Row<T>&);
    void (*gru_rb_backward1)(const Row<T>&);
    void (*gru_rb_backward2)(const Row<T>&);
};

struct Isa {
    const char* name;
    Kernels<float> f32;
    Kernels<double> f64;
};

// One per ISA unit; the dispatcher (dispatch.cpp) chooses among those the CPU supports.
const Isa& baseline();
const Isa& avx2();        // AVX2 + FMA, 8-float vectors
const Isa& avx2_emu16();  // AVX2 + FMA running the AVX-512 tile shapes on pairs of 8-float vectors
const Isa& avx512();      // AVX-512F, 16-float vectors

template <typename T>
const Kernels<T>& of(const Isa& isa);
template <>
inline const Kernels<float>& of<float>(const Isa& isa) { return isa.f32; }
template <>
inline const Kernels<double>& of<double>(const Isa& isa) { return isa.f64; }

}  // namespace gatedrnn::isa
