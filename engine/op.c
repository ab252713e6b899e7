/* The completion path: every op goes to the backend here, and every CQE comes back through
 * corio__op_reap to the completion record it was submitted with.
 *
 * A CQE's user_data is its record's address with a tag in the three low bits (records are
 * 8-aligned): TAG_OP for the op's own CQEs, TAG_LINK for its linked timeout's, TAG_UNTRACKED for
 * an op the loop does not wait for. user_data 0 is an op whose CQE nobody wants (a cancel's own,
 * a close nobody waits for): the fault seam leaves those alone too. The in-flight count
 * goes up by one per tracked SQE and down by one per CQE that is the last of its SQE (no
 * CORIO__CQE_F_MORE: a multishot's final CQE, a zero-copy send's notification), so it is exactly
 * the number of CQEs the loop can still expect. TAG_SAMPLED is TAG_OP for an op whose latency is
 * timed (latency.c): its CQEs go by the sampler on their way, and the others pay nothing for it;
 * its cancel carries the same tag, since the kernel matches a cancel by the whole user_data. */
#include "op.h"

#include "probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    TAG_OP = CORIO__TAG_OP,
    TAG_LINK = CORIO__TAG_LINK,
    TAG_UNTRACKED = CORIO__TAG_UNTRACKED,
    TAG_SAMPLED = CORIO__TAG_SAMPLED,
    TAG_MASK = CORIO__TAG_MASK
};

static inline uint64_t user_data(struct corio__completion *c, unsigned tag)
{
    return c ? (uint64_t)(uintptr_t)c | tag : 0;
}

/* The ops corio cannot do without on io_uring: without one of them, epoll serves better. */
static const enum corio_feature needed[] = {
    CORIO_FEAT_NOP,     CORIO_FEAT_READ,    CORIO_FEAT_WRITE,    CORIO_FEAT_READV,
    CORIO_FEAT_WRITEV,  CORIO_FEAT_OPENAT,  CORIO_FEAT_CLOSE,    CORIO_FEAT_FSYNC,
    CORIO_FEAT_STATX,   CORIO_FEAT_ACCEPT,  CORIO_FEAT_CONNECT,  CORIO_FEAT_SEND,
    CORIO_FEAT_RECV,    CORIO_FEAT_SENDMSG, CORIO_FEAT_RECVMSG,  CORIO_FEAT_SHUTDOWN,
    CORIO_FEAT_TIMEOUT, CORIO_FEAT_LINK_TIMEOUT, CORIO_FEAT_ASYNC_CANCEL,
};

bool corio__op_needed(enum corio_feature f)
{
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(needed); i++)
        if (needed[i] == f)
            return true;
    return false;
}

/* The backend asked for: the option, else CORIO_BACKEND, else auto. */
static enum corio_backend wanted(const struct corio_loop_opts *o)
{
    if (o->backend != CORIO_BACKEND_AUTO)
        return (enum corio_backend)o->backend;
    const char *env = getenv("CORIO_BACKEND");
    if (env && strcmp(env, "epoll") == 0)
        return CORIO_BACKEND_EPOLL;
    if (env && (strcmp(env, "io_uring") == 0 || strcmp(env, "uring") == 0))
        return CORIO_BACKEND_IO_URING;
    return CORIO_BACKEND_AUTO;
}

/* Sets up io_uring. Returns 0, or -errno with the reason in io->why. */
static int uring_init(struct corio__io *io, const struct corio_loop_opts *o,
                      struct corio_stats *stats, uint64_t refuse, uint64_t *features)
{
    int err = corio__ring_new(&io->ring, o, stats, refuse);
    if (err) {
        snprintf(io->why, sizeof(io->why), "%s", corio_strerror_setup(err));
        io->ring = NULL;
        return err;
    }
    *features = corio__probe_uring(io->ring);
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(needed); i++)
        if (!(*features & (1ull << needed[i]))) {
            snprintf(io->why, sizeof(io->why), "io_uring lacks IORING_OP_%s (older kernel?)",
                     corio_feature_name(needed[i]));
            corio__ring_free(io->ring);
            io->ring = NULL;
            return -EOPNOTSUPP;
        }
    if (o->fixed_files && (err = corio__ring_files_sparse(io->ring, o->fixed_files)) != 0) {
        snprintf(io->why, sizeof(io->why), "registering %u fixed files: %s", o->fixed_files,
                 strerror(-err));
        corio__ring_free(io->ring);
        io->ring = NULL;
        return err;
    }
    io->view = corio__ring_view(io->ring);
    return 0;
}

