/* Futures: starting an op on one, its completion (the result mapped, a transient -EAGAIN retried,
 * the owner woken), and awaiting one, any or all of them; cancelling. Also the two ops that touch
 * no file, nop and sleep: nop measures this path itself, so it lives where it inlines. */
#include "future.h"

#include "loop.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef CORIO__VALGRIND
#include <valgrind/memcheck.h>
#endif

static struct corio__io *io_of(const struct corio__future *f)
{
    return &corio__loop_of(&f->p.owner->t)->io;
}

/* Sends an async cancel for pending @f, once. */
static void cancel_kernel(struct corio__future *f)
{
    if (f->flags & CORIO__FF_CANCELLED)
        return;
    f->flags |= CORIO__FF_CANCELLED;
    corio__op_cancel(io_of(f), &f->p.c);
}

/* The owner ended with @f pending: the CQE must still come before its stack may go. */
static void pending_cancel(struct corio__pending *p)
{
    cancel_kernel(container_of(p, struct corio__future, p));
}

/* ---- completion ------------------------------------------------------------------------------- */

#ifdef CORIO__VALGRIND
/* memcheck cannot see the kernel write through io_uring: tell it what a completed op filled, or
 * every read buffer looks uninitialized to it. */
static void vg_mark_filled(const struct corio__future *f)
{
    const struct corio__op *op = &f->op;
    size_t n = (size_t)f->res;
    switch (op->opcode) {
    case CORIO__OP_READ:
    case CORIO__OP_RECV:
    case CORIO__OP_READ_FIXED:
        VALGRIND_MAKE_MEM_DEFINED(op->addr, n);
        break;
    case CORIO__OP_READV:
    case CORIO__OP_RECVMSG: {
        const struct msghdr *m = op->addr;
        const struct iovec *iov = op->opcode == CORIO__OP_READV ? op->addr : m->msg_iov;
        size_t cnt = op->opcode == CORIO__OP_READV ? op->len : m->msg_iovlen;
        for (size_t i = 0; i < cnt && n > 0; i++) {
            size_t k = iov[i].iov_len < n ? iov[i].iov_len : n;
            VALGRIND_MAKE_MEM_DEFINED(iov[i].iov_base, k);
            n -= k;
        }
        if (op->opcode == CORIO__OP_RECVMSG) {
            if (m->msg_name)
                VALGRIND_MAKE_MEM_DEFINED(m->msg_name, m->msg_namelen);
            if (m->msg_control)
                VALGRIND_MAKE_MEM_DEFINED(m->msg_control, m->msg_controllen);
        }
        break;
    }
    case CORIO__OP_STATX:
        VALGRIND_MAKE_MEM_DEFINED(op->addr2, 256); /* sizeof(struct statx) */
        break;
    case CORIO__OP_ACCEPT:
        if (op->addr && op->addr2)
            VALGRIND_MAKE_MEM_DEFINED(op->addr, *(const socklen_t *)op->addr2);
        break;
    default:
        break;
    }
}
#endif

/* Maps a finished future's raw CQE result to what the caller sees: a deadline that passed turns
 * the op's cancellation into -ETIMEDOUT, a drain's into -ESHUTDOWN; our own async cancel gives
 * -ECANCELED (io-wq workers interrupted by it may report -EINTR). A result the op produced itself
 * is kept: data that arrived as the cancel raced it is not lost. */
