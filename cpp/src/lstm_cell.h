// Internal: the LSTM step (see gatedrnn/lstm.h for the equations).
#pragma once

#include "activations.h"
#include "driver.h"
#include "gatedrnn/lstm.h"

namespace gatedrnn::detail {

template <typename T>
struct LstmCell {
    static constexpr int G = 4;
    static constexpr int extra_planes = 2;  // c_{t-1}, tanh(c_t)
    static constexpr bool has_cell_state = true;
    bool uses_dg_extra() const { return false; }

    void fold_bias(T* bias, const Weights<T>& w, int64_t H) const {
        add_biases(bias, w.b_ih, w.b_hh, 4 * H);
    }

    void pack_forward(PackedB<T> (&p)[2], const Weights<T>& w, int64_t H) const {
        pack_b(p[0], Trans::yes, w.w_hh, H, H, 4 * H);  // W_hh^T (H, 4H)
    }
    void pack_backward(PackedB<T> (&p)[2], const Weights<T>& w, int64_t H) const {
        pack_b(p[0], Trans::no, w.w_hh, H, 4 * H, H);   // W_hh (4H, H)
    }

    void forward_step(const StepForward<T>& a) const {
        const int64_t H = a.H;
        gemm_packed_parallel<T>(a.Bs, a.h_rec, H, a.packed[0], T(0), a.gates, 4 * H);
        for_rows(a.Bs, 40 * H, [&](int64_t j) {
            T* xw = a.xw + j * 4 * H;
            const T* g = a.gates + j * 4 * H;
            T* h = a.h + j * H;
            T* c = a.c + j * H;
            for (int64_t k = 0; k < H; ++k) {
                const T i = sigmoid(xw[k] + g[k]);
                const T f = sigmoid(xw[H + k] + g[H + k]);
                const T gg = tanh_(xw[2 * H + k] + g[2 * H + k]);
                const T o = sigmoid(xw[3 * H + k] + g[3 * H + k]);
                const T c_prev = c[k];
                c[k] = f * c_prev + i * gg;
                const T c_tanh = tanh_(c[k]);
                h[k] = o * c_tanh;
                if (a.training) {
                    xw[k] = i, xw[H + k] = f, xw[2 * H + k] = gg, xw[3 * H + k] = o;
                    a.save[0][j * H + k] = c_prev;
                    a.save[1][j * H + k] = c_tanh;
                }
            }
        });
    }

    void backward_step(const StepBackward<T>& a) const {
        const int64_t H = a.H;
        for_rows(a.Bs, 12 * H, [&](int64_t j) {
            const T* act = a.act + j * 4 * H;
            const T* c_prev = a.saved[0] + j * H;
            const T* c_tanh = a.saved[1] + j * H;
            const T* dh = a.dh + j * H;
            T* dc = a.dc + j * H;
            T* dg = a.dg + j * 4 * H;
            for (int64_t k = 0; k < H; ++k) {
                const T i = act[k], f = act[H + k], g = act[2 * H + k], o = act[3 * H + k];
                const T dc_total = dc[k] + dh[k] * o * dtanh(c_tanh[k]);
                dg[k] = dc_total * g * dsigmoid(i);
                dg[H + k] = dc_total * c_prev[k] * dsigmoid(f);
                dg[2 * H + k] = dc_total * i * dtanh(g);
                dg[3 * H + k] = dh[k] * c_tanh[k] * dsigmoid(o);
                dc[k] = dc_total * f;
            }
        });
        // dh_{t-1} = m (.) (dG W_hh)
        gemm_packed_parallel<T>(a.Bs, a.dg, 4 * H, a.packed[0], T(0), a.scratch, H);
        for (int64_t k = 0; k < a.Bs * H; ++k)
            a.dh[k] = a.mask ? a.scratch[k] * a.mask[k] : a.scratch[k];
    }

    void hidden_weight_grads(const HiddenGrads<T>& g) const {
        const int64_t H = g.H;
        gemm_tn<T>(4 * H, H, g.N, g.dg, 4 * H, g.h_rec, H, T(0), g.dw_hh, H);  // dG^T H'
        if (g.db_hh) std::copy(g.db_ih, g.db_ih + 4 * H, g.db_hh);
    }
};

}  // namespace gatedrnn::detail
