// AMD IOMMU interrupt-remapping table entries and the GA log entry.
//
// AMD IOMMU 2.2.5.1 "Interrupt Remapping Tables" (legacy 32-bit IRTE, "Figure: Interrupt
// Remapping Table Entry Format"; Linux drivers/iommu/amd/amd_iommu_types.h `union irte`):
//   0 RemapEn · 1 SupIOPF · 4:2 IntType (000b fixed, 001b arbitrated, others reserved) ·
//   5 RqEoi · 6 DM (1 = logical) · 7 reserved (GuestMode in the 128-bit format) · 15:8 Dest ·
//   23:16 Vector · 31:24 reserved.
// AMD IOMMU 2.2.5.2 "Interrupt Virtualization" (128-bit GA IRTE; Linux `union irte_ga_lo`,
// `union irte_ga_hi`):
//   low  0 RemapEn · 1 SupIOPF · 7 GuestMode · 31:8 Dest[23:0] · 63:32 GATag;
//        GuestMode = 0 (remap variant): 4:2 IntType · 5 RqEoi · 6 DM;
//        GuestMode = 1 (vAPIC variant): 2 GALogIntr · 5:3 reserved · 6 IsRun;
//   high 7:0 Vector · 11:8 reserved · 51:12 GA root pointer (backing page >> 12) ·
//        55:52 reserved · 63:56 Dest[31:24].
//   In the remap variant the GA root pointer is not used (the model ignores, and does not
//   check, bits 51:12; Linux writes them as 0).
// GA log entry (AMD IOMMU 2.2.5.2 "Guest Virtual APIC Log"; Linux GA_TAG / GA_DEVID /
// GA_REQ_TYPE): 31:0 GATag · 47:32 DeviceID · 59:48 reserved · 63:60 type (1h = GA_GUEST_NR,
// an interrupt for a guest whose vCPU is not running).
// MSI data 10:0 is the IRTE offset (AMD IOMMU 2.2.5.1, "MSI data 10:0"); the device table entry's
// IntTabLen gives the table's 2^IntTabLen entries (at most 2048).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "apic/ioapic.hpp"
#include "apic/ipi.hpp"
#include "iommu/decoded.hpp"

namespace hv::iommu {

enum class AmdIntType : uint8_t { Fixed = 0, Arbitrated = 1 };

// Why an IRTE is refused by its decoder (the remapper turns it into an event).
enum class AmdIrteError : uint8_t {
    Reserved,   // a reserved bit or a reserved IntType
    WrongMode,  // GuestMode says the other variant
};

namespace amd {
inline constexpr uint64_t kRemapEn = 1ULL << 0;
inline constexpr uint64_t kSupIopf = 1ULL << 1;
inline constexpr unsigned kIntTypeShift = 2;
inline constexpr uint64_t kIntTypeMask = 0x7ULL << kIntTypeShift;
inline constexpr uint64_t kRqEoi = 1ULL << 5;
inline constexpr uint64_t kDestLogical = 1ULL << 6;
inline constexpr uint64_t kGuestMode = 1ULL << 7;
inline constexpr uint64_t kGaLogIntr = 1ULL << 2;  // vAPIC variant
inline constexpr uint64_t kIsRun = 1ULL << 6;      // vAPIC variant
// Legacy 32-bit entry.
inline constexpr unsigned kLegacyDestShift = 8;
inline constexpr unsigned kLegacyVectorShift = 16;
inline constexpr uint32_t kLegacyReserved = 0xFF00'0080u;  // 31:24, 7
// 128-bit entry, low qword.
inline constexpr unsigned kDestShift = 8;
inline constexpr uint64_t kDestLowMask = 0xFFFFFFULL << kDestShift;  // Dest[23:0]
inline constexpr unsigned kGaTagShift = 32;
inline constexpr uint64_t kVapicLoReserved = 0x38;  // 5:3
// 128-bit entry, high qword.
inline constexpr uint64_t kVectorMask = 0xFF;
inline constexpr unsigned kRootShift = 12;
inline constexpr uint64_t kRootMask = 0xFF'FFFF'FFFFULL << kRootShift;  // 51:12 (40 bits)
inline constexpr unsigned kDestHighShift = 56;                          // Dest[31:24]
inline constexpr uint64_t kHiReserved = 0x00F0'0000'0000'0F00ULL;       // 55:52, 11:8
// GA log entry.
inline constexpr unsigned kLogDeviceShift = 32;
inline constexpr unsigned kLogTypeShift = 60;
inline constexpr uint8_t kGaGuestNr = 0x1;
inline constexpr unsigned kMaxIntTabLen = 11;  // 2^11 = 2048 entries
inline constexpr uint32_t kIndexMask = 0x7FF;  // MSI data 10:0
}  // namespace amd

struct AmdLegacyIrte {
    bool remap_en = false;
    bool sup_iopf = false;
    AmdIntType int_type = AmdIntType::Fixed;
    bool rq_eoi = false;
    apic::DestMode dest_mode = apic::DestMode::Physical;
    uint8_t dest = 0;
    uint8_t vector = 0;

