/* corio http: an HTTP/1.1 request parser, chunked decoder and response helpers (pure functions
 * over caller memory), and an HTTP/1.1 server on corio's coroutines. Link with libcorio_http.
 *
 * The parser section is pure functions over caller memory: nothing there does I/O, allocates,
 * blocks or suspends, and every pointer a call hands back points into a buffer the caller passed
 * in. The server section runs on a corio loop.
 *
 * The conventions of corio.h hold here too: results are >= 0 or -errno, and there are no
 * library-specific codes. A request that cannot be served fails with one errno per HTTP status,
 * and corio_http_status() gives the status a server answers it with:
 *   -EBADMSG          400 Bad Request: malformed syntax or framing, a smuggling shape
 *   -EACCES           403 Forbidden: a path that would leave the document root
 *   -ETIMEDOUT        408 Request Timeout: a deadline passed while the request was read
 *   -EMSGSIZE         413 Content Too Large: a body above max_body_bytes
 *   -ENAMETOOLONG     414 URI Too Long: a request-target above max_target_bytes
 *   -ERANGE           416 Range Not Satisfiable: a byte range that selects nothing
 *   -E2BIG            431 Request Header Fields Too Large: a head or trailer section too big,
 *                     or too many fields
 *   -EOPNOTSUPP       501 Not Implemented: an unknown method or transfer coding
 *   -EPROTONOSUPPORT  505 HTTP Version Not Supported
 * A parser that needs more input returns -EAGAIN, as corio's other non-waiting calls do where
 * they would have to wait; it is not an error of the request, and the caller feeds more bytes.
 * The errnos were picked for their meaning and so that none is also what the same call returns
 * for another reason: -ENOSPC (a caller's buffer too small) and -EINVAL (a caller's argument)
 * stay with the caller's mistakes.
 *
 * Calls that wait on the peer take an absolute deadline last (corio.h); corio_http_serve runs
 * until cancelled, and the server's own bounds are durations in its options.
 */
#ifndef CORIO_HTTP_H
#define CORIO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "corio.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== parser ================================================================================= */

/* Defaults that corio_http_limits_init() fills in. */
#define CORIO_HTTP_DEFAULT_MAX_HEAD_BYTES 8192
#define CORIO_HTTP_DEFAULT_MAX_HEADERS 64
#define CORIO_HTTP_DEFAULT_MAX_TARGET_BYTES 4096
#define CORIO_HTTP_DEFAULT_MAX_BODY_BYTES (1024 * 1024)

/* Longest chunk-size line (size, extensions and CRLF) the chunked decoder accepts. */
#define CORIO_HTTP_MAX_CHUNK_LINE 4096

/* Length of an IMF-fixdate such as "Sun, 06 Nov 1994 08:49:37 GMT". */
#define CORIO_HTTP_DATE_LEN 29

/* Request methods the server implements. Any other syntactically valid method fails with
 * -EOPNOTSUPP (501). */
enum corio_http_method {
    CORIO_HTTP_METHOD_UNKNOWN = 0, /* only seen in a zeroed struct, never after a parse */
    CORIO_HTTP_GET,
    CORIO_HTTP_HEAD,
    CORIO_HTTP_POST,
    CORIO_HTTP_PUT,
    CORIO_HTTP_DELETE,
    CORIO_HTTP_OPTIONS,
    CORIO_HTTP_PATCH,
    CORIO_HTTP_TRACE,
    CORIO_HTTP_CONNECT,
};

/* Limits a parse enforces. A NULL limits pointer anywhere in this API means the defaults. */
struct corio_http_limits {
    size_t max_head_bytes;   /* whole head incl. ignored leading CRLFs and final CRLF; else
                              * -E2BIG. Also bounds a chunked body's trailer section (-E2BIG). */
    size_t max_headers;      /* header fields in a head; one more gives -E2BIG */
    size_t max_target_bytes; /* request-target length; one more gives -ENAMETOOLONG */
    int64_t max_body_bytes;  /* Content-Length or decoded chunked payload; one more gives
                              * -EMSGSIZE */
};

/* One header field. Both point into the caller's buffer and are not NUL-terminated. The name is
 * as sent (compare it case-insensitively); the value has leading and trailing SP/HTAB removed. */
struct corio_http_header {
    const char *name;  /* field name, a non-empty token */
    size_t name_len;   /* bytes in name */
    const char *value; /* field value without surrounding whitespace, may be empty */
    size_t value_len;  /* bytes in value */
};

/* A parsed request head. Every pointer points into the buffer given to the parse, so the struct is
 * valid only as long as those bytes stay where they are. Absent optional fields are NULL with 0
 * length. */
struct corio_http_request {
    enum corio_http_method method;     /* the method, never UNKNOWN after a successful parse */
    const char *method_str;            /* the raw method token */
    size_t method_len;                 /* bytes in method_str */
    const char *target;                /* the raw request-target, not decoded or validated */
    size_t target_len;                 /* bytes in target, 1..max_target_bytes */
    int minor_version;                 /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    struct corio_http_header *headers; /* the caller's header storage, in arrival order */
    size_t num_headers;                /* header fields stored in headers */
    int64_t content_length;            /* Content-Length, or -1 when absent */
    bool chunked;                      /* Transfer-Encoding: chunked; then content_length is -1 */
    bool keep_alive;                   /* the connection may serve another request after this */
    bool expect_continue;              /* HTTP/1.1 "Expect: 100-continue" was sent */
    const char *host;                  /* Host value (at most one is accepted) */
    size_t host_len;                   /* bytes in host */
    const char *if_modified_since;     /* first If-Modified-Since value */
    size_t if_modified_since_len;      /* bytes in if_modified_since */
    const char *range;                 /* Range value; NULL if absent or sent more than once */
    size_t range_len;                  /* bytes in range */
};

/* Incremental state of one head parse. It holds offsets only, never pointers, so the caller may
 * move or grow its buffer between calls as long as the bytes already passed stay the same. */
struct corio_http_parser {
    size_t scanned;    /* bytes already scanned for the terminating blank line */
    size_t line_start; /* offset of the line being scanned */
    size_t head_start; /* offset of the request line, after ignored leading CRLFs */
    size_t target_len; /* request-target bytes seen so far while the request line is incomplete */
    unsigned state;    /* scanner state: leading CRLFs, method, target, rest of line, fields */
};

/* Static initializer for struct corio_http_parser; equivalent to corio_http_parser_init(). */
/* clang-format off */
#define CORIO_HTTP_PARSER_INIT { 0, 0, 0, 0, 0 }
/* clang-format on */

/* Incremental state of one chunked body decode (RFC 9112 section 7.1). */
struct corio_http_chunked {
    uint64_t chunk_left; /* payload bytes left in the current chunk, or the chunk-size so far */
    uint64_t total;      /* payload bytes decoded so far */
    uint64_t max_body;   /* limit on total (-EMSGSIZE) */
    size_t max_trailer;  /* limit on the trailer section's bytes (-E2BIG) */
    size_t line_len;     /* bytes of the current chunk-size line or trailer section so far */
    unsigned state;      /* where the decoder is inside the chunk framing */
};

