/* The completion path: every op goes to the backend here, and every CQE comes back through
 * corio__op_reap to the completion record it was submitted with.
 *
 * A CQE's user_data is its record's address with a tag in the three low bits (records are
 * 8-aligned): TAG_OP for the op's own CQEs, TAG_LINK for its linked timeout's, TAG_UNTRACKED for
 * an op the loop does not wait for. user_data 0 is an op whose CQE nobody wants (a cancel's own,
 * a close nobody waits for): the fault seam leaves those alone too. The in-flight count
 * goes up by one per tracked SQE and down by one per CQE that is the last of its SQE (no
 * CORIO__CQE_F_MORE: a multishot's final CQE, a zero-copy send's notification), so it is exactly
 * the number of CQEs the loop can still expect. */
#include "op.h"

#include "probe.h"

#include <errno.h>

enum {
    TAG_OP = CORIO__TAG_OP,
    TAG_LINK = CORIO__TAG_LINK,
    TAG_UNTRACKED = CORIO__TAG_UNTRACKED,
    TAG_MASK = CORIO__TAG_MASK
};

static inline uint64_t user_data(struct corio__completion *c, unsigned tag)
{
    return c ? (uint64_t)(uintptr_t)c | tag : 0;
}

int corio__op_init(struct corio__io *io, const struct corio_loop_opts *o,
                   struct corio_stats *stats, uint64_t refuse, uint64_t *features)
{
    int err = corio__ring_new(&io->ring, o, stats, refuse);
    if (err)
        return err;
    if (o->fixed_files) {
        err = corio__ring_files_sparse(io->ring, o->fixed_files);
        if (err) {
            corio__ring_free(io->ring);
            return err;
        }
    }
    io->view = corio__ring_view(io->ring);
    io->inflight = 0;
    *features = corio__probe_uring(io->ring);
    return 0;
}

void corio__op_fini(struct corio__io *io)
{
    corio__ring_free(io->ring);
    io->ring = NULL;
}

void corio__op_submit_untracked(struct corio__io *io, const struct corio__op *op,
                                struct corio__completion *c)
{
    corio__ring_prep(io->ring, op, user_data(c, TAG_UNTRACKED), NULL, 0);
}

void corio__op_cancel(struct corio__io *io, struct corio__completion *c)
{
    corio__ring_cancel(io->ring, user_data(c, TAG_OP), 0);
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
        corio__panic("CQE with unknown user_data tag %llx", (unsigned long long)ud);
    }
    c->complete(c, cqe, tag == TAG_LINK);
}

unsigned corio__op_reap(struct corio__io *io)
{
    unsigned n, total = 0;
    do {
        n = corio__ring_reap(io->ring, io->cqes, CORIO__REAP_BATCH);
        for (unsigned i = 0; i < n; i++)
            dispatch(io, &io->cqes[i]);
        total += n;
    } while (n == CORIO__REAP_BATCH);
    return total;
}

bool corio__op_poller_asleep(const struct corio__io *io)
{
    return corio__ring_needs_enter(io->ring);
}

unsigned corio__op_unsubmitted(const struct corio__io *io)
{
    return corio__ring_unsubmitted(io->ring);
}
