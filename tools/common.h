/* Pieces the command-line tools share: clean stop on SIGINT/SIGTERM, numbers from options,
 * CPU pinning, the --stats report, and the report on SIGUSR1. */
#ifndef CORIO_TOOLS_COMMON_H
#define CORIO_TOOLS_COMMON_H

#include <corio.h>
#include <stdbool.h>
#include <stdint.h>

/* Blocks SIGINT, SIGTERM and SIGUSR1 in the calling thread (before it creates threads or its
 * loop), so that tool_stop_on_signals and tool_report_on_signal can receive them through
 * signalfds. Returns 0 or -errno. */
int tool_block_signals(void);

/* Spawns a coroutine on @loop that waits for SIGINT or SIGTERM and then stops the
 * loop, which cancels every coroutine. Returns 0 or -errno. */
int tool_stop_on_signals(struct corio_loop *loop);

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
 * all of them listen. Returns the listening fd, or -errno with the cause printed. */
int tool_listen(const char *who, const char *host, uint16_t port, int backlog);

/* Prints the loop's counters to stderr, prefixed by @who: one line of counters (the only one
 * with "enters=", which benchmarks/run reads), one of gauges, and one per op kind that was timed,
 * with its latency quantiles. On @loop's thread the values are current; on another, as
 * corio_loop_metrics gives them. */
void tool_print_stats(const char *who, struct corio_loop *loop);

/* Prints to stderr, prefixed by @who, what the tool's loops are doing: every loop's metrics
 * (tool_print_stats; with several loops, "who[i]" names loop i). The one place a report on demand
 * is made: what else a tool should show when asked belongs here. Returns nothing. */
void tool_report(const char *who);

/* Spawns a coroutine on @loop that runs tool_report(@who) each time the process gets SIGUSR1,
 * until the loop stops (it is cancelled with the rest). Returns 0 or -errno. */
int tool_report_on_signal(struct corio_loop *loop, const char *who);

#endif
