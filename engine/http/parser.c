/* corio http: request head parser, chunked decoder and response helpers (see parser.h).
 *
 * Written from RFC 9110 and RFC 9112. The head parser works in two steps. A scanner looks only at
 * bytes it has not seen before, finds the blank line that ends the head, and rejects a bare LF,
 * an oversized head or an oversized request-target as soon as the offending byte arrives. Once
 * the head is complete, a single pass over it checks the grammar with the character tables below
 * and fills the request. The parse pass relies on the scanner's guarantees: every line ends in
 * CRLF and the head ends in CRLF CRLF, so its loops stop at a CR without bounds checks because
 * CR is in none of the character classes.
 */
#include "parser.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* Character classes, one bit each, generated from the RFC 9110 grammar. */
enum {
    C_TCHAR = 1,  /* token: "!#$%&'*+-.^_`|~", DIGIT, ALPHA */
    C_VALUE = 2,  /* field-value byte: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 4, /* request-target byte: VCHAR and obs-text (raw UTF-8 is let through) */
    C_QDTEXT = 8, /* quoted-string text: HTAB, SP, VCHAR except '"' and '\', obs-text */
};

static const uint8_t char_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  10, 0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    10, 15, 6,  15, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15, 14, /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14, 14, 14, 14, 14, /* 0x30 */
    14, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 6,  14, 15, 15, /* 0x50 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 0x60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 15, 14, 15, 0,  /* 0x70 */
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, /* 0x80 */
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, /* 0x90 */
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, /* 0xa0 */
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, /* 0xb0 */
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, /* 0xc0 */
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, /* 0xd0 */
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, /* 0xe0 */
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, /* 0xf0 */
};
static const int8_t hex_value[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x00 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x10 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x20 */
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  -1, -1, -1, -1, -1, -1, /* 0x30 */
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x40 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x50 */
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x60 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x70 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x80 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x90 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xa0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xb0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xc0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xd0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xe0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xf0 */
};
static const unsigned char lower[256] = {
    0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,  15,  /* 0x00 */
    16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,  /* 0x10 */
    32,  33,  34,  35,  36,  37,  38,  39,  40,  41,  42,  43,  44,  45,  46,  47,  /* 0x20 */
    48,  49,  50,  51,  52,  53,  54,  55,  56,  57,  58,  59,  60,  61,  62,  63,  /* 0x30 */
    64,  97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, /* 0x40 */
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 91,  92,  93,  94,  95,  /* 0x50 */
    96,  97,  98,  99,  100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, /* 0x60 */
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, /* 0x70 */
    128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, /* 0x80 */
    144, 145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, /* 0x90 */
    160, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172, 173, 174, 175, /* 0xa0 */
    176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, /* 0xb0 */
    192, 193, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207, /* 0xc0 */
    208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221, 222, 223, /* 0xd0 */
    224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, /* 0xe0 */
    240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255, /* 0xf0 */
};

#define U8(c) ((unsigned char)(c))
#define IS(cls, c) (char_class[U8(c)] & (cls))

static const struct corio_http_limits default_limits = {
    .max_head_bytes = CORIO_HTTP_DEFAULT_MAX_HEAD_BYTES,
    .max_headers = CORIO_HTTP_DEFAULT_MAX_HEADERS,
    .max_target_bytes = CORIO_HTTP_DEFAULT_MAX_TARGET_BYTES,
    .max_body_bytes = CORIO_HTTP_DEFAULT_MAX_BODY_BYTES,
};

void corio_http_limits_init(struct corio_http_limits *lim)
{
    *lim = default_limits;
}

void corio_http_parser_init(struct corio_http_parser *p)
{
    memset(p, 0, sizeof(*p));
}

/* Case-insensitive compare of @n bytes of @s against the lowercase literal @lc. */
static inline bool eq_lower(const char *s, const char *lc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lower[U8(s[i])] != U8(lc[i]))
            return false;
    }
    return true;
}

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

#define BYTES_01 0x0101010101010101ull
#define BYTES_80 0x8080808080808080ull

/* Whether any of the 8 bytes at @p is below @lo (at most 0x80) or is DEL, tested a word at a
 * time: a byte b < lo borrows into its top bit in (x - lo * BYTES_01) while ~x keeps that bit
 * only where b < 0x80 (the standard "has byte less than" word trick; a borrow can only cause a
 * false hit above a true one, so the yes/no answer is exact). The parse pass uses it to skip long
 * runs of target and value bytes, which are all VCHAR or obs-text. */
