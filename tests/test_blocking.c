/* corio_blocking: a function on the loop's worker pool while its caller is parked and the other
 * coroutines run; the pool's bound and queue; cancel and deadline while queued (withdrawn, never
 * run) and while running (the caller goes on at once, the worker's write lands in a stack that is
 * kept for it); loops on several threads; freeing a loop with calls still running; the threads
 * started on demand and joined by corio_loop_free. */
#include "helpers.h"

#include "blocking.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sleeps @ms milliseconds on the calling (worker) thread. */
static void block_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The threads of this process. */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A call's shared state: the function sleeps @ms, then writes @value through @out and counts
 * itself; @started and @finished tell the loop's side where it is. */
struct call {
    int64_t ms;
    int result;          /* what fn returns */
    atomic_int started;  /* fn has begun */
    atomic_int finished; /* fn has written and returns */
    int64_t *out;        /* where fn writes @value at its end, or NULL */
    int64_t value;
};

static int slow_fn(void *p)
{
    struct call *c = p;
    atomic_store(&c->started, 1);
    block_ms(c->ms);
    if (c->out)
        *c->out = c->value;
    atomic_store(&c->finished, 1);
    return c->result;
}

/* Yields (1 ms sleeps) until *@flag is set, at most @ms. Returns whether it was set. */
static bool wait_flag(atomic_int *flag, int64_t ms)
{
    int64_t end = T_DL(ms * t_slowdown());
    while (!atomic_load(flag) && corio_now() < end)
        t_sleep_ms(1);
    return atomic_load(flag);
}

/* ---- the caller waits, the others run ----------------------------------------------------------
 */

struct progress {
    atomic_int done;
    unsigned ticks; /* iterations of the other coroutine while the call ran */
};

static int ticker(void *p)
{
    struct progress *pr = p;
    while (!atomic_load(&pr->done)) {
        t_sleep_ms(1);
        pr->ticks++;
    }
    return 0;
}

static int progress_body(void *p)
{
    struct progress *pr = p;
    T_EXPECT_EQ(corio_spawn(NULL, NULL, ticker, pr), 0);
    struct call c = {.ms = 100, .result = 42};
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_blocking(slow_fn, &c, T_BOUND), 42);
    T_EXPECT(t_ms_since(t0) >= 99);
    T_EXPECT(atomic_load(&c.finished));
    atomic_store(&pr->done, 1);
    return 0;
}

static void check_progress(struct corio_loop *l)
{
    struct progress pr = {0};
    t_run_checked((void **)&l, progress_body, &pr);
    /* 100 ms of 1 ms sleeps: about 100 ticks, fewer on a loaded machine or under valgrind. The
     * caller's 100 ms were the ticker's: a loop blocked by the call would have let it tick once
     * or twice. */
    print_message("ticks while the call ran: %u\n", pr.ticks);
    assert_true(pr.ticks >= 10);
}

static void test_blocking_others_run(void **state)
{
    check_progress(*state);
}

/* The same on the epoll backend, whichever the environment chose for the suite. */
static void test_blocking_others_run_epoll(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.backend = CORIO_BACKEND_EPOLL};
    struct corio_loop *l = t_mkloop(&o);
    check_progress(l);
    corio_loop_free(l);
}

/* ---- more calls than workers, and the queue's bound --------------------------------------------
 */

static atomic_int running, most_running;

static int counted_fn(void *p)
{
    int now = atomic_fetch_add(&running, 1) + 1;
    int seen = atomic_load(&most_running);
    while (now > seen && !atomic_compare_exchange_weak(&most_running, &seen, now))
        ;
    block_ms(10);
    atomic_fetch_sub(&running, 1);
    return (int)(intptr_t)p * 3;
}

static int many_one(void *p)
{
    intptr_t i = (intptr_t)p;
    T_EXPECT_EQ(corio_blocking(counted_fn, (void *)i, T_BOUND), i * 3);
    return 0;
}

static int many_body(void *p)
{
    (void)p;
    corio_id ids[24];
    for (intptr_t i = 0; i < 24; i++)
        T_EXPECT_EQ(corio_spawn(&ids[i], NULL, many_one, (void *)i), 0);
    for (int i = 0; i < 24; i++)
        T_EXPECT_EQ(corio_join(ids[i], NULL, T_BOUND), 0);
    return 0;
}

