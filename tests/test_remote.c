/* Messages between threads and loops: corio_loop_post from other threads (every message run, in
 * each sender's order, on the loop's own thread), corio_spawn onto a loop from another thread (it
 * runs within milliseconds on a loop that sleeps, not at the loop's next timer), corio_loop_stop
 * from another thread, a loop that waits for messages instead of reporting a deadlock
 * (CORIO_LOOP_REMOTE), what a sleeping and a busy loop cost their senders (one eventfd write per
 * sleep, none while busy), and a loop freed with messages still queued. */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sleeps the calling thread (not a coroutine: the senders are plain threads). */
static void thread_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A loop that sleeps in the kernel while other threads send to it. Under valgrind it runs on
 * epoll: there the sender threads were seen not to run while the loop blocked in io_uring_enter,
 * so the wake-up could only be tested on the other backend (the protocol is the same). */
static struct corio_loop *sleeping_loop(unsigned flags)
{
    struct corio_loop_opts o = {.flags = flags};
    if (t_on_valgrind())
        o.backend = CORIO_BACKEND_EPOLL;
    return t_mkloop(&o);
}

/* ---- many messages from two senders ------------------------------------------------------------- */

enum { SENDERS = 2 };

struct flood {
    struct corio_loop *loop;
    pthread_t owner;              /* the loop's thread */
    long per_sender;              /* messages each sender posts */
    long next[SENDERS];           /* the sequence number expected next from each sender */
    long out_of_order;            /* messages that came before their turn */
    long wrong_thread;            /* messages run on another thread than the loop's */
    long ran;                     /* messages run */
    _Atomic int senders_done;     /* senders that posted their last message */
    struct corio_event all_in;    /* set when every message ran */
};

struct flood_msg {
    struct flood *f;
    int sender;
    long seq;
};

static void flood_run(void *arg)
{
    struct flood_msg *m = arg;
    struct flood *f = m->f;
    if (!pthread_equal(pthread_self(), f->owner))
        f->wrong_thread++;
    if (m->seq != f->next[m->sender])
        f->out_of_order++;
    f->next[m->sender] = m->seq + 1;
    if (++f->ran == f->per_sender * SENDERS)
        corio_event_set(&f->all_in);
    free(m);
}

struct sender {
    struct flood *f;
    int id;
    int err; /* the first post that failed */
};

static void *flood_sender(void *arg)
{
    struct sender *s = arg;
    for (long i = 0; i < s->f->per_sender; i++) {
        struct flood_msg *m = malloc(sizeof(*m));
        if (!m) {
            s->err = -ENOMEM;
            break;
        }
        *m = (struct flood_msg){s->f, s->id, i};
        int err = corio_loop_post(s->f->loop, flood_run, m);
        if (err) {
            free(m);
            s->err = err;
            break;
        }
    }
    atomic_fetch_add(&s->f->senders_done, 1);
    return NULL;
}

static int flood_wait(void *arg)
{
    struct flood *f = arg;
    T_EXPECT_EQ(corio_event_wait(&f->all_in, corio_now() + CORIO_SEC(60)), 0);
    return 0;
}

static void test_remote_post_flood(void **state)
{
    (void)state;
    struct flood f = {.loop = sleeping_loop(CORIO_LOOP_REMOTE), .owner = pthread_self()};
    /* A million in all; fewer under valgrind, which runs the threads one at a time. */
    f.per_sender = t_on_valgrind() ? 20000 : 500000;
    assert_int_equal(corio_event_init(&f.all_in), 0);
    assert_int_equal(corio_spawn(NULL, f.loop, flood_wait, &f), 0);
    pthread_t th[SENDERS];
    struct sender s[SENDERS];
    for (int i = 0; i < SENDERS; i++) {
        s[i] = (struct sender){&f, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, flood_sender, &s[i]), 0);
    }
    assert_int_equal(corio_loop_run(f.loop), 0);
    t_expect_ok();
    for (int i = 0; i < SENDERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(s[i].err, 0);
        assert_int_equal(f.next[i], f.per_sender);
    }
    assert_int_equal(f.ran, f.per_sender * SENDERS);
    assert_int_equal(f.out_of_order, 0);
    assert_int_equal(f.wrong_thread, 0);
    const struct corio_stats *st = corio_loop_stats(f.loop);
    assert_true(st->remote_msgs >= (uint64_t)f.ran);
    print_message("%ld messages from %d senders: %llu wake-ups of the loop\n", f.ran, SENDERS,
                  (unsigned long long)st->remote_wakes);
    /* Woken at most once per message, and far less: it finds messages while it is busy. */
    assert_true(st->remote_wakes <= (uint64_t)f.ran);
    corio_loop_free(f.loop);
}

