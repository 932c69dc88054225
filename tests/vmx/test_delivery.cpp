// How an interrupt reaches a vCPU under APICv: the posting protocol (SDM Vol3 30.6; VT-d 9.12)
// — post() rule table, ON/PIR order, control updates, concurrent posters — and its races with the
// vCPU in the guest, outside it or blocked (notification vector vs wake-up vector).
#include <gtest/gtest.h>

#include <thread>

#include "apicv_fakes.hpp"

namespace hv::vmx::test {
namespace {

// post() from each (SN, ON, PIR bit) starting point.
TEST(Post, RuleTable)
{
    struct Case {
        bool sn, on, pir;  // before
        bool notify, coalesced, on_after;
    };
    const Case cases[] = {
        {false, false, false, true, false, true},  // the one post that notifies
        {false, false, true, true, true, true},    // PIR already set, ON clear: still notifies
        {false, true, false, false, false, true},  // ON set: covered by the earlier notification
        {false, true, true, false, true, true},
        {true, false, false, false, false, false},  // SN: PIR only
        {true, true, false, false, false, true},
    };
    for (const Case& c : cases) {
        PostedInterruptDescriptor d;
        update_control(d, ControlUpdate{0xF2, 7, c.sn});
        if (c.on) {
            set_on(d);
        }
        if (c.pir) {
            d.pir[0].store(1ULL << 0x30);
        }
        const PostResult r = post(d, 0x30);
        EXPECT_EQ(r.notify, c.notify);
        EXPECT_EQ(r.coalesced, c.coalesced);
        EXPECT_EQ(d.on(), c.on_after);
        EXPECT_EQ(r.suppressed, c.sn);  // SN is looked at first
        EXPECT_EQ(d.pir[0].load(), 1ULL << 0x30);
        if (r.notify) {
            EXPECT_EQ(r.nv, 0xF2);
            EXPECT_EQ(r.ndst, 7u);
        }
    }
}

TEST(Post, TakeClearsOnThenPir)
{
    PostedInterruptDescriptor d;
    post(d, 0x20);
    post(d, 0xFF);
    EXPECT_TRUE(d.on());
    const apic::VectorWords w = take_pir(d);
    EXPECT_FALSE(d.on());
    EXPECT_TRUE(d.pir_empty());
    EXPECT_EQ(w[1], 1u);
    EXPECT_EQ(w[7], 1u << 31);
    // The next post notifies again.
    EXPECT_TRUE(post(d, 0x20).notify);
}

TEST(Post, ControlUpdateKeepsOn)
{
    PostedInterruptDescriptor d;
    post(d, 0x40);
    update_control(d, ControlUpdate{0xF1, 3, false});
    EXPECT_TRUE(d.on());
    EXPECT_EQ(pid::nv_of(d.load_control()), 0xF1);
}

TEST(Post, ConcurrentPostersNotifyOnce)
{
    PostedInterruptDescriptor d;
    std::atomic<int> notifies{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&, t] {
            for (int i = 0; i < 1000; ++i) {
                notifies += post(d, static_cast<uint8_t>(0x20 + (t * 1000 + i) % 200)).notify;
            }
        });
    }
    for (auto& t : ts) {
        t.join();
    }
    EXPECT_EQ(notifies.load(), 1);
}

// --- the protocol through the backend: a post meets the vCPU in each state ---

class PostStates : public ::testing::Test {
  protected:
    PostStates() : vm(2, ApicvOptions{}) { enable(vm.b(0), true); }
    ApicvBackend& a() { return vm.b(0); }
    RecordingNotifier& n() { return *vm.notifiers[0]; }
    TestVm vm;
};

TEST_F(PostStates, InGuestNotifies)
{
    a().enter_guest();
    const Exits before = exits(a());
    a().deliver(fixed(0x50));
    EXPECT_EQ(n().kick_count(), 1u);
    EXPECT_EQ(n().wake_count(), 0u);
    EXPECT_EQ(stat(a(), "notifications"), 1u);
    EXPECT_EQ((exits(a()) - before).total(), 0u);  // processed without a VM exit
    // A second post while ON is set sends nothing.
    a().deliver(fixed(0x51));
    EXPECT_EQ(n().kick_count(), 1u);
    EXPECT_EQ(stat(a(), "on_already_set"), 1u);
    EXPECT_EQ(a().ack().vector, 0x51);
}

TEST_F(PostStates, OutsideIsSuppressedAndPickedUpAtEntry)
{
    a().enter_guest();
    a().leave_guest();  // SN = 1 (preempted / in the VMM)
    EXPECT_TRUE(vm.vm.pid(0).sn());
    a().deliver(fixed(0x50));
    EXPECT_EQ(n().kick_count(), 0u);
    EXPECT_FALSE(vm.vm.pid(0).on());
    EXPECT_EQ(stat(a(), "notify_suppressed"), 1u);
    a().enter_guest();  // SN = 0, PIR not empty -> ON set again, synced before injection
    EXPECT_FALSE(vm.vm.pid(0).sn());
    EXPECT_EQ(a().pending_vector(), 0x50);
}

