/* An intrusive binary min-heap of timers, ordered by deadline (header-only). The array of pointers
 * grows by doubling, so the amortized cost of an insert is O(log n) with no allocation in the
 * steady state. Each timer records its index, so removal from the middle is O(log n). */
#ifndef CORIO_HEAP_H
#define CORIO_HEAP_H

#include <stdint.h>
#include <errno.h>
#include <stdlib.h>

struct corio__timer;

/* What a timer with `call` set runs when it fires, instead of its owner's default action. */
typedef void corio__timer_fn(struct corio__timer *t);

struct corio__timer {
    int64_t deadline; /* absolute CLOCK_MONOTONIC ns */
    uint32_t idx;     /* position in the heap array; UINT32_MAX when not in the heap */
    uint8_t call;     /* fire is set rather than data (in the padding: no bigger) */
    union {
        void *data;            /* the owner's cookie (the waiting coroutine) */
        corio__timer_fn *fire; /* with call: the function to run, given the timer */
    };
};

struct corio__heap {
    struct corio__timer **v; /* v[0] is the earliest deadline */
    uint32_t n;              /* timers in the heap */
    uint32_t cap;            /* capacity of v */
};

#define CORIO__TIMER_IDLE UINT32_MAX

static inline void heap_swap_(struct corio__heap *h, uint32_t a, uint32_t b)
{
    struct corio__timer *t = h->v[a];
    h->v[a] = h->v[b];
    h->v[b] = t;
    h->v[a]->idx = a;
    h->v[b]->idx = b;
}

static inline void heap_up_(struct corio__heap *h, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (h->v[p]->deadline <= h->v[i]->deadline)
            break;
        heap_swap_(h, i, p);
        i = p;
    }
}

static inline void heap_down_(struct corio__heap *h, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l]->deadline < h->v[m]->deadline)
            m = l;
        if (r < h->n && h->v[r]->deadline < h->v[m]->deadline)
            m = r;
        if (m == i)
            return;
        heap_swap_(h, i, m);
        i = m;
    }
}

/* Adds @t. Returns 0 or -ENOMEM. */
static inline int corio__heap_push(struct corio__heap *h, struct corio__timer *t)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        struct corio__timer **v = (struct corio__timer **)realloc(h->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    t->idx = h->n;
    h->v[h->n++] = t;
    heap_up_(h, t->idx);
    return 0;
}

/* Restores the order after @t, in the heap, got an earlier deadline. */
static inline void corio__heap_up(struct corio__heap *h, struct corio__timer *t)
{
    heap_up_(h, t->idx);
}

/* Removes @t if it is in the heap. */
static inline void corio__heap_remove(struct corio__heap *h, struct corio__timer *t)
{
    uint32_t i = t->idx;
    if (i == CORIO__TIMER_IDLE)
        return;
    t->idx = CORIO__TIMER_IDLE;
    if (--h->n == i)
        return;
    h->v[i] = h->v[h->n];
    h->v[i]->idx = i;
    heap_down_(h, i);
    heap_up_(h, i);
}

static inline struct corio__timer *corio__heap_top(const struct corio__heap *h)
{
    return h->n ? h->v[0] : NULL;
}

static inline void corio__heap_fini(struct corio__heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

#endif
