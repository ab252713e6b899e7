/* corio-echo: a TCP echo server on corio, one coroutine per connection. */
#include "common.h"

#include <getopt.h>
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
static struct corio_bufring *ring;
static uint64_t n_conns;
static int server_err; /* why the server could not start */

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
               "  --batch-wait-us N when busy, wait up to N us for more completions (default 50;\n"
               "                    0: never)\n"
               "  --cpu N           pin the server to CPU N\n"
               "  --stats           print the loop's counters at exit\n"
               "  --help            this text\n"
               "Prints 'ready port=N' when listening; stops cleanly on SIGINT/SIGTERM.\n");
}

/* Fast mode: the kernel picks a buffer from the shared ring as data arrives; the connection
 * holds none while it waits. */
static int echo_conn_ring(void *arg)
{
    int fd = (int)(intptr_t)arg;
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
    return 0;
}

static int echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(o.buffer); /* one allocation per connection, none per message */
    ssize_t n;
    while (buf && (n = corio_recv(fd, buf, o.buffer, 0, CORIO_FOREVER)) > 0)
        if (corio_send_all(fd, buf, (size_t)n, NULL, CORIO_FOREVER) < 0)
            break;
    free(buf);
    corio_close(fd);
    return 0;
}

static int server(void *arg)
{
    (void)arg;
    int lfd = corio_listen_tcp(o.host, o.port, o.backlog, 0);
    if (lfd < 0) {
        fprintf(stderr, "corio-echo: listen on %s:%u: %s\n", o.host, o.port, strerror(-lfd));
        server_err = lfd;
        corio_loop_stop(corio_loop_current());
        return lfd;
    }
    printf("ready port=%d\n", corio_local_port(lfd));
    fflush(stdout);
    struct corio_acceptor acc;
    bool multi = !o.plain && corio_acceptor_init(&acc, lfd, o.fixed ? CORIO_ACCEPT_FIXED : 0) == 0;
    corio_fn *conn = o.plain ? echo_conn : echo_conn_ring;
    for (;;) {
        int fd = multi ? corio_acceptor_next(&acc, CORIO_FOREVER)
                       : corio_accept(lfd, NULL, NULL, 0, CORIO_FOREVER);
        if (fd == -ECANCELED)
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
        if (corio_spawn(NULL, NULL, conn, (void *)(intptr_t)fd) != 0)
            corio_close(fd);
        else
            n_conns++;
    }
    if (multi)
        corio_acceptor_fini(&acc);
    corio_close(lfd);
    corio_loop_stop(corio_loop_current());
    return 0;
}

int main(int argc, char **argv)
{
    struct corio_loop_opts lo = {0};
    int cpu = -1;
    enum { O_PORT = 256, O_HOST, O_BACKLOG, O_STACK, O_BUF, O_SQE, O_SQPOLL, O_CPU, O_STATS,
           O_BUFS, O_PLAIN, O_FIXED, O_ZC, O_SQCPU, O_BATCH };
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
    if (optind != argc || o.buffer > 1 << 20 || (o.fixed && o.plain)) {
        usage(stderr);
        return 2;
    }
    if (cpu >= 0 && tool_pin_cpu(cpu) != 0)
        fprintf(stderr, "corio-echo: cannot pin to CPU %d\n", cpu);
    tool_block_signals();
    struct corio_loop *loop;
    int err = tool_loop_new("corio-echo", &loop, &lo);
    if (err)
        return 1;
    if (!o.plain) {
        err = corio_bufring_new(&ring, loop, o.buffers, o.buffer);
        if (err) {
            /* No buffer rings here (before 5.19): fall back to a buffer per connection. */
            fprintf(stderr, "corio-echo: no buffer ring (%s): plain mode\n", strerror(-err));
            o.plain = true;
            o.buffer = 16384;
        }
    }
    err = tool_stop_on_signals(loop);
    if (!err)
        err = corio_spawn(NULL, loop, server, NULL);
    if (!err)
        err = corio_loop_run(loop);
    if (err)
        fprintf(stderr, "corio-echo: %s\n", strerror(-err));
    if (o.stats)
        tool_print_stats("corio-echo", loop);
    fprintf(stderr, "corio-echo: conns=%llu\n", (unsigned long long)n_conns);
    corio_bufring_free(ring);
    corio_loop_free(loop);
    return err || server_err ? 1 : 0;
}