/* Fills @lim with the defaults (8192-byte head, 64 headers, 4096-byte target, 1 MiB body).
 * Returns nothing. */
CORIO_API void corio_http_limits_init(struct corio_http_limits *lim);

/* Resets @p for a new request head. A zeroed struct (CORIO_HTTP_PARSER_INIT) is equally valid.
 * Returns nothing. */
CORIO_API void corio_http_parser_init(struct corio_http_parser *p);

/* Parses an HTTP/1.1 request head from @buf[0..@len).
 *
 * Call it each time more bytes arrive, always with the whole unconsumed data from the start of
 * the request (the buffer may move between calls, but bytes already passed must not change).
 * Only the new bytes are scanned for the blank line that ends the head, so feeding a head one
 * byte at a time costs O(n) in total; the head is then parsed in one pass. Empty lines (CRLF)
 * before the request line are skipped and count towards the returned length and max_head_bytes.
 * @lim may be NULL for the defaults and must be the same on every call for one head. The -E2BIG
 * for an oversized head needs max_head_bytes + 1 bytes to be seen, so a server whose buffer is
 * smaller than that and fills up without a result should answer 431 itself.
 *
 * On success @req is filled with pointers into @buf, and the fields go to @headers, of which at
 * most min(@nheaders, @lim->max_headers) are used. The body, if any, starts at @buf + return value:
 * content_length bytes of it, or a chunked body for corio_http_chunked_decode(), or none when
 * content_length is -1 and chunked is false. @req is untouched unless the head is complete.
 *
 * Strictness follows RFC 9112 and refuses request smuggling shapes: a bare LF, obs-fold, space
 * before a colon, a second Content-Length or Host, Content-Length with Transfer-Encoding, and
 * Transfer-Encoding in HTTP/1.0 are all errors. Errors (the status to answer in brackets):
 *   -EBADMSG (400) any syntax violation, the above, a missing Host in HTTP/1.1, chunked not last
 *        in Transfer-Encoding, a malformed version ("HTTP/1.1" must match exactly in shape);
 *   -EMSGSIZE (413) Content-Length above max_body_bytes;
 *   -ENAMETOOLONG (414) request-target above max_target_bytes, reported as soon as the partial
 *        line shows it;
 *   -E2BIG (431) head above max_head_bytes (reported once that many bytes arrived without the
 *        blank line), or more header fields than allowed;
 *   -EOPNOTSUPP (501) a valid method token that is not in enum corio_http_method, or a
 *        Transfer-Encoding other than exactly "chunked";
 *   -EPROTONOSUPPORT (505) a well-formed version other than HTTP/1.0 and HTTP/1.1.
 * Syntax errors of the complete head take precedence over -EOPNOTSUPP and -EMSGSIZE. The same
 * bytes give the same result however they are split across calls. @p is reset on completion and
 * on error, so pipelined requests are parsed by calling again at @buf + return value.
 *
 * Returns the head length in bytes (> 0) when complete, -EAGAIN when more bytes are needed (@p
 * keeps how far it got), or -errno as listed above. */
CORIO_API ssize_t corio_http_parse_request(struct corio_http_parser *p, const char *buf, size_t len,
                                           const struct corio_http_limits *lim,
                                           struct corio_http_request *req,
                                           struct corio_http_header *headers, size_t nheaders);

/* Finds the first header field of @req named @name (NUL-terminated, compared case-insensitively,
 * as field names are). Pure: no I/O, never suspends. Returns 0 with *@value pointing into the
 * buffer @req was parsed from (not NUL-terminated; leading and trailing whitespace removed) and
 * *@len its length, or -ENOENT when no field has that name. */
CORIO_API int corio_http_header_get(const struct corio_http_request *req, const char *name,
                                    const char **value, size_t *len);

/* Joins the values of every header field of @req named @name (case-insensitive) into @buf, in the
 * order they came, separated by ", ", and NUL-terminates it: the one field a list-valued header
 * sent as several lines stands for (RFC 9110 section 5.3), such as Accept or Cache-Control. An
 * empty field adds no element. Not for a field whose values may hold commas of their own and
 * that cannot be combined (Set-Cookie, or a Cookie sent twice): read those one at a time from
 * @req->headers. Pure: never suspends. Returns the joined length (without the NUL), -ENOENT when
 * no field has that name, or -ENOSPC when the result and its NUL do not fit in @cap bytes. */
CORIO_API ssize_t corio_http_header_join(const struct corio_http_request *req, const char *name,
                                         char *buf, size_t cap);

/* Looks up @key in the query of @req's request-target (after '?', up to a '#'): the pairs are
 * separated by '&', a pair is key=value (a key alone has an empty value), and both are decoded
 * as HTML forms encode them (application/x-www-form-urlencoded): "%XX" is that byte and '+' a
 * space. @key is compared with the decoded key, exactly; the first match wins. The decoded
 * value is copied to @out and NUL-terminated. Pure: never suspends. Returns its length (without
 * the NUL), -ENOENT when no pair has that key (or the target has no query), -EBADMSG when the
 * value holds a bad %-escape or an encoded NUL (which would cut it short as a C string), or
 * -ENOSPC when it and its NUL do not fit in @cap bytes. */
CORIO_API ssize_t corio_http_query_get(const struct corio_http_request *req, const char *key,
                                       char *out, size_t cap);

/* Looks up the cookie @name in @req's Cookie header fields (every one of them, in order: a client
 * sends one, HTTP/2 gateways several): the pairs are "name=value" separated by ';', with SP or
 * HTAB allowed around them, and a value in double quotes is given without them. @name is compared
 * exactly (cookie names are case-sensitive); the first match wins, and a pair without '=' is
 * skipped. The value is copied to @out as it was sent (cookies are opaque: no %-decoding) and
 * NUL-terminated. Pure: never suspends. Returns its length (without the NUL), -ENOENT when no
 * pair has that name (or @name is empty), or -ENOSPC when it and its NUL do not fit in @cap
 * bytes. */
CORIO_API ssize_t corio_http_cookie_get(const struct corio_http_request *req, const char *name,
                                        char *out, size_t cap);

/* Prepares @c to decode one chunked body under @lim (NULL: defaults): max_body_bytes bounds the
 * decoded payload and max_head_bytes bounds the trailer section. Returns nothing. */
CORIO_API void corio_http_chunked_init(struct corio_http_chunked *c,
                                       const struct corio_http_limits *lim);

