/*
 * epoll_http: a single-threaded epoll HTTP/1.1 "hello" responder, the same-machine baseline that
 * corio's HTTP server is measured against. Every request gets a 200 with a 13-byte text/plain body,
 * "Hello, World!", except TechEmpower's two tests: GET /plaintext and GET /json get the bytes that
 * corio-httpd sends for them (its Server and Connection headers too, so that both write as much),
 * but canned, rebuilt once a second for the Date like the hello: this is the floor a server with
 * a parser, a router and a JSON writer is measured against. It has no dependency on corio.
 *
 * The loop is the echo baseline's (epoll_echo.c explains level triggering and recv()/send()):
 * one recv() per readable event into a shared buffer, every complete request head in it answered,
 * and all the responses of that read sent with one send(). A connection that has output pending
 * waits for EPOLLOUT with EPOLLIN off, so a peer that pipelines without reading cannot grow its
 * buffers.
 *
 * Framing is minimal but correct. A request head ends at the first CRLFCRLF. The request line must
 * be "token SP target SP HTTP/1.0|1.1 CRLF" and each header "token ':' OWS value OWS CRLF"; a body
 * announced by Content-Length is read and discarded; HTTP/1.1 needs exactly one Host. Connections
 * stay open unless the request says "Connection: close", or is HTTP/1.0 without
 * "Connection: keep-alive". Transfer-Encoding (chunked bodies) is not implemented: such a request
 * gets 501 and the connection closes, which is what RFC 9112 section 6.1 allows. Anything else that
 * does not parse gets 400 and the connection closes; a head over IN_BUF_SIZE gets 431.
 *
 * Usage: epoll_http [--host ADDR] [--port N] [--backlog N] [--cpu N] [--threads N] (common.c
 * parses them, and holds the rest of the set-up that the baselines share: pinning, limits,
 * listener, accept; common.h the accept pause, the stop signal and the wait that epoll_echo's
 * loop shares). --threads N runs N copies of this event loop on N threads, as epoll_echo does:
 * the baseline for corio-httpd --threads N (epoll_main.c).
 * Prints "ready port=N" once listening. SIGINT or SIGTERM stops it with status 0 and a
 * "conns=... msgs=... bytes=... reqs=..." line on stderr (msgs counts recv() calls that returned
 * data, reqs the responses sent), summed over the threads, each of which has a "thread i:
 * conns=..." line before it.
 */
#include "common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One read's worth, and the largest request head accepted; a partial head is kept in this much. */
#define IN_BUF_SIZE (16 * 1024)
/* Responses batched per send(). Parsing pauses when one more response might not fit. */
#define OUT_BUF_SIZE (64 * 1024)
/* Room reserved for any one canned response; build_responses() checks they fit. */
#define RESP_MAX 256
#define MAX_EVENTS 1024
/* Larger Content-Length values get 400 rather than a silent wrap. */
#define MAX_BODY ((uint64_t)1 << 53)

static const char hello_body[] = "Hello, World!";
static const char json_body[] = "{\"message\":\"Hello, World!\"}";

/* Which body a request gets, from its target. */
enum body_kind {
    BODY_HELLO,     /* any other target */
    BODY_PLAINTEXT, /* /plaintext */
    BODY_JSON,      /* /json */
    BODY_COUNT,
};

/* How a 200 ends the connection: the three variants of the Connection header. */
enum conn_mode {
    MODE_DEFAULT,    /* HTTP/1.1 keep-alive: no Connection header */
    MODE_KEEP_ALIVE, /* HTTP/1.0 that asked for keep-alive: "Connection: keep-alive" */
    MODE_CLOSE,      /* "Connection: close", and the connection closes after the response */
    MODE_COUNT,
};

/* The error responses; each closes the connection. */
enum error_kind {
    ERR_400,
    ERR_431,
    ERR_501,
    ERR_COUNT,
};

/* Why handle_requests() stopped consuming input. */
enum stop {
    STOP_NEED_MORE, /* the input ends inside a head or body: read more */
    STOP_OUT_FULL,  /* the output batch is full: send it, then go on with the rest of the input */
    STOP_CLOSE,     /* the last response closes the connection; the rest of the input is dropped */
};

