/* Futures: start forms and corio_await, await_any/all, deadlines, cancellation, and the drain of
 * futures a coroutine left pending when it returned. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* ---- start + await == the blocking form -------------------------------------------------------- */

static int start_vs_blocking(void *arg)
{
    (void)arg;
    struct corio_future f;
    /* nop */
    T_EXPECT_EQ(corio_nop_start(&f), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), corio_nop());
    /* sleep */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_sleep_start(&f, t0 + CORIO_MS(5)), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 0);
    T_EXPECT(corio_now() - t0 >= CORIO_MS(5) - CORIO_US(100));
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(1)), 0);
    /* pipe write and read */
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return -1;
    char out[100], in[100];
    t_fill(out, sizeof(out), 1, 0);
    memset(in, 0, sizeof(in)); /* valgrind does not see the kernel's writes through the ring */
    T_EXPECT_EQ(corio_write_start(&f, p[1], out, 60, -1, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 60);
    T_EXPECT_EQ(corio_write(p[1], out + 60, 40, -1, T_BOUND), 40);
    T_EXPECT_EQ(corio_read_start(&f, p[0], in, 30, -1, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 30);
    T_EXPECT_EQ(corio_read(p[0], in + 30, 70, -1, T_BOUND), 70);
    T_EXPECT_EQ(t_check(in, sizeof(in), 1, 0), -1);
    /* errors come back the same way: a read of a write-only end */
    T_EXPECT_EQ(corio_read_start(&f, p[1], in, 1, -1, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -EBADF);
    T_EXPECT_EQ(corio_read(p[1], in, 1, -1, T_BOUND), -EBADF);
    /* a file read at an offset */
    int fd = t_tmpfile();
    if (T_EXPECT(fd >= 0)) {
        T_EXPECT_EQ(pwrite(fd, out, sizeof(out), 0), sizeof(out));
        char a[50], b[50];
        memset(a, 0, sizeof(a));
        memset(b, 0, sizeof(b));
        T_EXPECT_EQ(corio_read_start(&f, fd, a, sizeof(a), 25, T_BOUND), 0);
        T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), corio_read(fd, b, sizeof(b), 25, T_BOUND));
        T_EXPECT(memcmp(a, b, sizeof(a)) == 0);
        T_EXPECT_EQ(t_check(a, sizeof(a), 1, 25), -1);
        T_EXPECT_EQ(corio_close_start(&f, fd), 0);
        T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 0);
    }
    T_EXPECT_EQ(corio_close(p[0]), 0);
    T_EXPECT_EQ(corio_close(p[1]), 0);
    return 0;
}

static void test_future_start_await_matches_blocking(void **state)
{
    assert_int_equal(t_run1(*state, start_vs_blocking, NULL), 0);
    t_expect_ok();
}

static int await_again(void *arg)
{
    (void)arg;
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return -1;
    struct corio_future f;
    char c = 'x';
    T_EXPECT_EQ(corio_write_start(&f, p[1], &c, 1, -1, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 1);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 1);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 1);
    T_EXPECT(corio_future_done(&f));
    T_EXPECT_EQ(corio_future_result(&f), 1);
    /* A failed one keeps its error. */
    T_EXPECT_EQ(corio_read_start(&f, -1, &c, 1, -1, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -EBADF);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -EBADF);
    /* Awaiting a done future does not suspend. */
    uint64_t sw = corio_loop_stats(corio_loop_current())->switches;
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -EBADF);
    T_EXPECT_EQ(corio_loop_stats(corio_loop_current())->switches, sw);
    close(p[0]);
    close(p[1]);
    return 0;
}

static void test_future_await_done_again(void **state)
{
    assert_int_equal(t_run1(*state, await_again, NULL), 0);
    t_expect_ok();
}

static int zeroed_body(void *arg)
{
    (void)arg;
    struct corio_future f;
    memset(&f, 0, sizeof(f));
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -EINVAL);
    T_EXPECT(!corio_future_done(&f));
    T_EXPECT_EQ(corio_future_cancel(&f), -EINVAL);
    struct corio_future *fs[1] = {&f};
    T_EXPECT_EQ(corio_await_any(fs, 1, T_BOUND), -EINVAL);
    T_EXPECT_EQ(corio_await_all(fs, 1, T_BOUND), -EINVAL);
    T_EXPECT_EQ(corio_await_any(fs, 0, T_BOUND), -EINVAL);
    T_EXPECT_EQ(corio_await_all(NULL, 1, T_BOUND), -EINVAL);
    return 0;
}

