// The implementations behind make_vm_apic(), one factory per backend (vm_apic.hpp).
#pragma once

#include <memory>
#include <string>

#include "core/backend/vm_apic.hpp"

namespace hv {

std::unique_ptr<VmApic> make_kernel_vm_apic(std::string reason);
std::unique_ptr<VmApic> make_emulated_vm_apic(std::string reason);
std::unique_ptr<VmApic> make_apicv_vm_apic(const host::ApicSpec& spec, unsigned vcpus,
                                           std::string reason);
std::unique_ptr<VmApic> make_avic_vm_apic(const host::ApicSpec& spec, unsigned vcpus,
                                          std::string reason);

}  // namespace hv
