/* The fault seam's private header: its configuration, its per-thread state and the decisions drawn
 * from them, shared by fault_config.c (configuration) and fault.c (the hooks). Testing builds
 * only. */
#ifndef CORIO_FAULT_PRIVATE_H
#define CORIO_FAULT_PRIVATE_H

#include "fault.h"

#ifdef CORIO_TESTING

#include "base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ring_state;

/* What a spec configures (corio__fault_configure documents the keys). */
struct cfg {
    uint64_t seed;
    double enter_eintr, enter_eagain, enter_ebusy;
    double short_rw;
    double cqe_eagain, cqe_econnreset, cqe_enobufs;
    double sq_full;
    double reorder, holdback;
    unsigned sq, cq;       /* forced ring sizes, 0: as asked */
    uint64_t refuse_setup; /* CORIO_FEAT_ bits of setup flags io_uring_setup refuses */
    uint64_t refuse_op;    /* CORIO_FEAT_ bits of ops whose SQEs fail */
    uint64_t hide_op;      /* ... that the probe does not list either */
    uint64_t hide_feat;    /* CORIO_FEAT_ bits of kernel features reported missing */
    uint64_t ops;          /* CORIO_FEAT_ bits of the ops the per-op faults touch; 0: all */
    int refuse_err;        /* their error */
    bool seeded;           /* seed= was given (else one is drawn from the clock) */
    bool quiet;            /* no "corio faults:" line */
    bool any;              /* some fault is enabled */
    char spec[512];        /* the spec as given, for the message */
};

struct fault_thread {
    bool init; /* configured, from the environment or explicitly */
    struct cfg cfg;
    uint64_t rng;          /* splitmix64 state */
    const uint8_t *script; /* corio__fault_script's bytes, or NULL */
    size_t script_len, script_pos;
    struct corio__fault_stats stats;
    struct ring_state *rings; /* the rings of this thread that the seam has touched */
};
extern _Thread_local struct fault_thread corio__fault_t;
#define T corio__fault_t


/* The first hook of a thread reads CORIO_FAULTS, unless corio__fault_configure came first. */
void corio__fault_ensure(void);

/* Adds one injected fault to the thread's trace digest: @kind (which fault) and @what (the
 * opcode, the new length or the batch size), FNV-1a over the two. The digest depends on the
 * seed and on what the program does, never on addresses, so that two runs of a program with the
 * same inputs and seed can be compared by it. */
static inline void trace(uint64_t kind, uint64_t what)
{
    uint64_t h = T.stats.digest ? T.stats.digest : 0xcbf29ce484222325ull;
    h = (h ^ kind) * 0x100000001b3ull;
    h = (h ^ what) * 0x100000001b3ull;
    T.stats.digest = h;
}

static inline uint64_t next64(void)
{
    uint64_t z = (T.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The next script byte. Returns false once the script is used up. */
static inline bool script_byte(unsigned *b)
{
    if (T.script_pos >= T.script_len)
        return false;
    *b = T.script[T.script_pos++];
    return true;
}

/* True with probability @p. A used-up script says no, so that the faults stop. */
static inline bool chance(double p)
{
    if (p <= 0)
        return false;
    if (T.script) {
        unsigned b;
        return script_byte(&b) && (double)b < p * 256.0;
    }
    return (double)(next64() >> 11) * 0x1.0p-53 < p;
}

/* A number in [0, n), n > 0. A used-up script gives n - 1 (no shrinking, no shuffling). */
static inline uint32_t below(uint32_t n)
{
    if (T.script) {
        unsigned b;
        if (!script_byte(&b))
            return n - 1;
        return (uint32_t)(((uint64_t)b * n) >> 8);
    }
    return (uint32_t)(next64() % n);
}

#endif
#endif
