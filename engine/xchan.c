/* Channels between loops (corio_xchan): a bounded lock-free queue of fixed-size values that
 * coroutines on any loops, on any threads, send into and receive from, with the waiting side woken
 * through its loop's mailbox only when it actually waits.
 *
 * The queue is Dmitry Vyukov's bounded MPMC array: each cell carries a sequence number that says
 * whose turn it is (a sender's at position p when it is p, a receiver's when it is p + 1), and a
 * sender or a receiver claims a position with one compare-and-swap on its end's counter. The
 * closed mark is the top bit of the senders' counter, so that a send either took a position
 * before the close (and its value is received) or fails with -EPIPE: no value slips in after the
 * receivers saw the end.
 *
 * Waiting: a coroutine that finds the queue full (a sender) or empty (a receiver) joins its side's
 * list of waiters under that side's mutex, counts itself in the side's waiting count, and tries
 * once more before it parks. Whoever frees a cell or fills one then looks at the other side's
 * count: zero (the hot path) costs that one load; otherwise it takes the first waiter off the
 * list ("claims" it) and wakes it, directly when it sleeps on the caller's own loop, else with a
 * message (embedded in the waiter, so nothing is allocated) to the waiter's loop. The count and
 * the cells' sequence numbers are written and read sequentially consistent, so of a party that
 * counts itself and then looks at the cells and one that fills a cell and then looks at the count,
 * one always sees the other: no wake-up is lost. A woken waiter takes nothing with it: it tries
 * again, and waits again if another coroutine was faster. Values never travel through a waiter, so
 * a waiter that is cancelled or times out loses none; if it had been claimed, it passes the
 * wake-up on to the next waiter of its side, and it waits for the message that was sent to it
 * (which points into its frame) before it returns, as an op waits for its CQE. */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CLOSED (UINT64_C(1) << 63)

/* One end's waiters: the senders waiting for room, or the receivers waiting for a value. */
struct side {
    pthread_mutex_t mu;         /* guards waiters and the claimed marks of its members */
    struct corio__list waiters; /* struct waiter, first come first woken */
    _Atomic size_t waiting;     /* the members of waiters, read without mu by the other end */
};

struct corio_xchan {
    _Alignas(64) _Atomic uint64_t enq; /* the next position a sender takes; top bit: closed */
    _Alignas(64) _Atomic uint64_t deq; /* the next position a receiver takes */
    _Alignas(64) struct side send;     /* senders waiting for room */
    _Alignas(64) struct side recv;     /* receivers waiting for a value */
    size_t elem_size;                  /* bytes per value */
    size_t stride;                     /* bytes per cell: its sequence number and a value */
    uint64_t mask;                     /* cells - 1: a power of two */
    _Alignas(64) unsigned char cells[];
};

struct cell {
    _Atomic uint64_t seq; /* p: free for the sender at position p; p + 1: full for its receiver */
    unsigned char data[]; /* the value */
};

/* A parked sender or receiver, in its coroutine's frame. */
struct waiter {
    struct corio__msg msg;   /* the wake-up sent to its loop by another loop's claimer */
    struct corio__list link; /* in side->waiters until claimed or aborted */
    struct corio__task *t;   /* the parked coroutine */
    struct corio_loop *loop; /* its loop */
    struct side *side;       /* the side it waits on */
    bool claimed;            /* taken off the list by a waker: a wake-up is on its way */
    int why;                 /* an abort that came after the claim: what the wake-up returns */
};

static inline struct cell *cell_at(struct corio_xchan *ch, uint64_t pos)
{
    return (struct cell *)(void *)(ch->cells + (pos & ch->mask) * ch->stride);
}

/* ---- the queue ---------------------------------------------------------------------------- */

/* Puts a copy of @elem in the queue. Returns 0, -EPIPE (closed) or -EAGAIN (full). */
static int push(struct corio_xchan *ch, const void *elem)
{
    uint64_t pos = atomic_load_explicit(&ch->enq, memory_order_relaxed);
    for (;;) {
        if (pos & CLOSED)
            return -EPIPE;
        struct cell *c = cell_at(ch, pos);
        /* Sequentially consistent for the waiting protocol: pairs with a sender's count of itself
         * in send.waiting before its last try (and acquires the receiver's release of the cell). */
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_seq_cst);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            /* The CAS fails when another sender took pos, or the close set the top bit. */
            if (atomic_compare_exchange_weak_explicit(&ch->enq, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                memcpy(c->data, elem, ch->elem_size);
                /* Publishes the value to the receiver at pos (release), and orders against the
                 * sender's later look at recv.waiting (seq_cst): see the file comment. */
                atomic_store_explicit(&c->seq, pos + 1, memory_order_seq_cst);
                return 0;
            }
        } else if (dif < 0) {
            return -EAGAIN; /* the cell still holds the value of a lap ago */
        } else {
            pos = atomic_load_explicit(&ch->enq, memory_order_relaxed);
        }
    }
}

