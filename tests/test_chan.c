/* Channels and corio_select: rendezvous and buffering, FIFO order of values and of waiters, close,
 * the non-waiting forms, deadlines, cancellation without losing or duplicating a value, value
 * sizes, many senders and receivers, a three-stage pipeline, 10,000 contending coroutines, and
 * select over channels and futures.
 *
 * cmocka's assert_* longjmp off the coroutine's stack, so coroutine bodies record failed checks
 * with T_EXPECT/T_EXPECT_EQ (the first one is printed with file:line) and each test asserts, after
 * the loop has run, that none failed. Every wait that could hang carries a deadline. */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct corio_chan *chan(size_t elem, size_t cap)
{
    struct corio_chan *ch = NULL;
    int r = corio_chan_new(&ch, elem, cap);
    T_EXPECT_EQ(r, 0);
    return r ? NULL : ch;
}

/* A bitmap of values seen, with the duplicates and out-of-range values it was shown. */
struct seen {
    uint8_t *bits;
    size_t n;
    size_t count, dups, bad;
    uint64_t sum;
};

static void seen_init(struct seen *s, size_t n)
{
    memset(s, 0, sizeof(*s));
    s->bits = calloc((n + 7) / 8, 1);
    s->n = n;
}

static void seen_add(struct seen *s, uint64_t v)
{
    if (v >= s->n) {
        s->bad++;
        return;
    }
    if (s->bits[v / 8] & (1u << (v % 8)))
        s->dups++;
    s->bits[v / 8] |= (uint8_t)(1u << (v % 8));
    s->count++;
    s->sum += v;
}

static bool seen_has(const struct seen *s, uint64_t v)
{
    return v < s->n && (s->bits[v / 8] & (1u << (v % 8)));
}

/* ---- rendezvous, buffering, FIFO ------------------------------------------------------------ */

struct sender_arg {
    struct corio_chan *ch;
    int first, count; /* sends first, first + 1, ... */
    int sent;         /* sends that returned 0 */
    int last;         /* the last send's result */
    int64_t returned; /* corio_now() when the last send returned */
};

static int sender(void *arg)
{
    struct sender_arg *a = arg;
    for (int i = 0; i < a->count; i++) {
        int v = a->first + i;
        a->last = corio_chan_send(a->ch, &v, T_BOUND);
        a->returned = corio_now();
        if (a->last != 0)
            return a->last;
        a->sent++;
    }
    return 0;
}

static int rendezvous_main(void *arg)
{
    (void)arg;
    struct corio_chan *ch = chan(sizeof(int), 0);
    int v = 7;
    /* Nobody receives: an unbuffered send cannot complete. */
    T_EXPECT_EQ(corio_chan_trysend(ch, &v), -EAGAIN);
    T_EXPECT_EQ(corio_chan_tryrecv(ch, &v), -EAGAIN);
    struct sender_arg s = {.ch = ch, .first = 100, .count = 1};
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, sender, &s), 0);
    t_settle(5);
    T_EXPECT_EQ(s.sent, 0); /* parked until a receiver comes */
    T_EXPECT_EQ(corio_chan_len(ch), 0);
    v = 0;
    T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 1);
    T_EXPECT_EQ(v, 100);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(s.sent, 1);

    /* The same with a receiver that arrives 30 ms late: the send takes those 30 ms. */
    s = (struct sender_arg){.ch = ch, .first = 200, .count = 1};
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_spawn(&id, NULL, sender, &s), 0);
    T_EXPECT_EQ(corio_sleep(t0 + CORIO_MS(30)), 0);
    T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 1);
    T_EXPECT_EQ(v, 200);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT(s.returned - t0 >= CORIO_MS(30) - T_EARLY_NS);
    corio_chan_free(ch);
    return 0;
}

static void test_chan_unbuffered_rendezvous(void **state)
{
    t_run_checked(state, rendezvous_main, NULL);
}

static int buffered_main(void *arg)
{
    (void)arg;
    struct corio_chan *ch = chan(sizeof(int), 4);
    struct sender_arg s = {.ch = ch, .first = 0, .count = 5};
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, sender, &s), 0);
    t_settle(5);
    T_EXPECT_EQ(s.sent, 4); /* four fit; the fifth waits */
    T_EXPECT_EQ(corio_chan_len(ch), 4);
    int v = 99;
    T_EXPECT_EQ(corio_chan_trysend(ch, &v), -EAGAIN);
    T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 1);
    T_EXPECT_EQ(v, 0);
    /* The parked sender's value took the freed place at once. */
    T_EXPECT_EQ(corio_chan_len(ch), 4);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(s.sent, 5);
    for (int i = 1; i <= 4; i++) {
        T_EXPECT_EQ(corio_chan_tryrecv(ch, &v), 1);
        T_EXPECT_EQ(v, i);
    }
    T_EXPECT_EQ(corio_chan_tryrecv(ch, &v), -EAGAIN);
    T_EXPECT_EQ(corio_chan_len(ch), 0);
    corio_chan_free(ch);
    return 0;
}

static void test_chan_buffered_capacity(void **state)
{
    t_run_checked(state, buffered_main, NULL);
}

struct fifo_recv {
    struct corio_chan *ch;
    int n, got[1000];
    int res;
};

static int fifo_receiver(void *arg)
{
    struct fifo_recv *r = arg;
    int v;
    while ((r->res = corio_chan_recv(r->ch, &v, T_BOUND)) == 1)
        r->got[r->n++] = v;
    return r->res;
}

static int fifo_values_main(void *arg)
{
    (void)arg;
    size_t caps[] = {0, 1, 3, 16};
    for (size_t c = 0; c < 4; c++) {
        struct corio_chan *ch = chan(sizeof(int), caps[c]);
        static struct fifo_recv r;
        memset(&r, 0, sizeof(r));
        r.ch = ch;
        corio_id id;
        T_EXPECT_EQ(corio_spawn(&id, NULL, fifo_receiver, &r), 0);
        for (int i = 0; i < 1000; i++) {
            T_EXPECT_EQ(corio_chan_send(ch, &i, T_BOUND), 0);
            if (i % 97 == 0)
                corio_yield();
        }
        T_EXPECT_EQ(corio_chan_close(ch), 0);
        T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
        T_EXPECT_EQ(r.res, 0);
        T_EXPECT_EQ(r.n, 1000);
        for (int i = 0; i < r.n; i++)
            if (r.got[i] != i) {
                T_EXPECT_EQ(r.got[i], i);
                break;
            }
        corio_chan_free(ch);
    }
    return 0;
}

static void test_chan_fifo_values(void **state)
{
    t_run_checked(state, fifo_values_main, NULL);
}

struct one_arg {
    struct corio_chan *ch;
    int id;
    int *log; /* ids, in the order the operations completed */
    int *n;
    int res, val;
};

static int one_sender(void *arg)
{
    struct one_arg *a = arg;
    a->res = corio_chan_send(a->ch, &a->id, T_BOUND);
    a->log[(*a->n)++] = a->id;
    return 0;
}

static int one_receiver(void *arg)
{
    struct one_arg *a = arg;
    a->val = -1;
    a->res = corio_chan_recv(a->ch, &a->val, T_BOUND);
    a->log[(*a->n)++] = a->id;
    return 0;
}

