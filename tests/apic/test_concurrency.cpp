// Concurrency: devices assert IOAPIC pins while vCPU threads acknowledge, EOI (which reaches back
// into the IOAPIC and may re-deliver into the LAPICs) and send each other IPIs. Meant to run under
// ThreadSanitizer too: it reports lock-order inversions (the IOAPIC <-> LAPIC EOI deadlock class)
// even when the schedule happens not to deadlock, and data races on the model state.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "apic/destination.hpp"
#include "apic/emulated.hpp"
#include "apic/ioapic.hpp"
#include "fakes.hpp"

namespace hv::apic::test {
namespace {

constexpr std::size_t kVcpus = 4;
constexpr unsigned kLevelPins = 8; // pins 0-7: level, vector 0x40 + pin
constexpr unsigned kEdgePins = 8;  // pins 8-15: edge, vector 0x60 + pin
constexpr uint8_t kIpiVector = 0xB0;

// The VM glue core/ would provide: routes IPIs and IOAPIC messages, forwards EOIs.
class Vm : public ApicPlatform, public IoApicSink {
  public:
    Vm() : ioapic(*this, 0)
    {
        for (std::size_t i = 0; i < kVcpus; ++i) {
            LocalApicConfig cfg;
            cfg.id = static_cast<uint32_t>(i);
            cfg.bsp = i == 0;
            apics[i] = std::make_unique<EmulatedApic>(i, cfg, clock, *this, notifier);
            apics[i]->mmio_write(base::kDefaultAddr + reg::kSvr, 4, 0x1FF);
        }
    }

    std::vector<DestInfo> view() const
    {
        std::vector<DestInfo> v;
        for (const auto& a : apics) {
            v.push_back(a->dest_info());
        }
        return v;
    }

    void route(const Ipi& msg, std::optional<std::size_t> from, Source src)
    {
        const std::vector<DestInfo> infos = view();
        const TargetSet targets = resolve_ipi(msg, infos, from);
        Interrupt irq;
        irq.vector = msg.vector;
        irq.mode = msg.mode;
        irq.trigger = msg.trigger;
        irq.assert_level = msg.assert_level;
        irq.source = src;
        for (std::size_t i = 0; i < kVcpus; ++i) {
            if (targets[i]) {
                apics[i]->deliver(irq);
            }
        }
    }

    void send_ipi(std::size_t from, const Ipi& ipi) override { route(ipi, from, Source::Ipi); }
    void eoi_to_ioapic(uint8_t vector) override { ioapic.eoi(vector); }
    void timer_changed(std::size_t) override {}

    void deliver(const IoApicMessage& m) override
    {
        if (m.trigger == Trigger::Level) {
            level_msgs.fetch_add(1, std::memory_order_relaxed);
        }
        Ipi as_ipi;
        as_ipi.vector = m.vector;
        as_ipi.mode = m.mode;
        as_ipi.trigger = m.trigger;
        as_ipi.dest = m.dest;
        route(as_ipi, std::nullopt, Source::IoApic);
    }

