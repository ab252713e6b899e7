/* The graceful stop of a loop: corio_loop_drain, corio_draining, corio_set_idle.
 *
 * A drain is a state of the loop (coros.draining) that lasts until corio_loop_run returns. When
 * it starts, every accept pending on the loop ends: futures of accepts and multishot acceptors
 * are found in their owners' pending lists and ended in the kernel with -ESHUTDOWN, and accepts
 * started later fail at once (net.c, acceptor.c). The waits of coroutines that marked themselves
 * idle end with -ESHUTDOWN; waits for signals end so once nothing else is left (coro.c). Every
 * other coroutine runs on, so that connections finish what they are doing. The deadline is the
 * own deadline of a stand-in task in the loop (loop.h): the scheduler's timer heap fires it, and
 * its abort cancels whatever is left, as corio_loop_stop does. No per-iteration check is added to
 * the loop: a drain costs the hot path nothing. */
#include "drain.h"

#include "acceptor.h"
#include "future.h"
#include "loop.h"

#include <errno.h>
#include <stdlib.h>

/* The drain's deadline passed: what is left is cancelled, as by a stop. */
static void expired(struct corio__task *t, int why)
{
    (void)why;
    corio__coro_cancel_all(container_of(t, struct corio_loop, drain_timer));
}

/* Arms (or moves earlier) the deadline. A drain can only be shortened: the earlier deadline of
 * two drains is the one kept. */
static void arm_deadline(struct corio_loop *l, int64_t deadline)
{
    struct corio__task *t = &l->drain_timer;
    if (!t->sched) {
        /* Never run and never woken: parked for ever, only its abort is used. */
        t->sched = &l->sched;
        t->state = CORIO__T_WAITING;
        t->abort = expired;
        t->deadline.idx = CORIO__TIMER_IDLE;
        t->deadline.data = t;
        t->deadline_at = CORIO_FOREVER;
    }
    if (deadline < 0 || (t->deadline_at >= 0 && t->deadline_at <= deadline))
        return;
    corio__task_set_deadline(t, deadline);
    if (t->expired) /* passed meanwhile: armed no timer */
        expired(t, -ETIMEDOUT);
}

/* Ends every accept pending on @l: those of futures and of acceptors, in their owners' frames. */
static void shut_accepts(struct corio_loop *l)
{
    struct corio__list *n = l->coros.all.next;
    for (; n != &l->coros.all; n = n->next) {
        struct corio_coro *co = container_of(n, struct corio_coro, all);
        struct corio__list *i = co->pending.next;
        while (i != &co->pending) {
            struct corio__pending *p = container_of(i, struct corio__pending, link);
            i = i->next;
            if (!corio__future_shutdown_accept(p))
                corio__acceptor_shutdown(p);
        }
    }
}

/* Starts (or shortens) a drain of @l, on its own thread. */
static void drain(struct corio_loop *l, int64_t deadline)
{
    l->coros.draining = true;
    if (deadline >= 0 && deadline <= corio_now()) {
        corio__coro_cancel_all(l); /* no time left: a stop */
        return;
    }
    arm_deadline(l, deadline);
    shut_accepts(l);
    corio__coro_shutdown_idle(l, CORIO__IDLE_NOW);
    if (l->coros.lingering && l->coros.live == l->coros.lingering)
        corio__coro_shutdown_idle(l, CORIO__IDLE_LAST);
}

/* A drain sent from another thread: the message and its deadline. */
struct drain_msg {
    struct corio__msg m; /* first: the loop frees the message through it */
    int64_t deadline;
};

static void run_remote_drain(struct corio_loop *l, struct corio__msg *m)
{
    drain(l, ((struct drain_msg *)(void *)m)->deadline);
}

int corio_loop_drain(struct corio_loop *l, int64_t deadline)
{
    if (!l)
        return -EINVAL;
    if (pthread_equal(l->owner, pthread_self())) {
        drain(l, deadline);
        return 0;
    }
    struct drain_msg *dm = calloc(1, sizeof(*dm));
    if (!dm)
        return -ENOMEM;
    dm->m.run = run_remote_drain;
    dm->m.heap = true;
    dm->deadline = deadline;
    corio__remote_send(l, &dm->m);
    return 0;
}

void corio__drain_end(struct corio_loop *l)
{
    struct corio__task *t = &l->drain_timer;
    l->coros.draining = false;
    if (t->sched && t->deadline.idx != CORIO__TIMER_IDLE)
        corio__heap_remove(&l->sched.timers, &t->deadline);
    t->deadline_at = CORIO_FOREVER;
    t->expired = false;
}

bool corio_draining(void)
{
    struct corio_loop *l = corio__tls_loop;
    return l && l->coros.draining;
}

int corio_set_idle(bool idle)
{
    struct corio__task *t = corio__tls_task;
    if (!t)
        return -EPERM;
    if (!idle) {
        if (t->idle == CORIO__IDLE_NOW)
            t->idle = CORIO__IDLE_NO;
        return 0;
    }
    if (corio__loop_of(t)->coros.draining)
        return -ESHUTDOWN;
    t->idle = CORIO__IDLE_NOW;
    return 0;
}
