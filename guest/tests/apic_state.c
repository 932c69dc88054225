/* Leaves the local APIC in a known, non-trivial state and waits: vectors 0x90 and 0x70 pending
 * in IRR behind TPR 0xA0, a logical flat LDR, programmed LVTs and divide. The host-side test
 * pauses the VM and compares the flattened state across APIC backends. (No vector is left in
 * service: the in-kernel LAPIC of the development hosts' KVM provider does not keep ISR set
 * while a handler runs; see docs/apic.md.) */
#include "apic.h"

void guest_main(void)
{
    apic_enable(0xff);
    apic_write(APIC_TPR, 0xa0);
    apic_write(APIC_DFR, 0xffffffff);
    apic_write(APIC_LDR, 0x01000000);
    apic_write(APIC_TDCR, 0x3);
    apic_write(APIC_LVT_TIMER, LVT_MASKED | TIMER_PERIODIC | 0x55);
    apic_write(APIC_LVT_LINT0, LVT_MASKED | (7u << 8));
    apic_write(APIC_LVT_LINT1, 4u << 8);
    apic_write(APIC_LVT_ERROR, 0xfe);
    apic_icr(0, ICR_SELF | 0x90);
    apic_icr(0, ICR_SELF | 0x70);
    sti();
    rt_check(apic_irr(0x90) && apic_irr(0x70) && !apic_isr(0x90),
             "0x90 and 0x70 pending behind TPR 0xa0");
    rt_puts("ready\n");
    for (;;)
        rt_wait_irq();
}
