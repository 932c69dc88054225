// vCPU exits: port and MMIO I/O to the buses (the local APIC's page first), MSRs to the VM's
// dispatch, HLT, and the exits that end the VM.
#include <cstring>

#include <fmt/format.h>

#include "core/base/error.hpp"
#include "core/vcpu/vcpu.hpp"

namespace hv {

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
    case KVM_EXIT_SET_TPR:
        return "set-tpr";
    default:
        return nullptr;
    }
}

void VcpuThread::crash(const std::string& what)
{
    std::uint64_t rip = 0;
    try {
        rip = vcpu_.get_regs().rip;
    } catch (const Error&) {
    }
    host_.guest_crashed(fmt::format("vCPU {}: {} at RIP {:#x}", id_, what, rip));
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
    // Without its own LAPIC, KVM exits after a MOV to CR8 that lowered it, so that a vector the
    // old TPR masked can be injected: the loop has already applied it to the APIC and injects
    // before the next entry.
    case KVM_EXIT_SET_TPR:
        break;
    case KVM_EXIT_IOAPIC_EOI:
        // Split irqchip: the guest EOIed a level-triggered IOAPIC vector in KVM's LAPIC.
        host_.eoi_to_ioapic(run->eoi.vector);
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
        host_.guest_powered_off(fmt::format("vCPU {}: guest system event {} (power off or reset)",
                                            id_, run->system_event.type));
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
            host_.pio().write(io.port, io.size, v);
        } else {
            host_.pio().read(io.port, io.size, v);
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
        if (apic_->mmio_write(m.phys_addr, m.len, static_cast<std::uint32_t>(v)).status !=
            apic::AccessStatus::NotMine)
            return;
        host_.mmio().write(m.phys_addr, m.len, v);
    } else {
        auto r = apic_->mmio_read(m.phys_addr, m.len);
        if (r.status != apic::AccessStatus::NotMine) {
            v = r.value;
            std::memcpy(m.data, &v, m.len);
            return;
        }
        host_.mmio().read(m.phys_addr, m.len, v);
        std::memcpy(m.data, &v, m.len);
    }
}

void VcpuThread::handle_rdmsr()
{
    auto& m = vcpu_.run_struct()->msr;
    std::uint64_t v = 0;
    if (host_.msr_read(id_, m.index, v)) {
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
    if (host_.msr_write(id_, m.index, m.data)) {
        m.error = 0;
        // KVM keeps its own copy of IA32_APIC_BASE even without its LAPIC, and derives
        // CPUID.01H:EDX[9] (APIC present) from its enable bit (SDM Vol3 11.4.3): mirror the
        // value the APIC model took, so CPUID follows. A copy KVM refuses (a base beyond its
        // guest MAXPHYADDR) changes nothing the guest relies on but that bit.
        if (m.index == kMsrApicBase && !lapic_in_kvm_)
            vcpu_.try_set_msr(kMsrApicBase, m.data);
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
    if ((r.rflags & kRflagsIf) && apic_->pending_vector())
        return;
    halted_with_if_ = (r.rflags & kRflagsIf) != 0;
    {
        std::lock_guard lk(mu_);
        state_.store(VcpuState::Halted);
    }
    apic_->set_run_state(apic::RunState::Halted);
    if (!halted_with_if_)
        host_.note_dead_halt(id_, r.rip - 1);
}

}  // namespace hv
