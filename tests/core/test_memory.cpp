#include <gtest/gtest.h>

#include "core/base/error.hpp"
#include "core/bus/memory.hpp"

using hv::GuestMemory;

TEST(GuestMemory, SizesOutOfRangeAreRefused)
{
    EXPECT_THROW(GuestMemory(1 << 20), hv::Error);
    EXPECT_THROW(GuestMemory(hv::kMaxMemory + 4096), hv::Error);
    EXPECT_THROW(GuestMemory((4 << 20) + 100), hv::Error);
}

TEST(GuestMemory, TranslationIsBoundsChecked)
{
    GuestMemory m(4 << 20);
    EXPECT_NE(m.ptr(0, 4 << 20), nullptr);
    EXPECT_NE(m.ptr((4 << 20) - 1, 1), nullptr);
    EXPECT_EQ(m.ptr((4 << 20) - 1, 2), nullptr);
    EXPECT_EQ(m.ptr(4 << 20, 1), nullptr);
    // Sums that would wrap must not pass the check.
    EXPECT_EQ(m.ptr(~0ull - 2, 8), nullptr);
    EXPECT_EQ(m.ptr(8, ~0ull), nullptr);
    std::uint32_t v = 0x12345678, out = 0;
    EXPECT_TRUE(m.write(0x1000, &v, 4));
    EXPECT_TRUE(m.read(0x1000, &out, 4));
    EXPECT_EQ(out, v);
    EXPECT_FALSE(m.write((4 << 20) - 2, &v, 4));
    EXPECT_THROW(m.span(0xfee00000, 4), hv::Error);
}

// An empty boot module hands its data() (nullptr) to write_checked: a copy of nothing must not
// pass it to memcpy (undefined behaviour; found by fuzz_loader, caught here by .ci/asan's UBSan).
TEST(GuestMemory, CopiesOfNothingMayTakeNullPointers)
{
    GuestMemory m(4 << 20);
    EXPECT_NO_THROW(m.write_checked(0x1000, nullptr, 0));
    EXPECT_TRUE(m.write(0x1000, nullptr, 0));
    EXPECT_TRUE(m.read(0x1000, nullptr, 0));
    EXPECT_THROW(m.write_checked(4 << 20, nullptr, 0), hv::Error);  // still range-checked
}

TEST(GuestMemory, LargeGuestsSplitAroundTheHole)
{
    GuestMemory m(4ull << 30);  // reserved lazily: costs nothing until touched
    ASSERT_EQ(m.regions().size(), 2u);
    EXPECT_EQ(m.low_top(), hv::kLowRamTop);
    EXPECT_EQ(m.regions()[1].gpa, hv::kHighRamBase);
    EXPECT_EQ(m.regions()[1].size, (4ull << 30) - hv::kLowRamTop);
    EXPECT_EQ(m.ptr(hv::kLowRamTop, 1), nullptr);  // the hole
    EXPECT_EQ(m.ptr(0xfee00000, 4), nullptr);
    EXPECT_NE(m.ptr(hv::kHighRamBase, 4096), nullptr);
    EXPECT_EQ(m.ptr(hv::kLowRamTop - 4, 8), nullptr);  // straddles the hole
}
