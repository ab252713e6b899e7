/* The cancellation matrix: every kind of wait a coroutine can be cancelled in, crossed
 * with the moment of the cancel, and with the waiting coroutine's own end and the loop's.
 *
 * Kinds: recv, send (to a peer that does not read, its socket buffer full), accept, connect (to a
 * listener whose accept queue is full), sleep, read on a pipe, join, channel recv and channel send
 * (unbuffered). recv, send and accept use AF_UNIX stream sockets (cheap, no TIME_WAIT); connect
 * uses loopback TCP, the only kind whose connect waits.
 *
 * Moments, one cmocka test per (kind, moment) cell:
 *   before    the coroutine is cancelled before it starts the op: the op fails with -ECANCELED
 *             and submits nothing, although it could have completed at once (the data, the
 *             connection or the room is there). Variants: cancelled before it ever ran, or while
 *             runnable; for join and channels also a partner that is ready, where the call would
 *             not wait and so completes (the header's rule: only calls that would suspend fail).
 *   inflight  the op is parked in the kernel (or the coroutine in its wait); the cancel must win:
 *             -ECANCELED, and what arrives afterwards is left for the next reader.
 *   race      the op's completion and the cancel happen in the same loop iteration: the peer acts
 *             (writes, connects, drains) and the canceller cancels in one coroutine step, in both
 *             orders. Either result is legal; data is never lost: bytes a read took are returned
 *             to the caller, bytes it did not take are still in the pipe or socket. (connect: its
 *             SQE and the cancel go to the kernel in one io_uring_enter, to a listener with room;
 *             the loopback handshake completes during submission, so the connect always wins.
 *             sleep: the cancel comes as the timer expires.)
 *   after     the op completed, then the cancel: the result stands; the next wait fails with
 *             -ECANCELED. Variants: cancelled while runnable with its result not yet seen, or
 *             once it is parked in a later wait.
 *   destroy   the coroutine returns with the op still pending (start form, never awaited): the
 *             engine cancels it and keeps the stack until the CQE is in; a joiner sees the end
 *             only then, and scribblers then take the stack while the peer acts. Variants: it
 *             returns before the SQE was submitted, or with the op parked in the kernel, or so
 *             with the peer acting in the same step, or with the op able to complete as it is
 *             submitted (an fd an abandoned accept produced is closed by the engine). join and
 *             channel waits have no start form: not applicable.
 *   stop      corio_loop_stop() while the op is in flight (alone, or right after the peer acted).
 *   free      corio_loop_free() of a loop whose victim was spawned but never ran. corio_loop_run
 *             never returns while an op is in flight (its only early return is a deadlock, which
 *             means nothing is in flight), so a loop cannot be freed with an op pending: what
 *             free can meet is coroutines that have not started, which it runs cancelled.
 *
 * For every cell and every repetition: the op's result is returned exactly once and is one of the
 * legal ones for the cell; a second corio_await of the same future returns the same result; the
 * loop's count of expected CQEs comes back to 0 (a CQE delivered twice would wrap it); after the
 * op the coroutine is cancelled and its next waits fail at once without submitting; the data, the
 * connection or the channel value is accounted for; no stack is handed out again while an SQE on
 * it is in flight (scribblers take the freshly freed stacks, fill them, let the kernel run, and
 * check that nothing wrote into them); no coroutine, stack or SQE remains, and the fd count is
 * back to its start at the end of the cell. Run under ASan for the memory side.
 *
 * Repetitions per cell: CORIO_MATRIX_REPS, default 1000 in every build (so that the ASan build
 * runs 1,000 a cell too), 100 under valgrind. Repetitions alternate the moment's variants, a
 * deadline on the op or none, and two loops: one as corio sets it up (DEFER_TASKRUN), and one
 * whose task work runs as the peer's system call returns, where a completion can beat a cancel in
 * one iteration.
 * Measured on 2 CPUs (kernel 6.18): 60 cells x 1000 in 2.4 s (Debug), 1.8 s (clang Release), 13 s
 * (ASan+UBSan); 100 a cell under valgrind in ~6 s. A repetition that hangs (after
 * corio_loop_stop nothing is left that could notice) is aborted by a watchdog thread that names
 * the cell. */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "loop.h" /* white box: inflight CQEs, live coroutines, the stack pool */

/* A bound on every wait of the test's own coroutines: a broken engine fails, it does not hang. */
#define BOUND_NS (T_SANITIZED || t_on_valgrind() ? CORIO_SEC(20) : CORIO_SEC(5))

enum kind { K_RECV, K_SEND, K_ACCEPT, K_CONNECT, K_SLEEP, K_PIPE, K_JOIN, K_CRECV, K_CSEND };
enum moment { M_BEFORE, M_INFLIGHT, M_RACE, M_AFTER, M_DESTROY, M_STOP, M_FREE };

static const char *const kind_name[] = {"recv",      "send", "accept",    "connect",  "sleep",
                                        "pipe_read", "join", "chan_recv", "chan_send"};
static const char *const moment_name[] = {"before",  "inflight", "race", "after",
                                          "destroy", "stop",     "free"};

/* The victim's progress, written by it and read by the driver between steps. */
enum { ST_NEW, ST_HELD, ST_STARTED, ST_RETURNED, ST_LATE, ST_ENDED };

#define PEER_BYTES 16 /* what the peer writes for recv and pipe reads */
#define OP_BYTES 8    /* what the victim asks for: it can take only half */
#define SCRIBBLE_BYTES (40 * 1024)
#define N_SCRIBBLERS 3
#define SINK_BYTES (1 << 20)

/* One cell: its fixtures, shared by its repetitions, and its tallies. */
struct cell {
    enum kind kind;
    enum moment m;
    int reps;
    /* accept: a Unix listener (abstract address) with room in its queue */
    int ulfd;
    struct sockaddr_un uaddr;
    socklen_t ualen;
    /* connect: a TCP listener whose accept queue is full (connects stay in flight) and one with
     * room (connects complete while they are submitted) */
    int full_lfd, fillers[2];
    struct sockaddr_in full_addr;
    int open_lfd;
    struct sockaddr_in open_addr;
    /* channels: unbuffered, of ints */
    struct corio_chan *ch;
    /* send: what the peer drained, to check the whole byte stream (static storage) */
    unsigned char *sink;
    bool open; /* fixtures set up, not yet released */
    /* tallies */
    long won_cancel, won_completion, covered, reps_done;
};

