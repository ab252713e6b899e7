/* Tests of engine/acceptor.c: multishot accept (200 connections through one SQE, re-arm at
 * RLIMIT_NOFILE and at a full fixed file table, without a busy loop), direct descriptors, and
 * coroutines that return with an acceptor still armed. Loopback only, ports picked by the
 * kernel. */
#include "helpers.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- fixtures and small helpers -------------------------------------------------------------- */

/* Every test runs under T_GUARD_TEST (helpers.h): a watchdog against hangs and the fd-leak check.
 * A test makes its loop with t_mkloop. */

/* A blocking client connected to 127.0.0.1:@port (it lands in the listener's backlog), with a
 * receive timeout so that a check on it cannot hang. */
static int dial_blocking(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 5 * (time_t)t_slowdown()};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    return fd;
}

/* Reads what a served client must see: @len bytes equal to @want, then the end of the stream.
 * Returns 0, or -errno from recv (-ECONNRESET: the server dropped it), or -EPROTO for wrong bytes
 * or a missing end; says which on stderr. Fails nothing itself, so that the caller can clean up
 * and report the coroutines' expectations first. */
static int reply_then_eof(int fd, const void *want, size_t len)
{
    char buf[64];
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0) {
            int err = n < 0 ? -errno : -EPROTO;
            print_error("client fd %d: recv gave %zd (%s) after %zu of %zu bytes\n", fd, n,
                        n < 0 ? strerror(errno) : "eof", got, len);
            return err;
        }
        got += (size_t)n;
    }
    if (memcmp(buf, want, len) != 0) {
        print_error("client fd %d: wrong reply\n", fd);
        return -EPROTO;
    }
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n != 0) {
        print_error("client fd %d: recv gave %zd (%s), not the end\n", fd, n,
                    n < 0 ? strerror(errno) : "data");
        return n < 0 ? -errno : -EPROTO;
    }
    return 0;
}

/* ---- multishot accept ------------------------------------------------------------------------ */

/* Serves one accepted connection: a 4-byte message is echoed, then the connection is closed. The
 * ops: a receive with a deadline (2 SQEs), a send (1) and a close (1, and on io_uring 1 more for
 * the cancel by fd linked before it where the kernel has it: serve_sqes). */
#define SERVE_SQES 4

static uint64_t serve_sqes(const struct corio_loop *l)
{
    return SERVE_SQES + (corio_loop_backend(l) == CORIO_BACKEND_IO_URING &&
                         corio_loop_has(l, CORIO_FEAT_CANCEL_FD));
}

static int serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    uint32_t v = 0;
    T_EXPECT_EQ(corio_recv_all(fd, &v, sizeof(v), NULL, T_BOUND), sizeof(v));
    T_EXPECT_EQ(corio_send(fd, &v, sizeof(v), 0, CORIO_FOREVER), sizeof(v)); /* never blocks */
    T_EXPECT_EQ(corio_close(fd), 0);
    return 0;
}

enum { AC_QUEUED = 100, AC_LIVE = 100 };

struct ac200 {
    int lfd, port;
    int clients[AC_QUEUED]; /* connected before the acceptor was armed */
    unsigned accepted;
    uint64_t phase1_sqes; /* SQEs while the queued connections were accepted and served */
    unsigned dialers_ok;
};

static int ac_dialer(void *arg)
{
    struct ac200 *c = arg;
    uint32_t id = (uint32_t)(corio_self() & 0xffffffffu);
    int fd = corio_dial_tcp("127.0.0.1", (uint16_t)c->port, T_BOUND);
    if (!T_EXPECT(fd >= 0))
        return -1;
    uint32_t back = 0;
    T_EXPECT_EQ(corio_send_all(fd, &id, sizeof(id), NULL, T_BOUND), sizeof(id));
    T_EXPECT_EQ(corio_recv_all(fd, &back, sizeof(back), NULL, T_BOUND), sizeof(back));
    T_EXPECT_EQ(back, id);
    T_EXPECT_EQ(corio_recv(fd, &back, sizeof(back), 0, T_BOUND), 0);
    T_EXPECT_EQ(corio_close(fd), 0);
    c->dialers_ok++;
    return 0;
}

