/* Provided buffer rings, multishot receivers, and registered buffers.
 *
 * A buffer ring is one allocation of count x size bytes plus the ring the kernel reads buffer
 * addresses from. A receiver keeps one multishot recv armed on its socket; each CQE carries a
 * buffer id, which the receiver queues (linked through the ring's per-buffer next[] array, so a
 * receiver owns no memory of its own) until its coroutine takes it. Buffers go back to the kernel
 * with a shared-memory store, no system call. */
#include "future.h"

#include "loop.h"
#include "dump.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef CORIO__VALGRIND
#include <valgrind/memcheck.h>
#endif

#define NO_BUF UINT32_MAX

struct corio_bufring {
    struct corio_loop *loop;   /* the loop whose ring it is registered with */
    struct corio__bufgroup *pbuf; /* the group the backend takes buffers from */
    unsigned char *mem;        /* count * size bytes of buffers */
    size_t mem_len;            /* bytes mapped for mem */
    size_t size;               /* bytes per buffer */
    unsigned count;            /* buffers */
    unsigned avail;            /* buffers the kernel holds, ready to fill */
    unsigned target;           /* how many the kernel should hold: grows on -ENOBUFS, decays */
    unsigned nstack;           /* free buffers held back from the kernel, on the stack */
    unsigned decay;            /* releases until the target next decays */
    uint32_t *stack;           /* those ids, last released on top: the warmest in cache */
    uint16_t bgid;             /* its buffer group id */
    struct corio__list waiters; /* receivers parked until buffers come back */
    uint32_t *next;            /* per buffer: the next in a receiver's queue */
    uint32_t *len;             /* per buffer: bytes received into it */
};

/* Buffers the kernel's ring holds at first; releases between decays of a grown target. */
#define RING_TARGET 128
#define RING_DECAY 4096

/* Moves free buffers from the stack into the kernel's ring up to the target. */
static void ring_top_up(struct corio_bufring *br)
{
    while (br->avail < br->target && br->nstack > 0) {
        uint32_t id = br->stack[--br->nstack];
        corio__op_buf_put(&br->loop->io, br->pbuf, br->mem + (size_t)id * br->size,
                          (unsigned)br->size, (uint16_t)id);
        br->avail++;
    }
}