/* One repetition. */
struct rep {
    struct cell *c;
    struct corio_loop *l;
    int i;       /* repetition index */
    int variant; /* which variant of the moment (see each driver) */
    bool linked; /* the victim's op carries a deadline (a linked timeout, or a timer) */
    int flavour; /* the loop: 0 as corio sets it up, 1 without deferred task work */
    bool hold;   /* the victim yields once before its op (before: cancelled while runnable) */
    bool late;   /* after: the victim parks in a later wait before the cancel comes */
    bool partner_ready; /* before, join and channels: the call would not wait */
    uint64_t seed;
    corio_id victim, target, partner;
    volatile int stage;
    /* the victim's op */
    struct corio_future *fut; /* while pending: the victim's future, on its stack */
    uintptr_t fut_addr;       /* where it was, for the scribblers' coverage count */
    int start_res;
    long start_inflight_delta;
    ssize_t res;
    ssize_t await_again;
    int resolved;
    bool was_cancelled, cancelled_at_start;
    bool ran_on; /* M_AFTER sleep: done at its start, the victim ran on before the cancel */
    int late_wait, retry_res, next_wait;
    long retry_inflight_delta;
    unsigned char got[OP_BYTES];
    int accepted;
    /* fixtures */
    int fds[2];
    int sock;                        /* connect: the victim's socket */
    const struct sockaddr_in *caddr; /* connect: where to */
    int client;                      /* accept: the peer's connecting socket */
    size_t prefill;                  /* send: bytes queued before the victim's send */
    size_t drained;                  /* send: bytes the peer has read so far */
    unsigned char vbytes[OP_BYTES];  /* send: the victim's bytes (the stream's continuation) */
    int64_t sleep_rel;               /* sleep: how long, from its start (-1: forever) */
    int64_t sleep_until;             /* sleep: its deadline, set as it starts */
    /* join */
    struct corio_event ev;
    bool target_cancels_victim, target_ended;
    int join_result;
    /* channels */
    int chan_got, vval, peer_res, peer_val;
    /* what the peer produced: recv and pipe bytes written, accept connections made */
    int produced;
    bool peer_acted;
};

/* ---- checks that name the cell and repetition on failure ------------------------------------- */

/* The context of a cell's failures (t_expect_context): run_rep sets it to the repetition. */
static void note_ctx(void *arg)
{
    const struct rep *r = arg;
    print_message("cell %s/%s: first failure in repetition %d (variant %d, linked %d, loop %d)\n",
                  kind_name[r->c->kind], moment_name[r->c->m], r->i, r->variant, r->linked,
                  r->flavour);
}

static bool is_future_kind(enum kind k)
{
    return k <= K_PIPE;
}

/* ---- the peer's side: what completes the victim's op ----------------------------------------- */

static size_t drain_into(struct rep *r, int fd)
{
    size_t n = 0;
    for (;;) {
        size_t room = SINK_BYTES - r->drained;
        if (room == 0)
            break;
        ssize_t k = recv(fd, r->c->sink + r->drained, room > 65536 ? 65536 : room, MSG_DONTWAIT);
        if (k <= 0)
            break;
        r->drained += (size_t)k;
        n += (size_t)k;
    }
    return n;
}

/* Makes the victim's op able to complete: plain system calls (and non-waiting channel calls), so
 * that it can run inside a coroutine step or outside the loop. */
static void peer_act(struct rep *r)
{
    struct cell *c = r->c;
    unsigned char pat[PEER_BYTES];
    T_EXPECT(!r->peer_acted);
    r->peer_acted = true;
    switch (c->kind) {
    case K_RECV:
        t_fill(pat, sizeof(pat), r->seed, 0);
        T_EXPECT_EQ(send(r->fds[1], pat, sizeof(pat), MSG_DONTWAIT | MSG_NOSIGNAL), PEER_BYTES);
        r->produced = PEER_BYTES;
        break;
    case K_PIPE:
        t_fill(pat, sizeof(pat), r->seed, 0);
        T_EXPECT_EQ(write(r->fds[1], pat, sizeof(pat)), PEER_BYTES);
        r->produced = PEER_BYTES;
        break;
    case K_SEND:
        drain_into(r, r->fds[1]);
        break;
    case K_ACCEPT:
        r->client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (T_EXPECT(r->client >= 0) &&
            T_EXPECT_EQ(connect(r->client, (struct sockaddr *)&c->uaddr, c->ualen), 0))
            r->produced = 1;
        break;
    case K_CONNECT: /* the loopback handshake completes while the connect is submitted */
    case K_SLEEP:   /* the timer */
        break;
    case K_JOIN:
        corio_event_set(&r->ev);
        break;
    case K_CRECV:
        r->peer_val = 5000 + r->i;
        r->peer_res = corio_chan_trysend(c->ch, &r->peer_val);
        break;
    case K_CSEND:
        r->peer_val = -1;
        r->peer_res = corio_chan_tryrecv(c->ch, &r->peer_val);
        break;
    }
}

/* ---- per-repetition set-up and accounting ---------------------------------------------------- */

