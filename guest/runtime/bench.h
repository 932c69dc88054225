/* What the latency workloads (guest/tests/bench_*.c) share: command-line numbers, the sample
 * protocol and bounded waits.
 *
 * Protocol (read by `hvaccel bench`, cmd/bench_samples.cpp): one line per series,
 * "NAME: c,c,c" with raw TSC-cycle latencies, "NAME: skipped (why)" when a series cannot run.
 * Command line: "samples=N" (per series), "mode=WORD" (which variant of the workload),
 * "tsc_khz=N" (the TSC frequency the host measured; converts APIC timer counts and bounds
 * waits). A workload checks with rt_check() that every interrupt it raised arrived exactly once,
 * counted on the raising side and in the handler, so the image exits non-zero on a lost or
 * duplicate interrupt. Timing never decides a check.
 *
 * Header-only (static inline): the runtime's .c list stays as it is. */
#ifndef HVACCEL_GUEST_BENCH_H
#define HVACCEL_GUEST_BENCH_H

#include "rt.h"

#define BENCH_MAX_SAMPLES 1000

/* The text after "key=" on the multiboot command line, or NULL. */
static inline const char* bench_arg(const char* key)
{
    const char* c = (const char*)(uintptr_t)rt_multiboot()->cmdline;
    size_t n = strlen(key);
    for (; c && *c; ++c) {
        if ((c == (const char*)(uintptr_t)rt_multiboot()->cmdline || c[-1] == ' ') &&
            strncmp(c, key, n) == 0 && c[n] == '=')
            return c + n + 1;
    }
    return 0;
}

static inline uint64_t bench_arg_uint(const char* key, uint64_t def, uint64_t lo, uint64_t hi)
{
    const char* c = bench_arg(key);
    if (!c || *c < '0' || *c > '9')
        return def;
    uint64_t v = 0;
    for (; *c >= '0' && *c <= '9'; ++c)
        v = v * 10 + (uint64_t)(*c - '0');
    return v < lo ? lo : v > hi ? hi : v;
}

/* True when "key=word" is on the command line (word ends at a space or the end). */
static inline bool bench_arg_is(const char* key, const char* word)
{
    const char* c = bench_arg(key);
    size_t n = strlen(word);
    return c && strncmp(c, word, n) == 0 && (c[n] == ' ' || c[n] == 0);
}

static inline unsigned bench_samples(void)
{
    return (unsigned)bench_arg_uint("samples", 200, 1, BENCH_MAX_SAMPLES);
}

/* TSC kHz: from the host on the command line, else a conservative 3 GHz guess (only bounds
 * waits then; the timer workload needs the real value and says so). */
static inline uint64_t bench_tsc_khz(void)
{
    return bench_arg_uint("tsc_khz", 3000000, 100000, 10000000);
}

static inline void bench_print(const char* name, const uint64_t* v, unsigned n)
{
    rt_printf("%s:", name);
    for (unsigned i = 0; i < n; ++i)
        rt_printf("%s%lu", i ? "," : " ", v[i]);
    rt_printf("\n");
}

/* A later TSC minus an earlier one taken on another vCPU: KVM keeps the vCPUs' TSCs in step,
 * but clamp a few cycles of skew to 0 rather than printing 2^64 - 3. */
static inline uint64_t bench_delta(uint64_t later, uint64_t earlier)
{
    return later > earlier ? later - earlier : 0;
}

/* Ring-3 waits: native speed on every host (ring-0 spins are emulated on some), bounded by the
 * TSC so a lost interrupt fails a check instead of hanging. */
struct bench_wait {
    volatile unsigned* counter;
    unsigned target;
    uint64_t deadline;   /* TSC */
    volatile bool* stop; /* optional: also return when *stop */
};

static inline void bench_wait_user(void* arg)
{
    struct bench_wait* w = arg;
    while (*w->counter < w->target && rdtsc() < w->deadline && !(w->stop && *w->stop))
        __asm__ volatile("pause" ::: "memory");
}

/* Waits in ring 3 until *counter >= target or `ms` milliseconds passed; interrupts on or off
 * while waiting. Returns whether the counter got there. */
static inline bool bench_wait_ring3(volatile unsigned* counter, unsigned target, unsigned ms,
                                    bool irqs)
{
    struct bench_wait w = {counter, target, rdtsc() + bench_tsc_khz() * ms, 0};
    rt_run_user(bench_wait_user, &w, irqs);
    return *counter >= target;
}

/* Ring 0 with interrupts off (an AP, which has no ring 3 here): spin on memory, bounded. */
static inline bool bench_wait_ring0(volatile unsigned* counter, unsigned target, unsigned ms)
{
    uint64_t deadline = rdtsc() + bench_tsc_khz() * ms;
    while (*counter < target && rdtsc() < deadline)
        __asm__ volatile("pause" ::: "memory");
    return *counter >= target;
}

/* Halted in sti; hlt until *counter >= target: every interrupt wakes one HLT, so `max_wakes`
 * bounds the loop when other interrupts come in; a lost interrupt with nothing else pending
 * leaves the vCPU halted (the host side's time limit ends the run). */
static inline bool bench_wait_halted(volatile unsigned* counter, unsigned target,
                                     unsigned max_wakes)
{
    for (unsigned i = 0; i < max_wakes && *counter < target; ++i)
        rt_wait_irq();
    return *counter >= target;
}

#endif
