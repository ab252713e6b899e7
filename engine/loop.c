/* The scheduler: run queue, CQE drain, timers, idle wait, stop. One iteration runs every coroutine
 * that was runnable when it began, then makes at most one io_uring_enter that submits all the SQEs
 * they queued and waits only when nothing is runnable, then resolves the completions. */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifdef CORIO__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CORIO__VALGRIND
#include <valgrind/memcheck.h>
#endif
#ifdef CORIO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Stack left unused between a coroutine's entry frame and its body (see corio__coro_main). Only
 * the sanitizer builds need it: their switch hooks are C calls that run after the body returns. */
#if defined(CORIO__ASAN) || defined(CORIO__TSAN)
#define EXIT_GAP 4096 /* the sanitizers' switch hooks use ~1 KiB (TSan, measured) */
#else
#define EXIT_GAP 0
#endif

CORIO__TLS struct corio_coro *corio__tls_co;
CORIO__TLS struct corio_loop *corio__tls_loop;

/* ---- small shared pieces -------------------------------------------------------------------- */

_Noreturn void corio__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "corio: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

_Noreturn void corio__panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("corio: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

int64_t corio_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- stack overflow reporting --------------------------------------------------------------- */

/* Each thread that creates a loop gets an alternate signal stack, so that the SIGSEGV of a
 * coroutine that ran into its guard page can be handled at all: the faulting stack has no room. */
static CORIO__TLS void *tls_altstack;
static CORIO__TLS unsigned tls_altstack_users;
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;
static struct sigaction segv_prev; /* written once under segv_once, read by the handler */

#define ALTSTACK_SIZE (64 * 1024)

static void write_str(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    struct corio_coro *co = corio__tls_co;
    if (co && co->stack && corio__stack_in_guard(co->stack, si->si_addr)) {
        /* Only async-signal-safe calls from here on. */
        write_str("corio: coroutine stack overflow: a coroutine ran past the end of its stack "
                  "(raise corio_loop_opts.stack_size)\n");
        signal(SIGSEGV, SIG_DFL);
        return; /* the faulting access repeats and the default action ends the process */
    }
    if (segv_prev.sa_flags & SA_SIGINFO) {
        if (segv_prev.sa_sigaction) {
            segv_prev.sa_sigaction(sig, si, uctx);
            return;
        }
    } else if (segv_prev.sa_handler != SIG_DFL && segv_prev.sa_handler != SIG_IGN) {
        segv_prev.sa_handler(sig);
        return;
    }
    signal(SIGSEGV, SIG_DFL);
}

static void segv_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &segv_prev);
}

static void altstack_acquire(void)
{
    if (tls_altstack_users++ > 0)
        return;
    stack_t cur;
    /* Keep an alternate stack the application (or a sanitizer) already installed. */
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return;
    void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                     0);
    if (mem == MAP_FAILED)
        return;
    stack_t ss = {.ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, ALTSTACK_SIZE);
        return;
    }
    tls_altstack = mem;
}

static void altstack_release(void)
{
    if (tls_altstack_users == 0 || --tls_altstack_users > 0 || !tls_altstack)
        return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(tls_altstack, ALTSTACK_SIZE);
    tls_altstack = NULL;
}

/* ---- loop lifetime -------------------------------------------------------------------------- */

static void fill_defaults(struct corio_loop_opts *o)
{
    if (!o->sq_entries)
        o->sq_entries = 256;
    if (!o->cq_entries)
        o->cq_entries = o->sq_entries * 4;
    if (!o->stack_size)
        o->stack_size = 64 * 1024;
    if (!o->stack_cache)
        o->stack_cache = 1024;
    if (!o->sqpoll_spin_us)
        o->sqpoll_spin_us = CORIO_SQPOLL_SPIN_AWAKE;
    if (!o->batch_wait_us)
        o->batch_wait_us = 50;
    else if (o->batch_wait_us == CORIO_BATCH_WAIT_OFF)
        o->batch_wait_us = 0;
}

/* Modes of operations that IORING_REGISTER_PROBE cannot show. A buffer ring is tried for real.
 * Multishot accept came with IORING_OP_SOCKET (5.19) and multishot recv with IORING_OP_SEND_ZC
 * (6.0): their opcodes stand in for a version check. */
static void probe_modes(struct corio_loop *l)
{
    struct corio__pbuf *p;
    if (corio__ring_pbuf_new(l->ring, 0xffff, 1, &p) == 0) {
        corio__ring_pbuf_free(l->ring, 0xffff, p);
        l->features |= 1ull << CORIO_FEAT_BUF_RING;
    }
    if (l->features & (1ull << CORIO_FEAT_SOCKET))
        l->features |= 1ull << CORIO_FEAT_ACCEPT_MULTISHOT;
    if ((l->features & (1ull << CORIO_FEAT_SEND_ZC)) &&
        (l->features & (1ull << CORIO_FEAT_BUF_RING)))
        l->features |= 1ull << CORIO_FEAT_RECV_MULTISHOT;
}

