/* The HTTP server's responses: the head of each (with the cached Date), whole responses,
 * streamed ones (respond_start + write), and the short error responses of the server itself.
 * Responses are written to the connection's output buffer (io.c), which goes out before the
 * connection next waits for input. */
#include "server.h"

#include "parser.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* Makes the server's first lines of a head (s->head) those of a response with @status now:
 * formatted again when the status or the second differs from the last response's. Returns 0, or
 * -EINVAL for a status outside 100..999. */
static int head_start(struct corio_http_server *s, int status, time_t sec)
{
    if (sec == s->head_sec && status == s->head_status)
        return 0;
    char date[CORIO_HTTP_DATE_LEN];
    struct corio_http_response r = {.status = status, .date_str = date};
    /* Room is not the issue: the buffer holds the longest lines (server.h). */
    ssize_t n;
    if (corio_http_format_date(date, sizeof(date), sec) < 0 ||
        (n = corio__http_format_head_start(s->head, sizeof(s->head), &r)) < 0)
        return -EINVAL;
    s->head_sec = sec;
    s->head_status = status;
    s->head_len = (size_t)n;
    return 0;
}

/* Writes the server's first lines of a head and the rest of @r's into the output: both, or,
 * where they do not fit in the room left, nothing. Returns 0, -ENOSPC, or -EINVAL. */
static int put_head(struct corio_http_conn *c, const struct corio_http_response *r)
{
    const struct corio_http_server *s = c->s;
    char *out = c->wbuf + c->wlen;
    size_t room = c->wcap - c->wlen;
    /* The rest is formatted even without room, so that its -EINVAL comes before an -ENOSPC, as
     * corio_http_format_response() reports them. */
    if (room < s->head_len)
        return (int)corio__http_format_head_rest(out, 0, r);
    /* Where it fits, the whole buffer of the first lines, a copy of constant size; the rest
     * then goes over what lies past them, and a rest that fails leaves only bytes past the
     * output. */
    if (room >= sizeof(s->head))
        memcpy(out, s->head, sizeof(s->head));
    else
        memcpy(out, s->head, s->head_len);
    ssize_t n = corio__http_format_head_rest(out + s->head_len, room - s->head_len, r);
    if (n < 0)
        return (int)n;
    c->wlen += s->head_len + (size_t)n;
    return 0;
}

/* Whether the plain head kept by the server (server.h) is the one of a response with @status,
 * Content-Type @ctype (@ctlen bytes, -1 for none), @len and @keep_alive in second @sec. */
static bool plain_same(const struct corio_http_server *s, time_t sec, int status,
                       const char *ctype, int ctlen, int64_t len, bool keep_alive)
{
    return s->plain.sec == sec && s->plain.status == status && s->plain.len == len &&
           s->plain.keep_alive == keep_alive && s->plain.ctlen == ctlen &&
           (ctlen <= 0 || memcmp(s->plain.ctype, ctype, (size_t)ctlen) == 0);
}

/* Keeps the @n bytes of head at @head, just written for a plain response with these values, for
 * the next one; a head or Content-Type too long to keep is not. */
static void plain_keep(struct corio_http_server *s, time_t sec, int status, const char *ctype,
                       int ctlen, int64_t len, bool keep_alive, const char *head, size_t n)
{
    s->plain.sec = -1;
    if (n > sizeof(s->plain.head) || ctlen > (int)sizeof(s->plain.ctype))
        return;
    memcpy(s->plain.head, head, n);
    if (ctlen > 0)
        memcpy(s->plain.ctype, ctype, (size_t)ctlen);
    s->plain.n = n;
    s->plain.status = status;
    s->plain.ctlen = ctlen;
    s->plain.len = len;
    s->plain.keep_alive = keep_alive;
    s->plain.sec = sec;
}

/* The length of Content-Type @ctype for plain_same, or -1 for none or one too long to keep. */
static int plain_ctlen(const char *ctype)
{
    if (!ctype)
        return -1;
    size_t n = strnlen(ctype, CORIO__HTTP_PLAIN_CTYPE_MAX + 1);
    return n > CORIO__HTTP_PLAIN_CTYPE_MAX ? -2 : (int)n;
}

/* corio__http_write_head past the kept plain head: the head formatted from @tmpl (or none), the
 * added lines and the values given, and kept when it is plain (@ctlen >= -1). */
