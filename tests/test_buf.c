/* Tests of engine/buf.c: provided buffer rings run dry and refilled with every byte verified, a
 * ring shared by many connections, multishot receivers in each of their endings (a coroutine that
 * returns with one still armed among them), and registered buffers. Loopback and a temporary
 * file only. */
#include "helpers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Every test runs under T_GUARD_TEST (helpers.h): a watchdog against hangs and the fd-leak check.
 * A test makes its loop with t_mkloop. */

/* ---- buffer ring exhaustion with every byte verified ----------------------------------------- */

/* A ring of 4 buffers of 64 bytes and a peer sending 64 KiB. The receiver borrows buffers until
 * it holds all four and only then gives them back (after a yield or a sleep): each time the
 * kernel finds the ring empty with data waiting, ends the multishot with -ENOBUFS, and corio arms
 * it again once buffers are back. Every byte must arrive, in order, and a buffer held must not
 * be written meanwhile. */
enum { BX_COUNT = 4, BX_SIZE = 64, BX_LEN = 64 * 1024 };

struct bx {
    int sv[2];
    struct corio_bufring *br;
    size_t got;   /* bytes received and verified */
    unsigned dry; /* times every buffer was borrowed at once */
};

static int bx_sender(void *arg)
{
    struct bx *c = arg;
    unsigned char *out = malloc(BX_LEN);
    if (!T_EXPECT(out != NULL))
        return -1;
    t_fill(out, BX_LEN, 71, 0);
    T_EXPECT_EQ(corio_send_all(c->sv[1], out, BX_LEN, NULL, T_BOUND), BX_LEN);
    T_EXPECT_EQ(corio_shutdown(c->sv[1], SHUT_WR), 0);
    free(out);
    return 0;
}

static int bx_receiver(void *arg)
{
    struct bx *c = arg;
    struct corio_receiver rx;
    T_EXPECT_EQ(corio_receiver_init(&rx, c->sv[0], c->br), 0);
    struct corio_buf held[BX_COUNT];
    size_t held_pos[BX_COUNT];
    unsigned nh = 0;
    size_t pos = 0;
    for (;;) {
        ssize_t n = corio_receiver_next(&rx, &held[nh], T_BOUND);
        if (n == 0)
            break;
        if (!T_EXPECT(n > 0 && n <= BX_SIZE))
            break;
        T_EXPECT_EQ(held[nh].len, n);
        T_EXPECT_EQ(t_check(held[nh].data, (size_t)n, 71, pos), -1);
        held_pos[nh++] = pos;
        pos += (size_t)n;
        if (nh < BX_COUNT)
            continue;
        /* Every buffer is borrowed: the kernel has nowhere to put what waits in the socket. */
        T_EXPECT_EQ(corio_bufring_available(c->br), 0);
        if (c->dry++ % 16 == 0)
            T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(1)), 0);
        else
            T_EXPECT_EQ(corio_yield(), 0);
        for (unsigned i = 0; i < nh; i++) {
            T_EXPECT_EQ(t_check(held[i].data, held[i].len, 71, held_pos[i]), -1);
            corio_buf_release(&held[i]);
        }
        nh = 0;
    }
    for (unsigned i = 0; i < nh; i++) {
        T_EXPECT_EQ(t_check(held[i].data, held[i].len, 71, held_pos[i]), -1);
        corio_buf_release(&held[i]);
    }
    T_EXPECT_EQ(corio_receiver_next(&rx, &held[0], T_BOUND), 0); /* the end stays the end */
    corio_receiver_fini(&rx);
    T_EXPECT_EQ(corio_bufring_available(c->br), BX_COUNT);
    c->got = pos;
    return 0;
}

static void test_buf_bufring_exhaustion(void **state)
{
    (void)state;
    struct corio_loop *l = t_mkloop(NULL);
    t_need_or_free(l, CORIO_FEAT_RECV_MULTISHOT);
    struct bx c;
    memset(&c, 0, sizeof(c));
    c.br = t_bufring(l, BX_COUNT, BX_SIZE);
    assert_int_equal(corio_bufring_available(c.br), BX_COUNT);
    assert_int_equal(t_tcp_pair(c.sv), 0);
    assert_int_equal(t_run2(l, bx_receiver, bx_sender, &c), 0);
    const struct corio_stats *s = corio_loop_stats(l);
    print_message("  %zu bytes through 4 x 64 B buffers; dry %u times; enobufs=%llu cqes=%llu\n",
                  c.got, c.dry, (unsigned long long)s->enobufs, (unsigned long long)s->cqes);
    close(c.sv[0]);
    close(c.sv[1]);
    corio_bufring_free(c.br);
    t_expect_ok();
    assert_int_equal(c.got, BX_LEN);
    assert_true(c.dry > 0);
    assert_true(s->enobufs > 0);
    corio_loop_free(l);
}