/* What the server needs from one parsed request head. */
struct request {
    uint64_t content_length; /* body bytes that follow the head, to be discarded */
    enum conn_mode mode;     /* how the response treats the connection */
    enum body_kind kind;     /* which response */
    bool head_only;          /* HEAD: the response carries no body */
};

/* A canned response, rebuilt each second because it embeds the Date. */
struct response {
    char text[RESP_MAX]; /* the full response */
    uint16_t len;        /* bytes in text */
    uint16_t head_len;   /* bytes up to the body, which is all a HEAD request gets */
};

/* A connection's state, at table[fd]. Both buffers are allocated only when first needed. */
struct conn {
    char *in;           /* unconsumed input: a partial head, or heads waiting for output room */
    uint32_t in_len;    /* bytes in in; always < IN_BUF_SIZE after handle_requests() */
    uint32_t in_scan;   /* leading bytes of in already searched for CRLFCRLF without a match */
    char *out;          /* unsent output after a short write, OUT_BUF_SIZE bytes */
    uint32_t out_off;   /* first unsent byte in out */
    uint32_t out_len;   /* end of unsent bytes; out_off < out_len means output is pending */
    uint64_t body_left; /* request body bytes still to discard */
    bool open;          /* the fd is an accepted connection owned by this table */
    bool close_after;   /* close as soon as the pending output is sent */
};

struct server {
    struct bench_epoll ep; /* the epoll set, listener and signalfd; accept pausing; stop flag */
    struct conn *table;    /* per-fd state, ep.nfds entries */
    time_t date_sec;       /* the second the canned responses' Date shows */
    uint64_t msgs;         /* recv() calls that returned data */
    uint64_t bytes;        /* bytes read */
    uint64_t reqs;         /* responses queued, errors included */
    /* The 200 for each kind of target and each connection mode. */
    struct response ok[BODY_COUNT][MODE_COUNT];
    struct response err[ERR_COUNT]; /* 400, 431 and 501 */
    char rbuf[IN_BUF_SIZE];         /* shared read buffer for connections with no partial head */
    char wbuf[OUT_BUF_SIZE];        /* shared output batch, sent before the next read */
};

/*
 * Character classes of RFC 9110: tchar makes up methods and header names; a field value byte is
 * VCHAR, obs-text, SP or HTAB. Filled once by init_char_classes().
 */
static bool is_tchar[256];
static bool is_value_char[256];

