// The AVX-512F unit (compiled with -mavx512f): 16-float vectors, the same template as AVX2.
#include <cstdint>
#include <cstring>
#include <immintrin.h>

#include "table.h"

// GCC before 13 warns "'__Y' is used uninitialized" wherever AVX-512 intrinsics that take an
// _mm512_undefined_* pass-through (max, min, roundscale, shifts) inline into a large function
// (GCC bug 105593): a false alarm about the intrinsics' own placeholder, not about our values.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace gatedrnn::isa {
namespace {
#include "vec.h"
#include "kernels.h"
}  // namespace

const Isa& avx512() {
    static const Isa table{"avx512", make_kernels<Avx512F>(), make_kernels<Avx512D>()};
    return table;
}

}  // namespace gatedrnn::isa
