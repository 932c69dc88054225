/* Dirties guest memory from ring 3 (native speed): fills [16 MiB, 16 MiB + N MiB) with a pattern,
 * N from "fill=N" on the command line (default 64), then says so and idles. Used to measure
 * snapshot writing and to test that a snapshot killed mid-write leaves the old file intact. */
#include "rt.h"

static unsigned parse_fill(void)
{
    const char* c = (const char*)(uintptr_t)rt_multiboot()->cmdline;
    for (; c && *c; ++c) {
        if (strncmp(c, "fill=", 5) != 0)
            continue;
        unsigned n = 0;
        for (c += 5; *c >= '0' && *c <= '9'; ++c)
            n = n * 10 + (unsigned)(*c - '0');
        return n;
    }
    return 64;
}

static void fill(void* arg)
{
    uint64_t mib = *(unsigned*)arg;
    volatile uint64_t* p = (volatile uint64_t*)(16ul << 20);
    for (uint64_t i = 0; i < (mib << 20) / 8; ++i)
        p[i] = 0x9e3779b97f4a7c15ull * (i + 1);
}

void guest_main(void)
{
    unsigned mib = parse_fill();
    rt_run_user(fill, &mib, true);
    rt_printf("filled %u MiB\n", mib);
    for (;;)
        rt_wait_irq();
}
