/*
 * corio-load: a load generator on corio for TCP echo servers and HTTP/1.1 servers.
 *
 * Each connection is a coroutine that keeps `--pipeline` messages in flight: with a depth of 1 (and
 * messages up to 64 KiB) one coroutine sends and then receives; otherwise a sender coroutine (a
 * member of the connection's own group) takes a credit from a semaphore before each send and the
 * receiver gives it back when the message has come back whole. Every thread runs its own loop with
 * its share of the connections.
 *
 * Echo mode verifies every byte. Message m of connection i is a 64-bit tag h = mix(i, m) XORed
 * into its first 8 bytes, followed by bytes of a fixed random pool starting at an offset taken
 * from h. A corrupted byte differs from the pool, and a dropped, duplicated or reordered byte or
 * message shifts the stream against its tags, so every one of them is caught; checking is a
 * memcmp against the pool, so it costs the load generator little. A mismatch is reported with its
 * connection, message number and byte offset, counted, and makes the exit status 1.
 *
 * HTTP mode sends `GET <path> HTTP/1.1` keep-alive requests and parses each response: the status
 * line, Content-Length (required, since chunked bodies are refused), Connection: close (the
 * connection is then opened again, as wrk does). A malformed response counts as a verify error.
 *
 * Timing: the clock starts before the first connect. Messages that complete during the warm-up are
 * not counted; those that complete in [warm-up, warm-up + duration) are. One coordinator thread
 * (the main one) waits for the end, for SIGINT/SIGTERM, or for every connection to have ended; then
 * it wakes each loop through an eventfd, and each loop cancels its connections. Latencies go into
 * a log-linear histogram per thread (128 linear buckets per power of two: under 0.8% error, no
 * allocation per sample); its counters are single-writer atomics, so the coordinator can read them
 * for the progress line without a lock while the loops write them with plain stores.
 */
#include "common.h"

#include <corio.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROG "corio-load"

/* How long one connect may take before it counts as failed (-ETIMEDOUT). */
#define CONNECT_TIMEOUT CORIO_SEC(5)
/* A safety net: every wait ends this long after the planned end even if no stop arrives. */
#define STOP_GRACE CORIO_SEC(5)
/* Verify errors on one connection after which its stream is taken as lost and it is closed. */
#define MAX_VERIFY_PER_CONN 16
/* Verify errors printed in full; later ones are only counted. */
#define MAX_VERIFY_REPORTS 20
/* The random pool echo messages are cut from (a power of two), and the largest message. */
#define POOL_BITS 20
#define POOL_SIZE ((size_t)1 << POOL_BITS)
#define MAX_SIZE ((size_t)64 << 20)
#define MAX_PIPELINE 4096
/* The largest echo message that one coroutine sends and then receives (see conn_run). */
#define SINGLE_MAX ((size_t)64 * 1024)
#define MAX_CONNS 1000000
#define MAX_THREADS 256
/* HTTP: the receive buffer, and the largest response head accepted. */
#define HTTP_RBUF (64 * 1024)
#define HTTP_MAX_HEAD (16 * 1024)
/* errno values at or above this share the last slot of the per-reason counters. */
#define ERRNO_SLOTS 160

/* ---- histogram ------------------------------------------------------------------------------ */

/* Values below 2^(SUB_BITS+1) ns have a bucket each; above, each power of two [2^e, 2^(e+1)) is
 * cut into 2^SUB_BITS equal buckets, so a bucket is at most 1/128 of its values wide. Values clamp
 * at 2^(MAX_EXP+1) - 1 ns, about 36 minutes. */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 40
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS) * HIST_SUB + 2 * HIST_SUB)

