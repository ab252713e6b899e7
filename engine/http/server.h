/* Internal declarations of the HTTP server's files: the server, its routes and a connection, and
 * the functions the files call in each other. The public API is include/corio/http.h.
 *
 *   server.c   the server's lifetime, routes, the accept loop and the connection loop
 *   io.c       a connection's input and output buffers, and the deadlines of its waits
 *   respond.c  response heads, added header fields, responses, streamed responses, error responses
 *   body.c     request bodies: Content-Length and chunked, 100-continue, discarding
 *   static.c   static files below the server's root or a mount's directory
 *   router.c   routes, their match and parameters, mounts, hooks
 *   sendfile.c response bodies from a file: corio_http_send_file, and the static files' bodies
 *   access.c   the access log
 *
 * A connection owns one allocation: its input buffer, its output buffer, the room for the header
 * lines a handler adds to a response, and the parsed header fields. A request head is
 * parsed in place in the input buffer (the request struct points into it), so the head stays where
 * it is until the request is done; body bytes are read after it. Responses go to the output
 * buffer, which is flushed before the connection waits for input: pipelined requests that arrived
 * together are answered with one send. */
#ifndef CORIO_HTTP_SERVER_H
#define CORIO_HTTP_SERVER_H
#include <corio.h>
#include <corio/http.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

/* The most parameters one pattern may name, and the most segments it may have. */
#define CORIO__HTTP_MAX_PARAMS 8
#define CORIO__HTTP_MAX_SEGS 32

/* What a route matches: the whole path, a pattern of segments with parameters, the path's first
 * bytes (a trailing '*'), or a pattern whose last segment takes the rest of the path ('*name'). */
enum { CORIO__HTTP_RT_EXACT, CORIO__HTTP_RT_PATTERN, CORIO__HTTP_RT_PREFIX, CORIO__HTTP_RT_REST };

/* One segment of a pattern: literal bytes of the route's path, or a parameter whose name is the
 * NUL-terminated string at the same offset. */
struct corio__http_seg {
    uint16_t off; /* where its bytes (or the parameter's name) start in the route's path */
    uint16_t len; /* bytes in the literal; 0 for a parameter */
    bool param;   /* a parameter: matches any non-empty segment */
};

struct corio__http_route {
    int method;                   /* enum corio_http_method, or -1 for any */
    uint8_t kind;                 /* CORIO__HTTP_RT_* */
    uint8_t nsegs;                /* patterns: segments, the rest segment included */
    uint8_t nparams;              /* patterns: parameters, the rest included */
    uint32_t hash;                /* exact: the hash of path (router.c) */
    int32_t next;                 /* exact: the next route with the same path, or -1 */
    char *path;                   /* the path, its prefix (without the '*'), or the pattern
                                     with each '/' after the first made a NUL, so that the names
                                     of its parameters are strings */
    size_t len;                   /* bytes in path */
    struct corio__http_seg *segs; /* patterns: the segments (allocated), else NULL */
    corio_http_handler *h;        /* handler */
    void *arg;                    /* its argument */
};

/* A pair of hooks around every request (corio_http_hook). */
struct corio__http_hook {
    corio_http_handler *before;   /* or NULL */
    corio_http_after_hook *after; /* or NULL */
    void *arg;                    /* passed to both */
};

/* The longest prefix of a mount, so that a redirect to a directory's slash form has room. */
#define CORIO__HTTP_MOUNT_PREFIX_MAX 256

/* A directory served below a path prefix (corio_http_mount). */
struct corio__http_mount {
    int fd;        /* the directory */
    size_t len;    /* bytes in prefix, which ends in '/' */
    char prefix[]; /* the prefix, NUL-terminated */
};

/* The routes of a server in the tiers a request is matched against, and its hooks. Everything is
 * allocated when routes are added, nothing when a request is matched. */
struct corio__http_router {
    struct corio__http_route *routes;  /* every route in the order added */
    size_t n;                          /* routes in use */
    uint32_t *exact;                   /* open-addressing table of 1 + the index of the first
                                          route of each exact path; 0 is an empty slot */
    uint32_t mask;                     /* slots in exact minus one (a power of two minus one) */
    uint32_t *tiers[2];                /* indices of the pattern routes, then of the prefix and
                                          rest routes, each in the order added */
    size_t ntier[2];                   /* entries in each */
    size_t max_params;                 /* the most parameters of any route */
    struct corio__http_hook *hooks;    /* in the order added */
    size_t nhooks;                     /* hooks in use */
    struct corio__http_mount **mounts; /* to close and free with the server */
    size_t nmounts;                    /* mounts in use */
};

