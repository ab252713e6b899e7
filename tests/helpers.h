/* Test helpers (t_ prefix): loop fixtures, running a coroutine to completion, sockets, files. */
#ifndef CORIO_TEST_HELPERS_H
#define CORIO_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "corio.h"

#define T_EXIT_SKIP 77

/* T_ASAN is 1 in an AddressSanitizer build, T_SANITIZED in an ASan or TSan one (gcc says so with
 * __SANITIZE_*__, clang with __has_feature): both slow a test down; tests scale their bounds. */
#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#ifndef T_ASAN
#define T_ASAN 0
#endif
#if T_ASAN || defined(__SANITIZE_THREAD__)
#define T_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_SANITIZED 1
#endif
#endif
#ifndef T_SANITIZED
#define T_SANITIZED 0
#endif

/* Returns true (after printing why) when io_uring cannot be used here at all: -ENOSYS or -EPERM
 * from io_uring_setup. main() then returns T_EXIT_SKIP. Any other failure aborts the test. */
bool t_uring_unavailable(void);

/* Skips the calling test, saying why, unless @loop runs on io_uring: for what only io_uring has
 * (counts of io_uring_enter, CQ overflow, setup flags, fixed tables, SQPOLL). @what names it.
 * With @own, @loop is the test's own and is freed first. Returns only on io_uring. */
void t_need_uring(struct corio_loop *loop, bool own, const char *what);

/* In the calling process (a forked child: it cannot be undone), makes io_uring_setup fail with
 * -@err through a seccomp filter, as a container's profile (EPERM) or an old kernel (ENOSYS)
 * would. Returns 0 or -errno. */
int t_refuse_uring(int err);

/* Runs @child(@err, fd) in a forked child, which writes its report to fd and _exits; collects the
 * report into @buf (@len bytes, NUL-terminated) and fails the test unless the child exited 0.
 * For what cannot be undone in the test's own process (a seccomp filter). */
void t_fork_report(void (*child)(int err, int out), int err, char *buf, size_t len);

/* True when loops made with the default options run on the epoll backend here (io_uring refused,
 * or CORIO_BACKEND=epoll): for tests whose loops are made deep inside. */
bool t_on_epoll(void);

/* Skips the calling test, saying why, when t_on_epoll(): @what is io_uring's alone. */
void t_skip_on_epoll(const char *what);

/* cmocka group fixtures: *state becomes a fresh loop; teardown asserts it is idle and frees it. */
int t_loop_setup(void **state);
int t_loop_teardown(void **state);

/* Spawns fn(arg) on @loop, runs the loop until every coroutine has ended, and returns fn's result.
 * Fails the test if the loop reports an error. */
int t_run1(struct corio_loop *loop, corio_fn *fn, void *arg);

/* As t_run1, with a watchdog (t_watchdog_spawn) of @watchdog_ms beside fn while it runs. */
int t_run1_watched(struct corio_loop *loop, corio_fn *fn, void *arg, int64_t watchdog_ms);

/* As t_run1 with two coroutines, fa(arg) and fb(arg), started in that order. Returns fa's result
 * if it is not 0, else fb's. */
int t_run2(struct corio_loop *loop, corio_fn *fa, corio_fn *fb, void *arg);

/* A connected TCP pair over loopback: sv[0] is the accepted side. Returns 0 or -errno. Usable
 * outside coroutines (blocking syscalls). */
int t_tcp_pair(int sv[2]);

/* Number of open fds of this process. */
int t_count_fds(void);

/* Creates an unlinked temp file and returns its fd (O_RDWR). */
int t_tmpfile(void);

/* Fills @buf with a pattern derived from @seed and the byte position @pos0. */
void t_fill(void *buf, size_t len, uint64_t seed, uint64_t pos0);

/* Checks @buf against t_fill's pattern. Returns the index of the first bad byte, or -1. */
long t_check(const void *buf, size_t len, uint64_t seed, uint64_t pos0);

/* ---- expectations inside coroutines, pipes, temp dirs ---------------------------------------- */

/* cmocka's assert_* macros longjmp to the test runner, off the coroutine's stack, and leave the
 * loop marked running. A coroutine body therefore records its failed expectations with T_EXPECT
 * and T_EXPECT_EQ (the first one is kept, with file:line), and the test calls t_expect_ok() after
 * corio_loop_run() has returned. Thread-safe. Each returns whether the expectation held. */
