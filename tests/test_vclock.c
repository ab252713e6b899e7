/* The virtual clock (CORIO_LOOP_VIRTUAL_CLOCK, CORIO_CLOCK=virtual): an idle loop jumps to its next
 * timer instead of waiting for it, so that long deadlines and timeouts are tested in no time.
 *
 * Each test measures both clocks: corio_now(), which must have advanced by at least the time
 * waited out, and the real CLOCK_MONOTONIC, which must show well under a second. What must not
 * jump is checked too: I/O that a coroutine of the loop causes completes before a later timer,
 * a call on the blocking pool holds the clock, and a loop on the real clock after a virtual one
 * on the same thread keeps real deadlines (times handed to the kernel are converted back). */
#include "helpers.h"

#include "corio/http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Wall time, which the virtual clock does not touch. */
static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct corio_loop *virtual_loop(void)
{
    const struct corio_loop_opts o = {.flags = CORIO_LOOP_VIRTUAL_CLOCK};
    return t_mkloop(&o);
}

/* Both clocks around one run of fn on a virtual loop. */
struct span {
    int64_t virt; /* corio_now() advanced by */
    int64_t wall; /* CLOCK_MONOTONIC advanced by */
};

static int run_virtual(corio_fn *fn, void *arg, struct span *sp)
{
    struct corio_loop *l = virtual_loop();
    int64_t w0 = wall_ns(), v0 = corio_now();
    int r = t_run1(l, fn, arg);
    sp->virt = corio_now() - v0;
    sp->wall = wall_ns() - w0;
    corio_loop_free(l);
    t_expect_ok();
    print_message("virtual %.3f s in %.1f ms of wall time\n", (double)sp->virt / 1e9,
                  (double)sp->wall / 1e6);
    return r;
}

/* ---- deadlines, sleeps ------------------------------------------------------------------------
 */

/* A recv on a connection that stays silent, bounded by a 60-second deadline. */
static int recv_60s(void *arg)
{
    (void)arg;
    int sv[2];
    T_EXPECT_EQ(t_tcp_pair(sv), 0);
    char b;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_recv(sv[0], &b, 1, 0, t0 + CORIO_SEC(60)), -ETIMEDOUT);
    T_EXPECT(corio_now() - t0 >= CORIO_SEC(60));
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_vclock_deadline_60s(void **state)
{
    (void)state;
    struct span sp;
    assert_int_equal(run_virtual(recv_60s, NULL, &sp), 0);
    assert_true(sp.virt >= CORIO_SEC(60));
    assert_true(sp.wall < CORIO_SEC(1));
}

/* A thousand one-second sleeps, and one sleep of an hour. */
static int sleeps(void *arg)
{
    (void)arg;
    int64_t t0 = corio_now();
    for (int i = 0; i < 1000; i++) {
        int64_t d = corio_now() + CORIO_SEC(1);
        T_EXPECT_EQ(corio_sleep(d), 0);
        T_EXPECT(corio_now() >= d);
    }
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_SEC(3600)), 0);
    T_EXPECT(corio_now() - t0 >= CORIO_SEC(4600));
    return 0;
}

static void test_vclock_sleep(void **state)
{
    (void)state;
    struct span sp;
    assert_int_equal(run_virtual(sleeps, NULL, &sp), 0);
    assert_true(sp.virt >= CORIO_SEC(4600));
    assert_true(sp.wall < CORIO_SEC(1));
}

/* A coroutine's own deadline (the scheduler's timer) and a started op's deadline awaited later
 * (the future's timer, which replaces the linked timeout). */
