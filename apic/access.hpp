// The outcome of one guest access to a local APIC register (xAPIC MMIO or MSR). Guest input never
// throws: a fault is a value the caller turns into #GP for the guest.
#pragma once

#include <cstdint>
#include <optional>

#include "apic/ipi.hpp"

namespace hv::apic {

enum class AccessStatus : uint8_t {
    Ok,       // done; `value` holds the read data (0 for writes)
    GP,       // the guest takes #GP (x2APIC rules, IA32_APIC_BASE rules)
    NotMine,  // not an APIC register in the current mode: the caller handles it as it would any
              // other address/MSR (e.g. MMIO to the APIC page while in x2APIC mode)
};

// Result of EOI processing. SDM Vol3 11.8.5 "Signaling Interrupt Servicing Completion".
struct EoiResult {
    std::optional<uint8_t> vector;  // the ISR bit that was cleared, none if the ISR was empty
    bool level = false;             // TMR bit of that vector was set
    bool broadcast = false;         // caller must send the EOI to the IOAPIC(s): level && !SVR[12]
    bool operator==(const EoiResult&) const = default;
};

struct AccessResult {
    AccessStatus status = AccessStatus::Ok;
    uint64_t value = 0;
    std::optional<Ipi> ipi;        // an ICR/SELF_IPI write asked for this message
    std::optional<EoiResult> eoi;  // an EOI write completed this vector
    bool timer_changed = false;    // re-read next_timer_deadline() and re-arm the host timer
    bool mode_changed = false;     // IA32_APIC_BASE changed (mode or MMIO base)

    static AccessResult with(AccessStatus st, uint64_t v)
    {
        AccessResult r;
        r.status = st;
        r.value = v;
        return r;
    }
    static AccessResult ok(uint64_t v = 0) { return with(AccessStatus::Ok, v); }
    static AccessResult gp() { return with(AccessStatus::GP, 0); }
    static AccessResult not_mine() { return with(AccessStatus::NotMine, 0); }
    bool is_ok() const { return status == AccessStatus::Ok; }
    bool is_gp() const { return status == AccessStatus::GP; }
};

// Guest-visible time, supplied by the caller at every call that needs it; the model never reads a
// host clock. `ns` drives the APIC timer (1 ns per tick, see regs.hpp); `tsc` is the guest TSC.
struct GuestTime {
    uint64_t ns = 0;
    uint64_t tsc = 0;
};

// For backends that need to ask for the time (EmulatedApic); core implements it per VM.
class GuestClock {
  public:
    virtual ~GuestClock() = default;
    virtual GuestTime now() const = 0;
};

}  // namespace hv::apic
