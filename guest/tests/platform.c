/* The guest platform contract (docs/guest-runtime.md): multiboot info as QEMU fills it, fw_cfg, the
 * ACPI tables (RSDP, RSDT/XSDT, FADT with the PM timer, MADT), the PM timer, the 8259 mask, and
 * unclaimed ports reading as all-ones. Prints the command line and the first module so the
 * host-side test can compare them with what it passed. */
#include "rt.h"

struct __attribute__((packed)) acpi_header {
    char sig[4];
    uint32_t length;
    uint8_t revision, checksum;
    char oem[6], oem_table[8];
    uint32_t oem_rev, creator, creator_rev;
};

static uint8_t sum(const void* p, size_t n)
{
    const uint8_t* b = p;
    uint8_t s = 0;
    for (size_t i = 0; i < n; ++i)
        s = (uint8_t)(s + b[i]);
    return s;
}

static const uint8_t* find_rsdp(void)
{
    for (uintptr_t a = 0xe0000; a < 0x100000; a += 16)
        if (memcmp((const void*)a, "RSD PTR ", 8) == 0 && sum((const void*)a, 20) == 0)
            return (const uint8_t*)a;
    return 0;
}

static void check_multiboot(void)
{
    const struct rt_multiboot_info* mb = rt_multiboot();
    rt_check(rt_mb_magic == 0x2BADB002, "EAX held the multiboot magic");
    rt_check((mb->flags & 0x4d) == 0x4d, "info flags: memory, cmdline, modules, mmap (%#x)",
             mb->flags);
    rt_check(mb->mem_lower == 639, "mem_lower is 639 KiB (%u)", mb->mem_lower);
    rt_printf("cmdline: %s\n", (const char*)(uintptr_t)mb->cmdline);
    uint64_t usable = 0;
    for (uint32_t off = 0; off < mb->mmap_length;) {
        const uint8_t* e = (const uint8_t*)(uintptr_t)(mb->mmap_addr + off);
        uint32_t size;
        uint64_t len;
        uint32_t type;
        memcpy(&size, e, 4);
        memcpy(&len, e + 12, 8);
        memcpy(&type, e + 20, 4);
        if (type == 1)
            usable += len;
        off += size + 4;
    }
    uint64_t ram = 0;
    rt_fw_cfg_read(0x03, &ram, sizeof ram);
    rt_check(usable <= ram && usable + (1 << 20) >= ram,
             "memory map covers the RAM fw_cfg reports (%lu of %lu bytes)", usable, ram);
    rt_printf("modules: %u\n", mb->mods_count);
    if (mb->mods_count) {
        const struct rt_multiboot_module* m =
            (const struct rt_multiboot_module*)(uintptr_t)mb->mods_addr;
        char head[33] = {0};
        uint32_t n = m->end - m->start < 32 ? m->end - m->start : 32;
        memcpy(head, (const void*)(uintptr_t)m->start, n);
        for (uint32_t i = 0; i < n; ++i)
            if (head[i] == '\n')
                head[i] = 0;
        rt_printf("module 0: '%s' %u bytes, page aligned: %s, starts: %s\n",
                  (const char*)(uintptr_t)m->string, m->end - m->start,
                  (m->start & 0xfff) ? "no" : "yes", head);
    }
}

static unsigned check_fw_cfg(void)
{
    char sig[5] = {0};
    rt_fw_cfg_read(0x00, sig, 4);
    rt_check(memcmp(sig, "QEMU", 4) == 0, "fw_cfg signature is QEMU ('%s')", sig);
    uint32_t id = 0;
    rt_fw_cfg_read(0x01, &id, 4);
    rt_check(id & 1, "fw_cfg ID has the traditional interface bit (%#x)", id);
    uint16_t cpus = 0, max_cpus = 0;
    rt_fw_cfg_read(0x05, &cpus, 2);
    rt_fw_cfg_read(0x0f, &max_cpus, 2);
    rt_check(cpus >= 1 && max_cpus >= cpus, "fw_cfg CPU count %u, max %u", cpus, max_cpus);
    uint32_t unknown = 0xdeadbeef;
    rt_fw_cfg_read(0x7ff0, &unknown, 4);
    rt_check(unknown == 0, "an unknown fw_cfg key reads as zeros (%#x)", unknown);
    return cpus;
}

static const struct acpi_header* find_table(const struct acpi_header* rsdt, const char* sig)
{
    const uint32_t* ptrs = (const uint32_t*)(rsdt + 1);
    unsigned n = (rsdt->length - sizeof *rsdt) / 4;
    for (unsigned i = 0; i < n; ++i) {
        const struct acpi_header* t = (const struct acpi_header*)(uintptr_t)ptrs[i];
        if (memcmp(t->sig, sig, 4) == 0)
            return t;
    }
    return 0;
}

static void check_acpi(unsigned cpus)
{
    const uint8_t* rsdp = find_rsdp();
    if (!rt_check(rsdp != 0, "RSDP found in the BIOS area"))
        return;
    uint32_t rsdt_addr;
    memcpy(&rsdt_addr, rsdp + 16, 4);
    const struct acpi_header* rsdt = (const struct acpi_header*)(uintptr_t)rsdt_addr;
    rt_check(memcmp(rsdt->sig, "RSDT", 4) == 0 && sum(rsdt, rsdt->length) == 0, "RSDT valid at %#x",
             rsdt_addr);
    const struct acpi_header* madt = find_table(rsdt, "APIC");
    if (!rt_check(madt && sum(madt, madt->length) == 0, "MADT present with a valid checksum"))
        return;
    unsigned lapics = 0, ioapics = 0;
    const uint8_t *p = (const uint8_t*)madt + 44, *end = (const uint8_t*)madt + madt->length;
    while (p + 2 <= end && p[1] >= 2) {
        if (p[0] == 0 && (p[4] & 1))
            ++lapics;
        if (p[0] == 1)
            ++ioapics;
        p += p[1];
    }
    rt_check(lapics == cpus, "MADT lists %u enabled local APICs (fw_cfg: %u)", lapics, cpus);
    rt_check(ioapics == 1, "MADT lists one IOAPIC (%u)", ioapics);
    const struct acpi_header* fadt = find_table(rsdt, "FACP");
    if (!rt_check(fadt && sum(fadt, fadt->length) == 0, "FADT present with a valid checksum"))
        return;
    uint32_t pm_tmr;
    memcpy(&pm_tmr, (const uint8_t*)fadt + 76, 4);
    rt_check(pm_tmr != 0, "FADT names the PM timer block (%#x)", pm_tmr);
    uint32_t a = inl((uint16_t)pm_tmr), b = a;
    for (int i = 0; i < 1000 && b == a; ++i)
        b = inl((uint16_t)pm_tmr);
    rt_check(b != a, "the PM timer counts (%u -> %u)", a, b);
}

void guest_main(void)
{
    check_multiboot();
    unsigned cpus = check_fw_cfg();
    check_acpi(cpus);
    outb(0x21, 0xfb);
    rt_check(inb(0x21) == 0xfb, "the 8259 mask reads back what was written");
    rt_check(inb(0x2f0) == 0xff, "an unclaimed port reads as all-ones");
}
