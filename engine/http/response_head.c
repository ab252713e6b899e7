/* corio http: the response head parser, corio_http_parse_response(), and the lookup of a field in
 * a parsed response (corio_http_response_header_get()): what an HTTP/1.1 client reads.
 *
 * It works in the request parser's two steps (request.c). A scanner looks only at the bytes it has
 * not seen, refuses a bare LF, a first line that cannot be a status line, and a head over its
 * limit as soon as the byte that proves it arrives, and finds the blank line that ends the head.
 * Then one pass parses the status line here and the field lines with the request parser's own
 * code (corio__http_parse_field_lines), so that a field is judged alike in both directions, and
 * the framing fields are applied (RFC 9112 section 6.3). The scanner keeps only offsets in the
 * caller's struct corio_http_parser, so the buffer may move between calls.
 */
#include "parser.h"

#include <errno.h>
#include <string.h>

/* The bytes every status line starts with. */
#define STATUS_PREFIX "HTTP/"
#define STATUS_PREFIX_LEN (sizeof(STATUS_PREFIX) - 1)

/* Finds the end of the head in @buf[0..@len) from where the last call stopped. Returns the head's
 * length (through the blank line), -EAGAIN, -EBADMSG or -EMSGSIZE. */
static ssize_t scan_response(struct corio_http_parser *p, const char *buf, size_t len,
                             const struct corio_http_limits *lim)
{
    size_t limit = len < lim->max_head_bytes ? len : lim->max_head_bytes;
    size_t i = p->scanned;

    /* A peer that is not an HTTP server shows it in its first bytes: say so without waiting. */
    for (; i < limit && i < STATUS_PREFIX_LEN; i++) {
        if (buf[i] != STATUS_PREFIX[i])
            return -EBADMSG;
    }
    while (i < limit) {
        const char *lf = memchr(buf + i, '\n', limit - i);
        if (lf == NULL) {
            i = limit;
            break;
        }
        i = (size_t)(lf - buf);
        /* i >= STATUS_PREFIX_LEN here, so buf[i - 1] exists. */
        if (buf[i - 1] != '\r')
            return -EBADMSG;
        if (i - 1 == p->line_start && p->state != 0)
            return (ssize_t)(i + 1);
        p->state = 1; /* past the status line: an empty line now ends the head */
        p->line_start = ++i;
    }
    p->scanned = i;
    return len > lim->max_head_bytes ? -EMSGSIZE : -EAGAIN;
}

/* Parses the status line at *@pp into @r and moves *@pp past its CRLF.
 * status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF. The SP before an empty
 * reason is left out by enough servers that it is accepted missing. Returns 0 or -errno. */
static int parse_status_line(const char **pp, struct corio_http_response_head *r)
{
    const char *p = *pp;
    /* The scanner checked STATUS_PREFIX, and the line ends in CR, which no test below accepts. */
    p += STATUS_PREFIX_LEN;
    if (!((unsigned)(U8(p[0]) - '0') <= 9 && p[1] == '.' && (unsigned)(U8(p[2]) - '0') <= 9 &&
          p[3] == ' '))
        return -EBADMSG;
    if (p[0] != '1' || (p[2] != '0' && p[2] != '1'))
        return -EPROTONOSUPPORT;
    r->minor_version = p[2] - '0';
    p += 4;
    int status = 0;
    for (int k = 0; k < 3; k++) {
        unsigned d = (unsigned)(U8(p[k]) - '0');
        if (d > 9)
            return -EBADMSG;
        status = status * 10 + (int)d;
    }
    if (status < 100)
        return -EBADMSG;
    r->status = status;
    p += 3;
    if (*p == ' ')
        p++;
    r->reason = p;
    while (IS(C_VALUE, *p))
        p++;
    if (p[0] != '\r' || p[1] != '\n')
        return -EBADMSG;
    r->reason_len = (size_t)(p - r->reason);
    *pp = p + 2;
    return 0;
}

/* Whether the comma list @v[0..@n) holds the token @lc (lowercase), elements trimmed of OWS. */
static bool list_has(const char *v, size_t n, const char *lc)
{
    size_t tl = strlen(lc);
    const char *end = v + n;
    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *e = comma ? comma : end;
        const char *s = v;
        while (s < e && is_ows(*s))
            s++;
        const char *t = e;
        while (t > s && is_ows(t[-1]))
            t--;
        if ((size_t)(t - s) == tl && eq_lower(s, lc, tl))
            return true;
        v = comma ? comma + 1 : end;
    }
    return false;
}

