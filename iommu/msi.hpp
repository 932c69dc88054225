// MSI messages as a device writes them, in the two formats an x86 interrupt-remapping unit sees.
//
// Compatibility format (SDM Vol3 11.11.1 "Message Address Register Format", 11.11.2 "Message
// Data Register Format"):
//   address 31:20 = 0xFEE · 19:12 destination ID · 11:5 reserved (see below) · 4 = 0 (VT-d:
//   interrupt format "compatibility") · 3 RH (redirection hint) · 2 DM (1 = logical) · 1:0 ignored;
//   data 7:0 vector · 10:8 delivery mode (011b and 110b reserved) · 14 level (assert) · 15 trigger
//   mode (1 = level).
// Remappable format (VT-d 5.1.2.2 "Interrupt Requests in Remappable Format"):
//   address 31:20 = 0xFEE · 19:5 handle[14:0] · 4 = 1 · 3 SHV · 2 handle[15] · 1:0 ignored;
//   data 31:16 reserved (0) · 15:0 subhandle (used when SHV). interrupt_index = handle, plus the
//   subhandle when SHV (VT-d 5.1.2.2 / 5.1.4).
// Address bits 63:32 must be zero for an interrupt request in either format.
//
// Extended destination ID: address bits 11:5 carry destination ID bits 14:8 in the "extended
// destination ID" convention some hypervisors advertise to guests (Linux ext_dest_id, KVM
// KVM_FEATURE_MSI_EXT_DEST_ID). It is not an Intel or AMD architectural field; the decoder always
// reports the bits and to_message() uses them only when asked to.
#pragma once

#include <cstdint>
#include <optional>

#include "apic/ioapic.hpp"
#include "apic/ipi.hpp"
#include "iommu/decoded.hpp"

namespace hv::iommu {

struct MsiMessage {
    uint64_t address = 0;
    uint32_t data = 0;
    bool operator==(const MsiMessage&) const = default;
};

namespace msi {
inline constexpr uint64_t kWindowMask = 0xFFF00000ULL;  // address 31:20
inline constexpr uint64_t kWindow = 0xFEE00000ULL;
inline constexpr uint64_t kHighMask = 0xFFFFFFFF00000000ULL;
inline constexpr unsigned kDestShift = 12;
inline constexpr uint64_t kDestMask = 0xFFULL << kDestShift;  // 19:12
inline constexpr unsigned kExtDestShift = 5;
inline constexpr uint64_t kExtDestMask = 0x7FULL << kExtDestShift;  // 11:5
inline constexpr uint64_t kRemappable = 1ULL << 4;                  // interrupt format
inline constexpr uint64_t kRedirectionHint = 1ULL << 3;             // compatibility
inline constexpr uint64_t kDestLogical = 1ULL << 2;                 // compatibility
inline constexpr unsigned kHandleShift = 5;
inline constexpr uint64_t kHandleLowMask = 0x7FFFULL << kHandleShift;  // 19:5 = handle[14:0]
inline constexpr uint64_t kShv = 1ULL << 3;                            // remappable
inline constexpr uint64_t kHandle15 = 1ULL << 2;                       // remappable
inline constexpr uint32_t kVectorMask = 0xFF;
inline constexpr unsigned kModeShift = 8;
inline constexpr uint32_t kModeMask = 0x7u << kModeShift;
inline constexpr uint32_t kLevelAssert = 1u << 14;
inline constexpr uint32_t kTriggerLevel = 1u << 15;
inline constexpr uint32_t kSubhandleMask = 0xFFFF;
inline constexpr uint32_t kRemappableDataReserved = 0xFFFF0000u;
}  // namespace msi

enum class MsiError : uint8_t {
    AddressHigh,           // address bits 63:32 not zero
    NotInterruptAddress,   // address bits 31:20 not 0xFEE
    WrongFormat,           // bit 4 says the other format
    ReservedDeliveryMode,  // compatibility data 10:8 = 011b or 110b
    ReservedData,          // remappable data 31:16 not zero
};

// Not an interrupt request at all (bits 63:32 or 31:20): the first check of either format.
std::optional<MsiError> check_interrupt_address(uint64_t address);
constexpr bool is_remappable(const MsiMessage& m)
{
    return (m.address & msi::kRemappable) != 0;
}

struct CompatMsi {
    uint8_t dest_id = 0;      // address 19:12
    uint8_t ext_dest_id = 0;  // address 11:5 (7 bits; see the file comment)
    apic::DestMode dest_mode = apic::DestMode::Physical;
    bool redirection_hint = false;
    uint8_t vector = 0;
    apic::DeliveryMode mode = apic::DeliveryMode::Fixed;
    apic::Trigger trigger = apic::Trigger::Edge;
    bool level_assert = false;

    MsiMessage encode() const;
    static Decoded<CompatMsi, MsiError> decode(const MsiMessage& m);
    bool operator==(const CompatMsi&) const = default;
};

// What core routes, as for an IOAPIC redirection entry (pin 0). The DM bit selects logical
// destination mode as KVM's kvm_set_msi_irq does; RH only matters for lowest-priority
// arbitration, which apic/ routing decides from the delivery mode. With `extended_dest_id` the
// destination is ext_dest_id:dest_id (15 bits) in x2APIC format.
apic::IoApicMessage to_message(const CompatMsi& m, bool extended_dest_id = false);

struct RemappableMsi {
    uint16_t handle = 0;
    bool shv = false;
    uint16_t subhandle = 0;

    MsiMessage encode() const;
    static Decoded<RemappableMsi, MsiError> decode(const MsiMessage& m);
    // handle (+ subhandle when SHV): may exceed 0xFFFF, which no table holds (VT-d fault 0x21).
    uint32_t interrupt_index() const { return handle + (shv ? uint32_t{subhandle} : 0u); }
    bool operator==(const RemappableMsi&) const = default;
};

}  // namespace hv::iommu
