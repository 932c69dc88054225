// How an interrupt reaches another vCPU under AVIC: the IPI engine (IRR bit in the target's
// backing page, doorbell if IsRunning) and AVIC_INCOMPLETE_IPI — every cause with its EXITINFO
// values (APM Vol2 15.29.4.3, 15.29.9.1) and the exact exit counts per scenario.
#include "tests/svm/avic_fixture.hpp"

namespace hv::svm::test {
namespace {

using apic::reg::kIcrLow;
using apic::reg::kLdr;

constexpr uint32_t kLogical = 0x800;
constexpr uint32_t kSelf = 1u << 18;
constexpr uint32_t kAllIncl = 2u << 18;
constexpr uint32_t kAllExcl = 3u << 18;
constexpr uint32_t kNmi = 4u << 8;
constexpr uint32_t kLowest = 1u << 8;
constexpr uint32_t kLevelAssert = 0xC000;

uint64_t info1(uint8_t dest, uint32_t low)
{
    return (static_cast<uint64_t>(dest) << 56) | low;
}

TEST(AvicIpi, ToRunningVcpuTakesNoExit)
{
    AvicFixture vm(2);
    vm.enable_all();
    vm[0].enter_guest();
    vm[1].enter_guest();
    vm.ipi(0, 1, 0x40);
    EXPECT_EQ(vm.all_exits(), 0u);
    EXPECT_TRUE(vm.irr_in_page(1, 0x40));
    EXPECT_EQ(vm.notifiers[1].kicks.load(), 1);  // the doorbell
    EXPECT_EQ(vm.notifiers[1].wakes.load(), 0);
    EXPECT_EQ(vm.vm.stat(1, AvicStat::Doorbells), 1u);
    EXPECT_EQ(vm.vm.stat(0, AvicStat::IpiAccelerated), 1u);
    EXPECT_EQ(vm[1].pending_vector(), 0x40);
    EXPECT_EQ(vm[1].ack().vector, 0x40);
    EXPECT_FALSE(vm.irr_in_page(1, 0x40));
    EXPECT_EQ(vm.rd(1, apic::reg::kIsr + 0x20), 1u);  // ISR word 2, from the page
    vm.wr(1, apic::reg::kEoi, 0);                     // edge EOI: accelerated
    EXPECT_EQ(vm.all_exits(), 0u);
    EXPECT_EQ(vm.rd(1, apic::reg::kIsr + 0x20), 0u);
}

TEST(AvicIpi, ToHaltedVcpuTakesOneIncompleteIpi)
{
    AvicFixture vm(2);
    vm.enable_all();
    vm[0].enter_guest();
    ASSERT_TRUE(vm[1].block());
    const uint64_t target_exits = vm[1].total_exits();  // its HLT
    vm.ipi(0, 1, 0x41);
    EXPECT_EQ(vm.exits(0), 1u);
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiNotRunning), 1u);
    const VmcbControl c = vm[0].vmcb();
    EXPECT_EQ(c.exit_code, 0x401u);
    EXPECT_EQ(c.exit_info_1, info1(1, 0x41));
    EXPECT_EQ(c.exit_info_2, (1ULL << 32) | 1);
    EXPECT_TRUE(vm.irr_in_page(1, 0x41));  // delivered before the exit
    EXPECT_EQ(vm.notifiers[1].wakes.load(), 1);
    EXPECT_EQ(vm.notifiers[1].kicks.load(), 0);
    EXPECT_EQ(vm[1].total_exits(), target_exits);
    EXPECT_EQ(vm.platform.ipi_count(), 0u);  // nothing re-sent by software
    vm[1].unblock();
    EXPECT_EQ(vm[1].pending_vector(), 0x41);
}

