#include "apic/destination.hpp"

namespace hv::apic {
namespace {

bool is_broadcast(const Destination& d)
{
    return d.x2apic_format ? d.dest == 0xFFFFFFFFu : (d.dest & 0xFFu) == 0xFFu;
}

bool match_physical(const Destination& d, const DestInfo& t)
{
    if (is_broadcast(d)) {
        return true;
    }
    // SDM Vol3 11.6.2.1 "Physical Destination Mode": an xAPIC-mode APIC compares its 8-bit ID.
    const uint32_t mine = t.x2apic ? t.id : (t.id & 0xFFu);
    const uint32_t dest = d.x2apic_format ? d.dest : (d.dest & 0xFFu);
    return mine == dest;
}

bool match_logical(const Destination& d, const DestInfo& t)
{
    if (is_broadcast(d)) {
        return true;
    }
    if (t.x2apic) {
        // SDM Vol3 11.12.10.1 "Logical Destination Mode in x2APIC Mode".
        return (t.ldr >> 16) == (d.dest >> 16) && (t.ldr & d.dest & 0xFFFFu) != 0;
    }
    const uint32_t logical_id = t.ldr >> 24;
    const uint32_t mda = d.dest & 0xFFu;
    if ((t.dfr >> 28) == 0xFu) {
        // SDM Vol3 11.6.2.2 "Logical Destination Mode", flat model: bitmap of up to 8 APICs.
        return (logical_id & mda) != 0;
    }
    if ((t.dfr >> 28) != 0x0u) {
        return false;  // undefined DFR model: matches nothing
    }
    // Cluster model: high nibble is the cluster, low nibble a bitmap inside it.
    return (logical_id >> 4) == (mda >> 4) && (logical_id & mda & 0xFu) != 0;
}

}  // namespace

bool matches(const Destination& d, const DestInfo& target)
{
    if (!target.enabled) {
        return false;
    }
    return d.mode == DestMode::Physical ? match_physical(d, target) : match_logical(d, target);
}

TargetSet resolve(const Destination& d, std::span<const DestInfo> apics,
                  std::optional<std::size_t> self)
{
    TargetSet out;
    const std::size_t n = apics.size() < kMaxApics ? apics.size() : kMaxApics;
    const bool have_self = self.has_value() && *self < n;
    for (std::size_t i = 0; i < n; ++i) {
        if (!apics[i].enabled) {
            continue;
        }
        const bool is_self = have_self && *self == i;
        switch (d.shorthand) {
        case Shorthand::None:
            out[i] = matches(d, apics[i]);
            break;
        case Shorthand::Self:
            out[i] = is_self;
            break;
        case Shorthand::AllIncludingSelf:
            out[i] = true;
            break;
        case Shorthand::AllExcludingSelf:
            out[i] = !is_self;
            break;
        }
    }
    return out;
}

std::optional<std::size_t> lowest_priority(const TargetSet& candidates,
                                           std::span<const DestInfo> apics)
{
    std::optional<std::size_t> best;
    auto better = [&](std::size_t i) {
        if (!best) {
            return true;
        }
        const DestInfo& a = apics[i];
        const DestInfo& b = apics[*best];
        if (a.sw_enabled != b.sw_enabled) {
            return a.sw_enabled;
        }
        return a.ppr < b.ppr;  // equal PPR keeps the lower index
    };
    const std::size_t n = apics.size() < kMaxApics ? apics.size() : kMaxApics;
    for (std::size_t i = 0; i < n; ++i) {
        if (candidates[i] && better(i)) {
            best = i;
        }
    }
    return best;
}

TargetSet resolve_ipi(const Ipi& ipi, std::span<const DestInfo> apics,
                      std::optional<std::size_t> self)
{
    if (ipi.is_init_deassert()) {
        Destination all = ipi.dest;
        all.shorthand = Shorthand::AllIncludingSelf;
        return resolve(all, apics, self);
    }
    TargetSet set = resolve(ipi.dest, apics, self);
    if (ipi.mode != DeliveryMode::LowestPriority) {
        return set;
    }
    TargetSet one;
    if (auto winner = lowest_priority(set, apics)) {
        one[*winner] = true;
    }
    return one;
}

}  // namespace hv::apic
