/* Load (tests/guest/test_load.cpp runs it on 64 vCPUs of a 2-core host, every backend): every
 * CPU sends fixed physical IPIs to the others in turn and one all-excluding-self broadcast, while
 * the BSP also raises edge-triggered IOAPIC interrupts (pc-testdev line 10) at every CPU in turn.
 *
 * Exactly-once accounting: vector 0x40 + s names source s, and a source never has more than one
 * interrupt in flight to a target (it waits, in sti; hlt, until the target's counter for it has
 * caught up before it sends again), so no two counted interrupts can meet in one IRR bit. A
 * receiver counts per source and wakes the sender with an ack IPI (vector 0xa0: acks may
 * coalesce, and are not counted). A periodic APIC timer on every CPU bounds each wait; a CPU
 * that waits past its deadline gives up (a check then fails) rather than hang.
 * At the end the BSP checks sent == received for every (source, target) pair and prints the
 * totals. Command line: "rounds=N" unicast rounds per CPU (default 16). */
#include "apic.h"
#include "smp.h"

#define MAXC RT_MAX_CPUS
#define IOAPIC ((volatile uint32_t*)0xfec00000ul)
#define DEV_PIN 10
#define TICK_NS 100000000u  /* the watchdog tick: 100 ms at the APIC's 1 GHz clock */
#define DEADLINE_TICKS 600u /* 60 s of ticks before a waiting CPU gives up */

enum { V_SRC = 0x40, V_ACK = 0xa0, V_DEV = 0xb0, V_TICK = 0xf0 };

static volatile uint32_t sent[MAXC][MAXC]; /* [source][target], written by the source */
static volatile uint32_t recv[MAXC][MAXC]; /* [target][source], written by the target */
static volatile uint32_t dev_sent[MAXC], dev_recv[MAXC];
static volatile uint32_t ticks[MAXC];
static volatile bool done[MAXC], gave_up[MAXC], go;
static unsigned ncpus, rounds = 16;

static unsigned parse_rounds(void)
{
    const char* c = (const char*)(uintptr_t)rt_multiboot()->cmdline;
    for (; c && *c; ++c) {
        if (strncmp(c, "rounds=", 7) != 0)
            continue;
        unsigned n = 0;
        for (c += 7; *c >= '0' && *c <= '9'; ++c)
            n = n * 10 + (unsigned)(*c - '0');
        return n;
    }
    return 16;
}

static void on_ipi(struct rt_frame* f)
{
    unsigned me = apic_id(), src = (unsigned)f->vector - V_SRC;
    if (me < MAXC && src < MAXC)
        ++recv[me][src];
    apic_eoi();
    apic_icr(src, V_ACK);
}

static void on_dev(struct rt_frame* f)
{
    (void)f;
    unsigned me = apic_id();
    if (me < MAXC)
        ++dev_recv[me];
    apic_eoi();
    apic_icr(0, V_ACK);
}

static void on_tick(struct rt_frame* f)
{
    (void)f;
    unsigned me = apic_id();
    if (me < MAXC)
        ++ticks[me];
    apic_eoi();
}

static void on_ack(struct rt_frame* f)
{
    (void)f;
    apic_eoi();
}

static void ticking(bool on)
{
    apic_write(APIC_TDCR, 0xb);
    apic_write(APIC_LVT_TIMER, on ? (TIMER_PERIODIC | V_TICK) : (LVT_MASKED | V_TICK));
    apic_write(APIC_TMICT, on ? TICK_NS : 0);
}

/* Waits in sti; hlt until cond(me, arg) holds; false once the deadline passed. */
static bool wait_until(unsigned me, bool (*cond)(unsigned, unsigned), unsigned arg)
{
    uint32_t start = ticks[me];
    while (!cond(me, arg)) {
        if (ticks[me] - start > DEADLINE_TICKS) {
            gave_up[me] = true;
            return false;
        }
        rt_wait_irq();
    }
    return true;
}

static bool acked(unsigned me, unsigned t)
{
    return recv[t][me] == sent[me][t];
}

static bool all_acked(unsigned me, unsigned unused)
{
    (void)unused;
    for (unsigned t = 0; t < ncpus; ++t)
        if (t != me && !acked(me, t))
            return false;
    return true;
}

