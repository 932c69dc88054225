// Which APIC backend a VM gets, and why (`--apic auto|kernel|apicv|avic|emulated`).
//
// A pure function of the host profile: the same profile always gives the same choice and the
// same sentence, so `hvaccel probe` can print what a VM would get.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace hv::host {

struct HostProfile;

// The one list of backend names (DESIGN.md "How guests execute"). "auto" is not a backend.
inline constexpr std::array<std::string_view, 4> kBackendNames = {"kernel", "apicv", "avic",
                                                                  "emulated"};
inline constexpr std::string_view kAutoBackend = "auto";

bool is_backend_name(std::string_view name);

struct BackendChoice {
    bool refused = false;
    std::string backend;                      // one of kBackendNames when !refused
    std::string reason;                       // why this backend, or why refused
    std::vector<std::string> errata_applied;  // erratum ids the backend must honour ("AMD-1235")
    std::vector<std::string> notes;           // warnings worth printing next to the choice
};

// `requested` is "auto" (or empty), or a backend name. apicv and avic are models and work on
// any host with KVM; kernel needs KVM_CAP_SPLIT_IRQCHIP; unknown names are refused.
BackendChoice choose_backend(const HostProfile& profile, std::string_view requested);

}  // namespace hv::host
