// AvicBackend: the `avic` backend for one vCPU — AMD AVIC's per-vCPU hardware behaviour (backing
// page reads, virtualised TPR/EOI/ICR writes, interrupt delivery from the backing page IRR) and
// the hypervisor half that handles the exits AVIC would take (AVIC_NOACCEL trap/fault,
// AVIC_INCOMPLETE_IPI, MSR intercepts, HLT), maintains IsRunning and the APIC ID tables, and
// emulates the LAPIC timer. The VM-wide structures are in AvicVm (avic_vm.hpp).
//
// State: `apic_` (apic::LocalApic) is the hypervisor's register model, so every guest-visible
// rule is the emulated backend's. The backing page is the source of truth for IRR: other vCPUs,
// devices and the IOMMU set IRR bits there lock-free (post_to_backing_page); the vCPU thread
// folds the page's new IRR bits into `apic_` (acceptance rules applied: a software-disabled APIC
// refuses them and the bit is cleared) before every decision, and writes every register back to
// the page after every change, so reads served from the page equal the model's. Invariant after
// each locked operation: page IRR ⊇ model IRR; the difference is posts not yet folded.
//
// Locking: `mu_` guards apic_, the events, the VMCB image; AvicVm's table lock nests inside it
// (leaf). Notifications, IPIs to other vCPUs and platform calls happen with no lock held.
#pragma once

#include <atomic>
#include <mutex>
#include <string_view>

#include "apic/backend.hpp"
#include "apic/counters.hpp"
#include "apic/local_apic.hpp"
#include "apic/model_backend.hpp"
#include "svm/avic_noaccel_names.hpp"
#include "svm/avic_regs.hpp"
#include "svm/avic_vm.hpp"
#include "svm/vmcb.hpp"

namespace hv::svm {

// The architectural #VMEXITs AVIC would take, by reason (and cause / access type).
enum class AvicExit : uint8_t {
    IncompleteIpiInvalidIntType,      // 0x401 cause 0
    IncompleteIpiNotRunning,          // 0x401 cause 1
    IncompleteIpiInvalidTarget,       // 0x401 cause 2
    IncompleteIpiInvalidBackingPage,  // 0x401 cause 3
    IncompleteIpiInvalidVector,       // 0x401 cause 4
    NoaccelTrap,                      // 0x402, write already done
    NoaccelFaultRead,                 // 0x402, read emulated
    NoaccelFaultWrite,                // 0x402, write emulated
    Msr,                              // 0x07C: IA32_APIC_BASE, IA32_TSC_DEADLINE, x2APIC MSRs in
          // xAPIC mode or when x2APIC runs without x2AVIC (AVIC inhibited)
    Hlt,  // 0x078
    Count
};

class AvicBackend final : public apic::ModelBackend {
  public:
    AvicBackend(AvicVm& vm, std::size_t index, const apic::LocalApicConfig& cfg,
                apic::GuestClock& clock, apic::ApicPlatform& platform,
                apic::VcpuNotifier& notifier);

    std::string_view name() const override { return "avic"; }
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

    // --- model-specific ---
    uint64_t exits(AvicExit e) const { return exits_.get(e); }
    uint64_t total_exits() const;
    VmcbControl vmcb() const;  // a copy of this vCPU's VMCB control image
    BackingPage& backing_page() { return vm_.backing_page(index_); }
    // Raise a local interrupt source (thermal, perf, CMCI, LINT0/1) through its LVT entry.
    void raise_lvt(apic::Lvt which);

  private:
    // What a register access asks for once the lock is released.
    enum class IpiPath : uint8_t { None, Hardware, Software };
    struct After {
        apic::AccessResult r;
        IpiPath path = IpiPath::None;  // Hardware: an ICR / SELF_IPI write for the AVIC engine
        uint64_t icr = 0;              // ICRH:ICRL (EXITINFO1)
    };

    apic::GuestTime now() const { return clock_.now(); }
    // avic_backend.cpp
    void poll_timer_locked(apic::GuestTime t, bool& changed);
    apic::ApicState model_state_locked();
    void flush_timer();  // no lock held: report a timer expiry processed under the lock
    void fold_locked();
    void sync_locked(bool replace_irr);
    bool pending_locked() const;
    void record_exit_locked(ExitCode code, uint64_t info1, uint64_t info2);
    // avic_access.cpp
    void count_access_locked(AvicAccess a, uint32_t offset, bool write, uint8_t vector);
    bool inhibited_locked() const;  // x2APIC mode without x2AVIC: every x2APIC MSR intercepted
    void finish(After& a);
    void send_hardware_ipi(const apic::Ipi& ipi, uint64_t icr);
    uint32_t page_value(uint32_t offset) const;

    AvicVm& vm_;
    apic::GuestClock& clock_;
    apic::ApicPlatform& platform_;
    mutable std::mutex mu_;
    apic::LocalApic apic_;
    apic::PendingEvents events_;
    VmcbControl vmcb_{};
    Addressing addressing_{};
    bool addressing_valid_ = false;
    std::atomic<bool> timer_dirty_{false};
    apic::CounterTable<AvicExit, static_cast<std::size_t>(AvicExit::Count)> exits_;
    apic::CounterTable<NoaccelSlot, 2 * kRegGroups> noaccel_;  // the 0x402 exits by register
};

}  // namespace hv::svm
