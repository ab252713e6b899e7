/* Probing the kernel once per loop, and explaining a loop that could not be created (probe.c). */
#ifndef CORIO_PROBE_H
#define CORIO_PROBE_H

#include <stdint.h>

#include "base.h"
#include "ring.h"

/* Asks ring @r what the kernel granted and offers: setup flags, kernel features, opcodes, and the
 * modes that can only be found by trying them. Returns the CORIO_FEAT_ bits. */
uint64_t corio__probe_uring(struct corio__ring *r);

/* Reads the first integer of a one-line /proc file (a sysctl). Returns it, or -1. */
long corio__read_proc_long(const char *path);

/* Returns the "Seccomp:" mode of this process (0 none, 1 strict, 2 filter), or -1. */
long corio__seccomp_mode(void);

#endif