int corio__op_init(struct corio__io *io, const struct corio_loop_opts *o,
                   struct corio_stats *stats, uint64_t refuse, uint64_t *features)
{
    io->inflight = 0;
    corio__lat_init(&io->lat, o->latency_sample);
    io->why[0] = '\0';
    enum corio_backend want = wanted(o);
    if (want != CORIO_BACKEND_EPOLL) {
        int err = uring_init(io, o, stats, refuse, features);
        if (err == 0 || want == CORIO_BACKEND_IO_URING)
            return err; /* a forced io_uring that is refused fails, with io->why */
    } else {
        snprintf(io->why, sizeof(io->why), "the epoll backend was asked for (%s)",
                 o->backend == CORIO_BACKEND_EPOLL ? "corio_loop_opts.backend"
                                                   : "CORIO_BACKEND=epoll");
    }
    int err = corio__poll_new(&io->poll, o, stats);
    if (err)
        return err;
    io->view = corio__poll_view(io->poll);
    *features = corio__poll_features();
    return 0;
}

void corio__op_fini(struct corio__io *io)
{
    if (io->ring)
        corio__ring_free(io->ring);
    else
        corio__poll_free(io->poll);
    io->ring = NULL;
    io->poll = NULL;
}

/* The tag of the op whose countdown reached 0: TAG_SAMPLED if its latency can be timed (a sample
 * slot is free), else TAG_OP. */
static unsigned timed_tag(struct corio__io *io, struct corio__completion *c, unsigned opcode)
{
#if CORIO__HISTOGRAMS
    if (corio__lat_start(&io->lat, (uint64_t)(uintptr_t)c, opcode))
        return TAG_SAMPLED;
#else
    (void)io, (void)c, (void)opcode;
#endif
    return TAG_OP;
}

/* The tag of an op's own CQEs: TAG_SAMPLED for one op in latency_sample, else TAG_OP. */
static unsigned op_tag(struct corio__io *io, struct corio__completion *c, unsigned opcode)
{
    if (CORIO__HISTOGRAMS && unlikely(--io->lat.countdown == 0))
        return timed_tag(io, c, opcode);
    return TAG_OP;
}

void corio__op_submit_poll(struct corio__io *io, const struct corio__op *op,
                           struct corio__completion *c, const struct corio__ts *deadline)
{
    unsigned tag = c ? op_tag(io, c, op->opcode) : TAG_OP;
    corio__poll_prep(io->poll, op, user_data(c, tag), deadline, user_data(c, TAG_LINK));
    io->inflight += deadline ? 2 : 1;
}

void corio__op_submit_timed(struct corio__io *io, const struct corio__op *op,
                            struct corio__completion *c, const struct corio__ts *deadline)
{
    unsigned tag = timed_tag(io, c, op->opcode); /* it sets the countdown again */
    corio__ring_prep(io->ring, op, user_data(c, tag), deadline,
                     deadline ? user_data(c, TAG_LINK) : 0);
    io->inflight += deadline ? 2 : 1;
}

void corio__op_submit_untracked(struct corio__io *io, const struct corio__op *op,
                                struct corio__completion *c)
{
    if (io->ring)
        corio__ring_prep(io->ring, op, user_data(c, TAG_UNTRACKED), NULL, 0);
    else
        corio__poll_prep(io->poll, op, user_data(c, TAG_UNTRACKED), NULL, 0);
}

void corio__op_msg_ring(struct corio__io *io, const struct corio__io *target,
                        struct corio__completion *target_c, struct corio__completion *own_c)
{
    corio__ring_msg(io->ring, target->ring, user_data(target_c, TAG_UNTRACKED),
                    user_data(own_c, TAG_UNTRACKED));
}

void corio__op_cancel(struct corio__io *io, struct corio__completion *c)
{
    unsigned tag = TAG_OP;
#if CORIO__HISTOGRAMS
    if (c && corio__lat_timed(&io->lat, (uint64_t)(uintptr_t)c))
        tag = TAG_SAMPLED;
#endif
    if (io->ring)
        corio__ring_cancel(io->ring, user_data(c, tag), 0);
    else
        corio__poll_cancel(io->poll, user_data(c, tag), 0);
}

/* A CQE whose tag is neither TAG_OP nor TAG_LINK nor TAG_UNTRACKED: a timed op's, counted as
 * TAG_OP's are and handed to the sampler, or a corrupt one. Out of line: one op in
 * latency_sample comes here. */
