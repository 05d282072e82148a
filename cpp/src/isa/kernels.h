// The kernel bodies, one template over the vector type V (vec.h) for every ISA. Include only
// from an ISA unit, inside its anonymous namespace, after vec.h.
//
// Accuracy of the activations (test_activations.py holds them to it, against float64):
//   exp: range reduction x = n ln2 + r, |r| <= ln2/2, ln2 split in two parts so n ln2 is exact,
//        then the Taylor series of e^r to degree 7 (float) / 13 (double): truncation below
//        0.1 ulp, so the result is within ~2 ulp.
//   sigmoid(x) = 1 / (1 + e^-x), within ~3 ulp; x clamped to [-87, 87] (float) / [-708, 708]
//        (double) so no subnormal is produced (beyond the clamp the true value is below the
//        smallest normal number).
//   tanh(x) = sign(x) (-expm1(-2|x|)) / (2 + expm1(-2|x|)), with expm1 from the same reduction
//        and a polynomial without its constant term, so small |x| keeps full relative accuracy;
//        within ~4 ulp; |x| clamped to 9 (float) / 19.1 (double), where tanh rounds to 1.
//   NaN in gives NaN out: every clamp keeps NaN.

template <typename T>
struct Consts;
template <>
struct Consts<float> {
    static constexpr float exp_hi = 87.0f, exp_lo = -87.0f, tanh_max = 9.0f;
    static constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
    static constexpr int taylor = 7;
};
template <>
struct Consts<double> {
    static constexpr double exp_hi = 708.0, exp_lo = -708.0, tanh_max = 19.1;
    static constexpr double ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10;
    static constexpr int taylor = 13;
};

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// e^x - 1 via x = n ln2 + r:  2^n (e^r - 1) + (2^n - 1). Caller clamps x to the normal range.
template <class V>
inline typename V::R expm1_v(typename V::R x) {
    using T = typename V::T;
    using C = Consts<T>;
    const auto n = V::round(V::mul(x, V::set1(T(1.4426950408889634))));
    auto r = V::fmadd(n, V::set1(-C::ln2_hi), x);
    r = V::fmadd(n, V::set1(-C::ln2_lo), r);
    // e^r - 1 = r (1 + r/2 (1 + r/3 (1 + ...))) : Horner from the highest term
    auto p = V::set1(T(1));
    for (int k = C::taylor; k >= 2; --k) p = V::fmadd(V::mul(r, V::set1(T(1) / T(k))), p, V::set1(T(1)));
    const auto em1 = V::mul(r, p);
    const auto two_n = V::pow2n(n);
    return V::add(V::mul(two_n, em1), V::sub(two_n, V::set1(T(1))));
}

template <class V>
inline typename V::R exp_v(typename V::R x) {
    using T = typename V::T;
    return V::add(expm1_v<V>(x), V::set1(T(1)));
}

template <class V>
inline typename V::R sigmoid_v(typename V::R x) {
    using T = typename V::T;
    using C = Consts<T>;
    x = V::min_keep_nan(V::set1(C::exp_hi), V::max_keep_nan(V::set1(C::exp_lo), x));
    const auto e = exp_v<V>(V::sub(V::zero(), x));
    return V::div(V::set1(T(1)), V::add(V::set1(T(1)), e));
}

template <class V>
inline typename V::R tanh_v(typename V::R x) {
    using T = typename V::T;
    const auto a = V::min_keep_nan(V::set1(Consts<T>::tanh_max), V::abs(x));
    const auto m = expm1_v<V>(V::mul(a, V::set1(T(-2))));  // in (-1, 0]
    const auto t = V::div(V::sub(V::zero(), m), V::add(V::set1(T(2)), m));
    return V::copysign_from(t, x);
}

// Applies f to n elements, the tail through a padded buffer (no masked loads needed).
template <class V, class F>
inline void map_v(int64_t n, const typename V::T* in, typename V::T* out, F f) {
    using T = typename V::T;
    int64_t i = 0;
    for (; i + V::W <= n; i += V::W) V::store(out + i, f(V::load(in + i)));
    if (i < n) {
        T buf[V::W];
        for (int k = 0; k < V::W; ++k) buf[k] = i + k < n ? in[i + k] : T(0);
        V::store(buf, f(V::load(buf)));
        for (int64_t k = 0; i + k < n; ++k) out[i + k] = buf[k];
    }
}

template <class V>
void sigmoid_array(int64_t n, const typename V::T* in, typename V::T* out) {
    map_v<V>(n, in, out, [](typename V::R x) { return sigmoid_v<V>(x); });
}
template <class V>
void tanh_array(int64_t n, const typename V::T* in, typename V::T* out) {
    map_v<V>(n, in, out, [](typename V::R x) { return tanh_v<V>(x); });
}

// ---- GEMM leaves -----------------------------------------------------------------------------
template <class V>
struct GemmKernels {
    using T = typename V::T;
    static constexpr int NR = 2 * V::W;
    static constexpr int MR = 6;

