/* The HTTP/1.1 server: accept loop, one coroutine per connection, routing, responses, request
 * bodies and static files. Built only on corio's public API.
 *
 * A connection owns one allocation: its input buffer and its output buffer. A request head is
 * parsed in place in the input buffer (the request struct points into it), so the head stays where
 * it is until the request is done; body bytes are read after it. Responses go to the output
 * buffer, which is flushed before the connection waits for input: pipelined requests that arrived
 * together are answered with one send. */
#include "server.h"

#include <corio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct route {
    int method;             /* enum corio_http_method, or -1 for any */
    char *path;             /* the path, or its prefix (without the '*') */
    size_t len;             /* bytes in path */
    bool prefix;            /* match as a prefix */
    corio_http_handler *h;  /* handler */
    void *arg;              /* its argument */
};

struct corio_http_server {
    struct corio_http_server_opts o;      /* options with defaults filled in */
    int root_fd;                          /* the static root directory, or -1 */
    struct route *routes;                 /* in the order added */
    size_t n_routes;                      /* routes in use */
    struct corio_http_stats stats;        /* counters */
    struct corio_sem slots;               /* free connection slots */
    struct corio_bufring *ring;           /* buffers for the connections' multishot receives */
    time_t date_sec;                      /* the second date[] was formatted for */
    char date[CORIO_HTTP_DATE_LEN + 1];   /* cached IMF-fixdate for the Date header */
};

enum { RESP_NONE, RESP_STARTED, RESP_DONE };
enum { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_DONE, BODY_ERROR };

/* The outcomes of reading a head that are not a head or an HTTP status. */
#define HEAD_CLOSE (-2) /* end the connection quietly: EOF, reset, idle timeout */

struct corio_http_conn {
    struct corio_http_server *s; /* the server */
    int fd;                      /* the socket */
    char *rbuf;                  /* input; unconsumed bytes are [rpos, rlen) */
    size_t rcap, rpos, rlen;
    char *wbuf;                  /* output not yet sent: [0, wlen) */
    size_t wcap, wlen;
    int64_t head_deadline;       /* when the head being read must be complete */
    uint64_t nreq;               /* requests served on this connection */
    /* The request being served. */
    bool head_only;              /* a HEAD request: no body in responses */
    bool keep_alive;             /* the response says keep-alive and the loop goes on */
    bool broken;                 /* an I/O error or a half-sent response: close after this */
    bool sent_continue;          /* the 100 Continue response went out */
    bool expect_continue;        /* the client waits for 100 Continue before its body */
    uint8_t resp;                /* RESP_* */
    int64_t resp_left;           /* body bytes a started response still owes */
    uint8_t body;                /* BODY_* */
    size_t bstart;               /* where the body starts in rbuf (the end of the head) */
    size_t bpos;                 /* the body read cursor in rbuf */
    int64_t body_left;           /* BODY_LENGTH: bytes not yet read */
    int64_t body_deadline;       /* the body must have arrived by then */
    size_t payload_off;          /* BODY_CHUNKED: decoded bytes waiting at rbuf[payload_off] */
    size_t payload_len;
    struct corio_http_chunked ch; /* the chunked decoder */
    struct corio_receiver rx;    /* multishot receive over the server's ring, if it has one */
    struct corio_buf pend;       /* a received buffer not yet copied out in full */
    size_t pend_off;             /* how much of it was */
    bool use_rx;                 /* rx is set up */
};

/* ---- server ------------------------------------------------------------------------------- */

int corio_http_server_new(struct corio_http_server **out, const struct corio_http_server_opts *opts)
{
    struct corio_http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    if (opts)
        s->o = *opts;
    struct corio_http_limits def;
    corio_http_limits_init(&def);
    struct corio_http_limits *lim = &s->o.limits;
    if (!lim->max_head_bytes)
        lim->max_head_bytes = def.max_head_bytes;
    if (!lim->max_headers)
        lim->max_headers = def.max_headers;
    if (!lim->max_target_bytes)
        lim->max_target_bytes = def.max_target_bytes;
    if (!lim->max_body_bytes)
        lim->max_body_bytes = def.max_body_bytes;
    if (!s->o.header_timeout)
        s->o.header_timeout = CORIO_SEC(10);
    if (!s->o.idle_timeout)
        s->o.idle_timeout = CORIO_SEC(60);
    if (!s->o.body_timeout)
        s->o.body_timeout = CORIO_SEC(60);
    if (!s->o.max_connections)
        s->o.max_connections = 10000;
    if (!s->o.buffer_size)
        s->o.buffer_size = 16384;
    /* The head must fit, with room left for body bytes behind it. */
    if (s->o.buffer_size < lim->max_head_bytes + 4096)
        s->o.buffer_size = lim->max_head_bytes + 4096;
    if (s->o.max_connections > UINT32_MAX || lim->max_headers > 4096) {
        free(s);
        return -EINVAL;
    }
    s->root_fd = -1;
    if (s->o.root) {
        s->root_fd = open(s->o.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->root_fd < 0) {
            int err = -errno;
            free(s);
            return err;
        }
        s->o.root = NULL; /* not kept: the caller's string may go */
    }
    corio_sem_init(&s->slots, (unsigned)s->o.max_connections);
    *out = s;
    return 0;
}

