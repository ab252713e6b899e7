/* Latency sampling: which ops are timed, where their start times wait, and the histograms their
 * latencies land in. Out of line: only a timed op (one in latency_sample) comes here, so that the
 * others pay one decrement at submission and nothing at completion (op.c tags a timed op's CQEs).
 */
#include "latency.h"

#include <string.h>

void corio__lat_init(struct corio__lat *lat, unsigned every)
{
    memset(lat, 0, sizeof(*lat));
    if (every == 0)
        every = CORIO__LAT_EVERY;
    lat->every = every == CORIO_LATENCY_OFF ? 0 : every;
    /* With sampling off the countdown starts at its largest: it reaches 0 after 2^32 ops, and
     * corio__lat_start then sets it there again. */
    lat->countdown = lat->every ? lat->every : UINT32_MAX;
}

bool corio__lat_start(struct corio__lat *lat, uint64_t ud, unsigned opcode)
{
    lat->countdown = lat->every ? lat->every : UINT32_MAX;
    if (!lat->every || opcode == CORIO__OP_RECV_MULTI || opcode == CORIO__OP_ACCEPT_MULTI)
        return false;
    if (lat->n == CORIO__LAT_SLOTS) {
        atomic_store_explicit(&lat->skipped,
                              atomic_load_explicit(&lat->skipped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return false;
    }
    for (unsigned i = 0; i < CORIO__LAT_SLOTS; i++) {
        struct corio__lat_slot *s = &lat->slots[i];
        if (s->ud)
            continue;
        *s = (struct corio__lat_slot){.ud = ud, .t0 = corio_now(), .op = (uint8_t)opcode};
        lat->n++;
        return true;
    }
    return false;
}

/* Adds @v to a counter that only the loop's thread writes: a relaxed load and store rather than
 * a locked add, since no other thread writes it; readers on other threads load it relaxed. */
static inline void bump(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* The bucket of a latency: bucket 0 below 2^10 ns, bucket i in [2^(9+i), 2^(10+i)), the last one
 * everything from 2^(9+CORIO_LATENCY_BUCKETS-1) ns up. */
static unsigned bucket_of(int64_t ns)
{
    if (ns < 1024)
        return 0;
    unsigned bits = 64u - (unsigned)__builtin_clzll((unsigned long long)ns);
    unsigned b = bits - 10;
    return b < CORIO_LATENCY_BUCKETS ? b : CORIO_LATENCY_BUCKETS - 1;
}

static void record(struct corio__hist *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    bump(&h->samples, 1);
    bump(&h->sum_ns, (uint64_t)ns);
    bump(&h->buckets[bucket_of(ns)], 1);
}

void corio__lat_done(struct corio__lat *lat, uint64_t ud, bool more)
{
    for (unsigned i = 0; i < CORIO__LAT_SLOTS; i++) {
        struct corio__lat_slot *s = &lat->slots[i];
        if (s->ud != ud)
            continue;
        if (!s->recorded) {
            record(&lat->hist[s->op], corio_now() - s->t0);
            s->recorded = true;
        }
        if (!more) {
            s->ud = 0;
            lat->n--;
        }
        return;
    }
}

bool corio__lat_timed(const struct corio__lat *lat, uint64_t ud)
{
    if (lat->n == 0)
        return false;
    for (unsigned i = 0; i < CORIO__LAT_SLOTS; i++)
        if (lat->slots[i].ud == ud)
            return true;
    return false;
}
