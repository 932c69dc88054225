// Which guest APIC register accesses APICv virtualizes and which exit (the twin of
// svm/avic_regs.hpp). Offsets are xAPIC offsets; an x2APIC MSR is offset 800H + (offset >> 4).
//
// SDM Vol3 30.4.2 "Virtualizing Reads from the APIC-Access Page": with APIC-register
// virtualization, reads entirely within the first 4 bytes of the listed registers come from the
// virtual-APIC page; without it only VTPR reads do (with "use TPR shadow").
// SDM Vol3 30.4.3.1 "Determining Whether a Write Access is Virtualized": with APIC-register
// virtualization the listed writes are virtualized (TPR, EOI and self-IPIs by the CPU, the rest
// complete on the page and cause an APIC-write exit); with only virtual-interrupt delivery TPR,
// EOI and ICR low; with neither only TPR. Everything else is an APIC-access exit.
// SDM Vol3 30.5 "Virtualizing MSR-Based APIC Accesses": RDMSR of 800H-8FFH reads the page; which
// MSRs are intercepted is the hypervisor's MSR bitmap. Model choice: KVM's bitmap (Linux 6.x),
// which intercepts TMCCT and the write-only or reserved registers.
// Note CMCI (2F0H) is in none of the SDM's lists: its MMIO accesses always exit.
#pragma once

#include <cstdint>

#include "apic/regs.hpp"

namespace hv::vmx {

constexpr bool in_vector_block(uint32_t off, uint32_t first)
{
    return off >= first && off < first + 0x80 && (off & 0xFu) == 0;
}

constexpr bool is_lvt_timer_to_error(uint32_t off)
{
    return off >= apic::reg::kLvtTimer && off <= apic::reg::kLvtError && (off & 0xFu) == 0;
}

// SDM Vol3 30.4.2: reads virtualized with APIC-register virtualization.
constexpr bool read_virtualized(uint32_t off)
{
    using namespace apic::reg;
    return off == kId || off == kVersion || off == kTpr || off == kEoi || off == kLdr ||
           off == kDfr || off == kSvr || in_vector_block(off, kIsr) || in_vector_block(off, kTmr) ||
           in_vector_block(off, kIrr) || off == kEsr || off == kIcrLow || off == kIcrHigh ||
           is_lvt_timer_to_error(off) || off == kTimerInitial || off == kTimerDivide;
}

// SDM Vol3 30.4.3.1: writes virtualized with APIC-register virtualization.
constexpr bool write_virtualized(uint32_t off)
{
    using namespace apic::reg;
    return off == kId || off == kTpr || off == kEoi || off == kLdr || off == kDfr || off == kSvr ||
           off == kEsr || off == kIcrLow || off == kIcrHigh || is_lvt_timer_to_error(off) ||
           off == kTimerInitial || off == kTimerDivide;
}

// SDM Vol3 30.4.3.1: writes virtualized with virtual-interrupt delivery but without
// APIC-register virtualization.
constexpr bool write_virtualized_vid_only(uint32_t off)
{
    using namespace apic::reg;
    return off == kTpr || off == kEoi || off == kIcrLow;
}

// SDM Vol3 30.5 with KVM's MSR bitmap: x2APIC reads that pass through to the page with
// APIC-register virtualization. `cmci`: the CMCI LVT exists in this CPU model.
constexpr bool x2apic_read_passthrough(uint32_t off, bool cmci)
{
    using namespace apic::reg;
    if (off == kLvtCmci) {
        return cmci;
    }
    return off == kId || off == kVersion || off == kTpr || off == kPpr || off == kLdr ||
           off == kSvr || in_vector_block(off, kIsr) || in_vector_block(off, kTmr) ||
           in_vector_block(off, kIrr) || off == kEsr || off == kIcrLow ||
           is_lvt_timer_to_error(off) || off == kTimerInitial || off == kTimerDivide;
}

// Registers whose value lives on the virtual-APIC page (hardware-owned, the TMR mirror, the
// ICR), not in the hypervisor's LocalApic.
constexpr bool page_owned(uint32_t off)
{
    using namespace apic::reg;
    return off == kTpr || off == kPpr || in_vector_block(off, kIsr) || in_vector_block(off, kIrr) ||
           in_vector_block(off, kTmr) || off == kIcrLow || off == kIcrHigh;
}

static_assert(read_virtualized(apic::reg::kTpr) && read_virtualized(apic::reg::kIrr + 0x70));
static_assert(!read_virtualized(apic::reg::kPpr));  // not in 30.4.2's list: APIC-access exit
static_assert(!read_virtualized(apic::reg::kTimerCurrent));
static_assert(!read_virtualized(apic::reg::kLvtCmci) && !write_virtualized(apic::reg::kLvtCmci));
static_assert(write_virtualized(apic::reg::kLvtTimer) && write_virtualized(apic::reg::kEoi));
static_assert(!write_virtualized(apic::reg::kPpr) && !write_virtualized(apic::reg::kIsr));
static_assert(write_virtualized_vid_only(apic::reg::kIcrLow) &&
              !write_virtualized_vid_only(apic::reg::kIcrHigh));
static_assert(!x2apic_read_passthrough(apic::reg::kTimerCurrent, true));
static_assert(x2apic_read_passthrough(apic::reg::kPpr, true));
static_assert(!x2apic_read_passthrough(apic::reg::kLvtCmci, false));

}  // namespace hv::vmx
