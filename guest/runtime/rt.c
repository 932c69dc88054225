/* hvaccel guest runtime: descriptor tables, exceptions, ring 3, checks and exit. */
#include "rt.h"

#define COM1 0x3f8
#define DEBUG_EXIT_PORT 0xf4
#define KERNEL_CS 0x08
#define TSS_SEL 0x28

struct __attribute__((packed)) tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
};
_Static_assert(sizeof(struct tss64) == 104, "TSS layout (SDM Vol3 8.7)");

struct __attribute__((packed)) idt_gate {
    uint16_t offset_lo, selector;
    uint8_t ist, type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi, zero;
};
_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate layout (SDM Vol3 6.14.1)");

struct __attribute__((packed)) desc_ptr {
    uint16_t limit;
    uint64_t base;
};

extern uint64_t rt_gdt[];
extern char rt_isr_stubs[];
extern char rt_user_exit[], rt_user_resume[];
extern uint64_t rt_user_ctx;
extern void rt_user_enter(void (*fn)(void*), void* arg, uint64_t rsp, uint64_t rflags);

static struct tss64 tss;
struct desc_ptr rt_idt_ptr; /* shared with the APs (smp.c) */
static struct idt_gate idt[256] __attribute__((aligned(16)));
static rt_handler handlers[256];
static uint8_t irq_stack[16384] __attribute__((aligned(16)));
static uint8_t user_stack[65536] __attribute__((aligned(16)));
static unsigned checks, failures;

static void setup_tss(void)
{
    uint64_t base = (uint64_t)(uintptr_t)&tss;
    tss.rsp[0] = (uint64_t)(uintptr_t)(irq_stack + sizeof irq_stack);
    tss.iomap_base = sizeof tss; /* no I/O bitmap: ring 3 has no port access */
    /* SDM Vol3 8.2.3: 16-byte TSS descriptor, type 9 (available 64-bit TSS), present. */
    rt_gdt[5] = (sizeof tss - 1) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
                (((base >> 24) & 0xff) << 56);
    rt_gdt[6] = base >> 32;
    __asm__ volatile("ltr %w0" ::"r"(TSS_SEL));
}

static void setup_idt(void)
{
    uint64_t stubs = (uint64_t)(uintptr_t)rt_isr_stubs;
    for (unsigned v = 0; v < 256; ++v) {
        uint64_t a = stubs + 16 * v;
        idt[v].offset_lo = (uint16_t)a;
        idt[v].selector = KERNEL_CS;
        idt[v].type_attr = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
        idt[v].offset_mid = (uint16_t)(a >> 16);
        idt[v].offset_hi = (uint32_t)(a >> 32);
    }
    rt_idt_ptr.limit = sizeof idt - 1;
    rt_idt_ptr.base = (uint64_t)(uintptr_t)idt;
    __asm__ volatile("lidt %0" ::"m"(rt_idt_ptr));
}

_Noreturn void rt_start(void)
{
    /* Firmware may leave the 8259s unmasked with their vectors at 0x08 (SeaBIOS does): a PIT
     * tick would then look like #DF. Mask both; interrupts come through the local APIC. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    setup_tss();
    setup_idt();
    guest_main();
    rt_done();
}

void rt_putc(char c)
{
    outb(COM1, (uint8_t)c);
}

void rt_puts(const char* s)
{
    while (*s)
        rt_putc(*s++);
}

int rt_printf(const char* fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = rt_vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rt_puts(buf);
    return n;
}

_Noreturn void rt_exit(unsigned status)
{
    outl(DEBUG_EXIT_PORT, status);
    for (;;)
        __asm__ volatile("cli; hlt");
}

bool rt_check(bool ok, const char* fmt, ...)
{
    char buf[200];
    va_list ap;
    va_start(ap, fmt);
    rt_vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ++checks;
    if (!ok)
        ++failures;
    rt_printf("%s %u - %s\n", ok ? "ok" : "not ok", checks, buf);
    return ok;
}

unsigned rt_failures(void)
{
    return failures;
}

_Noreturn void rt_done(void)
{
    rt_printf("%u passed, %u failed\n", checks - failures, failures);
    rt_exit(failures ? 1 : 0);
}

void rt_set_handler(uint8_t vector, rt_handler h)
{
    handlers[vector] = h;
}

const char* rt_exception_name(uint8_t v)
{
    static const char* const names[32] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
                                          "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "15",
                                          "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "22",  "23",
                                          "24",  "25",  "26",  "27",  "#HV", "#VC", "#SX", "31"};
    return v < 32 ? names[v] : "IRQ";
}

/* Where an rt_*msr_safe access resumes after a #GP (0: no such access running). */
static volatile uint64_t gp_resume;
static volatile bool gp_seen;

bool rt_rdmsr_safe(uint32_t msr, uint64_t* v)
{
    uint32_t lo = 0, hi = 0;
    gp_seen = false;
    __asm__ volatile("lea 1f(%%rip), %%r11\n\tmov %%r11, gp_resume(%%rip)\n\trdmsr\n1:"
                     : "+a"(lo), "+d"(hi)
                     : "c"(msr)
                     : "r11", "memory");
    gp_resume = 0;
    if (gp_seen)
        return false;
    *v = ((uint64_t)hi << 32) | lo;
    return true;
}

bool rt_wrmsr_safe(uint32_t msr, uint64_t v)
{
    gp_seen = false;
    __asm__ volatile("lea 1f(%%rip), %%r11\n\tmov %%r11, gp_resume(%%rip)\n\twrmsr\n1:" ::"c"(msr),
                     "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
                     : "r11", "memory");
    gp_resume = 0;
    return !gp_seen;
}

void rt_isr(struct rt_frame* f)
{
    uint8_t v = (uint8_t)f->vector;
    if (v == 13 && gp_resume) {
        gp_seen = true;
        f->rip = gp_resume;
        gp_resume = 0;
        return;
    }
    if (v == 6 && (f->cs & 3) == 3 && f->rip == (uint64_t)(uintptr_t)rt_user_exit) {
        /* The end of a ring-3 run: return to rt_user_enter's caller at CPL 0. */
        f->rip = (uint64_t)(uintptr_t)rt_user_resume;
        f->cs = KERNEL_CS;
        f->ss = 0x10;
        f->rsp = rt_user_ctx;
        f->rflags = 0x2;
        return;
    }
    if (handlers[v]) {
        handlers[v](f);
        return;
    }
    if (v < 32) {
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        rt_printf("unexpected exception %s (vector %u) at rip=%#lx error=%#lx cr2=%#lx\n",
                  rt_exception_name(v), v, f->rip, f->error, cr2);
        rt_exit(RT_EXIT_EXCEPTION + v);
    }
    rt_printf("unexpected interrupt vector %u at rip=%#lx\n", v, f->rip);
    rt_exit(RT_EXIT_INTERRUPT);
}

void rt_run_user(void (*fn)(void*), void* arg, bool irqs)
{
    rt_user_enter(fn, arg, (uint64_t)(uintptr_t)(user_stack + sizeof user_stack),
                  irqs ? 0x202 : 0x2);
}

unsigned rt_cpl(void)
{
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    return cs & 3;
}

void rt_fw_cfg_read(uint16_t key, void* buf, size_t len)
{
    outw(0x510, key);
    uint8_t* p = buf;
    for (size_t i = 0; i < len; ++i)
        p[i] = inb(0x511);
}
