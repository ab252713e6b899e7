/* corio_blocking: a function run on one of the loop's worker threads while its caller is parked.
 *
 * The pool (pool.c) is the loop's own, made on the first call: its threads start as calls need
 * them, up to corio_loop_opts.blocking_threads, and corio_loop_free joins them.
 *
 * Wake-ups go through the normal op path, on either backend: a worker that finishes a job signals
 * the pool's eventfd, and the loop reads that eventfd with an ordinary READ op whose completion
 * record is here (io_uring waits for it in the kernel, epoll for its edge). The read is armed only
 * while calls are out, so a loop that makes none reads nothing. It is tracked like any op: a loop
 * whose coroutines all wait for workers has something in flight and is not taken for deadlocked.
 *
 * Lifetimes: a call's record is allocated, not on its caller's stack, because a caller that is
 * cancelled, or whose deadline passes, while its function runs returns at once (a function cannot
 * be interrupted) and its frame goes while the worker still holds the record. The record also
 * stays in its caller's pending list (coro.h) until the worker is done: a caller that ends
 * meanwhile becomes a zombie whose stack is kept, as for an op in flight, so the worker never
 * writes into a stack that another coroutine has taken, and whoever joins the caller sees it end
 * only once its function has. */
#include "blocking.h"

#include "pool.h"
#include "dump.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

/* The defaults of corio_loop_opts.blocking_threads and blocking_queue (corio.h says why). */
#define DEFAULT_THREADS 8
#define DEFAULT_QUEUE 1024

struct corio__blocking {
    struct corio__pool pool;    /* the workers, their queue and the eventfd they signal */
    struct corio__completion c; /* the eventfd read's completion record */
    struct corio__io *io;       /* the loop's I/O, for that read */
    uint64_t count;             /* the read's buffer: the eventfd's count, not used */
    unsigned out;               /* calls on the pool: queued, running, or done and not taken */
    bool armed;                 /* the read is in flight */
    bool poked;                 /* the loop wrote to the eventfd itself, to end the read */
#ifdef CORIO__VALGRIND
    bool ticking;                  /* the tick below is in flight */
    struct corio__completion tick; /* under valgrind on io_uring: a short timeout's record */
    struct corio__ts tick_ts;      /* its deadline, read by the kernel at submission */
#endif
};

/* One call, from its submission until a worker is done with it or it is withdrawn. */
struct job {
    struct corio__pool_job job;        /* on the pool; job.res is fn's result */
    struct corio__pending p;           /* in the caller's pending list meanwhile */
    corio_blocking_fn *fn;             /* what the worker runs */
    void *arg;                         /* its argument */
    corio__blocking_retire_fn *retire; /* takes @arg back for a caller that left, or NULL */
    struct corio__blocking *b;         /* the pool it went to */
    bool *ran;                         /* the parked caller's flag: fn's result is delivered */
    bool left;                         /* the caller stopped waiting: the result is discarded */
};

/* On a worker: the call itself. */
static void run(struct corio__pool_job *pj)
{
    struct job *j = container_of(pj, struct job, job);
    pj->res = j->fn(j->arg);
}

/* Arms the eventfd read, unless it is in flight. */
static void arm(struct corio__blocking *b)
{
    if (b->armed)
        return;
    const struct corio__op op = {.opcode = CORIO__OP_READ,
                                 .fd = b->pool.efd,
                                 .addr = &b->count,
                                 .len = sizeof(b->count),
                                 .off = (uint64_t)-1};
    corio__op_submit(b->io, &op, &b->c, NULL);
    b->armed = true;
}

#ifdef CORIO__VALGRIND
/* valgrind 3.19 (Debian 12's) keeps its big lock through io_uring_enter, which it does not count
 * among the calls that may block: while the loop waits there, no worker thread runs, and a call
 * would finish only when something else ends the wait. Under valgrind on io_uring, a 1 ms timeout
 * op therefore bounds the loop's waits while calls are out, and its completion hands valgrind's
 * lock to the workers with sched_yield, which valgrind does treat as blocking. */