/* Decodes the next bytes of a chunked body in place.
 *
 * Reads @buf[0..@len), moves the payload bytes it finds to @buf[0..*@produced) (every
 * payload byte comes after its chunk-size line, so the write never overtakes the read), and sets
 * *@consumed to the input bytes used. Until the body ends all input is consumed, so the caller
 * handles the payload and then reads more into @buf from offset 0. When the body ends (last chunk
 * and trailer section, whose fields are checked like head fields and then discarded), *@consumed
 * stops right after it, and @buf[*@consumed..@len) is the start of the next pipelined request.
 * Chunk extensions are checked for syntax and ignored. Any split of the input gives the same
 * payload and result. After an error the outputs are unspecified and the connection must close.
 *
 * Returns 0 when the body is complete, -EAGAIN when more bytes are needed (the payload found so
 * far is in *@produced all the same), or -errno: -EBADMSG (400) for bad framing (bad hex,
 * chunk-size overflow, bad extension, bare LF, missing CRLF after the data, bad trailer field,
 * chunk-size line over CORIO_HTTP_MAX_CHUNK_LINE), -EMSGSIZE (413) when the payload would exceed
 * max_body_bytes, -E2BIG (431) when the trailers exceed max_head_bytes. */
CORIO_API int corio_http_chunked_decode(struct corio_http_chunked *c, char *buf, size_t len,
                                        size_t *produced, size_t *consumed);

/* Looks up the reason phrase of @status ("Not Found" for 404). Returns a static string, "Unknown"
 * for codes the table lacks. */
CORIO_API const char *corio_http_reason(int status);

/* Maps an error of this module to the HTTP status a server answers it with, as the table at the
 * top of this header says (-EMSGSIZE: 413). Pure: no I/O, never suspends. Returns the status,
 * 400 for any other value (including -EAGAIN and non-negative ones, which are not errors of a
 * request). */
CORIO_API int corio_http_status(int err);

/* Kinds of Content-Range header corio_http_format_response() can emit. */
enum corio_http_content_range {
    CORIO_HTTP_CONTENT_RANGE_NONE = 0,   /* no Content-Range */
    CORIO_HTTP_CONTENT_RANGE_BYTES,      /* "bytes first-last/size", for 206 */
    CORIO_HTTP_CONTENT_RANGE_UNSATISFIED /* "bytes *" "/size" (one string), for 416 */
};

/* What corio_http_format_response() writes. A zeroed struct plus a status is a valid response
 * with "Content-Length: 0" and "Connection: close". */
struct corio_http_response {
    int status;               /* 100..999; the line is "HTTP/1.1 <status> <reason>" */
    time_t date;              /* Date header value, used when date_str is NULL */
    const char *date_str;     /* if non-NULL, CORIO_HTTP_DATE_LEN bytes of IMF-fixdate copied
                               * verbatim; lets a server format the date once per second */
    const char *content_type; /* NUL-terminated Content-Type value; NULL omits the header */
    int64_t content_length;   /* Content-Length value; negative omits the header */
    bool keep_alive;          /* "Connection: keep-alive" if true, else "Connection: close" */
    bool has_last_modified;   /* emit Last-Modified from last_modified */
    time_t last_modified;     /* Last-Modified value when has_last_modified */
    enum corio_http_content_range content_range; /* Content-Range form */
    int64_t range_first;                         /* first byte for CONTENT_RANGE_BYTES */
    int64_t range_last;                          /* last byte, inclusive, for CONTENT_RANGE_BYTES */
    int64_t range_size;                          /* complete length for either Content-Range form */
    const char *extra; /* raw header lines, each ending in CRLF, copied verbatim */
    size_t extra_len;  /* bytes in extra */
};

/* Formats the status line and headers of @r, ending with the blank line, into @buf[0..@cap), in
 * the order Date, Server: corio, Content-Type, Content-Length, Last-Modified, Content-Range,
 * Connection, extra. Nothing is NUL-terminated. Returns the length written, -ENOSPC if it does
 * not fit in @cap, or -EINVAL for a status outside 100..999 or a date outside years 0..9999. */
CORIO_API ssize_t corio_http_format_response(char *buf, size_t cap,
                                             const struct corio_http_response *r);

/* Formats @t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into @buf, adding a NUL when
 * @cap leaves room for one. Uses plain arithmetic: no locale, no TZ, no libc time calls.
 * Returns CORIO_HTTP_DATE_LEN, -ENOSPC if @cap is below that, or -EINVAL if the year of @t is
 * outside 0..9999. */
CORIO_API int corio_http_format_date(char *buf, size_t cap, time_t t);

/* Parses the HTTP-date in @s[0..@len) in any of the three formats RFC 9110 section 5.6.7 requires
 * a recipient to accept: IMF-fixdate, RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit
 * year below 70 means 20yy, else 19yy) and asctime ("Sun Nov  6 08:49:37 1994"). The whole input
 * must match; names are case-sensitive as the grammar says; the weekday is checked to be a
 * weekday name but not against the date. Returns 0 with *@out set, or -EINVAL. */
CORIO_API int corio_http_parse_date(const char *s, size_t len, time_t *out);

/* Picks a Content-Type from the extension of the file name @path[0..@len) (case-insensitive):
 * html htm css js mjs json txt xml svg png jpg jpeg gif webp ico wasm pdf woff woff2 mp4; text
 * types carry "; charset=utf-8". Returns a static NUL-terminated string,
 * "application/octet-stream" for anything else. */
CORIO_API const char *corio_http_mime_type(const char *path, size_t len);

/* Results of corio_http_parse_range() besides -ERANGE. */
#define CORIO_HTTP_RANGE_IGNORE 0  /* serve the whole representation with 200 */
#define CORIO_HTTP_RANGE_PARTIAL 1 /* serve *first..*last with 206 */

/* Interprets the Range value @s[0..@len) against a representation of @size bytes. Only a single
 * range of unit "bytes" is honoured: "bytes=a-b" (b clamped to size-1), "bytes=a-" and "bytes=-n"
 * (the last n bytes, the whole file if n >= size), with OWS allowed around the range. A malformed
 * value, another unit, or several ranges are ignored, as RFC 9110 section 14.2 allows.
 * Returns CORIO_HTTP_RANGE_PARTIAL with *@first and *@last (inclusive) set,
 * CORIO_HTTP_RANGE_IGNORE, or -ERANGE (416) when the range is valid but selects no byte
 * (a >= size, a zero-length suffix, or an empty representation); answer that with
 * CONTENT_RANGE_UNSATISFIED. */
CORIO_API int corio_http_parse_range(const char *s, size_t len, int64_t size, int64_t *first,
                                     int64_t *last);

/* Turns a request-target into a file path below a document root. Takes the path part (up to '?'
 * or '#'; an absolute-form "http://host" or "https://host" prefix is dropped), percent-decodes
 * it, drops "." segments and collapses "//", keeping a trailing '/'. The result always starts
 * with '/', contains no ".." segment, and is NUL-terminated in @out; it is never longer than
 * @len, so @cap = @len + 1 always suffices. Returns the path length (excluding the NUL),
 * -EBADMSG (400) for a target that is not a path, a bad %-escape or a NUL byte, -EACCES (403)
 * for a ".." segment (also when encoded) or an encoded '/' ("%2F"), which could walk out of the
 * root, or -ENOSPC when @cap is too small. */
CORIO_API ssize_t corio_http_decode_path(const char *target, size_t len, char *out, size_t cap);

/* ==== server ================================================================================= */

