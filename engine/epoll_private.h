/* The epoll backend's private header: its records, its fd table and its state, shared by epoll.c
 * (the engine: queues, readiness, deadlines, cancels, completions) and epoll_ops.c (how each op is
 * tried without blocking, and run on a worker when it would block). */
#ifndef CORIO_EPOLL_PRIVATE_H
#define CORIO_EPOLL_PRIVATE_H

#include "epoll.h"

#include "heap.h"
#include "list.h"
#include "pool.h"

#include <sys/epoll.h>

/* Where a record is. */
enum {
    R_FREE = 0, /* in the free list */
    R_QUEUED,   /* prepared, not yet tried */
    R_WAITING,  /* in its fd's waiters, for readiness */
    R_WORKING,  /* on a worker of the pool */
    R_TIMER,    /* a TIMEOUT op: only its deadline ends it */
    R_LOOSE,    /* in no list: being finished, or off the pool */
};

/* Which waiters of an fd a record is among: those of a direction, tried in turn when it becomes
 * ready, or the readiness waits (POLL), each told of every edge. */
enum { DIR_IN = 0, DIR_OUT = 1, DIR_POLL = 2, DIR_LISTS = 3 };

/* What an fd is registered for: both directions, urgent data for POLLPRI waits, and the peer's
 * shutdown, edge-triggered. */
#define CORIO__PFD_EVENTS (EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP | EPOLLET)

/* The events a readiness wait for @want reports, as io_uring's poll does: those asked for, and
 * errors, hang-ups and the peer's shutdown always (EPOLL and POLL bits are the same numbers). */
static inline uint32_t corio__poll_want(uint32_t want)
{
    return want | EPOLLERR | EPOLLHUP | EPOLLRDHUP;
}

/* What trying an op gave. */
enum {
    TRY_DONE,  /* finished: post its result */
    TRY_WAIT,  /* would block: wait for readiness in r->dir */
    TRY_POOL,  /* would block a worker, not the loop: run it on the pool */
    TRY_KEEP,  /* a multishot that posted what it could and stays armed */
};

/* What the backend knows of an fd it has tried or waited on. */
enum { K_UNKNOWN = 0, K_FILE, K_STREAM, K_PIPE, K_OTHER };

struct pfd {
    /* Records waiting for readiness, a FIFO per DIR_. */
    struct corio__list waiters[DIR_LISTS];
    int fd;                        /* its number */
    uint8_t kind;                  /* K_*: from fstat, once */
    bool registered;               /* in the epoll set (edge-triggered, in and out) */
    bool owned;                    /* corio made it (accept, socket, open): corio sees it go */
    bool listener;                 /* a listening socket, made non-blocking for accept */
    bool ready[2];                 /* may not block in that direction: not known otherwise */
    bool hup[2];                   /* that direction hung up (end of stream, error): it stays
                                      ready, with no further edge to say so */
};

/* A pending op: the backend's own storage for what the kernel keeps in io_uring. */
struct prec {
    struct corio__op op;         /* the op as prepared (the fault seam may have changed it) */
    uint64_t ud;                 /* its CQE's user_data */
    uint64_t link_ud;            /* its linked timeout's user_data; 0: none */
    struct corio__timer timer;   /* its deadline in the backend's heap, if it has one */
    struct corio__pool_job job;  /* while it runs on a worker */
    struct corio__list link;     /* in the queue, its fd's waiters, or the free list */
    struct prec *hnext;          /* next in its user_data hash chain */
    struct pfd *pfd;             /* the fd it waits on, while R_WAITING */
    uint8_t state;               /* R_* */
    uint8_t dir;                 /* DIR_*, while R_WAITING */
    bool expired;                /* its deadline passed while a worker ran it */
    bool cancelled;              /* cancelled while a worker ran it */
    bool started;                /* CONNECT: in progress, its outcome comes from SO_ERROR */
    bool lazy;                   /* CORIO__OP_LAZY: its wait is not counted in p->waiting */
    int64_t done;                /* a MSG_WAITALL recv: bytes received so far */
    int restore_flags;           /* CONNECT on a blocking socket: its file status flags; -1 */
};

