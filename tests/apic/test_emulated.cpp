// EmulatedApic: the backend interface on top of LocalApic — address decode by GPA, side effects
// routed through ApicPlatform, kick versus wake, INIT/SIPI events, timer plumbing, counters.
#include <gtest/gtest.h>

#include "apic/emulated.hpp"
#include "tests/support/model_fakes.hpp"

namespace hv::apic::test {
namespace {

struct Rig {
    explicit Rig(bool bsp = true, std::size_t index = 1)
        : apic(index, make_cfg(bsp), clock, platform, notifier)
    {
        apic.mmio_write(base::kDefaultAddr + reg::kSvr, 4, 0x1FF);
    }
    static LocalApicConfig make_cfg(bool bsp)
    {
        LocalApicConfig c;
        c.id = 1;
        c.bsp = bsp;
        c.tsc_hz = 2'000'000'000;
        return c;
    }
    Interrupt fixed(uint8_t v, Trigger t = Trigger::Edge, Source s = Source::Msi)
    {
        Interrupt i;
        i.vector = v;
        i.trigger = t;
        i.source = s;
        return i;
    }
    FakeClock clock;
    RoutingPlatform platform;
    RecordingNotifier notifier;
    EmulatedApic apic;
};

TEST(Emulated, MmioIsDecodedByGuestPhysicalAddress)
{
    Rig r;
    EXPECT_EQ(r.apic.mmio_read(base::kDefaultAddr + reg::kVersion, 4).value, kVersionValue);
    EXPECT_EQ(r.apic.mmio_read(base::kDefaultAddr - 4, 4).status, AccessStatus::NotMine);
    EXPECT_EQ(r.apic.mmio_read(base::kDefaultAddr + 0x1000, 4).status, AccessStatus::NotMine);
    EXPECT_EQ(r.apic.msr_read(0x10).status, AccessStatus::NotMine);
    const CounterList exits = r.apic.exit_counters();
    EXPECT_EQ(counter_value(exits, "xapic_read"), 1u);
    EXPECT_EQ(counter_value(exits, "xapic_write"), 1u);  // the SVR write of the rig
    EXPECT_EQ(counter_value(exits, "other_apic_msr"), 0u);
}

TEST(Emulated, IcrWriteIsRoutedThroughThePlatform)
{
    Rig r;
    r.apic.mmio_write(base::kDefaultAddr + reg::kIcrHigh, 4, 0x02000000);
    r.apic.mmio_write(base::kDefaultAddr + reg::kIcrLow, 4, 0x00004031);
    ASSERT_EQ(r.platform.ipis.size(), 1u);
    EXPECT_EQ(r.platform.ipis[0].first, 1u);
    EXPECT_EQ(r.platform.ipis[0].second.vector, 0x31);
    EXPECT_EQ(r.platform.ipis[0].second.dest.dest, 2u);
}

TEST(Emulated, LevelEoiReachesTheIoapicUnlessSuppressed)
{
    Rig r;
    r.apic.deliver(r.fixed(0x61, Trigger::Level, Source::IoApic));
    EXPECT_EQ(r.apic.ack().vector, 0x61);
    r.apic.mmio_write(base::kDefaultAddr + reg::kEoi, 4, 0);
    ASSERT_EQ(r.platform.eois.size(), 1u);
    EXPECT_EQ(r.platform.eois[0], 0x61);

    r.apic.mmio_write(base::kDefaultAddr + reg::kSvr, 4, 0x11FF);
    r.apic.deliver(r.fixed(0x62, Trigger::Level, Source::IoApic));
    r.apic.ack();
    r.apic.mmio_write(base::kDefaultAddr + reg::kEoi, 4, 0);
    EXPECT_EQ(r.platform.eois.size(), 1u);
    EXPECT_EQ(counter_value(r.apic.stats(), "irq_ioapic"), 2u);
}

TEST(Emulated, KickWhileInGuestWakeWhileBlocked)
{
    Rig r;
    r.apic.deliver(r.fixed(0x40));  // outside: nobody to notify
    EXPECT_EQ(r.notifier.kicks + r.notifier.wakes, 0);
    EXPECT_FALSE(r.apic.block());  // something is pending: do not sleep
    EXPECT_EQ(r.apic.ack().vector, 0x40);

    r.apic.enter_guest();
    r.apic.deliver(r.fixed(0x50));
    EXPECT_EQ(r.notifier.kicks, 1);
    r.apic.leave_guest();
    r.apic.ack();

    ASSERT_TRUE(r.apic.block());
    r.apic.deliver(r.fixed(0x70));
    EXPECT_EQ(r.notifier.wakes, 1);
    r.apic.unblock();
    EXPECT_EQ(r.apic.pending_vector(), 0x70);

    r.apic.enter_guest();
    r.apic.mmio_write(base::kDefaultAddr + reg::kTpr, 4, 0xF0);
    r.apic.deliver(r.fixed(0x80));  // masked by TPR: nothing deliverable, no kick
    EXPECT_EQ(r.notifier.kicks, 1);
    const CounterList st = r.apic.stats();
    EXPECT_EQ(counter_value(st, "kicks"), 1u);
    EXPECT_EQ(counter_value(st, "wakes"), 1u);
    EXPECT_EQ(counter_value(st, "irq_msi"), 4u);
}

TEST(Emulated, InitParksAndSipiStarts)
{
    Rig r(false);
    EXPECT_EQ(r.apic.run_state(), RunState::WaitForSipi);
    Interrupt sipi;
    sipi.mode = DeliveryMode::StartUp;
    sipi.vector = 0x9F;
    r.apic.deliver(sipi);
    PendingEvents e = r.apic.take_events();
    EXPECT_EQ(e.sipi, 0x9F);
    EXPECT_EQ(r.apic.run_state(), RunState::Running);

    r.apic.enter_guest();
    Interrupt init;
    init.mode = DeliveryMode::Init;
    r.apic.deliver(init);
    EXPECT_EQ(r.notifier.kicks, 1);
    e = r.apic.take_events();
    EXPECT_TRUE(e.init);
    EXPECT_EQ(r.apic.run_state(), RunState::WaitForSipi);
    EXPECT_EQ(r.apic.mmio_read(base::kDefaultAddr + reg::kSvr, 4).value, 0xFFu);
    EXPECT_FALSE(r.apic.take_events().any());

    Interrupt deassert = init;
    deassert.assert_level = false;
    deassert.trigger = Trigger::Level;
    r.apic.deliver(deassert);
    EXPECT_FALSE(r.apic.take_events().any());
}

TEST(Emulated, NmiIsAnEvent)
{
    Rig r;
    ASSERT_TRUE(r.apic.block());
    Interrupt nmi;
    nmi.mode = DeliveryMode::Nmi;
    r.apic.deliver(nmi);
    EXPECT_EQ(r.notifier.wakes, 1);
    EXPECT_TRUE(r.apic.take_events().nmi);
}

TEST(Emulated, TimerPlumbing)
{
    Rig r;
    r.apic.mmio_write(base::kDefaultAddr + reg::kLvtTimer, 4, 0x30);
    r.apic.mmio_write(base::kDefaultAddr + reg::kTimerDivide, 4, 0xB);
    r.platform.timer_changes.clear();
    r.clock.ns = 100;
    r.apic.mmio_write(base::kDefaultAddr + reg::kTimerInitial, 4, 500);
    ASSERT_EQ(r.platform.timer_changes.size(), 1u);
    EXPECT_EQ(r.apic.timer_deadline(), 600u);
    r.clock.ns = 599;
    r.apic.timer_fired();  // early: nothing
    EXPECT_EQ(r.apic.pending_vector(), std::nullopt);
    ASSERT_TRUE(r.apic.block());
    r.clock.ns = 600;
    r.apic.timer_fired();
    EXPECT_EQ(r.notifier.wakes, 1);
    r.apic.unblock();
    EXPECT_EQ(r.apic.pending_vector(), 0x30);
    EXPECT_EQ(r.apic.timer_deadline(), std::nullopt);
    EXPECT_EQ(counter_value(r.apic.stats(), "irq_timer"), 1u);
}

TEST(Emulated, PendingVectorCatchesUpAnExpiredTimer)
{
    Rig r;
    r.apic.msr_write(kMsrApicBase, base::kDefaultAddr | base::kEnable | base::kExtd | base::kBsp);
    r.apic.msr_write(0x832, 0x40033);
    r.apic.msr_write(kMsrTscDeadline, 2000);  // TSC 2000 = 1000 ns at 2 GHz
    EXPECT_EQ(r.apic.timer_deadline(), 1000u);
    r.clock.ns = 5000;
    EXPECT_EQ(r.apic.pending_vector(), 0x33);
    EXPECT_EQ(r.apic.msr_read(kMsrTscDeadline).value, 0u);
    const CounterList exits = r.apic.exit_counters();
    EXPECT_EQ(counter_value(exits, "x2apic_write"), 1u);
    EXPECT_EQ(counter_value(exits, "other_apic_msr"), 3u);
}

TEST(Emulated, FlattenRestoreThroughTheBackend)
{
    Rig a;
    a.apic.deliver(a.fixed(0x45));
    a.apic.mmio_write(base::kDefaultAddr + reg::kTpr, 4, 0x10);
    const ApicState s = a.apic.flatten();
    Rig b;
    ASSERT_EQ(b.apic.restore(s), std::nullopt);
    EXPECT_EQ(b.apic.flatten(), s);
    EXPECT_EQ(b.apic.pending_vector(), 0x45);
    ApicState bad = s;
    bad.version = 0;
    EXPECT_TRUE(b.apic.restore(bad).has_value());
    EXPECT_EQ(b.apic.flatten(), s);
}

TEST(Emulated, LocalLvtSources)
{
    Rig r;
    r.apic.mmio_write(base::kDefaultAddr + reg::kLvtPerf, 4, 0x4FF);  // NMI mode
    r.apic.raise_lvt(Lvt::Perf);
    EXPECT_TRUE(r.apic.take_events().nmi);
    r.apic.mmio_write(base::kDefaultAddr + reg::kLvtThermal, 4, 0x3C);
    r.apic.raise_lvt(Lvt::Thermal);
    EXPECT_EQ(r.apic.pending_vector(), 0x3C);
}

}  // namespace
}  // namespace hv::apic::test
