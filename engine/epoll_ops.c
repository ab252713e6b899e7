/* How the epoll backend carries out each op: tried once without blocking (MSG_DONTWAIT for
 * sockets, RWF_NOWAIT for files and pipes, non-blocking accept and connect), then, if it would
 * block, waited for with epoll (sockets, pipes) or run on a worker (regular files, open, stat,
 * fsync). The results and their errors are the ones the same op gives on io_uring. */
#include "epoll_private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* What kind of file @f is, from fstat (and the socket type), once. */
static uint8_t classify(struct pfd *f)
{
    if (f->kind != K_UNKNOWN)
        return f->kind;
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return K_OTHER;
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
        f->kind = K_FILE;
    } else if (S_ISFIFO(st.st_mode)) {
        f->kind = K_PIPE;
    } else if (S_ISSOCK(st.st_mode)) {
        int type = 0;
        socklen_t len = sizeof(type);
        getsockopt(f->fd, SOL_SOCKET, SO_TYPE, &type, &len);
        f->kind = type == SOCK_STREAM ? K_STREAM : K_OTHER;
    } else {
        f->kind = K_OTHER;
    }
    return f->kind;
}

/* A transfer of @n bytes of @want that came back short on a stream or a pipe drained it: the
 * next op on it waits for an edge instead of trying. (A datagram socket may hold more messages
 * that raise no new edge, so only streams and pipes.) */
static void note_short(struct pfd *f, int dir, ssize_t n, size_t want)
{
    /* n == 0 is the end of the stream, which stays readable: not drained; nor is a direction
     * that hung up, which raises no further edge. */
    if (f && n > 0 && (size_t)n < want && !f->hup[dir]) {
        uint8_t k = classify(f);
        if (k == K_STREAM || k == K_PIPE)
            f->ready[dir] = false;
    }
}

/* Whether a fresh op should wait without trying: others wait already (FIFO), or the fd was
 * drained and no edge came since. */
static bool wait_first(const struct prec *r, const struct pfd *f, int dir)
{
    return r->state == R_QUEUED && f && f->registered &&
           (!corio__list_empty(&f->waiters[dir]) || !f->ready[dir]);
}

/* Ends an attempt that got -errno @err: EAGAIN means wait (in @dir) or, for a regular file, a
 * worker; anything else is the result. */
static int would_block(struct prec *r, struct pfd *f, int dir, int err, int64_t *res)
{
    if (err == EAGAIN || err == EWOULDBLOCK) {
        if (f && classify(f) == K_FILE)
            return TRY_POOL;
        if (f && !f->hup[dir])
            f->ready[dir] = false;
        r->dir = (uint8_t)dir;
        return TRY_WAIT;
    }
    *res = -err;
    return TRY_DONE;
}

/* read, write, readv, writev and their fixed-buffer forms (plain buffers here). */
static int try_rw(struct corio__poll *p, struct prec *r, int64_t *res)
{
    const struct corio__op *op = &r->op;
    bool out = op->opcode == CORIO__OP_WRITE || op->opcode == CORIO__OP_WRITEV ||
               op->opcode == CORIO__OP_WRITE_FIXED;
    int dir = out ? DIR_OUT : DIR_IN;
    struct pfd *f = corio__pfd(p, op->fd);
    if (wait_first(r, f, dir)) {
        r->dir = (uint8_t)dir;
        return TRY_WAIT;
    }
    bool vec = op->opcode == CORIO__OP_READV || op->opcode == CORIO__OP_WRITEV;
    struct iovec one = {(void *)op->addr, op->len};
    const struct iovec *iov = vec ? op->addr : &one;
    if (vec && op->len > IOV_MAX) {
        /* As the kernel says of a vector it cannot take; the sum below must not walk past the
         * caller's array either. */
        *res = -EINVAL;
        return TRY_DONE;
    }
    int cnt = vec ? (int)op->len : 1;
    size_t want = 0;
    for (int i = 0; i < cnt; i++)
        want += iov[i].iov_len;
    off_t off = (off_t)op->off;
    ssize_t n = out ? pwritev2(op->fd, iov, cnt, off, RWF_NOWAIT)
                    : preadv2(op->fd, iov, cnt, off, RWF_NOWAIT);
    if (n < 0 && errno == ESPIPE && off != -1) {
        /* A stream (pipe, socket) has no position: io_uring ignores the offset, so here too. */
        r->op.off = (uint64_t)-1;
        n = out ? pwritev2(op->fd, iov, cnt, -1, RWF_NOWAIT)
                : preadv2(op->fd, iov, cnt, -1, RWF_NOWAIT);
    }
    if (n >= 0) {
        note_short(f, dir, n, want);
        *res = n;
        return TRY_DONE;
    }
    /* RWF_NOWAIT refused (a file type that lacks it, an older kernel): a worker does it. */
    if (errno == EOPNOTSUPP)
        return TRY_POOL;
    return would_block(r, f, dir, errno, res);
}

