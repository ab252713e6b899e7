/* Fault injection between corio and the kernel, for tests and fuzzers (see fault.h). Compiled to
 * nothing unless CORIO_TESTING is defined: the normal libraries never contain it.
 *
 * The seam works on corio's own descriptions (struct corio__op before it becomes an SQE, struct
 * corio__cqe after the CQ ring slot is copied out), so that ring.c stays the only file that knows
 * the kernel's layouts. Decisions come from a per-thread splitmix64 PRNG seeded by the spec, or
 * from a fuzzer's bytes (corio__fault_script).
 *
 * CQEs held back: each ring has a list of CQEs that were reaped but not yet handed to the loop,
 * kept in their arrival order per user_data. A CQE is never handed out before an older CQE with
 * the same user_data (a multishot recv's CQEs carry one stream in order, as the kernel
 * guarantees), and none is held for more than HOLD_MAX_AGE reaps. While CQEs are held, a wait in
 * io_uring_enter becomes a poll (corio__fault_enter), since the kernel may have nothing left to
 * post and the loop must come round to reap them. */
#include "fault_private.h"

#ifdef CORIO_TESTING

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HOLD_MAX_AGE 3 /* reaps a CQE may be held back for */
#define HOLD_MAX 64    /* no more voluntary hold-backs once a ring holds this many */
/* -EAGAIN injections in a row for one user_data: the engine gives up after 8 retries, and a
 * transient error is transient. */
#define EAGAIN_STREAK_MAX 4
#define STREAKS 64 /* user_data whose -EAGAIN streak is remembered (round robin) */

/* A CQE inside the seam: its arrival number orders CQEs of one user_data. */
struct held {
    struct corio__cqe cqe;
    uint64_t seq; /* arrival order in this ring */
    unsigned age; /* reaps it has been held back for */
};

struct rewrite {
    uint64_t ud; /* the NOP's user_data */
    int32_t res; /* the res its CQE gets */
};

struct streak {
    uint64_t ud;
    unsigned n;
};

/* What the seam keeps per ring. */
struct ring_state {
    const struct corio__ring *ring;
    struct ring_state *next;
    struct held *held; /* held back, oldest first per user_data */
    unsigned held_n, held_cap;
    struct held *pool; /* scratch of corio__fault_cqes */
    unsigned pool_cap;
    uint64_t *uds; /* scratch: user_data held back in this pass */
    unsigned uds_cap;
    struct rewrite *rw; /* NOPs prepared whose CQE has not been seen */
    unsigned rw_n, rw_cap;
    struct streak streaks[STREAKS];
    unsigned streak_next;
    uint64_t seq; /* arrivals so far */
};

/* The first hook of a thread reads CORIO_FAULTS, unless corio__fault_configure came first. */
static inline void ensure(void)
{
    if (unlikely(!T.init))
        corio__fault_ensure();
}

/* ---- per-ring state ------------------------------------------------------------------------- */

static struct ring_state *find(const struct corio__ring *r, bool create)
{
    struct ring_state **pp = &T.rings;
    for (struct ring_state *s = *pp; s; pp = &s->next, s = s->next) {
        if (s->ring == r) {
            if (pp != &T.rings) { /* most recently used first */
                *pp = s->next;
                s->next = T.rings;
                T.rings = s;
            }
            return s;
        }
    }
    if (!create)
        return NULL;
    struct ring_state *s = calloc(1, sizeof(*s));
    if (!s)
        corio__panic("fault seam: out of memory");
    s->ring = r;
    s->next = T.rings;
    T.rings = s;
    return s;
}

/* Makes room for @n elements of @size in *@p (capacity *@cap). */
static void grow(void *p, unsigned *cap, unsigned n, size_t size)
{
    if (n <= *cap)
        return;
    unsigned c = *cap ? *cap : 16;
    while (c < n)
        c *= 2;
    void *q = realloc(*(void **)p, c * size);
    if (!q)
        corio__panic("fault seam: out of memory");
    *(void **)p = q;
    *cap = c;
}

