/* A bounded soak: an echo server and ~1,000 client connections with churn and resets, on one
 * loop, for CORIO_SOAK_SECONDS (default 60).
 *
 * The server accepts with a multishot acceptor (plain accept where the kernel lacks it) and
 * serves every connection in its own coroutine, alternately over a shared buffer ring (a
 * multishot receiver) and with recv into a per-connection buffer. Each client session is a
 * coroutine: it connects, exchanges 1..8 messages of 1..32 KiB 0..49 ms apart (every echoed byte
 * checked against a pattern seeded by the session), and then ends in one of four ways: a normal
 * close, a reset (SO_LINGER 0), or a disconnect in the middle of a message, with a FIN or with a
 * reset. Each session spawns its replacement as it ends, so ~1,000 connections are open at all
 * times.
 *
 * At the end: RSS grew by less than 5% between the end of the warm-up (the first quarter of the run,
 * at least 5 s) and the end
 * (both under full load); the fd count is back to its start; every coroutine the test spawned has
 * ended (the loop's spawn counter matches the test's own count, and the test's live count is 0);
 * every buffer is back in the ring; and no error reached user code except the resets and broken
 * pipes that the clients' own resets and disconnects caused. One summary line is printed.
 * Labelled "soak". */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* ASan keeps freed memory in a quarantine, 256 MiB by default, that this churn takes minutes to
 * fill: RSS growth that is no leak (with 16 MiB, still +6% between 5 s and 10 s on a loaded
 * machine). A 4 MiB one fills within the first second or two; it still catches a use after free of
 * what was freed in the last moments. ASAN_OPTIONS=quarantine_size_mb=N overrides it. */
#if T_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=4";
}
#endif

enum {
    SOAK_CONNS = 1000,    /* client sessions alive at once */
    SOAK_MAX_MSG = 32768, /* largest message */
    SOAK_MAX_MSGS = 8,    /* most messages in a session */
    RING_COUNT = 1024,    /* buffers in the server's ring: 4 MiB, a few percent of the RSS, so
                             that its working set growing into its size cannot pass for a leak
                             (and it runs dry often, exercising the -ENOBUFS re-arm) */
    RING_SIZE = 4096,     /* bytes each */
    PLAIN_BUF = 16384,    /* the recv server's per-connection buffer */
};

/* Every client wait: a session that takes this long is broken, not slow. */
#define SESSION_BOUND CORIO_SEC(20)

/* The fates of a session. */
enum { FATE_NORMAL, FATE_RESET, FATE_MID_FIN, FATE_MID_RESET };

struct soak {
    int64_t seconds; /* how long */
    int lfd, port;
    struct corio_bufring *br;
    corio_id acc;  /* the accept loop */
    bool stopping; /* no more replacement sessions */
    /* Coroutines of this test: spawned (the loop must count the same) and alive now. */
    uint64_t spawned;
    int64_t live;
    /* Clients. */
    uint64_t next_session;
    int64_t sessions_live;      /* session coroutines alive */
    int64_t open;               /* client connections open now */
    int64_t open_min, open_max; /* sampled every 100 ms after the warm-up */
    int64_t open_sum, open_samples;
    uint64_t opened, msgs, bytes;
    uint64_t fates[4];
    uint64_t client_errs; /* any error a client saw (none is expected) */
    int client_err;       /* the first */
    uint64_t corrupt;     /* echoes that did not match */
    /* Server. */
    uint64_t accepted;
    int64_t srv_live;
    struct t_ends srv_end;
    uint64_t accept_errs;
    int accept_err;
    /* Measurements. */
    long rss_start, rss_warm, rss_end, rss_after;
    int fds_start;
    uint64_t spawns_start;
};

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* t_fill's pattern (helpers.c: byte i of a stream is byte (i & 7) of a hash of i >> 3 and the
 * seed), made a word at a time: the soak checks every byte it moves, and the per-byte form would
 * take most of the loop's time. */
static inline uint64_t pat_word(uint64_t seed, uint64_t w)
{
    uint64_t x = w * 0x9e3779b97f4a7c15ull + seed;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 32;
    return x;
}