static void test_future_zeroed_einval(void **state)
{
    assert_int_equal(t_run1(*state, zeroed_body, NULL), 0);
    t_expect_ok();
    struct corio_future f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(corio_await(&f, CORIO_FOREVER), -EINVAL); /* outside a coroutine too */
}

/* ---- ownership ---------------------------------------------------------------------------------- */

struct shared_future {
    struct corio_future *f;
    int other_await;
    int other_any;
    int other_cancel;
};

static int foreign_awaiter(void *arg)
{
    struct shared_future *s = arg;
    s->other_await = (int)corio_await(s->f, CORIO_FOREVER);
    struct corio_future *fs[1] = {s->f};
    s->other_any = corio_await_any(fs, 1, corio_now() + CORIO_MS(5));
    return 0;
}

static int owner_body(void *arg)
{
    struct shared_future *s = arg;
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return -1;
    struct corio_future f;
    char buf[4] = {0};
    T_EXPECT_EQ(corio_read_start(&f, p[0], buf, sizeof(buf), -1, T_BOUND), 0);
    s->f = &f;
    corio_id other;
    T_EXPECT_EQ(corio_spawn(&other, NULL, foreign_awaiter, s), 0);
    T_EXPECT_EQ(corio_join(other, NULL, T_BOUND), 0);
    /* Still the owner's, still pending. */
    T_EXPECT_EQ(corio_future_result(&f), -EINPROGRESS);
    T_EXPECT_EQ(write(p[1], "abcd", 4), 4);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 4);
    T_EXPECT(memcmp(buf, "abcd", 4) == 0);
    close(p[0]);
    close(p[1]);
    return 0;
}

static void test_future_other_coroutine_eperm(void **state)
{
    struct shared_future s = {.other_await = 1, .other_any = 1};
    assert_int_equal(t_run1(*state, owner_body, &s), 0);
    t_expect_ok();
    assert_int_equal(s.other_await, -EPERM);
    assert_int_equal(s.other_any, -EPERM);
}

/* ---- await_any / await_all ----------------------------------------------------------------------- */

static int any_body(void *arg)
{
    (void)arg;
    struct corio_future a, b;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_sleep_start(&a, t0 + CORIO_MS(10)), 0);
    T_EXPECT_EQ(corio_sleep_start(&b, t0 + CORIO_MS(500)), 0);
    struct corio_future *fs[2] = {&a, &b};
    T_EXPECT_EQ(corio_await_any(fs, 2, T_BOUND), 0);
    int64_t dt = corio_now() - t0;
    T_EXPECT(dt >= CORIO_MS(9));
    T_EXPECT(dt < CORIO_MS(400));
    T_EXPECT(corio_future_done(&a));
    T_EXPECT(!corio_future_done(&b));
    T_EXPECT_EQ(corio_future_result(&b), -EINPROGRESS);
    /* Reported once: in another order the same set reports the other one, once it is done. */
    struct corio_future *rev[2] = {&b, &a};
    T_EXPECT_EQ(corio_future_cancel(&b), 0);
    T_EXPECT_EQ(corio_await_any(rev, 2, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&b, CORIO_FOREVER), -ECANCELED);
    T_EXPECT(corio_now() - t0 < CORIO_MS(400));
    /* Both reported: the set is spent. */
    T_EXPECT_EQ(corio_await_any(fs, 2, T_BOUND), -ENOENT);
    T_EXPECT_EQ(corio_future_cancel(&b), -EALREADY);
    T_EXPECT_EQ(corio_future_cancel(&a), -EALREADY);
    T_EXPECT_EQ(corio_await(&a, CORIO_FOREVER), 0);
    return 0;
}

static void test_future_await_any_first(void **state)
{
    assert_int_equal(t_run1(*state, any_body, NULL), 0);
    t_expect_ok();
}

