// The VM: KVM objects, guest memory, the I/O buses and platform devices, the vCPUs and their
// threads. Constructing a Vm does all the set-up and validation (throwing hv::Error with one
// clear line on any failure); run() starts the vCPUs and returns the process exit status.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/backend/vm_apic.hpp"
#include "core/base/fd.hpp"
#include "core/boot/loader.hpp"
#include "core/bus/bus.hpp"
#include "core/bus/memory.hpp"
#include "core/devices/debug_exit.hpp"
#include "core/devices/fw_cfg.hpp"
#include "core/devices/irq_device.hpp"
#include "core/devices/irq_testdev.hpp"
#include "core/devices/nvme.hpp"
#include "core/devices/pci.hpp"
#include "core/devices/pic.hpp"
#include "core/devices/pm_timer.hpp"
#include "core/devices/uart.hpp"
#include "core/host/placement.hpp"
#include "core/host/pm_qos.hpp"
#include "core/interrupts/interrupts.hpp"
#include "core/kvm/kvm.hpp"
#include "core/passthrough/remapping.hpp"
#include "core/snapshot/file.hpp"
#include "core/snapshot/state.hpp"
#include "core/storage/image.hpp"
#include "core/vcpu/vcpu.hpp"
#include "core/vm/config.hpp"
#include "core/vm/control.hpp"

namespace hv {

// A snapshot to restore instead of booting an image: parsed and validated in full before the
// Vm is built (snapshot::from_json), then applied during construction.
struct RestoreSource {
    const snapshot::Reader& reader;
    snapshot::VmState state;
    std::uint64_t clock_offset_ns = 0;  // move the guest clock forward by this much
    bool allow_tsc_mismatch = false;
    // Restore on a host that cannot set the guest TSC (core/kvm/tsc.hpp), the guest clock moving
    // forward by the time the snapshot spent in the file.
    bool allow_clock_jump = false;
};

class Vm final : public VcpuHost, public ControlTarget {
  public:
    explicit Vm(const VmConfig& cfg, const RestoreSource* restore = nullptr);
    ~Vm() override;
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;

    // Starts every vCPU thread and blocks until the guest ends; returns the exit status.
    int run();

    // Ends the VM (first caller wins): every vCPU is kicked and woken, run() returns `status`.
    // A non-empty `message` is printed as one line on stderr. Thread-safe.
    void request_stop(int status, const std::string& message = {});
    bool stopping() const { return stopping_.load(std::memory_order_acquire); }

    // Pause every vCPU in userspace and wait until all are parked; resume lets them go on.
    // Both are idempotent and thread-safe.
    void pause() override;
    void resume() override;

    // Writes the VM's state to `path` (atomically), pausing the vCPUs meanwhile if they run.
    // Thread-safe against the vCPUs; throws hv::Error on failure (the VM keeps running).
    void snapshot(const std::string& path) override;
    void quit(const std::string& message) override { request_stop(0, message); }

    // VcpuHost. MSRs: the local APIC's; anything else is not handled (#GP).
    bool msr_read(unsigned vcpu, std::uint32_t msr, std::uint64_t& value) override;
    bool msr_write(unsigned vcpu, std::uint32_t msr, std::uint64_t value) override;
    void eoi_to_ioapic(std::uint8_t vector) override;
    // A vCPU that halts with interrupts disabled; the VM ends when every vCPU is stuck that way
    // or waiting for SIPI (nothing can ever wake them).
    void note_dead_halt(unsigned vcpu, std::uint64_t rip) override;
    void note_alive(unsigned vcpu) override;
    // A vCPU that waits for SIPI inside KVM (kernel backend): stuck unless another vCPU acts.
    void note_parked(unsigned vcpu) override;
    void guest_crashed(const std::string& what) override { request_stop(kExitGuestCrash, what); }
    void guest_powered_off(const std::string& what) override { request_stop(0, what); }

