/* corio http: the chunked transfer-coding decoder, corio_http_chunked_decode() (RFC 9112
 * section 7.1). */
#include "parser.h"

#include <errno.h>
#include <string.h>

/* Decoder states, kept in corio_http_chunked.state. The chunk-size line is
 * chunk-size [ chunk-ext ] CRLF with chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ).
 * Each group of states has one step function below, named beside the group. */
enum {
    CH_SIZE_FIRST = 0, /* size_line(): expecting the first hex digit of a chunk-size */
    CH_SIZE,           /* in the chunk-size */
    CH_SIZE_BWS,       /* extension(): whitespace after the chunk-size */
    CH_EXT_PRE_NAME,   /* after ';', before an extension name */
    CH_EXT_NAME,       /* in an extension name */
    CH_EXT_POST_NAME,  /* whitespace after an extension name */
    CH_EXT_PRE_VALUE,  /* after '=', before an extension value */
    CH_EXT_TOKEN,      /* in a token extension value */
    CH_EXT_QUOTED,     /* in a quoted-string extension value */
    CH_EXT_QUOTED_ESC, /* after a backslash in a quoted-string */
    CH_EXT_POST_VALUE, /* after an extension value */
    CH_SIZE_LF,        /* size_lf(): after the CR ending the chunk-size line */
    CH_DATA,           /* data(): in chunk data; chunk_left bytes remain */
    CH_DATA_CR,        /* data_crlf(): expecting the CR after chunk data */
    CH_DATA_LF,        /* expecting the LF after chunk data */
    CH_TRAILER_START,  /* trailer(): at the start of a trailer line or the final empty line */
    CH_TRAILER_NAME,   /* in a trailer field name */
    CH_TRAILER_VALUE,  /* in a trailer field value */
    CH_TRAILER_LF,     /* expecting the LF ending a trailer field */
    CH_END_LF,         /* expecting the LF of the final empty line */
    CH_DONE,           /* done(): the body is complete */
};

void corio_http_chunked_init(struct corio_http_chunked *c, const struct corio_http_limits *lim)
{
    if (lim == NULL)
        lim = &corio__http_default_limits;
    memset(c, 0, sizeof(*c));
    c->max_body = lim->max_body_bytes > 0 ? (uint64_t)lim->max_body_bytes : 0;
    c->max_trailer = lim->max_head_bytes;
}

/* The input and output positions of one corio_http_chunked_decode() call. Payload is written
 * over the framing before it, so out <= in throughout. */
struct cursor {
    char *buf;  /* the caller's buffer */
    size_t len; /* input bytes in buf */
    size_t in;  /* next input byte to read */
    size_t out; /* next payload byte to write */
};

/* The step functions below each handle one group of states. Each is called with at least one
 * input byte left and reads while the decoder stays in its group (one byte for the CRLF steps,
 * none for done()), advancing k->in past every byte it accepts but not past a byte it refuses.
 * Each returns 0 to go on, 1 once the body is complete, or -errno. */

/* Counts one more byte of the chunk-size line. Returns whether the line is now over its limit. */
static inline bool size_line_full(struct corio_http_chunked *c)
{
    return ++c->line_len > CORIO_HTTP_MAX_CHUNK_LINE;
}

/* Handles @ch, the first byte after a chunk-size's hex digits: charges the size against the body
 * limit before any data arrives, then moves to whitespace, an extension or the CR. */
static int size_end(struct corio_http_chunked *c, struct cursor *k, char ch)
{
    if (c->state == CH_SIZE_FIRST)
        return -EBADMSG;
    if (c->chunk_left > c->max_body - c->total)
        return -EMSGSIZE;
    c->total += c->chunk_left;
    if (is_ows(ch))
        c->state = CH_SIZE_BWS;
    else if (ch == ';')
        c->state = CH_EXT_PRE_NAME;
    else if (ch == '\r')
        c->state = CH_SIZE_LF;
    else
        return -EBADMSG;
    k->in++;
    return 0;
}

/* CH_SIZE_FIRST, CH_SIZE: the hex digits of a chunk-size, and the byte that ends them. */
static int size_line(struct corio_http_chunked *c, struct cursor *k)
{
    while (k->in < k->len) {
        char ch = k->buf[k->in];
        if (size_line_full(c))
            return -EBADMSG;
        int d = hex_digit(ch);
        if (d < 0)
            return size_end(c, k, ch);
        if (c->chunk_left >> 60)
            return -EBADMSG; /* the next digit would overflow 64 bits */
        c->chunk_left = c->chunk_left << 4 | (uint64_t)d;
        c->state = CH_SIZE;
        k->in++;
    }
    return 0;
}

/* The state that byte @ch leads to from extension state @s. Returns it, or -1 when the grammar
 * allows no @ch there. */
static int ext_next(unsigned s, char ch)
{
    switch (s) {
    case CH_EXT_PRE_NAME:
        return IS(C_TCHAR, ch) ? CH_EXT_NAME : is_ows(ch) ? (int)s : -1;
    case CH_EXT_PRE_VALUE:
        if (IS(C_TCHAR, ch))
            return CH_EXT_TOKEN;
        if (ch == '"')
            return CH_EXT_QUOTED;
        return is_ows(ch) ? (int)s : -1;
    case CH_EXT_QUOTED:
        if (ch == '"')
            return CH_EXT_POST_VALUE;
        if (ch == '\\')
            return CH_EXT_QUOTED_ESC;
        return IS(C_QDTEXT, ch) ? (int)s : -1;
    case CH_EXT_QUOTED_ESC:
        /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
        return IS(C_VALUE, ch) ? CH_EXT_QUOTED : -1;
    case CH_EXT_NAME:
    case CH_EXT_TOKEN:
        if (IS(C_TCHAR, ch))
            return (int)s;
        if (is_ows(ch))
            return s == CH_EXT_NAME ? CH_EXT_POST_NAME : CH_EXT_POST_VALUE;
        break;
    default: /* CH_SIZE_BWS, CH_EXT_POST_NAME, CH_EXT_POST_VALUE */
        if (is_ows(ch))
            return (int)s;
        break;
    }
    /* After the size, a name or a value: another extension, the line's CR, or a name's value. */
    if (ch == ';')
        return CH_EXT_PRE_NAME;
    if (ch == '\r')
        return CH_SIZE_LF;
    if (ch == '=' && (s == CH_EXT_NAME || s == CH_EXT_POST_NAME))
        return CH_EXT_PRE_VALUE;
    return -1;
}