static int all_body(void *arg)
{
    (void)arg;
    enum { N = 5 };
    struct corio_future f[N];
    struct corio_future *fs[N];
    int64_t t0 = corio_now();
    for (int i = 0; i < N; i++) {
        fs[i] = &f[i];
        /* finishing out of order: 25, 5, 15, 0 (a nop), 10 ms */
        static const int ms[N] = {25, 5, 15, -1, 10};
        if (ms[i] < 0)
            T_EXPECT_EQ(corio_nop_start(&f[i]), 0);
        else
            T_EXPECT_EQ(corio_sleep_start(&f[i], t0 + CORIO_MS(ms[i])), 0);
    }
    T_EXPECT_EQ(corio_await_all(fs, N, T_BOUND), 0);
    int64_t dt = corio_now() - t0;
    T_EXPECT(dt >= CORIO_MS(24));
    T_EXPECT(dt < CORIO_SEC(2));
    for (int i = 0; i < N; i++) {
        T_EXPECT(corio_future_done(&f[i]));
        T_EXPECT_EQ(corio_await(&f[i], CORIO_FOREVER), 0);
    }
    /* All already done: returns at once. */
    T_EXPECT_EQ(corio_await_all(fs, N, T_BOUND), 0);
    T_EXPECT_EQ(corio_await_any(fs, N, T_BOUND), 0);
    return 0;
}

static void test_future_await_all(void **state)
{
    assert_int_equal(t_run1(*state, all_body, NULL), 0);
    t_expect_ok();
}

static int any_deadline_body(void *arg)
{
    (void)arg;
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return -1;
    struct corio_future r, s;
    char buf[8] = {0};
    T_EXPECT_EQ(corio_read_start(&r, p[0], buf, sizeof(buf), -1, T_BOUND), 0);
    T_EXPECT_EQ(corio_sleep_start(&s, corio_now() + CORIO_SEC(5)), 0);
    struct corio_future *fs[2] = {&r, &s};
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_await_any(fs, 2, t0 + CORIO_MS(20)), -ETIMEDOUT);
    int64_t dt = corio_now() - t0;
    T_EXPECT(dt >= CORIO_MS(19));
    T_EXPECT(dt < CORIO_SEC(2));
    T_EXPECT_EQ(corio_future_result(&r), -EINPROGRESS);
    T_EXPECT_EQ(corio_future_result(&s), -EINPROGRESS);
    t0 = corio_now();
    T_EXPECT_EQ(corio_await_all(fs, 2, t0 + CORIO_MS(20)), -ETIMEDOUT);
    T_EXPECT(corio_now() - t0 >= CORIO_MS(19));
    /* A deadline already past: at once. */
    T_EXPECT_EQ(corio_await_any(fs, 2, corio_now() - 1), -ETIMEDOUT);
    T_EXPECT_EQ(corio_await_all(fs, 2, 0), -ETIMEDOUT);
    /* Still in flight: the read still works. */
    T_EXPECT_EQ(write(p[1], "hi", 2), 2);
    T_EXPECT_EQ(corio_await_any(fs, 2, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&r, CORIO_FOREVER), 2);
    T_EXPECT(memcmp(buf, "hi", 2) == 0);
    T_EXPECT_EQ(corio_future_cancel(&s), 0);
    T_EXPECT_EQ(corio_await(&s, CORIO_FOREVER), -ECANCELED);
    /* And with both pending again, cancel both and await both. */
    T_EXPECT_EQ(corio_read_start(&r, p[0], buf, sizeof(buf), -1, T_BOUND), 0);
    T_EXPECT_EQ(corio_sleep_start(&s, corio_now() + CORIO_SEC(5)), 0);
    T_EXPECT_EQ(corio_await_any(fs, 2, corio_now() + CORIO_MS(5)), -ETIMEDOUT);
    T_EXPECT_EQ(corio_future_cancel(&r), 0);
    T_EXPECT_EQ(corio_future_cancel(&s), 0);
    T_EXPECT_EQ(corio_await_all(fs, 2, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&r, CORIO_FOREVER), -ECANCELED);
    T_EXPECT_EQ(corio_await(&s, CORIO_FOREVER), -ECANCELED);
    close(p[0]);
    close(p[1]);
    return 0;
}

