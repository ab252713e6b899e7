/*
 * The set-up the macro benchmarks share: the baseline servers' command line, CPU pinning, the
 * descriptor limit, stop signals, the listening socket and accepting on it. None of it runs per
 * message, and none of it uses corio, so that the baselines stay free of it.
 */
#ifndef CORIO_BENCH_MACRO_COMMON_H
#define CORIO_BENCH_MACRO_COMMON_H

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Upper bound on a server's fd table, for hosts whose RLIMIT_NOFILE is huge or unlimited. */
#define BENCH_MAX_FDS (1 << 20)

/* The options every baseline server takes. */
struct bench_options {
    const char *host; /* numeric IPv4 address to bind */
    int port;         /* TCP port; 0 lets the kernel choose, and "ready" prints the choice */
    int backlog;      /* listen() backlog */
    int cpu;          /* CPU to pin to, or -1 for no pinning */
};

/* Takes option @val of a server's own (with its argument @arg, or NULL) into @ctx. Returns 0, or
 * -EINVAL for a bad value. */
typedef int bench_option_fn(int val, const char *arg, void *ctx);

/* What a server adds to the command line that every baseline server has. */
struct bench_cli {
    int default_port;         /* --port without the option */
    const char *synopsis;     /* its options in the usage line, before the common ones, or "" */
    const char *help;         /* their help lines, or "" */
    const struct option *own; /* their long options, ended by a zeroed entry, or NULL */
    bench_option_fn *take;    /* called for each of them */
    void *ctx;                /* passed to take */
};

/* Fills @o from the command line, as @cli describes it, and pins the process to --cpu. Prints the
 * usage on stdout for --help and on stderr after bad usage. Returns true to run the server, or
 * false with the status main should return in *@status: 0 after --help, 2 on bad usage, 1 if
 * the process could not be pinned. */
bool bench_server_init(int argc, char **argv, const struct bench_cli *cli, struct bench_options *o,
                       int *status);

/* Pins the process to @cpu. Returns 0 or -errno. */
int bench_pin_cpu(int cpu);

/* Raises the RLIMIT_NOFILE soft limit to the hard limit (capped at BENCH_MAX_FDS), so that a
 * thousand connections fit under a default soft limit of 1024. Returns the limit now in force,
 * which is also the size a table indexed by fd needs since no fd can reach it. */
int bench_raise_nofile(void);

/* Ignores SIGPIPE (a write to a dead peer then fails with EPIPE) and blocks SIGINT and SIGTERM, so
 * that they queue for a signalfd or sigtimedwait instead of killing the process; @set receives
 * the two. */
void bench_block_stop_signals(sigset_t *set);

/* Raises RLIMIT_NOFILE (bench_raise_nofile) and allocates a zeroed table of @size-byte entries,
 * one per fd the process can have, their count in *@nfds. Returns it, or NULL after printing why.
 */
void *bench_fd_table(size_t size, int *nfds);

/* Opens the listening TCP socket of @o, of type SOCK_STREAM | SOCK_CLOEXEC | @type_flags, with
 * SO_REUSEADDR and TCP_NODELAY, and puts the port it got in *@port. Returns the fd, or -1 after
 * printing why. */
int bench_listen(const struct bench_options *o, int type_flags, int *port);

/* Prints "ready port=@port" on stdout and flushes it: benchmarks/run and the tests wait for it. */
void bench_ready(int port);

/* The rest of an epoll server's set-up, after bench_block_stop_signals(@mask): a non-blocking
 * signalfd for @mask (*@sfd), the epoll set (*@epfd), and the non-blocking listener of @o (*@lfd),
 * the signalfd and the listener in the set for EPOLLIN, their fds as data; then "ready port=N"
 * (bench_ready). Returns 0, or -1 after printing why, the fds made so far (-1: not made) left
 * for the caller to close. */
int bench_epoll_listen(const struct bench_options *o, const sigset_t *mask, int *sfd, int *epfd,
                       int *lfd);

/* Accepts a connection on the non-blocking listener @lfd and adds it to the epoll set @epfd for
 * EPOLLIN; *@max_fd is raised to its fd if that is higher, so that it bounds a sweep of the fd
 * table at exit. Connections that died in the queue are passed over, and so is one whose fd is
 * @nfds or above or that epoll refuses (it is closed). Returns its fd (non-blocking,
 * close-on-exec); -EAGAIN when no connection is pending, or after an unexpected error (printed);
 * or -EMFILE, -ENFILE, -ENOBUFS or -ENOMEM, after which the caller should stop accepting for a
 * while. */
int bench_epoll_accept(int epfd, int lfd, int nfds, int *max_fd);

/* Sets @t to @ms milliseconds from now on CLOCK_MONOTONIC. */
void bench_deadline_ms(struct timespec *t, long ms);

/* Closes what bench_epoll_listen opened: the fds among @sfd, @epfd and @lfd that are >= 0. */
void bench_epoll_close(int sfd, int epfd, int lfd);

#endif
