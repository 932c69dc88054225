// LocalApic: mode state machine, acceptance, priority, EOI, INIT/SIPI, state.
#include "apic/local_apic.hpp"

#include "apic/vector_bits.hpp"

namespace hv::apic {

LocalApic::LocalApic(const LocalApicConfig& cfg) : cfg_(cfg)
{
    s_.id = cfg.id;
    s_.version = cfg.caps.version();
    s_.apic_base = base::kDefaultAddr | base::kEnable | (cfg.bsp ? base::kBsp : 0);
    // SDM Vol3 9.4.1 "BSP and AP Processors": after reset the APs wait for a start-up IPI.
    s_.run_state = cfg.bsp ? RunState::Running : RunState::WaitForSipi;
}

ApicMode LocalApic::mode() const
{
    if ((s_.apic_base & base::kEnable) == 0) {
        return ApicMode::Disabled;
    }
    return (s_.apic_base & base::kExtd) != 0 ? ApicMode::X2Apic : ApicMode::XApic;
}

std::optional<uint64_t> LocalApic::mmio_base() const
{
    // SDM Vol3 11.12.1.2 "x2APIC Register Address Space": in x2APIC mode the MMIO interface is
    // not available; a disabled APIC has none either (11.4.3).
    if (mode() != ApicMode::XApic) {
        return std::nullopt;
    }
    return s_.apic_base & base::addr_mask(cfg_.caps.maxphyaddr);
}

AccessResult LocalApic::write_apic_base(uint64_t v)
{
    const uint64_t allowed = base::kBsp | base::kEnable | (cfg_.caps.x2apic ? base::kExtd : 0) |
                             base::addr_mask(cfg_.caps.maxphyaddr);
    if ((v & ~allowed) != 0) {
        return AccessResult::gp();
    }
    const bool en = (v & base::kEnable) != 0;
    const bool extd = (v & base::kExtd) != 0;
    // SDM Vol3 11.12.5.1 "x2APIC States": EN=0/EXTD=1 is invalid; x2APIC -> xAPIC and
    // disabled -> x2APIC are illegal transitions (#GP).
    if (extd && !en) {
        return AccessResult::gp();
    }
    const ApicMode from = mode();
    const ApicMode to = !en ? ApicMode::Disabled : (extd ? ApicMode::X2Apic : ApicMode::XApic);
    if ((from == ApicMode::X2Apic && to == ApicMode::XApic) ||
        (from == ApicMode::Disabled && to == ApicMode::X2Apic)) {
        return AccessResult::gp();
    }
    AccessResult r = AccessResult::ok();
    r.mode_changed = v != s_.apic_base;
    s_.apic_base = v;  // BSP is stored as written, as KVM does
    if (from != to && (to == ApicMode::Disabled || from == ApicMode::Disabled)) {
        // SDM Vol3 11.12.5.1: "all the APIC register states in the x2APIC, except for the x2APIC
        // ID (32 bits), are not preserved across mode transitions"; leaving the disabled state
        // gives the power-up values (11.4.3 "Enabling or Disabling the Local APIC").
        // The APIC ID too is back to its power-up value, the initial APIC ID (11.4.6), whatever
        // software wrote into the xAPIC ID register.
        s_ = reset_registers(s_);
        s_.id = cfg_.id;
        timer_ = {};
        r.timer_changed = true;
    } else if (from == ApicMode::XApic && to == ApicMode::X2Apic) {
        // SDM Vol3 11.12.5.1: the x2APIC ID is the initial APIC ID (CPUID.0BH:EDX; the xAPIC ID
        // register may have been rewritten in xAPIC mode), and the logical x2APIC ID is
        // initialised by hardware from it (11.12.10.2).
        s_.id = cfg_.id;
        s_.ldr = x2apic_ldr(s_.id);
    }
    return r;
}

uint8_t LocalApic::ppr() const
{
    return processor_priority(s_.tpr, s_.isr);
}

uint8_t LocalApic::apr() const
{
    // SDM Vol3 11.6.2.4 "Lowest Priority Delivery Mode" (arbitration priority): the same rule as
    // PPR over max(IRRV, ISRV).
    const uint32_t tpr = s_.tpr & 0xFFu;
    const uint32_t irrv = highest_vector(s_.irr).value_or(0);
    const uint32_t isrv = highest_vector(s_.isr).value_or(0);
    const uint32_t top = (irrv > isrv ? irrv : isrv) & 0xF0u;
    return static_cast<uint8_t>((tpr & 0xF0u) >= top ? tpr : top);
}

void LocalApic::record_error(uint32_t esr_bits)
{
    // SDM Vol3 11.5.3 "Error Handling": errors latch until the next ESR write and raise the LVT
    // error interrupt. An illegal error vector only adds the receive-illegal bit (no recursion).
    s_.esr_pending |= esr_bits;
    ++counters_.esr_events;
    const uint32_t e = s_.lvt_of(Lvt::Error);
    if ((e & lvt::kMasked) != 0 || mode() == ApicMode::Disabled) {
        return;
    }
    const auto v = static_cast<uint8_t>(e & lvt::kVectorMask);
    if (!is_legal_vector(v)) {
        s_.esr_pending |= esr::kReceiveIllegalVector;
        ++counters_.rx_illegal_vector;
        return;
    }
    set_vector(s_.irr, v);
    clear_vector(s_.tmr, v);
}

bool LocalApic::accept(uint8_t vector, Trigger trigger)
{
    if (mode() == ApicMode::Disabled) {
        ++counters_.dropped_disabled;
        return false;
    }
    // SDM Vol3 11.5.2 "Valid Interrupt Vectors": vectors 0-15 set "received illegal vector".
    if (!is_legal_vector(vector)) {
        ++counters_.rx_illegal_vector;
        record_error(esr::kReceiveIllegalVector);
        return false;
    }
    // SDM Vol3 11.4.7.2 "Local APIC State After It Has Been Software Disabled": only INIT, NMI,
    // SMI and SIPI are taken; fixed interrupts are refused (pending IRR/ISR bits are kept).
    if (!sw_enabled()) {
        ++counters_.dropped_disabled;
        return false;
    }
    // SDM Vol3 11.8.4 "Interrupt Acceptance for Fixed Interrupts": IRR set, TMR = trigger mode.
    set_vector(s_.irr, vector);
    if (trigger == Trigger::Level) {
        set_vector(s_.tmr, vector);
    } else {
        clear_vector(s_.tmr, vector);
    }
    ++counters_.accepted;
    return true;
}

std::optional<uint8_t> LocalApic::highest_pending() const
{
    if (mode() == ApicMode::Disabled) {
        return std::nullopt;
    }
    // SDM Vol3 11.8.3.1: an interrupt is dispensed only if its class is above the PPR class.
    const auto irrv = highest_vector(s_.irr);
    if (!irrv || (*irrv & 0xF0u) <= (ppr() & 0xF0u)) {
        return std::nullopt;
    }
    return irrv;
}

AckResult LocalApic::ack()
{
    const auto v = highest_pending();
    if (!v) {
        // SDM Vol3 11.9 "Spurious Interrupt": the interrupt became masked before INTA; the APIC
        // dispenses the spurious vector and does not touch the ISR.
        ++counters_.spurious;
        return AckResult{static_cast<uint8_t>(s_.svr & svr::kVectorMask), true};
    }
    clear_vector(s_.irr, *v);
    set_vector(s_.isr, *v);
    return AckResult{*v, false};
}

EoiResult LocalApic::eoi()
{
    EoiResult r;
    const auto v = highest_vector(s_.isr);
    if (!v) {
        ++counters_.eoi_empty;
        return r;
    }
    // SDM Vol3 11.8.5 "Signaling Interrupt Servicing Completion": EOI clears the highest ISR
    // bit; for a level-triggered vector the EOI is broadcast to the IOAPICs unless SVR[12]
    // suppresses it (software then uses the IOAPIC EOI register: a directed EOI).
    clear_vector(s_.isr, *v);
    ++counters_.eoi;
    r.vector = v;
    r.level = test_vector(s_.tmr, *v);
    r.broadcast = r.level && (s_.svr & svr::kSuppressEoiBroadcast) == 0;
    counters_.eoi_broadcast += r.broadcast ? 1 : 0;
    counters_.eoi_suppressed += (r.level && !r.broadcast) ? 1 : 0;
    return r;
}

LvtResult LocalApic::raise_lvt(Lvt which)
{
    if (mode() == ApicMode::Disabled) {
        return {};
    }
    const uint32_t e = s_.lvt_of(which);
    const auto vector = static_cast<uint8_t>(e & lvt::kVectorMask);
    if ((e & lvt::kMasked) != 0) {
        return LvtResult{LocalEvent::Masked, vector};
    }
    // SDM Vol3 11.5.1 "Local Vector Table": timer and error entries are always fixed.
    uint32_t dm = (e & lvt::kModeMask) >> lvt::kModeShift;
    if (which == Lvt::Timer || which == Lvt::Error) {
        dm = 0;
    }
    switch (static_cast<DeliveryMode>(dm)) {
    case DeliveryMode::Fixed: {
        const bool lint = which == Lvt::Lint0 || which == Lvt::Lint1;
        const Trigger t = lint && (e & lvt::kLevel) != 0 ? Trigger::Level : Trigger::Edge;
        return accept(vector, t) ? LvtResult{LocalEvent::Fixed, vector} : LvtResult{};
    }
    case DeliveryMode::Smi:
        return LvtResult{LocalEvent::Smi, 0};
    case DeliveryMode::Nmi:
        return LvtResult{LocalEvent::Nmi, 0};
    case DeliveryMode::Init:
        return LvtResult{LocalEvent::Init, 0};
    case DeliveryMode::ExtInt:
        return LvtResult{LocalEvent::ExtInt, 0};
    default:
        return {};  // reserved encodings deliver nothing
    }
}

void LocalApic::init()
{
    // SDM Vol3 11.4.7.3 "Local APIC State After an INIT Reset": like power-up, except the APIC
    // ID and IA32_APIC_BASE (mode) are kept; an AP then waits for a SIPI (9.4 "MP
    // Initialization"). The BSP restarts at the reset vector: core resets its registers.
    s_ = reset_registers(s_);
    timer_ = {};
    s_.run_state = (s_.apic_base & base::kBsp) != 0 ? RunState::Running : RunState::WaitForSipi;
}

std::optional<uint8_t> LocalApic::sipi(uint8_t vector)
{
    // SDM Vol3 9.4.4.1 "Typical BSP Initialization Sequence": a SIPI is only recognised in
    // wait-for-SIPI; the AP starts in real mode at vector << 12.
    if (s_.run_state != RunState::WaitForSipi) {
        ++counters_.sipi_ignored;
        return std::nullopt;
    }
    s_.run_state = RunState::Running;
    return vector;
}

DestInfo LocalApic::dest_info() const
{
    DestInfo d;
    d.id = s_.id;
    d.enabled = mode() != ApicMode::Disabled;
    d.x2apic = mode() == ApicMode::X2Apic;
    d.ldr = d.x2apic ? x2apic_ldr(s_.id) : s_.ldr;
    d.dfr = s_.dfr;
    d.sw_enabled = sw_enabled();
    d.ppr = ppr();
    return d;
}

ApicState LocalApic::flatten(GuestTime now)
{
    if (timer_.armed && now.ns >= timer_.deadline_ns) {
        timer_expired(now);
    }
    ApicState s = s_;
    s.timer_remaining = timer_mode() == TimerMode::TscDeadline ? 0 : current_count(now.ns);
    return s;
}

std::optional<std::string> LocalApic::restore(const ApicState& s, GuestTime now)
{
    if (auto err = validate(s, cfg_.caps)) {
        return err;
    }
    s_ = s;
    timer_ = {};
    rearm_after_restore(now);
    return std::nullopt;
}

void append_counters(const ApicCounters& c, CounterList& out)
{
    out.push_back({"spurious", c.spurious});
    out.push_back({"esr_events", c.esr_events});
    out.push_back({"eoi", c.eoi});
    out.push_back({"eoi_broadcast", c.eoi_broadcast});
    out.push_back({"ipi_sent", c.ipi_sent});
    out.push_back({"ipi_invalid", c.ipi_invalid});
    out.push_back({"timer_fired", c.timer_fired});
    out.push_back({"timer_masked", c.timer_masked});
    out.push_back({"gp", c.gp});
}

}  // namespace hv::apic