static int fifo_waiters_main(void *arg)
{
    (void)arg;
    size_t caps[] = {0, 2};
    for (size_t c = 0; c < 2; c++) {
        struct corio_chan *ch = chan(sizeof(int), caps[c]);
        int log[8], n = 0;
        struct one_arg a[3];
        corio_id id[3];
        /* Fill the buffer first, so that the senders have to park. */
        for (int i = 0; i < (int)caps[c]; i++) {
            int v = 1000 + i;
            T_EXPECT_EQ(corio_chan_trysend(ch, &v), 0);
        }
        for (int i = 0; i < 3; i++) {
            a[i] = (struct one_arg){.ch = ch, .id = i, .log = log, .n = &n};
            T_EXPECT_EQ(corio_spawn(&id[i], NULL, one_sender, &a[i]), 0);
            t_settle(1); /* parked in the order A, B, C */
        }
        T_EXPECT_EQ(n, 0);
        for (int i = 0; i < (int)caps[c]; i++) {
            int v;
            T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 1);
            T_EXPECT_EQ(v, 1000 + i);
        }
        for (int i = 0; i < 3; i++) {
            int v = -1;
            T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 1);
            T_EXPECT_EQ(v, i);
        }
        for (int i = 0; i < 3; i++)
            T_EXPECT_EQ(corio_join(id[i], NULL, T_BOUND), 0);
        T_EXPECT_EQ(n, 3);
        for (int i = 0; i < 3; i++) {
            T_EXPECT_EQ(log[i], i);
            T_EXPECT_EQ(a[i].res, 0);
        }

        /* Receivers parked in the order A, B, C get the values in that order. */
        n = 0;
        for (int i = 0; i < 3; i++) {
            a[i] = (struct one_arg){.ch = ch, .id = i, .log = log, .n = &n};
            T_EXPECT_EQ(corio_spawn(&id[i], NULL, one_receiver, &a[i]), 0);
            t_settle(1);
        }
        T_EXPECT_EQ(n, 0);
        for (int i = 0; i < 3; i++) {
            int v = 10 + i;
            T_EXPECT_EQ(corio_chan_send(ch, &v, T_BOUND), 0);
        }
        T_EXPECT_EQ(corio_chan_len(ch), 0); /* handed over, not buffered */
        for (int i = 0; i < 3; i++)
            T_EXPECT_EQ(corio_join(id[i], NULL, T_BOUND), 0);
        for (int i = 0; i < 3; i++) {
            T_EXPECT_EQ(log[i], i);
            T_EXPECT_EQ(a[i].res, 1);
            T_EXPECT_EQ(a[i].val, 10 + i);
        }
        corio_chan_free(ch);
    }
    return 0;
}

static void test_chan_fifo_waiters(void **state)
{
    t_run_checked(state, fifo_waiters_main, NULL);
}

/* ---- close ---------------------------------------------------------------------------------- */

static int close_main(void *arg)
{
    (void)arg;
    struct corio_chan *ch = chan(sizeof(int), 4);
    for (int i = 0; i < 3; i++)
        T_EXPECT_EQ(corio_chan_send(ch, &i, T_BOUND), 0);
    T_EXPECT_EQ(corio_chan_close(ch), 0);
    T_EXPECT_EQ(corio_chan_close(ch), -EALREADY);
    int v = 5;
    T_EXPECT_EQ(corio_chan_send(ch, &v, T_BOUND), -EPIPE);
    T_EXPECT_EQ(corio_chan_trysend(ch, &v), -EPIPE);
    T_EXPECT_EQ(corio_chan_len(ch), 3);
    /* Buffered values are still delivered, then the end of the stream, for good. */
    for (int i = 0; i < 3; i++) {
        T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 1);
        T_EXPECT_EQ(v, i);
    }
    T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 0);
    T_EXPECT_EQ(corio_chan_recv(ch, &v, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_chan_tryrecv(ch, &v), 0);
    T_EXPECT_EQ(corio_chan_close(ch), -EALREADY);
    corio_chan_free(ch);

    /* Parked receivers wake with 0. */
    ch = chan(sizeof(int), 0);
    int log[8], n = 0;
    struct one_arg a[3];
    corio_id id[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (struct one_arg){.ch = ch, .id = i, .log = log, .n = &n};
        T_EXPECT_EQ(corio_spawn(&id[i], NULL, one_receiver, &a[i]), 0);
    }
    t_settle(3);
    T_EXPECT_EQ(n, 0);
    T_EXPECT_EQ(corio_chan_close(ch), 0);
    for (int i = 0; i < 3; i++) {
        T_EXPECT_EQ(corio_join(id[i], NULL, T_BOUND), 0);
        T_EXPECT_EQ(a[i].res, 0);
        T_EXPECT_EQ(a[i].val, -1);
    }
    corio_chan_free(ch);

    /* Parked senders get -EPIPE; what was buffered before the close is still there. */
    ch = chan(sizeof(int), 1);
    v = 42;
    T_EXPECT_EQ(corio_chan_send(ch, &v, T_BOUND), 0);
    n = 0;
    for (int i = 0; i < 3; i++) {
        a[i] = (struct one_arg){.ch = ch, .id = i, .log = log, .n = &n};
        T_EXPECT_EQ(corio_spawn(&id[i], NULL, one_sender, &a[i]), 0);
    }
    t_settle(3);
    T_EXPECT_EQ(n, 0);
    T_EXPECT_EQ(corio_chan_close(ch), 0);
    for (int i = 0; i < 3; i++) {
        T_EXPECT_EQ(corio_join(id[i], NULL, T_BOUND), 0);
        T_EXPECT_EQ(a[i].res, -EPIPE);
    }
    T_EXPECT_EQ(corio_chan_len(ch), 1);
    T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 1);
    T_EXPECT_EQ(v, 42);
    T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 0);
    corio_chan_free(ch);
    return 0;
}

static void test_chan_close(void **state)
{
    t_run_checked(state, close_main, NULL);
}

/* ---- non-waiting forms, deadlines, -EPERM, bad arguments ------------------------------------- */

static int try_deadline_main(void *arg)
{
    (void)arg;
    struct corio_chan *ch = chan(sizeof(int), 2);
    int v = 1;
    T_EXPECT_EQ(corio_chan_tryrecv(ch, &v), -EAGAIN);
    T_EXPECT_EQ(corio_chan_trysend(ch, &v), 0);
    T_EXPECT_EQ(corio_chan_trysend(ch, &v), 0);
    T_EXPECT_EQ(corio_chan_trysend(ch, &v), -EAGAIN);
    T_EXPECT_EQ(corio_chan_len(ch), 2);

    /* A full channel: the send times out and leaves nothing behind. */
    int64_t t0 = corio_now();
    v = 77;
    T_EXPECT_EQ(corio_chan_send(ch, &v, t0 + CORIO_MS(25)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 25);
    T_EXPECT_EQ(corio_chan_send(ch, &v, corio_now() - 1), -ETIMEDOUT);
    T_EXPECT_EQ(corio_chan_len(ch), 2);
    T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 1);
    T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 1);
    T_EXPECT_EQ(v, 1);
    T_EXPECT_EQ(corio_chan_tryrecv(ch, &v), -EAGAIN); /* the 77 never went in */

    /* An empty channel: the receive times out. */
    t0 = corio_now();
    T_EXPECT_EQ(corio_chan_recv(ch, &v, t0 + CORIO_MS(25)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 25);
    T_EXPECT_EQ(corio_chan_recv(ch, &v, corio_now() - 1), -ETIMEDOUT);
    /* The timed-out receiver left the queue: a send is buffered, not handed to it. */
    v = 5;
    T_EXPECT_EQ(corio_chan_trysend(ch, &v), 0);
    T_EXPECT_EQ(corio_chan_len(ch), 1);
    /* A deadline in the past does not stop a call that need not wait. */
    T_EXPECT_EQ(corio_chan_recv(ch, &v, corio_now() - 1), 1);
    T_EXPECT_EQ(v, 5);
    T_EXPECT_EQ(corio_chan_send(ch, &v, corio_now() - 1), 0);
    corio_chan_free(ch);
    return 0;
}

