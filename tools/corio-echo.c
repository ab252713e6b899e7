/* corio-echo: a TCP echo server on corio, one coroutine per connection. */
#include "common.h"

#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct opts {
    const char *host;
    uint16_t port;
    int backlog;
    size_t buffer;     /* plain mode: receive buffer per connection; fast mode: per ring buffer */
    unsigned buffers;  /* fast mode: buffers in the ring */
    bool plain;        /* no multishot accept, no buffer ring */
    bool fixed;        /* accept into the fixed file table */
    bool stats;
};

static struct opts o = {
    .host = "0.0.0.0", .port = 7000, .backlog = 4096, .buffer = 0, .buffers = 4096};
static unsigned threads = 1;
/* How long a graceful stop (the first SIGINT or SIGTERM) lets connections finish: 5 s, room for
 * slow clients when what they wait for takes milliseconds, and well within what a service
 * manager waits before it kills (systemd's TimeoutStopSec 90 s, Kubernetes' grace period 30 s). */
static int64_t drain_timeout = CORIO_SEC(5);
/* Each loop's own, on its own thread. */
static _Thread_local struct corio_bufring *ring;
static _Thread_local bool plain;
static _Atomic uint64_t n_conns;
static _Atomic int server_err; /* why a server could not start */

static void usage(FILE *f)
{
    fprintf(f, "usage: corio-echo [options]\n"
               "  --port N          TCP port (default 7000)\n"
               "  --host ADDR       numeric IPv4/IPv6 address to bind (default 0.0.0.0)\n"
               "  --backlog N       listen backlog (default 4096)\n"
               "  --stack-size N    coroutine stack size in bytes, k/m suffix (default 64k)\n"
               "  --buffer N        bytes per receive buffer (default 4k; 16k with --plain)\n"
               "  --buffers N       buffers in the shared ring, a power of two (default 4096)\n"
               "  --plain           one recv buffer per connection, single-shot accept and recv\n"
               "                    (default: multishot accept, multishot recv into a buffer ring)\n"
               "  --fixed-files N   accept into a fixed file table of N slots (direct descriptors)\n"
               "  --zc-threshold N  send zero-copy (send_zc) from N bytes (default: never)\n"
               "  --sq-entries N    io_uring SQ size (default 256)\n"
               "  --sqpoll          submit through a kernel SQ polling thread\n"
               "  --sqpoll-cpu N    pin the SQ polling thread to CPU N\n"
               "  --batch-wait-us N when busy, wait up to N us for more completions (default 50\n"
               "                    for a loop pinned to one CPU, else never; 0: never)\n"
               "  --cpu N           pin the server to CPU N (with --threads: loop i to CPU N + i)\n"
               "  --threads N       N loops on N threads; default 1: the benchmarks pin one\n"
               "                    server thread beside the load generator, and one loop is\n"
               "                    what they compare\n"
               "  --balance B       how connections reach the loops of --threads: reuseport\n"
               "                    (default: a listener per loop, the kernel hashes each\n"
               "                    connection to one), round-robin or least (loop 0 accepts\n"
               "                    and hands each over in turn, or to the loop with fewest)\n"
               "  --drain-timeout S seconds a graceful stop lets connections finish (default 5)\n"
               "  --stats           print the loop's counters at exit (SIGUSR1 prints them at any\n"
               "                    time)\n"
               "  --help            this text\n"
               "Prints 'ready port=N' when listening. The first SIGINT or SIGTERM stops it\n"
               "gracefully: it accepts no more and ends once its clients have closed their\n"
               "connections, or after --drain-timeout; a second signal stops it at once.\n"
               "SIGUSR1 writes the counters and the coroutine dump to stderr; CORIO_STALL_MS=N\n"
               "reports stalls.\n");
}

/* Fast mode: the kernel picks a buffer from the shared ring as data arrives; the connection
 * holds none while it waits. */
static int echo_conn_ring(void *arg)
{
    int fd = (int)(intptr_t)arg;
    atomic_fetch_add_explicit(&n_conns, 1, memory_order_relaxed);
    struct corio_receiver rx;
    struct corio_buf b;
    ssize_t n;
    corio_receiver_init(&rx, fd, ring);
    while ((n = corio_receiver_next(&rx, &b, CORIO_FOREVER)) > 0) {
        ssize_t w = corio_send_all(fd, b.data, b.len, NULL, CORIO_FOREVER);
        corio_buf_release(&b);
        if (w < 0)
            break;
    }
    corio_receiver_fini(&rx);
    corio_close(fd);
    tool_conn_done();
    return 0;
}

