// Internal: the GRU step, reset-after and reset-before (see gatedrnn/gru.h for the equations).
//
// reset_after: one recurrent GEMM per step (N = 3H); hn = W_hn h' + b_hn is saved, and the
// recurrent side of the n gate gets dn_pre (.) r while the input side gets dn_pre.
// reset_before: two dependent GEMMs per step, [r z] from W_h[rz] h', then n from
// W_hn (r (.) h'); r (.) h' is saved for dW_hn.
#pragma once

#include "activations.h"
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

    void fold_bias(T* bias, const Weights<T>& w, int64_t H) const {
        add_biases(bias, w.b_ih, w.b_hh, 3 * H);
        // reset_after keeps b_hn inside r (.) (W_hn h' + b_hn): only b_in folds.
        if (reset_after)
            for (int64_t k = 2 * H; k < 3 * H; ++k) bias[k] = w.b_ih ? w.b_ih[k] : T(0);
    }

    // reset_after: W_hh^T (H, 3H) in one; reset_before: W_h[rz]^T (H, 2H) and W_hn^T (H, H).
    void pack_forward(PackedB<T> (&p)[2], const Weights<T>& w, int64_t H) const {
        if (reset_after) {
            pack_b(p[0], Trans::yes, w.w_hh, H, H, 3 * H);
        } else {
            pack_b(p[0], Trans::yes, w.w_hh, H, H, 2 * H);
            pack_b(p[1], Trans::yes, w.w_hh + 2 * H * H, H, H, H);
        }
    }
    // Both forms: W_h[rz] (2H, H) and W_hn (H, H), since the n block's gradient differs.
    void pack_backward(PackedB<T> (&p)[2], const Weights<T>& w, int64_t H) const {
        pack_b(p[0], Trans::no, w.w_hh, H, 2 * H, H);
        pack_b(p[1], Trans::no, w.w_hh + 2 * H * H, H, H, H);
    }

    void forward_step(const StepForward<T>& a) const {
        const int64_t H = a.H;
        if (reset_after) {
            gemm_packed_parallel<T>(a.Bs, a.h_rec, H, a.packed[0], T(0), a.gates, 3 * H);
            const T* b_hn = a.w->b_hh ? a.w->b_hh + 2 * H : nullptr;
            for_rows(a.Bs, 30 * H, [&](int64_t j) {
                T* xw = a.xw + j * 3 * H;
                const T* g = a.gates + j * 3 * H;
                T* h = a.h + j * H;
                for (int64_t k = 0; k < H; ++k) {
                    const T r = sigmoid(xw[k] + g[k]);
                    const T z = sigmoid(xw[H + k] + g[H + k]);
                    const T hn = g[2 * H + k] + (b_hn ? b_hn[k] : T(0));
                    const T n = tanh_(xw[2 * H + k] + r * hn);
                    h[k] = (T(1) - z) * n + z * h[k];
                    if (a.training) {
                        xw[k] = r, xw[H + k] = z, xw[2 * H + k] = n;
                        a.save[0][j * H + k] = hn;
                    }
                }
            });
            return;
        }
        // reset_before, phase 1: [r z] = sigma(xw[rz] + h' W_h[rz]^T)
        gemm_packed_parallel<T>(a.Bs, a.h_rec, H, a.packed[0], T(0), a.gates, 3 * H);
        T* rh = a.training ? a.save[0] : a.scratch;  // (Bs, H) r (.) h'
        for_rows(a.Bs, 20 * H, [&](int64_t j) {
            const T* xw = a.xw + j * 3 * H;
            T* g = a.gates + j * 3 * H;
            for (int64_t k = 0; k < 2 * H; ++k) g[k] = sigmoid(xw[k] + g[k]);
            for (int64_t k = 0; k < H; ++k) rh[j * H + k] = g[k] * a.h_rec[j * H + k];
        });
        // phase 2: n = tanh(xw[n] + (r (.) h') W_hn^T), then the update.
        gemm_packed_parallel<T>(a.Bs, rh, H, a.packed[1], T(0), a.gates + 2 * H, 3 * H);
        for_rows(a.Bs, 12 * H, [&](int64_t j) {
            T* xw = a.xw + j * 3 * H;
            const T* g = a.gates + j * 3 * H;
            T* h = a.h + j * H;
            for (int64_t k = 0; k < H; ++k) {
                const T z = g[H + k];
                const T n = tanh_(xw[2 * H + k] + g[2 * H + k]);
                h[k] = (T(1) - z) * n + z * h[k];
                if (a.training) xw[k] = g[k], xw[H + k] = z, xw[2 * H + k] = n;
            }
        });
    }

    void backward_step(const StepBackward<T>& a) const {
        const int64_t H = a.H;
        T* dh_rec = a.scratch;   // (Bs, H) gradient reaching h' = m (.) h_{t-1}
        T* direct = a.scratch2;  // (Bs, H) z (.) dh_t, the unmasked path to h_{t-1}
        if (reset_after) {
            for_rows(a.Bs, 20 * H, [&](int64_t j) {
                const T* act = a.act + j * 3 * H;
                const T* hn = a.saved[0] + j * H;
                const T* h_prev = a.h_prev + j * H;
                const T* dh = a.dh + j * H;
                T* dg = a.dg + j * 3 * H;
                for (int64_t k = 0; k < H; ++k) {
                    const T r = act[k], z = act[H + k], n = act[2 * H + k];
                    const T dn_pre = dh[k] * (T(1) - z) * dtanh(n);
                    dg[k] = dn_pre * hn[k] * dsigmoid(r);
                    dg[H + k] = dh[k] * (h_prev[k] - n) * dsigmoid(z);
                    dg[2 * H + k] = dn_pre;
                    a.dg_extra[j * H + k] = dn_pre * r;
                    direct[j * H + k] = dh[k] * z;
                }
            });
            gemm_packed_parallel<T>(a.Bs, a.dg, 3 * H, a.packed[0], T(0), dh_rec, H);
            gemm_packed_parallel<T>(a.Bs, a.dg_extra, H, a.packed[1], T(1), dh_rec, H);
        } else {
            for_rows(a.Bs, 12 * H, [&](int64_t j) {
                const T* act = a.act + j * 3 * H;
                const T* h_prev = a.h_prev + j * H;
                const T* dh = a.dh + j * H;
                T* dg = a.dg + j * 3 * H;
                for (int64_t k = 0; k < H; ++k) {
                    const T z = act[H + k], n = act[2 * H + k];
                    dg[2 * H + k] = dh[k] * (T(1) - z) * dtanh(n);
                    dg[H + k] = dh[k] * (h_prev[k] - n) * dsigmoid(z);
                    direct[j * H + k] = dh[k] * z;
                }
            });
            // d(r (.) h') = dn_pre W_hn
            gemm_packed_parallel<T>(a.Bs, a.dg + 2 * H, 3 * H, a.packed[1], T(0), dh_rec, H);
            for_rows(a.Bs, 8 * H, [&](int64_t j) {
                const T* act = a.act + j * 3 * H;
                const T* h_prev = a.h_prev + j * H;
                T* d_rh = dh_rec + j * H;
                T* dg = a.dg + j * 3 * H;
                for (int64_t k = 0; k < H; ++k) {
                    const T r = act[k];
                    const T h_in = a.mask ? h_prev[k] * a.mask[j * H + k] : h_prev[k];
                    dg[k] = d_rh[k] * h_in * dsigmoid(r);
                    d_rh[k] *= r;  // now the gradient reaching h' through r (.) h'
                }
            });
            gemm_packed_parallel<T>(a.Bs, a.dg, 3 * H, a.packed[0], T(1), dh_rec, H);
        }
        for (int64_t k = 0; k < a.Bs * H; ++k)
            a.dh[k] = (a.mask ? dh_rec[k] * a.mask[k] : dh_rec[k]) + direct[k];
    }

    void hidden_weight_grads(const HiddenGrads<T>& g) const {
        const int64_t H = g.H;
        T* dw_hn = g.dw_hh + 2 * H * H;
        gemm_tn<T>(2 * H, H, g.N, g.dg, 3 * H, g.h_rec, H, T(0), g.dw_hh, H);  // dW_h[rz]
        if (reset_after) {
            gemm_tn<T>(H, H, g.N, g.dg_extra, H, g.h_rec, H, T(0), dw_hn, H);
            if (g.db_hh) {
                std::copy(g.db_ih, g.db_ih + 2 * H, g.db_hh);
                column_sums(g.db_hh + 2 * H, g.dg_extra, g.N, H);
            }
        } else {
            gemm_tn<T>(H, H, g.N, g.dg + 2 * H, 3 * H, g.saved[0], H, T(0), dw_hn, H);
            if (g.db_hh) std::copy(g.db_ih, g.db_ih + 3 * H, g.db_hh);
        }
    }
};

}  // namespace gatedrnn::detail
