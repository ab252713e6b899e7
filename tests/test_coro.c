/* Coroutines: spawn, join, detach, cancel, yield, handles, lifetimes at scale, calls made outside
 * a coroutine, stack overflow, and the context switch's ABI (FP control state, stack alignment). */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop.h" /* white box: the stack pool's counters */

static int ret_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

/* ---- spawn and join ---------------------------------------------------------------------------- */

static int join_basic(void *arg)
{
    (void)arg;
    corio_id a, b, c;
    T_EXPECT_EQ(corio_spawn(&a, NULL, ret_arg, (void *)(intptr_t)11), 0);
    T_EXPECT_EQ(corio_spawn(&b, NULL, ret_arg, (void *)(intptr_t)-22), 0);
    T_EXPECT_EQ(corio_spawn(&c, NULL, ret_arg, (void *)(intptr_t)0x7fffffff), 0);
    T_EXPECT(a != 0 && b != 0 && c != 0 && a != b && b != c && a != c);
    int ra = 0, rb = 0;
    /* Joined before they ran (they run once this coroutine parks)... */
    T_EXPECT_EQ(corio_join(a, &ra, T_BOUND), 0);
    /* ...and after they ended. */
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT_EQ(corio_join(b, &rb, T_BOUND), 0);
    T_EXPECT_EQ(corio_join(c, NULL, T_BOUND), 0); /* result not wanted */
    T_EXPECT_EQ(ra, 11);
    T_EXPECT_EQ(rb, -22);
    return 5;
}

static void test_coro_spawn_join_result(void **state)
{
    struct corio_loop *l = *state;
    corio_id id;
    assert_int_equal(corio_spawn(&id, l, ret_arg, (void *)(intptr_t)-77), 0);
    assert_true(id != 0);
    assert_int_equal(t_run1(l, join_basic, NULL), 5);
    t_expect_ok();
    /* Bad arguments. */
    assert_int_equal(corio_spawn(&id, l, NULL, NULL), -EINVAL);
    assert_int_equal(corio_spawn(&id, NULL, ret_arg, NULL), -EINVAL); /* no running loop */
}

static int detached_body(void *arg)
{
    int *count = arg;
    T_EXPECT_EQ(corio_nop(), 0);
    (*count)++;
    return 0;
}

static void test_coro_detached_reclaimed(void **state)
{
    struct corio_loop *l = *state;
    int count = 0;
    uint64_t spawns0 = corio_loop_stats(l)->spawns;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 100; i++)
            assert_int_equal(corio_spawn(NULL, l, detached_body, &count), 0);
        assert_int_equal(corio_loop_run(l), 0);
    }
    t_expect_ok();
    assert_int_equal(count, 2000);
    assert_int_equal(corio_loop_stats(l)->spawns - spawns0, 2000);
    /* Reclaimed: handles and stacks were reused, not accumulated. */
    assert_true(l->coros.n_slots <= 100);
    assert_int_equal(l->stacks.n_live, 0);
    assert_true(l->stacks.n_free <= 100);
}

static int join_twice_body(void *arg)
{
    (void)arg;
    corio_id a;
    T_EXPECT_EQ(corio_spawn(&a, NULL, ret_arg, (void *)(intptr_t)3), 0);
    int r = 0;
    T_EXPECT_EQ(corio_join(a, &r, T_BOUND), 0);
    T_EXPECT_EQ(r, 3);
    T_EXPECT_EQ(corio_join(a, &r, T_BOUND), -ESRCH);
    /* The spent handle stays spent even once its slot is reused. */
    corio_id b;
    T_EXPECT_EQ(corio_spawn(&b, NULL, ret_arg, (void *)(intptr_t)4), 0);
    T_EXPECT(b != a);
    T_EXPECT_EQ(corio_join(a, &r, T_BOUND), -ESRCH);
    T_EXPECT_EQ(corio_join(b, &r, T_BOUND), 0);
    T_EXPECT_EQ(r, 4);
    /* Handles that never existed. */
    T_EXPECT_EQ(corio_join(0, &r, T_BOUND), -ESRCH);
    T_EXPECT_EQ(corio_join((corio_id)0xdeadbeef00001234ull, &r, T_BOUND), -ESRCH);
    return 0;
}

static void test_coro_join_twice_esrch(void **state)
{
    assert_int_equal(t_run1(*state, join_twice_body, NULL), 0);
    t_expect_ok();
}

static int join_self_body(void *arg)
{
    (void)arg;
    int r = 0;
    T_EXPECT_EQ(corio_join(corio_self(), &r, T_BOUND), -EDEADLK);
    T_EXPECT_EQ(corio_join(corio_self(), &r, CORIO_FOREVER), -EDEADLK);
    return 0;
}

static void test_coro_join_self_edeadlk(void **state)
{
    struct corio_loop *l = *state;
    /* Joinable (spawned with a handle): t_run1's coroutines are detached, whose handles are
     * spent for join (-ESRCH) before the self check. */
    corio_id id;
    assert_int_equal(corio_spawn(&id, l, join_self_body, NULL), 0);
    assert_int_equal(corio_loop_run(l), 0);
    t_expect_ok();
}

struct two_joiners {
    corio_id target;
    int first, second;
    int first_res;
};

static int sleeper_ms(void *arg)
{
    int r = corio_sleep(corio_now() + CORIO_MS((intptr_t)arg));
    return r == 0 ? 99 : r;
}

static int first_joiner(void *arg)
{
    struct two_joiners *c = arg;
    c->first = corio_join(c->target, &c->first_res, T_BOUND);
    return 0;
}

static int second_joiner(void *arg)
{
    struct two_joiners *c = arg;
    int r = 0;
    c->second = corio_join(c->target, &r, T_BOUND);
    return 0;
}

