// gatedrnn core: the one matrix-multiply interface every driver calls.
//
//   C (M, N) = alpha * op(A) (M, K) . op(B) (K, N) + beta * C
//
// Row-major, with leading dimensions in elements. op(X) = X or X^T as the Trans flag says.
// With beta == 0, C is written without being read (NaN/Inf in the old C do not leak).
// The implementation behind this interface (a cache-blocked packed GEMM, parallel over tiles)
// can be replaced by faster kernels without touching the sequence drivers.
#pragma once

#include <cstdint>

namespace gatedrnn {

enum class Trans : bool { no = false, yes = true };

template <typename T>
void gemm(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Shorthands for the shapes the drivers use.
// C (M, N) = A (M, K) . B(N, K)^T + beta C       e.g. gates = h . W_hh^T
template <typename T>
inline void gemm_nt(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T beta, T* C, int64_t ldc) {
    gemm<T>(Trans::no, Trans::yes, M, N, K, T(1), A, lda, B, ldb, beta, C, ldc);
}
// C (M, N) = A (M, K) . B (K, N) + beta C         e.g. dh = dG . W_hh
template <typename T>
inline void gemm_nn(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T beta, T* C, int64_t ldc) {
    gemm<T>(Trans::no, Trans::no, M, N, K, T(1), A, lda, B, ldb, beta, C, ldc);
}
// C (M, N) = A(K, M)^T . B (K, N) + beta C        e.g. dW = dG^T . X
template <typename T>
inline void gemm_tn(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T beta, T* C, int64_t ldc) {
    gemm<T>(Trans::yes, Trans::no, M, N, K, T(1), A, lda, B, ldb, beta, C, ldc);
}

}  // namespace gatedrnn
