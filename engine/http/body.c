/* The HTTP server's request bodies: reading a Content-Length or chunked body for the handler, the
 * 100 Continue a client may wait for, and dropping what the handler did not read.
 *
 * The body is read into the input buffer behind the head (the head stays in place until the
 * request is done, the request struct points into it); a chunked body is decoded in place there.
 * Every receive is bounded by the body deadline, set when the head was complete. */
#include "server.h"

#include <errno.h>
#include <string.h>

void corio__http_body_start(struct corio_http_conn *c, const struct corio_http_request *req,
                            size_t at)
{
    c->sent_continue = false;
    c->expect_continue = req->expect_continue;
    c->bstart = c->bpos = at;
    c->payload_len = 0;
    if (req->chunked) {
        c->body = CORIO__HTTP_BODY_CHUNKED;
        corio_http_chunked_init(&c->ch, &c->s->o.limits);
    } else if (req->content_length > 0) {
        c->body = CORIO__HTTP_BODY_LENGTH;
        c->body_left = req->content_length;
    } else {
        c->body = CORIO__HTTP_BODY_NONE;
        return;
    }
    c->body_deadline = corio_now() + c->s->o.body_timeout;
}

static int send_continue(struct corio_http_conn *c, int64_t deadline)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->sent_continue = true;
    int err = corio__http_append(c, cont, sizeof(cont) - 1, deadline);
    return err ? err : corio__http_flush(c, deadline);
}

/* Receives up to @len body bytes into @dst, bounded by the body deadline and the caller's
 * @deadline, whichever is earlier. Responses already written go out before the wait, as
 * corio_http_respond promises: the client may wait for one before it sends the rest. Returns the
 * bytes read, or -errno (-ECONNRESET at EOF: the peer ended the stream inside the body). */
static ssize_t body_recv(struct corio_http_conn *c, void *dst, size_t len, int64_t deadline)
{
    int err = corio__http_flush(c, deadline);
    if (err)
        return err;
    int64_t prev = corio__http_phase_begin(corio__http_earlier(c->body_deadline, deadline));
    ssize_t n = corio__http_recv(c, dst, len);
    corio__http_phase_end(prev);
    return n == 0 ? -ECONNRESET : n;
}

/* A body read failed: the request's framing is lost, so the connection ends after this request.
 * The output is intact, so the handler may still answer (408, 400, ...). Returns @err. */
static ssize_t body_failed(struct corio_http_conn *c, ssize_t err)
{
    c->body = CORIO__HTTP_BODY_ERROR;
    c->keep_alive = false;
    return err;
}

/* corio_http_read_body for a Content-Length body: buffered bytes first, then straight into
 * @buf. */
static ssize_t read_length(struct corio_http_conn *c, void *buf, size_t len, int64_t deadline)
{
    if (c->body_left == 0) {
        c->body = CORIO__HTTP_BODY_DONE;
        return 0;
    }
    size_t want = len < (uint64_t)c->body_left ? len : (size_t)c->body_left;
    ssize_t n;
    if (c->bpos < c->rlen) {
        n = (ssize_t)(c->rlen - c->bpos < want ? c->rlen - c->bpos : want);
        memcpy(buf, c->rbuf + c->bpos, (size_t)n);
        c->bpos += (size_t)n;
    } else {
        n = body_recv(c, buf, want, deadline);
        if (n < 0)
            return body_failed(c, n);
    }
    c->body_left -= n;
    if (c->body_left == 0)
        c->body = CORIO__HTTP_BODY_DONE;
    return n;
}

/* Reads more body input into rbuf after the head; the bytes before bstart are never moved.
 * Returns the bytes read or -errno. */
static ssize_t body_fill(struct corio_http_conn *c, int64_t deadline)
{
    if (c->bpos == c->rlen) {
        c->bpos = c->rlen = c->bstart;
        c->payload_off = c->bstart;
    }
    if (c->rlen == c->rcap)
        return -ENOBUFS;
    ssize_t n = body_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen, deadline);
    if (n > 0)
        c->rlen += (size_t)n;
    return n;
}

/* corio_http_read_body for a chunked body: decode in place behind the head, hand out the
 * payload, read more when it is empty. */
static ssize_t read_chunked(struct corio_http_conn *c, void *buf, size_t len, int64_t deadline)
{
    for (;;) {
        if (c->payload_len > 0) {
            size_t n = len < c->payload_len ? len : c->payload_len;
            memcpy(buf, c->rbuf + c->payload_off, n);
            c->payload_off += n;
            c->payload_len -= n;
            return (ssize_t)n;
        }
        if (c->body == CORIO__HTTP_BODY_DONE)
            return 0;
        if (c->bpos == c->rlen) {
            ssize_t n = body_fill(c, deadline);
            if (n < 0)
                return body_failed(c, n);
        }
        size_t produced = 0, consumed = 0;
        int r = corio_http_chunked_decode(&c->ch, c->rbuf + c->bpos, c->rlen - c->bpos, &produced,
                                          &consumed);
        c->payload_off = c->bpos;
        c->payload_len = produced;
        c->bpos += consumed;
        if (r == 0)
            c->body = CORIO__HTTP_BODY_DONE;
        else if (r != -EAGAIN)
            return body_failed(c, r); /* the handler can still answer corio_http_status(r) */
    }
}

ssize_t corio_http_read_body(struct corio_http_conn *c, void *buf, size_t len, int64_t deadline)
{
    if (c->body == CORIO__HTTP_BODY_NONE || c->body == CORIO__HTTP_BODY_DONE)
        return 0;
    if (c->body == CORIO__HTTP_BODY_ERROR)
        return -EPROTO;
    if (c->expect_continue && !c->sent_continue && c->resp == CORIO__HTTP_RESP_NONE) {
        int err = send_continue(c, deadline);
        if (err)
            return err;
    }
    if (c->body == CORIO__HTTP_BODY_LENGTH)
        return read_length(c, buf, len, deadline);
    return read_chunked(c, buf, len, deadline);
}

void corio__http_body_discard(struct corio_http_conn *c)
{
    if (c->body == CORIO__HTTP_BODY_NONE || c->body == CORIO__HTTP_BODY_DONE)
        return;
    if (c->expect_continue && !c->sent_continue) {
        /* The client waits for our go-ahead before it sends the body: it never got one, so the
         * body will not come on this connection. */
        c->keep_alive = false;
        c->body = CORIO__HTTP_BODY_DONE;
        return;
    }
    char scratch[4096];
    ssize_t n;
    while ((n = corio_http_read_body(c, scratch, sizeof(scratch), CORIO_FOREVER)) > 0)
        ;
    if (n < 0)
        c->broken = true;
}
