/* PCI for guest programs: configuration mechanism #1 (ports 0xCF8/0xCFC), bus 0 scan, memory
 * BARs, capabilities and MSI-X / MSI programming. Works under hvaccel and QEMU (pc/q35). */
#ifndef HVACCEL_GUEST_PCI_H
#define HVACCEL_GUEST_PCI_H

#include "rt.h"

#define PCI_COMMAND 0x04
#define PCI_CMD_MEMORY (1u << 1)
#define PCI_CMD_BUS_MASTER (1u << 2)
#define PCI_CMD_INTX_DISABLE (1u << 10)
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define PCI_CAP_MSI 0x05
#define PCI_CAP_MSIX 0x11

#define MSIX_CTRL_ENABLE (1u << 15)
#define MSIX_CTRL_FMASK (1u << 14)
#define MSIX_ENTRY_MASKED 1u

struct pci_dev {
    uint8_t slot;
    uint16_t vendor, device;
};

uint32_t pci_read32(const struct pci_dev* d, uint8_t off);
uint16_t pci_read16(const struct pci_dev* d, uint8_t off);
void pci_write32(const struct pci_dev* d, uint8_t off, uint32_t v);
void pci_write16(const struct pci_dev* d, uint8_t off, uint16_t v);
/* Bus 0, function 0 of each slot: the first device with this vendor/device ID. */
bool pci_find(uint16_t vendor, uint16_t device, struct pci_dev* out);
/* The size of 32-bit memory BAR `bar` (sized by writing all-ones with decoding off). */
uint32_t pci_bar_size(const struct pci_dev* d, int bar);
/* The address of memory BAR `bar`; if firmware left it at 0, places it at `fallback`. Turns on
 * memory decoding and bus mastering. */
uint64_t pci_bar(const struct pci_dev* d, int bar, uint64_t fallback);
/* Offset of capability `id`, or 0. */
uint8_t pci_find_cap(const struct pci_dev* d, uint8_t id);

/* MSI-X: the table (mapped through its BAR) and the control bits. */
struct msix {
    struct pci_dev dev;
    uint8_t cap;
    unsigned entries;
    volatile uint32_t* table;
    volatile uint32_t* pba;
};
bool msix_init(const struct pci_dev* d, struct msix* m, uint64_t bar_fallback);
void msix_control(struct msix* m, bool enable, bool function_mask);
/* Programs entry n: fixed delivery, physical destination `apic_id`, edge; masked or not. */
void msix_set(struct msix* m, unsigned n, uint32_t apic_id, uint8_t vector, bool masked);
/* Writes a raw address/data (hostile tests). */
void msix_set_raw(struct msix* m, unsigned n, uint64_t address, uint32_t data, bool masked);
void msix_mask(struct msix* m, unsigned n, bool masked);
bool msix_pending(struct msix* m, unsigned n);

/* MSI (single message, e.g. QEMU's edu device): destination and vector, enable. */
bool msi_enable(const struct pci_dev* d, uint32_t apic_id, uint8_t vector);

/* The compatibility-format MSI address for physical destination `apic_id`. */
static inline uint32_t msi_address(uint32_t apic_id)
{
    return 0xfee00000u | ((apic_id & 0xff) << 12);
}

static inline uint32_t mmio_read32(uint64_t a)
{
    return *(volatile uint32_t*)(uintptr_t)a;
}
static inline void mmio_write32(uint64_t a, uint32_t v)
{
    *(volatile uint32_t*)(uintptr_t)a = v;
}

#endif
