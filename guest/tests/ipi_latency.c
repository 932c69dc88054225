/* Interrupt latency workloads, timed with the TSC where the interrupt ends (the handler):
 *  - self-IPI: ICR write -> handler on the same vCPU;
 *  - IPI round trip: BSP -> AP (halted in sti; hlt) -> IPI back -> BSP handler (BSP halted).
 * Prints raw samples in TSC cycles ("self_ipi: c,c,...", "ipi_roundtrip: ...") for the host-side
 * harness (bench/apic_latency) to summarise, then checks that every IPI arrived exactly once. */
#include "apic.h"
#include "smp.h"

#define MAX_SAMPLES 1000
enum { V_SELF = 0x40, V_PING = 0x41, V_PONG = 0x42 };

static volatile uint64_t t_handler;
static volatile unsigned self_count, ping_count, pong_count;
static uint64_t samples[MAX_SAMPLES];
static unsigned SAMPLES = 200;

/* "samples=N" on the command line sets the number of samples per workload. */
static void parse_cmdline(void)
{
    const char* c = (const char*)(uintptr_t)rt_multiboot()->cmdline;
    for (; c && *c; ++c) {
        if (strncmp(c, "samples=", 8) != 0)
            continue;
        unsigned n = 0;
        for (c += 8; *c >= '0' && *c <= '9'; ++c)
            n = n * 10 + (unsigned)(*c - '0');
        if (n >= 1 && n <= MAX_SAMPLES)
            SAMPLES = n;
        return;
    }
}

static void on_self(struct rt_frame* f)
{
    (void)f;
    t_handler = rdtsc();
    ++self_count;
    apic_eoi();
}

static void on_ping(struct rt_frame* f) /* on the AP */
{
    (void)f;
    ++ping_count;
    apic_eoi();
    apic_icr(0, V_PONG);
}

static void on_pong(struct rt_frame* f) /* on the BSP */
{
    (void)f;
    t_handler = rdtsc();
    ++pong_count;
    apic_eoi();
}

static void print_samples(const char* name, unsigned n)
{
    rt_printf("%s:", name);
    for (unsigned i = 0; i < n; ++i)
        rt_printf("%s%lu", i ? "," : "", samples[i]);
    rt_printf("\n");
}

static void ap_main(unsigned cpu)
{
    (void)cpu;
}

void guest_main(void)
{
    parse_cmdline();
    rt_set_handler(V_SELF, on_self);
    rt_set_handler(V_PING, on_ping);
    rt_set_handler(V_PONG, on_pong);
    apic_enable(0xff);

    for (unsigned i = 0; i < SAMPLES; ++i) {
        t_handler = 0;
        sti();
        uint64_t t0 = rdtsc();
        apic_icr(0, ICR_SELF | V_SELF);
        for (int j = 0; j < 1000 && !t_handler; ++j)
            __asm__ volatile("hlt"); /* delivered at once; HLT only if it is late */
        cli();
        samples[i] = t_handler - t0;
    }
    print_samples("self_ipi", SAMPLES);
    rt_check(self_count == SAMPLES, "every self-IPI arrived once (%u)", self_count);

    if (rt_cpu_count() < 2) {
        rt_puts("ipi_roundtrip: skipped (1 vCPU)\n");
        return;
    }
    rt_check(rt_start_ap(1, ap_main), "AP 1 started");
    unsigned n = 0;
    for (unsigned i = 0; i < SAMPLES; ++i) {
        t_handler = 0;
        uint64_t t0 = rdtsc();
        apic_icr(1, V_PING);
        for (int j = 0; j < 1000 && !t_handler; ++j)
            rt_wait_irq();
        if (t_handler)
            samples[n++] = t_handler - t0;
    }
    print_samples("ipi_roundtrip", n);
    rt_check(ping_count == SAMPLES && pong_count == SAMPLES,
             "every ping and pong arrived once (%u, %u)", ping_count, pong_count);
}
