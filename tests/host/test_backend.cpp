// choose_backend(): what `--apic auto` picks on real CPUs, explicit requests, refusals.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/host/backend.hpp"
#include "tests/host/real_cpus.hpp"

namespace hv::host {
namespace {

using namespace realcpu;

bool has(const std::vector<std::string>& v, std::string_view needle)
{
    return std::any_of(v.begin(), v.end(),
                       [&](const std::string& s) { return s.find(needle) != std::string::npos; });
}

TEST(BackendNames, OneListAndAuto)
{
    EXPECT_EQ(kBackendNames.size(), 4u);
    for (auto n : {"kernel", "apicv", "avic", "emulated"})
        EXPECT_TRUE(is_backend_name(n)) << n;
    EXPECT_FALSE(is_backend_name("auto"));
    EXPECT_FALSE(is_backend_name("x2avic"));
}

TEST(ChooseBackend, Ryzen7_1700)
{
    const HostProfile p = profile_of(ryzen7_1700(), "amd-desktop");
    const BackendChoice a = choose_backend(p, "auto");
    ASSERT_FALSE(a.refused) << a.reason;
    EXPECT_EQ(a.backend, "kernel");
    EXPECT_EQ(a.reason, "kernel: in-kernel LAPIC (kvm_amd avic=N force_avic=N, no hardware APIC "
                        "virtualization)");
    EXPECT_TRUE(has(a.notes, "BZ-196683")) << "idle-lockup warning";
    EXPECT_TRUE(a.errata_applied.empty());

    const BackendChoice v = choose_backend(p, "avic");
    EXPECT_EQ(v.backend, "avic");
    EXPECT_EQ(v.errata_applied, std::vector<std::string>{"AMD-1235"});
    EXPECT_TRUE(has(v.notes, "IsRunning never set"));
}

TEST(ChooseBackend, Epyc7702)
{
    const HostProfile p = profile_of(epyc_7702(), "amd-server-noavic");
    const BackendChoice a = choose_backend(p, "auto");
    EXPECT_EQ(a.backend, "kernel");
    EXPECT_NE(a.reason.find("kvm_amd avic=N"), std::string::npos) << a.reason;
    const BackendChoice v = choose_backend(p, "avic");
    EXPECT_EQ(v.errata_applied, std::vector<std::string>{"AMD-1235"});
    EXPECT_NE(v.reason.find("host CPU has AVIC)"), std::string::npos) << v.reason;
}

TEST(ChooseBackend, Epyc7702WithForcedKernelAvic)
{
    // A host that turned AVIC on in kvm_amd: the kernel path uses the hardware, and the
    // erratum is called out next to it.
    const HostProfile p = profile_of(epyc_7702(), "amd-server-avic");
    const BackendChoice a = choose_backend(p, "auto");
    EXPECT_EQ(a.backend, "kernel");
    EXPECT_EQ(a.reason, "kernel: kvm_amd avic=Y force_avic=N");
    EXPECT_TRUE(has(a.notes, "AMD-1235"));
    EXPECT_TRUE(has(a.notes, "enable_ipiv=Y"));
}

TEST(ChooseBackend, Epyc7763)
{
    const HostProfile p = profile_of(epyc_7763(), "amd-server-noavic");
    const BackendChoice a = choose_backend(p, "auto");
    EXPECT_EQ(a.backend, "kernel");
    EXPECT_TRUE(a.notes.empty());
    const BackendChoice v = choose_backend(p, "avic");
    EXPECT_TRUE(v.errata_applied.empty()) << "Zen 3 is not affected by 1235";
}

TEST(ChooseBackend, Epyc9654)
{
    const HostProfile p = profile_of(epyc_9654(), "amd-server-avic");
    const BackendChoice a = choose_backend(p, "auto");
    EXPECT_EQ(a.backend, "kernel");
    EXPECT_EQ(a.reason, "kernel: kvm_amd avic=Y force_avic=N");
    EXPECT_TRUE(a.errata_applied.empty());
    EXPECT_TRUE(a.notes.empty());
    const BackendChoice v = choose_backend(p, "avic");
    EXPECT_NE(v.reason.find("AVIC and x2AVIC"), std::string::npos) << v.reason;
    EXPECT_TRUE(v.errata_applied.empty());
}

TEST(ChooseBackend, XeonGold6248)
{
    const HostProfile p = profile_of(xeon_gold_6248(), "intel-clx");
    const BackendChoice a = choose_backend(p, "auto");
    EXPECT_EQ(a.backend, "kernel");
    EXPECT_EQ(a.reason, "kernel: kvm_intel enable_apicv=Y enable_ipiv=N");
    EXPECT_TRUE(has(a.notes, "INTEL-ISR-C6"));
    const BackendChoice v = choose_backend(p, "apicv");
    EXPECT_EQ(v.backend, "apicv");
    EXPECT_NE(v.reason.find("host CPU has APICv)"), std::string::npos) << v.reason;
}

TEST(ChooseBackend, XeonGold6248WithoutVtdPosting)
{
    const BackendChoice a = choose_backend(profile_of(xeon_gold_6248(), "intel-nopi"), "auto");
    EXPECT_EQ(a.backend, "kernel");
    EXPECT_TRUE(has(a.notes, "PLAT-VTD-NO-PI"));
}

TEST(ChooseBackend, SapphireRapids)
{
    const HostProfile p = profile_of(xeon_8480(), "intel-spr");
    const BackendChoice a = choose_backend(p, "auto");
    EXPECT_EQ(a.reason, "kernel: kvm_intel enable_apicv=Y enable_ipiv=Y");
    EXPECT_TRUE(a.notes.empty());
    const BackendChoice v = choose_backend(p, "apicv");
    EXPECT_NE(v.reason.find("APICv and IPIv"), std::string::npos) << v.reason;
}

TEST(ChooseBackend, PvmHost)
{
    ProfileOptions o;
    o.msrs = false;
    const HostProfile p = profile_of(xeon_8480(), "pvm", o);
    const BackendChoice a = choose_backend(p, "auto");
    EXPECT_EQ(a.backend, "kernel");
    EXPECT_EQ(a.reason, "kernel: in-kernel LAPIC (kvm_pvm, no hardware APIC virtualization)");
}

TEST(ChooseBackend, WithoutSplitIrqchipModelsTheHostVendor)
{
    ProfileOptions o;
    o.split_irqchip = false;
    const BackendChoice intel =
        choose_backend(profile_of(xeon_gold_6248(), "intel-clx", o), "auto");
    EXPECT_EQ(intel.backend, "apicv");
    EXPECT_NE(intel.reason.find("KVM lacks split irqchip"), std::string::npos);

    const BackendChoice amd = choose_backend(profile_of(epyc_7702(), "amd-server-noavic", o), "");
    EXPECT_EQ(amd.backend, "avic");
    EXPECT_EQ(amd.errata_applied, std::vector<std::string>{"AMD-1235"});

    const BackendChoice kernel =
        choose_backend(profile_of(epyc_7702(), "amd-server-noavic", o), "kernel");
    EXPECT_TRUE(kernel.refused);
    EXPECT_NE(kernel.reason.find("KVM_CAP_SPLIT_IRQCHIP"), std::string::npos);
}

TEST(ChooseBackend, ModelsWorkOnTheOtherVendor)
{
    // apicv and avic are models: both are honoured on either vendor.
    const HostProfile amd = profile_of(epyc_9654(), "amd-server-avic");
    const BackendChoice v = choose_backend(amd, "apicv");
    EXPECT_FALSE(v.refused);
    EXPECT_NE(v.reason.find("host CPU has no APICv; the model does not need it"),
              std::string::npos);
    const HostProfile intel = profile_of(xeon_8480(), "intel-spr");
    const BackendChoice w = choose_backend(intel, "avic");
    EXPECT_FALSE(w.refused);
    EXPECT_NE(w.reason.find("host CPU has no AVIC"), std::string::npos);
    EXPECT_EQ(choose_backend(intel, "emulated").backend, "emulated");
}

TEST(ChooseBackend, NotesMissingUserspaceMsrExits)
{
    ProfileOptions o;
    o.user_space_msr = false;
    const BackendChoice v = choose_backend(profile_of(xeon_8480(), "intel-spr", o), "apicv");
    EXPECT_TRUE(has(v.notes, "KVM_CAP_X86_USER_SPACE_MSR"));
}

TEST(ChooseBackend, Refusals)
{
    const HostProfile p = profile_of(xeon_8480(), "intel-spr");
    const BackendChoice u = choose_backend(p, "x2avic");
    EXPECT_TRUE(u.refused);
    EXPECT_EQ(u.reason, "unknown APIC backend 'x2avic' (expected one of: auto, kernel, apicv, "
                        "avic, emulated)");

    ProfileOptions o;
    o.kvm = false;
    const HostProfile nokvm = profile_of(xeon_8480(), "empty", o);
    for (auto req : {"auto", "kernel", "apicv"}) {
        const BackendChoice c = choose_backend(nokvm, req);
        EXPECT_TRUE(c.refused) << req;
        EXPECT_NE(c.reason.find("/dev/kvm is unavailable"), std::string::npos) << c.reason;
    }
}

}  // namespace
}  // namespace hv::host