#define T_EXPECT(cond) t_expect_(!!(cond), #cond, __FILE__, __LINE__)
#define T_EXPECT_EQ(a, b)                                                                          \
    t_expect_eq_((long long)(a), (long long)(b), #a " == " #b, __FILE__, __LINE__)
bool t_expect_(bool ok, const char *expr, const char *file, int line);
bool t_expect_eq_(long long a, long long b, const char *expr, const char *file, int line);

/* Fails the current cmocka test with the first recorded expectation failure, if any, and clears
 * the record. */
void t_expect_ok(void);

/* Takes the record instead, for a forked child that reports to its parent: copies the first
 * failure's message into @msg (@len bytes) and returns how many failed; clears the record. */
unsigned t_expect_take(char *msg, size_t len);

/* Sets a function that the first failed expectation after each t_expect_ok() calls with @arg
 * before it is recorded, to name the case that failed when one test runs many (the cell and
 * repetition of a matrix, say); NULL for none. */
void t_expect_context(void (*fn)(void *arg), void *arg);

/* Expects corio_now() - @t0 to be @ms milliseconds, no less than T_EARLY_NS under it (clock
 * granularity) and no more than T_LATE_NS over it (generous, for sanitizers and valgrind on a
 * shared machine): what a wait with a deadline @ms after @t0 took. Returns whether it was. */
#define T_EXPECT_ELAPSED(t0, ms) t_expect_elapsed_((t0), (ms), __FILE__, __LINE__)
#define T_EARLY_NS CORIO_MS(1)
#define T_LATE_NS CORIO_MS(1500)
bool t_expect_elapsed_(int64_t t0, int64_t ms, const char *file, int line);

/* cmocka fixtures: a watchdog (SIGALRM after 30 s, 300 s under valgrind) that aborts a hung
 * test with a message, and a check that the test left no fd open. */
int t_guard_setup(void **state);
int t_guard_teardown(void **state);

/* cmocka fixtures: t_loop_setup/teardown plus the fd-leak check, which lists the fds open. */
int t_loop_fds_setup(void **state);
int t_loop_fds_teardown(void **state);

/* 10 under valgrind, else 1: a factor for timeouts. */
unsigned t_slowdown(void);

/* corio_loop_new(@o), failing the test (with the reason) if it fails. Returns the loop. */
struct corio_loop *t_mkloop(const struct corio_loop_opts *o);

/* t_mkloop with the setup flags in @refuse (CORIO_FEAT_ bits) treated as refused by the kernel, so
 * that a test reaches the engine's fallbacks on any kernel (an engine-internal hook). */
struct corio_loop *t_mkloop_refusing(const struct corio_loop_opts *o, uint64_t refuse);

/* corio_bufring_new(@l, @count, @size), failing the test (with the reason) if it fails. Returns
 * the ring. */
struct corio_bufring *t_bufring(struct corio_loop *l, unsigned count, size_t size);

/* t_run1(*state, fn, arg), then fails the test if an expectation failed. Returns fn's result. */
int t_run_checked(void **state, corio_fn *fn, void *arg);

/* Creates a pipe with O_CLOEXEC | @flags (e.g. O_NONBLOCK). Returns 0 or -errno. */
int t_pipe(int fds[2], int flags);

/* Bytes waiting to be read on a pipe or socket (FIONREAD). Returns the count, or -errno. */
int t_readable(int fd);

/* True when the process runs under valgrind. */
bool t_on_valgrind(void);

/* Creates a fresh directory under $TMPDIR (or /tmp) and stores its path in @buf. Returns 0 or
 * -errno. */
int t_mkdtemp(char *buf, size_t len);

/* Removes the files directly inside @dir, then @dir itself (no recursion). */
void t_rmtree(const char *dir);

/* Milliseconds since @t0, a corio_now() value. */
double t_ms_since(int64_t t0);

/* ---- deadlines, waits and watchdogs ---------------------------------------------------------- */

/* A deadline @ms milliseconds from now. */
#define T_DL(ms) (corio_now() + CORIO_MS(ms))

/* The deadline of a wait that never ends by it in a passing test, and ends soon enough that a
 * broken wake-up fails the test instead of hanging it. */
#define T_BOUND T_DL(10000)

/* Lets every runnable coroutine run @n times: enough for freshly spawned ones to reach their
 * first wait. Call from a coroutine. */
void t_settle(int n);

/* corio_sleep for @ms milliseconds, its result ignored: a pause, not a check. */
void t_sleep_ms(int64_t ms);

/* Arms a SIGALRM watchdog for the whole process: after @seconds (times t_slowdown()) it says a test
 * hung and exits with 70, so that ctest reports a failure and not only its own timeout. */
void t_alarm(unsigned seconds);

/* Spawns a watchdog coroutine on the current loop. Unless t_watchdog_end() cancels it first, after
 * @ms it records a failed expectation and stops the loop, so that a hung scenario fails instead of
 * hanging. Returns its id, or 0 (an expectation failed) if it could not be spawned. */
corio_id t_watchdog_spawn(int64_t ms);

/* Cancels and joins the watchdog @id from t_watchdog_spawn (nothing for 0). */
void t_watchdog_end(corio_id id);

/* ---- kernel features, sockets, process state ------------------------------------------------- */

/* Skips the current test, saying which feature the kernel lacks, if @loop lacks @feat. */
void t_need(struct corio_loop *loop, enum corio_feature feat);

/* As t_need, for a loop the test made itself: frees @loop before it skips, so that no fd is left
 * open for a fixture's leak check. */
void t_need_or_free(struct corio_loop *loop, enum corio_feature feat);

/* Makes close(@fd) send a RST instead of a FIN (SO_LINGER with a zero timeout). Returns 0 or
 * -errno. */
int t_set_linger0(int fd);

/* True when the listening socket @lfd's accept queue is over its backlog (TCP_INFO). */
bool t_accept_queue_full(int lfd);

/* Asserts that SIGPIPE keeps its default action (terminate) and is not blocked: a test that relies
 * on a send never raising it would pass without that. */
void t_assert_sigpipe_default(void);

/* True when a SIGPIPE is pending for this process. */
bool t_sigpipe_pending(void);

/* How a server's connections ended, counted by t_count_end from the result that ended each one:
 * 0 (EOF), -ECONNRESET, -EPIPE, -ECANCELED, or another error (the first kept in @other_err). */
struct t_ends {
    uint64_t eof, reset, pipe, cancelled, other;
    int other_err;
};
void t_count_end(struct t_ends *e, ssize_t r);

/* Serves one client of a one-byte echo: receives a byte on @fd, sends it back, closes @fd (each
 * step expected to succeed) and counts the client in *@served. */
void t_serve_byte(int fd, unsigned *served);

/* Resident set size of this process in KiB, or -1. */
long t_rss_kib(void);

/* The next value of the xorshift64 generator whose state is *@s (not 0). */
uint64_t t_xorshift(uint64_t *s);

#if defined(__x86_64__)
/* The SSE control/status register and the x87 control word, to set and to read back. */
uint32_t t_get_mxcsr(void);
void t_set_mxcsr(uint32_t v);
uint16_t t_get_fpcw(void);
void t_set_fpcw(uint16_t v);
#endif

/* ---- test tables ----------------------------------------------------------------------------- */

/* A test entry with a fixture: a fresh loop in *state (T_LOOP_TEST), the same plus the fd-leak
 * check (T_LOOP_FDS_TEST), or the watchdog and the fd-leak check with no loop (T_GUARD_TEST). */
#define T_LOOP_TEST(fn) cmocka_unit_test_setup_teardown(fn, t_loop_setup, t_loop_teardown)
#define T_LOOP_FDS_TEST(fn)                                                                        \
    cmocka_unit_test_setup_teardown(fn, t_loop_fds_setup, t_loop_fds_teardown)
#define T_GUARD_TEST(fn) cmocka_unit_test_setup_teardown(fn, t_guard_setup, t_guard_teardown)

/* What main() returns: T_EXIT_SKIP (77) when io_uring cannot be used here at all, else the result
 * of running the table @tests. */
#define T_RUN_TESTS(tests)                                                                         \
    (t_uring_unavailable() ? T_EXIT_SKIP : cmocka_run_group_tests(tests, NULL, NULL))

#endif