int corio_loop_new(struct corio_loop **out, const struct corio_loop_opts *opts)
{
    struct corio_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    if (opts)
        l->opts = *opts;
    fill_defaults(&l->opts);
    int err = corio__ring_new(&l->ring, &l->opts, &l->stats, &l->features);
    if (err) {
        free(l);
        return err;
    }
    if (l->opts.fixed_files) {
        err = corio__ring_files_sparse(l->ring, l->opts.fixed_files);
        if (err) {
            corio__ring_free(l->ring);
            free(l);
            return err;
        }
    }
    probe_modes(l);
    l->view = corio__ring_view(l->ring);
    corio__list_init(&l->runq);
    corio__list_init(&l->batch);
    corio__list_init(&l->fixed_waiters);
    corio__list_init(&l->all);
    /* The usable size the caller asked for, plus what every stack spends before its body runs:
     * the coroutine struct at the top and the exit gap. */
    size_t usable = l->opts.stack_size + sizeof(struct corio_coro) + 8 * 64 + EXIT_GAP;
    corio__stack_pool_init(&l->stacks, usable, l->opts.stack_cache);
    l->owner = pthread_self();
    if (!(l->opts.flags & CORIO_LOOP_NO_SIGSEGV)) {
        pthread_once(&segv_once, segv_install);
        altstack_acquire();
    }
    *out = l;
    return 0;
}

void corio_loop_free(struct corio_loop *l)
{
    if (!l)
        return;
    CORIO__ASSERT(!l->running);
    if (l->live > 0) {
        /* Cancel and finish what is left: their SQEs point into their stacks. */
        corio_loop_stop(l);
        corio_loop_run(l);
    }
    if (l->live > 0) {
        /* Deadlocked in waits that ignore cancellation: no op is in flight (that is what made it
         * a deadlock), so no kernel write can land in their stacks; reclaim them unrun. */
        while (!corio__list_empty(&l->all)) {
            struct corio_coro *co = container_of(l->all.next, struct corio_coro, all);
            corio__list_remove(&co->all);
#ifdef CORIO__TSAN
            __tsan_destroy_fiber(co->tsan_fiber);
#endif
            corio__stack_put(&l->stacks, co->stack);
        }
        l->live = 0;
    }
    corio__stack_pool_fini(&l->stacks);
    corio__heap_fini(&l->timers);
    corio__ring_free(l->ring);
    free(l->slots);
    if (!(l->opts.flags & CORIO_LOOP_NO_SIGSEGV))
        altstack_release();
    free(l);
}

struct corio_loop *corio_loop_current(void)
{
    return corio__tls_loop;
}

bool corio_loop_has(const struct corio_loop *l, enum corio_feature f)
{
    return (unsigned)f < CORIO_FEAT_COUNT && (l->features & (1ull << f));
}

const struct corio_stats *corio_stats(const struct corio_loop *l)
{
    return &l->stats;
}

/* ---- switching ------------------------------------------------------------------------------ */

/* Every context switch goes through here, so that the sanitizers hear of each one: ASan must know
 * which stack is live (or it reports false stack-buffer errors), TSan which fiber runs. @from_fake
 * is where ASan parks the fake stack of the flow being left; NULL means that flow never resumes. */
static inline void do_switch(struct corio_loop *l, struct corio__ctx *from, void **from_fake,
                             struct corio__ctx *to, const void *to_lo, size_t to_size,
                             void *to_tsan)
{
    l->stats.switches++;
#ifdef CORIO__ASAN
    __sanitizer_start_switch_fiber(from_fake, to_lo, to_size);
#else
    (void)from_fake;
    (void)to_lo;
    (void)to_size;
#endif
#ifdef CORIO__TSAN
    __tsan_switch_to_fiber(to_tsan, 0);
#else
    (void)to_tsan;
#endif
    if (from == &l->sched)
        corio__ctx_resume(from, to);
    else
        corio__ctx_switch(from, to);
#ifdef CORIO__ASAN
    __sanitizer_finish_switch_fiber(from_fake ? *from_fake : NULL, NULL, NULL);
#endif
}