static void test_blocking_more_calls_than_workers(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.blocking_threads = 3};
    struct corio_loop *l = t_mkloop(&o);
    atomic_store(&running, 0);
    atomic_store(&most_running, 0);
    t_run_checked((void **)&l, many_body, NULL);
    corio_loop_free(l);
    /* 24 calls of 10 ms on 3 workers: they overlapped, and never more than 3 at once. */
    print_message("at most %d calls ran at once\n", atomic_load(&most_running));
    assert_true(atomic_load(&most_running) >= 2);
    assert_true(atomic_load(&most_running) <= 3);
}

struct bound {
    struct call first; /* holds the only worker */
    struct call queued[2];
    struct call refused;
};

static int bound_queued(void *p)
{
    struct call *c = p;
    T_EXPECT_EQ(corio_blocking(slow_fn, c, T_BOUND), c->result);
    return 0;
}

static int bound_body(void *p)
{
    struct bound *b = p;
    T_EXPECT_EQ(corio_spawn(NULL, NULL, bound_queued, &b->first), 0);
    if (!T_EXPECT(wait_flag(&b->first.started, 5000)))
        return -1;
    /* The worker is busy: these two wait in the queue, which then is full. */
    for (int i = 0; i < 2; i++)
        T_EXPECT_EQ(corio_spawn(NULL, NULL, bound_queued, &b->queued[i]), 0);
    t_settle(2);
    T_EXPECT_EQ(corio_blocking(slow_fn, &b->refused, T_BOUND), -EAGAIN);
    return 0;
}

static void test_blocking_queue_bound(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.blocking_threads = 1, .blocking_queue = 2};
    struct corio_loop *l = t_mkloop(&o);
    struct bound b = {.first = {.ms = 100, .result = 1},
                      .queued = {{.ms = 1, .result = 2}, {.ms = 1, .result = 3}},
                      .refused = {.ms = 1, .result = 4}};
    t_run_checked((void **)&l, bound_body, &b);
    corio_loop_free(l);
    assert_true(atomic_load(&b.queued[0].finished) && atomic_load(&b.queued[1].finished));
    assert_false(atomic_load(&b.refused.started));
}

/* ---- cancel ------------------------------------------------------------------------------------
 */

struct cancel_queued {
    struct call busy;   /* holds the only worker */
    struct call victim; /* queued behind it, then cancelled */
    struct call after;  /* queued after the victim was withdrawn */
    int victim_res;
    double victim_ms; /* from the cancel to the victim's return */
};

static int cq_busy(void *p)
{
    struct cancel_queued *s = p;
    T_EXPECT_EQ(corio_blocking(slow_fn, &s->busy, T_BOUND), 1);
    return 0;
}

static int cq_victim(void *p)
{
    struct cancel_queued *s = p;
    s->victim_res = corio_blocking(slow_fn, &s->victim, T_BOUND);
    return 0;
}

static int cq_body(void *p)
{
    struct cancel_queued *s = p;
    corio_id busy, victim;
    T_EXPECT_EQ(corio_spawn(&busy, NULL, cq_busy, s), 0);
    if (!T_EXPECT(wait_flag(&s->busy.started, 5000)))
        return -1;
    T_EXPECT_EQ(corio_spawn(&victim, NULL, cq_victim, s), 0);
    t_settle(2);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_cancel(victim), 0);
    T_EXPECT_EQ(corio_join(victim, NULL, T_BOUND), 0);
    s->victim_ms = t_ms_since(t0);
    /* FIFO: had the victim stayed queued, its function would run before this one. */
    T_EXPECT_EQ(corio_blocking(slow_fn, &s->after, T_BOUND), 3);
    T_EXPECT_EQ(corio_join(busy, NULL, T_BOUND), 0);
    return 0;
}

static void test_blocking_cancel_queued(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.blocking_threads = 1};
    struct corio_loop *l = t_mkloop(&o);
    struct cancel_queued s = {.busy = {.ms = 100, .result = 1},
                              .victim = {.ms = 1, .result = 2},
                              .after = {.ms = 1, .result = 3}};
    t_run_checked((void **)&l, cq_body, &s);
    corio_loop_free(l);
    assert_int_equal(s.victim_res, -ECANCELED);
    /* At once, not after the busy call's 100 ms. */
    assert_true(s.victim_ms < 50.0 * t_slowdown());
    assert_false(atomic_load(&s.victim.started));
    assert_true(atomic_load(&s.after.finished));
}

