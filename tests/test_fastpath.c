/* The fast path, ring side: CQ overflow with a tiny CQ and no lost or doubled completion, setup
 * fallbacks the per-flag test in test_loop.c does not cover (both TASKRUN modes refused,
 * everything refused), SQPOLL with its wake-up after idle, and zero-copy send with its buffer held
 * until the notification. Buffer rings, receivers and registered buffers are tested in
 * test_buf.c; multishot accept and fixed files in test_acceptor.c.
 *
 * Each test makes its own loop, since most need options. Every wait has a bound (T_BOUND) and a
 * watchdog ends the process if a test hangs anyway: a broken wake-up fails instead of hanging. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- fixtures -------------------------------------------------------------------------------- */

/* Every test runs under T_GUARD_TEST (helpers.h): a watchdog against hangs and the fd-leak check.
 * A test makes its loop with t_mkloop. */

static uint64_t all_refuse_bits(void)
{
    return ~0ull; /* every bit, the setup flags' and REG_RING_FD's among them */
}

/* ---- a workload that touches every kind of op: nops, sleeps, pipes, a TCP echo --------------- */

static int echo_server(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[512];
    ssize_t n;
    while ((n = corio_recv(fd, buf, sizeof(buf), 0, T_BOUND)) > 0)
        if (!T_EXPECT_EQ(corio_send_all(fd, buf, (size_t)n, NULL, T_BOUND), n))
            break;
    T_EXPECT_EQ(n, 0);
    T_EXPECT_EQ(corio_close(fd), 0);
    return 0;
}

/* A TCP echo of @rounds messages of @len bytes through listen/accept/dial on loopback. */
static void tcp_echo(int rounds, size_t len)
{
    int lfd = corio_listen_tcp("127.0.0.1", 0, 16, 0);
    if (!T_EXPECT(lfd >= 0))
        return;
    int port = corio_local_port(lfd);
    struct corio_future fa;
    T_EXPECT_EQ(corio_accept_start(&fa, lfd, NULL, NULL, 0, T_BOUND), 0);
    int c = corio_dial_tcp("127.0.0.1", (uint16_t)port, T_BOUND);
    int s = (int)corio_await(&fa, CORIO_FOREVER);
    T_EXPECT(c >= 0);
    T_EXPECT(s >= 0);
    corio_id srv = 0;
    if (c >= 0 && s >= 0) {
        T_EXPECT_EQ(corio_spawn(&srv, NULL, echo_server, (void *)(intptr_t)s), 0);
        char out[1024], in[1024];
        for (int i = 0; i < rounds && len <= sizeof(out); i++) {
            t_fill(out, len, 40, (uint64_t)i * len);
            memset(in, 0, len);
            if (!T_EXPECT_EQ(corio_send_all(c, out, len, NULL, T_BOUND), len))
                break;
            if (!T_EXPECT_EQ(corio_recv_all(c, in, len, NULL, T_BOUND), len))
                break;
            T_EXPECT_EQ(t_check(in, len, 40, (uint64_t)i * len), -1);
        }
        T_EXPECT_EQ(corio_shutdown(c, SHUT_WR), 0);
        T_EXPECT_EQ(corio_recv(c, in, sizeof(in), 0, T_BOUND), 0);
        int res = -1;
        T_EXPECT_EQ(corio_join(srv, &res, T_BOUND), 0);
        T_EXPECT_EQ(res, 0);
    } else if (s >= 0) {
        corio_close(s);
    }
    if (c >= 0)
        T_EXPECT_EQ(corio_close(c), 0);
    T_EXPECT_EQ(corio_close(lfd), 0);
}

static int workload(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        if (!T_EXPECT_EQ(corio_nop(), 0))
            break;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_sleep(t0 + CORIO_MS(2)), 0);
    T_EXPECT(corio_now() - t0 >= CORIO_MS(2) - CORIO_US(200));
    int p[2];
    if (T_EXPECT_EQ(t_pipe(p, 0), 0)) {
        char out[100], in[100];
        t_fill(out, sizeof(out), 41, 0);
        memset(in, 0, sizeof(in));
        struct corio_future fr;
        /* The read parks first and the write completes it: a poll-driven completion. */
        T_EXPECT_EQ(corio_read_start(&fr, p[0], in, sizeof(in), -1, T_BOUND), 0);
        T_EXPECT_EQ(corio_write(p[1], out, sizeof(out), -1, T_BOUND), sizeof(out));
        T_EXPECT_EQ(corio_await(&fr, CORIO_FOREVER), sizeof(in));
        T_EXPECT_EQ(t_check(in, sizeof(in), 41, 0), -1);
        /* A wait that ends by its deadline. */
        T_EXPECT_EQ(corio_read(p[0], in, sizeof(in), -1, corio_now() + CORIO_MS(5)), -ETIMEDOUT);
        T_EXPECT_EQ(corio_close(p[0]), 0);
        T_EXPECT_EQ(corio_close(p[1]), 0);
    }
    tcp_echo(32, 200);
    return 0;
}