static void prefill_send(struct rep *r)
{
    unsigned char chunk[1024];
    size_t pos = 0;
    for (;;) {
        t_fill(chunk, sizeof(chunk), r->seed, pos);
        ssize_t n = send(r->fds[0], chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break;
        pos += (size_t)n;
    }
    r->prefill = pos;
    T_EXPECT(pos > 0);
}

static void rep_setup(struct rep *r)
{
    struct cell *c = r->c;
    r->fds[0] = r->fds[1] = -1;
    r->sock = r->client = r->accepted = -1;
    r->seed = 0x9e3779b97f4a7c15ull * (uint64_t)(r->i + 1) + (uint64_t)c->kind * 131 + c->m;
    r->res = 12345;
    r->await_again = 12345;
    r->retry_res = r->next_wait = r->late_wait = 12345;
    r->vval = 7000 + r->i;
    switch (c->kind) {
    case K_RECV:
        T_EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->fds), 0);
        break;
    case K_SEND: {
        T_EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->fds), 0);
        int one = 1; /* the minimum: a few KiB fill it */
        setsockopt(r->fds[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
        /* before: the room is there (nothing queued), so a send that were submitted would go */
        if (c->m != M_BEFORE && c->m != M_FREE)
            prefill_send(r);
        t_fill(r->vbytes, OP_BYTES, r->seed, r->prefill);
        break;
    }
    case K_PIPE:
        T_EXPECT_EQ(t_pipe(r->fds, 0), 0);
        break;
    case K_CONNECT: {
        r->sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        T_EXPECT(r->sock >= 0);
        /* Closed with a reset: no TIME_WAIT piles up over the repetitions. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(r->sock, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        bool in_flight = c->m == M_INFLIGHT || c->m == M_DESTROY || c->m == M_STOP;
        r->caddr = in_flight ? &c->full_addr : &c->open_addr;
        break;
    }
    case K_SLEEP:
        switch (c->m) {
        case M_BEFORE:
        case M_FREE:
            r->sleep_rel = CORIO_MS(1);
            break;
        case M_RACE:
            r->sleep_rel = CORIO_US(200);
            break;
        case M_AFTER:
            r->sleep_rel = CORIO_US(50);
            break;
        default:
            r->sleep_rel = r->linked ? CORIO_SEC(30) : -1;
            break;
        }
        break;
    default:
        break;
    }
}

static int accept_queued(int lfd)
{
    int n = 0;
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    while (poll(&p, 1, 0) == 1) {
        int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0)
            break;
        close(s);
        n++;
    }
    return n;
}

static bool real_result(const struct rep *r)
{
    switch (r->c->kind) {
    case K_RECV:
        return r->res >= 1 && r->res <= OP_BYTES;
    case K_PIPE:
        return r->res == OP_BYTES;
    case K_SEND:
        return r->res >= 1 && r->res <= OP_BYTES;
    case K_ACCEPT:
        return r->res >= 0;
    case K_CONNECT:
    case K_SLEEP:
        return r->res == 0;
    case K_JOIN:
        return r->res == 0 && r->join_result == 1000 + r->i;
    case K_CRECV:
        return r->res == 1;
    case K_CSEND:
        return r->res == 0;
    }
    return false;
}

/* Accounts for what the op and the peer moved, and releases the repetition's fds. Runs when the
 * victim has ended (and, for destroy, its zombie was drained). */
static void conserve(struct rep *r)
{
    struct cell *c = r->c;
    bool destroy = c->m == M_DESTROY;
    switch (c->kind) {
    case K_RECV:
    case K_PIPE: {
        unsigned char rest[PEER_BYTES];
        int n = t_readable(r->fds[0]);
        T_EXPECT(n >= 0 && n <= PEER_BYTES);
        if (n > 0)
            T_EXPECT_EQ(read(r->fds[0], rest, (size_t)n), n);
        int consumed = r->res > 0 ? (int)r->res : 0;
        if (destroy) {
            /* Nobody took the bytes of the abandoned op: all of them are still there, unless the
             * peer wrote in the very step the coroutine returned (variant 2), when the op may
             * have won (its bytes went with the frame that abandoned them). */
            consumed = r->produced - n;
            if (r->variant >= 2)
                T_EXPECT(consumed == 0 || (consumed >= 1 && consumed <= OP_BYTES));
            else
                T_EXPECT_EQ(consumed, 0);
        } else {
            T_EXPECT_EQ(consumed + n, r->produced);
            if (consumed > 0)
                T_EXPECT_EQ(t_check(r->got, (size_t)consumed, r->seed, 0), -1);
        }
        if (n > 0)
            T_EXPECT_EQ(t_check(rest, (size_t)n, r->seed, (uint64_t)(r->produced - n)), -1);
        break;
    }
    case K_SEND: {
        drain_into(r, r->fds[1]);
        size_t sent = r->res > 0 ? (size_t)r->res : 0;
        if (destroy) {
            sent = r->drained - r->prefill;
            T_EXPECT(r->drained >= r->prefill);
            if (r->variant >= 2)
                T_EXPECT(sent <= OP_BYTES);
            else
                T_EXPECT_EQ(sent, 0);
        } else {
            T_EXPECT_EQ(r->drained, r->prefill + sent);
        }
        T_EXPECT_EQ(t_check(c->sink, r->drained, r->seed, 0), -1);
        break;
    }
    case K_ACCEPT: {
        int queued = accept_queued(c->ulfd);
        int taken = r->res >= 0 ? 1 : 0;
        if (destroy) {
            /* An abandoned accept that won the race: the engine closed what nobody owns. */
            T_EXPECT(r->variant >= 2 ? queued <= r->produced : queued == r->produced);
        } else {
            T_EXPECT_EQ(queued + taken, r->produced);
        }
        if (r->accepted >= 0)
            T_EXPECT_EQ(close(r->accepted), 0);
        if (r->client >= 0)
            close(r->client);
        break;
    }
    case K_CONNECT: {
        struct sockaddr_in peer;
        socklen_t len = sizeof(peer);
        int gp = getpeername(r->sock, (struct sockaddr *)&peer, &len);
        if (r->res == 0 && !destroy)
            T_EXPECT_EQ(gp, 0);
        /* Its SYN was dropped, or no connect was ever submitted: never connected. */
        if (r->caddr == &c->full_addr || c->m == M_BEFORE || c->m == M_FREE)
            T_EXPECT(gp != 0 && errno == ENOTCONN);
        close(r->sock);
        int queued = accept_queued(c->open_lfd);
        if (c->m == M_BEFORE || c->m == M_FREE)
            T_EXPECT_EQ(queued, 0); /* no connect was ever submitted */
        else if (r->caddr == &c->open_addr && r->res == 0)
            T_EXPECT_EQ(queued, 1);
        break;
    }
    case K_CRECV:
        if (r->res == 1)
            T_EXPECT(r->peer_acted && r->peer_res == 0 && r->chan_got == r->peer_val);
        else if (r->peer_acted)
            T_EXPECT_EQ(r->peer_res, -EAGAIN); /* not delivered: the sender still has it */
        break;
    case K_CSEND:
        if (r->res == 0)
            T_EXPECT(r->peer_acted && r->peer_res == 1 && r->peer_val == r->vval);
        else if (r->peer_acted)
            T_EXPECT_EQ(r->peer_res, -EAGAIN); /* not taken: the value went nowhere */
        break;
    default:
        break;
    }
    if (c->kind == K_CRECV || c->kind == K_CSEND) {
        /* No waiter was left behind on the channel (it would point into a dead frame). */
        int v = 1;
        T_EXPECT_EQ(corio_chan_trysend(c->ch, &v), -EAGAIN);
        T_EXPECT_EQ(corio_chan_tryrecv(c->ch, &v), -EAGAIN);
    }
    for (int k = 0; k < 2; k++)
        if (r->fds[k] >= 0)
            close(r->fds[k]);
}

/* The result, and what the victim saw after it. */
static void check_victim(struct rep *r)
{
    struct cell *c = r->c;
    if (c->m == M_DESTROY)
        return;
    T_EXPECT_EQ(r->resolved, 1);
    bool cancelled = r->res == -ECANCELED, real = real_result(r);
    switch (c->m) {
    case M_BEFORE:
        if (r->partner_ready) {
            T_EXPECT(real);
        } else {
            T_EXPECT_EQ(r->res, -ECANCELED);
            if (is_future_kind(c->kind)) {
                T_EXPECT_EQ(r->start_res, -ECANCELED);
                T_EXPECT_EQ(r->start_inflight_delta, 0); /* nothing was submitted */
            }
        }
        if (r->variant == 0)
            T_EXPECT(r->cancelled_at_start);
        break;
    case M_INFLIGHT:
    case M_FREE:
        T_EXPECT_EQ(r->res, -ECANCELED);
        break;
    case M_AFTER:
        T_EXPECT(real);
        if (r->late)
            T_EXPECT_EQ(r->late_wait, -ECANCELED);
        break;
    case M_RACE:
    case M_STOP:
        if (c->m == M_STOP && r->variant == 0)
            T_EXPECT_EQ(r->res, -ECANCELED);
        else
            T_EXPECT(cancelled || real);
        if (cancelled)
            c->won_cancel++;
        else
            c->won_completion++;
        break;
    default:
        break;
    }
    if (!cancelled && !real)
        T_EXPECT_EQ(r->res, -ECANCELED); /* report the illegal value */
    if (is_future_kind(c->kind))
        T_EXPECT_EQ(r->await_again, r->res);
    /* A victim that ran on (its sleep was over as it started, on a stalled machine) looked and
     * retried before the cancel came; its next wait still sees it. */
    if (!r->ran_on) {
        T_EXPECT(r->was_cancelled);
        if (c->kind != K_JOIN) {
            T_EXPECT_EQ(r->retry_res, -ECANCELED);
            T_EXPECT_EQ(r->retry_inflight_delta, 0);
        }
    }
    T_EXPECT_EQ(r->next_wait, -ECANCELED);
}

/* ---- the victim ------------------------------------------------------------------------------ */

static int start_op(struct rep *r, struct corio_future *f, void *buf, int64_t dl)
{
    struct cell *c = r->c;
    switch (c->kind) {
    case K_RECV:
        return corio_recv_start(f, r->fds[0], buf, OP_BYTES, 0, dl);
    case K_SEND:
        return corio_send_start(f, r->fds[0], r->vbytes, OP_BYTES, 0, dl);
    case K_ACCEPT:
        return corio_accept_start(f, c->ulfd, NULL, NULL, 0, dl);
    case K_CONNECT:
        return corio_connect_start(f, r->sock, (const struct sockaddr *)r->caddr, sizeof(*r->caddr),
                                   dl);
    case K_SLEEP:
        r->sleep_until = r->sleep_rel < 0 ? CORIO_FOREVER : corio_now() + r->sleep_rel;
        return corio_sleep_start(f, r->sleep_until);
    case K_PIPE:
        return corio_read_start(f, r->fds[0], buf, OP_BYTES, -1, dl);
    default:
        return -EINVAL;
    }
}

static int64_t op_deadline(const struct rep *r)
{
    return r->linked ? corio_now() + CORIO_SEC(30) : CORIO_FOREVER;
}

/* The frames that hold the op's future and buffer. Kept ~1 KiB below the top of the stack (see
 * pad_frame) so that the scribblers' arrays cover them whatever slot offset their stack gets. */
static __attribute__((noinline)) ssize_t op_frame(struct rep *r)
{
    struct cell *c = r->c;
    struct corio_loop *l = corio_loop_current();
    struct corio_future f;
    unsigned char buf[OP_BYTES];
    memset(buf, 0, sizeof(buf));
    int64_t dl = op_deadline(r);
    ssize_t res;
    switch (c->kind) {
    case K_JOIN: {
        r->fut_addr = (uintptr_t)buf;
        int jr = -1;
        r->stage = ST_STARTED;
        res = corio_join(r->target, &jr, dl);
        r->join_result = jr;
        return res;
    }
    case K_CRECV: {
        r->fut_addr = (uintptr_t)buf;
        int v = -1;
        r->stage = ST_STARTED;
        res = corio_chan_recv(c->ch, &v, dl);
        r->chan_got = v;
        return res;
    }
    case K_CSEND: {
        r->fut_addr = (uintptr_t)buf;
        int v = r->vval;
        r->stage = ST_STARTED;
        return corio_chan_send(c->ch, &v, dl);
    }
    default:
        break;
    }
    r->fut_addr = (uintptr_t)&f;
    size_t inflight0 = l->io.inflight;
    r->start_res = start_op(r, &f, buf, dl);
    r->start_inflight_delta = (long)(l->io.inflight - inflight0);
    r->fut = &f;
    r->stage = ST_STARTED;
    res = corio_await(&f, CORIO_FOREVER);
    r->fut = NULL;
    r->await_again = corio_await(&f, CORIO_FOREVER); /* completed: the same result, at once */
    if (res > 0 && (c->kind == K_RECV || c->kind == K_PIPE))
        memcpy(r->got, buf, (size_t)res);
    if (c->kind == K_ACCEPT && res >= 0)
        r->accepted = (int)res;
    return res;
}

/* destroy: starts the op and returns with it pending; nothing may be called after this returns
 * (the caller only returns), so the frame with the future stays as the kernel knows it. */
static __attribute__((noinline)) int destroy_frame(struct rep *r)
{
    struct corio_future f;
    unsigned char buf[OP_BYTES];
    r->fut_addr = (uintptr_t)&f;
    r->start_res = start_op(r, &f, buf, op_deadline(r));
    r->stage = ST_STARTED;
    if (r->variant == 1 || r->variant == 2)
        corio_yield(); /* the SQE goes to the kernel: the op is parked there when we return */
    r->stage = ST_RETURNED;
    return 0;
}

static __attribute__((noinline)) ssize_t pad_frame(struct rep *r)
{
    volatile char pad[1024];
    pad[0] = 1;
    pad[sizeof(pad) - 1] = 1;
    if (r->c->m == M_DESTROY)
        return destroy_frame(r);
    return op_frame(r);
}

/* The same op again after the cancel: it fails at once and queues nothing. */
static int retry_op(struct rep *r)
{
    struct cell *c = r->c;
    unsigned char buf[OP_BYTES];
    int v = r->vval;
    switch (c->kind) {
    case K_RECV:
        return (int)corio_recv(r->fds[0], buf, OP_BYTES, 0, CORIO_FOREVER);
    case K_SEND:
        return (int)corio_send(r->fds[0], r->vbytes, OP_BYTES, 0, CORIO_FOREVER);
    case K_ACCEPT:
        return corio_accept(c->ulfd, NULL, NULL, 0, CORIO_FOREVER);
    case K_CONNECT:
        return corio_connect(r->sock, (const struct sockaddr *)r->caddr, sizeof(*r->caddr),
                             CORIO_FOREVER);
    case K_SLEEP:
        return corio_sleep(CORIO_FOREVER);
    case K_PIPE:
        return (int)corio_read(r->fds[0], buf, OP_BYTES, -1, CORIO_FOREVER);
    case K_CRECV:
        return corio_chan_recv(c->ch, &v, CORIO_FOREVER);
    case K_CSEND:
        return corio_chan_send(c->ch, &v, CORIO_FOREVER);
    case K_JOIN:
        break;
    }
    return -ECANCELED;
}

static int victim_body(void *p)
{
    struct rep *r = p;
    r->cancelled_at_start = corio_cancelled();
    if (r->hold) {
        r->stage = ST_HELD;
        corio_yield();
    }
    if (r->c->m == M_DESTROY)
        return (int)pad_frame(r); /* returns with the op pending: the engine's to finish */
    ssize_t res = pad_frame(r);
    r->res = res;
    r->resolved++;
    r->stage = ST_RETURNED;
    if (r->late && !corio_cancelled()) {
        r->stage = ST_LATE;
        r->late_wait = corio_sleep(corio_now() + BOUND_NS);
    }
    r->was_cancelled = corio_cancelled();
    struct corio_loop *l = corio_loop_current();
    size_t inflight0 = l->io.inflight;
    r->retry_res = retry_op(r);
    r->retry_inflight_delta = (long)(l->io.inflight - inflight0);
    r->next_wait = corio_sleep(corio_now() + BOUND_NS);
    if (r->c->kind == K_JOIN && r->res != 0 && (r->c->m == M_STOP || r->c->m == M_FREE))
        corio_detach(r->target); /* nobody will join it: let it be reclaimed */
    r->stage = ST_ENDED;
    return 0;
}

/* join: waits for the event, then ends with a result that only one joiner may see. */
static int target_body(void *p)
{
    struct rep *r = p;
    corio_event_wait(&r->ev, corio_now() + BOUND_NS);
    if (r->target_cancels_victim)
        corio_cancel(r->victim); /* the cancel first, then the completion, in one step */
    r->target_ended = true;
    return 1000 + r->i;
}

/* before, join and channels: a partner that makes the victim's call complete without waiting. */
static int partner_body(void *p)
{
    struct rep *r = p;
    int v = 5000 + r->i;
    r->peer_acted = true;
    r->peer_val = v;
    if (r->c->kind == K_CRECV) {
        r->peer_res = corio_chan_send(r->c->ch, &v, corio_now() + BOUND_NS);
    } else {
        r->peer_val = -1;
        r->peer_res = corio_chan_recv(r->c->ch, &r->peer_val, corio_now() + BOUND_NS);
    }
    return 0;
}

/* ---- scribblers ------------------------------------------------------------------------------ */

static __attribute__((noinline)) void scribble_frame(struct rep *r, unsigned char pat)
{
    unsigned char buf[SCRIBBLE_BYTES];
    memset(buf, pat, sizeof(buf));
    __asm__ volatile("" : : "r"(buf) : "memory");
    if (r->fut_addr >= (uintptr_t)buf && r->fut_addr < (uintptr_t)buf + sizeof(buf))
        r->c->covered++;
    /* Let the kernel run: an op left in flight on this stack would land now. */
    for (int k = 0; k < 2; k++) {
        (void)corio_nop();
        (void)corio_yield();
    }
    __asm__ volatile("" : : "r"(buf) : "memory");
    static unsigned char ref[SCRIBBLE_BYTES]; /* one loop, one thread: no sharing */
    memset(ref, pat, sizeof(ref));
    T_EXPECT(memcmp(buf, ref, sizeof(buf)) == 0 ||
             !"a stack handed out again was written by an op of its previous owner");
}

static int scribbler_body(void *p)
{
    struct rep *r = p;
    scribble_frame(r, (unsigned char)(0xa5 ^ r->i));
    return 0;
}

/* Spawns the scribblers: they take the stacks freed last (the pool hands out the most recently
 * freed first), the victim's among them. */
static void spawn_scribblers(struct rep *r, corio_id *ids)
{
    for (int k = 0; k < N_SCRIBBLERS; k++)
        T_EXPECT_EQ(corio_spawn(&ids[k], NULL, scribbler_body, r), 0);
}

static void join_all(corio_id *ids, int n)
{
    for (int k = 0; k < n; k++)
        T_EXPECT_EQ(corio_join(ids[k], NULL, corio_now() + BOUND_NS), 0);
}

/* ---- the drivers, one per moment (they run as the repetition's first coroutine) -------------- */

/* Yields until the victim reaches @stage, or the bound passes. Returns whether it did. */
static bool wait_stage(struct rep *r, int stage)
{
    int64_t bound = corio_now() + BOUND_NS;
    while (r->stage < stage) {
        if (corio_now() > bound) {
            T_EXPECT(!"the victim did not get there in time");
            return false;
        }
        if (corio_yield() != 0)
            return false;
    }
    return true;
}

/* Until the victim's op is parked in the kernel (or the victim in its wait): its SQE was queued
 * before our nop's, so it has been submitted once the nop is back. Ops that cannot complete
 * without the peer are still pending then (@strict). */
static void wait_inflight(struct rep *r, bool strict)
{
    wait_stage(r, ST_STARTED);
    T_EXPECT_EQ(corio_nop(), 0);
    if (strict)
        T_EXPECT_EQ(r->stage, ST_STARTED);
}

static bool can_complete_alone(const struct rep *r)
{
    return r->c->kind == K_SLEEP || (r->c->kind == K_CONNECT && r->caddr == &r->c->open_addr);
}

static void spawn_target(struct rep *r)
{
    if (r->c->kind == K_JOIN)
        T_EXPECT_EQ(corio_spawn(&r->target, NULL, target_body, r), 0);
}

static void spawn_victim(struct rep *r)
{
    spawn_target(r);
    T_EXPECT_EQ(corio_spawn(&r->victim, NULL, victim_body, r), 0);
}

/* Waits for the victim's end, without which no check is meaningful. If the engine failed to wake
 * it (a cancel that does nothing), the op is cancelled through its future so that the test ends. */
static void end_victim(struct rep *r)
{
    int j = corio_join(r->victim, NULL, corio_now() + BOUND_NS);
    if (j == -ETIMEDOUT) {
        T_EXPECT(!"the victim did not end in time: its wait ignored the cancel");
        if (r->fut)
            corio_future_cancel(r->fut);
        j = corio_join(r->victim, NULL, corio_now() + BOUND_NS);
    }
    T_EXPECT_EQ(j, 0);
}

/* join: the target's result goes to exactly one joiner. */
static void settle_target(struct rep *r)
{
    if (r->c->kind != K_JOIN)
        return;
    if (!r->peer_acted)
        peer_act(r);
    int res = -1;
    int j = corio_join(r->target, &res, corio_now() + BOUND_NS);
    if (r->res == 0) {
        T_EXPECT_EQ(j, -ESRCH); /* the victim had it */
    } else {
        T_EXPECT_EQ(j, 0);
        T_EXPECT_EQ(res, 1000 + r->i);
    }
}

static void finish_rep(struct rep *r)
{
    settle_target(r);
    check_victim(r);
    conserve(r);
    corio_id s[N_SCRIBBLERS];
    spawn_scribblers(r, s);
    join_all(s, N_SCRIBBLERS);
}

static int drive_before(void *p)
{
    struct rep *r = p;
    enum kind k = r->c->kind;
    r->hold = r->variant == 1;
    r->partner_ready = r->variant == 2;
    /* The op could complete at once: the data, the connection or the room is there. */
    if (k != K_JOIN && k != K_CRECV && k != K_CSEND)
        peer_act(r);
    spawn_target(r);
    if (r->partner_ready) {
        if (k == K_JOIN) {
            peer_act(r); /* the target ends before the victim runs: join does not wait */
            corio_yield();
            T_EXPECT(r->target_ended);
        } else {
            T_EXPECT_EQ(corio_spawn(&r->partner, NULL, partner_body, r), 0);
            corio_yield(); /* it parks on the channel */
        }
    }
    T_EXPECT_EQ(corio_spawn(&r->victim, NULL, victim_body, r), 0);
    if (r->hold)
        wait_stage(r, ST_HELD);
    T_EXPECT_EQ(corio_cancel(r->victim), 0);
    end_victim(r);
    if (r->partner)
        T_EXPECT_EQ(corio_join(r->partner, NULL, corio_now() + BOUND_NS), 0);
    finish_rep(r);
    return 0;
}

static int drive_inflight(void *p)
{
    struct rep *r = p;
    spawn_victim(r);
    wait_inflight(r, true);
    T_EXPECT_EQ(corio_cancel(r->victim), 0);
    end_victim(r);
    peer_act(r); /* after the cancel took: what arrives now is the next reader's */
    T_EXPECT_EQ(corio_nop(), 0);
    finish_rep(r);
    return 0;
}

static int drive_race(void *p)
{
    struct rep *r = p;
    enum kind k = r->c->kind;
    bool cancel_first = r->variant & 1;
    if (k == K_JOIN)
        r->target_cancels_victim = cancel_first;
    spawn_victim(r);
    if (k == K_CONNECT) {
        /* The connect's SQE and the cancel go to the kernel in the same io_uring_enter. */
        wait_stage(r, ST_STARTED);
        T_EXPECT_EQ(corio_cancel(r->victim), 0);
    } else if (k == K_SLEEP) {
        /* Only yields: this coroutine stays ahead of the victim on the run queue, so the timer's
         * CQE and the cancel meet in one iteration, or the cancel comes first. */
        wait_stage(r, ST_STARTED);
        int64_t at = r->sleep_until - (cancel_first ? CORIO_US(20) : 0);
        while (corio_now() < at)
            corio_yield();
        T_EXPECT_EQ(corio_cancel(r->victim), 0);
    } else if (k == K_JOIN) {
        wait_inflight(r, true);
        peer_act(r);   /* the target runs next iteration, this coroutine right after it */
        corio_yield(); /* cancel_first: the target cancels the victim, then ends */
        T_EXPECT(r->target_ended);
        if (!cancel_first)
            T_EXPECT_EQ(corio_cancel(r->victim), 0); /* the target ended a moment ago */
    } else {
        wait_inflight(r, true);
        if (cancel_first) {
            T_EXPECT_EQ(corio_cancel(r->victim), 0);
            peer_act(r);
        } else {
            peer_act(r);
            T_EXPECT_EQ(corio_cancel(r->victim), 0);
        }
    }
    end_victim(r);
    finish_rep(r);
    return 0;
}

static int drive_after(void *p)
{
    struct rep *r = p;
    enum kind k = r->c->kind;
    r->late = r->variant & 1;
    spawn_victim(r);
    if (can_complete_alone(r))
        wait_stage(r, ST_STARTED); /* and stay ahead of it on the run queue */
    else
        wait_inflight(r, true);
    peer_act(r);
    if (r->late) {
        wait_stage(r, ST_LATE); /* it saw its result and parked again */
    } else if (is_future_kind(k)) {
        /* The CQE was reaped between two iterations: the victim is runnable behind us. */
        int64_t bound = corio_now() + BOUND_NS;
        while (r->fut && !corio_future_done(r->fut) && corio_now() < bound)
            corio_yield();
        /* A sleep whose 50 us had passed by the time it started (a stalled, loaded machine) is
         * done at once, with nothing submitted: its victim did not wait, and ran on. */
        bool ran_on = k == K_SLEEP && r->start_res == 0 && r->start_inflight_delta == 0;
        r->ran_on = ran_on;
        if (!ran_on)
            T_EXPECT_EQ(r->stage, ST_STARTED);
    } else if (k == K_JOIN) {
        corio_yield(); /* the target ends; the victim is runnable behind us */
        T_EXPECT(r->target_ended);
        T_EXPECT_EQ(r->stage, ST_STARTED);
    } else {
        T_EXPECT_EQ(r->stage, ST_STARTED); /* the hand-off made it runnable */
    }
    T_EXPECT_EQ(corio_cancel(r->victim), 0);
    end_victim(r);
    finish_rep(r);
    return 0;
}

static int drive_destroy(void *p)
{
    struct rep *r = p;
    struct corio_loop *l = corio_loop_current();
    if (r->variant == 3)
        peer_act(r); /* the op completes as soon as it is submitted, with nobody to take it */
    spawn_victim(r);
    if (r->variant == 2) {
        /* The peer acts in the step right after the victim's return: the engine's cancel and the
         * completion meet in one io_uring_enter. */
        wait_stage(r, ST_RETURNED);
        peer_act(r);
    }
    T_EXPECT_EQ(corio_join(r->victim, NULL, corio_now() + BOUND_NS), 0);
    /* The join returns once the zombie's stack is released, i.e. after its CQEs: nothing of the
     * loop's may still be in flight (this coroutine has nothing pending while it runs). */
    T_EXPECT_EQ(l->io.inflight, 0);
    T_EXPECT_EQ(r->start_res, 0);
    corio_id s[N_SCRIBBLERS];
    spawn_scribblers(r, s);
    corio_yield(); /* they scribble over the freed stacks and park in a nop */
    if (!r->peer_acted)
        peer_act(r); /* an op still armed on a reused stack would complete into it now */
    join_all(s, N_SCRIBBLERS);
    T_EXPECT_EQ(corio_nop(), 0);
    conserve(r);
    return 0;
}

static int drive_stop(void *p)
{
    struct rep *r = p;
    spawn_victim(r);
    wait_inflight(r, true);
    if (r->variant == 1)
        peer_act(r);
    corio_loop_stop(corio_loop_current());
    return 0;
}

/* ---- running a cell -------------------------------------------------------------------------- */

/* A hang is a failure too. After corio_loop_stop every coroutine is cancelled and none can wait
 * any more, so an op that ignores its cancel leaves corio_loop_run waiting for ever, with no test
 * code left to notice. A thread watches each repetition's deadline and aborts, naming the cell. */
static _Atomic int64_t watch_deadline; /* 0: nothing watched */
static _Atomic int watch_kind, watch_moment, watch_rep;
static atomic_bool watch_stop;

static void *watchdog_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&watch_stop)) {
        usleep(100000);
        int64_t d = atomic_load(&watch_deadline);
        if (d && corio_now() > d) {
            fprintf(stderr,
                    "test_cancel_matrix: cell %s/%s, repetition %d did not finish in %lld s: "
                    "a wait ignored its cancel (the loop cannot end)\n",
                    kind_name[atomic_load(&watch_kind)], moment_name[atomic_load(&watch_moment)],
                    atomic_load(&watch_rep), (long long)(3 * BOUND_NS / 1000000000));
            abort();
        }
    }
    return NULL;
}

