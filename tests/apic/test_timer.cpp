// LVT timer arithmetic in all three modes. SDM Vol3 11.5.4 "APIC Timer", 11.5.4.1 "TSC-Deadline
// Mode". Time is guest time supplied by the test; one tick = 1 ns before division.
#include <gtest/gtest.h>

#include <vector>

#include "test_helpers.hpp"

namespace hv::apic::test {
namespace {

constexpr uint32_t kOneShot = 0x00000040;
constexpr uint32_t kPeriodic = 0x00020040;
constexpr uint32_t kTscMode = 0x00040040;

struct DivCase {
    uint32_t tdcr;
    uint32_t divisor;
};

// SDM Vol3 11.5.4 (Divide Configuration Register): bits 3,1,0 encode 2,4,...,128 and 1; bit 2 is
// reserved.
TEST(Timer, EveryDivideValueOneShot)
{
    const std::vector<DivCase> cases = {
        {0x0, 2},  {0x1, 4},   {0x2, 8}, {0x3, 16}, {0x8, 32},
        {0x9, 64}, {0xA, 128}, {0xB, 1}, {0x4, 2},  {0xF, 1},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(timer_divisor(c.tdcr), c.divisor);
        LocalApic a = make_apic();
        wr(a, reg::kLvtTimer, kOneShot);
        wr(a, reg::kTimerDivide, c.tdcr);
        wr(a, reg::kTimerInitial, 1000, 0);
        const uint64_t end = 1000ULL * c.divisor;
        EXPECT_EQ(a.next_timer_deadline(), end) << c.tdcr;
        EXPECT_EQ(rd(a, reg::kTimerCurrent, 0), 1000u);
        EXPECT_EQ(rd(a, reg::kTimerCurrent, 250ULL * c.divisor), 750u);
        EXPECT_EQ(rd(a, reg::kTimerCurrent, 250ULL * c.divisor + c.divisor - 1), 750u);
        EXPECT_EQ(rd(a, reg::kTimerCurrent, end - 1), 1u);
        EXPECT_EQ(rd(a, reg::kTimerCurrent, end), 0u);
        EXPECT_FALSE(a.timer_expired(at(end - 1)));
        EXPECT_FALSE(irr_has(a, 0x40));
        EXPECT_TRUE(a.timer_expired(at(end)));
        EXPECT_TRUE(irr_has(a, 0x40));
        EXPECT_EQ(a.next_timer_deadline(), std::nullopt);
        EXPECT_EQ(rd(a, reg::kTimerCurrent, end + 5), 0u);
        EXPECT_EQ(rd(a, reg::kTimerInitial), 1000u);
    }
}

TEST(Timer, EveryDivideValuePeriodic)
{
    for (uint32_t tdcr : {0x0u, 0x1u, 0x2u, 0x3u, 0x8u, 0x9u, 0xAu, 0xBu}) {
        const uint64_t div = timer_divisor(tdcr);
        LocalApic a = make_apic();
        wr(a, reg::kLvtTimer, kPeriodic);
        wr(a, reg::kTimerDivide, tdcr);
        wr(a, reg::kTimerInitial, 100, 0);
        EXPECT_EQ(a.next_timer_deadline(), 100 * div);
        EXPECT_TRUE(a.timer_expired(at(100 * div)));
        EXPECT_EQ(a.next_timer_deadline(), 200 * div);
        EXPECT_EQ(rd(a, reg::kTimerCurrent, 100 * div + 30 * div), 70u);
        EXPECT_EQ(a.counters().timer_fired, 1u);
    }
}

TEST(Timer, PeriodicCoalescesMissedPeriodsAndReadsReloadedCounts)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtTimer, kPeriodic);
    wr(a, reg::kTimerDivide, 0xB);
    wr(a, reg::kTimerInitial, 100, 0);
    EXPECT_EQ(rd(a, reg::kTimerCurrent, 150), 50u);  // late: already reloaded
    EXPECT_TRUE(a.timer_expired(at(100)));
    a.ack();
    a.eoi();
    EXPECT_TRUE(a.timer_expired(at(450)));
    EXPECT_EQ(a.counters().timer_missed, 2u);
    EXPECT_EQ(a.next_timer_deadline(), 500u);
    EXPECT_EQ(rd(a, reg::kTimerCurrent, 460), 40u);
}

