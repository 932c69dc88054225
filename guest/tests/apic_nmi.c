/* NMI delivery through the local APIC (SDM Vol3 6.7.1 "Handling Multiple NMIs"): while an NMI
 * handler runs, NMIs are blocked until the next IRET; NMIs that arrive meanwhile are held and
 * collapse into one, taken right after the IRET. Checked with NMIs the vCPU sends itself through
 * the ICR (physical destination = its own ID: the self shorthand is not valid with NMI delivery,
 * SDM Vol3 11.6.1) and with NMIs from another vCPU. Run with 2+ vCPUs.
 *
 * Nothing here depends on timing: every NMI the checks count was sent before the IRET it must
 * wait behind (an exit after the AP's report makes the VMM hand a pending NMI to the vCPU before
 * it resumes), and waits sleep in sti; hlt behind a periodic tick that only bounds a hang. */
#include "apic.h"
#include "smp.h"

enum { V_SEND_ONE = 0x50, V_SEND_THREE = 0x51, V_TICK = 0xfc };

static volatile unsigned nmis;
static volatile bool remote;      /* second part: the NMIs come from the AP */
static volatile bool ap_sent;     /* the AP sent its three NMIs */
static volatile bool sent_in_nmi; /* ... while the first NMI was being handled */

/* An exit to the VMM: a write to the POST diagnostic port, which nothing decodes. */
static void exit_to_vmm(void)
{
    outb(0x80, 0);
}

static void on_nmi(struct rt_frame* f)
{
    (void)f;
    if (++nmis != 1)
        return;
    if (!remote) {
        /* Three more NMIs while this one is handled: blocked, held, collapsed into one. */
        for (int i = 0; i < 3; ++i)
            apic_icr(apic_id(), ICR_NMI);
        return;
    }
    /* The AP sends three while this one is handled. Waiting inside an NMI handler cannot sleep
     * (HLT with IF clear and NMIs blocked would never wake): spin, bounded only against a hang. */
    apic_icr(1, V_SEND_THREE);
    for (unsigned long i = 0; i < 200000000ul && !ap_sent; ++i)
        rt_pause();
    exit_to_vmm();
    sent_in_nmi = ap_sent;
}

static void on_tick(struct rt_frame* f)
{
    (void)f;
    apic_eoi();
}

static void on_send_one(struct rt_frame* f)
{
    (void)f;
    apic_eoi();
    apic_icr(0, ICR_NMI);
}

static void on_send_three(struct rt_frame* f)
{
    (void)f;
    apic_eoi();
    for (int i = 0; i < 3; ++i)
        apic_icr(0, ICR_NMI);
    ap_sent = true;
}

static void ap_main(unsigned cpu)
{
    (void)cpu; /* it takes the requests in its sti; hlt loop */
}

/* Sleeps until `n` NMIs were taken, at most `ticks` periodic ticks (a hang guard). */
static void wait_nmis(unsigned n, int ticks)
{
    apic_tick_start(V_TICK);
    for (int i = 0; i < ticks && nmis < n; ++i)
        rt_wait_irq();
    apic_tick_stop(V_TICK);
}

void guest_main(void)
{
    rt_set_handler(2, on_nmi);
    rt_set_handler(V_TICK, on_tick);
    rt_set_handler(V_SEND_ONE, on_send_one);
    rt_set_handler(V_SEND_THREE, on_send_three);
    apic_enable(0xff);

    apic_icr(apic_id(), ICR_NMI);
    wait_nmis(2, 20000);
    exit_to_vmm(); /* one more entry: an NMI still held would be taken here */
    rt_check(nmis == 2,
             "[6.7.1] self NMIs sent while one is handled collapse into one, after IRET (%u)",
             nmis);

    if (!rt_check(rt_cpu_count() >= 2 && rt_start_ap(1, ap_main), "AP 1 started"))
        return;
    remote = true;
    nmis = 0;
    apic_icr(1, V_SEND_ONE);
    wait_nmis(2, 20000);
    exit_to_vmm();
    rt_check(sent_in_nmi, "[6.7.1] the AP's NMIs arrived while the first one was handled");
    rt_check(nmis == 2, "[6.7.1] NMIs from another vCPU collapse the same way (%u)", nmis);
}