static void pat_fill(unsigned char *b, size_t len, uint64_t seed, uint64_t pos)
{
    for (size_t i = 0; i < len;) {
        uint64_t x = pat_word(seed, (pos + i) >> 3);
        for (unsigned k = (unsigned)((pos + i) & 7); k < 8 && i < len; k++, i++)
            b[i] = (unsigned char)(x >> (k * 8));
    }
}

static bool pat_ok(const unsigned char *b, size_t len, uint64_t seed, uint64_t pos)
{
    for (size_t i = 0; i < len;) {
        uint64_t x = pat_word(seed, (pos + i) >> 3);
        for (unsigned k = (unsigned)((pos + i) & 7); k < 8 && i < len; k++, i++)
            if (b[i] != (unsigned char)(x >> (k * 8)))
                return false;
    }
    return true;
}

static void client_error(struct soak *s, ssize_t err)
{
    if (s->client_errs++ == 0)
        s->client_err = (int)err;
}

/* Spawns fn(arg) as one of the test's coroutines, counted. */
static int soak_spawn(struct soak *s, corio_fn *fn, void *arg, corio_id *out)
{
    int err = corio_spawn(out, NULL, fn, arg);
    if (err == 0)
        s->spawned++;
    return err;
}

/* ---- the server ------------------------------------------------------------------------------ */

struct conn_arg {
    struct soak *s;
    int fd;
    bool ring;
};

static int server_conn(void *arg)
{
    struct conn_arg a = *(struct conn_arg *)arg;
    free(arg);
    struct soak *s = a.s;
    s->live++;
    s->srv_live++;
    ssize_t r = 0;
    if (a.ring) {
        struct corio_receiver rx;
        struct corio_buf b;
        T_EXPECT_EQ(corio_receiver_init(&rx, a.fd, s->br), 0);
        while ((r = corio_receiver_next(&rx, &b, CORIO_FOREVER)) > 0) {
            ssize_t w = corio_send_all(a.fd, b.data, b.len, NULL, CORIO_FOREVER);
            corio_buf_release(&b);
            if (w < 0) {
                r = w;
                break;
            }
        }
        corio_receiver_fini(&rx);
    } else {
        char *buf = malloc(PLAIN_BUF);
        T_EXPECT(buf != NULL);
        while (buf && (r = corio_recv(a.fd, buf, PLAIN_BUF, 0, CORIO_FOREVER)) > 0) {
            ssize_t w = corio_send_all(a.fd, buf, (size_t)r, NULL, CORIO_FOREVER);
            if (w < 0) {
                r = w;
                break;
            }
        }
        free(buf);
    }
    t_count_end(&s->srv_end, r);
    T_EXPECT_EQ(corio_close(a.fd), 0);
    s->srv_live--;
    s->live--;
    return 0;
}

static int server_accept(void *arg)
{
    struct soak *s = arg;
    s->live++;
    struct corio_group conns;
    corio_group_init(&conns, 0);
    struct corio_acceptor a;
    bool multi = corio_loop_has(corio_loop_current(), CORIO_FEAT_ACCEPT_MULTISHOT) &&
                 corio_acceptor_init(&a, s->lfd, 0) == 0;
    for (;;) {
        int fd = multi ? corio_acceptor_next(&a, CORIO_FOREVER)
                       : corio_accept(s->lfd, NULL, NULL, 0, CORIO_FOREVER);
        if (fd == -ECANCELED)
            break;
        if (fd < 0) {
            if (s->accept_errs++ == 0)
                s->accept_err = fd;
            if (corio_sleep(corio_now() + CORIO_MS(10)) == -ECANCELED)
                break;
            continue;
        }
        struct conn_arg *ca = malloc(sizeof(*ca));
        if (ca)
            *ca = (struct conn_arg){s, fd, s->br && (s->accepted & 1)};
        s->accepted++;
        if (!T_EXPECT(ca != NULL) ||
            !T_EXPECT_EQ(corio_group_spawn(NULL, &conns, server_conn, ca), 0)) {
            free(ca);
            corio_close(fd);
            continue;
        }
        s->spawned++;
    }
    if (multi)
        corio_acceptor_fini(&a);
    corio_group_cancel(&conns);
    corio_group_wait(&conns, CORIO_FOREVER);
    s->live--;
    return 0;
}

/* ---- the clients ----------------------------------------------------------------------------- */