TEST(AvicIpi, Erratum1235EveryCrossVcpuIpiExits)
{
    AvicFixture vm(3, AvicOptions{false, true});
    vm.enable_all();
    for (std::size_t i = 0; i < 3; ++i) {
        vm[i].enter_guest();
    }
    vm.ipi(0, 1, 0x43);
    EXPECT_EQ(vm.exits(0), 1u);
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiNotRunning), 1u);
    EXPECT_EQ(vm[0].vmcb().exit_info_2, (1ULL << 32) | 1);
    EXPECT_EQ(vm.notifiers[1].kicks.load(), 1);  // the hypervisor kicks the running target
    EXPECT_EQ(vm.vm.schedule(1).kicks(), 1u);
    EXPECT_EQ(vm.vm.stat(1, AvicStat::Doorbells), 0u);
    EXPECT_TRUE(vm.irr_in_page(1, 0x43));
    // Broadcast excluding self: one exit for the whole IPI, both targets kicked.
    vm.ipi(0, 0, kAllExcl | 0x44);
    EXPECT_EQ(vm.exits(0), 2u);
    EXPECT_TRUE(vm.irr_in_page(1, 0x44) && vm.irr_in_page(2, 0x44));
    EXPECT_EQ(vm.notifiers[2].kicks.load(), 1);
    // Self-IPIs stay accelerated.
    vm.ipi(0, 0, kSelf | 0x45);
    EXPECT_EQ(vm.exits(0), 2u);
    EXPECT_EQ(vm[0].pending_vector(), 0x45);
    // A halted target is woken.
    while (vm[2].pending_vector()) {
        vm[2].ack();
        vm.wr(2, apic::reg::kEoi, 0);
    }
    vm[2].leave_guest();
    ASSERT_TRUE(vm[2].block());
    vm.ipi(0, 2, 0x46);
    EXPECT_EQ(vm.exits(0), 3u);
    EXPECT_EQ(vm.notifiers[2].wakes.load(), 1);
}

TEST(AvicIpi, InvalidTargetPhysical)
{
    AvicFixture vm(2);
    vm.enable_all();
    vm[0].enter_guest();
    vm.ipi(0, 7, 0x47);
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiInvalidTarget), 1u);
    EXPECT_EQ(vm[0].vmcb().exit_info_1, info1(7, 0x47));
    EXPECT_EQ(vm[0].vmcb().exit_info_2, (2ULL << 32) | 7);
    EXPECT_EQ(vm.platform.ipi_count(), 1u);  // the hypervisor emulates it: reaches nobody
    EXPECT_FALSE(vm.irr_in_page(1, 0x47));
}

TEST(AvicIpi, InvalidBackingPage)
{
    AvicFixture vm(2);
    vm.enable_all();
    vm[0].enter_guest();
    vm[1].enter_guest();
    vm.vm.poke_physical_entry(1, encode(PhysicalEntry{1, 0x42, true, true}));
    vm.ipi(0, 1, 0x48);
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiInvalidBackingPage), 1u);
    EXPECT_EQ(vm[0].vmcb().exit_info_2, (3ULL << 32) | 1);
    // Software completes the IPI through the platform: vCPU 1 still gets it (once).
    EXPECT_EQ(vm.platform.ipi_count(), 1u);
    EXPECT_EQ(vm[1].pending_vector(), 0x48);
    EXPECT_EQ(vm.vm.stat(1, AvicStat::PostedIpi), 0u);
    EXPECT_EQ(vm.vm.stat(1, AvicStat::PostedDevice), 1u);
}

TEST(AvicIpi, InvalidVector)
{
    AvicFixture vm(2);
    vm.enable_all();
    vm[0].enter_guest();
    vm.ipi(0, 1, 0x05);
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiInvalidVector), 1u);
    EXPECT_EQ(vm[0].vmcb().exit_info_2, 4ULL << 32);
    // Emulated as the SDM says: send-illegal in the sender, receive-illegal in the receiver.
    vm.wr(0, apic::reg::kEsr, 0);
    vm.wr(1, apic::reg::kEsr, 0);
    EXPECT_EQ(vm.rd(0, apic::reg::kEsr), apic::esr::kSendIllegalVector);
    EXPECT_EQ(vm.rd(1, apic::reg::kEsr), apic::esr::kReceiveIllegalVector);
}

