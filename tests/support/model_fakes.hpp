// Test doubles for what core/ implements around an APIC backend, shared by the model tests:
// - FakeClock: guest time the test advances by hand;
// - RecordingNotifier: counts kicks and wakes and keeps them as sticky flags a simulated vCPU
//   thread can sleep on (core: immediate_exit / futex);
// - RoutingPlatform: the VM glue — routes IPIs with resolve_ipi() over every backend's
//   dest_info() (what core/interrupts does), forwards level EOIs to an IOAPIC and routes the
//   IOAPIC's messages back, and records every IPI, EOI and timer change. With no backends
//   attached it only records.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "apic/backend.hpp"
#include "apic/destination.hpp"
#include "apic/ioapic.hpp"

namespace hv::apic::test {

class FakeClock : public GuestClock {
  public:
    GuestTime now() const override
    {
        const uint64_t t = ns.load(std::memory_order_relaxed);
        return GuestTime{t, t * 2};  // guest TSC at 2 GHz
    }
    std::atomic<uint64_t> ns{0};
};

class RecordingNotifier : public VcpuNotifier {
  public:
    void kick() override
    {
        kicks.fetch_add(1);
        std::lock_guard lock(mu_);
        kicked_ = true;
        cv_.notify_all();
    }
    void wake() override
    {
        wakes.fetch_add(1);
        std::lock_guard lock(mu_);
        woken_ = true;
        cv_.notify_all();
    }
    // Sleep until woken (or kicked); false on timeout. Consumes the flags.
    bool wait(std::chrono::milliseconds timeout)
    {
        std::unique_lock lock(mu_);
        const bool ok = cv_.wait_for(lock, timeout, [&] { return woken_ || kicked_; });
        woken_ = kicked_ = false;
        return ok;
    }
    bool take_kick()
    {
        std::lock_guard lock(mu_);
        const bool k = kicked_;
        kicked_ = false;
        return k;
    }
    uint64_t kick_count() const { return static_cast<uint64_t>(kicks.load()); }
    uint64_t wake_count() const { return static_cast<uint64_t>(wakes.load()); }

    std::atomic<int> kicks{0};
    std::atomic<int> wakes{0};

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool kicked_ = false;
    bool woken_ = false;
};

class RoutingPlatform : public ApicPlatform, public IoApicSink {
  public:
    // Deliver `msg` to every backend it addresses (no lock held: a delivery may call back).
    void route(const Ipi& msg, std::optional<std::size_t> from, Source src)
    {
        if (backends.empty()) {
            return;
        }
        std::vector<DestInfo> infos;
        infos.reserve(backends.size());
        for (const ApicBackend* b : backends) {
            infos.push_back(b->dest_info());
        }
        const TargetSet t = resolve_ipi(msg, infos, from);
        const Interrupt irq{msg.vector, msg.mode, msg.trigger, msg.assert_level, src};
        for (std::size_t i = 0; i < backends.size() && i < t.size(); ++i) {
            if (t[i]) {
                backends[i]->deliver(irq);
            }
        }
    }

    void send_ipi(std::size_t from, const Ipi& ipi) override
    {
        {
            std::lock_guard lock(mu);
            ipis.emplace_back(from, ipi);
        }
        route(ipi, from, Source::Ipi);
    }
    void eoi_to_ioapic(uint8_t vector) override
    {
        {
            std::lock_guard lock(mu);
            eois.push_back(vector);
        }
        if (ioapic != nullptr) {
            ioapic->eoi(vector);
        }
    }
    void timer_changed(std::size_t vcpu) override
    {
        std::lock_guard lock(mu);
        timer_changes.push_back(vcpu);
    }
    // IoApicSink: a redirection-table message, routed like an IPI from no vCPU.
    void deliver(const IoApicMessage& m) override
    {
        if (m.trigger == Trigger::Level) {
            level_messages.fetch_add(1, std::memory_order_relaxed);
        }
        Ipi as_ipi;
        as_ipi.vector = m.vector;
        as_ipi.mode = m.mode;
        as_ipi.trigger = m.trigger;
        as_ipi.dest = m.dest;
        route(as_ipi, std::nullopt, Source::IoApic);
    }

    std::size_t ipi_count()
    {
        std::lock_guard lock(mu);
        return ipis.size();
    }
    std::size_t timer_change_count()
    {
        std::lock_guard lock(mu);
        return timer_changes.size();
    }

    std::vector<ApicBackend*> backends;  // vCPU i is backends[i]; set before routing starts
    IoApic* ioapic = nullptr;            // where level EOIs go, if any
    std::mutex mu;                       // guards the records below
    std::vector<std::pair<std::size_t, Ipi>> ipis;
    std::vector<uint8_t> eois;
    std::vector<std::size_t> timer_changes;
    std::atomic<uint64_t> level_messages{0};
};

}  // namespace hv::apic::test
