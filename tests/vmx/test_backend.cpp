// The apicv backend's behaviour as the guest and core see it: virtual-interrupt delivery,
// acceptance, events, timer, mode changes.
#include <gtest/gtest.h>

#include <initializer_list>

#include "apicv_fakes.hpp"

namespace hv::vmx::test {
namespace {

namespace reg = apic::reg;

class Backend : public ::testing::TestWithParam<ApicvOptions> {
  protected:
    Backend() : vm(2, GetParam()) {}
    ApicvBackend& a() { return vm.b(0); }
    TestVm vm;
};

TEST_P(Backend, VirtualInterruptDeliveryOrderAndNesting)
{
    enable(a(), true);
    for (uint8_t v : std::initializer_list<uint8_t>{0x31, 0x52, 0x58, 0x93}) {
        a().deliver(fixed(v));
    }
    a().enter_guest();
    EXPECT_EQ(a().pending_vector(), 0x93);
    if (GetParam().virtual_interrupt_delivery) {
        EXPECT_EQ(a().vmcs().gis().rvi(), 0x93);
    }
    EXPECT_EQ(a().ack().vector, 0x93);
    EXPECT_EQ(a().vmcs().gis().svi(), 0x93);
    EXPECT_EQ(a().page().vppr(), 0x90);
    EXPECT_EQ(a().pending_vector(), std::nullopt);  // 0x58 is below the in-service class
    a().msr_write(0x80B, 0);
    EXPECT_EQ(a().ack().vector, 0x58);
    EXPECT_EQ(a().pending_vector(), std::nullopt);  // 0x52: same class as 0x58 in service
    a().msr_write(0x80B, 0);
    EXPECT_EQ(a().ack().vector, 0x52);
    a().msr_write(0x80B, 0);
    a().msr_write(0x808, 0x40);  // TPR masks 0x31
    EXPECT_EQ(a().pending_vector(), std::nullopt);
    const apic::AckResult s = a().ack();
    EXPECT_TRUE(s.spurious);
    EXPECT_EQ(s.vector, 0xFF);
    a().msr_write(0x808, 0x20);
    EXPECT_EQ(a().ack().vector, 0x31);
    EXPECT_EQ(a().msr_read(0x80A).value, 0x30u);  // PPR
}

// SDM Vol3 30.2.2 "Virtual-Interrupt Delivery" and 30.1.4 "EOI Virtualization", step by step:
// the guest interrupt status, VPPR, VISR and VIRR after each operation.
TEST(VirtualInterruptDelivery, PseudoCodeTable)
{
    TestVm vm(1, ApicvOptions{});
    ApicvBackend& a = vm.b(0);
    enable(a, true);
    for (uint8_t v : std::initializer_list<uint8_t>{0x31, 0x52, 0x93}) {
        a.deliver(fixed(v));
    }
    a.enter_guest();  // PIR -> VIRR, RVI = 0x93
    struct Step {
        const char* op;
        uint8_t rvi, svi, vppr;
        uint32_t visr_hi, virr_mid;  // VISR[4] (0x80-0x9F), VIRR[2] (0x40-0x5F)
    };
    const Step steps[] = {
        {"entry", 0x93, 0x00, 0x00, 0x0, 1u << 18},
        {"deliver", 0x52, 0x93, 0x90, 1u << 19, 1u << 18},
        {"tpr 0xA0", 0x52, 0x93, 0xA0, 1u << 19, 1u << 18},
        {"tpr 0", 0x52, 0x93, 0x90, 1u << 19, 1u << 18},
        {"eoi", 0x52, 0x00, 0x00, 0x0, 1u << 18},
        {"deliver", 0x31, 0x52, 0x50, 0x0, 0x0},
        {"self-ipi 0x60", 0x60, 0x52, 0x50, 0x0, 0x0},
        {"deliver", 0x31, 0x60, 0x60, 0x0, 0x0},
        {"eoi", 0x31, 0x52, 0x50, 0x0, 0x0},
    };
    for (const Step& st : steps) {
        const std::string op = st.op;
        if (op == "deliver") {
            a.ack();
        } else if (op == "tpr 0xA0") {
            a.msr_write(0x808, 0xA0);
        } else if (op == "tpr 0") {
            a.msr_write(0x808, 0);
        } else if (op == "eoi") {
            a.msr_write(0x80B, 0);
        } else if (op == "self-ipi 0x60") {
            a.msr_write(0x83F, 0x60);
        }
        const GuestInterruptStatus g = a.vmcs().gis();
        const VirtualApicPage p = a.page();
        EXPECT_EQ(g.rvi(), st.rvi) << op;
        EXPECT_EQ(g.svi(), st.svi) << op;
        EXPECT_EQ(p.vppr(), st.vppr) << op;
        EXPECT_EQ(p.get(vapic::kVisr + 0x40), st.visr_hi) << op;
        EXPECT_EQ(p.get(vapic::kVirr + 0x20), st.virr_mid) << op;
    }
}

TEST_P(Backend, RefusesWhileSoftwareDisabled)
{
    a().deliver(fixed(0x40));  // SVR = 0xFF after reset
    EXPECT_EQ(a().pending_vector(), std::nullopt);
    EXPECT_EQ(stat(a(), "irq_refused"), 1u);
    EXPECT_EQ(stat(a(), "posted"), 0u);
}

TEST_P(Backend, IllegalVectorSetsEsrAndRaisesTheErrorLvt)
{
    enable(a(), false);
    a().mmio_write(kBase + reg::kLvtError, 4, 0xE3);
    a().deliver(fixed(0x05));
    a().mmio_write(kBase + reg::kEsr, 4, 0);
    EXPECT_EQ(a().mmio_read(kBase + reg::kEsr, 4).value, apic::esr::kReceiveIllegalVector);
    a().enter_guest();
    EXPECT_EQ(a().ack().vector, 0xE3);
}

TEST_P(Backend, NmiToARunningVcpuIsAKickAndAnExit)
{
    enable(a(), true);
    a().enter_guest();
    apic::Interrupt nmi;
    nmi.mode = apic::DeliveryMode::Nmi;
    const Exits before = exits(a());
    a().deliver(nmi);
    EXPECT_EQ(vm.notifiers[0]->kick_count(), 1u);
    EXPECT_EQ((exits(a()) - before).ext, 1u);
    EXPECT_TRUE(a().take_events().nmi);
}

TEST_P(Backend, InitDiscardsPendingAndPostedVectors)
{
    enable(a(), true);
    a().deliver(fixed(0x40));
    a().enter_guest();
    a().deliver(fixed(0x50));
    apic::Interrupt init;
    init.mode = apic::DeliveryMode::Init;
    vm.b(1).deliver(init);
    a().deliver(init);
    EXPECT_TRUE(a().take_events().init);
    EXPECT_TRUE(vm.vm.pid(0).pir_empty());
    const apic::ApicState s = a().flatten();
    EXPECT_EQ(s.irr, apic::VectorWords{});
    EXPECT_EQ(a().vmcs().gis().raw, 0u);
    EXPECT_EQ(a().run_state(), apic::RunState::Running);  // the BSP restarts
    EXPECT_EQ(vm.b(1).run_state(), apic::RunState::WaitForSipi);
    apic::Interrupt sipi;
    sipi.mode = apic::DeliveryMode::StartUp;
    sipi.vector = 0x9;
    vm.b(1).deliver(sipi);
    EXPECT_EQ(vm.b(1).take_events().sipi, 0x9);
}

TEST_P(Backend, DestInfoPprFollowsThePage)
{
    enable(a(), false);
    a().mmio_write(kBase + reg::kTpr, 4, 0x20);
    EXPECT_EQ(a().dest_info().ppr, 0x20);
    a().deliver(fixed(0x71));
    a().enter_guest();
    a().ack();
    EXPECT_EQ(a().dest_info().ppr, 0x70);
}

TEST_P(Backend, TimerFiresThroughTheHypervisor)
{
    enable(a(), false);
    a().mmio_write(kBase + reg::kTimerDivide, 4, 0xB);  // divide by 1
    a().mmio_write(kBase + reg::kLvtTimer, 4, 0x61);
    a().mmio_write(kBase + reg::kTimerInitial, 4, 1000);
    EXPECT_EQ(a().timer_deadline(), 1000u);
    vm.clock.ns = 400;
    const Exits before = exits(a());
    EXPECT_EQ(a().mmio_read(kBase + reg::kTimerCurrent, 4).value, 600u);
    EXPECT_EQ((exits(a()) - before).access, 1u);  // TMCCT is never virtualized
    a().enter_guest();
    vm.clock.ns = 1000;
    a().timer_fired();
    EXPECT_EQ(stat(a(), "irq_timer"), 1u);
    EXPECT_EQ(vm.notifiers[0]->kick_count(), 1u);
    EXPECT_EQ(a().ack().vector, 0x61);
    EXPECT_EQ(a().timer_deadline(), std::nullopt);
}

TEST_P(Backend, X2apicSwitchKeepsTheIcrInOneRegister)
{
    enable(a(), false);
    a().mmio_write(kBase + reg::kIcrHigh, 4, 0x01000000);
    a().mmio_write(kBase + reg::kIcrLow, 4, 0x4000 | 0x33);
    const uint64_t b = a().msr_read(apic::kMsrApicBase).value;
    a().msr_write(apic::kMsrApicBase, b | apic::base::kExtd);
    EXPECT_EQ(a().msr_read(0x830).value, 0x0100000000004033ULL);
    EXPECT_EQ(a().msr_read(0x802).value, 0u);
    EXPECT_EQ(a().msr_read(0x80D).value, 1u);  // derived LDR
    EXPECT_EQ(a().mmio_read(kBase + reg::kId, 4).status, apic::AccessStatus::NotMine);
}

TEST_P(Backend, DisablingTheApicResetsTheVirtualState)
{
    enable(a(), true);
    a().deliver(fixed(0x40));
    a().enter_guest();
    a().ack();
    a().deliver(fixed(0x50));
    a().msr_write(apic::kMsrApicBase, apic::base::kDefaultAddr | apic::base::kBsp);
    EXPECT_EQ(a().pending_vector(), std::nullopt);
    const VirtualApicPage p = a().page();
    EXPECT_EQ(p.vectors(vapic::kVisr), apic::VectorWords{});
    EXPECT_EQ(p.vectors(vapic::kVirr), apic::VectorWords{});
    a().deliver(fixed(0x60));
    EXPECT_EQ(stat(a(), "irq_refused"), 1u);
    EXPECT_FALSE(a().vmcs().secondary(secondary::kVirtualizeApicAccesses));
}

TEST_P(Backend, LevelTriggeredVectorTakesTheSlowPathAndSetsTmr)
{
    enable(a(), true);
    a().deliver(fixed(0x70, apic::Trigger::Level, apic::Source::IoApic));
    EXPECT_EQ(a().msr_read(0x818 + (0x70 >> 5)).value, 1u << (0x70 & 31));
    a().deliver(fixed(0x70));  // the same vector edge-triggered clears TMR again
    EXPECT_EQ(a().msr_read(0x818 + (0x70 >> 5)).value, 0u);
    EXPECT_FALSE(a().vmcs().eoi_exit_bit(0x70));
    EXPECT_EQ(stat(a(), "irq_ioapic"), 1u);
    EXPECT_EQ(stat(a(), "irq_msi"), 1u);
}

std::string name(const ::testing::TestParamInfo<ApicvOptions>& i)
{
    const ApicvOptions& o = i.param;
    std::string s = o.virtual_interrupt_delivery ? "vid" : "tprshadow";
    s += o.posted_interrupts ? "_pi" : "";
    s += o.ipiv ? "_ipiv" : "";
    s += o.x2apic_virtualization ? "_x2v" : "";
    return s;
}

INSTANTIATE_TEST_SUITE_P(AllOptions, Backend, ::testing::ValuesIn(all_option_sets()), name);

}  // namespace
}  // namespace hv::vmx::test