static int two_joiners_body(void *arg)
{
    struct two_joiners *c = arg;
    corio_id j1, j2;
    T_EXPECT_EQ(corio_spawn(&c->target, NULL, sleeper_ms, (void *)(intptr_t)20), 0);
    T_EXPECT_EQ(corio_spawn(&j1, NULL, first_joiner, c), 0);
    T_EXPECT_EQ(corio_yield(), 0); /* first_joiner parks in its join */
    T_EXPECT_EQ(corio_spawn(&j2, NULL, second_joiner, c), 0);
    T_EXPECT_EQ(corio_join(j2, NULL, T_BOUND), 0);
    /* A third one, the caller itself, is refused too, and at once. */
    int r = 0;
    T_EXPECT_EQ(corio_join(c->target, &r, T_BOUND), -EINVAL);
    /* Detaching while someone joins is refused as well. */
    T_EXPECT_EQ(corio_detach(c->target), -EINVAL);
    T_EXPECT_EQ(corio_join(j1, NULL, T_BOUND), 0);
    return 0;
}

static void test_coro_second_joiner_einval(void **state)
{
    struct two_joiners c = {.first = 1, .second = 1};
    assert_int_equal(t_run1(*state, two_joiners_body, &c), 0);
    t_expect_ok();
    assert_int_equal(c.second, -EINVAL);
    assert_int_equal(c.first, 0);
    assert_int_equal(c.first_res, 99);
}

static int join_deadline_body(void *arg)
{
    (void)arg;
    corio_id a;
    T_EXPECT_EQ(corio_spawn(&a, NULL, sleeper_ms, (void *)(intptr_t)200), 0);
    int r = 1;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_join(a, &r, t0 + CORIO_MS(20)), -ETIMEDOUT);
    int64_t dt = corio_now() - t0;
    T_EXPECT(dt >= CORIO_MS(19));
    T_EXPECT(dt < CORIO_SEC(2));
    T_EXPECT_EQ(r, 1); /* untouched */
    /* A deadline already past fails at once. */
    T_EXPECT_EQ(corio_join(a, &r, corio_now() - 1), -ETIMEDOUT);
    T_EXPECT_EQ(corio_join(a, &r, 0), -ETIMEDOUT);
    /* Still joinable, by this or another joiner. */
    T_EXPECT_EQ(corio_join(a, &r, T_BOUND), 0);
    T_EXPECT_EQ(r, 99);
    T_EXPECT(corio_now() - t0 >= CORIO_MS(199));
    return 0;
}

static void test_coro_join_deadline(void **state)
{
    assert_int_equal(t_run1(*state, join_deadline_body, NULL), 0);
    t_expect_ok();
}

static int detach_body(void *arg)
{
    int *ended = arg;
    corio_id live, done;
    T_EXPECT_EQ(corio_spawn(&live, NULL, detached_body, ended), 0);
    T_EXPECT_EQ(corio_spawn(&done, NULL, ret_arg, (void *)(intptr_t)8), 0);
    /* Detach one that is alive: it runs on and is reclaimed; its handle is spent. */
    T_EXPECT_EQ(corio_detach(live), 0);
    T_EXPECT_EQ(corio_detach(live), -ESRCH);
    T_EXPECT_EQ(corio_join(live, NULL, T_BOUND), -ESRCH);
    /* Detach one that ended and was never joined: reclaimed now. The detached one's NOP and this
     * sleep may complete in the same iteration, in either order (a slow run under valgrind): sleep
     * until it has ended, within a bound. */
    for (int i = 0; i < 500 && *ended == 0; i++)
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(2)), 0);
    T_EXPECT_EQ(*ended, 1);
    T_EXPECT_EQ(corio_detach(done), 0);
    T_EXPECT_EQ(corio_join(done, NULL, T_BOUND), -ESRCH);
    T_EXPECT_EQ(corio_detach(done), -ESRCH);
    T_EXPECT_EQ(corio_detach(0), -ESRCH);
    /* A detached coroutine's handle still reaches it for a cancel while it lives. */
    corio_id s;
    T_EXPECT_EQ(corio_spawn(&s, NULL, sleeper_ms, (void *)(intptr_t)5000), 0);
    T_EXPECT_EQ(corio_detach(s), 0);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT_EQ(corio_cancel(s), 0);
    return 0;
}

static void test_coro_detach(void **state)
{
    int ended = 0;
    int64_t t0 = corio_now();
    assert_int_equal(t_run1(*state, detach_body, &ended), 0);
    t_expect_ok();
    assert_int_equal(ended, 1);
    assert_true(t_ms_since(t0) < 2000.0);
    assert_int_equal(corio_detach(1), -ESRCH); /* no running loop */
}

/* ---- cancel ------------------------------------------------------------------------------------ */

/* What a cancelled coroutine sees: its current wait fails with -ECANCELED, later waits fail at
 * once, corio_close still works. */
enum wait_kind { W_SLEEP, W_JOIN, W_PIPE_READ, W_YIELD_LOOP };

struct victim {
    enum wait_kind kind;
    corio_id join_target;
    int fd;         /* W_PIPE_READ: the read end; closed by the victim */
    int wait_res;   /* what the interrupted wait returned */
    int64_t woke_after;
    int started;
};

