/*
 * What the macro benchmarks share: the baseline servers' command line, CPU pinning, the
 * descriptor limit, stop signals, the listening socket and accepting on it; for the epoll
 * servers, the state they keep beside their per-fd tables (struct bench_epoll), with the accept
 * pause, the stop signal, the wait at the top of the event loop and the flush of output that
 * waited for EPOLLOUT, and their main (bench_epoll_main, on one thread or several). What an
 * event loop calls is inline, so that the loop compiles as it did when each server held that code
 * itself. None of it uses corio, so that the baselines stay free of it.
 */
#ifndef CORIO_BENCH_MACRO_COMMON_H
#define CORIO_BENCH_MACRO_COMMON_H

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Upper bound on a server's fd table, for hosts whose RLIMIT_NOFILE is huge or unlimited. */
#define BENCH_MAX_FDS (1 << 20)

/* The options every baseline server takes. */
struct bench_options {
    const char *host; /* numeric IPv4 address to bind */
    int port;         /* TCP port; 0 lets the kernel choose, and "ready" prints the choice */
    int backlog;      /* listen() backlog */
    int cpu;          /* CPU to pin to, or -1 for no pinning */
    int threads;      /* event loops, one a thread (--threads, for servers that take it); 1 */
};

/* The most --threads a server takes. */
#define BENCH_MAX_THREADS 64

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
    bool threads;             /* it takes --threads N (bench_epoll_main runs it); else not */
};

/* Fills @o from the command line, as @cli describes it, and pins the process to --cpu (with
 * --threads, that is the first thread's CPU: bench_epoll_main pins the others). Prints the
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

/* How long accepting stays off after EMFILE when no connection closes to free a descriptor. */
#define BENCH_ACCEPT_BACKOFF_MS 100

/* What an epoll server keeps beside its own per-fd table: the fds bench_epoll_open makes, accept
 * pausing, the stop flag. Each server embeds one in its struct server. */
struct bench_epoll {
    int epfd;                  /* the epoll set */
    int lfd;                   /* listening socket */
    int sfd;                   /* signalfd for SIGINT and SIGTERM */
    int nfds;                  /* fd table size, equal to the RLIMIT_NOFILE soft limit */
    int max_fd;                /* highest fd ever opened as a connection, bounds the exit sweep */
    bool accept_paused;        /* EMFILE or similar: the listener is disabled in the epoll set */
    bool closed_since_pause;   /* a connection closed since accept paused, so a fd is free */
    bool stop;                 /* a stop signal arrived */
    struct timespec resume_at; /* when to retry accepting if nothing closes first */
    uint64_t conns;            /* connections accepted */
};

/* Sets up one event loop of an epoll server (bench_epoll_main calls it for each, once the stop
 * signals @mask are blocked): RLIMIT_NOFILE raised and a zeroed table of @entry_size-byte entries
 * allocated, one per fd (bench_fd_table), then a non-blocking signalfd for @mask, the epoll set
 * and the non-blocking listener of @o, its port in *@port, the signalfd and the listener in the
 * set for EPOLLIN, their fds as data. Returns the table, or NULL after printing why. Either way
 * bench_epoll_close(@e) closes the fds made; the caller frees the table. */
void *bench_epoll_open(struct bench_epoll *e, const struct bench_options *o, size_t entry_size,
                       const sigset_t *mask, int *port);

/* Closes the fds bench_epoll_open made (those not made are -1). */
void bench_epoll_close(struct bench_epoll *e);

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

/* The most counters a server's "conns=..." line has after conns. */
#define BENCH_MAX_COUNTERS 4

/* What bench_epoll_main needs of an epoll server. It makes one instance for each thread: a
 * zeroed struct of @size bytes with its struct bench_epoll at @ep_offset. */
struct bench_epoll_server {
    size_t size;        /* bytes of the server's struct */
    size_t ep_offset;   /* where its struct bench_epoll is */
    size_t entry_size;  /* bytes of an entry of its per-fd table */
    size_t open_offset; /* where an entry's bool is that says its fd is an open connection */
    /* Takes its per-fd table (bench_epoll_main frees it) and prepares the rest of the instance;
     * called before "ready". */
    void (*attach)(void *server, void *table);
    int (*run)(void *server); /* its event loop: 0 once stopped by a signal, -1 after an error */
    /* The names of the counters printed after conns, NULL after the last. */
    const char *counters[BENCH_MAX_COUNTERS + 1];
    void (*count)(const void *server, uint64_t *sums); /* adds its counters to @sums, in order */
    void (*close_conn)(void *server, int fd); /* closes connection @fd, and clears its entry */
};