/* ---- CQ overflow with a tiny CQ: no completion lost, none delivered twice -------------------- */

/* 2,000 coroutines on a loop with an 8-entry SQ and a 16-entry CQ. Each starts a burst of nops (the
 * whole burst of all of them completes inside the submissions that flush the SQ, so the CQ
 * overflows at once), then all sleep to one shared deadline (2,000 timeouts fire together), then
 * each does a pipe round trip with deadlines (linked timeouts: two CQEs per op) and closes. Each
 * checks its own results and counts the CQEs it caused; the loop's CQE counter must match the sum
 * exactly, so a lost CQE and a doubled one both show. */
enum { OV_COROS = 2000, OV_BURST = 4 };

struct ov {
    struct corio_event go;  /* set when every coroutine has done its burst */
    unsigned arrived;       /* coroutines past their burst */
    int64_t wake_at;        /* the shared sleep deadline */
    uint64_t cqes_expected; /* CQEs the coroutines' ops must have produced */
    unsigned results_ok;    /* op results that were right */
    unsigned finished;      /* coroutines that reached their end */
};

static int ov_body(void *arg)
{
    struct ov *c = arg;
    uint32_t me = (uint32_t)corio_self();
    /* A burst of nops started together. */
    struct corio_future f[OV_BURST], *fp[OV_BURST];
    for (int i = 0; i < OV_BURST; i++) {
        fp[i] = &f[i];
        if (T_EXPECT_EQ(corio_nop_start(&f[i]), 0))
            c->cqes_expected++;
    }
    T_EXPECT_EQ(corio_await_all(fp, OV_BURST, T_BOUND), 0);
    for (int i = 0; i < OV_BURST; i++)
        c->results_ok += T_EXPECT_EQ(corio_future_result(&f[i]), 0);
    /* Everyone sleeps to the same deadline, set once the last burst is done. */
    if (++c->arrived == OV_COROS) {
        c->wake_at = corio_now() + CORIO_MS(20) * t_slowdown();
        corio_event_set(&c->go);
    } else {
        T_EXPECT_EQ(corio_event_wait(&c->go, T_BOUND), 0);
    }
    struct corio_future fs;
    T_EXPECT_EQ(corio_sleep_start(&fs, c->wake_at), 0);
    if (!corio_future_done(&fs))
        c->cqes_expected++; /* a deadline already past completes without an SQE */
    c->results_ok += T_EXPECT_EQ(corio_await(&fs, CORIO_FOREVER), 0);
    /* A pipe round trip: the read parks first; both carry a deadline (a linked timeout each). */
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return -1;
    uint32_t in = 0;
    struct corio_future fr;
    T_EXPECT_EQ(corio_read_start(&fr, p[0], &in, sizeof(in), -1, T_BOUND), 0);
    c->results_ok += T_EXPECT_EQ(corio_write(p[1], &me, sizeof(me), -1, T_BOUND), sizeof(me));
    c->results_ok += T_EXPECT_EQ(corio_await(&fr, CORIO_FOREVER), sizeof(in));
    c->cqes_expected += 4;
    T_EXPECT_EQ(in, me);
    c->results_ok += T_EXPECT_EQ(corio_nop(), 0);
    c->results_ok += T_EXPECT_EQ(corio_close(p[0]), 0);
    c->results_ok += T_EXPECT_EQ(corio_close(p[1]), 0);
    c->cqes_expected += 3;
    c->finished++;
    return 0;
}

#define OV_RESULTS_EACH (OV_BURST + 1 + 2 + 1 + 2)

static int ov_main(void *arg)
{
    for (int i = 0; i < OV_COROS; i++)
        if (!T_EXPECT_EQ(corio_spawn(NULL, NULL, ov_body, arg), 0))
            return -1;
    return 0;
}

