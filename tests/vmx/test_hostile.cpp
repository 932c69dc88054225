// Hostile guest: random xAPIC accesses (any offset, size, value), random x2APIC MSRs and
// IA32_APIC_BASE writes, random deliveries and acks, on every option combination. Nothing may
// crash or hang, and the flattened state stays valid (apic::validate) and restorable.
#include <gtest/gtest.h>

#include <random>

#include "apicv_fakes.hpp"

namespace hv::vmx::test {
namespace {

TEST(Hostile, RandomAccessesKeepTheStateValid)
{
    for (const ApicvOptions& o : all_option_sets()) {
        TestVm vm(2, o);
        std::mt19937_64 rng(7);
        ApicvBackend& a = vm.b(0);
        for (int step = 0; step < 20000; ++step) {
            const uint64_t r = rng();
            vm.clock.ns.fetch_add(r % 1000);
            switch (r % 8) {
            case 0:
            case 1: {
                const unsigned sizes[] = {1, 2, 4, 8, 3, 0};
                a.mmio_write(kBase + (rng() % 0x1000), sizes[rng() % 6],
                             static_cast<uint32_t>(rng()));
                break;
            }
            case 2:
                a.mmio_read(kBase + (rng() % 0x1000), static_cast<unsigned>(rng() % 9));
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
                a.mmio_write(kBase + apic::reg::kSvr, 4, 0x1FF);
                break;
            }
            case 5:
                a.deliver(fixed(static_cast<uint8_t>(rng()),
                                rng() % 2 ? apic::Trigger::Level : apic::Trigger::Edge));
                vm.vm.post_to(0, static_cast<uint8_t>(rng()));  // VT-d: any vector
                break;
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
                ASSERT_EQ(vm.b(1).restore(s), std::nullopt);
            }
        }
    }
}

}  // namespace
}  // namespace hv::vmx::test
