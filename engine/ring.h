/* The io_uring layer: setup with fallbacks, SQE preparation, submission, CQE reaping, raw
 * syscalls. This and ring.c are the only files that know SQE/CQE layouts; ring.c is the only one
 * that includes <liburing.h>. The layers above describe an operation with struct corio__op. */
#ifndef CORIO_RING_H
#define CORIO_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "corio.h"

#include <sys/uio.h>

struct corio__ring;

/* A close with this aux first ends every op pending on its fd (-ECANCELED): on io_uring an
 * ASYNC_CANCEL by fd hard-linked before it (5.19, CORIO_FEAT_CANCEL_FD); the epoll backend does it
 * for every close. */
#define CORIO__CLOSE_CANCEL 1u

/* A readiness wait (CORIO__OP_POLL) with this aux stays armed and completes once per wake-up of
 * the fd, with CORIO__CQE_F_MORE, until cancelled or ended by the backend (IORING_POLL_ADD_MULTI,
 * 5.13: CORIO_FEAT_POLL_MULTISHOT). */
#define CORIO__POLL_MULTI 1u

/* The operations the layers above can ask for. */
enum corio__opcode {
    CORIO__OP_NOP,
    CORIO__OP_READ,     /* fd, addr = buf, len, off */
    CORIO__OP_WRITE,    /* fd, addr = buf, len, off */
    CORIO__OP_READV,    /* fd, addr = iov, len = iovcnt, off */
    CORIO__OP_WRITEV,   /* fd, addr = iov, len = iovcnt, off */
    CORIO__OP_OPENAT,   /* fd = dirfd, addr = path, op_flags = open flags, aux = mode */
    CORIO__OP_CLOSE,    /* fd; aux = CORIO__CLOSE_CANCEL: end the ops pending on it first */
    CORIO__OP_FSYNC,    /* fd, op_flags = 1 for datasync */
    CORIO__OP_STATX,    /* fd = dirfd, addr = path, op_flags = AT_ flags, aux = mask, addr2 = out */
    CORIO__OP_SOCKET,   /* fd = domain, len = protocol, op_flags = type */
    CORIO__OP_ACCEPT,   /* fd, addr = sockaddr, addr2 = socklen_t *, op_flags = accept4 flags */
    CORIO__OP_CONNECT,  /* fd, addr = sockaddr, len = addrlen */
    CORIO__OP_SEND,     /* fd, addr = buf, len, op_flags = msg flags */
    CORIO__OP_RECV,     /* fd, addr = buf, len, op_flags = msg flags */
    CORIO__OP_SENDMSG,  /* fd, addr = msghdr, op_flags = msg flags */
    CORIO__OP_RECVMSG,  /* fd, addr = msghdr, op_flags = msg flags */
    CORIO__OP_SHUTDOWN, /* fd, len = how */
    CORIO__OP_TIMEOUT,  /* addr = struct corio__ts (absolute CLOCK_MONOTONIC) */
    CORIO__OP_RECV_MULTI,   /* fd, aux = buffer group: multishot recv into provided buffers */
    CORIO__OP_ACCEPT_MULTI, /* fd, op_flags = accept4 flags; aux bit 0: into the fixed file table,
                               bit 1: single-shot */
    CORIO__OP_SEND_ZC,      /* fd, addr = buf, len, op_flags = msg flags: zero-copy send; aux = 1:
                               chosen by threshold, falls back to SEND on -EOPNOTSUPP */
    CORIO__OP_READ_FIXED,   /* fd, addr = buf, len, off, aux = registered buffer index */
    CORIO__OP_WRITE_FIXED,  /* fd, addr = buf, len, off, aux = registered buffer index */
    CORIO__OP_POLL,         /* fd, op_flags = poll events: completes with the ready mask, once,
                               or with aux = CORIO__POLL_MULTI once per wake-up (F_MORE) */
    CORIO__OP_COUNT
};

/* READ's aux: the loop's own wake-up read, whose readiness a backend that polls for readiness need
 * not look for while the loop is busy (the loop looks at what it wakes for anyway). io_uring
 * ignores it. */
#define CORIO__OP_LAZY 1u

/* An operation, described without the SQE layout; it is read once, while the SQE is prepared. */
struct corio__op {
    uint8_t opcode;    /* enum corio__opcode */
    int32_t fd;        /* the file, or what the opcode's comment says */
    uint32_t len;      /* a length, a count, or what the opcode's comment says */
    uint32_t op_flags; /* the opcode's flags */
    uint32_t aux;      /* a mode or a mask */
    const void *addr;  /* the main pointer argument */
    const void *addr2; /* the second pointer argument */
    uint64_t off;      /* a file offset; (uint64_t)-1 for the current position */
};