/* Takes the oldest value into @elem. Returns 1, 0 (closed and drained) or -EAGAIN (empty). */
static int pop(struct corio_xchan *ch, void *elem)
{
    uint64_t pos = atomic_load_explicit(&ch->deq, memory_order_relaxed);
    for (;;) {
        struct cell *c = cell_at(ch, pos);
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_seq_cst);
        int64_t dif = (int64_t)(seq - (pos + 1));
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&ch->deq, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                memcpy(elem, c->data, ch->elem_size);
                /* Frees the cell for the sender one lap later; seq_cst as in push. */
                atomic_store_explicit(&c->seq, pos + ch->mask + 1, memory_order_seq_cst);
                return 1;
            }
        } else if (dif < 0) {
            /* Nothing at pos yet. The end only once no sender holds a position short of it: one
             * that took a position before the close still publishes its value. */
            uint64_t e = atomic_load_explicit(&ch->enq, memory_order_seq_cst);
            return (e & CLOSED) && (e & ~CLOSED) == pos ? 0 : -EAGAIN;
        } else {
            pos = atomic_load_explicit(&ch->deq, memory_order_relaxed);
        }
    }
}

/* ---- waking ------------------------------------------------------------------------------- */

/* On the waiter's loop: the wake-up message a claimer sent. */
static void woken(struct corio_loop *l, struct corio__msg *m)
{
    (void)l;
    struct waiter *w = container_of(m, struct waiter, msg);
    corio__unpark(w->t, w->why);
}

/* Wakes claimed waiter @w: at once if it sleeps on the caller's own loop, else by its loop's
 * mailbox (which wakes that loop if it sleeps). Called with its side's mutex held, so that the
 * waiter cannot leave before the message is queued. */
static void deliver(struct waiter *w)
{
    if (w->loop == corio__tls_loop)
        corio__unpark(w->t, 0);
    else
        corio__remote_send(w->loop, &w->msg);
}

/* Takes @w off its side's list as claimed. Called with the side's mutex held. */
static void claim(struct side *s, struct waiter *w)
{
    corio__list_remove(&w->link);
    atomic_fetch_sub_explicit(&s->waiting, 1, memory_order_relaxed);
    w->claimed = true;
}

/* Wakes the first waiter of @s (with @all, every one), if any. */
static void wake(struct side *s, bool all)
{
    pthread_mutex_lock(&s->mu);
    while (!corio__list_empty(&s->waiters)) {
        struct waiter *w = container_of(s->waiters.next, struct waiter, link);
        claim(s, w);
        deliver(w);
        if (!all)
            break;
    }
    pthread_mutex_unlock(&s->mu);
}

/* After a cell was filled (for the receivers) or freed (for the senders): wakes a waiter of @s if
 * one waits. One load when nobody does. */
static inline void poke(struct side *s)
{
    /* Sequentially consistent: pairs with the waiter's count of itself (see the file comment). */
    if (atomic_load_explicit(&s->waiting, memory_order_seq_cst))
        wake(s, false);
}

/* A cancel or a deadline, on the waiter's own loop. Unclaimed, it leaves at once; claimed, the
 * wake-up message points into its frame and is on its way: it returns @why when that comes. */
