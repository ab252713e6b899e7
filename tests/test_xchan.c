/* Channels between loops (corio_xchan): a million values from one loop to another in order, and
 * from two loops to one with each sender's order kept; a full channel holds its senders back; a
 * close with values pending lets the receivers drain them and then end, and wakes waiters on
 * either side; a cancel or a deadline of a waiting sender or receiver, also one racing with its
 * wake-up, loses no value; the non-waiting forms from a thread that runs no loop. Every test runs
 * its loops on threads of their own (corio_run_threads), on the backend the environment picks,
 * and on epoll under valgrind (see test_remote.c: valgrind keeps the senders from running while a
 * loop waits in io_uring_enter). */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* The options of every group of loops here. */
static struct corio_loop_opts loops_opts(void)
{
    struct corio_loop_opts o = {0};
    if (t_on_valgrind())
        o.backend = CORIO_BACKEND_EPOLL;
    return o;
}

/* The loops of a group that are done: the first loop to end stops the others (corio_run_threads),
 * so each waits here until all are. */
static _Atomic int finished;

static void finish_together(void)
{
    int n = (int)corio_thread_count();
    atomic_fetch_add(&finished, 1);
    for (int i = 0; i < 30000 && atomic_load(&finished) < n; i++)
        if (corio_sleep(corio_now() + CORIO_MS(1)) != 0)
            break;
}

static void run_loops(unsigned n, corio_fn *fn)
{
    atomic_store(&finished, 0);
    struct corio_loop_opts o = loops_opts();
    assert_int_equal(corio_run_threads(n, fn, NULL, &o, 0), 0);
    t_expect_ok();
}

/* ---- many values: one sender, then two ----------------------------------------------------------
 */

struct flow {
    struct corio_xchan *ch;
    long per_sender;  /* values each sender sends */
    unsigned senders; /* loops 1..senders send; loop 0 receives */
    _Atomic int senders_done;
    long got[3];       /* values received from each sender */
    long out_of_order; /* values that came before their turn */
    long seen_end;     /* 1 once recv returned 0 */
};

static struct flow fl;

static int flow_main(void *arg)
{
    (void)arg;
    unsigned i = corio_thread_index();
    if (i > 0) {
        for (long k = 0; k < fl.per_sender; k++) {
            uint64_t v = ((uint64_t)i << 32) | (uint64_t)k;
            T_EXPECT_EQ(corio_xchan_send(fl.ch, &v, corio_now() + CORIO_SEC(60)), 0);
        }
        /* The last sender closes: the receiver drains and sees the end. */
        if (atomic_fetch_add(&fl.senders_done, 1) + 1 == (int)fl.senders)
            T_EXPECT_EQ(corio_xchan_close(fl.ch), 0);
    } else {
        uint64_t v;
        int r;
        while ((r = corio_xchan_recv(fl.ch, &v, corio_now() + CORIO_SEC(60))) == 1) {
            unsigned from = (unsigned)(v >> 32);
            T_EXPECT(from >= 1 && from <= fl.senders);
            if (from < 1 || from > fl.senders)
                break;
            if ((long)(uint32_t)v != fl.got[from])
                fl.out_of_order++;
            fl.got[from] = (long)(uint32_t)v + 1;
        }
        T_EXPECT_EQ(r, 0);
        fl.seen_end = r == 0;
    }
    finish_together();
    return 0;
}

static void flow_run(unsigned senders, long per_sender, size_t cap)
{
    memset(&fl, 0, sizeof(fl));
    fl.senders = senders;
    fl.per_sender = per_sender;
    assert_int_equal(corio_xchan_new(&fl.ch, sizeof(uint64_t), cap), 0);
    run_loops(senders + 1, flow_main);
    for (unsigned s = 1; s <= senders; s++)
        assert_int_equal(fl.got[s], per_sender);
    assert_int_equal(fl.out_of_order, 0);
    assert_int_equal(fl.seen_end, 1);
    assert_int_equal(corio_xchan_len(fl.ch), 0);
    corio_xchan_free(fl.ch);
}

static void test_xchan_million_one_way(void **state)
{
    (void)state;
    /* Fewer under valgrind, which runs one thread at a time. */
    flow_run(1, t_on_valgrind() ? 20000 : 1000000, 256);
}

