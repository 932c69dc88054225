#include "core/host/cpu.hpp"

#include <libcpuid/libcpuid.h>

#include "core/base/error.hpp"
#include "core/host/sysfs.hpp"

namespace hv::host {

namespace {

constexpr bool bit(std::uint64_t v, unsigned n)
{
    return ((v >> n) & 1u) != 0;
}

Vendor vendor_of(std::string_view s)
{
    if (s == "GenuineIntel")
        return Vendor::Intel;
    if (s == "AuthenticAMD")
        return Vendor::Amd;
    if (s == "HygonGenuine")
        return Vendor::Hygon;
    return Vendor::Other;
}

CpuIdentity identify(const CpuidSource& cpuid)
{
    const auto leaf1 = cpuid.query(1);
    if (!cpuid.query(0) || !leaf1)
        fail("CPUID: leaves 0 and 1 are missing; not a usable x86 CPU description");

    cpu_raw_data_t raw;
    to_libcpuid_raw(cpuid, raw);
    cpu_id_t lc{};
    if (cpu_identify(&raw, &lc) != 0)
        fail("libcpuid cpu_identify: {}", cpuid_error());

    CpuIdentity id;
    id.vendor_string = lc.vendor_str;
    id.vendor = vendor_of(id.vendor_string);
    id.brand = std::string(trim(lc.brand_str));
    id.codename = lc.cpu_codename;
    id.leaf1_eax = leaf1->eax;
    // SDM Vol2A CPUID "Figure 3-6 Version Information Returned by CPUID in EAX". Computed here
    // rather than taken from libcpuid so the rule is visible and tested.
    const std::uint32_t base_family = (leaf1->eax >> 8) & 0xF;
    const std::uint32_t ext_family = (leaf1->eax >> 20) & 0xFF;
    const std::uint32_t base_model = (leaf1->eax >> 4) & 0xF;
    const std::uint32_t ext_model = (leaf1->eax >> 16) & 0xF;
    id.family = base_family == 0xF ? base_family + ext_family : base_family;
    id.model = (id.family == 6 || id.family >= 0xF) ? (ext_model << 4) | base_model : base_model;
    id.stepping = leaf1->eax & 0xF;
    id.hypervisor = bit(leaf1->ecx, 31);
    return id;
}

SvmFeatures decode_svm(const CpuidSource& cpuid)
{
    SvmFeatures s;
    const auto ext1 = cpuid.query(0x80000001u);
    s.svm = ext1 && bit(ext1->ecx, 2);  // APM Vol3 Appendix E, CPUID Fn8000_0001_ECX[SVM]
    const auto a = cpuid.query(0x8000000Au);
    if (!s.svm || !a)
        return s;
    // APM Vol3 Appendix E, "CPUID Fn8000_000A_EDX SVM Feature Identification"; bit numbers as in
    // Linux arch/x86/include/asm/cpufeatures.h word 15.
    s.revision = a->eax & 0xFF;
    s.nasid = a->ebx;
    s.edx = a->edx;
    s.npt = bit(a->edx, 0);
    s.nrips = bit(a->edx, 3);
    s.decode_assists = bit(a->edx, 7);
    s.avic = bit(a->edx, 13);
    s.vgif = bit(a->edx, 16);
    s.x2avic = bit(a->edx, 18);
    s.vnmi = bit(a->edx, 25);
    return s;
}

VmxFeatures decode_vmx(const CpuidSource& cpuid, const MsrSource& msrs)
{
    VmxFeatures v;
    const auto leaf1 = cpuid.query(1);
    v.vmx = leaf1 && bit(leaf1->ecx, 5);  // SDM Vol2A Table 3-10: CPUID.1:ECX.VMX[bit 5]
    v.msr_status = msrs.status();
    if (!v.vmx) {
        v.msr_status = "not read (no VMX)";
        return v;
    }
    if (!msrs.available())
        return v;
    v.pinbased = msrs.read(kMsrVmxPinbasedCtls);
    v.procbased = msrs.read(kMsrVmxProcbasedCtls);
    if (!v.pinbased || !v.procbased) {
        v.msr_status += "; IA32_VMX_PINBASED/PROCBASED_CTLS unreadable (VMX disabled by firmware?)";
        return v;
    }
    v.msrs_read = true;
    // Allowed-1 settings live in bits 63:32 (SDM Vol3 A.3.1, A.3.2, A.3.3).
    const std::uint64_t pin1 = *v.pinbased >> 32, proc1 = *v.procbased >> 32;
    v.posted_interrupts = bit(pin1, 7);
    v.tpr_shadow = bit(proc1, 21);
    v.tertiary_controls = bit(proc1, 17);
    v.secondary_controls = bit(proc1, 31);
    if (v.secondary_controls) {
        v.procbased2 = msrs.read(kMsrVmxProcbasedCtls2);
        const std::uint64_t sec1 = v.procbased2 ? *v.procbased2 >> 32 : 0;
        v.virtualize_apic_accesses = bit(sec1, 0);
        v.virtualize_x2apic = bit(sec1, 4);
        v.apic_register_virt = bit(sec1, 8);
        v.virtual_interrupt_delivery = bit(sec1, 9);
    }
    if (v.tertiary_controls) {
        // SDM Vol3 A.3.4: IA32_VMX_PROCBASED_CTLS3 reports allowed-1 settings in all 64 bits.
        v.procbased3 = msrs.read(kMsrVmxProcbasedCtls3);
        v.ipi_virt = v.procbased3 && bit(*v.procbased3, 4);
    }
    return v;
}

}  // namespace

std::string_view vendor_name(Vendor v)
{
    switch (v) {
    case Vendor::Intel:
        return "Intel";
    case Vendor::Amd:
        return "AMD";
    case Vendor::Hygon:
        return "Hygon";
    case Vendor::Other:
        return "other";
    }
    return "other";
}

CpuInfo decode_cpu(const CpuidSource& cpuid, const MsrSource& msrs)
{
    CpuInfo info;
    info.id = identify(cpuid);
    info.svm = decode_svm(cpuid);
    info.vmx = decode_vmx(cpuid, msrs);
    if (const auto* table = dynamic_cast<const CpuidTable*>(&cpuid)) {
        info.leaves = *table;
    } else {
        cpu_raw_data_t raw;
        to_libcpuid_raw(cpuid, raw);
        info.leaves = from_libcpuid_raw(raw);
    }
    return info;
}

}  // namespace hv::host
