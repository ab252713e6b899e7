/*
 * idle_conns: opens N TCP connections to a server and holds them open and idle, so that the
 * server's memory per idle connection can be measured (benchmarks/run --set fastpath: corio-echo's
 * VmRSS with N connections parked in a receive, minus its VmRSS before). No dependency on corio.
 *
 * Usage: idle_conns [--host ADDR] [--port N] [-c N] [--ping] [--hold SECS]
 *   -c N         connections (default 10000); RLIMIT_NOFILE is raised to its hard limit, and the
 *                program refuses to start if that is not enough
 *   --ping       after connecting, echo one byte on every connection and check it came back, so
 *                that each connection is known to be served (its server coroutine has run)
 *   --hold SECS  give up holding after SECS (default: until SIGINT or SIGTERM)
 * Connects one at a time with blocking connect() (on loopback the handshake completes inside the
 * call; TCP_NODELAY, no data). Prints one line on stdout once every connection is up:
 * "name=idle_conns connected=N failed=0 secs=S", then holds. At the end the connections are
 * reset (SO_LINGER 0), which leaves no TIME_WAIT behind to use up the ephemeral ports of later
 * runs. Exits 0, 1 if a connection failed (the line then says how many), 2 on bad usage.
 */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "idle_conns: bad value for %s: '%s'\n", opt, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 7000;
    long n = 10000;
    bool ping = false;
    double hold = -1;
    static const struct option longopts[] = {{"host", required_argument, NULL, 'H'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"connections", required_argument, NULL, 'c'},
                                             {"ping", no_argument, NULL, 'P'},
                                             {"hold", required_argument, NULL, 'h'},
                                             {"help", no_argument, NULL, '?'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = (int)parse_long("--port", optarg, 1, 65535);
            break;
        case 'c':
            n = parse_long("-c", optarg, 1, 1000000);
            break;
        case 'P':
            ping = true;
            break;
        case 'h':
            hold = (double)parse_long("--hold", optarg, 0, 86400);
            break;
        default:
            fprintf(stderr, "usage: idle_conns [--host ADDR] [--port N] [-c N] [--ping] "
                            "[--hold SECS]\n");
            return 2;
        }
    }
    if (optind != argc)
        return 2;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "idle_conns: not a numeric IPv4 address: %s\n", host);
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)n + 16) {
        fprintf(stderr, "idle_conns: RLIMIT_NOFILE is %llu, %ld connections need %ld\n",
                (unsigned long long)rl.rlim_cur, n, n + 16);
        return 2;
    }
    /* SIGINT and SIGTERM are taken by sigtimedwait below, not by a handler. */
    sigset_t sigs;
    bench_block_stop_signals(&sigs);

    int *fds = calloc((size_t)n, sizeof(*fds));
    if (!fds)
        return 1;
    double t0 = now_s();
    long ok = 0, failed = 0;
    int first_err = 0;
    for (long i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            if (!first_err)
                first_err = errno;
            if (fd >= 0)
                close(fd);
            failed++;
            fds[i] = -1;
            continue;
        }
        fds[i] = fd;
        ok++;
    }
    if (ping) {
        /* All first, then all back: the server works on many at once, as it would under load. */
        for (long i = 0; i < n; i++)
            if (fds[i] >= 0 && send(fds[i], "x", 1, MSG_NOSIGNAL) != 1) {
                if (!first_err)
                    first_err = errno;
                failed++;
            }
        for (long i = 0; i < n; i++) {
            char b;
            if (fds[i] >= 0 && (recv(fds[i], &b, 1, 0) != 1 || b != 'x')) {
                if (!first_err)
                    first_err = errno ? errno : EPROTO;
                failed++;
            }
        }
    }
    printf("name=idle_conns connected=%ld failed=%ld ping=%d secs=%.3f\n", ok, failed, ping,
           now_s() - t0);
    fflush(stdout);
    if (failed)
        fprintf(stderr, "idle_conns: first error: %s\n", strerror(first_err));
    else {
        struct timespec ts = {.tv_sec = hold >= 0 ? (time_t)hold : 86400 * 365};
        while (sigtimedwait(&sigs, NULL, &ts) < 0 && errno == EINTR)
            ;
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    for (long i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fds[i]);
    }
    free(fds);
    return failed ? 1 : 0;
}
