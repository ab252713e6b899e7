/* Tests of engine/http/server.c: the server, not the parser (test_http_parser.c covers that).
 *
 * Each test runs a corio_http_server in-process on the test's loop: corio_http_serve() in one
 * coroutine, listening on 127.0.0.1 port 0 (or on an abstract Unix SOCK_SEQPACKET socket where a
 * test counts the server's sends: there every send is one record and every recv returns one), and
 * the scenario in a client coroutine that speaks raw bytes to it. The client reads and checks each
 * response (status line, headers, exact body by Content-Length), so a stray or missing byte shows
 * up as a framing error in the next response. Every client wait has a deadline, and a watchdog
 * coroutine stops the loop if a scenario hangs anyway. Expectations inside coroutines are recorded
 * with T_EXPECT (cmocka's asserts cannot longjmp off a coroutine stack) and checked afterwards. */
#include "helpers.h"

#include <corio/http.h>

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* A generous bound for waits that should end soon: hitting it fails the test instead of hanging. */
#define BOUND_MS (t_on_valgrind() ? 20000 : 5000)
#define HTTP_BOUND T_DL(BOUND_MS)
/* How late a timer may fire and still pass: loaded machines, sanitizers and valgrind. */
#define LATE_MS (t_on_valgrind() ? 3000.0 : 1000.0)
/* The whole scenario must end by then. */
#define WATCHDOG_MS (t_on_valgrind() ? 60000 : 20000)

/* ---- the server under test and its routes ---------------------------------------------------- */

struct env;
typedef void scenario_fn(struct env *e);

struct env {
    struct corio_http_server_opts opts; /* what the server is created with */
    bool seqpacket;                     /* listen on a Unix SOCK_SEQPACKET socket, not TCP */
    scenario_fn *scenario;              /* the client side, run in a coroutine */
    void *arg;                          /* for the scenario */
    struct corio_http_server *s;        /* the server */
    int lfd;                            /* its listening socket */
    uint16_t port;                      /* TCP: its port */
    struct sockaddr_un sun;             /* seqpacket: its abstract address */
    socklen_t sun_len;
    corio_id server_co;            /* the coroutine in corio_http_serve */
    bool server_joined;            /* the scenario already cancelled and joined it */
    int serve_ret;                 /* what corio_http_serve returned */
    struct corio_http_stats stats; /* the server's counters when it ended */
};

static const char hello_body[] = "hello\n";

static int h_hello(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    return corio_http_respond(c, 200, "text/plain", hello_body, sizeof(hello_body) - 1,
                              CORIO_FOREVER);
}

/* Answers /alike/NAME with body NAME and Content-Type "text/NAME", status 201 for a NAME that
 * starts with 'c', else 200; the type is written into the same buffer each time, so that a
 * server keeping a head for alike responses must look at the type's bytes, not its address. */
static int h_alike(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)arg;
    static char ctype[32];
    const char *name = req->target + strlen("/alike/");
    size_t len = req->target_len - strlen("/alike/");
    snprintf(ctype, sizeof(ctype), "text/%.*s", (int)len, name);
    return corio_http_respond(c, name[0] == 'c' ? 201 : 200, ctype, name, len, CORIO_FOREVER);
}

static int h_submitted(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    return corio_http_respond(c, 201, "text/plain", "created\n", 8, CORIO_FOREVER);
}

/* The deadlines some handlers pass to the calls they make, in ms from the handler's start: a
 * route's argument points to one, and NULL means CORIO_FOREVER. */
static int64_t ms_100 = 100, ms_5000 = 5000;

/* Returns the deadline that route argument @arg asks for, counted from @start. */
static int64_t arg_deadline(void *arg, int64_t start)
{
    return arg ? start + CORIO_MS(*(const int64_t *)arg) : CORIO_FOREVER;
}

/* The error h_echo's last failed body read returned, 0 if none did since it was reset. */
static int echo_err;

/* Answers "<method> <target>\n" followed by the request body, which it reads in pieces of 7 bytes
 * (odd on purpose, so that reads end inside chunks), under the deadline @arg asks for. A body
 * error is answered with the status corio_http_status gives it (the body deadline's -ETIMEDOUT
 * with 408), and kept in echo_err. */
static int h_echo(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    int64_t deadline = arg_deadline(arg, corio_now());
    size_t cap = 256 * 1024;
    char *out = malloc(cap);
    if (!out)
        return -ENOMEM;
    int n = snprintf(out, cap, "%.*s %.*s\n", (int)req->method_len, req->method_str,
                     (int)req->target_len, req->target);
    size_t len = n > 0 ? (size_t)n : 0;
    for (;;) {
        size_t want = cap - len < 7 ? cap - len : 7;
        ssize_t r = corio_http_read_body(c, out + len, want, deadline);
        if (r < 0) {
            free(out);
            echo_err = (int)r;
            int status = corio_http_status((int)r);
            const char *reason = corio_http_reason(status);
            corio_http_respond(c, status, "text/plain", reason, strlen(reason), CORIO_FOREVER);
            return (int)r;
        }
        if (r == 0 || want == 0)
            break;
        len += (size_t)r;
    }
    int err = corio_http_respond(c, 200, "text/plain", out, len, CORIO_FOREVER);
    free(out);
    return err;
}

/* Responds without reading the request body. */
static int h_ignore(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    return corio_http_respond(c, 200, "text/plain", "ignored\n", 8, CORIO_FOREVER);
}

/* Returns without responding: the server must answer 500 and close. */
static int h_silent(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)c;
    (void)req;
    (void)arg;
    return 0;
}

/* Responds, then fails: the response stands and the connection closes. */
static int h_fail(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    corio_http_respond(c, 200, "text/plain", "failed\n", 7, CORIO_FOREVER);
    return -EIO;
}

/* Sleeps far longer than any test: only a cancel ends it. */
static int h_sleep(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    int err = corio_sleep(corio_now() + CORIO_SEC(60));
    if (err == 0)
        corio_http_respond(c, 200, "text/plain", "late\n", 5, CORIO_FOREVER);
    return err;
}

/* Streams "0123456789" ten times with corio_http_respond_start and corio_http_write, with a header
 * field of its own. */
static int h_stream(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    int err = corio_http_add_header(c, "X-Stream", "yes");
    if (err == 0)
        err = corio_http_respond_start(c, 200, "text/plain", 100, CORIO_FOREVER);
    for (int i = 0; i < 10 && err == 0; i++)
        err = corio_http_write(c, "0123456789", 10, CORIO_FOREVER);
    return err;
}

/* Sleeps SLOW_MS, past the short head, idle and body timeouts of the deadline tests, then
 * answers: the server's bounds must not reach into a handler. */
#define SLOW_MS 500
static int h_slow(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    int err = corio_sleep(corio_now() + CORIO_MS(SLOW_MS));
    return err ? err : corio_http_respond(c, 200, "text/plain", "slow\n", 5, CORIO_FOREVER);
}

/* Answers, then returns with a deadline of its own still set (20 ms from now): it must end with
 * the handler, not cut the connection's next wait. */
static int h_leave_deadline(struct corio_http_conn *c, const struct corio_http_request *req,
                            void *arg)
{
    (void)req;
    (void)arg;
    int err = corio_set_deadline(corio_now() + CORIO_MS(20), NULL);
    return err ? err : corio_http_respond(c, 200, "text/plain", "left\n", 5, CORIO_FOREVER);
}

/* h_echo (with @arg) under a deadline of the handler's own, 100 ms from its start: earlier than
 * the body deadline, so the body read ends then (and the handler answers 408). */
static int h_hurried(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    int64_t prev;
    int err = corio_set_deadline(corio_now() + CORIO_MS(100), &prev);
    if (err)
        return err;
    err = h_echo(c, req, arg);
    corio_set_deadline(prev, NULL);
    return err;
}

/* What h_flood saw: the error that ended its writes, and how long the failing write took. */
static struct {
    bool done;       /* h_flood has returned */
    int err;         /* the first failed corio_http_write */
    double write_ms; /* the duration of that call */
    int64_t written; /* body bytes written before it */
} flood;

/* Promises a body of 1 GiB and writes it in 64 KiB pieces, each under the deadline @arg asks for
 * from the handler's start, until a write fails: against a client that reads nothing, the write
 * bound (the idle timeout) or that deadline, whichever is earlier, must end it. */
static int h_flood(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    int64_t deadline = arg_deadline(arg, corio_now());
    static char piece[64 * 1024];
    int64_t total = (int64_t)1 << 30;
    memset(&flood, 0, sizeof(flood));
    flood.err = corio_http_respond_start(c, 200, "application/octet-stream", total, CORIO_FOREVER);
    while (flood.err == 0 && flood.written < total) {
        int64_t t0 = corio_now();
        flood.err = corio_http_write(c, piece, sizeof(piece), deadline);
        flood.write_ms = t_ms_since(t0);
        if (flood.err == 0)
            flood.written += (int64_t)sizeof(piece);
    }
    flood.done = true;
    return flood.err;
}

/* Answers with a deadline that has already passed: a response that fits the output buffer does not
 * wait, so the deadline does not come into it. */
static int h_respond_late(struct corio_http_conn *c, const struct corio_http_request *req,
                          void *arg)
{
    (void)req;
    (void)arg;
    return corio_http_respond(c, 200, "text/plain", "late\n", 5, corio_now() - 1);
}

/* Field lines corio_http_add_header must refuse with -EINVAL: bad names, values that could end
 * the line or inject another, and the fields the server writes itself. */
static const struct {
    const char *name, *value;
} bad_fields[] = {
    {NULL, "v"},
    {"X-Null-Value", NULL},
    {"", "v"},
    {"Bad Name", "v"},
    {"X:Y", "v"},
    {"X\r\nY", "v"},
    {"X-Inject", "a\r\nX-Injected: yes"},
    {"X-Lf", "a\nX-Injected: yes"},
    {"X-Cr", "a\rb"},
    {"X-Ctl", "a\x01"},
    {"X-Del", "a\x7f"},
    {"Content-Length", "5"},
    {"transfer-encoding", "chunked"},
    {"CONNECTION", "close"},
    {"Date", "today"},
    {"Server", "other"},
    {"Content-Type", "text/html"},
};

/* What the add-header handlers saw. */
static struct {
    int bad[sizeof(bad_fields) / sizeof(bad_fields[0])]; /* each bad field's result */
    int good;  /* the first failure among the valid fields, or 0 */
    int after; /* corio_http_add_header once the response has started */
    int fill;  /* fields of 100 bytes that fitted before -ENOSPC */
    int full;  /* the result that ended the filling */
    int last;  /* the field that fills the room to the byte */
    int over;  /* one more field of 5 bytes */
} added;

/* Tries every bad field, adds valid ones (one of them twice), answers, then tries to add more. */
static int h_add_headers(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    for (size_t i = 0; i < sizeof(bad_fields) / sizeof(bad_fields[0]); i++)
        added.bad[i] = corio_http_add_header(c, bad_fields[i].name, bad_fields[i].value);
    static const char *const good[][2] = {
        {"X-One", "1"},
        {"Set-Cookie", "a=b"},
        {"Set-Cookie", "c=d; Path=/"},
        {"X-Empty", ""},
        {"X-Tab", "a\tb"},
        {"X-Utf8", "caf\xc3\xa9"},
        {"x-lower", "v"},
        {"X-Token!#$%&'*+-.^_`|~", "v"},
    };
    added.good = 0;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]) && added.good == 0; i++)
        added.good = corio_http_add_header(c, good[i][0], good[i][1]);
    int err = corio_http_respond(c, 200, "text/plain", "added\n", 6, CORIO_FOREVER);
    added.after = corio_http_add_header(c, "X-After", "1");
    return err;
}

/* Fills the room for added fields with fields of 100 bytes until one does not fit, then fills it
 * to the byte, and answers. */
static int h_add_fill(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    char name[24], value[128];
    memset(value, 'v', 86);
    value[86] = '\0';
    added.fill = 0;
    for (;;) {
        snprintf(name, sizeof(name), "X-Fill-%03d", added.fill); /* 10 + 86 + 4 bytes */
        added.full = corio_http_add_header(c, name, value);
        if (added.full != 0)
            break;
        added.fill++;
    }
    size_t left = CORIO_HTTP_ADDED_HEADER_BYTES - (size_t)added.fill * 100;
    memset(value, 'w', left - 10);
    value[left - 10] = '\0';
    added.last = corio_http_add_header(c, "X-Last", value); /* 6 + (left - 10) + 4 bytes */
    added.over = corio_http_add_header(c, "X", "");
    return corio_http_respond(c, 200, "text/plain", "full\n", 5, CORIO_FOREVER);
}

/* Adds a field and returns without answering: the server's 500 must leave it out. */
static int h_add_silent(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    return corio_http_add_header(c, "X-One", "1");
}

/* The body of the chunked handlers: pieces of these sizes (one above half the output buffer, so
 * that it goes out from the handler's memory), with t_fill's pattern of seed CHUNKED_SEED. */
static const size_t chunk_sizes[] = {1, 7, 300, 40000, 5};
#define CHUNKED_LEN (1 + 7 + 300 + 40000 + 5)
#define CHUNKED_SEED 9

/* How h_chunked ends its body: the route's argument points to one. */
enum { END_FINISH, END_WRITE0, END_RETURN, END_FAIL };
static int end_finish = END_FINISH, end_write0 = END_WRITE0, end_return = END_RETURN,
           end_fail = END_FAIL;

/* What h_chunked's calls returned. */
static struct {
    int start; /* corio_http_respond_start */
    int write; /* the first failed corio_http_write, or 0 */
    int end;   /* corio_http_finish or the corio_http_write of 0 bytes */
    int again; /* corio_http_finish once more */
    int after; /* corio_http_write once the body has ended */
} chunked_res;

/* Streams a body of unknown length (with a field of its own) in the pieces of chunk_sizes, then
 * ends it as its argument says. */
