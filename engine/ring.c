/* The io_uring layer. liburing (2.3, Debian 12's floor) sets the ring up and fills SQEs; the
 * submission and completion paths are written here against the ring's shared memory, so that
 * every io_uring_enter is one we chose and counted. */
#include "ring.h"

#include "base.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fault.h"

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
};

/* ---- setup ---------------------------------------------------------------------------------- */

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
        if (o->sqpoll_cpu > 0)
            f |= IORING_SETUP_SQ_AFF;
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
        p.sq_thread_cpu = o->sqpoll_cpu > 0 ? (unsigned)(o->sqpoll_cpu - 1) : 0;
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

int corio__ring_new(struct corio__ring **out, const struct corio_loop_opts *o,
                    struct corio_stats *stats)
{
    struct corio__ring *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->stats = stats;
    unsigned refused = refused_setup(o->refuse);
    unsigned flags = wanted_flags(o, refused);
    int err;
    for (;;) {
        err = try_setup(r, o, flags);
        if (err != -EINVAL)
            break;
        flags = degrade(flags, refused);
        if (flags == UINT32_MAX)
            break;
    }
    /* SQPOLL may be refused with -EPERM (unprivileged on kernels before 5.11): the loop still
     * works without it, more slowly, as the design's "probe, don't assume" rule asks. */
    if (err == -EPERM && (flags & IORING_SETUP_SQPOLL)) {
        flags = wanted_flags(&(struct corio_loop_opts){.flags = 0}, refused);
        err = try_setup(r, o, flags);
    }
    if (err) {
        free(r);
        return err;
    }
    r->enter_fd = r->ring.ring_fd;
    if (!(o->refuse & (1ull << CORIO_FEAT_REG_RING_FD)) && io_uring_register_ring_fd(&r->ring) == 1) {
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

/* ---- submission ----------------------------------------------------------------------------- */

static inline unsigned sq_khead(const struct corio__ring *r)
{
    /* With SQPOLL the kernel thread advances the head concurrently: acquire pairs with its
     * release so that the slots before it are free for us to reuse. */
    if (r->setup_flags & IORING_SETUP_SQPOLL)
        return io_uring_smp_load_acquire(r->ring.sq.khead);
    return *r->ring.sq.khead;
}

unsigned corio__ring_unsubmitted(const struct corio__ring *r)
{
    return r->ring.sq.sqe_tail - sq_khead(r);
}

/* Publishes the locally prepared SQEs to the kernel by moving the shared tail. */
static inline void sq_flush(struct corio__ring *r)
{
    struct io_uring_sq *sq = &r->ring.sq;
    if (sq->sqe_head != sq->sqe_tail) {
        if (r->setup_flags & IORING_SETUP_SQPOLL)
            r->stats->sqes += sq->sqe_tail - sq->sqe_head;
        sq->sqe_head = sq->sqe_tail;
        /* Pairs with the kernel's acquire of the SQ tail: the SQE contents are visible first. */
        io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
    }
}

static void spill_cqes(struct corio__ring *r);

/* The raw system call, with the fault seam in testing builds. */
static int ring_enter(struct corio__ring *r, unsigned submit, unsigned min, unsigned flags,
                      void *arg, size_t argsz)
{
    r->stats->enters++;
    /* Fault seam: may fail the call, and turns a wait into a poll while it holds CQEs back. */
    int ret = corio__fault_enter(r, &min);
    if (ret)
        return ret;
    return io_uring_enter2((unsigned)r->enter_fd, submit, min, flags | r->enter_flags, arg, argsz);
}

/* Makes room for @need SQEs when the SQ is full: submits what is queued (waiting for the SQ poller
 * to consume in SQPOLL mode). A kernel that refuses to submit while CQEs are backed up (-EBUSY) gets
 * its CQ emptied into the spill list first, so that no completion is lost. */
static void make_room(struct corio__ring *r, unsigned need)
{
    while (r->ring.sq.ring_entries - corio__ring_unsubmitted(r) < need) {
        sq_flush(r);
        unsigned flags = 0, submit = corio__ring_unsubmitted(r);
        if (r->setup_flags & IORING_SETUP_SQPOLL) {
            io_uring_smp_mb();
            flags = IORING_ENTER_SQ_WAIT;
            if (IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_NEED_WAKEUP)
                flags |= IORING_ENTER_SQ_WAKEUP;
        }
        int ret = ring_enter(r, submit, 0, flags, NULL, 0);
        if (ret > 0 && !(r->setup_flags & IORING_SETUP_SQPOLL))
            r->stats->sqes += (unsigned)ret;
        if (ret == -EBUSY || ret == -EAGAIN || ret == 0)
            spill_cqes(r);
        else if (ret < 0 && ret != -EINTR)
            corio__panic("io_uring_enter to flush a full SQ failed: %s", strerror(-ret));
    }
}

static inline struct io_uring_sqe *get_sqe(struct corio__ring *r)
{
    struct io_uring_sq *sq = &r->ring.sq;
    struct io_uring_sqe *sqe = &sq->sqes[sq->sqe_tail & sq->ring_mask];
    sq->sqe_tail++;
    return sqe;
}

static void prep_sqe(struct io_uring_sqe *sqe, const struct corio__op *op)
{
    int fd = op->fd;
    /* A direct descriptor: the SQE names a slot of the fixed file table, not an fd. */
    bool fixed = op->opcode != CORIO__OP_SOCKET && op->opcode != CORIO__OP_NOP &&
                 op->opcode != CORIO__OP_TIMEOUT && fd >= 0 && (fd & CORIO__FD_FIXED);
    if (fixed && op->opcode == CORIO__OP_CLOSE) {
        io_uring_prep_close_direct(sqe, (unsigned)(fd & ~CORIO__FD_FIXED));
        return;
    }
    if (fixed) {
        struct corio__op copy = *op;
        copy.fd = fd & ~CORIO__FD_FIXED;
        prep_sqe(sqe, &copy);
        sqe->flags |= IOSQE_FIXED_FILE;
        return;
    }
    switch (op->opcode) {
    case CORIO__OP_NOP:
        io_uring_prep_nop(sqe);
        break;
    case CORIO__OP_READ:
        io_uring_prep_read(sqe, op->fd, (void *)op->addr, op->len, op->off);
        break;
    case CORIO__OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->addr, op->len, op->off);
        break;
    case CORIO__OP_READV:
        io_uring_prep_readv(sqe, op->fd, op->addr, op->len, op->off);
        break;
    case CORIO__OP_WRITEV:
        io_uring_prep_writev(sqe, op->fd, op->addr, op->len, op->off);
        break;
    case CORIO__OP_OPENAT:
        io_uring_prep_openat(sqe, op->fd, op->addr, (int)op->op_flags, op->aux);
        break;
    case CORIO__OP_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case CORIO__OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, op->op_flags ? IORING_FSYNC_DATASYNC : 0);
        break;
    case CORIO__OP_STATX:
        io_uring_prep_statx(sqe, op->fd, op->addr, (int)op->op_flags, op->aux,
                            (struct statx *)op->addr2);
        break;
    case CORIO__OP_SOCKET:
        io_uring_prep_socket(sqe, op->fd, (int)op->op_flags, (int)op->len, 0);
        break;
    case CORIO__OP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, (struct sockaddr *)op->addr, (socklen_t *)op->addr2,
                             (int)op->op_flags);
        break;
    case CORIO__OP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->addr, op->len);
        break;
    case CORIO__OP_SEND:
        io_uring_prep_send(sqe, op->fd, op->addr, op->len, (int)op->op_flags);
        break;
    case CORIO__OP_RECV:
        io_uring_prep_recv(sqe, op->fd, (void *)op->addr, op->len, (int)op->op_flags);
        break;
    case CORIO__OP_SENDMSG:
        io_uring_prep_sendmsg(sqe, op->fd, op->addr, op->op_flags);
        break;
    case CORIO__OP_RECVMSG:
        io_uring_prep_recvmsg(sqe, op->fd, (struct msghdr *)op->addr, op->op_flags);
        break;
    case CORIO__OP_SHUTDOWN:
        io_uring_prep_shutdown(sqe, op->fd, (int)op->len);
        break;
    case CORIO__OP_TIMEOUT:
        /* Absolute on CLOCK_MONOTONIC, the clock of corio_now(). Completes with -ETIME. */
        io_uring_prep_timeout(sqe, (struct __kernel_timespec *)op->addr, 0, IORING_TIMEOUT_ABS);
        break;
    case CORIO__OP_RECV_MULTI:
        /* Multishot recv (6.0) picking each buffer from group aux: one SQE, a CQE per arrival. */
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, (int)op->op_flags);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = (uint16_t)op->aux;
        break;
    case CORIO__OP_ACCEPT_MULTI:
        if (op->aux & 2) /* one accept into a free fixed slot */
            /* liburing 2.3 stores file_index + 1: ALLOC - 1 gives the kernel's ALLOC. */
            io_uring_prep_accept_direct(sqe, op->fd, NULL, NULL, (int)op->op_flags,
                                        IORING_FILE_INDEX_ALLOC - 1);
        else if (op->aux & 1)
            io_uring_prep_multishot_accept_direct(sqe, op->fd, NULL, NULL, (int)op->op_flags);
        else
            io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, (int)op->op_flags);
        break;
    case CORIO__OP_SEND_ZC:
        io_uring_prep_send_zc(sqe, op->fd, op->addr, op->len, (int)op->op_flags, 0);
        break;
    case CORIO__OP_READ_FIXED:
        io_uring_prep_read_fixed(sqe, op->fd, (void *)op->addr, op->len, op->off, (int)op->aux);
        break;
    case CORIO__OP_WRITE_FIXED:
        io_uring_prep_write_fixed(sqe, op->fd, op->addr, op->len, op->off, (int)op->aux);
        break;
    default:
        corio__panic("unknown opcode %u", op->opcode);
    }
}

