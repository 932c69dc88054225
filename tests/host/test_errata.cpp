// The errata table against real CPUs: which entries match, and why.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/host/errata.hpp"
#include "tests/host/real_cpus.hpp"

namespace hv::host {
namespace {

using namespace realcpu;

std::set<std::string> ids(const HostProfile& p)
{
    std::set<std::string> s;
    for (const auto& m : p.errata)
        s.insert(std::string(m.erratum->id));
    return s;
}

using Ids = std::set<std::string>;

TEST(ErrataTable, EntriesAreComplete)
{
    std::set<std::string_view> seen;
    for (const Erratum& e : errata_table()) {
        EXPECT_TRUE(seen.insert(e.id).second) << "duplicate id " << e.id;
        EXPECT_FALSE(e.title.empty()) << e.id;
        EXPECT_FALSE(e.vendor.empty()) << e.id;
        EXPECT_FALSE(e.affected_feature.empty()) << e.id;
        EXPECT_FALSE(e.workaround.empty()) << e.id;
        EXPECT_FALSE(e.source.empty()) << e.id;
        // Exactly one way to match: CPU ranges or a platform check.
        EXPECT_NE(e.cpus.empty(), e.platform == nullptr) << e.id;
        for (const CpuRange& r : e.cpus) {
            EXPECT_LE(r.model_lo, r.model_hi) << e.id;
            EXPECT_LE(r.stepping_lo, r.stepping_hi) << e.id;
            EXPECT_FALSE(r.label.empty()) << e.id;
        }
    }
    for (auto id : {"AMD-1235", "BZ-196683", "INTEL-ISR-C6", "PLAT-VTD-NO-PI"})
        EXPECT_TRUE(seen.count(id)) << id;
}

TEST(Errata, Ryzen7_1700)
{
    const HostProfile p = profile_of(ryzen7_1700(), "amd-desktop");
    // Zen 1 desktop: the AVIC IPI erratum, the idle lockups, and (no IOMMU exposed) AVIC
    // without a GA-capable IOMMU.
    EXPECT_EQ(ids(p), (Ids{"AMD-1235", "BZ-196683", "PLAT-AMD-NO-GA"}));
    EXPECT_NE(p.erratum("AMD-1235")->reason.find("family 0x17 model 0x1"), std::string::npos)
        << p.erratum("AMD-1235")->reason;
    EXPECT_NE(p.erratum("BZ-196683")->reason.find("Ryzen 7 1700"), std::string::npos);
}

TEST(Errata, Epyc7702)
{
    const HostProfile p = profile_of(epyc_7702(), "amd-server-noavic");
    // Zen 2 server: 1235 applies; the idle erratum is keyed to desktop Ryzen parts only.
    EXPECT_EQ(ids(p), (Ids{"AMD-1235"}));
    EXPECT_NE(p.erratum("AMD-1235")->reason.find("Zen 2"), std::string::npos);
}

TEST(Errata, Epyc7763)
{
    // Zen 3 shares family 0x19 with Zen 4 and is not affected by 1235.
    EXPECT_EQ(ids(profile_of(epyc_7763(), "amd-server-noavic")), Ids{});
}

TEST(Errata, Epyc9654)
{
    EXPECT_EQ(ids(profile_of(epyc_9654(), "amd-server-avic")), Ids{});
}

TEST(Errata, HygonFamily18)
{
    EXPECT_EQ(ids(profile_of(hygon_c86_7185(), "amd-server-noavic")), (Ids{"AMD-1235"}));
}

TEST(Errata, XeonGold6248)
{
    const HostProfile p = profile_of(xeon_gold_6248(), "intel-clx");
    EXPECT_EQ(ids(p), (Ids{"INTEL-ISR-C6"}));
    EXPECT_NE(p.erratum("INTEL-ISR-C6")->reason.find("model 0x55 stepping 7"), std::string::npos);
    EXPECT_NE(p.erratum("INTEL-ISR-C6")->reason.find("Cascade Lake"), std::string::npos);
}

TEST(Errata, XeonGold6248OnPlatformWithoutVtdPosting)
{
    const HostProfile p = profile_of(xeon_gold_6248(), "intel-nopi");
    EXPECT_EQ(ids(p), (Ids{"INTEL-ISR-C6", "PLAT-VTD-NO-PI"}));
    EXPECT_NE(p.erratum("PLAT-VTD-NO-PI")->reason.find("dmar0 lacks CAP.PI"), std::string::npos)
        << p.erratum("PLAT-VTD-NO-PI")->reason;
}

TEST(Errata, PlatformCheckNeedsKnownCpuPosting)
{
    // Without the msr module the CPU side is unknown: no platform match, but a note.
    ProfileOptions o;
    o.msrs = false;
    const HostProfile p = profile_of(xeon_gold_6248(), "intel-nopi", o);
    EXPECT_EQ(ids(p), (Ids{"INTEL-ISR-C6"}));
    EXPECT_TRUE(std::any_of(p.notes.begin(), p.notes.end(), [](const std::string& n) {
        return n.find("msr module not loaded") != std::string::npos;
    }));
}

TEST(Errata, SapphireRapids)
{
    EXPECT_EQ(ids(profile_of(xeon_8480(), "intel-spr")), Ids{});
    // No VT-d unit at all is also "no VT-d posted interrupts".
    const HostProfile bare = profile_of(xeon_8480(), "empty");
    EXPECT_EQ(ids(bare), (Ids{"PLAT-VTD-NO-PI"}));
    EXPECT_NE(bare.erratum("PLAT-VTD-NO-PI")->reason.find("no VT-d unit"), std::string::npos);
}

TEST(Errata, PmQosHoldIsOfferedForIdleErrata)
{
    EXPECT_EQ(pm_qos_hold_errata(profile_of(ryzen7_1700(), "amd-desktop")),
              std::vector<std::string_view>{"BZ-196683"});
    EXPECT_EQ(pm_qos_hold_errata(profile_of(xeon_gold_6248(), "intel-clx")),
              std::vector<std::string_view>{"INTEL-ISR-C6"});
    EXPECT_TRUE(pm_qos_hold_errata(profile_of(epyc_9654(), "amd-server-avic")).empty());
}

TEST(Errata, SteppingAndBrandBoundaries)
{
    // An EPYC on the Summit Ridge model number is not a desktop Ryzen.
    RealCpu naples = ryzen7_1700();
    naples.cpuid.set_brand("AMD EPYC 7601 32-Core Processor");
    EXPECT_EQ(ids(profile_of(naples, "amd-server-noavic")), (Ids{"AMD-1235"}));
    // Ice Lake-SP (model 0x6A) is past the ISR/C6 list.
    RealCpu icx = xeon_gold_6248();
    icx.cpuid.set_signature(6, 0x6A, 6, 1u << 5, 0);
    EXPECT_EQ(ids(profile_of(icx, "intel-clx")), Ids{});
}

}  // namespace
}  // namespace hv::host
