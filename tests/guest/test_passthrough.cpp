// Interrupt passthrough end to end (docs/passthrough.md): the guest finds the irq device
// by scanning PCI, programs MSI-X and takes bursts raised by the device's host thread, on every
// backend, each with its own remapping path; exact architectural exit counts for posted device
// interrupts; a hostile guest; and the same latency guest under QEMU with its edu device.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "process.hpp"

using hvtest::guest;
using hvtest::hvaccel;

namespace {

// "    iommu NAME VALUE" / "    apic NAME VALUE" lines of --stats, summed over vCPUs. (No
// <regex>: it trips GCC 12's -Wmaybe-uninitialized in the -O1 sanitizer builds.)
std::map<std::string, long> counters(const std::string& err, const std::string& kind)
{
    std::map<std::string, long> out;
    std::istringstream in(err);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string k, name, value;
        if (line.empty() || line[0] != ' ' || !(words >> k >> name >> value) || k != kind ||
            value.find_first_not_of("0123456789") != std::string::npos)
            continue;
        std::string rest;
        if (!(words >> rest))
            out[name] += std::stol(value);
    }
    return out;
}

long get(const std::map<std::string, long>& c, const std::string& name)
{
    auto it = c.find(name);
    return it == c.end() ? 0 : it->second;
}

// The architectural APIC exits a backend counted on the interrupt path: apicv's VMX basic exit
// reasons; avic's AVIC_NOACCEL exits and the "msr" exit (the per-register avic_noaccel_trap_*
// lines break the trap count down and are not added again). AVIC_INCOMPLETE_IPI is left out:
// the series send no IPI, and the one the boot's INIT/SIPI to the AP takes depends on timing.
long apic_exits(const std::map<std::string, long>& apic)
{
    static const std::set<std::string> kExits = {"external_interrupt",
                                                 "msr_read",
                                                 "msr_write",
                                                 "tpr_below_threshold",
                                                 "apic_access",
                                                 "eoi_induced",
                                                 "apic_write",
                                                 "avic_noaccel_trap",
                                                 "avic_noaccel_fault_read",
                                                 "avic_noaccel_fault_write",
                                                 "msr"};
    long n = 0;
    for (const auto& [name, v] : apic)
        if (kExits.count(name))
            n += v;
    return n;
}

hvtest::Result run_device(const std::string& apic, const std::string& image,
                          const std::string& cmdline = "")
{
    std::vector<std::string> argv = {hvaccel(),  "run",     guest(image), "--vcpus", "2",
                                     "--irqdev", "--stats", "--apic",     apic};
    if (!cmdline.empty()) {
        argv.push_back("--cmdline");
        argv.push_back(cmdline);
    }
    return hvtest::run(argv, 120);
}

struct PathCase {
    const char* apic;
    const char* path;  // "interrupt remapping: PATH"
};

class DeviceOnBackend : public ::testing::TestWithParam<PathCase> {};

