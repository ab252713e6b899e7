/* The HTTP/1.1 server: its lifetime and routes, the accept loop, and the connection loop (one
 * coroutine per connection: read a head, dispatch it to a route's handler or the static files,
 * drop what is left of the body, again while the connection is kept alive). Built only on corio's
 * public API; server.h says which file owns the rest. */
#include "server.h"

#include "parser.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The outcome of reading a head that is neither a head nor an error to answer: end the connection
 * quietly (EOF, reset, idle timeout, cancel). The parser never returns it. */
#define HEAD_CLOSE (-ECONNABORTED)

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
    if (corio__http_log_new(s) != 0) {
        corio_http_server_free(s);
        return -ENOMEM;
    }
    corio_sem_init(&s->slots, (unsigned)s->o.max_connections);
    *out = s;
    return 0;
}

void corio_http_server_free(struct corio_http_server *s)
{
    if (!s)
        return;
    corio__http_router_free(&s->router);
    corio__http_log_free(s);
    corio__http_pipes_free(s);
    if (s->root_fd >= 0)
        close(s->root_fd);
    free(s);
}

static const char *const method_names[] = {
    [CORIO_HTTP_GET] = "GET",     [CORIO_HTTP_HEAD] = "HEAD",     [CORIO_HTTP_POST] = "POST",
    [CORIO_HTTP_PUT] = "PUT",     [CORIO_HTTP_DELETE] = "DELETE", [CORIO_HTTP_OPTIONS] = "OPTIONS",
    [CORIO_HTTP_PATCH] = "PATCH", [CORIO_HTTP_TRACE] = "TRACE",   [CORIO_HTTP_CONNECT] = "CONNECT",
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
    return corio__http_router_add(&s->router, m, path, h, arg);
}

const struct corio_http_stats *corio_http_server_stats(const struct corio_http_server *s)
{
    return &s->stats;
}

int corio_http_peer_addr(struct corio_http_conn *c, struct sockaddr_storage *addr, socklen_t *len)
{
    if (c->peer_len == 0)
        return -ENOTCONN;
    memcpy(addr, &c->peer, c->peer_len);
    *len = c->peer_len;
    return 0;
}

int corio_http_local_addr(struct corio_http_conn *c, struct sockaddr_storage *addr, socklen_t *len)
{
    if (c->local_len == 0) {
        socklen_t n = sizeof(c->local);
        if (getsockname(c->fd, (struct sockaddr *)&c->local, &n) != 0)
            return -errno;
        c->local_len = n;
    }
    memcpy(addr, &c->local, c->local_len);
    *len = c->local_len;
    return 0;
}

/* ---- the connection ----------------------------------------------------------------------- */

/* Parses what rbuf holds of the head, then moves the unparsed bytes to the front of rbuf (the
 * parser keeps offsets, not pointers). Returns the head's length, -EAGAIN, or the parser's
 * -errno. */
static ssize_t parse_head(struct corio_http_conn *c, struct corio_http_parser *p,
                          struct corio_http_request *req, struct corio_http_header *hdrs)
{
    const struct corio_http_limits *lim = &c->s->o.limits;
    if (c->rpos < c->rlen) {
        /* The request and fields are this loop's own until a head parses. */
        ssize_t r = corio__http_parse_request_scratch(p, c->rbuf + c->rpos, c->rlen - c->rpos, lim,
                                                      req, hdrs, lim->max_headers);
        if (r != -EAGAIN)
            return r;
    }
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    return -EAGAIN;
}

