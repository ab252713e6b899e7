/* A cheap time stamp for the in-flight table: the CPU's own counter, read in one instruction, and
 * turned into nanoseconds only when someone asks (a dump), against the clock. A clock read costs
 * a vDSO call of some fifty instructions; every op pays for its stamp, so the stamp must cost
 * next to nothing, and only the rare dump pays for the conversion. */
#ifndef CORIO_TICKS_H
#define CORIO_TICKS_H

#include <stdint.h>

#include "base.h"

/* Returns the CPU's time-stamp counter: x86-64's TSC (constant-rate and synchronised across cores
 * on every CPU of the last fifteen years: /proc/cpuinfo's constant_tsc and nonstop_tsc), aarch64's
 * virtual counter, or elsewhere the clock in nanoseconds. Only differences mean anything. */
static inline uint64_t corio__ticks(void)
{
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return (uint64_t)corio_now();
#endif
}

/* A pairing of the counter with the clock, taken at one moment: two of them give the counter's
 * rate. */
struct corio__tick_ref {
    uint64_t ticks; /* corio__ticks() */
    int64_t ns;     /* corio_now(), read right after */
};

static inline void corio__tick_ref_take(struct corio__tick_ref *r)
{
    r->ticks = corio__ticks();
    r->ns = corio_now();
}

/* Nanoseconds between counter value @then and @now, at the rate that reference @ref and @now
 * measured (both references taken by corio__tick_ref_take; @ref the older). Returns 0 for a
 * stamp later than @now (another core's counter a few ticks ahead). */
static inline int64_t corio__ticks_to_ns(const struct corio__tick_ref *ref,
                                         const struct corio__tick_ref *now, uint64_t then)
{
    if (then >= now->ticks)
        return 0;
    uint64_t dt = now->ticks - ref->ticks;
    int64_t dns = now->ns - ref->ns;
    if (dt == 0 || dns <= 0)
        return 0;
    return (int64_t)((double)(now->ticks - then) * (double)dns / (double)dt);
}

#endif