int corio_bufring_new(struct corio_bufring **out, struct corio_loop *l, unsigned count,
                      size_t size)
{
    if (!l)
        l = corio__tls_loop;
    if (!l || count == 0 || count > 32768 || (count & (count - 1)) || size == 0 ||
        size > (1u << 30) || (uint64_t)count * size > (1ull << 40))
        return -EINVAL;
    if (!corio_loop_has(l, CORIO_FEAT_BUF_RING))
        return -EOPNOTSUPP;
    struct corio_bufring *br = calloc(1, sizeof(*br));
    if (!br)
        return -ENOMEM;
    br->next = calloc(count, sizeof(*br->next));
    br->len = calloc(count, sizeof(*br->len));
    br->stack = calloc(count, sizeof(*br->stack));
    br->mem_len = (size_t)count * size;
    /* Anonymous memory: pages are committed as the kernel first writes into them. */
    br->mem = mmap(NULL, br->mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int err = -ENOMEM;
    if (!br->next || !br->len || !br->stack || br->mem == MAP_FAILED)
        goto fail;
    br->loop = l;
    br->size = size;
    br->count = count;
    br->bgid = l->next_bgid++;
    err = corio__op_buf_new(&l->io, br->bgid, count, &br->pbuf);
    if (err)
        goto fail;
    corio__list_init(&br->waiters);
    /* The kernel takes ring buffers in FIFO order, so with every buffer in the ring each receive
     * would land in the buffer used longest ago: cache-cold memory. So the ring holds a modest
     * target, topped up from a LIFO stack of free buffers (the most recently released, i.e.
     * warmest, go back first); the target doubles when the kernel runs dry and decays back. */
    br->target = count < RING_TARGET ? count : RING_TARGET;
    br->decay = RING_DECAY;
    for (unsigned i = count; i-- > 0;)
        br->stack[br->nstack++] = i;
    ring_top_up(br);
    *out = br;
    return 0;
fail:
    if (br->mem && br->mem != MAP_FAILED)
        munmap(br->mem, br->mem_len);
    free(br->next);
    free(br->len);
    free(br->stack);
    free(br);
    return err;
}

void corio_bufring_free(struct corio_bufring *br)
{
    if (!br)
        return;
    CORIO__ASSERT(corio__list_empty(&br->waiters));
    corio__op_buf_free(&br->loop->io, br->bgid, br->pbuf);
    munmap(br->mem, br->mem_len);
    free(br->next);
    free(br->len);
    free(br->stack);
    free(br);
}

unsigned corio_bufring_available(const struct corio_bufring *br)
{
    return br->avail + br->nstack;
}

static void buf_return(struct corio_bufring *br, uint32_t id)
{
    br->stack[br->nstack++] = id;
    if (--br->decay == 0) {
        br->decay = RING_DECAY;
        if (br->target > RING_TARGET && br->target > br->count / 64)
            br->target -= br->target / 8;
    }
    ring_top_up(br);
    /* A receiver the kernel stopped for want of buffers can be armed again. */
    corio__waitq_wake(&br->waiters, 0);
}

void corio_buf_release(struct corio_buf *b)
{
    if (!b || !b->ring)
        return;
    buf_return(b->ring, b->id);
    b->ring = NULL;
    b->data = NULL;
    b->len = 0;
}

/* ---- receivers ------------------------------------------------------------------------------ */

struct corio__receiver {
    struct corio__pending p;    /* its CQEs' record, linked to its owner while armed */
    struct corio_bufring *br;   /* where its buffers come from */
    struct corio__task *waiter; /* the owner while parked in corio_receiver_next */
    uint32_t head;              /* first queued buffer id, or NO_BUF */
    uint32_t tail;              /* last queued buffer id */
    int fd;                     /* the socket */
    int err;                    /* a final error to report once the queue is empty */
    unsigned queued;            /* buffers in the queue */
    bool armed;                 /* the multishot recv is in the kernel */
    bool eof;                   /* the peer shut down */
    bool cancelling;            /* a cancel is on its way: from fini, or a pause */
};

/* Buffers a receiver queues before it pauses its receive: a connection whose coroutine does not
 * take what arrives must not drain a ring that others share. While paused, the socket's own
 * buffer holds what comes, and TCP flow control pushes back on the peer. */
#define RX_QUEUE_MAX 32
_Static_assert(sizeof(struct corio__receiver) <= sizeof(struct corio_receiver), "grow receiver");

static void rx_release_queue(struct corio__receiver *rx)
{
    while (rx->head != NO_BUF) {
        uint32_t id = rx->head;
        rx->head = rx->br->next[id];
        buf_return(rx->br, id);
    }
    rx->queued = 0;
}

/* Asks the kernel to stop the multishot, once. */
static void rx_stop(struct corio__receiver *rx)
{
    if (!rx->cancelling) {
        rx->cancelling = true;
        corio__op_cancel(&rx->br->loop->io, &rx->p.c);
    }
}

/* A buffer the kernel filled (or picked and left empty) for @rx: queue it, pausing the receive
 * once the queue is long. */
static void rx_buffer(struct corio__receiver *rx, int32_t res, uint32_t id)
{
    struct corio_bufring *br = rx->br;
    br->avail--;
    if (res <= 0) {
        buf_return(br, id); /* picked but not filled */
        return;
    }
#ifdef CORIO__VALGRIND
    VALGRIND_MAKE_MEM_DEFINED(br->mem + (size_t)id * br->size, (size_t)res);
#endif
    br->len[id] = (uint32_t)res;
    br->next[id] = NO_BUF;
    if (rx->head == NO_BUF)
        rx->head = id;
    else
        br->next[rx->tail] = id;
    rx->tail = id;
    if (++rx->queued >= RX_QUEUE_MAX && rx->armed && !rx->cancelling) {
        /* Pause: corio_receiver_next arms it again once the queue is empty. */
        br->loop->stats.rx_pauses++;
        rx_stop(rx);
    }
}

static void rx_complete(struct corio__completion *c, const struct corio__cqe *cqe, bool link)
{
    (void)link;
    struct corio__receiver *rx = container_of(c, struct corio__receiver, p.c);
    struct corio_bufring *br = rx->br;
    int32_t res = cqe->res;
    if (!(cqe->flags & CORIO__CQE_F_MORE))
        rx->armed = false;
    if (cqe->flags & CORIO__CQE_F_BUFFER)
        rx_buffer(rx, res, cqe->flags >> CORIO__CQE_BUFFER_SHIFT);
    if (res == 0) {
        rx->eof = true;
    } else if (res == -ENOBUFS) {
        br->loop->stats.enobufs++; /* not final: armed again once buffers are back */
        /* The ring ran dry while free buffers may wait on the stack: hold more in the kernel. */
        if (br->target < br->count)
            br->target = br->target * 2 < br->count ? br->target * 2 : br->count;
        ring_top_up(br);
    } else if (res < 0 && !(res == -ECANCELED && rx->cancelling)) {
        rx->err = res;
    }
    if (rx->waiter)
        corio__unpark(rx->waiter, 0);
    if (!rx->armed && rx->p.owner->t.state == CORIO__T_ZOMBIE) {
        /* Its owner returned without corio_receiver_fini: this was the last CQE. */
        rx_release_queue(rx);
        corio__pending_done(&rx->p);
    }
}

static void rx_abort(struct corio__task *t, int why)
{
    struct corio__receiver *rx = t->wait_obj;
    rx->waiter = NULL;
    corio__unpark(t, why);
}

/* The owner returned while the receiver was linked (runs on the scheduler's stack). */
static void rx_cancel(struct corio__pending *p)
{
    struct corio__receiver *rx = container_of(p, struct corio__receiver, p);
    if (rx->armed) {
        rx_stop(rx);
        return;
    }
    rx_release_queue(rx);
    corio__pending_done(&rx->p);
}

int corio_receiver_init(struct corio_receiver *pub, int fd, struct corio_bufring *br)
{
    struct corio__receiver *rx = (struct corio__receiver *)(void *)pub;
    memset(rx, 0, sizeof(*rx));
    struct corio_coro *co = corio__self();
    if (!co)
        return -EPERM;
    if (!br || br->loop != co->loop)
        return -EINVAL;
    rx->p.c.complete = rx_complete;
    rx->p.cancel = rx_cancel;
    rx->p.owner = co;
    corio__list_init(&rx->p.link);
    rx->br = br;
    rx->head = NO_BUF;
    rx->fd = fd;
    return 0;
}

static void rx_arm(struct corio__receiver *rx)
{
    const struct corio__op op = {
        .opcode = CORIO__OP_RECV_MULTI, .fd = rx->fd, .aux = rx->br->bgid};
    corio__op_submit(&rx->br->loop->io, &op, &rx->p.c, NULL);
    corio__pending_stamp(&rx->p, op.opcode, op.fd);
    rx->armed = true;
    rx->cancelling = false;
    if (corio__list_empty(&rx->p.link))
        corio__pending_add(&rx->p);
}

/* Takes the first queued buffer into *out. Returns its length. */
static ssize_t rx_take(struct corio__receiver *rx, struct corio_buf *out)
{
    struct corio_bufring *br = rx->br;
    uint32_t id = rx->head;
    rx->head = br->next[id];
    rx->queued--;
    out->data = br->mem + (size_t)id * br->size;
    out->len = br->len[id];
    out->ring = br;
    out->id = id;
    return (ssize_t)out->len;
}

ssize_t corio_receiver_next(struct corio_receiver *pub, struct corio_buf *out, int64_t deadline)
{
    struct corio__receiver *rx = (struct corio__receiver *)(void *)pub;
    struct corio__task *t = corio__tls_task;
    if (!t || corio__coro_of(t) != rx->p.owner)
        return -EPERM;
    struct corio_bufring *br = rx->br;
    for (;;) {
        if (rx->head != NO_BUF)
            return rx_take(rx, out);
        if (rx->eof)
            return 0;
        if (rx->err)
            return rx->err;
        int err = corio__wait_check(&t, deadline);
        if (err)
            return err;
        if (!rx->armed) {
            ring_top_up(br);
            if (br->avail == 0) {
                /* The kernel stopped us for want of buffers: wait for some to come back. */
                err = corio__waitq_wait(&br->waiters, t, deadline);
                if (err)
                    return err;
                continue;
            }
            rx_arm(rx);
            /* Buffers are there, so no receiver should wait for them: pass the wake-up on. A
             * returned buffer wakes one waiter, and if that one has nothing to receive, nothing
             * is consumed and no further buffer comes back to wake the others, which would stay
             * parked with buffers available and their data waiting. */
            corio__waitq_wake(&br->waiters, 0);
        }
        rx->waiter = t;
        err = corio__park(t, deadline, rx_abort, rx);
        rx->waiter = NULL;
        if (err)
            return err;
    }
}

void corio_receiver_fini(struct corio_receiver *pub)
{
    struct corio__receiver *rx = (struct corio__receiver *)(void *)pub;
    if (!rx->br)
        return;
    struct corio__task *t = corio__tls_task;
    CORIO__ASSERT(!rx->armed || (t && corio__coro_of(t) == rx->p.owner));
    if (rx->armed) {
        rx_stop(rx);
        /* Not abortable: the CQE that disarms it must land before this frame can go. */
        while (rx->armed) {
            rx->waiter = t;
            corio__park(t, CORIO_FOREVER, NULL, NULL);
            rx->waiter = NULL;
        }
    }
    rx_release_queue(rx);
    corio__list_remove(&rx->p.link);
    rx->br = NULL;
}

/* ---- registered buffers --------------------------------------------------------------------- */

int corio_buffers_register(struct corio_loop *l, const struct iovec *iov, unsigned n)
{
    if (!l)
        l = corio__tls_loop;
    if (!l || !iov || n == 0)
        return -EINVAL;
    if (l->buffers_registered)
        return -EBUSY;
    int err = corio__op_buffers_register(&l->io, iov, n);
    if (err == 0)
        l->buffers_registered = true;
    return err;
}

int corio_buffers_unregister(struct corio_loop *l)
{
    if (!l)
        l = corio__tls_loop;
    if (!l || !l->buffers_registered)
        return -EINVAL;
    l->buffers_registered = false;
    return corio__op_buffers_unregister(&l->io);
}

ssize_t corio_read_fixed(int fd, void *buf, size_t len, int64_t off, unsigned index,
                         int64_t deadline)
{
    const struct corio__op op = {.opcode = CORIO__OP_READ_FIXED,
                                 .fd = fd,
                                 .addr = buf,
                                 .len = corio__clamp_len(len),
                                 .off = (uint64_t)off,
                                 .aux = index};
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

ssize_t corio_write_fixed(int fd, const void *buf, size_t len, int64_t off, unsigned index,
                          int64_t deadline)
{
    const struct corio__op op = {.opcode = CORIO__OP_WRITE_FIXED,
                                 .fd = fd,
                                 .addr = buf,
                                 .len = corio__clamp_len(len),
                                 .off = (uint64_t)off,
                                 .aux = index};
    return (ssize_t)corio__future_run(&op, deadline, CORIO__FK_OP);
}

/* ---- what a parked coroutine waits for (corio_loop_dump) --------------------------------------*/

const char *corio__receiver_wait_name(corio__abort_fn *a)
{
    return a == rx_abort ? "data (receiver)" : NULL;
}
