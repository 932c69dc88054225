/* AP bring-up: INIT-SIPI-SIPI (SDM Vol3 9.4.4.1), one AP at a time. */
#include "smp.h"

#include "apic.h"

extern char rt_ap_trampoline[], rt_ap_trampoline_end[];
extern struct {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed)) rt_idt_ptr;

uint64_t rt_ap_stack;
volatile unsigned rt_ap_starts[RT_MAX_CPUS];
static uint8_t ap_stacks[RT_MAX_CPUS][8192] __attribute__((aligned(16)));
static volatile unsigned ap_cpu;
static void (*volatile ap_fn)(unsigned);
static volatile bool ap_ready;

static void on_ready(struct rt_frame* f)
{
    (void)f;
    apic_eoi();
}

/* While the BSP waits for an AP, a 1 ms periodic APIC timer (vector 0xfc) bounds every HLT, so
 * an AP that never comes up costs a bounded wait, not a hang. */
static void watchdog(bool on)
{
    static uint32_t saved_lvt, saved_div, saved_init;
    if (on) {
        saved_lvt = apic_read(APIC_LVT_TIMER);
        saved_div = apic_read(APIC_TDCR);
        saved_init = apic_read(APIC_TMICT);
        rt_set_handler(0xfc, on_ready);
        apic_tick_start(0xfc);
    } else {
        apic_tick_stop(0xfc);
        apic_write(APIC_TMICT, 0);
        apic_write(APIC_TDCR, saved_div);
        apic_write(APIC_LVT_TIMER, saved_lvt);
        apic_write(APIC_TMICT, saved_init);
    }
}

unsigned rt_cpu_count(void)
{
    uint16_t n = 0;
    rt_fw_cfg_read(0x05, &n, sizeof n);
    return n > RT_MAX_CPUS ? RT_MAX_CPUS : (n ? n : 1);
}

_Noreturn void rt_ap_start(void)
{
    unsigned cpu = ap_cpu;
    __asm__ volatile("lidt %0" ::"m"(rt_idt_ptr));
    if (apic_x2())
        wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | (1u << 11) | (1u << 10));
    apic_enable(0xff);
    void (*fn)(unsigned) = ap_fn;
    ++rt_ap_starts[cpu];
    ap_ready = true;
    apic_icr(0, RT_VECTOR_AP_READY); /* wake the BSP */
    fn(cpu);
    for (;;)
        rt_wait_irq();
}

bool rt_start_ap(unsigned cpu, void (*fn)(unsigned cpu))
{
    if (cpu == 0 || cpu >= RT_MAX_CPUS)
        return false;
    rt_set_handler(RT_VECTOR_AP_READY, on_ready);
    memcpy((void*)RT_AP_TRAMPOLINE, rt_ap_trampoline,
           (size_t)(rt_ap_trampoline_end - rt_ap_trampoline));
    rt_ap_stack = (uint64_t)(uintptr_t)(ap_stacks[cpu] + sizeof ap_stacks[cpu]);
    ap_cpu = cpu;
    ap_fn = fn;
    ap_ready = false;
    apic_icr(cpu, ICR_INIT | ICR_ASSERT);
    apic_icr(cpu, ICR_STARTUP | (RT_AP_TRAMPOLINE >> 12));
    /* A second SIPI is what the SDM's sequence sends; it is ignored once the AP runs. */
    watchdog(true);
    for (int i = 0; i < 2000 && !ap_ready; ++i) {
        rt_wait_irq();
        if (i == 10 && !ap_ready)
            apic_icr(cpu, ICR_STARTUP | (RT_AP_TRAMPOLINE >> 12));
    }
    watchdog(false);
    return ap_ready;
}
