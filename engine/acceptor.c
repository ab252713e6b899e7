/* The multishot acceptor: one accept armed on a listener for every connection that arrives,
 * queued until its owner takes it; into the fixed file table one at a time if asked. */
#include "acceptor.h"

#include "loop.h"
#include "dump.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    bool shut;                 /* its loop drains: it accepts no more (corio__acceptor_shutdown) */
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

/* Asks the kernel to end the multishot accept, once. */
static void acc_disarm(struct corio__acceptor *a)
{
    if (a->armed && !a->cancelling) {
        a->cancelling = true;
        corio__op_cancel(&a->loop->io, &a->p.c);
    }
}

bool corio__acceptor_shutdown(struct corio__pending *p)
{
    if (p->c.complete != acc_complete)
        return false;
    struct corio__acceptor *a = container_of(p, struct corio__acceptor, p);
    a->shut = true;
    acc_disarm(a);
    if (a->waiter)
        corio__unpark(a->waiter, -ESHUTDOWN);
    return true;
}

int corio_acceptor_init(struct corio_acceptor *pub, int fd, unsigned flags)
{
    struct corio__acceptor *a = (struct corio__acceptor *)(void *)pub;
    memset(a, 0, sizeof(*a));
    struct corio_coro *co = corio__self();
    if (!co)
        return -EPERM;
    if (!corio__here_has(CORIO_FEAT_ACCEPT_MULTISHOT))
        return -EOPNOTSUPP;
    if ((flags & CORIO_ACCEPT_FIXED) && !co->loop->opts.fixed_files)
        return -EINVAL;
    a->p.c.complete = acc_complete;
    a->p.cancel = acc_cancel;
    a->p.owner = co;
    corio__list_init(&a->p.link);
    a->loop = co->loop;
    a->fd = fd;
    /* The epoll backend has no fixed file table: its accepted fds are plain ones. */
    a->fixed = (flags & CORIO_ACCEPT_FIXED) && co->loop->io.ring;
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
    corio__pending_stamp(&a->p, op.opcode, op.fd);
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
        if (unlikely(a->shut || a->loop->coros.draining)) {
            /* Connections the kernel accepted before the drain were handed out above. */
            a->shut = true;
            acc_disarm(a);
            return -ESHUTDOWN;
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
    acc_disarm(a);
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

/* ---- what a parked coroutine waits for (corio_loop_dump) --------------------------------------*/

const char *corio__acceptor_wait_name(corio__abort_fn *a)
{
    return a == acc_abort ? "a connection (acceptor)" : NULL;
}
