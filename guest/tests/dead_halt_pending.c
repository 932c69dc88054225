/* Halts with interrupts disabled while a maskable interrupt is already pending in IRR (a
 * self-IPI sent after cli). SDM Vol2 HLT: with RFLAGS.IF clear, a maskable interrupt does not
 * resume a halted processor, so nothing can ever wake it: the VMM must end the VM, on every
 * APIC backend alike. Waking would print "woke up" and pass. */
#include "apic.h"
#include "rt.h"

#define VECTOR 0x40

static void on_vector(struct rt_frame* f)
{
    (void)f;
    apic_eoi();
}

void guest_main(void)
{
    rt_set_handler(VECTOR, on_vector);
    apic_enable(0xff);
    cli();
    apic_icr(0, ICR_SELF | ICR_FIXED | VECTOR);
    rt_check(apic_irr(VECTOR), "the self-IPI is pending in IRR");
    rt_puts("halting with interrupts off and an interrupt pending\n");
    __asm__ volatile("hlt");
    rt_puts("woke up\n");
    rt_done();
}
