/*
 * corio-load: a load generator on corio for TCP echo servers and HTTP/1.1 servers; this file sets
 * the run up and coordinates it, and tools/load/ holds its parts (load.h lists them).
 *
 * Timing: the clock starts before the first connect. Messages that complete during the warm-up are
 * not counted; those that complete in [warm-up, warm-up + duration) are. One coordinator thread
 * (the main one) waits for the end, for SIGINT/SIGTERM, or for every connection to have ended; then
 * it wakes each loop through an eventfd, and each loop cancels its connections. Latencies go into
 * a log-linear histogram per thread (hist.c), whose counters the coordinator reads for the
 * progress line without a lock (stats.c says how).
 */
#include "load/load.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static struct worker *workers; /* cfg.threads of them */

static int64_t secs_to_ns(double s)
{
    return (int64_t)llround(s * 1e9);
}

/* Reads the utime + stime of process @pid in seconds. Returns -1 if it cannot be read. */
static double proc_cpu_seconds(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields count from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* After ')' come field 3 (state) ... field 14 utime, field 15 stime. */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static bool all_finished(void)
{
    for (unsigned i = 0; i < cfg.threads; i++)
        if (!atomic_load(&workers[i].finished))
            return false;
    return true;
}

/* ---- set-up --------------------------------------------------------------------------------- */

/* Raises RLIMIT_NOFILE's soft limit as far as needed and allowed. Returns false if it cannot fit
 * every connection. */
static bool enough_fds(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return true;
    rlim_t need = (rlim_t)cfg.conns + 64 + 2 * cfg.threads;
    if (rl.rlim_cur >= need)
        return true;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= need)
        return true;
    fprintf(stderr, PROG ": %u connections need %llu descriptors, RLIMIT_NOFILE allows %llu\n",
            cfg.conns, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
    return false;
}

/* Sets up the request or the pool, and the workers with their connections. Returns 0 or -1. */
static int setup(void)
{
    if ((cfg.mode == MODE_HTTP ? load_http_setup() : load_echo_setup()) != 0)
        return -1;
    workers = calloc(cfg.threads, sizeof(*workers));
    if (!workers)
        return -1;
    for (unsigned i = 0; i < cfg.threads; i++)
        workers[i].efd = -1;
    size_t rcap = cfg.mode == MODE_HTTP ? HTTP_RBUF : cfg.size * cfg.pipeline;
    if (cfg.mode == MODE_ECHO && rcap < 16384)
        rcap = 16384;
    if (cfg.mode == MODE_ECHO && rcap > 256 * 1024)
        rcap = 256 * 1024;
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct worker *w = &workers[i];
        unsigned first = (unsigned)((uint64_t)cfg.conns * i / cfg.threads);
        unsigned last = (unsigned)((uint64_t)cfg.conns * (i + 1) / cfg.threads);
        w->index = i;
        w->cpu = cfg.ncpus ? cfg.cpus[i % cfg.ncpus] : -1;
        w->nconns = last - first;
        w->efd = eventfd(0, EFD_CLOEXEC);
        w->conn = calloc(w->nconns, sizeof(*w->conn));
        if (w->efd < 0 || !w->conn)
            return -1;
        for (unsigned k = 0; k < w->nconns; k++) {
            struct conn *c = &w->conn[k];
            c->w = w;
            c->id = first + k;
            c->fd = -1;
            c->rcap = rcap;
            c->rbuf = malloc(rcap);
            c->t_send = calloc(cfg.pipeline, sizeof(*c->t_send));
            c->sbuf = cfg.mode == MODE_ECHO ? malloc(cfg.size) : NULL;
            if (!c->rbuf || !c->t_send || (cfg.mode == MODE_ECHO && !c->sbuf))
                return -1;
        }
    }
    return 0;
}

static void teardown(void)
{
    for (unsigned i = 0; workers && i < cfg.threads; i++) {
        struct worker *w = &workers[i];
        for (unsigned k = 0; w->conn && k < w->nconns; k++) {
            free(w->conn[k].rbuf);
            free(w->conn[k].t_send);
            free(w->conn[k].sbuf);
        }
        free(w->conn);
        if (w->efd >= 0)
            close(w->efd);
    }
    free(workers);
    free(cfg.pool);
    free(cfg.request);
}

/* Blocks SIGINT and SIGTERM, which @sigs then holds, so that only the coordinator's sigtimedwait
 * takes them; and with --cpu, keeps the process on the CPUs of the list. */
