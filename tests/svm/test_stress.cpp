// Stress: device threads post interrupts and vCPU threads IPI each other while every vCPU thread
// enters, takes interrupts, EOIs, halts and is woken. Nothing may be lost: each (source, target)
// pair has its own vector and at most one message in flight, so none can coalesce, and every
// message sent must be handled. A lost doorbell or wake-up hangs a vCPU: the watchdog turns that
// into a failure. Run it under TSan (CMAKE_BUILD_TYPE=Tsan).
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <thread>

#include "tests/svm/avic_fixture.hpp"

namespace hv::svm::test {
namespace {

// A vCPU's sleep: kick and wake are sticky (backend.hpp), as immediate_exit and a futex are.
class CondNotifier : public apic::VcpuNotifier {
  public:
    void kick() override { post(); }
    void wake() override { post(); }
    void post()
    {
        {
            std::lock_guard lock(mu_);
            flag_ = true;
        }
        cv_.notify_one();
    }
    void wait(const std::atomic<bool>& stop)
    {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return flag_ || stop.load(); });
        flag_ = false;
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool flag_ = false;
};

class NullPlatform : public apic::ApicPlatform {
  public:
    // Every IPI here is fixed/edge/physical: if the hardware path fails, route it like core.
    void send_ipi(std::size_t from, const apic::Ipi& ipi) override
    {
        std::vector<apic::DestInfo> infos;
        for (auto* b : backends) {
            infos.push_back(b->dest_info());
        }
        const apic::TargetSet t = apic::resolve_ipi(ipi, infos, from);
        for (std::size_t i = 0; i < backends.size(); ++i) {
            if (t[i]) {
                backends[i]->deliver({ipi.vector, ipi.mode, ipi.trigger, true, apic::Source::Ipi});
            }
        }
    }
    void eoi_to_ioapic(uint8_t) override {}
    void timer_changed(std::size_t) override {}
    std::vector<apic::ApicBackend*> backends;
};

constexpr std::size_t kVcpus = 4;
constexpr std::size_t kDevices = 2;
constexpr std::size_t kSources = kDevices + kVcpus;
constexpr int kPerPair = 1000;
constexpr uint8_t kTimerVector = 0xE0;

uint8_t vector_of(std::size_t source)
{
    return static_cast<uint8_t>(0x40 + 0x10 * source);  // one priority class per source
}

struct Stress {
    explicit Stress(AvicOptions opt) : vm(kVcpus, opt), notifiers(kVcpus)
    {
        for (std::size_t i = 0; i < kVcpus; ++i) {
            apic::LocalApicConfig cfg;
            cfg.id = static_cast<uint32_t>(i);
            cfg.bsp = i == 0;
            backends.push_back(vm.make_backend(i, cfg, clock, platform, notifiers[i]));
            platform.backends.push_back(backends.back().get());
            if (opt.x2avic) {  // the guest runs in x2APIC mode: MSR accesses
                backends.back()->msr_write(apic::kMsrApicBase, kApicBase | apic::base::kEnable |
                                                                   apic::base::kExtd |
                                                                   (i == 0 ? apic::base::kBsp : 0));
                backends.back()->msr_write(0x80F, 0x1FF);
            } else {
                backends.back()->mmio_write(kApicBase + apic::reg::kSvr, 4, 0x1FF);
            }
        }
        x2 = opt.x2avic;
        // A periodic LAPIC timer on every vCPU (vector kTimerVector), fired by a "timer thread".
        for (auto& b : backends) {
            if (x2) {
                b->msr_write(0x83E, 0xB);
                b->msr_write(0x832, 0x20000 | kTimerVector);
                b->msr_write(0x838, 20000);
            } else {
                b->mmio_write(kApicBase + apic::reg::kTimerDivide, 4, 0xB);
                b->mmio_write(kApicBase + apic::reg::kLvtTimer, 4, 0x20000 | kTimerVector);
                b->mmio_write(kApicBase + apic::reg::kTimerInitial, 4, 20000);
            }
        }
    }
    std::atomic<bool>& inflight(std::size_t s, std::size_t t) { return inflight_[s][t]; }

    bool pair_active(std::size_t s, std::size_t t) const
    {
        return s < kDevices || s - kDevices != t;
    }

    void eoi(apic::ApicBackend& b) const
    {
        if (x2) {
            b.msr_write(0x80B, 0);
        } else {
            b.mmio_write(kApicBase + apic::reg::kEoi, 4, 0);
        }
    }

