// VT-d IRTE formats (VT-d 9.10 remapped, 9.11 posted). Raw values worked out by hand from the bit
// tables in iommu/vtd_irte.hpp.
#include <gtest/gtest.h>

#include "iommu/vtd_irte.hpp"

namespace hv::iommu {
namespace {

// P | DM logical (2) | RH (3) | TM level (4) | DLM 001b (7:5 = 0x20) | AVAIL 0xA (0xA00) |
// vector 0x45 (23:16) | DST 0x12345678 (63:32); SID 0xABCD | SQ 10b (81:80) | SVT 01b (83:82).
constexpr VtdIrte kRemapped{0x1234'5678'0045'0A3DULL, 0x0000'0000'0006'ABCDULL};

VtdRemappedIrte remapped_fields()
{
    VtdRemappedIrte r;
    r.present = true;
    r.dest_mode = apic::DestMode::Logical;
    r.redirection_hint = true;
    r.trigger = apic::Trigger::Level;
    r.mode = apic::DeliveryMode::LowestPriority;
    r.avail = 0xA;
    r.vector = 0x45;
    r.dest = 0x12345678;
    r.source = {0xABCD, 2, VtdSvt::SidSq};
    return r;
}

// P | FPD | AVAIL 5 | URG (14) | IM (15) | vector 0x66 | PDA 0x0000'1234'89AB'CDC0:
// PDA[31:6] in 63:38, PDA[63:32] in 127:96; SID 0x0108 | SQ 11b | SVT 01b.
constexpr VtdIrte kPosted{0x89AB'CDC0'0066'C503ULL, 0x0000'1234'0007'0108ULL};

VtdPostedIrte posted_fields()
{
    VtdPostedIrte p;
    p.present = true;
    p.fpd = true;
    p.avail = 5;
    p.urgent = true;
    p.vector = 0x66;
    p.pda = 0x0000'1234'89AB'CDC0ULL;
    p.source = {0x0108, 3, VtdSvt::SidSq};
    return p;
}

TEST(VtdIrte, Layout)
{
    static_assert(sizeof(VtdIrte) == 16);
    EXPECT_EQ(VtdFault::RequestReserved, static_cast<VtdFault>(0x20));
    EXPECT_EQ(static_cast<uint8_t>(VtdFault::IndexBeyond), 0x21);
    EXPECT_EQ(static_cast<uint8_t>(VtdFault::NotPresent), 0x22);
    EXPECT_EQ(static_cast<uint8_t>(VtdFault::TableAccess), 0x23);
    EXPECT_EQ(static_cast<uint8_t>(VtdFault::IrteReserved), 0x24);
    EXPECT_EQ(static_cast<uint8_t>(VtdFault::CompatBlocked), 0x25);
    EXPECT_EQ(static_cast<uint8_t>(VtdFault::SidMismatch), 0x26);
    EXPECT_EQ(static_cast<uint8_t>(VtdFault::PidAccess), 0x27);
}

TEST(VtdIrte, RemappedEncodeDecode)
{
    EXPECT_EQ(remapped_fields().encode(), kRemapped);
    const auto d = VtdRemappedIrte::decode(kRemapped, true);
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value, remapped_fields());
    EXPECT_TRUE(is_present(kRemapped));
    EXPECT_FALSE(is_posted(kRemapped));
}

TEST(VtdIrte, RemappedXapicDestination)
{
    // xAPIC mode: the 8-bit ID in 47:40, i.e. DST = 0x0000'3400.
    const VtdIrte e{0x0000'3400'0030'0001ULL, 0};
    const auto d = VtdRemappedIrte::decode(e, false);
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value.destination(false), 0x34u);
    const apic::IoApicMessage m = to_message(d.value, false);
    EXPECT_EQ(m.dest.dest, 0x34u);
    EXPECT_FALSE(m.dest.x2apic_format);
    EXPECT_EQ(m.vector, 0x30);
    EXPECT_EQ(to_message(d.value, true).dest.dest, 0x3400u);
}

TEST(VtdIrte, RemappedReservedBits)
{
    std::vector<unsigned> lo_bits = {12, 13, 14};
    for (unsigned b = 24; b <= 31; ++b) {
        lo_bits.push_back(b);
    }
    for (unsigned b : lo_bits) {
        const VtdIrte e{kRemapped.lo | (1ULL << b), kRemapped.hi};
        EXPECT_EQ(VtdRemappedIrte::decode(e, true).error, VtdFault::IrteReserved) << b;
    }
    for (unsigned b = 84; b <= 127; ++b) {
        const VtdIrte e{kRemapped.lo, kRemapped.hi | (1ULL << (b - 64))};
        EXPECT_EQ(VtdRemappedIrte::decode(e, true).error, VtdFault::IrteReserved) << b;
    }
    // xAPIC mode: DST bits 39:32 and 63:48 are reserved; legal in x2APIC mode.
    for (unsigned b = 32; b <= 63; ++b) {
        const VtdIrte e{0x1ULL | (1ULL << b), 0};
        const bool reserved = b <= 39 || b >= 48;
        EXPECT_EQ(VtdRemappedIrte::decode(e, false).ok(), !reserved) << b;
        EXPECT_TRUE(VtdRemappedIrte::decode(e, true).ok()) << b;
    }
}

TEST(VtdIrte, RemappedReservedEncodings)
{
    // DLM 011b and 110b; SVT 11b; IM = 1 is the other format.
    EXPECT_EQ(VtdRemappedIrte::decode({0x61, 0}, true).error, VtdFault::IrteReserved);
    EXPECT_EQ(VtdRemappedIrte::decode({0xC1, 0}, true).error, VtdFault::IrteReserved);
    EXPECT_TRUE(VtdRemappedIrte::decode({0xE1, 0}, true));  // ExtINT
    EXPECT_EQ(VtdRemappedIrte::decode({0x1, 0xC0000}, true).error, VtdFault::IrteReserved);
    EXPECT_EQ(VtdRemappedIrte::decode({0x8001, 0}, true).error, VtdFault::IrteReserved);
}

TEST(VtdIrte, PostedEncodeDecode)
{
    EXPECT_EQ(posted_fields().encode(), kPosted);
    const auto d = VtdPostedIrte::decode(kPosted);
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value, posted_fields());
    EXPECT_TRUE(is_posted(kPosted));
    EXPECT_TRUE(fault_processing_disabled(kPosted));
}

