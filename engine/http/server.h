/* corio http: an HTTP/1.1 server on corio's coroutines. One coroutine per connection reads
 * requests (keep-alive, pipelining), routes them by method and path to handlers, writes responses
 * in order, and serves static files from a directory. The limits a server embedded on the
 * internet needs are built in: head size and field count, body size, an absolute deadline to
 * receive a head (slowloris), an idle keep-alive timeout, and a cap on connections. */
#ifndef CORIO_HTTP_SERVER_H
#define CORIO_HTTP_SERVER_H

#include "parser.h"

#ifdef __cplusplus
extern "C" {
#endif

struct corio_http_server;
struct corio_http_conn;

/* A route's handler: answers @req on connection @c with corio_http_respond (or streams with
 * corio_http_respond_start + corio_http_write). It runs in the connection's coroutine and may
 * suspend. A negative return, or a return without a response, makes the server answer 500 and
 * close the connection. Returns 0 or -errno. */
typedef int corio_http_handler(struct corio_http_conn *c, const struct corio_http_request *req,
                               void *arg);

struct corio_http_server_opts {
    const char *root;                /* directory served for GET/HEAD no route matches; NULL: none */
    struct corio_http_limits limits; /* head, field, target and body limits; zero fields: defaults */
    int64_t header_timeout;          /* ns from a head's first byte (or the accept) to its end;
                                        then 408 and close. Default 10 s */
    int64_t idle_timeout;            /* ns a keep-alive connection may wait for its next request;
                                        then it is closed. Default 60 s */
    int64_t body_timeout;            /* ns to receive a request body once its head is in. 60 s */
    size_t max_connections;          /* connections served at once; more wait in the listen
                                        backlog. Default 10000 */
    size_t buffer_size;              /* per-connection input and output buffers, each; at least
                                        max_head_bytes + 1. Default 16 KiB */
};

struct corio_http_stats {
    uint64_t connections; /* accepted */
    uint64_t requests;    /* heads parsed and dispatched */
    uint64_t responses;   /* responses written, including error responses */
    uint64_t bad_requests; /* requests refused with a 4xx/5xx by the parser or a limit */
    uint64_t timeouts;    /* heads that missed their deadline (408) */
    int64_t open;         /* connections open now */
};

/* Creates a server. @opts may be NULL for the defaults. Returns 0 and sets *out, or -errno:
 * -ENOENT/-ENOTDIR/-EACCES for a root that cannot be opened, -EINVAL, -ENOMEM. */
int corio_http_server_new(struct corio_http_server **out, const struct corio_http_server_opts *opts);

/* Frees a server that is not serving. NULL is a no-op. Returns nothing. */
void corio_http_server_free(struct corio_http_server *s);

/* Routes requests with @method ("GET", ...; NULL for any) and @path to @h(c, req, arg). @path is
 * matched exactly against the request-target's path (the part before '?'), or as a prefix when
 * it ends in '*'. Routes are tried in the order they were added. Returns 0, -EINVAL or -ENOMEM. */
int corio_http_route(struct corio_http_server *s, const char *method, const char *path,
                     corio_http_handler *h, void *arg);

/* Serves connections accepted on listening socket @lfd, one coroutine each, until the calling
 * coroutine is cancelled; then every connection is cancelled and awaited before it returns. Does
 * not close @lfd. May suspend. Returns -ECANCELED after a cancel, or -errno if accept fails for
 * good (-EMFILE/-ENFILE are waited out, not returned). */
int corio_http_serve(struct corio_http_server *s, int lfd);

/* Returns the counters of @s. */
const struct corio_http_stats *corio_http_server_stats(const struct corio_http_server *s);

/* Sends a whole response: status line, headers (Date, Server, Content-Type if @content_type is not
 * NULL, Content-Length, Connection) and @body. For HEAD requests the body is left out. Responses
 * are buffered and flushed before the connection next waits, so pipelined requests share sends.
 * May suspend. Returns 0 or -errno (-EALREADY if a response was already started). */
int corio_http_respond(struct corio_http_conn *c, int status, const char *content_type,
                       const void *body, size_t len);

/* Starts a response whose body of @content_length bytes the handler then sends with
 * corio_http_write; @extra_headers (may be NULL) are raw lines each ending in CRLF. May suspend.
 * Returns 0 or -errno. */
int corio_http_respond_start(struct corio_http_conn *c, int status, const char *content_type,
                             int64_t content_length, const char *extra_headers);

/* Sends body bytes of a response started with corio_http_respond_start. May suspend. Returns 0
 * or -errno (-EPIPE when the peer is gone). */
int corio_http_write(struct corio_http_conn *c, const void *buf, size_t len);

/* Reads up to @len bytes of the request body (Content-Length or chunked, decoded). A client that
 * sent "Expect: 100-continue" gets its 100 response on the first call. May suspend. Returns the
 * bytes read, 0 at the end of the body, or -errno (-ETIMEDOUT past the body deadline), or a
 * negated HTTP status (-400, -413) for a malformed or oversized chunked body. */
ssize_t corio_http_read_body(struct corio_http_conn *c, void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
