// The avic backend as core sees it: block() refuses to sleep while something is pending,
// deliveries notify by the target's state (doorbell in the guest, wake when blocked, nothing
// outside), and a disabled APIC refuses posted vectors.
#include "tests/svm/avic_fixture.hpp"

namespace hv::svm::test {
namespace {

TEST(AvicBackend, BlockRefusesWhenSomethingIsPosted)
{
    AvicFixture vm(2);
    vm.enable_all();
    vm[0].enter_guest();
    vm.ipi(0, 1, 0x42);  // target outside the guest: cause 1, no wake needed
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiNotRunning), 1u);
    EXPECT_EQ(vm.notifiers[1].wakes.load() + vm.notifiers[1].kicks.load(), 0);
    EXPECT_FALSE(vm[1].block());  // HLT with an interrupt pending: do not sleep
}

TEST(AvicBackend, HypervisorDeliveryNotifiesByVcpuState)
{
    AvicFixture vm(1);
    vm.enable_all();
    // Level-triggered (needs the hypervisor's TMR) to a running vCPU: kick.
    vm[0].enter_guest();
    vm[0].deliver(
        {0x30, apic::DeliveryMode::Fixed, apic::Trigger::Level, true, apic::Source::IoApic});
    EXPECT_EQ(vm.notifiers[0].kicks.load(), 1);
    EXPECT_EQ(vm.vm.schedule(0).kicks(), 1u);
    // NMI to a halted vCPU: wake.
    EXPECT_EQ(vm[0].ack().vector, 0x30);
    vm[0].leave_guest();
    ASSERT_TRUE(vm[0].block());
    vm[0].deliver({0, apic::DeliveryMode::Nmi, apic::Trigger::Edge, true, apic::Source::Ipi});
    EXPECT_EQ(vm.notifiers[0].wakes.load(), 1);
    EXPECT_TRUE(vm[0].take_events().nmi);
    // An edge delivery of a vector whose TMR bit is set clears TMR (SDM Vol3 11.8.4).
    vm[0].unblock();
    vm[0].deliver(
        {0x31, apic::DeliveryMode::Fixed, apic::Trigger::Level, true, apic::Source::IoApic});
    vm[0].deliver({0x31, apic::DeliveryMode::Fixed, apic::Trigger::Edge, true, apic::Source::Msi});
    EXPECT_EQ(vm.rd(0, apic::reg::kTmr + 0x10) & (1u << (0x31 - 32)), 0u);
}

TEST(AvicBackend, DisabledApicRefusesPosts)
{
    AvicFixture vm(1);
    vm.enable_all();
    vm[0].msr_write(apic::kMsrApicBase, kApicBase | apic::base::kBsp);  // EN = 0
    vm.vm.post_interrupt(0, 0x80);                                      // e.g. a stale IRTE
    EXPECT_EQ(vm[0].pending_vector(), std::nullopt);
    EXPECT_FALSE(vm.irr_in_page(0, 0x80));
    EXPECT_EQ(vm.vm.stat(0, AvicStat::Refused), 1u);
}

}  // namespace
}  // namespace hv::svm::test
