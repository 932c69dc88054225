// AvicVm: the VM-wide half of the `avic` backend — the physical and logical APIC ID tables, one
// backing page per vCPU, the options, and the parts of the CPU that act across vCPUs (the AVIC
// IPI engine and the doorbell). Per-vCPU state lives in AvicBackend (avic_backend.hpp).
//
// Threads: the tables and backing pages are read and posted to lock-free from any thread (the
// hardware half: atomics, as the CPU and IOMMU use locked accesses). Table maintenance (ID, LDR,
// DFR, mode, IsRunning, host APIC ID) is serialised by `table_mu_`, a leaf lock: nothing is
// called while it is held. Notifications (kick = doorbell, wake) are made without any lock.
//
// Model choices (documented in svm/README.md):
// - backing-page and table "addresses" are model page-frame numbers (kBackingFrameBase + vCPU
//   index; kTableFrameBase, +1 for the two tables); AvicVm resolves them back to the pages;
// - the host physical APIC ID of a vCPU defaults to its index; core may set the real one;
// - the physical table's max index is the mode's limit (0xFE, or 0x1FF with x2AVIC).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "apic/backend.hpp"
#include "apic/counters.hpp"
#include "apic/model_backend.hpp"
#include "svm/apic_id_tables.hpp"
#include "svm/backing_page.hpp"
#include "svm/vmcb.hpp"

namespace hv::svm {

struct AvicOptions {
    bool x2avic = false;  // APM Vol2 15.29.10 "x2AVIC": x2APIC MSRs virtualised, IDs to 0x1FF
    // AMD Family 17h revision guides, erratum 1235: the CPU may read a stale IsRunning = 1 and
    // neither ring the doorbell nor exit; the workaround never sets IsRunning.
    bool erratum_1235 = false;
};

inline constexpr uint64_t kBackingFrameBase = 0x100000;  // model frame of vCPU 0's backing page
inline constexpr uint64_t kTableFrameBase = 0x0FFF00;    // physical table; logical table at +1

// Where the vCPU is, as the hypervisor half knows it (apic/model_backend.hpp).
using Sched = apic::SchedState;

// How a running target is told that its backing page changed: the doorbell the CPU or IOMMU
// rings (no exit; counted "doorbells") or the kick the hypervisor sends after an exit ("kicks").
enum class Signal : uint8_t { Doorbell, Kick };

// Per-vCPU statistics (not exits) kept by the VM so the hardware half can count on the target.
// "kicks" and "wakes" are the vCPU's apic::VcpuSchedule's (also kept by the VM).
enum class AvicStat : uint8_t {
    Doorbells,        // running target notified without an exit (doorbell)
    IpiAccelerated,   // IPIs this vCPU sent that completed without any exit
    IpiSelf,          // accelerated self-IPIs
    IpiSoftware,      // IPIs this vCPU sent that the hypervisor routed (send_ipi)
    PostedIpi,        // IRR bits set in this vCPU's page by the AVIC IPI engine
    PostedDevice,     // IRR bits set by deliver() / post_interrupt() (devices, IOMMU, routed IPIs)
    PostedCoalesced,  // posts that found the IRR bit already set
    Refused,          // posted vectors refused at acceptance (APIC disabled / software disabled)
    Count
};

// The addressing state a vCPU's table entries are built from.
struct Addressing {
    uint32_t id = 0;
    uint32_t ldr = 0;
    uint32_t dfr = 0xFFFFFFFFu;
    bool enabled = false;
    bool x2apic = false;
    bool operator==(const Addressing&) const = default;
};

// What the AVIC IPI engine did with one ICR write (APM Vol2 15.29.4.3 "Interprocessor
// Interrupts"). `failure` set: the CPU took AVIC_INCOMPLETE_IPI with EXITINFO2 = cause:index.
struct IpiOutcome {
    std::optional<IpiFailure> failure;
    uint32_t index = 0;
    unsigned delivered = 0;  // backing pages whose IRR was set
    unsigned doorbells = 0;
};

class AvicVm {
  public:
    // Throws std::invalid_argument for 0 vCPUs or more than the physical table can address.
    AvicVm(std::size_t vcpus, const AvicOptions& options);
    ~AvicVm();
    AvicVm(const AvicVm&) = delete;
    AvicVm& operator=(const AvicVm&) = delete;

    // One backend per vCPU index, created once; the VM must outlive it. Throws
    // std::out_of_range for an index >= vcpus().
    std::unique_ptr<apic::ApicBackend>
    make_backend(std::size_t index, const apic::LocalApicConfig& cfg, apic::GuestClock& clock,
                 apic::ApicPlatform& platform, apic::VcpuNotifier& notifier);

    const AvicOptions& options() const { return opt_; }
    std::size_t vcpus() const { return n_; }
    uint32_t max_index() const { return opt_.x2avic ? phys::kMaxIndexX2avic : phys::kMaxIndexAvic; }

