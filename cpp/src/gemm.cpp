// The portable GEMM behind gatedrnn/gemm.h: cache-blocked, with A and B packed into
// micro-panels, and a register-tile micro-kernel the compiler vectorises for the baseline ISA.
// Tiles of C are spread over threads; each tile runs its whole K loop, so no two threads ever
// write the same element of C.
#include "gatedrnn/gemm.h"

#include <algorithm>
#include <vector>

#include "gatedrnn/threads.h"
#include "parallel.h"

namespace gatedrnn {
namespace {

template <typename T>
struct Blocking {
    static constexpr int64_t MR = 4;                       // rows of the register tile
    static constexpr int64_t NR = 32 / sizeof(T) * 2;      // columns: 16 floats or 8 doubles
    static constexpr int64_t KC = 256;                     // depth of a packed panel
    static constexpr int64_t MC = 64;                      // rows of a tile (multiple of MR)
    static constexpr int64_t NC = 256;                     // columns of a tile (multiple of NR)
};

// dst: panels of MR rows, [panel][k][MR], zero-padded: op(A)(i0 + i, k0 + k).
template <typename T>
void pack_a(T* dst, Trans ta, const T* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0,
            int64_t kc) {
    constexpr int64_t MR = Blocking<T>::MR;
    for (int64_t ip = 0; ip < mc; ip += MR) {
        const int64_t rows = std::min(MR, mc - ip);
        for (int64_t k = 0; k < kc; ++k) {
            for (int64_t i = 0; i < rows; ++i) {
                const int64_t r = i0 + ip + i, c = k0 + k;
                dst[i] = ta == Trans::yes ? A[c * lda + r] : A[r * lda + c];
            }
            for (int64_t i = rows; i < MR; ++i) dst[i] = T(0);
            dst += MR;
        }
    }
}

// dst: panels of NR columns, [panel][k][NR], zero-padded: op(B)(k0 + k, j0 + j).
template <typename T>
void pack_b(T* dst, Trans tb, const T* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0,
            int64_t nc) {
    constexpr int64_t NR = Blocking<T>::NR;
    for (int64_t jp = 0; jp < nc; jp += NR) {
        const int64_t cols = std::min(NR, nc - jp);
        for (int64_t k = 0; k < kc; ++k) {
            const int64_t r = k0 + k;
            if (tb == Trans::yes) {
                for (int64_t j = 0; j < cols; ++j) dst[j] = B[(j0 + jp + j) * ldb + r];
            } else {
                const T* src = B + r * ldb + j0 + jp;
                for (int64_t j = 0; j < cols; ++j) dst[j] = src[j];
            }
            for (int64_t j = cols; j < NR; ++j) dst[j] = T(0);
            dst += NR;
        }
    }
}

// C tile (rows x cols) (+)= alpha * a_panel . b_panel.  `overwrite`: C = beta C + ..., with
// beta == 0 meaning C is not read.
template <typename T>
void micro_kernel(int64_t kc, const T* a, const T* b, T* C, int64_t ldc, int64_t rows,
                  int64_t cols, T alpha, T beta, bool overwrite) {
    constexpr int64_t MR = Blocking<T>::MR, NR = Blocking<T>::NR;
    T acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k) {
        const T* ak = a + k * MR;
        const T* bk = b + k * NR;
        for (int64_t i = 0; i < MR; ++i)
            for (int64_t j = 0; j < NR; ++j) acc[i][j] += ak[i] * bk[j];
    }
    for (int64_t i = 0; i < rows; ++i) {
        T* c = C + i * ldc;
        for (int64_t j = 0; j < cols; ++j) {
            const T v = alpha * acc[i][j];
            if (!overwrite)
                c[j] += v;
            else
                c[j] = beta == T(0) ? v : beta * c[j] + v;
        }
    }
}

template <typename T>
void scale(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

}  // namespace

template <typename T>
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    using Bk = Blocking<T>;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == T(0)) {
        scale(M, N, beta, C, ldc);
        return;
    }
    const int64_t tiles_m = (M + Bk::MC - 1) / Bk::MC, tiles_n = (N + Bk::NC - 1) / Bk::NC;
    const int64_t tiles = tiles_m * tiles_n;
    int threads = threads_for_work(static_cast<double>(M) * N * K);
    if (threads > tiles) threads = static_cast<int>(tiles);
    const int64_t a_size = Bk::MC * Bk::KC, b_size = Bk::KC * Bk::NC;
    detail::Buffer<T> packs(detail::checked_mul(threads, a_size + b_size));

    detail::parallel_chunks(tiles, threads, [&](int64_t begin, int64_t end, int tid) {
        T* pa = packs.get() + tid * (a_size + b_size);
        T* pb = pa + a_size;
        for (int64_t tile = begin; tile < end; ++tile) {
            const int64_t i0 = (tile / tiles_n) * Bk::MC, j0 = (tile % tiles_n) * Bk::NC;
            const int64_t mc = std::min(Bk::MC, M - i0), nc = std::min(Bk::NC, N - j0);
            for (int64_t k0 = 0; k0 < K; k0 += Bk::KC) {
                const int64_t kc = std::min(Bk::KC, K - k0);
                pack_a(pa, ta, A, lda, i0, mc, k0, kc);
                pack_b(pb, tb, B, ldb, k0, kc, j0, nc);
                for (int64_t jp = 0; jp < nc; jp += Bk::NR)
                    for (int64_t ip = 0; ip < mc; ip += Bk::MR)
                        micro_kernel(kc, pa + ip * kc, pb + jp * kc, C + (i0 + ip) * ldc + j0 + jp,
                                     ldc, std::min(Bk::MR, mc - ip), std::min(Bk::NR, nc - jp),
                                     alpha, beta, k0 == 0);
            }
        }
    });
}

template void gemm<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

}  // namespace gatedrnn