static void watch(const struct cell *c, int i)
{
    atomic_store(&watch_kind, (int)c->kind);
    atomic_store(&watch_moment, (int)c->m);
    atomic_store(&watch_rep, i);
    atomic_store(&watch_deadline, corio_now() + 3 * BOUND_NS);
}

static int reps_wanted(void)
{
    const char *e = getenv("CORIO_MATRIX_REPS");
    if (e && *e) {
        int n = atoi(e);
        return n > 0 ? n : 1;
    }
    return t_on_valgrind() ? 100 : 1000;
}

static int tcp_listener(int backlog, struct sockaddr_in *a)
{
    int fd = corio_listen_tcp("127.0.0.1", 0, backlog, 0);
    assert_true(fd >= 0);
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons((uint16_t)corio_local_port(fd));
    return fd;
}

static void cell_close(struct cell *c);

static void cell_open(struct cell *c, struct corio_loop *l)
{
    c->ulfd = c->full_lfd = c->open_lfd = -1;
    c->fillers[0] = c->fillers[1] = -1;
    c->open = true;
    switch (c->kind) {
    case K_RECV:
        t_need(l, CORIO_FEAT_RECV);
        break;
    case K_SEND:
        t_need(l, CORIO_FEAT_SEND);
        break;
    case K_PIPE:
        t_need(l, CORIO_FEAT_READ);
        break;
    case K_SLEEP:
        t_need(l, CORIO_FEAT_TIMEOUT);
        break;
    case K_ACCEPT: {
        t_need(l, CORIO_FEAT_ACCEPT);
        c->ulfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(c->ulfd >= 0);
        memset(&c->uaddr, 0, sizeof(c->uaddr));
        c->uaddr.sun_family = AF_UNIX;
        int n = snprintf(c->uaddr.sun_path + 1, sizeof(c->uaddr.sun_path) - 1, "corio-matrix-%d-%d",
                         (int)getpid(), (int)c->m);
        c->ualen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
        assert_int_equal(bind(c->ulfd, (struct sockaddr *)&c->uaddr, c->ualen), 0);
        assert_int_equal(listen(c->ulfd, 64), 0);
        break;
    }
    case K_CONNECT:
        t_need(l, CORIO_FEAT_CONNECT);
        c->open_lfd = tcp_listener(128, &c->open_addr);
        /* Linux drops a SYN to a listener whose accept queue is full (more queued than the
         * backlog), and retransmits it only after 1 s: a connect to it stays in flight. With
         * backlog 1, two connections fill the queue (the way tests/test_net.c does it). */
        c->full_lfd = tcp_listener(1, &c->full_addr);
        for (int i = 0; i < 2; i++) {
            c->fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            assert_true(c->fillers[i] >= 0);
            assert_int_equal(
                connect(c->fillers[i], (struct sockaddr *)&c->full_addr, sizeof(c->full_addr)), 0);
        }
        for (int i = 0; i < 2000 && !t_accept_queue_full(c->full_lfd); i++)
            usleep(1000);
        if (!t_accept_queue_full(c->full_lfd)) {
            print_message("SKIP: could not fill a listener's accept queue\n");
            cell_close(c);
            skip();
        }
        break;
    case K_CRECV:
    case K_CSEND:
        assert_int_equal(corio_chan_new(&c->ch, sizeof(int), 0), 0);
        break;
    case K_JOIN:
        break;
    }
    static unsigned char sink[SINK_BYTES];
    c->sink = sink;
}

