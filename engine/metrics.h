/* A loop's metrics for readers on other threads (metrics.c): the loop publishes its counters and
 * gauges under a sequence lock every few iterations and when a reader asks, so that the hot path
 * keeps its plain counters and a reader never stops the loop. */
#ifndef CORIO_METRICS_H
#define CORIO_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "remote.h"

/* Compiled in unless the build turns it off (CMake CORIO_METRICS=OFF): the baseline that the
 * metrics' cost is measured against. */
#ifndef CORIO__METRICS
#define CORIO__METRICS 1
#endif

/* The loop publishes every this many iterations (a power of two): one test of the iteration
 * count per iteration, and a clock read and a copy of some 200 bytes per 256 iterations, about 1
 * instruction per iteration (a NOP round trip is one iteration of some 700). A reader that finds
 * the values older than a millisecond asks for fresh ones anyway. */
#define CORIO__METRICS_EVERY 256

#define CORIO__METRICS_WORDS (sizeof(struct corio_metrics) / sizeof(uint64_t))

/* The published copy: its part of struct corio_loop. */
struct corio__metrics {
    _Atomic uint64_t seq; /* odd while the loop writes words; even and changed once it is done */
    _Atomic uint64_t words[CORIO__METRICS_WORDS]; /* a struct corio_metrics, word by word */
    struct corio__msg refresh;  /* a reader's request for fresh values, needing no memory */
    atomic_flag refresh_queued; /* refresh is in the loop's queue: a second reader adds nothing */
    _Atomic bool running;       /* inside corio_loop_run: only then can the loop answer a request */
};

/* Sets up @l's published metrics and publishes the first values. Returns nothing. */
void corio__metrics_init(struct corio_loop *l);

/* Publishes @l's current values, on its thread. Returns nothing. */
void corio__metrics_publish(struct corio_loop *l);

/* corio_loop_run starts (@running) or ends: at the end the values are published, and until the
 * next start readers take them as they are instead of asking a loop that cannot answer. */
void corio__metrics_running(struct corio_loop *l, bool running);

/* Whether the loop publishes in the iteration numbered @iterations. */
static inline bool corio__metrics_due(uint64_t iterations)
{
    return CORIO__METRICS && (iterations & (CORIO__METRICS_EVERY - 1)) == 0;
}

#endif