    uint32_t encode() const;
    static Decoded<AmdLegacyIrte, AmdIrteError> decode(uint32_t raw);
    bool operator==(const AmdLegacyIrte&) const = default;
};

struct alignas(16) AmdGaIrte {
    uint64_t lo = 0;
    uint64_t hi = 0;
    bool operator==(const AmdGaIrte&) const = default;
};
static_assert(sizeof(AmdGaIrte) == 16 && alignof(AmdGaIrte) == 16);
static_assert(std::is_standard_layout_v<AmdGaIrte> && std::is_trivially_copyable_v<AmdGaIrte>);
static_assert(offsetof(AmdGaIrte, lo) == 0 && offsetof(AmdGaIrte, hi) == 8);

constexpr bool is_guest_mode(const AmdGaIrte& e)
{
    return (e.lo & amd::kGuestMode) != 0;
}

// GuestMode = 0: an ordinary remapped interrupt with a 32-bit destination.
struct AmdGaRemapIrte {
    bool remap_en = false;
    bool sup_iopf = false;
    AmdIntType int_type = AmdIntType::Fixed;
    bool rq_eoi = false;
    apic::DestMode dest_mode = apic::DestMode::Physical;
    uint32_t dest = 0;
    uint32_t ga_tag = 0;
    uint8_t vector = 0;

    AmdGaIrte encode() const;
    static Decoded<AmdGaRemapIrte, AmdIrteError> decode(const AmdGaIrte& e);
    bool operator==(const AmdGaRemapIrte&) const = default;
};

// GuestMode = 1: post to a vCPU's backing page.
struct AmdGaVapicIrte {
    bool remap_en = false;
    bool sup_iopf = false;
    bool ga_log_intr = false;
    bool is_run = false;
    uint32_t dest = 0;  // host APIC ID the doorbell goes to
    uint32_t ga_tag = 0;
    uint8_t vector = 0;        // the guest vector
    uint64_t ga_root_ptr = 0;  // backing page >> 12 (40 bits)

    AmdGaIrte encode() const;
    static Decoded<AmdGaVapicIrte, AmdIrteError> decode(const AmdGaIrte& e);
    bool operator==(const AmdGaVapicIrte&) const = default;
};

// Rewrites IsRun and Dest of a vAPIC entry, everything else unchanged (amd_iommu_update_ga).
AmdGaIrte with_is_run(const AmdGaIrte& e, bool running, uint32_t dest);

struct AmdGaLogEntry {
    uint32_t ga_tag = 0;
    uint16_t device_id = 0;
    uint8_t type = amd::kGaGuestNr;  // 4 bits

    uint64_t encode() const;
    static AmdGaLogEntry decode(uint64_t raw);
    bool operator==(const AmdGaLogEntry&) const = default;
};

// The interrupt a remapped entry generates (core delivers it). `x2apic` is the IOMMU's XT mode:
// without it only Dest[7:0] is used, as an xAPIC destination.
apic::IoApicMessage to_message(const AmdLegacyIrte& e);
apic::IoApicMessage to_message(const AmdGaRemapIrte& e, bool x2apic);

}  // namespace hv::iommu
