// The results of `hvaccel bench` as text tables (Markdown, pasted into docs/benchmarks.md as
// they are), JSON (--json) and an SVG of latency CDFs (--plot).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cmd/bench_workloads.hpp"

namespace hv::bench {

struct Report {
    std::vector<VariantResult> results;
    std::vector<std::pair<std::string, std::string>> unavailable;  // workload, why
    std::string qemu_note;                                         // "not installed", ...
    RunPlan plan;
};

// One table per workload: path x series rows with count, min, p50, p99, p99.9, max (us) and
// exits per 1,000 interrupts by reason; then the targets as ratios (the kernel
// backend against QEMU, the slowest model against the kernel backend).
void print_tables(std::FILE* f, const Report& r);

// Every summary with the revision, host, date and command line (`meta`).
nlohmann::json to_json(const Report& r, const nlohmann::json& meta);

// Latency CDFs, one panel per workload series, one line per path; log-scale time axis.
std::string to_svg(const Report& r, const std::string& title);

}  // namespace hv::bench