/* The victim's call writes, 150 ms after its cancel, into the victim's own frame. */
static atomic_int victim_wrote;

/* What the victim keeps in its body's frame and hands to its call. */
struct vframe {
    atomic_int started; /* the worker has taken the call */
    int64_t cell;       /* what the worker writes at the end */
};

static int late_write_fn(void *p)
{
    struct vframe *f = p;
    atomic_store(&f->started, 1);
    block_ms(150);
    f->cell = 0x5eed;
    atomic_store(&victim_wrote, 1);
    return 7;
}

struct cancel_running {
    struct vframe *frame; /* the victim's, while it waits */
    int victim_res;
    bool victim_returned;
    bool wrote_at_return; /* the worker had written when the victim's call returned */
    double victim_ms;     /* from its cancel to its return */
    uintptr_t cell_addr;  /* where the worker writes */
    uintptr_t later_addr; /* a local of a coroutine started after the victim ended */
    bool wrote_at_join;   /* the worker had written when the join returned */
};

static int cr_victim(void *p)
{
    struct cancel_running *s = p;
    struct vframe frame = {0};
    s->frame = &frame;
    s->cell_addr = (uintptr_t)&frame.cell;
    s->victim_res = corio_blocking(late_write_fn, &frame, T_BOUND);
    s->wrote_at_return = atomic_load(&victim_wrote);
    s->victim_returned = true;
    return 0; /* while the worker still sleeps: the body's frame is gone, its stack kept */
}

static int cr_later(void *p)
{
    struct cancel_running *s = p;
    volatile char local[64];
    memset((char *)local, 0xab, sizeof(local));
    s->later_addr = (uintptr_t)local;
    t_sleep_ms(1);
    return local[0] == (char)0xab ? 0 : -1;
}

static int cr_body(void *p)
{
    struct cancel_running *s = p;
    corio_id victim, later;
    T_EXPECT_EQ(corio_spawn(&victim, NULL, cr_victim, s), 0);
    t_settle(2);
    if (!T_EXPECT(s->frame && wait_flag(&s->frame->started, 5000)))
        return -1;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_cancel(victim), 0);
    while (!s->victim_returned && t_ms_since(t0) < 5000)
        t_settle(1);
    s->victim_ms = t_ms_since(t0);
    t_settle(2);
    /* The victim's body has returned while its call still runs: a coroutine started now must
     * not get its stack. */
    T_EXPECT_EQ(corio_spawn(&later, NULL, cr_later, s), 0);
    int r = -1;
    T_EXPECT_EQ(corio_join(later, &r, T_BOUND), 0);
    T_EXPECT_EQ(r, 0);
    T_EXPECT_EQ(corio_join(victim, NULL, T_BOUND), 0);
    s->wrote_at_join = atomic_load(&victim_wrote);
    return 0;
}

static void test_blocking_cancel_running(void **state)
{
    struct cancel_running s = {0};
    atomic_store(&victim_wrote, 0);
    t_run_checked(state, cr_body, &s);
    assert_int_equal(s.victim_res, -ECANCELED);
    /* At once: before the function's 150 ms were over, and before it had written. */
    assert_false(s.wrote_at_return);
    assert_true(s.victim_ms < 100.0 * t_slowdown());
    /* The victim, a zombie until the worker was done, kept its stack: the coroutine started
     * meanwhile got another. Two locals of body frames on one stack lie within a few hundred
     * bytes; on two stacks, a whole stack (64 KiB and a guard page) apart at least. */
    intptr_t d = (intptr_t)(s.later_addr - s.cell_addr);
    print_message("the victim's cell and the later coroutine's local: %ld bytes apart\n", (long)d);
    assert_true(d > 32 * 1024 || d < -32 * 1024);
    /* And the join saw the victim end only once the worker had written. */
    assert_true(s.wrote_at_join);
}

/* ---- deadlines ----------------------------------------------------------------------------- */

