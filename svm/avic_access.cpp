// AvicBackend: guest register access. Each access is classified as the CPU would (avic_regs.hpp):
// accelerated (no exit; reads come from the backing page), AVIC_NOACCEL trap or fault (counted,
// then applied by the hypervisor's model), or an intercepted MSR. The register semantics are
// apic::LocalApic's in every case, so the guest sees what the emulated backend shows.
#include "svm/avic_backend.hpp"

namespace hv::svm {
namespace {

bool is_x2apic_msr(uint32_t msr)
{
    return msr >= apic::kX2apicMsrFirst && msr <= apic::kX2apicMsrLast;
}

AvicExit exit_of(IpiFailure f)
{
    switch (f) {
    case IpiFailure::InvalidIntType:
        return AvicExit::IncompleteIpiInvalidIntType;
    case IpiFailure::TargetNotRunning:
        return AvicExit::IncompleteIpiNotRunning;
    case IpiFailure::InvalidTarget:
        return AvicExit::IncompleteIpiInvalidTarget;
    case IpiFailure::InvalidBackingPage:
        return AvicExit::IncompleteIpiInvalidBackingPage;
    case IpiFailure::InvalidVector:
        return AvicExit::IncompleteIpiInvalidVector;
    }
    return AvicExit::IncompleteIpiInvalidIntType;
}

}  // namespace

uint32_t AvicBackend::page_value(uint32_t offset) const
{
    return vm_.backing_page(index_).load(offset);
}

void AvicBackend::count_access_locked(AvicAccess a, uint32_t offset, bool write, uint8_t vector)
{
    switch (a) {
    case AvicAccess::Accelerated:
        return;
    case AvicAccess::Trap:
        exits_.add(AvicExit::NoaccelTrap);
        noaccel_.add(static_cast<NoaccelSlot>(reg_group(offset)));
        break;
    case AvicAccess::Fault:
        exits_.add(write ? AvicExit::NoaccelFaultWrite : AvicExit::NoaccelFaultRead);
        noaccel_.add(static_cast<NoaccelSlot>(kRegGroups + reg_group(offset)));
        break;
    }
    // APM Vol2 15.29.9.2: EXITINFO1 = offset | write << 32; EXITINFO2 = vector (EOI traps).
    record_exit_locked(ExitCode::AvicNoaccel, noaccel_info1(offset, write), vector);
}

bool AvicBackend::inhibited_locked() const
{
    return apic_.mode() == apic::ApicMode::X2Apic && !vm_.options().x2avic;
}

apic::AccessResult AvicBackend::mmio_read(uint64_t gpa, unsigned size)
{
    After a;
    {
        std::lock_guard lock(mu_);
        const auto base = apic_.mmio_base();
        if (!base || gpa < *base || gpa - *base >= apic::reg::kPageSize) {
            return apic::AccessResult::not_mine();
        }
        const auto off = static_cast<uint32_t>(gpa - *base);
        const uint32_t reg = off & ~0xFu;
        const uint32_t in = off & 0xFu;
        const apic::GuestTime t = now();
        const bool size_ok = size == 1 || size == 2 || size == 4;
        const AvicAccess acc = classify_read(reg, apic_.config().caps.cmci);
        fold_locked();  // the page's IRR as posted so far (APR depends on it too)
        if (acc == AvicAccess::Accelerated && size_ok && (in + size <= 4 || in >= 4) &&
            in + size <= 16) {
            // APM Vol2 15.29.4.1: the CPU reads the backing page (bytes 4-15 of a slot are 0).
            const uint64_t mask = size == 4 ? 0xFFFFFFFFULL : ((1ULL << (size * 8)) - 1);
            // Bytes 4-15 read as 0 (and shifting the dword by 32 or more bits would be UB).
            const uint64_t bytes = in < 4 ? (page_value(reg) >> (in * 8)) & mask : 0;
            return apic::AccessResult::ok(bytes);
        }
        count_access_locked(acc == AvicAccess::Accelerated ? AvicAccess::Fault : acc, reg, false,
                            0);
        a.r = apic_.mmio_read(off, size, t);
        sync_locked(false);  // a reserved register sets ESR
    }
    finish(a);
    return a.r;
}

apic::AccessResult AvicBackend::mmio_write(uint64_t gpa, unsigned size, uint32_t value)
{
    After a;
    {
        std::lock_guard lock(mu_);
        const auto base = apic_.mmio_base();
        if (!base || gpa < *base || gpa - *base >= apic::reg::kPageSize) {
            return apic::AccessResult::not_mine();
        }
        const auto off = static_cast<uint32_t>(gpa - *base);
        const uint32_t reg = off & ~0xFu;
        const apic::GuestTime t = now();
        fold_locked();  // posts so far are accepted before the write changes acceptance (SVR)
        a.r = apic_.mmio_write(off, size, value, t);
        sync_locked(a.r.mode_changed);
        const bool whole = size == 4 && (off & 0xFu) == 0;
        const bool level_eoi = a.r.eoi && a.r.eoi->level;
        const AvicAccess acc =
            whole ? classify_write(reg, level_eoi, apic_.config().caps.cmci) : AvicAccess::Fault;
        if (acc == AvicAccess::Accelerated && reg == apic::reg::kIcrLow) {
            a.path = IpiPath::Hardware;
            a.icr = (static_cast<uint64_t>(page_value(apic::reg::kIcrHigh)) << 32) |
                    page_value(apic::reg::kIcrLow);
        } else {
            const uint8_t vec = level_eoi && a.r.eoi->vector ? *a.r.eoi->vector : 0;
            count_access_locked(acc, reg, true, vec);
        }
    }
    finish(a);
    return a.r;
}

// CR8 is not intercepted: the CPU keeps V_TPR (APM Vol2 15.21.1) and, with AVIC, the backing
// page's TPR in step with it, so a MOV to CR8 changes the TPR without an exit.
std::optional<uint8_t> AvicBackend::cr8() const
{
    std::lock_guard lock(mu_);
    return apic_.cr8();
}

void AvicBackend::write_cr8(uint8_t value)
{
    std::lock_guard lock(mu_);
    apic_.write_cr8(value);
    sync_locked(false);
}

apic::AccessResult AvicBackend::msr_read(uint32_t msr)
{
    After a;
    {
        std::lock_guard lock(mu_);
        const apic::GuestTime t = now();
        const bool accel_mode = apic_.mode() == apic::ApicMode::X2Apic && vm_.options().x2avic;
        if (is_x2apic_msr(msr)) {
            fold_locked();  // IRR (and APR) as posted so far
        }
        a.r = apic_.msr_read(msr, t);
        if (a.r.status == apic::AccessStatus::NotMine) {
            return a.r;
        }
        if (!is_x2apic_msr(msr) || !accel_mode) {
            // IA32_APIC_BASE / TSC_DEADLINE are intercepted; so is the x2APIC range when the
            // vCPU is in xAPIC mode or AVIC is inhibited (x2APIC without x2AVIC).
            exits_.add(AvicExit::Msr);
            record_exit_locked(ExitCode::Msr, 0, 0);
        } else {
            // APM Vol2 15.29.10 "x2AVIC": the x2APIC MSRs use the backing page like MMIO.
            const uint32_t off = apic::mmio_offset_of(msr);
            AvicAccess acc = classify_read(off, apic_.config().caps.cmci);
            if (a.r.is_gp() || off == apic::reg::kIcrHigh) {
                acc = AvicAccess::Fault;  // reserved in x2APIC mode: the hypervisor injects #GP
            }
            if (acc == AvicAccess::Accelerated) {
                a.r.value = off == apic::reg::kIcrLow
                                ? (static_cast<uint64_t>(page_value(apic::reg::kIcrHigh)) << 32) |
                                      page_value(apic::reg::kIcrLow)
                                : page_value(off);
            }
            count_access_locked(acc, off, false, 0);
        }
    }
    finish(a);
    return a.r;
}

apic::AccessResult AvicBackend::msr_write(uint32_t msr, uint64_t value)
{
    After a;
    {
        std::lock_guard lock(mu_);
        const apic::GuestTime t = now();
        const bool accel_mode = apic_.mode() == apic::ApicMode::X2Apic && vm_.options().x2avic;
        if (is_x2apic_msr(msr) || msr == apic::kMsrApicBase) {
            fold_locked();  // posts so far are accepted before the write changes acceptance
        }
        a.r = apic_.msr_write(msr, value, t);
        if (a.r.status == apic::AccessStatus::NotMine) {
            return a.r;
        }
        sync_locked(a.r.mode_changed);
        if (!is_x2apic_msr(msr) || !accel_mode) {
            exits_.add(AvicExit::Msr);
            record_exit_locked(ExitCode::Msr, 0, 0);
            a.path = a.r.ipi ? IpiPath::Software : IpiPath::None;
        } else {
            const uint32_t off = apic::mmio_offset_of(msr);
            const bool level_eoi = a.r.eoi && a.r.eoi->level;
            if (!a.r.is_gp() && (off == apic::reg::kIcrLow || off == apic::reg::kSelfIpi)) {
                // ICR and SELF_IPI writes go to the AVIC IPI engine (APM Vol2 15.29.10).
                a.path = IpiPath::Hardware;
                a.icr = off == apic::reg::kIcrLow
                            ? (value & ~apic::icr::kDeliveryStatus)
                            : (a.r.ipi ? apic::encode_icr(*a.r.ipi, true) : value);
            } else {
                const AvicAccess acc =
                    a.r.is_gp() ? AvicAccess::Fault
                                : classify_write(off, level_eoi, apic_.config().caps.cmci);
                const uint8_t vec = level_eoi && a.r.eoi->vector ? *a.r.eoi->vector : 0;
                count_access_locked(acc, off, true, vec);
            }
        }
    }
    finish(a);
    return a.r;
}

void AvicBackend::finish(After& a)
{
    // No lock held: the IPI engine, the hypervisor's completion and the platform calls.
    switch (a.path) {
    case IpiPath::Hardware:
        if (a.r.ipi) {
            send_hardware_ipi(*a.r.ipi, a.icr);
        } else {
            // A reserved delivery mode or an invalid shorthand combination: the CPU takes
            // AVIC_INCOMPLETE_IPI (invalid interrupt type); the hypervisor's emulation sends
            // nothing (apic/README.md "ICR").
            std::lock_guard lock(mu_);
            exits_.add(AvicExit::IncompleteIpiInvalidIntType);
            record_exit_locked(ExitCode::AvicIncompleteIpi, a.icr,
                               incomplete_ipi_info2(IpiFailure::InvalidIntType, 0));
        }
        break;
    case IpiPath::Software:
        if (a.r.ipi) {
            vm_.stats(index_).add(AvicStat::IpiSoftware);
            platform_.send_ipi(index_, *a.r.ipi);
        }
        break;
    case IpiPath::None:
        break;
    }
    if (a.r.eoi && a.r.eoi->broadcast && a.r.eoi->vector) {
        platform_.eoi_to_ioapic(*a.r.eoi->vector);
    }
    if (a.r.timer_changed || a.r.mode_changed || timer_dirty_.exchange(false)) {
        platform_.timer_changed(index_);
    }
}

void AvicBackend::send_hardware_ipi(const apic::Ipi& ipi, uint64_t icr)
{
    const IpiOutcome o = vm_.hardware_ipi(index_, ipi);
    if (!o.failure) {
        vm_.stats(index_).add(AvicStat::IpiAccelerated);
        return;
    }
    {
        std::lock_guard lock(mu_);
        exits_.add(exit_of(*o.failure));
        record_exit_locked(ExitCode::AvicIncompleteIpi, icr,
                           incomplete_ipi_info2(*o.failure, o.index));
    }
    if (*o.failure == IpiFailure::TargetNotRunning) {
        // APM Vol2 15.29.9.1: the IRR bits are set; the hypervisor only wakes the targets.
        vm_.complete_not_running(index_, ipi);
        return;
    }
    // Causes 0, 2, 3, 4: nothing was delivered; the hypervisor emulates the whole IPI.
    vm_.stats(index_).add(AvicStat::IpiSoftware);
    platform_.send_ipi(index_, ipi);
}

}  // namespace hv::svm