/* Many connections on one small ring: 16 peers send 8 KiB each, with a pattern of their own,
 * into 8 shared buffers of 64 bytes. Each receiver holds its buffer across a yield, so the ring
 * runs dry with several receivers waiting for buffers at once. */
enum { SH_CONNS = 16, SH_COUNT = 8, SH_SIZE = 64, SH_LEN = 8192 };

struct sh {
    struct corio_bufring *br;
    int sv[SH_CONNS][2];
    size_t got[SH_CONNS];
};

struct sh_arg {
    struct sh *c;
    int i;
};

static int sh_sender(void *arg)
{
    struct sh_arg *a = arg;
    unsigned char *out = malloc(SH_LEN);
    if (!T_EXPECT(out != NULL))
        return -1;
    t_fill(out, SH_LEN, 100 + (uint64_t)a->i, 0);
    T_EXPECT_EQ(corio_send_all(a->c->sv[a->i][1], out, SH_LEN, NULL, T_BOUND), SH_LEN);
    T_EXPECT_EQ(corio_shutdown(a->c->sv[a->i][1], SHUT_WR), 0);
    free(out);
    return 0;
}

static int sh_receiver(void *arg)
{
    struct sh_arg *a = arg;
    struct corio_receiver rx;
    T_EXPECT_EQ(corio_receiver_init(&rx, a->c->sv[a->i][0], a->c->br), 0);
    size_t pos = 0;
    struct corio_buf b;
    ssize_t n;
    while ((n = corio_receiver_next(&rx, &b, T_BOUND)) > 0) {
        T_EXPECT_EQ(t_check(b.data, b.len, 100 + (uint64_t)a->i, pos), -1);
        T_EXPECT_EQ(corio_yield(), 0);
        T_EXPECT_EQ(t_check(b.data, b.len, 100 + (uint64_t)a->i, pos), -1);
        pos += b.len;
        corio_buf_release(&b);
    }
    T_EXPECT_EQ(n, 0);
    corio_receiver_fini(&rx);
    a->c->got[a->i] = pos;
    return 0;
}

static int sh_main(void *arg)
{
    struct sh *c = arg;
    struct sh_arg args[SH_CONNS];
    corio_id ids[2 * SH_CONNS];
    for (int i = 0; i < SH_CONNS; i++) {
        args[i] = (struct sh_arg){c, i};
        T_EXPECT_EQ(corio_spawn(&ids[2 * i], NULL, sh_receiver, &args[i]), 0);
        T_EXPECT_EQ(corio_spawn(&ids[2 * i + 1], NULL, sh_sender, &args[i]), 0);
    }
    for (int i = 0; i < 2 * SH_CONNS; i++)
        T_EXPECT_EQ(corio_join(ids[i], NULL, T_BOUND), 0);
    T_EXPECT_EQ(corio_bufring_available(c->br), SH_COUNT);
    return 0;
}

static void test_buf_bufring_shared(void **state)
{
    (void)state;
    struct corio_loop *l = t_mkloop(NULL);
    t_need_or_free(l, CORIO_FEAT_RECV_MULTISHOT);
    struct sh *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->br = t_bufring(l, SH_COUNT, SH_SIZE);
    for (int i = 0; i < SH_CONNS; i++)
        assert_int_equal(t_tcp_pair(c->sv[i]), 0);
    int64_t t0 = corio_now();
    assert_int_equal(t_run1(l, sh_main, c), 0);
    print_message("  %d connections x %d B through %d x %d B shared buffers in %.0f ms; "
                  "enobufs=%llu\n",
                  SH_CONNS, SH_LEN, SH_COUNT, SH_SIZE, t_ms_since(t0),
                  (unsigned long long)corio_loop_stats(l)->enobufs);
    for (int i = 0; i < SH_CONNS; i++) {
        close(c->sv[i][0]);
        close(c->sv[i][1]);
    }
    corio_bufring_free(c->br);
    t_expect_ok();
    for (int i = 0; i < SH_CONNS; i++)
        assert_int_equal(c->got[i], SH_LEN);
    assert_true(corio_loop_stats(l)->enobufs > 0);
    free(c);
    corio_loop_free(l);
}

