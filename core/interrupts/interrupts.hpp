// The VM's interrupt fabric: one APIC backend per vCPU, the IOAPIC, IPI and IOAPIC routing
// through the common destination logic (apic/destination.hpp), the guest clock, and the host
// timer thread that fires the LAPIC timers. It is the ApicPlatform the backends call.
//
// Locking: backends never call in here while holding their own lock (apic/backend.hpp), and
// this class holds no lock while it calls a backend or the IOAPIC — except the timer thread's
// own mutex, which guards only the deadline table. So IPI routing (vCPU -> vCPU), IOAPIC
// delivery (device -> vCPU) and EOIs (vCPU -> IOAPIC) cannot form a lock cycle.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "apic/backend.hpp"
#include "apic/ioapic.hpp"
#include "apic/vector_bits.hpp"
#include "core/bus/bus.hpp"
#include "core/kvm/kvm.hpp"

namespace hv {

class Interrupts final : public apic::ApicPlatform,
                         public apic::GuestClock,
                         public apic::IoApicSink {
  public:
    // `tsc_offset`: guest TSC = host TSC + tsc_offset; `tsc_hz`: the guest TSC frequency.
    Interrupts(std::uint64_t tsc_offset, std::uint64_t tsc_hz);
    ~Interrupts() override;
    Interrupts(const Interrupts&) = delete;
    Interrupts& operator=(const Interrupts&) = delete;

    // With KVM's in-kernel LAPICs (the `kernel` backend) KVM resolves destinations: IOAPIC
    // messages go to it as MSIs, and the IOAPIC's pins are mirrored as MSI routes so that KVM
    // exits with KVM_EXIT_IOAPIC_EOI for level-triggered vectors (split irqchip).
    void use_kernel_irqchip(const kvm::Vm& vm);

    // Called with the vectors of the level-triggered, unmasked IOAPIC routes whenever the
    // redirection table changes (APICv's EOI-exit bitmap follows them).
    void on_ioapic_change(std::function<void(const apic::VectorWords&)> hook);
    // After IoApic::restore(): whatever follows the redirection table follows it again.
    void ioapic_restored() { ioapic_changed(); }

    // Adds the backend of the next vCPU (index = number added so far).
    void add(std::unique_ptr<apic::ApicBackend> backend);
    apic::ApicBackend& backend(std::size_t vcpu) { return *backends_.at(vcpu); }
    std::size_t size() const { return backends_.size(); }

    // The IOAPIC as an MMIO device at apic::ioapic::kDefaultBase.
    IoDevice& ioapic_mmio() { return ioapic_dev_; }
    apic::IoApic& ioapic() { return ioapic_; }

    // Starts and stops the timer thread (around the vCPU threads' lifetime).
    void start();
    void stop();

    // ApicPlatform
    void send_ipi(std::size_t from, const apic::Ipi& ipi) override;
    void eoi_to_ioapic(uint8_t vector) override;
    void timer_changed(std::size_t vcpu) override;
    // GuestClock: guest ns since the VM was created, and the guest TSC.
    apic::GuestTime now() const override;
    // IoApicSink
    void deliver(const apic::IoApicMessage& msg) override;

    // A device's MSI after interrupt remapping (or without it): routed like an IOAPIC message
    // but counted as an MSI by the backends; with the kernel irqchip, KVM_SIGNAL_MSI.
    void deliver_msi(const apic::IoApicMessage& msg);
    // The vCPUs a message to `dest` in `mode` reaches now (lowest priority: the one chosen).
    std::vector<std::size_t> resolve(const apic::Destination& dest, apic::DeliveryMode mode);

    // Kernel irqchip: GSI routes for device MSIs beside the IOAPIC pins' (GSI >= kPins);
    // `address` 0 removes the route. KVM_SET_GSI_ROUTING is re-issued with every route.
    void set_msi_route(unsigned gsi, std::uint64_t address, std::uint32_t data);

    std::uint64_t tsc_hz() const { return tsc_hz_; }
    std::uint64_t tsc_offset() const { return tsc_offset_; }

  private:
    struct IoApicDevice : IoDevice {
        Interrupts& owner;
        explicit IoApicDevice(Interrupts& o) : owner(o) {}
        std::uint64_t read(std::uint64_t off, unsigned size) override
        {
            return owner.ioapic_.mmio_read(off, size);
        }
        void write(std::uint64_t off, unsigned size, std::uint64_t v) override
        {
            owner.ioapic_.mmio_write(off, size, static_cast<std::uint32_t>(v));
            owner.ioapic_changed();
        }
    };
    void ioapic_changed();
    void sync_kernel_routes();

    void route(std::optional<std::size_t> from, const apic::Ipi& ipi, apic::Source source);
    void send_message(const apic::IoApicMessage& msg, apic::Source source);
    void timer_loop();

    std::uint64_t start_ns_;
    std::uint64_t tsc_offset_;
    std::uint64_t tsc_hz_;
    std::vector<std::unique_ptr<apic::ApicBackend>> backends_;
    apic::IoApic ioapic_;
    IoApicDevice ioapic_dev_{*this};
    const kvm::Vm* kernel_vm_ = nullptr;
    std::function<void(const apic::VectorWords&)> ioapic_hook_;
    std::mutex routes_mu_;
    std::map<unsigned, std::pair<std::uint64_t, std::uint32_t>> msi_routes_;  // routes_mu_

    std::mutex timer_mu_;
    std::condition_variable timer_cv_;
    bool timer_stop_ = false;
    bool timer_dirty_ = false;
    std::thread timer_thread_;
};

}  // namespace hv
