// Vector types the ISA kernels are written over, one template body for every ISA.
//
// Include ONLY from an ISA translation unit (cpp/src/isa/kernels_*.cpp), and only inside its
// anonymous namespace: everything here must have internal linkage, so no function compiled
// with -mavx2 or -mavx512f can be picked by the linker for code that runs on the baseline path.
// That is also why nothing here calls a std:: template.
//
// Each type V provides: T (element), W (lanes), R (register), registers (how many the ISA has,
// which sets the GEMM tile height), and static functions load/store (unaligned), load_reg (a load
// the compiler must keep in a register rather than fold into each use as a memory operand: a
// 2- or 3-row GEMM tile would otherwise load every B vector 2 or 3 times), set1, zero, hsum
// (the sum of the lanes), add, sub, mul, quot (a / b: a correctly rounded division, or within
// 0.5 ulp + 2^-27 relative from a refined reciprocal estimate where that is cheaper),
// fmadd(a, b, c) = a*b + c, max_keep_nan(lo, x) / min_keep_nan(hi, x) (x when x is NaN: clamping
// never turns NaN into a number), round (to nearest, |x| < 2^22), pow2n(n) (2^n for
// integer-valued n in the normal range), and the bit operations abs and copysign_from, and
// zero_where_less(v, x, lo) (0 where x < lo, v elsewhere, NaN x included), and
// transpose(r) (r[0..W) the rows of a W x W block in, its columns out: what the packing of a
// matrix into the GEMM's panels uses instead of moving one element at a time).
//
// Pair<V> is a vector of twice the lanes made of two V: with V = the AVX2 type it emulates the
// 16-float AVX-512 tiles on AVX2 hardware, so their tiles and tails run in the tests anywhere.

#if defined(__SSE2__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include <cstdint>
#include <cstring>

// Bit patterns and rounding constants per element type.
template <typename T>
struct FloatBits;
template <>
struct FloatBits<float> {
    using I = int32_t;
    static constexpr int mantissa = 23;
    static constexpr I bias = 127;
    static constexpr float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
};
template <>
struct FloatBits<double> {
    using I = int64_t;
    static constexpr int mantissa = 52;
    static constexpr I bias = 1023;
    static constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52
};

template <typename T>
inline typename FloatBits<T>::I bits_of(T v) {
    typename FloatBits<T>::I i;
    std::memcpy(&i, &v, sizeof(v));
    return i;
}

// ---- portable scalar "vector" (any CPU) -----------------------------------------------------
template <typename TT>
struct Scalar {
    using T = TT;
    using R = TT;
    static constexpr int W = 1;
    static constexpr int registers = 16;
    static R load(const T* p) { return *p; }
    static R load_reg(const T* p) { return *p; }
    static void store(T* p, R v) { *p = v; }
    static R set1(T v) { return v; }
    static R zero() { return T(0); }
    static R add(R a, R b) { return a + b; }
    static T hsum(R v) { return v; }
    static R sub(R a, R b) { return a - b; }
    static R mul(R a, R b) { return a * b; }
    static R quot(R a, R b) { return a / b; }
    static R fmadd(R a, R b, R c) { return a * b + c; }
    static R max_keep_nan(R lo, R x) { return x < lo ? lo : x; }
    static R min_keep_nan(R hi, R x) { return x > hi ? hi : x; }
    static R round(R x) { return (x + FloatBits<T>::magic) - FloatBits<T>::magic; }
    static R pow2n(R n) {
        using I = typename FloatBits<T>::I;
        const I e = static_cast<I>(n) + FloatBits<T>::bias;
        const I b = e << FloatBits<T>::mantissa;
        T out;
        std::memcpy(&out, &b, sizeof(out));
        return out;
    }
    static R abs(R x) { return x < T(0) ? -x : x; }
    static R copysign_from(R magnitude, R sign_source) {
        return sign_source < T(0) ? -magnitude : magnitude;
    }
    static R zero_where_less(R v, R x, R lo) { return x < lo ? T(0) : v; }
    static void transpose(R*) {}
};