static void cell_close(struct cell *c)
{
    if (!c->open)
        return;
    c->open = false;
    if (c->ulfd >= 0)
        close(c->ulfd);
    if (c->open_lfd >= 0)
        close(c->open_lfd);
    if (c->full_lfd >= 0)
        close(c->full_lfd);
    for (int i = 0; i < 2; i++)
        if (c->fillers[i] >= 0)
            close(c->fillers[i]);
    corio_chan_free(c->ch);
    c->ch = NULL;
}

static int variants_of(const struct cell *c)
{
    switch (c->m) {
    case M_BEFORE:
        return (c->kind == K_JOIN || c->kind == K_CRECV || c->kind == K_CSEND) ? 3 : 2;
    case M_DESTROY:
        return 4;
    case M_RACE:
    case M_AFTER:
    case M_STOP:
        return 2;
    default:
        return 1;
    }
}

/* The loop is idle and empty after every repetition. */
static void assert_loop_clean(struct corio_loop *l)
{
    assert_int_equal(l->coros.live, 0);
    assert_int_equal(l->io.inflight, 0);
    assert_int_equal(l->stacks.n_live, 0);
    assert_true(corio__list_empty(&l->sched.runq));
}

static uint64_t loop_refuse(int flavour);

static void run_rep_free(struct rep *r, int flavour)
{
    struct corio_loop *l;
    struct corio_loop_opts o = {.batch_wait_us = CORIO_BATCH_WAIT_OFF};
    assert_int_equal(corio__loop_new(&l, &o, loop_refuse(flavour)), 0);
    r->l = l;
    rep_setup(r);
    if (r->c->kind != K_JOIN && r->c->kind != K_CRECV && r->c->kind != K_CSEND)
        peer_act(r); /* the op could complete at once, were it submitted */
    /* The victim first (it reads r->target only when it runs), then its target. */
    assert_int_equal(corio_spawn(&r->victim, l, victim_body, r), 0);
    if (r->c->kind == K_JOIN)
        assert_int_equal(corio_spawn(&r->target, l, target_body, r), 0);
    corio_loop_free(l); /* runs them, cancelled, to their end */
    r->l = NULL;
    check_victim(r);
    conserve(r);
}

