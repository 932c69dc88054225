// The `kernel` APIC backend: KVM's in-kernel LAPIC with a split irqchip (KVM_CAP_SPLIT_IRQCHIP):
// the local APICs, their timers, IPIs, INIT/SIPI and HLT live in KVM; the IOAPIC stays in
// hvaccel and reaches the LAPICs as MSIs (KVM_SIGNAL_MSI). On a host whose KVM runs with APICv
// or AVIC this is the path that uses the real hardware.
//
// Guest register accesses never reach this backend (KVM handles them), so the access methods
// answer NotMine, and the injection point has nothing to inject. The state is read and written
// with KVM_GET_LAPIC/KVM_SET_LAPIC plus IA32_APIC_BASE and IA32_TSC_DEADLINE, and the vCPU's
// MP state — only while the vCPU is outside KVM_RUN (its thread, or a paused VM).
#pragma once

#include <atomic>

#include "apic/backend.hpp"
#include "core/kvm/kvm.hpp"

namespace hv {

// The MSI that carries `irq` to the APIC with physical ID `dest` (Intel SDM Vol3 11.11.1
// "Message Address Register Format", 11.11.2 "Message Data Register Format").
struct Msi {
    std::uint64_t address;
    std::uint32_t data;
};
Msi msi_for(std::uint32_t dest, bool logical, const apic::Interrupt& irq);

class KernelApic final : public apic::ApicBackend {
  public:
    KernelApic(const kvm::Vm& vm, kvm::Vcpu& vcpu, const apic::ApicCaps& caps);

    std::string_view name() const override { return "kernel"; }
    apic::AccessResult mmio_read(uint64_t, unsigned) override
    {
        return apic::AccessResult::not_mine();
    }
    apic::AccessResult mmio_write(uint64_t, unsigned, uint32_t) override
    {
        return apic::AccessResult::not_mine();
    }
    apic::AccessResult msr_read(uint32_t) override { return apic::AccessResult::not_mine(); }
    apic::AccessResult msr_write(uint32_t, uint64_t) override
    {
        return apic::AccessResult::not_mine();
    }

    // Any thread: an MSI to this vCPU's APIC ID.
    void deliver(const apic::Interrupt& irq) override;
    // Not knowable from outside the vCPU thread: KVM resolves destinations itself.
    apic::DestInfo dest_info() const override;

    std::optional<uint8_t> pending_vector() override { return std::nullopt; }
    apic::AckResult ack() override { return {}; }
    apic::PendingEvents take_events() override { return {}; }
    apic::RunState run_state() const override;
    void set_run_state(apic::RunState r) override;
    void enter_guest() override {}
    void leave_guest() override {}
    bool block() override { return true; }
    void unblock() override {}
    std::optional<uint64_t> timer_deadline() const override { return std::nullopt; }
    void timer_fired() override {}
    // KVM's LAPIC aliases CR8 and TPR itself.
    std::optional<uint8_t> cr8() const override { return std::nullopt; }
    void write_cr8(uint8_t) override {}

    apic::ApicState flatten() override;
    std::optional<std::string> restore(const apic::ApicState& s) override;
    apic::CounterList exit_counters() const override;
    apic::CounterList stats() const override;

  private:
    const kvm::Vm& vm_;
    kvm::Vcpu& vcpu_;
    apic::ApicCaps caps_;
    std::atomic<std::uint64_t> msis_{0}, msi_blocked_{0};
};

}  // namespace hv