void corio__ring_prep(struct corio__ring *r, const struct corio__op *op, uint64_t user_data,
                      const struct corio__ts *link_ts, uint64_t link_ud)
{
    /* An op and its linked timeout must reach the kernel in the same submission, or the link
     * would be cut: reserve both slots before preparing either. */
    unsigned need = link_ts ? 2 : 1;
    if (unlikely(r->ring.sq.ring_entries - corio__ring_unsubmitted(r) < need))
        make_room(r, need);
    else if (unlikely(corio__fault_sq_full(r)) && corio__ring_unsubmitted(r))
        make_room(r, r->ring.sq.ring_entries - corio__ring_unsubmitted(r) + 1); /* seam: "full" */
    /* Fault seam: may shorten the op, or swap it for a NOP whose CQE it rewrites at reap. */
    struct corio__op faulted;
    op = corio__fault_prep(r, op, user_data, &faulted);
    struct io_uring_sqe *sqe = get_sqe(r);
    prep_sqe(sqe, op);
    io_uring_sqe_set_data64(sqe, user_data);
    if (link_ts) {
        sqe->flags |= IOSQE_IO_LINK;
        struct io_uring_sqe *t = get_sqe(r);
        io_uring_prep_link_timeout(t, (struct __kernel_timespec *)link_ts, IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(t, link_ud);
    }
}

void corio__ring_cancel(struct corio__ring *r, uint64_t target, uint64_t own)
{
    if (unlikely(r->ring.sq.ring_entries - corio__ring_unsubmitted(r) < 1))
        make_room(r, 1);
    struct io_uring_sqe *sqe = get_sqe(r);
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, own);
    if (r->cqe_skip)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

bool corio__ring_needs_enter(const struct corio__ring *r)
{
    unsigned f = IO_URING_READ_ONCE(*r->ring.sq.kflags);
    return f & (IORING_SQ_NEED_WAKEUP | IORING_SQ_CQ_OVERFLOW);
}

int corio__ring_enter(struct corio__ring *r, bool wait, int64_t timeout_ns, unsigned batch,
                      unsigned batch_us)
{
    /* A timed or batched wait needs EXT_ARG: without it the loop arms a timeout SQE and calls
     * again, so nothing is counted or woken here. */
    bool batched = wait && batch > 1 && batch_us > 0 && r->min_timeout;
    if (wait && (timeout_ns >= 0 || batched) && !r->ext_arg)
        return -EOPNOTSUPP;
    sq_flush(r);
    unsigned submit = corio__ring_unsubmitted(r);
    unsigned kflags = IO_URING_READ_ONCE(*r->ring.sq.kflags);
    unsigned flags = 0;
    if (kflags & IORING_SQ_CQ_OVERFLOW) {
        /* The CQ ring overflowed into the kernel's list (FEAT_NODROP keeps them); GETEVENTS
         * flushes them back as we make room. Counted once per enter that sees the flag. */
        r->stats->cq_overflows++;
        flags |= IORING_ENTER_GETEVENTS;
    }
    if (r->setup_flags & IORING_SETUP_SQPOLL) {
        /* Full barrier between publishing the tail and reading NEED_WAKEUP, pairing with the
         * poller's barrier between setting the flag and its last look at the tail. */
        io_uring_smp_mb();
        /* Wake a sleeping poller only when it has SQEs to take, and once per batch published:
         * until it runs and clears NEED_WAKEUP, another wake-up for the same SQEs is a wasted
         * system call (thousands of them while the loop spins on runnable coroutines). */
        if ((IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_NEED_WAKEUP) && submit &&
            (wait || r->ring.sq.sqe_tail != r->woken_tail)) {
            flags |= IORING_ENTER_SQ_WAKEUP;
            r->woken_tail = r->ring.sq.sqe_tail;
        }
        submit = 0;
    } else if (submit == 0 && !wait && !(kflags & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN))) {
        return 0;
    }
    if (kflags & IORING_SQ_TASKRUN)
        flags |= IORING_ENTER_GETEVENTS;
    if ((r->setup_flags & IORING_SETUP_SQPOLL) && !wait && !flags)
        return 0;

    struct io_uring_getevents_arg arg;
    struct __kernel_timespec ts;
    void *argp = NULL;
    size_t argsz = 0;
    unsigned min = 0;
    if (wait) {
        flags |= IORING_ENTER_GETEVENTS;
        min = 1;
        if (timeout_ns >= 0 || batched) {
            memset(&arg, 0, sizeof(arg));
            if (timeout_ns >= 0) {
                ts.tv_sec = timeout_ns / 1000000000;
                ts.tv_nsec = timeout_ns % 1000000000;
                arg.ts = (uint64_t)(uintptr_t)&ts;
            }
            if (batched) {
                /* Wait for @batch completions, but no longer than batch_us once one is there:
                 * busy loops wake less often, an idle one is not slowed down. */
                min = batch;
                arg.pad = batch_us; /* min_wait_usec */
            }
            argp = &arg;
            argsz = sizeof(arg);
            flags |= IORING_ENTER_EXT_ARG;
        }
    } else if (r->setup_flags & IORING_SETUP_DEFER_TASKRUN) {
        /* Deferred task work (6.1) runs only inside GETEVENTS: ask for it on every submit so that
         * completions keep flowing while coroutines are runnable. */
        flags |= IORING_ENTER_GETEVENTS;
    }
    int ret = ring_enter(r, submit, min, flags, argp, argsz);
    if (ret >= 0) {
        if (!(r->setup_flags & IORING_SETUP_SQPOLL))
            r->stats->sqes += (unsigned)ret;
        return 0;
    }
    switch (ret) {
    case -ETIME:  /* the wait timed out: timers are due */
    case -EINTR:  /* a signal: the loop comes round again */
    case -EAGAIN: /* no memory for requests right now: reap and retry */
    case -EBUSY:  /* CQ backlog: reap and retry */
        return 0;
    default:
        return ret;
    }
}

