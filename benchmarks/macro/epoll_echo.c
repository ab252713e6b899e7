/*
 * epoll_echo: a single-threaded epoll TCP echo server, the same-machine baseline that corio's echo
 * server is measured against. It is the classic C design of redis's ae.c: non-blocking sockets, one
 * epoll set, per-connection state in a table indexed by fd, and no dependency on corio.
 *
 * Data moves with recv()/send() rather than read()/write(): they skip the VFS layer, about 3%
 * less per message on loopback here, and MSG_NOSIGNAL makes a dead peer an EPIPE, not a signal.
 *
 * Readiness is level-triggered. For a request/response echo this needs the fewest syscalls:
 * - A recv() that returns less than the buffer size proves the receive queue was empty at that
 *   moment, and level triggering reports any byte that arrives later on the next epoll_wait().
 *   So a short read ends the drain, and the recv() that an edge-triggered server must make to see
 *   EAGAIN (one extra syscall per message, the dominant cost at 64 B) is never made. A full read
 *   goes on reading, which is "read until EAGAIN" without the final failing call.
 * - Edge triggering's one advantage, never calling epoll_ctl() to toggle EPOLLOUT, does not pay
 *   here: a write to a loopback peer that keeps reading is almost never short, so toggles are rare.
 *
 * When a write is short the rest is kept in the connection's buffer and the connection waits for
 * EPOLLOUT with EPOLLIN off, so it reads nothing more until its output is gone. That bounds memory
 * to one buffer per connection however fast a peer sends and however slowly it reads.
 *
 * Usage: epoll_echo [--host ADDR] [--port N] [--backlog N] [--cpu N] [--threads N] (common.c
 * parses them, and holds the rest of the set-up that the baselines share: pinning, limits,
 * listener, accept; common.h the accept pause, the stop signal and the wait that epoll_http's
 * loop shares). --threads N runs N copies of this event loop on N threads, each with its own
 * epoll set, fd table and SO_REUSEPORT listener on the one port: the baseline for corio-echo
 * --threads N (epoll_main.c says why this design, and how the threads stop).
 * Prints "ready port=N" once listening. SIGINT or SIGTERM stops it with status 0 and a
 * "conns=... msgs=... bytes=..." line on stderr (msgs counts recv() calls that returned data),
 * summed over the threads, each of which has a "thread i: conns=..." line before it.
 */
#include "common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* One read's worth, and the most a connection ever holds back: it bounds per-connection memory. */
#define IO_BUF_SIZE (64 * 1024)
/* Full reads taken in a row from one connection before the others get a turn. */
#define MAX_READS_PER_EVENT 16
#define MAX_EVENTS 1024

/* A connection's state, at table[fd]. */
struct conn {
    char *out;        /* unsent output: IO_BUF_SIZE bytes, allocated at the first short write */
    uint32_t out_off; /* first unsent byte in out */
    uint32_t out_len; /* end of the unsent bytes; out_off < out_len means output is pending */
    bool open;        /* the fd is an accepted connection owned by this table */
};

struct server {
    struct bench_epoll ep; /* the epoll set, listener and signalfd; accept pausing; stop flag */
    struct conn *table;    /* per-fd state, ep.nfds entries */
    uint64_t msgs;         /* recv() calls that returned data */
    uint64_t bytes;        /* bytes read (and so echoed, unless a peer vanished) */
    char buf[IO_BUF_SIZE]; /* the one read buffer: data is echoed before the next read */
};

static void close_conn(struct server *s, int fd)
{
    struct conn *c = &s->table[fd];
    /* close() also drops the fd from the epoll set: it was never dup()ed. */
    close(fd);
    free(c->out);
    *c = (struct conn){0};
    s->ep.closed_since_pause = true;
}

static void on_accept(struct server *s)
{
    int fd;
    while ((fd = bench_epoll_accept(s->ep.epfd, s->ep.lfd, s->ep.nfds, &s->ep.max_fd)) >= 0) {
        s->table[fd].open = true;
        s->ep.conns++;
    }
    if (fd != -EAGAIN)
        bench_epoll_pause_accept(&s->ep);
}

