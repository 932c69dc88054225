#include <fmt/format.h>

#include "core/host/report.hpp"

namespace hv::host {

namespace {

std::string yes_no(bool b)
{
    return b ? "yes" : "no";
}

std::string size_text(std::uint64_t bytes)
{
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        return fmt::format("{} MiB", bytes >> 20);
    if (bytes >= 1024)
        return fmt::format("{} KiB", bytes >> 10);
    return fmt::format("{} B", bytes);
}

void cpu_text(std::string& o, const CpuInfo& c, const std::string& msr_status)
{
    const CpuIdentity& id = c.id;
    o += "CPU\n";
    o += fmt::format("  vendor      {} ({})\n", vendor_name(id.vendor), id.vendor_string);
    o += fmt::format("  brand       {}\n", id.brand.empty() ? "(none)" : id.brand);
    o += fmt::format("  signature   family 0x{:x} model 0x{:x} stepping {} (CPUID.1:EAX 0x{:08x});"
                     " libcpuid codename guess \"{}\"\n",
                     id.family, id.model, id.stepping, id.leaf1_eax, id.codename);
    o += fmt::format("  hypervisor  {}\n", id.hypervisor ? "yes: this host is itself a VM" : "no");
    o += fmt::format("  MSRs        {}\n", msr_status);
    const VmxFeatures& v = c.vmx;
    if (!v.vmx) {
        o += "  VMX         no (CPUID.1:ECX[5] clear)\n";
    } else if (!v.msrs_read) {
        o += fmt::format("  VMX         yes; capabilities unknown: {}\n", v.msr_status);
    } else {
        o += fmt::format(
            "  VMX         yes; APICv {} (register virt {}, virtual-interrupt delivery "
            "{}, posted interrupts {}), x2APIC virt {}, IPIv {}\n",
            yes_no(v.apicv()), yes_no(v.apic_register_virt), yes_no(v.virtual_interrupt_delivery),
            yes_no(v.posted_interrupts), yes_no(v.virtualize_x2apic), yes_no(v.ipi_virt));
    }
    const SvmFeatures& s = c.svm;
    if (!s.svm)
        o += "  SVM         no\n";
    else
        o += fmt::format(
            "  SVM         yes (rev {}); NPT {}, AVIC {}, x2AVIC {}, vGIF {}, vNMI {}\n",
            s.revision, yes_no(s.npt), yes_no(s.avic), yes_no(s.x2avic), yes_no(s.vgif),
            yes_no(s.vnmi));
}

void kvm_text(std::string& o, const KvmInfo& k)
{
    o += "KVM\n";
    if (!k.present)
        o += fmt::format("  /dev/kvm    unavailable: {}\n", k.error);
    else
        o += fmt::format("  /dev/kvm    API {}, provided by {}\n", k.api_version,
                         k.provider.empty() ? "(unknown module)" : k.provider);
    if (!k.other_providers.empty())
        o += fmt::format("  also loaded {}\n", fmt::join(k.other_providers, ", "));
    if (!k.params.empty()) {
        std::string ps;
        for (const auto& [name, value] : k.params)
            ps += fmt::format(" {}={}", name, value);
        o += fmt::format("  parameters {}:{}\n", k.provider, ps);
    }
    if (k.present) {
        std::string cs;
        for (const auto& c : k.caps)
            cs += fmt::format(" {}={}", c.name, c.value);
        o += fmt::format("  caps       {}\n", cs);
    }
    o += fmt::format("  LAPIC       in-kernel: {}\n", k.kernel_apic_summary());
}

void iommu_text(std::string& o, const IommuInfo& io)
{
    o += "IOMMU\n";
    if (io.none_found())
        o += "  none found (no /sys/class/iommu units, no DMAR or IVRS table)\n";
    for (const auto& u : io.vtd)
        o += fmt::format("  VT-d {}: cap=0x{:x} ecap=0x{:x}; posted interrupts {}, interrupt "
                         "remapping {}, x2APIC {}\n",
                         u.name, u.cap, u.ecap, yes_no(u.posted_interrupts()),
                         yes_no(u.interrupt_remapping()), yes_no(u.extended_interrupt_mode()));
    for (const auto& u : io.amd)
        o += fmt::format("  AMD {}: features=0x{:x}; GA {}, XT {}\n", u.name, u.features,
                         yes_no(u.ga()), yes_no(u.xt()));
    if (io.dmar)
        o += fmt::format("  ACPI DMAR: {} DRHD unit(s), INTR_REMAP {}, X2APIC_OPT_OUT {}\n",
                         io.dmar->drhds.size(), yes_no(io.dmar->intr_remap()),
                         yes_no(io.dmar->x2apic_opt_out()));
    if (io.ivrs) {
        unsigned ga = 0;
        for (const auto& h : io.ivrs->ivhds)
            ga += h.ga_support() ? 1U : 0U;
        o += fmt::format("  ACPI IVRS: {} IVHD block(s), {} with GA support\n",
                         io.ivrs->ivhds.size(), ga);
    }
    if (!io.unreadable_tables.empty())
        o += fmt::format("  ACPI: {}\n", io.acpi_note);
    for (const auto& e : io.errors)
        o += fmt::format("  error: {}\n", e);
}

void topology_text(std::string& o, const Topology& t)
{
    o += fmt::format("Topology ({})\n", t.source);
    o += fmt::format("  {} package(s), {} core(s), {} hardware thread(s), {} NUMA node(s)\n",
                     t.packages, t.cores, t.pus, t.numa_nodes.size());
    for (const auto& c : t.caches)
        o += fmt::format("  L{} {} {} x{} (shared by {} thread(s))\n", c.level, c.kind,
                         size_text(c.size), c.count, c.pus_per_instance);
    std::string cpus;
    for (const auto& p : t.pu_list)
        cpus += fmt::format(" {}[core {} thread {} node {}{}]", p.os_index, p.core, p.thread,
                            p.numa_node,
                            p.apic_id ? fmt::format(" apic {}", *p.apic_id) : std::string());
    o += fmt::format("  cpus{}\n", cpus);
}

}  // namespace

std::string profile_to_text(const HostProfile& p, const BackendChoice& c)
{
    std::string o = "hvaccel host profile\n";
    cpu_text(o, p.cpu, p.msr_status);
    kvm_text(o, p.kvm);
    iommu_text(o, p.iommu);
    topology_text(o, p.topology);
    o += "Errata\n";
    if (p.errata.empty())
        o += "  none apply\n";
    for (const auto& m : p.errata) {
        const Erratum& e = *m.erratum;
        o += fmt::format("  {}: {}\n    why: {}\n    affects: {}\n    workaround: {} [{}]\n"
                         "    source: {}\n",
                         e.id, e.title, m.reason, e.affected_feature, e.workaround,
                         action_name(e.action), e.source);
    }
    o += "APIC backend for --apic auto\n";
    o += fmt::format("  {}{}\n", c.refused ? "refused: " : "", c.reason);
    for (const auto& id : c.errata_applied)
        o += fmt::format("  erratum applied: {}\n", id);
    for (const auto& n : c.notes)
        o += fmt::format("  note: {}\n", n);
    if (!p.notes.empty()) {
        o += "Notes\n";
        for (const auto& n : p.notes)
            o += fmt::format("  {}\n", n);
    }
    return o;
}

}  // namespace hv::host
