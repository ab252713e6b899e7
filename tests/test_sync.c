/* Mutex, semaphore, wait group and event: exclusion, FIFO hand-off, the non-waiting forms,
 * deadlines, cancellation of waiters, and the -EPERM of every wait outside a coroutine.
 *
 * cmocka's assert_* longjmp off the coroutine's stack, so coroutine bodies record failed checks
 * with T_EXPECT/T_EXPECT_EQ (the first one is printed with file:line) and each test asserts, after
 * the loop has run, that none failed. Every wait that could hang carries a deadline. */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- mutex ---------------------------------------------------------------------------------- */

struct excl {
    struct corio_mutex mu;
    int counter;  /* incremented under the lock, with a yield between read and write */
    int inside;   /* coroutines inside the critical section */
    int max_inside;
    int iters;    /* per coroutine */
};

static int excl_worker(void *arg)
{
    struct excl *e = arg;
    for (int i = 0; i < e->iters; i++) {
        int r = corio_mutex_lock(&e->mu, T_BOUND);
        T_EXPECT_EQ(r, 0);
        if (r)
            return r;
        e->inside++;
        if (e->inside > e->max_inside)
            e->max_inside = e->inside;
        int v = e->counter;
        T_EXPECT_EQ(corio_yield(), 0);
        e->counter = v + 1;
        e->inside--;
        T_EXPECT_EQ(corio_mutex_unlock(&e->mu), 0);
        corio_yield();
    }
    return 0;
}

static int mutex_exclusion_main(void *arg)
{
    struct excl *e = arg;
    struct corio_group g = CORIO_GROUP_INIT;
    for (int i = 0; i < 100; i++)
        T_EXPECT_EQ(corio_group_spawn(NULL, &g, excl_worker, e), 0);
    T_EXPECT_EQ(corio_group_wait(&g, T_BOUND), 0);
    T_EXPECT_EQ(corio_group_error(&g), 0);
    return 0;
}

static void test_sync_mutex_exclusion(void **state)
{
    struct excl e = {.mu = CORIO_MUTEX_INIT, .iters = 10};
    t_run_checked(state, mutex_exclusion_main, &e);
    assert_int_equal(e.counter, 1000);
    assert_int_equal(e.max_inside, 1);
    assert_int_equal(e.inside, 0);
}

struct order {
    struct corio_mutex mu;
    struct corio_sem sem;
    int seq[64];   /* ids in the order they got the lock or permit */
    int n;
    int res[64];   /* each waiter's result */
    int done;      /* waiters that returned */
    int64_t deadline;
};

struct order_arg {
    struct order *o;
    int id;
};

static int sem_waiter(void *arg);

static int mutex_waiter(void *arg)
{
    struct order_arg *a = arg;
    struct order *o = a->o;
    int r = corio_mutex_lock(&o->mu, o->deadline);
    o->res[a->id] = r;
    if (r == 0) {
        o->seq[o->n++] = a->id;
        corio_yield(); /* hold it across a switch */
        T_EXPECT_EQ(corio_mutex_unlock(&o->mu), 0);
    }
    o->done++;
    return r;
}

static int mutex_fifo_main(void *arg)
{
    struct order *o = arg;
    struct order_arg a[5];
    T_EXPECT_EQ(corio_mutex_lock(&o->mu, T_BOUND), 0);
    for (int i = 0; i < 5; i++) {
        a[i] = (struct order_arg){o, i};
        T_EXPECT_EQ(corio_spawn(NULL, NULL, mutex_waiter, &a[i]), 0);
    }
    t_settle(3);
    T_EXPECT_EQ(o->n, 0);
    T_EXPECT_EQ(corio_mutex_unlock(&o->mu), 0);
    /* Ownership went straight to the first waiter: no barging in ahead of the queue. */
    T_EXPECT_EQ(corio_mutex_trylock(&o->mu), -EAGAIN);
    T_EXPECT_EQ(corio_mutex_unlock(&o->mu), -EPERM);
    while (o->done < 5)
        T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT_EQ(corio_mutex_trylock(&o->mu), 0);
    T_EXPECT_EQ(corio_mutex_unlock(&o->mu), 0);
    return 0;
}

