/* Abuse: what hostile or broken peers do to a corio server, and that it survives them.
 *
 * - a peer that stops reading: the sender suspends in its send, memory stays bounded, and the
 *   sender is released by its deadline or by a cancel, with the byte count still exact;
 * - a peer that resets in mid-request, against an echo server (recv and buffer-ring variants)
 *   and against corio_http_serve: the connection's coroutine ends, its fd is closed, the other
 *   connections carry on;
 * - half-close: everything sent before the peer's shutdown(SHUT_WR) is echoed, then EOF;
 * - an accept storm past RLIMIT_NOFILE, with corio_accept and with the multishot acceptor: the
 *   server serves what it holds, backs off (counted in SQEs and enters), and serves all 200
 *   clients once fds free up;
 * - SIGPIPE at its default action: sends to a peer that closed or reset fail with -EPIPE or
 *   -ECONNRESET and the process lives (send, send_all, sendmsg, send_zc, and an echo over a
 *   buffer-ring receiver);
 * - slowloris against the real corio-httpd binary (spawned; found through $CORIO_HTTPD, set by
 *   tests/CMakeLists.txt, or next to this test in the build tree): 50 connections that trickle a
 *   head are closed at the header deadline while a normal request is answered promptly.
 *
 * Servers run in-process on the test's loop (or a second loop on a client thread), on 127.0.0.1
 * with kernel-picked ports. Every wait has a deadline, and a watchdog stops a scenario that hangs.
 * Expectations inside coroutines use T_EXPECT (helpers.h). Labelled "abuse;net". */
#include "helpers.h"

#include <corio/http.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* helpers.h's T_BOUND in ms, for WAIT_FOR: hitting it fails the test instead of hanging it. */
#define BOUND_MS 10000
/* How late a deadline may fire and still pass: loaded CI machines and sanitizers. */
#define LATE_MS 1000.0
/* A scenario must end by then, or its watchdog stops the loop. */
#define WATCHDOG_MS 40000

/* ---- fixtures and small helpers -------------------------------------------------------------- */

/* Polls @cond every 2 ms for at most @ms. Evaluates to nothing; check @cond afterwards. */
#define WAIT_FOR(cond, ms)                                                                         \
    for (int64_t end_ = corio_now() + CORIO_MS(ms); !(cond) && corio_now() < end_;)                \
    t_sleep_ms(2)

static socklen_t loopback(struct sockaddr_in *a, int port)
{
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons((uint16_t)port);
    return sizeof(*a);
}

/* ---- an echo server: accept loop + one coroutine per connection ------------------------------ */

enum { ECHO_PLAIN, ECHO_RING };

/* How each connection's coroutine ended. */
struct esrv {
    int lfd;
    int port;
    bool multishot;           /* corio_acceptor, else corio_accept */
    int mode;                 /* ECHO_PLAIN: recv into a buffer; ECHO_RING: a receiver */
    struct corio_bufring *br; /* ECHO_RING: the shared ring */
    corio_id acc;             /* the accept loop */
    unsigned accepted;        /* connections accepted */
    unsigned live;            /* connection coroutines running */
    unsigned ended;           /* connection coroutines ended, their fd closed */
    unsigned close_errs;      /* corio_close failures */
    struct t_ends end;        /* ... and how */
    unsigned send_errs;       /* connections ended by a failed send */
    unsigned in_send;         /* connections inside corio_send_all now */
    uint64_t echoed;          /* bytes echoed */
    uint64_t sends;           /* echo sends completed */
    unsigned accept_errs;     /* accept errors other than EMFILE/ENFILE/ECANCELED */
    int accept_err;           /* the first of them */
    /* The accept storm: -EMFILE/-ENFILE results, and the loop's counters at the first and the
     * last of them. */
    unsigned emfile;
    int64_t t_first, t_last;
    uint64_t sqes_first, sqes_last, enters_first, enters_last;
    uint64_t sends_first, sends_last;
    unsigned accepted_first, accepted_last;
};

struct econn_arg {
    struct esrv *s;
    int fd;
};

static int econn_main(void *arg)
{
    struct econn_arg a = *(struct econn_arg *)arg;
    free(arg);
    struct esrv *s = a.s;
    ssize_t r = 0;
    s->live++;
    if (s->mode == ECHO_RING) {
        struct corio_receiver rx;
        struct corio_buf b;
        T_EXPECT_EQ(corio_receiver_init(&rx, a.fd, s->br), 0);
        while ((r = corio_receiver_next(&rx, &b, CORIO_FOREVER)) > 0) {
            s->in_send++;
            ssize_t w = corio_send_all(a.fd, b.data, b.len, NULL, CORIO_FOREVER);
            s->in_send--;
            corio_buf_release(&b);
            if (w < 0) {
                r = w;
                s->send_errs++;
                break;
            }
            s->echoed += (uint64_t)w;
            s->sends++;
        }
        corio_receiver_fini(&rx);
    } else {
        size_t cap = 16384;
        char *buf = malloc(cap);
        T_EXPECT(buf != NULL);
        while (buf && (r = corio_recv(a.fd, buf, cap, 0, CORIO_FOREVER)) > 0) {
            s->in_send++;
            ssize_t w = corio_send_all(a.fd, buf, (size_t)r, NULL, CORIO_FOREVER);
            s->in_send--;
            if (w < 0) {
                r = w;
                s->send_errs++;
                break;
            }
            s->echoed += (uint64_t)w;
            s->sends++;
        }
        free(buf);
    }
    t_count_end(&s->end, r);
    if (corio_close(a.fd) != 0)
        s->close_errs++;
    s->live--;
    s->ended++;
    return 0;
}

static void note_emfile(struct esrv *s)
{
    const struct corio_stats *st = corio_loop_stats(corio_loop_current());
    if (s->emfile++ == 0) {
        s->t_first = corio_now();
        s->sqes_first = st->sqes;
        s->enters_first = st->enters;
        s->sends_first = s->sends;
        s->accepted_first = s->accepted;
    }
    s->t_last = corio_now();
    s->sqes_last = st->sqes;
    s->enters_last = st->enters;
    s->sends_last = s->sends;
    s->accepted_last = s->accepted;
}

/* The accept loop. Out of descriptors it sleeps 10 ms and tries again, as corio-echo and
 * corio_http_serve do. Cancelled, it cancels and awaits its connections. */
static int eaccept_main(void *arg)
{
    struct esrv *s = arg;
    struct corio_group conns;
    corio_group_init(&conns, 0);
    struct corio_acceptor a;
    if (s->multishot && !T_EXPECT_EQ(corio_acceptor_init(&a, s->lfd, 0), 0))
        return -1;
    for (;;) {
        int fd = s->multishot ? corio_acceptor_next(&a, CORIO_FOREVER)
                              : corio_accept(s->lfd, NULL, NULL, 0, CORIO_FOREVER);
        if (fd == -ECANCELED)
            break;
        if (fd < 0) {
            if (fd == -EMFILE || fd == -ENFILE)
                note_emfile(s);
            else if (s->accept_errs++ == 0)
                s->accept_err = fd;
            if (corio_sleep(corio_now() + CORIO_MS(10)) == -ECANCELED)
                break;
            continue;
        }
        s->accepted++;
        struct econn_arg *ca = malloc(sizeof(*ca));
        if (ca)
            *ca = (struct econn_arg){s, fd};
        if (!T_EXPECT(ca != NULL) ||
            !T_EXPECT_EQ(corio_group_spawn(NULL, &conns, econn_main, ca), 0)) {
            free(ca);
            corio_close(fd);
        }
    }
    if (s->multishot)
        corio_acceptor_fini(&a);
    corio_group_cancel(&conns);
    corio_group_wait(&conns, CORIO_FOREVER);
    return 0;
}

