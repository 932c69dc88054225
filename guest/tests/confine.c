/* Confinement (docs/reliability.md): guest physical addresses outside guest RAM reach no host
 * memory. Reads and writes just past the end of RAM, far past it, below the 3 GiB hole, between
 * the IOAPIC and the LAPIC, and in the PCI BAR window where no BAR is, all exit to hvaccel, which
 * finds no RAM and no device there: reads give all-ones, writes go nowhere, and each one is
 * counted (the host-side test compares the counts with --stats). RAM next to those addresses is
 * unchanged, and an IA32_APIC_BASE beyond the physical-address width takes #GP.
 * Run with --memory 64. Prints "confine: N outside-RAM reads, N writes". */
#include "apic.h"

static volatile uint64_t resume_at;
static volatile unsigned gp_faults;

static void on_gp(struct rt_frame* f)
{
    ++gp_faults;
    f->rip = resume_at;
}

static void try_wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("lea 1f(%%rip), %%r8\n\tmov %%r8, resume_at(%%rip)\n\twrmsr\n1:" ::"c"(msr),
                     "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
                     : "r8", "memory");
}

void guest_main(void)
{
    rt_set_handler(13, on_gp);
    uint64_t ram_end = ((uint64_t)rt_multiboot()->mem_upper + 1024) << 10;
    rt_check(ram_end == 64ull << 20, "64 MiB of RAM (%lu KiB)", (unsigned long)(ram_end >> 10));

    volatile uint32_t* last = (volatile uint32_t*)(uintptr_t)(ram_end - 4);
    *last = 0x5a5aa5a5u;
    const uint64_t outside[] = {ram_end, ram_end + 4096 - 4, ram_end + (1u << 20), 0xbffff000ull,
                                0xfed00000ull};
    const uint64_t window = 0xd0000000ull; /* PCI BAR window, no BAR there */
    unsigned n = sizeof outside / sizeof outside[0];

    bool all_ones = true;
    for (unsigned i = 0; i < n; ++i)
        all_ones = all_ones && *(volatile uint32_t*)(uintptr_t)outside[i] == 0xffffffffu;
    rt_check(all_ones, "%u reads outside RAM give all-ones", n);
    for (unsigned i = 0; i < n; ++i)
        *(volatile uint32_t*)(uintptr_t)outside[i] = 0x12345678u;
    bool still = true;
    for (unsigned i = 0; i < n; ++i)
        still = still && *(volatile uint32_t*)(uintptr_t)outside[i] == 0xffffffffu;
    rt_check(still, "%u writes outside RAM went nowhere", n);
    rt_check(*last == 0x5a5aa5a5u, "the last word of RAM is unchanged");
    *(volatile uint32_t*)(uintptr_t)window = 0x12345678u;
    rt_check(*(volatile uint32_t*)(uintptr_t)window == 0xffffffffu,
             "the PCI window where no BAR is reads all-ones after a write");

    uint32_t r[4];
    rt_cpuid(0x80000008, 0, r);
    unsigned maxphy = r[0] & 0xff;
    uint64_t base = rdmsr(MSR_APIC_BASE);
    try_wrmsr(MSR_APIC_BASE, (base & 0xfffull) | (1ull << maxphy) | 0xfee00000ull);
    rt_check(gp_faults == 1 && rdmsr(MSR_APIC_BASE) == base,
             "an APIC base beyond the %u-bit physical-address width takes #GP", maxphy);
    rt_printf("confine: %u outside-RAM reads, %u writes\n", 2 * n, n);
}
