/* Socket operations (socket, accept, connect, send, recv, sendmsg, recvmsg, shutdown) in their
 * blocking and start forms; their errors, deadlines and cancellation; resets and SIGPIPE; the
 * listen/dial and send_all/recv_all helpers; and corio_close ending what other coroutines (and the
 * closer itself) wait for on the fd. Loopback and Unix sockets only, ports picked by the
 * kernel (port 0 + corio_local_port), so runs never collide. The high-volume tests live in
 * test_net_load.c. */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* How late a deadline may fire and still pass: loaded CI machines, sanitizers and valgrind. */
#define LATE_MS (t_on_valgrind() ? 3000.0 : 1000.0)

/* ---- fixtures and small helpers ---------------------------------------------------------------- */

static socklen_t addr4(struct sockaddr_in *a, int port)
{
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons((uint16_t)port);
    return sizeof(*a);
}

static bool cloexec(int fd)
{
    int f = fcntl(fd, F_GETFD);
    return f >= 0 && (f & FD_CLOEXEC);
}

static bool nonblock(int fd)
{
    int f = fcntl(fd, F_GETFL);
    return f >= 0 && (f & O_NONBLOCK);
}

static int sockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    return getsockopt(fd, level, name, &v, &len) == 0 ? v : -errno;
}

/* The port of @fd's peer, or -errno. */
static int peer_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

/* Accepts and closes every connection queued on listener @lfd, without waiting. Returns how many
 * there were. */
