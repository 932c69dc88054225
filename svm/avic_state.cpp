// AvicBackend: flatten/restore into the host-neutral ApicState, inspection, counters.
#include "svm/avic_backend.hpp"

namespace hv::svm {

// --- state ---

apic::ApicState AvicBackend::flatten()
{
    bool changed = false;
    apic::ApicState s;
    {
        std::lock_guard lock(mu_);
        const apic::GuestTime t = now();
        poll_timer_locked(t, changed);
        fold_locked();  // IRR comes from the backing page
        s = apic_.flatten(t);
        sync_locked(false);
    }
    flush_timer();
    return s;  // IsRunning and the host APIC ID are not architectural state: never saved
}

std::optional<std::string> AvicBackend::restore(const apic::ApicState& s)
{
    {
        std::lock_guard lock(mu_);
        const apic::GuestTime t = now();
        if (auto err = apic_.restore(s, t)) {  // validates before changing anything
            return err;
        }
        // The page is rewritten (IRR included) and the tables rebuilt from the restored ID,
        // LDR and DFR; IsRunning follows this vCPU's scheduling state, not the snapshot.
        sync_locked(true);
    }
    platform_.timer_changed(index_);
    return std::nullopt;
}

VmcbControl AvicBackend::vmcb() const
{
    std::lock_guard lock(mu_);
    return vmcb_;
}

uint64_t AvicBackend::total_exits() const
{
    uint64_t n = 0;
    for (std::size_t i = 0; i < static_cast<std::size_t>(AvicExit::Count); ++i) {
        n += exits_.get(static_cast<AvicExit>(i));
    }
    return n;
}

apic::CounterList AvicBackend::exit_counters() const
{
    apic::CounterList out;
    exits_.append_to(out);
    // The AVIC_NOACCEL exits by register, only those that happened.
    for (std::size_t i = 0; i < 2 * kRegGroups; ++i) {
        if (const uint64_t v = noaccel_.get(static_cast<NoaccelSlot>(i)); v != 0) {
            out.push_back({kNoaccelNames[i], v});
        }
    }
    return out;
}

apic::CounterList AvicBackend::stats() const
{
    apic::CounterList out;
    append_model_stats(out);  // deliveries by source and event, kicks, wakes
    vm_.stats(index_).append_to(out);
    apic::ApicCounters c;
    {
        std::lock_guard lock(mu_);
        c = apic_.counters();
    }
    apic::append_counters(c, out);
    return out;
}

}  // namespace hv::svm
