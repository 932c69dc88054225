/* One vCPU's local APIC: self-IPI with ISR/EOI, nested interrupts and EOI order, TPR and CR8
 * masking, the three timer modes, an illegal vector setting ESR, and the x2APIC switch at run
 * time.
 * Waits use sti; hlt (never a ring-0 spin), bounded. */
#include "apic.h"

static volatile unsigned count[256];
static volatile uint8_t order[8];
static volatile unsigned order_n;
static volatile bool nest;

static void on_irq(struct rt_frame* f)
{
    uint8_t v = (uint8_t)f->vector;
    ++count[v];
    if (order_n < 8)
        order[order_n++] = v;
    if (v == 0x40 && nest) {
        /* While 0x40 is in service, a higher-class self-IPI preempts it (SDM Vol3 11.8.3). */
        nest = false;
        apic_icr(0, ICR_SELF | 0x60);
        sti();
        for (int i = 0; i < 50 && !count[0x60]; ++i)
            __asm__ volatile("hlt");
        cli();
    }
    apic_eoi();
}

/* Waits until count[v] reaches n, sleeping in HLT; at most `tries` wake-ups. */
static bool wait_count(uint8_t v, unsigned n, int tries)
{
    for (int i = 0; i < tries && count[v] < n; ++i)
        rt_wait_irq();
    return count[v] >= n;
}

static void self_ipi(void)
{
    apic_icr(0, ICR_SELF | 0x40);
    bool ok = wait_count(0x40, 1, 100);
    rt_check(ok, "[11.6.1] self-IPI 0x40 delivered (%u)", count[0x40]);
    rt_check(!apic_isr(0x40) && !apic_irr(0x40), "[11.8.5] ISR and IRR clear after EOI");

    /* With interrupts off the IPI stays pending in IRR. */
    apic_icr(0, ICR_SELF | 0x41);
    rt_check(apic_irr(0x41), "[11.8.4] a self-IPI with IF=0 waits in IRR");
    rt_check(wait_count(0x41, 1, 100), "[11.8.4] and is taken at sti; hlt");
}

static void nested(void)
{
    order_n = 0;
    nest = true;
    apic_icr(0, ICR_SELF | 0x40);
    wait_count(0x60, 1, 100);
    wait_count(0x40, 2, 100);
    rt_check(order_n == 2 && order[0] == 0x40 && order[1] == 0x60,
             "[11.8.3] 0x60 nests inside 0x40 (order %#x %#x)", order[0], order[1]);
}

static void tpr(void)
{
    apic_write(APIC_TPR, 0x50);
    apic_icr(0, ICR_SELF | 0x45);
    sti();
    for (int i = 0; i < 20; ++i)
        __asm__ volatile("nop");
    cli();
    rt_check(count[0x45] == 0 && apic_irr(0x45), "[11.8.3.1] TPR 0x50 holds back vector 0x45");
    rt_check(apic_read(APIC_PPR) == 0x50, "[11.8.3.1] PPR follows TPR (%#x)", apic_read(APIC_PPR));
    apic_write(APIC_TPR, 0);
    rt_check(wait_count(0x45, 1, 100), "[11.8.3.1] lowering TPR delivers it");
}

/* SDM 11.8.6.1: CR8[3:0] is TPR[7:4]. A MOV to CR8 sets the TPR (bits 3:0 cleared), a TPR
 * write shows in CR8, CR8 masks interrupts as the TPR does, and the two still agree after an
 * APIC reset through IA32_APIC_BASE (11.4.3). */
