// 16550A UART, enough for a polling driver: THR/RBR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR and
// the divisor latch (DLL/DLM behind LCR.DLAB). Output goes to a file descriptor, line-buffered.
// Interrupt generation is not wired (no guest here waits on UART interrupts); IIR always reads
// "no interrupt pending".
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "core/bus/bus.hpp"

namespace hv::dev {

class Uart16550 : public IoDevice {
  public:
    static constexpr std::uint16_t kCom1 = 0x3f8;
    static constexpr unsigned kPorts = 8;

    // Writes output to `fd` (not owned). Bytes are flushed at each newline and on flush().
    explicit Uart16550(int fd) : fd_(fd) {}
    ~Uart16550() override { flush(); }

    std::uint64_t read(std::uint64_t offset, unsigned size) override;
    void write(std::uint64_t offset, unsigned size, std::uint64_t value) override;
    void flush();

    std::uint64_t bytes_out() const;

    struct Regs {
        std::uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
    };
    Regs regs() const;
    void set_regs(const Regs& r);
    std::uint16_t divisor() const;

  private:
    void emit(std::uint8_t c);
    void write_pending();  // with mu_ held

    mutable std::mutex mu_;
    int fd_;
    std::string pending_;
    std::uint64_t bytes_out_ = 0;
    std::uint8_t ier_ = 0, lcr_ = 0x03, mcr_ = 0, scr_ = 0, fcr_ = 0;
    std::uint8_t dll_ = 0x01, dlm_ = 0;  // 115200 baud after reset, as firmware leaves it
};

}  // namespace hv::dev
