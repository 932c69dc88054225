// ApicvBackend, hypervisor half: the state kept beside the hardware structures — the LocalApic
// mirrored into the page, the VMCS controls, the TMR and EOI-exit bitmap, the PID-pointer entry —
// and the helpers the other files use (PIR sync, VIRR injection, notifications).
#include "vmx/apicv_backend.hpp"

#include <bit>

namespace hv::vmx {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(ApicvExit::Count)> kExitNames{
    "external_interrupt", "msr_read",    "msr_write", "tpr_below_threshold",
    "apic_access",        "eoi_induced", "apic_write"};

constexpr std::array<std::string_view, static_cast<std::size_t>(ApicvStat::Count)> kStatNames{
    "posted",
    "coalesced",
    "notify_suppressed",
    "notify_sent",
    "notifications",
    "wakeups",
    "pir_synced",
    "virtual_interrupts_delivered",
    "eoi_virtualized",
    "self_ipi_virtualized",
    "ipiv_completed",
    "eoi",
    "eoi_broadcast"};

}  // namespace

ApicvBackend::ApicvBackend(ApicvVm& vm, std::size_t index, const apic::LocalApicConfig& cfg,
                           apic::GuestClock& clock, apic::ApicPlatform& platform,
                           apic::VcpuNotifier& notifier)
    : ModelBackend(index, notifier), vm_(vm), opts_(vm.options()), clock_(clock),
      platform_(platform), pid_(vm.pid(index)), apic_(cfg),
      page_(std::make_unique<VirtualApicPage>()), exits_(kExitNames), stats_(kStatNames)
{
    for (auto& w : tmr_mirror_) {
        w.store(0, std::memory_order_relaxed);
    }
    {
        std::lock_guard lock(mu_);
        reset_hardware_state_locked();
        mirror_locked();
        update_controls_locked();
        refresh_table_locked();
    }
    update_control(pid_, ControlUpdate{opts_.notification_vector, vm_.ndst_for(index_), true});
    vm_.attach(index_, this);
}

ApicvBackend::~ApicvBackend()
{
    vm_.detach(index_);
    std::lock_guard lock(mu_);
    if (table_id_) {
        vm_.set_table_entry(*table_id_, std::nullopt);
    }
}

// ---------------------------------------------------------------------------------------------
// State kept beside the hardware structures (caller holds mu_).

void ApicvBackend::reset_hardware_state_locked()
{
    // INIT, APIC disable/enable and restore start from an empty VIRR/VISR/VTPR; posted vectors
    // that were not yet processed are discarded with them (KVM: apicv_post_state_restore).
    for (uint32_t off : {vapic::kVtpr, vapic::kVppr, vapic::kVeoi}) {
        page_->set(off, 0);
    }
    page_->set_vectors(vapic::kVisr, {});
    page_->set_vectors(vapic::kVirr, {});
    page_->set(vapic::kVicrLo, 0);
    page_->set(vapic::kVicrLo + 4, 0);
    page_->set(vapic::kVicrHi, 0);
    vmcs_.set_gis({});
    clear_pid(pid_);
    tmr_ = {};
    for (auto& w : tmr_mirror_) {
        w.store(0, std::memory_order_relaxed);
    }
    rebuild_eoi_exit_locked();
}

void ApicvBackend::mirror_locked()
{
    // APIC-register virtualization reads what the hypervisor keeps on the page (KVM's regs page
    // is the virtual-APIC page). The hardware-owned registers and the ICR are not touched here.
    const auto deadline = apic_.next_timer_deadline();
    const apic::ApicState s = apic_.flatten(clock_.now());
    // LocalApic::flatten() processes a due timer expiry: its vector goes to VIRR now, and the
    // host timer must be re-armed.
    inject_locked(drain_model_locked());
    timer_dirty_ = timer_dirty_ || deadline != apic_.next_timer_deadline();
    const apic::ApicRegisterPage p = apic::to_register_page(s);
    for (uint32_t off :
         {apic::reg::kId, apic::reg::kVersion, apic::reg::kLdr, apic::reg::kDfr, apic::reg::kSvr,
          apic::reg::kEsr, apic::reg::kTimerInitial, apic::reg::kTimerDivide}) {
        page_->set(off, apic::page_get(p, off));
    }
    for (std::size_t i = 0; i < apic::kLvtCount; ++i) {
        const uint32_t off = apic::lvt_offset(static_cast<apic::Lvt>(i));
        page_->set(off, apic::page_get(p, off));
    }
    page_->set_vectors(vapic::kVtmr, tmr_);
    page_->set(apic::reg::kTimerCurrent, 0);  // TMCCT reads always exit
}