/* Prepares @s: a listener on 127.0.0.1, port 0, and for ECHO_RING a buffer ring on @loop. */
static void esrv_init(struct esrv *s, struct corio_loop *loop, int mode, bool multishot,
                      int backlog)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    s->multishot = multishot;
    s->lfd = corio_listen_tcp("127.0.0.1", 0, backlog, 0);
    assert_true(s->lfd >= 0);
    s->port = corio_local_port(s->lfd);
    assert_true(s->port > 0);
    if (mode == ECHO_RING)
        assert_int_equal(corio_bufring_new(&s->br, loop, 64, 4096), 0);
}

static void esrv_fini(struct esrv *s)
{
    if (s->br) {
        assert_int_equal(corio_bufring_available(s->br), 64);
        corio_bufring_free(s->br);
    }
    close(s->lfd);
}

/* Starts the accept loop (in a coroutine). */
static bool esrv_start(struct esrv *s)
{
    return T_EXPECT_EQ(corio_spawn(&s->acc, NULL, eaccept_main, s), 0);
}

/* Stops it (in a coroutine): cancels the accept loop and its connections, and joins it. */
static void esrv_stop(struct esrv *s)
{
    if (!s->acc)
        return;
    T_EXPECT_EQ(corio_cancel(s->acc), 0);
    T_EXPECT_EQ(corio_join(s->acc, NULL, T_BOUND), 0);
    s->acc = 0;
}

/* ---- a peer that stops reading --------------------------------------------------------------- */

#define STALL_CHUNK (64u * 1024)
#define STALL_TOTAL (1ull << 30)

struct stall {
    int sv[2];        /* sv[0] the sender's end, sv[1] the peer that does not read */
    char *buf;        /* one chunk */
    int64_t deadline; /* for every send of the sender */
    uint64_t sent;    /* bytes the sender's calls reported sent */
    ssize_t result;   /* the failing call's result */
    bool finished;    /* the sender has returned */
};

/* Tries to send 1 GiB in 64 KiB corio_send_all calls; each chunk carries the byte stream's
 * pattern at its offset, so that the peer can check what arrived. */
static int stall_sender(void *arg)
{
    struct stall *s = arg;
    s->result = 0;
    while (s->sent < STALL_TOTAL) {
        size_t done = 0;
        t_fill(s->buf, STALL_CHUNK, 41, s->sent);
        ssize_t r = corio_send_all(s->sv[0], s->buf, STALL_CHUNK, &done, s->deadline);
        s->sent += done;
        if (r < 0) {
            s->result = r;
            break;
        }
        T_EXPECT_EQ(r, STALL_CHUNK);
    }
    s->finished = true;
    return 0;
}

/* Waits until the sender has made no progress for 200 ms. Returns true if it stalled. */
static bool wait_stalled(struct stall *s)
{
    int64_t end = corio_now() + CORIO_MS(BOUND_MS);
    uint64_t last = s->sent;
    int64_t since = corio_now();
    while (corio_now() < end && !s->finished) {
        t_sleep_ms(20);
        if (s->sent != last) {
            last = s->sent;
            since = corio_now();
        } else if (t_ms_since(since) >= 200) {
            return true;
        }
    }
    return false;
}

/* Reads what the sender left in the connection, to its EOF, checking the pattern. Returns the
 * byte count. */
static uint64_t stall_drain(struct stall *s)
{
    T_EXPECT_EQ(corio_shutdown(s->sv[0], SHUT_WR), 0);
    uint64_t got = 0;
    for (;;) {
        ssize_t n = corio_recv(s->sv[1], s->buf, STALL_CHUNK, 0, T_BOUND);
        if (n <= 0) {
            T_EXPECT_EQ(n, 0);
            break;
        }
        if (!T_EXPECT_EQ(t_check(s->buf, (size_t)n, 41, got), -1))
            break;
        got += (uint64_t)n;
    }
    return got;
}

static int stall_cancel_body(void *arg)
{
    struct stall *s = arg;
    const struct corio_stats *st = corio_loop_stats(corio_loop_current());
    s->deadline = CORIO_FOREVER;
    corio_id id;
    if (!T_EXPECT_EQ(corio_spawn(&id, NULL, stall_sender, s), 0))
        return -1;
    T_EXPECT(wait_stalled(s));
    /* Stalled: for a second, no progress, no growth, and (nearly) no system calls. */
    long rss0 = t_rss_kib();
    uint64_t sent0 = s->sent, enters0 = st->enters, sqes0 = st->sqes;
    t_sleep_ms(1000);
    long rss1 = t_rss_kib();
    uint64_t enters = st->enters - enters0, sqes = st->sqes - sqes0;
    print_message("  stalled after %llu bytes of 1 GiB (calls that returned); over 1 s: "
                  "RSS %ld -> %ld KiB, %llu enters, %llu SQEs\n",
                  (unsigned long long)sent0, rss0, rss1, (unsigned long long)enters,
                  (unsigned long long)sqes);
    T_EXPECT_EQ(s->sent, sent0);
    T_EXPECT(!s->finished);
    T_EXPECT(sent0 < (64ull << 20)); /* what the socket buffers hold, nowhere near 1 GiB */
    T_EXPECT(rss0 > 0 && rss1 - rss0 < 4096);
    T_EXPECT(enters <= 6);
    T_EXPECT(sqes <= 4);
    /* Cancel releases it at once, with -ECANCELED. */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_cancel(id), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT(t_ms_since(t0) < LATE_MS);
    T_EXPECT_EQ(s->result, -ECANCELED);
    /* A send started now is just as stuck: its future stays pending until cancelled. (The
     * bytes the peer acked may leave room below the mark at which the socket counts as writable:
     * a send fits some bytes into that, and only then waits. Such bytes are counted.) */
    struct corio_future f;
    for (int i = 0; i < 10; i++) {
        t_fill(s->buf, STALL_CHUNK, 41, s->sent);
        T_EXPECT_EQ(corio_send_start(&f, s->sv[0], s->buf, STALL_CHUNK, 0, CORIO_FOREVER), 0);
        t_sleep_ms(200);
        if (!corio_future_done(&f))
            break;
        ssize_t r = corio_await(&f, CORIO_FOREVER);
        if (!T_EXPECT(r > 0))
            break;
        s->sent += (uint64_t)r;
    }
    T_EXPECT(!corio_future_done(&f));
    T_EXPECT_EQ(corio_future_cancel(&f), 0);
    ssize_t r = corio_await(&f, CORIO_FOREVER);
    if (r > 0)
        s->sent += (uint64_t)r; /* it won the race with the cancel */
    else
        T_EXPECT_EQ(r, -ECANCELED);
    /* Nothing was lost or invented: the peer reads exactly the bytes reported sent. */
    T_EXPECT_EQ(stall_drain(s), s->sent);
    return 0;
}

