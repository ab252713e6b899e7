/* The worker pool: threads started on demand, one queue of jobs under one mutex, and an eventfd
 * that tells the loop when jobs are done. Jobs are blocking system calls that take microseconds to
 * milliseconds, so one lock per job is not what costs; the point is that the loop's thread never
 * waits for one. */
#include "pool.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

int corio__pool_init(struct corio__pool *p, unsigned max_threads)
{
    return corio__pool_setup(p, max_threads, 0, false);
}

int corio__pool_setup(struct corio__pool *p, unsigned max_threads, unsigned max_queue,
                      bool blocking_efd)
{
    p->efd = eventfd(0, EFD_CLOEXEC | (blocking_efd ? 0 : EFD_NONBLOCK));
    if (p->efd < 0)
        return -errno;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    corio__list_init(&p->queue);
    corio__list_init(&p->done);
    p->threads = NULL;
    p->n_threads = 0;
    p->max_threads = max_threads ? max_threads : 1;
    p->idle = 0;
    p->queued = 0;
    p->max_queue = max_queue;
    p->stop = false;
    return 0;
}

static void *worker(void *arg)
{
    struct corio__pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (corio__list_empty(&p->queue) && !p->stop) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->idle--;
        }
        if (p->stop)
            break;
        struct corio__list *n = corio__list_pop_front(&p->queue);
        struct corio__pool_job *job = container_of(n, struct corio__pool_job, link);
        job->started = true;
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        job->fn(job);
        pthread_mutex_lock(&p->mu);
        corio__list_push_back(&p->done, &job->link);
        /* Pairs with the loop's read in corio__pool_collect: the job is on the done list before
         * the loop can see the count. */
        uint64_t one = 1;
        ssize_t w = write(p->efd, &one, sizeof(one));
        (void)w; /* the counter cannot overflow with one job at a time per write */
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void corio__pool_fini(struct corio__pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    close(p->efd);
}

/* Starts one more worker, under the lock. Returns 0 or -errno. */
static int grow(struct corio__pool *p)
{
    pthread_t *t = realloc(p->threads, (p->n_threads + 1) * sizeof(*t));
    if (!t)
        return -ENOMEM;
    p->threads = t;
    int err = pthread_create(&t[p->n_threads], NULL, worker, p);
    if (err)
        return -err;
    p->n_threads++;
    return 0;
}

int corio__pool_submit(struct corio__pool *p, struct corio__pool_job *job)
{
    int err = 0;
    job->started = false;
    pthread_mutex_lock(&p->mu);
    if (p->max_queue && p->queued >= p->max_queue) {
        pthread_mutex_unlock(&p->mu);
        return -EAGAIN;
    }
    corio__list_push_back(&p->queue, &job->link);
    p->queued++;
    /* One more worker when the queue holds more jobs than workers wait (a signalled worker
     * counts as idle until it wakes), up to the bound: the queue then only holds what the bound
     * makes wait. */
    if (p->queued > p->idle && p->n_threads < p->max_threads)
        err = grow(p);
    if (err && p->n_threads > 0)
        err = 0; /* the workers there are will take it */
    if (err) {
        corio__list_remove(&job->link);
        p->queued--;
    } else {
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return err;
}

bool corio__pool_withdraw(struct corio__pool *p, struct corio__pool_job *job)
{
    pthread_mutex_lock(&p->mu);
    bool queued = !job->started;
    if (queued) {
        corio__list_remove(&job->link);
        p->queued--;
    }
    pthread_mutex_unlock(&p->mu);
    return queued;
}

unsigned corio__pool_collect(struct corio__pool *p, struct corio__list *out)
{
    uint64_t n;
    ssize_t r = read(p->efd, &n, sizeof(n));
    (void)r; /* EAGAIN when nothing was signalled: the list is what counts */
    return corio__pool_take(p, out);
}

unsigned corio__pool_take(struct corio__pool *p, struct corio__list *out)
{
    unsigned k = 0;
    pthread_mutex_lock(&p->mu);
    for (struct corio__list *i = p->done.next; i != &p->done; i = i->next)
        k++;
    corio__list_splice(out, &p->done);
    pthread_mutex_unlock(&p->mu);
    return k;
}