static int drain_accept_queue(int lfd)
{
    int fl = fcntl(lfd, F_GETFL);
    fcntl(lfd, F_SETFL, fl | O_NONBLOCK); /* accept4's SOCK_NONBLOCK is for the new fd only */
    int n = 0, s;
    while ((s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        close(s);
        n++;
    }
    fcntl(lfd, F_SETFL, fl);
    return n;
}

/* Sends one byte each way between @a and @b with corio calls: they are two ends of one stream. */
static void expect_linked(int a, int b)
{
    char x = 0;
    T_EXPECT_EQ(corio_send(a, "a", 1, 0, T_BOUND), 1);
    T_EXPECT_EQ(corio_recv(b, &x, 1, 0, T_BOUND), 1);
    T_EXPECT_EQ(x, 'a');
    T_EXPECT_EQ(corio_send(b, "b", 1, 0, T_BOUND), 1);
    T_EXPECT_EQ(corio_recv(a, &x, 1, 0, T_BOUND), 1);
    T_EXPECT_EQ(x, 'b');
}

/* ---- socket ----------------------------------------------------------------------------------- */

static int socket_body(void *arg)
{
    (void)arg;
    int fd = corio_socket(AF_INET, SOCK_STREAM, 0);
    if (T_EXPECT(fd >= 0)) {
        T_EXPECT(cloexec(fd));
        T_EXPECT(!nonblock(fd));
        T_EXPECT_EQ(sockopt_int(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
        T_EXPECT_EQ(sockopt_int(fd, SOL_SOCKET, SO_DOMAIN), AF_INET);
        T_EXPECT_EQ(corio_close(fd), 0);
    }
    /* The start form; type flags pass through next to the SOCK_CLOEXEC that is always added. */
    struct corio_future f;
    T_EXPECT_EQ(corio_socket_start(&f, AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0), 0);
    fd = (int)corio_await(&f, CORIO_FOREVER);
    if (T_EXPECT(fd >= 0)) {
        T_EXPECT(cloexec(fd));
        T_EXPECT(nonblock(fd));
        T_EXPECT_EQ(sockopt_int(fd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
        T_EXPECT_EQ(sockopt_int(fd, SOL_SOCKET, SO_DOMAIN), AF_UNIX);
        T_EXPECT_EQ(corio_close(fd), 0);
    }
    /* Errors are the kernel's, in both forms. A start form may fail at once (then its future is
     * complete with the same error) or later, in the kernel. */
    T_EXPECT_EQ(corio_socket(AF_INET, SOCK_STREAM, IPPROTO_UDP), -EPROTONOSUPPORT);
    T_EXPECT_EQ(corio_socket(4000, SOCK_STREAM, 0), -EAFNOSUPPORT);
    int s = corio_socket_start(&f, AF_INET, SOCK_DGRAM, IPPROTO_TCP);
    ssize_t r = corio_await(&f, CORIO_FOREVER);
    T_EXPECT(s == 0 || s == r);
    T_EXPECT_EQ(r, -EPROTONOSUPPORT);
    return 0;
}

static void test_net_socket(void **state)
{
    struct corio_loop *loop = *state;
    /* With IORING_OP_SOCKET (5.19) the ring creates it; without, socket(2) does: both pass. */
    if (!corio_loop_has(loop, CORIO_FEAT_SOCKET))
        print_message("note: no IORING_OP_SOCKET, testing the socket(2) fallback\n");
    uint64_t sqes = corio_loop_stats(loop)->sqes;
    assert_int_equal(t_run1(loop, socket_body, NULL), 0);
    t_expect_ok();
    if (corio_loop_has(loop, CORIO_FEAT_SOCKET))
        assert_true(corio_loop_stats(loop)->sqes >= sqes + 5);
    /* Outside a coroutine it may not suspend: -EPERM, and the future is complete with it. */
    struct corio_future f;
    assert_int_equal(corio_socket(AF_INET, SOCK_STREAM, 0), -EPERM);
    assert_int_equal(corio_socket_start(&f, AF_INET, SOCK_STREAM, 0), -EPERM);
    assert_true(corio_future_done(&f));
    assert_int_equal(corio_future_result(&f), -EPERM);
}

/* ---- accept, connect -------------------------------------------------------------------------- */

static int accept_connect_body(void *arg)
{
    (void)arg;
    int lfd = corio_listen_tcp("127.0.0.1", 0, 8, 0);
    if (!T_EXPECT(lfd >= 0))
        return 0;
    int port = corio_local_port(lfd);
    struct sockaddr_in to;
    socklen_t tolen = addr4(&to, port);

    /* Start form of accept, blocking form of connect; the peer's address is filled in. */
    struct sockaddr_storage peer;
    memset(&peer, 0, sizeof(peer));
    socklen_t plen = sizeof(peer);
    struct corio_future fa;
    T_EXPECT_EQ(corio_accept_start(&fa, lfd, (struct sockaddr *)&peer, &plen, 0, T_BOUND), 0);
    T_EXPECT(!corio_future_done(&fa));
    int c = corio_socket(AF_INET, SOCK_STREAM, 0);
    T_EXPECT(c >= 0);
    T_EXPECT_EQ(corio_connect(c, (struct sockaddr *)&to, tolen, T_BOUND), 0);
    int s = (int)corio_await(&fa, CORIO_FOREVER);
    if (T_EXPECT(s >= 0)) {
        T_EXPECT(cloexec(s));
        T_EXPECT(!nonblock(s));
        T_EXPECT_EQ(plen, sizeof(struct sockaddr_in));
        const struct sockaddr_in *p4 = (const struct sockaddr_in *)&peer;
        T_EXPECT_EQ(p4->sin_family, AF_INET);
        T_EXPECT_EQ(ntohl(p4->sin_addr.s_addr), INADDR_LOOPBACK);
        T_EXPECT_EQ(ntohs(p4->sin_port), corio_local_port(c));
        T_EXPECT_EQ(peer_port(c), port);
        T_EXPECT_EQ(corio_local_port(s), port);
        expect_linked(s, c);
        T_EXPECT_EQ(corio_close(s), 0);
    }

    /* Blocking accept with accept4 flags and no address, start form of connect. */
    int c2 = corio_socket(AF_INET, SOCK_STREAM, 0);
    T_EXPECT(c2 >= 0);
    struct corio_future fc;
    T_EXPECT_EQ(corio_connect_start(&fc, c2, (struct sockaddr *)&to, tolen, T_BOUND), 0);
    int s2 = corio_accept(lfd, NULL, NULL, SOCK_NONBLOCK, T_BOUND);
    T_EXPECT_EQ(corio_await(&fc, CORIO_FOREVER), 0);
    if (T_EXPECT(s2 >= 0)) {
        T_EXPECT(cloexec(s2));
        T_EXPECT(nonblock(s2));
        T_EXPECT_EQ(peer_port(s2), corio_local_port(c2));
        expect_linked(s2, c2);
        T_EXPECT_EQ(corio_close(s2), 0);
    }

    /* Connecting a connected socket, accepting on one that does not listen. */
    T_EXPECT_EQ(corio_connect(c2, (struct sockaddr *)&to, tolen, T_BOUND), -EISCONN);
    T_EXPECT_EQ(corio_accept(c2, NULL, NULL, 0, T_BOUND), -EINVAL);
    corio_close(c2);
    corio_close(c);
    corio_close(lfd);
    return 0;
}

static void test_net_accept_connect(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_ACCEPT);
    t_need(loop, CORIO_FEAT_CONNECT);
    assert_int_equal(t_run1(loop, accept_connect_body, NULL), 0);
    t_expect_ok();
}

/* ---- send, recv ------------------------------------------------------------------------------- */

static int send_recv_body(void *arg)
{
    const int *sv = arg;
    char in[64] = {0};

    /* Blocking forms. */
    T_EXPECT_EQ(corio_send(sv[1], "hello", 5, 0, T_BOUND), 5);
    T_EXPECT_EQ(corio_recv(sv[0], in, sizeof(in), 0, T_BOUND), 5);
    T_EXPECT(memcmp(in, "hello", 5) == 0);

    /* Start forms: the recv waits in the kernel until the send arrives. */
    struct corio_future fr, fs;
    memset(in, 0, sizeof(in));
    T_EXPECT_EQ(corio_recv_start(&fr, sv[1], in, sizeof(in), 0, T_BOUND), 0);
    T_EXPECT(!corio_future_done(&fr));
    T_EXPECT_EQ(corio_future_result(&fr), -EINPROGRESS);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT(!corio_future_done(&fr));
    T_EXPECT_EQ(corio_send_start(&fs, sv[0], "world!", 6, 0, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&fs, CORIO_FOREVER), 6);
    T_EXPECT_EQ(corio_await(&fr, CORIO_FOREVER), 6);
    T_EXPECT(memcmp(in, "world!", 6) == 0);
    T_EXPECT_EQ(corio_await(&fr, CORIO_FOREVER), 6); /* awaiting a completed future again */

    /* Flags pass through: MSG_PEEK leaves the bytes queued, MSG_DONTWAIT does not wait. */
    memset(in, 0, sizeof(in));
    T_EXPECT_EQ(corio_send(sv[0], "peek", 4, 0, T_BOUND), 4);
    T_EXPECT_EQ(corio_recv(sv[1], in, 4, MSG_PEEK | MSG_WAITALL, T_BOUND), 4);
    T_EXPECT_EQ(corio_recv(sv[1], in + 4, 4, 0, T_BOUND), 4);
    T_EXPECT(memcmp(in, "peekpeek", 8) == 0);
    T_EXPECT_EQ(corio_recv(sv[1], in, sizeof(in), MSG_DONTWAIT, T_BOUND), -EAGAIN);

    /* A zero-length send completes with 0. */
    T_EXPECT_EQ(corio_send(sv[0], "", 0, 0, T_BOUND), 0);

    /* A larger transfer, both forms at once, in both directions. */
    static char big_out[2][256 * 1024], big_in[2][256 * 1024];
    t_fill(big_out[0], sizeof(big_out[0]), 11, 0);
    t_fill(big_out[1], sizeof(big_out[1]), 12, 0);
    memset(big_in, 0, sizeof(big_in));
    struct corio_future fr2;
    T_EXPECT_EQ(corio_recv_start(&fr2, sv[0], big_in[1], sizeof(big_in[1]), MSG_WAITALL, T_BOUND),
                0);
    T_EXPECT_EQ(corio_send_start(&fs, sv[1], big_out[1], sizeof(big_out[1]), MSG_WAITALL, T_BOUND),
                0);
    T_EXPECT_EQ(corio_send_all(sv[0], big_out[0], sizeof(big_out[0]), NULL, T_BOUND),
                sizeof(big_out[0]));
    T_EXPECT_EQ(corio_recv(sv[1], big_in[0], sizeof(big_in[0]), MSG_WAITALL, T_BOUND),
                sizeof(big_in[0]));
    T_EXPECT_EQ(corio_await(&fs, CORIO_FOREVER), sizeof(big_out[1]));
    T_EXPECT_EQ(corio_await(&fr2, CORIO_FOREVER), sizeof(big_in[1]));
    T_EXPECT_EQ(t_check(big_in[0], sizeof(big_in[0]), 11, 0), -1);
    T_EXPECT_EQ(t_check(big_in[1], sizeof(big_in[1]), 12, 0), -1);
    return 0;
}

static void test_net_send_recv(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SEND);
    t_need(loop, CORIO_FEAT_RECV);
    int sv[2];
    assert_int_equal(t_tcp_pair(sv), 0);
    assert_int_equal(t_run1(loop, send_recv_body, sv), 0);
    close(sv[0]);
    close(sv[1]);
    t_expect_ok();
    /* Outside a coroutine: -EPERM, nothing submitted. */
    char b;
    assert_int_equal(corio_recv(sv[0], &b, 1, 0, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_send(sv[0], &b, 1, 0, CORIO_FOREVER), -EPERM);
}

/* ---- sendmsg, recvmsg ------------------------------------------------------------------------- */

static int msg_body(void *arg)
{
    const int *sv = arg;

    /* Three iovecs out, two of other sizes in: the stream joins them. */
    char o1[] = "one-", o2[] = "two-", o3[] = "three";
    struct iovec out[3] = {{o1, 4}, {o2, 4}, {o3, 5}};
    struct msghdr mo = {.msg_iov = out, .msg_iovlen = 3};
    char x[6] = {0}, y[7] = {0};
    struct iovec in[2] = {{x, sizeof(x)}, {y, sizeof(y)}};
    struct msghdr mi = {.msg_iov = in, .msg_iovlen = 2};
    T_EXPECT_EQ(corio_sendmsg(sv[1], &mo, 0, T_BOUND), 13);
    T_EXPECT_EQ(corio_recvmsg(sv[0], &mi, MSG_WAITALL, T_BOUND), 13);
    T_EXPECT(memcmp(x, "one-tw", 6) == 0);
    T_EXPECT(memcmp(y, "o-three", 7) == 0);

    /* Start forms, the other way, the recvmsg parked first. */
    memset(x, 0, sizeof(x));
    memset(y, 0, sizeof(y));
    struct corio_future fr, fs;
    T_EXPECT_EQ(corio_recvmsg_start(&fr, sv[1], &mi, MSG_WAITALL, T_BOUND), 0);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT(!corio_future_done(&fr));
    T_EXPECT_EQ(corio_sendmsg_start(&fs, sv[0], &mo, 0, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&fs, CORIO_FOREVER), 13);
    T_EXPECT_EQ(corio_await(&fr, CORIO_FOREVER), 13);
    T_EXPECT(memcmp(x, "one-tw", 6) == 0);
    T_EXPECT(memcmp(y, "o-three", 7) == 0);

    /* UDP: msg_name names the destination on the way out and reports the source on the way in;
     * a datagram larger than the iovecs is cut, with MSG_TRUNC in msg_flags. */
    int u1 = corio_socket(AF_INET, SOCK_DGRAM, 0);
    int u2 = corio_socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a1, a2;
    addr4(&a1, 0);
    addr4(&a2, 0);
    T_EXPECT(u1 >= 0 && u2 >= 0);
    T_EXPECT_EQ(bind(u1, (struct sockaddr *)&a1, sizeof(a1)), 0);
    T_EXPECT_EQ(bind(u2, (struct sockaddr *)&a2, sizeof(a2)), 0);
    addr4(&a2, corio_local_port(u2));
    struct msghdr md = {.msg_name = &a2, .msg_namelen = sizeof(a2), .msg_iov = out,
                        .msg_iovlen = 3};
    T_EXPECT_EQ(corio_sendmsg(u1, &md, 0, T_BOUND), 13);
    struct sockaddr_in src;
    memset(&src, 0, sizeof(src));
    memset(x, 0, sizeof(x));
    memset(y, 0, sizeof(y));
    struct msghdr mr = {.msg_name = &src, .msg_namelen = sizeof(src), .msg_iov = in,
                        .msg_iovlen = 2};
    T_EXPECT_EQ(corio_recvmsg(u2, &mr, 0, T_BOUND), 13);
    T_EXPECT_EQ(mr.msg_namelen, sizeof(src));
    T_EXPECT_EQ(src.sin_family, AF_INET);
    T_EXPECT_EQ(ntohs(src.sin_port), corio_local_port(u1));
    T_EXPECT_EQ(mr.msg_flags & MSG_TRUNC, 0);
    T_EXPECT(memcmp(x, "one-tw", 6) == 0 && memcmp(y, "o-three", 7) == 0);
    T_EXPECT_EQ(corio_sendmsg(u1, &md, 0, T_BOUND), 13);
    mr.msg_iovlen = 1;
    mr.msg_namelen = sizeof(src);
    T_EXPECT_EQ(corio_recvmsg(u2, &mr, 0, T_BOUND), 6);
    T_EXPECT(mr.msg_flags & MSG_TRUNC);
    corio_close(u1);
    corio_close(u2);
    return 0;
}

static void test_net_sendmsg_recvmsg(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SENDMSG);
    t_need(loop, CORIO_FEAT_RECVMSG);
    int sv[2];
    assert_int_equal(t_tcp_pair(sv), 0);
    assert_int_equal(t_run1(loop, msg_body, sv), 0);
    close(sv[0]);
    close(sv[1]);
    t_expect_ok();
}

/* An fd passed with SCM_RIGHTS over a Unix socket arrives as a new fd of this process. */
static int scm_body(void *arg)
{
    const int *sv = arg;
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return 0;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cout, cin;
    memset(&cout, 0, sizeof(cout));
    memset(&cin, 0, sizeof(cin));
    char byte = 'F';
    struct iovec iov = {&byte, 1};
    struct msghdr mo = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cout.buf,
                        .msg_controllen = sizeof(cout.buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mo);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
    T_EXPECT_EQ(corio_sendmsg(sv[0], &mo, 0, T_BOUND), 1);

    char got = 0;
    struct iovec iin = {&got, 1};
    struct msghdr mi = {.msg_iov = &iin, .msg_iovlen = 1, .msg_control = cin.buf,
                        .msg_controllen = sizeof(cin.buf)};
    T_EXPECT_EQ(corio_recvmsg(sv[1], &mi, MSG_CMSG_CLOEXEC, T_BOUND), 1);
    T_EXPECT_EQ(got, 'F');
    T_EXPECT_EQ(mi.msg_flags & MSG_CTRUNC, 0);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mi);
    int fd = -1;
    if (T_EXPECT(c != NULL) && T_EXPECT_EQ(c->cmsg_type, SCM_RIGHTS)) {
        memcpy(&fd, CMSG_DATA(c), sizeof(int));
        T_EXPECT(fd >= 0 && fd != p[1]);
        T_EXPECT(cloexec(fd));
        /* It is the pipe's write end: what goes in comes out of p[0]. */
        T_EXPECT_EQ(corio_write(fd, "z", 1, -1, T_BOUND), 1);
        char z = 0;
        T_EXPECT_EQ(corio_read(p[0], &z, 1, -1, T_BOUND), 1);
        T_EXPECT_EQ(z, 'z');
        corio_close(fd);
    }
    corio_close(p[0]);
    corio_close(p[1]);
    return 0;
}

static void test_net_sendmsg_scm_rights(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SENDMSG);
    t_need(loop, CORIO_FEAT_RECVMSG);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(t_run1(loop, scm_body, sv), 0);
    close(sv[0]);
    close(sv[1]);
    t_expect_ok();
}

/* ---- shutdown --------------------------------------------------------------------------------- */

static int shutdown_body(void *arg)
{
    const int *sv = arg;
    char buf[16] = {0};

    /* A recv parked before the peer's SHUT_WR wakes with 0, end of stream; and stays there. */
    struct corio_future fr;
    T_EXPECT_EQ(corio_recv_start(&fr, sv[0], buf, sizeof(buf), 0, T_BOUND), 0);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT(!corio_future_done(&fr));
    T_EXPECT_EQ(corio_shutdown(sv[1], SHUT_WR), 0);
    T_EXPECT_EQ(corio_await(&fr, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_recv(sv[0], buf, sizeof(buf), 0, T_BOUND), 0);

    /* A half close: the other direction still works. */
    T_EXPECT_EQ(corio_send(sv[0], "back", 4, 0, T_BOUND), 4);
    T_EXPECT_EQ(corio_recv(sv[1], buf, 4, MSG_WAITALL, T_BOUND), 4);
    T_EXPECT(memcmp(buf, "back", 4) == 0);

    /* Sending after our own SHUT_WR: -EPIPE, and MSG_NOSIGNAL kept SIGPIPE away. */
    T_EXPECT_EQ(corio_send(sv[1], "x", 1, 0, T_BOUND), -EPIPE);
    T_EXPECT(!t_sigpipe_pending());

    /* The start form, the other direction: the peer reads data, then end of stream. */
    T_EXPECT_EQ(corio_send(sv[0], "last", 4, 0, T_BOUND), 4);
    struct corio_future fs;
    T_EXPECT_EQ(corio_shutdown_start(&fs, sv[0], SHUT_WR), 0);
    T_EXPECT_EQ(corio_await(&fs, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_recv(sv[1], buf, 4, MSG_WAITALL, T_BOUND), 4);
    T_EXPECT(memcmp(buf, "last", 4) == 0);
    T_EXPECT_EQ(corio_recv(sv[1], buf, sizeof(buf), 0, T_BOUND), 0);

    /* Errors: a bad @how; a socket that is not connected. */
    T_EXPECT_EQ(corio_shutdown(sv[0], 7), -EINVAL);
    int u = corio_socket(AF_INET, SOCK_STREAM, 0);
    T_EXPECT(u >= 0);
    T_EXPECT_EQ(corio_shutdown(u, SHUT_RDWR), -ENOTCONN);
    corio_close(u);
    return 0;
}

static void test_net_shutdown_eof(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SHUTDOWN);
    t_assert_sigpipe_default();
    int sv[2];
    assert_int_equal(t_tcp_pair(sv), 0);
    assert_int_equal(t_run1(loop, shutdown_body, sv), 0);
    close(sv[0]);
    close(sv[1]);
    t_expect_ok();
}

/* ---- errors: refused, bad fds, not sockets ---------------------------------------------------- */

struct refused {
    int port; /* a port bound on 127.0.0.1 with nobody listening */
};

static int refused_body(void *arg)
{
    const struct refused *rf = arg;
    int fds0 = t_count_fds();
    struct sockaddr_in to;
    socklen_t tolen = addr4(&to, rf->port);
    int c = corio_socket(AF_INET, SOCK_STREAM, 0);
    T_EXPECT(c >= 0);
    T_EXPECT_EQ(corio_connect(c, (struct sockaddr *)&to, tolen, T_BOUND), -ECONNREFUSED);
    corio_close(c);
    c = corio_socket(AF_INET, SOCK_STREAM, 0);
    struct corio_future f;
    T_EXPECT_EQ(corio_connect_start(&f, c, (struct sockaddr *)&to, tolen, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ECONNREFUSED);
    corio_close(c);
    /* The dial helper closes the socket it made. */
    T_EXPECT_EQ(corio_dial_tcp("127.0.0.1", (uint16_t)rf->port, T_BOUND), -ECONNREFUSED);
    T_EXPECT_EQ(t_count_fds(), fds0);
    return 0;
}

static void test_net_connect_refused(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_CONNECT);
    /* Bound but not listening: the port stays ours, and a SYN to it is answered by a RST. */
    int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(b >= 0);
    struct sockaddr_in a;
    addr4(&a, 0);
    assert_int_equal(bind(b, (struct sockaddr *)&a, sizeof(a)), 0);
    struct refused rf = {.port = corio_local_port(b)};
    assert_true(rf.port > 0);
    assert_int_equal(t_run1(loop, refused_body, &rf), 0);
    close(b);
    t_expect_ok();
}

struct badfd {
    int closed; /* an fd number that was just closed */
    int pipe_rd; /* not a socket */
};

static int badfd_body(void *arg)
{
    const struct badfd *b = arg;
    char buf[8] = {0};
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    struct sockaddr_in to;
    socklen_t tolen = addr4(&to, 9);
    struct corio_future f;

    int fds[2] = {b->closed, b->pipe_rd};
    int errs[2] = {-EBADF, -ENOTSOCK};
    for (int i = 0; i < 2; i++) {
        int fd = fds[i], e = errs[i];
        T_EXPECT_EQ(corio_recv(fd, buf, sizeof(buf), 0, T_BOUND), e);
        T_EXPECT_EQ(corio_send(fd, "x", 1, 0, T_BOUND), e);
        T_EXPECT_EQ(corio_recv(fd, buf, sizeof(buf), 0, CORIO_FOREVER), e);
        T_EXPECT_EQ(corio_send(fd, "x", 1, 0, CORIO_FOREVER), e);
        T_EXPECT_EQ(corio_recvmsg(fd, &m, 0, T_BOUND), e);
        T_EXPECT_EQ(corio_sendmsg(fd, &m, 0, T_BOUND), e);
        T_EXPECT_EQ(corio_accept(fd, NULL, NULL, 0, T_BOUND), e);
        T_EXPECT_EQ(corio_connect(fd, (struct sockaddr *)&to, tolen, T_BOUND), e);
        T_EXPECT_EQ(corio_shutdown(fd, SHUT_RDWR), e);
        /* Start forms: a start that fails at once completes its future with the error. */
        int s = corio_recv_start(&f, fd, buf, sizeof(buf), 0, T_BOUND);
        T_EXPECT(s == 0 || s == e);
        T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), e);
        s = corio_send_start(&f, fd, "x", 1, 0, T_BOUND);
        T_EXPECT(s == 0 || s == e);
        T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), e);
    }
    T_EXPECT_EQ(corio_local_port(b->closed), -EBADF);
    T_EXPECT_EQ(corio_local_port(b->pipe_rd), -ENOTSOCK);
    T_EXPECT_EQ(corio_close(b->closed), -EBADF);
    return 0;
}

