#include "common.h"

#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static int signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    return 0;
}

int tool_block_signals(void)
{
    sigset_t set;
    signal_set(&set);
    sigaddset(&set, SIGUSR1);
    /* A shell starts background jobs with SIGINT ignored, and an ignored signal is discarded
     * before it could reach the signalfd: take the default disposition back (blocked, the
     * default action never runs; the signalfd receives it). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int signal_waiter(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct signalfd_siginfo si;
    ssize_t n = corio_read(fd, &si, sizeof(si), -1, CORIO_FOREVER);
    corio_close(fd);
    if (n == (ssize_t)sizeof(si))
        corio_threads_stop(); /* every loop of the server, or the one */
    return 0;
}

int tool_stop_on_signals(struct corio_loop *loop)
{
    sigset_t set;
    signal_set(&set);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int err = corio_spawn(NULL, loop, signal_waiter, (void *)(intptr_t)fd);
    if (err)
        close(fd);
    return err;
}

uint64_t tool_parse_size(const char *opt, const char *val)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1024ull * 1024 * 1024, end++;
    if (errno || end == val || *end || val[0] == '-') {
        fprintf(stderr, "bad value for %s: '%s'\n", opt, val);
        exit(2);
    }
    return (uint64_t)v * mul;
}

int64_t tool_parse_seconds(const char *opt, const char *val)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || v < 0 || v > 1e9) {
        fprintf(stderr, "bad value for %s: '%s'\n", opt, val);
        exit(2);
    }
    return (int64_t)(v * 1e9);
}

int tool_pin_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* The latency quantiles of every op kind @loop timed, a line each. */
static void print_latency(const char *who, struct corio_loop *loop)
{
    const char *name;
    for (unsigned op = 0; (name = corio_op_name(op)) != NULL; op++) {
        struct corio_latency h;
        if (corio_loop_latency(loop, op, &h) != 0 || h.samples == 0)
            continue;
        fprintf(stderr,
                "%s: latency op=%s samples=%" PRIu64 " mean_us=%.1f p50_us<%.1f p99_us<%.1f "
                "p999_us<%.1f\n",
                who, name, h.samples, (double)h.sum_ns / (double)h.samples / 1e3,
                (double)corio_latency_quantile(&h, 0.5) / 1e3,
                (double)corio_latency_quantile(&h, 0.99) / 1e3,
                (double)corio_latency_quantile(&h, 0.999) / 1e3);
    }
}

void tool_print_stats(const char *who, struct corio_loop *loop)
{
    struct corio_metrics m;
    if (corio_loop_metrics(loop, &m) != 0) {
        /* A build without metrics: the loop's own counters, on its own thread. */
        memset(&m, 0, sizeof(m));
        m.stats = *corio_loop_stats(loop);
    }
    const struct corio_stats *s = &m.stats;
    fprintf(stderr,
            "%s: sqes=%" PRIu64 " enters=%" PRIu64 " cqes=%" PRIu64 " cq_overflows=%" PRIu64
            " enobufs=%" PRIu64 " switches=%" PRIu64 " spawns=%" PRIu64 " iterations=%" PRIu64
            " rx_pauses=%" PRIu64 "\n",
            who, s->sqes, s->enters, s->cqes, s->cq_overflows, s->enobufs, s->switches, s->spawns,
            s->iterations, s->rx_pauses);
    fprintf(stderr,
            "%s: coroutines=%" PRIu64 " stacks_in_use=%" PRIu64 " stacks_cached=%" PRIu64
            " timers=%" PRIu64 " inflight=%" PRIu64 " remote_msgs=%" PRIu64 " remote_wakes=%" PRIu64
            "\n",
            who, m.coroutines, m.stacks_in_use, m.stacks_cached, m.timers, m.inflight,
            s->remote_msgs, s->remote_wakes);
    print_latency(who, loop);
}

void tool_report(const char *who)
{
    unsigned n = corio_thread_count();
    for (unsigned i = 0; i < n; i++) {
        struct corio_loop *loop = corio_thread_loop(i);
        if (!loop)
            continue;
        char name[64];
        if (n > 1)
            snprintf(name, sizeof(name), "%s[%u]", who, i);
        else
            snprintf(name, sizeof(name), "%s", who);
        tool_print_stats(name, loop);
    }
}

