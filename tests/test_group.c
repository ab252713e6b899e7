/* Groups (nurseries) and errors travelling up through joins: waiting for every member, cancelling
 * members wherever they are parked, deadlines and cancelled owners, -EDEADLK, fail-fast on error,
 * members spawned after a cancel, loop stop, and nested groups.
 *
 * cmocka's assert_* longjmp off the coroutine's stack, so coroutine bodies record failed checks
 * with T_EXPECT/T_EXPECT_EQ (the first one is printed with file:line) and each test asserts, after
 * the loop has run, that none failed. Every wait that could hang carries a deadline. */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- an error travelling up through joins --------------------------------------------------- */

/* A loopback port nobody listens on: bound (so that it is ours), never listened on. A connect to
 * it is refused. Returns the socket holding it, and the port in *port. */
static int closed_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &len)) {
        int err = -errno;
        close(fd);
        return err;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int dial_c(void *arg)
{
    uint16_t port = *(uint16_t *)arg;
    int fd = corio_dial_tcp("127.0.0.1", port, T_BOUND);
    if (fd >= 0) {
        corio_close(fd);
        return 1000; /* not what the test expects */
    }
    return fd;
}

static int join_b(void *arg)
{
    corio_id c;
    int r = corio_spawn(&c, NULL, dial_c, arg);
    if (r)
        return r;
    int res = 0;
    r = corio_join(c, &res, T_BOUND);
    return r ? r : res;
}

static int join_a(void *arg)
{
    corio_id b;
    T_EXPECT_EQ(corio_spawn(&b, NULL, join_b, arg), 0);
    int res = 0;
    T_EXPECT_EQ(corio_join(b, &res, T_BOUND), 0);
    return res;
}

static void test_group_join_error_travels_up(void **state)
{
    uint16_t port = 0;
    int holder = closed_port(&port);
    assert_true(holder >= 0);
    assert_int_equal(t_run_checked(state, join_a, &port), -ECONNREFUSED);
    close(holder);
}

/* ---- wait ----------------------------------------------------------------------------------- */

struct members {
    struct corio_group g;
    int started, finished, cleanups;
    int res[16];
};

struct member_arg {
    struct members *m;
    int id;
    int ms; /* how long it sleeps */
};

static int sleeper(void *arg)
{
    struct member_arg *a = arg;
    a->m->started++;
    int r = corio_sleep(T_DL(a->ms));
    a->m->res[a->id] = r;
    if (r == 0)
        a->m->finished++;
    a->m->cleanups++;
    return r;
}

static int wait_main(void *arg)
{
    struct members *m = arg;
    struct member_arg a[5];
    int64_t t0 = corio_now();
    for (int i = 0; i < 5; i++) {
        a[i] = (struct member_arg){m, i, 10 + 10 * ((i * 3) % 5)}; /* 10 .. 50 ms */
        T_EXPECT_EQ(corio_group_spawn(NULL, &m->g, sleeper, &a[i]), 0);
    }
    T_EXPECT_EQ(corio_group_size(&m->g), 5);
    T_EXPECT_EQ(corio_group_wait(&m->g, T_BOUND), 0);
    T_EXPECT_ELAPSED(t0, 50);
    T_EXPECT_EQ(m->finished, 5);
    T_EXPECT_EQ(corio_group_size(&m->g), 0);
    T_EXPECT_EQ(corio_group_error(&m->g), 0);
    /* An empty group: at once, without a switch, whatever the deadline. */
    uint64_t sw = corio_loop_stats(corio_loop_current())->switches;
    T_EXPECT_EQ(corio_group_wait(&m->g, T_BOUND), 0);
    T_EXPECT_EQ(corio_group_wait(&m->g, corio_now() - 1), 0);
    T_EXPECT_EQ(corio_loop_stats(corio_loop_current())->switches, sw);
    /* Reusable: a second round. */
    for (int i = 0; i < 3; i++)
        T_EXPECT_EQ(corio_group_spawn(NULL, &m->g, sleeper, &a[i]), 0);
    T_EXPECT_EQ(corio_group_wait(&m->g, T_BOUND), 0);
    T_EXPECT_EQ(m->finished, 8);
    return 0;
}

static void test_group_wait_all(void **state)
{
    struct members m;
    memset(&m, 0, sizeof(m));
    corio_group_init(&m.g, 0);
    t_run_checked(state, wait_main, &m);
}

static int zeroed_main(void *arg)
{
    (void)arg;
    struct members m;
    memset(&m, 0, sizeof(m));
    struct corio_group g = CORIO_GROUP_INIT; /* zeroed storage is a valid empty group */
    struct member_arg a[3] = {{&m, 0, 5}, {&m, 1, 10}, {&m, 2, 1}};
    corio_id ids[3];
    for (int i = 0; i < 3; i++)
        T_EXPECT_EQ(corio_group_spawn(&ids[i], &g, sleeper, &a[i]), 0);
    /* A member can be joined for its result, and still counts in its group until it ends. */
    int res = -1;
    T_EXPECT_EQ(corio_join(ids[1], &res, T_BOUND), 0);
    T_EXPECT_EQ(res, 0);
    T_EXPECT_EQ(corio_group_wait(&g, T_BOUND), 0);
    T_EXPECT_EQ(m.finished, 3);
    T_EXPECT_EQ(corio_join(ids[0], &res, T_BOUND), 0);
    T_EXPECT_EQ(corio_join(ids[0], &res, T_BOUND), -ESRCH);
    return 0;
}

static void test_group_zeroed_and_join_member(void **state)
{
    t_run_checked(state, zeroed_main, NULL);
}

/* ---- cancel: members parked in every kind of wait ------------------------------------------- */

struct parked {
    struct corio_group g;
    struct corio_chan *ch;
    struct corio_mutex mu;
    int pipe_r, pipe_w;
    corio_id join_target;
    int res[8];
    int cleanups;
    int waiting; /* members that reached their wait */
};

struct parked_arg {
    struct parked *p;
    int kind;
};

enum { P_SLEEP, P_RECV, P_READ, P_JOIN, P_LOCK, P_ANY, P_NKINDS };

static int forever(void *arg)
{
    (void)arg;
    return corio_sleep(T_DL(10000));
}

static int parked_member(void *arg)
{
    struct parked_arg *a = arg;
    struct parked *p = a->p;
    int r = -1;
    char buf[16];
    int v = 1;
    p->waiting++;
    switch (a->kind) {
    case P_SLEEP:
        r = corio_sleep(T_DL(10000));
        break;
    case P_RECV:
        r = corio_chan_recv(p->ch, &v, T_DL(10000));
        break;
    case P_READ:
        r = (int)corio_read(p->pipe_r, buf, sizeof(buf), -1, T_DL(10000));
        break;
    case P_JOIN:
        r = corio_join(p->join_target, NULL, T_DL(10000));
        break;
    case P_LOCK:
        r = corio_mutex_lock(&p->mu, T_DL(10000));
        break;
    case P_ANY: {
        /* Parked in corio_await_any over two futures of its own. */
        struct corio_future f1, f2;
        corio_sleep_start(&f1, T_DL(10000));
        corio_sleep_start(&f2, T_DL(10000));
        struct corio_future *fs[2] = {&f1, &f2};
        r = corio_await_any(fs, 2, T_DL(10000));
        corio_future_cancel(&f1);
        corio_future_cancel(&f2);
        corio_await(&f1, CORIO_FOREVER);
        corio_await(&f2, CORIO_FOREVER);
        break;
    }
    }
    p->res[a->kind] = r;
    /* Clean-up still works in a cancelled coroutine: close is not cancellable. */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        T_EXPECT_EQ(corio_close(fd), 0);
    p->cleanups++;
    return r;
}

static int cancel_main(void *arg)
{
    struct parked *p = arg;
    int fds[2];
    T_EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    p->pipe_r = fds[0];
    p->pipe_w = fds[1];
    T_EXPECT_EQ(corio_chan_new(&p->ch, sizeof(int), 0), 0);
    T_EXPECT_EQ(corio_spawn(&p->join_target, NULL, forever, NULL), 0);
    T_EXPECT_EQ(corio_mutex_lock(&p->mu, T_BOUND), 0);
    struct parked_arg a[P_NKINDS];
    for (int k = 0; k < P_NKINDS; k++) {
        a[k] = (struct parked_arg){p, k};
        T_EXPECT_EQ(corio_group_spawn(NULL, &p->g, parked_member, &a[k]), 0);
    }
    /* Let every member reach its wait, and the reads and sleeps reach the kernel. */
    t_settle(3);
    T_EXPECT_EQ(corio_sleep(T_DL(10)), 0);
    T_EXPECT_EQ(p->waiting, P_NKINDS);
    T_EXPECT_EQ(p->cleanups, 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_group_cancel(&p->g), P_NKINDS);
    T_EXPECT_EQ(corio_group_wait(&p->g, T_BOUND), 0);
    T_EXPECT(corio_now() - t0 < CORIO_MS(2000));
    T_EXPECT_EQ(corio_group_size(&p->g), 0);
    T_EXPECT_EQ(p->cleanups, P_NKINDS);
    for (int k = 0; k < P_NKINDS; k++)
        T_EXPECT_EQ(p->res[k], -ECANCELED);
    T_EXPECT_EQ(corio_group_error(&p->g), -ECANCELED);
    /* Nothing was disturbed outside the group. */
    T_EXPECT_EQ(corio_mutex_unlock(&p->mu), 0);
    T_EXPECT_EQ(corio_cancel(p->join_target), 0);
    int res = 0;
    T_EXPECT_EQ(corio_join(p->join_target, &res, T_BOUND), 0);
    T_EXPECT_EQ(res, -ECANCELED);
    int v = 3;
    T_EXPECT_EQ(corio_chan_trysend(p->ch, &v), -EAGAIN); /* no receiver left behind */
    corio_chan_free(p->ch);
    T_EXPECT_EQ(write(p->pipe_w, "x", 1), 1); /* the cancelled read consumed nothing */
    char c = 0;
    T_EXPECT_EQ(corio_read(p->pipe_r, &c, 1, -1, T_BOUND), 1);
    T_EXPECT_EQ(c, 'x');
    close(p->pipe_r);
    close(p->pipe_w);
    return 0;
}

static void test_group_cancel_wakes_every_wait(void **state)
{
    struct parked p;
    memset(&p, 0, sizeof(p));
    corio_group_init(&p.g, 0);
    p.mu = (struct corio_mutex)CORIO_MUTEX_INIT;
    t_run_checked(state, cancel_main, &p);
}

/* ---- deadline, cancelled owner, -EDEADLK ---------------------------------------------------- */

static int deadline_main(void *arg)
{
    struct members *m = arg;
    struct member_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct member_arg){m, i, i == 0 ? 5 : 10000};
        T_EXPECT_EQ(corio_group_spawn(NULL, &m->g, sleeper, &a[i]), 0);
    }
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_group_wait(&m->g, t0 + CORIO_MS(30)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 30);
    /* It returned only once every member had ended. */
    T_EXPECT_EQ(corio_group_size(&m->g), 0);
    T_EXPECT_EQ(m->cleanups, 4);
    T_EXPECT_EQ(m->res[0], 0);
    for (int i = 1; i < 4; i++)
        T_EXPECT_EQ(m->res[i], -ECANCELED);
    /* A deadline already past cancels at once too. */
    struct members m2;
    memset(&m2, 0, sizeof(m2));
    struct member_arg b = {&m2, 0, 10000};
    T_EXPECT_EQ(corio_group_spawn(NULL, &m2.g, sleeper, &b), 0);
    T_EXPECT_EQ(corio_group_wait(&m2.g, corio_now() - 1), -ETIMEDOUT);
    T_EXPECT_EQ(corio_group_size(&m2.g), 0);
    T_EXPECT_EQ(m2.cleanups, 1);
    T_EXPECT_EQ(m2.res[0], -ECANCELED);
    return 0;
}