static void cq_overflow(uint64_t refuse)
{
    struct corio_loop_opts o = {.sq_entries = 8, .cq_entries = 16};
    struct corio_loop *l = t_mkloop_refusing(&o, refuse);
    t_need_uring(l, true, "CQ overflow");
    struct ov *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    const struct corio_stats *s = corio_loop_stats(l);
    uint64_t cqes0 = s->cqes;
    int64_t t0 = corio_now();
    assert_int_equal(t_run1(l, ov_main, c), 0);
    double ms = t_ms_since(t0);
    t_expect_ok();
    uint64_t cqes = s->cqes - cqes0;
    print_message("  refuse=%#llx defer=%d coop=%d cqsize=%d: %u coroutines in %.0f ms, cqes=%llu "
                  "(expected %llu) sqes=%llu enters=%llu cq_overflows=%llu\n",
                  (unsigned long long)refuse, corio_loop_has(l, CORIO_FEAT_DEFER_TASKRUN),
                  corio_loop_has(l, CORIO_FEAT_COOP_TASKRUN), corio_loop_has(l, CORIO_FEAT_CQSIZE),
                  c->finished, ms, (unsigned long long)cqes, (unsigned long long)c->cqes_expected,
                  (unsigned long long)s->sqes, (unsigned long long)s->enters,
                  (unsigned long long)s->cq_overflows);
    assert_int_equal(c->finished, OV_COROS);
    assert_int_equal(c->results_ok, OV_COROS * OV_RESULTS_EACH);
    /* Without EXT_ARG the idle wait adds timeout SQEs of its own; every kernel corio targets
     * has it, but do not fail there for the wrong reason. */
    if (corio_loop_has(l, CORIO_FEAT_EXT_ARG))
        assert_int_equal(cqes, c->cqes_expected);
    else
        assert_true(cqes >= c->cqes_expected);
    assert_true(s->cq_overflows > 0);
    free(c);
    corio_loop_free(l);
}

/* The best setup the kernel takes (DEFER_TASKRUN on 6.1+). */
static void test_fastpath_cq_overflow_default(void **state)
{
    (void)state;
    cq_overflow(0);
}

/* COOP_TASKRUN with TASKRUN_FLAG: completions come as task work the kernel flags. */
static void test_fastpath_cq_overflow_coop_taskrun(void **state)
{
    (void)state;
    cq_overflow(1ull << CORIO_FEAT_DEFER_TASKRUN);
}

/* No setup flag at all: the kernel sizes the CQ itself (2 x SQ = 16). */
static void test_fastpath_cq_overflow_plain_setup(void **state)
{
    (void)state;
    cq_overflow(all_refuse_bits());
}

/* The CQ sizes the kernel accepts with CQSIZE: at least the SQ's. A CQ asked smaller than the SQ
 * must not cost the loop its other setup flags. */
static void test_fastpath_cq_size_limits(void **state)
{
    (void)state;
    static const struct {
        unsigned sq, cq;
    } cases[] = {{8, 16}, {8, 8}, {8, 4}, {1, 1}, {256, 256}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct corio_loop_opts o = {.sq_entries = cases[i].sq, .cq_entries = cases[i].cq};
        struct corio_loop *l = t_mkloop(&o);
        t_need_uring(l, true, "ring sizes");
        print_message("  sq=%u cq=%u: cqsize=%d defer_taskrun=%d single_issuer=%d submit_all=%d\n",
                      cases[i].sq, cases[i].cq, corio_loop_has(l, CORIO_FEAT_CQSIZE),
                      corio_loop_has(l, CORIO_FEAT_DEFER_TASKRUN),
                      corio_loop_has(l, CORIO_FEAT_SINGLE_ISSUER),
                      corio_loop_has(l, CORIO_FEAT_SUBMIT_ALL));
        assert_true(corio_loop_has(l, CORIO_FEAT_CQSIZE));
        assert_true(corio_loop_has(l, CORIO_FEAT_SINGLE_ISSUER));
        assert_true(corio_loop_has(l, CORIO_FEAT_SUBMIT_ALL));
        assert_int_equal(t_run1(l, workload, NULL), 0);
        t_expect_ok();
        corio_loop_free(l);
    }
}

/* ---- setup fallbacks not covered by test_loop.c ---------------------------------------------- */

static const enum corio_feature setup_feats[] = {
    CORIO_FEAT_SINGLE_ISSUER, CORIO_FEAT_DEFER_TASKRUN, CORIO_FEAT_COOP_TASKRUN,
    CORIO_FEAT_TASKRUN_FLAG,  CORIO_FEAT_SUBMIT_ALL,    CORIO_FEAT_SQPOLL,
    CORIO_FEAT_CQSIZE,        CORIO_FEAT_REG_RING_FD,
};

/* Both task-run modes refused: completions run as ordinary task work, signalled by the kernel;
 * the other flags stay. */