static int stall_deadline_body(void *arg)
{
    struct stall *s = arg;
    int64_t t0 = corio_now();
    s->deadline = t0 + CORIO_SEC(1);
    corio_id id;
    if (!T_EXPECT_EQ(corio_spawn(&id, NULL, stall_sender, s), 0))
        return -1;
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    double ms = t_ms_since(t0);
    print_message("  released by its deadline after %.0f ms, %llu bytes sent\n", ms,
                  (unsigned long long)s->sent);
    T_EXPECT_EQ(s->result, -ETIMEDOUT);
    T_EXPECT(ms >= 990.0 && ms <= 1000.0 + LATE_MS);
    T_EXPECT(s->sent < (64ull << 20));
    T_EXPECT_EQ(stall_drain(s), s->sent);
    return 0;
}

static void run_stall(struct corio_loop *loop, corio_fn *body)
{
    struct stall s;
    memset(&s, 0, sizeof(s));
    s.buf = malloc(STALL_CHUNK);
    assert_non_null(s.buf);
    assert_int_equal(t_tcp_pair(s.sv), 0);
    assert_int_equal(t_run1_watched(loop, body, &s, WATCHDOG_MS), 0);
    close(s.sv[0]);
    close(s.sv[1]);
    free(s.buf);
    t_expect_ok();
}

static void test_abuse_stalled_peer_cancel(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SEND);
    run_stall(loop, stall_cancel_body);
}

static void test_abuse_stalled_peer_deadline(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SEND);
    run_stall(loop, stall_deadline_body);
}

/* ---- a peer that resets in mid-request: the echo server -------------------------------------- */

/* One round trip of @len pattern bytes at stream offset *@pos. */
static bool echo_roundtrip(int fd, size_t len, uint64_t seed, uint64_t *pos)
{
    char out[4096], in[4096];
    if (len > sizeof(out))
        len = sizeof(out);
    t_fill(out, len, seed, *pos);
    if (!T_EXPECT_EQ(corio_send_all(fd, out, len, NULL, T_BOUND), (ssize_t)len))
        return false;
    if (!T_EXPECT_EQ(corio_recv_all(fd, in, len, NULL, T_BOUND), (ssize_t)len))
        return false;
    *pos += len;
    return T_EXPECT_EQ(t_check(in, len, seed, *pos - len), -1);
}

static int reset_echo_body(void *arg)
{
    struct esrv *s = arg;
    if (!esrv_start(s))
        return -1;
    /* A keeper connection that must not notice anything. */
    int keep = corio_dial_tcp("127.0.0.1", (uint16_t)s->port, T_BOUND);
    if (!T_EXPECT(keep >= 0))
        goto out;
    uint64_t kpos = 0;
    echo_roundtrip(keep, 1000, 7, &kpos);
    WAIT_FOR(s->live == 1, BOUND_MS);
    int fds0 = t_count_fds();
    for (int round = 0; round < 3; round++) {
        int c = corio_dial_tcp("127.0.0.1", (uint16_t)s->port, T_BOUND);
        if (!T_EXPECT(c >= 0))
            break;
        /* Half of a 64 KiB message (round 1: after one whole message; round 2: nothing read
         * of the echo), then a reset. */
        static char half[32768];
        t_fill(half, sizeof(half), 9, 0);
        uint64_t cpos = 0;
        if (round == 1)
            echo_roundtrip(c, 4096, 8, &cpos);
        T_EXPECT_EQ(corio_send_all(c, half, round == 0 ? 100 : sizeof(half), NULL, T_BOUND),
                    round == 0 ? 100 : (ssize_t)sizeof(half));
        if (round == 2)
            t_sleep_ms(20); /* let the echo come back and sit unread */
        unsigned ended = s->ended;
        T_EXPECT_EQ(t_set_linger0(c), 0);
        T_EXPECT_EQ(corio_close(c), 0);
        /* The server's coroutine for it ends, with the reset, and closes its fd. */
        WAIT_FOR(s->ended == ended + 1, BOUND_MS);
        T_EXPECT_EQ(s->ended, ended + 1);
        T_EXPECT_EQ(s->live, 1);
        T_EXPECT_EQ(t_count_fds(), fds0);
        /* The keeper carries on. */
        echo_roundtrip(keep, 1000, 7, &kpos);
    }
    T_EXPECT_EQ(s->end.reset + s->end.pipe, 3);
    T_EXPECT_EQ(s->end.other, 0);
    T_EXPECT_EQ(s->close_errs, 0);
    T_EXPECT_EQ(corio_close(keep), 0);
    WAIT_FOR(s->live == 0, BOUND_MS);
    T_EXPECT_EQ(s->end.eof, 1);
out:
    esrv_stop(s);
    return 0;
}

static void run_reset_echo(struct corio_loop *loop, int mode, bool multishot)
{
    struct esrv s;
    esrv_init(&s, loop, mode, multishot, 64);
    assert_int_equal(t_run1_watched(loop, reset_echo_body, &s, WATCHDOG_MS), 0);
    print_message("  %s echo: accepted %u, ended: %llu eof, %llu reset, %llu pipe, %llu other\n",
                  mode == ECHO_RING ? "receiver" : "recv", s.accepted,
                  (unsigned long long)s.end.eof, (unsigned long long)s.end.reset,
                  (unsigned long long)s.end.pipe, (unsigned long long)s.end.other);
    esrv_fini(&s);
    t_expect_ok();
    assert_int_equal(s.accepted, 4);
    assert_int_equal(s.ended, 4);
}

static void test_abuse_reset_mid_request_echo(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_RECV);
    run_reset_echo(loop, ECHO_PLAIN, false);
}

static void test_abuse_reset_mid_request_echo_receiver(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_BUF_RING);
    t_need(loop, CORIO_FEAT_RECV_MULTISHOT);
    t_need(loop, CORIO_FEAT_ACCEPT_MULTISHOT);
    run_reset_echo(loop, ECHO_RING, true);
}

/* ---- a peer that resets in mid-request: the HTTP server -------------------------------------- */

#define HTTP_BIG ((int64_t)8 << 20)

struct hsrv {
    struct corio_http_server *s;
    int lfd;
    int port;
    corio_id co;
    int serve_ret;
    int body_result; /* what /body's last read returned */
    int big_result;  /* what /big's writes returned */
    unsigned body_calls, big_calls;
};

static int h_hello(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    return corio_http_respond(c, 200, "text/plain", "hello\n", 6, CORIO_FOREVER);
}

/* Reads the whole body and answers with its length. */
static int h_body(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    struct hsrv *h = arg;
    h->body_calls++;
    char buf[4096];
    int64_t total = 0;
    ssize_t n;
    while ((n = corio_http_read_body(c, buf, sizeof(buf), CORIO_FOREVER)) > 0)
        total += n;
    h->body_result = (int)n;
    if (n < 0)
        return (int)n;
    char out[32];
    int len = snprintf(out, sizeof(out), "%lld\n", (long long)total);
    return corio_http_respond(c, 200, "text/plain", out, (size_t)len, CORIO_FOREVER);
}

/* Streams HTTP_BIG bytes. */
static int h_big(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    struct hsrv *h = arg;
    h->big_calls++;
    static char chunk[65536];
    int err = corio_http_respond_start(c, 200, "application/octet-stream", HTTP_BIG, CORIO_FOREVER);
    for (int64_t left = HTTP_BIG; err == 0 && left > 0; left -= (int64_t)sizeof(chunk))
        err = corio_http_write(c, chunk, sizeof(chunk), CORIO_FOREVER);
    h->big_result = err;
    return err;
}