static int victim_body(void *arg)
{
    struct victim *v = arg;
    v->started = 1;
    int64_t t0 = corio_now();
    char buf[16];
    int r = 0;
    switch (v->kind) {
    case W_SLEEP:
        r = corio_sleep(corio_now() + CORIO_SEC(10));
        break;
    case W_JOIN: {
        int res = 0;
        r = corio_join(v->join_target, &res, corio_now() + CORIO_SEC(10));
        break;
    }
    case W_PIPE_READ:
        r = (int)corio_read(v->fd, buf, sizeof(buf), -1, corio_now() + CORIO_SEC(10));
        break;
    case W_YIELD_LOOP:
        while ((r = corio_yield()) == 0 && corio_now() - t0 < CORIO_SEC(10))
            ;
        break;
    }
    v->wait_res = r;
    v->woke_after = corio_now() - t0;
    T_EXPECT(corio_cancelled());
    /* Every later wait fails at once. */
    int64_t t1 = corio_now();
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_SEC(10)), -ECANCELED);
    T_EXPECT_EQ(corio_nop(), -ECANCELED);
    T_EXPECT_EQ(corio_yield(), -ECANCELED);
    T_EXPECT_EQ(corio_read(v->fd >= 0 ? v->fd : 0, buf, 1, -1, CORIO_FOREVER), -ECANCELED);
    if (v->kind == W_JOIN)
        T_EXPECT_EQ(corio_join(v->join_target, NULL, CORIO_FOREVER), -ECANCELED);
    struct corio_future f;
    T_EXPECT_EQ(corio_nop_start(&f), -ECANCELED);
    T_EXPECT(corio_future_done(&f));
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ECANCELED);
    T_EXPECT(corio_now() - t1 < CORIO_SEC(1));
    /* Clean-up still works. */
    if (v->fd >= 0)
        T_EXPECT_EQ(corio_close(v->fd), 0);
    int p[2];
    if (T_EXPECT_EQ(t_pipe(p, 0), 0)) {
        T_EXPECT_EQ(corio_close(p[0]), 0);
        T_EXPECT_EQ(corio_close(p[1]), 0);
        T_EXPECT_EQ(corio_close(p[1]), -EBADF);
    }
    return 42;
}

static int cancel_driver(void *arg)
{
    struct victim *v = arg;
    corio_id target = 0, id;
    if (v->kind == W_JOIN)
        T_EXPECT_EQ(corio_spawn(&target, NULL, sleeper_ms, (void *)(intptr_t)5000), 0);
    v->join_target = target;
    T_EXPECT_EQ(corio_spawn(&id, NULL, victim_body, v), 0);
    /* Let it park in its wait. */
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0);
    T_EXPECT_EQ(v->started, 1);
    T_EXPECT_EQ(corio_cancel(id), 0);
    T_EXPECT_EQ(corio_cancel(id), 0); /* again: harmless while it lives */
    int res = 0;
    T_EXPECT_EQ(corio_join(id, &res, T_BOUND), 0);
    T_EXPECT_EQ(res, 42);
    T_EXPECT_EQ(corio_cancel(id), -ESRCH); /* ended and joined */
    if (target) {
        /* The cancelled joiner left the target joinable. */
        T_EXPECT_EQ(corio_cancel(target), 0);
        T_EXPECT_EQ(corio_join(target, &res, T_BOUND), 0);
        T_EXPECT_EQ(res, -ECANCELED);
    }
    return 0;
}

static void run_cancel_case(struct corio_loop *l, enum wait_kind kind)
{
    struct victim v = {.kind = kind, .fd = -1, .wait_res = 1};
    int p[2] = {-1, -1};
    if (kind == W_PIPE_READ) {
        assert_int_equal(t_pipe(p, 0), 0);
        v.fd = p[0];
    }
    int64_t t0 = corio_now();
    assert_int_equal(t_run1(l, cancel_driver, &v), 0);
    t_expect_ok();
    assert_true(t_ms_since(t0) < 2000.0);
    assert_int_equal(v.wait_res, -ECANCELED);
    assert_true(v.woke_after >= CORIO_MS(9));
    assert_true(v.woke_after < CORIO_SEC(2));
    if (kind == W_PIPE_READ) {
        /* The victim closed the read end; the write end sees no reader. */
        assert_int_equal(fcntl(p[0], F_GETFD), -1);
        close(p[1]);
    }
}

static void test_coro_cancel_wakes_sleep(void **state)
{
    run_cancel_case(*state, W_SLEEP);
}

static void test_coro_cancel_wakes_join(void **state)
{
    run_cancel_case(*state, W_JOIN);
}

static void test_coro_cancel_wakes_pipe_read(void **state)
{
    run_cancel_case(*state, W_PIPE_READ);
}

static void test_coro_cancel_wakes_yield_loop(void **state)
{
    run_cancel_case(*state, W_YIELD_LOOP);
}

struct unstarted {
    int ran;
    int cancelled_at_start;
    int nop_res;
};

static int unstarted_body(void *arg)
{
    struct unstarted *u = arg;
    u->ran = 1;
    u->cancelled_at_start = corio_cancelled();
    u->nop_res = corio_nop();
    return 13;
}

static int cancel_unstarted_driver(void *arg)
{
    struct unstarted *u = arg;
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, unstarted_body, u), 0);
    T_EXPECT_EQ(corio_cancel(id), 0); /* before it ever ran */
    T_EXPECT_EQ(u->ran, 0);
    int res = 0;
    T_EXPECT_EQ(corio_join(id, &res, T_BOUND), 0);
    T_EXPECT_EQ(res, 13);
    return 0;
}

static void test_coro_cancel_before_start(void **state)
{
    struct unstarted u = {0};
    assert_int_equal(t_run1(*state, cancel_unstarted_driver, &u), 0);
    t_expect_ok();
    assert_int_equal(u.ran, 1); /* the body still runs, to clean up */
    assert_int_equal(u.cancelled_at_start, 1);
    assert_int_equal(u.nop_res, -ECANCELED);
}

