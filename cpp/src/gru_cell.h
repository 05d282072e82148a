// Internal: the GRU step, reset-after and reset-before (see gatedrnn/gru.h for the equations).
//
// reset_after: one GEMM phase per step; hn = W_hn h' + b_hn is saved, and the recurrent side of
// the n gate gets dn_pre (.) r while the input side gets dn_pre.
// reset_before: two dependent GEMM phases per step, [r z] from W_h[rz] h', then n from
// W_hn (r (.) h'); r (.) h' is saved for dW_hn. Backward: three phases (two barriers).
#pragma once

#include "driver.h"
#include "gatedrnn/gru.h"

namespace gatedrnn::detail {

template <typename T>
struct GruCell {
    static constexpr int G = 3;
    static constexpr int extra_planes = 1;  // reset_after: hn;  reset_before: r (.) h'
    static constexpr bool has_cell_state = false;
    bool reset_after;
    bool uses_dg_extra() const { return reset_after; }
    int forward_phases() const { return reset_after ? 1 : 2; }
    int backward_phases() const { return reset_after ? 2 : 3; }

    void fold_bias(T* bias, const Weights<T>& w, int64_t H) const {
        detail::fold_bias(bias, w, G, H, reset_after);
    }

    // Phase 0's recurrent GEMM, which forward_phase(0) runs unless a.gemm0_done: all three
    // gates (reset-after), [r z] (reset-before).
    void forward_gemm0(const StepForward<T>& a, const Slice& sl) const {
        gates_gemm(sl, a.Bs, a.h_rec, a.H, 0, a.packed, 0, reset_after ? 3 : 2, a.gates, 3 * a.H,
                   a.H, false, a.a_pack, a.a_packed);
    }
    void forward_phase(int phase, const StepForward<T>& a, const Slice& sl) const {
        const int64_t H = a.H;
        if (phase == 0 && !a.gemm0_done) forward_gemm0(a, sl);
        if (reset_after) {
            forward_rows(a, sl, G, [&](isa::Row<T>& r, int64_t) {
                r.b_hn = a.w->b_hh ? a.w->b_hh + 2 * H + sl.u_begin : nullptr;
                a.k->gru_ra_forward(r);
            });
            return;
        }
        // r (.) h' lives in the saved plane when training, in scratch otherwise.
        T* rh = a.training ? a.save[0] : a.rh;
        if (phase == 0) {
            forward_rows(a, sl, G, [&](isa::Row<T>& r, int64_t j) {
                r.rh = rh + j * H + sl.u_begin;
                a.k->gru_rb_forward1(r);
            });
        } else {
            gates_gemm(sl, a.Bs, rh, H, 0, a.packed, 2, 3, a.gates, 3 * H, H, false, a.a_pack,
                       a.a_packed);
            forward_rows(a, sl, G, [&](isa::Row<T>& r, int64_t) { a.k->gru_rb_forward2(r); });
        }
    }

    void backward_phase(int phase, const StepBackward<T>& a, const Slice& sl) const {
        const int64_t H = a.H;
        if (reset_after) {
            if (phase == 0) {
                backward_rows(a, sl, G, [&](isa::Row<T>& r, int64_t) { a.k->gru_ra_backward(r); });
                return;
            }
            gates_gemm(sl, a.Bs, a.dg, 3 * H, H, a.packed, 0, 2, a.dh_rec, H, 0, false, a.a_pack);
            gates_gemm(sl, a.Bs, a.dg_extra, H, 0, a.packed, 2, 3, a.dh_rec, H, 0, true, a.a_pack);
            finish_dh(a, sl, true);
            return;
        }
        if (phase == 0) {
            backward_rows(a, sl, G, [&](isa::Row<T>& r, int64_t) { a.k->gru_rb_backward1(r); });
        } else if (phase == 1) {
            // d(r (.) h') = dn_pre W_hn, then dr_pre and the gradient to h' through r (.) h'.
            gates_gemm(sl, a.Bs, a.dg, 3 * H, H, a.packed, 2, 3, a.dh_rec, H, 0, false, a.a_pack);
            backward_rows(a, sl, G, [&](isa::Row<T>& r, int64_t) { a.k->gru_rb_backward2(r); });
        } else {
            gates_gemm(sl, a.Bs, a.dg, 3 * H, H, a.packed, 0, 2, a.dh_rec, H, 0, true, a.a_pack);
            finish_dh(a, sl, true);
        }
    }

    void hidden_weight_grads(const HiddenGrads<T>& g) const {
        const int64_t H = g.H;
        T* dw_hn = g.dw_hh + 2 * H * H;
        gemm_tn<T>(2 * H, H, g.N, g.dg, 3 * H, g.h_rec, H, T(0), g.dw_hh, H);  // dW_h[rz]
        if (reset_after) {
            gemm_tn<T>(H, H, g.N, g.dg_extra, H, g.h_rec, H, T(0), dw_hn, H);
            if (g.db_hh) {
                std::copy(g.db_ih, g.db_ih + 2 * H, g.db_hh);
                std::copy(g.db_extra, g.db_extra + H, g.db_hh + 2 * H);
            }
        } else {
            gemm_tn<T>(H, H, g.N, g.dg + 2 * H, 3 * H, g.saved[0], H, T(0), dw_hn, H);
            if (g.db_hh) std::copy(g.db_ih, g.db_ih + 3 * H, g.db_hh);
        }
    }
};

}  // namespace gatedrnn::detail