/* ---- completion ----------------------------------------------------------------------------- */

static unsigned reap_ring(struct corio__ring *r, struct corio__cqe *out, unsigned max)
{
    struct io_uring_cq *cq = &r->ring.cq;
    unsigned head = *cq->khead;
    /* Acquire pairs with the kernel's release of the CQ tail: the CQEs in [head, tail) are
     * fully written. */
    unsigned tail = io_uring_smp_load_acquire(cq->ktail);
    unsigned n = 0;
    while (head != tail && n < max) {
        const struct io_uring_cqe *cqe = &cq->cqes[head & cq->ring_mask];
        out[n].user_data = cqe->user_data;
        out[n].res = cqe->res;
        out[n].flags = cqe->flags;
        n++;
        head++;
    }
    if (n) {
        /* Release: the copies above are done before the kernel may reuse the slots. */
        io_uring_smp_store_release(cq->khead, head);
        r->stats->cqes += n;
    }
    return n;
}

static void spill_cqes(struct corio__ring *r)
{
    for (;;) {
        if (r->spill_n == r->spill_cap) {
            unsigned cap = r->spill_cap ? r->spill_cap * 2 : 256;
            struct corio__cqe *s = realloc(r->spill, cap * sizeof(*s));
            if (!s)
                corio__panic("out of memory while spilling CQEs");
            r->spill = s;
            r->spill_cap = cap;
        }
        unsigned n = reap_ring(r, r->spill + r->spill_n, r->spill_cap - r->spill_n);
        r->spill_n += n;
        if (n == 0)
            return;
    }
}

unsigned corio__ring_reap(struct corio__ring *r, struct corio__cqe *out, unsigned max)
{
    if (unlikely(r->spill_n)) {
        unsigned n = r->spill_n < max ? r->spill_n : max;
        memcpy(out, r->spill, n * sizeof(*out));
        memmove(r->spill, r->spill + n, (r->spill_n - n) * sizeof(*out));
        r->spill_n -= n;
        /* Through the fault seam too: it may hold older CQEs of the same user_data. */
        return corio__fault_cqes(r, out, n, max);
    }
    unsigned n = reap_ring(r, out, max);
    return corio__fault_cqes(r, out, n, max); /* fault seam: rewrite, reorder, hold back */
}

/* ---- provided buffers, fixed files, fixed buffers --------------------------------------------- */

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
