// Helpers for the APICv model tests: a small VM of ApicvBackends on the shared fakes
// (tests/support/model_fakes.hpp), register shorthands, exit snapshots, every option set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "apic/backend.hpp"
#include "apic/destination.hpp"
#include "apic/emulated.hpp"
#include "tests/support/model_fakes.hpp"
#include "vmx/apicv_backend.hpp"
#include "vmx/apicv_vm.hpp"

namespace hv::vmx::test {

using apic::test::FakeClock;

using apic::test::RecordingNotifier;
using apic::test::RoutingPlatform;

// N vCPUs of one backend kind on the shared routing platform (tests/support/model_fakes.hpp).
struct TestVm {
    TestVm(std::size_t n, const ApicvOptions& opts) : vm(n, opts)
    {
        for (std::size_t i = 0; i < n; ++i) {
            notifiers.push_back(std::make_unique<RecordingNotifier>());
            apic::LocalApicConfig cfg;
            cfg.id = static_cast<uint32_t>(i);
            cfg.bsp = i == 0;
            apics.push_back(vm.make_backend(i, cfg, clock, platform, *notifiers[i]));
            platform.backends.push_back(apics.back().get());
        }
    }

    ApicvBackend& b(std::size_t i) { return static_cast<ApicvBackend&>(*apics[i]); }

    FakeClock clock;
    RoutingPlatform platform;
    ApicvVm vm;
    std::vector<std::unique_ptr<RecordingNotifier>> notifiers;
    std::vector<std::unique_ptr<apic::ApicBackend>> apics;
};

// One vCPU on `emulated` and on `apicv` side by side, each with IPIs that come back to itself
// (resolve_ipi over its own dest_info()).
struct Pair {
    explicit Pair(const ApicvOptions& o) : vm(1, o)
    {
        apic::LocalApicConfig cfg;
        cfg.bsp = true;
        emu = std::make_unique<apic::EmulatedApic>(0, cfg, clock, pe, ne);
        acc = vm.make_backend(0, cfg, clock, pa, na);
        pe.backends = {emu.get()};
        pa.backends = {acc.get()};
    }
    FakeClock clock;
    RoutingPlatform pe, pa;
    RecordingNotifier ne, na;
    ApicvVm vm;
    std::unique_ptr<apic::ApicBackend> emu, acc;
};

inline constexpr uint64_t kBase = apic::base::kDefaultAddr;

// Software-enable an APIC (SVR = 0x1FF), optionally switching to x2APIC first.
inline void enable(apic::ApicBackend& a, bool x2apic)
{
    if (x2apic) {
        const uint64_t b = a.msr_read(apic::kMsrApicBase).value;
        a.msr_write(apic::kMsrApicBase, b | apic::base::kExtd);
        a.msr_write(0x80F, 0x1FF);
    } else {
        a.mmio_write(kBase + apic::reg::kSvr, 4, 0x1FF);
    }
}

inline apic::Interrupt fixed(uint8_t v, apic::Trigger t = apic::Trigger::Edge,
                             apic::Source s = apic::Source::Msi)
{
    apic::Interrupt irq;
    irq.vector = v;
    irq.trigger = t;
    irq.source = s;
    return irq;
}

// Exit counts as a name -> value snapshot; delta() between two snapshots.
struct Exits {
    uint64_t ext = 0, rdmsr = 0, wrmsr = 0, tpr = 0, access = 0, eoi = 0, write = 0;
    bool operator==(const Exits&) const = default;
    uint64_t total() const { return ext + rdmsr + wrmsr + tpr + access + eoi + write; }
};
inline Exits exits(const apic::ApicBackend& a)
{
    const apic::CounterList c = a.exit_counters();
    return Exits{
        apic::counter_value(c, "external_interrupt"), apic::counter_value(c, "msr_read"),
        apic::counter_value(c, "msr_write"),          apic::counter_value(c, "tpr_below_threshold"),
        apic::counter_value(c, "apic_access"),        apic::counter_value(c, "eoi_induced"),
        apic::counter_value(c, "apic_write")};
}
inline Exits operator-(const Exits& a, const Exits& b)
{
    return Exits{a.ext - b.ext,       a.rdmsr - b.rdmsr, a.wrmsr - b.wrmsr, a.tpr - b.tpr,
                 a.access - b.access, a.eoi - b.eoi,     a.write - b.write};
}
inline uint64_t stat(const apic::ApicBackend& a, std::string_view name)
{
    return apic::counter_value(a.stats(), name);
}

// Every option combination a CPU generation offers (ApicvVm refuses the others).
inline std::vector<ApicvOptions> all_option_sets()
{
    std::vector<ApicvOptions> out;
    for (int vid = 0; vid < 2; ++vid) {
        for (int pi = 0; pi < 2; ++pi) {
            for (int ipiv = 0; ipiv < 2; ++ipiv) {
                for (int x2v = 0; x2v < 2; ++x2v) {
                    if ((pi && !vid) || (ipiv && !pi)) {
                        continue;
                    }
                    ApicvOptions o;
                    o.virtual_interrupt_delivery = vid != 0;
                    o.posted_interrupts = pi != 0;
                    o.ipiv = ipiv != 0;
                    o.x2apic_virtualization = x2v != 0;
                    out.push_back(o);
                }
            }
        }
    }
    return out;
}

}  // namespace hv::vmx::test
