// The two 8259A PICs at 0x20/0x21 and 0xA0/0xA1, as far as guests program them before they
// switch to the APIC: the ICW1..ICW4 initialisation sequence, OCW1 (the interrupt mask) and
// OCW2/OCW3 commands. hvaccel routes no interrupt through the PIC (the LAPIC and IOAPIC carry
// them), so IRR and ISR always read as zero; the mask reads back what the guest wrote.
#pragma once

#include <cstdint>
#include <mutex>

#include "core/bus/bus.hpp"

namespace hv::dev {

class Pic8259 : public IoDevice {
  public:
    static constexpr std::uint16_t kMaster = 0x20;
    static constexpr std::uint16_t kSlave = 0xa0;
    static constexpr unsigned kPorts = 2;

    std::uint64_t read(std::uint64_t offset, unsigned size) override;
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;

    std::uint8_t mask() const;
    std::uint8_t vector_base() const;
    // Restores a programmed PIC (initialisation complete).
    void set_state(std::uint8_t mask, std::uint8_t vector_base);

  private:
    mutable std::mutex mu_;
    std::uint8_t imr_ = 0xff;  // everything masked until the guest says otherwise
    std::uint8_t base_ = 0;    // ICW2
    unsigned init_step_ = 0;   // 0 = ready; 2..4 = the next ICW expected
    bool icw4_needed_ = false;
    bool single_ = false;
};

}  // namespace hv::dev