struct slot {
    struct soak *s;
    unsigned char *out, *in; /* SOAK_MAX_MSG each, touched up front */
};

static int session(void *arg);

/* One connection's life; spawns its replacement when it ends. */
static int session(void *arg)
{
    struct slot *sl = arg;
    struct soak *s = sl->s;
    s->live++;
    s->sessions_live++;
    uint64_t id = ++s->next_session;
    uint64_t rng = id * 0x9e3779b97f4a7c15ull + 1;
    int64_t dl = corio_now() + SESSION_BOUND;
    int fd = corio_dial_tcp("127.0.0.1", (uint16_t)s->port, dl);
    if (fd < 0) {
        client_error(s, fd);
        goto end;
    }
    s->opened++;
    s->open++;
    unsigned roll = (unsigned)(rng_next(&rng) % 100);
    int fate = roll < 55   ? FATE_NORMAL
               : roll < 75 ? FATE_RESET
               : roll < 90 ? FATE_MID_FIN
                           : FATE_MID_RESET;
    unsigned nmsg = 1 + (unsigned)(rng_next(&rng) % SOAK_MAX_MSGS);
    uint64_t pos = 0;
    for (unsigned m = 0; m < nmsg; m++) {
        if (s->stopping) {
            fate = FATE_NORMAL;
            break;
        }
        /* Think time: most connections are idle at any moment, as on a real server. */
        if (corio_sleep(corio_now() + CORIO_MS(rng_next(&rng) % 200)) != 0) {
            client_error(s, -ECANCELED);
            break;
        }
        size_t len = 1 + (size_t)(rng_next(&rng) % SOAK_MAX_MSG);
        pat_fill(sl->out, len, id, pos);
        if (m == nmsg - 1 && (fate == FATE_MID_FIN || fate == FATE_MID_RESET)) {
            /* Part of the last message, then gone. */
            size_t part = len > 1 ? 1 + (size_t)(rng_next(&rng) % (len - 1)) : 1;
            ssize_t r = corio_send_all(fd, sl->out, part, NULL, dl);
            if (r != (ssize_t)part)
                client_error(s, r < 0 ? r : -EIO);
            break;
        }
        ssize_t r = corio_send_all(fd, sl->out, len, NULL, dl);
        if (r != (ssize_t)len) {
            client_error(s, r < 0 ? r : -EIO);
            fate = FATE_RESET;
            break;
        }
        r = corio_recv_all(fd, sl->in, len, NULL, dl);
        if (r != (ssize_t)len) {
            client_error(s, r < 0 ? r : -EIO);
            fate = FATE_RESET;
            break;
        }
        if (!pat_ok(sl->in, len, id, pos)) {
            s->corrupt++;
            fate = FATE_RESET;
            break;
        }
        pos += len;
        s->msgs++;
        s->bytes += len;
    }
    if (fate == FATE_RESET || fate == FATE_MID_RESET) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        T_EXPECT_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    }
    s->fates[fate]++;
    T_EXPECT_EQ(corio_close(fd), 0);
    s->open--;
end:
    s->sessions_live--;
    s->live--;
    /* The replacement takes this session's slot. */
    if (!s->stopping)
        T_EXPECT_EQ(soak_spawn(s, session, sl, NULL), 0);
    return 0;
}

/* ---- the run --------------------------------------------------------------------------------- */