static inline void switch_to_coro(struct corio_loop *l, struct corio__ctx *from, void **from_fake,
                                  struct corio_coro *to)
{
    to->state = CORIO__CO_RUNNING;
    l->current = to;
    corio__tls_co = to;
    do_switch(l, from, from_fake, &to->ctx, to->stack->lo, (size_t)(to->stack->hi - to->stack->lo),
              to->tsan_fiber);
}

/* ---- the end of a coroutine (on the scheduler's stack) -------------------------------------- */

void corio__slot_free(struct corio_loop *l, uint32_t idx)
{
    struct corio__slot *s = &l->slots[idx];
    s->state = CORIO__SLOT_FREE;
    s->co = NULL;
    s->joiner = NULL;
    s->gen++;
    s->next_free = l->free_slot;
    l->free_slot = idx + 1;
}

int corio__group_cancel(struct corio__group *g)
{
    int n = 0;
    g->cancelling = true;
    struct corio__list *m = corio__waitq(&g->members);
    for (struct corio__list *i = m->next; i != m; i = i->next) {
        corio__cancel(container_of(i, struct corio_coro, group_link));
        n++;
    }
    return n;
}

/* A member ended: record its error, fail fast if asked, and wake the waiters when it was the
 * last one. */
static void group_left(struct corio_coro *co, int result)
{
    struct corio__group *g = co->group;
    corio__list_remove(&co->group_link);
    co->group = NULL;
    g->n--;
    if (result < 0 && g->first_error == 0) {
        g->first_error = result;
        if (g->flags & CORIO_GROUP_CANCEL_ON_ERROR)
            corio__group_cancel(g);
    }
    if (g->n == 0)
        while (corio__waitq_wake(&g->waiters, 0))
            ;
}

/* The coroutine is over and the kernel holds nothing of its stack: report its result (to its
 * joiner, its group) and give the stack back. Only now, so that a joiner or group owner never
 * sees it end while an op of it may still write into memory they handed it. */
static void finalize(struct corio_loop *l, struct corio_coro *co)
{
    int result = co->result;
    corio__list_remove(&co->all);
    l->live--;
    if (co->group)
        group_left(co, result);
    struct corio__slot *s = &l->slots[co->slot];
    s->co = NULL;
    s->result = result;
    if (s->state & CORIO__SLOT_DETACHED) {
        corio__slot_free(l, co->slot);
    } else {
        s->state = CORIO__SLOT_ENDED;
        if (s->joiner)
            corio__unpark(s->joiner, 0);
    }
#ifdef CORIO__TSAN
    __tsan_destroy_fiber(co->tsan_fiber);
#endif
    corio__stack_put(&l->stacks, co->stack);
}

static void future_cancel(struct corio_loop *l, struct corio__future *f)
{
    if (!(f->flags & CORIO__FF_CANCELLED)) {
        f->flags |= CORIO__FF_CANCELLED;
        corio__ring_cancel(l->ring, (uintptr_t)f | CORIO__UD_FUTURE);
    }
}

/* The body returned. Ops it left in flight are cancelled, and the stack is kept (a zombie) until
 * their CQEs are in: the kernel may write into it until then. */
static void finish(struct corio_loop *l, struct corio_coro *co)
{
    if (corio__list_empty(&co->inflight) && corio__list_empty(&co->handlers)) {
        finalize(l, co);
        return;
    }
    co->state = CORIO__CO_ZOMBIE;
#ifdef CORIO__VALGRIND
    /* memcheck made the body's frames inaccessible as its stack pointer rose above them, but the
     * scheduler still reads and completes the futures and handlers left there. */
    VALGRIND_MAKE_MEM_DEFINED(co->stack->lo, (size_t)((char *)co - co->stack->lo));
#endif
    for (struct corio__list *i = co->inflight.next; i != &co->inflight; i = i->next)
        future_cancel(l, container_of(i, struct corio__future, link));
    struct corio__list *i = co->handlers.next;
    while (i != &co->handlers) {
        struct corio__handler *h = container_of(i, struct corio__handler, link);
        i = i->next;
        h->cancel(h); /* may unlink h */
    }
    corio__zombie_check(co);
}

void corio__zombie_check(struct corio_coro *co)
{
    if (co->state == CORIO__CO_ZOMBIE && corio__list_empty(&co->inflight) &&
        corio__list_empty(&co->handlers))
        finalize(co->loop, co);
}

static void resume(struct corio_loop *l, struct corio_coro *co)
{
    switch_to_coro(l, &l->sched, &l->asan_sched_fake, co);
    /* Whoever switched back to the scheduler: not always @co, since coroutines can hand the
     * thread to each other directly (corio__park_switch). */
    struct corio_coro *back = l->current;
    l->current = NULL;
    corio__tls_co = NULL;
    if (back->state == CORIO__CO_DONE)
        finish(l, back);
}