void corio__fault_ring_free(const struct corio__ring *r)
{
    for (struct ring_state **pp = &T.rings; *pp; pp = &(*pp)->next) {
        struct ring_state *s = *pp;
        if (s->ring != r)
            continue;
        for (unsigned i = 0; i < s->held_n; i++)
            if (s->held[i].cqe.user_data != 0)
                T.stats.lost++;
        *pp = s->next;
        free(s->held);
        free(s->pool);
        free(s->uds);
        free(s->rw);
        free(s);
        return;
    }
}

/* ---- setup and enter ------------------------------------------------------------------------ */

int corio__fault_setup(unsigned setup_flags, uint64_t feats)
{
    (void)setup_flags;
    ensure();
    if (feats & T.cfg.refuse_setup) {
        T.stats.setup_refused++;
        return -EINVAL;
    }
    return 0;
}

void corio__fault_params(unsigned *sq_entries, unsigned *cq_entries)
{
    ensure();
    if (T.cfg.sq)
        *sq_entries = T.cfg.sq;
    if (T.cfg.cq) {
        *cq_entries = T.cfg.cq;
        if (*sq_entries > T.cfg.cq)
            *sq_entries = T.cfg.cq;
    }
}

uint64_t corio__fault_hidden_ops(void)
{
    ensure();
    return T.cfg.hide_op | T.cfg.hide_feat;
}

int corio__fault_enter(const struct corio__ring *r, unsigned *min_complete)
{
    ensure();
    if (*min_complete) {
        struct ring_state *s = find(r, false);
        if (s && s->held_n) {
            *min_complete = 0;
            T.stats.enter_nowait++;
        }
    }
    if (!T.cfg.any)
        return 0;
    if (chance(T.cfg.enter_eintr)) {
        T.stats.enter_eintr++;
        trace(EINTR, 0);
        return -EINTR;
    }
    if (chance(T.cfg.enter_eagain)) {
        T.stats.enter_eagain++;
        trace(EAGAIN, 0);
        return -EAGAIN;
    }
    if (chance(T.cfg.enter_ebusy)) {
        T.stats.enter_ebusy++;
        trace(EBUSY, 0);
        return -EBUSY;
    }
    return 0;
}

bool corio__fault_sq_full(const struct corio__ring *r)
{
    (void)r;
    if (!T.cfg.any || !chance(T.cfg.sq_full))
        return false;
    T.stats.sq_full++;
    trace(1000, 0);
    return true;
}

/* ---- SQEs ----------------------------------------------------------------------------------- */

/* The CORIO_FEAT_ bit of the kernel op behind each corio op. */
static const uint8_t op_feat[CORIO__OP_COUNT] = {
    [CORIO__OP_NOP] = CORIO_FEAT_NOP,
    [CORIO__OP_READ] = CORIO_FEAT_READ,
    [CORIO__OP_WRITE] = CORIO_FEAT_WRITE,
    [CORIO__OP_READV] = CORIO_FEAT_READV,
    [CORIO__OP_WRITEV] = CORIO_FEAT_WRITEV,
    [CORIO__OP_OPENAT] = CORIO_FEAT_OPENAT,
    [CORIO__OP_CLOSE] = CORIO_FEAT_CLOSE,
    [CORIO__OP_FSYNC] = CORIO_FEAT_FSYNC,
    [CORIO__OP_STATX] = CORIO_FEAT_STATX,
    [CORIO__OP_SOCKET] = CORIO_FEAT_SOCKET,
    [CORIO__OP_ACCEPT] = CORIO_FEAT_ACCEPT,
    [CORIO__OP_CONNECT] = CORIO_FEAT_CONNECT,
    [CORIO__OP_SEND] = CORIO_FEAT_SEND,
    [CORIO__OP_RECV] = CORIO_FEAT_RECV,
    [CORIO__OP_SENDMSG] = CORIO_FEAT_SENDMSG,
    [CORIO__OP_RECVMSG] = CORIO_FEAT_RECVMSG,
    [CORIO__OP_SHUTDOWN] = CORIO_FEAT_SHUTDOWN,
    [CORIO__OP_TIMEOUT] = CORIO_FEAT_TIMEOUT,
    [CORIO__OP_RECV_MULTI] = CORIO_FEAT_RECV,
    [CORIO__OP_ACCEPT_MULTI] = CORIO_FEAT_ACCEPT,
    [CORIO__OP_SEND_ZC] = CORIO_FEAT_SEND_ZC,
    [CORIO__OP_READ_FIXED] = CORIO_FEAT_READ_FIXED,
    [CORIO__OP_WRITE_FIXED] = CORIO_FEAT_WRITE_FIXED,
    [CORIO__OP_POLL] = CORIO_FEAT_POLL,
};

