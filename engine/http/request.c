/* corio http: the request head parser, corio_http_parse_request(), and the lookups of header
 * fields in a parsed request (corio_http_header_get(), corio_http_header_join()).
 *
 * Written from RFC 9110 and RFC 9112. The head parser works in two steps. A scanner looks only at
 * bytes it has not seen before, finds the blank line that ends the head, and rejects a bare LF,
 * an oversized head or an oversized request-target as soon as the offending byte arrives. Once
 * the head is complete, a single pass over it checks the grammar with the character tables of
 * tables.c and fills the request. The parse pass relies on the scanner's guarantees: every line
 * ends in CRLF and the head ends in CRLF CRLF, so its loops stop at a CR without bounds checks
 * because CR is in none of the character classes.
 *
 * Most heads arrive whole, in one read, and then the scan is work done twice. So the first call
 * for a head whose bytes end in LF tries the parse pass alone over all of them, with that LF as
 * the stop that bounds its loops (LF is in no character class either); it keeps the result only
 * if the pass accepts the head whole and the scanner could not have objected, and otherwise
 * leaves no trace and takes the two steps (parse_whole()).
 */
#include "parser.h"

#include <errno.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

void corio_http_parser_init(struct corio_http_parser *p)
{
    memset(p, 0, sizeof(*p));
}

#define BYTES_01 0x0101010101010101ull
#define BYTES_80 0x8080808080808080ull

/* The stops among the 8 bytes at @p: bytes below @lo (at most 0x80) and DEL, each flagged by
 * its top bit, tested a word at a time. A byte b < lo borrows into its top bit in
 * (x - lo * BYTES_01) while ~x keeps that bit only where b < 0x80 (the standard "has byte less
 * than" word trick). A borrow can only cause a false flag in a byte more significant than a
 * true one, so on a little-endian machine the first flagged byte in memory order is a stop. */
static inline uint64_t word_stops(const char *p, uint64_t lo)
{
    uint64_t x, del;
    memcpy(&x, p, sizeof(x)); /* an unaligned load; compilers emit one mov */
    del = x ^ (BYTES_01 * 0x7f);
    return (((x - BYTES_01 * lo) & ~x) | ((del - BYTES_01) & ~del)) & BYTES_80;
}

/* Moves @p over bytes that are at least @lo and not DEL, a word at a time while a word is left
 * before @end. Returns where it stopped: at the first stop, or at most 7 bytes before it when
 * fewer than 8 bytes were left or the machine is big-endian. The parse pass uses it on targets
 * and values, runs of VCHAR and obs-text, and goes on a byte at a time from there. Where SSE2 is
 * there (every x86-64), 16 bytes at a time first: most targets and values end within the first
 * 16, which then cost one test instead of two or three. */
static inline const char *skip_words(const char *p, const char *end, uint64_t lo)
{
#ifdef __SSE2__
    const __m128i min = _mm_set1_epi8((char)lo), del = _mm_set1_epi8(0x7f);
    for (; end - p >= 16; p += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* x >= lo unsigned where max(x, lo) == x; a stop is below lo or DEL. */
        __m128i ok =
            _mm_andnot_si128(_mm_cmpeq_epi8(x, del), _mm_cmpeq_epi8(_mm_max_epu8(x, min), x));
        unsigned m = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
        if (m != 0)
            return p + __builtin_ctz(m);
    }
#endif
    for (; end - p >= 8; p += 8) {
        uint64_t m = word_stops(p, lo);
        if (m == 0)
            continue;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        p += __builtin_ctzll(m) / 8;
#endif
        break;
    }
    return p;
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
 * once the empty line is found, -EAGAIN, or -EBADMSG (bare LF), -ENAMETOOLONG or -E2BIG. */
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
                    return -EBADMSG;
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
                return -ENAMETOOLONG;
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
                return -EBADMSG;
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
            return -EBADMSG;
        p->state = SCAN_FIELDS;
        p->line_start = ++i;
    }
    p->scanned = i;
    return len > lim->max_head_bytes ? -E2BIG : -EAGAIN;
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

/* Whether the @n bytes at @s, all field-name or field-value bytes, are the literal @lc in any
 * case, where @lc is lowercase letters, digits and '-'. Each of those has bit 0x20 set, and the
 * only other byte that gives it when that bit is set is its capital, or, for a digit or '-', a
 * control byte (0x10..0x19, CR) that no name or value holds; so setting the bit in every byte
 * compares exactly, 8 or 4 bytes at a time. @n is a constant at every call, so the loads fold. */