/* One parameter of the matched route: its value, in the head or decoded into the connection's
 * scratch room. */
struct corio__http_param {
    const char *p; /* the value, not NUL-terminated */
    size_t len;    /* bytes in it */
};

/* The route a request matched, with its path and parameters. */
struct corio__http_match {
    const struct corio__http_route *r;                       /* the route, or NULL */
    const char *path;                                        /* the request's path, in the head */
    size_t path_len;                                         /* bytes in path, without the query */
    struct corio__http_param params[CORIO__HTTP_MAX_PARAMS]; /* r->nparams of them */
};

/* Room for the status line, Date and Server of a response head: "HTTP/1.1 " and a status, the
 * longest reason phrase (31 bytes), and "Date: " with an IMF-fixdate and "Server: corio". */
#define CORIO__HTTP_HEAD_START_MAX 112
/* The longest plain head, and Content-Type, that the server keeps for the next response. */
#define CORIO__HTTP_PLAIN_HEAD_MAX 256
#define CORIO__HTTP_PLAIN_CTYPE_MAX 64

struct corio_http_server {
    struct corio_http_server_opts o;  /* options with defaults filled in */
    int root_fd;                      /* the static root directory, or -1 */
    struct corio__http_router router; /* routes, mounts and hooks (router.c) */
    struct corio_http_stats stats;    /* counters */
    struct corio_sem slots;           /* free connection slots */
    struct corio_bufring *ring;       /* buffers for the connections' multishot receives */
    unsigned ring_users;              /* corio_http_serve and corio_http_serve_conn calls running */
    /* The first lines of the last response head written, kept for the next one with the same
     * status in the same second: the status line, Date and Server (respond.c). */
    time_t head_sec;                       /* the second of its Date */
    int head_status;                       /* its status, 0 before the first response */
    size_t head_len;                       /* bytes in head */
    char head[CORIO__HTTP_HEAD_START_MAX]; /* the lines */
    /* The whole head of the last plain response (no template, no added lines: a handler's
     * corio_http_respond), kept for the next one with the same status, Content-Type, length and
     * Connection in the same second, which is then one copy (respond.c). */
    struct {
        int64_t sec;                        /* the second of its Date; -1: none kept */
        int status;                         /* its status */
        int ctlen;                          /* bytes of its Content-Type, -1: none */
        int64_t len;                        /* its Content-Length, -1: none */
        bool keep_alive;                    /* its Connection */
        size_t n;                           /* bytes in head */
        char ctype[CORIO__HTTP_PLAIN_CTYPE_MAX]; /* its Content-Type */
        char head[CORIO__HTTP_PLAIN_HEAD_MAX];   /* the head */
    } plain;
    struct corio__http_log *log;           /* the access log, NULL when off (access.c) */
    struct corio__http_pipes *pipes;       /* pipes kept for file bodies (sendfile.c) */
};

/* Where the response to the request being served stands. */
enum { CORIO__HTTP_RESP_NONE, CORIO__HTTP_RESP_STARTED, CORIO__HTTP_RESP_DONE };
/* How a started response's body ends: after Content-Length bytes, with the last chunk of the
 * chunked coding (HTTP/1.1 clients), or with the connection (HTTP/1.0 clients). */
enum { CORIO__HTTP_FRAME_LENGTH, CORIO__HTTP_FRAME_CHUNKED, CORIO__HTTP_FRAME_CLOSE };

/* The header line of a chunked response, written into the room reserved in front of xbuf so that
 * it goes out with the added lines without moving them. */
#define CORIO__HTTP_TE_CHUNKED "Transfer-Encoding: chunked\r\n"
#define CORIO__HTTP_TE_CHUNKED_LEN (sizeof(CORIO__HTTP_TE_CHUNKED) - 1)
/* That room: enough for the line, and a multiple of 16 so that xbuf keeps the alignment. */
#define CORIO__HTTP_XBUF_FRONT 32
/* Where the request body stands: none, being read by length or chunked, read, or unreadable. */
enum {
    CORIO__HTTP_BODY_NONE,
    CORIO__HTTP_BODY_LENGTH,
    CORIO__HTTP_BODY_CHUNKED,
    CORIO__HTTP_BODY_DONE,
    CORIO__HTTP_BODY_ERROR
};

