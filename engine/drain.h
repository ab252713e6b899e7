/* The graceful stop of a loop (drain.c): it accepts nothing more, its idle waits end, its other
 * coroutines finish, and at the deadline what is left is cancelled as by a stop. */
#ifndef CORIO_DRAIN_H
#define CORIO_DRAIN_H

struct corio_loop;

/* The loop's run ended: it is no longer draining, and the drain's deadline is dropped, so that
 * a loop run again starts afresh (as its stop does). Returns nothing. */
void corio__drain_end(struct corio_loop *l);

#endif
