// The interrupt-remapping paths (remapping.hpp), one factory per path, each called by the APIC
// backend object that owns it (core/backend/), and what the VT-d and AMD paths share: reading the
// guest's message, choosing whether it can be posted, and the host vectors of remapped entries.
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

namespace svm {
class AvicVm;
}
namespace vmx {
class ApicvVm;
}

// Device MSI-X entries use the GSIs after the IOAPIC's pins (kernel irqchip routes).
inline constexpr unsigned kFirstDeviceGsi = apic::ioapic::kPins;

// Each factory throws std::invalid_argument when the device has more entries than the path holds.
// kernel: a KVM GSI route and an irqfd per entry.
std::unique_ptr<InterruptRemapping> make_kernel_irqfd(const RemappingContext& ctx);
// emulated (and apicv without posted interrupts): VT-d remapped IRTEs to host vectors.
std::unique_ptr<InterruptRemapping> make_vtd_remapped(const RemappingContext& ctx);
// apicv: VT-d posted IRTEs naming `apicv`'s descriptors where a message can be posted.
std::unique_ptr<InterruptRemapping> make_vtd_posted(const RemappingContext& ctx,
                                                    vmx::ApicvVm& apicv);
// avic: AMD GA IRTEs naming `avic`'s backing pages, following its vCPUs' IsRunning.
std::unique_ptr<InterruptRemapping> make_amd_ga_remapping(const RemappingContext& ctx,
                                                          svm::AvicVm& avic);

// Refuses a device with more entries than the host vectors of remapped entries cover.
void check_entries(const RemappingContext& ctx);

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
