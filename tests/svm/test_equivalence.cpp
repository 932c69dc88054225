// Random guest activity run side by side on `avic` and `emulated`: every ack, every register read
// and every flattened state must agree. The guest is "well behaved" in the ways real AVIC needs
// (svm/README.md "Where AVIC differs"): fixed, distinct APIC IDs, distinct one-hot logical IDs,
// one DFR model for all vCPUs, level-triggered and IPI vectors kept apart.
#include <cstdio>
#include <cstdlib>
#include <random>

#include "tests/svm/avic_fixture.hpp"

namespace hv::svm::test {
namespace {

using namespace apic::reg;

constexpr std::size_t kN = 3;

struct Twin {
    explicit Twin(AvicOptions opt) : av(std::make_unique<AvicFixture>(kN, opt))
    {
        for (std::size_t i = 0; i < kN; ++i) {
            apic::LocalApicConfig cfg;
            cfg.id = static_cast<uint32_t>(i);
            cfg.bsp = i == 0;
            emu.push_back(std::make_unique<apic::EmulatedApic>(i, cfg, clock, pe, ne[i]));
            pe.backends.push_back(emu.back().get());
            (*av)[i].enter_guest();  // running vCPUs: IPIs take the doorbell path
        }
    }
    AvicBackend& A(std::size_t i) { return (*av)[i]; }
    template <typename F> void both(std::size_t i, F f)
    {
        f(static_cast<apic::ApicBackend&>(A(i)));
        f(static_cast<apic::ApicBackend&>(*emu[i]));
    }
    void advance(uint64_t ns)
    {
        clock.ns += ns;
        av->clock.ns += ns;
    }
    void compare(const char* when)
    {
        for (std::size_t i = 0; i < kN; ++i) {
            const apic::ApicState a = A(i).flatten();
            const apic::ApicState e = emu[i]->flatten();
            ASSERT_EQ(a, e) << when << " vCPU " << i << ": " << apic::describe_difference(a, e);
        }
    }
    // Flatten every vCPU on avic, restore the states on the emulated twin and on a new avic VM
    // with other options (another host), and carry on.
    void migrate(AvicOptions to)
    {
        std::vector<apic::ApicState> states;
        for (std::size_t i = 0; i < kN; ++i) {
            states.push_back(A(i).flatten());
        }
        auto next = std::make_unique<AvicFixture>(kN, to);
        next->clock.ns = clock.ns.load();
        for (std::size_t i = 0; i < kN; ++i) {
            ASSERT_EQ((*next)[i].restore(states[i]), std::nullopt);
            ASSERT_EQ(emu[i]->restore(states[i]), std::nullopt);
            (*next)[i].enter_guest();
        }
        retired.push_back(std::move(av));
        av = std::move(next);
    }

