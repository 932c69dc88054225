#include "core/vcpu/vcpu.hpp"

#include <signal.h>

#include <cstring>

#include "core/base/error.hpp"
#include "core/base/fault_inject.hpp"
#include "core/host/placement.hpp"
#include "core/vm/vm.hpp"

namespace hv {

namespace {

constexpr int kKickSignal = SIGUSR1;
constexpr std::uint64_t kRflagsIf = 1u << 9;

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

kvm_segment real_mode_segment(std::uint16_t selector, std::uint8_t type)
{
    kvm_segment s{};
    s.selector = selector;
    s.base = std::uint64_t{selector} << 4;
    s.limit = 0xffff;
    s.type = type;
    s.present = 1;
    s.s = 1;
    return s;
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

const char* kvm_exit_name(std::uint32_t reason)
{
    switch (reason) {
    case KVM_EXIT_IO:
        return "io";
    case KVM_EXIT_MMIO:
        return "mmio";
    case KVM_EXIT_HLT:
        return "hlt";
    case KVM_EXIT_X86_RDMSR:
        return "rdmsr";
    case KVM_EXIT_X86_WRMSR:
        return "wrmsr";
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        return "irq-window";
    case KVM_EXIT_INTR:
        return "intr";
    case KVM_EXIT_SHUTDOWN:
        return "shutdown";
    case KVM_EXIT_INTERNAL_ERROR:
        return "internal-error";
    case KVM_EXIT_FAIL_ENTRY:
        return "fail-entry";
    case KVM_EXIT_SYSTEM_EVENT:
        return "system-event";
    case KVM_EXIT_IOAPIC_EOI:
        return "ioapic-eoi";
    default:
        return nullptr;
    }
}

VcpuThread::VcpuThread(Vm& vm, unsigned id)
    : vm_(vm), id_(id), vcpu_(vm.system(), vm.kvm(), id),
      // Application processors start in wait-for-SIPI (SDM Vol3 9.4 "Multiple-Processor
      // Initialization"); the BSP runs from the boot state.
      // With KVM's LAPIC, KVM itself holds APs in wait-for-SIPI inside KVM_RUN.
      state_(id == 0 || vm.apic_in_kernel() ? VcpuState::Running : VcpuState::WaitForSipi)
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
        if (const host::PinEntry* pin = vm_.pin_entry(id_)) {
            host::pin_current_thread(*pin);
            pinned_cpu_.store(static_cast<int>(pin->host_cpu));
        }
        loop();
    } catch (const std::exception& e) {
        // A vCPU thread that fails ends the VM: every other vCPU is stopped, run() returns.
        vm_.request_stop(kExitGuestCrash, fmt::format("vCPU {}: {}", id_, e.what()));
    } catch (...) {
        vm_.request_stop(kExitGuestCrash, fmt::format("vCPU {}: unknown exception", id_));
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
    if (!apic_)
        return;
    apic::PendingEvents ev = apic_->take_events();
    if (ev.init && id_ == 0) {
        // SDM Vol3 9.1.1: INIT resets the BSP to the reset vector (F000:FFF0), as KVM's LAPIC does;
        // APs go to wait-for-SIPI.
        enter_reset_state();
        apic_->unblock();
    } else if (ev.init) {
        state_.store(VcpuState::WaitForSipi);
        apic_->unblock();
    }
    if (ev.sipi && state_.load() == VcpuState::WaitForSipi) {
        enter_real_mode(*ev.sipi);
        state_.store(VcpuState::Running);
        apic_->unblock();
        vm_.note_alive(id_);
    }
    if (ev.nmi && state_.load() != VcpuState::WaitForSipi) {
        vcpu_.nmi();
        if (state_.load() == VcpuState::Halted) {
            state_.store(VcpuState::Running);
            apic_->set_run_state(apic::RunState::Running);
            apic_->unblock();
            vm_.note_alive(id_);
        }
    }
    if (state_.load() == VcpuState::Halted && apic_->pending_vector()) {
        state_.store(VcpuState::Running);
        apic_->set_run_state(apic::RunState::Running);
        apic_->unblock();
        vm_.note_alive(id_);
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
        enter_real_mode(sipi_vector_.load());
        state_.store(VcpuState::Running);
        vm_.note_alive(id_);
    }
    if ((r & kReqNotify) && state_.load() == VcpuState::Halted && !apic_) {
        state_.store(VcpuState::Running);
        vm_.note_alive(id_);
    }
    if (state_.load() != VcpuState::Paused)
        poll_apic();
    if ((r & kReqLiveness) && vm_.apic_in_kernel() && state_.load() == VcpuState::Running)
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
    // Test-only (core/fault_inject.hpp): HV_FAULT_INJECT=vcpu_throw=N fails vCPU N here.
    const bool injected_failure = fault_value("vcpu_throw") == std::to_string(id_);
    for (;;) {
        if (!take_requests())
            return;
        VcpuState s = state_.load();
        if (s != VcpuState::Running) {
            // A sleeping vCPU is "blocked" for its APIC, so that a delivery wakes it.
            bool can_sleep = s == VcpuState::Paused || !apic_ || apic_->block();
            if (can_sleep)
                sleep_while(s);
            else if (s == VcpuState::WaitForSipi)
                sleep_while(s, std::chrono::milliseconds(1));  // only INIT/SIPI matter here
            continue;
        }
        // Entering the guest first, then looking for interrupts: a delivery that comes after
        // this point kicks the vCPU, one before it is injected now.
        if (apic_)
            apic_->enter_guest();
        // Clear immediate_exit before looking at requests: a kick that lands after the check
        // sets it again and KVM_RUN returns at once (see post()).
        __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        if (requests_.load() != 0) {
            if (apic_)
                apic_->leave_guest();
            continue;
        }
        if (apic_)
            inject_interrupts();  // last, so that nothing but a kick separates it from KVM_RUN
        in_guest_.store(true);
        int rc = vcpu_.run();
        in_guest_.store(false);
        if (apic_)
            apic_->leave_guest();
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
            vm_.note_dead_halt(id_, r.rip - 1);
        else
            vm_.note_alive(id_);
    } else if (mp == KVM_MP_STATE_UNINITIALIZED || mp == KVM_MP_STATE_INIT_RECEIVED) {
        vm_.note_parked(id_);
    } else {
        vm_.note_alive(id_);
    }
}

// Real mode at cs_selector:rip with the segment base given, and the rest of the CPU as after
// INIT (SDM Vol3 9.1.1 "Processor State After Reset": CR0 = CD | NW | ET, paging and long mode
// off).
void VcpuThread::enter_real_mode_at(std::uint16_t cs_selector, std::uint64_t cs_base,
                                    std::uint64_t rip)
{
    kvm_sregs s = vcpu_.get_sregs();
    s.cs = real_mode_segment(cs_selector, 0xb);
    s.cs.base = cs_base;
    s.ds = s.es = s.fs = s.gs = s.ss = real_mode_segment(0, 0x3);
    s.cr0 = 0x60000010;
    s.cr3 = 0;
    s.cr4 = 0;
    s.efer = 0;
    vcpu_.set_sregs(s);
    kvm_regs r{};
    r.rip = rip;
    r.rflags = 0x2;
    vcpu_.set_regs(r);
}

// The BSP after INIT: the reset vector F000:FFF0 with CS.base 0xFFFF0000.
void VcpuThread::enter_reset_state()
{
    enter_real_mode_at(0xf000, 0xffff0000, 0xfff0);
    state_.store(VcpuState::Running);
}

// SDM Vol3 9.4.4 / 11.6.1: the SIPI vector VV starts the AP at VV00:0000 in real mode.
void VcpuThread::enter_real_mode(std::uint8_t vector)
{
    auto sel = static_cast<std::uint16_t>(vector << 8);
    enter_real_mode_at(sel, std::uint64_t{sel} << 4, 0);
}

void VcpuThread::crash(const std::string& what)
{
    std::uint64_t rip = 0;
    try {
        rip = vcpu_.get_regs().rip;
    } catch (const Error&) {
    }
    vm_.request_stop(kExitGuestCrash, fmt::format("vCPU {}: {} at RIP {:#x}", id_, what, rip));
}

void VcpuThread::handle_exit()
{
    kvm_run* run = vcpu_.run_struct();
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_io();
        break;
    case KVM_EXIT_MMIO:
        handle_mmio();
        break;
    case KVM_EXIT_X86_RDMSR:
        handle_rdmsr();
        break;
    case KVM_EXIT_X86_WRMSR:
        handle_wrmsr();
        break;
    case KVM_EXIT_HLT:
        handle_hlt();
        break;
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        break;
    case KVM_EXIT_IOAPIC_EOI:
        // Split irqchip: the guest EOIed a level-triggered IOAPIC vector in KVM's LAPIC.
        vm_.interrupts().eoi_to_ioapic(run->eoi.vector);
        break;
    case KVM_EXIT_SHUTDOWN:
        crash("triple fault (shutdown)");
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        crash(fmt::format("KVM internal error (suberror {})", run->internal.suberror));
        break;
    case KVM_EXIT_FAIL_ENTRY:
        crash(fmt::format("VM entry failed (hardware reason {:#x})",
                          run->fail_entry.hardware_entry_failure_reason));
        break;
    case KVM_EXIT_SYSTEM_EVENT:
        vm_.request_stop(0, fmt::format("vCPU {}: guest system event {} (power off or reset)", id_,
                                        run->system_event.type));
        break;
    default:
        crash(fmt::format("unhandled KVM exit reason {}", run->exit_reason));
        break;
    }
}

void VcpuThread::handle_io()
{
    kvm_run* run = vcpu_.run_struct();
    auto& io = run->io;
    auto* data = reinterpret_cast<std::uint8_t*>(run) + io.data_offset;
    for (std::uint32_t i = 0; i < io.count; ++i, data += io.size) {
        std::uint64_t v = 0;
        if (io.direction == KVM_EXIT_IO_OUT) {
            std::memcpy(&v, data, io.size);
            vm_.pio().write(io.port, io.size, v);
        } else {
            vm_.pio().read(io.port, io.size, v);
            std::memcpy(data, &v, io.size);
        }
    }
}

void VcpuThread::handle_mmio()
{
    auto& m = vcpu_.run_struct()->mmio;
    if (m.len == 0 || m.len > 8)
        return;
    std::uint64_t v = 0;
    if (m.is_write) {
        std::memcpy(&v, m.data, m.len);
        if (apic_ && apic_->mmio_write(m.phys_addr, m.len, static_cast<std::uint32_t>(v)).status !=
                         apic::AccessStatus::NotMine)
            return;
        vm_.mmio().write(m.phys_addr, m.len, v);
    } else {
        if (apic_) {
            auto r = apic_->mmio_read(m.phys_addr, m.len);
            if (r.status != apic::AccessStatus::NotMine) {
                v = r.value;
                std::memcpy(m.data, &v, m.len);
                return;
            }
        }
        vm_.mmio().read(m.phys_addr, m.len, v);
        std::memcpy(m.data, &v, m.len);
    }
}

void VcpuThread::handle_rdmsr()
{
    auto& m = vcpu_.run_struct()->msr;
    std::uint64_t v = 0;
    if (vm_.msr_read(id_, m.index, v)) {
        m.data = v;
        m.error = 0;
    } else {
        m.error = 1;  // KVM injects #GP, as hardware does for an unimplemented MSR
        stats_.msr_faults.fetch_add(1, std::memory_order_relaxed);
    }
}

void VcpuThread::handle_wrmsr()
{
    auto& m = vcpu_.run_struct()->msr;
    if (vm_.msr_write(id_, m.index, m.data)) {
        m.error = 0;
    } else {
        m.error = 1;
        stats_.msr_faults.fetch_add(1, std::memory_order_relaxed);
    }
}

void VcpuThread::handle_hlt()
{
    // KVM has already moved RIP past the HLT.
    kvm_regs r = vcpu_.get_regs();
    // An interrupt that is already pending and deliverable ends the HLT at once.
    if (apic_ && (r.rflags & kRflagsIf) && apic_->pending_vector())
        return;
    {
        std::lock_guard lk(mu_);
        state_.store(VcpuState::Halted);
    }
    if (apic_)
        apic_->set_run_state(apic::RunState::Halted);
    if (!(r.rflags & kRflagsIf))
        vm_.note_dead_halt(id_, r.rip - 1);
}

}  // namespace hv
