// Test doubles for the APICv model: a notifier that a simulated vCPU thread can sleep on, and a
// small VM that routes IPIs between ApicvBackends (what core/interrupts does).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "apic/backend.hpp"
#include "apic/destination.hpp"
#include "apic/emulated.hpp"
#include "fakes.hpp" // tests/apic: FakeClock, FakeNotifier, RecordingPlatform
#include "vmx/apicv_backend.hpp"
#include "vmx/apicv_vm.hpp"

namespace hv::vmx::test {

using apic::test::FakeClock;

// kick() and wake() are sticky flags a vCPU thread waits on (core: immediate_exit / futex).
class CvNotifier : public apic::VcpuNotifier {
  public:
    void kick() override
    {
        std::lock_guard lock(mu_);
        kicked_ = true;
        ++kicks;
        cv_.notify_all();
    }
    void wake() override
    {
        std::lock_guard lock(mu_);
        woken_ = true;
        ++wakes;
        cv_.notify_all();
    }
    // Sleep until woken (or kicked); false on timeout. Consumes the flags.
    bool wait(std::chrono::milliseconds timeout)
    {
        std::unique_lock lock(mu_);
        const bool ok = cv_.wait_for(lock, timeout, [&] { return woken_ || kicked_; });
        woken_ = kicked_ = false;
        return ok;
    }
    bool take_kick()
    {
        std::lock_guard lock(mu_);
        const bool k = kicked_;
        kicked_ = false;
        return k;
    }
    uint64_t kick_count()
    {
        std::lock_guard lock(mu_);
        return kicks;
    }
    uint64_t wake_count()
    {
        std::lock_guard lock(mu_);
        return wakes;
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool kicked_ = false;
    bool woken_ = false;
    uint64_t kicks = 0;
    uint64_t wakes = 0;
};

// N vCPUs of one backend kind; IPIs routed with resolve_ipi(), EOIs recorded.
class TestVm : public apic::ApicPlatform {
  public:
    TestVm(std::size_t n, const ApicvOptions& opts) : vm(n, opts)
    {
        for (std::size_t i = 0; i < n; ++i) {
            notifiers.push_back(std::make_unique<CvNotifier>());
            apic::LocalApicConfig cfg;
            cfg.id = static_cast<uint32_t>(i);
            cfg.bsp = i == 0;
            apics.push_back(vm.make_backend(i, cfg, clock, *this, *notifiers[i]));
        }
    }

    ApicvBackend& b(std::size_t i) { return static_cast<ApicvBackend&>(*apics[i]); }

    void send_ipi(std::size_t from, const apic::Ipi& ipi) override
    {
        std::vector<apic::DestInfo> infos;
        for (const auto& a : apics) {
            infos.push_back(a->dest_info());
        }
        const apic::TargetSet t = apic::resolve_ipi(ipi, infos, from);
        apic::Interrupt irq;
        irq.vector = ipi.vector;
        irq.mode = ipi.mode;
        irq.trigger = ipi.trigger;
        irq.assert_level = ipi.assert_level;
        irq.source = apic::Source::Ipi;
        {
            std::lock_guard lock(mu);
            ++ipis_routed;
        }
        for (std::size_t i = 0; i < apics.size(); ++i) {
            if (t[i]) {
                apics[i]->deliver(irq);
            }
        }
    }
    void eoi_to_ioapic(uint8_t vector) override
    {
        std::lock_guard lock(mu);
        eois.push_back(vector);
    }
    void timer_changed(std::size_t) override {}

    FakeClock clock;
    ApicvVm vm;
    std::vector<std::unique_ptr<CvNotifier>> notifiers;
    std::vector<std::unique_ptr<apic::ApicBackend>> apics;
    std::mutex mu;
    std::vector<uint8_t> eois;
    uint64_t ipis_routed = 0;
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

} // namespace hv::vmx::test
