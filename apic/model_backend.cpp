// ModelBackend, VcpuSchedule and DeliveryCounters: the scheduling state, notifications and
// delivery counters the model backends share (model_backend.hpp).
#include "apic/model_backend.hpp"

namespace hv::apic {

void VcpuSchedule::notify(Notify n)
{
    VcpuNotifier* target = notifier_.load();
    switch (n) {
    case Notify::Kick:
        kicks_.fetch_add(1, std::memory_order_relaxed);
        if (target != nullptr) {
            target->kick();
        }
        break;
    case Notify::Wake:
        wakes_.fetch_add(1, std::memory_order_relaxed);
        if (target != nullptr) {
            target->wake();
        }
        break;
    case Notify::None:
        break;
    }
}

void VcpuSchedule::kick_uncounted()
{
    if (VcpuNotifier* target = notifier_.load()) {
        target->kick();
    }
}

void VcpuSchedule::append_to(CounterList& out) const
{
    out.push_back(CounterEntry{"kicks", kicks()});
    out.push_back(CounterEntry{"wakes", wakes()});
}

void DeliveryCounters::count_source(Source s)
{
    switch (s) {
    case Source::Ipi:
        add(DeliveryStat::FromIpi);
        break;
    case Source::Msi:
        add(DeliveryStat::FromMsi);
        break;
    case Source::IoApic:
        add(DeliveryStat::FromIoApic);
        break;
    case Source::Timer:
        add(DeliveryStat::FromTimer);
        break;
    case Source::LocalLvt:
    case Source::Count:
        add(DeliveryStat::FromLocalLvt);
        break;
    }
}

ModelBackend::ModelBackend(std::size_t index, VcpuNotifier& notifier)
    : index_(index), schedule_(own_)
{
    own_.attach(&notifier);
}

ModelBackend::ModelBackend(std::size_t index, VcpuSchedule& shared)
    : index_(index), schedule_(shared)
{
}

void ModelBackend::append_model_stats(CounterList& out) const
{
    deliveries_.append_to(out);
    schedule_.append_to(out);
}

}  // namespace hv::apic
