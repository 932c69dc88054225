/* EOI-heavy level-triggered interrupts: an IOAPIC pin programmed level-triggered, driven
 * through QEMU pc-testdev's IRQ ports (0x2000 + line; hvaccel has the same ports). The AP is
 * the device: it raises the line and waits (ring 0, polling memory, interrupts off) until the
 * BSP's handler has taken the interrupt, lowered the line (the driver acknowledging its
 * device) and sent the EOI that clears remote IRR (SDM Vol3 11.8.5; 82093AA 3.2.4). Every
 * interrupt costs a level EOI, which APICv and AVIC cannot complete without the VMM (EOI-induced
 * exit / AVIC_NOACCEL trap for a set TMR bit).
 *  mode=halted (default): the BSP waits in sti; hlt. Series "level_halted".
 *  mode=running: the BSP runs a ring-3 loop. Series "level_running".
 * Latency: the AP's TSC before the port write -> the BSP's handler. Raised and taken counts must
 * match exactly, with remote IRR clear at the end. A handler entry with no raise outstanding
 * (the line was lowered before the EOI, so the IOAPIC had no reason to deliver again) is
 * counted as spurious, like a driver that finds its device's status clear, and reported on a
 * "level_note:" line rather than failed: drivers must tolerate those on real hardware. */
#include "apic.h"
#include "bench.h"
#include "smp.h"

#define IOAPIC ((volatile uint32_t*)0xfec00000ul)
#define REMOTE_IRR (1u << 14)
enum { PIN = 11, V_LEVEL = 0x62, V_DONE = 0x63, WARMUP = 10 };

static volatile unsigned raised, taken, go, done, late, spurious;
static volatile uint64_t t_taken;
static uint64_t samples[BENCH_MAX_SAMPLES];
static unsigned n_samples;

static uint32_t ioapic_read(uint32_t reg)
{
    IOAPIC[0] = reg;
    return IOAPIC[4];
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
    IOAPIC[0] = reg;
    IOAPIC[4] = v;
}

static void on_level(struct rt_frame* f)
{
    (void)f;
    uint64_t t = rdtsc();
    bool outstanding = raised != taken; /* the device's status register, so to speak */
    /* Lower the line and EOI before telling the device: raised again any earlier, the new
     * assertion could be undone by this handler's de-assertion and be lost. */
    outb((uint16_t)(0x2000 + PIN), 0);
    apic_eoi();
    if (!outstanding) {
        ++spurious;
        return;
    }
    t_taken = t;
    ++taken;
}

static void on_done(struct rt_frame* f)
{
    (void)f;
    apic_eoi();
}

static void ap_device(unsigned cpu)
{
    (void)cpu;
    bench_wait_ring0(&go, 1, 5000);
    for (unsigned i = 0; i < n_samples + WARMUP; ++i) {
        t_taken = 0;
        uint64_t t0 = rdtsc();
        ++raised;
        outb((uint16_t)(0x2000 + PIN), 1);
        if (!bench_wait_ring0(&taken, i + 1, 1000))
            ++late;
        if (i >= WARMUP)
            samples[i - WARMUP] = bench_delta(t_taken, t0);
    }
    done = 1;
    apic_icr(0, V_DONE);
}

static void bsp_user_loop(void* arg)
{
    uint64_t deadline = *(uint64_t*)arg;
    go = 1;
    while (!done && rdtsc() < deadline)
        __asm__ volatile("pause" ::: "memory");
}

void guest_main(void)
{
    n_samples = bench_samples();
    bool running = bench_arg_is("mode", "running");
    rt_set_handler(V_LEVEL, on_level);
    rt_set_handler(V_DONE, on_done);
    apic_enable(0xff);
    if (rt_cpu_count() < 2) {
        rt_printf("level_%s: skipped (1 vCPU)\n", running ? "running" : "halted");
        return;
    }
    ioapic_write(0x10 + 2 * PIN + 1, 0); /* destination APIC ID 0 */
    ioapic_write(0x10 + 2 * PIN, V_LEVEL | (1u << 15) /* level */);
    rt_check(rt_start_ap(1, ap_device), "AP 1 started");
    uint64_t deadline = rdtsc() + bench_tsc_khz() * 60000;
    if (running) {
        rt_run_user(bsp_user_loop, &deadline, true);
    } else {
        go = 1;
        while (!done && rdtsc() < deadline)
            rt_wait_irq();
    }
    unsigned total = n_samples + WARMUP;
    bench_wait_ring3(&taken, total + 1, 2, true);
    bench_print(running ? "level_running" : "level_halted", samples, n_samples);
    rt_printf("level_note: spurious %u (handler entries with no raise outstanding)\n", spurious);
    rt_check(done && !late, "every interrupt was taken before the next was raised (%u late)", late);
    rt_check(raised == total && taken == total,
             "every level interrupt taken once (%u raised, %u taken)", raised, taken);
    rt_check(!(ioapic_read(0x10 + 2 * PIN) & REMOTE_IRR), "remote IRR clear after the last EOI");
}
