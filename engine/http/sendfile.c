/* The HTTP server's response bodies from a file: corio_http_send_file, and the static files'
 * bodies. The bytes go from the file to a pipe and from the pipe to the socket with splice(2):
 * the page cache's pages are passed along, never copied to the server's memory and back. The
 * pipes are the server's, kept for reuse: one per connection sending at that moment.
 *
 * Both splices are made without blocking (SPLICE_F_NONBLOCK), on either backend: a socket that
 * cannot take more is waited for with corio_poll, and bytes of the file not in the page cache are
 * read in with corio_read first (on io_uring or the epoll backend's file pool, not on the loop's
 * thread). A connection whose fd is a direct descriptor (the ring's fixed file table), which
 * splice(2) cannot name, gets the file read into its output buffer and sent from there. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>

/* A pipe's capacity: 256 KiB (the default is 64 KiB), so that a large file goes in fewer
 * splices; at most PIPES_KEPT of them are kept between uses. */
#define PIPE_BYTES (256 * 1024)
#define PIPES_KEPT 64

/* The pipes a server keeps for reuse. */
struct corio__http_pipes {
    size_t n;               /* pipes in fds */
    int fds[PIPES_KEPT][2]; /* their read and write ends */
};

/* Takes an empty pipe of @s's, or makes one. Returns 0 with @p set, or -errno. */
static int pipe_take(struct corio_http_server *s, int p[2])
{
    if (s->pipes && s->pipes->n > 0) {
        s->pipes->n--;
        p[0] = s->pipes->fds[s->pipes->n][0];
        p[1] = s->pipes->fds[s->pipes->n][1];
        return 0;
    }
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        return -errno;
    fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES); /* a smaller pipe works too */
    return 0;
}

/* Gives pipe @p back to @s, or closes it when it still holds bytes (a send that failed) or the
 * server keeps enough. Returns nothing. */
static void pipe_give(struct corio_http_server *s, int p[2], bool empty)
{
    if (empty && !s->pipes)
        s->pipes = calloc(1, sizeof(*s->pipes));
    if (empty && s->pipes && s->pipes->n < PIPES_KEPT) {
        s->pipes->fds[s->pipes->n][0] = p[0];
        s->pipes->fds[s->pipes->n][1] = p[1];
        s->pipes->n++;
        return;
    }
    close(p[0]);
    close(p[1]);
}

void corio__http_pipes_free(struct corio_http_server *s)
{
    if (!s->pipes)
        return;
    for (size_t i = 0; i < s->pipes->n; i++) {
        close(s->pipes->fds[i][0]);
        close(s->pipes->fds[i][1]);
    }
    free(s->pipes);
    s->pipes = NULL;
}

/* splice(2) from pipe @p to the socket of @c, whose file status flags are @fl, without blocking
 * and without SIGPIPE. The kernel asks the socket not to block by its O_NONBLOCK flag alone
 * (SPLICE_F_NONBLOCK is for the pipe), and the sockets of both backends are left blocking (their
 * ops say MSG_DONTWAIT or wait in the kernel), so the flag is set for the call and cleared after;
 * no other call on the socket runs in between, the loop's thread being in this one. And splice
 * has no MSG_NOSIGNAL, which corio's sends pass: a peer gone raises SIGPIPE, whose default ends
 * the process. It is blocked for the call, and one it raised is taken back (MSG_NOSIGNAL's effect,
 * as libraries that cannot pass the flag do it). Returns what splice(2) does. */
static ssize_t splice_out(struct corio_http_conn *c, int fl, int p, size_t n, unsigned flags)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    if (!(fl & O_NONBLOCK))
        fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    ssize_t m = splice(p, NULL, c->fd, NULL, n, flags);
    int err = errno;
    if (!(fl & O_NONBLOCK))
        fcntl(c->fd, F_SETFL, fl);
    /* A splice moves the pipe's buffers one send each: one that failed after others went out
     * raised its SIGPIPE all the same, and the splice returns the short count. A splice that moved
     * everything raised none, so only a short one or a failure needs the look. */
    if ((m < 0 ? err == EPIPE : (size_t)m < n) && !sigismember(&old, SIGPIPE)) {
        const struct timespec now = {0, 0};
        sigtimedwait(&pipe_set, NULL, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return m;
}

/* Moves the @n bytes in pipe @p to the socket (file status flags @fl), waiting for it to take
 * them until @deadline (and the idle bound). @more: more bytes follow at once. Returns 0 or
 * -errno. */
static int pipe_to_socket(struct corio_http_conn *c, int fl, int p, size_t n, bool more,
                          int64_t deadline)
{
    unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0);
    while (n > 0) {
        ssize_t m = splice_out(c, fl, p, n, flags);
        if (m > 0) {
            n -= (size_t)m;
            c->out_bytes += (uint64_t)m;
            continue;
        }
        if (m == 0)
            return -EPIPE;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int r = corio_poll(c->fd, POLLOUT, corio__http_write_bound(c, deadline));
        if (r < 0)
            return r;
    }
    return 0;
}

/* The file's bytes at @off are not in the page cache, and a splice that does not block does not
 * read them (SPLICE_F_NONBLOCK asks the file for IOCB_NOWAIT too): reads them with corio_read,
 * which does not hold the loop's thread, into the output buffer (empty now), where they are
 * dropped; the splice then finds them cached, and the kernel's readahead what follows. Returns
 * 0 or -errno. */
