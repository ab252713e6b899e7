/* The epoll backend: chosen by itself where io_uring is refused for real (a seccomp filter in a
 * forked child returning EPERM, then ENOSYS, for io_uring_setup), with the reason said, serving
 * an echo and an HTTP request with every byte verified; a forced io_uring refused clearly; the
 * choice by option and by CORIO_BACKEND; and what it emulates (files on the worker pool, plain
 * registered buffers, send_zc as a plain send, its features). The rest of the suite runs on it
 * too, with CORIO_BACKEND=epoll (tools/run test). */
#include "helpers.h"

#include <corio/http.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An epoll loop, made on purpose. */
static struct corio_loop *epoll_loop(void)
{
    struct corio_loop_opts o = {.backend = CORIO_BACKEND_EPOLL};
    struct corio_loop *l = t_mkloop(&o);
    assert_int_equal(corio_loop_backend(l), CORIO_BACKEND_EPOLL);
    return l;
}

/* ---- an echo and an HTTP request, bytes verified ------------------------------------------------- */

enum { ECHO_LEN = 256 * 1024, ECHO_CONNS = 4 };

struct serve {
    int lfd;                       /* the echo listener */
    int hfd;                       /* the HTTP listener */
    struct corio_http_server *http; /* the HTTP server */
    corio_id http_id;              /* its serving coroutine */
    int echoed;                    /* connections whose bytes all came back right */
    int http_ok;                   /* HTTP answers that were right */
};

static int echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = corio_recv(fd, buf, sizeof(buf), 0, T_BOUND)) > 0)
        if (corio_send_all(fd, buf, (size_t)n, NULL, T_BOUND) < 0)
            break;
    corio_close(fd);
    return 0;
}

/* Accepts ECHO_CONNS connections through the multishot acceptor (emulated here). */
static int echo_server(void *arg)
{
    struct serve *s = arg;
    struct corio_acceptor a;
    if (!T_EXPECT_EQ(corio_acceptor_init(&a, s->lfd, 0), 0))
        return -1;
    for (int i = 0; i < ECHO_CONNS; i++) {
        int fd = corio_acceptor_next(&a, T_BOUND);
        if (!T_EXPECT(fd >= 0))
            break;
        T_EXPECT_EQ(corio_spawn(NULL, NULL, echo_conn, (void *)(intptr_t)fd), 0);
    }
    corio_acceptor_fini(&a);
    return 0;
}

static int echo_client(void *arg)
{
    struct serve *s = arg;
    /* Each client its own buffers: the clients run at once on one thread. */
    unsigned char *out = malloc(ECHO_LEN), *in = malloc(ECHO_LEN);
    int fd = corio_dial_tcp("127.0.0.1", (uint16_t)corio_local_port(s->lfd), T_BOUND);
    if (!T_EXPECT(fd >= 0) || !T_EXPECT(out && in)) {
        free(out);
        free(in);
        if (fd >= 0)
            corio_close(fd);
        return -1;
    }
    uint64_t seed = (uint64_t)fd * 7919;
    t_fill(out, ECHO_LEN, seed, 0);
    size_t got = 0;
    /* Send and receive in turns of 16 KiB, so that neither side's buffer fills. */
    for (size_t off = 0; off < ECHO_LEN; off += 16384) {
        T_EXPECT_EQ(corio_send_all(fd, out + off, 16384, NULL, T_BOUND), 16384);
        T_EXPECT_EQ(corio_recv_all(fd, in + off, 16384, NULL, T_BOUND), 16384);
        got += 16384;
    }
    if (got == ECHO_LEN && t_check(in, ECHO_LEN, seed, 0) == -1)
        s->echoed++;
    free(out);
    free(in);
    corio_close(fd);
    return 0;
}

static int hello(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    return corio_http_respond(c, 200, "text/plain", "Hello, epoll!", 13, CORIO_FOREVER);
}

static int http_client(void *arg)
{
    struct serve *s = arg;
    int fd = corio_dial_tcp("127.0.0.1", (uint16_t)corio_local_port(s->hfd), T_BOUND);
    if (!T_EXPECT(fd >= 0))
        return -1;
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    T_EXPECT_EQ(corio_send_all(fd, req, sizeof(req) - 1, NULL, T_BOUND), sizeof(req) - 1);
    char buf[1024];
    size_t done = 0;
    corio_recv_all(fd, buf, sizeof(buf) - 1, &done, T_BOUND); /* to the server's close */
    buf[done] = '\0';
    if (strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(buf, "\r\n\r\nHello, epoll!"))
        s->http_ok++;
    else
        T_EXPECT(!"a wrong HTTP answer");
    corio_close(fd);
    return 0;
}

