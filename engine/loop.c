/* The driver: creating and freeing a loop, and running it. One iteration runs every coroutine that
 * was runnable when it began, then makes at most one io_uring_enter that submits all the ops they
 * started and waits only when nothing is runnable, then dispatches the completions and fires the
 * timers that are due. */
#include "loop.h"

#include "blocking.h"
#include "drain.h"
#include "dump.h"
#include "future.h"
#include "segv.h"
#include "stall.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* ---- loop lifetime --------------------------------------------------------------------------- */

/* Whether the calling thread, the loop's, may run on one CPU only. An idle wait that holds out
 * for a batch of completions sleeps up to batch_wait_us to serve several with one wake-up: where
 * the CPU is the loop's own, that sleep costs nothing. Where the thread may run on several CPUs,
 * shared with other threads, the sleep hands its CPU to them, and getting it back costs more
 * than the enters it saves: two unpinned loops beside a load generator on 2 CPUs spent 8-9% more
 * CPU per echoed message at 64 connections with it (at 1,000 it moved between 2% less and 15%
 * more from run to run), where a pinned loop spent the same either way. So it is on by default
 * only for a pinned loop. */
static bool on_one_cpu(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1;
}

static void fill_defaults(struct corio_loop_opts *o)
{
    if (!o->sq_entries)
        o->sq_entries = 256;
    if (!o->cq_entries)
        o->cq_entries = o->sq_entries * 4;
    if (!o->stack_size)
        o->stack_size = 64 * 1024;
    if (!o->sqpoll_spin_us)
        o->sqpoll_spin_us = CORIO_SQPOLL_SPIN_AWAKE;
    if (!o->batch_wait_us)
        o->batch_wait_us = on_one_cpu() ? 50 : 0;
    else if (o->batch_wait_us == CORIO_BATCH_WAIT_OFF)
        o->batch_wait_us = 0;
    /* The environment turns the virtual clock on for a program that knows nothing of it: a
     * server under test in CI. */
    const char *clock = getenv("CORIO_CLOCK");
    if (clock && strcmp(clock, "virtual") == 0)
        o->flags |= CORIO_LOOP_VIRTUAL_CLOCK;
    const char *stall = getenv("CORIO_STALL_MS");
    if (!o->stall_ms && stall)
        o->stall_ms = (unsigned)strtoul(stall, NULL, 10);
}

/* The loop's timeout op for an idle wait without EXT_ARG fired (or was cancelled by the ring's
 * end). Which one is not known: forget the earliest deadline, so that the next idle wait arms
 * another for its timer rather than trust one that may be gone. */
static void wake_complete(struct corio__completion *c, const struct corio__cqe *cqe, bool link)
{
    (void)cqe;
    (void)link;
    struct corio_loop *l = container_of(c, struct corio_loop, wake);
    l->wake_armed--;
    l->wake_deadline = INT64_MAX;
}

int corio_loop_new(struct corio_loop **out, const struct corio_loop_opts *opts)
{
    return corio__loop_new(out, opts, 0);
}

/* corio_loop_stop sent from another thread, run by the loop. */
static void run_remote_stop(struct corio_loop *l, struct corio__msg *m)
{
    (void)m;
    atomic_flag_clear(&l->remote.stop_queued);
    corio__coro_cancel_all(l);
}

int corio__loop_new(struct corio_loop **out, const struct corio_loop_opts *opts, uint64_t refuse)
{
    /* Sizes the kernel refuses are the caller's error, on either backend: said here, rather than
     * taken for a kernel without io_uring. */
    if (opts && (opts->sq_entries > 32768 || opts->cq_entries > 65536 ||
                 opts->backend > CORIO_BACKEND_EPOLL))
        return -EINVAL;
    struct corio_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    if (opts)
        l->opts = *opts;
    fill_defaults(&l->opts);
    int err = corio__op_init(&l->io, &l->opts, &l->stats, refuse, &l->features);
    if (err) {
        free(l);
        return err;
    }
    l->before_wait = corio__has(l, CORIO_FEAT_SQPOLL) || (l->opts.flags & CORIO_LOOP_VIRTUAL_CLOCK);
    err = corio__remote_init(l);
    if (err) {
        corio__op_fini(&l->io);
        free(l);
        return err;
    }
    l->remote.stop.run = run_remote_stop;
    corio__sched_init(&l->sched, &l->stats.switches);
    corio__list_init(&l->coros.all);
    corio__list_init(&l->fixed_waiters);
    l->wake.complete = wake_complete;
    /* The usable size the caller asked for, plus what every stack spends before its body runs. */
    corio__stack_pool_init(&l->stacks, l->opts.stack_size + corio__coro_overhead(),
                           l->opts.stack_cache);
    l->owner = pthread_self();
    corio__metrics_init(l);
    if (!(l->opts.flags & CORIO_LOOP_NO_SIGSEGV))
        corio__segv_acquire();
    corio__tick_ref_take(&l->born);
    corio__loop_register(l);
    *out = l;
    return 0;
}

