// Internal: the vanilla RNN step (see gatedrnn/rnn.h for the equations).
#pragma once

#include "activations.h"
#include "driver.h"
#include "gatedrnn/rnn.h"

namespace gatedrnn::detail {

template <typename T>
struct RnnCell {
    static constexpr int G = 1;
    static constexpr int extra_planes = 0;
    static constexpr bool has_cell_state = false;
    Activation activation;
    bool uses_dg_extra() const { return false; }

    void fold_bias(T* bias, const Weights<T>& w, int64_t H) const {
        add_biases(bias, w.b_ih, w.b_hh, H);
    }

    void pack_forward(PackedB<T> (&p)[2], const Weights<T>& w, int64_t H) const {
        pack_b(p[0], Trans::yes, w.w_hh, H, H, H);  // W_hh^T (H, H)
    }
    void pack_backward(PackedB<T> (&p)[2], const Weights<T>& w, int64_t H) const {
        pack_b(p[0], Trans::no, w.w_hh, H, H, H);   // W_hh (H, H)
    }

    void forward_step(const StepForward<T>& a) const {
        const int64_t H = a.H;
        gemm_packed_parallel<T>(a.Bs, a.h_rec, H, a.packed[0], T(0), a.gates, H);
        const bool relu_act = activation == Activation::relu;
        for_rows(a.Bs, 8 * H, [&](int64_t j) {
            T* xw = a.xw + j * H;
            const T* g = a.gates + j * H;
            T* h = a.h + j * H;
            for (int64_t k = 0; k < H; ++k) {
                const T pre = xw[k] + g[k];
                h[k] = relu_act ? relu(pre) : tanh_(pre);
                if (a.training) xw[k] = h[k];
            }
        });
    }

    void backward_step(const StepBackward<T>& a) const {
        const int64_t H = a.H;
        const bool relu_act = activation == Activation::relu;
        for_rows(a.Bs, 2 * H, [&](int64_t j) {
            const T* out = a.act + j * H;
            const T* dh = a.dh + j * H;
            T* dg = a.dg + j * H;
            for (int64_t k = 0; k < H; ++k)
                dg[k] = dh[k] * (relu_act ? drelu(out[k]) : dtanh(out[k]));
        });
        // dh_{t-1} = m (.) (dG W_hh)
        gemm_packed_parallel<T>(a.Bs, a.dg, H, a.packed[0], T(0), a.scratch, H);
        for (int64_t k = 0; k < a.Bs * H; ++k)
            a.dh[k] = a.mask ? a.scratch[k] * a.mask[k] : a.scratch[k];
    }

    void hidden_weight_grads(const HiddenGrads<T>& g) const {
        const int64_t H = g.H;
        gemm_tn<T>(H, H, g.N, g.dg, H, g.h_rec, H, T(0), g.dw_hh, H);  // dW_hh = dG^T H'
        if (g.db_hh) std::copy(g.db_ih, g.db_ih + H, g.db_hh);
    }
};

}  // namespace gatedrnn::detail