__attribute__((noinline)) static void dispatch_timed(struct corio__io *io,
                                                     const struct corio__cqe *cqe, unsigned tag)
{
    if (unlikely(tag != TAG_SAMPLED))
        corio__panic("CQE with unknown user_data tag %llx", (unsigned long long)cqe->user_data);
    if (!(cqe->flags & CORIO__CQE_F_MORE))
        io->inflight--;
#if CORIO__HISTOGRAMS
    corio__lat_done(&io->lat, cqe->user_data & ~(uint64_t)TAG_MASK, cqe->flags & CORIO__CQE_F_MORE);
#endif
}

static inline void dispatch(struct corio__io *io, const struct corio__cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    if (unlikely(ud == 0))
        return;
    unsigned tag = (unsigned)(ud & TAG_MASK);
    struct corio__completion *c = (struct corio__completion *)(uintptr_t)(ud & ~(uint64_t)TAG_MASK);
    if (likely(tag <= TAG_LINK)) {
        if (!(cqe->flags & CORIO__CQE_F_MORE))
            io->inflight--;
    } else if (unlikely(tag != TAG_UNTRACKED)) {
        dispatch_timed(io, cqe, tag);
    }
    c->complete(c, cqe, tag == TAG_LINK);
}

unsigned corio__op_reap(struct corio__io *io)
{
    unsigned n, total = 0;
    do {
        n = likely(io->ring) ? corio__ring_reap(io->ring, io->cqes, CORIO__REAP_BATCH)
                             : corio__poll_reap(io->poll, io->cqes, CORIO__REAP_BATCH);
        for (unsigned i = 0; i < n; i++)
            dispatch(io, &io->cqes[i]);
        total += n;
    } while (n == CORIO__REAP_BATCH);
    return total;
}

bool corio__op_poller_asleep(const struct corio__io *io)
{
    return io->ring && corio__ring_needs_enter(io->ring);
}

bool corio__op_on_workers(const struct corio__io *io)
{
    return io->poll && corio__poll_working(io->poll) > 0;
}

unsigned corio__op_unsubmitted(const struct corio__io *io)
{
    return io->ring ? corio__ring_unsubmitted(io->ring) : corio__poll_unsubmitted(io->poll);
}

int corio__op_buf_new(struct corio__io *io, uint16_t bgid, unsigned entries,
                      struct corio__bufgroup **out)
{
    if (io->ring)
        return corio__ring_pbuf_new(io->ring, bgid, entries, (struct corio__pbuf **)(void *)out);
    return corio__poll_buf_new(io->poll, bgid, entries, (struct corio__poll_buf **)(void *)out);
}

void corio__op_buf_free(struct corio__io *io, uint16_t bgid, struct corio__bufgroup *g)
{
    if (io->ring)
        corio__ring_pbuf_free(io->ring, bgid, (struct corio__pbuf *)(void *)g);
    else
        corio__poll_buf_free(io->poll, bgid, (struct corio__poll_buf *)(void *)g);
}

int corio__op_buffers_register(struct corio__io *io, const struct iovec *iov, unsigned n)
{
    return io->ring ? corio__ring_buffers_register(io->ring, iov, n) : 0;
}

int corio__op_buffers_unregister(struct corio__io *io)
{
    return io->ring ? corio__ring_buffers_unregister(io->ring) : 0;
}

/* ---- driven by another event loop ------------------------------------------------------------ */

int corio__op_fd(const struct corio__io *io)
{
    return io->ring ? corio__ring_fd(io->ring) : corio__poll_fd(io->poll);
}

int corio__op_nowait(struct corio__io *io)
{
    /* epoll: a wait with a zero timeout, since a plain flush does not look at readiness while
     * only the loop's own wake-up read waits (CORIO__OP_LAZY), and the epoll fd would stay
     * readable for ever. io_uring: a flush, which enters when the kernel flags task work. */
    return io->ring ? corio__ring_enter(io->ring, false, 0, 0, 0)
                    : corio__poll_enter(io->poll, true, 0);
}

bool corio__op_settled(const struct corio__io *io)
{
    return io->ring ? corio__ring_settled(io->ring) : corio__poll_settled(io->poll);
}

int64_t corio__op_next_deadline(const struct corio__io *io)
{
    return io->ring ? -1 : corio__poll_next_deadline(io->poll);
}