static void test_fastpath_refuse_both_taskrun_modes(void **state)
{
    (void)state;
    struct corio_loop_opts o = {0};
    struct corio_loop *l = t_mkloop_refusing(
        &o, (1ull << CORIO_FEAT_DEFER_TASKRUN) | (1ull << CORIO_FEAT_COOP_TASKRUN));
    t_need_uring(l, true, "the task-run setup flags");
    assert_false(corio_loop_has(l, CORIO_FEAT_DEFER_TASKRUN));
    assert_false(corio_loop_has(l, CORIO_FEAT_COOP_TASKRUN));
    assert_false(corio_loop_has(l, CORIO_FEAT_TASKRUN_FLAG)); /* only exists with a mode */
    assert_true(corio_loop_has(l, CORIO_FEAT_SINGLE_ISSUER));
    assert_true(corio_loop_has(l, CORIO_FEAT_CQSIZE));
    assert_int_equal(t_run1(l, workload, NULL), 0);
    t_expect_ok();
    corio_loop_free(l);
}

/* Every refuse bit at once, SQPOLL asked for too: the plain io_uring_setup, and the loop works. */
static void test_fastpath_refuse_everything(void **state)
{
    (void)state;
    for (int sqpoll = 0; sqpoll <= 1; sqpoll++) {
        struct corio_loop_opts o = {.flags = sqpoll ? CORIO_LOOP_SQPOLL : 0,
                                    .sqpoll_idle_ms = 10};
        struct corio_loop *l = t_mkloop_refusing(&o, all_refuse_bits());
        t_need_uring(l, true, "io_uring's setup flags");
        for (size_t i = 0; i < sizeof(setup_feats) / sizeof(setup_feats[0]); i++)
            if (corio_loop_has(l, setup_feats[i]))
                fail_msg("refused %s still reported", corio_feature_name(setup_feats[i]));
        assert_true(corio_loop_has(l, CORIO_FEAT_NOP)); /* the opcode probe still ran */
        assert_int_equal(t_run1(l, workload, NULL), 0);
        t_expect_ok();
        corio_loop_free(l);
    }
}

/* ---- SQPOLL ---------------------------------------------------------------------------------- */

enum { SQ_COROS = 64, SQ_NOPS = 100, SQ_SPIN_NOPS = 500, SQ_SLEEPS = 20 };

static int sq_nops(void *arg)
{
    unsigned *ok = arg;
    for (int i = 0; i < SQ_NOPS; i++)
        *ok += T_EXPECT_EQ(corio_nop(), 0);
    return 0;
}

/* Starts a nop and yields until it is done, so the loop never waits in the kernel: with the poller
 * awake no io_uring_enter is needed at all; with it asleep only the wake-up. Returns false if the
 * nop did not complete within the bound (the poller was never woken). */
static bool nop_by_spinning(void)
{
    struct corio_future f;
    if (!T_EXPECT_EQ(corio_nop_start(&f), 0))
        return false;
    int64_t end = corio_now() + CORIO_SEC(5) * t_slowdown();
    while (!corio_future_done(&f) && corio_now() < end)
        corio_yield();
    bool done = corio_future_done(&f);
    T_EXPECT(done);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 0); /* hangs (watchdog) only if the engine never woke it */
    return done;
}

struct sq_figures {
    double batch_enters_per_op; /* 64 coroutines x 100 nops, awaited */
    uint64_t awake_enters;      /* SQ_SPIN_NOPS spun nops with the poller awake */
    uint64_t awake_sqes;
    uint64_t wake_enters; /* one spun nop after 100 ms idle */
    uint64_t sleep_enters; /* SQ_SLEEPS kernel timeouts of 300 us, awaited one by one */
};

