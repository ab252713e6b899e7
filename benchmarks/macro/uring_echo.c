/*
 * uring_echo: a raw liburing TCP echo server without coroutines, the same-machine baseline that
 * shows what corio's coroutine layer costs over hand-written io_uring. No dependency on corio.
 *
 * One thread, one ring, one io_uring_enter() per loop iteration: io_uring_submit_and_wait(ring, 1)
 * submits everything the previous batch of completions queued and waits for the next, and the CQ is
 * drained with io_uring_for_each_cqe() and a single io_uring_cq_advance(). Each connection is a
 * small state machine (conn_step()) with at most one recv and one send in flight.
 *
 * --mode basic: single-shot accept; recv into a per-connection buffer; send it back; recv again.
 * --mode fast (default) adds what the kernel offers, each probed with a fallback:
 * - setup SINGLE_ISSUER|DEFER_TASKRUN (6.1), else COOP_TASKRUN|TASKRUN_FLAG (5.19), else none,
 *   with SUBMIT_ALL (5.18) where taken, and a registered ring fd (5.18) to skip fdget per enter;
 * - multishot accept (5.19), re-armed whenever a CQE lacks IORING_CQE_F_MORE;
 * - a provided buffer ring (5.19) feeding a multishot recv (6.0). Each CQE's buffer is queued on
 *   its connection and sent straight from the buffer (no copy); the buffer goes back to the ring
 *   when its send completes. One send per connection is in flight, so the bytes leave in order.
 *   A connection holding CONN_MAX_BUFS buffers has its recv cancelled until its queue drains, the
 *   analogue of epoll_echo turning EPOLLIN off, so one slow reader cannot take the whole pool.
 *   -ENOBUFS ends a multishot recv without consuming data; the connection re-arms once buffers
 *   come back, so nothing is dropped.
 * - The kernel takes ring buffers in FIFO order, so a buffer comes back into use only after every
 *   other buffer in the ring: with the whole 16 MiB pool in the ring, every recv would write into
 *   cache-cold memory. Returned buffers therefore go on a LIFO stack, and the ring is topped up
 *   from it to a small target (RING_TARGET_INIT buffers, doubled after an -ENOBUFS and decaying
 *   back), so the same few hundred KiB stay in cache while the pool still absorbs bursts.
 * If a multishot opcode is refused (-EINVAL) the server falls back to its single-shot form, and if
 * the buffer ring cannot be registered it uses the basic data path.
 *
 * Usage: uring_echo [--mode basic|fast] [--host ADDR] [--port N] [--backlog N] [--cpu N] (common.c
 * parses all but --mode, and holds the set-up that the baselines share: pinning, limits, listener).
 * Prints "ready port=N" once listening. SIGINT or SIGTERM (a signalfd polled through the ring)
 * stops it with status 0 after cancelling and reaping every request, and prints
 * "conns=... msgs=... bytes=... enters=... enobufs=... ring=... mode=... features=..." on stderr
 * (msgs counts recv completions that returned data, enters the io_uring_enter() calls of the main
 * loop, enobufs the recvs that found the buffer ring empty, ring the final ring target, 0 when
 * there is no buffer ring).
 */
#include "common.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define SQ_ENTRIES 4096
/* Multishot requests post many CQEs per SQE, so the CQ is sized well above the SQ. */
#define CQ_ENTRIES (4 * SQ_ENTRIES)
/* Per-connection buffer of the basic data path. */
#define BASIC_BUF_SIZE (16 * 1024)
/*
 * The provided buffer pool: PBUF_COUNT (a power of two, at most 32768) buffers of PBUF_SIZE. The
 * sizes may be overridden with -D, as the tests do to force -ENOBUFS with a pool of 16.
 */