void corio__suspend(struct corio_coro *co)
{
    struct corio_loop *l = co->loop;
    /* Always back to the scheduler: a direct hand-off to the next coroutine of the batch was
     * measured slower (bm_op, 256 coroutines: 0.33x vs 0.40x of raw liburing), as the
     * scheduler's resume is the better-predicted path. A finished coroutine passes no
     * fake-stack slot: ASan frees it, it will never run again. */
    do_switch(l, &co->ctx, co->state == CORIO__CO_DONE ? NULL : &co->asan_fake, &l->sched,
              l->sched_lo, l->sched_size, l->tsan_sched);
}

/* When the body returns, its frames (and the buffers and futures in them, which pending ops may
 * still reference) must stay intact until the scheduler has dealt with them (finish). So nothing
 * may be written below this function's frame after the body returns: here the final switch is the
 * tail of corio__ctx_start, which pops the scheduler's context without pushing anything. In the
 * sanitizer builds the final switch must go through do_switch, a C call chain that needs stack:
 * there the body runs below a gap of EXIT_GAP unused bytes, which that chain uses instead. */
#if EXIT_GAP
/* Not instrumented by ASan: its epilogue would write shadow bytes from below the gap, over the
 * top of the body's dead frame. (With ASan's detect_stack_use_after_return the body's locals live
 * on ASan's heap-backed fake stack, which this scheme cannot protect: leave that option off.) */
__attribute__((no_sanitize_address)) __attribute__((noinline)) static int run_body(
    struct corio_coro *co)
{
    char gap[EXIT_GAP];
    __asm__ volatile("" : : "r"(gap) : "memory"); /* reserved, never written */
    return co->fn(co->arg);
}
#endif

void corio__coro_main(void *arg)
{
    struct corio_coro *co = arg;
#ifdef CORIO__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
#if EXIT_GAP
    co->result = run_body(co);
    co->state = CORIO__CO_DONE;
    corio__suspend(co);
    corio__panic("a finished coroutine was resumed");
#else
    co->result = co->fn(co->arg);
    co->state = CORIO__CO_DONE;
    co->loop->stats.switches++;
    /* Returning to corio__ctx_start, which resumes the scheduler. */
#endif
}

/* Records the scheduler's own stack (the thread's) for ASan, and its TSan fiber. */
static void sched_identity(struct corio_loop *l)
{
#ifdef CORIO__ASAN
    pthread_attr_t a;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &lo, &size);
        pthread_attr_destroy(&a);
    }
    l->sched_lo = lo;
    l->sched_size = size;
#endif
#ifdef CORIO__TSAN
    l->tsan_sched = __tsan_get_current_fiber();
#endif
    (void)l;
}

/* ---- waiting and waking --------------------------------------------------------------------- */

void corio__make_ready(struct corio_coro *co)
{
    if (co->queued)
        return;
    co->queued = true;
    co->state = CORIO__CO_READY;
    corio__list_push_back(&co->loop->runq, &co->runq);
}

int corio__park_switch(struct corio_coro *co, struct corio_coro *to, corio__abort_fn *abort,
                       void *obj)
{
    co->abort = abort;
    co->wait_obj = obj;
    co->wake_res = 0;
    co->state = CORIO__CO_WAITING;
    co->timer = NULL;
    if (to) {
        CORIO__ASSERT(!to->queued && to->state != CORIO__CO_RUNNING);
        to->abort = NULL;
        switch_to_coro(co->loop, &co->ctx, &co->asan_fake, to);
    } else {
        corio__suspend(co);
    }
    co->abort = NULL;
    co->wait_obj = NULL;
    return co->wake_res;
}

int corio__park(struct corio_coro *co, int64_t deadline, corio__abort_fn *abort, void *obj)
{
    struct corio_loop *l = co->loop;
    struct corio__timer t;
    co->abort = abort;
    co->wait_obj = obj;
    co->wake_res = 0;
    co->state = CORIO__CO_WAITING;
    co->timer = NULL;
    if (deadline >= 0) {
        t.deadline = deadline;
        t.data = co;
        t.idx = CORIO__TIMER_IDLE;
        if (corio__heap_push(&l->timers, &t) == 0)
            co->timer = &t;
        else if (abort)
            abort(co, -ENOMEM);
    }
    corio__suspend(co);
    if (co->timer) {
        corio__heap_remove(&l->timers, co->timer);
        co->timer = NULL;
    }
    co->abort = NULL;
    co->wait_obj = NULL;
    return co->wake_res;
}

