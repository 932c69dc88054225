// Which guest APIC register accesses AVIC completes in hardware and which take AVIC_NOACCEL.
//
// APM Vol2 15.29.4.1 "AVIC Access to the APIC Backing Page" / 15.29.9.2 "AVIC Access to
// Un-accelerated APIC register": reads of most registers come from the backing page; writes of
// TPR, EOI (edge) and ICR-low are virtualised; writes of the registers below are "trap" exits
// (the CPU has already written the backing page; the hypervisor applies the side effect); every
// other access is a "fault" exit (nothing done; the hypervisor emulates the instruction).
// Trap-type offsets are those of Linux is_avic_unaccelerated_access_trap(): ID, EOI (level), RRR,
// LDR, DFR, SVR, ESR, ICR, LVT timer/thermal/perf/LINT0/LINT1/error, TMICT, TDCR.
// ICR high (0x310) is written to the backing page without an exit (guests write it before every
// IPI, so a trap there would defeat IPI acceleration). x2AVIC (15.29.10) uses the same table
// for the x2APIC MSRs (MSR 0x800 + offset >> 4), plus SELF_IPI (0x83F) virtualised.
// Model choices where the manual leaves room: APR and TMCCT reads are faults (the hypervisor owns
// the timer; APR depends on state the backing page does not summarise), PPR reads are
// accelerated (the CPU keeps PPR current as it virtualises TPR, EOI and delivery).
#pragma once

#include <cstdint>

#include "apic/regs.hpp"

namespace hv::svm {

enum class AvicAccess : uint8_t { Accelerated, Trap, Fault };

constexpr bool in_vector_block(uint32_t off, uint32_t first)
{
    return off >= first && off < first + 0x80 && (off & 0xFu) == 0;
}

// `cmci`: the CMCI LVT exists in this CPU model (else 0x2F0 is reserved).
constexpr AvicAccess classify_read(uint32_t off, bool cmci)
{
    using namespace apic::reg;
    if (in_vector_block(off, kIsr) || in_vector_block(off, kTmr) || in_vector_block(off, kIrr)) {
        return AvicAccess::Accelerated;
    }
    switch (off) {
    case kId:
    case kVersion:
    case kTpr:
    case kPpr:
    case kEoi:
    case kLdr:
    case kDfr:
    case kSvr:
    case kEsr:
    case kIcrLow:
    case kIcrHigh:
    case kLvtTimer:
    case kLvtThermal:
    case kLvtPerf:
    case kLvtLint0:
    case kLvtLint1:
    case kLvtError:
    case kTimerInitial:
    case kTimerDivide:
        return AvicAccess::Accelerated;
    case kLvtCmci:
        return cmci ? AvicAccess::Accelerated : AvicAccess::Fault;
    default:
        return AvicAccess::Fault;  // APR, RRR, TMCCT, SELF_IPI, reserved offsets
    }
}

// `level_eoi`: an EOI write that completed a level-triggered vector (TMR set).
constexpr AvicAccess classify_write(uint32_t off, bool level_eoi, bool cmci)
{
    using namespace apic::reg;
    switch (off) {
    case kTpr:
    case kIcrLow:
    case kIcrHigh:
        return AvicAccess::Accelerated;
    case kEoi:
        // APM Vol2 15.29.4.2 "EOI": edge-triggered EOIs are virtualised; a level-triggered one
        // traps (after the ISR bit is cleared) so the hypervisor can EOI the IOAPIC.
        return level_eoi ? AvicAccess::Trap : AvicAccess::Accelerated;
    case kId:
    case kRrd:
    case kLdr:
    case kDfr:
    case kSvr:
    case kEsr:
    case kLvtTimer:
    case kLvtThermal:
    case kLvtPerf:
    case kLvtLint0:
    case kLvtLint1:
    case kLvtError:
    case kTimerInitial:
    case kTimerDivide:
        return AvicAccess::Trap;
    case kLvtCmci:
        return cmci ? AvicAccess::Trap : AvicAccess::Fault;
    default:
        return AvicAccess::Fault;
    }
}

static_assert(classify_write(apic::reg::kLvtTimer, false, true) == AvicAccess::Trap);
static_assert(classify_write(apic::reg::kEoi, false, true) == AvicAccess::Accelerated);
static_assert(classify_read(apic::reg::kTimerCurrent, true) == AvicAccess::Fault);

}  // namespace hv::svm
