/* The context switch's ABI: what the System V x86-64 ABI makes callee-saved survives
 * every way a coroutine can be switched out and back in.
 *
 * - rbx, rbp, r12-r15: an assembly probe (t_abi_probe below) loads them with values derived from
 *   a per-coroutine, per-iteration seed, calls a function that switches, and reports which of
 *   them came back changed. rbp is set only inside the probe, so the compiler's use of it as a
 *   frame pointer does not matter. Two levels:
 *   - raw: the probe calls the switch primitive itself between two contexts made with
 *     corio__ctx_make, 1,000,000 switches a test: corio__ctx_switch both ways, then
 *     corio__ctx_switch one way and the scheduler's inline corio__ctx_resume (through a one-line
 *     wrapper) the other. Nothing stands between the probe and corio__ctx_switch, so a register
 *     it fails to save or restore always shows. The context that corio__ctx_resume resumes (a
 *     coroutine, in the loop) is checked for all six registers too; the one it saves is checked
 *     only for those its wrapper's prologue does not save itself (rbp as the frame pointer, and
 *     at -O0 whatever registers the compiler gives the asm's inputs, rbx and r12 with gcc).
 *   - coroutines: the probe calls C code that suspends through the engine (yield, I/O, ...).
 *     This checks the whole path, sanitizer hooks included, but a C frame between the probe and
 *     the switch that saves a register in its prologue restores it in its epilogue and so hides
 *     a switch that lost it (do_switch saves rbx in Debug builds; every frame saves rbp): the
 *     raw tests are the ones that pin the switch down.
 * - MXCSR (rounding, FTZ, DAZ) and the x87 control word (rounding, precision): each coroutine sets
 *   its own and checks them after every resumption. test_coro.c does 10,000 yields with two
 *   coroutines; here several coroutines do 1,000,000 resumptions in all.
 * - the x87 register stack is empty after every switch, and long double arithmetic carried across
 *   switches gives the same bits as without them.
 * - the stack is 16-byte aligned at every call, after resumption through both switch paths: the
 *   scheduler's inline corio__ctx_resume (after a yield, an I/O op, a timer, a channel hand-off, an
 *   event, a join) and corio__ctx_switch between coroutines (generators); and at the first entry
 *   of coroutines started by each route (spawn, group spawn, a generator's first send).
 *   test_coro.c checks entry through corio_spawn only.
 *
 * Valgrind emulates only the rounding fields of MXCSR and of the x87 control word, and keeps x87
 * values in 64-bit doubles: under it the FTZ/DAZ and precision-control settings are left out (the
 * test says so), the rest runs as is. Other architectures: every test skips, with the reason. */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "ctx.h"  /* white box: the switch primitives themselves, for the raw tests */
#include "loop.h" /* white box: the loop's switch counter */

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define T_HAVE_VALGRIND 1
#endif
#endif

/* The deadline of the test coroutines' waits: longer than helpers.h's T_BOUND. */
#define ABI_BOUND T_DL(30000)

#if defined(__x86_64__)

/* ---- the probes ------------------------------------------------------------------------------ */

/* uint32_t t_abi_probe(uint64_t seed, void (*fn)(void *, void *), void *a, void *b)
 * Saves the caller's callee-saved registers, loads rbx, rbp, r12, r13, r14, r15 with seed + 1 ..
 * seed + 6, calls fn(a, b) with the stack 16-byte aligned (if the probe was entered as the ABI
 * says), and compares them afterwards. Returns a mask: bits 0-5 for the registers in that order
 * that changed, bit 6 if the probe was entered with a misaligned stack (rsp + 8 not a multiple of
 * 16). Restores the caller's registers. */
