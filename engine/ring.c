/* The io_uring backend's hot path: SQEs prepared from struct corio__op, submission, waiting, and
 * CQEs copied out. liburing (2.3, Debian 12's floor) fills the SQEs; submission and completion are
 * written here against the ring's shared memory, so that every io_uring_enter is one we chose and
 * counted. */
#include "ring_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

/* ---- submission ------------------------------------------------------------------------------ */

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

/* The file ops: read, write and their vector and fixed-buffer forms, open, fsync, statx. */
static void prep_file_op(struct io_uring_sqe *sqe, const struct corio__op *op)
{
    switch (op->opcode) {
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
    case CORIO__OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, op->op_flags ? IORING_FSYNC_DATASYNC : 0);
        break;
    case CORIO__OP_STATX:
        io_uring_prep_statx(sqe, op->fd, op->addr, (int)op->op_flags, op->aux,
                            (struct statx *)op->addr2);
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

/* The socket ops, single-shot. */
static void prep_net_op(struct io_uring_sqe *sqe, const struct corio__op *op)
{
    switch (op->opcode) {
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
    case CORIO__OP_SEND_ZC:
        io_uring_prep_send_zc(sqe, op->fd, op->addr, op->len, (int)op->op_flags, 0);
        break;
    default:
        corio__panic("unknown opcode %u", op->opcode);
    }
}

/* The multishot socket ops: one SQE, a CQE per arrival. */
static void prep_multishot_op(struct io_uring_sqe *sqe, const struct corio__op *op)
{
    if (op->opcode == CORIO__OP_RECV_MULTI) {
        /* Multishot recv (6.0) picking each buffer from group aux. */
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, (int)op->op_flags);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = (uint16_t)op->aux;
    } else if (op->aux & 2) {
        /* One accept into a free fixed slot. liburing 2.3 stores file_index + 1: ALLOC - 1 gives
         * the kernel's ALLOC. */
        io_uring_prep_accept_direct(sqe, op->fd, NULL, NULL, (int)op->op_flags,
                                    IORING_FILE_INDEX_ALLOC - 1);
    } else if (op->aux & 1) {
        io_uring_prep_multishot_accept_direct(sqe, op->fd, NULL, NULL, (int)op->op_flags);
    } else {
        io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, (int)op->op_flags);
    }
}

/* Prepares, in @sqe, an async cancel of every request on the file of @fd (a slot of the fixed
 * file table if @fixed), hard-linked to the next SQE: a close (corio_close) that must not leave
 * other coroutines' ops waiting on the file it ends, nor let them take data that comes after it.
 * The close runs only once the cancel has been processed, and whatever its result: a plain link
 * would be cut by its -EBADF on a bad fd and turn the close's own -EBADF into -ECANCELED. Nobody
 * waits for the cancel's CQE (user_data 0), skipped on success where the kernel can. Known cost:
 * the kernel finds the requests on a file by walking all the ring's armed polls (io_uring/poll.c,
 * io_poll_file_find), O(ops waiting) per close, ~20 ns each on 6.18. Returns the next SQE, taken
 * from the ring (corio__ring_prep reserved it). */
static struct io_uring_sqe *prep_cancel_fd(struct corio__ring *r, struct io_uring_sqe *sqe, int fd,
                                           bool fixed)
{
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, 0);
    sqe->flags |= IOSQE_IO_HARDLINK;
    if (fixed)
        sqe->flags |= IOSQE_FIXED_FILE;
    if (r->cqe_skip)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    return get_sqe(r);
}

/* Prepares @op in @sqe, or in the SQE after it for a close that cancels first (the only op that
 * takes two). Returns the SQE that carries @op. */
