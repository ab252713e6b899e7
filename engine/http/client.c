/* corio http: the HTTP/1.1 client (corio_http_client_*).
 *
 * A client keeps, per host and port, a pool of idle keep-alive connections. A request takes one
 * (or dials a new one), owns it until its exchange ends, and gives it back only when the response
 * was read to its end on a connection both sides keep open, with no byte after it: anything else
 * could leave the next request reading the rest of this one. Each connection has one buffer: the
 * request head is formatted in it, then the response head is received at its start and stays
 * there until the exchange ends (so that the head's pointers hold), and the bytes after the head
 * are body. A Content-Length or close-delimited body beyond what came with the head is received
 * straight into the caller's memory; a chunked one is decoded in place behind the head.
 *
 * A pooled connection may have been closed by the server at any time. One that has is usually
 * seen before use (its FIN is readable); one closed while the request travels fails with nothing
 * received, and then the request, if it may be sent twice, goes again on a new connection.
 *
 * Idle connections past idle_timeout are closed by a reaper coroutine, which lives only while the
 * pool holds some (so that a loop whose client has gone quiet ends once they are closed) and
 * marks its sleep idle (so that a drain closes them at once). The calls sweep as well, in case no
 * reaper could be spawned.
 */
#include "parser.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* How a response body is framed. */
enum body_mode {
    BODY_NONE,    /* HEAD, 1xx, 204, 304 */
    BODY_LENGTH,  /* Content-Length */
    BODY_CHUNKED, /* Transfer-Encoding: chunked */
    BODY_CLOSE,   /* until the server closes */
};

struct pool;

/* One connection and, while an exchange holds it, that exchange's state. */
struct conn {
    struct conn *next;  /* in its pool's idle list */
    struct pool *pool;  /* the host and port it goes to */
    int fd;             /* the socket */
    int64_t idle_since; /* when it went back to the pool */
    bool reused;        /* the current request went out on it after an earlier one */
    /* The exchange. The buffer holds the response head at [0, base) and body bytes not yet
     * handed out at [off, len); a chunked body's decoded payload waits at [pay, pay + pay_len). */
    enum body_mode mode;
    bool done;      /* the body has ended */
    bool failed;    /* a read failed: the rest is unreadable */
    bool keep;      /* the server keeps the connection alive */
    int64_t left;   /* BODY_LENGTH: bytes still to come */
    size_t base;    /* where the body area starts: the head's length */
    size_t off;     /* next unread byte */
    size_t len;     /* bytes in buf */
    size_t pay;     /* BODY_CHUNKED: decoded payload not yet handed out */
    size_t pay_len; /* its length */
    struct corio_http_chunked chunked;
    struct corio_http_response_head head;
    struct corio_http_header *headers; /* max_headers of them, after buf */
    size_t cap;                        /* bytes in buf */
    char buf[];
};

/* The idle connections to one host and port. */
struct pool {
    struct corio_http_client *client; /* the client it belongs to */
    struct pool *next;                /* in the client's list */
    struct conn *idle;                /* most recently used first */
    size_t nidle;                     /* connections in idle */
    uint16_t port;                    /* the port */
    char host[];                      /* the host as the requests name it */
};

/* What the reaper shares with its client: the client, or NULL once it has been freed. */
struct reaper {
    struct corio_http_client *cl;
};

struct corio_http_client {
    struct corio_http_client_opts o;
    struct reaper *reaper;        /* the running reaper, or NULL */
    corio_id reaper_id;           /* its id, to cancel it */
    struct corio_http_limits lim; /* what the response parser is given */
    struct pool *pools;
    struct corio_http_client_counters stats;
};

#define DEFAULT_MAX_IDLE 8
#define DEFAULT_IDLE_TIMEOUT CORIO_SEC(30)
#define DEFAULT_BUFFER (16 * 1024)
/* Room before a streamed chunk's data for its chunk-size line: 16 hex digits and CRLF. */
#define CHUNK_PRE 18
/* Room a chunked body has beside the largest head, at least. */
#define MIN_BODY_ROOM 1024