void corio_http_server_free(struct corio_http_server *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_routes; i++)
        free(s->routes[i].path);
    free(s->routes);
    if (s->root_fd >= 0)
        close(s->root_fd);
    free(s);
}

static const char *const method_names[] = {
    [CORIO_HTTP_GET] = "GET",         [CORIO_HTTP_HEAD] = "HEAD",       [CORIO_HTTP_POST] = "POST",
    [CORIO_HTTP_PUT] = "PUT",         [CORIO_HTTP_DELETE] = "DELETE",   [CORIO_HTTP_OPTIONS] = "OPTIONS",
    [CORIO_HTTP_PATCH] = "PATCH",     [CORIO_HTTP_TRACE] = "TRACE",     [CORIO_HTTP_CONNECT] = "CONNECT",
};

int corio_http_route(struct corio_http_server *s, const char *method, const char *path,
                     corio_http_handler *h, void *arg)
{
    if (!s || !path || path[0] != '/' || !h)
        return -EINVAL;
    int m = -1;
    if (method) {
        for (size_t i = 1; i < sizeof(method_names) / sizeof(method_names[0]); i++)
            if (method_names[i] && strcmp(method, method_names[i]) == 0)
                m = (int)i;
        if (m < 0)
            return -EINVAL;
    }
    struct route *r = realloc(s->routes, (s->n_routes + 1) * sizeof(*r));
    if (!r)
        return -ENOMEM;
    s->routes = r;
    size_t len = strlen(path);
    bool prefix = path[len - 1] == '*';
    if (prefix)
        len--;
    char *copy = strndup(path, len);
    if (!copy)
        return -ENOMEM;
    s->routes[s->n_routes++] = (struct route){m, copy, len, prefix, h, arg};
    return 0;
}

const struct corio_http_stats *corio_http_server_stats(const struct corio_http_server *s)
{
    return &s->stats;
}

static const char *date_now(struct corio_http_server *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != s->date_sec) {
        corio_http_format_date(s->date, sizeof(s->date), ts.tv_sec);
        s->date_sec = ts.tv_sec;
    }
    return s->date;
}

/* ---- deadlines ---------------------------------------------------------------------------- */

/* Each phase of a connection that waits on the peer (a head, a body read, a write) is bounded by
 * the coroutine's own deadline (corio_set_deadline): one timer for all the receives or sends of
 * the phase, none per operation, and none at all for an operation that completes before it. A
 * phase narrows the deadline and sets the previous one back when it ends, so that a handler never
 * runs under a bound of the server's, and the server's calls a handler makes (a write, a body
 * read) keep the handler's own deadline when it is earlier. Returns the deadline to set back. */
static int64_t phase_begin(int64_t deadline)
{
    int64_t prev;
    corio_set_deadline(deadline, &prev);
    if (prev >= 0 && prev < deadline)
        corio_set_deadline(prev, NULL);
    return prev;
}

/* Ends a phase: sets back the deadline @prev that phase_begin returned. A deadline of the phase
 * that passed goes with it, so the next wait (a flush after a timed-out read) is not failed. */
static void phase_end(int64_t prev)
{
    corio_set_deadline(prev, NULL);
}

/* Reads up to @len bytes into @dst, bounded by the caller's phase. With the server's buffer
 * ring, a multishot receive stays armed on the connection (no poll to arm again per request) and
 * each buffer the kernel fills is copied out, the rest of it kept for the next call; otherwise a
 * receive per call. Returns the bytes read, 0 at EOF, or -errno (-ETIMEDOUT when the phase's
 * deadline passes). */
static ssize_t conn_recv(struct corio_http_conn *c, void *dst, size_t len)
{
    if (!c->use_rx)
        return corio_recv(c->fd, dst, len, 0, CORIO_FOREVER);
    if (!c->pend.ring) {
        ssize_t n = corio_receiver_next(&c->rx, &c->pend, CORIO_FOREVER);
        if (n <= 0)
            return n;
        c->pend_off = 0;
    }
    size_t k = c->pend.len - c->pend_off;
    if (k > len)
        k = len;
    memcpy(dst, (const char *)c->pend.data + c->pend_off, k);
    c->pend_off += k;
    if (c->pend_off == c->pend.len)
        corio_buf_release(&c->pend);
    return (ssize_t)k;
}

