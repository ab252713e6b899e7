/* Tests of the HTTP server's connections: the bound on requests per connection, the idle timeout,
 * the access log, large uploads streamed through a handler to a file with the server's memory
 * bounded, and 100 Continue only for a handler that reads the body.
 *
 * Each test runs a server in-process on the test's loop (corio_http_serve in a coroutine, TCP on
 * 127.0.0.1) and a client coroutine beside it that speaks raw HTTP/1.1. Expectations inside
 * coroutines go through T_EXPECT and are checked when the loop has returned. */
#include "helpers.h"

#include <corio/http.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long a client waits for what should come soon before it fails the test. */
#define WAIT_MS (t_on_valgrind() ? 20000 : 5000)

/* The options struct keeps its size across 1.x releases (its reserved room): this is the size. */
_Static_assert(sizeof(struct corio_http_server_opts) == 168, "ABI: corio_http_server_opts");

/* ---- server and client ----------------------------------------------------------------------- */

/* One test's server and the client code that runs against it. */
struct rig {
    struct corio_http_server_opts opts; /* the server's options */
    struct corio_http_server *s;        /* the server */
    int lfd;                            /* its listener */
    uint16_t port;                      /* and port */
    void (*client)(struct rig *r);      /* the client side, in its own coroutine */
    void *arg;                          /* for the client and the handlers */
    int serve_ret;                      /* what corio_http_serve returned */
};

/* A client connection with its unread input. */
struct conn {
    int fd;
    size_t len;      /* bytes in buf */
    char buf[16384]; /* received, not yet consumed */
};

/* One response as the client read it. */
struct reply {
    int status;
    bool close;       /* "Connection: close" */
    size_t bytes;     /* head and body, as received */
    char body[256];   /* the body's first bytes, NUL-terminated */
    int64_t body_len; /* Content-Length */
    bool chunked;     /* Transfer-Encoding: chunked */
};

static bool conn_open(struct rig *r, struct conn *c)
{
    c->len = 0;
    c->fd = corio_dial_tcp("127.0.0.1", r->port, T_DL(WAIT_MS));
    return T_EXPECT(c->fd >= 0);
}

static bool conn_send(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    return T_EXPECT_EQ(corio_send_all(c->fd, s, n, NULL, T_DL(WAIT_MS)), n);
}

/* Receives more input. Returns the bytes received, 0 at EOF, or -errno. */
static ssize_t conn_more(struct conn *c, int64_t deadline)
{
    if (c->len == sizeof(c->buf))
        return -ENOBUFS;
    ssize_t n = corio_recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0, deadline);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

/* The value of header @name in the head @h (@n bytes, its CRLFs), or NULL. */
static const char *head_field(const char *h, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = h; p && p < h + n; p = memmem(p, (size_t)(h + n - p), "\r\n", 2)) {
        p += p == h ? 0 : 2;
        if ((size_t)(h + n - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            return p + nl + 1 + strspn(p + nl + 1, " ");
    }
    return NULL;
}

/* Reads a response head and consumes it, leaving the body in c->buf. Returns whether one came
 * whole by @deadline. */
static bool conn_head(struct conn *c, struct reply *rp, int64_t deadline)
{
    memset(rp, 0, sizeof(*rp));
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
        if (conn_more(c, deadline) <= 0)
            return T_EXPECT(!"a response head");
    }
    size_t hl = (size_t)(end + 4 - c->buf);
    /* The buffer is not a C string: the three digits of the status are read in place. */
    if (!T_EXPECT(hl > 12 && memcmp(c->buf, "HTTP/1.1 ", 9) == 0))
        return false;
    rp->status = (c->buf[9] - '0') * 100 + (c->buf[10] - '0') * 10 + (c->buf[11] - '0');
    const char *cl = head_field(c->buf, hl, "Content-Length");
    const char *conn = head_field(c->buf, hl, "Connection");
    const char *te = head_field(c->buf, hl, "Transfer-Encoding");
    rp->body_len = cl ? strtoll(cl, NULL, 10) : 0;
    rp->close = conn && strncmp(conn, "close", 5) == 0;
    rp->chunked = te && strncmp(te, "chunked", 7) == 0;
    rp->bytes = hl;
    memmove(c->buf, c->buf + hl, c->len - hl);
    c->len -= hl;
    return true;
}

/* Reads one response with a Content-Length body (or none, for a 1xx). Returns whether one came
 * whole by @deadline. */
static bool conn_reply(struct conn *c, struct reply *rp, int64_t deadline)
{
    if (!conn_head(c, rp, deadline))
        return false;
    size_t n = (size_t)rp->body_len;
    if (!T_EXPECT(n <= sizeof(c->buf)))
        return false;
    while (c->len < n) {
        if (conn_more(c, deadline) <= 0)
            return T_EXPECT(!"a whole response body");
    }
    size_t keep = n < sizeof(rp->body) ? n : sizeof(rp->body) - 1;
    memcpy(rp->body, c->buf, keep);
    rp->bytes += n;
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    return true;
}

/* Expects the server to end the connection (EOF) by @deadline, with nothing more sent. */
static bool conn_expect_eof(struct conn *c, int64_t deadline)
{
    ssize_t n = conn_more(c, deadline);
    return T_EXPECT_EQ(n, 0) && T_EXPECT_EQ(c->len, 0);
}