/* Serves ECHO_CONNS echo clients and one HTTP request on the running loop, then stops. */
static int serve_main(void *arg)
{
    struct serve *s = arg;
    corio_id srv, clients[ECHO_CONNS + 1];
    T_EXPECT_EQ(corio_spawn(&srv, NULL, echo_server, s), 0);
    for (int i = 0; i < ECHO_CONNS; i++)
        T_EXPECT_EQ(corio_spawn(&clients[i], NULL, echo_client, s), 0);
    T_EXPECT_EQ(corio_spawn(&clients[ECHO_CONNS], NULL, http_client, s), 0);
    for (int i = 0; i <= ECHO_CONNS; i++)
        T_EXPECT_EQ(corio_join(clients[i], NULL, T_BOUND), 0);
    T_EXPECT_EQ(corio_join(srv, NULL, T_BOUND), 0);
    T_EXPECT_EQ(corio_cancel(s->http_id), 0);
    int served = 0;
    T_EXPECT_EQ(corio_join(s->http_id, &served, T_BOUND), 0);
    T_EXPECT_EQ(served, -ECANCELED);
    return 0;
}

static int http_serve(void *arg)
{
    struct serve *s = arg;
    return corio_http_serve(s->http, s->hfd);
}

/* Runs the echo and the HTTP request on @l. Returns how many checks failed. */
static int serve_on(struct corio_loop *l)
{
    struct serve s = {.lfd = corio_listen_tcp("127.0.0.1", 0, 64, 0),
                      .hfd = corio_listen_tcp("127.0.0.1", 0, 64, 0)};
    int bad = s.lfd < 0 || s.hfd < 0;
    bad |= corio_http_server_new(&s.http, NULL) != 0;
    bad |= corio_http_route(s.http, "GET", "/hello", hello, NULL) != 0;
    if (!bad) {
        bad |= corio_spawn(&s.http_id, l, http_serve, &s) != 0;
        bad |= t_run1(l, serve_main, &s) != 0;
    }
    T_EXPECT_EQ(s.echoed, ECHO_CONNS);
    T_EXPECT_EQ(s.http_ok, 1);
    bad |= s.echoed != ECHO_CONNS || s.http_ok != 1;
    corio_http_server_free(s.http);
    close(s.lfd);
    close(s.hfd);
    return bad;
}

/* The child: io_uring refused with @err. Writes
 * "backend|reason|served-ok|forced-result|why|first-failure" to @out. */
static void refused_child(int err, int out)
{
    char msg[2048];
    int serr = t_refuse_uring(err);
    if (serr) {
        snprintf(msg, sizeof(msg), "seccomp setup failed: %s", strerror(-serr));
        _exit(write(out, msg, strlen(msg)) < 0 ? 3 : 2);
    }
    struct corio_loop *l = NULL;
    int r = corio_loop_new(&l, NULL);
    if (r != 0) {
        snprintf(msg, sizeof(msg), "no loop: %s", strerror(-r));
        _exit(write(out, msg, strlen(msg)) < 0 ? 3 : 2);
    }
    const char *backend = corio_backend_name(corio_loop_backend(l));
    char reason[512];
    snprintf(reason, sizeof(reason), "%s", corio_loop_backend_reason(l));
    int bad = serve_on(l);
    char failed[256];
    if (t_expect_take(failed, sizeof(failed)))
        bad = 1;
    else
        snprintf(failed, sizeof(failed), "-");
    corio_loop_free(l);
    struct corio_loop *forced = NULL;
    struct corio_loop_opts o = {.backend = CORIO_BACKEND_IO_URING};
    int f = corio_loop_new(&forced, &o);
    int n = snprintf(msg, sizeof(msg), "%s|%s|%d|%d|%s|%s", backend, reason, !bad, f,
                     corio_strerror_setup(f), failed);
    _exit(write(out, msg, (size_t)n) == n ? 0 : 3);
}