    FakeClock clock;
    FakeNotifier notifier;
    IoApic ioapic;
    std::array<std::unique_ptr<EmulatedApic>, kVcpus> apics;
    std::atomic<uint64_t> level_msgs{0};
    std::atomic<bool> devices_finished{false};
};

void program_pins(IoApic& io)
{
    for (unsigned pin = 0; pin < kLevelPins + kEdgePins; ++pin) {
        const bool level = pin < kLevelPins;
        const uint64_t vec = level ? 0x40 + pin : 0x60 + pin;
        const uint64_t entry =
            (static_cast<uint64_t>(pin % kVcpus) << 56) | (level ? ioapic::kLevel : 0) | vec;
        io.mmio_write(ioapic::kRegSel, 4, 0x10 + 2 * pin + 1);
        io.mmio_write(ioapic::kWindow, 4, static_cast<uint32_t>(entry >> 32));
        io.mmio_write(ioapic::kRegSel, 4, 0x10 + 2 * pin);
        io.mmio_write(ioapic::kWindow, 4, static_cast<uint32_t>(entry));
    }
}

// Acknowledge and EOI whatever is deliverable; sometimes IPI the next vCPU.
unsigned service(EmulatedApic& a, std::size_t self, unsigned round)
{
    unsigned handled = 0;
    while (a.pending_vector()) {
        const AckResult r = a.ack();
        if (r.spurious) {
            break;
        }
        if (round % 16 == 0) {
            const uint32_t next = static_cast<uint32_t>((self + 1) % kVcpus);
            a.mmio_write(base::kDefaultAddr + reg::kIcrHigh, 4, next << 24);
            a.mmio_write(base::kDefaultAddr + reg::kIcrLow, 4, 0x4000u | kIpiVector);
        }
        a.mmio_write(base::kDefaultAddr + reg::kEoi, 4, 0);
        ++handled;
    }
    return handled;
}

bool isr_empty(EmulatedApic& a)
{
    const ApicState s = a.flatten();
    for (uint32_t w : s.isr) {
        if (w != 0) {
            return false;
        }
    }
    return true;
}

void run_stress(Vm& vm)
{
    // Devices keep toggling pins for at least kRounds and until the vCPUs have serviced
    // kMinOverlap interrupts while the devices were still running, so the overlap does not depend
    // on how the scheduler of a loaded machine happens to run the threads.
    constexpr unsigned kRounds = 20000;
    constexpr unsigned kMinOverlap = 500;
    std::atomic<bool> devices_done{false};
    std::atomic<unsigned> handled_while_devices_ran{0};
    std::vector<std::thread> threads;
    for (unsigned d = 0; d < 2; ++d) {
        threads.emplace_back([&vm, &handled_while_devices_ran, d] {
            for (unsigned i = 0; i < kRounds || handled_while_devices_ran.load() < kMinOverlap;
                 ++i) {
                const unsigned pin = (i * 2 + d) % (kLevelPins + kEdgePins);
                vm.ioapic.set_irq(pin, true);
                if (i % 3 != 0) {
                    vm.ioapic.set_irq(pin, false);
                }
            }
        });
    }
    for (std::size_t v = 0; v < kVcpus; ++v) {
        threads.emplace_back([&vm, &handled_while_devices_ran, &devices_done, v] {
            unsigned round = 0;
            while (!devices_done.load()) {
                const unsigned n = service(*vm.apics[v], v, round++);
                if (!vm.devices_finished.load()) {
                    handled_while_devices_ran += n;
                }
                std::this_thread::yield();
            }
        });
    }
    threads[0].join();
    threads[1].join();
    vm.devices_finished = true;
    for (unsigned pin = 0; pin < kLevelPins + kEdgePins; ++pin) {
        vm.ioapic.set_irq(pin, false);
    }
    devices_done = true;
    for (std::size_t i = 2; i < threads.size(); ++i) {
        threads[i].join();
    }
    // Drain on one thread: IPIs sent late may still be pending.
    for (int pass = 0; pass < 4; ++pass) {
        for (std::size_t v = 0; v < kVcpus; ++v) {
            service(*vm.apics[v], v, 1);
        }
    }
    EXPECT_GE(handled_while_devices_ran.load(), kMinOverlap);
}

TEST(Concurrency, PinsAssertedWhileVcpusEoiNeverDeadlockOrLoseRemoteIrr)
{
    Vm vm;
    program_pins(vm.ioapic);
    // A deadlock would hang forever: run in the background and bound the wait.
    auto done = std::async(std::launch::async, [&vm] { run_stress(vm); });
    if (done.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
        std::fprintf(stderr, "IOAPIC/LAPIC stress did not finish: deadlock\n");
        std::_Exit(1);
    }
    done.get();

    for (unsigned pin = 0; pin < kLevelPins; ++pin) {
        EXPECT_EQ(vm.ioapic.redirection(pin) & ioapic::kRemoteIrr, 0u) << "pin " << pin;
    }
    for (std::size_t v = 0; v < kVcpus; ++v) {
        EXPECT_TRUE(isr_empty(*vm.apics[v])) << "vcpu " << v;
        EXPECT_EQ(vm.apics[v]->pending_vector(), std::nullopt);
    }
    const IoApicCounters c = vm.ioapic.counters();
    EXPECT_GT(vm.level_msgs.load(), 0u);
    // Every level-triggered message was EOI'd exactly once (distinct vectors per pin, one in
    // flight per pin because of remote IRR).
    EXPECT_EQ(c.eoi, vm.level_msgs.load());
}

} // namespace
} // namespace hv::apic::test