TEST(AvicIpi, InvalidInterruptTypeIsEmulated)
{
    struct Case {
        uint32_t low;
        const char* what;
    };
    const Case cases[] = {{kNmi, "NMI"},
                          {kLowest | 0x49, "lowest priority"},
                          {kLevelAssert | 0x4A, "level-triggered fixed"},
                          {(5u << 8) | 0x4000, "INIT"}};
    for (const auto& c : cases) {
        AvicFixture vm(2);
        vm.enable_all();
        vm[0].enter_guest();
        vm[1].enter_guest();
        vm.ipi(0, 1, c.low);
        EXPECT_EQ(vm.exits(0), 1u) << c.what;
        EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiInvalidIntType), 1u) << c.what;
        EXPECT_EQ(vm[0].vmcb().exit_info_2, 0u) << c.what;
        EXPECT_EQ(vm.platform.ipi_count(), 1u) << c.what;
    }
    AvicFixture vm(2);
    vm.enable_all();
    vm.ipi(0, 1, kNmi);
    EXPECT_TRUE(vm[1].take_events().nmi);
    vm.ipi(0, 1, kLevelAssert | 0x4A);
    EXPECT_EQ(vm[1].pending_vector(), 0x4A);
    EXPECT_EQ(vm.rd(1, apic::reg::kTmr + 0x20), 1u << 0xA);  // level: TMR set by the hypervisor
    // A reserved delivery mode sends nothing, still one exit.
    vm.mark();
    vm.ipi(0, 1, (3u << 8) | 0x4B);
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiInvalidIntType), 3u);
    EXPECT_EQ(vm.exits(0), 1u);
}

TEST(AvicIpi, LogicalFlatMulticast)
{
    AvicFixture vm(3);
    vm.enable_all();
    vm.wr(1, kLdr, 0x02000000);
    vm.wr(2, kLdr, 0x04000000);
    for (std::size_t i = 0; i < 3; ++i) {
        vm[i].enter_guest();
    }
    vm.mark();
    vm.ipi(0, 0x06, kLogical | 0x50);
    EXPECT_EQ(vm.all_exits(), 0u);
    EXPECT_TRUE(vm.irr_in_page(1, 0x50) && vm.irr_in_page(2, 0x50));
    EXPECT_FALSE(vm.irr_in_page(0, 0x50));
    EXPECT_EQ(vm.notifiers[1].kicks.load() + vm.notifiers[2].kicks.load(), 2);
}

TEST(AvicIpi, OneInvalidLogicalTargetFailsTheWholeIpi)
{
    AvicFixture vm(3);
    vm.enable_all();
    vm.wr(1, kLdr, 0x02000000);
    vm.wr(2, kLdr, 0x04000000);
    for (std::size_t i = 0; i < 3; ++i) {
        vm[i].enter_guest();
    }
    vm.mark();
    vm.ipi(0, 0x0E, kLogical | 0x51);  // bit 3 has no vCPU
    EXPECT_EQ(vm.exits(0), 1u);
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiInvalidTarget), 1u);
    EXPECT_EQ(vm[0].vmcb().exit_info_2, (2ULL << 32) | 3);
    // The hardware delivered to nobody; software delivered the IPI once to each real target.
    EXPECT_EQ(vm.vm.stat(1, AvicStat::PostedIpi) + vm.vm.stat(2, AvicStat::PostedIpi), 0u);
    EXPECT_EQ(vm.vm.stat(1, AvicStat::PostedDevice), 1u);
    EXPECT_EQ(vm.vm.stat(2, AvicStat::PostedDevice), 1u);
    EXPECT_EQ(vm[1].pending_vector(), 0x51);
    EXPECT_EQ(vm[2].pending_vector(), 0x51);
}