static int echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    atomic_fetch_add_explicit(&n_conns, 1, memory_order_relaxed);
    char *buf = malloc(o.buffer); /* one allocation per connection, none per message */
    ssize_t n;
    while (buf && (n = corio_recv(fd, buf, o.buffer, 0, CORIO_FOREVER)) > 0)
        if (corio_send_all(fd, buf, (size_t)n, NULL, CORIO_FOREVER) < 0)
            break;
    free(buf);
    corio_close(fd);
    tool_conn_done();
    return 0;
}

/* Accepts on @lfd into @conns until a drain or a stop: each loop's own listener, or loop 0's
 * alone with --balance reuseport on one loop. */
static void accept_loop(int lfd, struct corio_group *conns, corio_fn *conn)
{
    struct corio_acceptor acc;
    bool multi = !plain && corio_acceptor_init(&acc, lfd, o.fixed ? CORIO_ACCEPT_FIXED : 0) == 0;
    for (;;) {
        int fd = multi ? corio_acceptor_next(&acc, CORIO_FOREVER)
                       : corio_accept(lfd, NULL, NULL, 0, CORIO_FOREVER);
        if (fd == -ECANCELED || fd == -ESHUTDOWN)
            break;
        if (fd == -ECONNABORTED || fd == -EINTR)
            continue;
        if (fd < 0) {
            /* Out of descriptors (EMFILE, ENFILE) or memory: wait for connections to end instead
             * of spinning; anything else is reported, and retried just as slowly. */
            if (fd != -EMFILE && fd != -ENFILE)
                fprintf(stderr, "corio-echo: accept: %s\n", strerror(-fd));
            if (corio_sleep(corio_now() + CORIO_MS(10)) == -ECANCELED)
                break;
            continue;
        }
        if (corio_group_spawn(NULL, conns, conn, (void *)(intptr_t)fd) != 0)
            corio_close(fd);
    }
    if (multi)
        corio_acceptor_fini(&acc);
}

/* One loop's server: its listener (one per loop, SO_REUSEPORT, with --threads; or loop 0's alone,
 * which hands connections over, with --balance round-robin or least), its buffer ring, and its
 * connections in a group, all ended before it returns. */