static void waiter_abort(struct corio__task *t, int why)
{
    struct waiter *w = t->wait_obj;
    pthread_mutex_lock(&w->side->mu);
    bool claimed = w->claimed;
    if (!claimed) {
        corio__list_remove(&w->link);
        atomic_fetch_sub_explicit(&w->side->waiting, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&w->side->mu);
    if (claimed)
        w->why = why;
    else
        corio__unpark(t, why);
}

/* One try of the operation of side @s: push for the senders, pop for the receivers. Returns its
 * result; a value moved wakes a waiter of the other side. */
static int attempt(struct corio_xchan *ch, struct side *s, void *elem)
{
    if (s == &ch->send) {
        int r = push(ch, elem);
        if (r == 0)
            poke(&ch->recv);
        return r;
    }
    int r = pop(ch, elem);
    if (r == 1)
        poke(&ch->send);
    return r;
}

/* Waits on side @s until woken. Returns -EAGAIN when woken (try again), the operation's result
 * when the last try before parking did it, or -errno (-ETIMEDOUT, -ECANCELED, -EPERM). */
static int wait_on(struct corio_xchan *ch, struct side *s, void *elem, int64_t deadline)
{
    struct corio__task *t;
    int err = corio__wait_check(&t, deadline);
    if (err)
        return err;
    struct waiter w = {.msg = {.run = woken}, .t = t, .loop = corio__loop_of(t), .side = s};
    pthread_mutex_lock(&s->mu);
    atomic_fetch_add_explicit(&s->waiting, 1, memory_order_seq_cst);
    int r = s == &ch->send ? push(ch, elem) : pop(ch, elem);
    if (r != -EAGAIN) {
        atomic_fetch_sub_explicit(&s->waiting, 1, memory_order_relaxed);
        pthread_mutex_unlock(&s->mu);
        if (r == 0 && s == &ch->send)
            poke(&ch->recv);
        else if (r == 1)
            poke(&ch->send);
        return r;
    }
    corio__list_push_back(&s->waiters, &w.link);
    pthread_mutex_unlock(&s->mu);
    r = corio__park(t, deadline, waiter_abort, &w);
    if (r == 0)
        return -EAGAIN;
    /* Aborted after a claim: the wake-up it swallowed goes to the next waiter of its side, for
     * whom there may be room or a value. */
    if (w.claimed)
        poke(s);
    return r;
}

/* ---- the calls ---------------------------------------------------------------------------- */

static void side_init(struct side *s)
{
    pthread_mutex_init(&s->mu, NULL);
    corio__list_init(&s->waiters);
    atomic_init(&s->waiting, 0);
}

int corio_xchan_new(struct corio_xchan **out, size_t elem_size, size_t capacity)
{
    if (elem_size == 0 || elem_size > 65536 || capacity == 0 || capacity > (SIZE_MAX >> 8))
        return -EINVAL;
    /* At least two cells: with one, the mark of a full cell (p + 1) would be the mark of the
     * same cell freed for the next lap's sender (p + cells). */
    size_t cells = 2;
    while (cells < capacity)
        cells <<= 1;
    size_t stride = (sizeof(struct cell) + elem_size + 7) & ~(size_t)7;
    if (cells > (SIZE_MAX / 2) / stride)
        return -EINVAL;
    size_t size = (sizeof(struct corio_xchan) + cells * stride + 63) & ~(size_t)63;
    struct corio_xchan *ch = aligned_alloc(64, size);
    if (!ch)
        return -ENOMEM;
    atomic_init(&ch->enq, 0);
    atomic_init(&ch->deq, 0);
    side_init(&ch->send);
    side_init(&ch->recv);
    ch->elem_size = elem_size;
    ch->stride = stride;
    ch->mask = cells - 1;
    for (size_t i = 0; i < cells; i++)
        atomic_init(&cell_at(ch, i)->seq, i);
    *out = ch;
    return 0;
}

void corio_xchan_free(struct corio_xchan *ch)
{
    if (!ch)
        return;
    CORIO__ASSERT(corio__list_empty(&ch->send.waiters) && corio__list_empty(&ch->recv.waiters));
    pthread_mutex_destroy(&ch->send.mu);
    pthread_mutex_destroy(&ch->recv.mu);
    free(ch);
}

int corio_xchan_send(struct corio_xchan *ch, const void *elem, int64_t deadline)
{
    for (;;) {
        int r = attempt(ch, &ch->send, (void *)elem);
        if (r != -EAGAIN)
            return r;
        r = wait_on(ch, &ch->send, (void *)elem, deadline);
        if (r != -EAGAIN)
            return r;
    }
}

int corio_xchan_recv(struct corio_xchan *ch, void *elem, int64_t deadline)
{
    for (;;) {
        int r = attempt(ch, &ch->recv, elem);
        if (r != -EAGAIN)
            return r;
        r = wait_on(ch, &ch->recv, elem, deadline);
        if (r != -EAGAIN)
            return r;
    }
}

int corio_xchan_trysend(struct corio_xchan *ch, const void *elem)
{
    return attempt(ch, &ch->send, (void *)elem);
}

int corio_xchan_tryrecv(struct corio_xchan *ch, void *elem)
{
    return attempt(ch, &ch->recv, elem);
}

int corio_xchan_close(struct corio_xchan *ch)
{
    uint64_t old = atomic_fetch_or_explicit(&ch->enq, CLOSED, memory_order_seq_cst);
    if (old & CLOSED)
        return -EALREADY;
    /* Every waiter tries again: receivers drain what is left and then see the end, senders get
     * -EPIPE. */
    wake(&ch->recv, true);
    wake(&ch->send, true);
    return 0;
}

size_t corio_xchan_len(const struct corio_xchan *ch)
{
    uint64_t d = atomic_load_explicit(&((struct corio_xchan *)ch)->deq, memory_order_relaxed);
    uint64_t e = atomic_load_explicit(&((struct corio_xchan *)ch)->enq, memory_order_relaxed);
    e &= ~CLOSED;
    return e > d ? (size_t)(e - d) : 0;
}

size_t corio_xchan_cap(const struct corio_xchan *ch)
{
    return (size_t)ch->mask + 1;
}