static int hserve_main(void *arg)
{
    struct hsrv *h = arg;
    h->serve_ret = corio_http_serve(h->s, h->lfd);
    return 0;
}

/* Reads one response on @fd into @buf: returns its status and sets *@body_len (the body is moved
 * to the start of @buf), or returns -errno (-EPROTO for a malformed head or an early EOF). */
static int http_response(int fd, char *buf, size_t cap, size_t *body_len, int64_t deadline)
{
    size_t len = 0;
    char *end;
    while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
        if (len == cap)
            return -E2BIG;
        ssize_t n = corio_recv(fd, buf + len, cap - len, 0, deadline);
        if (n <= 0)
            return n == 0 ? -EPROTO : (int)n;
        len += (size_t)n;
    }
    size_t hl = (size_t)(end + 4 - buf);
    char head[2048];
    size_t cl = hl < sizeof(head) ? hl : sizeof(head) - 1;
    memcpy(head, buf, cl);
    head[cl] = '\0';
    int status = 0;
    if (sscanf(head, "HTTP/1.%*d %d", &status) != 1)
        return -EPROTO;
    long long clen = 0;
    const char *p = strcasestr(head, "\r\nContent-Length:");
    if (p)
        clen = strtoll(p + 17, NULL, 10);
    if (clen < 0 || (size_t)clen > cap)
        return -E2BIG;
    memmove(buf, buf + hl, len - hl);
    len -= hl;
    while (len < (size_t)clen) {
        ssize_t n = corio_recv(fd, buf + len, (size_t)clen - len, 0, deadline);
        if (n <= 0)
            return n == 0 ? -EPROTO : (int)n;
        len += (size_t)n;
    }
    *body_len = (size_t)clen;
    return status;
}

static bool http_hello(int fd)
{
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    char buf[1024];
    size_t bl = 0;
    if (!T_EXPECT_EQ(corio_send_all(fd, req, sizeof(req) - 1, NULL, T_BOUND), sizeof(req) - 1))
        return false;
    if (!T_EXPECT_EQ(http_response(fd, buf, sizeof(buf), &bl, T_BOUND), 200))
        return false;
    return T_EXPECT(bl == 6 && memcmp(buf, "hello\n", 6) == 0);
}

static int reset_http_body(void *arg)
{
    struct hsrv *h = arg;
    if (!T_EXPECT_EQ(corio_spawn(&h->co, NULL, hserve_main, h), 0))
        return -1;
    const struct corio_http_stats *st = corio_http_server_stats(h->s);
    int keep = corio_dial_tcp("127.0.0.1", (uint16_t)h->port, T_BOUND);
    if (!T_EXPECT(keep >= 0))
        goto out;
    http_hello(keep);
    WAIT_FOR(st->open == 1, BOUND_MS);
    int fds0 = t_count_fds();
    static char body[100000];
    for (int round = 0; round < 3; round++) {
        int c = corio_dial_tcp("127.0.0.1", (uint16_t)h->port, T_BOUND);
        if (!T_EXPECT(c >= 0))
            break;
        WAIT_FOR(st->open == 2, BOUND_MS);
        if (round == 0) {
            /* Half a head. */
            static const char part[] = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Half: 1";
            T_EXPECT_EQ(corio_send_all(c, part, sizeof(part) - 1, NULL, T_BOUND), sizeof(part) - 1);
        } else if (round == 1) {
            /* A head and a tenth of its body; the handler is reading the body. */
            static const char head[] =
                "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n";
            T_EXPECT_EQ(corio_send_all(c, head, sizeof(head) - 1, NULL, T_BOUND), sizeof(head) - 1);
            T_EXPECT_EQ(corio_send_all(c, body, sizeof(body), NULL, T_BOUND), sizeof(body));
            WAIT_FOR(h->body_calls == 1, BOUND_MS);
        } else {
            /* A response of 8 MiB, of which the client reads a little. */
            static const char get[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
            T_EXPECT_EQ(corio_send_all(c, get, sizeof(get) - 1, NULL, T_BOUND), sizeof(get) - 1);
            char b[1024];
            T_EXPECT(corio_recv(c, b, sizeof(b), 0, T_BOUND) > 0);
        }
        t_sleep_ms(20); /* let the server get into its wait */
        T_EXPECT_EQ(t_set_linger0(c), 0);
        T_EXPECT_EQ(corio_close(c), 0);
        /* The connection's coroutine ends and closes its fd; the keeper's stays. */
        WAIT_FOR(st->open == 1, BOUND_MS);
        T_EXPECT_EQ(st->open, 1);
        WAIT_FOR(t_count_fds() == fds0, BOUND_MS);
        T_EXPECT_EQ(t_count_fds(), fds0);
        http_hello(keep);
    }
    T_EXPECT_EQ(h->body_calls, 1);
    T_EXPECT_EQ(h->body_result, -ECONNRESET);
    T_EXPECT_EQ(h->big_calls, 1);
    T_EXPECT(h->big_result == -ECONNRESET || h->big_result == -EPIPE);
    T_EXPECT_EQ(st->connections, 4);
    T_EXPECT_EQ(st->timeouts, 0);
    T_EXPECT_EQ(corio_close(keep), 0);
out:
    T_EXPECT_EQ(corio_cancel(h->co), 0);
    T_EXPECT_EQ(corio_join(h->co, NULL, T_BOUND), 0);
    return 0;
}

static void test_abuse_reset_mid_request_http(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_RECV);
    struct hsrv h;
    memset(&h, 0, sizeof(h));
    struct corio_http_server_opts o = {.header_timeout = CORIO_SEC(20),
                                       .body_timeout = CORIO_SEC(20)};
    assert_int_equal(corio_http_server_new(&h.s, &o), 0);
    assert_int_equal(corio_http_route(h.s, "GET", "/hello", h_hello, &h), 0);
    assert_int_equal(corio_http_route(h.s, "POST", "/body", h_body, &h), 0);
    assert_int_equal(corio_http_route(h.s, "GET", "/big", h_big, &h), 0);
    h.lfd = corio_listen_tcp("127.0.0.1", 0, 64, 0);
    assert_true(h.lfd >= 0);
    h.port = corio_local_port(h.lfd);
    h.serve_ret = 12345;
    assert_int_equal(t_run1_watched(loop, reset_http_body, &h, WATCHDOG_MS), 0);
    const struct corio_http_stats st = *corio_http_server_stats(h.s);
    print_message("  http: connections %llu, requests %llu, responses %llu; /body read %d, "
                  "/big wrote %d\n",
                  (unsigned long long)st.connections, (unsigned long long)st.requests,
                  (unsigned long long)st.responses, h.body_result, h.big_result);
    close(h.lfd);
    corio_http_server_free(h.s);
    t_expect_ok();
    assert_int_equal(h.serve_ret, -ECANCELED);
    assert_int_equal(st.open, 0);
}

/* ---- half-close ------------------------------------------------------------------------------ */

#define HALF_LEN (1u << 20)

struct half {
    struct esrv *s;
    int fd;
    char *out, *in;
    size_t got;   /* bytes the reader received */
    ssize_t last; /* the reader's last recv: 0 for EOF */
};

static int half_reader(void *arg)
{
    struct half *h = arg;
    for (;;) {
        size_t room = HALF_LEN + 1 - h->got;
        ssize_t n = corio_recv(h->fd, h->in + h->got, room < 8192 ? room : 8192, 0, T_BOUND);
        h->last = n;
        if (n <= 0)
            break;
        h->got += (size_t)n;
        if (h->got > HALF_LEN)
            break;
    }
    return 0;
}