void ApicvBackend::update_controls_locked()
{
    // KVM's vmx_set_virtual_apic_mode / vmx_refresh_apicv_exec_ctrl: the APIC-access page while
    // in xAPIC mode, "virtualize x2APIC mode" while in x2APIC mode, neither while disabled.
    const apic::ApicMode mode = apic_.mode();
    const bool vid = opts_.virtual_interrupt_delivery;
    vmcs_.pin_controls.value = opts_.posted_interrupts ? pin::kProcessPostedInterrupts : 0;
    vmcs_.primary_controls.value = primary::kUseTprShadow | primary::kActivateSecondaryControls |
                                   (opts_.ipiv ? primary::kActivateTertiaryControls : 0);
    uint32_t sec =
        vid ? (secondary::kApicRegisterVirtualization | secondary::kVirtualInterruptDelivery) : 0;
    if (mode == apic::ApicMode::XApic) {
        sec |= secondary::kVirtualizeApicAccesses;
    } else if (mode == apic::ApicMode::X2Apic && opts_.x2apic_virtualization) {
        sec |= secondary::kVirtualizeX2apicMode;
    }
    vmcs_.secondary_controls.value = sec;
    vmcs_.tertiary_controls.value = opts_.ipiv ? tertiary::kIpiVirtualization : 0;
    vmcs_.pi_notification_vector.value = opts_.notification_vector;
    vmcs_.pid_address.value = reinterpret_cast<uintptr_t>(&pid_);
    vmcs_.virtual_apic_page.value = reinterpret_cast<uintptr_t>(page_.get());
    vmcs_.apic_access_page.value = apic_.mmio_base().value_or(0);
    vmcs_.pid_pointer_table.value = opts_.ipiv ? vm_.pid_table().address() : 0;
    vmcs_.last_pid_pointer_index.value = opts_.ipiv ? vm_.pid_table().last_index() : 0;
}

void ApicvBackend::rebuild_eoi_exit_locked()
{
    // KVM's vcpu_load_eoi_exitmap: the vectors whose EOI the IOAPIC must see. Level-triggered
    // vectors accepted into the TMR, plus what the IOAPIC routes say (set_ioapic_eoi_vectors).
    for (unsigned i = 0; i < 4; ++i) {
        const uint64_t lo = tmr_[2 * i] | ioapic_eoi_[2 * i];
        const uint64_t hi = tmr_[2 * i + 1] | ioapic_eoi_[2 * i + 1];
        vmcs_.eoi_exit(i) = lo | (hi << 32);
    }
}

void ApicvBackend::set_tmr_locked(uint8_t v, bool level)
{
    if (apic::test_vector(tmr_, v) == level) {
        return;
    }
    if (level) {
        apic::set_vector(tmr_, v);
    } else {
        apic::clear_vector(tmr_, v);
    }
    tmr_mirror_[v >> 5].store(tmr_[v >> 5], std::memory_order_relaxed);
    page_->set_vectors(vapic::kVtmr, tmr_);
    rebuild_eoi_exit_locked();
}

void ApicvBackend::refresh_table_locked()
{
    // IPI virtualization must only complete what the target would accept: keep this vCPU's
    // PID-pointer entry valid while its APIC is enabled and software-enabled, under its current
    // physical APIC ID (KVM inhibits APICv on APIC ID changes; a table update is enough here).
    const uint32_t svr = page_->get(apic::reg::kSvr);
    const apic::ApicMode mode = apic_.mode();
    const bool accept = mode != apic::ApicMode::Disabled && (svr & apic::svr::kEnable) != 0;
    accepting_.store(accept, std::memory_order_relaxed);
    if (!opts_.ipiv) {
        return;
    }
    const uint32_t id = apic_.dest_info().id;
    const uint32_t key = mode == apic::ApicMode::X2Apic ? id : (id & 0xFFu);
    std::optional<uint32_t> want;
    if (accept && key < vm_.pid_table().size()) {
        want = key;
    }
    if (table_id_ == want) {
        return;
    }
    if (table_id_ && vm_.pid_table().lookup(*table_id_) == &pid_) {
        vm_.set_table_entry(*table_id_, std::nullopt);
    }
    if (want) {
        vm_.set_table_entry(*want, index_);
    }
    table_id_ = want;
}

