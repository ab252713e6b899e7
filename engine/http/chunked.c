/* corio http: the chunked transfer-coding decoder, corio_http_chunked_decode() (RFC 9112
 * section 7.1). */
#include "parser.h"

#include <string.h>

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
        lim = &corio__http_default_limits;
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
            int d = hex_digit(ch);
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
