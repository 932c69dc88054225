// EmulatedApic: register access, injection point, scheduling hooks, timer and state.
#include "apic/emulated.hpp"

namespace hv::apic {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(EmulatedExit::Count)> kExitNames{
    "xapic_read", "xapic_write", "x2apic_read", "x2apic_write", "other_apic_msr", "cr8_write"};

bool is_x2apic_msr(uint32_t msr)
{
    return msr >= kX2apicMsrFirst && msr <= kX2apicMsrLast;
}

}  // namespace

EmulatedApic::EmulatedApic(std::size_t index, const LocalApicConfig& cfg, GuestClock& clock,
                           ApicPlatform& platform, VcpuNotifier& notifier)
    : ModelBackend(index, notifier), clock_(clock), platform_(platform), apic_(cfg),
      exits_(kExitNames)
{
}

bool EmulatedApic::pending_locked() const
{
    return apic_.highest_pending().has_value() || events_.any();
}

Notify EmulatedApic::notify_locked()
{
    return notify_if(pending_locked());
}

void EmulatedApic::finish(const AccessResult& r)
{
    // No lock held: route the side effects of a register write.
    if (r.ipi) {
        platform_.send_ipi(index_, *r.ipi);
    }
    if (r.eoi && r.eoi->broadcast && r.eoi->vector) {
        platform_.eoi_to_ioapic(*r.eoi->vector);
    }
    if (r.timer_changed || r.mode_changed) {
        platform_.timer_changed(index_);
    }
}

AccessResult EmulatedApic::mmio_read(uint64_t gpa, unsigned size)
{
    AccessResult r;
    {
        std::lock_guard lock(mu_);
        const auto base = apic_.mmio_base();
        if (!base || gpa < *base || gpa - *base >= reg::kPageSize) {
            return AccessResult::not_mine();
        }
        exits_.add(EmulatedExit::XapicRead);
        r = apic_.mmio_read(static_cast<uint32_t>(gpa - *base), size, clock_.now());
    }
    finish(r);
    return r;
}

AccessResult EmulatedApic::mmio_write(uint64_t gpa, unsigned size, uint32_t value)
{
    AccessResult r;
    Notify n = Notify::None;
    {
        std::lock_guard lock(mu_);
        const auto base = apic_.mmio_base();
        if (!base || gpa < *base || gpa - *base >= reg::kPageSize) {
            return AccessResult::not_mine();
        }
        exits_.add(EmulatedExit::XapicWrite);
        r = apic_.mmio_write(static_cast<uint32_t>(gpa - *base), size, value, clock_.now());
        n = notify_locked();
    }
    notify(n);
    finish(r);
    return r;
}

AccessResult EmulatedApic::msr_read(uint32_t msr)
{
    AccessResult r;
    {
        std::lock_guard lock(mu_);
        r = apic_.msr_read(msr, clock_.now());
        if (r.status != AccessStatus::NotMine) {
            exits_.add(is_x2apic_msr(msr) ? EmulatedExit::X2apicRead : EmulatedExit::OtherMsr);
        }
    }
    finish(r);
    return r;
}

AccessResult EmulatedApic::msr_write(uint32_t msr, uint64_t value)
{
    AccessResult r;
    Notify n = Notify::None;
    {
        std::lock_guard lock(mu_);
        r = apic_.msr_write(msr, value, clock_.now());
        if (r.status != AccessStatus::NotMine) {
            exits_.add(is_x2apic_msr(msr) ? EmulatedExit::X2apicWrite : EmulatedExit::OtherMsr);
        }
        n = notify_locked();
    }
    notify(n);
    finish(r);
    return r;
}

DestInfo EmulatedApic::dest_info() const
{
    std::lock_guard lock(mu_);
    return apic_.dest_info();
}

void EmulatedApic::poll_timer_locked(GuestTime now, bool& changed)
{
    const auto d = apic_.next_timer_deadline();
    if (d && *d <= now.ns) {
        if (apic_.timer_expired(now)) {
            deliveries_.add(DeliveryStat::FromTimer);
        }
        changed = true;
    }
}

std::optional<uint8_t> EmulatedApic::pending_vector()
{
    bool changed = false;
    std::optional<uint8_t> v;
    {
        std::lock_guard lock(mu_);
        poll_timer_locked(clock_.now(), changed);
        v = apic_.highest_pending();
    }
    if (changed) {
        platform_.timer_changed(index_);
    }
    return v;
}

AckResult EmulatedApic::ack()
{
    std::lock_guard lock(mu_);
    return apic_.ack();
}

PendingEvents EmulatedApic::take_events()
{
    std::lock_guard lock(mu_);
    PendingEvents e = events_;
    events_ = PendingEvents{};
    return e;
}

RunState EmulatedApic::run_state() const
{
    std::lock_guard lock(mu_);
    return apic_.run_state();
}

void EmulatedApic::set_run_state(RunState r)
{
    std::lock_guard lock(mu_);
    apic_.set_run_state(r);
}

std::optional<uint8_t> EmulatedApic::cr8() const
{
    std::lock_guard lock(mu_);
    return apic_.cr8();
}

void EmulatedApic::write_cr8(uint8_t value)
{
    // A lower TPR may unmask a pending vector: the vCPU thread, which calls this, evaluates
    // pending_vector() before its next entry, so no notification is needed.
    std::lock_guard lock(mu_);
    exits_.add(EmulatedExit::Cr8Write);
    apic_.write_cr8(value);
}

void EmulatedApic::enter_guest()
{
    std::lock_guard lock(mu_);
    set_sched(SchedState::InGuest);
}

void EmulatedApic::leave_guest()
{
    std::lock_guard lock(mu_);
    set_sched(SchedState::Outside);
}

bool EmulatedApic::block()
{
    std::lock_guard lock(mu_);
    if (pending_locked()) {
        return false;
    }
    set_sched(SchedState::Blocked);
    return true;
}

void EmulatedApic::unblock()
{
    std::lock_guard lock(mu_);
    set_sched(SchedState::Outside);
}

std::optional<uint64_t> EmulatedApic::timer_deadline() const
{
    std::lock_guard lock(mu_);
    return apic_.next_timer_deadline();
}

void EmulatedApic::timer_fired()
{
    bool changed = false;
    Notify n = Notify::None;
    {
        std::lock_guard lock(mu_);
        poll_timer_locked(clock_.now(), changed);
        n = notify_locked();
    }
    notify(n);
    if (changed) {
        platform_.timer_changed(index_);
    }
}

ApicState EmulatedApic::flatten()
{
    bool changed = false;
    ApicState s;
    {
        std::lock_guard lock(mu_);
        const GuestTime now = clock_.now();
        poll_timer_locked(now, changed);
        s = apic_.flatten(now);
    }
    if (changed) {
        platform_.timer_changed(index_);
    }
    return s;
}

std::optional<std::string> EmulatedApic::restore(const ApicState& s)
{
    std::optional<std::string> err;
    {
        std::lock_guard lock(mu_);
        err = apic_.restore(s, clock_.now());
    }
    if (!err) {
        platform_.timer_changed(index_);
    }
    return err;
}

CounterList EmulatedApic::exit_counters() const
{
    CounterList out;
    exits_.append_to(out);
    return out;
}

ApicCounters EmulatedApic::model_counters() const
{
    std::lock_guard lock(mu_);
    return apic_.counters();
}

CounterList EmulatedApic::stats() const
{
    CounterList out;
    append_model_stats(out);
    append_counters(model_counters(), out);
    return out;
}

}  // namespace hv::apic
