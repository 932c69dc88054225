/* Starting application processors (INIT-SIPI-SIPI) and running code on them. */
#ifndef HVACCEL_GUEST_SMP_H
#define HVACCEL_GUEST_SMP_H

#include "rt.h"

#define RT_MAX_CPUS 64 /* tests/guest/test_load.cpp runs 64 */
#define RT_AP_TRAMPOLINE 0x8000
#define RT_VECTOR_AP_READY 0xfd /* an AP tells the BSP it is up */

/* The number of CPUs fw_cfg reports (capped at RT_MAX_CPUS). */
unsigned rt_cpu_count(void);
/* Starts AP `cpu` (APIC ID = cpu) with INIT-SIPI-SIPI; it runs fn(cpu) at CPL 0 with its APIC
 * enabled (x2APIC if the BSP uses it) and interrupts off, then sleeps in sti; hlt forever.
 * Returns true once the AP reported in. */
bool rt_start_ap(unsigned cpu, void (*fn)(unsigned cpu));
/* How many times each CPU has come up (the BSP counts as once). */
extern volatile unsigned rt_ap_starts[RT_MAX_CPUS];

#endif