static int h_chunked(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    static char data[CHUNKED_LEN];
    t_fill(data, sizeof(data), CHUNKED_SEED, 0);
    int how = *(const int *)arg;
    memset(&chunked_res, 0, sizeof(chunked_res));
    int err = corio_http_add_header(c, "X-Streamed", "yes");
    if (err == 0)
        err = corio_http_respond_start(c, 200, "application/octet-stream", -1, HTTP_BOUND);
    chunked_res.start = err;
    size_t off = 0;
    for (size_t i = 0; i < sizeof(chunk_sizes) / sizeof(chunk_sizes[0]) && err == 0; i++) {
        err = corio_http_write(c, data + off, chunk_sizes[i], HTTP_BOUND);
        off += chunk_sizes[i];
    }
    chunked_res.write = err;
    if (err || how == END_RETURN)
        return err;
    if (how == END_FAIL)
        return -EIO;
    if (how == END_FINISH)
        chunked_res.end = corio_http_finish(c, HTTP_BOUND);
    else
        chunked_res.end = corio_http_write(c, NULL, 0, HTTP_BOUND);
    chunked_res.again = corio_http_finish(c, HTTP_BOUND);
    chunked_res.after = corio_http_write(c, "x", 1, HTTP_BOUND);
    return chunked_res.end;
}

/* Set by the client once it has received h_flush's first chunk. */
static struct corio_event flushed;

/* Streams "first", sends it with corio_http_flush and waits until the client has it, then
 * "second": without the flush, the first chunk would wait in the output buffer. */
static int h_flush(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    int err = corio_http_respond_start(c, 200, "text/plain", -1, HTTP_BOUND);
    if (err == 0)
        err = corio_http_write(c, "first", 5, HTTP_BOUND);
    if (err == 0)
        err = corio_http_flush(c, HTTP_BOUND);
    if (err == 0)
        err = corio_event_wait(&flushed, HTTP_BOUND);
    if (err == 0)
        err = corio_http_write(c, "second", 6, HTTP_BOUND);
    return err ? err : corio_http_finish(c, HTTP_BOUND);
}

/* What h_addr got from corio_http_peer_addr and corio_http_local_addr. */
static struct {
    int peer_ret, local_ret, again_ret;
    struct sockaddr_storage peer, local, again;
    socklen_t peer_len, local_len, again_len;
} addr_res;

/* Reads both ends of the connection (the local one twice) and answers. */
static int h_addr(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    memset(&addr_res, 0xa5, sizeof(addr_res));
    addr_res.peer_ret = corio_http_peer_addr(c, &addr_res.peer, &addr_res.peer_len);
    addr_res.local_ret = corio_http_local_addr(c, &addr_res.local, &addr_res.local_len);
    addr_res.again_ret = corio_http_local_addr(c, &addr_res.again, &addr_res.again_len);
    return corio_http_respond(c, 200, "text/plain", "addr\n", 5, CORIO_FOREVER);
}