static inline bool word_has_stop(const char *p, uint64_t lo)
{
    uint64_t x, del;
    memcpy(&x, p, sizeof(x)); /* an unaligned load; compilers emit one mov */
    del = x ^ (BYTES_01 * 0x7f);
    return (((x - BYTES_01 * lo) & ~x) | ((del - BYTES_01) & ~del)) & BYTES_80;
}

/* ---------------------------------------------------------------------------------------------
 * Head scanner
 * ------------------------------------------------------------------------------------------- */

/* Scanner states, kept in corio_http_parser.state. */
enum {
    SCAN_LEADING = 0, /* at or inside empty lines before the request line */
    SCAN_METHOD,      /* in the method, before the first SP */
    SCAN_TARGET,      /* in the request-target, counting it against max_target_bytes */
    SCAN_LINE_REST,   /* after the target, looking for the end of the request line */
    SCAN_FIELDS,      /* in the field lines, looking for the empty line */
};

/* Advances the scanner over the bytes it has not seen. Only the first max_head_bytes of @buf are
 * ever looked at, so the outcome depends on the bytes alone and not on how they were split:
 * an error is reported at the first byte that proves it, in stream order. Returns the head length
 * once the empty line is found, CORIO_HTTP_INCOMPLETE, or -400 (bare LF), -414 or -431. */
static ssize_t scan_head(struct corio_http_parser *p, const char *buf, size_t len,
                         const struct corio_http_limits *lim)
{
    size_t limit = len < lim->max_head_bytes ? len : lim->max_head_bytes;
    size_t i = p->scanned;

    while (i < limit) {
        switch (p->state) {
        case SCAN_LEADING:
            /* RFC 9112 section 2.2: ignore CRLFs before the request line. A CR is stepped over
             * only at the start of a line; a second one starts the request line, which the
             * parse pass then rejects. */
            if (buf[i] == '\r' && i == p->line_start) {
                i++;
            } else if (buf[i] == '\n') {
                if (i == p->line_start)
                    return -400;
                p->line_start = ++i;
            } else {
                p->state = SCAN_METHOD;
                p->head_start = p->line_start;
            }
            break;
        case SCAN_METHOD:
            while (i < limit && buf[i] != ' ' && buf[i] != '\n')
                i++;
            if (i == limit)
                break;
            if (buf[i] == '\n')
                goto request_line_end;
            p->state = SCAN_TARGET;
            p->target_len = 0;
            i++;
            break;
        case SCAN_TARGET: {
            /* The target runs to SP, CR or LF; whatever else it holds is judged later. */
            size_t start = i;
            while (i < limit && buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n')
                i++;
            p->target_len += i - start;
            if (p->target_len > lim->max_target_bytes)
                return -414;
            if (i == limit)
                break;
            if (buf[i] == '\n')
                goto request_line_end;
            p->state = SCAN_LINE_REST;
            i++;
            break;
        }
        case SCAN_LINE_REST:
        case SCAN_FIELDS: {
            const char *lf = memchr(buf + i, '\n', limit - i);
            if (lf == NULL) {
                i = limit;
                break;
            }
            i = (size_t)(lf - buf);
            if (p->state == SCAN_LINE_REST)
                goto request_line_end;
            /* line_start > 0 (the request line comes first), so buf[i - 1] exists. */
            if (buf[i - 1] != '\r')
                return -400;
            if (i - 1 == p->line_start)
                return (ssize_t)(i + 1);
            p->line_start = ++i;
            break;
        }
        }
        continue;
    request_line_end:
        /* i > head_start: the request line's first byte is never LF. */
        if (buf[i - 1] != '\r')
            return -400;
        p->state = SCAN_FIELDS;
        p->line_start = ++i;
    }
    p->scanned = i;
    return len > lim->max_head_bytes ? -431 : CORIO_HTTP_INCOMPLETE;
}

/* ---------------------------------------------------------------------------------------------
 * Head parse pass
 * ------------------------------------------------------------------------------------------- */

/* Yields the next element of the comma list [*pp, end) with OWS trimmed, which may be empty;
 * *pp becomes NULL after the last one. Returns false once the list is exhausted. */
static bool list_next(const char **pp, const char *end, const char **elem, size_t *elem_len)
{
    const char *s = *pp;
    if (s == NULL)
        return false;
    const char *comma = memchr(s, ',', (size_t)(end - s));
    const char *e = comma ? comma : end;
    *pp = comma ? comma + 1 : NULL;
    while (s < e && is_ows(*s))
        s++;
    while (e > s && is_ows(e[-1]))
        e--;
    *elem = s;
    *elem_len = (size_t)(e - s);
    return true;
}

static enum corio_http_method method_of(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0)
            return CORIO_HTTP_GET;
        if (memcmp(m, "PUT", 3) == 0)
            return CORIO_HTTP_PUT;
        break;
    case 4:
        if (memcmp(m, "HEAD", 4) == 0)
            return CORIO_HTTP_HEAD;
        if (memcmp(m, "POST", 4) == 0)
            return CORIO_HTTP_POST;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0)
            return CORIO_HTTP_PATCH;
        if (memcmp(m, "TRACE", 5) == 0)
            return CORIO_HTTP_TRACE;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0)
            return CORIO_HTTP_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0)
            return CORIO_HTTP_OPTIONS;
        if (memcmp(m, "CONNECT", 7) == 0)
            return CORIO_HTTP_CONNECT;
        break;
    }
    return CORIO_HTTP_METHOD_UNKNOWN;
}

