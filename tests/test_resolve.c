/* Names: corio_resolve (numeric addresses parsed on the spot, names looked up on the loop's
 * workers, getaddrinfo's errors as -errno), corio_dial_tcp and corio_listen_tcp by name, and a
 * dial that goes on to the next address when one refuses. No network: "localhost" comes from
 * /etc/hosts, and a name under .invalid never resolves (RFC 6761). */
#include "helpers.h"

#include "listen.h"
#include "loop.h"
#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return false;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* ---- numeric addresses ------------------------------------------------------------------------
 */

static void test_resolve_numeric(void **state)
{
    (void)state;
    struct sockaddr_storage ss[4];
    /* Parsed without a loop, a coroutine or a lookup. */
    assert_int_equal(corio_resolve("127.0.0.1", 80, AF_UNSPEC, ss, 4, T_BOUND), 1);
    assert_int_equal(ss[0].ss_family, AF_INET);
    assert_int_equal(port_of(&ss[0]), 80);
    assert_true(is_loopback(&ss[0]));
    assert_int_equal(corio_resolve("::1", 443, AF_UNSPEC, ss, 4, T_BOUND), 1);
    assert_int_equal(ss[0].ss_family, AF_INET6);
    assert_int_equal(port_of(&ss[0]), 443);
    assert_true(is_loopback(&ss[0]));
    assert_int_equal(corio_resolve("10.1.2.3", 1, AF_INET, ss, 1, T_BOUND), 1);
    /* A scoped IPv6 address: the scope by interface name. */
    assert_int_equal(corio_resolve("fe80::1%lo", 7, AF_INET6, ss, 4, T_BOUND), 1);
    assert_int_equal(((struct sockaddr_in6 *)&ss[0])->sin6_scope_id, if_nametoindex("lo"));
    assert_int_equal(port_of(&ss[0]), 7);
    /* The other family: no such address (as getaddrinfo's EAI_ADDRFAMILY). */
    assert_int_equal(corio_resolve("127.0.0.1", 80, AF_INET6, ss, 4, T_BOUND), -ENOENT);
    assert_int_equal(corio_resolve("::1", 80, AF_INET, ss, 4, T_BOUND), -ENOENT);
    /* What can only be meant as an address and does not parse: refused, not looked up. */
    static const char *const bad[] = {
        "", "256.0.0.1", "1.2.3", "127.0.0.1:80", "::g", "1::2::3", "fe80::1%no-such-interface"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (corio_resolve(bad[i], 80, AF_UNSPEC, ss, 4, T_BOUND) != -EINVAL)
            fail_msg("\"%s\" was not refused", bad[i]);
    assert_int_equal(corio_resolve(NULL, 80, AF_UNSPEC, ss, 4, T_BOUND), -EINVAL);
    assert_int_equal(corio_resolve("127.0.0.1", 80, AF_UNSPEC, NULL, 4, T_BOUND), -EINVAL);
    assert_int_equal(corio_resolve("127.0.0.1", 80, AF_UNSPEC, ss, 0, T_BOUND), -EINVAL);
    assert_int_equal(corio_resolve("127.0.0.1", 80, AF_UNIX, ss, 4, T_BOUND), -EAFNOSUPPORT);
    /* A name needs a coroutine: it would block the thread. */
    assert_int_equal(corio_resolve("localhost", 80, AF_UNSPEC, ss, 4, T_BOUND), -EPERM);
}

static int numeric_in_loop(void *p)
{
    (void)p;
    struct sockaddr_storage ss;
    T_EXPECT_EQ(corio_resolve("::1", 80, AF_UNSPEC, &ss, 1, T_BOUND), 1);
    T_EXPECT_EQ(corio_resolve("127.0.0.1", 80, AF_UNSPEC, &ss, 1, T_BOUND), 1);
    T_EXPECT(corio_loop_current()->blocking == NULL); /* the worker pool was never made */
    return 0;
}

/* Inside a coroutine too, a numeric address takes no worker. */
static void test_resolve_numeric_no_worker(void **state)
{
    t_run_checked(state, numeric_in_loop, NULL);
}

/* ---- getaddrinfo's errors -----------------------------------------------------------------------
 */

static void test_resolve_gai_errno(void **state)
{
    (void)state;
    assert_int_equal(corio__gai_errno(0, 0), 0);
    assert_int_equal(corio__gai_errno(EAI_NONAME, 0), -ENOENT);
    assert_int_equal(corio__gai_errno(EAI_NODATA, 0), -ENOENT);
    assert_int_equal(corio__gai_errno(EAI_ADDRFAMILY, 0), -ENOENT);
    assert_int_equal(corio__gai_errno(EAI_AGAIN, 0), -EAGAIN);
    assert_int_equal(corio__gai_errno(EAI_MEMORY, 0), -ENOMEM);
    assert_int_equal(corio__gai_errno(EAI_FAIL, 0), -EIO);
    assert_int_equal(corio__gai_errno(EAI_FAMILY, 0), -EAFNOSUPPORT);
    assert_int_equal(corio__gai_errno(EAI_SYSTEM, EMFILE), -EMFILE);
    assert_int_equal(corio__gai_errno(EAI_SYSTEM, 0), -EIO);
    assert_int_equal(corio__gai_errno(EAI_SERVICE, 0), -EINVAL);
    assert_int_equal(corio__gai_errno(EAI_SOCKTYPE, 0), -EINVAL);
    assert_int_equal(corio__gai_errno(EAI_BADFLAGS, 0), -EINVAL);
}

/* ---- names ---------------------------------------------------------------------------------- */

static int localhost_body(void *p)
{
    (void)p;
    struct sockaddr_storage ss[8];
    int n = corio_resolve("localhost", 8080, AF_UNSPEC, ss, 8, T_BOUND);
    if (!T_EXPECT(n >= 1))
        return n;
    for (int i = 0; i < n; i++) {
        T_EXPECT(is_loopback(&ss[i]));
        T_EXPECT_EQ(port_of(&ss[i]), 8080);
    }
    /* /etc/hosts has 127.0.0.1 localhost on every Linux host. */
    n = corio_resolve("localhost", 1, AF_INET, ss, 8, T_BOUND);
    T_EXPECT(n >= 1);
    for (int i = 0; i < n; i++)
        T_EXPECT_EQ(ss[i].ss_family, AF_INET);
    /* @max bounds what is stored. */
    T_EXPECT_EQ(corio_resolve("localhost", 1, AF_UNSPEC, ss, 1, T_BOUND), 1);
    return 0;
}

static void test_resolve_localhost(void **state)
{
    t_run_checked(state, localhost_body, NULL);
}

static int invalid_body(void *p)
{
    (void)p;
    struct sockaddr_storage ss[4];
    int64_t t0 = corio_now();
    int r = corio_resolve("no-such-host.invalid", 80, AF_UNSPEC, ss, 4, t0 + CORIO_MS(3000));
    /* -ENOENT from a resolver that answers; -ETIMEDOUT when it is slower than the deadline;
     * -EAGAIN (EAI_AGAIN) when no name server can be reached at all. Never an address. */
    print_message("no-such-host.invalid: %s after %.0f ms\n", strerror(-r), t_ms_since(t0));
    T_EXPECT(r == -ENOENT || r == -ETIMEDOUT || r == -EAGAIN);
    T_EXPECT(t_ms_since(t0) < 3000 + T_LATE_NS / 1000000);
    r = corio_dial_tcp("no-such-host.invalid", 80, corio_now() + CORIO_MS(3000));
    T_EXPECT(r == -ENOENT || r == -ETIMEDOUT || r == -EAGAIN);
    return 0;
}

static void test_resolve_invalid_name(void **state)
{
    t_run_checked(state, invalid_body, NULL);
}

/* ---- dial and listen by name ---------------------------------------------------------------- */

/* Accepts one connection on @lfd and checks a byte goes through @fd to it. Returns the accepted
 * peer's family, or -1. */
static int accept_check(int lfd, int fd)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    int a = corio_accept(lfd, (struct sockaddr *)&peer, &len, 0, T_BOUND);
    if (!T_EXPECT(a >= 0))
        return -1;
    char c = 'x', got = 0;
    T_EXPECT_EQ(corio_send(fd, &c, 1, 0, T_BOUND), 1);
    T_EXPECT_EQ(corio_recv(a, &got, 1, 0, T_BOUND), 1);
    T_EXPECT_EQ(got, 'x');
    corio_close(a);
    return peer.ss_family;
}

