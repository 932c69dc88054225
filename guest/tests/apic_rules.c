/* Architectural rules of the local APIC that the other guests do not reach: IA32_APIC_BASE
 * transitions that must fault, the x2APIC MSRs that must fault, registers xAPIC mode does not
 * have, the ICR's delivery status, LVT masking while the APIC is software-disabled, and the
 * registers an INIT resets. Each check names its SDM Vol3 section. Run with 2+ vCPUs (the INIT
 * check uses AP 1); the x2APIC checks run where CPUID offers x2APIC. */
#include "apic.h"
#include "smp.h"

#define APIC_BASE_EN (1ull << 11)
#define APIC_BASE_EXTD (1ull << 10)
#define V_SELF 0x48
#define V_TICK 0xfc

static volatile unsigned count[256];

static void on_irq(struct rt_frame* f)
{
    ++count[(uint8_t)f->vector];
    apic_eoi();
}

/* Waits until count[v] reaches 1, sleeping in HLT behind a tick that only bounds a hang. */
static bool wait_irq(uint8_t v)
{
    apic_tick_start(V_TICK);
    for (int i = 0; i < 20000 && !count[v]; ++i)
        rt_wait_irq();
    apic_tick_stop(V_TICK);
    return count[v] != 0;
}

/* A write that must fault; if it did not, the old value is put back so that the checks after it
 * still run on a working APIC. */
static bool apic_base_write_faults(uint64_t bad, uint64_t restore)
{
    if (rt_wrmsr_safe(MSR_APIC_BASE, bad)) {
        rt_wrmsr_safe(MSR_APIC_BASE, restore & ~APIC_BASE_EXTD); /* through xAPIC if needed */
        rt_wrmsr_safe(MSR_APIC_BASE, restore);
        apic_enable(0xff);
        return false;
    }
    return true;
}

static void apic_base_transitions(void)
{
    const uint64_t b = rdmsr(MSR_APIC_BASE);
    /* SDM 11.4.4: bits 0-7 and 9 of IA32_APIC_BASE are reserved. */
    rt_check(apic_base_write_faults(b | (1ull << 9), b),
             "[11.4.4] setting reserved IA32_APIC_BASE bit 9 raises #GP");
    rt_check(rdmsr(MSR_APIC_BASE) == b, "[11.4.4] and leaves IA32_APIC_BASE unchanged");
    /* SDM 11.12.5, Figure 11-27: EN=0 with EXTD=1 is the invalid state. */
    rt_check(apic_base_write_faults((b & ~APIC_BASE_EN) | APIC_BASE_EXTD, b),
             "[11.12.5] IA32_APIC_BASE EN=0 EXTD=1 (invalid) raises #GP");
    rt_check(rdmsr(MSR_APIC_BASE) == b, "[11.12.5] and leaves IA32_APIC_BASE unchanged");
}

static void xapic_registers(void)
{
    /* SDM 11.12.11: SELF IPI exists only in x2APIC mode; in xAPIC mode 3F0H is reserved and a
     * write sends nothing. */
    apic_write(APIC_SELF_IPI, V_SELF);
    rt_check(!apic_irr(V_SELF) && !count[V_SELF], "[11.12.11] xAPIC has no SELF IPI register");
    /* SDM 11.6.1: delivery status reads 0 (idle) once the IPI was sent; here it was taken. */
    apic_icr(apic_id(), V_SELF);
    rt_check(wait_irq(V_SELF), "[11.6.1] self-addressed fixed IPI delivered");
    rt_check(!(apic_read(APIC_ICR) & ICR_PENDING), "[11.6.1] ICR delivery status reads idle (%#x)",
             apic_read(APIC_ICR));
}

static void software_disable(void)
{
    /* SDM 11.4.7.2: software-disabling the APIC (SVR[8] = 0) sets every LVT mask bit, and
     * attempts to clear them are ignored until it is enabled again. */
    apic_write(APIC_LVT_ERROR, 0x33);
    apic_write(APIC_SVR, 0xff);
    rt_check(apic_read(APIC_LVT_ERROR) & LVT_MASKED,
             "[11.4.7.2] software disable masks the LVT (error %#x)", apic_read(APIC_LVT_ERROR));
    apic_write(APIC_LVT_TIMER, 0x34);
    rt_check(apic_read(APIC_LVT_TIMER) & LVT_MASKED,
             "[11.4.7.2] an LVT write cannot unmask while disabled (timer %#x)",
             apic_read(APIC_LVT_TIMER));
    apic_enable(0xff);
    rt_check(apic_read(APIC_LVT_ERROR) & LVT_MASKED,
             "[11.4.7.2] re-enabling leaves the LVT masked (error %#x)", apic_read(APIC_LVT_ERROR));
    apic_write(APIC_LVT_TIMER, LVT_MASKED | V_TICK);
    apic_write(APIC_LVT_ERROR, LVT_MASKED);
}

/* The AP's registers as it sees them after the second INIT-SIPI. */
static volatile uint32_t ap_lvt[4], ap_tpr, ap_ldr, ap_dfr, ap_id, ap_tmict;
static volatile bool ap_reported;

static void ap_dirty(unsigned cpu)
{
    (void)cpu;
    apic_write(APIC_LVT_ERROR, 0x33);
    apic_write(APIC_LVT_LINT0, 0x35);
    apic_write(APIC_LVT_LINT1, 0x36);
    apic_write(APIC_LVT_TIMER, 0x34);
    apic_write(APIC_TMICT, 0); /* unmasked but not counting */
    apic_write(APIC_TPR, 0x20);
    apic_write(APIC_DFR, 0x0fffffff); /* cluster model */
    apic_write(APIC_LDR, 0x12u << 24);
    ap_reported = true;
}

