/* The metrics of a set of loops in Prometheus' text exposition format (version 0.0.4): a counter
 * or gauge family per metric, a histogram family for the op latencies, each sample labelled with
 * its loop's index. Built on corio_loop_metrics and corio_loop_latency, so any thread may call it.
 */
#include "metrics.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct family {
    const char *name; /* without the corio_ prefix */
    const char *type; /* "counter" or "gauge" */
    size_t off;       /* of its uint64_t in struct corio_metrics */
    const char *help;
};

#define STAT(f) offsetof(struct corio_metrics, stats.f)
#define GAUGE(f) offsetof(struct corio_metrics, f)

static const struct family families[] = {
    {"sqes_total", "counter", STAT(sqes), "SQEs handed to the kernel (ops to the epoll backend)."},
    {"enters_total", "counter", STAT(enters), "io_uring_enter calls (epoll_pwait2 on epoll)."},
    {"cqes_total", "counter", STAT(cqes), "Completions reaped."},
    {"cq_overflows_total", "counter", STAT(cq_overflows), "Times the kernel reported CQ overflow."},
    {"enobufs_total", "counter", STAT(enobufs), "Buffer-ring receives re-armed after ENOBUFS."},
    {"rx_pauses_total", "counter", STAT(rx_pauses), "Receivers paused with a full queue."},
    {"switches_total", "counter", STAT(switches), "Coroutine context switches."},
    {"spawns_total", "counter", STAT(spawns), "Coroutines started."},
    {"iterations_total", "counter", STAT(iterations), "Loop iterations."},
    {"remote_msgs_total", "counter", STAT(remote_msgs), "Messages from other threads run."},
    {"remote_wakes_total", "counter", STAT(remote_wakes),
     "Wake-ups of a sleeping loop by a sender."},
    {"latency_skipped_total", "counter", GAUGE(latency_skipped),
     "Ops due to be timed while every sample slot was taken."},
    {"coroutines", "gauge", GAUGE(coroutines), "Coroutines alive."},
    {"stacks_in_use", "gauge", GAUGE(stacks_in_use), "Coroutine stacks handed out."},
    {"stacks_cached", "gauge", GAUGE(stacks_cached), "Coroutine stacks kept for reuse."},
    {"timers", "gauge", GAUGE(timers), "Timers armed."},
    {"inflight", "gauge", GAUGE(inflight), "Completions still expected from the kernel."},
};

static uint64_t field(const struct corio_metrics *m, size_t off)
{
    return *(const uint64_t *)(const void *)((const char *)m + off);
}

static void histograms(struct corio__text *o, struct corio_loop *const *loops, unsigned n)
{
    corio__text_put(o,
                    "# HELP corio_op_latency_seconds Submit-to-completion latency of sampled ops.\n"
                    "# TYPE corio_op_latency_seconds histogram\n");
    const char *name;
    for (unsigned op = 0; (name = corio_op_name(op)) != NULL; op++) {
        for (unsigned i = 0; i < n; i++) {
            struct corio_latency h;
            if (corio_loop_latency(loops[i], op, &h) != 0 || h.samples == 0)
                continue;
            uint64_t cum = 0;
            for (unsigned b = 0; b + 1 < CORIO_LATENCY_BUCKETS; b++) {
                cum += h.buckets[b];
                corio__text_put(
                    o, "corio_op_latency_seconds_bucket{loop=\"%u\",op=\"%s\",le=\"%.9g\"} %llu\n",
                    i, name, (double)corio_latency_bound(b) / 1e9, (unsigned long long)cum);
            }
            cum += h.buckets[CORIO_LATENCY_BUCKETS - 1];
            corio__text_put(
                o, "corio_op_latency_seconds_bucket{loop=\"%u\",op=\"%s\",le=\"+Inf\"} %llu\n", i,
                name, (unsigned long long)cum);
            corio__text_put(o, "corio_op_latency_seconds_sum{loop=\"%u\",op=\"%s\"} %.9f\n", i,
                            name, (double)h.sum_ns / 1e9);
            corio__text_put(o, "corio_op_latency_seconds_count{loop=\"%u\",op=\"%s\"} %llu\n", i,
                            name, (unsigned long long)cum);
        }
    }
}

ssize_t corio_metrics_prometheus(char *buf, size_t len, struct corio_loop *const *loops, unsigned n)
{
    if (!CORIO__METRICS)
        return -EOPNOTSUPP;
    if (n > 0 && !loops)
        return -EINVAL;
    struct corio_metrics *m = n ? calloc(n, sizeof(*m)) : NULL;
    if (n && !m)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++)
        corio_loop_metrics(loops[i], &m[i]);
    struct corio__text o = {.buf = buf, .len = len, .pos = 0};
    if (len)
        buf[0] = '\0';
    corio__text_put(&o, "# HELP corio_loop_info The backend each loop runs on.\n"
                        "# TYPE corio_loop_info gauge\n");
    for (unsigned i = 0; i < n; i++)
        corio__text_put(&o, "corio_loop_info{loop=\"%u\",backend=\"%s\"} 1\n", i,
                        corio_backend_name(corio_loop_backend(loops[i])));
    for (size_t f = 0; f < CORIO__ARRAY_SIZE(families); f++) {
        corio__text_put(&o, "# HELP corio_%s %s\n# TYPE corio_%s %s\n", families[f].name,
                        families[f].help, families[f].name, families[f].type);
        for (unsigned i = 0; i < n; i++)
            corio__text_put(&o, "corio_%s{loop=\"%u\"} %llu\n", families[f].name, i,
                            (unsigned long long)field(&m[i], families[f].off));
    }
    if (CORIO__HISTOGRAMS)
        histograms(&o, loops, n);
    free(m);
    return (ssize_t)o.pos;
}
