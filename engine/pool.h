/* A small pool of worker threads that run calls which may block (pool.c): file I/O on the epoll
 * backend, where regular files never report readiness, and corio_blocking's calls (blocking.c).
 * A job is run on a worker and handed back to the loop's thread through a done list and an
 * eventfd the loop watches; the loop never blocks on a job, and a job never touches the loop. */
#ifndef CORIO_POOL_H
#define CORIO_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "list.h"

struct corio__pool_job;

/* Runs on a worker: does the blocking work and stores its result in the job. */
typedef void corio__pool_fn(struct corio__pool_job *job);

/* A job, in storage the submitter owns until the job comes back from corio__pool_collect or
 * corio__pool_take, or is withdrawn. */
struct corio__pool_job {
    corio__pool_fn *fn;      /* the work, run on a worker thread */
    struct corio__list link; /* in the queue, then in the done list */
    int64_t res;             /* the result, set by fn */
    bool started;            /* a worker took it: it can no longer be withdrawn */
};

struct corio__pool {
    pthread_mutex_t mu;          /* guards everything below but efd */
    pthread_cond_t cv;           /* workers wait on it for jobs */
    struct corio__list queue;    /* jobs not yet taken */
    struct corio__list done;     /* jobs finished, for the loop to collect */
    pthread_t *threads;          /* the workers started so far */
    unsigned n_threads;          /* how many */
    unsigned max_threads;        /* the most it starts (on demand) */
    unsigned idle;               /* workers waiting for a job */
    unsigned queued;             /* jobs in the queue */
    unsigned max_queue;          /* the most the queue holds; 0: no bound */
    bool stop;                   /* corio__pool_fini: workers leave */
    int efd;                     /* eventfd a worker signals when it finishes a job */
};

/* Sets up @p with up to @max_threads workers, started on demand, an unbounded queue and a
 * non-blocking eventfd, for a loop that polls it (corio__pool_collect). Returns 0 or -errno (the
 * eventfd). */
int corio__pool_init(struct corio__pool *p, unsigned max_threads);

/* As corio__pool_init, with at most @max_queue jobs waiting for a worker (0: no bound) and, with
 * @blocking_efd, an eventfd without O_NONBLOCK: for a loop that waits for it with a read op of
 * its own, which must wait rather than fail (io_uring gives -EAGAIN at once for an O_NONBLOCK
 * file), and which then takes the jobs with corio__pool_take. Returns 0 or -errno. */
int corio__pool_setup(struct corio__pool *p, unsigned max_threads, unsigned max_queue,
                      bool blocking_efd);

/* Stops the workers (after the jobs they run, which it waits for) and frees @p; jobs still
 * queued are dropped, their storage left to the submitter. Returns nothing. */
void corio__pool_fini(struct corio__pool *p);

/* Queues @job. Returns 0, -EAGAIN when the queue holds max_queue jobs already, or -errno if no
 * worker could be started at all. */
int corio__pool_submit(struct corio__pool *p, struct corio__pool_job *job);

/* Withdraws @job if no worker has taken it yet. Returns true if it was withdrawn. */
bool corio__pool_withdraw(struct corio__pool *p, struct corio__pool_job *job);

/* Moves the finished jobs to @out (an initialised list) and clears the eventfd, which must be
 * non-blocking. Returns how many there were. */
unsigned corio__pool_collect(struct corio__pool *p, struct corio__list *out);

/* Moves the finished jobs to @out (an initialised list) without reading the eventfd: for the
 * reader whose own read of it has just consumed the count. Returns how many there were. */
unsigned corio__pool_take(struct corio__pool *p, struct corio__list *out);

#endif