/* ---- client and pools ------------------------------------------------------------------------ */

int corio_http_client_new(struct corio_http_client **out, const struct corio_http_client_opts *opts)
{
    struct corio_http_client_opts o = {0};
    if (opts)
        o = *opts;
    if (o.max_idle == 0)
        o.max_idle = DEFAULT_MAX_IDLE;
    if (o.idle_timeout <= 0)
        o.idle_timeout = DEFAULT_IDLE_TIMEOUT;
    if (o.max_head_bytes == 0)
        o.max_head_bytes = CORIO_HTTP_DEFAULT_MAX_HEAD_BYTES;
    if (o.max_headers == 0)
        o.max_headers = CORIO_HTTP_DEFAULT_MAX_HEADERS;
    if (o.buffer_size == 0)
        o.buffer_size = o.max_head_bytes + MIN_BODY_ROOM > DEFAULT_BUFFER
                            ? o.max_head_bytes + MIN_BODY_ROOM
                            : DEFAULT_BUFFER;
    if (o.buffer_size < o.max_head_bytes + MIN_BODY_ROOM)
        return -EINVAL;
    struct corio_http_client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return -ENOMEM;
    cl->o = o;
    corio_http_limits_init(&cl->lim);
    cl->lim.max_head_bytes = o.max_head_bytes;
    cl->lim.max_headers = o.max_headers;
    cl->lim.max_body_bytes = INT64_MAX;
    *out = cl;
    return 0;
}

static void conn_close(struct conn *c)
{
    corio_close(c->fd);
    free(c);
}

/* Closes the idle connections of @p that have been idle since before @cutoff. */
static void pool_sweep(struct corio_http_client *cl, struct pool *p, int64_t cutoff)
{
    struct conn **pp = &p->idle;
    while (*pp) {
        struct conn *c = *pp;
        if (c->idle_since < cutoff) {
            *pp = c->next;
            p->nidle--;
            cl->stats.stale++;
            conn_close(c);
        } else {
            pp = &c->next;
        }
    }
}

/* Closes every idle connection past the idle timeout. */
static void sweep(struct corio_http_client *cl)
{
    int64_t cutoff = corio_now() - cl->o.idle_timeout;
    for (struct pool *p = cl->pools; p; p = p->next)
        pool_sweep(cl, p, cutoff);
}

void corio_http_client_free(struct corio_http_client *cl)
{
    if (!cl)
        return;
    if (cl->reaper) {
        /* It frees its own part when it wakes, and leaves the client alone. */
        cl->reaper->cl = NULL;
        corio_cancel(cl->reaper_id);
    }
    while (cl->pools) {
        struct pool *p = cl->pools;
        cl->pools = p->next;
        while (p->idle) {
            struct conn *c = p->idle;
            p->idle = c->next;
            conn_close(c);
        }
        free(p);
    }
    free(cl);
}

const struct corio_http_client_counters *corio_http_client_stats(const struct corio_http_client *cl)
{
    return &cl->stats;
}

/* The time the first idle connection of @cl expires at, or -1 when none is idle. */
static int64_t next_expiry(const struct corio_http_client *cl)
{
    int64_t first = -1;
    for (const struct pool *p = cl->pools; p; p = p->next) {
        for (const struct conn *c = p->idle; c; c = c->next) {
            if (first < 0 || c->idle_since < first)
                first = c->idle_since;
        }
    }
    return first < 0 ? -1 : first + cl->o.idle_timeout;
}

/* The reaper: sleeps until the first idle connection expires and closes those that have, until
 * none is idle. A drain, or a stop of the loop, closes them all and ends it; a cancel by
 * corio_http_client_free ends it without a look at the client, which is gone. */
