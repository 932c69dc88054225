// Google Benchmark micro-benchmarks of the common APIC model's hot operations: a register access
// decode, deliver() into the emulated backend, the injection decision, flatten and restore.
#include <benchmark/benchmark.h>

#include "apic/emulated.hpp"

namespace {

using namespace hv::apic;

struct Clock : GuestClock {
    GuestTime now() const override { return {1000, 1000}; }
};
struct Platform : ApicPlatform {
    void send_ipi(std::size_t, const Ipi&) override {}
    void eoi_to_ioapic(uint8_t) override {}
    void timer_changed(std::size_t) override {}
};
struct Notifier : VcpuNotifier {
    void kick() override {}
    void wake() override {}
};

struct Fixture {
    Clock clock;
    Platform platform;
    Notifier notifier;
    EmulatedApic apic{0, LocalApicConfig{0, true, {}, 1'000'000'000, 0}, clock, platform, notifier};
    Fixture() { apic.mmio_write(0xfee000f0, 4, 0x1ff); }  // software-enable
};

void BM_XapicTprReadDecode(benchmark::State& st)
{
    Fixture f;
    for (auto _ : st)
        benchmark::DoNotOptimize(f.apic.mmio_read(0xfee00080, 4));
}
BENCHMARK(BM_XapicTprReadDecode);

void BM_X2apicIcrSelfIpiWrite(benchmark::State& st)
{
    Fixture f;
    f.apic.msr_write(0x1b, 0xfee00d00);
    for (auto _ : st) {
        benchmark::DoNotOptimize(f.apic.msr_write(0x83f, 0x40));
        f.apic.ack();
        f.apic.msr_write(0x80b, 0);
    }
}
BENCHMARK(BM_X2apicIcrSelfIpiWrite);

void BM_DeliverAckEoi(benchmark::State& st)
{
    Fixture f;
    Interrupt irq{0x50, DeliveryMode::Fixed, Trigger::Edge, true, Source::Msi};
    for (auto _ : st) {
        f.apic.deliver(irq);
        benchmark::DoNotOptimize(f.apic.pending_vector());
        benchmark::DoNotOptimize(f.apic.ack());
        f.apic.mmio_write(0xfee000b0, 4, 0);
    }
}
BENCHMARK(BM_DeliverAckEoi);

void BM_FlattenRestore(benchmark::State& st)
{
    Fixture f;
    f.apic.deliver({0x61, DeliveryMode::Fixed, Trigger::Edge, true, Source::Ipi});
    for (auto _ : st) {
        ApicState s = f.apic.flatten();
        benchmark::DoNotOptimize(f.apic.restore(s));
    }
}
BENCHMARK(BM_FlattenRestore);

}  // namespace
