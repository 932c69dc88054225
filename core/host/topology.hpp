// Host CPU topology through hwloc: packages, cores, hardware threads (PUs), NUMA nodes, caches.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hv::host {

struct HostPu {
    unsigned os_index = 0;  // the CPU number Linux uses (sched_setaffinity, /dev/cpu/N)
    unsigned core = 0;      // hwloc logical index of the core
    unsigned thread = 0;    // rank of this PU among its core's PUs (0 = first thread)
    unsigned package = 0;   // hwloc logical index of the package
    int numa_node = -1;     // OS index of the NUMA node containing this PU, -1 if none
    // The PU's APIC ID (from /proc/cpuinfo): the physical destination of a posted-interrupt
    // notification or an AVIC doorbell aimed at a vCPU running on this PU.
    std::optional<std::uint32_t> apic_id;
};

struct HostCache {
    unsigned level = 0;
    std::string kind;        // "unified", "data", "instruction"
    std::uint64_t size = 0;  // bytes per instance
    unsigned count = 0;      // instances
    unsigned pus_per_instance = 0;
};

struct Topology {
    std::string source;  // "hwloc (linux)", "hwloc synthetic '...'"
    unsigned packages = 0, cores = 0, pus = 0;
    std::vector<unsigned> numa_nodes;  // OS indices
    std::vector<HostPu> pu_list;       // online, allowed PUs, by OS index
    std::vector<HostCache> caches;

    const HostPu* find_pu(unsigned os_index) const;
};

// The live topology of this machine.
Topology read_topology();
// A synthetic topology in hwloc's description language, e.g.
// "pack:2 [numa] core:4 pu:2" or "numa:2 core:4 pu:2". Throws hv::Error on a bad description.
Topology read_topology_synthetic(std::string_view description);

// "apicid" per "processor" from <root>/proc/cpuinfo; empty when absent or unreadable.
std::map<unsigned, std::uint32_t> read_apic_ids(const std::filesystem::path& root);
// Parses cpuinfo text (exposed for tests).
std::map<unsigned, std::uint32_t> parse_cpuinfo_apic_ids(std::string_view cpuinfo);

}  // namespace hv::host
