/*
 * bench_epoll_main: the main of the epoll baselines (epoll_echo, epoll_http), which runs a server
 * on one thread or, with --threads N, on N (common.h says what it does, step by step).
 *
 * With N threads the server is N copies of the single-threaded one that share nothing: each
 * thread has its own epoll set, its own per-fd table and its own listener, all on one port with
 * SO_REUSEPORT, so that the kernel spreads the connections over the threads (by a hash of the
 * 4-tuple) and a connection stays with the thread that accepted it for its life. The event loop
 * is the single-threaded server's, unchanged. This is how nginx's workers run with "listen ...
 * reuseport" (processes there, threads here), and it is the shape of corio-echo and corio-httpd
 * with --threads (a loop and a listener per thread), which is why it is the fair baseline for
 * them: both sides pay for their event loop and nothing else, with no hand-off between threads
 * and no lock. Redis's io-threads are another design: one thread runs the event loop and hands
 * the reads and writes to I/O threads and takes them back, a hand-off per message that corio does
 * not make, so that baseline would measure something else.
 *
 * Each thread has a table of its own rather than one table indexed by fd. A shared table would
 * need no lock either (an fd belongs to the thread that accepted it until it is closed), but the
 * fd numbers are the process's: consecutive fds go to different threads, their entries would share
 * cache lines, and every write to one (output pending, a partial request) would take the line away
 * from the other thread's core. The tables cost address space only: calloc gets them from mmap,
 * and only the pages of the fds a thread holds are ever touched.
 *
 * Stopping. SIGINT and SIGTERM are blocked in every thread and read from a signalfd, one per
 * thread in its own epoll set as in the single-threaded server, so that the event loop does not
 * change. A signal sent to the process is pending for all the threads and makes every signalfd
 * readable; the first thread to read it stops. Each thread that stops sends the process a SIGTERM
 * on its way out, which the next one reads, and so on until every thread has stopped: no state is
 * shared between the loops, not even a stop flag. The last SIGTERM stays pending, blocked, and
 * goes with the process. A loop that fails (epoll_wait) stops the others the same way.
 *
 * With --cpu C, thread i is pinned to CPU C + i (bench_server_init pinned the process to C, the
 * first thread's CPU); without it no thread is pinned, and the scheduler places them.
 */
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One event loop: an instance of the server, and the thread that runs it. */
struct epoll_loop {
    const struct bench_epoll_server *srv; /* what the server is */
    void *server;                         /* the instance, srv->size bytes; NULL if not made */
    void *table;                          /* its per-fd table; NULL if not made */
    pthread_t thread;                     /* its thread, for all but the first loop */
    bool started;                         /* the thread was created, and is to be joined */
    int rc;                               /* what srv->run returned */
};

static struct bench_epoll *ep_of(const struct epoll_loop *l)
{
    return (struct bench_epoll *)((char *)l->server + l->srv->ep_offset);
}

/* Passes the stop on to a thread still running (the top comment says how). */
static void pass_stop(void)
{
    kill(getpid(), SIGTERM);
}

static void *loop_thread(void *arg)
{
    struct epoll_loop *l = arg;
    l->rc = l->srv->run(l->server);
    pass_stop();
    return NULL;
}

/* Starts the threads of loops 1 to @n - 1, thread i pinned to CPU @cpu + i if @cpu >= 0. Returns
 * 0, or -1 after printing why; the threads started by then are marked so. */
static int start_threads(struct epoll_loop *loops, int n, int cpu)
{
    for (int i = 1; i < n; i++) {
        pthread_attr_t attr;
        int err = pthread_attr_init(&attr);
        if (err == 0 && cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            if (cpu + i < CPU_SETSIZE)
                CPU_SET(cpu + i, &set);
            err = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        }
        if (err == 0)
            err = pthread_create(&loops[i].thread, &attr, loop_thread, &loops[i]);
        pthread_attr_destroy(&attr);
        if (err != 0) {
            fprintf(stderr, "thread %d", i);
            if (cpu >= 0)
                fprintf(stderr, " on CPU %d", cpu + i);
            fprintf(stderr, ": %s\n", strerror(err));
            return -1;
        }
        loops[i].started = true;
    }
    return 0;
}

