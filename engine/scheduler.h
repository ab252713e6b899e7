/* The scheduler: switching between coroutines and the loop, the run queue, parking and waking,
 * wait queues, and the timers of parked waits (scheduler.c). It knows a coroutine only by its struct
 * corio__task, the part of it that runs, queues and waits; what a coroutine owns and how it ends
 * is coro.h's business. */
#ifndef CORIO_SCHEDULER_H
#define CORIO_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "ctx.h"
#include "heap.h"
#include "list.h"
#include "stack.h"

#ifdef CORIO__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CORIO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

struct corio__task;
struct corio_loop;

/* Aborts the wait @t is parked in, for @why: -ECANCELED (a cancel) or -ETIMEDOUT (the wait's or
 * the task's deadline). It either wakes @t with corio__unpark, or arranges for the wake to come
 * later (an op cancelled in the kernel still delivers its CQE). */
typedef void corio__abort_fn(struct corio__task *t, int why);

enum {
    CORIO__T_READY = 1,   /* on the run queue (or about to be) */
    CORIO__T_RUNNING = 2, /* the current task */
    CORIO__T_WAITING = 3, /* parked: woken by a completion, a wake, a timer or a cancel */
    CORIO__T_DONE = 4,    /* its body returned; the scheduler's caller finishes it */
    CORIO__T_ZOMBIE = 5,  /* ended with ops in flight: never runs again (coro.c) */
};

/* What the scheduler keeps of a coroutine. The fields a switch, a park and a wake touch come
 * first and fit one cache line; the struct sits at the top of the coroutine's own stack, right
 * above its live frames. */
struct corio__task {
    struct corio__ctx ctx;       /* saved stack pointer while not running */
    struct corio__sched *sched;  /* the scheduler it runs on */
    struct corio__list runq;     /* in sched->runq or sched->batch while READY */
    corio__abort_fn *abort;      /* how to abort the current wait; NULL if it cannot be */
    void *wait_obj;              /* the object of the current wait, for abort */
    int wake_res;                /* what the waker passed to corio__unpark */
    uint32_t wait_need;          /* completions of awaited futures still needed to wake it: kept
                                    here, for future.c, because each completion touches it */
    uint8_t state;               /* CORIO__T_* */
    bool cancelled;              /* cancelled: its waits fail with -ECANCELED */
    bool queued;                 /* on the run queue */
    bool expired;                /* its own deadline passed: its waits fail with -ETIMEDOUT */
    uint8_t idle;                /* CORIO__IDLE_*: how a drain of its loop ends its waits (coro.h) */
    /* -- second cache line -- */
    struct corio__stack *stack;  /* its stack; the task lives at the top of it */
    struct corio__timer deadline; /* the timer of its own deadline: in the heap, armed no later
                                    than deadline_at, while deadline_at is set (see
                                    corio__task_set_deadline); it may stay armed after */
    int64_t deadline_at;         /* its own deadline (corio__task_set_deadline), or
                                    CORIO_FOREVER */
    union {                      /* one slot: the two sanitizers never build together */
        void *asan_fake;         /* AddressSanitizer's fake stack while switched out */
        void *tsan_fiber;        /* ThreadSanitizer's fiber for this task */
    };
};
_Static_assert(offsetof(struct corio__task, stack) == 64, "keep the hot fields in one cache line");

/* One loop's scheduler. */
struct corio__sched {
    struct corio__task *current; /* the running task, or NULL in the scheduler */
    struct corio__ctx ctx;       /* the scheduler's context while a task runs */
    struct corio__list runq;     /* READY tasks, FIFO: they run in the next batch */
    struct corio__list batch;    /* the READY tasks the current batch is running */
    struct corio__heap timers;   /* deadlines of parked waits and of tasks */
    uint64_t *switches;          /* the loop's switch counter (struct corio_stats) */
    const void *stack_lo;        /* the scheduler's stack (the thread's), for ASan */
    size_t stack_size;           /* its size */
    void *asan_fake;             /* ASan's fake stack of the scheduler while switched out */
    void *tsan_fiber;            /* TSan's fiber of the scheduler */
};

/* The calling thread's running task (NULL outside coroutines) and running loop (NULL outside
 * corio_loop_run). The scheduler keeps the loop's pointer without looking into it. */
extern CORIO__TLS struct corio__task *corio__tls_task;
extern CORIO__TLS struct corio_loop *corio__tls_loop;