#define PROBE_MISALIGNED 0x40u
__asm__(".text\n"
        ".globl t_abi_probe\n"
        ".hidden t_abi_probe\n"
        ".type t_abi_probe, @function\n"
        ".p2align 4\n"
        "t_abi_probe:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    pushq %rdi\n" /* the seed, at 16(%rsp) below */
        "    xorl %eax, %eax\n"
        /* Seven pushes after the return address: rsp is 16-aligned iff it was 8 mod 16 at entry. */
        "    testq $15, %rsp\n"
        "    jz 1f\n"
        "    movl $0x40, %eax\n"
        "1:\n"
        "    pushq %rax\n"
        "    pushq %rax\n" /* the misalignment bit at 0(%rsp); 16 bytes keep the alignment */
        "    leaq 1(%rdi), %rbx\n"
        "    leaq 2(%rdi), %rbp\n"
        "    leaq 3(%rdi), %r12\n"
        "    leaq 4(%rdi), %r13\n"
        "    leaq 5(%rdi), %r14\n"
        "    leaq 6(%rdi), %r15\n"
        "    movq %rsi, %rax\n"
        "    movq %rdx, %rdi\n"
        "    movq %rcx, %rsi\n"
        "    callq *%rax\n"
        "    movq 16(%rsp), %rdi\n"
        "    movq 0(%rsp), %rax\n"
        "    leaq 1(%rdi), %rcx\n"
        "    cmpq %rcx, %rbx\n"
        "    je 2f\n"
        "    orl $1, %eax\n"
        "2:  leaq 2(%rdi), %rcx\n"
        "    cmpq %rcx, %rbp\n"
        "    je 3f\n"
        "    orl $2, %eax\n"
        "3:  leaq 3(%rdi), %rcx\n"
        "    cmpq %rcx, %r12\n"
        "    je 4f\n"
        "    orl $4, %eax\n"
        "4:  leaq 4(%rdi), %rcx\n"
        "    cmpq %rcx, %r13\n"
        "    je 5f\n"
        "    orl $8, %eax\n"
        "5:  leaq 5(%rdi), %rcx\n"
        "    cmpq %rcx, %r14\n"
        "    je 6f\n"
        "    orl $16, %eax\n"
        "6:  leaq 6(%rdi), %rcx\n"
        "    cmpq %rcx, %r15\n"
        "    je 7f\n"
        "    orl $32, %eax\n"
        "7:  addq $24, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size t_abi_probe, .-t_abi_probe\n");
typedef void probe_fn(void *a, void *b);
uint32_t t_abi_probe(uint64_t seed, probe_fn *fn, void *a, void *b);

/* unsigned t_rsp_misaligned(void): (rsp + 8) mod 16 at its entry; 0 when called as the ABI says. */
__asm__(".text\n"
        ".globl t_rsp_misaligned\n"
        ".hidden t_rsp_misaligned\n"
        ".type t_rsp_misaligned, @function\n"
        ".p2align 4\n"
        "t_rsp_misaligned:\n"
        "    leaq 8(%rsp), %rax\n"
        "    andl $15, %eax\n"
        "    ret\n"
        ".size t_rsp_misaligned, .-t_rsp_misaligned\n");
unsigned t_rsp_misaligned(void);

/* Two functions that break the ABI on purpose, for the probe's self-check: one clobbers r13,
 * the other rbx and r15, without restoring them. */
__asm__(".text\n"
        ".globl t_clobber_r13\n"
        ".hidden t_clobber_r13\n"
        ".type t_clobber_r13, @function\n"
        "t_clobber_r13:\n"
        "    xorl %r13d, %r13d\n"
        "    ret\n"
        ".size t_clobber_r13, .-t_clobber_r13\n"
        ".globl t_clobber_rbx_r15\n"
        ".hidden t_clobber_rbx_r15\n"
        ".type t_clobber_rbx_r15, @function\n"
        "t_clobber_rbx_r15:\n"
        "    notq %rbx\n"
        "    notq %r15\n"
        "    ret\n"
        ".size t_clobber_rbx_r15, .-t_clobber_rbx_r15\n");
void t_clobber_r13(void *a, void *b);
void t_clobber_rbx_r15(void *a, void *b);

static void nothing(void *a, void *b)
{
    (void)a;
    (void)b;
}

static const char *const reg_names[] = {"rbx", "rbp", "r12", "r13", "r14", "r15", "alignment"};

/* ---- floating-point control state ------------------------------------------------------------ */

#define MXCSR_CONTROL 0xffc0u /* DAZ, exception masks, rounding, FTZ: not the sticky flags */
#define MX_RC_DOWN 0x2000u
#define MX_RC_UP 0x4000u
#define MX_RC_ZERO 0x6000u
#define MX_RC_MASK 0x6000u
#define MX_FTZ 0x8000u
#define MX_DAZ 0x0040u
#define CW_RC_MASK 0x0c00u
#define CW_RC_DOWN 0x0400u
#define CW_RC_UP 0x0800u
#define CW_RC_ZERO 0x0c00u
#define CW_PC_MASK 0x0300u
#define CW_PC_SINGLE 0x0000u
#define CW_PC_DOUBLE 0x0200u
#define CW_PC_EXTENDED 0x0300u

/* The x87 tag word: 0xffff when all eight registers are empty. Not inlined: the ABI wants the x87
 * stack empty at a call, while between calls the compiler may keep long doubles on it. fnstenv
 * masks the exceptions as a side effect, so the control word is put back. */
static __attribute__((noinline)) uint16_t x87_tags(void)
{
    unsigned char env[28];
    uint16_t cw = t_get_fpcw();
    __asm__ volatile("fnstenv %0" : "=m"(env));
    t_set_fpcw(cw);
    uint16_t tags;
    memcpy(&tags, env + 8, sizeof(tags));
    return tags;
}

