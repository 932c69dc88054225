#include "core/devices/pm_timer.hpp"

#include "core/base/clock.hpp"

namespace hv::dev {

PmTimer::PmTimer() : start_ns_(monotonic_ns())
{
}

std::uint32_t PmTimer::ticks_for_ns(std::uint64_t ns)
{
    // Split at whole seconds: ns * 3.58e6 would overflow 64 bits after ~85 minutes.
    constexpr std::uint64_t kNsPerSec = 1'000'000'000;
    std::uint64_t t = ns / kNsPerSec * kHz + ns % kNsPerSec * kHz / kNsPerSec;
    return static_cast<std::uint32_t>(t);
}

std::uint32_t PmTimer::ticks() const
{
    return base_ticks_.load() + ticks_for_ns(monotonic_ns() - start_ns_.load());
}

void PmTimer::set_ticks(std::uint32_t t)
{
    start_ns_.store(monotonic_ns());
    base_ticks_.store(t);
}

std::uint64_t PmTimer::read(std::uint64_t offset, unsigned size)
{
    return (ticks() >> (8 * offset)) & all_ones(size);
}

}  // namespace hv::dev