static void refused_with(int err)
{
    char buf[2048];
    t_fork_report(refused_child, err, buf, sizeof(buf));
    char backend[32] = {0};
    int ok = 0, forced = 0;
    const char *bar1 = strchr(buf, '|');
    assert_non_null(bar1);
    memcpy(backend, buf, (size_t)(bar1 - buf) < sizeof(backend) ? (size_t)(bar1 - buf) : 31);
    assert_string_equal(backend, "epoll");
    /* The reason names what refused io_uring. */
    assert_non_null(strstr(buf, err == EPERM ? "EPERM" : "ENOSYS"));
    assert_non_null(strstr(buf, "seccomp"));
    assert_int_equal(sscanf(strchr(bar1 + 1, '|') + 1, "%d|%d", &ok, &forced), 2);
    assert_int_equal(ok, 1);
    /* Forced, io_uring is refused with the same cause. */
    assert_int_equal(forced, -err);
}

static void test_epoll_fallback_seccomp_eperm(void **state)
{
    (void)state;
    if (t_on_valgrind()) {
        print_message("skipped under valgrind: the forked child inherits the parent's heap, "
                      "whose blocks its leak check would count\n");
        skip();
    }
    refused_with(EPERM);
}

static void test_epoll_fallback_seccomp_enosys(void **state)
{
    (void)state;
    if (t_on_valgrind()) {
        print_message("skipped under valgrind: as above\n");
        skip();
    }
    refused_with(ENOSYS);
}

/* The same echo and HTTP request on a loop asked for epoll, in this process. */
static void test_epoll_serves(void **state)
{
    (void)state;
    struct corio_loop *l = epoll_loop();
    assert_string_equal(corio_backend_name(corio_loop_backend(l)), "epoll");
    assert_non_null(strstr(corio_loop_backend_reason(l), "corio_loop_opts.backend"));
    assert_int_equal(serve_on(l), 0);
    t_expect_ok();
    corio_loop_free(l);
}

/* ---- the choice ------------------------------------------------------------------------------------ */

static void test_epoll_choice(void **state)
{
    (void)state;
    const char *env = getenv("CORIO_BACKEND");
    char saved[32] = {0};
    if (env)
        snprintf(saved, sizeof(saved), "%s", env);
    struct corio_loop *l;
    setenv("CORIO_BACKEND", "epoll", 1);
    assert_int_equal(corio_loop_new(&l, NULL), 0);
    assert_int_equal(corio_loop_backend(l), CORIO_BACKEND_EPOLL);
    assert_non_null(strstr(corio_loop_backend_reason(l), "CORIO_BACKEND=epoll"));
    corio_loop_free(l);
    /* The option wins over the environment. */
    struct corio_loop_opts o = {.backend = CORIO_BACKEND_IO_URING};
    int err = corio_loop_new(&l, &o);
    if (err == 0) {
        assert_int_equal(corio_loop_backend(l), CORIO_BACKEND_IO_URING);
        assert_string_equal(corio_loop_backend_reason(l), "");
        corio_loop_free(l);
    } else {
        print_message("io_uring refused here (%s): the forced case is the child's\n",
                      strerror(-err));
    }
    o.backend = 7; /* no such backend */
    assert_int_equal(corio_loop_new(&l, &o), -EINVAL);
    assert_string_equal(corio_backend_name(CORIO_BACKEND_AUTO), "auto");
    assert_string_equal(corio_backend_name((enum corio_backend)9), "?");
    if (env)
        setenv("CORIO_BACKEND", saved, 1);
    else
        unsetenv("CORIO_BACKEND");
}

/* Every op is there; the ring's setup flags and kernel features are not. */
static void test_epoll_features(void **state)
{
    (void)state;
    struct corio_loop *l = epoll_loop();
    for (int f = CORIO_FEAT_NOP; f <= CORIO_FEAT_WRITE_FIXED; f++)
        if (f != CORIO_FEAT_MSG_RING && !corio_loop_has(l, (enum corio_feature)f))
            fail_msg("op %s missing on epoll", corio_feature_name((enum corio_feature)f));
    assert_true(corio_loop_has(l, CORIO_FEAT_RECV_MULTISHOT));
    assert_true(corio_loop_has(l, CORIO_FEAT_ACCEPT_MULTISHOT));
    assert_true(corio_loop_has(l, CORIO_FEAT_BUF_RING));
    /* Readiness waits, and a close that ends the ops waiting on its fd. */
    assert_true(corio_loop_has(l, CORIO_FEAT_CANCEL_FD));
    assert_true(corio_loop_has(l, CORIO_FEAT_POLL));
    assert_true(corio_loop_has(l, CORIO_FEAT_POLL_MULTISHOT));
    assert_false(corio_loop_has(l, CORIO_FEAT_SQPOLL));
    assert_false(corio_loop_has(l, CORIO_FEAT_DEFER_TASKRUN));
    corio_loop_free(l);
}