/* A mode per coroutine: rounding differs between all of them, and (outside valgrind) FTZ, DAZ and
 * the x87 precision control too. */
struct fp_mode {
    uint32_t mxcsr;
    uint16_t fpcw;
};

static bool fp_full(void)
{
    return !t_on_valgrind();
}

static struct fp_mode fp_mode_for(int k)
{
    static const uint32_t mx_rc[] = {0, MX_RC_DOWN, MX_RC_UP, MX_RC_ZERO};
    static const uint32_t mx_extra[] = {MX_FTZ | MX_DAZ, 0, MX_FTZ, MX_DAZ};
    static const uint16_t cw_rc[] = {CW_RC_DOWN, CW_RC_UP, CW_RC_ZERO, 0};
    static const uint16_t cw_pc[] = {CW_PC_SINGLE, CW_PC_DOUBLE, CW_PC_EXTENDED, CW_PC_DOUBLE};
    uint32_t mx0 = t_get_mxcsr() & MXCSR_CONTROL;
    uint16_t cw0 = t_get_fpcw();
    struct fp_mode m;
    m.mxcsr =
        (mx0 & ~(MX_RC_MASK | MX_FTZ | MX_DAZ)) | mx_rc[k & 3] | (fp_full() ? mx_extra[k & 3] : 0);
    m.fpcw = (uint16_t)((cw0 & ~CW_RC_MASK) | cw_rc[k & 3]);
    if (fp_full())
        m.fpcw = (uint16_t)((m.fpcw & ~CW_PC_MASK) | cw_pc[k & 3]);
    return m;
}

/* Empties the x87 stack after a failed check, at a call boundary (see x87_tags). */
static __attribute__((noinline)) void x87_reset(const struct fp_mode *m)
{
    __asm__ volatile("fninit" ::: "memory");
    t_set_fpcw(m->fpcw);
}

static void fp_enter(const struct fp_mode *m)
{
    t_set_mxcsr(m->mxcsr);
    t_set_fpcw(m->fpcw);
}

/* ---- what a coroutine checks after each resumption ------------------------------------------- */

/* Counts of failures by kind, per coroutine; the test asserts each is zero and names the first. */
struct abi_tally {
    long iters;
    long reg_bad[7];
    long mxcsr_bad, fpcw_bad, x87_bad, align_bad, ldbl_bad;
    uint32_t first_mask;
    uint32_t bad_mxcsr;
    uint16_t bad_fpcw, bad_tags;
};

static __attribute__((noinline)) unsigned align_check(void)
{
    _Alignas(16) volatile char x[16];
    x[0] = 1;
    unsigned bad = (uintptr_t)&x[0] % 16 != 0;
    bad |= (uintptr_t)__builtin_frame_address(0) % 16 != 0;
    bad |= t_rsp_misaligned() != 0;
    return bad;
}

static void tally_mask(struct abi_tally *t, uint32_t mask)
{
    if (mask && !t->first_mask)
        t->first_mask = mask;
    for (int b = 0; b < 7; b++)
        if (mask & (1u << b))
            t->reg_bad[b]++;
}

static void tally_fp(struct abi_tally *t, const struct fp_mode *m)
{
    uint32_t mx = t_get_mxcsr() & MXCSR_CONTROL;
    uint16_t cw = t_get_fpcw();
    if (mx != m->mxcsr) {
        if (!t->mxcsr_bad++)
            t->bad_mxcsr = mx;
        t_set_mxcsr(m->mxcsr); /* count each loss once, not every iteration after it */
    }
    if (cw != m->fpcw) {
        if (!t->fpcw_bad++)
            t->bad_fpcw = cw;
        t_set_fpcw(m->fpcw);
    }
    uint16_t tags = x87_tags();
    if (tags != 0xffff) {
        if (!t->x87_bad++)
            t->bad_tags = tags;
        x87_reset(m);
    }
}

static bool tally_clean(const struct abi_tally *t, const char *who)
{
    bool ok = true;
    for (int b = 0; b < 7; b++)
        if (t->reg_bad[b]) {
            print_message("%s: %s changed across a switch %ld times (first mask 0x%x)\n", who,
                          reg_names[b], t->reg_bad[b], t->first_mask);
            ok = false;
        }
    if (t->mxcsr_bad) {
        print_message("%s: MXCSR lost %ld times (first seen 0x%x)\n", who, t->mxcsr_bad,
                      t->bad_mxcsr);
        ok = false;
    }
    if (t->fpcw_bad) {
        print_message("%s: x87 control word lost %ld times (first seen 0x%x)\n", who, t->fpcw_bad,
                      t->bad_fpcw);
        ok = false;
    }
    if (t->x87_bad) {
        print_message("%s: x87 stack not empty after a switch %ld times (tags 0x%x)\n", who,
                      t->x87_bad, t->bad_tags);
        ok = false;
    }
    if (t->align_bad) {
        print_message("%s: stack misaligned at a call after resumption %ld times\n", who,
                      t->align_bad);
        ok = false;
    }
    if (t->ldbl_bad) {
        print_message("%s: long double result changed by switches %ld times\n", who, t->ldbl_bad);
        ok = false;
    }
    return ok;
}

