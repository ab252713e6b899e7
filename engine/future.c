/* Futures: await one, any or all; cancel. */
#include "future.h"

#include <errno.h>

void corio__future_cancel_kernel(struct corio_loop *l, struct corio__future *f)
{
    if (f->flags & CORIO__FF_CANCELLED)
        return;
    f->flags |= CORIO__FF_CANCELLED;
    corio__ring_cancel(l->ring, (uintptr_t)f | CORIO__UD_FUTURE);
}

/* Cancel of a coroutine parked on one future: cancel the op in the kernel and keep waiting, since
 * its CQE must arrive before the frame that holds its buffers may go. */
static void abort_one(struct corio_coro *co, int why)
{
    (void)why;
    corio__future_cancel_kernel(co->loop, co->wait_obj);
}

ssize_t corio_await(struct corio_future *pub)
{
    struct corio__future *f = corio__fut(pub);
    if (f->state == CORIO__F_DONE)
        return (ssize_t)f->res;
    if (f->state != CORIO__F_PENDING)
        return -EINVAL;
    struct corio_coro *co = corio__tls_co;
    if (co != f->owner)
        return -EPERM;
    bool abortable = f->kind != CORIO__FK_CLOSE;
    if (co->cancelled && abortable)
        corio__future_cancel_kernel(co->loop, f);
    f->flags |= CORIO__FF_AWAITED;
    co->wait_need = 1;
    corio__park(co, CORIO_FOREVER, abortable ? abort_one : NULL, f);
    CORIO__ASSERT(f->state == CORIO__F_DONE);
    return (ssize_t)f->res;
}

/* Checks that every future of a set was started by the caller. Returns 0 or -errno. */
static int check_set(struct corio_coro *co, struct corio_future *const *fs, size_t n)
{
    if (!co)
        return -EPERM;
    if (!fs || n == 0 || n > UINT32_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        struct corio__future *f = corio__fut(fs[i]);
        if (!fs[i] || f->state == CORIO__F_IDLE)
            return -EINVAL;
        if (f->owner != co)
            return -EPERM;
    }
    return 0;
}

/* A set wait ends early on cancel or deadline; its futures stay in flight. */
static void abort_set(struct corio_coro *co, int why)
{
    corio__unpark(co, why);
}

/* Parks until @need of the set's pending futures have completed. Returns 0 or -errno. */
static int wait_set(struct corio_coro *co, struct corio_future *const *fs, size_t n, uint32_t need,
                    int64_t deadline)
{
    if (co->cancelled)
        return -ECANCELED;
    if (deadline >= 0 && deadline <= corio_now())
        return -ETIMEDOUT;
    for (size_t i = 0; i < n; i++)
        if (corio__fut(fs[i])->state == CORIO__F_PENDING)
            corio__fut(fs[i])->flags |= CORIO__FF_AWAITED;
    co->wait_need = need;
    int r = corio__park(co, deadline, abort_set, NULL);
    co->wait_need = 0;
    for (size_t i = 0; i < n; i++)
        corio__fut(fs[i])->flags &= ~CORIO__FF_AWAITED;
    return r;
}

int corio_await_any(struct corio_future *const *fs, size_t n, int64_t deadline)
{
    struct corio_coro *co = corio__tls_co;
    int err = check_set(co, fs, n);
    if (err)
        return err;
    for (;;) {
        for (size_t i = 0; i < n; i++)
            if (corio__fut(fs[i])->state == CORIO__F_DONE)
                return (int)i;
        err = wait_set(co, fs, n, 1, deadline);
        if (err)
            return err;
    }
}

int corio_await_all(struct corio_future *const *fs, size_t n, int64_t deadline)
{
    struct corio_coro *co = corio__tls_co;
    int err = check_set(co, fs, n);
    if (err)
        return err;
    for (;;) {
        uint32_t pending = 0;
        for (size_t i = 0; i < n; i++)
            if (corio__fut(fs[i])->state == CORIO__F_PENDING)
                pending++;
        if (pending == 0)
            return 0;
        err = wait_set(co, fs, n, pending, deadline);
        if (err)
            return err;
    }
}

bool corio_future_done(const struct corio_future *pub)
{
    return ((const struct corio__future *)(const void *)pub)->state == CORIO__F_DONE;
}

ssize_t corio_future_result(const struct corio_future *pub)
{
    const struct corio__future *f = (const struct corio__future *)(const void *)pub;
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
    corio__future_cancel_kernel(f->owner->loop, f);
    return 0;
}
