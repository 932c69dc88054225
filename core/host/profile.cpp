#include "core/host/profile.hpp"

#include <memory>

#include "core/base/error.hpp"

namespace hv::host {

bool HostProfile::has_erratum(std::string_view id) const
{
    return erratum(id) != nullptr;
}

const ErratumMatch* HostProfile::erratum(std::string_view id) const
{
    for (const auto& m : errata)
        if (m.erratum->id == id)
            return &m;
    return nullptr;
}

HostProfile build_profile(const ProbeSources& s)
{
    if (s.cpuid == nullptr)
        fail("build_profile: no CPUID source");
    HostProfile p;
    const NoMsrs no_msrs("not read");
    p.cpu = decode_cpu(*s.cpuid, s.msrs ? *s.msrs : no_msrs);
    p.msr_status = (s.msrs ? *s.msrs : no_msrs).status();
    p.kvm = read_kvm_info(s.root, s.kvm, s.kvm_error);
    p.iommu = read_iommu(s.root);
    p.topology =
        s.synthetic_topology ? read_topology_synthetic(*s.synthetic_topology) : read_topology();
    const auto apic_ids = read_apic_ids(s.root);
    for (auto& pu : p.topology.pu_list)
        if (const auto it = apic_ids.find(pu.os_index); it != apic_ids.end())
            pu.apic_id = it->second;

    if (p.cpu.id.hypervisor)
        p.notes.push_back("this host is itself a virtual machine (CPUID.1:ECX[31])");
    if (p.cpu.vmx.vmx && !p.cpu.vmx.msrs_read)
        p.notes.push_back("VMX capability MSRs not read: " + p.cpu.vmx.msr_status);
    if (p.iommu.none_found())
        p.notes.push_back("IOMMU: none found");
    p.errata = match_errata(p);
    return p;
}

HostProfile probe_host()
{
    const CpuidTable cpuid = read_live_cpuid();
    const DevCpuMsr msrs(0, "/");
    std::unique_ptr<DevKvm> kvm;
    std::string kvm_error;
    try {
        kvm = std::make_unique<DevKvm>("/dev/kvm");
    } catch (const hv::Error& e) {
        kvm_error = e.what();
    }
    ProbeSources s;
    s.cpuid = &cpuid;
    s.msrs = &msrs;
    s.kvm = kvm.get();
    s.kvm_error = kvm_error;
    s.root = "/";
    return build_profile(s);
}

}  // namespace hv::host
