// sysfs/procfs readers on fixture trees: KVM provider and parameters, IOMMU units, APIC IDs.
#include <gtest/gtest.h>

#include <linux/kvm.h>

#include "core/base/error.hpp"
#include "core/host/iommu.hpp"
#include "core/host/kvm_info.hpp"
#include "core/host/sysfs.hpp"
#include "core/host/topology.hpp"
#include "tests/host/real_cpus.hpp"

namespace hv::host {
namespace {

using realcpu::fixture_root;

TEST(Sysfs, ParsesHexAttributes)
{
    EXPECT_EQ(parse_hex_u64("8d2078c106f0466\n", "cap"), 0x8d2078c106f0466u);
    EXPECT_EQ(parse_hex_u64("0xFF", "cap"), 0xFFu);
    EXPECT_EQ(parse_hex_u64("ffffffffffffffff", "cap"), ~std::uint64_t{0});
    EXPECT_THROW(parse_hex_u64("", "cap"), hv::Error);
    EXPECT_THROW(parse_hex_u64("zzzz", "cap"), hv::Error);
    EXPECT_THROW(parse_hex_u64("1ffffffffffffffff", "cap"), hv::Error);  // 65 bits
    try {
        parse_hex_u64("12 34", "dmar0 intel-iommu/cap");
        FAIL();
    } catch (const hv::Error& e) {
        EXPECT_STREQ(e.what(), "dmar0 intel-iommu/cap: '12 34' is not a hexadecimal number");
    }
}

TEST(Sysfs, ParsesModuleBooleans)
{
    EXPECT_EQ(parse_param_bool("Y\n"), true);
    EXPECT_EQ(parse_param_bool("N"), false);
    EXPECT_EQ(parse_param_bool("1"), true);
    EXPECT_EQ(parse_param_bool("0"), false);
    EXPECT_EQ(parse_param_bool("-1"), std::nullopt);
    EXPECT_EQ(parse_param_bool(""), std::nullopt);
}

TEST(Sysfs, ReadFileErrorsNameTheFile)
{
    try {
        read_file(fixture_root("empty") + "/no/such/file");
        FAIL();
    } catch (const hv::Error& e) {
        EXPECT_NE(std::string(e.what()).find("/no/such/file: No such file or directory"),
                  std::string::npos)
            << e.what();
    }
    // Size limit: a "sysfs attribute" larger than allowed is garbage.
    EXPECT_THROW(read_file(fixture_root("intel-clx") + "/proc/cpuinfo", 16), hv::Error);
}

TEST(KvmInfo, FindsVendorModulesAndParameters)
{
    const KvmCapTable caps({{KVM_CAP_SPLIT_IRQCHIP, 1}, {KVM_CAP_MAX_VCPUS, 1024}});
    const KvmInfo k = read_kvm_info(fixture_root("intel-clx"), &caps);
    EXPECT_TRUE(k.present);
    EXPECT_EQ(k.api_version, 12);
    EXPECT_EQ(k.provider, "kvm_intel");
    EXPECT_EQ(k.param("enable_apicv"), "Y");
    EXPECT_EQ(k.param_bool("enable_ipiv"), false);
    EXPECT_TRUE(k.kernel_uses_apic_hw());
    EXPECT_EQ(k.cap("SPLIT_IRQCHIP"), 1);
    EXPECT_EQ(k.cap("MAX_VCPUS"), 1024);
    EXPECT_EQ(k.cap("X86_USER_SPACE_MSR"), 0);

    const KvmInfo a = read_kvm_info(fixture_root("amd-server-avic"), &caps);
    EXPECT_EQ(a.provider, "kvm_amd");
    EXPECT_TRUE(a.kernel_uses_apic_hw());
    EXPECT_EQ(a.kernel_apic_summary(), "kvm_amd avic=Y force_avic=N");
}

TEST(KvmInfo, ReportsOtherProvidersByName)
{
    const KvmCapTable caps({});
    const KvmInfo k = read_kvm_info(fixture_root("pvm"), &caps);
    EXPECT_EQ(k.provider, "kvm_pvm");
    EXPECT_EQ(k.param("pvm_emul_batch"), "1024");
    EXPECT_FALSE(k.param("halt_poll_ns")) << "the generic kvm module is not the provider";
    EXPECT_FALSE(k.kernel_uses_apic_hw());
    EXPECT_EQ(k.kernel_apic_summary(), "kvm_pvm, no hardware APIC virtualization");
}

TEST(KvmInfo, AbsentKvmAndGarbageParameters)
{
    const KvmInfo none = read_kvm_info(fixture_root("empty"), nullptr, "open /dev/kvm: ENOENT");
    EXPECT_FALSE(none.present);
    EXPECT_EQ(none.error, "open /dev/kvm: ENOENT");
    EXPECT_EQ(none.provider, "");

    const KvmCapTable caps({});
    const KvmInfo g = read_kvm_info(fixture_root("garbage"), &caps);
    EXPECT_EQ(g.provider, "kvm_intel");
    EXPECT_EQ(g.param_bool("enable_apicv"), std::nullopt);
    EXPECT_FALSE(g.kernel_uses_apic_hw());
    EXPECT_EQ(g.kernel_apic_summary(),
              "kvm_intel enable_apicv=maybe, no hardware APIC virtualization");
}

TEST(Iommu, ReadsVtdUnitsAndDmar)
{
    const IommuInfo io = read_iommu(fixture_root("intel-clx"));
    EXPECT_TRUE(io.errors.empty());
    ASSERT_EQ(io.vtd.size(), 2u);
    EXPECT_EQ(io.vtd[0].name, "dmar0");
    EXPECT_EQ(io.vtd[0].cap, 0x8d2078c106f0466u);
    EXPECT_TRUE(io.vtd[0].posted_interrupts());
    EXPECT_TRUE(io.vtd[0].interrupt_remapping());
    EXPECT_TRUE(io.vtd[0].extended_interrupt_mode());
    EXPECT_TRUE(io.vtd_posting());
    ASSERT_TRUE(io.dmar);
    EXPECT_EQ(io.dmar->drhds.size(), 2u);
    EXPECT_FALSE(io.none_found());

    const IommuInfo nopi = read_iommu(fixture_root("intel-nopi"));
    ASSERT_EQ(nopi.vtd.size(), 1u);
    EXPECT_FALSE(nopi.vtd[0].posted_interrupts());
    EXPECT_FALSE(nopi.vtd_posting());
}

TEST(Iommu, ReadsAmdUnitsInBothFormats)
{
    const IommuInfo io = read_iommu(fixture_root("amd-server-avic"));
    EXPECT_TRUE(io.errors.empty());
    ASSERT_EQ(io.amd.size(), 2u);
    EXPECT_EQ(io.amd[0].features, 0x58f77ef22294adeu);
    EXPECT_EQ(io.amd[0].features2, 0x5u);
    EXPECT_TRUE(io.amd[0].ga());
    EXPECT_TRUE(io.amd_ga());
    ASSERT_TRUE(io.ivrs);
    EXPECT_EQ(io.ivrs->ivhds.size(), 2u);

    const IommuInfo old = read_iommu(fixture_root("amd-server-noavic"));
    ASSERT_EQ(old.amd.size(), 1u);
    EXPECT_FALSE(old.amd[0].features2);
    EXPECT_TRUE(old.amd[0].ga());
    EXPECT_EQ(old.acpi_note, "no DMAR or IVRS table");
    EXPECT_FALSE(parse_amd_unit("x", "58f77ef22294a5e").ga());
}

TEST(Iommu, NoneFound)
{
    const IommuInfo io = read_iommu(fixture_root("empty"));
    EXPECT_TRUE(io.none_found());
    EXPECT_TRUE(io.errors.empty());
    EXPECT_FALSE(io.vtd_posting());
    EXPECT_FALSE(io.amd_ga());
}

TEST(Iommu, GarbageIsReportedNotFatal)
{
    const IommuInfo io = read_iommu(fixture_root("garbage"));
    EXPECT_TRUE(io.vtd.empty());
    EXPECT_TRUE(io.amd.empty());
    EXPECT_FALSE(io.dmar);
    EXPECT_FALSE(io.ivrs);
    // dmar0 bad cap, dmar1 missing ecap, ivhd0 empty, ivhd1 bad EFR2, DMAR truncated, IVRS junk.
    ASSERT_EQ(io.errors.size(), 6u);
    const auto joined = [&] {
        std::string s;
        for (const auto& e : io.errors)
            s += e + "\n";
        return s;
    }();
    EXPECT_NE(joined.find("dmar0 intel-iommu/cap: 'zzzz' is not a hexadecimal number"),
              std::string::npos)
        << joined;
    EXPECT_NE(joined.find("dmar1/intel-iommu/ecap: No such file or directory"), std::string::npos)
        << joined;
    EXPECT_NE(joined.find("ivhd0 amd-iommu/features: empty value"), std::string::npos) << joined;
    EXPECT_NE(joined.find("(EFR2): 'xyz'"), std::string::npos) << joined;
    EXPECT_NE(joined.find("ACPI DMAR: truncated"), std::string::npos) << joined;
    EXPECT_NE(joined.find("ACPI IVRS:"), std::string::npos) << joined;
}

TEST(ApicIds, FromCpuinfo)
{
    const auto ids = read_apic_ids(fixture_root("intel-clx"));
    ASSERT_EQ(ids.size(), 4u);
    EXPECT_EQ(ids.at(3), 6u);
    // Garbage: unparsable numbers are skipped, nothing throws.
    EXPECT_TRUE(read_apic_ids(fixture_root("garbage")).empty());
    EXPECT_TRUE(read_apic_ids(fixture_root("empty")).empty());
    EXPECT_TRUE(parse_cpuinfo_apic_ids("processor: 1\napicid: 7").size() == 1);
}

}  // namespace
}  // namespace hv::host