static void test_future_await_any_deadline(void **state)
{
    int64_t t0 = corio_now();
    assert_int_equal(t_run1(*state, any_deadline_body, NULL), 0);
    t_expect_ok();
    assert_true(t_ms_since(t0) < 2000.0);
}

static int done_result_body(void *arg)
{
    (void)arg;
    struct corio_future f;
    T_EXPECT_EQ(corio_sleep_start(&f, corio_now() + CORIO_MS(10)), 0);
    T_EXPECT(!corio_future_done(&f));
    T_EXPECT_EQ(corio_future_result(&f), -EINPROGRESS);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(30)), 0);
    /* Completed while nobody awaited it: done without an await. */
    T_EXPECT(corio_future_done(&f));
    T_EXPECT_EQ(corio_future_result(&f), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_nop_start(&f), 0);
    T_EXPECT_EQ(corio_future_result(&f), -EINPROGRESS); /* queued, not yet submitted */
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_future_result(&f), 0);
    return 0;
}

static void test_future_done_and_result(void **state)
{
    assert_int_equal(t_run1(*state, done_result_body, NULL), 0);
    t_expect_ok();
}

/* ---- futures left pending when their coroutine returns ----------------------------------------- */

struct leaver {
    int fd;
    int wfd;
    int started;
};

/* The future is the first local, just below the frame's top: the closest to the code that runs
 * after the body returns. */
static __attribute__((noinline)) int leave_pending(struct leaver *lv)
{
    struct corio_future f;
    char buf[256];
    memset(buf, 0, sizeof(buf));
    lv->started += corio_read_start(&f, lv->fd, buf, sizeof(buf), -1, CORIO_FOREVER) == 0;
    return 17; /* returns with the read in flight: nobody ever writes */
}

static int leaver_body(void *arg)
{
    return leave_pending(arg);
}

/* A tiny frame, straight in the body. */
static int leaver_flat(void *arg)
{
    struct leaver *lv = arg;
    struct corio_future f;
    char c = 0;
    lv->started += corio_read_start(&f, lv->fd, &c, 1, -1, CORIO_FOREVER) == 0;
    return 16;
}

/* Several kinds at once, some with linked timeouts (two CQEs each), and a sleep. */
static int leaver_many(void *arg)
{
    struct leaver *lv = arg;
    struct corio_future f[4];
    char buf[4][64];
    memset(buf, 0, sizeof(buf));
    for (int i = 0; i < 4; i++)
        lv->started += corio_read_start(&f[i], lv->fd, buf[i], sizeof(buf[i]), -1,
                                        i % 2 ? CORIO_FOREVER : corio_now() + CORIO_SEC(30)) == 0;
    struct corio_future s;
    lv->started += corio_sleep_start(&s, corio_now() + CORIO_SEC(30)) == 0;
    return 18;
}

/* Returns with a read in flight that data is about to complete: the kernel may write into the
 * dead frame after the body is gone. */
static int leaver_racing(void *arg)
{
    struct leaver *lv = arg;
    struct corio_future f;
    char buf[8];
    memset(buf, 0, sizeof(buf));
    lv->started += corio_read_start(&f, lv->fd, buf, sizeof(buf), -1, CORIO_FOREVER) == 0;
    T_EXPECT_EQ(write(lv->wfd, "12345678", 8), 8);
    return 19;
}

/* Reuses the stacks the leavers left, writing all over them. */
static __attribute__((noinline)) int scribble(void *arg)
{
    (void)arg;
    volatile char junk[8192];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)0x5a;
    T_EXPECT_EQ(corio_nop(), 0);
    return junk[100];
}

