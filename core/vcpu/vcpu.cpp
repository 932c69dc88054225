#include "core/vcpu/vcpu.hpp"

#include <signal.h>

#include <cstring>

#include "core/base/error.hpp"
#include "core/base/fault_inject.hpp"
#include "core/boot/cpu_state.hpp"
#include "core/host/placement.hpp"
#include "core/vcpu/cr8_sync.hpp"

namespace hv {

namespace {

constexpr int kKickSignal = SIGUSR1;

void on_kick(int)
{
}

// The kick signal only has to interrupt KVM_RUN: no SA_RESTART, an empty handler.
void install_kick_handler()
{
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa {};
        sa.sa_handler = on_kick;
        sigemptyset(&sa.sa_mask);
        sigaction(kKickSignal, &sa, nullptr);
    });
}

}  // namespace

const char* to_string(VcpuState s)
{
    switch (s) {
    case VcpuState::Running:
        return "running";
    case VcpuState::Halted:
        return "halted";
    case VcpuState::WaitForSipi:
        return "wait-for-SIPI";
    case VcpuState::Paused:
        return "paused";
    case VcpuState::Stopped:
        return "stopped";
    }
    return "?";
}

VcpuThread::VcpuThread(VcpuHost& host, const kvm::System& sys, const kvm::Vm& vm, unsigned id,
                       bool lapic_in_kvm, const host::PinEntry* pin)
    : host_(host), id_(id), lapic_in_kvm_(lapic_in_kvm), pin_(pin), vcpu_(sys, vm, id),
      // Application processors start in wait-for-SIPI (SDM Vol3 9.4 "Multiple-Processor
      // Initialization"); the BSP runs from the boot state.
      // With KVM's LAPIC, KVM itself holds APs in wait-for-SIPI inside KVM_RUN.
      state_(id == 0 || lapic_in_kvm ? VcpuState::Running : VcpuState::WaitForSipi)
{
}

VcpuThread::~VcpuThread()
{
    request_stop();
    join();
}

void VcpuThread::start()
{
    install_kick_handler();
    started_.store(true);
    thread_ = std::thread([this] { thread_main(); });
}

void VcpuThread::join()
{
    if (thread_.joinable())
        thread_.join();
}

void VcpuThread::post(std::uint32_t req)
{
    requests_.fetch_or(req);
    signal_out();
    {
        // Taking the lock orders this post against a sleeper's predicate check.
        std::lock_guard lk(mu_);
    }
    cv_.notify_all();
}

void VcpuThread::signal_out()
{
    __atomic_store_n(&vcpu_.run_struct()->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (in_guest_.load()) {
        stats_.kicks.fetch_add(1, std::memory_order_relaxed);
        pthread_t t = tid_.load();
        if (t)
            pthread_kill(t, kKickSignal);
    }
}

void VcpuThread::request_stop()
{
    post(kReqStop);
}

void VcpuThread::request_pause()
{
    post(kReqPause);
}

void VcpuThread::request_resume()
{
    {
        std::lock_guard lk(mu_);
        requests_.fetch_and(~std::uint32_t{kReqPause});
        if (state_.load() == VcpuState::Paused)
            state_.store(paused_from_);
    }
    cv_.notify_all();
}

void VcpuThread::request_init()
{
    post(kReqInit);
}

void VcpuThread::request_sipi(std::uint8_t vector)
{
    sipi_vector_.store(vector);
    post(kReqSipi);
}

void VcpuThread::request_liveness_check()
{
    post(kReqLiveness);
}

void VcpuThread::notify()
{
    post(kReqNotify);
}

void VcpuThread::wait_paused()
{
    if (!started_.load())
        return;  // nothing runs: nothing to wait for
    std::unique_lock lk(mu_);
    cv_.wait(lk, [this] {
        auto s = state_.load();
        return s == VcpuState::Paused || s == VcpuState::Stopped;
    });
}

void VcpuThread::thread_main()
{
    tid_.store(pthread_self());
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, kKickSignal);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    try {
        if (pin_) {
            host::pin_current_thread(*pin_);
            pinned_cpu_.store(static_cast<int>(pin_->host_cpu));
        }
        // Restored halted with interrupts disabled: as stuck as after such a HLT (handle_hlt).
        if (state_.load() == VcpuState::Halted && !halted_with_if_)
            host_.note_dead_halt(id_, vcpu_.get_regs().rip - 1);
        loop();
    } catch (const std::exception& e) {
        // A vCPU thread that fails ends the VM: every other vCPU is stopped, run() returns.
        host_.guest_crashed(fmt::format("vCPU {}: {}", id_, e.what()));
    } catch (...) {
        host_.guest_crashed(fmt::format("vCPU {}: unknown exception", id_));
    }
    {
        std::lock_guard lk(mu_);
        state_.store(VcpuState::Stopped);
    }
    cv_.notify_all();
}

