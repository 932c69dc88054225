// The --stats report: vCPU exits, kicks and wakes, the APIC backends' own counters, the
// interrupt-remapping path, guest RAM and unclaimed I/O.
#include <fmt/format.h>

#include "core/vm/vm.hpp"

namespace hv {

std::string Vm::stats_report() const
{
    std::string out =
        fmt::format("hvaccel statistics\n  APIC backend {} ({})\n", apic_->name(), apic_->reason());
    if (running_ns_)
        out += fmt::format("  vCPUs running {:.3f} ms after the VM was begun ({})\n",
                           static_cast<double>(running_ns_ - created_ns_) / 1e6,
                           restored_ ? "restored" : "booted");
    for (const auto& v : vcpus_) {
        const auto& s = v->stats();
        out += fmt::format("  vCPU {}: kicks {} wakes {} msr-faults {}\n", v->id(), s.kicks.load(),
                           s.wakes.load(), s.msr_faults.load());
        for (std::size_t r = 0; r < s.exits.size(); ++r) {
            auto n = s.exits[r].load();
            if (!n)
                continue;
            const char* name = kvm_exit_name(static_cast<std::uint32_t>(r));
            out += fmt::format("    exit {:<14} {}\n", name ? name : fmt::format("#{}", r), n);
        }
        // The APIC backend's own counters: architectural exits by reason, deliveries by source.
        auto& b = interrupts_->backend(v->id());
        for (const auto& list : {b.exit_counters(), b.stats()})
            for (const auto& c : list)
                if (c.value)
                    out += fmt::format("    apic {:<14} {}\n", c.name, c.value);
    }
    out += "  " + pci_.stats() + "\n";
    if (irq_device_)
        out += "  " + irq_device_->stats() + "\n";
    auto remapping = [&out](const InterruptRemapping& r) {
        out += fmt::format("  interrupt remapping: {}\n", r.path());
        for (const auto& c : r.counters())
            out += fmt::format("    iommu {:<16} {}\n", c.name, c.value);
    };
    if (remapping_)
        remapping(*remapping_);
    for (std::size_t i = 0; i < disks_.size(); ++i) {
        out += fmt::format("  disk {} ({}): {}\n", i, cfg_.disks[i].path, disks_[i]->nvme->stats());
        remapping(*disks_[i]->remapping);
    }
    out += fmt::format("  guest RAM resident: {} KiB of {} MiB\n", mem_.resident_bytes() >> 10,
                       mem_.size() >> 20);
    out += fmt::format("  unclaimed: port reads {} writes {}, MMIO reads {} writes {}\n",
                       pio_.unclaimed_reads(), pio_.unclaimed_writes(), mmio_.unclaimed_reads(),
                       mmio_.unclaimed_writes());
    return out;
}

}  // namespace hv
