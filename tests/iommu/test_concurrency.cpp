// Devices raise interrupts through the remappers while software switches the entries between
// posted and remapped (and IsRun) with 128-bit compare-exchanges. No interrupt may be lost: every
// raise is either a remapped delivery or a post, and every post that set a PIR / IRR bit is
// taken exactly once by the CPU side. Also run under ThreadSanitizer (CMAKE_BUILD_TYPE=Tsan).
#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <thread>
#include <vector>

#include "fakes.hpp"
#include "iommu/amd_remapper.hpp"
#include "iommu/vtd_remapper.hpp"

namespace hv::iommu {
namespace {

constexpr std::size_t kPosters = 2;
constexpr int kRaises = 50000;
constexpr uint64_t kMinFlips = 2000;  // posters keep raising until software has flipped this often

TEST(IommuConcurrency, VtdNoLostInterruptWhileEntriesFlip)
{
    test::FakePostingSink sink;
    VtdRemapper unit{test::vtd_config(2), sink};
    auto& pid = sink.pid(0);
    vmx::update_control(pid, {.nv = 0xF2, .ndst = 1, .sn = false});
    std::vector<VtdIrte> remapped(kPosters), posted(kPosters);
    for (std::size_t t = 0; t < kPosters; ++t) {
        const auto v = static_cast<uint8_t>(0x40 + t);
        VtdRemappedIrte r;
        r.present = true;
        r.vector = v;
        remapped[t] = r.encode();
        VtdPostedIrte p;
        p.present = true;
        p.vector = v;
        p.pda = sink.pda(0);
        posted[t] = p.encode();
        unit.set_entry(t, posted[t]);
    }

    std::atomic<int> running{kPosters};
    std::atomic<uint64_t> raises{0}, flips{0};
    std::atomic<uint64_t> delivered{0}, newly_posted{0}, other{0};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < kPosters; ++t) {
        threads.emplace_back([&, t] {
            const MsiMessage m = RemappableMsi{static_cast<uint16_t>(t), false, 0}.encode();
            for (int i = 0; i < kRaises || flips.load() < kMinFlips; ++i) {
                raises.fetch_add(1);
                const VtdRemapResult r = unit.remap(0, m);
                if (r.outcome == VtdOutcome::Remapped) {
                    delivered.fetch_add(1);
                } else if (r.outcome == VtdOutcome::Posted) {
                    newly_posted.fetch_add(r.post.coalesced ? 0 : 1);
                } else {
                    other.fetch_add(1);
                }
            }
            running.fetch_sub(1);
        });
    }
    // Software: flip each entry posted <-> remapped with CAS, and SN on and off.
    threads.emplace_back([&] {
        for (unsigned i = 0; running.load() > 0; ++i) {
            const std::size_t t = i % kPosters;
            VtdIrte cur = unit.entry(t);
            const VtdIrte next = is_posted(cur) ? remapped[t] : posted[t];
            unit.compare_exchange(t, cur, next);
            flips.fetch_add(1);
            vmx::update_control(pid, test::sn_only((i & 4u) != 0));
        }
    });
    // The CPU: take PIR whenever something is there.
    std::atomic<uint64_t> taken{0};
    auto take = [&] {
        for (uint32_t w : vmx::take_pir(pid)) {
            taken.fetch_add(static_cast<uint64_t>(std::popcount(w)));
        }
    };
    threads.emplace_back([&] {
        while (running.load() > 0) {
            take();
        }
    });
    for (auto& th : threads) {
        th.join();
    }
    take();