static void test_net_bad_fd(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SEND);
    t_need(loop, CORIO_FEAT_RECV);
    int p[2];
    assert_int_equal(t_pipe(p, 0), 0);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    close(s);
    /* Nothing in this single-threaded test opens an fd before the ops run. */
    assert_int_equal(fcntl(s, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    struct badfd b = {.closed = s, .pipe_rd = p[0]};
    assert_int_equal(t_run1(loop, badfd_body, &b), 0);
    close(p[0]);
    close(p[1]);
    t_expect_ok();
}

/* ---- deadlines -------------------------------------------------------------------------------- */

static int recv_deadline_body(void *arg)
{
    const int *sv = arg;
    char buf[16] = {0};

    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_recv(sv[0], buf, sizeof(buf), 0, t0 + CORIO_MS(50)), -ETIMEDOUT);
    double ms = t_ms_since(t0);
    T_EXPECT(ms >= 50.0);
    T_EXPECT(ms < 50.0 + LATE_MS);

    /* The start form. */
    struct corio_future f;
    t0 = corio_now();
    T_EXPECT_EQ(corio_recv_start(&f, sv[0], buf, sizeof(buf), 0, t0 + CORIO_MS(30)), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ETIMEDOUT);
    ms = t_ms_since(t0);
    T_EXPECT(ms >= 30.0 && ms < 30.0 + LATE_MS);

    /* A deadline already past fails at once, without waiting. */
    t0 = corio_now();
    T_EXPECT_EQ(corio_recv(sv[0], buf, sizeof(buf), 0, corio_now() - 1), -ETIMEDOUT);
    T_EXPECT_EQ(corio_recv(sv[0], buf, sizeof(buf), 0, 0), -ETIMEDOUT);
    T_EXPECT(t_ms_since(t0) < LATE_MS);

    /* The recvs that timed out took nothing: bytes sent now are all there. And a recv whose
     * data arrives before its deadline is not touched by it. */
    T_EXPECT_EQ(corio_send(sv[1], "late", 4, 0, T_BOUND), 4);
    T_EXPECT_EQ(corio_recv(sv[0], buf, 4, MSG_WAITALL, corio_now() + CORIO_MS(5000)), 4);
    T_EXPECT(memcmp(buf, "late", 4) == 0);
    return 0;
}