// Acts on what the local APIC has for this vCPU: INIT, SIPI and NMI events, and a halted
// vCPU's wake-up (SDM Vol3 9.4 for INIT/SIPI; HLT ends on an interrupt or NMI).
void VcpuThread::poll_apic()
{
    apic::PendingEvents ev = apic_->take_events();
    if (ev.init && id_ == 0) {
        // SDM Vol3 9.1.1: INIT resets the BSP to the reset vector (F000:FFF0), as KVM's LAPIC does;
        // APs go to wait-for-SIPI.
        set_reset_state(vcpu_);
        state_.store(VcpuState::Running);
        apic_->unblock();
    } else if (ev.init) {
        state_.store(VcpuState::WaitForSipi);
        apic_->unblock();
    }
    if (ev.sipi && state_.load() == VcpuState::WaitForSipi) {
        set_sipi_state(vcpu_, *ev.sipi);
        state_.store(VcpuState::Running);
        apic_->unblock();
        host_.note_alive(id_);
    }
    if (ev.nmi && state_.load() != VcpuState::WaitForSipi) {
        vcpu_.nmi();
        if (state_.load() == VcpuState::Halted) {
            state_.store(VcpuState::Running);
            apic_->set_run_state(apic::RunState::Running);
            apic_->unblock();
            host_.note_alive(id_);
        }
    }
    // SDM Vol2 HLT: a maskable interrupt resumes a halted processor only if it would be taken,
    // i.e. with RFLAGS.IF set (NMI, INIT and SIPI are handled above).
    if (state_.load() == VcpuState::Halted && halted_with_if_ && apic_->pending_vector()) {
        state_.store(VcpuState::Running);
        apic_->set_run_state(apic::RunState::Running);
        apic_->unblock();
        host_.note_alive(id_);
    }
}

// The injection point of a userspace APIC: if the guest can take an interrupt now, move the
// highest deliverable vector IRR -> ISR and inject it (KVM_INTERRUPT); otherwise ask KVM for an
// exit when the interrupt window opens.
void VcpuThread::inject_interrupts()
{
    kvm_run* run = vcpu_.run_struct();
    if (!apic_->pending_vector()) {
        run->request_interrupt_window = 0;
        return;
    }
    // KVM holds one queued injection; a second KVM_INTERRUPT before the guest took the first
    // would lose it (the model has already moved it IRR -> ISR).
    if (queued_vector_ < 0 && run->ready_for_interrupt_injection && run->if_flag) {
        apic::AckResult a = apic_->ack();
        vcpu_.interrupt(a.vector);
        if (!a.spurious)
            queued_vector_ = a.vector;
        run->request_interrupt_window = apic_->pending_vector() ? 1 : 0;
    } else {
        run->request_interrupt_window = 1;
    }
}

bool VcpuThread::take_requests()
{
    std::uint32_t r = requests_.exchange(0);
    if (r & kReqStop) {
        requests_.fetch_or(kReqStop);  // sticky: nothing runs after a stop
        return false;
    }
    if (r & kReqInit) {
        // SDM Vol3 9.4.1: INIT puts an AP back in wait-for-SIPI.
        state_.store(VcpuState::WaitForSipi);
    }
    if ((r & kReqSipi) && state_.load() == VcpuState::WaitForSipi) {
        set_sipi_state(vcpu_, sipi_vector_.load());
        state_.store(VcpuState::Running);
        host_.note_alive(id_);
    }
    if (state_.load() != VcpuState::Paused)
        poll_apic();
    if ((r & kReqLiveness) && lapic_in_kvm_ && state_.load() == VcpuState::Running)
        check_liveness();
    if (r & kReqPause) {
        std::lock_guard lk(mu_);
        paused_from_ = state_.load();
        state_.store(VcpuState::Paused);
        cv_.notify_all();
    }
    return true;
}

