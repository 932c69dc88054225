/* Loads an empty IDT and faults: #UD -> #DF -> triple fault. The VMM must end the VM with a
 * message naming the vCPU and its RIP. */
#include "rt.h"

void guest_main(void)
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } empty = {0, 0};
    rt_puts("triple fault ahead\n");
    __asm__ volatile("lidt %0; ud2" ::"m"(empty));
}
