#include "core/host/pm_qos.hpp"

#include <cerrno>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include "core/base/error.hpp"

namespace hv::host {

PmQosHold::PmQosHold(const std::filesystem::path& device, std::int32_t latency_us)
    : latency_us_(latency_us)
{
    if (latency_us < 0)
        fail("PM QoS hold on {}: latency {} us is negative", device.string(), latency_us);
    fd_ = ::open(device.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0)
        throw_errno(fmt::format("PM QoS hold: open {}", device.string()));
    // The misc device takes a raw s32 (or a hex string); the request lives as long as the fd.
    const ssize_t n = ::write(fd_, &latency_us, sizeof latency_us);
    if (n != static_cast<ssize_t>(sizeof latency_us)) {
        const int err = n < 0 ? errno : EIO;
        ::close(fd_);
        fd_ = -1;
        throw_errno(fmt::format("PM QoS hold: write {} us to {}", latency_us, device.string()),
                    err);
    }
}

PmQosHold::~PmQosHold()
{
    release();
}

PmQosHold::PmQosHold(PmQosHold&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), latency_us_(other.latency_us_)
{
}

PmQosHold& PmQosHold::operator=(PmQosHold&& other) noexcept
{
    if (this != &other) {
        release();
        fd_ = std::exchange(other.fd_, -1);
        latency_us_ = other.latency_us_;
    }
    return *this;
}

void PmQosHold::release()
{
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

}  // namespace hv::host