static int half_close_body(void *arg)
{
    struct half *h = arg;
    struct esrv *s = h->s;
    if (!esrv_start(s))
        return -1;
    h->fd = corio_dial_tcp("127.0.0.1", (uint16_t)s->port, T_BOUND);
    if (!T_EXPECT(h->fd >= 0))
        goto out;
    corio_id rd;
    T_EXPECT_EQ(corio_spawn(&rd, NULL, half_reader, h), 0);
    /* Everything in pieces of odd sizes, then the write side shut. */
    size_t off = 0;
    while (off < HALF_LEN) {
        size_t n = HALF_LEN - off < 12345 ? HALF_LEN - off : 12345;
        if (!T_EXPECT_EQ(corio_send_all(h->fd, h->out + off, n, NULL, T_BOUND), (ssize_t)n))
            break;
        off += n;
    }
    T_EXPECT_EQ(corio_shutdown(h->fd, SHUT_WR), 0);
    T_EXPECT_EQ(corio_join(rd, NULL, T_BOUND), 0);
    /* All of it came back, then EOF: the server echoed everything before it closed. */
    T_EXPECT_EQ(h->got, HALF_LEN);
    T_EXPECT_EQ(h->last, 0);
    T_EXPECT_EQ(t_check(h->in, h->got, 51, 0), -1);
    WAIT_FOR(s->ended == 1, BOUND_MS);
    T_EXPECT_EQ(s->ended, 1);
    T_EXPECT_EQ(s->end.eof, 1);
    T_EXPECT_EQ(s->echoed, HALF_LEN);
    T_EXPECT_EQ(corio_close(h->fd), 0);
out:
    esrv_stop(s);
    return 0;
}

static void run_half_close(struct corio_loop *loop, int mode, bool multishot)
{
    struct esrv s;
    esrv_init(&s, loop, mode, multishot, 64);
    struct half h;
    memset(&h, 0, sizeof(h));
    h.s = &s;
    h.out = malloc(HALF_LEN);
    h.in = malloc(HALF_LEN + 1);
    assert_non_null(h.out);
    assert_non_null(h.in);
    t_fill(h.out, HALF_LEN, 51, 0);
    assert_int_equal(t_run1_watched(loop, half_close_body, &h, WATCHDOG_MS), 0);
    free(h.out);
    free(h.in);
    esrv_fini(&s);
    t_expect_ok();
}

static void test_abuse_half_close_echo(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SHUTDOWN);
    run_half_close(loop, ECHO_PLAIN, false);
}

static void test_abuse_half_close_echo_receiver(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SHUTDOWN);
    t_need(loop, CORIO_FEAT_BUF_RING);
    t_need(loop, CORIO_FEAT_RECV_MULTISHOT);
    run_half_close(loop, ECHO_RING, false);
}

/* ---- an accept storm past RLIMIT_NOFILE ------------------------------------------------------ */

enum { STORM_N = 200, STORM_FREE = 16, STORM_MSGS = 3, STORM_MSG = 512 };

struct storm {
    struct esrv srv;    /* on the test's loop, in the main thread */
    int socks[STORM_N]; /* the clients' sockets, made before the limit drops */
    pthread_barrier_t barrier;
    int client_loop_err;
    atomic_uint clients_ok; /* clients that had all their echoes back intact */
    atomic_uint clients_done;
    int64_t t_start, t_end;
    uint64_t sqes_start, sqes_end, enters_start, enters_end;
};

struct storm_client_arg {
    struct storm *st;
    int i;
};

/* A client: connects (all 200 at once), sends STORM_MSGS messages 20 ms apart, each checked when
 * it comes back, and closes. */
static int storm_client(void *arg)
{
    struct storm_client_arg *a = arg;
    struct storm *st = a->st;
    int i = a->i;
    int fd = st->socks[i];
    int64_t dl = corio_now() + CORIO_SEC(25);
    struct sockaddr_in sa;
    socklen_t sl = loopback(&sa, st->srv.port);
    char out[STORM_MSG], in[STORM_MSG];
    if (!T_EXPECT_EQ(corio_connect(fd, (struct sockaddr *)&sa, sl, dl), 0))
        goto out;
    for (int m = 0; m < STORM_MSGS; m++) {
        if (m)
            corio_sleep(corio_now() + CORIO_MS(20));
        t_fill(out, sizeof(out), (uint64_t)i + 100, (uint64_t)m * STORM_MSG);
        if (!T_EXPECT_EQ(corio_send_all(fd, out, sizeof(out), NULL, dl), sizeof(out)))
            goto out;
        if (!T_EXPECT_EQ(corio_recv_all(fd, in, sizeof(in), NULL, dl), sizeof(in)))
            goto out;
        if (!T_EXPECT_EQ(t_check(in, sizeof(in), (uint64_t)i + 100, (uint64_t)m * STORM_MSG), -1))
            goto out;
    }
    atomic_fetch_add(&st->clients_ok, 1);
out:
    T_EXPECT_EQ(corio_close(fd), 0);
    st->socks[i] = -1;
    atomic_fetch_add(&st->clients_done, 1);
    return 0;
}