static int soak_main(void *arg)
{
    struct soak *s = arg;
    s->live++;
    int64_t t0 = corio_now();
    /* The warm-up lasts a quarter of the run (at least 5 s, at most half): the shared buffer
     * ring hands the kernel a working set of its warmest buffers and grows it when bursts drain
     * it, so its pages are touched progressively, up to its fixed size, over the first seconds
     * of load. Growth after that is what a leak would show. */
    int64_t warm_s = s->seconds / 4 < 5 ? 5 : s->seconds / 4;
    if (warm_s > s->seconds / 2)
        warm_s = s->seconds / 2;
    int64_t warm = t0 + CORIO_SEC(warm_s);
    int64_t end = t0 + CORIO_SEC(s->seconds);
    if (!T_EXPECT_EQ(soak_spawn(s, server_accept, s, &s->acc), 0))
        goto out;
    static struct slot slots[SOAK_CONNS];
    for (int i = 0; i < SOAK_CONNS; i++) {
        slots[i].s = s;
        slots[i].out = malloc(SOAK_MAX_MSG);
        slots[i].in = malloc(SOAK_MAX_MSG);
        if (!T_EXPECT(slots[i].out && slots[i].in))
            break;
        memset(slots[i].out, 0, SOAK_MAX_MSG);
        memset(slots[i].in, 0, SOAK_MAX_MSG);
        T_EXPECT_EQ(soak_spawn(s, session, &slots[i], NULL), 0);
    }
    corio_sleep(warm);
    s->rss_warm = t_rss_kib();
    s->open_min = INT64_MAX;
    s->open_max = 0;
    while (corio_now() < end) {
        corio_sleep(corio_now() + CORIO_MS(100));
        s->open_min = s->open < s->open_min ? s->open : s->open_min;
        s->open_max = s->open > s->open_max ? s->open : s->open_max;
        s->open_sum += s->open;
        s->open_samples++;
    }
    s->rss_end = t_rss_kib();
    /* Wind down: sessions finish with a normal close, none replaces them, then the server. */
    s->stopping = true;
    for (int64_t dl = corio_now() + CORIO_SEC(30); s->sessions_live > 0 && corio_now() < dl;)
        corio_sleep(corio_now() + CORIO_MS(10));
    T_EXPECT_EQ(s->sessions_live, 0);
    for (int64_t dl = corio_now() + CORIO_SEC(10); s->srv_live > 0 && corio_now() < dl;)
        corio_sleep(corio_now() + CORIO_MS(10));
    T_EXPECT_EQ(s->srv_live, 0);
    T_EXPECT_EQ(corio_cancel(s->acc), 0);
    T_EXPECT_EQ(corio_join(s->acc, NULL, corio_now() + CORIO_SEC(10)), 0);
    for (int i = 0; i < SOAK_CONNS; i++) {
        free(slots[i].out);
        free(slots[i].in);
    }
out:
    s->live--;
    return 0;
}

