/*
 * The run's counters: counting errors and verify errors as they happen, and adding up every
 * thread's counters for the progress line and for the result.
 *
 * Each thread has its own struct stats. Its live counters are single-writer atomics (see counter
 * in load.h), so the coordinator can sum them for the progress line without a lock while the loops
 * write them with plain stores; the rest is read only after the thread has been joined.
 */
#include "load.h"

#include <stdio.h>
#include <string.h>

static atomic_uint verify_reports; /* verify errors printed so far, across threads */

void load_count_errno(uint64_t *slots, int err)
{
    int e = err < 0 ? -err : err;
    slots[e < ERRNO_SLOTS ? e : ERRNO_SLOTS - 1]++;
}

bool load_may_report(void)
{
    unsigned n = atomic_fetch_add_explicit(&verify_reports, 1, memory_order_relaxed);
    if (n == MAX_VERIFY_REPORTS)
        fprintf(stderr, PROG ": further verify errors are counted, not printed\n");
    return n < MAX_VERIFY_REPORTS;
}

void load_verify_error(struct conn *c)
{
    bump(&c->w->st.verify_errors, 1);
    count_error(c->w);
    c->verify_fails++;
}

void load_totals_read(const struct worker *ws, unsigned n, struct totals *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < n; i++) {
        const struct stats *s = &ws[i].st;
        t->msgs_all += get(&s->msgs_all);
        t->msgs += get(&s->msgs);
        t->bytes += get(&s->bytes);
        t->lat_sum += get(&s->lat_sum);
        if (get(&s->lat_max) > t->lat_max)
            t->lat_max = get(&s->lat_max);
        t->errors += get(&s->errors);
        t->verify_errors += get(&s->verify_errors);
        t->active += get(&s->active);
        for (unsigned b = 0; b < HIST_BUCKETS; b++)
            t->hist[b] += get(&s->hist[b]);
    }
}

/* Sets @r's latency figures (us) from its histogram and sums. */
static void result_latencies(struct result *r)
{
    r->p50 = (double)load_hist_quantile(r->t.hist, r->t.msgs, 0.50) / 1e3;
    r->p99 = (double)load_hist_quantile(r->t.hist, r->t.msgs, 0.99) / 1e3;
    r->p999 = (double)load_hist_quantile(r->t.hist, r->t.msgs, 0.999) / 1e3;
    r->max = (double)r->t.lat_max / 1e3;
    r->mean = r->t.msgs ? (double)r->t.lat_sum / (double)r->t.msgs / 1e3 : 0;
    /* A bucket's middle can lie above the largest sample in it. */
    if (r->p50 > r->max)
        r->p50 = r->max;
    if (r->p99 > r->max)
        r->p99 = r->max;
    if (r->p999 > r->max)
        r->p999 = r->max;
}

void load_result_collect(const struct worker *ws, unsigned n, struct result *r)
{
    load_totals_read(ws, n, &r->t);
    for (unsigned i = 0; i < n; i++) {
        const struct stats *s = &ws[i].st;
        r->connected += s->connected;
        r->reconnects += s->reconnects;
        r->connect_failed += s->connect_failed;
        r->closed_by_peer += s->closed_by_peer;
        r->desync += s->desync;
        r->bad_status += s->bad_status;
        for (int e = 0; e < ERRNO_SLOTS; e++) {
            r->connect_errno[e] += s->connect_errno[e];
            r->io_errno[e] += s->io_errno[e];
        }
        for (int k = 0; k < 600; k++)
            r->status[k] += s->status[k];
    }
    result_latencies(r);
}
