#include <cstdio>

#include <fmt/format.h>

#include "core/backend/kinds.hpp"
#include "core/backend/vm_apic.hpp"
#include "core/base/error.hpp"
#include "core/host/profile.hpp"

namespace hv {

// The host profile decides (core/host/backend.hpp): `auto` takes KVM's own LAPIC where KVM
// offers the split irqchip — on hosts with APICv or AVIC that is the hardware path — and the
// errata of the host's CPU apply to the models (AMD 1235: IsRunning never set).
std::unique_ptr<VmApic> choose_vm_apic(std::string_view apic_text, unsigned vcpus)
{
    host::ApicSpec spec = host::parse_apic_spec(apic_text);
    const host::HostProfile profile = host::probe_host();
    // The errata of this host, each reported once as a warning with its workaround (the
    // early-Ryzen idle lockups suggest --pm-qos; AMD 1235 switches avic to its erratum mode).
    for (const auto& m : profile.errata)
        std::fputs(fmt::format("hvaccel: warning: host erratum {} ({}): {}\n", m.erratum->id,
                               m.erratum->title, m.erratum->workaround)
                       .c_str(),
                   stderr);
    host::BackendChoice choice = host::choose_backend(profile, spec.kind);
    if (choice.refused)
        fail("--apic {}: {}", apic_text, choice.reason);
    for (const auto& e : choice.errata_applied)
        if (e == "AMD-1235" && choice.kind == host::ApicKind::Avic)
            spec.erratum_1235 = true;
    return make_vm_apic(choice.kind, spec, vcpus, std::move(choice.reason));
}

std::unique_ptr<VmApic> make_vm_apic(host::ApicKind kind, const host::ApicSpec& spec,
                                     unsigned vcpus, std::string reason)
{
    switch (kind) {
    case host::ApicKind::Kernel:
        return make_kernel_vm_apic(std::move(reason));
    case host::ApicKind::Apicv:
        return make_apicv_vm_apic(spec, vcpus, std::move(reason));
    case host::ApicKind::Avic:
        return make_avic_vm_apic(spec, vcpus, std::move(reason));
    case host::ApicKind::Emulated:
        return make_emulated_vm_apic(std::move(reason));
    }
    throw Error("unknown APIC backend");
}

}  // namespace hv