static void run_rep(struct cell *c, struct corio_loop **ls, int i)
{
    static struct rep rep_storage; /* static: a failed assert leaves nothing to free */
    struct rep *r = &rep_storage;
    memset(r, 0, sizeof(*r));
    r->c = c;
    r->i = i;
    t_expect_context(note_ctx, r);
    watch(c, i);
    r->variant = i % variants_of(c);
    r->linked = (i / variants_of(c)) & 1;
    int flavour = (i / variants_of(c) / 2) & 1;
    r->flavour = flavour;
    struct corio_loop *l = ls[flavour];
    r->l = l;
    if (c->m == M_FREE) {
        run_rep_free(r, flavour);
    } else {
        rep_setup(r);
        static corio_fn *const drivers[] = {
            [M_BEFORE] = drive_before, [M_INFLIGHT] = drive_inflight, [M_RACE] = drive_race,
            [M_AFTER] = drive_after,   [M_DESTROY] = drive_destroy,   [M_STOP] = drive_stop,
        };
        assert_int_equal(corio_spawn(NULL, l, drivers[c->m], r), 0);
        int err = corio_loop_run(l);
        if (c->m == M_STOP && err == 0) {
            /* Everything was cancelled and has ended. Now the checks, then the scribblers on the
             * stacks the stop released. */
            if (!r->peer_acted)
                peer_act(r);
            check_victim(r);
            conserve(r);
            for (int k = 0; k < N_SCRIBBLERS; k++)
                T_EXPECT_EQ(corio_spawn(NULL, l, scribbler_body, r), 0);
            err = corio_loop_run(l);
        }
        /* The coroutines' findings first (the more telling ones), so that none is left over for
         * the next cell to report; then the loop's own state. */
        atomic_store(&watch_deadline, 0);
        t_expect_ok();
        assert_int_equal(err, 0);
        assert_loop_clean(l);
    }
    c->reps_done++;
    atomic_store(&watch_deadline, 0);
    t_expect_ok();
}

