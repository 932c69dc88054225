// vCPU states driven in-process: running, halted, wait-for-SIPI, paused; kick and wake; stop.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "core/vm/vm.hpp"
#include "process.hpp"

using namespace std::chrono_literals;

namespace {

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s)
{
    auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end)
            return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

hv::VmConfig config(const std::string& image, unsigned vcpus)
{
    hv::VmConfig c;
    c.image = hvtest::guest(image);
    c.vcpus = vcpus;
    c.memory_mib = 16;
    c.serial = "none";
    c.apic = "emulated";  // halts and wait-for-SIPI happen in userspace, where they are visible
    return c;
}

}  // namespace

TEST(VcpuStates, HaltedVcpuPausesResumesAndStops)
{
    REQUIRE_KVM();
    hv::Vm vm(config("idle", 2));
    int status = -1;
    std::thread t([&] { status = vm.run(); });
    ASSERT_TRUE(wait_for([&] { return vm.vcpu(0).state() == hv::VcpuState::Halted; }));
    EXPECT_EQ(vm.vcpu(1).state(), hv::VcpuState::WaitForSipi);
    vm.pause();
    EXPECT_EQ(vm.vcpu(0).state(), hv::VcpuState::Paused);
    EXPECT_EQ(vm.vcpu(1).state(), hv::VcpuState::Paused);
    vm.resume();
    EXPECT_TRUE(wait_for([&] { return vm.vcpu(0).state() == hv::VcpuState::Halted; }));
    EXPECT_TRUE(wait_for([&] { return vm.vcpu(1).state() == hv::VcpuState::WaitForSipi; }));
    // A halted vCPU sleeps in userspace: it is woken, not kicked.
    EXPECT_GE(vm.vcpu(0).stats().wakes.load(), 1u);
    vm.request_stop(42);
    t.join();
    EXPECT_EQ(status, 42);
    EXPECT_EQ(vm.vcpu(0).state(), hv::VcpuState::Stopped);
    EXPECT_EQ(vm.vcpu(1).state(), hv::VcpuState::Stopped);
}

TEST(VcpuStates, RunningVcpuIsKickedOutOfTheGuest)
{
    REQUIRE_KVM();
    hv::Vm vm(config("spin", 1));
    int status = -1;
    std::thread t([&] { status = vm.run(); });
    // Let it reach its ring-3 loop: it stays in KVM_RUN until kicked.
    ASSERT_TRUE(wait_for([&] { return vm.vcpu(0).stats().exits[KVM_EXIT_IO].load() >= 9; }));
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(vm.vcpu(0).state(), hv::VcpuState::Running);
    vm.pause();
    EXPECT_EQ(vm.vcpu(0).state(), hv::VcpuState::Paused);
    EXPECT_GE(vm.vcpu(0).stats().kicks.load(), 1u);
    vm.resume();
    EXPECT_TRUE(wait_for([&] { return vm.vcpu(0).state() == hv::VcpuState::Running; }));
    vm.request_stop(7);
    t.join();
    EXPECT_EQ(status, 7);
}

TEST(VcpuStates, InitParksAndSipiRestartsAnAp)
{
    REQUIRE_KVM();
    hv::Vm vm(config("idle", 2));
    std::thread t([&] { vm.run(); });
    ASSERT_TRUE(wait_for([&] { return vm.vcpu(0).state() == hv::VcpuState::Halted; }));
    // The AP's SIPI vector points at guest memory that holds "hlt" (0xf4) at 0x8000: it
    // starts in real mode at 0x800:0000 and halts.
    std::uint8_t hlt_loop[] = {0xf4, 0xeb, 0xfd};  // hlt; jmp $-1
    ASSERT_TRUE(vm.memory().write(0x8000, hlt_loop, sizeof hlt_loop));
    vm.vcpu(1).request_sipi(0x08);
    EXPECT_TRUE(wait_for([&] { return vm.vcpu(1).state() == hv::VcpuState::Halted; }));
    EXPECT_EQ(vm.vcpu(1).kvm().get_regs().rip, 1u);
    EXPECT_EQ(vm.vcpu(1).kvm().get_sregs().cs.base, 0x8000u);
    vm.vcpu(1).request_init();
    EXPECT_TRUE(wait_for([&] { return vm.vcpu(1).state() == hv::VcpuState::WaitForSipi; }));
    vm.request_stop(0);
    t.join();
}

TEST(VcpuPlacement, PinnedThreadsRunWhereThePlanSays)
{
    REQUIRE_KVM();
    auto cfg = config("idle", 2);
    cfg.pin = "1,0";
    hv::Vm vm(cfg);
    ASSERT_NE(vm.pin_entry(0), nullptr);
    EXPECT_EQ(vm.pin_entry(0)->host_cpu, 1u);
    EXPECT_EQ(vm.pin_entry(1)->host_cpu, 0u);
    std::thread t([&] { vm.run(); });
    ASSERT_TRUE(wait_for([&] { return vm.vcpu(1).pinned_cpu() >= 0; }));
    ASSERT_TRUE(wait_for([&] { return vm.vcpu(0).pinned_cpu() >= 0; }));
    EXPECT_EQ(vm.vcpu(0).pinned_cpu(), 1);
    EXPECT_EQ(vm.vcpu(1).pinned_cpu(), 0);
    vm.request_stop(0);
    t.join();
}

TEST(VcpuPlacement, UnpinnedByDefault)
{
    REQUIRE_KVM();
    hv::Vm vm(config("idle", 1));
    EXPECT_EQ(vm.pin_entry(0), nullptr);
}

TEST(VcpuStates, KernelApicVcpusPauseOutOfKvm)
{
    REQUIRE_KVM();
    auto cfg = config("idle", 2);
    cfg.apic = "kernel";
    hv::Vm vm(cfg);
    ASSERT_TRUE(vm.apic().lapic_in_kvm());
    int status = -1;
    std::thread t([&] { status = vm.run(); });
    // Both vCPUs sit inside KVM_RUN (BSP halted, AP waiting for SIPI in KVM): kicks get them out.
    std::this_thread::sleep_for(50ms);
    vm.pause();
    EXPECT_EQ(vm.vcpu(0).state(), hv::VcpuState::Paused);
    EXPECT_EQ(vm.vcpu(1).state(), hv::VcpuState::Paused);
    EXPECT_EQ(vm.vcpu(0).apic()->run_state(), hv::apic::RunState::Halted);
    EXPECT_EQ(vm.vcpu(1).apic()->run_state(), hv::apic::RunState::WaitForSipi);
    vm.resume();
    vm.request_stop(3);
    t.join();
    EXPECT_EQ(status, 3);
}
