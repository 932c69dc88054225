// LocalApic: the LVT timer (one-shot, periodic, TSC-deadline).
//
// SDM Vol3 11.5.4 "APIC Timer": the count decrements at the timer clock divided by the divide
// configuration; at zero the LVT timer interrupt is raised; periodic mode reloads the initial
// count. The clock here is guest time from the caller, 1 ns per tick (regs.hpp), so:
//   expiry = start + count * divisor ns, current count = count - elapsed / divisor.
// Nothing here reads a host clock: the caller arms a host timer at next_timer_deadline() and calls
// timer_expired(now) when it fires.
#include "apic/local_apic.hpp"

namespace hv::apic {
namespace {

__extension__ using U128 = unsigned __int128;

constexpr uint64_t kNsPerSec = 1'000'000'000ULL;

// ceil(ticks * 1e9 / hz), saturated: the ns deadline is never earlier than the TSC deadline.
uint64_t tsc_ticks_to_ns(uint64_t ticks, uint64_t hz)
{
    if (hz == 0) {
        return 0;
    }
    const U128 ns = (static_cast<U128>(ticks) * kNsPerSec + (hz - 1)) / hz;
    return ns > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(ns);
}

uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

}  // namespace

TimerMode LocalApic::timer_mode() const
{
    return static_cast<TimerMode>((s_.lvt_of(Lvt::Timer) & lvt::kTimerModeMask) >>
                                  lvt::kTimerModeShift);
}

uint32_t LocalApic::current_count(uint64_t now_ns) const
{
    if (!timer_.armed || timer_mode() == TimerMode::TscDeadline) {
        return 0;
    }
    const uint64_t per = static_cast<uint64_t>(divisor()) * kTimerNsPerTick;
    if (now_ns < timer_.deadline_ns) {
        const uint64_t elapsed = now_ns > timer_.start_ns ? now_ns - timer_.start_ns : 0;
        return timer_.start_count - static_cast<uint32_t>(elapsed / per);
    }
    if (timer_mode() != TimerMode::Periodic || s_.timer_initial == 0) {
        return 0;  // one-shot expired (the expiry may not have been processed yet)
    }
    // Periodic and late: the count has reloaded since the deadline.
    const uint64_t period = static_cast<uint64_t>(s_.timer_initial) * per;
    const uint64_t into = (now_ns - timer_.deadline_ns) % period;
    return s_.timer_initial - static_cast<uint32_t>(into / per);
}

void LocalApic::arm_count(uint32_t count, uint64_t now_ns)
{
    timer_.armed = true;
    timer_.start_ns = now_ns;
    timer_.start_count = count;
    timer_.deadline_ns =
        sat_add(now_ns, static_cast<uint64_t>(count) * divisor() * kTimerNsPerTick);
}

void LocalApic::write_tmict(uint32_t value, GuestTime now)
{
    // SDM Vol3 11.5.4.1 "TSC-Deadline Mode": writes to the initial-count register are ignored.
    if (timer_mode() == TimerMode::TscDeadline) {
        return;
    }
    // SDM Vol3 11.5.4: a write starts the count; writing 0 stops the timer.
    s_.timer_initial = value;
    timer_ = {};
    if (value != 0) {
        arm_count(value, now.ns);
    }
}

void LocalApic::write_tdcr(uint32_t value, GuestTime now)
{
    // The divide change applies from now: the current count continues at the new rate.
    const bool running = timer_.armed && timer_mode() != TimerMode::TscDeadline;
    const uint32_t count = running ? current_count(now.ns) : 0;
    s_.timer_divide = value;
    if (running) {
        const uint64_t deadline_before = timer_.deadline_ns;
        arm_count(count, now.ns);
        if (count == 0) {
            timer_.deadline_ns = deadline_before < now.ns ? deadline_before : now.ns;
        }
    }
}

void LocalApic::timer_mode_changed()
{
    // Called for a switch into or out of TSC-deadline mode only. SDM Vol3 11.5.4.1: such a
    // write to the LVT Timer Register disarms the timer; the initial count and IA32_TSC_DEADLINE
    // are cleared (as KVM does). Between one-shot and periodic (11.5.4) nothing is reset: the
    // current count goes on down, and what happens at 0 (stop, or reload from the initial count)
    // follows the mode at that moment.
    timer_ = {};
    s_.timer_initial = 0;
    s_.tsc_deadline = 0;
}

void LocalApic::arm_tsc_deadline(GuestTime now)
{
    timer_.armed = true;
    timer_.start_ns = now.ns;
    timer_.start_count = 0;
    const uint64_t ahead = s_.tsc_deadline > now.tsc ? s_.tsc_deadline - now.tsc : 0;
    timer_.deadline_ns = sat_add(now.ns, tsc_ticks_to_ns(ahead, cfg_.tsc_hz));
}

void LocalApic::write_tsc_deadline(uint64_t value, GuestTime now)
{
    // SDM Vol3 11.5.4.1: writes are ignored outside TSC-deadline mode; 0 disarms; a deadline in
    // the past fires at once.
    if (timer_mode() != TimerMode::TscDeadline) {
        return;
    }
    s_.tsc_deadline = value;
    timer_ = {};
    if (value != 0) {
        arm_tsc_deadline(now);
    }
}

std::optional<uint64_t> LocalApic::next_timer_deadline() const
{
    if (!timer_.armed) {
        return std::nullopt;
    }
    return timer_.deadline_ns;
}

bool LocalApic::timer_expired(GuestTime now)
{
    if (!timer_.armed || now.ns < timer_.deadline_ns) {
        return false;
    }
    const LvtResult res = raise_lvt(Lvt::Timer);
    counters_.timer_masked += res.event == LocalEvent::Masked ? 1 : 0;
    const bool raised = res.event == LocalEvent::Fixed;
    counters_.timer_fired += raised ? 1 : 0;

    if (timer_mode() == TimerMode::Periodic && s_.timer_initial != 0) {
        const uint64_t exact =
            static_cast<uint64_t>(s_.timer_initial) * divisor() * kTimerNsPerTick;
        const uint64_t period = exact > cfg_.min_period_ns ? exact : cfg_.min_period_ns;
        // Periods that passed while nobody called us coalesce into this one interrupt.
        const uint64_t missed = (now.ns - timer_.deadline_ns) / period;
        counters_.timer_missed += missed;
        const uint64_t next = timer_.deadline_ns + (missed + 1) * period;
        timer_.start_ns = next - exact;
        timer_.start_count = s_.timer_initial;
        timer_.deadline_ns = next;
        return raised;
    }
    // One-shot: the count stays 0. TSC-deadline: the MSR is cleared once the interrupt fires.
    timer_ = {};
    if (timer_mode() == TimerMode::TscDeadline) {
        s_.tsc_deadline = 0;
    }
    return raised;
}

void LocalApic::rearm_after_restore(GuestTime now)
{
    if (timer_mode() == TimerMode::TscDeadline) {
        if (s_.tsc_deadline != 0) {
            arm_tsc_deadline(now);
        }
        return;
    }
    if (s_.timer_initial == 0) {
        return;
    }
    if (s_.timer_remaining != 0) {
        arm_count(s_.timer_remaining, now.ns);
    } else if (timer_mode() == TimerMode::Periodic) {
        arm_count(0, now.ns);  // at the reload point: fires now, then a full period
    }
}

}  // namespace hv::apic
