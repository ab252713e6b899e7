/* The "faults" group: a 200-connection loopback echo of 1 MiB each way per connection,
 * run under each fault of the seam (engine/fault.h) on its own and under all of them at once.
 *
 * One loop holds everything: an acceptor, an echo coroutine per accepted connection (plain recv,
 * or a multishot receiver over a shared buffer ring), and per connection a client coroutine that
 * receives and a sender coroutine it spawned. Clients send 1 MiB in random-sized chunks and
 * receive it back in random-sized reads; every byte is checked with t_check as it arrives, and a
 * per-connection checksum of what was sent is compared with one of what came back.
 *
 * User code here loops over short transfers (corio_send_all, recv loops), as real code must, and
 * nothing else: a transient error the seam injects (-EAGAIN on a CQE, -EINTR/-EAGAIN/-EBUSY from
 * io_uring_enter, -ENOBUFS on a multishot recv) must never reach it. Every error a corio call
 * returns is recorded; the test fails on any that the case does not allow. -ECONNRESET is
 * user-visible by nature: under its injection an affected connection must end cleanly with
 * -ECONNRESET (its bytes up to then correct), every other connection must verify in full, and
 * the fd count must come back to where it was.
 *
 * Each case's seed is CORIO_FAULTS_SEED from the environment, or a fixed default per case, and is
 * printed with the spec. The kernel's timing still varies between runs, so a seed reproduces the
 * seam's decisions, not the exact interleaving. Under valgrind the echo is scaled down (20
 * connections of 128 KiB). */
#include "helpers.h"

#include "fault.h"

#ifndef CORIO_TESTING
#error "test_faults needs the CORIO_TESTING library: see tests/CMakeLists.txt"
#endif

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CHUNK (64 * 1024)
#define NERR 160 /* errno values counted one by one; larger ones share the last slot */

/* ---- the cases ------------------------------------------------------------------------------ */

#define F_RX 0x1u       /* the server echoes through multishot receivers */
#define F_MIXED 0x2u    /* every other connection through a receiver */
#define F_RESET 0x4u    /* -ECONNRESET is injected: affected connections may end with it */
#define F_SHUT_REF 0x8u /* IORING_OP_SHUTDOWN is refused at run time: fall back to shutdown(2) */

struct fcase {
    const char *name;
    const char *spec; /* the seam's spec, without the seed */
    unsigned flags;
    unsigned zc_threshold;
    uint64_t default_seed;
    const char *small_spec; /* for the scaled-down run under valgrind, if not the same */
};

#define ALL_FAULTS(reset)                                                                          \
    "enter_eintr=0.02,enter_eagain=0.02,enter_ebusy=0.02,short_rw=0.1,cqe_eagain=0.05,"            \
    "cqe_econnreset=" reset ",cqe_enobufs=0.05,sq_full=0.02,reorder=0.2,holdback=0.05,cq=64,"      \
    "refuse_setup=defer_taskrun,hide_op=socket"

static const struct fcase case_enter = {.name = "enter",
                                        .spec = "enter_eintr=0.1,enter_eagain=0.1,enter_ebusy=0.1",
                                        .default_seed = 1001};
static const struct fcase case_short = {
    .name = "short_rw", .spec = "short_rw=0.3", .default_seed = 1002};
static const struct fcase case_eagain = {
    .name = "cqe_eagain", .spec = "cqe_eagain=0.1", .default_seed = 1003};
static const struct fcase case_reset = {.name = "cqe_econnreset",
                                        .spec = "cqe_econnreset=0.0005",
                                        .flags = F_RESET,
                                        .default_seed = 1004,
                                        .small_spec = "cqe_econnreset=0.005"};
static const struct fcase case_enobufs = {
    .name = "cqe_enobufs_receiver", .spec = "cqe_enobufs=0.2", .flags = F_RX, .default_seed = 1005};
static const struct fcase case_sq_full = {
    .name = "sq_full", .spec = "sq_full=0.1", .default_seed = 1006};
static const struct fcase case_cq = {.name = "cq_overflow", .spec = "cq=16", .default_seed = 1007};
static const struct fcase case_reorder = {
    .name = "reorder", .spec = "reorder=0.5,holdback=0.1", .flags = F_MIXED, .default_seed = 1008};
static const struct fcase case_setup = {
    .name = "refuse_setup",
    .spec = "refuse_setup=defer_taskrun|single_issuer|submit_all|cqsize",
    .default_seed = 1009};
