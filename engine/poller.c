/* Readiness: waiting until an fd is ready for <poll.h> events, for a library that makes its own
 * non-blocking calls and only needs to be told when to try again (a TLS library's "want read",
 * a resolver's socket). corio_poll is one wait, an op like any other; a poller keeps one poll
 * armed for an fd watched for a long time, the shape of the acceptor and the receiver: a
 * multishot handler in its owner's frame, linked in its pending list while the kernel holds it. */
#include "future.h"

#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

/* The events a readiness wait may ask for; errors and hang-ups are reported regardless. */
#define POLL_ASKABLE (POLLIN | POLLOUT | POLLPRI | POLLRDHUP)

/* ---- one wait: IORING_OP_POLL_ADD ------------------------------------------------------------ */

static struct corio__op poll_op(int fd, unsigned events)
{
    return (struct corio__op){
        .opcode = CORIO__OP_POLL, .fd = fd, .op_flags = events & POLL_ASKABLE};
}

int corio_poll(int fd, unsigned events, int64_t deadline)
{
    const struct corio__op op = poll_op(fd, events);
    return (int)corio__future_run(&op, deadline, CORIO__FK_OP);
}

int corio_poll_start(struct corio_future *f, int fd, unsigned events, int64_t deadline)
{
    const struct corio__op op = poll_op(fd, events);
    return corio__future_start(corio__fut(f), &op, deadline, CORIO__FK_OP);
}

/* ---- the poller: one poll kept armed (IORING_POLL_ADD_MULTI) --------------------------------- */

struct corio__poller {
    struct corio__pending p;    /* its CQEs' record, linked to its owner once armed */
    struct corio__task *waiter; /* the owner while parked in corio_poller_next */
    struct corio_loop *loop;    /* its loop; NULL when not prepared, or finished */
    int fd;                     /* the fd it watches */
    uint32_t events;            /* what it asks for (POLL_ASKABLE bits) */
    uint32_t ready;             /* events that came and no call returned yet, or'd */
    int err;                    /* a final error, returned by every later call */
    bool armed;                 /* the poll is in the kernel */
    bool multishot;             /* it stays armed after a CQE (IORING_CQE_F_MORE) */
    bool cancelling;            /* we asked the kernel to stop it */
};
_Static_assert(sizeof(struct corio__poller) <= sizeof(struct corio_poller), "grow corio_poller");

static struct corio__poller *poller_of(struct corio_poller *pub)
{
    return (struct corio__poller *)(void *)pub;
}

/* Asks the kernel to stop the poll, once. */
static void pl_stop(struct corio__poller *pl)
{
    if (!pl->cancelling) {
        pl->cancelling = true;
        corio__op_cancel(&pl->loop->io, &pl->p.c);
    }
}

/* A CQE of the poll: its events are kept until corio_poller_next returns them. A CQE without
 * IORING_CQE_F_MORE ends the poll: a one-shot one's every CQE, a cancel's, or a multishot that
 * the kernel ended by itself (the CQ overflowed); the next call arms it again, and the new poll
 * reports the readiness it finds at once, so nothing that happened meanwhile is lost. */
static void pl_complete(struct corio__completion *c, const struct corio__cqe *cqe, bool link)
{
    (void)link;
    struct corio__poller *pl = container_of(c, struct corio__poller, p.c);
    if (!(cqe->flags & CORIO__CQE_F_MORE))
        pl->armed = false;
    if (cqe->res > 0)
        pl->ready |= (uint32_t)cqe->res;
    else if (cqe->res < 0 && !(cqe->res == -ECANCELED && pl->cancelling))
        pl->err = cqe->res; /* -ECANCELED here: corio_close ended it, and the fd is gone */
    if (!pl->armed)
        pl->cancelling = false;
    if (pl->waiter)
        corio__unpark(pl->waiter, 0);
    if (!pl->armed && pl->p.owner->t.state == CORIO__T_ZOMBIE)
        corio__pending_done(&pl->p); /* its owner returned without corio_poller_fini */
}

/* The owner returned while the poller was linked (runs on the scheduler's stack). */
static void pl_cancel(struct corio__pending *p)
{
    struct corio__poller *pl = container_of(p, struct corio__poller, p);
    if (pl->armed)
        pl_stop(pl);
    else
        corio__pending_done(&pl->p);
}

int corio_poller_init(struct corio_poller *pub, int fd, unsigned events)
{
    struct corio__poller *pl = poller_of(pub);
    memset(pl, 0, sizeof(*pl));
    struct corio_coro *co = corio__self();
    if (!co)
        return -EPERM;
    if (!corio__here_has(CORIO_FEAT_POLL))
        return -EOPNOTSUPP;
    pl->p.c.complete = pl_complete;
    pl->p.cancel = pl_cancel;
    pl->p.owner = co;
    corio__list_init(&pl->p.link);
    pl->loop = co->loop;
    pl->fd = fd;
    pl->events = events & POLL_ASKABLE;
    pl->multishot = corio__here_has(CORIO_FEAT_POLL_MULTISHOT);
    return 0;
}

static void pl_arm(struct corio__poller *pl)
{
    const struct corio__op op = {.opcode = CORIO__OP_POLL,
                                 .fd = pl->fd,
                                 .op_flags = pl->events,
                                 .aux = pl->multishot ? CORIO__POLL_MULTI : 0};
    corio__op_submit(&pl->loop->io, &op, &pl->p.c, NULL);
    pl->armed = true;
    if (corio__list_empty(&pl->p.link))
        corio__pending_add(&pl->p);
}

int corio_poller_next(struct corio_poller *pub, int64_t deadline)
{
    struct corio__poller *pl = poller_of(pub);
    if (!pl->loop)
        return -EINVAL;
    struct corio__task *t = corio__tls_task;
    if (!t || corio__coro_of(t) != pl->p.owner)
        return -EPERM;
    for (;;) {
        if (pl->ready) {
            int events = (int)pl->ready;
            pl->ready = 0;
            return events;
        }
        if (pl->err)
            return pl->err;
        int err = corio__wait_check(&t, deadline);
        if (err)
            return err;
        if (!pl->armed)
            pl_arm(pl);
        err = corio__pending_park(&pl->waiter, t, deadline, true);
        if (err)
            return err;
    }
}

void corio_poller_fini(struct corio_poller *pub)
{
    struct corio__poller *pl = poller_of(pub);
    if (!pl->loop)
        return;
    struct corio__task *t = corio__tls_task;
    CORIO__ASSERT(!pl->armed || (t && corio__coro_of(t) == pl->p.owner));
    if (pl->armed)
        pl_stop(pl);
    /* Not abortable: the CQE that disarms it must land before this frame can go. */
    while (pl->armed)
        corio__pending_park(&pl->waiter, t, CORIO_FOREVER, false);
    corio__list_remove(&pl->p.link);
    pl->loop = NULL;
}