/* ---- output ------------------------------------------------------------------------------- */

/* Sends @len bytes from @p. @bounded: a peer that stops reading holds the sender at most the
 * idle timeout from now; otherwise the caller's deadline applies. Returns 0, or -errno with the
 * connection marked broken. */
static int send_out(struct corio_http_conn *c, const void *p, size_t len, bool bounded)
{
    int64_t prev = bounded ? phase_begin(corio_now() + c->s->o.idle_timeout) : CORIO_FOREVER;
    ssize_t r = corio_send_all(c->fd, p, len, NULL, CORIO_FOREVER);
    if (bounded)
        phase_end(prev);
    if (r < 0) {
        c->broken = true;
        return (int)r;
    }
    return 0;
}

/* Sends the output buffer, bounded or not as send_out. Returns 0 or -errno. */
static int flush_out(struct corio_http_conn *c, bool bounded)
{
    if (c->wlen == 0)
        return 0;
    int err = send_out(c, c->wbuf, c->wlen, bounded);
    c->wlen = 0;
    return err;
}

static int flush(struct corio_http_conn *c)
{
    return flush_out(c, true);
}

static int out_append(struct corio_http_conn *c, const void *p, size_t len)
{
    if (c->broken)
        return -EPIPE;
    if (len <= c->wcap - c->wlen) {
        memcpy(c->wbuf + c->wlen, p, len);
        c->wlen += len;
        return 0;
    }
    int err = flush(c);
    if (err)
        return err;
    if (len <= c->wcap / 2) {
        memcpy(c->wbuf, p, len);
        c->wlen = len;
        return 0;
    }
    return send_out(c, p, len, true);
}

/* Writes a response head into the output buffer. @len < 0 omits Content-Length. */
static int write_head(struct corio_http_conn *c, int status, const char *ctype, int64_t len,
                      const struct corio_http_response *tmpl)
{
    struct corio_http_response r;
    if (tmpl)
        r = *tmpl;
    else
        memset(&r, 0, sizeof(r));
    /* A client that waits for 100 Continue and gets a final response instead does not send its
     * body (RFC 9110 section 10.1.1), so body_discard ends the connection: say so in advance. */
    if (c->expect_continue && !c->sent_continue &&
        (c->body == BODY_LENGTH || c->body == BODY_CHUNKED))
        c->keep_alive = false;
    r.status = status;
    r.date_str = date_now(c->s);
    r.content_type = ctype;
    r.content_length = len;
    r.keep_alive = c->keep_alive && !c->broken;
    for (int tries = 0; tries < 2; tries++) {
        ssize_t n = corio_http_format_response(c->wbuf + c->wlen, c->wcap - c->wlen, &r);
        if (n >= 0) {
            c->wlen += (size_t)n;
            c->s->stats.responses++;
            return 0;
        }
        if (n != -ENOSPC)
            return (int)n;
        int err = flush(c);
        if (err)
            return err;
    }
    return -ENOSPC;
}

static bool bodyless_status(int status)
{
    return status < 200 || status == 204 || status == 304;
}

int corio_http_respond(struct corio_http_conn *c, int status, const char *content_type,
                       const void *body, size_t len)
{
    if (c->resp != RESP_NONE)
        return -EALREADY;
    bool none = bodyless_status(status);
    int err = write_head(c, status, none ? NULL : content_type, none ? -1 : (int64_t)len, NULL);
    c->resp = RESP_DONE;
    if (err) {
        c->broken = true;
        return err;
    }
    if (none || c->head_only || len == 0)
        return 0;
    return out_append(c, body, len);
}

int corio_http_respond_start(struct corio_http_conn *c, int status, const char *content_type,
                             int64_t content_length, const char *extra_headers)
{
    if (c->resp != RESP_NONE)
        return -EALREADY;
    struct corio_http_response t;
    memset(&t, 0, sizeof(t));
    if (extra_headers) {
        t.extra = extra_headers;
        t.extra_len = strlen(extra_headers);
    }
    int err = write_head(c, status, content_type, content_length, &t);
    if (err) {
        c->broken = true;
        c->resp = RESP_DONE;
        return err;
    }
    c->resp = RESP_STARTED;
    c->resp_left = content_length < 0 ? 0 : content_length;
    if (c->head_only || c->resp_left == 0)
        c->resp = RESP_DONE;
    return 0;
}

int corio_http_write(struct corio_http_conn *c, const void *buf, size_t len)
{
    if (c->head_only && c->resp == RESP_DONE)
        return 0;
    if (c->resp != RESP_STARTED || (int64_t)len > c->resp_left)
        return -EINVAL;
    int err = out_append(c, buf, len);
    if (err)
        return err;
    c->resp_left -= (int64_t)len;
    if (c->resp_left == 0)
        c->resp = RESP_DONE;
    return 0;
}

