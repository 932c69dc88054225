// What a VM is made of, as the CLI (or a test) asks for it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hv {

inline constexpr unsigned kMaxVcpus = 255;  // xAPIC IDs 0..254 (0xFF is the broadcast ID)

// An NVMe disk (core/devices/nvme.hpp) over an image file (core/storage/image.hpp).
struct DiskConfig {
    std::string path;
    std::string format;  // "raw", "qcow2", or "" (the content decides; no backing file then)
    bool read_only = false;
    std::string serial;    // "" gives HVACCEL000N, N the disk's index + 1
    unsigned queues = 16;  // I/O queue pairs offered
};
inline constexpr unsigned kMaxDisks = 8;

struct VmConfig {
    std::string image;  // multiboot image path
    unsigned vcpus = 1;
    std::uint64_t memory_mib = 128;
    std::string cmdline;
    std::string serial = "stdio";      // "stdio", "none" or a file path
    std::string apic = "auto";         // NAME[,OPTION...], see host::ApicSpec
    std::vector<std::string> modules;  // "PATH[ args]" each
    bool stats = false;
    std::string pin = "none";       // vCPU thread placement: none, auto or a CPU list
    bool pm_qos = false;            // hold a PM QoS request (no deep C-states) while running
    bool irqdev = false;            // the passthrough-style MSI-X device (core/devices/irq_device)
    std::vector<DiskConfig> disks;  // NVMe controllers, PCI slots 2, 3, ...
    std::string kvm_path = "/dev/kvm";
};

// Process exit statuses beyond the guest's own (debug-exit gives odd values (v << 1) | 1).
inline constexpr int kExitUsage = 2;       // bad option, bad image, host cannot run the VM
inline constexpr int kExitGuestCrash = 4;  // triple fault, KVM internal error, dead halt
inline constexpr int kExitInterrupted = 130;

}  // namespace hv