#ifndef PBUF_COUNT
#define PBUF_COUNT 4096
#endif
#ifndef PBUF_SIZE
#define PBUF_SIZE 4096
#endif
#define PBUF_GROUP 0
/* Free buffers kept in the kernel ring at first (see the top comment); at most PBUF_COUNT. */
#ifndef RING_TARGET_INIT
#define RING_TARGET_INIT 128
#endif
#define RING_DECAY_ITERS 4096
/* Buffers one connection may hold before its recv is paused: 64 KiB, as in epoll_echo. */
#ifndef CONN_MAX_BUFS
#define CONN_MAX_BUFS 16
#endif
_Static_assert((PBUF_COUNT & (PBUF_COUNT - 1)) == 0 && PBUF_COUNT <= 32768, "PBUF_COUNT");
#define ACCEPT_BACKOFF_MS 100
/* How long exit waits for cancelled requests to be reaped before it tears the ring down anyway. */
#define DRAIN_TIMEOUT_SEC 2

/*
 * user_data layout: bits 0-7 the op, bits 8-31 the fd, bits 32-63 the connection's generation, so
 * a CQE that outlives its connection is recognised even after the fd number is reused.
 */
enum op {
    OP_ACCEPT = 1,   /* single-shot accept */
    OP_ACCEPT_MSHOT, /* multishot accept */
    OP_RECV,         /* single-shot recv, into c->buf or a provided buffer */
    OP_RECV_MSHOT,   /* multishot recv into provided buffers */
    OP_SEND,         /* send from c->buf or the head of the connection's buffer queue */
    OP_CLOSE,        /* close of a finished connection's fd */
    OP_CANCEL,       /* cancel of one connection's recv */
    OP_CANCEL_ALL,   /* the cancel of everything at exit */
    OP_SIGNAL,       /* poll on the signalfd */
    OP_TIMEOUT,      /* the accept back-off timer */
};

static inline uint64_t make_ud(enum op op, int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint64_t)((uint32_t)fd & 0xffffff) << 8 | (uint64_t)op;
}

/* A connection's state, at table[fd]. */
struct conn {
    uint32_t gen;     /* tag of this connection's requests; 0 marks a free slot */
    bool recv_armed;  /* a recv is in flight (a multishot one until a CQE lacks F_MORE) */
    bool recv_mshot;  /* the armed recv is multishot */
    bool send_armed;  /* a send is in flight */
    bool cancel_sent; /* a cancel of the armed recv is in flight */
    bool eof;         /* the peer shut down its side: finish once the queued bytes are sent */
    bool closing;     /* done: nothing new is armed; the fd closes once nothing is in flight */
    bool starved;     /* recv ended with -ENOBUFS; re-armed when buffers return */
    uint16_t queued;  /* provided buffers queued to send, the one being sent included */
    uint16_t q_head;  /* first queued buffer id; the rest are linked through s->pbuf_next */
    uint16_t q_tail;  /* last queued buffer id */
    uint32_t q_off;   /* bytes of the head buffer already sent */
    char *buf;        /* basic data path: receive buffer of BASIC_BUF_SIZE bytes */
    uint32_t len;     /* basic data path: bytes received into buf */
    uint32_t off;     /* basic data path: bytes of buf already sent; off < len: output pending */
};