static int cancel_esrch_body(void *arg)
{
    (void)arg;
    corio_id a, d;
    T_EXPECT_EQ(corio_spawn(&a, NULL, ret_arg, (void *)(intptr_t)1), 0);
    T_EXPECT_EQ(corio_spawn(&d, NULL, ret_arg, (void *)(intptr_t)2), 0);
    T_EXPECT_EQ(corio_yield(), 0); /* both end */
    T_EXPECT_EQ(corio_cancel(a), -ESRCH); /* ended, not yet joined */
    T_EXPECT_EQ(corio_join(a, NULL, T_BOUND), 0);
    T_EXPECT_EQ(corio_cancel(a), -ESRCH); /* joined: stale */
    T_EXPECT_EQ(corio_detach(d), 0);
    T_EXPECT_EQ(corio_cancel(d), -ESRCH); /* reclaimed */
    T_EXPECT_EQ(corio_cancel(0), -ESRCH);
    T_EXPECT_EQ(corio_cancel((corio_id)0x100000001ull + 5000), -ESRCH); /* never existed */
    /* A stale handle whose slot was reused by a new coroutine does not reach the new one. */
    corio_id b;
    T_EXPECT_EQ(corio_spawn(&b, NULL, sleeper_ms, (void *)(intptr_t)1), 0);
    T_EXPECT(b != a && b != d);
    T_EXPECT_EQ(corio_cancel(a), -ESRCH);
    int r = 0;
    T_EXPECT_EQ(corio_join(b, &r, T_BOUND), 0);
    T_EXPECT_EQ(r, 99); /* not cancelled through the stale handle */
    /* Cancelling oneself is allowed: later waits fail. */
    T_EXPECT_EQ(corio_cancel(corio_self()), 0);
    T_EXPECT_EQ(corio_nop(), -ECANCELED);
    return 0;
}

static void test_coro_cancel_ended_or_stale_esrch(void **state)
{
    assert_int_equal(t_run1(*state, cancel_esrch_body, NULL), 0);
    t_expect_ok();
    assert_int_equal(corio_cancel(1), -ESRCH); /* outside a loop */
}

/* ---- yield, self ------------------------------------------------------------------------------- */

struct rr {
    char seq[64];
    int n;
};

struct rr_arg {
    struct rr *rr;
    char name;
};

static int rr_body(void *arg)
{
    struct rr_arg *a = arg;
    for (int i = 0; i < 5; i++) {
        a->rr->seq[a->rr->n++] = a->name;
        T_EXPECT_EQ(corio_yield(), 0);
    }
    return 0;
}

static int yield_once(void *arg)
{
    (void)arg;
    return corio_yield();
}

