/* Halts with interrupts enabled forever: the VMM's host-side tests pause, resume and stop it. */
#include "rt.h"

void guest_main(void)
{
    rt_puts("idle\n");
    for (;;)
        rt_wait_irq();
}
