/* An intrusive multi-producer, single-consumer queue (header-only): any thread pushes, one thread
 * pops, no lock on either side. Producers swap themselves into the tail with one atomic exchange
 * and then link the previous node to them; the consumer walks from a stub node it owns. A push
 * that has swapped the tail but not yet linked is invisible for that moment: the consumer sees
 * the queue as empty up to it and finds the rest on its next look, so a consumer that goes to
 * sleep must be woken by the producer afterwards (the caller's protocol, loop.c's mailbox). */
#ifndef CORIO_MPSC_H
#define CORIO_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct corio__mpsc_node {
    _Atomic(struct corio__mpsc_node *) next;
};

struct corio__mpsc {
    _Atomic(struct corio__mpsc_node *) tail; /* the producers' end; its own cache line */
    char pad_[64 - sizeof(void *)];
    struct corio__mpsc_node *head;           /* the consumer's end */
    struct corio__mpsc_node stub;            /* keeps the queue non-empty for the consumer */
};

static inline void corio__mpsc_init(struct corio__mpsc *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    q->head = &q->stub;
    atomic_store_explicit(&q->tail, &q->stub, memory_order_relaxed);
}

/* Adds @n at the tail. Any thread. The exchange is sequentially consistent, so that a producer's
 * push and its later read of the consumer's "sleeping" flag order against the consumer's store of
 * that flag and its later look at the queue (one of the two sides always sees the other). */
static inline void corio__mpsc_push(struct corio__mpsc *q, struct corio__mpsc_node *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    struct corio__mpsc_node *prev = atomic_exchange_explicit(&q->tail, n, memory_order_seq_cst);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/* Whether a node may be waiting: the consumer's cheap look. The head off the stub is a node not
 * yet taken; at the stub, any push (even one still linking) has moved the tail. The tail is read
 * sequentially consistent, for the sleeping protocol above. The consumer's thread only. */
static inline bool corio__mpsc_maybe_nonempty(struct corio__mpsc *q)
{
    return q->head != &q->stub ||
           atomic_load_explicit(&q->tail, memory_order_seq_cst) != &q->stub;
}

/* Takes the node at the head, or NULL when there is none or the next one is still being linked
 * (then it comes on a later call). The consumer's thread only. */
static inline struct corio__mpsc_node *corio__mpsc_pop(struct corio__mpsc *q)
{
    struct corio__mpsc_node *head = q->head;
    struct corio__mpsc_node *next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (head == &q->stub) {
        if (!next)
            return NULL;
        q->head = next;
        head = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->head = next;
        return head;
    }
    if (head != atomic_load_explicit(&q->tail, memory_order_acquire))
        return NULL; /* a producer swapped the tail and is about to link to it */
    corio__mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next) {
        q->head = next;
        return head;
    }
    return NULL;
}

#endif
