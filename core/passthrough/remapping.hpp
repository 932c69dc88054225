// The hypervisor half of interrupt passthrough: what a VMM does when the guest programs a
// passed-through device's MSI-X entry (Linux: VFIO's MSI-X handling plus the IRQ-bypass hooks
// vmx_pi_update_irte / avic_pi_update_irte). The guest writes a compatibility-format MSI (it sees
// no IOMMU); the VM's APIC backend picks what carries it:
//
//   apicv    VT-d posted IRTE whose PDA is the target vCPU's posted-interrupt descriptor: the
//            remapping unit posts (PIR, ON) and notifies NDST with NV (notification vector while
//            the vCPU runs, wake-up vector while it blocks) — no VM exit. A message that does not
//            name exactly one vCPU with fixed/lowest-priority delivery (broadcast, logical
//            multicast, NMI, ...) cannot be posted: it gets a remapped IRTE, as KVM does.
//   avic     AMD GA IRTE in guest mode whose root pointer is the target's backing page, IsRun and
//            Dest mirrored from the vCPU on load/put/block: the IOMMU sets the IRR bit and rings
//            the doorbell, or logs a GA entry whose interrupt makes hvaccel wake the vCPU.
//   emulated VT-d remapped IRTE to a host vector; the host vector's handler delivers the guest's
//            message to the emulated APICs (the path without posting).
//   kernel   a KVM GSI route carrying the guest's message plus an irqfd per entry, which the
//            device signals (what VFIO device assignment uses).
//
// The device's real message (what it writes on the bus) is the remappable-format MSI naming the
// IRTE hvaccel allocated for (device, entry), so a re-targeted MSI only rewrites the IRTE.
// Re-programming happens whenever the guest changes an entry's address/data or masking, and —
// for AVIC — whenever a vCPU is loaded, put or blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "apic/counters.hpp"
#include "core/devices/msix.hpp"

namespace hv {

class Interrupts;
namespace kvm {
class Vm;
}
class InterruptRemapping {
  public:
    virtual ~InterruptRemapping() = default;
    virtual std::string_view path() const = 0;  // "vt-d posted", "amd ga", "vt-d remapped", "irqfd"
    // The guest changed entry `entry` of device `source_id` (PCI requester ID bus:dev.fn).
    // Masking needs no re-programming: a masked entry is never sent (MsixTable latches it).
    virtual void program(std::uint16_t source_id, unsigned entry, const dev::MsixEntry& guest) = 0;
    // The device writes entry `entry`'s message: what carries it was set up by program().
    virtual void send(std::uint16_t source_id, unsigned entry) = 0;
    // Counters of the path (remapping unit events, irqfd signals), for --stats.
    virtual apic::CounterList counters() const = 0;
};

// What every path needs: the VM's interrupt fabric and KVM VM, and the device's entry count. The
// path itself is chosen by the VM's APIC backend object (core/backend/vm_apic.hpp), which hands
// its own vendor model to the path that needs one (paths.hpp).
struct RemappingContext {
    Interrupts& interrupts;
    const kvm::Vm& kvm;
    unsigned entries = 0;  // MSI-X entries of the device (IRTEs / GSIs reserved)
    // Where this device's entries start among the VM's device GSIs (the kernel path's routes):
    // the entries of the devices made before it. Each device has a path object of its own.
    unsigned first_entry = 0;
};

}  // namespace hv