static int ac200_main(void *arg)
{
    struct ac200 *c = arg;
    const struct corio_stats *s = corio_loop_stats(corio_loop_current());
    struct corio_acceptor a;
    T_EXPECT_EQ(corio_acceptor_init(&a, c->lfd, 0), 0);
    /* Phase 1: the queued connections. One SQE accepts them all; the rest is their service. */
    uint64_t q0 = s->sqes;
    corio_id ids[AC_QUEUED];
    for (int i = 0; i < AC_QUEUED; i++) {
        int fd = corio_acceptor_next(&a, T_BOUND);
        if (!T_EXPECT(fd >= 0))
            return -1;
        c->accepted++;
        T_EXPECT_EQ(corio_spawn(&ids[i], NULL, serve_conn, (void *)(intptr_t)fd), 0);
    }
    for (int i = 0; i < AC_QUEUED; i++)
        T_EXPECT_EQ(corio_join(ids[i], NULL, T_BOUND), 0);
    c->phase1_sqes = s->sqes - q0;
    /* Phase 2: connections that arrive while the multishot is armed. */
    corio_id dl[AC_LIVE];
    for (int i = 0; i < AC_LIVE; i++)
        T_EXPECT_EQ(corio_spawn(&dl[i], NULL, ac_dialer, c), 0);
    for (int i = 0; i < AC_LIVE; i++) {
        int fd = corio_acceptor_next(&a, T_BOUND);
        if (!T_EXPECT(fd >= 0))
            break;
        c->accepted++;
        T_EXPECT_EQ(corio_spawn(NULL, NULL, serve_conn, (void *)(intptr_t)fd), 0);
    }
    for (int i = 0; i < AC_LIVE; i++)
        T_EXPECT_EQ(corio_join(dl[i], NULL, T_BOUND), 0);
    corio_acceptor_fini(&a);
    return 0;
}

static void test_acceptor_200_connections(void **state)
{
    (void)state;
    struct corio_loop *l = t_mkloop(NULL);
    t_need_or_free(l, CORIO_FEAT_ACCEPT_MULTISHOT);
    struct ac200 *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->lfd = corio_listen_tcp("127.0.0.1", 0, 512, 0);
    assert_true(c->lfd >= 0);
    c->port = corio_local_port(c->lfd);
    for (int i = 0; i < AC_QUEUED; i++) {
        c->clients[i] = dial_blocking(c->port);
        uint32_t v = (uint32_t)i;
        assert_int_equal(send(c->clients[i], &v, sizeof(v), 0), sizeof(v));
    }
    assert_int_equal(t_run1(l, ac200_main, c), 0);
    uint64_t per_conn = serve_sqes(l);
    uint64_t arms = c->phase1_sqes - (uint64_t)AC_QUEUED * per_conn;
    print_message("  accepted %u (%d queued + %d live); phase 1: %llu SQEs = %d x %llu to serve + "
                  "%llu for the accept\n",
                  c->accepted, AC_QUEUED, AC_LIVE, (unsigned long long)c->phase1_sqes, AC_QUEUED,
                  (unsigned long long)per_conn, (unsigned long long)arms);
    int bad = 0;
    for (int i = 0; i < AC_QUEUED; i++) {
        uint32_t v = (uint32_t)i;
        bad += reply_then_eof(c->clients[i], &v, sizeof(v)) != 0;
        close(c->clients[i]);
    }
    close(c->lfd);
    bool uring = corio_loop_backend(l) == CORIO_BACKEND_IO_URING;
    corio_loop_free(l);
    t_expect_ok();
    assert_int_equal(bad, 0);
    assert_int_equal(c->accepted, AC_QUEUED + AC_LIVE);
    assert_int_equal(c->dialers_ok, AC_LIVE);
    /* One multishot SQE for 100 connections (a re-arm allowed), not one per connection. */
    if (uring) { /* SQEs are io_uring's */
        assert_true(c->phase1_sqes >= (uint64_t)AC_QUEUED * per_conn + 1);
        assert_true(arms <= 2);
    }
    free(c);
}

/* Re-arm at RLIMIT_NOFILE. The soft limit is lowered so that only 3 fds can be accepted; 6
 * connections wait. The multishot accepts 3 and ends with -EMFILE, which corio_acceptor_next
 * returns; a caller that sleeps 10 ms after each -EMFILE makes a few SQEs and enters, not a busy
 * loop. Once the accepted connections are served and closed, accepting resumes and the others are
 * served too. */
enum { EM_CONNS = 6, EM_FREE = 3 };

