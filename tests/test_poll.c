/* Readiness waits (corio_poll) and pollers (corio_poller), on whichever backend the loop runs: a
 * pipe that is not ready and then is, POLLOUT once a full send buffer drains, hang-ups and errors
 * reported without being asked for, urgent data, cancellation, deadlines that leave nothing
 * behind, a regular file, and a non-blocking protocol written the way a library writes it (its
 * own connect, send and recv, saying "want read" or "want write") driven by readiness alone,
 * with every byte checked; a poller over a thousand readiness changes with none lost, on one SQE
 * (and re-armed for each wait where the kernel has no multishot poll), its events kept while
 * nobody waits, its errors and owner, its end with a poll armed; and corio_close by another
 * coroutine waking both. */
#include "helpers.h"

#include "epoll_private.h" /* white box: the fd's readiness waits */
#include "loop.h"          /* white box: CQEs still to come */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- one-shot: pipes ------------------------------------------------------------------------ */

static int pipe_body(void *arg)
{
    const int *p = arg;
    /* An empty pipe is not readable: the deadline ends the wait. */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_poll(p[0], POLLIN, t0 + CORIO_MS(50)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 50);
    /* Its write end is writable, and only that is reported of what was asked. */
    T_EXPECT_EQ(corio_poll(p[1], POLLIN | POLLOUT, T_BOUND), POLLOUT);
    /* Ready before the call: answered at once. */
    T_EXPECT_EQ(write(p[1], "x", 1), 1);
    T_EXPECT_EQ(corio_poll(p[0], POLLIN, T_BOUND), POLLIN);
    T_EXPECT_EQ(corio_poll(p[0], POLLIN | POLLOUT | POLLPRI, T_BOUND), POLLIN);
    char c = 0;
    T_EXPECT_EQ(read(p[0], &c, 1), 1);
    /* Ready during the wait: the start form is pending until the byte comes. */
    struct corio_future f;
    T_EXPECT_EQ(corio_poll_start(&f, p[0], POLLIN, T_BOUND), 0);
    t_sleep_ms(10);
    T_EXPECT(!corio_future_done(&f));
    T_EXPECT_EQ(write(p[1], "y", 1), 1);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), POLLIN);
    T_EXPECT_EQ(read(p[0], &c, 1), 1);
    T_EXPECT_EQ(c, 'y');
    /* Bad fds. */
    int spare = dup(p[0]);
    T_EXPECT(spare >= 0);
    close(spare);
    T_EXPECT_EQ(corio_poll(spare, POLLIN, T_BOUND), -EBADF);
    T_EXPECT_EQ(corio_poll(-1, POLLIN, T_BOUND), -EBADF);
    return 0;
}

/* Runs @body on @loop with a new pipe (int p[2]: its read and write ends), closed after. */
static void run_on_pipe(struct corio_loop *loop, corio_fn *body)
{
    t_need(loop, CORIO_FEAT_POLL);
    int p[2];
    assert_int_equal(t_pipe(p, 0), 0);
    assert_int_equal(t_run1(loop, body, p), 0);
    close(p[0]);
    close(p[1]);
    t_expect_ok();
}

static void test_poll_pipe(void **state)
{
    run_on_pipe(*state, pipe_body);
    /* Outside a coroutine nothing can wait: both forms say so, the start form in its future. */
    struct corio_future f;
    assert_int_equal(corio_poll(STDIN_FILENO, POLLIN, T_BOUND), -EPERM);
    assert_int_equal(corio_poll_start(&f, STDIN_FILENO, POLLIN, T_BOUND), -EPERM);
    assert_int_equal(corio_future_result(&f), -EPERM);
}

/* ---- one-shot: a full send buffer drained --------------------------------------------------- */

struct full {
    int sv[2];
    size_t sent;               /* bytes in flight once the send buffer was full */
    struct corio_event filled; /* set once they are, and the writer waits for POLLOUT */
};