static void test_net_recv_deadline(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_RECV);
    t_need(loop, CORIO_FEAT_LINK_TIMEOUT);
    int sv[2];
    assert_int_equal(t_tcp_pair(sv), 0);
    assert_int_equal(t_run1(loop, recv_deadline_body, sv), 0);
    close(sv[0]);
    close(sv[1]);
    t_expect_ok();
}

static int accept_deadline_body(void *arg)
{
    int lfd = *(const int *)arg;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_accept(lfd, NULL, NULL, 0, t0 + CORIO_MS(50)), -ETIMEDOUT);
    double ms = t_ms_since(t0);
    T_EXPECT(ms >= 50.0 && ms < 50.0 + LATE_MS);

    struct corio_future f;
    t0 = corio_now();
    T_EXPECT_EQ(corio_accept_start(&f, lfd, NULL, NULL, 0, t0 + CORIO_MS(20)), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ETIMEDOUT);
    ms = t_ms_since(t0);
    T_EXPECT(ms >= 20.0 && ms < 20.0 + LATE_MS);

    /* The timed-out accepts swallowed no connection: the next one is accepted. */
    int c = corio_dial_tcp("127.0.0.1", (uint16_t)corio_local_port(lfd), T_BOUND);
    int s = corio_accept(lfd, NULL, NULL, 0, corio_now() + CORIO_MS(5000));
    T_EXPECT(c >= 0 && s >= 0);
    if (c >= 0 && s >= 0)
        expect_linked(s, c);
    corio_close(c);
    corio_close(s);
    return 0;
}

static void test_net_accept_deadline(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_ACCEPT);
    t_need(loop, CORIO_FEAT_LINK_TIMEOUT);
    int lfd = corio_listen_tcp("127.0.0.1", 0, 8, 0);
    assert_true(lfd >= 0);
    assert_int_equal(t_run1(loop, accept_deadline_body, &lfd), 0);
    close(lfd);
    t_expect_ok();
}

/* ---- a listener whose accept queue is full: connects to it wait ------------------------------- */

/* Linux drops a SYN to a listener whose accept queue is full (sk_acceptq_is_full: more queued
 * than the backlog), and the client retransmits it after 1 s, 3 s, ...: a connect to it stays in
 * flight. With backlog 1 two connections fill the queue; backlog 0 would need SYN cookies. */
struct full_listener {
    int lfd;
    int port;
    int fillers[2];
};

static void full_listener_open(struct full_listener *fl)
{
    fl->lfd = corio_listen_tcp("127.0.0.1", 0, 1, 0);
    assert_true(fl->lfd >= 0);
    fl->port = corio_local_port(fl->lfd);
    struct sockaddr_in a;
    addr4(&a, fl->port);
    for (int i = 0; i < 2; i++) {
        fl->fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fl->fillers[i] >= 0);
        assert_int_equal(connect(fl->fillers[i], (struct sockaddr *)&a, sizeof(a)), 0);
    }
    /* The handshake's last ACK reaches the listener in softirq context: wait for it. */
    for (int i = 0; i < 2000 && !t_accept_queue_full(fl->lfd); i++)
        usleep(1000);
    if (!t_accept_queue_full(fl->lfd)) {
        print_message("SKIP: could not fill a listener's accept queue\n");
        for (int i = 0; i < 2; i++)
            close(fl->fillers[i]);
        close(fl->lfd);
        skip();
    }
}

static void full_listener_close(struct full_listener *fl)
{
    for (int i = 0; i < 2; i++)
        close(fl->fillers[i]);
    close(fl->lfd);
}

static int connect_deadline_body(void *arg)
{
    const struct full_listener *fl = arg;
    struct sockaddr_in to;
    socklen_t tolen = addr4(&to, fl->port);
    int c = corio_socket(AF_INET, SOCK_STREAM, 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_connect(c, (struct sockaddr *)&to, tolen, t0 + CORIO_MS(50)), -ETIMEDOUT);
    double ms = t_ms_since(t0);
    T_EXPECT(ms >= 50.0 && ms < 50.0 + LATE_MS);
    corio_close(c);

    c = corio_socket(AF_INET, SOCK_STREAM, 0);
    struct corio_future f;
    t0 = corio_now();
    T_EXPECT_EQ(corio_connect_start(&f, c, (struct sockaddr *)&to, tolen, t0 + CORIO_MS(20)), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ETIMEDOUT);
    ms = t_ms_since(t0);
    T_EXPECT(ms >= 20.0 && ms < 20.0 + LATE_MS);
    corio_close(c);

    /* The dial helper passes its deadline on, and closes its socket. */
    int fds0 = t_count_fds();
    t0 = corio_now();
    T_EXPECT_EQ(corio_dial_tcp("127.0.0.1", (uint16_t)fl->port, t0 + CORIO_MS(30)), -ETIMEDOUT);
    T_EXPECT(t_ms_since(t0) >= 30.0);
    T_EXPECT_EQ(t_count_fds(), fds0);
    return 0;
}

static void test_net_connect_deadline(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_CONNECT);
    t_need(loop, CORIO_FEAT_LINK_TIMEOUT);
    struct full_listener fl;
    full_listener_open(&fl);
    assert_int_equal(t_run1(loop, connect_deadline_body, &fl), 0);
    full_listener_close(&fl);
    t_expect_ok();
}

/* ---- cancellation of a coroutine parked in accept, recv, connect ------------------------------ */

enum park_kind { PARK_ACCEPT, PARK_RECV, PARK_CONNECT, PARK_RECV_START, PARK_DIAL };

struct parked {
    enum park_kind kind;
    int fd;                  /* the listener (accept), the socket (recv, connect) */
    struct sockaddr_in to;   /* connect, dial */
    int full_lfd;            /* connect, dial: the full listener, or -1 */
    int result;              /* what the parked call returned */
    int after;               /* what a later call that would suspend returned */
    int closed;              /* corio_close still works once cancelled */
    int64_t woken;           /* when the parked call returned */
};

static int parked_body(void *arg)
{
    struct parked *p = arg;
    char buf[16] = {0};
    struct corio_future f;
    switch (p->kind) {
    case PARK_ACCEPT:
        p->result = corio_accept(p->fd, NULL, NULL, 0, CORIO_FOREVER);
        break;
    case PARK_RECV:
        p->result = (int)corio_recv(p->fd, buf, sizeof(buf), 0, CORIO_FOREVER);
        break;
    case PARK_CONNECT:
        p->result = corio_connect(p->fd, (struct sockaddr *)&p->to, sizeof(p->to), CORIO_FOREVER);
        break;
    case PARK_DIAL:
        /* Cancelled inside the helper: it must still close the socket it made. */
        p->result = corio_dial_tcp("127.0.0.1", ntohs(p->to.sin_port), CORIO_FOREVER);
        if (p->result >= 0)
            corio_close(p->result);
        break;
    case PARK_RECV_START:
        /* Cancelling the coroutine while it awaits a started op cancels that op. */
        corio_recv_start(&f, p->fd, buf, sizeof(buf), 0, CORIO_FOREVER);
        p->result = (int)corio_await(&f, CORIO_FOREVER);
        break;
    }
    p->woken = corio_now();
    /* Once cancelled, every call that would suspend fails at once, except corio_close. */
    p->after = (int)corio_recv(p->fd, buf, sizeof(buf), 0, CORIO_FOREVER);
    int dup_fd = dup(p->fd);
    p->closed = corio_close(dup_fd);
    return 7;
}

/* Wakes a parked op some other way if the cancel did not work, so that a failing test ends. */
static void unstick(struct parked *p)
{
    shutdown(p->fd, SHUT_RDWR);
    /* A connect waits for room in the accept queue: make some (the SYN is resent within 1 s). */
    if (p->full_lfd >= 0)
        drain_accept_queue(p->full_lfd);
}