/* corio http: an HTTP/1.1 server on corio's coroutines. One coroutine per connection reads
 * requests (keep-alive, pipelining), routes them by method and path to handlers, writes responses
 * in order, and serves static files from a directory. The limits a server embedded on the
 * internet needs are built in: head size and field count, body size, an absolute deadline to
 * receive a head (slowloris), an idle keep-alive timeout, and a cap on connections. */

struct corio_http_server;
struct corio_http_conn;

/* A route's handler: answers @req on connection @c with corio_http_respond (or streams with
 * corio_http_respond_start + corio_http_write, and corio_http_finish for a body of unknown
 * length). It runs in the connection's coroutine and may suspend. @c, @req and everything @req
 * points to belong to the server and are valid until the handler returns; the calls on @c are
 * made from the handler's coroutine only. @arg is the route's, passed as given.
 *
 * Deadlines. The handler runs under no deadline of the server's. The calls it makes that wait on
 * the peer (corio_http_respond, _respond_start, _write, _read_body, ...) each take a deadline of
 * their own, and the server bounds its side of them too: a write by idle_timeout from the moment
 * it has to wait, a body read by body_timeout from the end of the head. A deadline the handler
 * sets with corio_set_deadline bounds every wait it makes, these calls included, and ends when it
 * returns. Whichever of these is earliest ends the wait with -ETIMEDOUT.
 *
 * A negative return, or a return without a response, makes the server answer 500 and close the
 * connection. Returns 0 or -errno. */
typedef int corio_http_handler(struct corio_http_conn *c, const struct corio_http_request *req,
                               void *arg);

/* Receives lines of the access log: @len bytes at @lines, one or more whole lines, each ending
 * in '\n', in the order the requests ended. A line is the Common Log Format with the duration
 * appended:
 *   peer - - [day/Mon/year:HH:MM:SS +0000] "METHOD target HTTP/1.x" status bytes seconds
 * where peer is the client's address (a Unix socket's peer is "-"), bytes counts the head and
 * body sent (a response cut short counts what was written for it), and seconds is the time from
 * the end of the head to the end of the request, in microseconds' precision. Bytes of the method
 * and target outside visible ASCII, '"' and '\\' are written as \xHH, and a target is cut at 2048
 * bytes. Lines are gathered in a buffer of the server's (one server serves one loop), and
 * handed over when it fills (one hand-over per 64 KiB of lines), once a second, and when the
 * last corio_http_serve or corio_http_serve_conn of the server returns. The function runs on the
 * loop's thread, in a coroutine of the server's (the connection's whose line filled the buffer,
 * a timer's, or the serving call's as it ends), and must not suspend: copy the lines, or write
 * them without waiting. Without a function, access_log_fd gets the lines with write(2) on the
 * loop's thread, as nginx writes its log: give it a file, or a pipe that is read promptly. @arg is
 * the option's access_log_arg. Returns nothing. */
typedef void corio_http_access_log_fn(void *arg, const char *lines, size_t len);

/* The server's configuration. The timeouts are durations in nanoseconds (CORIO_SEC(10)), not
 * deadlines: the server turns each into a deadline when the phase it bounds begins. Zero means the
 * default for every field. */
struct corio_http_server_opts {
    /* The directory served for GET and HEAD requests that no route takes; NULL: none. */
    const char *root;
    /* Head, field, target and body limits; zero fields: the defaults. */
    struct corio_http_limits limits;
    int64_t header_timeout; /* ns from a head's first byte (or the accept) to its end;
                               then 408 and close. Default 10 s */
    int64_t idle_timeout;   /* ns a keep-alive connection may wait for its next request,
                               and a write may wait for the peer to read; then it is
                               closed. Default 60 s */
    int64_t body_timeout;   /* ns to receive a request body once its head is in; also
                               bounds a static file's reads. Default 60 s */
    size_t max_connections; /* connections served at once; more wait in the listen
                               backlog. Default 10000 */
    size_t buffer_size;     /* per-connection input and output buffers, each; at least
                               max_head_bytes + 1. Default 16 KiB */
    uint64_t max_requests;  /* requests one connection may make: the response to the last
                               says "Connection: close" and the connection then closes, so
                               that clients spread over restarted or added servers. Default
                               (0): no limit */
    /* The access log: one line per request, off by default (see corio_http_access_log_fn).
     * Lines go to access_log when set, else to access_log_fd when it is above 0. */
    corio_http_access_log_fn *access_log; /* receives the lines; NULL: none */
    void *access_log_arg;                 /* passed to access_log as given */
    int access_log_fd;                    /* > 0: the lines are written to it; 0: none */
    /* Zero: room for the options of later 1.x releases. The struct is read field by field and
     * zero means the default for each, as corio_loop_opts (corio.h): a new option comes out of
     * this room, so that the struct keeps its size. */
    unsigned char reserved_[60];
};

/* A server's counters, kept by the server and read with corio_http_server_stats. */
struct corio_http_stats {
    uint64_t connections;  /* accepted */
    uint64_t requests;     /* heads parsed and dispatched */
    uint64_t responses;    /* responses written, including error responses */
    uint64_t bad_requests; /* requests refused with a 4xx/5xx by the parser or a limit */
    uint64_t timeouts;     /* heads that missed their deadline (408) */
    int64_t open;          /* connections open now */
};

/* Creates a server, owned by the caller until corio_http_server_free. @opts may be NULL for the
 * defaults; it is copied, and the root directory is opened now (the string is not kept). Does
 * not suspend: usable outside coroutines. Returns 0 and sets *@out, or -errno: -ENOENT/-ENOTDIR/
 * -EACCES for a root that cannot be opened, -EINVAL, -ENOMEM. */
CORIO_API int corio_http_server_new(struct corio_http_server **out,
                                    const struct corio_http_server_opts *opts);

/* Frees a server that is not serving (no corio_http_serve of it is running) and closes its root
 * directory. NULL is a no-op. Does not suspend. Returns nothing. */
CORIO_API void corio_http_server_free(struct corio_http_server *s);

/* Routes requests with @method ("GET", ...; NULL for any) and @path to @h(c, req, arg). @path is
 * matched exactly against the request-target's path (the part before '?'), or as a prefix when
 * it ends in '*', or as a pattern when a segment starts with ':' or the last one with '*' and a
 * name ("Routing" at the end of this header says how, and in which order routes are tried).
 * A GET route takes HEAD requests too. @path is copied; @arg is passed to @h as given. Add
 * routes before serving. Does not suspend. Returns 0, -EINVAL (no path, a path without a
 * leading '/', an unknown method, no handler, a pattern that breaks the rules there) or
 * -ENOMEM. */
CORIO_API int corio_http_route(struct corio_http_server *s, const char *method, const char *path,
                               corio_http_handler *h, void *arg);

