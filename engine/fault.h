/* The test seam between corio and the kernel. In normal builds every hook is an inline no-op that
 * the compiler removes; a CORIO_TESTING build replaces them with seeded fault
 * injection in fault.c. Only ring.c calls the hooks; tests and fuzzers configure the seam with
 * corio__fault_configure (or the CORIO_FAULTS environment variable) and read its counters.
 *
 * Every fault is one the kernel could produce itself, made real rather than faked where data is
 * involved: a short transfer shrinks the SQE's length, so the kernel really moves fewer bytes; an
 * error completion replaces the SQE with a NOP (same user_data, same link to a timeout) whose CQE
 * res is rewritten at reap, so the op never ran. A CQE's res is never faked for an op that ran.
 *
 * The spec is a comma-separated list of key=value (corio__fault_configure); probabilities are in
 * [0, 1], applied per decision: per io_uring_enter, per SQE, per reaped batch or per CQE. All
 * state is per thread (the PRNG, the spec, the counters), and per ring for CQEs held back. */
#ifndef CORIO_FAULT_H
#define CORIO_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"

#ifdef CORIO_TESTING

/* What the seam did on this thread since the last corio__fault_configure. */
struct corio__fault_stats {
    uint64_t enter_eintr;    /* io_uring_enter calls failed with -EINTR (kernel not called) */
    uint64_t enter_eagain;   /* ... with -EAGAIN */
    uint64_t enter_ebusy;    /* ... with -EBUSY */
    uint64_t enter_nowait;   /* waits turned into polls because CQEs were held back */
    uint64_t short_rw;       /* SQEs whose length (or iovcnt) was shrunk */
    uint64_t cqe_eagain;     /* SQEs replaced by a NOP completing with -EAGAIN */
    uint64_t cqe_econnreset; /* ... with -ECONNRESET */
    uint64_t cqe_enobufs;    /* ... with -ENOBUFS (multishot recv only) */
    uint64_t op_refused;     /* ... with the refused op's error (refuse_op) */
    uint64_t sq_full;        /* preps that flushed the SQ as if it were full */
    uint64_t setup_refused;  /* io_uring_setup attempts refused (refuse_setup) */
    uint64_t rewritten;      /* CQEs whose res was rewritten (one per NOP above, once reaped) */
    uint64_t reordered;      /* reaped batches shuffled */
    uint64_t held;           /* CQEs held back to a later reap (counted each time) */
    uint64_t cqes_in;        /* CQEs that entered the seam (from the CQ ring or the spill) */
    uint64_t cqes_out;       /* CQEs it handed to the loop */
    uint64_t lost;           /* CQEs with a user_data still held when their ring was freed */
    uint64_t digest;         /* FNV-1a of every fault injected, in order (kind and op, length
                                or batch size): equal for two runs that got the same faults */
};

/* Configures the seam of the calling thread from @spec, replacing the previous configuration and
 * zeroing the counters; NULL or "" turns every fault off. Keys (all optional):
 *   seed=N              PRNG seed (decimal or 0x hex); without it, one is drawn from the clock
 *   enter_eintr=P enter_eagain=P enter_ebusy=P   io_uring_enter fails without calling the kernel
 *   short_rw=P          READ/WRITE/RECV/SEND(_ZC)/READ_FIXED/WRITE_FIXED length, READV/WRITEV
 *                       iovcnt, shrunk to a random 1..len (not for MSG_WAITALL)
 *   cqe_eagain=P        read/write/readv/writev/recv/send/recvmsg/sendmsg/accept complete -EAGAIN
 *   cqe_econnreset=P    recv/send/multishot recv complete -ECONNRESET
 *   cqe_enobufs=P       multishot recv completes -ENOBUFS (its final CQE: it must be re-armed)
 *   sq_full=P           a prep flushes the SQ with io_uring_enter as if it were full
 *   reorder=P           a reaped batch is shuffled (never two CQEs of one user_data)
 *   holdback=P          a CQE is held back to a later reap (at most 3 reaps). Held CQEs are
 *                       released when the loop next reaps; a loop whose coroutines keep each
 *                       other runnable skips the ring while it looks quiet (corio__ring_quiet),
 *                       so there they wait until the loop goes idle: delayed, never lost
 *   sq=N cq=N           ring sizes forced at setup (cq also caps sq: the kernel wants cq >= sq)
 *   refuse_setup=F|F    io_uring_setup fails -EINVAL while asked for these flags (feature names:
 *                       single_issuer defer_taskrun coop_taskrun taskrun_flag submit_all sqpoll
 *                       cqsize), so the ring layer falls back
 *   refuse_op=O|O       SQEs of these ops (feature names: nop read write readv writev openat close
 *                       fsync statx socket accept connect send recv sendmsg recvmsg shutdown
 *                       timeout send_zc read_fixed write_fixed) become NOPs completing with
 *                       refuse_op_err, every time
 *   hide_op=O|O         as refuse_op, and the opcode probe does not list them either: a kernel
 *                       without those ops, so the engine's fallbacks are taken
 *   hide_feat=F         the kernel feature F (ext_arg) is reported missing and not used, as
 *                       on an older kernel (without EXT_ARG the loop waits for its timers
 *                       with timeout SQEs)
 *   refuse_op_err=einval|eopnotsupp   the refused ops' error (default einval)
 *   ops=O|O             short_rw, cqe_eagain, cqe_econnreset and cqe_enobufs touch only SQEs of
 *                       these ops (the refuse_op names; recv covers multishot recv too)
 *   quiet=1             do not print the "corio faults:" line
 * The user's short names (README.md, "Testing a server built on corio") are other spellings of
 * these keys: short=short_rw, eagain=cqe_eagain, reset=cqe_econnreset, enobufs=cqe_enobufs,
 * eintr=enter_eintr, ebusy=enter_ebusy.
 * Prints "corio faults: seed=S spec=..." once to stderr when a fault is enabled, and the line
 * that replays it when the process then exits with a non-zero status or the engine panics.
 * Returns 0, or -EINVAL for an unknown key or a bad value (the previous configuration is then
 * kept). */
