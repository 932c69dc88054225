// ApicvBackend: guest register accesses. Each access first goes through the hardware half (is it
// virtualized? then it completes on the page without an exit); what is not virtualized becomes
// the architectural exit a CPU would take, counted, and is handled by the hypervisor half as
// KVM's handle_apic_access / handle_apic_write / handle_apic_eoi_induced / x2APIC MSR paths do.
#include "vmx/apicv_backend.hpp"
#include "vmx/apicv_regs.hpp"

#include <utility>

namespace hv::vmx {
namespace {

namespace reg = apic::reg;

constexpr bool is_x2apic_msr(uint32_t msr)
{
    return msr >= apic::kX2apicMsrFirst && msr <= apic::kX2apicMsrLast;
}

}  // namespace

// Registers whose value lives on the page, not in the LocalApic (apicv_regs.hpp).
bool ApicvBackend::hw_owned(uint32_t off) const
{
    return page_owned(off);
}

uint32_t ApicvBackend::page_apr() const
{
    // SDM Vol3 11.6.2.4 (arbitration priority) from the page: TPR against max(IRRV, ISRV).
    const uint32_t tpr = page_->vtpr();
    const uint32_t irrv = page_->highest(vapic::kVirr).value_or(0);
    const uint32_t isrv = page_->highest(vapic::kVisr).value_or(0);
    const uint32_t top = (irrv > isrv ? irrv : isrv) & 0xF0u;
    return (tpr & 0xF0u) >= top ? tpr : top;
}

// ---------------------------------------------------------------------------------------------
// xAPIC (APIC-access page).

apic::AccessResult ApicvBackend::mmio_read(uint64_t gpa, unsigned size)
{
    Effects fx;
    apic::AccessResult r;
    {
        std::lock_guard lock(mu_);
        const auto base = apic_.mmio_base();
        if (!base || gpa < *base || gpa - *base >= reg::kPageSize) {
            return apic::AccessResult::not_mine();
        }
        const auto offset = static_cast<uint32_t>(gpa - *base);
        if (hw_read_virtualized(offset, size)) {
            // SDM Vol3 30.4.2: "returns data from the corresponding page offset on the
            // virtual-APIC page". No exit.
            return apic::AccessResult::ok(page_->read_bytes(offset, size));
        }
        count_exit(ApicvExit::ApicAccess);
        r = xapic_read_exit(offset, size, fx);
        fx.timer_dirty = std::exchange(timer_dirty_, false);
    }
    finish(fx);
    return r;
}

apic::AccessResult ApicvBackend::xapic_read_exit(uint32_t offset, unsigned size, Effects& fx)
{
    // KVM's handle_apic_access -> emulated read (kvm_lapic_reg_read over the page).
    const uint32_t off = offset & ~0xFu;
    const uint32_t in = offset & 0xFu;
    const bool plain = (size == 1 || size == 2 || size == 4) && in + size <= 4;
    if (plain && (hw_owned(off) || off == reg::kApr)) {
        if (in_vector_block(off, reg::kIrr)) {
            sync_pir_locked();
        }
        uint32_t v = off == reg::kApr ? page_apr() : page_->get(off);
        if (off == reg::kTpr) {
            v &= 0xFFu;
        }
        const uint64_t mask = size == 4 ? 0xFFFF'FFFFULL : ((1ULL << (size * 8)) - 1);
        return apic::AccessResult::ok((v >> (in * 8)) & mask);
    }
    const apic::ApicMode before = apic_.mode();
    apic::AccessResult r = apic_.mmio_read(offset, size, clock_.now());
    after_model_locked(before);  // an illegal-register read raises the error LVT
    fx.model = r;
    return r;
}

apic::AccessResult ApicvBackend::mmio_write(uint64_t gpa, unsigned size, uint32_t value)
{
    Effects fx;
    apic::AccessResult r = apic::AccessResult::ok();
    {
        std::lock_guard lock(mu_);
        const auto base = apic_.mmio_base();
        if (!base || gpa < *base || gpa - *base >= reg::kPageSize) {
            return apic::AccessResult::not_mine();
        }
        const auto offset = static_cast<uint32_t>(gpa - *base);
        if (hw_write_virtualized(offset, size)) {
            // SDM Vol3 30.4.3: the data goes to the page, then APIC-write emulation.
            page_->write_bytes(offset, size, value);
            hw_apic_write_emulation(offset, fx);
            r = fx.model;
            r.status = apic::AccessStatus::Ok;
        } else {
            count_exit(ApicvExit::ApicAccess);
            r = xapic_write_exit(offset, size, value, fx);
        }
        fx.timer_dirty = std::exchange(timer_dirty_, false);
    }
    finish(fx);
    return r;
}

apic::AccessResult ApicvBackend::xapic_write_exit(uint32_t offset, unsigned size, uint32_t value,
                                                  Effects& fx)
{
    // A fault-like APIC-access exit: the hypervisor emulates the whole write.
    const uint32_t off = offset & ~0xFu;
    const bool plain = size == 4 && (offset & 0xFu) == 0;
    if (plain && off == reg::kEoi) {
        software_eoi_locked(fx);
        return apic::AccessResult::ok();
    }
    const apic::ApicMode before = apic_.mode();
    if (plain && off == reg::kIcrLow) {
        apic_.mmio_write(reg::kIcrHigh, 4, page_->get(vapic::kVicrHi), clock_.now());
    }
    apic::AccessResult r = apic_.mmio_write(offset, size, value, clock_.now());
    if (plain && off == reg::kIcrLow) {
        page_->set(vapic::kVicrLo, value & static_cast<uint32_t>(apic::icr::kLowWritable));
    } else if (plain && off == reg::kIcrHigh) {
        page_->set(vapic::kVicrHi, value & static_cast<uint32_t>(apic::icr::kXapicHighWritable));
    }
    after_model_locked(before);
    fx.model = r;
    return r;
}

void ApicvBackend::apic_write_exit(uint32_t off, Effects& fx)
{
    // Trap-like APIC-write exit (SDM Vol3 30.4.3.3): the value is already on the page; KVM's
    // kvm_apic_write_nodecode re-reads it and runs the register's write handler.
    if (off == reg::kEoi) {
        software_eoi_locked(fx);
        return;
    }
    const apic::ApicMode before = apic_.mode();
    const apic::GuestTime now = clock_.now();
    if (apic_.mode() == apic::ApicMode::X2Apic) {
        const uint32_t msr = apic::x2apic_msr(off);
        const uint64_t value =
            off == reg::kIcrLow ? page_->read_bytes(vapic::kVicrLo, 8) : page_->get(off);
        fx.model = apic_.msr_write(msr, value, now);
        if (off == reg::kIcrLow && fx.model.is_ok()) {
            page_->write_bytes(vapic::kVicrLo, 8, value & ~apic::icr::kDeliveryStatus);
        }
    } else {
        if (off == reg::kIcrLow) {
            apic_.mmio_write(reg::kIcrHigh, 4, page_->get(vapic::kVicrHi), now);
            page_->set(vapic::kVicrLo,
                       page_->get(vapic::kVicrLo) & static_cast<uint32_t>(apic::icr::kLowWritable));
        }
        fx.model = apic_.mmio_write(off, 4, page_->get(off), now);
    }
    after_model_locked(before);
}

void ApicvBackend::software_eoi_locked(Effects& fx)
{
    // The hypervisor's EOI (no virtual-interrupt delivery, or an intercepted x2APIC EOI): the
    // same page update the CPU's EOI virtualization makes, then the IOAPIC if level-triggered.
    const auto v = page_->highest(vapic::kVisr);
    if (!v) {
        return;
    }
    page_->clear_bit(vapic::kVisr, *v);
    GuestInterruptStatus g = vmcs_.gis();
    g.set_svi(page_->highest(vapic::kVisr).value_or(0));
    vmcs_.set_gis(g);
    hw_ppr_virtualization();
    stats_.add(ApicvStat::Eoi);
    if (apic::test_vector(tmr_, *v) &&
        (page_->get(reg::kSvr) & apic::svr::kSuppressEoiBroadcast) == 0) {
        stats_.add(ApicvStat::EoiBroadcast);
        fx.ioapic_eoi = *v;
    }
}

void ApicvBackend::eoi_induced_exit_locked(uint8_t vector, Effects& fx)
{
    // SDM Vol3 30.1.4: EOI virtualization already updated VISR/SVI/VPPR; KVM's
    // handle_apic_eoi_induced passes a level-triggered EOI to the IOAPIC (kvm_ioapic_send_eoi),
    // unless SVR[12] suppresses the broadcast (directed EOI: the guest writes the IOAPIC).
    count_exit(ApicvExit::EoiInduced);
    stats_.add(ApicvStat::Eoi);
    if (apic::test_vector(tmr_, vector) &&
        (page_->get(reg::kSvr) & apic::svr::kSuppressEoiBroadcast) == 0) {
        stats_.add(ApicvStat::EoiBroadcast);
        fx.ioapic_eoi = vector;
    }
}

void ApicvBackend::tpr_changed_locked()
{
    // After a TPR-below-threshold exit or an intercepted TPR write: the next entry re-evaluates
    // (pending_vector()/ack()) and recomputes the threshold (enter_guest()).
    hw_ppr_virtualization();
    vmcs_.tpr_threshold.value = 0;
}

void ApicvBackend::virtual_tpr_written_locked()
{
    // After the CPU wrote VTPR without an exit (a virtualized TPR write or MOV to CR8): TPR
    // virtualization, which without virtual-interrupt delivery may end in a TPR-below-threshold
    // VM exit.
    if (hw_tpr_virtualization()) {
        count_exit(ApicvExit::TprBelowThreshold);
        tpr_changed_locked();
    }
}

// ---------------------------------------------------------------------------------------------
// CR8 (SDM Vol3 30.3 "Virtualizing CR8-Based TPR Accesses"): with "use TPR shadow" MOV from CR8
// reads VTPR[7:4]; MOV to CR8 writes source[3:0] to VTPR[7:4], clears the other VTPR bits and
// does TPR virtualization, all without a VM exit.

std::optional<uint8_t> ApicvBackend::cr8() const
{
    std::lock_guard lock(mu_);
    return static_cast<uint8_t>((page_->vtpr() >> 4) & 0xFu);
}

void ApicvBackend::write_cr8(uint8_t value)
{
    std::lock_guard lock(mu_);
    page_->set(vapic::kVtpr, static_cast<uint32_t>(value & 0xFu) << 4);
    virtual_tpr_written_locked();
}

// ---------------------------------------------------------------------------------------------
// MSRs: x2APIC range, IA32_APIC_BASE, IA32_TSC_DEADLINE.

apic::AccessResult ApicvBackend::msr_read(uint32_t msr)
{
    Effects fx;
    apic::AccessResult r;
    {
        std::lock_guard lock(mu_);
        const bool mine =
            is_x2apic_msr(msr) || msr == apic::kMsrApicBase || msr == apic::kMsrTscDeadline;
        if (!mine) {
            return apic::AccessResult::not_mine();
        }
        if (is_x2apic_msr(msr) && apic_.mode() == apic::ApicMode::X2Apic &&
            hw_x2apic_read_passthrough(msr)) {
            // SDM Vol3 30.5: RDMSR reads the page (8 bytes at 300H for the ICR).
            const uint32_t off = apic::mmio_offset_of(msr);
            return apic::AccessResult::ok(off == reg::kIcrLow ? page_->read_bytes(off, 8)
                                                              : page_->get(off));
        }
        count_exit(ApicvExit::MsrRead);
        r = msr_read_exit(msr, fx);
        fx.timer_dirty = std::exchange(timer_dirty_, false);
    }
    finish(fx);
    return r;
}

apic::AccessResult ApicvBackend::msr_read_exit(uint32_t msr, Effects& fx)
{
    if (is_x2apic_msr(msr) && apic_.mode() == apic::ApicMode::X2Apic) {
        const uint32_t off = apic::mmio_offset_of(msr);
        if (off == reg::kIcrLow) {
            return apic::AccessResult::ok(page_->read_bytes(vapic::kVicrLo, 8));
        }
        if (off != reg::kIcrHigh && hw_owned(off)) {
            if (in_vector_block(off, reg::kIrr)) {
                sync_pir_locked();
            }
            return apic::AccessResult::ok(off == reg::kTpr ? page_->vtpr() : page_->get(off));
        }
    }
    const apic::ApicMode before = apic_.mode();
    apic::AccessResult r = apic_.msr_read(msr, clock_.now());
    after_model_locked(before);
    fx.model = r;
    return r;
}

apic::AccessResult ApicvBackend::msr_write(uint32_t msr, uint64_t value)
{
    Effects fx;
    apic::AccessResult r = apic::AccessResult::ok();
    {
        std::lock_guard lock(mu_);
        const bool mine =
            is_x2apic_msr(msr) || msr == apic::kMsrApicBase || msr == apic::kMsrTscDeadline;
        if (!mine) {
            return apic::AccessResult::not_mine();
        }
        const bool x2 = is_x2apic_msr(msr) && apic_.mode() == apic::ApicMode::X2Apic;
        const bool x2v = x2 && vmcs_.secondary(secondary::kVirtualizeX2apicMode);
        const bool vid = vmcs_.secondary(secondary::kVirtualInterruptDelivery);
        const uint32_t off = is_x2apic_msr(msr) ? apic::mmio_offset_of(msr) : 0;
        // SDM Vol3 30.5 "Virtualizing MSR-Based APIC Accesses": WRMSR 808H (TPR), and with
        // virtual-interrupt delivery 80BH (EOI) and 83FH (SELF IPI), and with IPI
        // virtualization 830H (ICR) are virtualized; reserved bits raise #GP without an exit.
        if (x2v && off == reg::kTpr) {
            if ((value >> 8) != 0) {
                return apic::AccessResult::gp();
            }
            page_->set(vapic::kVtpr, static_cast<uint32_t>(value));
            virtual_tpr_written_locked();
        } else if (x2v && vid && off == reg::kEoi) {
            if (value != 0) {
                return apic::AccessResult::gp();
            }
            page_->set(vapic::kVeoi, 0);
            if (const auto v = hw_eoi_virtualization()) {
                eoi_induced_exit_locked(*v, fx);
            }
        } else if (x2v && vid && off == reg::kSelfIpi) {
            if ((value >> 8) != 0) {
                return apic::AccessResult::gp();
            }
            page_->set(vapic::kSelfIpi, static_cast<uint32_t>(value));
            if (apic::is_legal_vector(static_cast<uint8_t>(value))) {
                hw_self_ipi(static_cast<uint8_t>(value));
            } else {
                count_exit(ApicvExit::ApicWrite);
                const apic::ApicMode before = apic_.mode();
                fx.model = apic_.msr_write(msr, value, clock_.now());
                after_model_locked(before);
            }
        } else if (x2v && vmcs_.tertiary(tertiary::kIpiVirtualization) && off == reg::kIcrLow) {
            const uint64_t v = value & ~apic::icr::kDeliveryStatus;
            if ((v & ~(apic::icr::kLowWritable | 0xFFFF'FFFF'0000'0000ULL)) != 0) {
                return apic::AccessResult::gp();
            }
            page_->write_bytes(vapic::kVicrLo, 8, v);
            if (!hw_ipi_virtualization(v, true, fx)) {
                count_exit(ApicvExit::ApicWrite);
                apic_write_exit(reg::kIcrLow, fx);
            }
        } else {
            count_exit(ApicvExit::MsrWrite);
            r = msr_write_exit(msr, value, fx);
        }
        if (fx.model.status != apic::AccessStatus::Ok) {
            r = fx.model;
        }
        fx.timer_dirty = std::exchange(timer_dirty_, false);
    }
    finish(fx);
    return r;
}

apic::AccessResult ApicvBackend::msr_write_exit(uint32_t msr, uint64_t value, Effects& fx)
{
    // Intercepted WRMSR: KVM's kvm_x2apic_msr_write / kvm_set_apic_base / TSC deadline.
    const bool x2 = is_x2apic_msr(msr) && apic_.mode() == apic::ApicMode::X2Apic;
    const uint32_t off = is_x2apic_msr(msr) ? apic::mmio_offset_of(msr) : 0;
    if (x2 && off == reg::kTpr) {
        if ((value >> 8) != 0) {
            return apic::AccessResult::gp();
        }
        page_->set(vapic::kVtpr, static_cast<uint32_t>(value));
        tpr_changed_locked();
        return apic::AccessResult::ok();
    }
    if (x2 && off == reg::kEoi) {
        if (value != 0) {
            return apic::AccessResult::gp();
        }
        software_eoi_locked(fx);
        return apic::AccessResult::ok();
    }
    const apic::ApicMode before = apic_.mode();
    apic::AccessResult r = apic_.msr_write(msr, value, clock_.now());
    if (x2 && off == reg::kIcrLow && r.is_ok()) {
        page_->write_bytes(vapic::kVicrLo, 8, value & ~apic::icr::kDeliveryStatus);
    }
    after_model_locked(before);
    fx.model = r;
    return r;
}

}  // namespace hv::vmx