    // --- structures (what a VMCB points at) ---
    BackingPage& backing_page(std::size_t vcpu) { return *pages_[vcpu]; }
    static uint64_t backing_frame(std::size_t vcpu) { return kBackingFrameBase + vcpu; }
    std::optional<std::size_t> vcpu_at_frame(uint64_t frame) const;
    PhysicalEntry physical_entry(uint32_t index) const;
    uint32_t logical_entry(uint32_t index) const;
    uint64_t physical_table_pointer() const;  // VMCB 0xF8: address | max index
    uint64_t logical_table_pointer() const;   // VMCB 0xF0

    // --- hardware half ---
    // The AVIC IPI engine for an ICR (or SELF_IPI) write by `sender`, decoded from the page.
    IpiOutcome hardware_ipi(std::size_t sender, const apic::Ipi& ipi);
    // Post a vector to a vCPU's backing page and notify it as the hypervisor / IOMMU would:
    // doorbell if it is in the guest, wake-up if it is blocked. Returns false if coalesced.
    bool post_interrupt(std::size_t vcpu, uint8_t vector, AvicStat source = AvicStat::PostedDevice);
    // IsRunning of the vCPU's physical table entry (never set in erratum 1235 mode).
    bool is_running(std::size_t vcpu) const;
    // Whether the vCPU is in the guest (what an IOMMU IRTE's IsRun mirrors).
    bool in_guest(std::size_t vcpu) const { return sched(vcpu) == Sched::InGuest; }
    // For the AMD IOMMU's GA mode (iommu/): the table index (guest physical APIC ID) and host
    // APIC ID of a vCPU, the doorbell, and the hypervisor's wake-up (after a GA log entry).
    std::optional<uint32_t> physical_index(std::size_t vcpu) const;
    uint32_t host_apic_id(std::size_t vcpu) const;
    void doorbell(std::size_t vcpu) { ring_doorbell(vcpu); }
    void wake(std::size_t vcpu);
    // Called (no lock held, vCPU thread) whenever a vCPU is loaded or put — where Linux updates
    // the IOMMU IRTEs' IsRun and Dest (avic_update_iommu_vcpu_affinity). Added before vCPUs
    // run; each device's interrupt table adds its own.
    using RunningHook = std::function<void(std::size_t vcpu, bool running, uint32_t host_apic_id)>;
    void on_running_change(RunningHook hook) { running_hooks_.push_back(std::move(hook)); }

    // --- hypervisor half ---
    void set_sched(std::size_t vcpu, Sched s);
    Sched sched(std::size_t vcpu) const;
    // enter_guest/leave_guest: IsRunning and the host APIC ID (APM Vol2 15.29.3.1; Linux
    // avic_vcpu_load / avic_vcpu_put).
    void set_running(std::size_t vcpu, bool running);
    void set_host_apic_id(std::size_t vcpu, uint32_t host_apic_id);
    // Rebuild the vCPU's table entries after an ID / LDR / DFR / mode change.
    void update_addressing(std::size_t vcpu, const Addressing& a);
    // AVIC_INCOMPLETE_IPI cause 1: notify every target of `ipi` (other than the sender) that the
    // hardware could not: wake blocked ones, kick running ones whose IsRunning is clear.
    void complete_not_running(std::size_t sender, const apic::Ipi& ipi);
    // Notify one vCPU after its page changed: doorbell/kick if in guest, wake if blocked.
    void notify(std::size_t vcpu, Signal in_guest);

    apic::CounterTable<AvicStat, static_cast<std::size_t>(AvicStat::Count)>&
    stats(std::size_t vcpu);
    uint64_t stat(std::size_t vcpu, AvicStat s) { return stats(vcpu).get(s); }
    // The vCPU's scheduling state, notifier, kicks and wakes (the AvicBackend's ModelBackend
    // schedule: the hardware half reads it from other vCPUs).
    apic::VcpuSchedule& schedule(std::size_t vcpu);
    // Fault injection: program a raw physical table entry as a buggy hypervisor could (tests of
    // the invalid-target / invalid-backing-page paths). The next table rebuild overwrites it.
    void poke_physical_entry(uint32_t index, uint64_t raw);
    void attach(std::size_t vcpu, apic::VcpuNotifier* notifier);

  private:
    struct Slot;

    void rebuild_locked();
    std::optional<uint32_t> phys_index_locked(const Addressing& a) const;
    void ring_doorbell(std::size_t vcpu);
    // Validates the destination through the tables; fills `targets` with physical indices.
    std::optional<IpiFailure> lookup(std::size_t sender, const apic::Ipi& ipi,
                                     std::vector<uint32_t>& targets, uint32_t& index) const;
    std::optional<IpiFailure> lookup_logical(const apic::Ipi& ipi, std::size_t sender,
                                             std::vector<uint32_t>& targets, uint32_t& index) const;
    std::optional<IpiFailure> check_physical(uint32_t index) const;
    void broadcast_targets(std::size_t sender, bool include_self, std::vector<uint32_t>& t) const;

    std::size_t n_;
    AvicOptions opt_;
    std::vector<std::unique_ptr<BackingPage>> pages_;
    std::unique_ptr<PhysicalIdTable> phys_;
    std::unique_ptr<LogicalIdTable> logical_;
    std::unique_ptr<Slot[]> slots_;
    mutable std::mutex table_mu_;
    std::vector<RunningHook> running_hooks_;
};

}  // namespace hv::svm
