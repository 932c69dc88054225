// What the snapshot document's writer (state.cpp) and reader (state_read.cpp) agree on.
#pragma once

#include <cstddef>

#include "apic/regs.hpp"

namespace hv::snapshot {

inline constexpr unsigned kSectionVersion = 1;  // every section's current version
inline constexpr std::size_t kXsaveSize = 4096;
inline constexpr const char* kLvtNames[apic::kLvtCount] = {"cmci",  "timer", "thermal", "perf",
                                                           "lint0", "lint1", "error"};

}  // namespace hv::snapshot