static inline bool eq_token(const char *s, const char *lc, size_t n)
{
    uint64_t a, b;
    uint32_t x, y;
    for (; n >= 8; s += 8, lc += 8, n -= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, lc, 8);
        if ((a | BYTES_01 * 0x20) != b)
            return false;
    }
    if (n >= 4) {
        /* The first 4 bytes and the last 4, which may overlap. */
        memcpy(&x, s, 4);
        memcpy(&y, lc, 4);
        if ((x | 0x20202020u) != y)
            return false;
        memcpy(&x, s + n - 4, 4);
        memcpy(&y, lc + n - 4, 4);
        return (x | 0x20202020u) == y;
    }
    for (size_t i = 0; i < n; i++) {
        if ((U8(s[i]) | 0x20) != U8(lc[i]))
            return false;
    }
    return true;
}

/* What the parse pass learns from the fields with meaning to the server. */
struct head_facts {
    unsigned hosts;        /* Host fields seen */
    unsigned ranges;       /* Range fields seen */
    bool has_cl;           /* a Content-Length field was seen */
    bool has_te;           /* a Transfer-Encoding field was seen */
    bool te_chunked_last;  /* the last transfer coding so far is chunked */
    bool te_chunked_inner; /* chunked was followed by another coding: -EBADMSG */
    bool te_other;         /* a coding other than chunked was seen: -EOPNOTSUPP */
    bool conn_close;       /* Connection lists "close" */
    bool conn_keep_alive;  /* Connection lists "keep-alive" */
};

/* Applies one field whose name may matter. Dispatching on the name length first keeps the cost
 * of the many fields that do not matter to one switch. Returns 0 or -EBADMSG. */
static int apply_field(const struct corio_http_header *h, struct corio_http_request *req,
                       struct head_facts *f)
{
    const char *v = h->value, *vend = h->value + h->value_len;
    const char *el;
    size_t el_len;

    switch (h->name_len) {
    case 4:
        if (eq_token(h->name, "host", 4)) {
            req->host = v;
            req->host_len = h->value_len;
            f->hosts++;
        }
        break;
    case 5:
        if (eq_token(h->name, "range", 5)) {
            req->range = v;
            req->range_len = h->value_len;
            f->ranges++;
        }
        break;
    case 6:
        if (eq_token(h->name, "expect", 6) && h->value_len == 12 && eq_token(v, "100-continue", 12))
            req->expect_continue = true;
        break;
    case 10:
        if (!eq_token(h->name, "connection", 10))
            break;
        while (list_next(&v, vend, &el, &el_len)) {
            if (el_len == 5 && eq_token(el, "close", 5))
                f->conn_close = true;
            else if (el_len == 10 && eq_token(el, "keep-alive", 10))
                f->conn_keep_alive = true;
        }
        break;
    case 14: {
        if (!eq_token(h->name, "content-length", 14))
            break;
        /* RFC 9112 section 6.3 lets a recipient merge identical values; a smuggling-safe server
         * refuses a second field or a list outright. */
        if (f->has_cl || h->value_len == 0)
            return -EBADMSG;
        f->has_cl = true;
        int64_t n = 0;
        for (; v < vend; v++) {
            unsigned d = (unsigned)(U8(*v) - '0');
            if (d > 9 || n > (INT64_MAX - (int64_t)d) / 10)
                return -EBADMSG;
            n = n * 10 + (int64_t)d;
        }
        req->content_length = n;
        break;
    }
    case 17:
        if (eq_token(h->name, "transfer-encoding", 17)) {
            /* Several fields form one list (RFC 9110 section 5.3), so the state carries over. */
            f->has_te = true;
            while (list_next(&v, vend, &el, &el_len)) {
                if (f->te_chunked_last)
                    f->te_chunked_inner = true;
                f->te_chunked_last = el_len == 7 && eq_token(el, "chunked", 7);
                if (!f->te_chunked_last)
                    f->te_other = true;
            }
        } else if (eq_token(h->name, "if-modified-since", 17) && req->if_modified_since == NULL) {
            req->if_modified_since = v;
            req->if_modified_since_len = h->value_len;
        }
        break;
    }
    return 0;
}

/* Parses the request-line at *@pp into @req and moves *@pp past its CRLF.
 * request-line = method SP request-target SP HTTP-version CRLF, single SPs only.
 * Returns 0 or -errno. */