/* What the parse pass learns from the fields with meaning to the server. */
struct head_facts {
    unsigned hosts;        /* Host fields seen */
    unsigned ranges;       /* Range fields seen */
    bool has_cl;           /* a Content-Length field was seen */
    bool has_te;           /* a Transfer-Encoding field was seen */
    bool te_chunked_last;  /* the last transfer coding so far is chunked */
    bool te_chunked_inner; /* chunked was followed by another coding: -400 */
    bool te_other;         /* a coding other than chunked was seen: -501 */
    bool conn_close;       /* Connection lists "close" */
    bool conn_keep_alive;  /* Connection lists "keep-alive" */
};

/* Applies one field whose name may matter. Dispatching on the name length first keeps the cost
 * of the many fields that do not matter to one switch. Returns 0 or -400. */
static int apply_field(const struct corio_http_header *h, struct corio_http_request *req,
                       struct head_facts *f)
{
    const char *v = h->value, *vend = h->value + h->value_len;
    const char *el;
    size_t el_len;

    switch (h->name_len) {
    case 4:
        if (eq_lower(h->name, "host", 4)) {
            req->host = v;
            req->host_len = h->value_len;
            f->hosts++;
        }
        break;
    case 5:
        if (eq_lower(h->name, "range", 5)) {
            req->range = v;
            req->range_len = h->value_len;
            f->ranges++;
        }
        break;
    case 6:
        if (eq_lower(h->name, "expect", 6) && h->value_len == 12 && eq_lower(v, "100-continue", 12))
            req->expect_continue = true;
        break;
    case 10:
        if (!eq_lower(h->name, "connection", 10))
            break;
        while (list_next(&v, vend, &el, &el_len)) {
            if (el_len == 5 && eq_lower(el, "close", 5))
                f->conn_close = true;
            else if (el_len == 10 && eq_lower(el, "keep-alive", 10))
                f->conn_keep_alive = true;
        }
        break;
    case 14: {
        if (!eq_lower(h->name, "content-length", 14))
            break;
        /* RFC 9112 section 6.3 lets a recipient merge identical values; a smuggling-safe server
         * refuses a second field or a list outright. */
        if (f->has_cl || h->value_len == 0)
            return -400;
        f->has_cl = true;
        int64_t n = 0;
        for (; v < vend; v++) {
            unsigned d = (unsigned)(U8(*v) - '0');
            if (d > 9 || n > (INT64_MAX - (int64_t)d) / 10)
                return -400;
            n = n * 10 + (int64_t)d;
        }
        req->content_length = n;
        break;
    }
    case 17:
        if (eq_lower(h->name, "transfer-encoding", 17)) {
            /* Several fields form one list (RFC 9110 section 5.3), so the state carries over. */
            f->has_te = true;
            while (list_next(&v, vend, &el, &el_len)) {
                if (f->te_chunked_last)
                    f->te_chunked_inner = true;
                f->te_chunked_last = el_len == 7 && eq_lower(el, "chunked", 7);
                if (!f->te_chunked_last)
                    f->te_other = true;
            }
        } else if (eq_lower(h->name, "if-modified-since", 17) && req->if_modified_since == NULL) {
            req->if_modified_since = v;
            req->if_modified_since_len = h->value_len;
        }
        break;
    }
    return 0;
}

/* Parses the complete head [p, end), which the scanner guarantees ends in CRLF CRLF with every
 * line ending in CRLF. Returns 0 or a negated status. */
