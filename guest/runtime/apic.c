/* Local APIC access for guest programs (SDM Vol3 ch. 11). */
#include "apic.h"

#define APIC_MMIO 0xfee00000ul

static bool x2;

bool apic_x2(void)
{
    return x2;
}

uint32_t apic_read(uint32_t reg)
{
    if (x2)
        return (uint32_t)rdmsr(0x800 + (reg >> 4));
    return *(volatile uint32_t*)(APIC_MMIO + reg);
}

void apic_write(uint32_t reg, uint32_t v)
{
    if (x2)
        wrmsr(0x800 + (reg >> 4), v);
    else
        *(volatile uint32_t*)(APIC_MMIO + reg) = v;
}

void apic_enable(uint8_t spurious)
{
    uint64_t base = rdmsr(MSR_APIC_BASE);
    if (!(base & (1u << 11)))
        wrmsr(MSR_APIC_BASE, base | (1u << 11));
    apic_write(APIC_SVR, 0x100u | spurious);
}

void apic_enable_x2apic(void)
{
    uint64_t base = rdmsr(MSR_APIC_BASE);
    wrmsr(MSR_APIC_BASE, base | (1u << 11) | (1u << 10));
    x2 = true;
}

void apic_x2_forget(void)
{
    x2 = false;
}

uint32_t apic_id(void)
{
    uint32_t id = apic_read(APIC_ID);
    return x2 ? id : id >> 24;
}

void apic_eoi(void)
{
    apic_write(APIC_EOI, 0);
}

void apic_icr(uint32_t dest, uint32_t lo)
{
    if (x2) {
        wrmsr(0x830, ((uint64_t)dest << 32) | lo);
        return;
    }
    apic_write(APIC_ICR2, dest << 24);
    apic_write(APIC_ICR, lo);
}

bool apic_isr(uint8_t v)
{
    return apic_read(APIC_ISR + 0x10 * (v / 32)) & (1u << (v % 32));
}

bool apic_irr(uint8_t v)
{
    return apic_read(APIC_IRR + 0x10 * (v / 32)) & (1u << (v % 32));
}

void apic_tick_start(uint8_t vector)
{
    apic_write(APIC_TDCR, 0xb);
    apic_write(APIC_LVT_TIMER, TIMER_PERIODIC | vector);
    apic_write(APIC_TMICT, 1000000);
}

void apic_tick_stop(uint8_t vector)
{
    apic_write(APIC_LVT_TIMER, LVT_MASKED | vector);
}