/* ---- files on the worker pool, plain registered buffers, plain send_zc -------------------------- */

struct files {
    char dir[256];
    int dirfd;
};

static int files_body(void *arg)
{
    struct files *f = arg;
    int fd = corio_openat(f->dirfd, "data", O_RDWR | O_CREAT | O_TRUNC, 0600, T_BOUND);
    if (!T_EXPECT(fd >= 0))
        return -1;
    static unsigned char out[1 << 20], in[1 << 20];
    t_fill(out, sizeof(out), 5, 0);
    T_EXPECT_EQ(corio_write_all(fd, out, sizeof(out), 0, NULL, T_BOUND), sizeof(out));
    T_EXPECT_EQ(corio_fsync(fd, 0, T_BOUND), 0);
    T_EXPECT_EQ(corio_fsync(fd, 1, T_BOUND), 0);
    struct statx st;
    T_EXPECT_EQ(corio_statx(f->dirfd, "data", 0, STATX_SIZE, &st, T_BOUND), 0);
    T_EXPECT_EQ(st.stx_size, sizeof(out));
    T_EXPECT_EQ(corio_read_all(fd, in, sizeof(in), 0, NULL, T_BOUND), sizeof(in));
    T_EXPECT_EQ(t_check(in, sizeof(in), 5, 0), -1);
    /* Registered buffers are plain buffers here: the fixed forms read and write. */
    struct iovec reg = {in, 4096};
    T_EXPECT_EQ(corio_buffers_register(NULL, &reg, 1), 0);
    memset(in, 0, 4096);
    T_EXPECT_EQ(corio_read_fixed(fd, in, 4096, 8192, 0, T_BOUND), 4096);
    T_EXPECT_EQ(t_check(in, 4096, 5, 8192), -1);
    T_EXPECT_EQ(corio_write_fixed(fd, in, 16, 0, 0, T_BOUND), 16);
    T_EXPECT_EQ(corio_buffers_unregister(NULL), 0);
    T_EXPECT_EQ(corio_openat(f->dirfd, "missing", O_RDONLY, 0, T_BOUND), -ENOENT);
    T_EXPECT_EQ(corio_close(fd), 0);
    /* A pipe's and a socket's zero-copy send is a plain one. */
    int sv[2];
    if (T_EXPECT_EQ(t_tcp_pair(sv), 0)) {
        T_EXPECT_EQ(corio_send_zc(sv[0], out, 100000, 0, T_BOUND), 100000);
        T_EXPECT_EQ(corio_recv_all(sv[1], in, 100000, NULL, T_BOUND), 100000);
        T_EXPECT_EQ(t_check(in, 100000, 5, 0), -1);
        corio_close(sv[0]);
        corio_close(sv[1]);
    }
    return 0;
}

static void test_epoll_files_and_emulations(void **state)
{
    (void)state;
    struct files f;
    assert_int_equal(t_mkdtemp(f.dir, sizeof(f.dir)), 0);
    f.dirfd = open(f.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f.dirfd >= 0);
    struct corio_loop *l = epoll_loop();
    assert_int_equal(t_run1(l, files_body, &f), 0);
    corio_loop_free(l);
    close(f.dirfd);
    t_rmtree(f.dir);
    t_expect_ok();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_epoll_fallback_seccomp_eperm),
        T_GUARD_TEST(test_epoll_fallback_seccomp_enosys),
        T_GUARD_TEST(test_epoll_serves),
        T_GUARD_TEST(test_epoll_choice),
        T_GUARD_TEST(test_epoll_features),
        T_GUARD_TEST(test_epoll_files_and_emulations),
    };
    /* No io_uring check: this backend is for where there is none. */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