/* Sets up @s, counting switches into *@switches. Returns nothing. */
void corio__sched_init(struct corio__sched *s, uint64_t *switches);

/* Frees what @s allocated (the timer heap). Returns nothing. */
void corio__sched_fini(struct corio__sched *s);

/* Makes the calling thread the one that runs @s (for the sanitizers: its own stack and fiber).
 * Returns nothing. */
void corio__sched_enter(struct corio__sched *s);

/* Prepares @t to run entry(arg) on @stack, with the task itself at @top (the stack starts below
 * it), parked until it is made ready or switched to. Returns nothing. */
void corio__task_init(struct corio__task *t, struct corio__sched *s, struct corio__stack *stack,
                      void *top, corio__ctx_entry *entry, void *arg);

/* Releases what the sanitizers keep for @t. Returns nothing. */
void corio__task_fini(struct corio__task *t);

/* Starts a batch: the tasks ready now (and only those) are what corio__sched_pop hands out.
 * Returns nothing. */
static inline void corio__sched_batch(struct corio__sched *s)
{
    corio__list_splice(&s->batch, &s->runq);
}

/* Returns the next task of the batch, taken off the run queue, or NULL when it is done. */
static inline struct corio__task *corio__sched_pop(struct corio__sched *s)
{
    struct corio__list *n = corio__list_pop_front(&s->batch);
    if (!n)
        return NULL;
    struct corio__task *t = container_of(n, struct corio__task, runq);
    t->queued = false;
    return t;
}

/* True when no task is ready. */
static inline bool corio__sched_idle(const struct corio__sched *s)
{
    return corio__list_empty(&s->runq);
}

/* ---- switching and waking: inline, since every op's completion and every switch runs them -------- */

/* Puts @t on the run queue (if not already there). */
static inline void corio__make_ready(struct corio__task *t)
{
    if (t->queued)
        return;
    t->queued = true;
    t->state = CORIO__T_READY;
    corio__list_push_back(&t->sched->runq, &t->runq);
}

/* Makes a parked @t runnable; its corio__park returns @res. A no-op unless @t is parked. */
static inline void corio__unpark(struct corio__task *t, int res)
{
    if (t->state != CORIO__T_WAITING)
        return;
    t->wake_res = res;
    t->abort = NULL;
    corio__make_ready(t);
}

/* Every context switch goes through here, so that the sanitizers hear of each one: ASan must know
 * which stack is live (or it reports false stack-buffer errors), TSan which fiber runs. @from_fake
 * is where ASan parks the fake stack of the flow being left; NULL means that flow never resumes. */
static inline void corio__do_switch(struct corio__sched *s, struct corio__ctx *from, void **from_fake,
                             struct corio__ctx *to, const void *to_lo, size_t to_size,
                             void *to_tsan)
{
    (*s->switches)++;
#ifdef CORIO__ASAN
    __sanitizer_start_switch_fiber(from_fake, to_lo, to_size);
#else
    (void)from_fake;
    (void)to_lo;
    (void)to_size;
#endif
#ifdef CORIO__TSAN
    __tsan_switch_to_fiber(to_tsan, 0);
#else
    (void)to_tsan;
#endif
    if (from == &s->ctx)
        corio__ctx_resume(from, to);
    else
        corio__ctx_switch(from, to);
#ifdef CORIO__ASAN
    __sanitizer_finish_switch_fiber(from_fake ? *from_fake : NULL, NULL, NULL);
#endif
}

static inline void corio__switch_to(struct corio__sched *s, struct corio__ctx *from, void **from_fake,
                             struct corio__task *to)
{
    to->state = CORIO__T_RUNNING;
    s->current = to;
    corio__tls_task = to;
    corio__do_switch(s, from, from_fake, &to->ctx, to->stack->lo, (size_t)(to->stack->hi - to->stack->lo),
              to->tsan_fiber);
}

/* Runs @t until a task switches back to the scheduler (not always @t: tasks hand the thread to
 * each other with corio__park_switch). Returns that task; if its state is CORIO__T_DONE, its body
 * has returned and the caller must finish it. */
static inline struct corio__task *corio__sched_resume(struct corio__sched *s,
                                                     struct corio__task *t)
{
    corio__switch_to(s, &s->ctx, &s->asan_fake, t);
    struct corio__task *back = s->current;
    s->current = NULL;
    corio__tls_task = NULL;
    return back;
}

