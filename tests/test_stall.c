/* The stall detector (corio_loop_opts.stall_ms): an iteration that a coroutine holds for longer
 * than the threshold is reported on stderr, naming the coroutine and with its backtrace; a loop
 * that only waits in the kernel is not; reports are rate-limited; off, nothing runs. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs @fn as the only coroutine of a loop with @stall_ms, with stderr captured. Returns what
 * was written to stderr meanwhile (the caller frees it). */
static char *run_captured(unsigned stall_ms, corio_fn *fn, void *arg)
{
    char path[] = "/tmp/corio-stall-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    struct corio_loop_opts o = {.stall_ms = stall_ms};
    struct corio_loop *loop;
    int err = corio_loop_new(&loop, &o);
    if (err == 0) {
        err = corio_spawn(NULL, loop, fn, arg);
        if (err == 0)
            err = corio_loop_run(loop);
        corio_loop_free(loop);
    }
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(err, 0);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    assert_non_null(out);
    assert_int_equal(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    return out;
}

/* Spins on the CPU for @ms without yielding: what a stall is. Not inlined, so that its name is in
 * the backtrace. */
__attribute__((noinline)) static void spin_for(int64_t ms)
{
    int64_t end = corio_now() + CORIO_MS(ms);
    while (corio_now() < end)
        __asm__ volatile("" ::: "memory");
}

/* True if a frame of the backtrace in @report ("...[0xADDR]" lines) returns into [@fn, @fn +
 * @len). */
static bool in_backtrace(const char *report, uintptr_t fn, size_t len)
{
    for (const char *p = strstr(report, "[0x"); p; p = strstr(p + 1, "[0x")) {
        uintptr_t a = (uintptr_t)strtoull(p + 1, NULL, 16);
        if (a > fn && a < fn + len)
            return true;
    }
    return false;
}

__attribute__((noinline)) static int spinner(void *arg)
{
    int64_t ms = *(int64_t *)arg;
    corio_set_name("spinner");
    T_EXPECT_EQ(corio_nop(), 0);
    spin_for(ms);
    return corio_nop();
}

static void test_stall_reports_the_coroutine(void **state)
{
    (void)state;
    int64_t ms = 200 * t_slowdown();
    char *out = run_captured(50, spinner, &ms);
    t_expect_ok();
    const char *r = strstr(out, "corio: stall: loop ");
    if (!r)
        fprintf(stderr, "captured: [%s]\n", out);
    assert_non_null(r);
    assert_non_null(strstr(r, "(threshold 50 ms) in coroutine 1 \"spinner\""));
    assert_non_null(strstr(r, "spawned at " __FILE__));
    /* The backtrace is taken in the middle of the spin, on the coroutine's stack: one of its
     * return addresses is in spin_for (a static function, which backtrace_symbols_fd cannot
     * name: its address it gives). */
    assert_non_null(strstr(r, "backtrace:\n"));
    assert_true(in_backtrace(r, (uintptr_t)spin_for, 512));
    /* One report for one stall, however long it lasts. */
    assert_null(strstr(r + 1, "corio: stall: loop "));
    free(out);
}

/* Two stalls 100 ms apart: the second comes within a second of the first and is not reported,
 * but counted in the next report, made for a third stall a second later. */
static int spinner3(void *arg)
{
    int64_t ms = *(int64_t *)arg;
    spin_for(ms);
    T_EXPECT_EQ(corio_nop(), 0);
    spin_for(ms);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(1100)), 0);
    spin_for(ms);
    return 0;
}

static void test_stall_rate_limited(void **state)
{
    (void)state;
    int64_t ms = 150 * t_slowdown();
    char *out = run_captured(50, spinner3, &ms);
    t_expect_ok();
    const char *a = strstr(out, "corio: stall: ");
    assert_non_null(a);
    const char *b = strstr(a + 1, "corio: stall: ");
    assert_non_null(b);
    assert_null(strstr(b + 1, "corio: stall: "));
    assert_non_null(strstr(b, "; 1 more not reported (at most one a second)"));
    free(out);
}

/* Waiting in the kernel, however long, is no stall. */
static int sleeper(void *arg)
{
    (void)arg;
    return corio_sleep(corio_now() + CORIO_MS(300));
}

static void test_stall_not_when_waiting(void **state)
{
    (void)state;
    char *out = run_captured(50, sleeper, NULL);
    assert_null(strstr(out, "corio: stall"));
    free(out);
}

/* Off (the default): a stall is not reported. */
static void test_stall_off_by_default(void **state)
{
    (void)state;
    if (getenv("CORIO_STALL_MS"))
        skip(); /* the environment turns it on for every loop */
    int64_t ms = 120;
    char *out = run_captured(0, spinner, &ms);
    t_expect_ok();
    assert_null(strstr(out, "corio: stall"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stall_reports_the_coroutine),
        cmocka_unit_test(test_stall_rate_limited),
        cmocka_unit_test(test_stall_not_when_waiting),
        cmocka_unit_test(test_stall_off_by_default),
    };
    if (t_uring_unavailable())
        return T_EXIT_SKIP;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
