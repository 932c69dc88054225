#include <gtest/gtest.h>

#include <map>

#include "core/base/error.hpp"
#include "core/bus/bus.hpp"

namespace {

struct Recorder : hv::IoDevice {
    std::map<std::uint64_t, std::uint64_t> regs;
    unsigned last_size = 0;
    std::uint64_t read(std::uint64_t off, unsigned size) override
    {
        last_size = size;
        return regs.count(off) ? regs[off] : 0x1122334455667788ull;
    }
    void write(std::uint64_t off, unsigned size, std::uint64_t v) override
    {
        last_size = size;
        regs[off] = v;
    }
};

}  // namespace

TEST(Bus, DispatchesByRangeWithRelativeOffsets)
{
    hv::Bus bus("test");
    Recorder a, b;
    bus.attach(0x100, 8, &a, "a");
    bus.attach(0x200, 0x10, &b, "b");
    EXPECT_TRUE(bus.write(0x104, 1, 0xab));
    EXPECT_EQ(a.regs[4], 0xabu);
    EXPECT_TRUE(bus.write(0x20c, 4, 0xdeadbeef));
    EXPECT_EQ(b.regs[0xc], 0xdeadbeefu);
    std::uint64_t v = 0;
    EXPECT_TRUE(bus.read(0x20c, 2, v));
    EXPECT_EQ(v, 0xbeefu);  // truncated to the access size
}

TEST(Bus, UnclaimedAccessesReadAllOnesAndAreCounted)
{
    hv::Bus bus("test");
    Recorder a;
    bus.attach(0x100, 8, &a, "a");
    std::uint64_t v = 0;
    EXPECT_FALSE(bus.read(0x50, 1, v));
    EXPECT_EQ(v, 0xffu);
    EXPECT_FALSE(bus.read(0x108, 4, v));
    EXPECT_EQ(v, 0xffffffffu);
    EXPECT_FALSE(bus.read(0x106, 4, v));  // straddles the end of a's range
    EXPECT_FALSE(bus.write(0x99, 2, 1));
    EXPECT_EQ(bus.unclaimed_reads(), 3u);
    EXPECT_EQ(bus.unclaimed_writes(), 1u);
    EXPECT_FALSE(bus.read(0, 8, v));
    EXPECT_EQ(v, ~0ull);
}

TEST(Bus, OverlappingOrEmptyClaimsAreRefused)
{
    hv::Bus bus("test");
    Recorder a, b;
    bus.attach(0x100, 8, &a, "a");
    EXPECT_THROW(bus.attach(0x104, 8, &b, "b"), hv::Error);
    EXPECT_THROW(bus.attach(0xf8, 9, &b, "b"), hv::Error);
    EXPECT_THROW(bus.attach(0x300, 0, &b, "b"), hv::Error);
    EXPECT_THROW(bus.attach(~0ull - 1, 8, &b, "b"), hv::Error);
    EXPECT_NO_THROW(bus.attach(0x108, 8, &b, "b"));  // adjacent is fine
}