static int parse_head(const char *p, const char *end, const struct corio_http_limits *lim,
                      struct corio_http_request *req, struct corio_http_header *headers, size_t cap)
{
    struct head_facts f = {0};

    memset(req, 0, sizeof(*req));
    req->content_length = -1;
    req->headers = headers;

    /* request-line = method SP request-target SP HTTP-version CRLF, single SPs only. */
    const char *m = p;
    while (IS(C_TCHAR, *p))
        p++;
    if (p == m || *p != ' ')
        return -400;
    req->method_str = m;
    req->method_len = (size_t)(p - m);
    req->method = method_of(m, req->method_len);

    const char *t = ++p;
    while (end - p >= 8 && !word_has_stop(p, 0x21))
        p += 8;
    while (IS(C_TARGET, *p))
        p++;
    if (p == t || *p != ' ')
        return -400;
    req->target = t;
    req->target_len = (size_t)(p - t);
    if (req->target_len > lim->max_target_bytes)
        return -414; /* the scanner has already caught this; kept as a guard */
    p++;

    /* Each comparison stops at the CR that ends the line, so nothing past it is read. */
    if (!(p[0] == 'H' && p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' &&
          (unsigned)(U8(p[5]) - '0') <= 9 && p[6] == '.' && (unsigned)(U8(p[7]) - '0') <= 9 &&
          p[8] == '\r' && p[9] == '\n'))
        return -400;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return -505;
    req->minor_version = p[7] - '0';
    p += 10;

    size_t max_fields = cap < lim->max_headers ? cap : lim->max_headers;
    size_t n = 0;
    for (;;) {
        if (*p == '\r') {
            /* Only the final empty line can start with CR followed by LF; see scan_head(). */
            if (p[1] != '\n')
                return -400;
            p += 2;
            break;
        }
        /* field-line = field-name ":" OWS field-value OWS CRLF. A line starting with SP or HTAB
         * is obs-fold (or whitespace before the first field), which RFC 9112 lets us reject. */
        const char *name = p;
        while (IS(C_TCHAR, *p))
            p++;
        if (p == name || *p != ':')
            return -400;
        size_t name_len = (size_t)(p - name);
        p++;
        while (is_ows(*p))
            p++;
        const char *value = p;
        while (end - p >= 8 && !word_has_stop(p, 0x20))
            p += 8;
        while (IS(C_VALUE, *p))
            p++;
        if (p[0] != '\r' || p[1] != '\n')
            return -400;
        const char *vend = p;
        while (vend > value && is_ows(vend[-1]))
            vend--;
        p += 2;

        if (n == max_fields)
            return -431;
        struct corio_http_header *h = &headers[n++];
        h->name = name;
        h->name_len = name_len;
        h->value = value;
        h->value_len = (size_t)(vend - value);
        int err = apply_field(h, req, &f);
        if (err < 0)
            return err;
    }
    req->num_headers = n;

    /* Framing and routing checks, all -400 (RFC 9112 sections 3.2 and 6.1). */
    if (f.hosts > 1 || (f.hosts == 0 && req->minor_version == 1))
        return -400;
    if (f.has_te && (req->minor_version == 0 || f.has_cl || f.te_chunked_inner))
        return -400;
    if (req->method == CORIO_HTTP_METHOD_UNKNOWN)
        return -501;
    if (f.has_te && (f.te_other || !f.te_chunked_last))
        return -501;
    if (req->content_length > lim->max_body_bytes)
        return -413;

    req->chunked = f.has_te;
    if (f.ranges != 1) {
        req->range = NULL;
        req->range_len = 0;
    }
    if (req->minor_version == 0) {
        /* RFC 9110 section 10.1.1: a 100-continue in HTTP/1.0 must be ignored. */
        req->expect_continue = false;
        req->keep_alive = f.conn_keep_alive && !f.conn_close;
    } else {
        req->keep_alive = !f.conn_close;
    }
    return 0;
}

ssize_t corio_http_parse_request(struct corio_http_parser *p, const char *buf, size_t len,
                                 const struct corio_http_limits *lim,
                                 struct corio_http_request *req, struct corio_http_header *headers,
                                 size_t nheaders)
{
    if (lim == NULL)
        lim = &default_limits;
    ssize_t ret = scan_head(p, buf, len, lim);
    if (ret == CORIO_HTTP_INCOMPLETE)
        return ret;
    size_t head_start = p->head_start;
    corio_http_parser_init(p);
    if (ret < 0)
        return ret;
    int err = parse_head(buf + head_start, buf + ret, lim, req, headers, nheaders);
    return err < 0 ? err : ret;
}

