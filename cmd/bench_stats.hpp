// What `hvaccel bench` (and the demo) read from a run: the guests' sample lines, the --stats
// counters, and the summaries made of them. Pure functions, unit-tested in
// tests/guest/test_bench.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hv::bench {

// count, min, p50, p99, p99.9, max of a set of latencies (nearest-rank percentiles).
struct Summary {
    std::size_t count = 0;
    double min = 0, p50 = 0, p99 = 0, p999 = 0, max = 0;
};
Summary summarise(std::vector<double> v);
// The nearest-rank percentile p (0..1) of a sorted, non-empty vector.
double percentile(const std::vector<double>& sorted, double p);

// The sample protocol of guest/runtime/bench.h: "NAME: c,c,c" lines of TSC cycles. A line
// "NAME: skipped (why)" gives an entry in `skipped` instead, and "NAME_note: text" one in
// `notes` (periodic timer ticks without a handler of their own, spurious level interrupts).
struct Series {
    std::map<std::string, std::vector<std::uint64_t>> samples;
    std::map<std::string, std::string> skipped, notes;
};
Series parse_series(const std::string& guest_output);

// "exit NAME N" and "apic NAME N" lines of --stats, summed over vCPUs, keyed "exit NAME" /
// "apic NAME".
using Counters = std::map<std::string, long long>;
Counters parse_counters(const std::string& stats);

// Whether an "apic NAME" counter is an architectural exit of a modelled CPU (the backends'
// exit_counters(): emulated xAPIC/x2APIC accesses, APICv and AVIC exit reasons), as opposed to
// a delivery statistic.
bool is_architectural_exit(const std::string& apic_counter);

// Exits per 1,000 interrupts by reason, from two runs that differ only in the number of
// interrupts (`irqs`): boot and set-up cancel out. Userspace exits are KVM exits to hvaccel
// ("exit NAME"); port I/O is counted without the guest's serial output (`serial_bytes`, one
// OUT per byte). Architectural exits are the model's ("apic NAME", is_architectural_exit()).
struct ExitRates {
    std::map<std::string, double> userspace, architectural;
};
ExitRates exit_rates(const Counters& small, const Counters& big, double serial_bytes, double irqs);

// "hlt 1.00, mmio 3.00" (per 1,000 already applied by the caller's choice of scale), "0" when
// empty.
std::string format_rates(const std::map<std::string, double>& rates, int decimals = 0);

}  // namespace hv::bench
