/* libFuzzer target for the completion dispatcher (engine/loop.c dispatch, the futures, linked
 * timeouts, retries, multishot handlers, zombies), fed CQE sequences shaped by the fault seam.
 *
 * Each input makes a fresh loop (CORIO_TESTING library) and runs a small program on it: NOPs
 * awaited together, a pipe and a socketpair each streaming a pattern through a writer and a
 * reader coroutine, a multishot receiver on a tiny buffer ring, a read that times out, a read that
 * is cancelled, await_any over a read and a NOP, a coroutine cancelled in a recv, and a coroutine
 * that returns with a read in flight (a zombie), and connections accepted one at a time or by a
 * multishot acceptor. The first three bytes pick the program's variants
 * (ring size, stream lengths, which parts run); every other byte is a decision of the seam
 * (corio__fault_script): which SQEs become -EAGAIN/-ECONNRESET/-ENOBUFS NOPs or are shortened,
 * which io_uring_enter calls fail, how each reaped batch is split, held back and reordered. Once
 * the bytes run out the seam stops injecting, so every program can finish.
 *
 * Checked: every op returns exactly once with a plausible result (exact values where they are
 * known, the pattern for stream bytes, only -ECONNRESET/-EPIPE as stream errors and only where
 * one was injected, never -EAGAIN or -ENOBUFS); every coroutine ends; the loop ends (0, not
 * -EDEADLK) with no CQE expected and none held back by the seam; no fd is left open; ASan and
 * LeakSanitizer see nothing. A broken check aborts, which libFuzzer reports as a crash.
 *
 * Build: cmake -DCORIO_FUZZ=ON -DCORIO_SANITIZE=ON with clang gives tests/fuzz_dispatch (the
 * engine built with -fsanitize=fuzzer-no-link); every build replays the corpus in
 * tests/fuzz/corpus/dispatch as the ctest replay_fuzz_dispatch. */
#include "fault.h"
#include "loop.h"

#ifndef CORIO_TESTING
#error "fuzz_dispatch needs the CORIO_TESTING library (corio_testing_static)"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The seam's probabilities; each decision takes one input byte and compares it with p * 256. */
#define SPEC                                                                                       \
    "seed=1,quiet=1,enter_eintr=0.06,enter_eagain=0.06,enter_ebusy=0.06,short_rw=0.3,"             \
    "cqe_eagain=0.25,cqe_econnreset=0.04,cqe_enobufs=0.3,sq_full=0.1,reorder=0.5,holdback=0.3"

#define MAX_STREAM 3000 /* bytes per stream */
#define BOUND CORIO_SEC(5)

static void fail(const char *what, int line)
{
    fprintf(stderr, "fuzz_dispatch: check failed at line %d: %s\n", line, what);
    abort();
}

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            fail(#c, __LINE__);                                                                    \
    } while (0)

/* Program variants, from the first input byte. */
#define P_NOPS 0x01u
#define P_PIPE 0x02u
#define P_SOCK 0x04u
#define P_RX 0x08u
#define P_TIMEOUT 0x10u
#define P_CANCEL 0x20u
#define P_ZOMBIE 0x40u
#define P_DEADLINES 0x80u /* stream ops carry a (far) deadline: a linked timeout each */
/* ... and from the third byte. */
#define P2_ACCEPT 0x01u       /* connections accepted one SQE each */
#define P2_ACCEPT_MULTI 0x02u /* ... through a multishot acceptor */

struct prog {
    unsigned parts;
    unsigned parts2;
    unsigned sq; /* ring size */
    size_t pipe_len, sock_len, rx_len;
    int64_t deadline; /* for the stream ops with P_DEADLINES, else CORIO_FOREVER */
    int ended;        /* coroutines that ran to their end */
    int started;      /* coroutines spawned */
    unsigned resets;  /* -ECONNRESET seen by stream ops */
};

