#include "core/host/msr.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/host/sysfs.hpp"

namespace hv::host {

std::optional<std::uint64_t> MsrTable::read(std::uint32_t msr) const
{
    const auto it = values_.find(msr);
    if (it == values_.end())
        return std::nullopt;
    return it->second;
}

DevCpuMsr::DevCpuMsr(unsigned cpu, const std::filesystem::path& root)
{
    const auto dev = under_root(root, fmt::format("/dev/cpu/{}/msr", cpu));
    fd_ = ::open(dev.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ >= 0) {
        status_ = fmt::format("readable ({})", dev.string());
    } else if (errno == ENOENT) {
        status_ =
            fmt::format("msr module not loaded ({} missing; try 'modprobe msr')", dev.string());
    } else {
        status_ = fmt::format("cannot open {}: {}", dev.string(), std::strerror(errno));
    }
}

DevCpuMsr::~DevCpuMsr()
{
    if (fd_ >= 0)
        ::close(fd_);
}

std::optional<std::uint64_t> DevCpuMsr::read(std::uint32_t msr) const
{
    if (fd_ < 0)
        return std::nullopt;
    // The msr driver reads the register whose number is the file offset (arch/x86/kernel/msr.c).
    std::uint64_t value = 0;
    const auto n = ::pread(fd_, &value, sizeof value, static_cast<off_t>(msr));
    if (n != static_cast<ssize_t>(sizeof value))
        return std::nullopt;
    return value;
}

}  // namespace hv::host
