/* The HTTP server's connection I/O: receiving into the input buffer, appending to and flushing
 * the output buffer, and the deadline that bounds each phase of waiting on the peer.
 *
 * Each phase of a connection that waits on the peer (a head, a body read, a write) is bounded by
 * the coroutine's own deadline (corio_set_deadline): one timer for all the receives or sends of
 * the phase, none per operation, and none at all for an operation that completes before it. A
 * phase narrows the deadline and sets the previous one back when it ends, so that a handler never
 * runs under a bound of the server's, and the server's calls a handler makes (a write, a body
 * read) keep the handler's own deadline when it is earlier. The deadline such a call takes joins
 * the phase the same way: whichever of the three is earliest ends the wait. */
#include "server.h"

#include <errno.h>
#include <string.h>

int64_t corio__http_phase_begin(int64_t deadline)
{
    int64_t prev;
    corio_set_deadline(deadline, &prev);
    if (prev >= 0 && prev < deadline)
        corio_set_deadline(prev, NULL);
    return prev;
}

void corio__http_phase_end(int64_t prev)
{
    /* A deadline of the phase that passed goes with it, so the next wait (a flush after a
     * timed-out read) is not failed at once. */
    corio_set_deadline(prev, NULL);
}

/* With the server's buffer ring, a multishot receive stays armed on the connection (no poll to
 * arm again per request) and each buffer the kernel fills is copied out, the rest of it kept for
 * the next call; otherwise a receive per call. */
ssize_t corio__http_recv(struct corio_http_conn *c, void *dst, size_t len)
{
    if (!c->use_rx)
        return corio_recv(c->fd, dst, len, 0, CORIO_FOREVER);
    if (!c->pend.ring) {
        ssize_t n = corio_receiver_next(&c->rx, &c->pend, CORIO_FOREVER);
        if (n <= 0)
            return n;
        c->pend_off = 0;
    }
    size_t k = c->pend.len - c->pend_off;
    if (k > len)
        k = len;
    memcpy(dst, (const char *)c->pend.data + c->pend_off, k);
    c->pend_off += k;
    if (c->pend_off == c->pend.len)
        corio_buf_release(&c->pend);
    return (ssize_t)k;
}

/* Sends @len bytes from @p by @deadline, as corio__http_flush_out says. Returns 0, or -errno with
 * the connection marked broken. */
static int send_out(struct corio_http_conn *c, const void *p, size_t len, int64_t deadline)
{
    int64_t prev = CORIO_FOREVER;
    if (deadline != CORIO_FOREVER)
        prev = corio__http_phase_begin(deadline);
    c->out_bytes += len;
    ssize_t r = corio_send_all(c->fd, p, len, NULL, CORIO_FOREVER);
    if (deadline != CORIO_FOREVER)
        corio__http_phase_end(prev);
    if (r < 0) {
        c->broken = true;
        return (int)r;
    }
    return 0;
}

int corio__http_flush_out(struct corio_http_conn *c, int64_t deadline)
{
    if (c->wlen == 0)
        return 0;
    int err = send_out(c, c->wbuf, c->wlen, deadline);
    c->wlen = 0;
    return err;
}

int corio__http_append_slow(struct corio_http_conn *c, const void *p, size_t len, int64_t deadline)
{
    if (c->broken)
        return -EPIPE;
    int err = corio__http_flush(c, deadline);
    if (err)
        return err;
    if (len <= c->wcap / 2) {
        memcpy(c->wbuf, p, len);
        c->wlen = len;
        return 0;
    }
    /* Too large to be worth a copy: straight from the caller's memory. */
    return send_out(c, p, len, corio__http_write_bound(c, deadline));
}
