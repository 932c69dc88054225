// x2APIC MSR behaviour. SDM Vol3 11.12.1.2 "x2APIC Register Address Space", 11.12.1.3 "Reserved
// Bit Checking", 11.12.9 "ICR Operation in x2APIC Mode", 11.12.11 "SELF IPI Register".
#include <gtest/gtest.h>

#include <vector>

#include "test_helpers.hpp"

namespace hv::apic::test {
namespace {

struct MsrCase {
    uint32_t msr;
    bool read_gp;
    uint64_t write;
    bool write_gp;
};

LocalApic make_x2(uint32_t id = 0x23)
{
    LocalApic a = make_apic(id);
    EXPECT_TRUE(to_x2apic(a).is_ok());
    return a;
}

TEST(X2apicRegs, AccessRulesPerMsr)
{
    const std::vector<MsrCase> cases = {
        {0x802, false, 0, true},           // ID: read-only
        {0x803, false, 0, true},           // version: read-only
        {0x808, false, 0xFF, false},       // TPR
        {0x808, false, 0x100, true},       // TPR reserved bit
        {0x808, false, 1ULL << 32, true},  // upper half reserved
        {0x809, true, 0, true},            // APR: not in x2APIC
        {0x80A, false, 0, true},           // PPR: read-only
        {0x80B, true, 0, false},           // EOI: write-only, 0 only
        {0x80B, true, 1, true},
        {0x80C, true, 0, true},         // RRD: not in x2APIC
        {0x80D, false, 0, true},        // LDR: read-only
        {0x80E, true, 0, true},         // DFR: does not exist
        {0x80F, false, 0x13FF, false},  // SVR
        {0x80F, false, 0x2000, true},
        {0x810, false, 0, true},  // ISR
        {0x817, false, 0, true},
        {0x818, false, 0, true},  // TMR
        {0x820, false, 0, true},  // IRR
        {0x827, false, 0, true},
        {0x828, false, 0, false},  // ESR: only 0 may be written
        {0x828, false, 0x40, true},
        {0x82F, false, 0x107FF, false},  // CMCI
        {0x82F, false, 0x20000, true},
        {0x830, false, 0x00000005'000C4030ULL, false},  // ICR, 64-bit
        {0x830, false, 0x1000 | 0x30, false},           // bit 12 ignored (Intel; AMD #GPs)
        {0x830, false, 0x2000 | 0x30, true},            // bit 13
        {0x830, false, 0x10000 | 0x30, true},           // bit 16
        {0x830, false, 0x100000 | 0x30, true},          // bit 20
        {0x831, true, 0, true},                         // reserved: ICR is one MSR
        {0x832, false, 0x400FF, false},                 // timer, TSC-deadline mode
        {0x832, false, 0x600FF, true},                  // reserved mode 11b
        {0x832, false, 0x80000, true},
        {0x833, false, 0x107FF, false},  // thermal
        {0x834, false, 0x107FF, false},  // perf
        {0x834, false, 0x2000, true},    // perf has no polarity bit
        {0x835, false, 0x1A7FF, false},  // LINT0
        {0x835, false, 0x4000, true},    // remote IRR is read-only
        {0x836, false, 0x1A7FF, false},  // LINT1
        {0x837, false, 0x100FF, false},  // error
        {0x837, false, 0x700, true},
        {0x838, false, 0xFFFFFFFF, false},  // TMICT
        {0x839, false, 0, true},            // TMCCT: read-only
        {0x83E, false, 0xB, false},         // TDCR
        {0x83E, false, 0x4, true},
        {0x83F, true, 0x30, false},  // SELF_IPI: write-only
        {0x83F, true, 0x130, true},
    };
    for (const auto& c : cases) {
        LocalApic a = make_x2();
        EXPECT_EQ(a.msr_read(c.msr, at(0)).is_gp(), c.read_gp) << std::hex << c.msr;
        EXPECT_EQ(a.msr_write(c.msr, c.write, at(0)).is_gp(), c.write_gp)
            << std::hex << c.msr << " <- " << c.write;
    }
}

TEST(X2apicRegs, ReservedMsrsRaiseGp)
{
    std::vector<uint32_t> reserved = {0x800, 0x801, 0x804, 0x805, 0x806, 0x807, 0x829,
                                      0x82A, 0x82E, 0x83A, 0x83D, 0x840, 0x8FF};
    for (uint32_t msr : reserved) {
        LocalApic a = make_x2();
        EXPECT_TRUE(a.msr_read(msr, at(0)).is_gp()) << std::hex << msr;
        EXPECT_TRUE(a.msr_write(msr, 0, at(0)).is_gp()) << std::hex << msr;
    }
}

TEST(X2apicRegs, WritesThatSucceedAreReadBack)
{
    const std::vector<std::pair<uint32_t, uint64_t>> cases = {
        {0x808, 0x7F},       {0x80F, 0x11FF},  {0x82F, 0x107FF}, {0x830, 0xFFFFFFFF'000C4FFFULL},
        {0x832, 0x200FF},    {0x833, 0x104FF}, {0x835, 0x1A7FF}, {0x837, 0x100FE},
        {0x838, 0x12345678}, {0x83E, 0x9},
    };
    for (const auto& [msr, v] : cases) {
        LocalApic a = make_x2();
        ASSERT_TRUE(a.msr_write(msr, v, at(0)).is_ok()) << std::hex << msr;
        EXPECT_EQ(a.msr_read(msr, at(0)).value, v) << std::hex << msr;
    }
}

// SDM Vol3 11.12.10.2 "Deriving Logical x2APIC ID from the Local x2APIC ID".
TEST(X2apicRegs, IdIs32BitAndLdrIsDerived)
{
    const std::vector<std::pair<uint32_t, uint32_t>> cases = {
        {0x0, 0x00000001},  {0x1, 0x00000002},  {0xF, 0x00008000},
        {0x10, 0x00010001}, {0x23, 0x00020008}, {0x12345, 0x12340020},
    };
    for (const auto& [id, ldr] : cases) {
        LocalApic a = make_x2(id);
        EXPECT_EQ(a.msr_read(0x802, at(0)).value, id);
        EXPECT_EQ(a.msr_read(0x80D, at(0)).value, ldr) << std::hex << id;
        EXPECT_EQ(a.dest_info().ldr, ldr);
    }
}

TEST(X2apicRegs, IcrWriteSendsWithA32BitDestination)
{
    LocalApic a = make_x2();
    const AccessResult r = a.msr_write(0x830, 0x00012345'00000831ULL, at(0));
    ASSERT_TRUE(r.ipi.has_value());
    EXPECT_EQ(r.ipi->vector, 0x31);
    EXPECT_EQ(r.ipi->dest.dest, 0x12345u);
    EXPECT_TRUE(r.ipi->dest.x2apic_format);
    EXPECT_EQ(r.ipi->dest.mode, DestMode::Logical);
    EXPECT_EQ(a.msr_read(0x830, at(0)).value, 0x00012345'00000831ULL);
}

TEST(X2apicRegs, IcrBit12IsIgnoredNotStored)
{
    LocalApic a = make_x2();
    const AccessResult r = a.msr_write(0x830, 0x00000002'00001040ULL, at(0));
    ASSERT_TRUE(r.is_ok());
    ASSERT_TRUE(r.ipi.has_value());
    EXPECT_EQ(r.ipi->vector, 0x40);
    EXPECT_EQ(a.msr_read(0x830, at(0)).value, 0x00000002'00000040ULL);
}

TEST(X2apicRegs, SelfIpiIsAFixedSelfMessageAndLeavesIcrAlone)
{
    LocalApic a = make_x2();
    a.msr_write(0x830, 0x00000007'00004050ULL, at(0));
    const AccessResult r = a.msr_write(0x83F, 0x41, at(0));
    ASSERT_TRUE(r.ipi.has_value());
    EXPECT_EQ(r.ipi->vector, 0x41);
    EXPECT_EQ(r.ipi->mode, DeliveryMode::Fixed);
    EXPECT_EQ(r.ipi->dest.shorthand, Shorthand::Self);
    EXPECT_EQ(a.msr_read(0x830, at(0)).value, 0x00000007'00004050ULL);

    // An illegal vector still goes out (the receiver, here this APIC, refuses it).
    const AccessResult bad = a.msr_write(0x83F, 0x05, at(0));
    EXPECT_TRUE(bad.is_ok());
    ASSERT_TRUE(bad.ipi.has_value());
    EXPECT_EQ(bad.ipi->vector, 0x05);
    EXPECT_FALSE(a.accept(bad.ipi->vector, Trigger::Edge));
    a.msr_write(0x828, 0, at(0));
    EXPECT_EQ(a.msr_read(0x828, at(0)).value, esr::kSendIllegalVector | esr::kReceiveIllegalVector);
}

TEST(X2apicRegs, EoiWriteCompletesTheInterrupt)
{
    LocalApic a = make_x2();
    a.accept(0x99, Trigger::Level);
    a.ack();
    const AccessResult r = a.msr_write(0x80B, 0, at(0));
    ASSERT_TRUE(r.eoi.has_value());
    EXPECT_EQ(r.eoi->vector, 0x99);
    EXPECT_TRUE(r.eoi->broadcast);
}

TEST(X2apicRegs, StateCarriesOverFromXapicMode)
{
    LocalApic a = make_apic(4);
    wr(a, reg::kTpr, 0x33);
    wr(a, reg::kLvtLint0, 0x8700);
    ASSERT_TRUE(to_x2apic(a).is_ok());
    EXPECT_EQ(a.msr_read(0x808, at(0)).value, 0x33u);
    EXPECT_EQ(a.msr_read(0x835, at(0)).value, 0x8700u);
    EXPECT_EQ(a.msr_read(0x80F, at(0)).value, 0x1FFu);
}

TEST(X2apicRegs, GpIsCounted)
{
    LocalApic a = make_x2();
    a.msr_read(0x80E, at(0));
    a.msr_write(0x831, 0, at(0));
    EXPECT_EQ(a.counters().gp, 2u);
}

}  // namespace
}  // namespace hv::apic::test

namespace hv::apic::test {
namespace {

// SDM Vol3 11.4.8: the version register tells which LVTs exist and whether SVR[12] exists.
TEST(CpuModel, WithoutCmciAndDirectedEoi)
{
    ApicCaps caps;
    caps.cmci = false;
    caps.directed_eoi = false;
    LocalApic a = make_apic(0, true, caps);
    EXPECT_EQ(rd(a, reg::kVersion), 0x00050014u);
    wr(a, reg::kSvr, 0x11FF);
    EXPECT_EQ(rd(a, reg::kSvr), 0x1FFu);
    wr(a, reg::kEsr, 0);
    EXPECT_EQ(rd(a, reg::kLvtCmci), 0u);
    wr(a, reg::kEsr, 0);
    EXPECT_EQ(rd(a, reg::kEsr), esr::kIllegalRegister);

    ASSERT_TRUE(to_x2apic(a).is_ok());
    EXPECT_TRUE(a.msr_read(0x82F, at(0)).is_gp());
    EXPECT_TRUE(a.msr_write(0x82F, lvt::kMasked, at(0)).is_gp());
    EXPECT_TRUE(a.msr_write(0x80F, 0x11FF, at(0)).is_gp());
    EXPECT_TRUE(a.msr_write(0x80F, 0x1FF, at(0)).is_ok());

    const ApicState s = a.flatten(at(0));
    EXPECT_EQ(validate(s, caps), std::nullopt);
    const auto err = validate(s);  // a CPU model with CMCI and directed EOI
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->rfind("version", 0), 0u) << *err;
    ApicState with_cmci = s;
    with_cmci.lvt[0] = 0x30 | lvt::kMasked;
    EXPECT_EQ(validate(with_cmci, caps)->rfind("lvt_cmci", 0), 0u);
}

TEST(CpuModel, VersionSurvivesDisableAndInit)
{
    ApicCaps caps;
    caps.cmci = false;
    LocalApic a = make_apic(0, true, caps);
    a.msr_write(kMsrApicBase, base::kDefaultAddr, at(0));
    a.msr_write(kMsrApicBase, base::kDefaultAddr | base::kEnable, at(0));
    a.init();
    EXPECT_EQ(rd(a, reg::kVersion), 0x01050014u);
}

}  // namespace
}  // namespace hv::apic::test
