/* Tests of engine/http/client.c and engine/http/response_head.c: the response head parser, and the
 * client against corio's own server and against a tiny server written here that sends what
 * corio's server never does (chunk extensions and trailers, close-delimited bodies, interim
 * responses, malformed and oversized heads, cut bodies, silence, connections closed under the
 * client's pool).
 *
 * Each client test runs on T_LOOP_FDS_TEST's loop, with its fd-leak check: the server in one
 * coroutine, the scenario in another. Expectations inside coroutines use T_EXPECT, checked after
 * the loop returns. Every wait has a deadline, and a watchdog stops a scenario that hangs. */
#include "helpers.h"

#include <corio/http.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BOUND_MS (t_on_valgrind() ? 20000 : 5000)
#define WATCHDOG_MS (t_on_valgrind() ? 60000 : 20000)

/* ---- the response head parser ---------------------------------------------------------------- */

/* Parses @s whole, and one byte at a time, expecting the same result. Returns it. */
static ssize_t parse(const char *s, const struct corio_http_limits *lim,
                     struct corio_http_response_head *r, struct corio_http_header *h, size_t nh)
{
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    size_t len = strlen(s);
    ssize_t whole = corio_http_parse_response(&p, s, len, lim, r, h, nh);
    corio_http_parser_init(&p);
    ssize_t step = -EAGAIN;
    for (size_t k = 1; k <= len && step == -EAGAIN; k++)
        step = corio_http_parse_response(&p, s, k, lim, r, h, nh);
    assert_int_equal(step, whole);
    return whole;
}

static void test_http_client_parse_response(void **state)
{
    (void)state;
    struct corio_http_response_head r;
    struct corio_http_header h[8];
    const char *v;
    size_t vl;

    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b c \r\n\r\nhello";
    assert_int_equal(parse(ok, NULL, &r, h, 8), strlen(ok) - 5);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.minor_version, 1);
    assert_int_equal(r.reason_len, 2);
    assert_memory_equal(r.reason, "OK", 2);
    assert_int_equal(r.content_length, 5);
    assert_false(r.chunked);
    assert_true(r.keep_alive);
    assert_int_equal(r.num_headers, 2);
    assert_int_equal(corio_http_response_header_get(&r, "x-a", &v, &vl), 0);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "b c", 3);
    assert_int_equal(corio_http_response_header_get(&r, "x-b", &v, &vl), -ENOENT);

    /* Chunked; an HTTP/1.0 head keeps alive only when it asks to; an empty reason, with or
     * without its SP; no framing field means a body delimited by the close. */
    assert_true(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", NULL, &r, h, 8) > 0);
    assert_true(r.chunked);
    assert_int_equal(r.content_length, -1);
    assert_true(parse("HTTP/1.0 200 OK\r\nConnection: x, Keep-Alive\r\n\r\n", NULL, &r, h, 8) > 0);
    assert_true(r.keep_alive);
    assert_true(parse("HTTP/1.0 200 OK\r\n\r\n", NULL, &r, h, 8) > 0);
    assert_false(r.keep_alive);
    assert_true(parse("HTTP/1.1 404 \r\nConnection: close\r\n\r\n", NULL, &r, h, 8) > 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.reason_len, 0);
    assert_false(r.keep_alive);
    assert_true(parse("HTTP/1.1 204\r\n\r\n", NULL, &r, h, 8) > 0);
    assert_int_equal(r.status, 204);
    assert_true(parse("HTTP/1.1 200 OK\r\n\r\n", NULL, &r, h, 8) > 0);
    assert_int_equal(r.content_length, -1);
    assert_false(r.chunked);

    /* Malformed heads, each refused as soon as its bytes show it. */
    static const char *const bad[] = {
        "HTTX/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "SSH-2.0-OpenSSH",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
        assert_int_equal(corio_http_parse_response(&p, bad[i], strlen(bad[i]), NULL, &r, h, 8),
                         -EBADMSG);
    }
    assert_int_equal(
        parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", NULL, &r, h, 8),
        -EOPNOTSUPP);
    assert_int_equal(parse("HTTP/2.0 200 OK\r\n\r\n", NULL, &r, h, 8), -EPROTONOSUPPORT);

    /* Limits: a head over max_head_bytes, and more fields than allowed, are -EMSGSIZE. */
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    lim.max_head_bytes = 32;
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nX-Long-Field: 0123456789\r\n\r\n", &lim, &r, h, 8),
                     -EMSGSIZE);
    assert_int_equal(parse("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", NULL, &r, h, 1), -EMSGSIZE);
}

