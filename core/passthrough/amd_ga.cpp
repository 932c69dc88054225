// `avic` backend: device MSIs through the AMD IOMMU in GA mode (iommu/amd_remapper).
//
// The device (requester ID = device ID) has an interrupt table of 2^n entries, the smallest
// that holds its MSI-X table (8 for the irq device, 32 for an NVMe controller); MSI-X entry n
// writes MSI data n (AMD IOMMU 2.2.5: data[10:0] is the IRTE offset). A guest message that names
// one vCPU with fixed/lowest-priority delivery gets a GuestMode (vAPIC) IRTE: GA root pointer =
// the vCPU's backing page, GATag = the vCPU index, Dest = its host APIC ID, IsRun mirrored from
// the vCPU on every load/put/block (AvicVm's running hook; Linux avic_update_iommu_vcpu_affinity
// and amd_iommu_update_ga). The IOMMU then sets the IRR bit and rings the doorbell, or — the vCPU
// not running — writes a GA log entry whose interrupt this file handles by waking the vCPU named
// by the GATag. Anything else gets a remapped (GuestMode = 0) IRTE to a host vector.
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "core/interrupts/interrupts.hpp"
#include "core/passthrough/paths.hpp"
#include "core/passthrough/remapping.hpp"
#include "iommu/amd_remapper.hpp"
#include "svm/avic_vm.hpp"

namespace hv {

namespace {

// IntTabLen: the table holds 2^n entries, n at most 11 (APM Vol2 table "DTE fields"); the
// smallest table that holds every MSI-X entry of the device.
constexpr unsigned kMaxIntTabLen = 11;
unsigned int_tab_len(unsigned entries)
{
    unsigned n = 0;
    while ((1u << n) < entries)
        ++n;
    return n;
}

class AmdGaPath final : public InterruptRemapping, private iommu::GaSink {
  public:
    AmdGaPath(const RemappingContext& ctx, svm::AvicVm& avic)
        : ctx_(ctx), avic_(avic), unit_(config(), *this), host_(ctx.interrupts),
          targets_(ctx.entries)
    {
        check_entries(ctx);
        if (int_tab_len(ctx.entries) > kMaxIntTabLen)
            throw std::invalid_argument("too many MSI-X entries for the interrupt table");
        avic_.on_running_change([this](std::size_t vcpu, bool running, uint32_t host) {
            vcpu_moved(vcpu, running, host);
        });
    }

    std::string_view path() const override { return "amd ga"; }

    void program(std::uint16_t source_id, unsigned entry, const dev::MsixEntry& guest) override
    {
        if (entry >= ctx_.entries)
            return;
        ensure_table(source_id);
        std::lock_guard lk(mu_);
        iommu::AmdGaIrte irte = build(entry, guest);
        iommu::AmdGaIrte cur{};
        if (auto e = unit_.entry(source_id, entry))
            cur = *e;
        while (!unit_.compare_exchange(source_id, entry, cur, irte)) {
        }
        programmed_.fetch_add(1, std::memory_order_relaxed);
    }

    void send(std::uint16_t source_id, unsigned entry) override
    {
        iommu::AmdRemapResult r = unit_.remap(source_id, {0xFEE0'0000, entry});
        if (r.outcome == iommu::AmdOutcome::Remapped)
            host_.handle(r.message.vector);
    }

    apic::CounterList counters() const override
    {
        apic::CounterList out = unit_.counters();
        out.push_back({"irte_programmed", programmed_.load()});
        out.push_back({"ga_log_wakeups", ga_wakeups_.load()});
        out.push_back({"host_vector_delivered", host_.delivered()});
        out.push_back({"event_records", unit_.events().size() + unit_.event_overflows()});
        return out;
    }

  private:
    static iommu::AmdConfig config()
    {
        iommu::AmdConfig c;
        c.ga_mode = true;
        c.x2apic = true;
        return c;
    }

    void ensure_table(std::uint16_t device_id)
    {
        std::lock_guard lk(mu_);
        if (unit_.table_size(device_id) == 0) {
            unit_.set_table(device_id, int_tab_len(ctx_.entries));
            device_id_ = device_id;
        }
    }

    // Caller holds mu_ (targets_ and the IsRun snapshot must agree with the entry written).
    iommu::AmdGaIrte build(unsigned entry, const dev::MsixEntry& guest)
    {
        targets_[entry].reset();
        auto msg = guest_message(guest);
        if (!msg) {
            host_.set(entry, std::nullopt);
            return {};  // RemapEn = 0: the device's requests are IO_PAGE_FAULT events
        }
        if (auto target = posting_target(ctx_.interrupts, *msg)) {
            iommu::AmdGaVapicIrte v;
            v.remap_en = true;
            v.ga_log_intr = true;
            v.is_run = avic_.in_guest(*target);
            v.dest = avic_.host_apic_id(*target);
            v.ga_tag = static_cast<uint32_t>(*target);
            v.vector = msg->vector;
            v.ga_root_ptr = svm::AvicVm::backing_frame(*target);
            targets_[entry] = *target;
            host_.set(entry, std::nullopt);
            return v.encode();
        }
        iommu::AmdGaRemapIrte r;
        r.remap_en = true;
        r.vector = host_.set(entry, msg);
        r.dest = 0;
        return r.encode();
    }

    // AvicVm's running hook (vCPU thread, no lock held by the caller).
    void vcpu_moved(std::size_t vcpu, bool running, uint32_t host)
    {
        std::lock_guard lk(mu_);
        for (unsigned e = 0; e < targets_.size(); ++e)
            if (targets_[e] == vcpu)
                unit_.set_is_run(device_id_, e, running, host);
    }

    // GaSink.
    svm::BackingPage* page_at(uint64_t frame) override
    {
        auto v = avic_.vcpu_at_frame(frame);
        return v ? &avic_.backing_page(*v) : nullptr;
    }
    void doorbell(uint32_t dest) override
    {
        // The doorbell reaches a host CPU; whichever vCPU is loaded there re-evaluates its IRR.
        for (std::size_t v = 0; v < avic_.vcpus(); ++v)
            if (avic_.host_apic_id(v) == dest && avic_.in_guest(v))
                avic_.doorbell(v);
    }
    // The GA log interrupt's handler (Linux amd_iommu_int_thread -> avic_ga_log_notifier).
    void ga_log_interrupt() override
    {
        for (const auto& e : unit_.drain_ga_log()) {
            if (e.ga_tag < avic_.vcpus()) {
                ga_wakeups_.fetch_add(1, std::memory_order_relaxed);
                avic_.wake(e.ga_tag);
            }
        }
    }

    RemappingContext ctx_;
    svm::AvicVm& avic_;
    iommu::AmdRemapper unit_;
    HostVectors host_;
    std::mutex mu_;  // guards targets_, device_id_ and IRTE programming
    std::vector<std::optional<std::size_t>> targets_;  // entry -> the vCPU it posts to
    std::uint16_t device_id_ = 0;
    std::atomic<std::uint64_t> programmed_{0}, ga_wakeups_{0};
};

}  // namespace

std::unique_ptr<InterruptRemapping> make_amd_ga_remapping(const RemappingContext& ctx,
                                                          svm::AvicVm& avic)
{
    return std::make_unique<AmdGaPath>(ctx, avic);
}

}  // namespace hv
