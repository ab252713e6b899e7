/* A corio loop inside another event loop: the test's own epoll loop (epoll_create1, epoll_wait
 * with corio_loop_timeout) watches corio_loop_fd and calls corio_loop_step, and handles fds of its
 * own beside it (a timerfd whose ticks it writes into a pipe, and the pipe). Coroutines echo over
 * a socket pair (bytes checked), sleep (not early, not late, and without a busy loop: the outer
 * waits are counted), are woken by posts and spawns from another thread (through the fd, within
 * milliseconds), are stopped between steps, and wait for each other without being reported as a
 * deadlock. Steps from a coroutine, from inside corio_loop_run or from another thread are refused,
 * and so is the fd of a loop made without CORIO_LOOP_FOREIGN. On io_uring, the echo runs with
 * COOP_TASKRUN (what CORIO_LOOP_FOREIGN asks for), without TASKRUN_FLAG (the kernel's flags then
 * cannot show pending task work), with neither, and with SQPOLL. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* ---- the embedder: an epoll loop of the test's own ------------------------------------------- */

/* What every loop here is made with, except where a test says otherwise. */
static const struct corio_loop_opts foreign = {.flags = CORIO_LOOP_FOREIGN};

enum { EV_CORIO, EV_PIPE, EV_TICK };

struct outer {
    struct corio_loop *loop;
    int ep;           /* its epoll instance */
    int pipe[2];      /* its own fd: the ticks write here, it reads there */
    int tick;         /* a timerfd, or -1 */
    unsigned waits;   /* epoll_wait calls */
    unsigned fd_woke; /* times corio's fd was reported readable */
    unsigned eintr;   /* waits interrupted: on io_uring, by completion work run on the way out */
    unsigned ticks;   /* timer expirations, one byte each into the pipe */
    unsigned bytes;   /* bytes read back from the pipe */
    unsigned steps;   /* corio_loop_step calls */
};

static void outer_add(struct outer *o, int fd, uint32_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};
    assert_int_equal(epoll_ctl(o->ep, EPOLL_CTL_ADD, fd, &ev), 0);
}

/* Sets the embedder up around @loop; with @tick_ms > 0, its timer ticks that often. */
static void outer_init(struct outer *o, struct corio_loop *loop, int tick_ms)
{
    memset(o, 0, sizeof(*o));
    o->loop = loop;
    o->ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(o->ep >= 0);
    int fd = corio_loop_fd(loop);
    assert_true(fd >= 0);
    assert_int_equal(corio_loop_fd(loop), fd); /* the same fd for the loop's life */
    outer_add(o, fd, EV_CORIO);
    assert_int_equal(t_pipe(o->pipe, O_NONBLOCK), 0);
    outer_add(o, o->pipe[0], EV_PIPE);
    o->tick = -1;
    if (tick_ms > 0) {
        o->tick = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        assert_true(o->tick >= 0);
        struct itimerspec its = {{0, tick_ms * 1000000L}, {0, tick_ms * 1000000L}};
        assert_int_equal(timerfd_settime(o->tick, 0, &its, NULL), 0);
        outer_add(o, o->tick, EV_TICK);
    }
}

static void outer_fini(struct outer *o)
{
    close(o->ep);
    close(o->pipe[0]);
    close(o->pipe[1]);
    if (o->tick >= 0)
        close(o->tick);
}

/* What the embedder does with its own fds. */
static void outer_handle(struct outer *o, const struct epoll_event *e)
{
    if (e->data.u32 == EV_CORIO) {
        o->fd_woke++;
    } else if (e->data.u32 == EV_PIPE) {
        char buf[64];
        ssize_t n = read(o->pipe[0], buf, sizeof(buf));
        if (n > 0)
            o->bytes += (unsigned)n;
    } else {
        uint64_t exp = 0;
        if (read(o->tick, &exp, sizeof(exp)) == (ssize_t)sizeof(exp))
            for (uint64_t i = 0; i < exp; i++, o->ticks++)
                assert_int_equal(write(o->pipe[1], "t", 1), 1);
    }
}

