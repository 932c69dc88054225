/* IPI ping-pong between two vCPUs, timed with the TSC in the handlers.
 *  mode=halted (default): the BSP sends PING to the AP (halted in sti; hlt), whose handler
 *    sends PONG back to the BSP (halted in sti; hlt). Series "halted_oneway" (BSP send -> AP
 *    handler) and "halted_rtt" (BSP send -> BSP's PONG handler).
 *  mode=running: the AP sends PING to the BSP, which runs a ring-3 loop (the target is running
 *    guest code, not halted: AVIC/IPIv deliver without waking anything); the BSP's handler
 *    sends PONG back to the AP (halted). Series "running_oneway" (AP send -> BSP handler) and
 *    "running_rtt" (AP send -> AP's PONG handler).
 * Every PING and PONG is counted when sent and in its handler; the image fails on a lost or
 * duplicate IPI. Ten warm-up round trips run first and are not printed.
 * "seconds=S" (halted mode) keeps the round trips going for at least S seconds (the demo
 * snapshots the VM meanwhile and restores it on another backend); the first N are printed. */
#include "apic.h"
#include "bench.h"
#include "smp.h"

enum { V_PING = 0x41, V_PONG = 0x42, WARMUP = 10 };

static volatile uint64_t t_ping, t_pong;
static volatile unsigned ping_sent, pong_sent, ping_count, pong_count;
static volatile unsigned initiator; /* APIC ID that sends PING and receives PONG */
static volatile unsigned go, done;
static volatile bool failed_wait;
static uint64_t oneway[BENCH_MAX_SAMPLES], rtt[BENCH_MAX_SAMPLES];
static unsigned n_samples;

static void on_ping(struct rt_frame* f)
{
    (void)f;
    t_ping = rdtsc();
    ++ping_count;
    apic_eoi();
    ++pong_sent;
    apic_icr(initiator, V_PONG);
}

static void on_pong(struct rt_frame* f)
{
    (void)f;
    t_pong = rdtsc();
    ++pong_count;
    apic_eoi();
}

/* One round trip from the initiator to `target`; the initiator waits halted for PONG. */
static void round_trip(unsigned target, unsigned i)
{
    t_ping = t_pong = 0;
    uint64_t t0 = rdtsc();
    ++ping_sent;
    apic_icr(target, V_PING);
    if (!bench_wait_halted(&pong_count, i + 1, 1000))
        failed_wait = true;
    if (i >= WARMUP && i - WARMUP < BENCH_MAX_SAMPLES) {
        oneway[i - WARMUP] = bench_delta(t_ping, t0);
        rtt[i - WARMUP] = bench_delta(t_pong, t0);
    }
}

static void ap_idle(unsigned cpu)
{
    (void)cpu;
}

/* mode=running: the AP drives the ping-pong once the BSP is in its ring-3 loop. */
static void ap_driver(unsigned cpu)
{
    (void)cpu;
    bench_wait_ring0(&go, 1, 5000);
    for (unsigned i = 0; i < n_samples + WARMUP; ++i)
        round_trip(0, i);
    done = 1;
}

static void bsp_user_loop(void* arg)
{
    uint64_t deadline = *(uint64_t*)arg;
    go = 1;
    while (!done && rdtsc() < deadline)
        __asm__ volatile("pause" ::: "memory");
}

static void check_counts(unsigned total)
{
    rt_check(!failed_wait, "every PONG arrived before the next PING");
    rt_check(ping_sent == total && ping_count == total,
             "every PING arrived once (%u sent, %u taken)", ping_sent, ping_count);
    rt_check(pong_sent == total && pong_count == total,
             "every PONG arrived once (%u sent, %u taken)", pong_sent, pong_count);
}

void guest_main(void)
{
    n_samples = bench_samples();
    bool running = bench_arg_is("mode", "running");
    rt_set_handler(V_PING, on_ping);
    rt_set_handler(V_PONG, on_pong);
    apic_enable(0xff);
    if (rt_cpu_count() < 2) {
        rt_printf("%s_oneway: skipped (1 vCPU)\n", running ? "running" : "halted");
        return;
    }
    unsigned total = n_samples + WARMUP;
    rt_printf("ping-pong: %u round trips, target %s\n", total, running ? "in ring 3" : "halted");
    if (!running) {
        initiator = 0;
        rt_check(rt_start_ap(1, ap_idle), "AP 1 started");
        uint64_t until = rdtsc() + bench_tsc_khz() * 1000 * bench_arg_uint("seconds", 0, 0, 600);
        unsigned i = 0;
        for (; i < total || rdtsc() < until; ++i)
            round_trip(1, i);
        total = i;
        /* A duplicate would arrive shortly after: give it 2 ms with interrupts on. */
        bench_wait_ring3(&pong_count, total + 1, 2, true);
        bench_print("halted_oneway", oneway, n_samples);
        bench_print("halted_rtt", rtt, n_samples);
    } else {
        initiator = 1;
        rt_check(rt_start_ap(1, ap_driver), "AP 1 started");
        uint64_t deadline = rdtsc() + bench_tsc_khz() * 60000;
        rt_run_user(bsp_user_loop, &deadline, true);
        rt_check(done, "the AP finished its round trips");
        bench_wait_ring3(&ping_count, total + 1, 2, true);
        bench_print("running_oneway", oneway, n_samples);
        bench_print("running_rtt", rtt, n_samples);
    }
    check_counts(total);
}
