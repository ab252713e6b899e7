/* Socket operations under load, all on one loop: a loopback TCP echo with 1,000 concurrent client
 * coroutines, and one connection moving 64 MiB each way. Every byte is checked against a pattern
 * (t_fill/t_check) seeded per connection, every wait has a deadline, and the fd count must be back
 * where it started. Labelled "net;slow" and kept out of memcheck. */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

/* The whole test must end well before this: a wait that reaches it fails instead of hanging. */
#define LOAD_BUDGET CORIO_SEC(25)

static rlim_t nofile; /* the soft RLIMIT_NOFILE after main() raised it */

/* ---- the echo server: one coroutine per accepted connection ------------------------------------ */

struct server {
    int lfd;
    int conns;        /* connections to accept */
    int accepted;
    int finished;     /* echo coroutines that saw end of stream and closed their fd */
    size_t echoed;    /* bytes echoed, all connections */
    int64_t deadline;
};

struct echo_conn {
    struct server *srv;
    int fd;
};

static int echo_conn(void *arg)
{
    struct echo_conn c = *(struct echo_conn *)arg;
    free(arg);
    char buf[16 * 1024];
    ssize_t n;
    while ((n = corio_recv(c.fd, buf, sizeof(buf), 0, c.srv->deadline)) > 0) {
        if (!T_EXPECT_EQ(corio_send_all(c.fd, buf, (size_t)n, NULL, c.srv->deadline), n))
            break;
        c.srv->echoed += (size_t)n;
    }
    T_EXPECT_EQ(n, 0);
    T_EXPECT_EQ(corio_close(c.fd), 0);
    c.srv->finished++;
    return 0;
}