static int full_writer(void *arg)
{
    struct full *w = arg;
    unsigned char chunk[4096];
    ssize_t n;
    do {
        t_fill(chunk, sizeof(chunk), 7, w->sent);
        n = send(w->sv[0], chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            w->sent += (size_t)n;
    } while (n > 0);
    T_EXPECT(n < 0 && errno == EAGAIN);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_poll(w->sv[0], POLLOUT, t0 + CORIO_MS(50)), -ETIMEDOUT);
    corio_event_set(&w->filled);
    int r = corio_poll(w->sv[0], POLLOUT, T_BOUND);
    T_EXPECT(r > 0 && (r & POLLOUT) && !(r & (POLLERR | POLLHUP)));
    /* The room is there: a send that must not block goes through. */
    t_fill(chunk, 1, 7, w->sent);
    T_EXPECT_EQ(send(w->sv[0], chunk, 1, MSG_DONTWAIT | MSG_NOSIGNAL), 1);
    return 0;
}

static int full_drainer(void *arg)
{
    struct full *w = arg;
    T_EXPECT_EQ(corio_event_wait(&w->filled, T_BOUND), 0);
    t_sleep_ms(10); /* the writer is waiting for POLLOUT by now */
    size_t len = w->sent + 1;
    unsigned char *buf = malloc(len);
    if (!T_EXPECT(buf != NULL))
        return -1;
    T_EXPECT_EQ(corio_recv_all(w->sv[1], buf, len, NULL, T_BOUND), len);
    T_EXPECT_EQ(t_check(buf, len, 7, 0), -1);
    free(buf);
    return 0;
}