// Sleeps in userspace while the state stays `s` and nothing is requested.
void VcpuThread::sleep_while(VcpuState s, std::optional<std::chrono::milliseconds> limit)
{
    std::unique_lock lk(mu_);
    auto done = [&] { return state_.load() != s || requests_.load() != 0; };
    if (limit)
        cv_.wait_for(lk, *limit, done);
    else
        cv_.wait(lk, done);
    stats_.wakes.fetch_add(1, std::memory_order_relaxed);
}

void VcpuThread::loop()
{
    kvm_run* run = vcpu_.run_struct();
    // Test-only (core/base/fault_inject.hpp): HV_FAULT_INJECT=vcpu_throw=N fails vCPU N here.
    const bool injected_failure = fault_value("vcpu_throw") == std::to_string(id_);
    // A userspace APIC owns the TPR; KVM's CR8 follows it (core/vcpu/cr8_sync.hpp).
    std::optional<Cr8Sync> cr8;
    if (apic_->cr8())
        cr8.emplace(static_cast<std::uint8_t>(vcpu_.get_sregs().cr8));
    for (;;) {
        if (!take_requests())
            return;
        VcpuState s = state_.load();
        if (s != VcpuState::Running) {
            // A sleeping vCPU is "blocked" for its APIC, so that a delivery wakes it.
            bool can_sleep = s == VcpuState::Paused || apic_->block();
            // A pending vector keeps the APIC from blocking; it cannot wake a vCPU waiting for
            // SIPI or halted with IF clear (only INIT, SIPI and NMI can): poll for those.
            if (can_sleep)
                sleep_while(s);
            else if (s == VcpuState::WaitForSipi || (s == VcpuState::Halted && !halted_with_if_))
                sleep_while(s, std::chrono::milliseconds(1));
            continue;
        }
        // Entering the guest first, then looking for interrupts: a delivery that comes after
        // this point kicks the vCPU, one before it is injected now.
        apic_->enter_guest();
        // Clear immediate_exit before looking at requests: a kick that lands after the check
        // sets it again and KVM_RUN returns at once (see post()).
        __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        if (requests_.load() != 0) {
            apic_->leave_guest();
            continue;
        }
        if (cr8)
            run->cr8 = cr8->before_entry(apic_->cr8().value_or(0));
        inject_interrupts();  // last, so that nothing but a kick separates it from KVM_RUN
        in_guest_.store(true);
        int rc = vcpu_.run();
        in_guest_.store(false);
        apic_->leave_guest();
        if (cr8)
            if (auto written = cr8->after_run(run->cr8, rc >= 0))
                apic_->write_cr8(*written);
        // An injection KVM took: the vCPU is ready for another, or inside the handler (IF=0).
        // Still queued (the run ended before the guest was entered): ready is clear, IF set.
        if (queued_vector_ >= 0 && (run->ready_for_interrupt_injection || !run->if_flag))
            queued_vector_ = -1;
        if (rc < 0)
            continue;  // kicked
        if (run->exit_reason < stats_.exits.size())
            stats_.exits[run->exit_reason].fetch_add(1, std::memory_order_relaxed);
        handle_exit();
        if (injected_failure)
            throw Error(fmt::format("injected failure (HV_FAULT_INJECT=vcpu_throw={})", id_));
    }
}

// With KVM's LAPIC a vCPU halts and waits for SIPI inside KVM_RUN, out of hvaccel's sight.
// Kicked out periodically while the VM runs, it reports whether it is stuck: halted with
// interrupts disabled, or parked waiting for SIPI.
void VcpuThread::check_liveness()
{
    auto mp = vcpu_.get_mp_state().mp_state;
    if (mp == KVM_MP_STATE_HALTED) {
        kvm_regs r = vcpu_.get_regs();
        if (!(r.rflags & kRflagsIf))
            host_.note_dead_halt(id_, r.rip - 1);
        else
            host_.note_alive(id_);
    } else if (mp == KVM_MP_STATE_UNINITIALIZED || mp == KVM_MP_STATE_INIT_RECEIVED) {
        host_.note_parked(id_);
    } else {
        host_.note_alive(id_);
    }
}

}  // namespace hv
