#include "core/interrupts/kernel_apic.hpp"

#include <cstring>

#include "apic/apic_page.hpp"
#include "core/base/error.hpp"

namespace hv {

namespace {

constexpr std::uint32_t kMsrApicBase = 0x1b;
constexpr std::uint32_t kMsrTscDeadline = 0x6e0;
static_assert(sizeof(kvm_lapic_state::regs) == apic::kApicRegisterBytes);

}  // namespace

Msi msi_for(std::uint32_t dest, bool logical, const apic::Interrupt& irq)
{
    // Address: 0xFEE in 31:20, destination ID in 19:12 (bits 31:8 of a 32-bit x2APIC ID go to
    // address_hi, KVM_CAP_X2APIC_API's extended destination), DM in bit 2.
    std::uint64_t addr = 0xfee00000ull | (std::uint64_t{dest & 0xff} << 12) |
                         (logical ? (1u << 2) : 0u) | (std::uint64_t{dest >> 8} << 32);
    // Data: vector 7:0, delivery mode 10:8, level 14, trigger mode 15.
    std::uint32_t data = irq.vector | (static_cast<std::uint32_t>(irq.mode) << 8) |
                         (irq.assert_level ? (1u << 14) : 0u) |
                         (irq.trigger == apic::Trigger::Level ? (1u << 15) : 0u);
    return {addr, data};
}

KernelApic::KernelApic(const kvm::Vm& vm, kvm::Vcpu& vcpu, const apic::ApicCaps& caps)
    : vm_(vm), vcpu_(vcpu), caps_(caps)
{
}

void KernelApic::deliver(const apic::Interrupt& irq)
{
    Msi m = msi_for(vcpu_.id(), false, irq);
    ++msis_;
    if (vm_.signal_msi(m.address, m.data) == 0)
        ++msi_blocked_;  // the guest's APIC refused it (disabled, masked)
}

apic::DestInfo KernelApic::dest_info() const
{
    apic::DestInfo d;
    d.id = vcpu_.id();
    return d;
}

apic::RunState KernelApic::run_state() const
{
    switch (vcpu_.get_mp_state().mp_state) {
    case KVM_MP_STATE_HALTED:
        return apic::RunState::Halted;
    case KVM_MP_STATE_UNINITIALIZED:
    case KVM_MP_STATE_INIT_RECEIVED:
        return apic::RunState::WaitForSipi;
    default:
        return apic::RunState::Running;
    }
}

void KernelApic::set_run_state(apic::RunState r)
{
    switch (r) {
    case apic::RunState::Running:
        vcpu_.set_mp_state(KVM_MP_STATE_RUNNABLE);
        break;
    case apic::RunState::Halted:
        vcpu_.set_mp_state(KVM_MP_STATE_HALTED);
        break;
    case apic::RunState::WaitForSipi:
        vcpu_.set_mp_state(KVM_MP_STATE_INIT_RECEIVED);
        break;
    }
}

// KVM_GET_LAPIC/KVM_SET_LAPIC carry the architectural register page (with KVM_CAP_X2APIC_API's
// conventions, which apic/apic_page.hpp follows); IA32_APIC_BASE, IA32_TSC_DEADLINE and the MP
// state travel beside it.
apic::ApicState KernelApic::flatten()
{
    kvm_lapic_state ls{};
    vcpu_.ioctl_checked(KVM_GET_LAPIC, &ls, "KVM_GET_LAPIC");
    apic::ApicRegisterPage page;
    std::memcpy(page.data(), ls.regs, page.size());
    apic::PageContext ctx;
    ctx.apic_base = vcpu_.get_msr(kMsrApicBase);
    ctx.tsc_deadline = vcpu_.get_msr(kMsrTscDeadline);
    ctx.run_state = run_state();
    ctx.x2apic_id = vcpu_.id();
    apic::ApicState s = apic::from_register_page(page, ctx);
    // Without CMCI the LVT CMCI register does not exist; KVM reads it as 0, the host-neutral
    // form keeps the reset value (masked), as the model does.
    if (!caps_.cmci)
        s.lvt[static_cast<std::size_t>(apic::Lvt::Cmci)] = apic::lvt::kReset;
    // KVM resets the BSP's LINT0 to ExtINT, unmasked (virtual-wire mode), even while the APIC
    // is software-disabled; architecturally every LVT is masked then (SDM Vol3 11.4.7.2), and
    // that is the host-neutral form.
    if (!(s.svr & apic::svr::kEnable))
        for (auto& l : s.lvt)
            l |= apic::lvt::kMasked;
    return s;
}

std::optional<std::string> KernelApic::restore(const apic::ApicState& s)
{
    if (auto err = apic::validate(s, caps_))
        return err;
    apic::ApicRegisterPage page = apic::to_register_page(s);
    // KVM_SET_LAPIC (re)starts an armed one-shot or periodic timer from TMICT: KVM has no way to
    // load the remaining count, so on this backend a restored timer runs its full initial count
    // once more (as QEMU's in-kernel-APIC migration does). TMICT itself reads back unchanged.
    kvm_lapic_state ls{};
    std::memcpy(ls.regs, page.data(), page.size());
    // IA32_APIC_BASE first: it sets the mode in which KVM reads the register page.
    vcpu_.set_msr(kMsrApicBase, s.apic_base);
    vcpu_.ioctl_checked(KVM_SET_LAPIC, &ls, "KVM_SET_LAPIC");
    vcpu_.set_msr(kMsrTscDeadline, s.tsc_deadline);
    set_run_state(s.run_state);
    return std::nullopt;
}

apic::CounterList KernelApic::exit_counters() const
{
    return {};  // the exits happen inside KVM; KVM's own statistics count them
}

apic::CounterList KernelApic::stats() const
{
    return {{"msi_sent", msis_.load()}, {"msi_blocked", msi_blocked_.load()}};
}

}  // namespace hv
