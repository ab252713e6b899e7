/* Coroutines: what one is and owns, its handle, its group, and its end of life (coro.c, with the
 * public group calls in group.c). The scheduler sees only the task inside it (scheduler.h). */
#ifndef CORIO_CORO_H
#define CORIO_CORO_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "list.h"
#include "op.h"
#include "scheduler.h"
#include "ticks.h"

struct corio_coro;
struct corio_loop;

/* Something in flight that a coroutine owns in its own frame: a future, or a multishot handler
 * (an acceptor, a receiver). Its completion record receives the CQEs. The owner's stack is freed
 * only once none of them remains linked: if the owner ends first (a zombie), cancel runs, on the
 * scheduler's stack, and asks the kernel to stop or releases what the record holds; the record
 * unlinks itself with corio__pending_done once its last CQE is in (or, from cancel, when it holds
 * nothing in the kernel any more). */
struct corio__pending;
typedef void corio__pending_cancel_fn(struct corio__pending *p);
struct corio__pending {
    struct corio__completion c;        /* what the drain dispatches the CQEs to */
    corio__pending_cancel_fn *cancel;  /* its owner ended while it was linked */
    struct corio_coro *owner;          /* the coroutine in whose frame it lives */
    struct corio__list link;           /* in owner->pending while linked */
#ifndef CORIO_NO_INFLIGHT
    /* The in-flight table (corio_loop_dump): the pending lists of the loop's coroutines are the
     * table, so keeping it costs only these stamps, written when the record is submitted. */
    uint64_t since; /* corio__ticks() at submission */
    int32_t fd;     /* the op's fd (not kept for a future: see its op) */
    uint8_t opcode; /* enum corio__opcode, or CORIO__PENDING_BLOCKING (not for a future) */
#endif
};

/* The opcode of a pending record that is a call on corio_blocking's workers, not a kernel op. */
#define CORIO__PENDING_BLOCKING 0xffu

/* Stamps @p for the in-flight table as submitted now. A future's op is in the future itself
 * (corio__future_of_pending), so this is all a future pays: every op takes this path. */
static inline void corio__pending_stamp_time(struct corio__pending *p)
{
#ifndef CORIO_NO_INFLIGHT
    p->since = corio__ticks();
#else
    (void)p;
#endif
}

/* Stamps @p, which is not a future, as op @opcode on @fd, submitted now. Returns nothing. */
static inline void corio__pending_stamp(struct corio__pending *p, uint8_t opcode, int32_t fd)
{
#ifndef CORIO_NO_INFLIGHT
    corio__pending_stamp_time(p);
    p->fd = fd;
    p->opcode = opcode;
#else
    (void)p;
    (void)opcode;
    (void)fd;
#endif
}

/* The room for a coroutine's name, its NUL included: corio_set_name keeps a copy, cut to fit. */
#define CORIO__NAME_MAX 24

/* A coroutine. The task comes first: the hot fields of both share the stack's top lines. */
struct corio_coro {
    struct corio__task t;          /* what the scheduler runs, queues and wakes */
    struct corio__list pending;    /* its futures and handlers in flight (struct corio__pending);
                                      in the task's second cache line, which ops touch anyway */
    struct corio_loop *loop;       /* the loop it runs on */
    uint32_t slot;                 /* index in the loop's slot table */
    int result;                    /* the body's return value, once it returned */
    /* -- cold -- */
    struct corio__list all;        /* in the loop's list of live coroutines */
    struct corio__group *group;    /* its group, or NULL (the loop's root) */
    struct corio__list group_link; /* in group->members */
    corio_fn *fn;                  /* body */
    void *arg;                     /* body's argument */
    const char *spawn_file;        /* where it was spawned (corio_spawn's macro), or NULL */
    int spawn_line;                /* and the line */
    char name[CORIO__NAME_MAX];    /* corio_set_name's copy, NUL-terminated; "" if unnamed */
};
_Static_assert(offsetof(struct corio_coro, pending) + sizeof(struct corio__list) <= 128,
               "keep the pending list in the task's second cache line");

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

/* A loop's coroutines: the handle table and the live ones. */
struct corio__coros {
    struct corio__slot *slots; /* coroutine handles, indexed by the id's low half */
    uint32_t n_slots;          /* slots in use or freed */
    uint32_t cap_slots;        /* capacity of slots */
    uint32_t free_slot;        /* free-list head (index + 1, 0 = none) */
    struct corio__list all;    /* every live coroutine */
    size_t live;               /* coroutines alive */
    bool stopping;             /* the loop is stopping: new coroutines start cancelled */
    bool draining;             /* the loop drains (drain.c): it accepts nothing more, and ends
                                  idle waits, until corio_loop_run returns */
    uint32_t lingering;        /* coroutines in a CORIO__IDLE_LAST wait (a signal wait) */
};

