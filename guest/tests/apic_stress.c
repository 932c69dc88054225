/* A hostile guest: thousands of random writes to every xAPIC register (MMIO) and every x2APIC
 * MSR, random IA32_APIC_BASE values, random reads. Faults (#GP for reserved x2APIC MSRs and bits,
 * illegal mode transitions) are caught and counted; stray interrupts are counted and EOIed. The
 * VMM must keep running, and afterwards the APIC, reset through IA32_APIC_BASE, works again. */
#include "apic.h"

static uint64_t seed = 0x9e3779b97f4a7c15ull;
static volatile uint64_t resume_at;
static volatile unsigned faults, irqs, nmis, got77;

static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static void on_fault(struct rt_frame* f)
{
    ++faults;
    f->rip = resume_at;
}

static void on_irq(struct rt_frame* f)
{
    ++irqs;
    if (f->vector == 0x77)
        ++got77;
    if (apic_x2())
        wrmsr(0x80b, 0);
    else
        *(volatile uint32_t*)0xfee000b0ul = 0;
}

static void on_nmi(struct rt_frame* f)
{
    (void)f;
    ++nmis;
}

static void try_wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("lea 1f(%%rip), %%r8\n\tmov %%r8, resume_at(%%rip)\n\twrmsr\n1:" ::"c"(msr),
                     "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
                     : "r8", "memory");
}

static uint64_t try_rdmsr(uint32_t msr)
{
    uint32_t lo = 0, hi = 0;
    __asm__ volatile("lea 1f(%%rip), %%r8\n\tmov %%r8, resume_at(%%rip)\n\trdmsr\n1:"
                     : "+a"(lo), "+d"(hi)
                     : "c"(msr)
                     : "r8", "memory");
    return ((uint64_t)hi << 32) | lo;
}

/* Back to a known state: disabled, then xAPIC at the default base (SDM Vol3 11.4.3). */
static void reset_apic(void)
{
    try_wrmsr(MSR_APIC_BASE, 0xfee00000ull | (1u << 8));
    try_wrmsr(MSR_APIC_BASE, 0xfee00000ull | (1u << 8) | (1u << 11));
    __asm__ volatile("" ::: "memory");
}

void guest_main(void)
{
    for (unsigned v = 0; v < 32; ++v)
        rt_set_handler((uint8_t)v, on_fault);
    rt_set_handler(2, on_nmi);
    for (unsigned v = 32; v < 256; ++v)
        rt_set_handler((uint8_t)v, on_irq);
    apic_enable(0xff);

    /* xAPIC: random values to random registers (writes to the ICR send random IPIs, except INIT
     * and SIPI: an INIT to itself resets this CPU to the reset vector, where no firmware is). */
    for (int i = 0; i < 3000; ++i) {
        uint32_t reg = (uint32_t)(rnd() % 64) << 4;
        uint32_t v = (uint32_t)rnd();
        if (reg == APIC_ICR && ((v >> 8) & 7) >= 5)
            v &= ~(7u << 8);
        if (i % 3 == 0)
            (void)*(volatile uint32_t*)(0xfee00000ul + reg);
        else
            *(volatile uint32_t*)(0xfee00000ul + reg) = v;
        if (i % 500 == 0)
            rt_wait_irq_bounded();
    }
    rt_check(true, "3000 random xAPIC accesses survived (%u interrupts, %u NMIs)", irqs, nmis);

    /* x2APIC: every MSR of the range, random values and reads; reserved ones fault. */
    reset_apic();
    apic_enable_x2apic();
    unsigned before = faults;
    for (int i = 0; i < 3000; ++i) {
        uint32_t msr = 0x800 + (uint32_t)(rnd() % 256);
        uint64_t v = rnd() & (i % 2 ? 0xffffffffull : ~0ull);
        if (msr == 0x830 && ((v >> 8) & 7) >= 5)
            v &= ~(7ull << 8);
        if (i % 3 == 0)
            (void)try_rdmsr(msr);
        else
            try_wrmsr(msr, v);
        if (i % 500 == 0)
            rt_wait_irq_bounded();
    }
    rt_check(faults > before, "reserved x2APIC MSRs and bits raised #GP (%u)", faults - before);

    /* IA32_APIC_BASE: random values, most of them illegal. */
    for (int i = 0; i < 200; ++i)
        try_wrmsr(MSR_APIC_BASE, rnd());

    unsigned reset_faults = faults;
    reset_apic();
    rt_check(faults == reset_faults, "disable then xAPIC-enable through IA32_APIC_BASE is legal");
    apic_x2_forget();
    apic_enable(0xff);
    apic_write(APIC_TPR, 0);
    apic_write(APIC_LVT_TIMER, LVT_MASKED);
    for (int i = 0; i < 8; ++i)
        apic_eoi(); /* drain anything left in service */
    rt_check((rdmsr(MSR_APIC_BASE) & 0xfffffc00ull) == 0xfee00800ull,
             "the APIC is back in xAPIC mode at 0xfee00000 (%#lx)", rdmsr(MSR_APIC_BASE));
    apic_icr(0, ICR_SELF | 0x77);
    for (int i = 0; i < 100 && !got77; ++i)
        rt_wait_irq();
    rt_check(got77 == 1, "after the reset, a self-IPI to vector 0x77 is delivered once");
}
