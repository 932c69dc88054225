// ApicvBackend: the `apicv` backend — one vCPU's local APIC under Intel APICv, bit-exact, with
// the architectural VM exits a real CPU would take counted by exit reason.
//
// Two halves that talk only through the architectural structures (virtual-APIC page, VMCS image,
// posted-interrupt descriptor, PID-pointer table):
// - hardware half (apicv_hardware.cpp): what the CPU does in VMX non-root operation — APIC-register
//   virtualization, TPR/PPR/EOI/self-IPI virtualization, virtual-interrupt delivery, posted-
//   interrupt processing, IPI virtualization — and which accesses exit (SDM Vol3 chapter 30,
//   "APIC Virtualization and Virtual Interrupts"; chapter 29 in older editions);
// - hypervisor half (apicv_hypervisor.cpp, apicv_access.cpp, apicv_delivery.cpp,
//   apicv_sched.cpp, apicv_state.cpp): what KVM's vmx.c / posted_intr.c / lapic.c do — APIC-access,
//   APIC-write, EOI-induced, MSR and TPR-below-threshold exits, the EOI-exit bitmap, posting from
//   other threads, NV/NDST/SN on load/put/block, the LAPIC timer.
//
// The registers the hardware does not own (ID, LDR, DFR, SVR, ESR, LVTs, timer) live in an
// apic::LocalApic, the hypervisor's emulation, and are mirrored into the page for APIC-register
// virtualization after every exit that changes them. TPR, PPR, ISR, IRR and ICR live in the page;
// TMR is the hypervisor's (tmr_) and mirrored. The LocalApic's own IRR/ISR/TPR are kept empty:
// whatever it raises (timer, error LVT, accepted interrupts) is drained into VIRR or PIR.
//
// Threads (as apic/backend.hpp): the vCPU thread owns the page and the VMCS image under `mu_`;
// deliver()/timer_fired() post lock-free to the PID (posted interrupts) or take `mu_` (without).
// No lock is held while calling ApicPlatform or VcpuNotifier.
//
// Where the guest can tell apicv from emulated (real APICv behaviour, kept on purpose):
// - xAPIC narrow writes inside a virtualized register (1-2 bytes) are written into the page and
//   emulated from the page's dword; emulated ignores them;
// - VEOI and bits 31:8 of VTPR read back what the guest wrote (flatten() keeps TPR[7:0]);
// - IRR reads show posted vectors only after they are processed (at the next entry or
//   notification), as on hardware;
// - IPIv posts to the target's PID without the target's acceptance checks; the hypervisor keeps a
//   PID-pointer entry valid only while its APIC is enabled and software-enabled, so the difference
//   does not show. IPIv and VT-d posts do not clear the TMR bit of an edge vector that was
//   level-triggered before (the hardware never touches the TMR; KVM has the same staleness);
// - a virtualized self-IPI (x2APIC SELF_IPI with x2APIC virtualization and virtual-interrupt
//   delivery, or an xAPIC ICR-low write of a fixed, edge self-IPI through APIC-write emulation,
//   SDM Vol3 30.4.3.2) sets VIRR even while the APIC is software-disabled (SVR[8] = 0): SDM Vol3
//   30.1.5 "Self-IPI Virtualization" sets VIRR and RVI with no acceptance check, where emulated
//   refuses the vector (SDM Vol3 11.4.7.2);
// - a virtualized self-IPI leaves the TMR bit of a vector that was level-triggered before set
//   (30.1.5 touches only VIRR and RVI), where emulated clears it on an edge acceptance (SDM Vol3
//   11.8.4); the next EOI of that vector is then a level one, as after IPIv.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "apic/backend.hpp"
#include "apic/counters.hpp"
#include "apic/local_apic.hpp"
#include "apic/model_backend.hpp"
#include "vmx/apicv_vm.hpp"
#include "vmx/posted_interrupt.hpp"
#include "vmx/virtual_apic_page.hpp"
#include "vmx/vmcs.hpp"

