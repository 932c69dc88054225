// Concurrency with the IOAPIC (the apic/ test_concurrency scenario on apicv backends): devices
// toggle level and edge pins while vCPU threads take interrupts, EOI them (level EOIs reach the
// IOAPIC through EOI-induced exits, which may re-deliver into the same backend) and IPI each
// other. Checks the lock order (no backend lock is held while calling the IOAPIC), that every
// level message is EOI'd exactly once through exactly one EOI-induced exit, and that nothing is
// left pending. Meant to run under ThreadSanitizer too.
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

#include "apic/ioapic.hpp"
#include "apicv_fakes.hpp"

namespace hv::vmx::test {
namespace {

namespace reg = apic::reg;
constexpr std::size_t kVcpus = 4;
constexpr unsigned kLevelPins = 8; // level, vector 0x40 + pin
constexpr unsigned kEdgePins = 8;  // edge, vector 0x60 + pin
constexpr uint8_t kIpiVector = 0xB0;

class IoVm : public apic::ApicPlatform, public apic::IoApicSink {
  public:
    explicit IoVm(const ApicvOptions& o) : vm(kVcpus, o), ioapic(*this, 0)
    {
        for (std::size_t i = 0; i < kVcpus; ++i) {
            notifiers.push_back(std::make_unique<CvNotifier>());
            apic::LocalApicConfig cfg;
            cfg.id = static_cast<uint32_t>(i);
            cfg.bsp = i == 0;
            apics.push_back(vm.make_backend(i, cfg, clock, *this, *notifiers[i]));
            enable(*apics[i], false);
        }
        for (unsigned pin = 0; pin < kLevelPins + kEdgePins; ++pin) {
            const bool level = pin < kLevelPins;
            const uint64_t vec = level ? 0x40 + pin : 0x60 + pin;
            const uint64_t entry = (static_cast<uint64_t>(pin % kVcpus) << 56) |
                                   (level ? apic::ioapic::kLevel : 0) | vec;
            ioapic.mmio_write(apic::ioapic::kRegSel, 4, 0x10 + 2 * pin + 1);
            ioapic.mmio_write(apic::ioapic::kWindow, 4, static_cast<uint32_t>(entry >> 32));
            ioapic.mmio_write(apic::ioapic::kRegSel, 4, 0x10 + 2 * pin);
            ioapic.mmio_write(apic::ioapic::kWindow, 4, static_cast<uint32_t>(entry));
        }
    }

    void route(const apic::Ipi& msg, std::optional<std::size_t> from, apic::Source src)
    {
        std::vector<apic::DestInfo> infos;
        for (const auto& a : apics) {
            infos.push_back(a->dest_info());
        }
        const apic::TargetSet t = apic::resolve_ipi(msg, infos, from);
        apic::Interrupt irq;
        irq.vector = msg.vector;
        irq.mode = msg.mode;
        irq.trigger = msg.trigger;
        irq.assert_level = msg.assert_level;
        irq.source = src;
        for (std::size_t i = 0; i < kVcpus; ++i) {
            if (t[i]) {
                apics[i]->deliver(irq);
            }
        }
    }
    void send_ipi(std::size_t from, const apic::Ipi& ipi) override
    {
        route(ipi, from, apic::Source::Ipi);
    }
    void eoi_to_ioapic(uint8_t vector) override { ioapic.eoi(vector); }
    void timer_changed(std::size_t) override {}
    void deliver(const apic::IoApicMessage& m) override
    {
        if (m.trigger == apic::Trigger::Level) {
            level_msgs.fetch_add(1, std::memory_order_relaxed);
        }
        apic::Ipi as_ipi;
        as_ipi.vector = m.vector;
        as_ipi.mode = m.mode;
        as_ipi.trigger = m.trigger;
        as_ipi.dest = m.dest;
        route(as_ipi, std::nullopt, apic::Source::IoApic);
    }

