/* A hostile guest for the irq device (hvaccel --irqdev): random writes to the device's PCI
 * configuration space (BARs, command, the MSI-X capability), its MSI-X table (garbage addresses,
 * random vectors including the illegal 0-15, unmasking), its registers (log addresses anywhere,
 * bursts, raises), with interrupts off; then it puts the device back in order and checks that it
 * still works: a paced burst arrives exactly once. hvaccel must keep running, refuse what lies
 * outside the guest and count the garbage MSIs as remapping faults. Prints "hostile: N writes". */
#include "apic.h"
#include "pci.h"

enum { V_GOOD = 0x50, ROUNDS = 1500 };
#define R_COUNT 0x08
#define R_ENTRIES 0x0c
#define R_INTERVAL 0x10
#define R_CONTROL 0x14
#define R_ACK 0x1c
#define R_LOG_LO 0x20
#define R_LOG_HI 0x24
#define R_LOG_SLOTS 0x28
#define R_RAISE_NOW 0x30

static uint64_t seed = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static volatile unsigned good, stray;
static volatile bool acking;
static uint64_t regs;

static void on_good(struct rt_frame* f)
{
    (void)f;
    ++good;
    apic_eoi();
    if (acking)
        mmio_write32(regs + R_ACK, 1);
}

static void on_stray(struct rt_frame* f)
{
    (void)f;
    ++stray;
    apic_eoi();
}

/* An MSI-X message: half pure garbage (almost never an MSI address), half in the interrupt
 * window with a random fixed or lowest-priority vector (0-15 and 32-255: illegal ones too) to
 * CPU 0, CPU 1 (never started) or a missing CPU. */
static void random_message(uint64_t* addr, uint32_t* data)
{
    uint64_t r = rnd();
    if (r & 1) {
        *addr = rnd();
        *data = (uint32_t)rnd();
    } else {
        /* Vectors 16-31 are left out: delivered, they would look like exceptions with a
         * missing error code to this guest's IDT (a guest-side problem, not the VMM's). */
        uint32_t v = (uint32_t)(r >> 32) & 0xff;
        if (v >= 16 && v < 32)
            v += 16;
        *addr = 0xfee00000u | ((r >> 8) & 0x3000u) | ((r >> 20) & 0xcu);
        *data = v | (uint32_t)((r >> 40) & 1) << 8;
    }
}

void guest_main(void)
{
    apic_enable(0xff);
    for (unsigned v = 0x20; v <= 0xff; ++v)
        rt_set_handler((uint8_t)v, on_stray);
    rt_set_handler(V_GOOD, on_good);
    struct pci_dev dev;
    struct msix mx;
    if (!rt_check(pci_find(0x6876, 0x0001, &dev) && msix_init(&dev, &mx, 0xc0001000),
                  "the irq device and its MSI-X table"))
        rt_done();
    regs = pci_bar(&dev, 0, 0xc0000000);
    uint32_t bar0 = pci_read32(&dev, PCI_BAR0), bar1 = pci_read32(&dev, PCI_BAR0 + 4);
    volatile uint32_t* table = mx.table;

    unsigned writes = 0;
    cli();
    for (unsigned i = 0; i < ROUNDS; ++i) {
        uint64_t r = rnd();
        switch (r % 6) {
        case 0: /* configuration space, anywhere (BARs and command included) */
            pci_write32(&dev, (uint8_t)((r >> 8) & 0xfc), (uint32_t)rnd());
            break;
        case 1: /* the MSI-X control word */
            pci_write16(&dev, (uint8_t)(mx.cap + 2), (uint16_t)rnd());
            break;
        case 2: { /* an MSI-X entry */
            uint64_t a;
            uint32_t d;
            random_message(&a, &d);
            msix_set_raw(&mx, (unsigned)(r >> 8) % mx.entries, a, d, (r >> 16) & 1);
            break;
        }
        case 3: /* device registers, log anywhere in the 64-bit space */
            mmio_write32(regs + ((r >> 8) & 0x3c), (uint32_t)rnd());
            mmio_write32(regs + R_LOG_HI, (uint32_t)rnd());
            mmio_write32(regs + R_LOG_SLOTS, (uint32_t)rnd());
            break;
        case 4: /* raise now, any entry (some beyond the table) */
            mmio_write32(regs + R_RAISE_NOW, (uint32_t)(r >> 8) % 12);
            break;
        default: /* a short burst */
            mmio_write32(regs + R_COUNT, (uint32_t)(r >> 8) % 8);
            mmio_write32(regs + R_ENTRIES, (uint32_t)(r >> 16));
            mmio_write32(regs + R_INTERVAL, 1000);
            mmio_write32(regs + R_CONTROL, 1);
            break;
        }
        ++writes;
        /* The registers may have moved: keep BAR0 where the loop can reach it. */
        pci_write32(&dev, PCI_BAR0, bar0);
        pci_write16(&dev, PCI_COMMAND, PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER);
        (void)table;
    }
    mmio_write32(regs + R_CONTROL, 2); /* stop any burst */
    rt_printf("hostile: %u writes\n", writes * 2);
    /* Let whatever was pending arrive: 20 ticks of 1 ms, halted in between. */
    apic_tick_start(0xfc);
    for (int i = 0; i < 20; ++i)
        rt_wait_irq();
    apic_tick_stop(0xfc);
    rt_printf("stray interrupts taken: %u (20 of them timer ticks)\n", stray);

    /* Back in order: BARs, command, MSI-X, one good entry; every other entry masked. */
    pci_write32(&dev, PCI_BAR0, bar0);
    pci_write32(&dev, PCI_BAR0 + 4, bar1);
    pci_write16(&dev, PCI_COMMAND, PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER);
    msix_control(&mx, true, true);
    for (unsigned n = 0; n < mx.entries; ++n)
        msix_set_raw(&mx, n, 0, 0, true);
    msix_set(&mx, 0, 0, V_GOOD, false);
    msix_control(&mx, true, false);
    for (int i = 0; i < 50; ++i)
        rt_wait_irq_bounded();
    mmio_write32(regs + R_LOG_SLOTS, 0);
    good = 0;
    acking = true;
    mmio_write32(regs + R_COUNT, 10);
    mmio_write32(regs + R_ENTRIES, 1);
    mmio_write32(regs + R_INTERVAL, 0);
    mmio_write32(regs + R_CONTROL, 1u | (1u << 8));
    apic_tick_start(0xfc);
    for (int i = 0; i < 3000 && good < 10; ++i)
        rt_wait_irq();
    apic_tick_stop(0xfc);
    rt_check(good == 10, "after the garbage the device still delivers a burst exactly (%u)", good);
    rt_done();
}
