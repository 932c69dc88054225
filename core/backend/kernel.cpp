// `kernel`: KVM's in-kernel LAPICs with the IOAPIC here (split irqchip), device MSIs through
// KVM GSI routes and irqfds.
#include "core/backend/kinds.hpp"
#include "core/interrupts/interrupts.hpp"
#include "core/interrupts/kernel_apic.hpp"
#include "core/passthrough/paths.hpp"

namespace hv {

namespace {

class KernelVmApic final : public VmApic {
  public:
    explicit KernelVmApic(std::string reason) : VmApic(std::move(reason)) {}

    host::ApicKind kind() const override { return host::ApicKind::Kernel; }
    bool lapic_in_kvm() const override { return true; }

    void prepare(const kvm::Vm& vm) override
    {
        // The LAPICs in KVM, the IOAPIC here (24 pins routed as MSIs); 32-bit x2APIC IDs in
        // KVM_GET_LAPIC and MSIs. Both before any vCPU exists.
        vm.enable_cap(KVM_CAP_SPLIT_IRQCHIP, apic::ioapic::kPins);
        vm.enable_cap(KVM_CAP_X2APIC_API,
                      KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK);
    }

    std::unique_ptr<apic::ApicBackend> make_vcpu_apic(const VcpuApicSetup& s) override
    {
        return std::make_unique<KernelApic>(s.vm, s.vcpu, s.config.caps);
    }

    void attach(Interrupts& irqs, const kvm::Vm& vm) override { irqs.use_kernel_irqchip(vm); }

    std::unique_ptr<InterruptRemapping> make_remapping(const RemappingContext& ctx) override
    {
        return make_kernel_irqfd(ctx);
    }
};

}  // namespace

std::unique_ptr<VmApic> make_kernel_vm_apic(std::string reason)
{
    return std::make_unique<KernelVmApic>(std::move(reason));
}

}  // namespace hv
