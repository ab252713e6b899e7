/* Futures: the state of one started operation, in its owner's frame, and the blocking form every
 * operation is built on (future.c). */
#ifndef CORIO_FUTURE_H
#define CORIO_FUTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "coro.h"
#include "op.h"

/* The layout behind struct corio_future. Its completion record receives the op's CQEs (and its
 * linked timeout's); it is linked in its owner's pending list while the op is in flight. */
struct corio__future {
    struct corio__pending p;   /* completion record, owner, cancel hook */
    int64_t res;               /* the result once done: the CQE's res, mapped (future.c) */
    struct corio__ts ts;       /* the absolute deadline the kernel reads at submission */
    struct corio__op op;       /* the op, kept to submit it again after a transient -EAGAIN */
    uint32_t cqe_flags;        /* the op CQE's flags */
    uint8_t state;             /* CORIO__F_IDLE, _PENDING or _DONE */
    uint8_t pending;           /* CQEs still to come: 1, or 2 with a linked timeout */
    uint8_t flags;             /* CORIO__FF_* */
    uint8_t kind;              /* CORIO__FK_*: how the result is mapped */
    uint8_t retries;           /* times it was submitted again after -EAGAIN */
    struct corio__timer vt;    /* on the virtual clock: its deadline, in the scheduler's heap
                                  in place of a linked timeout (future.c); unused otherwise */
};
_Static_assert(sizeof(struct corio__future) <= sizeof(struct corio_future), "grow corio_future");
_Static_assert(_Alignof(struct corio__future) <= _Alignof(struct corio_future), "align");

enum { CORIO__F_IDLE = 0, CORIO__F_PENDING = 1, CORIO__F_DONE = 2 };

#define CORIO__FF_AWAITED 0x1u    /* its owner is parked waiting for it */
#define CORIO__FF_CANCELLED 0x2u  /* an async cancel was sent for it */
#define CORIO__FF_TIMED_OUT 0x4u  /* its deadline passed: its linked timeout fired (-ETIME), or
                                     its owner's own deadline aborted it */
#define CORIO__FF_LINKED 0x8u     /* submitted with a linked timeout (a deadline) */
#define CORIO__FF_REPORTED 0x10u  /* done, and reported by corio_await_any */
#define CORIO__FF_SHUTDOWN 0x20u  /* a drain of the loop ended it (drain.c): -ESHUTDOWN */
/* A sleep on the virtual clock whose time came: the cancel of its never-expiring timeout op is
 * its success. */
#define CORIO__FF_VEXPIRED 0x40u

enum {
    CORIO__FK_OP = 0,    /* an ordinary op */
    CORIO__FK_CLOSE = 1, /* close: not cancellable */
    CORIO__FK_SLEEP = 2, /* a timeout op: -ETIME means it expired, which is success */
};

static inline struct corio__future *corio__fut(struct corio_future *f)
{
    return (struct corio__future *)(void *)f;
}

static inline const struct corio__future *corio__cfut(const struct corio_future *f)
{
    return (const struct corio__future *)(const void *)f;
}

/* Starts @op with @f as its future, owned by the calling coroutine. With @deadline >= 0 a linked
 * timeout is attached (except for CORIO__FK_SLEEP, whose op is itself the timeout). If the op
 * cannot start (-EPERM outside a coroutine, -ECANCELED, -ETIMEDOUT for a deadline already past,
 * -EBUSY if @f is still pending), @f is completed with that error (except for -EBUSY: then it is
 * left as it is). Returns 0 or that error. */
int corio__future_start(struct corio__future *f, const struct corio__op *op, int64_t deadline,
                        uint8_t kind);

/* Starts @op and waits for it: the blocking form of every operation. Returns its result. */
int64_t corio__future_run(const struct corio__op *op, int64_t deadline, uint8_t kind);

/* A drain of the loop reached pending record @p: if it is a future of an accept, the accept is
 * cancelled in the kernel and ends with -ESHUTDOWN (unless a connection raced the cancel: then
 * it keeps it). Returns whether @p was such a future. */
bool corio__future_shutdown_accept(struct corio__pending *p);

/* Checks that @f was started by the coroutine of task @t. Returns 0, -EINVAL (never started) or
 * -EPERM (another coroutine's). */
int corio__future_check(const struct corio_future *f, const struct corio__task *t);

/* Marks @f as awaited by its owner (@on) or not: its completion then counts against the owner's
 * wait_need and wakes it at zero. Only pending futures count. Returns whether @f is pending. */
static inline bool corio__future_watch(struct corio_future *pub, bool on)
{
    struct corio__future *f = corio__fut(pub);
    if (on && f->state == CORIO__F_PENDING)
        f->flags |= CORIO__FF_AWAITED;
    else
        f->flags &= ~CORIO__FF_AWAITED;
    return f->state == CORIO__F_PENDING;
}

/* For the dump: what a coroutine parked with abort function @a waits for, when @a is an await's
 * ("an op": its wait_obj is the future); else NULL. */
const char *corio__future_wait_name(corio__abort_fn *a);

/* For the dump: the future whose record is @p, or NULL when @p is another kind of record. */
const struct corio__future *corio__future_of_pending(const struct corio__pending *p);

/* For the dump: the one future that task @t is parked in corio_await on, or NULL. */
const struct corio__future *corio__future_awaited(const struct corio__task *t);

#endif