static int sq_main(void *arg)
{
    struct sq_figures *fig = arg;
    const struct corio_stats *s = corio_loop_stats(corio_loop_current());
    workload(NULL);
    /* Many coroutines with ops in flight: one enter waits for many completions. */
    unsigned ok = 0;
    corio_id ids[SQ_COROS];
    uint64_t e0 = s->enters;
    for (int i = 0; i < SQ_COROS; i++)
        T_EXPECT_EQ(corio_spawn(&ids[i], NULL, sq_nops, &ok), 0);
    for (int i = 0; i < SQ_COROS; i++)
        T_EXPECT_EQ(corio_join(ids[i], NULL, T_BOUND), 0);
    T_EXPECT_EQ(ok, SQ_COROS * SQ_NOPS);
    fig->batch_enters_per_op = (double)(s->enters - e0) / (SQ_COROS * SQ_NOPS);
    /* The poller is awake (it just worked): submissions need no system call at all. */
    e0 = s->enters;
    uint64_t q0 = s->sqes;
    for (int i = 0; i < SQ_SPIN_NOPS; i++)
        if (!nop_by_spinning())
            break;
    fig->awake_enters = s->enters - e0;
    fig->awake_sqes = s->sqes - q0;
    /* Ops that take longer than a bounded spin (kernel timeouts, 300 us): awaiting them needs
     * an enter each unless the loop spins for as long as the poller is awake. */
    e0 = s->enters;
    for (int i = 0; i < SQ_SLEEPS; i++)
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_US(300)), 0);
    fig->sleep_enters = s->enters - e0;
    /* Idle for 100 ms: the poller (idle time 10 ms) goes to sleep and sets NEED_WAKEUP. The wait
     * ends by the loop's own timer, not a kernel timeout: the timeout's task work would run on
     * the poller's thread and wake it, and the wake-up path would go untested. */
    struct corio_event never = CORIO_EVENT_INIT;
    T_EXPECT_EQ(corio_event_wait(&never, corio_now() + CORIO_MS(100)), -ETIMEDOUT);
    e0 = s->enters;
    nop_by_spinning();
    fig->wake_enters = s->enters - e0;
    /* And everything works again after the wake-up. */
    workload(NULL);
    return 0;
}

/* A loop with @o (CORIO_LOOP_SQPOLL set in it); skips the test, saying why, if the kernel
 * refused SQPOLL. */
static struct corio_loop *sqpoll_loop(struct corio_loop_opts *o)
{
    struct corio_loop *l = t_mkloop(o);
    t_need_uring(l, true, "SQPOLL");
    if (!corio_loop_has(l, CORIO_FEAT_SQPOLL)) {
        corio_loop_free(l);
        print_message("SKIP: the kernel refused IORING_SETUP_SQPOLL (the loop fell back)\n");
        skip();
    }
    return l;
}

/* Runs sq_main on an SQPOLL loop whose poller sleeps after 10 ms idle. */
static void sqpoll_run(unsigned spin_us, struct sq_figures *fig)
{
    struct corio_loop_opts o = {
        .flags = CORIO_LOOP_SQPOLL, .sqpoll_idle_ms = 10, .sqpoll_spin_us = spin_us};
    struct corio_loop *l = sqpoll_loop(&o);
    assert_false(corio_loop_has(l, CORIO_FEAT_DEFER_TASKRUN)); /* the two exclude each other */
    memset(fig, 0, sizeof(*fig));
    assert_int_equal(t_run1(l, sq_main, fig), 0);
    t_expect_ok();
    const struct corio_stats *s = corio_loop_stats(l);
    print_message("  SQPOLL, spin %s: %d x %d awaited nops: %.4f enters/op; %d spun nops with the "
                  "poller awake: %llu enters, %llu sqes; %d awaited 300 us sleeps: %llu enters; "
                  "after 100 ms idle: %llu enter(s) to wake it; total sqes=%llu enters=%llu\n",
                  spin_us ? "bounded" : "while the poller is awake", SQ_COROS, SQ_NOPS,
                  fig->batch_enters_per_op, SQ_SPIN_NOPS, (unsigned long long)fig->awake_enters,
                  (unsigned long long)fig->awake_sqes, SQ_SLEEPS,
                  (unsigned long long)fig->sleep_enters, (unsigned long long)fig->wake_enters,
                  (unsigned long long)s->sqes, (unsigned long long)s->enters);
    corio_loop_free(l);
    /* Both modes: submissions to an awake poller need no system call; the sleeping poller had
     * to be woken with an enter (the NEED_WAKEUP path), once per batch of SQEs, not once per
     * loop iteration until the poller gets a CPU. */
    assert_true(fig->awake_sqes >= SQ_SPIN_NOPS);
    assert_true(fig->awake_enters <= SQ_SPIN_NOPS / 10);
    assert_true(fig->wake_enters >= 1);
    assert_true(fig->wake_enters <= 3);
}

/* Default: the idle loop spins on the CQ for as long as the poller is awake, so awaiting costs
 * no enter either. Only a poller that went to sleep (10 ms without work, possible if a loaded
 * machine deschedules the loop that long) needs one: a bound of 1 per 100 ops, where waiting in
 * the kernel would take about 1 per op. */
static void test_fastpath_sqpoll_wakeup(void **state)
{
    (void)state;
    struct sq_figures fig;
    sqpoll_run(0, &fig);
    assert_true(fig.batch_enters_per_op < 0.01);
    assert_true(fig.sleep_enters <= SQ_SLEEPS / 4);
}

