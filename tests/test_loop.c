/* The loop: lifetime, the feature probe, counters, batched submission, who may run it, stop,
 * deadlock detection, freeing with live coroutines, setup errors and fallbacks, one loop per
 * thread. */
#include "helpers.h"

#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

/* ---- create / free ---------------------------------------------------------------------------- */

static void test_loop_new_free(void **state)
{
    (void)state;
    struct corio_loop *l = NULL;
    assert_int_equal(corio_loop_new(&l, NULL), 0);
    assert_non_null(l);
    const struct corio_stats *s = corio_loop_stats(l);
    assert_non_null(s);
    assert_int_equal(s->spawns, 0);
    assert_int_equal(s->switches, 0);
    assert_null(corio_loop_current());
    /* Running an empty loop returns at once. */
    assert_int_equal(corio_loop_run(l), 0);
    assert_null(corio_loop_current());
    corio_loop_free(l);

    struct corio_loop_opts o = {.sq_entries = 64, .cq_entries = 1024, .stack_size = 256 * 1024,
                                .stack_cache = 4};
    l = NULL;
    assert_int_equal(corio_loop_new(&l, &o), 0);
    assert_non_null(l);
    corio_loop_free(l);

    /* The kernel refuses more than 32768 SQ entries without IORING_SETUP_CLAMP: every
     * configuration fails with -EINVAL and *out is left alone. */
    struct corio_loop *sentinel = (struct corio_loop *)(uintptr_t)0x1234;
    l = sentinel;
    o = (struct corio_loop_opts){.sq_entries = 1u << 20};
    assert_int_equal(corio_loop_new(&l, &o), -EINVAL);
    assert_ptr_equal(l, sentinel);

    corio_loop_free(NULL); /* a no-op */
}

/* ---- the feature probe ------------------------------------------------------------------------ */

static bool kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma = 0, mi = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
        return false;
    return ma > major || (ma == major && mi >= minor);
}

static void test_loop_has_features(void **state)
{
    struct corio_loop *l = *state;
    t_need_uring(l, false, "the ring's features (test_epoll checks the epoll backend's)");
    /* Opcodes that every kernel corio supports (5.10+) has. */
    static const enum corio_feature base[] = {
        CORIO_FEAT_NOP,     CORIO_FEAT_READ,         CORIO_FEAT_WRITE,   CORIO_FEAT_READV,
        CORIO_FEAT_WRITEV,  CORIO_FEAT_OPENAT,       CORIO_FEAT_CLOSE,   CORIO_FEAT_FSYNC,
        CORIO_FEAT_STATX,   CORIO_FEAT_ACCEPT,       CORIO_FEAT_CONNECT, CORIO_FEAT_SEND,
        CORIO_FEAT_RECV,    CORIO_FEAT_SENDMSG,      CORIO_FEAT_RECVMSG, CORIO_FEAT_TIMEOUT,
        CORIO_FEAT_LINK_TIMEOUT, CORIO_FEAT_ASYNC_CANCEL, CORIO_FEAT_NODROP,
        CORIO_FEAT_FAST_POLL, CORIO_FEAT_RW_CUR_POS, CORIO_FEAT_CQSIZE,
    };
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
        if (!corio_loop_has(l, base[i]))
            fail_msg("feature %s missing", corio_feature_name(base[i]));
    }
    /* Newer ones, gated on the kernel version that brought them. */
    if (kernel_at_least(5, 11))
        assert_true(corio_loop_has(l, CORIO_FEAT_EXT_ARG));
    if (kernel_at_least(5, 19)) {
        assert_true(corio_loop_has(l, CORIO_FEAT_SOCKET));
        assert_true(corio_loop_has(l, CORIO_FEAT_MSG_RING));
        assert_true(corio_loop_has(l, CORIO_FEAT_COOP_TASKRUN) ||
                    corio_loop_has(l, CORIO_FEAT_DEFER_TASKRUN));
        assert_true(corio_loop_has(l, CORIO_FEAT_SUBMIT_ALL));
        assert_true(corio_loop_has(l, CORIO_FEAT_REG_RING_FD));
        assert_true(corio_loop_has(l, CORIO_FEAT_CQE_SKIP));
    }
    if (kernel_at_least(6, 1)) {
        assert_true(corio_loop_has(l, CORIO_FEAT_SINGLE_ISSUER));
        assert_true(corio_loop_has(l, CORIO_FEAT_DEFER_TASKRUN));
        assert_true(corio_loop_has(l, CORIO_FEAT_TASKRUN_FLAG));
        assert_true(corio_loop_has(l, CORIO_FEAT_SEND_ZC));
    }
    /* DEFER_TASKRUN and COOP_TASKRUN exclude each other; SQPOLL was not asked for. */
    assert_false(corio_loop_has(l, CORIO_FEAT_DEFER_TASKRUN) &&
                 corio_loop_has(l, CORIO_FEAT_COOP_TASKRUN));
    assert_false(corio_loop_has(l, CORIO_FEAT_SQPOLL));
    /* Out of range. */
    assert_false(corio_loop_has(l, CORIO_FEAT_COUNT));
    assert_false(corio_loop_has(l, (enum corio_feature)-1));
    assert_false(corio_loop_has(l, (enum corio_feature)63));
    assert_false(corio_loop_has(l, (enum corio_feature)64));

    /* Names: every feature has one, all differ. */
    for (int i = 0; i < CORIO_FEAT_COUNT; i++) {
        const char *n = corio_feature_name((enum corio_feature)i);
        assert_non_null(n);
        assert_string_not_equal(n, "?");
        assert_true(strlen(n) > 0);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(n, corio_feature_name((enum corio_feature)j));
    }
    assert_string_equal(corio_feature_name(CORIO_FEAT_NOP), "nop");
    assert_string_equal(corio_feature_name(CORIO_FEAT_RECV), "recv");
    assert_string_equal(corio_feature_name(CORIO_FEAT_ACCEPT), "accept");
    assert_string_equal(corio_feature_name(CORIO_FEAT_DEFER_TASKRUN), "defer_taskrun");
    assert_string_equal(corio_feature_name(CORIO_FEAT_COUNT), "?");
    assert_string_equal(corio_feature_name((enum corio_feature)-1), "?");
    assert_string_equal(corio_feature_name((enum corio_feature)1000), "?");
}

