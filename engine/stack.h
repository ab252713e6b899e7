/* Coroutine stacks: mmap'd, with a PROT_NONE guard page below, kept in a per-loop LIFO pool so that
 * a spawn after the first ones makes no system call. Pages are touched lazily by the kernel, so a
 * large stack costs address space, not memory, until it is used. */
#ifndef CORIO_STACK_H
#define CORIO_STACK_H

#include <stdbool.h>
#include <stddef.h>

/* Lives at the very top of its own mapping; the usable stack is [lo, hi), just below it. */
struct corio__stack {
    void *map;                 /* start of the mapping: the guard page */
    size_t map_len;            /* length of the whole mapping */
    char *lo;                  /* lowest usable byte (just above the guard page) */
    char *hi;                  /* one past the highest usable byte (this header starts here) */
    unsigned vg_id;            /* valgrind's id for the registered stack */
    struct corio__stack *next; /* next free stack in the pool */
};

struct corio__stack_pool {
    struct corio__stack *free; /* LIFO: the most recently used stack is the warmest */
    size_t usable;             /* usable bytes of each stack */
    size_t n_free;             /* stacks in the free list */
    size_t max_free;           /* the most kept; more are unmapped. 0: as many as were live at
                                  once since the last trim (corio__stack_pool_trim) */
    size_t n_live;             /* stacks handed out and not yet returned */
    size_t peak;               /* the most stacks live at once since the last trim */
    size_t page;               /* the page size, read once */
};

/* Sets up an empty pool of stacks of @usable bytes that keeps at most @max_free of them once they
 * are returned, or, with @max_free 0, as many as were in use at once lately: a loop whose
 * coroutines come and go in thousands then maps no stack per spawn. Returns nothing. */
void corio__stack_pool_init(struct corio__stack_pool *p, size_t usable, size_t max_free);

/* With no fixed bound: unmaps the free stacks beyond the most that were live at once since the
 * last trim, and starts a new window. Call it now and then from an idle loop. Returns nothing. */
void corio__stack_pool_trim(struct corio__stack_pool *p);

/* Unmaps every pooled stack; all of them must have been returned. */
void corio__stack_pool_fini(struct corio__stack_pool *p);

/* Takes a stack from the pool, or maps a new one. Returns it, or NULL if mmap failed. */
struct corio__stack *corio__stack_get(struct corio__stack_pool *p);

/* Returns @s to the pool (or unmaps it when the pool is full). */
void corio__stack_put(struct corio__stack_pool *p, struct corio__stack *s);

/* True if @addr lies in @s's guard page, or within a page below the usable region's low end. */
bool corio__stack_in_guard(const struct corio__stack *s, const void *addr);

size_t corio__page_size(void);

/* Debug builds (no NDEBUG) keep every byte of a pooled stack that no coroutine is using at zero,
 * as a fresh mapping is: the lowest word that is not zero is then the deepest point a coroutine
 * reached (corio__stack_used), give or take the zeros its deepest frame held. Release builds
 * keep nothing and pay nothing. */
#ifndef NDEBUG
#define CORIO__STACK_WATERMARK 1
#endif

/* The high-water mark of @s: bytes from its top down to the deepest word its coroutine has
 * written, its struct included. Reads the whole unused part of the stack, so for dumps only.
 * Returns 0 where it is not kept (release builds). */
size_t corio__stack_used(const struct corio__stack *s);

#endif
