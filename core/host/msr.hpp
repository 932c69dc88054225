// Model-specific registers of the host, read through the Linux msr driver (/dev/cpu/N/msr).
//
// Only the VMX capability MSRs are read: they are the one place that tells whether the CPU
// can do APICv, posted interrupts and IPI virtualization (CPUID does not). The driver is a
// module that is often not loaded; readers then say so instead of guessing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace hv::host {

class MsrSource {
  public:
    virtual ~MsrSource() = default;
    // Whether MSRs can be read at all; when not, why ("msr module not loaded ...").
    virtual bool available() const = 0;
    virtual std::string status() const = 0;
    // nullopt when this MSR cannot be read (e.g. it does not exist on this CPU: EIO).
    virtual std::optional<std::uint64_t> read(std::uint32_t msr) const = 0;
};

// Synthetic MSRs for tests.
class MsrTable : public MsrSource {
  public:
    void set(std::uint32_t msr, std::uint64_t value) { values_[msr] = value; }
    bool available() const override { return true; }
    std::string status() const override { return "synthetic"; }
    std::optional<std::uint64_t> read(std::uint32_t msr) const override;

  private:
    std::map<std::uint32_t, std::uint64_t> values_;
};

// No MSR access at all (the host has no msr driver, or the caller chose not to read).
class NoMsrs : public MsrSource {
  public:
    explicit NoMsrs(std::string why) : why_(std::move(why)) {}
    bool available() const override { return false; }
    std::string status() const override { return why_; }
    std::optional<std::uint64_t> read(std::uint32_t) const override { return std::nullopt; }

  private:
    std::string why_;
};

// /dev/cpu/<cpu>/msr under `root`. Does not throw when the device is missing: available() is
// false and status() reads "msr module not loaded (/dev/cpu/0/msr missing)".
class DevCpuMsr : public MsrSource {
  public:
    explicit DevCpuMsr(unsigned cpu = 0, const std::filesystem::path& root = "/");
    ~DevCpuMsr() override;
    DevCpuMsr(const DevCpuMsr&) = delete;
    DevCpuMsr& operator=(const DevCpuMsr&) = delete;

    bool available() const override { return fd_ >= 0; }
    std::string status() const override { return status_; }
    std::optional<std::uint64_t> read(std::uint32_t msr) const override;

  private:
    int fd_ = -1;
    std::string status_;
};

}  // namespace hv::host
