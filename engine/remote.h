/* What other threads hand a loop (remote.c): functions to run on it, coroutines to spawn on it,
 * a stop. A lock-free queue per loop (mpsc.h) that the loop looks at once per iteration; a loop
 * that sleeps in the kernel is woken by one eventfd write, and one that is busy is not woken at
 * all: it finds the message on its next look. */
#ifndef CORIO_REMOTE_H
#define CORIO_REMOTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mpsc.h"
#include "op.h"

struct corio_loop;

struct corio__msg;

/* What a message does on the loop's thread; the loop frees the message after. */
typedef void corio__msg_fn(struct corio_loop *l, struct corio__msg *m);

/* A message. The modules that send one fill what they need; the loop frees it once it ran. */
struct corio__msg {
    struct corio__mpsc_node node; /* first: the queue links these */
    corio__msg_fn *run;           /* what it does */
    void (*fn)(void *arg);        /* a function and ... */
    corio_fn *body;               /* ... a coroutine body, for those that need them */
    void *arg;
    bool heap;                    /* from corio__msg_new: freed once it ran */
};

/* A loop's mailbox: its part of struct corio_loop. */
struct corio__remote {
    struct corio__mpsc q;        /* messages, pushed by any thread, taken by the loop */
    _Atomic int active;          /* a message was ever sent: from then on the loop looks at the
                                    queue and marks its sleeps; until then it pays nothing */
    _Atomic int sleeping;        /* the loop waits in the kernel: the next sender writes efd */
    int efd;                     /* the eventfd that wakes it */
    bool armed;                  /* a read of efd is in flight (untracked: it keeps nobody);
                                    armed again as soon as it completes */
    bool closing;                /* corio__remote_fini: it is not armed again */
    uint64_t efd_value;          /* what that read gets: the writes since the last one */
    struct corio__completion woke; /* that read's completion record */
    struct corio__msg stop;      /* corio_loop_stop from another thread, needing no memory; its
                                    run (loop.c's) clears stop_queued */
    atomic_flag stop_queued;     /* stop is in the queue: a second stop adds nothing */
};

/* Sets up @l's mailbox, its eventfd read armed; the stop message's run is the caller's to set.
 * Returns 0 or -errno (the eventfd). */
int corio__remote_init(struct corio_loop *l);

/* Discards the messages still queued (their functions do not run), ends the eventfd read if one
 * is in flight (an op never outlives its completion, even the loop's own) and closes the
 * eventfd. */
void corio__remote_fini(struct corio_loop *l);

/* Runs the queued messages, in order, on the loop's thread. Returns how many ran. */
unsigned corio__remote_drain(struct corio_loop *l);

/* Whether the loop takes part: a message was sent to it once. One relaxed load. */
static inline bool corio__remote_active(struct corio__remote *r)
{
    return atomic_load_explicit(&r->active, memory_order_relaxed);
}

/* Before the loop waits in the kernel: marks it asleep (once it takes part; the first sender
 * wakes it unasked). Returns false when a message came meanwhile: then the loop must not wait
 * (it is marked awake again). The mark is a locked store, paid per wait only by loops that take
 * part. */
static inline bool corio__remote_sleep(struct corio__remote *r)
{
    if (likely(!corio__remote_active(r)))
        return true;
    atomic_store_explicit(&r->sleeping, 1, memory_order_seq_cst);
    if (corio__mpsc_maybe_nonempty(&r->q)) {
        atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

/* After the wait: marks the loop awake. */
static inline void corio__remote_awake(struct corio__remote *r)
{
    if (unlikely(corio__remote_active(r)))
        atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
}

/* The loop's cheap look, once per iteration: whether a message may be waiting. */
static inline bool corio__remote_pending(struct corio__remote *r)
{
    return unlikely(corio__remote_active(r)) && corio__mpsc_maybe_nonempty(&r->q);
}

/* Allocates a message that does @run. Returns it, or NULL (no memory). */
struct corio__msg *corio__msg_new(corio__msg_fn *run);

/* Queues @m for @l, from any thread, and wakes @l if it sleeps in the kernel. */
void corio__remote_send(struct corio_loop *l, struct corio__msg *m);

/* corio_loop_stop from a thread that is not @l's: queues the loop's own stop message, once. */
void corio__remote_stop(struct corio_loop *l);

#endif