    void timer_thread()
    {
        while (!stop.load()) {
            clock.ns.fetch_add(5000);
            for (auto& b : backends) {
                if (const auto d = b->timer_deadline(); d && *d <= clock.ns.load()) {
                    b->timer_fired();
                }
            }
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }

    void vcpu_thread(std::size_t me)
    {
        apic::ApicBackend& b = *backends[me];
        const std::size_t my_source = kDevices + me;
        int sent_by_me = 0;
        const int to_send = kPerPair * static_cast<int>(kVcpus - 1);
        while (!stop.load()) {
            b.enter_guest();
            while (b.pending_vector()) {
                const apic::AckResult a = b.ack();
                if (!a.spurious && a.vector == kTimerVector) {
                    timer_irqs.fetch_add(1);
                    eoi(b);
                } else if (!a.spurious) {
                    const auto s = static_cast<std::size_t>((a.vector - 0x40) / 0x10);
                    handled[s][me].fetch_add(1);
                    inflight(s, me).store(false);
                    if (s >= kDevices) {
                        notifiers[s - kDevices].post();  // the sender may send its next one
                    }
                    eoi(b);
                }
            }
            for (std::size_t t = 0; t < kVcpus && sent_by_me < to_send; ++t) {
                if (t == me || sent[my_source][t].load() >= kPerPair) {
                    continue;
                }
                bool expected = false;
                if (inflight(my_source, t).compare_exchange_strong(expected, true)) {
                    sent[my_source][t].fetch_add(1);
                    ++sent_by_me;
                    if (x2) {
                        b.msr_write(0x830, (static_cast<uint64_t>(t) << 32) | vector_of(my_source));
                    } else {
                        b.mmio_write(kApicBase + apic::reg::kIcrHigh, 4,
                                     static_cast<uint32_t>(t) << 24);
                        b.mmio_write(kApicBase + apic::reg::kIcrLow, 4, vector_of(my_source));
                    }
                }
            }
            b.leave_guest();
            if (b.block()) {
                notifiers[me].wait(stop);
            }
            b.unblock();
        }
    }

    void device_thread(std::size_t d)
    {
        while (!stop.load()) {
            bool all = true;
            for (std::size_t t = 0; t < kVcpus; ++t) {
                if (sent[d][t].load() >= kPerPair) {
                    continue;
                }
                all = false;
                bool expected = false;
                if (inflight(d, t).compare_exchange_strong(expected, true)) {
                    sent[d][t].fetch_add(1);
                    backends[t]->deliver({vector_of(d), apic::DeliveryMode::Fixed,
                                          apic::Trigger::Edge, true, apic::Source::Msi});
                }
            }
            if (all) {
                return;
            }
            std::this_thread::yield();
        }
    }

    bool finished() const
    {
        for (std::size_t s = 0; s < kSources; ++s) {
            for (std::size_t t = 0; t < kVcpus; ++t) {
                if (pair_active(s, t) && handled[s][t].load() < kPerPair) {
                    return false;
                }
            }
        }
        return true;
    }

    void run()
    {
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < kVcpus; ++i) {
            threads.emplace_back([this, i] { vcpu_thread(i); });
        }
        for (std::size_t d = 0; d < kDevices; ++d) {
            threads.emplace_back([this, d] { device_thread(d); });
        }
        threads.emplace_back([this] { timer_thread(); });
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
        while (!finished() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        timed_out = !finished();
        stop.store(true);
        for (auto& n : notifiers) {
            n.post();
        }
        for (auto& t : threads) {
            t.join();
        }
    }

    FakeClock clock;
    AvicVm vm;
    std::vector<CondNotifier> notifiers;
    NullPlatform platform;
    std::vector<std::unique_ptr<apic::ApicBackend>> backends;
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> timer_irqs{0};
    bool timed_out = false;
    bool x2 = false;
    std::atomic<bool> inflight_[kSources][kVcpus]{};
    std::atomic<int> sent[kSources][kVcpus]{};
    std::atomic<int> handled[kSources][kVcpus]{};
};

class AvicStress : public ::testing::TestWithParam<AvicOptions> {};

TEST_P(AvicStress, NothingLost)
{
    Stress s(GetParam());
    s.run();
    EXPECT_FALSE(s.timed_out) << "a vCPU slept through a pending interrupt";
    for (std::size_t src = 0; src < kSources; ++src) {
        for (std::size_t t = 0; t < kVcpus; ++t) {
            if (s.pair_active(src, t)) {
                EXPECT_EQ(s.handled[src][t].load(), kPerPair) << src << "->" << t;
                EXPECT_EQ(s.sent[src][t].load(), kPerPair) << src << "->" << t;
            }
        }
    }
    uint64_t incomplete = 0;
    uint64_t hlt = 0;
    uint64_t notified = 0;
    for (auto& b : s.backends) {
        incomplete += apic::counter_value(b->exit_counters(), "avic_incomplete_ipi_not_running");
        hlt += apic::counter_value(b->exit_counters(), "hlt");
        const apic::CounterList st = b->stats();
        notified += apic::counter_value(st, "doorbells") + apic::counter_value(st, "wakes") +
                    apic::counter_value(st, "kicks");
    }
    // The vCPUs did halt and were woken / rung (the paths this test is about).
    EXPECT_GT(hlt, 0u);
    EXPECT_GT(notified, 0u);
    EXPECT_GT(s.timer_irqs.load(), 0u);
    std::printf(
        "timer irqs %llu, hlt %llu, doorbells+wakes+kicks %llu, incomplete_ipi_not_running %llu\n",
        static_cast<unsigned long long>(s.timer_irqs.load()), static_cast<unsigned long long>(hlt),
        static_cast<unsigned long long>(notified), static_cast<unsigned long long>(incomplete));
    if (GetParam().erratum_1235) {
        // Every cross-vCPU IPI took exactly one exit.
        EXPECT_EQ(incomplete, static_cast<uint64_t>(kPerPair) * kVcpus * (kVcpus - 1));
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, AvicStress,
                         ::testing::Values(AvicOptions{false, false}, AvicOptions{false, true},
                                           AvicOptions{true, false}, AvicOptions{true, true}),
                         [](const ::testing::TestParamInfo<AvicOptions>& p) {
                             return std::string("avic") + (p.param.x2avic ? "_x2avic" : "") +
                                    (p.param.erratum_1235 ? "_erratum_1235" : "");
                         });

}  // namespace
}  // namespace hv::svm::test
