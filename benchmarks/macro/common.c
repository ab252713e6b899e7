/*
 * The set-up code the macro benchmarks share (common.h says what each call does); nothing here
 * runs per message.
 */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* The options that fill struct bench_options (a server's own come before them in the table that
 * getopt_long sees), and how many a server may add. */
static const struct option common_opts[] = {
    {"host", required_argument, NULL, 'H'},    {"port", required_argument, NULL, 'p'},
    {"backlog", required_argument, NULL, 'b'}, {"cpu", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
};
#define COMMON_OPTS (sizeof(common_opts) / sizeof(common_opts[0]))
#define MAX_OWN_OPTS 8
/* --threads, for the servers that take it (bench_cli.threads). */
static const struct option threads_opt = {"threads", required_argument, NULL, 'T'};

static void usage(FILE *f, const char *prog, const struct bench_cli *cli)
{
    fprintf(f,
            "usage: %s%s [--host ADDR] [--port N] [--backlog N] [--cpu N]%s [--help]\n"
            "%s"
            "  --host ADDR   IPv4 address to listen on (default 127.0.0.1)\n"
            "  --port N      TCP port (default %d; 0 picks a free one)\n"
            "  --backlog N   listen backlog (default 4096)\n"
            "  --cpu N       pin the process to CPU N (default: no pinning)%s\n",
            prog, cli->synopsis, cli->threads ? " [--threads N]" : "", cli->help, cli->default_port,
            cli->threads ? "; with --threads: thread i to CPU N + i" : "");
    if (cli->threads)
        fprintf(f, "  --threads N   N event loops on N threads, each its own epoll set and\n"
                   "                SO_REUSEPORT listener on the same port (default 1)\n");
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

/* Takes common option @c with argument @arg into @o. Returns 0, or -EINVAL for a bad value. */
static int take_common(int c, const char *arg, struct bench_options *o)
{
    switch (c) {
    case 'H': {
        struct in_addr addr;
        o->host = arg;
        return inet_pton(AF_INET, arg, &addr) == 1 ? 0 : -EINVAL;
    }
    case 'p':
        return parse_int(arg, 0, 65535, &o->port);
    case 'b':
        return parse_int(arg, 1, 1 << 20, &o->backlog);
    case 'T':
        return parse_int(arg, 1, BENCH_MAX_THREADS, &o->threads);
    default: /* 'c' */
        return parse_int(arg, 0, CPU_SETSIZE - 1, &o->cpu);
    }
}

/* Fills @opts with the server's own options, then the common ones (--threads too if the server
 * takes it), then the zeroed end. */
static void build_options(const struct bench_cli *cli, struct option *opts)
{
    size_t n = 0;
    for (const struct option *p = cli->own; p != NULL && p->name != NULL; p++) {
        if (n == MAX_OWN_OPTS)
            abort(); /* only an edit of a server can get here: raise MAX_OWN_OPTS */
        opts[n++] = *p;
    }
    memcpy(opts + n, common_opts, sizeof(common_opts));
    n += COMMON_OPTS;
    if (cli->threads)
        opts[n++] = threads_opt;
    opts[n] = (struct option){NULL, 0, NULL, 0};
}

/* Fills @o from the command line. Returns 0 to run, 1 after --help, or -EINVAL on bad usage. */
static int parse_options(int argc, char **argv, const struct bench_cli *cli,
                         struct bench_options *o)
{
    struct option longopts[MAX_OWN_OPTS + COMMON_OPTS + 2];
    build_options(cli, longopts);
    *o = (struct bench_options){
        .host = "127.0.0.1", .port = cli->default_port, .backlog = 4096, .cpu = -1, .threads = 1};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int bad = 0;
        if (c == 'h') {
            usage(stdout, argv[0], cli);
            return 1;
        } else if (c == 'H' || c == 'p' || c == 'b' || c == 'c' || c == 'T') {
            bad = take_common(c, optarg, o);
        } else if (c != '?' && c != ':' && cli->take != NULL) {
            bad = cli->take(c, optarg, cli->ctx);
        } else {
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

bool bench_server_init(int argc, char **argv, const struct bench_cli *cli, struct bench_options *o,
                       int *status)
{
    int r = parse_options(argc, argv, cli, o);
    if (r != 0) {
        if (r < 0)
            usage(stderr, argv[0], cli);
        *status = r < 0 ? 2 : 0;
        return false;
    }
    if (o->cpu >= 0 && (r = bench_pin_cpu(o->cpu)) < 0) {
        fprintf(stderr, "sched_setaffinity(cpu %d): %s\n", o->cpu, strerror(-r));
        *status = 1;
        return false;
    }
    return true;
}

int bench_pin_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

int bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    rlim_t want =
        rl.rlim_max == RLIM_INFINITY || rl.rlim_max > BENCH_MAX_FDS ? BENCH_MAX_FDS : rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
            return 1024;
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > BENCH_MAX_FDS ? BENCH_MAX_FDS
                                                                       : (int)rl.rlim_cur;
}

void bench_block_stop_signals(sigset_t *set)
{
    /* The servers send with MSG_NOSIGNAL; this covers any other write to a dead peer. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigprocmask(SIG_BLOCK, set, NULL);
}

void *bench_fd_table(size_t size, int *nfds)
{
    *nfds = bench_raise_nofile();
    void *table = calloc((size_t)*nfds, size);
    if (table == NULL)
        perror("calloc");
    return table;
}

/*
 * TCP_NODELAY is set on the listener rather than on each accepted socket: Linux clones an accepted
 * socket from its listener (sk_clone_lock), nonagle included, so every connection starts with
 * Nagle off and accepting costs no extra setsockopt(). The epoll servers want SOCK_NONBLOCK; the
 * io_uring one keeps its sockets blocking, because io_uring tries every socket op non-blocking
 * first and arms an internal poll when it would block, while O_NONBLOCK would only make a request
 * punted to io-wq fail with -EAGAIN. With --threads each thread has a listener of its own on the
 * one port: SO_REUSEPORT, set on all of them before bind(), lets them share it, and the kernel
 * spreads the connections over them by a hash of the 4-tuple.
 */
static int open_listener(const struct bench_options *o, int type_flags, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    socklen_t len = sizeof(sa);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (o->threads > 1 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
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

int bench_listen(const struct bench_options *o, int type_flags, int *port)
{
    int fd = open_listener(o, type_flags, port);
    if (fd < 0) {
        fprintf(stderr, "listen on %s:%d: %s\n", o->host, o->port, strerror(-fd));
        return -1;
    }
    return fd;
}

void bench_ready(int port)
{
    printf("ready port=%d\n", port);
    fflush(stdout);
}

/* Adds @fd to epoll set @epfd for EPOLLIN, with the fd as its data. Returns 0, or -1 (errno). */
static int epoll_add(int epfd, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Sets up the fds of @e, the listener's port in *@port; they are -1 before, and stay so if not
 * made. Returns 0, or -1 after printing why. */
static int epoll_listen(struct bench_epoll *e, const struct bench_options *o, const sigset_t *mask,
                        int *port)
{
    e->sfd = signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->sfd < 0 || e->epfd < 0) {
        perror("signalfd/epoll_create1");
        return -1;
    }
    e->lfd = bench_listen(o, SOCK_NONBLOCK, port);
    if (e->lfd < 0)
        return -1;
    if (epoll_add(e->epfd, e->lfd) < 0 || epoll_add(e->epfd, e->sfd) < 0) {
        perror("epoll_ctl");
        return -1;
    }
    return 0;
}

void *bench_epoll_open(struct bench_epoll *e, const struct bench_options *o, size_t entry_size,
                       const sigset_t *mask, int *port)
{
    *e = (struct bench_epoll){.epfd = -1, .lfd = -1, .sfd = -1};
    void *table = bench_fd_table(entry_size, &e->nfds);
    if (table != NULL && epoll_listen(e, o, mask, port) < 0) {
        free(table);
        table = NULL;
    }
    return table;
}

int bench_epoll_accept(int epfd, int lfd, int nfds, int *max_fd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
                return -EAGAIN;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                return -errno;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
                /* The connection died in the queue, or a firewall refused it: try the next. */
                continue;
            default:
                perror("accept4");
                return -EAGAIN;
            }
        }
        if (fd >= nfds) {
            /* Cannot happen while the table matches RLIMIT_NOFILE; refuse rather than overrun. */
            close(fd);
            continue;
        }
        if (epoll_add(epfd, fd) < 0) {
            close(fd);
            continue;
        }
        if (fd > *max_fd)
            *max_fd = fd;
        return fd;
    }
}

void bench_deadline_ms(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_nsec += ms * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

void bench_epoll_close(struct bench_epoll *e)
{
    const int fds[] = {e->lfd, e->epfd, e->sfd}; /* the reverse of the order they were made in */
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
}