struct corio_http_conn {
    struct corio_http_server *s; /* the server */
    int fd;                      /* the socket */
    char *rbuf;                  /* input; unconsumed bytes are [rpos, rlen) */
    size_t rcap;                 /* its size */
    size_t rpos, rlen;           /* where the unconsumed input starts and ends */
    char *wbuf;                  /* output not yet sent: [0, wlen) */
    size_t wcap;                 /* its size */
    size_t wlen;                 /* bytes waiting in it */
    char *xbuf;                  /* lines of corio_http_add_header for the next response head,
                                    room for CORIO_HTTP_ADDED_HEADER_BYTES */
    size_t xlen;                 /* bytes of them; the response head takes them and resets it */
    int64_t head_deadline;       /* when the head being read must be complete; -1: not
                                    stamped yet (read_head_until stamps it) */
    uint64_t nreq;               /* requests served on this connection */
    /* The request being served. */
    const struct corio_http_request *req; /* its head, in rbuf */
    bool head_only;                       /* a HEAD request: no body in responses */
    bool keep_alive;                      /* the response says keep-alive and the loop goes on */
    bool broken;                  /* an I/O error or a half-sent response: close after this */
    bool sent_continue;           /* the 100 Continue response went out */
    bool expect_continue;         /* the client waits for 100 Continue before its body */
    uint8_t resp;                 /* CORIO__HTTP_RESP_* */
    uint8_t framing;              /* CORIO__HTTP_FRAME_* of a started response */
    int64_t resp_left;            /* CORIO__HTTP_FRAME_LENGTH: body bytes the response still owes */
    uint8_t body;                 /* CORIO__HTTP_BODY_* */
    size_t bstart;                /* where the body starts in rbuf (the end of the head) */
    size_t bpos;                  /* the body read cursor in rbuf */
    int64_t body_left;            /* CORIO__HTTP_BODY_LENGTH: bytes not yet read */
    int64_t body_deadline;        /* the body must have arrived by then */
    size_t payload_off;           /* CORIO__HTTP_BODY_CHUNKED: decoded bytes at rbuf[payload_off] */
    size_t payload_len;           /* and how many */
    struct corio_http_chunked ch; /* the chunked decoder */
    struct corio_receiver rx;     /* multishot receive over the server's ring, if it has one */
    struct corio_buf pend;        /* a received buffer not yet copied out in full */
    size_t pend_off;              /* how much of it was */
    bool use_rx;                  /* rx is set up */
    /* The connection's two ends: the peer's as accept reported it, the local one read with
     * getsockname the first time it is asked for. */
    struct sockaddr_storage peer;  /* the peer's address */
    socklen_t peer_len;            /* its length, 0 if accept gave none */
    struct sockaddr_storage local; /* the local address */
    socklen_t local_len;           /* its length, 0 until it was read */
    /* The router's part of the request being served. */
    struct corio__http_match m; /* the route it matched and its parameters */
    char *pscratch;             /* room for percent-decoded parameters: max_target_bytes, or
                                   NULL when no route has parameters */
    int status;                 /* the status of the last response head written, 0 for none */
    uint64_t out_bytes;         /* bytes sent on the connection so far (the access log and the
                                   after-hooks count from it) */
};

/* Hidden, so that the files call each other directly and not through the PLT. */
#pragma GCC visibility push(hidden)

/* ---- io.c: the connection's buffers and the deadlines of its waits ----------------------------
 */

/* Returns the earlier of two deadlines, CORIO_FOREVER (-1) counting as the latest: as unsigned,
 * -1 is the largest value, so one compare does it. */
static inline int64_t corio__http_earlier(int64_t a, int64_t b)
{
    return (uint64_t)a < (uint64_t)b ? a : b;
}

/* Starts a phase of a connection that waits on the peer (a head, a body read, a write), bounded
 * by the calling coroutine's own deadline set to @deadline, or kept if it is earlier (a handler's).
 * Returns the deadline to set back with corio__http_phase_end. */
int64_t corio__http_phase_begin(int64_t deadline);

