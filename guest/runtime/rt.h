/*
 * hvaccel guest runtime: what guest test programs and benchmarks are written with.
 * A program defines `void guest_main(void)`; the runtime boots (long mode, GDT/IDT/TSS),
 * calls it, and exits with the status it reaches (rt_exit / rt_done).
 *
 * Result convention: rt_check() prints "ok N - what" or "not ok N - what"; rt_done() prints
 * "N passed, N failed" and exits with status 0 when every check passed, 1 otherwise. The
 * VMM (hvaccel or QEMU with isa-debug-exit) turns status s into process exit code (s << 1) | 1.
 * An unexpected exception prints its name and RIP and exits with RT_EXIT_EXCEPTION + vector.
 */
#ifndef HVACCEL_GUEST_RT_H
#define HVACCEL_GUEST_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_EXIT_EXCEPTION 0x40 /* + vector, for vectors 0..31 */
#define RT_EXIT_INTERRUPT 0x7e /* an interrupt arrived that nobody handles */

/* Saved by the entry stubs; handlers may change rip (e.g. to skip a faulting instruction). */
struct rt_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};

typedef void (*rt_handler)(struct rt_frame* f);

void guest_main(void);

/* Console and exit. */
void rt_putc(char c);
void rt_puts(const char* s);
int rt_printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_vsnprintf(char* buf, size_t n, const char* fmt, va_list ap);
int rt_snprintf(char* buf, size_t n, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
_Noreturn void rt_exit(unsigned status);

/* Checks. */
bool rt_check(bool ok, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void rt_done(void);
unsigned rt_failures(void);

/* Interrupts and exceptions. */
void rt_set_handler(uint8_t vector, rt_handler h);
const char* rt_exception_name(uint8_t vector);
/* RDMSR / WRMSR that report a #GP instead of ending the test: false if the access faulted
 * (*v is then left alone). */
bool rt_rdmsr_safe(uint32_t msr, uint64_t* v);
bool rt_wrmsr_safe(uint32_t msr, uint64_t v);

/* Ring 3: runs fn(arg) at CPL 3 on its own stack, with interrupts enabled when `irqs` is true;
 * returns when fn returns. */
void rt_run_user(void (*fn)(void*), void* arg, bool irqs);
unsigned rt_cpl(void);

/* Multiboot information as the loader passed it. */
struct rt_multiboot_info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr;
    uint32_t drives_length, drives_addr, config_table, boot_loader_name;
};
struct rt_multiboot_module {
    uint32_t start, end, string, reserved;
};
extern uint32_t rt_mb_magic, rt_mb_info;
static inline const struct rt_multiboot_info* rt_multiboot(void)
{
    return (const struct rt_multiboot_info*)(uintptr_t)rt_mb_info;
}

/* fw_cfg (QEMU's interface on ports 0x510/0x511). */
void rt_fw_cfg_read(uint16_t key, void* buf, size_t len);

/* Small freestanding helpers. */
void* memset(void* d, int c, size_t n);
void* memcpy(void* d, const void* s, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);
int strncmp(const char* a, const char* b, size_t n);

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline void rt_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}
/* CR8, the TPR's priority class in 64-bit mode (SDM Vol3 11.8.6.1). */
static inline unsigned read_cr8(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr8, %0" : "=r"(v));
    return (unsigned)v;
}
static inline void write_cr8(unsigned v)
{
    __asm__ volatile("mov %0, %%cr8" ::"r"((uint64_t)v) : "memory");
}
static inline void cli(void)
{
    __asm__ volatile("cli" ::: "memory");
}
static inline void sti(void)
{
    __asm__ volatile("sti" ::: "memory");
}
/* Waits for an interrupt the cheap way on every host: sti; hlt (the STI shadow covers HLT). */
static inline void rt_wait_irq(void)
{
    __asm__ volatile("sti; hlt; cli" ::: "memory");
}
/* One HLT with interrupts on, but bounded: a one-shot APIC timer... is the caller's business;
 * this only opens an interrupt window for pending interrupts without halting. */
static inline void rt_wait_irq_bounded(void)
{
    __asm__ volatile("sti; nop; nop; nop; nop; cli" ::: "memory");
}
static inline void rt_pause(void)
{
    __asm__ volatile("pause");
}

#endif