static void init_char_classes(void)
{
    for (int ch = 0; ch < 256; ch++) {
        bool alnum =
            (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        is_tchar[ch] = alnum || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
        is_value_char[ch] = (ch >= 0x20 && ch != 0x7f) || ch == '\t';
    }
}

static void set_response(struct response *r, const char *status, const char *date,
                         const char *extra, const char *body)
{
    int n = snprintf(r->text, sizeof(r->text), "HTTP/1.1 %s\r\nDate: %s\r\n%s\r\n%s", status, date,
                     extra, body);
    /* The templates are fixed and a Date is 29 bytes, so this can only fail after an edit. */
    if (n < 0 || n >= (int)sizeof(r->text))
        abort();
    r->len = (uint16_t)n;
    r->head_len = (uint16_t)(n - (int)strlen(body));
}

/* The responses to /plaintext and /json, in corio-httpd's words: its Server field, and a
 * Connection field on every response. */
static void build_techempower(struct server *s, const char *date)
{
    static const char *const conn[MODE_COUNT] = {
        [MODE_DEFAULT] = "keep-alive",
        [MODE_KEEP_ALIVE] = "keep-alive",
        [MODE_CLOSE] = "close",
    };
    char extra[160];
    for (int i = 0; i < MODE_COUNT; i++) {
        snprintf(extra, sizeof(extra),
                 "Server: corio\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                 "Connection: %s\r\n",
                 strlen(hello_body), conn[i]);
        set_response(&s->ok[BODY_PLAINTEXT][i], "200 OK", date, extra, hello_body);
        snprintf(extra, sizeof(extra),
                 "Server: corio\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: %s\r\n",
                 strlen(json_body), conn[i]);
        set_response(&s->ok[BODY_JSON][i], "200 OK", date, extra, json_body);
    }
}

/*
 * Rebuilds every canned response for the second @now. Called once per loop iteration that crosses
 * a second boundary, so the Date costs one time() (vDSO, no syscall) per epoll_wait().
 */
static void build_responses(struct server *s, time_t now)
{
    static const char *const ok_extra[MODE_COUNT] = {
        [MODE_DEFAULT] = "Content-Type: text/plain\r\nContent-Length: 13\r\n",
        [MODE_KEEP_ALIVE] =
            "Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n",
        [MODE_CLOSE] = "Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n",
    };
    static const char *const err_status[ERR_COUNT] = {
        [ERR_400] = "400 Bad Request",
        [ERR_431] = "431 Request Header Fields Too Large",
        [ERR_501] = "501 Not Implemented",
    };
    struct tm tm;
    char date[64];
    gmtime_r(&now, &tm);
    /* The C locale is in force (no setlocale() call): the day and month names HTTP wants. */
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    for (int i = 0; i < MODE_COUNT; i++)
        set_response(&s->ok[BODY_HELLO][i], "200 OK", date, ok_extra[i], hello_body);
    build_techempower(s, date);
    for (int i = 0; i < ERR_COUNT; i++)
        set_response(&s->err[i], err_status[i], date, "Content-Length: 0\r\nConnection: close\r\n",
                     "");
    s->date_sec = now;
}

static bool name_is(const char *name, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(name, lit, len) == 0;
}

/* Scans a Connection value's comma-separated options for "close" and "keep-alive". */
static void parse_connection(const char *v, const char *end, bool *close_opt, bool *keep_alive)
{
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *tok = v;
        while (v < end && *v != ',' && *v != ' ' && *v != '\t')
            v++;
        if (name_is(tok, (size_t)(v - tok), "close"))
            *close_opt = true;
        else if (name_is(tok, (size_t)(v - tok), "keep-alive"))
            *keep_alive = true;
    }
}

/*
 * Parses the request head at [@p, @p + @len), which ends with its first CRLFCRLF; that terminator
 * is what keeps every scan below in bounds, since each stops at a CR at the latest. Returns 200
 * with @rq filled, or the error status to answer with.
 */