/* Ends a phase: sets back the deadline @prev that corio__http_phase_begin returned. Returns
 * nothing. */
void corio__http_phase_end(int64_t prev);

/* Reads up to @len bytes of input into @dst, bounded by the caller's phase. May suspend. Returns
 * the bytes read, 0 at EOF, or -errno (-ETIMEDOUT when the phase's deadline passes). */
ssize_t corio__http_recv(struct corio_http_conn *c, void *dst, size_t len);

/* Sends the output buffer, waiting for the peer until @deadline at the latest (CORIO_FOREVER: only
 * the coroutine's own deadline applies). May suspend. Returns 0, or -errno with the connection
 * marked broken. */
int corio__http_flush_out(struct corio_http_conn *c, int64_t deadline);

/* Returns the deadline of a write that starts now: @deadline (a handler's, or CORIO_FOREVER), or
 * earlier, the idle timeout from now, so that a peer that stops reading holds a write no longer
 * than an idle connection. */
static inline int64_t corio__http_write_bound(const struct corio_http_conn *c, int64_t deadline)
{
    return corio__http_earlier(deadline, corio_now() + c->s->o.idle_timeout);
}

/* Sends the output buffer, bounded by corio__http_write_bound(@deadline). May suspend. Returns 0
 * or -errno. */
static inline int corio__http_flush(struct corio_http_conn *c, int64_t deadline)
{
    return c->wlen == 0 ? 0 : corio__http_flush_out(c, corio__http_write_bound(c, deadline));
}

/* corio__http_append where the bytes do not fit or the connection is broken. May suspend.
 * Returns what corio__http_append does. */
int corio__http_append_slow(struct corio_http_conn *c, const void *p, size_t len, int64_t deadline);

/* Appends @len bytes to the output, sending what the buffer cannot hold by @deadline (and the
 * idle bound). Inline for the common case, bytes that fit, which is a copy. May suspend. Returns
 * 0, or -errno (-EPIPE once the connection is broken). */
static inline int corio__http_append(struct corio_http_conn *c, const void *p, size_t len,
                                     int64_t deadline)
{
    if (c->broken || len > c->wcap - c->wlen)
        return corio__http_append_slow(c, p, len, deadline);
    memcpy(c->wbuf + c->wlen, p, len);
    c->wlen += len;
    return 0;
}

/* ---- respond.c: responses ---------------------------------------------------------------------
 */

/* Writes a response head into the output buffer, on @tmpl's fields if not NULL, with the header
 * lines the handler added (which it takes: xlen is 0 after); @len < 0 omits Content-Length. May
 * suspend (to make room, by @deadline). Returns 0 or -errno. */
int corio__http_write_head(struct corio_http_conn *c, int status, const char *ctype, int64_t len,
                           const struct corio_http_response *tmpl, int64_t deadline);

/* Answers with an error status and a short text body, in place of whatever response was not
 * finished and without the header lines a handler added, and marks the connection for closing
 * when @close_conn. May suspend. Returns nothing: a failure marks the connection broken. */
void corio__http_respond_error(struct corio_http_conn *c, int status, bool close_conn);

/* ---- body.c: request bodies -------------------------------------------------------------------
 */

/* Sets up the reading of @req's body, which starts at rbuf[@at]. Returns nothing. */
void corio__http_body_start(struct corio_http_conn *c, const struct corio_http_request *req,
                            size_t at);

/* Reads and drops what the handler left of the body, so that the next request can follow. May
 * suspend. Returns nothing: a failure marks the connection broken. */
void corio__http_body_discard(struct corio_http_conn *c);

/* ---- static.c: static files -------------------------------------------------------------------
 */

/* Answers a GET or HEAD @req with the file it names below the server's root. May suspend.
 * Returns nothing: the outcome is the response (or a broken connection). */
void corio__http_serve_file(struct corio_http_conn *c, const struct corio_http_request *req);

/* Answers a GET or HEAD @req with the file that the path @t[0..@tl) (from its '/', up to the end
 * of the target: a query is dropped) names below directory @root_fd; @pfx[0..@pfx_len) is what
 * the client's path has in front of @t, for a redirect to a directory's slash form. May suspend.
 * Returns nothing: the outcome is the response (or a broken connection). */
void corio__http_serve_file_at(struct corio_http_conn *c, const struct corio_http_request *req,
                               int root_fd, const char *t, size_t tl, const char *pfx,
                               size_t pfx_len);