/* Serves connections accepted on listening socket @lfd, one coroutine each, until the calling
 * coroutine is cancelled; then every connection is cancelled and awaited before it returns. It
 * takes no deadline: it runs until cancelled (corio_cancel), which is how a server is stopped;
 * the bounds of each connection are the durations in corio_http_server_opts. A deadline the
 * calling coroutine set with corio_set_deadline would end the accept loop too, as -ETIMEDOUT.
 * A drain of the loop (corio_loop_drain) is the graceful stop: it accepts no more, a keep-alive
 * connection waiting for its next request is closed at once, a request under way is answered
 * with "Connection: close" and its connection then closed, and it returns once every connection
 * has ended (the drain's deadline cancels those left). Does not close @lfd. Must run in a
 * coroutine, and suspends. Returns -ECANCELED after a cancel, -ESHUTDOWN after a drain, or -errno
 * if accept fails for good (-EMFILE/-ENFILE are waited out, not returned). */
CORIO_API int corio_http_serve(struct corio_http_server *s, int lfd);

/* Serves one connection @fd that the caller accepted itself (elsewhere: another loop's acceptor
 * hands it over, or a listener the server does not know), in the calling coroutine, until it
 * ends, as corio_http_serve serves each of its own: the same routes, bounds and drain. @peer
 * (@peer_len bytes, or NULL and 0) is what corio_http_peer_addr reports. Takes @fd over: it is
 * closed when the connection ends, and also when this call fails. A server's calls of this and
 * of corio_http_serve may run side by side in coroutines of its loop, and share its connection
 * limit and its buffer ring (made by the first of them, freed by the last). Must run in a
 * coroutine, and suspends. Returns 0 once the connection has ended, or -errno: -EAGAIN when
 * max_connections connections are open already, -EINVAL, -EPERM outside a coroutine. */
CORIO_API int corio_http_serve_conn(struct corio_http_server *s, int fd,
                                    const struct sockaddr *peer, socklen_t peer_len);

/* Reads the counters of @s. Does not suspend. Returns a pointer into @s, valid until
 * corio_http_server_free, whose counters move as the server runs. */
CORIO_API const struct corio_http_stats *corio_http_server_stats(const struct corio_http_server *s);

/* Copies the address of the peer of connection @c to @addr and its length to *@len: what accept
 * reported when the connection came, kept for its whole life, so the call costs no system call.
 * For TCP an AF_INET or AF_INET6 address with the peer's port; for a Unix socket usually just the
 * family (an unnamed peer). Does not suspend. Returns 0, or -ENOTCONN if accept reported no
 * address. */
CORIO_API int corio_http_peer_addr(struct corio_http_conn *c, struct sockaddr_storage *addr,
                                   socklen_t *len);

/* Copies the local address of connection @c (the server's end: which of the host's addresses
 * and which port the peer reached) to @addr and its length to *@len. The first call on a
 * connection asks the kernel (getsockname) and keeps the answer for the later ones. Does not
 * suspend. Returns 0 or -errno from getsockname. */
CORIO_API int corio_http_local_addr(struct corio_http_conn *c, struct sockaddr_storage *addr,
                                    socklen_t *len);

/* Room for the header fields a handler adds to one response with corio_http_add_header: each
 * takes strlen(name) + strlen(value) + 4 bytes ("name: value" and CRLF). */
#define CORIO_HTTP_ADDED_HEADER_BYTES 4096

/* Adds the header field "@name: @value" to the response the handler is about to start, after
 * the server's own fields; call it any number of times before corio_http_respond or
 * corio_http_respond_start, as long as the fields fit in CORIO_HTTP_ADDED_HEADER_BYTES. A field
 * may be added more than once (Set-Cookie), and the fields go out in the order added. They belong
 * to this request's response: the next request starts with none, and an error response of the
 * server's own (the 500 for a handler that did not answer) leaves them out. @name must be a token
 * (RFC 9110 section 5.1) and @value may hold SP, HTAB, visible ASCII and bytes >= 0x80 but no
 * CR, LF, NUL or other control byte, so a field can never end early or inject another. The
 * fields the server writes itself are refused: Content-Length, Transfer-Encoding, Connection,
 * Date, Server, and Content-Type (pass that to the respond call). Both strings are copied. Does
 * not suspend. Returns 0, or -errno: -EINVAL for a NULL, empty or invalid name, an invalid value
 * or a refused name; -ENOSPC when the field does not fit in the room left; -EALREADY once the
 * response has started. */
CORIO_API int corio_http_add_header(struct corio_http_conn *c, const char *name, const char *value);

/* Sends a whole response: status line, headers (Date, Server, Content-Type if @content_type is not
 * NULL, Content-Length, Connection, then those added with corio_http_add_header) and @body. For
 * HEAD requests the body is left out, and so are Content-Type and Content-Length for 1xx, 204
 * and 304. Responses are buffered and flushed before
 * the connection next waits, so pipelined requests share sends: the call waits only when the
 * buffer is full, and then at most until @deadline (or the server's idle bound, if earlier). The
 * strings and @body are copied or sent before it returns. Call it from the handler, once per
 * request. May suspend. Returns 0 or -errno: -EALREADY if a response was already started,
 * -ETIMEDOUT when @deadline passed while waiting, -EPIPE or another send error when the peer is
 * gone (the connection then closes after the handler), -ENOSPC when the head does not fit the
 * server's buffer, -EINVAL for a status outside 100..999. */
CORIO_API int corio_http_respond(struct corio_http_conn *c, int status, const char *content_type,
                                 const void *body, size_t len, int64_t deadline);

/* Starts a response whose body the handler then sends with corio_http_write. @content_length >= 0
 * is the body's exact length (Content-Length); -1 means a length not known in advance, and then
 * the body is framed by what the client can read:
 * - an HTTP/1.1 client gets "Transfer-Encoding: chunked": each corio_http_write with len > 0
 *   sends one chunk, and corio_http_finish (or a corio_http_write with len 0) sends the last
 *   chunk; the connection stays open for the next request;
 * - an HTTP/1.0 client gets neither length nor coding and "Connection: close": the body ends with
 *   the connection, which closes after the handler.
 * A handler that returns without ending such a body has it ended for it, unless it returns an
 * error: then the connection closes without the last chunk, so the client sees the body cut.
 * For 1xx, 204 and 304, -1 means no body at all. The head is buffered like corio_http_respond's,
 * and the call waits (until @deadline at the latest) only to make room. May suspend. Returns 0 or
 * -errno, as corio_http_respond. */
CORIO_API int corio_http_respond_start(struct corio_http_conn *c, int status,
                                       const char *content_type, int64_t content_length,
                                       int64_t deadline);

/* Sends body bytes of a response started with corio_http_respond_start: of a Content-Length body
 * at most what it still owes (len 0 does nothing), of a body of unknown length one chunk (len 0
 * ends it, as corio_http_finish). The bytes are copied to the output buffer, or sent from @buf
 * when they do not fit, and go out when the buffer fills, at corio_http_flush, or when the handler
 * returns; the call waits for the peer to take them until @deadline at the latest (or the server's
 * idle bound, if earlier), and @buf (NULL allowed with len 0) is the caller's again when it
 * returns. A write that failed or timed out has cut the response: the connection closes after the
 * handler. For a HEAD request nothing is sent and the call returns 0. May suspend. Returns 0 or
 * -errno: -EINVAL without a started response or for more bytes than Content-Length left,
 * -ETIMEDOUT, -EPIPE when the peer is gone. */