/* One round of the embedder's loop: waits as corio_loop_timeout allows (never past @end), handles
 * what it was told of, and steps the corio loop. Returns the step's result, or -ETIMEDOUT when
 * @end passed first. */
static int outer_round(struct outer *o, int64_t end)
{
    int64_t ns = corio_loop_timeout(o->loop);
    assert_true(ns >= -1);
    int64_t left = end - corio_now();
    if (left <= 0)
        return -ETIMEDOUT;
    if (ns < 0 || ns > left)
        ns = left;
    int ms = (int)((ns + 999999) / 1000000); /* rounded up: never before the timer is due */
    struct epoll_event ev[4];
    int n = epoll_wait(o->ep, ev, 4, ms);
    o->waits++;
    if (n < 0 && errno == EINTR) {
        o->eintr++;
        n = 0;
    }
    assert_true(n >= 0);
    for (int i = 0; i < n; i++)
        outer_handle(o, &ev[i]);
    o->steps++;
    return corio_loop_step(o->loop);
}

/* Runs rounds until a step returns 0 (every coroutine ended) or fails, at most @limit_ms. Returns
 * the last step's result, or -ETIMEDOUT. */
static int outer_run(struct outer *o, int64_t limit_ms)
{
    int64_t end = corio_now() + CORIO_MS(limit_ms) * t_slowdown();
    int r;
    while ((r = outer_round(o, end)) > 0)
        ;
    return r;
}

/* The loop's fd is readable within @ms. */
static bool fd_readable(struct corio_loop *loop, int ms)
{
    struct pollfd p = {.fd = corio_loop_fd(loop), .events = POLLIN};
    return poll(&p, 1, ms * (int)t_slowdown()) == 1;
}

/* ---- an echo, a sleep and the embedder's own timer ------------------------------------------- */

enum { CHUNK = 4096, CHUNKS = 48 };

struct echo {
    int sv[2];
    long verified;    /* bytes the client got back intact */
    int64_t slept_ns; /* how long the 20 ms sleep took */
};

static int echo_server(void *arg)
{
    struct echo *e = arg;
    char buf[CHUNK];
    for (;;) {
        ssize_t n = corio_recv(e->sv[0], buf, sizeof(buf), 0, T_BOUND);
        if (n <= 0) {
            T_EXPECT_EQ(n, 0);
            return 0;
        }
        T_EXPECT_EQ(corio_send(e->sv[0], buf, (size_t)n, MSG_WAITALL, T_BOUND), n);
    }
}

static int echo_client(void *arg)
{
    struct echo *e = arg;
    static char out[CHUNK], in[CHUNK];
    for (int c = 0; c < CHUNKS; c++) {
        t_fill(out, sizeof(out), 7, (uint64_t)c * CHUNK);
        if (!T_EXPECT_EQ(corio_send(e->sv[1], out, sizeof(out), 0, T_BOUND), CHUNK))
            return -1;
        size_t got = 0;
        while (got < sizeof(in)) {
            ssize_t n = corio_recv(e->sv[1], in + got, sizeof(in) - got, 0, T_BOUND);
            if (!T_EXPECT(n > 0))
                return -1;
            got += (size_t)n;
        }
        if (!T_EXPECT_EQ(t_check(in, sizeof(in), 7, (uint64_t)c * CHUNK), -1))
            return -1;
        e->verified += CHUNK;
    }
    T_EXPECT_EQ(shutdown(e->sv[1], SHUT_WR), 0); /* the server sees the end and returns */
    return 0;
}

static int sleep_20ms(void *arg)
{
    int64_t *took = arg;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_sleep(t0 + CORIO_MS(20)), 0);
    *took = corio_now() - t0;
    return 0;
}

