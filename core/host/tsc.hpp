// The host TSC frequency, measured: KVM runs guests here with the TSC unscaled, so the guests'
// cycle counts (the latency workloads time themselves with RDTSC) convert at this rate.
#pragma once

#include <chrono>

namespace hv::host {

// Counts TSC ticks against CLOCK_MONOTONIC across a sleep of `window` and returns the rate in
// kHz, rounded to 1 MHz (the measurement is good to a few kHz, and a round figure reads better).
double measure_tsc_khz(std::chrono::milliseconds window = std::chrono::milliseconds(100));

}  // namespace hv::host