static void test_chan_try_and_deadline(void **state)
{
    t_run_checked(state, try_deadline_main, NULL);
}

static void test_chan_outside_coroutine(void **state)
{
    (void)state;
    struct corio_chan *ch = NULL;
    assert_int_equal(corio_chan_new(&ch, 0, 4), -EINVAL);
    assert_int_equal(corio_chan_new(&ch, 65537, 4), -EINVAL);
    assert_int_equal(corio_chan_new(&ch, sizeof(int), 1), 0);
    int v = 3;
    /* What need not wait works anywhere; what would wait is -EPERM. */
    assert_int_equal(corio_chan_send(ch, &v, CORIO_FOREVER), 0);
    assert_int_equal(corio_chan_send(ch, &v, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_chan_trysend(ch, &v), -EAGAIN);
    v = 0;
    assert_int_equal(corio_chan_recv(ch, &v, CORIO_FOREVER), 1);
    assert_int_equal(v, 3);
    assert_int_equal(corio_chan_recv(ch, &v, CORIO_FOREVER), -EPERM);
    struct corio_select_case c = {.op = CORIO_SELECT_RECV, .ch = ch, .elem = &v};
    assert_int_equal(corio_select(&c, 1, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_chan_close(ch), 0);
    assert_int_equal(corio_chan_recv(ch, &v, CORIO_FOREVER), 0);
    corio_chan_free(ch);
    corio_chan_free(NULL);
}

/* ---- cancellation --------------------------------------------------------------------------- */

static int cancel_simple_main(void *arg)
{
    (void)arg;
    struct corio_chan *ch = chan(sizeof(int), 0);
    int log[8], n = 0;
    struct one_arg s = {.ch = ch, .id = 5, .log = log, .n = &n};
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, one_sender, &s), 0);
    t_settle(2);
    T_EXPECT_EQ(corio_cancel(id), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(s.res, -ECANCELED);
    int v = -1;
    T_EXPECT_EQ(corio_chan_tryrecv(ch, &v), -EAGAIN); /* its value did not stay behind */
    T_EXPECT_EQ(v, -1);

    struct one_arg r = {.ch = ch, .id = 6, .log = log, .n = &n};
    T_EXPECT_EQ(corio_spawn(&id, NULL, one_receiver, &r), 0);
    t_settle(2);
    T_EXPECT_EQ(corio_cancel(id), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(r.res, -ECANCELED);
    v = 9;
    T_EXPECT_EQ(corio_chan_trysend(ch, &v), -EAGAIN); /* nobody is left to take it */
    T_EXPECT_EQ(r.val, -1);

    /* A sender whose value was already taken is not robbed of its success by a late cancel. */
    s = (struct one_arg){.ch = ch, .id = 7, .log = log, .n = &n};
    T_EXPECT_EQ(corio_spawn(&id, NULL, one_sender, &s), 0);
    t_settle(2);
    T_EXPECT_EQ(corio_chan_recv(ch, &v, T_BOUND), 1);
    T_EXPECT_EQ(v, 7);
    T_EXPECT_EQ(corio_cancel(id), 0); /* it is runnable, not parked, by now */
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(s.res, 0);
    corio_chan_free(ch);
    return 0;
}

static void test_chan_cancel_parked(void **state)
{
    t_run_checked(state, cancel_simple_main, NULL);
}

/* Senders and receivers, some cancelled at random moments: every value whose send returned 0 is
 * received exactly once, and no other value is. */
#define CS_SENDERS 6
#define CS_RECEIVERS 4
#define CS_PER 400

struct chaos {
    struct corio_chan *ch;
    struct seen sent, got;
    corio_id snd[CS_SENDERS], rcv[CS_RECEIVERS];
    int snd_res[CS_SENDERS], rcv_res[CS_RECEIVERS];
    int cancelled_snd, cancelled_rcv;
    bool senders_done;
};

struct chaos_arg {
    struct chaos *c;
    int id;
};

static int chaos_sender(void *arg)
{
    struct chaos_arg *a = arg;
    struct chaos *c = a->c;
    for (int k = 0; k < CS_PER; k++) {
        uint32_t v = (uint32_t)(a->id * CS_PER + k);
        int r = corio_chan_send(c->ch, &v, T_BOUND);
        if (r != 0) {
            c->snd_res[a->id] = r;
            return 0;
        }
        seen_add(&c->sent, v);
        if (k % 7 == 3)
            corio_yield();
    }
    return 0;
}

static int chaos_receiver(void *arg)
{
    struct chaos_arg *a = arg;
    struct chaos *c = a->c;
    for (unsigned k = 0;; k++) {
        uint32_t v;
        int r = corio_chan_recv(c->ch, &v, T_BOUND);
        if (r != 1) {
            c->rcv_res[a->id] = r;
            return 0;
        }
        seen_add(&c->got, v);
        if (k % 5 == 1)
            corio_yield();
    }
}

static int chaos_main(void *arg)
{
    size_t cap = *(size_t *)arg;
    static struct chaos c;
    memset(&c, 0, sizeof(c));
    c.ch = chan(sizeof(uint32_t), cap);
    seen_init(&c.sent, CS_SENDERS * CS_PER);
    seen_init(&c.got, CS_SENDERS * CS_PER);
    struct chaos_arg sa[CS_SENDERS], ra[CS_RECEIVERS];
    for (int i = 0; i < CS_RECEIVERS; i++) {
        ra[i] = (struct chaos_arg){&c, i};
        T_EXPECT_EQ(corio_spawn(&c.rcv[i], NULL, chaos_receiver, &ra[i]), 0);
    }
    for (int i = 0; i < CS_SENDERS; i++) {
        sa[i] = (struct chaos_arg){&c, i};
        T_EXPECT_EQ(corio_spawn(&c.snd[i], NULL, chaos_sender, &sa[i]), 0);
    }
    /* Cancel half the senders and half the receivers, one every few scheduling rounds. */
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ cap;
    int todo_s = CS_SENDERS / 2, todo_r = CS_RECEIVERS / 2;
    for (int round = 0; todo_s + todo_r > 0 && round < 10000; round++) {
        t_settle(1 + (int)(t_xorshift(&rng) % 6));
        if (todo_s && (t_xorshift(&rng) & 1)) {
            int i = (int)(t_xorshift(&rng) % CS_SENDERS);
            if (!c.snd_res[i] && corio_cancel(c.snd[i]) == 0) {
                c.cancelled_snd++;
                todo_s--;
            }
        } else if (todo_r) {
            int i = (int)(t_xorshift(&rng) % CS_RECEIVERS);
            if (!c.rcv_res[i] && corio_cancel(c.rcv[i]) == 0) {
                c.cancelled_rcv++;
                todo_r--;
            }
        }
    }
    for (int i = 0; i < CS_SENDERS; i++)
        T_EXPECT_EQ(corio_join(c.snd[i], NULL, T_BOUND), 0);
    T_EXPECT_EQ(corio_chan_close(c.ch), 0);
    for (int i = 0; i < CS_RECEIVERS; i++)
        T_EXPECT_EQ(corio_join(c.rcv[i], NULL, T_BOUND), 0);
    /* Whatever a cancelled receiver left behind is still in the buffer. */
    uint32_t v;
    int r;
    while ((r = corio_chan_tryrecv(c.ch, &v)) == 1)
        seen_add(&c.got, v);
    T_EXPECT_EQ(r, 0);

    int snd_cancelled = 0, rcv_cancelled = 0, rcv_end = 0;
    for (int i = 0; i < CS_SENDERS; i++) {
        T_EXPECT(c.snd_res[i] == 0 || c.snd_res[i] == -ECANCELED);
        snd_cancelled += c.snd_res[i] == -ECANCELED;
    }
    for (int i = 0; i < CS_RECEIVERS; i++) {
        T_EXPECT(c.rcv_res[i] == 0 || c.rcv_res[i] == -ECANCELED);
        rcv_cancelled += c.rcv_res[i] == -ECANCELED;
        rcv_end += c.rcv_res[i] == 0;
    }
    T_EXPECT(snd_cancelled >= 1);
    T_EXPECT(rcv_cancelled >= 1);
    T_EXPECT(rcv_end >= CS_RECEIVERS - CS_RECEIVERS / 2);
    T_EXPECT_EQ(c.sent.dups, 0);
    T_EXPECT_EQ(c.got.dups, 0);
    T_EXPECT_EQ(c.got.bad, 0);
    T_EXPECT_EQ(c.got.count, c.sent.count);
    T_EXPECT_EQ(c.got.sum, c.sent.sum);
    T_EXPECT(c.sent.count < CS_SENDERS * CS_PER); /* the cancels cut some sends short */
    for (size_t i = 0; i < c.sent.n; i++)
        if (seen_has(&c.sent, i) != seen_has(&c.got, i)) {
            T_EXPECT_EQ(seen_has(&c.got, i), seen_has(&c.sent, i));
            break;
        }
    free(c.sent.bits);
    free(c.got.bits);
    corio_chan_free(c.ch);
    return 0;
}

static void test_chan_cancel_no_loss(void **state)
{
    size_t caps[] = {0, 2, 64};
    for (size_t i = 0; i < 3; i++) {
        t_run_checked(state, chaos_main, &caps[i]);
    }
}

/* ---- value sizes ---------------------------------------------------------------------------- */

struct rec40 {
    uint64_t id;
    char name[24];
    uint32_t a, b;
};
_Static_assert(sizeof(struct rec40) == 40, "a 40-byte value");

static int rec40_sender(void *arg)
{
    struct corio_chan *ch = arg;
    for (uint32_t i = 0; i < 200; i++) {
        struct rec40 r;
        memset(&r, 0, sizeof(r));
        r.id = 0x1122334455667788ull + i;
        snprintf(r.name, sizeof(r.name), "record-%u", (unsigned)i);
        r.a = i * 3;
        r.b = ~i;
        T_EXPECT_EQ(corio_chan_send(ch, &r, T_BOUND), 0);
    }
    return corio_chan_close(ch);
}

struct ptr_arg {
    struct corio_chan *ch;
    int *targets;
};

static int ptr_sender(void *arg)
{
    struct ptr_arg *a = arg;
    for (int i = 0; i < 100; i++) {
        int *p = &a->targets[i];
        T_EXPECT_EQ(corio_chan_send(a->ch, &p, T_BOUND), 0);
    }
    void *end = NULL;
    return corio_chan_send(a->ch, &end, T_BOUND);
}

static int value_sizes_main(void *arg)
{
    (void)arg;
    size_t caps[] = {0, 3};
    for (size_t c = 0; c < 2; c++) {
        struct corio_chan *ch = chan(sizeof(struct rec40), caps[c]);
        corio_id id;
        T_EXPECT_EQ(corio_spawn(&id, NULL, rec40_sender, ch), 0);
        struct rec40 r;
        uint32_t i = 0;
        int res;
        while ((res = corio_chan_recv(ch, &r, T_BOUND)) == 1) {
            char name[24];
            snprintf(name, sizeof(name), "record-%u", (unsigned)i);
            T_EXPECT(r.id == 0x1122334455667788ull + i);
            T_EXPECT_EQ(strcmp(r.name, name), 0);
            T_EXPECT_EQ(r.a, i * 3);
            T_EXPECT_EQ(r.b, ~i);
            i++;
        }
        T_EXPECT_EQ(res, 0);
        T_EXPECT_EQ(i, 200);
        T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
        corio_chan_free(ch);

        int targets[100];
        ch = chan(sizeof(void *), caps[c]);
        struct ptr_arg pa = {ch, targets};
        T_EXPECT_EQ(corio_spawn(&id, NULL, ptr_sender, &pa), 0);
        int *p;
        int k = 0;
        while (corio_chan_recv(ch, &p, T_BOUND) == 1 && p) {
            T_EXPECT(p == &targets[k]);
            k++;
        }
        T_EXPECT_EQ(k, 100);
        T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
        corio_chan_free(ch);
    }
    /* One byte and the largest value size. */
    struct corio_chan *ch = chan(1, 2);
    uint8_t b = 0xa5, b2 = 0;
    T_EXPECT_EQ(corio_chan_send(ch, &b, T_BOUND), 0);
    T_EXPECT_EQ(corio_chan_recv(ch, &b2, T_BOUND), 1);
    T_EXPECT_EQ(b2, 0xa5);
    corio_chan_free(ch);
    ch = chan(65536, 1);
    uint8_t *big = malloc(65536), *big2 = calloc(1, 65536);
    t_fill(big, 65536, 3, 0);
    T_EXPECT_EQ(corio_chan_send(ch, big, T_BOUND), 0);
    T_EXPECT_EQ(corio_chan_recv(ch, big2, T_BOUND), 1);
    T_EXPECT_EQ(memcmp(big, big2, 65536), 0);
    free(big);
    free(big2);
    corio_chan_free(ch);
    return 0;
}

static void test_chan_value_sizes(void **state)
{
    t_run_checked(state, value_sizes_main, NULL);
}

/* ---- many senders and receivers ------------------------------------------------------------- */

#define MN_SIDE 8
#define MN_PER 2000

struct mn {
    struct corio_chan *ch;
    struct corio_waitgroup senders;
    struct seen got;
    int per_receiver[MN_SIDE];
};

struct mn_arg {
    struct mn *m;
    int id;
};

static int mn_sender(void *arg)
{
    struct mn_arg *a = arg;
    for (uint32_t k = 0; k < MN_PER; k++) {
        uint32_t v = (uint32_t)a->id * MN_PER + k;
        T_EXPECT_EQ(corio_chan_send(a->m->ch, &v, T_BOUND), 0);
    }
    return corio_waitgroup_done(&a->m->senders);
}

static int mn_receiver(void *arg)
{
    struct mn_arg *a = arg;
    uint32_t v;
    int r;
    while ((r = corio_chan_recv(a->m->ch, &v, T_BOUND)) == 1) {
        seen_add(&a->m->got, v);
        a->m->per_receiver[a->id]++;
    }
    T_EXPECT_EQ(r, 0);
    return 0;
}

static int many_main(void *arg)
{
    size_t cap = *(size_t *)arg;
    struct mn m = {.senders = CORIO_WAITGROUP_INIT};
    m.ch = chan(sizeof(uint32_t), cap);
    seen_init(&m.got, MN_SIDE * MN_PER);
    struct mn_arg sa[MN_SIDE], ra[MN_SIDE];
    struct corio_group g = CORIO_GROUP_INIT;
    T_EXPECT_EQ(corio_waitgroup_add(&m.senders, MN_SIDE), 0);
    for (int i = 0; i < MN_SIDE; i++) {
        sa[i] = (struct mn_arg){&m, i};
        ra[i] = (struct mn_arg){&m, i};
        T_EXPECT_EQ(corio_group_spawn(NULL, &g, mn_receiver, &ra[i]), 0);
        T_EXPECT_EQ(corio_group_spawn(NULL, &g, mn_sender, &sa[i]), 0);
    }
    T_EXPECT_EQ(corio_waitgroup_wait(&m.senders, T_BOUND), 0);
    T_EXPECT_EQ(corio_chan_close(m.ch), 0);
    T_EXPECT_EQ(corio_group_wait(&g, T_BOUND), 0);
    T_EXPECT_EQ(m.got.count, MN_SIDE * MN_PER);
    T_EXPECT_EQ(m.got.dups, 0);
    T_EXPECT_EQ(m.got.bad, 0);
    for (int i = 0; i < MN_SIDE; i++)
        T_EXPECT(m.per_receiver[i] > 0); /* FIFO receivers share the work */
    free(m.got.bits);
    corio_chan_free(m.ch);
    return 0;
}

static void test_chan_many_senders_receivers(void **state)
{
    size_t caps[] = {0, 16};
    for (size_t i = 0; i < 2; i++)
        t_run_checked(state, many_main, &caps[i]);
}

/* ---- a three-stage pipeline ----------------------------------------------------------------- */

/* 7919 is prime and shares no factor with 10^6 (or with 10^5): x -> x * 7919 mod N is a
 * permutation, so the consumer can check that every value arrived exactly once. */
#define PIPE_MUL 7919u

struct pipeline {
    struct corio_chan *a, *b;
    uint32_t n;
    struct seen got;
    int64_t secs_ns;
};

static int pipe_producer(void *arg)
{
    struct pipeline *p = arg;
    for (uint32_t i = 0; i < p->n; i++)
        if (corio_chan_send(p->a, &i, T_BOUND) != 0) {
            T_EXPECT(false);
            break;
        }
    return corio_chan_close(p->a);
}

static int pipe_transformer(void *arg)
{
    struct pipeline *p = arg;
    uint32_t v;
    int r;
    while ((r = corio_chan_recv(p->a, &v, T_BOUND)) == 1) {
        uint32_t w = (uint32_t)(((uint64_t)v * PIPE_MUL) % p->n);
        if (corio_chan_send(p->b, &w, T_BOUND) != 0) {
            T_EXPECT(false);
            break;
        }
    }
    T_EXPECT_EQ(r, 0);
    return corio_chan_close(p->b);
}

static int pipe_consumer(void *arg)
{
    struct pipeline *p = arg;
    uint32_t v;
    int r;
    while ((r = corio_chan_recv(p->b, &v, T_BOUND)) == 1)
        seen_add(&p->got, v);
    T_EXPECT_EQ(r, 0);
    return 0;
}

static int pipeline_main(void *arg)
{
    struct pipeline *p = arg;
    p->a = chan(sizeof(uint32_t), 128);
    p->b = chan(sizeof(uint32_t), 128);
    seen_init(&p->got, p->n);
    int64_t t0 = corio_now();
    struct corio_group g = CORIO_GROUP_INIT;
    T_EXPECT_EQ(corio_group_spawn(NULL, &g, pipe_consumer, p), 0);
    T_EXPECT_EQ(corio_group_spawn(NULL, &g, pipe_transformer, p), 0);
    T_EXPECT_EQ(corio_group_spawn(NULL, &g, pipe_producer, p), 0);
    T_EXPECT_EQ(corio_group_wait(&g, T_DL(60000)), 0);
    T_EXPECT_EQ(corio_group_error(&g), 0);
    p->secs_ns = corio_now() - t0;
    corio_chan_free(p->a);
    corio_chan_free(p->b);
    return 0;
}

static void test_chan_pipeline_1m(void **state)
{
    /* valgrind runs this some 50 times slower: a tenth of the values still covers every path. */
    struct pipeline p = {.n = t_on_valgrind() ? 100000 : 1000000};
    t_run_checked(state, pipeline_main, &p);
    assert_int_equal(p.got.count, p.n);
    assert_int_equal(p.got.dups, 0);
    assert_int_equal(p.got.bad, 0);
    assert_true(p.got.sum == (uint64_t)p.n * (p.n - 1) / 2);
    for (uint32_t i = 0; i < p.n; i++)
        if (!seen_has(&p.got, i))
            fail_msg("value %u never arrived", i);
    print_message("pipeline: %u values through 3 stages in %.2f s\n", p.n, p.secs_ns / 1e9);
    free(p.got.bits);
}

/* ---- 10,000 coroutines on one channel ------------------------------------------------------- */

#define CONTEND 10000

struct contend {
    struct corio_chan *ch;
    int next_id;
    int sent, received;
};

static int contend_sender(void *arg)
{
    struct contend *c = arg;
    int id = c->next_id++; /* spawn order == first-run order == parking order */
    int r = corio_chan_send(c->ch, &id, T_DL(30000));
    if (r == 0)
        c->sent++;
    return r;
}

static int contend_receiver(void *arg)
{
    struct contend *c = arg;
    int v;
    int r = corio_chan_recv(c->ch, &v, T_DL(30000));
    if (r == 1)
        c->received++;
    return r == 1 ? 0 : -1;
}

static int contend_main(void *arg)
{
    (void)arg;
    struct contend c = {0};
    c.ch = chan(sizeof(int), 0);
    struct corio_group g = CORIO_GROUP_INIT;
    for (int i = 0; i < CONTEND; i++)
        if (corio_group_spawn(NULL, &g, contend_sender, &c) != 0) {
            T_EXPECT(false);
            break;
        }
    t_settle(2);
    T_EXPECT_EQ(c.sent, 0);
    /* 10,000 parked senders, served in the order they parked. */
    int out_of_order = 0;
    for (int i = 0; i < CONTEND; i++) {
        int v = -1;
        T_EXPECT_EQ(corio_chan_recv(c.ch, &v, T_BOUND), 1);
        out_of_order += v != i;
    }
    T_EXPECT_EQ(out_of_order, 0);
    T_EXPECT_EQ(corio_group_wait(&g, T_DL(30000)), 0);
    T_EXPECT_EQ(c.sent, CONTEND);

    /* And 10,000 parked receivers. */
    for (int i = 0; i < CONTEND; i++)
        if (corio_group_spawn(NULL, &g, contend_receiver, &c) != 0) {
            T_EXPECT(false);
            break;
        }
    t_settle(2);
    for (int i = 0; i < CONTEND; i++)
        T_EXPECT_EQ(corio_chan_send(c.ch, &i, T_BOUND), 0);
    T_EXPECT_EQ(corio_group_wait(&g, T_DL(30000)), 0);
    T_EXPECT_EQ(corio_group_error(&g), 0);
    T_EXPECT_EQ(c.received, CONTEND);
    corio_chan_free(c.ch);
    return 0;
}

static void test_chan_10k_contending(void **state)
{
    t_run_checked(state, contend_main, NULL);
}

/* ---- select --------------------------------------------------------------------------------- */

static int select_ready_main(void *arg)
{
    (void)arg;
    struct corio_chan *a = chan(sizeof(int), 4), *b = chan(sizeof(int), 4), *c = chan(sizeof(int), 1);
    int v = 10;
    T_EXPECT_EQ(corio_chan_trysend(b, &v), 0);
    v = 11;
    T_EXPECT_EQ(corio_chan_trysend(b, &v), 0);
    v = 99;
    T_EXPECT_EQ(corio_chan_trysend(c, &v), 0); /* full: the send case cannot proceed */
    struct corio_future f;
    T_EXPECT_EQ(corio_sleep_start(&f, T_BOUND), 0);
    int va = -1, vb = -1, vc = 5;
    struct corio_select_case cs[4] = {
        {.op = CORIO_SELECT_RECV, .ch = a, .elem = &va},
        {.op = CORIO_SELECT_RECV, .ch = b, .elem = &vb},
        {.op = CORIO_SELECT_SEND, .ch = c, .elem = &vc},
        {.op = CORIO_SELECT_FUTURE, .f = &f},
    };
    uint64_t sw = corio_loop_stats(corio_loop_current())->switches;
    T_EXPECT_EQ(corio_select(cs, 4, T_BOUND), 1);
    T_EXPECT_EQ(corio_loop_stats(corio_loop_current())->switches, sw); /* ready: no wait */
    T_EXPECT_EQ(cs[1].result, 1);
    T_EXPECT_EQ(vb, 10);
    T_EXPECT_EQ(va, -1);
    T_EXPECT_EQ(corio_chan_len(a), 0);
    T_EXPECT_EQ(corio_chan_len(b), 1);
    T_EXPECT_EQ(corio_chan_len(c), 1);

    /* Two ready: the first in order wins, the other keeps its value. */
    v = 20;
    T_EXPECT_EQ(corio_chan_trysend(a, &v), 0);
    T_EXPECT_EQ(corio_select(cs, 4, T_BOUND), 0);
    T_EXPECT_EQ(cs[0].result, 1);
    T_EXPECT_EQ(va, 20);
    T_EXPECT_EQ(corio_chan_len(a), 0);
    T_EXPECT_EQ(corio_chan_len(b), 1);
    T_EXPECT_EQ(corio_chan_len(c), 1);

    /* Only the send case ready. */
    T_EXPECT_EQ(corio_chan_tryrecv(b, &v), 1);
    T_EXPECT_EQ(v, 11);
    T_EXPECT_EQ(corio_chan_tryrecv(c, &v), 1);
    T_EXPECT_EQ(v, 99);
    T_EXPECT_EQ(corio_select(cs, 4, T_BOUND), 2);
    T_EXPECT_EQ(cs[2].result, 0);
    T_EXPECT_EQ(corio_chan_len(c), 1);
    T_EXPECT_EQ(corio_chan_tryrecv(c, &v), 1);
    T_EXPECT_EQ(v, 5);

    /* Only the future: cancelled, it is done, and select reports its result. */
    T_EXPECT_EQ(corio_chan_trysend(c, &v), 0);
    T_EXPECT_EQ(corio_future_cancel(&f), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ECANCELED);
    T_EXPECT_EQ(corio_select(cs, 4, T_BOUND), 3);
    T_EXPECT_EQ(cs[3].result, -ECANCELED);
    T_EXPECT_EQ(corio_chan_len(a), 0);
    T_EXPECT_EQ(corio_chan_len(b), 0);
    T_EXPECT_EQ(corio_chan_len(c), 1);
    corio_chan_free(a);
    corio_chan_free(b);
    corio_chan_free(c);
    return 0;
}

static void test_chan_select_ready(void **state)
{
    t_run_checked(state, select_ready_main, NULL);
}

static int select_deadline_main(void *arg)
{
    (void)arg;
    struct corio_chan *a = chan(sizeof(int), 0), *b = chan(sizeof(int), 2), *c = chan(sizeof(int), 0);
    int va = -1, vb = -1, vc = 3;
    struct corio_select_case cs[3] = {
        {.op = CORIO_SELECT_RECV, .ch = a, .elem = &va},
        {.op = CORIO_SELECT_RECV, .ch = b, .elem = &vb},
        {.op = CORIO_SELECT_SEND, .ch = c, .elem = &vc},
    };
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_select(cs, 3, t0 + CORIO_MS(25)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 25);
    T_EXPECT_EQ(corio_select(cs, 3, corio_now() - 1), -ETIMEDOUT);
    /* No waiter was left behind on any channel. */
    int v = 1;
    T_EXPECT_EQ(corio_chan_trysend(a, &v), -EAGAIN);
    T_EXPECT_EQ(corio_chan_tryrecv(c, &v), -EAGAIN);
    T_EXPECT_EQ(corio_chan_trysend(b, &v), 0);
    T_EXPECT_EQ(corio_chan_len(b), 1);
    T_EXPECT_EQ(va, -1);
    T_EXPECT_EQ(vb, -1);
    /* A ready case wins over a past deadline. */
    T_EXPECT_EQ(corio_select(cs, 3, corio_now() - 1), 1);
    T_EXPECT_EQ(vb, 1);
    corio_chan_free(a);
    corio_chan_free(b);
    corio_chan_free(c);
    return 0;
}

static void test_chan_select_deadline(void **state)
{
    t_run_checked(state, select_deadline_main, NULL);
}

static int select_future_main(void *arg)
{
    (void)arg;
    struct corio_chan *a = chan(sizeof(int), 0), *b = chan(sizeof(int), 0), *c = chan(sizeof(int), 0);
    int va = -1, vb = -1, vc = 3;
    struct corio_future f;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_sleep_start(&f, t0 + CORIO_MS(20)), 0);
    struct corio_select_case cs[4] = {
        {.op = CORIO_SELECT_RECV, .ch = a, .elem = &va},
        {.op = CORIO_SELECT_RECV, .ch = b, .elem = &vb},
        {.op = CORIO_SELECT_SEND, .ch = c, .elem = &vc},
        {.op = CORIO_SELECT_FUTURE, .f = &f},
    };
    T_EXPECT_EQ(corio_select(cs, 4, T_BOUND), 3);
    T_EXPECT_ELAPSED(t0, 20);
    T_EXPECT_EQ(cs[3].result, 0);
    T_EXPECT(corio_future_done(&f));
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 0);
    int v = 1;
    T_EXPECT_EQ(corio_chan_trysend(a, &v), -EAGAIN);
    T_EXPECT_EQ(corio_chan_trysend(b, &v), -EAGAIN);
    T_EXPECT_EQ(corio_chan_tryrecv(c, &v), -EAGAIN);
    T_EXPECT_EQ(va, -1);
    T_EXPECT_EQ(vb, -1);
    corio_chan_free(a);
    corio_chan_free(b);
    corio_chan_free(c);
    return 0;
}