/* ---- counters and batching -------------------------------------------------------------------- */

static int nops_body(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++) {
        int r = corio_nop();
        if (!T_EXPECT_EQ(r, 0))
            return r;
    }
    return n;
}

static void test_loop_stats_move(void **state)
{
    struct corio_loop *l = *state;
    const struct corio_stats *s = corio_loop_stats(l);
    struct corio_stats before = *s;
    for (int i = 0; i < 3; i++)
        assert_int_equal(corio_spawn(NULL, l, nops_body, (void *)(intptr_t)50), 0);
    /* Spawning counts at once; nothing runs until the loop does. */
    assert_int_equal(s->spawns - before.spawns, 3);
    assert_int_equal(s->switches, before.switches);
    assert_int_equal(corio_loop_run(l), 0);
    t_expect_ok();
    assert_int_equal(s->spawns - before.spawns, 3);
    assert_true(s->sqes - before.sqes >= 150);
    assert_true(s->cqes - before.cqes >= 150);
    if (corio_loop_backend(l) == CORIO_BACKEND_IO_URING) /* epoll enters only to wait */
        assert_true(s->enters - before.enters >= 1);
    /* At least one switch in and one out per nop and per coroutine start. */
    assert_true(s->switches - before.switches >= 2 * (150 + 3));
    assert_true(s->iterations - before.iterations >= 50);
    assert_int_equal(s->cq_overflows, 0);
    /* The pointer stays current. */
    assert_ptr_equal(corio_loop_stats(l), s);
}

static void test_loop_batched_submission(void **state)
{
    struct corio_loop *l = *state;
    enum { CO = 256, NOPS = 100 };
    const struct corio_stats *s = corio_loop_stats(l);
    for (int i = 0; i < CO; i++)
        assert_int_equal(corio_spawn(NULL, l, nops_body, (void *)(intptr_t)NOPS), 0);
    struct corio_stats before = *s;
    assert_int_equal(corio_loop_run(l), 0);
    t_expect_ok();
    double ops = (double)CO * NOPS;
    double enters = (double)(s->enters - before.enters);
    double per_op = enters / ops;
    print_message("256 x 100 nops: %.0f enters, %.4f enters/op, %llu sqes, %llu cqes\n", enters,
                  per_op, (unsigned long long)(s->sqes - before.sqes),
                  (unsigned long long)(s->cqes - before.cqes));
    assert_true(s->sqes - before.sqes >= CO * NOPS);
    assert_true(s->cqes - before.cqes >= CO * NOPS);
    assert_true(per_op <= 0.05);
}

