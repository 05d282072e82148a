// Run-time ISA dispatch: the ISA is chosen once, at import, from CPUID, unless
// GATEDRNN_ISA=baseline|avx2|avx512|avx2_emu16 forces one (an error if this CPU or build lacks
// it). Tests switch paths with set_active_isa between calls.
#pragma once

#include <string>
#include <vector>

#include "table.h"

namespace gatedrnn::isa {

const Isa& active();
// Names of the ISAs this build has and this CPU runs, best first.
std::vector<std::string> available();
// Makes `name` the active ISA; throws ValueError if it is unknown or unavailable here.
void set_active(const std::string& name);
// Applies GATEDRNN_ISA (or the best available ISA). Called once when the module is imported.
void select_from_environment();

}  // namespace gatedrnn::isa