static int parse_head(const char *p, size_t len, struct request *rq)
{
    const char *end = p + len - 2; /* the CRLF of the empty line that ends the head */
    const char *q = p;

    /* Request line. The target is left unchecked beyond being visible ASCII. */
    while (is_tchar[(unsigned char)*q])
        q++;
    if (q == p || *q != ' ')
        return 400;
    rq->head_only = q - p == 4 && memcmp(p, "HEAD", 4) == 0;
    const char *target = ++q;
    while (*q > ' ' && *q < 0x7f)
        q++;
    if (q == target || *q != ' ')
        return 400;
    rq->kind = BODY_HELLO;
    if (q - target == 10 && memcmp(target, "/plaintext", 10) == 0)
        rq->kind = BODY_PLAINTEXT;
    else if (q - target == 5 && memcmp(target, "/json", 5) == 0)
        rq->kind = BODY_JSON;
    q++;
    if (end - q < 10 || memcmp(q, "HTTP/1.", 7) != 0 || (q[7] != '0' && q[7] != '1') ||
        q[8] != '\r' || q[9] != '\n')
        return 400;
    bool http11 = q[7] == '1';
    q += 10;

    /* Header fields. A line starting with whitespace (obsolete folding) has no name: 400. */
    uint64_t content_length = 0;
    bool have_length = false, chunked = false, close_opt = false, keep_alive = false;
    int hosts = 0;
    while (q < end) {
        const char *name = q;
        while (is_tchar[(unsigned char)*q])
            q++;
        size_t name_len = (size_t)(q - name);
        if (name_len == 0 || *q != ':')
            return 400;
        q++;
        while (*q == ' ' || *q == '\t')
            q++;
        const char *value = q;
        while (is_value_char[(unsigned char)*q])
            q++;
        if (q[0] != '\r' || q[1] != '\n')
            return 400; /* a bare CR or LF, NUL or another control byte in the value */
        const char *value_end = q;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;
        q += 2;

        switch (name_len) {
        case 4:
            if (name_is(name, name_len, "host"))
                hosts++;
            break;
        case 10:
            if (name_is(name, name_len, "connection"))
                parse_connection(value, value_end, &close_opt, &keep_alive);
            break;
        case 14:
            if (name_is(name, name_len, "content-length")) {
                /* Digits only, no list: "5, 5" and conflicting duplicates are smuggling tools. */
                uint64_t n = 0;
                if (value == value_end)
                    return 400;
                for (const char *d = value; d < value_end; d++) {
                    if (*d < '0' || *d > '9' || n > MAX_BODY)
                        return 400;
                    n = n * 10 + (uint64_t)(*d - '0');
                }
                if (n > MAX_BODY || (have_length && n != content_length))
                    return 400;
                content_length = n;
                have_length = true;
            }
            break;
        case 17:
            if (name_is(name, name_len, "transfer-encoding"))
                chunked = true;
            break;
        default:
            break;
        }
    }
    if (chunked)
        return 501;
    if (http11 && hosts != 1)
        return 400; /* RFC 9112 section 3.2: a server MUST answer 400 */
    rq->content_length = content_length;
    if (http11)
        rq->mode = close_opt ? MODE_CLOSE : MODE_DEFAULT;
    else
        rq->mode = keep_alive && !close_opt ? MODE_KEEP_ALIVE : MODE_CLOSE;
    return 200;
}

static void append_error(struct server *s, size_t *wlen, int status)
{
    const struct response *r = &s->err[status == 431 ? ERR_431 : status == 501 ? ERR_501 : ERR_400];
    memcpy(s->wbuf + *wlen, r->text, r->len);
    *wlen += r->len;
    s->reqs++;
}

/*
 * Consumes the requests at [*@pp, *@pp + *@plen) and appends their responses to s->wbuf at *@wlen.
 * The first @scan bytes are known to hold no CRLFCRLF. On return *@pp and *@plen describe what is
 * left, and *@rest_scan how much of that is known to hold none. Returns why it stopped.
 */
static enum stop handle_requests(struct server *s, struct conn *c, char **pp, size_t *plen,
                                 size_t scan, size_t *wlen, size_t *rest_scan)
{
    char *p = *pp;
    size_t len = *plen;
    enum stop why;
    *rest_scan = 0;
    for (;;) {
        if (c->body_left > 0) {
            size_t skip = c->body_left < len ? (size_t)c->body_left : len;
            p += skip;
            len -= skip;
            c->body_left -= skip;
            if (c->body_left > 0) {
                why = STOP_NEED_MORE;
                break;
            }
            scan = 0;
        }
        /* RFC 9112 section 2.2: ignore empty lines before a request line. */
        while (len >= 2 && p[0] == '\r' && p[1] == '\n') {
            p += 2;
            len -= 2;
            scan = 0;
        }
        if (len == 0) {
            why = STOP_NEED_MORE;
            break;
        }
        if (OUT_BUF_SIZE - *wlen < RESP_MAX) {
            why = STOP_OUT_FULL;
            break;
        }
        const char *crlf2 = len > scan ? memmem(p + scan, len - scan, "\r\n\r\n", 4) : NULL;
        if (crlf2 == NULL) {
            if (len >= IN_BUF_SIZE) {
                append_error(s, wlen, 431);
                why = STOP_CLOSE;
                break;
            }
            /* A terminator may straddle the end, so the last three bytes get searched again. */
            *rest_scan = len > 3 ? len - 3 : 0;
            why = STOP_NEED_MORE;
            break;
        }
        size_t head_len = (size_t)(crlf2 + 4 - p);
        struct request rq;
        int status = parse_head(p, head_len, &rq);
        if (status != 200) {
            append_error(s, wlen, status);
            why = STOP_CLOSE;
            break;
        }
        const struct response *r = &s->ok[rq.kind][rq.mode];
        size_t n = rq.head_only ? r->head_len : r->len;
        memcpy(s->wbuf + *wlen, r->text, n);
        *wlen += n;
        s->reqs++;
        p += head_len;
        len -= head_len;
        scan = 0;
        c->body_left = rq.content_length;
        if (rq.mode == MODE_CLOSE) {
            why = STOP_CLOSE;
            break;
        }
    }
    *pp = p;
    *plen = len;
    return why;
}

