/* The io_uring backend's private header: the ring's layout, shared by ring.c (submission and
 * completion) and ring_setup.c (set-up, probing answers, registrations). These and fault.c are
 * the only files that include <liburing.h> or know the SQE and CQE layouts. */
#ifndef CORIO_RING_PRIVATE_H
#define CORIO_RING_PRIVATE_H

#include "ring.h"

#include "base.h"

#include <liburing.h>

_Static_assert(sizeof(struct corio__ts) == sizeof(struct __kernel_timespec), "corio__ts layout");

/* Linux 6.12 added a batch-wait cap: io_uring_getevents_arg's former pad became min_wait_usec, and
 * IORING_FEAT_MIN_TIMEOUT says so. liburing 2.3's headers predate both. */
#define CORIO__FEAT_MIN_TIMEOUT (1U << 15)
_Static_assert(CORIO__CQE_F_MORE == IORING_CQE_F_MORE, "CQE flag mirror");
_Static_assert(CORIO__CQE_F_BUFFER == IORING_CQE_F_BUFFER, "CQE flag mirror");
_Static_assert(CORIO__CQE_F_NOTIF == IORING_CQE_F_NOTIF, "CQE flag mirror");
_Static_assert(CORIO__CQE_BUFFER_SHIFT == IORING_CQE_BUFFER_SHIFT, "CQE flag mirror");
_Static_assert(CORIO__FD_FIXED == CORIO_FD_FIXED, "fixed fd bit");

/* Deferred-taskrun rings only post completions inside io_uring_enter(GETEVENTS): see
 * corio__ring_enter. Spilled CQEs are those reaped while a full SQ was being flushed. */
struct corio__ring {
    struct io_uring ring;       /* liburing's view: the mmaps and the local SQ tail */
    unsigned setup_flags;       /* the IORING_SETUP_ flags the kernel accepted */
    unsigned enter_flags;       /* IORING_ENTER_REGISTERED_RING when the fd is registered */
    int enter_fd;               /* the registered index, or the ring fd */
    bool ext_arg;               /* IORING_FEAT_EXT_ARG: enter can wait with a timeout */
    bool cqe_skip;              /* IORING_FEAT_CQE_SKIP: cancels need not post on success */
    bool min_timeout;           /* IORING_FEAT_MIN_TIMEOUT (6.12): batch waits with a time cap */
    struct corio_stats *stats;  /* the owning loop's counters */
    struct corio__ring_view view; /* for the loop's inline checks */
    struct corio__cqe *spill;   /* CQEs reaped early, handed out first by corio__ring_reap */
    unsigned spill_n;           /* entries in spill */
    unsigned spill_cap;         /* capacity of spill */
    unsigned woken_tail;        /* SQPOLL: the SQ tail the sleeping poller was last woken for */
    uint64_t setup_asked;       /* CORIO_FEAT_ bits of the setup flags some attempt held */
    int setup_refused[CORIO_FEAT_COUNT]; /* per setup flag: the -errno of the last attempt that
                                            held it and failed, 0 once it is granted */
};


#endif