static int serve_main(void *p)
{
    struct rig *r = p;
    r->serve_ret = corio_http_serve(r->s, r->lfd);
    return 0;
}

static int rig_main(void *p)
{
    struct rig *r = p;
    corio_id srv = 0;
    if (!T_EXPECT_EQ(corio_spawn(&srv, NULL, serve_main, r), 0))
        return -1;
    corio_id wd = t_watchdog_spawn(t_on_valgrind() ? 300000 : 60000);
    r->client(r);
    T_EXPECT_EQ(corio_cancel(srv), 0);
    T_EXPECT_EQ(corio_join(srv, NULL, T_DL(WAIT_MS)), 0);
    t_watchdog_end(wd);
    return 0;
}

static int h_hello(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    return corio_http_respond(c, 200, "text/plain", "hello\n", 6, CORIO_FOREVER);
}

/* Serves @r's routes (/hello, and @route with @h if not NULL) to its client until the client is
 * done, then stops the server and checks that it ended as a cancel ends it. */
static void rig_run(void **state, struct rig *r, const char *route, corio_http_handler *h)
{
    assert_int_equal(corio_http_server_new(&r->s, &r->opts), 0);
    assert_int_equal(corio_http_route(r->s, NULL, "/hello", h_hello, NULL), 0);
    if (route)
        assert_int_equal(corio_http_route(r->s, NULL, route, h, r->arg), 0);
    r->lfd = corio_listen_tcp("127.0.0.1", 0, 64, 0);
    assert_true(r->lfd >= 0);
    r->port = (uint16_t)corio_local_port(r->lfd);
    r->serve_ret = 1;
    int ret = t_run1(*state, rig_main, r);
    close(r->lfd);
    assert_int_equal(corio_http_server_stats(r->s)->open, 0);
    corio_http_server_free(r->s);
    t_expect_ok();
    assert_int_equal(ret, 0);
    assert_int_equal(r->serve_ret, -ECANCELED);
}

/* ---- keep-alive limits ----------------------------------------------------------------------- */