void corio_loop_free(struct corio_loop *l)
{
    if (!l)
        return;
    CORIO__ASSERT(!l->running);
    if (l->coros.live > 0) {
        /* Cancel and finish what is left: their SQEs point into their stacks. */
        corio_loop_stop(l);
        corio_loop_run(l);
    }
    /* Deadlocked in waits that ignore cancellation: no op is in flight (that is what made it a
     * deadlock), so no kernel write can land in their stacks; reclaim them unrun. */
    if (l->coros.live > 0)
        corio__coro_reclaim_all(l);
    /* After the run above, which waited for every call on the workers (their callers stay alive
     * until then), and before the backend goes: its read of the pool's eventfd may be in flight. */
    corio__blocking_free(l);
    corio__loop_unregister(l);
    corio__stack_pool_fini(&l->stacks);
    corio__sched_fini(&l->sched);
    corio__remote_fini(l);
    corio__op_fini(&l->io);
    corio__coros_fini(&l->coros);
    if (!(l->opts.flags & CORIO_LOOP_NO_SIGSEGV))
        corio__segv_release();
    free(l);
}

enum corio_backend corio_loop_backend(const struct corio_loop *l)
{
    return l->io.ring ? CORIO_BACKEND_IO_URING : CORIO_BACKEND_EPOLL;
}

const char *corio_loop_backend_reason(const struct corio_loop *l)
{
    return l->io.ring ? "" : l->io.why;
}

struct corio_loop *corio_loop_current(void)
{
    return corio__tls_loop;
}

bool corio_loop_has(const struct corio_loop *l, enum corio_feature f)
{
    return (unsigned)f < CORIO_FEAT_COUNT && corio__has(l, f);
}

const struct corio_stats *corio_loop_stats(const struct corio_loop *l)
{
    return &l->stats;
}

void corio_loop_stop(struct corio_loop *l)
{
    if (likely(pthread_equal(l->owner, pthread_self())))
        corio__coro_cancel_all(l);
    else
        corio__remote_stop(l); /* a message the loop acts on */
}

/* ---- waiting for the kernel ------------------------------------------------------------------ */

/* SQPOLL: the kernel's poller submits and, awake, completes without us. Spins on the CQ while it
 * is awake (or for sqpoll_spin_us), so that a busy loop makes no system call at all; bounded by
 * the earliest timer (@next, -1: none); ends when the poller sleeps or CQEs overflow, which need
 * an enter. Returns 1 when the loop can go on without waiting, 0 when it must wait in the kernel,
 * or -errno. */
static int sqpoll_spin(struct corio_loop *l, int64_t next)
{
    bool awake = l->opts.sqpoll_spin_us == CORIO_SQPOLL_SPIN_AWAKE;
    /* Publish what the coroutines prepared first (no system call while the poller is awake; the
     * wake-up if it sleeps): the poller cannot complete what it cannot see. */
    int err = corio__op_flush(&l->io);
    if (err)
        return err;
    int64_t now = corio_now(), end = INT64_MAX;
    if (!awake)
        end = now + (int64_t)l->opts.sqpoll_spin_us * 1000;
    if (next >= 0 && next < end)
        end = next;
    for (;;) {
        if (corio__op_has_cqes(&l->io) || corio__remote_pending(&l->remote))
            return 1;
        if (now >= end || corio__op_poller_asleep(&l->io))
            break;
        corio__cpu_relax();
        now = corio_now();
    }
    /* A timer is due: the loop fires it without asking the kernel. */
    return next >= 0 && next <= now;
}

/* How many completions an idle wait asks for: twice as many as recent wake-ups brought (a moving
 * average) once they bring several, so that a busy loop batches more and more and a quiet one
 * answers at once; the kernel holds out at most batch_wait_us for them. */