static void tpr_cr8(void)
{
    write_cr8(5);
    rt_check(apic_read(APIC_TPR) == 0x50, "[11.8.6.1] MOV to CR8 sets TPR[7:4] (%#x)",
             apic_read(APIC_TPR));
    apic_write(APIC_TPR, 0x7a);
    rt_check(read_cr8() == 7, "[11.8.6.1] a TPR write shows in CR8 (%u)", read_cr8());
    write_cr8(4);
    apic_icr(0, ICR_SELF | 0x46);
    sti();
    for (int i = 0; i < 20; ++i)
        __asm__ volatile("nop");
    cli();
    rt_check(count[0x46] == 0 && apic_irr(0x46), "[11.8.6.1] CR8 4 holds back vector 0x46");
    write_cr8(0);
    rt_check(wait_count(0x46, 1, 100), "[11.8.6.1] lowering CR8 delivers it");
    uint64_t b = rdmsr(MSR_APIC_BASE);
    write_cr8(6);
    wrmsr(MSR_APIC_BASE, b & ~(1ull << 11));
    wrmsr(MSR_APIC_BASE, b);
    rt_check(apic_read(APIC_TPR) == read_cr8() << 4,
             "[11.8.6.1] after an APIC reset TPR is CR8 << 4 (TPR %#x, CR8 %u)",
             apic_read(APIC_TPR), read_cr8());
    write_cr8(9);
    rt_check(apic_read(APIC_TPR) == 0x90, "[11.8.6.1] and a later MOV to CR8 shows in TPR (%#x)",
             apic_read(APIC_TPR));
    write_cr8(0);
    apic_enable(0xff);
}

static void timers(void)
{
    /* A count that lasts minutes (2^32 - 1 at divide-by-128 of the 1 GHz clock): read at once,
     * it is below its start and not 0 on any machine, however loaded. Then stopped. */
    apic_write(APIC_TDCR, 0xa); /* divide by 128 */
    apic_write(APIC_LVT_TIMER, LVT_MASKED | TIMER_ONESHOT | 0x50);
    apic_write(APIC_TMICT, 0xffffffffu);
    uint32_t cc = apic_read(APIC_TMCCT);
    rt_check(cc > 0 && cc <= 0xffffffffu, "[11.5.4] one-shot current count counts down (%u)", cc);
    /* SDM 11.5.4: switching between one-shot and periodic resets nothing. */
    apic_write(APIC_LVT_TIMER, LVT_MASKED | TIMER_PERIODIC | 0x50);
    uint32_t after = apic_read(APIC_TMCCT);
    rt_check(apic_read(APIC_TMICT) == 0xffffffffu && after > 0 && after <= cc,
             "[11.5.4] one-shot -> periodic keeps TMICT and the count (%u, was %u)", after, cc);
    apic_write(APIC_LVT_TIMER, LVT_MASKED | TIMER_ONESHOT | 0x50);
    rt_check(apic_read(APIC_TMICT) == 0xffffffffu && apic_read(APIC_TMCCT) > 0,
             "[11.5.4] periodic -> one-shot keeps TMICT and the count");
    apic_write(APIC_TMICT, 0);
    rt_check(apic_read(APIC_TMCCT) == 0, "[11.5.4] writing TMICT 0 stops the count");

    apic_write(APIC_TDCR, 0xb); /* divide by 1 */
    apic_write(APIC_LVT_TIMER, TIMER_ONESHOT | 0x50);
    apic_write(APIC_TMICT, 2000000);
    rt_check(wait_count(0x50, 1, 1000), "[11.5.4] one-shot timer fired");
    rt_check(apic_read(APIC_TMCCT) == 0, "[11.5.4] and stopped at 0");

    apic_write(APIC_LVT_TIMER, TIMER_PERIODIC | 0x51);
    apic_write(APIC_TMICT, 1000000);
    bool ok = wait_count(0x51, 3, 3000);
    rt_check(ok, "[11.5.4] periodic timer fired 3 times (%u)", count[0x51]);
    apic_write(APIC_LVT_TIMER, LVT_MASKED | 0x51);
    apic_write(APIC_TMICT, 0);

    uint32_t r[4];
    rt_cpuid(1, 0, r);
    if (rt_check(r[2] & (1u << 24), "[11.5.4.1] CPUID advertises the TSC-deadline timer")) {
        apic_write(APIC_LVT_TIMER, TIMER_TSC_DEADLINE | 0x52);
        wrmsr(MSR_TSC_DEADLINE, rdtsc() + 2000000);
        rt_check(wait_count(0x52, 1, 1000), "[11.5.4.1] TSC-deadline timer fired");
        rt_check(rdmsr(MSR_TSC_DEADLINE) == 0,
                 "[11.5.4.1] and IA32_TSC_DEADLINE reads 0 afterwards");
        /* SDM 11.5.4.1: leaving TSC-deadline mode disarms the timer. */
        apic_write(APIC_LVT_TIMER, LVT_MASKED | TIMER_TSC_DEADLINE | 0x52);
        wrmsr(MSR_TSC_DEADLINE, rdtsc() + (1ull << 50));
        apic_write(APIC_LVT_TIMER, LVT_MASKED | TIMER_ONESHOT | 0x52);
        rt_check(rdmsr(MSR_TSC_DEADLINE) == 0 && apic_read(APIC_TMCCT) == 0,
                 "[11.5.4.1] leaving TSC-deadline mode disarms the timer");
    }
}

