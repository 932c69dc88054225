// Known CPU and platform errata that change how hvaccel may use interrupt virtualization.
//
// The table is data: one entry per erratum with the CPUs it applies to (vendor, display
// family, model and stepping ranges, optionally a brand-string marker) or, for platform
// errata, a check over the whole profile. It is consulted once, when the profile is built
// (HostProfile::errata); every match carries a sentence saying why it matched.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/host/cpu.hpp"

namespace hv::host {

struct HostProfile;

struct CpuRange {
    Vendor vendor = Vendor::Other;
    std::uint32_t family = 0;
    std::uint32_t model_lo = 0, model_hi = 0xFF;
    std::uint32_t stepping_lo = 0, stepping_hi = 0xF;
    std::string_view brand_contains = {};  // "" = any brand
    std::string_view label = {};           // "Broadwell-EP", "Zen 1/Zen 2", ...
};

// What hvaccel does about a match.
enum class ErratumAction {
    Report,           // tell the user; nothing to change in hvaccel
    AvicNoIsRunning,  // avic model: never set IsRunning (AMD 1235 mode)
    PmQosHoldOptIn,   // warn; hold /dev/cpu_dma_latency when asked (PmQosHold)
    KeepHostOutOfC6,  // warn; PmQosHold keeps the host out of C6 when asked
};
std::string_view action_name(ErratumAction a);

struct Erratum {
    std::string_view id;
    std::string_view title;
    std::string_view vendor;         // for reports: "AMD, Hygon", "Intel", "platform"
    std::span<const CpuRange> cpus;  // CPU errata: any range matches
    // Platform errata: returns true and fills `reason` when the whole host is affected.
    bool (*platform)(const HostProfile&, std::string& reason) = nullptr;
    std::string_view affected_feature;
    std::string_view workaround;
    ErratumAction action = ErratumAction::Report;
    std::string_view source;
};

struct ErratumMatch {
    const Erratum* erratum = nullptr;
    std::string reason;
};

std::span<const Erratum> errata_table();

// Matches the table against a profile (its cpu, kvm and iommu parts; `errata` is ignored).
std::vector<ErratumMatch> match_errata(const HostProfile& profile);

// The matched errata (profile.errata) whose workaround is the opt-in PM QoS hold; core/ offers
// the hold (PmQosHold) when this is non-empty and warns when the user did not ask for it.
std::vector<std::string_view> pm_qos_hold_errata(const HostProfile& profile);

}  // namespace hv::host
