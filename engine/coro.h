/* Coroutines: spawn, join, detach, cancel, yield (coro.c). */
#ifndef CORIO_CORO_H
#define CORIO_CORO_H

#include "loop.h"

/* Returns the live coroutine behind @id on @l, or NULL if it ended or @id is stale. */
struct corio_coro *corio__coro_lookup(struct corio_loop *l, corio_id id);

#endif
