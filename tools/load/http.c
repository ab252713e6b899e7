/*
 * HTTP mode on the wire: the request every connection sends, and parsing and checking each
 * response that comes back.
 *
 * Requests are `GET <path> HTTP/1.1` keep-alive. Each response is parsed: the status line,
 * Content-Length (required, since chunked bodies are refused), Connection: close (the connection
 * is then opened again, as wrk does). A malformed response counts as a verify error.
 */
#include "load.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int load_http_setup(void)
{
    /* An IPv6 address goes in brackets in Host. */
    bool v6 = strchr(cfg.host, ':') != NULL;
    size_t cap = strlen(cfg.path) + strlen(cfg.host) + 64;
    cfg.request = malloc(cap);
    if (!cfg.request)
        return -1;
    int n = snprintf(cfg.request, cap, "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\n\r\n", cfg.path,
                     v6 ? "[" : "", cfg.host, v6 ? "]" : "", cfg.port);
    cfg.request_len = (size_t)n;
    return 0;
}

static bool http_report(struct conn *c, const char *what)
{
    if (load_may_report())
        fprintf(stderr,
                PROG ": bad response: connection %" PRIu64 " (thread %u), response %" PRIu64
                     ": %s\n",
                c->id, c->w->index, c->done, what);
    load_verify_error(c);
    c->w->st.desync++;
    return false;
}

static bool token_eq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* Whether the comma-separated header value [@v, @v + @n) holds the token @tok. */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (token_eq(v + s, e - s, tok))
            return true;
    }
    return false;
}

/* Parses the response head [@h, @h + @len) (ending in CRLFCRLF) into @c. Returns false after
 * reporting a malformed or unsupported response. */
static bool http_parse_head(struct conn *c, const char *h, size_t len)
{
    const char *end = h + len;
    const char *eol = memchr(h, '\r', len);
    if (!eol || eol - h < 12 || memcmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') ||
        h[8] != ' ' || !isdigit((unsigned char)h[9]) || !isdigit((unsigned char)h[10]) ||
        !isdigit((unsigned char)h[11]) || (eol - h > 12 && h[12] != ' '))
        return http_report(c, "malformed status line");
    bool http10 = h[7] == '0';
    c->status = (unsigned)((h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0'));
    if (c->status < 100 || c->status > 599)
        return http_report(c, "status code out of range");
    if (c->status < 200)
        return http_report(c, "interim 1xx responses are not supported");
    bool have_len = false, keep_alive = false;
    uint64_t clen = 0;
    c->close_after = false;
    for (const char *p = eol + 2; p < end;) {
        const char *le = memchr(p, '\r', (size_t)(end - p));
        if (!le || le + 1 >= end || le[1] != '\n')
            return http_report(c, "header line not ended by CRLF");
        if (le == p)
            break; /* the empty line */
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p)
            return http_report(c, "header line without a name");
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vlen = (size_t)(ve - v);
        if (token_eq(p, nlen, "content-length")) {
            uint64_t x = 0;
            if (vlen == 0 || vlen > 18)
                return http_report(c, "bad Content-Length");
            for (size_t i = 0; i < vlen; i++) {
                if (!isdigit((unsigned char)v[i]))
                    return http_report(c, "bad Content-Length");
                x = x * 10 + (uint64_t)(v[i] - '0');
            }
            if (have_len && x != clen)
                return http_report(c, "conflicting Content-Length headers");
            have_len = true;
            clen = x;
        } else if (token_eq(p, nlen, "transfer-encoding")) {
            return http_report(c, "Transfer-Encoding (chunked) responses are not supported: "
                                  "the server must send Content-Length");
        } else if (token_eq(p, nlen, "connection")) {
            if (has_token(v, vlen, "close"))
                c->close_after = true;
            if (has_token(v, vlen, "keep-alive"))
                keep_alive = true;
        }
        p = le + 2;
    }
    if (http10 && !keep_alive)
        c->close_after = true;
    if (c->status == 204 || c->status == 304) {
        clen = 0;
    } else if (!have_len) {
        return http_report(c, "response without Content-Length");
    }
    if (cfg.expect_body >= 0 && c->status < 300 && clen != (uint64_t)cfg.expect_body) {
        char what[96];
        snprintf(what, sizeof(what), "body length %" PRIu64 ", expected %lld", clen,
                 cfg.expect_body);
        return http_report(c, what);
    }
    c->body_left = clen;
    return true;
}

int load_http_consume(struct conn *c, int64_t now)
{
    for (;;) {
        if (!c->in_body) {
            if (c->rpos == c->rlen)
                break;
            if (c->done >= c->sent)
                return (void)http_report(c, "response to no request"), -1;
            const char *h = (const char *)c->rbuf + c->rpos;
            size_t avail = c->rlen - c->rpos;
            size_t from = c->scan > 3 ? c->scan - 3 : 0;
            const char *hit = memmem(h + from, avail - from, "\r\n\r\n", 4);
            if (!hit) {
                c->scan = avail;
                if (avail > HTTP_MAX_HEAD)
                    return (void)http_report(c, "response head larger than 16 KiB"), -1;
                break;
            }
            size_t hlen = (size_t)(hit - h) + 4;
            if (!http_parse_head(c, h, hlen))
                return -1;
            c->rpos += hlen;
            c->scan = 0;
            c->resp_bytes = hlen;
            c->in_body = true;
        }
        size_t avail = c->rlen - c->rpos;
        size_t take = c->body_left < avail ? (size_t)c->body_left : avail;
        c->rpos += take;
        c->body_left -= take;
        c->resp_bytes += take;
        if (c->body_left > 0)
            break;
        /* Response `done` is whole. */
        c->in_body = false;
        struct stats *st = &c->w->st;
        if (record(c->w, c->t_send[c->done % cfg.pipeline], now, c->resp_bytes)) {
            st->status[c->status]++;
            if (c->status >= 400) {
                st->bad_status++;
                count_error(c->w);
            }
        }
        c->done++;
        if (cfg.paired)
            corio_sem_release(&c->credits);
        if (c->close_after)
            return 0;
    }
    /* Keep the unparsed tail at the front of the buffer. */
    if (c->rpos == c->rlen) {
        c->rpos = c->rlen = 0;
    } else if (c->rpos > 0 && (c->rlen == c->rcap || c->rpos > c->rcap / 2)) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    return 1;
}

int load_http_send_one(struct conn *c, int64_t deadline)
{
    c->t_send[c->sent % cfg.pipeline] = corio_now();
    c->sent++;
    ssize_t r = corio_send_all(c->fd, cfg.request, cfg.request_len, NULL, deadline);
    return r < 0 ? (int)r : 0;
}
