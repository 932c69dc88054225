/* Device interrupt latency: raise -> guest handler, timed with the TSC.
 *  - hvaccel --irqdev: the device's host thread raises (paced: the next raise waits for the
 *    handler's ACK) and writes the guest TSC of each raise into a log in guest RAM (DMA); the
 *    handler reads its TSC first. Series "msi_running" (target = the BSP in a ring-3 loop) and
 *    "msi_halted" (the BSP in sti; hlt).
 *  - QEMU -device edu (no host-thread device there): the AP raises through edu's 0x60 register
 *    and records the TSC before its write; the same two series. The AP's MMIO write is part of
 *    this path, so compare it with hvaccel's "msi_vcpu_*" series, raised the same way through the
 *    irq device's RAISE_NOW register.
 * Every raise is counted on both sides; a lost or duplicate interrupt fails the image.
 * Command line: samples=N; mode=running|halted|vcpu_running|vcpu_halted runs one series only.
 * Needs 2 CPUs. */
#include "apic.h"
#include "bench.h"
#include "pci.h"
#include "smp.h"

enum { V_MSI = 0x51, V_TICK = 0xfc, WARMUP = 10 };
#define IRQDEV_RAISED 0x18
#define IRQDEV_ACK 0x1c
#define IRQDEV_RAISE_NOW 0x30

static uint64_t regs;
static bool is_edu;
static volatile unsigned handled, raised_by_ap, target;
static volatile bool host_raise, paced_ack;
static volatile uint64_t t_handler[BENCH_MAX_SAMPLES + WARMUP];
static volatile uint64_t t_raise[BENCH_MAX_SAMPLES + WARMUP];
static uint64_t samples[BENCH_MAX_SAMPLES];
static unsigned n_total;

static void on_msi(struct rt_frame* f)
{
    (void)f;
    uint64_t t = rdtsc();
    unsigned i = handled;
    if (i < n_total)
        t_handler[i] = t;
    handled = i + 1;
    if (is_edu)
        mmio_write32(regs + 0x64, 1); /* acknowledge: clear edu's status bit */
    apic_eoi();
    if (paced_ack)
        mmio_write32(regs + IRQDEV_ACK, 1);
}

static void on_tick(struct rt_frame* f)
{
    (void)f;
    apic_eoi();
}

static void user_wait(void* arg)
{
    (void)arg;
    for (uint64_t t0 = rdtsc(); handled < target && rdtsc() - t0 < (30ull << 30);)
        __asm__ volatile("pause");
}

/* The AP raises one interrupt each time the previous one was handled (edu, or RAISE_NOW). */
static void ap_main(unsigned cpu)
{
    (void)cpu;
    uint64_t gap = bench_tsc_khz() / 10; /* 100 us: the target is back in its loop or HLT */
    for (;;) {
        if (host_raise || raised_by_ap >= target) {
            rt_wait_irq(); /* nothing to raise: sleep until the BSP's IPI */
            continue;
        }
        if (handled == raised_by_ap) {
            for (uint64_t t0 = rdtsc(); rdtsc() - t0 < gap;)
                __asm__ volatile("pause");
            unsigned i = raised_by_ap;
            t_raise[i] = rdtsc();
            raised_by_ap = i + 1;
            if (is_edu)
                mmio_write32(regs + 0x60, 1);
            else
                mmio_write32(regs + IRQDEV_RAISE_NOW, 0);
        }
        rt_wait_irq_bounded();
    }
}

static void halted_wait(void)
{
    apic_tick_start(V_TICK);
    for (int i = 0; i < 20000 && handled < target; ++i)
        rt_wait_irq();
    apic_tick_stop(V_TICK);
}

/* One series: n_total interrupts, `running` = the BSP waits in ring 3, else halted. */
static void series(const char* name, bool running, bool from_ap)
{
    handled = 0;
    raised_by_ap = 0;
    target = n_total;
    for (unsigned i = 0; i < n_total; ++i)
        t_handler[i] = t_raise[i] = 0;
    host_raise = !from_ap;
    paced_ack = !from_ap && !is_edu;
    if (!from_ap) {
        mmio_write32(regs + 0x20, (uint32_t)(uintptr_t)t_raise); /* the raise log */
        mmio_write32(regs + 0x24, 0);
        mmio_write32(regs + 0x28, n_total);
        mmio_write32(regs + 0x08, n_total);
        mmio_write32(regs + 0x0c, 1);
        mmio_write32(regs + 0x10, 100000);         /* 100 us after each ACK */
        mmio_write32(regs + 0x14, 1u | (1u << 8)); /* start, paced */
    } else {
        apic_icr(1, V_TICK); /* wake the AP: it starts raising */
    }
    if (running)
        rt_run_user(user_wait, 0, true);
    else
        halted_wait();
    unsigned raised = from_ap ? raised_by_ap : mmio_read32(regs + IRQDEV_RAISED);
    rt_check(handled == n_total && raised == n_total, "%s: %u raised, %u handled", name, raised,
             handled);
    unsigned n = 0;
    for (unsigned i = WARMUP; i < n_total; ++i)
        samples[n++] = bench_delta(t_handler[i], t_raise[i]);
    bench_print(name, samples, n);
    target = 0;
}

void guest_main(void)
{
    n_total = bench_samples() + WARMUP;
    apic_enable(0xff);
    rt_set_handler(V_MSI, on_msi);
    rt_set_handler(V_TICK, on_tick);
    struct pci_dev dev;
    struct msix mx;
    if (pci_find(0x6876, 0x0001, &dev) && msix_init(&dev, &mx, 0xc0001000)) {
        regs = pci_bar(&dev, 0, 0xc0000000);
        msix_control(&mx, true, false);
        msix_set(&mx, 0, 0, V_MSI, false);
    } else if (pci_find(0x1234, 0x11e8, &dev)) {
        is_edu = true;
        regs = pci_bar(&dev, 0, 0xc0000000);
        msi_enable(&dev, 0, V_MSI);
    } else {
        rt_printf("msi_running: skipped (no irq device or edu)\nmsi_halted: skipped (no irq device "
                  "or edu)\n");
        rt_done();
    }
    if (rt_cpu_count() < 2 || !rt_start_ap(1, ap_main)) {
        rt_check(false, "needs 2 CPUs");
        rt_done();
    }
    bool all = !bench_arg("mode");
    if (!is_edu && (all || bench_arg_is("mode", "running")))
        series("msi_running", true, false);
    if (!is_edu && (all || bench_arg_is("mode", "halted")))
        series("msi_halted", false, false);
    if (all || bench_arg_is("mode", "vcpu_running"))
        series(is_edu ? "msi_running" : "msi_vcpu_running", true, true);
    if (all || bench_arg_is("mode", "vcpu_halted"))
        series(is_edu ? "msi_halted" : "msi_vcpu_halted", false, true);
    rt_done();
}
