// ACPI tables that describe the IOMMUs: Intel's DMAR and AMD's IVRS.
//
// Parsed from the bytes of /sys/firmware/acpi/tables/{DMAR,IVRS} (root-only files). The tables
// come from firmware and are treated as untrusted input: every length is checked against the
// bytes actually present, and anything inconsistent raises hv::Error naming the table and offset.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hv::host {

// VT-d spec 8.1 "DMA Remapping Reporting Structure".
struct AcpiDmar {
    std::uint8_t host_address_width = 0;  // value + 1 = physical address bits
    std::uint8_t flags = 0;
    bool intr_remap() const { return (flags & 0x1) != 0; }      // bit 0 INTR_REMAP
    bool x2apic_opt_out() const { return (flags & 0x2) != 0; }  // bit 1 X2APIC_OPT_OUT
    struct Drhd {
        std::uint8_t flags = 0;  // bit 0 INCLUDE_PCI_ALL
        std::uint16_t segment = 0;
        std::uint64_t register_base = 0;
    };
    std::vector<Drhd> drhds;        // type 0 structures (one per remapping unit)
    unsigned other_structures = 0;  // RMRR, ATSR, RHSA, ANDD, SATC, ...
};

// AMD IOMMU spec 48882 "I/O Virtualization Reporting Structure (IVRS)" and its "I/O
// Virtualization Hardware Definition (IVHD) Block"; Linux drivers/iommu/amd/init.c ivhd_header.
struct AcpiIvrs {
    std::uint32_t ivinfo = 0;  // bit 0 EFRSup
    struct Ivhd {
        std::uint8_t type = 0;  // 0x10, 0x11 or 0x40
        std::uint8_t flags = 0;
        std::uint16_t device_id = 0;
        std::uint16_t segment = 0;
        std::uint64_t base = 0;
        std::uint32_t feature_info = 0;    // type 10h "IOMMU Feature Reporting"; else attributes
        std::optional<std::uint64_t> efr;  // type 11h/40h: EFR register image
        // Guest virtual APIC (GA) support: type 10h feature reporting bit 6 (Linux
        // IOMMU_FEAT_GASUP_SHIFT), type 11h/40h EFR bit 7 (IOMMU_EFR_GASUP_SHIFT).
        bool ga_support() const;
    };
    std::vector<Ivhd> ivhds;
    unsigned other_blocks = 0;  // IVMD blocks
};

// Throw hv::Error on a truncated, mis-signed or inconsistent table.
AcpiDmar parse_dmar(std::string_view bytes);
AcpiIvrs parse_ivrs(std::string_view bytes);

}  // namespace hv::host
