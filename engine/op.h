/* The one path of every operation. An op is described once (struct corio__op, ring.h), handed to
 * the backend together with the completion record that is to receive its CQEs, and completed
 * through one dispatch (op.c). This module owns the user_data tagging and the count of
 * completions still in flight: above it nothing knows what a CQE's user_data holds, and below it
 * nothing knows who waits for the result. */
#ifndef CORIO_OP_H
#define CORIO_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "epoll.h"
#include "latency.h"
#include "ring.h"

struct corio__completion;

/* Receives one CQE of an op submitted with @c: the op's own (@link false) or, for an op with a
 * deadline, its linked timeout's (@link true). Runs on the scheduler's stack, inside the drain. */
typedef void corio__complete_fn(struct corio__completion *c, const struct corio__cqe *cqe,
                                bool link);

/* A completion record: what a CQE's user_data points to. It lives with whoever waits for the op
 * (a future in a coroutine's frame, a multishot handler, the loop's wake-up timer) and must stay
 * put until the op's last CQE. 8-aligned: the user_data's low bits say which CQE of the op it is
 * (op.c). */
struct corio__completion {
    corio__complete_fn *complete; /* called with each of the op's CQEs */
};

#define CORIO__REAP_BATCH 64

/* A loop's I/O: its backend and the completions the ops it submitted still owe. Exactly one of
 * ring and poll is set; every call below takes the ring's path first, a branch the CPU predicts
 * once and for all, so that io_uring pays nothing for the second backend. */
struct corio__io {
    struct corio__ring *ring;            /* the io_uring, or NULL */
    struct corio__poll *poll;            /* the epoll backend, or NULL */
    const struct corio__ring_view *view; /* the backend's counters, for the inline checks below */
    size_t inflight;                     /* CQEs still to come for tracked submissions */
    char why[192];                       /* why io_uring is not used, or "" */
    struct corio__cqe cqes[CORIO__REAP_BATCH]; /* the reap buffer */
    struct corio__lat lat;               /* latency sampling and histograms (latency.h) */
};

/* Sets up the backend for a loop with options @o, counting into @stats, and probes the kernel:
 * *features gets the CORIO_FEAT_ bits. The backend is o->backend, else the environment's
 * CORIO_BACKEND (io_uring, epoll, auto), else io_uring when it sets up and has the ops corio needs,
 * and epoll otherwise (io->why says why). @refuse: see corio__ring_new. Returns 0, or -errno: a
 * forced io_uring's refusal, or the epoll backend's own failure. */
int corio__op_init(struct corio__io *io, const struct corio_loop_opts *o,
                   struct corio_stats *stats, uint64_t refuse, uint64_t *features);

/* Returns true if io_uring must offer op @f for a loop to use it (without it, epoll serves). */
bool corio__op_needed(enum corio_feature f);

/* Tears the backend down; no op may be in flight. Returns nothing. */
void corio__op_fini(struct corio__io *io);

/* The tags in the low bits of a CQE's user_data (op.c explains them). */
enum {
    CORIO__TAG_OP = 0,
    CORIO__TAG_LINK = 1,
    CORIO__TAG_UNTRACKED = 2,
    CORIO__TAG_SAMPLED = 3,
    CORIO__TAG_MASK = 7
};

/* Hands @op to the backend as corio__op_submit does, as the one op in latency_sample whose latency
 * is timed (when a sample slot is free): its CQEs carry TAG_SAMPLED. Out of line, and the whole
 * submission, so that the inline path keeps no value across a call. Returns nothing. */
void corio__op_submit_timed(struct corio__io *io, const struct corio__op *op,
                            struct corio__completion *c, const struct corio__ts *deadline);

/* Hands @op to the backend; each of its CQEs goes to @c. With @deadline (not NULL: an absolute
 * CLOCK_MONOTONIC time the kernel reads at submission) a linked timeout follows it, whose CQE
 * goes to @c too. Counted in flight until the last CQE: one without CORIO__CQE_F_MORE, per SQE.
 * Returns nothing: a full submission queue is flushed to make room. Inline: every op takes it. */
void corio__op_submit_poll(struct corio__io *io, const struct corio__op *op,
                           struct corio__completion *c, const struct corio__ts *deadline);

static inline void corio__op_submit(struct corio__io *io, const struct corio__op *op,
                                    struct corio__completion *c, const struct corio__ts *deadline)
{
    /* The ring's two shapes stay apart, with constants where there is no deadline, and epoll's
     * path is a call out of line: an inline copy of it would cost every caller registers. */
    if (unlikely(!io->ring)) {
        corio__op_submit_poll(io, op, c, deadline);
        return;
    }
#if CORIO__HISTOGRAMS
    /* A countdown: the ops not timed pay one decrement and a branch. */
    if (unlikely(--io->lat.countdown == 0)) {
        corio__op_submit_timed(io, op, c, deadline);
        return;
    }
#endif
    uint64_t ud = (uint64_t)(uintptr_t)c;
    if (deadline) {
        corio__ring_prep(io->ring, op, ud | CORIO__TAG_OP, deadline, ud | CORIO__TAG_LINK);
        io->inflight += 2;
    } else {
        corio__ring_prep(io->ring, op, ud | CORIO__TAG_OP, NULL, 0);
        io->inflight += 1;
    }
}

/* As corio__op_submit without a deadline, for an op nobody counts on: its CQE goes to @c (or
 * nowhere with @c NULL) but the loop does not wait for it. Returns nothing. */
void corio__op_submit_untracked(struct corio__io *io, const struct corio__op *op,
                                struct corio__completion *c);

