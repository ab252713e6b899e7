/* Probing the kernel once per loop, and explaining a loop that could not be created (probe.c). */
#ifndef CORIO_PROBE_H
#define CORIO_PROBE_H

#include <stdint.h>

#include "base.h"
#include "ring.h"

/* Asks ring @r what the kernel granted and offers: setup flags, kernel features, opcodes, and the
 * modes that can only be found by trying them. Returns the CORIO_FEAT_ bits. */
uint64_t corio__probe_uring(struct corio__ring *r);

#endif
