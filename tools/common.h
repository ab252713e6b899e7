/* Pieces the command-line tools share: a graceful stop on SIGINT/SIGTERM, numbers from options,
 * CPU pinning, the --stats report, and the report on SIGUSR1. */
#ifndef CORIO_TOOLS_COMMON_H
#define CORIO_TOOLS_COMMON_H

#include <corio.h>
#include <stdbool.h>
#include <stdint.h>

/* Takes SIGINT and SIGTERM for tool_stop_on_signals (corio_signals_init): blocked in the calling
 * thread, which must call it before it creates any thread or loop, so that every thread of the
 * tool inherits them blocked. Returns 0 or -errno. */
int tool_signals_init(void);

/* Gives SIGINT and SIGTERM back (corio_signals_fini), once every loop has ended. */
void tool_signals_fini(void);

/* Spawns on the calling thread's loop a coroutine that waits for SIGINT or SIGTERM. The first
 * signal drains every loop of the tool (corio_threads_drain) with @drain_timeout nanoseconds to
 * finish; a second one stops them all at once. Every loop runs one, so that the last loop still
 * draining hears the second signal (a drained loop's ends with it). Returns 0 or -errno. */
int tool_stop_on_signals(int64_t drain_timeout);

/* Writes corio_loop_dump of every loop of the tool to stderr, each on its own thread: the loops
 * of corio_run_threads, or @loop alone. Call it on @loop's thread. Returns nothing. */
void tool_dump_loops(struct corio_loop *loop);

/* Parses a non-negative integer option value (with optional k/m/g suffix, powers of 1024).
 * Exits with status 2 and a message on a bad value. Returns the value. */
uint64_t tool_parse_size(const char *opt, const char *val);

/* Parses seconds (fractions allowed) into nanoseconds. Exits with status 2 on a bad value. */
int64_t tool_parse_seconds(const char *opt, const char *val);

/* Pins the calling thread to CPU @cpu. Returns 0 or -errno. */
int tool_pin_cpu(int cpu);

/* Makes the tool's loop with @opts. On the epoll backend it says so on stderr, with the reason,
 * prefixed by @who; on failure it prints the cause. Returns 0 or -errno. */
int tool_loop_new(const char *who, struct corio_loop **out, const struct corio_loop_opts *opts);

/* Runs @fn as the first coroutine of one loop (@threads 1, pinned to @cpu if >= 0) or of @threads
 * loops on as many threads (pinned one to a CPU each if @cpu >= 0), with @opts; says when a loop
 * runs on epoll, and why. Returns 0, or -errno with the cause printed, prefixed by @who. */
int tool_run(const char *who, unsigned threads, int cpu, const struct corio_loop_opts *opts,
             corio_fn *fn);

/* Listens on @host:@port for the calling loop: with several loops, each listens with SO_REUSEPORT
 * on the port the first one got (so that port 0 works), and the first prints "ready port=N" once
 * all of them listen. With a handing-over balance only loop 0 listens (the others return
 * -ENOTSOCK at once, and count as ready once their inbox is open). Returns the listening fd, or
 * -errno with the cause printed. */
int tool_listen(const char *who, const char *host, uint16_t port, int backlog);

/* How the connections of a server on several loops (--threads N) reach them (--balance). */
enum tool_balance {
    TOOL_BALANCE_REUSEPORT,   /* a listener per loop (SO_REUSEPORT): the kernel picks the loop by
                                 a hash of the connection's addresses; no hand-over, no message */
    TOOL_BALANCE_ROUND_ROBIN, /* loop 0 accepts and hands the connections to the loops in turn */
    TOOL_BALANCE_LEAST,       /* loop 0 accepts and hands each to the loop with the fewest open */
};

/* The most loops a tool runs. */
#define TOOL_MAX_THREADS 1024

/* Parses --balance's value (reuseport, round-robin, least): sets the tool's balance, which
 * tool_listen and the calls below follow. Exits with status 2 on a bad value. */
void tool_set_balance(const char *opt, const char *val);

/* Whether the tool runs several loops with loop 0 handing the connections over. */
bool tool_hands_over(void);

/* With a handing-over balance, each loop's server opens its inbox before serving: a connection
 * handed to it runs @conn(fd as an intptr_t) in @conns, on its own thread; tool_inbox_close
 * refuses later ones (their fds are closed). The calling loop's thread. */
void tool_inbox_open(struct corio_group *conns, corio_fn *conn);
void tool_inbox_close(void);

/* With a handing-over balance, loop 0 accepts on @lfd and hands each connection to a loop by the
 * balance, and the others wait for theirs, until a drain (-ESHUTDOWN) or a stop (-ECANCELED);
 * -errno when accepting fails for good (printed, prefixed by @who). Every loop's inbox is open
 * before loop 0 accepts (tool_listen prints "ready" only then). In a coroutine. */
int tool_serve_handed(const char *who, int lfd);

/* A connection's coroutine with a handing-over balance calls this as it ends, for the
 * least-loaded count of its loop. */
void tool_conn_done(void);

/* Prints the loop's counters to stderr, prefixed by @who: one line of counters (the only one
 * with "enters=", which benchmarks/run reads), one of gauges, and one per op kind that was timed,
 * with its latency quantiles. On @loop's thread the values are current; on another, as
 * corio_loop_metrics gives them. */
void tool_print_stats(const char *who, struct corio_loop *loop);

/* Prints to stderr, prefixed by @who, what the tool's loops are doing: every loop's metrics
 * (tool_print_stats; with several loops, "who[i]" names loop i), then every loop's coroutine dump
 * (tool_dump_loops). The one place a report on demand is made: what else a tool should show when
 * asked belongs here. On a loop's thread. Returns nothing. */
void tool_report(const char *who);

/* Spawns a coroutine on @loop that runs tool_report(@who) each time the process gets SIGUSR1
 * (taken by tool_signals_init), until the loop stops or has drained. Returns 0 or -errno. */
int tool_report_on_signal(struct corio_loop *loop, const char *who);

#endif