/* The running cell, static so that the teardown can release its fixtures when a failed check
 * leaves run_cell early. */
static struct cell cur_cell;

static void run_cell(struct corio_loop **ls, enum kind k, enum moment m)
{
    struct cell *c = &cur_cell;
    memset(c, 0, sizeof(*c));
    c->kind = k;
    c->m = m;
    c->reps = reps_wanted();
    int fds0 = t_count_fds();
    cell_open(c, ls[0]);
    int64_t t0 = corio_now();
    for (int i = 0; i < c->reps; i++)
        run_rep(c, ls, i);
    double ms = t_ms_since(t0);
    cell_close(c);
    print_message("%s/%s: %d reps in %.0f ms", kind_name[k], moment_name[m], c->reps, ms);
    if (m == M_RACE || m == M_STOP)
        print_message(", cancel won %ld, completion won %ld", c->won_cancel, c->won_completion);
    if (m != M_FREE)
        print_message(", victim's frame scribbled over in %ld", c->covered);
    print_message("\n");
    /* The scribblers really went over the victims' frames (the check is not vacuous). For
     * destroy the victim's stack is the last one freed: the first scribbler always takes it. */
    if (m == M_DESTROY)
        assert_int_equal(c->covered, c->reps);
    else if (m != M_FREE)
        assert_true(c->covered > 0);
    /* Nothing leaked: every fd of the cell is closed. */
    assert_int_equal(t_count_fds(), fds0);
}