static void *storm_client_thread(void *arg)
{
    struct storm *st = arg;
    static struct storm_client_arg args[STORM_N];
    struct corio_loop *l = NULL;
    st->client_loop_err = corio_loop_new(&l, NULL);
    for (int i = 0; i < STORM_N; i++)
        st->socks[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    pthread_barrier_wait(&st->barrier); /* the main thread lowers the limit */
    pthread_barrier_wait(&st->barrier);
    if (st->client_loop_err == 0) {
        for (int i = 0; i < STORM_N; i++) {
            args[i] = (struct storm_client_arg){st, i};
            if (st->socks[i] < 0 || corio_spawn(NULL, l, storm_client, &args[i]) != 0)
                T_EXPECT(!"client socket or spawn");
        }
        T_EXPECT_EQ(corio_loop_run(l), 0);
        corio_loop_free(l);
    }
    for (int i = 0; i < STORM_N; i++)
        if (st->socks[i] >= 0)
            close(st->socks[i]);
    return NULL;
}

/* On the server's loop: waits until every client has been served, then stops the server. */
static int storm_ctl(void *arg)
{
    struct storm *st = arg;
    const struct corio_stats *s = corio_loop_stats(corio_loop_current());
    st->t_start = corio_now();
    st->sqes_start = s->sqes;
    st->enters_start = s->enters;
    int64_t end = corio_now() + CORIO_SEC(30);
    while (st->srv.ended < STORM_N && atomic_load(&st->clients_done) < STORM_N && corio_now() < end)
        t_sleep_ms(10);
    /* Clients that failed still end their connections; give the server a moment for them. */
    WAIT_FOR(st->srv.live == 0, 2000);
    st->t_end = corio_now();
    st->sqes_end = s->sqes;
    st->enters_end = s->enters;
    esrv_stop(&st->srv);
    return 0;
}

static void run_storm(struct corio_loop *loop, bool multishot)
{
    if (t_on_valgrind()) {
        /* valgrind keeps RLIMIT_NOFILE to itself: the kernel never sees the lower limit. */
        print_message("SKIP: under valgrind setrlimit(RLIMIT_NOFILE) does not reach the kernel\n");
        skip();
    }
    if (multishot)
        t_need(loop, CORIO_FEAT_ACCEPT_MULTISHOT);
    struct storm *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    esrv_init(&st->srv, loop, ECHO_PLAIN, multishot, 512);
    atomic_init(&st->clients_ok, 0);
    atomic_init(&st->clients_done, 0);
    assert_int_equal(pthread_barrier_init(&st->barrier, NULL, 2), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, storm_client_thread, st), 0);
    pthread_barrier_wait(&st->barrier); /* the client loop and its 200 sockets exist */
    /* Exactly STORM_FREE fd numbers free below the new limit: the lowest free ones are taken in
     * turn, so the limit goes just above the last of them. */
    int probe[STORM_FREE], top = 0;
    for (int i = 0; i < STORM_FREE; i++) {
        probe[i] = dup(st->srv.lfd);
        top = probe[i] > top ? probe[i] : top;
    }
    for (int i = 0; i < STORM_FREE; i++)
        if (probe[i] >= 0)
            close(probe[i]);
    struct rlimit old, low;
    int lim_err = getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = (rlim_t)top + 1;
    if (lim_err == 0 && probe[STORM_FREE - 1] >= 0)
        lim_err = setrlimit(RLIMIT_NOFILE, &low);
    else
        lim_err = -1;
    pthread_barrier_wait(&st->barrier); /* the 200 clients connect at once */
    int run_err = -1;
    if (lim_err == 0) {
        T_EXPECT_EQ(corio_spawn(&st->srv.acc, loop, eaccept_main, &st->srv), 0);
        T_EXPECT_EQ(corio_spawn(NULL, loop, storm_ctl, st), 0);
        run_err = corio_loop_run(loop);
        setrlimit(RLIMIT_NOFILE, &old); /* before anything can fail */
    }
    pthread_join(th, NULL);
    pthread_barrier_destroy(&st->barrier);
    esrv_fini(&st->srv);
    struct esrv *s = &st->srv;
    double total_ms = (double)(st->t_end - st->t_start) / 1e6;
    double win_ms = s->emfile ? (double)(s->t_last - s->t_first) / 1e6 : 0;
    uint64_t sqes = st->sqes_end - st->sqes_start, enters = st->enters_end - st->enters_start;
    uint64_t win_sqes = s->sqes_last - s->sqes_first, win_enters = s->enters_last - s->enters_first;
    unsigned win_accepts = s->accepted_last - s->accepted_first;
    print_message("  %s: limit %d fds; %u accepted, %u served (%u ok), %.0f ms; %u x -EMFILE over "
                  "%.0f ms, in which %u accepted and %llu echoes went out; SQEs/enters: %llu/%llu "
                  "in the window, %llu/%llu in all\n",
                  multishot ? "acceptor" : "accept", top + 1, s->accepted, s->ended,
                  atomic_load(&st->clients_ok), total_ms, s->emfile, win_ms, win_accepts,
                  (unsigned long long)(s->sends_last - s->sends_first),
                  (unsigned long long)win_sqes, (unsigned long long)win_enters,
                  (unsigned long long)sqes, (unsigned long long)enters);
    t_expect_ok();
    assert_int_equal(lim_err, 0);
    assert_int_equal(run_err, 0);
    assert_int_equal(st->client_loop_err, 0);
    /* Everyone was served, each echo intact, and every connection ended cleanly. */
    assert_int_equal(atomic_load(&st->clients_ok), STORM_N);
    assert_int_equal(s->accepted, STORM_N);
    assert_int_equal(s->ended, STORM_N);
    assert_int_equal(s->end.eof, STORM_N);
    assert_int_equal(s->accept_errs, 0);
    /* It backed off: SQEs and enters proportional to the work (per connection: accept, 4 recvs,
     * 3 sends, close; per -EMFILE: accept and a 10 ms sleep; the controller's 10 ms polls), not
     * to the time spent out of descriptors. A busy loop makes tens of thousands. */
    uint64_t bound = 12ull * STORM_N + 3ull * s->emfile + (uint64_t)(total_ms / 5) + 100;
    if (sqes > bound || enters > 2 * bound)
        fail_msg("no back-off: the server's loop made %llu SQEs and %llu enters for %d "
                 "connections in %.0f ms (bound %llu)",
                 (unsigned long long)sqes, (unsigned long long)enters, STORM_N, total_ms,
                 (unsigned long long)bound);
    /* The limit was hit, and the server kept serving what it held meanwhile. */
    if (s->emfile == 0)
        fail_msg("the accept loop never saw -EMFILE/-ENFILE below a limit of %d fds", top + 1);
    assert_true(s->sends_last - s->sends_first >= 1 || s->emfile == 1);
    /* At most one -EMFILE per 10 ms sleep, and the window's own counts as above. */
    assert_true(s->emfile <= (unsigned)(win_ms / 10.0) + 2);
    assert_true(win_sqes <= 12ull * (win_accepts + STORM_FREE) + 3ull * s->emfile +
                                (uint64_t)(win_ms / 5) + 64);
    assert_true(win_enters <= 2 * win_sqes + 64);
    free(st);
}

static void test_abuse_accept_storm_emfile(void **state)
{
    run_storm(*state, false);
}

static void test_abuse_accept_storm_emfile_acceptor(void **state)
{
    run_storm(*state, true);
}

/* ---- SIGPIPE at its default action ----------------------------------------------------------- */

/* Sends to @fd, whose peer has gone (closed or reset), with every send call. Returns nothing. */
static void sends_to_gone_peer(int fd)
{
    static char buf[4096];
    /* The first send may still succeed (the peer's kernel answers it with a reset). The first
     * failure reports the reset (-ECONNRESET) or, after a FIN, -EPIPE; later sends get -EPIPE. */
    ssize_t r = 0;
    for (int i = 0; i < 200; i++) {
        r = corio_send(fd, buf, sizeof(buf), 0, T_BOUND);
        if (r < 0)
            break;
        t_sleep_ms(5);
    }
    T_EXPECT(r == -ECONNRESET || r == -EPIPE);
    T_EXPECT_EQ(corio_send(fd, buf, sizeof(buf), 0, T_BOUND), -EPIPE);
    size_t done = 99;
    T_EXPECT_EQ(corio_send_all(fd, buf, sizeof(buf), &done, T_BOUND), -EPIPE);
    T_EXPECT_EQ(done, 0);
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    T_EXPECT_EQ(corio_sendmsg(fd, &m, 0, T_BOUND), -EPIPE);
    struct corio_future f;
    T_EXPECT_EQ(corio_send_start(&f, fd, buf, sizeof(buf), 0, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -EPIPE);
    if (corio_loop_has(corio_loop_current(), CORIO_FEAT_SEND_ZC))
        T_EXPECT_EQ(corio_send_zc(fd, buf, sizeof(buf), 0, T_BOUND), -EPIPE);
    else
        print_message("  (no send_zc on this kernel: not tried)\n");
    T_EXPECT(!t_sigpipe_pending());
}

static int sigpipe_sends_body(void *arg)
{
    (void)arg;
    for (int reset = 0; reset < 2; reset++) {
        int sv[2];
        if (!T_EXPECT_EQ(t_tcp_pair(sv), 0))
            return -1;
        if (reset)
            T_EXPECT_EQ(t_set_linger0(sv[1]), 0);
        T_EXPECT_EQ(corio_close(sv[1]), 0);
        sends_to_gone_peer(sv[0]);
        T_EXPECT_EQ(corio_close(sv[0]), 0);
    }
    return 0;
}

static void test_abuse_sigpipe_sends(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SEND);
    t_need(loop, CORIO_FEAT_SENDMSG);
    t_assert_sigpipe_default();
    assert_int_equal(t_run1_watched(loop, sigpipe_sends_body, NULL, WATCHDOG_MS), 0);
    t_expect_ok();
    assert_false(t_sigpipe_pending());
}

