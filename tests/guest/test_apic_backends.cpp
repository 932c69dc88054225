// Every APIC backend (`emulated`, `kernel`, the `apicv` and `avic` models in each mode) runs the
// same guests
// with the same guest-visible results, and flattens the same guest situation into
// equal ApicStates.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "core/vm/vm.hpp"
#include "process.hpp"

using hvtest::guest;
using hvtest::hvaccel;
using namespace std::chrono_literals;

namespace {

// "ok N"/"not ok N" lines, leaving out those that mention `skip`.
std::string verdicts(const std::string& out, const std::string& skip)
{
    std::istringstream in(out);
    std::string line, v;
    while (std::getline(in, line))
        if ((line.rfind("ok ", 0) == 0 || line.rfind("not ok ", 0) == 0) &&
            (skip.empty() || line.find(skip) == std::string::npos))
            v += line.substr(0, line.find(" - ")) + "\n";
    return v;
}

// The hardware models in each combination a real CPU generation offers.
const char* const kModels[] = {
    "apicv", "apicv,noipiv", "apicv,noipiv,nopi", "apicv,noipiv,nopi,novid", "apicv,nox2apic",
    "avic",  "avic,x2avic",  "avic,erratum1235",  "avic,x2avic,erratum1235"};

// Runs `image` on every backend: the emulated one and every model pass every check, and the
// kernel one gives the same verdicts except on checks that mention `kvm_deviation`
// (documented in docs/apic.md).
void same_on_both(const std::string& image, const std::string& kvm_deviation,
                  const std::string& vcpus = "1")
{
    auto emu =
        hvtest::run({hvaccel(), "run", guest(image), "--vcpus", vcpus, "--apic", "emulated"});
    auto ker = hvtest::run({hvaccel(), "run", guest(image), "--vcpus", vcpus, "--apic", "kernel"});
    EXPECT_EQ(emu.status, hvtest::guest_status(0)) << emu.out;
    EXPECT_EQ(emu.out.find("not ok"), std::string::npos) << emu.out;
    EXPECT_FALSE(verdicts(emu.out, kvm_deviation).empty());
    EXPECT_EQ(verdicts(emu.out, kvm_deviation), verdicts(ker.out, kvm_deviation)) << ker.out;
    for (const char* model : kModels) {
        auto m = hvtest::run({hvaccel(), "run", guest(image), "--vcpus", vcpus, "--apic", model});
        EXPECT_EQ(m.status, hvtest::guest_status(0)) << model << ": " << m.out << m.err;
        EXPECT_EQ(verdicts(m.out, ""), verdicts(emu.out, "")) << model;
    }
}

std::string slurp(const std::string& path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Boots apic_state on `backend`, waits for "ready", pauses, runs `while_paused` (default:
// flatten every vCPU) and returns the flattened states.
std::vector<hv::apic::ApicState> flatten_on(const std::string& backend, unsigned vcpus,
                                            const std::function<void(hv::Vm&)>& while_paused = {})
{
    char path[] = "/tmp/hvaccel-state-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    hv::VmConfig c;
    c.image = guest("apic_state");
    c.vcpus = vcpus;
    c.memory_mib = 16;
    c.serial = path;
    c.apic = backend;
    hv::Vm vm(c);
    std::thread t([&] { vm.run(); });
    auto end = std::chrono::steady_clock::now() + 20s;
    while (slurp(path).find("ready") == std::string::npos && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(2ms);
    EXPECT_NE(slurp(path).find("ok 1 - 0x90 and 0x70 pending"), std::string::npos) << slurp(path);
    vm.pause();
    if (while_paused)
        while_paused(vm);
    std::vector<hv::apic::ApicState> out;
    for (unsigned i = 0; i < vcpus; ++i)
        out.push_back(vm.vcpu(i).apic()->flatten());
    vm.resume();
    vm.request_stop(0);
    t.join();
    unlink(path);
    return out;
}

}  // namespace

TEST(ApicBackends, LocalApicGuestSameOnBoth)
{
    REQUIRE_KVM();
    // KVM's LAPIC does not set ESR "send illegal vector" (SDM Vol3 11.5.3).
    same_on_both("apic_local", "ESR");
}

TEST(ApicBackends, SmpGuestSameOnBoth)
{
    REQUIRE_KVM();
    for (const char* n : {"2", "4"})
        same_on_both("apic_smp", "", n);
}

// NMIs sent while one is handled wait for its IRET and collapse into one, from self and from
// another vCPU (SDM Vol3 6.7.1); with KVM's LAPIC on the split irqchip as with the models.
// KVM takes every self NMI sent inside an NMI handler after its IRET (docs/apic.md).
TEST(ApicBackends, NmiGuestSameOnBoth)
{
    REQUIRE_KVM();
    same_on_both("apic_nmi", "self NMIs", "2");
}

// KVM's LAPIC takes a non-zero x2APIC EOI write and x2APIC TPR bits 31:8 without the #GP that
// SDM Vol3 11.12.1.2/11.12.1.3 require (docs/apic.md).
TEST(ApicBackends, RulesGuestSameOnBoth)
{
    REQUIRE_KVM();
    same_on_both("apic_rules", "non-zero", "2");
}

TEST(ApicBackends, IoApicGuestSameOnBoth)
{
    REQUIRE_KVM();
    // KVM's split irqchip still sends the EOI to the IOAPIC when SVR[12] suppresses it.
    same_on_both("apic_ioapic", "suppressed");
}

TEST(ApicBackends, FlattenedStatesAreEqual)
{
    REQUIRE_KVM();
    auto emu = flatten_on("emulated", 2);
    ASSERT_EQ(emu.size(), 2u);
    std::vector<std::string> others = {"kernel"};
    others.insert(others.end(), std::begin(kModels), std::end(kModels));
    for (const auto& backend : others) {
        auto other = flatten_on(backend, 2);
        ASSERT_EQ(other.size(), 2u);
        for (unsigned i = 0; i < 2; ++i)
            EXPECT_EQ(hv::apic::describe_difference(emu[i], other[i]), "")
                << backend << " vCPU " << i;
    }
    EXPECT_TRUE(emu[0].irr[0x90 / 32] & (1u << (0x90 % 32)));
    EXPECT_TRUE(emu[0].irr[0x70 / 32] & (1u << (0x70 % 32)));
    EXPECT_EQ(emu[0].tpr, 0xa0u);
    EXPECT_EQ(emu[1].run_state, hv::apic::RunState::WaitForSipi);
}

TEST(ApicBackends, InvalidRestoreChangesNothingValidRestoreApplies)
{
    REQUIRE_KVM();
    for (const char* backend : {"emulated", "kernel", "apicv", "avic", "avic,x2avic"}) {
        flatten_on(backend, 1, [&](hv::Vm& vm) {
            auto* apic = vm.vcpu(0).apic();
            hv::apic::ApicState before = apic->flatten();
            hv::apic::ApicState bad = before;
            bad.irr[0] |= 1u << 5;  // vectors 0-15 cannot be pending
            auto err = apic->restore(bad);
            ASSERT_TRUE(err.has_value()) << backend;
            EXPECT_EQ(err->rfind("irr", 0), 0u) << *err;
            EXPECT_EQ(apic->flatten(), before) << backend;
            hv::apic::ApicState changed = before;
            changed.tpr = 0x30;
            changed.irr[0x55 / 32] |= 1u << (0x55 % 32);
            EXPECT_FALSE(apic->restore(changed).has_value()) << backend;
            EXPECT_EQ(apic->flatten(), changed)
                << backend << ": " << hv::apic::describe_difference(apic->flatten(), changed);
        });
    }
}
