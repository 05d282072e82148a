#include "lstm_cell.h"

namespace gatedrnn {

template <typename T>
void lstm_backward(T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, T* dh_seq,
                   const T* dy, const T* dh_n, const T* dc_n, const T* x, const Weights<T>& w,
                   const T* mask, const T* workspace, const Sequence& seq) {
    detail::backward_sequence(detail::LstmCell<T>{}, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh,
                              dh_seq, dy, dh_n, dc_n, x, w, mask, workspace, seq);
}

template void lstm_backward<float>(float*, float*, float*, float*, float*, float*, float*, float*,
                                   const float*, const float*, const float*, const float*,
                                   const Weights<float>&, const float*, const float*,
                                   const Sequence&);
template void lstm_backward<double>(double*, double*, double*, double*, double*, double*, double*,
                                    double*, const double*, const double*, const double*,
                                    const double*, const Weights<double>&, const double*,
                                    const double*, const Sequence&);

}  // namespace gatedrnn
