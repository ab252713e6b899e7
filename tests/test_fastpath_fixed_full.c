/* Regression test (issue 5): an acceptor with CORIO_ACCEPT_FIXED must not lose waiting
 * connections while the fixed file table is full.
 *
 * The kernel's io_accept accepts first and installs into the fixed table after (do_accept, then
 * io_fixed_fd_install); with no free slot the install fails with -ENFILE and the accepted socket is
 * released, so the peer sees a reset. A plain accept reserves its fd before accepting and leaves
 * the connection in the backlog at -EMFILE. corio therefore counts the direct descriptors it
 * installs and closes, arms a fixed acceptor one accept at a time and only with a slot free, and
 * returns -ENFILE (without arming) while the table is full. Before that fix, each call made while
 * the table was full cost one connection; this test caught it. */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

enum { SLOTS = 4, CONNS = 6 };

struct srv {
    int lfd;
    unsigned served;
};

/* A server that backs off at -ENFILE like corio-echo does (sleep 10 ms, try again) while it serves
 * the connections it has; every waiting connection must be served in the end. */
static int srv_main(void *arg)
{
    struct srv *c = arg;
    struct corio_acceptor a;
    T_EXPECT_EQ(corio_acceptor_init(&a, c->lfd, CORIO_ACCEPT_FIXED), 0);
    int held[CONNS], nheld = 0;
    int64_t end = corio_now() + CORIO_MS(300) * (t_on_valgrind() ? 10 : 1);
    while (c->served < CONNS && corio_now() < end) {
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
        if (nheld == SLOTS) {
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

static void test_fastpath_accept_fixed_full_keeps_pending(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.fixed_files = SLOTS};
    struct corio_loop *l = NULL;
    assert_int_equal(corio_loop_new(&l, &o), 0);
    t_need_or_free(l, CORIO_FEAT_ACCEPT_MULTISHOT);
    struct srv c = {.lfd = corio_listen_tcp("127.0.0.1", 0, 16, 0)};
    assert_true(c.lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)corio_local_port(c.lfd)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int clients[CONNS];
    for (int i = 0; i < CONNS; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(clients[i] >= 0);
        assert_int_equal(connect(clients[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
        struct timeval tv = {.tv_sec = 2};
        assert_int_equal(setsockopt(clients[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        char b = (char)('p' + i);
        assert_int_equal(send(clients[i], &b, 1, 0), 1);
    }
    assert_int_equal(t_run1(l, srv_main, &c), 0);
    int reset = 0;
    for (int i = 0; i < CONNS; i++) {
        char b = 0;
        if (recv(clients[i], &b, 1, 0) < 0 && errno == ECONNRESET)
            reset++;
        close(clients[i]);
    }
    close(c.lfd);
    corio_loop_free(l);
    t_expect_ok();
    print_message("  served %u of %d waiting connections; %d reset by accepts into a full table\n",
                  c.served, CONNS, reset);
    assert_int_equal(reset, 0);
    assert_int_equal(c.served, CONNS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fastpath_accept_fixed_full_keeps_pending),
    };
    t_alarm(30);
    return T_RUN_TESTS(tests);
}