static const struct fcase case_op = {
    .name = "refuse_op",
    .spec = "hide_op=socket|send_zc,refuse_op=shutdown,refuse_op_err=eopnotsupp",
    .flags = F_SHUT_REF,
    .zc_threshold = 4096,
    .default_seed = 1010};
static const struct fcase case_all = {.name = "all",
                                      .spec = ALL_FAULTS("0.0002"),
                                      .flags = F_MIXED | F_RESET,
                                      .default_seed = 1011,
                                      .small_spec = ALL_FAULTS("0.003")};

/* ---- one run --------------------------------------------------------------------------------- */

struct echo_test;

struct client {
    struct echo_test *t;
    int fd;
    uint64_t seed; /* the pattern of this connection's bytes */
    uint64_t rng;  /* chunk sizes */
    size_t sent, got;
    uint64_t sum_sent[2], sum_got[2]; /* Fletcher sums of the stream each way */
    bool reset;                       /* an op of this connection returned -ECONNRESET */
    bool epipe;      /* ... or -EPIPE (after a reset consumed by the other coroutine) */
    bool cancelling; /* the receiver is cancelling the sender: its -ECANCELED is ours */
    bool corrupt;    /* a byte did not match */
    int result;      /* 0 verified in full, -ECONNRESET, or another failure */
};

struct echo_test {
    const struct fcase *fc;
    int conns;
    size_t len;
    int lfd, port;
    int64_t deadline;
    struct corio_bufring *br;
    int accepted, served;
    size_t echoed;
    unsigned refused_shutdowns;
    unsigned errs[NERR]; /* errors returned to user code, by errno */
    unsigned unexpected; /* ... that the case does not allow */
    char first_unexpected[160];
    struct client *clients;
};

static void fletcher(uint64_t sum[2], const void *buf, size_t n)
{
    const uint8_t *b = buf;
    uint64_t a = sum[0], c = sum[1];
    for (size_t i = 0; i < n; i++) {
        a += b[i];
        c += a;
    }
    sum[0] = a;
    sum[1] = c;
}

/* Records an error a corio call returned to user code; @allowed says whether the case allows it
 * here. */
static void saw(struct echo_test *t, long r, bool allowed, const char *where)
{
    t->errs[-r < NERR ? -r : NERR - 1]++;
    if (allowed)
        return;
    if (t->unexpected++ == 0)
        snprintf(t->first_unexpected, sizeof(t->first_unexpected), "%s: %s (%ld)", where,
                 strerror((int)-r), r);
}

/* An error of one of a client's two coroutines. */
static void client_error(struct client *c, long r, const char *where)
{
    if (r == -ECANCELED && c->cancelling)
        return;
    bool resets = c->t->fc->flags & F_RESET;
    if (r == -ECONNRESET)
        c->reset = true;
    else if (r == -EPIPE)
        c->epipe = true;
    saw(c->t, r, resets && (r == -ECONNRESET || r == -EPIPE), where);
}

static int client_sender(void *arg)
{
    struct client *c = arg;
    struct echo_test *t = c->t;
    char *buf = malloc(MAX_CHUNK);
    if (!T_EXPECT(buf != NULL))
        return -ENOMEM;
    bool failed = false;
    while (c->sent < t->len) {
        size_t n = 1 + t_xorshift(&c->rng) % MAX_CHUNK;
        if (n > t->len - c->sent)
            n = t->len - c->sent;
        t_fill(buf, n, c->seed, c->sent);
        size_t done = 0;
        ssize_t r = corio_send_all(c->fd, buf, n, &done, t->deadline);
        fletcher(c->sum_sent, buf, done);
        c->sent += done;
        if (r < 0) {
            client_error(c, r, "client send_all");
            failed = true;
            break;
        }
        T_EXPECT_EQ(r, (ssize_t)n);
    }
    free(buf);
    if (failed || c->reset) {
        /* The connection is broken: wake the receiver (its recv returns 0). */
        shutdown(c->fd, SHUT_RDWR);
        return 0;
    }
    int r = corio_shutdown(c->fd, SHUT_WR);
    if ((t->fc->flags & F_SHUT_REF) && r == -EOPNOTSUPP) {
        /* The kernel refuses the op: the error arrives as it is, and shutdown(2) does the job. */
        t->refused_shutdowns++;
        r = shutdown(c->fd, SHUT_WR) == 0 ? 0 : -errno;
    }
    if (r < 0)
        client_error(c, r, "client shutdown");
    return 0;
}

