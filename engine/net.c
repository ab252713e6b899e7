/* Socket operations and the TCP/Unix listen and dial helpers. */
#include "future.h"

#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- socket: IORING_OP_SOCKET (5.19) or socket(2) ------------------------------------------- */

static struct corio__op socket_op(int domain, int type, int protocol)
{
    return (struct corio__op){.opcode = CORIO__OP_SOCKET,
                              .fd = domain,
                              .op_flags = (uint32_t)(type | SOCK_CLOEXEC),
                              .len = (uint32_t)protocol};
}

/* True if the calling coroutine's loop has feature @f (false outside coroutines). */
static bool has_feature(enum corio_feature f)
{
    struct corio__task *t = corio__tls_task;
    return t && corio__has(corio__loop_of(t), f);
}

static int socket_syscall(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

int corio_socket(int domain, int type, int protocol)
{
    if (!has_feature(CORIO_FEAT_SOCKET))
        return corio__tls_task ? socket_syscall(domain, type, protocol) : -EPERM;
    struct corio__op op = socket_op(domain, type, protocol);
    return (int)corio__future_run(&op, CORIO_FOREVER, CORIO__FK_OP);
}

int corio_socket_start(struct corio_future *pub, int domain, int type, int protocol)
{
    struct corio__future *f = corio__fut(pub);
    if (!has_feature(CORIO_FEAT_SOCKET) && corio__tls_task) {
        f->p.owner = corio__self();
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

int corio_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags, int64_t deadline)
{
    struct corio__op op = accept_op(fd, addr, addrlen, flags);
    return (int)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_accept_start(struct corio_future *f, int fd, struct sockaddr *addr, socklen_t *addrlen,
                       int flags, int64_t deadline)
{
    struct corio__op op = accept_op(fd, addr, addrlen, flags);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
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

/* ---- listen and dial helpers ---------------------------------------------------------------- */

/* Parses a numeric IPv4 or IPv6 address. Returns the sockaddr length, or -EINVAL. */
static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (!host)
        host = "0.0.0.0";
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        return sizeof(*in4);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        return sizeof(*in6);
    }
    return -EINVAL;
}

static int bind_listen(int fd, const struct sockaddr *sa, socklen_t len, int backlog)
{
    if (bind(fd, sa, len) != 0 || listen(fd, backlog) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int corio_listen_tcp(const char *host, uint16_t port, int backlog, unsigned flags)
{
    struct sockaddr_storage ss;
    int len = parse_addr(host, port, &ss);
    if (len < 0)
        return len;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((flags & CORIO_LISTEN_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (ss.ss_family == AF_INET6) {
        int v6only = (flags & CORIO_LISTEN_V6ONLY) ? 1 : 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    /* Accepted sockets inherit TCP_NODELAY from the listener (Linux copies the listener's TCP
     * state into each child), which matters for direct descriptors that cannot be setsockopt'd:
     * a server answering in pieces must not wait on Nagle for the peer's delayed ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return bind_listen(fd, (struct sockaddr *)&ss, (socklen_t)len, backlog);
}

/* Creates a socket and connects it; closes it on failure. Returns the fd or -errno. */
static int dial(const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    int fd = corio_socket(sa->sa_family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int err = corio_connect(fd, sa, len, deadline);
    if (err < 0) {
        corio_close(fd);
        return err;
    }
    return fd;
}

int corio_dial_tcp(const char *host, uint16_t port, int64_t deadline)
{
    struct sockaddr_storage ss;
    if (!host)
        return -EINVAL;
    int len = parse_addr(host, port, &ss);
    if (len < 0)
        return len;
    int fd = dial((struct sockaddr *)&ss, (socklen_t)len, deadline);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

static int unix_addr(const char *path, struct sockaddr_un *un)
{
    memset(un, 0, sizeof(*un));
    un->sun_family = AF_UNIX;
    size_t n = path ? strlen(path) : 0;
    if (n == 0)
        return -EINVAL;
    if (n >= sizeof(un->sun_path))
        return -ENAMETOOLONG;
    memcpy(un->sun_path, path, n);
    return (int)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

/* A socket file is stale when nothing listens behind it any more: a connect to it is refused. A
 * live listener accepts the probe (it then sees a connection that closes at once) or, with a full
 * backlog, gives -EAGAIN; either way its file must stay. */
static bool unix_socket_stale(const struct sockaddr_un *un, socklen_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    bool stale = connect(fd, (const struct sockaddr *)un, len) != 0 && errno == ECONNREFUSED;
    close(fd);
    return stale;
}

int corio_listen_unix(const char *path, int backlog)
{
    struct sockaddr_un un;
    int len = unix_addr(path, &un);
    if (len < 0)
        return len;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A socket file left by an earlier run would make bind fail with EADDRINUSE. Only a stale
     * socket is removed: a live listener's file, or any other file at @path, is an error the
     * caller must see. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && unix_socket_stale(&un, (socklen_t)len))
        unlink(path);
    return bind_listen(fd, (struct sockaddr *)&un, (socklen_t)len, backlog);
}

int corio_dial_unix(const char *path, int64_t deadline)
{
    struct sockaddr_un un;
    int len = unix_addr(path, &un);
    if (len < 0)
        return len;
    return dial((struct sockaddr *)&un, (socklen_t)len, deadline);
}

int corio_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

/* ---- zero-copy send ------------------------------------------------------------------------- */

ssize_t corio_send_zc(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
    if (corio__tls_task && !has_feature(CORIO_FEAT_SEND_ZC))
        return -EOPNOTSUPP;
    /* The future stays pending through both CQEs: the result (with IORING_CQE_F_MORE) and the
     * notification that the kernel no longer reads @buf (future.c). */
    struct corio__op op = xfer_op(CORIO__OP_SEND, fd, buf, len, flags);
    op.opcode = CORIO__OP_SEND_ZC;
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

/* ---- multishot accept ----------------------------------------------------------------------- */

/* Above this many queued connections the multishot is cancelled; it is armed again once the
 * queue is taken down. Connections wait in the listen backlog meanwhile. */
#define ACCEPT_QUEUE_SOFT_MAX 1024

struct corio__acceptor {
    struct corio__pending p;   /* its CQEs' record, linked to its owner while armed or closing */
    struct corio__task *waiter; /* the owner while parked in corio_acceptor_next */
    struct corio_loop *loop;   /* its loop */
    int *q;                    /* queued fds, a ring of qcap entries */
    uint32_t qhead;            /* index of the oldest */
    uint32_t qlen;             /* fds queued */
    uint32_t qcap;             /* capacity of q */
    uint32_t closing;          /* queued direct descriptors whose close CQE is still to come */
    int fd;                    /* the listener */
    int err;                   /* an error to report once (-EMFILE ...) */
    bool armed;                /* the multishot accept is in the kernel */
    bool fixed;                /* accept into the fixed file table */
    bool cancelling;           /* we asked the kernel to stop it */
};
_Static_assert(sizeof(struct corio__acceptor) <= sizeof(struct corio_acceptor), "grow acceptor");

static int acc_push(struct corio__acceptor *a, int fd)
{
    if (a->qlen == a->qcap) {
        uint32_t cap = a->qcap ? a->qcap * 2 : 64;
        int *q = malloc(cap * sizeof(*q));
        if (!q)
            return -ENOMEM;
        for (uint32_t i = 0; i < a->qlen; i++)
            q[i] = a->q[(a->qhead + i) % a->qcap];
        free(a->q);
        a->q = q;
        a->qhead = 0;
        a->qcap = cap;
    }
    a->q[(a->qhead + a->qlen) % a->qcap] = fd;
    a->qlen++;
    return 0;
}

/* Closes an fd nobody took. A plain one is closed at once; a direct descriptor needs an op. Once
 * the multishot is over (@tracked), that close's CQE comes back to the acceptor, which stays
 * linked to its owner until it has: otherwise the owner's end could be the loop's end, with the
 * close never submitted and the peer never told. */
static void acc_close(struct corio__acceptor *a, int fd, bool tracked)
{
    if (fd & CORIO_FD_FIXED) {
        const struct corio__op op = {.opcode = CORIO__OP_CLOSE, .fd = fd};
        if (tracked) {
            corio__op_submit(&a->loop->io, &op, &a->p.c, NULL);
            a->closing++;
        } else {
            corio__op_submit_untracked(&a->loop->io, &op, NULL);
        }
        corio__fixed_release(a->loop); /* free once the close is processed, before later ops */
    } else {
        close(fd);
    }
}

/* Closes what is queued. Only once the multishot is over: its closes are tracked (acc_close). */
static void acc_drop_queue(struct corio__acceptor *a)
{
    CORIO__ASSERT(!a->armed);
    while (a->qlen) {
        acc_close(a, a->q[a->qhead], true);
        a->qhead = (a->qhead + 1) % a->qcap;
        a->qlen--;
    }
    free(a->q);
    a->q = NULL;
    a->qcap = 0;
}

static bool owner_gone(const struct corio__acceptor *a)
{
    return a->p.owner->t.state == CORIO__T_ZOMBIE;
}

/* The close of a queued direct descriptor: the multishot is over, and it is not armed again
 * before these are done, so every CQE now is one of them. */
static void acc_closed(struct corio__acceptor *a)
{
    if (--a->closing > 0)
        return;
    if (a->waiter)
        corio__unpark(a->waiter, 0);
    if (owner_gone(a))
        corio__pending_done(&a->p);
}

/* A connection the multishot accepted: queue it, and pause the multishot past the soft limit. */
static void acc_accepted(struct corio__acceptor *a, int res)
{
    int fd = a->fixed ? (res | CORIO_FD_FIXED) : res;
    if (a->fixed)
        a->loop->fixed_used++;
    if (acc_push(a, fd) != 0)
        acc_close(a, fd, false); /* no memory to queue it: the peer sees it closed */
    if (a->qlen >= ACCEPT_QUEUE_SOFT_MAX && a->armed && !a->cancelling) {
        a->cancelling = true;
        corio__op_cancel(&a->loop->io, &a->p.c);
    }
}

static void acc_complete(struct corio__completion *c, const struct corio__cqe *cqe, bool link)
{
    (void)link;
    struct corio__acceptor *a = container_of(c, struct corio__acceptor, p.c);
    if (a->closing && !a->armed) {
        acc_closed(a);
        return;
    }
    if (!(cqe->flags & CORIO__CQE_F_MORE))
        a->armed = false;
    if (cqe->res >= 0)
        acc_accepted(a, cqe->res);
    else if (!(cqe->res == -ECANCELED && a->cancelling))
        a->err = cqe->res;
    if (!a->armed)
        a->cancelling = false;
    if (a->waiter)
        corio__unpark(a->waiter, 0);
    if (!a->armed && owner_gone(a)) {
        acc_drop_queue(a);
        if (!a->closing)
            corio__pending_done(&a->p);
    }
}

static void acc_cancel(struct corio__pending *p)
{
    struct corio__acceptor *a = container_of(p, struct corio__acceptor, p);
    if (a->armed) {
        if (!a->cancelling) {
            a->cancelling = true;
            corio__op_cancel(&a->loop->io, &a->p.c);
        }
        return;
    }
    acc_drop_queue(a);
    if (!a->closing)
        corio__pending_done(&a->p);
}

static void acc_abort(struct corio__task *t, int why)
{
    struct corio__acceptor *a = t->wait_obj;
    a->waiter = NULL;
    corio__unpark(t, why);
}

int corio_acceptor_init(struct corio_acceptor *pub, int fd, unsigned flags)
{
    struct corio__acceptor *a = (struct corio__acceptor *)(void *)pub;
    memset(a, 0, sizeof(*a));
    struct corio_coro *co = corio__self();
    if (!co)
        return -EPERM;
    if (!has_feature(CORIO_FEAT_ACCEPT_MULTISHOT))
        return -EOPNOTSUPP;
    if ((flags & CORIO_ACCEPT_FIXED) && !co->loop->opts.fixed_files)
        return -EINVAL;
    a->p.c.complete = acc_complete;
    a->p.cancel = acc_cancel;
    a->p.owner = co;
    corio__list_init(&a->p.link);
    a->loop = co->loop;
    a->fd = fd;
    a->fixed = flags & CORIO_ACCEPT_FIXED;
    return 0;
}

/* Arms the multishot accept. Returns 0, or -ENFILE when the fixed file table is full. */
static int acc_arm(struct corio__acceptor *a)
{
    struct corio_loop *l = a->loop;
    if (a->fixed && l->fixed_used >= l->opts.fixed_files) {
        /* The kernel accepts before it takes a slot, and resets the connection when the table is
         * full: never arm without a free slot. Like -EMFILE for plain fds, the caller hears
         * -ENFILE and backs off; corio_close frees slots. */
        return -ENFILE;
    }
    /* Into the fixed table, one at a time (a multishot could accept more connections than there
     * are free slots); plain fds, multishot. Direct descriptors have no close-on-exec flag to
     * set: the kernel refuses it. */
    const struct corio__op op = {.opcode = CORIO__OP_ACCEPT_MULTI,
                                 .fd = a->fd,
                                 .op_flags = a->fixed ? 0 : SOCK_CLOEXEC,
                                 .aux = a->fixed ? 3 : 0};
    corio__op_submit(&l->io, &op, &a->p.c, NULL);
    a->armed = true;
    if (corio__list_empty(&a->p.link))
        corio__pending_add(&a->p);
    return 0;
}

int corio_acceptor_next(struct corio_acceptor *pub, int64_t deadline)
{
    struct corio__acceptor *a = (struct corio__acceptor *)(void *)pub;
    struct corio__task *t = corio__tls_task;
    if (!t || corio__coro_of(t) != a->p.owner)
        return -EPERM;
    for (;;) {
        if (a->qlen) {
            int fd = a->q[a->qhead];
            a->qhead = (a->qhead + 1) % a->qcap;
            a->qlen--;
            return fd;
        }
        if (a->err) {
            int err = a->err;
            a->err = 0;
            return err;
        }
        int err = corio__wait_check(&t, deadline);
        if (err)
            return err;
        if (!a->armed && (err = acc_arm(a)) != 0)
            return err;
        a->waiter = t;
        err = corio__park(t, deadline, acc_abort, a);
        a->waiter = NULL;
        if (err)
            return err;
    }
}

/* Parks the caller until the acceptor's next CQE; not abortable, since the CQEs it waits for
 * land in the caller's frame. */
static void acc_park(struct corio__acceptor *a, struct corio__task *t)
{
    a->waiter = t;
    corio__park(t, CORIO_FOREVER, NULL, NULL);
    a->waiter = NULL;
}

void corio_acceptor_fini(struct corio_acceptor *pub)
{
    struct corio__acceptor *a = (struct corio__acceptor *)(void *)pub;
    if (!a->loop)
        return;
    struct corio__task *t = corio__tls_task;
    CORIO__ASSERT(!a->armed || (t && corio__coro_of(t) == a->p.owner));
    if (a->armed && !a->cancelling) {
        a->cancelling = true;
        corio__op_cancel(&a->loop->io, &a->p.c);
    }
    /* The last CQE must land before this frame can go. */
    while (a->armed)
        acc_park(a, t);
    acc_drop_queue(a);
    /* So must the closes of queued direct descriptors: their CQEs come to this frame too. */
    while (a->closing)
        acc_park(a, t);
    corio__list_remove(&a->p.link);
    a->loop = NULL;
}