struct by_name {
    int outside_lfd; /* a listener made by name outside any coroutine */
};

static int by_name_body(void *p)
{
    struct by_name *b = p;
    /* A listener on 127.0.0.1, dialled by name. */
    int lfd = corio_listen_tcp("127.0.0.1", 0, 8, 0);
    if (!T_EXPECT(lfd >= 0))
        return -1;
    int fd = corio_dial_tcp("localhost", (uint16_t)corio_local_port(lfd), T_BOUND);
    if (T_EXPECT(fd >= 0)) {
        T_EXPECT_EQ(accept_check(lfd, fd), AF_INET);
        corio_close(fd);
    }
    corio_close(lfd);
    /* A listener made by name inside a coroutine (the lookup on the workers), and the one made
     * outside (on the calling thread): both on loopback, both dialled by name. */
    int lfds[2] = {corio_listen_tcp("localhost", 0, 8, 0), b->outside_lfd};
    for (int i = 0; i < 2; i++) {
        if (!T_EXPECT(lfds[i] >= 0))
            continue;
        struct sockaddr_storage local;
        socklen_t len = sizeof(local);
        T_EXPECT_EQ(getsockname(lfds[i], (struct sockaddr *)&local, &len), 0);
        T_EXPECT(is_loopback(&local));
        fd = corio_dial_tcp("localhost", (uint16_t)corio_local_port(lfds[i]), T_BOUND);
        if (T_EXPECT(fd >= 0)) {
            T_EXPECT_EQ(accept_check(lfds[i], fd), local.ss_family);
            corio_close(fd);
        }
    }
    corio_close(lfds[0]);
    /* Numeric addresses as before, both families. */
    static const char *const hosts[] = {"127.0.0.1", "::1"};
    for (int i = 0; i < 2; i++) {
        lfd = corio_listen_tcp(hosts[i], 0, 8, 0);
        if (!T_EXPECT(lfd >= 0))
            continue;
        fd = corio_dial_tcp(hosts[i], (uint16_t)corio_local_port(lfd), T_BOUND);
        if (T_EXPECT(fd >= 0)) {
            T_EXPECT_EQ(accept_check(lfd, fd), i ? AF_INET6 : AF_INET);
            corio_close(fd);
        }
        corio_close(lfd);
    }
    return 0;
}

