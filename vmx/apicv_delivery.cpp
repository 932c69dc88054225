// ApicvBackend, hypervisor half: interrupts for this vCPU from any thread — posted to the PID
// (lock-free fast path) or, without posted interrupts, put in VIRR with a kick or wake; the
// acceptance rules and events (NMI, INIT, SIPI, ExtINT) under the lock.
#include "vmx/apicv_backend.hpp"

#include <bit>
#include <utility>

namespace hv::vmx {

// ---------------------------------------------------------------------------------------------
// Delivery (any thread).

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
                const auto bit = static_cast<std::size_t>(std::countr_zero(bits));
                post_self(static_cast<uint8_t>(32 * i + bit));
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
    notify(n);
}

bool ApicvBackend::fast_path_ok(uint8_t vector) const
{
    // What LocalApic::accept() would check, read lock-free: enabled and software-enabled, a
    // legal vector, and an edge vector whose TMR bit is already clear (nothing to update).
    return apic::is_legal_vector(vector) && accepting_.load(std::memory_order_relaxed) &&
           (tmr_mirror_[vector >> 5].load(std::memory_order_relaxed) & (1u << (vector & 31u))) == 0;
}

void ApicvBackend::deliver(const apic::Interrupt& irq)
{
    const bool fixed =
        irq.mode == apic::DeliveryMode::Fixed || irq.mode == apic::DeliveryMode::LowestPriority;
    if (fixed && irq.trigger == apic::Trigger::Edge && fast_path_ok(irq.vector)) {
        deliveries_.count_source(irq.source);
        if (opts_.posted_interrupts) {
            post_self(irq.vector);  // lock-free: SDM Vol3 30.6 posting
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
                deliveries_.count_source(irq.source);
                set_tmr_locked(irq.vector, irq.trigger == apic::Trigger::Level);
                raised = drain_model_locked(irq.vector);
            } else {
                deliveries_.add(apic::DeliveryStat::Refused);
                raised = drain_model_locked();  // an error LVT interrupt
            }
            break;
        case apic::DeliveryMode::Nmi:
            events_.nmi = true;
            deliveries_.add(apic::DeliveryStat::Nmi);
            break;
        case apic::DeliveryMode::Smi:
            events_.smi = true;
            deliveries_.add(apic::DeliveryStat::Smi);
            break;
        case apic::DeliveryMode::Init:
            if (irq.assert_level || irq.trigger == apic::Trigger::Edge) {
                const apic::ApicMode before = apic_.mode();
                apic_.init();
                reset_hardware_state_locked();
                after_model_locked(before);
                events_.init = true;
                events_.sipi.reset();
                deliveries_.add(apic::DeliveryStat::Init);
            }
            break;
        case apic::DeliveryMode::StartUp:
            if (auto v = apic_.sipi(irq.vector)) {
                events_.sipi = v;
                deliveries_.add(apic::DeliveryStat::Sipi);
            }
            break;
        case apic::DeliveryMode::ExtInt:
            events_.extint = true;
            deliveries_.add(apic::DeliveryStat::ExtInt);
            break;
        case apic::DeliveryMode::Reserved3:
            deliveries_.add(apic::DeliveryStat::Refused);
            break;
        }
        timer = std::exchange(timer_dirty_, false);
        // Fixed vectors notify through raise(); events (NMI, INIT, ...) need the hypervisor.
        if (!(events_ == events_before)) {
            n = notify_locked();
        }
    }
    notify(n);
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

}  // namespace hv::vmx
