// LocalApic: register decode for xAPIC MMIO and x2APIC MSRs (rules at the top of local_apic.hpp).
#include "apic/local_apic.hpp"

namespace hv::apic {
namespace {

constexpr bool in_block(uint32_t off, uint32_t first)
{
    return off >= first && off < first + 0x80 && (off & 0xFu) == 0;
}

// Registers that exist in xAPIC mode but are read-only there (writes are ignored).
constexpr bool xapic_read_only(uint32_t off)
{
    return off == reg::kVersion || off == reg::kApr || off == reg::kPpr || off == reg::kRrd ||
           in_block(off, reg::kIsr) || in_block(off, reg::kTmr) || in_block(off, reg::kIrr) ||
           off == reg::kTimerCurrent;
}

}  // namespace

// Registers whose read semantics are the same in both modes.
std::optional<uint32_t> LocalApic::read_common(uint32_t off, GuestTime now)
{
    if (in_block(off, reg::kIsr)) {
        return s_.isr[(off - reg::kIsr) >> 4];
    }
    if (in_block(off, reg::kTmr)) {
        return s_.tmr[(off - reg::kTmr) >> 4];
    }
    if (in_block(off, reg::kIrr)) {
        return s_.irr[(off - reg::kIrr) >> 4];
    }
    if (auto l = lvt_reg(off)) {
        return s_.lvt_of(*l);
    }
    switch (off) {
    case reg::kVersion:
        return s_.version;
    case reg::kTpr:
        return s_.tpr;
    case reg::kPpr:
        return ppr();
    case reg::kSvr:
        return s_.svr;
    case reg::kEsr:
        return s_.esr;
    case reg::kTimerInitial:
        return s_.timer_initial;
    case reg::kTimerCurrent:
        return timer_mode() == TimerMode::TscDeadline ? 0 : current_count(now.ns);
    case reg::kTimerDivide:
        return s_.timer_divide;
    default:
        return std::nullopt;
    }
}

// Writes whose semantics (after the mode's own reserved-bit checks) are the same in both modes.
bool LocalApic::write_common(uint32_t off, uint32_t value, GuestTime now, AccessResult& r)
{
    if (auto l = lvt_reg(off)) {
        write_lvt(*l, value, r);
        return true;
    }
    switch (off) {
    case reg::kTpr:
        s_.tpr = value & 0xFFu;
        return true;
    case reg::kEoi:
        r.eoi = eoi();
        return true;
    case reg::kSvr:
        write_svr(value);
        return true;
    case reg::kEsr:
        write_esr();
        return true;
    case reg::kTimerInitial:
        write_tmict(value, now);
        r.timer_changed = true;
        return true;
    case reg::kTimerDivide:
        write_tdcr(value & kTdcrWritable, now);
        r.timer_changed = true;
        return true;
    default:
        return false;
    }
}

void LocalApic::write_svr(uint32_t value)
{
    s_.svr = value & svr::writable(cfg_.caps.directed_eoi);
    // SDM Vol3 11.4.7.2: software disable sets every LVT mask bit (and keeps IRR/ISR).
    if (!sw_enabled()) {
        for (auto& e : s_.lvt) {
            e |= lvt::kMasked;
        }
    }
}

void LocalApic::write_esr()
{
    // SDM Vol3 11.5.3 "Error Handling": a write makes the errors since the previous write
    // visible and clears the latch; the value written does not matter.
    s_.esr = s_.esr_pending;
    s_.esr_pending = 0;
}

void LocalApic::write_lvt(Lvt which, uint32_t value, AccessResult& r)
{
    uint32_t writable = lvt_writable(which);
    if (which == Lvt::Timer && !cfg_.caps.tsc_deadline) {
        writable &= ~(static_cast<uint32_t>(TimerMode::TscDeadline) << lvt::kTimerModeShift);
    }
    uint32_t v = value & writable;
    if (which == Lvt::Timer && ((v & lvt::kTimerModeMask) >> lvt::kTimerModeShift) == 3u) {
        v &= ~lvt::kTimerModeMask;  // reserved 11b: xAPIC keeps one-shot (x2APIC took #GP)
    }
    // SDM Vol3 11.4.7.2: while software-disabled the mask bits cannot be cleared.
    if (!sw_enabled()) {
        v |= lvt::kMasked;
    }
    auto& slot = s_.lvt[static_cast<std::size_t>(which)];
    const uint32_t old = slot;
    slot = v | (old & (lvt::kRemoteIrr | lvt::kDeliveryStatus));
    if (which == Lvt::Timer) {
        const auto deadline = static_cast<uint32_t>(TimerMode::TscDeadline) << lvt::kTimerModeShift;
        if (((old & lvt::kTimerModeMask) == deadline) !=
            ((slot & lvt::kTimerModeMask) == deadline)) {
            timer_mode_changed();
        }
        r.timer_changed = true;
    }
}

std::optional<Ipi> LocalApic::send_icr(uint64_t icr_value)
{
    const Ipi ipi = decode_icr(icr_value, mode() == ApicMode::X2Apic);
    // SDM Vol3 11.6.1 "Interrupt Command Register (ICR)": 011b and 111b are reserved delivery
    // modes (ExtINT cannot be sent as an IPI); self / all-including-self only take fixed mode
    // (table "Valid Combinations for the ... Local xAPIC Interrupt Command Register").
    if (ipi.mode == DeliveryMode::Reserved3 || ipi.mode == DeliveryMode::ExtInt) {
        ++counters_.ipi_invalid;
        return std::nullopt;
    }
    const bool self_ish =
        ipi.dest.shorthand == Shorthand::Self || ipi.dest.shorthand == Shorthand::AllIncludingSelf;
    if (self_ish && ipi.mode != DeliveryMode::Fixed) {
        ++counters_.ipi_invalid;
        return std::nullopt;
    }
    // SDM Vol3 11.5.3 "Error Handling": "Send Illegal Vector" for a fixed or lowest-priority
    // message with vector 0-15. The message still goes out: each receiver refuses it and sets
    // "Receive Illegal Vector" (accept() does), including this APIC for a self-IPI.
    const bool has_vector =
        ipi.mode == DeliveryMode::Fixed || ipi.mode == DeliveryMode::LowestPriority;
    if (has_vector && !is_legal_vector(ipi.vector)) {
        ++counters_.tx_illegal_vector;
        record_error(esr::kSendIllegalVector);
    }
    ++counters_.ipi_sent;
    return ipi;
}

uint32_t LocalApic::xapic_read(uint32_t off, GuestTime now)
{
    switch (off) {
    case reg::kId:
        return (s_.id & 0xFFu) << 24;
    case reg::kApr:
        return apr();
    case reg::kRrd:  // remote read is not supported by xAPIC processors: reads 0
    case reg::kEoi:  // write-only: reads 0
        return 0;
    case reg::kLdr:
        return s_.ldr;
    case reg::kDfr:
        return s_.dfr;
    case reg::kIcrLow:
        return static_cast<uint32_t>(s_.icr);
    case reg::kIcrHigh:
        return static_cast<uint32_t>(s_.icr >> 32);
    default:
        break;
    }
    if (auto c = read_common(off, now)) {
        return *c;
    }
    // SDM Vol3 11.5.3: "Illegal Register Address" for a reserved register in xAPIC mode.
    ++counters_.illegal_register;
    record_error(esr::kIllegalRegister);
    return 0;
}

AccessResult LocalApic::mmio_read(uint32_t offset, unsigned size, GuestTime now)
{
    if (mode() != ApicMode::XApic || offset >= reg::kPageSize) {
        return AccessResult::not_mine();
    }
    const uint32_t in = offset & 0xFu;
    const bool size_ok = size == 1 || size == 2 || size == 4;
    if (size_ok && in >= 4 && in + size <= 16) {
        return AccessResult::ok(0);  // padding between registers
    }
    if (!size_ok || in + size > 4) {
        ++counters_.mmio_ignored;
        return AccessResult::ok(0);
    }
    const uint32_t v = xapic_read(offset & ~0xFu, now);
    const uint64_t mask = size == 4 ? 0xFFFFFFFFULL : ((1ULL << (size * 8)) - 1);
    return AccessResult::ok((v >> (in * 8)) & mask);
}

AccessResult LocalApic::mmio_write(uint32_t offset, unsigned size, uint32_t value, GuestTime now)
{
    if (mode() != ApicMode::XApic || offset >= reg::kPageSize) {
        return AccessResult::not_mine();
    }
    if (size != 4 || (offset & 0xFu) != 0) {
        ++counters_.mmio_ignored;
        return AccessResult::ok();
    }
    return xapic_write(offset, value, now);
}

AccessResult LocalApic::xapic_write(uint32_t off, uint32_t value, GuestTime now)
{
    AccessResult r = AccessResult::ok();
    switch (off) {
    case reg::kId:
        // SDM Vol3 11.4.6 "Local APIC ID": writable in xAPIC mode on these processors; the
        // upper bits of the 32-bit x2APIC ID are kept.
        s_.id = (s_.id & ~0xFFu) | (value >> 24);
        return r;
    case reg::kLdr:
        s_.ldr = value & 0xFF000000u;
        return r;
    case reg::kDfr:
        s_.dfr = value | 0x0FFFFFFFu;
        return r;
    case reg::kIcrLow:
        s_.icr = (s_.icr & 0xFFFFFFFF00000000ULL) | (value & icr::kLowWritable);
        r.ipi = send_icr(s_.icr);
        return r;
    case reg::kIcrHigh:
        s_.icr = (s_.icr & 0xFFFFFFFFULL) | ((value & icr::kXapicHighWritable) << 32);
        return r;
    default:
        break;
    }
    if (write_common(off, value, now, r) || xapic_read_only(off)) {
        return r;
    }
    ++counters_.illegal_register;
    record_error(esr::kIllegalRegister);
    return r;
}

}  // namespace hv::apic
