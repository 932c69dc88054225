// HostProfile: everything hvaccel detects about the host, built once at start.
//
// Sources are injectable: a raw CPUID source, an MSR source, a KVM capability source, a root
// directory for sysfs/procfs/ACPI, and an optional synthetic hwloc topology. probe_host() wires
// the live ones (libcpuid, /dev/cpu/0/msr, /dev/kvm, "/", hwloc); tests build profiles of real
// CPUs from their published CPUID values and fixture trees.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/host/cpu.hpp"
#include "core/host/cpuid.hpp"
#include "core/host/errata.hpp"
#include "core/host/iommu.hpp"
#include "core/host/kvm_info.hpp"
#include "core/host/msr.hpp"
#include "core/host/topology.hpp"

namespace hv::host {

struct HostProfile {
    CpuInfo cpu;
    KvmInfo kvm;
    IommuInfo iommu;
    Topology topology;
    std::vector<ErratumMatch> errata;  // match_errata(), consulted once by build_profile()
    std::vector<std::string> notes;    // things worth saying that are not errors
    // Whether MSRs could be read at all ("msr module not loaded (...)", "readable (...)").
    std::string msr_status;

    bool has_erratum(std::string_view id) const;
    const ErratumMatch* erratum(std::string_view id) const;
};

struct ProbeSources {
    const CpuidSource* cpuid = nullptr;  // required
    const MsrSource* msrs = nullptr;     // nullptr: MSRs not read
    const KvmCapSource* kvm = nullptr;   // nullptr: /dev/kvm unavailable, kvm_error says why
    std::string kvm_error;
    std::filesystem::path root = "/";  // sysfs, procfs and ACPI tables are read under it
    std::optional<std::string> synthetic_topology;  // hwloc synthetic description; else live
};

// Throws hv::Error when the CPU cannot be identified or the topology cannot be loaded; the
// optional parts (MSRs, KVM, IOMMU) record their problems in the profile instead.
HostProfile build_profile(const ProbeSources& sources);

// The live host.
HostProfile probe_host();

}  // namespace hv::host
