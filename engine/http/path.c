/* corio http: the request-target to file path mapping of a static file server,
 * corio_http_decode_path(). */
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