static inline void settle(struct corio__future *f)
{
#ifdef CORIO__VALGRIND
    if (f->res >= 0 && unlikely(corio__on_valgrind))
        vg_mark_filled(f);
#endif
    int64_t res = f->res;
    if (f->kind == CORIO__FK_SLEEP) {
        /* Expired: the sleep's success. Cancelled by the owner's own deadline: that deadline's
         * error, as for any wait. */
        if (res == -ETIME || (res == -ECANCELED && (f->flags & CORIO__FF_VEXPIRED)))
            res = 0;
        else if (res == -ECANCELED && (f->flags & CORIO__FF_TIMED_OUT))
            res = -ETIMEDOUT;
        else if (res == -ECANCELED && (f->flags & CORIO__FF_SHUTDOWN))
            res = -ESHUTDOWN;
    } else if (unlikely(res == -ECANCELED || res == -EINTR || res == -EAGAIN)) {
        /* A transient -EAGAIN is not retried once the op is cancelled or timed out (retry): the
         * op did nothing, so report why it ended instead; a coroutine cancelled in a recv must
         * not see -EAGAIN. */
        if (f->flags & CORIO__FF_TIMED_OUT)
            res = -ETIMEDOUT;
        else if (f->flags & CORIO__FF_SHUTDOWN)
            res = -ESHUTDOWN;
        else if (f->flags & CORIO__FF_CANCELLED)
            res = -ECANCELED;
    }
    f->res = res;
}

/* A zombie's op that produced an fd: an accept, socket or open that completed before the engine's
 * cancel reached it (e.g. submitted with its connection already queued). Its owner returned
 * without awaiting it, so nobody can ever take the fd: close it rather than leak it. */
static void zombie_orphan(const struct corio__future *f)
{
    switch (f->op.opcode) {
    case CORIO__OP_ACCEPT:
    case CORIO__OP_SOCKET:
    case CORIO__OP_OPENAT:
        if (f->res >= 0)
            close((int)f->res);
        break;
    default:
        break;
    }
}

/* One of @f's CQEs is in; once the last one is, the result is final and the owner is told. */
static inline void arrived(struct corio__future *f)
{
    if (--f->pending)
        return;
    settle(f);
    struct corio_coro *co = f->p.owner;
    if (unlikely(f->op.opcode == CORIO__OP_CLOSE) && f->res == 0 && f->op.fd >= 0 &&
        (f->op.fd & CORIO_FD_FIXED))
        corio__fixed_release(corio__loop_of(&co->t));
    f->state = CORIO__F_DONE;
    if (f->flags & CORIO__FF_AWAITED) {
        f->flags &= ~CORIO__FF_AWAITED;
        if (co->t.wait_need && --co->t.wait_need == 0)
            corio__unpark(&co->t, 0);
    }
    if (unlikely(co->t.state == CORIO__T_ZOMBIE))
        zombie_orphan(f);
    corio__pending_done(&f->p); /* last: a zombie's stack, and @f with it, may go now */
}

/* A transient -EAGAIN (io_uring may give one where a blocking syscall would wait, and the fault
 * seam injects them) is not the caller's problem: the op is submitted again, a bounded number of
 * times, unless the caller asked for non-blocking behaviour (MSG_DONTWAIT). So is an automatic
 * send_zc the socket refuses (-EOPNOTSUPP). Returns true if it was resubmitted. Never inlined:
 * its submission would make every completion save and restore registers for this rare path. */
__attribute__((noinline)) static bool retry(struct corio__future *f, int res)
{
    if (f->kind != CORIO__FK_OP || f->retries >= 8 ||
        (f->flags & (CORIO__FF_CANCELLED | CORIO__FF_TIMED_OUT)))
        return false;
    if (res == -EOPNOTSUPP) {
        /* A send made zero-copy by the loop's threshold, on a socket that cannot do zero-copy
         * (AF_UNIX): nothing was sent; the threshold is an optimisation, so send it plainly. */
        if (f->op.opcode != CORIO__OP_SEND_ZC || !f->op.aux)
            return false;
        f->op.opcode = CORIO__OP_SEND;
        f->op.aux = 0;
    }
    switch (f->op.opcode) {
    case CORIO__OP_SEND:
    case CORIO__OP_RECV:
    case CORIO__OP_SENDMSG:
    case CORIO__OP_RECVMSG:
        if (f->op.op_flags & MSG_DONTWAIT)
            return false;
        break;
    case CORIO__OP_READ:
    case CORIO__OP_WRITE:
    case CORIO__OP_READV:
    case CORIO__OP_WRITEV:
    case CORIO__OP_ACCEPT:
        break;
    default:
        return false;
    }
    f->retries++;
    /* The first attempt's linked timeout completes by itself; the retry gets its own. */
    bool linked = f->flags & CORIO__FF_LINKED;
    corio__op_submit(io_of(f), &f->op, &f->p.c, linked ? &f->ts : NULL);
    f->pending += linked ? 2 : 1;
    return true;
}

