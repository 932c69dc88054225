// `apicv` and `emulated` backends: device MSIs through the VT-d remapping unit (iommu/).
//
// Each MSI-X entry of the device owns IRTE `entry`; the device writes the remappable-format MSI
// naming it (handle = entry, no subhandle), with its requester ID checked (SVT 01b, SQ 00b).
// - apicv with posted interrupts: a message that names one vCPU with fixed or lowest-priority
//   edge delivery becomes a posted IRTE (IM = 1) whose PDA is that vCPU's descriptor: the unit
//   posts and notifies through ApicvVm (VT-d 9.12), as vmx_pi_update_irte arranges on Linux.
// - anything else (emulated, apicv,nopi, multicast, NMI, level): a remapped IRTE (IM = 0) to a
//   host vector of this VM; the host vector's handler delivers the guest's own message through
//   the interrupt fabric — the software path a VMM without posting takes.
// A guest message that is not an MSI at all leaves the IRTE not present: the device's request is
// then blocked with fault 22h and counted, the way a real unit drops it.
#include <fmt/format.h>

#include <atomic>
#include <stdexcept>

#include "core/interrupts/interrupts.hpp"
#include "core/passthrough/paths.hpp"
#include "core/passthrough/remapping.hpp"
#include "iommu/msi.hpp"
#include "iommu/vtd_remapper.hpp"
#include "vmx/apicv_vm.hpp"

namespace hv {

namespace {

class VtdPath final : public InterruptRemapping, private iommu::PostingSink {
  public:
    // `apicv`: the descriptors to post to; none for the remapped-only path.
    VtdPath(const RemappingContext& ctx, vmx::ApicvVm* apicv)
        : ctx_(ctx), apicv_(apicv), posting_(apicv && apicv->options().posted_interrupts),
          unit_(config(posting_), *this), host_(ctx.interrupts)
    {
        check_entries(ctx);
        if (ctx.entries > unit_.size())
            throw std::invalid_argument("too many MSI-X entries for the remapping table");
    }

    std::string_view path() const override { return posting_ ? "vt-d posted" : "vt-d remapped"; }

    void program(std::uint16_t source_id, unsigned entry, const dev::MsixEntry& guest) override
    {
        if (entry >= ctx_.entries)
            return;
        iommu::VtdIrte irte = build(source_id, entry, guest);
        // An entry that is or becomes posted is replaced with a 128-bit compare-exchange
        // (VT-d 9.10/9.11); the unit never writes IRTEs, so the loop runs once in practice.
        iommu::VtdIrte cur = unit_.entry(entry);
        while (!unit_.compare_exchange(entry, cur, irte)) {
        }
        programmed_.fetch_add(1, std::memory_order_relaxed);
    }

    void send(std::uint16_t source_id, unsigned entry) override
    {
        iommu::RemappableMsi m;
        m.handle = static_cast<uint16_t>(entry);
        iommu::VtdRemapResult r = unit_.remap(source_id, m.encode());
        if (r.outcome == iommu::VtdOutcome::Remapped)
            host_.handle(r.remapped.vector);
    }

    apic::CounterList counters() const override
    {
        apic::CounterList out = unit_.counters();
        out.push_back({"irte_programmed", programmed_.load()});
        out.push_back({"host_vector_delivered", host_.delivered()});
        out.push_back({"fault_records", unit_.faults().size() + unit_.fault_overflows()});
        return out;
    }

  private:
    static iommu::VtdConfig config(bool posting)
    {
        iommu::VtdConfig c;
        c.size_log2 = 8;
        c.x2apic_mode = true;
        c.compat_passthrough = false;  // every device request must be remappable
        c.posting = posting;
        return c;
    }

    iommu::VtdIrte build(std::uint16_t source_id, unsigned entry, const dev::MsixEntry& guest)
    {
        iommu::VtdSource src{source_id, 0, iommu::VtdSvt::SidSq};
        auto msg = guest_message(guest);
        if (!msg) {
            host_.set(entry, std::nullopt);
            return {};  // not present: the device's requests fault (22h) and are counted
        }
        if (posting_) {
            if (auto target = posting_target(ctx_.interrupts, *msg)) {
                iommu::VtdPostedIrte p;
                p.present = true;
                p.vector = msg->vector;
                p.pda = vmx::ApicvVm::address_of(apicv_->pid(*target));
                p.source = src;
                host_.set(entry, std::nullopt);
                return p.encode();
            }
        }
        // Remapped to a host vector on host CPU 0, whose handler delivers the guest's message.
        iommu::VtdRemappedIrte e;
        e.present = true;
        e.vector = host_.set(entry, msg);
        e.dest = 0;
        e.source = src;
        return e.encode();
    }

    // PostingSink: the unit resolves a PDA to one of this VM's descriptors and sends NV to NDST.
    vmx::PostedInterruptDescriptor* pid_at(uint64_t pda) override { return apicv_->pid_at(pda); }
    void notify(vmx::PostedInterruptDescriptor& pid, const vmx::PostResult& r) override
    {
        if (auto i = apicv_->index_of(&pid))
            apicv_->notify(*i, r);
    }

    RemappingContext ctx_;
    vmx::ApicvVm* apicv_;  // set only when posting_ may be
    bool posting_;
    iommu::VtdRemapper unit_;
    HostVectors host_;
    std::atomic<std::uint64_t> programmed_{0};
};

}  // namespace

std::unique_ptr<InterruptRemapping> make_vtd_remapped(const RemappingContext& ctx)
{
    return std::make_unique<VtdPath>(ctx, nullptr);
}

std::unique_ptr<InterruptRemapping> make_vtd_posted(const RemappingContext& ctx,
                                                    vmx::ApicvVm& apicv)
{
    return std::make_unique<VtdPath>(ctx, &apicv);
}

}  // namespace hv