static uint8_t pat(size_t i)
{
    return (uint8_t)(i * 131u + (i >> 8) * 7u + 1u);
}

static int64_t dl(const struct prog *p)
{
    return (p->parts & P_DEADLINES) ? p->deadline : CORIO_FOREVER;
}

/* ---- streams: a writer and a reader coroutine over a pipe or a socketpair ------------------- */

struct stream {
    struct prog *p;
    int rfd, wfd;
    bool sock; /* send/recv (socketpair) rather than write/read (pipe) */
    size_t len;
    size_t got;
    bool reader_reset; /* the reader saw -ECONNRESET and stopped */
};

static int stream_writer(void *arg)
{
    struct stream *s = arg;
    uint8_t buf[512];
    size_t off = 0;
    while (off < s->len) {
        size_t n = s->len - off < sizeof(buf) ? s->len - off : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = pat(off + i);
        ssize_t r = s->sock ? corio_send(s->wfd, buf, n, 0, dl(s->p))
                            : corio_write(s->wfd, buf, n, -1, dl(s->p));
        if (r < 0) {
            /* Only a reset stops a stream: injected here, or the reader gone after one. */
            CHECK(s->sock && (r == -ECONNRESET || r == -EPIPE));
            if (r == -ECONNRESET)
                s->p->resets++;
            break;
        }
        CHECK(r > 0 && (size_t)r <= n);
        off += (size_t)r;
    }
    CHECK(corio_close(s->wfd) == 0);
    s->p->ended++;
    return 0;
}

static int stream_reader(void *arg)
{
    struct stream *s = arg;
    uint8_t buf[700];
    for (;;) {
        ssize_t r = s->sock ? corio_recv(s->rfd, buf, sizeof(buf), 0, dl(s->p))
                            : corio_read(s->rfd, buf, sizeof(buf), -1, dl(s->p));
        if (r == 0)
            break;
        if (r < 0) {
            CHECK(s->sock && r == -ECONNRESET);
            s->p->resets++;
            s->reader_reset = true;
            break;
        }
        CHECK((size_t)r <= sizeof(buf) && s->got + (size_t)r <= s->len);
        for (ssize_t i = 0; i < r; i++)
            CHECK(buf[i] == pat(s->got + (size_t)i));
        s->got += (size_t)r;
    }
    CHECK(s->reader_reset || s->got == s->len || s->p->resets > 0);
    CHECK(corio_close(s->rfd) == 0);
    s->p->ended++;
    return 0;
}

/* ---- a multishot receiver on a tiny buffer ring --------------------------------------------- */

struct rxs {
    struct prog *p;
    int fds[2];
    size_t got;
};

static int rx_writer(void *arg)
{
    struct rxs *x = arg;
    uint8_t buf[200];
    size_t off = 0;
    while (off < x->p->rx_len) {
        size_t n = x->p->rx_len - off < sizeof(buf) ? x->p->rx_len - off : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = pat(off + i);
        ssize_t r = corio_send(x->fds[1], buf, n, 0, dl(x->p));
        if (r < 0) {
            CHECK(r == -ECONNRESET || r == -EPIPE);
            if (r == -ECONNRESET)
                x->p->resets++;
            break;
        }
        CHECK(r > 0 && (size_t)r <= n);
        off += (size_t)r;
    }
    CHECK(corio_close(x->fds[1]) == 0);
    x->p->ended++;
    return 0;
}

