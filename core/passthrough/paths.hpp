// The implementations behind make_interrupt_remapping() (core/passthrough.hpp), one per path,
// and what the VT-d and AMD paths share: reading the guest's message, choosing whether it can be
// posted, and the host vectors of remapped entries.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>

#include "apic/ioapic.hpp"
#include "core/devices/msix.hpp"
#include "core/passthrough/remapping.hpp"

namespace hv {

// Device MSI-X entries use the GSIs after the IOAPIC's pins (kernel irqchip routes).
inline constexpr unsigned kFirstDeviceGsi = apic::ioapic::kPins;

std::unique_ptr<InterruptRemapping> make_kernel_irqfd(const RemappingContext& ctx);
std::unique_ptr<InterruptRemapping> make_vtd_remapping(const RemappingContext& ctx);
std::unique_ptr<InterruptRemapping> make_amd_ga_remapping(const RemappingContext& ctx);

// The guest's MSI-X entry as an interrupt message; none when it is not an MSI at all (the entry
// then gets a not-present IRTE and the device's requests fault).
std::optional<apic::IoApicMessage> guest_message(const dev::MsixEntry& e);

// The one vCPU a message can be posted to: fixed or lowest-priority delivery of a legal vector,
// no shorthand, resolving to exactly one vCPU (KVM's kvm_intr_is_single_vcpu rule). Anything
// else takes the remapped path.
std::optional<std::size_t> posting_target(Interrupts& irqs, const apic::IoApicMessage& m);

// Remapped entries point at host vector kFirstHostVector + entry; the host interrupt handler of
// that vector delivers the guest's message through the interrupt fabric.
class HostVectors {
  public:
    static constexpr std::uint8_t kFirstHostVector = 0x30;  // Linux's first device vector
    static constexpr unsigned kMaxEntries = 0xEF - kFirstHostVector;

    explicit HostVectors(Interrupts& irqs) : irqs_(irqs) {}
    // Points entry `entry`'s host vector at `msg` (none: nothing to deliver); returns the vector.
    std::uint8_t set(unsigned entry, std::optional<apic::IoApicMessage> msg);
    // The handler of host vector `vector`.
    void handle(std::uint8_t vector);
    std::uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }

  private:
    Interrupts& irqs_;
    std::mutex mu_;
    std::array<std::optional<apic::IoApicMessage>, kMaxEntries> msgs_{};
    std::atomic<std::uint64_t> delivered_{0};
};

}  // namespace hv
