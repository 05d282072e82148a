// Internal: the vanilla RNN step (see gatedrnn/rnn.h for the equations).
#pragma once

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
    int forward_phases() const { return 1; }
    int backward_phases() const { return 2; }

    void fold_bias(T* bias, const Weights<T>& w, int64_t H) const {
        detail::fold_bias(bias, w, G, H, false);
    }

    // Phase 0's recurrent GEMM, which forward_phase(0) runs unless a.gemm0_done.
    void forward_gemm0(const StepForward<T>& a, const Slice& sl) const {
        gates_gemm(sl, a.Bs, a.h_rec, a.H, 0, a.packed, 0, 1, a.gates, a.H, a.H, false, a.a_pack,
                   a.a_packed);
    }
    void forward_phase(int, const StepForward<T>& a, const Slice& sl) const {
        if (!a.gemm0_done) forward_gemm0(a, sl);
        forward_rows(a, sl, G, [&](isa::Row<T>& r, int64_t) {
            r.activation = activation == Activation::relu;
            a.k->rnn_forward(r);
        });
    }

    void backward_phase(int phase, const StepBackward<T>& a, const Slice& sl) const {
        if (phase == 0) {
            backward_rows(a, sl, G, [&](isa::Row<T>& r, int64_t) {
                r.activation = activation == Activation::relu;
                a.k->rnn_backward(r);
            });
            return;
        }
        gates_gemm(sl, a.Bs, a.dg, a.H, a.H, a.packed, 0, 1, a.dh_rec, a.H, 0, false, a.a_pack);
        finish_dh(a, sl, false);
    }

    void hidden_weight_grads(const HiddenGrads<T>& g) const {
        const int64_t H = g.H;
        gemm_tn<T>(H, H, g.N, g.dg, H, g.h_rec, H, T(0), g.dw_hh, H);  // dW_hh = dG^T H'
        if (g.db_hh) std::copy(g.db_ih, g.db_ih + H, g.db_hh);
    }
};

}  // namespace gatedrnn::detail
