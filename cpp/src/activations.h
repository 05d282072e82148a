// Internal: scalar activation functions and their derivatives in terms of the outputs.
// NaN in gives NaN out (no clamp or comparison turns a NaN into a number).
#pragma once

#include <cmath>

namespace gatedrnn::detail {

template <typename T>
inline T sigmoid(T v) { return T(1) / (T(1) + std::exp(-v)); }

template <typename T>
inline T tanh_(T v) { return std::tanh(v); }

// max(v, 0) that keeps NaN: (NaN < 0) is false, so NaN passes through.
template <typename T>
inline T relu(T v) { return v < T(0) ? T(0) : v; }

// Derivatives, given the activation's output a.
template <typename T>
inline T dsigmoid(T a) { return a * (T(1) - a); }
template <typename T>
inline T dtanh(T a) { return T(1) - a * a; }
template <typename T>
inline T drelu(T a) { return a > T(0) ? T(1) : T(0); }

// Fills bias (n) with b_ih + b_hh (either may be null = zeros).
template <typename T>
inline void add_biases(T* bias, const T* b_ih, const T* b_hh, long n) {
    for (long k = 0; k < n; ++k) bias[k] = (b_ih ? b_ih[k] : T(0)) + (b_hh ? b_hh[k] : T(0));
}

}  // namespace gatedrnn::detail
