/* The one path every operation takes: describe it, prep its SQE (with a linked timeout for a
 * deadline), then await its future (op.c). */
#ifndef CORIO_OP_H
#define CORIO_OP_H

#include "future.h"

/* Starts @op with @f as its future, owned by the calling coroutine. With @deadline >= 0 a linked
 * timeout is attached (except for CORIO__FK_SLEEP, whose op is itself the timeout). If the op
 * cannot start (-EPERM outside a coroutine, -ECANCELED, -ETIMEDOUT for a deadline already past),
 * @f is completed with that error. Returns 0 or that error. */
int corio__op_start(struct corio__future *f, const struct corio__op *op, int64_t deadline,
                    uint8_t kind);

/* Starts @op and waits for it: the blocking form of every operation. Returns its result. */
int64_t corio__op_run(const struct corio__op *op, int64_t deadline, uint8_t kind);

/* Converts an absolute deadline in ns to the kernel's timespec. */
static inline void corio__ts_from_ns(struct corio__ts *ts, int64_t ns)
{
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