/* struct __kernel_timespec, without the uapi header. */
struct corio__ts {
    int64_t sec;
    int64_t nsec;
};

/* A completion, copied out of the CQ ring before its slot is released to the kernel. */
struct corio__cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};

/* Flags of a completion the layers above look at, mirrored from the uapi. */
#define CORIO__CQE_F_BUFFER (1u << 0) /* the upper 16 bits carry a provided buffer's id */
#define CORIO__CQE_F_MORE (1u << 1)   /* the request stays armed: more CQEs will come */
#define CORIO__CQE_F_NOTIF (1u << 3)  /* a zero-copy send's notification: the buffer is free */
#define CORIO__CQE_BUFFER_SHIFT 16

/* An fd with this bit set is an index in the ring's fixed file table (a direct descriptor); the
 * public CORIO_FD_FIXED has the same value. */
#define CORIO__FD_FIXED 0x40000000

/* Creates the ring with the best setup flags the kernel accepts (retrying without each one it
 * refuses) and registers its fd. @refuse holds CORIO_FEAT_ bits of setup flags (and of the
 * registered ring fd) to treat as refused, so that tests reach the fallbacks on any kernel.
 * Returns 0 and sets *out, or -errno from io_uring_setup when no configuration works. */
int corio__ring_new(struct corio__ring **out, const struct corio_loop_opts *opts,
                    struct corio_stats *stats, uint64_t refuse);

/* Returns the CORIO_FEAT_ bits of the setup flags some attempt to create the ring asked for. */
uint64_t corio__ring_setup_asked(const struct corio__ring *r);

/* Returns why setup flag @f was not granted: the -errno with which io_uring_setup refused the
 * last set of flags that held it, or 0 if it was granted or never asked for. */
int corio__ring_setup_refusal(const struct corio__ring *r, enum corio_feature f);

/* Returns the CORIO_FEAT_ bits of the setup flags the kernel granted. */
uint64_t corio__ring_setup_feats(const struct corio__ring *r);

/* Returns the CORIO_FEAT_ bits of the kernel features the ring reported (IORING_FEAT_) and the
 * registered ring fd. */
uint64_t corio__ring_kernel_feats(const struct corio__ring *r);

/* Asks the kernel which opcodes it knows (IORING_REGISTER_PROBE, one system call). Returns their
 * CORIO_FEAT_ bits. */
uint64_t corio__ring_probe_ops(struct corio__ring *r);

void corio__ring_free(struct corio__ring *r);

/* Prepares the SQE for @op with @user_data. If @link_ts is not NULL, a linked timeout SQE with
 * user_data @link_ud and that absolute deadline follows it. When the SQ is full it is submitted
 * first, so this always succeeds. Returns nothing. */
void corio__ring_prep(struct corio__ring *r, const struct corio__op *op, uint64_t user_data,
                      const struct corio__ts *link_ts, uint64_t link_ud);

/* Queues an async cancel of the op whose user_data is @target. The cancel's own completion, if the
 * kernel posts one (it skips it on success where it can), carries user_data @own. Returns
 * nothing. */
void corio__ring_cancel(struct corio__ring *r, uint64_t target, uint64_t own);

/* Queues an IORING_OP_MSG_RING (5.18) that posts a CQE with user_data @target_ud and res 0 on
 * ring @target, which another thread may own: the cheapest way to end that ring's wait. The
 * sender's own CQE carries @own_ud; where the kernel can skip it on success
 * (IOSQE_CQE_SKIP_SUCCESS, 5.17, so wherever MSG_RING exists) only a failure posts one. Not through
 * the fault seam: it is nobody's op. Returns nothing. */
void corio__ring_msg(struct corio__ring *r, const struct corio__ring *target, uint64_t target_ud,
                     uint64_t own_ud);

/* SQPOLL: true once the poller has gone to sleep (IORING_SQ_NEED_WAKEUP) or CQEs overflowed:
 * waiting for completions then takes an io_uring_enter. */
bool corio__ring_needs_enter(const struct corio__ring *r);

/* Submits every queued SQE; if @wait, also waits until at least one CQE is ready or @timeout_ns
 * (relative, -1: none) passes; with @batch > 1 it waits for up to @batch CQEs, but at most
 * @batch_us microseconds once the first is there (kernels with IORING_FEAT_MIN_TIMEOUT; others
 * wait for one). At most one io_uring_enter, none in SQPOLL mode while the poller is awake and
 * nothing is waited for. Returns 0, or -errno for a failure that is not transient. */
