// Guest-visible equality with the emulated backend, and flatten/restore across backends.
#include <gtest/gtest.h>

#include <random>

#include "apicv_fakes.hpp"
#include "test_helpers.hpp" // PrintTo(ApicState)

namespace hv::vmx::test {
namespace {

namespace reg = apic::reg;

// One vCPU whose IPIs come back to itself (resolve_ipi over its own dest_info()).
struct Pair {
    explicit Pair(const ApicvOptions& o) : vm(1, o)
    {
        apic::LocalApicConfig cfg;
        cfg.bsp = true;
        emu = std::make_unique<apic::EmulatedApic>(0, cfg, clock, pe, ne);
        acc = vm.make_backend(0, cfg, clock, pa, na);
        pe.backends = {emu.get()};
        pa.backends = {acc.get()};
    }
    FakeClock clock;
    RoutingPlatform pe, pa;
    RecordingNotifier ne, na;
    ApicvVm vm;
    std::unique_ptr<apic::ApicBackend> emu, acc;
};

// Values a well-behaved guest writes (4-byte aligned), per register.
uint32_t sane_value(uint32_t off, std::mt19937& rng)
{
    const uint32_t v = static_cast<uint32_t>(rng());
    switch (off) {
    case reg::kTpr:
        return v & 0xF0u;
    case reg::kSvr:
        return 0x100u | (v & 0x10F0u) | 0xF;
    case reg::kIcrLow: {
        const uint32_t kinds[] = {(1u << 18), 0x4000u, (2u << 18), 0x4000u | 0x800u};
        return kinds[v % 4] | (0x20u + (v >> 8) % 0xD0u);
    }
    case reg::kIcrHigh:
        return (v & 1u) << 24;
    case reg::kEoi:
    case reg::kEsr:
        return 0;
    case reg::kTimerInitial:
        return v % 5000;
    default:
        return v;
    }
}

TEST(Parity, RandomGuestMatchesEmulated)
{
    const uint32_t regs[] = {reg::kTpr,         reg::kEoi,     reg::kLdr,      reg::kDfr,
                             reg::kSvr,         reg::kEsr,     reg::kLvtTimer, reg::kLvtLint0,
                             reg::kLvtError,    reg::kIcrLow,  reg::kIcrHigh,  reg::kTimerInitial,
                             reg::kTimerDivide, reg::kLvtPerf, reg::kId};
    for (const ApicvOptions& o : all_option_sets()) {
        Pair p(o);
        std::mt19937 rng(1234);
        enable(*p.emu, false);
        enable(*p.acc, false);
        uint32_t last_what = 0, last_off = 0, last_v = 0;
        for (int step = 0; step < 4000; ++step) {
            const uint32_t what = rng() % 10;
            p.clock.ns.fetch_add(rng() % 300);
            last_what = what;
            if (what < 4) {
                const uint32_t off = regs[rng() % std::size(regs)];
                const uint32_t v = sane_value(off, rng);
                p.emu->mmio_write(kBase + off, 4, v);
                p.acc->mmio_write(kBase + off, 4, v);
                last_off = off;
                last_v = v;
            } else if (what < 6) {
                // Level-triggered vectors stay out of the IPI range (0x20-0xEF): an IPIv post
                // of an edge vector does not clear a stale TMR bit (hardware does not touch
                // the TMR), a documented difference.
                const bool level = rng() % 3 == 0;
                const auto irq =
                    fixed(static_cast<uint8_t>(level ? 0xF0 + rng() % 0x10 : 0x10 + rng() % 0xF0),
                          level ? apic::Trigger::Level : apic::Trigger::Edge);
                p.emu->deliver(irq);
                p.acc->deliver(irq);
            } else if (what < 8) {
                p.acc->enter_guest();
                ASSERT_EQ(p.emu->pending_vector(), p.acc->pending_vector())
                    << step << " vid " << o.virtual_interrupt_delivery << " pi "
                    << o.posted_interrupts << ": "
                    << apic::describe_difference(p.emu->flatten(), p.acc->flatten());
                if (p.emu->pending_vector()) {
                    const apic::AckResult a = p.emu->ack();
                    const apic::AckResult b = p.acc->ack();
                    ASSERT_EQ(a.vector, b.vector) << step;
                }
                p.acc->leave_guest();
            } else {
                // The guest runs (and reads) only after an entry, where posted vectors are
                // processed. Read every register except EOI (VEOI keeps what was written).
                p.acc->enter_guest();
                p.emu->pending_vector();
                p.acc->pending_vector();
                for (uint32_t off = 0x20; off < 0x400; off += 0x10) {
                    if (off == reg::kEoi) {
                        continue;
                    }
                    ASSERT_EQ(p.emu->mmio_read(kBase + off, 4).value,
                              p.acc->mmio_read(kBase + off, 4).value)
                        << "offset 0x" << std::hex << off << " step " << std::dec << step;
                }
                p.acc->leave_guest();
            }
            if (step % 50 == 0) {
                const apic::ApicState a = p.emu->flatten();
                const apic::ApicState b = p.acc->flatten();
                ASSERT_EQ(a, b) << apic::describe_difference(a, b) << " step " << step << " what "
                                << last_what << " off " << std::hex << last_off << " v " << last_v;
            }
        }
        EXPECT_EQ(p.pe.eois, p.pa.eois);
        const apic::ApicState a = p.emu->flatten();
        const apic::ApicState b = p.acc->flatten();
        EXPECT_EQ(a, b) << apic::describe_difference(a, b);
    }
}

uint64_t sane_x2apic_value(uint32_t msr, std::mt19937& rng)
{
    const uint64_t v = rng();
    const bool raw = v % 8 == 0; // sometimes reserved bits: #GP on both
    switch (msr) {
    case 0x808:
        return raw ? v : (v & 0xF0u);
    case 0x80F:
        return raw ? v : (0x100u | (v & 0x10F0u) | 0xF);
    case 0x830: {
        const uint64_t kinds[] = {(1u << 18), 0x4000u, (2u << 18), 0x4000u | 0x800u};
        return ((v >> 20) & 1u) << 32 | kinds[v % 4] | (0x20u + (v >> 8) % 0xD0u);
    }
    case 0x83F:
        return raw ? v : (0x20u + v % 0xD0u);
    case 0x80B:
    case 0x828:
        return raw ? 1 : 0;
    case 0x838:
        return v % 5000;
    case 0x6E0:
        return v % 100000;
    case 0x832:
        return raw ? v : (v & 0x000700FFu);
    case 0x835:
    case 0x837:
    case 0x834:
        return raw ? v : (v & 0x000307FFu & ~0x700u);
    case 0x83E:
        return raw ? v : (v & 0xBu);
    default:
        return v;
    }
}

TEST(Parity, RandomX2apicGuestMatchesEmulated)
{
    const uint32_t msrs[] = {0x808, 0x80B, 0x80F, 0x828, 0x830, 0x832, 0x834, 0x835,
                             0x837, 0x838, 0x83E, 0x83F, 0x802, 0x80D, 0x6E0};
    for (const ApicvOptions& o : all_option_sets()) {
        Pair p(o);
        std::mt19937 rng(99);
        enable(*p.emu, true);
        enable(*p.acc, true);
        for (int step = 0; step < 4000; ++step) {
            const uint32_t what = rng() % 10;
            p.clock.ns.fetch_add(rng() % 300);
            if (what < 4) {
                const uint32_t msr = msrs[rng() % std::size(msrs)];
                const uint64_t v = sane_x2apic_value(msr, rng);
                const apic::AccessResult a = p.emu->msr_write(msr, v);
                const apic::AccessResult b = p.acc->msr_write(msr, v);
                ASSERT_EQ(a.status, b.status) << std::hex << msr << " " << v << " step " << step;
            } else if (what < 6) {
                const bool level = rng() % 3 == 0;
                const auto irq =
                    fixed(static_cast<uint8_t>(level ? 0xF0 + rng() % 0x10 : 0x10 + rng() % 0xF0),
                          level ? apic::Trigger::Level : apic::Trigger::Edge);
                p.emu->deliver(irq);
                p.acc->deliver(irq);
            } else if (what < 8) {
                p.acc->enter_guest();
                ASSERT_EQ(p.emu->pending_vector(), p.acc->pending_vector()) << step;
                if (p.emu->pending_vector()) {
                    ASSERT_EQ(p.emu->ack().vector, p.acc->ack().vector) << step;
                }
                p.acc->leave_guest();
            } else {
                p.acc->enter_guest();
                p.emu->pending_vector();
                p.acc->pending_vector();
                for (uint32_t msr = 0x800; msr < 0x840; ++msr) {
                    const apic::AccessResult a = p.emu->msr_read(msr);
                    const apic::AccessResult b = p.acc->msr_read(msr);
                    ASSERT_EQ(a.status, b.status)
                        << std::hex << msr << " step " << std::dec << step;
                    ASSERT_EQ(a.value, b.value) << std::hex << msr << " step " << std::dec << step;
                }
                p.acc->leave_guest();
            }
        }
        EXPECT_EQ(p.pe.eois, p.pa.eois);
        const apic::ApicState a = p.emu->flatten();
        const apic::ApicState b = p.acc->flatten();
        EXPECT_EQ(a, b) << apic::describe_difference(a, b);
    }
}

TEST(State, PirMergedIntoIrrEvenWhenOnIsClear)
{
    TestVm vm(1, ApicvOptions{});
    enable(vm.b(0), true);
    vm.b(0).deliver(fixed(0x45)); // outside: SN set, ON stays clear
    ASSERT_FALSE(vm.vm.pid(0).on());
    const apic::ApicState s = vm.b(0).flatten();
    EXPECT_TRUE(apic::test_vector(s.irr, 0x45));
    EXPECT_FALSE(vm.vm.pid(0).pir_empty()); // flatten observes, it does not consume
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
    bad.irr[0] = 0x20; // vector 5
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
                EXPECT_EQ(a.ack().vector, 0x93); // in service across the snapshot
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

} // namespace
} // namespace hv::vmx::test