static void complete(struct corio__completion *c, const struct corio__cqe *cqe, bool link)
{
    struct corio__future *f = container_of(c, struct corio__future, p.c);
    if (link) {
        if (cqe->res == -ETIME)
            f->flags |= CORIO__FF_TIMED_OUT;
    } else if (unlikely(cqe->flags & CORIO__CQE_F_NOTIF)) {
        /* A zero-copy send's notification: the kernel is done with the buffer. */
    } else if (unlikely(cqe->res == -EAGAIN || cqe->res == -EOPNOTSUPP) && retry(f, cqe->res)) {
        /* This attempt's CQE; the retry keeps the future pending. A refused send_zc still
         * posts its notification. */
        if (cqe->flags & CORIO__CQE_F_MORE)
            f->pending++;
    } else {
        f->res = cqe->res;
        f->cqe_flags = cqe->flags;
        /* send_zc's result with a notification still to come: keep the future pending. */
        if (unlikely(cqe->flags & CORIO__CQE_F_MORE))
            f->pending++;
    }
    arrived(f);
}

/* ---- deadlines on the virtual clock ------------------------------------------------------------
 * The kernel's timers run on the real clock, which a loop on the virtual clock leaves behind each
 * time it jumps: a linked timeout would fire late, by the time jumped. So there an op's deadline is
 * a timer of the scheduler's heap, kept in the future (vt), and the op goes to the kernel without
 * a linked timeout (a sleep, as a timeout op that never expires). When the timer fires, the op is
 * cancelled in the kernel as its linked timeout would have cancelled it, and still awaited; the
 * result is mapped as for a linked timeout (-ETIMEDOUT; a sleep's success). The loop sees the
 * timer as its next one and jumps to it. */

static void virtual_expired(struct corio__timer *tm)
{
    struct corio__future *f = container_of(tm, struct corio__future, vt);
    if (f->flags & CORIO__FF_CANCELLED)
        return; /* already ending, as its cancel says */
    f->flags |= f->kind == CORIO__FK_SLEEP ? CORIO__FF_VEXPIRED : CORIO__FF_TIMED_OUT;
    cancel_kernel(f);
}

static struct corio__heap *timers_of(const struct corio__future *f)
{
    return &corio__loop_of(&f->p.owner->t)->sched.timers;
}

/* The owner ended with @f pending: its stack stays until the CQE, but the timer goes now, since
 * the last CQE may free the stack it lives on. */
static void pending_cancel_virtual(struct corio__pending *p)
{
    struct corio__future *f = container_of(p, struct corio__future, p);
    corio__heap_remove(timers_of(f), &f->vt);
    cancel_kernel(f);
}

static void complete(struct corio__completion *c, const struct corio__cqe *cqe, bool link);

/* complete, and the timer out of the heap once the future is done. A zombie's future lost its
 * timer already, and may be freed by its last CQE: it is not looked at after. */
static void complete_virtual(struct corio__completion *c, const struct corio__cqe *cqe, bool link)
{
    struct corio__future *f = container_of(c, struct corio__future, p.c);
    if (f->p.owner->t.state == CORIO__T_ZOMBIE) {
        complete(c, cqe, link);
        return;
    }
    complete(c, cqe, link);
    if (f->state == CORIO__F_DONE)
        corio__heap_remove(timers_of(f), &f->vt);
}