TEST(Timer, WritingZeroInitialCountStopsTheTimer)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtTimer, kPeriodic);
    wr(a, reg::kTimerInitial, 100, 0);
    wr(a, reg::kTimerInitial, 0, 10);
    EXPECT_EQ(a.next_timer_deadline(), std::nullopt);
    EXPECT_EQ(rd(a, reg::kTimerCurrent, 20), 0u);
    EXPECT_FALSE(a.timer_expired(at(1'000'000)));
}

TEST(Timer, MaskedExpiryRaisesNothing)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtTimer, kOneShot | lvt::kMasked);
    wr(a, reg::kTimerDivide, 0xB);
    wr(a, reg::kTimerInitial, 10, 0);
    EXPECT_FALSE(a.timer_expired(at(10)));
    EXPECT_FALSE(irr_has(a, 0x40));
    EXPECT_EQ(a.counters().timer_masked, 1u);
    EXPECT_EQ(a.next_timer_deadline(), std::nullopt);
}

TEST(Timer, DivideChangeMidCountContinuesAtTheNewRate)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtTimer, kOneShot);
    wr(a, reg::kTimerDivide, 0xB);
    wr(a, reg::kTimerInitial, 1000, 0);
    EXPECT_EQ(rd(a, reg::kTimerCurrent, 400), 600u);
    wr(a, reg::kTimerDivide, 0x0, 400);  // divide by 2
    EXPECT_EQ(a.next_timer_deadline(), 400u + 600u * 2);
    EXPECT_EQ(rd(a, reg::kTimerCurrent, 1000), 300u);
}

// SDM Vol3 11.5.4: between one-shot and periodic nothing is reset. TMICT keeps its value, the
// current count goes on down from where it was, and at 0 the mode of that moment decides: a
// reload from TMICT (periodic) or a stop (one-shot).
TEST(Timer, OneShotPeriodicSwitchesKeepCounting)
{
    LocalApic a = make_apic();
    wr(a, reg::kTimerDivide, 0xB);  // divide by 1
    wr(a, reg::kLvtTimer, kOneShot);
    wr(a, reg::kTimerInitial, 1000, 0);
    wr(a, reg::kLvtTimer, kOneShot | lvt::kMasked);  // same mode, masked: keeps counting
    wr(a, reg::kLvtTimer, kOneShot);
    EXPECT_EQ(a.next_timer_deadline(), 1000u);
    wr(a, reg::kLvtTimer, kPeriodic, 300);
    EXPECT_EQ(rd(a, reg::kTimerInitial), 1000u);
    EXPECT_EQ(rd(a, reg::kTimerCurrent, 300), 700u);
    EXPECT_EQ(a.next_timer_deadline(), 1000u);
    EXPECT_TRUE(a.timer_expired(at(1000)));  // periodic now: reloads
    EXPECT_EQ(a.next_timer_deadline(), 2000u);
    EXPECT_EQ(rd(a, reg::kTimerCurrent, 1500), 500u);
    wr(a, reg::kLvtTimer, kOneShot, 1500);
    EXPECT_EQ(rd(a, reg::kTimerCurrent, 1500), 500u);
    EXPECT_EQ(a.next_timer_deadline(), 2000u);
    EXPECT_TRUE(a.timer_expired(at(2000)));  // one-shot now: stops at 0
    EXPECT_EQ(a.next_timer_deadline(), std::nullopt);
    EXPECT_EQ(rd(a, reg::kTimerCurrent, 2500), 0u);
    EXPECT_EQ(rd(a, reg::kTimerInitial), 1000u);
}