/* A receiver whose coroutine stops taking what arrives must not drain a ring that others share:
 * it pauses its receive once it holds a bounded queue, the rest waits in the socket (and TCP
 * pushes back on the peer), and when the coroutine takes the queue again the stream goes on with
 * every byte in order. 1024 buffers of 4 KiB; the peer sends 8 MiB, twice the ring. */
enum { LAG_COUNT = 1024, LAG_SIZE = 4096, LAG_LEN = 8 << 20 };

struct lag {
    int sv[2];
    struct corio_bufring *br;
    unsigned min_avail; /* the fewest buffers available while the receiver lagged */
    size_t got;
};

static int lag_sender(void *arg)
{
    struct lag *c = arg;
    enum { CHUNK = 64 * 1024 };
    unsigned char *out = malloc(CHUNK);
    if (!T_EXPECT(out != NULL))
        return -1;
    for (size_t off = 0; off < LAG_LEN; off += CHUNK) {
        t_fill(out, CHUNK, 29, off);
        if (!T_EXPECT_EQ(corio_send_all(c->sv[1], out, CHUNK, NULL, T_BOUND), CHUNK))
            break;
    }
    T_EXPECT_EQ(corio_shutdown(c->sv[1], SHUT_WR), 0);
    free(out);
    return 0;
}

static int lag_receiver(void *arg)
{
    struct lag *c = arg;
    struct corio_receiver rx;
    T_EXPECT_EQ(corio_receiver_init(&rx, c->sv[0], c->br), 0);
    struct corio_buf b;
    size_t pos = 0;
    ssize_t n = corio_receiver_next(&rx, &b, T_BOUND); /* arms the receive */
    c->min_avail = LAG_COUNT;
    /* Lag: 50 ms without taking anything, while the sender pushes as fast as it can. */
    for (int i = 0; i < 50; i++) {
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(1)), 0);
        unsigned a = corio_bufring_available(c->br);
        if (a < c->min_avail)
            c->min_avail = a;
    }
    for (; n > 0; n = corio_receiver_next(&rx, &b, T_BOUND)) {
        T_EXPECT_EQ(t_check(b.data, b.len, 29, pos), -1);
        pos += b.len;
        corio_buf_release(&b);
    }
    T_EXPECT_EQ(n, 0);
    corio_receiver_fini(&rx);
    c->got = pos;
    return 0;
}

static void test_buf_receiver_lagging_pauses(void **state)
{
    (void)state;
    struct corio_loop *l = t_mkloop(NULL);
    t_need_or_free(l, CORIO_FEAT_RECV_MULTISHOT);
    struct lag c;
    memset(&c, 0, sizeof(c));
    c.br = t_bufring(l, LAG_COUNT, LAG_SIZE);
    assert_int_equal(t_tcp_pair(c.sv), 0);
    assert_int_equal(t_run2(l, lag_receiver, lag_sender, &c), 0);
    print_message("  lagging receiver: at least %u of %u buffers stayed available; "
                  "rx_pauses=%llu; %zu bytes verified\n",
                  c.min_avail, LAG_COUNT, (unsigned long long)corio_loop_stats(l)->rx_pauses, c.got);
    close(c.sv[0]);
    close(c.sv[1]);
    assert_int_equal(corio_bufring_available(c.br), LAG_COUNT);
    corio_bufring_free(c.br);
    t_expect_ok();
    assert_int_equal(c.got, LAG_LEN);
    assert_true(corio_loop_stats(l)->rx_pauses > 0);
    /* Most of the ring stays for the others: the queue bound plus what one burst of the kernel
     * moved before the pause landed. */
    assert_true(c.min_avail >= LAG_COUNT - LAG_COUNT / 4);
    corio_loop_free(l);
}

/* Receivers that wait for buffers must not be stranded behind one that, woken by a returned
 * buffer, had nothing to receive. One buffer; A holds it; B (nothing will come) and then C (data
 * waits) wait for a buffer; A gives it back. C must get its data at once, while B still waits. */
struct strand {
    struct corio_bufring *br;
    int a[2], b[2], c[2];       /* [0]: the receiver's end */
    struct corio_event a_holds; /* A has borrowed the only buffer */
    int b_res, c_res;           /* what B's and C's receives returned */
    double c_ms;                /* how long C waited */
};