TEST(AvicIpi, LogicalCluster)
{
    AvicFixture vm(3);
    vm.enable_all();
    for (std::size_t i = 0; i < 3; ++i) {
        vm.wr(i, apic::reg::kDfr, 0x0FFFFFFF);
    }
    vm.wr(1, kLdr, 0x11000000);  // cluster 1, bit 0 -> index 4
    vm.wr(2, kLdr, 0x12000000);  // cluster 1, bit 1 -> index 5
    EXPECT_EQ(vm.vm.logical_entry(4), 0x80000001u);
    EXPECT_EQ(vm.vm.logical_entry(5), 0x80000002u);
    for (std::size_t i = 0; i < 3; ++i) {
        vm[i].enter_guest();
    }
    vm.mark();
    vm.ipi(0, 0x13, kLogical | 0x52);
    EXPECT_EQ(vm.all_exits(), 0u);
    EXPECT_TRUE(vm.irr_in_page(1, 0x52) && vm.irr_in_page(2, 0x52));
    vm.ipi(0, 0x14, kLogical | 0x53);  // cluster 1 bit 2: no entry
    EXPECT_EQ(vm[0].vmcb().exit_info_2, (2ULL << 32) | 6);
}

TEST(AvicIpi, BroadcastSkipsInvalidEntries)
{
    AvicFixture vm(3);
    vm.enable_all();
    for (std::size_t i = 0; i < 3; ++i) {
        vm[i].enter_guest();
    }
    vm.vm.poke_physical_entry(2, 0);  // a vCPU without a valid entry (a hypervisor bug)
    vm.ipi(0, 0, kAllExcl | 0x54);
    EXPECT_EQ(vm.all_exits(), 0u);  // silently skipped: the documented hardware behaviour
    EXPECT_TRUE(vm.irr_in_page(1, 0x54));
    EXPECT_FALSE(vm.irr_in_page(2, 0x54));
    vm.ipi(0, 0xFF, 0x55);  // physical broadcast includes the sender
    EXPECT_EQ(vm.all_exits(), 0u);
    EXPECT_TRUE(vm.irr_in_page(0, 0x55) && vm.irr_in_page(1, 0x55));
    vm.ipi(0, 0, kAllIncl | 0x56);
    EXPECT_TRUE(vm.irr_in_page(0, 0x56) && vm.irr_in_page(1, 0x56));
    EXPECT_EQ(vm.all_exits(), 0u);
}

TEST(AvicIpi, BroadcastToHaltedVcpusTakesOneExit)
{
    AvicFixture vm(4);
    vm.enable_all();
    vm[0].enter_guest();
    for (std::size_t i = 1; i < 4; ++i) {
        ASSERT_TRUE(vm[i].block());
    }
    vm.mark();
    vm.ipi(0, 0, kAllExcl | 0x57);
    EXPECT_EQ(vm.exits(0), 1u);
    EXPECT_EQ(vm[0].vmcb().exit_info_2, (1ULL << 32) | 1);  // the first target not running
    for (std::size_t i = 1; i < 4; ++i) {
        EXPECT_TRUE(vm.irr_in_page(i, 0x57));
        EXPECT_EQ(vm.notifiers[i].wakes.load(), 1);
    }
}

TEST(AvicIpi, SelfIpiAndSoftwareDisabledTarget)
{
    AvicFixture vm(2);
    vm.enable_all();
    vm[0].enter_guest();
    vm[1].enter_guest();
    vm.ipi(0, 0, kSelf | 0x60);
    EXPECT_EQ(vm.all_exits(), 0u);
    EXPECT_EQ(vm.vm.stat(0, AvicStat::IpiSelf), 1u);
    EXPECT_EQ(vm.notifiers[0].kicks.load(), 0);  // the sender sees its own IRR
    // A software-disabled target refuses the vector when it folds the page (as the emulated
    // backend refuses it at delivery): the bit does not stay.
    vm.wr(1, apic::reg::kSvr, 0xFF);
    vm.ipi(0, 1, 0x61);
    EXPECT_EQ(vm[1].pending_vector(), std::nullopt);
    EXPECT_FALSE(vm.irr_in_page(1, 0x61));
    EXPECT_EQ(vm.vm.stat(1, AvicStat::Refused), 1u);
}

