#include "core/host/backend.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/base/error.hpp"
#include "core/host/profile.hpp"

namespace hv::host {

namespace {

std::string names_list()
{
    std::string s(kAutoBackend);
    for (auto n : kBackendNames)
        s += fmt::format(", {}", n);
    return s;
}

BackendChoice refuse(std::string reason)
{
    BackendChoice c;
    c.refused = true;
    c.reason = std::move(reason);
    return c;
}

// Notes shared by every backend: host-side errata that no backend choice removes.
void add_host_notes(const HostProfile& p, BackendChoice& c)
{
    if (const auto* m = p.erratum("BZ-196683"))
        c.notes.push_back(
            fmt::format("{}: {}; consider the PM QoS hold", m->erratum->id, m->erratum->title));
    if (const auto* m = p.erratum("INTEL-ISR-C6"))
        c.notes.push_back(fmt::format("{}: host C6 with guest ISR bits set can lose an "
                                      "interrupt; consider the PM QoS hold",
                                      m->erratum->id));
}

void add_userspace_notes(const HostProfile& p, BackendChoice& c)
{
    if (p.kvm.cap("X86_USER_SPACE_MSR") == 0)
        c.notes.push_back("KVM lacks KVM_CAP_X86_USER_SPACE_MSR: x2APIC MSR accesses cannot "
                          "reach the userspace LAPIC (xAPIC guests only)");
    if (p.kvm.cap("IMMEDIATE_EXIT") == 0)
        c.notes.push_back("KVM lacks KVM_CAP_IMMEDIATE_EXIT: vCPU kicks rely on signals alone");
}

BackendChoice pick_kernel(const HostProfile& p)
{
    BackendChoice c;
    c.kind = ApicKind::Kernel;
    c.backend = backend_name(c.kind);
    c.reason = p.kvm.kernel_uses_apic_hw()
                   ? fmt::format("kernel: {}", p.kvm.kernel_apic_summary())
                   : fmt::format("kernel: in-kernel LAPIC ({})", p.kvm.kernel_apic_summary());
    if (p.kvm.provider == "kvm_amd" && p.kvm.kernel_uses_apic_hw() && p.has_erratum("AMD-1235"))
        c.notes.push_back(fmt::format(
            "AMD-1235: kvm_amd uses AVIC on an affected CPU; kernels with the erratum fix leave "
            "IsRunning clear (enable_ipiv={}), older ones can leave a vCPU unwoken by an IPI",
            p.kvm.param("enable_ipiv").value_or("?")));
    if (const auto* m = p.erratum("PLAT-VTD-NO-PI"))
        c.notes.push_back(fmt::format("{}: {}", m->erratum->id, m->reason));
    if (const auto* m = p.erratum("PLAT-AMD-NO-GA"))
        c.notes.push_back(fmt::format("{}: {}", m->erratum->id, m->reason));
    return c;
}

BackendChoice pick_apicv(const HostProfile& p, std::string_view why)
{
    BackendChoice c;
    c.kind = ApicKind::Apicv;
    c.backend = backend_name(c.kind);
    const VmxFeatures& v = p.cpu.vmx;
    std::string host;
    if (v.apicv())
        host = fmt::format("host CPU has APICv{}", v.ipi_virt ? " and IPIv" : "");
    else if (v.vmx && !v.msrs_read)
        host = fmt::format("host VMX capabilities unknown: {}", v.msr_status);
    else
        host = "host CPU has no APICv; the model does not need it";
    c.reason = fmt::format("apicv: model of Intel APICv, {} ({})", why, host);
    add_userspace_notes(p, c);
    return c;
}

BackendChoice pick_avic(const HostProfile& p, std::string_view why)
{
    BackendChoice c;
    c.kind = ApicKind::Avic;
    c.backend = backend_name(c.kind);
    const SvmFeatures& s = p.cpu.svm;
    const std::string host = s.avic
                                 ? fmt::format("host CPU has AVIC{}", s.x2avic ? " and x2AVIC" : "")
                                 : std::string("host CPU has no AVIC; the model does not need it");
    c.reason = fmt::format("avic: model of AMD AVIC, {} ({})", why, host);
    if (const auto* m = p.erratum("AMD-1235")) {
        // The model reproduces the host's behaviour, workaround included, so exit counts
        // match what Linux's AVIC does on this CPU.
        c.errata_applied.push_back(std::string(m->erratum->id));
        c.notes.push_back(fmt::format("{} mode on: IsRunning never set; IPIs to other vCPUs "
                                      "take AVIC_INCOMPLETE_IPI ({})",
                                      m->erratum->id, m->reason));
    }
    add_userspace_notes(p, c);
    return c;
}

BackendChoice pick_emulated(const HostProfile& p, std::string_view why)
{
    BackendChoice c;
    c.kind = ApicKind::Emulated;
    c.backend = backend_name(c.kind);
    c.reason = fmt::format("emulated: architectural LAPIC with every access trapped, {}", why);
    add_userspace_notes(p, c);
    return c;
}

}  // namespace

std::optional<ApicKind> backend_kind(std::string_view name)
{
    auto it = std::find(kBackendNames.begin(), kBackendNames.end(), name);
    if (it == kBackendNames.end())
        return std::nullopt;
    return static_cast<ApicKind>(it - kBackendNames.begin());
}

bool is_backend_name(std::string_view name)
{
    return backend_kind(name).has_value();
}

ApicSpec parse_apic_spec(std::string_view text)
{
    ApicSpec spec;
    std::size_t comma = text.find(',');
    const std::string_view name = text.substr(0, comma);
    if (name != kAutoBackend) {
        spec.kind = backend_kind(name);
        if (!spec.kind)
            fail("--apic {}: unknown APIC backend (available: {})", text, names_list());
    }
    const bool avic = spec.kind == ApicKind::Avic, apicv = spec.kind == ApicKind::Apicv;
    while (comma != std::string_view::npos) {
        std::size_t next = text.find(',', comma + 1);
        std::string_view opt =
            text.substr(comma + 1, next == std::string_view::npos ? next : next - comma - 1);
        if (avic && opt == "x2avic")
            spec.x2avic = true;
        else if (avic && opt == "erratum1235")
            spec.erratum_1235 = true;
        else if (apicv && opt == "noipiv")
            spec.ipiv = false;
        else if (apicv && opt == "nopi")
            spec.posted = false;
        else if (apicv && opt == "novid")
            spec.vid = false;
        else if (apicv && opt == "nox2apic")
            spec.x2apic_virt = false;
        else
            fail("--apic {}: unknown option '{}' for {} (avic: x2avic, erratum1235; apicv: "
                 "noipiv, nopi, novid, nox2apic)",
                 text, opt, name);
        comma = next;
    }
    return spec;
}

BackendChoice choose_backend(const HostProfile& p, std::string_view requested)
{
    if (requested.empty() || requested == kAutoBackend)
        return choose_backend(p, std::optional<ApicKind>{});
    if (auto kind = backend_kind(requested))
        return choose_backend(p, kind);
    return refuse(
        fmt::format("unknown APIC backend '{}' (expected one of: {})", requested, names_list()));
}

BackendChoice choose_backend(const HostProfile& p, std::optional<ApicKind> requested)
{
    const std::string_view label = requested ? backend_name(*requested) : kAutoBackend;
    if (!p.kvm.present)
        return refuse(fmt::format("{}: hvaccel runs guests on KVM and /dev/kvm is unavailable "
                                  "({})",
                                  label, p.kvm.error));

    BackendChoice c;
    const bool split = p.kvm.cap("SPLIT_IRQCHIP") != 0;
    if (!requested) {
        if (split)
            c = pick_kernel(p);
        else if (p.cpu.vmx.vmx)
            c = pick_apicv(p, "KVM lacks split irqchip and the host has VMX");
        else if (p.cpu.svm.svm)
            c = pick_avic(p, "KVM lacks split irqchip and the host has SVM");
        else
            c = pick_emulated(p, "KVM lacks split irqchip and the host has neither VMX nor SVM");
        add_host_notes(p, c);
        return c;
    }
    switch (*requested) {
    case ApicKind::Kernel:
        if (!split)
            return refuse("kernel: KVM lacks KVM_CAP_SPLIT_IRQCHIP (in-kernel LAPIC with a "
                          "userspace IOAPIC)");
        c = pick_kernel(p);
        break;
    case ApicKind::Apicv:
        c = pick_apicv(p, "requested");
        break;
    case ApicKind::Avic:
        c = pick_avic(p, "requested");
        break;
    case ApicKind::Emulated:
        c = pick_emulated(p, "requested");
        break;
    }
    add_host_notes(p, c);
    return c;
}

}  // namespace hv::host