/* Prints @prefix, then "conns=@conns" and the server's counters, @sums. */
static void print_counters(const char *prefix, const struct bench_epoll_server *srv, uint64_t conns,
                           const uint64_t *sums)
{
    char line[256];
    int len = snprintf(line, sizeof(line), "%sconns=%llu", prefix, (unsigned long long)conns);
    for (int k = 0; k < BENCH_MAX_COUNTERS && srv->counters[k] != NULL; k++) {
        len += snprintf(line + len, sizeof(line) - (size_t)len, " %s=%llu", srv->counters[k],
                        (unsigned long long)sums[k]);
    }
    fprintf(stderr, "%s\n", line);
}

/* Prints the counters of the @n loops: with more than one, a "thread i: conns=..." line for
 * each, which shows how the kernel spread the connections; then the "conns=..." line, each
 * figure summed over the loops. */
static void report(const struct epoll_loop *loops, int n)
{
    const struct bench_epoll_server *srv = loops[0].srv;
    uint64_t conns = 0, sums[BENCH_MAX_COUNTERS] = {0};
    for (int i = 0; i < n; i++) {
        uint64_t own[BENCH_MAX_COUNTERS] = {0};
        srv->count(loops[i].server, own);
        if (n > 1) {
            char prefix[32];
            snprintf(prefix, sizeof(prefix), "thread %d: ", i);
            print_counters(prefix, srv, ep_of(&loops[i])->conns, own);
        }
        conns += ep_of(&loops[i])->conns;
        for (int k = 0; k < BENCH_MAX_COUNTERS; k++)
            sums[k] += own[k];
    }
    print_counters("", srv, conns, sums);
}

/* Closes the connections loop @l still holds: the fds whose table entry says so. */
static void close_conns(const struct epoll_loop *l)
{
    const struct bench_epoll_server *srv = l->srv;
    const char *entry = l->table;
    for (int fd = 0; fd <= ep_of(l)->max_fd; fd++, entry += srv->entry_size) {
        if (*(const bool *)(entry + srv->open_offset))
            srv->close_conn(l->server, fd);
    }
}

/* Opens loops[0..@n) as @o says; *@made counts those whose instance was made (each to be closed,
 * if only partly open). Returns the port they listen on, or -1 after printing why. */
static int open_loops(struct epoll_loop *loops, int n, const struct bench_options *o,
                      const struct bench_epoll_server *srv, const sigset_t *mask, int *made)
{
    struct bench_options at = *o;
    int port = 0;
    for (*made = 0; *made < n; at.port = port) {
        struct epoll_loop *l = &loops[*made];
        l->srv = srv;
        l->server = calloc(1, srv->size);
        if (l->server == NULL) {
            perror("calloc");
            return -1;
        }
        ++*made;
        l->table = bench_epoll_open(ep_of(l), &at, srv->entry_size, mask, &port);
        if (l->table == NULL)
            return -1;
        srv->attach(l->server, l->table);
    }
    return port;
}

int bench_epoll_main(const struct bench_options *o, const struct bench_epoll_server *srv)
{
    struct epoll_loop loops[BENCH_MAX_THREADS] = {{0}};
    int n = o->threads, made, status = 1;
    bool started = false;
    sigset_t mask;
    bench_block_stop_signals(&mask);
    int port = open_loops(loops, n, o, srv, &mask, &made);
    if (port < 0)
        goto out;

    started = start_threads(loops, n, o->cpu) == 0;
    if (started) {
        bench_ready(port);
        loops[0].rc = srv->run(loops[0].server);
    }
    if (n > 1)
        pass_stop();
    status = started ? 0 : 1;
    for (int i = 1; i < n && loops[i].started; i++)
        pthread_join(loops[i].thread, NULL);
    for (int i = 0; i < n && started; i++) {
        if (loops[i].rc != 0)
            status = 1;
    }
    if (started)
        report(loops, n);

out:
    for (int i = 0; i < made; i++) {
        if (loops[i].table != NULL)
            close_conns(&loops[i]);
        bench_epoll_close(ep_of(&loops[i]));
        free(loops[i].table);
        free(loops[i].server);
    }
    return status;
}
