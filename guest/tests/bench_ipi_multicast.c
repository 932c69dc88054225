/* One-to-many IPIs: the BSP sends one fixed IPI to all other vCPUs (ICR shorthand "all
 * excluding self": one ICR write, N-1 deliveries); every receiver is halted in sti; hlt and
 * timestamps the IPI in its handler. Series "multicast_last" (send -> the last receiver's
 * handler) and "multicast_each" (send -> each receiver's handler, every receiver pooled).
 * The BSP waits in a ring-3 loop with interrupts off. Each receiver counts its own IPIs; the
 * image fails unless every receiver took every IPI exactly once. */
#include "apic.h"
#include "bench.h"
#include "smp.h"

enum { V_MULTI = 0x43, WARMUP = 10, AP_STACK = 8192 };

static unsigned ncpu;
static uintptr_t stack_top[RT_MAX_CPUS]; /* an address near the top of each AP's stack */
static volatile uint64_t t_recv[RT_MAX_CPUS];
static volatile unsigned recv_count[RT_MAX_CPUS];
static volatile unsigned recv_total, unknown_cpu;
static uint64_t last[BENCH_MAX_SAMPLES];
static uint64_t each[BENCH_MAX_SAMPLES * (RT_MAX_CPUS - 1)];

/* Which AP runs this handler, without an APIC access (that would add an exit per interrupt on
 * trapping backends): the interrupt runs on the AP's own stack (CPL 0 -> CPL 0, no switch). */
static unsigned this_cpu(void)
{
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    for (unsigned c = 1; c < ncpu; ++c)
        if (sp < stack_top[c] && stack_top[c] - sp < AP_STACK)
            return c;
    return 0;
}

static void on_multi(struct rt_frame* f)
{
    (void)f;
    uint64_t t = rdtsc();
    unsigned c = this_cpu();
    if (c == 0) {
        ++unknown_cpu;
    } else {
        t_recv[c] = t;
        ++recv_count[c];
    }
    __atomic_fetch_add(&recv_total, 1, __ATOMIC_SEQ_CST);
    apic_eoi();
}

static void ap_main(unsigned cpu)
{
    volatile int here = 0;
    stack_top[cpu] = (uintptr_t)&here + 64;
}

void guest_main(void)
{
    unsigned n = bench_samples();
    rt_set_handler(V_MULTI, on_multi);
    apic_enable(0xff);
    ncpu = rt_cpu_count();
    if (ncpu < 2) {
        rt_puts("multicast_last: skipped (1 vCPU)\n");
        return;
    }
    for (unsigned c = 1; c < ncpu; ++c)
        rt_check(rt_start_ap(c, ap_main), "AP %u started", c);
    unsigned receivers = ncpu - 1, n_each = 0;
    bool in_time = true;
    for (unsigned i = 0; i < n + WARMUP; ++i) {
        for (unsigned c = 1; c < ncpu; ++c)
            t_recv[c] = 0;
        uint64_t t0 = rdtsc();
        apic_icr(0, ICR_ALL_EXC | V_MULTI);
        if (!bench_wait_ring3(&recv_total, (i + 1) * receivers, 1000, false))
            in_time = false;
        if (i < WARMUP)
            continue;
        uint64_t worst = 0;
        for (unsigned c = 1; c < ncpu; ++c) {
            uint64_t d = bench_delta(t_recv[c], t0);
            worst = d > worst ? d : worst;
            each[n_each++] = d;
        }
        last[i - WARMUP] = worst;
    }
    unsigned total = n + WARMUP;
    bench_wait_ring3(&recv_total, total * receivers + 1, 2, false);
    bench_print("multicast_last", last, n);
    bench_print("multicast_each", each, n_each);
    rt_check(in_time, "every round reached all %u receivers", receivers);
    rt_check(unknown_cpu == 0, "every IPI ran on a known AP (%u not)", unknown_cpu);
    for (unsigned c = 1; c < ncpu; ++c)
        rt_check(recv_count[c] == total, "AP %u took every IPI once (%u of %u)", c, recv_count[c],
                 total);
    rt_check(recv_total == total * receivers, "no IPI delivered twice (%u of %u)", recv_total,
             total * receivers);
}