int corio__ring_enter(struct corio__ring *r, bool wait, int64_t timeout_ns, unsigned batch,
                      unsigned batch_us);

/* Copies up to @max ready CQEs into @out and releases their slots. Returns how many. */
unsigned corio__ring_reap(struct corio__ring *r, struct corio__cqe *out, unsigned max);

/* SQEs prepared and not yet seen by the kernel. */
unsigned corio__ring_unsubmitted(const struct corio__ring *r);

/* Pointers into the ring for corio__ring_quiet, which the loop calls inline on every iteration. */
struct corio__ring_view {
    const unsigned *sqe_tail;  /* SQEs prepared (local tail) */
    const unsigned *sq_khead;  /* SQEs the kernel has consumed */
    const unsigned *cq_khead;  /* CQEs we have consumed */
    const unsigned *cq_ktail;  /* CQEs the kernel has posted */
    const unsigned *kflags;    /* IORING_SQ_* flags */
    const unsigned *spill_n;   /* CQEs waiting in the spill list */
    unsigned attention;        /* flags that need an enter; all ones: always enter */
};

const struct corio__ring_view *corio__ring_view(const struct corio__ring *r);

/* True when an io_uring_enter would do nothing: every SQE was consumed, no CQE waits, and the
 * kernel flags no task work or overflow. Lets a loop whose coroutines keep each other busy skip
 * the ring entirely (~7 ns an iteration). */
static inline bool corio__ring_quiet(const struct corio__ring_view *v)
{
    /* Plain volatile reads: a stale answer only costs one enter (not quiet) or one iteration of
     * delay (quiet), both resolved next time round; nothing is ordered against them. */
    return *v->sqe_tail == *(const volatile unsigned *)v->sq_khead &&
           *(const volatile unsigned *)v->cq_khead == *(const volatile unsigned *)v->cq_ktail &&
           !(*(const volatile unsigned *)v->kflags & v->attention) && *v->spill_n == 0;
}

/* True if CQEs are waiting to be reaped (in the CQ ring or the spill list). */
static inline bool corio__ring_has_cqes(const struct corio__ring_view *v)
{
    return *v->spill_n != 0 ||
           *(const volatile unsigned *)v->cq_khead != *(const volatile unsigned *)v->cq_ktail;
}

/* ---- driven by another event loop (corio_loop_fd, corio_loop_step) --------------------------- */

/* The ring's fd, for another event loop to watch: readable while CQEs wait to be reaped (ring.c
 * says what the kernel does). Returns it, or -EINVAL for a ring with DEFER_TASKRUN, whose
 * completions do not wake the fd's pollers. */
int corio__ring_fd(const struct corio__ring *r);

/* True when a step would find nothing to do in the ring: every SQE submitted, no CQE ready, no
 * task work or overflow flagged by the kernel. Returns it. */
bool corio__ring_settled(const struct corio__ring *r);

/* A ring of provided buffers shared with the kernel (IORING_REGISTER_PBUF_RING, 5.19). */
struct corio__pbuf;

/* Registers a buffer ring of @entries (a power of two, <= 32768) as buffer group @bgid. Returns
 * 0 and sets *out, or -errno (-EINVAL, -ENOMEM, -EEXIST). */
int corio__ring_pbuf_new(struct corio__ring *r, uint16_t bgid, unsigned entries,
                         struct corio__pbuf **out);

/* Unregisters and frees a buffer ring. Returns nothing. */
void corio__ring_pbuf_free(struct corio__ring *r, uint16_t bgid, struct corio__pbuf *p);

/* Hands buffer @bid at [@addr, @addr + @len) to the kernel. No system call. Returns nothing. */
void corio__pbuf_put(struct corio__pbuf *p, void *addr, unsigned len, uint16_t bid);

/* Registers a sparse fixed file table of @n slots. Returns 0 or -errno. */
int corio__ring_files_sparse(struct corio__ring *r, unsigned n);

/* Registers @n buffers for READ_FIXED/WRITE_FIXED (replacing none). Returns 0 or -errno. */
int corio__ring_buffers_register(struct corio__ring *r, const struct iovec *iov, unsigned n);

/* Unregisters the fixed buffers. Returns 0 or -errno. */
int corio__ring_buffers_unregister(struct corio__ring *r);

#endif