    FakeClock clock;
    std::unique_ptr<AvicFixture> av;
    std::vector<std::unique_ptr<AvicFixture>> retired;
    std::array<RecordingNotifier, kN> ne;
    RoutingPlatform pe;
    std::vector<std::unique_ptr<apic::EmulatedApic>> emu;
};

class AvicEquivalence : public ::testing::TestWithParam<AvicOptions> {};

void run_seed(const AvicOptions& opt, uint32_t seed)
{
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Twin t(opt);
    std::mt19937 rng(seed);
    auto pick = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
    bool x2 = false;
    bool cluster = false;
    auto wr = [&](std::size_t i, uint32_t off, uint32_t v) {
        t.both(i, [&](apic::ApicBackend& b) {
            if (x2) {
                b.msr_write(apic::x2apic_msr(off), v);
            } else {
                b.mmio_write(kApicBase + off, 4, v);
            }
        });
    };
    for (std::size_t i = 0; i < kN; ++i) {
        wr(i, kSvr, 0x1FF);
        wr(i, kLdr, 1u << (24 + i));
    }
    for (int step = 0; step < 4000; ++step) {
        const std::size_t i = pick(kN);
        const uint32_t op = pick(12);
        if (std::getenv("AVIC_TRACE")) {
            std::printf("step %d vcpu %zu op %u\n", step, i, op);
        }
        switch (op) {
        case 0: {  // device interrupt, edge (vectors 0x40+) or level (0x20-0x3F)
            const bool level = pick(4) == 0;
            const auto v = static_cast<uint8_t>(level ? 0x20 + pick(0x20) : 0x40 + pick(0xC0));
            const apic::Interrupt irq{v, apic::DeliveryMode::Fixed,
                                      level ? apic::Trigger::Level : apic::Trigger::Edge, true,
                                      apic::Source::Msi};
            if (std::getenv("AVIC_TRACE")) {
                std::printf("  deliver %x level %d\n", v, level);
            }
            t.both(i, [&](apic::ApicBackend& b) { b.deliver(irq); });
            break;
        }
        case 1:
        case 2: {  // the CPU takes an interrupt
            const auto pa = t.A(i).pending_vector();
            if (std::getenv("AVIC_TRACE")) {
                std::printf("  pending %x\n", pa.value_or(0));
            }
            const auto pe = t.emu[i]->pending_vector();
            ASSERT_EQ(pa, pe) << "step " << step;
            if (pa) {
                const auto a = t.A(i).ack();
                const auto e = t.emu[i]->ack();
                ASSERT_EQ(a.vector, e.vector);
                ASSERT_EQ(a.spurious, e.spurious);
            }
            break;
        }
        case 3:
            wr(i, kEoi, 0);
            break;
        case 4:
            wr(i, kTpr, pick(0x100) & 0xF0);
            break;
        case 5: {  // IPI: fixed to a physical ID, logical bitmap, self or broadcast
            const uint8_t v = static_cast<uint8_t>(0x40 + pick(0xC0));
            const uint32_t kind = pick(5);
            const uint32_t dest = kind == 1 ? (1u << pick(kN)) | (1u << pick(kN)) : pick(kN);
            uint32_t low = v;
            if (std::getenv("AVIC_TRACE")) {
                std::printf("  ipi %x kind %u dest %x\n", v, kind, dest);
            }
            low |= kind == 1 ? 0x800u : 0;
            low |= kind == 2 ? (1u << 18) : kind == 3 ? (3u << 18) : 0;
            low |= kind == 4 ? (1u << 8) : 0;  // lowest priority (software path)
            t.both(i, [&](apic::ApicBackend& b) {
                if (x2) {
                    b.msr_write(0x830, (static_cast<uint64_t>(dest) << 32) | low);
                } else {
                    b.mmio_write(kApicBase + kIcrHigh, 4, dest << 24);
                    b.mmio_write(kApicBase + kIcrLow, 4, low);
                }
            });
            break;
        }
        case 6: {  // register reads
            const uint32_t off = pick(0x40) * 0x10;
            const auto a =
                x2 ? t.A(i).msr_read(apic::x2apic_msr(off)) : t.A(i).mmio_read(kApicBase + off, 4);
            const auto e = x2 ? t.emu[i]->msr_read(apic::x2apic_msr(off))
                              : t.emu[i]->mmio_read(kApicBase + off, 4);
            ASSERT_EQ(a.status, e.status) << std::hex << off;
            ASSERT_EQ(a.value, e.value) << std::hex << off << " step " << std::dec << step;
            break;
        }
        case 7:  // timers
            wr(i, kLvtTimer, (pick(2) << 17) | (0x40 + pick(0xC0)) | (pick(4) == 0 ? 1u << 16 : 0));
            wr(i, kTimerDivide, pick(16) & 0xB);
            wr(i, kTimerInitial, 1 + pick(5000));
            break;
        case 8: {
            t.advance(pick(3000));
            for (std::size_t j = 0; j < kN; ++j) {
                t.both(j, [&](apic::ApicBackend& b) { b.timer_fired(); });
            }
            break;
        }
        case 9:  // SVR enable/disable, ESR
            wr(i, kSvr, pick(8) == 0 ? 0xFF : 0x1FF);
            wr(i, kEsr, 0);
            break;
        case 10:  // cluster/flat switch for everybody (xAPIC only)
            if (!x2 && pick(20) == 0) {
                cluster = !cluster;
                for (std::size_t j = 0; j < kN; ++j) {
                    wr(j, kDfr, cluster ? 0x0FFFFFFF : 0xFFFFFFFF);
                }
            }
            break;
        case 11:  // everybody to x2APIC once
            if (!x2 && pick(400) == 0) {
                for (std::size_t j = 0; j < kN; ++j) {
                    t.both(j, [&](apic::ApicBackend& b) {
                        b.msr_write(apic::kMsrApicBase, kApicBase | apic::base::kEnable |
                                                            apic::base::kExtd |
                                                            (j == 0 ? apic::base::kBsp : 0));
                    });
                }
                x2 = true;
            }
            break;
        }
        if (step == 2000) {
            // Mid-workload: another AVIC flavour on "another host".
            t.migrate(AvicOptions{!opt.x2avic, !opt.erratum_1235});
            if (::testing::Test::HasFatalFailure()) {
                return;
            }
        }
        if (std::getenv("AVIC_TRACE")) {
            if (std::getenv("AVIC_TRACE")[0] == '2')
                t.compare("trace");
            if (::testing::Test::HasFatalFailure()) {
                FAIL() << "step " << step;
            }
        }
        if (step % 50 == 0) {
            t.compare("periodic");
            if (::testing::Test::HasFatalFailure()) {
                FAIL() << "step " << step;
            }
        }
    }
    t.compare("end");
}

TEST_P(AvicEquivalence, RandomGuestActivity)
{
    for (uint32_t seed = 1; seed <= 12; ++seed) {
        run_seed(GetParam(), seed);
        if (::testing::Test::HasFatalFailure()) {
            return;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, AvicEquivalence,
                         ::testing::Values(AvicOptions{false, false}, AvicOptions{false, true},
                                           AvicOptions{true, false}, AvicOptions{true, true}),
                         [](const ::testing::TestParamInfo<AvicOptions>& p) {
                             return std::string("avic") + (p.param.x2avic ? "_x2avic" : "") +
                                    (p.param.erratum_1235 ? "_erratum_1235" : "");
                         });

}  // namespace
}  // namespace hv::svm::test