static int sq_timer_body(void *arg)
{
    double *ms = arg;
    struct corio_event never = CORIO_EVENT_INIT;
    for (int i = 0; i < 10; i++) /* work for the poller: it is awake now */
        T_EXPECT_EQ(corio_nop(), 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_event_wait(&never, t0 + CORIO_MS(100)), -ETIMEDOUT);
    *ms = t_ms_since(t0);
    return 0;
}

/* A loop timer (a wait's deadline) while the poller stays awake (idle time 1 s): the loop spins
 * until the deadline and must not then sleep in the kernel for the whole timeout again. */
static void test_fastpath_sqpoll_timer_on_time(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.flags = CORIO_LOOP_SQPOLL};
    struct corio_loop *l = sqpoll_loop(&o);
    double ms = 0;
    assert_int_equal(t_run1(l, sq_timer_body, &ms), 0);
    corio_loop_free(l);
    t_expect_ok();
    print_message("  a 100 ms deadline with the poller awake ended after %.1f ms\n", ms);
    assert_true(ms >= 99.0);
    assert_true(ms < 170.0 * t_slowdown());
}

/* A bounded spin (20 us): the loop then sleeps in io_uring_enter to wait for what takes longer
 * (the sleeps), and everything still works, wake-ups included. Loose bound on the nops: one
 * enter waits for many completions. */
static void test_fastpath_sqpoll_bounded_spin(void **state)
{
    (void)state;
    struct sq_figures fig;
    sqpoll_run(20, &fig);
    assert_true(fig.batch_enters_per_op < 0.5);
    assert_true(fig.sleep_enters >= SQ_SLEEPS / 2);
}

/* ---- zero-copy send -------------------------------------------------------------------------- */

static void need_send_zc(struct corio_loop *l)
{
    t_need_uring(l, true, "zero-copy send (epoll sends plainly)");
    if (!corio_loop_has(l, CORIO_FEAT_SEND_ZC)) {
        corio_loop_free(l);
        print_message("SKIP: the kernel lacks IORING_OP_SEND_ZC\n");
        skip();
    }
}

enum { ZC_LEN = 1 << 20, ZC_CHUNK = 16384 };

struct zc_slow {
    int sv[2];             /* sv[1] sends, sv[0] reads slowly */
    unsigned char *out;    /* what is sent, overwritten once the sends have returned */
    unsigned char *in;     /* what the reader got */
    bool overwritten;      /* out was overwritten */
    size_t read_after;     /* bytes the reader took after the overwrite */
    int pending_at_return; /* bytes unread by the peer when the last send returned */
    unsigned sends;        /* corio_send_zc calls it took */
};

static int zc_slow_reader(void *arg)
{
    struct zc_slow *c = arg;
    size_t got = 0;
    while (got < ZC_LEN) {
        ssize_t n = corio_recv(c->sv[0], c->in + got, ZC_CHUNK, 0, T_BOUND);
        if (!T_EXPECT(n > 0))
            break;
        got += (size_t)n;
        if (c->overwritten)
            c->read_after += (size_t)n;
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_US(500)), 0);
    }
    T_EXPECT_EQ(got, ZC_LEN);
    T_EXPECT_EQ(corio_recv(c->sv[0], c->in, 1, 0, T_BOUND), 0);
    T_EXPECT_EQ(t_check(c->in, ZC_LEN, 61, 0), -1);
    return 0;
}

static int zc_slow_main(void *arg)
{
    struct zc_slow *c = arg;
    corio_id rd;
    T_EXPECT_EQ(corio_spawn(&rd, NULL, zc_slow_reader, c), 0);
    size_t sent = 0;
    while (sent < ZC_LEN) {
        ssize_t r = corio_send_zc(c->sv[1], c->out + sent, ZC_LEN - sent, 0, T_BOUND);
        if (!T_EXPECT(r > 0))
            break;
        sent += (size_t)r;
        c->sends++;
    }
    /* Every send has returned, so the kernel holds no reference to out: overwriting it must not
     * change what the reader still has to get. */
    c->pending_at_return = t_readable(c->sv[0]);
    memset(c->out, 0xa5, ZC_LEN);
    c->overwritten = true;
    T_EXPECT_EQ(corio_shutdown(c->sv[1], SHUT_WR), 0);
    T_EXPECT_EQ(corio_join(rd, NULL, T_BOUND), 0);
    return 0;
}