/* Answers with an error status and a short text body, and marks the connection for closing when
 * @close is set (RFC 9112 asks for it after a malformed request). */
static void respond_error(struct corio_http_conn *c, int status, bool close_conn)
{
    if (close_conn)
        c->keep_alive = false;
    const char *reason = corio_http_reason(status);
    char body[64];
    size_t n = strlen(reason);
    if (n > sizeof(body) - 2)
        n = sizeof(body) - 2;
    memcpy(body, reason, n);
    body[n++] = '\n';
    c->resp = RESP_NONE;
    corio_http_respond(c, status, "text/plain; charset=utf-8", body, n);
}

/* ---- request bodies ----------------------------------------------------------------------- */

static int send_continue(struct corio_http_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->sent_continue = true;
    int err = out_append(c, cont, sizeof(cont) - 1);
    return err ? err : flush(c);
}

/* Receives up to @len body bytes into @dst, bounded by the body deadline. Returns the bytes
 * read, 0 at EOF, or -errno. */
static ssize_t body_recv(struct corio_http_conn *c, void *dst, size_t len)
{
    int64_t prev = phase_begin(c->body_deadline);
    ssize_t n = conn_recv(c, dst, len);
    phase_end(prev);
    return n;
}

/* Reads more body input into rbuf after the head; the bytes before bstart are never moved. */
static ssize_t body_fill(struct corio_http_conn *c)
{
    if (c->bpos == c->rlen) {
        c->bpos = c->rlen = c->bstart;
        c->payload_off = c->bstart;
    }
    if (c->rlen == c->rcap)
        return -ENOBUFS;
    /* Written responses go out before the wait (see corio_http_read_body). */
    int err = flush(c);
    if (err)
        return err;
    ssize_t n = body_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (n == 0)
        return -ECONNRESET; /* the peer ended the stream inside the body */
    if (n > 0)
        c->rlen += (size_t)n;
    return n;
}

ssize_t corio_http_read_body(struct corio_http_conn *c, void *buf, size_t len)
{
    if (c->body == BODY_NONE || c->body == BODY_DONE)
        return 0;
    if (c->body == BODY_ERROR)
        return -EPROTO;
    if (c->expect_continue && !c->sent_continue && c->resp == RESP_NONE) {
        int err = send_continue(c);
        if (err)
            return err;
    }
    if (c->body == BODY_LENGTH) {
        if (c->body_left == 0) {
            c->body = BODY_DONE;
            return 0;
        }
        size_t want = len < (uint64_t)c->body_left ? len : (size_t)c->body_left;
        ssize_t n;
        if (c->bpos < c->rlen) {
            n = (ssize_t)(c->rlen - c->bpos < want ? c->rlen - c->bpos : want);
            memcpy(buf, c->rbuf + c->bpos, (size_t)n);
            c->bpos += (size_t)n;
        } else {
            /* Responses already written go out before the wait, as corio_http_respond
             * promises: the client may wait for one before it sends the rest. */
            n = flush(c);
            if (n == 0)
                n = body_recv(c, buf, want);
            if (n == 0)
                n = -ECONNRESET;
        }
        if (n < 0) {
            /* The request's framing is lost, so the connection ends after this request; the
             * output is intact, so the handler may still answer (408, 400, ...). */
            c->body = BODY_ERROR;
            c->keep_alive = false;
            return n;
        }
        c->body_left -= n;
        if (c->body_left == 0)
            c->body = BODY_DONE;
        return n;
    }
    /* Chunked: decode in place behind the head, hand out the payload, read more when empty. */
    for (;;) {
        if (c->payload_len > 0) {
            size_t n = len < c->payload_len ? len : c->payload_len;
            memcpy(buf, c->rbuf + c->payload_off, n);
            c->payload_off += n;
            c->payload_len -= n;
            return (ssize_t)n;
        }
        if (c->body == BODY_DONE)
            return 0;
        if (c->bpos == c->rlen) {
            ssize_t n = body_fill(c);
            if (n < 0) {
                c->body = BODY_ERROR;
                c->keep_alive = false; /* as above: the output is intact */
                return n;
            }
        }
        size_t produced = 0, consumed = 0;
        int r = corio_http_chunked_decode(&c->ch, c->rbuf + c->bpos, c->rlen - c->bpos, &produced,
                                          &consumed);
        c->payload_off = c->bpos;
        c->payload_len = produced;
        c->bpos += consumed;
        if (r < 0) {
            c->body = BODY_ERROR;
            c->keep_alive = false; /* as above: the handler can still answer -r */
            return r;
        }
        if (r == 1)
            c->body = BODY_DONE;
    }
}

