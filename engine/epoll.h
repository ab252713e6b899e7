/* The epoll backend: the second backend behind op.c, for hosts that refuse io_uring (a seccomp
 * profile, kernel.io_uring_disabled, an old kernel). It takes the same struct corio__op
 * descriptions as the ring and hands back the same completions, in io_uring's shapes: a linked
 * timeout's CQE, multishot CQEs with CORIO__CQE_F_MORE, buffer ids with CORIO__CQE_F_BUFFER. So
 * nothing above op.c knows which backend runs. Sockets and pipes are tried without blocking and
 * waited for with epoll when they would block; regular files, open, stat and fsync run on a small
 * worker pool (pool.c), since a regular file never reports readiness. */
#ifndef CORIO_EPOLL_H
#define CORIO_EPOLL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base.h"
#include "ring.h"

struct corio__poll;
struct corio__poll_buf;

/* Creates the backend: an epoll instance and its bookkeeping; the worker pool starts on first
 * use. Returns 0 and sets *out, or -errno. */
int corio__poll_new(struct corio__poll **out, const struct corio_loop_opts *opts,
                    struct corio_stats *stats);

/* Frees the backend; nothing may be in flight. Returns nothing. */
void corio__poll_free(struct corio__poll *p);

/* The CORIO_FEAT_ bits of what this backend offers: every op corio uses, its multishot and
 * buffer-ring forms (emulated), and timed waits. */
uint64_t corio__poll_features(void);

/* As corio__ring_prep: queues @op, whose CQE carries @user_data; with @link_ts an absolute
 * deadline ends it (its own CQE -ECANCELED, a second CQE with @link_ud and -ETIME). Returns
 * nothing. */
void corio__poll_prep(struct corio__poll *p, const struct corio__op *op, uint64_t user_data,
                      const struct corio__ts *link_ts, uint64_t link_ud);

/* As corio__ring_cancel: ends the op of @target with -ECANCELED unless it already ran (a job a
 * worker has taken completes with its own result). A CQE for the cancel itself (@own) is posted
 * only when @own is not 0. Returns nothing. */
void corio__poll_cancel(struct corio__poll *p, uint64_t target, uint64_t own);

/* As corio__ring_enter: runs what was queued and, with @wait, waits in epoll_wait for readiness
 * or a finished job, at most @timeout_ns (-1: no limit; the earliest op deadline bounds it too).
 * Returns 0, or -errno for a failure that is not transient. */
int corio__poll_enter(struct corio__poll *p, bool wait, int64_t timeout_ns);

/* Copies up to @max completions into @out. Returns how many. */
unsigned corio__poll_reap(struct corio__poll *p, struct corio__cqe *out, unsigned max);

/* Ops queued and not yet run. */
unsigned corio__poll_unsubmitted(const struct corio__poll *p);

/* Ops running on the worker pool (regular files): their ends come without a look seeing them. */
unsigned corio__poll_working(const struct corio__poll *p);

/* The counters that corio__ring_quiet and corio__ring_has_cqes read inline. */
const struct corio__ring_view *corio__poll_view(const struct corio__poll *p);

/* ---- driven by another event loop (corio_loop_fd, corio_loop_step) --------------------------- */

/* The backend's epoll fd, for another event loop to watch: readable while readiness that no
 * corio__poll_enter has taken yet is waiting. Returns it. */
int corio__poll_fd(const struct corio__poll *p);

/* True when nothing is queued to be tried and no completion is waiting to be reaped. */
bool corio__poll_settled(const struct corio__poll *p);

/* The earliest op deadline of the backend's own heap (absolute ns), or -1 if none. */
int64_t corio__poll_next_deadline(const struct corio__poll *p);

/* A provided-buffer ring, emulated: group @bgid of @entries buffers handed in by
 * corio__poll_buf_put, taken in FIFO order by a multishot receive. Returns 0 and sets *out, or
 * -EINVAL, -EEXIST (group taken), -ENOMEM. */
int corio__poll_buf_new(struct corio__poll *p, uint16_t bgid, unsigned entries,
                        struct corio__poll_buf **out);

/* Drops group @bgid. Returns nothing. */
void corio__poll_buf_free(struct corio__poll *p, uint16_t bgid, struct corio__poll_buf *b);

/* Hands buffer @bid at [@addr, @addr + @len) to the group. Returns nothing. */
void corio__poll_buf_put(struct corio__poll_buf *b, void *addr, unsigned len, uint16_t bid);

#endif
