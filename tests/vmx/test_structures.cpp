// Layout and encodings of the APICv structures, worked out from the SDM (values in comments).
#include <gtest/gtest.h>

#include "apicv_fakes.hpp"
#include "vmx/posted_interrupt.hpp"
#include "vmx/virtual_apic_page.hpp"
#include "vmx/vmcs.hpp"

namespace hv::vmx::test {
namespace {

TEST(VmcsImage, EncodingsAndWidths)
{
    // SDM Vol3 Appendix B: bits 14:13 = width.
    EXPECT_EQ(vmcs_width_code(field::kPostedInterruptNotificationVector), 0u);  // 16-bit
    EXPECT_EQ(vmcs_width_code(field::kGuestInterruptStatus), 0u);
    EXPECT_EQ(vmcs_width_code(field::kPidPointerTableAddress), 1u);  // 64-bit
    EXPECT_EQ(vmcs_width_code(field::kTprThreshold), 2u);            // 32-bit
    EXPECT_EQ(field::kEoiExitBitmap1 - field::kEoiExitBitmap0, 2u);  // high halves at +1
    VmcsImage v;
    v.guest_interrupt_status.value = 0xABCD;
    v.eoi_exit(2) = 0x55;
    v.tpr_threshold.value = 3;
    EXPECT_EQ(v.read(0x0810), 0xABCDu);
    EXPECT_EQ(v.read(0x2020), 0x55u);
    EXPECT_EQ(v.read(0x401C), 3u);
    EXPECT_EQ(v.read(0x6C00), std::nullopt);
    EXPECT_EQ(v.gis().rvi(), 0xCD);
    EXPECT_EQ(v.gis().svi(), 0xAB);
}

TEST(VmcsImage, ControlBits)
{
    EXPECT_EQ(pin::kProcessPostedInterrupts, 0x80u);
    EXPECT_EQ(primary::kUseTprShadow, 0x200000u);
    EXPECT_EQ(primary::kActivateTertiaryControls, 0x20000u);
    EXPECT_EQ(secondary::kVirtualizeApicAccesses, 0x1u);
    EXPECT_EQ(secondary::kVirtualizeX2apicMode, 0x10u);
    EXPECT_EQ(secondary::kApicRegisterVirtualization, 0x100u);
    EXPECT_EQ(secondary::kVirtualInterruptDelivery, 0x200u);
    EXPECT_EQ(tertiary::kIpiVirtualization, 0x10u);
    VmcsImage v;
    v.secondary_controls.value = secondary::kVirtualInterruptDelivery;
    EXPECT_FALSE(v.secondary(secondary::kVirtualInterruptDelivery));  // not activated
    v.primary_controls.value = primary::kActivateSecondaryControls;
    EXPECT_TRUE(v.secondary(secondary::kVirtualInterruptDelivery));
}

TEST(PostedInterruptDescriptor, Layout)
{
    PostedInterruptDescriptor d;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(&d) % 64, 0u);
    // Bit 256 = ON, 257 = SN, 279:272 = NV, 319:288 = NDST.
    update_control(d, ControlUpdate{0xF2, 0x1200, true});
    EXPECT_EQ(d.load_control(), (0x1200ULL << 32) | (0xF2ULL << 16) | 0x2u);
    EXPECT_TRUE(d.sn());
    EXPECT_FALSE(d.on());
    EXPECT_EQ(pid::ndst_for(5, false), 0x500u);  // xAPIC: ID in bits 15:8
    EXPECT_EQ(pid::ndst_for(5, true), 5u);
    // PIR bit v is bit (v % 64) of word v / 64.
    post(d, 0x41);
    EXPECT_EQ(d.pir[1].load(), 1ULL << 1);
    const apic::VectorWords w = d.peek_pir();
    EXPECT_EQ(w[2], 0x2u);  // APIC word 2 = vectors 64..95
}

TEST(PidPointerTable, EntriesAreAddressOrValid)
{
    PidPointerTable t(8);
    PostedInterruptDescriptor d;
    EXPECT_EQ(t.last_index(), 7u);
    EXPECT_EQ(t.lookup(3), nullptr);
    t.set(3, &d);
    EXPECT_EQ(t.entry(3), reinterpret_cast<uintptr_t>(&d) | 1u);
    EXPECT_EQ(t.lookup(3), &d);
    EXPECT_EQ(t.lookup(8), nullptr);  // beyond the last index
    t.clear(3);
    EXPECT_EQ(t.lookup(3), nullptr);
}

TEST(ApicvVm, PidAtValidatesAddresses)
{
    ApicvOptions o;
    ApicvVm vm(3, o);
    const uint64_t a1 = ApicvVm::address_of(vm.pid(1));
    EXPECT_EQ(vm.pid_at(a1), &vm.pid(1));
    EXPECT_EQ(vm.pid_at(a1 + 8), nullptr);
    EXPECT_EQ(vm.pid_at(ApicvVm::address_of(vm.pid(0)) - 64), nullptr);
    EXPECT_EQ(vm.pid_at(ApicvVm::address_of(vm.pid(2)) + 64), nullptr);
    EXPECT_EQ(vm.index_of(vm.pid_at(a1)), 1u);
}

TEST(VirtualApicPage, RegisterLayout)
{
    VirtualApicPage p;
    p.set_bit(vapic::kVirr, 0x31);
    p.set_bit(vapic::kVisr, 0xFE);
    EXPECT_EQ(p.get(0x210), 1u << 17);
    EXPECT_EQ(p.get(0x170), 1u << 30);
    EXPECT_EQ(p.highest(vapic::kVirr), 0x31);
    p.write_bytes(0x300, 8, 0x0000000300000041ULL);
    EXPECT_EQ(p.get(0x300), 0x41u);
    EXPECT_EQ(p.get(0x304), 3u);
    p.write_bytes(0x81, 1, 0x5);
    EXPECT_EQ(p.get(vapic::kVtpr), 0x500u);
    const apic::ApicRegisterPage r = p.registers();
    EXPECT_EQ(apic::page_get(r, 0x210), 1u << 17);
}

TEST(VirtualApicPage, PprRule)
{
    // SDM Vol3 30.1.3: (VTPR, SVI) -> VPPR.
    struct Case {
        uint8_t vtpr, svi, vppr;
    };
    for (const Case c : {Case{0, 0, 0}, Case{0x20, 0x31, 0x30}, Case{0x35, 0x31, 0x35},
                         Case{0x3F, 0x41, 0x40}, Case{0xFF, 0xFE, 0xFF}}) {
        EXPECT_EQ(virtual_ppr(c.vtpr, c.svi), c.vppr) << int(c.vtpr) << " " << int(c.svi);
    }
}

TEST(ApicvVm, RefusesCombinationsNoCpuOffers)
{
    ApicvOptions o;
    o.virtual_interrupt_delivery = false;
    EXPECT_THROW(ApicvVm(1, o), std::invalid_argument);
    o = {};
    o.posted_interrupts = false;
    EXPECT_THROW(ApicvVm(1, o), std::invalid_argument);  // IPIv without PI
    o.ipiv = false;
    EXPECT_NO_THROW(ApicvVm(1, o));
    EXPECT_EQ(all_option_sets().size(), 8u);
}

TEST(ApicvVm, ControlsFollowModeAndOptions)
{
    for (const ApicvOptions& o : all_option_sets()) {
        TestVm vm(1, o);
        VmcsImage v = vm.b(0).vmcs();
        EXPECT_EQ(v.pin(pin::kProcessPostedInterrupts), o.posted_interrupts);
        EXPECT_TRUE(v.secondary(secondary::kVirtualizeApicAccesses));
        EXPECT_FALSE(v.secondary(secondary::kVirtualizeX2apicMode));
        EXPECT_EQ(v.secondary(secondary::kVirtualInterruptDelivery), o.virtual_interrupt_delivery);
        EXPECT_EQ(v.tertiary(tertiary::kIpiVirtualization), o.ipiv);
        EXPECT_EQ(v.pi_notification_vector.value, o.notification_vector);
        EXPECT_EQ(v.pid_address.value, reinterpret_cast<uintptr_t>(&vm.vm.pid(0)));
        enable(vm.b(0), true);
        v = vm.b(0).vmcs();
        EXPECT_FALSE(v.secondary(secondary::kVirtualizeApicAccesses));
        EXPECT_EQ(v.secondary(secondary::kVirtualizeX2apicMode), o.x2apic_virtualization);
    }
}

}  // namespace
}  // namespace hv::vmx::test
