/*
 * What the parts of corio-load share: its limits, the configuration, the per-thread counters, the
 * connection and worker records, and the calls each part makes into another.
 *
 * The parts: options.c (the command line into cfg), hist.c (latency histogram), stats.c
 * (recording and summing the counters), echo.c and http.c (the two protocols on the wire),
 * conn.c (the connection coroutines and the worker threads), report.c (progress line, summary,
 * JSON) and tools/corio-load.c (set-up and the coordinator that times the run).
 */
#ifndef CORIO_LOAD_H
#define CORIO_LOAD_H

#include <corio.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- histogram (hist.c) --------------------------------------------------------------------- */

/* Values below 2^(SUB_BITS+1) ns have a bucket each; above, each power of two [2^e, 2^(e+1)) is
 * cut into 2^SUB_BITS equal buckets, so a bucket is at most 1/128 of its values wide. Values clamp
 * at 2^(MAX_EXP+1) - 1 ns, about 36 minutes. */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 40
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS) * HIST_SUB + 2 * HIST_SUB)

/* The bucket of value @v (ns). Inline: every completed message calls it. */
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

/* A value among @n samples at quantile @q of a merged histogram @h: the bucket holding the
 * ceil(q * n)-th smallest sample. Returns it in ns, 0 if @n is 0. */
uint64_t load_hist_quantile(const uint64_t *h, uint64_t n, double q);

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

/* ---- configuration (options.c) -------------------------------------------------------------- */

enum mode { MODE_ECHO, MODE_HTTP };

struct config {
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
    bool stats;            /* print each loop's counters (corio_stats) at the end */
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
};

/* The one configuration of the run, defined in options.c; every part reads it. */
extern struct config cfg;

/* Fills cfg from the command line. Exits with status 2 and a message on bad usage, and with 0
 * after --help. */
void load_parse_options(int argc, char **argv);

/* ---- workers and connections (conn.c) ------------------------------------------------------- */

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

/* The thread of worker @arg: its own loop, running its connections until the coordinator's stop
 * arrives on its eventfd. Returns NULL; a loop that could not start is left in w->setup_err. */
void *load_worker_thread(void *arg);

/* ---- recording (stats.c) -------------------------------------------------------------------- */

/* A message of @bytes completed at @now after starting at @start. Returns whether it falls in
 * the measured window (and was counted). Inline: every completed message calls it. */
static inline bool record(struct worker *w, int64_t start, int64_t now, uint64_t bytes)
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

static inline void count_error(struct worker *w)
{
    bump(&w->st.errors, 1);
}

/* Counts error @err (-errno or errno) in its slot of @slots. */
void load_count_errno(uint64_t *slots, int err);

/* Takes a turn at printing a verify error. Returns whether this one may be printed: the first
 * MAX_VERIFY_REPORTS of the run, across threads, are. */
bool load_may_report(void);

/* Counts a verify error (and so an error) of connection @c. */
void load_verify_error(struct conn *c);

/* Sums of every thread's counters. */
struct totals {
    uint64_t msgs_all, msgs, bytes, lat_sum, lat_max, errors, verify_errors, active;
    uint64_t hist[HIST_BUCKETS];
};

/* What the run measured, as the summary and the JSON show it. */
struct result {
    struct totals t;
    double secs;       /* the measured window's length */
    double server_cpu; /* seconds, or -1 */
    int stop_signal;   /* the signal that ended the run early, or 0 */
    uint64_t connected, reconnects, connect_failed, closed_by_peer, desync, bad_status;
    uint64_t connect_errno[ERRNO_SLOTS], io_errno[ERRNO_SLOTS], status[600];
    double p50, p99, p999, max, mean; /* us */
};

/* Sums the live counters of the @n workers @ws into @t; the threads may still be running. */
void load_totals_read(const struct worker *ws, unsigned n, struct totals *t);

/* Adds up everything the @n joined workers @ws counted into @r, with its latency figures. */
void load_result_collect(const struct worker *ws, unsigned n, struct result *r);

/* ---- the protocols (echo.c, http.c) --------------------------------------------------------- */

/* Fills cfg.pool, the bytes echo messages are cut from. Returns 0, or -1 out of memory. */
int load_echo_setup(void);

/* Takes @n received bytes of connection @c at time @now. Returns false when the stream is lost. */
bool load_echo_consume(struct conn *c, const uint8_t *buf, size_t n, int64_t now);

/* Sends message `sent` of @c. Returns 0 or -errno. */
int load_echo_send_one(struct conn *c, int64_t deadline);

/* Builds cfg.request, the GET every HTTP connection sends. Returns 0, or -1 out of memory. */
int load_http_setup(void);

/* Takes the bytes in c->rbuf. Returns 1 to go on, 0 when the server closes after a complete
 * response (Connection: close), -1 when the stream is lost. */
int load_http_consume(struct conn *c, int64_t now);

/* Sends request `sent` of @c. Returns 0 or -errno. */
int load_http_send_one(struct conn *c, int64_t deadline);

/* ---- output (report.c) ---------------------------------------------------------------------- */

/* Prints the once-a-second progress line of totals @t: @el seconds since the start, @rate
 * messages per second since the last line, @warm during the warm-up. */
void load_progress_line(const struct totals *t, double el, double rate, bool warm);

/* Prints the summary of @r on stdout. */
void load_summary_print(const struct result *r);

/* Writes @r as one line of JSON to cfg.json ("-": stdout). Returns 0, or -1 after a message. */
int load_json_write(const struct result *r);

#endif