static inline unsigned hist_index(uint64_t v)
{
    if (v >= ((uint64_t)2 << HIST_MAX_EXP))
        v = ((uint64_t)2 << HIST_MAX_EXP) - 1;
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = e - HIST_SUB_BITS;
    return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* The middle of bucket @i's range, in ns. */
static uint64_t hist_value(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB - 1;
    uint64_t mant = i - shift * HIST_SUB;
    return (mant << shift) + (((uint64_t)1 << shift) - 1) / 2;
}

/* A value among @n samples at quantile @q of a merged histogram @h: the bucket holding the
 * ceil(q * n)-th smallest sample. */
static uint64_t hist_quantile(const uint64_t *h, uint64_t n, double q)
{
    if (n == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h[i];
        if (seen >= rank)
            return hist_value(i);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* ---- statistics of one thread --------------------------------------------------------------- */

/* A counter with one writer (its loop's thread) and racy readers (the progress line): a relaxed
 * load and store, which is a plain mov on x86-64, never a locked add. */
typedef _Atomic uint64_t counter;

static inline void bump(counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t get(const counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

struct stats {
    counter msgs_all;      /* messages completed, warm-up included: the progress rate */
    counter msgs;          /* messages completed in the measured window */
    counter bytes;         /* their bytes (echo: the payload; HTTP: the whole responses) */
    counter lat_sum;       /* sum of their latencies, ns */
    counter lat_max;       /* the largest of them, ns */
    counter errors;        /* every error: connect, I/O, closed, protocol, verify, HTTP status */
    counter verify_errors; /* echo messages with a wrong byte; malformed HTTP responses */
    counter active;        /* connections open now */
    counter hist[HIST_BUCKETS];
    /* Read only after the thread has been joined: */
    uint64_t connected;      /* connections that were established at least once */
    uint64_t reconnects;     /* HTTP: reconnections after a server's Connection: close */
    uint64_t connect_failed; /* connections that never got established */
    uint64_t connect_errno[ERRNO_SLOTS]; /* why, by errno */
    uint64_t io_errno[ERRNO_SLOTS];      /* established connections lost to an I/O error */
    uint64_t closed_by_peer;             /* ... to the server closing it mid-stream */
    uint64_t desync;                     /* ... to too many verify errors, or a protocol error */
    uint64_t bad_status;                 /* HTTP responses in the window that are not 2xx or 3xx */
    uint64_t status[600];                /* HTTP responses in the window by status code */
};

/* ---- configuration -------------------------------------------------------------------------- */

enum mode { MODE_ECHO, MODE_HTTP };

static struct config {
    enum mode mode;
    const char *host;
    int port; /* -1 until set: the mode's default */
    unsigned conns;
    size_t size;
    unsigned pipeline;
    double duration; /* seconds */
    double warmup;   /* seconds */
    const char *path;
    const char *json;
    unsigned threads;
    int cpus[CPU_SETSIZE]; /* --cpu, in order */
    unsigned ncpus;
    bool quiet;
    bool stats; /* print each loop's counters (corio_stats) at the end */
    bool progress;         /* stdout is a terminal and not --quiet */
    bool paired;           /* a sender and a receiver coroutine per connection (see conn_run) */
    long server_pid;       /* --server-pid, or 0 */
    long long expect_body; /* --expect-body, or -1 */
    /* Derived before the threads start, read-only afterwards: */
    int64_t t0;        /* the start of the run */
    int64_t t_measure; /* the end of the warm-up */
    int64_t t_end;     /* the planned end of the measured window */
    char *request;     /* HTTP: the request bytes */
    size_t request_len;
    uint8_t *pool; /* echo: POOL_SIZE + size random bytes */
} cfg = {
    .mode = MODE_ECHO,
    .host = "127.0.0.1",
    .port = -1,
    .conns = 64,
    .size = 64,
    .pipeline = 1,
    .duration = 10,
    .warmup = 1,
    .path = "/",
    .threads = 1,
    .expect_body = -1,
};

static atomic_uint verify_reports; /* verify errors printed so far, across threads */

/* ---- workers and connections ---------------------------------------------------------------- */

struct worker;

struct conn {
    struct worker *w;
    uint64_t id;              /* global connection number, which seeds its echo pattern */
    int fd;                   /* the socket, or -1 */
    int send_err;             /* the sender's error; it then shuts the socket down */
    struct corio_sem credits; /* cfg.paired: free slots in flight */
    uint64_t sent;            /* messages whose send has started */
    uint64_t done;            /* messages received whole */
    int64_t *t_send;          /* [pipeline]: when message m's send started, at m % pipeline */
    uint8_t *sbuf;            /* echo: the message being sent */
    uint8_t *rbuf;            /* the receive buffer */
    size_t rcap;              /* its size */
    /* echo receive state */
    size_t roff;           /* bytes of message `done` received so far */
    bool bad_msg;          /* message `done` already had a mismatch */
    unsigned verify_fails; /* messages of this connection that failed */
    /* HTTP receive state */
    size_t rlen;  /* bytes in rbuf */
    size_t rpos;  /* bytes of rbuf consumed */
    size_t scan;  /* bytes of the head in rbuf already searched for CRLFCRLF */
    bool in_body; /* the head was parsed, body_left bytes of body are to come */
    uint64_t body_left;
    uint64_t resp_bytes; /* bytes of the current response so far */
    unsigned status;     /* its status code */
    bool close_after;    /* it said Connection: close (or is HTTP/1.0 without keep-alive) */
};

struct worker {
    unsigned index;
    pthread_t thread;
    int cpu; /* CPU to pin to, or -1 */
    int efd; /* eventfd: the coordinator's stop signal */
    unsigned nconns;
    struct conn *conn;
    struct corio_group conns; /* the connection coroutines */
    bool stopping;            /* the stop came: errors from now on are the stop's doing */
    int setup_err;            /* the loop could not be created */
    atomic_bool finished;     /* every connection coroutine has ended */
    struct stats st;
};

/* Where a connection's run ended. */
enum conn_end {
    END_STOP,      /* cancelled by the stop */
    END_RECONNECT, /* HTTP: the server closed at a response boundary; connect again */
    END_FAILED,    /* an error, already counted */
};

/* ---- small helpers -------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static const char *errno_name(int err)
{
    const char *s = strerrorname_np(err);
    return s ? s : "E?";
}

static void count_errno(uint64_t *slots, int err)
{
    int e = err < 0 ? -err : err;
    slots[e < ERRNO_SLOTS ? e : ERRNO_SLOTS - 1]++;
}

static int64_t secs_to_ns(double s)
{
    return (int64_t)llround(s * 1e9);
}

/* ---- the echo pattern ----------------------------------------------------------------------- */

struct pattern {
    const uint8_t *base; /* the pool bytes the message is cut from */
    uint64_t tag;        /* XORed into its first 8 bytes */
};

static inline struct pattern pattern_of(uint64_t conn, uint64_t msg)
{
    uint64_t h = splitmix64(splitmix64(conn) ^ msg);
    return (struct pattern){.base = cfg.pool + (h >> (64 - POOL_BITS)), .tag = h};
}

static void pattern_fill(const struct pattern *p, uint8_t *buf, size_t n)
{
    memcpy(buf, p->base, n);
    for (size_t i = 0; i < n && i < 8; i++)
        buf[i] ^= (uint8_t)(p->tag >> (8 * i));
}

static inline uint8_t pattern_byte(const struct pattern *p, size_t at)
{
    return (uint8_t)(p->base[at] ^ (at < 8 ? (uint8_t)(p->tag >> (8 * at)) : 0));
}

/* Checks @n bytes @got against the message's bytes from offset @at. Returns the offset of the
 * first wrong byte, or SIZE_MAX. */
static size_t pattern_check(const struct pattern *p, size_t at, const uint8_t *got, size_t n)
{
    size_t i = 0;
    for (; i < n && at + i < 8; i++)
        if (got[i] != pattern_byte(p, at + i))
            return at + i;
    if (i < n && memcmp(got + i, p->base + at + i, n - i) != 0)
        for (; i < n; i++)
            if (got[i] != p->base[at + i])
                return at + i;
    return SIZE_MAX;
}

/* ---- recording ------------------------------------------------------------------------------ */

/* A message of @bytes completed at @now after starting at @start. Returns whether it falls in
 * the measured window (and was counted). */
static bool record(struct worker *w, int64_t start, int64_t now, uint64_t bytes)
{
    bump(&w->st.msgs_all, 1);
    if (now < cfg.t_measure || now >= cfg.t_end)
        return false;
    uint64_t lat = now > start ? (uint64_t)(now - start) : 0;
    bump(&w->st.msgs, 1);
    bump(&w->st.bytes, bytes);
    bump(&w->st.lat_sum, lat);
    if (lat > get(&w->st.lat_max))
        atomic_store_explicit(&w->st.lat_max, lat, memory_order_relaxed);
    bump(&w->st.hist[hist_index(lat)], 1);
    return true;
}

static void count_error(struct worker *w)
{
    bump(&w->st.errors, 1);
}

static bool may_report(void)
{
    unsigned n = atomic_fetch_add_explicit(&verify_reports, 1, memory_order_relaxed);
    if (n == MAX_VERIFY_REPORTS)
        fprintf(stderr, PROG ": further verify errors are counted, not printed\n");
    return n < MAX_VERIFY_REPORTS;
}

static void verify_error(struct conn *c)
{
    bump(&c->w->st.verify_errors, 1);
    count_error(c->w);
    c->verify_fails++;
}

/* An established connection failed with @err (-errno, or 0: the server closed it). */
static enum conn_end conn_failed(struct conn *c, int err)
{
    struct worker *w = c->w;
    if (w->stopping)
        return END_STOP;
    if (err == -ECANCELED)
        return END_STOP; /* cannot happen: only the stop cancels a connection */
    count_error(w);
    if (err == 0)
        w->st.closed_by_peer++;
    else
        count_errno(w->st.io_errno, err);
    return END_FAILED;
}

/* ---- echo ----------------------------------------------------------------------------------- */

/* Takes @n received bytes of connection @c at time @now. Returns false when the stream is lost. */
static bool echo_consume(struct conn *c, const uint8_t *buf, size_t n, int64_t now)
{
    size_t size = cfg.size;
    while (n > 0) {
        if (c->done >= c->sent) {
            /* Bytes nobody sent: a duplicate, or a server that talks on its own. */
            if (may_report())
                fprintf(stderr,
                        PROG ": verify error: connection %" PRIu64 " (thread %u): %zu bytes "
                             "beyond the %" PRIu64 " messages sent\n",
                        c->id, c->w->index, n, c->sent);
            verify_error(c);
            c->w->st.desync++;
            return false;
        }
        struct pattern p = pattern_of(c->id, c->done);
        size_t take = size - c->roff < n ? size - c->roff : n;
        size_t bad = pattern_check(&p, c->roff, buf, take);
        if (bad != SIZE_MAX && !c->bad_msg) {
            c->bad_msg = true;
            if (may_report())
                fprintf(stderr,
                        PROG ": verify error: connection %" PRIu64 " (thread %u), message %" PRIu64
                             ", byte %zu of %zu: expected 0x%02x, got 0x%02x\n",
                        c->id, c->w->index, c->done, bad, size, pattern_byte(&p, bad),
                        buf[bad - c->roff]);
        }
        c->roff += take;
        buf += take;
        n -= take;
        if (c->roff < size)
            break;
        /* Message `done` is whole. */
        if (c->bad_msg) {
            verify_error(c);
            c->bad_msg = false;
        } else {
            record(c->w, c->t_send[c->done % cfg.pipeline], now, size);
        }
        c->done++;
        c->roff = 0;
        if (cfg.paired)
            corio_sem_release(&c->credits);
        if (c->verify_fails >= MAX_VERIFY_PER_CONN) {
            fprintf(stderr, PROG ": connection %" PRIu64 ": %u verify errors, closing it\n", c->id,
                    c->verify_fails);
            c->w->st.desync++;
            return false;
        }
    }
    return true;
}

/* Sends message `sent` of @c. Returns 0 or -errno. */
static int echo_send_one(struct conn *c, int64_t deadline)
{
    struct pattern p = pattern_of(c->id, c->sent);
    pattern_fill(&p, c->sbuf, cfg.size);
    c->t_send[c->sent % cfg.pipeline] = corio_now();
    c->sent++;
    ssize_t r = corio_send_all(c->fd, c->sbuf, cfg.size, NULL, deadline);
    return r < 0 ? (int)r : 0;
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

static bool http_report(struct conn *c, const char *what)
{
    if (may_report())
        fprintf(stderr,
                PROG ": bad response: connection %" PRIu64 " (thread %u), response %" PRIu64
                     ": %s\n",
                c->id, c->w->index, c->done, what);
    verify_error(c);
    c->w->st.desync++;
    return false;
}

static bool token_eq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* Whether the comma-separated header value [@v, @v + @n) holds the token @tok. */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (token_eq(v + s, e - s, tok))
            return true;
    }
    return false;
}

/* Parses the response head [@h, @h + @len) (ending in CRLFCRLF) into @c. Returns false after
 * reporting a malformed or unsupported response. */
static bool http_parse_head(struct conn *c, const char *h, size_t len)
{
    const char *end = h + len;
    const char *eol = memchr(h, '\r', len);
    if (!eol || eol - h < 12 || memcmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') ||
        h[8] != ' ' || !isdigit((unsigned char)h[9]) || !isdigit((unsigned char)h[10]) ||
        !isdigit((unsigned char)h[11]) || (eol - h > 12 && h[12] != ' '))
        return http_report(c, "malformed status line");
    bool http10 = h[7] == '0';
    c->status = (unsigned)((h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0'));
    if (c->status < 100 || c->status > 599)
        return http_report(c, "status code out of range");
    if (c->status < 200)
        return http_report(c, "interim 1xx responses are not supported");
    bool have_len = false, keep_alive = false;
    uint64_t clen = 0;
    c->close_after = false;
    for (const char *p = eol + 2; p < end;) {
        const char *le = memchr(p, '\r', (size_t)(end - p));
        if (!le || le + 1 >= end || le[1] != '\n')
            return http_report(c, "header line not ended by CRLF");
        if (le == p)
            break; /* the empty line */
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p)
            return http_report(c, "header line without a name");
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vlen = (size_t)(ve - v);
        if (token_eq(p, nlen, "content-length")) {
            uint64_t x = 0;
            if (vlen == 0 || vlen > 18)
                return http_report(c, "bad Content-Length");
            for (size_t i = 0; i < vlen; i++) {
                if (!isdigit((unsigned char)v[i]))
                    return http_report(c, "bad Content-Length");
                x = x * 10 + (uint64_t)(v[i] - '0');
            }
            if (have_len && x != clen)
                return http_report(c, "conflicting Content-Length headers");
            have_len = true;
            clen = x;
        } else if (token_eq(p, nlen, "transfer-encoding")) {
            return http_report(c, "Transfer-Encoding (chunked) responses are not supported: "
                                  "the server must send Content-Length");
        } else if (token_eq(p, nlen, "connection")) {
            if (has_token(v, vlen, "close"))
                c->close_after = true;
            if (has_token(v, vlen, "keep-alive"))
                keep_alive = true;
        }
        p = le + 2;
    }
    if (http10 && !keep_alive)
        c->close_after = true;
    if (c->status == 204 || c->status == 304) {
        clen = 0;
    } else if (!have_len) {
        return http_report(c, "response without Content-Length");
    }
    if (cfg.expect_body >= 0 && c->status < 300 && clen != (uint64_t)cfg.expect_body) {
        char what[96];
        snprintf(what, sizeof(what), "body length %" PRIu64 ", expected %lld", clen,
                 cfg.expect_body);
        return http_report(c, what);
    }
    c->body_left = clen;
    return true;
}

/* Takes the bytes in c->rbuf. Returns 1 to go on, 0 when the server closes after a complete
 * response (Connection: close), -1 when the stream is lost. */
static int http_consume(struct conn *c, int64_t now)
{
    for (;;) {
        if (!c->in_body) {
            if (c->rpos == c->rlen)
                break;
            if (c->done >= c->sent)
                return (void)http_report(c, "response to no request"), -1;
            const char *h = (const char *)c->rbuf + c->rpos;
            size_t avail = c->rlen - c->rpos;
            size_t from = c->scan > 3 ? c->scan - 3 : 0;
            const char *hit = memmem(h + from, avail - from, "\r\n\r\n", 4);
            if (!hit) {
                c->scan = avail;
                if (avail > HTTP_MAX_HEAD)
                    return (void)http_report(c, "response head larger than 16 KiB"), -1;
                break;
            }
            size_t hlen = (size_t)(hit - h) + 4;
            if (!http_parse_head(c, h, hlen))
                return -1;
            c->rpos += hlen;
            c->scan = 0;
            c->resp_bytes = hlen;
            c->in_body = true;
        }
        size_t avail = c->rlen - c->rpos;
        size_t take = c->body_left < avail ? (size_t)c->body_left : avail;
        c->rpos += take;
        c->body_left -= take;
        c->resp_bytes += take;
        if (c->body_left > 0)
            break;
        /* Response `done` is whole. */
        c->in_body = false;
        struct stats *st = &c->w->st;
        if (record(c->w, c->t_send[c->done % cfg.pipeline], now, c->resp_bytes)) {
            st->status[c->status]++;
            if (c->status >= 400) {
                st->bad_status++;
                count_error(c->w);
            }
        }
        c->done++;
        if (cfg.paired)
            corio_sem_release(&c->credits);
        if (c->close_after)
            return 0;
    }
    /* Keep the unparsed tail at the front of the buffer. */
    if (c->rpos == c->rlen) {
        c->rpos = c->rlen = 0;
    } else if (c->rpos > 0 && (c->rlen == c->rcap || c->rpos > c->rcap / 2)) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    return 1;
}

static int http_send_one(struct conn *c, int64_t deadline)
{
    c->t_send[c->sent % cfg.pipeline] = corio_now();
    c->sent++;
    ssize_t r = corio_send_all(c->fd, cfg.request, cfg.request_len, NULL, deadline);
    return r < 0 ? (int)r : 0;
}

/* ---- one connection ------------------------------------------------------------------------- */

static int send_one(struct conn *c, int64_t deadline)
{
    return cfg.mode == MODE_ECHO ? echo_send_one(c, deadline) : http_send_one(c, deadline);
}

/* The sender coroutine of a pipelined connection: a send per credit. */
static int sender_main(void *arg)
{
    struct conn *c = arg;
    int64_t deadline = cfg.t_end + STOP_GRACE;
    for (;;) {
        int r = corio_sem_acquire(&c->credits, deadline);
        if (r == 0)
            r = send_one(c, deadline);
        if (r < 0) {
            if (r != -ECANCELED && !c->w->stopping) {
                /* Wake the receiver through the socket rather than corio_cancel: a cancelled
                 * coroutine stays cancelled, and the receiver must still close, count the error
                 * and, in HTTP mode, maybe connect again. shutdown(2) does not block. */
                c->send_err = r;
                shutdown(c->fd, SHUT_RDWR);
            }
            return 0;
        }
    }
}

/* Receives once into @c and takes what came. Returns 1 to go on, or 0 with the end in *@end. */
static int receive(struct conn *c, int64_t deadline, enum conn_end *end)
{
    if (cfg.mode == MODE_ECHO) {
        ssize_t n = corio_recv(c->fd, c->rbuf, c->rcap, 0, deadline);
        if (c->send_err) {
            *end = conn_failed(c, c->send_err);
            return 0;
        }
        if (n <= 0) {
            *end = conn_failed(c, (int)n);
            return 0;
        }
        if (!echo_consume(c, c->rbuf, (size_t)n, corio_now())) {
            *end = END_FAILED;
            return 0;
        }
        return 1;
    }
    if (c->rlen == c->rcap) {
        /* Only a head over HTTP_MAX_HEAD fills the buffer, and that was reported. */
        *end = END_FAILED;
        return 0;
    }
    ssize_t n = corio_recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0, deadline);
    if (c->send_err) {
        *end = conn_failed(c, c->send_err);
        return 0;
    }
    if (n == 0 && !c->in_body && c->rpos == c->rlen) {
        /* Closed between responses: a keep-alive limit, for instance. Connect again. */
        *end = c->w->stopping ? END_STOP : END_RECONNECT;
        return 0;
    }
    if (n <= 0) {
        *end = conn_failed(c, (int)n);
        return 0;
    }
    c->rlen += (size_t)n;
    int r = http_consume(c, corio_now());
    if (r <= 0) {
        *end = r == 0 ? (c->w->stopping ? END_STOP : END_RECONNECT) : END_FAILED;
        return 0;
    }
    return 1;
}

/* Runs the connected socket c->fd until the stop or an error. */
static enum conn_end conn_run(struct conn *c)
{
    int64_t deadline = cfg.t_end + STOP_GRACE;
    enum conn_end end = END_STOP;
    c->sent = c->done = 0;
    c->roff = c->rlen = c->rpos = c->scan = 0;
    c->bad_msg = c->in_body = false;
    c->send_err = 0;
    /* One coroutine that sends and then receives is the cheapest, but a message larger than the
     * socket buffers would deadlock it: the server blocks sending the echo back while we block
     * sending the rest. Big messages take the sender + receiver pair even at depth 1. */
    if (!cfg.paired) {
        for (;;) {
            int r = send_one(c, deadline);
            if (r < 0)
                return conn_failed(c, r);
            while (c->done < c->sent)
                if (!receive(c, deadline, &end))
                    return end;
        }
    }
    /* A fresh group each time: a cancelled group starts its later members cancelled. */
    struct corio_group g;
    corio_group_init(&g, 0);
    corio_sem_init(&c->credits, cfg.pipeline);
    int err = corio_group_spawn(&g, sender_main, c, NULL);
    if (err < 0)
        return conn_failed(c, err);
    while (receive(c, deadline, &end))
        ;
    corio_group_cancel(&g);
    corio_group_wait(&g, CORIO_FOREVER); /* waits for the sender even when we are cancelled */
    return end;
}

static int conn_main(void *arg)
{
    struct conn *c = arg;
    struct worker *w = c->w;
    bool ever = false;
    for (;;) {
        int64_t deadline = corio_now() + CONNECT_TIMEOUT;
        if (deadline > cfg.t_end + STOP_GRACE)
            deadline = cfg.t_end + STOP_GRACE;
        int fd = corio_dial_tcp(cfg.host, (uint16_t)cfg.port, deadline);
        if (fd < 0) {
            if (w->stopping || fd == -ECANCELED)
                return 0;
            count_error(w);
            if (!ever) {
                w->st.connect_failed++;
                count_errno(w->st.connect_errno, fd);
            } else {
                count_errno(w->st.io_errno, fd);
            }
            return 0;
        }
        if (ever)
            w->st.reconnects++;
        else
            w->st.connected++;
        ever = true;
        c->fd = fd;
        bump(&w->st.active, 1);
        enum conn_end end = conn_run(c);
        bump(&w->st.active, (uint64_t)-1);
        corio_close(fd);
        c->fd = -1;
        if (end != END_RECONNECT || w->stopping)
            return 0;
    }
}

/* ---- one thread ----------------------------------------------------------------------------- */

/* Waits for the coordinator's stop, then cancels the connections. */
static int control_main(void *arg)
{
    struct worker *w = arg;
    uint64_t v;
    corio_read(w->efd, &v, sizeof(v), -1, cfg.t_end + STOP_GRACE);
    w->stopping = true;
    corio_group_cancel(&w->conns);
    return 0;
}

static int worker_main(void *arg)
{
    struct worker *w = arg;
    corio_id ctl;
    corio_group_init(&w->conns, 0);
    int err = corio_spawn(NULL, control_main, w, &ctl);
    if (err < 0) {
        w->setup_err = err;
        return err;
    }
    for (unsigned i = 0; i < w->nconns; i++) {
        err = corio_group_spawn(&w->conns, conn_main, &w->conn[i], NULL);
        if (err < 0) {
            count_error(w);
            w->st.connect_failed++;
            count_errno(w->st.connect_errno, err);
        }
    }
    corio_group_wait(&w->conns, CORIO_FOREVER);
    atomic_store(&w->finished, true);
    corio_cancel(ctl);
    corio_join(ctl, NULL, CORIO_FOREVER);
    return 0;
}

static void *worker_thread(void *arg)
{
    struct worker *w = arg;
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (err)
            fprintf(stderr, PROG ": thread %u: cannot pin to CPU %d: %s\n", w->index, w->cpu,
                    strerror(err));
    }
    /* Room for every connection's receive and send without flushing the SQ mid-iteration. */
    unsigned sq = 256;
    while (sq < 2 * w->nconns && sq < 4096)
        sq *= 2;
    struct corio_loop_opts lo = {.sq_entries = sq};
    struct corio_loop *loop = NULL;
    int err = corio_loop_new(&loop, &lo);
    if (err == 0)
        err = corio_spawn(loop, worker_main, w, NULL);
    if (err == 0)
        err = corio_loop_run(loop);
    if (err < 0 && !w->setup_err)
        w->setup_err = err;
    if (loop && cfg.stats) {
        char who[64];
        snprintf(who, sizeof(who), PROG ": thread %u", w->index);
        tool_print_stats(who, loop);
    }
    if (loop)
        corio_loop_free(loop);
    atomic_store(&w->finished, true);
    return NULL;
}

/* ---- the coordinator ------------------------------------------------------------------------ */

static struct worker *workers;

/* Reads the utime + stime of process @pid in seconds. Returns -1 if it cannot be read. */
static double proc_cpu_seconds(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields count from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* After ')' come field 3 (state) ... field 14 utime, field 15 stime. */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

struct totals {
    uint64_t msgs_all, msgs, bytes, lat_sum, lat_max, errors, verify_errors, active;
    uint64_t hist[HIST_BUCKETS];
};

/* Sums the threads' live counters. */
static void totals_read(struct totals *t)
{
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct stats *s = &workers[i].st;
        t->msgs_all += get(&s->msgs_all);
        t->msgs += get(&s->msgs);
        t->bytes += get(&s->bytes);
        t->lat_sum += get(&s->lat_sum);
        if (get(&s->lat_max) > t->lat_max)
            t->lat_max = get(&s->lat_max);
        t->errors += get(&s->errors);
        t->verify_errors += get(&s->verify_errors);
        t->active += get(&s->active);
        for (unsigned b = 0; b < HIST_BUCKETS; b++)
            t->hist[b] += get(&s->hist[b]);
    }
}

static void progress_line(struct totals *t, int64_t now, uint64_t *last_msgs, int64_t *last_t)
{
    totals_read(t);
    double dt = (double)(now - *last_t) / 1e9;
    double rate = dt > 0 ? (double)(t->msgs_all - *last_msgs) / dt : 0;
    *last_msgs = t->msgs_all;
    *last_t = now;
    double el = (double)(now - cfg.t0) / 1e9;
    if (now < cfg.t_measure) {
        printf("[%6.1fs warm-up] %10.0f msg/s  conns %" PRIu64 "  errors %" PRIu64 "\n", el, rate,
               t->active, t->errors);
    } else {
        char p99[32] = "-";
        if (t->msgs)
            snprintf(p99, sizeof(p99), "%.1f us",
                     (double)hist_quantile(t->hist, t->msgs, 0.99) / 1e3);
        printf("[%6.1fs] %10.0f msg/s  p99 %12s  conns %" PRIu64 "  errors %" PRIu64 "\n", el, rate,
               p99, t->active, t->errors);
    }
    fflush(stdout);
}

static bool all_finished(void)
{
    for (unsigned i = 0; i < cfg.threads; i++)
        if (!atomic_load(&workers[i].finished))
            return false;
    return true;
}

/* ---- the report ----------------------------------------------------------------------------- */

struct result {
    struct totals t;
    double secs;       /* the measured window's length */
    double server_cpu; /* seconds, or -1 */
    int stop_signal;   /* the signal that ended the run early, or 0 */
    uint64_t connected, reconnects, connect_failed, closed_by_peer, desync, bad_status;
    uint64_t connect_errno[ERRNO_SLOTS], io_errno[ERRNO_SLOTS], status[600];
    double p50, p99, p999, max, mean; /* us */
};

static void result_collect(struct result *r)
{
    totals_read(&r->t);
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct stats *s = &workers[i].st;
        r->connected += s->connected;
        r->reconnects += s->reconnects;
        r->connect_failed += s->connect_failed;
        r->closed_by_peer += s->closed_by_peer;
        r->desync += s->desync;
        r->bad_status += s->bad_status;
        for (int e = 0; e < ERRNO_SLOTS; e++) {
            r->connect_errno[e] += s->connect_errno[e];
            r->io_errno[e] += s->io_errno[e];
        }
        for (int k = 0; k < 600; k++)
            r->status[k] += s->status[k];
    }
    r->p50 = (double)hist_quantile(r->t.hist, r->t.msgs, 0.50) / 1e3;
    r->p99 = (double)hist_quantile(r->t.hist, r->t.msgs, 0.99) / 1e3;
    r->p999 = (double)hist_quantile(r->t.hist, r->t.msgs, 0.999) / 1e3;
    r->max = (double)r->t.lat_max / 1e3;
    r->mean = r->t.msgs ? (double)r->t.lat_sum / (double)r->t.msgs / 1e3 : 0;
    /* A bucket's middle can lie above the largest sample in it. */
    if (r->p50 > r->max)
        r->p50 = r->max;
    if (r->p99 > r->max)
        r->p99 = r->max;
    if (r->p999 > r->max)
        r->p999 = r->max;
}

static void print_errnos(FILE *f, const char *label, const uint64_t *slots)
{
    bool any = false;
    for (int e = 1; e < ERRNO_SLOTS; e++) {
        if (!slots[e])
            continue;
        fprintf(f, "%s%s x%" PRIu64, any ? ", " : label, errno_name(e), slots[e]);
        any = true;
    }
    if (any)
        fprintf(f, "\n");
}

static void summary_print(const struct result *r)
{
    double rate = r->secs > 0 ? (double)r->t.msgs / r->secs : 0;
    double bps = r->secs > 0 ? (double)r->t.bytes / r->secs : 0;
    const char *unit = cfg.mode == MODE_ECHO ? "msg/s" : "req/s";
    if (cfg.mode == MODE_ECHO)
        printf(PROG ": echo %s:%d, %u connections, %zu B messages, pipeline %u, %u thread%s\n",
               cfg.host, cfg.port, cfg.conns, cfg.size, cfg.pipeline, cfg.threads,
               cfg.threads == 1 ? "" : "s");
    else
        printf(PROG ": http http://%s:%d%s, %u connections, pipeline %u, %u thread%s\n", cfg.host,
               cfg.port, cfg.path, cfg.conns, cfg.pipeline, cfg.threads,
               cfg.threads == 1 ? "" : "s");
    if (r->stop_signal)
        printf("  stopped by %s after %.2f s measured (of %.2f s)\n",
               sigabbrev_np(r->stop_signal) ? sigabbrev_np(r->stop_signal) : "a signal", r->secs,
               cfg.duration);
    printf("  measured     %.2f s after %.2f s warm-up\n", r->secs, cfg.warmup);
    printf("  %-12s %" PRIu64 "  (%.1f %s, %.2f MB/s)\n",
           cfg.mode == MODE_ECHO ? "messages" : "requests", r->t.msgs, rate, unit, bps / 1e6);
    printf("  latency      p50 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us  mean %.1f us\n",
           r->p50, r->p99, r->p999, r->max, r->mean);
    printf("  connections  %" PRIu64 " of %u connected", r->connected, cfg.conns);
    if (r->connected + r->connect_failed < cfg.conns)
        printf(", %" PRIu64 " still connecting at the stop",
               cfg.conns - r->connected - r->connect_failed);
    if (r->reconnects)
        printf(", %" PRIu64 " reconnects", r->reconnects);
    printf("\n");
    print_errnos(stdout, "  connect failed: ", r->connect_errno);
    print_errnos(stdout, "  connections lost: ", r->io_errno);
    if (r->closed_by_peer)
        printf("  connections closed by the server: %" PRIu64 "\n", r->closed_by_peer);
    if (r->desync)
        printf("  connections closed after bad data: %" PRIu64 "\n", r->desync);
    if (cfg.mode == MODE_HTTP) {
        printf("  status      ");
        for (int k = 100; k < 600; k++)
            if (r->status[k])
                printf(" %d x%" PRIu64, k, r->status[k]);
        printf("\n");
    }
    printf("  errors       %" PRIu64 " (verify errors %" PRIu64 ")\n", r->t.errors,
           r->t.verify_errors);
    if (r->server_cpu >= 0)
        printf("  server CPU   %.3f s, %.2f us per message\n", r->server_cpu,
               r->t.msgs ? r->server_cpu * 1e6 / (double)r->t.msgs : 0.0);
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_errnos(FILE *f, const uint64_t *slots)
{
    fprintf(f, "{");
    bool any = false;
    for (int e = 1; e < ERRNO_SLOTS; e++) {
        if (!slots[e])
            continue;
        fprintf(f, "%s\"%s\": %" PRIu64, any ? ", " : "", errno_name(e), slots[e]);
        any = true;
    }
    fprintf(f, "}");
}

static int json_write(const struct result *r)
{
    bool to_stdout = strcmp(cfg.json, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(cfg.json, "w");
    if (!f) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", cfg.json, strerror(errno));
        return -1;
    }
    double rate = r->secs > 0 ? (double)r->t.msgs / r->secs : 0;
    double bps = r->secs > 0 ? (double)r->t.bytes / r->secs : 0;
    fprintf(f, "{\"mode\": \"%s\", ", cfg.mode == MODE_ECHO ? "echo" : "http");
    fprintf(f, "\"host\": ");
    json_string(f, cfg.host);
    fprintf(f, ", \"port\": %d, ", cfg.port);
    if (cfg.mode == MODE_HTTP) {
        fprintf(f, "\"path\": ");
        json_string(f, cfg.path);
        fprintf(f, ", ");
    }
    fprintf(f,
            "\"connections\": %u, \"size\": %zu, \"pipeline\": %u, \"threads\": %u, "
            "\"warmup_s\": %.3f, \"duration_s\": %.3f, \"messages\": %" PRIu64 ", "
            "\"msgs_per_s\": %.1f, \"bytes_per_s\": %.1f, \"p50_us\": %.2f, \"p99_us\": %.2f, "
            "\"p999_us\": %.2f, \"max_us\": %.2f, \"mean_us\": %.2f, \"errors\": %" PRIu64 ", "
            "\"verify_errors\": %" PRIu64 ", \"connected\": %" PRIu64
            ", \"connect_failed\": %" PRIu64 ", \"reconnects\": %" PRIu64
            ", \"closed_by_server\": %" PRIu64 ", ",
            cfg.conns, cfg.mode == MODE_ECHO ? cfg.size : 0, cfg.pipeline, cfg.threads, cfg.warmup,
            r->secs, r->t.msgs, rate, bps, r->p50, r->p99, r->p999, r->max, r->mean, r->t.errors,
            r->t.verify_errors, r->connected, r->connect_failed, r->reconnects, r->closed_by_peer);
    fprintf(f, "\"connect_errors\": ");
    json_errnos(f, r->connect_errno);
    fprintf(f, ", \"io_errors\": ");
    json_errnos(f, r->io_errno);
    if (cfg.mode == MODE_HTTP) {
        fprintf(f, ", \"status\": {");
        bool any = false;
        for (int k = 100; k < 600; k++) {
            if (!r->status[k])
                continue;
            fprintf(f, "%s\"%d\": %" PRIu64, any ? ", " : "", k, r->status[k]);
            any = true;
        }
        fprintf(f, "}");
    }
    if (r->server_cpu >= 0)
        fprintf(f, ", \"server_pid\": %ld, \"server_cpu_s\": %.3f, \"server_cpu_us_per_msg\": %.4f",
                cfg.server_pid, r->server_cpu,
                r->t.msgs ? r->server_cpu * 1e6 / (double)r->t.msgs : 0.0);
    fprintf(f, ", \"stopped_by_signal\": %s}\n", r->stop_signal ? "true" : "false");
    int err = fflush(f) != 0 || ferror(f) ? -1 : 0;
    if (!to_stdout && fclose(f) != 0)
        err = -1;
    if (err)
        fprintf(stderr, PROG ": cannot write %s\n", cfg.json);
    return err;
}

/* ---- options -------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(
        f, "usage: " PROG " [options]\n"
           "Drives a TCP echo server or an HTTP/1.1 server and measures it.\n"
           "  --mode echo|http      what to drive (default echo)\n"
           "  --host ADDR           numeric IPv4/IPv6 address of the server (default 127.0.0.1)\n"
           "  --port N              its port (default 7000 for echo, 8080 for http)\n"
           "  -c, --connections N   connections (default 64)\n"
           "  -s, --size BYTES      echo message size, k/m suffix allowed (default 64)\n"
           "  -p, --pipeline N      messages or requests in flight per connection (default 1)\n"
           "  -d, --duration SECS   measured time, fractions allowed (default 10)\n"
           "  -w, --warmup SECS     time before measuring, not counted (default 1)\n"
           "      --path PATH       http: the path to GET (default /)\n"
           "      --expect-body N   http: a 2xx response's body must be N bytes\n"
           "      --json FILE       write the summary as JSON to FILE (- for stdout)\n"
           "      --threads N       loops, one per thread, connections split among them "
           "(default 1)\n"
           "      --cpu LIST        pin thread i to the i-th CPU of LIST (0,2 or 0-3)\n"
           "      --server-pid PID  report the server's CPU time per message from "
           "/proc/PID/stat\n"
           "  -q, --quiet           no progress and no summary on stdout\n"
        "      --stats           print each loop's counters (SQEs, enters, CQEs, ...) at the end\n"
           "  -h, --help            this text\n"
           "Echo mode checks every byte that comes back; HTTP mode checks each response's framing\n"
           "(chunked responses are refused) and counts 4xx/5xx responses as errors. Messages,\n"
           "status codes and latencies count in the measured window, errors over the whole run.\n"
           "A progress line is printed each second when stdout is a terminal. SIGINT/SIGTERM stop\n"
           "the run and print what was measured so far.\n"
           "Exit status: 0 success, 1 verify errors or no message completed, 2 bad usage.\n");
}

/* Prints "@what '@arg'" and exits with status 2. */
static void bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, PROG ": %s '%s'\nTry '" PROG " --help'.\n", what, arg);
    exit(2);
}

static unsigned long long parse_uint(const char *opt, const char *s, unsigned long long lo,
                                     unsigned long long hi, bool suffix)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        bad_usage("bad number", s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        bad_usage("number out of range:", s);
    if (suffix && *end) {
        unsigned shift = 0;
        switch (*end) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            bad_usage("bad size", s);
        }
        if (v > (ULLONG_MAX >> shift))
            bad_usage("number out of range:", s);
        v <<= shift;
        end++;
    }
    if (*end)
        bad_usage("bad number", s);
    if (v < lo || v > hi) {
        fprintf(stderr, PROG ": %s must be between %llu and %llu\nTry '" PROG " --help'.\n", opt,
                lo, hi);
        exit(2);
    }
    return v;
}

