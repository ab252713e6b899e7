/* libFuzzer target for the HTTP parser files (engine/http/, all but server.c).
 *
 * Each input is used six ways: as a request head (with the default limits and with small ones
 * that the corpus can reach), as a chunked body, as the body after a chunked head, as a request
 * whose header fields and query are looked up, as a response head (and the chunked body after
 * it), and as the argument of the small helpers. Heads and
 * bodies are fed whole, split at every point into two calls, and one byte at a time, each piece an
 * exact-size heap copy so that ASan sees any read past the bytes given; every way must give the
 * same result. Any disagreement or broken invariant aborts, which libFuzzer reports as a crash.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Iengine/http
 *        engine/http/{tables,request,chunked,response,response_head,date,mime,range,path}.c
 *        tests/fuzz/fuzz_http_parser.c; or with tests/fuzz/replay_main.c and any compiler. */
#include "parser.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Splitting at every point costs O(n^2); longer inputs add little over what shorter ones reach. */
#define MAX_INPUT 2048
#define NHDR 72

static void fail(const char *what, int line)
{
    fprintf(stderr, "fuzz_http_parser: check failed at line %d: %s\n", line, what);
    abort();
}

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            fail(#c, __LINE__);                                                                    \
    } while (0)

/* A parse result reduced to offsets, comparable across buffers. */
struct summary {
    ssize_t ret;
    int method;
    size_t method_off, method_len, target_off, target_len;
    int minor_version;
    size_t num_headers;
    size_t hdr[NHDR][4];
    int64_t content_length;
    int chunked, keep_alive, expect_continue;
    ssize_t host_off, ims_off, range_off;
    size_t host_len, ims_len, range_len;
};

static char *dup_exact(const uint8_t *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    CHECK(b != NULL);
    if (n)
        memcpy(b, s, n);
    return b;
}

static bool inside(const char *base, size_t len, const char *p, size_t n)
{
    return p >= base && p <= base + len && n <= (size_t)(base + len - p);
}

static ssize_t off_or_neg(const char *base, const char *p)
{
    return p ? p - base : -1;
}

/* Checks what a successful parse promises, then records it as offsets. */
static void summarize(struct summary *s, ssize_t r, const char *b, size_t n,
                      const struct corio_http_limits *lim, const struct corio_http_request *req)
{
    memset(s, 0, sizeof(*s));
    s->ret = r;
    CHECK(r == -EAGAIN || r == -EBADMSG || r == -EMSGSIZE || r == -ENAMETOOLONG || r == -E2BIG ||
          r == -EOPNOTSUPP || r == -EPROTONOSUPPORT || r > 0);
    CHECK(r > 0 || r == -EAGAIN || corio_http_status((int)r) != 400 || r == -EBADMSG);
    if (r <= 0)
        return;
    size_t len = (size_t)r;
    CHECK(len <= n && len <= lim->max_head_bytes);
    CHECK(b[len - 1] == '\n' && b[len - 2] == '\r' && b[len - 3] == '\n' && b[len - 4] == '\r');
    CHECK(req->method != CORIO_HTTP_METHOD_UNKNOWN);
    CHECK(inside(b, len, req->method_str, req->method_len) && req->method_len > 0);
    CHECK(inside(b, len, req->target, req->target_len) && req->target_len > 0);
    CHECK(req->target_len <= lim->max_target_bytes);
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    CHECK(req->num_headers <= lim->max_headers && req->num_headers <= NHDR);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct corio_http_header *h = &req->headers[i];
        CHECK(inside(b, len, h->name, h->name_len) && h->name_len > 0);
        CHECK(inside(b, len, h->value, h->value_len));
        CHECK(memchr(h->name, ':', h->name_len) == NULL);
        CHECK(memchr(h->value, '\r', h->value_len) == NULL);
        CHECK(memchr(h->value, '\n', h->value_len) == NULL);
        if (h->value_len) {
            CHECK(h->value[0] != ' ' && h->value[0] != '\t');
            CHECK(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
        }
    }
    CHECK(req->content_length >= -1 && req->content_length <= lim->max_body_bytes);
    CHECK(!req->chunked || req->content_length == -1);
    CHECK(!req->chunked || req->minor_version == 1);
    CHECK(req->minor_version == 0 || req->host != NULL);
    CHECK(req->host == NULL || inside(b, len, req->host, req->host_len));
    CHECK(req->range == NULL || inside(b, len, req->range, req->range_len));
    CHECK(req->if_modified_since == NULL ||
          inside(b, len, req->if_modified_since, req->if_modified_since_len));

    s->method = (int)req->method;
    s->method_off = (size_t)(req->method_str - b);
    s->method_len = req->method_len;
    s->target_off = (size_t)(req->target - b);
    s->target_len = req->target_len;
    s->minor_version = req->minor_version;
    s->num_headers = req->num_headers;
    for (size_t i = 0; i < req->num_headers; i++) {
        s->hdr[i][0] = (size_t)(req->headers[i].name - b);
        s->hdr[i][1] = req->headers[i].name_len;
        s->hdr[i][2] = (size_t)(req->headers[i].value - b);
        s->hdr[i][3] = req->headers[i].value_len;
    }
    s->content_length = req->content_length;
    s->chunked = req->chunked;
    s->keep_alive = req->keep_alive;
    s->expect_continue = req->expect_continue;
    s->host_off = off_or_neg(b, req->host);
    s->host_len = req->host_len;
    s->ims_off = off_or_neg(b, req->if_modified_since);
    s->ims_len = req->if_modified_since_len;
    s->range_off = off_or_neg(b, req->range);
    s->range_len = req->range_len;
}

