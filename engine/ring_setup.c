/* The io_uring backend's set-up: the ring created with the best flags the kernel accepts, the
 * answers probe.c asks for, provided buffer rings, and the fixed file and buffer tables. */
#include "ring_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fault.h"

struct flag_map {
    enum corio_feature feat;
    unsigned setup;
};

static const struct flag_map setup_flags[] = {
    {CORIO_FEAT_SINGLE_ISSUER, IORING_SETUP_SINGLE_ISSUER},
    {CORIO_FEAT_DEFER_TASKRUN, IORING_SETUP_DEFER_TASKRUN},
    {CORIO_FEAT_COOP_TASKRUN, IORING_SETUP_COOP_TASKRUN},
    {CORIO_FEAT_TASKRUN_FLAG, IORING_SETUP_TASKRUN_FLAG},
    {CORIO_FEAT_SUBMIT_ALL, IORING_SETUP_SUBMIT_ALL},
    {CORIO_FEAT_SQPOLL, IORING_SETUP_SQPOLL},
    {CORIO_FEAT_CQSIZE, IORING_SETUP_CQSIZE},
};

static const struct flag_map op_map[] = {
    {CORIO_FEAT_NOP, IORING_OP_NOP},
    {CORIO_FEAT_READ, IORING_OP_READ},
    {CORIO_FEAT_WRITE, IORING_OP_WRITE},
    {CORIO_FEAT_READV, IORING_OP_READV},
    {CORIO_FEAT_WRITEV, IORING_OP_WRITEV},
    {CORIO_FEAT_OPENAT, IORING_OP_OPENAT},
    {CORIO_FEAT_CLOSE, IORING_OP_CLOSE},
    {CORIO_FEAT_FSYNC, IORING_OP_FSYNC},
    {CORIO_FEAT_STATX, IORING_OP_STATX},
    {CORIO_FEAT_SOCKET, IORING_OP_SOCKET},
    {CORIO_FEAT_ACCEPT, IORING_OP_ACCEPT},
    {CORIO_FEAT_CONNECT, IORING_OP_CONNECT},
    {CORIO_FEAT_SEND, IORING_OP_SEND},
    {CORIO_FEAT_RECV, IORING_OP_RECV},
    {CORIO_FEAT_SENDMSG, IORING_OP_SENDMSG},
    {CORIO_FEAT_RECVMSG, IORING_OP_RECVMSG},
    {CORIO_FEAT_SHUTDOWN, IORING_OP_SHUTDOWN},
    {CORIO_FEAT_TIMEOUT, IORING_OP_TIMEOUT},
    {CORIO_FEAT_LINK_TIMEOUT, IORING_OP_LINK_TIMEOUT},
    {CORIO_FEAT_ASYNC_CANCEL, IORING_OP_ASYNC_CANCEL},
    {CORIO_FEAT_MSG_RING, IORING_OP_MSG_RING},
    {CORIO_FEAT_SEND_ZC, IORING_OP_SEND_ZC},
    {CORIO_FEAT_READ_FIXED, IORING_OP_READ_FIXED},
    {CORIO_FEAT_WRITE_FIXED, IORING_OP_WRITE_FIXED},
    {CORIO_FEAT_PROVIDE_BUFFERS, IORING_OP_PROVIDE_BUFFERS},
    {CORIO_FEAT_POLL, IORING_OP_POLL_ADD},
};

static unsigned refused_setup(uint64_t refuse)
{
    unsigned out = 0;
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(setup_flags); i++)
        if (refuse & (1ull << setup_flags[i].feat))
            out |= setup_flags[i].setup;
    return out;
}

/* Drops the least essential flag of @f after the kernel refused it. Returns the new set, or
 * UINT32_MAX when there is nothing left to drop. DEFER_TASKRUN steps down to COOP_TASKRUN, and
 * the TASKRUN flag only exists with one of them (kernel: io_uring_setup's flag checks). */
