// Guests boot on hvaccel and report their checks; the process exit status follows QEMU's
// isa-debug-exit rule (a guest status 0, all checks passed, is exit code 1).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "process.hpp"

using hvtest::guest;
using hvtest::guest_status;
using hvtest::hvaccel;

namespace {
void expect_all_passed(const hvtest::Result& r)
{
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.status, guest_status(0)) << r.out << r.err;
    EXPECT_EQ(r.out.find("not ok"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(" passed, 0 failed"), std::string::npos) << r.out;
}
}  // namespace

TEST(GuestBoot, HelloWorld)
{
    REQUIRE_KVM();
    auto r = hvtest::run({hvaccel(), "run", guest("hello")});
    expect_all_passed(r);
    EXPECT_NE(r.out.find("Hello from the hvaccel guest runtime"), std::string::npos);
    EXPECT_NE(r.out.find("1 vCPU(s), long mode, CPL 0"), std::string::npos) << r.out;
}

TEST(GuestBoot, ExceptionsFromRealFaults)
{
    REQUIRE_KVM();
    auto r = hvtest::run({hvaccel(), "run", guest("exceptions")});
    expect_all_passed(r);
    EXPECT_NE(r.out.find("ok 10 - faults taken from ring 0"), std::string::npos) << r.out;
}

TEST(GuestBoot, RingThreeEntryAndReturn)
{
    REQUIRE_KVM();
    auto r = hvtest::run({hvaccel(), "run", guest("ring3")});
    expect_all_passed(r);
    EXPECT_NE(r.out.find("HLT in ring 3 raises #GP from CPL 3"), std::string::npos) << r.out;
}

TEST(GuestBoot, PlatformContractCmdlineAndModules)
{
    REQUIRE_KVM();
    char path[] = "/tmp/hvaccel-module-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    const char text[] = "hvaccel-module-contents\n";
    ASSERT_EQ(write(fd, text, sizeof text - 1), static_cast<ssize_t>(sizeof text - 1));
    close(fd);
    auto r = hvtest::run({hvaccel(), "run", guest("platform"), "--vcpus", "3", "--memory", "64",
                          "--cmdline", "console=ttyS0 answer=42", "--module",
                          std::string(path) + " mod-arg"});
    unlink(path);
    expect_all_passed(r);
    EXPECT_NE(r.out.find("cmdline: " + guest("platform") + " console=ttyS0 answer=42\n"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("module 0: '" + std::string(path) +
                         " mod-arg' 24 bytes, page aligned: yes, starts: hvaccel-module-contents"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("MADT lists 3 enabled local APICs (fw_cfg: 3)"), std::string::npos);
    EXPECT_NE(r.out.find("of 67108864 bytes"), std::string::npos) << r.out;
}

TEST(GuestBoot, MultipleVcpusBootWithApsWaitingForSipi)
{
    REQUIRE_KVM();
    for (const char* n : {"2", "4"}) {
        auto r = hvtest::run({hvaccel(), "run", guest("hello"), "--vcpus", n});
        expect_all_passed(r);
        EXPECT_NE(r.out.find(std::string(n) + " vCPU(s)"), std::string::npos) << r.out;
    }
}

TEST(GuestBoot, SerialToAFileAndStats)
{
    REQUIRE_KVM();
    char path[] = "/tmp/hvaccel-serial-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    auto r = hvtest::run({hvaccel(), "run", guest("hello"), "--serial", path, "--stats"});
    EXPECT_EQ(r.status, guest_status(0));
    EXPECT_EQ(r.out, "");
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    unlink(path);
    EXPECT_NE(ss.str().find("1 passed, 0 failed"), std::string::npos) << ss.str();
    EXPECT_NE(r.err.find("hvaccel statistics"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("vCPU 0:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("exit io "), std::string::npos) << r.err;
}

TEST(GuestBoot, LocalApicOnTheEmulatedBackend)
{
    REQUIRE_KVM();
    auto r = hvtest::run({hvaccel(), "run", guest("apic_local"), "--apic", "emulated"});
    expect_all_passed(r);
    EXPECT_NE(r.out.find("x2APIC SELF_IPI delivered"), std::string::npos) << r.out;
}

TEST(GuestBoot, SmpBringUpAndIpisOnTheEmulatedBackend)
{
    REQUIRE_KVM();
    for (const char* n : {"2", "3", "4"}) {
        auto r = hvtest::run({hvaccel(), "run", guest("apic_smp"), "--vcpus", n});
        expect_all_passed(r);
        EXPECT_NE(r.out.find("INIT parks AP 1 and a new SIPI starts it again"), std::string::npos)
            << r.out;
    }
}

TEST(GuestBoot, IoApicEdgeLevelAndDirectedEoi)
{
    REQUIRE_KVM();
    expect_all_passed(hvtest::run({hvaccel(), "run", guest("apic_ioapic"), "--apic", "emulated"}));
}

TEST(GuestBoot, HostileApicWritesLeaveTheVmmRunning)
{
    REQUIRE_KVM();
    for (const char* apic : {"emulated", "kernel"}) {
        auto r = hvtest::run({hvaccel(), "run", guest("apic_stress"), "--apic", apic, "--stats"});
        expect_all_passed(r);
        EXPECT_NE(r.err.find("hvaccel statistics"), std::string::npos) << apic;
    }
}

TEST(GuestBoot, PinnedAutoWithPmQosHold)
{
    REQUIRE_KVM();
    expect_all_passed(hvtest::run(
        {hvaccel(), "run", guest("hello"), "--vcpus", "2", "--pin", "auto", "--pm-qos"}));
}

TEST(Cli, HelpAndVersion)
{
    auto h = hvtest::run({hvaccel(), "--help"});
    EXPECT_EQ(h.status, 0);
    EXPECT_NE(h.out.find("usage: hvaccel"), std::string::npos);
    EXPECT_NE(h.out.find("--vcpus N"), std::string::npos);
    auto rh = hvtest::run({hvaccel(), "run", "--help"});
    EXPECT_EQ(rh.status, 0);
    auto v = hvtest::run({hvaccel(), "--version"});
    EXPECT_EQ(v.status, 0);
    EXPECT_EQ(v.out.rfind("hvaccel ", 0), 0u);
}