CORIO_API int corio_http_write(struct corio_http_conn *c, const void *buf, size_t len,
                               int64_t deadline);

/* Sends @len bytes of the open file @fd, from offset @off, as body bytes of a response started
 * with corio_http_respond_start: for a Content-Length body at most what it still owes, for a body
 * of unknown length one chunk (or the bytes as they are for an HTTP/1.0 client). The bytes go
 * from the page cache to the socket with splice(2), through a pipe of the server's, never through
 * the caller's memory nor the server's (a short range is copied to the output buffer instead, to
 * go out with the head in one send). The file's offset is not moved, and @fd stays the caller's:
 * it may be closed when the call returns. @fd must be a file splice(2) reads from (a regular
 * file, a block device); bytes of it not in the page cache are read in first without holding the
 * loop's thread. The call waits for the peer to take the bytes until @deadline at
 * the latest (or the server's idle bound, if earlier). For a HEAD request nothing is sent and the
 * call returns 0. A failure cuts the response: the connection closes after the handler. May
 * suspend. Returns 0 or -errno: -EINVAL without a started response, for a negative @fd, @off or
 * @len, or for more bytes than Content-Length left; -EIO when the file ends before @off + @len;
 * -ETIMEDOUT; -EPIPE when the peer is gone; another errno of splice(2) or read(2). */
CORIO_API int corio_http_send_file(struct corio_http_conn *c, int fd, int64_t off, int64_t len,
                                   int64_t deadline);

/* Ends a response started with corio_http_respond_start(..., -1, ...): the last chunk for an
 * HTTP/1.1 client (buffered like the writes), nothing for an HTTP/1.0 one, whose connection then
 * closes. A response that is already complete (a corio_http_respond, a Content-Length body sent
 * whole, any response to HEAD) needs no end, and the call returns 0 for it. May suspend, to make
 * room in the output buffer, until @deadline. Returns 0, or -errno: -EINVAL when no response was
 * started or a Content-Length body still owes bytes, or a send error as corio_http_write. */
CORIO_API int corio_http_finish(struct corio_http_conn *c, int64_t deadline);

/* Sends what the connection's output buffer holds now (the response so far) instead of waiting
 * for the buffer to fill or the handler to return: for a body produced over time, so that the
 * client sees each part when it is written. Waits for the peer to take the bytes until @deadline
 * at the latest (or the server's idle bound, if earlier). May suspend. Returns 0 or -errno:
 * -ETIMEDOUT, -EPIPE when the peer is gone or an earlier send failed. */
CORIO_API int corio_http_flush(struct corio_http_conn *c, int64_t deadline);

/* Reads up to @len bytes of the request body (Content-Length or chunked, decoded) into @buf. A
 * client that sent "Expect: 100-continue" gets its 100 response on the first call. Waits for the
 * peer until @deadline or the server's body deadline (body_timeout after the head), whichever is
 * earlier. After a failure the rest of the body is unreadable and the connection closes after the
 * handler, which may still answer (408 for -ETIMEDOUT). May suspend. Returns the bytes read, 0 at
 * the end of the body (or when there is none), or -errno: -ETIMEDOUT, -EBADMSG, -EMSGSIZE or
 * -E2BIG for a malformed or oversized chunked body (answer corio_http_status() of it),
 * -ECONNRESET when the peer ends the stream inside the body, -EPROTO on a call after one of these
 * failed. */
CORIO_API ssize_t corio_http_read_body(struct corio_http_conn *c, void *buf, size_t len,
                                       int64_t deadline);

/* ==== client ================================================================================= */

/* corio http: an HTTP/1.1 client on corio's coroutines, with the response head parser it reads
 * with. The parser is a pure function like the request parser above; the client keeps a pool of
 * keep-alive connections per host and port, and its calls wait on the server until a deadline. */

/* A parsed response head. Every pointer points into the buffer given to the parse, as for a
 * request. */
struct corio_http_response_head {
    int status;                        /* the status code, 100..999 */
    int minor_version;                 /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    const char *reason;                /* the reason phrase, may be empty */
    size_t reason_len;                 /* bytes in reason */
    struct corio_http_header *headers; /* the caller's header storage, in arrival order */
    size_t num_headers;                /* header fields stored in headers */
    int64_t content_length;            /* Content-Length, or -1 when absent */
    bool chunked;                      /* Transfer-Encoding: chunked; then content_length is -1 */
    bool keep_alive;                   /* the server lets the connection carry another request */
};

/* Parses an HTTP/1.1 response head from @buf[0..@len), incrementally as
 * corio_http_parse_request() does: call it each time more bytes arrive with the whole unconsumed
 * data from the start of the response (bytes already passed must not change; the buffer may
 * move), with a @p that corio_http_parser_init() reset (or CORIO_HTTP_PARSER_INIT) and the same
 * @lim (NULL: defaults) each time. Only the new bytes are scanned. Fields follow the request
 * parser's rules exactly (no obs-fold, no space before the colon, no bare LF). Of @lim,
 * max_head_bytes and max_headers apply; a body's length is not bounded here.
 *
 * On success @resp is filled with pointers into @buf, the fields go to @headers (at most
 * min(@nheaders, max_headers)), and the body starts at @buf + return value. What frames the body
 * depends on the request too (RFC 9112 section 6.3), which the parser does not know: a response
 * to HEAD, and any 1xx, 204 or 304, has none whatever its fields say; else chunked, or
 * content_length bytes, or, with neither, the bytes until the server closes the connection. A 1xx
 * other than 101 is an interim response, and the final one follows it. @resp is untouched unless
 * the head is complete; @headers may be written. @p is reset on completion and on error.
 *
 * Returns the head length (> 0), -EAGAIN when more bytes are needed, or -errno: -EBADMSG for a
 * malformed head (the first bytes not "HTTP/", a bad status line or field, a bare LF, a second
 * Content-Length, Transfer-Encoding with Content-Length or in HTTP/1.0), -EMSGSIZE for a head
 * over max_head_bytes (as soon as that many bytes came without its end) or with more fields than
 * allowed, -EOPNOTSUPP for a transfer coding other than a single "chunked", -EPROTONOSUPPORT for
 * a well-formed version other than HTTP/1.0 and 1.1. */
CORIO_API ssize_t corio_http_parse_response(struct corio_http_parser *p, const char *buf,
                                            size_t len, const struct corio_http_limits *lim,
                                            struct corio_http_response_head *resp,
                                            struct corio_http_header *headers, size_t nheaders);

/* Finds the first header field of @resp named @name (NUL-terminated, case-insensitive), as
 * corio_http_header_get() does for a request. Pure: never suspends. Returns 0 with *@value (into
 * the parsed buffer, not NUL-terminated) and *@len set, or -ENOENT when no field has that name. */