static unsigned degrade(unsigned f, unsigned refused)
{
    if (f & IORING_SETUP_DEFER_TASKRUN) {
        f &= ~IORING_SETUP_DEFER_TASKRUN;
        if (!(refused & IORING_SETUP_COOP_TASKRUN))
            f |= IORING_SETUP_COOP_TASKRUN;
        else
            f &= ~IORING_SETUP_TASKRUN_FLAG;
        return f;
    }
    static const unsigned order[] = {IORING_SETUP_TASKRUN_FLAG, IORING_SETUP_COOP_TASKRUN,
                                     IORING_SETUP_SINGLE_ISSUER, IORING_SETUP_SUBMIT_ALL,
                                     IORING_SETUP_CQSIZE, IORING_SETUP_SQ_AFF,
                                     IORING_SETUP_SQPOLL};
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(order); i++) {
        if (f & order[i]) {
            f &= ~order[i];
            if (order[i] == IORING_SETUP_COOP_TASKRUN)
                f &= ~IORING_SETUP_TASKRUN_FLAG;
            if (order[i] == IORING_SETUP_SQPOLL)
                f &= ~IORING_SETUP_SQ_AFF;
            return f;
        }
    }
    return UINT32_MAX;
}

/* The flags to try first, minus those the test hook refuses, with the dependencies between them
 * kept (DEFER_TASKRUN needs SINGLE_ISSUER and no SQPOLL; TASKRUN_FLAG needs a TASKRUN mode). */
static unsigned wanted_flags(const struct corio_loop_opts *o, unsigned refused)
{
    unsigned f = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER;
    if (o->flags & CORIO_LOOP_SQPOLL) {
        f |= IORING_SETUP_SQPOLL;
        if (o->flags & CORIO_LOOP_SQPOLL_PIN)
            f |= IORING_SETUP_SQ_AFF;
    } else if (o->flags & CORIO_LOOP_FOREIGN) {
        /* Its completions must wake the ring's fd, which DEFER_TASKRUN's do not (ring.c):
         * COOP_TASKRUN, added below. */
        f |= IORING_SETUP_TASKRUN_FLAG;
    } else {
        f |= IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    }
    f &= ~refused;
    if ((f & IORING_SETUP_DEFER_TASKRUN) && !(f & IORING_SETUP_SINGLE_ISSUER))
        f &= ~IORING_SETUP_DEFER_TASKRUN;
    if (!(f & IORING_SETUP_DEFER_TASKRUN) && !(f & IORING_SETUP_SQPOLL) &&
        !(refused & IORING_SETUP_COOP_TASKRUN))
        f |= IORING_SETUP_COOP_TASKRUN;
    if (!(f & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN)))
        f &= ~IORING_SETUP_TASKRUN_FLAG;
    if (!(f & IORING_SETUP_SQPOLL))
        f &= ~IORING_SETUP_SQ_AFF;
    return f & ~refused;
}

/* The CORIO_FEAT_ bits of setup flags @f. */
static inline uint64_t setup_feats(unsigned f)
{
    uint64_t out = 0;
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(setup_flags); i++)
        if (f & setup_flags[i].setup)
            out |= 1ull << setup_flags[i].feat;
    return out;
}

static int try_setup(struct corio__ring *r, const struct corio_loop_opts *o, unsigned flags)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = flags;
    /* An op with a deadline takes two SQEs that must reach the kernel in one submission
     * (corio__ring_prep): a one-entry SQ could never make room for them. */
    unsigned sq_entries = o->sq_entries < 2 ? 2 : o->sq_entries;
    p.cq_entries = o->cq_entries;
    /* CQSIZE with a CQ smaller than the SQ is -EINVAL (kernel: io_uring_create), which the retry
     * loop would take for a refused flag and answer by dropping the good flags one by one. No
     * ring has a CQ smaller than its SQ (without CQSIZE it is twice the SQ): ask for that. */
    if (p.cq_entries < sq_entries)
        p.cq_entries = sq_entries;
    /* Fault seam (CORIO_TESTING, engine/fault.h): may force tiny rings ("sq=", "cq="). */
    corio__fault_params(&sq_entries, &p.cq_entries);
    if (flags & IORING_SETUP_SQPOLL) {
        p.sq_thread_idle = o->sqpoll_idle_ms ? o->sqpoll_idle_ms : 1000;
        p.sq_thread_cpu = (o->flags & CORIO_LOOP_SQPOLL_PIN) ? o->sqpoll_cpu : 0;
    }
    /* Fault seam: may refuse these flags as a kernel without them would ("refuse_setup="). */
    int err = corio__fault_setup(flags, setup_feats(flags));
    if (err)
        return err;
    err = io_uring_queue_init_params(sq_entries, &r->ring, &p);
    if (err)
        return err;
    r->setup_flags = flags;
    r->ext_arg = p.features & IORING_FEAT_EXT_ARG;
    r->cqe_skip = p.features & IORING_FEAT_CQE_SKIP;
    r->min_timeout = p.features & CORIO__FEAT_MIN_TIMEOUT;
    /* Fault seam: "hide_feat=ext_arg" makes the ring behave as on a kernel before 5.11. */
    if (corio__fault_hidden_ops() & (1ull << CORIO_FEAT_EXT_ARG))
        r->ext_arg = false;
    return 0;
}

