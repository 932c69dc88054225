// EmulatedApic: interrupt delivery from any thread (fixed vectors into the model, NMI / SMI /
// INIT / SIPI / ExtINT as pending events) and local LVT sources.
#include "apic/emulated.hpp"

namespace hv::apic {

void EmulatedApic::deliver(const Interrupt& irq)
{
    Notify n = Notify::None;
    {
        std::lock_guard lock(mu_);
        switch (irq.mode) {
        case DeliveryMode::Fixed:
        case DeliveryMode::LowestPriority:
            if (apic_.accept(irq.vector, irq.trigger)) {
                deliveries_.count_source(irq.source);
            } else {
                deliveries_.add(DeliveryStat::Refused);
            }
            break;
        case DeliveryMode::Nmi:
            events_.nmi = true;
            deliveries_.add(DeliveryStat::Nmi);
            break;
        case DeliveryMode::Smi:
            events_.smi = true;
            deliveries_.add(DeliveryStat::Smi);
            break;
        case DeliveryMode::Init:
            // INIT level de-assert only resynchronises arbitration IDs: nothing to model.
            if (irq.assert_level || irq.trigger == Trigger::Edge) {
                apic_.init();
                events_.init = true;
                events_.sipi.reset();
                deliveries_.add(DeliveryStat::Init);
            }
            break;
        case DeliveryMode::StartUp:
            if (auto v = apic_.sipi(irq.vector)) {
                events_.sipi = v;
                deliveries_.add(DeliveryStat::Sipi);
            }
            break;
        case DeliveryMode::ExtInt:
            events_.extint = true;
            deliveries_.add(DeliveryStat::ExtInt);
            break;
        case DeliveryMode::Reserved3:
            deliveries_.add(DeliveryStat::Refused);
            break;
        }
        n = notify_locked();
    }
    notify(n);
}

void EmulatedApic::raise_lvt(Lvt which)
{
    Notify n = Notify::None;
    {
        std::lock_guard lock(mu_);
        const LvtResult res = apic_.raise_lvt(which);
        switch (res.event) {
        case LocalEvent::Fixed:
            deliveries_.add(DeliveryStat::FromLocalLvt);
            break;
        case LocalEvent::Nmi:
            events_.nmi = true;
            break;
        case LocalEvent::Smi:
            events_.smi = true;
            break;
        case LocalEvent::Init:
            apic_.init();
            events_.init = true;
            break;
        case LocalEvent::ExtInt:
            events_.extint = true;
            break;
        case LocalEvent::None:
        case LocalEvent::Masked:
            break;
        }
        n = notify_locked();
    }
    notify(n);
}

}  // namespace hv::apic