// SDM Vol3 11.5.4.1: "transitioning between TSC-deadline mode and other timer modes also disarms
// the timer"; TMICT and IA32_TSC_DEADLINE are cleared (as KVM does).
TEST(Timer, TscDeadlineTransitionsDisarm)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtTimer, kPeriodic);
    wr(a, reg::kTimerInitial, 1000, 0);
    wr(a, reg::kLvtTimer, kTscMode);
    EXPECT_EQ(a.next_timer_deadline(), std::nullopt);
    EXPECT_EQ(rd(a, reg::kTimerInitial), 0u);
    a.msr_write(kMsrTscDeadline, 5000, at(0, 0));
    EXPECT_TRUE(a.next_timer_deadline().has_value());
    wr(a, reg::kLvtTimer, kTscMode | lvt::kMasked);  // same mode: still armed
    EXPECT_TRUE(a.next_timer_deadline().has_value());
    wr(a, reg::kLvtTimer, kOneShot);
    EXPECT_EQ(a.next_timer_deadline(), std::nullopt);
    EXPECT_EQ(a.msr_read(kMsrTscDeadline, at(0)).value, 0u);
}

TEST(Timer, TscDeadlineMode)
{
    LocalApicConfig cfg;
    cfg.bsp = true;
    cfg.tsc_hz = 2'000'000'000;  // 2 ticks per ns
    LocalApic a(cfg);
    wr(a, reg::kSvr, 0x1FF);
    wr(a, reg::kLvtTimer, kTscMode);
    ASSERT_TRUE(a.msr_write(kMsrTscDeadline, 3000, at(100, 1000)).is_ok());
    EXPECT_EQ(a.msr_read(kMsrTscDeadline, at(100, 1000)).value, 3000u);
    EXPECT_EQ(a.next_timer_deadline(), 1100u);  // 2000 ticks ahead = 1000 ns
    wr(a, reg::kTimerInitial, 777, 200);        // ignored in TSC-deadline mode
    EXPECT_EQ(rd(a, reg::kTimerInitial), 0u);
    EXPECT_EQ(rd(a, reg::kTimerCurrent, 200), 0u);
    EXPECT_FALSE(a.timer_expired(at(1099, 2998)));
    EXPECT_TRUE(a.timer_expired(at(1100, 3000)));
    EXPECT_TRUE(irr_has(a, 0x40));
    EXPECT_EQ(a.msr_read(kMsrTscDeadline, at(1100)).value, 0u);  // cleared once it fired
    EXPECT_EQ(a.next_timer_deadline(), std::nullopt);

    a.msr_write(kMsrTscDeadline, 500, at(2000, 3000));  // in the past: due now
    EXPECT_EQ(a.next_timer_deadline(), 2000u);
    a.msr_write(kMsrTscDeadline, 0, at(2000, 3000));  // 0 disarms
    EXPECT_EQ(a.next_timer_deadline(), std::nullopt);
}

TEST(Timer, TscDeadlineRoundsUpAndSaturates)
{
    LocalApicConfig cfg;
    cfg.tsc_hz = 3'000'000'000;
    LocalApic a(cfg);
    wr(a, reg::kSvr, 0x1FF);
    wr(a, reg::kLvtTimer, kTscMode);
    a.msr_write(kMsrTscDeadline, 1, at(10, 0));
    EXPECT_EQ(a.next_timer_deadline(), 11u);  // 1/3 ns rounds up
    a.msr_write(kMsrTscDeadline, UINT64_MAX, at(10, 0));
    EXPECT_EQ(a.next_timer_deadline(), 10u + 6'148'914'691'236'517'205ULL);
    a.msr_write(kMsrTscDeadline, UINT64_MAX, at(UINT64_MAX - 5, 0));
    EXPECT_EQ(a.next_timer_deadline(), UINT64_MAX);
}