static void test_xchan_two_senders_one_receiver(void **state)
{
    (void)state;
    flow_run(2, t_on_valgrind() ? 10000 : 500000, 64);
    /* The smallest channel (1 is rounded up to 2): sends wait most of the time. */
    flow_run(2, t_on_valgrind() ? 2000 : 20000, 1);
}

/* ---- a full channel
 * ------------------------------------------------------------------------------ */

static struct corio_xchan *bp;
static _Atomic int64_t drained_at; /* when loop 1 took the first value out */

static int backpressure_main(void *arg)
{
    (void)arg;
    uint64_t v;
    if (corio_thread_index() == 0) {
        T_EXPECT_EQ(corio_xchan_cap(bp), 4);
        for (v = 0; v < 4; v++)
            T_EXPECT_EQ(corio_xchan_trysend(bp, &v), 0);
        T_EXPECT_EQ(corio_xchan_trysend(bp, &v), -EAGAIN);
        T_EXPECT_EQ(corio_xchan_len(bp), 4);
        /* Nobody receives yet: the deadline ends the wait, and the value was not sent. */
        int64_t t0 = corio_now();
        T_EXPECT_EQ(corio_xchan_send(bp, &v, t0 + CORIO_MS(20)), -ETIMEDOUT);
        T_EXPECT_ELAPSED(t0, 20);
        T_EXPECT_EQ(corio_xchan_len(bp), 4);
        /* Loop 1 starts receiving 50 ms from now: this send waits until it has made room. */
        atomic_store(&drained_at, 0);
        T_EXPECT_EQ(corio_xchan_send(bp, &v, corio_now() + CORIO_SEC(10)), 0);
        int64_t at = atomic_load(&drained_at);
        T_EXPECT(at != 0 && corio_now() >= at);
        T_EXPECT_EQ(corio_xchan_close(bp), 0);
    } else {
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(70)), 0);
        uint64_t want = 0;
        int r;
        atomic_store(&drained_at, corio_now());
        while ((r = corio_xchan_recv(bp, &v, corio_now() + CORIO_SEC(10))) == 1)
            T_EXPECT_EQ(v, want++);
        T_EXPECT_EQ(r, 0);
        T_EXPECT_EQ(want, 5); /* the four, then the one that waited; not the timed-out one twice */
    }
    finish_together();
    return 0;
}

static void test_xchan_full_channel_backpressure(void **state)
{
    (void)state;
    assert_int_equal(corio_xchan_new(&bp, sizeof(uint64_t), 3), 0); /* rounded up to 4 */
    run_loops(2, backpressure_main);
    corio_xchan_free(bp);
}

/* ---- close -------------------------------------------------------------------------------------
 */

static struct corio_xchan *cl_empty, *cl_full, *cl_pending;

/* On loop 1: fills cl_full and waits to send one more, until loop 0 closes it. */
static int fill_and_send(void *arg)
{
    (void)arg;
    uint64_t v = 1;
    T_EXPECT_EQ(corio_xchan_cap(cl_full), 2);
    T_EXPECT_EQ(corio_xchan_trysend(cl_full, &v), 0);
    T_EXPECT_EQ(corio_xchan_trysend(cl_full, &v), 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_xchan_send(cl_full, &v, corio_now() + CORIO_SEC(10)), -EPIPE);
    T_EXPECT(t_ms_since(t0) >= 20.0);
    return 0;
}

