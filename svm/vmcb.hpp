// The VMCB control-area fields AVIC uses, as one typed per-vCPU image with compile-time offsets.
//
// APM Vol2 Appendix B "Layout of VMCB" (control area, offsets 0x000-0x3FF) and APM Vol2 15.29
// "Advanced Virtual Interrupt Controller". Linux spells the same layout in
// arch/x86/include/asm/svm.h (struct vmcb_control_area). hvaccel never hands this image to a CPU:
// it is the model's record of what a hypervisor would program (and of the last #VMEXIT's code and
// EXITINFO values), so tests can check the bits a real VMCB would hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace hv::svm {

// APM Vol2 Appendix C "SVM Intercept Exit Codes": the exits AVIC adds and the ones it avoids.
enum class ExitCode : uint32_t {
    Vintr = 0x064,  // virtual interrupt window (not needed with AVIC)
    Msr = 0x07C,    // intercepted RDMSR/WRMSR (IA32_APIC_BASE, TSC_DEADLINE)
    Hlt = 0x078,
    AvicIncompleteIpi = 0x401,  // APM Vol2 15.29.9.1 "AVIC IPI Delivery Not Completed"
    AvicNoaccel = 0x402,        // APM Vol2 15.29.9.2 "AVIC Access to Un-accelerated APIC register"
};

// APM Vol2 15.29.9.1: EXITINFO2[63:32] of AVIC_INCOMPLETE_IPI.
enum class IpiFailure : uint32_t {
    InvalidIntType = 0,      // message type other than fixed edge (NMI, INIT, lowest priority...)
    TargetNotRunning = 1,    // IRR set, but IsRunning clear: the hypervisor must wake the target
    InvalidTarget = 2,       // index beyond the table / entry not valid / logical entry not valid
    InvalidBackingPage = 3,  // the physical entry's backing page address is not a backing page
    InvalidVector = 4,       // vector 0-15 (Linux calls this AVIC_IPI_FAILURE_INVALID_IPI_VECTOR)
};

// APM Vol2 15.21.1 "Virtual Interrupt Control" + 15.29.3 "AVIC Enable": int_ctl bits.
namespace int_ctl {
inline constexpr uint32_t kVTprMask = 0xFF;        // 7:0 V_TPR (the guest's TPR[7:4] mirror)
inline constexpr uint32_t kVIrq = 1u << 8;         // V_IRQ
inline constexpr uint32_t kX2apicMode = 1u << 30;  // x2AVIC: x2APIC MSR accesses virtualised
inline constexpr uint32_t kAvicEnable = 1u << 31;
}  // namespace int_ctl

// APM Vol2 15.15.3 "VMCB Clean Field": bit 11 covers the AVIC fields (APIC BAR, backing page,
// logical/physical table pointers): clearing it tells the CPU to reload them.
inline constexpr uint32_t kCleanAvic = 1u << 11;

// APM Vol2 15.29.3 "AVIC Enable": physical APIC ID table pointer = page address | max index.
inline constexpr uint64_t kTableAddrMask = 0x000FFFFFFFFFF000ULL;  // bits 51:12
inline constexpr uint64_t kPhysMaxIndexMask = 0xFFF;               // bits 11:0 (x2AVIC uses 8:0)
inline constexpr uint64_t kApicBarMask = 0x000FFFFFFFFFF000ULL;    // APIC BAR bits 51:12

struct VmcbControl {
    uint32_t intercepts[15];       // 0x000
    uint16_t pause_filter_thresh;  // 0x03C
    uint16_t pause_filter_count;   // 0x03E
    uint64_t iopm_base_pa;         // 0x040
    uint64_t msrpm_base_pa;        // 0x048
    uint64_t tsc_offset;           // 0x050
    uint32_t asid;                 // 0x058
    uint8_t tlb_ctl;               // 0x05C
    uint8_t reserved_5d[3];
    uint32_t int_ctl;     // 0x060
    uint32_t int_vector;  // 0x064
    uint32_t int_state;   // 0x068
    uint8_t reserved_6c[4];
    uint32_t exit_code;          // 0x070
    uint32_t exit_code_hi;       // 0x074
    uint64_t exit_info_1;        // 0x078
    uint64_t exit_info_2;        // 0x080
    uint32_t exit_int_info;      // 0x088
    uint32_t exit_int_info_err;  // 0x08C
    uint64_t nested_ctl;         // 0x090
    uint64_t avic_apic_bar;      // 0x098
    uint64_t ghcb_gpa;           // 0x0A0
    uint32_t event_inj;          // 0x0A8
    uint32_t event_inj_err;      // 0x0AC
    uint64_t nested_cr3;         // 0x0B0
    uint64_t virt_ext;           // 0x0B8
    uint32_t clean;              // 0x0C0
    uint32_t reserved_c4;
    uint64_t next_rip;  // 0x0C8
    uint8_t insn_len;   // 0x0D0
    uint8_t insn_bytes[15];
    uint64_t avic_backing_page;  // 0x0E0
    uint8_t reserved_e8[8];
    uint64_t avic_logical_id;     // 0x0F0
    uint64_t avic_physical_id;    // 0x0F8
    uint8_t reserved_100[0x300];  // 0x100-0x3FF: VMSA pointer, VMGEXIT, reserved for SVM
};

// APM Vol2 Appendix B, Table B-1 "VMCB Layout, Control Area": the offsets AVIC depends on.
static_assert(std::is_standard_layout_v<VmcbControl>);
static_assert(sizeof(VmcbControl) == 0x400);
static_assert(offsetof(VmcbControl, int_ctl) == 0x60);
static_assert(offsetof(VmcbControl, exit_code) == 0x70);
static_assert(offsetof(VmcbControl, exit_info_1) == 0x78);
static_assert(offsetof(VmcbControl, exit_info_2) == 0x80);
static_assert(offsetof(VmcbControl, avic_apic_bar) == 0x98);
static_assert(offsetof(VmcbControl, clean) == 0xC0);
static_assert(offsetof(VmcbControl, avic_backing_page) == 0xE0);
static_assert(offsetof(VmcbControl, avic_logical_id) == 0xF0);
static_assert(offsetof(VmcbControl, avic_physical_id) == 0xF8);

// APM Vol2 15.29.9.1: EXITINFO1 = ICRH:ICRL, EXITINFO2 = cause << 32 | table index (8:0).
constexpr uint64_t incomplete_ipi_info2(IpiFailure cause, uint32_t index)
{
    return (static_cast<uint64_t>(cause) << 32) | (index & 0x1FFu);
}
static_assert(incomplete_ipi_info2(IpiFailure::InvalidTarget, 0x1FF) == 0x2000001FFULL);

// APM Vol2 15.29.9.2: EXITINFO1[11:4] = register offset >> 4 (the offset with 3:0 clear),
// bit 32 = write; EXITINFO2[7:0] = vector for an EOI trap.
inline constexpr uint64_t kNoaccelWrite = 1ULL << 32;
constexpr uint64_t noaccel_info1(uint32_t offset, bool write)
{
    return (offset & 0xFF0u) | (write ? kNoaccelWrite : 0);
}
static_assert(noaccel_info1(0x320, true) == 0x100000320ULL);

}  // namespace hv::svm
