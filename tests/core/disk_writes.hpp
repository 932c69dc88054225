// A reproducible sequence of disk writes for the image tests: offsets anywhere on the disk,
// lengths from one byte to a few clusters, pseudo-random bytes. The same seed gives the same
// writes in test_storage and in the disk_writer child it checks.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace hvtest {

struct DiskWrite {
    std::uint64_t offset = 0;
    std::vector<std::uint8_t> bytes;
};

inline std::vector<DiskWrite> disk_writes(std::uint64_t disk_size, unsigned long seed,
                                          unsigned long count, std::uint64_t max_len = 200000)
{
    std::mt19937_64 rng(seed);
    std::vector<DiskWrite> out;
    for (unsigned long i = 0; i < count; ++i) {
        DiskWrite w;
        const std::uint64_t len = 1 + rng() % std::min<std::uint64_t>(max_len, disk_size);
        w.offset = rng() % (disk_size - len + 1);
        w.bytes.resize(len);
        for (auto& b : w.bytes)
            b = static_cast<std::uint8_t>(rng());
        out.push_back(std::move(w));
    }
    return out;
}

// Applies `w` to an in-memory disk.
inline void apply(std::vector<std::uint8_t>& disk, const DiskWrite& w)
{
    std::copy(w.bytes.begin(), w.bytes.end(), disk.begin() + static_cast<std::ptrdiff_t>(w.offset));
}

}  // namespace hvtest
