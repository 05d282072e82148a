// Internal: a matrix packed once into the active ISA's B-panel layout, for GEMMs that reuse the
// same right-hand side many times (the recurrent weights, every time step of a sequence).
#pragma once

#include "gatedrnn/gemm.h"
#include "isa/table.h"
#include "parallel.h"

namespace gatedrnn::detail {

template <typename T>
struct PackedB {
    const isa::Kernels<T>* kernels = nullptr;  // the ISA it was packed for (panel width)
    int64_t K = 0, N = 0, panels = 0;
    Buffer<T> data;                            // [panel][K][nr]
    const T* panel(int64_t p) const { return data.get() + p * K * kernels->nr; }
};

// Packs op(B) (K, N): B (K, N) when trans_b is no, B (N, K) read transposed when yes.
template <typename T>
void pack_b(PackedB<T>& out, Trans trans_b, const T* B, int64_t ldb, int64_t K, int64_t N);

// C (M, columns of panels [p_begin, p_end)) = A (M, K) . op(B) + beta C, on the calling thread.
template <typename T>
void gemm_packed(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, int64_t p_begin,
                 int64_t p_end, T beta, T* C, int64_t ldc);

// The same over all panels, spread over threads by panels.
template <typename T>
void gemm_packed_parallel(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, T beta, T* C,
                          int64_t ldc);

}  // namespace gatedrnn::detail