static void test_loop_single_coroutine_enters(void **state)
{
    struct corio_loop *l = *state;
    enum { NOPS = 2000 };
    t_need_uring(l, false, "an io_uring_enter per submit and wait");
    const struct corio_stats *s = corio_loop_stats(l);
    struct corio_stats before = *s;
    assert_int_equal(t_run1(l, nops_body, (void *)(intptr_t)NOPS), NOPS);
    t_expect_ok();
    double per_op = (double)(s->enters - before.enters) / NOPS;
    print_message("1 x %d nops: %.3f enters/op\n", NOPS, per_op);
    /* One coroutine cannot batch: each nop is one submit-and-wait. */
    assert_true(per_op >= 0.9);
    assert_true(per_op <= 1.5);
}

/* ---- who may run a loop ----------------------------------------------------------------------- */

static int flag_body(void *arg)
{
    *(int *)arg += 1;
    return 7;
}

static void *run_from_thread(void *arg)
{
    return (void *)(intptr_t)corio_loop_run(arg);
}

static void test_loop_run_other_thread_eperm(void **state)
{
    struct corio_loop *l = *state;
    int ran = 0;
    assert_int_equal(corio_spawn(NULL, l, flag_body, &ran), 0);
    pthread_t th;
    void *ret = NULL;
    assert_int_equal(pthread_create(&th, NULL, run_from_thread, l), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, -EPERM);
    assert_int_equal(ran, 0);
    /* The owner still can. */
    assert_int_equal(corio_loop_run(l), 0);
    assert_int_equal(ran, 1);
}

static int nested_run_body(void *arg)
{
    struct corio_loop *l = arg;
    T_EXPECT(corio_loop_current() == l);
    T_EXPECT_EQ(corio_loop_run(l), -EBUSY);
    T_EXPECT_EQ(corio_loop_run(corio_loop_current()), -EBUSY);
    /* Still a working coroutine afterwards. */
    T_EXPECT_EQ(corio_nop(), 0);
    return 0;
}

static void test_loop_run_nested_ebusy(void **state)
{
    struct corio_loop *l = *state;
    assert_int_equal(t_run1(l, nested_run_body, l), 0);
    t_expect_ok();
}

static int current_body(void *arg)
{
    struct corio_loop *l = arg;
    T_EXPECT(corio_loop_current() == l);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(1)), 0);
    T_EXPECT(corio_loop_current() == l);
    return 0;
}

static void test_loop_current(void **state)
{
    struct corio_loop *l = *state;
    assert_null(corio_loop_current());
    assert_int_equal(t_run1(l, current_body, l), 0);
    t_expect_ok();
    assert_null(corio_loop_current());
}

/* ---- stop -------------------------------------------------------------------------------------- */

struct stop_ctx {
    int sleepers_cancelled;
    int sleepers_other;
    int stopper_ran;
    struct corio_loop *loop;
};

static int long_sleeper(void *arg)
{
    struct stop_ctx *c = arg;
    int r = corio_sleep(corio_now() + CORIO_SEC(20));
    if (r == -ECANCELED)
        c->sleepers_cancelled++;
    else
        c->sleepers_other++;
    /* Cancelled: later waits fail at once. */
    T_EXPECT_EQ(corio_nop(), -ECANCELED);
    T_EXPECT(corio_cancelled());
    return r;
}

static int stopper(void *arg)
{
    struct stop_ctx *c = arg;
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0);
    c->stopper_ran = 1;
    corio_loop_stop(c->loop);
    /* The stopper is cancelled too. */
    T_EXPECT(corio_cancelled());
    return 0;
}

static void test_loop_stop_cancels_sleepers(void **state)
{
    struct corio_loop *l = *state;
    struct stop_ctx c = {.loop = l};
    for (int i = 0; i < 5; i++)
        assert_int_equal(corio_spawn(NULL, l, long_sleeper, &c), 0);
    assert_int_equal(corio_spawn(NULL, l, stopper, &c), 0);
    int64_t t0 = corio_now();
    assert_int_equal(corio_loop_run(l), 0);
    double ms = t_ms_since(t0);
    t_expect_ok();
    assert_int_equal(c.stopper_ran, 1);
    assert_int_equal(c.sleepers_cancelled, 5);
    assert_int_equal(c.sleepers_other, 0);
    assert_true(ms >= 9.0);
    assert_true(ms < 2000.0);

    /* The stop is over once run returns: the next run is an ordinary one. */
    int ran = 0;
    assert_int_equal(corio_spawn(NULL, l, flag_body, &ran), 0);
    assert_int_equal(t_run1(l, current_body, l), 0);
    t_expect_ok();
    assert_int_equal(ran, 1);
}