static int cancel_driver(void *arg)
{
    struct parked *p = arg;
    corio_id id;
    if (!T_EXPECT_EQ(corio_spawn(&id, NULL, parked_body, p), 0))
        return 0;
    /* Let it park, in the kernel. */
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(20)), 0);
    T_EXPECT_EQ(p->woken, 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_cancel(id), 0);
    int res = -1;
    int j = corio_join(id, &res, corio_now() + CORIO_SEC(5));
    if (!T_EXPECT_EQ(j, 0)) {
        unstick(p);
        corio_join(id, &res, CORIO_FOREVER);
    }
    T_EXPECT_EQ(res, 7);
    T_EXPECT_EQ(p->result, -ECANCELED);
    T_EXPECT_EQ(p->after, -ECANCELED);
    T_EXPECT_EQ(p->closed, 0);
    T_EXPECT((double)(p->woken - t0) / 1e6 < LATE_MS);
    T_EXPECT_EQ(corio_cancel(id), -ESRCH);
    return 0;
}

static void test_net_accept_cancel(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_ACCEPT);
    t_need(loop, CORIO_FEAT_ASYNC_CANCEL);
    struct parked p = {.kind = PARK_ACCEPT, .fd = corio_listen_tcp("127.0.0.1", 0, 8, 0),
                       .full_lfd = -1};
    assert_true(p.fd >= 0);
    assert_int_equal(t_run1(loop, cancel_driver, &p), 0);
    t_expect_ok();
    /* The cancelled accept took no connection: one made now is still there to accept. */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    addr4(&a, corio_local_port(p.fd));
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    int s = accept4(p.fd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(s >= 0);
    close(s);
    close(c);
    close(p.fd);
}

static void test_net_recv_cancel(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_RECV);
    t_need(loop, CORIO_FEAT_ASYNC_CANCEL);
    for (int k = 0; k < 2; k++) {
        int sv[2];
        assert_int_equal(t_tcp_pair(sv), 0);
        struct parked p = {.kind = k ? PARK_RECV_START : PARK_RECV, .fd = sv[0], .full_lfd = -1};
        assert_int_equal(t_run1(loop, cancel_driver, &p), 0);
        t_expect_ok();
        /* The cancelled recv consumed nothing. */
        assert_int_equal(send(sv[1], "q", 1, MSG_NOSIGNAL), 1);
        char b = 0;
        assert_int_equal(recv(sv[0], &b, 1, 0), 1);
        assert_int_equal(b, 'q');
        close(sv[0]);
        close(sv[1]);
    }
}

static void test_net_connect_cancel(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_CONNECT);
    t_need(loop, CORIO_FEAT_ASYNC_CANCEL);
    struct full_listener fl;
    full_listener_open(&fl);
    for (int k = 0; k < 2; k++) {
        /* corio_connect, then corio_dial_tcp (whose own socket the fd check of the teardown
         * covers); p.fd is the connect's socket, and for the dial a spare one. */
        struct parked p = {.kind = k ? PARK_DIAL : PARK_CONNECT,
                           .fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0),
                           .full_lfd = fl.lfd};
        assert_true(p.fd >= 0);
        addr4(&p.to, fl.port);
        assert_int_equal(t_run1(loop, cancel_driver, &p), 0);
        close(p.fd);
        t_expect_ok();
    }
    full_listener_close(&fl);
}

/* A coroutine that ends with a recv and an accept still in flight: the loop cancels them and
 * waits for their CQEs before the coroutine's stack (which holds the recv's buffer) is reused. */
struct unawaited {
    int sv[2];
    int lfd;
};

static int unawaited_body(void *arg)
{
    const struct unawaited *u = arg;
    char buf[16] = {0};
    struct corio_future fr, fa;
    T_EXPECT_EQ(corio_recv_start(&fr, u->sv[0], buf, sizeof(buf), 0, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_accept_start(&fa, u->lfd, NULL, NULL, 0, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT(!corio_future_done(&fr) && !corio_future_done(&fa));
    return 5;
}

static void test_net_unawaited_ops_drained(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_RECV);
    t_need(loop, CORIO_FEAT_ACCEPT);
    t_need(loop, CORIO_FEAT_ASYNC_CANCEL);
    struct unawaited u;
    assert_int_equal(t_tcp_pair(u.sv), 0);
    u.lfd = corio_listen_tcp("127.0.0.1", 0, 8, 0);
    assert_true(u.lfd >= 0);
    int64_t t0 = corio_now();
    assert_int_equal(t_run1(loop, unawaited_body, &u), 5);
    assert_true(t_ms_since(t0) < LATE_MS);
    t_expect_ok();
    /* Neither took anything: a byte sent now, and a connection made now, are still there. */
    assert_int_equal(send(u.sv[1], "q", 1, MSG_NOSIGNAL), 1);
    char b = 0;
    assert_int_equal(recv(u.sv[0], &b, 1, 0), 1);
    assert_int_equal(b, 'q');
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    addr4(&a, corio_local_port(u.lfd));
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    int s = accept4(u.lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(s >= 0);
    close(s);
    close(c);
    close(u.lfd);
    close(u.sv[0]);
    close(u.sv[1]);
}

/* A started op cancelled through its future, by its owner. */
static int future_cancel_body(void *arg)
{
    const int *sv = arg;
    char buf[8] = {0};
    struct corio_future f;
    T_EXPECT_EQ(corio_recv_start(&f, sv[0], buf, sizeof(buf), 0, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT_EQ(corio_future_cancel(&f), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ECANCELED);
    T_EXPECT_EQ(corio_future_cancel(&f), -EALREADY);
    /* The coroutine itself is not cancelled: its next recv works. */
    T_EXPECT(!corio_cancelled());
    T_EXPECT_EQ(corio_send(sv[1], "ok", 2, 0, T_BOUND), 2);
    T_EXPECT_EQ(corio_recv(sv[0], buf, 2, MSG_WAITALL, T_BOUND), 2);
    return 0;
}

static void test_net_recv_future_cancel(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_RECV);
    t_need(loop, CORIO_FEAT_ASYNC_CANCEL);
    int sv[2];
    assert_int_equal(t_tcp_pair(sv), 0);
    assert_int_equal(t_run1(loop, future_cancel_body, sv), 0);
    close(sv[0]);
    close(sv[1]);
    t_expect_ok();
}

/* ---- a peer that reset the connection --------------------------------------------------------- */

static int send_reset_body(void *arg)
{
    const int *sv = arg;
    static char buf[4096];
    /* The RST normally arrives within close(2) on loopback; allow it a moment anyway. The first
     * failing send reports the reset itself (-ECONNRESET) or, once that was consumed, -EPIPE;
     * the sends after it get -EPIPE, which without MSG_NOSIGNAL would also raise SIGPIPE. */
    int first = 0, pipes = 0;
    for (int i = 0; i < 200 && pipes < 3; i++) {
        ssize_t r = corio_send(sv[0], buf, sizeof(buf), 0, T_BOUND);
        if (r >= 0) {
            T_EXPECT_EQ(first, 0);
            corio_sleep(corio_now() + CORIO_MS(5));
            continue;
        }
        if (!first)
            first = (int)r;
        else
            T_EXPECT_EQ(r, -EPIPE);
        if (r == -EPIPE)
            pipes++;
    }
    T_EXPECT(first == -ECONNRESET || first == -EPIPE);
    T_EXPECT(pipes >= 2);
    /* sendmsg has MSG_NOSIGNAL too. */
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    T_EXPECT_EQ(corio_sendmsg(sv[0], &m, 0, T_BOUND), -EPIPE);
    struct corio_future f;
    T_EXPECT_EQ(corio_send_start(&f, sv[0], buf, sizeof(buf), 0, T_BOUND), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -EPIPE);
    T_EXPECT(!t_sigpipe_pending());
    return 0;
}

static void test_net_send_after_reset(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SEND);
    t_need(loop, CORIO_FEAT_SENDMSG);
    /* With SIGPIPE at its default action the process would die here if a send raised it. Note
     * that recent kernels' io_uring adds MSG_NOSIGNAL to IORING_OP_SEND/SENDMSG by itself
     * (io_sendmsg_prep in io_uring/net.c), so there this checks the contract, and only older
     * kernels depend on the MSG_NOSIGNAL that corio adds. */
    t_assert_sigpipe_default();
    int sv[2];
    assert_int_equal(t_tcp_pair(sv), 0);
    assert_int_equal(t_set_linger0(sv[1]), 0);
    close(sv[1]);
    assert_int_equal(t_run1(loop, send_reset_body, sv), 0);
    close(sv[0]);
    t_expect_ok();
}

struct reset_ctx {
    int sv[2];
    int parked_result;
};

static int reset_parked(void *arg)
{
    struct reset_ctx *c = arg;
    char buf[16] = {0};
    c->parked_result = (int)corio_recv(c->sv[0], buf, sizeof(buf), 0, T_BOUND);
    return 0;
}

static int recv_reset_body(void *arg)
{
    struct reset_ctx *c = arg;
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, reset_parked, c), 0);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0);
    /* The peer resets while the recv is parked in the kernel: it wakes with -ECONNRESET. */
    assert_int_equal(t_set_linger0(c->sv[1]), 0);
    T_EXPECT_EQ(corio_close(c->sv[1]), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(c->parked_result, -ECONNRESET);
    return 0;
}

static int recv_after_reset_body(void *arg)
{
    struct reset_ctx *c = arg;
    char buf[16] = {0};
    /* The reset arrived before the recv was made: -ECONNRESET, reported once. */
    T_EXPECT_EQ(corio_recv(c->sv[0], buf, sizeof(buf), 0, T_BOUND), -ECONNRESET);
    T_EXPECT_EQ(corio_recv(c->sv[0], buf, sizeof(buf), 0, T_BOUND), 0);
    return 0;
}

static void test_net_recv_after_reset(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_RECV);
    struct reset_ctx c;
    assert_int_equal(t_tcp_pair(c.sv), 0);
    assert_int_equal(t_run1(loop, recv_reset_body, &c), 0);
    close(c.sv[0]);
    t_expect_ok();

    assert_int_equal(t_tcp_pair(c.sv), 0);
    assert_int_equal(t_set_linger0(c.sv[1]), 0);
    close(c.sv[1]);
    assert_int_equal(t_run1(loop, recv_after_reset_body, &c), 0);
    close(c.sv[0]);
    t_expect_ok();
}