TEST(AvicIpi, X2avicIcrMsr)
{
    AvicFixture vm(3, AvicOptions{true, false});
    vm.enable_all();
    for (std::size_t i = 0; i < 3; ++i) {
        vm.to_x2apic(i);
        vm[i].enter_guest();
    }
    vm.mark();
    vm[0].msr_write(0x830, (2ULL << 32) | 0x62);
    EXPECT_EQ(vm.all_exits(), 0u);
    EXPECT_TRUE(vm.irr_in_page(2, 0x62));
    // Logical: cluster 0, bits 1 and 2 -> physical IDs 1 and 2 (no logical table).
    vm[0].msr_write(0x830, (0x6ULL << 32) | kLogical | 0x63);
    EXPECT_EQ(vm.all_exits(), 0u);
    EXPECT_TRUE(vm.irr_in_page(1, 0x63) && vm.irr_in_page(2, 0x63));
    // SELF_IPI MSR: accelerated.
    vm[0].msr_write(0x83F, 0x64);
    EXPECT_EQ(vm.all_exits(), 0u);
    EXPECT_EQ(vm[0].pending_vector(), 0x64);
    // A 32-bit destination beyond the table: invalid target, EXITINFO1 = the 64-bit ICR.
    vm[0].msr_write(0x830, (0x300ULL << 32) | 0x65);
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiInvalidTarget), 1u);
    EXPECT_EQ(vm[0].vmcb().exit_info_1, (0x300ULL << 32) | 0x65);
    EXPECT_EQ(vm[0].vmcb().exit_info_2, (2ULL << 32) | 0x100);
}

TEST(AvicIpi, X2apicWithoutX2avicIsIntercepted)
{
    AvicFixture vm(2);
    vm.enable_all();
    vm.to_x2apic(0);
    vm.to_x2apic(1);
    vm[1].enter_guest();
    vm.mark();
    vm[0].msr_write(0x830, (1ULL << 32) | 0x66);
    EXPECT_EQ(vm[0].exits(AvicExit::Msr), 2u);  // + the IA32_APIC_BASE write
    EXPECT_EQ(vm.exits(0), 1u);
    EXPECT_EQ(vm.platform.ipi_count(), 1u);
    EXPECT_EQ(vm[1].pending_vector(), 0x66);  // posted by the hypervisor, doorbell
    EXPECT_EQ(vm.notifiers[1].kicks.load(), 1);
}

TEST(AvicIpi, OwnPhysicalIdInErratumModeTakesNoExit)
{
    AvicFixture vm(2, AvicOptions{false, true});
    vm.enable_all();
    vm[0].enter_guest();
    vm.ipi(0, 0, 0x70);  // physical destination = own ID: through the table, but self
    EXPECT_EQ(vm.exits(0), 0u);
    EXPECT_EQ(vm[0].pending_vector(), 0x70);
}

TEST(AvicIpi, UndefinedSenderDfrModelIsAnInvalidTarget)
{
    AvicFixture vm(2);
    vm.enable_all();
    vm.wr(1, kLdr, 0x01000000);
    vm.wr(0, apic::reg::kDfr, 0x5FFFFFFF);
    vm.mark();
    vm.ipi(0, 0x01, kLogical | 0x71);
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiInvalidTarget), 1u);
    // Software resolves with each receiver's own DFR (flat here): vCPU 1 gets it.
    EXPECT_EQ(vm[1].pending_vector(), 0x71);
}

TEST(AvicIpi, X2avicLogicalClusterBeyondTheTable)
{
    AvicFixture vm(2, AvicOptions{true, false});
    vm.enable_all();
    vm.to_x2apic(0);
    vm.to_x2apic(1);
    vm[0].msr_write(0x830, (0x00200001ULL << 32) | kLogical | 0x72);  // cluster 0x20 -> ID 0x200
    EXPECT_EQ(vm[0].exits(AvicExit::IncompleteIpiInvalidTarget), 1u);
    EXPECT_EQ(vm[0].vmcb().exit_info_2, (2ULL << 32) | (0x200 & 0x1FF));
}

}  // namespace
}  // namespace hv::svm::test
