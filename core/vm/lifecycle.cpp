// The VM's lifecycle: run, stop, pause and resume; the MSR dispatch of the userspace exits; and
// liveness — a guest halted for good on every vCPU ends instead of hanging.
#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "core/base/clock.hpp"
#include "core/vm/vm.hpp"

namespace hv {

int Vm::run()
{
    // Keep the host out of deep C-states while vCPUs may idle (the early-Ryzen lockup
    // mitigation, and latency runs); released when run() returns.
    std::optional<host::PmQosHold> pm_qos;
    if (cfg_.pm_qos)
        pm_qos.emplace();
    interrupts_->start();
    for (auto& v : vcpus_)
        v->start();
    running_ns_ = monotonic_ns();
    {
        // With KVM's LAPIC, halts happen inside KVM: ask the vCPUs every second whether they
        // are stuck, so that a guest halted for good ends instead of hanging.
        std::unique_lock lk(stop_mu_);
        while (!stop_cv_.wait_for(lk, std::chrono::seconds(1), [this] { return stopping(); })) {
            if (!apic_->lapic_in_kvm())
                continue;
            lk.unlock();
            for (auto& v : vcpus_)
                v->request_liveness_check();
            lk.lock();
        }
    }
    for (auto& v : vcpus_)
        v->request_stop();
    for (auto& v : vcpus_)
        v->join();
    interrupts_->stop();
    uart_->flush();
    if (!exit_message_.empty())
        std::fprintf(stderr, "hvaccel: %s\n", exit_message_.c_str());
    if (cfg_.stats)
        std::fputs(stats_report().c_str(), stderr);
    return exit_status_;
}

void Vm::request_stop(int status, const std::string& message)
{
    {
        std::lock_guard lk(stop_mu_);
        if (stopping())
            return;
        exit_status_ = status;
        exit_message_ = message;
        stopping_.store(true, std::memory_order_release);
    }
    stop_cv_.notify_all();
    for (auto& v : vcpus_)
        v->request_stop();
}

void Vm::pause()
{
    std::lock_guard lk(control_mu_);
    if (!paused_.exchange(true))
        pause_vcpus();
}

void Vm::resume()
{
    std::lock_guard lk(control_mu_);
    if (paused_.exchange(false))
        resume_vcpus();
}

void Vm::pause_vcpus()
{
    if (irq_device_)
        irq_device_->quiesce();  // a device stops raising while the guest is stopped
    for (auto& v : vcpus_)
        v->request_pause();
    for (auto& v : vcpus_)
        v->wait_paused();
}

void Vm::resume_vcpus()
{
    for (auto& v : vcpus_)
        v->request_resume();
    if (irq_device_)
        irq_device_->resume();
}

// Userspace MSRs: the local APIC's; anything else takes #GP as an unimplemented MSR does.
bool Vm::msr_read(unsigned vcpu, std::uint32_t msr, std::uint64_t& value)
{
    auto r = interrupts_->backend(vcpu).msr_read(msr);
    value = r.value;
    return r.is_ok();
}

bool Vm::msr_write(unsigned vcpu, std::uint32_t msr, std::uint64_t value)
{
    return interrupts_->backend(vcpu).msr_write(msr, value).is_ok();
}

void Vm::eoi_to_ioapic(std::uint8_t vector)
{
    interrupts_->eoi_to_ioapic(vector);
}

void Vm::note_parked(unsigned vcpu)
{
    {
        std::lock_guard lk(stop_mu_);
        dead_halt_.at(vcpu) = true;
    }
    check_all_stuck();
}

void Vm::note_dead_halt(unsigned vcpu, std::uint64_t rip)
{
    {
        std::lock_guard lk(stop_mu_);
        dead_halt_.at(vcpu) = true;
        last_dead_halt_ = {vcpu, rip};
    }
    check_all_stuck();
}

void Vm::check_all_stuck()
{
    bool all_dead = true;
    std::pair<unsigned, std::uint64_t> where;
    {
        std::lock_guard lk(stop_mu_);
        where = last_dead_halt_;
        for (unsigned i = 0; i < dead_halt_.size(); ++i) {
            if (dead_halt_[i])
                continue;
            if (vcpus_[i]->state() != VcpuState::WaitForSipi)
                all_dead = false;
        }
    }
    if (all_dead)
        request_stop(kExitGuestCrash,
                     fmt::format("guest halted with interrupts disabled on every vCPU "
                                 "(vCPU {} at RIP {:#x})",
                                 where.first, where.second));
}

void Vm::note_alive(unsigned vcpu)
{
    std::lock_guard lk(stop_mu_);
    dead_halt_.at(vcpu) = false;
}

}  // namespace hv
