// AVIC's physical and logical APIC ID tables: one 4 KiB page each per VM.
//
// APM Vol2 15.29.3.1 "Physical APIC ID Table": u64 entries indexed by guest physical APIC ID:
//   11:0 host physical APIC ID (where the doorbell goes) · 51:12 backing page address ·
//   62 IsRunning · 63 Valid. Max index 0xFE (0xFF is the xAPIC broadcast), 0x1FF in x2AVIC mode.
// APM Vol2 15.29.3.2 "Logical APIC ID Table": u32 entries: 7:0 guest physical APIC ID · 31 Valid.
//   Flat model: index = bit position in the logical ID (LDR[31:24]);
//   cluster model: index = (cluster << 2) + bit, cluster = LDR[31:28] < 0xF, bit in LDR[27:24].
//   x2AVIC does not use it (the x2APIC logical ID is derived from the physical ID).
// Entries are atomics: the CPU reads them while other CPUs' hypervisors update IsRunning.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace hv::svm {

namespace phys {
inline constexpr uint64_t kHostIdMask = 0xFFF;  // 11:0
inline constexpr unsigned kPageShift = 12;
inline constexpr uint64_t kPageMask = 0x000FFFFFFFFFF000ULL;  // 51:12
inline constexpr uint64_t kIsRunning = 1ULL << 62;
inline constexpr uint64_t kValid = 1ULL << 63;
inline constexpr uint32_t kMaxIndexAvic = 0xFE;
inline constexpr uint32_t kMaxIndexX2avic = 0x1FF;
}  // namespace phys

struct PhysicalEntry {
    uint32_t host_apic_id = 0;
    uint64_t frame = 0;  // backing page frame number (address >> 12)
    bool is_running = false;
    bool valid = false;
    bool operator==(const PhysicalEntry&) const = default;
};

constexpr uint64_t encode(const PhysicalEntry& e)
{
    return (e.host_apic_id & phys::kHostIdMask) |
           ((e.frame << phys::kPageShift) & phys::kPageMask) |
           (e.is_running ? phys::kIsRunning : 0) | (e.valid ? phys::kValid : 0);
}
constexpr PhysicalEntry decode_physical(uint64_t v)
{
    return PhysicalEntry{static_cast<uint32_t>(v & phys::kHostIdMask),
                         (v & phys::kPageMask) >> phys::kPageShift, (v & phys::kIsRunning) != 0,
                         (v & phys::kValid) != 0};
}
// Worked from the APM layout: host ID 5, page 0x123456000, running, valid.
static_assert(encode(PhysicalEntry{5, 0x123456, true, true}) == 0xC000000123456005ULL);
static_assert(decode_physical(0x8000000000001FFFULL) == PhysicalEntry{0xFFF, 1, false, true});

namespace logical {
inline constexpr uint32_t kGuestIdMask = 0xFF;  // 7:0
inline constexpr uint32_t kValid = 1u << 31;
inline constexpr uint32_t kFlatEntries = 8;
inline constexpr uint32_t kMaxCluster = 0xE;  // cluster 0xF is the broadcast cluster
inline constexpr uint32_t kEntries = ((kMaxCluster + 1) << 2);  // 60 entries can be addressed
}  // namespace logical

constexpr uint32_t encode_logical(uint8_t guest_phys_id, bool valid)
{
    return guest_phys_id | (valid ? logical::kValid : 0);
}
static_assert(encode_logical(0x12, true) == 0x80000012u);

// Flat: the bit position in the 8-bit logical ID. Cluster: (cluster << 2) + bit.
constexpr uint32_t flat_index(unsigned bit)
{
    return bit;
}
constexpr uint32_t cluster_index(uint32_t cluster, unsigned bit)
{
    return (cluster << 2) + bit;
}
static_assert(cluster_index(0xE, 3) == 59 && cluster_index(1, 0) == 4);

// The table index an xAPIC LDR/DFR pair occupies, none when the LDR names no single slot (as
// Linux's avic_get_logical_id_entry: flat uses the lowest set bit; cluster needs one bit and a
// cluster below 0xF). DFR[31:28] = 1111b flat, 0000b cluster, anything else none.
std::optional<uint32_t> logical_index_of(uint32_t ldr, uint32_t dfr);

struct alignas(4096) PhysicalIdTable {
    std::array<std::atomic<uint64_t>, 512> entry{};
};
struct alignas(4096) LogicalIdTable {
    std::array<std::atomic<uint32_t>, 1024> entry{};
};
static_assert(sizeof(PhysicalIdTable) == 4096 && alignof(PhysicalIdTable) == 4096);
static_assert(sizeof(LogicalIdTable) == 4096 && alignof(LogicalIdTable) == 4096);
static_assert(phys::kMaxIndexX2avic < 512 && logical::kEntries <= 1024);

}  // namespace hv::svm