static void test_poll_pollout_after_full(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    struct full w = {.filled = CORIO_EVENT_INIT};
    assert_int_equal(t_tcp_pair(w.sv), 0);
    int small = 4096;
    assert_int_equal(setsockopt(w.sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    assert_int_equal(setsockopt(w.sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    assert_int_equal(t_run2(loop, full_writer, full_drainer, &w), 0);
    print_message("  %zu bytes filled the send buffer; POLLOUT came once they were read\n", w.sent);
    close(w.sv[0]);
    close(w.sv[1]);
    t_expect_ok();
}

/* ---- one-shot: hang-ups, errors, urgent data ------------------------------------------------ */

/* Waits on @fd for @events while @peer is closed (with a reset if @reset). Returns the events. */
static int poll_across_close(int fd, unsigned events, int peer, bool reset)
{
    struct corio_future f;
    T_EXPECT_EQ(corio_poll_start(&f, fd, events, T_BOUND), 0);
    t_sleep_ms(10);
    T_EXPECT(!corio_future_done(&f));
    if (reset)
        T_EXPECT_EQ(t_set_linger0(peer), 0);
    close(peer);
    return (int)corio_await(&f, CORIO_FOREVER);
}

static int hup_body(void *arg)
{
    (void)arg;
    /* A Unix socket whose peer closes: asked only for urgent data, which it never has, it still
     * reports the hang-up. Asked again, it is still hung up, and readable (the end of stream). */
    int us[2];
    if (!T_EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, us), 0))
        return -1;
    int r = poll_across_close(us[0], POLLPRI, us[1], false);
    T_EXPECT(r > 0 && (r & POLLHUP) && !(r & (POLLPRI | POLLIN)));
    r = corio_poll(us[0], POLLIN, T_BOUND);
    T_EXPECT(r > 0 && (r & POLLHUP) && (r & POLLIN));
    close(us[0]);
    /* A pipe whose write end closes. */
    int p[2];
    if (!T_EXPECT_EQ(t_pipe(p, 0), 0))
        return -1;
    r = poll_across_close(p[0], POLLIN, p[1], false);
    T_EXPECT(r > 0 && (r & POLLHUP));
    close(p[0]);
    /* A TCP peer that resets: error and hang-up, asked for neither. */
    int sv[2];
    if (!T_EXPECT_EQ(t_tcp_pair(sv), 0))
        return -1;
    r = poll_across_close(sv[0], POLLPRI, sv[1], true);
    T_EXPECT(r > 0 && (r & POLLERR) && (r & POLLHUP));
    close(sv[0]);
    return 0;
}

static void test_poll_hangup(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    assert_int_equal(t_run1(loop, hup_body, NULL), 0);
    t_expect_ok();
}

/* Urgent data, asked for with POLLIN as the header says: io_uring's poll ignores POLLPRI in the
 * wake-up that TCP sends with it. */
static int urgent_body(void *arg)
{
    const int *sv = arg;
    struct corio_future f;
    T_EXPECT_EQ(corio_poll_start(&f, sv[0], POLLIN | POLLPRI, T_BOUND), 0);
    t_sleep_ms(10);
    T_EXPECT(!corio_future_done(&f));
    T_EXPECT_EQ(send(sv[1], "!", 1, MSG_OOB | MSG_NOSIGNAL), 1);
    ssize_t r = corio_await(&f, CORIO_FOREVER);
    T_EXPECT(r > 0 && (r & POLLPRI));
    char c = 0;
    T_EXPECT_EQ(recv(sv[0], &c, 1, MSG_OOB), 1);
    T_EXPECT_EQ(c, '!');
    return 0;
}

static void test_poll_urgent_data(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    int sv[2];
    assert_int_equal(t_tcp_pair(sv), 0);
    assert_int_equal(t_run1(loop, urgent_body, sv), 0);
    close(sv[0]);
    close(sv[1]);
    t_expect_ok();
}

/* ---- one-shot: cancellation ----------------------------------------------------------------- */

struct waiter {
    int fd;
    int result;
};

static int wait_forever(void *arg)
{
    struct waiter *w = arg;
    w->result = corio_poll(w->fd, POLLIN, CORIO_FOREVER);
    return 0;
}

static int cancel_body(void *arg)
{
    const int *p = arg;
    /* Another coroutine's wait, cancelled. */
    struct waiter w = {.fd = p[0], .result = 1};
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, wait_forever, &w), 0);
    t_sleep_ms(10);
    T_EXPECT_EQ(w.result, 1);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_cancel(id), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(w.result, -ECANCELED);
    T_EXPECT(t_ms_since(t0) < 1000.0 * t_slowdown());
    /* The caller's own started wait, cancelled through its future. */
    struct corio_future f;
    T_EXPECT_EQ(corio_poll_start(&f, p[0], POLLIN, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT_EQ(corio_future_cancel(&f), 0);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), -ECANCELED);
    /* Nothing of them is left behind: the next wait sees the next byte. */
    T_EXPECT_EQ(write(p[1], "z", 1), 1);
    T_EXPECT_EQ(corio_poll(p[0], POLLIN, T_BOUND), POLLIN);
    return 0;
}

static void test_poll_cancel(void **state)
{
    run_on_pipe(*state, cancel_body);
}

/* ---- one-shot: a deadline leaves nothing behind --------------------------------------------- */

/* The backend holds nothing of @fd's wait any more: no CQE to come, and on epoll no record among
 * the fd's readiness waits. */
static bool nothing_left(int fd)
{
    struct corio_loop *l = corio_loop_current();
    if (!T_EXPECT_EQ(l->io.inflight, 0))
        return false;
    if (!l->io.poll)
        return true;
    struct pfd *f = corio__pfd(l->io.poll, fd);
    return T_EXPECT(f && corio__list_empty(&f->waiters[DIR_POLL])) &&
           T_EXPECT_EQ(l->io.poll->waiting, 0);
}

