// The same guest images boot under QEMU (`-kernel`, isa-debug-exit) with the same checks and
// the same exit status: the guest platform contract of docs/guest-runtime.md.
#include <gtest/gtest.h>

#include <sstream>

#include "process.hpp"

using hvtest::guest;
using hvtest::hvaccel;

namespace {

bool have_qemu()
{
    return hvtest::run({"sh", "-c", "command -v qemu-system-x86_64"}, 10).status == 0;
}

// The "ok N"/"not ok N" sequence, the summary line and any unexpected-exception report,
// without the values a check prints.
// Lines whose text contains one of `ignore` are left out, with the summary line.
std::string verdicts(const std::string& out, const std::vector<std::string>& ignore = {})
{
    std::istringstream in(out);
    std::string line, v;
    while (std::getline(in, line)) {
        bool skip = false;
        for (const auto& i : ignore)
            skip = skip || line.find(i) != std::string::npos;
        if (skip)
            continue;
        if (line.rfind("ok ", 0) == 0 || line.rfind("not ok ", 0) == 0)
            v += line.substr(0, line.find(" - ")) + "\n";
        else if (line.find(" passed, ") != std::string::npos && ignore.empty())
            v += line + "\n";
        else if (line.rfind("unexpected ", 0) == 0)
            v += line.substr(0, line.find(" at rip=")) + "\n";
    }
    return v;
}

void compare(const std::string& image, const std::string& machine,
             const std::vector<std::string>& ignore = {}, unsigned vcpus = 1,
             const std::vector<std::string>& qemu_extra = {})
{
    auto ours = hvtest::run({hvaccel(), "run", guest(image), "--vcpus", std::to_string(vcpus)});
    std::vector<std::string> qemu_argv = {"qemu-system-x86_64",
                                          "-machine",
                                          machine,
                                          "-accel",
                                          "kvm",
                                          "-cpu",
                                          "host",
                                          "-smp",
                                          std::to_string(vcpus),
                                          "-m",
                                          "128",
                                          "-nodefaults",
                                          "-kernel",
                                          guest(image),
                                          "-device",
                                          "isa-debug-exit,iobase=0xf4,iosize=4",
                                          "-serial",
                                          "stdio",
                                          "-display",
                                          "none"};
    qemu_argv.insert(qemu_argv.end(), qemu_extra.begin(), qemu_extra.end());
    auto qemu = hvtest::run(qemu_argv, 120);
    ASSERT_FALSE(qemu.timed_out);
    if (ignore.empty()) {
        EXPECT_EQ(ours.status, qemu.status) << "qemu: " << qemu.out << qemu.err;
    }
    EXPECT_FALSE(verdicts(ours.out).empty());
    EXPECT_EQ(verdicts(ours.out, ignore), verdicts(qemu.out, ignore)) << "qemu: " << qemu.out;
}

}  // namespace

class QemuPeer : public ::testing::Test {
  protected:
    void SetUp() override
    {
        REQUIRE_KVM();
        if (!have_qemu())
            GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    }
};

TEST_F(QemuPeer, HelloMicrovm)
{
    compare("hello", "microvm");
}
TEST_F(QemuPeer, ExceptionsMicrovm)
{
    compare("exceptions", "microvm");
}
TEST_F(QemuPeer, Ring3Microvm)
{
    compare("ring3", "microvm");
}
// The ACPI tables and the PM timer are the pc machine's (microvm has neither at these places).
TEST_F(QemuPeer, PlatformPc)
{
    compare("platform", "pc");
}
TEST_F(QemuPeer, UnhandledExceptionMicrovm)
{
    compare("crash_ud", "microvm");
}
// QEMU's APIC here is KVM's in-kernel LAPIC, which does not set ESR "send illegal vector"
// (SDM Vol3 11.5.3) for an ICR write with a vector below 16; hvaccel's model does.
TEST_F(QemuPeer, LocalApicMicrovm)
{
    compare("apic_local", "microvm", {"ESR"});
}
TEST_F(QemuPeer, SmpTwoVcpusMicrovm)
{
    compare("apic_smp", "microvm", {}, 2);
}
TEST_F(QemuPeer, SmpFourVcpusMicrovm)
{
    compare("apic_smp", "microvm", {}, 4);
}
TEST_F(QemuPeer, NmiMicrovm)
{
    compare("apic_nmi", "microvm", {}, 2);
}
// QEMU's APIC is KVM's LAPIC here: see RulesGuestSameOnBoth.
TEST_F(QemuPeer, ApicRulesMicrovm)
{
    compare("apic_rules", "microvm", {"non-zero"}, 2);
}
// The IRQ test lines are QEMU's pc-testdev; the split irqchip is hvaccel's kernel backend's.
TEST_F(QemuPeer, IoApicPcSplitIrqchip)
{
    compare("apic_ioapic", "pc,kernel-irqchip=split", {}, 1, {"-device", "pc-testdev"});
}