static void test_loop_stop_before_run(void **state)
{
    struct corio_loop *l = *state;
    struct stop_ctx c = {.loop = l};
    for (int i = 0; i < 3; i++)
        assert_int_equal(corio_spawn(NULL, l, long_sleeper, &c), 0);
    /* Stopping between runs cancels the coroutines waiting to start. */
    corio_loop_stop(l);
    int64_t t0 = corio_now();
    assert_int_equal(corio_loop_run(l), 0);
    assert_true(t_ms_since(t0) < 2000.0);
    t_expect_ok();
    assert_int_equal(c.sleepers_cancelled, 3);
    assert_int_equal(c.sleepers_other, 0);
}

/* ---- deadlock ---------------------------------------------------------------------------------- */

struct dl_ctx {
    corio_id a, b;
    int join_a, join_b; /* what each one's corio_join returned */
    int ended;
};

static int dl_a(void *arg)
{
    struct dl_ctx *c = arg;
    int res = 0;
    c->join_a = corio_join(c->b, &res, CORIO_FOREVER);
    c->ended++;
    return 1;
}

static int dl_b(void *arg)
{
    struct dl_ctx *c = arg;
    int res = 0;
    c->join_b = corio_join(c->a, &res, CORIO_FOREVER);
    c->ended++;
    return 2;
}

static int dl_main(void *arg)
{
    /* A third coroutine waits on the deadlocked pair: it must be woken too. */
    struct dl_ctx *c = arg;
    int res = 0;
    int r = corio_join(c->a, &res, CORIO_FOREVER);
    c->ended++;
    return r;
}

static void test_loop_deadlock_detected(void **state)
{
    struct corio_loop *l = *state;
    struct dl_ctx c = {.join_a = 1, .join_b = 1};
    assert_int_equal(corio_spawn(&c.a, l, dl_a, &c), 0);
    assert_int_equal(corio_spawn(&c.b, l, dl_b, &c), 0);
    int64_t t0 = corio_now();
    assert_int_equal(corio_loop_run(l), -EDEADLK);
    assert_true(t_ms_since(t0) < 2000.0);
    /* Both were woken by the cancel that broke the deadlock, and both ended. */
    assert_int_equal(c.join_a, -ECANCELED);
    assert_int_equal(c.join_b, -ECANCELED);
    assert_int_equal(c.ended, 2);

    /* A three-coroutine version: main joins a, a and b join each other. */
    memset(&c, 0, sizeof(c));
    c.join_a = c.join_b = 1;
    corio_id m;
    assert_int_equal(corio_spawn(&c.a, l, dl_a, &c), 0);
    assert_int_equal(corio_spawn(&c.b, l, dl_b, &c), 0);
    assert_int_equal(corio_spawn(&m, l, dl_main, &c), 0);
    assert_int_equal(corio_loop_run(l), -EDEADLK);
    assert_int_equal(c.ended, 3);
    assert_int_equal(c.join_a, -ECANCELED);
    assert_int_equal(c.join_b, -ECANCELED);

    /* The loop is usable again, and a plain run reports no deadlock. */
    int ran = 0;
    assert_int_equal(corio_spawn(NULL, l, flag_body, &ran), 0);
    assert_int_equal(corio_loop_run(l), 0);
    assert_int_equal(ran, 1);
}

/* ---- free with live coroutines ---------------------------------------------------------------- */

struct free_ctx {
    int started;
    int cancelled;
    char *mem[64];
};

static int free_victim(void *arg)
{
    struct free_ctx *c = arg;
    int i = c->started++;
    /* Memory the body frees on its way out: ASan and valgrind see a leak if it never ends. */
    c->mem[i] = malloc(100);
    int r = corio_sleep(corio_now() + CORIO_SEC(20));
    if (r == -ECANCELED)
        c->cancelled++;
    free(c->mem[i]);
    c->mem[i] = NULL;
    return r;
}