/* ---- a spawn onto a sleeping loop ---------------------------------------------------------------- */

struct sleepy {
    struct corio_loop *loop;
    _Atomic int64_t ran_at;  /* when the spawned coroutine ran */
    struct corio_event done; /* set by it, ends the loop's sleeper */
    pthread_t owner;
    bool on_owner;           /* it ran on the loop's thread */
};

static int spawned(void *arg)
{
    struct sleepy *s = arg;
    atomic_store(&s->ran_at, corio_now());
    s->on_owner = pthread_equal(pthread_self(), s->owner);
    corio_event_set(&s->done);
    return 0;
}

/* The loop's only work: a coroutine that waits 10 s at most for the event. */
static int sleeper(void *arg)
{
    struct sleepy *s = arg;
    T_EXPECT_EQ(corio_event_wait(&s->done, corio_now() + CORIO_SEC(10)), 0);
    return 0;
}

static void *spawn_later(void *arg)
{
    struct sleepy *s = arg;
    thread_sleep_ms(50); /* the loop is asleep in the kernel by now */
    corio_id id = 1;
    int64_t t0 = corio_now();
    int err = corio_spawn(&id, s->loop, spawned, s); /* a handle across threads: refused */
    if (err != -EINVAL)
        return (void *)(intptr_t)1;
    err = corio_spawn(NULL, s->loop, spawned, s);
    if (err != 0)
        return (void *)(intptr_t)2;
    while (atomic_load(&s->ran_at) == 0)
        thread_sleep_ms(1);
    return (void *)(intptr_t)(atomic_load(&s->ran_at) - t0 < CORIO_MS(500) ? 0 : 3);
}

static void test_remote_spawn_wakes_sleeping_loop(void **state)
{
    (void)state;
    struct sleepy s = {.loop = sleeping_loop(0), .owner = pthread_self()};
    assert_int_equal(corio_event_init(&s.done), 0);
    assert_int_equal(corio_spawn(NULL, s.loop, sleeper, &s), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, spawn_later, &s), 0);
    int64_t t0 = corio_now();
    assert_int_equal(corio_loop_run(s.loop), 0);
    void *r;
    assert_int_equal(pthread_join(th, &r), 0);
    t_expect_ok();
    assert_int_equal((intptr_t)r, 0); /* 1: handle allowed, 2: spawn failed, 3: ran late */
    assert_true(s.on_owner);
    /* Well before the sleeper's 10 s. */
    assert_true(t_ms_since(t0) < 5000.0);
    assert_int_equal(corio_loop_stats(s.loop)->remote_wakes, 1);
    corio_loop_free(s.loop);
}

/* ---- a stop from another thread; a loop that waits for messages -------------------------------- */

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

struct stopper {
    struct corio_loop *loop;
    int cancelled; /* coroutines that saw the stop's cancel */
};

/* Waits for nothing the loop can provide: only the stop ends it. */
static int forever(void *arg)
{
    struct stopper *s = arg;
    struct corio_event never;
    T_EXPECT_EQ(corio_event_init(&never), 0);
    if (corio_event_wait(&never, CORIO_FOREVER) == -ECANCELED)
        s->cancelled++;
    return 0;
}

static void *stop_later(void *arg)
{
    struct stopper *s = arg;
    thread_sleep_ms(50);
    corio_loop_stop(s->loop);
    corio_loop_stop(s->loop); /* a second one adds nothing */
    return NULL;
}