void ApicvBackend::inject_locked(const apic::VectorWords& w)
{
    // The hypervisor's kvm_lapic_set_irr + RVI update (vmx_hwapic_irr_update).
    uint8_t top = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
        if (w[i] == 0) {
            continue;
        }
        const uint32_t off = vapic::kVirr + 0x10u * static_cast<uint32_t>(i);
        const uint32_t old = page_->get(off);
        stats_.add(ApicvStat::Coalesced, static_cast<uint64_t>(std::popcount(old & w[i])));
        page_->set(off, old | w[i]);
    }
    if (const auto h = apic::highest_vector(w)) {
        top = *h;
    }
    GuestInterruptStatus g = vmcs_.gis();
    if (top > g.rvi()) {
        g.set_rvi(top);
        vmcs_.set_gis(g);
    }
}

apic::VectorWords ApicvBackend::drain_model_locked(std::optional<uint8_t> keep_level)
{
    // Whatever the LocalApic raised (accepted interrupt, timer, error LVT) leaves it at once:
    // acknowledge and EOI it there, so its IRR/ISR stay empty and VIRR/PIR hold the truth.
    apic::VectorWords out{};
    while (apic_.highest_pending()) {
        const apic::AckResult a = apic_.ack();
        if (a.spurious) {
            break;
        }
        apic_.eoi();
        apic::set_vector(out, a.vector);
        if (!keep_level || *keep_level != a.vector) {
            set_tmr_locked(a.vector, false);  // local sources are edge-triggered
        }
    }
    return out;
}

void ApicvBackend::after_model_locked(apic::ApicMode before)
{
    const apic::ApicMode after = apic_.mode();
    if (before != after &&
        (before == apic::ApicMode::Disabled || after == apic::ApicMode::Disabled)) {
        reset_hardware_state_locked();  // SDM Vol3 11.4.3: the registers were reset
    } else if (before == apic::ApicMode::XApic && after == apic::ApicMode::X2Apic) {
        // The page's ICR becomes one 64-bit register at 300H (KVM: kvm_apic_set_x2apic_id...).
        const uint64_t icr =
            (static_cast<uint64_t>(page_->get(vapic::kVicrHi)) << 32) | page_->get(vapic::kVicrLo);
        page_->write_bytes(vapic::kVicrLo, 8, icr);
        page_->set(vapic::kVicrHi, 0);
    }
    inject_locked(drain_model_locked());
    mirror_locked();
    update_controls_locked();
    refresh_table_locked();
}

void ApicvBackend::sync_pir_locked()
{
    // KVM's vmx_sync_pir_to_irr before every entry; the model takes PIR whether or not ON is set
    // (a post that met SN=1 set PIR without ON).
    if (opts_.posted_interrupts && (pid_.on() || !pid_.pir_empty())) {
        hw_process_posted();
    }
}

void ApicvBackend::poll_timer_locked(bool& changed)
{
    const auto d = apic_.next_timer_deadline();
    const apic::GuestTime now = clock_.now();
    if (d && *d <= now.ns) {
        if (apic_.timer_expired(now)) {
            deliveries_.add(apic::DeliveryStat::FromTimer);
        }
        inject_locked(drain_model_locked());
        changed = true;
    }
}

std::optional<uint8_t> ApicvBackend::pending_locked() const
{
    if (apic_.mode() == apic::ApicMode::Disabled) {
        return std::nullopt;
    }
    return hw_evaluate();
}

bool ApicvBackend::events_or_pending_locked() const
{
    return pending_locked().has_value() || events_.any();
}

ApicvBackend::Notify ApicvBackend::notify_locked()
{
    // Without a posted notification: a running vCPU takes an IPI that exits (external interrupt)
    // so the hypervisor re-evaluates at entry; a blocked one is woken.
    const Notify n = notify_if(events_or_pending_locked());
    if (n == Notify::Kick) {
        count_exit(ApicvExit::ExternalInterrupt);
    }
    return n;
}

void ApicvBackend::on_notification()
{
    stats_.add(ApicvStat::Notifications);
    schedule().kick();
}

void ApicvBackend::on_wakeup()
{
    stats_.add(ApicvStat::Wakeups);
    schedule().wake();
}

void ApicvBackend::finish(const Effects& fx)
{
    // No lock held: what the exit handlers asked of the VM.
    notify(fx.notify);
    if (fx.ipiv_target) {
        vm_.notify(*fx.ipiv_target, fx.ipiv_post);
    }
    if (fx.model.ipi) {
        platform_.send_ipi(index_, *fx.model.ipi);
    }
    if (fx.ioapic_eoi) {
        platform_.eoi_to_ioapic(*fx.ioapic_eoi);
    }
    if (fx.timer_changed || fx.model.timer_changed || fx.model.mode_changed || fx.timer_dirty) {
        platform_.timer_changed(index_);
    }
}

}  // namespace hv::vmx
