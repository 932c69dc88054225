// EmulatedApic: the `emulated` backend — the plain architectural LAPIC (LocalApic) behind a mutex,
// every guest access trapped (KVM without an in-kernel irqchip; core/ supplies the exits).
//
// Locking: `mu_` protects the LocalApic and the pending events. Effects
// that reach other objects (IPIs, IOAPIC EOIs, timer re-arming, kick/wake) are collected under
// the lock and performed after releasing it (see backend.hpp).
//
// The scheduling state, kick/wake and delivery counters are ModelBackend's (model_backend.hpp).
// The state changes under `mu_`, so a delivery that finds nothing pending cannot race a block().
#pragma once

#include <array>
#include <mutex>
#include <string_view>

#include "apic/backend.hpp"
#include "apic/counters.hpp"
#include "apic/local_apic.hpp"
#include "apic/model_backend.hpp"

namespace hv::apic {

// Architectural exits of the emulated backend: every APIC access exits.
enum class EmulatedExit : uint8_t {
    XapicRead,
    XapicWrite,
    X2apicRead,
    X2apicWrite,
    OtherMsr,
    Cr8Write,  // a MOV to CR8 that changed the TPR (CR8-load exiting without a TPR shadow)
    Count
};

class EmulatedApic final : public ModelBackend {
  public:
    EmulatedApic(std::size_t index, const LocalApicConfig& cfg, GuestClock& clock,
                 ApicPlatform& platform, VcpuNotifier& notifier);

    std::string_view name() const override { return "emulated"; }
    AccessResult mmio_read(uint64_t gpa, unsigned size) override;
    AccessResult mmio_write(uint64_t gpa, unsigned size, uint32_t value) override;
    AccessResult msr_read(uint32_t msr) override;
    AccessResult msr_write(uint32_t msr, uint64_t value) override;
    void deliver(const Interrupt& irq) override;
    DestInfo dest_info() const override;
    std::optional<uint8_t> pending_vector() override;
    AckResult ack() override;
    PendingEvents take_events() override;
    RunState run_state() const override;
    void set_run_state(RunState r) override;
    void enter_guest() override;
    void leave_guest() override;
    bool block() override;
    void unblock() override;
    std::optional<uint64_t> timer_deadline() const override;
    std::optional<uint8_t> cr8() const override;
    void write_cr8(uint8_t value) override;
    void timer_fired() override;
    ApicState flatten() override;
    std::optional<std::string> restore(const ApicState& s) override;
    CounterList exit_counters() const override;
    CounterList stats() const override;

    // Raise a local interrupt source (thermal, perf, CMCI, LINT0/1) through its LVT entry.
    void raise_lvt(Lvt which);
    ApicCounters model_counters() const;

  private:
    bool pending_locked() const;
    Notify notify_locked();
    void finish(const AccessResult& r);
    void poll_timer_locked(GuestTime now, bool& changed);

    GuestClock& clock_;
    ApicPlatform& platform_;
    mutable std::mutex mu_;
    LocalApic apic_;
    PendingEvents events_;
    CounterTable<EmulatedExit, static_cast<std::size_t>(EmulatedExit::Count)> exits_;
};

}  // namespace hv::apic