struct emfile {
    int lfd;
    unsigned first_accepted; /* before the first -EMFILE */
    int first_err;           /* the error that stopped them */
    unsigned emfile_calls;   /* -EMFILE results during the back-off window */
    uint64_t window_sqes, window_enters;
    double window_ms;
    unsigned served;
};

static int emfile_main(void *arg)
{
    struct emfile *c = arg;
    const struct corio_stats *s = corio_loop_stats(corio_loop_current());
    struct corio_acceptor a;
    T_EXPECT_EQ(corio_acceptor_init(&a, c->lfd, 0), 0);
    int fds[EM_CONNS];
    int r;
    while ((r = corio_acceptor_next(&a, T_BOUND)) >= 0 && c->first_accepted < EM_CONNS)
        fds[c->first_accepted++] = r;
    c->first_err = r;
    /* The back-off window: each call arms the accept again and gets -EMFILE at once. */
    uint64_t q0 = s->sqes, e0 = s->enters;
    int64_t t0 = corio_now();
    while (t_ms_since(t0) < 50) {
        r = corio_acceptor_next(&a, T_BOUND);
        if (!T_EXPECT_EQ(r, -EMFILE)) {
            if (r >= 0)
                corio_close(r);
            break;
        }
        c->emfile_calls++;
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0);
    }
    c->window_ms = t_ms_since(t0);
    c->window_sqes = s->sqes - q0;
    c->window_enters = s->enters - e0;
    /* Serving frees descriptors: accepting resumes and the waiting connections get served. */
    for (unsigned i = 0; i < c->first_accepted; i++)
        t_serve_byte(fds[i], &c->served);
    while (c->served < EM_CONNS) {
        r = corio_acceptor_next(&a, T_BOUND);
        if (!T_EXPECT(r >= 0))
            break;
        t_serve_byte(r, &c->served);
    }
    corio_acceptor_fini(&a);
    return 0;
}

static void test_acceptor_emfile_rearm(void **state)
{
    (void)state;
    if (t_on_valgrind()) {
        /* valgrind keeps RLIMIT_NOFILE to itself: the kernel never sees the lower limit. */
        print_message("SKIP: under valgrind setrlimit(RLIMIT_NOFILE) does not reach the kernel\n");
        skip();
    }
    struct corio_loop *l = t_mkloop(NULL);
    t_need_or_free(l, CORIO_FEAT_ACCEPT_MULTISHOT);
    struct emfile c;
    memset(&c, 0, sizeof(c));
    c.lfd = corio_listen_tcp("127.0.0.1", 0, 64, 0);
    assert_true(c.lfd >= 0);
    int port = corio_local_port(c.lfd);
    int clients[EM_CONNS];
    for (int i = 0; i < EM_CONNS; i++) {
        clients[i] = dial_blocking(port);
        char b = (char)('a' + i);
        assert_int_equal(send(clients[i], &b, 1, 0), 1);
    }
    /* Exactly EM_FREE fd numbers free below the new limit: the lowest free ones are taken in
     * turn, so the limit goes just above the last of them. */
    int probe[EM_FREE], top = 0;
    for (int i = 0; i < EM_FREE; i++) {
        probe[i] = dup(0);
        assert_true(probe[i] >= 0);
        top = probe[i] > top ? probe[i] : top;
    }
    for (int i = 0; i < EM_FREE; i++)
        close(probe[i]);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)top + 1;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    assert_int_equal(corio_spawn(NULL, l, emfile_main, &c), 0);
    int run_err = corio_loop_run(l);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0); /* before anything can fail */
    assert_int_equal(run_err, 0);
    print_message("  accepted %u, then %d; back-off window %.0f ms: %u x -EMFILE, %llu SQEs, "
                  "%llu enters; served %u of %d\n",
                  c.first_accepted, c.first_err, c.window_ms, c.emfile_calls,
                  (unsigned long long)c.window_sqes, (unsigned long long)c.window_enters, c.served,
                  EM_CONNS);
    int bad = 0;
    for (int i = 0; i < EM_CONNS; i++) {
        char b = (char)('a' + i);
        bad += reply_then_eof(clients[i], &b, 1) != 0;
        close(clients[i]);
    }
    close(c.lfd);
    corio_loop_free(l);
    t_expect_ok();
    assert_int_equal(bad, 0);
    assert_int_equal(c.first_accepted, EM_FREE);
    assert_int_equal(c.first_err, -EMFILE);
    assert_true(c.emfile_calls >= 1 && c.emfile_calls <= 6);
    /* Per call: the re-armed accept and the sleep; a few enters each. A busy loop would make
     * thousands. */
    assert_true(c.window_sqes <= 3 * (uint64_t)c.emfile_calls + 2);
    assert_true(c.window_enters <= 4 * (uint64_t)c.emfile_calls + 4);
    assert_int_equal(c.served, EM_CONNS);
}