/* Accepts srv->conns connections and starts a detached echo coroutine for each. */
static int acceptor(void *arg)
{
    struct server *srv = arg;
    while (srv->accepted < srv->conns) {
        int fd = corio_accept(srv->lfd, NULL, NULL, 0, srv->deadline);
        if (!T_EXPECT(fd >= 0))
            return fd;
        /* As the dialling side has (corio_dial_tcp): no Nagle delay on the echoes. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct echo_conn *c = malloc(sizeof(*c));
        if (!T_EXPECT(c != NULL)) {
            corio_close(fd);
            return -ENOMEM;
        }
        *c = (struct echo_conn){.srv = srv, .fd = fd};
        if (!T_EXPECT_EQ(corio_spawn(NULL, NULL, echo_conn, c), 0)) {
            free(c);
            corio_close(fd);
            return -ENOMEM;
        }
        srv->accepted++;
    }
    return 0;
}

/* ---- clients: a sender and a receiver coroutine per connection --------------------------------- */

struct client {
    int port;
    uint64_t seed;     /* the pattern of this connection's bytes */
    size_t len;        /* bytes to send, and to get back */
    size_t chunk;      /* bytes per send; recvs take up to twice that */
    int fd;
    size_t sent, got;
    int64_t deadline;
};

static int client_sender(void *arg)
{
    struct client *c = arg;
    char *buf = malloc(c->chunk);
    if (!T_EXPECT(buf != NULL))
        return -ENOMEM;
    while (c->sent < c->len) {
        size_t n = c->len - c->sent < c->chunk ? c->len - c->sent : c->chunk;
        t_fill(buf, n, c->seed, c->sent);
        size_t done = 0;
        ssize_t r = corio_send_all(c->fd, buf, n, &done, c->deadline);
        c->sent += done;
        if (!T_EXPECT_EQ(r, (ssize_t)n))
            break;
    }
    free(buf);
    /* End of stream: the server echoes the rest, then closes its side. */
    T_EXPECT_EQ(corio_shutdown(c->fd, SHUT_WR), 0);
    return 0;
}

static int client(void *arg)
{
    struct client *c = arg;
    c->fd = corio_dial_tcp("127.0.0.1", (uint16_t)c->port, c->deadline);
    if (!T_EXPECT(c->fd >= 0))
        return c->fd;
    corio_id sender;
    if (!T_EXPECT_EQ(corio_spawn(&sender, NULL, client_sender, c), 0)) {
        corio_close(c->fd);
        return -ENOMEM;
    }
    size_t cap = 2 * c->chunk;
    char *buf = malloc(cap);
    ssize_t n = -ENOMEM;
    while (T_EXPECT(buf != NULL) && (n = corio_recv(c->fd, buf, cap, 0, c->deadline)) > 0) {
        long bad = t_check(buf, (size_t)n, c->seed, c->got);
        if (!T_EXPECT_EQ(bad, -1))
            break;
        c->got += (size_t)n;
    }
    free(buf);
    T_EXPECT_EQ(n, 0);
    T_EXPECT_EQ(corio_join(sender, NULL, c->deadline), 0);
    T_EXPECT_EQ(c->sent, c->len);
    T_EXPECT_EQ(c->got, c->len);
    T_EXPECT_EQ(corio_close(c->fd), 0);
    return 0;
}

/* ---- the tests ------------------------------------------------------------------------------- */

struct load {
    struct server srv;
    struct client *clients;
    int n;
};

static int load_main(void *arg)
{
    struct load *ld = arg;
    corio_id acc;
    T_EXPECT_EQ(corio_spawn(&acc, NULL, acceptor, &ld->srv), 0);
    corio_id *ids = calloc((size_t)ld->n, sizeof(*ids));
    if (!T_EXPECT(ids != NULL))
        return -ENOMEM;
    for (int i = 0; i < ld->n; i++)
        T_EXPECT_EQ(corio_spawn(&ids[i], NULL, client, &ld->clients[i]), 0);
    for (int i = 0; i < ld->n; i++) {
        int res = -1;
        T_EXPECT_EQ(corio_join(ids[i], &res, ld->srv.deadline + CORIO_SEC(1)), 0);
        T_EXPECT_EQ(res, 0);
    }
    int res = -1;
    T_EXPECT_EQ(corio_join(acc, &res, ld->srv.deadline + CORIO_SEC(1)), 0);
    T_EXPECT_EQ(res, 0);
    free(ids);
    return 0;
}

/* Runs @n clients of @len bytes each, sent @chunk at a time, through one echo server. */
static void run_load(struct corio_loop *loop, int n, size_t len, size_t chunk)
{
    int fds0 = t_count_fds();
    int64_t t0 = corio_now();
    struct load ld = {.n = n};
    ld.srv.deadline = t0 + LOAD_BUDGET;
    ld.srv.conns = n;
    ld.srv.lfd = corio_listen_tcp("127.0.0.1", 0, n < 1024 ? 1024 : n, 0);
    assert_true(ld.srv.lfd >= 0);
    int port = corio_local_port(ld.srv.lfd);
    assert_true(port > 0);
    ld.clients = calloc((size_t)n, sizeof(*ld.clients));
    assert_non_null(ld.clients);
    for (int i = 0; i < n; i++)
        ld.clients[i] = (struct client){.port = port, .seed = 1000 + (uint64_t)i, .len = len,
                                        .chunk = chunk, .fd = -1, .deadline = ld.srv.deadline};

    assert_int_equal(t_run1(loop, load_main, &ld), 0);
    double ms = t_ms_since(t0);
    close(ld.srv.lfd);
    t_expect_ok();

    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += ld.clients[i].got;
    free(ld.clients);
    print_message("%d connection(s) x %zu bytes echoed and checked in %.0f ms (%.0f MiB/s each "
                  "way), %llu CQEs, %llu enters\n",
                  n, len, ms, (double)total / (1 << 20) / (ms / 1e3),
                  (unsigned long long)corio_loop_stats(loop)->cqes,
                  (unsigned long long)corio_loop_stats(loop)->enters);
    assert_int_equal(ld.srv.accepted, n);
    assert_int_equal(ld.srv.finished, n);
    assert_int_equal(ld.srv.echoed, (size_t)n * len);
    assert_int_equal(total, (size_t)n * len);
    assert_true(ms < 30000.0);
    assert_int_equal(t_count_fds(), fds0);
}

static void test_net_load_echo_1000(void **state)
{
    struct corio_loop *loop = *state;
    if (!corio_loop_has(loop, CORIO_FEAT_ACCEPT) || !corio_loop_has(loop, CORIO_FEAT_CONNECT) ||
        !corio_loop_has(loop, CORIO_FEAT_SEND) || !corio_loop_has(loop, CORIO_FEAT_RECV)) {
        print_message("SKIP: the kernel lacks accept, connect, send or recv\n");
        skip();
    }
    /* 1,000 client fds, 1,000 server fds, the listener, the ring and the usual few. */
    if (nofile < 2100) {
        print_message("SKIP: RLIMIT_NOFILE is %llu even after raising it to the hard limit; "
                      "1,000 connections need about 2,100\n",
                      (unsigned long long)nofile);
        skip();
    }
    run_load(loop, 1000, 64 * 1024, 4096);
}

static void test_net_load_64mib(void **state)
{
    struct corio_loop *loop = *state;
    if (!corio_loop_has(loop, CORIO_FEAT_ACCEPT) || !corio_loop_has(loop, CORIO_FEAT_CONNECT) ||
        !corio_loop_has(loop, CORIO_FEAT_SEND) || !corio_loop_has(loop, CORIO_FEAT_RECV)) {
        print_message("SKIP: the kernel lacks accept, connect, send or recv\n");
        skip();
    }
    /* The client's sender and receiver are separate coroutines, and so neither side stalls on a
     * full socket buffer while the other waits for it. */
    run_load(loop, 1, 64u << 20, 64 * 1024);
}

int main(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        nofile = rl.rlim_cur;
    }
    const struct CMUnitTest tests[] = {
        T_LOOP_TEST(test_net_load_echo_1000),
        T_LOOP_TEST(test_net_load_64mib),
    };
    return T_RUN_TESTS(tests);
}