    static void pack_b(bool trans, const T* B, int64_t ldb, int64_t k0, int64_t kc, int64_t n0,
                       int64_t nc, T* dst) {
        for (int64_t jp = 0; jp < nc; jp += NR) {
            const int64_t cols = min64(NR, nc - jp);
            for (int64_t k = 0; k < kc; ++k) {
                const int64_t r = k0 + k;
                if (trans) {
                    for (int64_t j = 0; j < cols; ++j) dst[j] = B[(n0 + jp + j) * ldb + r];
                } else {
                    const T* src = B + r * ldb + n0 + jp;
                    for (int64_t j = 0; j < cols; ++j) dst[j] = src[j];
                }
                for (int64_t j = cols; j < NR; ++j) dst[j] = T(0);
                dst += NR;
            }
        }
    }

    static void pack_a(bool trans, const T* A, int64_t lda, int64_t m0, int64_t mc, int64_t k0,
                       int64_t kc, T* dst) {
        for (int64_t ip = 0; ip < mc; ip += MR) {
            const int64_t rows = min64(MR, mc - ip);
            for (int64_t k = 0; k < kc; ++k) {
                for (int64_t i = 0; i < rows; ++i) {
                    const int64_t r = m0 + ip + i, c = k0 + k;
                    dst[i] = trans ? A[c * lda + r] : A[r * lda + c];
                }
                for (int64_t i = rows; i < MR; ++i) dst[i] = T(0);
                dst += MR;
            }
        }
    }

    template <int M>
    static void tile(int64_t kc, const T* a, int64_t a_row, int64_t a_col, const T* b, T* C,
                     int64_t ldc, int64_t cols, T alpha, T beta, bool overwrite) {
        typename V::R acc0[M], acc1[M];
        for (int i = 0; i < M; ++i) acc0[i] = V::zero(), acc1[i] = V::zero();
        for (int64_t k = 0; k < kc; ++k) {
            const auto b0 = V::load(b + k * NR), b1 = V::load(b + k * NR + V::W);
            const T* ak = a + k * a_col;
            for (int i = 0; i < M; ++i) {
                const auto ai = V::set1(ak[i * a_row]);
                acc0[i] = V::fmadd(ai, b0, acc0[i]);
                acc1[i] = V::fmadd(ai, b1, acc1[i]);
            }
        }
        const auto va = V::set1(alpha), vb = V::set1(beta);
        for (int i = 0; i < M; ++i) {
            T* c = C + i * ldc;
            auto v0 = V::mul(va, acc0[i]), v1 = V::mul(va, acc1[i]);
            if (cols == NR) {
                if (!overwrite) {
                    v0 = V::add(V::load(c), v0), v1 = V::add(V::load(c + V::W), v1);
                } else if (beta != T(0)) {
                    v0 = V::fmadd(vb, V::load(c), v0), v1 = V::fmadd(vb, V::load(c + V::W), v1);
                }
                V::store(c, v0);
                V::store(c + V::W, v1);
            } else {
                T buf[NR];
                V::store(buf, v0);
                V::store(buf + V::W, v1);
                for (int64_t j = 0; j < cols; ++j)
                    c[j] = !overwrite ? c[j] + buf[j] : (beta == T(0) ? buf[j] : beta * c[j] + buf[j]);
            }
        }
    }

    static void kernel(int64_t kc, const T* a, int64_t a_row, int64_t a_col, int64_t rows,
                       const T* b, T* C, int64_t ldc, int64_t cols, T alpha, T beta, bool overwrite) {
        switch (rows) {
            case 1: tile<1>(kc, a, a_row, a_col, b, C, ldc, cols, alpha, beta, overwrite); break;
            case 2: tile<2>(kc, a, a_row, a_col, b, C, ldc, cols, alpha, beta, overwrite); break;
            case 3: tile<3>(kc, a, a_row, a_col, b, C, ldc, cols, alpha, beta, overwrite); break;
            case 4: tile<4>(kc, a, a_row, a_col, b, C, ldc, cols, alpha, beta, overwrite); break;
            case 5: tile<5>(kc, a, a_row, a_col, b, C, ldc, cols, alpha, beta, overwrite); break;
            default: tile<6>(kc, a, a_row, a_col, b, C, ldc, cols, alpha, beta, overwrite); break;
        }
    }
};

template <class V>
gatedrnn::isa::Kernels<typename V::T> make_kernels() {
    gatedrnn::isa::Kernels<typename V::T> k;
    k.nr = GemmKernels<V>::NR;
    k.mr = GemmKernels<V>::MR;
    k.pack_b = &GemmKernels<V>::pack_b;
    k.pack_a = &GemmKernels<V>::pack_a;
    k.kernel = &GemmKernels<V>::kernel;
    k.sigmoid = &sigmoid_array<V>;
    k.tanh = &tanh_array<V>;
    return k;
}
