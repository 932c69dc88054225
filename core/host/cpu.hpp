// The host CPU: identity (vendor, display family/model/stepping, brand) and the hardware
// interrupt-virtualization features hvaccel cares about (AMD SVM/AVIC, Intel VMX/APICv).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/host/cpuid.hpp"
#include "core/host/msr.hpp"

namespace hv::host {

enum class Vendor { Intel, Amd, Hygon, Other };
std::string_view vendor_name(Vendor v);

struct CpuIdentity {
    Vendor vendor = Vendor::Other;
    std::string vendor_string;  // "GenuineIntel", "AuthenticAMD", "HygonGenuine"
    std::string brand;          // trimmed brand string, "" when the CPU has none
    std::string codename;       // libcpuid's guess from its tables; may be wrong on new parts
    // Display values, SDM Vol2A CPUID "Figure 3-6": family = base + extended when base == 0xF;
    // model = (extended << 4) | base when family is 6 or >= 0xF.
    std::uint32_t family = 0, model = 0, stepping = 0;
    std::uint32_t leaf1_eax = 0;  // raw signature, for reports
    bool hypervisor = false;      // CPUID.1:ECX[31]: this "host" is itself a guest
};

// AMD SVM, CPUID 0x80000001:ECX[2] and 0x8000000A (APM Vol3 App. E / Linux cpufeatures.h word 15).
struct SvmFeatures {
    bool svm = false;
    std::uint32_t revision = 0;   // 0x8000000A EAX[7:0]
    std::uint32_t nasid = 0;      // 0x8000000A EBX
    bool npt = false;             // EDX bit 0
    bool nrips = false;           // EDX bit 3
    bool decode_assists = false;  // EDX bit 7
    bool vgif = false;            // EDX bit 16
    bool avic = false;            // EDX bit 13 (APM Vol2 15.29 "AVIC")
    bool x2avic = false;          // EDX bit 18
    bool vnmi = false;            // EDX bit 25
    std::uint32_t edx = 0;        // raw, for reports
};

// Intel VMX. CPUID.1:ECX[5] says VMX exists; the capability MSRs say what it can do.
// (SDM Vol3 Appendix A.3 "VM-Execution Controls": allowed-1 settings are the high 32 bits of
// the pin/primary/secondary MSRs; IA32_VMX_PROCBASED_CTLS3 reports all 64 bits as allowed-1.)
struct VmxFeatures {
    bool vmx = false;
    bool msrs_read = false;                   // the fields below are meaningful only when true
    std::string msr_status;                   // "msr module not loaded ...", "readable (...)", ...
    bool posted_interrupts = false;           // pin-based bit 7
    bool tpr_shadow = false;                  // primary bit 21
    bool secondary_controls = false;          // primary bit 31
    bool tertiary_controls = false;           // primary bit 17
    bool virtualize_apic_accesses = false;    // secondary bit 0
    bool virtualize_x2apic = false;           // secondary bit 4
    bool apic_register_virt = false;          // secondary bit 8
    bool virtual_interrupt_delivery = false;  // secondary bit 9
    bool ipi_virt = false;                    // tertiary bit 4
    // APICv as Linux defines it (cpu_has_vmx_apicv): register virtualization, virtual-interrupt
    // delivery and posted interrupts together.
    bool apicv() const
    {
        return msrs_read && apic_register_virt && virtual_interrupt_delivery && posted_interrupts;
    }
    std::optional<std::uint64_t> pinbased, procbased, procbased2, procbased3;  // raw MSRs
};

inline constexpr std::uint32_t kMsrVmxBasic = 0x480;
inline constexpr std::uint32_t kMsrVmxPinbasedCtls = 0x481;
inline constexpr std::uint32_t kMsrVmxProcbasedCtls = 0x482;
inline constexpr std::uint32_t kMsrVmxProcbasedCtls2 = 0x48B;
inline constexpr std::uint32_t kMsrVmxProcbasedCtls3 = 0x492;

struct CpuInfo {
    CpuIdentity id;
    SvmFeatures svm;
    VmxFeatures vmx;
    CpuidTable leaves;  // the raw leaves the profile was built from
};

// Decodes a CPU from raw CPUID (identification through libcpuid's cpu_identify) and, for VMX,
// the capability MSRs from `msrs`. Throws hv::Error when the leaves are not a plausible x86
// CPU (no leaf 0/1) or libcpuid rejects them.
CpuInfo decode_cpu(const CpuidSource& cpuid, const MsrSource& msrs);

}  // namespace hv::host
