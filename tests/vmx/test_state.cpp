// flatten()/restore(): PIR merged into IRR, RVI/SVI and the host fields (NV, NDST, SN) derived
// anew, an invalid restore changes nothing, and a round trip to `emulated` and back mid-workload.
#include <gtest/gtest.h>

#include "apicv_fakes.hpp"
#include "test_helpers.hpp"  // PrintTo(ApicState)

namespace hv::vmx::test {
namespace {

namespace reg = apic::reg;

TEST(State, PirMergedIntoIrrEvenWhenOnIsClear)
{
    TestVm vm(1, ApicvOptions{});
    enable(vm.b(0), true);
    vm.b(0).deliver(fixed(0x45));  // outside: SN set, ON stays clear
    ASSERT_FALSE(vm.vm.pid(0).on());
    const apic::ApicState s = vm.b(0).flatten();
    EXPECT_TRUE(apic::test_vector(s.irr, 0x45));
    EXPECT_FALSE(vm.vm.pid(0).pir_empty());  // flatten observes, it does not consume
}

TEST(State, RestoreDerivesRviSviAndHostFields)
{
    TestVm vm(1, ApicvOptions{});
    apic::ApicState s = vm.b(0).flatten();
    s.svr = 0x1FF;
    apic::set_vector(s.irr, 0x40);
    apic::set_vector(s.irr, 0x30);
    apic::set_vector(s.isr, 0x21);
    s.tpr = 0x10;
    ASSERT_EQ(vm.b(0).restore(s), std::nullopt);
    const VmcsImage v = vm.b(0).vmcs();
    EXPECT_EQ(v.gis().rvi(), 0x40);
    EXPECT_EQ(v.gis().svi(), 0x21);
    EXPECT_EQ(vm.b(0).page().vppr(), 0x20);
    EXPECT_EQ(pid::nv_of(vm.vm.pid(0).load_control()), ApicvOptions{}.notification_vector);
    EXPECT_EQ(vm.b(0).flatten(), s);
}

TEST(State, InvalidRestoreChangesNothing)
{
    TestVm vm(1, ApicvOptions{});
    enable(vm.b(0), false);
    vm.b(0).deliver(fixed(0x45));
    const apic::ApicState before = vm.b(0).flatten();
    const VirtualApicPage page_before = vm.b(0).page();
    apic::ApicState bad = before;
    bad.irr[0] = 0x20;  // vector 5
    bad.tpr = 0x33;
    const auto err = vm.b(0).restore(bad);
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->rfind("irr", 0), 0u) << *err;
    EXPECT_EQ(vm.b(0).flatten(), before);
    EXPECT_EQ(vm.b(0).page().words, page_before.words);
}

// Flatten one backend mid-workload, restore on the other, and continue: same interrupts, in the
// same order, with the same EOIs reaching the IOAPIC.
TEST(State, CrossBackendRoundTripMidWorkload)
{
    for (const ApicvOptions& o : all_option_sets()) {
        for (const bool x2 : {false, true}) {
            Pair p(o);
            enable(*p.emu, x2);
            enable(*p.acc, x2);
            auto load = [](apic::ApicBackend& a) {
                a.deliver(fixed(0x31));
                a.deliver(fixed(0x62, apic::Trigger::Level));
                a.deliver(fixed(0x93));
                a.enter_guest();
                EXPECT_EQ(a.ack().vector, 0x93);  // in service across the snapshot
                a.leave_guest();
                a.deliver(fixed(0xA4));
            };
            load(*p.acc);
            const apic::ApicState from_apicv = p.acc->flatten();
            ASSERT_EQ(p.emu->restore(from_apicv), std::nullopt);
            EXPECT_EQ(p.emu->flatten(), from_apicv);
            // And back: emulated -> a fresh apicv.
            const apic::ApicState from_emu = p.emu->flatten();
            Pair q(o);
            ASSERT_EQ(q.acc->restore(from_emu), std::nullopt);
            EXPECT_EQ(q.acc->flatten(), from_emu)
                << apic::describe_difference(q.acc->flatten(), from_emu);
            // Both continue identically.
            for (int i = 0; i < 6; ++i) {
                q.acc->enter_guest();
                ASSERT_EQ(p.emu->pending_vector(), q.acc->pending_vector()) << i;
                if (p.emu->pending_vector()) {
                    ASSERT_EQ(p.emu->ack().vector, q.acc->ack().vector);
                }
                if (x2) {
                    p.emu->msr_write(0x80B, 0);
                    q.acc->msr_write(0x80B, 0);
                } else {
                    p.emu->mmio_write(kBase + reg::kEoi, 4, 0);
                    q.acc->mmio_write(kBase + reg::kEoi, 4, 0);
                }
                q.acc->leave_guest();
            }
            EXPECT_EQ(p.pe.eois, q.pa.eois);
            EXPECT_EQ(q.pa.eois, std::vector<uint8_t>{0x62});
            EXPECT_EQ(p.emu->flatten(), q.acc->flatten());
        }
    }
}

}  // namespace
}  // namespace hv::vmx::test