struct server {
    struct io_uring ring; /* the one ring: every request of the server goes through it */
    bool ring_ok;         /* ring is initialised and must be torn down */
    int lfd;              /* listening socket */
    int sfd;              /* signalfd for SIGINT and SIGTERM */
    struct conn *table;   /* per-fd state, nfds entries */
    int nfds;             /* table size, equal to the RLIMIT_NOFILE soft limit */
    int max_fd;           /* highest fd ever used by a connection, bounds table sweeps */
    uint32_t next_gen;    /* last generation handed out */
    unsigned inflight;    /* requests whose final CQE (no F_MORE) has not been seen */
    bool stop;            /* a stop signal arrived */
    /* Features in use. */
    bool fast;              /* --mode fast */
    bool accept_mshot;      /* multishot accept, until the kernel refuses it */
    bool recv_mshot;        /* multishot recv, until the kernel refuses it */
    bool use_pbuf;          /* the provided buffer ring is registered */
    const char *setup_name; /* which setup flag set was accepted */
    bool reg_ring;          /* the ring fd is registered */
    /* Accept state. */
    bool accept_armed;                /* an accept request is in flight */
    bool accept_paused;               /* EMFILE or similar: no accept until a close or the timer */
    bool timer_armed;                 /* the back-off timeout is in flight */
    struct __kernel_timespec backoff; /* the back-off delay; must outlive the timeout SQE */
    /* Provided buffers. */
    struct io_uring_buf_ring *br; /* the ring shared with the kernel, PBUF_COUNT entries */
    char *pbufs;                  /* PBUF_COUNT * PBUF_SIZE bytes of buffer memory */
    uint16_t *pbuf_next;          /* per buffer id: next buffer in its connection's send queue */
    uint32_t *pbuf_len;           /* per buffer id: bytes the recv put in it */
    uint16_t *spare;              /* free buffer ids kept out of the ring, LIFO: hottest on top */
    unsigned nspare;              /* entries in spare */
    unsigned ring_target;         /* free buffers to keep in the ring; doubles on -ENOBUFS */
    bool grow_ring;               /* an -ENOBUFS since the last flush_bufs(): double ring_target */
    unsigned quiet_iters;         /* loop iterations since ring_target last changed */
    unsigned pbuf_held;           /* buffers taken by CQEs and not yet back on spare */
    unsigned nstarved;            /* connections waiting for buffers */
    unsigned starve_cursor;       /* where flush_bufs() resumes its sweep for starved connections */
    /* Statistics. */
    uint64_t conns;   /* connections accepted */
    uint64_t msgs;    /* recv completions that returned data */
    uint64_t bytes;   /* bytes received */
    uint64_t enters;  /* io_uring_enter() calls made by the loop */
    uint64_t enobufs; /* recvs that found the buffer pool empty */
};

/*
 * Returns a free SQE. When the SQ is full the queued SQEs are submitted first; that extra enter
 * only happens when one batch of completions produces more than SQ_ENTRIES requests.
 */
static struct io_uring_sqe *get_sqe(struct server *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (sqe == NULL) {
        io_uring_submit(&s->ring);
        s->enters++;
        sqe = io_uring_get_sqe(&s->ring);
        if (sqe == NULL) {
            /* Submission consumed nothing: the ring is unusable, and no recovery is sensible. */
            fprintf(stderr, "uring_echo: submission queue stuck\n");
            abort();
        }
    }
    return sqe;
}

/*
 * Returns an SQE for a new request, counted in s->inflight: every request posts exactly one final
 * CQE (one without F_MORE), which uncounts it in handle_cqe(). The caller preps the SQE, which
 * clears user_data, and then tags it with set_ud().
 */
static struct io_uring_sqe *queue_op(struct server *s)
{
    s->inflight++;
    return get_sqe(s);
}

static void set_ud(struct io_uring_sqe *sqe, enum op op, int fd, uint32_t gen)
{
    io_uring_sqe_set_data64(sqe, make_ud(op, fd, gen));
}

static void arm_accept(struct server *s)
{
    struct io_uring_sqe *sqe = queue_op(s);
    if (s->accept_mshot) {
        io_uring_prep_multishot_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
        set_ud(sqe, OP_ACCEPT_MSHOT, s->lfd, 0);
    } else {
        io_uring_prep_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
        set_ud(sqe, OP_ACCEPT, s->lfd, 0);
    }
    s->accept_armed = true;
}

static void resume_accept(struct server *s)
{
    if (!s->accept_paused)
        return;
    s->accept_paused = false;
    if (!s->accept_armed && !s->stop)
        arm_accept(s);
}

/*
 * Stops accepting after EMFILE, ENFILE, ENOBUFS or ENOMEM: re-arming at once would fail again at
 * once, a busy loop. Accepting resumes when a connection closes or when the back-off timer fires.
 */
static void pause_accept(struct server *s)
{
    s->accept_paused = true;
    if (s->timer_armed)
        return;
    struct io_uring_sqe *sqe = queue_op(s);
    io_uring_prep_timeout(sqe, &s->backoff, 0, 0);
    set_ud(sqe, OP_TIMEOUT, -1, 0);
    s->timer_armed = true;
}

static void arm_signal(struct server *s)
{
    struct io_uring_sqe *sqe = queue_op(s);
    io_uring_prep_poll_add(sqe, s->sfd, POLLIN);
    set_ud(sqe, OP_SIGNAL, s->sfd, 0);
}