/* One parse call on an exact-size copy of @data[0..@n), through the server's call if @scratch
 * (its request and fields are scratch until a head parses). */
static ssize_t feed_as(bool scratch, struct corio_http_parser *p, const uint8_t *data, size_t n,
                       const struct corio_http_limits *lim, struct summary *out)
{
    struct corio_http_header h[NHDR];
    struct corio_http_request req;
    char *b = dup_exact(data, n);
    ssize_t r = scratch ? corio__http_parse_request_scratch(p, b, n, lim, &req, h, NHDR)
                        : corio_http_parse_request(p, b, n, lim, &req, h, NHDR);
    summarize(out, r, b, n, lim, &req);
    free(b);
    return r;
}

static ssize_t feed(struct corio_http_parser *p, const uint8_t *data, size_t n,
                    const struct corio_http_limits *lim, struct summary *out)
{
    return feed_as(false, p, data, n, lim, out);
}

/* Parses whole (also through the server's call), at every split and byte by byte; all must
 * agree. Returns the whole result. */
static ssize_t fuzz_head(const uint8_t *data, size_t size, const struct corio_http_limits *lim)
{
    static struct summary whole, part;
    struct corio_http_parser p;

    corio_http_parser_init(&p);
    ssize_t r = feed(&p, data, size, lim, &whole);
    corio_http_parser_init(&p);
    CHECK(feed_as(true, &p, data, size, lim, &part) == r);
    CHECK(memcmp(&part, &whole, sizeof(whole)) == 0);

    for (size_t k = 0; k < size; k++) {
        corio_http_parser_init(&p);
        ssize_t r1 = feed(&p, data, k, lim, &part);
        if (r1 == -EAGAIN)
            r1 = feed(&p, data, size, lim, &part);
        CHECK(r1 == r);
        CHECK(memcmp(&part, &whole, sizeof(whole)) == 0);
    }

    corio_http_parser_init(&p);
    ssize_t r1 = -EAGAIN;
    part = whole; /* for the empty input, where the loop does not run */
    for (size_t k = 1; k <= size && r1 == -EAGAIN; k++)
        r1 = feed(&p, data, k, lim, &part);
    CHECK(r1 == r);
    CHECK(memcmp(&part, &whole, sizeof(whole)) == 0);
    return r;
}