// ---- SSE2: the x86-64 baseline -------------------------------------------------------------
#if defined(__SSE2__)
struct Sse2F {
    static constexpr int registers = 16;
    using T = float;
    using R = __m128;
    static constexpr int W = 4;
    static R load(const T* p) { return _mm_loadu_ps(p); }
    static R load_reg(const T* p) { R v = load(p); __asm__("" : "+x"(v)); return v; }
    static void store(T* p, R v) { _mm_storeu_ps(p, v); }
    static R set1(T v) { return _mm_set1_ps(v); }
    static R zero() { return _mm_setzero_ps(); }
    static R add(R a, R b) { return _mm_add_ps(a, b); }
    static T hsum(R v) {
        const R t = _mm_add_ps(v, _mm_movehl_ps(v, v));
        return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
    }
    static R sub(R a, R b) { return _mm_sub_ps(a, b); }
    static R mul(R a, R b) { return _mm_mul_ps(a, b); }
    static R quot(R a, R b) { return _mm_div_ps(a, b); }
    static R fmadd(R a, R b, R c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
    static R max_keep_nan(R lo, R x) { return _mm_max_ps(lo, x); }  // returns x when x is NaN
    static R min_keep_nan(R hi, R x) { return _mm_min_ps(hi, x); }
    static R round(R x) { return _mm_sub_ps(_mm_add_ps(x, set1(FloatBits<T>::magic)), set1(FloatBits<T>::magic)); }
    static R pow2n(R n) {
        const __m128i t = _mm_castps_si128(_mm_add_ps(n, set1(FloatBits<T>::magic)));
        const __m128i e = _mm_add_epi32(t, _mm_set1_epi32(127 - bits_of(FloatBits<T>::magic)));
        return _mm_castsi128_ps(_mm_slli_epi32(e, 23));
    }
    static R abs(R x) { return _mm_andnot_ps(_mm_set1_ps(-0.0f), x); }
    static R copysign_from(R m, R s) {
        return _mm_or_ps(m, _mm_and_ps(_mm_set1_ps(-0.0f), s));
    }
    static R zero_where_less(R v, R x, R lo) { return _mm_andnot_ps(_mm_cmplt_ps(x, lo), v); }
    static void transpose(R* r) { _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]); }
};
struct Sse2D {
    static constexpr int registers = 16;
    using T = double;
    using R = __m128d;
    static constexpr int W = 2;
    static R load(const T* p) { return _mm_loadu_pd(p); }
    static R load_reg(const T* p) { R v = load(p); __asm__("" : "+x"(v)); return v; }
    static void store(T* p, R v) { _mm_storeu_pd(p, v); }
    static R set1(T v) { return _mm_set1_pd(v); }
    static R zero() { return _mm_setzero_pd(); }
    static R add(R a, R b) { return _mm_add_pd(a, b); }
    static T hsum(R v) { return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v))); }
    static R sub(R a, R b) { return _mm_sub_pd(a, b); }
    static R mul(R a, R b) { return _mm_mul_pd(a, b); }
    static R quot(R a, R b) { return _mm_div_pd(a, b); }
    static R fmadd(R a, R b, R c) { return _mm_add_pd(_mm_mul_pd(a, b), c); }
    static R max_keep_nan(R lo, R x) { return _mm_max_pd(lo, x); }
    static R min_keep_nan(R hi, R x) { return _mm_min_pd(hi, x); }
    static R round(R x) { return _mm_sub_pd(_mm_add_pd(x, set1(FloatBits<T>::magic)), set1(FloatBits<T>::magic)); }
    static R pow2n(R n) {
        const __m128i t = _mm_castpd_si128(_mm_add_pd(n, set1(FloatBits<T>::magic)));
        const __m128i e = _mm_add_epi64(t, _mm_set1_epi64x(1023 - bits_of(FloatBits<T>::magic)));
        return _mm_castsi128_pd(_mm_slli_epi64(e, 52));
    }
    static R abs(R x) { return _mm_andnot_pd(_mm_set1_pd(-0.0), x); }
    static R copysign_from(R m, R s) { return _mm_or_pd(m, _mm_and_pd(_mm_set1_pd(-0.0), s)); }
    static R zero_where_less(R v, R x, R lo) { return _mm_andnot_pd(_mm_cmplt_pd(x, lo), v); }
    static void transpose(R* r) {
        const R lo = _mm_unpacklo_pd(r[0], r[1]), hi = _mm_unpackhi_pd(r[0], r[1]);
        r[0] = lo, r[1] = hi;
    }
};
#endif