/* An emulated provided-buffer group. */
struct corio__poll_buf {
    struct iovec *iov;  /* the buffers handed in, a ring of mask + 1 */
    uint16_t *bid;      /* their ids */
    unsigned head;      /* the next to take */
    unsigned tail;      /* one past the last handed in */
    unsigned mask;      /* entries - 1 */
    uint16_t bgid;      /* its group id */
    struct corio__poll_buf *next; /* in the backend's list of groups */
};

#define POLL_EVENTS 64

struct corio__poll {
    int epfd;                       /* the epoll instance */
    struct corio_stats *stats;      /* the loop's counters */
    struct corio__ring_view view;   /* what the loop's inline checks read (see epoll.c) */
    unsigned sq_tail;               /* ops prepared */
    unsigned sq_head;               /* ops tried */
    unsigned cq_head;               /* completions reaped */
    unsigned cq_tail;               /* completions posted */
    unsigned attention;             /* nonzero while something outside the queue can finish an
                                       op (readiness, a deadline, a worker): enter must look */
    unsigned zero;                  /* the view's spill count: always 0 */
    struct corio__cqe *cq;          /* posted completions, a ring of cq_cap */
    unsigned cq_cap;                /* a power of two */
    struct corio__list queue;       /* R_QUEUED records, in order */
    struct corio__heap deadlines;   /* records with a deadline */
    struct prec **hash;             /* user_data -> record, chained */
    unsigned hash_cap;              /* buckets, a power of two */
    unsigned live;                  /* records in use */
    unsigned waiting;               /* records waiting for readiness */
    struct prec *free;              /* free records, linked by hnext */
    struct prec **chunks;           /* the record storage, allocated in chunks */
    unsigned n_chunks;
    struct pfd **fds;               /* the fd table, in chunks of 256 entries */
    unsigned fd_chunks;
    struct corio__pool pool;        /* workers for what would block */
    unsigned working;               /* jobs on the pool not yet collected */
    struct corio__poll_buf *bufs;   /* the provided-buffer groups */
    struct epoll_event events[POLL_EVENTS]; /* epoll_wait's output */
};

#define CORIO__PFD_CHUNK 256 /* fd entries per table chunk */

/* Creates the table chunk of @fd (corio__pfd's slow path). NULL when out of memory or fd < 0. */
struct pfd *corio__pfd_grow(struct corio__poll *p, int fd);

/* Returns the entry of fd @fd, creating it. NULL only when out of memory or fd < 0. Inline:
 * every op looks its fd up at least once. */
static inline struct pfd *corio__pfd(struct corio__poll *p, int fd)
{
    unsigned c = (unsigned)fd / CORIO__PFD_CHUNK;
    if (fd >= 0 && c < p->fd_chunks && p->fds[c])
        return &p->fds[c][(unsigned)fd % CORIO__PFD_CHUNK];
    return corio__pfd_grow(p, fd);
}

/* Tries @r's op without blocking; may post CQEs (multishot). Returns TRY_*; with TRY_DONE the
 * result is in *res; with TRY_WAIT, r->dir says which readiness. */
int corio__poll_try(struct corio__poll *p, struct prec *r, int64_t *res);

/* Runs @r's op on a worker, blocking (corio__pool_fn). */
void corio__poll_blocking(struct corio__pool_job *job);

/* Puts back the file status flags a CONNECT on a blocking socket changed. Returns nothing. */
void corio__poll_restore_flags(int fd, int flags);

/* Posts a completion. Returns nothing. */
void corio__poll_post(struct corio__poll *p, uint64_t ud, int32_t res, uint32_t flags);

/* Finds the group of @bgid. Returns it, or NULL. */
struct corio__poll_buf *corio__poll_buf_find(struct corio__poll *p, uint16_t bgid);

/* Before a new op on @f: the registration of an fd corio did not make may belong to a file the
 * program closed behind corio's back (close(2)) and whose number is now another's. It is checked
 * with EPOLL_CTL_MOD and, if gone, forgotten. Returns nothing. */
void corio__poll_check(struct corio__poll *p, struct pfd *f);

/* @fd is a new file corio made (accept, socket, open): forget what the number meant before, and
 * trust its registration from now on. Returns nothing. */
void corio__poll_adopt(struct corio__poll *p, int fd);

/* The fd @fd no longer names what the backend knew (closed, or a new file): forget it, ending
 * the ops still waiting on it with @res. Returns nothing. */
void corio__poll_forget(struct corio__poll *p, int fd, int32_t res);

#endif