/* How a drain of the loop ends a coroutine's waits (corio__task.idle). */
enum {
    CORIO__IDLE_NO = 0,   /* a drain leaves its waits alone */
    CORIO__IDLE_NOW = 1,  /* its wait ends with -ESHUTDOWN when a drain starts (corio_set_idle) */
    CORIO__IDLE_LAST = 2, /* its wait ends with -ESHUTDOWN once, in a drain, only such waits are
                             left (a signal wait: the program's way to hear of the next stop) */
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

/* The coroutine whose task is @t. */
static inline struct corio_coro *corio__coro_of(struct corio__task *t)
{
    return container_of(t, struct corio_coro, t);
}

/* The calling thread's running coroutine, or NULL outside coroutines. */
static inline struct corio_coro *corio__self(void)
{
    struct corio__task *t = corio__tls_task;
    return t ? corio__coro_of(t) : NULL;
}

/* Creates a coroutine (see corio_spawn) in group @g (may be NULL). If @ready it goes on the run
 * queue; otherwise it stays parked, never run, until someone switches to it (generators). Returns
 * it, or NULL with *err set. */
struct corio_coro *corio__spawn(struct corio_loop *l, corio_fn *fn, void *arg, corio_id *out,
                                struct corio__group *g, bool ready, int *err);

/* Returns the handle of live coroutine @co. */
corio_id corio__coro_id(const struct corio_coro *co);

/* Returns the live coroutine behind @id on @l, or NULL if it ended or @id is stale. */
struct corio_coro *corio__coro_lookup(struct corio_loop *l, corio_id id);

/* The body of @co returned (its task is CORIO__T_DONE): ends it now, or makes it a zombie that
 * ends once its pending records are done. Called on the scheduler's stack. Returns nothing. */
void corio__coro_finish(struct corio_coro *co);

/* Cancels every live coroutine of @l, and those spawned from now on until the loop stops
 * running. Returns nothing. */
void corio__coro_cancel_all(struct corio_loop *l);

/* Ends with -ESHUTDOWN the current wait of every coroutine of @l whose idle mark is @kind, and
 * clears the mark: the drain's wake-up is once. Returns nothing. */
void corio__coro_shutdown_idle(struct corio_loop *l, uint8_t kind);

/* Stack bytes each coroutine spends before its body runs (its struct and the sanitizers' gap): the
 * loop adds them to the usable size asked for. */
size_t corio__coro_overhead(void);

/* Frees the handle table. Returns nothing. */
void corio__coros_fini(struct corio__coros *cs);

/* Reclaims the stacks of coroutines that can never run again (a deadlock nothing can break: no
 * op is in flight, so no kernel write can land in them). Returns nothing. */
void corio__coro_reclaim_all(struct corio_loop *l);

/* Links @p into its owner's pending list (p->owner set). Returns nothing. */
static inline void corio__pending_add(struct corio__pending *p)
{
    corio__list_push_back(&p->owner->pending, &p->link);
}

/* Ends a zombie @co once nothing is left pending. Returns nothing. */
void corio__coro_zombie_check(struct corio_coro *co);

/* Unlinks @p, whose last CQE is in; a zombie owner with nothing left pending ends now (its stack,
 * where @p lives, may be reused: do not touch @p afterwards). Returns nothing. */
static inline void corio__pending_done(struct corio__pending *p)
{
    struct corio_coro *co = p->owner;
    corio__list_remove(&p->link);
    if (unlikely(co->t.state == CORIO__T_ZOMBIE))
        corio__coro_zombie_check(co);
}

/* Parks @t, the owner of a multishot handler (a poller), until the handler's next CQE: *@waiter
 * holds @t meanwhile, for the CQE to unpark. If @abortable, a cancel or @deadline (or @t's own)
 * ends the wait too, clearing *@waiter first so that a later CQE wakes nobody; a wait for the
 * last CQE before the owner's frame may go is not abortable. Returns the waker's result. */
int corio__pending_park(struct corio__task **waiter, struct corio__task *t, int64_t deadline,
                        bool abortable);

/* Cancels every member of @g (now and later spawned ones). Returns the number cancelled. */
int corio__group_cancel(struct corio__group *g);

/* For the dump: "a coroutine to end (join)" when @a is a join's abort function; else NULL. */
const char *corio__coro_wait_name(corio__abort_fn *a);

#endif