struct decoded {
    int status;
    size_t payload_len;
    size_t consumed;
    char payload[MAX_INPUT];
};

/* Decodes @data[0..@n) as pieces of @step bytes (0: whole), the first piece @first bytes. */
static void decode(const uint8_t *data, size_t n, const struct corio_http_limits *lim, size_t first,
                   size_t step, struct decoded *d)
{
    struct corio_http_chunked c;
    corio_http_chunked_init(&c, lim);
    d->status = -EAGAIN;
    d->payload_len = 0;
    d->consumed = 0;
    size_t from = 0;
    do {
        size_t to = n;
        if (from == 0 && first && first < n)
            to = first;
        else if (from > 0 && step && n - from > step)
            to = from + step;
        char *b = dup_exact(data + from, to - from);
        size_t produced = (size_t)-1, consumed = (size_t)-1;
        d->status = corio_http_chunked_decode(&c, b, to - from, &produced, &consumed);
        CHECK(d->status == -EAGAIN || d->status == 0 || d->status == -EBADMSG ||
              d->status == -EMSGSIZE || d->status == -E2BIG);
        if (d->status == 0 || d->status == -EAGAIN) {
            CHECK(produced <= consumed && consumed <= to - from);
            CHECK(d->status == 0 || consumed == to - from);
            memcpy(d->payload + d->payload_len, b, produced);
            d->payload_len += produced;
            d->consumed += consumed;
            CHECK(d->payload_len <= (size_t)lim->max_body_bytes);
        }
        free(b);
        from = to;
    } while (d->status == -EAGAIN && from < n);
}

static bool same_decode(const struct decoded *a, const struct decoded *b)
{
    if (a->status != b->status)
        return false;
    if (a->status != 0 && a->status != -EAGAIN)
        return true; /* outputs are unspecified after an error */
    return a->payload_len == b->payload_len && a->consumed == b->consumed &&
           memcmp(a->payload, b->payload, a->payload_len) == 0;
}

static void fuzz_chunked(const uint8_t *data, size_t size, const struct corio_http_limits *lim)
{
    static struct decoded whole, part;

    decode(data, size, lim, 0, 0, &whole);
    for (size_t k = 1; k < size; k++) {
        decode(data, size, lim, k, 0, &part);
        CHECK(same_decode(&part, &whole));
    }
    decode(data, size, lim, 1, 1, &part);
    CHECK(same_decode(&part, &whole));
    decode(data, size, lim, 2, 3, &part);
    CHECK(same_decode(&part, &whole));
}

