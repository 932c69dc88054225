// The VMCS fields and controls the APICv model uses, as a typed per-vCPU image.
//
// SDM Vol3 Appendix B "Field Encoding in VMCS": bits 14:13 of an encoding give the field's width
// (0 = 16-bit, 1 = 64-bit, 2 = 32-bit, 3 = natural width), so the width lives in the type: a
// Field<0x0810> holds a uint16_t, a Field<0x2016> a uint64_t, and a read can never come back at
// the wrong width. Encodings as in Appendix B; control bits as in the sections cited below.
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>

namespace hv::vmx {

// SDM Vol3 Appendix B "Field Encoding in VMCS": width in bits 14:13; bit 0 selects the high half
// of a 64-bit field (only full accesses are used here).
constexpr unsigned vmcs_width_code(uint32_t encoding)
{
    return (encoding >> 13) & 0x3u;
}

template <uint32_t Enc> struct VmcsWidth;
template <uint32_t Enc>
requires(vmcs_width_code(Enc) == 0) struct VmcsWidth<Enc> {
    using type = uint16_t;
};
template <uint32_t Enc>
requires(vmcs_width_code(Enc) == 1 && (Enc & 1u) == 0) struct VmcsWidth<Enc> {
    using type = uint64_t;
};
template <uint32_t Enc>
requires(vmcs_width_code(Enc) == 2) struct VmcsWidth<Enc> {
    using type = uint32_t;
};

template <uint32_t Enc> struct VmcsField {
    static constexpr uint32_t kEncoding = Enc;
    using value_type = typename VmcsWidth<Enc>::type;
    value_type value{};
};

// SDM Vol3 Appendix B: the encodings (B.1.1 16-bit control fields, B.2.1 64-bit control fields,
// B.1.2 16-bit guest-state fields, B.3.1 32-bit control fields).
namespace field {
inline constexpr uint32_t kPostedInterruptNotificationVector = 0x0002;
inline constexpr uint32_t kLastPidPointerIndex = 0x0008;
inline constexpr uint32_t kGuestInterruptStatus = 0x0810;
inline constexpr uint32_t kVirtualApicPageAddress = 0x2012;
inline constexpr uint32_t kApicAccessAddress = 0x2014;
inline constexpr uint32_t kPostedInterruptDescriptorAddress = 0x2016;
inline constexpr uint32_t kEoiExitBitmap0 = 0x201C;
inline constexpr uint32_t kEoiExitBitmap1 = 0x201E;
inline constexpr uint32_t kEoiExitBitmap2 = 0x2020;
inline constexpr uint32_t kEoiExitBitmap3 = 0x2022;
inline constexpr uint32_t kTertiaryControls = 0x2034;
inline constexpr uint32_t kPidPointerTableAddress = 0x2042;
inline constexpr uint32_t kPinBasedControls = 0x4000;
inline constexpr uint32_t kPrimaryControls = 0x4002;
inline constexpr uint32_t kTprThreshold = 0x401C;
inline constexpr uint32_t kSecondaryControls = 0x401E;
}  // namespace field

// SDM Vol3 24.6.1 "Pin-Based VM-Execution Controls".
namespace pin {
inline constexpr uint32_t kProcessPostedInterrupts = 1u << 7;
}
// SDM Vol3 24.6.2 "Processor-Based VM-Execution Controls" (primary, secondary, tertiary).
namespace primary {
inline constexpr uint32_t kActivateTertiaryControls = 1u << 17;
inline constexpr uint32_t kUseTprShadow = 1u << 21;
inline constexpr uint32_t kActivateSecondaryControls = 1u << 31;
}  // namespace primary
namespace secondary {
inline constexpr uint32_t kVirtualizeApicAccesses = 1u << 0;
inline constexpr uint32_t kVirtualizeX2apicMode = 1u << 4;
inline constexpr uint32_t kApicRegisterVirtualization = 1u << 8;
inline constexpr uint32_t kVirtualInterruptDelivery = 1u << 9;
}  // namespace secondary
namespace tertiary {
inline constexpr uint64_t kIpiVirtualization = 1ULL << 4;
}

// SDM Vol3 24.4.2 "Guest Non-Register State" (guest interrupt status): RVI in bits 7:0 (the
// highest-priority requesting virtual interrupt), SVI in bits 15:8 (the one in service).
struct GuestInterruptStatus {
    static constexpr unsigned kRviShift = 0;
    static constexpr unsigned kSviShift = 8;
    static constexpr uint16_t kByteMask = 0xFF;
    uint16_t raw = 0;
    constexpr uint8_t rvi() const { return static_cast<uint8_t>((raw >> kRviShift) & kByteMask); }
    constexpr uint8_t svi() const { return static_cast<uint8_t>((raw >> kSviShift) & kByteMask); }
    constexpr void set_rvi(uint8_t v)
    {
        raw = static_cast<uint16_t>((raw & ~(kByteMask << kRviShift)) | (v << kRviShift));
    }
    constexpr void set_svi(uint8_t v)
    {
        raw = static_cast<uint16_t>((raw & ~(kByteMask << kSviShift)) | (v << kSviShift));
    }
};
static_assert(sizeof(GuestInterruptStatus) == 2);
static_assert([] {
    GuestInterruptStatus g;
    g.set_rvi(0x31);
    g.set_svi(0xEC);
    return g.raw == 0xEC31 && g.rvi() == 0x31 && g.svi() == 0xEC;
}());

// SDM Vol3 24.6.8 "Controls for APIC Virtualization" (TPR threshold): bits 3:0 are compared with
// VTPR[7:4]; bits 31:4 must be 0.
inline constexpr uint32_t kTprThresholdMask = 0xF;

// The per-vCPU VMCS image: only the fields the APICv model reads or writes. The hardware half
// reads the controls from here; the hypervisor half sets them, as KVM's vmx.c does.
struct VmcsImage {
    VmcsField<field::kPostedInterruptNotificationVector> pi_notification_vector;
    VmcsField<field::kLastPidPointerIndex> last_pid_pointer_index;
    VmcsField<field::kGuestInterruptStatus> guest_interrupt_status;
    VmcsField<field::kVirtualApicPageAddress> virtual_apic_page;
    VmcsField<field::kApicAccessAddress> apic_access_page;
    VmcsField<field::kPostedInterruptDescriptorAddress> pid_address;
    VmcsField<field::kEoiExitBitmap0> eoi_exit0;
    VmcsField<field::kEoiExitBitmap1> eoi_exit1;
    VmcsField<field::kEoiExitBitmap2> eoi_exit2;
    VmcsField<field::kEoiExitBitmap3> eoi_exit3;
    VmcsField<field::kTertiaryControls> tertiary_controls;
    VmcsField<field::kPidPointerTableAddress> pid_pointer_table;
    VmcsField<field::kPinBasedControls> pin_controls;
    VmcsField<field::kPrimaryControls> primary_controls;
    VmcsField<field::kTprThreshold> tpr_threshold;
    VmcsField<field::kSecondaryControls> secondary_controls;