static int close_main(void *arg)
{
    (void)arg;
    uint64_t v = 7;
    if (corio_thread_index() == 0) {
        /* Values pending at the close are still received, then the end. */
        for (uint64_t k = 0; k < 3; k++)
            T_EXPECT_EQ(corio_xchan_send(cl_pending, &k, CORIO_FOREVER), 0);
        T_EXPECT_EQ(corio_xchan_close(cl_pending), 0);
        T_EXPECT_EQ(corio_xchan_close(cl_pending), -EALREADY);
        T_EXPECT_EQ(corio_xchan_trysend(cl_pending, &v), -EPIPE);
        T_EXPECT_EQ(corio_xchan_send(cl_pending, &v, CORIO_FOREVER), -EPIPE);
        /* Loop 1 waits on the other two by now: the close wakes both sides. */
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(30)), 0);
        T_EXPECT_EQ(corio_xchan_close(cl_empty), 0);
        T_EXPECT_EQ(corio_xchan_close(cl_full), 0);
    } else {
        int64_t t0 = corio_now();
        corio_id full_sender;
        T_EXPECT_EQ(corio_spawn(&full_sender, NULL, fill_and_send, NULL), 0);
        /* A receiver waiting on an empty channel gets the end, and a sender waiting on a full
         * one (fill_and_send, meanwhile) -EPIPE. */
        T_EXPECT_EQ(corio_xchan_recv(cl_empty, &v, corio_now() + CORIO_SEC(10)), 0);
        T_EXPECT(t_ms_since(t0) >= 20.0);
        T_EXPECT_EQ(corio_join(full_sender, NULL, CORIO_FOREVER), 0);
        uint64_t want = 0;
        int r;
        while ((r = corio_xchan_recv(cl_pending, &v, corio_now() + CORIO_SEC(10))) == 1)
            T_EXPECT_EQ(v, want++);
        T_EXPECT_EQ(r, 0);
        T_EXPECT_EQ(want, 3);
        T_EXPECT_EQ(corio_xchan_recv(cl_pending, &v, CORIO_FOREVER), 0); /* the end stays */
        T_EXPECT_EQ(corio_xchan_tryrecv(cl_pending, &v), 0);
    }
    finish_together();
    return 0;
}

static void test_xchan_close_with_values_pending(void **state)
{
    (void)state;
    assert_int_equal(corio_xchan_new(&cl_empty, sizeof(uint64_t), 4), 0);
    assert_int_equal(corio_xchan_new(&cl_full, sizeof(uint64_t), 1), 0);
    assert_int_equal(corio_xchan_new(&cl_pending, sizeof(uint64_t), 8), 0);
    run_loops(2, close_main);
    corio_xchan_free(cl_empty);
    corio_xchan_free(cl_full);
    corio_xchan_free(cl_pending);
}

/* ---- cancel and deadlines ----------------------------------------------------------------------
 */

struct cancel_case {
    struct corio_xchan *ch;
    int result; /* the cancelled call's */
};

static int recv_one(void *arg)
{
    struct cancel_case *c = arg;
    uint64_t v;
    c->result = corio_xchan_recv(c->ch, &v, corio_now() + CORIO_SEC(10));
    return 0;
}

static int send_one(void *arg)
{
    struct cancel_case *c = arg;
    uint64_t v = 99;
    c->result = corio_xchan_send(c->ch, &v, corio_now() + CORIO_SEC(10));
    return 0;
}

static struct corio_xchan *cc_recv, *cc_send;
static _Atomic int cc_sender_cancelled; /* loop 1 is done with cc_send */

static int cancel_main(void *arg)
{
    (void)arg;
    uint64_t v;
    if (corio_thread_index() == 1) {
        /* A receiver cancelled while it waits takes nothing: the value sent after goes to the
         * next receive. */
        struct cancel_case rc = {.ch = cc_recv, .result = 1};
        corio_id id;
        T_EXPECT_EQ(corio_spawn(&id, NULL, recv_one, &rc), 0);
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0);
        T_EXPECT_EQ(corio_cancel(id), 0);
        T_EXPECT_EQ(corio_join(id, NULL, CORIO_FOREVER), 0);
        T_EXPECT_EQ(rc.result, -ECANCELED);
        T_EXPECT_EQ(corio_xchan_recv(cc_recv, &v, corio_now() + CORIO_SEC(10)), 1);
        T_EXPECT_EQ(v, 42);
        /* A sender cancelled while the channel is full has sent nothing: loop 0 finds the two
         * values that filled it, and no 99. */
        struct cancel_case sc = {.ch = cc_send, .result = 1};
        for (v = 1; v <= corio_xchan_cap(cc_send); v++)
            T_EXPECT_EQ(corio_xchan_send(cc_send, &v, CORIO_FOREVER), 0);
        T_EXPECT_EQ(corio_spawn(&id, NULL, send_one, &sc), 0);
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0);
        T_EXPECT_EQ(corio_cancel(id), 0);
        T_EXPECT_EQ(corio_join(id, NULL, CORIO_FOREVER), 0);
        T_EXPECT_EQ(sc.result, -ECANCELED);
        T_EXPECT_EQ(corio_xchan_close(cc_send), 0);
        atomic_store(&cc_sender_cancelled, 1);
    } else {
        /* Loop 1's receiver was cancelled by then. */
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(40)), 0);
        v = 42;
        T_EXPECT_EQ(corio_xchan_send(cc_recv, &v, CORIO_FOREVER), 0);
        /* Receiving from cc_send before loop 1's cancel would make room for its sender. */
        for (int i = 0; i < 10000 && !atomic_load(&cc_sender_cancelled); i++)
            T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(1)), 0);
        for (uint64_t want = 1; want <= 2; want++) {
            T_EXPECT_EQ(corio_xchan_recv(cc_send, &v, corio_now() + CORIO_SEC(10)), 1);
            T_EXPECT_EQ(v, want);
        }
        T_EXPECT_EQ(corio_xchan_recv(cc_send, &v, corio_now() + CORIO_SEC(10)), 0);
    }
    finish_together();
    return 0;
}

