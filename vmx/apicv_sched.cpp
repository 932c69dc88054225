// ApicvBackend: the injection point (virtual-interrupt delivery), the scheduling hooks that
// switch NV/NDST/SN (KVM's posted_intr.c) and the LAPIC timer the hypervisor emulates.
#include "vmx/apicv_backend.hpp"

namespace hv::vmx {

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
    if (sched() == apic::SchedState::Blocked && opts_.posted_interrupts) {
        vm_.remove_blocked(index_);  // entered without unblock(): leave the wake-up list anyway
    }
    set_sched(apic::SchedState::InGuest);
    if (opts_.posted_interrupts) {
        // NV = notification vector, NDST = this CPU, SN = 0; then take what was posted while SN
        // was set (KVM sets ON after clearing SN and syncs PIR to IRR before every entry), so
        // RVI is current at entry whether or not core injects now.
        update_control(pid_, ControlUpdate{opts_.notification_vector, vm_.ndst_for(index_), false});
        sync_pir_locked();
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
    set_sched(apic::SchedState::Outside);
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
        const uint32_t ndst = vm_.ndst_for(index_);
        vm_.add_blocked(index_);
        update_control(pid_, ControlUpdate{opts_.wakeup_vector, ndst, false});
        sync_pir_locked();
    }
    if (events_or_pending_locked()) {
        if (opts_.posted_interrupts) {
            update_control(pid_, ControlUpdate{opts_.notification_vector, std::nullopt, true});
            vm_.remove_blocked(index_);
        }
        set_sched(apic::SchedState::Outside);
        return false;
    }
    set_sched(apic::SchedState::Blocked);
    return true;
}

void ApicvBackend::unblock()
{
    std::lock_guard lock(mu_);
    set_sched(apic::SchedState::Outside);
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
                deliveries_.add(apic::DeliveryStat::FromTimer);
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

}  // namespace hv::vmx