static void test_group_wait_deadline(void **state)
{
    struct members m;
    memset(&m, 0, sizeof(m));
    t_run_checked(state, deadline_main, &m);
}

struct owner {
    struct members m;
    int wait_res;
    size_t size_at_return;
    int cleanups_at_return;
};

static int owner_body(void *arg)
{
    struct owner *o = arg;
    struct member_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct member_arg){&o->m, i, 10000};
        T_EXPECT_EQ(corio_group_spawn(NULL, &o->m.g, sleeper, &a[i]), 0);
    }
    o->wait_res = corio_group_wait(&o->m.g, T_BOUND);
    o->size_at_return = corio_group_size(&o->m.g);
    o->cleanups_at_return = o->m.cleanups;
    return 0;
}

static int owner_main(void *arg)
{
    struct owner *o = arg;
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, owner_body, o), 0);
    T_EXPECT_EQ(corio_sleep(T_DL(20)), 0);
    T_EXPECT_EQ(o->m.started, 4);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_cancel(id), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT(corio_now() - t0 < CORIO_MS(2000));
    return 0;
}

static void test_group_owner_cancelled(void **state)
{
    struct owner o;
    memset(&o, 0, sizeof(o));
    t_run_checked(state, owner_main, &o);
    assert_int_equal(o.wait_res, -ECANCELED);
    assert_int_equal(o.size_at_return, 0);
    assert_int_equal(o.cleanups_at_return, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(o.m.res[i], -ECANCELED);
}

struct selfwait {
    struct corio_group g;
    int res;
};

static int self_waiter(void *arg)
{
    struct selfwait *s = arg;
    s->res = corio_group_wait(&s->g, T_BOUND);
    return 0;
}

static int edeadlk_main(void *arg)
{
    struct selfwait *s = arg;
    s->res = 1;
    T_EXPECT_EQ(corio_group_spawn(NULL, &s->g, self_waiter, s), 0);
    T_EXPECT_EQ(corio_group_wait(&s->g, T_BOUND), 0);
    T_EXPECT_EQ(s->res, -EDEADLK);
    return 0;
}

static void test_group_member_waits_own_group(void **state)
{
    struct selfwait s;
    memset(&s, 0, sizeof(s));
    t_run_checked(state, edeadlk_main, &s);
    struct corio_group g = CORIO_GROUP_INIT;
    assert_int_equal(corio_group_wait(&g, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_group_spawn(NULL, &g, self_waiter, &s), -EINVAL); /* no running loop */
    assert_int_equal(corio_group_size(&g), 0);
}

/* ---- fail fast ------------------------------------------------------------------------------ */

static int failing(void *arg)
{
    struct member_arg *a = arg;
    a->m->started++;
    T_EXPECT_EQ(corio_sleep(T_DL(a->ms)), 0);
    a->m->res[a->id] = -EIO;
    a->m->cleanups++;
    return -EIO;
}

static int cancel_on_error_main(void *arg)
{
    struct members *m = arg;
    corio_group_init(&m->g, CORIO_GROUP_CANCEL_ON_ERROR);
    struct member_arg a[5];
    int64_t t0 = corio_now();
    for (int i = 0; i < 5; i++) {
        a[i] = (struct member_arg){m, i, i == 2 ? 10 : 10000};
        T_EXPECT_EQ(corio_group_spawn(NULL, &m->g, i == 2 ? failing : sleeper, &a[i]), 0);
    }
    /* Fail fast: the member's failure is the group's. */
    T_EXPECT_EQ(corio_group_wait(&m->g, T_BOUND), -EIO);
    T_EXPECT(corio_now() - t0 < CORIO_MS(2000));
    T_EXPECT_EQ(corio_group_error(&m->g), -EIO);
    T_EXPECT_EQ(m->cleanups, 5);
    for (int i = 0; i < 5; i++)
        T_EXPECT_EQ(m->res[i], i == 2 ? -EIO : -ECANCELED);

    /* Without the flag, an error cancels nobody; the first error is kept. */
    struct members n;
    memset(&n, 0, sizeof(n));
    corio_group_init(&n.g, 0);
    struct member_arg b[4] = {{&n, 0, 5}, {&n, 1, 30}, {&n, 2, 10}, {&n, 3, 40}};
    T_EXPECT_EQ(corio_group_spawn(NULL, &n.g, failing, &b[0]), 0);
    T_EXPECT_EQ(corio_group_spawn(NULL, &n.g, sleeper, &b[1]), 0);
    T_EXPECT_EQ(corio_group_spawn(NULL, &n.g, failing, &b[2]), 0);
    T_EXPECT_EQ(corio_group_spawn(NULL, &n.g, sleeper, &b[3]), 0);
    T_EXPECT_EQ(corio_group_wait(&n.g, T_BOUND), 0);
    T_EXPECT_EQ(corio_group_error(&n.g), -EIO);
    T_EXPECT_EQ(n.res[1], 0);
    T_EXPECT_EQ(n.res[3], 0);
    T_EXPECT_EQ(n.finished, 2);
    return 0;
}

static void test_group_cancel_on_error(void **state)
{
    struct members m;
    memset(&m, 0, sizeof(m));
    t_run_checked(state, cancel_on_error_main, &m);
}

/* ---- spawned after a cancel ----------------------------------------------------------------- */

struct late_member {
    bool cancelled_at_start;
    int sleep_res;
};

static int late_body(void *arg)
{
    struct late_member *l = arg;
    l->cancelled_at_start = corio_cancelled();
    l->sleep_res = corio_sleep(T_DL(10000));
    return 0;
}

static int after_cancel_main(void *arg)
{
    (void)arg;
    struct corio_group g = CORIO_GROUP_INIT;
    T_EXPECT_EQ(corio_group_cancel(&g), 0); /* nobody to cancel yet */
    struct late_member l[3];
    memset(l, 0, sizeof(l));
    int64_t t0 = corio_now();
    for (int i = 0; i < 3; i++)
        T_EXPECT_EQ(corio_group_spawn(NULL, &g, late_body, &l[i]), 0);
    T_EXPECT_EQ(corio_group_wait(&g, T_BOUND), 0);
    T_EXPECT(corio_now() - t0 < CORIO_MS(2000));
    for (int i = 0; i < 3; i++) {
        T_EXPECT(l[i].cancelled_at_start);
        T_EXPECT_EQ(l[i].sleep_res, -ECANCELED);
    }
    /* Other coroutines are not affected. */
    T_EXPECT(!corio_cancelled());
    struct late_member o = {0};
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, late_body, &o), 0);
    t_settle(1);
    T_EXPECT(!o.cancelled_at_start);
    T_EXPECT_EQ(corio_cancel(id), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    return 0;
}

static void test_group_spawn_after_cancel(void **state)
{
    t_run_checked(state, after_cancel_main, NULL);
}

/* ---- loop stop ------------------------------------------------------------------------------ */

struct stop {
    struct members m;
    int owner_wait;
    size_t size_at_return;
};

static int stopper(void *arg)
{
    (void)arg;
    T_EXPECT_EQ(corio_sleep(T_DL(20)), 0);
    corio_loop_stop(corio_loop_current());
    return 0;
}

static int stop_owner(void *arg)
{
    struct stop *s = arg;
    struct member_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct member_arg){&s->m, i, 10000};
        T_EXPECT_EQ(corio_group_spawn(NULL, &s->m.g, sleeper, &a[i]), 0);
    }
    T_EXPECT_EQ(corio_spawn(NULL, NULL, stopper, NULL), 0);
    s->owner_wait = corio_group_wait(&s->m.g, T_BOUND);
    s->size_at_return = corio_group_size(&s->m.g);
    return 0;
}

