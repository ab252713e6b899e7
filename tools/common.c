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
#include <unistd.h>

/* SIGINT and SIGTERM, read by a coroutine on each loop; how many of them came. */
static struct corio_signals tool_sigs;
static bool tool_sigs_ok;
static struct corio_signals tool_usr1; /* SIGUSR1: the coroutine dump */
static bool tool_usr1_ok;
static _Atomic unsigned tool_signalled;

int tool_signals_init(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int err = corio_signals_init(&tool_sigs, &set);
    tool_sigs_ok = err == 0;
    if (err)
        return err;
    /* SIGUSR1, tool_report_on_signal's, in a set of its own: read through the loop like the stop
     * signals, so that a drain is not held up by its waiter. */
    sigset_t usr;
    sigemptyset(&usr);
    sigaddset(&usr, SIGUSR1);
    tool_usr1_ok = corio_signals_init(&tool_usr1, &usr) == 0;
    return 0;
}

void tool_signals_fini(void)
{
    if (tool_sigs_ok)
        corio_signals_fini(&tool_sigs);
    tool_sigs_ok = false;
    if (tool_usr1_ok)
        corio_signals_fini(&tool_usr1);
    tool_usr1_ok = false;
}

static int signal_waiter(void *arg)
{
    int64_t drain_timeout = *(const int64_t *)arg;
    free(arg);
    int sig;
    while ((sig = corio_signals_next(&tool_sigs, NULL, CORIO_FOREVER)) > 0) {
        if (atomic_fetch_add(&tool_signalled, 1) == 0)
            corio_threads_drain(corio_now() + drain_timeout); /* every loop of the tool */
        else
            corio_threads_stop(); /* a second signal: at once */
    }
    /* -ESHUTDOWN: this loop has drained; -ECANCELED: it stops. */
    return 0;
}

