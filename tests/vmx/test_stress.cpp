// Stress: device threads post (hundreds of thousands of) interrupts to vCPUs that run, take
// interrupts, EOI, send each other IPIs and halt. Every posted vector is delivered; coalescing
// happens only when the vector was already pending (counted by the backend as "coalesced");
// nothing is lost or duplicated; no halted vCPU sleeps through a pending interrupt.
// Meant to run under ThreadSanitizer too (CMAKE_BUILD_TYPE=Tsan: fewer iterations).
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "apicv_fakes.hpp"

namespace hv::vmx::test {
namespace {

#if defined(__SANITIZE_THREAD__)
constexpr int kPostsPerThread = 20'000;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int kPostsPerThread = 20'000;
#else
constexpr int kPostsPerThread = 200'000;
#endif
#else
constexpr int kPostsPerThread = 200'000;
#endif

constexpr std::size_t kVcpus = 2;
constexpr int kPosters = 2;
constexpr uint8_t kIpiVector = 0xE8;

using Counts = std::array<std::atomic<uint64_t>, 256>;

struct VcpuSide {
    Counts delivered{};
    std::atomic<uint64_t> lost_wakeups{0};
    std::atomic<uint64_t> halts{0};
};

void run_vcpu(TestVm& vm, std::size_t i, VcpuSide& side, std::array<Counts, kVcpus>& posted,
              const std::atomic<bool>& stop)
{
    ApicvBackend& a = vm.b(i);
    RecordingNotifier& n = *vm.notifiers[i];
    std::mt19937 rng(static_cast<unsigned>(i) + 7);
    while (!stop.load(std::memory_order_acquire)) {
        a.enter_guest();
        while (a.pending_vector()) {
            const apic::AckResult r = a.ack();
            if (!r.spurious) {
                side.delivered[r.vector].fetch_add(1, std::memory_order_relaxed);
            }
            if (rng() % 64 == 0) {
                // IPI the other vCPU (x2APIC ICR: IPI virtualization when enabled).
                const std::size_t to = (i + 1) % kVcpus;
                posted[to][kIpiVector].fetch_add(1, std::memory_order_relaxed);
                a.msr_write(0x830, (static_cast<uint64_t>(to) << 32) | kIpiVector);
            }
            a.msr_write(0x80B, 0);  // EOI
        }
        if (rng() % 2 == 0) {
            n.wait(std::chrono::milliseconds(1));  // guest keeps running until a notification
            a.leave_guest();
            continue;
        }
        a.leave_guest();
        if (a.block()) {  // HLT
            side.halts.fetch_add(1, std::memory_order_relaxed);
            bool woken = n.wait(std::chrono::milliseconds(1500));
            if (!woken && !stop.load(std::memory_order_acquire)) {
                // Grace for a poster descheduled between its PIR write and its ON/NV step.
                woken = n.wait(std::chrono::milliseconds(5000));
            }
            a.unblock();
            if (!woken && a.pending_vector() && !stop.load(std::memory_order_acquire)) {
                side.lost_wakeups.fetch_add(1, std::memory_order_relaxed);
            }
        }
    }
}

uint64_t total(const Counts& c)
{
    uint64_t t = 0;
    for (const auto& x : c) {
        t += x.load();
    }
    return t;
}

void stress(const ApicvOptions& opts)
{
    TestVm vm(kVcpus, opts);
    for (std::size_t i = 0; i < kVcpus; ++i) {
        enable(vm.b(i), true);
    }
    std::array<Counts, kVcpus> posted{};
    std::array<VcpuSide, kVcpus> sides{};
    std::atomic<bool> stop{false};

    std::vector<std::thread> vcpus;
    for (std::size_t i = 0; i < kVcpus; ++i) {
        vcpus.emplace_back([&, i] { run_vcpu(vm, i, sides[i], posted, stop); });
    }
    std::vector<std::thread> posters;
    for (int t = 0; t < kPosters; ++t) {
        posters.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(100 + t));
            for (int k = 0; k < kPostsPerThread; ++k) {
                const std::size_t to = rng() % kVcpus;
                const auto v = static_cast<uint8_t>(0x20 + rng() % 0xC0);  // 0x20..0xDF
                posted[to][v].fetch_add(1, std::memory_order_relaxed);
                vm.apics[to]->deliver(fixed(v));
                if (k % 32 == 31) {
                    // Bursts with pauses: the vCPUs drain, halt, and are woken again.
                    std::this_thread::sleep_for(std::chrono::microseconds(10));
                }
            }
        });
    }
    for (auto& t : posters) {
        t.join();
    }
    // Wait until every post is accounted for: delivered once, or coalesced into a pending one.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    auto settled = [&] {
        for (std::size_t i = 0; i < kVcpus; ++i) {
            if (total(sides[i].delivered) + stat(vm.b(i), "coalesced") != total(posted[i])) {
                return false;
            }
        }
        return true;
    };
    while (!settled() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const bool ok = settled();
    stop.store(true, std::memory_order_release);
    for (std::size_t i = 0; i < kVcpus; ++i) {
        vm.notifiers[i]->wake();
    }
    for (auto& t : vcpus) {
        t.join();
    }
    EXPECT_TRUE(ok) << "posts not all delivered";
    for (std::size_t i = 0; i < kVcpus; ++i) {
        std::printf("vCPU %zu: posted %llu delivered %llu coalesced %llu halts %llu kicks %llu "
                    "wakes %llu ipiv %llu\n",
                    i, static_cast<unsigned long long>(total(posted[i])),
                    static_cast<unsigned long long>(total(sides[i].delivered)),
                    static_cast<unsigned long long>(stat(vm.b(i), "coalesced")),
                    static_cast<unsigned long long>(sides[i].halts.load()),
                    static_cast<unsigned long long>(stat(vm.b(i), "kicks")),
                    static_cast<unsigned long long>(stat(vm.b(i), "wakes")),
                    static_cast<unsigned long long>(stat(vm.b(i), "ipiv_completed")));
    }
    for (std::size_t i = 0; i < kVcpus; ++i) {
        const uint64_t coalesced = stat(vm.b(i), "coalesced");
        EXPECT_EQ(total(sides[i].delivered) + coalesced, total(posted[i])) << "vCPU " << i;
        for (unsigned v = 0; v < 256; ++v) {
            const uint64_t p = posted[i][v].load();
            const uint64_t d = sides[i].delivered[v].load();
            EXPECT_LE(d, p) << "duplicated vector " << v;
            EXPECT_EQ(p > 0, d > 0) << "vector " << v << " never delivered";
        }
        EXPECT_EQ(sides[i].lost_wakeups.load(), 0u);
        EXPECT_EQ(stat(vm.b(i), "posted") > 0, opts.posted_interrupts);
        EXPECT_TRUE(vm.vm.pid(i).pir_empty());
        EXPECT_EQ(vm.b(i).flatten().isr, apic::VectorWords{});
    }
}

TEST(Stress, PostedInterruptsWithIpiv)
{
    stress(ApicvOptions{});
}

TEST(Stress, PostedInterruptsWithoutIpiv)
{
    ApicvOptions o;
    o.ipiv = false;
    stress(o);
}

TEST(Stress, WithoutPostedInterrupts)
{
    ApicvOptions o;
    o.ipiv = false;
    o.posted_interrupts = false;
    stress(o);
}

}  // namespace
}  // namespace hv::vmx::test