/* Reads and drops what the handler left of the body, so that the next request can follow. */
static void body_discard(struct corio_http_conn *c)
{
    if (c->body == BODY_NONE || c->body == BODY_DONE)
        return;
    if (c->expect_continue && !c->sent_continue) {
        /* The client waits for our go-ahead before it sends the body: it never got one, so the
         * body will not come on this connection. */
        c->keep_alive = false;
        c->body = BODY_DONE;
        return;
    }
    char scratch[4096];
    ssize_t n;
    while ((n = corio_http_read_body(c, scratch, sizeof(scratch))) > 0)
        ;
    if (n < 0)
        c->broken = true;
}

/* ---- static files ------------------------------------------------------------------------- */

/* A static file being served. */
struct file_job {
    char path[4096 + 16]; /* the decoded path, NUL-terminated; room to append "index.html" */
    ssize_t plen;         /* bytes in path */
    int fd;               /* the open file */
    int64_t deadline;     /* for every file operation of the request */
    struct statx st;      /* type, size and mtime of the file */
};

/* Decodes the request-target into @f->path and opens that file below the root. Returns 0, or
 * -1 once an error response has been written. */
static int file_open(struct corio_http_conn *c, const struct corio_http_request *req,
                     struct file_job *f)
{
    f->plen = corio_http_decode_path(req->target, req->target_len, f->path, sizeof(f->path) - 16);
    if (f->plen < 0) {
        respond_error(c, f->plen == -ENOSPC ? 414 : (int)-f->plen, f->plen != -403);
        return -1;
    }
    if (f->path[f->plen - 1] == '/') {
        memcpy(f->path + f->plen, "index.html", 11);
        f->plen += 10;
    }
    /* Symlinks below the root are followed, as nginx does by default; ".." never gets here. */
    const char *rel = f->path[1] ? f->path + 1 : ".";
    f->deadline = corio_now() + c->s->o.body_timeout;
    f->fd = corio_openat(c->s->root_fd, rel, O_RDONLY | O_NONBLOCK, 0, f->deadline);
    if (f->fd < 0) {
        int fd = f->fd;
        respond_error(c, fd == -ENOENT || fd == -ENOTDIR || fd == -ENAMETOOLONG ? 404 : 403, false);
        return -1;
    }
    return 0;
}

/* Reads the open file's type, size and mtime into @f->st, and answers for anything that is not a
 * regular file. Returns whether it is one. */
static bool file_stat(struct corio_http_conn *c, struct file_job *f)
{
    int err = corio_statx(f->fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_MTIME, &f->st,
                          f->deadline);
    if (err < 0) {
        respond_error(c, 500, false);
        return false;
    }
    if (S_ISDIR(f->st.stx_mode)) {
        /* A directory named without its slash: send the client to the slash form. */
        char loc[4096 + 32];
        int n = snprintf(loc, sizeof(loc), "Location: %.*s/\r\n", (int)f->plen, f->path);
        if (n > 0 && (size_t)n < sizeof(loc)) {
            corio_http_respond_start(c, 301, NULL, 0, loc);
        } else {
            respond_error(c, 404, false);
        }
        return false;
    }
    if (!S_ISREG(f->st.stx_mode)) {
        respond_error(c, 403, false);
        return false;
    }
    return true;
}

/* Applies the request's Range to a file of @size bytes: sets *@first and *@last (inclusive) and
 * the Content-Range of @t. Returns the status to answer with: 200, 206 or 416. */
static int file_range(const struct corio_http_request *req, int64_t size,
                      struct corio_http_response *t, int64_t *first, int64_t *last)
{
    *first = 0;
    *last = size - 1;
    if (req->range == NULL)
        return 200;
    int rr = corio_http_parse_range(req->range, req->range_len, size, first, last);
    if (rr == -416) {
        t->content_range = CORIO_HTTP_CONTENT_RANGE_UNSATISFIED;
        t->range_size = size;
        return 416;
    }
    if (rr != CORIO_HTTP_RANGE_PARTIAL) {
        *first = 0;
        *last = size - 1;
        return 200;
    }
    t->content_range = CORIO_HTTP_CONTENT_RANGE_BYTES;
    t->range_first = *first;
    t->range_last = *last;
    t->range_size = size;
    return 206;
}

/* Whether the client's copy, dated by If-Modified-Since, is as new as a file modified at @mtime. */
static bool not_modified(const struct corio_http_request *req, time_t mtime)
{
    time_t ims;
    return req->if_modified_since &&
           corio_http_parse_date(req->if_modified_since, req->if_modified_since_len, &ims) == 0 &&
           mtime <= ims;
}

/* Writes the response head for the regular file @f: 304 when the client's copy is current, 416
 * for a range past its end, else 200 or 206 with the bytes *@first and *@len to send. Returns
 * whether that head went out and a body may follow. */
