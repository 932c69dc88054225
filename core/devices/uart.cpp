#include "core/devices/uart.hpp"

#include <unistd.h>

#include <cerrno>

namespace hv::dev {

namespace {
// Register offsets (16550A datasheet).
constexpr unsigned kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                   kScr = 7;
constexpr std::uint8_t kLcrDlab = 0x80;
constexpr std::uint8_t kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr std::uint8_t kIirNoInt = 0x01, kIirFifos = 0xc0;
constexpr std::uint8_t kMcrLoop = 0x10;
}  // namespace

std::uint64_t Uart16550::read(std::uint64_t offset, unsigned /*size*/)
{
    std::lock_guard lk(mu_);
    bool dlab = lcr_ & kLcrDlab;
    switch (offset) {
    case kRbrThr:
        return dlab ? dll_ : 0;  // no input: RBR reads 0 and LSR.DR stays clear
    case kIer:
        return dlab ? dlm_ : ier_;
    case kIirFcr:
        return kIirNoInt | ((fcr_ & 1) ? kIirFifos : 0);
    case kLcr:
        return lcr_;
    case kMcr:
        return mcr_;
    case kLsr:
        return kLsrThre | kLsrTemt;  // the transmitter is always empty: output is synchronous
    case kMsr:
        // In loopback the modem inputs mirror MCR outputs (16550A datasheet, MCR bit 4).
        if (mcr_ & kMcrLoop)
            return ((mcr_ & 0x01u) << 5) | ((mcr_ & 0x02u) << 3) | ((mcr_ & 0x04u) << 4) |
                   ((mcr_ & 0x08u) << 4);
        return 0xb0;  // CTS, DSR, DCD asserted
    case kScr:
        return scr_;
    default:
        return 0xff;
    }
}

void Uart16550::write(std::uint64_t offset, unsigned /*size*/, std::uint64_t value)
{
    std::lock_guard lk(mu_);
    auto v = static_cast<std::uint8_t>(value);
    bool dlab = lcr_ & kLcrDlab;
    switch (offset) {
    case kRbrThr:
        if (dlab)
            dll_ = v;
        else if (!(mcr_ & kMcrLoop))
            emit(v);
        break;
    case kIer:
        if (dlab)
            dlm_ = v;
        else
            ier_ = v & 0x0f;
        break;
    case kIirFcr:
        fcr_ = v & 0xc9;
        break;
    case kLcr:
        lcr_ = v;
        break;
    case kMcr:
        mcr_ = v & 0x1f;
        break;
    case kScr:
        scr_ = v;
        break;
    default:
        break;  // LSR and MSR are read-only
    }
}

void Uart16550::emit(std::uint8_t c)
{
    pending_.push_back(static_cast<char>(c));
    ++bytes_out_;
    // Flush under the lock so that lines from different vCPUs never interleave.
    if (c == '\n' || pending_.size() >= 4096)
        write_pending();
}

void Uart16550::write_pending()
{
    const char* p = pending_.data();
    std::size_t n = pending_.size();
    while (n > 0) {
        ssize_t w = ::write(fd_, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;  // output closed: drop, the guest must not stall on it
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    pending_.clear();
}

void Uart16550::flush()
{
    std::lock_guard lk(mu_);
    write_pending();
}

std::uint64_t Uart16550::bytes_out() const
{
    std::lock_guard lk(mu_);
    return bytes_out_;
}

Uart16550::Regs Uart16550::regs() const
{
    std::lock_guard lk(mu_);
    return {ier_, lcr_, mcr_, scr_, fcr_, dll_, dlm_};
}

void Uart16550::set_regs(const Regs& r)
{
    std::lock_guard lk(mu_);
    ier_ = r.ier & 0x0f;
    lcr_ = r.lcr;
    mcr_ = r.mcr & 0x1f;
    scr_ = r.scr;
    fcr_ = r.fcr & 0xc9;
    dll_ = r.dll;
    dlm_ = r.dlm;
}

std::uint16_t Uart16550::divisor() const
{
    std::lock_guard lk(mu_);
    return static_cast<std::uint16_t>(dll_ | (dlm_ << 8));
}

}  // namespace hv::dev