static int client(void *arg)
{
    struct client *c = arg;
    struct echo_test *t = c->t;
    c->result = -EINPROGRESS;
    c->fd = corio_dial_tcp("127.0.0.1", (uint16_t)t->port, t->deadline);
    if (c->fd < 0) {
        /* A server whose first recv gets an injected reset closes with a RST, and can do so
         * before the client's connect is seen to complete (the epoll backend looks at the
         * socket's error only when the loop next polls): the dial then says -ECONNRESET, as
         * against a peer that resets at once. Allowed where resets are injected, as later. */
        client_error(c, c->fd, "client dial");
        return c->result = c->fd;
    }
    corio_id sender;
    if (!T_EXPECT_EQ(corio_spawn(&sender, NULL, client_sender, c), 0)) {
        corio_close(c->fd);
        return c->result = -ENOMEM;
    }
    char *buf = malloc(MAX_CHUNK);
    T_EXPECT(buf != NULL);
    while (buf) {
        size_t want = 1 + t_xorshift(&c->rng) % MAX_CHUNK;
        ssize_t n = corio_recv(c->fd, buf, want, 0, t->deadline);
        if (n == 0)
            break;
        if (n < 0) {
            client_error(c, n, "client recv");
            break;
        }
        if (!T_EXPECT((size_t)n <= want) || !T_EXPECT(c->got + (size_t)n <= t->len) ||
            !T_EXPECT_EQ(t_check(buf, (size_t)n, c->seed, c->got), -1)) {
            c->corrupt = true;
            break;
        }
        fletcher(c->sum_got, buf, (size_t)n);
        c->got += (size_t)n;
    }
    free(buf);
    if (c->reset || c->epipe || c->corrupt || c->got < t->len) {
        /* Cut short: the sender may be stuck in a send nobody reads. */
        c->cancelling = true;
        corio_cancel(sender);
    }
    int sres = -1;
    T_EXPECT_EQ(corio_join(sender, &sres, t->deadline + CORIO_SEC(5)), 0);
    if (c->reset)
        t_set_linger0(c->fd); /* the connection is dead: end it with a RST, as a reset does */
    T_EXPECT_EQ(corio_close(c->fd), 0);
    if (c->reset) {
        c->result = -ECONNRESET;
    } else {
        c->result = c->got == t->len && c->sent == t->len && !c->corrupt && !c->epipe &&
                            c->sum_got[0] == c->sum_sent[0] && c->sum_got[1] == c->sum_sent[1]
                        ? 0
                        : -EIO;
    }
    return c->result;
}

/* ---- the server ------------------------------------------------------------------------------ */

struct sconn {
    struct echo_test *t;
    int fd;
    bool rx; /* through a multishot receiver */
    uint64_t rng;
};

/* An echo error: a reset (injected, or the client's RST after one) ends the connection with a
 * RST in turn; anything else is a failure. */
static bool server_error(struct echo_test *t, long r, const char *where)
{
    bool reset = r == -ECONNRESET || r == -EPIPE;
    saw(t, r, reset && (t->fc->flags & F_RESET), where);
    return reset;
}

static int echo_plain(struct sconn *s, bool *reset)
{
    struct echo_test *t = s->t;
    char *buf = malloc(MAX_CHUNK);
    if (!T_EXPECT(buf != NULL))
        return -ENOMEM;
    for (;;) {
        size_t want = 1 + t_xorshift(&s->rng) % MAX_CHUNK;
        ssize_t n = corio_recv(s->fd, buf, want, 0, t->deadline);
        if (n == 0)
            break;
        if (n < 0) {
            *reset = server_error(t, n, "server recv");
            break;
        }
        ssize_t w = corio_send_all(s->fd, buf, (size_t)n, NULL, t->deadline);
        if (w < 0) {
            *reset = server_error(t, w, "server send_all");
            break;
        }
        t->echoed += (size_t)n;
    }
    free(buf);
    return 0;
}

static int echo_rx(struct sconn *s, bool *reset)
{
    struct echo_test *t = s->t;
    struct corio_receiver rx;
    if (!T_EXPECT_EQ(corio_receiver_init(&rx, s->fd, t->br), 0))
        return -EINVAL;
    for (;;) {
        struct corio_buf b;
        ssize_t n = corio_receiver_next(&rx, &b, t->deadline);
        if (n == 0)
            break;
        if (n < 0) {
            *reset = server_error(t, n, "server receiver_next");
            break;
        }
        ssize_t w = corio_send_all(s->fd, b.data, b.len, NULL, t->deadline);
        corio_buf_release(&b);
        if (w < 0) {
            *reset = server_error(t, w, "server send_all");
            break;
        }
        t->echoed += (size_t)n;
    }
    corio_receiver_fini(&rx);
    return 0;
}