/* Runs the epoll server @srv as @o says, on o->threads threads (epoll_main.c says how they share
 * the port and how they stop): blocks the stop signals; opens an event loop for each thread
 * (bench_epoll_open; the first one's port for the others, which --port 0 leaves to the kernel);
 * starts the threads, the calling thread running the first loop; prints "ready port=N"; once a
 * stop signal or an error has ended every loop, prints "conns=... <counter>=..." on stderr, each
 * the sum over the threads (after a "thread i: conns=..." line for each thread, with more than
 * one); closes every connection and fd. With one thread the loop runs on the calling thread and
 * no thread is made. Returns the status main should exit with: 0 after a stop signal, 1 after an
 * error. */
int bench_epoll_main(const struct bench_options *o, const struct bench_epoll_server *srv);

/*
 * The rest is called from the event loops and is inline, so that each loop compiles as it did
 * when its server held this code itself. A call to a cold path here would be cheap, but it
 * changes how the compiler lays out the loop and allocates its registers: moving the accept pause
 * and the signal handling out of line took 4 instructions off each message of epoll_echo, and a
 * baseline must not change under the comparison.
 */

/* Milliseconds from now until @t on CLOCK_MONOTONIC, 0 once it has passed. */
static inline int64_t bench_ms_until(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : ms;
}

/* Sets the events the listener of @e is watched for: EPOLLIN, or 0 while accepting is paused. */
static inline void bench_epoll_set_listener(struct bench_epoll *e, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = e->lfd};
    epoll_ctl(e->epfd, EPOLL_CTL_MOD, e->lfd, &ev);
}

/*
 * Stops accepting after EMFILE, ENFILE, ENOBUFS or ENOMEM. With a level-triggered listener the
 * pending connection would otherwise wake every epoll_wait() and spin. Accepting resumes when a
 * connection closes (the server then sets e->closed_since_pause, since its fd is free) or after
 * BENCH_ACCEPT_BACKOFF_MS if none does; bench_epoll_wait sees to it.
 */
static inline void bench_epoll_pause_accept(struct bench_epoll *e)
{
    bench_epoll_set_listener(e, 0);
    e->accept_paused = true;
    e->closed_since_pause = false;
    bench_deadline_ms(&e->resume_at, BENCH_ACCEPT_BACKOFF_MS);
}

/* Drains the signalfd of @e; a stop signal sets e->stop. */
static inline void bench_epoll_on_signal(struct bench_epoll *e)
{
    struct signalfd_siginfo si;
    while (read(e->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        e->stop = true;
}

/* Sends the unsent output [@out + *@off, @out + *@len) of connection @fd, which waited for
 * EPOLLOUT. Returns 1 once all of it is gone (*@off and *@len are then 0), 0 while some is left or
 * the socket would block, or -1 when the connection is dead (EPIPE, with no SIGPIPE thanks to
 * MSG_NOSIGNAL; ECONNRESET). */
static inline int bench_send_pending(int fd, const char *out, uint32_t *off, uint32_t *len)
{
    ssize_t w = send(fd, out + *off, *len - *off, MSG_NOSIGNAL);
    if (w < 0)
        return errno != EAGAIN && errno != EINTR ? -1 : 0;
    *off += (uint32_t)w;
    if (*off < *len)
        return 0;
    *off = *len = 0;
    return 1;
}

/* Waits for up to @max events of the epoll set of @e into @events; while accepting is paused, no
 * longer than until it resumes, and it resumes first if a connection has closed or the back-off
 * is over. Returns their count, -EINTR when a signal interrupted the wait (the caller checks
 * e->stop and waits again), or -1 after printing the error. */
static inline int bench_epoll_wait(struct bench_epoll *e, struct epoll_event *events, int max)
{
    int timeout = -1;
    if (e->accept_paused) {
        int64_t ms = bench_ms_until(&e->resume_at);
        if (e->closed_since_pause || ms == 0) {
            e->accept_paused = false;
            bench_epoll_set_listener(e, EPOLLIN);
        } else {
            timeout = (int)ms;
        }
    }
    int n = epoll_wait(e->epfd, events, max, timeout);
    if (n < 0) {
        if (errno == EINTR)
            return -EINTR;
        perror("epoll_wait");
        return -1;
    }
    return n;
}

#endif