/* Takes back buffer @bid. flush_bufs() hands it to the kernel again when the ring runs low. */
static void return_buf(struct server *s, uint16_t bid)
{
    s->spare[s->nspare++] = bid;
    s->pbuf_held--;
}

static void arm_recv(struct server *s, int fd, struct conn *c)
{
    struct io_uring_sqe *sqe = queue_op(s);
    if (!s->use_pbuf) {
        io_uring_prep_recv(sqe, fd, c->buf, BASIC_BUF_SIZE, 0);
        set_ud(sqe, OP_RECV, fd, c->gen);
    } else {
        c->recv_mshot = s->recv_mshot;
        if (s->recv_mshot) {
            io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
            set_ud(sqe, OP_RECV_MSHOT, fd, c->gen);
        } else {
            io_uring_prep_recv(sqe, fd, NULL, PBUF_SIZE, 0);
            set_ud(sqe, OP_RECV, fd, c->gen);
        }
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = PBUF_GROUP;
    }
    c->recv_armed = true;
}

static void arm_send(struct server *s, int fd, struct conn *c)
{
    struct io_uring_sqe *sqe = queue_op(s);
    if (!s->use_pbuf) {
        io_uring_prep_send(sqe, fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
    } else {
        /*
         * MSG_WAITALL makes the kernel finish a partial stream send itself (5.19+; older kernels
         * ignore it) instead of posting a short CQE; short sends are still handled below.
         */
        const char *p = s->pbufs + (size_t)c->q_head * PBUF_SIZE + c->q_off;
        io_uring_prep_send(sqe, fd, p, s->pbuf_len[c->q_head] - c->q_off,
                           MSG_NOSIGNAL | (s->fast ? MSG_WAITALL : 0));
    }
    set_ud(sqe, OP_SEND, fd, c->gen);
    c->send_armed = true;
}

static void cancel_recv(struct server *s, int fd, struct conn *c)
{
    struct io_uring_sqe *sqe = queue_op(s);
    io_uring_prep_cancel64(sqe, make_ud(c->recv_mshot ? OP_RECV_MSHOT : OP_RECV, fd, c->gen), 0);
    set_ud(sqe, OP_CANCEL, fd, c->gen);
    c->cancel_sent = true;
}

/*
 * Frees the slot and closes the fd through the ring, so the close rides along with the next
 * submit instead of costing a syscall. The fd number cannot be reused by an accept before the
 * close runs, and any later CQE for this connection fails the generation check.
 */
static void release_conn(struct server *s, int fd, struct conn *c)
{
    while (c->queued > 0) {
        return_buf(s, c->q_head);
        c->q_head = s->pbuf_next[c->q_head];
        c->queued--;
    }
    if (c->starved)
        s->nstarved--;
    free(c->buf);
    *c = (struct conn){0};
    struct io_uring_sqe *sqe = queue_op(s);
    io_uring_prep_close(sqe, fd);
    set_ud(sqe, OP_CLOSE, fd, 0);
    resume_accept(s);
}

/*
 * Moves a connection forward after any of its completions: finishes it when it is done, sends
 * pending output, and keeps a recv armed while there is room for what it would bring.
 */
static void conn_step(struct server *s, int fd, struct conn *c)
{
    bool pending = s->use_pbuf ? c->queued > 0 : c->off < c->len;
    if (c->eof && !pending && !c->send_armed)
        c->closing = true;
    if (c->closing) {
        if (c->recv_armed && !c->cancel_sent)
            cancel_recv(s, fd, c);
        if (!c->recv_armed && !c->send_armed)
            release_conn(s, fd, c);
        return;
    }
    if (pending && !c->send_armed)
        arm_send(s, fd, c);
    /* basic: strictly recv, send, recv; fast: recv while the queue has room. */
    bool room = s->use_pbuf ? c->queued < CONN_MAX_BUFS : !pending;
    if (!c->recv_armed && !c->eof && !c->starved && room && !s->stop)
        arm_recv(s, fd, c);
    else if (c->recv_armed && c->recv_mshot && !room && !c->cancel_sent)
        cancel_recv(s, fd, c);
}

static void on_new_conn(struct server *s, int fd)
{
    if (fd >= s->nfds) {
        /* Cannot happen while the table matches RLIMIT_NOFILE; refuse rather than overrun. */
        close(fd);
        return;
    }
    struct conn *c = &s->table[fd];
    if (++s->next_gen == 0)
        s->next_gen = 1;
    *c = (struct conn){.gen = s->next_gen};
    if (!s->use_pbuf && (c->buf = malloc(BASIC_BUF_SIZE)) == NULL) {
        c->gen = 0;
        close(fd);
        return;
    }
    if (fd > s->max_fd)
        s->max_fd = fd;
    s->conns++;
    arm_recv(s, fd, c);
}

static void on_accept(struct server *s, enum op op, int res, bool more)
{
    if (!more)
        s->accept_armed = false;
    if (res >= 0) {
        on_new_conn(s, res);
    } else if (res == -EINVAL && op == OP_ACCEPT_MSHOT) {
        s->accept_mshot = false; /* before 5.19 */
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        pause_accept(s);
    }
    /* Other errors (ECONNABORTED, EPERM from a firewall...) concern one connection: go on. */
    if (!s->accept_armed && !s->accept_paused && !s->stop)
        arm_accept(s);
}

static void on_recv(struct server *s, int fd, struct conn *c, enum op op, int res, uint32_t flags)
{
    bool more = flags & IORING_CQE_F_MORE;
    if (!more) {
        c->recv_armed = false;
        c->cancel_sent = false;
    }
    if (res > 0) {
        s->msgs++;
        s->bytes += (uint64_t)res;
        if (!s->use_pbuf) {
            c->len = (uint32_t)res;
            c->off = 0;
        } else {
            uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
            s->pbuf_len[bid] = (uint32_t)res;
            if (c->queued++ == 0)
                c->q_head = bid;
            else
                s->pbuf_next[c->q_tail] = bid;
            c->q_tail = bid;
        }
    } else if (res == 0) {
        c->eof = true;
    } else if (res == -ENOBUFS) {
        /* Nothing was consumed; the data waits in the socket until buffers return. */
        s->enobufs++;
        s->grow_ring = true;
        if (!c->recv_armed && !c->starved) {
            c->starved = true;
            s->nstarved++;
        }
    } else if (res == -EINVAL && op == OP_RECV_MSHOT) {
        s->recv_mshot = false; /* before 6.0: single-shot recvs from the same buffer ring */
    } else if (res != -ECANCELED) {
        c->closing = true; /* ECONNRESET, ETIMEDOUT...: the peer is gone */
    }
    conn_step(s, fd, c);
}

static void on_send(struct server *s, int fd, struct conn *c, int res)
{
    c->send_armed = false;
    if (res <= 0) {
        c->closing = true; /* EPIPE, ECONNRESET; 0 cannot happen for a non-empty send */
    } else if (!s->use_pbuf) {
        c->off += (uint32_t)res;
    } else {
        c->q_off += (uint32_t)res;
        if (c->q_off == s->pbuf_len[c->q_head]) {
            return_buf(s, c->q_head);
            c->q_head = s->pbuf_next[c->q_head];
            c->q_off = 0;
            c->queued--;
        }
    }
    conn_step(s, fd, c);
}

static void on_signal(struct server *s)
{
    struct signalfd_siginfo si;
    while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        s->stop = true;
    if (!s->stop)
        arm_signal(s);
}

/* Dispatches one CQE. Reads everything it needs before the caller advances the CQ head. */
static void handle_cqe(struct server *s, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    enum op op = (enum op)(ud & 0xff);
    int fd = (int)((ud >> 8) & 0xffffff);
    uint32_t gen = (uint32_t)(ud >> 32);
    int res = cqe->res;
    uint32_t flags = cqe->flags;
    bool more = flags & IORING_CQE_F_MORE;

    if (!more)
        s->inflight--;
    if (flags & IORING_CQE_F_BUFFER)
        s->pbuf_held++;
    switch (op) {
    case OP_ACCEPT:
    case OP_ACCEPT_MSHOT:
        on_accept(s, op, res, more);
        break;
    case OP_RECV:
    case OP_RECV_MSHOT:
    case OP_SEND: {
        struct conn *c = fd < s->nfds ? &s->table[fd] : NULL;
        if (c == NULL || c->gen == 0 || c->gen != gen) {
            /* Not expected: a connection is released only once its requests are done. */
            if (flags & IORING_CQE_F_BUFFER)
                return_buf(s, (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT));
            break;
        }
        if (op == OP_SEND)
            on_send(s, fd, c, res);
        else
            on_recv(s, fd, c, op, res, flags);
        break;
    }
    case OP_SIGNAL:
        on_signal(s);
        break;
    case OP_TIMEOUT:
        s->timer_armed = false;
        resume_accept(s);
        break;
    case OP_CLOSE:
    case OP_CANCEL:
    case OP_CANCEL_ALL:
        break;
    }
}

/*
 * Tops the kernel ring up to s->ring_target from the spare stack, hottest buffers first, with one
 * tail publish, then re-arms as many starved connections as the ring has buffers, round-robin from
 * a cursor. Counting what the ring holds, not what just came back, keeps a connection from
 * starving forever when its -ENOBUFS raced with the last return, while a trickle of returns does
 * not wake every starved connection into another -ENOBUFS. Starvation is rare, so the O(max_fd)
 * sweep is the simple choice.
 */
static void flush_bufs(struct server *s)
{
    /*
     * Doubled once per iteration however many recvs failed, so one burst grows it once; shrunk by
     * a quarter after RING_DECAY_ITERS quiet iterations, so that a past burst does not leave the
     * ring cold for good. A wrong guess costs one failed recv and a re-arm.
     */
    if (s->grow_ring) {
        if (s->ring_target < PBUF_COUNT)
            s->ring_target *= 2;
        s->grow_ring = false;
        s->quiet_iters = 0;
    } else if (++s->quiet_iters >= RING_DECAY_ITERS && s->ring_target > RING_TARGET_INIT) {
        s->ring_target -= s->ring_target / 4;
        if (s->ring_target < RING_TARGET_INIT)
            s->ring_target = RING_TARGET_INIT;
        s->quiet_iters = 0;
    }
    /* Buffers neither held nor spare are in the ring (or in a CQE not reaped yet: harmless). */
    unsigned in_ring = PBUF_COUNT - s->pbuf_held - s->nspare;
    int added = 0;
    while (in_ring < s->ring_target && s->nspare > 0) {
        uint16_t bid = s->spare[--s->nspare];
        io_uring_buf_ring_add(s->br, s->pbufs + (size_t)bid * PBUF_SIZE, PBUF_SIZE, bid,
                              io_uring_buf_ring_mask(PBUF_COUNT), added++);
        in_ring++;
    }
    if (added > 0)
        io_uring_buf_ring_advance(s->br, added);
    unsigned budget = in_ring;
    for (int i = 0; i <= s->max_fd && s->nstarved > 0 && budget > 0; i++) {
        int fd = (int)(s->starve_cursor++ % (unsigned)(s->max_fd + 1));
        struct conn *c = &s->table[fd];
        if (c->gen != 0 && c->starved) {
            c->starved = false;
            s->nstarved--;
            budget--;
            conn_step(s, fd, c);
        }
    }
}

static int run(struct server *s)
{
    while (!s->stop) {
        if (s->use_pbuf)
            flush_bufs(s);
        /* The iteration's one syscall: submit all queued SQEs and wait for a completion. */
        int r = io_uring_submit_and_wait(&s->ring, 1);
        s->enters++;
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME) {
            fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-r));
            return -1;
        }
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&s->ring, head, cqe)
        {
            handle_cqe(s, cqe);
            n++;
        }
        io_uring_cq_advance(&s->ring, n);
    }
    return 0;
}