static int write_head_formatted(struct corio_http_conn *c, int status, const char *ctype,
                                int ctlen, int64_t len, const struct corio_http_response *tmpl,
                                time_t sec, int64_t deadline)
{
    /* Without a template, only what the head's rest reads needs a value: the optional lines
     * off, and the fields set below. */
    struct corio_http_response r;
    if (tmpl) {
        r = *tmpl;
    } else {
        r.has_last_modified = false;
        r.content_range = CORIO_HTTP_CONTENT_RANGE_NONE;
        r.extra = NULL;
        r.extra_len = 0;
    }
    if (c->xlen) {
        r.extra = c->xbuf;
        r.extra_len = c->xlen;
        c->xlen = 0;
    }
    r.content_type = ctype;
    r.content_length = len;
    r.keep_alive = c->keep_alive && !c->broken;
    struct corio_http_server *s = c->s;
    int err = head_start(s, status, sec);
    if (err)
        return err;
    c->status = status;
    for (int tries = 0; tries < 2; tries++) {
        size_t at = c->wlen;
        err = put_head(c, &r);
        if (err == 0) {
            if (ctlen >= -1)
                plain_keep(s, sec, status, ctype, ctlen, len, r.keep_alive, c->wbuf + at,
                           c->wlen - at);
            s->stats.responses++;
            return 0;
        }
        if (err != -ENOSPC)
            return err;
        err = corio__http_flush(c, deadline);
        if (err)
            return err;
    }
    return -ENOSPC;
}

int corio__http_write_head(struct corio_http_conn *c, int status, const char *ctype, int64_t len,
                           const struct corio_http_response *tmpl, int64_t deadline)
{
    /* A client that waits for 100 Continue and gets a final response instead does not send its
     * body (RFC 9110 section 10.1.1), so corio__http_body_discard ends the connection: say so in
     * advance. */
    if (c->expect_continue && !c->sent_continue &&
        (c->body == CORIO__HTTP_BODY_LENGTH || c->body == CORIO__HTTP_BODY_CHUNKED))
        c->keep_alive = false;
    /* A drain of the loop: this is the connection's last response. */
    if (c->keep_alive && corio_draining())
        c->keep_alive = false;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    /* A plain response like the last one (the same status, type, length and Connection in the
     * same second, as a server answering many alike sends): one copy of the kept head. */
    int ctlen = !tmpl && c->xlen == 0 ? plain_ctlen(ctype) : -2;
    struct corio_http_server *s = c->s;
    if (ctlen >= -1 &&
        plain_same(s, ts.tv_sec, status, ctype, ctlen, len, c->keep_alive && !c->broken) &&
        c->wcap - c->wlen >= s->plain.n) {
        memcpy(c->wbuf + c->wlen, s->plain.head, s->plain.n);
        c->wlen += s->plain.n;
        s->stats.responses++;
        c->status = status;
        return 0;
    }
    return write_head_formatted(c, status, ctype, ctlen, len, tmpl, ts.tv_sec, deadline);
}

/* Header fields the server writes itself on every response it sends for a handler: a second
 * copy from the handler would contradict the framing or duplicate a singleton field. */
static const char *const own_fields[] = {
    "content-length", "transfer-encoding", "connection", "date", "server", "content-type",
};

/* Whether the @len bytes at @name are a field the server writes itself (case-insensitive). */
static bool own_field(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(own_fields) / sizeof(own_fields[0]); i++) {
        if (strlen(own_fields[i]) == len && eq_lower(name, own_fields[i], len))
            return true;
    }
    return false;
}

/* Returns the length of @s if every byte of it is in character class @cls, else 0. */
static size_t class_len(const char *s, unsigned cls)
{
    size_t n = 0;
    while (s[n] && IS(cls, s[n]))
        n++;
    return s[n] ? 0 : n;
}

int corio_http_add_header(struct corio_http_conn *c, const char *name, const char *value)
{
    if (c->resp != CORIO__HTTP_RESP_NONE)
        return -EALREADY;
    if (!name || !value)
        return -EINVAL;
    size_t nl = class_len(name, C_TCHAR);
    size_t vl = strlen(value);
    if (nl == 0 || own_field(name, nl) || (vl > 0 && class_len(value, C_VALUE) != vl))
        return -EINVAL;
    if (nl + vl + 4 > CORIO_HTTP_ADDED_HEADER_BYTES - c->xlen)
        return -ENOSPC;
    char *p = c->xbuf + c->xlen;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 2);
    c->xlen += nl + vl + 4;
    return 0;
}

static bool bodyless_status(int status)
{
    return status < 200 || status == 204 || status == 304;
}

int corio_http_respond(struct corio_http_conn *c, int status, const char *content_type,
                       const void *body, size_t len, int64_t deadline)
{
    if (c->resp != CORIO__HTTP_RESP_NONE)
        return -EALREADY;
    bool none = bodyless_status(status);
    int err = corio__http_write_head(c, status, none ? NULL : content_type,
                                     none ? -1 : (int64_t)len, NULL, deadline);
    c->resp = CORIO__HTTP_RESP_DONE;
    if (err) {
        c->broken = true;
        return err;
    }
    if (none || c->head_only || len == 0)
        return 0;
    return corio__http_append(c, body, len, deadline);
}

/* Frames a body of unknown length: chunked for an HTTP/1.1 client, else ended by closing the
 * connection (HTTP/1.0 has no other way). Returns the template of the head: NULL, or @t with the
 * Transfer-Encoding line put in front of the added lines, which it takes. */