static void fuzz_helpers(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    time_t t;
    if (corio_http_parse_date(s, size, &t) == 0) {
        char buf[CORIO_HTTP_DATE_LEN + 1];
        time_t back;
        CHECK(corio_http_format_date(buf, sizeof(buf), t) == CORIO_HTTP_DATE_LEN);
        CHECK(corio_http_parse_date(buf, CORIO_HTTP_DATE_LEN, &back) == 0 && back == t);
    }

    static const int64_t sizes[] = {0, 1, 7, 1000, INT64_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        int64_t first = -1, last = -1;
        int r = corio_http_parse_range(s, size, sizes[i], &first, &last);
        CHECK(r == CORIO_HTTP_RANGE_IGNORE || r == CORIO_HTTP_RANGE_PARTIAL || r == -ERANGE);
        if (r == CORIO_HTTP_RANGE_PARTIAL)
            CHECK(0 <= first && first <= last && last < sizes[i]);
    }

    char *out = malloc(size + 1);
    CHECK(out != NULL);
    ssize_t r = corio_http_decode_path(s, size, out, size + 1);
    CHECK(r == -EBADMSG || r == -EACCES || r >= 0);
    if (r >= 0) {
        CHECK((size_t)r <= size && out[0] == '/' && strlen(out) == (size_t)r);
        CHECK(strstr(out, "//") == NULL && strstr(out, "/../") == NULL);
        CHECK(strstr(out, "/./") == NULL);
        CHECK(!(r >= 3 && memcmp(out + r - 3, "/..", 3) == 0));
        CHECK(!(r >= 2 && memcmp(out + r - 2, "/.", 2) == 0));
        if (r > 0)
            CHECK(corio_http_decode_path(s, size, out, (size_t)r) == -ENOSPC);
    }
    free(out);

    CHECK(corio_http_mime_type(s, size) != NULL);

    /* A response built from the input's bytes: status and times vary, the shape does not. */
    if (size >= 8) {
        struct corio_http_response resp = {0};
        int64_t v;
        memcpy(&v, data, sizeof(v));
        resp.status = (int)((uint64_t)v % 1100);
        resp.date = (time_t)(v >> 16);
        resp.content_length = v >> 40;
        resp.keep_alive = v & 1;
        resp.has_last_modified = v & 2;
        resp.last_modified = (time_t)(v / 3);
        resp.content_range = (enum corio_http_content_range)((uint64_t)v % 3);
        resp.range_first = v % 1000;
        resp.range_last = v % 777;
        resp.range_size = v >> 20;
        resp.extra = s + 8;
        resp.extra_len = size - 8;
        char buf[512];
        ssize_t n = corio_http_format_response(buf, sizeof(buf), &resp);
        CHECK(n == -ENOSPC || n == -EINVAL || (n > 0 && (size_t)n <= sizeof(buf)));
        if (n > 0)
            CHECK(memcmp(buf + n - 2, "\r\n", 2) == 0 && memcmp(buf, "HTTP/1.1 ", 9) == 0);
    }
}

/* The lookups over a request that parsed: each result is one the header allows and agrees with
 * what the parse found. */
static void fuzz_lookups(const uint8_t *data, size_t size, const struct corio_http_limits *lim)
{
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    struct corio_http_header h[NHDR];
    struct corio_http_request req;
    char *b = dup_exact(data, size);
    CHECK(corio_http_parse_request(&p, b, size, lim, &req, h, NHDR) > 0);
    const char *v;
    size_t vl;
    int g = corio_http_header_get(&req, "host", &v, &vl);
    CHECK(g == (req.host ? 0 : -ENOENT));
    CHECK(g < 0 || (v == req.host && vl == req.host_len));
    static char out[MAX_INPUT + 1];
    static const char *const names[] = {"accept", "x", "connection"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ssize_t n = corio_http_header_join(&req, names[i], out, sizeof(out));
        CHECK(n == -ENOENT || (n >= 0 && (size_t)n < sizeof(out) && strlen(out) == (size_t)n));
        if (n > 0)
            CHECK(corio_http_header_join(&req, names[i], out, (size_t)n) == -ENOSPC);
        ssize_t q = corio_http_query_get(&req, names[i], out, sizeof(out));
        CHECK(q == -ENOENT || q == -EBADMSG || (q >= 0 && (size_t)q <= req.target_len));
        if (q >= 0) {
            CHECK(strlen(out) == (size_t)q);
            CHECK(corio_http_query_get(&req, names[i], out, (size_t)q) == -ENOSPC);
        }
    }
    free(b);
}

/* A response parse reduced to offsets, comparable across buffers. */
struct resp_summary {
    ssize_t ret;
    int status, minor_version;
    size_t reason_off, reason_len, num_headers;
    size_t hdr[NHDR][4];
    int64_t content_length;
    int chunked, keep_alive;
};

/* One response parse call on an exact-size copy of @data[0..@n); checks what a successful parse
 * promises and records it. */