static void test_remote_stop_from_another_thread(void **state)
{
    (void)state;
    /* Without CORIO_LOOP_REMOTE the loop would call this a deadlock at once; with it, it waits
     * for a message, here the stop. */
    struct stopper s = {.loop = sleeping_loop(CORIO_LOOP_REMOTE)};
    for (int i = 0; i < 3; i++)
        assert_int_equal(corio_spawn(NULL, s.loop, forever, &s), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_later, &s), 0);
    int64_t t0 = corio_now();
    assert_int_equal(corio_loop_run(s.loop), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    t_expect_ok();
    assert_int_equal(s.cancelled, 3);
    assert_true(t_ms_since(t0) >= 40.0);
    /* The loop runs again afterwards: the stop does not stick. */
    assert_int_equal(corio_spawn(NULL, s.loop, noop, NULL), 0);
    assert_int_equal(corio_loop_run(s.loop), 0);
    corio_loop_free(s.loop);
}

/* ---- a busy loop is not woken; a sleeping one once per sleep ------------------------------------ */

struct busy {
    struct corio_loop *loop;
    _Atomic int stop;       /* set by the sender when it is done */
    _Atomic long posted;    /* messages posted so far */
    long ran;               /* messages run */
};

static void busy_msg(void *arg)
{
    struct busy *b = arg;
    b->ran++;
}

/* Keeps the loop busy (never idle, so never asleep) until the sender is done. */
static int spinner(void *arg)
{
    struct busy *b = arg;
    while (!atomic_load(&b->stop) || b->ran < atomic_load(&b->posted))
        T_EXPECT_EQ(corio_yield(), 0);
    return 0;
}

static void *post_to_busy(void *arg)
{
    struct busy *b = arg;
    for (int i = 0; i < 1000; i++) {
        if (corio_loop_post(b->loop, busy_msg, b) != 0)
            break;
        atomic_fetch_add(&b->posted, 1);
    }
    atomic_store(&b->stop, 1);
    return NULL;
}

static void test_remote_busy_loop_not_woken(void **state)
{
    (void)state;
    struct busy b = {.loop = sleeping_loop(0)};
    assert_int_equal(corio_spawn(NULL, b.loop, spinner, &b), 0);
    /* The first message makes the loop take part, with one eventfd write whether it sleeps or
     * not; it is posted before the loop runs, so it is there at the loop's first look. */
    assert_int_equal(corio_loop_post(b.loop, busy_msg, &b), 0);
    atomic_store(&b.posted, 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_to_busy, &b), 0);
    assert_int_equal(corio_loop_run(b.loop), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    t_expect_ok();
    assert_int_equal(b.ran, 1001);
    const struct corio_stats *st = corio_loop_stats(b.loop);
    print_message("1001 messages to a busy loop: %llu eventfd wake-ups\n",
                  (unsigned long long)st->remote_wakes);
    /* At most the first message's write (read back if the loop reaped it before it ended): the
     * loop never slept. */
    assert_true(st->remote_wakes <= 1);
    corio_loop_free(b.loop);
}

struct pingpong {
    struct corio_loop *loop;
    struct corio_sem got;   /* released by each message */
    int rounds;
};

static void set_got(void *arg)
{
    struct pingpong *p = arg;
    corio_sem_release(&p->got);
}

/* Waits for each message in turn: the loop sleeps in between. */
static int waiter(void *arg)
{
    struct pingpong *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        T_EXPECT_EQ(corio_sem_acquire(&p->got, corio_now() + CORIO_SEC(10)), 0);
    }
    return 0;
}

static void *post_slowly(void *arg)
{
    struct pingpong *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        thread_sleep_ms(5); /* the loop is asleep again by then */
        if (corio_loop_post(p->loop, set_got, p) != 0)
            break;
    }
    return NULL;
}

static void test_remote_sleeping_loop_woken_once_each(void **state)
{
    (void)state;
    struct pingpong p = {.loop = sleeping_loop(0), .rounds = 20};
    assert_int_equal(corio_sem_init(&p.got, 0), 0);
    assert_int_equal(corio_spawn(NULL, p.loop, waiter, &p), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_slowly, &p), 0);
    assert_int_equal(corio_loop_run(p.loop), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    t_expect_ok();
    const struct corio_stats *st = corio_loop_stats(p.loop);
    assert_int_equal(st->remote_msgs, (uint64_t)p.rounds);
    /* One write per message: each found the loop asleep (a slow run may find it busy, never
     * more than one write per message). */
    assert_true(st->remote_wakes >= 1 && st->remote_wakes <= (uint64_t)p.rounds);
    print_message("%d messages 5 ms apart: %llu wake-ups\n", p.rounds,
                  (unsigned long long)st->remote_wakes);
    corio_loop_free(p.loop);
}

