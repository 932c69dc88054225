// ApicState: the flattened, host-neutral register set of one local APIC (docs/snapshot.md).
//
// Every backend flattens into this and restores from it, so a snapshot taken on one host
// acceleration restores on another. Plain fields only; core/snapshot/ writes it as JSON.
//
// Representation rules (the "normal form" every backend must produce):
// - `id` is the 32-bit x2APIC ID. In xAPIC mode the ID register reads (id & 0xFF) << 24.
// - `ldr` and `dfr` hold the register values as the current mode defines them. In x2APIC mode
//   `ldr` is the derived logical ID; `dfr` is not architecturally visible and is kept as it was
//   (KVM keeps it too), so it is not checked there.
// - `icr` is one 64-bit value: low dword = ICR[31:0]; high dword = ICR[63:32] as the mode defines
//   it (xAPIC: destination in bits 63:56; x2APIC: 32-bit destination). Delivery status is 0.
// - `esr` is what a read of the ESR returns now; `esr_pending` are the errors detected since the
//   last ESR write, which the next ESR write makes visible (SDM Vol3 11.5.3 "Error Handling").
//   A backend without the latch (KVM's LAPIC keeps one ESR value) flattens esr_pending = 0.
// - `timer_remaining` is the guest-visible current count (TMCCT), never host time.
// - `tsc_deadline` is IA32_TSC_DEADLINE in guest TSC units (0 = disarmed).
// - `run_state` is the vCPU's INIT/SIPI state as the APIC sees it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "apic/regs.hpp"

namespace hv::apic {

// SDM Vol3 9.4 "Multiple-Processor (MP) Initialization" / 11.4.7.3 "Local APIC State After an
// INIT Reset ("Wait-for-SIPI" State)": an AP after INIT waits for a start-up IPI. Halted is HLT
// (the vCPU waits for an interrupt); core owns it but it travels in the snapshot.
enum class RunState : uint8_t { Running = 0, Halted = 1, WaitForSipi = 2 };

struct ApicState {
    uint64_t apic_base = base::kDefaultAddr | base::kEnable;
    uint32_t id = 0;
    uint32_t version = kVersionValue;
    uint32_t tpr = 0;
    uint32_t ldr = 0;
    uint32_t dfr = 0xFFFFFFFFu;
    uint32_t svr = svr::kReset;
    std::array<uint32_t, 8> isr{};
    std::array<uint32_t, 8> tmr{};
    std::array<uint32_t, 8> irr{};
    uint32_t esr = 0;
    uint32_t esr_pending = 0;
    std::array<uint32_t, kLvtCount> lvt{lvt::kReset, lvt::kReset, lvt::kReset, lvt::kReset,
                                        lvt::kReset, lvt::kReset, lvt::kReset};
    uint64_t icr = 0;
    uint32_t timer_initial = 0;
    uint32_t timer_remaining = 0;
    uint32_t timer_divide = 0;
    uint64_t tsc_deadline = 0;
    RunState run_state = RunState::Running;

    bool operator==(const ApicState&) const = default;

    uint32_t lvt_of(Lvt l) const { return lvt[static_cast<std::size_t>(l)]; }
    bool enabled() const { return (apic_base & base::kEnable) != 0; }
    bool x2apic() const { return enabled() && (apic_base & base::kExtd) != 0; }
};

// What the (virtual) CPU supports; restore and IA32_APIC_BASE writes are checked against it.
struct ApicCaps {
    unsigned maxphyaddr = 46;  // CPUID.80000008H:EAX[7:0] of the guest
    bool x2apic = true;        // CPUID.1:ECX[21]
    bool tsc_deadline = true;  // CPUID.1:ECX[24]
    bool cmci = true;          // LVT CMCI present (IA32_MCG_CAP.MCG_CMCI_P)
    bool directed_eoi = true;  // version bit 24: SVR[12] suppresses EOI broadcasts
    uint32_t version() const { return apic_version(cmci, directed_eoi); }
};

// Checks every field of `s`; returns nullopt when the state is valid, otherwise a message that
// starts with the name of the first field at fault (e.g. "irr[0]: vectors 0-15 set").
std::optional<std::string> validate(const ApicState& s, const ApicCaps& caps = {});

// Names and both values of every field in which `a` and `b` differ, e.g.
// "tpr: 0x10 != 0x20; irr[2]: 0x1 != 0x0"; empty when equal. For test failures and for checking
// that two backends flatten the same guest situation alike.
std::string describe_difference(const ApicState& a, const ApicState& b);

// The x2APIC logical ID derived from the x2APIC ID.
// SDM Vol3 11.12.10.2 "Deriving Logical x2APIC ID from the Local x2APIC ID": cluster = ID[19:4]
// in bits 31:16, one-hot ID[3:0] in bits 15:0.
constexpr uint32_t x2apic_ldr(uint32_t x2apic_id)
{
    return ((x2apic_id >> 4) << 16) | (1u << (x2apic_id & 0xFu));
}
static_assert(x2apic_ldr(0x23) == 0x00020008u);

// Power-up / INIT register values (SDM Vol3 11.4.7.1 "Local APIC State After Power-Up or
// Reset"), keeping `apic_base`, `id` and `run_state` of `from`.
ApicState reset_registers(const ApicState& from);

}  // namespace hv::apic
