// Vm::snapshot() and the restore half of the Vm constructor: the VM's state as the host-neutral
// sections of core/snapshot/state.hpp.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "core/base/error.hpp"
#include "core/kvm/tsc.hpp"
#include "core/kvm/uapi.hpp"
#include "core/snapshot/file.hpp"
#include "core/snapshot/state.hpp"
#include "core/vcpu/guest_cpuid.hpp"
#include "core/vm/vm.hpp"

namespace hv {

namespace {

// MSRs a guest programs that are not part of the special registers (SDM Vol4 MSR tables):
// TSC, SYSENTER, PAT, SYSCALL targets, kernel GS base, TSC_AUX.
constexpr std::uint32_t kSavedMsrs[] = {0x10,       0x174,      0x175,      0x176,
                                        0x277,      0xc0000081, 0xc0000082, 0xc0000083,
                                        0xc0000084, 0xc0000102, 0xc0000103};

// CPUID feature words a guest may rely on, by name.
struct FeatureWord {
    const char* name;
    std::uint32_t leaf, index;
    int reg;  // 0 eax, 1 ebx, 2 ecx, 3 edx
};
constexpr FeatureWord kFeatureWords[] = {{"1.ecx", 1, 0, 2},
                                         {"1.edx", 1, 0, 3},
                                         {"7.0.ebx", 7, 0, 1},
                                         {"7.0.ecx", 7, 0, 2},
                                         {"7.0.edx", 7, 0, 3},
                                         {"80000001.ecx", 0x80000001, 0, 2},
                                         {"80000001.edx", 0x80000001, 0, 3}};

std::uint32_t feature_word(const std::vector<kvm_cpuid_entry2>& cpuid, const FeatureWord& w)
{
    for (const auto& e : cpuid)
        if (e.function == w.leaf && e.index == w.index) {
            const std::uint32_t regs[] = {e.eax, e.ebx, e.ecx, e.edx};
            return regs[w.reg];
        }
    return 0;
}

}  // namespace

void Vm::snapshot(const std::string& path)
{
    // The irq device's PCI configuration, MSI-X table and burst progress, and the remapping
    // unit's entries, have no snapshot section yet: refuse rather than write a snapshot that
    // would restore without them (docs/passthrough.md "Limits").
    if (irq_device_)
        fail("snapshot: a VM with the --irqdev device cannot be snapshotted yet");
    // The same for an NVMe controller's registers, queues and MSI-X table.
    if (!disks_.empty())
        fail("snapshot: a VM with a --disk cannot be snapshotted yet");
    std::lock_guard lk(control_mu_);
    bool was_paused = paused_.load();
    if (!was_paused)
        pause_vcpus();
    try {
        write_snapshot(path);
    } catch (...) {
        if (!was_paused)
            resume_vcpus();
        throw;
    }
    if (!was_paused)
        resume_vcpus();
}

void Vm::write_snapshot(const std::string& path)
{
    snapshot::VmState s;
    s.machine.vcpus = cfg_.vcpus;
    s.machine.memory_mib = cfg_.memory_mib;
    s.machine.image = cfg_.image;
    s.machine.apic_backend = std::string(apic_->name());
    s.machine.tsc_khz = vcpus_[0]->kvm().tsc_khz();
    auto guest = guest_cpuid(supported_cpuid_, 0, cfg_.vcpus, CpuidApicFeatures{});
    for (const auto& w : kFeatureWords)
        s.machine.cpuid_features.emplace_back(w.name, feature_word(guest, w));

    snapshot::Writer w;
    std::vector<std::uint64_t> xsave_blobs;
    for (auto& vt : vcpus_) {
        kvm::Vcpu& v = vt->kvm();
        snapshot::VcpuRecord vs;
        vs.regs = v.get_regs();
        vs.sregs = v.get_sregs();
        for (auto msr : kSavedMsrs)
            vs.msrs.emplace_back(msr, v.get_msr(msr));
        v.ioctl_checked(KVM_GET_VCPU_EVENTS, &vs.events, "KVM_GET_VCPU_EVENTS");
        // An injection queued with KVM_INTERRUPT but not yet taken is not in KVM's events; the
        // model already has it in service, so it must travel as an injected interrupt.
        if (vt->queued_vector() >= 0 && !vs.events.interrupt.injected) {
            vs.events.interrupt.injected = 1;
            vs.events.interrupt.nr = static_cast<std::uint8_t>(vt->queued_vector());
            vs.events.interrupt.soft = 0;
        }
        kvm_xcrs xcrs{};
        v.ioctl_checked(KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS");
        for (std::uint32_t i = 0; i < xcrs.nr_xcrs; ++i)
            if (xcrs.xcrs[i].xcr == 0)
                vs.xcr0 = xcrs.xcrs[i].value;
        vs.xsave.resize(sizeof(kvm::uapi::Xsave));
        v.ioctl_checked(kvm::uapi::kGetXsave, vs.xsave.data(), "KVM_GET_XSAVE");
        vs.apic = vt->apic()->flatten();
        // CR8 is TPR[7:4] (SDM Vol3 11.8.6.1). A userspace APIC holds it; KVM's copy is handed
        // in at the next entry and may lag behind a TPR write the vCPU made since its last one.
        if (auto c = vt->apic()->cr8())
            vs.sregs.cr8 = *c;
        s.vcpus.push_back(std::move(vs));
    }
    for (const auto& vs : s.vcpus)
        xsave_blobs.push_back(w.add_blob(vs.xsave.data(), vs.xsave.size()));
    s.ioapic = interrupts_->ioapic().flatten();
    auto u = uart_->regs();
    s.uart = {u.ier, u.lcr, u.mcr, u.scr, u.fcr, u.dll, u.dlm};
    s.pic_master = {pic_master_->mask(), pic_master_->vector_base()};
    s.pic_slave = {pic_slave_->mask(), pic_slave_->vector_base()};
    s.pm_timer = pm_timer_->ticks();
    for (const auto& [gpa, len] : mem_.nonzero_runs())
        s.memory.push_back({gpa, len, w.add_blob(mem_.ptr(gpa, len), len)});
    w.commit(path, snapshot::to_json(s, xsave_blobs));
}

// Host checks, then the state, in an order that lets each piece see what it depends on:
// guest RAM, the CPU registers and the guest TSC, then the APICs (their timers count from the
// restored guest clock), the IOAPIC and the devices.
void Vm::check_restorable(const snapshot::VmState& s) const
{
    auto guest = guest_cpuid(supported_cpuid_, 0, cfg_.vcpus, CpuidApicFeatures{});
    for (const auto& [name, bits] : s.machine.cpuid_features) {
        for (const auto& w : kFeatureWords) {
            if (name != w.name)
                continue;
            std::uint32_t missing = bits & ~feature_word(guest, w);
            if (missing)
                fail("snapshot: CPUID.{} bits {:#x} the guest saw are not available on this host",
                     name, missing);
        }
    }
    apic::ApicCaps caps = apic_caps();
    for (std::size_t i = 0; i < s.vcpus.size(); ++i)
        if (auto err = apic::validate(s.vcpus[i].apic, caps))
            fail("snapshot: section 'apic/{}': {} (the APIC this VM offers)", i, *err);
    std::uint64_t khz = vcpus_[0]->kvm().tsc_khz();
    if (khz != s.machine.tsc_khz && !restore_->allow_tsc_mismatch)
        fail("snapshot: the guest TSC ran at {} kHz, this host's at {} kHz and KVM offers no TSC "
             "scaling here (use --allow-tsc-mismatch to restore anyway)",
             s.machine.tsc_khz, khz);
}

void Vm::restore_memory(const snapshot::VmState& s)
{
    for (const auto& run : s.memory) {
        auto src = restore_->reader.blob(run.blob, run.len, "memory");
        mem_.write_checked(run.gpa, src.data(), src.size());
    }
}

void Vm::restore_cpus(const snapshot::VmState& s)
{
    std::uint64_t tsc_shift = restore_->clock_offset_ns / 1000 * s.machine.tsc_khz / 1000;
    // A second of guest ticks: see kvm::set_guest_tsc.
    const std::uint64_t tsc_tolerance = s.machine.tsc_khz * 1000;
    for (unsigned i = 0; i < cfg_.vcpus; ++i) {
        const auto& vs = s.vcpus[i];
        kvm::Vcpu& v = vcpus_[i]->kvm();
        v.set_sregs(vs.sregs);
        v.set_regs(vs.regs);
        // Read back: KVM returns what it took, so a register it refused or changed is found here
        // rather than by the guest.
        if (auto back = v.get_regs(); std::memcmp(&back, &vs.regs, sizeof back) != 0)
            fail("snapshot: vCPU {}: KVM did not take the general registers as written", i);
        for (const auto& [msr, val] : vs.msrs) {
            if (msr == snapshot::kMsrTsc) {
                kvm::VcpuTsc tsc(v);
                const std::uint64_t want = val + tsc_shift;
                if (kvm::set_guest_tsc(tsc, want, tsc_tolerance, i) == kvm::TscPath::Ahead) {
                    const std::uint64_t ms =
                        (tsc.read_msr() - want) / std::max<std::uint64_t>(s.machine.tsc_khz, 1);
                    if (!restore_->allow_clock_jump)
                        fail("vCPU {}: this host's KVM keeps the guest TSC at the host's and takes "
                             "no other: the guest clock would jump forward {} ms (use "
                             "--allow-clock-jump to restore anyway)",
                             i, ms);
                    if (i == 0)
                        std::fprintf(stderr,
                                     "hvaccel: this host's KVM keeps the guest TSC at the host's: "
                                     "the guest clock moved forward %" PRIu64 " ms\n",
                                     ms);
                }
                continue;
            }
            v.set_msr(msr, val);
        }
        kvm_xcrs xcrs{};
        xcrs.nr_xcrs = 1;
        xcrs.xcrs[0].xcr = 0;
        xcrs.xcrs[0].value = vs.xcr0;
        v.ioctl_checked(KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS");
        std::vector<std::uint8_t> xsave = vs.xsave;
        v.ioctl_checked(kvm::uapi::kSetXsave, xsave.data(), "KVM_SET_XSAVE");
        kvm_vcpu_events ev = vs.events;
        ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
                   KVM_VCPUEVENT_VALID_SHADOW;
        v.ioctl_checked(KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS");
    }
}

// A level-triggered pin with remote IRR set was delivered and not yet EOIed: its vector is in
// some LAPIC's IRR or ISR, where the EOI that clears remote IRR will come from. A state taken
// from KVM's LAPIC on hosts where ISR stays clear while a handler runs (docs/apic.md) can lack
// it; that EOI would then never reach the IOAPIC and the pin would stay blocked. Such a pin is
// EOIed now (and delivered again if its line is still asserted, as the IOAPIC does).
void Vm::reconcile_remote_irr(const snapshot::VmState& s)
{
    for (unsigned pin = 0; pin < apic::ioapic::kPins; ++pin) {
        std::uint64_t e = s.ioapic.redir[pin];
        bool level = e & (1ull << 15), remote_irr = e & (1ull << 14);
        if (!level || !remote_irr)
            continue;
        auto vector = static_cast<std::uint8_t>(e & 0xff);
        bool held = false;
        for (const auto& v : s.vcpus)
            held =
                held || ((v.apic.irr[vector / 32] | v.apic.isr[vector / 32]) >> (vector % 32)) & 1;
        if (!held)
            interrupts_->ioapic().eoi(vector);
    }
}

void Vm::restore_devices(const snapshot::VmState& s)
{
    for (unsigned i = 0; i < cfg_.vcpus; ++i) {
        const auto& a = s.vcpus[i].apic;
        if (auto err = vcpus_[i]->apic()->restore(a))
            fail("snapshot: section 'apic/{}': {}", i, *err);
        // With KVM's LAPIC, KVM holds the run state (KernelApic::restore set the MP state).
        if (apic_->lapic_in_kvm()) {
            vcpus_[i]->set_initial_state(VcpuState::Running);
            continue;
        }
        // A userspace APIC's vCPU sleeps in hvaccel when halted or waiting for SIPI. KVM's own
        // copy of IA32_APIC_BASE feeds CPUID.01H:EDX[9] (see VcpuThread::handle_wrmsr).
        vcpus_[i]->kvm().try_set_msr(VcpuThread::kMsrApicBase, a.apic_base);
        vcpus_[i]->set_initial_state(a.run_state == apic::RunState::Halted ? VcpuState::Halted
                                     : a.run_state == apic::RunState::WaitForSipi
                                         ? VcpuState::WaitForSipi
                                         : VcpuState::Running,
                                     (s.vcpus[i].regs.rflags & VcpuThread::kRflagsIf) != 0);
    }
    if (auto err = interrupts_->ioapic().restore(s.ioapic))
        fail("snapshot: section 'ioapic': {}", *err);
    reconcile_remote_irr(s);
    interrupts_->ioapic_restored();
    uart_->set_regs(
        {s.uart.ier, s.uart.lcr, s.uart.mcr, s.uart.scr, s.uart.fcr, s.uart.dll, s.uart.dlm});
    pic_master_->set_state(s.pic_master.imr, s.pic_master.base);
    pic_slave_->set_state(s.pic_slave.imr, s.pic_slave.base);
    pm_timer_->set_ticks(s.pm_timer + dev::PmTimer::ticks_for_ns(
                                          static_cast<std::uint64_t>(restore_->clock_offset_ns)));
}

}  // namespace hv
