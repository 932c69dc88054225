#include "iommu/amd_remapper.hpp"

#include <stdexcept>

namespace hv::iommu {

namespace {

AmdGaIrte unpack(u128 v)
{
    return AmdGaIrte{lo_of(v), hi_of(v)};
}
u128 pack(const AmdGaIrte& e)
{
    return make_u128(e.lo, e.hi);
}

}  // namespace

AmdRemapper::AmdRemapper(const AmdConfig& config, GaSink& sink) : cfg_(config), sink_(sink)
{
    if (config.ga_log_size == 0 || config.event_log_size == 0) {
        throw std::invalid_argument("AMD IOMMU: GA log and event log need at least one entry");
    }
}

bool AmdRemapper::set_table(uint16_t device_id, unsigned int_tab_len)
{
    if (int_tab_len > amd::kMaxIntTabLen) {
        return false;
    }
    Table t;
    t.n = std::size_t{1} << int_tab_len;
    t.e = std::make_unique<Atomic128[]>(t.n);
    std::unique_lock lock(tables_mu_);
    tables_[device_id] = std::move(t);
    return true;
}

void AmdRemapper::remove_table(uint16_t device_id)
{
    std::unique_lock lock(tables_mu_);
    tables_.erase(device_id);
}

std::size_t AmdRemapper::table_size(uint16_t device_id) const
{
    std::shared_lock lock(tables_mu_);
    const auto it = tables_.find(device_id);
    return it == tables_.end() ? 0 : it->second.n;
}

Atomic128* AmdRemapper::slot(uint16_t device_id, std::size_t index) const
{
    const auto it = tables_.find(device_id);
    if (it == tables_.end() || index >= it->second.n) {
        return nullptr;
    }
    return &it->second.e[index];
}

bool AmdRemapper::set_legacy_entry(uint16_t device_id, std::size_t index, uint32_t raw)
{
    std::shared_lock lock(tables_mu_);
    Atomic128* s = cfg_.ga_mode ? nullptr : slot(device_id, index);
    if (s == nullptr) {
        return false;
    }
    s->store(make_u128(raw, 0));
    return true;
}

bool AmdRemapper::set_entry(uint16_t device_id, std::size_t index, const AmdGaIrte& e)
{
    std::shared_lock lock(tables_mu_);
    Atomic128* s = cfg_.ga_mode ? slot(device_id, index) : nullptr;
    if (s == nullptr) {
        return false;
    }
    s->store(pack(e));
    return true;
}

std::optional<uint32_t> AmdRemapper::legacy_entry(uint16_t device_id, std::size_t index) const
{
    std::shared_lock lock(tables_mu_);
    Atomic128* s = cfg_.ga_mode ? nullptr : slot(device_id, index);
    if (s == nullptr) {
        return std::nullopt;
    }
    return static_cast<uint32_t>(lo_of(s->load()));
}

std::optional<AmdGaIrte> AmdRemapper::entry(uint16_t device_id, std::size_t index) const
{
    std::shared_lock lock(tables_mu_);
    Atomic128* s = cfg_.ga_mode ? slot(device_id, index) : nullptr;
    if (s == nullptr) {
        return std::nullopt;
    }
    return unpack(s->load());
}

bool AmdRemapper::compare_exchange(uint16_t device_id, std::size_t index, AmdGaIrte& expected,
                                   const AmdGaIrte& desired)
{
    std::shared_lock lock(tables_mu_);
    Atomic128* s = cfg_.ga_mode ? slot(device_id, index) : nullptr;
    if (s == nullptr) {
        return false;
    }
    u128 exp = pack(expected);
    const bool ok = s->compare_exchange(exp, pack(desired));
    expected = unpack(exp);
    return ok;
}

bool AmdRemapper::set_is_run(uint16_t device_id, std::size_t index, bool running, uint32_t dest)
{
    std::shared_lock lock(tables_mu_);
    Atomic128* s = cfg_.ga_mode ? slot(device_id, index) : nullptr;
    if (s == nullptr) {
        return false;
    }
    u128 cur = s->load();
    for (;;) {
        const AmdGaIrte e = unpack(cur);
        if (!is_guest_mode(e)) {
            return false;
        }
        if (s->compare_exchange(cur, pack(with_is_run(e, running, dest)))) {
            return true;
        }
    }
}

AmdRemapResult AmdRemapper::block(AmdRemapResult r, AmdEventCode code, uint16_t flags,
                                  uint16_t device_id, const MsiMessage& msi, bool suppress)
{
    r.outcome = AmdOutcome::Blocked;
    r.event = code;
    stats_.add(IommuStat::Faulted);
    if (suppress) {
        return r;  // SupIOPF: target abort without an IO_PAGE_FAULT event
    }
    std::lock_guard lock(log_mu_);
    if (events_.size() >= cfg_.event_log_size) {
        ++event_overflows_;  // EventOverflow
        return r;
    }
    events_.push_back(AmdEvent{code, device_id, flags, r.index, msi});
    r.logged = true;
    return r;
}

AmdRemapResult AmdRemapper::remap(uint16_t device_id, const MsiMessage& msi)
{
    AmdRemapResult r;
    if (check_interrupt_address(msi.address)) {
        stats_.add(IommuStat::Faulted);
        return r;
    }
    r.index = msi.data & amd::kIndexMask;
    u128 raw = 0;
    {
        std::shared_lock lock(tables_mu_);
        const auto it = tables_.find(device_id);
        if (it == tables_.end()) {
            lock.unlock();
            return block(r, AmdEventCode::IllegalDevTableEntry, amd_event::kInterrupt, device_id,
                         msi, false);
        }
        if (r.index >= it->second.n) {
            lock.unlock();
            return block(r, AmdEventCode::IoPageFault, amd_event::kInterrupt, device_id, msi,
                         false);
        }
        raw = it->second.e[r.index].load();
    }
    return cfg_.ga_mode ? remap_ga(r, unpack(raw), device_id, msi)
                        : remap_legacy(r, static_cast<uint32_t>(lo_of(raw)), device_id, msi);
}

AmdRemapResult AmdRemapper::remap_legacy(AmdRemapResult r, uint32_t raw, uint16_t device_id,
                                         const MsiMessage& msi)
{
    const bool sup = (raw & amd::kSupIopf) != 0;
    if ((raw & amd::kRemapEn) == 0) {
        return block(r, AmdEventCode::IoPageFault, amd_event::kInterrupt, device_id, msi, sup);
    }
    const auto d = AmdLegacyIrte::decode(raw);
    if (!d) {
        return block(r, AmdEventCode::IoPageFault,
                     amd_event::kInterrupt | amd_event::kReservedNotZero, device_id, msi, sup);
    }
    r.outcome = AmdOutcome::Remapped;
    r.message = to_message(d.value);
    // The IRTE has no trigger mode: the request's own (MSI data bit 15) is kept.
    r.message.trigger =
        (msi.data & msi::kTriggerLevel) != 0 ? apic::Trigger::Level : apic::Trigger::Edge;
    stats_.add(IommuStat::Remapped);
    return r;
}

AmdRemapResult AmdRemapper::remap_ga(AmdRemapResult r, const AmdGaIrte& e, uint16_t device_id,
                                     const MsiMessage& msi)
{
    const bool sup = (e.lo & amd::kSupIopf) != 0;
    if ((e.lo & amd::kRemapEn) == 0) {
        return block(r, AmdEventCode::IoPageFault, amd_event::kInterrupt, device_id, msi, sup);
    }
    const uint16_t rz = amd_event::kInterrupt | amd_event::kReservedNotZero;
    if (is_guest_mode(e)) {
        const auto v = AmdGaVapicIrte::decode(e);
        if (!v) {
            return block(r, AmdEventCode::IoPageFault, rz, device_id, msi, sup);
        }
        return post_guest(r, v.value, device_id, msi);
    }
    const auto d = AmdGaRemapIrte::decode(e);
    if (!d) {
        return block(r, AmdEventCode::IoPageFault, rz, device_id, msi, sup);
    }
    r.outcome = AmdOutcome::Remapped;
    r.message = to_message(d.value, cfg_.x2apic);
    r.message.trigger =
        (msi.data & msi::kTriggerLevel) != 0 ? apic::Trigger::Level : apic::Trigger::Edge;
    stats_.add(IommuStat::Remapped);
    return r;
}

AmdRemapResult AmdRemapper::post_guest(AmdRemapResult r, const AmdGaVapicIrte& v,
                                       uint16_t device_id, const MsiMessage& msi)
{
    svm::BackingPage* page = sink_.page_at(v.ga_root_ptr);
    if (page == nullptr) {
        return block(r, AmdEventCode::IoPageFault, amd_event::kInterrupt, device_id, msi,
                     v.sup_iopf);
    }
    if (!apic::is_legal_vector(v.vector)) {
        // svm::post_to_backing_page refuses vectors 0-15; no event is defined for it.
        r.outcome = AmdOutcome::Blocked;
        stats_.add(IommuStat::Faulted);
        return r;
    }
    r.outcome = AmdOutcome::GuestPosted;
    r.vapic = v;
    // AMD IOMMU 2.2.5.2: set the IRR bit (a locked OR, svm/backing_page.hpp), then notify.
    r.coalesced = !svm::post_to_backing_page(*page, v.vector);
    stats_.add(IommuStat::Posted);
    if (r.coalesced) {
        stats_.add(IommuStat::Coalesced);
    }
    if (v.is_run) {
        sink_.doorbell(v.dest);
        r.doorbell = true;
        stats_.add(IommuStat::Doorbells);
    } else if (v.ga_log_intr) {
        append_ga_log(r, AmdGaLogEntry{v.ga_tag, device_id, amd::kGaGuestNr});
    }
    return r;
}

void AmdRemapper::append_ga_log(AmdRemapResult& r, const AmdGaLogEntry& entry)
{
    {
        std::lock_guard lock(log_mu_);
        if (ga_log_.size() >= cfg_.ga_log_size) {
            ga_overflow_ = true;
            ++ga_dropped_;
            r.ga_log_overflow = true;
        } else {
            ga_log_.push_back(entry);
            r.ga_logged = true;
        }
    }
    if (r.ga_logged) {
        stats_.add(IommuStat::GaLogged);
    }
    // Raise the GA log interrupt unless one is already pending (drain_ga_log re-arms it). An
    // overflow raises it too, so the hypervisor learns that entries were lost.
    if (!ga_int_pending_.exchange(true, std::memory_order_seq_cst)) {
        sink_.ga_log_interrupt();
    }
}

std::vector<AmdGaLogEntry> AmdRemapper::drain_ga_log()
{
    // Re-arm first: an entry appended after the swap below raises a new interrupt.
    ga_int_pending_.store(false, std::memory_order_seq_cst);
    std::lock_guard lock(log_mu_);
    std::vector<AmdGaLogEntry> out;
    out.swap(ga_log_);
    return out;
}

bool AmdRemapper::ga_log_overflow() const
{
    std::lock_guard lock(log_mu_);
    return ga_overflow_;
}

void AmdRemapper::clear_ga_log_overflow()
{
    std::lock_guard lock(log_mu_);
    ga_overflow_ = false;
}

uint64_t AmdRemapper::ga_log_dropped() const
{
    std::lock_guard lock(log_mu_);
    return ga_dropped_;
}

std::vector<AmdEvent> AmdRemapper::events() const
{
    std::lock_guard lock(log_mu_);
    return events_;
}

std::vector<AmdEvent> AmdRemapper::take_events()
{
    std::lock_guard lock(log_mu_);
    std::vector<AmdEvent> out;
    out.swap(events_);
    return out;
}

uint64_t AmdRemapper::event_overflows() const
{
    std::lock_guard lock(log_mu_);
    return event_overflows_;
}

apic::CounterList AmdRemapper::counters() const
{
    apic::CounterList out;
    stats_.append_to(out);
    return out;
}

}  // namespace hv::iommu
