// VT-d interrupt-remapping table entries (128 bits), remapped and posted formats.
//
// VT-d 9.10 "Interrupt Remapping Table Entry (IRTE) for Remapped Interrupts":
//   0 P · 1 FPD · 2 DM (1 = logical) · 3 RH · 4 TM (1 = level) · 7:5 DLM · 11:8 AVAIL ·
//   14:12 reserved · 15 IM = 0 · 23:16 vector · 31:24 reserved · 63:32 DST ·
//   79:64 SID · 81:80 SQ · 83:82 SVT · 127:84 reserved.
//   DST: x2APIC mode (IRTA.EIME = 1) the 32-bit APIC ID; xAPIC mode the 8-bit ID in 47:40 with
//   39:32 and 63:48 reserved. DLM 011b and 110b are reserved; SVT 11b is reserved.
// VT-d 9.11 "Interrupt Remapping Table Entry (IRTE) for Posted Interrupts":
//   0 P · 1 FPD · 7:2 reserved · 11:8 AVAIL · 13:12 reserved · 14 URG · 15 IM = 1 ·
//   23:16 virtual vector · 37:24 reserved · 63:38 PDA[31:6] · 79:64 SID · 81:80 SQ · 83:82 SVT ·
//   95:84 reserved · 127:96 PDA[63:32]. The PDA is 64-byte aligned (PDA[5:0] = 0).
// Reserved bits in a present entry are fault reason 24h (VT-d 7.1.1 table "Interrupt Remapping
// Fault Conditions"; the same codes as Linux include/linux/dmar.h's irq_remap_fault_reasons and
// QEMU's VTD_FR_IR_*).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "apic/ioapic.hpp"
#include "apic/ipi.hpp"
#include "iommu/decoded.hpp"

namespace hv::iommu {

// VT-d 7.1.1 / Appendix "Non-Recoverable Fault Reason Encodings", interrupt-remapping range.
enum class VtdFault : uint8_t {
    RequestReserved = 0x20,  // reserved fields set in the remappable-format request
    IndexBeyond = 0x21,      // interrupt_index beyond the table size (IRTA.S)
    NotPresent = 0x22,       // IRTE P = 0                                   (qualified)
    TableAccess = 0x23,      // error reading the table pointed to by IRTA
    IrteReserved = 0x24,     // reserved fields set in a present IRTE          (qualified)
    CompatBlocked = 0x25,    // compatibility-format request while CFIS = 0
    SidMismatch = 0x26,      // source-ID verification failed                 (qualified)
    PidAccess = 0x27,        // error accessing the posted-interrupt descriptor (qualified)
};
// Qualified faults are the ones an IRTE's FPD bit keeps out of the fault log (VT-d 7.1.1: "FPD
// ... enables or disables recording of qualified interrupt-remapping faults"): those detected
// after the entry was read.
constexpr bool is_qualified(VtdFault f)
{
    return f == VtdFault::NotPresent || f == VtdFault::IrteReserved || f == VtdFault::SidMismatch ||
           f == VtdFault::PidAccess;
}

struct alignas(16) VtdIrte {
    uint64_t lo = 0;  // bits 63:0
    uint64_t hi = 0;  // bits 127:64
    bool operator==(const VtdIrte&) const = default;
};
static_assert(sizeof(VtdIrte) == 16 && alignof(VtdIrte) == 16);
static_assert(std::is_standard_layout_v<VtdIrte> && std::is_trivially_copyable_v<VtdIrte>);
static_assert(offsetof(VtdIrte, lo) == 0 && offsetof(VtdIrte, hi) == 8);

namespace vtd {
inline constexpr uint64_t kPresent = 1ULL << 0;
inline constexpr uint64_t kFpd = 1ULL << 1;
inline constexpr uint64_t kDestLogical = 1ULL << 2;
inline constexpr uint64_t kRedirectionHint = 1ULL << 3;
inline constexpr uint64_t kTriggerLevel = 1ULL << 4;
inline constexpr unsigned kDlmShift = 5;
inline constexpr uint64_t kDlmMask = 0x7ULL << kDlmShift;
inline constexpr unsigned kAvailShift = 8;
inline constexpr uint64_t kAvailMask = 0xFULL << kAvailShift;
inline constexpr uint64_t kUrgent = 1ULL << 14;
inline constexpr uint64_t kPosted = 1ULL << 15;  // IM
inline constexpr unsigned kVectorShift = 16;
inline constexpr uint64_t kVectorMask = 0xFFULL << kVectorShift;
inline constexpr unsigned kDestShift = 32;
inline constexpr unsigned kPdaLowShift = 38;  // 63:38 = PDA[31:6]
inline constexpr uint64_t kPdaLowMask = 0x3FFFFFFULL << kPdaLowShift;
// High qword (bit positions relative to bit 64).
inline constexpr uint64_t kSidMask = 0xFFFF;
inline constexpr unsigned kSqShift = 16;
inline constexpr uint64_t kSqMask = 0x3ULL << kSqShift;
inline constexpr unsigned kSvtShift = 18;
inline constexpr uint64_t kSvtMask = 0x3ULL << kSvtShift;
inline constexpr unsigned kPdaHighShift = 32;  // 127:96 = PDA[63:32]

inline constexpr uint64_t kRemappedLoReserved = 0x0000'0000'FF00'7000ULL;       // 31:24, 14:12
inline constexpr uint64_t kRemappedLoReservedXapic = 0xFFFF'00FF'0000'0000ULL;  // 63:48, 39:32
inline constexpr uint64_t kRemappedHiReserved = ~0xFFFFFULL;                    // 127:84
inline constexpr uint64_t kPostedLoReserved = 0x0000'003F'FF00'30FCULL;         // 37:24, 13:12, 7:2
inline constexpr uint64_t kPostedHiReserved = 0x0000'0000'FFF0'0000ULL;         // 95:84
static_assert((kRemappedLoReserved & (kVectorMask | kPosted | kAvailMask | kDlmMask)) == 0);
static_assert((kPostedLoReserved & (kVectorMask | kPosted | kUrgent | kAvailMask | kPdaLowMask |
                                    kPresent | kFpd)) == 0);
}  // namespace vtd

// SVT: how the requester ID is checked (VT-d 9.10).
enum class VtdSvt : uint8_t { None = 0, SidSq = 1, Bus = 2, Reserved = 3 };

// Source validation fields, common to both formats.
struct VtdSource {
    uint16_t sid = 0;
    uint8_t sq = 0;  // 2 bits
    VtdSvt svt = VtdSvt::None;
    bool operator==(const VtdSource&) const = default;
};
// VT-d 9.10 (SVT/SQ): does a request from `requester` pass the entry's source validation?
// SVT 01b compares SID with the requester ID, ignoring bit 2 (SQ 01b), bits 2:1 (10b) or bits
// 2:0 (11b) — the function-number bits; SVT 10b checks SID[15:8] <= bus <= SID[7:0].
bool verify_source(const VtdSource& s, uint16_t requester);

struct VtdRemappedIrte {
    bool present = false;
    bool fpd = false;
    apic::DestMode dest_mode = apic::DestMode::Physical;
    bool redirection_hint = false;
    apic::Trigger trigger = apic::Trigger::Edge;
    apic::DeliveryMode mode = apic::DeliveryMode::Fixed;
    uint8_t avail = 0;  // 4 bits, software's
    uint8_t vector = 0;
    uint32_t dest = 0;  // the DST field as stored (bits 63:32); see destination()
    VtdSource source{};