static void test_group_loop_stop(void **state)
{
    struct stop s;
    memset(&s, 0, sizeof(s));
    int64_t t0 = corio_now();
    t_run_checked(state, stop_owner, &s);
    assert_true(corio_now() - t0 < CORIO_MS(3000));
    assert_int_equal(s.owner_wait, -ECANCELED);
    assert_int_equal(s.size_at_return, 0);
    assert_int_equal(s.m.cleanups, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(s.m.res[i], -ECANCELED);
}

/* ---- nested groups -------------------------------------------------------------------------- */

#define NEST_DEPTH 4
#define NEST_WIDTH 3

struct nest {
    int ended[NEST_DEPTH + 1];   /* members that ended, per level */
    int cancelled[NEST_DEPTH + 1];
    int wait_res[NEST_DEPTH + 1]; /* the last group_wait result seen per level */
    int leaf_ms;
};

struct nest_arg {
    struct nest *n;
    int level;
};

/* At each level below the last, a member owns a group of NEST_WIDTH members of the next level
 * and waits for it; the leaves sleep. */
static int nest_member(void *arg)
{
    struct nest_arg *a = arg;
    struct nest *n = a->n;
    int r;
    if (a->level == NEST_DEPTH) {
        r = corio_sleep(T_DL(n->leaf_ms));
    } else {
        struct corio_group g;
        corio_group_init(&g, 0);
        struct nest_arg child[NEST_WIDTH];
        for (int i = 0; i < NEST_WIDTH; i++) {
            child[i] = (struct nest_arg){n, a->level + 1};
            T_EXPECT_EQ(corio_group_spawn(NULL, &g, nest_member, &child[i]), 0);
        }
        r = corio_group_wait(&g, T_BOUND);
        T_EXPECT_EQ(corio_group_size(&g), 0); /* the frame holding child[] may go now */
        n->wait_res[a->level] = r;
    }
    if (r == -ECANCELED)
        n->cancelled[a->level]++;
    n->ended[a->level]++;
    return r;
}

static int nest_main(void *arg)
{
    struct nest *n = arg;
    struct corio_group top;
    corio_group_init(&top, 0);
    struct nest_arg root = {n, 1};
    T_EXPECT_EQ(corio_group_spawn(NULL, &top, nest_member, &root), 0);
    if (n->leaf_ms > 1000) {
        T_EXPECT_EQ(corio_sleep(T_DL(20)), 0);
        T_EXPECT_EQ(corio_group_cancel(&top), 1);
    }
    T_EXPECT_EQ(corio_group_wait(&top, T_BOUND), 0);
    T_EXPECT_EQ(corio_group_size(&top), 0);
    return 0;
}

static void test_group_nested(void **state)
{
    int expect[NEST_DEPTH + 1] = {0};
    for (int l = 1, w = 1; l <= NEST_DEPTH; l++, w *= NEST_WIDTH)
        expect[l] = w;
    /* Everything ends on its own. */
    struct nest n;
    memset(&n, 0, sizeof(n));
    n.leaf_ms = 10;
    t_run_checked(state, nest_main, &n);
    for (int l = 1; l <= NEST_DEPTH; l++) {
        assert_int_equal(n.ended[l], expect[l]);
        assert_int_equal(n.cancelled[l], 0);
    }
    /* Cancelling the top group reaches every level, and all of them end. */
    memset(&n, 0, sizeof(n));
    n.leaf_ms = 10000;
    int64_t t0 = corio_now();
    t_run_checked(state, nest_main, &n);
    assert_true(corio_now() - t0 < CORIO_MS(3000));
    for (int l = 1; l <= NEST_DEPTH; l++) {
        assert_int_equal(n.ended[l], expect[l]);
        assert_int_equal(n.cancelled[l], expect[l]);
    }
    for (int l = 1; l < NEST_DEPTH; l++)
        assert_int_equal(n.wait_res[l], -ECANCELED);
}

static void test_group_init_flags(void **state)
{
    (void)state;
    struct corio_group g;
    assert_int_equal(corio_group_init(&g, 0), 0);
    assert_int_equal(corio_group_init(&g, CORIO_GROUP_CANCEL_ON_ERROR), 0);
    assert_int_equal(corio_group_init(&g, 0x80), -EINVAL);
    assert_int_equal(corio_group_size(&g), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_TEST(test_group_join_error_travels_up),
        T_LOOP_TEST(test_group_wait_all),
        T_LOOP_TEST(test_group_zeroed_and_join_member),
        T_LOOP_TEST(test_group_cancel_wakes_every_wait),
        T_LOOP_TEST(test_group_wait_deadline),
        T_LOOP_TEST(test_group_owner_cancelled),
        T_LOOP_TEST(test_group_member_waits_own_group),
        T_LOOP_TEST(test_group_cancel_on_error),
        T_LOOP_TEST(test_group_init_flags),
        T_LOOP_TEST(test_group_spawn_after_cancel),
        T_LOOP_TEST(test_group_loop_stop),
        T_LOOP_TEST(test_group_nested),
    };
    return T_RUN_TESTS(tests);
}
