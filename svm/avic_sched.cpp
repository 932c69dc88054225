// AvicBackend: the injection point (delivery from the backing page IRR), the scheduling hooks
// that maintain IsRunning and the host APIC ID (Linux avic_vcpu_load / avic_vcpu_put) and the
// LAPIC timer, which the hypervisor half emulates.
#include "svm/avic_backend.hpp"

namespace hv::svm {

// --- injection point ---

std::optional<uint8_t> AvicBackend::pending_vector()
{
    bool changed = false;
    std::optional<uint8_t> v;
    {
        std::lock_guard lock(mu_);
        const apic::GuestTime t = now();
        poll_timer_locked(t, changed);
        fold_locked();
        if (changed) {
            sync_locked(false);
        }
        // APM Vol2 15.29.2.2 "Virtual Interrupt Delivery": the highest IRR vector whose class is
        // above the virtual PPR is delivered (the same rule as SDM Vol3 11.8.3.1).
        v = apic_.highest_pending();
    }
    flush_timer();
    return v;
}

apic::AckResult AvicBackend::ack()
{
    apic::AckResult a;
    {
        std::lock_guard lock(mu_);
        fold_locked();
        // IRR -> ISR: the page bit is cleared before the model moves the vector, so a post that
        // lands after this point sets IRR again (a new interrupt) instead of merging with the
        // one being taken — the order the CPU's own IRR -> ISR move has.
        if (const auto v = apic_.highest_pending()) {
            vm_.backing_page(index_).clear_irr(*v);
        }
        a = apic_.ack();
        sync_locked(false);
    }
    flush_timer();
    return a;
}

apic::PendingEvents AvicBackend::take_events()
{
    std::lock_guard lock(mu_);
    const apic::PendingEvents e = events_;
    events_ = apic::PendingEvents{};
    return e;
}

apic::RunState AvicBackend::run_state() const
{
    std::lock_guard lock(mu_);
    return apic_.run_state();
}

void AvicBackend::set_run_state(apic::RunState r)
{
    std::lock_guard lock(mu_);
    apic_.set_run_state(r);
}

// --- scheduling hooks: IsRunning and the host APIC ID (Linux avic_vcpu_load/put) ---

void AvicBackend::enter_guest()
{
    set_sched(Sched::InGuest);
    vm_.set_running(index_, true);
    std::lock_guard lock(mu_);
    vmcb_.clean |= kCleanAvic;  // VMRUN has cached the AVIC fields
}

void AvicBackend::leave_guest()
{
    vm_.set_running(index_, false);
    set_sched(Sched::Outside);
}

bool AvicBackend::block()
{
    // Blocked is published before the IRR is read (both seq_cst), so a post that this check
    // misses sees Blocked and wakes us (the GA-log / wake-up path).
    vm_.set_running(index_, false);
    set_sched(Sched::Blocked);
    bool pending = false;
    {
        std::lock_guard lock(mu_);
        if (apic_.run_state() != apic::RunState::WaitForSipi) {
            exits_.add(AvicExit::Hlt);
            record_exit_locked(ExitCode::Hlt, 0, 0);
        }
        fold_locked();
        pending = pending_locked();
    }
    flush_timer();
    if (pending) {
        set_sched(Sched::Outside);
        return false;
    }
    return true;
}

void AvicBackend::unblock()
{
    set_sched(Sched::Outside);
}

// --- the LAPIC timer, emulated by the hypervisor half ---

std::optional<uint64_t> AvicBackend::timer_deadline() const
{
    std::lock_guard lock(mu_);
    return apic_.next_timer_deadline();
}

void AvicBackend::timer_fired()
{
    bool changed = false;
    bool pending = false;
    {
        std::lock_guard lock(mu_);
        const apic::GuestTime t = now();
        poll_timer_locked(t, changed);
        if (changed) {
            sync_locked(false);  // the timer vector lands in the backing page IRR
        }
        pending = apic_.highest_pending().has_value();
    }
    if (pending) {
        vm_.notify(index_, Signal::Doorbell);  // Linux: kvm_apic_set_irr + avic doorbell
    }
    flush_timer();
}

}  // namespace hv::svm