/* Keeps the loop alive until the embedder has read two bytes of its own pipe (on a loaded machine
 * the echo and the sleep may be over before its first tick). */
static int await_embedder(void *arg)
{
    const struct outer *o = arg;
    int64_t end = corio_now() + CORIO_SEC(5) * t_slowdown();
    while (o->bytes < 2 && corio_now() < end)
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(5)), 0);
    T_EXPECT(o->bytes >= 2);
    return 0;
}

/* The echo and the sleep on @loop (freed here), inside the embedder with a 5 ms timer; at most
 * @per_chunk outer waits for each chunk echoed. */
static void echo_scenario(struct corio_loop *loop, unsigned per_chunk)
{
    struct echo e = {0};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e.sv), 0);
    struct outer o;
    outer_init(&o, loop, 5);
    assert_int_equal(corio_spawn(NULL, loop, echo_server, &e), 0);
    assert_int_equal(corio_spawn(NULL, loop, echo_client, &e), 0);
    assert_int_equal(corio_spawn(NULL, loop, sleep_20ms, &e.slept_ns), 0);
    assert_int_equal(corio_spawn(NULL, loop, await_embedder, &o), 0);
    assert_int_equal(outer_run(&o, 10000), 0);
    t_expect_ok();
    assert_int_equal(e.verified, (long)CHUNK * CHUNKS);
    assert_true(e.slept_ns >= CORIO_MS(20));
    assert_true(e.slept_ns < CORIO_SEC(2) * t_slowdown());
    /* The embedder's own fds were served meanwhile; the last ticks' bytes may still be unread. */
    assert_true(o.bytes >= 2 && o.bytes <= o.ticks);
    for (unsigned before = ~0u; before != o.bytes;) {
        before = o.bytes;
        outer_handle(&o, &(struct epoll_event){.data.u32 = EV_PIPE});
    }
    assert_int_equal(o.bytes, o.ticks);
    /* A step per wake-up, not a spin: a few rounds per chunk, and per tick. */
    print_message("%s: %u waits, %u woken by corio's fd, %u ticks\n",
                  corio_backend_name(corio_loop_backend(loop)), o.waits, o.fd_woke, o.ticks);
    assert_true(o.waits <= CHUNKS * per_chunk + o.ticks * 3 + 20);
    assert_int_equal(corio_loop_step(loop), 0); /* finished, and it stays so */
    outer_fini(&o);
    close(e.sv[0]);
    close(e.sv[1]);
    corio_loop_free(loop);
}

static void test_foreign_echo_sleep(void **state)
{
    (void)state;
    echo_scenario(t_mkloop(&foreign), 8);
}

/* io_uring with COOP_TASKRUN but no TASKRUN_FLAG: the kernel's flags cannot show pending task
 * work; it runs on the thread's way back from its next system call and then posts the CQEs. */
static void test_foreign_echo_no_taskrun_flag(void **state)
{
    (void)state;
    struct corio_loop *loop = t_mkloop_refusing(&foreign, 1ull << CORIO_FEAT_TASKRUN_FLAG);
    t_need_uring(loop, true, "COOP_TASKRUN");
    t_need_or_free(loop, CORIO_FEAT_COOP_TASKRUN);
    assert_false(corio_loop_has(loop, CORIO_FEAT_TASKRUN_FLAG));
    echo_scenario(loop, 8);
}

/* io_uring with neither: a completion's task work interrupts the thread at once (a signal). */
static void test_foreign_echo_plain_taskrun(void **state)
{
    (void)state;
    struct corio_loop *loop = t_mkloop_refusing(&foreign, 1ull << CORIO_FEAT_COOP_TASKRUN);
    t_need_uring(loop, true, "a ring without COOP_TASKRUN");
    assert_false(corio_loop_has(loop, CORIO_FEAT_COOP_TASKRUN));
    assert_false(corio_loop_has(loop, CORIO_FEAT_DEFER_TASKRUN));
    echo_scenario(loop, 8);
}

