/* An unhandled #UD: the runtime must report it and exit with RT_EXIT_EXCEPTION + 6. */
#include "rt.h"

void guest_main(void)
{
    rt_puts("about to execute ud2\n");
    __asm__ volatile("ud2");
    rt_puts("survived ud2?\n");
}