/* ---- servers under the client ---------------------------------------------------------------- */

struct env;
typedef void scenario_fn(struct env *e);

struct env {
    scenario_fn *scenario;
    struct corio_http_server *s; /* corio's server, or NULL for the hand-written one */
    int lfd;
    uint16_t port;
    corio_id server_co;
    struct corio_group conns; /* the hand-written server's connections */
    struct corio_http_client *cl;
    unsigned accepted; /* the hand-written server's connections so far */
};

static const char hello_body[] = "hello\n";

/* A canned answer of corio's server: a status and a body (NULL: none). */
struct answer {
    int status;
    const char *body;
};

static const struct answer hello = {200, hello_body}, nocontent = {204, NULL};

/* Answers the struct answer that @arg points to. */
static int h_answer(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    const struct answer *a = arg;
    (void)req;
    size_t len = a->body ? strlen(a->body) : 0;
    return corio_http_respond(c, a->status, a->body ? "text/plain" : NULL, a->body, len,
                              CORIO_FOREVER);
}

/* A chunked response of 64 KiB in pieces of 1000 bytes, t_fill's pattern with seed 7. */
static int h_chunked(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    int err = corio_http_respond_start(c, 200, "application/octet-stream", -1, CORIO_FOREVER);
    char piece[1000];
    for (size_t off = 0; err == 0 && off < 65536; off += sizeof(piece)) {
        size_t n = 65536 - off < sizeof(piece) ? 65536 - off : sizeof(piece);
        t_fill(piece, n, 7, off);
        err = corio_http_write(c, piece, n, CORIO_FOREVER);
    }
    return err ? err : corio_http_finish(c, CORIO_FOREVER);
}

/* Answers the request body back, with "<method> " before it. */
static int h_echo(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)arg;
    size_t cap = 256 * 1024, len = 0;
    char *out = malloc(cap);
    if (!out)
        return -ENOMEM;
    memcpy(out, req->method_str, req->method_len);
    out[req->method_len] = ' ';
    len = req->method_len + 1;
    for (;;) {
        ssize_t r = corio_http_read_body(c, out + len, cap - len, CORIO_FOREVER);
        if (r <= 0) {
            int err =
                r < 0 ? (int)r : corio_http_respond(c, 200, "text/plain", out, len, CORIO_FOREVER);
            free(out);
            return err;
        }
        len += (size_t)r;
    }
}

/* What the hand-written server answers each request with, by its target. */
static const char *canned(const char *target, unsigned nth)
{
    if (strncmp(target, "/chunked", 8) == 0)
        return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5;ext=\"q\"\r\nhello\r\n1 \r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    if (strncmp(target, "/close", 6) == 0)
        return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end\n";
    if (strncmp(target, "/interim", 8) == 0)
        return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
               "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    if (strncmp(target, "/bad", 4) == 0)
        return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nBad Field: x\r\n\r\nok";
    if (strncmp(target, "/notcorio", 9) == 0)
        return "220 smtp.example.com ESMTP\r\n";
    if (strncmp(target, "/cutchunk", 9) == 0)
        return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort";
    if (strncmp(target, "/cut", 4) == 0)
        return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this";
    if (strncmp(target, "/drop2", 6) == 0 && nth > 0)
        return NULL; /* the second request on a connection: close without a word */
    return "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes";
}

struct hconn {
    struct env *e;
    int fd;
};

/* Reads one request head on @fd into @buf. Returns its length, 0 at EOF, or -errno. */
static ssize_t read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end)
            return end + 4 - buf;
        if (len + 1 == cap)
            return -E2BIG;
        ssize_t r = corio_recv(fd, buf + len, cap - 1 - len, 0, CORIO_FOREVER);
        if (r <= 0)
            return r;
        len += (size_t)r;
    }
}