/*
 * Cancels every request and reaps the CQEs, so that no request can still touch a buffer when the
 * memory is freed. IORING_ASYNC_CANCEL_ANY needs 5.19; before it the cancel fails with -EINVAL and
 * the ring teardown (io_uring_queue_exit) has to do the cancelling. Returns 0, or -ETIME if some
 * request did not finish within DRAIN_TIMEOUT_SEC.
 */
static int drain(struct server *s)
{
    struct io_uring_sqe *sqe = queue_op(s);
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
    set_ud(sqe, OP_CANCEL_ALL, -1, 0);
    while (s->inflight > 0) {
        struct __kernel_timespec ts = {.tv_sec = DRAIN_TIMEOUT_SEC};
        struct io_uring_cqe *first;
        int r = io_uring_submit_and_wait_timeout(&s->ring, &first, 1, &ts, NULL);
        if (r == -ETIME)
            return -ETIME;
        if (r < 0 && r != -EINTR)
            return r;
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        bool unsupported = false;
        io_uring_for_each_cqe(&s->ring, head, cqe)
        {
            if (!(cqe->flags & IORING_CQE_F_MORE))
                s->inflight--;
            if ((cqe->user_data & 0xff) == OP_CANCEL_ALL && cqe->res == -EINVAL)
                unsupported = true;
            n++;
        }
        io_uring_cq_advance(&s->ring, n);
        if (unsupported)
            return -EINVAL;
    }
    return 0;
}