static void test_resolve_dial_listen_by_name(void **state)
{
    struct by_name b = {.outside_lfd = corio_listen_tcp("localhost", 0, 8, 0)};
    assert_true(b.outside_lfd >= 0);
    t_run_checked(state, by_name_body, &b);
    close(b.outside_lfd);
}

/* ---- the next address when one refuses --------------------------------------------------------
 */

static struct sockaddr_storage addr_of(const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    assert_int_equal(corio_resolve(host, port, AF_UNSPEC, &ss, 1, CORIO_FOREVER), 1);
    return ss;
}

struct second {
    int lfd4, lfd6;               /* listeners on 127.0.0.1:port4 and ::1:port6 */
    struct sockaddr_storage a[4]; /* [::1:port4, 127.0.0.1:port4], [127.0.0.1:port6, ::1:port6] */
    struct sockaddr_storage refused[2]; /* nothing listens on either */
};

static int second_body(void *p)
{
    struct second *s = p;
    /* ::1 refuses on the IPv4 listener's port: the dial goes on to 127.0.0.1. */
    int fd = corio__dial_addrs(&s->a[0], 2, T_BOUND);
    if (T_EXPECT(fd >= 0)) {
        T_EXPECT_EQ(accept_check(s->lfd4, fd), AF_INET);
        corio_close(fd);
    }
    /* And the other way round. */
    fd = corio__dial_addrs(&s->a[2], 2, T_BOUND);
    if (T_EXPECT(fd >= 0)) {
        T_EXPECT_EQ(accept_check(s->lfd6, fd), AF_INET6);
        corio_close(fd);
    }
    /* Every address refuses: the last one's error. */
    T_EXPECT_EQ(corio__dial_addrs(s->refused, 2, T_BOUND), -ECONNREFUSED);
    T_EXPECT_EQ(corio__dial_addrs(s->refused, 0, T_BOUND), -ENOENT);
    /* The caller's deadline ends the tries: none is made once it has passed. */
    T_EXPECT_EQ(corio__dial_addrs(&s->a[0], 2, corio_now() - 1), -ETIMEDOUT);
    return 0;
}