    EXPECT_EQ(other.load(), 0u);
    EXPECT_EQ(unit.counter(IommuStat::Remapped) + unit.counter(IommuStat::Posted), raises.load());
    EXPECT_EQ(unit.counter(IommuStat::Remapped), delivered.load());
    // Every 0 -> 1 PIR transition was taken exactly once.
    EXPECT_EQ(taken.load(), newly_posted.load());
    EXPECT_LE(sink.notifications.load(), unit.counter(IommuStat::Posted));
}

TEST(IommuConcurrency, AmdNoLostInterruptWhileEntriesFlip)
{
    test::FakeGaSink sink;
    AmdRemapper unit{test::amd_config(true, true, 64), sink};
    unit.set_table(3, 2);
    std::vector<AmdGaIrte> remap(kPosters), guest(kPosters);
    for (std::size_t t = 0; t < kPosters; ++t) {
        const auto v = static_cast<uint8_t>(0x50 + t);
        AmdGaRemapIrte r;
        r.remap_en = true;
        r.vector = v;
        remap[t] = r.encode();
        AmdGaVapicIrte g;
        g.remap_en = true;
        g.ga_log_intr = true;
        g.vector = v;
        g.ga_tag = static_cast<uint32_t>(t);
        g.ga_root_ptr = test::FakeGaSink::frame(0);
        guest[t] = g.encode();
        unit.set_entry(3, t, guest[t]);
    }

    std::atomic<int> running{kPosters};
    std::atomic<uint64_t> raises{0}, flips{0};
    std::atomic<uint64_t> delivered{0}, newly_posted{0}, doorbells{0}, logged{0}, dropped{0};
    std::atomic<uint64_t> quiet{0};  // GuestPosted with neither doorbell nor GA log: none here
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < kPosters; ++t) {
        threads.emplace_back([&, t] {
            const MsiMessage m{0xFEE0'0000ULL, static_cast<uint32_t>(t)};
            for (int i = 0; i < kRaises || flips.load() < kMinFlips; ++i) {
                raises.fetch_add(1);
                const AmdRemapResult r = unit.remap(3, m);
                if (r.outcome == AmdOutcome::Remapped) {
                    delivered.fetch_add(1);
                } else if (r.outcome == AmdOutcome::GuestPosted) {
                    newly_posted.fetch_add(r.coalesced ? 0 : 1);
                    doorbells.fetch_add(r.doorbell ? 1 : 0);
                    logged.fetch_add(r.ga_logged ? 1 : 0);
                    dropped.fetch_add(r.ga_log_overflow ? 1 : 0);
                    quiet.fetch_add(!r.doorbell && !r.ga_logged && !r.ga_log_overflow ? 1 : 0);
                }
            }
            running.fetch_sub(1);
        });
    }
    // Software: vCPU load/put (IsRun) and guest mode <-> remap, both by CAS.
    threads.emplace_back([&] {
        for (unsigned i = 0; running.load() > 0; ++i) {
            const std::size_t t = i % kPosters;
            if ((i & 7u) == 0) {
                AmdGaIrte cur = *unit.entry(3, t);
                const AmdGaIrte next = is_guest_mode(cur) ? remap[t] : guest[t];
                unit.compare_exchange(3, t, cur, next);
            } else {
                unit.set_is_run(3, t, (i & 2u) != 0, 0x10 + i % 4);
            }
            flips.fetch_add(1);
        }
    });
    // The CPU takes IRR bits; the hypervisor drains the GA log.
    std::atomic<uint64_t> taken{0}, drained{0};
    auto take = [&] {
        for (std::size_t t = 0; t < kPosters; ++t) {
            const auto v = static_cast<uint8_t>(0x50 + t);
            const uint32_t bit = 1u << (v & 31u);
            if ((sink.page(0).irr_word(v).fetch_and(~bit) & bit) != 0) {
                taken.fetch_add(1);
            }
        }
        drained.fetch_add(unit.drain_ga_log().size());
    };
    threads.emplace_back([&] {
        while (running.load() > 0) {
            take();
        }
    });
    for (auto& th : threads) {
        th.join();
    }
    take();

    EXPECT_EQ(unit.counter(IommuStat::Remapped) + unit.counter(IommuStat::Posted), raises.load());
    EXPECT_EQ(unit.counter(IommuStat::Remapped), delivered.load());
    EXPECT_EQ(taken.load(), newly_posted.load());
    EXPECT_EQ(quiet.load(), 0u);
    EXPECT_EQ(sink.doorbells.load(), doorbells.load());
    EXPECT_EQ(drained.load(), logged.load());
    EXPECT_EQ(unit.ga_log_dropped(), dropped.load());
}

}  // namespace
}  // namespace hv::iommu
