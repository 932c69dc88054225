// The libFuzzer body of fuzz_iommu.cpp, callable from the unit tests (test_fuzz_seeds.cpp) so the
// target cannot rot. Returns false when an invariant breaks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hv::iommu::test {
bool run_fuzz_input(const uint8_t* data, std::size_t size);
}
