#include "core/host/tsc.hpp"

#include <time.h>
#include <x86intrin.h>

#include <thread>

namespace hv::host {

double measure_tsc_khz(std::chrono::milliseconds window)
{
    timespec a{}, b{};
    clock_gettime(CLOCK_MONOTONIC, &a);
    unsigned long long t0 = __rdtsc();
    std::this_thread::sleep_for(window);
    unsigned long long t1 = __rdtsc();
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s =
        static_cast<double>(b.tv_sec - a.tv_sec) + static_cast<double>(b.tv_nsec - a.tv_nsec) / 1e9;
    double khz = static_cast<double>(t1 - t0) / s / 1e3;
    return static_cast<double>(static_cast<long long>(khz / 1000.0 + 0.5)) * 1000.0;
}

}  // namespace hv::host
