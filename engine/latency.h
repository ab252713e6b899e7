/* Latency histograms per op kind, submit to completion (latency.c): one op in every few is timed
 * (corio_loop_opts.latency_sample), its submission and its first CQE each read the clock, and the
 * difference lands in a log2 bucket of its kind. The loop's thread writes the histograms with
 * relaxed atomic stores, so that any thread may read them while the loop runs. */
#ifndef CORIO_LATENCY_H
#define CORIO_LATENCY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "ring.h"

/* Compiled in unless the build turns it off (CMake CORIO_HISTOGRAMS=OFF): the baseline that the
 * histograms' cost is measured against. */
#ifndef CORIO__HISTOGRAMS
#define CORIO__HISTOGRAMS 1
#endif

/* Timed ops in flight at once. A timed op holds its slot until its last CQE, so that a cancel can
 * find the user_data it was submitted with; when all are taken, no op is timed until one frees. */
#define CORIO__LAT_SLOTS 32

/* The default of corio_loop_opts.latency_sample: one op in this many is timed. A timed op costs
 * two clock reads and a bucket, some 300 instructions: one in 64 adds about 5 to each op, under
 * 1% of a NOP round trip, and still times thousands of ops a second on a busy loop. */
#define CORIO__LAT_EVERY 64

/* One kind's histogram; each field written by the loop's thread only, read by any thread. */
struct corio__hist {
    _Atomic uint64_t samples;                        /* ops timed */
    _Atomic uint64_t sum_ns;                         /* their latencies added up */
    _Atomic uint64_t buckets[CORIO_LATENCY_BUCKETS]; /* see corio_latency_bound */
};

/* A timed op in flight. */
struct corio__lat_slot {
    uint64_t ud;   /* its record's address (no tag); 0: the slot is free */
    int64_t t0;    /* corio_now() at submission */
    uint8_t op;    /* enum corio__opcode */
    bool recorded; /* its first CQE came (a zero-copy send's notification may follow) */
};

/* A loop's latency sampling: its part of struct corio__io. */
struct corio__lat {
    unsigned every;           /* one op in this many is timed; 0: none */
    unsigned countdown;       /* submissions until the next one is timed */
    unsigned n;               /* slots in use */
    _Atomic uint64_t skipped; /* ops that were due to be timed while every slot was taken */
    struct corio__lat_slot slots[CORIO__LAT_SLOTS];
    struct corio__hist hist[CORIO__OP_COUNT]; /* by enum corio__opcode */
};

/* Sets up sampling of one op in @every (0: the default; CORIO_LATENCY_OFF: none). */
void corio__lat_init(struct corio__lat *lat, unsigned every);

/* An op due to be timed (its countdown reached 0) is submitted with record address @ud: takes a
 * slot and reads the clock, and sets the countdown again. Returns true if it is timed, false when
 * it cannot be (no slot free, or a multishot op, whose "completion" is every message to come). */
bool corio__lat_start(struct corio__lat *lat, uint64_t ud, unsigned opcode);

/* A CQE of the timed op of record @ud came: the first one is recorded, and the last (@more false)
 * frees its slot. Returns nothing. */
void corio__lat_done(struct corio__lat *lat, uint64_t ud, bool more);

/* True if the op of record @ud is being timed, so its CQEs and its cancel carry the sampled tag. */
bool corio__lat_timed(const struct corio__lat *lat, uint64_t ud);

#endif