/* A port nothing listens on: one that was just free. */
static uint16_t closed_port(const char *host)
{
    int fd = corio_listen_tcp(host, 0, 1, 0);
    assert_true(fd >= 0);
    uint16_t port = (uint16_t)corio_local_port(fd);
    close(fd);
    return port;
}

static void test_resolve_dial_next_address(void **state)
{
    struct second s;
    s.lfd4 = corio_listen_tcp("127.0.0.1", 0, 8, 0);
    s.lfd6 = corio_listen_tcp("::1", 0, 8, CORIO_LISTEN_V6ONLY);
    assert_true(s.lfd4 >= 0);
    if (s.lfd6 < 0) {
        close(s.lfd4);
        print_message("SKIP: no IPv6 loopback here (%s)\n", strerror(-s.lfd6));
        skip();
    }
    uint16_t p4 = (uint16_t)corio_local_port(s.lfd4), p6 = (uint16_t)corio_local_port(s.lfd6);
    s.a[0] = addr_of("::1", p4);
    s.a[1] = addr_of("127.0.0.1", p4);
    s.a[2] = addr_of("127.0.0.1", p6);
    s.a[3] = addr_of("::1", p6);
    s.refused[0] = addr_of("::1", closed_port("::1"));
    s.refused[1] = addr_of("127.0.0.1", closed_port("127.0.0.1"));
    t_run_checked(state, second_body, &s);
    close(s.lfd4);
    close(s.lfd6);
}

/* When "localhost" has both an IPv6 and an IPv4 address here, the same through the name. */
static int both_body(void *p)
{
    struct second *s = p;
    struct sockaddr_storage ss[8];
    int n = corio_resolve("localhost", 0, AF_UNSPEC, ss, 8, T_BOUND);
    if (!T_EXPECT(n >= 2))
        return -1;
    /* Listen only on the second family of the resolver's order: the first refuses. */
    int lfd = ss[1].ss_family == AF_INET ? s->lfd4 : s->lfd6;
    int fd = corio_dial_tcp("localhost", (uint16_t)corio_local_port(lfd), T_BOUND);
    if (T_EXPECT(fd >= 0)) {
        T_EXPECT_EQ(accept_check(lfd, fd), ss[1].ss_family);
        corio_close(fd);
    }
    return 0;
}

static int count_families(void *p)
{
    int *fam = p;
    struct sockaddr_storage ss[8];
    int n = corio_resolve("localhost", 0, AF_UNSPEC, ss, 8, T_BOUND);
    *fam = n >= 2 && ss[0].ss_family != ss[1].ss_family ? 2 : 1;
    return 0;
}

static void test_resolve_dial_localhost_both(void **state)
{
    int fam = 0;
    t_run_checked(state, count_families, &fam);
    if (fam < 2) {
        print_message("SKIP: \"localhost\" has one address family here (/etc/hosts); "
                      "test_resolve_dial_next_address covers the fall-through\n");
        skip();
    }
    struct second s = {.lfd4 = corio_listen_tcp("127.0.0.1", 0, 8, 0),
                       .lfd6 = corio_listen_tcp("::1", 0, 8, CORIO_LISTEN_V6ONLY)};
    assert_true(s.lfd4 >= 0 && s.lfd6 >= 0);
    t_run_checked(state, both_body, &s);
    close(s.lfd4);
    close(s.lfd6);
}

/* ---- racing the addresses (RFC 8305) ----------------------------------------------------------
 */

static void test_resolve_dial_order(void **state)
{
    (void)state;
    struct sockaddr_storage a[6];
    const sa_family_t fam[6] = {AF_INET6, AF_INET6, AF_INET6, AF_INET, AF_INET, AF_INET6};
    for (int i = 0; i < 6; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        a[i].ss_family = fam[i];
    }
    const struct sockaddr_storage *o[6];
    /* The families take turns from the first one's; each keeps the resolver's order. */
    corio__dial_order(a, 6, o);
    const int want[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; i++)
        assert_ptr_equal(o[i], &a[want[i]]);
    /* One family: the resolver's order as it is. */
    corio__dial_order(&a[3], 2, o);
    assert_ptr_equal(o[0], &a[3]);
    assert_ptr_equal(o[1], &a[4]);
}

/* A listener that drops connection attempts without an answer: its backlog of 0 is full with one
 * connection it never accepts, and the kernel drops the SYN of the next (the client would send it
 * again a second later). The loopback stand-in for an address whose path is broken. */
