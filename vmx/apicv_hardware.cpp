// ApicvBackend, hardware half: what the CPU does in VMX non-root operation. Everything here reads
// only the VMCS image, the virtual-APIC page, posted-interrupt descriptors and the PID-pointer
// table (plus the MSR-bitmap choice in hw_x2apic_read_passthrough, which is the hypervisor's);
// the exits it raises call the hypervisor half. Caller holds mu_.
#include "vmx/apicv_backend.hpp"
#include "vmx/apicv_regs.hpp"

namespace hv::vmx {
namespace {

namespace reg = apic::reg;

// ICR low bits that must be 0 for self-IPI / IPI virtualization: reserved 31:20, 17:16, 13 and
// delivery status 12 (SDM Vol3 30.4.3.2 "APIC-Write Emulation").
constexpr uint32_t kIcrMustBeZero = 0xFFF3'3000u;
constexpr uint32_t kIcrModeMask = 0x700u;
constexpr uint32_t kIcrLogical = 1u << 11;
constexpr uint32_t kIcrLevel = 1u << 15;
constexpr unsigned kIcrShorthandShift = 18;

}  // namespace

bool ApicvBackend::hw_read_virtualized(uint32_t offset, unsigned size) const
{
    const uint32_t in = offset & 0xFu;
    if ((size != 1 && size != 2 && size != 4) || in + size > 4) {
        return false;
    }
    const uint32_t off = offset & ~0xFu;
    if (vmcs_.secondary(secondary::kApicRegisterVirtualization)) {
        return read_virtualized(off);
    }
    // SDM Vol3 30.4.2 (apicv_regs.hpp): without APIC-register virtualization only VTPR reads are
    // virtualized (when "use TPR shadow" is 1).
    return off == reg::kTpr;
}

bool ApicvBackend::hw_write_virtualized(uint32_t offset, unsigned size) const
{
    const uint32_t in = offset & 0xFu;
    if ((size != 1 && size != 2 && size != 4) || in + size > 4) {
        return false;
    }
    const uint32_t off = offset & ~0xFu;
    if (vmcs_.secondary(secondary::kApicRegisterVirtualization)) {
        return write_virtualized(off);
    }
    if (vmcs_.secondary(secondary::kVirtualInterruptDelivery)) {
        return write_virtualized_vid_only(off);
    }
    return off == reg::kTpr;
}

bool ApicvBackend::hw_x2apic_read_passthrough(uint32_t msr) const
{
    // SDM Vol3 30.5 "Virtualizing MSR-Based APIC Accesses": with "virtualize x2APIC mode" and
    // APIC-register virtualization RDMSR 800H-8FFH reads the page; KVM's MSR bitmap intercepts
    // TMCCT, write-only and reserved registers (they exit and take #GP from the hypervisor).
    if (!vmcs_.secondary(secondary::kVirtualizeX2apicMode)) {
        return false;
    }
    const uint32_t off = apic::mmio_offset_of(msr);
    if (!vmcs_.secondary(secondary::kApicRegisterVirtualization)) {
        return off == reg::kTpr;
    }
    return x2apic_read_passthrough(off, apic_.config().caps.cmci);
}

void ApicvBackend::hw_ppr_virtualization()
{
    // SDM Vol3 30.1.3 "PPR Virtualization".
    page_->set(vapic::kVppr, virtual_ppr(page_->vtpr(), vmcs_.gis().svi()));
}

std::optional<uint8_t> ApicvBackend::hw_evaluate() const
{
    // SDM Vol3 30.2.1 "Evaluation of Pending Virtual Interrupts": a virtual interrupt is pending
    // when RVI[7:4] > VPPR[7:4]. Without virtual-interrupt delivery the hypervisor injects from
    // VIRR by the same priority rule (SDM Vol3 11.8.3.1).
    uint8_t rvi = vmcs_.gis().rvi();
    if (!vmcs_.secondary(secondary::kVirtualInterruptDelivery)) {
        rvi = page_->highest(vapic::kVirr).value_or(0);
    }
    if (rvi == 0 || (rvi & 0xF0u) <= (page_->vppr() & 0xF0u)) {
        return std::nullopt;
    }
    return rvi;
}

uint8_t ApicvBackend::hw_deliver_virtual_interrupt()
{
    // SDM Vol3 30.2.2 "Virtual-Interrupt Delivery": VISR[RVI] = 1, SVI = RVI, VPPR = RVI & F0H,
    // VIRR[RVI] = 0, RVI = highest remaining VIRR (0 if none), then deliver through the IDT.
    GuestInterruptStatus g = vmcs_.gis();
    const uint8_t v = vmcs_.secondary(secondary::kVirtualInterruptDelivery)
                          ? g.rvi()
                          : page_->highest(vapic::kVirr).value_or(0);
    page_->set_bit(vapic::kVisr, v);
    g.set_svi(v);
    page_->set(vapic::kVppr, v & 0xF0u);
    page_->clear_bit(vapic::kVirr, v);
    g.set_rvi(page_->highest(vapic::kVirr).value_or(0));
    vmcs_.set_gis(g);
    stats_.add(ApicvStat::VirtualInterruptsDelivered);
    return v;
}

bool ApicvBackend::hw_tpr_virtualization()
{
    // SDM Vol3 30.1.2 "TPR Virtualization": with virtual-interrupt delivery, PPR virtualization
    // and evaluation of pending virtual interrupts; without it, a TPR-below-threshold VM exit
    // when VTPR[7:4] < TPR threshold[3:0].
    if (vmcs_.secondary(secondary::kVirtualInterruptDelivery)) {
        hw_ppr_virtualization();
        return false;
    }
    hw_ppr_virtualization();  // the hypervisor's PPR follows VTPR without VID as well
    return ((page_->vtpr() >> 4) & 0xFu) < (vmcs_.tpr_threshold.value & kTprThresholdMask);
}

std::optional<uint8_t> ApicvBackend::hw_eoi_virtualization()
{
    // SDM Vol3 30.1.4 "EOI Virtualization".
    GuestInterruptStatus g = vmcs_.gis();
    const uint8_t v = g.svi();
    page_->clear_bit(vapic::kVisr, v);
    g.set_svi(page_->highest(vapic::kVisr).value_or(0));
    vmcs_.set_gis(g);
    hw_ppr_virtualization();
    stats_.add(ApicvStat::EoiVirtualized);
    if (vmcs_.eoi_exit_bit(v)) {
        return v;  // trap-like EOI-induced VM exit, exit qualification = vector
    }
    return std::nullopt;  // then evaluate pending virtual interrupts (at the next ack())
}

void ApicvBackend::hw_self_ipi(uint8_t vector)
{
    // SDM Vol3 30.1.5 "Self-IPI Virtualization": VIRR[v] = 1; RVI = max(RVI, v).
    if (page_->test(vapic::kVirr, vector)) {
        stats_.add(ApicvStat::Coalesced);
    }
    page_->set_bit(vapic::kVirr, vector);
    GuestInterruptStatus g = vmcs_.gis();
    if (vector > g.rvi()) {
        g.set_rvi(vector);
        vmcs_.set_gis(g);
    }
    stats_.add(ApicvStat::SelfIpiVirtualized);
}

void ApicvBackend::hw_process_posted()
{
    // SDM Vol3 30.6 "Posted-Interrupt Processing": clear ON, VIRR |= PIR (PIR cleared),
    // RVI = max(RVI, highest PIR vector), then evaluate pending virtual interrupts.
    const apic::VectorWords taken = take_pir(pid_);
    bool any = false;
    for (uint32_t w : taken) {
        any = any || w != 0;
    }
    if (any) {
        stats_.add(ApicvStat::PirSynced);
        inject_locked(taken);
    }
}

bool ApicvBackend::hw_self_ipi_icr(uint32_t lo) const
{
    // SDM Vol3 30.4.3.2 "APIC-Write Emulation", offset 300H with virtual-interrupt delivery:
    // reserved bits and delivery status 0, shorthand self, edge, fixed, vector[7:4] != 0.
    return vmcs_.secondary(secondary::kVirtualInterruptDelivery) && (lo & kIcrMustBeZero) == 0 &&
           ((lo >> kIcrShorthandShift) & 3u) == 1 && (lo & kIcrLevel) == 0 &&
           (lo & kIcrModeMask) == 0 && (lo & 0xF0u) != 0;
}

bool ApicvBackend::hw_ipi_virtualization(uint64_t icr, bool x2apic, Effects& fx)
{
    // SDM Vol3 30.1.6 "IPI Virtualization" (with the tertiary control): a fixed, edge, physical
    // IPI without shorthand and with a legal vector is completed through the PID-pointer table:
    // post the vector to the destination's PID and send its notification. Anything else — or a
    // destination beyond the last index or with an invalid entry — is an APIC-write VM exit.
    if (!vmcs_.tertiary(tertiary::kIpiVirtualization)) {
        return false;
    }
    const auto lo = static_cast<uint32_t>(icr);
    if ((lo & kIcrMustBeZero) != 0 || ((lo >> kIcrShorthandShift) & 3u) != 0 ||
        (lo & kIcrLogical) != 0 || (lo & kIcrLevel) != 0 || (lo & kIcrModeMask) != 0 ||
        (lo & 0xF0u) == 0) {
        return false;
    }
    // xAPIC: the destination is VICR_HI[31:24]; x2APIC: bits 63:32 of the 64-bit ICR.
    const uint32_t dest =
        x2apic ? static_cast<uint32_t>(icr >> 32) : static_cast<uint32_t>(icr >> 56) & 0xFFu;
    if (dest > vmcs_.last_pid_pointer_index.value) {
        return false;
    }
    PostedInterruptDescriptor* target = vm_.pid_table().lookup(dest);
    if (target == nullptr) {
        return false;
    }
    const auto vector = static_cast<uint8_t>(lo);
    const PostResult r = vm_.post_counted(*target, vector);
    const auto idx = vm_.index_of(target);
    if (idx) {
        fx.ipiv_target = idx;
        fx.ipiv_post = r;
    }
    stats_.add(ApicvStat::IpivCompleted);
    return true;
}

void ApicvBackend::hw_apic_write_emulation(uint32_t offset, Effects& fx)
{
    // SDM Vol3 30.4.3.2 "APIC-Write Emulation": after a virtualized write to the APIC-access
    // page. Cases that need the hypervisor become trap-like APIC-write VM exits.
    const uint32_t off = offset & ~0xFu;
    switch (off) {
    case reg::kTpr:
        virtual_tpr_written_locked();
        return;
    case reg::kEoi:
        if (vmcs_.secondary(secondary::kVirtualInterruptDelivery)) {
            if (const auto v = hw_eoi_virtualization()) {
                eoi_induced_exit_locked(*v, fx);
            }
            return;
        }
        break;
    case reg::kIcrLow: {
        const uint32_t lo = page_->get(vapic::kVicrLo);
        if (hw_self_ipi_icr(lo)) {
            hw_self_ipi(static_cast<uint8_t>(lo));
            return;
        }
        const uint64_t icr = (static_cast<uint64_t>(page_->get(vapic::kVicrHi)) << 32) | lo;
        if (hw_ipi_virtualization(icr, false, fx)) {
            return;
        }
        break;
    }
    case reg::kIcrHigh:
        // "The processor clears bytes 2:0 of VICR_HI. No other virtualization or VM exit."
        page_->set(vapic::kVicrHi, page_->get(vapic::kVicrHi) & 0xFF00'0000u);
        return;
    default:
        break;
    }
    count_exit(ApicvExit::ApicWrite);
    apic_write_exit(off, fx);
}

}  // namespace hv::vmx
