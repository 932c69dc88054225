// Google Benchmark micro-benchmarks of core's hot operations: bus dispatch, checked guest
// address translation, fw_cfg reads, and planning a multiboot image.
#include <benchmark/benchmark.h>

#include "core/boot/loader.hpp"
#include "core/bus/bus.hpp"
#include "core/bus/memory.hpp"
#include "core/devices/fw_cfg.hpp"

namespace {

struct Null : hv::IoDevice {
    std::uint64_t read(std::uint64_t off, unsigned) override { return off; }
    void write(std::uint64_t, unsigned, std::uint64_t) override {}
};

void BM_BusReadDispatch(benchmark::State& st)
{
    hv::Bus bus("bench");
    std::vector<Null> devs(16);
    for (unsigned i = 0; i < devs.size(); ++i)
        bus.attach(0x100 * i, 8, &devs[i], "dev");
    std::uint64_t v = 0;
    for (auto _ : st) {
        bus.read(0x704, 1, v);
        benchmark::DoNotOptimize(v);
    }
}
BENCHMARK(BM_BusReadDispatch);

void BM_GuestMemoryTranslate(benchmark::State& st)
{
    hv::GuestMemory mem(64 << 20);
    std::uint64_t gpa = 0x123000;
    for (auto _ : st) {
        benchmark::DoNotOptimize(mem.ptr(gpa, 8));
        gpa = (gpa + 0x1000) & 0x3ffffff;
    }
}
BENCHMARK(BM_GuestMemoryTranslate);

void BM_FwCfgSignatureRead(benchmark::State& st)
{
    hv::dev::FwCfg f(64 << 20, 1, 1);
    for (auto _ : st) {
        f.write(0, 2, 0);
        for (int i = 0; i < 4; ++i)
            benchmark::DoNotOptimize(f.read(1, 1));
    }
}
BENCHMARK(BM_FwCfgSignatureRead);

void BM_PlanMultiboot(benchmark::State& st)
{
    auto img = hv::read_file(HV_GUEST_DIR "/hello.elf", 64 << 20);
    for (auto _ : st)
        benchmark::DoNotOptimize(hv::plan_multiboot(img));
}
BENCHMARK(BM_PlanMultiboot);

}  // namespace