static void test_sync_mutex_fifo(void **state)
{
    struct order o = {.mu = CORIO_MUTEX_INIT, .deadline = T_BOUND};
    t_run_checked(state, mutex_fifo_main, &o);
    assert_int_equal(o.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(o.seq[i], i);
        assert_int_equal(o.res[i], 0);
    }
}

struct mu_pair {
    struct corio_mutex mu;
    struct corio_event locked, release;
};

static int mutex_holder(void *arg)
{
    struct mu_pair *p = arg;
    T_EXPECT_EQ(corio_mutex_lock(&p->mu, T_BOUND), 0);
    corio_event_set(&p->locked);
    T_EXPECT_EQ(corio_event_wait(&p->release, T_BOUND), 0);
    T_EXPECT_EQ(corio_mutex_unlock(&p->mu), 0);
    return 0;
}

static int mutex_errors_main(void *arg)
{
    struct mu_pair *p = arg;
    corio_id h;
    T_EXPECT_EQ(corio_spawn(&h, NULL, mutex_holder, p), 0);
    T_EXPECT_EQ(corio_event_wait(&p->locked, T_BOUND), 0);
    /* Held by another coroutine. */
    T_EXPECT_EQ(corio_mutex_trylock(&p->mu), -EAGAIN);
    T_EXPECT_EQ(corio_mutex_unlock(&p->mu), -EPERM);
    corio_event_set(&p->release);
    T_EXPECT_EQ(corio_join(h, NULL, T_BOUND), 0);
    /* Free: unlocking it is not ours to do either. */
    T_EXPECT_EQ(corio_mutex_unlock(&p->mu), -EPERM);
    T_EXPECT_EQ(corio_mutex_trylock(&p->mu), 0);
    T_EXPECT_EQ(corio_mutex_trylock(&p->mu), -EAGAIN);
    T_EXPECT_EQ(corio_mutex_lock(&p->mu, T_BOUND), -EDEADLK);
    T_EXPECT_EQ(corio_mutex_lock(&p->mu, CORIO_FOREVER), -EDEADLK);
    T_EXPECT_EQ(corio_mutex_unlock(&p->mu), 0);
    T_EXPECT_EQ(corio_mutex_unlock(&p->mu), -EPERM);
    return 0;
}

static void test_sync_mutex_errors(void **state)
{
    struct mu_pair p = {.mu = CORIO_MUTEX_INIT, .locked = CORIO_EVENT_INIT,
                        .release = CORIO_EVENT_INIT};
    t_run_checked(state, mutex_errors_main, &p);
}