static void test_soak_echo_churn(void **state)
{
    (void)state;
    struct soak *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    const char *env = getenv("CORIO_SOAK_SECONDS");
    s->seconds = env && *env ? strtoll(env, NULL, 10) : 60;
    if (s->seconds < 2)
        s->seconds = 2;
    /* Two fds per connection, both ends in this process. */
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 4 * SOAK_CONNS && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < 8 * SOAK_CONNS ? rl.rlim_max : 8 * SOAK_CONNS;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < 2 * SOAK_CONNS + 100)
        fail_msg("RLIMIT_NOFILE %llu is too low for %d connections",
                 (unsigned long long)rl.rlim_cur, SOAK_CONNS);
    s->rss_start = t_rss_kib();
    s->fds_start = t_count_fds();
    struct corio_loop *loop;
    struct corio_loop_opts lo = {.sq_entries = 1024};
    assert_int_equal(corio_loop_new(&loop, &lo), 0);
    s->spawns_start = corio_loop_stats(loop)->spawns;
    s->lfd = corio_listen_tcp("127.0.0.1", 0, 4096, 0);
    assert_true(s->lfd >= 0);
    s->port = corio_local_port(s->lfd);
    if (corio_bufring_new(&s->br, loop, RING_COUNT, RING_SIZE) != 0) {
        print_message("  (no buffer ring on this kernel: every connection uses recv)\n");
        s->br = NULL;
    }
    int64_t t0 = corio_now();
    assert_int_equal(corio_spawn(NULL, loop, soak_main, s), 0);
    s->spawned++;
    assert_int_equal(corio_loop_run(loop), 0);
    double secs = (double)(corio_now() - t0) / 1e9;
    uint64_t spawns = corio_loop_stats(loop)->spawns - s->spawns_start;
    unsigned ring_avail = s->br ? corio_bufring_available(s->br) : RING_COUNT;
    corio_bufring_free(s->br);
    corio_loop_free(loop);
    close(s->lfd);
    s->rss_after = t_rss_kib();
    int fds_end = t_count_fds();
    uint64_t resets = s->fates[FATE_RESET] + s->fates[FATE_MID_RESET];
    uint64_t caused = resets + s->fates[FATE_MID_FIN];
    double growth =
        s->rss_warm > 0 ? 100.0 * (double)(s->rss_end - s->rss_warm) / (double)s->rss_warm : 0.0;
    print_message(
        "soak: %.1f s, connections opened %llu (open %lld..%lld, mean %lld), messages %llu, bytes "
        "%llu, resets %llu, mid-message disconnects %llu (%llu of them resets), normal "
        "closes %llu; server ends: %llu eof, %llu reset, %llu pipe, %llu other; client "
        "errors %llu, corrupt %llu; RSS first/last %ld/%ld KiB (%+.2f%%; start %ld, after "
        "%ld); fds %d -> %d; coroutines spawned %llu (loop: %llu), live %lld; ring buffers back "
        "%u/%d\n",
        secs, (unsigned long long)s->opened, (long long)s->open_min, (long long)s->open_max,
        (long long)(s->open_samples ? s->open_sum / s->open_samples : 0),
        (unsigned long long)s->msgs, (unsigned long long)s->bytes, (unsigned long long)resets,
        (unsigned long long)(s->fates[FATE_MID_FIN] + s->fates[FATE_MID_RESET]),
        (unsigned long long)s->fates[FATE_MID_RESET], (unsigned long long)s->fates[FATE_NORMAL],
        (unsigned long long)s->srv_end.eof, (unsigned long long)s->srv_end.reset,
        (unsigned long long)s->srv_end.pipe,
        (unsigned long long)(s->srv_end.other + s->srv_end.cancelled),
        (unsigned long long)s->client_errs, (unsigned long long)s->corrupt, s->rss_warm, s->rss_end,
        growth, s->rss_start, s->rss_after, s->fds_start, fds_end, (unsigned long long)s->spawned,
        (unsigned long long)spawns, (long long)s->live, ring_avail, RING_COUNT);
    t_expect_ok();
    /* No error reached user code but the ones the clients caused. */
    if (s->client_errs)
        fail_msg("%llu client errors, the first %d (%s)", (unsigned long long)s->client_errs,
                 s->client_err, strerror(-s->client_err));
    assert_int_equal(s->corrupt, 0);
    if (s->srv_end.other || s->srv_end.cancelled)
        fail_msg("server connections ended with %llu unexpected errors (the first %d) and %llu "
                 "cancels",
                 (unsigned long long)s->srv_end.other, s->srv_end.other_err,
                 (unsigned long long)s->srv_end.cancelled);
    if (s->accept_errs)
        fail_msg("%llu accept errors, the first %d", (unsigned long long)s->accept_errs,
                 s->accept_err);
    assert_true(s->srv_end.reset + s->srv_end.pipe <= caused);
    assert_int_equal(s->accepted, s->opened);
    assert_int_equal(s->srv_end.eof + s->srv_end.reset + s->srv_end.pipe, s->accepted);
    assert_true(s->srv_end.eof >= s->fates[FATE_NORMAL]);
    /* It was a soak: churn, every fate, ~1,000 connections open throughout. */
    assert_true(s->opened >= 2 * SOAK_CONNS);
    for (int f = 0; f < 4; f++)
        assert_true(s->fates[f] > 0);
    /* ~1,000: all SOAK_CONNS sessions are alive throughout, but one is not open while it dials
     * (two ops, each behind a busy loop's queue; more so under sanitizers or a loaded CI). */
    if (s->open_min < SOAK_CONNS * 8 / 10 ||
        s->open_sum < s->open_samples * (SOAK_CONNS * 85 / 100))
        fail_msg("too few connections open: %lld at least, %lld on average, of %d",
                 (long long)s->open_min,
                 (long long)(s->open_samples ? s->open_sum / s->open_samples : 0), SOAK_CONNS);
    /* Nothing leaked. */
    if (s->rss_end - s->rss_warm >= s->rss_warm / 20)
        fail_msg("RSS grew by %.2f%% (%ld -> %ld KiB) after the warm-up", growth, s->rss_warm,
                 s->rss_end);
    assert_int_equal(fds_end, s->fds_start);
    assert_int_equal(s->live, 0);
    assert_int_equal(spawns, s->spawned);
    if (ring_avail != RING_COUNT)
        fail_msg("%u of the ring's %d buffers were not given back", RING_COUNT - ring_avail,
                 RING_COUNT);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soak_echo_churn),
    };
    return T_RUN_TESTS(tests);
}