static int deadline_body(void *p)
{
    (void)p;
    /* Running: the caller goes on at the deadline, the function to its end. */
    struct call c = {.ms = 200, .result = 1};
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_blocking(slow_fn, &c, t0 + CORIO_MS(30)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 30);
    T_EXPECT(!atomic_load(&c.finished));
    /* Queued behind it on the only worker: withdrawn at its deadline, never run. */
    struct call q = {.ms = 1, .result = 2};
    t0 = corio_now();
    T_EXPECT_EQ(corio_blocking(slow_fn, &q, t0 + CORIO_MS(20)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 20);
    /* The coroutine's own deadline bounds it too. */
    struct call own = {.ms = 1, .result = 3};
    t0 = corio_now();
    T_EXPECT_EQ(corio_set_deadline(t0 + CORIO_MS(20), NULL), 0);
    T_EXPECT_EQ(corio_blocking(slow_fn, &own, CORIO_FOREVER), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 20);
    T_EXPECT_EQ(corio_set_deadline(CORIO_FOREVER, NULL), 0);
    /* A deadline already past: nothing is submitted. */
    struct call past = {.ms = 1, .result = 4};
    T_EXPECT_EQ(corio_blocking(slow_fn, &past, corio_now() - 1), -ETIMEDOUT);
    /* The worker is free again once the first call is over: the next one runs. */
    struct call next = {.ms = 1, .result = 5};
    T_EXPECT_EQ(corio_blocking(slow_fn, &next, T_BOUND), 5);
    T_EXPECT(atomic_load(&c.finished));
    T_EXPECT(!atomic_load(&q.started) && !atomic_load(&own.started));
    T_EXPECT(!atomic_load(&past.started));
    return 0;
}

static void test_blocking_deadline(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.blocking_threads = 1};
    struct corio_loop *l = t_mkloop(&o);
    t_run_checked((void **)&l, deadline_body, NULL);
    corio_loop_free(l);
}

/* ---- errors -------------------------------------------------------------------------------- */

static int fail_fn(void *p)
{
    (void)p;
    return -EIO;
}

static int errors_body(void *p)
{
    (void)p;
    T_EXPECT_EQ(corio_blocking(NULL, NULL, T_BOUND), -EINVAL);
    T_EXPECT_EQ(corio_blocking(fail_fn, NULL, T_BOUND), -EIO); /* fn's own result, as it is */
    struct call c = {.ms = 1, .result = 9};
    T_EXPECT_EQ(corio_cancel(corio_self()), 0);
    T_EXPECT_EQ(corio_blocking(slow_fn, &c, T_BOUND), -ECANCELED);
    T_EXPECT(!atomic_load(&c.started));
    return 0;
}

static void test_blocking_errors(void **state)
{
    struct call c = {.ms = 1};
    assert_int_equal(corio_blocking(slow_fn, &c, T_BOUND), -EPERM);
    assert_false(atomic_load(&c.started));
    t_run_checked(state, errors_body, NULL);
}

/* ---- several loops on several threads -------------------------------------------------------- */

#define N_THREADS 4
#define N_CALLS 16

static int add_fn(void *p)
{
    int64_t *v = p;
    block_ms(1);
    *v += 1; /* the caller reads it after the call: the pool's hand-off orders the two */
    return (int)*v;
}

static int thread_call(void *p)
{
    int64_t *v = p;
    for (int i = 1; i <= 3; i++)
        T_EXPECT_EQ(corio_blocking(add_fn, v, T_BOUND), i);
    return 0;
}

static void *thread_main(void *p)
{
    int64_t *vals = p;
    struct corio_loop_opts o = {.blocking_threads = 3};
    struct corio_loop *l;
    if (!T_EXPECT_EQ(corio_loop_new(&l, &o), 0))
        return NULL;
    for (int i = 0; i < N_CALLS; i++)
        T_EXPECT_EQ(corio_spawn(NULL, l, thread_call, &vals[i]), 0);
    T_EXPECT_EQ(corio_loop_run(l), 0);
    corio_loop_free(l);
    return NULL;
}

static void test_blocking_threads(void **state)
{
    (void)state;
    static int64_t vals[N_THREADS][N_CALLS];
    memset(vals, 0, sizeof(vals));
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, vals[i]), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    t_expect_ok();
    for (int i = 0; i < N_THREADS; i++)
        for (int k = 0; k < N_CALLS; k++)
            assert_int_equal(vals[i][k], 3);
}

