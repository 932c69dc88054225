// ApicvBackend, hypervisor half: state kept beside the hardware structures, delivery from other
// threads, the scheduling hooks that switch NV/NDST/SN (KVM's posted_intr.c), the LAPIC timer,
// flatten/restore and counters.
#include <sched.h>

#include <utility>

#include "vmx/apicv_backend.hpp"

namespace hv::vmx {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(ApicvExit::Count)> kExitNames{
    "external_interrupt", "msr_read", "msr_write", "tpr_below_threshold",
    "apic_access",        "eoi_induced", "apic_write"};

constexpr std::array<std::string_view, static_cast<std::size_t>(ApicvStat::Count)> kStatNames{
    "irq_ipi",
    "irq_msi",
    "irq_ioapic",
    "irq_timer",
    "irq_local_lvt",
    "irq_refused",
    "nmi",
    "smi",
    "init",
    "sipi",
    "extint",
    "posted",
    "coalesced",
    "notify_suppressed",
    "notify_sent",
    "notifications",
    "wakeups",
    "kicks",
    "wakes",
    "pir_synced",
    "virtual_interrupts_delivered",
    "eoi_virtualized",
    "self_ipi_virtualized",
    "ipiv_completed",
    "eoi",
    "eoi_broadcast"};

// NDST for the host CPU this thread runs on. Hosts run their APICs in x2APIC mode.
uint32_t host_ndst()
{
    const int cpu = sched_getcpu();
    return pid::ndst_for(cpu < 0 ? 0u : static_cast<uint32_t>(cpu), true);
}

} // namespace

ApicvBackend::ApicvBackend(ApicvVm& vm, std::size_t index, const apic::LocalApicConfig& cfg,
                           apic::GuestClock& clock, apic::ApicPlatform& platform,
                           apic::VcpuNotifier& notifier)
    : vm_(vm), index_(index), opts_(vm.options()), clock_(clock), platform_(platform),
      notifier_(notifier), pid_(vm.pid(index)), apic_(cfg),
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
    update_control(pid_, ControlUpdate{opts_.notification_vector, host_ndst(), true});
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
    for (uint32_t off : {apic::reg::kId, apic::reg::kVersion, apic::reg::kLdr, apic::reg::kDfr,
                         apic::reg::kSvr, apic::reg::kEsr, apic::reg::kTimerInitial,
                         apic::reg::kTimerDivide}) {
        page_->set(off, apic::page_get(p, off));
    }
    for (std::size_t i = 0; i < apic::kLvtCount; ++i) {
        const uint32_t off = apic::lvt_offset(static_cast<apic::Lvt>(i));
        page_->set(off, apic::page_get(p, off));
    }
    page_->set_vectors(vapic::kVtmr, tmr_);
    page_->set(apic::reg::kTimerCurrent, 0); // TMCCT reads always exit
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
    uint32_t sec = vid ? (secondary::kApicRegisterVirtualization |
                          secondary::kVirtualInterruptDelivery)
                       : 0;
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
        stats_.add(ApicvStat::Coalesced,
                   static_cast<uint64_t>(std::popcount(old & w[i])));
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
            set_tmr_locked(a.vector, false); // local sources are edge-triggered
        }
    }
    return out;
}