CORIO_API int corio_http_response_header_get(const struct corio_http_response_head *resp,
                                             const char *name, const char **value, size_t *len);

struct corio_http_client;

/* A client's configuration. Zero means the default for every field. */
struct corio_http_client_opts {
    size_t max_idle;       /* idle connections kept per host and port. Default 8 */
    int64_t idle_timeout;  /* ns an idle connection is kept for reuse; then it is closed, by a
                              coroutine of the client's that lives while connections are idle.
                              Default 30 s */
    size_t max_head_bytes; /* largest response head, and largest request head; above it the
                              request fails with -EMSGSIZE. Default 8192 */
    size_t max_headers;    /* response header fields kept; more give -EMSGSIZE. Default 64 */
    size_t buffer_size;    /* each connection's buffer; at least max_head_bytes + 1024, so that
                              a chunked body has room beside the head. Default 16 KiB */
};

/* Where a streamed request body comes from: fills @buf with up to @len bytes by @deadline.
 * Returns the bytes written (> 0), 0 at the end of the body, or -errno, which fails the request. */
typedef ssize_t corio_http_body_fn(void *arg, void *buf, size_t len, int64_t deadline);

/* One request. Strings are NUL-terminated and read during the call only. */
struct corio_http_client_request {
    const char *method; /* any token ("GET", "POST", "PROPFIND"); NULL: "GET" */
    const char *host;   /* a host name (resolved with corio_resolve) or a numeric address */
    uint16_t port;      /* the server's TCP port */
    const char *target; /* the request-target, "/path?query"; NULL: "/" */
    /* Header fields to send, each a token name and a value without CR, LF, NUL or other control
     * bytes. The client writes Host (unless given here), and the framing fields itself:
     * Content-Length, Transfer-Encoding and Connection are refused here. */
    const struct corio_http_header *headers;
    size_t num_headers; /* fields in headers */
    /* The body: @body_len bytes at @body, sent with Content-Length (left out for a GET or HEAD
     * without a body), or, when body_fn is set, what it produces: body_length bytes exactly
     * (Content-Length), or, for -1, a chunked body until it returns 0. */
    const void *body;
    size_t body_len;
    corio_http_body_fn *body_fn;
    void *body_arg;      /* passed to body_fn */
    int64_t body_length; /* for body_fn: the body's exact length, or -1 for unknown (chunked) */
};

/* One request and its response, in the caller's storage: set by corio_http_client_send or
 * _fetch, read with corio_http_client_read, and ended with corio_http_client_end. */
struct corio_http_exchange {
    int status;                                  /* the final response's status */
    const struct corio_http_response_head *head; /* its head (fields, framing); valid until
                                                    corio_http_client_end */
    void *conn_;                                 /* private: the connection it holds */
};

/* The counters of a client, read with corio_http_client_stats. */
struct corio_http_client_counters {
    uint64_t requests; /* requests sent (a retry counts again) */
    uint64_t connects; /* connections made */
    uint64_t reused;   /* requests sent on a pooled connection */
    uint64_t retries;  /* requests sent again on a fresh connection after a pooled one failed */
    uint64_t stale;    /* pooled connections dropped: closed by the server or idle too long */
};

/* Creates a client, owned by the caller until corio_http_client_free. Its connections belong to
 * the loop that made them: use a client from coroutines of one loop, any number of them at once
 * (each request takes a connection of its own). While connections are idle in its pool, a
 * coroutine of the client's closes each at its idle_timeout, and so holds its loop until then (a
 * loop's run ends when its coroutines have): free the client to end it sooner. A drain of the
 * loop closes the idle connections at once. @opts may be NULL for the defaults; it is copied.
 * Does not suspend. Returns 0 and sets *@out, or -errno: -EINVAL for a buffer_size below
 * max_head_bytes + 1024, -ENOMEM. */
CORIO_API int corio_http_client_new(struct corio_http_client **out,
                                    const struct corio_http_client_opts *opts);

/* Closes the idle connections of @cl, ends its coroutine, and frees it. Every exchange must have
 * been ended first. NULL is a no-op. Works in a coroutine of the client's loop or outside any
 * loop (corio_close). Returns nothing. */
CORIO_API void corio_http_client_free(struct corio_http_client *cl);

/* Sends request @rq and reads the head of its response into @x. The connection is a pooled idle
 * one to rq->host:rq->port if there is one (a pooled connection the server has closed is noticed
 * and dropped first), else a new one (corio_dial_tcp: the name is resolved with corio_resolve).
 * If a pooled connection fails before any byte of the response came (the server closed it while
 * the request was on its way), the request is sent again once on a new connection, when that is
 * safe: an idempotent method (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) and a body from memory.
 * Interim 1xx responses are skipped. Everything, the retry included, ends by @deadline.
 *
 * On success the body, if any, is read with corio_http_client_read, and @x must be ended with
 * corio_http_client_end, which puts the connection back in the pool when the response was read
 * whole and both sides keep it alive. On failure @x holds nothing and needs no end (ending it is
 * harmless). Must run in a coroutine; may suspend. Returns the status (100..999) or -errno:
 * -ECONNREFUSED, -ENETUNREACH or corio_resolve's errors when no connection could be made,
 * -ECONNRESET when the server reset or closed the connection before the head was whole, -EPIPE
 * when it closed while the request was sent, -EBADMSG for a malformed response,
 * -EMSGSIZE for a response head over max_head_bytes or max_headers, -EOPNOTSUPP or
 * -EPROTONOSUPPORT as corio_http_parse_response, -E2BIG when the request head does not fit the
 * buffer, -ETIMEDOUT when @deadline passed, -ECANCELED, -EINVAL for a bad @rq (no host, a bad
 * method, target or header field, or a refused field), a body_fn's error, -ENOMEM. */
CORIO_API int corio_http_client_send(struct corio_http_client *cl, struct corio_http_exchange *x,
                                     const struct corio_http_client_request *rq, int64_t deadline);

/* Reads up to @len bytes of the body of @x's response into @buf, decoded (Content-Length, chunked,
 * or until the server closes, as the head says; nothing for HEAD, 1xx, 204 and 304). Waits until
 * @deadline at the latest. After a failure the connection is not reused. Must run in a coroutine;
 * may suspend. Returns the bytes read, 0 at the end of the body, or -errno: -ETIMEDOUT,
 * -ECONNRESET when the server ended the stream inside a Content-Length or chunked body (or reset
 * it), -EBADMSG for bad chunked framing, -EPROTO after an earlier failure, -EINVAL for an ended
 * @x. */
CORIO_API ssize_t corio_http_client_read(struct corio_http_exchange *x, void *buf, size_t len,
                                         int64_t deadline);

/* Ends @x: its connection goes back to its client's pool when the whole response was read, the
 * server did not ask to close, the body was not delimited by the close, and no byte follows it;
 * otherwise the connection is closed. @x->head is invalid afterwards. An ended or failed @x is a
 * no-op. Does not wait on the server. Returns nothing. */