// ---- AVX2 + FMA ----------------------------------------------------------------------------
#if defined(__AVX2__) && defined(__FMA__)
struct Avx2F {
    static constexpr int registers = 16;
    using T = float;
    using R = __m256;
    static constexpr int W = 8;
    static R load(const T* p) { return _mm256_loadu_ps(p); }
    static R load_reg(const T* p) { R v = load(p); __asm__("" : "+x"(v)); return v; }
    static void store(T* p, R v) { _mm256_storeu_ps(p, v); }
    static R set1(T v) { return _mm256_set1_ps(v); }
    static R zero() { return _mm256_setzero_ps(); }
    static R add(R a, R b) { return _mm256_add_ps(a, b); }
    static T hsum(R v) {
        __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        t = _mm_add_ps(t, _mm_movehl_ps(t, t));
        return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
    }
    static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
    static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
    static R quot(R a, R b) { return _mm256_div_ps(a, b); }
    static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
    static R max_keep_nan(R lo, R x) { return _mm256_max_ps(lo, x); }
    static R min_keep_nan(R hi, R x) { return _mm256_min_ps(hi, x); }
    static R round(R x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static R pow2n(R n) {
        const __m256i t = _mm256_castps_si256(_mm256_add_ps(n, set1(FloatBits<T>::magic)));
        const __m256i e = _mm256_add_epi32(t, _mm256_set1_epi32(127 - bits_of(FloatBits<T>::magic)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
    }
    static R abs(R x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
    static R copysign_from(R m, R s) { return _mm256_or_ps(m, _mm256_and_ps(_mm256_set1_ps(-0.0f), s)); }
    static R zero_where_less(R v, R x, R lo) { return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), v); }
    static void transpose(R* r) {
        R t[8];
        for (int i = 0; i < 4; ++i) {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (int i = 0; i < 2; ++i) {
            r[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
            r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
            r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
            r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
        }
        for (int j = 0; j < 4; ++j) {
            t[j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x20);
            t[4 + j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x31);
        }
        for (int j = 0; j < 8; ++j) r[j] = t[j];
    }
};
struct Avx2D {
    static constexpr int registers = 16;
    using T = double;
    using R = __m256d;
    static constexpr int W = 4;
    static R load(const T* p) { return _mm256_loadu_pd(p); }
    static R load_reg(const T* p) { R v = load(p); __asm__("" : "+x"(v)); return v; }
    static void store(T* p, R v) { _mm256_storeu_pd(p, v); }
    static R set1(T v) { return _mm256_set1_pd(v); }
    static R zero() { return _mm256_setzero_pd(); }
    static R add(R a, R b) { return _mm256_add_pd(a, b); }
    static T hsum(R v) {
        const __m128d t = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
    }
    static R sub(R a, R b) { return _mm256_sub_pd(a, b); }
    static R mul(R a, R b) { return _mm256_mul_pd(a, b); }
    static R quot(R a, R b) { return _mm256_div_pd(a, b); }
    static R fmadd(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
    static R max_keep_nan(R lo, R x) { return _mm256_max_pd(lo, x); }
    static R min_keep_nan(R hi, R x) { return _mm256_min_pd(hi, x); }
    static R round(R x) { return _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static R pow2n(R n) {
        const __m256i t = _mm256_castpd_si256(_mm256_add_pd(n, set1(FloatBits<T>::magic)));
        const __m256i e = _mm256_add_epi64(t, _mm256_set1_epi64x(1023 - bits_of(FloatBits<T>::magic)));
        return _mm256_castsi256_pd(_mm256_slli_epi64(e, 52));
    }
    static R abs(R x) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), x); }
    static R copysign_from(R m, R s) { return _mm256_or_pd(m, _mm256_and_pd(_mm256_set1_pd(-0.0), s)); }
    static R zero_where_less(R v, R x, R lo) { return _mm256_andnot_pd(_mm256_cmp_pd(x, lo, _CMP_LT_OQ), v); }
    static void transpose(R* r) {
        const R t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
        const R t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
        r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
        r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
        r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
        r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
    }
};
#endif

// ---- AVX-512F ------------------------------------------------------------------------------
#if defined(__AVX512F__)
// The last stages of both AVX-512 transposes: 4 * S registers, each four 128-bit blocks, where
// block b of register q * S + j goes to block q of register b * S + j (a 4 x 4 transpose of
// blocks, for each j < S). Blocks hold whatever the earlier stages put there (4 floats, 2 doubles).
template <int S>
inline void transpose_blocks(__m512* r) {
    __m512 t[4 * S];
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < S; ++j) {
            t[2 * i * S + j] = _mm512_shuffle_f32x4(r[2 * i * S + j], r[(2 * i + 1) * S + j], 0x88);
            t[(2 * i + 1) * S + j] = _mm512_shuffle_f32x4(r[2 * i * S + j], r[(2 * i + 1) * S + j], 0xdd);
        }
    for (int j = 0; j < 2 * S; ++j) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[2 * S + j], 0x88);
        r[2 * S + j] = _mm512_shuffle_f32x4(t[j], t[2 * S + j], 0xdd);
    }
}
struct Avx512F {
    static constexpr int registers = 32;
    using T = float;
    using R = __m512;
    static constexpr int W = 16;
    static R load(const T* p) { return _mm512_loadu_ps(p); }
    static R load_reg(const T* p) { R v = load(p); __asm__("" : "+v"(v)); return v; }
    static void store(T* p, R v) { _mm512_storeu_ps(p, v); }
    static R set1(T v) { return _mm512_set1_ps(v); }
    static R zero() { return _mm512_setzero_ps(); }
    static R add(R a, R b) { return _mm512_add_ps(a, b); }
    static T hsum(R v) { return _mm512_reduce_add_ps(v); }
    static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
    static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
    // q0 = a rcp14(b) is within 2^-14; one Newton step on the quotient, with the residual
    // a - b q0 exact through the FMA, squares that error away.
    static R quot(R a, R b) {
        const R y = _mm512_rcp14_ps(b);
        const R q = _mm512_mul_ps(a, y);
        return _mm512_fmadd_ps(_mm512_fnmadd_ps(b, q, a), y, q);
    }
    static R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
    static R max_keep_nan(R lo, R x) { return _mm512_max_ps(lo, x); }
    static R min_keep_nan(R hi, R x) { return _mm512_min_ps(hi, x); }
    static R round(R x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static R pow2n(R n) {
        const __m512i t = _mm512_castps_si512(_mm512_add_ps(n, set1(FloatBits<T>::magic)));
        const __m512i e = _mm512_add_epi32(t, _mm512_set1_epi32(127 - bits_of(FloatBits<T>::magic)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
    }
    static R abs(R x) {
        return _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_set1_epi32(int32_t(0x80000000u)), _mm512_castps_si512(x)));
    }
    static R copysign_from(R m, R s) {
        const __m512i sign = _mm512_and_si512(_mm512_set1_epi32(int32_t(0x80000000u)), _mm512_castps_si512(s));
        return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(m), sign));
    }
    static R zero_where_less(R v, R x, R lo) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ), v); }
    static void transpose(R* r) {
        R t[16];
        for (int i = 0; i < 8; ++i) {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        const auto lo = [](R a, R b) {
            return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
        };
        const auto hi = [](R a, R b) {
            return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
        };
        for (int i = 0; i < 4; ++i) {
            r[4 * i] = lo(t[4 * i], t[4 * i + 2]);
            r[4 * i + 1] = hi(t[4 * i], t[4 * i + 2]);
            r[4 * i + 2] = lo(t[4 * i + 1], t[4 * i + 3]);
            r[4 * i + 3] = hi(t[4 * i + 1], t[4 * i + 3]);
        }
        transpose_blocks<4>(r);
    }
};
struct Avx512D {
    static constexpr int registers = 32;
    using T = double;
    using R = __m512d;
    static constexpr int W = 8;
    static R load(const T* p) { return _mm512_loadu_pd(p); }
    static R load_reg(const T* p) { R v = load(p); __asm__("" : "+v"(v)); return v; }
    static void store(T* p, R v) { _mm512_storeu_pd(p, v); }
    static R set1(T v) { return _mm512_set1_pd(v); }
    static R zero() { return _mm512_setzero_pd(); }
    static R add(R a, R b) { return _mm512_add_pd(a, b); }
    static T hsum(R v) { return _mm512_reduce_add_pd(v); }
    static R sub(R a, R b) { return _mm512_sub_pd(a, b); }
    static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
    static R quot(R a, R b) { return _mm512_div_pd(a, b); }
    static R fmadd(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
    static R max_keep_nan(R lo, R x) { return _mm512_max_pd(lo, x); }
    static R min_keep_nan(R hi, R x) { return _mm512_min_pd(hi, x); }
    static R round(R x) { return _mm512_roundscale_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static R pow2n(R n) {
        const __m512i t = _mm512_castpd_si512(_mm512_add_pd(n, set1(FloatBits<T>::magic)));
        const __m512i e = _mm512_add_epi64(t, _mm512_set1_epi64(1023 - bits_of(FloatBits<T>::magic)));
        return _mm512_castsi512_pd(_mm512_slli_epi64(e, 52));
    }
    static R abs(R x) {
        return _mm512_castsi512_pd(_mm512_andnot_si512(_mm512_set1_epi64(int64_t(0x8000000000000000ull)), _mm512_castpd_si512(x)));
    }
    static R copysign_from(R m, R s) {
        const __m512i sign = _mm512_and_si512(_mm512_set1_epi64(int64_t(0x8000000000000000ull)), _mm512_castpd_si512(s));
        return _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(m), sign));
    }
    static R zero_where_less(R v, R x, R lo) { return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, lo, _CMP_NLT_UQ), v); }
    static void transpose(R* r) {
        R t[8];
        for (int i = 0; i < 4; ++i) {
            t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
        }
        __m512 f[8];
        for (int j = 0; j < 8; ++j) f[j] = _mm512_castpd_ps(t[j]);
        transpose_blocks<2>(f);
        for (int j = 0; j < 8; ++j) r[j] = _mm512_castps_pd(f[j]);
    }
};
#endif

