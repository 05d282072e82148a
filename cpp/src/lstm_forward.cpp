#include "lstm_cell.h"

namespace gatedrnn {

int64_t lstm_workspace_size(const Sequence& seq) {
    return detail::workspace_elements(seq, detail::LstmCell<float>::G, detail::LstmCell<float>::extra_planes);
}

template <typename T>
void lstm_forward(T* y, T* h_n, T* c_n, const T* x, const Weights<T>& w, const T* h0, const T* c0,
                  const T* mask, T* workspace, const Sequence& seq,
                  const PackedLayer<T>* packed) {
    detail::forward_sequence(detail::LstmCell<T>{}, y, h_n, c_n, x, w, h0, c0, mask, workspace, seq, packed);
}

template void lstm_forward<float>(float*, float*, float*, const float*, const Weights<float>&,
                                  const float*, const float*, const float*, float*, const Sequence&,
                                  const PackedLayer<float>*);
template void lstm_forward<double>(double*, double*, double*, const double*,
                                   const Weights<double>&, const double*, const double*,
                                   const double*, double*, const Sequence&,
                                  const PackedLayer<double>*);

}  // namespace gatedrnn