static uint64_t seed_of(int who, long iter)
{
    return ((uint64_t)(who + 1) << 56) ^ ((uint64_t)iter * 0x9e3779b97f4a7c15ull);
}

/* The probe finds what it is meant to find: a callee that breaks the ABI shows in the mask, one
 * that keeps it does not. Run outside any coroutine. */
static void test_ctx_abi_probe_self_check(void **state)
{
    (void)state;
    assert_int_equal(t_abi_probe(seed_of(0, 1), nothing, NULL, NULL), 0);
    assert_int_equal(t_abi_probe(seed_of(0, 2), t_clobber_r13, NULL, NULL), 1u << 3);
    assert_int_equal(t_abi_probe(seed_of(0, 3), t_clobber_rbx_r15, NULL, NULL),
                     (1u << 0) | (1u << 5));
    assert_int_equal(t_rsp_misaligned(), 0);
    assert_int_equal(align_check(), 0);
    assert_int_equal(x87_tags(), 0xffff);
}

/* ---- raw contexts: the probe calls the switch primitive directly ----------------------------- */

#define RAW_STACK (128 * 1024)

struct raw_side {
    struct corio__ctx ctx;
    struct raw_side *peer;
    probe_fn *leave; /* how this side switches to its peer */
    struct fp_mode mode;
    struct abi_tally t;
    int who;
    long iters;
    void *map;
    unsigned vg_id;
};

static struct corio__ctx raw_main;

/* The scheduler's side of a switch, as the loop inlines it. */
static void raw_resume(void *from, void *to)
{
    corio__ctx_resume(from, to);
}

static void raw_entry(void *arg)
{
    struct raw_side *me = arg;
    fp_enter(&me->mode);
    me->t.align_bad += align_check(); /* the first entry */
    for (long i = 0; i < me->iters; i++) {
        tally_mask(&me->t, t_abi_probe(seed_of(me->who, i), me->leave, &me->ctx, &me->peer->ctx));
        tally_fp(&me->t, &me->mode);
        me->t.align_bad += align_check();
        me->t.iters++;
    }
    /* Returning ends in corio__ctx_start, which resumes raw_main. */
}