/*
 * Echoes what a readable connection has. Stops at a short read (the queue is drained, see the top
 * comment), after MAX_READS_PER_EVENT full reads (fairness: level triggering brings it back), or
 * when a write is short, in which case the rest waits in c->out for EPOLLOUT.
 */
static void on_readable(struct server *s, int fd)
{
    struct conn *c = &s->table[fd];
    for (int i = 0; i < MAX_READS_PER_EVENT; i++) {
        ssize_t n = recv(fd, s->buf, sizeof(s->buf), 0);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            /* EOF, ECONNRESET, ETIMEDOUT...: the peer is gone, nothing more to echo. */
            close_conn(s, fd);
            return;
        }
        s->msgs++;
        s->bytes += (uint64_t)n;
        ssize_t w = send(fd, s->buf, (size_t)n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                close_conn(s, fd); /* EPIPE (MSG_NOSIGNAL: no SIGPIPE), ECONNRESET */
                return;
            }
            w = 0;
        }
        if (w < n) {
            if (c->out == NULL && (c->out = malloc(IO_BUF_SIZE)) == NULL) {
                close_conn(s, fd);
                return;
            }
            memcpy(c->out, s->buf + w, (size_t)(n - w));
            c->out_off = 0;
            c->out_len = (uint32_t)(n - w);
            struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(s->ep.epfd, EPOLL_CTL_MOD, fd, &ev);
            return;
        }
        if (n < (ssize_t)sizeof(s->buf))
            return;
    }
}

static void on_writable(struct server *s, int fd)
{
    struct conn *c = &s->table[fd];
    int r = bench_send_pending(fd, c->out, &c->out_off, &c->out_len);
    if (r < 0)
        close_conn(s, fd);
    if (r <= 0)
        return;
    /* Output is gone: read again. Data that arrived meanwhile is reported at once (level). */
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(s->ep.epfd, EPOLL_CTL_MOD, fd, &ev);
}

static int run(struct server *s)
{
    struct epoll_event events[MAX_EVENTS];
    while (!s->ep.stop) {
        int n = bench_epoll_wait(&s->ep, events, MAX_EVENTS);
        if (n == -EINTR)
            continue;
        if (n < 0)
            return -1;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            uint32_t ev = events[i].events;
            if (fd == s->ep.lfd) {
                on_accept(s);
            } else if (fd == s->ep.sfd) {
                bench_epoll_on_signal(&s->ep);
            } else if (!s->table[fd].open) {
                /* Closed earlier in this batch; the event is stale. */
                continue;
            } else if (s->table[fd].out_off < s->table[fd].out_len) {
                /* Waiting for EPOLLOUT. EPOLLERR/EPOLLHUP also land here: the write reports it. */
                on_writable(s, fd);
            } else if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                /* The read reports EOF or the error and closes. */
                on_readable(s, fd);
            }
        }
    }
    return 0;
}

/* What bench_epoll_main, which runs the server on one thread or several, needs of it. */
static void attach(void *server, void *table)
{
    ((struct server *)server)->table = table;
}

static int run_loop(void *server)
{
    return run(server);
}

static void count(const void *server, uint64_t *sums)
{
    const struct server *s = server;
    sums[0] += s->msgs;
    sums[1] += s->bytes;
}

static void close_one(void *server, int fd)
{
    close_conn(server, fd);
}

static const struct bench_epoll_server server = {
    .size = sizeof(struct server),
    .ep_offset = offsetof(struct server, ep),
    .entry_size = sizeof(struct conn),
    .open_offset = offsetof(struct conn, open),
    .counters = {"msgs", "bytes", NULL},
    .attach = attach,
    .run = run_loop,
    .count = count,
    .close_conn = close_one,
};

static const struct bench_cli cli = {
    .default_port = 7001, .synopsis = "", .help = "", .threads = true};

int main(int argc, char **argv)
{
    struct bench_options o;
    int status;
    if (!bench_server_init(argc, argv, &cli, &o, &status))
        return status;
    return bench_epoll_main(&o, &server);
}
