/* The stall detector (stall.c): a watchdog thread beside a running loop that sees the loop's
 * iteration count stand still, outside its waits in the kernel, for longer than
 * corio_loop_opts.stall_ms, and has the loop's thread report the coroutine that ran and its
 * backtrace. The loop's side is two inline hooks that cost one predicted branch when it is off. */
#ifndef CORIO_STALL_H
#define CORIO_STALL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base.h"

struct corio_loop;

/* One loop's detector, made by corio__stall_start while the loop runs. */
struct corio__stall {
    _Atomic uint64_t seq;        /* bumped by the loop at every iteration and kernel wait: the
                                    watchdog sees progress as a change (single writer: the loop) */
    _Atomic bool idle;           /* the loop waits in the kernel (till the next iteration) */
    _Atomic bool asked;          /* the watchdog signalled a report that the handler has not made */
    _Atomic int64_t ran_ns;      /* how long the iteration had run when the report was asked */
    _Atomic uint64_t suppressed; /* stalls not reported since the last report (rate limit) */
    unsigned threshold_ms;       /* the option */
    struct corio_loop *loop;     /* the loop watched */
    pthread_t loop_thread;       /* the thread that runs it, which the signal goes to */
    pthread_t watchdog;          /* the watching thread */
    pthread_mutex_t lock;        /* guards stop, with cond */
    pthread_cond_t cond;         /* wakes the watchdog to stop */
    bool stop;                   /* the loop stopped running: the watchdog ends */
};

/* Starts watching @l (its opts.stall_ms is not 0) from the thread about to run it, and sets
 * l->stall. Returns 0 or -errno (-ENOMEM, a thread that could not start); the loop then runs
 * unwatched. */
int corio__stall_start(struct corio_loop *l, struct corio__stall **out, unsigned threshold_ms);

/* Stops and frees the detector. Returns nothing. */
void corio__stall_stop(struct corio__stall *s);

/* The loop made progress: a new iteration, which ends any wait in the kernel. */
static inline void corio__stall_progress(struct corio__stall *s)
{
    if (unlikely(s != NULL)) {
        uint64_t v = atomic_load_explicit(&s->seq, memory_order_relaxed);
        /* Relaxed: the watchdog needs to see the values change, not anything ordered with them. */
        atomic_store_explicit(&s->seq, v + 1, memory_order_relaxed);
        atomic_store_explicit(&s->idle, false, memory_order_relaxed);
    }
}

/* The loop is about to wait in the kernel, until the next iteration. */
static inline void corio__stall_idle(struct corio__stall *s)
{
    if (unlikely(s != NULL))
        atomic_store_explicit(&s->idle, true, memory_order_relaxed);
}

#endif
