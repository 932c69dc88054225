// IOAPIC concurrency on every model backend (emulated, apicv option sets, avic, x2AVIC, the
// erratum 1235 mode): devices toggle level and edge pins while vCPU threads take interrupts, EOI
// them (level EOIs reach back into the IOAPIC — through an EOI-induced exit on apicv, an
// AVIC_NOACCEL trap on avic — and may re-deliver into the same backend) and IPI each other.
// Checks the lock order (no backend lock is held while calling the IOAPIC), that every level
// message is EOI'd exactly once, and that nothing is left pending. Meant to run under
// ThreadSanitizer too: it reports lock-order inversions (the IOAPIC <-> LAPIC EOI deadlock class)
// even when the schedule happens not to deadlock, and data races on the model state.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "apic/ioapic.hpp"
#include "tests/apic/model_backends.hpp"

namespace hv::apic::test {
namespace {

constexpr std::size_t kVcpus = 4;
constexpr unsigned kLevelPins = 8;  // pins 0-7: level, vector 0x40 + pin
constexpr unsigned kEdgePins = 8;   // pins 8-15: edge, vector 0x60 + pin
constexpr uint8_t kIpiVector = 0xB0;

// The VM glue core/ would provide: the backends plus an IOAPIC routed through the platform.
class Vm {
  public:
    explicit Vm(const Factory& f) : models(f, kVcpus), ioapic(models.platform, 0)
    {
        models.platform.ioapic = &ioapic;
        for (const auto& a : models.apics) {
            a->mmio_write(base::kDefaultAddr + reg::kSvr, 4, 0x1FF);
        }
        for (unsigned pin = 0; pin < kLevelPins + kEdgePins; ++pin) {
            const bool level = pin < kLevelPins;
            const uint64_t vec = level ? 0x40 + pin : 0x60 + pin;
            const uint64_t entry =
                (static_cast<uint64_t>(pin % kVcpus) << 56) | (level ? ioapic::kLevel : 0) | vec;
            ioapic.mmio_write(ioapic::kRegSel, 4, 0x10 + 2 * pin + 1);
            ioapic.mmio_write(ioapic::kWindow, 4, static_cast<uint32_t>(entry >> 32));
            ioapic.mmio_write(ioapic::kRegSel, 4, 0x10 + 2 * pin);
            ioapic.mmio_write(ioapic::kWindow, 4, static_cast<uint32_t>(entry));
        }
    }
    ~Vm()
    {
        models.apics.clear();  // while the IOAPIC they EOI into still exists
    }
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;

    ModelVm models;
    IoApic ioapic;
    std::vector<std::unique_ptr<ApicBackend>>& apics = models.apics;
    RoutingPlatform& platform = models.platform;
    std::atomic<bool> devices_finished{false};
};

// In the guest: acknowledge and EOI whatever is deliverable; sometimes IPI the next vCPU.
unsigned service(ApicBackend& a, std::size_t self, unsigned round)
{
    unsigned handled = 0;
    a.enter_guest();
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
    a.leave_guest();
    return handled;
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

class IoApicConcurrency : public ::testing::TestWithParam<Factory> {};

TEST_P(IoApicConcurrency, PinsAssertedWhileVcpusEoiNeverDeadlockOrLoseRemoteIrr)
{
    const Factory& f = GetParam();
    Vm vm(f);
    // A deadlock would hang forever: run in the background and bound the wait.
    auto done = std::async(std::launch::async, [&vm] { run_stress(vm); });
    if (done.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
        std::fprintf(stderr, "%s: IOAPIC/LAPIC stress did not finish: deadlock\n", f.name.c_str());
        std::_Exit(1);
    }
    done.get();

    for (unsigned pin = 0; pin < kLevelPins; ++pin) {
        EXPECT_EQ(vm.ioapic.redirection(pin) & ioapic::kRemoteIrr, 0u) << "pin " << pin;
    }
    uint64_t eoi_exits = 0;
    for (std::size_t v = 0; v < kVcpus; ++v) {
        EXPECT_EQ(vm.apics[v]->flatten().isr, VectorWords{}) << "vcpu " << v;
        EXPECT_EQ(vm.apics[v]->pending_vector(), std::nullopt) << "vcpu " << v;
        const CounterList exits = vm.apics[v]->exit_counters();
        eoi_exits += counter_value(exits, "eoi_induced") +           // apicv
                     counter_value(exits, "avic_noaccel_trap_eoi");  // avic
    }
    const uint64_t level = vm.platform.level_messages.load();
    EXPECT_GT(level, 0u);
    // Every level-triggered message was EOI'd exactly once (distinct vectors per pin, one in
    // flight per pin because of remote IRR).
    EXPECT_EQ(vm.ioapic.counters().eoi, level);
    // And through exactly one exit where the hardware virtualizes EOIs: SDM Vol3 30.1.4 (the
    // EOI-exit bitmap), APM Vol2 15.29.4.2 (a level-triggered EOI traps).
    if ((f.kind == Factory::Kind::Apicv && f.apicv.virtual_interrupt_delivery) ||
        f.kind == Factory::Kind::Avic) {
        EXPECT_EQ(eoi_exits, level);
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, IoApicConcurrency, ::testing::ValuesIn(factories()),
                         [](const ::testing::TestParamInfo<Factory>& i) { return i.param.name; });

}  // namespace
}  // namespace hv::apic::test
