/* Pieces the command-line tools share: a graceful stop on SIGINT/SIGTERM, numbers from options,
 * CPU pinning, and the --stats report. */
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
