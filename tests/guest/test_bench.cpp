// The latency workloads as correctness tests, `hvaccel bench` end to end, and the demo.
// Every raised interrupt must arrive exactly once (each workload counts on the raising side and
// in the handler and fails its image otherwise); timing never decides a result here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "process.hpp"

using hvtest::guest;
using hvtest::hvaccel;

namespace {

struct Case {
    const char* image;
    const char* mode;  // "" for none
    const char* vcpus;
};

const Case kCases[] = {
    {"bench_ipi_pingpong", "halted", "2"}, {"bench_ipi_pingpong", "running", "2"},
    {"bench_ipi_multicast", "", "4"},      {"bench_timer", "oneshot", "1"},
    {"bench_timer", "periodic", "1"},      {"bench_timer", "tscdeadline", "1"},
    {"bench_level_eoi", "halted", "2"},    {"bench_level_eoi", "running", "2"},
};

const char* const kBackends[] = {"kernel",       "emulated",          "apicv",
                                 "apicv,noipiv", "apicv,noipiv,nopi", "apicv,noipiv,nopi,novid",
                                 "avic",         "avic,x2avic",       "avic,erratum1235"};

std::string cmdline(const Case& c)
{
    std::string s = "samples=20";
    return *c.mode ? s + " mode=" + c.mode : s;
}

bool have_qemu()
{
    return hvtest::run({"sh", "-c", "command -v qemu-system-x86_64"}, 10).status == 0;
}

std::string temp_path(const std::string& name)
{
    return (std::filesystem::temp_directory_path() /
            ("hv-test-bench-" + std::to_string(getpid()) + "-" + name))
        .string();
}

// Every tag opened is closed in order ("<a>...</a>", "<b/>", the "<?xml ...?>" prolog), and
// every '<' starts a tag. (A hand scanner: <regex> trips GCC 12's -Wmaybe-uninitialized in the
// -O1 sanitizer builds.)
bool well_formed_tags(const std::string& xml)
{
    std::vector<std::string> open;
    for (std::size_t i = xml.find('<'); i != std::string::npos; i = xml.find('<', i + 1)) {
        std::size_t end = xml.find('>', i);
        if (end == std::string::npos || xml.find('<', i + 1) < end)
            return false;
        std::string tag = xml.substr(i + 1, end - i - 1);
        bool closing = !tag.empty() && tag[0] == '/';
        bool self = !tag.empty() && tag.back() == '/';
        std::size_t n0 = closing ? 1 : 0;
        std::size_t n1 = tag.find_first_of(" \t\n/>", n0);
        std::string name = tag.substr(n0, n1 == std::string::npos ? std::string::npos : n1 - n0);
        if (name.empty())
            return false;
        if (name[0] == '?' || name[0] == '!' || self)
            continue;
        if (closing) {
            if (open.empty() || open.back() != name)
                return false;
            open.pop_back();
        } else {
            open.push_back(name);
        }
    }
    return open.empty();
}

class BenchWorkload : public ::testing::TestWithParam<const char*> {};

// Each workload and mode on one backend: the guest passes every exactly-once check.
TEST_P(BenchWorkload, EveryInterruptArrivesExactlyOnce)
{
    REQUIRE_KVM();
    for (const Case& c : kCases) {
        auto r = hvtest::run({hvaccel(), "run", guest(c.image), "--vcpus", c.vcpus, "--apic",
                              GetParam(), "--cmdline", cmdline(c)},
                             60);
        SCOPED_TRACE(std::string(c.image) + " " + c.mode + " on " + GetParam());
        EXPECT_FALSE(r.timed_out) << "a lost interrupt left a vCPU halted";
        EXPECT_EQ(r.status, hvtest::guest_status(0)) << r.out << r.err;
        EXPECT_EQ(r.out.find("not ok"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find(": "), std::string::npos) << "no sample line: " << r.out;
        // The userspace LAPICs see the line lowered before the EOI: never a spurious entry.
        // With KVM's own LAPIC (kernel, and QEMU) an occasional one has been seen on this
        // host; it is reported by the bench (docs/benchmarks.md), not failed.
        if (std::string(GetParam()) != "kernel" && r.out.find("level_note:") != std::string::npos) {
            EXPECT_NE(r.out.find("level_note: spurious 0 "), std::string::npos) << r.out;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, BenchWorkload, ::testing::ValuesIn(kBackends),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                             std::string n = p.param;
                             std::replace(n.begin(), n.end(), ',', '_');
                             return n;
                         });

// The same images under QEMU+KVM (pc-testdev for the level workload): the guests' checks hold
// there too, so the QEMU column measures a correct run.
TEST(BenchWorkloadQemu, EveryInterruptArrivesExactlyOnce)
{
    REQUIRE_KVM();
    if (!have_qemu())
        GTEST_SKIP() << "qemu-system-x86_64 not installed";
    for (const Case& c : kCases) {
        auto r = hvtest::run({"qemu-system-x86_64",
                              "-machine",
                              "microvm",
                              "-accel",
                              "kvm",
                              "-cpu",
                              "host",
                              "-smp",
                              c.vcpus,
                              "-m",
                              "128",
                              "-nodefaults",
                              "-display",
                              "none",
                              "-serial",
                              "stdio",
                              "-kernel",
                              guest(c.image),
                              "-append",
                              cmdline(c),
                              "-device",
                              "isa-debug-exit,iobase=0xf4,iosize=4",
                              "-device",
                              "pc-testdev"},
                             60);
        SCOPED_TRACE(std::string(c.image) + " " + c.mode + " under QEMU");
        EXPECT_EQ(r.status, hvtest::guest_status(0)) << r.out << r.err;
        EXPECT_EQ(r.out.find("not ok"), std::string::npos) << r.out;
    }
    // (QEMU's level_note may count spurious level interrupts; they are reported, not failed.)
}

// `hvaccel bench` end to end with tiny counts on two backends (and QEMU where installed): it
// succeeds, prints a table per workload, and its JSON and SVG are what they claim to be.
TEST(BenchCommand, RunsEndToEndWithJsonAndPlot)
{
    REQUIRE_KVM();
    std::string json_path = temp_path("bench.json"), svg_path = temp_path("bench.svg");
    auto r = hvtest::run({hvaccel(), "bench", "--workload", "ipi_pingpong,timer", "--backend",
                          "kernel,apicv,noipiv", "--iterations", "5", "--repeat", "1", "--json",
                          json_path, "--plot", svg_path},
                         240);
    ASSERT_FALSE(r.timed_out);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("| path | series | count | min | p50 | p99 | p99.9 | max |"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.err.find("ipi_pingpong(halted) on kernel"), std::string::npos) << r.err;

    nlohmann::json j = nlohmann::json::parse(hvtest::slurp(json_path));  // throws if malformed
    EXPECT_TRUE(j["revision"].is_string());
    EXPECT_TRUE(j["date"].is_string());
    EXPECT_TRUE(j["command_line"].is_array());
    EXPECT_TRUE(j["host"]["cpu"].is_object()) << j["host"].dump();
    EXPECT_TRUE(j["host"]["kvm_module"].is_string());
    EXPECT_GT(j["tsc_khz"].get<double>(), 0);
    std::set<std::string> workloads;
    for (const auto& v : j["results"]) {
        workloads.insert(v["workload"].get<std::string>());
        std::set<std::string> paths;
        for (const auto& p : v["paths"]) {
            paths.insert(p["path"].get<std::string>());
            EXPECT_TRUE(p["ok"].get<bool>()) << p.dump();
            for (const auto& [name, s] : p["series"].items()) {
                if (s.contains("skipped"))
                    continue;
                EXPECT_EQ(s["count"].get<int>(), 5) << name;
                EXPECT_LE(s["min"].get<double>(), s["p50"].get<double>());
                EXPECT_LE(s["p50"].get<double>(), s["p99"].get<double>());
                EXPECT_LE(s["p99"].get<double>(), s["p999"].get<double>());
                EXPECT_LE(s["p999"].get<double>(), s["max"].get<double>());
            }
            if (p["path"] == "apicv,noipiv" && v["workload"] == "ipi_pingpong") {
                // Without IPIv every ICR write is an APIC-write exit: one per IPI.
                EXPECT_NEAR(
                    p["exits_per_1000_interrupts"]["architectural"]["apic_write"].get<double>(),
                    1000, 1)
                    << p.dump();
            }
        }
        EXPECT_TRUE(paths.count("kernel") && paths.count("apicv,noipiv")) << v.dump();
        if (have_qemu()) {
            EXPECT_TRUE(paths.count("qemu microvm")) << v.dump();
        }
    }
    EXPECT_EQ(workloads, (std::set<std::string>{"ipi_pingpong", "timer"}));

    std::string svg = hvtest::slurp(svg_path);
    EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
    EXPECT_NE(svg.find("<svg"), std::string::npos);
    EXPECT_NE(svg.find("<polyline"), std::string::npos);
    EXPECT_TRUE(well_formed_tags(svg));
    std::filesystem::remove(json_path);
    std::filesystem::remove(svg_path);
}

TEST(BenchCommand, BadOptionsGiveOneLineAndStatus2)
{
    const std::vector<std::vector<std::string>> bad = {
        {"--iterations", "0"},       {"--iterations", "x"}, {"--workload", "nope"},
        {"--backend", "avic,bogus"}, {"--backend", "warp"}, {"--plot", "out.png"},
        {"--repeat", "0"},           {"--frobnicate"},      {"stray"}};
    for (const auto& args : bad) {
        std::vector<std::string> argv = {hvaccel(), "bench"};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = hvtest::run(argv, 30);
        SCOPED_TRACE(args[0]);
        EXPECT_EQ(r.status, 2) << r.out << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_EQ(r.err.rfind("hvaccel: ", 0), 0u) << r.err;
    }
}

// The README's main command: every step of the tour passes, including the restore on another
// backend of a snapshot taken mid-run.
TEST(Demo, TourPasses)
{
    REQUIRE_KVM();
    auto r = hvtest::run({hvaccel(), "demo", "--iterations", "10"}, 110);
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("guest passed"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("the restored guest finished correctly"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("all passed"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("| kernel | halted_oneway |"), std::string::npos) << r.out;
}

}  // namespace
