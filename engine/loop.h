/* The scheduler and the structures every layer above it shares: the loop, the coroutine's
 * scheduling state, and the future the CQE drain resolves. */
#ifndef CORIO_LOOP_H
#define CORIO_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "corio.h"
#include "ctx.h"
#include "heap.h"
#include "internal.h"
#include "list.h"
#include "ring.h"
#include "stack.h"

struct corio_coro;

/* Aborts the wait @co is parked in, for @why: -ECANCELED (corio_cancel) or -ETIMEDOUT (the wait's
 * deadline). It either wakes @co with corio__unpark, or arranges for the wake to come later (an
 * op cancelled in the kernel still delivers its CQE). */
typedef void corio__abort_fn(struct corio_coro *co, int why);

/* A pending operation's completion record: the layout behind struct corio_future. The SQE's
 * user_data is its address (tag 0) and, with a deadline, its linked timeout's (tag 1). */
struct corio__future {
    int64_t res;               /* the result once done: the CQE's res, mapped (see op.c) */
    struct corio_coro *owner;  /* the coroutine that started it, on whose stack it lives */
    struct corio__list link;   /* in owner->inflight while pending */
    struct corio__ts ts;       /* the absolute deadline the kernel reads at submission */
    struct corio__op op;       /* the op, kept to submit it again after a transient -EAGAIN */
    uint32_t cqe_flags;        /* the op CQE's flags */
    uint8_t state;             /* CORIO__F_IDLE, _PENDING or _DONE */
    uint8_t pending;           /* CQEs still to come: 1, or 2 with a linked timeout */
    uint8_t flags;             /* CORIO__FF_* */
    uint8_t kind;              /* CORIO__FK_*: how the result is mapped */
    uint8_t retries;           /* times it was submitted again after -EAGAIN */
};
_Static_assert(sizeof(struct corio__future) <= sizeof(struct corio_future), "grow corio_future");
_Static_assert(_Alignof(struct corio__future) <= _Alignof(struct corio_future), "align");

enum { CORIO__F_IDLE = 0, CORIO__F_PENDING = 1, CORIO__F_DONE = 2 };

#define CORIO__FF_AWAITED 0x1u    /* its owner is parked waiting for it */
#define CORIO__FF_CANCELLED 0x2u  /* an async cancel was sent for it */
#define CORIO__FF_TIMED_OUT 0x4u  /* its linked timeout fired (-ETIME) */
#define CORIO__FF_LINKED 0x8u     /* submitted with a linked timeout (a deadline) */

enum {
    CORIO__FK_OP = 0,    /* an ordinary op */
    CORIO__FK_CLOSE = 1, /* close: not cancellable */
    CORIO__FK_SLEEP = 2, /* a timeout op: -ETIME means it expired, which is success */
};

/* Tags in the low bits of user_data (futures are 8-aligned). user_data 0 is never dispatched. */
#define CORIO__UD_FUTURE 0u
#define CORIO__UD_LINK 1u
#define CORIO__UD_HANDLER 2u
#define CORIO__UD_WAKE 3u
#define CORIO__UD_TAG_MASK 7u

/* A completion consumer other than a future (multishot ops): the drain calls fn with each CQE
 * whose user_data is the handler's address tagged CORIO__UD_HANDLER. A handler lives in its
 * owner coroutine's frame like a future. If the owner ends while the handler is linked, cancel
 * runs (on the scheduler's stack): it sends the async cancel, or, when already disarmed, releases
 * what the handler holds and unlinks it; fn does the same on its last CQE when the owner is
 * a zombie. The owner's stack is freed once no handler and no future remains. */
struct corio__handler;
typedef void corio__handler_fn(struct corio__handler *h, int32_t res, uint32_t flags);
struct corio__handler {
    corio__handler_fn *fn;                    /* the CQE consumer */
    void (*cancel)(struct corio__handler *h); /* disarm without waiting (owner gone) */
    struct corio_coro *owner;                 /* the coroutine on whose stack it lives */
    struct corio__list link;                  /* in owner->handlers while armed or holding */
};

enum {
    CORIO__CO_READY = 1,   /* on the run queue (or about to be) */
    CORIO__CO_RUNNING = 2, /* the current coroutine */
    CORIO__CO_WAITING = 3, /* parked: woken by a completion, a wake, a timer or a cancel */
    CORIO__CO_DONE = 4,    /* returned; the scheduler finishes it off its stack */
    CORIO__CO_ZOMBIE = 5,  /* returned with ops in flight: its stack waits for their CQEs */
};

