/* The testing variant as an embedder uses it (libcorio-testing, CORIO_FAULTS): the user's grammar
 * of faults (short names, ops= to pick the kinds of op), every fault kind it names reached by a
 * small echo, the same seed giving the same faults (the seam's trace digest), and the line that
 * replays a failed run. The seam's own behaviour under each fault is test_faults' business. */
#include "helpers.h"

#include "fault.h"

#ifndef CORIO_TESTING
#error "test_testing needs the CORIO_TESTING library: see tests/CMakeLists.txt"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a small echo that tolerates what the faults may show a user ------------------------------
 */

#define CONNS 4
#define BYTES (64 * 1024)

struct conn {
    int fd[2];      /* [0] the echoing side, [1] the client's */
    uint64_t seed;  /* of the data */
    bool multishot; /* the echo side reads with a receiver over a buffer ring */
    struct corio_bufring *br;
    int result;  /* the client's: 0 verified, or how a reset ended it */
    bool resets; /* reset= is on: a connection may end early, as its peer saw a reset */
    char out[BYTES], in[BYTES]; /* the client's data, and what came back */
};

static int echo_side(void *arg)
{
    struct conn *c = arg;
    char buf[4096];
    if (c->multishot) {
        struct corio_receiver rx;
        T_EXPECT_EQ(corio_receiver_init(&rx, c->fd[0], c->br), 0);
        for (;;) {
            struct corio_buf b;
            ssize_t n = corio_receiver_next(&rx, &b, CORIO_FOREVER);
            if (n <= 0)
                break;
            ssize_t w = corio_send_all(c->fd[0], b.data, b.len, NULL, CORIO_FOREVER);
            corio_buf_release(&b);
            if (w < 0)
                break;
        }
        corio_receiver_fini(&rx);
    } else {
        for (;;) {
            ssize_t n = corio_recv(c->fd[0], buf, sizeof(buf), 0, CORIO_FOREVER);
            if (n <= 0 || corio_send_all(c->fd[0], buf, (size_t)n, NULL, CORIO_FOREVER) < 0)
                break;
        }
    }
    shutdown(c->fd[0], SHUT_RDWR);
    return 0;
}

static int client_side(void *arg)
{
    struct conn *c = arg;
    char *out = c->out, *in = c->in;
    t_fill(out, BYTES, c->seed, 0);
    size_t sent = 0, got = 0;
    while (got < BYTES) {
        if (sent < BYTES) {
            size_t n = BYTES - sent < 3000 ? BYTES - sent : 3000;
            ssize_t w = corio_send_all(c->fd[1], out + sent, n, NULL, CORIO_FOREVER);
            if (w < 0) {
                c->result = (int)w;
                break;
            }
            sent += n;
        }
        ssize_t r = corio_recv(c->fd[1], in + got, sent - got, 0, CORIO_FOREVER);
        if (r <= 0) {
            c->result = r == 0 ? -EPIPE : (int)r;
            break;
        }
        got += (size_t)r;
    }
    if (c->result == 0)
        T_EXPECT_EQ(t_check(in, BYTES, c->seed, 0), -1);
    else /* the one error the faults show a user: a reset, here or at the peer (which quits) */
        T_EXPECT(c->resets && (c->result == -ECONNRESET || c->result == -EPIPE));
    shutdown(c->fd[1], SHUT_RDWR);
    return 0;
}

struct echo {
    struct conn c[CONNS];
    bool multishot;
    struct corio_loop *loop;
};

static int echo_main(void *arg)
{
    struct echo *e = arg;
    corio_id ids[2 * CONNS];
    for (int i = 0; i < CONNS; i++) {
        T_EXPECT_EQ(corio_spawn(&ids[2 * i], e->loop, echo_side, &e->c[i]), 0);
        T_EXPECT_EQ(corio_spawn(&ids[2 * i + 1], e->loop, client_side, &e->c[i]), 0);
    }
    for (int i = 0; i < 2 * CONNS; i++)
        T_EXPECT_EQ(corio_join(ids[i], NULL, CORIO_FOREVER), 0);
    return 0;
}

/* Runs the echo under @spec. Returns the seam's counters and, in *@ls, the loop's. */
static struct corio__fault_stats run_echo(const char *spec, bool multishot, struct corio_stats *ls)
{
    assert_int_equal(corio__fault_configure(spec), 0);
    struct echo *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    e->loop = t_mkloop(NULL);
    struct corio_bufring *br = NULL;
    if (multishot) {
        if (!corio_loop_has(e->loop, CORIO_FEAT_RECV_MULTISHOT)) {
            corio_loop_free(e->loop);
            free(e);
            corio__fault_configure(NULL);
            skip(); /* the kernel lacks multishot recv: said by the caller's message */
        }
        br = t_bufring(e->loop, 64, 4096);
    }
    for (int i = 0; i < CONNS; i++) {
        assert_int_equal(t_tcp_pair(e->c[i].fd), 0);
        e->c[i].seed = 1000 + (uint64_t)i;
        e->c[i].multishot = multishot;
        e->c[i].resets = strstr(spec, "reset=") != NULL;
        e->c[i].br = br;
    }
    assert_int_equal(t_run1(e->loop, echo_main, e), 0);
    struct corio__fault_stats fs = *corio__fault_stats();
    if (ls)
        *ls = *corio_loop_stats(e->loop);
    if (br)
        corio_bufring_free(br);
    corio_loop_free(e->loop);
    corio__fault_configure(NULL);
    for (int i = 0; i < CONNS; i++) {
        close(e->c[i].fd[0]);
        close(e->c[i].fd[1]);
    }
    free(e);
    t_expect_ok();
    return fs;
}