static int deadline_body(void *arg)
{
    const int *p = arg;
    for (int i = 0; i < 3; i++) {
        int64_t t0 = corio_now();
        T_EXPECT_EQ(corio_poll(p[0], POLLIN, t0 + CORIO_MS(20)), -ETIMEDOUT);
        T_EXPECT_ELAPSED(t0, 20);
        if (!nothing_left(p[0]))
            return -1;
    }
    /* The next wait is the only one, and is told of the next byte. */
    struct corio_future f;
    T_EXPECT_EQ(corio_poll_start(&f, p[0], POLLIN, T_BOUND), 0);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT_EQ(write(p[1], "d", 1), 1);
    T_EXPECT_EQ(corio_await(&f, CORIO_FOREVER), POLLIN);
    return nothing_left(p[0]) ? 0 : -1;
}

static void test_poll_deadline(void **state)
{
    run_on_pipe(*state, deadline_body);
}

/* ---- a regular file ------------------------------------------------------------------------- */

/* A regular file is always ready: it is answered at once. */
static int regular_file_body(void *arg)
{
    int fd = *(const int *)arg;
    T_EXPECT_EQ(corio_poll(fd, POLLIN | POLLOUT, T_BOUND), POLLIN | POLLOUT);
    return 0;
}

static void test_poll_regular_file(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    int fd = t_tmpfile();
    assert_true(fd >= 0);
    assert_int_equal(t_run1(loop, regular_file_body, &fd), 0);
    close(fd);
    t_expect_ok();
}

/* ---- a library that does its own I/O -------------------------------------------------------- */

/* A client written the way a TLS library is: its socket is non-blocking, it makes its own
 * connect, send and recv calls, and when one would block it returns what it wants (to read, to
 * write, or both) instead of waiting. It sends PROTO_LEN bytes of a pattern, shuts its side down,
 * and expects every byte back, echoed, then the end of the stream. */
#define PROTO_LEN (1u << 20)
#define PROTO_SEED 11

struct lib {
    int fd;
    struct sockaddr_in to;
    bool connecting;
    bool shut; /* its write side is shut down: all was sent */
    size_t sent, got;
    unsigned would_block; /* calls that said EAGAIN (or a connect in progress) */
    unsigned char out[4096], in[4096];
};

/* Opens the socket, with small buffers so that both directions block often, and starts the
 * connect. Returns 0 or -errno. */
static int lib_connect(struct lib *c, int port)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    int small = 8192;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    c->to = (struct sockaddr_in){.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    c->connecting = true;
    return 0;
}

/* The connect, asked again until it is done. Returns 0 once connected, POLLOUT while in
 * progress, or -errno. */
static int lib_connecting(struct lib *c)
{
    if (connect(c->fd, (struct sockaddr *)&c->to, sizeof(c->to)) == 0 || errno == EISCONN) {
        c->connecting = false;
        return 0;
    }
    if (errno == EINPROGRESS || errno == EALREADY) {
        c->would_block++;
        return POLLOUT;
    }
    return -errno;
}

/* Sends what is left, then shuts the write side down. Returns 0, POLLOUT, or -errno. */
static int lib_send(struct lib *c)
{
    while (c->sent < PROTO_LEN) {
        size_t n = PROTO_LEN - c->sent < sizeof(c->out) ? PROTO_LEN - c->sent : sizeof(c->out);
        t_fill(c->out, n, PROTO_SEED, c->sent);
        ssize_t k = send(c->fd, c->out, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno != EAGAIN)
                return -errno;
            c->would_block++;
            return POLLOUT;
        }
        c->sent += (size_t)k;
    }
    if (!c->shut && shutdown(c->fd, SHUT_WR) != 0)
        return -errno;
    c->shut = true;
    return 0;
}

/* Takes what came back, checking every byte. Returns 0 at the end of the stream, POLLIN, or
 * -errno (-EPROTO for a wrong byte). */
static int lib_recv(struct lib *c)
{
    for (;;) {
        ssize_t k = recv(c->fd, c->in, sizeof(c->in), 0);
        if (k == 0)
            return 0;
        if (k < 0) {
            if (errno != EAGAIN)
                return -errno;
            c->would_block++;
            return POLLIN;
        }
        if (t_check(c->in, (size_t)k, PROTO_SEED, c->got) != -1)
            return -EPROTO;
        c->got += (size_t)k;
    }
}