static int parse_request_line(const char **pp, const char *end, const struct corio_http_limits *lim,
                              struct corio_http_request *req)
{
    const char *p = *pp;
    const char *m = p;
    if (end - p >= 4 && memcmp(p, "GET ", 4) == 0) {
        /* The method of most requests, known without the loop and the lookup. */
        p += 3;
        req->method = CORIO_HTTP_GET;
    } else {
        while (IS(C_TCHAR, *p))
            p++;
        if (p == m || *p != ' ')
            return -EBADMSG;
        req->method = method_of(m, (size_t)(p - m));
    }
    req->method_str = m;
    req->method_len = (size_t)(p - m);

    const char *t = ++p;
    p = skip_words(p, end, 0x21);
    while (IS(C_TARGET, *p))
        p++;
    if (p == t || *p != ' ')
        return -EBADMSG;
    req->target = t;
    req->target_len = (size_t)(p - t);
    if (req->target_len > lim->max_target_bytes)
        return -ENAMETOOLONG; /* the scanner catches it first; parse_whole() declines here */
    p++;

    /* The two versions served, a word compare each where the bytes are there to load. */
    if (end - p >= 10 && p[8] == '\r' && p[9] == '\n' &&
        (memcmp(p, "HTTP/1.1", 8) == 0 || memcmp(p, "HTTP/1.0", 8) == 0)) {
        req->minor_version = p[7] - '0';
        *pp = p + 10;
        return 0;
    }
    /* Each comparison stops at the CR that ends the line, so nothing past it is read. */
    if (!(p[0] == 'H' && p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' &&
          (unsigned)(U8(p[5]) - '0') <= 9 && p[6] == '.' && (unsigned)(U8(p[7]) - '0') <= 9 &&
          p[8] == '\r' && p[9] == '\n'))
        return -EBADMSG;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return -EPROTONOSUPPORT;
    req->minor_version = p[7] - '0';
    *pp = p + 10;
    return 0;
}

/* Parses the field line at *@pp, which does not start with CR, into @h and moves *@pp past its
 * CRLF. field-line = field-name ":" OWS field-value OWS CRLF. A line starting with SP or HTAB is
 * obs-fold (or whitespace before the first field), which RFC 9112 lets us reject. The request and
 * the response parsers share it, so that both judge fields alike. Returns 0 or -EBADMSG. */
static inline __attribute__((always_inline)) int field_line(const char **pp, const char *end,
                                                            struct corio_http_header *h)
{
    const char *p = *pp;
    const char *name = p;
    while (IS(C_TCHAR, *p))
        p++;
    if (p == name || *p != ':')
        return -EBADMSG;
    size_t name_len = (size_t)(p - name);
    p++;
    while (is_ows(*p))
        p++;
    const char *value = p;
    p = skip_words(p, end, 0x20);
    while (IS(C_VALUE, *p))
        p++;
    if (p[0] != '\r' || p[1] != '\n')
        return -EBADMSG;
    const char *vend = p;
    while (vend > value && is_ows(vend[-1]))
        vend--;
    h->name = name;
    h->name_len = name_len;
    h->value = value;
    h->value_len = (size_t)(vend - value);
    *pp = p + 2;
    return 0;
}

/* Parses the field lines at *@pp up to and including the empty line that ends the head into
 * @headers (at most @max_fields), their count in *@count, and moves *@pp past that line. With a
 * @req, applies each field to it, noting what matters in @f; both parsers inline it, the response
 * parser with NULL, which drops that part. Returns 0, -errno, or -EAGAIN if @end comes first (only
 * parse_whole() can meet that). */
static inline __attribute__((always_inline)) int
field_lines(const char **pp, const char *end, struct corio_http_header *headers, size_t max_fields,
            size_t *count, struct corio_http_request *req, struct head_facts *f)
{
    const char *p = *pp;
    size_t n = 0;
    for (;;) {
        if (p == end)
            return -EAGAIN;
        if (*p == '\r') {
            /* Only the final empty line can start with CR followed by LF; see scan_head(). */
            if (p[1] != '\n')
                return -EBADMSG;
            break;
        }
        struct corio_http_header fl;
        int err = field_line(&p, end, &fl);
        if (err)
            return err;
        if (n == max_fields)
            return -E2BIG;
        struct corio_http_header *h = &headers[n++];
        *h = fl;
        if (req) {
            err = apply_field(h, req, f);
            if (err < 0)
                return err;
        }
    }
    *count = n;
    *pp = p + 2;
    return 0;
}

/* Parses the field lines at *@pp up to and including the empty line that ends the head, into
 * @headers (room for @cap) and @req, noting what matters in @f, and moves *@pp past that line.
 * Returns what field_lines() does. */
