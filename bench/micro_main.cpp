// hv_bench_micro: every Google Benchmark micro-benchmark of hvaccel in one binary (core,
// the APIC model, the APICv and AVIC models: micro_*.cpp), with the revision it was built from
// in the context of every report, so a JSON result says what it measured:
//   ./build/bench/hv_bench_micro --benchmark_min_time=0.2
//       --benchmark_out=micro.json --benchmark_out_format=json   (one command line)
#include <benchmark/benchmark.h>

#if __has_include("hv_revision.h")
#include "hv_revision.h"
#endif
#ifndef HV_REVISION
#define HV_REVISION "unknown"
#endif

int main(int argc, char** argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::AddCustomContext("revision", HV_REVISION);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
