// Priority, acceptance, ack/EOI and software disable — SDM Vol3 11.8 and 11.4.7.2.
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "test_helpers.hpp"

namespace hv::apic::test {
namespace {

struct PprCase {
    uint32_t tpr;
    std::optional<uint8_t> isr;
    uint8_t ppr;
};

// SDM Vol3 11.8.3.1 "Task and Processor Priorities": PPR = TPR if TPR[7:4] >= ISRV[7:4] else
// ISRV[7:4] << 4.
TEST(Priority, PprFollowsTheClassRule)
{
    const std::vector<PprCase> cases = {
        {0x00, std::nullopt, 0x00}, {0x35, std::nullopt, 0x35}, {0x35, 0x31, 0x35},
        {0x35, 0x41, 0x40},         {0x50, 0x4F, 0x50},         {0x0F, 0x20, 0x20},
        {0xFF, 0xFE, 0xFF},         {0x00, 0x9C, 0x90},
    };
    for (const auto& c : cases) {
        LocalApic a = make_apic();
        if (c.isr) {
            ASSERT_TRUE(a.accept(*c.isr, Trigger::Edge));
            ASSERT_EQ(a.ack().vector, *c.isr);
        }
        wr(a, reg::kTpr, c.tpr);
        EXPECT_EQ(a.ppr(), c.ppr) << "tpr " << c.tpr;
        EXPECT_EQ(rd(a, reg::kPpr), c.ppr);
    }
}

struct PendingCase {
    uint32_t tpr;
    std::optional<uint8_t> in_service;
    std::vector<uint8_t> requested;
    std::optional<uint8_t> deliverable;
};

// SDM Vol3 11.8.3.1: a vector is dispensed only when its class is above the PPR class.
TEST(Priority, HighestPendingRespectsPpr)
{
    const std::vector<PendingCase> cases = {
        {0x00, std::nullopt, {0x30}, 0x30},     {0x30, std::nullopt, {0x35}, std::nullopt},
        {0x30, std::nullopt, {0x45}, 0x45},     {0x2F, std::nullopt, {0x20, 0x30}, 0x30},
        {0x00, 0x50, {0x55}, std::nullopt},     {0x00, 0x50, {0x55, 0x61}, 0x61},
        {0x00, std::nullopt, {0x10}, 0x10},     {0xF0, std::nullopt, {0xFF}, std::nullopt},
        {0x00, std::nullopt, {}, std::nullopt},
    };
    for (const auto& c : cases) {
        LocalApic a = make_apic();
        if (c.in_service) {
            ASSERT_TRUE(a.accept(*c.in_service, Trigger::Edge));
            ASSERT_EQ(a.ack().vector, *c.in_service);
        }
        for (uint8_t v : c.requested) {
            ASSERT_TRUE(a.accept(v, Trigger::Edge));
        }
        wr(a, reg::kTpr, c.tpr);
        EXPECT_EQ(a.highest_pending(), c.deliverable);
    }
}

TEST(Priority, NestedInterruptsAndEoiOrder)
{
    LocalApic a = make_apic();
    ASSERT_TRUE(a.accept(0x40, Trigger::Edge));
    EXPECT_EQ(a.ack().vector, 0x40);
    ASSERT_TRUE(a.accept(0x80, Trigger::Edge));
    EXPECT_EQ(a.highest_pending(), 0x80);
    EXPECT_EQ(a.ack().vector, 0x80);
    ASSERT_TRUE(a.accept(0x45, Trigger::Edge));
    EXPECT_EQ(a.highest_pending(), std::nullopt);  // class 4 under ISR class 8

    auto r = wr(a, reg::kEoi, 0);
    ASSERT_TRUE(r.eoi.has_value());
    EXPECT_EQ(r.eoi->vector, 0x80);
    EXPECT_EQ(a.highest_pending(), std::nullopt);  // still class 4 in service
    EXPECT_EQ(a.eoi().vector, 0x40);
    EXPECT_EQ(a.highest_pending(), 0x45);
    EXPECT_TRUE(irr_has(a, 0x45));
    EXPECT_FALSE(isr_has(a, 0x40));
    EXPECT_EQ(a.eoi().vector, std::nullopt);  // ISR empty
    EXPECT_EQ(a.counters().eoi_empty, 1u);
}

struct EoiCase {
    Trigger trigger;
    bool suppress;
    bool level;
    bool broadcast;
};

// SDM Vol3 11.8.5 "Signaling Interrupt Servicing Completion": level-triggered EOIs are broadcast
// to the IOAPIC unless SVR[12] suppresses them.
TEST(Priority, EoiBroadcastAndSuppression)
{
    const std::vector<EoiCase> cases = {
        {Trigger::Edge, false, false, false},
        {Trigger::Edge, true, false, false},
        {Trigger::Level, false, true, true},
        {Trigger::Level, true, true, false},
    };
    for (const auto& c : cases) {
        LocalApic a = make_apic();
        wr(a, reg::kSvr, c.suppress ? 0x11FFu : 0x1FFu);
        ASSERT_TRUE(a.accept(0x61, c.trigger));
        EXPECT_EQ(tmr_has(a, 0x61), c.trigger == Trigger::Level);
        a.ack();
        const EoiResult e = a.eoi();
        EXPECT_EQ(e.vector, 0x61);
        EXPECT_EQ(e.level, c.level);
        EXPECT_EQ(e.broadcast, c.broadcast);
    }
}

TEST(Priority, EdgeAcceptanceClearsAStaleTmrBit)
{
    LocalApic a = make_apic();
    a.accept(0x70, Trigger::Level);
    EXPECT_TRUE(tmr_has(a, 0x70));
    a.ack();
    a.eoi();
    a.accept(0x70, Trigger::Edge);
    EXPECT_FALSE(tmr_has(a, 0x70));
}

// SDM Vol3 11.9 "Spurious Interrupt".
TEST(Priority, AckWithNothingDeliverableGivesTheSpuriousVector)
{
    LocalApic a = make_apic();
    wr(a, reg::kSvr, 0x1E7);
    a.accept(0x40, Trigger::Edge);
    wr(a, reg::kTpr, 0x50);
    const AckResult r = a.ack();
    EXPECT_TRUE(r.spurious);
    EXPECT_EQ(r.vector, 0xE7);
    EXPECT_TRUE(irr_has(a, 0x40));
    EXPECT_FALSE(isr_has(a, 0x40));
    EXPECT_EQ(a.counters().spurious, 1u);
}

TEST(Priority, IllegalVectorsAreNotAcceptedAndSetReceiveIllegal)
{
    for (unsigned v = 0; v < 16; ++v) {
        LocalApic a = make_apic();
        EXPECT_FALSE(a.accept(static_cast<uint8_t>(v), Trigger::Edge));
        EXPECT_FALSE(irr_has(a, static_cast<uint8_t>(v)));
        wr(a, reg::kEsr, 0);
        EXPECT_EQ(rd(a, reg::kEsr), esr::kReceiveIllegalVector) << v;
    }
    LocalApic a = make_apic();
    EXPECT_TRUE(a.accept(16, Trigger::Edge));
}

// SDM Vol3 11.4.7.2 "Local APIC State After It Has Been Software Disabled".
TEST(Priority, SoftwareDisableMasksLvtsKeepsIrrIsrRefusesFixed)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtLint0, 0x0000'0030);  // unmasked
    a.accept(0x90, Trigger::Edge);
    a.ack();
    a.accept(0xA0, Trigger::Edge);
    wr(a, reg::kSvr, 0x0FF);  // software disable
    for (std::size_t i = 0; i < kLvtCount; ++i) {
        EXPECT_NE(rd(a, lvt_offset(static_cast<Lvt>(i))) & lvt::kMasked, 0u) << i;
    }
    wr(a, reg::kLvtLint0, 0x0000'0031);  // try to unmask
    EXPECT_EQ(rd(a, reg::kLvtLint0), 0x0001'0031u);
    EXPECT_FALSE(a.accept(0xB0, Trigger::Edge));
    EXPECT_TRUE(irr_has(a, 0xA0));
    EXPECT_TRUE(isr_has(a, 0x90));
    EXPECT_EQ(a.highest_pending(), 0xA0);  // held, still dispensed
    wr(a, reg::kSvr, 0x1FF);
    EXPECT_EQ(rd(a, reg::kLvtLint0), 0x0001'0031u);  // stays masked until software unmasks
    wr(a, reg::kLvtLint0, 0x0000'0031);
    EXPECT_EQ(rd(a, reg::kLvtLint0), 0x0000'0031u);
}

TEST(Priority, ResetStateIsSoftwareDisabled)
{
    LocalApicConfig cfg;
    LocalApic a(cfg);
    EXPECT_EQ(rd(a, reg::kSvr), 0xFFu);
    EXPECT_FALSE(a.accept(0x40, Trigger::Edge));
    EXPECT_EQ(a.counters().dropped_disabled, 1u);
}

TEST(Priority, GloballyDisabledApicAcceptsNothing)
{
    LocalApic a = make_apic();
    ASSERT_TRUE(a.msr_write(kMsrApicBase, base::kDefaultAddr | base::kBsp, at(0)).is_ok());
    EXPECT_FALSE(a.accept(0x40, Trigger::Edge));
    EXPECT_EQ(a.highest_pending(), std::nullopt);
}

TEST(Priority, LintLevelFixedSetsTmrAndNmiModeIsAnEvent)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtLint0, lvt::kLevel | 0x55);
    EXPECT_EQ(a.raise_lvt(Lvt::Lint0).event, LocalEvent::Fixed);
    EXPECT_TRUE(tmr_has(a, 0x55));
    wr(a, reg::kLvtLint1, 4u << lvt::kModeShift);  // NMI
    EXPECT_EQ(a.raise_lvt(Lvt::Lint1).event, LocalEvent::Nmi);
    wr(a, reg::kLvtLint1, (7u << lvt::kModeShift) | lvt::kMasked);
    EXPECT_EQ(a.raise_lvt(Lvt::Lint1).event, LocalEvent::Masked);
    wr(a, reg::kLvtLint1, 7u << lvt::kModeShift);
    EXPECT_EQ(a.raise_lvt(Lvt::Lint1).event, LocalEvent::ExtInt);
}

TEST(Priority, InitResetsRegistersAndParksAnAp)
{
    LocalApic a = make_apic(3, false);
    ASSERT_EQ(a.run_state(), RunState::WaitForSipi);
    EXPECT_EQ(a.sipi(0x12), 0x12);
    EXPECT_EQ(a.run_state(), RunState::Running);
    EXPECT_EQ(a.sipi(0x13), std::nullopt);  // ignored while running
    wr(a, reg::kTpr, 0x20);
    a.accept(0x40, Trigger::Edge);
    a.init();
    EXPECT_EQ(a.run_state(), RunState::WaitForSipi);
    EXPECT_EQ(rd(a, reg::kTpr), 0u);
    EXPECT_FALSE(irr_has(a, 0x40));
    EXPECT_EQ(rd(a, reg::kId), 3u << 24);
    EXPECT_EQ(rd(a, reg::kSvr), 0xFFu);
    EXPECT_EQ(a.sipi(0x9A), 0x9A);
}

}  // namespace
}  // namespace hv::apic::test
