#include "dispatch.h"

#include <atomic>
#include <cstdlib>

#include "gatedrnn/common.h"

namespace gatedrnn::isa {
namespace {

std::atomic<const Isa*> current{nullptr};

// Nothing here may call into an ISA unit before its CPU check passed: even building a unit's
// kernel table runs code compiled for that ISA (the test under qemu -cpu Nehalem holds us to it).
struct Entry {
    const char* name;
    bool compiled;
    const Isa* (*get)();
    bool (*cpu_has)();
};

bool has_avx2() {
#if defined(GATEDRNN_HAVE_AVX2) && (defined(__GNUC__) || defined(__clang__))
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

bool has_avx512() {
#if defined(GATEDRNN_HAVE_AVX512) && (defined(__GNUC__) || defined(__clang__))
    return __builtin_cpu_supports("avx512f") && has_avx2();
#else
    return false;
#endif
}

bool always() { return true; }

const Isa* get_baseline() { return &baseline(); }
#ifdef GATEDRNN_HAVE_AVX2
constexpr bool kAvx2 = true;
const Isa* get_avx2() { return &avx2(); }
const Isa* get_avx2_emu16() { return &avx2_emu16(); }
#else
constexpr bool kAvx2 = false;
const Isa* get_avx2() { return nullptr; }
const Isa* get_avx2_emu16() { return nullptr; }
#endif
#ifdef GATEDRNN_HAVE_AVX512
constexpr bool kAvx512 = true;
const Isa* get_avx512() { return &avx512(); }
#else
constexpr bool kAvx512 = false;
const Isa* get_avx512() { return nullptr; }
#endif

// Best first; avx2_emu16 is a test path (AVX-512 shapes on AVX2), never chosen by default.
const Entry entries[] = {
    {"avx512", kAvx512, get_avx512, has_avx512},
    {"avx2", kAvx2, get_avx2, has_avx2},
    {"baseline", true, get_baseline, always},
    {"avx2_emu16", kAvx2, get_avx2_emu16, has_avx2},
};

}  // namespace

std::vector<std::string> available() {
    std::vector<std::string> names;
    for (const Entry& e : entries)
        if (e.compiled && e.cpu_has()) names.push_back(e.name);
    return names;
}

void set_active(const std::string& name) {
    for (const Entry& e : entries) {
        if (name != e.name) continue;
        if (!e.compiled)
            throw ValueError("GATEDRNN_ISA: the '" + name + "' kernels were not compiled into this build");
        if (!e.cpu_has())
            throw ValueError("GATEDRNN_ISA: this CPU does not support '" + name + "'");
        current.store(e.get());
        return;
    }
    throw ValueError("GATEDRNN_ISA: expected one of baseline, avx2, avx512, avx2_emu16, got '" +
                     name + "'");
}

void select_from_environment() {
    const char* forced = std::getenv("GATEDRNN_ISA");
    if (forced && *forced) {
        set_active(forced);
        return;
    }
    set_active(available().front());
}

const Isa& active() {
    const Isa* isa = current.load();
    if (!isa) {
        select_from_environment();
        isa = current.load();
    }
    return *isa;
}

}  // namespace gatedrnn::isa
