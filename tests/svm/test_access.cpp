// Register access: which accesses AVIC accelerates, which trap, which fault (APM Vol2 15.29.4,
// 15.29.9.2), the exit counts per scenario, and that the guest sees what `emulated` shows.
#include "tests/svm/avic_fixture.hpp"

namespace hv::svm::test {
namespace {

using namespace apic::reg;

TEST(AvicAccess, ClassificationTable)
{
    struct Case {
        uint32_t off;
        AvicAccess read, write;
    };
    const auto A = AvicAccess::Accelerated;
    const auto T = AvicAccess::Trap;
    const auto F = AvicAccess::Fault;
    const Case cases[] = {
        {kId, A, T},           {kVersion, A, F},      {kTpr, A, A},         {kApr, F, F},
        {kPpr, A, F},          {kEoi, A, A},          {kRrd, F, T},         {kLdr, A, T},
        {kDfr, A, T},          {kSvr, A, T},          {kIsr, A, F},         {kIsr + 0x70, A, F},
        {kTmr + 0x10, A, F},   {kIrr + 0x30, A, F},   {kEsr, A, T},         {kLvtCmci, A, T},
        {kIcrLow, A, A},       {kIcrHigh, A, A},      {kLvtTimer, A, T},    {kLvtThermal, A, T},
        {kLvtPerf, A, T},      {kLvtLint0, A, T},     {kLvtLint1, A, T},    {kLvtError, A, T},
        {kTimerInitial, A, T}, {kTimerCurrent, F, F}, {kTimerDivide, A, T}, {kSelfIpi, F, F},
        {0x000, F, F},         {0x3C0, F, F},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(classify_read(c.off, true), c.read) << std::hex << c.off;
        EXPECT_EQ(classify_write(c.off, false, true), c.write) << std::hex << c.off;
    }
    EXPECT_EQ(classify_write(kEoi, true, true), T);  // level-triggered EOI traps
    EXPECT_EQ(classify_read(kLvtCmci, false), F);    // no CMCI LVT in this CPU model
}

TEST(AvicAccess, LevelTriggeredEoiTrapsOnce)
{
    AvicFixture vm(1);
    vm.enable_all();
    vm[0].enter_guest();
    vm[0].deliver(apic::Interrupt{0x70, apic::DeliveryMode::Fixed, apic::Trigger::Level, true,
                                  apic::Source::IoApic});
    EXPECT_EQ(vm[0].ack().vector, 0x70);
    vm.mark();
    vm.wr(0, kEoi, 0);
    EXPECT_EQ(vm.exits(0), 1u);
    EXPECT_EQ(vm[0].exits(AvicExit::NoaccelTrap), 2u);  // + the SVR write
    const VmcbControl c = vm[0].vmcb();
    EXPECT_EQ(c.exit_code, 0x402u);
    EXPECT_EQ(c.exit_info_1, 0x1000000B0ULL);
    EXPECT_EQ(c.exit_info_2, 0x70u);
    EXPECT_EQ(apic::counter_value(vm[0].exit_counters(), "avic_noaccel_trap_eoi"), 1u);
    ASSERT_EQ(vm.platform.eois.size(), 1u);
    EXPECT_EQ(vm.platform.eois[0], 0x70);
    // Edge-triggered: accelerated.
    vm[0].deliver(apic::Interrupt{0x71, apic::DeliveryMode::Fixed, apic::Trigger::Edge, true,
                                  apic::Source::Msi});
    EXPECT_EQ(vm[0].ack().vector, 0x71);
    vm.wr(0, kEoi, 0);
    EXPECT_EQ(vm.exits(0), 1u);
}

TEST(AvicAccess, X2avicLvtTimerWriteExitsOnce)
{
    AvicFixture vm(1, AvicOptions{true, false});
    vm.enable_all();
    vm.to_x2apic(0);
    vm.mark();
    vm[0].msr_write(0x832, 0x20030);  // periodic, vector 0x30
    EXPECT_EQ(vm.exits(0), 1u);
    EXPECT_EQ(vm[0].exits(AvicExit::NoaccelTrap), 2u);
    EXPECT_EQ(vm[0].vmcb().exit_info_1, 0x100000320ULL);
    EXPECT_EQ(apic::counter_value(vm[0].exit_counters(), "avic_noaccel_trap_lvt_timer"), 1u);
    EXPECT_EQ(apic::counter_value(vm[0].exit_counters(), "avic_noaccel_trap_svr"), 1u);
    // Accelerated x2APIC accesses: TPR write, reads of ID/LDR/TPR/PPR/ISR/ICR.
    vm[0].msr_write(0x808, 0x20);
    for (uint32_t msr : {0x802u, 0x80Du, 0x808u, 0x80Au, 0x810u, 0x830u, 0x832u}) {
        EXPECT_TRUE(vm[0].msr_read(msr).is_ok()) << std::hex << msr;
    }
    EXPECT_EQ(vm.exits(0), 1u);
    EXPECT_EQ(vm[0].msr_read(0x832).value, 0x20030u);
    EXPECT_EQ(vm[0].msr_read(0x808).value, 0x20u);
    // TMCCT: fault. Reserved MSR: fault, #GP.
    EXPECT_TRUE(vm[0].msr_read(0x839).is_ok());
    EXPECT_TRUE(vm[0].msr_read(0x831).is_gp());
    EXPECT_EQ(vm[0].exits(AvicExit::NoaccelFaultRead), 2u);
    // IA32_APIC_BASE stays intercepted.
    vm[0].msr_read(apic::kMsrApicBase);
    EXPECT_EQ(vm[0].exits(AvicExit::Msr), 2u);  // + the switch to x2APIC
}

TEST(AvicAccess, XapicExitsPerRegister)
{
    AvicFixture vm(1);
    vm.enable_all();
    vm.wr(0, kTpr, 0x30);
    EXPECT_EQ(vm.exits(0), 0u);
    EXPECT_EQ(vm[0].vmcb().int_ctl & int_ctl::kVTprMask, 3u);  // V_TPR = TPR[7:4]
    for (uint32_t off : {kId, kVersion, kTpr, kPpr, kLdr, kDfr, kSvr, kIsr, kIrr, kEsr, kIcrLow,
                         kIcrHigh, kLvtTimer, kTimerInitial, kTimerDivide}) {
        vm.rd(0, off);
    }
    EXPECT_EQ(vm.exits(0), 0u);
    vm.rd(0, kTimerCurrent);
    vm.rd(0, kApr);
    EXPECT_EQ(vm[0].exits(AvicExit::NoaccelFaultRead), 2u);
    EXPECT_EQ(apic::counter_value(vm[0].exit_counters(), "avic_noaccel_fault_tmcct"), 1u);
    EXPECT_EQ(apic::counter_value(vm[0].exit_counters(), "avic_noaccel_fault_apr"), 1u);
    vm.wr(0, kLvtTimer, 0x30);
    vm.wr(0, kTimerInitial, 1000);
    vm.wr(0, kTimerDivide, 0xB);
    EXPECT_EQ(vm[0].exits(AvicExit::NoaccelTrap), 4u);  // + SVR
    vm.wr(0, kVersion, 0);
    EXPECT_EQ(vm[0].exits(AvicExit::NoaccelFaultWrite), 1u);
    EXPECT_EQ(vm[0].vmcb().exit_info_1, 0x100000030ULL);
}

TEST(AvicAccess, ReadsShowPostedIrrWithoutExit)
{
    AvicFixture vm(1);
    vm.enable_all();
    vm.vm.post_interrupt(0, 0x99);
    EXPECT_EQ(vm.rd(0, kIrr + 0x40), 1u << (0x99 - 0x80));
    EXPECT_EQ(vm.exits(0), 0u);
}

TEST(AvicAccess, HypervisorTimerDeliversThroughThePage)
{
    AvicFixture vm(1);
    vm.enable_all();
    vm.wr(0, kLvtTimer, 0x33);
    vm.wr(0, kTimerDivide, 0xB);  // divide by 1
    vm.wr(0, kTimerInitial, 100);
    ASSERT_EQ(vm[0].timer_deadline(), 100u);
    ASSERT_TRUE(vm[0].block());
    vm.clock.ns = 100;
    vm[0].timer_fired();
    EXPECT_TRUE(vm.irr_in_page(0, 0x33));
    EXPECT_EQ(vm.notifiers[0].wakes.load(), 1);
    vm[0].unblock();
    EXPECT_EQ(vm[0].pending_vector(), 0x33);
}

// The same guest operations on `avic` and `emulated` give the same register values and state.
struct Pair {
    FakeClock clock;
    RecordingNotifier na, ne;
    RoutingPlatform pa, pe;
    AvicVm vm{1, AvicOptions{}};
    std::unique_ptr<apic::ApicBackend> avic;
    std::unique_ptr<apic::ApicBackend> emu;
    Pair()
    {
        apic::LocalApicConfig cfg;
        cfg.bsp = true;
        avic = vm.make_backend(0, cfg, clock, pa, na);
        emu = std::make_unique<apic::EmulatedApic>(0, cfg, clock, pe, ne);
        pa.backends.push_back(avic.get());
        pe.backends.push_back(emu.get());
    }
    void wr(uint32_t off, uint32_t v)
    {
        avic->mmio_write(kApicBase + off, 4, v);
        emu->mmio_write(kApicBase + off, 4, v);
    }
    void deliver(const apic::Interrupt& i)
    {
        avic->deliver(i);
        emu->deliver(i);
    }
};

TEST(AvicAccess, SameRegistersAsEmulated)
{
    Pair p;
    p.wr(kSvr, 0x1FF);
    p.wr(kTpr, 0x25);
    p.wr(kLdr, 0x0F000000);
    p.wr(kDfr, 0x0FFFFFFF);
    p.wr(kLvtLint0, 0x8700);
    p.wr(kLvtTimer, 0x20040);
    p.wr(kTimerDivide, 0x3);
    p.wr(kTimerInitial, 5000);
    p.wr(kIcrHigh, 0x03000000);
    p.wr(0x3C0, 1);  // reserved: ESR illegal register on both
    p.wr(kEsr, 0);
    p.deliver({0x80, apic::DeliveryMode::Fixed, apic::Trigger::Level, true, apic::Source::IoApic});
    p.deliver({0x51, apic::DeliveryMode::Fixed, apic::Trigger::Edge, true, apic::Source::Msi});
    p.deliver({0x22, apic::DeliveryMode::Fixed, apic::Trigger::Edge, true, apic::Source::Msi});
    EXPECT_EQ(p.avic->ack().vector, p.emu->ack().vector);
    p.clock.ns = 777;
    for (uint32_t off = 0; off < 0x400; off += 0x10) {
        for (uint32_t in : {0u, 1u, 2u, 4u, 8u, 12u, 14u}) {
            for (unsigned size : {1u, 2u, 4u}) {
                const auto a = p.avic->mmio_read(kApicBase + off + in, size);
                const auto e = p.emu->mmio_read(kApicBase + off + in, size);
                EXPECT_EQ(a.value, e.value) << std::hex << off + in << " size " << size;
            }
        }
    }
    p.clock.ns = 900;
    const apic::ApicState a = p.avic->flatten();
    const apic::ApicState e = p.emu->flatten();
    EXPECT_EQ(a, e) << apic::describe_difference(a, e);
}

}  // namespace
}  // namespace hv::svm::test
