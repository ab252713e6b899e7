/* The io_uring backend alone (ring.c, ring_setup.c, with the leaf base.c and the fault seam
 * compiled out): set-up, SQEs from struct corio__op, submission, waits, CQEs copied out, linked
 * timeouts, cancels, a full SQ, an overflowing CQ, and provided buffer rings. The test links no
 * other engine module (no loop, no coroutines): that the ring works without them is part of what
 * it checks. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ring.h"

static struct corio_stats stats;

/* A ring with the default options (256 SQEs), or the ones given, with the setup flags in @refuse
 * treated as refused. */
static struct corio__ring *mkring_refusing(const struct corio_loop_opts *o, uint64_t refuse)
{
    struct corio_loop_opts def = {.sq_entries = 256, .cq_entries = 1024};
    struct corio__ring *r = NULL;
    int err = corio__ring_new(&r, o ? o : &def, &stats, refuse);
    if (err)
        fail_msg("corio__ring_new: %s", strerror(-err));
    return r;
}

static struct corio__ring *mkring(const struct corio_loop_opts *o)
{
    return mkring_refusing(o, 0);
}

/* Reaps until @n CQEs are in @out, waiting for them (at most 5 s in all). Returns how many. */
static unsigned reap_n(struct corio__ring *r, struct corio__cqe *out, unsigned n)
{
    unsigned got = 0;
    for (int tries = 0; got < n && tries < 500; tries++) {
        got += corio__ring_reap(r, out + got, n - got);
        if (got < n)
            assert_int_equal(corio__ring_enter(r, true, CORIO_MS(10), 1, 0), 0);
    }
    return got;
}

static void test_ring_setup_features(void **state)
{
    (void)state;
    struct corio__ring *r = mkring(NULL);
    /* This kernel (5.19+ for everything corio uses) grants these; older ones fall back. */
    uint64_t setup = corio__ring_setup_feats(r), ops = corio__ring_probe_ops(r);
    assert_true(setup & (1ull << CORIO_FEAT_SUBMIT_ALL));
    assert_true(ops & (1ull << CORIO_FEAT_NOP));
    assert_true(ops & (1ull << CORIO_FEAT_READ));
    assert_true(corio__ring_kernel_feats(r) & (1ull << CORIO_FEAT_NODROP));
    corio__ring_free(r);
    /* A refused flag is dropped, and the ring still comes up. */
    struct corio_loop_opts o = {.sq_entries = 8};
    r = mkring_refusing(&o, 1ull << CORIO_FEAT_DEFER_TASKRUN);
    assert_false(corio__ring_setup_feats(r) & (1ull << CORIO_FEAT_DEFER_TASKRUN));
    corio__ring_free(r);
}

static void test_ring_nop_roundtrip(void **state)
{
    (void)state;
    struct corio__ring *r = mkring(NULL);
    const struct corio__ring_view *v = corio__ring_view(r);
    const struct corio__op op = {.opcode = CORIO__OP_NOP};
    uint64_t enters0 = stats.enters;
    for (uint64_t i = 1; i <= 8; i++)
        corio__ring_prep(r, &op, i * 8, NULL, 0);
    assert_int_equal(corio__ring_unsubmitted(r), 8);
    assert_false(corio__ring_quiet(v));
    /* Eight SQEs, one system call. */
    assert_int_equal(corio__ring_enter(r, true, -1, 1, 0), 0);
    assert_int_equal(stats.enters - enters0, 1);
    struct corio__cqe c[8];
    assert_int_equal(reap_n(r, c, 8), 8);
    for (unsigned i = 0; i < 8; i++) {
        assert_int_equal(c[i].user_data, (i + 1) * 8);
        assert_int_equal(c[i].res, 0);
    }
    assert_false(corio__ring_has_cqes(v));
    assert_int_equal(corio__ring_unsubmitted(r), 0);
    corio__ring_free(r);
}

static void test_ring_read_pipe(void **state)
{
    (void)state;
    struct corio__ring *r = mkring(NULL);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], "hello", 5), 5);
    char buf[16] = {0};
    const struct corio__op op = {
        .opcode = CORIO__OP_READ, .fd = p[0], .addr = buf, .len = sizeof(buf), .off = -1ull};
    corio__ring_prep(r, &op, 0x100, NULL, 0);
    struct corio__cqe c;
    assert_int_equal(reap_n(r, &c, 1), 1);
    assert_int_equal(c.user_data, 0x100);
    assert_int_equal(c.res, 5);
    assert_memory_equal(buf, "hello", 5);
    close(p[0]);
    close(p[1]);
    corio__ring_free(r);
}

/* An op with a deadline: the linked timeout fires (-ETIME) and the op ends -ECANCELED. */
static void test_ring_linked_timeout(void **state)
{
    (void)state;
    struct corio__ring *r = mkring(NULL);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    char buf[4];
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct corio__ts dl = {.sec = now.tv_sec, .nsec = now.tv_nsec + 20000000};
    if (dl.nsec >= 1000000000) {
        dl.sec++;
        dl.nsec -= 1000000000;
    }
    const struct corio__op op = {
        .opcode = CORIO__OP_READ, .fd = p[0], .addr = buf, .len = sizeof(buf), .off = -1ull};
    corio__ring_prep(r, &op, 0x200, &dl, 0x201);
    struct corio__cqe c[2];
    assert_int_equal(reap_n(r, c, 2), 2);
    for (int i = 0; i < 2; i++) {
        if (c[i].user_data == 0x200)
            assert_int_equal(c[i].res, -ECANCELED);
        else if (c[i].user_data == 0x201)
            assert_int_equal(c[i].res, -ETIME);
        else
            fail_msg("unexpected user_data %llx", (unsigned long long)c[i].user_data);
    }
    close(p[0]);
    close(p[1]);
    corio__ring_free(r);
}