/* One connection of the hand-written server: answers each request as canned() says; a target
 * "/hang" gets no answer, "/big" a head far over the client's limit, and "/finafter" its answer
 * and then the end of the connection. */
static int hand_conn(void *arg)
{
    struct hconn *hc = arg;
    char req[4096];
    for (unsigned nth = 0;; nth++) {
        ssize_t n = read_request(hc->fd, req, sizeof(req));
        if (n <= 0)
            break;
        const char *target = strchr(req, ' ') + 1;
        if (strncmp(target, "/rst", 4) == 0) {
            t_set_linger0(hc->fd); /* the close sends a RST */
            break;
        }
        if (strncmp(target, "/hang", 5) == 0) {
            corio_sleep(CORIO_FOREVER);
            break;
        }
        if (strncmp(target, "/big", 4) == 0) {
            static char big[20000];
            int k = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX-Big: ");
            memset(big + k, 'x', sizeof(big) - (size_t)k);
            corio_send_all(hc->fd, big, sizeof(big), NULL, CORIO_FOREVER);
            break;
        }
        const char *out = canned(target, nth);
        if (!out)
            break;
        if (corio_send_all(hc->fd, out, strlen(out), NULL, CORIO_FOREVER) < 0)
            break;
        if (strncmp(target, "/close", 6) == 0 || strncmp(target, "/cut", 4) == 0 ||
            strncmp(target, "/notcorio", 9) == 0 || strncmp(target, "/finafter", 9) == 0)
            break;
    }
    corio_close(hc->fd);
    free(hc);
    return 0;
}

static int hand_serve(void *arg)
{
    struct env *e = arg;
    for (;;) {
        int fd = corio_accept(e->lfd, NULL, NULL, 0, CORIO_FOREVER);
        if (fd < 0)
            return fd;
        e->accepted++;
        struct hconn *hc = malloc(sizeof(*hc));
        if (!hc || corio_group_spawn(NULL, &e->conns, hand_conn, hc) != 0) {
            free(hc);
            corio_close(fd);
            continue;
        }
        hc->e = e;
        hc->fd = fd;
    }
}

static int corio_serve(void *arg)
{
    struct env *e = arg;
    return corio_http_serve(e->s, e->lfd);
}

static int env_main(void *arg)
{
    struct env *e = arg;
    T_EXPECT_EQ(corio_group_init(&e->conns, 0), 0);
    if (!T_EXPECT_EQ(corio_spawn(&e->server_co, NULL, e->s ? corio_serve : hand_serve, e), 0))
        return -1;
    corio_id wd = t_watchdog_spawn(WATCHDOG_MS);
    e->scenario(e);
    corio_http_client_free(e->cl);
    e->cl = NULL;
    T_EXPECT_EQ(corio_cancel(e->server_co), 0);
    T_EXPECT_EQ(corio_join(e->server_co, NULL, T_DL(BOUND_MS)), 0);
    corio_group_cancel(&e->conns);
    T_EXPECT_EQ(corio_group_wait(&e->conns, T_DL(BOUND_MS)), 0);
    t_watchdog_end(wd);
    return 0;
}

/* Runs @fn against corio's server (@corio) or the hand-written one, with a client made with
 * @o (NULL: defaults). */
static void run(void **state, scenario_fn *fn, bool corio, const struct corio_http_client_opts *o)
{
    struct env e;
    memset(&e, 0, sizeof(e));
    e.scenario = fn;
    if (corio) {
        assert_int_equal(corio_http_server_new(&e.s, NULL), 0);
        assert_int_equal(corio_http_route(e.s, "GET", "/hello", h_answer, (void *)&hello), 0);
        assert_int_equal(corio_http_route(e.s, "GET", "/chunked", h_chunked, NULL), 0);
        assert_int_equal(corio_http_route(e.s, NULL, "/echo", h_echo, NULL), 0);
        assert_int_equal(corio_http_route(e.s, "GET", "/nocontent", h_answer, (void *)&nocontent),
                         0);
    }
    e.lfd = corio_listen_tcp("127.0.0.1", 0, 64, 0);
    assert_true(e.lfd >= 0);
    e.port = (uint16_t)corio_local_port(e.lfd);
    assert_int_equal(corio_http_client_new(&e.cl, o), 0);
    int ret = t_run1(*state, env_main, &e);
    close(e.lfd);
    corio_http_server_free(e.s);
    t_expect_ok();
    assert_int_equal(ret, 0);
}