namespace hv::vmx {

// Architectural VM exits by basic exit reason (SDM Vol3 Appendix C "VMX Basic Exit Reasons").
enum class ApicvExit : uint8_t {
    ExternalInterrupt,  // 1: a kick (IPI) to a running vCPU without a posted notification
    MsrRead,            // 31: intercepted RDMSR of an x2APIC / APIC-base / TSC-deadline MSR
    MsrWrite,           // 32: intercepted WRMSR
    TprBelowThreshold,  // 43
    ApicAccess,         // 44
    EoiInduced,         // 45
    ApicWrite,          // 56
    Count
};
inline constexpr std::array<uint16_t, static_cast<std::size_t>(ApicvExit::Count)> kApicvExitReason{
    1, 31, 32, 43, 44, 45, 56};

// APICv's own statistics; deliveries by source, kicks and wakes are ModelBackend's.
enum class ApicvStat : uint8_t {
    Posted,         // post() calls on this vCPU's PID (deliver, IPIv, VT-d)
    Coalesced,      // vector already pending in PIR or VIRR
    Suppressed,     // post with SN set: no notification
    NotifySent,     // posts that changed ON 0 -> 1 (on_already_set = posted - these - suppressed)
    Notifications,  // notification vector sent (the vCPU runs: no exit)
    Wakeups,        // wake-up vector: the blocked vCPU was woken
    PirSynced,      // PIR -> VIRR transfers that found vectors
    VirtualInterruptsDelivered,
    EoiVirtualized,
    SelfIpiVirtualized,
    IpivCompleted,
    Eoi,
    EoiBroadcast,
    Count
};

class ApicvBackend final : public apic::ModelBackend {
  public:
    ApicvBackend(ApicvVm& vm, std::size_t index, const apic::LocalApicConfig& cfg,
                 apic::GuestClock& clock, apic::ApicPlatform& platform,
                 apic::VcpuNotifier& notifier);
    ~ApicvBackend() override;

    std::string_view name() const override { return "apicv"; }
    apic::AccessResult mmio_read(uint64_t gpa, unsigned size) override;
    apic::AccessResult mmio_write(uint64_t gpa, unsigned size, uint32_t value) override;
    apic::AccessResult msr_read(uint32_t msr) override;
    apic::AccessResult msr_write(uint32_t msr, uint64_t value) override;
    void deliver(const apic::Interrupt& irq) override;
    apic::DestInfo dest_info() const override;
    std::optional<uint8_t> pending_vector() override;
    apic::AckResult ack() override;
    apic::PendingEvents take_events() override;
    apic::RunState run_state() const override;
    void set_run_state(apic::RunState r) override;
    void enter_guest() override;
    void leave_guest() override;
    bool block() override;
    void unblock() override;
    std::optional<uint64_t> timer_deadline() const override;
    std::optional<uint8_t> cr8() const override;
    void write_cr8(uint8_t value) override;
    void timer_fired() override;
    apic::ApicState flatten() override;
    std::optional<std::string> restore(const apic::ApicState& s) override;
    apic::CounterList exit_counters() const override;
    apic::CounterList stats() const override;

    // Vectors the IOAPIC routes to this vCPU as level-triggered: their EOIs must exit even before
    // the TMR says so (KVM's ioapic scan, vcpu_load_eoi_exitmap). Core calls it on route changes.
    void set_ioapic_eoi_vectors(const apic::VectorWords& v);

    // Inspection for tests and dumps (vCPU thread or quiescent).
    VmcsImage vmcs() const;
    VirtualApicPage page() const;
    PostedInterruptDescriptor& pid() { return pid_; }
    uint64_t exit_count(ApicvExit e) const { return exits_.get(e); }
    uint64_t stat(ApicvStat s) const { return stats_.get(s); }

  private:
    friend class ApicvVm;
    using Notify = apic::Notify;

    // What to do once `mu_` is released.
    struct Effects {
        apic::AccessResult model;                // from the LocalApic: IPI, timer re-arm
        std::optional<uint8_t> ioapic_eoi;       // forward this EOI to the IOAPIC
        std::optional<std::size_t> ipiv_target;  // IPIv posted: notify this vCPU
        PostResult ipiv_post;
        Notify notify = Notify::None;
        bool timer_changed = false;
        bool timer_dirty = false;  // the mirror processed a timer expiry
    };

