#include "core/passthrough/remapping.hpp"

#include "core/interrupts/interrupts.hpp"
#include "core/passthrough/paths.hpp"
#include "iommu/msi.hpp"

namespace hv {

void check_entries(const RemappingContext& ctx)
{
    if (ctx.entries > HostVectors::kMaxEntries)
        throw std::invalid_argument("too many MSI-X entries for the host vectors");
}

std::optional<apic::IoApicMessage> guest_message(const dev::MsixEntry& e)
{
    auto d = iommu::CompatMsi::decode({e.address, e.data});
    if (!d)
        return std::nullopt;
    apic::IoApicMessage m = iommu::to_message(d.value);
    m.trigger = apic::Trigger::Edge;  // an MSI is a single write: edge, whatever bit 15 says
    return m;
}

std::optional<std::size_t> posting_target(Interrupts& irqs, const apic::IoApicMessage& m)
{
    bool mode_ok =
        m.mode == apic::DeliveryMode::Fixed || m.mode == apic::DeliveryMode::LowestPriority;
    if (!mode_ok || m.dest.shorthand != apic::Shorthand::None || !apic::is_legal_vector(m.vector))
        return std::nullopt;
    auto targets = irqs.resolve(m.dest, m.mode);
    if (targets.size() != 1)
        return std::nullopt;
    return targets[0];
}

std::uint8_t HostVectors::set(unsigned entry, std::optional<apic::IoApicMessage> msg)
{
    std::lock_guard lk(mu_);
    msgs_.at(entry) = msg;
    return static_cast<std::uint8_t>(kFirstHostVector + entry);
}

void HostVectors::handle(std::uint8_t vector)
{
    std::optional<apic::IoApicMessage> msg;
    {
        std::lock_guard lk(mu_);
        unsigned entry = vector - kFirstHostVector;
        if (vector >= kFirstHostVector && entry < msgs_.size())
            msg = msgs_[entry];
    }
    if (!msg)
        return;
    delivered_.fetch_add(1, std::memory_order_relaxed);
    irqs_.deliver_msi(*msg);
}

}  // namespace hv