/* CH_SIZE_BWS to CH_EXT_POST_VALUE: the chunk extensions, checked for syntax and dropped. */
static int extension(struct corio_http_chunked *c, struct cursor *k)
{
    while (k->in < k->len && c->state != CH_SIZE_LF) {
        if (size_line_full(c))
            return -EBADMSG;
        int next = ext_next(c->state, k->buf[k->in]);
        if (next < 0)
            return -EBADMSG;
        c->state = (unsigned)next;
        k->in++;
    }
    return 0;
}

/* CH_SIZE_LF: the LF that ends the chunk-size line; a zero size starts the trailer section. */
static int size_lf(struct corio_http_chunked *c, struct cursor *k)
{
    if (size_line_full(c) || k->buf[k->in] != '\n')
        return -EBADMSG;
    c->line_len = 0;
    c->state = c->chunk_left ? CH_DATA : CH_TRAILER_START;
    k->in++;
    return 0;
}

/* CH_DATA: the one bulk path, moving chunk data down over the framing read before it. */
static int data(struct corio_http_chunked *c, struct cursor *k)
{
    size_t n = k->len - k->in;
    if (n > c->chunk_left)
        n = (size_t)c->chunk_left;
    if (k->out != k->in)
        memmove(k->buf + k->out, k->buf + k->in, n);
    k->out += n;
    k->in += n;
    c->chunk_left -= n;
    if (c->chunk_left == 0)
        c->state = CH_DATA_CR;
    return 0;
}

/* CH_DATA_CR, CH_DATA_LF: the CRLF after chunk data, then the next chunk-size line. */
static int data_crlf(struct corio_http_chunked *c, struct cursor *k)
{
    bool cr = c->state == CH_DATA_CR;
    if (k->buf[k->in] != (cr ? '\r' : '\n'))
        return -EBADMSG;
    c->state = cr ? CH_DATA_LF : CH_SIZE_FIRST;
    k->in++;
    return 0;
}

/* The state that byte @ch leads to from trailer state @s. Trailer fields follow the rules of
 * head fields: no obs-fold, no empty name, no bare LF. Returns it, or -1 for a framing error. */
static int trailer_next(unsigned s, char ch)
{
    switch (s) {
    case CH_TRAILER_START:
        if (ch == '\r')
            return CH_END_LF;
        return IS(C_TCHAR, ch) ? CH_TRAILER_NAME : -1;
    case CH_TRAILER_NAME:
        if (ch == ':')
            return CH_TRAILER_VALUE;
        return IS(C_TCHAR, ch) ? (int)s : -1;
    case CH_TRAILER_VALUE:
        if (ch == '\r')
            return CH_TRAILER_LF;
        return IS(C_VALUE, ch) ? (int)s : -1;
    case CH_TRAILER_LF:
        return ch == '\n' ? CH_TRAILER_START : -1;
    default: /* CH_END_LF */
        return ch == '\n' ? CH_DONE : -1;
    }
}

/* CH_TRAILER_START to CH_END_LF: the trailer section, bounded by max_trailer bytes in all, whose
 * fields are checked and dropped. Stops right after the final CRLF. */
static int trailer(struct corio_http_chunked *c, struct cursor *k)
{
    while (k->in < k->len) {
        if (++c->line_len > c->max_trailer)
            return -E2BIG;
        int next = trailer_next(c->state, k->buf[k->in]);
        if (next < 0)
            return -EBADMSG;
        c->state = (unsigned)next;
        k->in++;
        if (next == CH_DONE)
            return 1;
    }
    return 0;
}

/* CH_DONE: the body has ended, and what follows it is left unread. */
static int done(void)
{
    return 1;
}

/* Runs the step function of the decoder's state. Returns what it returns. */
static int step(struct corio_http_chunked *c, struct cursor *k)
{
    switch (c->state) {
    case CH_SIZE_FIRST:
    case CH_SIZE:
        return size_line(c, k);
    case CH_SIZE_LF:
        return size_lf(c, k);
    case CH_DATA:
        return data(c, k);
    case CH_DATA_CR:
    case CH_DATA_LF:
        return data_crlf(c, k);
    case CH_DONE:
        return done();
    default:
        if (c->state < CH_SIZE_LF)
            return extension(c, k);
        if (c->state < CH_DONE)
            return trailer(c, k);
        return -EBADMSG; /* not a state: the struct was overwritten */
    }
}

int corio_http_chunked_decode(struct corio_http_chunked *c, char *buf, size_t len, size_t *produced,
                              size_t *consumed)
{
    struct cursor k = {.buf = buf, .len = len, .in = 0, .out = 0};
    int ret = 0;

    while (ret == 0 && k.in < len)
        ret = step(c, &k);
    if (ret == 0 && c->state == CH_DONE)
        ret = 1;
    *produced = k.out;
    *consumed = k.in;
    /* The steps' "go on" is the caller's "need more bytes": all input was used without an end. */
    if (ret == 0)
        return -EAGAIN;
    return ret == 1 ? 0 : ret;
}
