// Test doubles for what core/ implements: the guest clock, the VM platform and the vCPU notifier.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "apic/backend.hpp"

namespace hv::apic::test {

class FakeClock : public GuestClock {
  public:
    GuestTime now() const override
    {
        const uint64_t t = ns.load(std::memory_order_relaxed);
        return GuestTime{t, t * 2}; // guest TSC at 2 GHz
    }
    std::atomic<uint64_t> ns{0};
};

class FakeNotifier : public VcpuNotifier {
  public:
    void kick() override { kicks.fetch_add(1); }
    void wake() override { wakes.fetch_add(1); }
    std::atomic<int> kicks{0};
    std::atomic<int> wakes{0};
};

class RecordingPlatform : public ApicPlatform {
  public:
    void send_ipi(std::size_t from, const Ipi& ipi) override
    {
        std::lock_guard lock(mu);
        ipis.emplace_back(from, ipi);
    }
    void eoi_to_ioapic(uint8_t vector) override
    {
        std::lock_guard lock(mu);
        eois.push_back(vector);
    }
    void timer_changed(std::size_t vcpu) override
    {
        std::lock_guard lock(mu);
        timer_changes.push_back(vcpu);
    }
    std::mutex mu;
    std::vector<std::pair<std::size_t, Ipi>> ipis;
    std::vector<uint8_t> eois;
    std::vector<std::size_t> timer_changes;
};

} // namespace hv::apic::test
