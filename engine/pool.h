/* A small pool of worker threads that run calls which may block (pool.c): file I/O on the epoll
 * backend, where regular files never report readiness. A job is run on a worker and handed back
 * to the loop's thread through a done list and an eventfd the loop watches; the loop never
 * blocks on a job, and a job never touches the loop. */
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

/* A job, in storage the submitter owns until the job comes back from corio__pool_done. */
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
    bool stop;                   /* corio__pool_fini: workers leave */
    int efd;                     /* eventfd a worker signals when it finishes a job */
};

/* Sets up @p with up to @max_threads workers, started on demand. Returns 0 or -errno (the
 * eventfd). */
int corio__pool_init(struct corio__pool *p, unsigned max_threads);

/* Stops the workers (after the jobs they run) and frees @p; jobs still queued are dropped.
 * Returns nothing. */
void corio__pool_fini(struct corio__pool *p);

/* Queues @job. Returns 0, or -errno if no worker could be started at all. */
int corio__pool_submit(struct corio__pool *p, struct corio__pool_job *job);

/* Withdraws @job if no worker has taken it yet. Returns true if it was withdrawn. */
bool corio__pool_withdraw(struct corio__pool *p, struct corio__pool_job *job);

/* Moves the finished jobs to @out (an initialised list) and clears the eventfd. Returns how many
 * there were. */
unsigned corio__pool_collect(struct corio__pool *p, struct corio__list *out);

#endif
