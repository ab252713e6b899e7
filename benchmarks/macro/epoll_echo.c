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
 * Usage: epoll_echo [--host ADDR] [--port N] [--backlog N] [--cpu N]
 * Prints "ready port=N" once listening. SIGINT or SIGTERM stops it with status 0 and a
 * "conns=... msgs=... bytes=..." line on stderr (msgs counts recv() calls that returned data).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
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
/* Upper bound on the fd table, for hosts whose RLIMIT_NOFILE is huge or unlimited. */
#define MAX_FDS (1 << 20)

struct options {
    const char *host; /* numeric IPv4 address to bind */
    int port;         /* TCP port; 0 lets the kernel choose, and "ready" prints the choice */
    int backlog;      /* listen() backlog */
    int cpu;          /* CPU to pin to, or -1 for no pinning */
};

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

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--host ADDR] [--port N] [--backlog N] [--cpu N] [--help]\n"
            "  --host ADDR   IPv4 address to listen on (default 127.0.0.1)\n"
            "  --port N      TCP port (default 7001; 0 picks a free one)\n"
            "  --backlog N   listen backlog (default 4096)\n"
            "  --cpu N       pin the process to CPU N (default: no pinning)\n",
            prog);
}

/* Parses a decimal int in [lo, hi]. Returns 0, or -EINVAL if @s is not one. */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -EINVAL;
    *out = (int)v;
    return 0;
}

/* Fills @o from the command line. Returns 0 to run, 1 after --help, or -EINVAL on bad usage. */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},    {"port", required_argument, NULL, 'p'},
        {"backlog", required_argument, NULL, 'b'}, {"cpu", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    *o = (struct options){.host = "127.0.0.1", .port = 7001, .backlog = 4096, .cpu = -1};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'H': {
            struct in_addr addr;
            o->host = optarg;
            bad = inet_pton(AF_INET, optarg, &addr) == 1 ? 0 : -EINVAL;
            break;
        }
        case 'p':
            bad = parse_int(optarg, 0, 65535, &o->port);
            break;
        case 'b':
            bad = parse_int(optarg, 1, 1 << 20, &o->backlog);
            break;
        case 'c':
            bad = parse_int(optarg, 0, CPU_SETSIZE - 1, &o->cpu);
            break;
        case 'h':
            usage(stdout, argv[0]);
            return 1;
        default:
            return -EINVAL;
        }
        if (bad < 0) {
            const char *name = "?";
            for (const struct option *lo = longopts; lo->name != NULL; lo++) {
                if (lo->val == c)
                    name = lo->name;
            }
            fprintf(stderr, "%s: bad value for --%s: '%s'\n", argv[0], name, optarg);
            return -EINVAL;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return -EINVAL;
    }
    return 0;
}

/* Pins the process to @cpu. Returns 0 or -errno. */
static int pin_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

/*
 * Raises the RLIMIT_NOFILE soft limit to the hard limit (capped at MAX_FDS), so that a thousand
 * connections fit under a default soft limit of 1024. Returns the limit now in force, which is
 * also the size the fd table needs since no fd can reach it.
 */
static int raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > MAX_FDS ? MAX_FDS : rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
            return 1024;
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > MAX_FDS ? MAX_FDS : (int)rl.rlim_cur;
}

/*
 * Opens the non-blocking listening socket. TCP_NODELAY is set here rather than on each accepted
 * socket: Linux clones an accepted socket from its listener (sk_clone_lock), nonagle included, so
 * every connection starts with Nagle off and accepting costs no extra setsockopt(). Returns the
 * fd, or -errno.
 */
static int open_listener(const struct options *o, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    socklen_t len = sizeof(sa);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, o->backlog) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

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
    clock_gettime(CLOCK_MONOTONIC, &s->resume_at);
    s->resume_at.tv_nsec += ACCEPT_BACKOFF_MS * 1000000L;
    if (s->resume_at.tv_nsec >= 1000000000L) {
        s->resume_at.tv_sec++;
        s->resume_at.tv_nsec -= 1000000000L;
    }
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
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
                return;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                pause_accept(s);
                return;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
                /* The connection died in the queue, or a firewall refused it: try the next. */
                continue;
            default:
                perror("accept4");
                return;
            }
        }
        if (fd >= s->nfds) {
            /* Cannot happen while the table matches RLIMIT_NOFILE; refuse rather than overrun. */
            close(fd);
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            continue;
        }
        s->table[fd].open = true;
        if (fd > s->max_fd)
            s->max_fd = fd;
        s->conns++;
    }
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

int main(int argc, char **argv)
{
    struct options o;
    int r = parse_options(argc, argv, &o);
    if (r != 0) {
        if (r < 0)
            usage(stderr, argv[0]);
        return r < 0 ? 2 : 0;
    }
    if (o.cpu >= 0 && (r = pin_cpu(o.cpu)) < 0) {
        fprintf(stderr, "sched_setaffinity(cpu %d): %s\n", o.cpu, strerror(-r));
        return 1;
    }

    int status = 1;
    struct server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        perror("calloc");
        return 1;
    }
    s->epfd = s->lfd = s->sfd = -1;

    /* MSG_NOSIGNAL covers every send; this covers any other write to a dead peer. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    /* Blocked so that they queue for the signalfd instead of killing the process. */
    sigprocmask(SIG_BLOCK, &mask, NULL);

    s->nfds = raise_nofile();
    s->table = calloc((size_t)s->nfds, sizeof(*s->table));
    if (s->table == NULL) {
        perror("calloc");
        goto out;
    }
    s->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->sfd < 0 || s->epfd < 0) {
        perror("signalfd/epoll_create1");
        goto out;
    }
    int port = 0;
    s->lfd = open_listener(&o, &port);
    if (s->lfd < 0) {
        fprintf(stderr, "listen on %s:%d: %s\n", o.host, o.port, strerror(-s->lfd));
        goto out;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->lfd};
    struct epoll_event sev = {.events = EPOLLIN, .data.fd = s->sfd};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sfd, &sev) < 0) {
        perror("epoll_ctl");
        goto out;
    }
    printf("ready port=%d\n", port);
    fflush(stdout);

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
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->sfd >= 0)
        close(s->sfd);
    free(s->table);
    free(s);
    return status;
}