static const struct corio_http_response *frame_unknown(struct corio_http_conn *c,
                                                       struct corio_http_response *t)
{
    if (c->req->minor_version == 0) {
        c->framing = CORIO__HTTP_FRAME_CLOSE;
        c->keep_alive = false;
        return NULL;
    }
    c->framing = CORIO__HTTP_FRAME_CHUNKED;
    char *line = c->xbuf - CORIO__HTTP_TE_CHUNKED_LEN;
    memcpy(line, CORIO__HTTP_TE_CHUNKED, CORIO__HTTP_TE_CHUNKED_LEN);
    memset(t, 0, sizeof(*t));
    t->extra = line;
    t->extra_len = CORIO__HTTP_TE_CHUNKED_LEN + c->xlen;
    c->xlen = 0;
    return t;
}

int corio_http_respond_start(struct corio_http_conn *c, int status, const char *content_type,
                             int64_t content_length, int64_t deadline)
{
    if (c->resp != CORIO__HTTP_RESP_NONE)
        return -EALREADY;
    struct corio_http_response t;
    const struct corio_http_response *tmpl = NULL;
    c->framing = CORIO__HTTP_FRAME_LENGTH;
    if (content_length < 0 && !bodyless_status(status))
        tmpl = frame_unknown(c, &t);
    int err = corio__http_write_head(c, status, content_type, content_length, tmpl, deadline);
    if (err) {
        c->broken = true;
        c->resp = CORIO__HTTP_RESP_DONE;
        return err;
    }
    c->resp = CORIO__HTTP_RESP_STARTED;
    c->resp_left = content_length < 0 ? 0 : content_length;
    if (c->head_only || (c->framing == CORIO__HTTP_FRAME_LENGTH && c->resp_left == 0))
        c->resp = CORIO__HTTP_RESP_DONE;
    return 0;
}

/* corio_http_write for a body of unknown length: one chunk, or the bytes as they are when the
 * connection's end delimits the body. @len is not 0. Returns 0 or -errno. */
static int write_unknown(struct corio_http_conn *c, const void *buf, size_t len, int64_t deadline)
{
    if (c->framing == CORIO__HTTP_FRAME_CLOSE)
        return corio__http_append(c, buf, len, deadline);
    char line[20]; /* 16 hex digits and CRLF */
    size_t n = sizeof(line);
    line[--n] = '\n';
    line[--n] = '\r';
    for (size_t v = len; v; v >>= 4)
        line[--n] = "0123456789abcdef"[v & 15];
    int err = corio__http_append(c, line + n, sizeof(line) - n, deadline);
    if (!err)
        err = corio__http_append(c, buf, len, deadline);
    if (!err)
        err = corio__http_append(c, "\r\n", 2, deadline);
    return err;
}

int corio_http_write(struct corio_http_conn *c, const void *buf, size_t len, int64_t deadline)
{
    if (c->head_only && c->resp == CORIO__HTTP_RESP_DONE)
        return 0;
    if (c->resp != CORIO__HTTP_RESP_STARTED)
        return -EINVAL;
    if (c->framing != CORIO__HTTP_FRAME_LENGTH)
        return len ? write_unknown(c, buf, len, deadline) : corio_http_finish(c, deadline);
    if ((int64_t)len > c->resp_left)
        return -EINVAL;
    int err = corio__http_append(c, buf, len, deadline);
    if (err)
        return err;
    c->resp_left -= (int64_t)len;
    if (c->resp_left == 0)
        c->resp = CORIO__HTTP_RESP_DONE;
    return 0;
}

int corio_http_finish(struct corio_http_conn *c, int64_t deadline)
{
    if (c->resp == CORIO__HTTP_RESP_DONE)
        return 0;
    if (c->resp != CORIO__HTTP_RESP_STARTED || c->framing == CORIO__HTTP_FRAME_LENGTH)
        return -EINVAL;
    c->resp = CORIO__HTTP_RESP_DONE;
    if (c->framing == CORIO__HTTP_FRAME_CLOSE)
        return 0; /* the connection's end, after the handler, ends the body */
    /* The last chunk, and the empty trailer section. */
    return corio__http_append(c, "0\r\n\r\n", 5, deadline);
}

int corio_http_flush(struct corio_http_conn *c, int64_t deadline)
{
    if (c->broken)
        return -EPIPE;
    return corio__http_flush(c, deadline);
}

/* @close_conn after a malformed request: RFC 9112 asks the server to close then. */
void corio__http_respond_error(struct corio_http_conn *c, int status, bool close_conn)
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
    c->resp = CORIO__HTTP_RESP_NONE;
    c->xlen = 0;
    corio_http_respond(c, status, "text/plain; charset=utf-8", body, n, CORIO_FOREVER);
}