/* ---- the cells ------------------------------------------------------------------------------- */

/* The cells' loops: one as corio sets it up, and one whose task work is neither deferred nor
 * cooperative, where the kernel completes an op as the peer's system call returns (before the
 * canceller's next step), so that a completion can also beat a cancel in the same iteration.
 * Idle waits do not hold out for more completions (batch_wait_us): every repetition is a
 * ping-pong of single completions, which a 50 us hold-out would only slow down (it doubled the
 * matrix's time) without changing what the cancellation paths do. */
static struct corio_loop *loops[2];

/* The setup flags each flavour of loop has refused: none, or both task-run modes. */
static uint64_t loop_refuse(int flavour)
{
    return flavour ? (1ull << CORIO_FEAT_DEFER_TASKRUN) | (1ull << CORIO_FEAT_COOP_TASKRUN) : 0;
}

static int matrix_setup(void **state)
{
    for (int k = 0; k < 2; k++) {
        struct corio_loop_opts o = {.batch_wait_us = CORIO_BATCH_WAIT_OFF};
        if (corio__loop_new(&loops[k], &o, loop_refuse(k)) != 0)
            return -1;
    }
    *state = loops;
    return 0;
}

static int matrix_teardown(void **state)
{
    (void)state;
    t_expect_context(NULL, NULL);
    cell_close(&cur_cell);
    for (int k = 0; k < 2; k++) {
        corio_loop_free(loops[k]);
        loops[k] = NULL;
    }
    return 0;
}

#define CELL(kn, K, mn, M)                                                                         \
    static void test_cancel_matrix_##kn##_##mn(void **state)                                       \
    {                                                                                              \
        run_cell(*state, K, M);                                                                    \
    }
#define ROW_IO(kn, K)                                                                              \
    CELL(kn, K, before, M_BEFORE)                                                                  \
    CELL(kn, K, inflight, M_INFLIGHT)                                                              \
    CELL(kn, K, race, M_RACE)                                                                      \
    CELL(kn, K, after, M_AFTER)                                                                    \
    CELL(kn, K, destroy, M_DESTROY)                                                                \
    CELL(kn, K, stop, M_STOP)                                                                      \
    CELL(kn, K, free, M_FREE)
#define ROW_SYNC(kn, K)                                                                            \
    CELL(kn, K, before, M_BEFORE)                                                                  \
    CELL(kn, K, inflight, M_INFLIGHT)                                                              \
    CELL(kn, K, race, M_RACE)                                                                      \
    CELL(kn, K, after, M_AFTER)                                                                    \
    CELL(kn, K, stop, M_STOP)                                                                      \
    CELL(kn, K, free, M_FREE)

ROW_IO(recv, K_RECV)
ROW_IO(send, K_SEND)
ROW_IO(accept, K_ACCEPT)
ROW_IO(connect, K_CONNECT)
ROW_IO(sleep, K_SLEEP)
ROW_IO(pipe_read, K_PIPE)
ROW_SYNC(join, K_JOIN)
ROW_SYNC(chan_recv, K_CRECV)
ROW_SYNC(chan_send, K_CSEND)

#define T(kn, mn)                                                                                  \
    cmocka_unit_test_setup_teardown(test_cancel_matrix_##kn##_##mn, matrix_setup, matrix_teardown)
#define T_IO(kn)                                                                                   \
    T(kn, before), T(kn, inflight), T(kn, race), T(kn, after), T(kn, destroy), T(kn, stop),        \
        T(kn, free)
#define T_SYNC(kn)                                                                                 \
    T(kn, before), T(kn, inflight), T(kn, race), T(kn, after), T(kn, stop), T(kn, free)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_IO(recv),      T_IO(send),   T_IO(accept),      T_IO(connect),     T_IO(sleep),
        T_IO(pipe_read), T_SYNC(join), T_SYNC(chan_recv), T_SYNC(chan_send),
    };
    if (t_uring_unavailable())
        return T_EXIT_SKIP;
    pthread_t wd;
    bool watching = pthread_create(&wd, NULL, watchdog_main, NULL) == 0;
    print_message("cancellation matrix: %d repetitions a cell (CORIO_MATRIX_REPS)\n",
                  reps_wanted());
    /* One cell or a few, by name: CORIO_MATRIX_CELL='test_cancel_matrix_sleep_*'. */
    const char *only = getenv("CORIO_MATRIX_CELL");
    if (only && *only)
        cmocka_set_test_filter(only);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    atomic_store(&watch_stop, true);
    if (watching)
        pthread_join(wd, NULL);
    return failed;
}
