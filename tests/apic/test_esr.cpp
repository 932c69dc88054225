// Error Status Register. SDM Vol3 11.5.3 "Error Handling": errors latch until the next write to
// the ESR, which makes them readable and clears the latch; each error raises the LVT error entry.
#include <gtest/gtest.h>

#include "test_helpers.hpp"

namespace hv::apic::test {
namespace {

TEST(Esr, ErrorsBecomeVisibleOnlyAfterAWrite)
{
    LocalApic a = make_apic();
    a.accept(5, Trigger::Edge);
    EXPECT_EQ(rd(a, reg::kEsr), 0u);
    wr(a, reg::kEsr, 0xFFFFFFFF);  // the value written does not matter
    EXPECT_EQ(rd(a, reg::kEsr), esr::kReceiveIllegalVector);
    EXPECT_EQ(rd(a, reg::kEsr), esr::kReceiveIllegalVector);  // reads do not clear
    wr(a, reg::kEsr, 0);
    EXPECT_EQ(rd(a, reg::kEsr), 0u);
}

TEST(Esr, EachWriteShowsOnlyErrorsSinceThePreviousWrite)
{
    LocalApic a = make_apic();
    a.accept(1, Trigger::Edge);
    wr(a, reg::kEsr, 0);
    wr(a, reg::kIcrLow, 0x00004002);  // send illegal vector
    EXPECT_EQ(rd(a, reg::kEsr), esr::kReceiveIllegalVector);
    wr(a, reg::kEsr, 0);
    EXPECT_EQ(rd(a, reg::kEsr), esr::kSendIllegalVector);
}

TEST(Esr, BitsAccumulate)
{
    LocalApic a = make_apic();
    a.accept(2, Trigger::Edge);
    wr(a, reg::kIcrLow, 0x00004003);
    rd(a, 0x3A0);  // reserved register
    wr(a, reg::kEsr, 0);
    EXPECT_EQ(rd(a, reg::kEsr), 0xE0u);
    EXPECT_EQ(a.counters().esr_events, 3u);
}

// SDM Vol3 11.5.3: the sender flags "send illegal vector", every receiver "receive illegal
// vector" — for a self-IPI the same APIC gets both.
TEST(Esr, IllegalSelfIpiSetsSendAndReceiveBits)
{
    LocalApic a = make_apic();
    const AccessResult r = wr(a, reg::kIcrLow, 0x00044003);
    ASSERT_TRUE(r.ipi.has_value());
    EXPECT_EQ(r.ipi->dest.shorthand, Shorthand::Self);
    EXPECT_FALSE(a.accept(r.ipi->vector, r.ipi->trigger));  // the caller's routing step
    wr(a, reg::kEsr, 0);
    EXPECT_EQ(rd(a, reg::kEsr), esr::kSendIllegalVector | esr::kReceiveIllegalVector);
    EXPECT_EQ(a.highest_pending(), std::nullopt);
}

TEST(Esr, ErrorsRaiseTheLvtErrorInterrupt)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtError, 0xEE);
    a.accept(3, Trigger::Edge);
    EXPECT_TRUE(irr_has(a, 0xEE));
    EXPECT_EQ(a.highest_pending(), 0xEE);
}

TEST(Esr, MaskedLvtErrorRaisesNothing)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtError, 0xEE | lvt::kMasked);
    a.accept(3, Trigger::Edge);
    EXPECT_FALSE(irr_has(a, 0xEE));
}

TEST(Esr, IllegalErrorVectorDoesNotRecurse)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtError, 0x05);
    wr(a, reg::kIcrLow, 0x00004004);
    wr(a, reg::kEsr, 0);
    EXPECT_EQ(rd(a, reg::kEsr), esr::kSendIllegalVector | esr::kReceiveIllegalVector);
    EXPECT_EQ(a.highest_pending(), std::nullopt);
}

TEST(Esr, X2apicEsrTakesOnlyZero)
{
    LocalApic a = make_apic();
    ASSERT_TRUE(to_x2apic(a).is_ok());
    a.accept(7, Trigger::Edge);
    EXPECT_TRUE(a.msr_write(0x828, 1, at(0)).is_gp());
    EXPECT_EQ(a.msr_read(0x828, at(0)).value, 0u);  // the faulting write latched nothing
    EXPECT_TRUE(a.msr_write(0x828, 0, at(0)).is_ok());
    EXPECT_EQ(a.msr_read(0x828, at(0)).value, esr::kReceiveIllegalVector);
}

TEST(Esr, FlattenCarriesBothTheVisibleAndThePendingErrors)
{
    LocalApic a = make_apic();
    a.accept(7, Trigger::Edge);
    wr(a, reg::kEsr, 0);
    wr(a, reg::kIcrLow, 0x00004001);
    const ApicState s = a.flatten(at(0));
    EXPECT_EQ(s.esr, esr::kReceiveIllegalVector);
    EXPECT_EQ(s.esr_pending, esr::kSendIllegalVector);
}

}  // namespace
}  // namespace hv::apic::test