/* Makes what progress it can without blocking. Returns 0 once the exchange is complete, the
 * events it waits for (> 0), or -errno. */
static int lib_pump(struct lib *c)
{
    int want = c->connecting ? lib_connecting(c) : 0;
    if (want != 0)
        return want;
    int w = lib_send(c);
    if (w < 0)
        return w;
    int r = lib_recv(c);
    if (r < 0)
        return r;
    if (r == 0) /* the end of the echo: complete only if all was sent and came back */
        return c->shut && c->got == PROTO_LEN ? 0 : -EPROTO;
    return w | r;
}

struct proto {
    int lfd;
    struct lib lib;
    unsigned waits; /* readiness waits */
    int end;        /* lib_pump's last result */
};

/* The coroutine that runs the library: it waits only when the library says it would block. */
static int proto_driver(void *arg)
{
    struct proto *pr = arg;
    struct lib *c = &pr->lib;
    if (!T_EXPECT_EQ(lib_connect(c, corio_local_port(pr->lfd)), 0))
        return -1;
    int want;
    while ((want = lib_pump(c)) > 0) {
        int r = corio_poll(c->fd, (unsigned)want, T_BOUND);
        if (!T_EXPECT(r > 0))
            break;
        pr->waits++;
    }
    pr->end = want;
    close(c->fd);
    return 0;
}

/* The other end, in plain corio calls: echoes everything until the client's end of stream. */
static int proto_echo(void *arg)
{
    struct proto *pr = arg;
    int fd = corio_accept(pr->lfd, NULL, NULL, 0, T_BOUND);
    if (!T_EXPECT(fd >= 0))
        return -1;
    char buf[16384];
    ssize_t n;
    while ((n = corio_recv(fd, buf, sizeof(buf), 0, T_BOUND)) > 0)
        if (!T_EXPECT_EQ(corio_send_all(fd, buf, (size_t)n, NULL, T_BOUND), n))
            break;
    T_EXPECT_EQ(n, 0);
    T_EXPECT_EQ(corio_close(fd), 0);
    return 0;
}

static void test_poll_drives_library_protocol(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    struct proto *pr = calloc(1, sizeof(*pr));
    assert_non_null(pr);
    pr->lfd = corio_listen_tcp("127.0.0.1", 0, 4, 0);
    assert_true(pr->lfd >= 0);
    assert_int_equal(t_run2(loop, proto_driver, proto_echo, pr), 0);
    close(pr->lfd);
    print_message("  %zu bytes sent and %zu echoed back; %u calls would block, %u waits\n",
                  pr->lib.sent, pr->lib.got, pr->lib.would_block, pr->waits);
    t_expect_ok();
    assert_int_equal(pr->end, 0);
    assert_int_equal(pr->lib.sent, PROTO_LEN);
    assert_int_equal(pr->lib.got, PROTO_LEN);
    /* It did block, often, and waited only after a call said it would. */
    assert_true(pr->waits >= 2);
    assert_true(pr->waits <= pr->lib.would_block);
    free(pr);
}

/* ---- the poller: readiness changes, none lost ----------------------------------------------- */

/* Two coroutines play ping-pong over a Unix socket pair with plain non-blocking calls, one byte
 * at a time, each waiting for its next byte with a poller of its own: every byte is a readiness
 * change that must reach its poller, or the side waiting for it hangs until its deadline. */
enum { PING_ROUNDS = 1000 };

struct pingpong {
    int sv[2];
    unsigned got[2];   /* bytes each side read, each the one it expected */
    unsigned waits[2]; /* corio_poller_next calls each side made */
};

/* Reads side @me's next byte, which must be @want, waiting with @pl whenever the read would
 * block (again, after an event that was over by then). Returns whether it came. */
