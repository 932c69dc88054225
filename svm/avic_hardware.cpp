// AvicVm, hardware half: the AVIC IPI engine — what the CPU does on an accelerated ICR-low write
// (the doorbell it rings is AvicVm::ring_doorbell, avic_vm.cpp).
//
// APM Vol2 15.29.4.3 "Interprocessor Interrupts" / 15.29.9.1 "AVIC IPI Delivery Not Completed":
// 1. only fixed, edge-triggered messages are virtualised (else cause 0, invalid interrupt type);
//    a vector 0-15 is cause 4;
// 2. the destination is looked up: self shorthand without the tables; broadcasts through every
//    valid physical entry (invalid entries are skipped silently — a real-part behaviour software
//    works around by keeping an entry for every vCPU); physical through the physical table
//    (index beyond the max index or entry not valid: cause 2; backing page not valid: cause 3);
//    logical through the logical table (one invalid logical entry fails the whole IPI: cause 2);
// 3. for each target the IRR bit is set in its backing page; if IsRunning, the doorbell is rung;
//    if any target was not running, AVIC_INCOMPLETE_IPI cause 1 is taken after delivering to
//    every target (the hypervisor then only wakes them).
#include "svm/avic_vm.hpp"

#include <bit>

namespace hv::svm {

std::optional<IpiFailure> AvicVm::check_physical(uint32_t index) const
{
    if (index > max_index()) {
        return IpiFailure::InvalidTarget;
    }
    const PhysicalEntry e = decode_physical(phys_->entry[index].load(std::memory_order_acquire));
    if (!e.valid) {
        return IpiFailure::InvalidTarget;
    }
    if (!vcpu_at_frame(e.frame)) {
        return IpiFailure::InvalidBackingPage;
    }
    return std::nullopt;
}

void AvicVm::broadcast_targets(std::size_t sender, bool include_self,
                               std::vector<uint32_t>& t) const
{
    for (uint32_t i = 0; i <= max_index(); ++i) {
        const PhysicalEntry e = decode_physical(phys_->entry[i].load(std::memory_order_acquire));
        const auto v = e.valid ? vcpu_at_frame(e.frame) : std::nullopt;
        if (v && (include_self || *v != sender)) {
            t.push_back(i);
        }
    }
}

std::optional<IpiFailure> AvicVm::lookup_logical(const apic::Ipi& ipi, std::size_t sender,
                                                 std::vector<uint32_t>& targets,
                                                 uint32_t& index) const
{
    const uint32_t dest = ipi.dest.dest;
    if (ipi.dest.x2apic_format) {
        // APM Vol2 15.29.10 "x2AVIC": no logical table; the x2APIC logical ID is derived from the
        // physical ID (SDM Vol3 11.12.10.2), so cluster:bit names physical ID (cluster << 4) | bit.
        const uint32_t cluster = dest >> 16;
        for (uint32_t bits = dest & 0xFFFFu; bits != 0; bits &= bits - 1) {
            const uint32_t p = (cluster << 4) | static_cast<uint32_t>(std::countr_zero(bits));
            index = p;
            if (auto f = check_physical(p)) {
                return f;
            }
            targets.push_back(p);
        }
        return std::nullopt;
    }
    // xAPIC: the sender's DFR (in its backing page) selects the flat or cluster model.
    const uint32_t model = pages_[sender]->load(apic::reg::kDfr) >> 28;
    const uint32_t mda = dest & 0xFFu;
    std::vector<uint32_t> lidx;
    if (model == 0xF) {
        for (uint32_t bits = mda; bits != 0; bits &= bits - 1) {
            lidx.push_back(flat_index(static_cast<unsigned>(std::countr_zero(bits))));
        }
    } else if (model == 0x0) {
        const uint32_t cluster = mda >> 4;
        if (cluster > logical::kMaxCluster) {
            index = cluster_index(cluster, 0);
            return IpiFailure::InvalidTarget;
        }
        for (uint32_t bits = mda & 0xFu; bits != 0; bits &= bits - 1) {
            lidx.push_back(cluster_index(cluster, static_cast<unsigned>(std::countr_zero(bits))));
        }
    } else {
        return IpiFailure::InvalidTarget;
    }
    // Validate every logical target before delivering to any: one invalid entry fails the IPI.
    for (uint32_t l : lidx) {
        index = l;
        const uint32_t e = logical_->entry[l].load(std::memory_order_acquire);
        if ((e & logical::kValid) == 0) {
            return IpiFailure::InvalidTarget;
        }
        const uint32_t p = e & logical::kGuestIdMask;
        if (auto f = check_physical(p)) {
            return f;
        }
        targets.push_back(p);
    }
    return std::nullopt;
}

std::optional<IpiFailure> AvicVm::lookup(std::size_t sender, const apic::Ipi& ipi,
                                         std::vector<uint32_t>& targets, uint32_t& index) const
{
    switch (ipi.dest.shorthand) {
    case apic::Shorthand::AllIncludingSelf:
        broadcast_targets(sender, true, targets);
        return std::nullopt;
    case apic::Shorthand::AllExcludingSelf:
        broadcast_targets(sender, false, targets);
        return std::nullopt;
    case apic::Shorthand::Self:
    case apic::Shorthand::None:
        break;
    }
    const uint32_t dest = ipi.dest.dest;
    const bool x2 = ipi.dest.x2apic_format;
    if (x2 ? dest == 0xFFFFFFFFu : (dest & 0xFFu) == 0xFFu) {
        broadcast_targets(sender, true, targets);  // destination all ones: broadcast
        return std::nullopt;
    }
    if (ipi.dest.mode == apic::DestMode::Logical) {
        return lookup_logical(ipi, sender, targets, index);
    }
    const uint32_t p = x2 ? dest : (dest & 0xFFu);
    index = p;
    if (auto f = check_physical(p)) {
        return f;
    }
    targets.push_back(p);
    return std::nullopt;
}

IpiOutcome AvicVm::hardware_ipi(std::size_t sender, const apic::Ipi& ipi)
{
    IpiOutcome out;
    if (ipi.mode != apic::DeliveryMode::Fixed || ipi.trigger != apic::Trigger::Edge) {
        out.failure = IpiFailure::InvalidIntType;
        return out;
    }
    if (!apic::is_legal_vector(ipi.vector)) {
        out.failure = IpiFailure::InvalidVector;
        return out;
    }
    if (ipi.dest.shorthand == apic::Shorthand::Self) {
        // Self-IPIs need no table and no doorbell (also in erratum 1235 mode).
        const bool fresh = post_to_backing_page(*pages_[sender], ipi.vector);
        stats(sender).add(fresh ? AvicStat::IpiSelf : AvicStat::PostedCoalesced);
        out.delivered = 1;
        return out;
    }
    std::vector<uint32_t> targets;
    uint32_t index = 0;
    if (auto f = lookup(sender, ipi, targets, index)) {
        out.failure = f;
        out.index = index & 0x1FFu;
        return out;
    }
    std::optional<uint32_t> not_running;
    for (uint32_t t : targets) {
        const auto v = vcpu_at_frame(decode_physical(phys_->entry[t].load()).frame);
        if (!v) {
            continue;  // changed under us: the hypervisor moved the entry (a guest ID write)
        }
        const bool fresh = post_to_backing_page(*pages_[*v], ipi.vector);
        stats(*v).add(fresh ? AvicStat::PostedIpi : AvicStat::PostedCoalesced);
        ++out.delivered;
        if (*v == sender) {
            continue;  // the sender is running and sees its own IRR
        }
        // IsRunning is read after the IRR bit is set (seq_cst both): a target that clears
        // IsRunning and then checks its IRR before sleeping cannot miss this bit.
        if ((phys_->entry[t].load(std::memory_order_seq_cst) & phys::kIsRunning) != 0) {
            ring_doorbell(*v);
            ++out.doorbells;
        } else if (!not_running) {
            not_running = t;
        }
    }
    if (not_running) {
        out.failure = IpiFailure::TargetNotRunning;
        out.index = *not_running & 0x1FFu;
    }
    return out;
}

}  // namespace hv::svm