static double parse_secs(const char *s, bool zero_ok)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || (!zero_ok && v == 0) || v > 1e6)
        bad_usage("bad number of seconds", s);
    return v;
}

static void parse_cpus(const char *s)
{
    const char *p = s;
    while (*p) {
        char *end;
        if (!isdigit((unsigned char)*p))
            bad_usage("bad CPU list", s);
        long a = strtol(p, &end, 10), b = a;
        if (*end == '-') {
            if (!isdigit((unsigned char)end[1]))
                bad_usage("bad CPU list", s);
            b = strtol(end + 1, &end, 10);
        }
        if (a < 0 || b < a || b >= CPU_SETSIZE)
            bad_usage("bad CPU list", s);
        for (long i = a; i <= b; i++) {
            if (cfg.ncpus == CPU_SETSIZE)
                bad_usage("bad CPU list", s);
            cfg.cpus[cfg.ncpus++] = (int)i;
        }
        if (*end == ',')
            end++;
        else if (*end)
            bad_usage("bad CPU list", s);
        p = end;
    }
    if (cfg.ncpus == 0)
        bad_usage("bad CPU list", s);
}

static void parse_options(int argc, char **argv)
{
    enum {
        OPT_MODE = 256,
        OPT_HOST,
        OPT_PORT,
        OPT_PATH,
        OPT_JSON,
        OPT_THREADS,
        OPT_CPU,
        OPT_PID,
        OPT_EXPECT,
        OPT_STATS
    };
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, OPT_MODE},
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"connections", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"pipeline", required_argument, NULL, 'p'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"path", required_argument, NULL, OPT_PATH},
        {"json", required_argument, NULL, OPT_JSON},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"cpu", required_argument, NULL, OPT_CPU},
        {"server-pid", required_argument, NULL, OPT_PID},
        {"expect-body", required_argument, NULL, OPT_EXPECT},
        {"quiet", no_argument, NULL, 'q'},
        {"stats", no_argument, NULL, OPT_STATS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:s:p:d:w:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_MODE:
            if (strcmp(optarg, "echo") == 0)
                cfg.mode = MODE_ECHO;
            else if (strcmp(optarg, "http") == 0)
                cfg.mode = MODE_HTTP;
            else
                bad_usage("unknown mode (echo or http):", optarg);
            break;
        case OPT_HOST:
            cfg.host = optarg;
            break;
        case OPT_PORT:
            cfg.port = (int)parse_uint("--port", optarg, 1, 65535, false);
            break;
        case 'c':
            cfg.conns = (unsigned)parse_uint("--connections", optarg, 1, MAX_CONNS, false);
            break;
        case 's':
            cfg.size = (size_t)parse_uint("--size", optarg, 1, MAX_SIZE, true);
            break;
        case 'p':
            cfg.pipeline = (unsigned)parse_uint("--pipeline", optarg, 1, MAX_PIPELINE, false);
            break;
        case 'd':
            cfg.duration = parse_secs(optarg, false);
            break;
        case 'w':
            cfg.warmup = parse_secs(optarg, true);
            break;
        case OPT_PATH:
            if (optarg[0] != '/' || strpbrk(optarg, " \r\n\t"))
                bad_usage("--path must start with / and hold no spaces:", optarg);
            cfg.path = optarg;
            break;
        case OPT_JSON:
            cfg.json = optarg;
            break;
        case OPT_THREADS:
            cfg.threads = (unsigned)parse_uint("--threads", optarg, 1, MAX_THREADS, false);
            break;
        case OPT_CPU:
            parse_cpus(optarg);
            break;
        case OPT_PID:
            cfg.server_pid = (long)parse_uint("--server-pid", optarg, 1, INT_MAX, false);
            break;
        case OPT_EXPECT:
            cfg.expect_body = (long long)parse_uint("--expect-body", optarg, 0, LLONG_MAX, false);
            break;
        case OPT_STATS:
            cfg.stats = true;
            break;
        case 'q':
            cfg.quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            bad_usage("this option needs a value:", argv[optind - 1]);
            break;
        default:
            bad_usage("unknown option", argv[optind - 1]);
            break;
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument", argv[optind]);
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, cfg.host, addr) != 1 && inet_pton(AF_INET6, cfg.host, addr) != 1)
        bad_usage("--host must be a numeric IPv4 or IPv6 address:", cfg.host);
    if (cfg.port < 0)
        cfg.port = cfg.mode == MODE_ECHO ? 7000 : 8080;
    if (cfg.threads > cfg.conns)
        cfg.threads = cfg.conns;
    cfg.paired = cfg.pipeline > 1 || (cfg.mode == MODE_ECHO && cfg.size > SINGLE_MAX);
}

