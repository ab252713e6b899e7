/* Tests of the HTTP parser files (engine/http/, all but server.c): request heads, chunked bodies,
 * and the response helpers.
 *
 * Every head and body is also fed split at each byte and one byte at a time, from exact-size heap
 * copies, so a read past the bytes given shows up under ASan (picohttpparser's guard idea). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "parser.h"
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NHDR 72 /* above the default max_headers, so that limit is what the tests hit */

/* Whether to split an input of @n bytes at @k. Short inputs are split everywhere; long ones (the
 * limit tests) at their first and last 64 bytes and every 97th byte between, which keeps the
 * suite quick under valgrind without losing the edges where the limits sit. */
static bool split_here(size_t k, size_t n)
{
    return n <= 1024 || k < 64 || k + 64 > n || k % 97 == 0;
}

/* A request reduced to offsets, so results from different buffers can be compared. */
struct summary {
    ssize_t ret;
    enum corio_http_method method;
    size_t method_off, method_len, target_off, target_len;
    int minor_version;
    size_t num_headers;
    size_t hdr[NHDR][4];
    int64_t content_length;
    bool chunked, keep_alive, expect_continue;
    ssize_t host_off, ims_off, range_off;
    size_t host_len, ims_len, range_len;
};

static ssize_t off_of(const char *base, const char *p)
{
    return p ? p - base : -1;
}

static void summarize(struct summary *s, ssize_t ret, const char *base,
                      const struct corio_http_request *req)
{
    memset(s, 0, sizeof(*s));
    s->ret = ret;
    if (ret <= 0)
        return;
    s->method = req->method;
    s->method_off = (size_t)(req->method_str - base);
    s->method_len = req->method_len;
    s->target_off = (size_t)(req->target - base);
    s->target_len = req->target_len;
    s->minor_version = req->minor_version;
    s->num_headers = req->num_headers;
    for (size_t i = 0; i < req->num_headers; i++) {
        s->hdr[i][0] = (size_t)(req->headers[i].name - base);
        s->hdr[i][1] = req->headers[i].name_len;
        s->hdr[i][2] = (size_t)(req->headers[i].value - base);
        s->hdr[i][3] = req->headers[i].value_len;
    }
    s->content_length = req->content_length;
    s->chunked = req->chunked;
    s->keep_alive = req->keep_alive;
    s->expect_continue = req->expect_continue;
    s->host_off = off_of(base, req->host);
    s->host_len = req->host_len;
    s->ims_off = off_of(base, req->if_modified_since);
    s->ims_len = req->if_modified_since_len;
    s->range_off = off_of(base, req->range);
    s->range_len = req->range_len;
}

static char *dup_exact(const char *s, size_t n)
{
    char *b = malloc(n ? n : 1);
    assert_non_null(b);
    memcpy(b, s, n);
    return b;
}

/* One call on an exact-size copy of @s[0..@n), summarized; through the server's call if @scratch
 * (its request and fields are scratch until a head parses, and its limits not NULL). */
static ssize_t feed_as(bool scratch, struct corio_http_parser *p, const char *s, size_t n,
                       const struct corio_http_limits *lim, struct summary *out)
{
    struct corio_http_limits def;
    struct corio_http_header h[NHDR];
    struct corio_http_request req;
    char *b = dup_exact(s, n);
    corio_http_limits_init(&def);
    ssize_t r = scratch
                    ? corio__http_parse_request_scratch(p, b, n, lim ? lim : &def, &req, h, NHDR)
                    : corio_http_parse_request(p, b, n, lim, &req, h, NHDR);
    summarize(out, r, b, &req);
    free(b);
    return r;
}

static ssize_t feed(struct corio_http_parser *p, const char *s, size_t n,
                    const struct corio_http_limits *lim, struct summary *out)
{
    return feed_as(false, p, s, n, lim, out);
}

/* Parses @s whole, also through the server's call, at every split into two calls, and one byte at
 * a time, and checks every way gives @expect and the same request. Returns the whole parse's
 * summary in @out if non-NULL. */
static void check_len(const char *s, size_t n, const struct corio_http_limits *lim, ssize_t expect,
                      struct summary *out)
{
    struct corio_http_parser p;
    static struct summary whole, part;

    corio_http_parser_init(&p);
    assert_int_equal(feed(&p, s, n, lim, &whole), expect);
    if (out)
        *out = whole;
    corio_http_parser_init(&p);
    assert_int_equal(feed_as(true, &p, s, n, lim, &part), expect);
    assert_memory_equal(&part, &whole, sizeof(whole));

    for (size_t k = 0; k < n; k++) {
        if (!split_here(k, n))
            continue;
        corio_http_parser_init(&p);
        ssize_t r = feed(&p, s, k, lim, &part);
        if (r == -EAGAIN)
            r = feed(&p, s, n, lim, &part);
        if (r != expect)
            fail_msg("split at %zu: got %zd, want %zd", k, r, expect);
        assert_memory_equal(&part, &whole, sizeof(whole));
    }

    corio_http_parser_init(&p);
    ssize_t r = -EAGAIN;
    size_t k;
    for (k = 1; k <= n && r == -EAGAIN; k++)
        r = feed(&p, s, k, lim, &part);
    assert_int_equal(r, expect);
    assert_memory_equal(&part, &whole, sizeof(whole));
}

static void check(const char *s, ssize_t expect)
{
    check_len(s, strlen(s), NULL, expect, NULL);
}

static void check_lim(const char *s, const struct corio_http_limits *lim, ssize_t expect)
{
    check_len(s, strlen(s), lim, expect, NULL);
}

/* @s must parse as one complete head spanning all of it. */
static void check_ok(const char *s)
{
    check_len(s, strlen(s), NULL, (ssize_t)strlen(s), NULL);
}

static void check_lim_ok(const char *s, const struct corio_http_limits *lim)
{
    check_len(s, strlen(s), lim, (ssize_t)strlen(s), NULL);
}

/* Parses @s in place with default limits, for tests that look at the fields. */
static ssize_t parse(const char *s, struct corio_http_request *req)
{
    static struct corio_http_header h[NHDR];
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    return corio_http_parse_request(&p, s, strlen(s), NULL, req, h, NHDR);
}

static bool str_is(const char *p, size_t n, const char *want)
{
    return p != NULL && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* ------------------------------------------------------------------------------------------- */

static const char get_req[] = "GET /index.html?q=1 HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "User-Agent:  curl/8.0 \t\r\n"
                              "Accept:*/*\r\n"
                              "X-Empty:\r\n"
                              "\r\n";

static void test_http_parse_simple_get(void **state)
{
    (void)state;
    struct corio_http_request req;
    assert_int_equal(parse(get_req, &req), (ssize_t)strlen(get_req));
    assert_int_equal(req.method, CORIO_HTTP_GET);
    assert_true(str_is(req.method_str, req.method_len, "GET"));
    assert_true(str_is(req.target, req.target_len, "/index.html?q=1"));
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.num_headers, 4);
    assert_true(str_is(req.headers[0].name, req.headers[0].name_len, "Host"));
    assert_true(str_is(req.headers[0].value, req.headers[0].value_len, "example.com"));
    assert_true(str_is(req.headers[1].name, req.headers[1].name_len, "User-Agent"));
    assert_true(str_is(req.headers[1].value, req.headers[1].value_len, "curl/8.0"));
    assert_true(str_is(req.headers[2].value, req.headers[2].value_len, "*/*"));
    assert_true(str_is(req.headers[3].name, req.headers[3].name_len, "X-Empty"));
    assert_int_equal(req.headers[3].value_len, 0);
    assert_int_equal(req.content_length, -1);
    assert_false(req.chunked);
    assert_true(req.keep_alive);
    assert_false(req.expect_continue);
    assert_true(str_is(req.host, req.host_len, "example.com"));
    assert_null(req.if_modified_since);
    assert_null(req.range);
}

static void test_http_parse_methods(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum corio_http_method m;
    } ms[] = {
        {"GET", CORIO_HTTP_GET},     {"HEAD", CORIO_HTTP_HEAD},     {"POST", CORIO_HTTP_POST},
        {"PUT", CORIO_HTTP_PUT},     {"DELETE", CORIO_HTTP_DELETE}, {"OPTIONS", CORIO_HTTP_OPTIONS},
        {"PATCH", CORIO_HTTP_PATCH}, {"TRACE", CORIO_HTTP_TRACE},   {"CONNECT", CORIO_HTTP_CONNECT},
    };
    char buf[128];
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        struct corio_http_request req;
        int n = snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\nHost: a\r\n\r\n", ms[i].name);
        assert_int_equal(parse(buf, &req), n);
        assert_int_equal(req.method, ms[i].m);
        assert_true(str_is(req.method_str, req.method_len, ms[i].name));
    }
}

static void test_http_parse_every_split_valid(void **state)
{
    (void)state;
    struct summary s;
    check_len(get_req, strlen(get_req), NULL, (ssize_t)strlen(get_req), &s);
    assert_int_equal(s.num_headers, 4);
    check_ok(
        "\r\n\r\nPOST /upload HTTP/1.0\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n");
    check_ok(
        "PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
    check_ok("GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n"
             "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n");
    check_ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    check_ok("GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n");
}

static void test_http_parse_every_split_invalid(void **state)
{
    (void)state;
    check("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", -EBADMSG);
    check("GET / HTTP/1.1\r\nHost : h\r\n\r\n", -EBADMSG);
    check("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", -EBADMSG);
    check("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", -EBADMSG);
    check("BREW / HTTP/1.1\r\nHost: h\r\n\r\n", -EOPNOTSUPP);
    check("GET / HTTP/2.0\r\nHost: h\r\n\r\n", -EPROTONOSUPPORT);
    check("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", -EOPNOTSUPP);
    check("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", -EMSGSIZE);
}

static void test_http_parse_byte_at_a_time_linear(void **state)
{
    (void)state;
    /* A head close to the limit, fed a byte at a time: each call must scan only the new byte,
     * which the parser's scan offset shows. */
    static char big[8192];
    size_t nfields = 1;
    size_t n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: h\r\n");
    while (n + 50 < sizeof(big)) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "X-Filler: %030d\r\n", (int)n);
        nfields++;
    }
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n");
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    lim.max_headers = 1000;
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    struct corio_http_header h[1000];
    struct corio_http_request req;
    ssize_t r = -EAGAIN;
    size_t k;
    for (k = 1; k <= n && r == -EAGAIN; k++) {
        r = corio_http_parse_request(&p, big, k, &lim, &req, h, 1000);
        if (k < n) {
            assert_int_equal(r, -EAGAIN);
            assert_int_equal(p.scanned, k);
        }
    }
    assert_int_equal(r, (ssize_t)n);
    assert_int_equal(req.num_headers, nfields);
    assert_int_equal(p.scanned, 0); /* reset for the next request */
}