/* read_head's loop. @idle: the idle bound is set, and nothing of the head has come yet. */
static ssize_t read_head_until(struct corio_http_conn *c, struct corio_http_request *req,
                               struct corio_http_header *hdrs, bool idle)
{
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    bool armed = idle;
    /* The head's deadline runs from its first byte, but the clock is read for it only once the
     * head turns out to be incomplete: most heads come in one piece and never are. The deadline
     * then counts from the parse of the first bytes instead of their arrival, microseconds
     * later, which is nothing beside header_timeout. */
    bool stamp = !idle && c->head_deadline < 0;
    for (;;) {
        ssize_t r = parse_head(c, &p, req, hdrs);
        if (r != -EAGAIN)
            return r;
        if (c->rlen == c->rcap)
            return -E2BIG;
        if (stamp) {
            c->head_deadline = corio_now() + c->s->o.header_timeout;
            stamp = false;
        }
        /* Idle, the idle bound covers this flush as a write bound of its own would: both run
         * from now. Otherwise the flush has its own bound, then the head's deadline applies. */
        int err =
            idle ? corio__http_flush_out(c, CORIO_FOREVER) : corio__http_flush(c, CORIO_FOREVER);
        if (err != 0)
            return HEAD_CLOSE;
        if (!armed) {
            corio_set_deadline(c->head_deadline, NULL);
            armed = true;
        }
        /* Waiting for the next request, the connection is idle: a drain of the loop ends it
         * here (and one under way already does before the wait). */
        if (idle && corio_set_idle(true) != 0)
            return HEAD_CLOSE;
        ssize_t n = corio__http_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (idle)
            corio_set_idle(false);
        if (n == -ETIMEDOUT) {
            if (idle)
                return HEAD_CLOSE;
            c->s->stats.timeouts++;
            return -ETIMEDOUT;
        }
        if (n <= 0)
            return HEAD_CLOSE;
        if (idle) {
            /* The first byte: from now on the head's own deadline. */
            idle = false;
            armed = false;
            stamp = true;
        }
        c->rlen += (size_t)n;
    }
}

/* Reads until a whole head is in rbuf[rpos..], bounded by the idle timeout until its first byte
 * when nothing of it is buffered between requests, else by the head's deadline. The handler must
 * not inherit that bound, nor the error path a bound that passed: it is removed before the
 * return. Returns the head's length, -errno to answer (corio_http_status), or HEAD_CLOSE. */
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

/* Completes the response of a handler (or a before-hook) that returned @err: a 500 for none, the
 * end of a body of unknown length, or the close that a failure asks for. */
static void handler_done(struct corio_http_conn *c, int err)
{
    if (c->resp == CORIO__HTTP_RESP_NONE) {
        c->keep_alive = false;
        corio__http_respond_error(c, 500, true);
    } else if (c->resp == CORIO__HTTP_RESP_STARTED) {
        /* A body of unknown length that the handler did not end is complete now that it
         * returned: it gets its last chunk, unless the handler failed, which the client
         * should see as a cut body. Promised bytes that never came lose the framing. */
        if (err < 0 || c->framing == CORIO__HTTP_FRAME_LENGTH ||
            corio_http_finish(c, CORIO_FOREVER) != 0)
            c->broken = true;
    } else if (err < 0) {
        c->keep_alive = false;
    }
}

/* Answers @req with its route's handler, a static file, 405 or 404, once the before-hooks let it
 * go on. @r and @allowed are what the router found. */
static void dispatch_to(struct corio_http_conn *c, const struct corio_http_request *req,
                        const struct corio__http_route *r, unsigned allowed)
{
    struct corio_http_server *s = c->s;
    /* Tested here, so that a server without hooks or parameters pays no call for them. */
    int err = s->router.nhooks ? corio__http_hooks_before(c, req) : 0;
    if (err != 0) {
        handler_done(c, err);
        return;
    }
    if (r) {
        handler_done(c, r->h(c, req, r->arg));
        return;
    }
    if (s->root_fd >= 0 && (req->method == CORIO_HTTP_GET || req->method == CORIO_HTTP_HEAD)) {
        corio__http_serve_file(c, req);
        return;
    }
    if (allowed) {
        /* RFC 9110 section 15.5.6: a 405 lists the methods the target supports. */
        char allow[128] = "";
        size_t n = 0;
        for (size_t m = 1; m < sizeof(method_names) / sizeof(method_names[0]); m++) {
            if (!(allowed & (1u << m)))
                continue;
            n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s", n > 0 ? ", " : "",
                                  method_names[m]);
        }
        corio_http_add_header(c, "Allow", allow);
        corio_http_respond_start(c, 405, NULL, 0, CORIO_FOREVER);
        return;
    }
    corio__http_respond_error(c, 404, false);
}

static void dispatch(struct corio_http_conn *c, const struct corio_http_request *req)
{
    uint64_t start = c->out_bytes + c->wlen;
    unsigned allowed;
    const struct corio__http_route *r = corio__http_router_find(
        &c->s->router, (int)req->method, req->target, req->target_len, &c->m, &allowed);
    int err = r && r->nparams ? corio__http_router_decode(c) : 0;
    if (err) {
        /* A parameter that cannot be decoded is a bad request, as such a path is for a file;
         * an encoded '/' is refused, not malformed, and keeps the connection. */
        corio__http_respond_error(c, err == -ENOMEM ? 500 : corio_http_status(err), err != -EACCES);
    } else {
        dispatch_to(c, req, r, allowed);
    }
    if (c->s->router.nhooks)
        corio__http_hooks_after(c, req, start);
    c->m.r = NULL;
}

