// Event counters shared by both remapping units (read by core for --stats). Relaxed atomics:
// statistics, not synchronisation (apic/counters.hpp).
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "apic/counters.hpp"

namespace hv::iommu {

enum class IommuStat : uint8_t {
    Remapped,    // remapped (or compatibility pass-through) interrupts handed to core to deliver
    Posted,      // interrupts posted to a PID (VT-d) or a backing page (AMD GA)
    Coalesced,   // posts whose PIR / IRR bit was already set
    Notified,    // VT-d: notification events sent (ON 0 -> 1, or URG)
    Suppressed,  // VT-d: posts that found SN set (no notification)
    Doorbells,   // AMD GA: doorbells rung because IsRun was set
    GaLogged,    // AMD GA: GA log entries written (vCPU not running, GALogIntr set)
    Faulted,     // requests blocked (a fault record / event log entry, or suppressed by FPD /
                 // SupIOPF)
    Count
};

inline constexpr std::array<std::string_view, static_cast<std::size_t>(IommuStat::Count)>
    kIommuStatNames{"remapped",   "posted",    "coalesced", "notified",
                    "suppressed", "doorbells", "ga_logged", "faulted"};

using IommuCounters = apic::CounterTable<IommuStat, static_cast<std::size_t>(IommuStat::Count)>;

}  // namespace hv::iommu
