// Port-I/O and MMIO dispatch by address range. A device claims [base, base+len); an access
// that no device claims reads as all-ones, writes are dropped, and both are counted (as a PC
// chipset does with an unclaimed cycle) rather than being fatal.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace hv {

class IoDevice {
  public:
    virtual ~IoDevice() = default;
    // `offset` is relative to the claimed base; `size` is 1, 2, 4 or 8.
    virtual std::uint64_t read(std::uint64_t offset, unsigned size) = 0;
    virtual void write(std::uint64_t offset, unsigned size, std::uint64_t value) = 0;
};

class Bus {
  public:
    explicit Bus(std::string name) : name_(std::move(name)) {}

    // Throws hv::Error when the range is empty, wraps, or overlaps an existing claim.
    void attach(std::uint64_t base, std::uint64_t len, IoDevice* dev, std::string dev_name);

    // Dispatch. Return true when a device handled the access.
    bool read(std::uint64_t addr, unsigned size, std::uint64_t& value);
    bool write(std::uint64_t addr, unsigned size, std::uint64_t value);

    std::uint64_t unclaimed_reads() const { return unclaimed_reads_.load(); }
    std::uint64_t unclaimed_writes() const { return unclaimed_writes_.load(); }
    const std::string& name() const { return name_; }

  private:
    struct Range {
        std::uint64_t base;
        std::uint64_t len;
        IoDevice* dev;
        std::string name;
    };
    const Range* find(std::uint64_t addr, unsigned size) const;

    std::string name_;
    std::vector<Range> ranges_;  // sorted by base; only modified before vCPUs start
    std::atomic<std::uint64_t> unclaimed_reads_{0};
    std::atomic<std::uint64_t> unclaimed_writes_{0};
};

// Value an unclaimed read returns for an access of `size` bytes.
inline std::uint64_t all_ones(unsigned size)
{
    return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

}  // namespace hv