void corio__unpark(struct corio_coro *co, int res)
{
    if (co->state != CORIO__CO_WAITING)
        return;
    co->wake_res = res;
    co->abort = NULL;
    corio__make_ready(co);
}

/* ---- wait queues ---------------------------------------------------------------------------- */

int corio__wait_check(struct corio_coro **out, int64_t deadline)
{
    struct corio_coro *co = corio__tls_co;
    if (!co)
        return -EPERM;
    if (co->cancelled)
        return -ECANCELED;
    if (deadline >= 0 && deadline <= corio_now())
        return -ETIMEDOUT;
    *out = co;
    return 0;
}

static void waitq_abort(struct corio_coro *co, int why)
{
    struct corio__waiter *w = co->wait_obj;
    corio__list_remove(&w->link);
    corio__unpark(co, why);
}

int corio__waitq_wait(struct corio__list *q, struct corio_coro *co, int64_t deadline)
{
    struct corio__waiter w = {.co = co};
    corio__list_push_back(corio__waitq(q), &w.link);
    int r = corio__park(co, deadline, waitq_abort, &w);
    corio__list_remove(&w.link); /* a no-op when the waker or the abort already unlinked it */
    return r;
}

struct corio_coro *corio__waitq_wake(struct corio__list *q, int res)
{
    struct corio__list *n = corio__list_pop_front(corio__waitq(q));
    if (!n)
        return NULL;
    struct corio_coro *co = container_of(n, struct corio__waiter, link)->co;
    corio__unpark(co, res);
    return co;
}

int corio_yield(void)
{
    struct corio_coro *co = corio__tls_co;
    if (!co)
        return -EPERM;
    if (co->cancelled)
        return -ECANCELED;
    corio__make_ready(co);
    corio__suspend(co);
    return 0;
}

void corio__cancel(struct corio_coro *co)
{
    co->cancelled = true;
    if (co->state == CORIO__CO_WAITING && co->abort)
        co->abort(co, -ECANCELED);
}

void corio_loop_stop(struct corio_loop *l)
{
    l->stopping = true;
    struct corio__list *n = l->all.next;
    while (n != &l->all) {
        struct corio_coro *co = container_of(n, struct corio_coro, all);
        n = n->next;
        corio__cancel(co);
    }
}

/* ---- completions ---------------------------------------------------------------------------- */

/* Maps a finished future's raw CQE result to what the caller sees: a linked timeout that fired
 * turns the op's cancellation into -ETIMEDOUT; our own async cancel gives -ECANCELED (io-wq
 * workers interrupted by it may report -EINTR). A result the op produced itself is kept: data
 * that arrived as the cancel raced it is not lost. */
#ifdef CORIO__VALGRIND
/* memcheck cannot see the kernel write through io_uring: tell it what a completed op filled, or
 * every read buffer looks uninitialized to it. */
static void vg_mark_filled(const struct corio__future *f)
{
    const struct corio__op *op = &f->op;
    size_t n = (size_t)f->res;
    switch (op->opcode) {
    case CORIO__OP_READ:
    case CORIO__OP_RECV:
    case CORIO__OP_READ_FIXED:
        VALGRIND_MAKE_MEM_DEFINED(op->addr, n);
        break;
    case CORIO__OP_READV:
    case CORIO__OP_RECVMSG: {
        const struct msghdr *m = op->addr;
        const struct iovec *iov = op->opcode == CORIO__OP_READV ? op->addr : m->msg_iov;
        size_t cnt = op->opcode == CORIO__OP_READV ? op->len : m->msg_iovlen;
        for (size_t i = 0; i < cnt && n > 0; i++) {
            size_t k = iov[i].iov_len < n ? iov[i].iov_len : n;
            VALGRIND_MAKE_MEM_DEFINED(iov[i].iov_base, k);
            n -= k;
        }
        if (op->opcode == CORIO__OP_RECVMSG) {
            if (m->msg_name)
                VALGRIND_MAKE_MEM_DEFINED(m->msg_name, m->msg_namelen);
            if (m->msg_control)
                VALGRIND_MAKE_MEM_DEFINED(m->msg_control, m->msg_controllen);
        }
        break;
    }
    case CORIO__OP_STATX:
        VALGRIND_MAKE_MEM_DEFINED(op->addr2, 256); /* sizeof(struct statx) */
        break;
    case CORIO__OP_ACCEPT:
        if (op->addr && op->addr2)
            VALGRIND_MAKE_MEM_DEFINED(op->addr, *(const socklen_t *)op->addr2);
        break;
    default:
        break;
    }
}
#endif

void corio__fixed_release(struct corio_loop *l)
{
    if (l->fixed_used > 0)
        l->fixed_used--;
    corio__waitq_wake(&l->fixed_waiters, 0);
}