/* SQPOLL: the poller completes what it submits on its own time, so most rounds are woken by the
 * fd rather than finding the next completion already there. */
static void test_foreign_echo_sqpoll(void **state)
{
    (void)state;
    struct corio_loop_opts opts = {.flags = CORIO_LOOP_SQPOLL | CORIO_LOOP_FOREIGN};
    struct corio_loop *loop = t_mkloop(&opts);
    t_need_uring(loop, true, "SQPOLL");
    t_need_or_free(loop, CORIO_FEAT_SQPOLL);
    echo_scenario(loop, 16);
}

/* ---- a sleep alone: the timeout is honoured and nothing spins -------------------------------- */

static void test_foreign_sleep_no_busy_loop(void **state)
{
    (void)state;
    struct corio_loop *loop = t_mkloop(&foreign);
    struct outer o;
    outer_init(&o, loop, 0);
    int64_t took = 0;
    assert_int_equal(corio_spawn(NULL, loop, sleep_20ms, &took), 0);
    assert_int_equal(corio_loop_timeout(loop), 0); /* a coroutine is ready */
    assert_int_equal(outer_run(&o, 2000), 0);
    t_expect_ok();
    assert_true(took >= CORIO_MS(20));
    assert_true(took < CORIO_SEC(2) * t_slowdown());
    /* Start it, wait for the timer, end it: a handful of waits, where a busy loop makes
     * thousands in 20 ms. */
    print_message("%u waits, %u steps\n", o.waits, o.steps);
    assert_true(o.waits <= 8);
    outer_fini(&o);
    corio_loop_free(loop);
}

/* ---- another thread posts and spawns --------------------------------------------------------- */

struct remote {
    struct corio_loop *loop;
    pthread_t owner;
    struct corio_event posted, spawned;
    _Atomic int64_t sent_at, ran_at;     /* the post: sent, run */
    _Atomic int64_t spawn_at, spawn_ran; /* the spawn: made, run */
    _Atomic int on_owner;                /* both ran on the loop's thread */
};

static void on_post(void *arg)
{
    struct remote *r = arg;
    atomic_store(&r->ran_at, corio_now());
    if (pthread_equal(pthread_self(), r->owner))
        atomic_fetch_add(&r->on_owner, 1);
    corio_event_set(&r->posted);
}

static int on_spawn(void *arg)
{
    struct remote *r = arg;
    atomic_store(&r->spawn_ran, corio_now());
    if (pthread_equal(pthread_self(), r->owner))
        atomic_fetch_add(&r->on_owner, 1);
    corio_event_set(&r->spawned);
    return 0;
}

static int wait_both(void *arg)
{
    struct remote *r = arg;
    T_EXPECT_EQ(corio_event_wait(&r->posted, T_BOUND), 0);
    T_EXPECT_EQ(corio_event_wait(&r->spawned, T_BOUND), 0);
    return 0;
}

static void thread_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void *sender(void *arg)
{
    struct remote *r = arg;
    thread_sleep_ms(50); /* the embedder sleeps in epoll_wait by now */
    atomic_store(&r->sent_at, corio_now());
    if (corio_loop_post(r->loop, on_post, r) != 0)
        return (void *)1;
    thread_sleep_ms(50);
    atomic_store(&r->spawn_at, corio_now());
    if (corio_spawn(NULL, r->loop, on_spawn, r) != 0)
        return (void *)2;
    /* Refused from here: the loop is the other thread's. */
    if (corio_loop_step(r->loop) != -EPERM || corio_loop_fd(r->loop) != -EPERM)
        return (void *)3;
    return NULL;
}