static unsigned batch_size(const struct corio_loop *l)
{
    unsigned batch = l->batch_avg / 16;
    /* A loop that has been waking for one completion at a time (a lone connection) waits for one:
     * asking for two would only add the time cap to every wake-up. */
    batch = batch < 2 ? 1 : batch * 2;
    if (batch > 64)
        batch = 64;
    /* Never more than could come: the completions the loop still expects. */
    if (batch > l->io.inflight)
        batch = (unsigned)l->io.inflight;
    return batch;
}

/* Without EXT_ARG (before 5.11) the wait cannot time out by itself: a timeout op of the loop's own
 * wakes it at the earliest timer (@next), unless one already in flight comes first. One armed for
 * a later timer does not do: the earlier one would fire late. (The kernel reads wake_ts when the op
 * is submitted, within the wait that follows.) */
static void arm_wake(struct corio_loop *l, int64_t next)
{
    if (next < 0 || (l->wake_armed && next >= l->wake_deadline))
        return;
    corio__ts_from_ns(&l->wake_ts, next);
    const struct corio__op op = {.opcode = CORIO__OP_TIMEOUT, .addr = &l->wake_ts};
    corio__op_submit_untracked(&l->io, &op, &l->wake);
    l->wake_armed++;
    l->wake_deadline = next;
}

/* Gives back the stacks that the coroutines of the last second did not need, at most once a
 * second. Only looked at when more stacks are free than live (and more than a few): the load has
 * dropped. A loop in that state waits in the kernel anyway, so the clock read is noise. */
static void maybe_trim(struct corio_loop *l)
{
    if (likely(l->stacks.n_free <= 64 || l->stacks.n_free <= l->stacks.n_live))
        return;
    int64_t now = corio_now();
    if (now < l->trim_at)
        return;
    corio__stack_pool_trim(&l->stacks);
    l->trim_at = now + CORIO_SEC(1);
}

/* The virtual clock's idle wait, for a loop with nothing to run whose earliest timer (@next) is
 * not due: it submits what is queued and looks once, without waiting, for I/O that completes at
 * once; if none did and no message came, the clock jumps to the timer, which then fires as if its
 * time had been waited out. A call on a worker thread (corio_blocking, the epoll backend's files)
 * will end without a look seeing it coming: while one runs, the loop waits for real. Returns 1 to
 * wait for real, else 0 or -errno. */
static int virtual_wait(struct corio_loop *l, int64_t next)
{
    if (corio__blocking_busy(l) || corio__op_on_workers(&l->io))
        return 1;
    int err = corio__op_wait(&l->io, 0, 1, 0);
    if (err == -EOPNOTSUPP) /* no EXT_ARG: the flush submits, and posts what completes inline */
        err = corio__op_flush(&l->io);
    if (err)
        return err;
    if (!corio__op_has_cqes(&l->io) && !corio__remote_pending(&l->remote))
        corio__clock_jump(next);
    return 0;
}

/* What an idle wait does first on a loop with an SQ poller (spin while it is awake) or on the
 * virtual clock (jump instead of waiting for a timer). Returns 1 to go on and wait in the kernel,
 * else 0 or -errno. */
static int before_wait(struct corio_loop *l, int64_t next)
{
    if (l->opts.flags & CORIO_LOOP_VIRTUAL_CLOCK) {
        if (next >= 0 && next > corio_now())
            return virtual_wait(l, next);
        return 1;
    }
    int r = sqpoll_spin(l, next);
    return r < 0 ? r : r == 0;
}

/* Waits with the kernel for the next completion or the earliest timer. Returns 0 or -errno. */
static int idle_wait(struct corio_loop *l)
{
    maybe_trim(l);
    int64_t next = corio__sched_next_timer(&l->sched);
    /* One flag serves the poller and the virtual clock: an idle wait for I/O alone, the NOP
     * round trip's, pays nothing for the virtual clock. */
    if (unlikely(l->before_wait)) {
        int r = before_wait(l, next);
        if (r <= 0)
            return r;
    }
    /* After the spin: the time left until the earliest timer. */
    int64_t timeout = -1;
    if (next >= 0) {
        timeout = next - corio_now();
        if (timeout < 0)
            timeout = 0;
    }
    if (!corio__remote_sleep(&l->remote))
        return 0; /* a message came: no wait (the next iteration runs it) */
    int err = corio__op_wait(&l->io, timeout, batch_size(l), l->opts.batch_wait_us);
    if (err == -EOPNOTSUPP) {
        arm_wake(l, next);
        err = corio__op_wait(&l->io, -1, 1, 0);
    }
    corio__remote_awake(&l->remote);
    return err;
}