/* ---- direct descriptors ---------------------------------------------------------------------- */

/* Accepting into the fixed file table: the fds are direct descriptors, and recv, send, send_zc, a
 * multishot receiver and close all work on them. */
enum { FX_CONNS = 4 };

struct fx {
    int lfd, port;
    struct corio_bufring *br;
    int fds[FX_CONNS];
    unsigned dialers_ok;
    int fds_before, fds_during; /* the process's fd count: direct descriptors are not in it */
};

static int fx_dialer(void *arg)
{
    struct fx *c = arg;
    int fd = corio_dial_tcp("127.0.0.1", (uint16_t)c->port, T_BOUND);
    if (!T_EXPECT(fd >= 0))
        return -1;
    char out[64], in[64];
    t_fill(out, sizeof(out), 90, 0);
    memset(in, 0, sizeof(in));
    T_EXPECT_EQ(corio_send_all(fd, out, sizeof(out), NULL, T_BOUND), sizeof(out));
    T_EXPECT_EQ(corio_recv_all(fd, in, sizeof(in), NULL, T_BOUND), sizeof(in));
    T_EXPECT_EQ(t_check(in, sizeof(in), 90, 0), -1);
    T_EXPECT_EQ(corio_recv(fd, in, 1, 0, T_BOUND), 0); /* the server's close reached us */
    T_EXPECT_EQ(corio_close(fd), 0);
    c->dialers_ok++;
    return 0;
}

static void fx_echo(struct fx *c, int i, int fd)
{
    char buf[64];
    memset(buf, 0, sizeof(buf));
    if (i == 0) {
        /* A multishot receiver on a direct descriptor. */
        struct corio_receiver rx;
        struct corio_buf b;
        size_t got = 0;
        T_EXPECT_EQ(corio_receiver_init(&rx, fd, c->br), 0);
        while (got < sizeof(buf)) {
            ssize_t n = corio_receiver_next(&rx, &b, T_BOUND);
            if (!T_EXPECT(n > 0))
                break;
            memcpy(buf + got, b.data, (size_t)n);
            got += (size_t)n;
            corio_buf_release(&b);
        }
        corio_receiver_fini(&rx);
    } else {
        T_EXPECT_EQ(corio_recv_all(fd, buf, sizeof(buf), NULL, T_BOUND), sizeof(buf));
    }
    T_EXPECT_EQ(t_check(buf, sizeof(buf), 90, 0), -1);
    if (i == 1 && corio_loop_has(corio_loop_current(), CORIO_FEAT_SEND_ZC))
        T_EXPECT_EQ(corio_send_zc(fd, buf, sizeof(buf), 0, T_BOUND), sizeof(buf));
    else
        T_EXPECT_EQ(corio_send(fd, buf, sizeof(buf), 0, T_BOUND), sizeof(buf));
}

static int fx_main(void *arg)
{
    struct fx *c = arg;
    struct corio_acceptor a;
    T_EXPECT_EQ(corio_acceptor_init(&a, c->lfd, CORIO_ACCEPT_FIXED), 0);
    corio_id dl[FX_CONNS];
    for (int i = 0; i < FX_CONNS; i++)
        T_EXPECT_EQ(corio_spawn(&dl[i], NULL, fx_dialer, c), 0);
    uint64_t slots = 0;
    for (int i = 0; i < FX_CONNS; i++) {
        int fd = corio_acceptor_next(&a, T_BOUND);
        c->fds[i] = fd;
        if (!T_EXPECT(fd >= 0 && (fd & CORIO_FD_FIXED)))
            break;
        int slot = fd & ~CORIO_FD_FIXED;
        T_EXPECT(slot >= 0 && slot < 64);
        T_EXPECT(!(slots & (1ull << slot))); /* each connection its own slot */
        slots |= 1ull << slot;
    }
    c->fds_during = t_count_fds();
    for (int i = 0; i < FX_CONNS; i++) {
        if (c->fds[i] < 0)
            continue;
        fx_echo(c, i, c->fds[i]);
        T_EXPECT_EQ(corio_close(c->fds[i]), 0);
        T_EXPECT_EQ(corio_close(c->fds[i]), -EBADF); /* the slot is empty now */
    }
    for (int i = 0; i < FX_CONNS; i++)
        T_EXPECT_EQ(corio_join(dl[i], NULL, T_BOUND), 0);
    corio_acceptor_fini(&a);
    return 0;
}

