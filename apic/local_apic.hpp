// LocalApic: one vCPU's architectural local APIC (Intel SDM Vol3 chapter 11), as a pure model.
//
// Not thread-safe: the owner serialises calls (EmulatedApic wraps it in a mutex). No host time:
// every call that depends on time takes the guest time from the caller. Guest input never throws;
// faults come back as AccessStatus::GP and architectural errors as ESR bits.
//
// xAPIC MMIO access rules (SDM Vol3 11.4.1 "The Local APIC Block Diagram": registers are 32 bits
// on 16-byte boundaries and should be accessed with aligned 32-bit loads and stores; narrower
// accesses are model specific). hvaccel's model:
// - reads of 1, 2 or 4 bytes that stay inside the first dword of a register return those bytes;
//   bytes 4-15 of each 16-byte slot read as 0; any other read returns 0 (counted mmio_ignored);
// - writes must be 4 bytes at the start of a register; any other write is ignored (counted);
// - a reserved register offset sets ESR "illegal register address" (bit 7) and reads as 0;
// - writes to read-only registers are ignored; reserved bits of writable registers are dropped.
// x2APIC MSR rules: SDM Vol3 11.12.1.2 "x2APIC Register Address Space" and 11.12.1.3 "Reserved
// Bit Checking": reserved MSRs, reserved bits, writes to read-only and reads of write-only
// registers raise #GP.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "apic/access.hpp"
#include "apic/apic_state.hpp"
#include "apic/counters.hpp"
#include "apic/destination.hpp"
#include "apic/ipi.hpp"
#include "apic/regs.hpp"
#include "apic/vector_bits.hpp"

namespace hv::apic {

struct LocalApicConfig {
    uint32_t id = 0;   // initial (x2)APIC ID
    bool bsp = false;  // IA32_APIC_BASE.BSP at reset; APs start in wait-for-SIPI
    ApicCaps caps{};
    uint64_t tsc_hz = 1'000'000'000;  // guest TSC frequency, for IA32_TSC_DEADLINE
    uint64_t min_period_ns = 0;       // floor for the periodic timer's host firing interval
};

enum class ApicMode : uint8_t { Disabled, XApic, X2Apic };

// Counters kept beside the code that increments them.
struct ApicCounters {
    uint64_t accepted = 0;           // fixed/lowest-priority vectors set in IRR
    uint64_t dropped_disabled = 0;   // refused: APIC globally or software disabled
    uint64_t rx_illegal_vector = 0;  // ESR bit 6
    uint64_t tx_illegal_vector = 0;  // ESR bit 5
    uint64_t illegal_register = 0;   // ESR bit 7
    uint64_t esr_events = 0;         // every error latched into the ESR
    uint64_t spurious = 0;           // acks that dispensed the spurious vector
    uint64_t eoi = 0;
    uint64_t eoi_empty = 0;       // EOI with an empty ISR
    uint64_t eoi_broadcast = 0;   // level-triggered EOIs to pass to the IOAPIC
    uint64_t eoi_suppressed = 0;  // level-triggered EOIs kept back by SVR[12]
    uint64_t ipi_sent = 0;
    uint64_t ipi_invalid = 0;  // ICR combinations the SDM marks invalid / reserved modes
    uint64_t timer_fired = 0;
    uint64_t timer_masked = 0;  // expiries while the LVT timer was masked
    uint64_t timer_missed = 0;  // whole periodic periods coalesced into one interrupt
    uint64_t gp = 0;            // #GP returned for x2APIC / APIC-base accesses
    uint64_t mmio_ignored = 0;  // MMIO accesses of unsupported size or alignment
    uint64_t sipi_ignored = 0;  // SIPIs outside wait-for-SIPI
    bool operator==(const ApicCounters&) const = default;
};

// The counters every model backend reports in stats(), by name.
void append_counters(const ApicCounters& c, CounterList& out);

struct AckResult {
    uint8_t vector = 0;
    bool spurious = false;  // no vector was deliverable: SVR vector, ISR untouched
};

// What raising a local interrupt source (LVT entry) asks the CPU to do.
enum class LocalEvent : uint8_t { None, Fixed, Nmi, Smi, Init, ExtInt, Masked };
struct LvtResult {
    LocalEvent event = LocalEvent::None;
    uint8_t vector = 0;
};

class LocalApic {
  public:
    explicit LocalApic(const LocalApicConfig& cfg);

    // --- mode and IA32_APIC_BASE (local_apic.cpp) ---
    ApicMode mode() const;
    uint64_t apic_base() const { return s_.apic_base; }
    // The guest-physical address of the xAPIC page, none unless in xAPIC mode.
    std::optional<uint64_t> mmio_base() const;