TEST_F(PostStates, BlockedIsWokenThroughTheWakeupVector)
{
    ASSERT_TRUE(a().block());
    const uint64_t c = vm.vm.pid(0).load_control();
    EXPECT_EQ(pid::nv_of(c), ApicvOptions{}.wakeup_vector);
    EXPECT_EQ(c & pid::kSn, 0u);
    a().deliver(fixed(0x50));
    EXPECT_EQ(n().wake_count(), 1u);
    EXPECT_EQ(n().kick_count(), 0u);
    EXPECT_EQ(stat(a(), "wakeups"), 1u);
    a().unblock();
    EXPECT_EQ(pid::nv_of(vm.vm.pid(0).load_control()), ApicvOptions{}.notification_vector);
    a().enter_guest();
    EXPECT_EQ(a().ack().vector, 0x50);
}

TEST_F(PostStates, HaltingBetweenPirWriteAndNotification)
{
    // The poster has set the PIR bit but not yet looked at ON/NV; the vCPU halts now. block()
    // switches NV and then looks at PIR: it must see the vector and refuse to sleep.
    PostedInterruptDescriptor& d = vm.vm.pid(0);
    d.pir[0].fetch_or(1ULL << 0x30);
    EXPECT_FALSE(a().block());
    // The poster's second step now finds NV = notification vector, SN set (the vCPU is outside):
    // no notification is needed because the vector is already in VIRR.
    uint64_t c = d.load_control();
    EXPECT_NE(pid::nv_of(c), ApicvOptions{}.wakeup_vector);
    EXPECT_EQ(a().pending_vector(), 0x30);
}

TEST_F(PostStates, HaltingBeforeThePirWrite)
{
    // The other order: block() first, then the whole post: it reads NV = wake-up vector.
    ASSERT_TRUE(a().block());
    const PostResult r = vm.vm.post_to(0, 0x30);
    EXPECT_TRUE(r.notify);
    EXPECT_EQ(r.nv, ApicvOptions{}.wakeup_vector);
    EXPECT_EQ(n().wake_count(), 1u);
}

TEST_F(PostStates, OnAlreadySetWhenBlocking)
{
    a().enter_guest();
    a().deliver(fixed(0x50));  // ON set, kick pending, not yet processed
    a().leave_guest();
    EXPECT_FALSE(a().block());  // the vector is pending: do not sleep
    EXPECT_EQ(a().pending_vector(), 0x50);
}

TEST_F(PostStates, SnSetSuppressesDeviceNotification)
{
    // VT-d posting uses the same code: SN set (vCPU preempted) -> PIR only.
    PostedInterruptDescriptor& d = vm.vm.pid(0);
    update_control(d, ControlUpdate{std::nullopt, std::nullopt, true});
    const PostResult r = vm.vm.post(d, 0x60);
    EXPECT_TRUE(r.suppressed);
    EXPECT_FALSE(r.notify);
    EXPECT_EQ(n().kick_count() + n().wake_count(), 0u);
    EXPECT_EQ(stat(a(), "posted"), 1u);
    EXPECT_EQ(a().flatten().irr[0x60 >> 5] >> (0x60 & 31) & 1u, 1u);  // merged into IRR
}

TEST_F(PostStates, NdstNamesThePinnedHostCpu)
{
    vm.vm.set_host_apic_id(0, 0x25);
    a().enter_guest();
    EXPECT_EQ(pid::ndst_of(vm.vm.pid(0).load_control()), 0x25u);
    a().leave_guest();
    ASSERT_TRUE(a().block());
    EXPECT_EQ(pid::ndst_of(vm.vm.pid(0).load_control()), 0x25u);
    const PostResult r = vm.vm.post_to(0, 0x44);
    EXPECT_EQ(r.ndst, 0x25u);
    EXPECT_EQ(n().wake_count(), 1u);  // the wake-up handler of CPU 0x25 found it
}

TEST_F(PostStates, MaskedVectorDoesNotPreventSleep)
{
    // A posted vector below the TPR class does not wake HLT (same rule as the emulated APIC).
    a().msr_write(0x808, 0x70);
    a().deliver(fixed(0x50));
    EXPECT_TRUE(a().block());
    a().unblock();
    a().msr_write(0x808, 0);
    EXPECT_EQ(a().pending_vector(), 0x50);
}

}  // namespace
}  // namespace hv::vmx::test