static int cancelled_nops(void *arg)
{
    (void)arg;
    T_EXPECT(corio_cancelled());
    for (int i = 0; i < 10; i++)
        T_EXPECT_EQ(corio_nop(), -ECANCELED);
    return 0;
}

static void test_loop_free_with_live_coroutines(void **state)
{
    (void)state;
    struct corio_loop *l;
    assert_int_equal(corio_loop_new(&l, NULL), 0);
    struct free_ctx c = {0};
    corio_id ids[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(corio_spawn(&ids[i], l, free_victim, &c), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(corio_spawn(NULL, l, free_victim, &c), 0);
    int64_t t0 = corio_now();
    corio_loop_free(l); /* never run: each body starts cancelled and ends */
    assert_true(t_ms_since(t0) < 2000.0);
    assert_int_equal(c.started, 16);
    assert_int_equal(c.cancelled, 16);
    for (int i = 0; i < 16; i++)
        assert_null(c.mem[i]);

    /* A joinable coroutine that was never joined and one with ops to do: both are run to their
     * end by the free, the ops failing with -ECANCELED. */
    assert_int_equal(corio_loop_new(&l, NULL), 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(corio_spawn(NULL, l, free_victim, &c), 0);
    assert_int_equal(corio_spawn(&ids[0], l, cancelled_nops, NULL), 0);
    corio_loop_free(l);
    t_expect_ok();
    assert_int_equal(c.cancelled, 1);
}

/* ---- setup errors ------------------------------------------------------------------------------ */

static void test_loop_strerror_setup(void **state)
{
    (void)state;
    const char *m = corio_strerror_setup(-EPERM);
    print_message("EPERM: %s\n", m);
    assert_non_null(strstr(m, "EPERM"));
    assert_non_null(strstr(m, "kernel.io_uring_disabled"));
    m = corio_strerror_setup(-ENOSYS);
    print_message("ENOSYS: %s\n", m);
    assert_non_null(strstr(m, "ENOSYS"));
    /* ENOSYS comes from a kernel without io_uring or a seccomp filter, never from the sysctl
     * (which gives EPERM): the message names those causes. */
    assert_true(strstr(m, "CONFIG_IO_URING") || strstr(m, "seccomp"));
    m = corio_strerror_setup(-ENOMEM);
    assert_non_null(strstr(m, "RLIMIT_MEMLOCK"));
    assert_non_null(strstr(corio_strerror_setup(-EMFILE), "RLIMIT_NOFILE"));
    assert_string_equal(corio_strerror_setup(0), "no error");
    assert_non_null(corio_strerror_setup(-EIO));
    assert_true(strlen(corio_strerror_setup(-EIO)) > 0);
}

/* Child side of test_loop_setup_refused: a seccomp filter makes io_uring_setup fail with @err,
 * then the child reports what corio_loop_new and corio_strerror_setup say. */
static void seccomp_child(int err, int out)
{
    char msg[1024];
    int serr = t_refuse_uring(err);
    if (serr) {
        snprintf(msg, sizeof(msg), "seccomp setup failed: %s", strerror(-serr));
        _exit(write(out, msg, strlen(msg)) < 0 ? 3 : 2);
    }
    /* io_uring forced: its refusal is the result (the default would fall back to epoll). */
    struct corio_loop *l = NULL;
    struct corio_loop_opts o = {.backend = CORIO_BACKEND_IO_URING};
    int r = corio_loop_new(&l, &o);
    /* t_uring_unavailable prints its own line on stdout: keep it out of the pipe. */
    int n = snprintf(msg, sizeof(msg), "%d|%d|%s", r, l == NULL, corio_strerror_setup(r));
    ssize_t w = write(out, msg, (size_t)n);
    _exit(w == n ? 0 : 3);
}

static void check_refused(int err, const char *want)
{
    char buf[1024];
    t_fork_report(seccomp_child, err, buf, sizeof(buf));
    int r = 0, null_out = 0;
    assert_int_equal(sscanf(buf, "%d|%d|", &r, &null_out), 2);
    assert_int_equal(r, -err);
    assert_int_equal(null_out, 1);
    assert_non_null(strstr(buf, want));
}

static void test_loop_setup_refused(void **state)
{
    (void)state;
    if (t_on_valgrind()) {
        /* The forked child exits under valgrind, whose leak check then counts the parent's live
         * allocations (cmocka's) as the child's leaks and fails it; the normal and ASan builds
         * run this test. */
        print_message("skipped under valgrind: the forked child inherits the parent's heap\n");
        skip();
    }
    /* What a container's seccomp profile does: Docker's default answers EPERM, others ENOSYS. */
    check_refused(EPERM, "seccomp");
    check_refused(ENOSYS, "seccomp");
}

/* ---- setup fallbacks (the refuse hook) -------------------------------------------------------- */

static int basic_ops(void *arg)
{
    (void)arg;
    if (!T_EXPECT_EQ(corio_nop(), 0))
        return -1;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_sleep(t0 + CORIO_MS(2)), 0);
    T_EXPECT(corio_now() - t0 >= CORIO_MS(2) - CORIO_US(100));
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return -1;
    char out[64], in[64];
    t_fill(out, sizeof(out), 3, 0);
    memset(in, 0, sizeof(in)); /* valgrind does not see the kernel's writes through the ring */
    T_EXPECT_EQ(corio_write(p[1], out, sizeof(out), -1, T_BOUND), sizeof(out));
    T_EXPECT_EQ(corio_read(p[0], in, sizeof(in), -1, T_BOUND), sizeof(in));
    T_EXPECT_EQ(t_check(in, sizeof(in), 3, 0), -1);
    /* A wait that ends by its deadline, to exercise the timed idle wait. */
    T_EXPECT_EQ(corio_read(p[0], in, sizeof(in), -1, corio_now() + CORIO_MS(5)), -ETIMEDOUT);
    /* A read that parks first and is completed by another coroutine's write. */
    struct corio_future f;
    T_EXPECT_EQ(corio_read_start(&f, p[0], in, sizeof(in), -1, T_BOUND), 0);
    T_EXPECT_EQ(corio_write(p[1], out, 10, -1, T_BOUND), 10);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 10);
    T_EXPECT_EQ(corio_close(p[0]), 0);
    T_EXPECT_EQ(corio_close(p[1]), 0);
    return 0;
}

static void test_loop_refuse_each_setup_flag(void **state)
{
    (void)state;
    static const enum corio_feature flags[] = {
        CORIO_FEAT_SINGLE_ISSUER, CORIO_FEAT_DEFER_TASKRUN, CORIO_FEAT_COOP_TASKRUN,
        CORIO_FEAT_TASKRUN_FLAG,  CORIO_FEAT_SUBMIT_ALL,    CORIO_FEAT_CQSIZE,
        CORIO_FEAT_REG_RING_FD,
    };
    uint64_t all = 0;
    for (size_t i = 0; i <= sizeof(flags) / sizeof(flags[0]); i++) {
        uint64_t refuse;
        if (i < sizeof(flags) / sizeof(flags[0])) {
            refuse = 1ull << flags[i];
            all |= refuse;
        } else {
            refuse = all; /* every one at once */
        }
        struct corio_loop *l = t_mkloop_refusing(NULL, refuse);
        t_need_uring(l, true, "io_uring's setup flags");
        for (size_t j = 0; j < sizeof(flags) / sizeof(flags[0]); j++)
            if ((refuse & (1ull << flags[j])) && corio_loop_has(l, flags[j]))
                fail_msg("refused %s still reported", corio_feature_name(flags[j]));
        if (refuse == (1ull << CORIO_FEAT_DEFER_TASKRUN) && kernel_at_least(5, 19))
            assert_true(corio_loop_has(l, CORIO_FEAT_COOP_TASKRUN)); /* the step down */
        if (refuse == (1ull << CORIO_FEAT_SINGLE_ISSUER))
            assert_false(corio_loop_has(l, CORIO_FEAT_DEFER_TASKRUN)); /* needs single issuer */
        assert_int_equal(t_run1(l, basic_ops, NULL), 0);
        t_expect_ok();
        corio_loop_free(l);
    }
}

/* ---- one loop per thread ---------------------------------------------------------------------- */

enum { PP_PAIRS = 50, PP_ROUNDS = 100 };

struct pp_side {
    int fd;
    uint32_t base; /* distinguishes the pairs and the threads */
    int result;
};

static int pp_ping(void *arg)
{
    struct pp_side *s = arg;
    for (uint32_t i = 0; i < PP_ROUNDS; i++) {
        uint32_t v = s->base + i, back = 0;
        if (!T_EXPECT_EQ(corio_write(s->fd, &v, sizeof(v), -1, T_BOUND), sizeof(v)))
            return -1;
        if (!T_EXPECT_EQ(corio_read_all(s->fd, &back, sizeof(back), -1, NULL, T_BOUND),
                         sizeof(back)))
            return -2;
        if (!T_EXPECT_EQ(back, v + 1))
            return -3;
    }
    T_EXPECT_EQ(corio_close(s->fd), 0);
    return PP_ROUNDS;
}

static int pp_pong(void *arg)
{
    struct pp_side *s = arg;
    int n = 0;
    for (;;) {
        uint32_t v = 0;
        ssize_t r = corio_read_all(s->fd, &v, sizeof(v), -1, NULL, T_BOUND);
        if (r == 0)
            break; /* the ping side closed */
        if (!T_EXPECT_EQ(r, sizeof(v)) || !T_EXPECT_EQ(v, s->base + (uint32_t)n))
            return -1;
        v++;
        if (!T_EXPECT_EQ(corio_write(s->fd, &v, sizeof(v), -1, T_BOUND), sizeof(v)))
            return -2;
        n++;
    }
    T_EXPECT_EQ(corio_close(s->fd), 0);
    return n;
}

struct pp_thread {
    pthread_barrier_t *bar;
    uint32_t id;
    int err;       /* setup failure, or what corio_loop_run returned */
    int ok_pairs;  /* pairs whose both sides finished with PP_ROUNDS */
    uint64_t spawns;
};

static int pp_main(void *arg)
{
    struct pp_thread *t = arg;
    struct pp_side sides[PP_PAIRS][2];
    corio_id ids[PP_PAIRS][2];
    for (int i = 0; i < PP_PAIRS; i++) {
        int sv[2];
        if (!T_EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0))
            return -1;
        uint32_t base = (t->id << 24) | ((uint32_t)i << 12);
        sides[i][0] = (struct pp_side){.fd = sv[0], .base = base};
        sides[i][1] = (struct pp_side){.fd = sv[1], .base = base};
        T_EXPECT_EQ(corio_spawn(&ids[i][0], NULL, pp_ping, &sides[i][0]), 0);
        T_EXPECT_EQ(corio_spawn(&ids[i][1], NULL, pp_pong, &sides[i][1]), 0);
    }
    int ok = 0;
    for (int i = 0; i < PP_PAIRS; i++) {
        int r0 = -1, r1 = -1;
        T_EXPECT_EQ(corio_join(ids[i][0], &r0, T_BOUND), 0);
        T_EXPECT_EQ(corio_join(ids[i][1], &r1, T_BOUND), 0);
        if (r0 == PP_ROUNDS && r1 == PP_ROUNDS)
            ok++;
    }
    t->ok_pairs = ok;
    return ok;
}