static void test_http_parse_pipelined(void **state)
{
    (void)state;
#define REQ1 "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
#define REQ2 "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n"
#define REQ3 "\r\nHEAD /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    static const char buf[] = REQ1 REQ2 "abc" REQ3 "GET /d HT";
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    struct corio_http_header h[8];
    struct corio_http_request req;
    size_t off = 0, len = sizeof(buf) - 1;

    ssize_t r = corio_http_parse_request(&p, buf + off, len - off, NULL, &req, h, 8);
    assert_int_equal(r, sizeof(REQ1) - 1);
    assert_true(str_is(req.target, req.target_len, "/a"));
    off += (size_t)r;

    r = corio_http_parse_request(&p, buf + off, len - off, NULL, &req, h, 8);
    assert_int_equal(r, sizeof(REQ2) - 1);
    assert_int_equal(req.method, CORIO_HTTP_POST);
    assert_int_equal(req.content_length, 3);
    assert_memory_equal(buf + off + r, "abc", 3);
    off += (size_t)r + 3;

    /* An empty line before the next request line is ignored and counted. */
    r = corio_http_parse_request(&p, buf + off, len - off, NULL, &req, h, 8);
    assert_int_equal(r, sizeof(REQ3) - 1);
    assert_int_equal(req.method, CORIO_HTTP_HEAD);
    assert_true(str_is(req.target, req.target_len, "/c"));
    assert_false(req.keep_alive);
    off += (size_t)r;

    r = corio_http_parse_request(&p, buf + off, len - off, NULL, &req, h, 8);
    assert_int_equal(r, -EAGAIN);
    assert_int_equal(len - off, 9);
#undef REQ1
#undef REQ2
#undef REQ3
}

/* The first call for a head whose bytes end in LF tries the parse pass alone over them (see
 * request.c); every other call scans first. @s is a complete head (its result does not depend on
 * what follows it): parsed alone, then followed by a byte that is not LF (scanned first), then
 * followed by the start of another line (the one-pass try again), all three must agree. */
static void check_both_ways(const char *s, const struct corio_http_limits *lim, ssize_t expect)
{
    size_t n = strlen(s);
    char *b = malloc(n + 2);
    assert_non_null(b);
    memcpy(b, s, n);
    memcpy(b + n, "Z\n", 2);
    struct corio_http_parser p;
    static struct summary alone, scanned, again;
    corio_http_parser_init(&p);
    assert_int_equal(feed(&p, b, n, lim, &alone), expect);
    corio_http_parser_init(&p);
    assert_int_equal(feed(&p, b, n + 1, lim, &scanned), expect);
    corio_http_parser_init(&p);
    assert_int_equal(feed(&p, b, n + 2, lim, &again), expect);
    assert_memory_equal(&alone, &scanned, sizeof(alone));
    assert_memory_equal(&alone, &again, sizeof(alone));
    assert_int_equal(p.scanned, 0);
    free(b);
}