/* SDM 11.4.6: the xAPIC ID register is writable; resetting the APIC through IA32_APIC_BASE
 * (disable, enable) gives its power-up value, the initial APIC ID (11.4.7.1). */
static void id_after_reset(void)
{
    apic_write(APIC_ID, 7u << 24);
    rt_check(apic_read(APIC_ID) >> 24 == 7, "[11.4.6] the xAPIC ID register is writable");
    uint64_t b = rdmsr(MSR_APIC_BASE);
    uint32_t r[4];
    wrmsr(MSR_APIC_BASE, b & ~(1ull << 11));
    /* SDM 11.4.3: with IA32_APIC_BASE[11] clear, CPUID.01H:EDX[9] reports no APIC. */
    rt_cpuid(1, 0, r);
    rt_check(!(r[3] & (1u << 9)), "[11.4.3] CPUID reports the APIC absent while it is disabled");
    wrmsr(MSR_APIC_BASE, b);
    rt_cpuid(1, 0, r);
    rt_check(r[3] & (1u << 9), "[11.4.3] and present again once it is enabled");
    rt_check(apic_read(APIC_ID) >> 24 == 0,
             "[11.4.7.1] an APIC reset restores the initial APIC ID (%#x)", apic_read(APIC_ID));
    apic_enable(0xff);
}

static void esr(void)
{
    apic_write(APIC_ESR, 0);
    apic_icr(0, ICR_SELF | 0x05); /* vectors 0-15 are illegal */
    apic_write(APIC_ESR, 0);
    uint32_t e = apic_read(APIC_ESR);
    rt_check(e & (1u << 5), "[11.5.3] an illegal vector sets ESR 'send illegal vector' (%#x)", e);
    apic_write(APIC_ESR, 0);
    apic_write(APIC_ESR, 0);
    rt_check(apic_read(APIC_ESR) == 0, "[11.5.3] ESR clears after write-then-read");
}

static void x2apic(void)
{
    uint32_t r[4];
    rt_cpuid(1, 0, r);
    if (!rt_check(r[2] & (1u << 21), "[11.12.1] CPUID advertises x2APIC"))
        return;
    /* SDM 11.12.5.1: the x2APIC ID is the initial APIC ID (CPUID.0BH:EDX, CPUID.01H:EBX[31:24]),
     * whatever was written into the xAPIC ID register before the switch. */
    uint32_t xid = r[1] >> 24;
    apic_write(APIC_ID, 9u << 24);
    apic_enable_x2apic();
    rt_check(apic_id() == xid, "[11.12.5.1] x2APIC ID is the initial APIC ID (%u)", apic_id());
    rt_check(apic_read(APIC_LDR) == ((xid >> 4) << 16 | (1u << (xid & 15))),
             "[11.12.10.2] x2APIC LDR is derived from the ID (%#x)", apic_read(APIC_LDR));
    wrmsr(0x83f, 0x42); /* SELF_IPI */
    rt_check(wait_count(0x42, 1, 100), "[11.12.11] x2APIC SELF_IPI delivered");
    apic_icr(xid, 0x43);
    rt_check(wait_count(0x43, 1, 100), "[11.12.9] x2APIC ICR to our own ID delivered");
}

void guest_main(void)
{
    for (unsigned v = 0x20; v < 0x100; ++v)
        rt_set_handler((uint8_t)v, on_irq);
    apic_enable(0xff);
    rt_check(apic_id() == 0, "[11.4.6] BSP APIC ID is 0");
    rt_check((apic_read(APIC_VERSION) & 0xff) >= 0x10, "[11.4.8] integrated APIC version (%#x)",
             apic_read(APIC_VERSION));
    self_ipi();
    nested();
    tpr();
    tpr_cr8();
    timers();
    esr();
    id_after_reset();
    x2apic();
}