static void *pp_thread_fn(void *arg)
{
    struct pp_thread *t = arg;
    struct corio_loop *l = NULL;
    t->err = corio_loop_new(&l, NULL);
    pthread_barrier_wait(t->bar); /* both loops exist: start together */
    if (t->err)
        return NULL;
    corio_id id;
    t->err = corio_spawn(&id, l, pp_main, t);
    if (!t->err)
        t->err = corio_loop_run(l);
    t->spawns = corio_loop_stats(l)->spawns;
    corio_loop_free(l);
    return NULL;
}

static void test_loop_threads_ping_pong(void **state)
{
    (void)state;
    pthread_barrier_t bar;
    assert_int_equal(pthread_barrier_init(&bar, NULL, 2), 0);
    struct pp_thread t[2] = {{.bar = &bar, .id = 1}, {.bar = &bar, .id = 2}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, pp_thread_fn, &t[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&bar);
    t_expect_ok();
    for (int i = 0; i < 2; i++) {
        assert_int_equal(t[i].err, 0);
        /* pp_main plus 2 per pair. */
        assert_int_equal(t[i].spawns, 1 + 2 * PP_PAIRS);
        assert_int_equal(t[i].ok_pairs, PP_PAIRS);
    }
}

/* corio_run: the function's own result when only what it left behind deadlocked; -EDEADLK when it
 * was caught itself. */
static int run_leaves_deadlock(void *arg)
{
    struct dl_ctx *c = arg;
    T_EXPECT_EQ(corio_spawn(&c->a, NULL, dl_a, c), 0);
    T_EXPECT_EQ(corio_spawn(&c->b, NULL, dl_b, c), 0);
    T_EXPECT_EQ(corio_detach(c->a), 0);
    T_EXPECT_EQ(corio_detach(c->b), 0);
    return 7;
}

static int run_caught_in_deadlock(void *arg)
{
    (void)arg;
    /* Waits for a value nobody will send: nothing can wake it. */
    struct corio_chan *ch;
    T_EXPECT_EQ(corio_chan_new(&ch, sizeof(int), 0), 0);
    int v;
    T_EXPECT_EQ(corio_chan_recv(ch, &v, CORIO_FOREVER), -ECANCELED); /* the deadlock's end */
    corio_chan_free(ch);
    return 7;
}

static void test_loop_run_deadlock_result(void **state)
{
    (void)state;
    struct dl_ctx c = {0};
    assert_int_equal(corio_run(run_leaves_deadlock, &c, NULL), 7);
    assert_int_equal(c.ended, 2); /* the pair was cancelled and ended */
    memset(&c, 0, sizeof(c));
    assert_int_equal(corio_run(run_caught_in_deadlock, &c, NULL), -EDEADLK);
    t_expect_ok();
}

/* ---- the batch wait's default follows the thread's CPUs --------------------------------------- */

struct batch_probe {
    int cpus;           /* CPUs the thread is let run on: 1, or every one the process has */
    unsigned asked;     /* batch_wait_us asked for */
    unsigned got;       /* what the loop took */
    int err;
};

static void *batch_probe_thread(void *p)
{
    struct batch_probe *b = p;
    cpu_set_t set;
    if (b->cpus == 1) {
        sched_getaffinity(0, sizeof(set), &set);
        int first = 0;
        while (!CPU_ISSET(first, &set))
            first++;
        CPU_ZERO(&set);
        CPU_SET(first, &set);
        b->err = sched_setaffinity(0, sizeof(set), &set);
        if (b->err)
            return NULL;
    }
    struct corio_loop_opts o = {.batch_wait_us = b->asked};
    struct corio_loop *l = NULL;
    b->err = corio_loop_new(&l, &o);
    if (b->err == 0) {
        b->got = l->opts.batch_wait_us;
        corio_loop_free(l);
    }
    return NULL;
}

static unsigned batch_wait_of(int cpus, unsigned asked)
{
    struct batch_probe b = {.cpus = cpus, .asked = asked};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, batch_probe_thread, &b), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(b.err, 0);
    return b.got;
}