static void test_future_pending_at_return_drained(void **state)
{
    struct corio_loop *l = *state;
    int p[2];
    assert_int_equal(t_pipe(p, O_NONBLOCK), 0);
    struct leaver lv = {.fd = p[0], .wfd = p[1]};
    corio_id a, b, c, d;
    assert_int_equal(corio_spawn(&a, l, leaver_body, &lv), 0);
    assert_int_equal(corio_spawn(&b, l, leaver_many, &lv), 0);
    assert_int_equal(corio_spawn(&c, l, leaver_flat, &lv), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(corio_spawn(NULL, l, scribble, NULL), 0);
    int64_t t0 = corio_now();
    assert_int_equal(corio_loop_run(l), 0);
    assert_true(t_ms_since(t0) < 2000.0);
    t_expect_ok();
    assert_int_equal(lv.started, 1 + 5 + 1);
    /* The cancelled reads took nothing: what is written now is all still there. */
    assert_int_equal(write(p[1], "xyz", 3), 3);
    assert_int_equal(t_readable(p[0]), 3);
    char junk[16];
    assert_int_equal(read(p[0], junk, sizeof(junk)), 3);

    /* Again with the stacks reused at once, and with data racing the drain. */
    lv.started = 0;
    for (int round = 0; round < 20; round++) {
        assert_int_equal(corio_spawn(&d, l, leaver_racing, &lv), 0);
        assert_int_equal(corio_spawn(NULL, l, scribble, NULL), 0);
        assert_int_equal(corio_spawn(NULL, l, leaver_body, &lv), 0);
        assert_int_equal(corio_spawn(NULL, l, scribble, NULL), 0);
        assert_int_equal(corio_loop_run(l), 0);
        t_expect_ok();
        /* The 8 bytes went to one of the reads, or are still in the pipe: never half. */
        int left = t_readable(p[0]);
        assert_true(left == 0 || left == 8);
        while (read(p[0], junk, sizeof(junk)) > 0)
            ;
    }
    assert_int_equal(lv.started, 40);
    close(p[0]);
    close(p[1]);
}

/* ---- deadlines ----------------------------------------------------------------------------------- */

static int past_deadline_body(void *arg)
{
    (void)arg;
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return -1;
    const struct corio_stats *st = corio_loop_stats(corio_loop_current());
    char buf[8];
    uint64_t sw = st->switches, sq = st->sqes;
    T_EXPECT_EQ(corio_read(p[0], buf, sizeof(buf), -1, corio_now() - CORIO_MS(1)), -ETIMEDOUT);
    T_EXPECT_EQ(corio_read(p[0], buf, sizeof(buf), -1, 0), -ETIMEDOUT);
    T_EXPECT_EQ(corio_write(p[1], buf, sizeof(buf), -1, 1), -ETIMEDOUT);
    struct corio_future f;
    T_EXPECT_EQ(corio_read_start(&f, p[0], buf, sizeof(buf), -1, corio_now()), -ETIMEDOUT);
    T_EXPECT(corio_future_done(&f));
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ETIMEDOUT);
    /* A sleep until a past deadline is simply over. */
    T_EXPECT_EQ(corio_sleep(corio_now() - 1), 0);
    T_EXPECT_EQ(corio_sleep(0), 0);
    /* None of it suspended or reached the kernel. */
    T_EXPECT_EQ(st->switches, sw);
    T_EXPECT_EQ(st->sqes, sq);
    T_EXPECT_EQ(t_readable(p[0]), 0); /* the write did not happen */
    close(p[0]);
    close(p[1]);
    return 0;
}

static void test_future_deadline_already_past(void **state)
{
    assert_int_equal(t_run1(*state, past_deadline_body, NULL), 0);
    t_expect_ok();
}

static int op_deadline_body(void *arg)
{
    (void)arg;
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return -1;
    char buf[8] = {0};
    for (int i = 0; i < 3; i++) {
        int64_t t0 = corio_now();
        T_EXPECT_EQ(corio_read(p[0], buf, sizeof(buf), -1, t0 + CORIO_MS(30)), -ETIMEDOUT);
        int64_t dt = corio_now() - t0;
        T_EXPECT(dt >= CORIO_MS(29));
        T_EXPECT(dt < CORIO_SEC(2));
    }
    /* The start form, awaited late. */
    struct corio_future f;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_read_start(&f, p[0], buf, sizeof(buf), -1, t0 + CORIO_MS(30)), 0);
    T_EXPECT_EQ(corio_sleep(t0 + CORIO_MS(60)), 0);
    T_EXPECT(corio_future_done(&f));
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ETIMEDOUT);
    /* An op that beats its deadline returns its own result. */
    T_EXPECT_EQ(write(p[1], "ok", 2), 2);
    T_EXPECT_EQ(corio_read(p[0], buf, sizeof(buf), -1, corio_now() + CORIO_MS(30)), 2);
    /* ...and its linked timeout does not fire later into anything. */
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(40)), 0);
    close(p[0]);
    close(p[1]);
    return 0;
}

