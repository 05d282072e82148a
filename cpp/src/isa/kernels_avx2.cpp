// The AVX2 + FMA unit (compiled with -mavx2 -mfma): 8-float vectors, and the same template with
// pairs of them (16 lanes) so the AVX-512 tile shapes and tails run on AVX2 hardware.
#include <cstdint>
#include <cstring>
#include <immintrin.h>

#include "table.h"

namespace gatedrnn::isa {
namespace {
#include "vec.h"
#include "kernels.h"
}  // namespace

const Isa& avx2() {
    static const Isa table{"avx2", make_kernels<Avx2F>(), make_kernels<Avx2D>()};
    return table;
}

const Isa& avx2_emu16() {
    static const Isa table{"avx2_emu16", make_kernels<Pair<Avx2F>>(), make_kernels<Pair<Avx2D>>()};
    return table;
}

}  // namespace gatedrnn::isa
