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

/* Appends to a caller buffer, remembering an overflow instead of checking at every call site;
 * or, where the caller made sure of the room beforehand, without checking at all. */
struct out {
    char *p;      /* next byte to write */
    char *end;    /* one past the buffer */
    bool full;    /* something did not fit */
    bool checked; /* whether to check the room; a constant in each caller, so the check folds */
};

static inline void put(struct out *o, const char *s, size_t n)
{
    if (o->checked && (size_t)(o->end - o->p) < n) {
        o->full = true;
        o->p = o->end;
        return;
    }
    memcpy(o->p, s, n);
    o->p += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

/* The two digits of each number below 100. */
static const char digit_pairs[200] =
    "00010203040506070809101112131415161718192021222324252627282930"
    "31323334353637383940414243444546474849505152535455565758596061"
    "62636465666768697071727374757677787980818283848586878889909192"
    "93949596979899";

/* Writes the decimal digits of @v, at most 20, in place from the last, two at a time. */
static inline void put_u64(struct out *o, uint64_t v)
{
    size_t n = 1;
    for (uint64_t p = 10; n < 20 && v >= p; p *= 10)
        n++;
    if (o->checked && (size_t)(o->end - o->p) < n) {
        o->full = true;
        o->p = o->end;
        return;
    }
    char *d = o->p + n;
    for (; v >= 100; v /= 100) {
        d -= 2;
        memcpy(d, digit_pairs + v % 100 * 2, 2);
    }
    if (v >= 10)
        memcpy(d - 2, digit_pairs + v * 2, 2);
    else
        d[-1] = (char)('0' + v);
    o->p += n;
}

static inline void put_i64(struct out *o, int64_t v)
{
    if (v < 0) {
        PUT_LIT(o, "-");
        put_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

static inline int put_date(struct out *o, time_t t)
{
    char d[CORIO_HTTP_DATE_LEN];
    int ret = corio_http_format_date(d, sizeof(d), t);
    if (ret < 0)
        return ret;
    put(o, d, sizeof(d));
    return 0;
}

/* The status line, Date and Server of @r. Returns 0 or -EINVAL. */
static int put_head_start(struct out *o, const struct corio_http_response *r)
{
    if (r->status < 100 || r->status > 999)
        return -EINVAL;
    PUT_LIT(o, "HTTP/1.1 ");
    put_u64(o, (uint64_t)r->status);
    PUT_LIT(o, " ");
    const char *reason = corio_http_reason(r->status);
    put(o, reason, strlen(reason));
    PUT_LIT(o, "\r\nDate: ");
    if (r->date_str != NULL)
        put(o, r->date_str, CORIO_HTTP_DATE_LEN);
    else if (put_date(o, r->date) < 0)
        return -EINVAL;
    PUT_LIT(o, "\r\nServer: corio\r\n");
    return 0;
}

#define LIT_LEN(lit) (sizeof(lit) - 1)

/* The most put_head_rest() writes besides the Content-Type value and the extra lines: each line
 * with its longest value (20 characters for a number with its sign, an IMF-fixdate for a date),
 * and the empty line. */
#define REST_MOST_FIXED                                                                            \
    (LIT_LEN("Content-Type: \r\n") + LIT_LEN("Content-Length: \r\n") + 20 +                        \
     LIT_LEN("Last-Modified: \r\n") + CORIO_HTTP_DATE_LEN +                                        \
     LIT_LEN("Content-Range: bytes -/\r\n") + 3 * 20 + LIT_LEN("Connection: keep-alive\r\n") +     \
     LIT_LEN("\r\n"))

/* The header lines after Server, and the empty line; @ctlen is the length of the Content-Type
 * value. Inlined into a checked and an unchecked caller. Returns 0 or -EINVAL. */
static inline __attribute__((always_inline)) int
put_head_rest(struct out *o, const struct corio_http_response *r, size_t ctlen)
{
    if (r->content_type != NULL) {
        PUT_LIT(o, "Content-Type: ");
        put(o, r->content_type, ctlen);
        PUT_LIT(o, "\r\n");
    }
    if (r->content_length >= 0) {
        PUT_LIT(o, "Content-Length: ");
        put_u64(o, (uint64_t)r->content_length);
        PUT_LIT(o, "\r\n");
    }
    if (r->has_last_modified) {
        PUT_LIT(o, "Last-Modified: ");
        if (put_date(o, r->last_modified) < 0)
            return -EINVAL;
        PUT_LIT(o, "\r\n");
    }
    if (r->content_range == CORIO_HTTP_CONTENT_RANGE_BYTES) {
        PUT_LIT(o, "Content-Range: bytes ");
        put_i64(o, r->range_first);
        PUT_LIT(o, "-");
        put_i64(o, r->range_last);
        PUT_LIT(o, "/");
        put_i64(o, r->range_size);
        PUT_LIT(o, "\r\n");
    } else if (r->content_range == CORIO_HTTP_CONTENT_RANGE_UNSATISFIED) {
        PUT_LIT(o, "Content-Range: bytes */");
        put_i64(o, r->range_size);
        PUT_LIT(o, "\r\n");
    }
    if (r->keep_alive)
        PUT_LIT(o, "Connection: keep-alive\r\n");
    else
        PUT_LIT(o, "Connection: close\r\n");
    if (r->extra_len)
        put(o, r->extra, r->extra_len);
    PUT_LIT(o, "\r\n");
    return 0;
}

/* The length written to @o since @buf, -ENOSPC if it did not all fit, or @err if not 0. */
static inline ssize_t out_result(const struct out *o, const char *buf, int err)
{
    if (err)
        return err;
    return o->full ? -ENOSPC : o->p - buf;
}

ssize_t corio__http_format_head_start(char *buf, size_t cap, const struct corio_http_response *r)
{
    struct out o = {.p = buf, .end = buf + cap, .full = false, .checked = true};
    return out_result(&o, buf, put_head_start(&o, r));
}

ssize_t corio__http_format_head_rest(char *buf, size_t cap, const struct corio_http_response *r)
{
    size_t ctlen = r->content_type != NULL ? strlen(r->content_type) : 0;
    /* Where the longest rest fits, no byte needs a check. */
    bool room = cap >= REST_MOST_FIXED && cap - REST_MOST_FIXED >= ctlen &&
                cap - REST_MOST_FIXED - ctlen >= r->extra_len;
    if (room) {
        struct out o = {.p = buf, .end = buf + cap, .full = false, .checked = false};
        return out_result(&o, buf, put_head_rest(&o, r, ctlen));
    }
    struct out o = {.p = buf, .end = buf + cap, .full = false, .checked = true};
    return out_result(&o, buf, put_head_rest(&o, r, ctlen));
}

ssize_t corio_http_format_response(char *buf, size_t cap, const struct corio_http_response *r)
{
    ssize_t start = corio__http_format_head_start(buf, cap, r);
    if (start == -EINVAL)
        return start;
    /* A start that did not fit leaves the rest no room, which still reports its -EINVAL. */
    size_t used = start < 0 ? cap : (size_t)start;
    ssize_t rest = corio__http_format_head_rest(buf + used, cap - used, r);
    if (rest < 0 || start < 0)
        return rest < 0 ? rest : start;
    return start + rest;
}
