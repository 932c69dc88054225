// `emulated`, `apicv` and `avic`: the local APICs are models in hvaccel (apic/, vmx/, svm/).
// They share KVM's set-up — every APIC MSR exits to userspace — and differ in the per-vCPU
// backend, the VM-wide tables the backends share, and the interrupt-remapping path.
#include <stdexcept>

#include <fmt/format.h>

#include "apic/emulated.hpp"
#include "apic/regs.hpp"
#include "core/backend/kinds.hpp"
#include "core/base/error.hpp"
#include "core/interrupts/interrupts.hpp"
#include "core/passthrough/paths.hpp"
#include "svm/avic_vm.hpp"
#include "vmx/apicv_vm.hpp"

namespace hv {

namespace {

const char* on_off(bool b)
{
    return b ? "on" : "off";
}

class UserspaceVmApic : public VmApic {
  public:
    explicit UserspaceVmApic(std::string reason) : VmApic(std::move(reason)) {}

    bool lapic_in_kvm() const override { return false; }

    // IA32_APIC_BASE and IA32_TSC_DEADLINE are KVM's own MSRs: filter them (an empty bitmap
    // denies, i.e. exits) so that the userspace APIC owns them. The x2APIC range is listed too,
    // for kernels that still filter it.
    void prepare(const kvm::Vm& vm) override
    {
        static const std::uint8_t kDenyAll[0x100 / 8] = {};
        kvm_msr_filter f{};
        f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
        const std::uint32_t ranges[][2] = {
            {apic::kMsrApicBase, 1}, {apic::kMsrTscDeadline, 1}, {apic::kX2apicMsrFirst, 0x100}};
        for (std::size_t i = 0; i < std::size(ranges); ++i) {
            f.ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
            f.ranges[i].base = ranges[i][0];
            f.ranges[i].nmsrs = ranges[i][1];
            f.ranges[i].bitmap = const_cast<std::uint8_t*>(kDenyAll);
        }
        vm.set_msr_filter(f);
    }

    void attach(Interrupts&, const kvm::Vm&) override {}
};

class EmulatedVmApic final : public UserspaceVmApic {
  public:
    explicit EmulatedVmApic(std::string reason) : UserspaceVmApic(std::move(reason)) {}

    host::ApicKind kind() const override { return host::ApicKind::Emulated; }

    std::unique_ptr<apic::ApicBackend> make_vcpu_apic(const VcpuApicSetup& s) override
    {
        return std::make_unique<apic::EmulatedApic>(s.index, s.config, s.interrupts, s.interrupts,
                                                    s.notifier);
    }

    std::unique_ptr<InterruptRemapping> make_remapping(const RemappingContext& ctx) override
    {
        return make_vtd_remapped(ctx);
    }
};

// A vCPU's APIC from a hardware model's VM-wide tables (vmx::ApicvVm, svm::AvicVm): the
// notification or doorbell targets the host CPU the vCPU thread is pinned to (--pin).
template <typename TablesVm>
std::unique_ptr<apic::ApicBackend> make_hardware_model_apic(TablesVm& vm, const VcpuApicSetup& s)
{
    if (s.host_apic_id)
        vm.set_host_apic_id(s.index, *s.host_apic_id);
    return vm.make_backend(s.index, s.config, s.interrupts, s.interrupts, s.notifier);
}

// The model of Intel APICv: the posted-interrupt descriptors and PID-pointer table live in
// vmx::ApicvVm; device MSIs are posted through VT-d where they name one vCPU.
class ApicvVmApic final : public UserspaceVmApic {
  public:
    ApicvVmApic(const vmx::ApicvOptions& opts, unsigned vcpus, std::string reason)
        : UserspaceVmApic(std::move(reason)), vm_(vcpus, opts)
    {
    }

    host::ApicKind kind() const override { return host::ApicKind::Apicv; }

    std::unique_ptr<apic::ApicBackend> make_vcpu_apic(const VcpuApicSetup& s) override
    {
        return make_hardware_model_apic(vm_, s);
    }

    void attach(Interrupts& irqs, const kvm::Vm&) override
    {
        // The EOI-exit bitmaps must name the vectors of level-triggered IOAPIC routes.
        irqs.on_ioapic_change(
            [this](const apic::VectorWords& level) { vm_.set_ioapic_eoi_vectors(level); });
    }

    std::unique_ptr<InterruptRemapping> make_remapping(const RemappingContext& ctx) override
    {
        return make_vtd_posted(ctx, vm_);
    }

  private:
    vmx::ApicvVm vm_;
};

// The model of AMD AVIC: the backing pages and the physical and logical APIC ID tables live in
// svm::AvicVm; device MSIs go through the AMD IOMMU in GA mode.
class AvicVmApic final : public UserspaceVmApic {
  public:
    AvicVmApic(const svm::AvicOptions& opts, unsigned vcpus, std::string reason)
        : UserspaceVmApic(std::move(reason)), vm_(vcpus, opts)
    {
    }

    host::ApicKind kind() const override { return host::ApicKind::Avic; }

    std::unique_ptr<apic::ApicBackend> make_vcpu_apic(const VcpuApicSetup& s) override
    {
        return make_hardware_model_apic(vm_, s);
    }

    std::unique_ptr<InterruptRemapping> make_remapping(const RemappingContext& ctx) override
    {
        return make_amd_ga_remapping(ctx, vm_);
    }

  private:
    svm::AvicVm vm_;
};

}  // namespace

std::unique_ptr<VmApic> make_emulated_vm_apic(std::string reason)
{
    return std::make_unique<EmulatedVmApic>(std::move(reason));
}

std::unique_ptr<VmApic> make_apicv_vm_apic(const host::ApicSpec& spec, unsigned vcpus,
                                           std::string reason)
{
    vmx::ApicvOptions opts;
    opts.ipiv = spec.ipiv;
    opts.posted_interrupts = spec.posted;
    opts.virtual_interrupt_delivery = spec.vid;
    opts.x2apic_virtualization = spec.x2apic_virt;
    reason +=
        fmt::format(", IPIv {}, posted interrupts {}, VID {}, x2APIC virtualization {}",
                    on_off(opts.ipiv), on_off(opts.posted_interrupts),
                    on_off(opts.virtual_interrupt_delivery), on_off(opts.x2apic_virtualization));
    try {
        return std::make_unique<ApicvVmApic>(opts, vcpus, std::move(reason));
    } catch (const std::invalid_argument& e) {
        fail("--apic: {}", e.what());
    }
}

std::unique_ptr<VmApic> make_avic_vm_apic(const host::ApicSpec& spec, unsigned vcpus,
                                          std::string reason)
{
    svm::AvicOptions opts;
    opts.x2avic = spec.x2avic;
    opts.erratum_1235 = spec.erratum_1235;
    if (opts.x2avic)
        reason += ", x2AVIC";
    if (opts.erratum_1235)
        reason += ", erratum 1235 mode: IsRunning never set";
    try {
        return std::make_unique<AvicVmApic>(opts, vcpus, std::move(reason));
    } catch (const std::invalid_argument& e) {
        fail("--apic: {}", e.what());
    }
}

}  // namespace hv
