// CPU identity and feature decoding from raw CPUID leaves and VMX capability MSRs.
#include <gtest/gtest.h>

#include "core/base/error.hpp"
#include "core/host/cpu.hpp"
#include "tests/host/real_cpus.hpp"

namespace hv::host {
namespace {

using namespace realcpu;

// Given display family/model/stepping, set_signature must produce the CPUID.1:EAX values the
// vendors publish (the encoder is the inverse of the SDM "Figure 3-6" decoding).
TEST(CpuSignature, EncodesPublishedSignatures)
{
    struct Case {
        RealCpu cpu;
        std::uint32_t eax;
    };
    const Case cases[] = {
        {ryzen7_1700(), 0x00800F11}, {epyc_7702(), 0x00830F10},      {epyc_7763(), 0x00A00F11},
        {epyc_9654(), 0x00A10F11},   {hygon_c86_7185(), 0x00900F01}, {xeon_gold_6248(), 0x00050657},
        {xeon_8480(), 0x000806F8},
    };
    for (const auto& c : cases)
        EXPECT_EQ(c.cpu.cpuid.query(1)->eax, c.eax) << c.cpu.name;
}

TEST(CpuSignature, DecodesDisplayFamilyAndModel)
{
    struct Case {
        std::uint32_t eax, family, model, stepping;
    };
    const Case cases[] = {
        {0x00000543, 5, 0x4, 3},      // Pentium MMX: no extended fields below family 6
        {0x000306A9, 6, 0x3A, 9},     // Ivy Bridge: family 6 uses the extended model
        {0x00000F29, 0xF, 0x2, 9},    // Pentium 4: family 0xF, extended family 0
        {0x00800F11, 0x17, 0x01, 1},  // Zen: 0xF + 8
        {0x00A10F11, 0x19, 0x11, 1},  // Zen 4: extended model 1
    };
    for (const auto& c : cases) {
        CpuidTable t;
        t.set_vendor("GenuineIntel", 1, 0x80000000u);
        t.set(1, {c.eax, 0, 0, 0});
        const CpuInfo info = decode_cpu(t, NoMsrs("none"));
        EXPECT_EQ(info.id.family, c.family) << std::hex << c.eax;
        EXPECT_EQ(info.id.model, c.model) << std::hex << c.eax;
        EXPECT_EQ(info.id.stepping, c.stepping) << std::hex << c.eax;
    }
}

TEST(CpuIdentity, LibcpuidIdentifiesSyntheticCpus)
{
    const CpuInfo rome = decode_cpu(epyc_7702().cpuid, NoMsrs("none"));
    EXPECT_EQ(rome.id.vendor, Vendor::Amd);
    EXPECT_EQ(rome.id.vendor_string, "AuthenticAMD");
    EXPECT_EQ(rome.id.brand, "AMD EPYC 7702 64-Core Processor");
    EXPECT_NE(rome.id.codename.find("EPYC"), std::string::npos) << rome.id.codename;

    const CpuInfo hygon = decode_cpu(hygon_c86_7185().cpuid, NoMsrs("none"));
    EXPECT_EQ(hygon.id.vendor, Vendor::Hygon);
    EXPECT_EQ(hygon.id.family, 0x18u);

    const CpuInfo clx = decode_cpu(xeon_gold_6248().cpuid, NoMsrs("none"));
    EXPECT_EQ(clx.id.vendor, Vendor::Intel);
    EXPECT_EQ(clx.id.family, 6u);
    EXPECT_EQ(clx.id.model, 0x55u);
    EXPECT_EQ(clx.id.stepping, 7u);
    EXPECT_FALSE(clx.id.hypervisor);
}

TEST(CpuIdentity, RejectsLeaflessSources)
{
    CpuidTable empty;
    EXPECT_THROW(decode_cpu(empty, NoMsrs("none")), hv::Error);
}

TEST(CpuSvm, DecodesAvicGenerations)
{
    struct Case {
        RealCpu cpu;
        bool avic, x2avic, vnmi;
    };
    const Case cases[] = {
        {ryzen7_1700(), true, false, false},
        {epyc_7702(), true, false, false},
        {epyc_7763(), true, false, false},
        {epyc_9654(), true, true, true},
    };
    for (const auto& c : cases) {
        const CpuInfo info = decode_cpu(c.cpu.cpuid, NoMsrs("none"));
        EXPECT_TRUE(info.svm.svm) << c.cpu.name;
        EXPECT_TRUE(info.svm.npt) << c.cpu.name;
        EXPECT_TRUE(info.svm.vgif) << c.cpu.name;
        EXPECT_EQ(info.svm.avic, c.avic) << c.cpu.name;
        EXPECT_EQ(info.svm.x2avic, c.x2avic) << c.cpu.name;
        EXPECT_EQ(info.svm.vnmi, c.vnmi) << c.cpu.name;
        EXPECT_FALSE(info.vmx.vmx) << c.cpu.name;
    }
}

TEST(CpuVmx, DecodesCapabilityMsrs)
{
    const RealCpu clx = xeon_gold_6248();
    const CpuInfo a = decode_cpu(clx.cpuid, clx.msrs);
    EXPECT_TRUE(a.vmx.vmx);
    EXPECT_TRUE(a.vmx.msrs_read);
    EXPECT_TRUE(a.vmx.posted_interrupts);
    EXPECT_TRUE(a.vmx.tpr_shadow);
    EXPECT_TRUE(a.vmx.virtualize_x2apic);
    EXPECT_TRUE(a.vmx.apicv());
    EXPECT_FALSE(a.vmx.tertiary_controls);
    EXPECT_FALSE(a.vmx.ipi_virt);
    EXPECT_FALSE(a.svm.svm);

    const RealCpu spr = xeon_8480();
    const CpuInfo b = decode_cpu(spr.cpuid, spr.msrs);
    EXPECT_TRUE(b.vmx.apicv());
    EXPECT_TRUE(b.vmx.tertiary_controls);
    EXPECT_TRUE(b.vmx.ipi_virt);
}

TEST(CpuVmx, SaysWhenTheMsrModuleIsMissing)
{
    const CpuInfo a = decode_cpu(xeon_gold_6248().cpuid,
                                 NoMsrs("msr module not loaded (/dev/cpu/0/msr missing)"));
    EXPECT_TRUE(a.vmx.vmx);
    EXPECT_FALSE(a.vmx.msrs_read);
    EXPECT_FALSE(a.vmx.apicv());
    EXPECT_NE(a.vmx.msr_status.find("msr module not loaded"), std::string::npos);
}

TEST(CpuVmx, ReportsUnreadableVmxMsrs)
{
    MsrTable only_basic;  // VMX present but the control MSRs fault (e.g. VMX locked off)
    only_basic.set(0x480, 0);
    const CpuInfo a = decode_cpu(xeon_gold_6248().cpuid, only_basic);
    EXPECT_FALSE(a.vmx.msrs_read);
    EXPECT_NE(a.vmx.msr_status.find("unreadable"), std::string::npos);
}

TEST(CpuidTable, HidesLeavesAboveTheMaximum)
{
    CpuidTable t;
    t.set_vendor("AuthenticAMD", 1, 0x80000001u);
    t.set(7, {1, 2, 3, 4});
    t.set(0x8000000Au, {1, 2, 3, 4});
    EXPECT_FALSE(t.query(7));
    EXPECT_FALSE(t.query(0x8000000Au));
    EXPECT_TRUE(t.query(0x80000000u));
}

TEST(CpuidTable, ProfileKeepsTheRawLeaves)
{
    const RealCpu c = epyc_9654();
    const CpuInfo info = decode_cpu(c.cpuid, NoMsrs("none"));
    EXPECT_EQ(info.leaves.query(0x8000000Au)->edx, c.cpuid.query(0x8000000Au)->edx);
}

}  // namespace
}  // namespace hv::host