/* corio__future_start's end for an op with @deadline (not yet past) on the virtual clock. */
static int start_virtual(struct corio__future *f, const struct corio__op *op, int64_t deadline)
{
    f->vt = (struct corio__timer){
        .deadline = deadline, .idx = CORIO__TIMER_IDLE, .call = 1, .fire = virtual_expired};
    if (corio__heap_push(timers_of(f), &f->vt) != 0)
        return (int)(f->res = -ENOMEM);
    if (f->kind == CORIO__FK_SLEEP)
        corio__ts_from_ns(&f->ts, INT64_MAX); /* op->addr is &f->ts: it never expires */
    f->op = *op;
    f->p.c.complete = complete_virtual;
    f->p.cancel = pending_cancel_virtual;
    corio__op_submit(io_of(f), op, &f->p.c, NULL);
    f->pending = 1;
    f->res = 0;
    f->state = CORIO__F_PENDING;
    corio__pending_add(&f->p);
    return 0;
}

/* ---- start ------------------------------------------------------------------------------------ */

/* Futures need no initialisation, so @f may hold anything, including the remains of an earlier
 * future: only the caller's pending list says whether it is still in flight (starting it again
 * would make its record describe another op while the kernel still completes the first into it).
 * That list is nearly always empty or short, and walking it reads nothing of @f; a long one is
 * walked only when @f's own fields say it may be there. */
static bool still_pending(const struct corio__future *f, const struct corio_coro *co)
{
    const struct corio__list *i = co->pending.next;
    for (unsigned n = 0; i != &co->pending; i = i->next) {
        if (i == &f->p.link)
            return true;
        if (++n == 8)
            break;
    }
    if (likely(i == &co->pending))
        return false;
#ifdef CORIO__VALGRIND
    /* Reading a future that was never started is deliberate here: tell memcheck. */
    VALGRIND_MAKE_MEM_DEFINED(&f->p.owner, sizeof(f->p.owner));
    VALGRIND_MAKE_MEM_DEFINED(&f->state, sizeof(f->state));
#endif
    if (f->p.owner != co || f->state != CORIO__F_PENDING)
        return false;
    for (; i != &co->pending; i = i->next)
        if (i == &f->p.link)
            return true;
    return false;
}

int corio__future_start(struct corio__future *f, const struct corio__op *op, int64_t deadline,
                        uint8_t kind)
{
    struct corio__task *t = corio__tls_task;
    struct corio_coro *co = t ? corio__coro_of(t) : NULL;
    if (co && unlikely(!corio__list_empty(&co->pending)) && still_pending(f, co))
        return -EBUSY;
    f->p.owner = co;
    f->flags = 0;
    f->kind = kind;
    f->cqe_flags = 0;
    f->pending = 0;
    f->retries = 0;
    f->state = CORIO__F_DONE;
    if (unlikely(!co))
        return (int)(f->res = -EPERM);
    if (unlikely(t->cancelled | t->expired) && kind != CORIO__FK_CLOSE)
        return (int)(f->res = t->cancelled ? -ECANCELED : -ETIMEDOUT);
    if (deadline >= 0) {
        if (deadline <= corio_now())
            return (int)(f->res = kind == CORIO__FK_SLEEP ? 0 : -ETIMEDOUT);
        if (unlikely(corio__loop_of(t)->opts.flags & CORIO_LOOP_VIRTUAL_CLOCK))
            return start_virtual(f, op, deadline);
        corio__ts_from_ns(&f->ts, deadline);
    }
    f->op = *op;
    f->p.c.complete = complete;
    f->p.cancel = pending_cancel;
    bool linked = deadline >= 0 && kind != CORIO__FK_SLEEP;
    corio__op_submit(io_of(f), op, &f->p.c, linked ? &f->ts : NULL);
    f->pending = linked ? 2 : 1;
    f->flags = linked ? CORIO__FF_LINKED : 0;
    f->res = 0;
    f->state = CORIO__F_PENDING;
    corio__pending_stamp_time(&f->p);
    corio__pending_add(&f->p);
    return 0;
}

