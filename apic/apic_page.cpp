#include "apic/apic_page.hpp"

#include "apic/vector_bits.hpp"

namespace hv::apic {

uint32_t page_get(const ApicRegisterPage& page, uint32_t offset)
{
    if (offset > kApicRegisterBytes - 4) {
        return 0;
    }
    return static_cast<uint32_t>(page[offset]) | (static_cast<uint32_t>(page[offset + 1]) << 8) |
           (static_cast<uint32_t>(page[offset + 2]) << 16) |
           (static_cast<uint32_t>(page[offset + 3]) << 24);
}

void page_set(ApicRegisterPage& page, uint32_t offset, uint32_t value)
{
    if (offset > kApicRegisterBytes - 4) {
        return;
    }
    for (uint32_t i = 0; i < 4; ++i) {
        page[offset + i] = static_cast<uint8_t>(value >> (8 * i));
    }
}

ApicRegisterPage to_register_page(const ApicState& s)
{
    ApicRegisterPage p{};
    page_set(p, reg::kId, s.x2apic() ? s.id : (s.id & 0xFFu) << 24);
    page_set(p, reg::kVersion, s.version);
    page_set(p, reg::kTpr, s.tpr);
    page_set(p, reg::kPpr, processor_priority(s.tpr, s.isr));
    page_set(p, reg::kLdr, s.ldr);
    page_set(p, reg::kDfr, s.dfr);
    page_set(p, reg::kSvr, s.svr);
    for (uint32_t i = 0; i < 8; ++i) {
        page_set(p, reg::kIsr + 0x10 * i, s.isr[i]);
        page_set(p, reg::kTmr + 0x10 * i, s.tmr[i]);
        page_set(p, reg::kIrr + 0x10 * i, s.irr[i]);
    }
    page_set(p, reg::kEsr, s.esr);
    for (std::size_t i = 0; i < kLvtCount; ++i) {
        page_set(p, lvt_offset(static_cast<Lvt>(i)), s.lvt[i]);
    }
    page_set(p, reg::kIcrLow, static_cast<uint32_t>(s.icr));
    page_set(p, reg::kIcrHigh, static_cast<uint32_t>(s.icr >> 32));
    page_set(p, reg::kTimerInitial, s.timer_initial);
    page_set(p, reg::kTimerCurrent, s.timer_remaining);
    page_set(p, reg::kTimerDivide, s.timer_divide);
    return p;
}

ApicState from_register_page(const ApicRegisterPage& p, const PageContext& ctx)
{
    ApicState s;
    s.apic_base = ctx.apic_base;
    s.tsc_deadline = ctx.tsc_deadline;
    s.run_state = ctx.run_state;
    const uint32_t id_reg = page_get(p, reg::kId);
    s.id = s.x2apic() ? id_reg : ((ctx.x2apic_id & ~0xFFu) | (id_reg >> 24));
    s.version = page_get(p, reg::kVersion);
    s.tpr = page_get(p, reg::kTpr);
    s.ldr = page_get(p, reg::kLdr);
    s.dfr = page_get(p, reg::kDfr);
    s.svr = page_get(p, reg::kSvr);
    for (uint32_t i = 0; i < 8; ++i) {
        s.isr[i] = page_get(p, reg::kIsr + 0x10 * i);
        s.tmr[i] = page_get(p, reg::kTmr + 0x10 * i);
        s.irr[i] = page_get(p, reg::kIrr + 0x10 * i);
    }
    s.esr = page_get(p, reg::kEsr);
    s.esr_pending = 0;
    for (std::size_t i = 0; i < kLvtCount; ++i) {
        s.lvt[i] = page_get(p, lvt_offset(static_cast<Lvt>(i)));
    }
    // SDM Vol3 11.12.9: there is no delivery status in x2APIC mode; in xAPIC mode the message is
    // sent at once, so the normal form keeps it clear.
    const uint64_t low = page_get(p, reg::kIcrLow) & ~static_cast<uint32_t>(icr::kDeliveryStatus);
    s.icr = (static_cast<uint64_t>(page_get(p, reg::kIcrHigh)) << 32) | low;
    s.timer_initial = page_get(p, reg::kTimerInitial);
    s.timer_remaining = page_get(p, reg::kTimerCurrent);
    s.timer_divide = page_get(p, reg::kTimerDivide);
    return s;
}

}  // namespace hv::apic
