// gatedrnn core: LSTM over a batch of variable-length sequences (one layer, one direction).
//
//   [i f g o] = W_ih x_t + b_ih + W_hh (m (.) h_{t-1}) + b_hh      (rows blocked i, f, g, o)
//   i, f, o = sigma(.),  g = tanh(.)
//   c_t = f (.) c_{t-1} + i (.) g ;   h_t = o (.) tanh(c_t)
// m is the optional recurrent mask (B, H), all ones when absent; the carried h and c are unmasked.
//
// Call order: lstm_forward (training: with a workspace of lstm_workspace_size elements), then any
// number of lstm_backward calls with the same inputs, weights and workspace, unchanged.
// Aliasing: no output may alias an input. Biases, h0, c0, mask, lengths may be nullptr.
#pragma once

#include "gatedrnn/common.h"

namespace gatedrnn {

// Elements of the training workspace. Layout, planes over the T*B rows of the sequence matrix:
//   act (T*B, 4H): i f g o after their nonlinearities
//   h_prev (T*B, H): unmasked h_{t-1};  c_prev (T*B, H): c_{t-1};  c_tanh (T*B, H): tanh(c_t)
int64_t lstm_workspace_size(const Sequence& seq);

// y: (T,B,H) or (B,T,H)  h_n, c_n: (B,H)
// x: (T,B,I) or (B,T,I)  w: weights (4H, I), (4H, H), (4H), (4H)  h0, c0, mask: (B,H) or nullptr
// workspace: lstm_workspace_size(seq) elements (training) or nullptr (inference)
template <typename T>
void lstm_forward(T* y, T* h_n, T* c_n,
                  const T* x, const Weights<T>& w, const T* h0, const T* c0, const T* mask,
                  T* workspace, const Sequence& seq,
                  const PackedLayer<T>* packed = nullptr);

// dx: like x, or nullptr: dX is not computed (a first layer, whose input is data)
// dh0, dc0: (B,H)  dw_ih (4H,I)  dw_hh (4H,H)  db_ih, db_hh (4H) or nullptr
// dh_seq: like y, or nullptr (dL/dh_t per step)
// dy: like y or nullptr  dh_n, dc_n: (B,H) or nullptr  (nullptr = zero gradient)
// x, w, mask, workspace: exactly as given to lstm_forward in training mode
template <typename T>
void lstm_backward(T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, T* dh_seq,
                   const T* dy, const T* dh_n, const T* dc_n,
                   const T* x, const Weights<T>& w, const T* mask, const T* workspace,
                   const Sequence& seq);

}  // namespace gatedrnn