static void test_chan_select_future_wakes(void **state)
{
    t_run_checked(state, select_future_main, NULL);
}

/* A select woken by a future is runnable but has not yet run when its channel waiters are looked
 * at by a peer: the peer must not hand a value to them (it would be lost) nor take one from them.
 * The peer yields in a loop, so it is on the run queue ahead of the select when the select's
 * future completes, and runs first. */
struct stale {
    struct corio_chan *a, *c;
    struct corio_future *f; /* the select's future, once started */
    int peer_send, peer_recv;
    int sel, sel_va;
};

static int stale_peer(void *arg)
{
    struct stale *s = arg;
    for (int i = 0; i < 1000000 && !(s->f && corio_future_done(s->f)); i++)
        corio_yield();
    T_EXPECT(s->f && corio_future_done(s->f));
    int v = 55;
    s->peer_send = corio_chan_trysend(s->a, &v);
    s->peer_recv = corio_chan_tryrecv(s->c, &v);
    return 0;
}

static int stale_selector(void *arg)
{
    struct stale *s = arg;
    struct corio_future f;
    int vc = 66;
    s->sel_va = -1;
    T_EXPECT_EQ(corio_nop_start(&f), 0);
    s->f = &f;
    struct corio_select_case cs[3] = {
        {.op = CORIO_SELECT_RECV, .ch = s->a, .elem = &s->sel_va},
        {.op = CORIO_SELECT_SEND, .ch = s->c, .elem = &vc},
        {.op = CORIO_SELECT_FUTURE, .f = &f},
    };
    s->sel = corio_select(cs, 3, T_BOUND);
    T_EXPECT_EQ(cs[2].result, 0);
    s->f = NULL;
    return 0;
}

