// The AVX-512F unit (compiled with -mavx512f): 16-float vectors, the same template as AVX2.
#include <cstdint>
#include <cstring>
#include <immintrin.h>

#include "table.h"

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
