// Per-register AVIC_NOACCEL counters (APM Vol2 15.29.9.2: EXITINFO1 names the register).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "apic/regs.hpp"
#include "svm/avic_regs.hpp"

namespace hv::svm {

inline constexpr std::size_t kRegGroups = 28;
enum class NoaccelSlot : std::size_t {};  // kind * kRegGroups + reg_group()

// Index of the register group of an APIC offset (ISR/TMR/IRR blocks count as one each).
constexpr std::size_t reg_group(uint32_t off)
{
    using namespace apic::reg;
    if (in_vector_block(off, kIsr)) {
        return 10;
    }
    if (in_vector_block(off, kTmr)) {
        return 11;
    }
    if (in_vector_block(off, kIrr)) {
        return 12;
    }
    switch (off) {
    case kId:
        return 0;
    case kVersion:
        return 1;
    case kTpr:
        return 2;
    case kApr:
        return 3;
    case kPpr:
        return 4;
    case kEoi:
        return 5;
    case kRrd:
        return 6;
    case kLdr:
        return 7;
    case kDfr:
        return 8;
    case kSvr:
        return 9;
    case kEsr:
        return 13;
    case kLvtCmci:
        return 14;
    case kIcrLow:
        return 15;
    case kIcrHigh:
        return 16;
    case kLvtTimer:
        return 17;
    case kLvtThermal:
        return 18;
    case kLvtPerf:
        return 19;
    case kLvtLint0:
        return 20;
    case kLvtLint1:
        return 21;
    case kLvtError:
        return 22;
    case kTimerInitial:
        return 23;
    case kTimerCurrent:
        return 24;
    case kTimerDivide:
        return 25;
    case kSelfIpi:
        return 26;
    default:
        return 27;
    }
}
static_assert(reg_group(apic::reg::kLvtTimer) == 17 && reg_group(apic::reg::kIrr + 0x70) == 12);

// Trap counters first, then fault counters: index = kind * kRegGroups + group.
inline constexpr std::array<std::string_view, 2 * kRegGroups> kNoaccelNames{
    "avic_noaccel_trap_id",           "avic_noaccel_trap_version",
    "avic_noaccel_trap_tpr",          "avic_noaccel_trap_apr",
    "avic_noaccel_trap_ppr",          "avic_noaccel_trap_eoi",
    "avic_noaccel_trap_rrd",          "avic_noaccel_trap_ldr",
    "avic_noaccel_trap_dfr",          "avic_noaccel_trap_svr",
    "avic_noaccel_trap_isr",          "avic_noaccel_trap_tmr",
    "avic_noaccel_trap_irr",          "avic_noaccel_trap_esr",
    "avic_noaccel_trap_lvt_cmci",     "avic_noaccel_trap_icr",
    "avic_noaccel_trap_icr_high",     "avic_noaccel_trap_lvt_timer",
    "avic_noaccel_trap_lvt_thermal",  "avic_noaccel_trap_lvt_perf",
    "avic_noaccel_trap_lvt_lint0",    "avic_noaccel_trap_lvt_lint1",
    "avic_noaccel_trap_lvt_error",    "avic_noaccel_trap_tmict",
    "avic_noaccel_trap_tmcct",        "avic_noaccel_trap_tdcr",
    "avic_noaccel_trap_self_ipi",     "avic_noaccel_trap_other",
    "avic_noaccel_fault_id",          "avic_noaccel_fault_version",
    "avic_noaccel_fault_tpr",         "avic_noaccel_fault_apr",
    "avic_noaccel_fault_ppr",         "avic_noaccel_fault_eoi",
    "avic_noaccel_fault_rrd",         "avic_noaccel_fault_ldr",
    "avic_noaccel_fault_dfr",         "avic_noaccel_fault_svr",
    "avic_noaccel_fault_isr",         "avic_noaccel_fault_tmr",
    "avic_noaccel_fault_irr",         "avic_noaccel_fault_esr",
    "avic_noaccel_fault_lvt_cmci",    "avic_noaccel_fault_icr",
    "avic_noaccel_fault_icr_high",    "avic_noaccel_fault_lvt_timer",
    "avic_noaccel_fault_lvt_thermal", "avic_noaccel_fault_lvt_perf",
    "avic_noaccel_fault_lvt_lint0",   "avic_noaccel_fault_lvt_lint1",
    "avic_noaccel_fault_lvt_error",   "avic_noaccel_fault_tmict",
    "avic_noaccel_fault_tmcct",       "avic_noaccel_fault_tdcr",
    "avic_noaccel_fault_self_ipi",    "avic_noaccel_fault_other",
};

}  // namespace hv::svm