static bool dev_taken(unsigned me, unsigned d)
{
    (void)me;
    return dev_recv[d] == dev_sent[d];
}

static bool started(unsigned me, unsigned unused)
{
    (void)me;
    (void)unused;
    return go;
}

static bool all_done(unsigned me, unsigned unused)
{
    (void)me;
    (void)unused;
    for (unsigned c = 0; c < ncpus; ++c)
        if (!done[c])
            return false;
    return true;
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
    IOAPIC[0] = reg;
    IOAPIC[4] = v;
}

/* One rising edge on the device line, routed to CPU d; waits until d took it. */
static void device_interrupt(unsigned me, unsigned d)
{
    ioapic_write(0x10 + 2 * DEV_PIN + 1, d << 24);
    ioapic_write(0x10 + 2 * DEV_PIN, V_DEV);
    ++dev_sent[d];
    outb((uint16_t)(0x2000 + DEV_PIN), 1);
    outb((uint16_t)(0x2000 + DEV_PIN), 0);
    wait_until(me, dev_taken, d);
}

static void work(unsigned me)
{
    ticking(true);
    wait_until(me, started, 0);
    for (unsigned r = 0; r < rounds && !gave_up[me]; ++r) {
        unsigned t = (me + 1 + r * 7) % ncpus;
        if (t == me)
            t = (t + 1) % ncpus;
        ++sent[me][t];
        apic_icr(t, V_SRC + me);
        wait_until(me, acked, t);
        if (r == rounds / 2) {
            for (unsigned o = 0; o < ncpus; ++o)
                if (o != me)
                    ++sent[me][o];
            apic_icr(0, ICR_ALL_EXC | (V_SRC + me));
            wait_until(me, all_acked, 0);
        }
        if (me == 0) /* the BSP also drives the device line, at every CPU in turn */
            for (unsigned d = r % 4; d < ncpus && !gave_up[me]; d += 4)
                device_interrupt(me, d);
    }
    done[me] = true;
}

static void ap_main(unsigned cpu)
{
    work(cpu);
    ticking(false);
}

void guest_main(void)
{
    ncpus = rt_cpu_count();
    rounds = parse_rounds();
    rt_check(ncpus >= 2, "%u vCPUs (need 2 or more)", ncpus);
    for (unsigned v = V_SRC; v < V_SRC + MAXC; ++v)
        rt_set_handler((uint8_t)v, on_ipi);
    rt_set_handler(V_ACK, on_ack);
    rt_set_handler(V_DEV, on_dev);
    rt_set_handler(V_TICK, on_tick);
    apic_enable(0xff);

    unsigned up = 0;
    for (unsigned cpu = 1; cpu < ncpus; ++cpu)
        up += rt_start_ap(cpu, ap_main);
    rt_check(up == ncpus - 1, "started %u of %u APs", up, ncpus - 1);
    go = true;
    work(0);
    wait_until(0, all_done, 0);
    ticking(false);

    uint32_t ipis_sent = 0, ipis_recv = 0, dsent = 0, drecv = 0, bad = 0, quit = 0;
    for (unsigned s = 0; s < ncpus; ++s) {
        for (unsigned t = 0; t < ncpus; ++t) {
            ipis_sent += sent[s][t];
            ipis_recv += recv[t][s];
            bad += sent[s][t] != recv[t][s];
        }
        dsent += dev_sent[s];
        drecv += dev_recv[s];
        quit += gave_up[s];
    }
    rt_printf("load: %u vCPUs, %u rounds: IPIs sent %u received %u; device interrupts sent %u "
              "received %u\n",
              ncpus, rounds, ipis_sent, ipis_recv, dsent, drecv);
    rt_check(all_done(0, 0), "every CPU finished its rounds");
    rt_check(quit == 0, "no CPU waited past its deadline (%u did)", quit);
    rt_check(bad == 0 && ipis_sent == ipis_recv,
             "every IPI arrived exactly once (%u of %u pairs differ)", bad, ncpus * ncpus);
    rt_check(ipis_sent == ncpus * rounds + ncpus * (ncpus - 1),
             "%u unicast and %u broadcast deliveries", ncpus * rounds, ncpus * (ncpus - 1));
    rt_check(dsent == drecv && dsent > 0, "every device interrupt arrived exactly once");
}