static void test_future_op_deadline(void **state)
{
    assert_int_equal(t_run1(*state, op_deadline_body, NULL), 0);
    t_expect_ok();
}

/* ---- cancel racing completion -------------------------------------------------------------------- */

struct race {
    int rfd, wfd;
    int round;
    ssize_t got;        /* the reader's result */
    char data[32];      /* what it read */
    int reader_done;
};

static int race_reader(void *arg)
{
    struct race *r = arg;
    r->got = corio_read(r->rfd, r->data, sizeof(r->data), -1, T_BOUND);
    r->reader_done = 1;
    return 0;
}

static int race_main(void *arg)
{
    int *counts = arg; /* [0]: data won, [1]: cancel won */
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, O_NONBLOCK), 0))
        return -1;
    for (int round = 0; round < 300; round++) {
        struct race r = {.rfd = p[0], .wfd = p[1], .round = round, .got = 12345};
        char msg[16];
        t_fill(msg, sizeof(msg), 100, (uint64_t)round * 16);
        corio_id id;
        T_EXPECT_EQ(corio_spawn(&id, NULL, race_reader, &r), 0);
        T_EXPECT_EQ(corio_yield(), 0); /* the reader parks in its read */
        /* The write and the cancel in the same loop iteration: through the ring (the write SQE
         * goes first) on odd rounds, with write(2) before the cancel SQE on even ones. */
        struct corio_future wf;
        if (round % 2) {
            T_EXPECT_EQ(corio_write_start(&wf, p[1], msg, sizeof(msg), -1, T_BOUND), 0);
        } else {
            T_EXPECT_EQ(write(p[1], msg, sizeof(msg)), sizeof(msg));
        }
        T_EXPECT_EQ(corio_cancel(id), 0);
        if (round % 2)
            T_EXPECT_EQ(corio_await(&wf, CORIO_FOREVER), sizeof(msg));
        T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
        T_EXPECT_EQ(r.reader_done, 1);
        if (r.got == -ECANCELED) {
            /* The cancel won: every byte is still in the pipe. */
            counts[1]++;
            char back[32];
            T_EXPECT_EQ(read(p[0], back, sizeof(back)), sizeof(msg));
            T_EXPECT(memcmp(back, msg, sizeof(msg)) == 0);
        } else if (T_EXPECT_EQ(r.got, sizeof(msg))) {
            /* The read won: it has the data, and the pipe is empty. */
            counts[0]++;
            T_EXPECT(memcmp(r.data, msg, sizeof(msg)) == 0);
            T_EXPECT_EQ(t_readable(p[0]), 0);
        }
        if (t_readable(p[0]) != 0) {
            T_EXPECT_EQ(t_readable(p[0]), 0);
            break;
        }
    }
    close(p[0]);
    close(p[1]);
    return 0;
}

static void test_future_cancel_races_completion(void **state)
{
    int counts[2] = {0, 0};
    assert_int_equal(t_run1(*state, race_main, counts), 0);
    t_expect_ok();
    print_message("data won %d, cancel won %d\n", counts[0], counts[1]);
    assert_int_equal(counts[0] + counts[1], 300);
}

/* ---- starting a pending future, await's deadline, await_any's reporting ------------------------- */

/* A future still in flight cannot be started again: the call fails with -EBUSY and leaves it alone,
 * and its op completes normally. */
static int restart_body(void *arg)
{
    (void)arg;
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return -1;
    char a[4] = {0}, b[4] = {0};
    struct corio_future f;
    T_EXPECT_EQ(corio_read_start(&f, p[0], a, sizeof(a), -1, T_BOUND), 0);
    T_EXPECT_EQ(corio_read_start(&f, p[0], b, sizeof(b), -1, T_BOUND), -EBUSY);
    T_EXPECT_EQ(corio_nop_start(&f), -EBUSY);
    T_EXPECT(!corio_future_done(&f));
    T_EXPECT_EQ(write(p[1], "ab", 2), 2);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 2);
    T_EXPECT_EQ(memcmp(a, "ab", 2), 0);
    /* Done: it may be started again. */
    T_EXPECT_EQ(corio_nop_start(&f), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 0);
    close(p[0]);
    close(p[1]);
    return 0;
}