static void test_fastpath_send_zc_buffer_held(void **state)
{
    (void)state;
    struct corio_loop *l = t_mkloop(NULL);
    need_send_zc(l);
    struct zc_slow c;
    memset(&c, 0, sizeof(c));
    c.out = malloc(ZC_LEN);
    c.in = calloc(1, ZC_LEN);
    assert_non_null(c.out);
    assert_non_null(c.in);
    t_fill(c.out, ZC_LEN, 61, 0);
    assert_int_equal(t_tcp_pair(c.sv), 0);
    uint64_t cqes0 = corio_loop_stats(l)->cqes;
    assert_int_equal(t_run1(l, zc_slow_main, &c), 0);
    print_message("  1 MiB in %u send_zc call(s); %d bytes still unread by the peer when the last "
                  "returned, %zu read after the buffer was overwritten; cqes=%llu\n",
                  c.sends, c.pending_at_return, c.read_after,
                  (unsigned long long)(corio_loop_stats(l)->cqes - cqes0));
    close(c.sv[0]);
    close(c.sv[1]);
    free(c.out);
    free(c.in);
    corio_loop_free(l);
    t_expect_ok();
    /* The peer still had bytes to read when out was overwritten, and they were the original
     * ones (checked by the reader): otherwise the test would have proved nothing. */
    assert_true(c.read_after > 0);
}

/* With zc_threshold, corio_send, corio_send_start and corio_send_all go zero-copy from that size:
 * each such send costs one more CQE (the notification) and returns only after it. Every send here
 * has a deadline, whose linked timeout adds one CQE (LINK) to each. */
#define LINK 1
struct zc_thr {
    int sv[2];
    int cqes_per_zc; /* 2 with the threshold, 1 without */
    size_t total;    /* bytes sent */
};

static int zc_thr_body(void *arg)
{
    struct zc_thr *c = arg;
    const struct corio_stats *s = corio_loop_stats(corio_loop_current());
    static unsigned char out[16384];
    t_fill(out, sizeof(out), 62, 0);
    /* Room for everything in the socket buffers, so that each call is one send. */
    int big = 1 << 20;
    T_EXPECT_EQ(setsockopt(c->sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)), 0);
    uint64_t q = s->cqes;
    T_EXPECT_EQ(corio_send(c->sv[1], out, 8192, 0, T_BOUND), 8192);
    T_EXPECT_EQ(s->cqes - q, c->cqes_per_zc + LINK);
    q = s->cqes;
    T_EXPECT_EQ(corio_send(c->sv[1], out + 8192, 100, 0, T_BOUND), 100); /* below: plain */
    T_EXPECT_EQ(s->cqes - q, 1 + LINK);
    q = s->cqes;
    struct corio_future f;
    T_EXPECT_EQ(corio_send_start(&f, c->sv[1], out + 8292, 4096, 0, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 4096);
    T_EXPECT_EQ(s->cqes - q, c->cqes_per_zc + LINK);
    q = s->cqes;
    size_t done = 0;
    T_EXPECT_EQ(corio_send_all(c->sv[1], out + 12388, 3996, &done, T_BOUND), 3996);
    T_EXPECT_EQ(done, 3996);
    T_EXPECT_EQ(s->cqes - q, 1 + LINK); /* 3,996 < 4,096: plain */
    q = s->cqes;
    t_fill(out, sizeof(out), 62, 16384);
    T_EXPECT_EQ(corio_send_all(c->sv[1], out, sizeof(out), &done, T_BOUND), sizeof(out));
    T_EXPECT_EQ(s->cqes - q, c->cqes_per_zc + LINK);
    c->total = 2 * sizeof(out);
    return 0;
}