static void test_acceptor_fixed(void **state)
{
    (void)state;
    t_skip_on_epoll("the fixed file table");
    struct corio_loop_opts o = {.fixed_files = 64};
    struct corio_loop *l = t_mkloop(&o);
    t_need_or_free(l, CORIO_FEAT_ACCEPT_MULTISHOT);
    t_need_or_free(l, CORIO_FEAT_RECV_MULTISHOT);
    struct fx c;
    memset(&c, 0, sizeof(c));
    c.br = t_bufring(l, 8, 16);
    c.lfd = corio_listen_tcp("127.0.0.1", 0, 16, 0);
    assert_true(c.lfd >= 0);
    c.port = corio_local_port(c.lfd);
    assert_int_equal(t_run1(l, fx_main, &c), 0);
    close(c.lfd);
    corio_bufring_free(c.br);
    corio_loop_free(l);
    t_expect_ok();
    assert_int_equal(c.dialers_ok, FX_CONNS);
}

/* A fixed file table of 4 and 6 connections waiting: 4 are accepted, then -ENFILE; once they are
 * served and closed, the accept is armed again and the connections still waiting are served.
 *
 * The kernel accepts into the fixed table first and installs after (io_accept: do_accept, then
 * io_fixed_fd_install), so an accept that finds the table full resets a waiting connection. This
 * test counts the resets, prints them and asserts there are none; the next one asks again while
 * the table is full. */
enum { TF_SLOTS = 4, TF_CONNS = 6 };

struct tfull {
    int lfd;
    unsigned first_accepted;
    int first_err;
    int last_err; /* what ended the accepts once the table had room: -ETIMEDOUT, nothing left */
    unsigned served;
};

static int tfull_main(void *arg)
{
    struct tfull *c = arg;
    struct corio_acceptor a;
    T_EXPECT_EQ(corio_acceptor_init(&a, c->lfd, CORIO_ACCEPT_FIXED), 0);
    int fds[TF_CONNS];
    int r;
    while ((r = corio_acceptor_next(&a, T_BOUND)) >= 0 && c->first_accepted < TF_CONNS) {
        T_EXPECT(r & CORIO_FD_FIXED);
        fds[c->first_accepted++] = r;
    }
    c->first_err = r;
    for (unsigned i = 0; i < c->first_accepted; i++)
        t_serve_byte(fds[i], &c->served);
    while ((r = corio_acceptor_next(&a, corio_now() + CORIO_MS(200) * t_slowdown())) >= 0) {
        T_EXPECT(r & CORIO_FD_FIXED);
        t_serve_byte(r, &c->served);
    }
    c->last_err = r;
    corio_acceptor_fini(&a);
    return 0;
}

static void test_acceptor_fixed_table_full(void **state)
{
    (void)state;
    t_skip_on_epoll("the fixed file table");
    struct corio_loop_opts o = {.fixed_files = TF_SLOTS};
    struct corio_loop *l = t_mkloop(&o);
    t_need_or_free(l, CORIO_FEAT_ACCEPT_MULTISHOT);
    struct tfull c;
    memset(&c, 0, sizeof(c));
    c.lfd = corio_listen_tcp("127.0.0.1", 0, 16, 0);
    assert_true(c.lfd >= 0);
    int port = corio_local_port(c.lfd);
    int clients[TF_CONNS];
    for (int i = 0; i < TF_CONNS; i++) {
        clients[i] = dial_blocking(port);
        char b = (char)('k' + i);
        assert_int_equal(send(clients[i], &b, 1, 0), 1);
    }
    assert_int_equal(t_run1(l, tfull_main, &c), 0);
    int reset = 0, bad = 0;
    for (int i = 0; i < TF_CONNS; i++) {
        char b = (char)('k' + i);
        int r = reply_then_eof(clients[i], &b, 1);
        reset += r == -ECONNRESET;
        bad += r != 0 && r != -ECONNRESET;
        close(clients[i]);
    }
    print_message("  accepted %u into %d slots, then %d; served %u of %d; %d reset by the full "
                  "table\n",
                  c.first_accepted, TF_SLOTS, c.first_err, c.served, TF_CONNS, reset);
    close(c.lfd);
    corio_loop_free(l);
    t_expect_ok();
    assert_int_equal(c.first_accepted, TF_SLOTS);
    assert_int_equal(c.first_err, -ENFILE);
    assert_int_equal(c.last_err, -ETIMEDOUT);
    assert_int_equal(bad, 0);
    assert_int_equal(reset, 0); /* a fixed acceptor never arms without a free slot */
    assert_int_equal(c.served + (unsigned)reset, TF_CONNS);
    assert_true(c.served > TF_SLOTS); /* accepting resumed once the table had room */
}

