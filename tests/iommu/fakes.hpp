// Fake sinks for the remappers: real posted-interrupt descriptors and real backing pages, with the
// notifications recorded instead of sent.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "iommu/amd_remapper.hpp"
#include "iommu/vtd_remapper.hpp"
#include "svm/avic_vm.hpp"
#include "vmx/posted_interrupt.hpp"

namespace hv::iommu::test {

// Configurations (designated initializers that skip members trip -Wmissing-field-initializers).
inline AmdConfig amd_config(bool ga_mode, bool x2apic = true, std::size_t ga_log = 512,
                            std::size_t events = 256)
{
    AmdConfig c;
    c.ga_mode = ga_mode;
    c.x2apic = x2apic;
    c.ga_log_size = ga_log;
    c.event_log_size = events;
    return c;
}
inline VtdConfig vtd_config(unsigned size_log2)
{
    VtdConfig c;
    c.size_log2 = size_log2;
    return c;
}
inline vmx::ControlUpdate sn_only(bool sn)
{
    vmx::ControlUpdate u;
    u.sn = sn;
    return u;
}

class FakePostingSink : public PostingSink {
  public:
    static constexpr std::size_t kPids = 4;

    vmx::PostedInterruptDescriptor& pid(std::size_t i) { return pids_[i]; }
    uint64_t pda(std::size_t i) const { return reinterpret_cast<uintptr_t>(&pids_[i]); }

    vmx::PostedInterruptDescriptor* pid_at(uint64_t pda) override
    {
        for (std::size_t i = 0; i < kPids; ++i) {
            if (pda == this->pda(i)) {
                return &pids_[i];
            }
        }
        return nullptr;
    }
    void notify(vmx::PostedInterruptDescriptor& pid, const vmx::PostResult& r) override
    {
        notifications.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lock(mu_);
        last_ = r;
        last_pid_ = &pid;
    }
    vmx::PostResult last() const
    {
        std::lock_guard lock(mu_);
        return last_;
    }
    const vmx::PostedInterruptDescriptor* last_pid() const
    {
        std::lock_guard lock(mu_);
        return last_pid_;
    }

    std::atomic<uint64_t> notifications{0};

  private:
    std::array<vmx::PostedInterruptDescriptor, kPids> pids_{};
    mutable std::mutex mu_;
    vmx::PostResult last_{};
    const vmx::PostedInterruptDescriptor* last_pid_ = nullptr;
};

class FakeGaSink : public GaSink {
  public:
    static constexpr std::size_t kPages = 4;
    FakeGaSink()
    {
        for (auto& p : pages_) {
            p = std::make_unique<svm::BackingPage>();
        }
    }
    svm::BackingPage& page(std::size_t i) { return *pages_[i]; }
    static uint64_t frame(std::size_t i) { return svm::AvicVm::backing_frame(i); }

    svm::BackingPage* page_at(uint64_t ga_root_frame) override
    {
        if (ga_root_frame < svm::kBackingFrameBase ||
            ga_root_frame - svm::kBackingFrameBase >= kPages) {
            return nullptr;
        }
        return pages_[ga_root_frame - svm::kBackingFrameBase].get();
    }
    void doorbell(uint32_t dest) override
    {
        doorbells.fetch_add(1, std::memory_order_relaxed);
        last_doorbell.store(dest, std::memory_order_relaxed);
    }
    void ga_log_interrupt() override { ga_interrupts.fetch_add(1, std::memory_order_relaxed); }

    std::atomic<uint64_t> doorbells{0};
    std::atomic<uint32_t> last_doorbell{0};
    std::atomic<uint64_t> ga_interrupts{0};

  private:
    std::array<std::unique_ptr<svm::BackingPage>, kPages> pages_;
};

}  // namespace hv::iommu::test
