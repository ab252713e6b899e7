/* Seeing inside a running loop (dump.c): the process's list of loops, which the gdb script
 * (tools/corio-gdb.py) walks, and the names of the waits a coroutine can be parked in, which
 * corio_loop_dump prints. Each module that parks a coroutine names its own waits: their abort
 * functions are its own business, and only it knows which wait each one ends. */
#ifndef CORIO_DUMP_H
#define CORIO_DUMP_H

#include "loop.h"

/* Adds @l to the process's list of loops, or takes it off. Any thread. Returns nothing. */
void corio__loop_register(struct corio_loop *l);
void corio__loop_unregister(struct corio_loop *l);

/* What a coroutine parked with abort function @a waits for, in words, or NULL when @a is not one
 * of the module's. One per module that parks, below the layer of loop.h's users: */
const char *corio__chan_wait_name(corio__abort_fn *a);     /* chan.c */
const char *corio__gen_wait_name(corio__abort_fn *a);      /* gen.c */
const char *corio__acceptor_wait_name(corio__abort_fn *a); /* acceptor.c */
const char *corio__receiver_wait_name(corio__abort_fn *a); /* buf.c */
const char *corio__blocking_wait_name(corio__abort_fn *a); /* blocking.c */

#endif