/* An acceptor with CORIO_ACCEPT_FIXED must not lose waiting connections while the fixed file
 * table is full, however often its owner asks for the next one.
 *
 * The kernel's io_accept accepts first and installs into the fixed table after (do_accept, then
 * io_fixed_fd_install); with no free slot the install fails with -ENFILE and the accepted socket is
 * released, so the peer sees a reset. A plain accept reserves its fd before accepting and leaves
 * the connection in the backlog at -EMFILE. corio therefore counts the direct descriptors it
 * installs and closes, arms a fixed acceptor one accept at a time and only with a slot free, and
 * returns -ENFILE (without arming) while the table is full. Before that fix, each call made while
 * the table was full cost one connection; this test caught it. */

enum { FF_SLOTS = 4, FF_CONNS = 6 };

struct ffull {
    int lfd;
    unsigned served;
};

/* A server that backs off at -ENFILE like corio-echo does (sleep 10 ms, try again) while it serves
 * the connections it has; every waiting connection must be served in the end. */
static int ffull_main(void *arg)
{
    struct ffull *c = arg;
    struct corio_acceptor a;
    T_EXPECT_EQ(corio_acceptor_init(&a, c->lfd, CORIO_ACCEPT_FIXED), 0);
    int held[FF_CONNS], nheld = 0;
    int64_t end = corio_now() + CORIO_MS(300) * (t_on_valgrind() ? 10 : 1);
    while (c->served < FF_CONNS && corio_now() < end) {
        int r = corio_acceptor_next(&a, end);
        if (r >= 0) {
            held[nheld++] = r;
            continue;
        }
        if (r == -ETIMEDOUT)
            break;
        T_EXPECT_EQ(r, -ENFILE);
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0);
        /* Table full: retry once more before serving, as a server under load would. */
        if (nheld == FF_SLOTS) {
            r = corio_acceptor_next(&a, end);
            T_EXPECT_EQ(r, -ENFILE);
            for (int i = 0; i < nheld; i++)
                t_serve_byte(held[i], &c->served);
            nheld = 0;
        }
    }
    for (int i = 0; i < nheld; i++)
        t_serve_byte(held[i], &c->served);
    corio_acceptor_fini(&a);
    return 0;
}

