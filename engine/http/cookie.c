/* Cookies of a parsed request (corio_http_cookie_get()): the pairs of its Cookie header fields,
 * as RFC 6265 section 4.2.1 has a user agent send them ("a=1; b=2"), read the way section 5.4's
 * servers meet them in practice: any number of Cookie fields (HTTP/2 and proxies split the one
 * field), whitespace around pairs and names tolerated, and a value in double quotes unquoted.
 * Pure: nothing here does I/O or allocates. */
#include "parser.h"

#include <errno.h>
#include <string.h>
#include <sys/types.h>

/* Whether @c is the whitespace allowed around a cookie pair: SP or HTAB. */
static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Looks for @name (@nl bytes) among the pairs of the field value @v (@n bytes). Returns the
 * value (trimmed, unquoted) in *@val and *@vl and true, or false. */
static bool find_pair(const char *v, size_t n, const char *name, size_t nl, const char **val,
                      size_t *vl)
{
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && v[end] != ';')
            end++;
        size_t a = i, b = end;
        while (a < b && ows(v[a]))
            a++;
        while (b > a && ows(v[b - 1]))
            b--;
        const char *eq = memchr(v + a, '=', b - a);
        if (eq) {
            size_t k = (size_t)(eq - (v + a));
            while (k > 0 && ows(v[a + k - 1]))
                k--;
            if (k == nl && memcmp(v + a, name, nl) == 0) {
                const char *p = eq + 1, *q = v + b;
                while (p < q && ows(*p))
                    p++;
                if (q - p >= 2 && p[0] == '"' && q[-1] == '"') {
                    p++;
                    q--;
                }
                *val = p;
                *vl = (size_t)(q - p);
                return true;
            }
        }
        i = end + 1;
    }
    return false;
}

ssize_t corio_http_cookie_get(const struct corio_http_request *req, const char *name, char *out,
                              size_t cap)
{
    size_t nl = strlen(name);
    if (nl == 0)
        return -ENOENT;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct corio_http_header *h = &req->headers[i];
        const char *val;
        size_t vl;
        if (h->name_len != 6 || !eq_lower(h->name, "cookie", 6) ||
            !find_pair(h->value, h->value_len, name, nl, &val, &vl))
            continue;
        if (vl >= cap)
            return -ENOSPC;
        memcpy(out, val, vl);
        out[vl] = '\0';
        return (ssize_t)vl;
    }
    return -ENOENT;
}