/* After an error response, read what the client still sends for a moment before closing, so that
 * the kernel does not answer it with a reset that could destroy our response in transit (the
 * "lingering close" of RFC 9112 section 9.6). */
static void linger_close(struct corio_http_conn *c)
{
    if (corio__http_flush(c, CORIO_FOREVER) == 0 && corio_shutdown(c->fd, SHUT_WR) == 0) {
        int64_t prev = corio__http_phase_begin(corio_now() + CORIO_MS(500));
        size_t total = 0;
        ssize_t n;
        while (total < 65536 && (n = corio__http_recv(c, c->rbuf, c->rcap)) > 0)
            total += (size_t)n;
        corio__http_phase_end(prev);
    }
}

/* Serves the request @req whose head of @hl bytes is at rbuf[rpos]: its handler (or a static
 * file, or an error response), then what is left of its body. Returns whether the connection goes
 * on to the next request. */
static bool serve_request(struct corio_http_conn *c, const struct corio_http_request *req,
                          size_t hl)
{
    c->s->stats.requests++;
    c->nreq++;
    c->req = req;
    c->head_only = req->method == CORIO_HTTP_HEAD;
    c->keep_alive = req->keep_alive;
    /* The connection's last request by max_requests: its response says "Connection: close". */
    if (__builtin_expect(c->nreq == c->s->o.max_requests, 0))
        c->keep_alive = false;
    c->resp = CORIO__HTTP_RESP_NONE;
    c->status = 0;
    struct corio__http_log_mark mark;
    if (__builtin_expect(c->s->log != NULL, 0))
        corio__http_log_mark(c, &mark);
    corio__http_body_start(c, req, c->rpos + hl);
    dispatch(c, req);
    /* A deadline the handler set and left ends with it: the server bounds its own waits. */
    corio_set_deadline(CORIO_FOREVER, NULL);
    if (c->keep_alive && !c->broken)
        corio__http_body_discard(c);
    if (__builtin_expect(c->s->log != NULL, 0))
        corio__http_log_request(c, req, &mark);
    if (!c->keep_alive || c->broken || corio_cancelled()) {
        corio__http_flush(c, CORIO_FOREVER);
        return false;
    }
    /* The next request starts after this one's body. */
    c->rpos = c->bpos;
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    /* A pipelined head's deadline is stamped only if it turns out incomplete (read_head_until);
     * else the next head starts idle (read_head). */
    c->head_deadline = -1;
    /* More pipelined bytes wait: answer them before sending, unless the output is filling. */
    return c->wlen <= c->wcap / 2 || corio__http_flush(c, CORIO_FOREVER) == 0;
}

static void serve_conn(struct corio_http_conn *c)
{
    uintptr_t h = ((uintptr_t)(c->xbuf + CORIO_HTTP_ADDED_HEADER_BYTES) + 15) & ~(uintptr_t)15;
    struct corio_http_header *hdrs = (struct corio_http_header *)h;
    for (;;) {
        struct corio_http_request req;
        ssize_t hl = read_head(c, &req, hdrs);
        if (hl == HEAD_CLOSE)
            return;
        if (hl < 0) {
            c->s->stats.bad_requests++;
            c->head_only = false;
            c->keep_alive = false;
            corio__http_respond_error(c, corio_http_status((int)hl), true);
            linger_close(c);
            return;
        }
        if (!serve_request(c, &req, (size_t)hl))
            return;
    }
}

struct conn_start {
    struct corio_http_server *s;
    int fd;
    int64_t accepted;
    struct sockaddr_storage peer; /* from accept */
    socklen_t peer_len;
};

/* The server's ring of 4 KiB buffers for every connection's receives, made by its first user
 * and freed by its last (none where the kernel has no buffer rings or multishot receive: then
 * each receive brings its own buffer). */
static void ring_hold(struct corio_http_server *s)
{
    struct corio_loop *loop = corio_loop_current();
    if (s->ring_users++ == 0 && !s->ring && loop && corio_loop_has(loop, CORIO_FEAT_RECV_MULTISHOT))
        corio_bufring_new(&s->ring, loop, 1024, 4096);
    if (s->ring_users == 1)
        corio__http_log_hold(s);
}

static void ring_drop(struct corio_http_server *s)
{
    if (--s->ring_users == 0) {
        corio_bufring_free(s->ring);
        s->ring = NULL;
        corio__http_log_drop(s);
    }
}