static const char get_hello[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";

static void cl_max_requests(struct rig *r)
{
    struct conn c;
    struct reply rp;
    /* One at a time: the third response closes the connection. */
    if (!conn_open(r, &c))
        return;
    for (int i = 1; i <= 3; i++) {
        conn_send(&c, get_hello);
        if (conn_reply(&c, &rp, T_DL(WAIT_MS))) {
            T_EXPECT_EQ(rp.status, 200);
            T_EXPECT_EQ(rp.close, i == 3);
        }
    }
    conn_expect_eof(&c, T_DL(WAIT_MS));
    corio_close(c.fd);
    /* Five pipelined in one send: three answered, the last of them with close, then the end. */
    if (!conn_open(r, &c))
        return;
    char five[5 * sizeof(get_hello)] = "";
    for (int i = 0; i < 5; i++)
        strcat(five, get_hello);
    conn_send(&c, five);
    for (int i = 1; i <= 3; i++) {
        if (conn_reply(&c, &rp, T_DL(WAIT_MS)))
            T_EXPECT_EQ(rp.close, i == 3);
    }
    conn_expect_eof(&c, T_DL(WAIT_MS));
    corio_close(c.fd);
    T_EXPECT_EQ(corio_http_server_stats(r->s)->requests, 6);
}

static void test_http_conn_max_requests(void **state)
{
    struct rig r = {.opts = {.max_requests = 3}, .client = cl_max_requests};
    rig_run(state, &r, NULL, NULL);
}

/* Requests at intervals under the idle timeout keep the connection past it; silence as long as
 * the timeout ends it, not much later. Without max_requests there is no bound on the count. */
#define IDLE_MS 300
static void cl_idle(struct rig *r)
{
    struct conn c;
    struct reply rp;
    if (!conn_open(r, &c))
        return;
    int64_t t0 = corio_now();
    for (int i = 0; i < 4; i++) {
        t_sleep_ms(IDLE_MS / 3);
        conn_send(&c, get_hello);
        if (conn_reply(&c, &rp, T_DL(WAIT_MS)))
            T_EXPECT(!rp.close);
    }
    T_EXPECT(t_ms_since(t0) > IDLE_MS);
    int64_t quiet = corio_now();
    conn_expect_eof(&c, T_DL(WAIT_MS));
    T_EXPECT_ELAPSED(quiet, IDLE_MS);
    corio_close(c.fd);
}

static void test_http_conn_idle_timeout(void **state)
{
    struct rig r = {.opts = {.idle_timeout = CORIO_MS(IDLE_MS)}, .client = cl_idle};
    rig_run(state, &r, NULL, NULL);
}

/* ---- the access log -------------------------------------------------------------------------- */

/* What the access log's function received. */
struct sink {
    char *text;     /* every line, in order */
    size_t len;     /* bytes in text */
    size_t cap;     /* its size */
    unsigned calls; /* hand-overs */
    bool torn;      /* a hand-over that did not end a line */
};

static void sink_lines(void *arg, const char *lines, size_t len)
{
    struct sink *k = arg;
    k->calls++;
    if (len == 0 || lines[len - 1] != '\n')
        k->torn = true;
    if (k->len + len > k->cap) {
        size_t cap = (k->len + len) * 2;
        char *t = realloc(k->text, cap + 1);
        if (!t)
            return;
        k->text = t;
        k->cap = cap;
    }
    memcpy(k->text + k->len, lines, len);
    k->len += len;
    k->text[k->len] = '\0';
}

/* Counts the lines of @k. */
static size_t sink_count(const struct sink *k)
{
    size_t n = 0;
    for (size_t i = 0; i < k->len; i++)
        n += k->text[i] == '\n';
    return n;
}

/* Checks the log line @line (up to its '\n') against what the client saw. */
static void expect_line(const char *line, const char *request_line, int status, size_t bytes)
{
    char date[64], req[256];
    int st = 0;
    unsigned long long nb = 0;
    double secs = -1;
    int n = sscanf(line, "127.0.0.1 - - [%63[^]]] \"%255[^\"]\" %d %llu %lf\n", date, req, &st, &nb,
                   &secs);
    if (!T_EXPECT_EQ(n, 5))
        return;
    T_EXPECT(strlen(date) == 26 && strcmp(date + 20, " +0000") == 0);
    T_EXPECT(strcmp(req, request_line) == 0);
    T_EXPECT_EQ(st, status);
    T_EXPECT_EQ(nb, bytes);
    T_EXPECT(secs >= 0 && secs < 5);
}

static int h_slow(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    t_sleep_ms(20);
    return corio_http_respond(c, 201, "text/plain", "slow!\n", 6, CORIO_FOREVER);
}

static void cl_access_log(struct rig *r)
{
    struct sink *k = r->arg;
    struct conn c;
    struct reply a, b, d;
    if (!conn_open(r, &c))
        return;
    conn_send(&c, get_hello);
    conn_reply(&c, &a, T_DL(WAIT_MS));
    conn_send(&c, "POST /slow?q=%22x%22 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    conn_reply(&c, &b, T_DL(WAIT_MS));
    conn_send(&c, "GET /none HTTP/1.0\r\n\r\n");
    conn_reply(&c, &d, T_DL(WAIT_MS));
    conn_expect_eof(&c, T_DL(WAIT_MS));
    corio_close(c.fd);
    /* Nothing is handed over on a request's path; the timer does it within about a second. */
    T_EXPECT_EQ(k->calls, 0);
    int64_t t0 = corio_now();
    while (k->calls == 0 && t_ms_since(t0) < WAIT_MS)
        t_sleep_ms(50);
    if (!T_EXPECT_EQ(sink_count(k), 3))
        return;
    T_EXPECT(!k->torn);
    const char *l2 = strchr(k->text, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    expect_line(k->text, "GET /hello HTTP/1.1", 200, a.bytes);
    expect_line(l2, "POST /slow?q=%22x%22 HTTP/1.1", 201, b.bytes);
    expect_line(l3, "GET /none HTTP/1.0", 404, d.bytes);
    /* The slow handler's 20 ms show in its duration, the line's last field. */
    const char *sp = l3 - 1;
    while (sp > l2 && *sp != ' ')
        sp--;
    T_EXPECT(strtod(sp, NULL) >= 0.019);
}

static void test_http_conn_access_log(void **state)
{
    struct sink k = {0};
    struct rig r = {.opts = {.access_log = sink_lines, .access_log_arg = &k},
                    .client = cl_access_log,
                    .arg = &k};
    rig_run(state, &r, "/slow", h_slow);
    free(k.text);
}

/* Requests whose targets are longer than a log line keeps (3000 bytes: cut to 2048), enough of
 * them that the lines fill the log's buffer many times over; sent in pipelined batches. */
#define LOG_REQS 600
#define LOG_BATCH 50
#define LONG_TARGET 3000
static void cl_log_fill(struct rig *r)
{
    static char req[LONG_TARGET + 64];
    int n = snprintf(req, sizeof(req), "GET /hello?%0*d HTTP/1.1\r\nHost: t\r\n\r\n",
                     LONG_TARGET - 7, 0);
    T_EXPECT(n > LONG_TARGET);
    struct conn c;
    struct reply rp;
    if (!conn_open(r, &c))
        return;
    for (int sent = 0; sent < LOG_REQS; sent += LOG_BATCH) {
        for (int i = 0; i < LOG_BATCH; i++)
            conn_send(&c, req);
        for (int i = 0; i < LOG_BATCH; i++) {
            if (!conn_reply(&c, &rp, T_DL(WAIT_MS)) || !T_EXPECT_EQ(rp.status, 200))
                return;
        }
    }
    corio_close(c.fd);
}

/* Reads the whole file @fd (a test's temp file) into a new NUL-terminated string. */
static char *slurp(int fd)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *t = malloc((size_t)st.st_size + 1);
    assert_non_null(t);
    assert_int_equal(pread(fd, t, (size_t)st.st_size, 0), st.st_size);
    t[st.st_size] = '\0';
    return t;
}

static void test_http_conn_access_log_fd(void **state)
{
    int fd = t_tmpfile();
    assert_true(fd >= 0);
    struct rig r = {.opts = {.access_log_fd = fd}, .client = cl_log_fill};
    rig_run(state, &r, NULL, NULL);
    /* Every line was written by the time the server ended, whole and in order. */
    char *t = slurp(fd);
    size_t lines = 0;
    for (char *p = t; (p = strchr(p, '\n')); p++)
        lines++;
    assert_int_equal(lines, LOG_REQS);
    char want[2100];
    snprintf(want, sizeof(want), "\"GET /hello?%0*d HTTP/1.1\" 200 ", 2048 - 7, 0);
    size_t hits = 0;
    for (char *p = t; (p = strstr(p, want)); p++)
        hits++;
    assert_int_equal(hits, LOG_REQS);
    free(t);
    close(fd);
}

/* ---- large uploads streamed to a file -------------------------------------------------------- */

/* The body's bytes: a pattern block sent over and over, of a prime length so that no read or
 * chunk size lines up with it and a byte out of place shows. */
#define BLOCK_BYTES 1048573
#define READ_BYTES (256 * 1024)
#define SEND_BYTES (256 * 1024)

/* An upload: what the client sends and what the handler saw. */
struct upload {
    int64_t size;   /* body bytes */
    bool chunked;   /* chunked, else Content-Length */
    char *block;    /* the pattern */
    char *buf;      /* the handler's read buffer */
    int fd;         /* the file the handler writes the body to */
    int64_t got;    /* bytes the handler read */
    bool same;      /* they were the pattern */
    long rss_start; /* VmRSS before the upload, KiB */
    long rss_max;   /* the highest VmRSS the handler saw, KiB */
    int status;     /* the final response's */
};

/* Reads the field @name ("VmRSS:") of /proc/self/status, in KiB, into memory of its own: an
 * allocation per sample (fopen's) would grow the RSS under ASan, whose quarantine keeps freed
 * blocks from reuse. Returns it, or -1. */
static long status_kib(const char *name)
{
    char text[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    const char *at = strstr(text, name);
    return at ? strtol(at + strlen(name), NULL, 10) : -1;
}

/* Whether the @n bytes at @p are the pattern at body offset @pos. */
static bool is_pattern(const char *block, const char *p, size_t n, int64_t pos)
{
    size_t off = (size_t)(pos % BLOCK_BYTES);
    while (n > 0) {
        size_t k = n < BLOCK_BYTES - off ? n : BLOCK_BYTES - off;
        if (memcmp(p, block + off, k) != 0)
            return false;
        p += k;
        n -= k;
        off = 0;
    }
    return true;
}

/* Writes the @n bytes the handler gathered to the file at body offset @pos, after checking them
 * and sampling the process's RSS. Returns 0 or -errno. */
static int upload_store(struct upload *u, size_t n, int64_t pos)
{
    u->same = u->same && is_pattern(u->block, u->buf, n, pos);
    if (corio_write_all(u->fd, u->buf, n, pos, NULL, T_DL(WAIT_MS)) != (ssize_t)n)
        return -EIO;
    long rss = status_kib("VmRSS:");
    u->rss_max = rss > u->rss_max ? rss : u->rss_max;
    return 0;
}

/* Reads the body into one small buffer and writes it to the file each time the buffer is full,
 * as a handler that stores an upload does. */
static int h_upload(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    struct upload *u = arg;
    size_t fill = 0;
    ssize_t n;
    u->same = true;
    while ((n = corio_http_read_body(c, u->buf + fill, READ_BYTES - fill, T_DL(WAIT_MS))) > 0) {
        fill += (size_t)n;
        u->got += n;
        if (fill == READ_BYTES && upload_store(u, fill, u->got - (int64_t)fill) != 0)
            return -EIO;
        fill %= READ_BYTES;
    }
    if (fill > 0 && upload_store(u, fill, u->got - (int64_t)fill) != 0)
        return -EIO;
    char text[32];
    int len = snprintf(text, sizeof(text), "%" PRId64 "\n", u->got);
    return corio_http_respond(c, n == 0 ? 200 : corio_http_status((int)n), "text/plain", text,
                              (size_t)len, CORIO_FOREVER);
}

/* Sends the body: the pattern from @pos on, @len bytes, as one chunk when @chunked. */
static bool send_piece(struct conn *c, const struct upload *u, int64_t pos, size_t len)
{
    char line[24];
    if (u->chunked) {
        snprintf(line, sizeof(line), "%zx\r\n", len);
        if (!conn_send(c, line))
            return false;
    }
    size_t off = (size_t)(pos % BLOCK_BYTES), done = 0;
    while (done < len) {
        size_t k = len - done < BLOCK_BYTES - off ? len - done : BLOCK_BYTES - off;
        if (!T_EXPECT_EQ(corio_send_all(c->fd, u->block + off, k, NULL, T_DL(WAIT_MS)), k))
            return false;
        done += k;
        off = 0;
    }
    return !u->chunked || conn_send(c, "\r\n");
}

static void cl_upload(struct rig *r)
{
    struct upload *u = r->arg;
    struct conn c;
    struct reply rp;
    if (!conn_open(r, &c))
        return;
    /* The start: the server running and this connection set up, its buffers in use. */
    conn_send(&c, get_hello);
    if (!conn_reply(&c, &rp, T_DL(WAIT_MS)))
        return;
    u->rss_start = status_kib("VmRSS:");
    char head[160];
    if (u->chunked)
        snprintf(head, sizeof(head),
                 "PUT /upload HTTP/1.1\r\nHost: t\r\n"
                 "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
    else
        snprintf(head, sizeof(head),
                 "PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %" PRId64
                 "\r\nExpect: 100-continue\r\n\r\n",
                 u->size);
    conn_send(&c, head);
    /* The client waits for the go-ahead; it comes because the handler reads. */
    if (!conn_reply(&c, &rp, T_DL(WAIT_MS)) || !T_EXPECT_EQ(rp.status, 100))
        return;
    for (int64_t pos = 0; pos < u->size;) {
        /* Uneven pieces, so that chunk boundaries fall anywhere. */
        size_t len = SEND_BYTES - (size_t)(pos % 4093);
        if ((int64_t)len > u->size - pos)
            len = (size_t)(u->size - pos);
        if (!send_piece(&c, u, pos, len))
            return;
        pos += (int64_t)len;
    }
    if (u->chunked)
        conn_send(&c, "0\r\n\r\n");
    if (conn_reply(&c, &rp, T_DL(WAIT_MS))) {
        u->status = rp.status;
        T_EXPECT_EQ(strtoll(rp.body, NULL, 10), u->size);
        T_EXPECT(!rp.close);
    }
    corio_close(c.fd);
}

/* The upload's size: CORIO_TEST_UPLOAD_MIB if set (the slow variant sets 1024), else 64 MiB,
 * 8 MiB under valgrind. */
static int64_t upload_size(void)
{
    const char *env = getenv("CORIO_TEST_UPLOAD_MIB");
    int64_t mib = env ? strtoll(env, NULL, 10) : t_on_valgrind() ? 8 : 64;
    return (mib > 0 ? mib : 64) * 1024 * 1024;
}

/* How much the RSS may grow while the body streams through: a bound that does not grow with the
 * body. The server's receive ring (1024 buffers of 4 KiB, io_uring only) is touched buffer by
 * buffer as the body arrives, 4 MiB once; the connection's and the handler's buffers were in use
 * before; the rest is slack for the allocator and the sanitizers' own books. A body held in
 * memory would be 64 MiB or 1 GiB. */
#define RSS_SLACK_KIB 8192

static void run_upload(void **state, bool chunked)
{
    struct upload u = {.size = upload_size(), .chunked = chunked, .fd = t_tmpfile()};
    assert_true(u.fd >= 0);
    u.block = malloc(BLOCK_BYTES);
    u.buf = malloc(READ_BYTES);
    assert_true(u.block && u.buf);
    t_fill(u.block, BLOCK_BYTES, 15, 0);
    /* The largest body the server accepts is the caller's to choose: here the upload's size. */
    struct rig r = {.opts = {.limits.max_body_bytes = u.size}, .client = cl_upload, .arg = &u};
    int64_t t0 = corio_now();
    rig_run(state, &r, "/upload", h_upload);
    double ms = t_ms_since(t0);
    struct stat st;
    assert_int_equal(fstat(u.fd, &st), 0);
    printf("# %s upload of %" PRId64 " MiB: %.0f ms (%.0f MiB/s), RSS %ld KiB at the start, "
           "%ld KiB at most while it streamed\n",
           chunked ? "chunked" : "Content-Length", u.size >> 20, ms,
           (double)(u.size >> 20) / ms * 1e3, u.rss_start, u.rss_max);
    assert_int_equal(u.status, 200);
    assert_int_equal(u.got, u.size);
    assert_int_equal(st.st_size, u.size);
    assert_true(u.same);
    assert_true(u.rss_start > 0);
    assert_true(u.rss_max - u.rss_start < RSS_SLACK_KIB);
    free(u.block);
    free(u.buf);
    close(u.fd);
}

static void test_http_conn_upload_length(void **state)
{
    run_upload(state, false);
}

static void test_http_conn_upload_chunked(void **state)
{
    run_upload(state, true);
}

/* ---- 100 Continue only for a handler that reads -------------------------------------------- */

/* Reads the body (there may be none) and answers how many bytes came. */
static int h_count(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    char buf[64];
    ssize_t n, total = 0;
    while ((n = corio_http_read_body(c, buf, sizeof(buf), T_DL(WAIT_MS))) > 0)
        total += n;
    char text[32];
    int len = snprintf(text, sizeof(text), "%zd\n", total);
    return corio_http_respond(c, n == 0 ? 200 : 400, "text/plain", text, (size_t)len,
                              CORIO_FOREVER);
}

/* Refuses the upload from its head alone, as a handler does for a type or size it does not take. */
static int h_refuse(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    (void)req;
    (void)arg;
    return corio_http_respond(c, 413, "text/plain", "no\n", 3, CORIO_FOREVER);
}

static void cl_continue(struct rig *r)
{
    struct conn c;
    struct reply rp;
    if (!conn_open(r, &c))
        return;
    /* Expect with no body to read: reading finds the end at once, so no 100 goes out. */
    conn_send(&c, "GET /count HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n");
    if (conn_reply(&c, &rp, T_DL(WAIT_MS))) {
        T_EXPECT_EQ(rp.status, 200);
        T_EXPECT(strcmp(rp.body, "0\n") == 0);
    }
    /* A body and a handler that reads it: the 100 first, then after the body the answer. */
    conn_send(&c, "POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                  "Expect: 100-continue\r\n\r\n");
    if (conn_reply(&c, &rp, T_DL(WAIT_MS)))
        T_EXPECT_EQ(rp.status, 100);
    conn_send(&c, "abcd");
    if (conn_reply(&c, &rp, T_DL(WAIT_MS))) {
        T_EXPECT_EQ(rp.status, 200);
        T_EXPECT(strcmp(rp.body, "4\n") == 0 && !rp.close);
    }
    /* A handler that refuses from the head: no 100, the refusal, and the connection ends, since
     * the body that was never asked for will not come. */
    conn_send(&c, "POST /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 999999\r\n"
                  "Expect: 100-continue\r\n\r\n");
    if (conn_reply(&c, &rp, T_DL(WAIT_MS))) {
        T_EXPECT_EQ(rp.status, 413);
        T_EXPECT(rp.close);
    }
    conn_expect_eof(&c, T_DL(WAIT_MS));
    corio_close(c.fd);
}

static int h_route_continue(struct corio_http_conn *c, const struct corio_http_request *req,
                            void *arg)
{
    size_t n = req->target_len;
    return n == 6 && memcmp(req->target, "/count", 6) == 0 ? h_count(c, req, arg)
                                                           : h_refuse(c, req, arg);
}

static void test_http_conn_continue(void **state)
{
    struct rig r = {.client = cl_continue};
    rig_run(state, &r, "/*", h_route_continue);
}

/* ---- response bodies from a file ------------------------------------------------------------ */

/* The file the handlers send from: FILE_BYTES of a pattern, larger than the server's output
 * buffer and its pipes' capacity, an odd size so that no piece lines up. */
#define FILE_BYTES (3 * 256 * 1024 + 4099)
#define BIG_BYTES (64 * 1024 * 1024)

struct file_rig {
    int fd;        /* the file */
    int big_fd;    /* a sparse file of BIG_BYTES, more than the sockets hold */
    char *data;    /* its bytes */
    int misuse[4]; /* what the calls made wrongly returned */
    int short_err; /* what a range past the file's end returned */
};

/* Answers by path: /whole (Content-Length, the whole file in one call), /pieces (Content-Length,
 * three calls, one of them short), /chunked (unknown length: two chunks from the file),
 * /short (a range past the end: cut), /misuse (calls refused). */
static bool target_is(const struct corio_http_request *req, const char *path)
{
    return req->target_len == strlen(path) && memcmp(req->target, path, req->target_len) == 0;
}

static int h_file(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    struct file_rig *f = arg;
    int64_t dl = T_DL(WAIT_MS);
    if (target_is(req, "/whole")) {
        corio_http_respond_start(c, 200, "application/octet-stream", FILE_BYTES, dl);
        return corio_http_send_file(c, f->fd, 0, FILE_BYTES, dl);
    }
    if (target_is(req, "/pieces")) {
        corio_http_respond_start(c, 200, NULL, FILE_BYTES, dl);
        int err = corio_http_send_file(c, f->fd, 0, 100, dl);
        if (!err)
            err = corio_http_write(c, f->data + 100, 200, dl);
        if (!err)
            err = corio_http_send_file(c, f->fd, 300, FILE_BYTES - 300, dl);
        return err;
    }
    if (target_is(req, "/chunked")) {
        corio_http_respond_start(c, 200, NULL, -1, dl);
        int err = corio_http_send_file(c, f->fd, 7, FILE_BYTES - 7, dl);
        return err ? err : corio_http_send_file(c, f->fd, 0, 7, dl);
    }
    if (target_is(req, "/big")) {
        corio_http_respond_start(c, 200, NULL, BIG_BYTES, dl);
        return corio_http_send_file(c, f->big_fd, 0, BIG_BYTES, dl);
    }
    if (target_is(req, "/nofd")) {
        /* No descriptor can be had while the body goes (the limit at the lowest free one), so
         * neither can a pipe: the bytes go through the output buffer. */
        struct rlimit was, now;
        int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
        getrlimit(RLIMIT_NOFILE, &was);
        now = was;
        now.rlim_cur = probe >= 0 ? (rlim_t)probe : was.rlim_cur;
        close(probe);
        setrlimit(RLIMIT_NOFILE, &now);
        corio_http_respond_start(c, 200, NULL, FILE_BYTES, dl);
        int err = corio_http_send_file(c, f->fd, 0, FILE_BYTES, dl);
        setrlimit(RLIMIT_NOFILE, &was);
        return err;
    }
    if (target_is(req, "/short")) {
        corio_http_respond_start(c, 200, NULL, FILE_BYTES, dl);
        f->short_err = corio_http_send_file(c, f->fd, 10, FILE_BYTES, dl);
        return 0;
    }
    f->misuse[0] = corio_http_send_file(c, f->fd, 0, 10, dl); /* nothing started */
    corio_http_respond_start(c, 200, NULL, 10, dl);
    f->misuse[1] = corio_http_send_file(c, f->fd, 0, 11, dl); /* more than owed */
    f->misuse[2] = corio_http_send_file(c, -1, 0, 10, dl);
    f->misuse[3] = corio_http_send_file(c, f->fd, 0, 10, dl);
    return 0;
}

/* Reads @n body bytes and expects them to be @want. Returns whether they were. */
static bool conn_body_is(struct conn *c, const char *want, size_t n)
{
    size_t at = 0;
    while (at < n) {
        if (c->len == 0 && conn_more(c, T_DL(WAIT_MS)) <= 0)
            return T_EXPECT(!"the whole body");
        size_t k = c->len < n - at ? c->len : n - at;
        if (!T_EXPECT(memcmp(c->buf, want + at, k) == 0))
            return false;
        memmove(c->buf, c->buf + k, c->len - k);
        c->len -= k;
        at += k;
    }
    return true;
}

/* Reads a chunked body and expects its payload to be @want (@n bytes). Returns whether it was. */
static bool conn_chunked_is(struct conn *c, const char *want, size_t n)
{
    size_t at = 0;
    for (;;) {
        char *eol;
        while (!(eol = memmem(c->buf, c->len, "\r\n", 2))) {
            if (conn_more(c, T_DL(WAIT_MS)) <= 0)
                return T_EXPECT(!"a chunk-size line");
        }
        size_t size = strtoul(c->buf, NULL, 16), ll = (size_t)(eol + 2 - c->buf);
        memmove(c->buf, c->buf + ll, c->len - ll);
        c->len -= ll;
        if (!T_EXPECT(at + size <= n) || !conn_body_is(c, want + at, size) ||
            !conn_body_is(c, "\r\n", 2))
            return false;
        at += size;
        if (size == 0)
            return T_EXPECT_EQ(at, n);
    }
}

static void cl_file(struct rig *r)
{
    struct file_rig *f = r->arg;
    struct conn c;
    struct reply rp;
    /* The data of the last request as it should come: rotated by 7 bytes for /chunked. */
    char *rot = malloc(FILE_BYTES);
    if (!T_EXPECT(rot != NULL) || !conn_open(r, &c))
        return;
    memcpy(rot, f->data + 7, FILE_BYTES - 7);
    memcpy(rot + FILE_BYTES - 7, f->data, 7);
    static const char *const gets[] = {"/whole", "/pieces", "/chunked"};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 3; i++) {
            char req[96];
            snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", gets[i]);
            conn_send(&c, req);
            if (!conn_head(&c, &rp, T_DL(WAIT_MS)) || !T_EXPECT_EQ(rp.status, 200))
                goto out;
            if (i < 2)
                T_EXPECT(rp.body_len == FILE_BYTES && conn_body_is(&c, f->data, FILE_BYTES));
            else
                T_EXPECT(rp.chunked && conn_chunked_is(&c, rot, FILE_BYTES));
        }
        /* The file's pages dropped from the page cache (where the kernel agrees): the second
         * round reads them in again as it sends. */
        fdatasync(f->fd);
        posix_fadvise(f->fd, 0, 0, POSIX_FADV_DONTNEED);
    }
    /* HEAD: a head only, the call a no-op. */
    conn_send(&c, "HEAD /whole HTTP/1.1\r\nHost: t\r\n\r\n");
    if (conn_head(&c, &rp, T_DL(WAIT_MS)))
        T_EXPECT(rp.status == 200 && rp.body_len == FILE_BYTES && c.len == 0);
    conn_send(&c, "GET /misuse HTTP/1.1\r\nHost: t\r\n\r\n");
    if (conn_head(&c, &rp, T_DL(WAIT_MS)))
        T_EXPECT(rp.body_len == 10 && conn_body_is(&c, f->data, 10));
    /* A range past the file's end: the body is cut, and the connection ends. */
    conn_send(&c, "GET /short HTTP/1.1\r\nHost: t\r\n\r\n");
    if (conn_head(&c, &rp, T_DL(WAIT_MS)) && T_EXPECT_EQ(rp.body_len, FILE_BYTES)) {
        ssize_t n;
        c.len = 0;
        while ((n = conn_more(&c, T_DL(WAIT_MS))) > 0)
            c.len = 0;
        T_EXPECT_EQ(n, 0);
        T_EXPECT_EQ(f->short_err, -EIO);
    }
out:
    corio_close(c.fd);
    free(rot);
}

/* Clients that go away in the middle of a file's body, after the server has filled the socket and
 * waits for room: the reset they cause ends the server's splices with ECONNRESET, or with EPIPE
 * where the connection's receive took the reset first (io_uring's multishot receive stays armed),
 * and that raises SIGPIPE, which would end this process, the server's, unless it is taken back.
 * Then a whole body again. */
static void cl_file_gone(struct rig *r)
{
    struct file_rig *f = r->arg;
    struct conn c;
    struct reply rp;
    for (int i = 0; i < 8; i++) {
        if (!conn_open(r, &c))
            return;
        conn_send(&c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
        T_EXPECT(conn_head(&c, &rp, T_DL(WAIT_MS)));
        /* Unread bytes make the close a reset. */
        t_sleep_ms(5 + i);
        corio_close(c.fd);
        t_sleep_ms(5);
    }
    if (!conn_open(r, &c))
        return;
    conn_send(&c, "GET /whole HTTP/1.1\r\nHost: t\r\n\r\n");
    if (conn_head(&c, &rp, T_DL(WAIT_MS)))
        T_EXPECT(conn_body_is(&c, f->data, FILE_BYTES));
    corio_close(c.fd);
}

/* The body of a file on a fresh server (no pipe kept) when no pipe can be made. */
static void cl_file_nofd(struct rig *r)
{
    struct file_rig *f = r->arg;
    struct conn c;
    struct reply rp;
    if (!conn_open(r, &c))
        return;
    conn_send(&c, "GET /nofd HTTP/1.1\r\nHost: t\r\n\r\n");
    if (conn_head(&c, &rp, T_DL(WAIT_MS)) && T_EXPECT_EQ(rp.status, 200))
        T_EXPECT(conn_body_is(&c, f->data, FILE_BYTES));
    corio_close(c.fd);
}

static void test_http_conn_send_file(void **state)
{
    struct file_rig f = {.fd = t_tmpfile(), .big_fd = t_tmpfile(), .data = malloc(FILE_BYTES)};
    assert_true(f.fd >= 0 && f.big_fd >= 0 && f.data);
    assert_int_equal(ftruncate(f.big_fd, BIG_BYTES), 0);
    t_fill(f.data, FILE_BYTES, 21, 0);
    assert_int_equal(pwrite(f.fd, f.data, FILE_BYTES, 0), FILE_BYTES);
    struct rig r = {.client = cl_file, .arg = &f};
    rig_run(state, &r, "/*", h_file);
    assert_int_equal(f.misuse[0], -EINVAL);
    assert_int_equal(f.misuse[1], -EINVAL);
    assert_int_equal(f.misuse[2], -EINVAL);
    assert_int_equal(f.misuse[3], 0);
    struct rig gone = {.client = cl_file_gone, .arg = &f};
    rig_run(state, &gone, "/*", h_file);
    struct rig nofd = {.client = cl_file_nofd, .arg = &f};
    rig_run(state, &nofd, "/*", h_file);
    free(f.data);
    close(f.fd);
    close(f.big_fd);
}

/* ---- cookies --------------------------------------------------------------------------------- */

static void test_http_conn_cookies(void **state)
{
    (void)state;
    static const char head[] = "GET / HTTP/1.1\r\nHost: t\r\n"
                               "Cookie: a=1; b=two ;\tsid=\"q v\"; flag; e = x\r\n"
                               "Accept: */*\r\n"
                               "cookie: c=3; a=second; f=\r\n\r\n";
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    struct corio_http_request req;
    struct corio_http_header hdrs[8];
    assert_int_equal(corio_http_parse_request(&p, head, sizeof(head) - 1, NULL, &req, hdrs, 8),
                     sizeof(head) - 1);
    static const struct {
        const char *name;
        ssize_t ret;
        const char *value;
    } cases[] = {
        {"a", 1, "1"},           /* the first of two */
        {"b", 3, "two"},         /* whitespace around the pair */
        {"sid", 3, "q v"},       /* quotes off */
        {"e", 1, "x"},           /* whitespace around '=' */
        {"c", 1, "3"},           /* the second field */
        {"f", 0, ""},            /* empty */
        {"flag", -ENOENT, NULL}, /* no '=': no pair */
        {"A", -ENOENT, NULL},    /* names are case-sensitive */
        {"d", -ENOENT, NULL},
        {"", -ENOENT, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[16] = "unset";
        ssize_t r = corio_http_cookie_get(&req, cases[i].name, out, sizeof(out));
        assert_int_equal(r, cases[i].ret);
        if (r >= 0)
            assert_string_equal(out, cases[i].value);
    }
    char small[3];
    assert_int_equal(corio_http_cookie_get(&req, "b", small, sizeof(small)), -ENOSPC);
    assert_int_equal(corio_http_cookie_get(&req, "a", small, sizeof(small)), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_FDS_TEST(test_http_conn_max_requests),
        T_LOOP_FDS_TEST(test_http_conn_idle_timeout),
        T_LOOP_FDS_TEST(test_http_conn_access_log),
        T_LOOP_FDS_TEST(test_http_conn_access_log_fd),
        T_LOOP_FDS_TEST(test_http_conn_upload_length),
        T_LOOP_FDS_TEST(test_http_conn_upload_chunked),
        T_LOOP_FDS_TEST(test_http_conn_continue),
        T_LOOP_FDS_TEST(test_http_conn_send_file),
        cmocka_unit_test(test_http_conn_cookies),
    };
    /* The slow variant (CORIO_TEST_UPLOAD_MIB=1024, test_http_conn_1g) runs the uploads only. */
    const struct CMUnitTest uploads[] = {
        T_LOOP_FDS_TEST(test_http_conn_upload_length),
        T_LOOP_FDS_TEST(test_http_conn_upload_chunked),
    };
    if (getenv("CORIO_TEST_UPLOAD_MIB"))
        return T_RUN_TESTS(uploads);
    return T_RUN_TESTS(tests);
}
