/* Switching, the run queue, parking and waking, wait queues and the timers of parked waits. Every
 * context switch of the engine goes through do_switch here, so that the sanitizers hear of each. */
#include "scheduler.h"

#include <errno.h>
#include <pthread.h>

#ifdef CORIO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

CORIO__TLS struct corio__task *corio__tls_task;
CORIO__TLS struct corio_loop *corio__tls_loop;

void corio__sched_init(struct corio__sched *s, uint64_t *switches)
{
    corio__list_init(&s->runq);
    corio__list_init(&s->batch);
    s->switches = switches;
}

void corio__sched_fini(struct corio__sched *s)
{
    corio__heap_fini(&s->timers);
}

void corio__sched_enter(struct corio__sched *s)
{
#ifdef CORIO__ASAN
    pthread_attr_t a;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &lo, &size);
        pthread_attr_destroy(&a);
    }
    s->stack_lo = lo;
    s->stack_size = size;
#endif
#ifdef CORIO__TSAN
    s->tsan_fiber = __tsan_get_current_fiber();
#endif
    (void)s;
}

void corio__task_init(struct corio__task *t, struct corio__sched *s, struct corio__stack *stack,
                      void *top, corio__ctx_entry *entry, void *arg)
{
    t->sched = s;
    t->stack = stack;
    t->state = CORIO__T_WAITING;
    t->deadline.idx = CORIO__TIMER_IDLE;
    t->deadline.call = 0;
    t->deadline.deadline = CORIO_FOREVER;
    t->deadline.data = t;
    t->deadline_at = CORIO_FOREVER;
    corio__list_init(&t->runq);
    corio__ctx_make(&t->ctx, stack->lo, top, entry, arg, &s->ctx);
#ifdef CORIO__TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
}

void corio__task_fini(struct corio__task *t)
{
    if (t->deadline.idx != CORIO__TIMER_IDLE)
        corio__heap_remove(&t->sched->timers, &t->deadline);
#ifdef CORIO__TSAN
    __tsan_destroy_fiber(t->tsan_fiber);
#else
    (void)t;
#endif
}

/* ---- parking and waking ----------------------------------------------------------------------- */

static inline void park_prepare(struct corio__task *t, corio__abort_fn *abort, void *obj)
{
    t->abort = abort;
    t->wait_obj = obj;
    t->wake_res = 0;
    t->state = CORIO__T_WAITING;
}

/* corio__park with a timer of its own in the heap, removed when the wait ends (unless it fired). */
static int park_timed(struct corio__task *t, int64_t deadline)
{
    struct corio__sched *s = t->sched;
    struct corio__timer timer = {.deadline = deadline, .idx = CORIO__TIMER_IDLE, .data = t};
    if (corio__heap_push(&s->timers, &timer) != 0 && t->abort)
        t->abort(t, -ENOMEM);
    corio__suspend(t);
    corio__heap_remove(&s->timers, &timer);
    t->abort = NULL;
    t->wait_obj = NULL;
    return t->wake_res;
}

int corio__park_switch(struct corio__task *t, struct corio__task *to, int64_t deadline,
                       corio__abort_fn *abort, void *obj)
{
    struct corio__sched *s = t->sched;
    struct corio__timer timer = {.deadline = deadline, .idx = CORIO__TIMER_IDLE, .data = t};
    park_prepare(t, abort, obj);
    if (deadline >= 0 && corio__heap_push(&s->timers, &timer) != 0 && abort)
        abort(t, -ENOMEM);
    if (to) {
        CORIO__ASSERT(!to->queued && to->state != CORIO__T_RUNNING);
        to->abort = NULL;
        corio__switch_to(t->sched, &t->ctx, &t->asan_fake, to);
    } else {
        corio__suspend(t);
    }
    corio__heap_remove(&s->timers, &timer); /* still in the heap unless it fired */
    t->abort = NULL;
    t->wait_obj = NULL;
    return t->wake_res;
}

