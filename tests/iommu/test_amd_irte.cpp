// AMD IOMMU IRTEs (legacy 32-bit, GA 128-bit) and the GA log entry. Raw values worked out by hand
// from the bit tables in iommu/amd_irte.hpp.
#include <gtest/gtest.h>

#include "iommu/amd_irte.hpp"

namespace hv::iommu {
namespace {

// RemapEn | SupIOPF | IntType 001b (4:2 = 0x4) | RqEoi (5) | DM (6) | Dest 0xA5 | Vector 0x5A.
constexpr uint32_t kLegacy = 0x005A'A567u;
// RemapEn | DM logical | Dest 0x12345678 (Dest[23:0] in 31:8, Dest[31:24] in 127:120) |
// GATag 0xDEADBEEF | Vector 0x77.
constexpr AmdGaIrte kGaRemap{0xDEAD'BEEF'3456'7841ULL, 0x1200'0000'0000'0077ULL};
// RemapEn | GALogIntr (2) | IsRun (6) | GuestMode (7) | Dest 0x102 | GATag 0x00010002 |
// Vector 0x31 | GA root 0x100005 in 51:12.
constexpr AmdGaIrte kGaVapic{0x0001'0002'0001'02C5ULL, 0x0000'0001'0000'5031ULL};

TEST(AmdIrte, LegacyEncodeDecode)
{
    AmdLegacyIrte f{true, true, AmdIntType::Arbitrated, true, apic::DestMode::Logical, 0xA5, 0x5A};
    EXPECT_EQ(f.encode(), kLegacy);
    const auto d = AmdLegacyIrte::decode(kLegacy);
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value, f);
    const apic::IoApicMessage m = to_message(d.value);
    EXPECT_EQ(m.mode, apic::DeliveryMode::LowestPriority);
    EXPECT_EQ(m.dest.dest, 0xA5u);
    EXPECT_EQ(m.dest.mode, apic::DestMode::Logical);
}

TEST(AmdIrte, LegacyReserved)
{
    std::vector<unsigned> bits = {7};
    for (unsigned b = 24; b <= 31; ++b) {
        bits.push_back(b);
    }
    for (unsigned b : bits) {
        EXPECT_EQ(AmdLegacyIrte::decode(kLegacy | (1u << b)).error, AmdIrteError::Reserved) << b;
    }
    for (uint32_t t = 2; t <= 7; ++t) {
        EXPECT_EQ(AmdLegacyIrte::decode(0x1u | (t << 2)).error, AmdIrteError::Reserved) << t;
    }
}

TEST(AmdIrte, GaRemapEncodeDecode)
{
    AmdGaRemapIrte f;
    f.remap_en = true;
    f.dest_mode = apic::DestMode::Logical;
    f.dest = 0x12345678;
    f.ga_tag = 0xDEADBEEF;
    f.vector = 0x77;
    EXPECT_EQ(f.encode(), kGaRemap);
    const auto d = AmdGaRemapIrte::decode(kGaRemap);
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value, f);
    EXPECT_EQ(to_message(d.value, true).dest.dest, 0x12345678u);
    EXPECT_EQ(to_message(d.value, false).dest.dest, 0x78u);
    EXPECT_EQ(AmdGaRemapIrte::decode(kGaVapic).error, AmdIrteError::WrongMode);
}

TEST(AmdIrte, GaVapicEncodeDecode)
{
    AmdGaVapicIrte f;
    f.remap_en = true;
    f.ga_log_intr = true;
    f.is_run = true;
    f.dest = 0x102;
    f.ga_tag = 0x00010002;
    f.vector = 0x31;
    f.ga_root_ptr = 0x100005;
    EXPECT_EQ(f.encode(), kGaVapic);
    const auto d = AmdGaVapicIrte::decode(kGaVapic);
    ASSERT_TRUE(d);
    EXPECT_EQ(d.value, f);
    EXPECT_EQ(AmdGaVapicIrte::decode(kGaRemap).error, AmdIrteError::WrongMode);
}

TEST(AmdIrte, GaReserved)
{
    for (unsigned b : {3u, 4u, 5u}) {
        const AmdGaIrte e{kGaVapic.lo | (1ULL << b), kGaVapic.hi};
        EXPECT_EQ(AmdGaVapicIrte::decode(e).error, AmdIrteError::Reserved) << b;
    }
    for (unsigned b : {8u, 9u, 10u, 11u, 52u, 53u, 54u, 55u}) {
        const AmdGaIrte v{kGaVapic.lo, kGaVapic.hi | (1ULL << b)};
        EXPECT_EQ(AmdGaVapicIrte::decode(v).error, AmdIrteError::Reserved) << b;
        const AmdGaIrte r{kGaRemap.lo, kGaRemap.hi | (1ULL << b)};
        EXPECT_EQ(AmdGaRemapIrte::decode(r).error, AmdIrteError::Reserved) << b;
    }
    for (uint64_t t = 2; t <= 7; ++t) {
        const AmdGaIrte e{0x1ULL | (t << 2), 0};
        EXPECT_EQ(AmdGaRemapIrte::decode(e).error, AmdIrteError::Reserved) << t;
    }
}

TEST(AmdIrte, WithIsRunChangesOnlyIsRunAndDest)
{
    // Clear IsRun (bit 6), Dest 0x102 -> 0xAB00'00CD: lo 31:8 = 0x0000CD, hi 63:56 = 0xAB.
    const AmdGaIrte n = with_is_run(kGaVapic, false, 0xAB00'00CDu);
    EXPECT_EQ(n.lo, 0x0001'0002'0000'CD85ULL);
    EXPECT_EQ(n.hi, 0xAB00'0001'0000'5031ULL);
    EXPECT_EQ(with_is_run(n, true, 0x102), kGaVapic);
}

TEST(AmdIrte, GaLogEntry)
{
    const AmdGaLogEntry e{0xCAFEF00D, 0x0123, amd::kGaGuestNr};
    EXPECT_EQ(e.encode(), 0x1000'0123'CAFE'F00DULL);
    EXPECT_EQ(AmdGaLogEntry::decode(0x1000'0123'CAFE'F00DULL), e);
}

}  // namespace
}  // namespace hv::iommu