TEST(VtdIrte, PostedReservedBits)
{
    std::vector<unsigned> lo_bits = {2, 3, 4, 5, 6, 7, 12, 13};
    for (unsigned b = 24; b <= 37; ++b) {
        lo_bits.push_back(b);
    }
    for (unsigned b : lo_bits) {
        const VtdIrte e{kPosted.lo | (1ULL << b), kPosted.hi};
        EXPECT_EQ(VtdPostedIrte::decode(e).error, VtdFault::IrteReserved) << b;
    }
    for (unsigned b = 84; b <= 95; ++b) {
        const VtdIrte e{kPosted.lo, kPosted.hi | (1ULL << (b - 64))};
        EXPECT_EQ(VtdPostedIrte::decode(e).error, VtdFault::IrteReserved) << b;
    }
    EXPECT_EQ(VtdPostedIrte::decode({0x1, 0}).error, VtdFault::IrteReserved);           // IM = 0
    EXPECT_EQ(VtdPostedIrte::decode({0x8001, 0xC0000}).error, VtdFault::IrteReserved);  // SVT 11b
}

TEST(VtdIrte, SourceValidation)
{
    struct Case {
        VtdSource s;
        uint16_t requester;
        bool ok;
    };
    const Case cases[] = {
        {{0x0108, 0, VtdSvt::None}, 0xFFFF, true},   {{0x0108, 0, VtdSvt::SidSq}, 0x0108, true},
        {{0x0108, 0, VtdSvt::SidSq}, 0x0109, false}, {{0x0108, 0, VtdSvt::SidSq}, 0x010C, false},
        {{0x0108, 1, VtdSvt::SidSq}, 0x010C, true},  // SQ 01b: bit 2 ignored
        {{0x0108, 1, VtdSvt::SidSq}, 0x0109, false}, {{0x0108, 1, VtdSvt::SidSq}, 0x010A, false},
        {{0x0108, 2, VtdSvt::SidSq}, 0x010E, true},  // SQ 10b: bits 2:1 ignored
        {{0x0108, 2, VtdSvt::SidSq}, 0x010A, true},  {{0x0108, 2, VtdSvt::SidSq}, 0x0109, false},
        {{0x0108, 3, VtdSvt::SidSq}, 0x010F, true},  // SQ 11b: bits 2:0 ignored
        {{0x0108, 3, VtdSvt::SidSq}, 0x0100, false}, {{0x0108, 3, VtdSvt::SidSq}, 0x0208, false},
        {{0x0305, 0, VtdSvt::Bus}, 0x0300, true},  // buses 3..5
        {{0x0305, 0, VtdSvt::Bus}, 0x05FF, true},    {{0x0305, 0, VtdSvt::Bus}, 0x02FF, false},
        {{0x0305, 0, VtdSvt::Bus}, 0x0600, false},   {{0x0108, 0, VtdSvt::Reserved}, 0x0108, false},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(verify_source(c.s, c.requester), c.ok)
            << std::hex << c.s.sid << " sq " << int{c.s.sq} << " svt " << int(c.s.svt) << " req "
            << c.requester;
    }
}

TEST(VtdIrte, QualifiedFaults)
{
    EXPECT_FALSE(is_qualified(VtdFault::RequestReserved));
    EXPECT_FALSE(is_qualified(VtdFault::IndexBeyond));
    EXPECT_TRUE(is_qualified(VtdFault::NotPresent));
    EXPECT_FALSE(is_qualified(VtdFault::TableAccess));
    EXPECT_TRUE(is_qualified(VtdFault::IrteReserved));
    EXPECT_FALSE(is_qualified(VtdFault::CompatBlocked));
    EXPECT_TRUE(is_qualified(VtdFault::SidMismatch));
    EXPECT_TRUE(is_qualified(VtdFault::PidAccess));
}

}  // namespace
}  // namespace hv::iommu