/* ---------------------------------------------------------------------------------------------
 * Chunked body decoder
 * ------------------------------------------------------------------------------------------- */

/* Decoder states, kept in corio_http_chunked.state. The chunk-size line is
 * chunk-size [ chunk-ext ] CRLF with chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ). */
enum {
    CH_SIZE_FIRST = 0, /* expecting the first hex digit of a chunk-size */
    CH_SIZE,           /* in the chunk-size */
    CH_SIZE_BWS,       /* whitespace after the chunk-size */
    CH_EXT_PRE_NAME,   /* after ';', before an extension name */
    CH_EXT_NAME,       /* in an extension name */
    CH_EXT_POST_NAME,  /* whitespace after an extension name */
    CH_EXT_PRE_VALUE,  /* after '=', before an extension value */
    CH_EXT_TOKEN,      /* in a token extension value */
    CH_EXT_QUOTED,     /* in a quoted-string extension value */
    CH_EXT_QUOTED_ESC, /* after a backslash in a quoted-string */
    CH_EXT_POST_VALUE, /* after an extension value */
    CH_SIZE_LF,        /* after the CR ending the chunk-size line */
    CH_DATA,           /* in chunk data; chunk_left bytes remain */
    CH_DATA_CR,        /* expecting the CR after chunk data */
    CH_DATA_LF,        /* expecting the LF after chunk data */
    CH_TRAILER_START,  /* at the start of a trailer line or the final empty line */
    CH_TRAILER_NAME,   /* in a trailer field name */
    CH_TRAILER_VALUE,  /* in a trailer field value */
    CH_TRAILER_LF,     /* expecting the LF ending a trailer field */
    CH_END_LF,         /* expecting the LF of the final empty line */
    CH_DONE,           /* the body is complete */
};

void corio_http_chunked_init(struct corio_http_chunked *c, const struct corio_http_limits *lim)
{
    if (lim == NULL)
        lim = &default_limits;
    memset(c, 0, sizeof(*c));
    c->max_body = lim->max_body_bytes > 0 ? (uint64_t)lim->max_body_bytes : 0;
    c->max_trailer = lim->max_head_bytes;
}