static ssize_t feed_response(struct corio_http_parser *p, const uint8_t *data, size_t n,
                             const struct corio_http_limits *lim, struct resp_summary *s)
{
    struct corio_http_header h[NHDR];
    struct corio_http_response_head r;
    char *b = dup_exact(data, n);
    ssize_t ret = corio_http_parse_response(p, b, n, lim, &r, h, NHDR);
    memset(s, 0, sizeof(*s));
    s->ret = ret;
    CHECK(ret > 0 || ret == -EAGAIN || ret == -EBADMSG || ret == -EMSGSIZE || ret == -EOPNOTSUPP ||
          ret == -EPROTONOSUPPORT);
    if (ret > 0) {
        size_t len = (size_t)ret;
        CHECK(len <= n && len <= lim->max_head_bytes && memcmp(b, "HTTP/1.", 7) == 0);
        CHECK(memcmp(b + len - 4, "\r\n\r\n", 4) == 0);
        CHECK(r.status >= 100 && r.status <= 999);
        CHECK(r.minor_version == 0 || r.minor_version == 1);
        CHECK(inside(b, len, r.reason, r.reason_len));
        CHECK(r.num_headers <= lim->max_headers && r.headers == h);
        CHECK(r.content_length >= -1 && (!r.chunked || r.content_length == -1));
        s->status = r.status;
        s->minor_version = r.minor_version;
        s->reason_off = (size_t)(r.reason - b);
        s->reason_len = r.reason_len;
        s->num_headers = r.num_headers;
        for (size_t i = 0; i < r.num_headers; i++) {
            CHECK(inside(b, len, h[i].name, h[i].name_len) && h[i].name_len > 0);
            CHECK(inside(b, len, h[i].value, h[i].value_len));
            CHECK(memchr(h[i].value, '\n', h[i].value_len) == NULL);
            s->hdr[i][0] = (size_t)(h[i].name - b);
            s->hdr[i][1] = h[i].name_len;
            s->hdr[i][2] = (size_t)(h[i].value - b);
            s->hdr[i][3] = h[i].value_len;
        }
        const char *v;
        size_t vl;
        CHECK(corio_http_response_header_get(&r, "content-length", &v, &vl) == 0 ||
              r.content_length == -1);
        s->content_length = r.content_length;
        s->chunked = r.chunked;
        s->keep_alive = r.keep_alive;
    }
    free(b);
    return ret;
}

/* Parses as a response head whole, at every split and byte by byte; all must agree. Returns the
 * whole result. */
static ssize_t fuzz_response(const uint8_t *data, size_t size, const struct corio_http_limits *lim)
{
    static struct resp_summary whole, part;
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    ssize_t r = feed_response(&p, data, size, lim, &whole);
    for (size_t k = 0; k < size; k++) {
        corio_http_parser_init(&p);
        ssize_t r1 = feed_response(&p, data, k, lim, &part);
        if (r1 == -EAGAIN)
            r1 = feed_response(&p, data, size, lim, &part);
        CHECK(r1 == r && memcmp(&part, &whole, sizeof(whole)) == 0);
    }
    corio_http_parser_init(&p);
    ssize_t r1 = -EAGAIN;
    part = whole;
    for (size_t k = 1; k <= size && r1 == -EAGAIN; k++)
        r1 = feed_response(&p, data, k, lim, &part);
    CHECK(r1 == r && memcmp(&part, &whole, sizeof(whole)) == 0);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct corio_http_limits small = {
        .max_head_bytes = 96,
        .max_headers = 4,
        .max_target_bytes = 16,
        .max_body_bytes = 64,
    };

    struct corio_http_limits defaults;

    if (size > MAX_INPUT)
        return 0;
    corio_http_limits_init(&defaults);
    ssize_t r = fuzz_head(data, size, &defaults);
    fuzz_head(data, size, &small);

    fuzz_chunked(data, size, &defaults);
    fuzz_chunked(data, size, &small);
    if (r > 0) {
        /* The body after the head, however the head said it is framed. */
        fuzz_chunked(data + r, size - (size_t)r, &defaults);
        fuzz_lookups(data, size, &defaults);
    }

    ssize_t rr = fuzz_response(data, size, &defaults);
    fuzz_response(data, size, &small);
    if (rr > 0)
        fuzz_chunked(data + rr, size - (size_t)rr, &defaults);

    fuzz_helpers(data, size);
    return 0;
}
