/* SMP: INIT-SIPI-SIPI bring-up, IPIs between vCPUs (unicast, broadcast, logical flat, lowest
 * priority), and INIT re-parking an AP that a second SIPI starts again. Every AP counts each test
 * IPI in shared memory, then wakes the BSP with IPI 0x60; the BSP waits in sti; hlt until the
 * counts add up. (Replies from several APs can coalesce in the BSP's IRR, as the architecture
 * allows, so the counts, not the replies, are what the BSP checks.) Run with 2+ vCPUs. */
#include "apic.h"
#include "smp.h"

enum { V_UNI = 0x50, V_ALL = 0x51, V_LOGICAL = 0x52, V_LOWEST = 0x53, V_REPLY = 0x60 };

static volatile unsigned got[RT_MAX_CPUS][4];
static volatile unsigned ap_id[RT_MAX_CPUS];
static volatile bool ap_done[RT_MAX_CPUS];
static volatile unsigned replies;
static unsigned ncpus;

static void on_test_ipi(struct rt_frame* f)
{
    unsigned cpu = apic_id();
    if (cpu < RT_MAX_CPUS)
        ++got[cpu][f->vector - V_UNI];
    apic_eoi();
    apic_icr(0, V_REPLY);
}

static void on_reply(struct rt_frame* f)
{
    (void)f;
    ++replies;
    apic_eoi();
}

static void ap_main(unsigned cpu)
{
    ap_id[cpu] = apic_id();
    /* Logical flat mode: one LDR bit per AP (SDM Vol3 11.6.2.2). */
    apic_write(APIC_DFR, 0xffffffff);
    apic_write(APIC_LDR, (1u << cpu) << 24);
    ap_done[cpu] = true;
}

/* The APs report in before running ap_main(); wait (bounded) until each has run it. */
static bool aps_set_up(unsigned n)
{
    apic_tick_start(0xfc);
    bool all = false;
    for (int i = 0; i < 3000 && !all; ++i) {
        all = true;
        for (unsigned cpu = 1; cpu < n; ++cpu)
            all = all && ap_done[cpu];
        if (!all)
            rt_wait_irq();
    }
    apic_tick_stop(0xfc);
    return all;
}

/* The total of test IPIs of kind `k` that all CPUs have taken. */
static unsigned total(unsigned k)
{
    unsigned t = 0;
    for (unsigned cpu = 0; cpu < ncpus; ++cpu)
        t += got[cpu][k];
    return t;
}

/* Waits (sti; hlt, at most `ticks` 1 ms periodic ticks) until CPUs took `n` IPIs of kind `k`. */
static bool wait_ticks(unsigned k, unsigned n, int ticks)
{
    apic_tick_start(0xfc);
    for (int i = 0; i < ticks && total(k) < n; ++i)
        rt_wait_irq();
    apic_tick_stop(0xfc);
    return total(k) >= n;
}

static bool wait_total(unsigned k, unsigned n)
{
    return wait_ticks(k, n, 3000);
}

static void on_tick(struct rt_frame* f)
{
    (void)f;
    apic_eoi();
}

void guest_main(void)
{
    unsigned n = rt_cpu_count();
    ncpus = n;
    rt_check(n >= 2, "%u vCPUs (need 2 or more)", n);
    for (unsigned v = V_UNI; v <= V_LOWEST; ++v)
        rt_set_handler((uint8_t)v, on_test_ipi);
    rt_set_handler(V_REPLY, on_reply);
    rt_set_handler(0xfc, on_tick);
    apic_enable(0xff);

    unsigned up = 0;
    for (unsigned cpu = 1; cpu < n; ++cpu)
        up += rt_start_ap(cpu, ap_main);
    rt_check(up == n - 1, "INIT-SIPI-SIPI started %u of %u APs", up, n - 1);
    aps_set_up(n);
    for (unsigned cpu = 1; cpu < n; ++cpu)
        rt_check(ap_id[cpu] == cpu, "AP %u reports APIC ID %u", cpu, ap_id[cpu]);

    for (unsigned cpu = 1; cpu < n; ++cpu)
        apic_icr(cpu, V_UNI);
    bool ok = wait_total(0, n - 1);
    for (unsigned cpu = 1; cpu < n; ++cpu)
        ok = ok && got[cpu][0] == 1;
    rt_check(ok && got[0][0] == 0, "a fixed IPI to each AP's ID reaches exactly that AP");

    apic_icr(0, ICR_ALL_EXC | V_ALL);
    ok = wait_total(1, n - 1);
    for (unsigned cpu = 1; cpu < n; ++cpu)
        ok = ok && got[cpu][1] == 1;
    rt_check(ok && got[0][1] == 0, "all-excluding-self reaches every AP and not the sender");

    uint32_t mask = (1u << 1) | (n > 3 ? 1u << 3 : 0);
    apic_icr(mask, ICR_LOGICAL | V_LOGICAL);
    ok = wait_total(2, n > 3 ? 2 : 1);
    for (unsigned cpu = 0; cpu < n; ++cpu)
        ok = ok && got[cpu][2] == ((mask >> cpu) & 1);
    rt_check(ok, "logical flat destination %#x reaches exactly its APs", mask);

    uint32_t all_aps = 0;
    for (unsigned cpu = 1; cpu < n; ++cpu)
        all_aps |= 1u << cpu;
    apic_icr(all_aps, ICR_LOGICAL | (1u << 8) | V_LOWEST);
    wait_total(3, 1);
    wait_ticks(3, 2, 20); /* a second delivery would be a bug: give it 20 ms to show */
    rt_check(total(3) == 1, "lowest priority delivers to exactly one AP (%u)", total(3));

    apic_icr(1, ICR_INIT | ICR_ASSERT);
    ap_done[1] = false;
    rt_check(rt_start_ap(1, ap_main), "INIT parks AP 1 and a new SIPI starts it again");
    aps_set_up(2);
    rt_check(rt_ap_starts[1] == 2, "AP 1 came up twice (%u)", rt_ap_starts[1]);
    apic_icr(1, V_UNI);
    ok = wait_total(0, n);
    rt_check(ok && got[1][0] == 2, "the restarted AP takes IPIs again");
}