/* A request of @method for @target to @e's server. */
static struct corio_http_client_request req_of(struct env *e, const char *method,
                                               const char *target)
{
    struct corio_http_client_request rq = {
        .method = method, .host = "127.0.0.1", .port = e->port, .target = target};
    return rq;
}

/* Fetches @target with @method into @buf, expecting @status. Returns the body length or -errno. */
static ssize_t fetch(struct env *e, const char *method, const char *target, char *buf, size_t cap,
                     int status)
{
    struct corio_http_client_request rq = req_of(e, method, target);
    struct corio_http_exchange x;
    ssize_t n = corio_http_client_fetch(e->cl, &x, &rq, buf, cap, T_DL(BOUND_MS));
    if (n >= 0)
        T_EXPECT_EQ(x.status, status);
    corio_http_client_end(&x);
    return n;
}

/* ---- against corio's server ------------------------------------------------------------------ */

static void sc_corio_basic(struct env *e)
{
    static char buf[70000];
    /* Three GETs, one connection: the pool hands it back each time. */
    for (int i = 0; i < 3; i++) {
        ssize_t n = fetch(e, "GET", "/hello", buf, sizeof(buf), 200);
        if (T_EXPECT_EQ(n, sizeof(hello_body) - 1))
            T_EXPECT(memcmp(buf, hello_body, (size_t)n) == 0);
    }
    /* HEAD: the head says 6 bytes, and none follow; the connection stays usable. */
    struct corio_http_client_request rq = req_of(e, "HEAD", "/hello");
    struct corio_http_exchange x;
    T_EXPECT_EQ(corio_http_client_send(e->cl, &x, &rq, T_DL(BOUND_MS)), 200);
    if (x.head) {
        T_EXPECT_EQ(x.head->content_length, 6);
        const char *v;
        size_t vl;
        T_EXPECT_EQ(corio_http_response_header_get(x.head, "server", &v, &vl), 0);
        T_EXPECT_EQ(corio_http_client_read(&x, buf, sizeof(buf), T_DL(BOUND_MS)), 0);
    }
    corio_http_client_end(&x);
    T_EXPECT_EQ(fetch(e, "GET", "/nocontent", buf, sizeof(buf), 204), 0);

    /* A chunked body, read whole, then again in reads of 7 bytes. */
    ssize_t n = fetch(e, "GET", "/chunked", buf, sizeof(buf), 200);
    T_EXPECT_EQ(n, 65536);
    T_EXPECT_EQ(t_check(buf, 65536, 7, 0), -1);
    rq = req_of(e, "GET", "/chunked");
    T_EXPECT_EQ(corio_http_client_send(e->cl, &x, &rq, T_DL(BOUND_MS)), 200);
    size_t got = 0;
    for (;;) {
        ssize_t r = corio_http_client_read(&x, buf + got, 7, T_DL(BOUND_MS));
        if (r <= 0) {
            T_EXPECT_EQ(r, 0);
            break;
        }
        got += (size_t)r;
    }
    corio_http_client_end(&x);
    T_EXPECT_EQ(got, 65536);
    T_EXPECT_EQ(t_check(buf, 65536, 7, 0), -1);

    /* A body that does not fit: -ENOSPC, and that connection is not reused. */
    T_EXPECT_EQ(fetch(e, "GET", "/hello", buf, 3, 200), -ENOSPC);
    T_EXPECT_EQ(fetch(e, "GET", "/hello", buf, sizeof(buf), 200), 6);

    const struct corio_http_stats *st = corio_http_server_stats(e->s);
    const struct corio_http_client_counters *cs = corio_http_client_stats(e->cl);
    T_EXPECT_EQ(st->connections, 2);
    T_EXPECT_EQ(cs->connects, 2);
    T_EXPECT_EQ(cs->requests, 9);
    T_EXPECT_EQ(cs->reused, 7);
}

