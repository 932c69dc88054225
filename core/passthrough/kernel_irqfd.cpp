// `kernel` backend: KVM GSI routes + irqfd, as VFIO device assignment does it. Each MSI-X entry
// owns a GSI above the IOAPIC's pins and an eventfd bound to it with KVM_IRQFD; the device's
// raise is one eventfd write, which KVM turns into the routed MSI inside the kernel (no exit to
// hvaccel, and with posted-interrupt hardware no exit at all).
#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <vector>

#include "core/base/error.hpp"
#include "core/base/fd.hpp"
#include "core/interrupts/interrupts.hpp"
#include "core/kvm/kvm.hpp"
#include "core/passthrough/paths.hpp"
#include "core/passthrough/remapping.hpp"

namespace hv {

namespace {

class KernelIrqfd final : public InterruptRemapping {
  public:
    explicit KernelIrqfd(const RemappingContext& ctx) : ctx_(ctx)
    {
        check_entries(ctx);
        for (unsigned e = 0; e < ctx.entries; ++e) {
            Fd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
            if (!fd.valid())
                throw_errno("eventfd for a device MSI-X entry");
            kvm_irqfd req{};
            req.fd = static_cast<__u32>(fd.get());
            req.gsi = gsi(e);
            // The route must exist before KVM_IRQFD binds to it: start with a masked one.
            ctx.interrupts.set_msi_route(req.gsi, apic_base_msi(), 0);
            ctx.kvm.ioctl_checked(KVM_IRQFD, &req, "KVM_IRQFD");
            fds_.push_back(std::move(fd));
        }
    }

    std::string_view path() const override { return "irqfd"; }

    void program(std::uint16_t, unsigned entry, const dev::MsixEntry& guest) override
    {
        if (entry >= fds_.size())
            return;
        // The guest's message goes in as it is, like VFIO's vfio_msi_set_vector_signal ->
        // kvm_irqchip_update_msi_route — if it is an MSI at all: anything else gets the inert
        // route (an MSI with vector 0, which the LAPIC refuses as illegal), so a garbage address
        // never reaches KVM and the device's raise still goes nowhere.
        bool msi = (guest.address & ~0xF'FFFFull) == 0xFEE0'0000ull;
        try {
            ctx_.interrupts.set_msi_route(gsi(entry), msi ? guest.address : apic_base_msi(),
                                          msi ? guest.data : 0);
            reprogrammed_.fetch_add(1, std::memory_order_relaxed);
        } catch (const Error&) {
            rejected_.fetch_add(1, std::memory_order_relaxed);  // KVM refused the route
        }
    }

    void send(std::uint16_t, unsigned entry) override
    {
        if (entry >= fds_.size())
            return;
        std::uint64_t one = 1;
        if (::write(fds_[entry].get(), &one, sizeof one) == sizeof one)
            signalled_.fetch_add(1, std::memory_order_relaxed);
        else
            failed_.fetch_add(1, std::memory_order_relaxed);
    }

    apic::CounterList counters() const override
    {
        return {{"irqfd_signalled", signalled_.load()},
                {"irqfd_failed", failed_.load()},
                {"routes_programmed", reprogrammed_.load()},
                {"routes_rejected", rejected_.load()}};
    }

  private:
    unsigned gsi(unsigned entry) const { return kFirstDeviceGsi + ctx_.first_entry + entry; }
    // An MSI address with no valid data: KVM needs a route to bind an irqfd to.
    static std::uint64_t apic_base_msi() { return 0xFEE0'0000; }

    RemappingContext ctx_;
    std::vector<Fd> fds_;
    std::atomic<std::uint64_t> signalled_{0}, failed_{0}, reprogrammed_{0}, rejected_{0};
};

}  // namespace

std::unique_ptr<InterruptRemapping> make_kernel_irqfd(const RemappingContext& ctx)
{
    return std::make_unique<KernelIrqfd>(ctx);
}

}  // namespace hv