TEST_P(DeviceOnBackend, BurstsRetargetMaskingLogAndBars)
{
    REQUIRE_KVM();
    const PathCase& c = GetParam();
    auto r = run_device(c.apic, "msix_device");
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.status, hvtest::guest_status(0)) << r.out << r.err;
    EXPECT_EQ(r.out.find("not ok"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find(std::string("interrupt remapping: ") + c.path), std::string::npos)
        << r.err;
    // The guest's two refused BAR placements, its refused log, and no remapping fault: every
    // entry it programmed was a valid MSI.
    EXPECT_NE(r.err.find("bar-refused 2"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("log-refused 2"), std::string::npos) << r.err;
    auto iommu = counters(r.err, "iommu");
    EXPECT_EQ(get(iommu, "faulted"), 0) << r.err;
    std::string path = c.path;
    if (path == "vt-d posted") {
        EXPECT_GT(get(iommu, "posted"), 0);
        EXPECT_EQ(get(iommu, "remapped"), 0);
        EXPECT_GT(get(iommu, "notified"), 0);
    } else if (path == "amd ga") {
        // Both GA paths: the doorbell to a running target, the GA log for a halted one.
        EXPECT_GT(get(iommu, "posted"), 0);
        EXPECT_GT(get(iommu, "doorbells"), 0);
        EXPECT_GT(get(iommu, "ga_logged"), 0);
        EXPECT_EQ(get(iommu, "ga_logged"), get(iommu, "ga_log_wakeups"));
    } else if (path == "vt-d remapped") {
        EXPECT_GT(get(iommu, "remapped"), 0);
        EXPECT_EQ(get(iommu, "remapped"), get(iommu, "host_vector_delivered"));
    } else {
        EXPECT_GT(get(iommu, "irqfd_signalled"), 0);
        EXPECT_EQ(get(iommu, "irqfd_failed"), 0);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Passthrough, DeviceOnBackend,
    ::testing::Values(PathCase{"kernel", "irqfd"}, PathCase{"emulated", "vt-d remapped"},
                      PathCase{"apicv", "vt-d posted"},
                      PathCase{"apicv,noipiv,nopi", "vt-d remapped"}, PathCase{"avic", "amd ga"},
                      PathCase{"avic,x2avic", "amd ga"}, PathCase{"avic,erratum1235", "amd ga"}),
    [](const auto& p) {
        std::string s = p.param.apic;
        for (char& ch : s)
            if (ch == ',')
                ch = '_';
        return s;
    });

// Architectural exits per posted device interrupt: the difference between 60 and 20 interrupts
// of one series cancels boot and set-up. A posted interrupt to a running vCPU (ring-3 loop) takes
// no APIC exit on apicv or avic; to a halted vCPU it takes the wake-up path (apicv: wake-up
// vector; avic: GA log) and still no APIC exit.
struct ExitCase {
    const char* apic;
    const char* mode;
};
class PostedExits : public ::testing::TestWithParam<ExitCase> {};

TEST_P(PostedExits, ZeroApicExitsPerInterrupt)
{
    REQUIRE_KVM();
    const ExitCase& c = GetParam();
    std::string mode = std::string("mode=") + c.mode;
    auto small = run_device(c.apic, "msix_latency", "samples=10 " + mode);
    auto large = run_device(c.apic, "msix_latency", "samples=50 " + mode);
    ASSERT_EQ(small.status, hvtest::guest_status(0)) << small.out << small.err;
    ASSERT_EQ(large.status, hvtest::guest_status(0)) << large.out << large.err;
    auto a0 = counters(small.err, "apic"), a1 = counters(large.err, "apic");
    auto i0 = counters(small.err, "iommu"), i1 = counters(large.err, "iommu");
    EXPECT_EQ(apic_exits(a1) - apic_exits(a0), 0) << small.err << large.err;
    EXPECT_EQ(get(i1, "posted") - get(i0, "posted"), 40);
    EXPECT_EQ(get(i1, "faulted") + get(i0, "faulted"), 0);
    bool halted = std::string(c.mode) == "halted";
    if (std::string(c.apic).rfind("avic", 0) == 0) {
        // Every post either rang the doorbell or was logged; halted targets are woken from
        // the GA log.
        EXPECT_EQ(get(i1, "doorbells") + get(i1, "ga_logged"),
                  get(i1, "posted") - get(i1, "coalesced"));
        if (halted) {
            EXPECT_GT(get(i1, "ga_logged") - get(i0, "ga_logged"), 0);
        }
    } else if (halted) {
        EXPECT_GT(get(a1, "wakeups") - get(a0, "wakeups"), 0);
    } else {
        EXPECT_GT(get(a1, "notifications") - get(a0, "notifications"), 0);
    }
}

INSTANTIATE_TEST_SUITE_P(Passthrough, PostedExits,
                         ::testing::Values(ExitCase{"apicv", "running"},
                                           ExitCase{"apicv", "halted"}, ExitCase{"avic", "running"},
                                           ExitCase{"avic", "halted"}),
                         [](const auto& p) {
                             return std::string(p.param.apic) + "_" + p.param.mode;
                         });

// A guest that writes garbage into BARs, the MSI-X table and the device's log address: hvaccel
// keeps running, refuses every placement outside the window and every log write outside RAM,
// and records the garbage MSIs as remapping faults.
TEST(Passthrough, HostileGuestIsContained)
{
    REQUIRE_KVM();
    for (const char* apic : {"apicv", "avic", "emulated", "kernel"}) {
        auto r = run_device(apic, "msix_hostile");
        ASSERT_FALSE(r.timed_out) << apic;
        EXPECT_EQ(r.status, hvtest::guest_status(0)) << apic << r.out << r.err;
        EXPECT_EQ(r.out.find("not ok"), std::string::npos) << apic << r.out;
        unsigned writes = 0;
        auto at = r.out.find("hostile: ");
        ASSERT_NE(at, std::string::npos) << apic << r.out;
        ASSERT_EQ(std::sscanf(r.out.c_str() + at, "hostile: %u writes", &writes), 1);
        EXPECT_GT(writes, 1000u);
        if (std::string(apic) != "kernel") {
            auto iommu = counters(r.err, "iommu");
            EXPECT_GT(get(iommu, "faulted"), 0) << apic << r.err;
        }
    }
}

// The latency guest under QEMU with its edu device: the same image finds edu, programs its MSI
// capability and passes the same exactly-once checks.
TEST(Passthrough, LatencyGuestUnderQemuEdu)
{
    REQUIRE_KVM();
    if (hvtest::run({"sh", "-c", "command -v qemu-system-x86_64"}, 10).status != 0)
        GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    auto q = hvtest::run({"qemu-system-x86_64",
                          "-machine",
                          "pc",
                          "-accel",
                          "kvm",
                          "-cpu",
                          "host",
                          "-smp",
                          "2",
                          "-m",
                          "128",
                          "-nodefaults",
                          "-display",
                          "none",
                          "-serial",
                          "stdio",
                          "-kernel",
                          guest("msix_latency"),
                          "-append",
                          "samples=10",
                          "-device",
                          "isa-debug-exit,iobase=0xf4,iosize=4",
                          "-device",
                          "edu"},
                         180);
    ASSERT_FALSE(q.timed_out);
    EXPECT_EQ(q.status, hvtest::guest_status(0)) << q.out << q.err;
    EXPECT_NE(q.out.find("msi_running: "), std::string::npos) << q.out;
    EXPECT_NE(q.out.find("msi_halted: "), std::string::npos) << q.out;
}

}  // namespace

namespace {

// A VM with the irq device refuses a snapshot with one clear error (its device state has no
// snapshot section yet) and keeps running; no file is left behind.
TEST(Passthrough, SnapshotRefusedWithIrqDevice)
{
    REQUIRE_KVM();
    char d[] = "/tmp/hvaccel-pt-XXXXXX";
    std::string dir = mkdtemp(d);
    auto bg = hvtest::spawn(
        {hvaccel(), "run", guest("idle"), "--vcpus", "2", "--irqdev", "--control", dir + "/ctl"},
        dir + "/out", dir + "/err");
    std::string reply =
        hvtest::control(dir + "/ctl", "{\"cmd\":\"snapshot\",\"path\":\"" + dir + "/s.hvs\"}");
    EXPECT_NE(reply.find("\"ok\":false"), std::string::npos) << reply;
    EXPECT_NE(reply.find("--irqdev"), std::string::npos) << reply;
    EXPECT_NE(::access((dir + "/s.hvs").c_str(), F_OK), 0);
    EXPECT_EQ(hvtest::control(dir + "/ctl", "{\"cmd\":\"quit\"}"), "{\"ok\":true}");
    EXPECT_EQ(bg.wait(), 0) << hvtest::slurp(dir + "/err");
    std::system(("rm -rf " + dir).c_str());
}

}  // namespace