/* A group of coroutines (the layout behind struct corio_group). Zeroed storage is a valid empty
 * group: its lists are set up on first use. */
struct corio__group {
    struct corio__list members; /* live members, through corio_coro.group_link */
    struct corio__list waiters; /* coroutines in corio_group_wait */
    size_t n;                   /* live members */
    int first_error;            /* the first negative result of a member */
    unsigned flags;             /* CORIO_GROUP_* */
    bool cancelling;            /* corio_group_cancel was called: new members start cancelled */
};

/* The fields the hot path touches (switch, park, wake, run queue) come first and fit one cache
 * line; the struct sits at the top of the coroutine's own stack, right above its live frames. */
struct corio_coro {
    struct corio__ctx ctx;        /* saved stack pointer while not running */
    struct corio_loop *loop;      /* the loop it runs on */
    struct corio__list runq;      /* in loop->runq while READY */
    corio__abort_fn *abort;       /* how to abort the current wait; NULL if it cannot be */
    void *wait_obj;               /* the object of the current wait, for abort */
    int wake_res;                 /* what the waker passed to corio__unpark */
    uint32_t wait_need;           /* completions of awaited futures still needed to wake */
    uint8_t state;                /* CORIO__CO_* */
    bool cancelled;               /* corio_cancel was called: waits fail with -ECANCELED */
    bool queued;                  /* on the run queue */
    /* -- second cache line -- */
    struct corio__timer *timer;   /* the current wait's deadline timer, or NULL */
    struct corio__list inflight;  /* its pending futures */
    struct corio__list handlers;  /* its armed multishot handlers (struct corio__handler) */
    struct corio__stack *stack;   /* its stack; this struct lives at the top of it */
    int result;                   /* the body's return value, once DONE */
    uint32_t slot;                /* index in loop->slots */
    /* -- cold -- */
    struct corio__list all;       /* in loop->all while alive */
    struct corio__group *group;   /* its group, or NULL (the loop's root) */
    struct corio__list group_link; /* in group->members */
    corio_fn *fn;                 /* body */
    void *arg;                    /* body's argument */
    void *asan_fake;              /* AddressSanitizer's fake stack while switched out */
    void *tsan_fiber;             /* ThreadSanitizer's fiber for this coroutine */
};
_Static_assert(offsetof(struct corio_coro, timer) == 64, "keep the hot fields in one cache line");

/* One entry per coroutine handle: gen and index make up its corio_id. */
struct corio__slot {
    struct corio_coro *co;     /* the coroutine while alive, NULL once it ended */
    struct corio_coro *joiner; /* the coroutine parked in corio_join on it */
    uint32_t gen;              /* bumped on every reuse of the slot: stale ids do not match */
    uint32_t next_free;        /* free-list link (index + 1, 0 = end) */
    int result;                /* its return value once ended */
    uint8_t state;             /* CORIO__SLOT_* */
};

enum { CORIO__SLOT_FREE = 0, CORIO__SLOT_LIVE = 1, CORIO__SLOT_ENDED = 2 };
#define CORIO__SLOT_DETACHED 0x80u /* or'd into state: reclaim on end */

#define CORIO__REAP_BATCH 64

struct corio_loop {
    struct corio__ring *ring;      /* the io_uring */
    const struct corio__ring_view *view; /* the ring's counters, for inline checks */
    struct corio_coro *current;    /* the running coroutine, or NULL in the scheduler */
    struct corio__ctx sched;       /* the scheduler's context while a coroutine runs */
    struct corio__list runq;       /* READY coroutines, FIFO: they run next iteration */
    struct corio__list batch;      /* the READY coroutines this iteration is running */
    struct corio__list all;        /* every live coroutine */
    struct corio__heap timers;     /* deadlines of parked waits */
    struct corio__stack_pool stacks;
    struct corio__slot *slots;     /* coroutine handles, indexed by the id's low half */
    uint32_t n_slots;              /* slots in use or freed */
    uint32_t cap_slots;            /* capacity of slots */
    uint32_t free_slot;            /* free-list head (index + 1, 0 = none) */
    size_t live;                   /* coroutines alive */
    size_t inflight;               /* CQEs the futures still expect */
    uint64_t features;             /* 1 << CORIO_FEAT_x */
    struct corio_stats stats;      /* counters (corio_stats) */
    struct corio_loop_opts opts;   /* options with defaults filled in */
    pthread_t owner;               /* the creating thread: the only one that may run it */
    bool running;                  /* inside corio_loop_run */
    bool stopping;                 /* corio_loop_stop: new coroutines start cancelled */
    bool deadlock;                 /* everything was parked with nothing that could wake it */
    unsigned wake_armed;           /* fallback timeout SQEs (no EXT_ARG) in flight */
    bool buffers_registered;       /* corio_buffers_register is in effect */
    uint16_t next_bgid;            /* the next provided-buffer group id to hand out */
    unsigned deadlock_breaks;      /* consecutive deadlock breaks without progress */
    unsigned batch_avg;            /* CQEs per idle wake-up, moving average, in 16ths */
    uint32_t fixed_used;           /* slots of the fixed file table holding accepted sockets */
    struct corio__list fixed_waiters; /* acceptors waiting for a free fixed slot */
    struct corio__ts wake_ts;      /* the last one's deadline, read by the kernel at submit */
    int64_t wake_deadline;         /* one in flight for sure fires by then; INT64_MAX: unknown */
    const void *sched_lo;          /* the scheduler's stack (the thread's), for ASan */
    size_t sched_size;             /* its size */
    void *asan_sched_fake;         /* ASan's fake stack of the scheduler while switched out */
    void *tsan_sched;              /* TSan's fiber of the scheduler */
    struct corio__cqe cqes[CORIO__REAP_BATCH]; /* reap buffer */
};