static void test_coro_yield_round_robin(void **state)
{
    struct corio_loop *l = *state;
    struct rr rr = {0};
    struct rr_arg args[3] = {{&rr, 'A'}, {&rr, 'B'}, {&rr, 'C'}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(corio_spawn(NULL, l, rr_body, &args[i]), 0);
    assert_int_equal(corio_loop_run(l), 0);
    t_expect_ok();
    rr.seq[rr.n] = '\0';
    assert_string_equal(rr.seq, "ABCABCABCABCABC");
    /* A lone coroutine's yield returns at once. */
    assert_int_equal(t_run1(l, yield_once, NULL), 0);
}

static int self_body(void *arg)
{
    corio_id *out = arg;
    *out = corio_self();
    T_EXPECT(corio_self() != 0);
    T_EXPECT_EQ(corio_nop(), 0);
    T_EXPECT_EQ(corio_self(), *out); /* stable across suspensions */
    T_EXPECT(!corio_cancelled());
    return 0;
}

static void test_coro_self(void **state)
{
    struct corio_loop *l = *state;
    assert_int_equal(corio_self(), 0);
    assert_false(corio_cancelled());
    corio_id id1 = 0, id2 = 0, seen1 = 0, seen2 = 0;
    assert_int_equal(corio_spawn(&id1, l, self_body, &seen1), 0);
    assert_int_equal(corio_spawn(&id2, l, self_body, &seen2), 0);
    assert_int_equal(corio_loop_run(l), 0);
    t_expect_ok();
    assert_int_equal(seen1, id1);
    assert_int_equal(seen2, id2);
    assert_true(seen1 != seen2);
    assert_int_equal(corio_self(), 0);
}

/* ---- scale ------------------------------------------------------------------------------------- */

static int sleep_1ms(void *arg)
{
    (void)arg;
    return corio_sleep(corio_now() + CORIO_MS(1)) == 0 ? 1 : -1;
}

static int many_sleepers_main(void *arg)
{
    int n = (int)(intptr_t)arg;
    corio_id *ids = calloc((size_t)n, sizeof(*ids));
    if (!T_EXPECT(ids != NULL))
        return -1;
    for (int i = 0; i < n; i++)
        if (!T_EXPECT_EQ(corio_spawn(&ids[i], NULL, sleep_1ms, NULL), 0))
            break;
    int sum = 0;
    for (int i = 0; i < n; i++) {
        int r = 0;
        if (T_EXPECT_EQ(corio_join(ids[i], &r, T_BOUND), 0))
            sum += r;
    }
    free(ids);
    return sum;
}

static void test_coro_10k_sleepers(void **state)
{
    struct corio_loop *l = *state;
    enum { N = 10000 };
    int64_t t0 = corio_now();
    assert_int_equal(t_run1(l, many_sleepers_main, (void *)(intptr_t)N), N);
    double ms = t_ms_since(t0);
    t_expect_ok();
    print_message("10000 sleepers of 1 ms: %.1f ms, %llu CQ overflows\n", ms,
                  (unsigned long long)corio_loop_stats(l)->cq_overflows);
    assert_int_equal(corio_loop_stats(l)->spawns, N + 1);
    assert_int_equal(l->stacks.n_live, 0);
    assert_true(ms < (t_on_valgrind() || T_SANITIZED ? 30000.0 : 5000.0));
}

static int churn_main(void *arg)
{
    int batches = (int)(intptr_t)arg;
    enum { BATCH = 1000 };
    static corio_id ids[BATCH];
    long total = 0;
    for (int b = 0; b < batches; b++) {
        for (int i = 0; i < BATCH; i++)
            if (!T_EXPECT_EQ(corio_spawn(&ids[i], NULL, ret_arg, (void *)(intptr_t)1), 0))
                return -1;
        for (int i = 0; i < BATCH; i++) {
            int r = 0;
            if (!T_EXPECT_EQ(corio_join(ids[i], &r, T_BOUND), 0))
                return -2;
            total += r;
        }
    }
    return (int)(total / BATCH);
}

static void test_coro_spawn_churn(void **state)
{
    struct corio_loop *l = *state;
    enum { BATCHES = 100 }; /* x 1000 = 100,000 coroutines */
    int64_t t0 = corio_now();
    assert_int_equal(t_run1(l, churn_main, (void *)(intptr_t)BATCHES), BATCHES);
    double ms = t_ms_since(t0);
    t_expect_ok();
    print_message("100000 spawn+join: %.1f ms, %u stacks pooled\n", ms, (unsigned)l->stacks.n_free);
    assert_int_equal(corio_loop_stats(l)->spawns, 100000 + 1);
    /* Stacks come from the pool: no more were ever mapped than one batch (plus the main one)
     * needs, and all of them are back. */
    assert_int_equal(l->stacks.n_live, 0);
    assert_true(l->stacks.n_free <= 1001);
    assert_true(l->coros.n_slots <= 1001 + 1);
    assert_true(ms < (t_on_valgrind() || T_SANITIZED ? 30000.0 : 2000.0));
}

/* ---- corio_run, calls outside coroutines ------------------------------------------------------- */

static int run_main(void *arg)
{
    corio_id a;
    T_EXPECT(corio_loop_current() != NULL);
    T_EXPECT_EQ(corio_spawn(&a, NULL, ret_arg, arg), 0);
    int r = 0;
    T_EXPECT_EQ(corio_join(a, &r, T_BOUND), 0);
    /* A detached one left running: corio_run waits for it. */
    T_EXPECT_EQ(corio_spawn(NULL, NULL, sleeper_ms, (void *)(intptr_t)5), 0);
    return r + 1;
}

static void test_coro_run_returns_result(void **state)
{
    (void)state;
    assert_int_equal(corio_run(run_main, (void *)(intptr_t)41, NULL), 42);
    assert_int_equal(corio_run(ret_arg, (void *)(intptr_t)-ENOENT, NULL), -ENOENT);
    struct corio_loop_opts o = {.stack_size = 128 * 1024, .sq_entries = 32};
    assert_int_equal(corio_run(run_main, (void *)(intptr_t)-1, &o), 0);
    t_expect_ok();
    assert_null(corio_loop_current());
    /* A loop that cannot be created: its error. */
    o = (struct corio_loop_opts){.sq_entries = 1u << 20};
    assert_int_equal(corio_run(ret_arg, NULL, &o), -EINVAL);
}

static void test_coro_outside_eperm(void **state)
{
    struct corio_loop *l = *state; /* a loop exists, but nothing runs */
    (void)l;
    int p[2];
    assert_int_equal(t_pipe(p, 0), 0);
    char buf[8] = {0};
    assert_int_equal(corio_nop(), -EPERM);
    assert_int_equal(corio_sleep(corio_now() + CORIO_MS(1)), -EPERM);
    assert_int_equal(corio_sleep(CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_read(p[0], buf, sizeof(buf), -1, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_write(p[1], buf, sizeof(buf), -1, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_join(1, NULL, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_yield(), -EPERM);
    /* Closing works anywhere (clean-up after a loop's end); a direct descriptor has no meaning
     * outside its loop's ring. */
    assert_int_equal(corio_close(CORIO_FD_FIXED | 3), -EPERM);
    int extra = dup(p[0]);
    assert_true(extra >= 0);
    assert_int_equal(corio_close(extra), 0);
    assert_int_equal(corio_close(extra), -EBADF);
    /* The start forms complete the future with the error. */
    struct corio_future f;
    memset(&f, 0xa5, sizeof(f));
    assert_int_equal(corio_read_start(&f, p[0], buf, sizeof(buf), -1, CORIO_FOREVER), -EPERM);
    assert_true(corio_future_done(&f));
    assert_int_equal(corio_future_result(&f), -EPERM);
    assert_int_equal(corio_await(&f, CORIO_FOREVER), -EPERM);
    struct corio_future *fs[1] = {&f};
    assert_int_equal(corio_await_any(fs, 1, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_await_all(fs, 1, CORIO_FOREVER), -EPERM);
    /* Nothing was queued: the fds are still open and the pipe untouched. */
    assert_int_equal(t_readable(p[0]), 0);
    assert_int_equal(close(p[0]), 0);
    assert_int_equal(close(p[1]), 0);
}

/* ---- stack overflow ---------------------------------------------------------------------------- */

static char self_exe[4096];

static __attribute__((noinline)) int recurse(volatile char *prev, int depth)
{
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[sizeof(frame) - 1] = prev ? prev[0] : 0;
    if (depth == 0)
        return frame[0];
    return recurse(frame, depth - 1) + frame[sizeof(frame) - 1];
}

static int overflow_body(void *arg)
{
    (void)arg;
    return recurse(NULL, 1 << 20); /* 1 GiB of frames against a 64 KiB stack */
}

/* Runs in a fresh process (re-exec with --overflow-child): cmocka's own SIGSEGV handler is not
 * installed there, so corio's reporter is the one that sees the fault. */
static int overflow_child(void)
{
    struct corio_loop *l;
    struct corio_loop_opts o = {.stack_size = 64 * 1024};
    if (corio_loop_new(&l, &o) != 0)
        return 3;
    corio_spawn(NULL, l, overflow_body, NULL);
    corio_loop_run(l);
    return 4; /* survived: the parent reports it */
}

static void test_coro_stack_overflow(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(t_pipe(p, 0), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        /* Under ASan: let corio's handler be the one that runs (the default), and skip the leak check
         * of a process that dies by design. */
        setenv("ASAN_OPTIONS", "allow_user_segv_handler=1:detect_leaks=0", 1);
        execl(self_exe, self_exe, "--overflow-child", (char *)NULL);
        _exit(5);
    }
    close(p[1]);
    char buf[8192] = {0};
    size_t got = 0;
    int64_t deadline = corio_now() + CORIO_SEC(20);
    while (got < sizeof(buf) - 1) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int64_t left = (deadline - corio_now()) / 1000000;
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        ssize_t n = read(p[0], buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(p[0]);
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && corio_now() < deadline)
        usleep(10000);
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fail_msg("the overflowing child hung");
    }
    assert_int_equal(w, pid);
    print_message("child: %s", buf);
    if (!WIFSIGNALED(st))
        fail_msg("child exited with %d instead of dying by a signal", WEXITSTATUS(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);
    assert_non_null(strstr(buf, "coroutine stack overflow"));
}

/* ---- the context switch's ABI ------------------------------------------------------------------ */

#if defined(__x86_64__)

struct fp_mode {
    uint32_t mxcsr;
    uint16_t fpcw;
    double quotient;    /* 1/3 computed under this mode */
    int yields;
    uint32_t child_mxcsr; /* what a coroutine spawned from here started with */
    uint16_t child_fpcw;
};

static int fp_child(void *arg)
{
    struct fp_mode *m = arg;
    m->child_mxcsr = t_get_mxcsr();
    m->child_fpcw = t_get_fpcw();
    return 0;
}

static int fp_body(void *arg)
{
    struct fp_mode *m = arg;
    t_set_mxcsr(m->mxcsr);
    t_set_fpcw(m->fpcw);
    volatile double one = 1.0, three = 3.0;
    m->quotient = one / three;
    /* A coroutine spawned from here inherits this control state. */
    corio_id c;
    T_EXPECT_EQ(corio_spawn(&c, NULL, fp_child, m), 0);
    T_EXPECT_EQ(corio_join(c, NULL, T_BOUND), 0);
    for (int i = 0; i < 10000; i++) {
        if (!T_EXPECT_EQ(corio_yield(), 0))
            break;
        if (!T_EXPECT_EQ(t_get_mxcsr(), m->mxcsr) || !T_EXPECT_EQ(t_get_fpcw(), m->fpcw))
            break;
        if (!T_EXPECT(one / three == m->quotient))
            break;
        m->yields++;
        if (i % 1000 == 0) /* through the ring as well */
            T_EXPECT_EQ(corio_nop(), 0);
    }
    return 0;
}
#endif

static void test_coro_fp_control_preserved(void **state)
{
#if defined(__x86_64__)
    struct corio_loop *l = *state;
    uint32_t mx0 = t_get_mxcsr();
    uint16_t cw0 = t_get_fpcw();
    const uint32_t RC_MASK = 0x6000, RC_UP = 0x4000, RC_ZERO = 0x6000, FTZ = 0x8000, DAZ = 0x40;
    const uint16_t X87_RC_MASK = 0x0c00, X87_DOWN = 0x0400, X87_UP = 0x0800, PC_MASK = 0x0300;
    struct fp_mode a = {0}, b = {0};
    /* Valgrind emulates only the rounding fields of MXCSR and the x87 control word. */
    bool full = !t_on_valgrind();
    a.mxcsr = (mx0 & ~RC_MASK) | RC_ZERO | (full ? FTZ | DAZ : 0);
    a.fpcw = (uint16_t)((cw0 & ~X87_RC_MASK & ~(full ? PC_MASK : 0)) | X87_DOWN); /* PC single */
    b.mxcsr = (mx0 & ~RC_MASK) | RC_UP;
    b.fpcw = (uint16_t)((cw0 & ~X87_RC_MASK & ~(full ? PC_MASK : 0)) | X87_UP |
                        (full ? 0x0200 : 0)); /* PC double */
    assert_int_equal(corio_spawn(NULL, l, fp_body, &a), 0);
    assert_int_equal(corio_spawn(NULL, l, fp_body, &b), 0);
    assert_int_equal(corio_loop_run(l), 0);
    t_expect_ok();
    assert_int_equal(a.yields, 10000);
    assert_int_equal(b.yields, 10000);
    assert_int_equal(a.child_mxcsr, a.mxcsr);
    assert_int_equal(a.child_fpcw, a.fpcw);
    assert_int_equal(b.child_mxcsr, b.mxcsr);
    assert_int_equal(b.child_fpcw, b.fpcw);
    /* The modes really differed: rounding up gives a larger 1/3 than rounding toward zero
     * (valgrind keeps the rounding field but computes with round-to-nearest). */
    if (!t_on_valgrind())
        assert_true(b.quotient > a.quotient);
    /* The scheduler's (this thread's) state came back untouched. */
    assert_int_equal(t_get_mxcsr(), mx0);
    assert_int_equal(t_get_fpcw(), cw0);
#else
    (void)state;
    skip(); /* the check is written for x86-64's MXCSR and x87 control word */
#endif
}

struct align_rec {
    uintptr_t frame[3];
    uintptr_t local[3];
};

static __attribute__((noinline)) void align_probe(uintptr_t *frame, uintptr_t *local)
{
    _Alignas(16) volatile char x[16];
    x[0] = 1;
    *frame = (uintptr_t)__builtin_frame_address(0);
    *local = (uintptr_t)&x[0];
}

static int align_body(void *arg)
{
    struct align_rec *r = arg;
    _Alignas(16) volatile char x[16];
    x[0] = 1;
    r->frame[0] = (uintptr_t)__builtin_frame_address(0);
    r->local[0] = (uintptr_t)&x[0];
    align_probe(&r->frame[1], &r->local[1]);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT_EQ(corio_nop(), 0);
    align_probe(&r->frame[2], &r->local[2]);
    return 0;
}

static void test_coro_stack_aligned(void **state)
{
    struct corio_loop *l = *state;
    struct align_rec r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 4; i++)
        assert_int_equal(corio_spawn(NULL, l, align_body, &r[i]), 0);
    assert_int_equal(corio_loop_run(l), 0);
    t_expect_ok();
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 3; j++) {
            assert_true(r[i].frame[j] != 0);
            /* With the ABI's alignment at entry, the frame pointer (after the push of the return
             * address and the old frame pointer) is 16-aligned on x86-64 and aarch64. */
            assert_int_equal(r[i].frame[j] % 16, 0);
            assert_int_equal(r[i].local[j] % 16, 0);
        }
    }
}

/* ---- a coroutine's own deadline ------------------------------------------------------------------ */

/* A receive with no deadline of its own ends at the coroutine's; later waits fail at once until the
 * deadline is set again; the previous deadline comes back through *prev. */
static int deadline_recv(void *arg)
{
    (void)arg;
    int sv[2];
    if (!T_EXPECT_EQ(t_tcp_pair(sv), 0))
        return -1;
    char b;
    int64_t prev = 0, d = corio_now() + CORIO_MS(30);
    T_EXPECT_EQ(corio_set_deadline(d, &prev), 0);
    T_EXPECT_EQ(prev, CORIO_FOREVER);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_recv(sv[0], &b, 1, 0, CORIO_FOREVER), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 30);
    /* Past it: every wait fails at once, a lock's and a sleep's too; close still works. */
    struct corio_mutex m = CORIO_MUTEX_INIT;
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(1)), -ETIMEDOUT);
    T_EXPECT_EQ(corio_mutex_lock(&m, CORIO_FOREVER), 0); /* free: no wait */
    T_EXPECT_EQ(corio_recv(sv[0], &b, 1, 0, CORIO_FOREVER), -ETIMEDOUT);
    T_EXPECT_EQ(corio_set_deadline(CORIO_FOREVER, &prev), 0);
    T_EXPECT_EQ(prev, d);
    /* Cleared: the same receive works again. */
    T_EXPECT_EQ(send(sv[1], "x", 1, 0), 1);
    T_EXPECT_EQ(corio_recv(sv[0], &b, 1, 0, CORIO_FOREVER), 1);
    T_EXPECT_EQ(corio_close(sv[0]), 0);
    T_EXPECT_EQ(corio_close(sv[1]), 0);
    return 0;
}