/* ---- running --------------------------------------------------------------------------------- */

/* Runs the coroutines that are runnable now; those they wake run in the next iteration, after the
 * ring has had its say. A coroutine whose body returned is finished here, off its stack. Inlined
 * into corio_loop_step too: with two callers gcc makes it a call, which costs corio_loop_run's
 * iteration 15 instructions per NOP round trip (benchmarks/instr-per-nop). */
__attribute__((always_inline)) static inline void run_batch(struct corio_loop *l)
{
    struct corio__task *t;
    corio__sched_batch(&l->sched);
    while ((t = corio__sched_pop(&l->sched))) {
        struct corio__task *back = corio__sched_resume(&l->sched, t);
        if (back->state == CORIO__T_DONE)
            corio__coro_finish(corio__coro_of(back));
    }
}

/* Nothing is runnable, no op is in flight and no timer is set, yet coroutines are alive: they wait
 * for each other. Nothing can ever wake them, so cancel them all rather than hang. Returns true
 * if that woke any. */
static bool break_deadlock(struct corio_loop *l)
{
    l->deadlock = true;
    corio_loop_stop(l);
    /* Nothing woke: every one of them is in a wait that ignores cancellation. Give up. */
    return !corio__sched_idle(&l->sched);
}

/* One iteration's exchange with the kernel: submit, and wait when nothing is runnable. Returns 1
 * to go round again at once, 0 to go on to reap, or -1 to end the loop (a deadlock that
 * cancelling does not break). A kernel failure cannot happen here and is a panic. */
static int exchange(struct corio_loop *l, bool *idle)
{
    int err;
    *idle = corio__sched_idle(&l->sched);
    if (*idle) {
        if (l->io.inflight == 0 && l->sched.timers.n == 0 &&
            corio__op_unsubmitted(&l->io) == 0 && !(l->opts.flags & CORIO_LOOP_REMOTE))
            return break_deadlock(l) ? 1 : -1;
        /* CQEs already waiting (spilled while a full SQ was flushed) are reaped at once. */
        if (corio__op_has_cqes(&l->io)) {
            err = corio__op_flush(&l->io);
        } else {
            /* However long the wait (or the SQPOLL spin) lasts, it is no stall: the mark holds
             * until the next iteration's start, past the reap, which runs no user code. */
            corio__stall_idle(l->stall);
            err = idle_wait(l);
        }
    } else if (corio__op_quiet(&l->io)) {
        /* Coroutines keep each other busy and the ring has nothing for us. */
        if (l->sched.timers.n)
            corio__sched_fire_timers(&l->sched);
        return 1;
    } else {
        err = corio__op_flush(&l->io);
    }
    if (unlikely(err))
        corio__panic("io_uring_enter failed: %s", strerror(-err));
    return 0;
}

int corio_loop_run(struct corio_loop *l)
{
    /* The owner first: another thread must not read the loop's state, which its own thread
     * writes without atomics. */
    if (!pthread_equal(l->owner, pthread_self()))
        return -EPERM;
    if (l->running)
        return -EBUSY;
    struct corio_loop *prev = corio__tls_loop;
    corio__tls_loop = l;
    l->running = true;
    l->deadlock = false;
    corio__sched_enter(&l->sched);
    if (l->opts.stall_ms && l->coros.live > 0)
        corio__stall_start(l, &l->stall, l->opts.stall_ms); /* on failure: unwatched */
    if (CORIO__METRICS)
        corio__metrics_running(l, true);
    while (l->coros.live > 0) {
        l->stats.iterations++;
        corio__stall_progress(l->stall);
        if (unlikely(corio__metrics_due(l->stats.iterations)))
            corio__metrics_publish(l);
        if (unlikely(corio__remote_pending(&l->remote)))
            corio__remote_drain(l);
        run_batch(l);
        if (l->coros.live == 0)
            break;
        bool idle;
        int r = exchange(l, &idle);
        if (r < 0)
            break;
        if (r > 0)
            continue;
        unsigned got = corio__op_reap(&l->io);
        if (idle) /* 16ths, weight 1/8: avg' = avg + (16 got - avg) / 8 */
            l->batch_avg = l->batch_avg - l->batch_avg / 8 + (got > 64 ? 64 : got) * 2;
        if (l->sched.timers.n)
            corio__sched_fire_timers(&l->sched);
    }
    if (l->stall) {
        struct corio__stall *s = l->stall;
        l->stall = NULL; /* first: a report asked for now finds no detector */
        corio__stall_stop(s);
    }
    l->running = false;
    l->coros.stopping = false;
    corio__drain_end(l);
    if (CORIO__METRICS)
        corio__metrics_running(l, false); /* a loop that is not running cannot answer a reader */
    corio__tls_loop = prev;
    return l->deadlock ? -EDEADLK : 0;
}

