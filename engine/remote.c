/* What other threads hand a loop: a function to run on it (corio_loop_post), a coroutine to spawn
 * on it (corio_spawn from another thread), a stop (corio_loop_stop from another thread).
 *
 * Each message is pushed onto the loop's lock-free queue (mpsc.h) and run by the loop, on its own
 * thread, at the top of its next iteration: the loop looks at the queue once per iteration, which
 * costs one load of a line the senders write only when they send. Waking: a loop about to wait
 * in the kernel marks itself asleep and looks at the queue once more; a sender that finds it
 * asleep clears the mark and writes the loop's eventfd, whose read the loop keeps armed while it
 * sleeps (an op through the same seam as any other, on either backend). Both sides' first access
 * to the other's variable is sequentially consistent, so one of them always sees the other: no
 * message is left behind a sleeping loop, a sleeping loop costs its sender one write, and a busy
 * loop costs nothing. */
#include "remote.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "coro.h"
#include "loop.h"

/* Arms the read of the eventfd; the kernel fills efd_value. The epoll backend is told not to
 * look for its readiness while the loop is busy (aux 1): the queue is looked at anyway. */
static void arm(struct corio_loop *l)
{
    struct corio__remote *r = &l->remote;
    const struct corio__op op = {.opcode = CORIO__OP_READ, .fd = r->efd, .addr = &r->efd_value,
                                 .len = sizeof(r->efd_value), .off = (uint64_t)-1,
                                 .aux = CORIO__OP_LAZY};
    corio__op_submit_untracked(&l->io, &op, &r->woke);
    r->armed = true;
}

static void woke(struct corio__completion *c, const struct corio__cqe *cqe, bool link)
{
    (void)link;
    struct corio_loop *l = container_of(c, struct corio_loop, remote.woke);
    l->remote.armed = false;
    /* A failed read (the fault seam makes some) is simply armed again: the eventfd is a blocking
     * one on io_uring and a waited-for one on epoll, so no read can fail at once for ever. */
    if (cqe->res == (int32_t)sizeof(uint64_t))
        l->stats.remote_wakes += l->remote.efd_value;
    if (l->remote.closing)
        return;
    /* Armed and submitted again at once (a wake-up already costs system calls): left queued, it
     * would keep the loop's check for a deadlock from its answer, and armed lazily, it would cost
     * every sleep a test. */
    arm(l);
    int err = corio__op_flush(&l->io);
    if (err)
        corio__panic("submitting the mailbox read: %d", err);
}

int corio__remote_init(struct corio_loop *l)
{
    struct corio__remote *r = &l->remote;
    corio__mpsc_init(&r->q);
    atomic_store_explicit(&r->active, 0, memory_order_relaxed);
    atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
    r->woke.complete = woke;
    atomic_flag_clear(&r->stop_queued);
    /* io_uring waits for a blocking eventfd by itself (a read of an O_NONBLOCK file may instead
     * end at once with -EAGAIN, and be armed again, and end again); the epoll backend tries its
     * read first and must not block. */
    r->efd = eventfd(0, EFD_CLOEXEC | (l->io.ring ? 0 : EFD_NONBLOCK));
    if (r->efd < 0)
        return -errno;
    r->closing = false;
    arm(l);
    /* Submitted now, so that the loop's check for a deadlock (nothing queued, nothing in flight
     * that anyone awaits) is not kept from its answer by this read, which keeps nobody. */
    int err = corio__op_flush(&l->io);
    if (err) {
        close(r->efd);
        return err;
    }
    return 0;
}

void corio__remote_fini(struct corio_loop *l)
{
    struct corio__remote *r = &l->remote;
    r->closing = true;
    struct corio__mpsc_node *n;
    while ((n = corio__mpsc_pop(&r->q))) {
        struct corio__msg *m = (struct corio__msg *)(void *)n;
        if (m->heap)
            free(m);
    }
    if (r->armed) {
        /* Complete the read ourselves and wait for its CQE: it writes into this loop. */
        uint64_t one = 1;
        if (write(r->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            corio__panic("eventfd write failed");
        while (r->armed) {
            int err = corio__op_wait(&l->io, -1, 1, 0);
            if (err && err != -EINTR && err != -EAGAIN)
                corio__panic("waiting for the mailbox read: %d", err);
            corio__op_reap(&l->io);
        }
    }
    close(r->efd);
}

unsigned corio__remote_drain(struct corio_loop *l)
{
    unsigned n = 0;
    struct corio__mpsc_node *node;
    while ((node = corio__mpsc_pop(&l->remote.q))) {
        struct corio__msg *m = (struct corio__msg *)(void *)node;
        bool heap = m->heap;
        m->run(l, m);
        if (heap)
            free(m);
        n++;
    }
    l->stats.remote_msgs += n;
    return n;
}

void corio__remote_send(struct corio_loop *l, struct corio__msg *m)
{
    struct corio__remote *r = &l->remote;
    /* The first message makes the loop take part; the loop did not mark its sleeps before, so
     * that one wakes it unasked. */
    bool first = !atomic_load_explicit(&r->active, memory_order_relaxed) &&
                 !atomic_exchange_explicit(&r->active, 1, memory_order_seq_cst);
    corio__mpsc_push(&r->q, &m->node);
    if (first || (atomic_load_explicit(&r->sleeping, memory_order_seq_cst) &&
                  atomic_exchange_explicit(&r->sleeping, 0, memory_order_acq_rel))) {
        uint64_t one = 1;
        /* A full eventfd counter (2^64 - 2 writes unread) cannot happen: the loop reads it. */
        if (write(r->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            corio__panic("eventfd write failed");
    }
}

struct corio__msg *corio__msg_new(corio__msg_fn *run)
{
    struct corio__msg *m = calloc(1, sizeof(*m));
    if (m) {
        m->run = run;
        m->heap = true;
    }
    return m;
}

static void run_post(struct corio_loop *l, struct corio__msg *m)
{
    (void)l;
    m->fn(m->arg);
}

int corio_loop_post(struct corio_loop *l, void (*fn)(void *arg), void *arg)
{
    if (!l || !fn)
        return -EINVAL;
    struct corio__msg *m = corio__msg_new(run_post);
    if (!m)
        return -ENOMEM;
    m->fn = fn;
    m->arg = arg;
    corio__remote_send(l, m);
    return 0;
}

void corio__remote_stop(struct corio_loop *l)
{
    struct corio__remote *r = &l->remote;
    if (atomic_flag_test_and_set(&r->stop_queued))
        return;
    corio__remote_send(l, &r->stop);
}
