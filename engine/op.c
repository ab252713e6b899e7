/* The one path every operation takes: prep an SQE whose user_data is the future, link a timeout
 * for a deadline, and let the loop submit it with the rest of the iteration's SQEs. */
#include "op.h"

#include <errno.h>

int corio__op_start(struct corio__future *f, const struct corio__op *op, int64_t deadline,
                    uint8_t kind)
{
    struct corio_coro *co = corio__tls_co;
    f->owner = co;
    f->flags = 0;
    f->kind = kind;
    f->cqe_flags = 0;
    f->pending = 0;
    f->retries = 0;
    f->state = CORIO__F_DONE;
    if (unlikely(!co))
        return (int)(f->res = -EPERM);
    if (unlikely(co->cancelled) && kind != CORIO__FK_CLOSE)
        return (int)(f->res = -ECANCELED);
    struct corio_loop *l = co->loop;
    if (deadline >= 0) {
        if (deadline <= corio_now())
            return (int)(f->res = kind == CORIO__FK_SLEEP ? 0 : -ETIMEDOUT);
        corio__ts_from_ns(&f->ts, deadline);
    }
    f->op = *op;
    if (deadline >= 0 && kind != CORIO__FK_SLEEP) {
        corio__ring_prep(l->ring, op, (uintptr_t)f | CORIO__UD_FUTURE, &f->ts,
                         (uintptr_t)f | CORIO__UD_LINK);
        f->pending = 2;
        f->flags = CORIO__FF_LINKED;
    } else {
        corio__ring_prep(l->ring, op, (uintptr_t)f | CORIO__UD_FUTURE, NULL, 0);
        f->pending = 1;
    }
    l->inflight += f->pending;
    f->res = 0;
    f->state = CORIO__F_PENDING;
    corio__list_push_back(&co->inflight, &f->link);
    return 0;
}

int64_t corio__op_run(const struct corio__op *op, int64_t deadline, uint8_t kind)
{
    struct corio_future fut;
    struct corio__future *f = corio__fut(&fut);
    if (corio__op_start(f, op, deadline, kind) != 0)
        return f->res;
    return corio_await(&fut);
}

int corio_nop(void)
{
    const struct corio__op op = {.opcode = CORIO__OP_NOP};
    return (int)corio__op_run(&op, CORIO_FOREVER, CORIO__FK_OP);
}

int corio_nop_start(struct corio_future *f)
{
    const struct corio__op op = {.opcode = CORIO__OP_NOP};
    return corio__op_start(corio__fut(f), &op, CORIO_FOREVER, CORIO__FK_OP);
}

/* The timeout op reads its timespec from the future itself (f->ts, filled by op_start). */
int corio_sleep_start(struct corio_future *pub, int64_t deadline)
{
    struct corio__future *f = corio__fut(pub);
    const struct corio__op op = {.opcode = CORIO__OP_TIMEOUT, .addr = &f->ts};
    if (deadline < 0) {
        /* Sleeping forever: only a cancel ends it. ~292 years from the clock's origin. */
        corio__ts_from_ns(&f->ts, INT64_MAX);
    }
    return corio__op_start(f, &op, deadline, CORIO__FK_SLEEP);
}

int corio_sleep(int64_t deadline)
{
    struct corio_future f;
    if (corio_sleep_start(&f, deadline) != 0)
        return (int)corio__fut(&f)->res;
    return (int)corio_await(&f);
}