static void test_http_client_corio(void **state)
{
    run(state, sc_corio_basic, true, NULL);
}

/* A body source that yields @left bytes of t_fill's pattern (seed 9), 333 at a time. */
struct source {
    size_t off, total;
};

static ssize_t source_read(void *arg, void *buf, size_t len, int64_t deadline)
{
    (void)deadline;
    struct source *s = arg;
    size_t n = s->total - s->off;
    if (n > len)
        n = len;
    if (n > 333)
        n = 333;
    t_fill(buf, n, 9, s->off);
    s->off += n;
    return (ssize_t)n;
}

static void sc_corio_bodies(struct env *e)
{
    static char out[200000], body[100000];
    t_fill(body, sizeof(body), 9, 0);
    struct corio_http_header hdr = {"X-Test", 6, "yes", 3};
    /* From memory, small (with the head in one send) and large (after it). */
    size_t sizes[] = {10, sizeof(body)};
    for (size_t i = 0; i < 2; i++) {
        struct corio_http_client_request rq = req_of(e, "POST", "/echo");
        rq.headers = &hdr;
        rq.num_headers = 1;
        rq.body = body;
        rq.body_len = sizes[i];
        struct corio_http_exchange x;
        ssize_t n = corio_http_client_fetch(e->cl, &x, &rq, out, sizeof(out), T_DL(BOUND_MS));
        T_EXPECT_EQ(x.status, 200);
        if (T_EXPECT_EQ(n, 5 + sizes[i]))
            T_EXPECT(memcmp(out, "POST ", 5) == 0 && memcmp(out + 5, body, sizes[i]) == 0);
        corio_http_client_end(&x);
    }
    /* Streamed: chunked (unknown length), then with a Content-Length. */
    int64_t lengths[] = {-1, 50000};
    for (size_t i = 0; i < 2; i++) {
        struct source src = {0, 50000};
        struct corio_http_client_request rq = req_of(e, "PUT", "/echo");
        rq.body_fn = source_read;
        rq.body_arg = &src;
        rq.body_length = lengths[i];
        struct corio_http_exchange x;
        ssize_t n = corio_http_client_fetch(e->cl, &x, &rq, out, sizeof(out), T_DL(BOUND_MS));
        if (T_EXPECT_EQ(n, 4 + 50000))
            T_EXPECT(memcmp(out, "PUT ", 4) == 0 && t_check(out + 4, 50000, 9, 0) == -1);
        corio_http_client_end(&x);
    }
    /* Refused requests: a framing field of the caller's, CR in a value, a bad method. */
    struct corio_http_header bad[] = {{"Content-Length", 14, "1", 1}, {"X", 1, "a\r\nb", 4}};
    for (size_t i = 0; i < 2; i++) {
        struct corio_http_client_request rq = req_of(e, "GET", "/hello");
        rq.headers = &bad[i];
        rq.num_headers = 1;
        struct corio_http_exchange x;
        T_EXPECT_EQ(corio_http_client_send(e->cl, &x, &rq, T_DL(BOUND_MS)), -EINVAL);
        corio_http_client_end(&x);
    }
    struct corio_http_client_request rq = req_of(e, "G T", "/hello");
    struct corio_http_exchange x;
    T_EXPECT_EQ(corio_http_client_send(e->cl, &x, &rq, T_DL(BOUND_MS)), -EINVAL);
    T_EXPECT_EQ(corio_http_server_stats(e->s)->connections, 1);
    /* A host name, resolved: a pool of its own, so a connection of its own. */
    rq = req_of(e, "GET", "/hello");
    rq.host = "localhost";
    T_EXPECT_EQ(corio_http_client_fetch(e->cl, &x, &rq, out, sizeof(out), T_DL(BOUND_MS)), 6);
    corio_http_client_end(&x);
    T_EXPECT_EQ(corio_http_server_stats(e->s)->connections, 2);
}

static void test_http_client_bodies(void **state)
{
    run(state, sc_corio_bodies, true, NULL);
}