/* corio_run's coroutine: the caller's function, and whether it returned on its own, before the
 * loop had to break a deadlock by cancelling everyone. */
struct run_call {
    corio_fn *fn;
    void *arg;
    int result;
    bool returned; /* before any deadlock was broken */
};

static int run_body(void *p)
{
    struct run_call *c = p;
    c->result = c->fn(c->arg);
    c->returned = !corio__tls_loop->deadlock;
    return c->result;
}

int corio_run(corio_fn *fn, void *arg, const struct corio_loop_opts *opts)
{
    struct corio_loop *l;
    int err = corio_loop_new(&l, opts);
    if (err)
        return err;
    struct run_call c = {.fn = fn, .arg = arg};
    err = corio_spawn(NULL, l, run_body, &c);
    if (!err)
        err = corio_loop_run(l);
    corio_loop_free(l);
    /* Coroutines it left behind that deadlocked after it returned are theirs, not its. */
    return c.returned ? c.result : err;
}

/* ---- driven by another event loop ------------------------------------------------------------ */

int corio_loop_fd(struct corio_loop *l)
{
    if (!pthread_equal(l->owner, pthread_self()))
        return -EPERM;
    /* Asked for on both backends alike, though only io_uring's setup depends on it. */
    if (!(l->opts.flags & CORIO_LOOP_FOREIGN))
        return -EINVAL;
    return corio__op_fd(&l->io);
}

int64_t corio_loop_timeout(struct corio_loop *l)
{
    if (!corio__sched_idle(&l->sched) || corio__remote_pending(&l->remote) ||
        !corio__op_settled(&l->io))
        return 0;
    int64_t next = corio__sched_next_timer(&l->sched);
    int64_t op_next = corio__op_next_deadline(&l->io);
    if (op_next >= 0 && (next < 0 || op_next < next))
        next = op_next;
    if (next < 0)
        return -1;
    int64_t left = next - corio_now();
    return left > 0 ? left : 0;
}

/* One step's work, between entering and leaving the loop: the messages from other threads, what
 * the kernel has finished, the timers that are due, one batch of the coroutines ready, and the
 * submission of what they started. Returns 0 or -errno. */
static int step_once(struct corio_loop *l)
{
    l->stats.iterations++;
    if (corio__remote_pending(&l->remote))
        corio__remote_drain(l);
    int err = corio__op_nowait(&l->io);
    if (err)
        return err;
    corio__op_reap(&l->io);
    if (l->sched.timers.n)
        corio__sched_fire_timers(&l->sched);
    /* One batch, not until none is ready: coroutines that keep each other ready would keep the
     * embedder's own callbacks waiting for ever. corio_loop_timeout is 0 while any is ready. */
    run_batch(l);
    maybe_trim(l);
    return corio__op_flush(&l->io);
}

int corio_loop_step(struct corio_loop *l)
{
    /* The owner first: another thread may not even read the loop's state. */
    if (!pthread_equal(l->owner, pthread_self()))
        return -EPERM;
    if (l->running || corio__tls_task)
        return -EBUSY;
    struct corio_loop *prev = corio__tls_loop;
    corio__tls_loop = l;
    l->running = true;
    corio__sched_enter(&l->sched);
    corio__remote_awake(&l->remote);
    int err = step_once(l);
    /* Between steps the loop sleeps in the embedder's wait: a sender must write the eventfd that
     * makes the fd readable. A message that came meanwhile makes corio_loop_timeout 0. */
    corio__remote_sleep(&l->remote);
    /* No deadlock is broken here, unlike corio_loop_run: the embedder's own callbacks may still
     * wake the coroutines (a post, a spawn, a stop), and until they do corio_loop_timeout says
     * there is nothing to do but wait for the fd. */
    if (l->coros.live == 0)
        l->coros.stopping = false;
    l->running = false;
    corio__tls_loop = prev;
    if (err)
        return err;
    return l->coros.live > 0;
}