    FakeClock clock;
    ApicvVm vm;
    apic::IoApic ioapic;
    std::vector<std::unique_ptr<CvNotifier>> notifiers;
    std::vector<std::unique_ptr<apic::ApicBackend>> apics;
    std::atomic<uint64_t> level_msgs{0};
};

unsigned service(apic::ApicBackend& a, std::size_t self, unsigned round)
{
    unsigned handled = 0;
    a.enter_guest();
    while (a.pending_vector()) {
        const apic::AckResult r = a.ack();
        if (r.spurious) {
            break;
        }
        if (round % 16 == 0) {
            const uint32_t next = static_cast<uint32_t>((self + 1) % kVcpus);
            a.mmio_write(kBase + reg::kIcrHigh, 4, next << 24);
            a.mmio_write(kBase + reg::kIcrLow, 4, 0x4000u | kIpiVector);
        }
        a.mmio_write(kBase + reg::kEoi, 4, 0);
        ++handled;
    }
    a.leave_guest();
    return handled;
}

void run(IoVm& vm)
{
    constexpr unsigned kRounds = 20000;
    std::atomic<bool> devices_done{false};
    std::vector<std::thread> threads;
    for (unsigned d = 0; d < 2; ++d) {
        threads.emplace_back([&vm, d] {
            for (unsigned i = 0; i < kRounds; ++i) {
                const unsigned pin = (i * 2 + d) % (kLevelPins + kEdgePins);
                vm.ioapic.set_irq(pin, true);
                if (i % 3 != 0) {
                    vm.ioapic.set_irq(pin, false);
                }
            }
        });
    }
    for (std::size_t v = 0; v < kVcpus; ++v) {
        threads.emplace_back([&vm, &devices_done, v] {
            unsigned round = 0;
            while (!devices_done.load()) {
                service(*vm.apics[v], v, round++);
                std::this_thread::yield();
            }
        });
    }
    threads[0].join();
    threads[1].join();
    for (unsigned pin = 0; pin < kLevelPins + kEdgePins; ++pin) {
        vm.ioapic.set_irq(pin, false);
    }
    devices_done = true;
    for (std::size_t i = 2; i < threads.size(); ++i) {
        threads[i].join();
    }
    for (int pass = 0; pass < 4; ++pass) {
        for (std::size_t v = 0; v < kVcpus; ++v) {
            service(*vm.apics[v], v, 1);
        }
    }
}

void check(const ApicvOptions& o)
{
    IoVm vm(o);
    auto done = std::async(std::launch::async, [&vm] { run(vm); });
    if (done.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
        std::fprintf(stderr, "apicv IOAPIC stress did not finish: deadlock\n");
        std::_Exit(1);
    }
    done.get();
    uint64_t eoi_exits = 0;
    for (unsigned pin = 0; pin < kLevelPins; ++pin) {
        EXPECT_EQ(vm.ioapic.redirection(pin) & apic::ioapic::kRemoteIrr, 0u) << "pin " << pin;
    }
    for (std::size_t v = 0; v < kVcpus; ++v) {
        EXPECT_EQ(vm.apics[v]->flatten().isr, apic::VectorWords{}) << "vcpu " << v;
        EXPECT_EQ(vm.apics[v]->pending_vector(), std::nullopt);
        eoi_exits += exits(*vm.apics[v]).eoi;
    }
    EXPECT_GT(vm.level_msgs.load(), 0u);
    EXPECT_EQ(vm.ioapic.counters().eoi, vm.level_msgs.load());
    if (o.virtual_interrupt_delivery) {
        EXPECT_EQ(eoi_exits, vm.level_msgs.load()); // one EOI-induced exit per level EOI
    }
}

TEST(IoApicConcurrency, Everything)
{
    check(ApicvOptions{});
}

TEST(IoApicConcurrency, WithoutPostedInterrupts)
{
    ApicvOptions o;
    o.ipiv = false;
    o.posted_interrupts = false;
    check(o);
}

TEST(IoApicConcurrency, TprShadowOnly)
{
    ApicvOptions o;
    o.ipiv = false;
    o.posted_interrupts = false;
    o.virtual_interrupt_delivery = false;
    check(o);
}

} // namespace
} // namespace hv::vmx::test
