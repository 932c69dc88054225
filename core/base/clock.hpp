// The host's monotonic clock in nanoseconds, the time base of guest-visible time (PM timer,
// LAPIC timers).
#pragma once

#include <time.h>

#include <cstdint>

namespace hv {

inline std::uint64_t monotonic_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace hv