int corio__park(struct corio__task *t, int64_t deadline, corio__abort_fn *abort, void *obj)
{
    park_prepare(t, abort, obj);
    /* A wait that ends after the task's own deadline needs no timer of its own. */
    if (deadline >= 0 && (t->deadline_at < 0 || deadline < t->deadline_at))
        return park_timed(t, deadline);
    corio__suspend(t);
    t->abort = NULL;
    t->wait_obj = NULL;
    return t->wake_res;
}

void corio__task_cancel(struct corio__task *t)
{
    t->cancelled = true;
    if (t->state == CORIO__T_WAITING && t->abort)
        t->abort(t, -ECANCELED);
}

/* The part of corio__task_set_deadline that sets a deadline (@deadline >= 0). */
void corio__task_arm_deadline(struct corio__task *t, int64_t deadline)
{
    struct corio__heap *h = &t->sched->timers;
    if (deadline <= corio_now()) {
        t->expired = true;
        return;
    }
    if (t->deadline.idx != CORIO__TIMER_IDLE) {
        if (t->deadline.deadline <= deadline)
            return; /* armed earlier: it fires, and is armed again for this one */
        t->deadline.deadline = deadline;
        corio__heap_up(h, &t->deadline);
        return;
    }
    t->deadline.deadline = deadline;
    if (corio__heap_push(h, &t->deadline) != 0)
        t->expired = true; /* no memory for the timer: fail the waits rather than wait forever */
}

int corio__wait_check(struct corio__task **out, int64_t deadline)
{
    struct corio__task *t = corio__tls_task;
    if (!t)
        return -EPERM;
    if (t->cancelled)
        return -ECANCELED;
    if (t->expired || (deadline >= 0 && deadline <= corio_now()))
        return -ETIMEDOUT;
    *out = t;
    return 0;
}

void corio__sched_fire_timers(struct corio__sched *s)
{
    int64_t now = corio_now();
    struct corio__timer *tm;
    while ((tm = corio__heap_top(&s->timers)) && tm->deadline <= now) {
        corio__heap_remove(&s->timers, tm);
        if (tm->call) {
            tm->fire(tm);
            continue;
        }
        struct corio__task *t = tm->data;
        if (tm == &t->deadline) {
            if (t->deadline_at < 0 || t->expired)
                continue; /* removed, or already expired, since the timer was armed */
            if (t->deadline_at > now) {
                /* Set later since it was armed: armed again. */
                tm->deadline = t->deadline_at;
                if (corio__heap_push(&s->timers, tm) != 0)
                    t->expired = true;
                else
                    continue;
            }
            t->expired = true;
        }
        if (t->state == CORIO__T_WAITING && t->abort)
            t->abort(t, -ETIMEDOUT);
    }
}

int corio_yield(void)
{
    struct corio__task *t = corio__tls_task;
    if (!t)
        return -EPERM;
    if (t->cancelled)
        return -ECANCELED;
    corio__make_ready(t);
    corio__suspend(t);
    return 0;
}

/* ---- wait queues ------------------------------------------------------------------------------ */

static void waitq_abort(struct corio__task *t, int why)
{
    struct corio__waiter *w = t->wait_obj;
    corio__list_remove(&w->link);
    corio__unpark(t, why);
}

int corio__waitq_wait(struct corio__list *q, struct corio__task *t, int64_t deadline)
{
    struct corio__waiter w = {.t = t};
    corio__list_push_back(corio__waitq(q), &w.link);
    int r = corio__park(t, deadline, waitq_abort, &w);
    corio__list_remove(&w.link); /* a no-op when the waker or the abort already unlinked it */
    return r;
}

struct corio__task *corio__waitq_wake(struct corio__list *q, int res)
{
    struct corio__list *n = corio__list_pop_front(corio__waitq(q));
    if (!n)
        return NULL;
    struct corio__task *t = container_of(n, struct corio__waiter, link)->t;
    corio__unpark(t, res);
    return t;
}

void corio__waitq_wake_all(struct corio__list *q, int res)
{
    while (corio__waitq_wake(q, res))
        ;
}

/* ---- what a parked coroutine waits for (corio_loop_dump) --------------------------------------*/

const char *corio__waitq_wait_name(corio__abort_fn *a)
{
    return a == waitq_abort ? "a mutex, semaphore, wait group, event, group or buffer ring" : NULL;
}