int64_t corio__future_run(const struct corio__op *op, int64_t deadline, uint8_t kind)
{
    struct corio_future fut;
    struct corio__future *f = corio__fut(&fut);
    int err = corio__future_start(f, op, deadline, kind);
    if (err != 0)
        return err;
    return corio_await(&fut, CORIO_FOREVER);
}

/* ---- the ops that touch no file: the no-op round trip, and sleeping ---------------------------- */

int corio_nop(void)
{
    const struct corio__op op = {.opcode = CORIO__OP_NOP};
    return (int)corio__future_run(&op, CORIO_FOREVER, CORIO__FK_OP);
}

int corio_nop_start(struct corio_future *f)
{
    const struct corio__op op = {.opcode = CORIO__OP_NOP};
    return corio__future_start(corio__fut(f), &op, CORIO_FOREVER, CORIO__FK_OP);
}

/* The timeout op reads its timespec from the future itself (f->ts, filled by the start). */
int corio_sleep_start(struct corio_future *pub, int64_t deadline)
{
    struct corio__future *f = corio__fut(pub);
    const struct corio__op op = {.opcode = CORIO__OP_TIMEOUT, .addr = &f->ts};
    if (deadline < 0) {
        /* Sleeping forever: only a cancel ends it. ~292 years from the clock's origin. */
        corio__ts_from_ns(&f->ts, INT64_MAX);
    }
    return corio__future_start(f, &op, deadline, CORIO__FK_SLEEP);
}

int corio_sleep(int64_t deadline)
{
    struct corio_future f;
    int err = corio_sleep_start(&f, deadline);
    if (err != 0)
        return err;
    return (int)corio_await(&f, CORIO_FOREVER);
}

/* ---- await -------------------------------------------------------------------------------------- */

/* Cancel, or a deadline (the await's or the task's own), while parked on one future: cancel the op
 * in the kernel and keep waiting, since its CQE must arrive before the frame that holds its
 * buffers may go. */
static void abort_one(struct corio__task *t, int why)
{
    struct corio__future *f = t->wait_obj;
    if (why == -ETIMEDOUT)
        f->flags |= CORIO__FF_TIMED_OUT;
    else if (why == -ESHUTDOWN)
        f->flags |= CORIO__FF_SHUTDOWN;
    cancel_kernel(f);
}

bool corio__future_shutdown_accept(struct corio__pending *p)
{
    /* Futures are the records whose completion is this file's. */
    if (p->c.complete != complete)
        return false;
    struct corio__future *f = container_of(p, struct corio__future, p);
    if (f->state != CORIO__F_PENDING || f->op.opcode != CORIO__OP_ACCEPT)
        return false;
    f->flags |= CORIO__FF_SHUTDOWN;
    cancel_kernel(f);
    return true;
}

ssize_t corio_await(struct corio_future *pub, int64_t deadline)
{
    struct corio__future *f = corio__fut(pub);
    if (f->state == CORIO__F_DONE)
        return (ssize_t)f->res;
    if (f->state != CORIO__F_PENDING)
        return -EINVAL;
    struct corio__task *t = corio__tls_task;
    if (!t || corio__coro_of(t) != f->p.owner)
        return -EPERM;
    bool abortable = f->kind != CORIO__FK_CLOSE;
    if (abortable && (t->cancelled || t->expired || (deadline >= 0 && deadline <= corio_now()))) {
        if (!t->cancelled)
            f->flags |= CORIO__FF_TIMED_OUT;
        cancel_kernel(f);
    }
    f->flags |= CORIO__FF_AWAITED;
    t->wait_need = 1;
    corio__park(t, abortable ? deadline : CORIO_FOREVER, abortable ? abort_one : NULL, f);
    CORIO__ASSERT(f->state == CORIO__F_DONE);
    return (ssize_t)f->res;
}