CORIO_API void corio_http_client_end(struct corio_http_exchange *x);

/* corio_http_client_send, then the whole body read into @buf (@cap bytes), all by @deadline.
 * @x must be ended with corio_http_client_end (its head stays readable till then), also when
 * the body did not fit. Must run in a coroutine; may suspend. Returns the body's length (0 for
 * none; the status is @x->status), or -errno as corio_http_client_send and
 * corio_http_client_read, or -ENOSPC when the body is longer than @cap (@buf then holds the
 * first @cap bytes, and the connection is not reused). */
CORIO_API ssize_t corio_http_client_fetch(struct corio_http_client *cl,
                                          struct corio_http_exchange *x,
                                          const struct corio_http_client_request *rq, void *buf,
                                          size_t cap, int64_t deadline);

/* Reads the counters of @cl. Does not suspend. Returns a pointer into @cl, valid until
 * corio_http_client_free. */
CORIO_API const struct corio_http_client_counters *
corio_http_client_stats(const struct corio_http_client *cl);

/* ==== routing: patterns with parameters, mounts, hooks ====================================== */

/* Routing. corio_http_route takes three shapes of path, told apart by their bytes, so that one
 * call routes them all and a server's routes read as one table:
 * - exact: "/about", matched against the request's path byte for byte (no decoding, as the
 *   path arrives);
 * - prefix: "/stream/" followed by '*', matched against the path's first bytes;
 * - pattern: segments between '/', where a segment ":name" is a parameter that takes one
 *   non-empty segment of the request's path ("/users/:id", "/a/:x/b/:y"), and a last segment
 *   "*name" takes the rest of the path after the segments before it, '/' included and possibly
 *   empty ("/files/" followed by "*path" takes "/files/" and "/files/a/b.txt", not "/files").
 *   Other segments are literals, compared as exact paths are. A name is 1 to 31 letters, digits
 *   or '_', once per pattern; a pattern has at most 8 parameters and 32 segments; no segment is
 *   empty, and only the last starts with '*'.
 * Exact paths with ':' in a segment's first byte were literal before patterns existed: such a
 * route is a pattern now.
 *
 * Precedence: a request takes the first route, in the order they were added, of the first of
 * these tiers that has a route for both its path and its method: exact paths (looked up in a hash
 * table: one hash of the path however many routes there are), then patterns without a rest
 * segment, then prefixes, rest patterns and mounts. A route for any method (NULL) and a GET route
 * for HEAD count as routes for the method. When no tier has one: a GET or HEAD goes to the
 * server's root directory if it has one, else a path that some route takes for other methods is
 * answered 405 with Allow listing them all (over every tier), and any other 404. Matching
 * allocates nothing and reads the request's path once for the exact tier, and once more to split
 * it into segments when a pattern tier is reached. */

/* Returns the value of parameter @name (":name" or "*name" in the pattern of the route that
 * took the request on @c), and sets *@len to its length, or returns NULL when the route has no
 * such parameter. The value is percent-decoded as a static file's path is ("%20" is a space; a
 * '+' stays one): a request whose parameter holds a bad escape is answered 400, an encoded NUL
 * 400 and an encoded '/' 403, before any hook or handler runs. It is not NUL-terminated. It
 * points into the request's head in the server's input buffer, or, for a value that held an
 * escape, into the connection's room for decoded values (no copy for the common case, no
 * allocation for any); both stay valid until the handler returns, and for the hooks of the same
 * request until the after-hooks return. A rest parameter is not cleaned: it may hold "..", so a
 * handler that maps it to a file does what corio_http_decode_path does, or uses a mount. Does
 * not suspend. */
CORIO_API const char *corio_http_param(struct corio_http_conn *c, const char *name, size_t *len);

/* Serves the files below directory @dir for GET and HEAD requests whose path starts with @prefix
 * (which starts and ends with '/', has no '*' and no ':' segment, and is at most 256 bytes): the
 * prefix is stripped and the rest names the file, as the server's root directory does for its paths
 * (index.html for a directory, Last-Modified, 304, one Range, 403 for a path with a ".." segment,
 * 404 for a missing file). A mount is a route of the prefix tier (see Routing), and other methods
 * on its paths get 405. @dir is opened now (the string is not kept) and closed by
 * corio_http_server_free. Add mounts before serving. Does not suspend. Returns 0, or -errno:
 * -EINVAL for a bad prefix, -ENOENT/-ENOTDIR/-EACCES for a directory that cannot be opened,
 * -ENOMEM. */
CORIO_API int corio_http_mount(struct corio_http_server *s, const char *prefix, const char *dir);

/* An after-hook: called once a request's response is complete (or failed), with its @status (0
 * when no response head went out) and the @bytes of head and body it put out on the connection
 * (buffered or sent, an interim 100 Continue included; a HEAD's or a 304's head alone). It runs in
 * the connection's coroutine and may suspend; it must not answer (the response is over: the calls
 * return -EALREADY or -EINVAL).
 * @req and everything it points to are valid until it returns. Returns nothing. */
typedef void corio_http_after_hook(struct corio_http_conn *c, const struct corio_http_request *req,
                                   int status, uint64_t bytes, void *arg);

/* Adds a pair of hooks that run around every request the server parsed: @before (may be NULL)
 * once the request is routed (so corio_http_param works in it) and before its handler, its
 * mount, its static file or its 404/405; @after (may be NULL) once it is answered. Before-hooks
 * run in the order added, after-hooks in the reverse order, so that a pair added first wraps all
 * the others (as nested middleware does). A before-hook has a handler's signature and rules and
 * returns 0 to let the request go on; one that answers (401 for a missing credential, say) stops
 * it, and so does one that returns -errno (then without an answer, the server answers 500 and
 * closes, as for a failed handler): the later before-hooks and the handler are skipped. Every
 * after-hook runs for every request, stopped ones and the 400/403 of a bad parameter included; a
 * request that did not parse (the parser's 4xx) runs no hook. @arg goes to both as given. The
 * hooks are kept in one array allocated here: running them allocates nothing. Add hooks before
 * serving. Does not suspend. Returns 0, -EINVAL (no server, or both hooks NULL) or -ENOMEM. */
CORIO_API int corio_http_hook(struct corio_http_server *s, corio_http_handler *before,
                              corio_http_after_hook *after, void *arg);

/* Tells which route of @s would take a request with @method and request-target @t (@tl bytes),
 * as the server matches it: for tests, tools that print a server's table, and measuring the
 * match alone. *@allowed (may be NULL) gets a bit (1u << method) for each method that has a
 * route for the path (GET implying HEAD). Allocates nothing; does not suspend. Returns the
 * route's number (0 for the first added; mounts count as routes), or -ENOENT when no route
 * takes the request: a 404, or a 405 when *@allowed is not 0. */
CORIO_API int corio_http_route_find(const struct corio_http_server *s,
                                    enum corio_http_method method, const char *t, size_t tl,
                                    unsigned *allowed);

#ifdef __cplusplus
}
#endif

#endif /* CORIO_HTTP_H */
