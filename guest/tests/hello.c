/* The demo guest: boots, says hello, reports what it runs on, exits with status 0. */
#include "rt.h"

void guest_main(void)
{
    uint32_t r[4];
    char vendor[13];
    rt_cpuid(0, 0, r);
    memcpy(vendor, &r[1], 4);
    memcpy(vendor + 4, &r[3], 4);
    memcpy(vendor + 8, &r[2], 4);
    vendor[12] = 0;
    uint16_t cpus = 0;
    rt_fw_cfg_read(0x05, &cpus, sizeof cpus);
    rt_printf("Hello from the hvaccel guest runtime: %s, %u vCPU(s), long mode, CPL %u\n", vendor,
              cpus, rt_cpl());
    rt_check(rt_mb_magic == 0x2BADB002, "entered by a multiboot loader (EAX=%#x)", rt_mb_magic);
}