static void test_loop_batch_wait_default(void **state)
{
    (void)state;
    /* Pinned: the loop's CPU is its own, and a batch wait costs nothing there. */
    assert_int_equal(batch_wait_of(1, 0), 50);
    /* Asked for: as asked, pinned or not. */
    assert_int_equal(batch_wait_of(1, CORIO_BATCH_WAIT_OFF), 0);
    assert_int_equal(batch_wait_of(1, 20), 20);
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    if (CPU_COUNT(&set) < 2) {
        print_message("SKIP: this process may run on one CPU only; the shared case needs two\n");
        skip();
    }
    /* On CPUs it shares: no batch wait unless asked for. */
    assert_int_equal(batch_wait_of(0, 0), 0);
    assert_int_equal(batch_wait_of(0, 20), 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_new_free),
        T_LOOP_TEST(test_loop_has_features),
        T_LOOP_TEST(test_loop_stats_move),
        T_LOOP_TEST(test_loop_batched_submission),
        T_LOOP_TEST(test_loop_single_coroutine_enters),
        T_LOOP_TEST(test_loop_run_other_thread_eperm),
        T_LOOP_TEST(test_loop_run_nested_ebusy),
        T_LOOP_TEST(test_loop_current),
        T_LOOP_TEST(test_loop_stop_cancels_sleepers),
        T_LOOP_TEST(test_loop_stop_before_run),
        T_LOOP_TEST(test_loop_deadlock_detected),
        T_GUARD_TEST(test_loop_run_deadlock_result),
        cmocka_unit_test(test_loop_free_with_live_coroutines),
        cmocka_unit_test(test_loop_strerror_setup),
        cmocka_unit_test(test_loop_setup_refused),
        cmocka_unit_test(test_loop_refuse_each_setup_flag),
        cmocka_unit_test(test_loop_threads_ping_pong),
        cmocka_unit_test(test_loop_batch_wait_default),
    };
    return T_RUN_TESTS(tests);
}
