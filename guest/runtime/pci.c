#include "pci.h"

static uint32_t cfg_addr(uint8_t slot, uint8_t off)
{
    return 0x80000000u | ((uint32_t)slot << 11) | (off & 0xfcu);
}

uint32_t pci_read32(const struct pci_dev* d, uint8_t off)
{
    outl(0xcf8, cfg_addr(d->slot, off));
    return inl(0xcfc);
}

uint16_t pci_read16(const struct pci_dev* d, uint8_t off)
{
    return (uint16_t)(pci_read32(d, off & 0xfc) >> ((off & 2) * 8));
}

void pci_write32(const struct pci_dev* d, uint8_t off, uint32_t v)
{
    outl(0xcf8, cfg_addr(d->slot, off));
    outl(0xcfc, v);
}

void pci_write16(const struct pci_dev* d, uint8_t off, uint16_t v)
{
    outl(0xcf8, cfg_addr(d->slot, off));
    outw((uint16_t)(0xcfc + (off & 2)), v);
}

bool pci_find(uint16_t vendor, uint16_t device, struct pci_dev* out)
{
    for (uint8_t slot = 0; slot < 32; ++slot) {
        struct pci_dev d = {slot, 0, 0};
        uint32_t id = pci_read32(&d, 0);
        if ((id & 0xffff) == vendor && (id >> 16) == device) {
            d.vendor = vendor;
            d.device = device;
            *out = d;
            return true;
        }
    }
    return false;
}

uint32_t pci_bar_size(const struct pci_dev* d, int bar)
{
    uint8_t off = (uint8_t)(PCI_BAR0 + 4 * bar);
    uint16_t cmd = pci_read16(d, PCI_COMMAND);
    pci_write16(d, PCI_COMMAND, cmd & (uint16_t)~PCI_CMD_MEMORY);
    uint32_t old = pci_read32(d, off);
    pci_write32(d, off, 0xffffffffu);
    uint32_t mask = pci_read32(d, off) & ~0xfu;
    pci_write32(d, off, old);
    pci_write16(d, PCI_COMMAND, cmd);
    return mask ? ~mask + 1 : 0;
}

uint64_t pci_bar(const struct pci_dev* d, int bar, uint64_t fallback)
{
    uint8_t off = (uint8_t)(PCI_BAR0 + 4 * bar);
    uint32_t v = pci_read32(d, off);
    uint64_t addr = v & ~0xfull;
    if ((v & 6) == 4) /* 64-bit BAR */
        addr |= (uint64_t)pci_read32(d, (uint8_t)(off + 4)) << 32;
    if (addr == 0) {
        addr = fallback;
        pci_write32(d, off, (uint32_t)addr);
        if ((v & 6) == 4)
            pci_write32(d, (uint8_t)(off + 4), (uint32_t)(addr >> 32));
    }
    uint16_t cmd = pci_read16(d, PCI_COMMAND);
    pci_write16(d, PCI_COMMAND, cmd | PCI_CMD_MEMORY | PCI_CMD_BUS_MASTER);
    return addr;
}

uint8_t pci_find_cap(const struct pci_dev* d, uint8_t id)
{
    if (!(pci_read16(d, 0x06) & (1u << 4)))
        return 0;
    uint8_t p = (uint8_t)(pci_read32(d, PCI_CAP_PTR) & 0xfc);
    for (int guard = 0; p && guard < 48; ++guard) {
        uint32_t h = pci_read32(d, p);
        if ((h & 0xff) == id)
            return p;
        p = (uint8_t)((h >> 8) & 0xfc);
    }
    return 0;
}

bool msix_init(const struct pci_dev* d, struct msix* m, uint64_t bar_fallback)
{
    uint8_t cap = pci_find_cap(d, PCI_CAP_MSIX);
    if (!cap)
        return false;
    m->dev = *d;
    m->cap = cap;
    m->entries = (pci_read16(d, (uint8_t)(cap + 2)) & 0x7ff) + 1;
    uint32_t t = pci_read32(d, (uint8_t)(cap + 4)), p = pci_read32(d, (uint8_t)(cap + 8));
    uint64_t tbar = pci_bar(d, (int)(t & 7), bar_fallback);
    uint64_t pbar = (p & 7) == (t & 7) ? tbar : pci_bar(d, (int)(p & 7), bar_fallback + 0x1000);
    m->table = (volatile uint32_t*)(uintptr_t)(tbar + (t & ~7u));
    m->pba = (volatile uint32_t*)(uintptr_t)(pbar + (p & ~7u));
    return true;
}

void msix_control(struct msix* m, bool enable, bool function_mask)
{
    uint16_t c = pci_read16(&m->dev, (uint8_t)(m->cap + 2));
    c = (uint16_t)(c & ~(MSIX_CTRL_ENABLE | MSIX_CTRL_FMASK));
    if (enable)
        c |= MSIX_CTRL_ENABLE;
    if (function_mask)
        c |= MSIX_CTRL_FMASK;
    pci_write16(&m->dev, (uint8_t)(m->cap + 2), c);
}

void msix_set_raw(struct msix* m, unsigned n, uint64_t address, uint32_t data, bool masked)
{
    volatile uint32_t* e = m->table + 4 * n;
    e[3] = MSIX_ENTRY_MASKED; /* mask while the message changes (PCI 3.0 6.8.3.5) */
    e[0] = (uint32_t)address;
    e[1] = (uint32_t)(address >> 32);
    e[2] = data;
    if (!masked)
        e[3] = 0;
}

void msix_set(struct msix* m, unsigned n, uint32_t apic_id, uint8_t vector, bool masked)
{
    msix_set_raw(m, n, msi_address(apic_id), vector, masked);
}

void msix_mask(struct msix* m, unsigned n, bool masked)
{
    m->table[4 * n + 3] = masked ? MSIX_ENTRY_MASKED : 0;
}

bool msix_pending(struct msix* m, unsigned n)
{
    return (m->pba[n / 32] >> (n % 32)) & 1;
}

bool msi_enable(const struct pci_dev* d, uint32_t apic_id, uint8_t vector)
{
    uint8_t cap = pci_find_cap(d, PCI_CAP_MSI);
    if (!cap)
        return false;
    uint16_t ctl = pci_read16(d, (uint8_t)(cap + 2));
    bool is64 = ctl & (1u << 7);
    pci_write32(d, (uint8_t)(cap + 4), msi_address(apic_id));
    if (is64) {
        pci_write32(d, (uint8_t)(cap + 8), 0);
        pci_write16(d, (uint8_t)(cap + 12), vector);
    } else {
        pci_write16(d, (uint8_t)(cap + 8), vector);
    }
    /* One message (MME = 0), enable. */
    pci_write16(d, (uint8_t)(cap + 2), (uint16_t)((ctl & ~(7u << 4)) | 1u));
    uint16_t cmd = pci_read16(d, PCI_COMMAND);
    pci_write16(d, PCI_COMMAND, cmd | PCI_CMD_BUS_MASTER | PCI_CMD_INTX_DISABLE);
    return true;
}