    VtdIrte encode() const;
    // Reserved-bit validation of a present entry: IrteReserved for a reserved bit, a reserved DLM
    // or SVT, or IM = 1 (not this format). `x2apic_mode` is IRTA.EIME.
    static Decoded<VtdRemappedIrte, VtdFault> decode(const VtdIrte& e, bool x2apic_mode);
    // The APIC ID the entry names: DST in x2APIC mode, DST[15:8] in xAPIC mode.
    uint32_t destination(bool x2apic_mode) const
    {
        return x2apic_mode ? dest : (dest >> 8) & 0xFFu;
    }
    bool operator==(const VtdRemappedIrte&) const = default;
};

// The interrupt a remapped entry generates "to a host vector" — what core delivers.
apic::IoApicMessage to_message(const VtdRemappedIrte& e, bool x2apic_mode);

struct VtdPostedIrte {
    bool present = false;
    bool fpd = false;
    uint8_t avail = 0;
    bool urgent = false;
    uint8_t vector = 0;  // the guest (virtual) vector
    uint64_t pda = 0;    // 64-byte aligned descriptor address
    VtdSource source{};

    VtdIrte encode() const;  // PDA[5:0] are not encodable and are dropped
    static Decoded<VtdPostedIrte, VtdFault> decode(const VtdIrte& e);
    bool operator==(const VtdPostedIrte&) const = default;
};

constexpr bool is_present(const VtdIrte& e)
{
    return (e.lo & vtd::kPresent) != 0;
}
constexpr bool is_posted(const VtdIrte& e)
{
    return (e.lo & vtd::kPosted) != 0;
}
constexpr bool fault_processing_disabled(const VtdIrte& e)
{
    return (e.lo & vtd::kFpd) != 0;
}

}  // namespace hv::iommu