/* A cancel ends a pending read with -ECANCELED; its own CQE, if posted, carries its user_data. */
static void test_ring_cancel(void **state)
{
    (void)state;
    struct corio__ring *r = mkring(NULL);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    char buf[4];
    const struct corio__op op = {
        .opcode = CORIO__OP_READ, .fd = p[0], .addr = buf, .len = sizeof(buf), .off = -1ull};
    corio__ring_prep(r, &op, 0x300, NULL, 0);
    assert_int_equal(corio__ring_enter(r, false, 0, 0, 0), 0);
    corio__ring_cancel(r, 0x300, 0x308);
    struct corio__cqe c[2];
    unsigned n = reap_n(r, c, 1);
    assert_int_equal(n, 1);
    n += corio__ring_reap(r, c + 1, 1); /* the cancel's own, unless the kernel skipped it */
    bool seen = false;
    for (unsigned i = 0; i < n; i++) {
        if (c[i].user_data == 0x300) {
            assert_int_equal(c[i].res, -ECANCELED);
            seen = true;
        } else {
            assert_int_equal(c[i].user_data, 0x308);
            assert_int_equal(c[i].res, 0);
        }
    }
    assert_true(seen);
    close(p[0]);
    close(p[1]);
    corio__ring_free(r);
}

/* More SQEs than the SQ holds: a full SQ is flushed to make room, nothing is lost; a CQ smaller
 * than what completes overflows into the kernel's list (NODROP) and every CQE still comes out. */
static void test_ring_full_sq_and_cq(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.sq_entries = 4, .cq_entries = 8};
    struct corio__ring *r = mkring(&o);
    const struct corio__op op = {.opcode = CORIO__OP_NOP};
    uint64_t overflows0 = stats.cq_overflows;
    enum { N = 100 };
    for (uint64_t i = 1; i <= N; i++)
        corio__ring_prep(r, &op, i * 8, NULL, 0);
    static struct corio__cqe c[N];
    assert_int_equal(reap_n(r, c, N), N);
    uint8_t seen[N + 1] = {0};
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(c[i].res, 0);
        uint64_t k = c[i].user_data / 8;
        assert_true(k >= 1 && k <= N && !seen[k]);
        seen[k] = 1;
    }
    /* The CQ did overflow: this tested the kernel's overflow list, not only a full SQ. */
    assert_true(stats.cq_overflows > overflows0);
    corio__ring_free(r);
}

/* A timed wait with nothing in flight returns after its timeout, with no CQE. */
static void test_ring_timed_wait(void **state)
{
    (void)state;
    struct corio__ring *r = mkring(NULL);
    if (!(corio__ring_kernel_feats(r) & (1ull << CORIO_FEAT_EXT_ARG))) {
        corio__ring_free(r);
        print_message("SKIP: no IORING_FEAT_EXT_ARG (Linux 5.11): timed waits take a timeout op\n");
        skip();
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(corio__ring_enter(r, true, CORIO_MS(20), 1, 0), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    int64_t ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_true(ms >= 19 && ms < 2000);
    struct corio__cqe c;
    assert_int_equal(corio__ring_reap(r, &c, 1), 0);
    corio__ring_free(r);
}

/* A provided buffer ring: registered, handed buffers, refused when malformed. */
static void test_ring_pbuf(void **state)
{
    (void)state;
    struct corio__ring *r = mkring(NULL);
    struct corio__pbuf *p;
    assert_int_equal(corio__ring_pbuf_new(r, 7, 3, &p), -EINVAL); /* not a power of two */
    assert_int_equal(corio__ring_pbuf_new(r, 7, 0, &p), -EINVAL);
    int err = corio__ring_pbuf_new(r, 7, 8, &p);
    if (err == -EINVAL || err == -EOPNOTSUPP) {
        corio__ring_free(r);
        print_message("SKIP: no provided buffer rings (Linux 5.19)\n");
        skip();
    }
    assert_int_equal(err, 0);
    struct corio__pbuf *dup;
    assert_int_equal(corio__ring_pbuf_new(r, 7, 8, &dup), -EEXIST); /* group 7 is taken */
    static char mem[8][64];
    for (unsigned i = 0; i < 8; i++)
        corio__pbuf_put(p, mem[i], sizeof(mem[i]), (uint16_t)i);
    corio__ring_pbuf_free(r, 7, p);
    corio__ring_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_setup_features), cmocka_unit_test(test_ring_nop_roundtrip),
        cmocka_unit_test(test_ring_read_pipe),      cmocka_unit_test(test_ring_linked_timeout),
        cmocka_unit_test(test_ring_cancel),         cmocka_unit_test(test_ring_full_sq_and_cq),
        cmocka_unit_test(test_ring_timed_wait),     cmocka_unit_test(test_ring_pbuf),
    };
    /* io_uring refused here (a kernel without it, a sysctl, a seccomp filter): not run. */
    struct corio__ring *r;
    struct corio_loop_opts o = {.sq_entries = 8};
    int err = corio__ring_new(&r, &o, &stats, 0);
    if (err == -ENOSYS || err == -EPERM) {
        fprintf(stderr, "io_uring unavailable (%s): test_ring not run\n", strerror(-err));
        return 77;
    }
    if (err == 0)
        corio__ring_free(r);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