    GuestInterruptStatus gis() const { return {guest_interrupt_status.value}; }
    void set_gis(GuestInterruptStatus g) { guest_interrupt_status.value = g.raw; }

    // The 256-bit EOI-exit bitmap (SDM Vol3 24.6.8): bit v of EOI_EXIT(v / 64).
    uint64_t& eoi_exit(unsigned i);
    uint64_t eoi_exit(unsigned i) const;
    bool eoi_exit_bit(uint8_t vector) const
    {
        return (eoi_exit(vector >> 6) >> (vector & 63u)) & 1u;
    }

    bool pin(uint32_t bit) const { return (pin_controls.value & bit) != 0; }
    bool secondary(uint32_t bit) const
    {
        return (primary_controls.value & primary::kActivateSecondaryControls) != 0 &&
               (secondary_controls.value & bit) != 0;
    }
    bool tertiary(uint64_t bit) const
    {
        return (primary_controls.value & primary::kActivateTertiaryControls) != 0 &&
               (tertiary_controls.value & bit) != 0;
    }

    // Generic read by encoding (tests, dumps); none for a field this image does not hold.
    std::optional<uint64_t> read(uint32_t encoding) const;
};

static_assert(std::is_same_v<VmcsField<field::kGuestInterruptStatus>::value_type, uint16_t>);
static_assert(
    std::is_same_v<VmcsField<field::kPostedInterruptNotificationVector>::value_type, uint16_t>);
static_assert(std::is_same_v<VmcsField<field::kPidPointerTableAddress>::value_type, uint64_t>);
static_assert(std::is_same_v<VmcsField<field::kEoiExitBitmap3>::value_type, uint64_t>);
static_assert(std::is_same_v<VmcsField<field::kTprThreshold>::value_type, uint32_t>);
static_assert(std::is_same_v<VmcsField<field::kSecondaryControls>::value_type, uint32_t>);

}  // namespace hv::vmx