/* ---- listen and dial helpers ------------------------------------------------------------------ */

struct dial_ctx {
    int lfd;
    const char *host;  /* for corio_dial_tcp; NULL: Unix */
    const char *path;  /* for corio_dial_unix */
    int family;        /* expected peer family */
};

static int dial_body(void *arg)
{
    const struct dial_ctx *d = arg;
    int port = d->path ? 0 : corio_local_port(d->lfd);
    if (!d->path)
        T_EXPECT(port > 0);
    int c = d->path ? corio_dial_unix(d->path, T_BOUND)
                    : corio_dial_tcp(d->host, (uint16_t)port, T_BOUND);
    if (!T_EXPECT(c >= 0))
        return 0;
    struct sockaddr_storage peer;
    memset(&peer, 0, sizeof(peer));
    socklen_t plen = sizeof(peer);
    int s = corio_accept(d->lfd, (struct sockaddr *)&peer, &plen, 0, T_BOUND);
    if (T_EXPECT(s >= 0)) {
        T_EXPECT_EQ(peer.ss_family, d->family);
        T_EXPECT(cloexec(c));
        T_EXPECT(!nonblock(c));
        if (d->family == AF_INET6) {
            const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)&peer;
            T_EXPECT_EQ(plen, sizeof(*p6));
            if (strchr(d->host, ':')) {
                T_EXPECT(IN6_IS_ADDR_LOOPBACK(&p6->sin6_addr));
            } else {
                /* An IPv4 client of a dual-stack listener: ::ffff:127.0.0.1. */
                static const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff, [12] = 127, [15] = 1};
                T_EXPECT(memcmp(&p6->sin6_addr, mapped, 16) == 0);
            }
            T_EXPECT_EQ(ntohs(p6->sin6_port), corio_local_port(c));
        } else if (d->family == AF_INET) {
            const struct sockaddr_in *p4 = (const struct sockaddr_in *)&peer;
            T_EXPECT_EQ(plen, sizeof(*p4));
            T_EXPECT_EQ(ntohl(p4->sin_addr.s_addr), INADDR_LOOPBACK);
            T_EXPECT_EQ(ntohs(p4->sin_port), corio_local_port(c));
        }
        if (!d->path)
            T_EXPECT_EQ(sockopt_int(c, IPPROTO_TCP, TCP_NODELAY), 1);
        T_EXPECT_EQ(peer_port(c), d->path ? -EAFNOSUPPORT : port);
        expect_linked(s, c);
        corio_close(s);
    }
    corio_close(c);
    return 0;
}