/* ---- the loop's end ------------------------------------------------------------------------ */

struct ending {
    struct call c; /* writes into heap memory the test frees after corio_loop_free */
    int res;
};

static int ending_call(void *p)
{
    struct ending *e = p;
    e->res = corio_blocking(slow_fn, &e->c, CORIO_FOREVER);
    return 0;
}

static int ending_stop(void *p)
{
    struct ending *e = p;
    if (T_EXPECT(wait_flag(&e->c.started, 5000)))
        corio_loop_stop(corio_loop_current());
    return 0;
}

static void test_blocking_loop_free_waits(void **state)
{
    (void)state;
    int base = count_threads();
    struct corio_loop_opts o = {.blocking_threads = 2};
    struct corio_loop *l = t_mkloop(&o);
    struct ending e = {.c = {.ms = 150, .result = 1, .value = 77}};
    e.c.out = malloc(sizeof(*e.c.out));
    assert_non_null(e.c.out);
    *e.c.out = 0;
    assert_int_equal(corio_spawn(NULL, l, ending_call, &e), 0);
    assert_int_equal(corio_spawn(NULL, l, ending_stop, &e), 0);
    /* The stop cancels the caller, which returns at once; the loop runs on until the worker is
     * done with the call, then the free joins the worker. */
    assert_int_equal(corio_loop_run(l), 0);
    corio_loop_free(l);
    t_expect_ok();
    assert_int_equal(e.res, -ECANCELED);
    assert_true(atomic_load(&e.c.finished));
    assert_int_equal(*e.c.out, 77);
    free(e.c.out); /* ASan would see a write after this; there is none left to come */
    assert_int_equal(count_threads(), base);
}

/* Threads start as calls need them, up to the bound, and the free joins them. */
static int demand_body(void *p)
{
    struct call *c = p;
    int base = count_threads();
    T_EXPECT_EQ(corio_blocking(slow_fn, &c[0], T_BOUND), 0);
    T_EXPECT_EQ(count_threads(), base + 1); /* one call, one worker: the bound is 3 */
    corio_id ids[5];
    for (int i = 0; i < 5; i++)
        T_EXPECT_EQ(corio_spawn(&ids[i], NULL, bound_queued, &c[1 + i]), 0);
    for (int i = 0; i < 5; i++)
        T_EXPECT_EQ(corio_join(ids[i], NULL, T_BOUND), 0);
    T_EXPECT_EQ(count_threads(), base + 3);
    return 0;
}

static void test_blocking_threads_on_demand(void **state)
{
    (void)state;
    int base = count_threads();
    struct corio_loop_opts o = {.blocking_threads = 3};
    struct corio_loop *l = t_mkloop(&o);
    /* A loop that makes no call has no worker. */
    assert_int_equal(count_threads(), base);
    struct call c[6];
    memset(c, 0, sizeof(c));
    for (int i = 1; i < 6; i++)
        c[i].ms = 30;
    t_run_checked((void **)&l, demand_body, c);
    corio_loop_free(l);
    assert_int_equal(count_threads(), base);
}

/* ---- a deadlock is still seen once calls are over ------------------------------------------- */

static int dl_victim(void *p)
{
    struct call *c = p;
    T_EXPECT_EQ(corio_blocking(slow_fn, c, T_BOUND), -ECANCELED);
    return 0;
}

static int dl_body(void *p)
{
    struct call *c = p;
    corio_id v;
    T_EXPECT_EQ(corio_spawn(&v, NULL, dl_victim, c), 0);
    t_settle(1); /* the victim has submitted; the worker may not have taken the call yet */
    T_EXPECT_EQ(corio_cancel(v), 0);
    T_EXPECT_EQ(corio_join(v, NULL, T_BOUND), 0);
    /* Nothing can set it: once the call is off the pool, the loop must see a deadlock. */
    struct corio_event ev = CORIO_EVENT_INIT;
    T_EXPECT_EQ(corio_event_wait(&ev, CORIO_FOREVER), -ECANCELED);
    return 0;
}

