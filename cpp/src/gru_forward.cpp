#include "gru_cell.h"

namespace gatedrnn {

int64_t gru_workspace_size(const Sequence& seq) {
    return detail::workspace_elements(seq, detail::GruCell<float>::G, detail::GruCell<float>::extra_planes);
}

template <typename T>
void gru_forward(T* y, T* h_n, const T* x, const Weights<T>& w, const T* h0, const T* mask,
                 T* workspace, const Sequence& seq, bool reset_after,
                  const PackedLayer<T>* packed) {
    detail::forward_sequence(detail::GruCell<T>{reset_after}, y, h_n, static_cast<T*>(nullptr), x,
                             w, h0, static_cast<const T*>(nullptr), mask, workspace, seq, packed);
}

template void gru_forward<float>(float*, float*, const float*, const Weights<float>&, const float*,
                                 const float*, float*, const Sequence&, bool,
                                  const PackedLayer<float>*);
template void gru_forward<double>(double*, double*, const double*, const Weights<double>&,
                                  const double*, const double*, double*, const Sequence&, bool,
                                  const PackedLayer<double>*);

}  // namespace gatedrnn
