/* The stack-overflow reporter: a SIGSEGV handler, on an alternate signal stack per thread, that
 * names a coroutine which ran into its guard page before the process dies (segv.c). */
#ifndef CORIO_SEGV_H
#define CORIO_SEGV_H

/* Installs the handler (once per process) and gives the calling thread an alternate signal stack
 * (once per thread; counted, so that each loop of the thread acquires and releases it). Returns
 * nothing: without memory for the stack, overflows are reported by the default action only. */
void corio__segv_acquire(void);

/* Drops the calling thread's use of the alternate stack; the last release frees it. Returns
 * nothing. */
void corio__segv_release(void);

#endif
