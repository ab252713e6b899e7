/* Test helpers (t_ prefix): loop fixtures, running a coroutine to completion, sockets, files. */
#ifndef CORIO_TEST_HELPERS_H
#define CORIO_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "corio.h"

#define T_EXIT_SKIP 77

/* Returns true (after printing why) when io_uring cannot be used here at all: -ENOSYS or -EPERM
 * from io_uring_setup. main() then returns T_EXIT_SKIP. Any other failure aborts the test. */
bool t_uring_unavailable(void);

/* cmocka group fixtures: *state becomes a fresh loop; teardown asserts it is idle and frees it. */
int t_loop_setup(void **state);
int t_loop_teardown(void **state);

/* Spawns fn(arg) on @loop, runs the loop until every coroutine has ended, and returns fn's result.
 * Fails the test if the loop reports an error. */
int t_run1(struct corio_loop *loop, corio_fn *fn, void *arg);

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

/* ---- expectations inside coroutines, pipes, temp dirs ----------------------------------------- */

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

/* Statement forms of the two, for test files that check a lot inside coroutines. */
#define CHECK(cond) ((void)T_EXPECT(cond))
#define CHECK_EQ(a, b) ((void)T_EXPECT_EQ(a, b))

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

#endif