/* Raises RLIMIT_NOFILE's soft limit as far as needed and allowed. Returns false if it cannot fit
 * every connection. */
static bool enough_fds(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return true;
    rlim_t need = (rlim_t)cfg.conns + 64 + 2 * cfg.threads;
    if (rl.rlim_cur >= need)
        return true;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= need)
        return true;
    fprintf(stderr, PROG ": %u connections need %llu descriptors, RLIMIT_NOFILE allows %llu\n",
            cfg.conns, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
    return false;
}

/* Sets up the request, the pool, and the workers with their connections. Returns 0 or -1. */
static int setup(void)
{
    if (cfg.mode == MODE_HTTP) {
        /* An IPv6 address goes in brackets in Host. */
        bool v6 = strchr(cfg.host, ':') != NULL;
        size_t cap = strlen(cfg.path) + strlen(cfg.host) + 64;
        cfg.request = malloc(cap);
        if (!cfg.request)
            return -1;
        int n = snprintf(cfg.request, cap, "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\n\r\n", cfg.path,
                         v6 ? "[" : "", cfg.host, v6 ? "]" : "", cfg.port);
        cfg.request_len = (size_t)n;
    } else {
        cfg.pool = malloc(POOL_SIZE + cfg.size);
        if (!cfg.pool)
            return -1;
        uint64_t x = 0x636f72696f2d6c64ull;
        for (size_t i = 0; i < POOL_SIZE + cfg.size; i += 8) {
            x = splitmix64(x);
            size_t n = POOL_SIZE + cfg.size - i < 8 ? POOL_SIZE + cfg.size - i : 8;
            memcpy(cfg.pool + i, &x, n);
        }
    }
    workers = calloc(cfg.threads, sizeof(*workers));
    if (!workers)
        return -1;
    for (unsigned i = 0; i < cfg.threads; i++)
        workers[i].efd = -1;
    size_t rcap = cfg.mode == MODE_HTTP ? HTTP_RBUF : cfg.size * cfg.pipeline;
    if (cfg.mode == MODE_ECHO && rcap < 16384)
        rcap = 16384;
    if (cfg.mode == MODE_ECHO && rcap > 256 * 1024)
        rcap = 256 * 1024;
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct worker *w = &workers[i];
        unsigned first = (unsigned)((uint64_t)cfg.conns * i / cfg.threads);
        unsigned last = (unsigned)((uint64_t)cfg.conns * (i + 1) / cfg.threads);
        w->index = i;
        w->cpu = cfg.ncpus ? cfg.cpus[i % cfg.ncpus] : -1;
        w->nconns = last - first;
        w->efd = eventfd(0, EFD_CLOEXEC);
        w->conn = calloc(w->nconns, sizeof(*w->conn));
        if (w->efd < 0 || !w->conn)
            return -1;
        for (unsigned k = 0; k < w->nconns; k++) {
            struct conn *c = &w->conn[k];
            c->w = w;
            c->id = first + k;
            c->fd = -1;
            c->rcap = rcap;
            c->rbuf = malloc(rcap);
            c->t_send = calloc(cfg.pipeline, sizeof(*c->t_send));
            c->sbuf = cfg.mode == MODE_ECHO ? malloc(cfg.size) : NULL;
            if (!c->rbuf || !c->t_send || (cfg.mode == MODE_ECHO && !c->sbuf))
                return -1;
        }
    }
    return 0;
}