static void add_routes(struct corio_http_server *s)
{
    assert_int_equal(corio_http_route(s, "GET", "/slow", h_slow, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/leave-deadline", h_leave_deadline, NULL), 0);
    assert_int_equal(corio_http_route(s, "POST", "/hurried", h_hurried, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/flood", h_flood, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/addr", h_addr, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/chunked", h_chunked, &end_finish), 0);
    assert_int_equal(corio_http_route(s, "GET", "/chunked-write0", h_chunked, &end_write0), 0);
    assert_int_equal(corio_http_route(s, "GET", "/chunked-return", h_chunked, &end_return), 0);
    assert_int_equal(corio_http_route(s, "GET", "/chunked-fail", h_chunked, &end_fail), 0);
    assert_int_equal(corio_http_route(s, "GET", "/flush", h_flush, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/add-headers", h_add_headers, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/add-fill", h_add_fill, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/add-silent", h_add_silent, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/flood-100ms", h_flood, &ms_100), 0);
    assert_int_equal(corio_http_route(s, "GET", "/flood-5s", h_flood, &ms_5000), 0);
    assert_int_equal(corio_http_route(s, "POST", "/echo-100ms", h_echo, &ms_100), 0);
    assert_int_equal(corio_http_route(s, "POST", "/echo-5s", h_echo, &ms_5000), 0);
    assert_int_equal(corio_http_route(s, "POST", "/hurried-5s", h_hurried, &ms_5000), 0);
    assert_int_equal(corio_http_route(s, "GET", "/respond-late", h_respond_late, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/hello", h_hello, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/alike/*", h_alike, NULL), 0);
    assert_int_equal(corio_http_route(s, NULL, "/echo", h_echo, NULL), 0);
    assert_int_equal(corio_http_route(s, "POST", "/submit", h_submitted, NULL), 0);
    assert_int_equal(corio_http_route(s, "DELETE", "/submit", h_submitted, NULL), 0);
    assert_int_equal(corio_http_route(s, NULL, "/ignore", h_ignore, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/silent", h_silent, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/fail", h_fail, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/sleep", h_sleep, NULL), 0);
    assert_int_equal(corio_http_route(s, "GET", "/stream/*", h_stream, NULL), 0);
}

static int serve_main(void *p)
{
    struct env *e = p;
    e->serve_ret = corio_http_serve(e->s, e->lfd);
    e->stats = *corio_http_server_stats(e->s);
    return 0;
}

static int env_main(void *p)
{
    struct env *e = p;
    if (!T_EXPECT_EQ(corio_spawn(&e->server_co, NULL, serve_main, e), 0))
        return -1;
    corio_id wd = t_watchdog_spawn(WATCHDOG_MS);
    e->scenario(e);
    if (!e->server_joined) {
        T_EXPECT_EQ(corio_cancel(e->server_co), 0);
        T_EXPECT_EQ(corio_join(e->server_co, NULL, HTTP_BOUND), 0);
    }
    t_watchdog_end(wd);
    return 0;
}

/* Creates the server of @e with the standard routes, listens, runs the scenario to its end, and
 * checks that the server ended cleanly: corio_http_serve returned -ECANCELED and no connection is
 * left open. */
static void run_env(struct corio_loop *loop, struct env *e)
{
    assert_int_equal(corio_http_server_new(&e->s, &e->opts), 0);
    add_routes(e->s);
    if (e->seqpacket) {
        e->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(e->lfd >= 0);
        static unsigned seq;
        memset(&e->sun, 0, sizeof(e->sun));
        e->sun.sun_family = AF_UNIX;
        int n = snprintf(e->sun.sun_path + 1, sizeof(e->sun.sun_path) - 1, "corio-http-test-%d-%u",
                         (int)getpid(), seq++);
        e->sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
        assert_int_equal(bind(e->lfd, (struct sockaddr *)&e->sun, e->sun_len), 0);
        assert_int_equal(listen(e->lfd, 64), 0);
    } else {
        e->lfd = corio_listen_tcp("127.0.0.1", 0, 64, 0);
        assert_true(e->lfd >= 0);
        int port = corio_local_port(e->lfd);
        assert_true(port > 0);
        e->port = (uint16_t)port;
    }
    e->serve_ret = 12345;
    int ret = t_run1(loop, env_main, e);
    close(e->lfd);
    corio_http_server_free(e->s);
    t_expect_ok();
    assert_int_equal(ret, 0);
    assert_int_equal(e->serve_ret, -ECANCELED);
    assert_int_equal(e->stats.open, 0);
}

/* ---- the client ------------------------------------------------------------------------------ */

struct client {
    int fd;    /* the connection, or -1 */
    char *buf; /* bytes received and not yet consumed: [0, len) */
    size_t cap, len;
    unsigned nrecv; /* recv calls that returned data */
};

struct resp {
    int status;      /* from the status line */
    char head[8192]; /* the head, NUL-terminated (cut if longer) */
    size_t head_len; /* its real length, with the blank line */
    int64_t clen;    /* Content-Length, or -1 */
    bool chunked;    /* the body came with the chunked coding, decoded by corio's decoder */
    bool to_eof;     /* the body had neither and ended with the connection */
    char *body;      /* body bytes (malloc'd, NUL-terminated), NULL for none */
    size_t body_len; /* bytes in body */
};

/* Names the case a table-driven scenario is on; failure messages start with it. */
static const char *case_name = "";

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

static bool cl_open_(struct env *e, struct client *c, const char *file, int line)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->cap = 64 * 1024;
    c->buf = malloc(c->cap);
    if (!t_expect_(c->buf != NULL, "malloc", file, line))
        return false;
    int fd;
    if (e->seqpacket) {
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            int err = corio_connect(fd, (struct sockaddr *)&e->sun, e->sun_len, HTTP_BOUND);
            if (err < 0) {
                close(fd);
                fd = err;
            }
        } else {
            fd = -errno;
        }
    } else {
        fd = corio_dial_tcp("127.0.0.1", e->port, HTTP_BOUND);
    }
    char msg[96];
    snprintf(msg, sizeof(msg), "connect to the server: %s", fd < 0 ? strerror(-fd) : "ok");
    if (!t_expect_(fd >= 0, msg, file, line))
        return false;
    c->fd = fd;
    return true;
}
#define CL_OPEN(e, c) cl_open_(e, c, __FILE__, __LINE__)

static void cl_close(struct client *c)
{
    if (c->fd >= 0)
        corio_close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
}

static bool cl_send_(struct client *c, const void *p, size_t len, const char *file, int line)
{
    ssize_t n = corio_send_all(c->fd, p, len, NULL, HTTP_BOUND);
    char msg[96];
    snprintf(msg, sizeof(msg), "send %zu bytes: %s", len, n < 0 ? strerror((int)-n) : "ok");
    return t_expect_(n == (ssize_t)len, msg, file, line);
}
#define CL_SEND(c, p, len) cl_send_(c, p, len, __FILE__, __LINE__)
#define CL_SENDS(c, s) cl_send_(c, s, strlen(s), __FILE__, __LINE__)

/* Receives more bytes into c->buf. Returns the count, 0 at EOF, or -errno. */
static ssize_t cl_fill(struct client *c, int64_t deadline)
{
    if (c->len == c->cap) {
        size_t ncap = c->cap * 2;
        char *nb = realloc(c->buf, ncap);
        if (!nb)
            return -ENOMEM;
        c->buf = nb;
        c->cap = ncap;
    }
    ssize_t n = corio_recv(c->fd, c->buf + c->len, c->cap - c->len, 0, deadline);
    if (n > 0) {
        c->len += (size_t)n;
        c->nrecv++;
    }
    return n;
}

static void cl_consume(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Finds header @name in @r and copies its value (NUL-terminated) to @out. Returns how many times
 * the header occurs. */
static int resp_hdr(const struct resp *r, const char *name, char *out, size_t cap)
{
    int found = 0;
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2] != '\r' && p[2] != '\0') {
        const char *line = p + 2;
        const char *end = strstr(line, "\r\n");
        if (!end)
            break;
        if ((size_t)(end - line) > nl + 1 && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            if (found++ == 0 && out) {
                size_t vl = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
                memcpy(out, v, vl);
                out[vl] = '\0';
            }
        }
        p = end;
    }
    return found;
}

/* Appends @len bytes at @p to @r's body, which stays NUL-terminated. Returns 0 or -ENOMEM. */
static int body_append(struct resp *r, const char *p, size_t len)
{
    char *b = realloc(r->body, r->body_len + len + 1);
    if (!b)
        return -ENOMEM;
    memcpy(b + r->body_len, p, len);
    r->body = b;
    r->body_len += len;
    b[r->body_len] = '\0';
    return 0;
}

/* Reads a chunked body into @r with corio's own decoder, decoding in place in c->buf. Returns 1,
 * -EPROTO for bad framing or an EOF inside the body, or the recv error. */
static int cl_chunked_body(struct client *c, struct resp *r, int64_t deadline)
{
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    lim.max_body_bytes = INT64_MAX;
    struct corio_http_chunked ch;
    corio_http_chunked_init(&ch, &lim);
    r->chunked = true;
    if (body_append(r, "", 0) < 0)
        return -ENOMEM;
    for (;;) {
        size_t produced = 0, consumed = 0;
        int ret = corio_http_chunked_decode(&ch, c->buf, c->len, &produced, &consumed);
        if (ret != 0 && ret != -EAGAIN)
            return -EPROTO;
        if (body_append(r, c->buf, produced) < 0)
            return -ENOMEM;
        cl_consume(c, consumed);
        if (ret == 0)
            return 1;
        ssize_t n = cl_fill(c, deadline);
        if (n <= 0)
            return n == 0 ? -EPROTO : (int)n;
    }
}

/* Reads a body that ends with the connection into @r. Returns 1 or the recv error. */
static int cl_body_to_eof(struct client *c, struct resp *r, int64_t deadline)
{
    r->to_eof = true;
    ssize_t n;
    while ((n = cl_fill(c, deadline)) > 0)
        ;
    if (n < 0)
        return (int)n;
    if (body_append(r, c->buf, c->len) < 0)
        return -ENOMEM;
    cl_consume(c, c->len);
    return 1;
}

/* Reads one response. @head_req: the request was HEAD, so no body follows whatever the headers
 * say. Returns 1 with *@r filled, 0 at EOF before any byte, or a negative error: -EPROTO for a
 * malformed response, else the recv error. */
static int cl_response(struct client *c, struct resp *r, bool head_req, int64_t deadline)
{
    memset(r, 0, sizeof(*r));
    r->clen = -1;
    char *end;
    for (;;) {
        end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end)
            break;
        if (c->len > 64 * 1024)
            return -EPROTO;
        ssize_t n = cl_fill(c, deadline);
        if (n == 0)
            return c->len == 0 ? 0 : -EPROTO;
        if (n < 0)
            return (int)n;
    }
    size_t hl = (size_t)(end - c->buf) + 4;
    r->head_len = hl;
    size_t keep = hl < sizeof(r->head) - 1 ? hl : sizeof(r->head) - 1;
    memcpy(r->head, c->buf, keep);
    r->head[keep] = '\0';
    if (hl < 13 || memcmp(c->buf, "HTTP/1.1 ", 9) != 0 || c->buf[12] != ' ')
        return -EPROTO;
    r->status = atoi(c->buf + 9);
    if (r->status < 100 || r->status > 999)
        return -EPROTO;
    char v[32];
    int ncl = resp_hdr(r, "Content-Length", v, sizeof(v));
    if (ncl > 1)
        return -EPROTO;
    if (ncl == 1) {
        char *e;
        r->clen = strtoll(v, &e, 10);
        if (*e || r->clen < 0)
            return -EPROTO;
    }
    char te[32], conn[32];
    int nte = resp_hdr(r, "Transfer-Encoding", te, sizeof(te));
    bool closing = resp_hdr(r, "Connection", conn, sizeof(conn)) == 1 && strcmp(conn, "close") == 0;
    cl_consume(c, hl);
    bool bodyless = head_req || r->status < 200 || r->status == 204 || r->status == 304;
    if (bodyless)
        return 1;
    if (nte > 0) {
        if (nte > 1 || ncl > 0 || strcmp(te, "chunked") != 0)
            return -EPROTO;
        return cl_chunked_body(c, r, deadline);
    }
    if (r->clen < 0) /* only a body that ends with the connection may go without a length */
        return closing ? cl_body_to_eof(c, r, deadline) : -EPROTO;
    while (c->len < (size_t)r->clen) {
        ssize_t n = cl_fill(c, deadline);
        if (n == 0)
            return -EPROTO;
        if (n < 0)
            return (int)n;
    }
    r->body = malloc((size_t)r->clen + 1);
    if (!r->body)
        return -ENOMEM;
    memcpy(r->body, c->buf, (size_t)r->clen);
    r->body[r->clen] = '\0';
    r->body_len = (size_t)r->clen;
    cl_consume(c, (size_t)r->clen);
    return 1;
}

/* Reads a response and checks its status. */
static bool expect_response_(struct client *c, struct resp *r, bool head_req, int status,
                             const char *file, int line)
{
    int ret = cl_response(c, r, head_req, HTTP_BOUND);
    char msg[200];
    if (ret != 1) {
        snprintf(msg, sizeof(msg), "%sa response with status %d: got %s (%d); head \"%.60s\"",
                 case_name, status,
                 ret == 0         ? "EOF"
                 : ret == -EPROTO ? "a malformed response"
                                  : strerror(-ret),
                 ret, r->head);
        return t_expect_(false, msg, file, line);
    }
    snprintf(msg, sizeof(msg), "%sstatus %d, want %d; head \"%.100s\"", case_name, r->status,
             status, r->head);
    return t_expect_(r->status == status, msg, file, line);
}
#define EXPECT_RESPONSE(c, r, status) expect_response_(c, r, false, status, __FILE__, __LINE__)
#define EXPECT_HEAD_RESPONSE(c, r, status) expect_response_(c, r, true, status, __FILE__, __LINE__)

static bool expect_hdr_(const struct resp *r, const char *name, const char *want, const char *file,
                        int line)
{
    char v[512], msg[800];
    int n = resp_hdr(r, name, v, sizeof(v));
    if (!want) {
        snprintf(msg, sizeof(msg), "%sno %s header; head \"%.200s\"", case_name, name, r->head);
        return t_expect_(n == 0, msg, file, line);
    }
    snprintf(msg, sizeof(msg), "%s%s: \"%s\" once: got %d time(s), \"%s\"", case_name, name, want,
             n, n ? v : "");
    return t_expect_(n == 1 && strcmp(v, want) == 0, msg, file, line);
}
#define EXPECT_HDR(r, name, want) expect_hdr_(r, name, want, __FILE__, __LINE__)
#define EXPECT_NO_HDR(r, name) expect_hdr_(r, name, NULL, __FILE__, __LINE__)

static bool expect_body_(const struct resp *r, const void *want, size_t len, const char *file,
                         int line)
{
    char msg[300];
    if (r->body_len != len) {
        snprintf(msg, sizeof(msg), "%sa body of %zu bytes, got %zu: \"%.80s\"", case_name, len,
                 r->body_len, r->body ? r->body : "");
        return t_expect_(false, msg, file, line);
    }
    if (len && memcmp(r->body, want, len) != 0) {
        size_t i = 0;
        while (((const char *)want)[i] == r->body[i])
            i++;
        snprintf(msg, sizeof(msg), "%sbody differs at byte %zu of %zu: \"%.60s\"", case_name, i,
                 len, r->body + i);
        return t_expect_(false, msg, file, line);
    }
    return true;
}
#define EXPECT_BODY(r, p, len) expect_body_(r, p, len, __FILE__, __LINE__)
#define EXPECT_BODY_STR(r, s) expect_body_(r, s, strlen(s), __FILE__, __LINE__)

/* Expects the server to have closed the connection: no byte left, then EOF. A reset counts too
 * when @allow_reset (after a request whose bytes the server did not read). */
static bool expect_closed_(struct client *c, bool allow_reset, const char *file, int line)
{
    char msg[160];
    if (c->len) {
        snprintf(msg, sizeof(msg), "%sEOF, got %zu more bytes: \"%.60s\"", case_name, c->len,
                 c->buf);
        return t_expect_(false, msg, file, line);
    }
    ssize_t n = cl_fill(c, HTTP_BOUND);
    if (n == 0 || (allow_reset && n == -ECONNRESET))
        return true;
    snprintf(msg, sizeof(msg), "%sEOF, got %zd (%s): \"%.60s\"", case_name, n,
             n < 0 ? strerror((int)-n) : "bytes", n > 0 ? c->buf : "");
    return t_expect_(false, msg, file, line);
}
#define EXPECT_CLOSED(c) expect_closed_(c, false, __FILE__, __LINE__)
#define EXPECT_CLOSED_OR_RESET(c) expect_closed_(c, true, __FILE__, __LINE__)

/* Sends @req and expects a response with @status. */
static bool roundtrip_(struct client *c, const char *req, struct resp *r, int status,
                       const char *file, int line)
{
    if (!cl_send_(c, req, strlen(req), file, line))
        return false;
    return expect_response_(c, r, strncmp(req, "HEAD ", 5) == 0, status, file, line);
}
#define ROUNDTRIP(c, req, r, status) roundtrip_(c, req, r, status, __FILE__, __LINE__)

/* ---- scenarios run on T_LOOP_FDS_TEST's loop, with its fd-leak check ------------------------ */

static void run_scenario(void **state, scenario_fn *fn, const struct corio_http_server_opts *o)
{
    struct env e;
    memset(&e, 0, sizeof(e));
    if (o)
        e.opts = *o;
    e.scenario = fn;
    run_env(*state, &e);
}

/* ---- routes, methods, keep-alive ------------------------------------------------------------- */

static void sc_get_head(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
        EXPECT_HDR(&r, "Content-Type", "text/plain");
        EXPECT_HDR(&r, "Content-Length", "6");
        EXPECT_HDR(&r, "Connection", "keep-alive");
        EXPECT_HDR(&r, "Server", "corio");
        T_EXPECT_EQ(resp_hdr(&r, "Date", NULL, 0), 1);
        EXPECT_BODY_STR(&r, hello_body);
    }
    resp_free(&r);
    /* HEAD of a GET route: the same headers and no body; the GET after it parses only if no
     * body byte was sent. A query string does not change the route. */
    if (ROUNDTRIP(&c, "HEAD /hello?x=1 HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
        EXPECT_HDR(&r, "Content-Length", "6");
        EXPECT_HDR(&r, "Content-Type", "text/plain");
    }
    resp_free(&r);
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, hello_body);
    resp_free(&r);
    /* A prefix route, streamed with respond_start + write. */
    if (ROUNDTRIP(&c, "GET /stream/abc HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
        EXPECT_HDR(&r, "Content-Length", "100");
        EXPECT_HDR(&r, "X-Stream", "yes");
        T_EXPECT_EQ(r.body_len, 100);
        T_EXPECT(r.body && memcmp(r.body + 90, "0123456789", 10) == 0);
    }
    resp_free(&r);
    cl_close(&c);
}

/* Responses alike but for one value each (type, length, status, Connection), pipelined so that
 * they are written in the same second: each head says its own values. */
static void sc_alike_heads(struct env *e)
{
    static const char *const names[] = {"ab", "ab", "xy", "abc", "ab", "cd", "ab", "ab"};
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    char reqs[512] = "";
    size_t n = sizeof(names) / sizeof(names[0]);
    for (size_t i = 0; i < n; i++) {
        char one[64];
        snprintf(one, sizeof(one), "GET /alike/%s HTTP/1.1\r\nHost: t\r\n%s\r\n", names[i],
                 i == n - 1 ? "Connection: close\r\n" : "");
        strcat(reqs, one);
    }
    CL_SENDS(&c, reqs);
    for (size_t i = 0; i < n; i++) {
        char type[32], len[24];
        snprintf(type, sizeof(type), "text/%s", names[i]);
        snprintf(len, sizeof(len), "%zu", strlen(names[i]));
        if (EXPECT_RESPONSE(&c, &r, names[i][0] == 'c' ? 201 : 200)) {
            EXPECT_HDR(&r, "Content-Type", type);
            EXPECT_HDR(&r, "Content-Length", len);
            EXPECT_HDR(&r, "Connection", i == n - 1 ? "close" : "keep-alive");
            EXPECT_BODY_STR(&r, names[i]);
        }
        resp_free(&r);
    }
    cl_close(&c);
}

static void test_http_server_alike_heads(void **state)
{
    run_scenario(state, sc_alike_heads, NULL);
}

static void test_http_server_get_head(void **state)
{
    run_scenario(state, sc_get_head, NULL);
}

/* Checks the fields h_add_headers adds in @r, and that nothing was injected. */
static void expect_added_fields(const struct resp *r)
{
    EXPECT_HDR(r, "X-One", "1");
    T_EXPECT_EQ(resp_hdr(r, "Set-Cookie", NULL, 0), 2);
    EXPECT_HDR(r, "X-Empty", "");
    EXPECT_HDR(r, "X-Tab", "a\tb");
    EXPECT_HDR(r, "X-Utf8", "caf\xc3\xa9");
    EXPECT_HDR(r, "x-lower", "v");
    EXPECT_HDR(r, "Content-Type", "text/plain");
    EXPECT_HDR(r, "Server", "corio");
    EXPECT_NO_HDR(r, "X-Injected");
    EXPECT_NO_HDR(r, "X-After");
    /* The server's own fields come first, the added ones after them in the order added. */
    const char *own = strstr(r->head, "Connection:"), *one = strstr(r->head, "X-One:");
    const char *c1 = strstr(r->head, "Set-Cookie: a=b"), *c2 = strstr(r->head, "Set-Cookie: c=d");
    T_EXPECT(own && one && c1 && c2 && own < one && one < c1 && c1 < c2);
}

static void sc_add_header(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    memset(&added, 0, sizeof(added));
    if (ROUNDTRIP(&c, "GET /add-headers HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
        expect_added_fields(&r);
        EXPECT_BODY_STR(&r, "added\n");
    }
    resp_free(&r);
    for (size_t i = 0; i < sizeof(bad_fields) / sizeof(bad_fields[0]); i++) {
        char msg[96];
        snprintf(msg, sizeof(msg), "bad field %zu (%s): %d, want -EINVAL", i,
                 bad_fields[i].name ? bad_fields[i].name : "NULL", added.bad[i]);
        t_expect_(added.bad[i] == -EINVAL, msg, __FILE__, __LINE__);
    }
    T_EXPECT_EQ(added.good, 0);
    T_EXPECT_EQ(added.after, -EALREADY);
    /* The same on a HEAD, without the body; then a request that adds nothing gets none. */
    if (ROUNDTRIP(&c, "HEAD /add-headers HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        expect_added_fields(&r);
    resp_free(&r);
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
        EXPECT_NO_HDR(&r, "X-One");
        EXPECT_NO_HDR(&r, "Set-Cookie");
    }
    resp_free(&r);
    /* The room is CORIO_HTTP_ADDED_HEADER_BYTES to the byte, and a field that does not fit
     * leaves the others in place. */
    if (ROUNDTRIP(&c, "GET /add-fill HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
        T_EXPECT_EQ(resp_hdr(&r, "X-Fill-000", NULL, 0), 1);
        char last[24];
        snprintf(last, sizeof(last), "X-Fill-%03d", added.fill - 1);
        T_EXPECT_EQ(resp_hdr(&r, last, NULL, 0), 1);
        T_EXPECT_EQ(resp_hdr(&r, "X-Last", NULL, 0), 1);
        EXPECT_BODY_STR(&r, "full\n");
    }
    resp_free(&r);
    T_EXPECT_EQ(added.fill, CORIO_HTTP_ADDED_HEADER_BYTES / 100);
    T_EXPECT_EQ(added.full, -ENOSPC);
    T_EXPECT_EQ(added.last, 0);
    T_EXPECT_EQ(added.over, -ENOSPC);
    /* A handler that adds a field and does not answer gets the server's 500 without it. */
    if (ROUNDTRIP(&c, "GET /add-silent HTTP/1.1\r\nHost: t\r\n\r\n", &r, 500)) {
        EXPECT_NO_HDR(&r, "X-One");
        EXPECT_HDR(&r, "Connection", "close");
    }
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_add_header(void **state)
{
    run_scenario(state, sc_add_header, NULL);
}

/* Expects @r to be h_chunked's whole response, framed as @chunked says (else ended by EOF). */
static void expect_chunked_resp(const struct resp *r, bool chunked)
{
    T_EXPECT_EQ(r->chunked, chunked);
    T_EXPECT_EQ(r->to_eof, !chunked);
    EXPECT_NO_HDR(r, "Content-Length");
    EXPECT_HDR(r, "Transfer-Encoding", chunked ? "chunked" : NULL);
    EXPECT_HDR(r, "Connection", chunked ? "keep-alive" : "close");
    EXPECT_HDR(r, "X-Streamed", "yes");
    if (T_EXPECT_EQ(r->body_len, CHUNKED_LEN))
        T_EXPECT_EQ(t_check(r->body, r->body_len, CHUNKED_SEED, 0), -1);
}

static void sc_chunked_response(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    /* HTTP/1.1: chunked, however the handler ends the body, and the connection goes on. */
    static const char *const paths[] = {"/chunked", "/chunked-write0", "/chunked-return"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        char req[96];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", paths[i]);
        if (ROUNDTRIP(&c, req, &r, 200))
            expect_chunked_resp(&r, true);
        resp_free(&r);
        T_EXPECT_EQ(chunked_res.start, 0);
        T_EXPECT_EQ(chunked_res.write, 0);
        if (i < 2) {
            T_EXPECT_EQ(chunked_res.end, 0);
            T_EXPECT_EQ(chunked_res.again, 0);
            T_EXPECT_EQ(chunked_res.after, -EINVAL);
        }
    }
    /* HEAD: the same head, no body. Then two pipelined, then a plain request. */
    if (ROUNDTRIP(&c, "HEAD /chunked HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
        EXPECT_HDR(&r, "Transfer-Encoding", "chunked");
        EXPECT_HDR(&r, "Connection", "keep-alive");
    }
    resp_free(&r);
    CL_SENDS(&c,
             "GET /chunked HTTP/1.1\r\nHost: t\r\n\r\nGET /chunked HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 2; i++) {
        if (EXPECT_RESPONSE(&c, &r, 200))
            expect_chunked_resp(&r, true);
        resp_free(&r);
    }
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, hello_body);
    resp_free(&r);
    cl_close(&c);
    /* HTTP/1.0, even one that asks for keep-alive: no length, no coding, the end of the
     * connection ends the body. */
    static const char *const http10[] = {
        "GET /chunked HTTP/1.0\r\n\r\n",
        "GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(http10) / sizeof(http10[0]); i++) {
        if (!CL_OPEN(e, &c))
            return;
        if (ROUNDTRIP(&c, http10[i], &r, 200))
            expect_chunked_resp(&r, false);
        resp_free(&r);
        cl_close(&c);
    }
    /* A handler that fails in the middle: the client gets no last chunk, and then EOF. */
    if (!CL_OPEN(e, &c))
        return;
    CL_SENDS(&c, "GET /chunked-fail HTTP/1.1\r\nHost: t\r\n\r\n");
    T_EXPECT_EQ(cl_response(&c, &r, false, HTTP_BOUND), -EPROTO);
    T_EXPECT(r.chunked && r.body_len == CHUNKED_LEN);
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_chunked_response(void **state)
{
    run_scenario(state, sc_chunked_response, NULL);
}

static void sc_flush(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    T_EXPECT_EQ(corio_event_init(&flushed), 0);
    /* The first chunk arrives while the handler still waits for the client to see it. */
    CL_SENDS(&c, "GET /flush HTTP/1.1\r\nHost: t\r\n\r\n");
    int64_t end = T_DL(2000);
    while (!memmem(c.buf, c.len, "5\r\nfirst\r\n", 10) && cl_fill(&c, end) > 0)
        ;
    T_EXPECT(memmem(c.buf, c.len, "5\r\nfirst\r\n", 10) != NULL);
    corio_event_set(&flushed);
    if (EXPECT_RESPONSE(&c, &r, 200)) {
        T_EXPECT(r.chunked);
        EXPECT_BODY_STR(&r, "firstsecond");
    }
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_flush(void **state)
{
    run_scenario(state, sc_flush, NULL);
}

/* Whether curl is on PATH. */
static bool have_curl(void)
{
    const char *path = getenv("PATH");
    char dir[512];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof(dir) - 6) {
            snprintf(dir, sizeof(dir), "%.*s/curl", (int)n, path);
            if (access(dir, X_OK) == 0)
                return true;
        }
        path += n + (path[n] == ':');
    }
    return false;
}

/* Runs curl with @args (after "curl -sS --noproxy 127.0.0.1 --max-time 10") against the server,
 * its standard output read into @out (cap bytes, *@len set) by this coroutine while the loop goes
 * on serving. Returns curl's exit status, or -errno. */
static int run_curl(const char *const *args, size_t nargs, char *out, size_t cap, size_t *len)
{
    const char *argv[16] = {"curl", "-sS", "--noproxy", "127.0.0.1", "--max-time", "10"};
    size_t argc = 6;
    for (size_t i = 0; i < nargs && argc < 15; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    int p[2];
    if (t_pipe(p, O_CLOEXEC) != 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
    pid_t pid;
    int sp = posix_spawnp(&pid, "curl", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (sp != 0) {
        close(p[0]);
        return -sp;
    }
    *len = 0;
    ssize_t n;
    while (*len < cap && (n = corio_read(p[0], out + *len, cap - *len, -1, HTTP_BOUND)) > 0)
        *len += (size_t)n;
    close(p[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -ECHILD;
}

static void sc_chunked_curl(struct env *e)
{
    static char data[CHUNKED_LEN], want[3 * CHUNKED_LEN], out[4 * CHUNKED_LEN];
    t_fill(data, sizeof(data), CHUNKED_SEED, 0);
    char url[3][64];
    snprintf(url[0], sizeof(url[0]), "http://127.0.0.1:%u/chunked", e->port);
    snprintf(url[1], sizeof(url[1]), "http://127.0.0.1:%u/chunked-return", e->port);
    snprintf(url[2], sizeof(url[2]), "http://127.0.0.1:%u/hello", e->port);
    /* HTTP/1.1: curl decodes both chunked bodies, and reuses the connection after each. */
    const char *const v11[] = {
        "--http1.1", "-w",   "\n%{http_code} %{num_connects} %header{transfer-encoding}|",
        url[0],      url[1], url[2],
    };
    size_t len, n = 0;
    for (int i = 0; i < 2; i++) {
        memcpy(want + n, data, sizeof(data));
        n += sizeof(data);
        n += (size_t)snprintf(want + n, sizeof(want) - n, "\n200 %d chunked|", i == 0);
    }
    n += (size_t)snprintf(want + n, sizeof(want) - n, "%s\n200 0 |", hello_body);
    T_EXPECT_EQ(run_curl(v11, sizeof(v11) / sizeof(v11[0]), out, sizeof(out), &len), 0);
    if (T_EXPECT_EQ(len, n))
        T_EXPECT(memcmp(out, want, n) == 0);
    /* HTTP/1.0: the body ends with the connection. */
    const char *const v10[] = {"--http1.0", "-w",
                               "\n%{http_code} %header{connection} %header{transfer-encoding}|",
                               url[0]};
    memcpy(want, data, sizeof(data));
    n = sizeof(data) + (size_t)snprintf(want + sizeof(data), 32, "\n200 close |");
    T_EXPECT_EQ(run_curl(v10, sizeof(v10) / sizeof(v10[0]), out, sizeof(out), &len), 0);
    if (T_EXPECT_EQ(len, n))
        T_EXPECT(memcmp(out, want, n) == 0);
}

static void test_http_server_chunked_curl(void **state)
{
    if (!have_curl()) {
        print_message("curl not found (apt-get install curl)\n");
        skip();
    }
    run_scenario(state, sc_chunked_curl, NULL);
}

/* Expects the @n bytes at @got to be the address @want (@want_len bytes). */
static void expect_addr_(const struct sockaddr_storage *got, socklen_t n, const void *want,
                         socklen_t want_len, const char *what, const char *file, int line)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "%s: %u bytes, want %u, family %d", what, (unsigned)n,
             (unsigned)want_len, got->ss_family);
    t_expect_(n == want_len && memcmp(got, want, n) == 0, msg, file, line);
}
#define EXPECT_ADDR(got, n, want, want_len, what)                                                  \
    expect_addr_(got, n, want, want_len, what, __FILE__, __LINE__)

static void sc_addresses(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    struct sockaddr_storage mine, theirs;
    socklen_t mine_len = sizeof(mine), theirs_len = sizeof(theirs);
    T_EXPECT_EQ(getsockname(c.fd, (struct sockaddr *)&mine, &mine_len), 0);
    T_EXPECT_EQ(getpeername(c.fd, (struct sockaddr *)&theirs, &theirs_len), 0);
    /* Twice on one connection: the same ends each time. */
    for (int i = 0; i < 2; i++) {
        if (ROUNDTRIP(&c, "GET /addr HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
            EXPECT_BODY_STR(&r, "addr\n");
        resp_free(&r);
        T_EXPECT_EQ(addr_res.peer_ret, 0);
        T_EXPECT_EQ(addr_res.local_ret, 0);
        T_EXPECT_EQ(addr_res.again_ret, 0);
        /* The server's peer is the client's own end, and its local end the client's peer. */
        EXPECT_ADDR(&addr_res.peer, addr_res.peer_len, &mine, mine_len, "peer");
        EXPECT_ADDR(&addr_res.local, addr_res.local_len, &theirs, theirs_len, "local");
        EXPECT_ADDR(&addr_res.again, addr_res.again_len, &theirs, theirs_len, "local again");
    }
    T_EXPECT_EQ(mine.ss_family, e->seqpacket ? AF_UNIX : AF_INET);
    cl_close(&c);
}

static void test_http_server_addresses(void **state)
{
    run_scenario(state, sc_addresses, NULL);
}

static void test_http_server_addresses_unix(void **state)
{
    struct env e;
    memset(&e, 0, sizeof(e));
    e.seqpacket = true;
    e.scenario = sc_addresses;
    run_env(*state, &e);
}

static void sc_404_405(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    if (ROUNDTRIP(&c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r, 404))
        EXPECT_HDR(&r, "Connection", "keep-alive");
    resp_free(&r);
    /* A route that is only a prefix of the path does not match. */
    ROUNDTRIP(&c, "GET /hello/x HTTP/1.1\r\nHost: t\r\n\r\n", &r, 404);
    resp_free(&r);
    ROUNDTRIP(&c, "HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r, 404);
    resp_free(&r);
    /* The path has a GET route: PUT gets 405 listing what the path supports. */
    if (ROUNDTRIP(&c, "PUT /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", &r, 405)) {
        EXPECT_HDR(&r, "Allow", "GET, HEAD");
        EXPECT_HDR(&r, "Content-Length", "0");
    }
    resp_free(&r);
    /* The path has POST and DELETE routes only: GET is not allowed there. RFC 9110 section
     * 15.5.6: Allow lists the target resource's methods. */
    if (ROUNDTRIP(&c, "GET /submit HTTP/1.1\r\nHost: t\r\n\r\n", &r, 405))
        EXPECT_HDR(&r, "Allow", "POST, DELETE");
    resp_free(&r);
    if (ROUNDTRIP(&c, "DELETE /submit HTTP/1.1\r\nHost: t\r\n\r\n", &r, 201))
        EXPECT_BODY_STR(&r, "created\n");
    resp_free(&r);
    /* After all that, the connection still serves. */
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, hello_body);
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_404_405(void **state)
{
    run_scenario(state, sc_404_405, NULL);
}

/* Expects @r's head to start as corio_http_format_response() starts one: the status line with
 * its reason phrase, a Date of the current second (wall clock, which the server reads coarsely:
 * a second behind is allowed), and Server. Puts the Date's time in *@t. */
static bool expect_head_start_(const struct resp *r, time_t *t, const char *file, int line)
{
    char want[96], msg[300];
    int n = snprintf(want, sizeof(want), "HTTP/1.1 %d %s\r\nDate: ", r->status,
                     corio_http_reason(r->status));
    *t = 0;
    bool ok = r->head_len > (size_t)n + CORIO_HTTP_DATE_LEN + 17 &&
              memcmp(r->head, want, (size_t)n) == 0 &&
              corio_http_parse_date(r->head + n, CORIO_HTTP_DATE_LEN, t) == 0 &&
              memcmp(r->head + n + CORIO_HTTP_DATE_LEN, "\r\nServer: corio\r\n", 17) == 0;
    time_t now = time(NULL);
    snprintf(msg, sizeof(msg), "%sa head starting \"%.40s\", dated %lld (now %lld): \"%.120s\"",
             case_name, want, (long long)*t, (long long)now, r->head);
    return t_expect_(ok && *t <= now && *t >= now - 1, msg, file, line);
}
#define EXPECT_HEAD_START(r, t) expect_head_start_(r, t, __FILE__, __LINE__)

/* The status line, Date and Server that start every head are kept from one response to the next:
 * a change of status, or of second, must show in the next head. */
static void sc_head_start(struct env *e)
{
    static const struct {
        const char *req;
        int status;
    } reqs[] = {
        {"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 200},
        {"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404},
        {"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404},
        {"DELETE /submit HTTP/1.1\r\nHost: t\r\n\r\n", 201},
        {"GET /submit HTTP/1.1\r\nHost: t\r\n\r\n", 405},
        {"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 200},
    };
    struct client c;
    struct resp r;
    time_t t = 0, before;
    if (!CL_OPEN(e, &c))
        return;
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        if (ROUNDTRIP(&c, reqs[i].req, &r, reqs[i].status))
            EXPECT_HEAD_START(&r, &t);
        resp_free(&r);
    }
    /* Into the next second of the wall clock, and a little more for its coarse reading. */
    before = t;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_NS(1000000000 - ts.tv_nsec) + CORIO_MS(30)), 0);
    if (ROUNDTRIP(&c, reqs[0].req, &r, 200) && EXPECT_HEAD_START(&r, &t))
        T_EXPECT(t > before);
    resp_free(&r);
    /* The server's own error response, which ends the connection. */
    if (ROUNDTRIP(&c, "GET / HTTP/1.1\r\nHost: t\r\nNo Colon\r\n\r\n", &r, 400))
        EXPECT_HEAD_START(&r, &t);
    resp_free(&r);
    EXPECT_CLOSED(&c);
    cl_close(&c);
}

static void test_http_server_head_start(void **state)
{
    run_scenario(state, sc_head_start, NULL);
}

static void sc_handler_errors(struct env *e)
{
    struct client c;
    struct resp r;
    /* No response from the handler: 500, then the connection closes. */
    if (CL_OPEN(e, &c)) {
        if (ROUNDTRIP(&c, "GET /silent HTTP/1.1\r\nHost: t\r\n\r\n", &r, 500))
            EXPECT_HDR(&r, "Connection", "close");
        resp_free(&r);
        EXPECT_CLOSED(&c);
    }
    cl_close(&c);
    /* A response, then an error from the handler: the response stands, the connection ends. */
    if (CL_OPEN(e, &c)) {
        if (ROUNDTRIP(&c, "GET /fail HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
            EXPECT_BODY_STR(&r, "failed\n");
        resp_free(&r);
        EXPECT_CLOSED(&c);
    }
    cl_close(&c);
}

static void test_http_server_handler_errors(void **state)
{
    run_scenario(state, sc_handler_errors, NULL);
}

static void sc_keep_alive(struct env *e)
{
    struct client c;
    struct resp r;
    /* HTTP/1.1: several requests on one connection, then "Connection: close" ends it. */
    if (CL_OPEN(e, &c)) {
        for (int i = 0; i < 5; i++) {
            if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
                EXPECT_HDR(&r, "Connection", "keep-alive");
                EXPECT_BODY_STR(&r, hello_body);
            }
            resp_free(&r);
        }
        if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r, 200)) {
            EXPECT_HDR(&r, "Connection", "close");
            EXPECT_BODY_STR(&r, hello_body);
        }
        resp_free(&r);
        EXPECT_CLOSED(&c);
    }
    cl_close(&c);
    /* HTTP/1.0 closes after one response by default. */
    if (CL_OPEN(e, &c)) {
        if (ROUNDTRIP(&c, "GET /hello HTTP/1.0\r\n\r\n", &r, 200)) {
            EXPECT_HDR(&r, "Connection", "close");
            EXPECT_BODY_STR(&r, hello_body);
        }
        resp_free(&r);
        EXPECT_CLOSED(&c);
    }
    cl_close(&c);
    /* HTTP/1.0 with "Connection: keep-alive" stays open until a request without it. */
    if (CL_OPEN(e, &c)) {
        for (int i = 0; i < 2; i++) {
            if (ROUNDTRIP(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r, 200))
                EXPECT_HDR(&r, "Connection", "keep-alive");
            resp_free(&r);
        }
        if (ROUNDTRIP(&c, "GET /hello HTTP/1.0\r\n\r\n", &r, 200))
            EXPECT_HDR(&r, "Connection", "close");
        resp_free(&r);
        EXPECT_CLOSED(&c);
    }
    cl_close(&c);
}

static void test_http_server_keep_alive(void **state)
{
    run_scenario(state, sc_keep_alive, NULL);
}

/* ---- pipelining and splits ------------------------------------------------------------------- */

static const char pipelined[] = "GET /echo?1 HTTP/1.1\r\nHost: t\r\n\r\n"
                                "GET /echo?2 HTTP/1.1\r\nHost: t\r\n\r\n"
                                "POST /echo?3 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"
                                "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                                "POST /echo?5 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                "\r\n3\r\nabc\r\n0\r\n\r\n"
                                "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
                                "GET /echo?7 HTTP/1.1\r\nHost: t\r\n\r\n";

/* Reads the responses to `pipelined`, in order. */
static void expect_pipelined_responses(struct client *c)
{
    struct resp r;
    if (EXPECT_RESPONSE(c, &r, 200))
        EXPECT_BODY_STR(&r, "GET /echo?1\n");
    resp_free(&r);
    if (EXPECT_RESPONSE(c, &r, 200))
        EXPECT_BODY_STR(&r, "GET /echo?2\n");
    resp_free(&r);
    if (EXPECT_RESPONSE(c, &r, 200))
        EXPECT_BODY_STR(&r, "POST /echo?3\nbody");
    resp_free(&r);
    if (EXPECT_HEAD_RESPONSE(c, &r, 200))
        EXPECT_HDR(&r, "Content-Length", "6");
    resp_free(&r);
    if (EXPECT_RESPONSE(c, &r, 200))
        EXPECT_BODY_STR(&r, "POST /echo?5\nabc");
    resp_free(&r);
    EXPECT_RESPONSE(c, &r, 404);
    resp_free(&r);
    if (EXPECT_RESPONSE(c, &r, 200))
        EXPECT_BODY_STR(&r, "GET /echo?7\n");
    resp_free(&r);
}

static void sc_pipelined(struct env *e)
{
    struct client c;
    if (!CL_OPEN(e, &c))
        return;
    for (int round = 0; round < 3; round++) {
        unsigned before = c.nrecv;
        if (!CL_SEND(&c, pipelined, sizeof(pipelined) - 1))
            break;
        expect_pipelined_responses(&c);
        T_EXPECT_EQ(c.len, 0);
        /* Over SOCK_SEQPACKET one recv returns one send of the server's: the seven responses
         * to one write of seven requests came in one send. */
        if (e->seqpacket)
            T_EXPECT_EQ(c.nrecv - before, 1);
    }
    cl_close(&c);
}

static void test_http_server_pipelined(void **state)
{
    run_scenario(state, sc_pipelined, NULL);
}

static void test_http_server_pipelined_one_send(void **state)
{
    struct env e;
    memset(&e, 0, sizeof(e));
    e.seqpacket = true;
    e.scenario = sc_pipelined;
    run_env(*state, &e);
}

/* Sends @p one byte per send, with a short sleep after each so that the server runs between
 * them and sees every split point. */
static bool send_bytewise_(struct client *c, const char *p, size_t len, const char *file, int line)
{
    for (size_t i = 0; i < len; i++) {
        if (!cl_send_(c, p + i, 1, file, line))
            return false;
        corio_sleep(corio_now() + CORIO_US(300));
    }
    return true;
}
#define SEND_BYTEWISE(c, s) send_bytewise_(c, s, strlen(s), __FILE__, __LINE__)

static void sc_split_every_byte(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    /* Leading empty lines, several fields, OWS around a value. */
    SEND_BYTEWISE(&c, "\r\nGET /echo?a=1&b=2 HTTP/1.1\r\nHost: example.org\r\n"
                      "User-Agent: split/1.0\r\nAccept:  */* \r\n\r\n");
    if (EXPECT_RESPONSE(&c, &r, 200))
        EXPECT_BODY_STR(&r, "GET /echo?a=1&b=2\n");
    resp_free(&r);
    SEND_BYTEWISE(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    if (EXPECT_RESPONSE(&c, &r, 200))
        EXPECT_BODY_STR(&r, "POST /echo\nhello world");
    resp_free(&r);
    SEND_BYTEWISE(&c, "PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5;ext=\"q\"\r\nhello\r\nA\r\n, chunked!\r\n0\r\nX-Trailer: t\r\n\r\n");
    if (EXPECT_RESPONSE(&c, &r, 200))
        EXPECT_BODY_STR(&r, "PUT /echo\nhello, chunked!");
    resp_free(&r);
    SEND_BYTEWISE(&c, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    if (EXPECT_HEAD_RESPONSE(&c, &r, 200))
        EXPECT_HDR(&r, "Content-Length", "6");
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_split_every_byte(void **state)
{
    run_scenario(state, sc_split_every_byte, NULL);
}

/* ---- request bodies -------------------------------------------------------------------------- */

static void sc_body_content_length(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    /* A body larger than the server's buffers, in two sends. */
    size_t n = 100000;
    char *body = malloc(n);
    char *want = malloc(n + 16);
    if (T_EXPECT(body && want)) {
        t_fill(body, n, 7, 0);
        char head[128];
        snprintf(head, sizeof(head),
                 "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
        CL_SENDS(&c, head);
        CL_SEND(&c, body, 1000);
        t_sleep_ms(5);
        CL_SEND(&c, body + 1000, n - 1000);
        memcpy(want, "POST /echo\n", 11);
        memcpy(want + 11, body, n);
        if (EXPECT_RESPONSE(&c, &r, 200))
            EXPECT_BODY(&r, want, n + 11);
        resp_free(&r);
    }
    free(body);
    free(want);
    /* An empty body, then a small one: the connection stays in step. */
    if (ROUNDTRIP(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, "POST /echo\n");
    resp_free(&r);
    if (ROUNDTRIP(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz", &r, 200))
        EXPECT_BODY_STR(&r, "POST /echo\nxyz");
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_body_content_length(void **state)
{
    run_scenario(state, sc_body_content_length, NULL);
}

static void sc_body_chunked(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    static const char body[] =
        "3;name=value\r\nabc\r\n10\r\n0123456789abcdef\r\n1\r\nZ\r\n"
        "1a\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n0\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n";
    /* Pieces of 1, 2, 3, 5, 8, ... bytes: the splits fall inside sizes, CRLFs and data. */
    CL_SENDS(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    size_t off = 0, a = 1, b = 2;
    while (off < sizeof(body) - 1) {
        size_t k = a < sizeof(body) - 1 - off ? a : sizeof(body) - 1 - off;
        CL_SEND(&c, body + off, k);
        off += k;
        size_t t = a + b;
        a = b;
        b = t;
        t_sleep_ms(2);
    }
    if (EXPECT_RESPONSE(&c, &r, 200))
        EXPECT_BODY_STR(&r, "POST /echo\nabc0123456789abcdefZABCDEFGHIJKLMNOPQRSTUVWXYZ");
    resp_free(&r);
    /* The trailer section was consumed exactly: the next request parses. */
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, hello_body);
    resp_free(&r);
    /* A chunked body in the same send as the request after it. */
    if (ROUNDTRIP(&c,
                  "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "2\r\nhi\r\n0\r\n\r\nGET /echo?next HTTP/1.1\r\nHost: t\r\n\r\n",
                  &r, 200))
        EXPECT_BODY_STR(&r, "POST /echo\nhi");
    resp_free(&r);
    if (EXPECT_RESPONSE(&c, &r, 200))
        EXPECT_BODY_STR(&r, "GET /echo?next\n");
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_body_chunked(void **state)
{
    run_scenario(state, sc_body_chunked, NULL);
}

static void sc_body_errors(struct env *e)
{
    struct client c;
    struct resp r;
    /* Bad chunk framing: the handler gets -EBADMSG and answers 400; the connection ends. */
    echo_err = 0;
    if (CL_OPEN(e, &c)) {
        if (ROUNDTRIP(&c,
                      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "zz\r\nabc\r\n0\r\n\r\n",
                      &r, 400)) {
            EXPECT_HDR(&r, "Connection", "close");
            EXPECT_BODY_STR(&r, "Bad Request");
        }
        resp_free(&r);
        EXPECT_CLOSED_OR_RESET(&c);
    }
    cl_close(&c);
    T_EXPECT_EQ(echo_err, -EBADMSG);
    /* A chunked body over max_body_bytes (1000): -EMSGSIZE, answered 413. */
    echo_err = 0;
    if (CL_OPEN(e, &c)) {
        if (ROUNDTRIP(&c,
                      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3e9\r\n",
                      &r, 413)) {
            EXPECT_HDR(&r, "Connection", "close");
            EXPECT_BODY_STR(&r, "Content Too Large");
        }
        resp_free(&r);
        EXPECT_CLOSED_OR_RESET(&c);
    }
    cl_close(&c);
    T_EXPECT_EQ(echo_err, -EMSGSIZE);
}

static void test_http_server_body_errors(void **state)
{
    struct corio_http_server_opts o = {.limits.max_body_bytes = 1000};
    run_scenario(state, sc_body_errors, &o);
}

static void sc_body_timeout(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    /* Three bytes of ten, then nothing: the handler's read fails at the body deadline (200 ms
     * after the head), and it can still answer; the connection then ends. */
    int64_t t0 = corio_now();
    CL_SENDS(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    if (EXPECT_RESPONSE(&c, &r, 408)) {
        double ms = t_ms_since(t0);
        T_EXPECT(ms >= 190.0);
        T_EXPECT(ms <= 200.0 + LATE_MS);
        EXPECT_HDR(&r, "Connection", "close");
        EXPECT_BODY_STR(&r, "Request Timeout");
    }
    resp_free(&r);
    EXPECT_CLOSED(&c);
    cl_close(&c);
    /* The same inside a chunked body. */
    if (!CL_OPEN(e, &c))
        return;
    CL_SENDS(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    if (EXPECT_RESPONSE(&c, &r, 408))
        EXPECT_HDR(&r, "Connection", "close");
    resp_free(&r);
    EXPECT_CLOSED(&c);
    cl_close(&c);
}

static void test_http_server_body_timeout(void **state)
{
    struct corio_http_server_opts o = {.body_timeout = CORIO_MS(200)};
    run_scenario(state, sc_body_timeout, &o);
}

static void sc_body_discarded(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    /* The handler does not read the body: the server drops it, and the request after it (in the
     * same send, and in a later one) is served. */
    size_t n = 50000;
    size_t cap = n + 512;
    char *req = malloc(cap);
    if (T_EXPECT(req)) {
        int h = snprintf(req, cap,
                         "POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
        memset(req + h, 'x', n);
        strcpy(req + (size_t)h + n, "GET /echo?after HTTP/1.1\r\nHost: t\r\n\r\n");
        CL_SEND(&c, req, strlen(req));
        if (EXPECT_RESPONSE(&c, &r, 200))
            EXPECT_BODY_STR(&r, "ignored\n");
        resp_free(&r);
        if (EXPECT_RESPONSE(&c, &r, 200))
            EXPECT_BODY_STR(&r, "GET /echo?after\n");
        resp_free(&r);
        /* The head first, the body later: the server reads it to discard it. */
        CL_SEND(&c, req, (size_t)h);
        if (EXPECT_RESPONSE(&c, &r, 200))
            EXPECT_BODY_STR(&r, "ignored\n");
        resp_free(&r);
        t_sleep_ms(5);
        CL_SEND(&c, req + h, n);
        if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
            EXPECT_BODY_STR(&r, hello_body);
        resp_free(&r);
    }
    free(req);
    /* The same with a chunked body. */
    if (ROUNDTRIP(&c,
                  "POST /ignore HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nabcde\r\n0\r\n\r\nGET /echo?chunked HTTP/1.1\r\nHost: t\r\n\r\n",
                  &r, 200))
        EXPECT_BODY_STR(&r, "ignored\n");
    resp_free(&r);
    if (EXPECT_RESPONSE(&c, &r, 200))
        EXPECT_BODY_STR(&r, "GET /echo?chunked\n");
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_body_discarded(void **state)
{
    run_scenario(state, sc_body_discarded, NULL);
}

static void sc_expect_continue(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    /* The interim response comes before the client sends any body byte. */
    CL_SENDS(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                 "Expect: 100-continue\r\n\r\n");
    if (EXPECT_RESPONSE(&c, &r, 100))
        T_EXPECT(strcmp(r.head, "HTTP/1.1 100 Continue\r\n\r\n") == 0);
    resp_free(&r);
    CL_SENDS(&c, "hello");
    if (EXPECT_RESPONSE(&c, &r, 200)) {
        EXPECT_BODY_STR(&r, "POST /echo\nhello");
        EXPECT_HDR(&r, "Connection", "keep-alive");
    }
    resp_free(&r);
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, hello_body);
    resp_free(&r);
    /* A handler that answers without reading: no 100, the final response says the connection
     * closes (the body will not come), and it does. */
    if (ROUNDTRIP(&c,
                  "POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  "Expect: 100-continue\r\n\r\n",
                  &r, 200)) {
        EXPECT_BODY_STR(&r, "ignored\n");
        EXPECT_HDR(&r, "Connection", "close");
    }
    resp_free(&r);
    EXPECT_CLOSED(&c);
    cl_close(&c);
}

static void test_http_server_expect_continue(void **state)
{
    run_scenario(state, sc_expect_continue, NULL);
}

/* ---- bad input and limits -------------------------------------------------------------------- */

struct bad_case {
    const char *what; /* named in a failure */
    const char *req;  /* the bytes sent */
    int status;       /* the expected answer, after which the server closes */
};

/* The requests that hit the size limits, filled in by build_bad_inputs(). */
static char big_target[160], big_field[1300], many_fields[512];

static const struct bad_case bad_cases[] = {
    {"malformed request line", "GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400},
    {"space in the target", "GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400},
    {"missing Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
    {"bare LF", "GET / HTTP/1.1\nHost: t\n\n", 400},
    {"bare LF in a field", "GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", 400},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n", 400},
    {"duplicate Content-Length",
     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
    {"Content-Length and Transfer-Encoding",
     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     "3\r\nabc\r\n0\r\n\r\n",
     400},
    {"space before the colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400},
    {"Content-Length above max_body_bytes",
     "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413},
    {"target above max_target_bytes", big_target, 414},
    {"more fields than max_headers", many_fields, 431},
    {"head above max_head_bytes", big_field, 431},
    {"unknown method", "BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", 501},
    {"Transfer-Encoding gzip", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
     501},
    {"Transfer-Encoding gzip, chunked",
     "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505},
    {"HTTP/3.1", "GET / HTTP/3.1\r\nHost: t\r\n\r\n", 505},
};

static void build_bad_inputs(void)
{
    /* max_target_bytes is 100: a 101-byte target. */
    char t[102];
    memset(t, 'a', sizeof(t));
    t[0] = '/';
    t[101] = '\0';
    snprintf(big_target, sizeof(big_target), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", t);
    /* max_head_bytes is 1024. */
    char v[1101];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    snprintf(big_field, sizeof(big_field), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", v);
    /* max_headers is 8: Host and 8 more. */
    size_t n = (size_t)snprintf(many_fields, sizeof(many_fields), "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 8; i++)
        n += (size_t)snprintf(many_fields + n, sizeof(many_fields) - n, "X-%d: %d\r\n", i, i);
    snprintf(many_fields + n, sizeof(many_fields) - n, "\r\n");
}

static void sc_bad_input(struct env *e)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        struct client c;
        struct resp r;
        if (!CL_OPEN(e, &c))
            return;
        char what[128];
        snprintf(what, sizeof(what), "[%s] ", bc->what);
        case_name = what;
        if (ROUNDTRIP(&c, bc->req, &r, bc->status)) {
            EXPECT_HDR(&r, "Connection", "close");
            char body[64];
            snprintf(body, sizeof(body), "%s\n", corio_http_reason(bc->status));
            EXPECT_BODY_STR(&r, body);
            /* RFC 9112 sections 2.2 and 6.3: after a request whose framing cannot be trusted
             * the server closes the connection; this server closes after every refused one. */
            EXPECT_CLOSED(&c);
        }
        case_name = "";
        resp_free(&r);
        cl_close(&c);
    }
    /* An immediate second request on a fresh connection still works. */
    struct client c;
    struct resp r;
    if (CL_OPEN(e, &c)) {
        ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200);
        resp_free(&r);
    }
    cl_close(&c);
}

static void sc_bad_input_check_stats(struct env *e)
{
    sc_bad_input(e);
    const struct corio_http_stats *st = corio_http_server_stats(e->s);
    T_EXPECT_EQ(st->bad_requests, sizeof(bad_cases) / sizeof(bad_cases[0]));
}

static void test_http_server_bad_input(void **state)
{
    build_bad_inputs();
    struct corio_http_server_opts o = {.limits = {.max_head_bytes = 1024,
                                                  .max_headers = 8,
                                                  .max_target_bytes = 100,
                                                  .max_body_bytes = 1000}};
    run_scenario(state, sc_bad_input_check_stats, &o);
}

/* ---- deadlines ------------------------------------------------------------------------------- */

static void sc_header_timeout(struct env *e)
{
    struct client c;
    struct resp r;
    int64_t t0 = corio_now();
    if (!CL_OPEN(e, &c))
        return;
    CL_SENDS(&c, "GET /hello HTTP/1.1\r\nHo");
    if (EXPECT_RESPONSE(&c, &r, 408)) {
        double ms = t_ms_since(t0);
        T_EXPECT(ms >= 190.0);
        T_EXPECT(ms <= 200.0 + LATE_MS);
        EXPECT_HDR(&r, "Connection", "close");
    }
    resp_free(&r);
    EXPECT_CLOSED(&c);
    cl_close(&c);
    T_EXPECT_EQ(corio_http_server_stats(e->s)->timeouts, 1);
    /* The deadline covers the head, not the connection: a second head on a kept-alive connection
     * gets its own 200 ms from the end of the first request. */
    if (!CL_OPEN(e, &c))
        return;
    for (int i = 0; i < 3; i++) {
        t_sleep_ms(120);
        if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
            EXPECT_BODY_STR(&r, hello_body);
        resp_free(&r);
    }
    cl_close(&c);
}

static void test_http_server_header_timeout(void **state)
{
    struct corio_http_server_opts o = {.header_timeout = CORIO_MS(200)};
    run_scenario(state, sc_header_timeout, &o);
}

static void sc_idle_timeout(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_HDR(&r, "Connection", "keep-alive");
    resp_free(&r);
    /* Nothing more is sent: the server closes after the idle timeout, without a 408. */
    int64_t t0 = corio_now();
    ssize_t n = cl_fill(&c, HTTP_BOUND);
    double ms = t_ms_since(t0);
    T_EXPECT_EQ(n, 0);
    T_EXPECT(ms >= 180.0);
    T_EXPECT(ms <= 200.0 + LATE_MS);
    cl_close(&c);
    T_EXPECT_EQ(corio_http_server_stats(e->s)->timeouts, 0);
    /* Traffic within the timeout keeps the connection. */
    if (!CL_OPEN(e, &c))
        return;
    for (int i = 0; i < 3; i++) {
        t_sleep_ms(100);
        ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200);
        resp_free(&r);
    }
    cl_close(&c);
}

static void test_http_server_idle_timeout(void **state)
{
    struct corio_http_server_opts o = {.idle_timeout = CORIO_MS(200),
                                       .header_timeout = CORIO_SEC(5)};
    run_scenario(state, sc_idle_timeout, &o);
}

static void sc_slowloris(struct env *e)
{
    struct client c;
    struct resp r;
    int64_t t0 = corio_now();
    if (!CL_OPEN(e, &c))
        return;
    /* One byte every 100 ms of an endless head: each byte arrives well within any per-read
     * timeout, but the head's absolute deadline (500 ms) still ends it. */
    static const char head[] =
        "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa";
    size_t sent = 0;
    ssize_t n = -ETIMEDOUT;
    while (sent < sizeof(head) - 1 && n == -ETIMEDOUT) {
        if (corio_send(c.fd, head + sent, 1, MSG_NOSIGNAL, HTTP_BOUND) != 1)
            break;
        sent++;
        n = cl_fill(&c, corio_now() + CORIO_MS(100));
    }
    double ms = t_ms_since(t0);
    T_EXPECT(n > 0);
    T_EXPECT(ms >= 490.0);
    T_EXPECT(ms <= 500.0 + LATE_MS);
    T_EXPECT(sent >= 4 && sent < sizeof(head) - 1);
    if (EXPECT_RESPONSE(&c, &r, 408))
        EXPECT_HDR(&r, "Connection", "close");
    resp_free(&r);
    EXPECT_CLOSED(&c);
    cl_close(&c);
    T_EXPECT_EQ(corio_http_server_stats(e->s)->timeouts, 1);
}

static void test_http_server_slowloris(void **state)
{
    struct corio_http_server_opts o = {.header_timeout = CORIO_MS(500)};
    run_scenario(state, sc_slowloris, &o);
}

static void sc_handler_deadlines(struct env *e)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    /* A handler that outlasts the head deadline (the first head on a connection: 100 ms from the
     * accept) and then the idle timeout (the second: 300 ms from the first response) still
     * answers, and the connection stays open. */
    for (int i = 0; i < 2; i++) {
        int64_t t0 = corio_now();
        if (ROUNDTRIP(&c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
            EXPECT_HDR(&r, "Connection", "keep-alive");
            EXPECT_BODY_STR(&r, "slow\n");
            T_EXPECT(t_ms_since(t0) >= SLOW_MS - 10.0);
        }
        resp_free(&r);
    }
    /* A deadline the handler leaves set ends with it: 100 ms later, well inside the idle timeout
     * but past the handler's 20 ms, the next request is served. */
    if (ROUNDTRIP(&c, "GET /leave-deadline HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, "left\n");
    resp_free(&r);
    t_sleep_ms(100);
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, hello_body);
    resp_free(&r);
    /* A handler's own deadline, earlier than the body deadline (5 s), bounds its body read. */
    int64_t t0 = corio_now();
    CL_SENDS(&c, "POST /hurried HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    if (EXPECT_RESPONSE(&c, &r, 408)) {
        double ms = t_ms_since(t0);
        T_EXPECT(ms >= 90.0);
        T_EXPECT(ms <= 100.0 + LATE_MS);
        EXPECT_HDR(&r, "Connection", "close");
    }
    resp_free(&r);
    EXPECT_CLOSED(&c);
    cl_close(&c);
    T_EXPECT_EQ(corio_http_server_stats(e->s)->timeouts, 0);
}

static void test_http_server_handler_deadlines(void **state)
{
    struct corio_http_server_opts o = {.header_timeout = CORIO_MS(100),
                                       .idle_timeout = CORIO_MS(300),
                                       .body_timeout = CORIO_SEC(5)};
    run_scenario(state, sc_handler_deadlines, &o);
}

/* Sends a partial body to @path, which reads it under some deadline, and checks that the 408 comes
 * after about @ms and ends the connection. */
static void expect_body_408_after(struct env *e, const char *path, double ms)
{
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    char req[128];
    snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
             path);
    echo_err = 0;
    int64_t t0 = corio_now();
    CL_SENDS(&c, req);
    if (EXPECT_RESPONSE(&c, &r, 408)) {
        double took = t_ms_since(t0);
        char msg[96];
        snprintf(msg, sizeof(msg), "%s: 408 after %.0f ms, want %.0f", path, took, ms);
        t_expect_(took >= ms - 10.0 && took <= ms + LATE_MS, msg, __FILE__, __LINE__);
        EXPECT_HDR(&r, "Connection", "close");
    }
    resp_free(&r);
    EXPECT_CLOSED(&c);
    cl_close(&c);
    T_EXPECT_EQ(echo_err, -ETIMEDOUT);
}

/* Asks @path on @c for a flood it does not read, and checks that the failing write took about @ms
 * and that bytes went out before it. */
static void expect_flood_timeout_after(struct client *c, const char *path, double ms)
{
    char req[128];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    flood.done = false;
    CL_SENDS(c, req);
    for (int64_t end = HTTP_BOUND; corio_now() < end && !flood.done;)
        t_sleep_ms(10);
    T_EXPECT(flood.done);
    T_EXPECT_EQ(flood.err, -ETIMEDOUT);
    char msg[96];
    snprintf(msg, sizeof(msg), "%s: write failed after %.0f ms, want %.0f", path, flood.write_ms,
             ms);
    t_expect_(flood.write_ms >= ms - 10.0 && flood.write_ms <= ms + LATE_MS, msg, __FILE__,
              __LINE__);
    T_EXPECT(flood.written > 0);
}

/* The server's bounds in sc_call_deadlines: far enough from the handlers' 100 ms and 5 s that a
 * timer late by up to LATE_MS (outside valgrind) still tells which deadline ended a wait. */
#define CALL_SERVER_MS 1500

static void sc_call_deadlines(struct env *e)
{
    /* A body read's own deadline, earlier than the body deadline, ends it at 100 ms; a later one
     * (5 s) leaves the body deadline to end it; and a deadline the handler set with
     * corio_set_deadline (100 ms) wins over a later one of the call. */
    expect_body_408_after(e, "/echo-100ms", 100.0);
    expect_body_408_after(e, "/echo-5s", CALL_SERVER_MS);
    expect_body_408_after(e, "/hurried-5s", 100.0);
    /* The same for a write to a peer that reads nothing, against the idle bound. */
    struct client c;
    if (CL_OPEN(e, &c))
        expect_flood_timeout_after(&c, "/flood-100ms", 100.0);
    cl_close(&c);
    if (CL_OPEN(e, &c))
        expect_flood_timeout_after(&c, "/flood-5s", CALL_SERVER_MS);
    cl_close(&c);
    /* A deadline that has passed does not fail a response that needs no wait. */
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    if (ROUNDTRIP(&c, "GET /respond-late HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
        EXPECT_HDR(&r, "Connection", "keep-alive");
        EXPECT_BODY_STR(&r, "late\n");
    }
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_call_deadlines(void **state)
{
    struct corio_http_server_opts o = {.idle_timeout = CORIO_MS(CALL_SERVER_MS),
                                       .body_timeout = CORIO_MS(CALL_SERVER_MS)};
    run_scenario(state, sc_call_deadlines, &o);
}

static void sc_slow_reader(struct env *e)
{
    struct client c;
    if (!CL_OPEN(e, &c))
        return;
    /* The client asks for a large response and reads none of it: once the socket buffers are
     * full, the write that blocks fails after the idle timeout (200 ms), and the connection
     * ends. */
    expect_flood_timeout_after(&c, "/flood", 200.0);
    /* The client then gets what was sent, short of the promised length, and EOF. */
    size_t got = 0;
    ssize_t n;
    while ((n = cl_fill(&c, HTTP_BOUND)) > 0) {
        got += c.len;
        c.len = 0;
    }
    T_EXPECT_EQ(n, 0);
    T_EXPECT(got > 0 && got < ((size_t)1 << 30));
    cl_close(&c);
}

static void test_http_server_slow_reader(void **state)
{
    struct corio_http_server_opts o = {.idle_timeout = CORIO_MS(200)};
    run_scenario(state, sc_slow_reader, &o);
}

/* ---- connection cap and shutdown ------------------------------------------------------------- */

static void sc_max_connections(struct env *e)
{
    struct client a, b, c;
    struct resp r;
    if (!CL_OPEN(e, &a) || !CL_OPEN(e, &b))
        return;
    ROUNDTRIP(&a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200);
    resp_free(&r);
    ROUNDTRIP(&b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200);
    resp_free(&r);
    /* The third connects (the kernel completes it into the backlog) but is not served. */
    if (CL_OPEN(e, &c)) {
        CL_SENDS(&c, "GET /echo?third HTTP/1.1\r\nHost: t\r\n\r\n");
        T_EXPECT_EQ(cl_fill(&c, corio_now() + CORIO_MS(300)), -ETIMEDOUT);
        const struct corio_http_stats *st = corio_http_server_stats(e->s);
        T_EXPECT_EQ(st->open, 2);
        T_EXPECT_EQ(st->connections, 2);
        /* The first two still work meanwhile. */
        ROUNDTRIP(&b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200);
        resp_free(&r);
        /* A slot frees: the third is accepted and answered. */
        cl_close(&a);
        int64_t t0 = corio_now();
        if (EXPECT_RESPONSE(&c, &r, 200))
            EXPECT_BODY_STR(&r, "GET /echo?third\n");
        resp_free(&r);
        T_EXPECT(t_ms_since(t0) < LATE_MS);
        T_EXPECT_EQ(st->connections, 3);
        T_EXPECT_EQ(st->open, 2);
    }
    cl_close(&a);
    cl_close(&b);
    cl_close(&c);
}

static void test_http_server_max_connections(void **state)
{
    struct corio_http_server_opts o = {.max_connections = 2};
    run_scenario(state, sc_max_connections, &o);
}

/* A connection the caller accepted itself (another loop's acceptor hands it over, say), served
 * by corio_http_serve_conn beside corio_http_serve, under the same connection limit. */
struct handed {
    struct env *e;
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int ret;
};

static int handed_main(void *arg)
{
    struct handed *h = arg;
    h->ret = corio_http_serve_conn(h->e->s, h->fd, (struct sockaddr *)&h->peer, h->peer_len);
    return 0;
}

/* Connects client @c to listener @lfd (not the server's) and accepts it into @h. */
static bool hand_open(struct env *e, int lfd, struct client *c, struct handed *h)
{
    uint16_t served = e->port;
    e->port = (uint16_t)corio_local_port(lfd);
    bool ok = CL_OPEN(e, c);
    e->port = served;
    memset(h, 0, sizeof(*h));
    h->e = e;
    h->ret = 12345;
    h->peer_len = sizeof(h->peer);
    h->fd = ok ? corio_accept(lfd, (struct sockaddr *)&h->peer, &h->peer_len, 0, HTTP_BOUND) : -1;
    return T_EXPECT(h->fd >= 0);
}

static void sc_serve_conn(struct env *e)
{
    int lfd = corio_listen_tcp("127.0.0.1", 0, 8, 0);
    if (!T_EXPECT(lfd >= 0))
        return;
    struct client a = {.fd = -1}, b = {.fd = -1}, c = {.fd = -1};
    struct handed ha, hc;
    struct resp r;
    corio_id co_a = 0, co_c = 0;
    if (!hand_open(e, lfd, &a, &ha) || !T_EXPECT_EQ(corio_spawn(&co_a, NULL, handed_main, &ha), 0))
        goto out;
    /* It serves as the server's own connections do: routes, keep-alive, the peer's address. */
    for (int i = 0; i < 2; i++) {
        if (ROUNDTRIP(&a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
            EXPECT_HDR(&r, "Connection", "keep-alive");
            EXPECT_BODY_STR(&r, hello_body);
        }
        resp_free(&r);
    }
    T_EXPECT_EQ(ha.ret, 12345); /* still serving */
    /* With the limit of 2 reached (one handed over, one accepted by corio_http_serve), a third
     * connection handed over is refused and closed. */
    if (CL_OPEN(e, &b) && ROUNDTRIP(&b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        T_EXPECT_EQ(corio_http_server_stats(e->s)->open, 2);
    resp_free(&r);
    if (hand_open(e, lfd, &c, &hc) && T_EXPECT_EQ(corio_spawn(&co_c, NULL, handed_main, &hc), 0)) {
        T_EXPECT_EQ(corio_join(co_c, NULL, HTTP_BOUND), 0);
        co_c = 0;
        T_EXPECT_EQ(hc.ret, -EAGAIN);
        T_EXPECT_EQ(cl_fill(&c, HTTP_BOUND), 0); /* closed: EOF */
    }
    /* The client's close ends the handed-over connection: the call returns 0. */
    cl_close(&a);
    T_EXPECT_EQ(corio_join(co_a, NULL, HTTP_BOUND), 0);
    co_a = 0;
    T_EXPECT_EQ(ha.ret, 0);
    T_EXPECT_EQ(corio_http_server_stats(e->s)->open, 1);
    /* Bad arguments, and no coroutine needed to see them. */
    T_EXPECT_EQ(corio_http_serve_conn(NULL, 0, NULL, 0), -EINVAL);
    T_EXPECT_EQ(corio_http_serve_conn(e->s, -1, NULL, 0), -EINVAL);
out:
    if (co_a)
        corio_join(co_a, NULL, HTTP_BOUND);
    if (co_c)
        corio_join(co_c, NULL, HTTP_BOUND);
    cl_close(&a);
    cl_close(&b);
    cl_close(&c);
    corio_close(lfd);
}

static void test_http_server_serve_conn(void **state)
{
    struct corio_http_server_opts o = {.max_connections = 2};
    run_scenario(state, sc_serve_conn, &o);
}

static void sc_shutdown(struct env *e)
{
    struct client idle, half, busy;
    struct resp r;
    if (!CL_OPEN(e, &idle) || !CL_OPEN(e, &half) || !CL_OPEN(e, &busy))
        return;
    /* One connection kept alive after a response, one inside a head, one inside a handler. */
    ROUNDTRIP(&idle, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200);
    resp_free(&r);
    CL_SENDS(&half, "GET /hello HTTP/1.1\r\nHo");
    CL_SENDS(&busy, "GET /sleep HTTP/1.1\r\nHost: t\r\n\r\n");
    const struct corio_http_stats *st = corio_http_server_stats(e->s);
    for (int64_t end = HTTP_BOUND; corio_now() < end && (st->open != 3 || st->requests != 2);)
        t_sleep_ms(2);
    t_sleep_ms(20); /* let the half head arrive and the handler start sleeping */
    T_EXPECT_EQ(st->open, 3);
    T_EXPECT_EQ(st->requests, 2);
    /* Cancelling the serving coroutine ends every connection, and it returns promptly. */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_cancel(e->server_co), 0);
    T_EXPECT_EQ(corio_join(e->server_co, NULL, HTTP_BOUND), 0);
    e->server_joined = true;
    T_EXPECT(t_ms_since(t0) < LATE_MS);
    T_EXPECT_EQ(e->serve_ret, -ECANCELED);
    T_EXPECT_EQ(e->stats.open, 0);
    /* Every client sees its connection end: EOF (a reset if the server closed with input it had
     * not read). The half-sent head gets no 408 and the sleeping request no response. */
    struct client *cs[3] = {&idle, &half, &busy};
    for (int i = 0; i < 3; i++) {
        ssize_t n = cl_fill(cs[i], HTTP_BOUND);
        T_EXPECT(n == 0 || n == -ECONNRESET);
        cl_close(cs[i]);
    }
    /* Nothing accepts any more: a new connection waits in the backlog unanswered. */
    struct client late;
    if (CL_OPEN(e, &late)) {
        CL_SENDS(&late, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        T_EXPECT_EQ(cl_fill(&late, corio_now() + CORIO_MS(100)), -ETIMEDOUT);
    }
    cl_close(&late);
}

static void test_http_server_shutdown(void **state)
{
    run_scenario(state, sc_shutdown, NULL);
}

/* ---- static files ---------------------------------------------------------------------------- */

#define MTIME ((time_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 GMT */
#define BIG_SIZE ((size_t)8 << 20)

struct file_spec {
    const char *name;
    size_t size;
    uint64_t seed;
};

static const struct file_spec files[] = {
    {"index.html", 1000, 1},  {"style.css", 300, 2}, {"img.png", 2000, 3},
    {"data.xyz", 100, 4},     {"empty.txt", 0, 5},   {"sub/index.html", 50, 6},
    {"big.bin", BIG_SIZE, 7},
};

static char base_dir[256], root_dir[300];

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
    struct timespec ts[2] = {{MTIME, 0}, {MTIME, 0}};
    assert_int_equal(futimens(fd, ts), 0);
    close(fd);
}

/* base/secret.txt (outside the root) and base/www/... (the root). */
static void make_root(void)
{
    assert_int_equal(t_mkdtemp(base_dir, sizeof(base_dir)), 0);
    snprintf(root_dir, sizeof(root_dir), "%s/www", base_dir);
    assert_int_equal(mkdir(root_dir, 0755), 0);
    char path[400];
    snprintf(path, sizeof(path), "%s/sub", root_dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/secret.txt", base_dir);
    write_file(path, "top secret\n", 11);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *data = malloc(files[i].size + 1);
        assert_non_null(data);
        t_fill(data, files[i].size, files[i].seed, 0);
        snprintf(path, sizeof(path), "%s/%s", root_dir, files[i].name);
        write_file(path, data, files[i].size);
        free(data);
    }
}

static void remove_root(void)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/sub", root_dir);
    t_rmtree(path);
    t_rmtree(root_dir);
    t_rmtree(base_dir);
}

static const struct file_spec *file_named(const char *name)
{
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (strcmp(files[i].name, name) == 0)
            return &files[i];
    return NULL;
}

/* Expects @r to carry exactly bytes [first, first + len) of file @name. */
static bool expect_file_bytes_(const struct resp *r, const char *name, size_t first, size_t len,
                               const char *file, int line)
{
    const struct file_spec *f = file_named(name);
    char msg[160];
    snprintf(msg, sizeof(msg), "%s: %zu bytes from %zu, got %zu", name, len, first, r->body_len);
    if (!t_expect_(f && r->body_len == len, msg, file, line))
        return false;
    long bad = t_check(r->body, len, f->seed, first);
    snprintf(msg, sizeof(msg), "%s: byte %ld of the body differs from the file", name, bad);
    return t_expect_(bad < 0, msg, file, line);
}
#define EXPECT_FILE_BYTES(r, name, first, len)                                                     \
    expect_file_bytes_(r, name, first, len, __FILE__, __LINE__)

static void run_static(void **state, scenario_fn *fn)
{
    make_root();
    struct corio_http_server_opts o = {.root = root_dir};
    run_scenario(state, fn, &o);
    remove_root();
}

static void sc_static_get(struct env *e)
{
    static const struct {
        const char *target, *file, *ctype;
    } gets[] = {
        {"/index.html", "index.html", "text/html; charset=utf-8"},
        {"/style.css", "style.css", "text/css; charset=utf-8"},
        {"/img.png", "img.png", "image/png"},
        {"/data.xyz", "data.xyz", "application/octet-stream"},
        {"/empty.txt", "empty.txt", "text/plain; charset=utf-8"},
        {"/", "index.html", "text/html; charset=utf-8"},
        {"/index.html?v=2#frag", "index.html", "text/html; charset=utf-8"},
        {"/sub/", "sub/index.html", "text/html; charset=utf-8"},
        {"/sub//index.html", "sub/index.html", "text/html; charset=utf-8"},
        {"/./sub/./index.html", "sub/index.html", "text/html; charset=utf-8"},
        {"/%69ndex.html", "index.html", "text/html; charset=utf-8"},
    };
    char lm[CORIO_HTTP_DATE_LEN + 1];
    corio_http_format_date(lm, sizeof(lm), MTIME);
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++) {
        char req[256], cl[32];
        const struct file_spec *f = file_named(gets[i].file);
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", gets[i].target);
        snprintf(cl, sizeof(cl), "%zu", f->size);
        if (ROUNDTRIP(&c, req, &r, 200)) {
            EXPECT_HDR(&r, "Content-Type", gets[i].ctype);
            EXPECT_HDR(&r, "Content-Length", cl);
            EXPECT_HDR(&r, "Last-Modified", lm);
            EXPECT_HDR(&r, "Connection", "keep-alive");
            EXPECT_FILE_BYTES(&r, gets[i].file, 0, f->size);
        }
        resp_free(&r);
    }
    /* HEAD: the same headers, no body. */
    if (ROUNDTRIP(&c, "HEAD /img.png HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
        EXPECT_HDR(&r, "Content-Type", "image/png");
        EXPECT_HDR(&r, "Content-Length", "2000");
        EXPECT_HDR(&r, "Last-Modified", lm);
    }
    resp_free(&r);
    /* A directory named without its slash: a redirect to the slash form. */
    if (ROUNDTRIP(&c, "GET /sub HTTP/1.1\r\nHost: t\r\n\r\n", &r, 301)) {
        EXPECT_HDR(&r, "Location", "/sub/");
        EXPECT_HDR(&r, "Content-Length", "0");
    }
    resp_free(&r);
    ROUNDTRIP(&c, "GET /missing.html HTTP/1.1\r\nHost: t\r\n\r\n", &r, 404);
    resp_free(&r);
    ROUNDTRIP(&c, "HEAD /missing.html HTTP/1.1\r\nHost: t\r\n\r\n", &r, 404);
    resp_free(&r);
    ROUNDTRIP(&c, "GET /index.html/x HTTP/1.1\r\nHost: t\r\n\r\n", &r, 404);
    resp_free(&r);
    /* Routes take precedence over files; other methods than GET/HEAD are not served from disk. */
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, hello_body);
    resp_free(&r);
    ROUNDTRIP(&c, "POST /index.html HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r, 404);
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_static_get(void **state)
{
    run_static(state, sc_static_get);
}

static void sc_static_conditional(struct env *e)
{
    struct client c;
    struct resp r;
    char req[256], date[CORIO_HTTP_DATE_LEN + 1];
    if (!CL_OPEN(e, &c))
        return;
    /* Equal to or later than the mtime: 304 without a body. */
    static const int64_t deltas[] = {0, 1, 86400 * 365};
    for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
        corio_http_format_date(date, sizeof(date), MTIME + (time_t)deltas[i]);
        snprintf(req, sizeof(req),
                 "GET /style.css HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: %s\r\n\r\n", date);
        if (ROUNDTRIP(&c, req, &r, 304)) {
            T_EXPECT(r.body == NULL);
            EXPECT_NO_HDR(&r, "Content-Type");
        }
        resp_free(&r);
    }
    /* The obsolete date formats are understood too (RFC 9110 section 5.6.7). */
    ROUNDTRIP(&c,
              "GET /style.css HTTP/1.1\r\nHost: t\r\n"
              "If-Modified-Since: Tuesday, 14-Nov-23 22:13:20 GMT\r\n\r\n",
              &r, 304);
    resp_free(&r);
    ROUNDTRIP(&c,
              "GET /style.css HTTP/1.1\r\nHost: t\r\n"
              "If-Modified-Since: Tue Nov 14 22:13:20 2023\r\n\r\n",
              &r, 304);
    resp_free(&r);
    /* Earlier than the mtime, or not a date: the whole file. */
    corio_http_format_date(date, sizeof(date), MTIME - 1);
    snprintf(req, sizeof(req),
             "GET /style.css HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: %s\r\n\r\n", date);
    if (ROUNDTRIP(&c, req, &r, 200))
        EXPECT_FILE_BYTES(&r, "style.css", 0, 300);
    resp_free(&r);
    if (ROUNDTRIP(&c, "GET /style.css HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: yesterday\r\n\r\n",
                  &r, 200))
        EXPECT_FILE_BYTES(&r, "style.css", 0, 300);
    resp_free(&r);
    /* HEAD with a matching date: 304 too. */
    corio_http_format_date(date, sizeof(date), MTIME);
    snprintf(req, sizeof(req),
             "HEAD /style.css HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: %s\r\n\r\n", date);
    ROUNDTRIP(&c, req, &r, 304);
    resp_free(&r);
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, hello_body);
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_static_conditional(void **state)
{
    run_static(state, sc_static_conditional);
}

static void sc_static_range(struct env *e)
{
    static const struct {
        const char *range;
        int status;
        size_t first, len; /* the bytes of a 206 */
        const char *content_range;
    } cases[] = {
        {"bytes=0-9", 206, 0, 10, "bytes 0-9/2000"},
        {"bytes=-5", 206, 1995, 5, "bytes 1995-1999/2000"},
        {"bytes=10-", 206, 10, 1990, "bytes 10-1999/2000"},
        {"bytes=1990-5000", 206, 1990, 10, "bytes 1990-1999/2000"},
        {"bytes=1999-1999", 206, 1999, 1, "bytes 1999-1999/2000"},
        {"bytes=-3000", 206, 0, 2000, "bytes 0-1999/2000"},
        {"bytes=2000-", 416, 0, 0, "bytes */2000"},
        {"bytes=5000-6000", 416, 0, 0, "bytes */2000"},
        {"bytes=0-1,5-6", 200, 0, 2000, NULL},
        {"bytes=9-2", 200, 0, 2000, NULL},
        {"items=0-9", 200, 0, 2000, NULL},
    };
    struct client c;
    struct resp r;
    if (!CL_OPEN(e, &c))
        return;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[256], cl[32];
        snprintf(req, sizeof(req), "GET /img.png HTTP/1.1\r\nHost: t\r\nRange: %s\r\n\r\n",
                 cases[i].range);
        snprintf(cl, sizeof(cl), "%zu", cases[i].len);
        if (ROUNDTRIP(&c, req, &r, cases[i].status)) {
            EXPECT_HDR(&r, "Content-Length", cl);
            if (cases[i].content_range)
                EXPECT_HDR(&r, "Content-Range", cases[i].content_range);
            else
                EXPECT_NO_HDR(&r, "Content-Range");
            EXPECT_FILE_BYTES(&r, "img.png", cases[i].first, cases[i].len);
        }
        resp_free(&r);
    }
    /* HEAD with a range: the 206 headers without the bytes. */
    if (ROUNDTRIP(&c, "HEAD /img.png HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n", &r, 206)) {
        EXPECT_HDR(&r, "Content-Range", "bytes 0-9/2000");
        EXPECT_HDR(&r, "Content-Length", "10");
    }
    resp_free(&r);
    /* Any range of an empty file is unsatisfiable. */
    if (ROUNDTRIP(&c, "GET /empty.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\n\r\n", &r, 416))
        EXPECT_HDR(&r, "Content-Range", "bytes */0");
    resp_free(&r);
    if (ROUNDTRIP(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_BODY_STR(&r, hello_body);
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_static_range(void **state)
{
    run_static(state, sc_static_range);
}

static void sc_static_traversal(struct env *e)
{
    static const char *const targets[] = {
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "../secret.txt",
        "/..",
        "/sub/..%2F..%2Fsecret.txt",
        "/../www/index.html",
        "/.%2e/secret.txt",
    };
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        struct client c;
        struct resp r;
        char req[256], what[160];
        if (!CL_OPEN(e, &c))
            return;
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", targets[i]);
        CL_SENDS(&c, req);
        int ret = cl_response(&c, &r, false, HTTP_BOUND);
        snprintf(what, sizeof(what), "GET %s: 403 or 400, got %d (ret %d)", targets[i], r.status,
                 ret);
        t_expect_(ret == 1 && (r.status == 403 || r.status == 400), what, __FILE__, __LINE__);
        snprintf(what, sizeof(what), "GET %s: nothing from outside the root", targets[i]);
        t_expect_(!r.body || !strstr(r.body, "top secret"), what, __FILE__, __LINE__);
        if (ret == 1 && r.status == 400) {
            EXPECT_HDR(&r, "Connection", "close");
            EXPECT_CLOSED(&c);
        }
        resp_free(&r);
        cl_close(&c);
    }
}

static void test_http_server_static_traversal(void **state)
{
    run_static(state, sc_static_traversal);
}

static void sc_static_location(struct env *e)
{
    /* A directory whose name holds CR LF, asked for without its slash: the redirect would carry
     * the name in its Location field, so it is refused (404) instead of injecting a field. */
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/inj\r\nX-Injected: yes", root_dir);
    if (!T_EXPECT_EQ(mkdir(dir, 0755), 0))
        return;
    struct client c;
    struct resp r;
    if (CL_OPEN(e, &c)) {
        if (ROUNDTRIP(&c, "GET /inj%0D%0AX-Injected:%20yes HTTP/1.1\r\nHost: t\r\n\r\n", &r, 404)) {
            EXPECT_NO_HDR(&r, "X-Injected");
            EXPECT_NO_HDR(&r, "Location");
        }
        resp_free(&r);
        /* The connection goes on, and a plain directory still redirects. */
        if (ROUNDTRIP(&c, "GET /sub HTTP/1.1\r\nHost: t\r\n\r\n", &r, 301))
            EXPECT_HDR(&r, "Location", "/sub/");
        resp_free(&r);
    }
    cl_close(&c);
    rmdir(dir);
}

static void test_http_server_static_location(void **state)
{
    run_static(state, sc_static_location);
}

static void sc_static_large(struct env *e)
{
    struct client c;
    struct resp r;
    char cl[32];
    if (!CL_OPEN(e, &c))
        return;
    snprintf(cl, sizeof(cl), "%zu", BIG_SIZE);
    if (ROUNDTRIP(&c, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200)) {
        EXPECT_HDR(&r, "Content-Length", cl);
        EXPECT_HDR(&r, "Content-Type", "application/octet-stream");
        EXPECT_FILE_BYTES(&r, "big.bin", 0, BIG_SIZE);
    }
    resp_free(&r);
    /* A range in the middle of it, then the whole file again on the same connection. */
    if (ROUNDTRIP(&c, "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=4194300-4194399\r\n\r\n",
                  &r, 206))
        EXPECT_FILE_BYTES(&r, "big.bin", 4194300, 100);
    resp_free(&r);
    if (ROUNDTRIP(&c, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n", &r, 200))
        EXPECT_FILE_BYTES(&r, "big.bin", 0, BIG_SIZE);
    resp_free(&r);
    cl_close(&c);
}

static void test_http_server_static_large(void **state)
{
    run_static(state, sc_static_large);
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_FDS_TEST(test_http_server_get_head),
        T_LOOP_FDS_TEST(test_http_server_alike_heads),
        T_LOOP_FDS_TEST(test_http_server_add_header),
        T_LOOP_FDS_TEST(test_http_server_addresses),
        T_LOOP_FDS_TEST(test_http_server_addresses_unix),
        T_LOOP_FDS_TEST(test_http_server_chunked_response),
        T_LOOP_FDS_TEST(test_http_server_chunked_curl),
        T_LOOP_FDS_TEST(test_http_server_flush),
        T_LOOP_FDS_TEST(test_http_server_404_405),
        T_LOOP_FDS_TEST(test_http_server_head_start),
        T_LOOP_FDS_TEST(test_http_server_handler_errors),
        T_LOOP_FDS_TEST(test_http_server_keep_alive),
        T_LOOP_FDS_TEST(test_http_server_pipelined),
        T_LOOP_FDS_TEST(test_http_server_pipelined_one_send),
        T_LOOP_FDS_TEST(test_http_server_split_every_byte),
        T_LOOP_FDS_TEST(test_http_server_body_content_length),
        T_LOOP_FDS_TEST(test_http_server_body_chunked),
        T_LOOP_FDS_TEST(test_http_server_body_errors),
        T_LOOP_FDS_TEST(test_http_server_body_timeout),
        T_LOOP_FDS_TEST(test_http_server_body_discarded),
        T_LOOP_FDS_TEST(test_http_server_expect_continue),
        T_LOOP_FDS_TEST(test_http_server_bad_input),
        T_LOOP_FDS_TEST(test_http_server_header_timeout),
        T_LOOP_FDS_TEST(test_http_server_idle_timeout),
        T_LOOP_FDS_TEST(test_http_server_slowloris),
        T_LOOP_FDS_TEST(test_http_server_handler_deadlines),
        T_LOOP_FDS_TEST(test_http_server_call_deadlines),
        T_LOOP_FDS_TEST(test_http_server_slow_reader),
        T_LOOP_FDS_TEST(test_http_server_max_connections),
        T_LOOP_FDS_TEST(test_http_server_serve_conn),
        T_LOOP_FDS_TEST(test_http_server_shutdown),
        T_LOOP_FDS_TEST(test_http_server_static_get),
        T_LOOP_FDS_TEST(test_http_server_static_conditional),
        T_LOOP_FDS_TEST(test_http_server_static_range),
        T_LOOP_FDS_TEST(test_http_server_static_traversal),
        T_LOOP_FDS_TEST(test_http_server_static_location),
        T_LOOP_FDS_TEST(test_http_server_static_large),
    };
    return T_RUN_TESTS(tests);
}
