/* Loops on every core: corio_run_threads starts N loops on N threads (the caller's is the first),
 * each running the same function as its first coroutine, optionally pinned to a CPU each. The
 * loops find each other through corio_thread_loop and hand each other work through the messages
 * of remote.c (corio_loop_post, corio_spawn onto another loop); corio_threads_stop stops them all
 * from any thread. Each loop has its own ring, stacks and pools: what the threads share is the
 * group's table of loops, written before any of them runs and read only after.
 *
 * Start and end are two barriers: every loop is made (each on its own thread, which owns it)
 * before any runs, so that a coroutine may address any loop at once; and every loop has stopped
 * running before any is freed, so that no loop of the group posts to a freed one. */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

/* The loops of one corio_run_threads call. */
struct group {
    unsigned n;
    unsigned flags;
    corio_fn *fn;
    void *arg;
    struct corio_loop_opts opts; /* every loop's */
    pthread_mutex_t mu;          /* guards gate */
    pthread_cond_t cv;
    int gate;                    /* 0 until every thread exists; then 1 (go) or -1 (give up) */
    pthread_barrier_t made;      /* every loop exists (or failed) */
    pthread_barrier_t ended;     /* every loop has stopped running */
    struct corio_loop **loops;   /* loops[i] is thread i's; thread 0 is the caller */
    int *errs;                   /* per loop: its creation's or its run's error, or fn's result */
};

/* The group and index of the calling thread's loop, while corio_run_threads runs it. */
static _Thread_local struct group *tls_group;
static _Thread_local unsigned tls_index;

/* Pins the calling thread to the @i-th CPU it may run on, wrapping around. Best effort. */
static void pin(unsigned i)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) <= 0)
        return;
    unsigned want = i % (unsigned)CPU_COUNT(&allowed), seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && seen++ == want) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            (void)sched_setaffinity(0, sizeof(one), &one);
            return;
        }
    }
}

static int first_coroutine(void *arg)
{
    struct group *g = arg;
    int r = g->fn(g->arg);
    /* A function ended by the group's stop (corio_threads_stop, or another loop's end) reports
     * -ECANCELED: the stop, not a failure. */
    if (r != 0 && r != -ECANCELED)
        g->errs[tls_index] = r;
    return r;
}

/* Thread @i's life: make its loop, wait for the others', run, wait for the others to end, free. */
static void run_one(struct group *g, unsigned i)
{
    tls_group = g;
    tls_index = i;
    cpu_set_t before;
    bool restore = (g->flags & CORIO_THREADS_PIN) &&
                   sched_getaffinity(0, sizeof(before), &before) == 0;
    if (g->flags & CORIO_THREADS_PIN)
        pin(i);
    int err = corio_loop_new(&g->loops[i], &g->opts);
    if (err) {
        g->loops[i] = NULL;
        g->errs[i] = err;
    }
    pthread_barrier_wait(&g->made);
    bool all = true;
    for (unsigned k = 0; k < g->n; k++)
        all = all && g->loops[k];
    if (all) {
        err = corio_spawn(NULL, g->loops[i], first_coroutine, g);
        if (!err)
            err = corio_loop_run(g->loops[i]);
        if (err && !g->errs[i])
            g->errs[i] = err;
        /* One loop ended (its function returned, or it was stopped): the others stop too, so
         * that a failure on one core does not leave the rest serving without it. */
        corio_threads_stop();
    }
    pthread_barrier_wait(&g->ended);
    corio_loop_free(g->loops[i]);
    if (restore) /* the caller's thread goes back to the CPUs it had */
        (void)sched_setaffinity(0, sizeof(before), &before);
    tls_group = NULL;
}

struct thread_arg {
    struct group *g;
    unsigned i;
};

static void *thread_main(void *p)
{
    struct thread_arg *ta = p;
    struct group *g = ta->g;
    /* The barriers count every thread: none is entered before all of them exist. */
    pthread_mutex_lock(&g->mu);
    while (g->gate == 0)
        pthread_cond_wait(&g->cv, &g->mu);
    int gate = g->gate;
    pthread_mutex_unlock(&g->mu);
    if (gate > 0)
        run_one(g, ta->i);
    return NULL;
}

static void open_gate(struct group *g, int gate)
{
    pthread_mutex_lock(&g->mu);
    g->gate = gate;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

int corio_run_threads(unsigned n, corio_fn *fn, void *arg, const struct corio_loop_opts *opts,
                      unsigned flags)
{
    if (n == 0 || n > 4096 || !fn || tls_group)
        return -EINVAL;
    struct group g = {.n = n, .flags = flags, .fn = fn, .arg = arg};
    if (opts)
        g.opts = *opts;
    g.opts.flags |= CORIO_LOOP_REMOTE; /* they wait for each other's messages */
    g.loops = calloc(n, sizeof(*g.loops));
    g.errs = calloc(n, sizeof(*g.errs));
    pthread_t *th = calloc(n, sizeof(*th));
    struct thread_arg *ta = calloc(n, sizeof(*ta));
    int err = 0;
    if (!g.loops || !g.errs || !th || !ta) {
        err = -ENOMEM;
        goto out;
    }
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    pthread_barrier_init(&g.made, NULL, n);
    pthread_barrier_init(&g.ended, NULL, n);
    unsigned started = 1;
    for (; started < n; started++) {
        ta[started] = (struct thread_arg){&g, started};
        int e = pthread_create(&th[started], NULL, thread_main, &ta[started]);
        if (e) {
            err = -e;
            break;
        }
    }
    open_gate(&g, err ? -1 : 1);
    if (!err)
        run_one(&g, 0);
    for (unsigned k = 1; k < started; k++)
        pthread_join(th[k], NULL);
    pthread_barrier_destroy(&g.made);
    pthread_barrier_destroy(&g.ended);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    for (unsigned k = 0; k < n && !err; k++)
        if (g.errs[k])
            err = g.errs[k];
out:
    free(g.loops);
    free(g.errs);
    free(th);
    free(ta);
    return err;
}

unsigned corio_thread_index(void)
{
    return tls_group ? tls_index : 0;
}

unsigned corio_thread_count(void)
{
    return tls_group ? tls_group->n : 1;
}

struct corio_loop *corio_thread_loop(unsigned i)
{
    if (!tls_group)
        return i == 0 ? corio__tls_loop : NULL;
    return i < tls_group->n ? tls_group->loops[i] : NULL;
}

void corio_threads_stop(void)
{
    struct group *g = tls_group;
    if (!g) {
        if (corio__tls_loop)
            corio_loop_stop(corio__tls_loop);
        return;
    }
    for (unsigned k = 0; k < g->n; k++)
        if (g->loops[k])
            corio_loop_stop(g->loops[k]);
}