static inline void future_settle(struct corio__future *f)
{
#ifdef CORIO__VALGRIND
    if (f->res >= 0 && RUNNING_ON_VALGRIND)
        vg_mark_filled(f);
#endif
    int64_t res = f->res;
    if (f->kind == CORIO__FK_SLEEP) {
        if (res == -ETIME)
            res = 0;
    } else if (unlikely(res == -ECANCELED || res == -EINTR || res == -EAGAIN)) {
        /* A transient -EAGAIN is not retried once the op is cancelled or timed out
         * (retry_eagain): the op did nothing, so report why it ended instead. Found by the
         * dispatch fuzzer (issue 6): a coroutine cancelled in a recv got -EAGAIN. */
        if (f->flags & CORIO__FF_TIMED_OUT)
            res = -ETIMEDOUT;
        else if (f->flags & CORIO__FF_CANCELLED)
            res = -ECANCELED;
    }
    f->res = res;
}

/* A zombie's op that produced an fd: an accept, socket or open that completed before the engine's
 * cancel reached it (e.g. submitted with its connection already queued). Its owner returned
 * without awaiting it, so nobody can ever take the fd: close it rather than leak it. Found by
 * tests/test_cancel_matrix.c (accept/destroy, issue 6). */
static void zombie_orphan(const struct corio__future *f)
{
    switch (f->op.opcode) {
    case CORIO__OP_ACCEPT:
    case CORIO__OP_SOCKET:
    case CORIO__OP_OPENAT:
        if (f->res >= 0)
            close((int)f->res);
        break;
    default:
        break;
    }
}

static inline void future_cqe(struct corio_loop *l, struct corio__future *f)
{
    l->inflight--;
    if (--f->pending)
        return;
    future_settle(f);
    if (unlikely(f->op.opcode == CORIO__OP_CLOSE) && f->res == 0 && f->op.fd >= 0 &&
        (f->op.fd & CORIO_FD_FIXED))
        corio__fixed_release(l);
    f->state = CORIO__F_DONE;
    corio__list_remove(&f->link);
    struct corio_coro *co = f->owner;
    if (f->flags & CORIO__FF_AWAITED) {
        f->flags &= ~CORIO__FF_AWAITED;
        if (co->wait_need && --co->wait_need == 0)
            corio__unpark(co, 0);
    }
    if (unlikely(co->state == CORIO__CO_ZOMBIE)) {
        zombie_orphan(f);
        corio__zombie_check(co);
    }
}

/* A transient -EAGAIN (io_uring may give one where a blocking syscall would wait, and the fault
 * seam injects them) is not the caller's problem: the op is submitted again, a bounded number of
 * times, unless the caller asked for non-blocking behaviour (MSG_DONTWAIT). So is an automatic
 * send_zc the socket refuses (-EOPNOTSUPP). Returns true if it was resubmitted. */
static bool retry_op(struct corio_loop *l, struct corio__future *f, int res)
{
    if (f->kind != CORIO__FK_OP || f->retries >= 8 ||
        (f->flags & (CORIO__FF_CANCELLED | CORIO__FF_TIMED_OUT)))
        return false;
    if (res == -EOPNOTSUPP) {
        /* A send made zero-copy by the loop's threshold, on a socket that cannot do zero-copy
         * (AF_UNIX): nothing was sent; the threshold is an optimisation, so send it plainly. */
        if (f->op.opcode != CORIO__OP_SEND_ZC || !f->op.aux)
            return false;
        f->op.opcode = CORIO__OP_SEND;
        f->op.aux = 0;
        res = -EAGAIN;
    }
    switch (f->op.opcode) {
    case CORIO__OP_SEND:
    case CORIO__OP_RECV:
    case CORIO__OP_SENDMSG:
    case CORIO__OP_RECVMSG:
        if (f->op.op_flags & MSG_DONTWAIT)
            return false;
        break;
    case CORIO__OP_READ:
    case CORIO__OP_WRITE:
    case CORIO__OP_READV:
    case CORIO__OP_WRITEV:
    case CORIO__OP_ACCEPT:
        break;
    default:
        return false;
    }
    f->retries++;
    uint64_t ud = (uintptr_t)f | CORIO__UD_FUTURE;
    if (f->flags & CORIO__FF_LINKED) {
        /* The first attempt's linked timeout completes by itself; the retry gets its own. */
        corio__ring_prep(l->ring, &f->op, ud, &f->ts, (uintptr_t)f | CORIO__UD_LINK);
        f->pending += 2;
        l->inflight += 2;
    } else {
        corio__ring_prep(l->ring, &f->op, ud, NULL, 0);
        f->pending += 1;
        l->inflight += 1;
    }
    return true;
}