uint64_t corio__ring_setup_feats(const struct corio__ring *r)
{
    return setup_feats(r->setup_flags);
}

uint64_t corio__ring_kernel_feats(const struct corio__ring *r)
{
    uint64_t f = 0;
    unsigned kf = r->ring.features;
    if (r->ext_arg)
        f |= 1ull << CORIO_FEAT_EXT_ARG;
    if (kf & IORING_FEAT_NODROP)
        f |= 1ull << CORIO_FEAT_NODROP;
    if (kf & IORING_FEAT_CQE_SKIP)
        f |= 1ull << CORIO_FEAT_CQE_SKIP;
    if (kf & IORING_FEAT_FAST_POLL)
        f |= 1ull << CORIO_FEAT_FAST_POLL;
    if (kf & IORING_FEAT_RW_CUR_POS)
        f |= 1ull << CORIO_FEAT_RW_CUR_POS;
    /* Multishot poll (IORING_POLL_ADD_MULTI) came with 5.13, as did IORING_FEAT_RSRC_TAGS: the
     * flag stands in for the version, which no probe shows. */
    if (kf & IORING_FEAT_RSRC_TAGS)
        f |= 1ull << CORIO_FEAT_POLL_MULTISHOT;
    if (r->enter_flags & IORING_ENTER_REGISTERED_RING)
        f |= 1ull << CORIO_FEAT_REG_RING_FD;
    return f & ~corio__fault_hidden_ops();
}

uint64_t corio__ring_probe_ops(struct corio__ring *r)
{
    uint64_t f = 0;
    /* IORING_REGISTER_PROBE (5.6) lists the opcodes this kernel knows. */
    struct io_uring_probe *p = io_uring_get_probe_ring(&r->ring);
    if (p) {
        for (size_t i = 0; i < CORIO__ARRAY_SIZE(op_map); i++)
            if (io_uring_opcode_supported(p, (int)op_map[i].setup))
                f |= 1ull << op_map[i].feat;
        io_uring_free_probe(p);
    }
    /* Fault seam: ops refused with "hide_op=" are missing from the probe, as on an older kernel. */
    return f & ~corio__fault_hidden_ops();
}

/* Notes what one attempt with @flags asked for and, when it failed with @err, why the flags it held
 * may be missing from the ring: the capability report says so (corio_report). */
static void note_attempt(struct corio__ring *r, unsigned flags, int err)
{
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(setup_flags); i++) {
        if (!(flags & setup_flags[i].setup))
            continue;
        r->setup_asked |= 1ull << setup_flags[i].feat;
        r->setup_refused[setup_flags[i].feat] = err;
    }
}

uint64_t corio__ring_setup_asked(const struct corio__ring *r)
{
    return r->setup_asked;
}

int corio__ring_setup_refusal(const struct corio__ring *r, enum corio_feature f)
{
    return (unsigned)f < CORIO_FEAT_COUNT ? r->setup_refused[f] : 0;
}

