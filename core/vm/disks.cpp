// NVMe disks: one controller (core/devices/nvme.hpp) per --disk, in PCI slots 2, 3, ... after
// the irq device's slot 1. Each sends its MSI-X completions through an interrupt-remapping path
// of its own on the VM's APIC backend (core/passthrough/remapping.hpp), the path a
// passed-through device's MSIs take: posted on apicv, GA mode on avic, remapped on emulated,
// irqfd on kernel.
#include <fmt/format.h>

#include "core/base/error.hpp"
#include "core/vm/vm.hpp"

namespace hv {

namespace {

constexpr unsigned kFirstDiskSlot = 2;
// BARs before the guest moves them: BAR0 (16 KiB of registers) and BAR2 (the MSI-X table and
// PBA) of disk i in the 64 KiB at kDiskBars + i * 64 KiB, after the irq device's.
constexpr std::uint32_t kDiskBars = 0xC001'0000;
constexpr std::uint32_t kDiskBarStride = 0x1'0000;

std::string serial_of(const DiskConfig& d, std::size_t index)
{
    return d.serial.empty() ? fmt::format("HVACCEL{:04}", index + 1) : d.serial;
}

}  // namespace

std::vector<std::unique_ptr<storage::Image>> Vm::open_disks(const VmConfig& cfg)
{
    if (cfg.disks.size() > kMaxDisks)
        fail("at most {} --disk options", kMaxDisks);
    std::vector<std::unique_ptr<storage::Image>> images;
    for (const DiskConfig& d : cfg.disks) {
        std::optional<storage::Format> format;
        if (!d.format.empty())
            format = storage::parse_format(d.format);
        images.push_back(storage::open_image(d.path, format, !d.read_only));
    }
    return images;
}

void Vm::setup_disks()
{
    unsigned first_entry = cfg_.irqdev ? dev::irqdev::kEntries : 0;
    for (std::size_t i = 0; i < disk_images_.size(); ++i) {
        const DiskConfig& d = cfg_.disks[i];
        const auto slot = static_cast<unsigned>(kFirstDiskSlot + i);
        const auto source_id = static_cast<std::uint16_t>(slot << 3);  // bus 0, function 0
        auto disk = std::make_unique<Disk>();
        disk->remapping =
            apic_->make_remapping({*interrupts_, vm_, dev::nvme::kVectors, first_entry});
        first_entry += dev::nvme::kVectors;
        Disk* p = disk.get();
        const auto bars = static_cast<std::uint32_t>(kDiskBars + i * kDiskBarStride);
        try {
            disk->nvme = std::make_unique<dev::NvmeController>(
                mem_, std::move(disk_images_[i]),
                dev::NvmeController::Options{serial_of(d, i), d.read_only, d.queues},
                [p, source_id](unsigned entry) {
                    p->remapping->program(source_id, entry, p->nvme->msix().entry(entry));
                },
                [p, source_id](unsigned entry, const dev::MsixEntry&) {
                    p->remapping->send(source_id, entry);
                },
                bars, bars + dev::nvme::kBar0Size);
        } catch (const Error& e) {
            fail("--disk {}: {}", d.path, e.what());
        }
        pci_.add(slot, disk->nvme.get());
        disks_.push_back(std::move(disk));
    }
    disk_images_.clear();
}

}  // namespace hv