static int own_and_started(void *arg)
{
    (void)arg;
    int sv[2];
    T_EXPECT_EQ(t_tcp_pair(sv), 0);
    char b;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_set_deadline(t0 + CORIO_SEC(90), NULL), 0);
    T_EXPECT_EQ(corio_recv(sv[0], &b, 1, 0, CORIO_FOREVER), -ETIMEDOUT);
    T_EXPECT(corio_now() - t0 >= CORIO_SEC(90));
    T_EXPECT_EQ(corio_set_deadline(CORIO_FOREVER, NULL), 0);

    struct corio_future f;
    t0 = corio_now();
    T_EXPECT_EQ(corio_recv_start(&f, sv[0], &b, 1, 0, t0 + CORIO_SEC(45)), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ETIMEDOUT);
    T_EXPECT(corio_now() - t0 >= CORIO_SEC(45));
    /* A sleep started and awaited later, and cancelled before its time. */
    T_EXPECT_EQ(corio_sleep_start(&f, corio_now() + CORIO_SEC(5)), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_sleep_start(&f, corio_now() + CORIO_SEC(5)), 0);
    T_EXPECT_EQ(corio_future_cancel(&f), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ECANCELED);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_vclock_own_and_started_deadlines(void **state)
{
    (void)state;
    struct span sp;
    assert_int_equal(run_virtual(own_and_started, NULL, &sp), 0);
    assert_true(sp.virt >= CORIO_SEC(140));
    assert_true(sp.wall < CORIO_SEC(1));
}

/* ---- what does not jump -----------------------------------------------------------------------
 */

/* A writer that sends after 5 virtual seconds, to a reader with a 60-second deadline: the reader
 * gets the byte at 5 s. The send's I/O completes at once, so the loop sees it before it would
 * jump to the reader's deadline. */
struct late {
    int sv[2];
};

static int late_writer(void *arg)
{
    struct late *t = arg;
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_SEC(5)), 0);
    T_EXPECT_EQ(corio_send(t->sv[1], "x", 1, 0, CORIO_FOREVER), 1);
    return 0;
}

static int late_reader(void *arg)
{
    struct late *t = arg;
    char b = 0;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_recv(t->sv[0], &b, 1, 0, t0 + CORIO_SEC(60)), 1);
    T_EXPECT_EQ(b, 'x');
    int64_t took = corio_now() - t0;
    T_EXPECT(took >= CORIO_SEC(5) && took < CORIO_SEC(60));
    return 0;
}

static void test_vclock_io_before_jump(void **state)
{
    (void)state;
    struct late t;
    assert_int_equal(t_tcp_pair(t.sv), 0);
    struct corio_loop *l = virtual_loop();
    int64_t w0 = wall_ns();
    assert_int_equal(t_run2(l, late_reader, late_writer, &t), 0);
    assert_true(wall_ns() - w0 < CORIO_SEC(1));
    corio_loop_free(l);
    t_expect_ok();
    close(t.sv[0]);
    close(t.sv[1]);
}

/* A blocking call that takes 100 ms of real time, under a 10-second deadline: the loop has a
 * timer and nothing to run, but must not jump to it while the call runs on a worker. */
static int work_100ms(void *arg)
{
    (void)arg;
    const struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL); /* a worker thread: real time, not a coroutine's sleep */
    return 42;
}

static int blocking_call(void *arg)
{
    (void)arg;
    T_EXPECT_EQ(corio_blocking(work_100ms, NULL, corio_now() + CORIO_SEC(10)), 42);
    return 0;
}

static void test_vclock_blocking_holds_clock(void **state)
{
    (void)state;
    struct span sp;
    assert_int_equal(run_virtual(blocking_call, NULL, &sp), 0);
    assert_true(sp.virt < CORIO_SEC(10));
    assert_true(sp.wall >= CORIO_MS(100));
}

/* A loop on the real clock after a virtual one jumped on this thread: its deadlines are still
 * real time away (the kernel's timeouts run on the real clock; corio converts). */
