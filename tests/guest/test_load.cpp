// Load: 64 vCPUs on this 2-core host exchange IPIs (unicast to every other CPU in turn and one
// broadcast each) and take IOAPIC device interrupts, on every APIC backend
// (guest/tests/load_ipi.c). Asserts: the run ends (no deadlock: the guest bounds its own waits, the
// test its time), every IPI and device interrupt arrived exactly once, and hvaccel's peak RSS stays
// below a bound. The figures are printed for docs/reliability.md.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "process.hpp"

using hvtest::guest;
using hvtest::hvaccel;

namespace {

constexpr unsigned kVcpus = 64;
constexpr unsigned kRounds = 256;
// hvaccel itself, its 64 vCPU threads and the pages the guest touches: about 8 MiB measured.
constexpr long kMaxRssKib = 64 * 1024;
constexpr int kTimeoutS = 110;

// Runs argv with stdout captured and stderr shown; its peak RSS comes from wait4().
hv::support::ProcessResult run_measured(const std::vector<std::string>& argv)
{
    hv::support::ProcessOptions opt;
    opt.err = hv::support::Sink::inherited();
    opt.stdin_null = false;
    opt.timeout_s = kTimeoutS;
    return hv::support::run_process(argv, opt);
}

void load_on(const std::string& apic)
{
    REQUIRE_KVM();
    auto c = run_measured({hvaccel(), "run", guest("load_ipi"), "--vcpus", std::to_string(kVcpus),
                           "--apic", apic, "--cmdline", "rounds=" + std::to_string(kRounds)});
    ASSERT_FALSE(c.timed_out) << apic << ": no end after " << kTimeoutS << " s\n" << c.out;
    EXPECT_EQ(c.status, hvtest::guest_status(0)) << apic << "\n" << c.out;
    // "load: ... IPIs sent A received B; device interrupts sent C received D" (no <regex>: GCC 12
    // warns inside it at -O1, which the ASan build turns into an error).
    unsigned long ipis = 0, ipis_recv = 0, dev = 0, dev_recv = 0;
    auto at = c.out.find("IPIs sent ");
    ASSERT_NE(at, std::string::npos) << c.out;
    ASSERT_EQ(std::sscanf(c.out.c_str() + at,
                          "IPIs sent %lu received %lu; device interrupts sent %lu received %lu",
                          &ipis, &ipis_recv, &dev, &dev_recv),
              4)
        << c.out;
    EXPECT_EQ(ipis, ipis_recv);
    EXPECT_EQ(dev, dev_recv);
    EXPECT_EQ(ipis, kVcpus * kRounds + kVcpus * (kVcpus - 1));
    EXPECT_LT(c.max_rss_kib, kMaxRssKib) << apic;
    std::printf("load %-12s %u vCPUs: IPIs %lu sent = received, device interrupts %lu sent = "
                "received, %.1f s, peak RSS %ld KiB\n",
                apic.c_str(), kVcpus, ipis, dev, c.seconds, c.max_rss_kib);
    ::testing::Test::RecordProperty("seconds", std::to_string(c.seconds));
    ::testing::Test::RecordProperty("max_rss_kib", std::to_string(c.max_rss_kib));
}

}  // namespace

TEST(Load, SixtyFourVcpusKernel)
{
    load_on("kernel");
}

TEST(Load, SixtyFourVcpusEmulated)
{
    load_on("emulated");
}

TEST(Load, SixtyFourVcpusApicv)
{
    load_on("apicv");
}

TEST(Load, SixtyFourVcpusAvic)
{
    load_on("avic");
}

TEST(Load, SixtyFourVcpusX2avic)
{
    load_on("avic,x2avic");
}
