#include <fmt/format.h>

#include "core/host/report.hpp"

namespace hv::host {

namespace {

using nlohmann::json;

std::string hex(std::uint64_t v)
{
    return fmt::format("0x{:x}", v);
}

json opt_hex(const std::optional<std::uint64_t>& v)
{
    return v ? json(hex(*v)) : json(nullptr);
}

json cpu_json(const CpuInfo& c)
{
    json leaves = json::array();
    for (const auto& [key, r] : c.leaves.leaves())
        leaves.push_back({{"leaf", hex(key.first)},
                          {"subleaf", key.second},
                          {"eax", hex(r.eax)},
                          {"ebx", hex(r.ebx)},
                          {"ecx", hex(r.ecx)},
                          {"edx", hex(r.edx)}});
    const VmxFeatures& v = c.vmx;
    const SvmFeatures& s = c.svm;
    return {
        {"vendor", vendor_name(c.id.vendor)},
        {"vendor_string", c.id.vendor_string},
        {"brand", c.id.brand},
        {"codename_libcpuid", c.id.codename},
        {"family", c.id.family},
        {"model", c.id.model},
        {"stepping", c.id.stepping},
        {"signature", hex(c.id.leaf1_eax)},
        {"hypervisor", c.id.hypervisor},
        {"vmx",
         {{"present", v.vmx},
          {"msrs_read", v.msrs_read},
          {"msr_status", v.msr_status},
          {"posted_interrupts", v.posted_interrupts},
          {"tpr_shadow", v.tpr_shadow},
          {"virtualize_apic_accesses", v.virtualize_apic_accesses},
          {"virtualize_x2apic", v.virtualize_x2apic},
          {"apic_register_virt", v.apic_register_virt},
          {"virtual_interrupt_delivery", v.virtual_interrupt_delivery},
          {"ipi_virt", v.ipi_virt},
          {"apicv", v.apicv()},
          {"msr_pinbased", opt_hex(v.pinbased)},
          {"msr_procbased", opt_hex(v.procbased)},
          {"msr_procbased2", opt_hex(v.procbased2)},
          {"msr_procbased3", opt_hex(v.procbased3)}}},
        {"svm",
         {{"present", s.svm},
          {"revision", s.revision},
          {"nasid", s.nasid},
          {"npt", s.npt},
          {"nrips", s.nrips},
          {"decode_assists", s.decode_assists},
          {"vgif", s.vgif},
          {"avic", s.avic},
          {"x2avic", s.x2avic},
          {"vnmi", s.vnmi},
          {"edx", hex(s.edx)}}},
        {"cpuid_leaves", leaves},
    };
}

json kvm_json(const KvmInfo& k)
{
    json caps = json::object();
    for (const auto& c : k.caps)
        caps[std::string(c.name)] = c.value;
    return {
        {"present", k.present},
        {"error", k.error},
        {"api_version", k.api_version},
        {"provider", k.provider},
        {"other_providers", k.other_providers},
        {"params", k.params},
        {"capabilities", caps},
        {"kernel_uses_apic_hw", k.kernel_uses_apic_hw()},
        {"kernel_apic", k.kernel_apic_summary()},
    };
}

json iommu_json(const IommuInfo& io)
{
    json vtd = json::array(), amd = json::array();
    for (const auto& u : io.vtd)
        vtd.push_back({{"name", u.name},
                       {"cap", hex(u.cap)},
                       {"ecap", hex(u.ecap)},
                       {"posted_interrupts", u.posted_interrupts()},
                       {"interrupt_remapping", u.interrupt_remapping()},
                       {"x2apic", u.extended_interrupt_mode()}});
    for (const auto& u : io.amd)
        amd.push_back({{"name", u.name},
                       {"features", hex(u.features)},
                       {"features2", opt_hex(u.features2)},
                       {"ga", u.ga()},
                       {"xt", u.xt()}});
    json dmar = nullptr, ivrs = nullptr;
    if (io.dmar) {
        json units = json::array();
        for (const auto& d : io.dmar->drhds)
            units.push_back({{"segment", d.segment},
                             {"base", hex(d.register_base)},
                             {"include_pci_all", (d.flags & 1) != 0}});
        dmar = {{"host_address_width", io.dmar->host_address_width + 1},
                {"intr_remap", io.dmar->intr_remap()},
                {"x2apic_opt_out", io.dmar->x2apic_opt_out()},
                {"drhd", units}};
    }
    if (io.ivrs) {
        json units = json::array();
        for (const auto& h : io.ivrs->ivhds)
            units.push_back({{"type", hex(h.type)},
                             {"device_id", hex(h.device_id)},
                             {"base", hex(h.base)},
                             {"efr", opt_hex(h.efr)},
                             {"ga", h.ga_support()}});
        ivrs = {{"ivinfo", hex(io.ivrs->ivinfo)}, {"ivhd", units}};
    }
    return {{"none_found", io.none_found()},
            {"vtd", vtd},
            {"amd", amd},
            {"acpi_dmar", dmar},
            {"acpi_ivrs", ivrs},
            {"acpi_note", io.acpi_note},
            {"errors", io.errors}};
}

json topology_json(const Topology& t)
{
    json pus = json::array(), caches = json::array();
    for (const auto& p : t.pu_list)
        pus.push_back({{"cpu", p.os_index},
                       {"core", p.core},
                       {"thread", p.thread},
                       {"package", p.package},
                       {"numa_node", p.numa_node},
                       {"apic_id", p.apic_id ? json(*p.apic_id) : json(nullptr)}});
    for (const auto& c : t.caches)
        caches.push_back({{"level", c.level},
                          {"kind", c.kind},
                          {"size", c.size},
                          {"count", c.count},
                          {"pus_per_instance", c.pus_per_instance}});
    return {{"source", t.source}, {"packages", t.packages},     {"cores", t.cores},
            {"pus", t.pus},       {"numa_nodes", t.numa_nodes}, {"cpus", pus},
            {"caches", caches}};
}

}  // namespace

nlohmann::json profile_to_json(const HostProfile& p, const BackendChoice& c)
{
    json errata = json::array();
    for (const auto& m : p.errata) {
        const Erratum& e = *m.erratum;
        errata.push_back({{"id", e.id},
                          {"title", e.title},
                          {"vendor", e.vendor},
                          {"affected_feature", e.affected_feature},
                          {"workaround", e.workaround},
                          {"action", action_name(e.action)},
                          {"source", e.source},
                          {"reason", m.reason}});
    }
    return {
        {"cpu", cpu_json(p.cpu)},
        {"kvm", kvm_json(p.kvm)},
        {"iommu", iommu_json(p.iommu)},
        {"topology", topology_json(p.topology)},
        {"errata", errata},
        {"apic_auto",
         {{"refused", c.refused},
          {"backend", c.backend},
          {"reason", c.reason},
          {"errata_applied", c.errata_applied},
          {"notes", c.notes}}},
        {"msr_status", p.msr_status},
        {"notes", p.notes},
    };
}

}  // namespace hv::host