static bool file_head(struct corio_http_conn *c, const struct corio_http_request *req,
                      const struct file_job *f, int64_t *first, int64_t *len)
{
    int64_t size = (int64_t)f->st.stx_size, last;
    time_t mtime = (time_t)f->st.stx_mtime.tv_sec;
    struct corio_http_response t;
    memset(&t, 0, sizeof(t));
    t.has_last_modified = true;
    t.last_modified = mtime;
    int status = not_modified(req, mtime) ? 304 : file_range(req, size, &t, first, &last);
    int err;
    if (status == 304) {
        err = write_head(c, 304, NULL, -1, &t);
    } else if (status == 416) {
        err = write_head(c, 416, NULL, 0, &t);
    } else {
        *len = size == 0 ? 0 : last - *first + 1;
        err = write_head(c, status, corio_http_mime_type(f->path, (size_t)f->plen), *len, &t);
    }
    if (err != 0)
        c->broken = true;
    c->resp = RESP_DONE;
    return err == 0 && status != 304 && status != 416;
}

/* Sends @len bytes of the file from @off: read into the output buffer's free space and sent,
 * chunk by chunk. */
static void file_body(struct corio_http_conn *c, const struct file_job *f, int64_t off, int64_t len)
{
    while (len > 0 && !c->broken) {
        if (c->wcap - c->wlen < 4096 && flush(c) != 0)
            break;
        size_t room = c->wcap - c->wlen;
        size_t want = (uint64_t)len < room ? (size_t)len : room;
        ssize_t n = corio_read(f->fd, c->wbuf + c->wlen, want, off, f->deadline);
        if (n <= 0) {
            /* The file shrank or failed under us: the promised length cannot be kept. */
            c->broken = true;
            break;
        }
        c->wlen += (size_t)n;
        off += n;
        len -= n;
    }
}

static void serve_file(struct corio_http_conn *c, const struct corio_http_request *req)
{
    struct file_job f;
    int64_t first, len;

    if (file_open(c, req, &f) < 0)
        return;
    if (file_stat(c, &f) && file_head(c, req, &f, &first, &len) && !c->head_only)
        file_body(c, &f, first, len);
    corio_close(f.fd);
}

/* ---- the connection ----------------------------------------------------------------------- */

/* Parses what rbuf holds of the head, then moves the unparsed bytes to the front of rbuf (the
 * parser keeps offsets, not pointers). Returns the head's length, a negated HTTP status, or
 * CORIO_HTTP_INCOMPLETE. */
static ssize_t parse_head(struct corio_http_conn *c, struct corio_http_parser *p,
                          struct corio_http_request *req, struct corio_http_header *hdrs)
{
    const struct corio_http_limits *lim = &c->s->o.limits;
    if (c->rpos < c->rlen) {
        ssize_t r = corio_http_parse_request(p, c->rbuf + c->rpos, c->rlen - c->rpos, lim, req,
                                             hdrs, lim->max_headers);
        if (r != CORIO_HTTP_INCOMPLETE)
            return r;
    }
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    return CORIO_HTTP_INCOMPLETE;
}

/* read_head's loop. @idle: the idle bound is set, and nothing of the head has come yet. */
static ssize_t read_head_until(struct corio_http_conn *c, struct corio_http_request *req,
                               struct corio_http_header *hdrs, bool idle)
{
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    bool armed = idle;
    for (;;) {
        ssize_t r = parse_head(c, &p, req, hdrs);
        if (r != CORIO_HTTP_INCOMPLETE)
            return r;
        if (c->rlen == c->rcap)
            return -431;
        /* Idle, the idle bound covers this flush as a write bound of its own would: both run
         * from now. Otherwise the flush has its own bound, then the head's deadline applies. */
        if (flush_out(c, !idle) != 0)
            return HEAD_CLOSE;
        if (!armed) {
            corio_set_deadline(c->head_deadline, NULL);
            armed = true;
        }
        ssize_t n = conn_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n == -ETIMEDOUT) {
            if (idle)
                return HEAD_CLOSE;
            c->s->stats.timeouts++;
            return -408;
        }
        if (n <= 0)
            return HEAD_CLOSE;
        if (idle) {
            /* The first byte: from now on the head's own deadline. */
            idle = false;
            armed = false;
            c->head_deadline = corio_now() + c->s->o.header_timeout;
        }
        c->rlen += (size_t)n;
    }
}

/* Reads until a whole head is in rbuf[rpos..], bounded by the idle timeout until its first byte
 * when nothing of it is buffered between requests, else by the head's deadline. The handler must
 * not inherit that bound, nor the error path a bound that passed: it is removed before the
 * return. Returns the head's length, a negated HTTP status, or HEAD_CLOSE. */