/* send, recv, sendmsg, recvmsg, and send_zc (a plain send: there is no zero copy here). A recv
 * with MSG_WAITALL collects in the record until it has all it asked for. */
static int try_sock(struct corio__poll *p, struct prec *r, int64_t *res)
{
    struct corio__op *op = &r->op;
    bool out = op->opcode == CORIO__OP_SEND || op->opcode == CORIO__OP_SENDMSG ||
               op->opcode == CORIO__OP_SEND_ZC;
    int dir = out ? DIR_OUT : DIR_IN;
    struct pfd *f = corio__pfd(p, op->fd);
    if (wait_first(r, f, dir)) {
        r->dir = (uint8_t)dir;
        return TRY_WAIT;
    }
    int flags = (int)op->op_flags | MSG_DONTWAIT;
    bool msg = op->opcode == CORIO__OP_SENDMSG || op->opcode == CORIO__OP_RECVMSG;
    ssize_t n;
    if (msg)
        n = out ? sendmsg(op->fd, op->addr, flags) : recvmsg(op->fd, (void *)op->addr, flags);
    else
        n = out ? send(op->fd, op->addr, op->len, flags)
                : recv(op->fd, (void *)op->addr, op->len, flags);
    if (n < 0) {
        /* A non-blocking call asked for (MSG_DONTWAIT) says so instead of waiting, as on the
         * ring. */
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && (op->op_flags & MSG_DONTWAIT)) {
            *res = -EAGAIN;
            return TRY_DONE;
        }
        return would_block(r, f, dir, errno, res);
    }
    if (!msg && !out && (op->op_flags & MSG_WAITALL) && n > 0 && (size_t)n < op->len) {
        /* Waiting for the rest: what came so far is kept in the record. */
        op->addr = (char *)op->addr + n;
        op->len -= (uint32_t)n;
        r->done += n;
        if (f)
            f->ready[DIR_IN] = false;
        r->dir = DIR_IN;
        return TRY_WAIT;
    }
    if (!msg)
        note_short(f, dir, n, op->len);
    *res = r->done + n;
    return TRY_DONE;
}

/* A listener's accept must not block: a listening socket is made non-blocking, once (the only
 * file status change corio makes for good, and one no accept of corio's can see). Returns 0, or
 * -EINVAL for a socket that does not listen, as accept says, without touching it. */
static int listener(struct pfd *f, int fd)
{
    if (f && f->listener)
        return 0;
    int on = 0;
    socklen_t len = sizeof(on);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0)
        return -errno;
    if (!on)
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    if (f)
        f->listener = true;
    return 0;
}

static int try_accept(struct corio__poll *p, struct prec *r, int64_t *res)
{
    const struct corio__op *op = &r->op;
    struct pfd *f = corio__pfd(p, op->fd);
    if (wait_first(r, f, DIR_IN)) {
        r->dir = DIR_IN;
        return TRY_WAIT;
    }
    if ((*res = listener(f, op->fd)) != 0)
        return TRY_DONE;
    int fd = accept4(op->fd, (void *)op->addr, (void *)op->addr2, (int)op->op_flags);
    if (fd < 0)
        return would_block(r, f, DIR_IN, errno, res);
    corio__poll_adopt(p, fd); /* a new file under a number that may be known */
    *res = fd;
    return TRY_DONE;
}

/* Every connection queued on the listener, one CQE each, until it would block; single-shot
 * (aux bit 1) takes one. The fixed file table does not exist here: the fds are plain. */
static int try_accept_multi(struct corio__poll *p, struct prec *r, int64_t *res)
{
    const struct corio__op *op = &r->op;
    struct pfd *f = corio__pfd(p, op->fd);
    if ((*res = listener(f, op->fd)) != 0)
        return TRY_DONE;
    for (;;) {
        int fd = accept4(op->fd, NULL, NULL, (int)op->op_flags);
        if (fd < 0) {
            int t = would_block(r, f, DIR_IN, errno, res);
            return t == TRY_WAIT ? TRY_KEEP : t;
        }
        corio__poll_adopt(p, fd);
        if (op->aux & 2) {
            *res = fd;
            return TRY_DONE;
        }
        corio__poll_post(p, r->ud, fd, CORIO__CQE_F_MORE);
    }
}

