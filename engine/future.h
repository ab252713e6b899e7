/* Futures: await, any/all, cancel, and the drain of a finishing coroutine's futures (future.c). */
#ifndef CORIO_FUTURE_H
#define CORIO_FUTURE_H

#include "loop.h"

static inline struct corio__future *corio__fut(struct corio_future *f)
{
    return (struct corio__future *)(void *)f;
}

/* Sends an async cancel for pending @f, once. */
void corio__future_cancel_kernel(struct corio_loop *l, struct corio__future *f);


#endif
