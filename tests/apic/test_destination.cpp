// Destination resolution. SDM Vol3 11.6.2 "Determining IPI Destination", 11.6.2.4 "Lowest Priority
// Delivery Mode", 11.12.10 "Determining IPI Destination in x2APIC Mode".
#include <gtest/gtest.h>

#include <initializer_list>
#include <vector>

#include "apic/destination.hpp"

namespace hv::apic {
namespace {

DestInfo xapic(uint32_t id, uint32_t ldr = 0, uint32_t dfr = 0xFFFFFFFFu, uint8_t ppr = 0)
{
    DestInfo d;
    d.id = id;
    d.ldr = ldr;
    d.dfr = dfr;
    d.sw_enabled = true;
    d.ppr = ppr;
    return d;
}

DestInfo x2(uint32_t id, uint8_t ppr = 0)
{
    DestInfo d;
    d.id = id;
    d.x2apic = true;
    d.ldr = ((id >> 4) << 16) | (1u << (id & 0xF));
    d.sw_enabled = true;
    d.ppr = ppr;
    return d;
}

TargetSet set_of(std::initializer_list<std::size_t> idx)
{
    TargetSet s;
    for (auto i : idx) {
        s[i] = true;
    }
    return s;
}

struct Case {
    const char* name;
    Destination dest;
    std::optional<std::size_t> self;
    TargetSet expect;
};

void run(const std::vector<DestInfo>& apics, const std::vector<Case>& cases)
{
    for (const auto& c : cases) {
        EXPECT_EQ(resolve(c.dest, apics, c.self), c.expect) << c.name;
    }
}

TEST(Destination, XapicPhysicalAndShorthands)
{
    const std::vector<DestInfo> apics = {xapic(0), xapic(1), xapic(2), xapic(0x0F)};
    using D = DestMode;
    using S = Shorthand;
    run(apics,
        {
            {"phys 1", {1, D::Physical, S::None, false}, 0, set_of({1})},
            {"phys 0xF", {0x0F, D::Physical, S::None, false}, 0, set_of({3})},
            {"phys none", {7, D::Physical, S::None, false}, 0, set_of({})},
            {"phys bcast", {0xFF, D::Physical, S::None, false}, 0, set_of({0, 1, 2, 3})},
            {"upper bits ignored", {0x101, D::Physical, S::None, false}, 0, set_of({1})},
            {"self", {9, D::Physical, S::Self, false}, 2, set_of({2})},
            {"self w/o sender", {9, D::Physical, S::Self, false}, std::nullopt, set_of({})},
            {"all incl", {9, D::Physical, S::AllIncludingSelf, false}, 2, set_of({0, 1, 2, 3})},
            {"all excl", {9, D::Logical, S::AllExcludingSelf, false}, 2, set_of({0, 1, 3})},
        });
}

TEST(Destination, XapicLogicalFlat)
{
    const std::vector<DestInfo> apics = {xapic(0, 0x01000000), xapic(1, 0x02000000),
                                         xapic(2, 0x04000000), xapic(3, 0x00000000)};
    using D = DestMode;
    using S = Shorthand;
    run(apics, {
                   {"bit 0", {0x01, D::Logical, S::None, false}, 0, set_of({0})},
                   {"bits 1,2", {0x06, D::Logical, S::None, false}, 0, set_of({1, 2})},
                   {"no match", {0x80, D::Logical, S::None, false}, 0, set_of({})},
                   {"broadcast", {0xFF, D::Logical, S::None, false}, 0, set_of({0, 1, 2, 3})},
               });
}

TEST(Destination, XapicLogicalCluster)
{
    const uint32_t cl = 0x0FFFFFFFu;
    const std::vector<DestInfo> apics = {xapic(0, 0x11000000, cl), xapic(1, 0x12000000, cl),
                                         xapic(2, 0x21000000, cl), xapic(3, 0x28000000, cl)};
    using D = DestMode;
    using S = Shorthand;
    run(apics, {
                   {"cluster 1 bit 0", {0x11, D::Logical, S::None, false}, 0, set_of({0})},
                   {"cluster 1 bits 0,1", {0x13, D::Logical, S::None, false}, 0, set_of({0, 1})},
                   {"cluster 2 bit 3", {0x28, D::Logical, S::None, false}, 0, set_of({3})},
                   {"wrong cluster", {0x31, D::Logical, S::None, false}, 0, set_of({})},
                   {"broadcast", {0xFF, D::Logical, S::None, false}, 0, set_of({0, 1, 2, 3})},
               });
}

TEST(Destination, UndefinedDfrModelMatchesNoLogicalDestination)
{
    const std::vector<DestInfo> apics = {xapic(0, 0x01000000, 0x5FFFFFFFu)};
    EXPECT_EQ(resolve({0x01, DestMode::Logical, Shorthand::None, false}, apics, 0), set_of({}));
}

TEST(Destination, X2apicPhysicalClusterAndBroadcast)
{
    const std::vector<DestInfo> apics = {x2(0), x2(1), x2(0x10), x2(0x11), x2(0x1FF)};
    using D = DestMode;
    using S = Shorthand;
    run(apics,
        {
            {"phys 0x1FF", {0x1FF, D::Physical, S::None, true}, 0, set_of({4})},
            {"phys 0xFF is not broadcast", {0xFF, D::Physical, S::None, true}, 0, set_of({})},
            {"phys bcast", {0xFFFFFFFF, D::Physical, S::None, true}, 0, set_of({0, 1, 2, 3, 4})},
            {"cluster 0 bits 0,1", {0x00000003, D::Logical, S::None, true}, 0, set_of({0, 1})},
            {"cluster 1 bit 1", {0x00010002, D::Logical, S::None, true}, 0, set_of({3})},
            {"cluster 0x1F bit 15", {0x001F8000, D::Logical, S::None, true}, 0, set_of({4})},
            {"logical bcast", {0xFFFFFFFF, D::Logical, S::None, true}, 0, set_of({0, 1, 2, 3, 4})},
            {"all excl", {0, D::Physical, S::AllExcludingSelf, true}, 4, set_of({0, 1, 2, 3})},
        });
}

TEST(Destination, XapicFormatMessageToX2apicReceivers)
{
    // An IOAPIC message (8-bit destination) to x2APIC-mode CPUs: 0xFF is still a broadcast.
    const std::vector<DestInfo> apics = {x2(0), x2(3)};
    EXPECT_EQ(resolve({3, DestMode::Physical, Shorthand::None, false}, apics, {}), set_of({1}));
    EXPECT_EQ(resolve({0xFF, DestMode::Physical, Shorthand::None, false}, apics, {}),
              set_of({0, 1}));
}

TEST(Destination, DisabledApicsReceiveNothing)
{
    std::vector<DestInfo> apics = {xapic(0), xapic(1)};
    apics[1].enabled = false;
    EXPECT_EQ(resolve({0xFF, DestMode::Physical, Shorthand::None, false}, apics, 0), set_of({0}));
    EXPECT_EQ(resolve({1, DestMode::Physical, Shorthand::None, false}, apics, 0), set_of({}));
    EXPECT_EQ(resolve({0, DestMode::Physical, Shorthand::AllIncludingSelf, false}, apics, 0),
              set_of({0}));
}

TEST(Destination, LowestPriorityPicksLowestPprThenLowestIndex)
{
    std::vector<DestInfo> apics = {xapic(0, 0, ~0u, 0x40), xapic(1, 0, ~0u, 0x20),
                                   xapic(2, 0, ~0u, 0x20), xapic(3, 0, ~0u, 0x10)};
    apics[3].sw_enabled = false;
    Ipi ipi;
    ipi.mode = DeliveryMode::LowestPriority;
    ipi.vector = 0x40;
    ipi.dest = {0xFF, DestMode::Physical, Shorthand::None, false};
    EXPECT_EQ(resolve_ipi(ipi, apics, 0), set_of({1}));  // 3 is lower but software-disabled
    apics[0].ppr = 0x00;
    EXPECT_EQ(resolve_ipi(ipi, apics, 0), set_of({0}));
    ipi.dest = {2, DestMode::Physical, Shorthand::None, false};
    EXPECT_EQ(resolve_ipi(ipi, apics, 0), set_of({2}));
    ipi.dest = {3, DestMode::Physical, Shorthand::None, false};
    EXPECT_EQ(resolve_ipi(ipi, apics, 0), set_of({3}));  // only candidate, even if disabled
    ipi.dest = {9, DestMode::Physical, Shorthand::None, false};
    EXPECT_EQ(resolve_ipi(ipi, apics, 0), set_of({}));
}

TEST(Destination, InitDeassertGoesToEveryone)
{
    const std::vector<DestInfo> apics = {xapic(0), xapic(1), xapic(2)};
    Ipi ipi;
    ipi.mode = DeliveryMode::Init;
    ipi.assert_level = false;
    ipi.trigger = Trigger::Level;
    ipi.dest = {1, DestMode::Physical, Shorthand::None, false};
    EXPECT_EQ(resolve_ipi(ipi, apics, 0), set_of({0, 1, 2}));
    ipi.assert_level = true;
    EXPECT_EQ(resolve_ipi(ipi, apics, 0), set_of({1}));
}

TEST(Destination, IcrEncodeDecodeRoundTrip)
{
    for (bool x2mode : {false, true}) {
        Ipi ipi;
        ipi.vector = 0x9D;
        ipi.mode = DeliveryMode::LowestPriority;
        ipi.trigger = Trigger::Level;
        ipi.assert_level = true;
        ipi.dest = {x2mode ? 0x12345u : 0x5Au, DestMode::Logical, Shorthand::AllExcludingSelf,
                    x2mode};
        EXPECT_EQ(decode_icr(encode_icr(ipi, x2mode), x2mode), ipi);
    }
    EXPECT_EQ(encode_icr(decode_icr(0x5A000000'000C4930ULL, false), false), 0x5A000000'000C4930ULL);
}

}  // namespace
}  // namespace hv::apic