/* The calling thread's current coroutine (NULL outside coroutines) and running loop. */
extern CORIO__TLS struct corio_coro *corio__tls_co;
extern CORIO__TLS struct corio_loop *corio__tls_loop;

/* Parks the current coroutine @co until corio__unpark. @abort (may be NULL) is called on cancel or
 * when @deadline (absolute, or CORIO_FOREVER) passes. Returns the waker's result. */
int corio__park(struct corio_coro *co, int64_t deadline, corio__abort_fn *abort, void *obj);

/* Parks the current coroutine @co like corio__park (no deadline) and hands the thread straight
 * to @to, a parked or new coroutine that is not on the run queue, without a trip through the
 * scheduler; @to's park returns what was left in its wake_res. With @to NULL it is corio__park.
 * Returns the waker's result. */
int corio__park_switch(struct corio_coro *co, struct corio_coro *to, corio__abort_fn *abort,
                       void *obj);

/* Makes a parked @co runnable; its corio__park returns @res. A no-op unless @co is parked. */
void corio__unpark(struct corio_coro *co, int res);

/* Puts @co on the run queue (if not already there). */
void corio__make_ready(struct corio_coro *co);

/* Switches from the running coroutine @co to the scheduler; returns when @co is resumed. */
void corio__suspend(struct corio_coro *co);

/* A parked coroutine in a wait queue; lives in the waiter's frame. */
struct corio__waiter {
    struct corio__list link; /* in the queue */
    struct corio_coro *co;   /* the parked coroutine */
};

/* Queues live in zeroed caller storage: a list whose next is NULL is an empty, unset list. */
static inline struct corio__list *corio__waitq(struct corio__list *q)
{
    if (unlikely(!q->next))
        corio__list_init(q);
    return q;
}

/* The checks every wait makes before parking. Returns the current coroutine in *out and 0, or
 * -EPERM (outside a coroutine), -ECANCELED, -ETIMEDOUT (@deadline already past). */
int corio__wait_check(struct corio_coro **out, int64_t deadline);

/* Parks the current coroutine @co at the tail of @q until a corio__waitq_wake or its deadline
 * or cancel. Returns the waker's result, -ETIMEDOUT or -ECANCELED. */
int corio__waitq_wait(struct corio__list *q, struct corio_coro *co, int64_t deadline);

/* Wakes the first waiter of @q with @res. Returns the woken coroutine, or NULL if none. */
struct corio_coro *corio__waitq_wake(struct corio__list *q, int res);

/* A slot of the fixed file table was freed: count it and wake an acceptor waiting for one. */
void corio__fixed_release(struct corio_loop *l);

/* Cancels @co: flags it and aborts its current wait. */
void corio__cancel(struct corio_coro *co);

/* Ends a zombie @co once its last future and handler are done; a no-op before that. */
void corio__zombie_check(struct corio_coro *co);

/* Cancels every member of @g (now and later spawned ones). Returns the number cancelled. */
int corio__group_cancel(struct corio__group *g);

/* Returns slot @idx to the free list, bumping its generation. */
void corio__slot_free(struct corio_loop *l, uint32_t idx);

/* Entry point of every coroutine (coro.c). */
void corio__coro_main(void *arg);

#endif