static void test_foreign_remote_wakes_fd(void **state)
{
    (void)state;
    struct remote r = {.owner = pthread_self()};
    r.loop = t_mkloop(&foreign);
    assert_int_equal(corio_event_init(&r.posted), 0);
    assert_int_equal(corio_event_init(&r.spawned), 0);
    struct outer o;
    outer_init(&o, r.loop, 0);
    assert_int_equal(corio_spawn(NULL, r.loop, wait_both, &r), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sender, &r), 0);
    assert_int_equal(outer_run(&o, 5000), 0);
    void *ret;
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_null(ret);
    t_expect_ok();
    assert_int_equal(atomic_load(&r.on_owner), 2);
    int64_t post_lat = atomic_load(&r.ran_at) - atomic_load(&r.sent_at);
    int64_t spawn_lat = atomic_load(&r.spawn_ran) - atomic_load(&r.spawn_at);
    print_message("post ran after %.3f ms, spawn after %.3f ms; %u waits, %u woken by the fd, "
                  "%u interrupted\n",
                  post_lat / 1e6, spawn_lat / 1e6, o.waits, o.fd_woke, o.eintr);
    /* Woken through the fd, not by the 10 s bound of the wait: within milliseconds (generous for
     * a loaded machine and sanitizers). */
    assert_true(post_lat >= 0 && post_lat < CORIO_MS(200) * t_slowdown());
    assert_true(spawn_lat >= 0 && spawn_lat < CORIO_MS(200) * t_slowdown());
    assert_true(o.fd_woke + o.eintr >= 2);
    assert_true(o.waits <= 16);
    outer_fini(&o);
    corio_loop_free(r.loop);
}

/* ---- refusals -------------------------------------------------------------------------------- */

static int step_inside(void *arg)
{
    struct corio_loop *loop = arg;
    T_EXPECT_EQ(corio_loop_step(loop), -EBUSY);
    T_EXPECT_EQ(corio_loop_run(loop), -EBUSY);
    return 0;
}

static void test_foreign_step_refused_inside(void **state)
{
    (void)state;
    struct corio_loop *loop = t_mkloop(&foreign);
    assert_int_equal(corio_loop_step(loop), 0); /* no coroutine: finished at once */
    /* From a coroutine that a step runs ... */
    assert_int_equal(corio_spawn(NULL, loop, step_inside, loop), 0);
    struct outer o;
    outer_init(&o, loop, 0);
    assert_int_equal(outer_run(&o, 2000), 0);
    t_expect_ok();
    /* ... and from one that corio_loop_run runs. */
    assert_int_equal(t_run1(loop, step_inside, loop), 0);
    t_expect_ok();
    outer_fini(&o);
    corio_loop_free(loop);
    /* A loop not made for it has no fd to give, though it can still be stepped. */
    loop = t_mkloop(NULL);
    assert_int_equal(corio_loop_fd(loop), -EINVAL);
    assert_int_equal(corio_spawn(NULL, loop, sleep_20ms, &(int64_t){0}), 0);
    int r;
    while ((r = corio_loop_step(loop)) == 1)
        ;
    assert_int_equal(r, 0);
    t_expect_ok();
    corio_loop_free(loop);
}

/* ---- stop between steps, from the loop's thread and from another ----------------------------- */

struct stopped {
    int sv[2];
    int slept, received; /* what the cancelled waits returned */
};

static int sleep_long(void *arg)
{
    struct stopped *s = arg;
    s->slept = corio_sleep(corio_now() + CORIO_SEC(10));
    return 0;
}

static int recv_forever(void *arg)
{
    struct stopped *s = arg;
    char c;
    s->received = (int)corio_recv(s->sv[0], &c, 1, 0, CORIO_FOREVER);
    return 0;
}

static void *stop_later(void *arg)
{
    thread_sleep_ms(50);
    corio_loop_stop(arg);
    return NULL;
}

/* Two coroutines wait; a stop (from the loop's thread between steps, or from @other) ends both
 * with -ECANCELED, and a step then returns 0, long before the sleep's 10 s. */
