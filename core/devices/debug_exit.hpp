// QEMU's isa-debug-exit at port 0xf4: a write of `value` ends the VM and the VMM process exits
// with status (value << 1) | 1, exactly as QEMU does, so test guests run under both unchanged.
#pragma once

#include <functional>

#include "core/bus/bus.hpp"

namespace hv::dev {

class DebugExit : public IoDevice {
  public:
    static constexpr std::uint16_t kPort = 0xf4;
    static constexpr unsigned kPorts = 4;  // iosize=4, as in QEMU's -device ...,iosize=4

    using ExitFn = std::function<void(int status)>;
    explicit DebugExit(ExitFn on_exit) : on_exit_(std::move(on_exit)) {}

    static int status_for(std::uint64_t value)
    {
        return static_cast<int>(((value << 1) | 1) & 0xff);
    }

    std::uint64_t read(std::uint64_t, unsigned) override { return 0; }
    void write(std::uint64_t, unsigned, std::uint64_t value) override
    {
        on_exit_(status_for(value));
    }

  private:
    ExitFn on_exit_;
};

}  // namespace hv::dev