/* ---- the grammar ------------------------------------------------------------------------------
 */

static void test_testing_grammar(void **state)
{
    (void)state;
    static const char *const good[] = {
        "seed=42,short=0.05,eagain=0.01,reset=0.001",
        "seed=0x2a,enobufs=0.5,eintr=0.1,ebusy=0.1,enter_eagain=0.1,quiet=1",
        "short=1,ops=recv|send,quiet=1",
        "sq_full=0.1,reorder=0.5,holdback=0.5,cq=8,sq=4,quiet=1",
        "refuse_op=nop,refuse_op_err=eopnotsupp,hide_op=send_zc,hide_feat=ext_arg,quiet=1",
        "",
    };
    static const char *const bad[] = {
        "bogus=1",        "short=2", "short=-0.1", "eagain",
        "ops=frobnicate", "ops=",    "seed=x",     "reset=0.1,,cq=0",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        print_message("good: '%s'\n", good[i]);
        assert_int_equal(corio__fault_configure(good[i]), 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("bad: '%s'\n", bad[i]);
        assert_int_equal(corio__fault_configure(bad[i]), -EINVAL);
    }
    corio__fault_configure(NULL);
}

/* ---- every kind the grammar names is reached --------------------------------------------------
 */

static void test_testing_every_kind_reached(void **state)
{
    (void)state;
    struct corio__fault_stats fs;
    fs = run_echo("seed=1,quiet=1,short=0.3", false, NULL);
    assert_true(fs.short_rw > 0);
    fs = run_echo("seed=2,quiet=1,eagain=0.2", false, NULL);
    assert_true(fs.cqe_eagain > 0);
    fs = run_echo("seed=3,quiet=1,reset=0.02", false, NULL);
    assert_true(fs.cqe_econnreset > 0);
    fs = run_echo("seed=4,quiet=1,eintr=0.1,enter_eagain=0.1,ebusy=0.1", false, NULL);
    assert_true(fs.enter_eintr > 0 && fs.enter_eagain > 0 && fs.enter_ebusy > 0);
    if (t_on_epoll()) {
        print_message("sq_full not checked: it fills io_uring's submission queue, which the "
                      "epoll backend does not have\n");
    } else {
        fs = run_echo("seed=5,quiet=1,sq_full=0.2", false, NULL);
        assert_true(fs.sq_full > 0);
    }
    fs = run_echo("seed=6,quiet=1,reorder=0.5,holdback=0.2", false, NULL);
    assert_true(fs.reordered > 0 && fs.held > 0);
    assert_int_equal(fs.lost, 0);
    print_message("short, eagain, reset, eintr/enter_eagain/ebusy, sq_full, reorder, holdback: "
                  "each reached\n");
}

static void test_testing_enobufs_reached(void **state)
{
    (void)state;
    print_message("(skipped if the kernel lacks multishot recv into a buffer ring)\n");
    struct corio__fault_stats fs = run_echo("seed=7,quiet=1,enobufs=0.2", true, NULL);
    assert_true(fs.cqe_enobufs > 0);
}

/* cq=N forces a small completion queue: the loop's CQEs overflow into the kernel's list. The
 * epoll backend has no completion ring to size. */
static void test_testing_cq_overflow_reached(void **state)
{
    (void)state;
    if (t_on_epoll()) {
        print_message("SKIP: cq= sizes io_uring's completion queue; the epoll backend has none\n");
        skip();
    }
    struct corio_stats ls;
    struct corio__fault_stats fs = run_echo("seed=8,quiet=1,sq=2,cq=2", false, &ls);
    (void)fs;
    assert_true(ls.cq_overflows > 0);
}

/* refuse_op makes every SQE of an op fail, and hide_op hides it from the probe. */
static int one_nop(void *arg)
{
    (void)arg;
    T_EXPECT_EQ(corio_nop(), -EOPNOTSUPP);
    return 0;
}

static void test_testing_refuse_and_hide_reached(void **state)
{
    (void)state;
    assert_int_equal(corio__fault_configure("quiet=1,refuse_op=nop,refuse_op_err=eopnotsupp"), 0);
    struct corio_loop *l = t_mkloop(NULL);
    assert_int_equal(t_run1(l, one_nop, NULL), 0);
    corio_loop_free(l);
    assert_true(corio__fault_stats()->op_refused > 0);
    assert_int_equal(corio__fault_configure("quiet=1,hide_op=send_zc"), 0);
    l = t_mkloop(NULL);
    assert_false(corio_loop_has(l, CORIO_FEAT_SEND_ZC));
    corio_loop_free(l);
    corio__fault_configure(NULL);
    t_expect_ok();
}

/* ---- ops= picks the kinds of op ------------------------------------------------------------- */

struct pick {
    int sv[2];
    int short_recvs, short_sends;
};

static int pick_body(void *arg)
{
    struct pick *p = arg;
    char buf[1000];
    memset(buf, 'x', sizeof(buf));
    for (int i = 0; i < 30; i++) {
        ssize_t w = corio_send(p->sv[1], buf, sizeof(buf), 0, CORIO_FOREVER);
        T_EXPECT(w > 0);
        p->short_sends += w < (ssize_t)sizeof(buf);
        size_t got = 0;
        while (got < (size_t)w) {
            ssize_t r = corio_recv(p->sv[0], buf, (size_t)w - got, 0, CORIO_FOREVER);
            if (!T_EXPECT(r > 0))
                return -1;
            p->short_recvs += got == 0 && r < w;
            got += (size_t)r;
        }
    }
    return 0;
}

static struct pick run_pick(const char *spec)
{
    struct pick p = {0};
    assert_int_equal(t_tcp_pair(p.sv), 0);
    assert_int_equal(corio__fault_configure(spec), 0);
    struct corio_loop *l = t_mkloop(NULL);
    assert_int_equal(t_run1(l, pick_body, &p), 0);
    corio_loop_free(l);
    corio__fault_configure(NULL);
    close(p.sv[0]);
    close(p.sv[1]);
    t_expect_ok();
    print_message("%s: %d short recvs, %d short sends of 30\n", spec, p.short_recvs, p.short_sends);
    return p;
}

static void test_testing_ops_picks_kinds(void **state)
{
    (void)state;
    struct pick p = run_pick("seed=9,quiet=1,short=1,ops=recv");
    assert_true(p.short_recvs > 0);
    assert_int_equal(p.short_sends, 0);
    p = run_pick("seed=9,quiet=1,short=1,ops=send");
    assert_true(p.short_sends > 0);
    assert_int_equal(p.short_recvs, 0);
}

/* ---- the same seed, the same faults -----------------------------------------------------------
 */

/* The faults drawn per SQE and per io_uring_enter follow the program's own sequence of calls, so
 * a one-loop program with the same inputs gets the same faults from the same seed (the faults
 * drawn per reaped batch, reorder and holdback, also follow how the kernel batched the
 * completions, which is timing). */
#define SEEDED "quiet=1,short=0.3,eagain=0.1,eintr=0.05,enter_eagain=0.05,ebusy=0.05"

static void test_testing_same_seed_same_digest(void **state)
{
    (void)state;
    struct corio__fault_stats a = run_echo("seed=11," SEEDED, false, NULL);
    struct corio__fault_stats b = run_echo("seed=11," SEEDED, false, NULL);
    struct corio__fault_stats c = run_echo("seed=12," SEEDED, false, NULL);
    print_message("digests: seed 11: %016llx and %016llx, seed 12: %016llx\n",
                  (unsigned long long)a.digest, (unsigned long long)b.digest,
                  (unsigned long long)c.digest);
    assert_true(a.short_rw > 0 && a.cqe_eagain > 0);
    assert_true(a.digest == b.digest);
    assert_int_equal(a.short_rw, b.short_rw);
    assert_int_equal(a.cqe_eagain, b.cqe_eagain);
    assert_true(a.digest != c.digest);
}

/* ---- the replay line --------------------------------------------------------------------------
 */

/* A child configures faults without a seed and exits with @status; returns what it printed to
 * stderr. */
static void child_output(int status, char *out, size_t cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        if (corio__fault_configure("short=0.1,ops=recv") != 0)
            _exit(99);
        exit(status);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), status);
}

