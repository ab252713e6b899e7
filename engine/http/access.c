/* The HTTP server's access log: a line per request, gathered in a buffer of the server's (a server
 * serves one loop, so the buffer is the loop's) and handed over in batches: when a line would not
 * fit, once a second from a timer coroutine, and when the server's last serving call ends. A
 * request pays one formatted line in memory; the system call, or the caller's function, comes
 * once per batch. With the log off the server pays one test of a NULL pointer per request. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The buffer's size, and the room one line may need at most: a peer address, the date, a method
 * and a target cut to their bounds and escaped at worst four bytes for one, and the numbers. */
#define LOG_BUF_BYTES 65536
#define LOG_METHOD_MAX 32
#define LOG_TARGET_MAX 2048
#define LOG_LINE_MAX (4 * (LOG_METHOD_MAX + LOG_TARGET_MAX) + 256)

/* The timer coroutine's state, its own allocation: the coroutine frees it when it ends, which may
 * be after the server is gone, so the server only clears @log and cancels it. */
struct ticker {
    struct corio__http_log *log; /* the log to hand over once a second; NULL: stop */
};

struct corio__http_log {
    corio_http_access_log_fn *fn;    /* the caller's function, or NULL */
    void *arg;                       /* its argument */
    int fd;                          /* else the descriptor written to */
    struct ticker *ticker;           /* the running timer's state, NULL when none runs */
    corio_id ticker_id;              /* its coroutine */
    int peer_family;                 /* the address peer_str spells (AF_UNSPEC: none yet) */
    unsigned char peer_addr[16];     /* its bytes, 4 or 16 */
    char peer_str[INET6_ADDRSTRLEN]; /* the last peer's address, as text */
    size_t peer_len;                 /* bytes in peer_str */
    time_t sec;                      /* the second that date is of */
    char date[32];                   /* "[08/Dec/2026:01:35:22 +0000] \"", the line's date part */
    size_t date_len;                 /* bytes in date */
    size_t len;                      /* bytes of lines in buf */
    char buf[LOG_BUF_BYTES];         /* the lines not yet handed over */
};

int corio__http_log_new(struct corio_http_server *s)
{
    if (!s->o.access_log && s->o.access_log_fd <= 0)
        return 0;
    struct corio__http_log *log = calloc(1, sizeof(*log));
    if (!log)
        return -ENOMEM;
    log->fn = s->o.access_log;
    log->arg = s->o.access_log_arg;
    log->fd = s->o.access_log_fd;
    log->sec = -1;
    s->log = log;
    return 0;
}

/* Hands the lines over to the caller's function, or writes them to the descriptor. A write that
 * fails loses the batch: a log must not stop the server. Returns nothing. */
static void hand_over(struct corio__http_log *log)
{
    if (log->len == 0)
        return;
    if (log->fn) {
        log->fn(log->arg, log->buf, log->len);
    } else {
        size_t done = 0;
        while (done < log->len) {
            ssize_t n = write(log->fd, log->buf + done, log->len - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            done += (size_t)n;
        }
    }
    log->len = 0;
}

void corio__http_log_free(struct corio_http_server *s)
{
    if (!s->log)
        return;
    hand_over(s->log);
    free(s->log);
    s->log = NULL;
}

static int tick_main(void *arg)
{
    struct ticker *t = arg;
    corio_set_name("http access log");
    while (t->log && corio_sleep(corio_now() + CORIO_SEC(1)) == 0) {
        if (t->log)
            hand_over(t->log);
    }
    free(t);
    return 0;
}

void corio__http_log_hold(struct corio_http_server *s)
{
    struct corio__http_log *log = s->log;
    if (!log || log->ticker)
        return;
    struct ticker *t = malloc(sizeof(*t));
    if (!t)
        return; /* no timer: the lines go when the buffer fills and at the end */
    t->log = log;
    if (corio_spawn(&log->ticker_id, NULL, tick_main, t) != 0) {
        free(t);
        return;
    }
    corio_detach(log->ticker_id);
    log->ticker = t;
}

void corio__http_log_drop(struct corio_http_server *s)
{
    struct corio__http_log *log = s->log;
    if (!log)
        return;
    if (log->ticker) {
        log->ticker->log = NULL;
        corio_cancel(log->ticker_id);
        log->ticker = NULL;
    }
    hand_over(log);
}

/* Makes log->date the date part of a line for now: the second of the last response head's Date
 * (the server reads the clock for it), or of the clock where no head was written. */
static void log_date(struct corio__http_log *log, const struct corio_http_server *s)
{
    struct timespec ts = {.tv_sec = s->head_sec};
    if (s->head_status == 0)
        clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec == log->sec)
        return;
    /* From the IMF-fixdate "Tue, 08 Dec 2026 01:35:22 GMT": its day, month, year and time. */
    char d[CORIO_HTTP_DATE_LEN + 1];
    if (corio_http_format_date(d, sizeof(d), ts.tv_sec) < 0)
        memcpy(d, "Thu, 01 Jan 1970 00:00:00 GMT", sizeof(d));
    char *p = log->date;
    *p++ = '[';
    memcpy(p, d + 5, 2);
    p[2] = '/';
    memcpy(p + 3, d + 8, 3);
    p[6] = '/';
    memcpy(p + 7, d + 12, 4);
    p[11] = ':';
    memcpy(p + 12, d + 17, 8);
    memcpy(p + 20, " +0000] \"", 9);
    log->date_len = 1 + 29;
    log->sec = ts.tv_sec;
}

