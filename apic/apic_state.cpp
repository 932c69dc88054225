#include "apic/apic_state.hpp"

#include <fmt/format.h>

namespace hv::apic {
namespace {

using Error = std::optional<std::string>;

Error check_base(const ApicState& s, const ApicCaps& caps)
{
    if (caps.maxphyaddr < 32 || caps.maxphyaddr > 52) {
        return fmt::format("caps.maxphyaddr: {} outside 32..52", caps.maxphyaddr);
    }
    const uint64_t allowed = base::kBsp | base::kEnable | (caps.x2apic ? base::kExtd : 0) |
                             base::addr_mask(caps.maxphyaddr);
    if ((s.apic_base & ~allowed) != 0) {
        return fmt::format("apic_base: reserved bits {:#x} set", s.apic_base & ~allowed);
    }
    // SDM Vol3 11.12.5.1 "x2APIC States": EN=0 with EXTD=1 is the invalid state.
    if ((s.apic_base & base::kExtd) != 0 && (s.apic_base & base::kEnable) == 0) {
        return std::string("apic_base: EXTD set with EN clear (invalid x2APIC state)");
    }
    return std::nullopt;
}

Error check_vector_words(const char* name, const std::array<uint32_t, 8>& words)
{
    // SDM Vol3 11.5.2 "Valid Interrupt Vectors": vectors 0-15 are never accepted.
    if ((words[0] & 0xFFFFu) != 0) {
        return fmt::format("{}[0]: vectors 0-15 set ({:#x})", name, words[0] & 0xFFFFu);
    }
    return std::nullopt;
}

Error check_ids(const ApicState& s)
{
    if (s.x2apic()) {
        // SDM Vol3 11.12.10.2: in x2APIC mode the LDR is derived from the ID and read-only.
        if (s.ldr != x2apic_ldr(s.id)) {
            return fmt::format("ldr: {:#x} is not the logical ID {:#x} derived from id {:#x}",
                               s.ldr, x2apic_ldr(s.id), s.id);
        }
        return std::nullopt;
    }
    // In xAPIC mode only ID[7:0] is visible; the upper bits are the x2APIC ID the vCPU gets when
    // it switches mode (SDM Vol3 11.12.5.1), so any 32-bit value is valid here.
    if ((s.ldr & 0x00FFFFFFu) != 0) {
        return fmt::format("ldr: reserved bits {:#x} set (xAPIC LDR is bits 31:24)", s.ldr);
    }
    // SDM Vol3 11.6.2.2 "Logical Destination Mode": DFR[31:28] is 1111b (flat) or 0000b
    // (cluster); bits 27:0 read as ones.
    if ((s.dfr & 0x0FFFFFFFu) != 0x0FFFFFFFu) {
        return fmt::format("dfr: bits 27:0 must be all ones, got {:#x}", s.dfr);
    }
    // DFR[31:28] values other than 1111b/0000b are kept as written (as KVM does) and match no
    // logical destination, so they are not a restore error.
    return std::nullopt;
}

Error check_lvts(const ApicState& s, const ApicCaps& caps)
{
    static constexpr const char* kNames[kLvtCount] = {
        "lvt_cmci", "lvt_timer", "lvt_thermal", "lvt_perf", "lvt_lint0", "lvt_lint1", "lvt_error"};
    for (std::size_t i = 0; i < kLvtCount; ++i) {
        const auto which = static_cast<Lvt>(i);
        uint32_t allowed = lvt_writable(which);
        if (which == Lvt::Lint0 || which == Lvt::Lint1) {
            allowed |= lvt::kRemoteIrr;
        }
        if ((s.lvt[i] & ~allowed) != 0) {
            return fmt::format("{}: reserved or read-only bits {:#x} set", kNames[i],
                               s.lvt[i] & ~allowed);
        }
        if (which == Lvt::Cmci && !caps.cmci && s.lvt[i] != lvt::kReset) {
            return fmt::format("{}: set although this CPU model has no CMCI LVT", kNames[i]);
        }
        // SDM Vol3 11.4.7.2 "Local APIC State After It Has Been Software Disabled": all LVT
        // entries are masked while SVR[8] is clear.
        if ((s.svr & svr::kEnable) == 0 && (s.lvt[i] & lvt::kMasked) == 0) {
            return fmt::format("{}: unmasked while the APIC is software-disabled", kNames[i]);
        }
    }
    const auto mode = static_cast<TimerMode>((s.lvt_of(Lvt::Timer) >> lvt::kTimerModeShift) & 3u);
    if (mode == TimerMode::Reserved) {
        return std::string("lvt_timer: timer mode 11b is reserved");
    }
    if (mode == TimerMode::TscDeadline && !caps.tsc_deadline) {
        return std::string("lvt_timer: TSC-deadline mode without TSC-deadline support");
    }
    return std::nullopt;
}

Error check_timer(const ApicState& s)
{
    if ((s.timer_divide & ~kTdcrWritable) != 0) {
        return fmt::format("timer_divide: reserved bits {:#x} set", s.timer_divide);
    }
    const auto mode = static_cast<TimerMode>((s.lvt_of(Lvt::Timer) >> lvt::kTimerModeShift) & 3u);
    if (mode == TimerMode::TscDeadline) {
        // SDM Vol3 11.5.4.1 "TSC-Deadline Mode": TMICT writes are ignored, TMCCT reads 0.
        if (s.timer_initial != 0 || s.timer_remaining != 0) {
            return std::string("timer_initial: must be 0 in TSC-deadline mode");
        }
        return std::nullopt;
    }
    if (s.tsc_deadline != 0) {
        return std::string("tsc_deadline: non-zero outside TSC-deadline mode");
    }
    if (s.timer_remaining > s.timer_initial) {
        return fmt::format("timer_remaining: {} exceeds timer_initial {}", s.timer_remaining,
                           s.timer_initial);
    }
    return std::nullopt;
}

Error check_misc(const ApicState& s, const ApicCaps& caps)
{
    if (s.version != caps.version()) {
        return fmt::format("version: {:#x}, this CPU model has {:#x}", s.version, caps.version());
    }
    if (s.tpr > 0xFFu) {
        return fmt::format("tpr: reserved bits {:#x} set", s.tpr);
    }
    const uint32_t svr_ok = svr::writable(caps.directed_eoi);
    if ((s.svr & ~svr_ok) != 0) {
        return fmt::format("svr: reserved bits {:#x} set", s.svr & ~svr_ok);
    }
    if ((s.esr & ~esr::kDefined) != 0 || (s.esr_pending & ~esr::kDefined) != 0) {
        return std::string("esr: reserved bits set");
    }
    const uint64_t high_ok = s.x2apic() ? 0xFFFFFFFF00000000ULL : (icr::kXapicHighWritable << 32);
    if ((s.icr & ~(icr::kLowWritable | high_ok)) != 0) {
        return fmt::format("icr: reserved or read-only bits {:#x} set",
                           s.icr & ~(icr::kLowWritable | high_ok));
    }
    if (s.run_state != RunState::Running && s.run_state != RunState::Halted &&
        s.run_state != RunState::WaitForSipi) {
        return fmt::format("run_state: unknown value {}", static_cast<unsigned>(s.run_state));
    }
    return std::nullopt;
}

Error check_disabled(const ApicState& s)
{
    // SDM Vol3 11.4.3 "Enabling or Disabling the Local APIC": a globally disabled APIC accepts no
    // interrupts, so it cannot hold requested or in-service vectors.
    if (s.enabled()) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < 8; ++i) {
        if (s.irr[i] != 0 || s.isr[i] != 0 || s.tmr[i] != 0) {
            return fmt::format("irr/isr/tmr[{}]: non-zero while the APIC is disabled", i);
        }
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::string> validate(const ApicState& s, const ApicCaps& caps)
{
    if (auto e = check_base(s, caps)) {
        return e;
    }
    for (auto e : {check_misc(s, caps), check_ids(s), check_vector_words("isr", s.isr),
                   check_vector_words("tmr", s.tmr), check_vector_words("irr", s.irr),
                   check_lvts(s, caps), check_timer(s), check_disabled(s)}) {
        if (e) {
            return e;
        }
    }
    return std::nullopt;
}

namespace {

void diff_field(std::string& out, const std::string& name, uint64_t a, uint64_t b)
{
    if (a == b) {
        return;
    }
    if (!out.empty()) {
        out += "; ";
    }
    out += fmt::format("{}: {:#x} != {:#x}", name, a, b);
}

template <std::size_t N>
void diff_array(std::string& out, const char* name, const std::array<uint32_t, N>& a,
                const std::array<uint32_t, N>& b)
{
    for (std::size_t i = 0; i < N; ++i) {
        diff_field(out, fmt::format("{}[{}]", name, i), a[i], b[i]);
    }
}

}  // namespace

std::string describe_difference(const ApicState& a, const ApicState& b)
{
    std::string out;
    diff_field(out, "apic_base", a.apic_base, b.apic_base);
    diff_field(out, "id", a.id, b.id);
    diff_field(out, "version", a.version, b.version);
    diff_field(out, "tpr", a.tpr, b.tpr);
    diff_field(out, "ldr", a.ldr, b.ldr);
    diff_field(out, "dfr", a.dfr, b.dfr);
    diff_field(out, "svr", a.svr, b.svr);
    diff_array(out, "isr", a.isr, b.isr);
    diff_array(out, "tmr", a.tmr, b.tmr);
    diff_array(out, "irr", a.irr, b.irr);
    diff_field(out, "esr", a.esr, b.esr);
    diff_field(out, "esr_pending", a.esr_pending, b.esr_pending);
    diff_array(out, "lvt", a.lvt, b.lvt);
    diff_field(out, "icr", a.icr, b.icr);
    diff_field(out, "timer_initial", a.timer_initial, b.timer_initial);
    diff_field(out, "timer_remaining", a.timer_remaining, b.timer_remaining);
    diff_field(out, "timer_divide", a.timer_divide, b.timer_divide);
    diff_field(out, "tsc_deadline", a.tsc_deadline, b.tsc_deadline);
    diff_field(out, "run_state", static_cast<uint64_t>(a.run_state),
               static_cast<uint64_t>(b.run_state));
    return out;
}

ApicState reset_registers(const ApicState& from)
{
    ApicState s;  // member initialisers are the power-up values
    s.apic_base = from.apic_base;
    s.version =
        from.version;  // SDM Vol3 11.12.5.1: "the local APIC version register is not affected"
    s.id = from.id;
    s.run_state = from.run_state;
    if (s.x2apic()) {
        s.ldr = x2apic_ldr(s.id);
    }
    return s;
}

}  // namespace hv::apic