int corio_http_chunked_decode(struct corio_http_chunked *c, char *buf, size_t len, size_t *produced,
                              size_t *consumed)
{
    size_t i = 0, w = 0;
    int ret = 0;

    while (i < len) {
        if (c->state == CH_DATA) {
            /* The one bulk path: everything else is a few framing bytes per chunk. */
            size_t n = len - i;
            if (n > c->chunk_left)
                n = (size_t)c->chunk_left;
            if (w != i)
                memmove(buf + w, buf + i, n);
            w += n;
            i += n;
            c->chunk_left -= n;
            if (c->chunk_left == 0)
                c->state = CH_DATA_CR;
            continue;
        }

        char ch = buf[i];
        if (c->state < CH_DATA) {
            if (++c->line_len > CORIO_HTTP_MAX_CHUNK_LINE)
                goto bad;
        } else if (c->state >= CH_TRAILER_START && c->state < CH_DONE) {
            if (++c->line_len > c->max_trailer) {
                ret = -431;
                goto out;
            }
        }
        switch (c->state) {
        case CH_SIZE_FIRST:
        case CH_SIZE: {
            int d = hex_value[U8(ch)];
            if (d >= 0) {
                if (c->chunk_left >> 60)
                    goto bad; /* the next digit would overflow 64 bits */
                c->chunk_left = c->chunk_left << 4 | (uint64_t)d;
                c->state = CH_SIZE;
                break;
            }
            if (c->state == CH_SIZE_FIRST)
                goto bad;
            /* The size is complete: charge it against the limit before any data arrives. */
            if (c->chunk_left > c->max_body - c->total) {
                ret = -413;
                goto out;
            }
            c->total += c->chunk_left;
            if (is_ows(ch))
                c->state = CH_SIZE_BWS;
            else if (ch == ';')
                c->state = CH_EXT_PRE_NAME;
            else if (ch == '\r')
                c->state = CH_SIZE_LF;
            else
                goto bad;
            break;
        }
        case CH_SIZE_BWS:
        case CH_EXT_POST_NAME:
        case CH_EXT_POST_VALUE:
            if (is_ows(ch))
                break;
            if (ch == ';')
                c->state = CH_EXT_PRE_NAME;
            else if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (ch == '=' && c->state == CH_EXT_POST_NAME)
                c->state = CH_EXT_PRE_VALUE;
            else
                goto bad;
            break;
        case CH_EXT_PRE_NAME:
            if (IS(C_TCHAR, ch))
                c->state = CH_EXT_NAME;
            else if (!is_ows(ch))
                goto bad;
            break;
        case CH_EXT_NAME:
            if (IS(C_TCHAR, ch))
                break;
            if (is_ows(ch))
                c->state = CH_EXT_POST_NAME;
            else if (ch == '=')
                c->state = CH_EXT_PRE_VALUE;
            else if (ch == ';')
                c->state = CH_EXT_PRE_NAME;
            else if (ch == '\r')
                c->state = CH_SIZE_LF;
            else
                goto bad;
            break;
        case CH_EXT_PRE_VALUE:
            if (IS(C_TCHAR, ch))
                c->state = CH_EXT_TOKEN;
            else if (ch == '"')
                c->state = CH_EXT_QUOTED;
            else if (!is_ows(ch))
                goto bad;
            break;
        case CH_EXT_TOKEN:
            if (IS(C_TCHAR, ch))
                break;
            if (is_ows(ch))
                c->state = CH_EXT_POST_VALUE;
            else if (ch == ';')
                c->state = CH_EXT_PRE_NAME;
            else if (ch == '\r')
                c->state = CH_SIZE_LF;
            else
                goto bad;
            break;
        case CH_EXT_QUOTED:
            if (ch == '"')
                c->state = CH_EXT_POST_VALUE;
            else if (ch == '\\')
                c->state = CH_EXT_QUOTED_ESC;
            else if (!IS(C_QDTEXT, ch))
                goto bad;
            break;
        case CH_EXT_QUOTED_ESC:
            /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
            if (!IS(C_VALUE, ch))
                goto bad;
            c->state = CH_EXT_QUOTED;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                goto bad;
            c->line_len = 0;
            c->state = c->chunk_left ? CH_DATA : CH_TRAILER_START;
            break;
        case CH_DATA_CR:
            if (ch != '\r')
                goto bad;
            c->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                goto bad;
            c->state = CH_SIZE_FIRST;
            break;
        case CH_TRAILER_START:
            /* Same rules as head fields: no obs-fold, no empty name, no bare LF. */
            if (ch == '\r')
                c->state = CH_END_LF;
            else if (IS(C_TCHAR, ch))
                c->state = CH_TRAILER_NAME;
            else
                goto bad;
            break;
        case CH_TRAILER_NAME:
            if (ch == ':')
                c->state = CH_TRAILER_VALUE;
            else if (!IS(C_TCHAR, ch))
                goto bad;
            break;
        case CH_TRAILER_VALUE:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (!IS(C_VALUE, ch))
                goto bad;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                goto bad;
            c->state = CH_TRAILER_START;
            break;
        case CH_END_LF:
            if (ch != '\n')
                goto bad;
            c->state = CH_DONE;
            i++;
            goto out;
        case CH_DONE:
            goto out;
        }
        i++;
    }
out:
    if (c->state == CH_DONE && ret == 0)
        ret = 1;
    *produced = w;
    *consumed = i;
    return ret;
bad:
    ret = -400;
    goto out;
}

/* ---------------------------------------------------------------------------------------------
 * Response helpers
 * ------------------------------------------------------------------------------------------- */

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

static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const day_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a proleptic Gregorian date; exact for any int64 year in range. The
 * year is shifted to start in March so that the leap day is the last day of the year. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil(). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static inline void put2(char *s, int v)
{
    s[0] = (char)('0' + v / 10);
    s[1] = (char)('0' + v % 10);
}

int corio_http_format_date(char *buf, size_t cap, time_t t)
{
    if (cap < CORIO_HTTP_DATE_LEN)
        return -ENOSPC;
    int64_t secs = (int64_t)t;
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return -EINVAL;
    int wday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */

    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    memcpy(buf, day_names[wday], 3);
    memcpy(buf + 3, ", ", 2);
    put2(buf + 5, d);
    buf[7] = ' ';
    memcpy(buf + 8, month_names[m - 1], 3);
    buf[11] = ' ';
    put2(buf + 12, (int)(y / 100));
    put2(buf + 14, (int)(y % 100));
    buf[16] = ' ';
    put2(buf + 17, (int)(rem / 3600));
    buf[19] = ':';
    put2(buf + 20, (int)(rem / 60 % 60));
    buf[22] = ':';
    put2(buf + 23, (int)(rem % 60));
    memcpy(buf + 25, " GMT", 4);
    if (cap > CORIO_HTTP_DATE_LEN)
        buf[CORIO_HTTP_DATE_LEN] = '\0';
    return CORIO_HTTP_DATE_LEN;
}