/* Writes @n bytes of @s to @out, at most @max of them, escaping what is not visible ASCII and the
 * quote and backslash as \xHH, so that a line stays one line and its quoted field one field.
 * Returns the bytes written. */
static size_t put_escaped(char *out, const char *s, size_t n, size_t max)
{
    static const char hex[] = "0123456789ABCDEF";
    char *p = out;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
            *p++ = (char)ch;
            continue;
        }
        p[0] = '\\';
        p[1] = 'x';
        p[2] = hex[ch >> 4];
        p[3] = hex[ch & 15];
        p += 4;
    }
    return (size_t)(p - out);
}

/* Writes @v in decimal, at least @width digits (zero-padded). Returns the bytes written. */
static size_t put_u64(char *out, uint64_t v, unsigned width)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v || n < width);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* Writes the peer's address of @c, or "-". The text of the last address is kept: inet_ntop
 * formats with sprintf, two thirds of a line's cost, and the requests that follow one another
 * mostly come from one client (its connection's, or another's of the same host). Returns the
 * bytes written. */
static size_t put_peer(char *out, struct corio__http_log *log, const struct corio_http_conn *c)
{
    const void *a = NULL;
    size_t alen = 0;
    int fam = c->peer_len ? c->peer.ss_family : AF_UNSPEC;
    if (fam == AF_INET) {
        a = &((const struct sockaddr_in *)&c->peer)->sin_addr;
        alen = 4;
    } else if (fam == AF_INET6) {
        a = &((const struct sockaddr_in6 *)&c->peer)->sin6_addr;
        alen = 16;
    }
    if (!a) {
        out[0] = '-';
        return 1;
    }
    if (fam != log->peer_family || memcmp(a, log->peer_addr, alen) != 0) {
        if (!inet_ntop(fam, a, log->peer_str, sizeof(log->peer_str))) {
            out[0] = '-';
            return 1;
        }
        log->peer_family = fam;
        memcpy(log->peer_addr, a, alen);
        log->peer_len = strlen(log->peer_str);
    }
    memcpy(out, log->peer_str, log->peer_len);
    return log->peer_len;
}

void corio__http_log_request(struct corio_http_conn *c, const struct corio_http_request *req,
                             const struct corio__http_log_mark *m)
{
    struct corio__http_log *log = c->s->log;
    if (LOG_BUF_BYTES - log->len < LOG_LINE_MAX)
        hand_over(log);
    log_date(log, c->s);
    char *const line = log->buf + log->len;
    char *p = line;
    p += put_peer(p, log, c);
    memcpy(p, " - - ", 5);
    p += 5;
    memcpy(p, log->date, log->date_len);
    p += log->date_len;
    p += put_escaped(p, req->method_str, req->method_len, LOG_METHOD_MAX);
    *p++ = ' ';
    p += put_escaped(p, req->target, req->target_len, LOG_TARGET_MAX);
    memcpy(p, " HTTP/1.0\" ", 11);
    p[8] = (char)('0' + req->minor_version);
    p += 11;
    p += put_u64(p, (uint64_t)(c->status > 0 ? c->status : 0), 1);
    *p++ = ' ';
    p += put_u64(p, c->out_bytes + c->wlen - m->out_bytes, 1);
    *p++ = ' ';
    uint64_t us = (uint64_t)(corio_now() - m->start) / 1000;
    p += put_u64(p, us / 1000000, 1);
    *p++ = '.';
    p += put_u64(p, us % 1000000, 6);
    *p++ = '\n';
    log->len += (size_t)(p - line);
}