// ---- two of a kind: twice the lanes (AVX-512 tiles emulated on AVX2) -------------------------
template <class V>
struct Pair {
    using T = typename V::T;
    struct R {
        typename V::R lo, hi;
    };
    static constexpr int W = 2 * V::W;
    static constexpr int registers = 32;  // the AVX-512 tile shapes, whatever they cost here
    static R make(typename V::R lo, typename V::R hi) { R r; r.lo = lo; r.hi = hi; return r; }
    static R load(const T* p) { return make(V::load(p), V::load(p + V::W)); }
    static R load_reg(const T* p) { return make(V::load_reg(p), V::load_reg(p + V::W)); }
    static void store(T* p, R v) { V::store(p, v.lo); V::store(p + V::W, v.hi); }
    static R set1(T v) { return make(V::set1(v), V::set1(v)); }
    static R zero() { return make(V::zero(), V::zero()); }
    static T hsum(R v) { return V::hsum(V::add(v.lo, v.hi)); }
#define GATEDRNN_PAIR2(name) \
    static R name(R a, R b) { return make(V::name(a.lo, b.lo), V::name(a.hi, b.hi)); }
    GATEDRNN_PAIR2(add)
    GATEDRNN_PAIR2(sub)
    GATEDRNN_PAIR2(mul)
    GATEDRNN_PAIR2(quot)
    GATEDRNN_PAIR2(max_keep_nan)
    GATEDRNN_PAIR2(min_keep_nan)
    GATEDRNN_PAIR2(copysign_from)
#undef GATEDRNN_PAIR2
    static R fmadd(R a, R b, R c) { return make(V::fmadd(a.lo, b.lo, c.lo), V::fmadd(a.hi, b.hi, c.hi)); }
    static R round(R x) { return make(V::round(x.lo), V::round(x.hi)); }
    static R pow2n(R n) { return make(V::pow2n(n.lo), V::pow2n(n.hi)); }
    static R abs(R x) { return make(V::abs(x.lo), V::abs(x.hi)); }
    static R zero_where_less(R v, R x, R lo) {
        return make(V::zero_where_less(v.lo, x.lo, lo.lo), V::zero_where_less(v.hi, x.hi, lo.hi));
    }
    // The four W/2 x W/2 quadrants each transposed, the off-diagonal ones trading places.
    static void transpose(R* r) {
        constexpr int H = V::W;
        typename V::R q[4][H];  // [top-left, top-right, bottom-left, bottom-right][row]
        for (int i = 0; i < H; ++i) {
            q[0][i] = r[i].lo, q[1][i] = r[i].hi;
            q[2][i] = r[H + i].lo, q[3][i] = r[H + i].hi;
        }
        for (auto& quadrant : q) V::transpose(quadrant);
        for (int k = 0; k < H; ++k) {
            r[k] = make(q[0][k], q[2][k]);
            r[H + k] = make(q[1][k], q[3][k]);
        }
    }
};
