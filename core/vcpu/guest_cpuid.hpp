// The guest's CPUID: KVM_GET_SUPPORTED_CPUID made consistent with the VM hvaccel builds — the
// vCPU's APIC IDs in leaves 1, 0xB and 0x1F, the processor counts, and the APIC features the
// chosen APIC backend really provides (x2APIC, TSC-deadline), and no KVM paravirtual interrupt
// shortcuts (PV EOI, PV IPIs) that would bypass a userspace APIC.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace hv {

struct CpuidApicFeatures {
    bool x2apic = true;
    bool tsc_deadline = true;
    bool kvm_pv_interrupts = false;  // keep KVM's PV EOI / PV IPI (only with KVM's own LAPIC)
};

std::vector<kvm_cpuid_entry2> guest_cpuid(const std::vector<kvm_cpuid_entry2>& supported,
                                          unsigned vcpu_id, unsigned vcpus,
                                          const CpuidApicFeatures& apic);

}  // namespace hv
