/* corio http: the response head formatter, corio_http_format_response(), and the reason phrases
 * it writes. */
#include "parser.h"

#include <errno.h>
#include <string.h>

const char *corio_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
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