static int rx_reader(void *arg)
{
    struct rxs *x = arg;
    struct corio_bufring *br;
    CHECK(corio_bufring_new(&br, NULL, 4, 64) == 0);
    struct corio_receiver rx;
    CHECK(corio_receiver_init(&rx, x->fds[0], br) == 0);
    for (;;) {
        struct corio_buf b;
        ssize_t r = corio_receiver_next(&rx, &b, dl(x->p));
        if (r == 0)
            break;
        if (r < 0) {
            CHECK(r == -ECONNRESET); /* never -ENOBUFS: that is a re-arm */
            x->p->resets++;
            break;
        }
        CHECK((size_t)r == b.len && b.len <= 64 && x->got + b.len <= x->p->rx_len);
        for (size_t i = 0; i < b.len; i++)
            CHECK(((uint8_t *)b.data)[i] == pat(x->got + i));
        x->got += b.len;
        corio_buf_release(&b);
    }
    corio_receiver_fini(&rx);
    CHECK(corio_bufring_available(br) == 4);
    corio_bufring_free(br);
    CHECK(x->got == x->p->rx_len || x->p->resets > 0);
    CHECK(corio_close(x->fds[0]) == 0);
    x->p->ended++;
    return 0;
}

/* ---- single ops with known results ---------------------------------------------------------- */

static int nops(void *arg)
{
    struct prog *p = arg;
    struct corio_future f[6];
    struct corio_future *fs[6];
    for (int i = 0; i < 6; i++) {
        fs[i] = &f[i];
        CHECK(corio_nop_start(&f[i]) == 0);
    }
    CHECK(corio_await_all(fs, 6, corio_now() + BOUND) == 0);
    for (int i = 0; i < 6; i++) {
        CHECK(corio_future_done(&f[i]));
        CHECK(corio_await(&f[i], CORIO_FOREVER) == 0);
    }
    CHECK(corio_nop() == 0);
    p->ended++;
    return 0;
}

/* A read of an empty pipe: it can only end by its deadline, a cancel, or the zombie path. */
static int timeout_read(void *arg)
{
    struct prog *p = arg;
    int fds[2];
    CHECK(pipe2(fds, O_CLOEXEC) == 0);
    char c;
    CHECK(corio_read(fds[0], &c, 1, -1, corio_now() + CORIO_US(200)) == -ETIMEDOUT);
    close(fds[0]);
    close(fds[1]);
    p->ended++;
    return 0;
}

static int cancel_read(void *arg)
{
    struct prog *p = arg;
    int fds[2];
    CHECK(pipe2(fds, O_CLOEXEC) == 0);
    char c[2];
    struct corio_future rf, nf;
    CHECK(corio_read_start(&rf, fds[0], &c[0], 1, -1, CORIO_FOREVER) == 0);
    CHECK(corio_nop_start(&nf) == 0);
    struct corio_future *fs[2] = {&rf, &nf};
    CHECK(corio_await_any(fs, 2, corio_now() + BOUND) == 1);
    CHECK(corio_await(&nf, CORIO_FOREVER) == 0);
    CHECK(corio_future_cancel(&rf) == 0);
    CHECK(corio_await(&rf, CORIO_FOREVER) == -ECANCELED);
    CHECK(corio_future_cancel(&rf) == -EALREADY);
    /* A deadline and a cancel on one read: whichever comes first, never -EAGAIN. */
    int err = corio_read_start(&rf, fds[0], &c[1], 1, -1, corio_now() + CORIO_US(300));
    CHECK(err == 0 || err == -ETIMEDOUT); /* a slow machine may be past the deadline already */
    corio_yield();
    corio_future_cancel(&rf);
    ssize_t r = corio_await(&rf, CORIO_FOREVER);
    CHECK(r == -ECANCELED || r == -ETIMEDOUT);
    close(fds[0]);
    close(fds[1]);
    p->ended++;
    return 0;
}

struct victim {
    struct prog *p;
    int fds[2];
    ssize_t res;
};

static int victim(void *arg)
{
    struct victim *v = arg;
    char c;
    v->res = corio_recv(v->fds[0], &c, 1, 0, CORIO_FOREVER);
    v->p->ended++;
    return 0;
}

