/* corio http: the response head formatter, corio_http_format_response(), the reason phrases it
 * writes, and the status that answers each error of the module (corio_http_status()). */
#include "parser.h"

#include <errno.h>
#include <string.h>

/* Reason phrases (RFC 9110 section 15), indexed by the status's first digit less one and its last
 * two digits. No status in the table has those two above 31. */
static const char *const reasons[5][32] = {
    [0] = {[0] = "Continue", [1] = "Switching Protocols"},
    [1] = {[0] = "OK",
           [1] = "Created",
           [2] = "Accepted",
           [4] = "No Content",
           [6] = "Partial Content"},
    [2] = {[1] = "Moved Permanently",
           [2] = "Found",
           [3] = "See Other",
           [4] = "Not Modified",
           [7] = "Temporary Redirect",
           [8] = "Permanent Redirect"},
    [3] = {[0] = "Bad Request",
           [1] = "Unauthorized",
           [3] = "Forbidden",
           [4] = "Not Found",
           [5] = "Method Not Allowed",
           [6] = "Not Acceptable",
           [8] = "Request Timeout",
           [9] = "Conflict",
           [10] = "Gone",
           [11] = "Length Required",
           [12] = "Precondition Failed",
           [13] = "Content Too Large",
           [14] = "URI Too Long",
           [15] = "Unsupported Media Type",
           [16] = "Range Not Satisfiable",
           [17] = "Expectation Failed",
           [26] = "Upgrade Required",
           [29] = "Too Many Requests",
           [31] = "Request Header Fields Too Large"},
    [4] = {[0] = "Internal Server Error",
           [1] = "Not Implemented",
           [2] = "Bad Gateway",
           [3] = "Service Unavailable",
           [4] = "Gateway Timeout",
           [5] = "HTTP Version Not Supported"},
};

const char *corio_http_reason(int status)
{
    /* Unsigned, so that one compare rejects both ends and the divisions need no sign fix-up. */
    unsigned s = (unsigned)status - 100;
    const char *r = NULL;
    if (s < 500 && s % 100 < 32)
        r = reasons[s / 100][s % 100];
    return r != NULL ? r : "Unknown";
}

int corio_http_status(int err)
{
    switch (err) {
    case -EACCES:
        return 403;
    case -ETIMEDOUT:
        return 408;
    case -EMSGSIZE:
        return 413;
    case -ENAMETOOLONG:
        return 414;
    case -ERANGE:
        return 416;
    case -E2BIG:
        return 431;
    case -EOPNOTSUPP:
        return 501;
    case -EPROTONOSUPPORT:
        return 505;
    default: /* -EBADMSG, and whatever else a request could not be served for */
        return 400;
    }
}

/* Appends to a caller buffer, remembering an overflow instead of checking at every call site. */
struct out {
    char *p;   /* next byte to write */
    char *end; /* one past the buffer */
    bool full; /* something did not fit */
};

static void put(struct out *o, const char *s, size_t n)
{
    if ((size_t)(o->end - o->p) < n) {
        o->full = true;
        o->p = o->end;
        return;
    }
    memcpy(o->p, s, n);
    o->p += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_u64(struct out *o, uint64_t v)
{
    char tmp[20];
    size_t n = sizeof(tmp);
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, tmp + n, sizeof(tmp) - n);
}

static void put_i64(struct out *o, int64_t v)
{
    if (v < 0) {
        PUT_LIT(o, "-");
        put_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

static int put_date(struct out *o, time_t t)
{
    char d[CORIO_HTTP_DATE_LEN];
    int ret = corio_http_format_date(d, sizeof(d), t);
    if (ret < 0)
        return ret;
    put(o, d, sizeof(d));
    return 0;
}

ssize_t corio_http_format_response(char *buf, size_t cap, const struct corio_http_response *r)
{
    struct out o = {.p = buf, .end = buf + cap, .full = false};

    if (r->status < 100 || r->status > 999)
        return -EINVAL;
    PUT_LIT(&o, "HTTP/1.1 ");
    put_u64(&o, (uint64_t)r->status);
    PUT_LIT(&o, " ");
    const char *reason = corio_http_reason(r->status);
    put(&o, reason, strlen(reason));
    PUT_LIT(&o, "\r\nDate: ");
    if (r->date_str != NULL)
        put(&o, r->date_str, CORIO_HTTP_DATE_LEN);
    else if (put_date(&o, r->date) < 0)
        return -EINVAL;
    PUT_LIT(&o, "\r\nServer: corio\r\n");
    if (r->content_type != NULL) {
        PUT_LIT(&o, "Content-Type: ");
        put(&o, r->content_type, strlen(r->content_type));
        PUT_LIT(&o, "\r\n");
    }
    if (r->content_length >= 0) {
        PUT_LIT(&o, "Content-Length: ");
        put_u64(&o, (uint64_t)r->content_length);
        PUT_LIT(&o, "\r\n");
    }
    if (r->has_last_modified) {
        PUT_LIT(&o, "Last-Modified: ");
        if (put_date(&o, r->last_modified) < 0)
            return -EINVAL;
        PUT_LIT(&o, "\r\n");
    }
    if (r->content_range == CORIO_HTTP_CONTENT_RANGE_BYTES) {
        PUT_LIT(&o, "Content-Range: bytes ");
        put_i64(&o, r->range_first);
        PUT_LIT(&o, "-");
        put_i64(&o, r->range_last);
        PUT_LIT(&o, "/");
        put_i64(&o, r->range_size);
        PUT_LIT(&o, "\r\n");
    } else if (r->content_range == CORIO_HTTP_CONTENT_RANGE_UNSATISFIED) {
        PUT_LIT(&o, "Content-Range: bytes */");
        put_i64(&o, r->range_size);
        PUT_LIT(&o, "\r\n");
    }
    if (r->keep_alive)
        PUT_LIT(&o, "Connection: keep-alive\r\n");
    else
        PUT_LIT(&o, "Connection: close\r\n");
    if (r->extra_len)
        put(&o, r->extra, r->extra_len);
    PUT_LIT(&o, "\r\n");
    if (o.full)
        return -ENOSPC;
    return o.p - buf;
}
