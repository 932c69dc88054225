// Setting a vCPU's guest TSC at restore, and checking that it took.
//
// A host-initiated write of IA32_TSC (KVM_SET_MSRS) is how KVM traditionally takes the guest
// TSC, but KVM may treat it as a "synchronisation" and keep an offset of its own, and some hosts
// accept the write without effect. So the value is read back. Where it did not take, the vCPU's
// TSC offset attribute (KVM_VCPU_TSC_CTRL / KVM_VCPU_TSC_OFFSET, Linux 5.16+; guest TSC = host
// TSC + offset without scaling) is moved by the difference and the value read back again.
// Some hosts take neither and keep every guest TSC at the host's (the development host's
// kvm_pvm does). There the guest clock would be ahead of the snapshot by the time the snapshot
// spent outside a VM (the same on every vCPU, so their TSCs stay in step): the restore refuses
// that unless asked to allow it (--allow-clock-jump), because a guest that was measuring time
// across the snapshot (calibrating a clock) fails. A TSC that would go backwards is refused.
#pragma once

#include <cstdint>
#include <optional>

namespace hv::kvm {

class Vcpu;

// How a vCPU's TSC is reached: the KVM vCPU, or a fake in tests.
class TscAccess {
  public:
    virtual ~TscAccess() = default;
    virtual void write_msr(std::uint64_t value) = 0;
    virtual std::uint64_t read_msr() = 0;
    // nullopt: this KVM has no TSC offset attribute.
    virtual std::optional<std::uint64_t> offset() = 0;
    virtual void set_offset(std::uint64_t offset) = 0;
};

// The TSC access of a KVM vCPU.
class VcpuTsc final : public TscAccess {
  public:
    explicit VcpuTsc(const Vcpu& vcpu) : vcpu_(vcpu) {}
    void write_msr(std::uint64_t value) override;
    std::uint64_t read_msr() override;
    std::optional<std::uint64_t> offset() override;
    void set_offset(std::uint64_t offset) override;

  private:
    const Vcpu& vcpu_;
};

// Msr, Offset: the guest TSC is `want` (give or take the tolerance); Ahead: this host keeps the
// guest TSC at its own, which is ahead of `want`.
enum class TscPath { Msr, Offset, Ahead };

// Sets the guest TSC to `want`. A read-back within `tolerance` ticks of `want` counts as taken
// (the read follows the write by microseconds; pass about a second of guest ticks, so that no
// load on the host can make a good write look bad). Returns how the value was set; throws
// hv::Error "vCPU N: ..." when neither path took it and the guest TSC is behind `want`.
TscPath set_guest_tsc(TscAccess& tsc, std::uint64_t want, std::uint64_t tolerance, unsigned vcpu);

}  // namespace hv::kvm
