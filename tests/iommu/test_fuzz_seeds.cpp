// Runs the libFuzzer body (fuzz_iommu.cpp, compiled in with HV_IOMMU_FUZZ_IN_TESTS) over seed
// inputs and pseudo-random ones, so the target keeps building and its invariants keep holding.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "fuzz_iommu.hpp"

namespace hv::iommu::test {
namespace {

TEST(IommuFuzzSeeds, EmptyAndTinyInputs)
{
    EXPECT_TRUE(run_fuzz_input(nullptr, 0));
    const uint8_t one[] = {0x3F};
    EXPECT_TRUE(run_fuzz_input(one, sizeof one));
}

TEST(IommuFuzzSeeds, HandWrittenSequence)
{
    // One operation per line.
    // clang-format off
    const std::vector<uint8_t> seed = {
        0x04,                         // mode: 16 entries, x2APIC
        1,    0x00, 0x11, 0x41, 0, 0, // posted entry 0, P, vector 0x41, PID 1
        2,    0x00, 0x00, 0x01, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // remap handle 0
        4,    0x00, 0x09, 0x52, 1, 0, 0, 0, 7, 0, 0, 0, // vAPIC entry, RemapEn | IsRun
        5,    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // AMD remaps
        7, 8, 1, 0x41, 9, 0x81, 0xF2, 1, 0, 0, 0, 2, 0, 0, 0x03,
    };
    // clang-format on
    EXPECT_TRUE(run_fuzz_input(seed.data(), seed.size()));
}

TEST(IommuFuzzSeeds, PseudoRandomInputs)
{
    std::mt19937 rng(12345);
    std::vector<uint8_t> buf;
    for (int i = 0; i < 300; ++i) {
        buf.resize(rng() % 2048);
        for (auto& b : buf) {
            b = static_cast<uint8_t>(rng());
        }
        ASSERT_TRUE(run_fuzz_input(buf.data(), buf.size())) << "input " << i;
    }
}

}  // namespace
}  // namespace hv::iommu::test