/* Reads exactly @n decimal digits at @s. Returns the value or -1. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned)(U8(s[i]) - '0');
        if (d > 9)
            return -1;
        v = v * 10 + (int)d;
    }
    return v;
}

/* Matches a three-letter month name. Returns 1..12 or -1. */
static int month_of(const char *s)
{
    for (int i = 0; i < 12; i++) {
        if (memcmp(s, month_names[i], 3) == 0)
            return i + 1;
    }
    return -1;
}

static bool is_day_name(const char *s)
{
    for (int i = 0; i < 7; i++) {
        if (memcmp(s, day_names[i], 3) == 0)
            return true;
    }
    return false;
}

/* Reads "hh:mm:ss" at @s into seconds of the day. Returns them or -1. */
static int time_of_day(const char *s)
{
    if (s[2] != ':' || s[5] != ':')
        return -1;
    int h = digits(s, 2), mi = digits(s + 3, 2), sec = digits(s + 6, 2);
    /* The grammar allows second 60 for a leap second; it folds into the next minute. */
    if (h < 0 || mi < 0 || sec < 0 || h > 23 || mi > 59 || sec > 60)
        return -1;
    return h * 3600 + mi * 60 + sec;
}

int corio_http_parse_date(const char *s, size_t len, time_t *out)
{
    int day, mon, year, tod;

    if (len == 29 && s[3] == ',') {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        if (!is_day_name(s) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
            memcmp(s + 25, " GMT", 4) != 0)
            return -EINVAL;
        day = digits(s + 5, 2);
        mon = month_of(s + 8);
        year = digits(s + 12, 4);
        tod = time_of_day(s + 17);
    } else if (len == 24 && s[3] == ' ') {
        /* asctime: "Sun Nov  6 08:49:37 1994", day as 2DIGIT or SP DIGIT */
        if (!is_day_name(s) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
            return -EINVAL;
        mon = month_of(s + 4);
        day = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
        tod = time_of_day(s + 11);
        year = digits(s + 20, 4);
    } else {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
        int wd;
        size_t n = 0;
        for (wd = 0; wd < 7; wd++) {
            n = strlen(day_long[wd]); /* a static name, not the input */
            if (len > n && memcmp(s, day_long[wd], n) == 0 && s[n] == ',')
                break;
        }
        if (wd == 7 || len != n + 24)
            return -EINVAL;
        s += n + 1;
        if (s[0] != ' ' || s[3] != '-' || s[7] != '-' || s[10] != ' ' ||
            memcmp(s + 19, " GMT", 4) != 0)
            return -EINVAL;
        day = digits(s + 1, 2);
        mon = month_of(s + 4);
        year = digits(s + 8, 2);
        if (year >= 0)
            year += year < 70 ? 2000 : 1900;
        tod = time_of_day(s + 11);
    }
    if (day < 1 || mon < 0 || year < 0 || tod < 0)
        return -EINVAL;
    static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[mon - 1] || (mon == 2 && day == 29 && !leap))
        return -EINVAL;
    *out = (time_t)(days_from_civil(year, mon, day) * 86400 + tod);
    return 0;
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

/* Extension to type. A linear scan is enough: a server looks a type up once per file it opens. */
static const struct {
    char ext[6];
    const char *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"xml", "text/xml; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"mp4", "video/mp4"},
};

const char *corio_http_mime_type(const char *path, size_t len)
{
    size_t dot = len;
    while (dot > 0 && path[dot - 1] != '.' && path[dot - 1] != '/')
        dot--;
    if (dot == 0 || path[dot - 1] != '.')
        return "application/octet-stream";
    size_t n = len - dot;
    char ext[6];
    if (n == 0 || n >= sizeof(ext))
        return "application/octet-stream";
    for (size_t i = 0; i < n; i++)
        ext[i] = (char)lower[U8(path[dot + i])];
    ext[n] = '\0';
    for (size_t i = 0; i < sizeof(mime_types) / sizeof(mime_types[0]); i++) {
        if (memcmp(ext, mime_types[i].ext, n + 1) == 0)
            return mime_types[i].type;
    }
    return "application/octet-stream";
}

/* Reads decimal digits at *@pp, saturating at INT64_MAX: a huge position is still a position.
 * Returns false if there is no digit. */
static bool range_number(const char **pp, const char *end, int64_t *v)
{
    const char *s = *pp;
    int64_t n = 0;
    while (s < end && (unsigned)(U8(*s) - '0') <= 9) {
        int d = *s - '0';
        n = n > (INT64_MAX - d) / 10 ? INT64_MAX : n * 10 + d;
        s++;
    }
    if (s == *pp)
        return false;
    *pp = s;
    *v = n;
    return true;
}

int corio_http_parse_range(const char *s, size_t len, int64_t size, int64_t *first, int64_t *last)
{
    const char *end = s + len;
    int64_t a = -1, b = -1;

    if (len < 6 || !eq_lower(s, "bytes", 5) || s[5] != '=')
        return CORIO_HTTP_RANGE_IGNORE;
    s += 6;
    if (memchr(s, ',', (size_t)(end - s)) != NULL)
        return CORIO_HTTP_RANGE_IGNORE; /* several ranges: we only serve one */
    while (s < end && is_ows(*s))
        s++;
    if (s < end && *s != '-' && !range_number(&s, end, &a))
        return CORIO_HTTP_RANGE_IGNORE;
    if (s == end || *s != '-')
        return CORIO_HTTP_RANGE_IGNORE;
    s++;
    if (s < end && !is_ows(*s) && !range_number(&s, end, &b))
        return CORIO_HTTP_RANGE_IGNORE;
    while (s < end && is_ows(*s))
        s++;
    if (s != end || (a < 0 && b < 0))
        return CORIO_HTTP_RANGE_IGNORE;

    if (a < 0) {
        /* suffix-range: the last b bytes */
        if (b == 0 || size <= 0)
            return -416;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return CORIO_HTTP_RANGE_PARTIAL;
    }
    if (b >= 0 && b < a)
        return CORIO_HTTP_RANGE_IGNORE; /* invalid range-spec, RFC 9110 section 14.1.1 */
    if (a >= size)
        return -416;
    *first = a;
    *last = b < 0 || b >= size ? size - 1 : b;
    return CORIO_HTTP_RANGE_PARTIAL;
}

ssize_t corio_http_decode_path(const char *target, size_t len, char *out, size_t cap)
{
    const char *s = target, *end = target + len;

    for (const char *q = s; q < end; q++) {
        if (*q == '?' || *q == '#') {
            end = q;
            break;
        }
    }
    /* absolute-form (RFC 9112 section 3.2.2): drop the scheme and authority. */
    size_t skip = 0;
    if (end - s >= 7 && eq_lower(s, "http://", 7))
        skip = 7;
    else if (end - s >= 8 && eq_lower(s, "https://", 8))
        skip = 8;
    if (skip) {
        s += skip;
        const char *slash = memchr(s, '/', (size_t)(end - s));
        if (slash == NULL) {
            if (cap < 2)
                return -ENOSPC;
            out[0] = '/';
            out[1] = '\0';
            return 1;
        }
        s = slash;
    }
    if (s == end || *s != '/')
        return -400;

    /* Invariant: w <= cap - 1, leaving room for the NUL; out[0..w) ends in '/' between
     * segments. */
    if (cap < 2)
        return -ENOSPC;
    size_t w = 0;
    out[w++] = '/';
    while (s < end) {
        while (s < end && *s == '/')
            s++;
        size_t seg = w;
        while (s < end && *s != '/') {
            char c = *s++;
            if (c == '%') {
                int hi, lo;
                if (end - s < 2 || (hi = hex_value[U8(s[0])]) < 0 || (lo = hex_value[U8(s[1])]) < 0)
                    return -400;
                c = (char)(hi << 4 | lo);
                s += 2;
                if (c == '/')
                    return -403;
            }
            if (c == '\0')
                return -400;
            if (w + 1 >= cap)
                return -ENOSPC;
            out[w++] = c;
        }
        size_t n = w - seg;
        if (n == 2 && out[seg] == '.' && out[seg + 1] == '.')
            return -403;
        if (n == 1 && out[seg] == '.')
            w = seg;
        else if (n > 0 && s < end) {
            if (w + 1 >= cap)
                return -ENOSPC;
            out[w++] = '/';
        }
    }
    out[w] = '\0';
    return (ssize_t)w;
}
