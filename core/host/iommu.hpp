// The host IOMMUs and whether they can post interrupts.
//
// Intel VT-d units appear as /sys/class/iommu/dmarN with intel-iommu/{cap,ecap}; AMD IOMMUs as
// /sys/class/iommu/ivhdN with amd-iommu/features. The ACPI DMAR/IVRS tables, when readable,
// add the firmware's view. CPU posted interrupts (VMX) and IOMMU posted interrupts (VT-d PI,
// AMD GA) are separate capabilities and are detected separately.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/host/acpi.hpp"

namespace hv::host {

struct VtdUnit {
    std::string name;  // "dmar0"
    std::uint64_t cap = 0, ecap = 0;
    // VT-d spec 11.4.2 "Capability Register": bit 59 PI (posted interrupts supported);
    // same bit as Linux cap_pi_support().
    bool posted_interrupts() const { return ((cap >> 59) & 1u) != 0; }
    // VT-d 11.4.3 "Extended Capability Register": bit 3 IR, bit 4 EIM (x2APIC destinations).
    bool interrupt_remapping() const { return ((ecap >> 3) & 1u) != 0; }
    bool extended_interrupt_mode() const { return ((ecap >> 4) & 1u) != 0; }
};

struct AmdIommuUnit {
    std::string name;                        // "ivhd0"
    std::uint64_t features = 0;              // Extended Feature Register (EFR)
    std::optional<std::uint64_t> features2;  // EFR2, newer kernels print "efr:efr2"
    // AMD IOMMU spec 48882 "MMIO Offset 0030h IOMMU Extended Feature Register":
    // bit 7 GASup (guest virtual APIC), bit 2 XTSup (x2APIC); Linux FEATURE_GA / FEATURE_X2APIC.
    bool ga() const { return ((features >> 7) & 1u) != 0; }
    bool xt() const { return ((features >> 2) & 1u) != 0; }
};

struct IommuInfo {
    std::vector<VtdUnit> vtd;
    std::vector<AmdIommuUnit> amd;
    std::optional<AcpiDmar> dmar;
    std::optional<AcpiIvrs> ivrs;
    std::string acpi_note;                       // e.g. "no DMAR or IVRS table"
    std::vector<std::string> unreadable_tables;  // present but root-only: "DMAR", "IVRS"
    std::vector<std::string> errors;             // readers that failed, one clear line each

    bool none_found() const
    {
        return vtd.empty() && amd.empty() && !dmar && !ivrs && unreadable_tables.empty();
    }
    // True only when at least one unit exists and every unit can post.
    bool vtd_posting() const;
    bool amd_ga() const;
};

// Parsers for the sysfs attribute texts (throw hv::Error quoting the text on garbage).
VtdUnit parse_vtd_unit(const std::string& name, const std::string& cap_text,
                       const std::string& ecap_text);
AmdIommuUnit parse_amd_unit(const std::string& name, const std::string& features_text);

// Reads units and tables under `root`; per-item failures land in IommuInfo::errors.
IommuInfo read_iommu(const std::filesystem::path& root);

}  // namespace hv::host
