// The kernel bodies, one template over the vector type V (vec.h) for every ISA. Include only
// from an ISA unit, inside its anonymous namespace, after vec.h.
//
// Accuracy of the activations (test_kernels.py holds them to it, against float64):
//   exp: range reduction x = n ln2 + r, |r| <= ln2/2, ln2 split in two parts so n ln2 is exact,
//        then the Taylor polynomial of e^r to degree 7 (float) / 13 (double) by Horner's rule,
//        one FMA per degree: truncation below 0.1 ulp, so the result is within ~1.5 ulp.
//   sigmoid(x) = 1 / (1 + e^-x), within ~3 ulp; x clamped to [-87, 87] (float) / [-708, 708]
//        (double), and exactly 0 below the clamp, where the true value is below the smallest
//        normal number: no subnormal is produced, and a saturated gate has exactly zero slope.
//   tanh(x) = sign(x) (-expm1(-2|x|)) / (2 + expm1(-2|x|)), with expm1 from the same reduction
//        and a polynomial without its constant term, so small |x| keeps full relative accuracy;
//        within ~3 ulp; |x| clamped to 9 (float) / 19.1 (double), where tanh rounds to 1.
//   Both quotients are V::quot: a correctly rounded division, or on AVX-512 float a 14-bit
//        reciprocal estimate and one Newton step on the quotient (within 0.5 ulp + 2^-27
//        relative; a zmm division would cost more than the rest of the activation).
//   NaN in gives NaN out: every clamp keeps NaN.

// Unrolls the next loop completely. The tile kernel's loops over its accumulator arrays carry
// it: an array indexed by a loop variable lives on the stack, and an -O2 build (CMake's
// RelWithDebInfo) left the loop over a one-row tile's partial sums rolled, so each FMA loaded
// and stored its accumulator (LSTM streaming step, I=H=256, two threads: 28 us instead of 18).
#define GATEDRNN_UNROLL _Pragma("GCC unroll 16")

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

// 1/k! as T, computed at compile time in double (exact enough: each is rounded once).
template <typename T>
constexpr T inv_factorial(int k) {
    double f = 1.0;
    for (int i = 2; i <= k; ++i) f *= i;
    return static_cast<T>(1.0 / f);
}

constexpr int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
constexpr int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// x = n ln2 + r with |r| <= ln2/2 (n integer-valued). Caller clamps x to the normal range.
template <class V>
inline typename V::R reduce_ln2(typename V::R x, typename V::R& n) {
    using T = typename V::T;
    using C = Consts<T>;
    n = V::round(V::mul(x, V::set1(T(1.4426950408889634))));
    const auto r = V::fmadd(n, V::set1(-C::ln2_hi), x);
    return V::fmadd(n, V::set1(-C::ln2_lo), r);
}

// sum_{k=first}^{taylor} r^(k-first) / k!  by Horner's rule, one FMA per degree.
template <class V, int first>
inline typename V::R taylor_tail(typename V::R r) {
    using T = typename V::T;
    constexpr int top = Consts<T>::taylor;
    auto p = V::set1(inv_factorial<T>(top));
    for (int k = top - 1; k >= first; --k) p = V::fmadd(p, r, V::set1(inv_factorial<T>(k)));
    return p;
}

// e^x - 1 = 2^n (e^r - 1) + (2^n - 1), e^r - 1 = r (1 + r/2! + r^2/3! + ...).
template <class V>
inline typename V::R expm1_v(typename V::R x) {
    using T = typename V::T;
    typename V::R n;
    const auto r = reduce_ln2<V>(x, n);
    const auto em1 = V::mul(r, taylor_tail<V, 1>(r));
    const auto two_n = V::pow2n(n);
    return V::fmadd(two_n, em1, V::sub(two_n, V::set1(T(1))));
}

// e^x = 2^n e^r.
template <class V>
inline typename V::R exp_v(typename V::R x) {
    typename V::R n;
    const auto r = reduce_ln2<V>(x, n);
    return V::mul(V::pow2n(n), taylor_tail<V, 0>(r));
}

template <class V>
inline typename V::R sigmoid_v(typename V::R x) {
    using T = typename V::T;
    using C = Consts<T>;
    const auto lo = V::set1(C::exp_lo);
    const auto xc = V::min_keep_nan(V::set1(C::exp_hi), V::max_keep_nan(lo, x));
    const auto e = exp_v<V>(V::sub(V::zero(), xc));
    return V::zero_where_less(V::quot(V::set1(T(1)), V::add(V::set1(T(1)), e)), x, lo);
}