/* Wakes loop I/O @target, on another thread, from @io: queues an IORING_OP_MSG_RING whose CQE on
 * @target goes to @target_c and whose own CQE, if the kernel posts one (on failure only where it
 * can skip it on success), goes to @own_c, both untracked. Both must be on io_uring, @io with
 * CORIO_FEAT_MSG_RING. Submitted with @io's next flush or wait. Returns nothing. */
void corio__op_msg_ring(struct corio__io *io, const struct corio__io *target,
                        struct corio__completion *target_c, struct corio__completion *own_c);

/* Asks the backend to cancel the op submitted with @c. The op still completes through @c (with
 * -ECANCELED, or its own result if it won the race). Returns nothing. */
void corio__op_cancel(struct corio__io *io, struct corio__completion *c);

/* Dispatches every completion that is ready to its record. Returns how many there were. */
unsigned corio__op_reap(struct corio__io *io);

/* Submits what is queued without waiting (no system call when nothing needs one). Returns 0, or
 * -errno for a failure that is not transient. */
static inline int corio__op_flush(struct corio__io *io)
{
    if (likely(io->ring))
        return corio__ring_enter(io->ring, false, 0, 0, 0);
    return corio__poll_enter(io->poll, false, 0);
}

/* Submits what is queued and waits for a completion, at most @timeout_ns (-1: no limit); with
 * @batch > 1 for up to @batch completions, at most @batch_us after the first where the kernel can.
 * Returns 0, -EOPNOTSUPP when a timed wait needs a kernel feature that is missing (the caller then
 * arms a timeout op of its own), or -errno for a failure that is not transient. */
static inline int corio__op_wait(struct corio__io *io, int64_t timeout_ns, unsigned batch,
                                 unsigned batch_us)
{
    if (likely(io->ring))
        return corio__ring_enter(io->ring, true, timeout_ns, batch, batch_us);
    return corio__poll_enter(io->poll, true, timeout_ns);
}

/* SQPOLL: true once waiting for completions takes a system call (the poller sleeps). */
bool corio__op_poller_asleep(const struct corio__io *io);

/* True when ops run on the backend's worker threads (the epoll backend's regular files), whose
 * completions come later without a wait in the kernel seeing them at once. */
bool corio__op_on_workers(const struct corio__io *io);

/* Ops handed to the backend and not yet taken by the kernel. */
unsigned corio__op_unsubmitted(const struct corio__io *io);

/* True when entering the kernel would do nothing: nothing queued, no CQE ready, no task work. */
static inline bool corio__op_quiet(const struct corio__io *io)
{
    return corio__ring_quiet(io->view);
}

/* True when completions are ready to be reaped. */
static inline bool corio__op_has_cqes(const struct corio__io *io)
{
    return corio__ring_has_cqes(io->view);
}

/* ---- driven by another event loop (corio_loop_fd, corio_loop_step) --------------------------- */

/* The fd another event loop watches for this backend's completions: the ring's fd, or the epoll
 * fd. Readable while completions wait to be reaped (or readiness to be taken). Returns it, or
 * -EINVAL (a ring with DEFER_TASKRUN). */
int corio__op_fd(const struct corio__io *io);

/* Submits what is queued and takes the completions that are there, without waiting. Returns 0, or
 * -errno for a failure that is not transient. */
int corio__op_nowait(struct corio__io *io);

/* True when the backend has nothing for a step: all submitted, nothing to reap, nothing flagged.
 * Returns it. */
bool corio__op_settled(const struct corio__io *io);

/* The earliest deadline the backend keeps itself (epoll's heap; io_uring's are in the kernel), as
 * an absolute time in ns, or -1. Returns it. */
int64_t corio__op_next_deadline(const struct corio__io *io);

/* ---- provided buffers, registered buffers, the fixed file table ------------------------------ */

/* A provided-buffer group, whichever backend holds it. */
struct corio__bufgroup;

/* Registers group @bgid of @entries buffers (a power of two, <= 32768). Returns 0 and sets *out,
 * or -errno (-EINVAL, -ENOMEM, -EEXIST, -EOPNOTSUPP). */
int corio__op_buf_new(struct corio__io *io, uint16_t bgid, unsigned entries,
                      struct corio__bufgroup **out);

/* Unregisters and frees group @bgid. Returns nothing. */
void corio__op_buf_free(struct corio__io *io, uint16_t bgid, struct corio__bufgroup *g);

/* Hands buffer @bid at [@addr, @addr + @len) to group @g. No system call. Returns nothing. */
static inline void corio__op_buf_put(struct corio__io *io, struct corio__bufgroup *g, void *addr,
                                     unsigned len, uint16_t bid)
{
    if (likely(io->ring))
        corio__pbuf_put((struct corio__pbuf *)(void *)g, addr, len, bid);
    else
        corio__poll_buf_put((struct corio__poll_buf *)(void *)g, addr, len, bid);
}

/* Registers @n buffers for the fixed-buffer ops (on epoll they are plain buffers: nothing to
 * register). Returns 0 or -errno. */
int corio__op_buffers_register(struct corio__io *io, const struct iovec *iov, unsigned n);

/* Unregisters them. Returns 0 or -errno. */
int corio__op_buffers_unregister(struct corio__io *io);

/* Converts an absolute deadline in ns of corio_now() to the kernel's timespec, on the real clock
 * (without the thread's virtual skew, base.h). */
static inline void corio__ts_from_ns(struct corio__ts *ts, int64_t ns)
{
    ns -= corio__clock_skew;
    ts->sec = ns / 1000000000;
    ts->nsec = ns % 1000000000;
}

/* Largest byte count one read or write moves (MAX_RW_COUNT in the kernel). */
#define CORIO__MAX_RW 0x7ffff000u

static inline uint32_t corio__clamp_len(size_t len)
{
    return len > CORIO__MAX_RW ? CORIO__MAX_RW : (uint32_t)len;
}

#endif