static bool may_eagain(const struct corio__op *op)
{
    switch (op->opcode) {
    case CORIO__OP_READ:
    case CORIO__OP_WRITE:
    case CORIO__OP_READV:
    case CORIO__OP_WRITEV:
    case CORIO__OP_RECV:
    case CORIO__OP_SEND:
    case CORIO__OP_RECVMSG:
    case CORIO__OP_SENDMSG:
    case CORIO__OP_ACCEPT:
        return true;
    default:
        return false;
    }
}

static bool may_reset(const struct corio__op *op)
{
    return op->opcode == CORIO__OP_RECV || op->opcode == CORIO__OP_SEND ||
           op->opcode == CORIO__OP_RECV_MULTI;
}

static bool may_shorten(const struct corio__op *op)
{
    switch (op->opcode) {
    case CORIO__OP_RECV:
        return !(op->op_flags & MSG_WAITALL) && op->len > 1;
    case CORIO__OP_READ:
    case CORIO__OP_WRITE:
    case CORIO__OP_READV:
    case CORIO__OP_WRITEV:
    case CORIO__OP_SEND:
    case CORIO__OP_SEND_ZC:
    case CORIO__OP_READ_FIXED:
    case CORIO__OP_WRITE_FIXED:
        return op->len > 1 && op->len != UINT32_MAX; /* UINT32_MAX: a bad iovcnt, kept */
    default:
        return false;
    }
}

/* The -EAGAIN streak of @ud, remembered for the last STREAKS user_data given one. */
static struct streak *streak_of(struct ring_state *s, uint64_t ud, bool create)
{
    for (unsigned i = 0; i < STREAKS; i++)
        if (s->streaks[i].ud == ud && s->streaks[i].n)
            return &s->streaks[i];
    if (!create)
        return NULL;
    struct streak *st = &s->streaks[s->streak_next++ % STREAKS];
    st->ud = ud;
    st->n = 0;
    return st;
}

/* Turns the SQE of @op into a NOP whose CQE will carry @res. */
static const struct corio__op *nop(struct ring_state *s, const struct corio__op *op, uint64_t ud,
                                   int32_t res, struct corio__op *scratch, uint64_t *counter)
{
    trace(2000 + (uint64_t)-res, op->opcode);
    grow(&s->rw, &s->rw_cap, s->rw_n + 1, sizeof(*s->rw));
    s->rw[s->rw_n++] = (struct rewrite){.ud = ud, .res = res};
    *scratch = (struct corio__op){.opcode = CORIO__OP_NOP};
    (*counter)++;
    return scratch;
}

const struct corio__op *corio__fault_prep(const struct corio__ring *r, const struct corio__op *op,
                                          uint64_t user_data, struct corio__op *scratch)
{
    /* user_data 0 (cancels, closes nobody waits for) has no consumer to see a fault. */
    if (likely(!T.cfg.any) || user_data == 0 || op->opcode >= CORIO__OP_COUNT)
        return op;
    struct ring_state *s = find(r, true);
    if (T.cfg.refuse_op & (1ull << op_feat[op->opcode]))
        return nop(s, op, user_data, T.cfg.refuse_err, scratch, &T.stats.op_refused);
    /* ops= narrows the faults below to some kinds of op (refuse_op above names its own). */
    if (T.cfg.ops && !(T.cfg.ops & (1ull << op_feat[op->opcode])))
        return op;
    if (may_reset(op) && chance(T.cfg.cqe_econnreset))
        return nop(s, op, user_data, -ECONNRESET, scratch, &T.stats.cqe_econnreset);
    if (op->opcode == CORIO__OP_RECV_MULTI && chance(T.cfg.cqe_enobufs))
        return nop(s, op, user_data, -ENOBUFS, scratch, &T.stats.cqe_enobufs);
    if (may_eagain(op) && T.cfg.cqe_eagain > 0) {
        struct streak *st = streak_of(s, user_data, false);
        if ((!st || st->n < EAGAIN_STREAK_MAX) && chance(T.cfg.cqe_eagain)) {
            if (!st)
                st = streak_of(s, user_data, true);
            st->n++;
            return nop(s, op, user_data, -EAGAIN, scratch, &T.stats.cqe_eagain);
        }
        if (st)
            st->n = 0;
    }
    if (may_shorten(op) && chance(T.cfg.short_rw)) {
        *scratch = *op;
        scratch->len = 1 + below(op->len); /* 1..len: len itself is possible */
        if (scratch->len != op->len) {
            T.stats.short_rw++;
            trace(1001, (uint64_t)op->opcode << 32 | scratch->len);
        }
        return scratch;
    }
    return op;
}

