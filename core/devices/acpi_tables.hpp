// The minimal ACPI set guests look for (ACPI 6.4 ch. 5): an RSDP in the BIOS area (found by the
// 16-byte-aligned scan of 0xE0000-0xFFFFF), RSDT and XSDT, a FADT naming the PM timer, a DSDT
// without AML, a FACS, and a MADT listing each vCPU's local APIC and the IOAPIC.
#pragma once

#include <cstdint>
#include <vector>

namespace hv {
class GuestMemory;
}

namespace hv::dev {

struct AcpiConfig {
    unsigned cpus = 1;
    std::uint32_t lapic_base = 0xfee00000;
    std::uint32_t ioapic_base = 0xfec00000;
    std::uint8_t ioapic_id = 0;  // placed after the vCPUs' APIC IDs by the caller
    std::uint16_t pm_base = 0x600;
};

inline constexpr std::uint64_t kRsdpAddr = 0xe0000;
inline constexpr std::uint64_t kAcpiTablesEnd = 0xf0000;

// Writes the tables into guest memory at kRsdpAddr onwards. Throws when they do not fit.
void write_acpi_tables(const GuestMemory& mem, const AcpiConfig& cfg);

// Sum of bytes modulo 256 (0 for a table with a valid checksum). Exposed for tests.
std::uint8_t acpi_checksum(const std::uint8_t* p, std::size_t n);

}  // namespace hv::dev
