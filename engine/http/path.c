/* corio http: the two parts of a request-target: its path mapped to a file path for a static
 * file server (corio_http_decode_path()), and the values of its query (corio_http_query_get()). */
#include "parser.h"

#include <errno.h>
#include <string.h>

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
        return -EBADMSG;

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
                if (end - s < 2 || (hi = hex_digit(s[0])) < 0 || (lo = hex_digit(s[1])) < 0)
                    return -EBADMSG;
                c = (char)(hi << 4 | lo);
                s += 2;
                if (c == '/')
                    return -EACCES;
            }
            if (c == '\0')
                return -EBADMSG;
            if (w + 1 >= cap)
                return -ENOSPC;
            out[w++] = c;
        }
        size_t n = w - seg;
        if (n == 2 && out[seg] == '.' && out[seg + 1] == '.')
            return -EACCES;
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

/* Decodes the query byte at *@pp (before @end), advancing past it: "%XX" is that byte and "+" a
 * space, as HTML forms encode (application/x-www-form-urlencoded). Returns the byte, or -1 for a
 * '%' without two hex digits. */
static int query_byte(const char **pp, const char *end)
{
    const char *p = *pp;
    int hi, lo;
    if (*p == '+') {
        *pp = p + 1;
        return ' ';
    }
    if (*p != '%') {
        *pp = p + 1;
        return U8(*p);
    }
    if (end - p < 3 || (hi = hex_digit(p[1])) < 0 || (lo = hex_digit(p[2])) < 0)
        return -1;
    *pp = p + 3;
    return hi << 4 | lo;
}

/* Whether the encoded key [p, end) decodes to the NUL-terminated @key. */
static bool query_key_is(const char *p, const char *end, const char *key)
{
    while (p < end) {
        int b = query_byte(&p, end);
        if (b < 0 || *key == '\0' || b != U8(*key))
            return false;
        key++;
    }
    return *key == '\0';
}

/* Decodes the value [p, end) into @out, NUL-terminated. Returns its length, -EBADMSG for a bad
 * escape or an encoded NUL, or -ENOSPC. */
static ssize_t query_value(const char *p, const char *end, char *out, size_t cap)
{
    size_t w = 0;
    while (p < end) {
        int b = query_byte(&p, end);
        if (b <= 0)
            return -EBADMSG;
        if (w + 1 >= cap)
            return -ENOSPC;
        out[w++] = (char)b;
    }
    if (cap == 0)
        return -ENOSPC;
    out[w] = '\0';
    return (ssize_t)w;
}

ssize_t corio_http_query_get(const struct corio_http_request *req, const char *key, char *out,
                             size_t cap)
{
    const char *t = req->target, *end = req->target + req->target_len;
    const char *q = memchr(t, '?', req->target_len);
    if (q == NULL)
        return -ENOENT;
    const char *hash = memchr(q, '#', (size_t)(end - q));
    if (hash)
        end = hash;
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        const char *kend = eq ? eq : pend;
        if (kend > p && query_key_is(p, kend, key))
            return query_value(eq ? eq + 1 : pend, pend, out, cap);
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    return -ENOENT;
}
