// Guest-visible equality with the emulated backend: random xAPIC and x2APIC guests run side by
// side on `apicv` (every option combination) and `emulated`, compared read by read and register by
// register (the differences apicv_backend.hpp lists are avoided by the guest).
#include <gtest/gtest.h>

#include <random>

#include "apicv_fakes.hpp"
#include "test_helpers.hpp"  // PrintTo(ApicState)

namespace hv::vmx::test {
namespace {

namespace reg = apic::reg;

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
            const auto what = static_cast<uint32_t>(rng() % 10);
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
    const bool raw = v % 8 == 0;  // sometimes reserved bits: #GP on both
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
            const auto what = static_cast<uint32_t>(rng() % 10);
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

}  // namespace
}  // namespace hv::vmx::test