template <class V>
inline typename V::R tanh_v(typename V::R x) {
    using T = typename V::T;
    const auto a = V::min_keep_nan(V::set1(Consts<T>::tanh_max), V::abs(x));
    const auto m = expm1_v<V>(V::mul(a, V::set1(T(-2))));  // in (-1, 0]
    const auto t = V::quot(V::sub(V::zero(), m), V::add(V::set1(T(2)), m));
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
    // Tile height: 6 rows x 2 vectors (12 accumulators) with 16 registers, 12 x 2 (24) with 32.
    static constexpr int MR = V::registers >= 32 ? 12 : 6;
    // Steps a tile with unit-stride rows of A fetches that operand ahead (gemm_small_m's
    // B (K, N), in place or copied): single-thread dX = dG W_ih at M=32, K=1536, N=512, read
    // in place on an Intel Xeon: 8 -> 364 us, 12 -> 363, 16 -> 371, 32 -> 420, none -> 580.
    static constexpr int64_t kUnitRowAhead = 12;

    // Writes the transpose of rows [0, rows) of src (row stride ld) over columns [0, kc): column
    // k becomes dst[k * dld + 0 .. width), entries past `rows` zero (rows <= width <= G * W),
    // as dst = beta * dst + column when beta is not 0. W x W blocks go through V::transpose.
    // A column's stores may run past `width` by up to W - 1 entries (into the next column,
    // which overwrites them) while they stay below dst_end; a null dst_end allows none.
    template <int G>
    static void transpose_rows(const T* src, int64_t ld, int64_t rows, int64_t kc, T* dst,
                               int64_t dld, int64_t width, const T* dst_end, T beta = T(0)) {
        constexpr int W = V::W;
        const int groups = static_cast<int>((width + W - 1) / W);
        const auto put = [&](T* d, typename V::R v, int64_t n) {
            if (n == W || (dst_end && d + W <= dst_end && beta == T(0))) {
                V::store(d, beta == T(0) ? v : V::fmadd(V::set1(beta), V::load(d), v));
                return;
            }
            T buf[W];
            V::store(buf, v);
            for (int64_t j = 0; j < n; ++j) d[j] = beta == T(0) ? buf[j] : beta * d[j] + buf[j];
        };
        int64_t k = 0;
        for (; k + W <= kc; k += W) {
            typename V::R r[G][W];
            for (int g = 0; g < G; ++g) {  // (groups past `groups` are zero, never stored)
                for (int i = 0; i < W; ++i) {
                    const int64_t row = g * W + i;
                    r[g][i] = row < rows ? V::load(src + row * ld + k) : V::zero();
                }
                if (g < groups) V::transpose(r[g]);
            }
            for (int c = 0; c < W; ++c)
                for (int g = 0; g < groups; ++g)
                    put(dst + (k + c) * dld + g * W, r[g][c], min64(W, width - g * W));
        }
        for (; k < kc; ++k)
            for (int64_t i = 0; i < width; ++i) {
                const T v = i < rows ? src[i * ld + k] : T(0);
                T& d = dst[k * dld + i];
                d = beta == T(0) ? v : beta * d + v;
            }
    }

    static void pack_b(bool trans, const T* B, int64_t ldb, int64_t k0, int64_t kc, int64_t n0,
                       int64_t nc, T* dst) {
        for (int64_t jp = 0; jp < nc; jp += NR) {
            const int64_t cols = min64(NR, nc - jp);
            if (trans) {  // the panel's rows of B, transposed by blocks
                transpose_rows<2>(B + (n0 + jp) * ldb + k0, ldb, cols, kc, dst, NR, NR, nullptr);
                dst += kc * NR;
                continue;
            }
            for (int64_t k = 0; k < kc; ++k) {
                const T* src = B + (k0 + k) * ldb + n0 + jp;
                for (int64_t j = 0; j < cols; ++j) dst[j] = src[j];
                for (int64_t j = cols; j < NR; ++j) dst[j] = T(0);
                dst += NR;
            }
        }
    }

    // Row panels of A: one per row tile (row_tile: MR rows, the last two evened out), each
    // exactly its tile's height h, element (i, k) at panel[k * h + i], panel at row_offset * kc.
    static void pack_a(bool trans, const T* A, int64_t lda, int64_t m0, int64_t mc, int64_t k0,
                       int64_t kc, T* dst) {
        if (trans) {
            // A stored (K, M): row k of the block is contiguous over its mc entries. A few rows
            // at a time (kRows), each panel gets their runs as one contiguous write: dealing
            // one row's runs out to all panels instead writes to mc / MR places kc * MR apart
            // (12 KB: the same L1 set for every panel), and the panels evict each other. The
            // rows are read in order (the weight gradients' A, dG, tens of MB, is not in
            // cache), the next block's fetched while this one is dealt.
            constexpr int64_t kRows = 8;
            for (int64_t k1 = 0; k1 < kc; k1 += kRows) {
                const int64_t kn = min64(kRows, kc - k1);
                const int64_t ahead = min64(kRows, kc - k1 - kn);  // rows of the next block
                for (int64_t ip = 0, h; ip < mc; ip += h) {
                    h = row_tile(mc, ip, MR);
                    T* panel = dst + ip * kc + k1 * h;
                    const T* src = A + (k0 + k1) * lda + m0 + ip;
                    for (int64_t k = 0; k < ahead; ++k) __builtin_prefetch(src + (kn + k) * lda, 0, 3);
                    if (h == MR) {  // a whole run per row: fixed-length vector copies
                        for (int64_t k = 0; k < kn; ++k)
                            std::memcpy(panel + k * MR, src + k * lda, MR * sizeof(T));
                        continue;
                    }
                    for (int64_t k = 0; k < kn; ++k)
                        for (int64_t i = 0; i < h; ++i) panel[k * h + i] = src[k * lda + i];
                }
            }
            return;
        }
        // A stored (M, K): each panel is the transpose of its rows' block, by W x W blocks.
        for (int64_t ip = 0, h; ip < mc; ip += h) {
            h = row_tile(mc, ip, MR);
            transpose_rows<(MR + V::W - 1) / V::W>(A + (m0 + ip) * lda + k0, lda, h, kc,
                                                   dst + ip * kc, h, h, dst + mc * kc);
        }
    }

    // Packed is true when a is a packed A panel (a_row = 1, a_col = M): the row broadcasts
    // then come from fixed offsets, so no index register per row (12 of them would spill).
    // Strided: b is not a packed panel but NR full columns of a row-major B read in place, row k
    // at b + k * ldb (packed panels have ldb = NR).
    template <int M, int U, bool Packed, bool Strided = false, bool UnitRow = false>
    static void tile(int64_t kc, const T* a, int64_t a_row, int64_t a_col, const T* b, T* C,
                     int64_t ldc, int64_t cols, T alpha, T beta, bool overwrite, int64_t ldb = NR,
                     const char* next = nullptr, int64_t next_lines = 0) {
        if constexpr (Packed) a_row = 1, a_col = M;
        if constexpr (UnitRow) a_row = 1;
        if constexpr (!Strided) ldb = NR;
        // Products of a few rows keep U independent partial sums over k (chains_for), so at
        // least 8 FMA chains are in flight: with one row and one sum per column vector, every
        // FMA would wait for the previous one's latency (the batch-1 GEMV of streaming would
        // run at a quarter speed).
        static_assert(U == 1 || U == 2 || U == 4, "1, 2 or 4 partial sums");
        typename V::R acc0[U][M], acc1[U][M];
        GATEDRNN_UNROLL
        for (int u = 0; u < U; ++u)
            GATEDRNN_UNROLL
            for (int i = 0; i < M; ++i) acc0[u][i] = V::zero(), acc1[u][i] = V::zero();
        const auto step = [&](int64_t k, int u) {
            if constexpr (UnitRow) {
                // Each step reads a new row of A (a_col apart, a power of two for the usual
                // sizes): the hardware prefetchers miss that stride, so fetch the row's line(s)
                // kUnitRowAhead steps ahead.
                const T* pf = a + (k + kUnitRowAhead) * a_col;
                __builtin_prefetch(pf, 0, 3);
                __builtin_prefetch(pf + M - 1, 0, 3);
            }
            // One row: B is used once, as the FMA's memory operand. More rows share each load.
            const auto b0 = M >= 2 ? V::load_reg(b + k * ldb) : V::load(b + k * ldb);
            const auto b1 = M >= 2 ? V::load_reg(b + k * ldb + V::W) : V::load(b + k * ldb + V::W);
            const T* ak = a + k * a_col;
            GATEDRNN_UNROLL
            for (int i = 0; i < M; ++i) {
                const auto ai = V::set1(ak[i * a_row]);
                acc0[u][i] = V::fmadd(ai, b0, acc0[u][i]);
                acc1[u][i] = V::fmadd(ai, b1, acc1[u][i]);
            }
        };
        int64_t k = 0;
        if constexpr (!Packed && !UnitRow && U == 1) {
            if (a_col == 1) {
                // M rows of A read in place along k (the weights of a one-step call of a
                // batch of 16-64 rows, as gemm_small_m's broadcast operand): M short streams a
                // row stride apart, two to a 4 KB page for the usual sizes, which the hardware
                // prefetchers follow poorly. Fetch each row's next line as its current one
                // starts. Two threads, one-step GRU B=32 I=H=512 forward with raw weights:
                // 660 -> 629 us (median of 12 alternated rounds); two lines ahead 641.
                constexpr int64_t line = 64 / int64_t(sizeof(T));
                for (; k + line <= kc; k += line) {
                    for (int i = 0; i < M; ++i) __builtin_prefetch(a + i * a_row + k + line, 0, 3);
                    for (int64_t j = 0; j < line; ++j) step(k + j, 0);
                }
            }
        }
        // C is read or written once, after the k loop. A C that is not in cache (a fresh
        // output, such as the input projection's) would stall there: fetch its lines during
        // the k steps, one line every few steps. So are the caller's `next_lines` lines at
        // `next` (the B block it multiplies next) fetched into L2. Issued all at once, either
        // would fill the core's miss buffers and stall the loop instead.
        if constexpr (U == 1) {
            // The first and last element of each row's NR (a packed A: a GEMM's output tile).
            // A short depth leaves too few steps to hide that fetch; its caller walks the
            // tiles along C's rows instead (see isa::kShortDepth), and the hardware
            // prefetchers fetch the lines ahead of those sequential writes.
            const int64_t c_lines = Packed && kc >= kShortDepth ? 2 * M : 0;
            const int64_t lines = c_lines + next_lines;
            const int64_t every = max64(1, min64(8, kc / max64(lines, 1)));
            for (int64_t line = 0; line < lines && k + every <= kc; ++line) {
                if (line < c_lines)
                    __builtin_prefetch(C + (line >> 1) * ldc + (line & 1) * (NR - 1), 1, 3);
                else
                    __builtin_prefetch(next + (line - c_lines) * 64, 0, 2);
                for (int64_t j = 0; j < every; ++j, ++k) step(k, 0);
            }
        }
        for (; k + U <= kc; k += U)
            GATEDRNN_UNROLL
            for (int u = 0; u < U; ++u) step(k + u, u);
        for (; k < kc; ++k) step(k, 0);
        GATEDRNN_UNROLL
        for (int u = 1; u < U; ++u)
            GATEDRNN_UNROLL
            for (int i = 0; i < M; ++i)
                acc0[0][i] = V::add(acc0[0][i], acc0[u][i]), acc1[0][i] = V::add(acc1[0][i], acc1[u][i]);
        if (cols == NR && overwrite && beta == T(0) && alpha == T(1)) {
            // The common case as straight-line stores: with the cases' branches inside one
            // loop, the compiler spilled the accumulators to the stack first (a tile of a short
            // depth, such as the weight gradients' of a one-step call, K = B, paid ~1/4 of its
            // time for that). This loop and the general one below are unrolled: one rolled loop
            // over the arrays kept them on the stack, zeroed there and moved to and from the
            // registers around the k loop (two threads, C (1536, 512) = A^T B, time relative to
            // rolled, alternated rounds: K = 32 0.85-0.90, K = 128 0.73-0.82; a one-step GRU
            // training call, B=32 I=H=512, 0.95).
            GATEDRNN_UNROLL
            for (int i = 0; i < M; ++i) {
                V::store(C + i * ldc, acc0[0][i]);
                V::store(C + i * ldc + V::W, acc1[0][i]);
            }
            return;
        }
        const auto va = V::set1(alpha), vb = V::set1(beta);
        GATEDRNN_UNROLL
        for (int i = 0; i < M; ++i) {
            T* c = C + i * ldc;
            auto v0 = V::mul(va, acc0[0][i]), v1 = V::mul(va, acc1[0][i]);
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

    // `rows` (<= MR) rows with `chains` partial sums per element: chains_for of the whole
    // product's rows (never fewer than `rows`), so more than one only when it has below 4.
    template <int M, bool Packed, bool Strided = false, bool UnitRow = false>
    static void tile_rows(int64_t rows, int chains, int64_t kc, const T* a, int64_t a_row,
                          int64_t a_col, const T* b, T* C, int64_t ldc, int64_t cols, T alpha,
                          T beta, bool overwrite, int64_t ldb = NR, const char* next = nullptr,
                          int64_t next_lines = 0) {
        if constexpr (M > 1) {
            if (rows < M) {
                tile_rows<M - 1, Packed, Strided, UnitRow>(rows, chains, kc, a, a_row, a_col, b, C,
                                                           ldc, cols, alpha, beta, overwrite, ldb,
                                                           next, next_lines);
                return;
            }
        }
        if constexpr (M == 1) {
            if (chains >= 4) {
                tile<1, 4, Packed, Strided, UnitRow>(kc, a, a_row, a_col, b, C, ldc, cols, alpha,
                                                     beta, overwrite, ldb, next, next_lines);
                return;
            }
        }
        if constexpr (M <= 3) {
            if (chains >= 2) {
                tile<M, 2, Packed, Strided, UnitRow>(kc, a, a_row, a_col, b, C, ldc, cols, alpha,
                                                     beta, overwrite, ldb, next, next_lines);
                return;
            }
        }
        tile<M, 1, Packed, Strided, UnitRow>(kc, a, a_row, a_col, b, C, ldc, cols, alpha, beta,
                                             overwrite, ldb, next, next_lines);
    }

    static void kernel(int64_t kc, const T* a, int64_t a_row, int64_t a_col, int64_t rows,
                       const T* b, T* C, int64_t ldc, int64_t cols, T alpha, T beta, bool overwrite,
                       const void* next, int64_t next_lines, int chains) {
        const char* pf = static_cast<const char*>(next);
        if (a_row == 1 && a_col == rows)  // a packed panel (or the same addressing)
            tile_rows<MR, true>(rows, chains, kc, a, a_row, a_col, b, C, ldc, cols, alpha, beta,
                                overwrite, NR, pf, next_lines);
        else
            tile_rows<MR, false>(rows, chains, kc, a, a_row, a_col, b, C, ldc, cols, alpha, beta,
                                 overwrite, NR, pf, next_lines);
    }

    // One call for a row tile against consecutive panels: a short-depth tile (K = B for a
    // one-step call's weight gradients) is ~200 cycles of FMAs, and one call through the
    // table per tile added ~10% to that (gemm_prepacked's short-depth walk).
    static void kernel_panels(int64_t kc, const T* a, int64_t rows, const T* b,
                              int64_t panel_stride, int64_t panels, T* C, int64_t ldc,
                              int64_t cols, T alpha, T beta, bool overwrite, int chains) {
        for (int64_t j = 0; j < panels; ++j)
            tile_rows<MR, true>(rows, chains, kc, a, 1, rows, b + j * panel_stride, C + j * NR,
                                ldc, min64(NR, cols - j * NR), alpha, beta, overwrite);
    }

    static void kernel_strided_b(int64_t kc, const T* a, int64_t a_row, int64_t a_col, int64_t rows,
                                 const T* b, int64_t ldb, T* C, int64_t ldc, T alpha, T beta,
                                 bool overwrite, int chains) {
        tile_rows<MR, false, true>(rows, chains, kc, a, a_row, a_col, b, C, ldc, NR, alpha, beta,
                                   overwrite, ldb);
    }


    // Up to 4 rows of A against NB rows of B at a time: 8 or 16 independent accumulator chains.
    template <int M>
    static void dot_rows(int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                         T beta, T* C, int64_t ldc) {
        const int64_t kv = K - K % V::W;
        // NB rows of B at a time: 4 with 32 registers (16 sums + 8 operands), 2 with 16.
        constexpr int NB = V::registers >= 32 ? 4 : 2;
        const auto b_row = [&](int64_t row) { return B + (row < N ? row : N - 1) * ldb; };
        for (int64_t n = 0; n < N; n += NB) {
            const int nb = N - n >= NB ? NB : static_cast<int>(N - n);
            const T* b[NB];
            for (int j = 0; j < NB; ++j) b[j] = b_row(n + j);  // past N: repeat the last row
            // Every loop over the sums unrolled (see GATEDRNN_UNROLL), the last one's bound
            // fixed too: an index the compiler cannot resolve keeps the sums on the stack (a
            // one-step call with raw weights, two threads: LSTM B=4 H=256 0.82-0.89 of the time
            // with the stores' loop rolled, GRU B=8 H=1024 0.91-0.97).
            typename V::R acc[M][NB];
            GATEDRNN_UNROLL
            for (int i = 0; i < M; ++i)
                GATEDRNN_UNROLL
                for (int j = 0; j < NB; ++j) acc[i][j] = V::zero();
            for (int64_t k = 0; k < kv; k += V::W) {
                typename V::R bv[NB];
                GATEDRNN_UNROLL
                for (int j = 0; j < NB; ++j) bv[j] = V::load(b[j] + k);
                GATEDRNN_UNROLL
                for (int i = 0; i < M; ++i) {
                    const auto a = V::load(A + i * lda + k);
                    GATEDRNN_UNROLL
                    for (int j = 0; j < NB; ++j) acc[i][j] = V::fmadd(a, bv[j], acc[i][j]);
                }
            }
            GATEDRNN_UNROLL
            for (int i = 0; i < M; ++i)
                GATEDRNN_UNROLL
                for (int j = 0; j < NB; ++j) {
                    if (j >= nb) continue;
                    T s = V::hsum(acc[i][j]);
                    for (int64_t k = kv; k < K; ++k) s += A[i * lda + k] * B[(n + j) * ldb + k];
                    T* c = C + i * ldc + n + j;
                    *c = beta == T(0) ? s : beta * *c + s;
                }
        }
    }

    // With more than one group of 4 rows of A, B goes in blocks of rows (~64 KB) that stay in
    // L2 while every group passes over them: B, the weights, comes from memory once instead of
    // once per group.
    static void gemm_nt_direct(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                               const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
        const int64_t block = M <= 4 ? N : max64(4, (int64_t(64) << 10) / (max64(K, 1) * int64_t(sizeof(T))) / 4 * 4);
        for (int64_t n0 = 0; n0 < N; n0 += block) {
            const int64_t nc = min64(block, N - n0);
            for (int64_t i = 0; i < M; i += 4) {
                const T* a = A + i * lda;
                const T* b = B + n0 * ldb;
                T* c = C + i * ldc + n0;
                switch (M - i >= 4 ? 4 : M - i) {
                    case 1: dot_rows<1>(nc, K, a, lda, b, ldb, beta, c, ldc); break;
                    case 2: dot_rows<2>(nc, K, a, lda, b, ldb, beta, c, ldc); break;
                    case 3: dot_rows<3>(nc, K, a, lda, b, ldb, beta, c, ldc); break;
                    default: dot_rows<4>(nc, K, a, lda, b, ldb, beta, c, ldc); break;
                }
            }
        }
    }

    // C (M, N) = A (M, K) . op(B) + beta C, op(B) (K, N) read in place with element (k, n) at
    // b[n * b_n + k * b_k]: B^T for a row-major B (N, K) (b_n = ldb, b_k = 1), or a row-major
    // B (K, N) (b_n = 1, b_k = ldb). Computed as C^T = op(B)^T A^T, so that the large operand
    // (the weights) is the tile's broadcast operand, read in place once, and the small one, A^T,
    // is packed into ceil(M / NR) panels: for a batch of a few tens of rows. Read as the packed
    // side instead, in place, a B (K, N) would be walked down its columns at a stride of a
    // whole row (a power of two for the usual sizes, which maps every line to a few cache
    // sets) once per row tile of C; a B^T would take dot products with a horizontal sum per
    // element. The broadcast operand of a row-major B (K, N), though, is read a step of k at a
    // time down its columns, a whole row apart: read in place with a row of 2 KB or more (a
    // power of two for the usual sizes), a depth block's lines fall into a few cache sets, and
    // the hardware prefetchers do not follow that stride from memory. So blocks of its rows,
    // ~2 KB of each (kSmallMWide columns), are first copied in order into a buffer of ~128 KB
    // whose row stride is padded off the power of two, and the tiles walk the copy. AMD Zen 3
    // (AVX2), GFLOP/s in place -> copied, for (M, K, N) = (32, 1536, 512), (32, 512, 1536),
    // (32, 512, 512), (16, 1024, 1024), (64, 2048, 1024), (32, 1024, 2048), one process
    // alternating the two: one thread, the same B each call: 39.0 -> 43.9, 42.8 -> 48.1,
    // 41.5 -> 47.9, 34.1 -> 38.4, 30.1 -> 42.6, 31.1 -> 38.5; eight B in turn (from memory):
    // 34.5 -> 36.7, 35.3 -> 38.9, 28.3 -> 36.1, 17.6 -> 23.2, 30.9 -> 44.7, 28.2 -> 36.7. Two
    // threads, the same B: 88.2 -> 105.3, 85.6 -> 98.2, 86.5 -> 93.3, 71.9 -> 81.0, 62.5 ->
    // 86.7, 66.8 -> 82.5; eight B: 68.7 -> 66.6, 72.1 -> 70.1, 74.7 -> 74.8, 35.7 -> 45.0,
    // 67.1 -> 97.3, 70.8 -> 86.9. A 1 KB row (N = 256) stays in place: copied, a thread's
    // share of its rows is too short a run (one thread, M=32 K=512: 76 -> 68).
    // What the copy still costs, (32, 1536, 512) as dX = dG W_ih of a one-step GRU B=32
    // I=H=512: one thread 700-790 us copied, 566 us for the tiles alone (the copy skipped);
    // two threads 370-400 against 294. B comes from memory at ~15-17 GB/s a thread (this
    // machine's share of L3 does not keep a 3 MB B between calls). Measured without gain: a
    // vector loop instead of memcpy (which the compiler inlines as rep movs); fetching the next
    // block's rows into L2 while the tiles walk this one, batched between tiles or spread over
    // their k steps, any locality hint (one thread 735-757 us against 690-782, two 389-415
    // against 368-407; in a standalone test the fetch made the copy itself 2.3x faster, but
    // the loop around it no faster); blocks of 33 or 16 rows (one thread 825, 965 us); the
    // 2 KB rows in place with an extra L2 fetch 32-128 rows ahead (two threads 368-379 us); B
    // walked in place as the packed side, k-blocked (37-43 GFLOP/s: the cache-set conflicts
    // above).
    // Each element's sum over k runs in order (one partial sum: the tiles' rows are columns of
    // C, and a tile of a few of them is only the tail of a chunk) within fixed blocks of k
    // (kSmallMDepth, or kSmallMCopyDepth for a copied B) whatever M and the split of N, so the
    // result does not depend on how the rows or columns are shared out between threads.
    // scratch: small_m_scratch(M, K) elements.
    static constexpr int64_t kSmallMChunk = 8 * MR;   // rows of C^T per transposed write-back
    static constexpr int64_t kSmallMDepth = 256;      // depth of a block of k
    static constexpr int64_t kSmallMCopyRowBytes = 2048;  // B rows this long or longer are copied
    static constexpr int64_t kSmallMWide =            // columns of a copied B per pass
        max64(1, kSmallMCopyRowBytes / int64_t(sizeof(T)) / kSmallMChunk) * kSmallMChunk;
    static constexpr int64_t kSmallMCopyStride = kSmallMWide + NR;
    static constexpr int64_t kSmallMCopyDepth =       // rows of a copied B per block (~128 KB)
        max64(8, (int64_t(128) << 10) / int64_t(sizeof(T)) / kSmallMCopyStride);
    static int64_t small_m_scratch(int64_t M, int64_t K) {
        const int64_t mp = (M + NR - 1) / NR * NR;
        return (K + kSmallMWide) * mp + kSmallMCopyDepth * kSmallMCopyStride;
    }
    static void gemm_small_m(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* b,
                             int64_t b_n, int64_t b_k, T beta, T* C, int64_t ldc, T* scratch) {
        const int64_t panels = (M + NR - 1) / NR, mp = panels * NR;
        T* const at = scratch;            // A^T: [panel][K][NR]
        T* const ct = scratch + K * mp;   // C^T of a chunk of columns of C: [n][mp]
        for (int64_t q = 0; q < panels; ++q)  // A^T's panels: A's rows, transposed by blocks
            transpose_rows<2>(A + q * NR * lda, lda, min64(NR, M - q * NR), K, at + q * K * NR, NR,
                              NR, nullptr);
        if (b_n == 1 && b_k * int64_t(sizeof(T)) >= kSmallMCopyRowBytes) {  // walk copies of B's rows
            T* const rows = ct + kSmallMWide * mp;
            for (int64_t n0 = 0; n0 < N; n0 += kSmallMWide) {
                const int64_t nc = min64(kSmallMWide, N - n0);
                for (int64_t k0 = 0; k0 < K; k0 += kSmallMCopyDepth) {
                    const int64_t kc = min64(kSmallMCopyDepth, K - k0);
                    for (int64_t kk = 0; kk < kc; ++kk)
                        std::memcpy(rows + kk * kSmallMCopyStride, b + n0 + (k0 + kk) * b_k,
                                    static_cast<size_t>(nc) * sizeof(T));
                    // The row tiles of kSmallMChunk columns at a time, as below.
                    for (int64_t r = 0, h; r < nc; r += h) {
                        const int64_t r0 = r / kSmallMChunk * kSmallMChunk;
                        h = row_tile(min64(kSmallMChunk, nc - r0), r - r0, MR);
                        for (int64_t q = 0; q < panels; ++q)
                            tile_rows<MR, false, false, true>(
                                h, 1, kc, rows + r, 1, kSmallMCopyStride, at + (q * K + k0) * NR,
                                ct + r * mp + q * NR, mp, NR, T(1), T(0), k0 == 0);
                    }
                }
                write_back_ct(ct, mp, nc, M, C + n0, ldc, beta);
            }
            return;
        }
        for (int64_t n0 = 0; n0 < N; n0 += kSmallMChunk) {
            const int64_t nc = min64(kSmallMChunk, N - n0);
            for (int64_t k0 = 0; k0 < K; k0 += kSmallMDepth) {
                const int64_t kc = min64(kSmallMDepth, K - k0);
                for (int64_t r = 0, h; r < nc; r += h) {
                    h = row_tile(nc, r, MR);
                    const T* a = b + (n0 + r) * b_n + k0 * b_k;
                    for (int64_t q = 0; q < panels; ++q)
                        tile_rows<MR, false>(h, 1, kc, a, b_n, b_k, at + (q * K + k0) * NR,
                                             ct + r * mp + q * NR, mp, NR, T(1), T(0), k0 == 0);
                }
            }
            write_back_ct(ct, mp, nc, M, C + n0, ldc, beta);
        }
    }
    // C's columns [0, nc) = beta C + the chunk's C^T (nc, mp) transposed, a strip of W rows of
    // it at a time (exactly: other threads may own the columns next to these).
    static void write_back_ct(const T* ct, int64_t mp, int64_t nc, int64_t M, T* C, int64_t ldc,
                              T beta) {
        for (int64_t n = 0; n < nc; n += V::W)
            transpose_rows<1>(ct + n * mp, mp, min64(V::W, nc - n), M, C + n, ldc,
                              min64(V::W, nc - n), nullptr, beta);
    }
};

// ---- pointwise cell steps ----------------------------------------------------------------
// Each walks the n units of one row: four registers' worth of units at a time (Pair<Pair<V>>,
// or Pair<V> when V is itself an emulated pair), then single vectors, then the tail with the
// scalar type, all through the same code (so every unit gets the same math and accuracy). An
// activation is a chain of ~25 dependent operations; the out-of-order window overlaps too few
// of them from one vector to the next, and four chains issued side by side keep the vector
// ports busy. Zen 3, one thread, a row of 256 units in L1, ns per unit with one / two / four
// vectors at a time: LSTM forward 3.4 / 3.1 / 2.7, reset-after GRU forward 2.6 / 2.3 / 1.8;
// LSTM backward 1.25 -> 0.83 and RNN tanh forward 0.96 -> 0.70 (one -> four); SSE2 LSTM forward
// 10.2 / 8.7 / 8.0. The emulated 16-lane vectors: two of them 2.7, four 3.2 (they spill).
template <class V>
struct FourRegisters {  // four vectors
    using type = Pair<Pair<V>>;
};
template <class V>
struct FourRegisters<Pair<V>> {  // two emulated pairs
    using type = Pair<Pair<V>>;
};

template <class V, class F>
inline void sweep(int64_t n, F&& f) {
    using Four = typename FourRegisters<V>::type;
    int64_t k = 0;
    for (; k + Four::W <= n; k += Four::W) f(Four{}, k);
    for (; k + V::W <= n; k += V::W) f(V{}, k);
    for (; k < n; ++k) f(Scalar<typename V::T>{}, k);
}

template <class S>
inline typename S::R one(const S&) { return S::set1(typename S::T(1)); }

template <class V>
struct Cells {
    using T = typename V::T;
    using Row = gatedrnn::isa::Row<T>;

    // The input side of a gate pre-activation: projection + folded bias (offset g*H + k).
    template <class S>
    static typename S::R input(const Row& r, int64_t at) {
        const auto v = S::load(r.xw + at);
        return r.bias ? S::add(v, S::load(r.bias + at)) : v;
    }
    // A gate's whole pre-activation: input side plus the recurrent GEMM's part.
    template <class S>
    static typename S::R pre(const Row& r, int64_t at) {
        return S::add(input<S>(r, at), S::load(r.gates + at));
    }

    // Writes h_t, and m (.) h_t for the next step's W_hh when there is a mask.
    template <class S>
    static void put_h(const Row& r, int64_t k, typename S::R h) {
        S::store(r.h_out + k, h);
        if (r.h_rec_out) S::store(r.h_rec_out + k, r.mask ? S::mul(h, S::load(r.mask + k)) : h);
    }

    static void rnn_forward(const Row& r) {
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            const auto v = pre<S>(r, k);
            const auto h = r.activation == 1 ? S::max_keep_nan(S::zero(), v) : tanh_v<S>(v);
            put_h<S>(r, k, h);
            if (r.training) S::store(r.act_out + k, h);
        });
    }
    static void rnn_backward(const Row& r) {
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            const auto a = S::load(r.act + k), dh = S::load(r.dh + k);
            typename S::R d;
            if (r.activation == 1) {  // relu: 1 where the output is > 0
                T buf[S::W], out[S::W];
                S::store(buf, a);
                for (int i = 0; i < S::W; ++i) out[i] = buf[i] > T(0) ? T(1) : T(0);
                d = S::load(out);
            } else {
                d = S::sub(one(s), S::mul(a, a));
            }
            S::store(r.dg + k, S::mul(dh, d));
        });
    }

    // Sweeps over the row, each a short chain of dependent operations that the out-of-order
    // window overlaps from one element to the next: the sigmoid gates i, f, o one at a time,
    // the tanh gate g, then c_t, tanh(c_t) and h_t. Activations overwrite their
    // pre-activation's recurrent part (inference) or go to act_out (training, which saves them).
    // One sweep for everything was too long a chain (a row of 128 units in L1, AVX2 on Zen 3:
    // 4.5 ns per unit; two sweeps, the gates and c_t then h_t: 3.85). One sweep per activation
    // waits least on the divisions and spills no registers: one thread, LSTM H=256 B=16, input
    // size 16 (the step dominates), forward 1.5-2.2% faster than two sweeps in four alternated
    // runs. The same arithmetic each way, so the same results.
    static void lstm_forward(const Row& r) {
        const int64_t H = r.H;
        T* const act = r.training ? r.act_out : r.gates;
        const int64_t sigmoid_gates[3] = {0, H, 3 * H};
        for (const int64_t at : sigmoid_gates)
            sweep<V>(r.n, [&](auto s, int64_t k) {
                using S = decltype(s);
                S::store(act + at + k, sigmoid_v<S>(pre<S>(r, at + k)));
            });
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            S::store(act + 2 * H + k, tanh_v<S>(pre<S>(r, 2 * H + k)));
        });
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            const auto i = S::load(act + k), f = S::load(act + H + k);
            const auto g = S::load(act + 2 * H + k), o = S::load(act + 3 * H + k);
            const auto c_prev = S::load(r.c + k);
            const auto c = S::fmadd(f, c_prev, S::mul(i, g));
            S::store(r.c + k, c);
            const auto c_tanh = tanh_v<S>(c);
            put_h<S>(r, k, S::mul(o, c_tanh));
            if (r.training) S::store(r.save0 + k, c_prev), S::store(r.save1 + k, c_tanh);
        });
    }
    static void lstm_backward(const Row& r) {
        const int64_t H = r.H;
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            const auto i = S::load(r.act + k), f = S::load(r.act + H + k);
            const auto g = S::load(r.act + 2 * H + k), o = S::load(r.act + 3 * H + k);
            const auto c_prev = S::load(r.saved0 + k), c_tanh = S::load(r.saved1 + k);
            const auto dh = S::load(r.dh + k);
            const auto dc = S::fmadd(S::mul(dh, o), S::sub(one(s), S::mul(c_tanh, c_tanh)), S::load(r.dc + k));
            S::store(r.dg + k, S::mul(S::mul(dc, g), S::mul(i, S::sub(one(s), i))));
            S::store(r.dg + H + k, S::mul(S::mul(dc, c_prev), S::mul(f, S::sub(one(s), f))));
            S::store(r.dg + 2 * H + k, S::mul(S::mul(dc, i), S::sub(one(s), S::mul(g, g))));
            S::store(r.dg + 3 * H + k, S::mul(S::mul(dh, c_tanh), S::mul(o, S::sub(one(s), o))));
            S::store(r.dc + k, S::mul(dc, f));
        });
    }

    static void gru_ra_forward(const Row& r) {
        const int64_t H = r.H;
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            const auto rg = sigmoid_v<S>(pre<S>(r, k));
            const auto z = sigmoid_v<S>(pre<S>(r, H + k));
            auto hn = S::load(r.gates + 2 * H + k);
            if (r.b_hn) hn = S::add(hn, S::load(r.b_hn + k));
            const auto n = tanh_v<S>(S::fmadd(rg, hn, input<S>(r, 2 * H + k)));
            const auto h_prev = S::load(r.h_prev + k);
            put_h<S>(r, k, S::fmadd(z, S::sub(h_prev, n), n));  // (1 - z) n + z h
            if (r.training) {
                S::store(r.act_out + k, rg), S::store(r.act_out + H + k, z);
                S::store(r.act_out + 2 * H + k, n);
                S::store(r.save0 + k, hn);
            }
        });
    }
    static void gru_ra_backward(const Row& r) {
        const int64_t H = r.H;
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            const auto rg = S::load(r.act + k), z = S::load(r.act + H + k), n = S::load(r.act + 2 * H + k);
            const auto dh = S::load(r.dh + k), h_prev = S::load(r.h_prev + k);
            const auto dn_pre = S::mul(S::mul(dh, S::sub(one(s), z)), S::sub(one(s), S::mul(n, n)));
            S::store(r.dg + k, S::mul(S::mul(dn_pre, S::load(r.saved0 + k)), S::mul(rg, S::sub(one(s), rg))));
            S::store(r.dg + H + k, S::mul(S::mul(dh, S::sub(h_prev, n)), S::mul(z, S::sub(one(s), z))));
            S::store(r.dg + 2 * H + k, dn_pre);
            S::store(r.dg_extra + k, S::mul(dn_pre, rg));
            S::store(r.direct + k, S::mul(dh, z));
        });
    }

    // reset-before, phase 1: r, z from their pre-activations (stored back into gates), r (.) h'.
    static void gru_rb_forward1(const Row& r) {
        const int64_t H = r.H;
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            const auto rg = sigmoid_v<S>(pre<S>(r, k));
            const auto z = sigmoid_v<S>(pre<S>(r, H + k));
            S::store(r.gates + k, rg), S::store(r.gates + H + k, z);
            S::store(r.rh + k, S::mul(rg, S::load(r.h_rec + k)));
        });
    }
    // phase 2: n from W_hn (r (.) h') in gates[2H..], then the update.
    static void gru_rb_forward2(const Row& r) {
        const int64_t H = r.H;
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            const auto z = S::load(r.gates + H + k);
            const auto n = tanh_v<S>(pre<S>(r, 2 * H + k));
            put_h<S>(r, k, S::fmadd(z, S::sub(S::load(r.h_prev + k), n), n));
            if (r.training) {
                S::store(r.act_out + k, S::load(r.gates + k)), S::store(r.act_out + H + k, z);
                S::store(r.act_out + 2 * H + k, n);
            }
        });
    }
    static void gru_rb_backward1(const Row& r) {
        const int64_t H = r.H;
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            const auto z = S::load(r.act + H + k), n = S::load(r.act + 2 * H + k);
            const auto dh = S::load(r.dh + k), h_prev = S::load(r.h_prev + k);
            S::store(r.dg + 2 * H + k, S::mul(S::mul(dh, S::sub(one(s), z)), S::sub(one(s), S::mul(n, n))));
            S::store(r.dg + H + k, S::mul(S::mul(dh, S::sub(h_prev, n)), S::mul(z, S::sub(one(s), z))));
            S::store(r.direct + k, S::mul(dh, z));
        });
    }
    // after d_rh = dn_pre W_hn: dr_pre, and d_rh becomes the gradient reaching h' through r (.) h'.
    static void gru_rb_backward2(const Row& r) {
        sweep<V>(r.n, [&](auto s, int64_t k) {
            using S = decltype(s);
            const auto rg = S::load(r.act + k), d_rh = S::load(r.d_rh + k);
            auto h_in = S::load(r.h_prev + k);
            if (r.mask) h_in = S::mul(h_in, S::load(r.mask + k));
            S::store(r.dg + k, S::mul(S::mul(d_rh, h_in), S::mul(rg, S::sub(one(s), rg))));
            S::store(r.d_rh + k, S::mul(d_rh, rg));
        });
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
    k.kernel_strided_b = &GemmKernels<V>::kernel_strided_b;
    k.kernel_panels = &GemmKernels<V>::kernel_panels;
    k.gemm_nt_direct = &GemmKernels<V>::gemm_nt_direct;
    k.gemm_small_m = &GemmKernels<V>::gemm_small_m;
    k.small_m_scratch = &GemmKernels<V>::small_m_scratch;
    k.sigmoid = &sigmoid_array<V>;
    k.tanh = &tanh_array<V>;
    k.rnn_forward = &Cells<V>::rnn_forward;
    k.rnn_backward = &Cells<V>::rnn_backward;
    k.lstm_forward = &Cells<V>::lstm_forward;
    k.lstm_backward = &Cells<V>::lstm_backward;
    k.gru_ra_forward = &Cells<V>::gru_ra_forward;
    k.gru_ra_backward = &Cells<V>::gru_ra_backward;
    k.gru_rb_forward1 = &Cells<V>::gru_rb_forward1;
    k.gru_rb_forward2 = &Cells<V>::gru_rb_forward2;
    k.gru_rb_backward1 = &Cells<V>::gru_rb_backward1;
    k.gru_rb_backward2 = &Cells<V>::gru_rb_backward2;
    return k;
}