static void test_testing_replay_line(void **state)
{
    (void)state;
    char out[2048];
    child_output(3, out, sizeof(out));
    print_message("exit 3:\n%s", out);
    unsigned long long seed = 0, again = 0;
    const char *s = strstr(out, "corio faults: seed=");
    assert_non_null(s);
    assert_int_equal(sscanf(s, "corio faults: seed=%llu", &seed), 1);
    const char *r = strstr(out, "corio faults: to replay: CORIO_FAULTS='seed=");
    assert_non_null(r);
    assert_int_equal(sscanf(r, "corio faults: to replay: CORIO_FAULTS='seed=%llu", &again), 1);
    assert_true(seed == again);
    assert_non_null(strstr(r, ",short=0.1,ops=recv'"));
    child_output(0, out, sizeof(out));
    assert_non_null(strstr(out, "corio faults: seed="));
    assert_null(strstr(out, "to replay"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_testing_grammar),
        T_GUARD_TEST(test_testing_every_kind_reached),
        T_GUARD_TEST(test_testing_enobufs_reached),
        T_GUARD_TEST(test_testing_cq_overflow_reached),
        T_GUARD_TEST(test_testing_refuse_and_hide_reached),
        T_GUARD_TEST(test_testing_ops_picks_kinds),
        T_GUARD_TEST(test_testing_same_seed_same_digest),
        T_GUARD_TEST(test_testing_replay_line),
    };
    return T_RUN_TESTS(tests);
}
