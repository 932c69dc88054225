/* Spins in ring 3 forever: the VMM's host-side tests must kick it out of KVM_RUN. */
#include "rt.h"

static void spin(void* arg)
{
    volatile uint64_t* n = arg;
    for (;;)
        ++*n;
}

void guest_main(void)
{
    static volatile uint64_t n;
    rt_puts("spinning\n");
    rt_run_user(spin, (void*)&n, true);
}