static int strand_a(void *arg)
{
    struct strand *s = arg;
    struct corio_receiver rx;
    struct corio_buf b;
    T_EXPECT_EQ(corio_receiver_init(&rx, s->a[0], s->br), 0);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, T_BOUND), 1);
    T_EXPECT_EQ(corio_bufring_available(s->br), 0);
    corio_event_set(&s->a_holds);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(20)), 0); /* B and C park meanwhile */
    corio_buf_release(&b);
    corio_receiver_fini(&rx);
    return 0;
}

static int strand_b(void *arg)
{
    struct strand *s = arg;
    struct corio_receiver rx;
    struct corio_buf b;
    T_EXPECT_EQ(corio_event_wait(&s->a_holds, T_BOUND), 0);
    T_EXPECT_EQ(corio_receiver_init(&rx, s->b[0], s->br), 0);
    s->b_res = (int)corio_receiver_next(&rx, &b, corio_now() + CORIO_MS(500) * t_slowdown());
    corio_receiver_fini(&rx);
    return 0;
}

static int strand_c(void *arg)
{
    struct strand *s = arg;
    struct corio_receiver rx;
    struct corio_buf b;
    T_EXPECT_EQ(corio_event_wait(&s->a_holds, T_BOUND), 0);
    T_EXPECT_EQ(corio_yield(), 0); /* B queues for a buffer first */
    T_EXPECT_EQ(corio_receiver_init(&rx, s->c[0], s->br), 0);
    int64_t t0 = corio_now();
    s->c_res = (int)corio_receiver_next(&rx, &b, corio_now() + CORIO_SEC(2) * t_slowdown());
    s->c_ms = t_ms_since(t0);
    if (s->c_res > 0) {
        T_EXPECT_EQ(((char *)b.data)[0], 'c');
        corio_buf_release(&b);
    }
    corio_receiver_fini(&rx);
    return 0;
}

static int strand_main(void *arg)
{
    corio_id ids[3];
    T_EXPECT_EQ(corio_spawn(&ids[0], NULL, strand_a, arg), 0);
    T_EXPECT_EQ(corio_spawn(&ids[1], NULL, strand_b, arg), 0);
    T_EXPECT_EQ(corio_spawn(&ids[2], NULL, strand_c, arg), 0);
    for (int i = 0; i < 3; i++)
        T_EXPECT_EQ(corio_join(ids[i], NULL, T_BOUND), 0);
    return 0;
}

static void test_buf_bufring_waiter_not_stranded(void **state)
{
    (void)state;
    struct corio_loop *l = t_mkloop(NULL);
    t_need_or_free(l, CORIO_FEAT_RECV_MULTISHOT);
    struct strand s;
    memset(&s, 0, sizeof(s));
    s.br = t_bufring(l, 1, 64);
    assert_int_equal(t_tcp_pair(s.a), 0);
    assert_int_equal(t_tcp_pair(s.b), 0);
    assert_int_equal(t_tcp_pair(s.c), 0);
    assert_int_equal(send(s.a[1], "a", 1, 0), 1);
    assert_int_equal(send(s.c[1], "c", 1, 0), 1);
    assert_int_equal(t_run1(l, strand_main, &s), 0);
    print_message("  B (no data): %d; C (data waiting): %d after %.1f ms\n", s.b_res, s.c_res,
                  s.c_ms);
    int *fds[] = {s.a, s.b, s.c};
    for (int i = 0; i < 3; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
    corio_bufring_free(s.br);
    corio_loop_free(l);
    t_expect_ok();
    assert_int_equal(s.b_res, -ETIMEDOUT);
    assert_int_equal(s.c_res, 1);
    assert_true(s.c_ms < 400.0 * t_slowdown()); /* well before B's deadline frees anything */
}

/* ---- receivers: each way a receive ends ------------------------------------------------------ */

enum { RX_COUNT = 8, RX_SIZE = 256 };

struct rx_case {
    int sv[2];
    struct corio_bufring *br;
    corio_id victim; /* cancel: the coroutine to cancel */
    int result;      /* what the case's receive returned */
};

/* The peer sends 100 bytes and shuts down: 100, then 0, and 0 again. */
static int rx_eof_body(void *arg)
{
    struct rx_case *c = arg;
    struct corio_receiver rx;
    struct corio_buf b;
    char out[100];
    t_fill(out, sizeof(out), 81, 0);
    T_EXPECT_EQ(send(c->sv[1], out, sizeof(out), 0), sizeof(out));
    T_EXPECT_EQ(shutdown(c->sv[1], SHUT_WR), 0);
    T_EXPECT_EQ(corio_receiver_init(&rx, c->sv[0], c->br), 0);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, T_BOUND), 100);
    T_EXPECT_EQ(t_check(b.data, b.len, 81, 0), -1);
    T_EXPECT(b.ring == c->br);
    T_EXPECT_EQ(corio_bufring_available(c->br), RX_COUNT - 1);
    corio_buf_release(&b);
    T_EXPECT(b.ring == NULL && b.data == NULL); /* a released buffer is spent */
    corio_buf_release(&b);                      /* and releasing it again is a no-op */
    T_EXPECT_EQ(corio_bufring_available(c->br), RX_COUNT);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, T_BOUND), 0);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, T_BOUND), 0);
    corio_receiver_fini(&rx);
    corio_receiver_fini(&rx); /* twice is harmless */
    return 0;
}