static void test_blocking_deadlock_seen(void **state)
{
    (void)state;
    /* A call cancelled before a worker took it leaves the pool with nothing out while the
     * loop's eventfd read is armed (the loop ends that read); one cancelled while it ran is
     * collected when the worker is done. Which one a round gets is a race: repeat. */
    int withdrawn = 0;
    for (int i = 0; i < 10; i++) {
        struct corio_loop *l = t_mkloop(NULL);
        struct call c = {.ms = 5};
        assert_int_equal(corio_spawn(NULL, l, dl_body, &c), 0);
        assert_int_equal(corio_loop_run(l), -EDEADLK);
        corio_loop_free(l);
        t_expect_ok();
        withdrawn += !atomic_load(&c.started);
    }
    print_message("calls withdrawn before a worker took them: %d of 10\n", withdrawn);
}

/* ---- the engine's form: who takes the argument back -------------------------------------- */

struct owned {
    struct call c;
    int retired;         /* times the retire hook ran */
    bool done_at_retire; /* the function had finished when it ran */
};

static void retire_owned(void *p)
{
    struct owned *o = p;
    o->retired++;
    o->done_at_retire = atomic_load(&o->c.finished);
}

static int owned_fn(void *p)
{
    return slow_fn(&((struct owned *)p)->c);
}

static int retire_body(void *p)
{
    (void)p;
    bool ran = false;
    /* Delivered: the result is fn's, the argument the caller's; no retire. */
    struct owned a = {.c = {.ms = 1, .result = 5}};
    T_EXPECT_EQ(corio__blocking_run(owned_fn, &a, T_BOUND, retire_owned, &ran), 5);
    T_EXPECT(ran);
    T_EXPECT_EQ(a.retired, 0);
    /* Left while fn runs: retired once, and only after fn has finished. */
    struct owned b = {.c = {.ms = 100, .result = 6}};
    T_EXPECT_EQ(corio__blocking_run(owned_fn, &b, T_DL(20), retire_owned, &ran), -ETIMEDOUT);
    T_EXPECT(!ran);
    T_EXPECT_EQ(b.retired, 0);
    /* Queued behind it on the only worker and withdrawn at its deadline: retired at once. */
    struct owned c = {.c = {.ms = 1, .result = 7}};
    T_EXPECT_EQ(corio__blocking_run(owned_fn, &c, T_DL(20), retire_owned, &ran), -ETIMEDOUT);
    T_EXPECT(!ran);
    T_EXPECT_EQ(c.retired, 1);
    T_EXPECT(!atomic_load(&c.c.started));
    /* Not started at all: retired at once too. */
    struct owned d = {0};
    T_EXPECT_EQ(corio__blocking_run(NULL, &d, T_BOUND, retire_owned, &ran), -EINVAL);
    T_EXPECT_EQ(d.retired, 1);
    /* The next call runs once b's function is over, which retired b. */
    struct owned e = {.c = {.ms = 1, .result = 8}};
    T_EXPECT_EQ(corio__blocking_run(owned_fn, &e, T_BOUND, retire_owned, &ran), 8);
    T_EXPECT_EQ(b.retired, 1);
    T_EXPECT(b.done_at_retire);
    T_EXPECT_EQ(a.retired + e.retired, 0);
    return 0;
}

static void test_blocking_retire(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.blocking_threads = 1};
    struct corio_loop *l = t_mkloop(&o);
    t_run_checked((void **)&l, retire_body, NULL);
    corio_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_FDS_TEST(test_blocking_others_run),
        T_GUARD_TEST(test_blocking_others_run_epoll),
        T_GUARD_TEST(test_blocking_more_calls_than_workers),
        T_GUARD_TEST(test_blocking_queue_bound),
        T_GUARD_TEST(test_blocking_cancel_queued),
        T_LOOP_FDS_TEST(test_blocking_cancel_running),
        T_GUARD_TEST(test_blocking_deadline),
        T_LOOP_FDS_TEST(test_blocking_errors),
        T_GUARD_TEST(test_blocking_threads),
        T_GUARD_TEST(test_blocking_loop_free_waits),
        T_GUARD_TEST(test_blocking_threads_on_demand),
        T_GUARD_TEST(test_blocking_deadlock_seen),
        T_GUARD_TEST(test_blocking_retire),
    };
    return T_RUN_TESTS(tests);
}