static bool pp_take(struct pingpong *pp, int me, struct corio_poller *pl, unsigned char want)
{
    unsigned char c = 0;
    ssize_t n;
    while ((n = recv(pp->sv[me], &c, 1, MSG_DONTWAIT)) < 0 && errno == EAGAIN) {
        int r = corio_poller_next(pl, T_BOUND);
        pp->waits[me]++;
        if (!T_EXPECT_EQ(r, POLLIN))
            return false;
    }
    if (!T_EXPECT_EQ(n, 1) || !T_EXPECT_EQ(c, want))
        return false;
    pp->got[me]++;
    return true;
}

/* Side @me: side 0 sends each byte and waits for it to come back, side 1 sends it back. */
static int pp_side(struct pingpong *pp, int me)
{
    struct corio_poller pl;
    if (!T_EXPECT_EQ(corio_poller_init(&pl, pp->sv[me], POLLIN), 0))
        return -1;
    for (unsigned i = 0; i < PING_ROUNDS; i++) {
        unsigned char b = (unsigned char)(i * 7);
        if (me == 0 && !T_EXPECT_EQ(write(pp->sv[0], &b, 1), 1))
            break;
        if (!pp_take(pp, me, &pl, b))
            break;
        if (me == 1 && !T_EXPECT_EQ(write(pp->sv[1], &b, 1), 1))
            break;
    }
    corio_poller_fini(&pl);
    return 0;
}

static int pp_ping(void *arg)
{
    return pp_side(arg, 0);
}

static int pp_pong(void *arg)
{
    return pp_side(arg, 1);
}

/* Plays PING_ROUNDS rounds on @loop. Returns the SQEs it took (the ops handed to the epoll
 * backend): only the pollers' own, the reads and writes being plain calls. */
static uint64_t pingpong(struct corio_loop *loop, struct pingpong *pp)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pp->sv), 0);
    uint64_t sqes = corio_loop_stats(loop)->sqes;
    assert_int_equal(t_run2(loop, pp_ping, pp_pong, pp), 0);
    sqes = corio_loop_stats(loop)->sqes - sqes;
    close(pp->sv[0]);
    close(pp->sv[1]);
    print_message("  %u round trips; %u + %u waits; %llu SQEs\n", pp->got[0], pp->waits[0],
                  pp->waits[1], (unsigned long long)sqes);
    t_expect_ok();
    assert_int_equal(pp->got[0], PING_ROUNDS);
    assert_int_equal(pp->got[1], PING_ROUNDS);
    return sqes;
}

static void test_poll_poller_no_event_lost(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    t_need(loop, CORIO_FEAT_POLL_MULTISHOT);
    struct pingpong pp = {0};
    uint64_t sqes = pingpong(loop, &pp);
    /* One poll armed per side for the whole exchange (and a cancel each at the end on io_uring),
     * not one per wait; a multishot that the kernel ended by itself may be armed once more. */
    assert_true(sqes <= 6);
}

/* The same where the kernel has no multishot poll (before 5.13): every wait arms a poll of its
 * own, which reports at once the readiness it finds. White box: the loop is told it lacks it. */
static void test_poll_poller_rearmed(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    loop->features &= ~(1ull << CORIO_FEAT_POLL_MULTISHOT);
    struct pingpong pp = {0};
    uint64_t sqes = pingpong(loop, &pp);
    assert_true(sqes >= pp.waits[0] + pp.waits[1]);
}

/* ---- the poller: events kept for the next call, deadlines, errors --------------------------- */

