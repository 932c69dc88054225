/* The IOAPIC: an edge-triggered pin delivers once per rising edge; a level-triggered pin sets
 * remote IRR, is delivered again after an EOI while still asserted, and clears remote IRR on the
 * EOI after the line drops; with EOI broadcast suppressed (SVR bit 12) only the IOAPIC's EOI
 * register clears remote IRR. The lines are driven through QEMU's pc-testdev ports (0x2000 + n). */
#include "apic.h"

#define IOAPIC ((volatile uint32_t*)0xfec00000ul)
#define IRQ_LINE(n) ((uint16_t)(0x2000 + (n)))
#define REMOTE_IRR (1u << 14)

enum { PIN_EDGE = 10, PIN_LEVEL = 11, V_EDGE = 0x61, V_LEVEL = 0x62 };

static volatile unsigned count_edge, count_level;
static volatile bool drop_on_second;

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

static void route(unsigned pin, uint8_t vector, bool level)
{
    ioapic_write(0x10 + 2 * pin + 1, 0); /* destination: APIC ID 0 */
    ioapic_write(0x10 + 2 * pin, vector | (level ? (1u << 15) : 0));
}

static uint32_t redir_low(unsigned pin)
{
    return ioapic_read(0x10 + 2 * pin);
}

static void on_edge(struct rt_frame* f)
{
    (void)f;
    ++count_edge;
    apic_eoi();
}

static void on_level(struct rt_frame* f)
{
    (void)f;
    ++count_level;
    if (count_level >= 2 || !drop_on_second)
        outb(IRQ_LINE(PIN_LEVEL), 0);
    apic_eoi();
}

static bool wait(volatile unsigned* c, unsigned n)
{
    for (int i = 0; i < 200 && *c < n; ++i) {
        sti();
        for (int j = 0; j < 64; ++j)
            __asm__ volatile("pause");
        cli();
    }
    return *c >= n;
}

void guest_main(void)
{
    rt_set_handler(V_EDGE, on_edge);
    rt_set_handler(V_LEVEL, on_level);
    apic_enable(0xff);
    uint32_t ver = ioapic_read(1);
    rt_check((ver & 0xff) == 0x20 && ((ver >> 16) & 0xff) == 23,
             "IOAPIC version 0x20 with 24 pins (%#x)", ver);

    route(PIN_EDGE, V_EDGE, false);
    outb(IRQ_LINE(PIN_EDGE), 1);
    outb(IRQ_LINE(PIN_EDGE), 0);
    rt_check(wait(&count_edge, 1), "a rising edge on pin %d delivers vector %#x", PIN_EDGE, V_EDGE);
    outb(IRQ_LINE(PIN_EDGE), 1);
    outb(IRQ_LINE(PIN_EDGE), 1); /* still high: no new edge */
    wait(&count_edge, 3);
    rt_check(count_edge == 2, "one more edge, one more interrupt (%u)", count_edge);
    outb(IRQ_LINE(PIN_EDGE), 0);

    /* Level: first EOI while still asserted re-delivers; the second entry drops the line. */
    drop_on_second = true;
    route(PIN_LEVEL, V_LEVEL, true);
    outb(IRQ_LINE(PIN_LEVEL), 1);
    bool again = wait(&count_level, 2);
    rt_check(again, "a level pin held high is delivered again after EOI (%u)", count_level);
    rt_check(!(redir_low(PIN_LEVEL) & REMOTE_IRR), "remote IRR clear after the final EOI");

    /* Directed EOI: with broadcasts suppressed, remote IRR stays until the EOI register. */
    apic_write(APIC_SVR, apic_read(APIC_SVR) | (1u << 12));
    drop_on_second = false;
    count_level = 0;
    outb(IRQ_LINE(PIN_LEVEL), 1);
    wait(&count_level, 1);
    rt_check(count_level == 1 && (redir_low(PIN_LEVEL) & REMOTE_IRR),
             "EOI broadcast suppressed: remote IRR still set (%#x)", redir_low(PIN_LEVEL));
    IOAPIC[0x40 / 4] = V_LEVEL; /* the IOAPIC's EOI register */
    rt_check(!(redir_low(PIN_LEVEL) & REMOTE_IRR), "the IOAPIC EOI register clears remote IRR");
}
