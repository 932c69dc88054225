// Cr8Sync: keeps KVM's CR8 and a userspace local APIC's TPR the one register they are
// architecturally (SDM Vol3 11.8.6.1: CR8[3:0] is TPR[7:4]).
//
// Without its own LAPIC, KVM keeps CR8 itself and exchanges it through kvm_run: it loads
// run->cr8 on entry to KVM_RUN and stores the guest's CR8 there on the way out. So before every
// entry the vCPU thread hands KVM the APIC's TPR[7:4], and after every return a CR8 that differs
// from what it handed is a MOV to CR8 by the guest, which becomes a TPR write.
//
// One case needs care: a KVM_RUN that fails with EINTR (a kick) may have returned before it
// loaded run->cr8, and then reports the CR8 it already held — the one reported after the
// previous run. A reported value that differs from what was handed in but equals that previous
// report is therefore taken as "not loaded" after EINTR (the APIC keeps its TPR and it is handed
// in again), and as a guest write after a real exit, where KVM always loaded it first.
#pragma once

#include <cstdint>
#include <optional>

namespace hv {

class Cr8Sync {
  public:
    // `held`: the CR8 KVM holds now (KVM_GET_SREGS before the first run).
    explicit Cr8Sync(std::uint8_t held) : reported_(mask(held)) {}

    // Before KVM_RUN: what to put in run->cr8, from the APIC's TPR[7:4].
    std::uint64_t before_entry(std::uint8_t apic_cr8)
    {
        handed_ = mask(apic_cr8);
        return handed_;
    }

    // After KVM_RUN: the CR8 the guest wrote, to apply to the APIC, if any. `exited`: KVM_RUN
    // returned an exit (rather than EINTR).
    std::optional<std::uint8_t> after_run(std::uint64_t reported, bool exited)
    {
        const std::uint8_t r = mask(static_cast<std::uint8_t>(reported));
        const bool written = r != handed_ && (exited || r != reported_);
        reported_ = r;
        if (!written)
            return std::nullopt;
        handed_ = r;
        return r;
    }

  private:
    static std::uint8_t mask(std::uint8_t v) { return v & 0xFu; }

    std::uint8_t handed_ = 0;
    std::uint8_t reported_;
};

}  // namespace hv