    // --- hardware half (apicv_hardware.cpp) ---
    bool hw_read_virtualized(uint32_t offset, unsigned size) const;
    bool hw_write_virtualized(uint32_t offset, unsigned size) const;
    bool hw_x2apic_read_passthrough(uint32_t msr) const;
    void hw_ppr_virtualization();
    std::optional<uint8_t> hw_evaluate() const;
    uint8_t hw_deliver_virtual_interrupt();
    bool hw_tpr_virtualization();                    // true: TPR-below-threshold VM exit
    std::optional<uint8_t> hw_eoi_virtualization();  // vector when an EOI-induced exit follows
    void hw_self_ipi(uint8_t vector);
    void hw_process_posted();
    bool hw_self_ipi_icr(uint32_t icr_low) const;
    bool hw_ipi_virtualization(uint64_t icr, bool x2apic, Effects& fx);
    void hw_apic_write_emulation(uint32_t offset, Effects& fx);

    // --- hypervisor half (apicv_hypervisor.cpp) ---
    void count_exit(ApicvExit e) { exits_.add(e); }
    void sync_pir_locked();
    void inject_locked(const apic::VectorWords& w);
    apic::VectorWords drain_model_locked(std::optional<uint8_t> keep_level = std::nullopt);
    void poll_timer_locked(bool& changed);
    void after_model_locked(apic::ApicMode before);
    void reset_hardware_state_locked();
    void mirror_locked();
    void update_controls_locked();
    void rebuild_eoi_exit_locked();
    void set_tmr_locked(uint8_t v, bool level);
    void refresh_table_locked();
    std::optional<uint8_t> pending_locked() const;
    bool events_or_pending_locked() const;
    Notify notify_locked();
    void finish(const Effects& fx);
    void post_self(uint8_t vector);
    void count_post(const PostResult& r);
    void raise(const apic::VectorWords& w);
    void on_notification();  // ApicvVm::notify: NV = notification vector
    void on_wakeup();        // ApicvVm::wakeup_handler
    bool fast_path_ok(uint8_t vector) const;
    void deliver_slow(const apic::Interrupt& irq);

    // --- exits (apicv_access.cpp) ---
    apic::AccessResult xapic_read_exit(uint32_t offset, unsigned size, Effects& fx);
    apic::AccessResult xapic_write_exit(uint32_t offset, unsigned size, uint32_t value,
                                        Effects& fx);
    void apic_write_exit(uint32_t offset, Effects& fx);
    apic::AccessResult msr_read_exit(uint32_t msr, Effects& fx);
    apic::AccessResult msr_write_exit(uint32_t msr, uint64_t value, Effects& fx);
    void software_eoi_locked(Effects& fx);
    void eoi_induced_exit_locked(uint8_t vector, Effects& fx);
    void tpr_changed_locked();
    void virtual_tpr_written_locked();
    uint64_t page_icr() const;
    uint32_t page_apr() const;
    bool hw_owned(uint32_t offset) const;

    ApicvVm& vm_;
    ApicvOptions opts_;
    apic::GuestClock& clock_;
    apic::ApicPlatform& platform_;
    PostedInterruptDescriptor& pid_;

    mutable std::mutex mu_;
    apic::LocalApic apic_;
    std::unique_ptr<VirtualApicPage> page_;
    VmcsImage vmcs_;
    apic::PendingEvents events_;
    apic::VectorWords tmr_{};
    apic::VectorWords ioapic_eoi_{};
    std::optional<uint32_t> table_id_;
    bool timer_dirty_ = false;  // set by mirror_locked(), reported by the next finish()

    // Read lock-free by deliver() on other threads; written under mu_.
    std::atomic<bool> accepting_{false};
    std::array<std::atomic<uint32_t>, 8> tmr_mirror_{};

    apic::CounterTable<ApicvExit, static_cast<std::size_t>(ApicvExit::Count)> exits_;
    apic::CounterTable<ApicvStat, static_cast<std::size_t>(ApicvStat::Count)> stats_;
};

}  // namespace hv::vmx