static void stop_scenario(bool other)
{
    struct corio_loop *loop = t_mkloop(&foreign);
    struct stopped s = {.slept = 1, .received = 1};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s.sv), 0);
    assert_int_equal(corio_spawn(NULL, loop, sleep_long, &s), 0);
    assert_int_equal(corio_spawn(NULL, loop, recv_forever, &s), 0);
    struct outer o;
    outer_init(&o, loop, 0);
    int64_t t0 = corio_now();
    /* Until both wait: then only the fd or the 10 s can bring work. */
    for (int i = 0; i < 10 && corio_loop_timeout(loop) == 0; i++)
        assert_int_equal(corio_loop_step(loop), 1);
    assert_int_not_equal(corio_loop_timeout(loop), 0);
    pthread_t th;
    if (other)
        assert_int_equal(pthread_create(&th, NULL, stop_later, loop), 0);
    else
        corio_loop_stop(loop);
    assert_int_equal(outer_run(&o, 5000), 0);
    if (other)
        assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(s.slept, -ECANCELED);
    assert_int_equal(s.received, -ECANCELED);
    assert_true(corio_now() - t0 < CORIO_SEC(2) * t_slowdown());
    outer_fini(&o);
    close(s.sv[0]);
    close(s.sv[1]);
    corio_loop_free(loop);
}

static void test_foreign_stop_between_steps(void **state)
{
    (void)state;
    stop_scenario(false);
}

static void test_foreign_stop_from_another_thread(void **state)
{
    (void)state;
    stop_scenario(true);
}

/* ---- coroutines that wait for each other are not a deadlock in step mode --------------------- */

struct waiter {
    struct corio_event ev;
    int res; /* what its wait returned */
};

static int wait_event(void *arg)
{
    struct waiter *w = arg;
    w->res = corio_event_wait(&w->ev, CORIO_FOREVER);
    return 0;
}

static void set_event(void *arg)
{
    struct waiter *w = arg;
    corio_event_set(&w->ev);
}

static void test_foreign_no_deadlock_report(void **state)
{
    (void)state;
    struct corio_loop *loop = t_mkloop(&foreign);
    struct waiter w = {.res = 1};
    assert_int_equal(corio_event_init(&w.ev), 0);
    assert_int_equal(corio_spawn(NULL, loop, wait_event, &w), 0);
    /* Nothing can wake it but the embedder: corio_loop_run would cancel it and say -EDEADLK; a
     * step leaves it waiting and says there is nothing to do but wait for the fd. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(corio_loop_step(loop), 1);
    assert_int_equal(corio_loop_timeout(loop), -1);
    assert_false(fd_readable(loop, 20));
    assert_int_equal(w.res, 1);
    /* The embedder wakes it with a post from its own callback: the fd says so. */
    assert_int_equal(corio_loop_post(loop, set_event, &w), 0);
    assert_true(fd_readable(loop, 1000));
    struct outer o;
    outer_init(&o, loop, 0);
    assert_int_equal(outer_run(&o, 2000), 0);
    assert_int_equal(w.res, 0); /* the event ended its wait, not a cancel */
    outer_fini(&o);
    corio_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_foreign_echo_sleep),
        T_GUARD_TEST(test_foreign_echo_plain_taskrun),
        T_GUARD_TEST(test_foreign_echo_no_taskrun_flag),
        T_GUARD_TEST(test_foreign_echo_sqpoll),
        T_GUARD_TEST(test_foreign_sleep_no_busy_loop),
        T_GUARD_TEST(test_foreign_remote_wakes_fd),
        T_GUARD_TEST(test_foreign_step_refused_inside),
        T_GUARD_TEST(test_foreign_stop_between_steps),
        T_GUARD_TEST(test_foreign_stop_from_another_thread),
        T_GUARD_TEST(test_foreign_no_deadlock_report),
    };
    if (t_uring_unavailable())
        return T_EXIT_SKIP;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