static int select_stale_main(void *arg)
{
    (void)arg;
    struct stale s = {0};
    s.a = chan(sizeof(int), 0);
    s.c = chan(sizeof(int), 0);
    corio_id p, q;
    T_EXPECT_EQ(corio_spawn(&p, NULL, stale_peer, &s), 0);
    T_EXPECT_EQ(corio_spawn(&q, NULL, stale_selector, &s), 0);
    T_EXPECT_EQ(corio_join(p, NULL, T_BOUND), 0);
    T_EXPECT_EQ(corio_join(q, NULL, T_BOUND), 0);
    T_EXPECT_EQ(s.sel, 2);
    T_EXPECT_EQ(s.sel_va, -1);
    T_EXPECT_EQ(s.peer_send, -EAGAIN);
    T_EXPECT_EQ(s.peer_recv, -EAGAIN);
    corio_chan_free(s.a);
    corio_chan_free(s.c);
    return 0;
}

static void test_chan_select_stale_waiters(void **state)
{
    t_run_checked(state, select_stale_main, NULL);
}

struct later {
    struct corio_chan *ch;
    int ms;
    int val;
    int res;
};

static int later_send(void *arg)
{
    struct later *l = arg;
    T_EXPECT_EQ(corio_sleep(T_DL(l->ms)), 0);
    l->res = corio_chan_send(l->ch, &l->val, T_BOUND);
    return 0;
}

