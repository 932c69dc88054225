/* Halts with interrupts disabled: nothing can ever wake the vCPU. The VMM must notice and end
 * the VM instead of hanging. */
#include "rt.h"

void guest_main(void)
{
    rt_puts("halting with interrupts off\n");
    __asm__ volatile("cli; hlt");
    rt_puts("woke up?\n");
}
