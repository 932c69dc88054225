#include "iommu/vtd_remapper.hpp"

#include <stdexcept>

namespace hv::iommu {

namespace {

u128 pack(const VtdIrte& e)
{
    return make_u128(e.lo, e.hi);
}
VtdIrte unpack(u128 v)
{
    return VtdIrte{lo_of(v), hi_of(v)};
}

}  // namespace

VtdRemapper::VtdRemapper(const VtdConfig& config, PostingSink& sink)
    : cfg_(config), sink_(sink), n_(std::size_t{1} << (config.size_log2 & 31u))
{
    if (config.size_log2 < 1 || config.size_log2 > 16) {
        throw std::invalid_argument("VT-d remapping table: size_log2 must be 1..16 (IRTA.S + 1)");
    }
    if (config.fault_log_size == 0) {
        throw std::invalid_argument("VT-d remapping table: fault log size must be at least 1");
    }
    table_ = std::make_unique<Atomic128[]>(n_);
    log_.reserve(config.fault_log_size);
}

bool VtdRemapper::set_entry(std::size_t index, const VtdIrte& e)
{
    if (index >= n_) {
        return false;
    }
    table_[index].store(pack(e));
    return true;
}

VtdIrte VtdRemapper::entry(std::size_t index) const
{
    return index < n_ ? unpack(table_[index].load()) : VtdIrte{};
}

bool VtdRemapper::compare_exchange(std::size_t index, VtdIrte& expected, const VtdIrte& desired)
{
    if (index >= n_) {
        return false;
    }
    u128 exp = pack(expected);
    const bool ok = table_[index].compare_exchange(exp, pack(desired));
    expected = unpack(exp);
    return ok;
}

VtdRemapResult VtdRemapper::block(VtdRemapResult r, VtdFault f, uint16_t sid, const MsiMessage& msi,
                                  bool fpd)
{
    r.outcome = VtdOutcome::Blocked;
    r.fault = f;
    stats_.add(IommuStat::Faulted);
    // VT-d 7.1.1: FPD = 1 suppresses recording of qualified faults only.
    if (fpd && is_qualified(f)) {
        return r;
    }
    std::lock_guard lock(log_mu_);
    if (log_.size() >= cfg_.fault_log_size) {
        ++overflows_;
        return r;
    }
    log_.push_back(VtdFaultRecord{f, sid, r.index, msi});
    r.recorded = true;
    return r;
}

VtdRemapResult VtdRemapper::remap(uint16_t source_id, const MsiMessage& msi)
{
    VtdRemapResult r;
    if (check_interrupt_address(msi.address)) {
        return block(r, VtdFault::RequestReserved, source_id, msi, false);
    }
    if (!is_remappable(msi)) {
        if (!cfg_.compat_passthrough) {
            return block(r, VtdFault::CompatBlocked, source_id, msi, false);
        }
        const auto c = CompatMsi::decode(msi);
        if (!c) {
            r.outcome = VtdOutcome::Blocked;  // a reserved delivery mode: no VT-d fault applies
            stats_.add(IommuStat::Faulted);
            return r;
        }
        r.outcome = VtdOutcome::Compat;
        r.message = to_message(c.value);
        stats_.add(IommuStat::Remapped);
        return r;
    }
    const auto req = RemappableMsi::decode(msi);
    if (!req) {
        return block(r, VtdFault::RequestReserved, source_id, msi, false);
    }
    r.index = req.value.interrupt_index();
    if (r.index >= n_) {
        return block(r, VtdFault::IndexBeyond, source_id, msi, false);
    }
    const VtdIrte e = unpack(table_[r.index].load());
    const bool fpd = fault_processing_disabled(e);
    if (!is_present(e)) {
        return block(r, VtdFault::NotPresent, source_id, msi, fpd);
    }
    if (is_posted(e)) {
        const auto p = VtdPostedIrte::decode(e);
        if (!p || !cfg_.posting) {
            return block(r, VtdFault::IrteReserved, source_id, msi, fpd);
        }
        if (!verify_source(p.value.source, source_id)) {
            return block(r, VtdFault::SidMismatch, source_id, msi, fpd);
        }
        return deliver_posted(r, p.value, source_id, msi);
    }
    const auto d = VtdRemappedIrte::decode(e, cfg_.x2apic_mode);
    if (!d) {
        return block(r, VtdFault::IrteReserved, source_id, msi, fpd);
    }
    if (!verify_source(d.value.source, source_id)) {
        return block(r, VtdFault::SidMismatch, source_id, msi, fpd);
    }
    r.outcome = VtdOutcome::Remapped;
    r.remapped = d.value;
    r.message = to_message(d.value, cfg_.x2apic_mode);
    stats_.add(IommuStat::Remapped);
    return r;
}

VtdRemapResult VtdRemapper::deliver_posted(VtdRemapResult r, const VtdPostedIrte& p, uint16_t sid,
                                           const MsiMessage& msi)
{
    vmx::PostedInterruptDescriptor* pid = sink_.pid_at(p.pda);
    if (pid == nullptr) {
        return block(r, VtdFault::PidAccess, sid, msi, p.fpd);
    }
    r.outcome = VtdOutcome::Posted;
    r.posted = p;
    // VT-d 9.12: PIR bit, then ON unless SN — the protocol vmx::post() implements for CPUs too.
    r.post = vmx::post(*pid, p.vector);
    stats_.add(IommuStat::Posted);
    if (r.post.coalesced) {
        stats_.add(IommuStat::Coalesced);
    }
    if (r.post.suppressed) {
        stats_.add(IommuStat::Suppressed);
        // VT-d 9.12: an urgent entry (URG = 1) notifies even while SN is set: "if ON is clear
        // and (URG or not SN), set ON and generate a notification event".
        if (p.urgent && vmx::set_on(*pid)) {
            const uint64_t c = pid->load_control();
            r.post.notify = true;
            r.post.nv = vmx::pid::nv_of(c);
            r.post.ndst = vmx::pid::ndst_of(c);
        }
    }
    if (r.post.notify) {
        sink_.notify(*pid, r.post);
        r.notified = true;
        stats_.add(IommuStat::Notified);
    }
    return r;
}

std::vector<VtdFaultRecord> VtdRemapper::faults() const
{
    std::lock_guard lock(log_mu_);
    return log_;
}

std::vector<VtdFaultRecord> VtdRemapper::take_faults()
{
    std::lock_guard lock(log_mu_);
    std::vector<VtdFaultRecord> out;
    out.swap(log_);
    log_.reserve(cfg_.fault_log_size);
    return out;
}

uint64_t VtdRemapper::fault_overflows() const
{
    std::lock_guard lock(log_mu_);
    return overflows_;
}

apic::CounterList VtdRemapper::counters() const
{
    apic::CounterList out;
    stats_.append_to(out);
    return out;
}

}  // namespace hv::iommu
