#include "core/interrupts/interrupts.hpp"

#include <x86intrin.h>

#include <algorithm>
#include <cstring>

#include "core/base/clock.hpp"
#include "core/interrupts/kernel_apic.hpp"
#include "core/kvm/uapi.hpp"

namespace hv {

Interrupts::Interrupts(std::uint64_t tsc_offset, std::uint64_t tsc_hz)
    : start_ns_(monotonic_ns()), tsc_offset_(tsc_offset), tsc_hz_(tsc_hz), ioapic_(*this)
{
}

Interrupts::~Interrupts()
{
    stop();
}

void Interrupts::add(std::unique_ptr<apic::ApicBackend> backend)
{
    backends_.push_back(std::move(backend));
}

void Interrupts::start()
{
    if (!timer_thread_.joinable())
        timer_thread_ = std::thread([this] { timer_loop(); });
}

void Interrupts::stop()
{
    {
        std::lock_guard lk(timer_mu_);
        timer_stop_ = true;
    }
    timer_cv_.notify_all();
    if (timer_thread_.joinable())
        timer_thread_.join();
}

apic::GuestTime Interrupts::now() const
{
    return {monotonic_ns() - start_ns_, __rdtsc() + tsc_offset_};
}

void Interrupts::route(std::optional<std::size_t> from, const apic::Ipi& ipi, apic::Source source)
{
    // Destination information is read without holding any lock across backends: each
    // dest_info() is a consistent snapshot of one APIC, as a bus message sees it.
    std::vector<apic::DestInfo> dests;
    dests.reserve(backends_.size());
    for (const auto& b : backends_)
        dests.push_back(b->dest_info());
    apic::TargetSet targets = apic::resolve_ipi(ipi, dests, from);
    apic::Interrupt irq{ipi.vector, ipi.mode, ipi.trigger, ipi.assert_level, source};
    for (std::size_t i = 0; i < backends_.size(); ++i)
        if (targets.test(i))
            backends_[i]->deliver(irq);
}

void Interrupts::send_ipi(std::size_t from, const apic::Ipi& ipi)
{
    route(from, ipi, apic::Source::Ipi);
}

void Interrupts::on_ioapic_change(std::function<void(const apic::VectorWords&)> hook)
{
    ioapic_hook_ = std::move(hook);
    ioapic_changed();
}

void Interrupts::ioapic_changed()
{
    if (kernel_vm_)
        sync_kernel_routes();
    if (!ioapic_hook_)
        return;
    apic::VectorWords level{};
    for (unsigned pin = 0; pin < apic::ioapic::kPins; ++pin) {
        std::uint64_t e = ioapic_.redirection(pin);
        apic::IoApicMessage m = apic::decode_redirection(e, static_cast<std::uint8_t>(pin));
        bool masked = e & (1ull << 16);
        if (!masked && m.trigger == apic::Trigger::Level)
            level[m.vector / 32] |= 1u << (m.vector % 32);
    }
    ioapic_hook_(level);
}

void Interrupts::use_kernel_irqchip(const kvm::Vm& vm)
{
    kernel_vm_ = &vm;
    sync_kernel_routes();
}

// One MSI route per IOAPIC pin, built from its redirection entry (KVM only looks at the
// trigger mode and destination of these to decide which vectors need an EOI exit).
void Interrupts::sync_kernel_routes()
{
    std::lock_guard lk(routes_mu_);
    constexpr unsigned kPins = apic::ioapic::kPins;
    auto n = static_cast<std::uint32_t>(kPins + msi_routes_.size());
    std::vector<std::uint8_t> buf(kvm::uapi::kEntriesOffset + n * sizeof(kvm_irq_routing_entry));
    kvm::uapi::IrqRoutingHeader h{n, 0};
    std::memcpy(buf.data(), &h, sizeof h);
    for (unsigned pin = 0; pin < kPins; ++pin) {
        apic::IoApicMessage m = apic::decode_redirection(ioapic_.redirection(pin), 0);
        apic::Interrupt irq{m.vector, m.mode, m.trigger, true, apic::Source::IoApic};
        Msi msi = msi_for(m.dest.dest, m.dest.mode == apic::DestMode::Logical, irq);
        kvm_irq_routing_entry e{};
        e.gsi = pin;
        e.type = KVM_IRQ_ROUTING_MSI;
        e.u.msi.address_lo = static_cast<std::uint32_t>(msi.address);
        e.u.msi.address_hi = static_cast<std::uint32_t>(msi.address >> 32);
        e.u.msi.data = msi.data;
        std::memcpy(buf.data() + kvm::uapi::kEntriesOffset + pin * sizeof e, &e, sizeof e);
    }
    unsigned i = kPins;
    for (const auto& [gsi, msi] : msi_routes_) {
        kvm_irq_routing_entry e{};
        e.gsi = gsi;
        e.type = KVM_IRQ_ROUTING_MSI;
        e.u.msi.address_lo = static_cast<std::uint32_t>(msi.first);
        e.u.msi.address_hi = static_cast<std::uint32_t>(msi.first >> 32);
        e.u.msi.data = msi.second;
        std::memcpy(buf.data() + kvm::uapi::kEntriesOffset + i++ * sizeof e, &e, sizeof e);
    }
    kernel_vm_->ioctl_checked(kvm::uapi::kSetGsiRouting, buf.data(), "KVM_SET_GSI_ROUTING");
}

void Interrupts::deliver(const apic::IoApicMessage& msg)
{
    send_message(msg, apic::Source::IoApic);
}

void Interrupts::deliver_msi(const apic::IoApicMessage& msg)
{
    send_message(msg, apic::Source::Msi);
}

// An IOAPIC or device message: to KVM's LAPICs as an MSI, or routed to the userspace backends.
void Interrupts::send_message(const apic::IoApicMessage& msg, apic::Source source)
{
    if (kernel_vm_) {
        apic::Interrupt irq{msg.vector, msg.mode, msg.trigger, true, source};
        Msi m = msi_for(msg.dest.dest, msg.dest.mode == apic::DestMode::Logical, irq);
        kernel_vm_->signal_msi(m.address, m.data);
        return;
    }
    apic::Ipi ipi;
    ipi.vector = msg.vector;
    ipi.mode = msg.mode;
    ipi.trigger = msg.trigger;
    ipi.dest = msg.dest;
    route(std::nullopt, ipi, source);
}

std::vector<std::size_t> Interrupts::resolve(const apic::Destination& dest, apic::DeliveryMode mode)
{
    std::vector<apic::DestInfo> dests;
    dests.reserve(backends_.size());
    for (const auto& b : backends_)
        dests.push_back(b->dest_info());
    apic::Ipi ipi;
    ipi.mode = mode;
    ipi.dest = dest;
    apic::TargetSet targets = apic::resolve_ipi(ipi, dests, std::nullopt);
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < backends_.size(); ++i)
        if (targets.test(i))
            out.push_back(i);
    return out;
}

