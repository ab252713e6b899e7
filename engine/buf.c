/* Provided buffer rings, multishot receivers, and registered buffers.
 *
 * A buffer ring is one allocation of count x size bytes plus the ring the kernel reads buffer
 * addresses from. A receiver keeps one multishot recv armed on its socket; each CQE carries a
 * buffer id, which the receiver queues (linked through the ring's per-buffer next[] array, so a
 * receiver owns no memory of its own) until its coroutine takes it. Buffers go back to the kernel
 * with a shared-memory store, no system call. */
#include "op.h"

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
    struct corio__pbuf *pbuf;  /* the shared ring */
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
        corio__pbuf_put(br->pbuf, br->mem + (size_t)id * br->size, (unsigned)br->size,
                        (uint16_t)id);
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
    err = corio__ring_pbuf_new(l->ring, br->bgid, count, &br->pbuf);
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
    corio__ring_pbuf_free(br->loop->ring, br->bgid, br->pbuf);
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
    struct corio__handler h;    /* CQE consumer, tagged CORIO__UD_HANDLER */
    struct corio_bufring *br;   /* where its buffers come from */
    struct corio_coro *owner;   /* the coroutine that uses it */
    struct corio_coro *waiter;  /* the owner while parked in corio_receiver_next */
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

static void rx_cqe(struct corio__handler *h, int32_t res, uint32_t flags)
{
    struct corio__receiver *rx = container_of(h, struct corio__receiver, h);
    struct corio_bufring *br = rx->br;
    struct corio_loop *l = br->loop;
    if (!(flags & CORIO__CQE_F_MORE)) {
        rx->armed = false;
        l->inflight--;
    }
    if (flags & CORIO__CQE_F_BUFFER) {
        uint32_t id = flags >> CORIO__CQE_BUFFER_SHIFT;
        br->avail--;
        if (res > 0) {
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
                rx->cancelling = true;
                l->stats.rx_pauses++;
                corio__ring_cancel(l->ring, (uintptr_t)&rx->h | CORIO__UD_HANDLER);
            }
        } else {
            buf_return(br, id); /* picked but not filled */
        }
    }
    if (res == 0)
        rx->eof = true;
    else if (res == -ENOBUFS) {
        l->stats.enobufs++; /* not final: armed again once buffers are back */
        /* The ring ran dry while free buffers may wait on the stack: hold more in the kernel. */
        if (br->target < br->count)
            br->target = br->target * 2 < br->count ? br->target * 2 : br->count;
        ring_top_up(br);
    }
    else if (res < 0 && !(res == -ECANCELED && rx->cancelling))
        rx->err = res;
    if (rx->waiter)
        corio__unpark(rx->waiter, 0);
    if (!rx->armed && rx->owner->state == CORIO__CO_ZOMBIE) {
        /* Its owner returned without corio_receiver_fini: this was the last CQE. */
        rx_release_queue(rx);
        corio__list_remove(&rx->h.link);
    }
}

static void rx_abort(struct corio_coro *co, int why)
{
    struct corio__receiver *rx = co->wait_obj;
    rx->waiter = NULL;
    corio__unpark(co, why);
}

/* The owner returned while the receiver was linked (runs on the scheduler's stack). */
static void rx_cancel(struct corio__handler *h)
{
    struct corio__receiver *rx = container_of(h, struct corio__receiver, h);
    if (rx->armed) {
        if (!rx->cancelling) {
            rx->cancelling = true;
            corio__ring_cancel(rx->br->loop->ring, (uintptr_t)&rx->h | CORIO__UD_HANDLER);
        }
        return;
    }
    rx_release_queue(rx);
    corio__list_remove(&rx->h.link);
}

int corio_receiver_init(struct corio_receiver *pub, int fd, struct corio_bufring *br)
{
    struct corio__receiver *rx = (struct corio__receiver *)(void *)pub;
    memset(rx, 0, sizeof(*rx));
    if (!corio__tls_co)
        return -EPERM;
    if (!br || br->loop != corio__tls_co->loop)
        return -EINVAL;
    rx->h.fn = rx_cqe;
    rx->h.cancel = rx_cancel;
    rx->h.owner = corio__tls_co;
    corio__list_init(&rx->h.link);
    rx->br = br;
    rx->owner = corio__tls_co;
    rx->head = NO_BUF;
    rx->fd = fd;
    return 0;
}

static void rx_arm(struct corio__receiver *rx)
{
    struct corio_loop *l = rx->br->loop;
    const struct corio__op op = {
        .opcode = CORIO__OP_RECV_MULTI, .fd = rx->fd, .aux = rx->br->bgid};
    corio__ring_prep(l->ring, &op, (uintptr_t)&rx->h | CORIO__UD_HANDLER, NULL, 0);
    rx->armed = true;
    rx->cancelling = false;
    l->inflight++;
    if (corio__list_empty(&rx->h.link))
        corio__list_push_back(&rx->owner->handlers, &rx->h.link);
}

ssize_t corio_receiver_next(struct corio_receiver *pub, struct corio_buf *out, int64_t deadline)
{
    struct corio__receiver *rx = (struct corio__receiver *)(void *)pub;
    struct corio_coro *co = corio__tls_co;
    if (!co || co != rx->owner)
        return -EPERM;
    struct corio_bufring *br = rx->br;
    for (;;) {
        if (rx->head != NO_BUF) {
            uint32_t id = rx->head;
            rx->head = br->next[id];
            rx->queued--;
            out->data = br->mem + (size_t)id * br->size;
            out->len = br->len[id];
            out->ring = br;
            out->id = id;
            return (ssize_t)out->len;
        }
        if (rx->eof)
            return 0;
        if (rx->err)
            return rx->err;
        int err = corio__wait_check(&co, deadline);
        if (err)
            return err;
        if (!rx->armed) {
            ring_top_up(br);
            if (br->avail == 0) {
                /* The kernel stopped us for want of buffers: wait for some to come back. */
                err = corio__waitq_wait(&br->waiters, co, deadline);
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
        rx->waiter = co;
        err = corio__park(co, deadline, rx_abort, rx);
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
    struct corio_coro *co = corio__tls_co;
    CORIO__ASSERT(!rx->armed || co == rx->owner);
    if (rx->armed) {
        rx->cancelling = true;
        corio__ring_cancel(rx->br->loop->ring, (uintptr_t)&rx->h | CORIO__UD_HANDLER);
        /* Not abortable: the CQE that disarms it must land before this frame can go. */
        while (rx->armed) {
            rx->waiter = co;
            corio__park(co, CORIO_FOREVER, NULL, NULL);
            rx->waiter = NULL;
        }
    }
    rx_release_queue(rx);
    corio__list_remove(&rx->h.link);
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
    int err = corio__ring_buffers_register(l->ring, iov, n);
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
    return corio__ring_buffers_unregister(l->ring);
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
    return (ssize_t)corio__op_run(&op, deadline, CORIO__FK_OP);
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
    return (ssize_t)corio__op_run(&op, deadline, CORIO__FK_OP);
}
