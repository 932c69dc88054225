// Which APIC backend a VM gets, and why (`--apic auto|kernel|apicv|avic|emulated`).
//
// A pure function of the host profile: the same profile always gives the same choice and the
// same sentence, so `hvaccel probe` can print what a VM would get.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hv::host {

struct HostProfile;

// The four APIC backends (docs/apic.md): KVM's own LAPIC, and the models of
// Intel APICv, AMD AVIC and a fully trapped architectural LAPIC.
enum class ApicKind : unsigned char { Kernel, Apicv, Avic, Emulated };

// The one list of backend names, indexed by ApicKind. "auto" is not a backend.
inline constexpr std::array<std::string_view, 4> kBackendNames = {"kernel", "apicv", "avic",
                                                                  "emulated"};
inline constexpr std::string_view kAutoBackend = "auto";

constexpr std::string_view backend_name(ApicKind k)
{
    return kBackendNames[static_cast<unsigned>(k)];
}
std::optional<ApicKind> backend_kind(std::string_view name);
bool is_backend_name(std::string_view name);

// `--apic NAME[,OPTION...]`: the backend and the options of a hardware model, e.g.
// "avic,x2avic", "avic,erratum1235", "apicv,noipiv,nopi".
struct ApicSpec {
    std::optional<ApicKind> kind;  // none: auto
    bool x2avic = false;           // avic: x2AVIC
    bool erratum_1235 = false;  // avic: IsRunning never set (forced; auto-applied on affected CPUs)
    bool ipiv = true;           // apicv: IPI virtualization ("noipiv" turns it off)
    bool posted = true;         // apicv: posted-interrupt processing ("nopi")
    bool vid = true;            // apicv: virtual-interrupt delivery ("novid": TPR shadow only)
    bool x2apic_virt = true;    // apicv: virtualize x2APIC mode ("nox2apic")
};
// Throws hv::Error naming the bad name or option.
ApicSpec parse_apic_spec(std::string_view text);

struct BackendChoice {
    bool refused = false;
    ApicKind kind = ApicKind::Emulated;       // when !refused
    std::string backend;                      // its name, backend_name(kind)
    std::string reason;                       // why this backend, or why refused
    std::vector<std::string> errata_applied;  // erratum ids the backend must honour ("AMD-1235")
    std::vector<std::string> notes;           // warnings worth printing next to the choice
};

// `requested` is none for auto, or the backend asked for. apicv and avic are models and work
// on any host with KVM; kernel needs KVM_CAP_SPLIT_IRQCHIP.
BackendChoice choose_backend(const HostProfile& profile, std::optional<ApicKind> requested);
// The same by name: "auto" (or empty), or a backend name; unknown names are refused.
BackendChoice choose_backend(const HostProfile& profile, std::string_view requested);

}  // namespace hv::host
