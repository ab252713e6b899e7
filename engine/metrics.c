/* Metrics readable from any thread: a loop's counters and gauges, published by the loop under a
 * sequence lock, and its latency histograms, which latency.c writes with atomic stores.
 *
 * The counters stay plain fields that the loop's thread adds to (an atomic add per counter would
 * lengthen every op), and the gauges belong to the modules that keep them (coroutines, stacks,
 * timers): only the loop's thread reads them, here, when it publishes. A reader on another thread
 * copies the published words between two reads of the sequence, and asks for a new copy when the
 * one it got is older than a millisecond: a busy loop publishes every 256 iterations anyway, and a
 * sleeping one is woken by the request. */
#include "metrics.h"

#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

_Static_assert(sizeof(struct corio_metrics) % sizeof(uint64_t) == 0, "metrics are whole words");

/* A reader's copy older than this asks the loop for a fresh one, and waits this long at most. */
#define FRESH_NS CORIO_MS(1)
#define WAIT_NS CORIO_MS(10)

/* Reads @l's current values; on its thread only. */
static void take(struct corio_loop *l, struct corio_metrics *m)
{
    memset(m, 0, sizeof(*m));
    m->stats = l->stats;
    m->coroutines = l->coros.live;
    m->stacks_in_use = l->stacks.n_live;
    m->stacks_cached = l->stacks.n_free;
    m->timers = l->sched.timers.n;
    m->inflight = l->io.inflight;
    m->latency_skipped = atomic_load_explicit(&l->io.lat.skipped, memory_order_relaxed);
    m->taken_at = corio_now();
}

void corio__metrics_publish(struct corio_loop *l)
{
    struct corio__metrics *p = &l->metrics;
    struct corio_metrics m;
    uint64_t w[CORIO__METRICS_WORDS];
    take(l, &m);
    memcpy(w, &m, sizeof(w));
    uint64_t s = atomic_load_explicit(&p->seq, memory_order_relaxed);
    atomic_store_explicit(&p->seq, s + 1, memory_order_relaxed);
    /* Pairs with the reader's acquire fence: a reader that sees any word below also sees the odd
     * sequence, and retries. */
    atomic_thread_fence(memory_order_release);
    for (size_t i = 0; i < CORIO__METRICS_WORDS; i++)
        atomic_store_explicit(&p->words[i], w[i], memory_order_relaxed);
    /* Pairs with the reader's acquire load of seq: the words are written before it sees s + 2. */
    atomic_store_explicit(&p->seq, s + 2, memory_order_release);
}

void corio__metrics_running(struct corio_loop *l, bool running)
{
    if (!running)
        corio__metrics_publish(l);
    atomic_store_explicit(&l->metrics.running, running, memory_order_release);
}

/* A reader's request, run by the loop. */
static void run_refresh(struct corio_loop *l, struct corio__msg *m)
{
    (void)m;
    atomic_flag_clear(&l->metrics.refresh_queued);
    corio__metrics_publish(l);
}

void corio__metrics_init(struct corio_loop *l)
{
    struct corio__metrics *p = &l->metrics;
    atomic_init(&p->seq, 0);
    for (size_t i = 0; i < CORIO__METRICS_WORDS; i++)
        atomic_init(&p->words[i], 0);
    atomic_flag_clear(&p->refresh_queued);
    atomic_init(&p->running, false);
    p->refresh.run = run_refresh;
    p->refresh.heap = false;
    corio__metrics_publish(l);
}

/* Copies the published values, consistent with each other. Returns their sequence number. */
static uint64_t read_published(struct corio__metrics *p, struct corio_metrics *out)
{
    uint64_t w[CORIO__METRICS_WORDS], s1, s2;
    for (;;) {
        s1 = atomic_load_explicit(&p->seq, memory_order_acquire);
        if (s1 & 1) {
            corio__cpu_relax();
            continue;
        }
        for (size_t i = 0; i < CORIO__METRICS_WORDS; i++)
            w[i] = atomic_load_explicit(&p->words[i], memory_order_relaxed);
        /* Pairs with the writer's release fence: the words are read before seq is read again. */
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&p->seq, memory_order_relaxed);
        if (s1 == s2)
            break;
    }
    memcpy(out, w, sizeof(w));
    return s1;
}

