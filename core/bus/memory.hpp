// Guest physical memory: RAM as anonymous host mappings, and the only way hvaccel turns a guest
// physical address into a host pointer. Every translation is bounds-checked: a range that is
// not entirely inside one RAM region yields nullptr (hot paths) or throws (setup paths).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace hv {

// The PC memory map hvaccel gives its guests: RAM from 0 up to kLowRamTop, the PCI/APIC hole
// up to 4 GiB, and the rest of RAM above 4 GiB (as QEMU's pc machine does for large guests).
inline constexpr std::uint64_t kLowRamTop = 0xC000'0000;  // 3 GiB
inline constexpr std::uint64_t kHighRamBase = 0x1'0000'0000;
inline constexpr std::uint64_t kMinMemory = 2ull << 20;   // 2 MiB
inline constexpr std::uint64_t kMaxMemory = 64ull << 30;  // 64 GiB

struct MemoryRegion {
    std::uint64_t gpa;
    std::uint64_t size;
    std::uint8_t* host;
};

class GuestMemory {
  public:
    // `bytes` must be within [kMinMemory, kMaxMemory] and a multiple of 4 KiB.
    explicit GuestMemory(std::uint64_t bytes);
    ~GuestMemory();
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;

    std::uint64_t size() const { return size_; }
    std::span<const MemoryRegion> regions() const { return regions_; }

    // Host pointer to [gpa, gpa+len) if the whole range lies in one RAM region, else nullptr.
    std::uint8_t* ptr(std::uint64_t gpa, std::uint64_t len) const;
    bool contains(std::uint64_t gpa, std::uint64_t len) const { return ptr(gpa, len) != nullptr; }
    // Checked copies; false (nothing copied) when the range is outside RAM.
    bool read(std::uint64_t gpa, void* dst, std::size_t len) const;
    bool write(std::uint64_t gpa, const void* src, std::size_t len) const;
    // Setup-path variants that throw hv::Error naming the range.
    std::span<std::uint8_t> span(std::uint64_t gpa, std::uint64_t len) const;
    void write_checked(std::uint64_t gpa, const void* src, std::size_t len) const;
    // Makes [gpa, gpa+len) read as zero without backing its whole pages with host memory.
    void zero(std::uint64_t gpa, std::uint64_t len) const;

    template <typename T> bool read_obj(std::uint64_t gpa, T& out) const
    {
        return read(gpa, &out, sizeof(T));
    }

    // Runs [gpa, gpa+len) of 4 KiB pages that hold non-zero bytes (pages never touched, or
    // all-zero, are left out): what a snapshot stores.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> nonzero_runs() const;

    // Guest RAM currently backed by host pages (mincore), in bytes.
    std::uint64_t resident_bytes() const;

    // Top of the RAM below the hole (end of the low region).
    std::uint64_t low_top() const;

  private:
    std::uint64_t size_;
    std::uint8_t* base_ = nullptr;  // one reservation; the high region follows the low one
    std::vector<MemoryRegion> regions_;
};

}  // namespace hv
