#include "core/bus/memory.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/base/error.hpp"

namespace hv {

namespace {

// True when /proc/swaps lists a swap area (more than its header line).
bool host_swaps()
{
    std::FILE* f = std::fopen("/proc/swaps", "r");
    if (!f)
        return true;
    int lines = 0;
    for (int c; (c = std::fgetc(f)) != EOF;)
        lines += c == '\n';
    std::fclose(f);
    return lines > 1;
}

}  // namespace

GuestMemory::GuestMemory(std::uint64_t bytes) : size_(bytes)
{
    if (bytes < kMinMemory || bytes > kMaxMemory)
        fail("memory size {} MiB out of range ({} MiB to {} MiB)", bytes >> 20, kMinMemory >> 20,
             kMaxMemory >> 20);
    if (bytes % 4096)
        fail("memory size {:#x} is not a multiple of 4 KiB", bytes);
    // MAP_NORESERVE: only pages the guest touches cost host memory.
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        throw_errno(fmt::format("mmap {} MiB of guest memory", bytes >> 20));
    base_ = static_cast<std::uint8_t*>(p);
    ::madvise(p, bytes, MADV_MERGEABLE);
    std::uint64_t low = bytes < kLowRamTop ? bytes : kLowRamTop;
    regions_.push_back({0, low, base_});
    if (bytes > low)
        regions_.push_back({kHighRamBase, bytes - low, base_ + low});
}

GuestMemory::~GuestMemory()
{
    if (base_)
        ::munmap(base_, size_);
}

std::uint64_t GuestMemory::low_top() const
{
    return regions_.front().size;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> GuestMemory::nonzero_runs() const
{
    constexpr std::uint64_t kPage = 4096;
    static const std::uint8_t kZero[kPage] = {};
    std::vector<std::pair<std::uint64_t, std::uint64_t>> runs;
    std::vector<unsigned char> vec;
    // mincore() says which pages were never faulted in (they read as zero) — unless the host
    // swaps, when a non-resident page may hold data: then every page is looked at.
    const bool trust_mincore = !host_swaps();
    for (const auto& r : regions_) {
        std::uint64_t pages = r.size / kPage;
        vec.assign(pages, 1);
        if (trust_mincore && ::mincore(r.host, r.size, vec.data()) != 0)
            vec.assign(pages, 1);
        for (std::uint64_t i = 0; i < pages; ++i) {
            // A page never faulted in reads as zero.
            if (!(vec[i] & 1) || std::memcmp(r.host + i * kPage, kZero, kPage) == 0)
                continue;
            std::uint64_t gpa = r.gpa + i * kPage;
            if (!runs.empty() && runs.back().first + runs.back().second == gpa)
                runs.back().second += kPage;
            else
                runs.emplace_back(gpa, kPage);
        }
    }
    return runs;
}

std::uint64_t GuestMemory::resident_bytes() const
{
    constexpr std::uint64_t kPage = 4096;
    constexpr std::size_t kChunk = 1 << 16;  // pages per mincore call
    std::vector<unsigned char> vec(kChunk);
    std::uint64_t resident = 0;
    for (std::uint64_t off = 0; off < size_; off += kChunk * kPage) {
        std::uint64_t len = std::min<std::uint64_t>(kChunk * kPage, size_ - off);
        if (::mincore(base_ + off, len, vec.data()) != 0)
            return 0;
        for (std::size_t i = 0; i < (len + kPage - 1) / kPage; ++i)
            resident += (vec[i] & 1) ? kPage : 0;
    }
    return resident;
}

std::uint8_t* GuestMemory::ptr(std::uint64_t gpa, std::uint64_t len) const
{
    for (const auto& r : regions_) {
        // Written so that no sum can overflow: gpa >= r.gpa, then offsets within the region.
        if (gpa < r.gpa)
            continue;
        std::uint64_t off = gpa - r.gpa;
        if (off >= r.size || len > r.size - off)
            continue;
        return r.host + off;
    }
    return nullptr;
}

// Copies of nothing may come with a null pointer (an empty module's data()): memcpy must not see
// it (C 7.24.1: its pointers must be valid even for a length of 0).
bool GuestMemory::read(std::uint64_t gpa, void* dst, std::size_t len) const
{
    const std::uint8_t* p = ptr(gpa, len);
    if (!p)
        return false;
    if (len)
        std::memcpy(dst, p, len);
    return true;
}

bool GuestMemory::write(std::uint64_t gpa, const void* src, std::size_t len) const
{
    std::uint8_t* p = ptr(gpa, len);
    if (!p)
        return false;
    if (len)
        std::memcpy(p, src, len);
    return true;
}

std::span<std::uint8_t> GuestMemory::span(std::uint64_t gpa, std::uint64_t len) const
{
    std::uint8_t* p = ptr(gpa, len);
    if (!p)
        fail("guest range [{:#x}, +{:#x}) is outside guest RAM", gpa, len);
    return {p, static_cast<std::size_t>(len)};
}

void GuestMemory::zero(std::uint64_t gpa, std::uint64_t len) const
{
    if (len == 0)
        return;
    auto s = span(gpa, len);
    // Whole pages are handed back to the kernel: a private anonymous page read after
    // MADV_DONTNEED is zero, and costs no host memory until the guest writes it. Only the
    // partial pages at either end are written.
    const auto first = reinterpret_cast<std::uintptr_t>(s.data());
    const auto end = first + s.size();
    const std::uintptr_t lo = (first + 4095) & ~std::uintptr_t{4095};
    const std::uintptr_t hi = end & ~std::uintptr_t{4095};
    if (lo >= hi || ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED) != 0) {
        std::memset(s.data(), 0, s.size());
        return;
    }
    std::memset(s.data(), 0, lo - first);
    std::memset(reinterpret_cast<void*>(hi), 0, end - hi);
}

void GuestMemory::write_checked(std::uint64_t gpa, const void* src, std::size_t len) const
{
    auto s = span(gpa, len);
    if (len)
        std::memcpy(s.data(), src, len);
}

}  // namespace hv
