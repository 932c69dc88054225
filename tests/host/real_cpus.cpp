#include "tests/host/real_cpus.hpp"

#include <initializer_list>
#include <linux/kvm.h>

namespace hv::host::realcpu {

namespace {

constexpr std::uint32_t bits(std::initializer_list<unsigned> list)
{
    std::uint32_t v = 0;
    for (unsigned b : list)
        v |= 1u << b;
    return v;
}

// CPUID.1:ECX: SSE3 0, PCLMUL 1, VMX 5, SSSE3 9, CX16 13, SSE4.1 19, SSE4.2 20, x2APIC 21,
// POPCNT 23, TSC-deadline 24, AES 25, XSAVE 26, AVX 28, RDRAND 30.
constexpr std::uint32_t kIntelEcx = bits({0, 1, 5, 9, 13, 19, 20, 21, 23, 24, 25, 26, 28, 30});
constexpr std::uint32_t kAmdEcx = bits({0, 1, 9, 13, 19, 20, 21, 23, 25, 26, 28, 30});
// CPUID.1:EDX: FPU 0 ... APIC 9 ... SSE2 26, HTT 28 (a representative common set).
constexpr std::uint32_t kEdx = bits({0, 3, 4, 5, 6, 8, 9, 11, 13, 15, 19, 23, 24, 25, 26, 28});

// SVM feature word, CPUID 0x8000000A EDX (Linux cpufeatures.h word 15): NPT 0, LBRV 1, SVML 2,
// NRIPS 3, TSC rate 4, VMCB clean 5, flush-by-ASID 6, decode assists 7, pause filter 10,
// PF threshold 12, AVIC 13, V_VMSAVE_VMLOAD 15, vGIF 16, GMET 17, x2AVIC 18, V_SPEC_CTRL 20,
// vNMI 25, SVME addr check 28.
// Zen 1 as dumped from a Ryzen 7 1700: 0x0001BCFF.
constexpr std::uint32_t kSvmZen1 = 0x0001BCFFu;
constexpr std::uint32_t kSvmZen2 = kSvmZen1 | bits({17, 20});
constexpr std::uint32_t kSvmZen3 = kSvmZen2 | bits({28});
constexpr std::uint32_t kSvmZen4 = kSvmZen3 | bits({18, 25});

RealCpu amd(std::string name, std::string_view vendor, std::string_view brand, std::uint32_t family,
            std::uint32_t model, std::uint32_t stepping, std::uint32_t svm_edx)
{
    RealCpu c;
    c.name = std::move(name);
    c.cpuid.set_vendor(vendor, 0x10, 0x80000020u);
    c.cpuid.set_signature(family, model, stepping, kAmdEcx, kEdx);
    c.cpuid.set_brand(brand);
    // 0x80000001 ECX: LAHF 0, CmpLegacy 1, SVM 2, ExtApicSpace 3, AltMovCr8 4, ABM 5.
    c.cpuid.set(0x80000001u, {0, 0, bits({0, 1, 2, 3, 4, 5}), bits({11, 20, 26, 27, 29})});
    c.cpuid.set(0x8000000Au, {0x1, 0x8000, 0, svm_edx});
    return c;
}

// VMX capability MSRs: allowed-0 settings in the low half, allowed-1 in the high half.
RealCpu intel(std::string name, std::string_view brand, std::uint32_t model, std::uint32_t stepping,
              bool tertiary, std::uint64_t procbased3)
{
    RealCpu c;
    c.name = std::move(name);
    c.cpuid.set_vendor("GenuineIntel", 0x20, 0x80000008u);
    c.cpuid.set_signature(6, model, stepping, kIntelEcx, kEdx);
    c.cpuid.set_brand(brand);
    c.has_msrs = true;
    // Pin-based: ext-int exiting 0, NMI exiting 3, virtual NMIs 5, preemption timer 6,
    // process posted interrupts 7.
    c.msrs.set(0x481, (std::uint64_t{bits({0, 3, 5, 6, 7})} << 32) | 0x16);
    // Primary: ... TPR shadow 21, activate tertiary 17 (SPR on), activate secondary 31.
    std::uint32_t primary =
        bits({2, 3, 7, 9, 10, 11, 12, 15, 16, 19, 20, 21, 22, 23, 24, 25, 27, 28, 29, 30, 31});
    if (tertiary)
        primary |= bits({17});
    c.msrs.set(0x482, (std::uint64_t{primary} << 32) | 0x0401E172);
    // Secondary: virt APIC accesses 0, EPT 1, x2APIC virt 4, VPID 5, unrestricted 7,
    // APIC-register virt 8, virtual-interrupt delivery 9, PLE 10.
    c.msrs.set(0x48B,
               std::uint64_t{bits({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 20})} << 32);
    if (tertiary)
        c.msrs.set(0x492, procbased3);
    return c;
}

}  // namespace

RealCpu ryzen7_1700()
{
    return amd("Ryzen 7 1700", "AuthenticAMD", "AMD Ryzen 7 1700 Eight-Core Processor", 0x17, 0x01,
               1, kSvmZen1);
}
RealCpu epyc_7702()
{
    return amd("EPYC 7702", "AuthenticAMD", "AMD EPYC 7702 64-Core Processor", 0x17, 0x31, 0,
               kSvmZen2);
}
RealCpu epyc_7763()
{
    return amd("EPYC 7763", "AuthenticAMD", "AMD EPYC 7763 64-Core Processor", 0x19, 0x01, 1,
               kSvmZen3);
}
RealCpu epyc_9654()
{
    return amd("EPYC 9654", "AuthenticAMD", "AMD EPYC 9654 96-Core Processor", 0x19, 0x11, 1,
               kSvmZen4);
}
RealCpu hygon_c86_7185()
{
    return amd("Hygon C86 7185", "HygonGenuine", "Hygon C86 7185 32-core Processor", 0x18, 0x00, 1,
               kSvmZen1);
}
RealCpu xeon_gold_6248()
{
    return intel("Xeon Gold 6248", "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 0x55, 7, false, 0);
}
RealCpu xeon_8480()
{
    // Tertiary controls: LOADIWKEY exiting 0, IPI virtualization 4.
    return intel("Xeon Platinum 8480+", "Intel(R) Xeon(R) Platinum 8480+", 0x8F, 8, true,
                 bits({0, 4}));
}

std::string fixture_root(std::string_view host)
{
    return std::string(HV_HOST_FIXTURES) + "/hosts/" + std::string(host);
}

HostProfile profile_of(const RealCpu& cpu, std::string_view host, ProfileOptions opt)
{
    std::map<int, int> caps = {{KVM_CAP_IRQCHIP, 1},     {KVM_CAP_IMMEDIATE_EXIT, 1},
                               {KVM_CAP_SIGNAL_MSI, 1},  {KVM_CAP_IRQFD, 1},
                               {KVM_CAP_X2APIC_API, 3},  {KVM_CAP_TSC_DEADLINE_TIMER, 1},
                               {KVM_CAP_MAX_VCPUS, 4096}};
    if (opt.split_irqchip)
        caps[KVM_CAP_SPLIT_IRQCHIP] = 1;
    if (opt.user_space_msr)
        caps[KVM_CAP_X86_USER_SPACE_MSR] = 1;
    const KvmCapTable kvm(caps);
    const NoMsrs no_msrs("msr module not loaded (/dev/cpu/0/msr missing)");
    ProbeSources s;
    s.cpuid = &cpu.cpuid;
    s.msrs = (opt.msrs && cpu.has_msrs) ? static_cast<const MsrSource*>(&cpu.msrs) : &no_msrs;
    s.kvm = opt.kvm ? &kvm : nullptr;
    s.kvm_error = "open /dev/kvm: No such file or directory";
    s.root = fixture_root(host);
    s.synthetic_topology = opt.topology;
    return build_profile(s);
}

}  // namespace hv::host::realcpu