/* Serves connection @fd, which holds one of the server's slots, until it ends; then closes it
 * and gives the slot back. */
static void serve_one(struct corio_http_server *s, int fd, int64_t accepted,
                      const struct sockaddr_storage *peer, socklen_t peer_len)
{
    struct corio_http_conn c;
    memset(&c, 0, sizeof(c));
    c.s = s;
    c.fd = fd;
    c.head_deadline = accepted + s->o.header_timeout;
    c.peer = *peer;
    c.peer_len = peer_len;
    size_t bs = s->o.buffer_size;
    size_t hdr_bytes = s->o.limits.max_headers * sizeof(struct corio_http_header);
    /* One allocation per connection: input, output, the added header lines, then the parsed
     * header fields. */
    size_t xbytes = CORIO__HTTP_XBUF_FRONT + CORIO_HTTP_ADDED_HEADER_BYTES + hdr_bytes + 16;
    /* And room for decoded parameters where a route has them. */
    size_t pbytes = s->router.max_params ? s->o.limits.max_target_bytes : 0;
    char *mem = malloc(2 * bs + xbytes + pbytes);
    s->stats.open++;
    if (mem) {
        c.rbuf = mem;
        c.rcap = bs;
        c.wbuf = mem + bs;
        c.wcap = bs;
        c.xbuf = mem + 2 * bs + CORIO__HTTP_XBUF_FRONT;
        c.pscratch = pbytes ? mem + 2 * bs + xbytes : NULL;
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
}

static int conn_main(void *arg)
{
    struct conn_start cs = *(struct conn_start *)arg;
    free(arg);
    serve_one(cs.s, cs.fd, cs.accepted, &cs.peer, cs.peer_len);
    return 0;
}

int corio_http_serve_conn(struct corio_http_server *s, int fd, const struct sockaddr *peer,
                          socklen_t peer_len)
{
    if (!s || fd < 0 || (peer_len && !peer))
        return -EINVAL;
    if (!corio_self())
        return -EPERM;
    struct sockaddr_storage ss = {0};
    if (peer_len > sizeof(ss))
        peer_len = 0; /* not an address this server could report */
    if (peer_len)
        memcpy(&ss, peer, peer_len);
    int err = corio_sem_tryacquire(&s->slots);
    if (err) {
        corio_close(fd);
        return err;
    }
    s->stats.connections++;
    ring_hold(s);
    serve_one(s, fd, corio_now(), &ss, peer_len);
    ring_drop(s);
    return 0;
}

/* Starts the coroutine of a connection accepted on @fd from @peer (@peer_len bytes), in @conns.
 * Returns 0, or -errno after closing @fd and giving its slot back. */
static int conn_spawn(struct corio_http_server *s, struct corio_group *conns, int fd,
                      const struct sockaddr_storage *peer, socklen_t peer_len)
{
    struct conn_start *cs = malloc(sizeof(*cs));
    int err = cs ? 0 : -ENOMEM;
    if (cs) {
        *cs = (struct conn_start){s, fd, corio_now(), *peer, peer_len};
        err = corio_group_spawn(NULL, conns, conn_main, cs);
        if (err)
            free(cs);
    }
    if (err) {
        corio_close(fd);
        corio_sem_release(&s->slots);
    }
    return err;
}

int corio_http_serve(struct corio_http_server *s, int lfd)
{
    struct corio_group conns;
    corio_group_init(&conns, 0);
    ring_hold(s);
    int ret;
    for (;;) {
        /* Waiting for a free slot is waiting to accept: a drain ends it. */
        ret = corio_set_idle(true);
        if (ret == 0) {
            ret = corio_sem_acquire(&s->slots, CORIO_FOREVER);
            corio_set_idle(false);
        }
        if (ret < 0)
            break;
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd = corio_accept(lfd, (struct sockaddr *)&peer, &peer_len, 0, CORIO_FOREVER);
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
        if (peer_len > sizeof(peer))
            peer_len = 0; /* cannot happen with sockaddr_storage; never copy past it */
        if (conn_spawn(s, &conns, fd, &peer, peer_len) == 0)
            s->stats.connections++;
    }
    /* Whatever else ended the accept loop, the connections end with it; a drain lets them
     * finish (their idle waits end, their requests are answered with Connection: close), and its
     * deadline cancels them if they do not. */
    if (ret != -ESHUTDOWN)
        corio_group_cancel(&conns);
    corio_group_wait(&conns, CORIO_FOREVER);
    ring_drop(s);
    return ret;
}