static void tick(struct corio__blocking *b)
{
    if (!corio__on_valgrind || !b->io->ring || b->ticking || !b->out)
        return;
    corio__ts_from_ns(&b->tick_ts, corio_now() + CORIO_MS(1));
    const struct corio__op op = {.opcode = CORIO__OP_TIMEOUT, .addr = &b->tick_ts};
    corio__op_submit(b->io, &op, &b->tick, NULL);
    b->ticking = true;
}

static void ticked(struct corio__completion *c, const struct corio__cqe *cqe, bool link)
{
    (void)cqe;
    (void)link;
    struct corio__blocking *b = container_of(c, struct corio__blocking, tick);
    b->ticking = false;
    sched_yield();
    tick(b);
}
#else
static void tick(struct corio__blocking *b)
{
    (void)b;
}
#endif

/* Whether a tick is in flight. */
static bool ticking(const struct corio__blocking *b)
{
#ifdef CORIO__VALGRIND
    return b->ticking;
#else
    (void)b;
    return false;
#endif
}

/* No call is out any more, yet the read is armed (calls were withdrawn): end it, or the loop
 * would count it in flight for good and never see a deadlock. A write of the loop's own ends it
 * on either backend, also where the read waits on a worker of the epoll backend (a kernel whose
 * eventfd lacks RWF_NOWAIT), which a cancel would not interrupt. The count it leaves, if the
 * read had taken a worker's already, only makes the next read return at once. */
static void disarm(struct corio__blocking *b)
{
    if (!b->armed || b->poked || b->out)
        return;
    uint64_t one = 1;
    ssize_t w = write(b->pool.efd, &one, sizeof(one));
    (void)w; /* the count cannot overflow: one write per finished job or poke */
    b->poked = true;
}

/* @j is off the pool (done, or withdrawn): unlink it from its caller, whose zombie may end now,
 * hand @arg back if the caller left, and free it. */
static void retire(struct job *j)
{
    j->b->out--;
    if (j->left && j->retire)
        j->retire(j->arg);
    corio__pending_done(&j->p);
    free(j);
}

/* The eventfd read completed: workers finished jobs (or the loop poked it). Whatever its result
 * (a transient error changes nothing), the done list is what counts; the read is armed again
 * while calls are out. */
static void woken(struct corio__completion *c, const struct corio__cqe *cqe, bool link)
{
    (void)cqe;
    (void)link;
    struct corio__blocking *b = container_of(c, struct corio__blocking, c);
    b->armed = false;
    b->poked = false;
    struct corio__list done, *n;
    corio__list_init(&done);
    corio__pool_take(&b->pool, &done);
    while ((n = corio__list_pop_front(&done))) {
        struct job *j = container_of(n, struct job, job.link);
        if (!j->left) {
            *j->ran = true;
            corio__unpark(&j->p.owner->t, (int)j->job.res);
        }
        retire(j);
    }
    if (b->out)
        arm(b);
}

/* Withdraws @j if no worker has taken it. Returns true if it was (and is now retired). */
static bool withdraw(struct job *j)
{
    struct corio__blocking *b = j->b;
    if (!corio__pool_withdraw(&b->pool, &j->job))
        return false;
    retire(j);
    disarm(b);
    return true;
}

/* The caller is cancelled, or a deadline passed, while it waits: a call not yet taken by a worker
 * is withdrawn and never runs; one that runs is left to finish, its result discarded. Either way
 * the caller goes on at once. */
static void abort_wait(struct corio__task *t, int why)
{
    struct job *j = t->wait_obj;
    j->left = true;
    withdraw(j);
    corio__unpark(t, why);
}

/* The caller ended with @p linked: its call was left while a worker ran it (a waiting caller
 * cannot end). The record unlinks itself once the worker is done, and the zombie ends then. */
