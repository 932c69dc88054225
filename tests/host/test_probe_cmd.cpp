// `hvaccel probe` in-process: the JSON parses and names what this machine has.
#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "cmd/probe.hpp"
#include "core/host/report.hpp"
#include "tests/host/real_cpus.hpp"

namespace hv::host {
namespace {

struct ProbeRun {
    int rc;
    std::string out, err;
};

ProbeRun probe(std::vector<std::string> args)
{
    std::ostringstream out, err;
    const int rc = hv::cli::run_probe(args, out, err);
    return {rc, out.str(), err.str()};
}

TEST(ProbeCmd, JsonParsesAndNamesThisHost)
{
    const ProbeRun r = probe({"--json"});
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    for (auto key : {"cpu", "kvm", "iommu", "topology", "errata", "apic_auto", "notes"})
        EXPECT_TRUE(j.contains(key)) << key;
    const HostProfile live = probe_host();
    EXPECT_EQ(j["cpu"]["vendor_string"], live.cpu.id.vendor_string);
    EXPECT_EQ(j["cpu"]["family"], live.cpu.id.family);
    EXPECT_EQ(j["cpu"]["model"], live.cpu.id.model);
    EXPECT_EQ(j["kvm"]["provider"], live.kvm.provider);
    EXPECT_EQ(j["topology"]["pus"], live.topology.pus);
    EXPECT_EQ(j["msr_status"], live.msr_status);
    EXPECT_EQ(j["iommu"]["none_found"], live.iommu.none_found());
    EXPECT_EQ(j["apic_auto"]["reason"], choose_backend(live, "auto").reason);
    EXPECT_TRUE(j["cpu"]["cpuid_leaves"].is_array());
    EXPECT_FALSE(j["cpu"]["cpuid_leaves"].empty());
}

TEST(ProbeCmd, TextHasEverySection)
{
    const ProbeRun r = probe({});
    ASSERT_EQ(r.rc, 0) << r.err;
    for (auto s :
         {"CPU\n", "KVM\n", "IOMMU\n", "Topology (", "Errata\n", "APIC backend for --apic auto\n"})
        EXPECT_NE(r.out.find(s), std::string::npos) << s;
}

TEST(ProbeCmd, ExplicitBackendAndPlacement)
{
    // A backend this host cannot run is reported as refused, with exit status 1.
    const ProbeRun r = probe({"--json", "--apic=avic", "--pin", "auto", "--vcpus", "1"});
    const bool refused = choose_backend(probe_host(), "avic").refused;
    ASSERT_EQ(r.rc, refused ? 1 : 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["apic_requested"]["name"], "avic");
    EXPECT_EQ(j["apic_requested"]["refused"], refused);
    EXPECT_EQ(j["apic_requested"]["backend"], refused ? "" : "avic");
    EXPECT_EQ(j["pin"]["entries"].size(), 1u);
}

TEST(ProbeCmd, BadUsageIsOneLineAndExitTwo)
{
    for (const auto& args : std::vector<std::vector<std::string>>{{"--frobnicate"},
                                                                  {"extra"},
                                                                  {"--apic"},
                                                                  {"--apic", "x2avic"},
                                                                  {"--vcpus", "0"},
                                                                  {"--json=1"}}) {
        const ProbeRun r = probe(args);
        EXPECT_EQ(r.rc, 2) << args[0];
        EXPECT_TRUE(r.out.empty()) << args[0];
        ASSERT_FALSE(r.err.empty()) << args[0];
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
        EXPECT_EQ(r.err.rfind("hvaccel: ", 0), 0u) << r.err;
    }
    EXPECT_EQ(probe({"--frobnicate"}).err,
              "hvaccel: probe: unknown option '--frobnicate' (see hvaccel probe --help)\n");
}

TEST(ProbeCmd, CmdProbeSkipsTheCommandName)
{
    char a0[] = "probe", a1[] = "--help";
    char* argv[] = {a0, a1, nullptr};
    testing::internal::CaptureStdout();
    const int rc = cmd_probe(2, argv);
    const std::string out = testing::internal::GetCapturedStdout();
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(out.rfind("usage: hvaccel probe", 0), 0u) << out;
}

TEST(Report, JsonOfARealCpuProfile)
{
    const HostProfile p = realcpu::profile_of(realcpu::epyc_7702(), "amd-server-noavic");
    const auto j = profile_to_json(p, choose_backend(p, "avic"));
    EXPECT_EQ(j["cpu"]["family"], 0x17);
    EXPECT_EQ(j["cpu"]["model"], 0x31);
    EXPECT_EQ(j["cpu"]["svm"]["avic"], true);
    EXPECT_EQ(j["errata"][0]["id"], "AMD-1235");
    EXPECT_EQ(j["apic_auto"]["errata_applied"][0], "AMD-1235");
    EXPECT_EQ(j["iommu"]["amd"][0]["ga"], true);
    EXPECT_EQ(j["iommu"]["amd"][0]["features"], "0x58f77ef22294ade");
    const std::string text = profile_to_text(p, choose_backend(p, "auto"));
    EXPECT_NE(text.find("AMD-1235: AVIC may read a stale IsRunning"), std::string::npos);
}

}  // namespace
}  // namespace hv::host

namespace hv::host {
namespace {

TEST(Report, TextOfAnIntelServerAndAGarbageHost)
{
    const HostProfile p = realcpu::profile_of(realcpu::xeon_8480(), "intel-spr");
    const std::string text = profile_to_text(p, choose_backend(p, "auto"));
    EXPECT_NE(text.find("VMX         yes; APICv yes"), std::string::npos) << text;
    EXPECT_NE(text.find("IPIv yes"), std::string::npos);
    EXPECT_NE(text.find("VT-d dmar0: cap=0x19ed008c40780c66"), std::string::npos);
    EXPECT_NE(text.find("kernel: kvm_intel enable_apicv=Y enable_ipiv=Y"), std::string::npos);

    // A host whose sysfs is garbage still yields a profile, a choice and a report.
    const HostProfile g = realcpu::profile_of(realcpu::xeon_gold_6248(), "garbage");
    EXPECT_EQ(g.iommu.errors.size(), 6u);
    ASSERT_TRUE(g.has_erratum("PLAT-VTD-NO-PI"));
    EXPECT_NE(g.erratum("PLAT-VTD-NO-PI")->reason.find("(6 IOMMU entries unreadable)"),
              std::string::npos);
    const BackendChoice c = choose_backend(g, "auto");
    EXPECT_EQ(c.reason, "kernel: in-kernel LAPIC (kvm_intel enable_apicv=maybe, no hardware APIC "
                        "virtualization)");
    const std::string gt = profile_to_text(g, c);
    EXPECT_NE(gt.find("error: "), std::string::npos);
    EXPECT_NO_THROW((void)profile_to_json(g, c).dump());
}

}  // namespace
}  // namespace hv::host
