// Google Benchmark micro-benchmarks of the hardware models' hot paths: posting to a
// posted-interrupt descriptor (uncontended and from two threads), the PIR -> VIRR sync, a device
// interrupt into an APICv vCPU up to the virtual-interrupt-delivery decision, setting an IRR bit
// in an AVIC backing page, an accelerated x2AVIC IPI between two running vCPUs, and the APIC work
// the vCPU loop does around one KVM_RUN (with and without handing CR8 in and out).
#include <benchmark/benchmark.h>

#include "core/vcpu/cr8_sync.hpp"
#include "svm/avic_vm.hpp"
#include "svm/backing_page.hpp"
#include "vmx/apicv_vm.hpp"
#include "vmx/posted_interrupt.hpp"

namespace {

using namespace hv;

struct Clock : apic::GuestClock {
    apic::GuestTime now() const override { return {1000, 1000}; }
};
struct Platform : apic::ApicPlatform {
    void send_ipi(std::size_t, const apic::Ipi&) override {}
    void eoi_to_ioapic(uint8_t) override {}
    void timer_changed(std::size_t) override {}
};
struct Notifier : apic::VcpuNotifier {
    void kick() override {}
    void wake() override {}
};

vmx::PostedInterruptDescriptor g_pid;

void BM_PidPost(benchmark::State& st)
{
    std::uint8_t v = 0x20;
    for (auto _ : st) {
        benchmark::DoNotOptimize(vmx::post(g_pid, v));
        v = static_cast<std::uint8_t>(v == 0xfe ? 0x20 : v + 1);
        if (v == 0x20)
            benchmark::DoNotOptimize(vmx::take_pir(g_pid));
    }
}
BENCHMARK(BM_PidPost);
BENCHMARK(BM_PidPost)->Threads(2)->UseRealTime();

void BM_PirToVirrSync(benchmark::State& st)
{
    vmx::PostedInterruptDescriptor d;
    for (auto _ : st) {
        vmx::post(d, 0x41);
        vmx::post(d, 0x80);
        benchmark::DoNotOptimize(vmx::take_pir(d));
    }
}
BENCHMARK(BM_PirToVirrSync);

void BM_ApicvDeviceInterruptToDelivery(benchmark::State& st)
{
    Clock clock;
    Platform platform;
    Notifier notifier;
    vmx::ApicvVm vm(1, {});
    auto b = vm.make_backend(0, apic::LocalApicConfig{0, true, {}, 1'000'000'000, 0}, clock,
                             platform, notifier);
    b->mmio_write(0xfee000f0, 4, 0x1ff);
    b->enter_guest();
    apic::Interrupt irq{0x50, apic::DeliveryMode::Fixed, apic::Trigger::Edge, true,
                        apic::Source::Msi};
    for (auto _ : st) {
        b->deliver(irq);
        benchmark::DoNotOptimize(b->pending_vector());
        benchmark::DoNotOptimize(b->ack());
        b->mmio_write(0xfee000b0, 4, 0);
    }
}
BENCHMARK(BM_ApicvDeviceInterruptToDelivery);

void BM_AvicBackingPagePost(benchmark::State& st)
{
    svm::AvicVm vm(1, {});
    auto& page = vm.backing_page(0);
    std::uint8_t v = 0x20;
    for (auto _ : st) {
        benchmark::DoNotOptimize(svm::post_to_backing_page(page, v));
        v = static_cast<std::uint8_t>(v == 0xfe ? 0x20 : v + 1);
    }
}
BENCHMARK(BM_AvicBackingPagePost);

void BM_AvicAcceleratedX2apicIpi(benchmark::State& st)
{
    Clock clock;
    Platform platform;
    Notifier n0, n1;
    svm::AvicVm vm(2, {.x2avic = true});
    apic::LocalApicConfig c0{0, true, {}, 1'000'000'000, 0}, c1{1, false, {}, 1'000'000'000, 0};
    auto b0 = vm.make_backend(0, c0, clock, platform, n0);
    auto b1 = vm.make_backend(1, c1, clock, platform, n1);
    for (auto* b : {b0.get(), b1.get()}) {
        b->msr_write(0x1b, 0xfee00c00);  // x2APIC
        b->msr_write(0x80f, 0x1ff);      // software-enable
    }
    b1->set_run_state(apic::RunState::Running);
    b1->enter_guest();  // IsRunning: the IPI completes with a doorbell, no exit
    for (auto _ : st) {
        b0->msr_write(0x830, (1ull << 32) | 0x60);
        benchmark::DoNotOptimize(b1->ack());
        b1->msr_write(0x80b, 0);
    }
}
BENCHMARK(BM_AvicAcceleratedX2apicIpi);

// The APIC calls of one vCPU-loop iteration around KVM_RUN on the apicv model (enter, injection
// check, leave); range(0) = 1 adds the CR8 hand-in and hand-out (core/vcpu/cr8_sync.hpp).
void BM_LoopApicHooks(benchmark::State& st)
{
    Clock clock;
    Platform platform;
    Notifier notifier;
    vmx::ApicvVm vm(1, {});
    auto b = vm.make_backend(0, apic::LocalApicConfig{0, true, {}, 1'000'000'000, 0}, clock,
                             platform, notifier);
    b->mmio_write(0xfee000f0, 4, 0x1ff);
    hv::Cr8Sync cr8(0);
    const bool sync = st.range(0) != 0;
    for (auto _ : st) {
        std::uint64_t handed = 0;
        b->enter_guest();
        if (sync)
            handed = cr8.before_entry(b->cr8().value_or(0));
        benchmark::DoNotOptimize(b->pending_vector());
        b->leave_guest();
        if (sync)
            if (auto w = cr8.after_run(handed, true))
                b->write_cr8(*w);
    }
}
BENCHMARK(BM_LoopApicHooks)->Arg(0)->Arg(1);

}  // namespace