static int zombie(void *arg)
{
    struct victim *v = arg;
    static char sink; /* the read may still land after we return: not on our stack */
    struct corio_future f;
    CHECK(corio_read_start(&f, v->fds[0], &sink, 1, -1, CORIO_FOREVER) == 0);
    v->p->ended++;
    return 0; /* with the read in flight: the engine cancels it and keeps the stack */
}

/* ---- accept: a Unix listener in the abstract namespace, three clients ----------------------- */

static int accept_part(void *arg)
{
    struct prog *p = arg;
    static unsigned serial;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int nl = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "corio-fuzz-%d-%u", (int)getpid(),
                      serial++);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)nl);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0 && bind(l, (struct sockaddr *)&a, alen) == 0 && listen(l, 8) == 0);
    int c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = corio_socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK(c[i] >= 0);
        CHECK(corio_connect(c[i], (struct sockaddr *)&a, alen, corio_now() + BOUND) == 0);
    }
    bool multi = (p->parts2 & P2_ACCEPT_MULTI) &&
                 corio_loop_has(corio_loop_current(), CORIO_FEAT_ACCEPT_MULTISHOT);
    struct corio_acceptor acc;
    if (multi)
        CHECK(corio_acceptor_init(&acc, l, 0) == 0);
    for (int i = 0; i < 3; i++) {
        int fd = multi ? corio_acceptor_next(&acc, corio_now() + BOUND)
                       : corio_accept(l, NULL, NULL, 0, dl(p));
        CHECK(fd >= 0);
        CHECK(corio_close(fd) == 0);
    }
    if (multi)
        corio_acceptor_fini(&acc);
    for (int i = 0; i < 3; i++)
        CHECK(corio_close(c[i]) == 0);
    close(l);
    p->ended++;
    return 0;
}

/* ---- the program ---------------------------------------------------------------------------- */

static void spawn(struct prog *p, corio_fn *fn, void *arg, corio_id *id)
{
    CHECK(corio_spawn(id, NULL, fn, arg) == 0);
    p->started++;
}