static void test_future_restart_pending_ebusy(void **state)
{
    t_run_checked(state, restart_body, NULL);
}

/* corio_await's deadline ends the op as the op's own deadline would: cancelled in the kernel, still
 * awaited, -ETIMEDOUT, and the buffer is the caller's again (data sent afterwards is not in it). */
static int await_deadline_body(void *arg)
{
    (void)arg;
    int sv[2];
    if (!T_EXPECT_EQ(t_tcp_pair(sv), 0))
        return -1;
    char buf[8];
    memset(buf, 'z', sizeof(buf));
    struct corio_future f;
    T_EXPECT_EQ(corio_recv_start(&f, sv[0], buf, sizeof(buf), 0, CORIO_FOREVER), 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_await(&f, t0 + CORIO_MS(30)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 30);
    T_EXPECT(corio_future_done(&f));
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ETIMEDOUT); /* final */
    T_EXPECT_EQ(send(sv[1], "late", 4, 0), 4);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(5)), 0);
    T_EXPECT_EQ(buf[0], 'z');
    /* A deadline already past ends it at once, the same way. */
    T_EXPECT_EQ(corio_recv_start(&f, sv[1], buf, sizeof(buf), 0, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_await(&f, corio_now() - 1), -ETIMEDOUT);
    corio_close(sv[0]);
    corio_close(sv[1]);
    return 0;
}

static void test_future_await_deadline(void **state)
{
    t_run_checked(state, await_deadline_body, NULL);
}

/* The natural loop over corio_await_any sees each future once, in completion order, then -ENOENT. */
static int await_any_loop_body(void *arg)
{
    (void)arg;
    struct corio_future f[3];
    int64_t t0 = corio_now();
    /* Completing in the order 2, 0, 1. */
    T_EXPECT_EQ(corio_sleep_start(&f[0], t0 + CORIO_MS(20)), 0);
    T_EXPECT_EQ(corio_sleep_start(&f[1], t0 + CORIO_MS(40)), 0);
    T_EXPECT_EQ(corio_nop_start(&f[2]), 0);
    struct corio_future *fs[3] = {&f[0], &f[1], &f[2]};
    int order[3], n = 0, i;
    while ((i = corio_await_any(fs, 3, T_BOUND)) >= 0 && n < 3)
        order[n++] = i;
    T_EXPECT_EQ(i, -ENOENT);
    T_EXPECT_EQ(n, 3);
    T_EXPECT_EQ(order[0], 2);
    T_EXPECT_EQ(order[1], 0);
    T_EXPECT_EQ(order[2], 1);
    /* Started again, a future is reportable again. */
    T_EXPECT_EQ(corio_nop_start(&f[1]), 0);
    T_EXPECT_EQ(corio_await_any(fs, 3, T_BOUND), 1);
    T_EXPECT_EQ(corio_await_any(fs, 3, T_BOUND), -ENOENT);
    return 0;
}

static void test_future_await_any_each_once(void **state)
{
    t_run_checked(state, await_any_loop_body, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_TEST(test_future_start_await_matches_blocking),
        T_LOOP_TEST(test_future_await_done_again),
        T_LOOP_TEST(test_future_zeroed_einval),
        T_LOOP_TEST(test_future_other_coroutine_eperm),
        T_LOOP_TEST(test_future_await_any_first),
        T_LOOP_TEST(test_future_await_all),
        T_LOOP_TEST(test_future_await_any_deadline),
        T_LOOP_TEST(test_future_done_and_result),
        T_LOOP_TEST(test_future_pending_at_return_drained),
        T_LOOP_TEST(test_future_deadline_already_past),
        T_LOOP_TEST(test_future_op_deadline),
        T_LOOP_TEST(test_future_cancel_races_completion),
        T_LOOP_TEST(test_future_restart_pending_ebusy),
        T_LOOP_TEST(test_future_await_deadline),
        T_LOOP_TEST(test_future_await_any_each_once),
    };
    return T_RUN_TESTS(tests);
}
