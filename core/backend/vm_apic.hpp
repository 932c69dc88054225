// The VM's APIC backend: one object, chosen once from the parsed `--apic` spec and the host
// profile (core/host/backend.hpp), through which the VM asks everything that depends on where
// its local APICs live — KVM's VM-wide set-up, each vCPU's APIC, the IOAPIC routing hooks, the
// interrupt-remapping path of a passed-through device, and whether halts happen in KVM.
//
// `kernel` keeps the LAPICs in KVM (split irqchip); `emulated`, `apicv` and `avic` are
// userspace models that share the MSR filter and differ in their per-vCPU backends and
// VM-wide tables (vmx::ApicvVm's descriptors, svm::AvicVm's AVIC tables), which each object
// owns. A new backend is one more implementation here and one more ApicKind.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "apic/backend.hpp"
#include "apic/local_apic.hpp"
#include "core/host/backend.hpp"
#include "core/kvm/kvm.hpp"
#include "core/passthrough/remapping.hpp"

namespace hv {

class Interrupts;

// What a vCPU's APIC is made from.
struct VcpuApicSetup {
    unsigned index = 0;
    apic::LocalApicConfig config;  // initial APIC ID, BSP flag, CPUID caps, TSC rate
    Interrupts& interrupts;        // the fabric: guest clock and ApicPlatform of the models
    const kvm::Vm& vm;
    kvm::Vcpu& vcpu;
    apic::VcpuNotifier& notifier;               // kicks and wakes the vCPU thread
    std::optional<std::uint32_t> host_apic_id;  // the host CPU the vCPU thread is pinned to
};

class VmApic {
  public:
    virtual ~VmApic() = default;
    VmApic(const VmApic&) = delete;
    VmApic& operator=(const VmApic&) = delete;

    virtual host::ApicKind kind() const = 0;
    std::string_view name() const { return host::backend_name(kind()); }
    // Why this backend, with which options (for --stats).
    const std::string& reason() const { return reason_; }

    // The local APICs live in KVM: HLT, INIT and SIPI are handled there, out of hvaccel's
    // sight, so the VM asks the vCPUs periodically whether they are stuck, and every vCPU
    // thread starts running (KVM parks the APs). Otherwise they live here and APs start in
    // wait-for-SIPI in hvaccel.
    virtual bool lapic_in_kvm() const = 0;
    // VM-wide KVM set-up; before any vCPU exists.
    virtual void prepare(const kvm::Vm& vm) = 0;
    // The APIC of vCPU `s.index`; called once per vCPU, in index order.
    virtual std::unique_ptr<apic::ApicBackend> make_vcpu_apic(const VcpuApicSetup& s) = 0;
    // Once every vCPU's APIC is in `irqs`: the VM-wide routing hooks.
    virtual void attach(Interrupts& irqs, const kvm::Vm& vm) = 0;
    // The path that carries a passed-through device's MSIs (core/passthrough/paths.hpp).
    virtual std::unique_ptr<InterruptRemapping> make_remapping(const RemappingContext& ctx) = 0;

  protected:
    explicit VmApic(std::string reason) : reason_(std::move(reason)) {}

  private:
    std::string reason_;
};

// The backend `--apic apic_text` gets on this host for `vcpus` vCPUs. Prints each host
// erratum once as a warning; throws hv::Error with one line when the spec is bad or the host
// cannot run it.
std::unique_ptr<VmApic> choose_vm_apic(std::string_view apic_text, unsigned vcpus);

// The backend of a choice already made: `spec`'s options, `kind` resolved (auto is not a kind).
std::unique_ptr<VmApic> make_vm_apic(host::ApicKind kind, const host::ApicSpec& spec,
                                     unsigned vcpus, std::string reason);

}  // namespace hv