static void set_events(struct server *s, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(s->ep.epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void close_conn(struct server *s, int fd)
{
    struct conn *c = &s->table[fd];
    /*
     * close() also drops the fd from the epoll set: it was never dup()ed. Unread input makes the
     * kernel send RST instead of FIN, which can cost a peer that pipelined past a "Connection:
     * close" its last response; a lingering close would fix that at the price of a timer.
     */
    close(fd);
    free(c->in);
    free(c->out);
    *c = (struct conn){0};
    s->ep.closed_since_pause = true;
}

static void on_accept(struct server *s)
{
    int fd;
    while ((fd = bench_epoll_accept(s->ep.epfd, s->ep.lfd, s->ep.nfds, &s->ep.max_fd)) >= 0) {
        s->table[fd].open = true;
        s->ep.conns++;
    }
    if (fd != -EAGAIN)
        bench_epoll_pause_accept(&s->ep);
}

/*
 * Keeps the unconsumed input [@p, @p + @len) in c->in, which @p may already point into. @len is
 * below IN_BUF_SIZE: handle_requests() answers 431 rather than leave a full buffer. Returns 0, or
 * -ENOMEM.
 */
static int keep_input(struct conn *c, const char *p, size_t len, size_t scan)
{
    if (len > 0 && c->in == NULL && (c->in = malloc(IN_BUF_SIZE)) == NULL)
        return -ENOMEM;
    if (len > 0)
        memmove(c->in, p, len);
    c->in_len = (uint32_t)len;
    c->in_scan = (uint32_t)scan;
    return 0;
}

/*
 * Sends s->wbuf[0, @wlen). On a short write the rest moves to c->out and the connection waits for
 * EPOLLOUT, reading nothing. Returns 1 if all was sent, 0 if output is pending, or -errno if the
 * connection is dead.
 */
static int send_batch(struct server *s, int fd, size_t wlen)
{
    struct conn *c = &s->table[fd];
    ssize_t w = send(fd, s->wbuf, wlen, MSG_NOSIGNAL);
    if (w == (ssize_t)wlen)
        return 1;
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            return -errno; /* EPIPE (MSG_NOSIGNAL: no SIGPIPE), ECONNRESET */
        w = 0;
    }
    if (c->out == NULL && (c->out = malloc(OUT_BUF_SIZE)) == NULL)
        return -ENOMEM;
    memcpy(c->out, s->wbuf + w, wlen - (size_t)w);
    c->out_off = 0;
    c->out_len = (uint32_t)(wlen - (size_t)w);
    set_events(s, fd, EPOLLOUT);
    return 0;
}

/*
 * Answers the requests in [@p, @p + @len), which is either the fresh data in s->rbuf or c->in.
 * Loops while the output batch fills up, so a deep pipeline is served in OUT_BUF_SIZE slices.
 */
static void serve(struct server *s, int fd, char *p, size_t len)
{
    struct conn *c = &s->table[fd];
    size_t scan = p == c->in ? c->in_scan : 0;
    for (;;) {
        size_t wlen = 0, rest_scan;
        enum stop why = handle_requests(s, c, &p, &len, scan, &wlen, &rest_scan);
        if (why == STOP_CLOSE) {
            c->close_after = true;
            len = 0;
        }
        if (keep_input(c, p, len, rest_scan) < 0) {
            close_conn(s, fd);
            return;
        }
        if (wlen > 0) {
            int r = send_batch(s, fd, wlen);
            if (r < 0)
                close_conn(s, fd);
            if (r <= 0)
                return;
        }
        if (c->close_after) {
            close_conn(s, fd);
            return;
        }
        if (why != STOP_OUT_FULL)
            return;
        p = c->in;
        len = c->in_len;
        scan = 0;
    }
}

static void on_readable(struct server *s, int fd)
{
    struct conn *c = &s->table[fd];
    /* A partial head is completed in place; otherwise the shared buffer saves a copy. */
    char *dst = c->in_len > 0 ? c->in + c->in_len : s->rbuf;
    size_t room = c->in_len > 0 ? IN_BUF_SIZE - c->in_len : IN_BUF_SIZE;
    ssize_t n = recv(fd, dst, room, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        /* EOF, ECONNRESET, ETIMEDOUT...: the peer is gone. */
        close_conn(s, fd);
        return;
    }
    s->msgs++;
    s->bytes += (uint64_t)n;
    if (c->in_len > 0) {
        c->in_len += (uint32_t)n;
        serve(s, fd, c->in, c->in_len);
    } else {
        serve(s, fd, s->rbuf, (size_t)n);
    }
}

static void on_writable(struct server *s, int fd)
{
    struct conn *c = &s->table[fd];
    int r = bench_send_pending(fd, c->out, &c->out_off, &c->out_len);
    if (r < 0)
        close_conn(s, fd);
    if (r <= 0)
        return;
    if (c->close_after) {
        close_conn(s, fd);
        return;
    }
    set_events(s, fd, EPOLLIN);
    /* Heads that waited for output room are answered now: no new data may come to report them. */
    if (c->in_len > 0)
        serve(s, fd, c->in, c->in_len);
}

static int run(struct server *s)
{
    struct epoll_event events[MAX_EVENTS];
    while (!s->ep.stop) {
        int n = bench_epoll_wait(&s->ep, events, MAX_EVENTS);
        if (n == -EINTR)
            continue;
        if (n < 0)
            return -1;
        time_t now = time(NULL);
        if (now != s->date_sec)
            build_responses(s, now);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == s->ep.lfd) {
                on_accept(s);
            } else if (fd == s->ep.sfd) {
                bench_epoll_on_signal(&s->ep);
            } else if (!s->table[fd].open) {
                /* Closed earlier in this batch; the event is stale. */
                continue;
            } else if (s->table[fd].out_off < s->table[fd].out_len) {
                /* Waiting for EPOLLOUT. EPOLLERR/EPOLLHUP also land here: the write reports it. */
                on_writable(s, fd);
            } else {
                /* EPOLLIN, or EPOLLERR/EPOLLHUP, which the read reports as EOF or an error. */
                on_readable(s, fd);
            }
        }
    }
    return 0;
}

/* What bench_epoll_main, which runs the server on one thread or several, needs of it. */
static void attach(void *server, void *table)
{
    struct server *s = server;
    s->table = table;
    build_responses(s, time(NULL));
}

static int run_loop(void *server)
{
    return run(server);
}

static void count(const void *server, uint64_t *sums)
{
    const struct server *s = server;
    sums[0] += s->msgs;
    sums[1] += s->bytes;
    sums[2] += s->reqs;
}

static void close_one(void *server, int fd)
{
    close_conn(server, fd);
}

static const struct bench_epoll_server server = {
    .size = sizeof(struct server),
    .ep_offset = offsetof(struct server, ep),
    .entry_size = sizeof(struct conn),
    .open_offset = offsetof(struct conn, open),
    .counters = {"msgs", "bytes", "reqs", NULL},
    .attach = attach,
    .run = run_loop,
    .count = count,
    .close_conn = close_one,
};

static const struct bench_cli cli = {
    .default_port = 8081, .synopsis = "", .help = "", .threads = true};

int main(int argc, char **argv)
{
    struct bench_options o;
    int status;
    if (!bench_server_init(argc, argv, &cli, &o, &status))
        return status;
    init_char_classes();
    return bench_epoll_main(&o, &server);
}