/* The peer resets the connection: -ECONNRESET, and it stays. */
static int rx_reset_body(void *arg)
{
    struct rx_case *c = arg;
    struct corio_receiver rx;
    struct corio_buf b;
    T_EXPECT_EQ(corio_receiver_init(&rx, c->sv[0], c->br), 0);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, T_BOUND), -ECONNRESET);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, T_BOUND), -ECONNRESET);
    corio_receiver_fini(&rx);
    return 0;
}

/* Nothing comes before the deadline: -ETIMEDOUT; the receive stays armed, and data sent later
 * is received by the next call. */
static int rx_deadline_body(void *arg)
{
    struct rx_case *c = arg;
    struct corio_receiver rx;
    struct corio_buf b;
    T_EXPECT_EQ(corio_receiver_init(&rx, c->sv[0], c->br), 0);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, t0 + CORIO_MS(20)), -ETIMEDOUT);
    T_EXPECT(corio_now() - t0 >= CORIO_MS(19));
    /* A deadline already past: at once. */
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, corio_now() - 1), -ETIMEDOUT);
    T_EXPECT_EQ(send(c->sv[1], "later", 5, 0), 5);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, T_BOUND), 5);
    T_EXPECT_EQ(memcmp(b.data, "later", 5), 0);
    corio_buf_release(&b);
    corio_receiver_fini(&rx);
    T_EXPECT_EQ(corio_bufring_available(c->br), RX_COUNT);
    return 0;
}

/* Cancelled while parked in a receive: -ECANCELED; fini still works in a cancelled coroutine. */
static int rx_cancel_victim(void *arg)
{
    struct rx_case *c = arg;
    struct corio_receiver rx;
    struct corio_buf b;
    T_EXPECT_EQ(corio_receiver_init(&rx, c->sv[0], c->br), 0);
    c->result = (int)corio_receiver_next(&rx, &b, T_BOUND);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, T_BOUND), -ECANCELED); /* and stays cancelled */
    corio_receiver_fini(&rx);
    return 0;
}

static int rx_cancel_body(void *arg)
{
    struct rx_case *c = arg;
    T_EXPECT_EQ(corio_spawn(&c->victim, NULL, rx_cancel_victim, c), 0);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0);
    T_EXPECT_EQ(corio_cancel(c->victim), 0);
    T_EXPECT_EQ(corio_join(c->victim, NULL, T_BOUND), 0);
    T_EXPECT_EQ(c->result, -ECANCELED);
    T_EXPECT_EQ(corio_bufring_available(c->br), RX_COUNT);
    return 0;
}

/* fini with buffers queued in the receiver: they go back to the ring. */
static int rx_fini_queued_body(void *arg)
{
    struct rx_case *c = arg;
    struct corio_receiver rx;
    struct corio_buf b;
    char out[5 * RX_SIZE];
    t_fill(out, sizeof(out), 82, 0);
    T_EXPECT_EQ(send(c->sv[1], out, sizeof(out), 0), sizeof(out));
    T_EXPECT_EQ(corio_receiver_init(&rx, c->sv[0], c->br), 0);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, T_BOUND), RX_SIZE);
    T_EXPECT_EQ(t_check(b.data, b.len, 82, 0), -1);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0); /* the other four arrive */
    T_EXPECT_EQ(corio_bufring_available(c->br), RX_COUNT - 5);
    corio_buf_release(&b);
    corio_receiver_fini(&rx);
    T_EXPECT_EQ(corio_bufring_available(c->br), RX_COUNT);
    return 0;
}

