/* Ring 3: entry and return, a hot loop at CPL 3, and a fault raised in ring 3 (taken on the
 * TSS's RSP0 stack and returned from). */
#include "rt.h"

static volatile unsigned user_cpl = 99;
static volatile uint64_t loop_sum;
static volatile int seen_vector = -1;
static volatile uint64_t seen_cs, resume_at;

static void user_fn(void* arg)
{
    user_cpl = rt_cpl();
    uint64_t n = *(uint64_t*)arg, sum = 0;
    for (uint64_t i = 1; i <= n; ++i)
        sum += i;
    loop_sum = sum;
}

static void on_gp(struct rt_frame* f)
{
    seen_vector = (int)f->vector;
    seen_cs = f->cs;
    f->rip = resume_at;
}

static void user_privileged(void* arg)
{
    (void)arg;
    /* HLT at CPL 3 raises #GP(0) (SDM Vol2A "HLT"). */
    __asm__ volatile("lea 1f(%%rip), %%rax\n\tmov %%rax, resume_at(%%rip)\n\thlt\n1:" ::
                         : "rax", "memory");
    user_cpl = rt_cpl();
}

void guest_main(void)
{
    rt_check(rt_cpl() == 0, "guest_main runs at CPL 0");
    uint64_t n = 1000000;
    rt_run_user(user_fn, &n, true);
    rt_check(user_cpl == 3, "user function ran at CPL 3 (got %u)", user_cpl);
    rt_check(loop_sum == n * (n + 1) / 2, "ring-3 hot loop computed %lu", loop_sum);
    rt_check(rt_cpl() == 0, "back at CPL 0 after the ring-3 run");

    rt_set_handler(13, on_gp);
    user_cpl = 99;
    rt_run_user(user_privileged, 0, false);
    rt_check(seen_vector == 13 && (seen_cs & 3) == 3, "HLT in ring 3 raises #GP from CPL 3");
    rt_check(user_cpl == 3, "ring 3 resumes after its fault handler");

    uint64_t t0 = rdtsc();
    rt_run_user(user_fn, &n, true);
    uint64_t t1 = rdtsc();
    rt_check(t1 > t0, "TSC advances across a ring-3 run (%lu cycles)", t1 - t0);
}
