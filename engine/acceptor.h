/* The multishot acceptor (acceptor.c): what the rest of the engine asks of it. */
#ifndef CORIO_ACCEPTOR_H
#define CORIO_ACCEPTOR_H

#include <stdbool.h>

#include "coro.h"

/* A drain of the loop reached pending record @p: if it is an acceptor's, its multishot accept is
 * ended in the kernel, its owner's wait in corio_acceptor_next ends with -ESHUTDOWN, and so does
 * every later call once the connections already queued are handed out. Returns whether @p was an
 * acceptor's. */
bool corio__acceptor_shutdown(struct corio__pending *p);

#endif