struct report_waiter {
    int fd;
    const char *who;
};

static int report_waiter(void *arg)
{
    struct report_waiter w = *(struct report_waiter *)arg;
    free(arg);
    struct signalfd_siginfo si;
    while (corio_read(w.fd, &si, sizeof(si), -1, CORIO_FOREVER) == (ssize_t)sizeof(si))
        tool_report(w.who);
    corio_close(w.fd);
    return 0;
}

int tool_report_on_signal(struct corio_loop *loop, const char *who)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    struct report_waiter *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->who = who;
    w->fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (w->fd < 0) {
        int err = -errno;
        free(w);
        return err;
    }
    int fd = w->fd;
    int err = corio_spawn(NULL, loop, report_waiter, w);
    if (err) {
        close(fd);
        free(w);
    }
    return err;
}

int tool_loop_new(const char *who, struct corio_loop **out, const struct corio_loop_opts *opts)
{
    int err = corio_loop_new(out, opts);
    if (err) {
        fprintf(stderr, "%s: %s\n", who, corio_strerror_setup(err));
        return err;
    }
    if (corio_loop_backend(*out) != CORIO_BACKEND_IO_URING)
        fprintf(stderr, "%s: backend %s: %s\n", who, corio_backend_name(corio_loop_backend(*out)),
                corio_loop_backend_reason(*out));
    return 0;
}

int tool_run(const char *who, unsigned threads, int cpu, const struct corio_loop_opts *opts,
             corio_fn *fn)
{
    int err;
    if (threads <= 1) {
        if (cpu >= 0 && tool_pin_cpu(cpu) != 0)
            fprintf(stderr, "%s: cannot pin to CPU %d\n", who, cpu);
        struct corio_loop *loop;
        if ((err = tool_loop_new(who, &loop, opts)) != 0)
            return err;
        err = corio_spawn(NULL, loop, fn, NULL);
        if (!err)
            err = corio_loop_run(loop);
        corio_loop_free(loop);
    } else {
        err = corio_run_threads(threads, fn, NULL, opts, cpu >= 0 ? CORIO_THREADS_PIN : 0);
    }
    if (err)
        fprintf(stderr, "%s: %s\n", who, err < 0 ? strerror(-err) : "failed");
    return err;
}

/* The port the first loop listens on, for the others (-1 until it is known, 0 if it failed),
 * and how many loops listen. */
static _Atomic int listen_port = -1;
static _Atomic unsigned listening;

int tool_listen(const char *who, const char *host, uint16_t port, int backlog)
{
    unsigned n = corio_thread_count(), i = corio_thread_index();
    if (i == 0 && n > 1 && corio_loop_backend(corio_loop_current()) != CORIO_BACKEND_IO_URING)
        fprintf(stderr, "%s: backend %s: %s\n", who,
                corio_backend_name(corio_loop_backend(corio_loop_current())),
                corio_loop_backend_reason(corio_loop_current()));
    if (i > 0) {
        int p;
        while ((p = atomic_load(&listen_port)) < 0)
            if (corio_sleep(corio_now() + CORIO_MS(1)) != 0)
                return -ECANCELED;
        if (p == 0)
            return -ECANCELED; /* the first one could not listen: it says why */
        port = (uint16_t)p;
    }
    int lfd = corio_listen_tcp(host, port, backlog, n > 1 ? CORIO_LISTEN_REUSEPORT : 0);
    if (lfd < 0) {
        fprintf(stderr, "%s: listen on %s:%u: %s\n", who, host, port, strerror(-lfd));
        if (i == 0)
            atomic_store(&listen_port, 0);
        return lfd;
    }
    if (i == 0)
        atomic_store(&listen_port, corio_local_port(lfd));
    atomic_fetch_add(&listening, 1);
    if (i == 0) {
        while (atomic_load(&listening) < n)
            if (corio_sleep(corio_now() + CORIO_MS(1)) != 0)
                break;
        printf("ready port=%d\n", corio_local_port(lfd));
        fflush(stdout);
    }
    return lfd;
}