static int parse_fields(const char **pp, const char *end, const struct corio_http_limits *lim,
                        struct corio_http_request *req, struct corio_http_header *headers,
                        size_t cap, struct head_facts *f)
{
    size_t max_fields = cap < lim->max_headers ? cap : lim->max_headers;
    return field_lines(pp, end, headers, max_fields, &req->num_headers, req, f);
}

int corio__http_parse_field_lines(const char **pp, const char *end,
                                  struct corio_http_header *headers, size_t cap, size_t *n)
{
    int err = field_lines(pp, end, headers, cap, n, NULL, NULL);
    return err == -EAGAIN ? -EBADMSG : err;
}

/* Applies the framing and routing rules (RFC 9112 sections 3.2 and 6.1) to the parsed head and
 * sets the fields of @req that depend on several header fields. Returns 0 or -errno. */
static int finish_head(struct corio_http_request *req, const struct head_facts *f,
                       const struct corio_http_limits *lim)
{
    if (f->hosts > 1 || (f->hosts == 0 && req->minor_version == 1))
        return -EBADMSG;
    if (f->has_te && (req->minor_version == 0 || f->has_cl || f->te_chunked_inner))
        return -EBADMSG;
    if (req->method == CORIO_HTTP_METHOD_UNKNOWN)
        return -EOPNOTSUPP;
    if (f->has_te && (f->te_other || !f->te_chunked_last))
        return -EOPNOTSUPP;
    if (req->content_length > lim->max_body_bytes)
        return -EMSGSIZE;

    req->chunked = f->has_te;
    if (f->ranges != 1) {
        req->range = NULL;
        req->range_len = 0;
    }
    if (req->minor_version == 0) {
        /* RFC 9110 section 10.1.1: a 100-continue in HTTP/1.0 must be ignored. */
        req->expect_continue = false;
        req->keep_alive = f->conn_keep_alive && !f->conn_close;
    } else {
        req->keep_alive = !f->conn_close;
    }
    return 0;
}

/* Parses the head at @start, which ends before @end: with the scanner's guarantees when @end is
 * where the scanner found the head to end, or else as parse_whole() says. Returns the head's
 * length or -errno. */
static ssize_t parse_head(const char *start, const char *end, const struct corio_http_limits *lim,
                          struct corio_http_request *req, struct corio_http_header *headers,
                          size_t cap)
{
    struct head_facts f = {0};
    const char *p = start;

    memset(req, 0, sizeof(*req));
    req->content_length = -1;
    req->headers = headers;

    int err = parse_request_line(&p, end, lim, req);
    if (err)
        return err;
    err = parse_fields(&p, end, lim, req, headers, cap, &f);
    if (err)
        return err;
    err = finish_head(req, &f, lim);
    return err < 0 ? err : p - start;
}

/* The two steps: scans what is new, and once the head is complete, parses it. Kept out of line,
 * so that the call that parse_whole() answers does not pay for the scanner's registers.
 * Returns what corio_http_parse_request() does. */
static __attribute__((noinline)) ssize_t
parse_scanned(struct corio_http_parser *p, const char *buf, size_t len,
              const struct corio_http_limits *lim, struct corio_http_request *req,
              struct corio_http_header *headers, size_t nheaders)
{
    ssize_t ret = scan_head(p, buf, len, lim);
    if (ret == -EAGAIN)
        return ret;
    size_t head_start = p->head_start;
    corio_http_parser_init(p);
    if (ret < 0)
        return ret;
    ssize_t n = parse_head(buf + head_start, buf + ret, lim, req, headers, nheaders);
    return n < 0 ? n : ret;
}

/* Header fields parse_whole() keeps aside: enough for most clients' heads (a browser sends 10 to
 * 20); a head with more takes the two steps. */
#define WHOLE_MAX_FIELDS 24

/* Parses the head at the start of @buf[0..@len) in one pass, if it is whole there, and
 * @buf[@len - 1] is LF. Every loop of the parse pass stops at a byte outside its class, LF is in
 * none, a check past a stop reads on only after a CR, which is not LF, and the word loads look
 * at @end first; so with that LF last nothing is read past @len. What the pass accepts has no
 * leading empty line, every line ends in CRLF with no LF inside, and the target is within its
 * limit; with the head within max_head_bytes, the scanner would find the same end and the parse
 * pass over it give the same request. Anything else is left to the two steps, the judges of errors
 * and of heads not yet whole. With @scratch, @req and @headers are the caller's scratch until a
 * head parses and the pass writes them directly; else it writes to local storage first, so that
 * a head declined here leaves @req and @headers as the two steps would. Inlined into each caller,
 * for its constant @scratch. Returns what corio_http_parse_request() does. */