/* ---- edges ------------------------------------------------------------------------------------- */

static int counter;

static void count(void *arg)
{
    (void)arg;
    counter++;
}

static void spawn_from_message(void *arg)
{
    /* A posted function runs between coroutines, on the loop's thread: it may spawn there. */
    T_EXPECT_EQ(corio_spawn(NULL, arg, noop, NULL), 0);
    counter += 10;
}

static void test_remote_post_edges(void **state)
{
    (void)state;
    assert_int_equal(corio_loop_post(NULL, count, NULL), -EINVAL);
    struct corio_loop *l = t_mkloop(NULL);
    assert_int_equal(corio_loop_post(l, NULL, NULL), -EINVAL);
    /* From the loop's own thread, before it runs: run at its first iteration, in order. */
    counter = 0;
    assert_int_equal(corio_loop_post(l, count, NULL), 0);
    assert_int_equal(corio_loop_post(l, spawn_from_message, l), 0);
    assert_int_equal(corio_spawn(NULL, l, noop, NULL), 0);
    assert_int_equal(corio_loop_run(l), 0);
    t_expect_ok();
    assert_int_equal(counter, 11);
    assert_int_equal(corio_loop_stats(l)->remote_msgs, 2);
    /* Freed with messages queued: they are dropped, not run, and nothing leaks. */
    assert_int_equal(corio_loop_post(l, count, NULL), 0);
    assert_int_equal(corio_loop_post(l, count, NULL), 0);
    corio_loop_stop(l); /* the loop's own thread: at once, no message */
    corio_loop_free(l);
    assert_int_equal(counter, 11);
}

/* The same on the epoll backend, which waits for the eventfd through its own epoll set. */
static void test_remote_epoll_wakes(void **state)
{
    struct corio_loop_opts o = {.backend = CORIO_BACKEND_EPOLL};
    struct sleepy s = {.loop = t_mkloop(&o), .owner = pthread_self()};
    (void)state;
    assert_int_equal(corio_event_init(&s.done), 0);
    assert_int_equal(corio_spawn(NULL, s.loop, sleeper, &s), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, spawn_later, &s), 0);
    assert_int_equal(corio_loop_run(s.loop), 0);
    void *r;
    assert_int_equal(pthread_join(th, &r), 0);
    t_expect_ok();
    assert_int_equal((intptr_t)r, 0);
    assert_int_equal(corio_loop_stats(s.loop)->remote_wakes, 1);
    corio_loop_free(s.loop);
}

/* ---- loops on several threads -------------------------------------------------------------------- */

struct group_check {
    _Atomic int on_loop1;      /* the coroutine loop 0 spawned onto loop 1 ran there */
    _Atomic int pinned_ok;     /* threads that found themselves on one CPU */
    _Atomic int distinct;      /* threads whose loop is their own */
    pthread_t thread_of[2];    /* each loop's thread, written before recorded counts it */
    _Atomic int recorded;
    struct corio_sem back[2];  /* released by a message from the other loop */
};

static struct group_check gc;

static void release_back0(void *arg)
{
    (void)arg;
    corio_sem_release(&gc.back[0]);
}

static int on_loop1(void *arg)
{
    (void)arg;
    if (corio_thread_index() == 1 && pthread_equal(pthread_self(), gc.thread_of[1]))
        atomic_fetch_add(&gc.on_loop1, 1);
    /* Back to loop 0 with a message. */
    T_EXPECT_EQ(corio_loop_post(corio_thread_loop(0), release_back0, NULL), 0);
    return 0;
}

