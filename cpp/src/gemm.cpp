// The GEMM behind gatedrnn/gemm.h, built from the active ISA's leaf kernels (isa/table.h):
// op(B) packed into panels once, op(A) packed per cache block when it has enough rows to pay
// for it (read in place otherwise: the small-batch per-step case), tiles of C spread over
// threads so that no two threads write the same element.
#include "gatedrnn/gemm.h"

#include <algorithm>
#include <memory>
#include <new>
#include <stdexcept>

#include "gatedrnn/threads.h"
#include "isa/dispatch.h"
#include "packed.h"
#include "parallel.h"

namespace gatedrnn {
namespace detail {
namespace {

// Depth of a cache block: K goes in equal blocks of at most kKC. Each block's pass over C loads
// and stores every tile of C once more, from L3 or memory when C is large (a weight gradient);
// a packed B sliver of this depth (kKC x nr) streams from L2 instead of L1. Single thread, our
// GEMM against NumPy's on 2048^3: 256 -> 0.92x, 512 -> 0.97x, 768 -> 1.00x, 1024 -> 1.00x.
#ifndef GATEDRNN_KC
#define GATEDRNN_KC 768
#endif
constexpr int64_t kKC = GATEDRNN_KC;
inline int64_t block_depth(int64_t K) {
    const int64_t blocks = (K + kKC - 1) / kKC;
    return blocks > 0 ? (K + blocks - 1) / blocks : K;
}
#ifndef GATEDRNN_A_BLOCK_BYTES
#define GATEDRNN_A_BLOCK_BYTES (1 << 19)
#endif
constexpr int64_t kABlockBytes = GATEDRNN_A_BLOCK_BYTES;  // a packed A block stays in L2
constexpr int64_t kPackA = 24;               // from this many rows on, A is packed,
constexpr int64_t kPrefetchTiles = 8;        // row tiles per B block from which the next
                                             // block is prefetched while this one is used
constexpr int64_t kPackAPanels = 3;          // if this many B panels reuse it (a GEMM with a
                                             // narrow B, such as dX = dG W_ih for a small input,
                                             // reads each A element once or twice: packing
                                             // would cost as much as the products)

// Rows of a packed A block: as many as fit kABlockBytes, split evenly over the threads, a
// multiple of mr. Every row tile streams the whole packed B once, so few, tall tiles keep that
// traffic low when K is long (the weight gradients: K = T*B).
template <typename T>
int64_t rows_per_tile(int64_t M, int threads, int64_t mr) {
    const int64_t max_rows = std::max<int64_t>(mr, kABlockBytes / (kKC * int64_t(sizeof(T))) / mr * mr);
    const int64_t per_thread = (M + threads - 1) / threads;
    const int64_t tiles_per_thread = (per_thread + max_rows - 1) / max_rows;
    const int64_t rows = (M + threads * tiles_per_thread - 1) / (threads * tiles_per_thread);
    return (rows + mr - 1) / mr * mr;
}

template <typename T>
void scale(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
    if (beta == T(1)) return;
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

// A batch of at least this fraction of a panel's width (nr / 2 rows) multiplies B read in
// place as C^T = op(B)^T A^T (Kernels::gemm_small_m); fewer rows would leave most of each
// packed A^T panel's lanes empty, and keep the dot-product and strided tiles.
template <typename T>
bool small_m(const isa::Kernels<T>& k, int64_t M) {
    return 2 * M >= k.nr;
}

// The calling thread's scratch for gemm_small_m: grown on demand, kept for the thread's next
// calls (one per step of a streaming caller). nullptr when more than kSmallMScratchLimit
// elements are asked for or the allocation fails: the caller then takes the path that needs
// none (it may run inside a parallel region, where nothing may throw).
constexpr int64_t kSmallMScratchLimit = int64_t(1) << 20;
template <typename T>
T* small_m_scratch(int64_t elements) {
    thread_local std::unique_ptr<T[]> buffer;
    thread_local int64_t size = 0;
    if (elements > kSmallMScratchLimit) return nullptr;
    if (elements > size) {
        buffer.reset(new (std::nothrow) T[elements]);
        size = buffer ? elements : 0;
    }
    return buffer.get();
}

// Sets the shape and the active ISA's kernels of a PackedB; returns the kernels.
template <typename T>
const isa::Kernels<T>& describe_b(PackedB<T>& out, int64_t K, int64_t N) {
    const isa::Kernels<T>& k = isa::of<T>(isa::active());
    out.kernels = &k;
    out.K = K;
    out.N = N;
    out.panels = (N + k.nr - 1) / k.nr;
    return k;
}

}  // namespace

template <typename T>
void pack_b(PackedB<T>& out, Trans trans_b, const T* B, int64_t ldb, int64_t K, int64_t N) {
    const isa::Kernels<T>& k = describe_b(out, K, N);
    out.data.reset(checked_mul(checked_mul(out.panels, k.nr), K));
    // Moving one element (a strided gather when transposing) costs several multiply-adds.
    const int threads = threads_for_work(static_cast<double>(K) * N * 4);
    T* dst = out.data.get();
    parallel_chunks(out.panels, threads, [&](int64_t begin, int64_t end, int) {
        for (int64_t p = begin; p < end; ++p)
            k.pack_b(trans_b == Trans::yes, B, ldb, 0, K, p * k.nr, std::min<int64_t>(k.nr, N - p * k.nr),
                     dst + p * K * k.nr);
    });
}

template <typename T>
void view_b(PackedB<T>& out, const T* B, int64_t ldb, int64_t K, int64_t N) {
    describe_b(out, K, N);
    out.direct = B;
    out.ld_direct = ldb;
}

template <typename T>
void view_b_strided(PackedB<T>& out, const T* B, int64_t ldb, int64_t K, int64_t N) {
    const isa::Kernels<T>& k = describe_b(out, K, N);
    out.strided = B;
    out.ld_strided = ldb;
    if (N % k.nr != 0 && K > 0) {
        out.data.reset(checked_mul(K, k.nr));
        k.pack_b(false, B, ldb, 0, K, N / k.nr * k.nr, N % k.nr, out.data.get());
    }
}

// The calling thread's gemm_small_m scratch for a product of `whole` rows and depth K, or
// nullptr where that path is not taken (too few rows, or the scratch over its limit). Sized
// for the whole product, so that the size limit, too, decides alike for a share of its rows
// and for all of them.
template <typename T>
T* small_m_path(const isa::Kernels<T>& k, int64_t whole, int64_t K) {
    return K > 0 && small_m(k, whole) ? small_m_scratch<T>(k.small_m_scratch(whole, K)) : nullptr;
}

template <typename T>
bool gemm_small_m_in_place(const isa::Kernels<T>& k, int64_t M, const T* A, int64_t lda,
                           const T* B, int64_t b_n, int64_t b_k, int64_t K, int64_t N,
                           int64_t p_begin, int64_t p_end, T beta, T* C, int64_t ldc,
                           int64_t whole_rows) {
    T* scratch = small_m_path(k, std::max(whole_rows, M), K);
    if (!scratch) return false;
    const int64_t j0 = std::min(p_begin * k.nr, N), j1 = std::min(p_end * k.nr, N);
    if (j1 > j0)
        k.gemm_small_m(M, j1 - j0, K, A, lda, B + j0 * b_n, b_n, b_k, beta, C + j0, ldc, scratch);
    return true;
}

template <typename T>
void gemm_packed(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, int64_t p_begin,
                 int64_t p_end, T beta, T* C, int64_t ldc, bool reverse, int64_t whole_rows,
                 bool depth_blocks) {
    const isa::Kernels<T>& k = *B.kernels;
    // The whole product's rows choose the path and the partial sums, whatever share of them
    // this call has: each row then gets the same results however the rows are shared out.
    const int64_t whole = std::max(whole_rows, M);
    const int chains = isa::chains_for(whole);
    if (B.strided && gemm_small_m_in_place(k, M, A, lda, B.strided, 1, B.ld_strided, B.K, B.N,
                                           p_begin, p_end, beta, C, ldc, whole))
        return;
    if (B.direct && gemm_small_m_in_place(k, M, A, lda, B.direct, B.ld_direct, 1, B.K, B.N,
                                          p_begin, p_end, beta, C, ldc, whole))
        return;
    if (B.strided && B.K > 0) {
        const int64_t full = B.N / k.nr;
        for (int64_t p = p_begin; p < p_end; ++p) {
            const int64_t j0 = p * k.nr, cols = std::min<int64_t>(k.nr, B.N - j0);
            for (int64_t i = 0; i < M; i += k.mr) {
                const int64_t rows = std::min<int64_t>(k.mr, M - i);
                if (p < full)
                    k.kernel_strided_b(B.K, A + i * lda, lda, 1, rows, B.strided + j0, B.ld_strided,
                                       C + i * ldc + j0, ldc, T(1), beta, true, chains);
                else
                    k.kernel(B.K, A + i * lda, lda, 1, rows, B.data.get(), C + i * ldc + j0, ldc,
                             cols, T(1), beta, true, nullptr, 0, chains);
            }
        }
        return;
    }
    if (B.direct) {
        const int64_t j0 = std::min(p_begin * k.nr, B.N), j1 = std::min(p_end * k.nr, B.N);
        if (j1 > j0)
            k.gemm_nt_direct(M, j1 - j0, B.K, A, lda, B.direct + j0 * B.ld_direct, B.ld_direct,
                             beta, C + j0, ldc);
        return;
    }
    if (B.K == 0) {
        for (int64_t p = p_begin; p < p_end; ++p) {
            const int64_t j0 = p * k.nr;
            scale(M, std::min<int64_t>(k.nr, B.N - j0), beta, C + j0, ldc);
        }
        return;
    }
    const int64_t kb = depth_blocks ? block_depth(B.K) : B.K;
    for (int64_t q = p_begin; q < p_end; ++q) {
        const int64_t p = reverse ? p_begin + p_end - 1 - q : q;
        const int64_t j0 = p * k.nr, cols = std::min<int64_t>(k.nr, B.N - j0);
        for (int64_t k0 = 0; k0 < B.K; k0 += kb) {  // later blocks add to C, as gemm_prepacked
            const int64_t kc = std::min(kb, B.K - k0);
            for (int64_t i = 0, h; i < M; i += h) {
                h = isa::row_tile(M, i, k.mr);
                k.kernel(kc, A + i * lda + k0, lda, 1, h, B.panel(p) + k0 * k.nr,
                         C + i * ldc + j0, ldc, cols, T(1), beta, k0 == 0, nullptr, 0, chains);
            }
        }
    }
}

template <typename T>
void gemm_packed_a(int64_t M, const T* a_packed, const PackedB<T>& B, int64_t p_begin,
                   int64_t p_end, T beta, T* C, int64_t ldc, bool fetch_next, const T* after,
                   bool reverse, int64_t whole_rows) {
    const isa::Kernels<T>& k = *B.kernels;
    const int chains = isa::chains_for(std::max(whole_rows, M));
    // Panels from L3 or memory (recurrent weights too large for L2): while a panel's row tiles
    // run, each fetches its slice of the next panel into L2 (the last panel, `after`'s). A
    // tile's loop then finds its panel in L2 from the first k step.
    const int64_t row_tiles = (M + k.mr - 1) / k.mr;
    const int64_t panel_lines = (B.K * k.nr * int64_t(sizeof(T)) + 63) / 64;
    const int64_t lines_per_tile = (panel_lines + row_tiles - 1) / row_tiles;
    for (int64_t q = p_begin; q < p_end; ++q) {
        const int64_t p = reverse ? p_begin + p_end - 1 - q : q;
        const int64_t j0 = p * k.nr, cols = std::min<int64_t>(k.nr, B.N - j0);
        const T* next = !fetch_next ? nullptr
                        : q + 1 < p_end ? B.panel(reverse ? p - 1 : p + 1)
                                        : after;
        const int64_t next_lines = next ? panel_lines : 0;
        for (int64_t i = 0, line = 0, h; i < M; i += h) {
            h = isa::row_tile(M, i, k.mr);
            const int64_t slice = std::min(next_lines - line, lines_per_tile);
            k.kernel(B.K, a_packed + i * B.K, 1, h, h, B.panel(p),
                     C + i * ldc + j0, ldc, cols, T(1), beta, true,
                     reinterpret_cast<const char*>(next) + line * 64, slice, chains);
            line += slice;
        }
    }
}

template <typename T>
void gemm_packed_parallel(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, T beta, T* C,
                          int64_t ldc, int min_threads) {
    if (M <= 0 || B.N <= 0) return;
    const int threads = std::max(min_threads, threads_for_work(static_cast<double>(M) * B.N * B.K));
    parallel_chunks(B.panels, threads, [&](int64_t begin, int64_t end, int) {
        gemm_packed(M, A, lda, B, begin, end, beta, C, ldc);
    });
}

template void view_b_strided<float>(PackedB<float>&, const float*, int64_t, int64_t, int64_t);
template void view_b_strided<double>(PackedB<double>&, const double*, int64_t, int64_t, int64_t);
template void view_b<float>(PackedB<float>&, const float*, int64_t, int64_t, int64_t);
template void view_b<double>(PackedB<double>&, const double*, int64_t, int64_t, int64_t);
template void pack_b<float>(PackedB<float>&, Trans, const float*, int64_t, int64_t, int64_t);
template void pack_b<double>(PackedB<double>&, Trans, const double*, int64_t, int64_t, int64_t);
template bool gemm_small_m_in_place<float>(const isa::Kernels<float>&, int64_t, const float*,
                                           int64_t, const float*, int64_t, int64_t, int64_t,
                                           int64_t, int64_t, int64_t, float, float*, int64_t,
                                           int64_t);
template bool gemm_small_m_in_place<double>(const isa::Kernels<double>&, int64_t, const double*,
                                            int64_t, const double*, int64_t, int64_t, int64_t,
                                            int64_t, int64_t, int64_t, double, double*, int64_t,
                                            int64_t);
template void gemm_packed<float>(int64_t, const float*, int64_t, const PackedB<float>&, int64_t,
                                 int64_t, float, float*, int64_t, bool, int64_t, bool);
template void gemm_packed<double>(int64_t, const double*, int64_t, const PackedB<double>&, int64_t,
                                  int64_t, double, double*, int64_t, bool, int64_t, bool);
template void gemm_packed_a<float>(int64_t, const float*, const PackedB<float>&, int64_t, int64_t,
                                   float, float*, int64_t, bool, const float*, bool,
                                   int64_t);
template void gemm_packed_a<double>(int64_t, const double*, const PackedB<double>&, int64_t, int64_t,
                                    double, double*, int64_t, bool, const double*, bool,
                                    int64_t);
template void gemm_packed_parallel<float>(int64_t, const float*, int64_t, const PackedB<float>&,
                                          float, float*, int64_t, int);
template void gemm_packed_parallel<double>(int64_t, const double*, int64_t, const PackedB<double>&,
                                           double, double*, int64_t, int);

}  // namespace detail

namespace detail {

template <typename T>
int64_t gemm_serial_scratch_elements(const PackedB<T>& B) {
    // rows_per_tile() on one thread is at most max(mr, kABlockBytes / (kKC * sizeof(T))).
    return std::max<int64_t>(B.kernels->mr * kKC, kABlockBytes / int64_t(sizeof(T)));
}

template <typename T>
void gemm_prepacked(Trans ta, int64_t M, const T* A, int64_t lda, const PackedB<T>& packed,
                    T alpha, T beta, T* C, int64_t ldc, int min_threads, T* serial_scratch,
                    PanelRuns runs, int64_t whole_rows) {
    const int64_t N = packed.N, K = packed.K;
    const isa::Kernels<T>& k = *packed.kernels;
    const int64_t nr = k.nr, mr = k.mr;
    if (runs.length < 0) runs = PanelRuns{0, packed.panels, 0, 1};
    const int64_t P = runs.length * runs.count;   // panels multiplied
    // The p-th of them (p < P): runs of `length` panels, `stride` panels apart.
    const auto panel_at = [&](int64_t p) {
        return runs.first + (p / runs.length) * runs.stride + p % runs.length;
    };
    if (P != packed.panels && !serial_scratch)
        throw std::logic_error("gemm_prepacked: a subset of panels runs serially only");
    if (M <= 0 || N <= 0 || P <= 0) return;
    if (K <= 0 || alpha == T(0) || packed.direct || packed.strided) {
        if ((packed.direct || packed.strided) && (alpha != T(1) || ta == Trans::yes))
            throw std::logic_error("gemm_prepacked: a view takes alpha = 1 and A as is");
        if (!serial_scratch && K > 0 && alpha != T(0)) {
            gemm_packed_parallel(M, A, lda, packed, beta, C, ldc, min_threads);
            return;
        }
        for (int64_t r = 0; r < runs.count; ++r) {
            const int64_t p0 = runs.first + r * runs.stride, p1 = p0 + runs.length;
            if (K <= 0 || alpha == T(0))
                scale(M, std::min(p1 * nr, N) - p0 * nr, beta, C + p0 * nr, ldc);
            else
                gemm_packed(M, A, lda, packed, p0, p1, beta, C, ldc, false, whole_rows);
        }
        return;
    }
    const int chains = isa::chains_for(std::max(whole_rows, M));
    const bool pack_a = M >= kPackA && P >= kPackAPanels;
    int threads = serial_scratch ? 1 : std::max(min_threads, threads_for_work(static_cast<double>(M) * N * K));
    // Row blocks split the work between threads whether or not A is packed (a narrow B has
    // too few panels to share out).
    const int64_t mc = M >= kPackA ? rows_per_tile<T>(M, std::max(threads, 1), mr) : M;
    const int64_t tiles_m = (M + mc - 1) / mc;
    // Enough column groups that every thread gets work even when M is one block.
    const int64_t groups = std::min<int64_t>(P, std::max<int64_t>(1, (threads * 4 + tiles_m - 1) / tiles_m));
    const int64_t panels_per_group = (P + groups - 1) / groups;
    const int64_t tiles_n = (P + panels_per_group - 1) / panels_per_group;
    const int64_t tiles = tiles_m * tiles_n;
    threads = static_cast<int>(std::min<int64_t>(threads, tiles));
    const int64_t kb = block_depth(K);
    const int64_t a_block = mc * kb;
    Buffer<T> a_packs(pack_a && !serial_scratch ? checked_mul(std::max(threads, 1), a_block) : 0);
    T* const a_pack_base = serial_scratch ? serial_scratch : a_packs.get();
    const int64_t a_row = ta == Trans::yes ? 1 : lda, a_col = ta == Trans::yes ? lda : 1;

    // With enough row blocks, threads claim whole row blocks as they go (a slower core takes
    // fewer; a claim packs its A block once per depth block for all its column groups). With
    // fewer, each thread keeps its contiguous share of tiles: split finer, a row block's
    // column groups would each pack the same A block again.
    auto tile_runs = [&](int64_t begin, int64_t end, int tid) {
        T* pa = pack_a ? a_pack_base + tid * a_block : nullptr;
        // A thread's consecutive tiles of one row block are done together: its A block is
        // packed once per depth block, not once per column group.
        for (int64_t tile = begin, next; tile < end; tile = next) {
            const int64_t mi = tile / tiles_n;
            next = std::min(end, (mi + 1) * tiles_n);
            const int64_t i0 = mi * mc, rows = std::min(mc, M - i0);
            const int64_t p0 = (tile % tiles_n) * panels_per_group;
            const int64_t p1 = std::min(P, ((next - 1) % tiles_n + 1) * panels_per_group);
            for (int64_t k0 = 0; k0 < K; k0 += kb) {
                const int64_t kc = std::min(kb, K - k0);
                if (pack_a) k.pack_a(ta == Trans::yes, A, lda, i0, rows, k0, kc, pa);
                // The tile of row tile i (h rows) and panel p, fetching `lines` lines at `ahead`.
                auto run_tile = [&](int64_t i, int64_t h, int64_t p, const char* ahead,
                                    int64_t lines) {
                    const int64_t j0 = panel_at(p) * nr;
                    const T* a = pack_a ? pa + i * kc : A + (i0 + i) * a_row + k0 * a_col;
                    k.kernel(kc, a, pack_a ? 1 : a_row, pack_a ? h : a_col, h,
                             packed.panel(panel_at(p)) + k0 * nr, C + (i0 + i) * ldc + j0, ldc,
                             std::min(nr, N - j0), alpha, beta, k0 == 0, ahead, lines, chains);
                };
                if (pack_a && kc < isa::kShortDepth) {  // along C's rows (see kShortDepth)
                    // Each row tile across each run of consecutive panels in one call.
                    // dW = dG^T X 1536 x 512, K = 32: one thread 71 -> 79 GFLOP/s, two
                    // 138 -> 155 (NumPy's OpenBLAS 75 and 144).
                    for (int64_t i = 0, h; i < rows; i += h) {
                        h = isa::row_tile(rows, i, mr);
                        for (int64_t p = p0, q; p < p1; p = q) {
                            q = std::min(p1, (p / runs.length + 1) * runs.length);  // run's end
                            const int64_t j0 = panel_at(p) * nr;
                            k.kernel_panels(kc, pa + i * kc, h, packed.panel(panel_at(p)) + k0 * nr,
                                            K * nr, q - p, C + (i0 + i) * ldc + j0, ldc, N - j0,
                                            alpha, beta, k0 == 0, chains);
                        }
                    }
                    continue;
                }
                for (int64_t p = p0; p < p1; ++p) {
                    // The B block after this one (next panel, else the next depth block) comes
                    // from L3 or memory: each row tile's kernel fetches a slice of it into L2
                    // while it runs, so the first tile that uses it does not stall. Only worth
                    // it with many row tiles.
                    const bool next_panel = p + 1 < p1;
                    const int64_t next_k0 = next_panel ? k0 : k0 + kc;
                    const T* next_b =
                        next_k0 < K ? packed.panel(panel_at(next_panel ? p + 1 : p0)) + next_k0 * nr
                                    : nullptr;
                    const int64_t next_lines =
                        next_b ? (std::min(kb, K - next_k0) * nr * int64_t(sizeof(T)) + 63) / 64 : 0;
                    const int64_t row_tiles = (rows + mr - 1) / mr;
                    const int64_t lines_per_tile = row_tiles >= kPrefetchTiles ? (next_lines + row_tiles - 1) / row_tiles : 0;
                    for (int64_t i = 0, line = 0, h; i < rows; i += h) {
                        h = isa::row_tile(rows, i, mr);
                        const int64_t slice = std::min(next_lines - line, lines_per_tile);
                        run_tile(i, h, p, reinterpret_cast<const char*>(next_b) + line * 64, slice);
                        line += slice;
                    }
                }
            }
        }
    };
    if (tiles_m >= 2 * int64_t(threads))
        parallel_claims(tiles, threads, tiles_n, tile_runs);
    else
        parallel_chunks(tiles, threads, tile_runs);
}

template void gemm_prepacked<float>(Trans, int64_t, const float*, int64_t, const PackedB<float>&,
                                    float, float, float*, int64_t, int, float*, PanelRuns,
                                    int64_t);
template void gemm_prepacked<double>(Trans, int64_t, const double*, int64_t,
                                     const PackedB<double>&, double, double, double*, int64_t, int,
                                     double*, PanelRuns, int64_t);
template int64_t gemm_serial_scratch_elements<float>(const PackedB<float>&);
template int64_t gemm_serial_scratch_elements<double>(const PackedB<double>&);

}  // namespace detail

template <typename T>
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    using namespace detail;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == T(0)) {
        scale(M, N, beta, C, ldc);
        return;
    }
    PackedB<T> packed;
    if (M <= kStridedBRows && ta == Trans::no && tb == Trans::no && alpha == T(1))
        view_b_strided(packed, B, ldb, K, N);
    else
        pack_b(packed, tb, B, ldb, K, N);
    gemm_prepacked(ta, M, A, lda, packed, alpha, beta, C, ldc);
}

template void gemm<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

template <typename T>
bool PackedLayer<T>::current() const {
    return ih.kernels == &isa::of<T>(isa::active());
}

template <typename T>
void pack_layer(PackedLayer<T>& out, const Weights<T>& w, CellType cell, int64_t I, int64_t H) {
    const int G = gate_count(cell);
    out.G = G;
    out.I = I;
    out.H = H;
    detail::pack_b(out.ih, Trans::yes, w.w_ih, I, I, G * H);
    for (int g = 0; g < G; ++g) detail::pack_b(out.hh[g], Trans::yes, w.w_hh + g * H * H, H, H, H);
    out.bias.reset(G * H);
    detail::fold_bias(out.bias.get(), w, G, H, cell == CellType::gru_reset_after);
}

template struct PackedLayer<float>;
template struct PackedLayer<double>;
template void pack_layer<float>(PackedLayer<float>&, const Weights<float>&, CellType, int64_t, int64_t);
template void pack_layer<double>(PackedLayer<double>&, const Weights<double>&, CellType, int64_t, int64_t);

}  // namespace gatedrnn
