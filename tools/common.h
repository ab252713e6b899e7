/* Pieces the command-line tools share: clean stop on SIGINT/SIGTERM, numbers from options,
 * CPU pinning, and the --stats report. */
#ifndef CORIO_TOOLS_COMMON_H
#define CORIO_TOOLS_COMMON_H

#include <corio.h>
#include <stdbool.h>
#include <stdint.h>

/* Blocks SIGINT and SIGTERM in the calling thread (before it creates threads or its loop), so
 * that tool_stop_on_signals can receive them through a signalfd. Returns 0 or -errno. */
int tool_block_signals(void);

/* Spawns a coroutine on @loop that waits for SIGINT or SIGTERM and then stops the
 * loop, which cancels every coroutine. Returns 0 or -errno. */
int tool_stop_on_signals(struct corio_loop *loop);

/* Spawns a coroutine on @loop that, at each SIGUSR1 (blocked by tool_block_signals), writes the
 * coroutine dump of every loop of the tool to stderr (tool_dump_loops). Returns 0 or -errno. */
int tool_dump_on_sigusr1(struct corio_loop *loop);

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
 * all of them listen. Returns the listening fd, or -errno with the cause printed. */
int tool_listen(const char *who, const char *host, uint16_t port, int backlog);

/* Prints the loop's counters to stderr, one line, prefixed by @who. */
void tool_print_stats(const char *who, struct corio_loop *loop);

#endif