static void test_xchan_cancel_either_side(void **state)
{
    (void)state;
    assert_int_equal(corio_xchan_new(&cc_recv, sizeof(uint64_t), 4), 0);
    assert_int_equal(corio_xchan_new(&cc_send, sizeof(uint64_t), 1), 0);
    atomic_store(&cc_sender_cancelled, 0);
    run_loops(2, cancel_main);
    corio_xchan_free(cc_recv);
    corio_xchan_free(cc_send);
}

/* Receivers with deadlines so short that many end while a value is on its way to them (their
 * wake-up claimed and sent, the coroutine timing out before it comes): none may be lost, and each
 * receiver sees the sender's values in order. */
struct race {
    struct corio_xchan *ch;
    long sent;
    long got;
    long timeouts;
    long out_of_order;
    _Atomic int receivers_left;
};

static struct race rc;

static int race_receiver(void *arg)
{
    (void)arg;
    uint64_t v, last = 0;
    bool any = false;
    for (;;) {
        int r = corio_xchan_recv(rc.ch, &v, corio_now() + CORIO_US(20));
        if (r == -ETIMEDOUT) {
            rc.timeouts++;
            continue;
        }
        if (r != 1) {
            T_EXPECT_EQ(r, 0);
            break;
        }
        if (any && v <= last)
            rc.out_of_order++;
        last = v;
        any = true;
        rc.got++;
    }
    return 0;
}

static int race_main(void *arg)
{
    (void)arg;
    if (corio_thread_index() == 1) {
        corio_id a, b;
        T_EXPECT_EQ(corio_spawn(&a, NULL, race_receiver, NULL), 0);
        T_EXPECT_EQ(corio_spawn(&b, NULL, race_receiver, NULL), 0);
        T_EXPECT_EQ(corio_join(a, NULL, CORIO_FOREVER), 0);
        T_EXPECT_EQ(corio_join(b, NULL, CORIO_FOREVER), 0);
    } else {
        for (long k = 0; k < rc.sent; k++) {
            uint64_t v = (uint64_t)k;
            T_EXPECT_EQ(corio_xchan_send(rc.ch, &v, corio_now() + CORIO_SEC(30)), 0);
            if (k % 16 == 0) /* let the receivers run dry and wait */
                T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_US(30)), 0);
        }
        T_EXPECT_EQ(corio_xchan_close(rc.ch), 0);
    }
    finish_together();
    return 0;
}

static void test_xchan_deadline_races_wakeup(void **state)
{
    (void)state;
    memset(&rc, 0, sizeof(rc));
    rc.sent = t_on_valgrind() ? 2000 : 50000;
    assert_int_equal(corio_xchan_new(&rc.ch, sizeof(uint64_t), 2), 0);
    run_loops(2, race_main);
    print_message("%ld values, %ld receives timed out meanwhile\n", rc.got, rc.timeouts);
    assert_int_equal(rc.got, rc.sent);
    assert_int_equal(rc.out_of_order, 0);
    assert_true(rc.timeouts > 0); /* the race was run */
    corio_xchan_free(rc.ch);
}

/* ---- one loop, no loop -------------------------------------------------------------------------
 */