int corio__future_check(const struct corio_future *pub, const struct corio__task *t)
{
    const struct corio__future *f = corio__cfut(pub);
    if (!pub || f->state == CORIO__F_IDLE)
        return -EINVAL;
    if (f->p.owner != corio__coro_of((struct corio__task *)t))
        return -EPERM;
    return 0;
}

/* Checks that every future of a set was started by the caller. Returns 0 or -errno. */
static int check_set(const struct corio__task *t, struct corio_future *const *fs, size_t n)
{
    if (!t)
        return -EPERM;
    if (!fs || n == 0 || n > UINT32_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int err = corio__future_check(fs[i], t);
        if (err)
            return err;
    }
    return 0;
}

/* A set wait ends early on cancel or deadline; its futures stay in flight. */
static void abort_set(struct corio__task *t, int why)
{
    corio__unpark(t, why);
}

/* Parks until @need of the set's pending futures have completed. Returns 0 or -errno. */
static int wait_set(struct corio_future *const *fs, size_t n, uint32_t need, int64_t deadline)
{
    struct corio__task *t;
    int err = corio__wait_check(&t, deadline);
    if (err)
        return err;
    for (size_t i = 0; i < n; i++)
        corio__future_watch(fs[i], true);
    t->wait_need = need;
    int r = corio__park(t, deadline, abort_set, NULL);
    t->wait_need = 0;
    for (size_t i = 0; i < n; i++)
        corio__future_watch(fs[i], false);
    return r;
}

int corio_await_any(struct corio_future *const *fs, size_t n, int64_t deadline)
{
    int err = check_set(corio__tls_task, fs, n);
    if (err)
        return err;
    for (;;) {
        bool pending = false;
        for (size_t i = 0; i < n; i++) {
            struct corio__future *f = corio__fut(fs[i]);
            if (f->state == CORIO__F_PENDING) {
                pending = true;
            } else if (!(f->flags & CORIO__FF_REPORTED)) {
                f->flags |= CORIO__FF_REPORTED;
                return (int)i;
            }
        }
        if (!pending)
            return -ENOENT;
        err = wait_set(fs, n, 1, deadline);
        if (err)
            return err;
    }
}

int corio_await_all(struct corio_future *const *fs, size_t n, int64_t deadline)
{
    int err = check_set(corio__tls_task, fs, n);
    if (err)
        return err;
    for (;;) {
        uint32_t pending = 0;
        for (size_t i = 0; i < n; i++)
            if (corio__fut(fs[i])->state == CORIO__F_PENDING)
                pending++;
        if (pending == 0)
            return 0;
        err = wait_set(fs, n, pending, deadline);
        if (err)
            return err;
    }
}

bool corio_future_done(const struct corio_future *pub)
{
    return corio__cfut(pub)->state == CORIO__F_DONE;
}

ssize_t corio_future_result(const struct corio_future *pub)
{
    const struct corio__future *f = corio__cfut(pub);
    if (f->state == CORIO__F_DONE)
        return (ssize_t)f->res;
    return f->state == CORIO__F_PENDING ? -EINPROGRESS : -EINVAL;
}

int corio_future_cancel(struct corio_future *pub)
{
    struct corio__future *f = corio__fut(pub);
    if (f->state == CORIO__F_DONE)
        return -EALREADY;
    if (f->state != CORIO__F_PENDING)
        return -EINVAL;
    cancel_kernel(f);
    return 0;
}

/* ---- what a parked coroutine waits for (corio_loop_dump) --------------------------------------*/

const struct corio__future *corio__future_of_pending(const struct corio__pending *p)
{
    return p->c.complete == complete ? container_of(p, struct corio__future, p) : NULL;
}

const struct corio__future *corio__future_awaited(const struct corio__task *t)
{
    return t->state == CORIO__T_WAITING && t->abort == abort_one ? t->wait_obj : NULL;
}

const char *corio__future_wait_name(corio__abort_fn *a)
{
    if (a == abort_one)
        return "an op";
    return a == abort_set ? "any or all of its ops" : NULL;
}