static void check_listener(int lfd, int family)
{
    assert_true(lfd >= 0);
    assert_true(cloexec(lfd));
    assert_int_equal(sockopt_int(lfd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    assert_int_equal(sockopt_int(lfd, SOL_SOCKET, SO_DOMAIN), family);
    assert_int_equal(sockopt_int(lfd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    if (family != AF_UNIX)
        assert_int_equal(sockopt_int(lfd, SOL_SOCKET, SO_REUSEADDR), 1);
}

static void test_net_listen_dial_tcp4(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_ACCEPT);
    t_need(loop, CORIO_FEAT_CONNECT);
    /* Listening does not suspend: it works outside a coroutine. */
    int lfd = corio_listen_tcp("127.0.0.1", 0, 16, 0);
    check_listener(lfd, AF_INET);
    assert_true(corio_local_port(lfd) > 0);
    struct dial_ctx d = {.lfd = lfd, .host = "127.0.0.1", .family = AF_INET};
    assert_int_equal(t_run1(loop, dial_body, &d), 0);
    close(lfd);
    t_expect_ok();

    /* NULL host: every IPv4 address, so 127.0.0.1 reaches it too. */
    lfd = corio_listen_tcp(NULL, 0, 16, 0);
    check_listener(lfd, AF_INET);
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(a.sin_addr.s_addr, htonl(INADDR_ANY));
    d.lfd = lfd;
    assert_int_equal(t_run1(loop, dial_body, &d), 0);
    close(lfd);
    t_expect_ok();

    /* Dialling outside a coroutine would suspend: -EPERM. */
    assert_int_equal(corio_dial_tcp("127.0.0.1", 9, CORIO_FOREVER), -EPERM);
}

struct v6only_ctx {
    int port;
    int result;
};

static int dial_v4_body(void *arg)
{
    struct v6only_ctx *v = arg;
    v->result = corio_dial_tcp("127.0.0.1", (uint16_t)v->port, T_BOUND);
    if (v->result >= 0)
        corio_close(v->result);
    return 0;
}

static void test_net_listen_dial_tcp6(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_ACCEPT);
    t_need(loop, CORIO_FEAT_CONNECT);
    int lfd = corio_listen_tcp("::1", 0, 16, 0);
    if (lfd == -EADDRNOTAVAIL || lfd == -EAFNOSUPPORT) {
        print_message("SKIP: no IPv6 loopback here (%s)\n", strerror(-lfd));
        skip();
    }
    check_listener(lfd, AF_INET6);
    struct dial_ctx d = {.lfd = lfd, .host = "::1", .family = AF_INET6};
    assert_int_equal(t_run1(loop, dial_body, &d), 0);
    close(lfd);
    t_expect_ok();

    /* "::" without CORIO_LISTEN_V6ONLY is dual-stack: an IPv4 client reaches it, and shows up
     * as a v4-mapped address. (A bind to a specific address such as ::1 is always v6-only.) */
    lfd = corio_listen_tcp("::", 0, 16, 0);
    check_listener(lfd, AF_INET6);
    assert_int_equal(sockopt_int(lfd, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    d = (struct dial_ctx){.lfd = lfd, .host = "127.0.0.1", .family = AF_INET6};
    assert_int_equal(t_run1(loop, dial_body, &d), 0);
    close(lfd);
    t_expect_ok();

    /* With CORIO_LISTEN_V6ONLY it is not: IPv6 clients only. */
    lfd = corio_listen_tcp("::", 0, 16, CORIO_LISTEN_V6ONLY);
    check_listener(lfd, AF_INET6);
    assert_int_equal(sockopt_int(lfd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    d = (struct dial_ctx){.lfd = lfd, .host = "::1", .family = AF_INET6};
    assert_int_equal(t_run1(loop, dial_body, &d), 0);
    t_expect_ok();
    /* An IPv4 dial to its port is refused. The IPv4 side of that port is not ours, though: hold
     * it with a bound, non-listening IPv4 socket, so that no other process's listener (nor a
     * self-connect from that very port) can answer instead. */
    struct v6only_ctx v = {.port = corio_local_port(lfd)};
    int hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    addr4(&a, v.port);
    assert_true(hold >= 0);
    if (bind(hold, (struct sockaddr *)&a, sizeof(a)) == 0) {
        assert_int_equal(t_run1(loop, dial_v4_body, &v), 0);
        assert_int_equal(v.result, -ECONNREFUSED);
    } else {
        print_message("note: IPv4 port %d is taken elsewhere, not dialling it\n", v.port);
    }
    close(hold);
    close(lfd);
}

static void test_net_listen_dial_unix(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_ACCEPT);
    t_need(loop, CORIO_FEAT_CONNECT);
    char dir[256], path[320];
    assert_int_equal(t_mkdtemp(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/s.sock", dir);

    int lfd = corio_listen_unix(path, 8);
    check_listener(lfd, AF_UNIX);
    assert_int_equal(corio_local_port(lfd), -EAFNOSUPPORT);
    struct dial_ctx d = {.lfd = lfd, .path = path, .family = AF_UNIX};
    assert_int_equal(t_run1(loop, dial_body, &d), 0);
    close(lfd);
    t_expect_ok();

    /* The socket file left behind is stale: listening again removes it first. */
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    lfd = corio_listen_unix(path, 8);
    check_listener(lfd, AF_UNIX);
    d.lfd = lfd;
    assert_int_equal(t_run1(loop, dial_body, &d), 0);
    t_expect_ok();

    /* A socket file with a live listener behind it is not stale: it is left alone, and the
     * second listener gets -EADDRINUSE instead of orphaning the first. (Telling live from stale
     * takes a probe connection, which the live listener may find in its queue: drop it.) */
    struct stat before;
    assert_int_equal(lstat(path, &before), 0);
    assert_int_equal(corio_listen_unix(path, 8), -EADDRINUSE);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_ino, before.st_ino);
    assert_true(drain_accept_queue(lfd) <= 1);
    assert_int_equal(t_run1(loop, dial_body, &d), 0);
    t_expect_ok();
    close(lfd);

    /* Errors: a file that is not a socket is left alone; empty and too-long paths. */
    char file[320];
    snprintf(file, sizeof(file), "%s/regular", dir);
    int ffd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(ffd >= 0);
    close(ffd);
    assert_int_equal(corio_listen_unix(file, 8), -EADDRINUSE);
    assert_int_equal(lstat(file, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(corio_listen_unix("", 8), -EINVAL);
    assert_int_equal(corio_listen_unix(NULL, 8), -EINVAL);
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(corio_listen_unix(longp, 8), -ENAMETOOLONG);

    t_rmtree(dir);
}

static void test_net_listen_tcp_errors(void **state)
{
    (void)state;
    int fds0 = t_count_fds();
    /* What can only be meant as a numeric address and does not parse is refused, not looked up
     * (names are test_resolve's). */
    assert_int_equal(corio_listen_tcp("", 0, 8, 0), -EINVAL);
    assert_int_equal(corio_listen_tcp("127.0.0.1:80", 0, 8, 0), -EINVAL);
    assert_int_equal(corio_listen_tcp("256.0.0.1", 0, 8, 0), -EINVAL);

    /* A port in use: -EADDRINUSE, even with SO_REUSEADDR (it does not share a listening port). */
    int lfd = corio_listen_tcp("127.0.0.1", 0, 8, 0);
    assert_true(lfd >= 0);
    int port = corio_local_port(lfd);
    assert_int_equal(corio_listen_tcp("127.0.0.1", (uint16_t)port, 8, 0), -EADDRINUSE);
    assert_int_equal(corio_listen_tcp("127.0.0.1", (uint16_t)port, 8, CORIO_LISTEN_REUSEPORT),
                     -EADDRINUSE);
    close(lfd);
    assert_int_equal(t_count_fds(), fds0);

    /* With SO_REUSEPORT on both, two listeners share the port. */
    int a = corio_listen_tcp("127.0.0.1", 0, 8, CORIO_LISTEN_REUSEPORT);
    assert_true(a >= 0);
    assert_int_equal(sockopt_int(a, SOL_SOCKET, SO_REUSEPORT), 1);
    int b = corio_listen_tcp("127.0.0.1", (uint16_t)corio_local_port(a), 8,
                             CORIO_LISTEN_REUSEPORT);
    assert_true(b >= 0);
    assert_int_equal(corio_local_port(b), corio_local_port(a));
    close(a);
    close(b);
    assert_int_equal(t_count_fds(), fds0);
}

struct dial_errs {
    char missing[320];  /* a path where nothing exists */
    char stale[320];    /* a socket file nobody listens on */
};

static int dial_errors_body(void *arg)
{
    const struct dial_errs *d = arg;
    int fds0 = t_count_fds();
    /* Linux reports a missing socket path as -ENOENT; a socket file with no listener behind it
     * as -ECONNREFUSED. */
    T_EXPECT_EQ(corio_dial_unix(d->missing, T_BOUND), -ENOENT);
    T_EXPECT_EQ(corio_dial_unix(d->stale, T_BOUND), -ECONNREFUSED);
    T_EXPECT_EQ(corio_dial_unix("", T_BOUND), -EINVAL);
    T_EXPECT_EQ(corio_dial_tcp(NULL, 80, T_BOUND), -EINVAL);
    T_EXPECT_EQ(corio_dial_tcp("127.0.0.1:80", 80, T_BOUND), -EINVAL);
    T_EXPECT_EQ(t_count_fds(), fds0);
    return 0;
}

static void test_net_dial_errors(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_CONNECT);
    char dir[256];
    assert_int_equal(t_mkdtemp(dir, sizeof(dir)), 0);
    struct dial_errs d;
    snprintf(d.missing, sizeof(d.missing), "%s/missing.sock", dir);
    snprintf(d.stale, sizeof(d.stale), "%s/stale.sock", dir);
    int lfd = corio_listen_unix(d.stale, 1);
    assert_true(lfd >= 0);
    close(lfd);
    assert_int_equal(t_run1(loop, dial_errors_body, &d), 0);
    t_rmtree(dir);
    t_expect_ok();
}

/* ---- send_all, recv_all ----------------------------------------------------------------------- */

#define ALL_LEN (1u << 20)

struct all_ctx {
    int sv[2];
    char *out, *in;
    size_t done_send, done_recv;
    ssize_t r_send, r_recv;
};

static int all_sender(void *arg)
{
    struct all_ctx *c = arg;
    c->r_send = corio_send_all(c->sv[1], c->out, ALL_LEN, &c->done_send, T_BOUND);
    return 0;
}

static int all_body(void *arg)
{
    struct all_ctx *c = arg;
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, all_sender, c), 0);
    c->r_recv = corio_recv_all(c->sv[0], c->in, ALL_LEN, &c->done_recv, T_BOUND);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(c->r_send, ALL_LEN);
    T_EXPECT_EQ(c->done_send, ALL_LEN);
    T_EXPECT_EQ(c->r_recv, ALL_LEN);
    T_EXPECT_EQ(c->done_recv, ALL_LEN);
    T_EXPECT_EQ(t_check(c->in, ALL_LEN, 21, 0), -1);

    /* Nothing to move: 0 at once. */
    size_t done = 99;
    T_EXPECT_EQ(corio_send_all(c->sv[1], c->out, 0, &done, T_BOUND), 0);
    T_EXPECT_EQ(done, 0);
    done = 99;
    T_EXPECT_EQ(corio_recv_all(c->sv[0], c->in, 0, &done, T_BOUND), 0);
    T_EXPECT_EQ(done, 0);

    /* A deadline stops recv_all part way, and *done tells how far it got. */
    T_EXPECT_EQ(corio_send_all(c->sv[1], c->out, 1000, NULL, T_BOUND), 1000);
    done = 0;
    T_EXPECT_EQ(corio_recv_all(c->sv[0], c->in, 4096, &done, corio_now() + CORIO_MS(30)),
                -ETIMEDOUT);
    T_EXPECT_EQ(done, 1000);

    /* The peer shuts down part way: recv_all returns what came, and so does *done. */
    T_EXPECT_EQ(corio_send_all(c->sv[1], c->out + 1000, 1500, NULL, T_BOUND), 1500);
    T_EXPECT_EQ(corio_shutdown(c->sv[1], SHUT_WR), 0);
    done = 0;
    T_EXPECT_EQ(corio_recv_all(c->sv[0], c->in, 4096, &done, T_BOUND), 1500);
    T_EXPECT_EQ(done, 1500);
    T_EXPECT_EQ(t_check(c->in, 1500, 21, 1000), -1);
    /* At end of stream already: 0. */
    done = 99;
    T_EXPECT_EQ(corio_recv_all(c->sv[0], c->in, 4096, &done, T_BOUND), 0);
    T_EXPECT_EQ(done, 0);
    return 0;
}

static void test_net_send_all_recv_all(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SEND);
    t_need(loop, CORIO_FEAT_RECV);
    struct all_ctx c;
    memset(&c, 0, sizeof(c));
    c.out = malloc(ALL_LEN);
    c.in = calloc(1, ALL_LEN);
    assert_non_null(c.out);
    assert_non_null(c.in);
    t_fill(c.out, ALL_LEN, 21, 0);
    assert_int_equal(t_tcp_pair(c.sv), 0);
    assert_int_equal(t_run1(loop, all_body, &c), 0);
    close(c.sv[0]);
    close(c.sv[1]);
    free(c.out);
    free(c.in);
    t_expect_ok();
}

/* send_all to a peer that reads a little, then resets: the error, and how much was sent. */
#define RESET_LEN (16u << 20)
#define RESET_READ 100000u

struct reset_all {
    int sv[2];
    char *out;
    size_t peer_read;
};

static int reset_all_peer(void *arg)
{
    struct reset_all *c = arg;
    static char buf[RESET_READ];
    size_t done = 0;
    T_EXPECT_EQ(corio_recv_all(c->sv[0], buf, sizeof(buf), &done, T_BOUND), sizeof(buf));
    c->peer_read = done;
    T_EXPECT_EQ(t_check(buf, done, 31, 0), -1);
    assert_int_equal(t_set_linger0(c->sv[0]), 0);
    T_EXPECT_EQ(corio_close(c->sv[0]), 0);
    return 0;
}

static int reset_all_body(void *arg)
{
    struct reset_all *c = arg;
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, reset_all_peer, c), 0);
    size_t done = 0;
    ssize_t r = corio_send_all(c->sv[1], c->out, RESET_LEN, &done, T_BOUND);
    T_EXPECT(r == -ECONNRESET || r == -EPIPE);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    /* It sent at least what the peer read, and not all of it. */
    T_EXPECT(done >= c->peer_read);
    T_EXPECT(done < RESET_LEN);
    T_EXPECT(!t_sigpipe_pending());
    return 0;
}

static void test_net_send_all_peer_reset(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_SEND);
    t_need(loop, CORIO_FEAT_RECV);
    t_assert_sigpipe_default();
    struct reset_all c;
    memset(&c, 0, sizeof(c));
    c.out = malloc(RESET_LEN);
    assert_non_null(c.out);
    t_fill(c.out, RESET_LEN, 31, 0);
    assert_int_equal(t_tcp_pair(c.sv), 0);
    /* Small buffers (which also turn autotuning off), so the 16 MiB cannot all be queued. */
    int small = 64 * 1024;
    assert_int_equal(setsockopt(c.sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    assert_int_equal(setsockopt(c.sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    assert_int_equal(t_run1(loop, reset_all_body, &c), 0);
    close(c.sv[1]);
    free(c.out);
    t_expect_ok();
    assert_int_equal(c.peer_read, RESET_READ);
}

/* ---- corio_close ends what waits on the fd --------------------------------------------------- */

/* What another coroutine waits in when the fd is closed under it. */
enum close_wait { CW_RECV, CW_POLL, CW_ACCEPT, CW_ACCEPTOR };

struct closing {
    enum close_wait kind;
    int fd;        /* what the waiter waits on, and the closer closes */
    int peer;      /* a connection's other end (-1 for a listener): it sends after the close */
    int result;    /* the waiter's */
    char buf[8];   /* the waiter's receive buffer: nothing may land in it */
    int64_t woken; /* when its call returned */
};

static const char *const close_wait_names[] = {"recv", "poll", "accept", "acceptor"};

static int close_waiter(void *arg)
{
    struct closing *c = arg;
    struct corio_acceptor ac;
    switch (c->kind) {
    case CW_RECV:
        c->result = (int)corio_recv(c->fd, c->buf, sizeof(c->buf), 0, T_BOUND);
        break;
    case CW_POLL:
        c->result = corio_poll(c->fd, POLLIN, T_BOUND);
        break;
    case CW_ACCEPT:
        c->result = corio_accept(c->fd, NULL, NULL, 0, T_BOUND);
        break;
    case CW_ACCEPTOR:
        T_EXPECT_EQ(corio_acceptor_init(&ac, c->fd, 0), 0);
        c->result = corio_acceptor_next(&ac, T_BOUND);
        corio_acceptor_fini(&ac);
        break;
    }
    c->woken = corio_now();
    if (c->result >= 0 && (c->kind == CW_ACCEPT || c->kind == CW_ACCEPTOR))
        corio_close(c->result);
    return 0;
}

/* Closes c->fd while another coroutine waits on it: the close gives 0 and the waiter -ECANCELED
 * at once (not at its deadline), and data the peer sends after the close reaches nobody. */
static int close_under_waiter(void *arg)
{
    struct closing *c = arg;
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, close_waiter, c), 0);
    t_sleep_ms(10); /* the waiter's op is in the kernel, or among epoll's waiters */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_close(c->fd), 0);
    if (c->peer >= 0)
        send(c->peer, "late", 4, MSG_NOSIGNAL); /* may fail: the socket is closed */
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    if (!T_EXPECT_EQ(c->result, -ECANCELED))
        print_error("  waiting in %s: %d\n", close_wait_names[c->kind], c->result);
    T_EXPECT((double)(c->woken - t0) / 1e6 < LATE_MS);
    T_EXPECT_EQ(memcmp(c->buf, "\0\0\0\0\0\0\0\0", sizeof(c->buf)), 0);
    return 0;
}

static void test_net_close_wakes_recv(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_CANCEL_FD);
    for (enum close_wait k = CW_RECV; k <= CW_POLL; k++) {
        int sv[2];
        assert_int_equal(t_tcp_pair(sv), 0);
        struct closing c = {.kind = k, .fd = sv[0], .peer = sv[1]};
        assert_int_equal(t_run1(loop, close_under_waiter, &c), 0);
        close(sv[1]);
        t_expect_ok();
    }
}

static void test_net_close_wakes_accept(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_CANCEL_FD);
    for (enum close_wait k = CW_ACCEPT; k <= CW_ACCEPTOR; k++) {
        if (k == CW_ACCEPTOR && !corio_loop_has(loop, CORIO_FEAT_ACCEPT_MULTISHOT))
            continue; /* said by test_acceptor's own skips */
        struct closing c = {.kind = k, .fd = corio_listen_tcp("127.0.0.1", 0, 8, 0), .peer = -1};
        assert_true(c.fd >= 0);
        assert_int_equal(t_run1(loop, close_under_waiter, &c), 0);
        t_expect_ok();
    }
}