/* ---- router.c: routes, mounts and hooks -------------------------------------------------------
 */

/* Adds a route for @method (-1: any) and @path (valid, starting with '/') to @rt, as
 * corio_http_route says. Returns 0, -EINVAL or -ENOMEM. */
int corio__http_router_add(struct corio__http_router *rt, int method, const char *path,
                           corio_http_handler *h, void *arg);

/* Frees the routes, mounts and hooks of @rt and closes the mounts' directories. Returns nothing. */
void corio__http_router_free(struct corio__http_router *rt);

/* Finds the route for a request with @method and the request-target @t (@tl bytes) in @rt and
 * fills @m with it, its path and its parameters (raw, as in the target). *@allowed gets a bit
 * (1u << method) for each method that has a route for the path, GET implying HEAD, so that a
 * miss can tell 404 from 405. Allocates nothing. Returns the route, or NULL. */
const struct corio__http_route *corio__http_router_find(const struct corio__http_router *rt,
                                                        int method, const char *t, size_t tl,
                                                        struct corio__http_match *m,
                                                        unsigned *allowed);

/* Percent-decodes the parameters of @c's match that hold a '%' into c->pscratch, pointing them
 * there. Returns 0, -EBADMSG for a bad escape or an encoded NUL, -EACCES for an encoded '/', or
 * -ENOMEM when the connection has no room for them (a route added while it was served). */
int corio__http_router_decode(struct corio_http_conn *c);

/* Runs the before-hooks of the server of @c in the order added, until one answers or fails.
 * May suspend. Returns 0 when the request goes on to its handler, else what stopped it: 1 for a
 * hook that answered, or the hook's -errno. */
int corio__http_hooks_before(struct corio_http_conn *c, const struct corio_http_request *req);

/* Runs the after-hooks of the server of @c in the reverse order, with the response's status and
 * the bytes it put out since @start (c->out_bytes + c->wlen when the request began). May suspend.
 * Returns nothing. */
void corio__http_hooks_after(struct corio_http_conn *c, const struct corio_http_request *req,
                             uint64_t start);
/* ---- sendfile.c: response bodies from a file --------------------------------------------------
 */

/* Sends @len bytes of file @fd from @off as body bytes, after what the output buffer holds, with
 * no framing of its own; the sends wait until @deadline at the latest (and the idle bound), each
 * file read too (and body_timeout). May suspend. Returns 0, or -errno with the connection
 * marked broken (-EIO when the file ends before @len bytes). */
int corio__http_send_range(struct corio_http_conn *c, int fd, int64_t off, int64_t len,
                           int64_t deadline);

/* Closes the pipes @s kept. Returns nothing. */
void corio__http_pipes_free(struct corio_http_server *s);

/* ---- access.c: the access log ----------------------------------------------------------------
 */

/* Sets up @s's access log if its options ask for one. Returns 0 or -ENOMEM. */
int corio__http_log_new(struct corio_http_server *s);

/* Hands over what the log holds and frees it. Returns nothing. */
void corio__http_log_free(struct corio_http_server *s);

/* The first corio_http_serve or _serve_conn of @s began (in a coroutine): starts the timer that
 * hands the lines over once a second. Returns nothing. */
void corio__http_log_hold(struct corio_http_server *s);

/* The last of them ended: stops the timer and hands the lines over. Returns nothing. */
void corio__http_log_drop(struct corio_http_server *s);

/* What the log needs of a request before its handler runs: where its bytes start and when. */
struct corio__http_log_mark {
    int64_t start;      /* corio_now() at the end of the head */
    uint64_t out_bytes; /* c->out_bytes + c->wlen then */
};

/* Notes the start of the request being served on @c, whose status is not known yet. Returns
 * nothing. */
static inline void corio__http_log_mark(struct corio_http_conn *c, struct corio__http_log_mark *m)
{
    c->status = 0;
    m->start = corio_now();
    m->out_bytes = c->out_bytes + c->wlen;
}

/* Adds the line of request @req, served on @c since @m, to the log, handing the lines over first
 * when the buffer has no room for it. Does not suspend. Returns nothing. */
void corio__http_log_request(struct corio_http_conn *c, const struct corio_http_request *req,
                             const struct corio__http_log_mark *m);

#pragma GCC visibility pop

#endif