static int reap(void *arg)
{
    struct reaper *r = arg;
    while (r->cl) {
        int64_t at = next_expiry(r->cl);
        if (at < 0)
            break;
        int err = corio_set_idle(true);
        if (err == 0) {
            err = corio_sleep(at);
            corio_set_idle(false);
        }
        if (!r->cl)
            break;
        int64_t cutoff =
            err == -ETIMEDOUT || err == 0 ? corio_now() - r->cl->o.idle_timeout : INT64_MAX;
        for (struct pool *p = r->cl->pools; p; p = p->next)
            pool_sweep(r->cl, p, cutoff);
    }
    if (r->cl)
        r->cl->reaper = NULL;
    free(r);
    return 0;
}

/* Starts the reaper of @cl if it has none. Without one (no memory, no loop) the calls' sweeps are
 * all there is. */
static void reaper_start(struct corio_http_client *cl)
{
    if (cl->reaper)
        return;
    struct reaper *r = malloc(sizeof(*r));
    if (!r)
        return;
    r->cl = cl;
    if (corio_spawn(&cl->reaper_id, NULL, reap, r) != 0) {
        free(r);
        return;
    }
    corio_detach(cl->reaper_id);
    cl->reaper = r;
}

/* Returns the pool for @host:@port, made if there is none, or NULL without memory. */
static struct pool *pool_of(struct corio_http_client *cl, const char *host, uint16_t port)
{
    for (struct pool *p = cl->pools; p; p = p->next) {
        if (p->port == port && strcmp(p->host, host) == 0)
            return p;
    }
    size_t hl = strlen(host);
    struct pool *p = calloc(1, sizeof(*p) + hl + 1);
    if (!p)
        return NULL;
    memcpy(p->host, host, hl + 1);
    p->port = port;
    p->client = cl;
    p->next = cl->pools;
    cl->pools = p;
    return p;
}

/* Whether the idle connection @c still looks usable: nothing to read on it, neither the end of
 * the stream nor stray bytes. One non-blocking peek, without the loop: it never waits. */
static bool conn_alive(const struct conn *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Takes an idle connection of @p that is still alive, closing the dead ones it meets. Returns
 * it, or NULL when there is none. */
static struct conn *pool_take(struct corio_http_client *cl, struct pool *p)
{
    while (p->idle) {
        struct conn *c = p->idle;
        p->idle = c->next;
        p->nidle--;
        if (conn_alive(c)) {
            c->next = NULL;
            c->reused = true;
            return c;
        }
        cl->stats.stale++;
        conn_close(c);
    }
    return NULL;
}

/* Dials a new connection to @p's host and port by @deadline. Returns 0 with *@out set, or
 * -errno. */
static int conn_dial(struct corio_http_client *cl, struct pool *p, struct conn **out,
                     int64_t deadline)
{
    size_t cap = cl->o.buffer_size;
    struct conn *c =
        malloc(sizeof(*c) + cap + cl->o.max_headers * sizeof(struct corio_http_header));
    if (!c)
        return -ENOMEM;
    int fd = corio_dial_tcp(p->host, p->port, deadline);
    if (fd < 0) {
        free(c);
        return fd;
    }
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->pool = p;
    c->cap = cap;
    c->headers = (struct corio_http_header *)(void *)(c->buf + cap);
    cl->stats.connects++;
    *out = c;
    return 0;
}

/* ---- the request ----------------------------------------------------------------------------- */

/* Whether @s[0..@n) is all in character class @cls. */
static bool all_in(const char *s, size_t n, unsigned cls)
{
    for (size_t i = 0; i < n; i++) {
        if (!IS(cls, s[i]))
            return false;
    }
    return true;
}

/* Whether field @h may be sent: a token name, a value of field bytes, not a framing field. */
static bool field_ok(const struct corio_http_header *h)
{
    if (h->name_len == 0 || !all_in(h->name, h->name_len, C_TCHAR) ||
        !all_in(h->value, h->value_len, C_VALUE))
        return false;
    static const char *const framing[] = {"content-length", "transfer-encoding", "connection"};
    for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++) {
        if (strlen(framing[i]) == h->name_len && eq_lower(h->name, framing[i], h->name_len))
            return false;
    }
    return true;
}