static void ap_report(unsigned cpu)
{
    (void)cpu;
    ap_lvt[0] = apic_read(APIC_LVT_TIMER);
    ap_lvt[1] = apic_read(APIC_LVT_LINT0);
    ap_lvt[2] = apic_read(APIC_LVT_LINT1);
    ap_lvt[3] = apic_read(APIC_LVT_ERROR);
    ap_tpr = apic_read(APIC_TPR);
    ap_ldr = apic_read(APIC_LDR);
    ap_dfr = apic_read(APIC_DFR);
    ap_id = apic_read(APIC_ID) >> 24;
    ap_tmict = apic_read(APIC_TMICT);
    ap_reported = true;
}

static void init_reset(void)
{
    if (!rt_check(rt_cpu_count() >= 2 && rt_start_ap(1, ap_dirty), "AP 1 started"))
        return;
    apic_tick_start(V_TICK);
    for (int i = 0; i < 20000 && !ap_reported; ++i)
        rt_wait_irq();
    apic_tick_stop(V_TICK);
    ap_reported = false;
    /* rt_start_ap sends INIT then SIPI: SDM 11.4.7.3, the APIC takes its power-up state except
     * for the APIC ID (and arbitration ID). */
    if (!rt_check(rt_start_ap(1, ap_report), "AP 1 restarted by INIT-SIPI"))
        return;
    apic_tick_start(V_TICK);
    for (int i = 0; i < 20000 && !ap_reported; ++i)
        rt_wait_irq();
    apic_tick_stop(V_TICK);
    bool masked = true;
    for (int i = 0; i < 4; ++i)
        masked = masked && (ap_lvt[i] & LVT_MASKED);
    rt_check(masked, "[11.4.7.3] INIT masks the LVT (%#x %#x %#x %#x)", ap_lvt[0], ap_lvt[1],
             ap_lvt[2], ap_lvt[3]);
    rt_check(ap_tpr == 0 && ap_tmict == 0, "[11.4.7.3] INIT clears TPR and TMICT (%#x %#x)", ap_tpr,
             ap_tmict);
    rt_check(ap_ldr == 0 && ap_dfr == 0xffffffffu,
             "[11.4.7.3] INIT resets LDR to 0 and DFR to all ones (%#x %#x)", ap_ldr, ap_dfr);
    rt_check(ap_id == 1, "[11.4.7.3] INIT keeps the APIC ID (%u)", ap_id);
}

static void x2apic_rules(void)
{
    uint32_t r[4];
    rt_cpuid(1, 0, r);
    if (!(r[2] & (1u << 21))) {
        rt_printf("# no x2APIC offered: its checks are not run\n");
        return;
    }
    apic_enable_x2apic();
    const uint64_t b = rdmsr(MSR_APIC_BASE);
    uint64_t v = 0;
    /* SDM 11.12.5: x2APIC -> xAPIC directly is an illegal transition. */
    rt_check(apic_base_write_faults(b & ~APIC_BASE_EXTD, b),
             "[11.12.5] x2APIC -> xAPIC without disabling raises #GP");
    /* SDM 11.12.1.2, Table 11-6: reserved MSRs, read-only and write-only registers. */
    rt_check(!rt_rdmsr_safe(0x831, &v), "[11.12.1.2] RDMSR of 831H (no ICR high in x2APIC) #GP");
    rt_check(!rt_rdmsr_safe(0x804, &v), "[11.12.1.2] RDMSR of reserved 804H raises #GP");
    rt_check(!rt_wrmsr_safe(0x802, 5), "[11.12.1.2] WRMSR of the read-only ID raises #GP");
    rt_check(!rt_wrmsr_safe(0x803, 0), "[11.12.1.2] WRMSR of the read-only version raises #GP");
    rt_check(!rt_rdmsr_safe(0x80b, &v), "[11.12.1.2] RDMSR of write-only EOI raises #GP");
    rt_check(!rt_wrmsr_safe(0x80b, 1), "[11.12.1.2] WRMSR of a non-zero EOI raises #GP");
    /* SDM 11.12.1.3: non-zero writes to reserved bits raise #GP. */
    rt_check(!rt_wrmsr_safe(0x808, 0x100), "[11.12.1.3] WRMSR of non-zero TPR bits 31:8 #GP");
    rt_check(!rt_rdmsr_safe(0x83f, &v), "[11.12.1.2] RDMSR of write-only SELF IPI raises #GP");
    /* Out through the disabled state, then xAPIC again (Figure 11-27). */
    rt_check(rt_wrmsr_safe(MSR_APIC_BASE, b & ~(APIC_BASE_EN | APIC_BASE_EXTD)) &&
                 rt_wrmsr_safe(MSR_APIC_BASE, (b & ~APIC_BASE_EXTD) | APIC_BASE_EN),
             "[11.12.5] x2APIC -> disabled -> xAPIC is allowed");
    apic_x2_forget();
    apic_enable(0xff);
}

void guest_main(void)
{
    for (unsigned v = 0x20; v < 0x100; ++v)
        rt_set_handler((uint8_t)v, on_irq);
    apic_enable(0xff);
    apic_base_transitions();
    xapic_registers();
    software_disable();
    init_reset();
    x2apic_rules();
}