/* A client that floods the echo server without ever reading, until the server is stuck in a
 * send, and then vanishes: the echo's pending send fails, and nothing raises SIGPIPE. */
static int sigpipe_echo_body(void *arg)
{
    struct esrv *s = arg;
    if (!esrv_start(s))
        return -1;
    for (int reset = 0; reset < 2; reset++) {
        int fd = corio_socket(AF_INET, SOCK_STREAM, 0);
        if (!T_EXPECT(fd >= 0))
            break;
        int small = 4096; /* the client's receive buffer fills at once */
        T_EXPECT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        struct sockaddr_in sa;
        socklen_t sl = loopback(&sa, s->port);
        if (!T_EXPECT_EQ(corio_connect(fd, (struct sockaddr *)&sa, sl, T_BOUND), 0)) {
            corio_close(fd);
            break;
        }
        static char flood[65536];
        int64_t end = corio_now() + CORIO_MS(BOUND_MS);
        while (corio_now() < end) {
            ssize_t n = corio_send(fd, flood, sizeof(flood), 0, corio_now() + CORIO_MS(50));
            if (n == -ETIMEDOUT && s->in_send == 1)
                break; /* we are stuck, and so is the server's echo */
            if (!T_EXPECT(n > 0 || n == -ETIMEDOUT))
                break;
        }
        T_EXPECT_EQ(s->in_send, 1);
        unsigned send_errs = s->send_errs;
        /* Unread data makes even a plain close a reset; linger 0 makes it one for sure. */
        if (reset)
            T_EXPECT_EQ(t_set_linger0(fd), 0);
        T_EXPECT_EQ(corio_close(fd), 0);
        WAIT_FOR(s->ended == (unsigned)reset + 1, BOUND_MS);
        T_EXPECT_EQ(s->ended, (unsigned)reset + 1);
        T_EXPECT_EQ(s->send_errs, send_errs + 1);
        T_EXPECT(!t_sigpipe_pending());
    }
    T_EXPECT_EQ(s->end.reset + s->end.pipe, 2);
    esrv_stop(s);
    return 0;
}

static void run_sigpipe_echo(struct corio_loop *loop, int mode)
{
    struct esrv s;
    esrv_init(&s, loop, mode, false, 64);
    assert_int_equal(t_run1_watched(loop, sigpipe_echo_body, &s, WATCHDOG_MS), 0);
    print_message("  %s echo to a vanished peer: %u send errors, ended %llu reset, %llu pipe\n",
                  mode == ECHO_RING ? "receiver" : "recv", s.send_errs,
                  (unsigned long long)s.end.reset, (unsigned long long)s.end.pipe);
    esrv_fini(&s);
    t_expect_ok();
    assert_false(t_sigpipe_pending());
}

static void test_abuse_sigpipe_echo_receiver(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_BUF_RING);
    t_need(loop, CORIO_FEAT_RECV_MULTISHOT);
    t_assert_sigpipe_default();
    run_sigpipe_echo(loop, ECHO_RING);
}

static void test_abuse_sigpipe_echo(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_RECV);
    t_assert_sigpipe_default();
    run_sigpipe_echo(loop, ECHO_PLAIN);
}

/* ---- slowloris against the corio-httpd binary ------------------------------------------------ */

enum { SLOW_CONNS = 50, SLOW_PROBES = 4 };

struct slow {
    int port;
    int64_t t0;                   /* the attack's start */
    double closed_ms[SLOW_CONNS]; /* from its connect to the server's close, or -1 */
    int how[SLOW_CONNS];          /* 408, 0 (EOF) or -errno */
    unsigned bytes_sent[SLOW_CONNS];
    double probe_ms[SLOW_PROBES]; /* a normal request's round trip during the attack */
    int probe_status[SLOW_PROBES];
    int result; /* slowloris_body's */
};

struct slow_arg {
    struct slow *s;
    int i;
};

/* Trickles an endless head, one byte every 200 ms, until the server closes. */
static int slow_client(void *arg)
{
    struct slow_arg *a = arg;
    struct slow *s = a->s;
    int i = a->i;
    static const char head[] = "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    s->closed_ms[i] = -1;
    int64_t t0 = corio_now();
    int fd = corio_dial_tcp("127.0.0.1", (uint16_t)s->port, T_BOUND);
    if (!T_EXPECT(fd >= 0))
        return -1;
    char buf[1024];
    size_t got = 0;
    int64_t end = t0 + CORIO_SEC(10);
    for (size_t k = 0; corio_now() < end; k++) {
        char ch = k < sizeof(head) - 1 ? head[k] : 'a';
        ssize_t n = corio_send(fd, &ch, 1, 0, T_BOUND);
        if (n != 1) {
            /* The server has closed and reset us. */
            s->closed_ms[i] = t_ms_since(t0);
            s->how[i] = (int)n;
            break;
        }
        s->bytes_sent[i]++;
        n = corio_recv(fd, buf + got, sizeof(buf) - 1 - got, 0, corio_now() + CORIO_MS(200));
        if (n == -ETIMEDOUT)
            continue;
        s->closed_ms[i] = t_ms_since(t0);
        if (n > 0) {
            /* A response: the 408, then EOF. */
            got += (size_t)n;
            while (got < sizeof(buf) - 1 &&
                   (n = corio_recv(fd, buf + got, sizeof(buf) - 1 - got, 0, T_BOUND)) > 0)
                got += (size_t)n;
            buf[got] = '\0';
            s->how[i] = strncmp(buf, "HTTP/1.1 408 ", 13) == 0 ? 408 : -EPROTO;
            T_EXPECT(n == 0 || n == -ECONNRESET);
        } else {
            s->how[i] = (int)n;
        }
        break;
    }
    corio_close(fd);
    return 0;
}

/* A normal request on a new connection during the attack. */
static int slow_probe(void *arg)
{
    struct slow_arg *a = arg;
    struct slow *s = a->s;
    t_sleep_ms(150 + 250 * a->i);
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    int64_t t0 = corio_now();
    int fd = corio_dial_tcp("127.0.0.1", (uint16_t)s->port, T_BOUND);
    if (!T_EXPECT(fd >= 0))
        return -1;
    char buf[1024];
    size_t bl = 0;
    if (T_EXPECT_EQ(corio_send_all(fd, req, sizeof(req) - 1, NULL, T_BOUND), sizeof(req) - 1)) {
        s->probe_status[a->i] = http_response(fd, buf, sizeof(buf), &bl, T_BOUND);
        s->probe_ms[a->i] = t_ms_since(t0);
        T_EXPECT(bl == 13 && memcmp(buf, "Hello, World!", 13) == 0);
    }
    corio_close(fd);
    return 0;
}