static ssize_t read_head(struct corio_http_conn *c, struct corio_http_request *req,
                         struct corio_http_header *hdrs)
{
    bool idle = c->nreq > 0 && c->rpos == c->rlen;
    if (idle)
        corio_set_deadline(corio_now() + c->s->o.idle_timeout, NULL);
    ssize_t r = read_head_until(c, req, hdrs, idle);
    corio_set_deadline(CORIO_FOREVER, NULL);
    return r;
}

/* Finds the route for @req. *@allowed gets a bit (1u << method) for each method that has a
 * route for the path, GET implying HEAD, so that a miss can tell 404 from 405 and fill Allow. */
static const struct route *find_route(struct corio_http_server *s,
                                      const struct corio_http_request *req, unsigned *allowed)
{
    const char *t = req->target;
    size_t tl = req->target_len;
    *allowed = 0;
    /* The absolute form (a proxy-style target) routes by its path. */
    if (tl > 0 && t[0] != '/') {
        const char *sep = memmem(t, tl, "://", 3);
        const char *slash = sep ? memchr(sep + 3, '/', tl - (size_t)(sep + 3 - t)) : NULL;
        if (!slash)
            return NULL;
        tl -= (size_t)(slash - t);
        t = slash;
    }
    const char *q = memchr(t, '?', tl);
    size_t pl = q ? (size_t)(q - t) : tl;
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct route *r = &s->routes[i];
        bool match = r->prefix ? pl >= r->len && memcmp(t, r->path, r->len) == 0
                               : pl == r->len && memcmp(t, r->path, r->len) == 0;
        if (!match)
            continue;
        if (r->method < 0 || r->method == (int)req->method ||
            (r->method == CORIO_HTTP_GET && req->method == CORIO_HTTP_HEAD))
            return r;
        /* Not the any-method route (that one matched above). */
        *allowed |= 1u << r->method;
        if (r->method == CORIO_HTTP_GET)
            *allowed |= 1u << CORIO_HTTP_HEAD;
    }
    return NULL;
}

static void dispatch(struct corio_http_conn *c, const struct corio_http_request *req)
{
    struct corio_http_server *s = c->s;
    unsigned allowed;
    const struct route *r = find_route(s, req, &allowed);
    if (r) {
        int err = r->h(c, req, r->arg);
        if (c->resp == RESP_NONE) {
            c->keep_alive = false;
            respond_error(c, 500, true);
        } else if (c->resp == RESP_STARTED) {
            c->broken = true; /* promised bytes that never came: the framing is lost */
        } else if (err < 0) {
            c->keep_alive = false;
        }
        return;
    }
    if (s->root_fd >= 0 && (req->method == CORIO_HTTP_GET || req->method == CORIO_HTTP_HEAD)) {
        serve_file(c, req);
        return;
    }
    if (allowed) {
        /* RFC 9110 section 15.5.6: a 405 lists the methods the target supports. */
        char allow[128] = "Allow: ";
        size_t n = 7;
        for (size_t m = 1; m < sizeof(method_names) / sizeof(method_names[0]); m++) {
            if (!(allowed & (1u << m)))
                continue;
            n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s", n > 7 ? ", " : "",
                                  method_names[m]);
        }
        snprintf(allow + n, sizeof(allow) - n, "\r\n");
        c->resp = RESP_NONE;
        corio_http_respond_start(c, 405, NULL, 0, allow);
        return;
    }
    respond_error(c, 404, false);
}

/* After an error response, read what the client still sends for a moment before closing, so that
 * the kernel does not answer it with a reset that could destroy our response in transit (the
 * "lingering close" of RFC 9112 section 9.6). */
static void linger_close(struct corio_http_conn *c)
{
    if (flush(c) == 0 && corio_shutdown(c->fd, SHUT_WR) == 0) {
        int64_t prev = phase_begin(corio_now() + CORIO_MS(500));
        size_t total = 0;
        ssize_t n;
        while (total < 65536 && (n = conn_recv(c, c->rbuf, c->rcap)) > 0)
            total += (size_t)n;
        phase_end(prev);
    }
}

