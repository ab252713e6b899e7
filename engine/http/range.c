/* corio http: the Range header of a GET, corio_http_parse_range() (RFC 9110 section 14.2). */
#include "parser.h"

#include <errno.h>
#include <string.h>

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
            return -ERANGE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return CORIO_HTTP_RANGE_PARTIAL;
    }
    if (b >= 0 && b < a)
        return CORIO_HTTP_RANGE_IGNORE; /* invalid range-spec, RFC 9110 section 14.1.1 */
    if (a >= size)
        return -ERANGE;
    *first = a;
    *last = b < 0 || b >= size ? size - 1 : b;
    return CORIO_HTTP_RANGE_PARTIAL;
}