/* What arrives, one provided buffer per CQE, until the socket would block or the group runs dry
 * (-ENOBUFS, final, as on io_uring: the receiver arms it again once buffers are back). */
static int try_recv_multi(struct corio__poll *p, struct prec *r, int64_t *res)
{
    const struct corio__op *op = &r->op;
    struct pfd *f = corio__pfd(p, op->fd);
    struct corio__poll_buf *b = corio__poll_buf_find(p, (uint16_t)op->aux);
    for (;;) {
        if (!b || b->head == b->tail) {
            *res = -ENOBUFS;
            return TRY_DONE;
        }
        unsigned i = b->head & b->mask;
        ssize_t n = recv(op->fd, b->iov[i].iov_base, b->iov[i].iov_len,
                         (int)op->op_flags | MSG_DONTWAIT);
        if (n < 0) {
            int t = would_block(r, f, DIR_IN, errno, res);
            return t == TRY_WAIT ? TRY_KEEP : t;
        }
        if (n == 0) {
            *res = 0; /* the peer shut down: final, no buffer taken */
            return TRY_DONE;
        }
        b->head++;
        uint32_t flags = CORIO__CQE_F_MORE | CORIO__CQE_F_BUFFER |
                         ((uint32_t)b->bid[i] << CORIO__CQE_BUFFER_SHIFT);
        corio__poll_post(p, r->ud, (int32_t)n, flags);
        if ((size_t)n < b->iov[i].iov_len) {
            note_short(f, DIR_IN, n, b->iov[i].iov_len);
            if (f && !f->ready[DIR_IN])
                return TRY_KEEP;
        }
    }
}

_Static_assert(POLLIN == EPOLLIN && POLLPRI == EPOLLPRI && POLLOUT == EPOLLOUT &&
                   POLLERR == EPOLLERR && POLLHUP == EPOLLHUP && POLLRDHUP == EPOLLRDHUP,
               "a readiness wait's events are poll(2)'s and epoll's alike");

/* A readiness wait: answered at once when poll(2) finds the fd ready, else it waits among the
 * fd's readiness waits for an edge that brings what it waits for. A multishot one posts what
 * poll(2) finds and stays among them (TRY_KEEP), told of every edge, as io_uring's reports the
 * readiness it finds when armed and then each wake-up; on a regular file, which has no wake-ups,
 * it ends with what it found, as io_uring's does. */