    const VmConfig& config() const { return cfg_; }
    const kvm::System& system() const { return sys_; }
    const kvm::Vm& kvm() const { return vm_; }
    GuestMemory& memory() { return mem_; }
    Bus& pio() override { return pio_; }
    Bus& mmio() override { return mmio_; }
    VcpuThread& vcpu(unsigned i) { return *vcpus_.at(i); }
    Interrupts& interrupts() { return *interrupts_; }
    const VmApic& apic() const { return *apic_; }
    unsigned vcpu_count() const { return static_cast<unsigned>(vcpus_.size()); }
    const BootInfo& boot_info() const { return boot_; }
    dev::Uart16550& uart() { return *uart_; }
    dev::PciHost& pci() { return pci_; }
    dev::IrqDevice* irq_device() { return irq_device_.get(); }
    InterruptRemapping* remapping() { return remapping_.get(); }
    // Where vCPU `i`'s thread is pinned (none without --pin).
    const host::PinEntry* pin_entry(unsigned i) const;

    std::string stats_report() const override;  // vCPU exits, kicks, wakes, RAM, unclaimed I/O

  private:
    void check_capabilities();
    void setup_memory();
    void setup_devices();
    void setup_vcpus();
    void setup_interrupts();
    void setup_passthrough();
    void setup_disks();
    // Opens and checks every --disk image before KVM is touched (a bad one is a bad option).
    static std::vector<std::unique_ptr<storage::Image>> open_disks(const VmConfig& cfg);
    apic::ApicCaps apic_caps() const;
    void write_snapshot(const std::string& path);
    void pause_vcpus();
    void resume_vcpus();
    void check_restorable(const snapshot::VmState& s) const;
    void restore_memory(const snapshot::VmState& s);
    void restore_cpus(const snapshot::VmState& s);
    void restore_devices(const snapshot::VmState& s);
    void reconcile_remote_irr(const snapshot::VmState& s);

    VmConfig cfg_;
    const RestoreSource* restore_ = nullptr;  // during construction only
    std::atomic<bool> paused_{false};
    std::uint64_t created_ns_ = 0;     // when construction began
    bool restored_ = false;            // built from a snapshot
    std::uint64_t running_ns_ = 0;     // when run() had every vCPU thread going
    std::mutex control_mu_;            // serialises pause, resume and snapshot
    std::vector<std::uint8_t> image_;  // read and checked before KVM is opened; freed once loaded
    std::vector<BootModule> modules_;
    Fd serial_fd_;  // opened before KVM, so a bad --serial is reported like any bad option
    std::vector<std::unique_ptr<storage::Image>> disk_images_;  // the same; handed to disks_
    kvm::System sys_;
    kvm::Vm vm_;
    GuestMemory mem_;
    Bus pio_{"port I/O"};
    Bus mmio_{"MMIO"};
    std::unique_ptr<dev::Uart16550> uart_;
    std::unique_ptr<dev::DebugExit> debug_exit_;
    std::unique_ptr<dev::FwCfg> fw_cfg_;
    std::unique_ptr<dev::Pic8259> pic_master_, pic_slave_;
    std::unique_ptr<dev::PmTimer> pm_timer_;
    std::unique_ptr<dev::IrqTestDev> irq_testdev_;
    BootInfo boot_{};
    std::vector<std::unique_ptr<VcpuThread>> vcpus_;
    host::PinPlan pin_plan_;
    std::vector<kvm_cpuid_entry2> supported_cpuid_;
    std::unique_ptr<VmApic> apic_;            // its tables outlive the per-vCPU APICs below
    std::unique_ptr<Interrupts> interrupts_;  // after vcpus_: destroyed first, threads joined
    dev::PciHost pci_;
    std::unique_ptr<InterruptRemapping> remapping_;  // before the device that sends through it
    std::unique_ptr<dev::IrqDevice> irq_device_;     // destroyed first: its thread joins
    // An NVMe disk and the remapping path its completions take (the controller sends through it).
    struct Disk {
        std::unique_ptr<InterruptRemapping> remapping;
        std::unique_ptr<dev::NvmeController> nvme;
    };
    std::vector<std::unique_ptr<Disk>> disks_;

    std::mutex stop_mu_;
    std::condition_variable stop_cv_;
    std::atomic<bool> stopping_{false};
    int exit_status_ = 0;
    std::string exit_message_;
    std::vector<bool> dead_halt_;  // under stop_mu_: halted with IF=0, or parked in KVM
    std::pair<unsigned, std::uint64_t> last_dead_halt_{};  // under stop_mu_
    void check_all_stuck();
};

}  // namespace hv