static int warm(struct corio_http_conn *c, int fd, int64_t off, int64_t len, int64_t deadline)
{
    size_t want = (uint64_t)len < c->wcap ? (size_t)len : c->wcap;
    int64_t bound = corio__http_earlier(deadline, corio_now() + c->s->o.body_timeout);
    ssize_t n = corio_read(fd, c->wbuf, want, off, bound);
    return n > 0 ? 0 : n == 0 ? -EIO : (int)n;
}

/* Sends @len bytes of @fd from @off by reading them into the output buffer's free space and
 * sending it, chunk by chunk. Each read is bounded by body_timeout, as a request body's reads
 * are, and by @deadline. Returns 0 or -errno. */
static int read_range(struct corio_http_conn *c, int fd, int64_t off, int64_t len, int64_t deadline)
{
    while (len > 0) {
        if (c->wcap - c->wlen < 4096) {
            int err = corio__http_flush(c, deadline);
            if (err)
                return err;
        }
        size_t room = c->wcap - c->wlen;
        size_t want = (uint64_t)len < room ? (size_t)len : room;
        int64_t bound = corio__http_earlier(deadline, corio_now() + c->s->o.body_timeout);
        ssize_t n = corio_read(fd, c->wbuf + c->wlen, want, off, bound);
        if (n <= 0)
            return n == 0 ? -EIO : (int)n; /* the file shrank or failed under us */
        c->wlen += (size_t)n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Sends @len bytes of @fd from @off through a pipe. Where no pipe can be had (a process out of
 * descriptors: a pipe takes two) or the file cannot be spliced (splice(2) refuses some kinds of
 * file with -EINVAL), the bytes left go through the output buffer instead: the pipe is empty at
 * those points. Returns 0 or -errno. */
static int splice_range(struct corio_http_conn *c, int fd, int64_t off, int64_t len,
                        int64_t deadline)
{
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0)
        return -errno;
    int p[2];
    if (pipe_take(c->s, p) != 0)
        return read_range(c, fd, off, len, deadline);
    int err = 0;
    while (len > 0) {
        loff_t pos = off;
        ssize_t n = splice(fd, &pos, p[1], NULL, len < PIPE_BYTES ? (size_t)len : PIPE_BYTES,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EAGAIN) {
            err = warm(c, fd, off, len, deadline);
            if (err)
                break;
            continue;
        }
        if (n < 0 && errno == EINVAL) {
            err = read_range(c, fd, off, len, deadline);
            break;
        }
        if (n <= 0) {
            /* The file shrank under us (0), or failed. */
            err = n == 0 ? -EIO : -errno;
            break;
        }
        off += n;
        len -= n;
        err = pipe_to_socket(c, fl, p[0], (size_t)n, len > 0, deadline);
        if (err)
            break;
    }
    /* After a failed send the pipe may hold bytes: it is closed, not kept. */
    pipe_give(c->s, p, err == 0);
    return err;
}

int corio__http_send_range(struct corio_http_conn *c, int fd, int64_t off, int64_t len,
                           int64_t deadline)
{
    if (c->broken)
        return -EPIPE;
    int err;
    /* What the output holds (the head, earlier responses) goes first; a short range is copied
     * after it, to go out in the same send, as a buffered write would be. */
    if ((c->fd & CORIO_FD_FIXED) || len <= (int64_t)(c->wcap - c->wlen))
        err = read_range(c, fd, off, len, deadline);
    else if ((err = corio__http_flush(c, deadline)) == 0)
        err = splice_range(c, fd, off, len, deadline);
    if (err)
        c->broken = true;
    return err;
}

int corio_http_send_file(struct corio_http_conn *c, int fd, int64_t off, int64_t len,
                         int64_t deadline)
{
    if (c->head_only && c->resp == CORIO__HTTP_RESP_DONE)
        return 0;
    if (c->resp != CORIO__HTTP_RESP_STARTED || fd < 0 || off < 0 || len < 0)
        return -EINVAL;
    if (c->framing == CORIO__HTTP_FRAME_LENGTH && len > c->resp_left)
        return -EINVAL;
    if (len == 0)
        return 0;
    int err = 0;
    if (c->framing == CORIO__HTTP_FRAME_CHUNKED) {
        char line[20]; /* 16 hex digits and CRLF */
        size_t n = sizeof(line);
        line[--n] = '\n';
        line[--n] = '\r';
        for (uint64_t v = (uint64_t)len; v; v >>= 4)
            line[--n] = "0123456789abcdef"[v & 15];
        err = corio__http_append(c, line + n, sizeof(line) - n, deadline);
    }
    if (!err)
        err = corio__http_send_range(c, fd, off, len, deadline);
    if (!err && c->framing == CORIO__HTTP_FRAME_CHUNKED)
        err = corio__http_append(c, "\r\n", 2, deadline);
    if (err)
        return err;
    if (c->framing == CORIO__HTTP_FRAME_LENGTH) {
        c->resp_left -= len;
        if (c->resp_left == 0)
            c->resp = CORIO__HTTP_RESP_DONE;
    }
    return 0;
}
