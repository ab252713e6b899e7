/* Coroutines: spawn, join, detach, cancel, yield (coro.c). */
#ifndef CORIO_CORO_H
#define CORIO_CORO_H

#include "loop.h"

/* Returns the live coroutine behind @id on @l, or NULL if it ended or @id is stale. */
struct corio_coro *corio__coro_lookup(struct corio_loop *l, corio_id id);

/* Creates a coroutine (see corio_spawn) in group @g (may be NULL). If @ready it goes on the run
 * queue; otherwise it stays parked, never run, until someone switches to it (generators). Returns
 * it, or NULL with *err set. */
struct corio_coro *corio__spawn(struct corio_loop *l, corio_fn *fn, void *arg, corio_id *out,
                                struct corio__group *g, bool ready, int *err);

#endif