static void block_signals(sigset_t *sigs)
{
    /* The threads inherit the mask, so the signals only reach sigtimedwait below. A shell starts
     * background jobs with SIGINT ignored, and an ignored signal is discarded before anyone can
     * wait for it: take the default disposition back first (blocked, it never runs). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(sigs);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    if (cfg.ncpus) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (unsigned i = 0; i < cfg.ncpus; i++)
            CPU_SET(cfg.cpus[i], &set);
        sched_setaffinity(0, sizeof(set), &set);
    }
}

/* ---- the coordinator ------------------------------------------------------------------------ */

/* Starts the worker threads. Returns how many started: all of them unless one failed. */
static unsigned start_threads(void)
{
    unsigned started = 0;
    for (; started < cfg.threads; started++) {
        int err =
            pthread_create(&workers[started].thread, NULL, load_worker_thread, &workers[started]);
        if (err) {
            fprintf(stderr, PROG ": cannot start a thread: %s\n", strerror(err));
            break;
        }
    }
    return started;
}

/* Prints the progress line at @now, using @t for the totals; @last_msgs and @last_t hold the
 * previous line's count and time, for the rate. */
static void progress(struct totals *t, int64_t now, uint64_t *last_msgs, int64_t *last_t)
{
    load_totals_read(workers, cfg.threads, t);
    double dt = (double)(now - *last_t) / 1e9;
    double rate = dt > 0 ? (double)(t->msgs_all - *last_msgs) / dt : 0;
    *last_msgs = t->msgs_all;
    *last_t = now;
    load_progress_line(t, (double)(now - cfg.t0) / 1e9, rate, now < cfg.t_measure);
}

/* Waits until the measured window ends, a signal of @sigs arrives (kept in res->stop_signal) or
 * every connection has ended, printing the progress line meanwhile; with --server-pid, reads the
 * server's CPU time at the start and the end of the window into res->server_cpu. Waits for
 * nothing unless @all_started. Returns the time it stopped waiting. */
static int64_t coordinate(const sigset_t *sigs, bool all_started, struct result *res)
{
    double cpu_start = -1;
    int64_t next_tick = cfg.t0 + CORIO_SEC(1);
    uint64_t last_msgs = 0;
    int64_t last_t = cfg.t0;
    int64_t now = corio_now();
    while (all_started) {
        now = corio_now();
        if (cpu_start < 0 && cfg.server_pid && now >= cfg.t_measure)
            cpu_start = proc_cpu_seconds(cfg.server_pid);
        if (now >= cfg.t_end || all_finished())
            break;
        if (cfg.progress && now >= next_tick) {
            progress(&res->t, now, &last_msgs, &last_t);
            next_tick += CORIO_SEC(1);
        }
        int64_t wake = cfg.t_end;
        if (cfg.progress && next_tick < wake)
            wake = next_tick;
        if (cfg.server_pid && cpu_start < 0 && cfg.t_measure < wake)
            wake = cfg.t_measure;
        if (wake - now > CORIO_MS(100)) /* how soon all_finished() is noticed */
            wake = now + CORIO_MS(100);
        if (wake < now)
            wake = now;
        struct timespec ts = {.tv_sec = (wake - now) / CORIO_SEC(1),
                              .tv_nsec = (wake - now) % CORIO_SEC(1)};
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig > 0) {
            res->stop_signal = sig;
            now = corio_now();
            break;
        }
    }
    if (cpu_start >= 0) {
        double cpu_end = proc_cpu_seconds(cfg.server_pid);
        if (cpu_end >= 0)
            res->server_cpu = cpu_end - cpu_start;
    }
    return now;
}

/* Stops the @started threads through their eventfds and joins them. Returns the first loop
 * set-up error of any worker (after a message), or 0. */
static int stop_threads(unsigned started)
{
    for (unsigned i = 0; i < started; i++) {
        uint64_t one = 1;
        if (write(workers[i].efd, &one, sizeof(one)) != sizeof(one))
            fprintf(stderr, PROG ": cannot stop thread %u: %s\n", i, strerror(errno));
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);

    int setup_err = 0;
    for (unsigned i = 0; i < cfg.threads; i++)
        if (workers[i].setup_err && !setup_err)
            setup_err = workers[i].setup_err;
    if (setup_err)
        fprintf(stderr, PROG ": %s\n", corio_strerror_setup(setup_err));
    return setup_err;
}

/* Prints the summary and writes the JSON of @res. Returns the exit status: 1 if the JSON could not
 * be written, a message was wrong, or none completed; 0 otherwise. */
static int report(const struct result *res)
{
    if (!cfg.quiet)
        load_summary_print(res);
    int status = 0;
    if (cfg.json && load_json_write(res) != 0)
        status = 1;
    if (res->t.verify_errors > 0) {
        fprintf(stderr, PROG ": %" PRIu64 " verify errors\n", res->t.verify_errors);
        status = 1;
    }
    if (res->t.msgs == 0) {
        fprintf(stderr, PROG ": no message completed in the measured window\n");
        status = 1;
    }
    return status;
}

int main(int argc, char **argv)
{
    load_parse_options(argc, argv);
    if (!enough_fds())
        return 2;
    cfg.progress = !cfg.quiet && isatty(STDOUT_FILENO);
    if (cfg.server_pid && proc_cpu_seconds(cfg.server_pid) < 0) {
        fprintf(stderr, PROG ": cannot read /proc/%ld/stat\n", cfg.server_pid);
        return 2;
    }
    if (setup() != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        teardown();
        return 1;
    }
    sigset_t sigs;
    block_signals(&sigs);

    cfg.t0 = corio_now();
    cfg.t_measure = cfg.t0 + secs_to_ns(cfg.warmup);
    cfg.t_end = cfg.t_measure + secs_to_ns(cfg.duration);
    unsigned started = start_threads();
    struct result res;
    memset(&res, 0, sizeof(res));
    res.server_cpu = -1;
    int64_t now = coordinate(&sigs, started == cfg.threads, &res);
    int setup_err = stop_threads(started);

    int64_t stop = now < cfg.t_end ? now : cfg.t_end;
    res.secs = stop > cfg.t_measure ? (double)(stop - cfg.t_measure) / 1e9 : 0;
    load_result_collect(workers, cfg.threads, &res);
    int status = report(&res);
    if (started < cfg.threads || setup_err)
        status = 1;
    teardown();
    return status;
}