void Interrupts::set_msi_route(unsigned gsi, std::uint64_t address, std::uint32_t data)
{
    {
        std::lock_guard lk(routes_mu_);
        if (address)
            msi_routes_[gsi] = {address, data};
        else
            msi_routes_.erase(gsi);
    }
    if (kernel_vm_)
        sync_kernel_routes();
}

void Interrupts::eoi_to_ioapic(uint8_t vector)
{
    ioapic_.eoi(vector);
}

void Interrupts::timer_changed(std::size_t /*vcpu*/)
{
    {
        std::lock_guard lk(timer_mu_);
        timer_dirty_ = true;
    }
    timer_cv_.notify_all();
}

// One host thread sleeps until the earliest LAPIC timer deadline of any vCPU (no busy-wait),
// then fires every expired timer. Deadlines are guest ns; guest ns = host monotonic - start.
void Interrupts::timer_loop()
{
    std::unique_lock lk(timer_mu_);
    while (!timer_stop_) {
        timer_dirty_ = false;
        std::optional<std::uint64_t> next;
        lk.unlock();
        std::uint64_t now_ns = now().ns;
        for (auto& b : backends_) {
            auto d = b->timer_deadline();
            if (!d)
                continue;
            if (*d <= now_ns) {
                b->timer_fired();  // may re-arm (periodic): the next pass sees the new deadline
                d = b->timer_deadline();
                if (!d)
                    continue;
            }
            next = next ? std::min(*next, *d) : *d;
        }
        lk.lock();
        if (timer_stop_ || timer_dirty_)
            continue;
        if (!next) {
            timer_cv_.wait(lk, [this] { return timer_stop_ || timer_dirty_; });
        } else {
            auto wait_ns = *next > now().ns ? *next - now().ns : 0;
            timer_cv_.wait_for(lk, std::chrono::nanoseconds(wait_ns),
                               [this] { return timer_stop_ || timer_dirty_; });
        }
    }
}

}  // namespace hv