struct hole {
    int lfd, filler;
    uint16_t port;
};

static bool hole_make(struct hole *h)
{
    h->lfd = corio_listen_tcp("127.0.0.1", 0, 0, 0);
    assert_true(h->lfd >= 0);
    h->port = (uint16_t)corio_local_port(h->lfd);
    struct sockaddr_storage ss;
    assert_int_equal(corio_resolve("127.0.0.1", h->port, AF_INET, &ss, 1, T_BOUND), 1);
    /* The filler, non-blocking: a kernel that takes a backlog of 0 as room for none (and
     * syncookies off) would never answer it either, and the test skips. */
    h->filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(h->filler >= 0);
    if (connect(h->filler, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) != 0) {
        struct pollfd pfd = {.fd = h->filler, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof(err);
        if (errno != EINPROGRESS || poll(&pfd, 1, 2000) != 1 ||
            getsockopt(h->filler, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
            return false;
    }
    /* The precondition, checked: a further attempt gets no answer within 300 ms. */
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(probe >= 0);
    int r = connect(probe, (struct sockaddr *)&ss, sizeof(struct sockaddr_in));
    bool dropped = false;
    if (r != 0 && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = probe, .events = POLLOUT};
        dropped = poll(&pfd, 1, 300) == 0;
    }
    close(probe);
    return dropped;
}

static void hole_free(struct hole *h)
{
    close(h->filler);
    close(h->lfd);
}

struct race {
    struct hole hole[2];
    int good;                     /* a listener that answers */
    struct sockaddr_storage a[4]; /* hole 0, the good one; hole 0, hole 1 */
    struct sockaddr_storage refused[2]; /* nothing listens there; the good one */
    int good6;                    /* a listener on ::1, or -1 where there is no IPv6 loopback */
    struct sockaddr_storage mixed[3]; /* hole 0, the good one, the good one on ::1 */
};

/* Dials the two holes with a long deadline, to be cancelled while both attempts wait. */
static int race_cancelled(void *p)
{
    struct race *r = p;
    return corio__dial_addrs(&r->a[2], 2, corio_now() + CORIO_SEC(20));
}

static int race_body(void *p)
{
    struct race *r = p;
    /* The first address never answers: the second joins after the stagger and wins, long before
     * the deadline that would have ended a dial trying them one after the other. */
    int64_t t0 = corio_now();
    int fd = corio__dial_addrs(&r->a[0], 2, t0 + CORIO_SEC(20));
    int64_t took = corio_now() - t0;
    if (T_EXPECT(fd >= 0)) {
        T_EXPECT_EQ(accept_check(r->good, fd), AF_INET);
        corio_close(fd);
    }
    T_EXPECT(took >= CORIO_MS(250)); /* the first had its 250 ms alone */
    T_EXPECT(took < CORIO_SEC(20));
    /* Neither answers: the deadline ends both attempts, and their sockets are closed (the test's
     * fd check sees any left open). */
    t0 = corio_now();
    T_EXPECT_EQ(corio__dial_addrs(&r->a[2], 2, t0 + CORIO_MS(600)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 600);
    /* An address that refuses hands over at once: no stagger to wait out. */
    t0 = corio_now();
    fd = corio__dial_addrs(r->refused, 2, t0 + CORIO_SEC(20));
    took = corio_now() - t0;
    if (T_EXPECT(fd >= 0)) {
        T_EXPECT_EQ(accept_check(r->good, fd), AF_INET);
        corio_close(fd);
    }
    T_EXPECT(took < CORIO_MS(250));
    /* The families take turns: after the IPv4 hole comes the IPv6 listener, third in the
     * resolver's order, before the second, IPv4 one. Which listener accepts tells. */
    if (r->good6 >= 0) {
        fd = corio__dial_addrs(r->mixed, 3, corio_now() + CORIO_SEC(20));
        if (T_EXPECT(fd >= 0)) {
            T_EXPECT_EQ(accept_check(r->good6, fd), AF_INET6);
            corio_close(fd);
        }
    }
    /* Cancelled in mid-race, both attempts in flight (after the stagger): -ECANCELED at once,
     * every socket closed (the fd check), every future awaited before the frame goes (ASan,
     * valgrind). */
    corio_id id;
    if (!T_EXPECT_EQ(corio_spawn(&id, NULL, race_cancelled, r), 0))
        return 0;
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(400)), 0);
    t0 = corio_now();
    T_EXPECT_EQ(corio_cancel(id), 0);
    int res = 0;
    T_EXPECT_EQ(corio_join(id, &res, t0 + CORIO_SEC(5)), 0);
    T_EXPECT_EQ(res, -ECANCELED);
    T_EXPECT(corio_now() - t0 < CORIO_SEC(2));
    return 0;
}

static void test_resolve_dial_race(void **state)
{
    struct race r;
    for (int i = 0; i < 2; i++)
        if (!hole_make(&r.hole[i])) {
            hole_free(&r.hole[0]);
            if (i == 1)
                hole_free(&r.hole[1]);
            print_message("SKIP: no loopback listener here drops connection attempts (a listen "
                          "backlog of 0 held full by one connection answers, or takes none)\n");
            skip();
        }
    r.good = corio_listen_tcp("127.0.0.1", 0, 8, 0);
    assert_true(r.good >= 0);
    r.a[0] = addr_of("127.0.0.1", r.hole[0].port);
    r.a[1] = addr_of("127.0.0.1", (uint16_t)corio_local_port(r.good));
    r.a[2] = r.a[0];
    r.a[3] = addr_of("127.0.0.1", r.hole[1].port);
    r.refused[0] = addr_of("127.0.0.1", closed_port("127.0.0.1"));
    r.refused[1] = r.a[1];
    r.good6 = corio_listen_tcp("::1", 0, 8, CORIO_LISTEN_V6ONLY);
    if (r.good6 < 0)
        print_message("note: no IPv6 loopback here (%s): the families' turns are not checked\n",
                      strerror(-r.good6));
    else
        r.mixed[2] = addr_of("::1", (uint16_t)corio_local_port(r.good6));
    r.mixed[0] = r.a[0];
    r.mixed[1] = r.a[1];
    t_run_checked(state, race_body, &r);
    if (r.good6 >= 0)
        close(r.good6);
    close(r.good);
    hole_free(&r.hole[0]);
    hole_free(&r.hole[1]);
}

/* ---- a lookup that waits for a worker: deadline and cancel ---------------------------------- */

static int hold_worker(void *p)
{
    (void)p;
    struct timespec ts = {.tv_nsec = 200 * 1000000};
    nanosleep(&ts, NULL);
    return 0;
}

static int hold_body(void *p)
{
    (void)p;
    T_EXPECT_EQ(corio_blocking(hold_worker, NULL, T_BOUND), 0);
    return 0;
}

static int queued_body(void *p)
{
    (void)p;
    T_EXPECT_EQ(corio_spawn(NULL, NULL, hold_body, NULL), 0);
    t_sleep_ms(20); /* the only worker sleeps in hold_worker */
    struct sockaddr_storage ss[4];
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_resolve("localhost", 80, AF_UNSPEC, ss, 4, t0 + CORIO_MS(30)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 30);
    T_EXPECT_EQ(corio_dial_tcp("localhost", 80, corio_now() + CORIO_MS(30)), -ETIMEDOUT);
    /* Once the worker is free, lookups go through again. */
    T_EXPECT(corio_resolve("localhost", 80, AF_UNSPEC, ss, 4, T_BOUND) >= 1);
    return 0;
}

/* The lookups withdrawn at their deadline were freed by the retire hook: ASan and valgrind see
 * no leak. */
static void test_resolve_deadline_while_queued(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.blocking_threads = 1};
    struct corio_loop *l = t_mkloop(&o);
    t_run_checked((void **)&l, queued_body, NULL);
    corio_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_resolve_numeric),
        T_LOOP_FDS_TEST(test_resolve_numeric_no_worker),
        T_GUARD_TEST(test_resolve_gai_errno),
        T_LOOP_FDS_TEST(test_resolve_localhost),
        T_LOOP_FDS_TEST(test_resolve_invalid_name),
        T_LOOP_FDS_TEST(test_resolve_dial_listen_by_name),
        T_LOOP_FDS_TEST(test_resolve_dial_next_address),
        T_LOOP_FDS_TEST(test_resolve_dial_localhost_both),
        T_GUARD_TEST(test_resolve_dial_order),
        T_LOOP_FDS_TEST(test_resolve_dial_race),
        T_GUARD_TEST(test_resolve_deadline_while_queued),
    };
    return T_RUN_TESTS(tests);
}