/* ---- CQEs ----------------------------------------------------------------------------------- */

static bool ud_in(const uint64_t *uds, unsigned n, uint64_t ud)
{
    for (unsigned i = 0; i < n; i++)
        if (uds[i] == ud)
            return true;
    return false;
}

unsigned corio__fault_cqes(const struct corio__ring *r, struct corio__cqe *c, unsigned n,
                           unsigned max)
{
    struct ring_state *s = find(r, T.cfg.any);
    if (likely(!s))
        return n;
    T.stats.cqes_in += n;

    /* The CQEs of the NOPs that stand for faulted ops get their res. */
    for (unsigned i = 0; i < n && s->rw_n; i++) {
        for (unsigned j = 0; j < s->rw_n; j++) {
            if (s->rw[j].ud == c[i].user_data) {
                c[i].res = s->rw[j].res;
                s->rw[j] = s->rw[--s->rw_n];
                T.stats.rewritten++;
                break;
            }
        }
    }
    if (!s->held_n && !(T.cfg.holdback > 0) && !(T.cfg.reorder > 0)) {
        T.stats.cqes_out += n;
        return n;
    }

    /* The pool: what was held back (oldest first per user_data), then the new arrivals. */
    unsigned p = s->held_n + n;
    grow(&s->pool, &s->pool_cap, p, sizeof(*s->pool));
    grow(&s->uds, &s->uds_cap, p, sizeof(*s->uds));
    if (s->held_n)
        memcpy(s->pool, s->held, s->held_n * sizeof(*s->held));
    for (unsigned i = 0; i < n; i++)
        s->pool[s->held_n + i] = (struct held){.cqe = c[i], .seq = s->seq++, .age = 0};
    s->held_n = 0;

    /* Hand out or hold back each, in pool order. Once a CQE of some user_data is held, every
     * later one of that user_data is held too. Past @max, the rest is held. */
    unsigned k = 0, nuds = 0;
    grow(&s->held, &s->held_cap, p, sizeof(*s->held));
    struct held *out = s->pool; /* handed-out entries are compacted to the front, in place */
    for (unsigned i = 0; i < p; i++) {
        struct held h = s->pool[i];
        bool hold = ud_in(s->uds, nuds, h.cqe.user_data) || k == max ||
                    (h.age < HOLD_MAX_AGE && s->held_n < HOLD_MAX && chance(T.cfg.holdback));
        if (hold) {
            if (!ud_in(s->uds, nuds, h.cqe.user_data))
                s->uds[nuds++] = h.cqe.user_data;
            h.age++;
            s->held[s->held_n++] = h;
            T.stats.held++;
            trace(1002, h.age);
        } else {
            out[k++] = h;
        }
    }

    /* Shuffle what is handed out, then put each user_data's CQEs back in arrival order. */
    if (k > 1 && chance(T.cfg.reorder)) {
        T.stats.reordered++;
        trace(1003, k);
        for (unsigned i = k - 1; i > 0; i--) {
            unsigned j = below(i + 1);
            struct held t = out[i];
            out[i] = out[j];
            out[j] = t;
        }
        for (unsigned i = 0; i < k; i++) {
            for (unsigned j = i + 1; j < k; j++) {
                if (out[j].cqe.user_data == out[i].cqe.user_data && out[j].seq < out[i].seq) {
                    struct held t = out[i];
                    out[i] = out[j];
                    out[j] = t;
                }
            }
        }
    }
    for (unsigned i = 0; i < k; i++)
        c[i] = out[i].cqe;
    T.stats.cqes_out += k;
    return k;
}

#else

/* ISO C wants a translation unit to declare something. */
typedef int corio__fault_disabled;

#endif
