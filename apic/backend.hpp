// ApicBackend: one vCPU's local APIC as the guest sees it, whatever backs it (docs/apic.md).
// Implemented by `emulated` (apic/emulated.hpp), `kernel` (core/interrupts/kernel_apic.hpp),
// `apicv` (vmx/) and `avic` (svm/). The backend is chosen once at VM creation
// (core/backend/vm_apic.hpp).
//
// Threads:
//   vCPU thread   — register access, injection point, scheduling hooks, flatten/restore;
//   any thread    — deliver(), dest_info(), timer_fired(), counters.
// Backends never call into the VMM (ApicPlatform, VcpuNotifier) while holding their own lock, so
// routing an IPI from one vCPU to another, or an EOI into the IOAPIC, cannot deadlock (the same
// rule as ioapic.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "apic/access.hpp"
#include "apic/apic_state.hpp"
#include "apic/counters.hpp"
#include "apic/destination.hpp"
#include "apic/ipi.hpp"
#include "apic/local_apic.hpp"

namespace hv::apic {

// How the VMM gets a vCPU's attention. kick(): the vCPU is in (or entering) the guest — signal
// it and set immediate_exit (the software stand-in for a posted-interrupt notification or AVIC
// doorbell). wake(): the vCPU sleeps in HLT — wake its futex/condition variable. Both must be
// sticky: a wake() that arrives just before the vCPU sleeps must not be lost.
class VcpuNotifier {
  public:
    virtual ~VcpuNotifier() = default;
    virtual void kick() = 0;
    virtual void wake() = 0;
};

// What a backend asks of the VM. Called without any backend lock held.
class ApicPlatform {
  public:
    virtual ~ApicPlatform() = default;
    // Route an IPI sent by vCPU `from` (resolve_ipi() over every vCPU's dest_info(), then
    // deliver() to each target; INIT/SIPI/NMI as the delivery mode says).
    virtual void send_ipi(std::size_t from, const Ipi& ipi) = 0;
    // A level-triggered EOI that must reach the IOAPIC(s) (IoApic::eoi).
    virtual void eoi_to_ioapic(uint8_t vector) = 0;
    // vCPU `vcpu`'s timer deadline may have changed: re-read timer_deadline() and re-arm the host
    // timer (timerfd or timer thread); call timer_fired() when it expires.
    virtual void timer_changed(std::size_t vcpu) = 0;
};

// Events other than fixed vectors that the vCPU must act on.
struct PendingEvents {
    bool nmi = false;
    bool smi = false;             // counted; KVM guests here have no SMM
    bool init = false;            // INIT received: reset the vCPU, park it (run_state says)
    std::optional<uint8_t> sipi;  // start in real mode at vector << 12
    bool extint = false;          // ExtINT: the vector comes from the 8259 PIC
    bool any() const { return nmi || smi || init || sipi.has_value() || extint; }
    bool operator==(const PendingEvents&) const = default;
};

class ApicBackend {
  public:
    virtual ~ApicBackend() = default;
    virtual std::string_view name() const = 0;

    // --- guest register access (vCPU thread). NotMine: not an APIC address/MSR right now. ---
    virtual AccessResult mmio_read(uint64_t gpa, unsigned size) = 0;
    virtual AccessResult mmio_write(uint64_t gpa, unsigned size, uint32_t value) = 0;
    virtual AccessResult msr_read(uint32_t msr) = 0;
    virtual AccessResult msr_write(uint32_t msr, uint64_t value) = 0;

    // --- delivery (any thread) ---
    virtual void deliver(const Interrupt& irq) = 0;
    virtual DestInfo dest_info() const = 0;

    // --- injection point (vCPU thread) ---
    // The vector the guest would take now, if it can take interrupts.
    virtual std::optional<uint8_t> pending_vector() = 0;
    // The CPU takes the interrupt: returns the vector to inject (IRR -> ISR). Inject what this
    // returns, not what pending_vector() said: a higher vector may have arrived in between.
    virtual AckResult ack() = 0;
    virtual PendingEvents take_events() = 0;

    // INIT/SIPI state (SDM Vol3 11.4.7.3): core parks a vCPU in WaitForSipi, records HLT.
    virtual RunState run_state() const = 0;
    virtual void set_run_state(RunState r) = 0;

    // --- scheduling hooks (vCPU thread) ---
    virtual void enter_guest() = 0;
    virtual void leave_guest() = 0;
    // About to sleep in HLT (or parked in wait-for-SIPI); false when an interrupt or event is
    // already pending (do not sleep). A later delivery then wakes the vCPU through wake().
    virtual bool block() = 0;
    virtual void unblock() = 0;

    // --- CR8 (vCPU thread). SDM Vol3 11.8.6.1: CR8[3:0] is TPR[7:4]; a MOV to CR8 makes the TPR
    // CR8[3:0] << 4 (TPR[3:0] and the bits above cleared), a MOV from CR8 reads TPR[7:4]. ---
    // The value CR8 must hold when the guest is next entered; none when KVM keeps the TPR itself
    // (its own local APIC), where KVM aliases the two.
    virtual std::optional<uint8_t> cr8() const = 0;
    // The guest moved `value` (bits 3:0) into CR8 while it ran.
    virtual void write_cr8(uint8_t value) = 0;

    // --- timer (timer thread) ---
    virtual std::optional<uint64_t> timer_deadline() const = 0;  // guest ns
    virtual void timer_fired() = 0;

    // --- state and counters ---
    virtual ApicState flatten() = 0;
    virtual std::optional<std::string> restore(const ApicState& s) = 0;  // unchanged if invalid
    virtual CounterList exit_counters() const = 0;  // architectural exits by reason
    virtual CounterList stats() const = 0;          // deliveries by source, kicks/wakes, ESR, ...
};

}  // namespace hv::apic