/* Coroutines that return without corio_receiver_fini: one with its receive armed and buffers
 * queued, one armed after a timeout with nothing queued, one that got the end of the stream. The
 * engine cancels what is armed and gives the buffers back; the loop ends; nothing leaks. */
static int rx_orphan_queued(void *arg)
{
    struct rx_case *c = arg;
    struct corio_receiver rx;
    struct corio_buf b;
    char out[3 * RX_SIZE];
    t_fill(out, sizeof(out), 83, 0);
    T_EXPECT_EQ(send(c->sv[1], out, sizeof(out), 0), sizeof(out));
    T_EXPECT_EQ(corio_receiver_init(&rx, c->sv[0], c->br), 0);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, T_BOUND), RX_SIZE);
    corio_buf_release(&b);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(10)), 0); /* two more queue up */
    T_EXPECT_EQ(corio_bufring_available(c->br), RX_COUNT - 2);
    return 0; /* no fini */
}

static int rx_orphan_idle(void *arg)
{
    struct rx_case *c = arg;
    struct corio_receiver rx;
    struct corio_buf b;
    /* The other end of the pair: nothing is sent to it. */
    T_EXPECT_EQ(corio_receiver_init(&rx, c->sv[1], c->br), 0);
    T_EXPECT_EQ(corio_receiver_next(&rx, &b, corio_now() + CORIO_MS(5)), -ETIMEDOUT);
    return 0; /* no fini */
}

static void rx_case(corio_fn *body, bool reset)
{
    struct corio_loop *l = t_mkloop(NULL);
    t_need_or_free(l, CORIO_FEAT_RECV_MULTISHOT);
    struct rx_case c;
    memset(&c, 0, sizeof(c));
    c.br = t_bufring(l, RX_COUNT, RX_SIZE);
    assert_int_equal(t_tcp_pair(c.sv), 0);
    if (reset) {
        assert_int_equal(t_set_linger0(c.sv[1]), 0);
        close(c.sv[1]);
        c.sv[1] = -1;
    }
    assert_int_equal(t_run1(l, body, &c), 0);
    assert_int_equal(corio_bufring_available(c.br), RX_COUNT);
    close(c.sv[0]);
    if (c.sv[1] >= 0)
        close(c.sv[1]);
    corio_bufring_free(c.br);
    corio_loop_free(l);
    t_expect_ok();
}

static void test_buf_receiver_eof(void **state)
{
    (void)state;
    rx_case(rx_eof_body, false);
}

static void test_buf_receiver_reset(void **state)
{
    (void)state;
    rx_case(rx_reset_body, true);
}

static void test_buf_receiver_deadline(void **state)
{
    (void)state;
    rx_case(rx_deadline_body, false);
}

static void test_buf_receiver_cancel(void **state)
{
    (void)state;
    rx_case(rx_cancel_body, false);
}

static void test_buf_receiver_fini_returns_queued(void **state)
{
    (void)state;
    rx_case(rx_fini_queued_body, false);
}

static int rx_orphans_main(void *arg)
{
    struct rx_case *c = arg;
    T_EXPECT_EQ(corio_spawn(NULL, NULL, rx_orphan_queued, c), 0);
    T_EXPECT_EQ(corio_spawn(NULL, NULL, rx_orphan_idle, c), 0);
    return 0;
}

static void test_buf_receiver_owner_returns_armed(void **state)
{
    (void)state;
    rx_case(rx_orphans_main, false);
}

/* ---- registered buffers ---------------------------------------------------------------------- */

enum { RB_LEN = 8192 };