/* The closer's own started ops on the fd end too, and its close_start form gives 0. */
static int close_own_body(void *arg)
{
    const int *sv = arg;
    char buf[8] = {0};
    struct corio_future fr, fp, fc;
    T_EXPECT_EQ(corio_recv_start(&fr, sv[0], buf, sizeof(buf), 0, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_poll_start(&fp, sv[0], POLLIN, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT_EQ(corio_close_start(&fc, sv[0]), 0);
    T_EXPECT_EQ(corio_await(&fc, CORIO_FOREVER), 0);
    send(sv[1], "late", 4, MSG_NOSIGNAL); /* may fail: the socket is closed */
    T_EXPECT_EQ(corio_await(&fr, T_BOUND), -ECANCELED);
    T_EXPECT_EQ(corio_await(&fp, T_BOUND), -ECANCELED);
    T_EXPECT_EQ(buf[0], 0);
    return 0;
}

static void test_net_close_cancels_own_ops(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_CANCEL_FD);
    int sv[2];
    assert_int_equal(t_tcp_pair(sv), 0);
    assert_int_equal(t_run1(loop, close_own_body, sv), 0);
    close(sv[1]);
    t_expect_ok();
}

/* A direct descriptor (io_uring's fixed file table): its cancel names the slot, not an fd. */
struct close_fixed {
    int lfd;
    int client;
};

static int close_fixed_body(void *arg)
{
    struct close_fixed *cf = arg;
    struct corio_acceptor ac;
    T_EXPECT_EQ(corio_acceptor_init(&ac, cf->lfd, CORIO_ACCEPT_FIXED), 0);
    int fd = corio_acceptor_next(&ac, T_BOUND);
    corio_acceptor_fini(&ac);
    if (!T_EXPECT(fd >= 0 && (fd & CORIO_FD_FIXED)))
        return -1;
    struct closing c = {.kind = CW_RECV, .fd = fd, .peer = cf->client};
    return close_under_waiter(&c);
}

static void test_net_close_wakes_fixed(void **state)
{
    (void)state;
    struct corio_loop *l = t_mkloop(&(struct corio_loop_opts){.fixed_files = 4});
    t_need_uring(l, true, "the fixed file table");
    t_need_or_free(l, CORIO_FEAT_CANCEL_FD);
    t_need_or_free(l, CORIO_FEAT_ACCEPT_MULTISHOT);
    struct close_fixed cf = {.lfd = corio_listen_tcp("127.0.0.1", 0, 8, 0)};
    assert_true(cf.lfd >= 0);
    cf.client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    socklen_t alen = addr4(&a, corio_local_port(cf.lfd));
    assert_int_equal(connect(cf.client, (struct sockaddr *)&a, alen), 0);
    assert_int_equal(t_run1(l, close_fixed_body, &cf), 0);
    close(cf.client);
    close(cf.lfd);
    corio_loop_free(l);
    t_expect_ok();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_FDS_TEST(test_net_socket),
        T_LOOP_FDS_TEST(test_net_accept_connect),
        T_LOOP_FDS_TEST(test_net_send_recv),
        T_LOOP_FDS_TEST(test_net_sendmsg_recvmsg),
        T_LOOP_FDS_TEST(test_net_sendmsg_scm_rights),
        T_LOOP_FDS_TEST(test_net_shutdown_eof),
        T_LOOP_FDS_TEST(test_net_connect_refused),
        T_LOOP_FDS_TEST(test_net_bad_fd),
        T_LOOP_FDS_TEST(test_net_recv_deadline),
        T_LOOP_FDS_TEST(test_net_accept_deadline),
        T_LOOP_FDS_TEST(test_net_connect_deadline),
        T_LOOP_FDS_TEST(test_net_accept_cancel),
        T_LOOP_FDS_TEST(test_net_recv_cancel),
        T_LOOP_FDS_TEST(test_net_connect_cancel),
        T_LOOP_FDS_TEST(test_net_recv_future_cancel),
        T_LOOP_FDS_TEST(test_net_unawaited_ops_drained),
        T_LOOP_FDS_TEST(test_net_send_after_reset),
        T_LOOP_FDS_TEST(test_net_recv_after_reset),
        T_LOOP_FDS_TEST(test_net_listen_dial_tcp4),
        T_LOOP_FDS_TEST(test_net_listen_dial_tcp6),
        T_LOOP_FDS_TEST(test_net_listen_dial_unix),
        T_LOOP_FDS_TEST(test_net_listen_tcp_errors),
        T_LOOP_FDS_TEST(test_net_dial_errors),
        T_LOOP_FDS_TEST(test_net_send_all_recv_all),
        T_LOOP_FDS_TEST(test_net_send_all_peer_reset),
        T_LOOP_FDS_TEST(test_net_close_wakes_recv),
        T_LOOP_FDS_TEST(test_net_close_wakes_accept),
        T_LOOP_FDS_TEST(test_net_close_cancels_own_ops),
        T_GUARD_TEST(test_net_close_wakes_fixed),
    };
    return T_RUN_TESTS(tests);
}