int tool_stop_on_signals(int64_t drain_timeout)
{
    if (!tool_sigs_ok)
        return -EBADF;
    int64_t *arg = malloc(sizeof(*arg));
    if (!arg)
        return -ENOMEM;
    *arg = drain_timeout;
    int err = corio_spawn(NULL, NULL, signal_waiter, arg);
    if (err)
        free(arg);
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
    tool_dump_loops(corio_loop_current());
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
 * and how many loops listen (or, handing over, have their inbox open). */
static _Atomic int listen_port = -1;
static _Atomic unsigned listening;

static enum tool_balance balance = TOOL_BALANCE_REUSEPORT;

void tool_set_balance(const char *opt, const char *val)
{
    if (strcmp(val, "reuseport") == 0)
        balance = TOOL_BALANCE_REUSEPORT;
    else if (strcmp(val, "round-robin") == 0)
        balance = TOOL_BALANCE_ROUND_ROBIN;
    else if (strcmp(val, "least") == 0)
        balance = TOOL_BALANCE_LEAST;
    else {
        fprintf(stderr, "bad value for %s: '%s' (reuseport, round-robin or least)\n", opt, val);
        exit(2);
    }
}

bool tool_hands_over(void)
{
    return balance != TOOL_BALANCE_REUSEPORT && corio_thread_count() > 1;
}

int tool_listen(const char *who, const char *host, uint16_t port, int backlog)
{
    unsigned n = corio_thread_count(), i = corio_thread_index();
    bool handing = tool_hands_over();
    if (handing && i > 0)
        return -ENOTSOCK; /* loop 0 accepts for all */
    if (i == 0 && n > 1 && corio_loop_backend(corio_loop_current()) != CORIO_BACKEND_IO_URING)
        fprintf(stderr, "%s: backend %s: %s\n", who,
                corio_backend_name(corio_loop_backend(corio_loop_current())),
                corio_loop_backend_reason(corio_loop_current()));
    if (i > 0 && !handing) {
        int p;
        while ((p = atomic_load(&listen_port)) < 0)
            if (corio_sleep(corio_now() + CORIO_MS(1)) != 0)
                return -ECANCELED;
        if (p == 0)
            return -ECANCELED; /* the first one could not listen: it says why */
        port = (uint16_t)p;
    }
    int lfd = corio_listen_tcp(host, port, backlog, n > 1 && !handing ? CORIO_LISTEN_REUSEPORT : 0);
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

/* ---- handing connections over: loop 0 accepts, every loop serves ----------------------------- */

/* A loop's inbox: where the connections handed to it go. conns and conn are its thread's own;
 * open_conns is counted up by loop 0 as it hands one over and down by the loop as one ends. */
static struct inbox {
    struct corio_group *conns;
    corio_fn *conn;
    bool open;
    _Atomic unsigned open_conns;
} inboxes[TOOL_MAX_THREADS];

void tool_inbox_open(struct corio_group *conns, corio_fn *conn)
{
    struct inbox *in = &inboxes[corio_thread_index()];
    in->conns = conns;
    in->conn = conn;
    in->open = true;
    if (corio_thread_index() > 0)
        atomic_fetch_add(&listening, 1);
}

void tool_inbox_close(void)
{
    inboxes[corio_thread_index()].open = false;
}

void tool_conn_done(void)
{
    if (tool_hands_over())
        atomic_fetch_sub_explicit(&inboxes[corio_thread_index()].open_conns, 1,
                                  memory_order_relaxed);
}

/* Runs on the loop the connection was handed to (a message from loop 0, or loop 0 itself). */
static void take(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct inbox *in = &inboxes[corio_thread_index()];
    if (!in->open || corio_group_spawn(NULL, in->conns, in->conn, arg) != 0) {
        close(fd);
        atomic_fetch_sub_explicit(&in->open_conns, 1, memory_order_relaxed);
    }
}

/* The loop the next connection goes to. */
static unsigned pick(unsigned n)
{
    static unsigned next; /* loop 0's own */
    unsigned at = next;
    next = (next + 1) % n;
    if (balance == TOOL_BALANCE_LEAST) {
        /* The fewest open; ties go round, so that equal loops share the new ones. */
        unsigned best = at, least = UINT32_MAX;
        for (unsigned k = 0; k < n; k++) {
            unsigned i = (at + k) % n;
            unsigned c = atomic_load_explicit(&inboxes[i].open_conns, memory_order_relaxed);
            if (c < least)
                least = c, best = i;
        }
        at = best;
    }
    return at;
}

static int hand_over(int fd)
{
    unsigned to = pick(corio_thread_count());
    atomic_fetch_add_explicit(&inboxes[to].open_conns, 1, memory_order_relaxed);
    if (to == corio_thread_index()) {
        take((void *)(intptr_t)fd);
        return 0;
    }
    int err = corio_loop_post(corio_thread_loop(to), take, (void *)(intptr_t)fd);
    if (err) {
        close(fd);
        atomic_fetch_sub_explicit(&inboxes[to].open_conns, 1, memory_order_relaxed);
    }
    return err;
}

int tool_serve_handed(const char *who, int lfd)
{
    if (corio_thread_index() > 0) {
        /* Wait to be drained or stopped; the connections come as messages meanwhile. */
        int err = corio_set_idle(true);
        if (err == 0)
            err = corio_sleep(CORIO_FOREVER);
        corio_set_idle(false);
        return err;
    }
    for (;;) {
        int fd = corio_accept(lfd, NULL, NULL, 0, CORIO_FOREVER);
        if (fd == -ECANCELED || fd == -ESHUTDOWN)
            return fd;
        if (fd == -ECONNABORTED || fd == -EINTR)
            continue;
        if (fd < 0) {
            /* Out of descriptors or memory: wait for connections to end instead of spinning. */
            if (fd != -EMFILE && fd != -ENFILE)
                fprintf(stderr, "%s: accept: %s\n", who, strerror(-fd));
            int err = corio_sleep(corio_now() + CORIO_MS(10));
            if (err == -ECANCELED || err == -ESHUTDOWN)
                return err;
            continue;
        }
        hand_over(fd);
    }
}

/* ---- the coroutine dump on SIGUSR1 ------------------------------------------------------------ */

/* Run by each loop on its own thread, where corio_loop_dump may look at it. */
static void dump_here(void *arg)
{
    (void)arg;
    corio_loop_dump(corio_loop_current(), stderr);
}

void tool_dump_loops(struct corio_loop *loop)
{
    unsigned n = corio_thread_count();
    if (n == 0) {
        corio_loop_dump(loop, stderr);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        corio_loop_post(corio_thread_loop(i), dump_here, NULL);
}

static int sigusr1_waiter(void *arg)
{
    const char *who = arg;
    corio_set_name("SIGUSR1 report");
    while (corio_signals_next(&tool_usr1, NULL, CORIO_FOREVER) == SIGUSR1)
        tool_report(who);
    return 0;
}

int tool_report_on_signal(struct corio_loop *loop, const char *who)
{
    return tool_usr1_ok ? corio_spawn(NULL, loop, sigusr1_waiter, (void *)who) : -EINVAL;
}