TEST(Timer, TscDeadlineMsrOutsideItsMode)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtTimer, kOneShot);
    EXPECT_TRUE(a.msr_write(kMsrTscDeadline, 5000, at(0)).is_ok());
    EXPECT_EQ(a.msr_read(kMsrTscDeadline, at(0)).value, 0u);
    EXPECT_EQ(a.next_timer_deadline(), std::nullopt);

    ApicCaps caps;
    caps.tsc_deadline = false;
    LocalApic b = make_apic(0, true, caps);
    EXPECT_TRUE(b.msr_read(kMsrTscDeadline, at(0)).is_gp());
    EXPECT_TRUE(b.msr_write(kMsrTscDeadline, 1, at(0)).is_gp());
    wr(b, reg::kLvtTimer, kTscMode);
    EXPECT_EQ(rd(b, reg::kLvtTimer), 0x40u);  // bit 18 not implemented
}

TEST(Timer, FlattenSavesRemainingCountAndRestoreResumesIt)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtTimer, kOneShot);
    wr(a, reg::kTimerDivide, 0x1);  // /4
    wr(a, reg::kTimerInitial, 1000, 0);
    const ApicState s = a.flatten(at(2000));
    EXPECT_EQ(s.timer_initial, 1000u);
    EXPECT_EQ(s.timer_remaining, 500u);

    LocalApic b = make_apic();
    ASSERT_EQ(b.restore(s, at(10'000)), std::nullopt);
    EXPECT_EQ(b.next_timer_deadline(), 12'000u);
    EXPECT_EQ(rd(b, reg::kTimerCurrent, 11'000), 250u);
    EXPECT_EQ(b.flatten(at(10'000)), s);
}

TEST(Timer, FlattenAfterAnUnprocessedExpiryKeepsTheInterrupt)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtTimer, kOneShot);
    wr(a, reg::kTimerDivide, 0xB);
    wr(a, reg::kTimerInitial, 100, 0);
    const ApicState s = a.flatten(at(150));  // due at 100, nobody called timer_expired()
    EXPECT_EQ(s.timer_remaining, 0u);
    EXPECT_NE(s.irr[0x40 >> 5] & (1u << (0x40 & 31)), 0u);
    LocalApic b = make_apic();
    ASSERT_EQ(b.restore(s, at(0)), std::nullopt);
    EXPECT_EQ(b.highest_pending(), 0x40);
    EXPECT_EQ(b.next_timer_deadline(), std::nullopt);
}

TEST(Timer, PeriodicRestoreReloadsTheInitialCountAfterTheRemainder)
{
    LocalApic a = make_apic();
    wr(a, reg::kLvtTimer, kPeriodic);
    wr(a, reg::kTimerDivide, 0xB);
    wr(a, reg::kTimerInitial, 100, 0);
    const ApicState s = a.flatten(at(70));
    EXPECT_EQ(s.timer_remaining, 30u);
    LocalApic b = make_apic();
    ASSERT_EQ(b.restore(s, at(1000)), std::nullopt);
    EXPECT_EQ(b.next_timer_deadline(), 1030u);
    EXPECT_TRUE(b.timer_expired(at(1030)));
    EXPECT_EQ(b.next_timer_deadline(), 1130u);
}

TEST(Timer, MinimumPeriodLimitsHostFiringRate)
{
    LocalApicConfig cfg;
    cfg.min_period_ns = 1000;
    LocalApic a(cfg);
    wr(a, reg::kSvr, 0x1FF);
    wr(a, reg::kLvtTimer, kPeriodic);
    wr(a, reg::kTimerDivide, 0xB);
    wr(a, reg::kTimerInitial, 10, 0);
    EXPECT_TRUE(a.timer_expired(at(10)));
    EXPECT_EQ(a.next_timer_deadline(), 1010u);
}

}  // namespace
}  // namespace hv::apic::test