static int server(void *arg)
{
    (void)arg;
    struct corio_loop *loop = corio_loop_current();
    plain = o.plain;
    if (!plain) {
        int err = corio_bufring_new(&ring, loop, o.buffers, o.buffer);
        if (err) {
            /* No buffer rings here (before 5.19): fall back to a buffer per connection. */
            fprintf(stderr, "corio-echo: no buffer ring (%s): plain mode\n", strerror(-err));
            plain = true;
        }
    }
    if (tool_stop_on_signals(drain_timeout) != 0)
        fprintf(stderr, "corio-echo: no signal handling\n");
    if (corio_thread_index() == 0 && tool_report_on_signal(loop, "corio-echo") != 0)
        fprintf(stderr, "corio-echo: no report on SIGUSR1\n");
    struct corio_group conns;
    corio_group_init(&conns, 0);
    corio_fn *conn = plain ? echo_conn : echo_conn_ring;
    bool handing = tool_hands_over();
    if (handing)
        tool_inbox_open(&conns, conn);
    int lfd = tool_listen("corio-echo", o.host, o.port, o.backlog);
    if (lfd < 0 && !(handing && lfd == -ENOTSOCK)) {
        atomic_store(&server_err, lfd);
        tool_inbox_close();
        corio_bufring_free(ring);
        corio_threads_stop();
        return lfd;
    }
    if (handing)
        tool_serve_handed("corio-echo", lfd); /* loop 0 accepts, the others wait for theirs */
    else
        accept_loop(lfd, &conns, conn);
    tool_inbox_close();
    if (lfd >= 0)
        corio_close(lfd);
    /* A stop cancels the connections; a drain lets them go on until their clients close them
     * (echo has no unit of work to end between: the client's bytes are its to delimit), or until
     * the drain's deadline cancels them. */
    if (!corio_draining())
        corio_threads_stop();
    corio_group_wait(&conns, CORIO_FOREVER);
    if (o.stats)
        tool_print_stats("corio-echo", loop);
    corio_bufring_free(ring);
    ring = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    struct corio_loop_opts lo = {0};
    int cpu = -1;
    enum { O_PORT = 256, O_HOST, O_BACKLOG, O_STACK, O_BUF, O_SQE, O_SQPOLL, O_CPU, O_STATS,
           O_BUFS, O_PLAIN, O_FIXED, O_ZC, O_SQCPU, O_BATCH, O_THREADS, O_DRAIN,
           O_BALANCE };
    static const struct option longopts[] = {
        {"port", required_argument, NULL, O_PORT},     {"host", required_argument, NULL, O_HOST},
        {"backlog", required_argument, NULL, O_BACKLOG}, {"stack-size", required_argument, NULL, O_STACK},
        {"buffer", required_argument, NULL, O_BUF},     {"sq-entries", required_argument, NULL, O_SQE},
        {"sqpoll", no_argument, NULL, O_SQPOLL},        {"cpu", required_argument, NULL, O_CPU},
        {"stats", no_argument, NULL, O_STATS},          {"help", no_argument, NULL, 'h'},
        {"buffers", required_argument, NULL, O_BUFS},   {"plain", no_argument, NULL, O_PLAIN},
        {"fixed-files", required_argument, NULL, O_FIXED},
        {"zc-threshold", required_argument, NULL, O_ZC},
        {"sqpoll-cpu", required_argument, NULL, O_SQCPU},
        {"batch-wait-us", required_argument, NULL, O_BATCH},
        {"threads", required_argument, NULL, O_THREADS},
        {"balance", required_argument, NULL, O_BALANCE},
        {"drain-timeout", required_argument, NULL, O_DRAIN},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_PORT: o.port = (uint16_t)tool_parse_size("--port", optarg); break;
        case O_HOST: o.host = optarg; break;
        case O_BACKLOG: o.backlog = (int)tool_parse_size("--backlog", optarg); break;
        case O_STACK: lo.stack_size = tool_parse_size("--stack-size", optarg); break;
        case O_BUF: o.buffer = tool_parse_size("--buffer", optarg); break;
        case O_SQE: lo.sq_entries = (unsigned)tool_parse_size("--sq-entries", optarg); break;
        case O_SQPOLL: lo.flags |= CORIO_LOOP_SQPOLL; break;
        case O_CPU: cpu = (int)tool_parse_size("--cpu", optarg); break;
        case O_BALANCE: tool_set_balance("--balance", optarg); break;
        case O_THREADS: threads = (unsigned)tool_parse_size("--threads", optarg); break;
        case O_DRAIN: drain_timeout = tool_parse_seconds("--drain-timeout", optarg); break;
        case O_STATS: o.stats = true; break;
        case O_BUFS: o.buffers = (unsigned)tool_parse_size("--buffers", optarg); break;
        case O_PLAIN: o.plain = true; break;
        case O_FIXED:
            lo.fixed_files = (unsigned)tool_parse_size("--fixed-files", optarg);
            o.fixed = lo.fixed_files > 0;
            break;
        case O_ZC: lo.zc_threshold = tool_parse_size("--zc-threshold", optarg); break;
        case O_SQCPU:
            lo.sqpoll_cpu = (unsigned)tool_parse_size("--sqpoll-cpu", optarg);
            lo.flags |= CORIO_LOOP_SQPOLL_PIN;
            break;
        case O_BATCH: {
            unsigned us = (unsigned)tool_parse_size("--batch-wait-us", optarg);
            lo.batch_wait_us = us ? us : CORIO_BATCH_WAIT_OFF;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!o.buffer)
        o.buffer = o.plain ? 16384 : 4096;
    if (optind != argc || o.buffer > 1 << 20 || (o.fixed && o.plain) || threads == 0 ||
        threads > 1024) {
        usage(stderr);
        return 2;
    }
    if (tool_signals_init() != 0)
        fprintf(stderr, "corio-echo: no signal handling\n");
    int err = tool_run("corio-echo", threads, cpu, &lo, server);
    tool_signals_fini();
    fprintf(stderr, "corio-echo: conns=%llu\n", (unsigned long long)atomic_load(&n_conns));
    return err || atomic_load(&server_err) ? 1 : 0;
}