static void test_coro_deadline_recv(void **state)
{
    t_run_checked(state, deadline_recv, NULL);
}

struct dl_pair {
    struct corio_mutex m;
    struct corio_chan *ch;
};

static int hold_lock(void *arg)
{
    struct dl_pair *p = arg;
    T_EXPECT_EQ(corio_mutex_lock(&p->m, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(200)), 0);
    T_EXPECT_EQ(corio_mutex_unlock(&p->m), 0);
    return 0;
}

/* The coroutine's deadline ends waits that are not I/O (a lock, a channel, a sleep, a join), a
 * call's own earlier deadline still comes first, and a later one needs no timer. */
static int deadline_waits(void *arg)
{
    struct dl_pair *p = arg;
    corio_id h;
    T_EXPECT_EQ(corio_spawn(&h, NULL, hold_lock, p), 0);
    T_EXPECT_EQ(corio_yield(), 0); /* it takes the lock */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_set_deadline(t0 + CORIO_MS(60), NULL), 0);
    /* Its own deadline is earlier: that one. */
    T_EXPECT_EQ(corio_mutex_lock(&p->m, t0 + CORIO_MS(20)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 20);
    int v;
    /* Later than the coroutine's: the coroutine's. */
    T_EXPECT_EQ(corio_chan_recv(p->ch, &v, t0 + CORIO_SEC(5)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 60);
    T_EXPECT_EQ(corio_set_deadline(corio_now() + CORIO_MS(20), NULL), 0);
    int64_t t1 = corio_now();
    T_EXPECT_EQ(corio_sleep(t1 + CORIO_SEC(5)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t1, 20);
    T_EXPECT_EQ(corio_set_deadline(corio_now() + CORIO_MS(20), NULL), 0);
    T_EXPECT_EQ(corio_join(h, NULL, CORIO_FOREVER), -ETIMEDOUT);
    T_EXPECT_EQ(corio_set_deadline(CORIO_FOREVER, NULL), 0);
    T_EXPECT_EQ(corio_join(h, NULL, T_BOUND), 0);
    return 0;
}

static void test_coro_deadline_waits(void **state)
{
    struct dl_pair p = {.m = CORIO_MUTEX_INIT};
    assert_int_equal(corio_chan_new(&p.ch, sizeof(int), 0), 0);
    t_run_checked(state, deadline_waits, &p);
    corio_chan_free(p.ch);
}

/* A deadline moved later, or removed, after the first was armed: the wait ends at the last one
 * set (the timer armed for the first fires and is armed again, or dropped), and one moved earlier
 * again ends it there. Many sets in a row keep one timer. */
static int deadline_moves(void *arg)
{
    (void)arg;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_set_deadline(t0 + CORIO_MS(20), NULL), 0);
    for (int i = 1; i <= 1000; i++)
        T_EXPECT_EQ(corio_set_deadline(t0 + CORIO_MS(20) + i * 60000, NULL), 0); /* to 80 ms */
    T_EXPECT_EQ(corio_sleep(t0 + CORIO_SEC(5)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 80);
    /* Removed after it was armed for 20 ms: the wait goes past it, to its own end. */
    int64_t t1 = corio_now();
    T_EXPECT_EQ(corio_set_deadline(t1 + CORIO_MS(20), NULL), 0);
    T_EXPECT_EQ(corio_set_deadline(CORIO_FOREVER, NULL), 0);
    T_EXPECT_EQ(corio_sleep(t1 + CORIO_MS(60)), 0);
    T_EXPECT_ELAPSED(t1, 60);
    /* Later, then earlier than the armed timer: the earliest ends the wait. */
    int64_t t2 = corio_now();
    T_EXPECT_EQ(corio_set_deadline(t2 + CORIO_MS(200), NULL), 0);
    T_EXPECT_EQ(corio_set_deadline(t2 + CORIO_MS(400), NULL), 0);
    T_EXPECT_EQ(corio_set_deadline(t2 + CORIO_MS(30), NULL), 0);
    T_EXPECT_EQ(corio_sleep(t2 + CORIO_SEC(5)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t2, 30);
    /* Expired, then set later: waits work again until the new one. */
    int64_t t3 = corio_now();
    T_EXPECT_EQ(corio_set_deadline(t3 + CORIO_MS(50), NULL), 0);
    T_EXPECT_EQ(corio_sleep(t3 + CORIO_MS(10)), 0);
    T_EXPECT_EQ(corio_sleep(t3 + CORIO_SEC(5)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t3, 50);
    T_EXPECT_EQ(corio_set_deadline(CORIO_FOREVER, NULL), 0);
    return 0;
}

static void test_coro_deadline_moves(void **state)
{
    t_run_checked(state, deadline_moves, NULL);
}

/* A cancel wins over the deadline; a deadline already past fails the next wait at once; the
 * deadline is the coroutine's alone, and outside a coroutine the call is refused. */
static int deadline_cancelled(void *arg)
{
    (void)arg;
    T_EXPECT_EQ(corio_set_deadline(corio_now() - 1, NULL), 0);
    T_EXPECT_EQ(corio_nop(), -ETIMEDOUT);
    T_EXPECT_EQ(corio_cancel(corio_self()), 0);
    T_EXPECT_EQ(corio_nop(), -ECANCELED);
    return 0;
}

static int deadline_other(void *arg)
{
    (void)arg;
    /* Runs beside deadline_cancelled, untouched by its deadline. */
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(5)), 0);
    T_EXPECT_EQ(corio_nop(), 0);
    return 0;
}

static void test_coro_deadline_cancel_and_scope(void **state)
{
    assert_int_equal(corio_set_deadline(CORIO_FOREVER, NULL), -EPERM);
    t_run2(*state, deadline_cancelled, deadline_other, NULL);
    t_expect_ok();
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--overflow-child") == 0)
        return overflow_child();
    /* The path, not /proc/self/exe: under valgrind that names valgrind's own binary. */
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0)
        snprintf(self_exe, sizeof(self_exe), "%s", argv[0]);
    const struct CMUnitTest tests[] = {
        T_LOOP_TEST(test_coro_spawn_join_result),
        T_LOOP_TEST(test_coro_detached_reclaimed),
        T_LOOP_TEST(test_coro_join_twice_esrch),
        T_LOOP_TEST(test_coro_join_self_edeadlk),
        T_LOOP_TEST(test_coro_second_joiner_einval),
        T_LOOP_TEST(test_coro_join_deadline),
        T_LOOP_TEST(test_coro_deadline_recv),
        T_LOOP_TEST(test_coro_deadline_waits),
        T_LOOP_TEST(test_coro_deadline_cancel_and_scope),
        T_LOOP_TEST(test_coro_deadline_moves),
        T_LOOP_TEST(test_coro_detach),
        T_LOOP_TEST(test_coro_cancel_wakes_sleep),
        T_LOOP_TEST(test_coro_cancel_wakes_join),
        T_LOOP_TEST(test_coro_cancel_wakes_pipe_read),
        T_LOOP_TEST(test_coro_cancel_wakes_yield_loop),
        T_LOOP_TEST(test_coro_cancel_before_start),
        T_LOOP_TEST(test_coro_cancel_ended_or_stale_esrch),
        T_LOOP_TEST(test_coro_yield_round_robin),
        T_LOOP_TEST(test_coro_self),
        T_LOOP_TEST(test_coro_10k_sleepers),
        T_LOOP_TEST(test_coro_spawn_churn),
        cmocka_unit_test(test_coro_run_returns_result),
        T_LOOP_TEST(test_coro_outside_eperm),
        cmocka_unit_test(test_coro_stack_overflow),
        T_LOOP_TEST(test_coro_fp_control_preserved),
        T_LOOP_TEST(test_coro_stack_aligned),
    };
    return T_RUN_TESTS(tests);
}