static struct io_uring_sqe *prep_sqe(struct corio__ring *r, struct io_uring_sqe *sqe,
                                     const struct corio__op *op)
{
    int fd = op->fd;
    /* A direct descriptor: the SQE names a slot of the fixed file table, not an fd. */
    bool fixed = op->opcode != CORIO__OP_SOCKET && op->opcode != CORIO__OP_NOP &&
                 op->opcode != CORIO__OP_TIMEOUT && fd >= 0 && (fd & CORIO__FD_FIXED);
    if (fixed && op->opcode == CORIO__OP_CLOSE) {
        unsigned slot = (unsigned)(fd & ~CORIO__FD_FIXED);
        if (op->aux & CORIO__CLOSE_CANCEL)
            sqe = prep_cancel_fd(r, sqe, (int)slot, true);
        io_uring_prep_close_direct(sqe, slot);
        return sqe;
    }
    if (fixed) {
        struct corio__op copy = *op;
        copy.fd = fd & ~CORIO__FD_FIXED;
        sqe = prep_sqe(r, sqe, &copy);
        sqe->flags |= IOSQE_FIXED_FILE;
        return sqe;
    }
    switch (op->opcode) {
    case CORIO__OP_NOP:
        io_uring_prep_nop(sqe);
        break;
    case CORIO__OP_TIMEOUT:
        /* Absolute on CLOCK_MONOTONIC, the clock of corio_now(). Completes with -ETIME. */
        io_uring_prep_timeout(sqe, (struct __kernel_timespec *)op->addr, 0, IORING_TIMEOUT_ABS);
        break;
    case CORIO__OP_CLOSE:
        if (op->aux & CORIO__CLOSE_CANCEL)
            sqe = prep_cancel_fd(r, sqe, fd, false);
        io_uring_prep_close(sqe, fd);
        break;
    case CORIO__OP_POLL:
        if (op->aux & CORIO__POLL_MULTI)
            io_uring_prep_poll_multishot(sqe, fd, op->op_flags);
        else
            io_uring_prep_poll_add(sqe, fd, op->op_flags);
        break;
    case CORIO__OP_RECV_MULTI:
    case CORIO__OP_ACCEPT_MULTI:
        prep_multishot_op(sqe, op);
        break;
    case CORIO__OP_SOCKET:
    case CORIO__OP_ACCEPT:
    case CORIO__OP_CONNECT:
    case CORIO__OP_SEND:
    case CORIO__OP_RECV:
    case CORIO__OP_SENDMSG:
    case CORIO__OP_RECVMSG:
    case CORIO__OP_SHUTDOWN:
    case CORIO__OP_SEND_ZC:
        prep_net_op(sqe, op);
        break;
    default:
        prep_file_op(sqe, op);
    }
    return sqe;
}