static int program(void *arg)
{
    struct prog *p = arg;
    corio_id ids[16];
    int n = 0;
    struct stream ps = {.p = p, .len = p->pipe_len},
                  ss = {.p = p, .len = p->sock_len, .sock = true};
    struct rxs rx = {.p = p, .fds = {-1, -1}};
    struct victim v = {.p = p, .fds = {-1, -1}}, z = {.p = p, .fds = {-1, -1}};
    if (p->parts & P_NOPS)
        spawn(p, nops, p, &ids[n++]);
    if (p->parts & P_PIPE) {
        int fds[2];
        CHECK(pipe2(fds, O_CLOEXEC) == 0);
        ps.rfd = fds[0];
        ps.wfd = fds[1];
        spawn(p, stream_reader, &ps, &ids[n++]);
        spawn(p, stream_writer, &ps, &ids[n++]);
    }
    if (p->parts & P_SOCK) {
        int fds[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
        ss.rfd = fds[0];
        ss.wfd = fds[1];
        spawn(p, stream_reader, &ss, &ids[n++]);
        spawn(p, stream_writer, &ss, &ids[n++]);
    }
    if ((p->parts & P_RX) && corio_loop_has(corio_loop_current(), CORIO_FEAT_RECV_MULTISHOT)) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rx.fds) == 0);
        spawn(p, rx_reader, &rx, &ids[n++]);
        spawn(p, rx_writer, &rx, &ids[n++]);
    }
    if (p->parts & P_TIMEOUT)
        spawn(p, timeout_read, p, &ids[n++]);
    if (p->parts & P_CANCEL) {
        spawn(p, cancel_read, p, &ids[n++]);
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, v.fds) == 0);
        corio_id vid;
        spawn(p, victim, &v, &vid);
        corio_yield(); /* let it park in its recv */
        corio_yield();
        int cerr = corio_cancel(vid); /* -ESRCH: it ended already, with an injected reset */
        CHECK(cerr == 0 || (cerr == -ESRCH && v.res == -ECONNRESET));
        ids[n++] = vid;
    }
    if (p->parts & P_ZOMBIE) {
        CHECK(pipe2(z.fds, O_CLOEXEC) == 0);
        spawn(p, zombie, &z, &ids[n++]);
    }
    if (p->parts2 & (P2_ACCEPT | P2_ACCEPT_MULTI))
        spawn(p, accept_part, p, &ids[n++]);
    for (int i = 0; i < n; i++) {
        int res = -1;
        CHECK(corio_join(ids[i], &res, corio_now() + BOUND) == 0);
        CHECK(res == 0);
    }
    if (p->parts & P_CANCEL) {
        if (!(v.res == -ECANCELED || v.res == -ECONNRESET))
            fprintf(stderr, "victim's recv returned %zd\n", v.res);
        CHECK(v.res == -ECANCELED || v.res == -ECONNRESET);
        close(v.fds[0]);
        close(v.fds[1]);
    }
    if (p->parts & P_ZOMBIE) {
        /* Joined: so the zombie's read has completed (cancelled) and its stack is free. */
        close(z.fds[0]);
        close(z.fds[1]);
    }
    if (p->resets == 0) {
        CHECK(!(p->parts & P_PIPE) || ps.got == ps.len);
        CHECK(!(p->parts & P_SOCK) || ss.got == ss.len);
        CHECK(rx.fds[0] < 0 || rx.got == p->rx_len);
    }
    p->ended++;
    return 0;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool configured;
    if (!configured) {
        CHECK(corio__fault_configure(SPEC) == 0);
        configured = true;
    }
    if (size < 3)
        return 0;
    static const unsigned sqs[4] = {2, 4, 16, 64};
    struct prog p = {
        .parts = data[0],
        .parts2 = data[2],
        .sq = sqs[data[1] & 3],
        .pipe_len = 1 + (size_t)((data[1] >> 2) & 7) * (MAX_STREAM / 8),
        .sock_len = 1 + (size_t)((data[1] >> 5) & 7) * (MAX_STREAM / 8),
        .rx_len = 1 + (size_t)(data[1] & 0x1c) * 40,
    };
    int fds0 = count_fds();
    /* Counters start from zero, and the seam takes its decisions from the rest of the input. */
    CHECK(corio__fault_configure(SPEC) == 0);
    corio__fault_script(data + 3, size - 3);

    struct corio_loop_opts opts = {.sq_entries = p.sq,
                                   .stack_size = 32 * 1024,
                                   .stack_cache = 16,
                                   .flags = CORIO_LOOP_NO_SIGSEGV};
    struct corio_loop *loop;
    int err = corio_loop_new(&loop, &opts);
    if (err == -ENOSYS || err == -EPERM)
        return 0; /* no io_uring here: nothing to fuzz */
    CHECK(err == 0);
    p.deadline = corio_now() + BOUND;
    CHECK(corio_spawn(NULL, loop, program, &p) == 0);
    p.started++;
    CHECK(corio_loop_run(loop) == 0);
    /* Every coroutine ran to its end, and the dispatcher expects no further CQE. */
    CHECK(p.ended == p.started);
    CHECK(loop->coros.live == 0);
    if (loop->io.inflight != 0)
        fprintf(stderr, "fuzz_dispatch: the loop still expects %zd CQE(s)\n",
                (ssize_t)loop->io.inflight);
    CHECK(loop->io.inflight == 0);
    CHECK(corio__list_empty(&loop->sched.runq));
    corio_loop_free(loop);
    corio__fault_script(NULL, 0);
    /* The seam handed the loop every CQE it took in, except cancels' own (user_data 0). */
    const struct corio__fault_stats *fs = corio__fault_stats();
    CHECK(fs->lost == 0);
    CHECK(fs->cqes_out <= fs->cqes_in);
    CHECK(count_fds() == fds0);
    return 0;
}