    // --- guest register access (local_apic_regs.cpp) ---
    AccessResult mmio_read(uint32_t offset, unsigned size, GuestTime now);
    AccessResult mmio_write(uint32_t offset, unsigned size, uint32_t value, GuestTime now);
    // MSRs 0x1B, 0x6E0 and 0x800-0x8FF; any other MSR is NotMine.
    AccessResult msr_read(uint32_t msr, GuestTime now);
    AccessResult msr_write(uint32_t msr, uint64_t value, GuestTime now);

    // --- acceptance and priority (local_apic.cpp) ---
    // Accepts a fixed / lowest-priority interrupt into IRR (TMR = trigger). False if refused.
    bool accept(uint8_t vector, Trigger trigger);
    std::optional<uint8_t> highest_pending() const;
    AckResult ack();
    EoiResult eoi();
    uint8_t ppr() const;
    // CR8 as an alias of TPR[7:4] (SDM Vol3 11.8.6.1).
    uint8_t cr8() const { return static_cast<uint8_t>((s_.tpr >> 4) & 0xFu); }
    void write_cr8(uint8_t value) { s_.tpr = (value & 0xFu) << 4; }
    uint8_t apr() const;
    LvtResult raise_lvt(Lvt which);

    // --- INIT / SIPI ---
    void init();  // INIT reset: registers reset except ID and IA32_APIC_BASE
    std::optional<uint8_t> sipi(uint8_t vector);  // start vector when it starts the vCPU
    RunState run_state() const { return s_.run_state; }
    void set_run_state(RunState r) { s_.run_state = r; }

    // --- timer (local_apic_timer.cpp) ---
    std::optional<uint64_t> next_timer_deadline() const;  // guest ns
    bool timer_expired(GuestTime now);  // true if the timer vector was raised into IRR

    // --- addressing view, state, counters ---
    DestInfo dest_info() const;
    // Flattening observes the APIC at `now`: a timer expiry that is due but not yet processed is
    // processed first (so the interrupt lands in IRR rather than being lost in the snapshot).
    ApicState flatten(GuestTime now);
    std::optional<std::string> restore(const ApicState& s, GuestTime now);
    const ApicCounters& counters() const { return counters_; }
    const LocalApicConfig& config() const { return cfg_; }

  private:
    struct TimerRun {
        bool armed = false;
        uint64_t start_ns = 0;
        uint32_t start_count = 0;
        uint64_t deadline_ns = 0;
    };

    // local_apic.cpp
    bool sw_enabled() const { return (s_.svr & svr::kEnable) != 0; }
    // The LVT register at `offset` in this CPU model (the CMCI entry may not exist).
    std::optional<Lvt> lvt_reg(uint32_t offset) const
    {
        const auto l = lvt_at(offset);
        return l && (*l != Lvt::Cmci || cfg_.caps.cmci) ? l : std::nullopt;
    }
    void record_error(uint32_t esr_bits);
    AccessResult write_apic_base(uint64_t value);
    void write_svr(uint32_t value);
    void write_lvt(Lvt which, uint32_t value, AccessResult& r);
    std::optional<Ipi> send_icr(uint64_t icr_value);
    void write_esr();
    // local_apic_regs.cpp
    std::optional<uint32_t> read_common(uint32_t offset, GuestTime now);
    bool write_common(uint32_t offset, uint32_t value, GuestTime now, AccessResult& r);
    AccessResult x2apic_read(uint32_t offset, GuestTime now);
    AccessResult x2apic_write(uint32_t offset, uint64_t value, GuestTime now);
    uint32_t xapic_read(uint32_t offset, GuestTime now);
    AccessResult xapic_write(uint32_t offset, uint32_t value, GuestTime now);
    // local_apic_timer.cpp
    TimerMode timer_mode() const;
    uint32_t divisor() const { return timer_divisor(s_.timer_divide); }
    uint32_t current_count(uint64_t now_ns) const;
    void arm_count(uint32_t count, uint64_t now_ns);
    void arm_tsc_deadline(GuestTime now);
    void write_tmict(uint32_t value, GuestTime now);
    void write_tdcr(uint32_t value, GuestTime now);
    void timer_mode_changed();  // into or out of TSC-deadline mode
    void write_tsc_deadline(uint64_t value, GuestTime now);
    void rearm_after_restore(GuestTime now);

    LocalApicConfig cfg_;
    ApicState s_;
    TimerRun timer_;
    ApicCounters counters_;
};

}  // namespace hv::apic