void corio__ring_prep(struct corio__ring *r, const struct corio__op *op, uint64_t user_data,
                      const struct corio__ts *link_ts, uint64_t link_ud)
{
    /* An op and its linked timeout must reach the kernel in the same submission, or the link
     * would be cut: reserve both slots before preparing either. So must a close and the cancel
     * linked before it (prep_cancel_fd), which never has a deadline: the test keeps one slot
     * more than @need free, which costs the common path nothing (<= for <), so that a close
     * finds its second slot there too. */
    unsigned need = link_ts ? 2 : 1;
    if (unlikely(r->ring.sq.ring_entries - corio__ring_unsubmitted(r) <= need))
        make_room(r, need + (op->opcode == CORIO__OP_CLOSE && (op->aux & CORIO__CLOSE_CANCEL)));
    else if (unlikely(corio__fault_sq_full(r)) && corio__ring_unsubmitted(r))
        make_room(r, r->ring.sq.ring_entries - corio__ring_unsubmitted(r) + 1); /* seam: "full" */
    /* Fault seam: may shorten the op, or swap it for a NOP whose CQE it rewrites at reap. */
    struct corio__op faulted;
    op = corio__fault_prep(r, op, user_data, &faulted);
    struct io_uring_sqe *sqe = prep_sqe(r, get_sqe(r), op);
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

void corio__ring_msg(struct corio__ring *r, const struct corio__ring *target, uint64_t target_ud,
                     uint64_t own_ud)
{
    if (unlikely(r->ring.sq.ring_entries - corio__ring_unsubmitted(r) < 1))
        make_room(r, 1);
    struct io_uring_sqe *sqe = get_sqe(r);
    /* IORING_MSG_DATA: a CQE of len (0) and user_data on the target, whose wait it ends. The
     * target's plain ring fd: a registered index means nothing outside its own thread. (The
     * uapi's IORING_MSG_RING_CQE_SKIP would skip the target's CQE, and MSG_DATA refuses it.) */
    io_uring_prep_msg_ring(sqe, target->ring.ring_fd, 0, target_ud, 0);
    io_uring_sqe_set_data64(sqe, own_ud);
    if (r->cqe_skip)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

bool corio__ring_needs_enter(const struct corio__ring *r)
{
    unsigned f = IO_URING_READ_ONCE(*r->ring.sq.kflags);
    return f & (IORING_SQ_NEED_WAKEUP | IORING_SQ_CQ_OVERFLOW);
}

/* SQPOLL: the flags an enter needs to wake a sleeping poller for the @submit SQEs just published,
 * if any. */
static unsigned sqpoll_wake(struct corio__ring *r, unsigned submit, bool wait)
{
    /* Full barrier between publishing the tail and reading NEED_WAKEUP, pairing with the poller's
     * barrier between setting the flag and its last look at the tail. */
    io_uring_smp_mb();
    /* Wake a sleeping poller only when it has SQEs to take, and once per batch published: until
     * it runs and clears NEED_WAKEUP, another wake-up for the same SQEs is a wasted system call
     * (thousands of them while the loop spins on runnable coroutines). */
    if ((IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_NEED_WAKEUP) && submit &&
        (wait || r->ring.sq.sqe_tail != r->woken_tail)) {
        r->woken_tail = r->ring.sq.sqe_tail;
        return IORING_ENTER_SQ_WAKEUP;
    }
    return 0;
}

/* What a wait asks of io_uring_enter: how many CQEs (*min) and, with a timeout or a batch cap, the
 * EXT_ARG argument in @arg (with @ts). Returns the flags to add. */
static unsigned wait_args(int64_t timeout_ns, unsigned batch, unsigned batch_us, bool batched,
                          struct io_uring_getevents_arg *arg, struct __kernel_timespec *ts,
                          unsigned *min)
{
    *min = 1;
    if (timeout_ns < 0 && !batched)
        return IORING_ENTER_GETEVENTS;
    memset(arg, 0, sizeof(*arg));
    if (timeout_ns >= 0) {
        ts->tv_sec = timeout_ns / 1000000000;
        ts->tv_nsec = timeout_ns % 1000000000;
        arg->ts = (uint64_t)(uintptr_t)ts;
    }
    if (batched) {
        /* Wait for @batch completions, but no longer than batch_us once one is there: busy
         * loops wake less often, an idle one is not slowed down. */
        *min = batch;
        arg->pad = batch_us; /* min_wait_usec */
    }
    return IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
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
        flags |= sqpoll_wake(r, submit, wait);
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
    unsigned min = 0;
    if (wait)
        flags |= wait_args(timeout_ns, batch, batch_us, batched, &arg, &ts, &min);
    else if (r->setup_flags & IORING_SETUP_DEFER_TASKRUN)
        /* Deferred task work (6.1) runs only inside GETEVENTS: ask for it on every submit so that
         * completions keep flowing while coroutines are runnable. */
        flags |= IORING_ENTER_GETEVENTS;
    bool ext = flags & IORING_ENTER_EXT_ARG;
    int ret = ring_enter(r, submit, min, flags, ext ? &arg : NULL, ext ? sizeof(arg) : 0);
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

/* ---- completion ------------------------------------------------------------------------------ */

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

/* ---- driven by another event loop ------------------------------------------------------------ */

/* What the kernel does (6.18 here, tried with a pipe read completed by another thread while the
 * owner slept in epoll_wait): io_uring_poll reports the ring's fd readable while the CQ holds CQEs
 * (or overflowed, or has deferred task work), and wakes its pollers when it posts CQEs. Without
 * DEFER_TASKRUN a completion is task work that interrupts the sleeping owner's wait (its
 * epoll_wait returns EINTR), runs on the way back to user space and posts the CQE, and the fd
 * polls readable within 0.1 ms. With DEFER_TASKRUN the completion is only queued for the owner's
 * next io_uring_enter, and pollers are not woken at all (epoll_wait timed out); an eventfd
 * registered with IORING_REGISTER_EVENTFD is signalled, but 13 to 19 ms late (the SQ's TASKRUN
 * flag was set at once). Hence CORIO_LOOP_FOREIGN leaves DEFER_TASKRUN out (ring_setup.c), and
 * the ring's own fd does. */
int corio__ring_fd(const struct corio__ring *r)
{
    return (r->setup_flags & IORING_SETUP_DEFER_TASKRUN) ? -EINVAL : r->ring.ring_fd;
}

bool corio__ring_settled(const struct corio__ring *r)
{
    if (corio__ring_has_cqes(&r->view))
        return false;
    if (IO_URING_READ_ONCE(*r->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))
        return false;
    /* SQPOLL's poller takes published SQEs by itself (a flush wakes it if it sleeps). */
    if (r->setup_flags & IORING_SETUP_SQPOLL)
        return r->ring.sq.sqe_head == r->ring.sq.sqe_tail;
    return corio__ring_unsubmitted(r) == 0;
}
