/* Socket operations: socket, accept, connect, send and recv (and their msg forms), shutdown,
 * zero-copy send, and the loops over short transfers. */
#include "future.h"

#include "loop.h"

#include <errno.h>
#include <sys/socket.h>

/* ---- socket: IORING_OP_SOCKET (5.19) or socket(2) ------------------------------------------- */

static struct corio__op socket_op(int domain, int type, int protocol)
{
    return (struct corio__op){.opcode = CORIO__OP_SOCKET,
                              .fd = domain,
                              .op_flags = (uint32_t)(type | SOCK_CLOEXEC),
                              .len = (uint32_t)protocol};
}



static int socket_syscall(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

int corio_socket(int domain, int type, int protocol)
{
    if (!corio__here_has(CORIO_FEAT_SOCKET))
        return corio__tls_task ? socket_syscall(domain, type, protocol) : -EPERM;
    struct corio__op op = socket_op(domain, type, protocol);
    return (int)corio__future_run(&op, CORIO_FOREVER, CORIO__FK_OP);
}

int corio_socket_start(struct corio_future *pub, int domain, int type, int protocol)
{
    struct corio__future *f = corio__fut(pub);
    if (!corio__here_has(CORIO_FEAT_SOCKET) && corio__tls_task) {
        f->p.owner = corio__self();
        f->flags = 0;
        f->kind = CORIO__FK_OP;
        f->state = CORIO__F_DONE;
        f->res = socket_syscall(domain, type, protocol);
        return f->res < 0 ? (int)f->res : 0;
    }
    struct corio__op op = socket_op(domain, type, protocol);
    return corio__future_start(f, &op, CORIO_FOREVER, CORIO__FK_OP);
}

/* ---- accept, connect ------------------------------------------------------------------------ */

static struct corio__op accept_op(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    return (struct corio__op){.opcode = CORIO__OP_ACCEPT,
                              .fd = fd,
                              .addr = addr,
                              .addr2 = addrlen,
                              .op_flags = (uint32_t)(flags | SOCK_CLOEXEC)};
}

/* Whether the calling coroutine's loop drains: it accepts nothing more (drain.c). */
static bool draining(void)
{
    struct corio__task *t = corio__tls_task;
    return t && unlikely(corio__loop_of(t)->coros.draining);
}

int corio_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags, int64_t deadline)
{
    if (draining())
        return -ESHUTDOWN;
    struct corio__op op = accept_op(fd, addr, addrlen, flags);
    return (int)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_accept_start(struct corio_future *f, int fd, struct sockaddr *addr, socklen_t *addrlen,
                       int flags, int64_t deadline)
{
    struct corio__op op = accept_op(fd, addr, addrlen, flags);
    int err = corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
    /* Started, so that the future is complete as the start form promises; ended at once. */
    if (err == 0 && draining())
        corio__future_shutdown_accept(&corio__fut(f)->p);
    return err;
}

static struct corio__op connect_op(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    return (struct corio__op){
        .opcode = CORIO__OP_CONNECT, .fd = fd, .addr = addr, .len = (uint32_t)addrlen};
}

int corio_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t deadline)
{
    struct corio__op op = connect_op(fd, addr, addrlen);
    return (int)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_connect_start(struct corio_future *f, int fd, const struct sockaddr *addr,
                        socklen_t addrlen, int64_t deadline)
{
    struct corio__op op = connect_op(fd, addr, addrlen);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

/* ---- send, recv, sendmsg, recvmsg, shutdown ------------------------------------------------- */

static struct corio__op xfer_op(uint8_t opcode, int fd, const void *buf, size_t len, int flags)
{
    /* MSG_NOSIGNAL on every send: a vanished peer is -EPIPE, never a SIGPIPE that kills. */
    if (opcode == CORIO__OP_SEND || opcode == CORIO__OP_SENDMSG)
        flags |= MSG_NOSIGNAL;
    return (struct corio__op){.opcode = opcode,
                              .fd = fd,
                              .addr = buf,
                              .len = corio__clamp_len(len),
                              .op_flags = (uint32_t)flags};
}

/* Large sends go zero-copy when the loop asks for it (corio_loop_opts.zc_threshold). */
static inline void maybe_zc(struct corio__op *op, size_t len)
{
    struct corio__task *t = corio__tls_task;
    if (!t)
        return;
    struct corio_loop *l = corio__loop_of(t);
    if (l->opts.zc_threshold && len >= l->opts.zc_threshold && corio__has(l, CORIO_FEAT_SEND_ZC)) {
        op->opcode = CORIO__OP_SEND_ZC;
        op->aux = 1; /* chosen by threshold: falls back to a plain send (future.c retry) */
    }
}

ssize_t corio_send(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
    struct corio__op op = xfer_op(CORIO__OP_SEND, fd, buf, len, flags);
    maybe_zc(&op, len);
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_send_start(struct corio_future *f, int fd, const void *buf, size_t len, int flags,
                     int64_t deadline)
{
    struct corio__op op = xfer_op(CORIO__OP_SEND, fd, buf, len, flags);
    maybe_zc(&op, len);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

ssize_t corio_recv(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
    struct corio__op op = xfer_op(CORIO__OP_RECV, fd, buf, len, flags);
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_recv_start(struct corio_future *f, int fd, void *buf, size_t len, int flags,
                     int64_t deadline)
{
    struct corio__op op = xfer_op(CORIO__OP_RECV, fd, buf, len, flags);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

ssize_t corio_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline)
{
    struct corio__op op = xfer_op(CORIO__OP_SENDMSG, fd, msg, 0, flags);
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_sendmsg_start(struct corio_future *f, int fd, const struct msghdr *msg, int flags,
                        int64_t deadline)
{
    struct corio__op op = xfer_op(CORIO__OP_SENDMSG, fd, msg, 0, flags);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

ssize_t corio_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline)
{
    struct corio__op op = xfer_op(CORIO__OP_RECVMSG, fd, msg, 0, flags);
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_recvmsg_start(struct corio_future *f, int fd, struct msghdr *msg, int flags,
                        int64_t deadline)
{
    struct corio__op op = xfer_op(CORIO__OP_RECVMSG, fd, msg, 0, flags);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

int corio_shutdown(int fd, int how)
{
    const struct corio__op op = {.opcode = CORIO__OP_SHUTDOWN, .fd = fd, .len = (uint32_t)how};
    return (int)corio__future_run(&op, CORIO_FOREVER, CORIO__FK_OP);
}

int corio_shutdown_start(struct corio_future *f, int fd, int how)
{
    const struct corio__op op = {.opcode = CORIO__OP_SHUTDOWN, .fd = fd, .len = (uint32_t)how};
    return corio__future_start(corio__fut(f), &op, CORIO_FOREVER, CORIO__FK_OP);
}

/* Loops send or recv over [buf, buf + len) until done, the peer's shutdown (recv) or an error. */
static ssize_t xfer_all(uint8_t opcode, int fd, const void *buf, size_t len, size_t *done,
                        int64_t deadline)
{
    size_t got = 0;
    ssize_t r = 0;
    while (got < len) {
        struct corio__op op = xfer_op(opcode, fd, (const char *)buf + got, len - got, 0);
        if (opcode == CORIO__OP_SEND)
            maybe_zc(&op, len - got);
        r = (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (done)
        *done = got;
    if (r < 0)
        return r;
    if (r == 0 && got < len && opcode == CORIO__OP_SEND)
        return -EIO;
    return (ssize_t)got;
}

ssize_t corio_send_all(int fd, const void *buf, size_t len, size_t *done, int64_t deadline)
{
    return xfer_all(CORIO__OP_SEND, fd, buf, len, done, deadline);
}

ssize_t corio_recv_all(int fd, void *buf, size_t len, size_t *done, int64_t deadline)
{
    return xfer_all(CORIO__OP_RECV, fd, buf, len, done, deadline);
}

/* ---- zero-copy send ------------------------------------------------------------------------- */

ssize_t corio_send_zc(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
    if (corio__tls_task && !corio__here_has(CORIO_FEAT_SEND_ZC))
        return -EOPNOTSUPP;
    /* The future stays pending through both CQEs: the result (with IORING_CQE_F_MORE) and the
     * notification that the kernel no longer reads @buf (future.c). */
    struct corio__op op = xfer_op(CORIO__OP_SEND, fd, buf, len, flags);
    op.opcode = CORIO__OP_SEND_ZC;
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