static int group_main(void *arg)
{
    (void)arg;
    unsigned i = corio_thread_index();
    T_EXPECT_EQ(corio_thread_count(), 2);
    T_EXPECT(i < 2);
    gc.thread_of[i] = pthread_self();
    atomic_fetch_add(&gc.recorded, 1);
    if (corio_thread_loop(i) == corio_loop_current())
        atomic_fetch_add(&gc.distinct, 1);
    T_EXPECT(corio_thread_loop(2) == NULL);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1)
        atomic_fetch_add(&gc.pinned_ok, 1);
    /* A nested group is refused. */
    T_EXPECT_EQ(corio_run_threads(2, noop, NULL, NULL, 0), -EINVAL);
    if (i == 0) {
        /* Loop 1's thread records itself first: wait until it has, then spawn onto it. */
        for (int k = 0; k < 1000 && atomic_load(&gc.recorded) < 2; k++)
            T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(1)), 0);
        T_EXPECT_EQ(corio_spawn(NULL, corio_thread_loop(1), on_loop1, NULL), 0);
        T_EXPECT_EQ(corio_sem_acquire(&gc.back[0], corio_now() + CORIO_SEC(10)), 0);
        corio_threads_stop(); /* the other loop waits for messages: stop it */
        return 0;
    }
    /* Loop 1 waits for what loop 0 sends, until the stop. */
    struct corio_event never = CORIO_EVENT_INIT;
    T_EXPECT_EQ(corio_event_wait(&never, CORIO_FOREVER), -ECANCELED);
    return -ECANCELED;
}

static void test_remote_run_threads(void **state)
{
    (void)state;
    memset(&gc, 0, sizeof(gc));
    assert_int_equal(corio_sem_init(&gc.back[0], 0), 0);
    cpu_set_t set0;
    assert_int_equal(sched_getaffinity(0, sizeof(set0), &set0), 0);
    int cpus_before = CPU_COUNT(&set0);
    struct corio_loop_opts o = {.backend = t_on_valgrind() ? CORIO_BACKEND_EPOLL : 0};
    assert_int_equal(corio_run_threads(2, group_main, NULL, &o, CORIO_THREADS_PIN), 0);
    t_expect_ok();
    assert_int_equal(atomic_load(&gc.on_loop1), 1);
    assert_int_equal(atomic_load(&gc.distinct), 2);
    assert_int_equal(atomic_load(&gc.pinned_ok), 2);
    assert_false(pthread_equal(gc.thread_of[0], gc.thread_of[1]));
    assert_true(pthread_equal(gc.thread_of[0], pthread_self())); /* the caller runs loop 0 */
    /* ... and gets its CPUs back. */
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    assert_int_equal(CPU_COUNT(&set), cpus_before);
    /* Outside a group. */
    assert_int_equal(corio_thread_index(), 0);
    assert_int_equal(corio_thread_count(), 1);
    assert_null(corio_thread_loop(1));
}

static int fail_on_one(void *arg)
{
    (void)arg;
    if (corio_thread_index() == 1)
        return -EIO;
    /* The others wait until the failure stops them. */
    struct corio_event never = CORIO_EVENT_INIT;
    return corio_event_wait(&never, CORIO_FOREVER);
}

static void test_remote_run_threads_failure(void **state)
{
    (void)state;
    /* One loop's failure ends them all and is the result; the stopped ones' -ECANCELED is not. */
    struct corio_loop_opts o = {.backend = t_on_valgrind() ? CORIO_BACKEND_EPOLL : 0};
    assert_int_equal(corio_run_threads(3, fail_on_one, NULL, &o, 0), -EIO);
    assert_int_equal(corio_run_threads(0, noop, NULL, NULL, 0), -EINVAL);
    assert_int_equal(corio_run_threads(2, NULL, NULL, NULL, 0), -EINVAL);
    /* Loops that all return at once end the group cleanly. */
    assert_int_equal(corio_run_threads(4, noop, NULL, &o, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_remote_post_flood),
        T_GUARD_TEST(test_remote_spawn_wakes_sleeping_loop),
        T_GUARD_TEST(test_remote_stop_from_another_thread),
        T_GUARD_TEST(test_remote_busy_loop_not_woken),
        T_GUARD_TEST(test_remote_sleeping_loop_woken_once_each),
        T_GUARD_TEST(test_remote_post_edges),
        T_GUARD_TEST(test_remote_epoll_wakes),
        T_GUARD_TEST(test_remote_run_threads),
        T_GUARD_TEST(test_remote_run_threads_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