/* Creates the ring, trying the best setup flags first. Returns 0 or -errno. */
static int setup_ring(struct server *s)
{
    static const struct {
        unsigned flags;
        const char *name;
    } tries[] = {
        {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
         "defer_taskrun"},
        {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
         "coop_taskrun"},
        {IORING_SETUP_SUBMIT_ALL, "submit_all"},
        {0, "plain"},
    };
    int r = -EINVAL;
    for (size_t i = s->fast ? 0 : 3; i < sizeof(tries) / sizeof(tries[0]); i++) {
        struct io_uring_params p = {
            .flags = tries[i].flags | IORING_SETUP_CQSIZE,
            .cq_entries = CQ_ENTRIES,
        };
        r = io_uring_queue_init_params(SQ_ENTRIES, &s->ring, &p);
        if (r == 0) {
            s->setup_name = tries[i].name;
            break;
        }
        /* -EINVAL: a flag this kernel lacks. Anything else (ENOMEM, EPERM) will not get better. */
        if (r != -EINVAL)
            return r;
    }
    if (r < 0)
        return r;
    s->ring_ok = true;
    if (!s->fast)
        return 0;

    s->reg_ring = io_uring_register_ring_fd(&s->ring) == 1;

    /* The buffer ring is mmap()ed: it must be page aligned, and the kernel reads it in place. */
    size_t ring_bytes = PBUF_COUNT * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *bufs = mmap(NULL, (size_t)PBUF_COUNT * PBUF_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    s->pbuf_next = calloc(PBUF_COUNT, sizeof(*s->pbuf_next));
    s->pbuf_len = calloc(PBUF_COUNT, sizeof(*s->pbuf_len));
    s->spare = calloc(PBUF_COUNT, sizeof(*s->spare));
    if (br == MAP_FAILED || bufs == MAP_FAILED || s->pbuf_next == NULL || s->pbuf_len == NULL ||
        s->spare == NULL)
        goto no_pbuf;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br,
        .ring_entries = PBUF_COUNT,
        .bgid = PBUF_GROUP,
    };
    if (io_uring_register_buf_ring(&s->ring, &reg, 0) < 0)
        goto no_pbuf;
    s->br = br;
    s->pbufs = bufs;
    io_uring_buf_ring_init(s->br);
    /* Low ids on top, so that the first buffers used are the first pages of the pool. */
    for (unsigned i = PBUF_COUNT; i-- > 0;)
        s->spare[s->nspare++] = (uint16_t)i;
    s->ring_target = RING_TARGET_INIT < PBUF_COUNT ? RING_TARGET_INIT : PBUF_COUNT;
    s->use_pbuf = true;
    flush_bufs(s);
    return 0;

no_pbuf:
    /* Before 5.19: keep the fast setup and accept, use the basic data path. */
    if (br != MAP_FAILED)
        munmap(br, ring_bytes);
    if (bufs != MAP_FAILED)
        munmap(bufs, (size_t)PBUF_COUNT * PBUF_SIZE);
    free(s->pbuf_next);
    free(s->pbuf_len);
    free(s->spare);
    s->pbuf_next = NULL;
    s->pbuf_len = NULL;
    s->spare = NULL;
    return 0;
}