static int server_conn(void *arg)
{
    struct sconn s = *(struct sconn *)arg;
    free(arg);
    bool reset = false;
    if (s.rx)
        echo_rx(&s, &reset);
    else
        echo_plain(&s, &reset);
    if (reset)
        t_set_linger0(s.fd);
    T_EXPECT_EQ(corio_close(s.fd), 0);
    s.t->served++;
    return 0;
}

static int acceptor(void *arg)
{
    struct echo_test *t = arg;
    while (t->accepted < t->conns) {
        int fd = corio_accept(t->lfd, NULL, NULL, 0, t->deadline);
        if (fd < 0) {
            saw(t, fd, false, "accept");
            return fd;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sconn *s = malloc(sizeof(*s));
        if (!T_EXPECT(s != NULL)) {
            corio_close(fd);
            return -ENOMEM;
        }
        unsigned f = t->fc->flags;
        *s = (struct sconn){.t = t,
                            .fd = fd,
                            .rx = (f & F_RX) || ((f & F_MIXED) && t->br && t->accepted % 2),
                            .rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(t->accepted + 1) * 7919};
        if (!T_EXPECT_EQ(corio_spawn(NULL, NULL, server_conn, s), 0)) {
            free(s);
            corio_close(fd);
            return -ENOMEM;
        }
        t->accepted++;
    }
    return 0;
}

static int echo_main(void *arg)
{
    struct echo_test *t = arg;
    if ((t->fc->flags & (F_RX | F_MIXED)) &&
        corio_loop_has(corio_loop_current(), CORIO_FEAT_RECV_MULTISHOT))
        T_EXPECT_EQ(corio_bufring_new(&t->br, NULL, 256, 4096), 0);
    corio_id acc;
    T_EXPECT_EQ(corio_spawn(&acc, NULL, acceptor, t), 0);
    corio_id *ids = calloc((size_t)t->conns, sizeof(*ids));
    if (!T_EXPECT(ids != NULL))
        return -ENOMEM;
    for (int i = 0; i < t->conns; i++)
        T_EXPECT_EQ(corio_spawn(&ids[i], NULL, client, &t->clients[i]), 0);
    for (int i = 0; i < t->conns; i++)
        T_EXPECT_EQ(corio_join(ids[i], NULL, t->deadline + CORIO_SEC(10)), 0);
    T_EXPECT_EQ(corio_join(acc, NULL, t->deadline + CORIO_SEC(10)), 0);
    /* The echo coroutines are detached: wait for the last ones to close their fds. */
    while (t->served < t->accepted && corio_now() < t->deadline + CORIO_SEC(10))
        corio_sleep(corio_now() + CORIO_MS(1));
    free(ids);
    if (t->br) {
        T_EXPECT_EQ(corio_bufring_available(t->br), 256);
        corio_bufring_free(t->br);
        t->br = NULL;
    }
    return 0;
}

static uint64_t case_seed(const struct fcase *fc)
{
    const char *e = getenv("CORIO_FAULTS_SEED");
    if (e && *e)
        return strtoull(e, NULL, 0);
    return fc->default_seed;
}

/* What a case ends with, for the assertions of each test. */
struct outcome {
    struct corio__fault_stats fs;
    struct corio_stats ls;
    uint64_t features;
    int verified, resets;
    unsigned refused_shutdowns;
};

static void run_case(const struct fcase *fc, struct outcome *o)
{
    int conns = t_on_valgrind() ? 20 : 200;
    size_t len = t_on_valgrind() ? 128 * 1024 : 1u << 20;
    uint64_t seed = case_seed(fc);
    /* Fewer ops in the small run: a rare fault needs a higher rate to happen at all. */
    const char *fspec = t_on_valgrind() && fc->small_spec ? fc->small_spec : fc->spec;
    char spec[512];
    snprintf(spec, sizeof(spec), "seed=%llu,quiet=1,%s", (unsigned long long)seed, fspec);
    print_message("faults %s: seed=%llu spec=%s (CORIO_FAULTS_SEED=%llu reruns the seam's "
                  "decisions)\n",
                  fc->name, (unsigned long long)seed, fspec, (unsigned long long)seed);
    int fds0 = t_count_fds();
    int64_t t0 = corio_now();
    assert_int_equal(corio__fault_configure(spec), 0);

    struct corio_loop_opts opts = {.zc_threshold = fc->zc_threshold};
    struct corio_loop *loop;
    assert_int_equal(corio_loop_new(&loop, &opts), 0);
    memset(o, 0, sizeof(*o));
    for (int f = 0; f < CORIO_FEAT_COUNT; f++)
        if (corio_loop_has(loop, (enum corio_feature)f))
            o->features |= 1ull << f;
    if ((fc->flags & F_RX) && !corio_loop_has(loop, CORIO_FEAT_RECV_MULTISHOT)) {
        corio_loop_free(loop);
        corio__fault_configure(NULL);
        print_message("SKIP: the kernel lacks multishot recv into a buffer ring\n");
        skip();
    }

    struct echo_test *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->fc = fc;
    t->conns = conns;
    t->len = len;
    t->deadline = t0 + CORIO_SEC(t_on_valgrind() ? 600 : 120);
    t->lfd = corio_listen_tcp("127.0.0.1", 0, 1024, 0);
    assert_true(t->lfd >= 0);
    t->port = corio_local_port(t->lfd);
    t->clients = calloc((size_t)conns, sizeof(*t->clients));
    assert_non_null(t->clients);
    for (int i = 0; i < conns; i++)
        t->clients[i] = (struct client){.t = t,
                                        .fd = -1,
                                        .seed = seed * 1000003u + (uint64_t)i,
                                        .rng = (seed << 20) + (uint64_t)i * 2654435761u + 1};

    assert_int_equal(t_run1(loop, echo_main, t), 0);
    o->fs = *corio__fault_stats();
    o->ls = *corio_loop_stats(loop);
    corio_loop_free(loop);
    o->fs.lost = corio__fault_stats()->lost; /* counted as the ring goes */
    corio__fault_configure(NULL);
    close(t->lfd);
    double ms = t_ms_since(t0);

    for (int i = 0; i < conns; i++) {
        struct client *c = &t->clients[i];
        if (c->result == 0)
            o->verified++;
        else if (c->result == -ECONNRESET)
            o->resets++;
    }
    o->refused_shutdowns = t->refused_shutdowns;
    print_message("faults %s: %d verified, %d reset, in %.0f ms; seam: %llu enter faults, %llu "
                  "short, %llu eagain, %llu reset, %llu enobufs, %llu refused, %llu sq_full, "
                  "%llu reordered, %llu held; loop: %llu CQEs, %llu enters, %llu overflows, "
                  "%llu enobufs\n",
                  fc->name, o->verified, o->resets, ms,
                  (unsigned long long)(o->fs.enter_eintr + o->fs.enter_eagain + o->fs.enter_ebusy),
                  (unsigned long long)o->fs.short_rw, (unsigned long long)o->fs.cqe_eagain,
                  (unsigned long long)o->fs.cqe_econnreset, (unsigned long long)o->fs.cqe_enobufs,
                  (unsigned long long)o->fs.op_refused, (unsigned long long)o->fs.sq_full,
                  (unsigned long long)o->fs.reordered, (unsigned long long)o->fs.held,
                  (unsigned long long)o->ls.cqes, (unsigned long long)o->ls.enters,
                  (unsigned long long)o->ls.cq_overflows, (unsigned long long)o->ls.enobufs);

    /* Nothing the fault alone causes reaches user code. */
    if (t->unexpected)
        fail_msg("faults %s (seed %llu): %u error(s) reached user code, first: %s", fc->name,
                 (unsigned long long)seed, t->unexpected, t->first_unexpected);
    assert_int_equal(t->errs[EAGAIN], 0);
    assert_int_equal(t->errs[EINTR], 0);
    assert_int_equal(t->errs[EBUSY], 0);
    assert_int_equal(t->errs[ENOBUFS], 0);
    t_expect_ok();
    for (int i = 0; i < conns; i++) {
        struct client *c = &t->clients[i];
        if (c->result != 0 && !(c->result == -ECONNRESET && (fc->flags & F_RESET)))
            fail_msg("faults %s (seed %llu): connection %d ended with %d: sent %zu, got %zu "
                     "of %zu%s%s",
                     fc->name, (unsigned long long)seed, i, c->result, c->sent, c->got, len,
                     c->corrupt ? ", corrupt" : "", c->epipe ? ", EPIPE" : "");
    }
    assert_int_equal(o->verified + o->resets, conns);
    assert_int_equal(t->accepted, conns);
    assert_int_equal(t->served, conns);
    if (!(fc->flags & F_RESET))
        assert_int_equal(t->echoed, (size_t)conns * len);
    /* The seam never loses a CQE, and no fd outlives the run. */
    assert_int_equal(o->fs.lost, 0);
    assert_int_equal(t_count_fds(), fds0);
    free(t->clients);
    free(t);
}

/* ---- the tests ---------------------------------------------------------------------------------
 */

static void test_faults_enter(void **state)
{
    (void)state;
    struct outcome o;
    run_case(&case_enter, &o);
    assert_true(o.fs.enter_eintr > 0);
    assert_true(o.fs.enter_eagain > 0);
    assert_true(o.fs.enter_ebusy > 0);
}

static void test_faults_short_rw(void **state)
{
    (void)state;
    struct outcome o;
    run_case(&case_short, &o);
    assert_true(o.fs.short_rw > 0);
}

static void test_faults_cqe_eagain(void **state)
{
    (void)state;
    struct outcome o;
    run_case(&case_eagain, &o);
    assert_true(o.fs.cqe_eagain > 0);
    assert_int_equal(o.fs.rewritten, o.fs.cqe_eagain);
}

static void test_faults_cqe_econnreset(void **state)
{
    (void)state;
    struct outcome o;
    run_case(&case_reset, &o);
    assert_true(o.fs.cqe_econnreset > 0);
    /* Each injection breaks at most one connection; the rest verify in full. */
    assert_true(o.resets >= 1);
    assert_true((uint64_t)o.resets <= o.fs.cqe_econnreset);
    assert_true(o.verified >= 1);
}

static void test_faults_cqe_enobufs_receiver(void **state)
{
    (void)state;
    struct outcome o;
    run_case(&case_enobufs, &o);
    assert_true(o.fs.cqe_enobufs > 0);
    /* Every -ENOBUFS, injected or real, was a re-arm, not an error. */
    assert_true(o.ls.enobufs >= o.fs.cqe_enobufs);
}

static void test_faults_sq_full(void **state)
{
    (void)state;
    t_skip_on_epoll("a full submission queue");
    struct outcome o;
    run_case(&case_sq_full, &o);
    assert_true(o.fs.sq_full > 0);
}

static void test_faults_cq_overflow(void **state)
{
    (void)state;
    t_skip_on_epoll("CQ overflow");
    struct outcome o;
    run_case(&case_cq, &o);
    assert_true(o.ls.cq_overflows > 0);
}

static void test_faults_reorder(void **state)
{
    (void)state;
    struct outcome o;
    run_case(&case_reorder, &o);
    assert_true(o.fs.reordered > 0);
    assert_true(o.fs.held > 0);
}

static void test_faults_refuse_setup(void **state)
{
    (void)state;
    t_skip_on_epoll("refusing io_uring setup flags");
    struct outcome o;
    run_case(&case_setup, &o);
    assert_true(o.fs.setup_refused > 0);
    assert_false(o.features & (1ull << CORIO_FEAT_DEFER_TASKRUN));
    assert_false(o.features & (1ull << CORIO_FEAT_SINGLE_ISSUER));
    assert_false(o.features & (1ull << CORIO_FEAT_SUBMIT_ALL));
    assert_false(o.features & (1ull << CORIO_FEAT_CQSIZE));
}

static void test_faults_refuse_op(void **state)
{
    (void)state;
    struct outcome o;
    run_case(&case_op, &o);
    /* Hidden ops: the probe did not list them and the engine took its fallbacks (socket(2),
     * plain send), so no SQE of theirs was refused. The one refused at run time (shutdown)
     * failed each time with its error, exactly, and nothing else. */
    assert_false(o.features & (1ull << CORIO_FEAT_SOCKET));
    assert_false(o.features & (1ull << CORIO_FEAT_SEND_ZC));
    int conns = t_on_valgrind() ? 20 : 200;
    assert_int_equal(o.refused_shutdowns, conns);
    assert_int_equal(o.fs.op_refused, conns);
}

static void test_faults_all(void **state)
{
    (void)state;
    struct outcome o;
    run_case(&case_all, &o);
    assert_true(o.fs.enter_eintr + o.fs.enter_eagain + o.fs.enter_ebusy > 0);
    assert_true(o.fs.short_rw > 0);
    assert_true(o.fs.cqe_eagain > 0);
    assert_true(o.fs.reordered > 0);
    if (!t_on_epoll()) /* the epoll backend has no submission queue to fill */
        assert_true(o.fs.sq_full > 0);
    assert_true(o.verified >= 1);
}

/* ---- regressions: exact fault sequences, driven by a script instead of the PRNG ----------------
 */

/* Configures the seam with @spec and the decisions @script (one byte each: below p * 256 means
 * yes), and makes a loop. */
static struct corio_loop *scripted_loop(const char *spec, const uint8_t *script, size_t n)
{
    assert_int_equal(corio__fault_configure(spec), 0);
    corio__fault_script(script, n);
    struct corio_loop *loop;
    assert_int_equal(corio_loop_new(&loop, NULL), 0);
    return loop;
}

static void scripted_end(struct corio_loop *loop)
{
    corio_loop_free(loop);
    assert_int_equal(corio__fault_stats()->lost, 0);
    corio__fault_script(NULL, 0);
    corio__fault_configure(NULL);
    t_expect_ok();
}

static int cancel_eagain(void *arg)
{
    (void)arg;
    int sv[2];
    T_EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    char c;
    struct corio_future f;
    /* The recv becomes a NOP completing -EAGAIN (script byte 0); it is cancelled before that CQE
     * is reaped, so the engine does not retry it. */
    T_EXPECT_EQ(corio_recv_start(&f, sv[0], &c, 1, 0, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_future_cancel(&f), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ECANCELED);
    T_EXPECT_EQ(corio__fault_stats()->cqe_eagain, 1);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

/* Found by the dispatch fuzzer: a cancelled op whose CQE was a transient -EAGAIN returned -EAGAIN
 * to its caller (loop.c future_settle). */
static void test_regress_cancel_eagain(void **state)
{
    (void)state;
    static const uint8_t script[] = {0};
    struct corio_loop *loop = scripted_loop("seed=6,quiet=1,cqe_eagain=0.5", script, 1);
    assert_int_equal(t_run1(loop, cancel_eagain, NULL), 0);
    scripted_end(loop);
}

struct spill_wait {
    double ms; /* how long the await of a completed NOP took */
};

static int spill_wait(void *arg)
{
    struct spill_wait *sw = arg;
    int p[2];
    T_EXPECT_EQ(t_pipe(p, 0), 0);
    char c[3];
    struct corio_future n1, n2, r[3];
    /* The SQ has 2 entries. N1, N2 fill it; R0 makes room (enter 1, real: N1 and N2 complete at
     * once); R1 fills it again; R2 makes room: enter 2 fails -EBUSY, so the ring layer moves the
     * CQEs of N1 and N2 to its spill list, and enter 3 (real) submits R0 and R1, which wait on
     * an empty pipe. Nothing in the kernel will complete now. */
    T_EXPECT_EQ(corio_nop_start(&n1), 0);
    T_EXPECT_EQ(corio_nop_start(&n2), 0);
    for (int i = 0; i < 3; i++)
        T_EXPECT_EQ(corio_read_start(&r[i], p[0], &c[i], 1, -1, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio__fault_stats()->enter_ebusy, 1);
    /* N1 is complete, its CQE in the spill list: the loop must not sleep in the kernel. */
    struct corio_future *fs[1] = {&n1};
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_await_any(fs, 1, corio_now() + CORIO_SEC(2)), 0);
    sw->ms = t_ms_since(t0);
    T_EXPECT_EQ(corio_await(&n1, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_await(&n2, CORIO_FOREVER), 0);
    for (int i = 0; i < 3; i++) {
        corio_future_cancel(&r[i]);
        T_EXPECT_EQ(corio_await(&r[i], CORIO_FOREVER), -ECANCELED);
    }
    close(p[0]);
    close(p[1]);
    return 0;
}

/* CQEs spilled while a full SQ was flushed were only handed out by the next reap, but the loop
 * first waited in io_uring_enter for a completion that might never come (ring.c
 * corio__ring_enter). */
static void test_regress_spill_wait(void **state)
{
    (void)state;
    t_skip_on_epoll("spilling CQEs from a full SQ");
    /* One decision per io_uring_enter: 255 = no fault, 0 = -EBUSY. Then no more faults. */
    static const uint8_t script[] = {255, 0, 255};
    struct corio_loop *loop = scripted_loop(
        "seed=6,quiet=1,sq=2,enter_ebusy=0.5,refuse_setup=defer_taskrun", script, sizeof(script));
    struct spill_wait sw = {0};
    assert_int_equal(t_run1(loop, spill_wait, &sw), 0);
    print_message("await of a spilled completion took %.1f ms\n", sw.ms);
    scripted_end(loop);
    assert_true(sw.ms < 500.0);
}

static int zc_hidden_body(void *arg)
{
    (void)arg;
    int sv[2];
    if (!T_EXPECT_EQ(t_tcp_pair(sv), 0))
        return -1;
    char out[64], in[64];
    t_fill(out, sizeof(out), 64, 0);
    T_EXPECT_EQ(corio_send_zc(sv[1], out, sizeof(out), 0, T_BOUND), -EOPNOTSUPP);
    /* Above the loop's zero-copy threshold: sent plainly, and only once. */
    T_EXPECT_EQ(corio_send(sv[1], out, sizeof(out), 0, T_BOUND), sizeof(out));
    T_EXPECT_EQ(corio_recv_all(sv[0], in, sizeof(in), NULL, T_BOUND), sizeof(in));
    T_EXPECT_EQ(t_check(in, sizeof(in), 64, 0), -1);
    T_EXPECT_EQ(recv(sv[0], in, sizeof(in), MSG_DONTWAIT), -1);
    close(sv[0]);
    close(sv[1]);
    return 0;
#undef T_BOUND
}

/* A kernel without IORING_OP_SEND_ZC (before 6.0), simulated by hiding the opcode from the probe
 * and the ring: corio_send_zc fails with the engine's own -EOPNOTSUPP without submitting, and a
 * send above the zero-copy threshold goes out plainly. */
static void test_faults_send_zc_missing(void **state)
{
    (void)state;
    assert_int_equal(corio__fault_configure("quiet=1,hide_op=send_zc"), 0);
    struct corio_loop_opts o = {.zc_threshold = 16};
    struct corio_loop *loop;
    assert_int_equal(corio_loop_new(&loop, &o), 0);
    assert_false(corio_loop_has(loop, CORIO_FEAT_SEND_ZC));
    assert_int_equal(t_run1(loop, zc_hidden_body, NULL), 0);
    assert_int_equal(corio__fault_stats()->op_refused, 0); /* no send_zc SQE reached the seam */
    scripted_end(loop);
}

struct wake_late {
    double long_ms, short_ms; /* how long each deadline wait took */
};

static int wait_long(void *arg)
{
    struct wake_late *w = arg;
    struct corio_event never = CORIO_EVENT_INIT;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_event_wait(&never, t0 + CORIO_MS(300)), -ETIMEDOUT);
    w->long_ms = t_ms_since(t0);
    return 0;
}

static int wait_short_later(void *arg)
{
    struct wake_late *w = arg;
    struct corio_event never = CORIO_EVENT_INIT;
    /* A kernel timeout wakes the loop while the 300 ms wake-up SQE is in flight. */
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(20)), 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_event_wait(&never, t0 + CORIO_MS(30)), -ETIMEDOUT);
    w->short_ms = t_ms_since(t0);
    return 0;
}

/* A kernel without EXT_ARG (before 5.11): the loop waits for its timers with timeout SQEs. One
 * armed for a later deadline must not stand in for an earlier timer added after it: the 30 ms
 * wait ended at the 300 ms wake-up (loop.c idle_wait). */
static void test_faults_no_ext_arg_timers(void **state)
{
    (void)state;
    assert_int_equal(corio__fault_configure("quiet=1,hide_feat=ext_arg"), 0);
    struct corio_loop *loop;
    assert_int_equal(corio_loop_new(&loop, NULL), 0);
    assert_false(corio_loop_has(loop, CORIO_FEAT_EXT_ARG));
    struct wake_late w = {0, 0};
    assert_int_equal(t_run2(loop, wait_long, wait_short_later, &w), 0);
    scripted_end(loop);
    print_message("without EXT_ARG: a 300 ms deadline took %.1f ms, a 30 ms one set later %.1f ms\n",
                  w.long_ms, w.short_ms);
    assert_true(w.long_ms >= 299.0);
    assert_true(w.short_ms >= 29.0);
    assert_true(w.short_ms < 150.0 * t_slowdown());
}

int main(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_enter),
        cmocka_unit_test(test_faults_short_rw),
        cmocka_unit_test(test_faults_cqe_eagain),
        cmocka_unit_test(test_faults_cqe_econnreset),
        cmocka_unit_test(test_faults_cqe_enobufs_receiver),
        cmocka_unit_test(test_faults_sq_full),
        cmocka_unit_test(test_faults_cq_overflow),
        cmocka_unit_test(test_faults_reorder),
        cmocka_unit_test(test_faults_refuse_setup),
        cmocka_unit_test(test_faults_refuse_op),
        cmocka_unit_test(test_faults_all),
        cmocka_unit_test(test_regress_cancel_eagain),
        cmocka_unit_test(test_regress_spill_wait),
        cmocka_unit_test(test_faults_send_zc_missing),
        cmocka_unit_test(test_faults_no_ext_arg_timers),
    };
    return T_RUN_TESTS(tests);
}