static void test_acceptor_fixed_full_keeps_pending(void **state)
{
    (void)state;
    t_skip_on_epoll("the fixed file table");
    struct corio_loop_opts o = {.fixed_files = FF_SLOTS};
    struct corio_loop *l = NULL;
    assert_int_equal(corio_loop_new(&l, &o), 0);
    t_need_or_free(l, CORIO_FEAT_ACCEPT_MULTISHOT);
    struct ffull c = {.lfd = corio_listen_tcp("127.0.0.1", 0, 16, 0)};
    assert_true(c.lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)corio_local_port(c.lfd)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int clients[FF_CONNS];
    for (int i = 0; i < FF_CONNS; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(clients[i] >= 0);
        assert_int_equal(connect(clients[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
        struct timeval tv = {.tv_sec = 2};
        assert_int_equal(setsockopt(clients[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        char b = (char)('p' + i);
        assert_int_equal(send(clients[i], &b, 1, 0), 1);
    }
    assert_int_equal(t_run1(l, ffull_main, &c), 0);
    int reset = 0;
    for (int i = 0; i < FF_CONNS; i++) {
        char b = 0;
        if (recv(clients[i], &b, 1, 0) < 0 && errno == ECONNRESET)
            reset++;
        close(clients[i]);
    }
    close(c.lfd);
    corio_loop_free(l);
    t_expect_ok();
    print_message("  served %u of %d waiting connections; %d reset by accepts into a full table\n",
                  c.served, FF_CONNS, reset);
    assert_int_equal(reset, 0);
    assert_int_equal(c.served, FF_CONNS);
}

/* Ops on direct descriptors that name nothing: an empty slot or one past the table gives -EBADF
 * (close of a slot past the table: -EINVAL, as the kernel's io_fixed_fd_remove says). */
static int fixed_bad_body(void *arg)
{
    (void)arg;
    char b[16] = {0};
    const int empty = CORIO_FD_FIXED | 3, past = CORIO_FD_FIXED | 100;
    T_EXPECT_EQ(corio_recv(empty, b, sizeof(b), 0, T_BOUND), -EBADF);
    T_EXPECT_EQ(corio_send(empty, b, sizeof(b), 0, T_BOUND), -EBADF);
    T_EXPECT_EQ(corio_read(empty, b, sizeof(b), -1, T_BOUND), -EBADF);
    T_EXPECT_EQ(corio_write(empty, b, sizeof(b), -1, T_BOUND), -EBADF);
    T_EXPECT_EQ(corio_recv(past, b, sizeof(b), 0, T_BOUND), -EBADF);
    T_EXPECT_EQ(corio_close(empty), -EBADF);
    T_EXPECT_EQ(corio_close(past), -EINVAL);
    if (corio_loop_has(corio_loop_current(), CORIO_FEAT_SEND_ZC))
        T_EXPECT_EQ(corio_send_zc(empty, b, sizeof(b), 0, T_BOUND), -EBADF);
    struct corio_bufring *br = NULL;
    if (T_EXPECT_EQ(corio_bufring_new(&br, NULL, 2, 64), 0)) {
        struct corio_receiver rx;
        struct corio_buf buf;
        T_EXPECT_EQ(corio_receiver_init(&rx, empty, br), 0);
        T_EXPECT_EQ(corio_receiver_next(&rx, &buf, T_BOUND), -EBADF);
        corio_receiver_fini(&rx);
        T_EXPECT_EQ(corio_bufring_available(br), 2);
        corio_bufring_free(br);
    }
    struct corio_acceptor a;
    T_EXPECT_EQ(corio_acceptor_init(&a, empty, 0), 0);
    T_EXPECT_EQ(corio_acceptor_next(&a, T_BOUND), -EBADF);
    corio_acceptor_fini(&a);
    return 0;
}

/* Without a fixed file table: -EBADF for the ops, -ENXIO for close (no table at all), and an
 * acceptor cannot be asked for direct descriptors. */
static int no_table_body(void *arg)
{
    int lfd = *(int *)arg;
    char b[4] = {0};
    T_EXPECT_EQ(corio_recv(CORIO_FD_FIXED | 0, b, sizeof(b), 0, T_BOUND), -EBADF);
    T_EXPECT_EQ(corio_close(CORIO_FD_FIXED | 0), -ENXIO);
    struct corio_acceptor a;
    T_EXPECT_EQ(corio_acceptor_init(&a, lfd, CORIO_ACCEPT_FIXED), -EINVAL);
    corio_acceptor_fini(&a); /* after a failed init: a no-op */
    return 0;
}

static void test_acceptor_fixed_files_bad_index(void **state)
{
    (void)state;
    t_skip_on_epoll("the fixed file table");
    struct corio_loop_opts o = {.fixed_files = 8};
    struct corio_loop *l = t_mkloop(&o);
    t_need_or_free(l, CORIO_FEAT_ACCEPT_MULTISHOT);
    t_need_or_free(l, CORIO_FEAT_RECV_MULTISHOT);
    assert_int_equal(t_run1(l, fixed_bad_body, NULL), 0);
    corio_loop_free(l);
    t_expect_ok();
    l = t_mkloop(NULL);
    int lfd = corio_listen_tcp("127.0.0.1", 0, 4, 0);
    assert_true(lfd >= 0);
    assert_int_equal(t_run1(l, no_table_body, &lfd), 0);
    close(lfd);
    corio_loop_free(l);
    t_expect_ok();
}

/* A coroutine that returns with its acceptor armed and connections queued: the engine cancels the
 * multishot and closes what was queued (plain fds at once, direct descriptors by the ring), so the
 * peers see their connection closed and the process's fd count is back where it was. */
enum { OR_CONNS = 5 };

struct orphan_acc {
    int lfd;
    unsigned flags;
};

static int orphan_acc_body(void *arg)
{
    struct orphan_acc *c = arg;
    struct corio_acceptor a;
    T_EXPECT_EQ(corio_acceptor_init(&a, c->lfd, c->flags), 0);
    int fd = corio_acceptor_next(&a, T_BOUND);
    T_EXPECT(fd >= 0);
    if (fd >= 0)
        T_EXPECT_EQ(corio_close(fd), 0);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0); /* the others are queued by now */
    return 0;                                                /* no fini: armed, 4 queued */
}

/* And one with nothing queued, armed after a timeout. */
static int orphan_acc_idle(void *arg)
{
    int lfd = *(int *)arg;
    struct corio_acceptor a;
    T_EXPECT_EQ(corio_acceptor_init(&a, lfd, 0), 0);
    T_EXPECT_EQ(corio_acceptor_next(&a, corio_now() + CORIO_MS(5)), -ETIMEDOUT);
    return 0;
}

static void orphan_acceptor(unsigned flags)
{
    struct corio_loop_opts o = {.fixed_files = (flags & CORIO_ACCEPT_FIXED) ? 64 : 0};
    struct corio_loop *l = t_mkloop(&o);
    t_need_or_free(l, CORIO_FEAT_ACCEPT_MULTISHOT);
    struct orphan_acc c = {.flags = flags};
    c.lfd = corio_listen_tcp("127.0.0.1", 0, 16, 0);
    assert_true(c.lfd >= 0);
    int idle_lfd = corio_listen_tcp("127.0.0.1", 0, 16, 0);
    assert_true(idle_lfd >= 0);
    int port = corio_local_port(c.lfd);
    int clients[OR_CONNS];
    for (int i = 0; i < OR_CONNS; i++)
        clients[i] = dial_blocking(port);
    int fds0 = t_count_fds();
    assert_int_equal(corio_spawn(NULL, l, orphan_acc_body, &c), 0);
    assert_int_equal(corio_spawn(NULL, l, orphan_acc_idle, &idle_lfd), 0);
    assert_int_equal(corio_loop_run(l), 0);
    int fds_after = t_count_fds();
    /* The loop has ended but is not freed: the peers must already see their connections closed.
     * A fixed acceptor accepts one connection at a time (a multishot could take more than the
     * free slots, and the kernel resets what it cannot install), so connections it never took
     * are still waiting in the listen backlog: their recv times out (EAGAIN), never resets. */
    int open_peers = 0;
    for (int i = 0; i < OR_CONNS; i++) {
        char b;
        ssize_t n = recv(clients[i], &b, 1, 0);
        if ((flags & CORIO_ACCEPT_FIXED) && n < 0 && (errno == EAGAIN || errno == EINTR))
            n = 0;
        if (n != 0) {
            print_error("client %d: recv gave %zd (%s), not the end of the stream\n", i, n,
                        n < 0 ? strerror(errno) : "data");
            open_peers++;
        }
        close(clients[i]);
    }
    close(c.lfd);
    close(idle_lfd);
    corio_loop_free(l);
    t_expect_ok();
    assert_int_equal(fds_after, fds0);
    assert_int_equal(open_peers, 0);
}

static void test_acceptor_owner_returns_armed(void **state)
{
    (void)state;
    orphan_acceptor(0);
}

static void test_acceptor_fixed_owner_returns_armed(void **state)
{
    (void)state;
    t_skip_on_epoll("the fixed file table");
    orphan_acceptor(CORIO_ACCEPT_FIXED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_acceptor_200_connections),
        T_GUARD_TEST(test_acceptor_emfile_rearm),
        T_GUARD_TEST(test_acceptor_fixed),
        T_GUARD_TEST(test_acceptor_fixed_table_full),
        T_GUARD_TEST(test_acceptor_fixed_full_keeps_pending),
        T_GUARD_TEST(test_acceptor_fixed_files_bad_index),
        T_GUARD_TEST(test_acceptor_owner_returns_armed),
        T_GUARD_TEST(test_acceptor_fixed_owner_returns_armed),
    };
    return T_RUN_TESTS(tests);
}