static int regbuf_body(void *arg)
{
    unsigned char **bufs = arg, *a = bufs[0], *b = bufs[1];
    int fd = t_tmpfile();
    if (!T_EXPECT(fd >= 0))
        return -1;
    struct iovec iov[2] = {{a, RB_LEN}, {b, RB_LEN}};
    T_EXPECT_EQ(corio_buffers_register(NULL, iov, 2), 0);
    T_EXPECT_EQ(corio_buffers_register(NULL, iov, 2), -EBUSY);
    t_fill(a, RB_LEN, 51, 0);
    memset(b, 0, RB_LEN); /* valgrind does not see the kernel's writes */
    T_EXPECT_EQ(corio_write_fixed(fd, a, RB_LEN, 0, 0, T_BOUND), RB_LEN);
    T_EXPECT_EQ(corio_read_fixed(fd, b, RB_LEN, 0, 1, T_BOUND), RB_LEN);
    T_EXPECT_EQ(t_check(b, RB_LEN, 51, 0), -1);
    /* A slice inside the buffer, at an offset. */
    memset(b, 0, RB_LEN);
    T_EXPECT_EQ(corio_read_fixed(fd, b + 100, 1000, 4000, 1, T_BOUND), 1000);
    T_EXPECT_EQ(t_check(b + 100, 1000, 51, 4000), -1);
    T_EXPECT_EQ(b[99], 0);
    T_EXPECT_EQ(b[1100], 0);
    /* Past the end of the file: 0. */
    T_EXPECT_EQ(corio_read_fixed(fd, b, RB_LEN, RB_LEN, 1, T_BOUND), 0);
    /* A range outside the buffer named by the index, and an index past the table. */
    T_EXPECT_EQ(corio_read_fixed(fd, a, RB_LEN, 0, 1, T_BOUND), -EFAULT);
    T_EXPECT_EQ(corio_read_fixed(fd, b + 1, RB_LEN, 0, 1, T_BOUND), -EFAULT);
    T_EXPECT_EQ(corio_write_fixed(fd, a, RB_LEN, 0, 2, T_BOUND), -EFAULT);
    T_EXPECT_EQ(corio_buffers_unregister(NULL), 0);
    T_EXPECT_EQ(corio_buffers_unregister(NULL), -EINVAL);
    T_EXPECT_EQ(corio_read_fixed(fd, b, RB_LEN, 0, 1, T_BOUND), -EFAULT);
    /* Registering again works once the first set is gone; the loop's end releases it. */
    T_EXPECT_EQ(corio_buffers_register(NULL, iov, 1), 0);
    memset(a, 0, RB_LEN);
    T_EXPECT_EQ(corio_read_fixed(fd, a, RB_LEN, 0, 0, T_BOUND), RB_LEN);
    T_EXPECT_EQ(t_check(a, RB_LEN, 51, 0), -1);
    T_EXPECT_EQ(corio_close(fd), 0);
    return 0;
}

static void test_buf_registered_buffers(void **state)
{
    (void)state;
    t_skip_on_epoll("registering buffers (epoll reads them as plain ones: test_epoll)");
    struct corio_loop *l = t_mkloop(NULL);
    if (!corio_loop_has(l, CORIO_FEAT_READ_FIXED) || !corio_loop_has(l, CORIO_FEAT_WRITE_FIXED)) {
        corio_loop_free(l);
        print_message("SKIP: the kernel lacks IORING_OP_READ_FIXED/WRITE_FIXED\n");
        skip();
    }
    /* Arguments checked before the kernel is asked, outside a coroutine too. */
    assert_int_equal(corio_buffers_register(l, NULL, 1), -EINVAL);
    assert_int_equal(corio_buffers_unregister(l), -EINVAL);
    unsigned char *bufs[2] = {aligned_alloc(4096, RB_LEN), aligned_alloc(4096, RB_LEN)};
    assert_non_null(bufs[0]);
    assert_non_null(bufs[1]);
    assert_int_equal(t_run1(l, regbuf_body, bufs), 0);
    /* Freed only after the loop: the last registration stays pinned until corio_loop_free. */
    corio_loop_free(l);
    free(bufs[0]);
    free(bufs[1]);
    t_expect_ok();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_GUARD_TEST(test_buf_bufring_exhaustion),
        T_GUARD_TEST(test_buf_bufring_shared),
        T_GUARD_TEST(test_buf_bufring_waiter_not_stranded),
        T_GUARD_TEST(test_buf_receiver_eof),
        T_GUARD_TEST(test_buf_receiver_reset),
        T_GUARD_TEST(test_buf_receiver_deadline),
        T_GUARD_TEST(test_buf_receiver_cancel),
        T_GUARD_TEST(test_buf_receiver_fini_returns_queued),
        T_GUARD_TEST(test_buf_receiver_owner_returns_armed),
        T_GUARD_TEST(test_buf_receiver_lagging_pauses),
        T_GUARD_TEST(test_buf_registered_buffers),
    };
    return T_RUN_TESTS(tests);
}
