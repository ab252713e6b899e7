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
 * Usage: epoll_echo [--host ADDR] [--port N] [--backlog N] [--cpu N] (common.c parses them, and
 * holds the rest of the set-up that the baselines share: pinning, limits, listener, accept).
 * Prints "ready port=N" once listening. SIGINT or SIGTERM stops it with status 0 and a
 * "conns=... msgs=... bytes=..." line on stderr (msgs counts recv() calls that returned data).
 */
#include "common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One read's worth, and the most a connection ever holds back: it bounds per-connection memory. */
#define IO_BUF_SIZE (64 * 1024)
/* Full reads taken in a row from one connection before the others get a turn. */
#define MAX_READS_PER_EVENT 16
#define MAX_EVENTS 1024
/* How long accepting stays off after EMFILE when no connection closes to free a descriptor. */
#define ACCEPT_BACKOFF_MS 100

/* A connection's state, at table[fd]. */
struct conn {
    char *out;        /* unsent output: IO_BUF_SIZE bytes, allocated at the first short write */
    uint32_t out_off; /* first unsent byte in out */
    uint32_t out_len; /* end of the unsent bytes; out_off < out_len means output is pending */
    bool open;        /* the fd is an accepted connection owned by this table */
};

struct server {
    int epfd;                  /* the epoll set */
    int lfd;                   /* listening socket */
    int sfd;                   /* signalfd for SIGINT and SIGTERM */
    struct conn *table;        /* per-fd state, nfds entries */
    int nfds;                  /* table size, equal to the RLIMIT_NOFILE soft limit */
    int max_fd;                /* highest fd ever opened as a connection, bounds the exit sweep */
    bool accept_paused;        /* EMFILE or similar: the listener is disabled in the epoll set */
    bool closed_since_pause;   /* a connection closed since accept paused, so a fd is free */
    struct timespec resume_at; /* when to retry accepting if nothing closes first */
    bool stop;                 /* a stop signal arrived */
    uint64_t conns;            /* connections accepted */
    uint64_t msgs;             /* recv() calls that returned data */
    uint64_t bytes;            /* bytes read (and so echoed, unless a peer vanished) */
    char buf[IO_BUF_SIZE];     /* the one read buffer: data is echoed before the next read */
};

static int64_t ms_until(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : ms;
}

static void set_listener(struct server *s, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = s->lfd};
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->lfd, &ev);
}

/*
 * Stops accepting after EMFILE, ENFILE, ENOBUFS or ENOMEM. With a level-triggered listener the
 * pending connection would otherwise wake every epoll_wait() and spin. Accepting resumes when a
 * connection closes (its fd is then free) or after ACCEPT_BACKOFF_MS if none does.
 */
static void pause_accept(struct server *s)
{
    set_listener(s, 0);
    s->accept_paused = true;
    s->closed_since_pause = false;
    bench_deadline_ms(&s->resume_at, ACCEPT_BACKOFF_MS);
}

static void close_conn(struct server *s, int fd)
{
    struct conn *c = &s->table[fd];
    /* close() also drops the fd from the epoll set: it was never dup()ed. */
    close(fd);
    free(c->out);
    *c = (struct conn){0};
    s->closed_since_pause = true;
}

static void on_accept(struct server *s)
{
    int fd;
    while ((fd = bench_epoll_accept(s->epfd, s->lfd, s->nfds, &s->max_fd)) >= 0) {
        s->table[fd].open = true;
        s->conns++;
    }
    if (fd != -EAGAIN)
        pause_accept(s);
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
            epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev);
            return;
        }
        if (n < (ssize_t)sizeof(s->buf))
            return;
    }
}

static void on_writable(struct server *s, int fd)
{
    struct conn *c = &s->table[fd];
    ssize_t w = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            close_conn(s, fd);
        return;
    }
    c->out_off += (uint32_t)w;
    if (c->out_off < c->out_len)
        return;
    c->out_off = c->out_len = 0;
    /* Output is gone: read again. Data that arrived meanwhile is reported at once (level). */
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void on_signal(struct server *s)
{
    struct signalfd_siginfo si;
    while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        s->stop = true;
}

static int run(struct server *s)
{
    struct epoll_event events[MAX_EVENTS];
    while (!s->stop) {
        int timeout = -1;
        if (s->accept_paused) {
            int64_t ms = ms_until(&s->resume_at);
            if (s->closed_since_pause || ms == 0) {
                s->accept_paused = false;
                set_listener(s, EPOLLIN);
            } else {
                timeout = (int)ms;
            }
        }
        int n = epoll_wait(s->epfd, events, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return -1;
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            uint32_t ev = events[i].events;
            if (fd == s->lfd) {
                on_accept(s);
            } else if (fd == s->sfd) {
                on_signal(s);
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

static const struct bench_cli cli = {.default_port = 7001, .synopsis = "", .help = ""};

int main(int argc, char **argv)
{
    struct bench_options o;
    int status;
    if (!bench_server_init(argc, argv, &cli, &o, &status))
        return status;

    status = 1;
    struct server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        perror("calloc");
        return 1;
    }
    s->epfd = s->lfd = s->sfd = -1;
    sigset_t mask;
    bench_block_stop_signals(&mask);
    s->table = bench_fd_table(sizeof(*s->table), &s->nfds);
    if (s->table == NULL || bench_epoll_listen(&o, &mask, &s->sfd, &s->epfd, &s->lfd) < 0)
        goto out;

    if (run(s) == 0)
        status = 0;
    fprintf(stderr, "conns=%llu msgs=%llu bytes=%llu\n", (unsigned long long)s->conns,
            (unsigned long long)s->msgs, (unsigned long long)s->bytes);

out:
    if (s->table != NULL) {
        for (int fd = 0; fd <= s->max_fd; fd++) {
            if (s->table[fd].open)
                close_conn(s, fd);
        }
    }
    bench_epoll_close(s->sfd, s->epfd, s->lfd);
    free(s->table);
    free(s);
    return status;
}