int corio__ring_new(struct corio__ring **out, const struct corio_loop_opts *o,
                    struct corio_stats *stats, uint64_t refuse)
{
    struct corio__ring *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->stats = stats;
    unsigned refused = refused_setup(refuse);
    unsigned flags = wanted_flags(o, refused);
    int err;
    for (;;) {
        err = try_setup(r, o, flags);
        note_attempt(r, flags, err);
        if (err != -EINVAL)
            break;
        flags = degrade(flags, refused);
        if (flags == UINT32_MAX)
            break;
    }
    /* SQPOLL may be refused with -EPERM (unprivileged on kernels before 5.11): the loop still
     * works without it, more slowly, as the design's "probe, don't assume" rule asks. */
    if (err == -EPERM && (flags & IORING_SETUP_SQPOLL)) {
        flags = wanted_flags(&(struct corio_loop_opts){.flags = o->flags & CORIO_LOOP_FOREIGN},
                             refused);
        err = try_setup(r, o, flags);
        note_attempt(r, flags, err);
    }
    if (err) {
        free(r);
        return err;
    }
    r->enter_fd = r->ring.ring_fd;
    if (!(refuse & (1ull << CORIO_FEAT_REG_RING_FD)) && io_uring_register_ring_fd(&r->ring) == 1) {
        r->enter_fd = r->ring.enter_ring_fd;
        r->enter_flags = IORING_ENTER_REGISTERED_RING;
    }
    /* liburing 2.3 fills the SQ index array at submit time; our own submit path does not, so
     * make it the identity once: SQE slot i is always array entry i. */
    for (unsigned i = 0; i < r->ring.sq.ring_entries; i++)
        r->ring.sq.array[i] = i;
    r->view.sqe_tail = &r->ring.sq.sqe_tail;
    r->view.sq_khead = r->ring.sq.khead;
    r->view.cq_khead = r->ring.cq.khead;
    r->view.cq_ktail = r->ring.cq.ktail;
    r->view.kflags = r->ring.sq.kflags;
    r->view.spill_n = &r->spill_n;
    /* Task work is only visible through IORING_SQ_TASKRUN when TASKRUN_FLAG is set; without it
     * (or with SQPOLL, whose enter path is cheap anyway) the loop must always enter. */
    if ((r->setup_flags & IORING_SETUP_SQPOLL) ||
        ((r->setup_flags & (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_DEFER_TASKRUN)) &&
         !(r->setup_flags & IORING_SETUP_TASKRUN_FLAG)))
        r->view.attention = ~0u;
    else
        r->view.attention = IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN;
    *out = r;
    return 0;
}

const struct corio__ring_view *corio__ring_view(const struct corio__ring *r)
{
    return &r->view;
}

void corio__ring_free(struct corio__ring *r)
{
    if (!r)
        return;
    io_uring_queue_exit(&r->ring);
    corio__fault_ring_free(r); /* fault seam: forget the CQEs it holds for this ring */
    free(r->spill);
    free(r);
}

/* ---- provided buffers, fixed files, fixed buffers -------------------------------------------- */

struct corio__pbuf {
    struct io_uring_buf_ring *br; /* shared with the kernel: it reads [head, tail) */
    size_t len;                   /* bytes mapped */
    unsigned mask;                /* entries - 1 */
};

int corio__ring_pbuf_new(struct corio__ring *r, uint16_t bgid, unsigned entries,
                         struct corio__pbuf **out)
{
    if (entries == 0 || entries > 32768 || (entries & (entries - 1)))
        return -EINVAL;
    struct corio__pbuf *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->len = entries * sizeof(struct io_uring_buf);
    /* Page-aligned memory the kernel pins: an anonymous mapping gives that. */
    void *mem = mmap(NULL, p->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        free(p);
        return -ENOMEM;
    }
    p->br = mem;
    p->mask = entries - 1;
    io_uring_buf_ring_init(p->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)mem;
    reg.ring_entries = entries;
    reg.bgid = bgid;
    int err = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (err) {
        munmap(mem, p->len);
        free(p);
        return err;
    }
    *out = p;
    return 0;
}

void corio__ring_pbuf_free(struct corio__ring *r, uint16_t bgid, struct corio__pbuf *p)
{
    if (!p)
        return;
    io_uring_unregister_buf_ring(&r->ring, bgid);
    munmap(p->br, p->len);
    free(p);
}

void corio__pbuf_put(struct corio__pbuf *p, void *addr, unsigned len, uint16_t bid)
{
    io_uring_buf_ring_add(p->br, addr, len, bid, (int)p->mask, 0);
    /* Release: the entry is written before the kernel can see the new tail. */
    io_uring_buf_ring_advance(p->br, 1);
}

int corio__ring_files_sparse(struct corio__ring *r, unsigned n)
{
    return io_uring_register_files_sparse(&r->ring, n);
}

int corio__ring_buffers_register(struct corio__ring *r, const struct iovec *iov, unsigned n)
{
    return io_uring_register_buffers(&r->ring, iov, n);
}

int corio__ring_buffers_unregister(struct corio__ring *r)
{
    return io_uring_unregister_buffers(&r->ring);
}
