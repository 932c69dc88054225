// The architectural APIC register page and its conversion to and from ApicState.
//
// The page is the xAPIC MMIO layout (SDM Vol3 11.4.1, table "Local APIC Register Address Map"):
// 32-bit registers at 16-byte aligned offsets, little-endian. The first 0x400 bytes hold every
// register. The same layout is used by KVM_GET_LAPIC/KVM_SET_LAPIC (`struct kvm_lapic_state`),
// Intel APICv's virtual-APIC page (SDM Vol3 30.1 "Virtual APIC State") and AMD AVIC's backing
// page (APM Vol2 15.29 "Advanced Virtual Interrupt Controller"), so the `kernel`, `apicv` and
// `avic` backends share this one codec instead of each decoding the page.
//
// Page conventions (those of KVM's userspace ABI with KVM_CAP_X2APIC_API):
// - ID (0x020): xAPIC mode (ID & 0xFF) << 24; x2APIC mode the full 32-bit ID;
// - ICR split: low dword at 0x300, high dword at 0x310 (xAPIC: destination in bits 31:24;
//   x2APIC: 32-bit destination). ApicState::icr = high << 32 | low;
// - TMCCT (0x390) holds the current count at the time the page was taken;
// - PPR (0x0A0) is written by to_register_page() and ignored by from_register_page() (derived).
// Not in the page: IA32_APIC_BASE, IA32_TSC_DEADLINE, the INIT/SIPI state, the ESR latch.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "apic/apic_state.hpp"

namespace hv::apic {

inline constexpr std::size_t kApicRegisterBytes = 0x400;
using ApicRegisterPage = std::array<uint8_t, kApicRegisterBytes>;

// Little-endian dword access; offsets outside the page read 0 and are not written.
uint32_t page_get(const ApicRegisterPage& page, uint32_t offset);
void page_set(ApicRegisterPage& page, uint32_t offset, uint32_t value);

// What a page does not carry.
struct PageContext {
    uint64_t apic_base = base::kDefaultAddr | base::kEnable;
    uint64_t tsc_deadline = 0;
    RunState run_state = RunState::Running;
    // Bits 31:8 of the x2APIC ID, needed in xAPIC mode where the page holds only bits 7:0.
    uint32_t x2apic_id = 0;
};

ApicRegisterPage to_register_page(const ApicState& s);
// The result is not validated: pass it to validate() / restore(), which name the bad field.
ApicState from_register_page(const ApicRegisterPage& page, const PageContext& ctx);

}  // namespace hv::apic
