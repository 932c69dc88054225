// AvicBackend, hypervisor half: the state kept beside the hardware structures — the LocalApic
// model folded from and written back to the backing page, the VMCB image, the table addressing —
// and the helpers the other files use (timer polling, fold, sync, the last exit's EXITINFO).
#include "svm/avic_backend.hpp"

#include <array>
#include <bit>

#include "apic/apic_page.hpp"

namespace hv::svm {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(AvicExit::Count)> kExitNames{
    "avic_incomplete_ipi_invalid_int_type",
    "avic_incomplete_ipi_not_running",
    "avic_incomplete_ipi_invalid_target",
    "avic_incomplete_ipi_invalid_backing_page",
    "avic_incomplete_ipi_invalid_vector",
    "avic_noaccel_trap",
    "avic_noaccel_fault_read",
    "avic_noaccel_fault_write",
    "msr",
    "hlt"};

}  // namespace

AvicBackend::AvicBackend(AvicVm& vm, std::size_t index, const apic::LocalApicConfig& cfg,
                         apic::GuestClock& clock, apic::ApicPlatform& platform,
                         apic::VcpuNotifier& notifier)
    : ModelBackend(index, vm.schedule(index)), vm_(vm), clock_(clock), platform_(platform),
      apic_(cfg), exits_(kExitNames), noaccel_(kNoaccelNames)
{
    vm_.attach(index_, &notifier);
    // APM Vol2 15.29.3 "AVIC Enable": what the hypervisor programs into the VMCB.
    vmcb_.int_ctl = int_ctl::kAvicEnable;
    vmcb_.avic_backing_page = (AvicVm::backing_frame(index_) << 12) & kTableAddrMask;
    vmcb_.avic_logical_id = vm_.logical_table_pointer();
    vmcb_.avic_physical_id = vm_.physical_table_pointer();
    std::lock_guard lock(mu_);
    sync_locked(true);
}

// --- backing page <-> model ---

void AvicBackend::poll_timer_locked(apic::GuestTime t, bool& changed)
{
    const auto d = apic_.next_timer_deadline();
    if (d && *d <= t.ns) {
        if (apic_.timer_expired(t)) {
            deliveries_.add(apic::DeliveryStat::FromTimer);
        }
        changed = true;
        timer_dirty_.store(true);
    }
}

apic::ApicState AvicBackend::model_state_locked()
{
    // LocalApic::flatten(now) processes a due timer expiry as a side effect, which register
    // accesses must not do (the emulated backend does not either). The internal view is taken at
    // guest time 0, never past an armed deadline except one armed at 0: that one is processed
    // properly here and reported to the platform.
    if (const auto d = apic_.next_timer_deadline(); d && *d == 0) {
        bool changed = false;
        poll_timer_locked(now(), changed);
    }
    return apic_.flatten(apic::GuestTime{});
}

void AvicBackend::flush_timer()
{
    if (timer_dirty_.exchange(false)) {
        platform_.timer_changed(index_);
    }
}

void AvicBackend::fold_locked()
{
    // Posts made to the page since the last fold enter the model through the acceptance rules.
    const apic::ApicState s = model_state_locked();
    BackingPage& page = vm_.backing_page(index_);
    const apic::VectorWords irr = page.irr();
    for (uint32_t w = 0; w < 8; ++w) {
        for (uint32_t bits = irr[w] & ~s.irr[w]; bits != 0; bits &= bits - 1) {
            const auto v =
                static_cast<uint8_t>(w * 32 + static_cast<uint32_t>(std::countr_zero(bits)));
            if (!apic_.accept(v, apic::Trigger::Edge)) {
                page.clear_irr(v);
                vm_.stats(index_).add(AvicStat::Refused);
            }
        }
    }
}

void AvicBackend::sync_locked(bool replace_irr)
{
    const apic::ApicState s = model_state_locked();
    apic::ApicRegisterPage p = apic::to_register_page(s);
    apic::page_set(p, apic::reg::kTimerCurrent, 0);  // TMCCT reads always exit: not kept here
    vm_.backing_page(index_).write_registers(p, replace_irr);
    // V_TPR mirrors TPR[7:4] (APM Vol2 15.21.1); x2AVIC mode follows the guest's APIC mode.
    uint32_t ic = (vmcb_.int_ctl & ~int_ctl::kVTprMask) | ((s.tpr >> 4) & 0xFu);
    const bool x2 = s.x2apic() && vm_.options().x2avic;
    ic = x2 ? (ic | int_ctl::kX2apicMode) : (ic & ~int_ctl::kX2apicMode);
    const uint64_t bar = s.apic_base & kApicBarMask;
    if (ic != vmcb_.int_ctl || bar != vmcb_.avic_apic_bar) {
        vmcb_.clean &= ~kCleanAvic;  // APM Vol2 15.15.3: the CPU must reload the AVIC fields
    }
    vmcb_.int_ctl = ic;
    vmcb_.avic_apic_bar = bar;
    // Table maintenance: the hypervisor rebuilds the entries when ID, LDR, DFR or mode change
    // (Linux avic_handle_apic_id_update / _ldr_update / _dfr_update).
    const apic::DestInfo d = apic_.dest_info();
    const Addressing a{d.id, d.ldr, d.dfr, d.enabled, d.x2apic};
    if (!addressing_valid_ || a != addressing_) {
        addressing_ = a;
        addressing_valid_ = true;
        vm_.update_addressing(index_, a);
    }
}

bool AvicBackend::pending_locked() const
{
    return apic_.highest_pending().has_value() || events_.any();
}

void AvicBackend::record_exit_locked(ExitCode code, uint64_t info1, uint64_t info2)
{
    vmcb_.exit_code = static_cast<uint32_t>(code);
    vmcb_.exit_code_hi = 0;
    vmcb_.exit_info_1 = info1;
    vmcb_.exit_info_2 = info2;
}

}  // namespace hv::svm
