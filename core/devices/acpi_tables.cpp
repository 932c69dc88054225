#include "core/devices/acpi_tables.hpp"

#include <cstring>

#include "core/base/error.hpp"
#include "core/bus/memory.hpp"

namespace hv::dev {

namespace {

constexpr char kOemId[7] = "HVACCL";
constexpr char kOemTableId[9] = "HVACCEL ";

class Table {
  public:
    std::vector<std::uint8_t> b;

    void u8(std::uint64_t v) { b.push_back(static_cast<std::uint8_t>(v)); }
    void u16(std::uint64_t v) { put(v, 2); }
    void u32(std::uint64_t v) { put(v, 4); }
    void u64(std::uint64_t v) { put(v, 8); }
    void bytes(const char* s, std::size_t n) { b.insert(b.end(), s, s + n); }
    void zeros(std::size_t n) { b.insert(b.end(), n, 0); }
    void put(std::uint64_t v, unsigned n)
    {
        for (unsigned i = 0; i < n; ++i)
            b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    void set_u32(std::size_t off, std::uint32_t v)
    {
        for (unsigned i = 0; i < 4; ++i)
            b[off + i] = static_cast<std::uint8_t>(v >> (8 * i));
    }
    // ACPI 6.4 5.2.6 "System Description Table Header".
    void header(const char sig[4], std::uint8_t revision)
    {
        bytes(sig, 4);
        u32(0);  // length, patched by finish()
        u8(revision);
        u8(0);  // checksum, patched by finish()
        bytes(kOemId, 6);
        bytes(kOemTableId, 8);
        u32(1);
        bytes("HVAC", 4);
        u32(1);
    }
    void finish()
    {
        set_u32(4, static_cast<std::uint32_t>(b.size()));
        b[9] = 0;
        b[9] = static_cast<std::uint8_t>(0x100 - acpi_checksum(b.data(), b.size()));
    }
};

// Generic Address Structure (ACPI 6.4 5.2.3.2) for a system-I/O register.
void gas_io(Table& t, std::uint16_t port, std::uint8_t bits)
{
    t.u8(1);  // system I/O space
    t.u8(bits);
    t.u8(0);
    t.u8(bits == 32 ? 3 : bits == 16 ? 2 : 1);
    t.u64(port);
}

Table make_fadt(const AcpiConfig& c, std::uint32_t facs, std::uint32_t dsdt)
{
    // ACPI 6.4 5.2.9 "Fixed ACPI Description Table"; revision 4 layout (244 bytes).
    Table t;
    t.header("FACP", 4);
    t.u32(facs);
    t.u32(dsdt);
    t.u8(0);                // reserved (INT_MODEL in 1.0)
    t.u8(0);                // preferred PM profile: unspecified
    t.u16(9);               // SCI_INT
    t.u32(0);               // SMI_CMD: none, ACPI mode is always on
    t.zeros(4);             // ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
    t.u32(c.pm_base);       // PM1a_EVT_BLK
    t.u32(0);               // PM1b_EVT_BLK
    t.u32(c.pm_base + 4u);  // PM1a_CNT_BLK
    t.u32(0);               // PM1b_CNT_BLK
    t.u32(0);               // PM2_CNT_BLK
    t.u32(c.pm_base + 8u);  // PM_TMR_BLK
    t.u32(0);               // GPE0_BLK
    t.u32(0);               // GPE1_BLK
    t.u8(4);                // PM1_EVT_LEN
    t.u8(2);                // PM1_CNT_LEN
    t.u8(0);                // PM2_CNT_LEN
    t.u8(4);                // PM_TMR_LEN
    t.zeros(4);             // GPE0/1 lengths, GPE1_BASE, CST_CNT
    t.u16(0xfff);           // P_LVL2_LAT: C2 not supported
    t.u16(0xfff);           // P_LVL3_LAT: C3 not supported
    t.zeros(4 + 2 + 3);     // FLUSH_SIZE/STRIDE, DUTY_*, RTC alarms/century
    t.u16(0);               // IAPC_BOOT_ARCH
    t.u8(0);
    t.u32((1u << 0) | (1u << 8));  // WBINVD, TMR_VAL_EXT (32-bit PM timer)
    t.zeros(12 + 1 + 2 + 1);       // RESET_REG, RESET_VALUE, ARM_BOOT_ARCH, minor version
    t.u64(facs);                   // X_FIRMWARE_CTRL
    t.u64(dsdt);                   // X_DSDT
    gas_io(t, c.pm_base, 32);      // X_PM1a_EVT_BLK
    t.zeros(12);
    gas_io(t, static_cast<std::uint16_t>(c.pm_base + 4), 16);  // X_PM1a_CNT_BLK
    t.zeros(12 + 12);
    gas_io(t, static_cast<std::uint16_t>(c.pm_base + 8), 32);  // X_PM_TMR_BLK
    t.zeros(12 + 12);
    t.finish();
    return t;
}

Table make_madt(const AcpiConfig& c)
{
    // ACPI 6.4 5.2.12 "Multiple APIC Description Table".
    Table t;
    t.header("APIC", 5);
    t.u32(c.lapic_base);
    t.u32(1);  // PCAT_COMPAT: dual 8259s present
    for (unsigned i = 0; i < c.cpus; ++i) {
        t.u8(0);  // Processor Local APIC
        t.u8(8);
        t.u8(i);   // ACPI processor UID
        t.u8(i);   // APIC ID
        t.u32(1);  // enabled
    }
    t.u8(1);  // I/O APIC
    t.u8(12);
    t.u8(c.ioapic_id);
    t.u8(0);
    t.u32(c.ioapic_base);
    t.u32(0);  // GSI base
    // ISA IRQ 0 (PIT) is wired to GSI 2, as on every PC.
    t.u8(2);
    t.u8(10);
    t.u8(0);
    t.u8(0);
    t.u32(2);
    t.u16(0);
    // SCI: IRQ 9, level-triggered, active high.
    t.u8(2);
    t.u8(10);
    t.u8(0);
    t.u8(9);
    t.u32(9);
    t.u16(0x000d);
    // LINT1 of every processor is the NMI input.
    t.u8(4);
    t.u8(6);
    t.u8(0xff);
    t.u16(0);
    t.u8(1);
    t.finish();
    return t;
}

}  // namespace

std::uint8_t acpi_checksum(const std::uint8_t* p, std::size_t n)
{
    unsigned sum = 0;
    for (std::size_t i = 0; i < n; ++i)
        sum += p[i];
    return static_cast<std::uint8_t>(sum);
}

void write_acpi_tables(const GuestMemory& mem, const AcpiConfig& cfg)
{
    if (cfg.cpus == 0 || cfg.cpus > 255)
        fail("ACPI: {} CPUs cannot be described with xAPIC IDs", cfg.cpus);
    std::uint64_t next = kRsdpAddr + 64;
    auto place = [&](const Table& t, std::uint64_t align) {
        next = (next + align - 1) & ~(align - 1);
        std::uint64_t at = next;
        if (at + t.b.size() > kAcpiTablesEnd)
            fail("ACPI tables do not fit below {:#x}", kAcpiTablesEnd);
        mem.write_checked(at, t.b.data(), t.b.size());
        next += t.b.size();
        return static_cast<std::uint32_t>(at);
    };

    Table facs;  // ACPI 6.4 5.2.10: no checksum, 64-byte aligned
    facs.bytes("FACS", 4);
    facs.u32(64);
    facs.zeros(56);
    std::uint32_t facs_at = place(facs, 64);

    Table dsdt;
    dsdt.header("DSDT", 2);
    dsdt.finish();
    std::uint32_t dsdt_at = place(dsdt, 16);
    std::uint32_t fadt_at = place(make_fadt(cfg, facs_at, dsdt_at), 16);
    std::uint32_t madt_at = place(make_madt(cfg), 16);

    Table rsdt;
    rsdt.header("RSDT", 1);
    rsdt.u32(fadt_at);
    rsdt.u32(madt_at);
    rsdt.finish();
    std::uint32_t rsdt_at = place(rsdt, 16);

    Table xsdt;
    xsdt.header("XSDT", 1);
    xsdt.u64(fadt_at);
    xsdt.u64(madt_at);
    xsdt.finish();
    std::uint32_t xsdt_at = place(xsdt, 16);

    // ACPI 6.4 5.2.5.3 "Root System Description Pointer Structure" (revision 2, 36 bytes).
    Table rsdp;
    rsdp.bytes("RSD PTR ", 8);
    rsdp.u8(0);
    rsdp.bytes(kOemId, 6);
    rsdp.u8(2);
    rsdp.u32(rsdt_at);
    rsdp.u32(36);
    rsdp.u64(xsdt_at);
    rsdp.u8(0);
    rsdp.zeros(3);
    rsdp.b[8] = static_cast<std::uint8_t>(0x100 - acpi_checksum(rsdp.b.data(), 20));
    rsdp.b[32] = static_cast<std::uint8_t>(0x100 - acpi_checksum(rsdp.b.data(), 36));
    mem.write_checked(kRsdpAddr, rsdp.b.data(), rsdp.b.size());
}

}  // namespace hv::dev