static void zc_threshold(size_t threshold, int cqes_per_zc)
{
    struct corio_loop_opts o = {.zc_threshold = threshold};
    struct corio_loop *l = t_mkloop(&o);
    need_send_zc(l);
    struct zc_thr c = {.cqes_per_zc = cqes_per_zc};
    assert_int_equal(t_tcp_pair(c.sv), 0);
    assert_int_equal(t_run1(l, zc_thr_body, &c), 0);
    /* The peer got every byte, in order. */
    static unsigned char in[32768];
    memset(in, 0, sizeof(in));
    size_t got = 0;
    while (got < c.total) {
        ssize_t n = recv(c.sv[0], in + got, c.total - got, MSG_DONTWAIT);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    assert_int_equal(got, c.total);
    assert_int_equal(t_check(in, c.total, 62, 0), -1);
    close(c.sv[0]);
    close(c.sv[1]);
    corio_loop_free(l);
    t_expect_ok();
}

static void test_fastpath_send_zc_threshold(void **state)
{
    (void)state;
    zc_threshold(4096, 2);
}

/* The control: without a threshold every send is a plain one, one CQE. */
static void test_fastpath_send_zc_threshold_off(void **state)
{
    (void)state;
    zc_threshold(0, 1);
}

/* A socket the kernel cannot send zero-copy on (AF_UNIX): corio_send_zc fails with the kernel's
 * -EOPNOTSUPP, and its notification still comes and is consumed (nothing left in flight). With
 * zc_threshold set, corio_send and corio_send_all on such a socket must still send (plain). */
static int zc_unix_body(void *arg)
{
    int *sv = arg;
    const struct corio_stats *s = corio_loop_stats(corio_loop_current());
    char out[8192];
    t_fill(out, sizeof(out), 63, 0);
    uint64_t q = s->cqes;
    T_EXPECT_EQ(corio_send_zc(sv[1], out, sizeof(out), 0, T_BOUND), -EOPNOTSUPP);
    /* The failed result carries F_MORE, the notification follows, and the linked timeout. */
    T_EXPECT_EQ(s->cqes - q, 2 + LINK);
    T_EXPECT_EQ(corio_send(sv[1], out, sizeof(out), 0, T_BOUND), sizeof(out));
    T_EXPECT_EQ(corio_send_all(sv[1], out, sizeof(out), NULL, T_BOUND), sizeof(out));
    return 0;
}

static void test_fastpath_send_zc_unsupported_socket(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.zc_threshold = 1024};
    struct corio_loop *l = t_mkloop(&o);
    need_send_zc(l);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(t_run1(l, zc_unix_body, sv), 0);
    char in[16384];
    ssize_t got = recv(sv[0], in, sizeof(in), MSG_DONTWAIT | MSG_WAITALL);
    close(sv[0]);
    close(sv[1]);
    corio_loop_free(l);
    t_expect_ok();
    assert_int_equal(got, sizeof(in));
    assert_int_equal(t_check(in, 8192, 63, 0), -1);
    assert_int_equal(t_check(in + 8192, 8192, 63, 0), -1);
}

/* Whether a kernel SQPOLL poller thread of this process (a task whose comm starts with iou-sqp) may
 * run on exactly @cpus ("Cpus_allowed_list"); *@seen counts the poller threads looked at. Pollers
 * of loops freed a moment ago may still be there, so any of them matching is enough. */
static bool sqpoll_on(const char *cpus, int *seen)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return false;
    bool match = false;
    struct dirent *e;
    while (!match && (e = readdir(d))) {
        char path[300], line[256], list[64];
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        bool sqp = fgets(line, sizeof(line), f) && strncmp(line, "iou-sqp", 7) == 0;
        fclose(f);
        if (!sqp)
            continue;
        (*seen)++;
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
        if (!(f = fopen(path, "re")))
            continue;
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "Cpus_allowed_list: %63s", list) == 1 && strcmp(list, cpus) == 0)
                match = true;
        fclose(f);
    }
    closedir(d);
    return match;
}

/* CORIO_LOOP_SQPOLL_PIN pins the poller to sqpoll_cpu (a plain CPU number; CPU 0 is one). */
static void test_fastpath_sqpoll_pin(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.flags = CORIO_LOOP_SQPOLL | CORIO_LOOP_SQPOLL_PIN,
                                .sqpoll_cpu = 0,
                                .sqpoll_idle_ms = 10};
    struct corio_loop *l = sqpoll_loop(&o);
    assert_int_equal(t_run1(l, workload, NULL), 0);
    t_expect_ok();
    int seen = 0;
    bool pinned = sqpoll_on("0", &seen);
    corio_loop_free(l);
    if (seen == 0) {
        print_message("SKIP: no iou-sqp thread found in /proc/self/task\n");
        skip();
    }
    assert_true(pinned);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_fastpath_cq_overflow_default),
        T_GUARD_TEST(test_fastpath_cq_overflow_coop_taskrun),
        T_GUARD_TEST(test_fastpath_cq_overflow_plain_setup),
        T_GUARD_TEST(test_fastpath_cq_size_limits),
        T_GUARD_TEST(test_fastpath_refuse_both_taskrun_modes),
        T_GUARD_TEST(test_fastpath_refuse_everything),
        T_GUARD_TEST(test_fastpath_sqpoll_wakeup),
        T_GUARD_TEST(test_fastpath_sqpoll_bounded_spin),
        T_GUARD_TEST(test_fastpath_sqpoll_timer_on_time),
        T_GUARD_TEST(test_fastpath_sqpoll_pin),
        T_GUARD_TEST(test_fastpath_send_zc_buffer_held),
        T_GUARD_TEST(test_fastpath_send_zc_threshold),
        T_GUARD_TEST(test_fastpath_send_zc_threshold_off),
        T_GUARD_TEST(test_fastpath_send_zc_unsupported_socket),
    };
    return T_RUN_TESTS(tests);
}
