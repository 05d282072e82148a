// gatedrnn core: GRU over a batch of variable-length sequences (one layer, one direction).
//
//   r = sigma(W_ir x + b_ir + W_hr h' + b_hr),  z = sigma(W_iz x + b_iz + W_hz h' + b_hz)
//   reset_after=true  (PyTorch, cuDNN):  n = tanh(W_in x + b_in + r (.) (W_hn h' + b_hn))
//   reset_after=false (Cho et al. 2014): n = tanh(W_in x + b_in + W_hn (r (.) h') + b_hn)
//   h_t = (1 - z) (.) n + z (.) h_{t-1}
// with h' = m (.) h_{t-1} (m the optional recurrent mask (B, H)); the z (.) h_{t-1} term and the
// carried state are unmasked. Rows of the weights are blocked r, z, n.
//
// Call order and aliasing as in lstm.h.
#pragma once

#include "gatedrnn/common.h"

namespace gatedrnn {

// Elements of the training workspace; planes over the T*B rows of the sequence matrix:
//   act (T*B, 3H): r z n;  h_prev (T*B, H): unmasked h_{t-1};
//   extra (T*B, H): reset_after: W_hn h' + b_hn;  reset_before: r (.) h'
int64_t gru_workspace_size(const Sequence& seq);

// y: (T,B,H) or (B,T,H)  h_n: (B,H)  x: (T,B,I) or (B,T,I)
// w: (3H, I), (3H, H), (3H), (3H)  h0, mask: (B,H) or nullptr
// workspace: gru_workspace_size(seq) elements (training) or nullptr (inference)
template <typename T>
void gru_forward(T* y, T* h_n,
                 const T* x, const Weights<T>& w, const T* h0, const T* mask,
                 T* workspace, const Sequence& seq, bool reset_after,
                  const PackedLayer<T>* packed = nullptr);

// dx: like x, or nullptr: dX is not computed (a first layer, whose input is data)
// dh0: (B,H)  dw_ih (3H,I)  dw_hh (3H,H)  db_ih, db_hh (3H) or nullptr
// dh_seq: like y or nullptr  dy: like y or nullptr  dh_n: (B,H) or nullptr
template <typename T>
void gru_backward(T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, T* dh_seq,
                  const T* dy, const T* dh_n,
                  const T* x, const Weights<T>& w, const T* mask, const T* workspace,
                  const Sequence& seq, bool reset_after);

}  // namespace gatedrnn
