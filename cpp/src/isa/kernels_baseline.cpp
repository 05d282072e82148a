// The baseline ISA unit: SSE2 on x86-64 (every x86-64 CPU has it), scalar elsewhere.
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "table.h"

namespace gatedrnn::isa {
namespace {
#include "vec.h"
#include "kernels.h"
#if defined(__SSE2__)
using VF = Sse2F;
using VD = Sse2D;
#else
using VF = Scalar<float>;
using VD = Scalar<double>;
#endif
}  // namespace

const Isa& baseline() {
    static const Isa table{"baseline", make_kernels<VF>(), make_kernels<VD>()};
    return table;
}

}  // namespace gatedrnn::isa
