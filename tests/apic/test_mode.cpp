// IA32_APIC_BASE and the mode state machine. SDM Vol3 11.4.4 "Local APIC Status and Location",
// 11.4.5 "Relocating the Local APIC Registers", 11.12.5.1 "x2APIC States".
#include <gtest/gtest.h>

#include <vector>

#include "test_helpers.hpp"

namespace hv::apic::test {
namespace {

constexpr uint64_t kBase = base::kDefaultAddr;
constexpr uint64_t kEn = base::kEnable;
constexpr uint64_t kX2 = base::kEnable | base::kExtd;

struct Transition {
    ApicMode from;
    uint64_t write;
    bool gp;
    ApicMode to;
};

void enter(LocalApic& a, ApicMode m)
{
    switch (m) {
    case ApicMode::Disabled:
        ASSERT_TRUE(a.msr_write(kMsrApicBase, kBase, at(0)).is_ok());
        break;
    case ApicMode::XApic:
        break;
    case ApicMode::X2Apic:
        ASSERT_TRUE(a.msr_write(kMsrApicBase, kBase | kX2, at(0)).is_ok());
        break;
    }
    ASSERT_EQ(a.mode(), m);
}

TEST(Mode, TransitionTable)
{
    using M = ApicMode;
    const std::vector<Transition> cases = {
        {M::XApic, kBase | kEn, false, M::XApic},
        {M::XApic, kBase | kX2, false, M::X2Apic},
        {M::XApic, kBase, false, M::Disabled},
        {M::XApic, kBase | base::kExtd, true, M::XApic},  // EN=0, EXTD=1: invalid state
        {M::X2Apic, kBase | kX2, false, M::X2Apic},
        {M::X2Apic, kBase | kEn, true, M::X2Apic},  // x2APIC -> xAPIC: illegal
        {M::X2Apic, kBase, false, M::Disabled},
        {M::X2Apic, kBase | base::kExtd, true, M::X2Apic},
        {M::Disabled, kBase, false, M::Disabled},
        {M::Disabled, kBase | kEn, false, M::XApic},
        {M::Disabled, kBase | kX2, true, M::Disabled},  // disabled -> x2APIC: illegal
        {M::Disabled, kBase | base::kExtd, true, M::Disabled},
        {M::XApic, kBase | kEn | 0x1, true, M::XApic},  // reserved bit 0
        {M::XApic, kBase | kEn | (1ULL << 9), true, M::XApic},
        {M::XApic, kEn | (1ULL << 46), true, M::XApic},  // beyond MAXPHYADDR (46)
        {M::XApic, kEn | 0x3FFF'FFFF'F000ULL, false, M::XApic},
    };
    for (const auto& c : cases) {
        LocalApic a = make_apic();
        enter(a, c.from);
        const AccessResult r = a.msr_write(kMsrApicBase, c.write, at(0));
        EXPECT_EQ(r.is_gp(), c.gp) << std::hex << c.write;
        EXPECT_EQ(a.mode(), c.to) << std::hex << c.write;
        if (!c.gp) {
            EXPECT_EQ(a.msr_read(kMsrApicBase, at(0)).value, c.write);
        }
    }
}

TEST(Mode, X2apicBitIsReservedWithoutX2apicSupport)
{
    ApicCaps caps;
    caps.x2apic = false;
    LocalApic a = make_apic(0, true, caps);
    EXPECT_TRUE(a.msr_write(kMsrApicBase, kBase | kX2, at(0)).is_gp());
    EXPECT_EQ(a.mode(), ApicMode::XApic);
}

TEST(Mode, DisablingResetsEverythingButTheId)
{
    LocalApic a = make_apic(0x17);
    wr(a, reg::kTpr, 0x40);
    wr(a, reg::kLdr, 0x08000000);
    wr(a, reg::kDfr, 0x0FFFFFFF);
    wr(a, reg::kLvtLint0, 0x700);
    wr(a, reg::kTimerInitial, 1000);
    a.accept(0x50, Trigger::Level);
    ASSERT_TRUE(a.msr_write(kMsrApicBase, kBase, at(0)).is_ok());
    ASSERT_TRUE(a.msr_write(kMsrApicBase, kBase | kEn, at(0)).is_ok());
    const ApicState s = a.flatten(at(0));
    ApicState expect;
    expect.id = 0x17;
    expect.apic_base = kBase | kEn;
    EXPECT_EQ(s, expect);
    EXPECT_EQ(a.next_timer_deadline(), std::nullopt);
}

TEST(Mode, X2apicToDisabledKeepsThe32BitId)
{
    LocalApic a = make_apic(0x345);
    ASSERT_TRUE(to_x2apic(a).is_ok());
    a.msr_write(0x808, 0x20, at(0));
    ASSERT_TRUE(a.msr_write(kMsrApicBase, kBase, at(0)).is_ok());
    ASSERT_TRUE(a.msr_write(kMsrApicBase, kBase | kEn, at(0)).is_ok());
    EXPECT_EQ(rd(a, reg::kTpr), 0u);
    EXPECT_EQ(rd(a, reg::kId), 0x45000000u);
    ASSERT_TRUE(to_x2apic(a).is_ok());
    EXPECT_EQ(a.msr_read(0x802, at(0)).value, 0x345u);
}

// The xAPIC ID register is writable (SDM Vol3 11.4.6), but a value written there does not
// survive a reset of the APIC: re-enabling it through IA32_APIC_BASE gives the power-up value,
// the initial APIC ID (11.4.7.1), and the x2APIC ID is always the initial APIC ID (11.12.5.1,
// CPUID.0BH:EDX). An INIT keeps the written ID (11.4.7.3: "except for the APIC ID and
// arbitration ID registers").
TEST(Mode, AWrittenXapicIdGivesWayToTheInitialId)
{
    LocalApic a = make_apic(3);
    wr(a, reg::kId, 0x07000000);
    EXPECT_EQ(rd(a, reg::kId), 0x07000000u);
    a.init();
    EXPECT_EQ(rd(a, reg::kId), 0x07000000u);
    ASSERT_TRUE(a.msr_write(kMsrApicBase, kBase, at(0)).is_ok());
    ASSERT_TRUE(a.msr_write(kMsrApicBase, kBase | kEn, at(0)).is_ok());
    EXPECT_EQ(rd(a, reg::kId), 0x03000000u);

    LocalApic b = make_apic(3);
    wr(b, reg::kId, 0x07000000);
    ASSERT_TRUE(to_x2apic(b).is_ok());
    EXPECT_EQ(b.msr_read(0x802, at(0)).value, 3u);
    EXPECT_EQ(b.msr_read(0x80D, at(0)).value, x2apic_ldr(3));
    EXPECT_EQ(b.dest_info().id, 3u);
}

TEST(Mode, BaseRelocationMovesTheMmioWindow)
{
    LocalApic a = make_apic();
    ASSERT_TRUE(a.msr_write(kMsrApicBase, 0xFED00000ULL | kEn | base::kBsp, at(0)).is_ok());
    EXPECT_EQ(a.mmio_base(), 0xFED00000ULL);
    EXPECT_EQ(rd(a, reg::kSvr), 0x1FFu);  // relocation alone keeps the registers
    const AccessResult r = a.msr_write(kMsrApicBase, 0xFED00000ULL | kEn, at(0));
    EXPECT_TRUE(r.is_ok());
    EXPECT_TRUE(r.mode_changed);
    EXPECT_EQ(a.apic_base() & base::kBsp, 0u);  // BSP is stored as written
}

TEST(Mode, DestInfoFollowsTheMode)
{
    LocalApic a = make_apic(0x21);
    wr(a, reg::kLdr, 0x04000000);
    DestInfo d = a.dest_info();
    EXPECT_FALSE(d.x2apic);
    EXPECT_EQ(d.ldr, 0x04000000u);
    ASSERT_TRUE(to_x2apic(a).is_ok());
    d = a.dest_info();
    EXPECT_TRUE(d.x2apic);
    EXPECT_EQ(d.ldr, 0x00020002u);
    a.msr_write(kMsrApicBase, kBase, at(0));
    EXPECT_FALSE(a.dest_info().enabled);
}

TEST(Mode, InitKeepsTheMode)
{
    LocalApic a = make_apic(2, false);
    ASSERT_TRUE(to_x2apic(a).is_ok());
    a.init();
    EXPECT_EQ(a.mode(), ApicMode::X2Apic);
    EXPECT_EQ(a.msr_read(0x80D, at(0)).value, x2apic_ldr(2));
    EXPECT_EQ(a.flatten(at(0)).ldr, x2apic_ldr(2));
}

}  // namespace
}  // namespace hv::apic::test
