/* Internal declarations of the HTTP parser files: the constant tables they share (defined in
 * tables.c) and the small inline helpers over them. The public API is include/corio/http.h. */
#ifndef CORIO_HTTP_PARSER_H
#define CORIO_HTTP_PARSER_H
#include <corio/http.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Character classes, one bit each, generated from the RFC 9110 grammar. */
enum {
    C_TCHAR = 1,  /* token: "!#$%&'*+-.^_`|~", DIGIT, ALPHA */
    C_VALUE = 2,  /* field-value byte: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 4, /* request-target byte: VCHAR and obs-text (raw UTF-8 is let through) */
    C_QDTEXT = 8, /* quoted-string text: HTAB, SP, VCHAR except '"' and '\', obs-text */
};

/* Hidden, so that the parsers reach the tables PC-relative and not through the GOT. */
#pragma GCC visibility push(hidden)
/* C_* bits of each byte. */
extern const uint8_t corio__http_char_class[256];
/* The value of a hex digit byte, or -1. */
extern const int8_t corio__http_hex_value[256];
/* Each byte with A-Z mapped to a-z. */
extern const unsigned char corio__http_lower[256];
/* What a NULL limits pointer means. */
extern const struct corio_http_limits corio__http_default_limits;

/* corio_http_parse_request() for a caller whose @req and @headers are scratch until a head
 * parses: they may be written when the result is -EAGAIN or an error, which spares the one-pass
 * parse of a whole head its copies. @lim must not be NULL. The server's call. Returns what
 * corio_http_parse_request() does. */
ssize_t corio__http_parse_request_scratch(struct corio_http_parser *p, const char *buf, size_t len,
                                          const struct corio_http_limits *lim,
                                          struct corio_http_request *req,
                                          struct corio_http_header *headers, size_t nheaders);

/* Parses the field lines at *@pp, up to and including the empty line that ends a head, with the
 * request parser's rules for a field, into @headers (at most @cap of them, their count in *@n),
 * and moves *@pp past that line. The head must end in CRLF CRLF before @end and hold no bare LF,
 * as a head scanner makes sure. The response parser's call. Returns 0, -EBADMSG, or -E2BIG for
 * more than @cap fields. */
int corio__http_parse_field_lines(const char **pp, const char *end,
                                  struct corio_http_header *headers, size_t cap, size_t *n);

/* The two parts of corio_http_format_response(), which writes one after the other: the status
 * line, Date and Server of @r; then the rest of the head, from the lines after Server to the
 * empty line. So a server may keep the first part, which changes once a second, formatted.
 * Each returns the length written, -ENOSPC if it does not fit in @cap, or -EINVAL as
 * corio_http_format_response() does. */
ssize_t corio__http_format_head_start(char *buf, size_t cap, const struct corio_http_response *r);
ssize_t corio__http_format_head_rest(char *buf, size_t cap, const struct corio_http_response *r);
#pragma GCC visibility pop

#define U8(c) ((unsigned char)(c))
#define IS(cls, c) (corio__http_char_class[U8(c)] & (cls))

/* The value of hex digit @c, or -1 if it is not one. */
static inline int hex_digit(char c)
{
    return corio__http_hex_value[U8(c)];
}

/* Case-insensitive compare of @n bytes of @s against the lowercase literal @lc. */
static inline bool eq_lower(const char *s, const char *lc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (corio__http_lower[U8(s[i])] != U8(lc[i]))
            return false;
    }
    return true;
}

/* Case-insensitive compare of @n bytes of @a and @b (ASCII letters only, as field names want). */
static inline bool eq_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (corio__http_lower[U8(a[i])] != corio__http_lower[U8(b[i])])
            return false;
    }
    return true;
}

/* Whether @c is OWS, optional whitespace: SP or HTAB (RFC 9110 section 5.6.3). */
static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

#endif
