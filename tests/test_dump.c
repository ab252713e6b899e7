/* The in-flight table (corio_loop_inflight) and the coroutine dump (corio_loop_dump): what they
 * list for coroutines parked in ops and in other waits, names, spawn sites, ages, the stack's
 * high-water mark in debug builds, and the thread rule. */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A scene: coroutines parked in different waits while the test coroutine looks at the loop. */
struct scene {
    int sv[2];             /* a socket pair: "reader" waits in a recv on sv[0] */
    struct corio_chan *ch; /* "taker" waits on it */
    struct corio_mutex mu; /* held by the test coroutine; "locker" waits for it */
    corio_id reader, sleeper, taker, locker, deep;
    int reader_line; /* the line of the reader's spawn */
    char *dump;      /* the dump, taken while they wait */
    size_t dump_len;
    struct corio_op_info ops[8];
    int n_ops;
    int64_t waited_ns; /* how long the test coroutine let the ops age */
};

static int reader(void *arg)
{
    struct scene *s = arg;
    char buf[16];
    corio_set_name("reader");
    return (int)corio_recv(s->sv[0], buf, sizeof(buf), 0, CORIO_FOREVER);
}

static int sleeper(void *arg)
{
    (void)arg;
    corio_set_name("sleeper");
    return corio_sleep(corio_now() + CORIO_SEC(30));
}

static int taker(void *arg)
{
    struct scene *s = arg;
    int v;
    return corio_chan_recv(s->ch, &v, CORIO_FOREVER);
}

static int locker(void *arg)
{
    struct scene *s = arg;
    int r = corio_mutex_lock(&s->mu, CORIO_FOREVER);
    if (r == 0)
        corio_mutex_unlock(&s->mu);
    return r;
}

/* Uses 16 KiB of its stack before it waits, for the high-water mark. */
static int deep(void *arg)
{
    (void)arg;
    volatile char big[16384];
    for (size_t i = 0; i < sizeof(big); i += 64)
        big[i] = (char)(i | 1);
    corio_set_name("deep");
    return corio_sleep(corio_now() + CORIO_SEC(30)) + big[100] * 0;
}

static int look(void *arg)
{
    struct scene *s = arg;
    corio_set_name("looker");
    T_EXPECT_EQ(corio_mutex_lock(&s->mu, CORIO_FOREVER), 0);
    s->reader_line = __LINE__ + 1;
    T_EXPECT_EQ(corio_spawn(&s->reader, NULL, reader, s), 0);
    T_EXPECT_EQ(corio_spawn(&s->sleeper, NULL, sleeper, s), 0);
    T_EXPECT_EQ(corio_spawn(&s->taker, NULL, taker, s), 0);
    T_EXPECT_EQ(corio_spawn(&s->locker, NULL, locker, s), 0);
    T_EXPECT_EQ(corio_spawn(&s->deep, NULL, deep, s), 0);
    T_EXPECT_EQ(corio_yield(), 0); /* they run, and park in their waits */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_sleep(t0 + CORIO_MS(50)), 0);
    s->waited_ns = corio_now() - t0;
    s->n_ops = corio_loop_inflight(corio_loop_current(), s->ops, 8);
    FILE *f = open_memstream(&s->dump, &s->dump_len);
    T_EXPECT(f != NULL);
    if (f) {
        T_EXPECT_EQ(corio_loop_dump(corio_loop_current(), f), 0);
        fclose(f);
    }
    corio_mutex_unlock(&s->mu);
    corio_id all[] = {s->reader, s->sleeper, s->taker, s->deep};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        corio_cancel(all[i]);
        corio_join(all[i], NULL, CORIO_FOREVER);
    }
    corio_join(s->locker, NULL, CORIO_FOREVER);
    return 0;
}

/* Runs the scene on @loop; the caller frees s->dump. */
static void run_scene(struct corio_loop *loop, struct scene *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->sv), 0);
    assert_int_equal(corio_chan_new(&s->ch, sizeof(int), 0), 0);
    assert_int_equal(corio_mutex_init(&s->mu), 0);
    assert_int_equal(t_run1(loop, look, s), 0);
    t_expect_ok();
    corio_chan_free(s->ch);
    close(s->sv[0]);
    close(s->sv[1]);
    assert_non_null(s->dump);
}

static const struct corio_op_info *find_op(const struct scene *s, corio_id owner)
{
    for (int i = 0; i < s->n_ops && i < 8; i++)
        if (s->ops[i].owner == owner)
            return &s->ops[i];
    return NULL;
}

static void test_dump_inflight_table(void **state)
{
    struct scene s;
    run_scene(*state, &s);
    if (s.n_ops == -EOPNOTSUPP) {
        free(s.dump);
        skip(); /* built with CORIO_INFLIGHT=OFF: the table is compiled out */
    }
    /* The reader's recv, the two sleeps; the taker and the locker have no op in flight, and the
     * looker's own sleep is over. */
    assert_int_equal(s.n_ops, 3);
    const struct corio_op_info *r = find_op(&s, s.reader), *z = find_op(&s, s.sleeper);
    assert_non_null(r);
    assert_non_null(z);
    assert_non_null(find_op(&s, s.deep));
    assert_string_equal(r->op, "recv");
    assert_int_equal(r->fd, s.sv[0]);
    assert_string_equal(z->op, "timeout");
    /* Submitted before the looker's 50 ms sleep began (its yield let them run first): at least
     * that old, less the error of converting ticks, and not absurdly older (the tolerance is for
     * slow machines and valgrind). */
    assert_true(r->age_ns >= s.waited_ns - CORIO_MS(1));
    assert_true(r->age_ns < s.waited_ns + CORIO_SEC(5));
    assert_true(z->age_ns >= s.waited_ns - CORIO_MS(1));
    free(s.dump);
}

