/* The test seam between corio and the kernel. In normal builds every hook is an inline no-op that
 * the compiler removes; a CORIO_TESTING build (issue: trust) replaces them with seeded fault
 * injection in fault.c. */
#ifndef CORIO_FAULT_H
#define CORIO_FAULT_H

#include "ring.h"

#ifdef CORIO_TESTING
/* Returns -EINVAL if the seam refuses io_uring_setup with these IORING_SETUP_ flags, else 0. */
int corio__fault_setup(unsigned setup_flags);
/* Returns a negative errno to make this io_uring_enter fail without calling the kernel, else 0. */
int corio__fault_enter(void);
/* May rewrite, reorder or hold back the @n completions in @c (room for @max). Returns the count. */
unsigned corio__fault_cqes(struct corio__cqe *c, unsigned n, unsigned max);
#else
static inline int corio__fault_setup(unsigned setup_flags)
{
    (void)setup_flags;
    return 0;
}
static inline int corio__fault_enter(void)
{
    return 0;
}
static inline unsigned corio__fault_cqes(struct corio__cqe *c, unsigned n, unsigned max)
{
    (void)c;
    (void)max;
    return n;
}
#endif

#endif