static int mutex_deadline_main(void *arg)
{
    struct mu_pair *p = arg;
    corio_id h;
    T_EXPECT_EQ(corio_spawn(&h, NULL, mutex_holder, p), 0);
    T_EXPECT_EQ(corio_event_wait(&p->locked, T_BOUND), 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_mutex_lock(&p->mu, t0 + CORIO_MS(30)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 30);
    /* A deadline already past fails at once, even with the mutex free later. */
    T_EXPECT_EQ(corio_mutex_lock(&p->mu, corio_now() - 1), -ETIMEDOUT);
    corio_event_set(&p->release);
    T_EXPECT_EQ(corio_join(h, NULL, T_BOUND), 0);
    /* The timed-out waiter left the queue: the unlock freed the mutex instead of handing it on. */
    T_EXPECT_EQ(corio_mutex_trylock(&p->mu), 0);
    T_EXPECT_EQ(corio_mutex_unlock(&p->mu), 0);
    /* A free mutex is taken even with a deadline in the past: nothing to wait for. */
    T_EXPECT_EQ(corio_mutex_lock(&p->mu, corio_now() - 1), 0);
    T_EXPECT_EQ(corio_mutex_unlock(&p->mu), 0);
    return 0;
}

static void test_sync_mutex_deadline(void **state)
{
    struct mu_pair p = {.mu = CORIO_MUTEX_INIT, .locked = CORIO_EVENT_INIT,
                        .release = CORIO_EVENT_INIT};
    t_run_checked(state, mutex_deadline_main, &p);
}

static int mutex_cancel_main(void *arg)
{
    struct order *o = arg;
    struct order_arg a[5];
    corio_id id[5];
    T_EXPECT_EQ(corio_mutex_lock(&o->mu, T_BOUND), 0);
    for (int i = 0; i < 5; i++) {
        a[i] = (struct order_arg){o, i};
        T_EXPECT_EQ(corio_spawn(&id[i], NULL, mutex_waiter, &a[i]), 0);
    }
    t_settle(3);
    /* Cancel the head, one in the middle and the tail of the queue. */
    T_EXPECT_EQ(corio_cancel(id[0]), 0);
    T_EXPECT_EQ(corio_cancel(id[2]), 0);
    T_EXPECT_EQ(corio_cancel(id[4]), 0);
    t_settle(2);
    T_EXPECT_EQ(o->done, 3);
    T_EXPECT_EQ(corio_mutex_unlock(&o->mu), 0);
    for (int i = 0; i < 5; i++) {
        int res = -1;
        T_EXPECT_EQ(corio_join(id[i], &res, T_BOUND), 0);
        T_EXPECT_EQ(res, (i % 2 == 0) ? -ECANCELED : 0);
    }
    /* Nobody holds it now. */
    T_EXPECT_EQ(corio_mutex_trylock(&o->mu), 0);
    T_EXPECT_EQ(corio_mutex_unlock(&o->mu), 0);
    return 0;
}

/* A cancel that arrives after unlock has handed the mutex over, before the new owner ran: the
 * lock already succeeded, so it returns 0 and the mutex is not stranded. Same for a permit. */
static int handoff_cancel_main(void *arg)
{
    struct order *o = arg;
    struct order_arg a[2];
    corio_id id[2];
    T_EXPECT_EQ(corio_mutex_lock(&o->mu, T_BOUND), 0);
    a[0] = (struct order_arg){o, 0};
    T_EXPECT_EQ(corio_spawn(&id[0], NULL, mutex_waiter, &a[0]), 0);
    t_settle(2);
    T_EXPECT_EQ(corio_mutex_unlock(&o->mu), 0);
    T_EXPECT_EQ(corio_cancel(id[0]), 0);
    T_EXPECT_EQ(corio_join(id[0], NULL, T_BOUND), 0);
    T_EXPECT_EQ(o->res[0], 0);
    T_EXPECT_EQ(corio_mutex_trylock(&o->mu), 0); /* its owner unlocked it */
    T_EXPECT_EQ(corio_mutex_unlock(&o->mu), 0);

    corio_sem_init(&o->sem, 0);
    a[1] = (struct order_arg){o, 1};
    T_EXPECT_EQ(corio_spawn(&id[1], NULL, sem_waiter, &a[1]), 0);
    t_settle(2);
    corio_sem_release(&o->sem);
    T_EXPECT_EQ(corio_cancel(id[1]), 0);
    T_EXPECT_EQ(corio_join(id[1], NULL, T_BOUND), 0);
    T_EXPECT_EQ(o->res[1], 0);
    T_EXPECT_EQ(corio_sem_value(&o->sem), 0); /* the permit went to the waiter, once */
    return 0;
}

static void test_sync_cancel_after_handoff(void **state)
{
    struct order o = {.mu = CORIO_MUTEX_INIT, .deadline = T_BOUND};
    t_run_checked(state, handoff_cancel_main, &o);
}

static void test_sync_mutex_cancel_waiter(void **state)
{
    struct order o = {.mu = CORIO_MUTEX_INIT, .deadline = T_BOUND};
    t_run_checked(state, mutex_cancel_main, &o);
    assert_int_equal(o.n, 2);
    assert_int_equal(o.seq[0], 1);
    assert_int_equal(o.seq[1], 3);
    assert_int_equal(o.res[0], -ECANCELED);
    assert_int_equal(o.res[2], -ECANCELED);
    assert_int_equal(o.res[4], -ECANCELED);
}

#define MANY 10000

struct many {
    struct corio_mutex mu;
    int ids;       /* ids handed out: spawn order == first-run order */
    int next;      /* the id expected to get the lock next (FIFO) */
    int counter;
    int out_of_order;
};

static int many_worker(void *arg)
{
    struct many *m = arg;
    int id = m->ids++;
    int r = corio_mutex_lock(&m->mu, T_DL(30000));
    if (r)
        return r;
    if (id != m->next)
        m->out_of_order++;
    m->next = id + 1;
    int v = m->counter;
    corio_yield();
    m->counter = v + 1;
    return corio_mutex_unlock(&m->mu);
}

static int mutex_many_main(void *arg)
{
    struct many *m = arg;
    struct corio_group g = CORIO_GROUP_INIT;
    T_EXPECT_EQ(corio_mutex_lock(&m->mu, T_BOUND), 0);
    m->next = 0;
    for (int i = 0; i < MANY; i++)
        if (corio_group_spawn(NULL, &g, many_worker, m) != 0) {
            T_EXPECT(false);
            break;
        }
    t_settle(2);
    T_EXPECT_EQ(m->counter, 0);
    T_EXPECT_EQ(corio_mutex_unlock(&m->mu), 0);
    T_EXPECT_EQ(corio_group_wait(&g, T_DL(15000)), 0);
    T_EXPECT_EQ(corio_group_error(&g), 0);
    return 0;
}

static void test_sync_mutex_10k(void **state)
{
    struct many m = {.mu = CORIO_MUTEX_INIT};
    t_run_checked(state, mutex_many_main, &m);
    assert_int_equal(m.counter, MANY);
    assert_int_equal(m.out_of_order, 0);
}

/* ---- semaphore ------------------------------------------------------------------------------ */

struct sem_conc {
    struct corio_sem sem;
    int inside, max_inside, done;
};

static int sem_worker(void *arg)
{
    struct sem_conc *s = arg;
    for (int i = 0; i < 5; i++) {
        int r = corio_sem_acquire(&s->sem, T_BOUND);
        T_EXPECT_EQ(r, 0);
        if (r)
            return r;
        s->inside++;
        if (s->inside > s->max_inside)
            s->max_inside = s->inside;
        corio_yield();
        corio_yield();
        s->inside--;
        corio_sem_release(&s->sem);
    }
    s->done++;
    return 0;
}

static int sem_count_main(void *arg)
{
    struct sem_conc *s = arg;
    corio_sem_init(&s->sem, 3);
    T_EXPECT_EQ(corio_sem_value(&s->sem), 3);
    T_EXPECT_EQ(corio_sem_tryacquire(&s->sem), 0);
    T_EXPECT_EQ(corio_sem_acquire(&s->sem, T_BOUND), 0);
    T_EXPECT_EQ(corio_sem_tryacquire(&s->sem), 0);
    T_EXPECT_EQ(corio_sem_value(&s->sem), 0);
    T_EXPECT_EQ(corio_sem_tryacquire(&s->sem), -EAGAIN);
    T_EXPECT_EQ(corio_sem_value(&s->sem), 0);
    corio_sem_release(&s->sem);
    T_EXPECT_EQ(corio_sem_value(&s->sem), 1);
    corio_sem_release(&s->sem);
    T_EXPECT_EQ(corio_sem_value(&s->sem), 2);
    /* 2 permits shared by 6 coroutines: at most 2 inside at a time, and 2 reached. */
    struct corio_group g = CORIO_GROUP_INIT;
    for (int i = 0; i < 6; i++)
        T_EXPECT_EQ(corio_group_spawn(NULL, &g, sem_worker, s), 0);
    T_EXPECT_EQ(corio_group_wait(&g, T_BOUND), 0);
    T_EXPECT_EQ(s->done, 6);
    T_EXPECT_EQ(s->max_inside, 2);
    T_EXPECT_EQ(corio_sem_value(&s->sem), 2);
    return 0;
}

static void test_sync_sem_count(void **state)
{
    struct sem_conc s;
    memset(&s, 0, sizeof(s));
    t_run_checked(state, sem_count_main, &s);
}

static int sem_waiter(void *arg)
{
    struct order_arg *a = arg;
    struct order *o = a->o;
    int r = corio_sem_acquire(&o->sem, o->deadline);
    o->res[a->id] = r;
    if (r == 0)
        o->seq[o->n++] = a->id;
    o->done++;
    return r;
}

static int sem_fifo_main(void *arg)
{
    struct order *o = arg;
    struct order_arg a[6];
    corio_id id[6];
    corio_sem_init(&o->sem, 0);
    for (int i = 0; i < 6; i++) {
        a[i] = (struct order_arg){o, i};
        T_EXPECT_EQ(corio_spawn(&id[i], NULL, sem_waiter, &a[i]), 0);
    }
    t_settle(3);
    T_EXPECT_EQ(o->done, 0);
    /* Cancel waiter 3: the others keep their places. */
    T_EXPECT_EQ(corio_cancel(id[3]), 0);
    t_settle(1);
    T_EXPECT_EQ(o->done, 1);
    T_EXPECT_EQ(o->res[3], -ECANCELED);
    for (int k = 0; k < 5; k++) {
        corio_sem_release(&o->sem);
        /* The permit went to the waiter, not to the count: a newcomer cannot take it. */
        T_EXPECT_EQ(corio_sem_value(&o->sem), 0);
        T_EXPECT_EQ(corio_sem_tryacquire(&o->sem), -EAGAIN);
        t_settle(1);
        T_EXPECT_EQ(o->n, k + 1);
    }
    for (int i = 0; i < 6; i++)
        T_EXPECT_EQ(corio_join(id[i], NULL, T_BOUND), 0);
    corio_sem_release(&o->sem);
    T_EXPECT_EQ(corio_sem_value(&o->sem), 1);
    return 0;
}

static void test_sync_sem_fifo_cancel(void **state)
{
    struct order o = {.deadline = T_BOUND};
    t_run_checked(state, sem_fifo_main, &o);
    int want[5] = {0, 1, 2, 4, 5};
    assert_int_equal(o.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(o.seq[i], want[i]);
    assert_int_equal(o.res[3], -ECANCELED);
}

static int sem_deadline_main(void *arg)
{
    (void)arg;
    struct corio_sem s;
    corio_sem_init(&s, 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_sem_acquire(&s, t0 + CORIO_MS(30)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 30);
    T_EXPECT_EQ(corio_sem_acquire(&s, corio_now() - 1), -ETIMEDOUT);
    T_EXPECT_EQ(corio_sem_value(&s), 0);
    /* The timed-out waiter is gone: a release goes to the count. */
    corio_sem_release(&s);
    T_EXPECT_EQ(corio_sem_value(&s), 1);
    T_EXPECT_EQ(corio_sem_acquire(&s, corio_now() - 1), 0);
    T_EXPECT_EQ(corio_sem_value(&s), 0);
    return 0;
}

static void test_sync_sem_deadline(void **state)
{
    t_run_checked(state, sem_deadline_main, NULL);
}

/* ---- wait group ----------------------------------------------------------------------------- */

struct wg_ctx {
    struct corio_waitgroup wg;
    int finished;
};

struct wg_worker_arg {
    struct wg_ctx *c;
    int ms;
};

static int wg_worker(void *arg)
{
    struct wg_worker_arg *a = arg;
    T_EXPECT_EQ(corio_sleep(T_DL(a->ms)), 0);
    a->c->finished++;
    T_EXPECT_EQ(corio_waitgroup_done(&a->c->wg), 0);
    return 0;
}

static int wg_waiter(void *arg)
{
    struct wg_ctx *c = arg;
    T_EXPECT_EQ(corio_waitgroup_wait(&c->wg, T_BOUND), 0);
    T_EXPECT_EQ(c->finished, 3);
    return 0;
}

static int waitgroup_main(void *arg)
{
    struct wg_ctx *c = arg;
    struct wg_worker_arg a[3] = {{c, 30}, {c, 10}, {c, 20}};
    T_EXPECT_EQ(corio_waitgroup_add(&c->wg, 3), 0);
    for (int i = 0; i < 3; i++)
        T_EXPECT_EQ(corio_spawn(NULL, NULL, wg_worker, &a[i]), 0);
    corio_id w;
    T_EXPECT_EQ(corio_spawn(&w, NULL, wg_waiter, c), 0); /* a second waiter */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_waitgroup_wait(&c->wg, T_BOUND), 0);
    T_EXPECT_ELAPSED(t0, 30);
    T_EXPECT_EQ(c->finished, 3);
    T_EXPECT_EQ(corio_join(w, NULL, T_BOUND), 0);
    /* At zero: a wait returns at once, without a switch. */
    uint64_t sw = corio_loop_stats(corio_loop_current())->switches;
    T_EXPECT_EQ(corio_waitgroup_wait(&c->wg, T_BOUND), 0);
    T_EXPECT_EQ(corio_waitgroup_wait(&c->wg, corio_now() - 1), 0);
    T_EXPECT_EQ(corio_loop_stats(corio_loop_current())->switches, sw);
    return 0;
}

static void test_sync_waitgroup_wait(void **state)
{
    struct wg_ctx c = {.wg = CORIO_WAITGROUP_INIT};
    t_run_checked(state, waitgroup_main, &c);
}

static int waitgroup_errors_main(void *arg)
{
    (void)arg;
    struct corio_waitgroup wg = CORIO_WAITGROUP_INIT;
    T_EXPECT_EQ(corio_waitgroup_done(&wg), -EINVAL);
    T_EXPECT_EQ(corio_waitgroup_add(&wg, -1), -EINVAL);
    T_EXPECT_EQ(corio_waitgroup_add(&wg, 2), 0);
    T_EXPECT_EQ(corio_waitgroup_add(&wg, -3), -EINVAL); /* left unchanged: still 2 */
    T_EXPECT_EQ(corio_waitgroup_add(&wg, 0), 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_waitgroup_wait(&wg, t0 + CORIO_MS(20)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 20);
    T_EXPECT_EQ(corio_waitgroup_wait(&wg, corio_now() - 1), -ETIMEDOUT);
    T_EXPECT_EQ(corio_waitgroup_done(&wg), 0);
    T_EXPECT_EQ(corio_waitgroup_done(&wg), 0);
    T_EXPECT_EQ(corio_waitgroup_done(&wg), -EINVAL);
    T_EXPECT_EQ(corio_waitgroup_wait(&wg, T_BOUND), 0);
    return 0;
}

static void test_sync_waitgroup_errors_deadline(void **state)
{
    t_run_checked(state, waitgroup_errors_main, NULL);
}

/* ---- event ---------------------------------------------------------------------------------- */

struct ev_ctx {
    struct corio_event ev;
    int woken;
    int res[8];
    int64_t deadline;
};

struct ev_arg {
    struct ev_ctx *c;
    int id;
};

static int ev_waiter(void *arg)
{
    struct ev_arg *a = arg;
    int r = corio_event_wait(&a->c->ev, a->c->deadline);
    a->c->res[a->id] = r;
    if (r == 0)
        a->c->woken++;
    return r;
}

static int event_main(void *arg)
{
    struct ev_ctx *c = arg;
    struct ev_arg a[8];
    corio_id id[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (struct ev_arg){c, i};
        T_EXPECT_EQ(corio_spawn(&id[i], NULL, ev_waiter, &a[i]), 0);
    }
    t_settle(3);
    T_EXPECT(!corio_event_is_set(&c->ev));
    T_EXPECT_EQ(c->woken, 0);
    T_EXPECT_EQ(corio_cancel(id[5]), 0); /* one waiter cancelled before the set */
    corio_event_set(&c->ev);
    T_EXPECT(corio_event_is_set(&c->ev));
    corio_event_set(&c->ev); /* twice is harmless */
    for (int i = 0; i < 8; i++)
        T_EXPECT_EQ(corio_join(id[i], NULL, T_BOUND), 0);
    T_EXPECT_EQ(c->woken, 7);
    T_EXPECT_EQ(c->res[5], -ECANCELED);
    /* After the set: at once, whatever the deadline. */
    T_EXPECT_EQ(corio_event_wait(&c->ev, T_BOUND), 0);
    T_EXPECT_EQ(corio_event_wait(&c->ev, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_event_wait(&c->ev, corio_now() - 1), 0);
    return 0;
}

static void test_sync_event_set_wakes_all(void **state)
{
    struct ev_ctx c = {.ev = CORIO_EVENT_INIT, .deadline = T_BOUND};
    t_run_checked(state, event_main, &c);
}

static int event_deadline_main(void *arg)
{
    (void)arg;
    struct corio_event ev = CORIO_EVENT_INIT;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_event_wait(&ev, t0 + CORIO_MS(25)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 25);
    T_EXPECT_EQ(corio_event_wait(&ev, corio_now() - 1), -ETIMEDOUT);
    T_EXPECT(!corio_event_is_set(&ev));
    return 0;
}

static void test_sync_event_deadline(void **state)
{
    t_run_checked(state, event_deadline_main, NULL);
}

/* ---- cancelled callers, and calls outside a coroutine --------------------------------------- */

static int cancelled_self_main(void *arg)
{
    (void)arg;
    struct corio_mutex mu = CORIO_MUTEX_INIT;
    struct corio_sem sem;
    struct corio_waitgroup wg = CORIO_WAITGROUP_INIT;
    struct corio_event ev = CORIO_EVENT_INIT;
    corio_sem_init(&sem, 1);
    T_EXPECT_EQ(corio_waitgroup_add(&wg, 1), 0);
    T_EXPECT_EQ(corio_cancel(corio_self()), 0);
    T_EXPECT(corio_cancelled());
    /* A cancelled coroutine's calls fail with -ECANCELED when they would have to wait... */
    T_EXPECT_EQ(corio_waitgroup_wait(&wg, T_BOUND), -ECANCELED);
    T_EXPECT_EQ(corio_event_wait(&ev, T_BOUND), -ECANCELED);
    /* ...and succeed when they need not (header: "every later call of it that would suspend"),
     * so that its clean-up can take a free lock or a free permit. */
    T_EXPECT_EQ(corio_mutex_lock(&mu, T_BOUND), 0);
    T_EXPECT_EQ(corio_sem_acquire(&sem, T_BOUND), 0);
    T_EXPECT_EQ(corio_sem_value(&sem), 0);
    T_EXPECT_EQ(corio_sem_acquire(&sem, T_BOUND), -ECANCELED); /* none left: it would wait */
    T_EXPECT_EQ(corio_mutex_unlock(&mu), 0);
    corio_sem_release(&sem);
    T_EXPECT_EQ(corio_mutex_trylock(&mu), 0);
    T_EXPECT_EQ(corio_mutex_unlock(&mu), 0);
    T_EXPECT_EQ(corio_sem_tryacquire(&sem), 0);
    corio_sem_release(&sem);
    T_EXPECT_EQ(corio_waitgroup_done(&wg), 0);
    T_EXPECT_EQ(corio_waitgroup_wait(&wg, T_BOUND), 0); /* zero: no wait */
    return 0;
}

static void test_sync_cancelled_caller(void **state)
{
    t_run_checked(state, cancelled_self_main, NULL);
}

static void test_sync_eperm_outside(void **state)
{
    (void)state;
    struct corio_mutex mu = CORIO_MUTEX_INIT;
    struct corio_sem sem;
    struct corio_waitgroup wg = CORIO_WAITGROUP_INIT;
    struct corio_event ev = CORIO_EVENT_INIT;
    assert_int_equal(corio_mutex_lock(&mu, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_mutex_trylock(&mu), -EPERM);
    assert_int_equal(corio_mutex_unlock(&mu), -EPERM);
    corio_sem_init(&sem, 0);
    assert_int_equal(corio_sem_acquire(&sem, CORIO_FOREVER), -EPERM);
    corio_sem_init(&sem, 1); /* even with a permit free: a wait form is for coroutines */
    assert_int_equal(corio_sem_acquire(&sem, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_sem_value(&sem), 1);
    assert_int_equal(corio_sem_tryacquire(&sem), 0); /* does not wait: allowed */
    assert_int_equal(corio_waitgroup_wait(&wg, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_waitgroup_add(&wg, 1), 0);
    assert_int_equal(corio_waitgroup_wait(&wg, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_event_wait(&ev, CORIO_FOREVER), -EPERM);
    corio_event_set(&ev);
    assert_int_equal(corio_event_wait(&ev, CORIO_FOREVER), -EPERM);
}

/* Every sync object has an _init equal to its static initialiser; CORIO_SEM_INIT(n) holds n. */
static int inits_main(void *arg)
{
    (void)arg;
    struct corio_mutex m;
    memset(&m, 0xa5, sizeof(m));
    T_EXPECT_EQ(corio_mutex_init(&m), 0);
    T_EXPECT_EQ(corio_mutex_trylock(&m), 0);
    T_EXPECT_EQ(corio_mutex_trylock(&m), -EAGAIN);
    T_EXPECT_EQ(corio_mutex_unlock(&m), 0);
    struct corio_sem s = CORIO_SEM_INIT(2), s2;
    T_EXPECT_EQ(corio_sem_value(&s), 2);
    T_EXPECT_EQ(corio_sem_tryacquire(&s), 0);
    T_EXPECT_EQ(corio_sem_tryacquire(&s), 0);
    T_EXPECT_EQ(corio_sem_tryacquire(&s), -EAGAIN);
    corio_sem_release(&s);
    T_EXPECT_EQ(corio_sem_acquire(&s, T_BOUND), 0);
    memset(&s2, 0xa5, sizeof(s2));
    T_EXPECT_EQ(corio_sem_init(&s2, 1), 0);
    T_EXPECT_EQ(corio_sem_value(&s2), 1);
    struct corio_waitgroup wg;
    memset(&wg, 0xa5, sizeof(wg));
    T_EXPECT_EQ(corio_waitgroup_init(&wg), 0);
    T_EXPECT_EQ(corio_waitgroup_wait(&wg, T_BOUND), 0); /* zero: at once */
    struct corio_event ev;
    memset(&ev, 0xa5, sizeof(ev));
    T_EXPECT_EQ(corio_event_init(&ev), 0);
    T_EXPECT(!corio_event_is_set(&ev));
    T_EXPECT_EQ(corio_event_wait(&ev, corio_now() + CORIO_MS(1)), -ETIMEDOUT);
    corio_event_set(&ev);
    T_EXPECT_EQ(corio_event_wait(&ev, T_BOUND), 0);
    return 0;
}

static void test_sync_inits(void **state)
{
    t_run_checked(state, inits_main, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_TEST(test_sync_mutex_exclusion),
        T_LOOP_TEST(test_sync_mutex_fifo),
        T_LOOP_TEST(test_sync_mutex_errors),
        T_LOOP_TEST(test_sync_inits),
        T_LOOP_TEST(test_sync_mutex_deadline),
        T_LOOP_TEST(test_sync_mutex_cancel_waiter),
        T_LOOP_TEST(test_sync_cancel_after_handoff),
        T_LOOP_TEST(test_sync_mutex_10k),
        T_LOOP_TEST(test_sync_sem_count),
        T_LOOP_TEST(test_sync_sem_fifo_cancel),
        T_LOOP_TEST(test_sync_sem_deadline),
        T_LOOP_TEST(test_sync_waitgroup_wait),
        T_LOOP_TEST(test_sync_waitgroup_errors_deadline),
        T_LOOP_TEST(test_sync_event_set_wakes_all),
        T_LOOP_TEST(test_sync_event_deadline),
        T_LOOP_TEST(test_sync_cancelled_caller),
        T_LOOP_TEST(test_sync_eperm_outside),
    };
    return T_RUN_TESTS(tests);
}