static void serve_conn(struct corio_http_conn *c)
{
    struct corio_http_server *s = c->s;
    uintptr_t h = ((uintptr_t)(c->wbuf + c->wcap) + 15) & ~(uintptr_t)15;
    struct corio_http_header *hdrs = (struct corio_http_header *)h;
    for (;;) {
        struct corio_http_request req;
        ssize_t hl = read_head(c, &req, hdrs);
        if (hl == HEAD_CLOSE)
            break;
        if (hl < 0) {
            s->stats.bad_requests++;
            c->head_only = false;
            c->keep_alive = false;
            respond_error(c, (int)-hl, true);
            linger_close(c);
            break;
        }
        s->stats.requests++;
        c->nreq++;
        c->head_only = req.method == CORIO_HTTP_HEAD;
        c->keep_alive = req.keep_alive;
        c->resp = RESP_NONE;
        c->sent_continue = false;
        c->expect_continue = req.expect_continue;
        c->bstart = c->bpos = c->rpos + (size_t)hl;
        c->payload_len = 0;
        if (req.chunked) {
            c->body = BODY_CHUNKED;
            corio_http_chunked_init(&c->ch, &s->o.limits);
        } else if (req.content_length > 0) {
            c->body = BODY_LENGTH;
            c->body_left = req.content_length;
        } else {
            c->body = BODY_NONE;
        }
        if (c->body != BODY_NONE)
            c->body_deadline = corio_now() + s->o.body_timeout;
        dispatch(c, &req);
        /* A deadline the handler set and left ends with it: the server bounds its own waits. */
        corio_set_deadline(CORIO_FOREVER, NULL);
        if (c->keep_alive && !c->broken)
            body_discard(c);
        if (!c->keep_alive || c->broken || corio_cancelled()) {
            flush(c);
            break;
        }
        /* The next request starts after this one's body. */
        c->rpos = c->bpos;
        if (c->rpos == c->rlen)
            c->rpos = c->rlen = 0;
        if (c->rpos < c->rlen) /* else the next head starts idle (read_head) */
            c->head_deadline = corio_now() + s->o.header_timeout;
        /* More pipelined bytes wait: answer them before sending, unless the output is filling. */
        if (c->wlen > c->wcap / 2 && flush(c) != 0)
            break;
    }
}

struct conn_start {
    struct corio_http_server *s;
    int fd;
    int64_t accepted;
};

static int conn_main(void *arg)
{
    struct conn_start *cs = arg;
    struct corio_http_server *s = cs->s;
    struct corio_http_conn c;
    memset(&c, 0, sizeof(c));
    c.s = s;
    c.fd = cs->fd;
    c.head_deadline = cs->accepted + s->o.header_timeout;
    free(cs);
    size_t bs = s->o.buffer_size;
    size_t hdr_bytes = s->o.limits.max_headers * sizeof(struct corio_http_header);
    /* One allocation per connection: input, output, then the parsed header fields. */
    char *mem = malloc(2 * bs + hdr_bytes + 16);
    s->stats.open++;
    if (mem) {
        c.rbuf = mem;
        c.rcap = bs;
        c.wbuf = mem + bs;
        c.wcap = bs;
        c.use_rx = s->ring && corio_receiver_init(&c.rx, c.fd, s->ring) == 0;
        serve_conn(&c);
        if (c.use_rx) {
            corio_buf_release(&c.pend);
            corio_receiver_fini(&c.rx);
        }
        free(mem);
    }
    corio_close(c.fd);
    s->stats.open--;
    corio_sem_release(&s->slots);
    return 0;
}

int corio_http_serve(struct corio_http_server *s, int lfd)
{
    struct corio_group conns;
    corio_group_init(&conns, 0);
    /* One ring of 4 KiB buffers for every connection's receives (none where the kernel has no
     * buffer rings or multishot receive: then each receive brings its own buffer). */
    struct corio_loop *loop = corio_loop_current();
    if (!s->ring && loop && corio_loop_has(loop, CORIO_FEAT_RECV_MULTISHOT))
        corio_bufring_new(&s->ring, loop, 1024, 4096);
    int ret;
    for (;;) {
        ret = corio_sem_acquire(&s->slots, CORIO_FOREVER);
        if (ret < 0)
            break;
        int fd = corio_accept(lfd, NULL, NULL, 0, CORIO_FOREVER);
        if (fd < 0) {
            corio_sem_release(&s->slots);
            if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
                /* Out of descriptors: back off instead of spinning; connections that end free
                 * some, and the pending ones wait in the backlog. */
                if (corio_sleep(corio_now() + CORIO_MS(10)) == -ECANCELED) {
                    ret = -ECANCELED;
                    break;
                }
                continue;
            }
            if (fd == -ECONNABORTED || fd == -EINTR || fd == -EPROTO)
                continue;
            ret = fd;
            break;
        }
        struct conn_start *cs = malloc(sizeof(*cs));
        int err = cs ? 0 : -ENOMEM;
        if (cs) {
            *cs = (struct conn_start){s, fd, corio_now()};
            err = corio_group_spawn(&conns, conn_main, cs, NULL);
            if (err)
                free(cs);
        }
        if (err) {
            corio_close(fd);
            corio_sem_release(&s->slots);
            continue;
        }
        s->stats.connections++;
    }
    /* Whatever ended the accept loop, the connections end with it. */
    corio_group_cancel(&conns);
    corio_group_wait(&conns, CORIO_FOREVER);
    corio_bufring_free(s->ring);
    s->ring = NULL;
    return ret;
}