static int later_recv(void *arg)
{
    struct later *l = arg;
    T_EXPECT_EQ(corio_sleep(T_DL(l->ms)), 0);
    l->res = corio_chan_recv(l->ch, &l->val, T_BOUND);
    return 0;
}

static int later_close(void *arg)
{
    struct later *l = arg;
    T_EXPECT_EQ(corio_sleep(T_DL(l->ms)), 0);
    l->res = corio_chan_close(l->ch);
    return 0;
}

static int select_chan_wakes_main(void *arg)
{
    (void)arg;
    struct corio_chan *a = chan(sizeof(int), 0), *b = chan(sizeof(int), 0), *c = chan(sizeof(int), 0);
    struct corio_future f;
    T_EXPECT_EQ(corio_sleep_start(&f, T_BOUND), 0);
    int va = -1, vb = -1, vc = 31;
    struct corio_select_case cs[4] = {
        {.op = CORIO_SELECT_RECV, .ch = a, .elem = &va},
        {.op = CORIO_SELECT_RECV, .ch = b, .elem = &vb},
        {.op = CORIO_SELECT_SEND, .ch = c, .elem = &vc},
        {.op = CORIO_SELECT_FUTURE, .f = &f},
    };
    /* A value arrives on b. */
    struct later l = {.ch = b, .ms = 10, .val = 42, .res = 1};
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, later_send, &l), 0);
    T_EXPECT_EQ(corio_select(cs, 4, T_BOUND), 1);
    T_EXPECT_EQ(cs[1].result, 1);
    T_EXPECT_EQ(vb, 42);
    T_EXPECT_EQ(va, -1);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(l.res, 0); /* handed straight to the parked select */

    /* A receiver arrives on c: the send case proceeds. */
    l = (struct later){.ch = c, .ms = 10, .val = -1, .res = 0};
    T_EXPECT_EQ(corio_spawn(&id, NULL, later_recv, &l), 0);
    T_EXPECT_EQ(corio_select(cs, 4, T_BOUND), 2);
    T_EXPECT_EQ(cs[2].result, 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(l.res, 1);
    T_EXPECT_EQ(l.val, 31);
    T_EXPECT(!corio_future_done(&f));

    /* Closed while parked: the send case reports -EPIPE. */
    l = (struct later){.ch = c, .ms = 10};
    T_EXPECT_EQ(corio_spawn(&id, NULL, later_close, &l), 0);
    T_EXPECT_EQ(corio_select(cs, 4, T_BOUND), 2);
    T_EXPECT_EQ(cs[2].result, -EPIPE);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    /* Already closed: reported at once, recv as 0 and send as -EPIPE. */
    T_EXPECT_EQ(corio_select(&cs[2], 1, T_BOUND), 0);
    T_EXPECT_EQ(cs[2].result, -EPIPE);
    l = (struct later){.ch = a, .ms = 10};
    T_EXPECT_EQ(corio_spawn(&id, NULL, later_close, &l), 0);
    T_EXPECT_EQ(corio_select(cs, 2, T_BOUND), 0);
    T_EXPECT_EQ(cs[0].result, 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(corio_select(cs, 4, T_BOUND), 0);
    T_EXPECT_EQ(cs[0].result, 0);
    T_EXPECT_EQ(va, -1);

    T_EXPECT_EQ(corio_future_cancel(&f), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ECANCELED);
    corio_chan_free(a);
    corio_chan_free(b);
    corio_chan_free(c);
    return 0;
}

static void test_chan_select_channel_wakes_and_close(void **state)
{
    t_run_checked(state, select_chan_wakes_main, NULL);
}

struct sel_cancel {
    struct corio_chan *a, *b;
    int res, res2, fut;
};

static int sel_cancel_body(void *arg)
{
    struct sel_cancel *s = arg;
    struct corio_future f;
    T_EXPECT_EQ(corio_sleep_start(&f, T_BOUND), 0);
    int va = -1, vb = 8;
    struct corio_select_case cs[3] = {
        {.op = CORIO_SELECT_RECV, .ch = s->a, .elem = &va},
        {.op = CORIO_SELECT_SEND, .ch = s->b, .elem = &vb},
        {.op = CORIO_SELECT_FUTURE, .f = &f},
    };
    s->res = corio_select(cs, 3, T_BOUND);
    s->res2 = corio_select(cs, 3, T_BOUND); /* already cancelled */
    s->fut = (int)corio_await(&f, CORIO_FOREVER);         /* the await of a cancelled caller cancels the op */
    T_EXPECT_EQ(va, -1);
    return 0;
}

static int select_cancel_main(void *arg)
{
    (void)arg;
    struct sel_cancel s = {0};
    s.a = chan(sizeof(int), 0);
    s.b = chan(sizeof(int), 0);
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, sel_cancel_body, &s), 0);
    t_settle(3);
    T_EXPECT_EQ(corio_cancel(id), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(s.res, -ECANCELED);
    T_EXPECT_EQ(s.res2, -ECANCELED);
    T_EXPECT_EQ(s.fut, -ECANCELED);
    int v = 1;
    T_EXPECT_EQ(corio_chan_trysend(s.a, &v), -EAGAIN);
    T_EXPECT_EQ(corio_chan_tryrecv(s.b, &v), -EAGAIN);
    corio_chan_free(s.a);
    corio_chan_free(s.b);
    return 0;
}

