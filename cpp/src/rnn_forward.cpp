#include "rnn_cell.h"

namespace gatedrnn {

int64_t rnn_workspace_size(const Sequence& seq) {
    return detail::workspace_elements(seq, detail::RnnCell<float>::G, detail::RnnCell<float>::extra_planes);
}

template <typename T>
void rnn_forward(T* y, T* h_n, const T* x, const Weights<T>& w, const T* h0, const T* mask,
                 T* workspace, const Sequence& seq, Activation act,
                  const PackedLayer<T>* packed) {
    detail::forward_sequence(detail::RnnCell<T>{act}, y, h_n, static_cast<T*>(nullptr), x, w, h0,
                             static_cast<const T*>(nullptr), mask, workspace, seq, packed);
}

template void rnn_forward<float>(float*, float*, const float*, const Weights<float>&, const float*,
                                 const float*, float*, const Sequence&, Activation,
                                  const PackedLayer<float>*);
template void rnn_forward<double>(double*, double*, const double*, const Weights<double>&,
                                  const double*, const double*, double*, const Sequence&, Activation,
                                  const PackedLayer<double>*);

}  // namespace gatedrnn
