/* Local APIC access for guest programs, in xAPIC (MMIO) or x2APIC (MSR) mode. */
#ifndef HVACCEL_GUEST_APIC_H
#define HVACCEL_GUEST_APIC_H

#include "rt.h"

#define APIC_ID 0x20
#define APIC_VERSION 0x30
#define APIC_TPR 0x80
#define APIC_PPR 0xa0
#define APIC_EOI 0xb0
#define APIC_LDR 0xd0
#define APIC_DFR 0xe0
#define APIC_SVR 0xf0
#define APIC_ISR 0x100
#define APIC_TMR 0x180
#define APIC_IRR 0x200
#define APIC_ESR 0x280
#define APIC_ICR 0x300
#define APIC_ICR2 0x310
#define APIC_LVT_TIMER 0x320
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_LVT_ERROR 0x370
#define APIC_TMICT 0x380
#define APIC_TMCCT 0x390
#define APIC_TDCR 0x3e0
#define APIC_SELF_IPI 0x3f0 /* x2APIC only */

#define MSR_APIC_BASE 0x1b
#define MSR_TSC_DEADLINE 0x6e0

#define ICR_FIXED (0u << 8)
#define ICR_NMI (4u << 8)
#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)
#define ICR_LOGICAL (1u << 11)
#define ICR_PENDING (1u << 12)
#define ICR_ASSERT (1u << 14)
#define ICR_LEVEL (1u << 15)
#define ICR_SELF (1u << 18)
#define ICR_ALL_INC (2u << 18)
#define ICR_ALL_EXC (3u << 18)

#define TIMER_ONESHOT (0u << 17)
#define TIMER_PERIODIC (1u << 17)
#define TIMER_TSC_DEADLINE (2u << 17)
#define LVT_MASKED (1u << 16)

bool apic_x2(void);
uint32_t apic_read(uint32_t reg);
void apic_write(uint32_t reg, uint32_t v);
/* Enables the APIC (IA32_APIC_BASE.EN, SVR bit 8 with `spurious` as the vector). */
void apic_enable(uint8_t spurious);
void apic_enable_x2apic(void);
/* After IA32_APIC_BASE was reset behind the helpers' back: use xAPIC MMIO again. */
void apic_x2_forget(void);
uint32_t apic_id(void);
void apic_eoi(void);
/* Sends an IPI: `dest` is the destination (APIC ID or logical bitmap), `lo` the ICR low bits. */
void apic_icr(uint32_t dest, uint32_t lo);
bool apic_isr(uint8_t vector);
/* A 1 ms periodic timer on `vector` (divide by 1, 1,000,000 counts at the 1 GHz APIC clock the
 * VMMs here give): a tick that bounds every sti; hlt of a wait loop, so a lost interrupt ends
 * the wait instead of hanging it. apic_tick_stop masks it again. */
void apic_tick_start(uint8_t vector);
void apic_tick_stop(uint8_t vector);
bool apic_irr(uint8_t vector);

#endif
