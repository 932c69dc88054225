// Hostile guest: random xAPIC accesses (any offset, size, value), random x2APIC MSRs and
// IA32_APIC_BASE writes, random deliveries, IOMMU posts of any vector and acks, in every AVIC
// mode (AVIC, x2AVIC, each with and without the erratum 1235 workaround). Nothing may crash or
// hang, block() keeps its contract, and the flattened state stays valid (apic::validate) and
// restorable.
#include <random>

#include "tests/svm/avic_fixture.hpp"

namespace hv::svm::test {
namespace {

TEST(AvicHostile, RandomAccessesKeepTheStateValid)
{
    for (const bool x2avic : {false, true}) {
        for (const bool erratum : {false, true}) {
            AvicFixture vm(2, AvicOptions{x2avic, erratum});
            std::mt19937_64 rng(7);
            AvicBackend& a = vm[0];
            for (int step = 0; step < 20000; ++step) {
                const uint64_t r = rng();
                vm.clock.ns.fetch_add(r % 1000);
                switch (r % 8) {
                case 0:
                case 1: {
                    const unsigned sizes[] = {1, 2, 4, 8, 3, 0};
                    a.mmio_write(kApicBase + (rng() % 0x1000), sizes[rng() % 6],
                                 static_cast<uint32_t>(rng()));
                    break;
                }
                case 2:
                    a.mmio_read(kApicBase + (rng() % 0x1000), static_cast<unsigned>(rng() % 9));
                    break;
                case 3: {
                    const uint64_t v = rng() % 4 == 0 ? 0 : rng() >> (rng() % 64);
                    a.msr_write(static_cast<uint32_t>(0x800 + rng() % 0x100), v);
                    a.msr_read(static_cast<uint32_t>(0x800 + rng() % 0x100));
                    break;
                }
                case 4: {
                    const uint64_t modes[] = {0, apic::base::kEnable,
                                              apic::base::kEnable | apic::base::kExtd};
                    if (rng() % 16 == 0) {
                        a.msr_write(apic::kMsrApicBase,
                                    apic::base::kDefaultAddr | apic::base::kBsp | modes[rng() % 3]);
                    }
                    a.msr_write(0x80F, 0x1FF);
                    a.mmio_write(kApicBase + apic::reg::kSvr, 4, 0x1FF);
                    break;
                }
                case 5: {
                    apic::Interrupt irq;
                    irq.vector = static_cast<uint8_t>(rng());
                    irq.trigger = rng() % 2 ? apic::Trigger::Level : apic::Trigger::Edge;
                    irq.source = apic::Source::Msi;
                    a.deliver(irq);
                    vm.vm.post_interrupt(0, static_cast<uint8_t>(rng()));  // IOMMU GA: any vector
                    break;
                }
                case 6:
                    a.enter_guest();
                    if (a.pending_vector()) {
                        a.ack();
                    }
                    a.leave_guest();
                    break;
                default:
                    a.timer_fired();
                    if (rng() % 64 == 0) {
                        // block() sleeps exactly when nothing is deliverable and no event waits
                        // (apic/backend.hpp); the timer was polled just above.
                        const bool slept = a.block();
                        a.unblock();
                        const bool pending = a.pending_vector().has_value();
                        const bool events = a.take_events().any();
                        EXPECT_EQ(slept, !(pending || events)) << "step " << step;
                    }
                    break;
                }
                if (step % 200 == 0) {
                    const apic::ApicState s = a.flatten();
                    ASSERT_EQ(apic::validate(s), std::nullopt) << "step " << step;
                    ASSERT_EQ(vm[1].restore(s), std::nullopt);
                }
            }
        }
    }
}

}  // namespace
}  // namespace hv::svm::test