static void test_http_parse_whole_same_as_scanned(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", /* what wrk sends */
        "GET / HTTP/1.0\r\n\r\n",
        "GET /1234567 HTTP/1.1\r\nHost: h\r\n\r\n", /* targets around a word */
        "GET /12345678 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /123456789abcdef HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /caf\xc3\xa9?x=\x80 HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: 1234567\r\nY: 12345678\r\nZ: 123456789\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX:\r\nY: \t \r\nZ:\ta\tb\t\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: \xff\x80 \"q\"\r\n\r\n",
        "GET / HTTP/1.1\r\nHOST: h\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n",
        "PUT / HTTP/1.1\r\nhost: h\r\nConnection: keep-alive\r\nContent-Length: 12\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", /* a leading empty line: scanned first */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        check_both_ways(ok[i], NULL, (ssize_t)strlen(ok[i]));

    static const struct {
        const char *head;
        ssize_t err;
    } bad[] = {
        {"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", -EBADMSG}, /* bare LF inside */
        {"GET / HTTP/1.1\nHost: h\r\n\r\n", -EBADMSG},         /* bare LF ending a line */
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n\r\n", -EBADMSG}, /* CR alone */
        {"GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", -EBADMSG},
        {"GET / HTTP/1.1\r\nHost: h\x7f\r\n\r\n", -EBADMSG},   /* DEL in a value */
        {"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG},   /* and in a target */
        {"GET / HTTP/1.1\r\nHost: h\r\n x\r\n\r\n", -EBADMSG}, /* obs-fold */
        {"GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n", -EBADMSG},
        {"GET / HTTP/1.1\r\n\r\n", -EBADMSG}, /* no Host */
        {"GET / HTTP/1.2\r\nHost: h\r\n\r\n", -EPROTONOSUPPORT},
        {"BREW / HTTP/1.1\r\nHost: h\r\n\r\n", -EOPNOTSUPP},
        {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", -EMSGSIZE},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_both_ways(bad[i].head, NULL, bad[i].err);

    /* Limits at their edges: the head and target lengths, and the fields the one pass keeps
     * aside (24) against the limit (here 26). */
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    static const char head[] = "GET /12345678 HTTP/1.1\r\nHost: h\r\n\r\n";
    lim.max_head_bytes = sizeof(head) - 1;
    lim.max_target_bytes = 9;
    check_both_ways(head, &lim, (ssize_t)sizeof(head) - 1);
    lim.max_target_bytes = 8;
    check_both_ways(head, &lim, -ENAMETOOLONG);
    corio_http_limits_init(&lim);
    lim.max_headers = 26;
    char many[1024];
    size_t n = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int k = 2; k <= 27; k++) {
        n += (size_t)snprintf(many + n, sizeof(many) - n, "X%d: v\r\n", k);
        if (k < 23)
            continue;
        memcpy(many + n, "\r\n", 3);
        check_both_ways(many, &lim, k <= 26 ? (ssize_t)(n + 2) : -E2BIG);
    }
}

/* Heads that end in LF but that the one pass cannot take, and that the scan then refuses or
 * finds unfinished: the request and the fields must be as they were before the call. */
static void test_http_parse_whole_leaves_no_trace(void **state)
{
    (void)state;
    struct corio_http_limits small;
    corio_http_limits_init(&small);
    small.max_head_bytes = 30;
    small.max_target_bytes = 4;
    const struct {
        const char *head;
        const struct corio_http_limits *lim;
        ssize_t ret;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n", NULL, -EAGAIN},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n", NULL, -EAGAIN},
        {"GET / HTTP/1.1\r\n", NULL, -EAGAIN},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: y\n", NULL, -EBADMSG},
        {"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", NULL, -EBADMSG},
        {"GET /12345 HTTP/1.1\r\nHost: h\r\n\r\n", &small, -ENAMETOOLONG},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: yz\r\n\r\n", &small, -E2BIG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
        struct corio_http_request req, req0;
        struct corio_http_header h[4], h0[4];
        memset(&req, 0xa5, sizeof(req));
        memset(h, 0x5a, sizeof(h));
        req0 = req;
        memcpy(h0, h, sizeof(h));
        char *b = dup_exact(cases[i].head, strlen(cases[i].head));
        ssize_t r =
            corio_http_parse_request(&p, b, strlen(cases[i].head), cases[i].lim, &req, h, 4);
        free(b);
        if (r != cases[i].ret)
            fail_msg("case %zu: got %zd, want %zd", i, r, cases[i].ret);
        assert_memory_equal(&req, &req0, sizeof(req));
        assert_memory_equal(h, h0, sizeof(h));
    }
}

/* A head without fields needs no field storage, on either path. */
static void test_http_parse_whole_no_field_room(void **state)
{
    (void)state;
    static const char head[] = "GET / HTTP/1.0\r\n\r\nX";
    for (size_t n = sizeof(head) - 2; n < sizeof(head); n++) {
        struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
        struct corio_http_request req;
        char *b = dup_exact(head, n);
        assert_int_equal(corio_http_parse_request(&p, b, n, NULL, &req, NULL, 0), 18);
        assert_null(req.headers);
        assert_int_equal(req.num_headers, 0);
        free(b);
    }
}

static void test_http_parse_leading_crlf(void **state)
{
    (void)state;
    struct corio_http_request req;
    static const char s[] = "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(parse(s, &req), (ssize_t)strlen(s));
    assert_ptr_equal(req.method_str, s + 6);
    check(s, (ssize_t)strlen(s));
    check("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG);
    check("\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG);
    check("\r\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG);
    check(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", -EBADMSG);
    /* Leading CRLFs count against the head limit. */
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    lim.max_head_bytes = 29;
    check_lim("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &lim, 27);
    check_lim("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", &lim, 29);
    check_lim("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", &lim, -E2BIG);
}

static void test_http_parse_keep_alive(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade , close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: x\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: foo,,keep-alive,\r\n\r\n", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct corio_http_request req;
        assert_int_equal(parse(cases[i].req, &req), (ssize_t)strlen(cases[i].req));
        if (req.keep_alive != cases[i].keep_alive)
            fail_msg("case %zu: keep_alive %d", i, req.keep_alive);
    }
}

static void test_http_parse_expect_continue(void **state)
{
    (void)state;
    struct corio_http_request req;
    assert_true(parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n"
                      "Content-Length: 3\r\n\r\n",
                      &req) > 0);
    assert_true(req.expect_continue);
    assert_int_equal(req.content_length, 3);
    assert_true(parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", &req) > 0);
    assert_false(req.expect_continue);
    /* RFC 9110 section 10.1.1: ignored in HTTP/1.0. */
    assert_true(parse("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &req) > 0);
    assert_false(req.expect_continue);
}

static void test_http_parse_special_fields(void **state)
{
    (void)state;
    struct corio_http_request req;
    static const char s[] = "GET / HTTP/1.1\r\nhOsT:  a.b:80 \r\nRANGE: bytes=1-2\r\n"
                            "if-modified-since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                            "If-Modified-Since: later\r\n\r\n";
    assert_int_equal(parse(s, &req), (ssize_t)strlen(s));
    assert_true(str_is(req.host, req.host_len, "a.b:80"));
    assert_true(str_is(req.range, req.range_len, "bytes=1-2"));
    assert_true(
        str_is(req.if_modified_since, req.if_modified_since_len, "Sun, 06 Nov 1994 08:49:37 GMT"));
    /* Two Range fields make the Range unusable, so it is dropped rather than guessed. */
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=1-2\r\nRange: bytes=3-4\r\n\r\n",
                      &req) > 0);
    assert_null(req.range);
    assert_int_equal(req.range_len, 0);
    /* HTTP/1.0 needs no Host. */
    assert_true(parse("GET / HTTP/1.0\r\n\r\n", &req) > 0);
    assert_null(req.host);
    assert_int_equal(req.minor_version, 0);
    /* obs-text is allowed in values and targets. */
    assert_true(parse("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\nX: \xff\x80\r\n\r\n", &req) > 0);
    assert_int_equal(req.headers[1].value_len, 2);
}

/* Parses @s, which must be one complete head, every way, and returns its summary. */
static const struct summary *summary_ok(const char *s)
{
    static struct summary sum;
    check_len(s, strlen(s), NULL, (ssize_t)strlen(s), &sum);
    return &sum;
}

/* The names and tokens that matter are matched in any case; one with a byte changed, to '_' or
 * to obs-text (whose bit 0x20 may match that of the byte it replaced), is not matched. */
static void test_http_parse_names_any_case(void **state)
{
    (void)state;
    const struct summary *s;
    s = summary_ok(
        "GET / HTTP/1.1\r\nhOST: h\r\nCONTENT-LENGTH: 7\r\nIF-modified-SINCE: x\r\n\r\n");
    assert_int_equal(s->content_length, 7);
    assert_int_equal(s->host_len, 1);
    assert_int_equal(s->ims_len, 1);
    s = summary_ok("POST / HTTP/1.1\r\nHost: h\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n");
    assert_true(s->chunked);
    s = summary_ok(
        "PUT / HTTP/1.1\r\nHost: h\r\nEXPECT: 100-CONTINUE\r\nConnection: CLOSE\r\n\r\n");
    assert_true(s->expect_continue);
    assert_false(s->keep_alive);
    s = summary_ok("GET / HTTP/1.0\r\nCONNECTION: Keep-Alive\r\n\r\n");
    assert_true(s->keep_alive);
    /* Near misses: none of these is the field or token it looks like. */
    s = summary_ok("GET / HTTP/1.0\r\nConnection: keep_alive\r\n\r\n");
    assert_false(s->keep_alive);
    s = summary_ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: clos\xc5\r\n\r\n");
    assert_true(s->keep_alive);
    s = summary_ok("GET / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\n"
                   "Content_Length: x\r\n\r\n");
    assert_false(s->chunked);
    assert_int_equal(s->content_length, -1);
    check("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunke\xc4\r\n\r\n", -EOPNOTSUPP);
    check("GET / HTTP/1.1\r\nHosT\x7f: h\r\n\r\n", -EBADMSG); /* DEL is no name byte */
}

static void test_http_parse_long_values(void **state)
{
    (void)state;
    /* Long targets and values go through the word-at-a-time skip: a forbidden byte at any
     * position and alignment must still be caught, and allowed ones (HTAB, SP, obs-text) kept. */
    char buf[256];
    for (size_t k = 0; k < 40; k = k == 19 ? 37 : k + 1) { /* every alignment, and the end */
        static const char bad_bytes[] = {'\x00', '\x01', '\x0b', '\x1f', '\x7f', '\r', '\n'};
        for (size_t b = 0; b < sizeof(bad_bytes); b++) {
            char v[41];
            memset(v, 'v', 40);
            v[k] = bad_bytes[b];
            int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nX: ");
            memcpy(buf + n, v, 40);
            memcpy(buf + n + 40, "z\r\n\r\n", 5);
            check_len(buf, (size_t)n + 45, NULL, -EBADMSG, NULL);

            n = snprintf(buf, sizeof(buf), "GET /");
            memcpy(buf + n, v, 40);
            n += 40;
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "z HTTP/1.1\r\nHost: h\r\n\r\n");
            check_len(buf, (size_t)n, NULL, -EBADMSG, NULL);
        }
        static const char good_bytes[] = {'\t', ' ', '\x80', '\xff', '~', '"'};
        for (size_t b = 0; b < sizeof(good_bytes); b++) {
            char v[41];
            memset(v, 'v', 40);
            v[k] = good_bytes[b];
            int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nX: ");
            memcpy(buf + n, v, 40);
            memcpy(buf + n + 40, "z\r\n\r\n", 5);
            struct summary s;
            check_len(buf, (size_t)n + 45, NULL, n + 45, &s);
            bool ows = good_bytes[b] == '\t' || good_bytes[b] == ' ';
            assert_int_equal(s.hdr[1][3], k == 0 && ows ? 40 : 41); /* leading OWS is trimmed */
            if (ows)
                continue; /* not target bytes */
            n = snprintf(buf, sizeof(buf), "GET /");
            memcpy(buf + n, v, 40);
            n += 40;
            n += snprintf(buf + n, sizeof(buf) - (size_t)n, "z HTTP/1.1\r\nHost: h\r\n\r\n");
            check_len(buf, (size_t)n, NULL, n, &s);
            assert_int_equal(s.target_len, 42);
        }
    }
}

static void test_http_status_400_syntax(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",             /* two SPs */
        "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",             /* trailing SP */
        "GET /\r\nHost: h\r\n\r\n",                       /* HTTP/0.9 form */
        "GET / \r\nHost: h\r\n\r\n",                      /* empty version */
        "GET / http/1.1\r\nHost: h\r\n\r\n",              /* lowercase */
        "GET / HTTP/1.10\r\nHost: h\r\n\r\n",             /* three digits */
        "GET / HTTP/11.1\r\nHost: h\r\n\r\n",             /* three digits */
        "GET / HTTP/1\r\nHost: h\r\n\r\n",                /* no minor */
        "GET / HTTP/1.x\r\nHost: h\r\n\r\n",              /* not a digit */
        "GET / HTTP/1.1\rX\r\nHost: h\r\n\r\n",           /* stray CR */
        "G@T / HTTP/1.1\r\nHost: h\r\n\r\n",              /* bad method char */
        "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n",         /* CTL in target */
        "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n",          /* HTAB in target */
        "GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n",         /* DEL in target */
        "GET  HTTP/1.1\r\nHost: h\r\n\r\n",               /* empty target */
        "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",       /* empty name */
        "GET / HTTP/1.1\r\nHost: h\r\nA\tB: v\r\n\r\n",   /* HTAB in name */
        "GET / HTTP/1.1\r\nHost: h\r\nA(B: v\r\n\r\n",    /* separator in name */
        "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",   /* no colon */
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", /* CTL in value */
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fz\r\n\r\n", /* DEL in value */
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\rz\r\n\r\n",   /* CR in value */
        "GET / HTTP/1.1\r\nHost: h\r\n\rX\r\n\r\n",       /* CR starting a line */
        "\x80GET / HTTP/1.1\r\nHost: h\r\n\r\n",          /* obs-text in method */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct corio_http_request req;
        ssize_t r = parse(bad[i], &req);
        if (r != -EBADMSG)
            fail_msg("case %zu: got %zd", i, r);
    }
    /* With the NUL really in the buffer. */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0z\r\n\r\n";
    check_len(nul, sizeof(nul) - 1, NULL, -EBADMSG, NULL);
    static const char nul_target[] = "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n";
    check_len(nul_target, sizeof(nul_target) - 1, NULL, -EBADMSG, NULL);
}

static void test_http_status_400_bare_lf(void **state)
{
    (void)state;
    check("GET / HTTP/1.1\nHost: h\r\n\r\n", -EBADMSG);
    check("GET / HTTP/1.1\r\nHost: h\n\r\n", -EBADMSG);
    check("GET / HTTP/1.1\r\nHost: h\r\n\n", -EBADMSG);
    check("GET /\n", -EBADMSG);
    check("GET\n", -EBADMSG);
    check("GET / HTTP/1.1\r\nHost: h\r\nX: a\nb: c\r\n\r\n", -EBADMSG);
    /* Detected as soon as the LF arrives, with the head still incomplete. */
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    struct summary s;
    assert_int_equal(feed(&p, "GET / HTTP/1.1\r\nHost: h\n", 24, NULL, &s), -EBADMSG);
    corio_http_parser_init(&p);
    assert_int_equal(feed(&p, "GET /abc\n", 9, NULL, &s), -EBADMSG);
}

static void test_http_status_400_obs_fold(void **state)
{
    (void)state;
    check("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", -EBADMSG);
    check("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", -EBADMSG);
    check("GET / HTTP/1.1\r\n Host: h\r\n\r\n", -EBADMSG);
}

static void test_http_status_400_space_before_colon(void **state)
{
    (void)state;
    check("GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 0\r\n\r\n", -EBADMSG);
    check("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\t: chunked\r\n\r\n", -EBADMSG);
}

static void test_http_status_400_host(void **state)
{
    (void)state;
    check("GET / HTTP/1.1\r\n\r\n", -EBADMSG);
    check("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", -EBADMSG);
    check("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", -EBADMSG);
    /* An empty Host is allowed (RFC 9110 section 7.2). */
    check_ok("GET / HTTP/1.1\r\nHost:\r\n\r\n");
}

static void test_http_smuggling_content_length(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Content-Length: 5\r\nContent-Length: 5\r\n", /* duplicate, equal */
        "Content-Length: 5\r\nContent-Length: 6\r\n", /* duplicate, differing */
        "Content-Length: 5, 5\r\n",                   /* list */
        "Content-Length: 5,5\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 0x5\r\n",
        "Content-Length: 5 5\r\n",
        "Content-Length: 1_0\r\n",
        "Content-Length:\r\n",
        "Content-Length: 9223372036854775808\r\n", /* INT64_MAX + 1 */
        "Content-Length: 99999999999999999999999\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
    };
    char buf[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: h\r\n%s\r\n", bad[i]);
        check(buf, -EBADMSG);
    }
    struct corio_http_request req;
    assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007 \r\n\r\n", &req) > 0);
    assert_int_equal(req.content_length, 7);
    assert_true(parse("POST / HTTP/1.1\r\nHost: h\r\ncontent-length:0\r\n\r\n", &req) > 0);
    assert_int_equal(req.content_length, 0);
    /* INT64_MAX parses, then is refused by the body limit. */
    check("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n", -EMSGSIZE);
}

static void test_http_smuggling_transfer_encoding(void **state)
{
    (void)state;
    static const struct {
        const char *te;
        ssize_t want;
    } cases[] = {
        {"Transfer-Encoding: chunked\r\n", 0},
        {"Transfer-Encoding: CHUNKED\r\n", 0},
        {"Transfer-Encoding:   chunked \t\r\n", 0},
        {"Transfer-Encoding: chunked, gzip\r\n", -EBADMSG}, /* chunked not final */
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", -EBADMSG},
        {"Transfer-Encoding: chunked, chunked\r\n", -EBADMSG},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", -EBADMSG},
        {"Transfer-Encoding: chunked,\r\n", -EBADMSG},
        {"Transfer-Encoding: gzip, chunked\r\n", -EOPNOTSUPP},
        {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", -EOPNOTSUPP},
        {"Transfer-Encoding: gzip\r\n", -EOPNOTSUPP},
        {"Transfer-Encoding: identity\r\n", -EOPNOTSUPP},
        {"Transfer-Encoding: xchunked\r\n", -EOPNOTSUPP},
        {"Transfer-Encoding: chunked;q=1\r\n", -EOPNOTSUPP},
        {"Transfer-Encoding: \"chunked\"\r\n", -EOPNOTSUPP},
        {"Transfer-Encoding:\r\n", -EOPNOTSUPP},
        {"Transfer-Encoding: , chunked\r\n", -EOPNOTSUPP},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\nHost: h\r\n%s\r\n", cases[i].te);
        struct summary s;
        check_len(buf, (size_t)n, NULL, cases[i].want ? cases[i].want : n, &s);
        if (cases[i].want == 0) {
            assert_true(s.chunked);
            assert_int_equal(s.content_length, -1);
        }
    }
    /* Transfer-Encoding in HTTP/1.0 is refused: a 1.0 peer may not understand it. */
    check("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -EBADMSG);
}

static void test_http_status_413(void **state)
{
    (void)state;
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    check_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n");
    check("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n", -EMSGSIZE);
    lim.max_body_bytes = 10;
    check_lim_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n", &lim);
    check_lim("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", &lim, -EMSGSIZE);
}

static void test_http_status_414(void **state)
{
    (void)state;
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    lim.max_target_bytes = 8;
    check_lim_ok("GET /2345678 HTTP/1.1\r\nHost: h\r\n\r\n", &lim);
    check_lim("GET /23456789 HTTP/1.1\r\nHost: h\r\n\r\n", &lim, -ENAMETOOLONG);
    check_lim("GET /23456789\r\n\r\n", &lim, -ENAMETOOLONG);
    /* Reported as soon as the partial request line shows it. */
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    struct summary s;
    assert_int_equal(feed(&p, "GET /2345678", 12, &lim, &s), -EAGAIN);
    assert_int_equal(feed(&p, "GET /23456789", 13, &lim, &s), -ENAMETOOLONG);

    /* The default limit: "GET " and a 4096-byte target, then one byte more. */
    static char big[4200];
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', 4095);
    corio_http_parser_init(&p);
    assert_int_equal(feed(&p, big, 4100, NULL, &s), -EAGAIN);
    memcpy(big + 4100, " HTTP/1.1\r\nHost: h\r\n\r\n", 22);
    check_len(big, 4100 + 22, NULL, 4100 + 22, NULL);
    big[4100] = 'a';
    memcpy(big + 4101, " HTTP/1.1\r\nHost: h\r\n\r\n", 22);
    check_len(big, 4101 + 22, NULL, -ENAMETOOLONG, NULL);
    corio_http_parser_init(&p);
    assert_int_equal(feed(&p, big, 4100, NULL, &s), -EAGAIN);
    assert_int_equal(feed(&p, big, 4101, NULL, &s), -ENAMETOOLONG);
}

static void test_http_status_431_head_size(void **state)
{
    (void)state;
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    lim.max_head_bytes = 40;
    /* 40 bytes exactly. */
    check_lim("GET / HTTP/1.1\r\nHost: h\r\nX: 12345678\r\n\r\n", &lim, 40);
    check_lim("GET / HTTP/1.1\r\nHost: h\r\nX: 123456789\r\n\r\n", &lim, -E2BIG);
    /* Reported once the limit is passed without the end in sight. */
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    struct summary s;
    static const char partial[] = "GET / HTTP/1.1\r\nHost: h\r\nX: 1234567890abcdef";
    assert_int_equal(feed(&p, partial, 40, &lim, &s), -EAGAIN);
    assert_int_equal(feed(&p, partial, 41, &lim, &s), -E2BIG);

    /* The default limit: 8192 bytes is fine, 8193 is not. */
    static char big[8300];
    size_t n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: h\r\nX: ");
    memset(big + n, 'v', 8192 - n - 4);
    memcpy(big + 8192 - 4, "\r\n\r\n", 4);
    check_len(big, 8192, NULL, 8192, NULL);
    memset(big + n, 'v', 8193 - n - 4);
    memcpy(big + 8193 - 4, "\r\n\r\n", 4);
    check_len(big, 8193, NULL, -E2BIG, NULL);
}

static void test_http_status_431_header_count(void **state)
{
    (void)state;
    static char buf[2048];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < 64; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X%d: v\r\n", i);
    memcpy(buf + n, "\r\n", 3);
    struct summary s;
    check_len(buf, n + 2, NULL, (ssize_t)(n + 2), &s);
    assert_int_equal(s.num_headers, 64);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X64: v\r\n\r\n");
    check_len(buf, n, NULL, -E2BIG, NULL);

    /* A smaller header array is the effective limit. */
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    struct corio_http_header h[2];
    struct corio_http_request req;
    static const char two[] = "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n";
    static const char three[] = "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\nC: d\r\n\r\n";
    assert_int_equal(corio_http_parse_request(&p, two, strlen(two), NULL, &req, h, 2), 33);
    assert_int_equal(corio_http_parse_request(&p, three, strlen(three), NULL, &req, h, 2), -E2BIG);
}

static void test_http_status_501(void **state)
{
    (void)state;
    check("BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", -EOPNOTSUPP);
    check("get / HTTP/1.1\r\nHost: h\r\n\r\n", -EOPNOTSUPP); /* methods are case-sensitive */
    check("GETS / HTTP/1.1\r\nHost: h\r\n\r\n", -EOPNOTSUPP);
    check("M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\n", -EOPNOTSUPP);
    check("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", -EOPNOTSUPP);
    /* A syntax error anywhere in the head wins over -EOPNOTSUPP. */
    check("BREW / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n", -EBADMSG);
    check("BREW / HTTP/1.1\r\n\r\n", -EBADMSG);
}

static void test_http_status_505(void **state)
{
    (void)state;
    check("GET / HTTP/2.0\r\nHost: h\r\n\r\n", -EPROTONOSUPPORT);
    check("GET / HTTP/1.2\r\nHost: h\r\n\r\n", -EPROTONOSUPPORT);
    check("GET / HTTP/0.9\r\n\r\n", -EPROTONOSUPPORT);
    check("GET / HTTP/3.1\r\nHost: h\r\n\r\n", -EPROTONOSUPPORT);
    check("GET / HTTP/1.0\r\n\r\n", 18);
}

static void test_http_limits_defaults(void **state)
{
    (void)state;
    struct corio_http_limits lim;
    memset(&lim, 0xff, sizeof(lim));
    corio_http_limits_init(&lim);
    assert_int_equal(lim.max_head_bytes, 8192);
    assert_int_equal(lim.max_headers, 64);
    assert_int_equal(lim.max_target_bytes, 4096);
    assert_int_equal(lim.max_body_bytes, 1048576);
}

/* ---------------------------------------------------------------------------------------------
 * Chunked bodies
 * ------------------------------------------------------------------------------------------- */

struct decoded {
    int status;
    char payload[4096];
    size_t payload_len;
    size_t consumed;
};

/* Decodes @in[0..@n) fed as pieces cut at @cuts (ascending, inside (0, n)); each piece is an
 * exact-size heap copy. Stops feeding once the decoder finishes or fails. */
static void decode_pieces(const char *in, size_t n, const struct corio_http_limits *lim,
                          const size_t *cuts, size_t ncuts, struct decoded *d)
{
    struct corio_http_chunked c;
    corio_http_chunked_init(&c, lim);
    memset(d, 0, sizeof(*d));
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        char *b = dup_exact(in + from, to - from);
        size_t produced = 0, consumed = 0;
        d->status = corio_http_chunked_decode(&c, b, to - from, &produced, &consumed);
        assert_true(produced <= consumed && consumed <= to - from);
        if (d->status == 0 || d->status == -EAGAIN) {
            assert_true(d->payload_len + produced <= sizeof(d->payload));
            memcpy(d->payload + d->payload_len, b, produced);
            d->payload_len += produced;
            d->consumed += consumed;
        }
        free(b);
        if (d->status != -EAGAIN)
            return;
        assert_int_equal(consumed, to - from);
        from = to;
    }
}

/* Checks that @in decodes to @status (and @payload, @consumed when the status is 0) whole, at
 * every split into two, and one byte at a time. */
static void check_chunked(const char *in, size_t n, const struct corio_http_limits *lim, int status,
                          const char *payload, size_t consumed)
{
    static struct decoded d;
    static size_t cuts[8192];

    decode_pieces(in, n, lim, NULL, 0, &d);
    for (size_t k = 0; k <= n; k++) {
        if (!split_here(k, n))
            continue;
        if (k > 0) {
            cuts[0] = k;
            decode_pieces(in, n, lim, cuts, k < n ? 1 : 0, &d);
        }
        if (d.status != status)
            fail_msg("split at %zu: status %d, want %d", k, d.status, status);
        if (status == 0) {
            assert_int_equal(d.payload_len, strlen(payload));
            assert_memory_equal(d.payload, payload, d.payload_len);
            assert_int_equal(d.consumed, consumed);
        }
    }
    assert_true(n <= sizeof(cuts) / sizeof(cuts[0]));
    for (size_t k = 1; k < n; k++)
        cuts[k - 1] = k;
    decode_pieces(in, n, lim, cuts, n ? n - 1 : 0, &d);
    assert_int_equal(d.status, status);
    if (status == 0) {
        assert_int_equal(d.payload_len, strlen(payload));
        assert_memory_equal(d.payload, payload, d.payload_len);
        assert_int_equal(d.consumed, consumed);
    }
}

static void check_chunked_ok(const char *in, const char *payload)
{
    size_t n = strlen(in);
    check_chunked(in, n, NULL, 0, payload, n);
}

static void check_chunked_err(const char *in, int status)
{
    check_chunked(in, strlen(in), NULL, status, NULL, 0);
}

static void test_http_chunked_simple(void **state)
{
    (void)state;
    check_chunked_ok("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
    check_chunked_ok("0\r\n\r\n", "");
    check_chunked_ok("A\r\n0123456789\r\n0\r\n\r\n", "0123456789");
    check_chunked_ok("a\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n", "0123456789!");
    check_chunked_ok("0000000000000000000005\r\nhello\r\n000\r\n\r\n", "hello");
    /* Framing bytes inside the payload are payload. */
    check_chunked_ok("7\r\n0\r\n\r\n\r\n\r\n0\r\n\r\n", "0\r\n\r\n\r\n");
}

static void test_http_chunked_in_place(void **state)
{
    (void)state;
    char buf[] = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    struct corio_http_chunked c;
    size_t produced, consumed;
    corio_http_chunked_init(&c, NULL);
    assert_int_equal(corio_http_chunked_decode(&c, buf, strlen(buf), &produced, &consumed), 0);
    assert_int_equal(produced, 5);
    assert_memory_equal(buf, "abcde", 5);
    assert_int_equal(consumed, 20);
    assert_memory_equal(buf + consumed, "GET / HTTP/1.1\r\n", 16);
    /* Once complete, further input is left alone. */
    assert_int_equal(corio_http_chunked_decode(&c, buf + consumed, 16, &produced, &consumed), 0);
    assert_int_equal(produced, 0);
    assert_int_equal(consumed, 0);
}

static void test_http_chunked_pipelined_split(void **state)
{
    (void)state;
    /* The bytes after the body are not consumed, at any split. */
    static const char in[] = "4\r\nwiki\r\n0\r\n\r\nNEXT";
    check_chunked(in, strlen(in), NULL, 0, "wiki", strlen(in) - 4);
}

static void test_http_chunked_extensions(void **state)
{
    (void)state;
    check_chunked_ok("5;name\r\nhello\r\n0\r\n\r\n", "hello");
    check_chunked_ok("5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello");
    check_chunked_ok("5 ; a = b ; c ;d=\"q \\\" ;\\\\ x\"\r\nhello\r\n0\r\n\r\n", "hello");
    check_chunked_ok("5\t;a\r\nhello\r\n0\r\n\r\n", "hello");
    check_chunked_ok("5 \r\nhello\r\n0\r\n\r\n", "hello");
    check_chunked_ok("5  \t;a  =  b  ;c\t\r\nhello\r\n0\r\n\r\n", "hello");
    check_chunked_ok("5;a;b=c;d=\"\";e=f;g\r\nhello\r\n0\r\n\r\n", "hello");
    check_chunked_err("5;a=b\"\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;a b\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;=x\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;a=\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;a=\"x\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;a=b c\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;a\x01\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5 x\r\nhello\r\n0\r\n\r\n", -EBADMSG);
}

static void test_http_chunked_trailers(void **state)
{
    (void)state;
    check_chunked_ok("3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum:\r\n\r\n", "abc");
    check_chunked_ok("0\r\nA: b c \t\r\n\r\n", "");
    check_chunked_err("0\r\nA: b\r\n folded\r\n\r\n", -EBADMSG);
    check_chunked_err("0\r\nA : b\r\n\r\n", -EBADMSG);
    check_chunked_err("0\r\n: b\r\n\r\n", -EBADMSG);
    check_chunked_err("0\r\nA: b\n\r\n", -EBADMSG);
    check_chunked_err("0\r\nA: b\r\n\n", -EBADMSG);
    check_chunked_err("0\r\nA: b\x01\r\n\r\n", -EBADMSG);
    check_chunked_err("0\r\nNoColon\r\n\r\n", -EBADMSG);
    check_chunked_err("0\r\n\n", -EBADMSG);
    check_chunked_err("0\r\n\rx", -EBADMSG);
    check_chunked_err("0\r\nA: b\rX\r\n\r\n", -EBADMSG);

    /* The trailer section (with its final CRLF) is bounded by max_head_bytes. */
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    lim.max_head_bytes = 10;
    static const char ok[] = "0\r\nA: 123\r\n\r\n";   /* 8 + 2 trailer bytes */
    static const char big[] = "0\r\nA: 1234\r\n\r\n"; /* 9 + 2 */
    check_chunked(ok, strlen(ok), &lim, 0, "", strlen(ok));
    check_chunked(big, strlen(big), &lim, -E2BIG, NULL, 0);
}

static void test_http_chunked_bad_framing(void **state)
{
    (void)state;
    check_chunked_err("\r\nhello\r\n0\r\n\r\n", -EBADMSG); /* no size */
    check_chunked_err("x\r\n", -EBADMSG);                  /* not hex */
    check_chunked_err("-5\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("0x5\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5\nhello\r\n0\r\n\r\n", -EBADMSG);    /* bare LF after size */
    check_chunked_err("5\rhello\r\n0\r\n\r\n", -EBADMSG);    /* bare CR */
    check_chunked_err("5\r\nhello\n0\r\n\r\n", -EBADMSG);    /* bare LF after data */
    check_chunked_err("5\r\nhelloX\r\n0\r\n\r\n", -EBADMSG); /* data longer than size */
    check_chunked_err("5\r\nhello\r\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5\r\nhello\r\n0\r\n\n", -EBADMSG);
    check_chunked_err("5\r\nhello\r\n0\n\r\n", -EBADMSG);
    /* 16 hex digits fit in 64 bits; a 17th significant one overflows (-EBADMSG, not -EMSGSIZE). */
    check_chunked_err("10000000000000000\r\n", -EBADMSG);
    check_chunked_err("ffffffffffffffff0\r\n", -EBADMSG);
    check_chunked_err("ffffffffffffffff\r\n", -EMSGSIZE);
    /* The chunk-size line is bounded. */
    static char line[CORIO_HTTP_MAX_CHUNK_LINE + 16];
    memset(line, '0', sizeof(line));
    memcpy(line + CORIO_HTTP_MAX_CHUNK_LINE - 3, "1\r\nx\r\n0\r\n\r\n", 12);
    check_chunked(line, strlen(line), NULL, 0, "x", strlen(line));
    memset(line, '0', sizeof(line));
    memcpy(line + CORIO_HTTP_MAX_CHUNK_LINE - 2, "1\r\nx\r\n0\r\n\r\n", 12);
    check_chunked(line, strlen(line), NULL, -EBADMSG, NULL, 0);
}

static void test_http_chunked_body_limit(void **state)
{
    (void)state;
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    lim.max_body_bytes = 10;
    static const char exact[] = "4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n";
    static const char over[] = "4\r\n0123\r\n7\r\n456789A\r\n0\r\n\r\n";
    static const char one[] = "b\r\n0123456789A\r\n0\r\n\r\n";
    check_chunked(exact, strlen(exact), &lim, 0, "0123456789", strlen(exact));
    check_chunked(over, strlen(over), &lim, -EMSGSIZE, NULL, 0);
    check_chunked(one, strlen(one), &lim, -EMSGSIZE, NULL, 0);
    /* Refused at the end of the size, before any of the data arrives. */
    struct corio_http_chunked c;
    char b[] = "b\r";
    size_t produced, consumed;
    corio_http_chunked_init(&c, &lim);
    assert_int_equal(corio_http_chunked_decode(&c, b, 2, &produced, &consumed), -EMSGSIZE);
}

static void test_http_chunked_every_split_long(void **state)
{
    (void)state;
    /* Many chunks of varied sizes, so splits land in every state. */
    static char in[4096];
    static char want[2048];
    size_t n = 0, w = 0;
    for (int i = 1; i <= 40; i++) {
        n += (size_t)snprintf(in + n, sizeof(in) - n, "%x%s\r\n", i, i % 3 ? "" : ";e=\"v\"");
        for (int j = 0; j < i; j++) {
            in[n++] = (char)('a' + (i + j) % 26);
            want[w++] = (char)('a' + (i + j) % 26);
        }
        n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n");
    }
    n += (size_t)snprintf(in + n, sizeof(in) - n, "0\r\nT: x\r\n\r\n");
    want[w] = '\0';
    check_chunked(in, n, NULL, 0, want, n);
}

/* Checks that @in decodes to @payload when cut into three pieces at every pair of points, so that
 * one line (or one state) can span two call boundaries. */
static void check_chunked_every_pair(const char *in, const char *payload)
{
    static struct decoded d;
    size_t n = strlen(in), cuts[2];

    for (cuts[0] = 1; cuts[0] < n; cuts[0]++) {
        for (cuts[1] = cuts[0] + 1; cuts[1] < n; cuts[1]++) {
            decode_pieces(in, n, NULL, cuts, 2, &d);
            if (d.status != 0)
                fail_msg("cuts at %zu and %zu: status %d, want 0", cuts[0], cuts[1], d.status);
            assert_int_equal(d.payload_len, strlen(payload));
            assert_memory_equal(d.payload, payload, d.payload_len);
            assert_int_equal(d.consumed, n);
        }
    }
}

static void test_http_chunked_every_pair_split(void **state)
{
    (void)state;
    check_chunked_every_pair("5;a=\"b\\\"c\"\r\nhello\r\n1 ; x\r\n!\r\n0;z\r\nT: v\r\nU:\r\n\r\n",
                             "hello!");
    check_chunked_every_pair("0000a\r\n0123456789\r\n0\r\n\r\n", "0123456789");
}

static void test_http_chunked_empty_calls(void **state)
{
    (void)state;
    /* A call with no bytes changes nothing wherever it falls, and after the end still says so. */
    static const char in[] = "3;e\r\nabc\r\n0\r\nT: v\r\n\r\n";
    char buf[sizeof(in)], payload[4];
    struct corio_http_chunked c;
    size_t produced, consumed, got = 0;
    memcpy(buf, in, sizeof(in));
    corio_http_chunked_init(&c, NULL);
    for (size_t i = 0; i + 1 < sizeof(in); i++) {
        assert_int_equal(corio_http_chunked_decode(&c, buf + i, 0, &produced, &consumed), -EAGAIN);
        assert_int_equal(produced, 0);
        assert_int_equal(consumed, 0);
        int want = i + 2 == sizeof(in) ? 0 : -EAGAIN;
        assert_int_equal(corio_http_chunked_decode(&c, buf + i, 1, &produced, &consumed), want);
        assert_int_equal(consumed, 1);
        assert_true(produced <= 1 && got + produced <= sizeof(payload));
        if (produced)
            payload[got++] = buf[i];
    }
    assert_int_equal(got, 3);
    assert_memory_equal(payload, "abc", 3);
    assert_int_equal(corio_http_chunked_decode(&c, buf, 0, &produced, &consumed), 0);
    assert_int_equal(produced, 0);
    assert_int_equal(consumed, 0);
}

static void test_http_chunked_size_edges(void **state)
{
    (void)state;
    /* Leading zeros are not significant: 16 significant digits fit, and then the limit applies. */
    check_chunked_err("0ffffffffffffffff\r\n", -EMSGSIZE);
    check_chunked_err("000000000000000000000000000000010000000000000000\r\n", -EBADMSG);
    check_chunked_err("5g\r\nhello\r\n0\r\n\r\n", -EBADMSG);    /* a letter past 'f' */
    check_chunked_err(" 5\r\nhello\r\n0\r\n\r\n", -EBADMSG);    /* whitespace before the size */
    check_chunked_err("5\r\nhello\r\n 0\r\n\r\n", -EBADMSG);    /* ... also in a later chunk */
    check_chunked_err(";a\r\nhello\r\n0\r\n\r\n", -EBADMSG);    /* an extension without a size */
    check_chunked_err("5\r\nhello\r\n\r\n0\r\n\r\n", -EBADMSG); /* an empty chunk-size line */
    /* Quoted extension values take obs-text and escaped HTAB, but not DEL. */
    check_chunked_ok("5;a=\"\x80\xff\t\\\t\"\r\nhello\r\n0\r\n\r\n", "hello");
    check_chunked_err("5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    check_chunked_err("5;a=\"\\\x7f\"\r\nhello\r\n0\r\n\r\n", -EBADMSG);
    /* Extensions count towards the chunk-size line's limit: "1;" name CRLF fills it exactly. */
    static char line[CORIO_HTTP_MAX_CHUNK_LINE + 16];
    size_t name = CORIO_HTTP_MAX_CHUNK_LINE - 4;
    memcpy(line, "1;", 2);
    memset(line + 2, 'e', name);
    memcpy(line + 2 + name, "\r\nx\r\n0\r\n\r\n", 11);
    check_chunked(line, strlen(line), NULL, 0, "x", strlen(line));
    memset(line + 2, 'e', name + 1);
    memcpy(line + 3 + name, "\r\nx\r\n0\r\n\r\n", 11);
    check_chunked(line, strlen(line), NULL, -EBADMSG, NULL, 0);
}

static void test_http_chunked_zero_limits(void **state)
{
    (void)state;
    static const char empty[] = "0\r\n\r\n";
    static const char one[] = "1\r\nx\r\n0\r\n\r\n";
    struct corio_http_limits lim;
    corio_http_limits_init(&lim);
    /* A body limit of zero or below allows the empty body only. */
    lim.max_body_bytes = 0;
    check_chunked(empty, strlen(empty), &lim, 0, "", strlen(empty));
    check_chunked(one, strlen(one), &lim, -EMSGSIZE, NULL, 0);
    lim.max_body_bytes = -1;
    check_chunked(empty, strlen(empty), &lim, 0, "", strlen(empty));
    check_chunked(one, strlen(one), &lim, -EMSGSIZE, NULL, 0);
    /* The final CRLF counts towards the trailer limit, also without trailer fields. */
    corio_http_limits_init(&lim);
    lim.max_head_bytes = 2;
    check_chunked(empty, strlen(empty), &lim, 0, "", strlen(empty));
    lim.max_head_bytes = 1;
    check_chunked(empty, strlen(empty), &lim, -E2BIG, NULL, 0);
    lim.max_head_bytes = 0;
    check_chunked(empty, strlen(empty), &lim, -E2BIG, NULL, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Response helpers
 * ------------------------------------------------------------------------------------------- */

static void test_http_reason(void **state)
{
    (void)state;
    assert_string_equal(corio_http_reason(200), "OK");
    assert_string_equal(corio_http_reason(206), "Partial Content");
    assert_string_equal(corio_http_reason(304), "Not Modified");
    assert_string_equal(corio_http_reason(400), "Bad Request");
    assert_string_equal(corio_http_reason(404), "Not Found");
    assert_string_equal(corio_http_reason(413), "Content Too Large");
    assert_string_equal(corio_http_reason(414), "URI Too Long");
    assert_string_equal(corio_http_reason(416), "Range Not Satisfiable");
    assert_string_equal(corio_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(corio_http_reason(501), "Not Implemented");
    assert_string_equal(corio_http_reason(505), "HTTP Version Not Supported");
    assert_string_equal(corio_http_reason(299), "Unknown");
    assert_string_equal(corio_http_reason(-400), "Unknown");
}

static void test_http_status_of_errors(void **state)
{
    (void)state;
    /* Each refusal of a request maps to its status; anything else is a bad request. */
    static const int map[][2] = {
        {-EBADMSG, 400},  {-EACCES, 403},       {-ETIMEDOUT, 408},
        {-EMSGSIZE, 413}, {-ENAMETOOLONG, 414}, {-ERANGE, 416},
        {-E2BIG, 431},    {-EOPNOTSUPP, 501},   {-EPROTONOSUPPORT, 505},
        {-EAGAIN, 400},   {-ECONNRESET, 400},   {-EPROTO, 400},
        {0, 400},         {404, 400},           {-400, 400},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (corio_http_status(map[i][0]) != map[i][1])
            fail_msg("corio_http_status(%d) = %d, want %d", map[i][0], corio_http_status(map[i][0]),
                     map[i][1]);
    }
    /* "Need more bytes" is -EAGAIN for both parsers, with what was decoded so far kept. */
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    struct corio_http_request req;
    struct corio_http_header h[4];
    assert_int_equal(corio_http_parse_request(&p, "GET / HT", 8, NULL, &req, h, 4), -EAGAIN);
    struct corio_http_chunked c;
    char body[] = "5\r\nhel";
    size_t produced, consumed;
    corio_http_chunked_init(&c, NULL);
    assert_int_equal(corio_http_chunked_decode(&c, body, strlen(body), &produced, &consumed),
                     -EAGAIN);
    assert_int_equal(produced, 3);
    assert_int_equal(consumed, strlen(body));
}

static void test_http_format_response_basic(void **state)
{
    (void)state;
    static const char want[] = "HTTP/1.1 200 OK\r\n"
                               "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                               "Server: corio\r\n"
                               "Content-Type: text/html; charset=utf-8\r\n"
                               "Content-Length: 13\r\n"
                               "Connection: keep-alive\r\n"
                               "\r\n";
    struct corio_http_response r = {
        .status = 200,
        .date = 784111777,
        .content_type = "text/html; charset=utf-8",
        .content_length = 13,
        .keep_alive = true,
    };
    char buf[512];
    size_t n = strlen(want);
    assert_int_equal(corio_http_format_response(buf, sizeof(buf), &r), (ssize_t)n);
    assert_memory_equal(buf, want, n);
    /* Exactly enough room, and one byte less at every size. */
    for (size_t cap = 0; cap < n; cap++) {
        char *b = malloc(cap ? cap : 1);
        assert_int_equal(corio_http_format_response(b, cap, &r), -ENOSPC);
        free(b);
    }
    char *b = malloc(n);
    assert_int_equal(corio_http_format_response(b, n, &r), (ssize_t)n);
    assert_memory_equal(b, want, n);
    free(b);
}

static void test_http_format_response_options(void **state)
{
    (void)state;
    static const char want206[] = "HTTP/1.1 206 Partial Content\r\n"
                                  "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                                  "Server: corio\r\n"
                                  "Content-Type: image/png\r\n"
                                  "Content-Length: 100\r\n"
                                  "Last-Modified: Sat, 29 Feb 2020 23:59:59 GMT\r\n"
                                  "Content-Range: bytes 100-199/1000\r\n"
                                  "Connection: close\r\n"
                                  "Cache-Control: no-cache\r\nX-A: b\r\n"
                                  "\r\n";
    struct corio_http_response r = {
        .status = 206,
        .date_str = "Thu, 01 Jan 1970 00:00:00 GMT",
        .content_type = "image/png",
        .content_length = 100,
        .has_last_modified = true,
        .last_modified = 1583020799,
        .content_range = CORIO_HTTP_CONTENT_RANGE_BYTES,
        .range_first = 100,
        .range_last = 199,
        .range_size = 1000,
        .extra = "Cache-Control: no-cache\r\nX-A: b\r\n",
        .extra_len = 33,
    };
    char buf[512];
    assert_int_equal(corio_http_format_response(buf, sizeof(buf), &r), strlen(want206));
    assert_memory_equal(buf, want206, strlen(want206));

    static const char want416[] = "HTTP/1.1 416 Range Not Satisfiable\r\n"
                                  "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                                  "Server: corio\r\n"
                                  "Content-Length: 0\r\n"
                                  "Content-Range: bytes */1000\r\n"
                                  "Connection: close\r\n"
                                  "\r\n";
    struct corio_http_response r416 = {
        .status = 416,
        .content_range = CORIO_HTTP_CONTENT_RANGE_UNSATISFIED,
        .range_size = 1000,
    };
    assert_int_equal(corio_http_format_response(buf, sizeof(buf), &r416), strlen(want416));
    assert_memory_equal(buf, want416, strlen(want416));

    static const char want304[] = "HTTP/1.1 304 Not Modified\r\n"
                                  "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                                  "Server: corio\r\n"
                                  "Connection: keep-alive\r\n"
                                  "\r\n";
    struct corio_http_response r304 = {.status = 304, .content_length = -1, .keep_alive = true};
    assert_int_equal(corio_http_format_response(buf, sizeof(buf), &r304), strlen(want304));
    assert_memory_equal(buf, want304, strlen(want304));

    struct corio_http_response bad = {.status = 99};
    assert_int_equal(corio_http_format_response(buf, sizeof(buf), &bad), -EINVAL);
    bad.status = 1000;
    assert_int_equal(corio_http_format_response(buf, sizeof(buf), &bad), -EINVAL);
    bad.status = 200;
    bad.date = (time_t)253402300800; /* year 10000 */
    assert_int_equal(corio_http_format_response(buf, sizeof(buf), &bad), -EINVAL);
}

/* Formats @r into exact-size buffers of every size from 0 to well past what it needs (the
 * formatter skips its checks where the room is plenty), and expects -ENOSPC below @want's length,
 * @want itself from there, and no byte written past what the result says. */
static void check_format_every_cap(const struct corio_http_response *r, const char *want)
{
    size_t n = strlen(want);
    for (size_t cap = 0; cap < n + 400; cap++) {
        char *b = malloc(cap ? cap : 1);
        assert_non_null(b);
        memset(b, 0x55, cap);
        ssize_t got = corio_http_format_response(b, cap, r);
        if (got != (cap < n ? -ENOSPC : (ssize_t)n))
            fail_msg("cap %zu: got %zd, want %zu", cap, got, n);
        if (got > 0) {
            assert_memory_equal(b, want, n);
            for (size_t i = n; i < cap; i++)
                if (U8(b[i]) != 0x55)
                    fail_msg("cap %zu: byte %zu written past the head", cap, i);
        }
        free(b);
    }
}

static void test_http_format_response_every_cap(void **state)
{
    (void)state;
    /* The longest numbers there are, and every line but Last-Modified. */
    struct corio_http_response r = {
        .status = 299,
        .date_str = "Thu, 01 Jan 1970 00:00:00 GMT",
        .content_type = "application/x-a-long-type; charset=utf-8",
        .content_length = INT64_MAX,
        .content_range = CORIO_HTTP_CONTENT_RANGE_BYTES,
        .range_first = INT64_MIN,
        .range_last = INT64_MIN + 1,
        .range_size = INT64_MAX,
        .extra = "X-A: b\r\n",
        .extra_len = 8,
    };
    check_format_every_cap(&r, "HTTP/1.1 299 Unknown\r\n"
                               "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                               "Server: corio\r\n"
                               "Content-Type: application/x-a-long-type; charset=utf-8\r\n"
                               "Content-Length: 9223372036854775807\r\n"
                               "Content-Range: bytes -9223372036854775808-"
                               "-9223372036854775807/9223372036854775807\r\n"
                               "Connection: close\r\n"
                               "X-A: b\r\n"
                               "\r\n");
    /* Numbers at each digit count, a date formatted here, and nothing optional. */
    static const int64_t lens[] = {0, 9, 10, 99, 100, 999999999, 1000000000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        struct corio_http_response h = {
            .status = 431,
            .date = 784111777,
            .content_length = lens[i],
            .keep_alive = true,
            .has_last_modified = true,
            .last_modified = 0,
        };
        char want[512];
        snprintf(want, sizeof(want),
                 "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                 "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                 "Server: corio\r\n"
                 "Content-Length: %lld\r\n"
                 "Last-Modified: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                 "Connection: keep-alive\r\n"
                 "\r\n",
                 (long long)lens[i]);
        check_format_every_cap(&h, want);
    }
    /* A date out of range fails with -EINVAL at every size, before any -ENOSPC. */
    struct corio_http_response bad = {.status = 200, .date_str = "Thu, 01 Jan 1970 00:00:00 GMT"};
    bad.has_last_modified = true;
    bad.last_modified = (time_t)253402300800; /* year 10000 */
    for (size_t cap = 0; cap < 400; cap++) {
        char *b = malloc(cap ? cap : 1);
        assert_non_null(b);
        assert_int_equal(corio_http_format_response(b, cap, &bad), -EINVAL);
        free(b);
    }
}

/* The server keeps the status line, Date and Server of its last response head in a buffer of
 * CORIO__HTTP_HEAD_START_MAX bytes (server.h): they fit for every status. */
static void test_http_format_head_start_fits(void **state)
{
    (void)state;
    static const char server[] = "\r\nServer: corio\r\n";
    for (int status = 100; status <= 999; status++) {
        struct corio_http_response r = {.status = status, .date = 0, .content_length = -1};
        char buf[512];
        ssize_t n = corio_http_format_response(buf, sizeof(buf), &r);
        assert_true(n > 0);
        const char *end = memmem(buf, (size_t)n, server, sizeof(server) - 1);
        assert_non_null(end);
        if (end + sizeof(server) - 1 - buf > CORIO__HTTP_HEAD_START_MAX)
            fail_msg("status %d: %zd bytes up to Server", status, end + sizeof(server) - 1 - buf);
    }
}

static void test_http_date_format(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(corio_http_format_date(buf, sizeof(buf), 784111777), CORIO_HTTP_DATE_LEN);
    assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_int_equal(corio_http_format_date(buf, sizeof(buf), 0), CORIO_HTTP_DATE_LEN);
    assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_int_equal(corio_http_format_date(buf, sizeof(buf), -1), CORIO_HTTP_DATE_LEN);
    assert_string_equal(buf, "Wed, 31 Dec 1969 23:59:59 GMT");
    assert_int_equal(corio_http_format_date(buf, sizeof(buf), 951782400), CORIO_HTTP_DATE_LEN);
    assert_string_equal(buf, "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_int_equal(corio_http_format_date(buf, sizeof(buf), 4107542400), CORIO_HTTP_DATE_LEN);
    assert_string_equal(buf, "Mon, 01 Mar 2100 00:00:00 GMT");
    assert_int_equal(corio_http_format_date(buf, sizeof(buf), 253402300799), CORIO_HTTP_DATE_LEN);
    assert_string_equal(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
    assert_int_equal(corio_http_format_date(buf, sizeof(buf), -62167219200), CORIO_HTTP_DATE_LEN);
    assert_string_equal(buf, "Sat, 01 Jan 0000 00:00:00 GMT");
    assert_int_equal(corio_http_format_date(buf, sizeof(buf), 253402300800), -EINVAL);
    assert_int_equal(corio_http_format_date(buf, sizeof(buf), -62167219201), -EINVAL);
    assert_int_equal(corio_http_format_date(buf, 28, 0), -ENOSPC);
    /* Exactly 29 bytes: no NUL is written. */
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(corio_http_format_date(buf, 29, 0), 29);
    assert_int_equal(buf[29], 'x');
}

static void test_http_date_round_trip(void **state)
{
    (void)state;
    char buf[32];
    /* Compare against libc's gmtime_r (the test may use it; the library does not). */
    for (int64_t t = -62167219200; t <= 253402300799; t += 86400 * 97 + 3671) {
        time_t tt = (time_t)t, back;
        struct tm tm;
        char ref[64];
        assert_non_null(gmtime_r(&tt, &tm));
        tm.tm_year += 1900;
        snprintf(ref, sizeof(ref), "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT",
                 &"SunMonTueWedThuFriSat"[3 * tm.tm_wday], tm.tm_mday,
                 &"JanFebMarAprMayJunJulAugSepOctNovDec"[3 * tm.tm_mon], tm.tm_year, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
        assert_int_equal(corio_http_format_date(buf, sizeof(buf), tt), 29);
        assert_string_equal(buf, ref);
        assert_int_equal(corio_http_parse_date(buf, 29, &back), 0);
        assert_int_equal(back, tt);
    }
}

static void test_http_date_parse_formats(void **state)
{
    (void)state;
    time_t t;
    assert_int_equal(corio_http_parse_date("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t), 0);
    assert_int_equal(t, 784111777);
    t = 0;
    assert_int_equal(corio_http_parse_date("Sunday, 06-Nov-94 08:49:37 GMT", 30, &t), 0);
    assert_int_equal(t, 784111777);
    t = 0;
    assert_int_equal(corio_http_parse_date("Sun Nov  6 08:49:37 1994", 24, &t), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(corio_http_parse_date("Wednesday, 01-Mar-00 00:00:00 GMT", 33, &t), 0);
    assert_int_equal(t, 951868800);
    assert_int_equal(corio_http_parse_date("Thursday, 01-Jan-70 00:00:00 GMT", 32, &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(corio_http_parse_date("Wednesday, 31-Dec-69 00:00:00 GMT", 33, &t), 0);
    assert_int_equal(t, 3155673600); /* 2069-12-31 */
    assert_int_equal(corio_http_parse_date("Tue Feb 29 12:00:00 2000", 24, &t), 0);
    assert_int_equal(t, 951825600);
    /* A leap second folds into the next minute. */
    assert_int_equal(corio_http_parse_date("Sat, 31 Dec 2016 23:59:60 GMT", 29, &t), 0);
    assert_int_equal(t, 1483228800);
}

static void test_http_date_parse_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT ",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        " Sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 23:60:00 GMT",
        "Sun, 06 Nov 1994 23:59:61 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 30 Feb 2000 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 08-49-37 GMT",
        "Sun, 0x Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sundae, 06-Nov-94 08:49:37 GMT",
        "Sunday 06-Nov-94 08:49:37 GMT",
        "Sunday, 06 Nov 94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov 06 08:49:37 1994 ",
        "Sun Nov  0 08:49:37 1994",
        "Sun Novx 6 08:49:37 1994",
        "Sun Nov  6 08:49:37x1994",
        "Sun Nov +6 08:49:37 1994",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        time_t t = 12345;
        int r = corio_http_parse_date(bad[i], strlen(bad[i]), &t);
        if (r != -EINVAL)
            fail_msg("case %zu (%s): got %d", i, bad[i], r);
        assert_int_equal(t, 12345);
    }
    /* Two-digit day is accepted in asctime too. */
    time_t t;
    assert_int_equal(corio_http_parse_date("Sun Nov 06 08:49:37 1994", 24, &t), 0);
    assert_int_equal(t, 784111777);
}

static void test_http_mime_type(void **state)
{
    (void)state;
    static const struct {
        const char *path, *type;
    } cases[] = {
        {"/index.html", "text/html; charset=utf-8"},
        {"/a.HTM", "text/html; charset=utf-8"},
        {"/s.css", "text/css; charset=utf-8"},
        {"/app.js", "text/javascript; charset=utf-8"},
        {"/m.mjs", "text/javascript; charset=utf-8"},
        {"/d.json", "application/json"},
        {"/r.txt", "text/plain; charset=utf-8"},
        {"/f.xml", "text/xml; charset=utf-8"},
        {"/i.svg", "image/svg+xml"},
        {"/i.png", "image/png"},
        {"/i.jpg", "image/jpeg"},
        {"/i.JPEG", "image/jpeg"},
        {"/i.gif", "image/gif"},
        {"/i.webp", "image/webp"},
        {"/favicon.ico", "image/x-icon"},
        {"/m.wasm", "application/wasm"},
        {"/d.pdf", "application/pdf"},
        {"/f.woff", "font/woff"},
        {"/f.woff2", "font/woff2"},
        {"/v.mp4", "video/mp4"},
        {"/archive.tar.gz", "application/octet-stream"},
        {"/noext", "application/octet-stream"},
        {"/dir.html/noext", "application/octet-stream"},
        {"/trailing.", "application/octet-stream"},
        {"/x.htmlx", "application/octet-stream"},
        {"/x.woff22", "application/octet-stream"},
        {".html", "text/html; charset=utf-8"},
        {"", "application/octet-stream"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(corio_http_mime_type(cases[i].path, strlen(cases[i].path)),
                            cases[i].type);
    /* Only @len bytes are looked at. */
    assert_string_equal(corio_http_mime_type("/a.css.png", 6), "text/css; charset=utf-8");
}

static void test_http_range(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int64_t size;
        int want;
        int64_t first, last;
    } cases[] = {
        {"bytes=0-499", 1000, CORIO_HTTP_RANGE_PARTIAL, 0, 499},
        {"bytes=500-", 1000, CORIO_HTTP_RANGE_PARTIAL, 500, 999},
        {"bytes=-200", 1000, CORIO_HTTP_RANGE_PARTIAL, 800, 999},
        {"bytes=-1000", 1000, CORIO_HTTP_RANGE_PARTIAL, 0, 999},
        {"bytes=-2000", 1000, CORIO_HTTP_RANGE_PARTIAL, 0, 999},
        {"bytes=990-2000", 1000, CORIO_HTTP_RANGE_PARTIAL, 990, 999},
        {"bytes=999-999", 1000, CORIO_HTTP_RANGE_PARTIAL, 999, 999},
        {"bytes=0-0", 1, CORIO_HTTP_RANGE_PARTIAL, 0, 0},
        {"BYTES=1-2", 1000, CORIO_HTTP_RANGE_PARTIAL, 1, 2},
        {"bytes= 1-2 \t", 1000, CORIO_HTTP_RANGE_PARTIAL, 1, 2},
        {"bytes=0-99999999999999999999999", 1000, CORIO_HTTP_RANGE_PARTIAL, 0, 999},
        {"bytes=-99999999999999999999999", 1000, CORIO_HTTP_RANGE_PARTIAL, 0, 999},
        {"bytes=1000-", 1000, -ERANGE, 0, 0},
        {"bytes=1000-1001", 1000, -ERANGE, 0, 0},
        {"bytes=99999999999999999999999-", 1000, -ERANGE, 0, 0},
        {"bytes=-0", 1000, -ERANGE, 0, 0},
        {"bytes=0-", 0, -ERANGE, 0, 0},
        {"bytes=-5", 0, -ERANGE, 0, 0},
        {"bytes=5-4", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=0-1,5-6", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=0-1,", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"items=0-1", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes 0-1", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes =0-1", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=-", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=a-b", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=0-1x", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=0-x", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=0 -1", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=- 5", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=+1-2", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"bytes=1", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
        {"", 1000, CORIO_HTTP_RANGE_IGNORE, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t first = -7, last = -7;
        int r =
            corio_http_parse_range(cases[i].v, strlen(cases[i].v), cases[i].size, &first, &last);
        if (r != cases[i].want)
            fail_msg("case %zu (%s): got %d", i, cases[i].v, r);
        if (r == CORIO_HTTP_RANGE_PARTIAL) {
            assert_int_equal(first, cases[i].first);
            assert_int_equal(last, cases[i].last);
        } else {
            assert_int_equal(first, -7);
            assert_int_equal(last, -7);
        }
    }
}

static void test_http_path_decode(void **state)
{
    (void)state;
    static const struct {
        const char *target;
        ssize_t want;
        const char *path;
    } cases[] = {
        {"/", 1, "/"},
        {"/index.html", 11, "/index.html"},
        {"/index.html?x=1/../..", 11, "/index.html"},
        {"/a#frag/../../", 2, "/a"},
        {"/a//b///c", 6, "/a/b/c"},
        {"//", 1, "/"},
        {"/a/./b/.", 5, "/a/b/"},
        {"/./", 1, "/"},
        {"/dir/", 5, "/dir/"},
        {"/%41%42c", 4, "/ABc"},
        {"/a%20b", 4, "/a b"},
        {"/caf%C3%A9", 6, "/caf\xc3\xa9"},
        {"/...", 4, "/..."},
        {"/..a/b..", 8, "/..a/b.."},
        {"/a\\..\\b", 7, "/a\\..\\b"},
        {"/%2e", 1, "/"},
        {"http://example.com/a/b?q", 4, "/a/b"},
        {"HTTPS://example.com/x", 2, "/x"},
        {"http://example.com", 1, "/"},
        {"http://example.com?x", 1, "/"},
        {"/../etc/passwd", -EACCES, NULL},
        {"/a/../b", -EACCES, NULL},
        {"/a/..", -EACCES, NULL},
        {"/..", -EACCES, NULL},
        {"/%2e%2e/x", -EACCES, NULL},
        {"/%2E%2e", -EACCES, NULL},
        {"/.%2e/", -EACCES, NULL},
        {"/a%2fb", -EACCES, NULL},
        {"/a%2F..%2Fb", -EACCES, NULL},
        {"/..%2f", -EACCES, NULL},
        {"http://h/../x", -EACCES, NULL},
        {"/a%00b", -EBADMSG, NULL},
        {"/a%4", -EBADMSG, NULL},
        {"/a%", -EBADMSG, NULL},
        {"/a%zz", -EBADMSG, NULL},
        {"/a%g0", -EBADMSG, NULL},
        {"*", -EBADMSG, NULL},
        {"", -EBADMSG, NULL},
        {"?x", -EBADMSG, NULL},
        {"index.html", -EBADMSG, NULL},
        {"example.com:443", -EBADMSG, NULL},
        {"ftp://x/y", -EBADMSG, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64];
        size_t len = strlen(cases[i].target);
        ssize_t r = corio_http_decode_path(cases[i].target, len, out, len + 1);
        if (r != cases[i].want)
            fail_msg("case %zu (%s): got %zd", i, cases[i].target, r);
        if (r >= 0) {
            assert_string_equal(out, cases[i].path);
            /* No smaller buffer works. */
            assert_int_equal(corio_http_decode_path(cases[i].target, len, out, (size_t)r), -ENOSPC);
        }
    }
    char out[8];
    static const char nul[] = "/a\0b";
    assert_int_equal(corio_http_decode_path(nul, 4, out, sizeof(out)), -EBADMSG);
    assert_int_equal(corio_http_decode_path("/", 1, out, 0), -ENOSPC);
}

static void test_http_header_get(void **state)
{
    (void)state;
    struct corio_http_request req;
    static const char head[] = "GET / HTTP/1.1\r\nHost: h\r\nX-Dup: first\r\nx-dup: second\r\n"
                               "X-Empty:\r\nAccept:  text/html \r\n\r\n";
    assert_int_equal(parse(head, &req), sizeof(head) - 1);
    const char *v = NULL;
    size_t len = 99;
    /* Case-insensitive, first match, value as parsed (trimmed), pointing into the buffer. */
    assert_int_equal(corio_http_header_get(&req, "x-DUP", &v, &len), 0);
    assert_true(str_is(v, len, "first"));
    assert_true(v > head && v < head + sizeof(head));
    assert_int_equal(corio_http_header_get(&req, "ACCEPT", &v, &len), 0);
    assert_true(str_is(v, len, "text/html"));
    assert_int_equal(corio_http_header_get(&req, "X-Empty", &v, &len), 0);
    assert_int_equal(len, 0);
    /* A prefix or an extension of a name is not the name. */
    v = NULL;
    len = 99;
    assert_int_equal(corio_http_header_get(&req, "X-Du", &v, &len), -ENOENT);
    assert_int_equal(corio_http_header_get(&req, "X-Dupe", &v, &len), -ENOENT);
    assert_int_equal(corio_http_header_get(&req, "", &v, &len), -ENOENT);
    assert_null(v);
    assert_int_equal(len, 99);
}

static void test_http_header_join(void **state)
{
    (void)state;
    struct corio_http_request req;
    static const char head[] = "GET / HTTP/1.1\r\nHost: h\r\nAccept: a/b\r\nX: 1\r\n"
                               "accept: c/d, e/f\r\nACCEPT:\r\nAccept: g\r\nX-None:\r\n\r\n";
    assert_int_equal(parse(head, &req), sizeof(head) - 1);
    static const char want[] = "a/b, c/d, e/f, g";
    char buf[64];
    memset(buf, 'z', sizeof(buf));
    assert_int_equal(corio_http_header_join(&req, "Accept", buf, sizeof(buf)), strlen(want));
    assert_string_equal(buf, want);
    /* The room counts the NUL, to the byte. */
    assert_int_equal(corio_http_header_join(&req, "accept", buf, sizeof(want)), strlen(want));
    assert_int_equal(corio_http_header_join(&req, "accept", buf, sizeof(want) - 1), -ENOSPC);
    assert_int_equal(corio_http_header_join(&req, "accept", buf, 0), -ENOSPC);
    /* One field is its value; fields with only empty values join to ""; none is -ENOENT. */
    assert_int_equal(corio_http_header_join(&req, "x", buf, sizeof(buf)), 1);
    assert_string_equal(buf, "1");
    assert_int_equal(corio_http_header_join(&req, "X-None", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(corio_http_header_join(&req, "X-Missing", buf, sizeof(buf)), -ENOENT);
}

/* Parses a GET of @target and looks up @key with room for @cap bytes. Returns what the lookup
 * returned; *@out holds the value. */
static ssize_t query(const char *target, const char *key, char *out, size_t cap)
{
    char head[512];
    struct corio_http_request req;
    snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", target);
    assert_true(parse(head, &req) > 0);
    return corio_http_query_get(&req, key, out, cap);
}

static void test_http_query_get(void **state)
{
    (void)state;
    static const struct {
        const char *target, *key;
        ssize_t want;
        const char *value;
    } cases[] = {
        {"/p?a=1&b=2", "a", 1, "1"},
        {"/p?a=1&b=2", "b", 1, "2"},
        {"/p?a=1&a=2", "a", 1, "1"}, /* the first match */
        {"/p?q=hello+world", "q", 11, "hello world"},
        {"/p?q=%41%62c%2B%26%3D", "q", 6, "Abc+&="},
        {"/p?caf%C3%A9=1", "caf\xc3\xa9", 1, "1"}, /* the key is compared decoded */
        {"/p?a+b=x", "a b", 1, "x"},
        {"/p?flag&x=1", "flag", 0, ""}, /* a key alone */
        {"/p?x=", "x", 0, ""},
        {"/p?x==y", "x", 2, "=y"},          /* the first '=' splits */
        {"/p?&&x=1&&", "x", 1, "1"},        /* empty pairs are skipped */
        {"/p?x=1#y=2", "y", -ENOENT, NULL}, /* a fragment is not the query */
        {"/p?=v", "", -ENOENT, NULL},       /* no empty key */
        {"/p?ab=1", "a", -ENOENT, NULL},
        {"/p?a=1", "ab", -ENOENT, NULL},
        {"/p?A=1", "a", -ENOENT, NULL}, /* keys are case-sensitive */
        {"/p", "a", -ENOENT, NULL},
        {"/p?a%zz=1&a=2", "a", 1, "2"}, /* a bad key does not match */
        {"/p?a=%zz", "a", -EBADMSG, NULL},
        {"/p?a=%4", "a", -EBADMSG, NULL},
        {"/p?a=x%00y", "a", -EBADMSG, NULL},
        {"http://h/p?a=1", "a", 1, "1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64];
        ssize_t r = query(cases[i].target, cases[i].key, out, sizeof(out));
        if (r != cases[i].want)
            fail_msg("case %zu (%s, %s): got %zd", i, cases[i].target, cases[i].key, r);
        if (r >= 0) {
            assert_string_equal(out, cases[i].value);
            /* No smaller buffer works, and one exactly large enough does. */
            assert_int_equal(query(cases[i].target, cases[i].key, out, (size_t)r + 1), r);
            assert_int_equal(query(cases[i].target, cases[i].key, out, (size_t)r), -ENOSPC);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parse_simple_get),
        cmocka_unit_test(test_http_parse_methods),
        cmocka_unit_test(test_http_parse_every_split_valid),
        cmocka_unit_test(test_http_parse_every_split_invalid),
        cmocka_unit_test(test_http_parse_byte_at_a_time_linear),
        cmocka_unit_test(test_http_parse_pipelined),
        cmocka_unit_test(test_http_parse_whole_same_as_scanned),
        cmocka_unit_test(test_http_parse_whole_leaves_no_trace),
        cmocka_unit_test(test_http_parse_whole_no_field_room),
        cmocka_unit_test(test_http_parse_leading_crlf),
        cmocka_unit_test(test_http_parse_keep_alive),
        cmocka_unit_test(test_http_parse_expect_continue),
        cmocka_unit_test(test_http_parse_special_fields),
        cmocka_unit_test(test_http_parse_names_any_case),
        cmocka_unit_test(test_http_parse_long_values),
        cmocka_unit_test(test_http_status_400_syntax),
        cmocka_unit_test(test_http_status_400_bare_lf),
        cmocka_unit_test(test_http_status_400_obs_fold),
        cmocka_unit_test(test_http_status_400_space_before_colon),
        cmocka_unit_test(test_http_status_400_host),
        cmocka_unit_test(test_http_smuggling_content_length),
        cmocka_unit_test(test_http_smuggling_transfer_encoding),
        cmocka_unit_test(test_http_status_413),
        cmocka_unit_test(test_http_status_414),
        cmocka_unit_test(test_http_status_431_head_size),
        cmocka_unit_test(test_http_status_431_header_count),
        cmocka_unit_test(test_http_status_501),
        cmocka_unit_test(test_http_status_505),
        cmocka_unit_test(test_http_limits_defaults),
        cmocka_unit_test(test_http_chunked_simple),
        cmocka_unit_test(test_http_chunked_in_place),
        cmocka_unit_test(test_http_chunked_pipelined_split),
        cmocka_unit_test(test_http_chunked_extensions),
        cmocka_unit_test(test_http_chunked_trailers),
        cmocka_unit_test(test_http_chunked_bad_framing),
        cmocka_unit_test(test_http_chunked_body_limit),
        cmocka_unit_test(test_http_chunked_every_split_long),
        cmocka_unit_test(test_http_chunked_every_pair_split),
        cmocka_unit_test(test_http_chunked_empty_calls),
        cmocka_unit_test(test_http_chunked_size_edges),
        cmocka_unit_test(test_http_chunked_zero_limits),
        cmocka_unit_test(test_http_reason),
        cmocka_unit_test(test_http_status_of_errors),
        cmocka_unit_test(test_http_format_response_basic),
        cmocka_unit_test(test_http_format_response_options),
        cmocka_unit_test(test_http_format_response_every_cap),
        cmocka_unit_test(test_http_format_head_start_fits),
        cmocka_unit_test(test_http_date_format),
        cmocka_unit_test(test_http_date_round_trip),
        cmocka_unit_test(test_http_date_parse_formats),
        cmocka_unit_test(test_http_date_parse_invalid),
        cmocka_unit_test(test_http_mime_type),
        cmocka_unit_test(test_http_range),
        cmocka_unit_test(test_http_path_decode),
        cmocka_unit_test(test_http_header_get),
        cmocka_unit_test(test_http_header_join),
        cmocka_unit_test(test_http_query_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
