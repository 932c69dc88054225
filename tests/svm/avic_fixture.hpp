// A small VM of AVIC backends for the unit tests: N vCPUs, a fake clock, per-vCPU notifiers
// and the shared routing platform (tests/support/model_fakes.hpp).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "apic/emulated.hpp"
#include "svm/avic_backend.hpp"
#include "svm/avic_vm.hpp"
#include "tests/support/model_fakes.hpp"

namespace hv::svm::test {

using apic::test::FakeClock;
using apic::test::RecordingNotifier;
using apic::test::RoutingPlatform;

inline constexpr uint64_t kApicBase = 0xFEE00000;

struct AvicFixture {
    explicit AvicFixture(std::size_t n, AvicOptions opt = {}, apic::ApicCaps caps = {})
        : vm(n, opt), notifiers(n)
    {
        for (std::size_t i = 0; i < n; ++i) {
            apic::LocalApicConfig cfg;
            cfg.id = static_cast<uint32_t>(i);
            cfg.bsp = i == 0;
            cfg.caps = caps;
            auto b = vm.make_backend(i, cfg, clock, platform, notifiers[i]);
            backends.push_back(
                std::unique_ptr<AvicBackend>(static_cast<AvicBackend*>(b.release())));
            platform.backends.push_back(backends.back().get());
        }
    }
    AvicBackend& operator[](std::size_t i) { return *backends[i]; }

    // xAPIC register access at the default base.
    uint32_t rd(std::size_t i, uint32_t off)
    {
        return static_cast<uint32_t>(backends[i]->mmio_read(kApicBase + off, 4).value);
    }
    void wr(std::size_t i, uint32_t off, uint32_t v)
    {
        backends[i]->mmio_write(kApicBase + off, 4, v);
    }
    // SVR enable on every vCPU, then zero the counters' baseline.
    void enable_all()
    {
        for (std::size_t i = 0; i < backends.size(); ++i) {
            wr(i, apic::reg::kSvr, 0x1FF);
        }
        mark();
    }
    void to_x2apic(std::size_t i)
    {
        backends[i]->msr_write(apic::kMsrApicBase, kApicBase | apic::base::kEnable |
                                                       apic::base::kExtd |
                                                       (i == 0 ? apic::base::kBsp : 0));
    }
    // xAPIC IPI: ICR high then ICR low (as guests do).
    void ipi(std::size_t from, uint8_t dest, uint32_t icr_low)
    {
        wr(from, apic::reg::kIcrHigh, static_cast<uint32_t>(dest) << 24);
        wr(from, apic::reg::kIcrLow, icr_low);
    }
    void mark()
    {
        base.clear();
        for (auto& b : backends) {
            base.push_back(b->total_exits());
        }
    }
    // Architectural exits of vCPU i since mark().
    uint64_t exits(std::size_t i) const { return backends[i]->total_exits() - base[i]; }
    uint64_t all_exits() const
    {
        uint64_t n = 0;
        for (std::size_t i = 0; i < backends.size(); ++i) {
            n += exits(i);
        }
        return n;
    }
    bool irr_in_page(std::size_t i, uint8_t v) { return vm.backing_page(i).test_irr(v); }

    AvicVm vm;
    FakeClock clock;
    std::vector<RecordingNotifier> notifiers;
    RoutingPlatform platform;
    std::vector<std::unique_ptr<AvicBackend>> backends;
    std::vector<uint64_t> base;
};

}  // namespace hv::svm::test