static void raw_side_init(struct raw_side *s, int who, struct raw_side *peer, probe_fn *leave,
                          long iters)
{
    memset(s, 0, sizeof(*s));
    s->who = who;
    s->peer = peer;
    s->leave = leave;
    s->iters = iters;
    s->mode = fp_mode_for(who);
    s->map = mmap(NULL, RAW_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(s->map != MAP_FAILED);
#ifdef T_HAVE_VALGRIND
    s->vg_id = VALGRIND_STACK_REGISTER(s->map, (char *)s->map + RAW_STACK);
#endif
    corio__ctx_make(&s->ctx, s->map, (char *)s->map + RAW_STACK, raw_entry, s, &raw_main);
}

static void raw_side_fini(struct raw_side *s)
{
#ifdef T_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    munmap(s->map, RAW_STACK);
}

/* Two contexts switch to each other @iters times each: A leaves by @a_leave, B by @b_leave. */
static void run_raw(probe_fn *a_leave, probe_fn *b_leave, const char *what)
{
    long iters = 500000;
    struct raw_side a, b;
    raw_side_init(&a, 0, &b, a_leave, iters);
    raw_side_init(&b, 1, &a, b_leave, iters);
    uint32_t mx0 = t_get_mxcsr();
    uint16_t cw0 = t_get_fpcw();
    int64_t t0 = corio_now();
    corio__ctx_switch(&raw_main, &a.ctx); /* back when A's entry returns */
    double ms = t_ms_since(t0);
    print_message("%s: %ld switches in %.0f ms\n", what, a.t.iters + b.t.iters + 1, ms);
    raw_side_fini(&a);
    raw_side_fini(&b);
    /* A finished its loop; B is left in its last switch (it is never resumed). */
    assert_int_equal(a.t.iters, iters);
    assert_int_equal(b.t.iters, iters - 1);
    bool ok = tally_clean(&a.t, "context A");
    ok &= tally_clean(&b.t, "context B");
    assert_true(ok);
    assert_int_equal(t_get_mxcsr() & MXCSR_CONTROL, mx0 & MXCSR_CONTROL);
    assert_int_equal(t_get_fpcw(), cw0);
}

#define CTX_SWITCH ((probe_fn *)(void (*)(void))corio__ctx_switch)

/* corio__ctx_switch both ways: the path between coroutines (generators), and the save and restore
 * halves of every coroutine's switch to the scheduler. */
static void test_ctx_abi_raw_switch(void **state)
{
    (void)state;
    run_raw(CTX_SWITCH, CTX_SWITCH, "corio__ctx_switch <-> corio__ctx_switch");
}

/* One side leaves by corio__ctx_switch (as a coroutine does), the other by corio__ctx_resume (as
 * the scheduler does): each resumes a frame the other kind pushed. */
static void test_ctx_abi_raw_resume(void **state)
{
    (void)state;
    run_raw(CTX_SWITCH, raw_resume, "corio__ctx_switch <-> corio__ctx_resume");
}

/* ---- a million switches ---------------------------------------------------------------------- */

struct spinner {
    int who;
    long iters;
    struct fp_mode mode;
    struct abi_tally t;
};

/* Called by the probe with the registers loaded: one switch out and back in. Every 128th goes
 * through the ring (an I/O op) instead of the run queue; both resume through corio__ctx_resume. */
static void spin_step(void *arg, void *unused)
{
    (void)unused;
    struct spinner *s = arg;
    int r = (s->t.iters & 127) == 127 ? corio_nop() : corio_yield();
    if (r != 0)
        T_EXPECT_EQ(r, 0);
    s->t.align_bad += align_check();
}

static int spinner_body(void *arg)
{
    struct spinner *s = arg;
    fp_enter(&s->mode);
    for (long i = 0; i < s->iters; i++) {
        uint32_t mask = t_abi_probe(seed_of(s->who, i), spin_step, s, NULL);
        tally_mask(&s->t, mask);
        tally_fp(&s->t, &s->mode);
        s->t.iters++;
    }
    return 0;
}

static void test_ctx_abi_million_switches(void **state)
{
    struct corio_loop *l = *state;
    enum { N = 4 };
    /* 1,000,000 resumptions in all, each one a switch out and a switch back in. */
    long total = 1000000;
    if (t_on_valgrind())
        print_message("valgrind: rounding modes only (it emulates neither FTZ/DAZ nor the x87 "
                      "precision control)\n");
    struct spinner s[N];
    memset(s, 0, sizeof(s));
    uint32_t mx0 = t_get_mxcsr();
    uint16_t cw0 = t_get_fpcw();
    for (int k = 0; k < N; k++) {
        s[k].who = k;
        s[k].iters = total / N;
        s[k].mode = fp_mode_for(k);
        assert_int_equal(corio_spawn(NULL, l, spinner_body, &s[k]), 0);
    }
    uint64_t sw0 = corio_loop_stats(l)->switches;
    int64_t t0 = corio_now();
    assert_int_equal(corio_loop_run(l), 0);
    double ms = t_ms_since(t0);
    t_expect_ok();
    uint64_t switches = corio_loop_stats(l)->switches - sw0;
    print_message("%ld resumptions, %llu switches in %.0f ms\n", total,
                  (unsigned long long)switches, ms);
    bool ok = true;
    for (int k = 0; k < N; k++) {
        char who[32];
        snprintf(who, sizeof(who), "coroutine %d", k);
        assert_int_equal(s[k].t.iters, total / N);
        ok &= tally_clean(&s[k].t, who);
    }
    assert_true(ok);
    assert_true(switches >= 2 * (uint64_t)total);
    /* The scheduler's own state came back untouched. */
    assert_int_equal(t_get_mxcsr() & MXCSR_CONTROL, mx0 & MXCSR_CONTROL);
    assert_int_equal(t_get_fpcw(), cw0);
}

/* ---- every resumption path ------------------------------------------------------------------- */

enum path {
    P_YIELD, /* run queue */
    P_NOP,   /* an I/O op's CQE */
    P_SLEEP, /* a timeout op's CQE */
    P_EVENT, /* woken by another coroutine (wait queue) */
    P_CHAN,  /* an unbuffered channel's hand-off, both directions */
    P_JOIN,  /* the end of another coroutine */
    P_GEN,   /* a generator and its driver: direct corio__ctx_switch both ways */
    P_COUNT
};
static const char *const path_names[] = {"yield",   "nop",  "sleep",    "event",
                                         "channel", "join", "generator"};

struct walker {
    int who;
    enum path path;
    long iters;
    struct fp_mode mode;
    struct abi_tally t;
    /* the partner of channel, event and join paths, and the generator */
    struct corio_chan *ch;
    struct corio_gen *gen;
    bool sender;
    long suspended; /* steps in which it really was switched out and back in */
};

static int ender_body(void *arg)
{
    (void)arg;
    return 7;
}

static int setter_body(void *arg)
{
    corio_event_set(arg);
    return 0;
}

static void walk_step(void *arg, void *unused)
{
    (void)unused;
    struct walker *w = arg;
    long i = w->t.iters;
    int r = 0;
    const struct corio_stats *st = corio_loop_stats(corio_loop_current());
    uint64_t sw0 = st->switches;
    switch (w->path) {
    case P_YIELD:
        r = corio_yield();
        break;
    case P_NOP:
        r = corio_nop();
        break;
    case P_SLEEP:
        r = corio_sleep(corio_now() + CORIO_US(20));
        break;
    case P_EVENT: {
        /* A fresh event that a child sets: the wait parks, the child's set wakes it. */
        struct corio_event ev = CORIO_EVENT_INIT;
        corio_id c;
        r = corio_spawn(&c, NULL, setter_body, &ev);
        r |= corio_event_wait(&ev, ABI_BOUND);
        r |= corio_join(c, NULL, ABI_BOUND); /* it has ended: no wait */
        break;
    }
    case P_CHAN: {
        long v = i;
        if (w->sender) {
            r = corio_chan_send(w->ch, &v, ABI_BOUND);
        } else {
            long got = -1;
            r = corio_chan_recv(w->ch, &got, ABI_BOUND) == 1 && got == i ? 0 : -1;
        }
        break;
    }
    case P_JOIN: {
        corio_id c;
        int res = 0;
        r = corio_spawn(&c, NULL, ender_body, NULL);
        r |= corio_join(c, &res, ABI_BOUND);
        r |= res != 7;
        break;
    }
    case P_GEN: {
        void *out = NULL;
        r = corio_gen_send(w->gen, (void *)(intptr_t)i, &out, CORIO_FOREVER) == 1 && out == (void *)(intptr_t)i
                ? 0
                : -1;
        break;
    }
    default:
        break;
    }
    if (r != 0)
        T_EXPECT_EQ(r, 0);
    if (st->switches - sw0 >= 2)
        w->suspended++;
    w->t.align_bad += align_check();
}

static int walker_body(void *arg)
{
    struct walker *w = arg;
    fp_enter(&w->mode);
    w->t.align_bad += align_check(); /* the entry */
    for (long i = 0; i < w->iters; i++) {
        tally_mask(&w->t, t_abi_probe(seed_of(w->who, i), walk_step, w, NULL));
        tally_fp(&w->t, &w->mode);
        w->t.iters++;
    }
    return 0;
}

/* The generator's side: resumed by its driver's send, through corio__ctx_switch. */
struct gen_side {
    struct walker *w; /* its own tally and mode */
    void *in;
};

static void gen_step(void *arg, void *unused)
{
    (void)unused;
    struct gen_side *gs = arg;
    struct walker *w = gs->w;
    void *in = NULL;
    const struct corio_stats *st = corio_loop_stats(corio_loop_current());
    uint64_t sw0 = st->switches;
    if (corio_gen_yield(w->gen, gs->in, &in) != 0)
        T_EXPECT(!"generator yield failed");
    if (st->switches - sw0 >= 2)
        w->suspended++;
    gs->in = in;
    w->t.align_bad += align_check();
}

static int gen_body(struct corio_gen *g, void *arg, void *in)
{
    (void)g;
    struct walker *w = arg;
    fp_enter(&w->mode);
    w->t.align_bad += align_check(); /* a generator's first entry */
    struct gen_side gs = {.w = w, .in = in};
    for (long i = 0; i < w->iters; i++) {
        tally_mask(&w->t, t_abi_probe(seed_of(w->who, i), gen_step, &gs, NULL));
        tally_fp(&w->t, &w->mode);
        w->t.iters++;
    }
    return 0;
}

struct gen_driver {
    struct walker *drv, *gen_w;
};

static int gen_driver_body(void *arg)
{
    struct gen_driver *d = arg;
    struct corio_gen g;
    T_EXPECT_EQ(corio_gen_init(&g, gen_body, d->gen_w), 0);
    d->drv->gen = &g;
    d->gen_w->gen = &g;
    int r = walker_body(d->drv);
    /* The generator is parked in its last yield: one more send lets it finish its loop. */
    void *out = NULL;
    T_EXPECT_EQ(corio_gen_send(&g, NULL, &out, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_gen_fini(&g), 0);
    return r;
}

static void run_path(struct corio_loop *l, enum path p, long iters)
{
    struct walker w[2];
    memset(w, 0, sizeof(w));
    for (int k = 0; k < 2; k++) {
        w[k].who = (int)p * 2 + k;
        w[k].path = p;
        w[k].iters = iters;
        w[k].mode = fp_mode_for((int)p + k * 2 + 1);
    }
    struct corio_chan *ch = NULL;
    struct gen_driver gd = {&w[0], &w[1]};
    int n = 2;
    switch (p) {
    case P_CHAN:
        assert_int_equal(corio_chan_new(&ch, sizeof(long), 0), 0);
        w[0].ch = w[1].ch = ch;
        w[0].sender = true;
        assert_int_equal(corio_spawn(NULL, l, walker_body, &w[0]), 0);
        assert_int_equal(corio_spawn(NULL, l, walker_body, &w[1]), 0);
        break;
    case P_GEN:
        assert_int_equal(corio_spawn(NULL, l, gen_driver_body, &gd), 0);
        break;
    default:
        /* Two independent walkers of the same path, with different modes, interleaved. */
        assert_int_equal(corio_spawn(NULL, l, walker_body, &w[0]), 0);
        assert_int_equal(corio_spawn(NULL, l, walker_body, &w[1]), 0);
        break;
    }
    int64_t t0 = corio_now();
    assert_int_equal(corio_loop_run(l), 0);
    double ms = t_ms_since(t0);
    t_expect_ok();
    corio_chan_free(ch);
    print_message("%-9s: %ld iterations x %d coroutines in %.0f ms\n", path_names[p], iters, n, ms);
    bool ok = true;
    for (int k = 0; k < 2; k++) {
        char who[48];
        snprintf(who, sizeof(who), "%s, coroutine %d", path_names[p], k);
        assert_int_equal(w[k].t.iters, iters);
        ok &= tally_clean(&w[k].t, who);
        /* Every step switched out and back (a sleep whose deadline had passed by the time it
         * started does not: allow a few of those; on the channel, whichever side comes second
         * completes the hand-off without waiting). */
        if (p == P_SLEEP)
            assert_true(w[k].suspended >= iters * 9 / 10);
        else if (p != P_CHAN)
            assert_int_equal(w[k].suspended, iters);
    }
    if (p == P_CHAN)
        assert_true(w[0].suspended + w[1].suspended >= iters);
    print_message("%-9s: %ld and %ld steps switched out and back\n", path_names[p], w[0].suspended,
                  w[1].suspended);
    assert_true(ok);
}

static void test_ctx_abi_resume_paths(void **state)
{
    struct corio_loop *l = *state;
    long iters = 20000;
    uint32_t mx0 = t_get_mxcsr();
    uint16_t cw0 = t_get_fpcw();
    for (int p = 0; p < P_COUNT; p++)
        run_path(l, (enum path)p, iters);
    assert_int_equal(t_get_mxcsr() & MXCSR_CONTROL, mx0 & MXCSR_CONTROL);
    assert_int_equal(t_get_fpcw(), cw0);
}

/* ---- entry alignment by every route ---------------------------------------------------------- */

struct entry_rec {
    unsigned bad;
    int entered;
};

static __attribute__((noinline)) int entry_probe(void *arg)
{
    struct entry_rec *e = arg;
    e->entered++;
    e->bad += align_check();
    return 0;
}

static int entry_gen(struct corio_gen *g, void *arg, void *in)
{
    (void)g;
    (void)in;
    return entry_probe(arg);
}

static int entry_spawner(void *arg)
{
    struct entry_rec *e = arg;
    /* From inside a coroutine, into a group, and a generator's first send. */
    corio_id c;
    T_EXPECT_EQ(corio_spawn(&c, NULL, entry_probe, e), 0);
    T_EXPECT_EQ(corio_join(c, NULL, ABI_BOUND), 0);
    struct corio_group g = CORIO_GROUP_INIT;
    for (int i = 0; i < 8; i++)
        T_EXPECT_EQ(corio_group_spawn(NULL, &g, entry_probe, e), 0);
    T_EXPECT_EQ(corio_group_wait(&g, ABI_BOUND), 0);
    for (int i = 0; i < 8; i++) {
        struct corio_gen gen;
        void *out;
        T_EXPECT_EQ(corio_gen_init(&gen, entry_gen, e), 0);
        T_EXPECT_EQ(corio_gen_send(&gen, NULL, &out, CORIO_FOREVER), 0); /* it ran and ended */
        T_EXPECT_EQ(corio_gen_fini(&gen), 0);
    }
    return entry_probe(e);
}

static void test_ctx_abi_entry_aligned(void **state)
{
    struct corio_loop *l = *state;
    struct entry_rec e = {0};
    for (int i = 0; i < 8; i++) /* from outside the loop, at slots 0-7 (staggered tops) */
        assert_int_equal(corio_spawn(NULL, l, entry_probe, &e), 0);
    assert_int_equal(corio_spawn(NULL, l, entry_spawner, &e), 0);
    assert_int_equal(corio_loop_run(l), 0);
    t_expect_ok();
    assert_int_equal(e.entered, 8 + 1 + 8 + 8 + 1);
    assert_int_equal(e.bad, 0);
    /* The probe's own check works: called from C, it reports an aligned entry. */
    assert_int_equal(t_rsp_misaligned(), 0);
}

/* ---- the x87 register stack and long double across switches ---------------------------------- */

struct ldbl_worker {
    int who;
    long rounds;
    struct fp_mode mode;
    struct abi_tally t;
};

/* A long double recurrence whose last bits depend on the rounding and precision in force. */
static long double ldbl_step(long double x, long k)
{
    return x * (long double)1.0000001L + (long double)1.0L / (long double)(k + 3);
}

static int ldbl_body(void *arg)
{
    struct ldbl_worker *w = arg;
    fp_enter(&w->mode);
    enum { STEPS = 64 };
    for (long r = 0; r < w->rounds; r++) {
        /* The reference, without a switch... */
        volatile long double ref = (long double)w->who + (long double)r / 7.0L;
        for (long k = 0; k < STEPS; k++)
            ref = ldbl_step(ref, k);
        /* ...and the same with a switch between every step; spilled as 80 bits like ref. */
        volatile long double x = (long double)w->who + (long double)r / 7.0L;
        for (long k = 0; k < STEPS; k++) {
            x = ldbl_step(x, k);
            if (!T_EXPECT_EQ((k & 7) == 7 ? corio_nop() : corio_yield(), 0))
                return -1;
            tally_fp(&w->t, &w->mode);
            w->t.iters++;
        }
        long double a = x, b = ref;
        if (a != b)
            w->t.ldbl_bad++;
    }
    return 0;
}

static void test_ctx_abi_x87_and_long_double(void **state)
{
    struct corio_loop *l = *state;
    enum { N = 4 };
    long rounds = 1000;
    struct ldbl_worker w[N];
    memset(w, 0, sizeof(w));
    for (int k = 0; k < N; k++) {
        w[k].who = k;
        w[k].rounds = rounds;
        w[k].mode = fp_mode_for(k);
        assert_int_equal(corio_spawn(NULL, l, ldbl_body, &w[k]), 0);
    }
    assert_int_equal(corio_loop_run(l), 0);
    t_expect_ok();
    bool ok = true;
    for (int k = 0; k < N; k++) {
        char who[32];
        snprintf(who, sizeof(who), "long double coroutine %d", k);
        assert_int_equal(w[k].t.iters, rounds * 64);
        ok &= tally_clean(&w[k].t, who);
    }
    assert_true(ok);
    /* The scheduler's x87 stack is empty too. */
    assert_int_equal(x87_tags(), 0xffff);
}

#else /* !__x86_64__ */

static void test_ctx_abi_probe_self_check(void **state)
{
    (void)state;
    print_message("SKIP: the register probe is x86-64 assembly\n");
    skip();
}
static void test_ctx_abi_million_switches(void **state)
{
    (void)state;
    print_message("SKIP: the register probe is x86-64 assembly\n");
    skip();
}
static void test_ctx_abi_raw_switch(void **state)
{
    (void)state;
    print_message("SKIP: the register probe is x86-64 assembly\n");
    skip();
}
static void test_ctx_abi_raw_resume(void **state)
{
    (void)state;
    print_message("SKIP: the register probe is x86-64 assembly\n");
    skip();
}
static void test_ctx_abi_resume_paths(void **state)
{
    (void)state;
    print_message("SKIP: the register probe is x86-64 assembly\n");
    skip();
}
static void test_ctx_abi_entry_aligned(void **state)
{
    (void)state;
    print_message("SKIP: the alignment probe is x86-64 assembly\n");
    skip();
}
static void test_ctx_abi_x87_and_long_double(void **state)
{
    (void)state;
    print_message("SKIP: x87 is x86 only\n");
    skip();
}

#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_abi_probe_self_check), cmocka_unit_test(test_ctx_abi_raw_switch),
        cmocka_unit_test(test_ctx_abi_raw_resume),       T_LOOP_TEST(test_ctx_abi_million_switches),
        T_LOOP_TEST(test_ctx_abi_resume_paths),          T_LOOP_TEST(test_ctx_abi_entry_aligned),
        T_LOOP_TEST(test_ctx_abi_x87_and_long_double),
    };
    return T_RUN_TESTS(tests);
}