static void test_chan_select_cancel(void **state)
{
    t_run_checked(state, select_cancel_main, NULL);
}

#define NCASES 20

static int select_many_main(void *arg)
{
    (void)arg;
    struct corio_chan *ch[NCASES];
    int vals[NCASES];
    struct corio_select_case cs[NCASES + 1];
    for (int i = 0; i < NCASES; i++) {
        ch[i] = chan(sizeof(int), 1);
        vals[i] = -1;
        cs[i] = (struct corio_select_case){.op = CORIO_SELECT_RECV, .ch = ch[i], .elem = &vals[i]};
    }
    /* Parked on 20 channels; a value arrives on the 18th. */
    struct later l = {.ch = ch[17], .ms = 10, .val = 1717};
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, later_send, &l), 0);
    T_EXPECT_EQ(corio_select(cs, NCASES, T_BOUND), 17);
    T_EXPECT_EQ(cs[17].result, 1);
    T_EXPECT_EQ(vals[17], 1717);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(l.res, 0);
    /* Several ready: the lowest index; the others keep their values. */
    int v = 12;
    T_EXPECT_EQ(corio_chan_trysend(ch[12], &v), 0);
    v = 19;
    T_EXPECT_EQ(corio_chan_trysend(ch[19], &v), 0);
    v = 9;
    T_EXPECT_EQ(corio_chan_trysend(ch[9], &v), 0);
    T_EXPECT_EQ(corio_select(cs, NCASES, T_BOUND), 9);
    T_EXPECT_EQ(vals[9], 9);
    T_EXPECT_EQ(corio_chan_len(ch[9]), 0);
    T_EXPECT_EQ(corio_chan_len(ch[12]), 1);
    T_EXPECT_EQ(corio_chan_len(ch[19]), 1);
    /* A deadline with more than 8 cases, and a send case among them. */
    for (int i = 0; i < NCASES; i++) {
        int x;
        while (corio_chan_tryrecv(ch[i], &x) == 1)
            ;
    }
    struct corio_chan *full = chan(sizeof(int), 1);
    v = 0;
    T_EXPECT_EQ(corio_chan_trysend(full, &v), 0);
    cs[NCASES] = (struct corio_select_case){.op = CORIO_SELECT_SEND, .ch = full, .elem = &v};
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_select(cs, NCASES + 1, t0 + CORIO_MS(20)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 20);
    for (int i = 0; i < NCASES; i++) {
        v = i;
        T_EXPECT_EQ(corio_chan_trysend(ch[i], &v), 0); /* buffered: no stale receiver took it */
        T_EXPECT_EQ(corio_chan_len(ch[i]), 1);
        corio_chan_free(ch[i]);
    }
    corio_chan_free(full);
    return 0;
}