/* Checks @rq. Returns 0 or -EINVAL. */
static int request_ok(const struct corio_http_client_request *rq)
{
    const char *m = rq->method ? rq->method : "GET";
    if (!rq->host || !rq->host[0] || !m[0] || !all_in(m, strlen(m), C_TCHAR))
        return -EINVAL;
    if (rq->target && (!rq->target[0] || !all_in(rq->target, strlen(rq->target), C_TARGET)))
        return -EINVAL;
    if (rq->num_headers && !rq->headers)
        return -EINVAL;
    for (size_t i = 0; i < rq->num_headers; i++) {
        if (!field_ok(&rq->headers[i]))
            return -EINVAL;
    }
    if (rq->body_fn && rq->body_length < -1)
        return -EINVAL;
    return 0;
}

/* Appends to a bounded buffer, remembering an overflow. */
struct head_out {
    char *p;
    size_t len, cap;
    bool full;
};

static void out_put(struct head_out *o, const char *s, size_t n)
{
    if (n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void out_str(struct head_out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

/* Whether the request has a Host field of its own. */
static bool has_host(const struct corio_http_client_request *rq)
{
    for (size_t i = 0; i < rq->num_headers; i++) {
        if (rq->headers[i].name_len == 4 && eq_lower(rq->headers[i].name, "host", 4))
            return true;
    }
    return false;
}

/* Formats the request head of @rq into @c's buffer. Returns its length, or -E2BIG. */
static ssize_t format_head(struct corio_http_client *cl, struct conn *c,
                           const struct corio_http_client_request *rq)
{
    struct head_out o = {.p = c->buf, .len = 0, .cap = cl->o.max_head_bytes};
    char num[48];
    out_str(&o, rq->method ? rq->method : "GET");
    out_str(&o, " ");
    out_str(&o, rq->target ? rq->target : "/");
    out_str(&o, " HTTP/1.1\r\n");
    if (!has_host(rq)) {
        /* RFC 9110 section 7.2: the port goes with the host unless it is the scheme's default;
         * an IPv6 address is bracketed. */
        bool v6 = strchr(rq->host, ':') != NULL;
        out_str(&o, v6 ? "Host: [" : "Host: ");
        out_str(&o, rq->host);
        out_str(&o, v6 ? "]" : "");
        if (rq->port != 80) {
            snprintf(num, sizeof(num), ":%u", (unsigned)rq->port);
            out_str(&o, num);
        }
        out_str(&o, "\r\n");
    }
    for (size_t i = 0; i < rq->num_headers; i++) {
        const struct corio_http_header *h = &rq->headers[i];
        out_put(&o, h->name, h->name_len);
        out_str(&o, ": ");
        out_put(&o, h->value, h->value_len);
        out_str(&o, "\r\n");
    }
    if (rq->body_fn && rq->body_length < 0) {
        out_str(&o, "Transfer-Encoding: chunked\r\n");
    } else {
        int64_t n = rq->body_fn ? rq->body_length : (int64_t)rq->body_len;
        const char *m = rq->method ? rq->method : "GET";
        /* A GET or HEAD without a body says nothing of one, as browsers do; other methods say
         * 0, which servers that want a length for a POST need. */
        if (n > 0 || (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)) {
            snprintf(num, sizeof(num), "Content-Length: %lld\r\n", (long long)n);
            out_str(&o, num);
        }
    }
    out_str(&o, "\r\n");
    return o.full ? -E2BIG : (ssize_t)o.len;
}

/* Sends a streamed body from @rq->body_fn: the exact length, or chunks until it ends. Returns 0
 * or -errno. */
static int send_streamed(struct conn *c, const struct corio_http_client_request *rq,
                         int64_t deadline)
{
    size_t room = c->cap - CHUNK_PRE - 2;
    int64_t left = rq->body_length;
    for (;;) {
        size_t want = room;
        if (left >= 0 && (int64_t)want > left)
            want = (size_t)left;
        ssize_t n = want ? rq->body_fn(rq->body_arg, c->buf + CHUNK_PRE, want, deadline) : 0;
        if (n < 0)
            return (int)n;
        if ((size_t)n > want)
            return -EINVAL;
        if (left >= 0) {
            if (n == 0)
                return left == 0 ? 0 : -EPIPE; /* the source ended before the length it owed */
            left -= n;
            ssize_t r = corio_send_all(c->fd, c->buf + CHUNK_PRE, (size_t)n, NULL, deadline);
            if (r < 0)
                return (int)r;
            continue;
        }
        /* The chunk-size line goes right before the data, and CRLF after it; for the last
         * chunk (size 0) that CRLF is the empty line that ends an empty trailer section. */
        char line[CHUNK_PRE + 1];
        int ll = snprintf(line, sizeof(line), "%zx\r\n", (size_t)n);
        char *start = c->buf + CHUNK_PRE - ll;
        memcpy(start, line, (size_t)ll);
        size_t total = (size_t)ll + (size_t)n;
        memcpy(start + total, "\r\n", 2);
        total += 2;
        ssize_t r = corio_send_all(c->fd, start, total, NULL, deadline);
        if (r < 0)
            return (int)r;
        if (n == 0)
            return 0;
    }
}

/* Sends @rq on @c by @deadline. Returns 0 or -errno. */
static int send_request(struct corio_http_client *cl, struct conn *c,
                        const struct corio_http_client_request *rq, int64_t deadline)
{
    ssize_t hl = format_head(cl, c, rq);
    if (hl < 0)
        return (int)hl;
    size_t n = (size_t)hl;
    const char *body = rq->body_fn ? NULL : rq->body;
    size_t blen = rq->body_fn ? 0 : rq->body_len;
    /* A small body goes with the head in one send. */
    if (blen > 0 && blen <= c->cap - n) {
        memcpy(c->buf + n, body, blen);
        n += blen;
        blen = 0;
    }
    ssize_t r = corio_send_all(c->fd, c->buf, n, NULL, deadline);
    if (r >= 0 && blen > 0)
        r = corio_send_all(c->fd, body, blen, NULL, deadline);
    if (r < 0)
        return (int)r;
    return rq->body_fn ? send_streamed(c, rq, deadline) : 0;
}

/* ---- the response head ----------------------------------------------------------------------- */

/* Sets up the body of the response whose head @c has just parsed, to request method @method. */
static void body_setup(struct corio_http_client *cl, struct conn *c, const char *method)
{
    const struct corio_http_response_head *h = &c->head;
    bool head_req = method && strcmp(method, "HEAD") == 0;
    c->keep = h->keep_alive;
    c->done = false;
    c->pay_len = 0;
    if (head_req || h->status < 200 || h->status == 204 || h->status == 304) {
        c->mode = BODY_NONE;
        c->done = true;
        if (h->status == 101)
            c->keep = false; /* the connection now speaks another protocol */
    } else if (h->chunked) {
        c->mode = BODY_CHUNKED;
        corio_http_chunked_init(&c->chunked, &cl->lim);
    } else if (h->content_length >= 0) {
        c->mode = BODY_LENGTH;
        c->left = h->content_length;
        c->done = c->left == 0;
    } else {
        c->mode = BODY_CLOSE;
        c->keep = false;
    }
}

/* Receives into @c's buffer until a final response head parses. Returns 0 or -errno; *@got is
 * whether any byte of a response came. */
static int read_head(struct corio_http_client *cl, struct conn *c, bool *got, int64_t deadline)
{
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    c->len = 0;
    *got = false;
    for (;;) {
        ssize_t n = corio_http_parse_response(&p, c->buf, c->len, &cl->lim, &c->head, c->headers,
                                              cl->o.max_headers);
        if (n > 0 && c->head.status < 200 && c->head.status != 101) {
            /* An interim response: drop it, and read on for the final one. */
            memmove(c->buf, c->buf + n, c->len - (size_t)n);
            c->len -= (size_t)n;
            continue;
        }
        if (n > 0) {
            c->base = c->off = (size_t)n;
            return 0;
        }
        if (n != -EAGAIN)
            return (int)n;
        if (c->len == c->cap)
            return -EMSGSIZE; /* cannot happen: cap > max_head_bytes */
        ssize_t r = corio_recv(c->fd, c->buf + c->len, c->cap - c->len, 0, deadline);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0)
            return (int)r;
        *got = true;
        c->len += (size_t)r;
    }
}

/* Whether a failure @err of request @rq on a pooled connection, with nothing received, may be
 * retried on a new one: the server may have closed the connection as the request went out, and
 * then it never saw the request. */
static bool retryable(const struct corio_http_client_request *rq, int err)
{
    if (err != -ECONNRESET && err != -EPIPE)
        return false;
    if (rq->body_fn)
        return false; /* its bytes are spent */
    static const char *const idempotent[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    const char *m = rq->method ? rq->method : "GET";
    for (size_t i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++) {
        if (strcmp(m, idempotent[i]) == 0)
            return true;
    }
    return false;
}

/* One attempt of @rq on @c. Returns 0 or -errno; *@got as read_head says. */
static int attempt(struct corio_http_client *cl, struct conn *c,
                   const struct corio_http_client_request *rq, bool *got, int64_t deadline)
{
    *got = false;
    cl->stats.requests++;
    if (c->reused)
        cl->stats.reused++;
    int err = send_request(cl, c, rq, deadline);
    if (err == 0)
        err = read_head(cl, c, got, deadline);
    return err;
}

int corio_http_client_send(struct corio_http_client *cl, struct corio_http_exchange *x,
                           const struct corio_http_client_request *rq, int64_t deadline)
{
    memset(x, 0, sizeof(*x));
    int err = request_ok(rq);
    if (err)
        return err;
    sweep(cl);
    struct pool *p = pool_of(cl, rq->host, rq->port);
    if (!p)
        return -ENOMEM;
    struct conn *c = pool_take(cl, p);
    if (!c) {
        err = conn_dial(cl, p, &c, deadline);
        if (err)
            return err;
    }
    bool got;
    err = attempt(cl, c, rq, &got, deadline);
    if (err && c->reused && !got && retryable(rq, err)) {
        conn_close(c);
        err = conn_dial(cl, p, &c, deadline);
        if (err)
            return err;
        cl->stats.retries++;
        err = attempt(cl, c, rq, &got, deadline);
    }
    if (err) {
        conn_close(c);
        return err;
    }
    body_setup(cl, c, rq->method);
    x->status = c->head.status;
    x->head = &c->head;
    x->conn_ = c;
    return x->status;
}

/* ---- the response body ----------------------------------------------------------------------- */

/* Copies up to @len buffered body bytes of @c to @dst. Returns how many. */
static size_t take_buffered(struct conn *c, void *dst, size_t len)
{
    size_t n = c->len - c->off;
    if (n > len)
        n = len;
    memcpy(dst, c->buf + c->off, n);
    c->off += n;
    if (c->off == c->len)
        c->off = c->len = c->base;
    return n;
}

/* Reads a Content-Length or close-delimited body. Returns what corio_http_client_read does. */
static ssize_t read_plain(struct conn *c, void *dst, size_t len, int64_t deadline)
{
    if (c->mode == BODY_LENGTH && (int64_t)len > c->left)
        len = (size_t)c->left;
    ssize_t n;
    if (c->len > c->off) {
        n = (ssize_t)take_buffered(c, dst, len);
    } else {
        n = corio_recv(c->fd, dst, len, 0, deadline);
        if (n == 0 && c->mode == BODY_LENGTH)
            n = -ECONNRESET; /* the server ended the stream inside the body */
        if (n < 0)
            return n;
    }
    if (c->mode == BODY_LENGTH) {
        c->left -= n;
        c->done = c->left == 0;
    } else {
        c->done = n == 0;
    }
    return n;
}

/* Decodes the chunked bytes buffered in @c, leaving the payload at [pay, pay + pay_len). Returns
 * 0 or -errno. */
static int decode_buffered(struct conn *c)
{
    size_t produced, consumed;
    int r = corio_http_chunked_decode(&c->chunked, c->buf + c->off, c->len - c->off, &produced,
                                      &consumed);
    c->pay = c->off;
    c->pay_len = produced;
    c->off += consumed;
    if (r == 0)
        c->done = true;
    return r == -EAGAIN ? 0 : r;
}

/* Reads a chunked body. Returns what corio_http_client_read does. */
static ssize_t read_chunked(struct conn *c, void *dst, size_t len, int64_t deadline)
{
    for (;;) {
        if (c->pay_len > 0) {
            size_t n = c->pay_len < len ? c->pay_len : len;
            memcpy(dst, c->buf + c->pay, n);
            c->pay += n;
            c->pay_len -= n;
            return (ssize_t)n;
        }
        if (c->done)
            return 0;
        if (c->len > c->off) {
            int err = decode_buffered(c);
            if (err)
                return err;
            continue;
        }
        /* Everything buffered is spent: receive behind the head again. */
        c->off = c->len = c->base;
        ssize_t r = corio_recv(c->fd, c->buf + c->len, c->cap - c->len, 0, deadline);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0)
            return r;
        c->len += (size_t)r;
    }
}

ssize_t corio_http_client_read(struct corio_http_exchange *x, void *buf, size_t len,
                               int64_t deadline)
{
    struct conn *c = x->conn_;
    if (!c)
        return -EINVAL;
    if (c->failed)
        return -EPROTO;
    if (len == 0 || (c->done && c->pay_len == 0))
        return 0;
    ssize_t n = c->mode == BODY_CHUNKED ? read_chunked(c, buf, len, deadline)
                                        : read_plain(c, buf, len, deadline);
    if (n < 0)
        c->failed = true;
    return n;
}

void corio_http_client_end(struct corio_http_exchange *x)
{
    struct conn *c = x->conn_;
    if (!c)
        return;
    x->conn_ = NULL;
    x->head = NULL;
    struct pool *p = c->pool;
    /* A connection is reused only when nothing of this exchange is left on it. */
    bool clean = c->done && !c->failed && c->keep && c->pay_len == 0 && c->off == c->len;
    struct corio_http_client *cl = p->client;
    if (!clean || p->nidle >= cl->o.max_idle) {
        conn_close(c);
        return;
    }
    c->idle_since = corio_now();
    c->reused = false;
    c->next = p->idle;
    p->idle = c;
    p->nidle++;
    sweep(cl);
    reaper_start(cl);
}

ssize_t corio_http_client_fetch(struct corio_http_client *cl, struct corio_http_exchange *x,
                                const struct corio_http_client_request *rq, void *buf, size_t cap,
                                int64_t deadline)
{
    int status = corio_http_client_send(cl, x, rq, deadline);
    if (status < 0)
        return status;
    size_t got = 0;
    for (;;) {
        char spare;
        bool full = got == cap;
        /* Past @cap, one byte more tells a body that fits exactly from one that does not. */
        ssize_t n = corio_http_client_read(x, full ? &spare : (char *)buf + got,
                                           full ? 1 : cap - got, deadline);
        if (n < 0)
            return n;
        if (n == 0)
            return (ssize_t)got;
        if (full) {
            ((struct conn *)x->conn_)->failed = true;
            return -ENOSPC;
        }
        got += (size_t)n;
    }
}