static void teardown(struct server *s)
{
    if (s->ring_ok && s->inflight > 0) {
        int r = drain(s);
        if (r < 0 && r != -EINVAL)
            fprintf(stderr, "uring_echo: %u requests still in flight at exit (%s)\n", s->inflight,
                    strerror(-r));
    }
    if (s->table != NULL) {
        for (int fd = 0; fd <= s->max_fd; fd++) {
            if (s->table[fd].gen != 0) {
                close(fd);
                free(s->table[fd].buf);
            }
        }
    }
    if (s->use_pbuf) {
        io_uring_unregister_buf_ring(&s->ring, PBUF_GROUP);
        munmap(s->br, PBUF_COUNT * sizeof(struct io_uring_buf));
        munmap(s->pbufs, (size_t)PBUF_COUNT * PBUF_SIZE);
    }
    free(s->pbuf_next);
    free(s->pbuf_len);
    free(s->spare);
    if (s->ring_ok)
        io_uring_queue_exit(&s->ring);
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->sfd >= 0)
        close(s->sfd);
    free(s->table);
}

/* Takes --mode (fast or basic) into the bool at @ctx. Returns 0, or -EINVAL for another mode. */
static int take_mode(int val, const char *arg, void *ctx)
{
    bool *fast = ctx;
    (void)val;
    if (strcmp(arg, "fast") == 0)
        *fast = true;
    else if (strcmp(arg, "basic") == 0)
        *fast = false;
    else
        return -EINVAL;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option own[] = {{"mode", required_argument, NULL, 'm'}, {NULL, 0, NULL, 0}};
    bool fast = true;
    const struct bench_cli cli = {
        .default_port = 7002,
        .synopsis = " [--mode basic|fast]",
        .help =
            "  --mode M      basic: accept/recv/send; fast: the best io_uring features the kernel\n"
            "                has (default)\n",
        .own = own,
        .take = take_mode,
        .ctx = &fast,
    };
    struct bench_options o;
    int r, status;
    if (!bench_server_init(argc, argv, &cli, &o, &status))
        return status;

    status = 1;
    struct server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        perror("calloc");
        return 1;
    }
    s->lfd = s->sfd = -1;
    s->fast = fast;
    s->accept_mshot = fast;
    s->recv_mshot = fast;
    s->backoff.tv_nsec = ACCEPT_BACKOFF_MS * 1000000LL;
    sigset_t mask;
    bench_block_stop_signals(&mask);
    s->table = bench_fd_table(sizeof(*s->table), &s->nfds);
    if (s->table == NULL)
        goto out;
    s->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->sfd < 0) {
        perror("signalfd");
        goto out;
    }
    if ((r = setup_ring(s)) < 0) {
        fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-r));
        goto out;
    }
    int port = 0;
    s->lfd = bench_listen(&o, 0, &port);
    if (s->lfd < 0)
        goto out;
    arm_signal(s);
    arm_accept(s);
    bench_ready(port);

    if (run(s) == 0)
        status = 0;
    fprintf(stderr,
            "conns=%llu msgs=%llu bytes=%llu enters=%llu enobufs=%llu ring=%u mode=%s"
            " features=%s%s%s%s%s\n",
            (unsigned long long)s->conns, (unsigned long long)s->msgs, (unsigned long long)s->bytes,
            (unsigned long long)s->enters, (unsigned long long)s->enobufs, s->ring_target,
            s->fast ? "fast" : "basic", s->setup_name, s->reg_ring ? ",reg_ring" : "",
            s->accept_mshot ? ",mshot_accept" : "", s->use_pbuf ? ",buf_ring" : "",
            s->use_pbuf && s->recv_mshot ? ",mshot_recv" : "");

out:
    teardown(s);
    free(s);
    return status;
}
