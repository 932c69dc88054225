// AvicBackend, hypervisor half: interrupts for this vCPU from any thread — the backing page +
// doorbell / wake-up for fixed edge vectors, the hypervisor's model for the rest (level, NMI,
// INIT, SIPI, ExtINT) — and local LVT sources.
#include "svm/avic_backend.hpp"

namespace hv::svm {

// --- delivery (any thread) ---

void AvicBackend::deliver(const apic::Interrupt& irq)
{
    const bool fixed =
        irq.mode == apic::DeliveryMode::Fixed || irq.mode == apic::DeliveryMode::LowestPriority;
    // An edge vector whose TMR bit is set must clear it (SDM Vol3 11.8.4): the hypervisor's
    // model does that, as KVM's __apic_accept_irq does before posting.
    const auto tmr_word =
        vm_.backing_page(index_).load(apic::reg::kTmr + 0x10u * (irq.vector >> 5));
    const bool tmr_set = ((tmr_word >> (irq.vector & 31u)) & 1u) != 0;
    if (fixed && irq.trigger == apic::Trigger::Edge && apic::is_legal_vector(irq.vector) &&
        !tmr_set) {
        // The hardware-shaped path: IRR bit in the backing page, then doorbell or wake-up. The
        // acceptance rules apply when the vCPU folds the page (a refusal counts irr_refused).
        deliveries_.count_source(irq.source);
        vm_.post_interrupt(index_, irq.vector);
        return;
    }
    bool pending = false;
    {
        std::lock_guard lock(mu_);
        bool replace = false;
        switch (irq.mode) {
        case apic::DeliveryMode::Fixed:
        case apic::DeliveryMode::LowestPriority:
            // Level-triggered (TMR) or illegal vectors (ESR) need the hypervisor's model.
            fold_locked();
            if (apic_.accept(irq.vector, irq.trigger)) {
                deliveries_.count_source(irq.source);
            } else {
                vm_.stats(index_).add(AvicStat::Refused);
                deliveries_.add(apic::DeliveryStat::Refused);
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
                apic_.init();
                events_.init = true;
                events_.sipi.reset();
                replace = true;
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
            vm_.stats(index_).add(AvicStat::Refused);
            deliveries_.add(apic::DeliveryStat::Refused);
            break;
        }
        sync_locked(replace);
        pending = pending_locked();
    }
    flush_timer();
    if (pending) {
        vm_.notify(index_, Signal::Kick);
    }
}

void AvicBackend::raise_lvt(apic::Lvt which)
{
    bool pending = false;
    {
        std::lock_guard lock(mu_);
        fold_locked();
        const apic::LvtResult res = apic_.raise_lvt(which);
        bool replace = false;
        switch (res.event) {
        case apic::LocalEvent::Nmi:
            events_.nmi = true;
            break;
        case apic::LocalEvent::Smi:
            events_.smi = true;
            break;
        case apic::LocalEvent::Init:
            apic_.init();
            events_.init = true;
            replace = true;
            break;
        case apic::LocalEvent::ExtInt:
            events_.extint = true;
            break;
        case apic::LocalEvent::Fixed:
            deliveries_.add(apic::DeliveryStat::FromLocalLvt);
            break;
        case apic::LocalEvent::None:
        case apic::LocalEvent::Masked:
            break;
        }
        sync_locked(replace);
        pending = pending_locked();
    }
    flush_timer();
    if (pending) {
        vm_.notify(index_, Signal::Doorbell);
    }
}

apic::DestInfo AvicBackend::dest_info() const
{
    std::lock_guard lock(mu_);
    return apic_.dest_info();
}

}  // namespace hv::svm