static void dispatch(struct corio_loop *l, const struct corio__cqe *c)
{
    uint64_t ud = c->user_data;
    void *p = (void *)(uintptr_t)(ud & ~(uint64_t)CORIO__UD_TAG_MASK);
    switch (ud & CORIO__UD_TAG_MASK) {
    case CORIO__UD_FUTURE: {
        struct corio__future *f = p;
        if (unlikely(!f))
            return; /* user_data 0: a cancel's own completion */
        if (unlikely(c->flags & CORIO__CQE_F_NOTIF)) {
            /* A zero-copy send's notification: the kernel is done with the buffer. */
            future_cqe(l, f);
            return;
        }
        if (unlikely(c->res == -EAGAIN || c->res == -EOPNOTSUPP) && retry_op(l, f, c->res)) {
            if (c->flags & CORIO__CQE_F_MORE) {
                /* A refused send_zc still posts its notification. */
                f->pending++;
                l->inflight++;
            }
            future_cqe(l, f); /* this attempt's CQE; the retry keeps the future pending */
            return;
        }
        f->res = c->res;
        f->cqe_flags = c->flags;
        if (unlikely(c->flags & CORIO__CQE_F_MORE)) {
            /* send_zc's result with a notification still to come: keep the future pending. */
            f->pending++;
            l->inflight++;
        }
        future_cqe(l, f);
        return;
    }
    case CORIO__UD_LINK: {
        struct corio__future *f = p;
        if (c->res == -ETIME)
            f->flags |= CORIO__FF_TIMED_OUT;
        future_cqe(l, f);
        return;
    }
    case CORIO__UD_HANDLER: {
        struct corio__handler *h = p;
        struct corio_coro *owner = h->owner;
        h->fn(h, c->res, c->flags);
        if (unlikely(owner->state == CORIO__CO_ZOMBIE))
            corio__zombie_check(owner);
        return;
    }
    case CORIO__UD_WAKE:
        /* Which one fired is not known: forget the earliest deadline, so that the next idle
         * wait arms another one for its timer rather than trust one that may be gone. */
        l->wake_armed--;
        l->wake_deadline = INT64_MAX;
        return;
    default:
        corio__panic("CQE with unknown user_data tag %llx", (unsigned long long)ud);
    }
}

/* Dispatches every ready CQE. Returns how many there were. */
static unsigned reap(struct corio_loop *l)
{
    unsigned n, total = 0;
    do {
        n = corio__ring_reap(l->ring, l->cqes, CORIO__REAP_BATCH);
        for (unsigned i = 0; i < n; i++)
            dispatch(l, &l->cqes[i]);
        total += n;
    } while (n == CORIO__REAP_BATCH);
    return total;
}

static void fire_timers(struct corio_loop *l)
{
    int64_t now = corio_now();
    struct corio__timer *t;
    while ((t = corio__heap_top(&l->timers)) && t->deadline <= now) {
        corio__heap_remove(&l->timers, t);
        struct corio_coro *co = t->data;
        co->timer = NULL;
        if (co->abort)
            co->abort(co, -ETIMEDOUT);
    }
}

/* Waits with the kernel for the next completion or the earliest timer. Without EXT_ARG (before
 * 5.11) the timer becomes a timeout SQE of our own. */