void ApicvBackend::after_model_locked(apic::ApicMode before)
{
    const apic::ApicMode after = apic_.mode();
    if (before != after &&
        (before == apic::ApicMode::Disabled || after == apic::ApicMode::Disabled)) {
        reset_hardware_state_locked(); // SDM Vol3 11.4.3: the registers were reset
    } else if (before == apic::ApicMode::XApic && after == apic::ApicMode::X2Apic) {
        // The page's ICR becomes one 64-bit register at 300H (KVM: kvm_apic_set_x2apic_id...).
        const uint64_t icr = (static_cast<uint64_t>(page_->get(vapic::kVicrHi)) << 32) |
                             page_->get(vapic::kVicrLo);
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
            stats_.add(ApicvStat::FromTimer);
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
    if (!events_or_pending_locked()) {
        return Notify::None;
    }
    switch (sched_) {
    case Sched::InGuest:
        count_exit(ApicvExit::ExternalInterrupt);
        stats_.add(ApicvStat::Kicks);
        return Notify::Kick;
    case Sched::Blocked:
        stats_.add(ApicvStat::Wakes);
        return Notify::Wake;
    case Sched::Outside:
        break;
    }
    return Notify::None;
}

void ApicvBackend::do_notify(Notify n)
{
    if (n == Notify::Kick) {
        notifier_.kick();
    } else if (n == Notify::Wake) {
        notifier_.wake();
    }
}

void ApicvBackend::on_notification()
{
    stats_.add(ApicvStat::Notifications);
    stats_.add(ApicvStat::Kicks);
    notifier_.kick();
}

void ApicvBackend::on_wakeup()
{
    stats_.add(ApicvStat::Wakeups);
    stats_.add(ApicvStat::Wakes);
    notifier_.wake();
}

void ApicvBackend::finish(const Effects& fx)
{
    // No lock held: what the exit handlers asked of the VM.
    do_notify(fx.notify);
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

// ---------------------------------------------------------------------------------------------
// Delivery (any thread).

void ApicvBackend::count_source(apic::Source s)
{
    switch (s) {
    case apic::Source::Ipi:
        stats_.add(ApicvStat::FromIpi);
        break;
    case apic::Source::Msi:
        stats_.add(ApicvStat::FromMsi);
        break;
    case apic::Source::IoApic:
        stats_.add(ApicvStat::FromIoApic);
        break;
    case apic::Source::Timer:
        stats_.add(ApicvStat::FromTimer);
        break;
    case apic::Source::LocalLvt:
    case apic::Source::Count:
        stats_.add(ApicvStat::FromLocalLvt);
        break;
    }
}

void ApicvBackend::post_self(uint8_t vector)
{
    const PostResult r = vmx::post(pid_, vector);
    count_post(r);
    if (r.notify) {
        vm_.notify(index_, r);
    }
}

void ApicvBackend::count_post(const PostResult& r)
{
    stats_.add(ApicvStat::Posted);
    if (r.coalesced) {
        stats_.add(ApicvStat::Coalesced);
    }
    if (r.suppressed) {
        stats_.add(ApicvStat::Suppressed);
    } else if (r.notify) {
        stats_.add(ApicvStat::NotifySent);
    }
    // ON already set is the common case under load: derived in stats(), not counted here.
}

void ApicvBackend::raise(const apic::VectorWords& w)
{
    // Vectors for this vCPU from another thread (no lock held): posted, or without posted
    // interrupts put in VIRR with a kick/wake (KVM's "APICv without PI" path).
    if (apic::highest_vector(w) == std::nullopt) {
        return;
    }
    if (opts_.posted_interrupts) {
        for (std::size_t i = 0; i < w.size(); ++i) {
            for (uint32_t bits = w[i]; bits != 0; bits &= bits - 1) {
                post_self(static_cast<uint8_t>(32 * i + static_cast<std::size_t>(std::countr_zero(bits))));
            }
        }
        return;
    }
    Notify n = Notify::None;
    {
        std::lock_guard lock(mu_);
        inject_locked(w);
        n = notify_locked();
    }
    do_notify(n);
}

bool ApicvBackend::fast_path_ok(uint8_t vector) const
{
    // What LocalApic::accept() would check, read lock-free: enabled and software-enabled, a
    // legal vector, and an edge vector whose TMR bit is already clear (nothing to update).
    return apic::is_legal_vector(vector) && accepting_.load(std::memory_order_relaxed) &&
           (tmr_mirror_[vector >> 5].load(std::memory_order_relaxed) & (1u << (vector & 31u))) ==
               0;
}

void ApicvBackend::deliver(const apic::Interrupt& irq)
{
    const bool fixed = irq.mode == apic::DeliveryMode::Fixed ||
                       irq.mode == apic::DeliveryMode::LowestPriority;
    if (fixed && irq.trigger == apic::Trigger::Edge && fast_path_ok(irq.vector)) {
        count_source(irq.source);
        if (opts_.posted_interrupts) {
            post_self(irq.vector); // lock-free: SDM Vol3 30.6 posting
        } else {
            apic::VectorWords w{};
            apic::set_vector(w, irq.vector);
            raise(w);
        }
        return;
    }
    deliver_slow(irq);
}

void ApicvBackend::deliver_slow(const apic::Interrupt& irq)
{
    apic::VectorWords raised{};
    Notify n = Notify::None;
    bool timer = false;
    {
        std::lock_guard lock(mu_);
        const apic::PendingEvents events_before = events_;
        switch (irq.mode) {
        case apic::DeliveryMode::Fixed:
        case apic::DeliveryMode::LowestPriority:
            // The acceptance rules (disabled APIC, illegal vector -> ESR, TMR) are the
            // LocalApic's; the vector then leaves it for PIR/VIRR.
            if (apic_.accept(irq.vector, irq.trigger)) {
                count_source(irq.source);
                set_tmr_locked(irq.vector, irq.trigger == apic::Trigger::Level);
                raised = drain_model_locked(irq.vector);
            } else {
                stats_.add(ApicvStat::Refused);
                raised = drain_model_locked(); // an error LVT interrupt
            }
            break;
        case apic::DeliveryMode::Nmi:
            events_.nmi = true;
            stats_.add(ApicvStat::Nmi);
            break;
        case apic::DeliveryMode::Smi:
            events_.smi = true;
            stats_.add(ApicvStat::Smi);
            break;
        case apic::DeliveryMode::Init:
            if (irq.assert_level || irq.trigger == apic::Trigger::Edge) {
                const apic::ApicMode before = apic_.mode();
                apic_.init();
                reset_hardware_state_locked();
                after_model_locked(before);
                events_.init = true;
                events_.sipi.reset();
                stats_.add(ApicvStat::Init);
            }
            break;
        case apic::DeliveryMode::StartUp:
            if (auto v = apic_.sipi(irq.vector)) {
                events_.sipi = v;
                stats_.add(ApicvStat::Sipi);
            }
            break;
        case apic::DeliveryMode::ExtInt:
            events_.extint = true;
            stats_.add(ApicvStat::ExtInt);
            break;
        case apic::DeliveryMode::Reserved3:
            stats_.add(ApicvStat::Refused);
            break;
        }
        timer = std::exchange(timer_dirty_, false);
        // Fixed vectors notify through raise(); events (NMI, INIT, ...) need the hypervisor.
        if (!(events_ == events_before)) {
            n = notify_locked();
        }
    }
    do_notify(n);
    raise(raised);
    if (timer) {
        platform_.timer_changed(index_);
    }
}

apic::DestInfo ApicvBackend::dest_info() const
{
    std::lock_guard lock(mu_);
    apic::DestInfo d = apic_.dest_info();
    d.ppr = page_->vppr();
    return d;
}

void ApicvBackend::set_ioapic_eoi_vectors(const apic::VectorWords& v)
{
    std::lock_guard lock(mu_);
    ioapic_eoi_ = v;
    rebuild_eoi_exit_locked();
}

// ---------------------------------------------------------------------------------------------
// Injection point (vCPU thread): virtual-interrupt delivery.

std::optional<uint8_t> ApicvBackend::pending_vector()
{
    bool changed = false;
    std::optional<uint8_t> v;
    {
        std::lock_guard lock(mu_);
        sync_pir_locked();
        poll_timer_locked(changed);
        v = pending_locked();
    }
    if (changed) {
        platform_.timer_changed(index_);
    }
    return v;
}

apic::AckResult ApicvBackend::ack()
{
    bool changed = false;
    apic::AckResult r;
    {
        std::lock_guard lock(mu_);
        sync_pir_locked();
        poll_timer_locked(changed);
        if (pending_locked()) {
            r.vector = hw_deliver_virtual_interrupt();
        } else {
            // SDM Vol3 11.9 "Spurious Interrupt": nothing deliverable any more.
            r.vector = static_cast<uint8_t>(page_->get(apic::reg::kSvr) & apic::svr::kVectorMask);
            r.spurious = true;
        }
    }
    if (changed) {
        platform_.timer_changed(index_);
    }
    return r;
}

apic::PendingEvents ApicvBackend::take_events()
{
    std::lock_guard lock(mu_);
    apic::PendingEvents e = events_;
    events_ = apic::PendingEvents{};
    return e;
}

apic::RunState ApicvBackend::run_state() const
{
    std::lock_guard lock(mu_);
    return apic_.run_state();
}

void ApicvBackend::set_run_state(apic::RunState r)
{
    std::lock_guard lock(mu_);
    apic_.set_run_state(r);
}

// ---------------------------------------------------------------------------------------------
// Scheduling hooks (vCPU thread): KVM's vmx_vcpu_pi_load / vmx_vcpu_pi_put / pi_enable_wakeup.

void ApicvBackend::enter_guest()
{
    std::lock_guard lock(mu_);
    if (sched_ == Sched::Blocked && opts_.posted_interrupts) {
        vm_.remove_blocked(index_); // entered without unblock(): leave the wake-up list anyway
    }
    sched_ = Sched::InGuest;
    if (opts_.posted_interrupts) {
        // NV = notification vector, NDST = this CPU, SN = 0; then, as KVM does after clearing SN,
        // announce anything posted while SN was set.
        update_control(pid_, ControlUpdate{opts_.notification_vector, host_ndst(), false});
        if (!pid_.pir_empty()) {
            set_on(pid_);
        }
    }
    if (!opts_.virtual_interrupt_delivery) {
        // KVM's update_cr8_intercept: exit when the guest lowers TPR below the highest masked
        // pending interrupt's class.
        const uint8_t irr = page_->highest(vapic::kVirr).value_or(0);
        const uint32_t irr_class = irr >> 4;
        const uint32_t tpr_class = page_->vtpr() >> 4;
        vmcs_.tpr_threshold.value = (irr == 0 || tpr_class < irr_class) ? 0 : irr_class;
    }
}

void ApicvBackend::leave_guest()
{
    std::lock_guard lock(mu_);
    sched_ = Sched::Outside;
    if (opts_.posted_interrupts) {
        update_control(pid_, ControlUpdate{std::nullopt, std::nullopt, true});
    }
}

bool ApicvBackend::block()
{
    std::lock_guard lock(mu_);
    if (opts_.posted_interrupts) {
        // pi_enable_wakeup_handler: on the blocked list first, then NV = wake-up vector with
        // SN = 0, then look at PIR. A post either lands before the look (we see it) or reads
        // NV = wake-up vector with its ON test-and-set (the wake-up handler finds us).
        const uint32_t ndst = host_ndst();
        vm_.add_blocked(index_);
        update_control(pid_, ControlUpdate{opts_.wakeup_vector, ndst, false});
        sync_pir_locked();
    }
    if (events_or_pending_locked()) {
        if (opts_.posted_interrupts) {
            update_control(pid_, ControlUpdate{opts_.notification_vector, std::nullopt, true});
            vm_.remove_blocked(index_);
        }
        sched_ = Sched::Outside;
        return false;
    }
    sched_ = Sched::Blocked;
    return true;
}

void ApicvBackend::unblock()
{
    std::lock_guard lock(mu_);
    sched_ = Sched::Outside;
    if (opts_.posted_interrupts) {
        update_control(pid_, ControlUpdate{opts_.notification_vector, std::nullopt, true});
        vm_.remove_blocked(index_);
    }
}

// ---------------------------------------------------------------------------------------------
// Timer (timer thread): the hypervisor emulates the LAPIC timer, as KVM does.

std::optional<uint64_t> ApicvBackend::timer_deadline() const
{
    std::lock_guard lock(mu_);
    return apic_.next_timer_deadline();
}

void ApicvBackend::timer_fired()
{
    bool changed = false;
    apic::VectorWords raised{};
    {
        std::lock_guard lock(mu_);
        const auto d = apic_.next_timer_deadline();
        const apic::GuestTime now = clock_.now();
        if (d && *d <= now.ns) {
            if (apic_.timer_expired(now)) {
                stats_.add(ApicvStat::FromTimer);
            }
            raised = drain_model_locked();
            changed = true;
        }
    }
    raise(raised);
    if (changed) {
        platform_.timer_changed(index_);
    }
}

// ---------------------------------------------------------------------------------------------
// State and counters.

uint64_t ApicvBackend::page_icr() const
{
    if (apic_.mode() == apic::ApicMode::X2Apic) {
        return page_->read_bytes(vapic::kVicrLo, 8);
    }
    return (static_cast<uint64_t>(page_->get(vapic::kVicrHi)) << 32) | page_->get(vapic::kVicrLo);
}

apic::ApicState ApicvBackend::flatten()
{
    bool changed = false;
    apic::ApicState s;
    {
        std::lock_guard lock(mu_);
        poll_timer_locked(changed);
        s = apic_.flatten(clock_.now());
        // DESIGN.md: PIR merged into IRR even when ON is clear; RVI/SVI are not saved.
        const apic::VectorWords pir = pid_.peek_pir();
        const apic::VectorWords virr = page_->vectors(vapic::kVirr);
        for (std::size_t i = 0; i < 8; ++i) {
            s.irr[i] = virr[i] | pir[i];
        }
        // Vectors 0-15 can only come from a VT-d post (the remapping unit does not check the
        // vector); they are not interrupts an APIC can hold (SDM Vol3 11.5.2) and are dropped.
        s.irr[0] &= ~0xFFFFu;
        if (apic_.mode() == apic::ApicMode::Disabled) {
            s.irr = {}; // posted while disabled: discarded when the APIC is enabled again
        }
        s.isr = page_->vectors(vapic::kVisr);
        s.tmr = tmr_;
        s.tpr = page_->vtpr();
        s.icr = page_icr() & ~apic::icr::kDeliveryStatus;
    }
    if (changed) {
        platform_.timer_changed(index_);
    }
    return s;
}

std::optional<std::string> ApicvBackend::restore(const apic::ApicState& s)
{
    if (auto err = apic::validate(s, apic_.config().caps)) {
        return err; // nothing changed
    }
    {
        std::lock_guard lock(mu_);
        apic::ApicState model = s;
        model.tpr = 0;
        model.isr = {};
        model.irr = {};
        if (auto err = apic_.restore(model, clock_.now())) {
            return err; // cannot happen: `model` is as valid as `s`
        }
        reset_hardware_state_locked();
        page_->set(vapic::kVtpr, s.tpr);
        page_->set_vectors(vapic::kVisr, s.isr);
        page_->set_vectors(vapic::kVirr, s.irr);
        if (apic_.mode() == apic::ApicMode::X2Apic) {
            page_->write_bytes(vapic::kVicrLo, 8, s.icr);
        } else {
            page_->set(vapic::kVicrLo, static_cast<uint32_t>(s.icr));
            page_->set(vapic::kVicrHi, static_cast<uint32_t>(s.icr >> 32));
        }
        tmr_ = s.tmr;
        for (std::size_t i = 0; i < 8; ++i) {
            tmr_mirror_[i].store(tmr_[i], std::memory_order_relaxed);
        }
        rebuild_eoi_exit_locked();
        // RVI and SVI are derived (SDM Vol3 30.1: the CPU keeps them consistent with VIRR/VISR).
        GuestInterruptStatus g;
        g.set_rvi(page_->highest(vapic::kVirr).value_or(0));
        g.set_svi(page_->highest(vapic::kVisr).value_or(0));
        vmcs_.set_gis(g);
        hw_ppr_virtualization();
        mirror_locked();
        update_controls_locked();
        refresh_table_locked();
        // NV/NDST/SN are this host's, computed anew.
        if (opts_.posted_interrupts) {
            const bool running = sched_ == Sched::InGuest;
            const bool blocked = sched_ == Sched::Blocked;
            update_control(pid_, ControlUpdate{blocked ? opts_.wakeup_vector
                                                       : opts_.notification_vector,
                                               host_ndst(), !(running || blocked)});
        }
    }
    platform_.timer_changed(index_);
    return std::nullopt;
}

VmcsImage ApicvBackend::vmcs() const
{
    std::lock_guard lock(mu_);
    return vmcs_;
}

VirtualApicPage ApicvBackend::page() const
{
    std::lock_guard lock(mu_);
    return *page_;
}

apic::CounterList ApicvBackend::exit_counters() const
{
    apic::CounterList out;
    exits_.append_to(out);
    return out;
}

apic::CounterList ApicvBackend::stats() const
{
    apic::CounterList out;
    stats_.append_to(out);
    const uint64_t posted = stats_.get(ApicvStat::Posted);
    const uint64_t other = stats_.get(ApicvStat::NotifySent) + stats_.get(ApicvStat::Suppressed);
    out.push_back({"on_already_set", posted > other ? posted - other : 0});
    return out;
}

} // namespace hv::vmx