static int slowloris_body(void *arg)
{
    struct slow *s = arg;
    struct slow_arg args[SLOW_CONNS + SLOW_PROBES];
    corio_id ids[SLOW_CONNS + SLOW_PROBES];
    s->t0 = corio_now();
    for (int i = 0; i < SLOW_CONNS + SLOW_PROBES; i++) {
        args[i] = (struct slow_arg){s, i < SLOW_CONNS ? i : i - SLOW_CONNS};
        T_EXPECT_EQ(corio_spawn(&ids[i], NULL, i < SLOW_CONNS ? slow_client : slow_probe, &args[i]),
                    0);
    }
    for (int i = 0; i < SLOW_CONNS + SLOW_PROBES; i++)
        T_EXPECT_EQ(corio_join(ids[i], NULL, CORIO_SEC(20) + corio_now()), 0);
    return 0;
}

/* slowloris_body with a watchdog beside it, as t_run1_watched runs a body, for a caller that must
 * not assert while the attacked server runs. */
static int slowloris_watched(void *arg)
{
    struct slow *s = arg;
    corio_id wd = t_watchdog_spawn(WATCHDOG_MS);
    s->result = slowloris_body(s);
    t_watchdog_end(wd);
    return 0;
}

/* The corio-httpd to attack: $CORIO_HTTPD, or ../tools/corio-httpd beside this test binary. A
 * path that does not fit in @path counts as not found: its truncated form would name another
 * file. */
static bool find_httpd(char *path, size_t cap)
{
    const char *env = getenv("CORIO_HTTPD");
    if (env && *env)
        return (size_t)snprintf(path, cap, "%s", env) < cap && access(path, X_OK) == 0;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return false;
    *slash = '\0';
    return (size_t)snprintf(path, cap, "%s/../tools/corio-httpd", self) < cap &&
           access(path, X_OK) == 0;
}

/* Reads the "ready port=N" line from @fd (the child's stdout). Returns N or -1. */
static int read_ready(int fd)
{
    char line[128];
    size_t len = 0;
    int64_t end = corio_now() + CORIO_SEC(10);
    while (len < sizeof(line) - 1 && corio_now() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        line[len] = '\0';
        int port;
        if (strchr(line, '\n') && sscanf(line, "ready port=%d", &port) == 1)
            return port;
    }
    return -1;
}

/* Waits up to @ms for @pid to exit. Returns its wait status, or -1 if it did not. */
static int wait_exit(pid_t pid, int ms)
{
    int status;
    for (int i = 0; i < ms / 10; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0)
            return -1;
        usleep(10000);
    }
    return -1;
}

static void test_abuse_slowloris_httpd(void **state)
{
    struct corio_loop *loop = *state;
    char httpd[PATH_MAX];
    if (!find_httpd(httpd, sizeof(httpd))) {
        print_message("SKIP: corio-httpd not found (set CORIO_HTTPD; the tools build it)\n");
        skip();
    }
    int out[2];
    assert_int_equal(t_pipe(out, 0), 0);
    int err_fd = t_tmpfile();
    assert_true(err_fd >= 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO);
    char *argv[] = {httpd, "--host",  "127.0.0.1", "--port", "0", "--header-timeout",
                    "1",   "--stats", NULL};
    pid_t pid;
    int sp = posix_spawn(&pid, httpd, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    assert_int_equal(sp, 0);
    struct slow *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->port = read_ready(out[0]);
    close(out[0]);
    if (s->port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(err_fd);
        free(s);
        fail_msg("%s printed no ready line", httpd);
    }
    /* No assert until the child is gone: a failure must not leave it running. */
    s->result = -12345;
    int run = corio_spawn(NULL, loop, slowloris_watched, s);
    if (run == 0)
        run = corio_loop_run(loop);
    if (run == 0)
        run = s->result;
    /* SIGTERM: a clean exit with status 0, soon. */
    int64_t t0 = corio_now();
    kill(pid, SIGTERM);
    int status = wait_exit(pid, 5000);
    double stop_ms = t_ms_since(t0);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    char err[4096];
    ssize_t en = pread(err_fd, err, sizeof(err) - 1, 0);
    err[en > 0 ? en : 0] = '\0';
    close(err_fd);
    unsigned long long timeouts = 0;
    const char *tp = strstr(err, "timeouts=");
    if (tp)
        timeouts = strtoull(tp + 9, NULL, 10);
    double lo = 1e9, hi = 0;
    int n408 = 0, neof = 0, nother = 0;
    for (int i = 0; i < SLOW_CONNS; i++) {
        double ms = s->closed_ms[i];
        lo = ms < lo ? ms : lo;
        hi = ms > hi ? ms : hi;
        n408 += s->how[i] == 408;
        neof += s->how[i] == 0 || s->how[i] == -ECONNRESET || s->how[i] == -EPIPE;
        nother +=
            s->how[i] != 408 && s->how[i] != 0 && s->how[i] != -ECONNRESET && s->how[i] != -EPIPE;
    }
    print_message("  %d slow connections closed after %.0f..%.0f ms (%d x 408, %d x EOF/reset, "
                  "%d other); probes:",
                  SLOW_CONNS, lo, hi, n408, neof, nother);
    for (int i = 0; i < SLOW_PROBES; i++)
        print_message(" %d in %.1f ms", s->probe_status[i], s->probe_ms[i]);
    print_message("; server timeouts=%llu, stopped in %.0f ms\n", timeouts, stop_ms);
    t_expect_ok();
    assert_int_equal(run, 0);
    for (int i = 0; i < SLOW_CONNS; i++) {
        if (s->closed_ms[i] < 800.0 || s->closed_ms[i] > 3000.0)
            fail_msg("slow connection %d closed after %.0f ms (%d), not at about 1 s", i,
                     s->closed_ms[i], s->how[i]);
        if (s->how[i] != 408 && s->how[i] != 0 && s->how[i] != -ECONNRESET)
            fail_msg("slow connection %d ended with %d", i, s->how[i]);
        /* It was still trickling when the deadline struck: ~5 bytes a second. */
        assert_true(s->bytes_sent[i] >= 3);
    }
    for (int i = 0; i < SLOW_PROBES; i++) {
        assert_int_equal(s->probe_status[i], 200);
        if (s->probe_ms[i] >= 200.0)
            fail_msg("probe %d took %.1f ms during the attack", i, s->probe_ms[i]);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(tp != NULL);
    assert_true(timeouts >= SLOW_CONNS);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_FDS_TEST(test_abuse_stalled_peer_cancel),
        T_LOOP_FDS_TEST(test_abuse_stalled_peer_deadline),
        T_LOOP_FDS_TEST(test_abuse_reset_mid_request_echo),
        T_LOOP_FDS_TEST(test_abuse_reset_mid_request_echo_receiver),
        T_LOOP_FDS_TEST(test_abuse_reset_mid_request_http),
        T_LOOP_FDS_TEST(test_abuse_half_close_echo),
        T_LOOP_FDS_TEST(test_abuse_half_close_echo_receiver),
        T_LOOP_FDS_TEST(test_abuse_accept_storm_emfile),
        T_LOOP_FDS_TEST(test_abuse_accept_storm_emfile_acceptor),
        T_LOOP_FDS_TEST(test_abuse_sigpipe_sends),
        T_LOOP_FDS_TEST(test_abuse_sigpipe_echo),
        T_LOOP_FDS_TEST(test_abuse_sigpipe_echo_receiver),
        T_LOOP_FDS_TEST(test_abuse_slowloris_httpd),
    };
    return T_RUN_TESTS(tests);
}
