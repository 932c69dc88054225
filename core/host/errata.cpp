#include "core/host/errata.hpp"

#include <array>

#include <fmt/format.h>

#include "core/host/profile.hpp"

namespace hv::host {

namespace {

// AMD erratum 1235 (Linux: "KVM: SVM: Disable (x2)AVIC IPI virtualization if CPU has erratum
// #1235", and the Hygon family 18h follow-up): every family 17h part (Zen 1, Zen+, Zen 2) and
// Hygon Dhyana (family 18h). Family 19h covers both Zen 3 and Zen 4 and is not affected.
constexpr std::array kAmd1235 = {
    CpuRange{Vendor::Amd, 0x17, 0x00, 0xFF, 0, 0xF, {}, "AMD family 17h (Zen 1/Zen+/Zen 2)"},
    CpuRange{Vendor::Hygon, 0x18, 0x00, 0xFF, 0, 0xF, {}, "Hygon family 18h (Dhyana)"},
};

// Kernel bugzilla 196683 "Random Soft Lockup on new Ryzen build": first-generation desktop
// Ryzen (Summit Ridge 0x01, Pinnacle Ridge 0x08, Raven Ridge 0x11, Picasso 0x18) locking up in
// package C6 while idle. Server parts of the same models (EPYC) are not keyed: the brand marks
// the desktop parts.
constexpr std::array kRyzenIdle = {
    CpuRange{Vendor::Amd, 0x17, 0x00, 0x2F, 0, 0xF, "Ryzen", "desktop Ryzen (Zen/Zen+)"},
};

// Xen xen/arch/x86/acpi/cpu_idle.c errata_c6_workaround() isr_errata[]: Intel BDX99, CLX30,
// SKX100, CFW125, BDF104, BDH85, BDM135, KWB131 "A Pending Fixed Interrupt May Be Dispatched
// Before an Interrupt of The Same Priority Completes" (resuming from C6). Haswell has no
// published erratum but Xen lists it as affected (it was first seen there).
constexpr std::array kIntelIsrC6 = {
    CpuRange{Vendor::Intel, 6, 0x3C, 0x3C, 0, 0xF, {}, "Haswell"},
    CpuRange{Vendor::Intel, 6, 0x3F, 0x3F, 0, 0xF, {}, "Haswell-EP"},
    CpuRange{Vendor::Intel, 6, 0x45, 0x46, 0, 0xF, {}, "Haswell-L/G"},
    CpuRange{Vendor::Intel, 6, 0x3D, 0x3D, 0, 0xF, {}, "Broadwell"},
    CpuRange{Vendor::Intel, 6, 0x47, 0x47, 0, 0xF, {}, "Broadwell-G"},
    CpuRange{Vendor::Intel, 6, 0x4F, 0x4F, 0, 0xF, {}, "Broadwell-EP/EX (BDX99)"},
    CpuRange{Vendor::Intel, 6, 0x56, 0x56, 0, 0xF, {}, "Broadwell-DE"},
    CpuRange{Vendor::Intel, 6, 0x4E, 0x4E, 0, 0xF, {}, "Skylake-L"},
    CpuRange{Vendor::Intel, 6, 0x5E, 0x5E, 0, 0xF, {}, "Skylake"},
    CpuRange{Vendor::Intel, 6, 0x55, 0x55, 0, 0xF, {}, "Skylake-SP/Cascade Lake (SKX100/CLX30)"},
    CpuRange{Vendor::Intel, 6, 0x8E, 0x8E, 0, 0xF, {}, "Kaby/Amber/Whiskey Lake-L"},
    CpuRange{Vendor::Intel, 6, 0x9E, 0x9E, 0, 0xF, {}, "Kaby/Coffee Lake (KWB131/CFW125)"},
    CpuRange{Vendor::Intel, 6, 0x66, 0x66, 0, 0xF, {}, "Cannon Lake"},
};

// Qualifies "not found" when some IOMMU entries could not be read at all.
std::string unreadable(const HostProfile& p)
{
    return p.iommu.errors.empty()
               ? std::string()
               : fmt::format(" ({} IOMMU entries unreadable)", p.iommu.errors.size());
}

bool vtd_posting_missing(const HostProfile& p, std::string& reason)
{
    const VmxFeatures& v = p.cpu.vmx;
    if (!v.vmx || !v.msrs_read || !v.posted_interrupts)
        return false;  // CPU posting absent or unknown: nothing to compare
    const std::string cpu_side = "the CPU posts interrupts (IA32_VMX_PINBASED_CTLS allows bit 7)";
    if (p.iommu.vtd.empty()) {
        reason = fmt::format("{} but no VT-d unit was found{}, so device interrupts cannot be "
                             "posted",
                             cpu_side, unreadable(p));
        return true;
    }
    for (const auto& u : p.iommu.vtd) {
        if (!u.posted_interrupts()) {
            reason = fmt::format("{} but VT-d unit {} lacks CAP.PI (bit 59, cap=0x{:x})", cpu_side,
                                 u.name, u.cap);
            return true;
        }
    }
    return false;
}

bool amd_ga_missing(const HostProfile& p, std::string& reason)
{
    if (!p.cpu.svm.avic)
        return false;
    const std::string cpu_side = "the CPU has AVIC (CPUID 0x8000000A EDX[13])";
    if (p.iommu.amd.empty()) {
        reason = fmt::format("{} but no AMD IOMMU was found{}, so device interrupts cannot be "
                             "delivered in guest mode",
                             cpu_side, unreadable(p));
        return true;
    }
    for (const auto& u : p.iommu.amd) {
        if (!u.ga()) {
            reason = fmt::format("{} but IOMMU {} lacks GASup (EFR bit 7, features=0x{:x})",
                                 cpu_side, u.name, u.features);
            return true;
        }
    }
    return false;
}

constexpr std::array kErrata = {
    Erratum{
        "AMD-1235",
        "AVIC may read a stale IsRunning=1 during ICR-write emulation and neither ring the "
        "doorbell nor exit",
        "AMD, Hygon",
        kAmd1235,
        nullptr,
        "AVIC/x2AVIC IPI acceleration (IsRunning in the physical APIC ID table)",
        "never set IsRunning: every IPI to another vCPU takes AVIC_INCOMPLETE_IPI and software "
        "wakes the target; device posting and self-IPIs stay accelerated",
        ErratumAction::AvicNoIsRunning,
        "AMD Revision Guide for Family 17h, erratum 1235; Linux arch/x86/kvm/svm/avic.c",
    },
    Erratum{
        "BZ-196683",
        "early Ryzen lockups while idle in package C6",
        "AMD",
        kRyzenIdle,
        nullptr,
        "host idle states while vCPUs halt",
        "update firmware ('Power Supply Idle Control: Typical Current Idle'); or hold a PM QoS "
        "request (/dev/cpu_dma_latency = 0) while vCPUs may idle (opt-in)",
        ErratumAction::PmQosHoldOptIn,
        "https://bugzilla.kernel.org/show_bug.cgi?id=196683",
    },
    Erratum{
        "INTEL-ISR-C6",
        "BDX99/SKX100/CLX30/...: a pending fixed interrupt may be dispatched before an "
        "interrupt of the same priority completes (after C6)",
        "Intel",
        kIntelIsrC6,
        nullptr,
        "host C6 while a vCPU has ISR bits set",
        "keep the host out of C6 while ISR bits are set (Xen); hvaccel reports it and can hold a "
        "PM QoS request that keeps host CPUs out of C6 (opt-in)",
        ErratumAction::KeepHostOutOfC6,
        "Intel spec updates BDX99, SKX100, CLX30, CFW125, KWB131; Xen "
        "xen/arch/x86/acpi/cpu_idle.c errata_c6_workaround()",
    },
    Erratum{
        "PLAT-VTD-NO-PI",
        "CPU posted interrupts without VT-d posted interrupts",
        "platform",
        {},
        vtd_posting_missing,
        "device interrupts on the kernel path (VFIO/irqfd bypass)",
        "report: IPIs and virtual-interrupt delivery are posted, device MSIs are remapped and "
        "injected by the host; hvaccel's iommu/ model is unaffected",
        ErratumAction::Report,
        "Intel VT-d spec 11.4.2 CAP.PI; SDM Vol3 Pin-Based VM-Execution Controls bit 7",
    },
    Erratum{
        "PLAT-AMD-NO-GA",
        "AVIC without IOMMU guest virtual APIC (GA) mode",
        "platform",
        {},
        amd_ga_missing,
        "device interrupts on the kernel path (VFIO/irqfd bypass)",
        "report: IPIs use AVIC, device MSIs are remapped and injected by the host",
        ErratumAction::Report,
        "AMD IOMMU spec 48882 EFR GASup; APM Vol2 15.29",
    },
};

bool in_range(const CpuIdentity& id, const CpuRange& r)
{
    return id.vendor == r.vendor && id.family == r.family && id.model >= r.model_lo &&
           id.model <= r.model_hi && id.stepping >= r.stepping_lo && id.stepping <= r.stepping_hi &&
           (r.brand_contains.empty() || id.brand.find(r.brand_contains) != std::string::npos);
}

}  // namespace

std::string_view action_name(ErratumAction a)
{
    switch (a) {
    case ErratumAction::Report:
        return "report";
    case ErratumAction::AvicNoIsRunning:
        return "avic: IsRunning never set";
    case ErratumAction::PmQosHoldOptIn:
        return "warn; PM QoS hold on request";
    case ErratumAction::KeepHostOutOfC6:
        return "warn; PM QoS hold keeps host out of C6 on request";
    }
    return "report";
}

std::span<const Erratum> errata_table()
{
    return kErrata;
}

std::vector<std::string_view> pm_qos_hold_errata(const HostProfile& profile)
{
    std::vector<std::string_view> ids;
    for (const auto& m : profile.errata)
        if (m.erratum->action == ErratumAction::PmQosHoldOptIn ||
            m.erratum->action == ErratumAction::KeepHostOutOfC6)
            ids.push_back(m.erratum->id);
    return ids;
}

std::vector<ErratumMatch> match_errata(const HostProfile& profile)
{
    std::vector<ErratumMatch> out;
    const CpuIdentity& id = profile.cpu.id;
    for (const Erratum& e : kErrata) {
        if (e.platform) {
            std::string reason;
            if (e.platform(profile, reason))
                out.push_back({&e, std::move(reason)});
            continue;
        }
        for (const CpuRange& r : e.cpus) {
            if (!in_range(id, r))
                continue;
            std::string reason =
                fmt::format("{} family 0x{:x} model 0x{:x} stepping {} is {}",
                            vendor_name(id.vendor), id.family, id.model, id.stepping, r.label);
            if (!r.brand_contains.empty())
                reason += fmt::format(" (brand '{}')", id.brand);
            out.push_back({&e, std::move(reason)});
            break;
        }
    }
    return out;
}

}  // namespace hv::host