static int idle_wait(struct corio_loop *l)
{
    struct corio__timer *t = corio__heap_top(&l->timers);
    if (l->features & (1ull << CORIO_FEAT_SQPOLL)) {
        /* The kernel's poller submits and, awake, completes without us: spin on the CQ while it
         * is awake (or for sqpoll_spin_us), so that a busy loop makes no system call at all.
         * Bounded by the earliest timer; ends when the poller sleeps or CQEs overflow, which
         * need an enter. */
        bool awake = l->opts.sqpoll_spin_us == CORIO_SQPOLL_SPIN_AWAKE;
        /* Publish what the coroutines prepared first (no system call while the poller is
         * awake; the wake-up if it sleeps): the poller cannot complete what it cannot see. */
        int err = corio__ring_enter(l->ring, false, 0, 0, 0);
        if (err)
            return err;
        int64_t now = corio_now(), end = INT64_MAX;
        if (!awake)
            end = now + (int64_t)l->opts.sqpoll_spin_us * 1000;
        if (t && t->deadline < end)
            end = t->deadline;
        for (;;) {
            if (corio__ring_has_cqes(l->view))
                return 0;
            if (now >= end || corio__ring_needs_enter(l->ring))
                break;
            corio__cpu_relax();
            now = corio_now();
        }
        /* A timer is due: the loop fires it without asking the kernel. */
        if (t && t->deadline <= now)
            return 0;
    }
    /* After the spin: the time left until the earliest timer. */
    int64_t timeout = -1;
    if (t) {
        timeout = t->deadline - corio_now();
        if (timeout < 0)
            timeout = 0;
    }
    /* How many completions to wait for: twice as many as recent wake-ups brought (a moving
     * average) once they bring several, so that a busy loop batches more and more and a quiet
     * one answers at once; the kernel holds out at most batch_wait_us for them. */
    unsigned batch = l->batch_avg / 16;
    /* A loop that has been waking for one completion at a time (a lone connection) waits for
     * one: asking for two would only add the time cap to every wake-up. */
    batch = batch < 2 ? 1 : batch * 2;
    if (batch > 64)
        batch = 64;
    /* Never more than could come: the completions the loop still expects. */
    if (batch > l->inflight)
        batch = (unsigned)l->inflight;
    int err = corio__ring_enter(l->ring, true, timeout, batch, l->opts.batch_wait_us);
    if (err == -EOPNOTSUPP) {
        /* A timeout SQE wakes the loop at the earliest timer, unless one already in flight
         * comes first. One armed for a later timer does not do: the earlier one would fire
         * late. (The kernel reads wake_ts when the SQE is submitted, right below.) */
        if (t && (!l->wake_armed || t->deadline < l->wake_deadline)) {
            l->wake_ts.sec = t->deadline / 1000000000;
            l->wake_ts.nsec = t->deadline % 1000000000;
            struct corio__op op = {.opcode = CORIO__OP_TIMEOUT, .addr = &l->wake_ts};
            corio__ring_prep(l->ring, &op, (uintptr_t)l | CORIO__UD_WAKE, NULL, 0);
            l->wake_armed++;
            l->wake_deadline = t->deadline;
        }
        err = corio__ring_enter(l->ring, true, -1, 1, 0);
    }
    return err;
}

/* Nothing is runnable, no op is in flight and no timer is set, yet coroutines are alive: they wait
 * for each other. Nothing can ever wake them, so cancel them all rather than hang. */
static bool break_deadlock(struct corio_loop *l)
{
    l->deadlock = true;
    corio_loop_stop(l);
    /* Nothing woke: every one of them is in a wait that ignores cancellation. Give up. */
    return !corio__list_empty(&l->runq);
}

int corio_loop_run(struct corio_loop *l)
{
    if (l->running)
        return -EBUSY;
    if (!pthread_equal(l->owner, pthread_self()))
        return -EPERM;
    struct corio_loop *prev = corio__tls_loop;
    corio__tls_loop = l;
    l->running = true;
    l->deadlock = false;
    sched_identity(l);
    int err = 0;
    while (l->live > 0) {
        l->stats.iterations++;
        /* Run the coroutines that are runnable now; those they wake run next iteration, after
         * the ring has had its say. */
        corio__list_splice(&l->batch, &l->runq);
        struct corio__list *n;
        while ((n = corio__list_pop_front(&l->batch))) {
            struct corio_coro *co = container_of(n, struct corio_coro, runq);
            co->queued = false;
            resume(l, co); /* runs it, and maybe more of the batch (corio__suspend) */
        }
        if (l->live == 0)
            break;
        bool idle = corio__list_empty(&l->runq);
        if (idle) {
            if (l->inflight == 0 && l->timers.n == 0 && corio__ring_unsubmitted(l->ring) == 0) {
                if (break_deadlock(l))
                    continue;
                break;
            }
            /* CQEs already waiting (spilled while a full SQ was flushed) are reaped at once. */
            if (corio__ring_has_cqes(l->view))
                err = corio__ring_enter(l->ring, false, 0, 0, 0);
            else
                err = idle_wait(l);
        } else if (corio__ring_quiet(l->view)) {
            /* Coroutines keep each other busy and the ring has nothing for us. */
            if (l->timers.n)
                fire_timers(l);
            continue;
        } else {
            err = corio__ring_enter(l->ring, false, 0, 0, 0);
        }
        if (unlikely(err))
            corio__panic("io_uring_enter failed: %s", strerror(-err));
        unsigned got = reap(l);
        if (idle) /* 16ths, weight 1/8: avg' = avg + (16 got - avg) / 8 */
            l->batch_avg = l->batch_avg - l->batch_avg / 8 + (got > 64 ? 64 : got) * 2;
        if (l->timers.n)
            fire_timers(l);
    }
    l->running = false;
    l->stopping = false;
    corio__tls_loop = prev;
    return l->deadlock ? -EDEADLK : err;
}
