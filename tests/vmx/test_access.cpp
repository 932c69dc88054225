// Register and MSR accesses: which are virtualized and which exit (the ICR-low APIC-write
// emulation table, register and x2APIC MSR tables), and the architectural exit counts per
// scenario — self-IPIs, IPIs, IPIv, EOIs, TPR threshold — asserted exactly (they are
// deterministic).
#include <gtest/gtest.h>

#include "apicv_fakes.hpp"

namespace hv::vmx::test {
namespace {

namespace reg = apic::reg;

ApicvOptions opts(bool ipiv, bool pi = true, bool x2v = true, bool vid = true)
{
    ApicvOptions o;
    o.ipiv = ipiv;
    o.posted_interrupts = pi;
    o.x2apic_virtualization = x2v;
    o.virtual_interrupt_delivery = vid;
    return o;
}

// Run the guest side of "take the interrupt" the way core does: enter, ack, (handler), EOI.
uint8_t take(ApicvBackend& a)
{
    a.enter_guest();
    const auto v = a.pending_vector();
    EXPECT_TRUE(v.has_value());
    return a.ack().vector;
}

TEST(Exits, X2apicSelfIpiAndEoiTakeNoExitWithVid)
{
    TestVm vm(1, opts(false));
    enable(vm.b(0), true);
    ApicvBackend& a = vm.b(0);
    a.enter_guest();
    const Exits before = exits(a);
    EXPECT_TRUE(a.msr_write(0x83F, 0x40).is_ok());  // SELF_IPI
    EXPECT_EQ(take(a), 0x40);
    EXPECT_TRUE(a.msr_write(0x80B, 0).is_ok());  // EOI
    EXPECT_EQ(exits(a) - before, Exits{});
    EXPECT_EQ(stat(a, "self_ipi_virtualized"), 1u);
    EXPECT_EQ(stat(a, "eoi_virtualized"), 1u);
    EXPECT_EQ(vm.platform.ipi_count(), 0u);
    EXPECT_EQ(vm.b(0).vmcs().gis().raw, 0u);
}

TEST(Exits, XapicSelfIpiThroughIcrTakesNoExitWithVid)
{
    TestVm vm(1, opts(false));
    enable(vm.b(0), false);
    ApicvBackend& a = vm.b(0);
    const Exits before = exits(a);
    a.mmio_write(kBase + reg::kIcrLow, 4, (1u << 18) | 0x41);  // shorthand self, fixed
    EXPECT_EQ(take(a), 0x41);
    a.mmio_write(kBase + reg::kEoi, 4, 0);
    EXPECT_EQ(exits(a) - before, Exits{});
}

TEST(Exits, X2apicSelfIpiWithoutX2apicVirtualizationExits)
{
    TestVm vm(1, opts(false, true, false));
    enable(vm.b(0), true);
    ApicvBackend& a = vm.b(0);
    const Exits before = exits(a);
    a.msr_write(0x83F, 0x40);
    EXPECT_EQ(take(a), 0x40);
    a.msr_write(0x80B, 0);
    Exits want;
    want.wrmsr = 2;
    EXPECT_EQ(exits(a) - before, want);
}

// xAPIC ICR IPI to a running vCPU: one APIC-write exit without IPIv, none with it.
TEST(Exits, XapicIpiToRunningVcpu)
{
    for (const bool ipiv : {false, true}) {
        TestVm vm(2, opts(ipiv, true));
        enable(vm.b(0), false);
        enable(vm.b(1), false);
        vm.b(1).enter_guest();
        const Exits s0 = exits(vm.b(0));
        const Exits s1 = exits(vm.b(1));
        vm.b(0).mmio_write(kBase + reg::kIcrHigh, 4, 1u << 24);
        vm.b(0).mmio_write(kBase + reg::kIcrLow, 4, 0x4000u | 0x60);
        Exits want;
        want.write = ipiv ? 0 : 1;
        EXPECT_EQ(exits(vm.b(0)) - s0, want) << "ipiv " << ipiv;
        EXPECT_EQ(exits(vm.b(1)) - s1, Exits{}) << "posted: no exit on the target";
        EXPECT_EQ(vm.notifiers[1]->kick_count(), 1u);
        EXPECT_EQ(stat(vm.b(0), "ipiv_completed"), ipiv ? 1u : 0u);
        EXPECT_EQ(vm.platform.ipi_count(), ipiv ? 0u : 1u);
        EXPECT_EQ(vm.b(1).pending_vector(), 0x60);
        // ICR reads back what was written, without an exit.
        EXPECT_EQ(vm.b(0).mmio_read(kBase + reg::kIcrLow, 4).value, 0x4060u);
        EXPECT_EQ(exits(vm.b(0)) - s0, want);
    }
}

TEST(Exits, X2apicIpiToRunningVcpu)
{
    for (const bool ipiv : {false, true}) {
        TestVm vm(2, opts(ipiv, true));
        enable(vm.b(0), true);
        enable(vm.b(1), true);
        vm.b(1).enter_guest();
        const Exits s0 = exits(vm.b(0));
        vm.b(0).msr_write(0x830, (1ULL << 32) | 0x61);
        Exits want;
        want.wrmsr = ipiv ? 0 : 1;  // without IPIv the ICR MSR is intercepted
        EXPECT_EQ(exits(vm.b(0)) - s0, want);
        EXPECT_EQ(vm.b(1).pending_vector(), 0x61);
        EXPECT_EQ(vm.b(0).msr_read(0x830).value, (1ULL << 32) | 0x61);
    }
}

// SDM Vol3 30.4.3.2 "APIC-Write Emulation" for offset 300H: self-IPI virtualization (VID),
// IPI virtualization (IPIv), or an APIC-write VM exit.
TEST(Exits, IcrLowWriteEmulationTable)
{
    enum Want { Self, Ipiv, Exit };
    struct Case {
        uint32_t lo;
        uint32_t hi;
        Want want;
        const char* what;
    };
    constexpr uint32_t kSelf = 1u << 18;
    const Case cases[] = {
        {kSelf | 0x40, 0, Self, "self, fixed, edge"},
        {kSelf | 0x840, 0, Self, "destination mode is not looked at"},
        {kSelf | 0x4040, 0, Self, "level (assert) bit is not looked at"},
        {kSelf | 0x8040, 0, Exit, "level-triggered"},
        {kSelf | 0x0F, 0, Exit, "vector 0-15"},
        {kSelf | 0x1040, 0, Exit, "delivery status set"},
        {kSelf | 0x2040, 0, Exit, "reserved bit 13"},
        {kSelf | 0x100040, 0, Exit, "reserved bit 20"},
        {kSelf | 0x140, 0, Exit, "lowest priority"},
        {0x4040, 1u << 24, Ipiv, "physical, no shorthand"},
        {0x0040, 1u << 24, Ipiv, "assert bit is not looked at"},
        {0xC040, 1u << 24, Exit, "level-triggered"},
        {0x4840, 1u << 24, Exit, "logical"},
        {0x4040 | (2u << 18), 0, Exit, "all including self"},
        {0x4040, 5u << 24, Exit, "no PID-pointer entry"},
    };
    for (const Case& c : cases) {
        TestVm vm(2, ApicvOptions{});
        enable(vm.b(0), false);
        enable(vm.b(1), false);
        const Exits before = exits(vm.b(0));
        vm.b(0).mmio_write(kBase + apic::reg::kIcrHigh, 4, c.hi);
        vm.b(0).mmio_write(kBase + apic::reg::kIcrLow, 4, c.lo);
        EXPECT_EQ((exits(vm.b(0)) - before).write, c.want == Exit ? 1u : 0u) << c.what;
        EXPECT_EQ(stat(vm.b(0), "self_ipi_virtualized"), c.want == Self ? 1u : 0u) << c.what;
        EXPECT_EQ(stat(vm.b(0), "ipiv_completed"), c.want == Ipiv ? 1u : 0u) << c.what;
    }
}

TEST(Exits, X2apicSelfIpiWithAnIllegalVectorExitsAndSetsEsr)
{
    TestVm vm(1, ApicvOptions{});
    enable(vm.b(0), true);
    ApicvBackend& a = vm.b(0);
    const Exits before = exits(a);
    EXPECT_TRUE(a.msr_write(0x83F, 0x0E).is_ok());
    EXPECT_EQ((exits(a) - before).write, 1u);
    EXPECT_TRUE(a.msr_write(0x83F, 0x100).is_gp());  // reserved bits: #GP without an exit
    EXPECT_EQ((exits(a) - before).total(), 1u);
    a.msr_write(0x828, 0);
    EXPECT_EQ(a.msr_read(0x828).value,
              apic::esr::kSendIllegalVector | apic::esr::kReceiveIllegalVector);
}

TEST(Exits, IpiWithoutPostedInterruptsKicksWithAnExternalInterruptExit)
{
    TestVm vm(2, opts(false, false));
    enable(vm.b(0), false);
    enable(vm.b(1), false);
    vm.b(1).enter_guest();
    const Exits s1 = exits(vm.b(1));
    vm.b(0).mmio_write(kBase + reg::kIcrHigh, 4, 1u << 24);
    vm.b(0).mmio_write(kBase + reg::kIcrLow, 4, 0x4000u | 0x60);
    Exits want;
    want.ext = 1;
    EXPECT_EQ(exits(vm.b(1)) - s1, want);
    EXPECT_EQ(vm.notifiers[1]->kick_count(), 1u);
    EXPECT_EQ(stat(vm.b(1), "notifications"), 0u);
    EXPECT_EQ(vm.b(1).pending_vector(), 0x60);
}

TEST(Exits, IpivFallsBackToAnExitForWhatItCannotComplete)
{
    TestVm vm(2, opts(true));
    enable(vm.b(0), false);
    enable(vm.b(1), false);
    struct Case {
        uint32_t hi, lo;
        const char* what;
    };
    const Case cases[] = {
        {1u << 24, 0x4000u | 0x800u | 0x60, "logical"},
        {0, 0x4000u | (3u << 18) | 0x60, "all-excluding-self"},
        {1u << 24, 0x4000u | 0x400u, "NMI"},
        {1u << 24, 0x4000u | 0x05, "illegal vector"},
        {0xFFu << 24, 0x4000u | 0x60, "broadcast ID has no valid entry"},
        {7u << 24, 0x4000u | 0x60, "no vCPU with ID 7"},
    };
    for (const Case& c : cases) {
        const Exits s0 = exits(vm.b(0));
        vm.b(0).mmio_write(kBase + reg::kIcrHigh, 4, c.hi);
        vm.b(0).mmio_write(kBase + reg::kIcrLow, 4, c.lo);
        Exits want;
        want.write = 1;
        EXPECT_EQ(exits(vm.b(0)) - s0, want) << c.what;
    }
    EXPECT_EQ(stat(vm.b(0), "ipiv_completed"), 0u);
}

TEST(Exits, IpivDoesNotPostToASoftwareDisabledApic)
{
    TestVm vm(2, opts(true));
    enable(vm.b(0), false);  // vCPU 1 keeps SVR = 0xFF: software-disabled
    const Exits s0 = exits(vm.b(0));
    vm.b(0).mmio_write(kBase + reg::kIcrHigh, 4, 1u << 24);
    vm.b(0).mmio_write(kBase + reg::kIcrLow, 4, 0x4000u | 0x60);
    EXPECT_EQ((exits(vm.b(0)) - s0).write, 1u);
    EXPECT_EQ(vm.b(1).pending_vector(), std::nullopt);
    EXPECT_EQ(stat(vm.b(1), "irq_refused"), 1u);
}

TEST(Exits, LevelTriggeredEoiTakesOneEoiInducedExit)
{
    for (const bool x2 : {false, true}) {
        TestVm vm(1, opts(false));
        enable(vm.b(0), x2);
        ApicvBackend& a = vm.b(0);
        a.deliver(fixed(0x70, apic::Trigger::Level, apic::Source::IoApic));
        EXPECT_TRUE(a.vmcs().eoi_exit_bit(0x70));
        EXPECT_EQ(take(a), 0x70);
        const Exits before = exits(a);
        if (x2) {
            a.msr_write(0x80B, 0);
        } else {
            a.mmio_write(kBase + reg::kEoi, 4, 0);
        }
        Exits want;
        want.eoi = 1;
        EXPECT_EQ(exits(a) - before, want);
        EXPECT_EQ(vm.platform.eois, std::vector<uint8_t>{0x70});
        // An edge vector's EOI is virtualized without an exit.
        a.deliver(fixed(0x71));
        EXPECT_FALSE(a.vmcs().eoi_exit_bit(0x71));
        EXPECT_EQ(take(a), 0x71);
        const Exits b2 = exits(a);
        if (x2) {
            a.msr_write(0x80B, 0);
        } else {
            a.mmio_write(kBase + reg::kEoi, 4, 0);
        }
        EXPECT_EQ(exits(a) - b2, Exits{});
    }
}

TEST(Exits, DirectedEoiExitsButIsNotBroadcast)
{
    TestVm vm(1, opts(false));
    enable(vm.b(0), true);
    ApicvBackend& a = vm.b(0);
    a.msr_write(0x80F, 0x11FF);  // SVR[12]: suppress EOI broadcast
    a.deliver(fixed(0x70, apic::Trigger::Level, apic::Source::IoApic));
    EXPECT_EQ(take(a), 0x70);
    const Exits before = exits(a);
    a.msr_write(0x80B, 0);
    EXPECT_EQ((exits(a) - before).eoi, 1u);
    EXPECT_TRUE(vm.platform.eois.empty());
}

TEST(Exits, IoapicRoutedVectorsSetTheBitmap)
{
    TestVm vm(1, opts(false));
    apic::VectorWords w{};
    apic::set_vector(w, 0x90);
    vm.b(0).set_ioapic_eoi_vectors(w);
    EXPECT_TRUE(vm.b(0).vmcs().eoi_exit_bit(0x90));
    EXPECT_EQ(vm.b(0).vmcs().eoi_exit2.value, 1ULL << (0x90 - 128));
}

TEST(Exits, RegisterReadsAndWrites)
{
    TestVm vm(1, opts(false));
    enable(vm.b(0), false);
    ApicvBackend& a = vm.b(0);
    struct Case {
        bool write;
        uint32_t off;
        unsigned size;
        Exits want;
        const char* what;
    };
    Exits none, access, write;
    access.access = 1;
    write.write = 1;
    const Case cases[] = {
        {false, reg::kId, 4, none, "ID read"},
        {false, reg::kTpr, 4, none, "TPR read"},
        {false, reg::kTpr + 1, 1, none, "TPR byte read"},
        {false, reg::kPpr, 4, access, "PPR read is not virtualized"},
        {false, reg::kIsr + 0x10, 4, none, "ISR read"},
        {false, reg::kLvtTimer, 4, none, "LVT read"},
        {false, reg::kTimerCurrent, 4, access, "TMCCT read"},
        {false, reg::kLvtCmci, 4, access, "CMCI read is not in the list either"},
        {false, reg::kIsr + 4, 4, access, "padding"},
        {false, reg::kIsr, 8, access, "8-byte read"},
        {true, reg::kTpr, 4, none, "TPR write"},
        {true, reg::kLvtTimer, 4, write, "LVT write"},
        {true, reg::kTimerInitial, 4, write, "TMICT write"},
        {true, reg::kLdr, 4, write, "LDR write"},
        {true, reg::kLvtCmci, 4, access, "CMCI write is not in the list"},
        {true, reg::kIcrHigh, 4, none, "ICR high"},
        {true, reg::kIrr, 4, access, "IRR write"},
        {true, 0x3F0, 4, access, "reserved"},
    };
    for (const Case& c : cases) {
        const Exits before = exits(a);
        if (c.write) {
            a.mmio_write(kBase + c.off, c.size, c.off == reg::kLvtTimer ? 0x10000 : 0);
        } else {
            a.mmio_read(kBase + c.off, c.size);
        }
        EXPECT_EQ(exits(a) - before, c.want) << c.what;
    }
}

TEST(Exits, X2apicMsrIntercepts)
{
    TestVm vm(1, opts(false));
    enable(vm.b(0), true);
    ApicvBackend& a = vm.b(0);
    Exits none, rd, wr;
    rd.rdmsr = 1;
    wr.wrmsr = 1;
    struct Case {
        bool write;
        uint32_t msr;
        Exits want;
        bool gp;
    };
    const Case cases[] = {
        {false, 0x802, none, false}, {false, 0x80A, none, false}, {false, 0x839, rd, false},
        {false, 0x80B, rd, true},    {false, 0x83F, rd, true},    {false, 0x80E, rd, true},
        {false, 0x1B, rd, false},    {true, 0x808, none, false},  {true, 0x832, wr, false},
        {true, 0x80B, none, false},  {true, 0x808, none, true},   {true, 0x838, wr, false},
    };
    for (const Case& c : cases) {
        const Exits before = exits(a);
        const uint64_t v = c.write && c.gp ? 0x100 : (c.msr == 0x832 ? 0x10000 : 0);
        const apic::AccessResult r = c.write ? a.msr_write(c.msr, v) : a.msr_read(c.msr);
        EXPECT_EQ(exits(a) - before, c.want) << std::hex << c.msr;
        EXPECT_EQ(r.is_gp(), c.gp) << std::hex << c.msr;
    }
}

TEST(Exits, TprBelowThresholdWithoutVid)
{
    TestVm vm(1, opts(false, false, true, false));
    enable(vm.b(0), false);
    ApicvBackend& a = vm.b(0);
    a.mmio_write(kBase + reg::kTpr, 4, 0x80);
    a.deliver(fixed(0x50));
    a.enter_guest();  // masked: threshold = class 5
    EXPECT_EQ(a.pending_vector(), std::nullopt);
    EXPECT_EQ(a.vmcs().tpr_threshold.value, 5u);
    const Exits before = exits(a);
    a.mmio_write(kBase + reg::kTpr, 4, 0x60);  // still >= threshold: no exit
    EXPECT_EQ(exits(a) - before, Exits{});
    a.mmio_write(kBase + reg::kTpr, 4, 0x40);  // below: exit 43
    Exits want;
    want.tpr = 1;
    EXPECT_EQ(exits(a) - before, want);
    EXPECT_EQ(take(a), 0x50);
    // Without VID the EOI is an APIC-write exit... no: without APIC-register virtualization
    // it is not virtualized at all: an APIC-access exit.
    const Exits b2 = exits(a);
    a.mmio_write(kBase + reg::kEoi, 4, 0);
    Exits acc;
    acc.access = 1;
    EXPECT_EQ(exits(a) - b2, acc);
}

TEST(Exits, ZeroExitPerPostedDeviceInterrupt)
{
    // 1,000 device interrupts to a running vCPU: no exits at all with posted interrupts; one
    // external-interrupt exit per kick without them.
    for (const bool pi : {true, false}) {
        TestVm vm(1, opts(false, pi));
        enable(vm.b(0), true);
        ApicvBackend& a = vm.b(0);
        const Exits before = exits(a);
        for (int i = 0; i < 1000; ++i) {
            a.enter_guest();
            a.deliver(fixed(0x80));
            EXPECT_EQ(a.ack().vector, 0x80);
            a.msr_write(0x80B, 0);
            a.leave_guest();
        }
        Exits want;
        want.ext = pi ? 0 : 1000;
        EXPECT_EQ(exits(a) - before, want);
    }
}

}  // namespace
}  // namespace hv::vmx::test
