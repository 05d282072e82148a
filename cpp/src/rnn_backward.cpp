#include "rnn_cell.h"

namespace gatedrnn {

template <typename T>
void rnn_backward(T* dx, T* dh0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, T* dh_seq, const T* dy,
                  const T* dh_n, const T* x, const Weights<T>& w, const T* mask,
                  const T* workspace, const Sequence& seq, Activation act) {
    detail::backward_sequence(detail::RnnCell<T>{act}, dx, dh0, static_cast<T*>(nullptr), dw_ih,
                              dw_hh, db_ih, db_hh, dh_seq, dy, dh_n, static_cast<const T*>(nullptr),
                              x, w, mask, workspace, seq);
}

template void rnn_backward<float>(float*, float*, float*, float*, float*, float*, float*,
                                  const float*, const float*, const float*, const Weights<float>&,
                                  const float*, const float*, const Sequence&, Activation);
template void rnn_backward<double>(double*, double*, double*, double*, double*, double*, double*,
                                   const double*, const double*, const double*,
                                   const Weights<double>&, const double*, const double*,
                                   const Sequence&, Activation);

}  // namespace gatedrnn