static int real_50ms(void *arg)
{
    (void)arg;
    int sv[2];
    T_EXPECT_EQ(t_tcp_pair(sv), 0);
    char b;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_recv(sv[0], &b, 1, 0, t0 + CORIO_MS(50)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 50);
    t0 = corio_now();
    T_EXPECT_EQ(corio_sleep(t0 + CORIO_MS(50)), 0);
    T_EXPECT_ELAPSED(t0, 50);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_vclock_real_loop_after(void **state)
{
    (void)state;
    struct span sp;
    assert_int_equal(run_virtual(recv_60s, NULL, &sp), 0);
    struct corio_loop *l = t_mkloop(NULL);
    assert_int_equal(t_run1(l, real_50ms, NULL), 0);
    corio_loop_free(l);
    t_expect_ok();
}

/* CORIO_CLOCK=virtual turns it on for a loop made with no options. */
static void test_vclock_env(void **state)
{
    (void)state;
    setenv("CORIO_CLOCK", "virtual", 1);
    struct corio_loop *l = t_mkloop(NULL);
    unsetenv("CORIO_CLOCK");
    int64_t w0 = wall_ns(), v0 = corio_now();
    assert_int_equal(t_run1(l, recv_60s, NULL), 0);
    corio_loop_free(l);
    t_expect_ok();
    assert_true(corio_now() - v0 >= CORIO_SEC(60));
    assert_true(wall_ns() - w0 < CORIO_SEC(1));
}

/* ---- the HTTP server's idle timeout -----------------------------------------------------------
 */

static int hello(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    return corio_http_respond(c, 200, "text/plain", "hi", 2, CORIO_FOREVER);
}

struct idle {
    struct corio_http_server *s;
    int lfd;
    corio_id server;
    int64_t idle_for; /* virtual ns from the request to the server's close */
};

static int serve(void *arg)
{
    struct idle *t = arg;
    return corio_http_serve(t->s, t->lfd);
}

/* One request on a keep-alive connection, then silence: the server closes it once idle_timeout
 * (30 s) has passed, which the client sees as EOF. */
static int idle_client(void *arg)
{
    struct idle *t = arg;
    T_EXPECT_EQ(corio_spawn(&t->server, corio_loop_current(), serve, t), 0);
    int fd = corio_dial_tcp("127.0.0.1", corio_local_port(t->lfd), CORIO_FOREVER);
    T_EXPECT(fd >= 0);
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    T_EXPECT_EQ(corio_send_all(fd, req, sizeof(req) - 1, NULL, CORIO_FOREVER), sizeof(req) - 1);
    /* The server's idle time starts after its response, so after this: */
    int64_t t0 = corio_now();
    char buf[512];
    size_t got = 0;
    while (got < sizeof(buf) && !memmem(buf, got, "\r\n\r\nhi", 6)) {
        ssize_t n = corio_recv(fd, buf + got, sizeof(buf) - got, 0, CORIO_FOREVER);
        if (!T_EXPECT(n > 0))
            break;
        got += (size_t)n;
    }
    T_EXPECT(got >= 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0);
    T_EXPECT_EQ(corio_recv(fd, buf, sizeof(buf), 0, CORIO_FOREVER), 0);
    t->idle_for = corio_now() - t0;
    close(fd);
    corio_cancel(t->server);
    corio_join(t->server, NULL, CORIO_FOREVER);
    return 0;
}

static void test_vclock_http_idle_30s(void **state)
{
    (void)state;
    struct idle t = {0};
    const struct corio_http_server_opts o = {.idle_timeout = CORIO_SEC(30),
                                             .header_timeout = CORIO_SEC(120)};
    assert_int_equal(corio_http_server_new(&t.s, &o), 0);
    assert_int_equal(corio_http_route(t.s, "GET", "/hello", hello, NULL), 0);
    t.lfd = corio_listen_tcp("127.0.0.1", 0, 16, 0);
    assert_true(t.lfd >= 0);
    struct span sp;
    assert_int_equal(run_virtual(idle_client, &t, &sp), 0);
    print_message("closed after %.3f s idle (virtual)\n", (double)t.idle_for / 1e9);
    assert_true(t.idle_for >= CORIO_SEC(30));
    assert_true(t.idle_for < CORIO_SEC(120));
    assert_true(sp.wall < CORIO_SEC(1));
    close(t.lfd);
    corio_http_server_free(t.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_vclock_deadline_60s),
        T_GUARD_TEST(test_vclock_sleep),
        T_GUARD_TEST(test_vclock_own_and_started_deadlines),
        T_GUARD_TEST(test_vclock_io_before_jump),
        T_GUARD_TEST(test_vclock_blocking_holds_clock),
        T_GUARD_TEST(test_vclock_real_loop_after),
        T_GUARD_TEST(test_vclock_env),
        T_GUARD_TEST(test_vclock_http_idle_30s),
    };
    return T_RUN_TESTS(tests);
}