static int kept_body(void *arg)
{
    (void)arg;
    int us[2];
    if (!T_EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, us), 0))
        return -1;
    struct corio_poller pl;
    T_EXPECT_EQ(corio_poller_init(&pl, us[0], POLLIN | POLLRDHUP), 0);
    /* Nothing yet: the deadline ends the wait, not the watch. */
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_poller_next(&pl, t0 + CORIO_MS(20)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 20);
    /* Two events while nobody waits: both are kept, or'd, for the next call, which returns them
     * without waiting (its deadline has passed already). */
    T_EXPECT_EQ(write(us[1], "k", 1), 1);
    t_sleep_ms(5);
    T_EXPECT_EQ(shutdown(us[1], SHUT_WR), 0);
    t_sleep_ms(5);
    T_EXPECT_EQ(corio_poller_next(&pl, corio_now()), POLLIN | POLLRDHUP);
    /* Reported once: nothing new has happened. */
    T_EXPECT_EQ(corio_poller_next(&pl, corio_now() + CORIO_MS(20)), -ETIMEDOUT);
    corio_poller_fini(&pl);
    close(us[0]);
    close(us[1]);
    return 0;
}

static void test_poll_poller_keeps_events(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    t_need(loop, CORIO_FEAT_POLL_MULTISHOT);
    assert_int_equal(t_run1(loop, kept_body, NULL), 0);
    t_expect_ok();
}

struct owned {
    struct corio_poller pl;
    int result; /* what the other coroutine's call returned */
};

static int other_next(void *arg)
{
    struct owned *o = arg;
    o->result = corio_poller_next(&o->pl, T_BOUND);
    return 0;
}

static int errors_body(void *arg)
{
    const int *p = arg;
    /* Only the coroutine that prepared it may wait with it. */
    struct owned o = {.result = 1};
    T_EXPECT_EQ(corio_poller_init(&o.pl, p[0], POLLIN), 0);
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, other_next, &o), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(o.result, -EPERM);
    corio_poller_fini(&o.pl);
    /* Not prepared, or finished. */
    T_EXPECT_EQ(corio_poller_next(&o.pl, T_BOUND), -EINVAL);
    struct corio_poller zero = {{0}};
    T_EXPECT_EQ(corio_poller_next(&zero, T_BOUND), -EINVAL);
    corio_poller_fini(&zero);
    /* A bad fd: -EBADF, from then on. */
    int spare = dup(p[0]);
    close(spare);
    struct corio_poller bad;
    T_EXPECT_EQ(corio_poller_init(&bad, spare, POLLIN), 0);
    T_EXPECT_EQ(corio_poller_next(&bad, T_BOUND), -EBADF);
    T_EXPECT_EQ(corio_poller_next(&bad, T_BOUND), -EBADF);
    corio_poller_fini(&bad);
    return 0;
}

static void test_poll_poller_errors(void **state)
{
    run_on_pipe(*state, errors_body);
    /* Outside a coroutine: no owner to wait in. */
    struct corio_poller pl;
    assert_int_equal(corio_poller_init(&pl, STDIN_FILENO, POLLIN), -EPERM);
    assert_int_equal(corio_poller_next(&pl, T_BOUND), -EINVAL);
}

/* ---- the poller: its end, with a poll armed ------------------------------------------------- */

enum fini_how { FINI_ARMED, FINI_CANCELLED, FINI_NEVER };

struct ending {
    enum fini_how how;
    int fd;
    int result; /* what corio_poller_next returned last */
};

/* Arms a poller on an fd that never gets ready, then ends as @e->how says: corio_poller_fini
 * with the poll armed; the same once cancelled in corio_poller_next; or no corio_poller_fini at
 * all, the coroutine's end disarming it. */
static int ending_owner(void *arg)
{
    struct ending *e = arg;
    struct corio_poller pl;
    if (!T_EXPECT_EQ(corio_poller_init(&pl, e->fd, POLLIN), 0))
        return -1;
    int64_t dl = e->how == FINI_CANCELLED ? CORIO_FOREVER : corio_now() + CORIO_MS(10);
    e->result = corio_poller_next(&pl, dl);
    if (e->how != FINI_NEVER)
        corio_poller_fini(&pl);
    return 0;
}

static int ending_body(void *arg)
{
    struct ending *e = arg;
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, ending_owner, e), 0);
    t_sleep_ms(20);
    if (e->how == FINI_CANCELLED)
        T_EXPECT_EQ(corio_cancel(id), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(e->result, e->how == FINI_CANCELLED ? -ECANCELED : -ETIMEDOUT);
    return nothing_left(e->fd) ? 0 : -1;
}

