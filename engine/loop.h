/* The loop: what one loop owns, assembled from the parts each module keeps of it (its I/O, its
 * scheduler, its stacks, its coroutines), and the driver that runs them (loop.c). The struct is
 * the shared context of the modules above the scheduler; the modules below it (op, sched, stack,
 * ring) see only their own part. */
#ifndef CORIO_LOOP_H
#define CORIO_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "coro.h"
#include "list.h"
#include "metrics.h"
#include "op.h"
#include "remote.h"
#include "scheduler.h"
#include "stack.h"
#include "ticks.h"

struct corio__blocking;
struct corio__stall;

struct corio_loop {
    struct corio__sched sched;      /* run queue, switching, timers */
    struct corio__io io;            /* the backend and the completions in flight */
    struct corio__coros coros;      /* handles and live coroutines */
    struct corio__remote remote;    /* what other threads hand it */
    struct corio__stack_pool stacks; /* coroutine stacks */
    uint64_t features;              /* 1 << CORIO_FEAT_x, probed once */
    struct corio_stats stats;       /* counters (corio_stats) */
    struct corio_loop_opts opts;    /* options with defaults filled in */
    pthread_t owner;                /* the creating thread: the only one that may run it */
    bool running;                   /* inside corio_loop_run */
    bool deadlock;                  /* everything was parked with nothing that could wake it */
    bool buffers_registered;        /* corio_buffers_register is in effect */
    bool before_wait;               /* an idle wait has something to do first: spin on the SQ
                                       poller, or jump on the virtual clock (loop.c) */
    uint16_t next_bgid;             /* the next provided-buffer group id to hand out */
    unsigned batch_avg;             /* CQEs per idle wake-up, moving average, in 16ths */
    uint32_t fixed_used;            /* slots of the fixed file table holding accepted sockets */
    struct corio__list fixed_waiters; /* acceptors waiting for a free fixed slot */
    int64_t trim_at;                /* when the stack pool may next be trimmed */
    /* Without EXT_ARG (before 5.11) an idle wait cannot time out by itself: a timeout op of the
     * loop's own wakes it at the earliest timer. */
    struct corio__completion wake;  /* its completion record */
    unsigned wake_armed;            /* those timeout ops in flight */
    struct corio__ts wake_ts;       /* the last one's deadline, read by the kernel at submit */
    int64_t wake_deadline;          /* one in flight surely fires by then; INT64_MAX: unknown */
    struct corio__blocking *blocking; /* corio_blocking's worker pool (blocking.c), made on the
                                         first call; NULL until then */
    /* A drain's deadline (drain.c) is this stand-in's own deadline: a task that never runs,
     * parked for ever, whose abort stops the loop when the scheduler's timer for it fires. */
    struct corio__task drain_timer;
    /* -- seeing inside it (dump.c, stall.c) -- */
    struct corio__stall *stall;  /* the stall detector while it runs with one; NULL otherwise:
                                    the loop's hooks test it (stall.h) */
    struct corio__tick_ref born; /* the tick counter and the clock at creation: ages of ops in
                                    flight are counted in ticks and converted against it */
    struct corio__list registry; /* in the process's list of loops (dump.c) */
    struct corio__metrics metrics;  /* what readers on other threads see (metrics.c) */
};

/* corio_loop_new, with @refuse: CORIO_FEAT_ bits of setup flags to treat as refused by the kernel,
 * so that tests reach every fallback on any kernel. Returns as corio_loop_new. */
int corio__loop_new(struct corio_loop **out, const struct corio_loop_opts *opts, uint64_t refuse);

/* The loop that scheduler @s belongs to. */
static inline struct corio_loop *corio__loop_of_sched(struct corio__sched *s)
{
    return container_of(s, struct corio_loop, sched);
}

/* The loop task @t runs on. */
static inline struct corio_loop *corio__loop_of(const struct corio__task *t)
{
    return corio__loop_of_sched(t->sched);
}

/* True if feature @f was probed on @l. */
static inline bool corio__has(const struct corio_loop *l, enum corio_feature f)
{
    return l->features & (1ull << f);
}

/* True if the calling coroutine's loop has feature @f (false outside coroutines). */
static inline bool corio__here_has(enum corio_feature f)
{
    struct corio__task *t = corio__tls_task;
    return t && corio__has(corio__loop_of(t), f);
}

/* A slot of the fixed file table was freed: count it and wake an acceptor waiting for one. */
static inline void corio__fixed_release(struct corio_loop *l)
{
    if (l->fixed_used > 0)
        l->fixed_used--;
    corio__waitq_wake(&l->fixed_waiters, 0);
}

#endif
