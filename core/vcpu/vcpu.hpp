// One vCPU: its KVM file descriptor, its thread and run loop, exit dispatch, and its states.
//
// Kick and wake: a running vCPU is kicked out of KVM_RUN with `immediate_exit` plus a signal
// (the software stand-in for a posted-interrupt notification or an AVIC doorbell); a vCPU that
// sleeps in userspace (halted, waiting for SIPI, paused) is woken through its condition variable.
// Both are counted: the difference is what interrupt-virtualization hardware makes.
#pragma once

#include <pthread.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "apic/backend.hpp"
#include "core/bus/bus.hpp"
#include "core/host/placement.hpp"
#include "core/kvm/kvm.hpp"

namespace hv {

// What a vCPU needs from the VM it belongs to (the VM implements it): the buses its exits
// reach, the MSR dispatch, the IOAPIC's EOI, and the VM-wide liveness and stop. Thread-safe:
// every vCPU thread calls it.
class VcpuHost {
  public:
    virtual Bus& pio() = 0;
    virtual Bus& mmio() = 0;
    // MSRs KVM leaves to userspace: true when handled (false: the guest takes #GP).
    virtual bool msr_read(unsigned vcpu, std::uint32_t msr, std::uint64_t& value) = 0;
    virtual bool msr_write(unsigned vcpu, std::uint32_t msr, std::uint64_t value) = 0;
    // Split irqchip: the guest EOIed level-triggered `vector` in KVM's LAPIC.
    virtual void eoi_to_ioapic(std::uint8_t vector) = 0;
    // Liveness: halted with interrupts disabled, waiting for SIPI inside KVM, or running again.
    virtual void note_dead_halt(unsigned vcpu, std::uint64_t rip) = 0;
    virtual void note_parked(unsigned vcpu) = 0;
    virtual void note_alive(unsigned vcpu) = 0;
    // The guest ended the VM: it crashed (`what` says how), or powered off.
    virtual void guest_crashed(const std::string& what) = 0;
    virtual void guest_powered_off(const std::string& what) = 0;

  protected:
    ~VcpuHost() = default;
};

enum class VcpuState : std::uint8_t { Running, Halted, WaitForSipi, Paused, Stopped };
const char* to_string(VcpuState s);
// KVM exit reason name ("io", "mmio", "hlt", ...) or nullptr for an unknown one.
const char* kvm_exit_name(std::uint32_t reason);

struct VcpuStats {
    std::array<std::atomic<std::uint64_t>, 64> exits{};  // by KVM exit reason
    std::atomic<std::uint64_t> kicks{0};                 // signalled out of KVM_RUN
    std::atomic<std::uint64_t> wakes{0};                 // woken from a userspace sleep
    std::atomic<std::uint64_t> msr_faults{0};            // unhandled MSR access -> #GP
};

// A VcpuThread is also its APIC backend's VcpuNotifier: kick() and wake() both post a notify
// request, which signals the thread out of KVM_RUN or wakes it from its userspace sleep.
class VcpuThread final : public apic::VcpuNotifier {
  public:
    // `lapic_in_kvm`: KVM's LAPIC holds the APs in wait-for-SIPI and halts happen inside KVM
    // (the VM's APIC backend says). `pin`: where to pin the thread (none: not pinned).
    VcpuThread(VcpuHost& host, const kvm::System& sys, const kvm::Vm& vm, unsigned id,
               bool lapic_in_kvm, const host::PinEntry* pin);
    ~VcpuThread() override;
    VcpuThread(const VcpuThread&) = delete;
    VcpuThread& operator=(const VcpuThread&) = delete;

    unsigned id() const { return id_; }
    kvm::Vcpu& kvm() { return vcpu_; }
    VcpuState state() const { return state_.load(); }
    const VcpuStats& stats() const { return stats_; }
    // A vector injected with KVM_INTERRUPT that the guest has not taken yet (-1: none). KVM does
    // not report it in KVM_GET_VCPU_EVENTS, so a snapshot records it itself. Read while paused.
    int queued_vector() const { return queued_vector_; }

    // The host CPU the thread was pinned to (-1: not pinned or not started).
    int pinned_cpu() const { return pinned_cpu_.load(); }

    // The vCPU's local APIC (whichever backend: KVM's LAPIC has one too); set once before
    // start(), never null after.
    void set_apic(apic::ApicBackend* backend) { apic_ = backend; }
    apic::ApicBackend* apic() const { return apic_; }

    static constexpr std::uint64_t kRflagsIf = 1u << 9;  // RFLAGS.IF (SDM Vol1 3.4.3)
    static constexpr std::uint32_t kMsrApicBase = 0x1b;  // IA32_APIC_BASE (SDM Vol3 11.4.4)

    // The state the thread starts in (a restored VM); call before start(). A vCPU restored as
    // halted keeps the RFLAGS.IF it halted with: with IF clear only an NMI, INIT or SIPI ends
    // its HLT (SDM Vol2 HLT), never a maskable interrupt.
    void set_initial_state(VcpuState s, bool interrupts_enabled = true)
    {
        state_.store(s);
        halted_with_if_ = interrupts_enabled;
    }

    void start();
    void join();

    // Thread-safe requests from any thread. Each one kicks or wakes the vCPU as needed.
    void request_stop();
    void request_pause();
    void request_resume();
    void request_init();                     // INIT: park in wait-for-SIPI
    void request_sipi(std::uint8_t vector);  // start in real mode at vector << 12
    // Makes a halted vCPU re-evaluate (an interrupt became pending) and a running one exit.
    void notify();
    void kick() override { notify(); }
    void wake() override { notify(); }

    // Asks the vCPU whether it can still make progress (see check_liveness()).
    void request_liveness_check();

    // Blocks until the vCPU has reached Paused (or Stopped). Call after request_pause().
    void wait_paused();

  private:
    enum Request : std::uint32_t {
        kReqStop = 1u << 0,
        kReqPause = 1u << 1,
        kReqInit = 1u << 2,
        kReqSipi = 1u << 3,
        kReqNotify = 1u << 4,
        kReqLiveness = 1u << 5,
    };

    void post(std::uint32_t req);
    void signal_out();  // immediate_exit + signal if in KVM_RUN
    void thread_main();
    void loop();
    bool take_requests();  // false: stop
    void sleep_while(VcpuState s, std::optional<std::chrono::milliseconds> limit = {});
    void poll_apic();
    void check_liveness();
    void inject_interrupts();
    void handle_exit();
    void handle_io();
    void handle_mmio();
    void handle_rdmsr();
    void handle_wrmsr();
    void handle_hlt();
    void crash(const std::string& what);

    VcpuHost& host_;
    unsigned id_;
    bool lapic_in_kvm_;
    const host::PinEntry* pin_;
    kvm::Vcpu vcpu_;
    apic::ApicBackend* apic_ = nullptr;
    std::thread thread_;
    std::atomic<pthread_t> tid_{};
    std::atomic<bool> in_guest_{false};
    std::atomic<bool> started_{false};
    std::atomic<int> pinned_cpu_{-1};
    int queued_vector_ = -1;  // vCPU thread only (and readers while it is paused)
    // RFLAGS.IF when the vCPU entered its HLT (vCPU thread only): whether a maskable interrupt
    // may end it.
    bool halted_with_if_ = true;
    std::atomic<VcpuState> state_;
    VcpuState paused_from_ = VcpuState::Running;  // under mu_
    std::atomic<std::uint32_t> requests_{0};
    std::atomic<std::uint8_t> sipi_vector_{0};
    std::mutex mu_;
    std::condition_variable cv_;
    VcpuStats stats_;
};

}  // namespace hv
