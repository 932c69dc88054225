// This machine, probed for real: the test may only assert that the profile names what is
// really here (the vendor in /proc/cpuinfo, the KVM provider module in /sys/module).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/base/error.hpp"
#include "core/host/backend.hpp"
#include "core/host/pm_qos.hpp"
#include "core/host/profile.hpp"
#include "core/host/sysfs.hpp"

namespace hv::host {
namespace {

std::string cpuinfo_field(const std::string& key)
{
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key, 0) == 0)
            return std::string(trim(line.substr(line.find(':') + 1)));
    return {};
}

TEST(LiveHost, ProfileNamesWhatIsHere)
{
    const HostProfile p = probe_host();
    EXPECT_EQ(p.cpu.id.vendor_string, cpuinfo_field("vendor_id"));
    EXPECT_EQ(std::to_string(p.cpu.id.model), cpuinfo_field("model\t"));
    EXPECT_GE(p.topology.pus, 1u);
    EXPECT_EQ(p.topology.pu_list.size(), p.topology.pus);

    // The KVM provider is whichever kvm_* module exists; on the development machines kvm_pvm.
    const bool pvm = std::filesystem::exists("/sys/module/kvm_pvm");
    if (pvm) {
        EXPECT_EQ(p.kvm.provider, "kvm_pvm");
    }
    if (std::filesystem::exists("/dev/kvm") && access("/dev/kvm", R_OK | W_OK) == 0) {
        EXPECT_TRUE(p.kvm.present) << p.kvm.error;
        EXPECT_EQ(p.kvm.api_version, 12);
        const BackendChoice c = choose_backend(p, "auto");
        if (p.kvm.cap("SPLIT_IRQCHIP")) {
            EXPECT_EQ(c.backend, "kernel");
            if (pvm) {
                EXPECT_EQ(c.reason,
                          "kernel: in-kernel LAPIC (kvm_pvm, no hardware APIC virtualization)");
            }
        }
    } else {
        EXPECT_FALSE(p.kvm.present);
    }
    if (!std::filesystem::exists("/dev/cpu/0/msr")) {
        EXPECT_NE(p.msr_status.find("msr module not loaded"), std::string::npos) << p.msr_status;
    }
    if (!std::filesystem::exists("/dev/cpu/0/msr") && p.cpu.vmx.vmx) {
        EXPECT_NE(p.cpu.vmx.msr_status.find("msr module not loaded"), std::string::npos);
    }
    if (!std::filesystem::exists("/sys/class/iommu") ||
        std::filesystem::is_empty("/sys/class/iommu")) {
        EXPECT_TRUE(p.iommu.vtd.empty() && p.iommu.amd.empty());
    }
}

TEST(LiveHost, DevCpuMsrSaysWhenTheModuleIsMissing)
{
    const DevCpuMsr m(0, std::string(HV_HOST_FIXTURES) + "/hosts/empty");
    EXPECT_FALSE(m.available());
    EXPECT_NE(m.status().find("msr module not loaded"), std::string::npos) << m.status();
    EXPECT_FALSE(m.read(0x480));
}

TEST(PmQosHold, WritesAZeroInt32AndKeepsTheFdOpen)
{
    char path[] = "/tmp/hv_pmqos_XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    {
        PmQosHold hold(path);
        EXPECT_TRUE(hold.held());
        PmQosHold moved = std::move(hold);
        EXPECT_FALSE(hold.held());  // NOLINT(bugprone-use-after-move): checking the move
        EXPECT_TRUE(moved.held());
        EXPECT_EQ(moved.latency_us(), 0);
    }
    const std::string bytes = read_file(path);
    EXPECT_EQ(bytes, std::string(4, '\0'));
    std::remove(path);
}

TEST(PmQosHold, FailsWithAClearError)
{
    try {
        PmQosHold hold("/nonexistent/cpu_dma_latency");
        FAIL();
    } catch (const hv::Error& e) {
        EXPECT_STREQ(e.what(),
                     "PM QoS hold: open /nonexistent/cpu_dma_latency: No such file or directory");
    }
    EXPECT_THROW(PmQosHold("/dev/null", -5), hv::Error);
}

TEST(PmQosHold, LiveDeviceWhenAllowed)
{
    if (access("/dev/cpu_dma_latency", W_OK) != 0)
        GTEST_SKIP() << "/dev/cpu_dma_latency not writable here";
    PmQosHold hold;  // dropped at the end of the test
    EXPECT_TRUE(hold.held());
}

}  // namespace
}  // namespace hv::host
