// IRQ lines a guest can drive itself, at the ports QEMU's pc-testdev uses (0x2000 + line,
// 24 lines): writing a non-zero value asserts ISA IRQ `line`, zero de-asserts it. The lines go to
// the IOAPIC's pins as on a PC (ISA IRQ 0 is wired to pin 2, the others to their own number), so
// guests test edge and level triggering, remote IRR and EOIs without a real device. The same
// guest runs under `qemu-system-x86_64 -device pc-testdev`.
#pragma once

#include <functional>

#include "core/bus/bus.hpp"

namespace hv::dev {

class IrqTestDev : public IoDevice {
  public:
    static constexpr std::uint16_t kPort = 0x2000;
    static constexpr unsigned kLines = 24;

    using SetIrq = std::function<void(unsigned pin, bool level)>;
    explicit IrqTestDev(SetIrq set_irq) : set_irq_(std::move(set_irq)) {}

    static unsigned pin_for_line(unsigned line) { return line == 0 ? 2 : line; }

    std::uint64_t read(std::uint64_t, unsigned) override { return 0; }
    void write(std::uint64_t offset, unsigned, std::uint64_t value) override
    {
        if (offset < kLines)
            set_irq_(pin_for_line(static_cast<unsigned>(offset)), value != 0);
    }

  private:
    SetIrq set_irq_;
};

}  // namespace hv::dev
