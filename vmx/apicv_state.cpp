// ApicvBackend: flatten/restore into the host-neutral ApicState, inspection, counters.
#include "vmx/apicv_backend.hpp"

namespace hv::vmx {

// ---------------------------------------------------------------------------------------------
// State and counters.

uint64_t ApicvBackend::page_icr() const
{
    if (apic_.mode() == apic::ApicMode::X2Apic) {
        return page_->read_bytes(vapic::kVicrLo, 8);
    }
    return (static_cast<uint64_t>(page_->get(vapic::kVicrHi)) << 32) | page_->get(vapic::kVicrLo);
}

apic::ApicState ApicvBackend::flatten()
{
    bool changed = false;
    apic::ApicState s;
    {
        std::lock_guard lock(mu_);
        poll_timer_locked(changed);
        s = apic_.flatten(clock_.now());
        // docs/snapshot.md: PIR merged into IRR even when ON is clear; RVI/SVI are not saved.
        const apic::VectorWords pir = pid_.peek_pir();
        const apic::VectorWords virr = page_->vectors(vapic::kVirr);
        for (std::size_t i = 0; i < 8; ++i) {
            s.irr[i] = virr[i] | pir[i];
        }
        // Vectors 0-15 can only come from a VT-d post (the remapping unit does not check the
        // vector); they are not interrupts an APIC can hold (SDM Vol3 11.5.2) and are dropped.
        s.irr[0] &= ~0xFFFFu;
        if (apic_.mode() == apic::ApicMode::Disabled) {
            s.irr = {};  // posted while disabled: discarded when the APIC is enabled again
        }
        s.isr = page_->vectors(vapic::kVisr);
        s.tmr = tmr_;
        s.tpr = page_->vtpr();
        s.icr = page_icr() & ~apic::icr::kDeliveryStatus;
    }
    if (changed) {
        platform_.timer_changed(index_);
    }
    return s;
}

std::optional<std::string> ApicvBackend::restore(const apic::ApicState& s)
{
    if (auto err = apic::validate(s, apic_.config().caps)) {
        return err;  // nothing changed
    }
    {
        std::lock_guard lock(mu_);
        apic::ApicState model = s;
        model.tpr = 0;
        model.isr = {};
        model.irr = {};
        if (auto err = apic_.restore(model, clock_.now())) {
            return err;  // cannot happen: `model` is as valid as `s`
        }
        reset_hardware_state_locked();
        page_->set(vapic::kVtpr, s.tpr);
        page_->set_vectors(vapic::kVisr, s.isr);
        page_->set_vectors(vapic::kVirr, s.irr);
        if (apic_.mode() == apic::ApicMode::X2Apic) {
            page_->write_bytes(vapic::kVicrLo, 8, s.icr);
        } else {
            page_->set(vapic::kVicrLo, static_cast<uint32_t>(s.icr));
            page_->set(vapic::kVicrHi, static_cast<uint32_t>(s.icr >> 32));
        }
        tmr_ = s.tmr;
        for (std::size_t i = 0; i < 8; ++i) {
            tmr_mirror_[i].store(tmr_[i], std::memory_order_relaxed);
        }
        rebuild_eoi_exit_locked();
        // RVI and SVI are derived (SDM Vol3 30.1: the CPU keeps them consistent with VIRR/VISR).
        GuestInterruptStatus g;
        g.set_rvi(page_->highest(vapic::kVirr).value_or(0));
        g.set_svi(page_->highest(vapic::kVisr).value_or(0));
        vmcs_.set_gis(g);
        hw_ppr_virtualization();
        mirror_locked();
        update_controls_locked();
        refresh_table_locked();
        // NV/NDST/SN are this host's, computed anew.
        if (opts_.posted_interrupts) {
            const bool running = sched() == apic::SchedState::InGuest;
            const bool blocked = sched() == apic::SchedState::Blocked;
            update_control(pid_,
                           ControlUpdate{blocked ? opts_.wakeup_vector : opts_.notification_vector,
                                         vm_.ndst_for(index_), !(running || blocked)});
        }
    }
    platform_.timer_changed(index_);
    return std::nullopt;
}

VmcsImage ApicvBackend::vmcs() const
{
    std::lock_guard lock(mu_);
    return vmcs_;
}

VirtualApicPage ApicvBackend::page() const
{
    std::lock_guard lock(mu_);
    return *page_;
}

apic::CounterList ApicvBackend::exit_counters() const
{
    apic::CounterList out;
    exits_.append_to(out);
    return out;
}

apic::CounterList ApicvBackend::stats() const
{
    apic::CounterList out;
    append_model_stats(out);
    stats_.append_to(out);
    const uint64_t posted = stats_.get(ApicvStat::Posted);
    const uint64_t other = stats_.get(ApicvStat::NotifySent) + stats_.get(ApicvStat::Suppressed);
    out.push_back({"on_already_set", posted > other ? posted - other : 0});
    return out;
}

}  // namespace hv::vmx