static void teardown(void)
{
    for (unsigned i = 0; workers && i < cfg.threads; i++) {
        struct worker *w = &workers[i];
        for (unsigned k = 0; w->conn && k < w->nconns; k++) {
            free(w->conn[k].rbuf);
            free(w->conn[k].t_send);
            free(w->conn[k].sbuf);
        }
        free(w->conn);
        if (w->efd >= 0)
            close(w->efd);
    }
    free(workers);
    free(cfg.pool);
    free(cfg.request);
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    if (!enough_fds())
        return 2;
    cfg.progress = !cfg.quiet && isatty(STDOUT_FILENO);
    if (cfg.server_pid && proc_cpu_seconds(cfg.server_pid) < 0) {
        fprintf(stderr, PROG ": cannot read /proc/%ld/stat\n", cfg.server_pid);
        return 2;
    }
    if (setup() != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        teardown();
        return 1;
    }

    /* The threads inherit the mask, so the signals only reach sigtimedwait below. A shell starts
     * background jobs with SIGINT ignored, and an ignored signal is discarded before anyone can
     * wait for it: take the default disposition back first (blocked, it never runs). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (cfg.ncpus) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (unsigned i = 0; i < cfg.ncpus; i++)
            CPU_SET(cfg.cpus[i], &set);
        sched_setaffinity(0, sizeof(set), &set);
    }

    cfg.t0 = corio_now();
    cfg.t_measure = cfg.t0 + secs_to_ns(cfg.warmup);
    cfg.t_end = cfg.t_measure + secs_to_ns(cfg.duration);
    unsigned started = 0;
    for (; started < cfg.threads; started++) {
        int err = pthread_create(&workers[started].thread, NULL, worker_thread, &workers[started]);
        if (err) {
            fprintf(stderr, PROG ": cannot start a thread: %s\n", strerror(err));
            break;
        }
    }

    struct result res;
    memset(&res, 0, sizeof(res));
    res.server_cpu = -1;
    double cpu_start = -1;
    int64_t next_tick = cfg.t0 + CORIO_SEC(1);
    uint64_t last_msgs = 0;
    int64_t last_t = cfg.t0;
    int64_t now = corio_now();
    while (started == cfg.threads) {
        now = corio_now();
        if (cpu_start < 0 && cfg.server_pid && now >= cfg.t_measure)
            cpu_start = proc_cpu_seconds(cfg.server_pid);
        if (now >= cfg.t_end || all_finished())
            break;
        if (cfg.progress && now >= next_tick) {
            progress_line(&res.t, now, &last_msgs, &last_t);
            next_tick += CORIO_SEC(1);
        }
        int64_t wake = cfg.t_end;
        if (cfg.progress && next_tick < wake)
            wake = next_tick;
        if (cfg.server_pid && cpu_start < 0 && cfg.t_measure < wake)
            wake = cfg.t_measure;
        if (wake - now > CORIO_MS(100)) /* how soon all_finished() is noticed */
            wake = now + CORIO_MS(100);
        if (wake < now)
            wake = now;
        struct timespec ts = {.tv_sec = (wake - now) / CORIO_SEC(1),
                              .tv_nsec = (wake - now) % CORIO_SEC(1)};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig > 0) {
            res.stop_signal = sig;
            now = corio_now();
            break;
        }
    }
    if (cpu_start >= 0) {
        double cpu_end = proc_cpu_seconds(cfg.server_pid);
        if (cpu_end >= 0)
            res.server_cpu = cpu_end - cpu_start;
    }
    for (unsigned i = 0; i < started; i++) {
        uint64_t one = 1;
        if (write(workers[i].efd, &one, sizeof(one)) != sizeof(one))
            fprintf(stderr, PROG ": cannot stop thread %u: %s\n", i, strerror(errno));
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);

    int setup_err = 0;
    for (unsigned i = 0; i < cfg.threads; i++)
        if (workers[i].setup_err && !setup_err)
            setup_err = workers[i].setup_err;
    if (setup_err)
        fprintf(stderr, PROG ": %s\n", corio_strerror_setup(setup_err));

    int64_t stop = now < cfg.t_end ? now : cfg.t_end;
    res.secs = stop > cfg.t_measure ? (double)(stop - cfg.t_measure) / 1e9 : 0;
    result_collect(&res);
    if (!cfg.quiet)
        summary_print(&res);
    int status = 0;
    if (cfg.json && json_write(&res) != 0)
        status = 1;
    if (res.t.verify_errors > 0) {
        fprintf(stderr, PROG ": %" PRIu64 " verify errors\n", res.t.verify_errors);
        status = 1;
    }
    if (res.t.msgs == 0) {
        fprintf(stderr, PROG ": no message completed in the measured window\n");
        status = 1;
    }
    if (started < cfg.threads || setup_err)
        status = 1;
    teardown();
    return status;
}
