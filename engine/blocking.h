/* corio_blocking (blocking.c): a function run on a worker thread of the loop's own pool while
 * its caller is parked, for calls that have no asynchronous form (getaddrinfo, a library's
 * blocking API). The loop keeps the pool (struct corio_loop.blocking), made on the first call. */
#ifndef CORIO_BLOCKING_H
#define CORIO_BLOCKING_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"

/* Takes back @arg of a call whose caller stopped waiting (see corio__blocking_run), on the
 * loop's thread, once the function is done with it or sure never to run. */
typedef void corio__blocking_retire_fn(void *arg);

/* corio_blocking, for callers inside the engine whose @arg is allocated and holds what fn
 * produces: when the call returns without fn's result (the caller was cancelled, its deadline
 * passed, or the call could not start), @retire (if not NULL) gets @arg exactly once, when fn has
 * returned or is sure never to run, which may be before or after this returns; the caller must
 * not touch @arg then. When fn's result is returned, @retire is not called and @arg is the
 * caller's again. *@ran (if not NULL) says which: true when the result is fn's. May suspend.
 * Returns as corio_blocking. */
int corio__blocking_run(corio_blocking_fn *fn, void *arg, int64_t deadline,
                        corio__blocking_retire_fn *retire, bool *ran);

/* Frees @l's pool, if it made one: no call may be out (the loop has run until its coroutines,
 * zombies included, have ended, and a call keeps its caller alive). The eventfd read of the
 * loop's own, if it is still in flight, is ended and awaited first. Returns nothing. */
void corio__blocking_free(struct corio_loop *l);

#endif