/* Reads a Content-Length value: digits only, at least one, no overflow. Returns it or -EBADMSG. */
static int64_t content_length_of(const char *v, size_t n)
{
    int64_t len = 0;
    if (n == 0)
        return -EBADMSG;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(U8(v[i]) - '0');
        if (d > 9 || len > (INT64_MAX - (int64_t)d) / 10)
            return -EBADMSG;
        len = len * 10 + (int64_t)d;
    }
    return len;
}

/* What the framing fields of a response head say. */
struct framing {
    bool has_cl;     /* a Content-Length field was seen */
    bool has_te;     /* a Transfer-Encoding field was seen */
    bool te_other;   /* a coding other than a single "chunked" */
    bool close;      /* Connection lists "close" */
    bool keep_alive; /* Connection lists "keep-alive" */
};

/* Applies the framing field @h to @r and @f. Returns 0 or -EBADMSG. */
static int apply_framing(const struct corio_http_header *h, struct corio_http_response_head *r,
                         struct framing *f)
{
    if (h->name_len == 14 && eq_lower(h->name, "content-length", 14)) {
        /* As the request parser does: a second Content-Length is a smuggling shape. */
        int64_t n = content_length_of(h->value, h->value_len);
        if (f->has_cl || n < 0)
            return -EBADMSG;
        f->has_cl = true;
        r->content_length = n;
    } else if (h->name_len == 17 && eq_lower(h->name, "transfer-encoding", 17)) {
        /* The client asks for no coding (it sends no TE), so "chunked" alone is the one it can
         * decode; a second field would add a coding on top of it. */
        if (f->has_te || h->value_len != 7 || !eq_lower(h->value, "chunked", 7))
            f->te_other = true;
        f->has_te = true;
    } else if (h->name_len == 10 && eq_lower(h->name, "connection", 10)) {
        f->close |= list_has(h->value, h->value_len, "close");
        f->keep_alive |= list_has(h->value, h->value_len, "keep-alive");
    }
    return 0;
}

/* Parses the complete head @buf[0..@len) into @r. Returns 0 or -errno. */
static int parse_response_head(const char *buf, size_t len, const struct corio_http_limits *lim,
                               struct corio_http_response_head *r,
                               struct corio_http_header *headers, size_t nheaders)
{
    const char *p = buf, *end = buf + len;
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    r->headers = headers;
    int err = parse_status_line(&p, r);
    if (err)
        return err;
    size_t cap = nheaders < lim->max_headers ? nheaders : lim->max_headers;
    err = corio__http_parse_field_lines(&p, end, headers, cap, &r->num_headers);
    if (err)
        return err == -E2BIG ? -EMSGSIZE : err;
    struct framing f = {0};
    for (size_t i = 0; i < r->num_headers; i++) {
        err = apply_framing(&headers[i], r, &f);
        if (err)
            return err;
    }
    /* RFC 9112 section 6.1: Transfer-Encoding with Content-Length, or in HTTP/1.0, is faulty
     * framing, and a client that guessed which one holds could be smuggled a response. */
    if (f.has_te && (f.has_cl || r->minor_version == 0))
        return -EBADMSG;
    if (f.te_other)
        return -EOPNOTSUPP;
    r->chunked = f.has_te;
    r->keep_alive = r->minor_version == 1 ? !f.close : f.keep_alive && !f.close;
    return 0;
}

ssize_t corio_http_parse_response(struct corio_http_parser *p, const char *buf, size_t len,
                                  const struct corio_http_limits *lim,
                                  struct corio_http_response_head *resp,
                                  struct corio_http_header *headers, size_t nheaders)
{
    if (lim == NULL)
        lim = &corio__http_default_limits;
    ssize_t n = scan_response(p, buf, len, lim);
    if (n == -EAGAIN)
        return n;
    corio_http_parser_init(p);
    if (n < 0)
        return n;
    struct corio_http_response_head r;
    int err = parse_response_head(buf, (size_t)n, lim, &r, headers, nheaders);
    if (err)
        return err;
    *resp = r;
    return n;
}

int corio_http_response_header_get(const struct corio_http_response_head *resp, const char *name,
                                   const char **value, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < resp->num_headers; i++) {
        const struct corio_http_header *h = &resp->headers[i];
        if (h->name_len == nl && eq_nocase(h->name, name, nl)) {
            *value = h->value;
            *len = h->value_len;
            return 0;
        }
    }
    return -ENOENT;
}
