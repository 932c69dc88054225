// ModelBackend: what the three model backends (`emulated` here, `apicv` in vmx/, `avic` in svm/)
// share beside the ApicBackend interface — where the vCPU is (outside, in the guest, blocked in
// HLT), how it is told that something became pending (a kick or a wake through VcpuNotifier,
// counted), and the delivery counters by source and event. The vendor parts (posted-interrupt
// notification and wake-up vectors, AVIC doorbell and IsRunning) stay in vmx/ and svm/ and are
// built on these.
//
// Kick or wake (docs/apic.md "How core drives a userspace backend"): a delivery that makes
// something pending kicks a vCPU in the guest and wakes one blocked in HLT; a vCPU outside both
// checks pending_vector() before its next entry. Which of the two happened is counted ("kicks",
// "wakes"): it is the difference the hardware makes (posted-interrupt notification or doorbell
// versus wake-up).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "apic/backend.hpp"
#include "apic/counters.hpp"
#include "apic/ipi.hpp"

namespace hv::apic {

// Where a vCPU is, as the hypervisor half knows it (KVM's vcpu->mode).
enum class SchedState : uint8_t { Outside, InGuest, Blocked };

// What it takes to get the vCPU's attention.
enum class Notify : uint8_t { None, Kick, Wake };

constexpr Notify notify_for(SchedState s)
{
    switch (s) {
    case SchedState::InGuest:
        return Notify::Kick;
    case SchedState::Blocked:
        return Notify::Wake;
    case SchedState::Outside:
        break;
    }
    return Notify::None;  // it evaluates pending_vector() before its next entry
}

// One vCPU's scheduling state and notifier. The state is read from any thread (seq_cst: a
// deliverer that sets a pending bit and then reads Blocked, and a vCPU that publishes Blocked and
// then checks its pending bits, cannot both miss).
class VcpuSchedule {
  public:
    void attach(VcpuNotifier* n) { notifier_.store(n); }
    SchedState state() const { return state_.load(std::memory_order_seq_cst); }
    void set_state(SchedState s) { state_.store(s, std::memory_order_seq_cst); }
    // What a newly pending interrupt or event needs where the vCPU is now.
    Notify wanted() const { return notify_for(state()); }
    // Kick or wake, counted as "kicks" / "wakes"; None does nothing.
    void notify(Notify n);
    void kick() { notify(Notify::Kick); }
    void wake() { notify(Notify::Wake); }
    // A kick the backend counts under its own name (AVIC's doorbell), not in "kicks".
    void kick_uncounted();
    uint64_t kicks() const { return kicks_.load(std::memory_order_relaxed); }
    uint64_t wakes() const { return wakes_.load(std::memory_order_relaxed); }
    void append_to(CounterList& out) const;  // "kicks", "wakes"

  private:
    std::atomic<VcpuNotifier*> notifier_{nullptr};
    std::atomic<SchedState> state_{SchedState::Outside};
    std::atomic<uint64_t> kicks_{0};
    std::atomic<uint64_t> wakes_{0};
};

// Deliveries to one vCPU by source (accepted fixed interrupts) and by event.
enum class DeliveryStat : uint8_t {
    FromIpi,
    FromMsi,
    FromIoApic,
    FromTimer,
    FromLocalLvt,
    Refused,  // fixed interrupts the acceptance rules refused; reserved delivery modes
    Nmi,
    Smi,
    Init,
    Sipi,
    ExtInt,
    Count
};

inline constexpr std::array<std::string_view, static_cast<std::size_t>(DeliveryStat::Count)>
    kDeliveryStatNames{"irq_ipi",       "irq_msi",     "irq_ioapic", "irq_timer",
                       "irq_local_lvt", "irq_refused", "nmi",        "smi",
                       "init",          "sipi",        "extint"};

class DeliveryCounters {
  public:
    void add(DeliveryStat s) { table_.add(s); }
    uint64_t get(DeliveryStat s) const { return table_.get(s); }
    // An accepted fixed or lowest-priority interrupt, by where it came from.
    void count_source(Source s);
    void append_to(CounterList& out) const { table_.append_to(out); }

  private:
    CounterTable<DeliveryStat, static_cast<std::size_t>(DeliveryStat::Count)> table_{
        kDeliveryStatNames};
};

class ModelBackend : public ApicBackend {
  public:
    std::size_t index() const { return index_; }
    SchedState sched() const { return schedule_.state(); }
    uint64_t delivery_count(DeliveryStat s) const { return deliveries_.get(s); }

  protected:
    // The backend keeps its own schedule.
    ModelBackend(std::size_t index, VcpuNotifier& notifier);
    // The schedule lives where the hardware half reaches it from other vCPUs (AVIC: the VM's
    // per-vCPU slot); the notifier is attached there.
    ModelBackend(std::size_t index, VcpuSchedule& shared);

    void set_sched(SchedState s) { schedule_.set_state(s); }
    VcpuSchedule& schedule() { return schedule_; }
    // The notification to make (after releasing the backend's lock) when something is pending.
    Notify notify_if(bool pending) const { return pending ? schedule_.wanted() : Notify::None; }
    void notify(Notify n) { schedule_.notify(n); }
    // The shared part of stats(): deliveries by source and event, then "kicks", "wakes".
    void append_model_stats(CounterList& out) const;

    const std::size_t index_;
    DeliveryCounters deliveries_;

  private:
    VcpuSchedule own_;
    VcpuSchedule& schedule_;
};

}  // namespace hv::apic
