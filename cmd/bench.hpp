// `hvaccel bench`: the guest latency workloads on every APIC backend and option set this host
// can run, beside QEMU+KVM on the same images in the same invocation (docs/benchmarks.md).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cmd/bench_report.hpp"

int cmd_bench(int argc, char** argv);

namespace hv::bench {

// The revision hvaccel was built from (git describe at configure time, "unknown" without git).
std::string revision();

// Runs `workloads` x variants x (backends + QEMU where plan.qemu is set). Workloads that cannot
// run here are listed in Report::unavailable.
Report run_benchmarks(const RunPlan& plan, const std::vector<const Workload*>& workloads,
                      const std::vector<std::string>& backends);

// Revision, date, command line and host (CPU, KVM module, cores, kernel) for --json.
nlohmann::json run_metadata(const std::vector<std::string>& command_line);

// The guest image directory next to this binary (build/guest), else the build's own.
std::string default_guest_dir();

}  // namespace hv::bench