static inline __attribute__((always_inline)) ssize_t
parse_whole(struct corio_http_parser *p, const char *buf, size_t len,
            const struct corio_http_limits *lim, struct corio_http_request *req,
            struct corio_http_header *headers, size_t cap, bool scratch)
{
    if (scratch) {
        ssize_t n = parse_head(buf, buf + len, lim, req, headers, cap);
        if (n < 0 || (size_t)n > lim->max_head_bytes)
            return parse_scanned(p, buf, len, lim, req, headers, cap);
        return n;
    }
    struct corio_http_header fields[WHOLE_MAX_FIELDS];
    struct corio_http_request r;
    ssize_t n = parse_head(buf, buf + len, lim, &r, fields,
                           cap < WHOLE_MAX_FIELDS ? cap : WHOLE_MAX_FIELDS);
    if (n < 0 || (size_t)n > lim->max_head_bytes)
        return parse_scanned(p, buf, len, lim, req, headers, cap);
    if (r.num_headers > 0) /* @headers may be NULL when there is no room */
        memcpy(headers, fields, r.num_headers * sizeof(fields[0]));
    *req = r;
    req->headers = headers;
    return n;
}

/* Nothing scanned yet: the first call with bytes of this head (scan_head() moves on by at least a
 * byte whenever it returns -EAGAIN for some), so one try at most per head, and a head fed a byte
 * at a time still costs O(n). Returns whether parse_whole() may try @buf[0..@len). */
static inline bool whole_may_try(const struct corio_http_parser *p, const char *buf, size_t len)
{
    return p->scanned == 0 && len > 0 && buf[len - 1] == '\n';
}

ssize_t corio_http_parse_request(struct corio_http_parser *p, const char *buf, size_t len,
                                 const struct corio_http_limits *lim,
                                 struct corio_http_request *req, struct corio_http_header *headers,
                                 size_t nheaders)
{
    if (lim == NULL)
        lim = &corio__http_default_limits;
    if (whole_may_try(p, buf, len))
        return parse_whole(p, buf, len, lim, req, headers, nheaders, false);
    return parse_scanned(p, buf, len, lim, req, headers, nheaders);
}

ssize_t corio__http_parse_request_scratch(struct corio_http_parser *p, const char *buf, size_t len,
                                          const struct corio_http_limits *lim,
                                          struct corio_http_request *req,
                                          struct corio_http_header *headers, size_t nheaders)
{
    if (whole_may_try(p, buf, len))
        return parse_whole(p, buf, len, lim, req, headers, nheaders, true);
    return parse_scanned(p, buf, len, lim, req, headers, nheaders);
}

/* ---------------------------------------------------------------------------------------------
 * Header lookups
 * ------------------------------------------------------------------------------------------- */

/* Returns the next field of @req from index *@i on named @name (@nl bytes), advancing *@i past
 * it, or NULL after the last one. */
static const struct corio_http_header *next_named(const struct corio_http_request *req, size_t *i,
                                                  const char *name, size_t nl)
{
    for (; *i < req->num_headers; (*i)++) {
        const struct corio_http_header *h = &req->headers[*i];
        if (h->name_len == nl && eq_nocase(h->name, name, nl)) {
            (*i)++;
            return h;
        }
    }
    return NULL;
}

int corio_http_header_get(const struct corio_http_request *req, const char *name,
                          const char **value, size_t *len)
{
    size_t i = 0;
    const struct corio_http_header *h = next_named(req, &i, name, strlen(name));
    if (h == NULL)
        return -ENOENT;
    *value = h->value;
    *len = h->value_len;
    return 0;
}

ssize_t corio_http_header_join(const struct corio_http_request *req, const char *name, char *buf,
                               size_t cap)
{
    size_t nl = strlen(name), i = 0, w = 0;
    bool found = false;
    const struct corio_http_header *h;
    while ((h = next_named(req, &i, name, nl)) != NULL) {
        found = true;
        if (h->value_len == 0)
            continue; /* an empty field adds no list element */
        size_t sep = w > 0 ? 2 : 0;
        if (h->value_len + sep >= cap - w)
            return -ENOSPC;
        memcpy(buf + w, ", ", sep);
        memcpy(buf + w + sep, h->value, h->value_len);
        w += sep + h->value_len;
    }
    if (!found)
        return -ENOENT;
    if (cap == 0)
        return -ENOSPC;
    buf[w] = '\0';
    return (ssize_t)w;
}
