// Architectural register states a vCPU is put in: the Multiboot entry state, the state after
// INIT (the BSP's reset vector) and the real-mode start of an AP after SIPI.
#pragma once

#include <cstdint>

#include "core/boot/loader.hpp"
#include "core/kvm/kvm.hpp"

namespace hv {

// Multiboot 0.6.96 3.2 "Machine state": 32-bit protected mode, flat 4 GiB segments, paging off,
// interrupts off, EAX = 0x2BADB002, EBX = physical address of the information structure.
void set_multiboot_state(kvm::Vcpu& v, const BootInfo& boot);

// SDM Vol3 9.1.1 "Processor State After Reset": the reset vector F000:FFF0 with CS.base
// 0xFFFF0000, CR0 = CD | NW | ET, paging and long mode off.
void set_reset_state(kvm::Vcpu& v);

// SDM Vol3 9.4.4 / 11.6.1: the SIPI vector VV starts an AP at VV00:0000 in real mode, the rest
// of the CPU as after INIT.
void set_sipi_state(kvm::Vcpu& v, std::uint8_t vector);

}  // namespace hv