static void owner_ended(struct corio__pending *p)
{
    withdraw(container_of(p, struct job, p));
}

/* The pool of @l, made on first use. Returns it, or NULL with *err set. */
static struct corio__blocking *pool_of(struct corio_loop *l, int *err)
{
    if (likely(l->blocking != NULL))
        return l->blocking;
    struct corio__blocking *b = calloc(1, sizeof(*b));
    if (!b) {
        *err = -ENOMEM;
        return NULL;
    }
    unsigned threads = l->opts.blocking_threads ? l->opts.blocking_threads : DEFAULT_THREADS;
    unsigned queue = l->opts.blocking_queue ? l->opts.blocking_queue : DEFAULT_QUEUE;
    *err = corio__pool_setup(&b->pool, threads, queue, true);
    if (*err) {
        free(b);
        return NULL;
    }
    b->io = &l->io;
    b->c.complete = woken;
#ifdef CORIO__VALGRIND
    b->tick.complete = ticked;
#endif
    l->blocking = b;
    return b;
}

/* Puts fn(arg) on the pool of @t's loop, linked to @t's coroutine. Returns the record in *out and
 * 0, or -errno. */
static int submit(struct corio__task *t, corio_blocking_fn *fn, void *arg,
                  corio__blocking_retire_fn *ret, bool *ran, struct job **out)
{
    struct corio_coro *co = corio__coro_of(t);
    int err = 0;
    struct corio__blocking *b = pool_of(co->loop, &err);
    if (!b)
        return err;
    struct job *j = malloc(sizeof(*j));
    if (!j)
        return -ENOMEM;
    *j = (struct job){.job.fn = run, .fn = fn, .arg = arg, .retire = ret, .b = b, .ran = ran};
    j->p.owner = co;
    j->p.cancel = owner_ended;
    err = corio__pool_submit(&b->pool, &j->job);
    if (err) {
        free(j);
        return err;
    }
    corio__pending_stamp(&j->p, CORIO__PENDING_BLOCKING, -1);
    corio__pending_add(&j->p);
    b->out++;
    arm(b);
    tick(b);
    *out = j;
    return 0;
}

int corio__blocking_run(corio_blocking_fn *fn, void *arg, int64_t deadline,
                        corio__blocking_retire_fn *ret, bool *ran)
{
    bool got = false;
    struct corio__task *t;
    struct job *j;
    int r = fn ? corio__wait_check(&t, deadline) : -EINVAL;
    if (r == 0)
        r = submit(t, fn, arg, ret, &got, &j);
    if (r == 0)
        r = corio__park(t, deadline, abort_wait, j);
    else if (ret)
        ret(arg);
    if (ran)
        *ran = got;
    return r;
}

int corio_blocking(corio_blocking_fn *fn, void *arg, int64_t deadline)
{
    return corio__blocking_run(fn, arg, deadline, NULL, NULL);
}

bool corio__blocking_busy(const struct corio_loop *l)
{
    return l->blocking && l->blocking->out > 0;
}

void corio__blocking_free(struct corio_loop *l)
{
    struct corio__blocking *b = l->blocking;
    if (!b)
        return;
    CORIO__ASSERT(b->out == 0);
    /* The loop may have ended with a poked read (or a tick) not yet completed: their records are
     * here. */
    while (b->armed || ticking(b)) {
        disarm(b);
        int err = corio__op_wait(b->io, -1, 1, 0);
        if (err)
            corio__panic("waiting for the blocking pool's read: %d", err);
        corio__op_reap(b->io);
    }
    corio__pool_fini(&b->pool);
    free(b);
    l->blocking = NULL;
}

/* ---- what a parked coroutine waits for (corio_loop_dump) --------------------------------------*/

const char *corio__blocking_wait_name(corio__abort_fn *a)
{
    return a == abort_wait ? "a blocking call" : NULL;
}