/* Idle connections past idle_timeout are closed, without a call of the client's to notice. */
static void sc_idle_timeout(struct env *e)
{
    char buf[64];
    T_EXPECT_EQ(fetch(e, "GET", "/hello", buf, sizeof(buf), 200), 6);
    T_EXPECT_EQ(corio_http_server_stats(e->s)->open, 1);
    t_sleep_ms(200);
    T_EXPECT_EQ(corio_http_server_stats(e->s)->open, 0);
    T_EXPECT_EQ(fetch(e, "GET", "/hello", buf, sizeof(buf), 200), 6);
    T_EXPECT_EQ(fetch(e, "GET", "/hello", buf, sizeof(buf), 200), 6);
    T_EXPECT_EQ(corio_http_server_stats(e->s)->connections, 2);
    T_EXPECT_EQ(corio_http_client_stats(e->cl)->stale, 1);
}

static void test_http_client_idle_timeout(void **state)
{
    struct corio_http_client_opts o = {.idle_timeout = CORIO_MS(50)};
    run(state, sc_idle_timeout, true, &o);
}

/* ---- against the hand-written server --------------------------------------------------------- */

/* A drain of the loop closes the idle connections at once, and the client's coroutine ends. */
static int drain_main(void *arg)
{
    struct env *e = arg;
    T_EXPECT_EQ(corio_group_init(&e->conns, 0), 0);
    if (!T_EXPECT_EQ(corio_spawn(&e->server_co, NULL, hand_serve, e), 0))
        return -1;
    char buf[64];
    T_EXPECT_EQ(fetch(e, "GET", "/x", buf, sizeof(buf), 200), 3);
    T_EXPECT_EQ(corio_loop_drain(corio_loop_current(), T_DL(BOUND_MS)), 0);
    /* The server's connection ends when the client closes its end: long before idle_timeout. */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_group_wait(&e->conns, T_DL(BOUND_MS)), 0);
    T_EXPECT(t_ms_since(t0) < 2000);
    int ret = 0;
    T_EXPECT_EQ(corio_join(e->server_co, &ret, T_DL(BOUND_MS)), 0);
    T_EXPECT_EQ(ret, -ESHUTDOWN);
    return 0;
}

static void test_http_client_drain(void **state)
{
    struct env e;
    memset(&e, 0, sizeof(e));
    e.lfd = corio_listen_tcp("127.0.0.1", 0, 64, 0);
    assert_true(e.lfd >= 0);
    e.port = (uint16_t)corio_local_port(e.lfd);
    assert_int_equal(corio_http_client_new(&e.cl, NULL), 0);
    int ret = t_run1(*state, drain_main, &e);
    corio_http_client_free(e.cl);
    close(e.lfd);
    t_expect_ok();
    assert_int_equal(ret, 0);
}

static void sc_hand_bodies(struct env *e)
{
    char buf[256];
    /* Chunk extensions and trailers; the connection is reused after. */
    ssize_t n = fetch(e, "GET", "/chunked", buf, sizeof(buf), 200);
    if (T_EXPECT_EQ(n, 12))
        T_EXPECT(memcmp(buf, "hello, world", 12) == 0);
    n = fetch(e, "GET", "/interim", buf, sizeof(buf), 200);
    if (T_EXPECT_EQ(n, 2))
        T_EXPECT(memcmp(buf, "ok", 2) == 0);
    T_EXPECT_EQ(e->accepted, 1);
    /* A body delimited by the close: read to the end, and the connection is not pooled. */
    n = fetch(e, "GET", "/close", buf, sizeof(buf), 200);
    if (T_EXPECT_EQ(n, 14))
        T_EXPECT(memcmp(buf, "until the end\n", 14) == 0);
    T_EXPECT_EQ(fetch(e, "GET", "/x", buf, sizeof(buf), 200), 3);
    T_EXPECT_EQ(e->accepted, 2);
}

static void test_http_client_hand_bodies(void **state)
{
    run(state, sc_hand_bodies, false, NULL);
}

