// gatedrnn core: vanilla (Elman) RNN over a batch of variable-length sequences.
//
//   h_t = act(W_ih x_t + b_ih + W_hh (m (.) h_{t-1}) + b_hh),   act = tanh | relu
// m is the optional recurrent mask (B, H). Call order and aliasing as in lstm.h.
#pragma once

#include "gatedrnn/common.h"

namespace gatedrnn {

enum class Activation : int { tanh = 0, relu = 1 };

// Elements of the training workspace; planes over the T*B rows of the sequence matrix:
//   act (T*B, H): h_t;  h_prev (T*B, H): unmasked h_{t-1}
int64_t rnn_workspace_size(const Sequence& seq);

// y: (T,B,H) or (B,T,H)  h_n: (B,H)  x: (T,B,I) or (B,T,I)
// w: (H, I), (H, H), (H), (H)  h0, mask: (B,H) or nullptr
template <typename T>
void rnn_forward(T* y, T* h_n,
                 const T* x, const Weights<T>& w, const T* h0, const T* mask,
                 T* workspace, const Sequence& seq, Activation act,
                  const PackedLayer<T>* packed = nullptr);

// dx: like x, or nullptr: dX is not computed (a first layer, whose input is data)
// dh0: (B,H)  dw_ih (H,I)  dw_hh (H,H)  db_ih, db_hh (H) or nullptr
// dh_seq: like y or nullptr  dy: like y or nullptr  dh_n: (B,H) or nullptr
template <typename T>
void rnn_backward(T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, T* dh_seq,
                  const T* dy, const T* dh_n,
                  const T* x, const Weights<T>& w, const T* mask, const T* workspace,
                  const Sequence& seq, Activation act);

}  // namespace gatedrnn
