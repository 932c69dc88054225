// libFuzzer target for the guest-facing APIC interfaces: the input is a sequence of guest
// operations (MMIO, x2APIC MSRs, IA32_APIC_BASE, TSC-deadline, acceptance, ack/EOI, timer,
// INIT/SIPI, IOAPIC register and pin traffic). Invariants checked after every operation: the
// flattened ApicState validates, restoring it reproduces it, and the IOAPIC state validates.
// Built as a libFuzzer target with -DHV_FUZZ=ON (clang), and replayed on its seeds and on
// pseudo-random inputs by tests/fuzz/test_fuzz_seeds in the normal suite.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "apic/ioapic.hpp"
#include "apic/local_apic.hpp"
#include "tests/fuzz/fuzz_target.hpp"

namespace {

using namespace hv::apic;

class Input {
  public:
    Input(const uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
    bool empty() const { return p_ == end_; }
    uint64_t take(unsigned bytes)
    {
        uint64_t v = 0;
        for (unsigned i = 0; i < bytes && p_ != end_; ++i) {
            v |= static_cast<uint64_t>(*p_++) << (8 * i);
        }
        return v;
    }

  private:
    const uint8_t* p_;
    const uint8_t* end_;
};

struct NullSink : IoApicSink {
    void deliver(const IoApicMessage&) override {}
};

void check(bool ok)
{
    if (!ok) {
        std::abort();
    }
}

void step(Input& in, LocalApic& apic, IoApic& io, uint64_t& now)
{
    now += in.take(2);
    const GuestTime t{now, now};
    switch (in.take(1) % 12) {
    case 0:
        apic.mmio_write(static_cast<uint32_t>(in.take(2) & 0x1FFF),
                        static_cast<unsigned>(in.take(1) % 9), static_cast<uint32_t>(in.take(4)),
                        t);
        break;
    case 1:
        apic.mmio_read(static_cast<uint32_t>(in.take(2) & 0x1FFF),
                       static_cast<unsigned>(in.take(1) % 9), t);
        break;
    case 2:
        apic.msr_write(static_cast<uint32_t>(0x800 + in.take(1)), in.take(8), t);
        break;
    case 3:
        apic.msr_read(static_cast<uint32_t>(0x800 + in.take(1)), t);
        break;
    case 4:
        apic.msr_write(kMsrApicBase, in.take(8), t);
        break;
    case 5:
        apic.msr_write(kMsrTscDeadline, now + in.take(2), t);
        break;
    case 6:
        apic.accept(static_cast<uint8_t>(in.take(1)),
                    (in.take(1) & 1) != 0 ? Trigger::Level : Trigger::Edge);
        break;
    case 7:
        (in.take(1) & 1) != 0 ? static_cast<void>(apic.ack()) : static_cast<void>(apic.eoi());
        break;
    case 8:
        apic.timer_expired(t);
        break;
    case 9:
        (in.take(1) & 1) != 0 ? apic.init()
                              : static_cast<void>(apic.sipi(static_cast<uint8_t>(in.take(1))));
        break;
    case 10:
        io.mmio_write(in.take(1) & 0x7C, 4, static_cast<uint32_t>(in.take(4)));
        break;
    default:
        io.set_irq(static_cast<unsigned>(in.take(1) % 32), (in.take(1) & 1) != 0);
        io.eoi(static_cast<uint8_t>(in.take(1)));
        break;
    }
}

}  // namespace

HV_FUZZ_TARGET(apic)
{
    Input in(data, size);
    LocalApicConfig cfg;
    cfg.id = static_cast<uint32_t>(in.take(1));
    cfg.bsp = (cfg.id & 1) != 0;
    LocalApic apic(cfg);
    NullSink sink;
    IoApic io(sink);
    uint64_t now = 0;
    while (!in.empty()) {
        step(in, apic, io, now);
        const GuestTime t{now, now};
        const ApicState s = apic.flatten(t);
        check(!validate(s, cfg.caps).has_value());
        LocalApic copy(cfg);
        check(!copy.restore(s, t).has_value());
        check(copy.flatten(t) == s);
        check(!validate(io.flatten()).has_value());
    }
    return 0;
}
