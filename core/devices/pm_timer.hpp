// ACPI power-management timer: a free-running 32-bit counter (the FADT sets TMR_VAL_EXT) at
// 3.579545 MHz, read at PM_TMR_BLK (ACPI 6.4 4.8.3.3). It counts from the VM's creation.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/bus/bus.hpp"

namespace hv::dev {

class PmTimer : public IoDevice {
  public:
    static constexpr std::uint16_t kPmBase = 0x600;  // PM1a event block, as QEMU's PIIX4
    static constexpr std::uint16_t kPort = kPmBase + 8;
    static constexpr unsigned kPorts = 4;
    static constexpr std::uint64_t kHz = 3579545;

    PmTimer();
    std::uint64_t read(std::uint64_t offset, unsigned size) override;
    void write(std::uint64_t, unsigned, std::uint64_t) override {}

    // The counter now, and making it continue from a saved value (restore).
    std::uint32_t ticks() const;
    void set_ticks(std::uint32_t ticks);

    // Ticks for a given elapsed guest time; exposed for tests.
    static std::uint32_t ticks_for_ns(std::uint64_t ns);

  private:
    std::atomic<std::uint64_t> start_ns_;
    std::atomic<std::uint32_t> base_ticks_{0};
};

}  // namespace hv::dev
