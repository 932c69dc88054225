// LocalApic: MSR interface — IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC range.
//
// SDM Vol3 11.12.1.2 "x2APIC Register Address Space": MSRs 0x800-0x8FF are only accessible in
// x2APIC mode (#GP otherwise); reserved MSRs in the range raise #GP.
// SDM Vol3 11.12.1.3 "Reserved Bit Checking": WRMSR with a reserved bit set raises #GP; this
// includes bits 63:32 of every 32-bit register.
#include "apic/local_apic.hpp"

namespace hv::apic {

AccessResult LocalApic::msr_read(uint32_t msr, GuestTime now)
{
    AccessResult r = AccessResult::not_mine();
    if (msr == kMsrApicBase) {
        r = AccessResult::ok(s_.apic_base);
    } else if (msr == kMsrTscDeadline) {
        // SDM Vol3 11.5.4.1 "TSC-Deadline Mode": reads 0 outside TSC-deadline mode.
        r = !cfg_.caps.tsc_deadline                  ? AccessResult::gp()
            : timer_mode() == TimerMode::TscDeadline ? AccessResult::ok(s_.tsc_deadline)
                                                     : AccessResult::ok(0);
    } else if (msr >= kX2apicMsrFirst && msr <= kX2apicMsrLast) {
        r = mode() == ApicMode::X2Apic ? x2apic_read(mmio_offset_of(msr), now) : AccessResult::gp();
    }
    counters_.gp += r.is_gp() ? 1U : 0U;
    return r;
}

AccessResult LocalApic::msr_write(uint32_t msr, uint64_t value, GuestTime now)
{
    AccessResult r = AccessResult::not_mine();
    if (msr == kMsrApicBase) {
        r = write_apic_base(value);
    } else if (msr == kMsrTscDeadline) {
        if (!cfg_.caps.tsc_deadline) {
            r = AccessResult::gp();
        } else {
            write_tsc_deadline(value, now);
            r = AccessResult::ok();
            r.timer_changed = true;
        }
    } else if (msr >= kX2apicMsrFirst && msr <= kX2apicMsrLast) {
        r = mode() == ApicMode::X2Apic ? x2apic_write(mmio_offset_of(msr), value, now)
                                       : AccessResult::gp();
    }
    counters_.gp += r.is_gp() ? 1U : 0U;
    return r;
}

AccessResult LocalApic::x2apic_read(uint32_t off, GuestTime now)
{
    switch (off) {
    case reg::kId:
        return AccessResult::ok(s_.id);  // SDM Vol3 11.12.2 "x2APIC Register Availability"
    case reg::kLdr:
        return AccessResult::ok(x2apic_ldr(s_.id));
    case reg::kIcrLow:
        return AccessResult::ok(s_.icr);  // SDM Vol3 11.12.9: one 64-bit ICR
    case reg::kApr:                       // not available in x2APIC mode
    case reg::kRrd:                       // not available in x2APIC mode
    case reg::kDfr:                       // SDM Vol3 11.12.1.2: DFR does not exist in x2APIC mode
    case reg::kIcrHigh:                   // MSR 0x831 is reserved: ICR is 0x830 alone
    case reg::kEoi:                       // write-only
    case reg::kSelfIpi:                   // write-only
        return AccessResult::gp();
    default:
        break;
    }
    if (auto v = read_common(off, now)) {
        return AccessResult::ok(*v);
    }
    return AccessResult::gp();
}

namespace {

// Writable bits of an x2APIC register; none for registers that take no writes (read-only or
// reserved: SDM Vol3 11.12.1.2, those raise #GP).
std::optional<uint32_t> x2apic_writable(uint32_t off, const ApicCaps& caps)
{
    if (auto l = lvt_at(off); l && (*l != Lvt::Cmci || caps.cmci)) {
        uint32_t m = lvt_writable(*l);
        if (*l == Lvt::Timer && !caps.tsc_deadline) {
            m &= ~(static_cast<uint32_t>(TimerMode::TscDeadline) << lvt::kTimerModeShift);
        }
        return m;
    }
    switch (off) {
    case reg::kTpr:
        return 0xFFu;
    case reg::kEoi:
    case reg::kEsr:
        return 0u;  // SDM Vol3 11.12.1.3: only 0 may be written
    case reg::kSvr:
        return svr::writable(caps.directed_eoi);
    case reg::kTimerInitial:
        return 0xFFFFFFFFu;
    case reg::kTimerDivide:
        return kTdcrWritable;
    case reg::kSelfIpi:
        return 0xFFu;
    default:
        return std::nullopt;
    }
}

}  // namespace

AccessResult LocalApic::x2apic_write(uint32_t off, uint64_t value, GuestTime now)
{
    AccessResult r = AccessResult::ok();
    if (off == reg::kIcrLow) {
        // SDM Vol3 11.12.9 "ICR Operation in x2APIC Mode": there is no delivery status bit.
        // Intel processors ignore a set bit 12 while AMD's raise #GP; hvaccel follows Intel (and
        // KVM), so the kernel and emulated backends agree.
        value &= ~icr::kDeliveryStatus;
        if ((value & ~(icr::kLowWritable | 0xFFFFFFFF00000000ULL)) != 0) {
            return AccessResult::gp();
        }
        s_.icr = value;
        r.ipi = send_icr(value);
        return r;
    }
    const auto writable = x2apic_writable(off, cfg_.caps);
    if (!writable || (value & ~static_cast<uint64_t>(*writable)) != 0) {
        return AccessResult::gp();  // includes bits 63:32 of every 32-bit register
    }
    const auto v = static_cast<uint32_t>(value);
    if (off == reg::kLvtTimer && (v & lvt::kTimerModeMask) == lvt::kTimerModeMask) {
        return AccessResult::gp();  // timer mode 11b is reserved
    }
    if (off == reg::kSelfIpi) {
        // SDM Vol3 11.12.11 "SELF IPI Register": a fixed, edge-triggered IPI to this APIC alone;
        // the ICR is not changed.
        Ipi ipi;
        ipi.vector = static_cast<uint8_t>(v);
        ipi.dest.shorthand = Shorthand::Self;
        ipi.dest.x2apic_format = true;
        r.ipi = send_icr(encode_icr(ipi, true));
        return r;
    }
    write_common(off, v, now, r);
    return r;
}

}  // namespace hv::apic