static void sc_hand_errors(struct env *e)
{
    char buf[256];
    T_EXPECT_EQ(fetch(e, "GET", "/bad", buf, sizeof(buf), 0), -EBADMSG);
    T_EXPECT_EQ(fetch(e, "GET", "/notcorio", buf, sizeof(buf), 0), -EBADMSG);
    T_EXPECT_EQ(fetch(e, "GET", "/big", buf, sizeof(buf), 0), -EMSGSIZE);
    T_EXPECT_EQ(fetch(e, "GET", "/cut", buf, sizeof(buf), 200), -ECONNRESET);
    T_EXPECT_EQ(fetch(e, "GET", "/cutchunk", buf, sizeof(buf), 200), -ECONNRESET);
    T_EXPECT_EQ(fetch(e, "GET", "/rst", buf, sizeof(buf), 0), -ECONNRESET);
    /* No answer: the deadline ends the wait. */
    struct corio_http_client_request rq = req_of(e, "GET", "/hang");
    struct corio_http_exchange x;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_http_client_send(e->cl, &x, &rq, t0 + CORIO_MS(100)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 100);
    corio_http_client_end(&x);
    /* Nothing listens on a port just closed: refused. */
    int fd = corio_listen_tcp("127.0.0.1", 0, 1, 0);
    T_EXPECT(fd >= 0);
    rq.port = (uint16_t)corio_local_port(fd);
    corio_close(fd);
    T_EXPECT_EQ(corio_http_client_send(e->cl, &x, &rq, T_DL(BOUND_MS)), -ECONNREFUSED);
    /* Reading an ended exchange is refused too. */
    T_EXPECT_EQ(corio_http_client_read(&x, buf, sizeof(buf), T_DL(BOUND_MS)), -EINVAL);
}

static void test_http_client_hand_errors(void **state)
{
    run(state, sc_hand_errors, false, NULL);
}

/* The server closes pooled connections: after its answer (seen before the next request, and
 * dropped), and at the next request (the request is sent again on a new connection if it may be,
 * and fails if not). */
static void sc_hand_closed(struct env *e)
{
    char buf[64];
    const struct corio_http_client_counters *cs = corio_http_client_stats(e->cl);
    T_EXPECT_EQ(fetch(e, "GET", "/close", buf, sizeof(buf), 200), 14);
    T_EXPECT_EQ(fetch(e, "GET", "/drop2", buf, sizeof(buf), 200), 3);
    T_EXPECT_EQ(e->accepted, 2);
    /* The second request on that connection is dropped by the server: retried. */
    T_EXPECT_EQ(fetch(e, "GET", "/drop2", buf, sizeof(buf), 200), 3);
    T_EXPECT_EQ(cs->retries, 1);
    T_EXPECT_EQ(e->accepted, 3);
    /* Not for a POST, which the server may have acted on. */
    struct corio_http_client_request rq = req_of(e, "POST", "/drop2");
    rq.body = "x";
    rq.body_len = 1;
    struct corio_http_exchange x;
    T_EXPECT_EQ(corio_http_client_send(e->cl, &x, &rq, T_DL(BOUND_MS)), -ECONNRESET);
    T_EXPECT_EQ(cs->retries, 1);
    /* A connection the server closed while idle is seen and dropped before use: no retry. */
    T_EXPECT_EQ(fetch(e, "GET", "/finafter", buf, sizeof(buf), 200), 3);
    T_EXPECT_EQ(e->accepted, 4);
    t_sleep_ms(50);
    T_EXPECT_EQ(cs->stale, 0);
    T_EXPECT_EQ(fetch(e, "GET", "/x", buf, sizeof(buf), 200), 3);
    T_EXPECT_EQ(cs->stale, 1);
    T_EXPECT_EQ(cs->retries, 1);
    T_EXPECT_EQ(e->accepted, 5);
}

static void test_http_client_hand_closed(void **state)
{
    run(state, sc_hand_closed, false, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_client_parse_response),
        T_LOOP_FDS_TEST(test_http_client_corio),
        T_LOOP_FDS_TEST(test_http_client_bodies),
        T_LOOP_FDS_TEST(test_http_client_idle_timeout),
        T_LOOP_FDS_TEST(test_http_client_drain),
        T_LOOP_FDS_TEST(test_http_client_hand_bodies),
        T_LOOP_FDS_TEST(test_http_client_hand_errors),
        T_LOOP_FDS_TEST(test_http_client_hand_closed),
    };
    return T_RUN_TESTS(tests);
}