/* Asserts that the dump has a line holding all of @parts. */
static void expect_line(const char *dump, const char *const *parts, size_t n)
{
    for (const char *line = dump; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
        size_t i = 0;
        while (i < n && strstr(buf, parts[i]))
            i++;
        if (i == n)
            return;
        line = end ? end + 1 : NULL;
    }
    fprintf(stderr, "no line with all of:");
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " [%s]", parts[i]);
    fprintf(stderr, "\nin the dump:\n%s", dump);
    fail();
}

#define EXPECT_LINE(dump, ...)                                                                     \
    do {                                                                                           \
        const char *const parts_[] = {__VA_ARGS__};                                                \
        expect_line(dump, parts_, sizeof(parts_) / sizeof(parts_[0]));                             \
    } while (0)

static void test_dump_coroutines(void **state)
{
    struct scene s;
    run_scene(*state, &s);
    char site[256], fd[64];
    snprintf(site, sizeof(site), "spawned at %s:%d", __FILE__, s.reader_line);
    snprintf(fd, sizeof(fd), "(recv on fd %d)", s.sv[0]);
    EXPECT_LINE(s.dump, "corio loop ", "6 coroutines");
    EXPECT_LINE(s.dump, "\"reader\"", "waiting for an op", fd, site);
    EXPECT_LINE(s.dump, "\"sleeper\"", "waiting for an op (timeout");
    EXPECT_LINE(s.dump, "\"looker\"", "running");
    EXPECT_LINE(s.dump, "waiting for a channel");
    EXPECT_LINE(s.dump, "waiting for a mutex");
    if (corio_loop_inflight(*state, NULL, 0) != -EOPNOTSUPP) {
        snprintf(fd, sizeof(fd), "in flight: recv on fd %d, for ", s.sv[0]);
        EXPECT_LINE(s.dump, fd, " ms");
        EXPECT_LINE(s.dump, "in flight: timeout, for ");
    }
    free(s.dump);
}

static void test_dump_stack_high_water(void **state)
{
#ifdef NDEBUG
    (void)state;
    skip(); /* release build: the high-water mark is kept in debug builds only */
#else
    struct scene s;
    run_scene(*state, &s);
    const char *line = strstr(s.dump, "\"deep\"");
    assert_non_null(line);
    const char *mark = strstr(line, "; stack ");
    assert_non_null(mark);
    assert_true(mark < strchr(line, '\n'));
    size_t used = strtoul(mark + strlen("; stack "), NULL, 10);
    assert_true(used >= 16384);
    assert_true(used < 64 * 1024 + 4096);
    /* The sleeper, a shallow coroutine, used far less. */
    line = strstr(s.dump, "\"sleeper\"");
    mark = line ? strstr(line, "; stack ") : NULL;
    assert_non_null(mark);
    assert_true(strtoul(mark + strlen("; stack "), NULL, 10) < 16384);
    free(s.dump);
#endif
}

static int name_it(void *arg)
{
    char buf[64];
    memset(buf, 'x', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    T_EXPECT_EQ(corio_set_name(buf), 0); /* cut to 23 bytes, and copied */
    memset(buf, 'y', sizeof(buf) - 1);
    char **out = arg;
    size_t len;
    FILE *f = open_memstream(out, &len);
    if (f) {
        corio_loop_dump(corio_loop_current(), f);
        fclose(f);
    }
    return 0;
}

static void test_dump_set_name(void **state)
{
    char *dump = NULL;
    assert_int_equal(corio_set_name("outside"), -EPERM);
    assert_int_equal(t_run1(*state, name_it, &dump), 0);
    t_expect_ok();
    assert_non_null(dump);
    EXPECT_LINE(dump, "\"xxxxxxxxxxxxxxxxxxxxxxx\" ");
    assert_null(strstr(dump, "yyy"));
    free(dump);
}

static void *from_other_thread(void *arg)
{
    struct corio_loop *loop = arg;
    struct corio_op_info op;
    intptr_t a = corio_loop_inflight(loop, &op, 1), b = corio_loop_dump(loop, stderr);
    return (void *)(intptr_t)(a == -EPERM && b == -EPERM);
}

static void test_dump_other_thread(void **state)
{
    pthread_t th;
    void *ok = NULL;
    assert_int_equal(pthread_create(&th, NULL, from_other_thread, *state), 0);
    assert_int_equal(pthread_join(th, &ok), 0);
    assert_int_equal((intptr_t)ok, 1);
    /* On its own thread, not running: no coroutine, nothing in flight. */
    if (corio_loop_inflight(*state, NULL, 0) != -EOPNOTSUPP)
        assert_int_equal(corio_loop_inflight(*state, NULL, 0), 0);
    assert_int_equal(corio_loop_dump(*state, NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dump_inflight_table, t_loop_setup, t_loop_teardown),
        cmocka_unit_test_setup_teardown(test_dump_coroutines, t_loop_setup, t_loop_teardown),
        cmocka_unit_test_setup_teardown(test_dump_stack_high_water, t_loop_setup, t_loop_teardown),
        cmocka_unit_test_setup_teardown(test_dump_set_name, t_loop_setup, t_loop_teardown),
        cmocka_unit_test_setup_teardown(test_dump_other_thread, t_loop_setup, t_loop_teardown),
    };
    if (t_uring_unavailable())
        return T_EXIT_SKIP;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
