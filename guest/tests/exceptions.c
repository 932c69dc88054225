/* Exceptions raised with real faults (this KVM cannot emulate int3/int n/vmcall in ring 0):
 * #DE, #UD, #GP (non-canonical access and an unimplemented MSR), #PF (unmapped address).
 * A handler records the vector, error code and CR2, and resumes after the faulting
 * instruction at an address the test stored beforehand. */
#include "rt.h"

static volatile uint64_t resume_at;
static volatile int seen_vector = -1;
static volatile uint64_t seen_error, seen_cr2, seen_cs;

static void on_fault(struct rt_frame* f)
{
    seen_vector = (int)f->vector;
    seen_error = f->error;
    seen_cs = f->cs;
    __asm__ volatile("mov %%cr2, %0" : "=r"(seen_cr2));
    f->rip = resume_at;
}

/* Stores the address of label 1 (after the instruction) as the resume point, then runs it. */
#define FAULT(insn, ...)                                                                           \
    __asm__ volatile("lea 1f(%%rip), %%rax\n\tmov %%rax, resume_at(%%rip)\n\t" insn "\n1:" ::      \
                         : "rax", "memory" __VA_OPT__(, ) __VA_ARGS__)

static void reset(void)
{
    seen_vector = -1;
    seen_error = ~0ull;
}

void guest_main(void)
{
    for (unsigned v = 0; v < 32; ++v)
        rt_set_handler((uint8_t)v, on_fault);

    reset();
    FAULT("xor %%edx, %%edx\n\txor %%ecx, %%ecx\n\tmov $1, %%eax\n\tdiv %%ecx", "rcx", "rdx");
    rt_check(seen_vector == 0, "divide by zero raises #DE (got %d)", seen_vector);

    reset();
    FAULT("ud2");
    rt_check(seen_vector == 6, "ud2 raises #UD (got %d)", seen_vector);

    reset();
    FAULT("movabs $0x8000000000000000, %%rcx\n\tmov (%%rcx), %%rcx", "rcx");
    rt_check(seen_vector == 13 && seen_error == 0,
             "non-canonical load raises #GP(0) (got %d, error %#lx)", seen_vector, seen_error);

    reset();
    FAULT("mov $0x4b564dff, %%ecx\n\trdmsr", "rcx", "rdx");
    rt_check(seen_vector == 13, "rdmsr of an unimplemented MSR raises #GP (got %d)", seen_vector);

    reset();
    FAULT("mov $0x4b564dff, %%ecx\n\txor %%eax, %%eax\n\txor %%edx, %%edx\n\twrmsr", "rcx", "rdx");
    rt_check(seen_vector == 13, "wrmsr of an unimplemented MSR raises #GP (got %d)", seen_vector);

    reset();
    FAULT("movabs $0x140000000, %%rcx\n\tmov (%%rcx), %%rcx", "rcx");
    rt_check(seen_vector == 14, "load from an unmapped page raises #PF (got %d)", seen_vector);
    rt_check(seen_cr2 == 0x140000000ull, "CR2 holds the faulting address (%#lx)", seen_cr2);
    rt_check((seen_error & 1) == 0 && (seen_error & 2) == 0,
             "#PF error code: not-present read (%#lx)", seen_error);

    reset();
    FAULT("movabs $0x140000000, %%rcx\n\tmovq $1, (%%rcx)", "rcx");
    rt_check(seen_vector == 14 && (seen_error & 2),
             "store to an unmapped page: #PF with W=1 (%#lx)", seen_error);
    rt_check((seen_cs & 3) == 0, "faults taken from ring 0 report CPL 0");
}
