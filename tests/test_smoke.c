/* A first end-to-end check of the engine: spawn, nop, sleep, a TCP echo through the ring. */
#include "helpers.h"

/* The ABI promise of include/corio/corio.h: the structs callers embed keep these sizes and this
 * alignment through every 1.x release (their room is reserved inside). A change here breaks code
 * built against an earlier 1.x header: it must not compile without a deliberate edit. */
_Static_assert(sizeof(struct corio_future) == 192, "ABI: corio_future");
_Static_assert(sizeof(struct corio_group) == 96, "ABI: corio_group");
_Static_assert(sizeof(struct corio_mutex) == 48, "ABI: corio_mutex");
_Static_assert(sizeof(struct corio_sem) == 48, "ABI: corio_sem");
_Static_assert(sizeof(struct corio_waitgroup) == 48, "ABI: corio_waitgroup");
_Static_assert(sizeof(struct corio_event) == 48, "ABI: corio_event");
_Static_assert(sizeof(struct corio_gen) == 96, "ABI: corio_gen");
_Static_assert(sizeof(struct corio_acceptor) == 128, "ABI: corio_acceptor");
_Static_assert(sizeof(struct corio_receiver) == 128, "ABI: corio_receiver");
_Static_assert(_Alignof(struct corio_future) == 8 && _Alignof(struct corio_group) == 8 &&
                   _Alignof(struct corio_mutex) == 8 && _Alignof(struct corio_sem) == 8,
               "ABI: alignment");
_Static_assert(sizeof(struct corio_loop_opts) == 120, "ABI: corio_loop_opts");

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int nops(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n; i++) {
        int r = corio_nop();
        if (r != 0)
            return r;
    }
    return 42;
}

static void test_smoke_nop(void **state)
{
    int n = 1000;
    assert_int_equal(t_run1(*state, nops, &n), 42);
    const struct corio_stats *s = corio_loop_stats(*state);
    assert_true(s->cqes >= 1000);
}

static int sleeper(void *arg)
{
    (void)arg;
    int64_t t0 = corio_now();
    int r = corio_sleep(t0 + CORIO_MS(20));
    int64_t dt = corio_now() - t0;
    if (r != 0)
        return r;
    return dt >= CORIO_MS(19) ? 0 : -1;
}

static void test_smoke_sleep(void **state)
{
    assert_int_equal(t_run1(*state, sleeper, NULL), 0);
}

static int echo_server(void *arg)
{
    int fd = *(int *)arg;
    char buf[4096];
    ssize_t n;
    while ((n = corio_recv(fd, buf, sizeof(buf), 0, CORIO_FOREVER)) > 0)
        if (corio_send_all(fd, buf, (size_t)n, NULL, CORIO_FOREVER) < 0)
            break;
    corio_close(fd);
    return (int)n;
}

static int echo_client(void *arg)
{
    int fd = *(int *)arg;
    static char out[1 << 20], in[1 << 20];
    t_fill(out, sizeof(out), 7, 0);
    struct corio_future fs, fr;
    size_t done = 0;
    corio_send_start(&fs, fd, out, sizeof(out), 0, CORIO_FOREVER);
    ssize_t r = corio_recv_all(fd, in, 1000, &done, CORIO_FOREVER);
    if (r != 1000)
        return -100;
    ssize_t s = corio_await(&fs, CORIO_FOREVER);
    if (s <= 0)
        return -101;
    size_t sent = (size_t)s;
    corio_recv_start(&fr, fd, in + 1000, sent - 1000, MSG_WAITALL, CORIO_FOREVER);
    if (corio_send_all(fd, out + sent, sizeof(out) - sent, NULL, CORIO_FOREVER) < 0)
        return -102;
    if (corio_await(&fr, CORIO_FOREVER) < 0)
        return -103;
    corio_shutdown(fd, SHUT_WR);
    return 0;
}

static int echo_main(void *arg)
{
    (void)arg;
    int sv[2];
    if (t_tcp_pair(sv))
        return -1;
    corio_id a, b;
    corio_spawn(&a, NULL, echo_server, &sv[0]);
    corio_spawn(&b, NULL, echo_client, &sv[1]);
    int ra = 1, rb = 1;
    int e1 = corio_join(b, &rb, CORIO_FOREVER);
    int e2 = corio_join(a, &ra, CORIO_FOREVER);
    close(sv[1]);
    if (e1 || e2)
        return -2;
    return rb == 0 && ra == 0 ? 0 : -3;
}

static void test_smoke_echo(void **state)
{
    assert_int_equal(t_run1(*state, echo_main, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_TEST(test_smoke_nop),
        T_LOOP_TEST(test_smoke_sleep),
        T_LOOP_TEST(test_smoke_echo),
    };
    return T_RUN_TESTS(tests);
}