static int same_loop_receiver(void *arg)
{
    struct corio_xchan *ch = arg;
    uint64_t v, want = 0;
    int r;
    while ((r = corio_xchan_recv(ch, &v, corio_now() + CORIO_SEC(10))) == 1)
        T_EXPECT_EQ(v, want++);
    T_EXPECT_EQ(r, 0);
    T_EXPECT_EQ(want, 100);
    return 0;
}

static int same_loop_main(void *arg)
{
    struct corio_xchan *ch = arg;
    uint64_t v = 0;
    /* Empty: the deadline ends the wait. */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_xchan_recv(ch, &v, t0 + CORIO_MS(20)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 20);
    /* Both ends on this loop: waiters are woken directly, without a message. */
    T_EXPECT_EQ(corio_spawn(NULL, NULL, same_loop_receiver, ch), 0);
    for (v = 0; v < 100; v++)
        T_EXPECT_EQ(corio_xchan_send(ch, &v, corio_now() + CORIO_SEC(10)), 0);
    T_EXPECT_EQ(corio_xchan_close(ch), 0);
    return 0;
}

static void test_xchan_one_loop_and_edges(void **state)
{
    (void)state;
    struct corio_xchan *ch;
    assert_int_equal(corio_xchan_new(&ch, 0, 4), -EINVAL);
    assert_int_equal(corio_xchan_new(&ch, 65537, 4), -EINVAL);
    assert_int_equal(corio_xchan_new(&ch, 8, 0), -EINVAL);
    corio_xchan_free(NULL);
    assert_int_equal(corio_xchan_new(&ch, sizeof(uint64_t), 2), 0);
    uint64_t v = 5;
    /* Outside a coroutine: fine while it need not wait, -EPERM where it would. */
    assert_int_equal(corio_xchan_recv(ch, &v, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_xchan_send(ch, &v, CORIO_FOREVER), 0);
    assert_int_equal(corio_xchan_recv(ch, &v, CORIO_FOREVER), 1);
    assert_int_equal(v, 5);
    struct corio_loop_opts o = loops_opts();
    assert_int_equal(corio_run(same_loop_main, ch, &o), 0);
    t_expect_ok();
    corio_xchan_free(ch);
}

/* A thread that runs no loop feeds a loop with the non-waiting form. */
static void *plain_sender(void *arg)
{
    struct corio_xchan *ch = arg;
    for (uint64_t k = 0; k < 10000;) {
        int r = corio_xchan_trysend(ch, &k);
        if (r == 0)
            k++;
        else if (r == -EAGAIN)
            sched_yield();
        else
            return (void *)(intptr_t)r;
    }
    return (void *)(intptr_t)corio_xchan_close(ch);
}

static int plain_receiver(void *arg)
{
    struct corio_xchan *ch = arg;
    uint64_t v, want = 0;
    int r;
    while ((r = corio_xchan_recv(ch, &v, corio_now() + CORIO_SEC(30))) == 1)
        T_EXPECT_EQ(v, want++);
    T_EXPECT_EQ(r, 0);
    T_EXPECT_EQ(want, 10000);
    return 0;
}

static void test_xchan_plain_thread_sender(void **state)
{
    (void)state;
    struct corio_xchan *ch;
    assert_int_equal(corio_xchan_new(&ch, sizeof(uint64_t), 8), 0);
    struct corio_loop_opts o = loops_opts();
    o.flags = CORIO_LOOP_REMOTE;
    struct corio_loop *l = t_mkloop(&o);
    assert_int_equal(corio_spawn(NULL, l, plain_receiver, ch), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, plain_sender, ch), 0);
    assert_int_equal(corio_loop_run(l), 0);
    void *r;
    assert_int_equal(pthread_join(th, &r), 0);
    t_expect_ok();
    assert_int_equal((intptr_t)r, 0);
    corio_loop_free(l);
    corio_xchan_free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_xchan_million_one_way),
        T_GUARD_TEST(test_xchan_two_senders_one_receiver),
        T_GUARD_TEST(test_xchan_full_channel_backpressure),
        T_GUARD_TEST(test_xchan_close_with_values_pending),
        T_GUARD_TEST(test_xchan_cancel_either_side),
        T_GUARD_TEST(test_xchan_deadline_races_wakeup),
        T_GUARD_TEST(test_xchan_one_loop_and_edges),
        T_GUARD_TEST(test_xchan_plain_thread_sender),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