static void test_poll_poller_fini_armed(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    int p[2];
    assert_int_equal(t_pipe(p, 0), 0);
    for (enum fini_how how = FINI_ARMED; how <= FINI_NEVER; how++) {
        struct ending e = {.how = how, .fd = p[0], .result = 1};
        assert_int_equal(t_run1(loop, ending_body, &e), 0);
        t_expect_ok();
    }
    close(p[0]);
    close(p[1]);
}

/* ---- corio_close by another coroutine ------------------------------------------------------- */

struct closed {
    int p[2];
    bool poller;    /* the waiter waits with a poller, else with corio_poll */
    int result[2];  /* what its wait returned, and (a poller) its next call; 1 until then */
    int64_t closed; /* when the closer's corio_close returned */
    int64_t woken;  /* when the waiter's wait returned */
};

static int closed_waiter(void *arg)
{
    struct closed *c = arg;
    if (!c->poller) {
        c->result[0] = corio_poll(c->p[0], POLLIN, T_BOUND);
        c->woken = corio_now();
        return 0;
    }
    struct corio_poller pl;
    if (!T_EXPECT_EQ(corio_poller_init(&pl, c->p[0], POLLIN), 0))
        return -1;
    c->result[0] = corio_poller_next(&pl, T_BOUND);
    c->woken = corio_now();
    c->result[1] = corio_poller_next(&pl, T_BOUND); /* the fd is gone: not armed again */
    corio_poller_fini(&pl);
    return 0;
}

static int closed_closer(void *arg)
{
    struct closed *c = arg;
    t_sleep_ms(10); /* the waiter waits by now */
    T_EXPECT_EQ(c->result[0], 1);
    T_EXPECT_EQ(corio_close(c->p[0]), 0);
    c->closed = corio_now();
    return 0;
}

/* A close wakes a corio_poll and a poller's wait with -ECANCELED at once, not at their deadlines;
 * the poller says so again on the next call. */
static void test_poll_close_wakes(void **state)
{
    struct corio_loop *loop = *state;
    t_need(loop, CORIO_FEAT_POLL);
    t_need(loop, CORIO_FEAT_CANCEL_FD);
    for (int poller = 0; poller <= 1; poller++) {
        struct closed c = {.poller = poller, .result = {1, 1}};
        assert_int_equal(t_pipe(c.p, 0), 0);
        assert_int_equal(t_run2(loop, closed_waiter, closed_closer, &c), 0);
        close(c.p[1]);
        t_expect_ok();
        assert_int_equal(c.result[0], -ECANCELED);
        assert_int_equal(c.result[1], poller ? -ECANCELED : 1);
        assert_true(c.woken - c.closed < CORIO_MS(1000) * t_slowdown());
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_FDS_TEST(test_poll_pipe),
        T_LOOP_FDS_TEST(test_poll_pollout_after_full),
        T_LOOP_FDS_TEST(test_poll_hangup),
        T_LOOP_FDS_TEST(test_poll_urgent_data),
        T_LOOP_FDS_TEST(test_poll_cancel),
        T_LOOP_FDS_TEST(test_poll_deadline),
        T_LOOP_FDS_TEST(test_poll_regular_file),
        T_LOOP_FDS_TEST(test_poll_drives_library_protocol),
        T_LOOP_FDS_TEST(test_poll_poller_no_event_lost),
        T_LOOP_FDS_TEST(test_poll_poller_rearmed),
        T_LOOP_FDS_TEST(test_poll_poller_keeps_events),
        T_LOOP_FDS_TEST(test_poll_poller_errors),
        T_LOOP_FDS_TEST(test_poll_poller_fini_armed),
        T_LOOP_FDS_TEST(test_poll_close_wakes),
    };
    return T_RUN_TESTS(tests);
}
