// vCPU thread placement (`--pin auto|LIST`).
//
// make_pin_plan() is pure: topology and request in, plan out. `auto` puts one vCPU on each
// core first and only then on the sibling hardware threads, preferring the NUMA node that
// holds guest memory when the host has several. A LIST ("0,1", "0-3", "0-1,4") names one host
// CPU per vCPU and is checked against the online CPUs. Each entry carries the host APIC ID of
// its CPU so the posted-interrupt notification / AVIC doorbell target follows the pinning.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/host/topology.hpp"

namespace hv::host {

struct PinRequest {
    enum class Mode { None, Auto, List } mode = Mode::None;
    std::vector<unsigned> cpus;  // Mode::List, in vCPU order
};

// Parses "none", "auto" or a CPU list. Throws hv::Error ("--pin: ...") on bad syntax.
PinRequest parse_pin(std::string_view text);

struct PinEntry {
    unsigned vcpu = 0;
    unsigned host_cpu = 0;  // OS CPU number
    unsigned core = 0;
    unsigned thread = 0;
    unsigned package = 0;
    int numa_node = -1;
    std::optional<std::uint32_t> host_apic_id;
};

struct PinPlan {
    std::vector<PinEntry> entries;  // empty for Mode::None
    std::string summary;            // one line for logs and probe
};

// Throws hv::Error with a clear message when the request cannot be honoured (CPU offline or
// unknown, duplicates, more vCPUs than CPUs, wrong list length).
PinPlan make_pin_plan(const Topology& topo, unsigned vcpus, const PinRequest& req,
                      std::optional<int> memory_node = std::nullopt);

// Pins the calling thread to entry.host_cpu (pthread_setaffinity_np). core/ calls this first
// thing in each vCPU thread. Throws hv::Error naming the vCPU and CPU on failure.
void pin_current_thread(const PinEntry& entry);

}  // namespace hv::host