static void test_chan_select_many_cases(void **state)
{
    t_run_checked(state, select_many_main, NULL);
}

static int other_future_owner(void *arg)
{
    struct corio_future *f = arg;
    T_EXPECT_EQ(corio_sleep_start(f, T_DL(5)), 0);
    return (int)corio_await(f, CORIO_FOREVER);
}

static int select_einval_main(void *arg)
{
    (void)arg;
    struct corio_chan *a = chan(sizeof(int), 1);
    int v = 0;
    struct corio_select_case c = {.op = CORIO_SELECT_RECV, .ch = a, .elem = &v};
    T_EXPECT_EQ(corio_select(&c, 0, T_BOUND), -EINVAL);
    T_EXPECT_EQ(corio_select(NULL, 1, T_BOUND), -EINVAL);
    c.ch = NULL;
    T_EXPECT_EQ(corio_select(&c, 1, T_BOUND), -EINVAL);
    c.ch = a;
    c.elem = NULL;
    T_EXPECT_EQ(corio_select(&c, 1, T_BOUND), -EINVAL);
    struct corio_future idle;
    memset(&idle, 0, sizeof(idle));
    struct corio_select_case fc = {.op = CORIO_SELECT_FUTURE, .f = &idle};
    T_EXPECT_EQ(corio_select(&fc, 1, T_BOUND), -EINVAL);
    fc.f = NULL;
    T_EXPECT_EQ(corio_select(&fc, 1, T_BOUND), -EINVAL);
    /* A future belongs to the coroutine that started it. */
    struct corio_future theirs;
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, other_future_owner, &theirs), 0);
    t_settle(1);
    fc.f = &theirs;
    T_EXPECT_EQ(corio_select(&fc, 1, T_BOUND), -EPERM);
    int res = -1;
    T_EXPECT_EQ(corio_join(id, &res, T_BOUND), 0);
    T_EXPECT_EQ(res, 0);
    corio_chan_free(a);
    return 0;
}

static void test_chan_select_invalid(void **state)
{
    t_run_checked(state, select_einval_main, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_TEST(test_chan_unbuffered_rendezvous),
        T_LOOP_TEST(test_chan_buffered_capacity),
        T_LOOP_TEST(test_chan_fifo_values),
        T_LOOP_TEST(test_chan_fifo_waiters),
        T_LOOP_TEST(test_chan_close),
        T_LOOP_TEST(test_chan_try_and_deadline),
        T_LOOP_TEST(test_chan_outside_coroutine),
        T_LOOP_TEST(test_chan_cancel_parked),
        T_LOOP_TEST(test_chan_cancel_no_loss),
        T_LOOP_TEST(test_chan_value_sizes),
        T_LOOP_TEST(test_chan_many_senders_receivers),
        T_LOOP_TEST(test_chan_pipeline_1m),
        T_LOOP_TEST(test_chan_10k_contending),
        T_LOOP_TEST(test_chan_select_ready),
        T_LOOP_TEST(test_chan_select_deadline),
        T_LOOP_TEST(test_chan_select_future_wakes),
        T_LOOP_TEST(test_chan_select_stale_waiters),
        T_LOOP_TEST(test_chan_select_channel_wakes_and_close),
        T_LOOP_TEST(test_chan_select_cancel),
        T_LOOP_TEST(test_chan_select_many_cases),
        T_LOOP_TEST(test_chan_select_invalid),
    };
    return T_RUN_TESTS(tests);
}