static int try_poll(struct corio__poll *p, struct prec *r, int64_t *res)
{
    const struct corio__op *op = &r->op;
    r->dir = DIR_POLL;
    if (op->fd < 0) {
        *res = -EBADF; /* poll(2) would skip it, and nothing could ever wake it */
        return TRY_DONE;
    }
    struct pollfd pfd = {.fd = op->fd, .events = (short)corio__poll_want(op->op_flags)};
    int n;
    while ((n = poll(&pfd, 1, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0 || (pfd.revents & POLLNVAL)) {
        *res = n < 0 ? -errno : -EBADF;
        return TRY_DONE;
    }
    uint32_t mask = (uint32_t)pfd.revents & corio__poll_want(op->op_flags);
    if (!(op->aux & CORIO__POLL_MULTI)) {
        *res = mask;
        return mask ? TRY_DONE : TRY_WAIT;
    }
    struct pfd *f = corio__pfd(p, op->fd);
    if (mask && f && classify(f) == K_FILE) {
        *res = mask;
        return TRY_DONE;
    }
    if (mask)
        corio__poll_post(p, r->ud, (int32_t)mask, CORIO__CQE_F_MORE);
    return TRY_KEEP;
}

void corio__poll_restore_flags(int fd, int flags)
{
    fcntl(fd, F_SETFL, flags);
}

/* connect on a socket made non-blocking for the call (and put back after). In progress: wait
 * until writable and connect again, as io_uring does: that call completes the connection in the
 * socket's state (a later connect then says -EISCONN) and gives its outcome. */
static int try_connect(struct corio__poll *p, struct prec *r, int64_t *res)
{
    const struct corio__op *op = &r->op;
    struct pfd *f = corio__pfd(p, op->fd);
    if (!r->started) {
        int fl = fcntl(op->fd, F_GETFL);
        if (fl >= 0 && !(fl & O_NONBLOCK) && fcntl(op->fd, F_SETFL, fl | O_NONBLOCK) == 0)
            r->restore_flags = fl;
    }
    if (connect(op->fd, op->addr, op->len) == 0 || (r->started && errno == EISCONN)) {
        *res = 0;
        return TRY_DONE;
    }
    if (errno != EINPROGRESS && errno != EAGAIN && errno != EALREADY) {
        *res = -errno;
        return TRY_DONE;
    }
    r->started = true;
    if (f)
        f->ready[DIR_OUT] = false;
    r->dir = DIR_OUT;
    return TRY_WAIT;
}

int corio__poll_try(struct corio__poll *p, struct prec *r, int64_t *res)
{
    const struct corio__op *op = &r->op;
    bool takes_fd = op->opcode != CORIO__OP_NOP && op->opcode != CORIO__OP_SOCKET &&
                    op->opcode != CORIO__OP_TIMEOUT;
    if (takes_fd && op->fd >= 0 && (op->fd & CORIO__FD_FIXED)) {
        *res = -EBADF; /* no fixed file table on this backend */
        return TRY_DONE;
    }
    if (takes_fd && r->state == R_QUEUED)
        corio__poll_check(p, corio__pfd(p, op->fd));
    switch (op->opcode) {
    case CORIO__OP_NOP:
        *res = 0;
        return TRY_DONE;
    case CORIO__OP_READ:
    case CORIO__OP_WRITE:
    case CORIO__OP_READV:
    case CORIO__OP_WRITEV:
    case CORIO__OP_READ_FIXED:
    case CORIO__OP_WRITE_FIXED:
        return try_rw(p, r, res);
    case CORIO__OP_SEND:
    case CORIO__OP_RECV:
    case CORIO__OP_SENDMSG:
    case CORIO__OP_RECVMSG:
    case CORIO__OP_SEND_ZC:
        return try_sock(p, r, res);
    case CORIO__OP_ACCEPT:
        return try_accept(p, r, res);
    case CORIO__OP_ACCEPT_MULTI:
        return try_accept_multi(p, r, res);
    case CORIO__OP_RECV_MULTI:
        return try_recv_multi(p, r, res);
    case CORIO__OP_CONNECT:
        return try_connect(p, r, res);
    case CORIO__OP_POLL:
        return try_poll(p, r, res);
    case CORIO__OP_SOCKET: {
        int fd = socket(op->fd, (int)op->op_flags, (int)op->len);
        *res = fd < 0 ? -errno : fd;
        if (fd >= 0)
            corio__poll_adopt(p, fd);
        return TRY_DONE;
    }
    case CORIO__OP_SHUTDOWN:
        *res = shutdown(op->fd, (int)op->len) == 0 ? 0 : -errno;
        return TRY_DONE;
    case CORIO__OP_CLOSE:
        /* Closing ends what waits on the fd (-ECANCELED) and forgets its registration. */
        corio__poll_forget(p, op->fd, -ECANCELED);
        *res = close(op->fd) == 0 ? 0 : -errno;
        return TRY_DONE;
    default: /* OPENAT, STATX, FSYNC: they may block on the disk */
        return TRY_POOL;
    }
}

/* ---- on a worker ------------------------------------------------------------------------------ */

static ssize_t blocking_rw(const struct corio__op *op)
{
    bool out = op->opcode == CORIO__OP_WRITE || op->opcode == CORIO__OP_WRITEV ||
               op->opcode == CORIO__OP_WRITE_FIXED;
    bool vec = op->opcode == CORIO__OP_READV || op->opcode == CORIO__OP_WRITEV;
    struct iovec one = {(void *)op->addr, op->len};
    const struct iovec *iov = vec ? op->addr : &one;
    int cnt = vec ? (int)op->len : 1;
    return out ? pwritev2(op->fd, iov, cnt, (off_t)op->off, 0)
               : preadv2(op->fd, iov, cnt, (off_t)op->off, 0);
}

void corio__poll_blocking(struct corio__pool_job *job)
{
    struct prec *r = container_of(job, struct prec, job);
    const struct corio__op *op = &r->op;
    long n;
    switch (op->opcode) {
    case CORIO__OP_OPENAT:
        n = openat(op->fd, op->addr, (int)op->op_flags, (mode_t)op->aux);
        break;
    case CORIO__OP_STATX:
        n = statx(op->fd, op->addr, (int)op->op_flags, op->aux, (struct statx *)op->addr2);
        break;
    case CORIO__OP_FSYNC:
        n = op->op_flags ? fdatasync(op->fd) : fsync(op->fd);
        break;
    default:
        n = blocking_rw(op);
        break;
    }
    job->res = n < 0 ? -errno : n;
}