int corio__fault_configure(const char *spec);

/* Feeds the seam's decisions from @data[0..len) instead of the PRNG (a fuzzer's input): every
 * decision takes the next byte; once they run out, no more faults are injected, so that the loop
 * can finish. The bytes are not copied: they must outlive their use. NULL returns to the PRNG.
 * Returns nothing. */
void corio__fault_script(const uint8_t *data, size_t len);

/* Returns the counters of the calling thread. */
const struct corio__fault_stats *corio__fault_stats(void);

/* ---- hooks, called by ring.c only --------------------------------------------------------------
 * @r is the ring, used as a key for the CQEs the seam holds back; it is never dereferenced. */

/* Returns -EINVAL if the seam refuses io_uring_setup with these IORING_SETUP_ flags, whose
 * CORIO_FEAT_ bits are @feats, else 0. */
int corio__fault_setup(unsigned setup_flags, uint64_t feats);

/* May replace the SQ and CQ sizes asked for at setup. Returns nothing. */
void corio__fault_params(unsigned *sq_entries, unsigned *cq_entries);

/* Returns the CORIO_FEAT_ bits of the ops and features the probe must not report. */
uint64_t corio__fault_hidden_ops(void);

/* Returns a negative errno to make this io_uring_enter fail without calling the kernel, else 0.
 * May lower *@min_complete to 0: a wait must not block while the seam holds CQEs back. */
int corio__fault_enter(const struct corio__ring *r, unsigned *min_complete);

/* Returns @op, or @scratch holding a changed copy of it (a shorter length, or a NOP whose CQE the
 * seam will rewrite) for the SQE with @user_data. */
const struct corio__op *corio__fault_prep(const struct corio__ring *r, const struct corio__op *op,
                                          uint64_t user_data, struct corio__op *scratch);

/* Returns true when this prep should flush the SQ as if it were full. */
bool corio__fault_sq_full(const struct corio__ring *r);

/* May rewrite, reorder or hold back the @n completions in @c (room for @max), and release CQEs
 * held back earlier. Returns the count now in @c. */
unsigned corio__fault_cqes(const struct corio__ring *r, struct corio__cqe *c, unsigned n,
                           unsigned max);

/* Forgets ring @r, counting the CQEs still held for it as lost. Returns nothing. */
void corio__fault_ring_free(const struct corio__ring *r);

#else

static inline int corio__fault_setup(unsigned setup_flags, uint64_t feats)
{
    (void)setup_flags;
    (void)feats;
    return 0;
}
static inline void corio__fault_params(unsigned *sq_entries, unsigned *cq_entries)
{
    (void)sq_entries;
    (void)cq_entries;
}
static inline uint64_t corio__fault_hidden_ops(void)
{
    return 0;
}
static inline int corio__fault_enter(const struct corio__ring *r, unsigned *min_complete)
{
    (void)r;
    (void)min_complete;
    return 0;
}
static inline const struct corio__op *corio__fault_prep(const struct corio__ring *r,
                                                        const struct corio__op *op,
                                                        uint64_t user_data,
                                                        struct corio__op *scratch)
{
    (void)r;
    (void)user_data;
    (void)scratch;
    return op;
}
static inline bool corio__fault_sq_full(const struct corio__ring *r)
{
    (void)r;
    return false;
}
static inline unsigned corio__fault_cqes(const struct corio__ring *r, struct corio__cqe *c,
                                         unsigned n, unsigned max)
{
    (void)r;
    (void)c;
    (void)max;
    return n;
}
static inline void corio__fault_ring_free(const struct corio__ring *r)
{
    (void)r;
}
#endif

#endif