int corio_loop_metrics(struct corio_loop *l, struct corio_metrics *out)
{
    if (!CORIO__METRICS)
        return -EOPNOTSUPP;
    if (pthread_equal(l->owner, pthread_self())) {
        take(l, out);
        return 0;
    }
    struct corio__metrics *p = &l->metrics;
    /* Acquire pairs with the release in corio__metrics_running: a loop seen stopped has published
     * its last values. */
    bool running = atomic_load_explicit(&p->running, memory_order_acquire);
    uint64_t seq = read_published(p, out);
    int64_t now = corio_now();
    if (!running || now - out->taken_at <= FRESH_NS)
        return 0;
    if (!atomic_flag_test_and_set(&p->refresh_queued))
        corio__remote_send(l, &p->refresh);
    /* The loop answers within an iteration, or as soon as the message wakes it; a loop held by a
     * coroutine that does not yield cannot, and the caller gets the values it has. */
    int64_t end = now + WAIT_NS;
    while (atomic_load_explicit(&p->seq, memory_order_acquire) == seq && corio_now() < end) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000};
        nanosleep(&ts, NULL);
    }
    read_published(p, out);
    return 0;
}

/* ---- latency histograms -----------------------------------------------------------------------
 */

static const char *const op_names[] = {
    [CORIO__OP_NOP] = "nop",
    [CORIO__OP_READ] = "read",
    [CORIO__OP_WRITE] = "write",
    [CORIO__OP_READV] = "readv",
    [CORIO__OP_WRITEV] = "writev",
    [CORIO__OP_OPENAT] = "openat",
    [CORIO__OP_CLOSE] = "close",
    [CORIO__OP_FSYNC] = "fsync",
    [CORIO__OP_STATX] = "statx",
    [CORIO__OP_SOCKET] = "socket",
    [CORIO__OP_ACCEPT] = "accept",
    [CORIO__OP_CONNECT] = "connect",
    [CORIO__OP_SEND] = "send",
    [CORIO__OP_RECV] = "recv",
    [CORIO__OP_SENDMSG] = "sendmsg",
    [CORIO__OP_RECVMSG] = "recvmsg",
    [CORIO__OP_SHUTDOWN] = "shutdown",
    [CORIO__OP_TIMEOUT] = "timeout",
    [CORIO__OP_RECV_MULTI] = "recv_multishot",
    [CORIO__OP_ACCEPT_MULTI] = "accept_multishot",
    [CORIO__OP_SEND_ZC] = "send_zc",
    [CORIO__OP_READ_FIXED] = "read_fixed",
    [CORIO__OP_WRITE_FIXED] = "write_fixed",
    [CORIO__OP_POLL] = "poll",
};
_Static_assert(CORIO__ARRAY_SIZE(op_names) == CORIO__OP_COUNT, "a name for every opcode");

const char *corio_op_name(unsigned op)
{
    return op < CORIO__OP_COUNT ? op_names[op] : NULL;
}

int corio_loop_latency(const struct corio_loop *l, unsigned op, struct corio_latency *out)
{
    if (!CORIO__HISTOGRAMS)
        return -EOPNOTSUPP;
    if (op >= CORIO__OP_COUNT)
        return -ENOENT;
    const struct corio__hist *h = &l->io.lat.hist[op];
    out->samples = atomic_load_explicit(&h->samples, memory_order_relaxed);
    out->sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    for (unsigned i = 0; i < CORIO_LATENCY_BUCKETS; i++)
        out->buckets[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    return 0;
}

int64_t corio_latency_bound(unsigned i)
{
    return i + 1 < CORIO_LATENCY_BUCKETS ? (int64_t)1 << (10 + i) : INT64_MAX;
}

int64_t corio_latency_quantile(const struct corio_latency *h, double q)
{
    if (h->samples == 0)
        return 0;
    uint64_t total = 0;
    for (unsigned i = 0; i < CORIO_LATENCY_BUCKETS; i++)
        total += h->buckets[i];
    /* The rank of the quantile among the bucketed samples, counted from 1. */
    double rank = q <= 0 ? 1 : q >= 1 ? (double)total : q * (double)total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < CORIO_LATENCY_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen > 0 && (double)seen >= rank)
            return corio_latency_bound(i);
    }
    return corio_latency_bound(CORIO_LATENCY_BUCKETS - 1);
}
