// ApicvVm: the VM-wide part of the `apicv` backend — options, every vCPU's posted-interrupt
// descriptor, the shared PID-pointer table (IPI virtualization) and the list of blocked vCPUs
// that the wake-up vector's handler walks (KVM's per-CPU wakeup list, posted_intr.c).
//
// Notifications: posting to a PID may "send NV to NDST". In this model the host side of that
// interrupt is notify(): NV == notification vector -> the target vCPU is running; the CPU would
// process the posted interrupt without a VM exit; core's stand-in is VcpuNotifier::kick().
// NV == wake-up vector -> the host's wake-up handler wakes every blocked vCPU on NDST whose ON is
// set (VcpuNotifier::wake()). iommu/ (VT-d posting) calls post() with the PID from the IRTE.
//
// Lifetime: the VM outlives its backends; backends are destroyed only when no thread posts.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "apic/backend.hpp"
#include "apic/vector_bits.hpp"
#include "vmx/posted_interrupt.hpp"

namespace hv::vmx {

struct ApicvOptions {
    bool ipiv = true;                        // tertiary control bit 4 (Sapphire Rapids and later)
    bool posted_interrupts = true;           // pin-based bit 7 (Ivy Bridge EP and later)
    bool x2apic_virtualization = true;       // secondary bit 4
    bool virtual_interrupt_delivery = true;  // secondary bit 9; false = TPR shadow only
    uint8_t notification_vector = 0xF2;      // Linux POSTED_INTR_VECTOR
    uint8_t wakeup_vector = 0xF1;            // Linux POSTED_INTR_WAKEUP_VECTOR
    bool operator==(const ApicvOptions&) const = default;
};

class ApicvBackend;

// NDST for the host CPU the calling thread runs on (hosts run their APICs in x2APIC mode).
uint32_t host_ndst();

class ApicvVm {
  public:
    // Throws std::invalid_argument for a combination no CPU offers (posted interrupts or IPIv
    // without virtual-interrupt delivery, IPIv without posted interrupts, equal vectors).
    ApicvVm(std::size_t vcpus, const ApicvOptions& opts);
    ~ApicvVm();
    ApicvVm(const ApicvVm&) = delete;
    ApicvVm& operator=(const ApicvVm&) = delete;

    std::unique_ptr<apic::ApicBackend>
    make_backend(std::size_t index, const apic::LocalApicConfig& cfg, apic::GuestClock& clock,
                 apic::ApicPlatform& platform, apic::VcpuNotifier& notifier);

    const ApicvOptions& options() const { return opts_; }
    std::size_t vcpus() const { return n_; }
    PostedInterruptDescriptor& pid(std::size_t index) { return pids_[index]; }
    const PidPointerTable& pid_table() const { return table_; }
    std::optional<std::size_t> index_of(const PostedInterruptDescriptor* p) const;
    // The descriptor at a PID address as VMCS field 0x2016, a PID-pointer entry or a VT-d posted
    // IRTE's PDA name it; nullptr unless it is exactly one of this VM's descriptors.
    PostedInterruptDescriptor* pid_at(uint64_t address);
    static uint64_t address_of(const PostedInterruptDescriptor& d)
    {
        return reinterpret_cast<uintptr_t>(&d);
    }

    // Post to a descriptor and deliver the notification as the hardware would (IPIv, VT-d).
    PostResult post(PostedInterruptDescriptor& d, uint8_t vector);
    PostResult post_to(std::size_t index, uint8_t vector) { return post(pids_[index], vector); }
    // The host side of "send NV to NDST" for the descriptor of vCPU `index`.
    void notify(std::size_t index, const PostResult& r);
    // post() without the notification (the caller sends it later, e.g. outside a lock).
    PostResult post_counted(PostedInterruptDescriptor& d, uint8_t vector);

    // The vectors of the level-triggered IOAPIC routes, for every vCPU's EOI-exit bitmap
    // (ApicvBackend::set_ioapic_eoi_vectors).
    void set_ioapic_eoi_vectors(const apic::VectorWords& level_vectors);

    // The host APIC ID of the CPU vCPU `index` is pinned to (--pin): NDST names it. Without it,
    // NDST is the CPU the vCPU thread runs on at enter_guest()/block() (sched_getcpu()).
    void set_host_apic_id(std::size_t index, uint32_t host_apic_id);
    uint32_t ndst_for(std::size_t index) const;

  private:
    friend class ApicvBackend;

    // NDST for the host CPU the calling thread runs on (hosts run their APICs in x2APIC mode).
    uint32_t host_ndst();
    void attach(std::size_t index, ApicvBackend* b);
    void detach(std::size_t index);
    void add_blocked(std::size_t index);
    void remove_blocked(std::size_t index);
    void wakeup_handler(uint32_t ndst);
    void set_table_entry(std::size_t apic_id, std::optional<std::size_t> index);

    std::size_t n_;
    ApicvOptions opts_;
    std::unique_ptr<PostedInterruptDescriptor[]> pids_;
    PidPointerTable table_;
    std::unique_ptr<std::atomic<ApicvBackend*>[]> backends_;
    // Host APIC ID + 1 per vCPU (0 = not pinned).
    std::unique_ptr<std::atomic<uint64_t>[]> host_ids_;
    std::mutex blocked_mu_;  // guards blocked_ only; never held while calling out
    std::vector<std::size_t> blocked_;
};

}  // namespace hv::vmx
