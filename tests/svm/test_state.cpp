// flatten()/restore(): IRR/ISR come from the backing page; IsRunning and host APIC IDs are never
// saved; the tables are rebuilt from the restored ID, LDR and DFR; restore validates first.
#include "tests/svm/avic_fixture.hpp"

namespace hv::svm::test {
namespace {

using namespace apic::reg;

apic::ApicState busy_state(AvicFixture& vm)
{
    vm.enable_all();
    vm.wr(1, kTpr, 0x10);
    vm.wr(1, kLdr, 0x08000000);
    vm.wr(1, kLvtTimer, 0x20045);
    vm.wr(1, kTimerDivide, 0x1);
    vm.wr(1, kTimerInitial, 100000);
    vm[1].enter_guest();
    vm.ipi(0, 1, 0x61);
    vm.vm.post_interrupt(1, 0x92);
    vm[1].deliver(
        {0x73, apic::DeliveryMode::Fixed, apic::Trigger::Level, true, apic::Source::IoApic});
    EXPECT_EQ(vm[1].ack().vector, 0x92);  // ISR 0x92; IRR 0x61, 0x73
    vm.clock.ns = 5000;
    return vm[1].flatten();
}

TEST(AvicState, FlattenReadsThePage)
{
    AvicFixture vm(2);
    const apic::ApicState s = busy_state(vm);
    EXPECT_TRUE(apic::test_vector(s.irr, 0x61));
    EXPECT_TRUE(apic::test_vector(s.irr, 0x73));
    EXPECT_TRUE(apic::test_vector(s.tmr, 0x73));
    EXPECT_TRUE(apic::test_vector(s.isr, 0x92));
    EXPECT_EQ(s.ldr, 0x08000000u);
    EXPECT_EQ(s.timer_initial, 100000u);
    EXPECT_EQ(s.timer_remaining, 100000u - 1250u);  // TDCR 0x1: divide by 4; 5000 ns
    EXPECT_EQ(apic::validate(s), std::nullopt);
}

TEST(AvicState, AvicToEmulatedAndBack)
{
    AvicFixture vm(2);
    const apic::ApicState s = busy_state(vm);

    RecordingNotifier n;
    RoutingPlatform p;
    apic::LocalApicConfig cfg;
    cfg.id = 1;
    apic::EmulatedApic emu(1, cfg, vm.clock, p, n);
    ASSERT_EQ(emu.restore(s), std::nullopt);
    EXPECT_EQ(emu.flatten(), s) << apic::describe_difference(emu.flatten(), s);

    // Later: the guest continues on emulated, then moves to a fresh avic VM.
    emu.mmio_write(kApicBase + kEoi, 4, 0);  // EOI of 0x92
    vm.clock.ns = 9000;
    const apic::ApicState s2 = emu.flatten();
    AvicFixture other(2);
    other[1].enter_guest();
    ASSERT_EQ(other[1].restore(s2), std::nullopt);
    EXPECT_EQ(other[1].flatten(), s2) << apic::describe_difference(other[1].flatten(), s2);
    // Tables rebuilt from the restored ID and LDR; IsRunning from the live vCPU, not the file.
    EXPECT_EQ(other.vm.logical_entry(3), 0x80000001u);
    EXPECT_TRUE(other.vm.physical_entry(1).is_running);
    EXPECT_TRUE(other.irr_in_page(1, 0x61));
    EXPECT_EQ(other[1].pending_vector(), 0x73);
}

TEST(AvicState, RestoreMovesTheTableEntries)
{
    AvicFixture vm(2);
    vm.enable_all();
    apic::ApicState s = vm[1].flatten();
    s.id = 9;
    s.ldr = 0x40000000;
    ASSERT_EQ(vm[1].restore(s), std::nullopt);
    EXPECT_FALSE(vm.vm.physical_entry(1).valid);
    EXPECT_EQ(vm.vm.physical_entry(9), (PhysicalEntry{1, kBackingFrameBase + 1, false, true}));
    EXPECT_EQ(vm.vm.logical_entry(6), 0x80000009u);
    EXPECT_EQ(vm.rd(1, kId), 9u << 24);  // the page holds the restored ID
}

TEST(AvicState, InvalidRestoreChangesNothing)
{
    AvicFixture vm(2);
    const apic::ApicState before = busy_state(vm);
    apic::ApicState bad = before;
    bad.irr[0] = 0x4;  // vector 2
    bad.id = 7;
    const auto err = vm[1].restore(bad);
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->rfind("irr[0]", 0), 0u) << *err;
    EXPECT_EQ(vm[1].flatten(), before);
    EXPECT_TRUE(vm.vm.physical_entry(1).valid);
    EXPECT_FALSE(vm.vm.physical_entry(7).valid);
}

TEST(AvicState, EmulatedToX2avic)
{
    FakeClock clock;
    RecordingNotifier n;
    RoutingPlatform p;
    apic::LocalApicConfig cfg;
    cfg.id = 0x105;
    apic::EmulatedApic emu(0, cfg, clock, p, n);
    emu.msr_write(apic::kMsrApicBase, kApicBase | apic::base::kEnable | apic::base::kExtd);
    emu.msr_write(0x80F, 0x1FF);
    emu.msr_write(0x808, 0x40);
    emu.deliver({0x55, apic::DeliveryMode::Fixed, apic::Trigger::Edge, true, apic::Source::Msi});
    const apic::ApicState s = emu.flatten();

    AvicVm vm(1, AvicOptions{true, false});
    RecordingNotifier n2;
    auto avic = vm.make_backend(0, apic::LocalApicConfig{}, clock, p, n2);
    ASSERT_EQ(avic->restore(s), std::nullopt);
    EXPECT_EQ(avic->flatten(), s);
    EXPECT_TRUE(vm.physical_entry(0x105).valid);
    EXPECT_TRUE(vm.backing_page(0).test_irr(0x55));
    EXPECT_EQ(vm.backing_page(0).load(kId), 0x105u);  // x2APIC: the full ID in the page
}

}  // namespace
}  // namespace hv::svm::test