/* Switches from the running task @t to the scheduler; returns when @t is resumed. */
static inline void corio__suspend(struct corio__task *t)
{
    struct corio__sched *s = t->sched;
    /* Always back to the scheduler: a direct hand-off to the next task of the batch was measured
     * slower (bm_op, 256 coroutines: 0.33x vs 0.40x of raw liburing), as the scheduler's resume
     * is the better-predicted path. A finished task passes no fake-stack slot: ASan frees it,
     * it will never run again. */
    corio__do_switch(s, &t->ctx, t->state == CORIO__T_DONE ? NULL : &t->asan_fake, &s->ctx, s->stack_lo,
              s->stack_size, s->tsan_fiber);
}

/* Parks the running task @t until corio__unpark. @abort (may be NULL) is called on cancel, or
 * when @deadline (absolute, or CORIO_FOREVER) or the task's own deadline passes. Returns the
 * waker's result. */
int corio__park(struct corio__task *t, int64_t deadline, corio__abort_fn *abort, void *obj);

/* Parks the running task @t like corio__park and hands the thread straight to @to, a parked or new
 * task that is not on the run queue, without a trip through the scheduler; @to's park returns what
 * was left in its wake_res. With @to NULL it is corio__park. Returns the waker's result. */
int corio__park_switch(struct corio__task *t, struct corio__task *to, int64_t deadline,
                       corio__abort_fn *abort, void *obj);

/* Cancels @t: flags it and aborts its current wait. Returns nothing. */
void corio__task_cancel(struct corio__task *t);

/* Arms @t's deadline timer for @deadline (>= 0): the slow part of corio__task_set_deadline. */
void corio__task_arm_deadline(struct corio__task *t, int64_t deadline);

/* Sets @t's own deadline (absolute, or CORIO_FOREVER for none): once it passes, its current wait
 * is aborted with -ETIMEDOUT and its later waits fail at once, until the deadline is set again.
 * O(1) unless the deadline moves earlier than the armed timer: a server that sets a later deadline
 * per request, or removes it, leaves the timer where it is, and the timer, when it fires, is
 * armed again for the deadline then set, or dropped. Returns nothing. */
static inline void corio__task_set_deadline(struct corio__task *t, int64_t deadline)
{
    t->expired = false;
    t->deadline_at = deadline < 0 ? CORIO_FOREVER : deadline;
    /* Removing the deadline only clears it: an armed timer fires once more and finds nothing to
     * do. Inline, as servers remove theirs after every request. */
    if (deadline >= 0)
        corio__task_arm_deadline(t, deadline);
}

/* The checks every wait makes before parking. Returns the running task in *out and 0, or -EPERM
 * (outside a coroutine), -ECANCELED, -ETIMEDOUT (@deadline or the task's own already past). */
int corio__wait_check(struct corio__task **out, int64_t deadline);

/* Fires the timers whose deadline has passed: each aborts its wait with -ETIMEDOUT, or, with call
 * set, runs its function (a future's deadline on the virtual clock, future.c). Returns nothing. */
void corio__sched_fire_timers(struct corio__sched *s);

/* Returns the earliest timer's deadline, or -1 if no timer is set. */
static inline int64_t corio__sched_next_timer(const struct corio__sched *s)
{
    const struct corio__timer *t = corio__heap_top(&s->timers);
    return t ? t->deadline : -1;
}

/* ---- wait queues ------------------------------------------------------------------------------ */

/* A parked task in a wait queue; lives in the waiter's frame. */
struct corio__waiter {
    struct corio__list link; /* in the queue */
    struct corio__task *t;   /* the parked task */
};

/* Queues live in zeroed caller storage: a list whose next is NULL is an empty, unset list. */
static inline struct corio__list *corio__waitq(struct corio__list *q)
{
    if (unlikely(!q->next))
        corio__list_init(q);
    return q;
}

/* Parks the running task @t at the tail of @q until a corio__waitq_wake, its deadline or a
 * cancel. Returns the waker's result, -ETIMEDOUT or -ECANCELED. */
int corio__waitq_wait(struct corio__list *q, struct corio__task *t, int64_t deadline);

/* Wakes the first waiter of @q with @res. Returns the woken task, or NULL if none. */
struct corio__task *corio__waitq_wake(struct corio__list *q, int res);

/* Wakes every waiter of @q with @res. Returns nothing. */
void corio__waitq_wake_all(struct corio__list *q, int res);

/* For the dump: what a task parked with abort function @a waits for, in words, when @a is a wait
 * queue's; else NULL. */
const char *corio__waitq_wait_name(corio__abort_fn *a);

#endif
