/* The epoll backend's engine: records, the queue of ops to try, waiting for readiness, deadlines,
 * cancels, the worker pool's results, and the completions posted in io_uring's shapes.
 *
 * Readiness is edge-triggered: an fd joins the epoll set once, for in and out (and urgent data)
 * together, the first time an op on it would block, and stays until corio closes it.
 * Level-triggered would report a readable socket on every epoll_wait until it is read, which for
 * a coroutine that is busy elsewhere is a wake-up with nothing to do; edge-triggered reports each
 * change once, and an op is always tried before it waits, so no readiness is missed. After a read
 * that came back short on a stream (or an EAGAIN), the fd is taken as drained and the next op
 * waits without trying: new data raises a new edge. A readiness wait (corio_poll) looks with
 * poll(2) first and is then told of every edge until one brings what it waits for; a multishot
 * one (corio_poller) is told of every edge until it is cancelled. An fd that
 * corio did not see closed (close(2) instead of corio_close) and whose number is then reused may
 * keep a stale registration: corio_close is the way to close what corio waited on. */
#include "epoll_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"

#define CHUNK CORIO__PFD_CHUNK /* records per allocation, fd entries per table chunk */

/* ---- records --------------------------------------------------------------------------------- */

static struct prec *rec_alloc(struct corio__poll *p)
{
    if (!p->free) {
        struct prec **c = realloc(p->chunks, (p->n_chunks + 1) * sizeof(*c));
        if (!c)
            return NULL;
        p->chunks = c;
        struct prec *recs = calloc(CHUNK, sizeof(*recs));
        if (!recs)
            return NULL;
        c[p->n_chunks++] = recs;
        for (unsigned i = 0; i < CHUNK; i++) {
            recs[i].hnext = p->free;
            p->free = &recs[i];
        }
    }
    struct prec *r = p->free;
    p->free = r->hnext;
    memset(r, 0, sizeof(*r));
    r->timer.idx = CORIO__TIMER_IDLE;
    r->timer.data = r;
    r->restore_flags = -1;
    corio__list_init(&r->link);
    p->live++;
    return r;
}

static unsigned hash_of(const struct corio__poll *p, uint64_t ud)
{
    return (unsigned)((ud >> 3) * 0x9e3779b97f4a7c15ull >> 32) & (p->hash_cap - 1);
}

/* Doubles the hash table when it holds more records than buckets. Returns nothing: a table that
 * cannot grow only gets longer chains. */
static void hash_grow(struct corio__poll *p)
{
    unsigned cap = p->hash_cap * 2;
    struct prec **h = calloc(cap, sizeof(*h));
    if (!h)
        return;
    struct prec **old = p->hash;
    unsigned old_cap = p->hash_cap;
    p->hash = h;
    p->hash_cap = cap;
    for (unsigned i = 0; i < old_cap; i++)
        for (struct prec *r = old[i], *n; r; r = n) {
            n = r->hnext;
            unsigned k = hash_of(p, r->ud);
            r->hnext = h[k];
            h[k] = r;
        }
    free(old);
}

static void hash_add(struct corio__poll *p, struct prec *r)
{
    if (p->live > p->hash_cap)
        hash_grow(p);
    unsigned k = hash_of(p, r->ud);
    r->hnext = p->hash[k];
    p->hash[k] = r;
}

static struct prec *hash_find(struct corio__poll *p, uint64_t ud)
{
    for (struct prec *r = p->hash[hash_of(p, ud)]; r; r = r->hnext)
        if (r->ud == ud)
            return r;
    return NULL;
}

static void hash_del(struct corio__poll *p, struct prec *r)
{
    for (struct prec **pp = &p->hash[hash_of(p, r->ud)]; *pp; pp = &(*pp)->hnext)
        if (*pp == r) {
            *pp = r->hnext;
            return;
        }
}

static void rec_free(struct corio__poll *p, struct prec *r)
{
    if (r->ud)
        hash_del(p, r);
    corio__heap_remove(&p->deadlines, &r->timer);
    r->state = R_FREE;
    r->hnext = p->free;
    p->free = r;
    p->live--;
}

/* ---- completions ----------------------------------------------------------------------------- */

void corio__poll_post(struct corio__poll *p, uint64_t ud, int32_t res, uint32_t flags)
{
    if (ud == 0)
        return; /* nobody wants it (an untracked op with no record) */
    if (p->cq_tail - p->cq_head == p->cq_cap) {
        unsigned cap = p->cq_cap * 2;
        struct corio__cqe *q = malloc(cap * sizeof(*q));
        if (!q)
            corio__panic("epoll backend: out of memory for completions");
        for (unsigned i = 0; i < p->cq_cap; i++)
            q[i] = p->cq[(p->cq_head + i) & (p->cq_cap - 1)];
        free(p->cq);
        p->cq = q;
        p->cq_tail = p->cq_tail - p->cq_head;
        p->cq_head = 0;
        p->cq_cap = cap;
    }
    p->cq[p->cq_tail & (p->cq_cap - 1)] = (struct corio__cqe){ud, res, flags};
    p->cq_tail++;
}

/* Whether anything but the queue can finish an op: readiness, a deadline, a worker. While so,
 * the loop's quiet check fails and every iteration enters, so that a loop whose coroutines keep
 * each other busy still sees them (io_uring's kernel posts such completions by itself). */
static void update_attention(struct corio__poll *p)
{
    p->attention = p->waiting || p->deadlines.n || p->working;
}

/* Unlinks @r from where it waits (queue or an fd's waiters). */
static void unlink_rec(struct corio__poll *p, struct prec *r)
{
    if (r->state == R_WAITING && !r->lazy)
        p->waiting--;
    corio__list_remove(&r->link);
    r->pfd = NULL;
    r->state = R_LOOSE;
}

/* @r is over with @res (its own CQE) and @link_res (its linked timeout's, if it has one): as
 * io_uring, -ECANCELED for a timeout its op beat, -ETIME for one that fired. */
static void finish(struct corio__poll *p, struct prec *r, int64_t res, int32_t link_res)
{
    if (r->restore_flags >= 0)
        corio__poll_restore_flags(r->op.fd, r->restore_flags);
    unlink_rec(p, r);
    corio__poll_post(p, r->ud, (int32_t)res, 0);
    if (r->link_ud)
        corio__poll_post(p, r->link_ud, link_res, 0);
    rec_free(p, r);
    update_attention(p);
}

/* ---- trying, waiting, running ---------------------------------------------------------------- */

static int wait_on(struct corio__poll *p, struct prec *r);

/* Hands @r to a worker; its result comes back through the pool's eventfd. Returns 0 or -errno. */
static int to_pool(struct corio__poll *p, struct prec *r)
{
    r->job.fn = corio__poll_blocking;
    r->state = R_WORKING;
    int err = corio__pool_submit(&p->pool, &r->job);
    if (err == 0) {
        p->working++;
        p->attention = 1;
    }
    return err;
}

/* @r came off the pool (finished, or withdrawn before a worker took it). */
static void off_pool(struct corio__poll *p, struct prec *r)
{
    p->working--;
    r->state = R_LOOSE;
    corio__list_init(&r->link);
}

/* Tries @r and files it where its outcome says: done, waiting, or on a worker. */
static void attempt(struct corio__poll *p, struct prec *r)
{
    int64_t res = 0;
    switch (corio__poll_try(p, r, &res)) {
    case TRY_DONE:
        finish(p, r, res, -ECANCELED);
        return;
    case TRY_POOL:
        if ((res = to_pool(p, r)) != 0)
            finish(p, r, res, -ECANCELED);
        return;
    default: /* TRY_WAIT, TRY_KEEP */
        if ((res = wait_on(p, r)) != 0)
            finish(p, r, res, -ECANCELED);
        return;
    }
}

/* Puts @r among the waiters of its fd, adding the fd to the epoll set the first time. A regular
 * file cannot be in the set (EPERM): then @r goes to a worker, except a readiness wait, which no
 * worker can serve: -EINVAL, as io_uring says of a file that cannot be waited on and is not ready
 * for what was asked. Returns 0 or -errno. */
static int wait_on(struct corio__poll *p, struct prec *r)
{
    struct pfd *f = corio__pfd(p, r->op.fd);
    if (!f)
        return -ENOMEM;
    if (!f->registered) {
        struct epoll_event ev = {.events = CORIO__PFD_EVENTS, .data.ptr = f};
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, f->fd, &ev) != 0 && errno != EEXIST) {
            if (errno != EPERM)
                return -errno;
            f->kind = K_FILE;
            return r->dir == DIR_POLL ? -EINVAL : to_pool(p, r);
        }
        f->registered = true;
    }
    r->state = R_WAITING;
    r->pfd = f;
    corio__list_push_back(&f->waiters[r->dir], &r->link);
    /* The loop's wake-up read waits without making the busy loop look for readiness. */
    r->lazy = r->op.opcode == CORIO__OP_READ && (r->op.aux & CORIO__OP_LAZY);
    if (!r->lazy) {
        p->waiting++;
        p->attention = 1;
    }
    return 0;
}

/* Readiness in @dir on @f: its waiters are tried in order until one would block again. */
static void drain(struct corio__poll *p, struct pfd *f, int dir)
{
    struct corio__list *q = &f->waiters[dir];
    while (!corio__list_empty(q)) {
        struct prec *r = container_of(q->next, struct prec, link);
        int64_t res = 0;
        int t = corio__poll_try(p, r, &res);
        if (t == TRY_WAIT || t == TRY_KEEP) {
            f->ready[dir] = false;
            return;
        }
        unlink_rec(p, r);
        if (t == TRY_DONE)
            finish(p, r, res, -ECANCELED);
        else if ((res = to_pool(p, r)) != 0)
            finish(p, r, res, -ECANCELED);
    }
}

/* An edge on @f with @events: every readiness wait on it that asked for one of them ends with
 * the ready events, or, if multishot, is told them and stays. Before the drains of the same edge,
 * so that the events are the ones epoll reported, not what the ops left. */
static void tell_pollers(struct corio__poll *p, struct pfd *f, uint32_t events)
{
    struct corio__list *q = &f->waiters[DIR_POLL];
    for (struct corio__list *i = q->next, *next; i != q; i = next) {
        next = i->next; /* finish unlinks only @r */
        struct prec *r = container_of(i, struct prec, link);
        uint32_t mask = events & corio__poll_want(r->op.op_flags);
        if (mask && (r->op.aux & CORIO__POLL_MULTI))
            corio__poll_post(p, r->ud, (int32_t)mask, CORIO__CQE_F_MORE);
        else if (mask)
            finish(p, r, mask, -ECANCELED);
    }
}

/* The jobs the workers finished: their results, and a linked timeout's -ETIME if the deadline
 * passed while they ran (their result stands: a blocking call cannot be taken back). */
static void collect(struct corio__poll *p)
{
    struct corio__list done;
    corio__list_init(&done);
    corio__pool_collect(&p->pool, &done);
    struct corio__list *n;
    while ((n = corio__list_pop_front(&done))) {
        struct prec *r = container_of(n, struct prec, job.link);
        off_pool(p, r);
        if (r->op.opcode == CORIO__OP_OPENAT && r->job.res >= 0)
            corio__poll_adopt(p, (int)r->job.res); /* a new file */
        finish(p, r, r->job.res, r->expired ? -ETIME : -ECANCELED);
    }
}

/* ---- deadlines ------------------------------------------------------------------------------- */

static int64_t ts_ns(const struct corio__ts *ts)
{
    return ts->sec * 1000000000 + ts->nsec;
}

/* @r's deadline passed. */
static void expire(struct corio__poll *p, struct prec *r)
{
    switch (r->state) {
    case R_TIMER:
        finish(p, r, -ETIME, 0);
        return;
    case R_WORKING:
        if (!corio__pool_withdraw(&p->pool, &r->job)) {
            r->expired = true; /* its result comes with -ETIME for the timeout */
            return;
        }
        off_pool(p, r);
        finish(p, r, -ECANCELED, -ETIME);
        return;
    default:
        finish(p, r, -ECANCELED, -ETIME);
        return;
    }
}

static void fire_deadlines(struct corio__poll *p)
{
    struct corio__timer *t = corio__heap_top(&p->deadlines);
    if (!t)
        return;
    int64_t now = corio__now_real(); /* the deadlines are the kernel's timespecs */
    while ((t = corio__heap_top(&p->deadlines)) && t->deadline <= now) {
        corio__heap_remove(&p->deadlines, t);
        expire(p, t->data);
    }
}

/* ---- the interface --------------------------------------------------------------------------- */

void corio__poll_prep(struct corio__poll *p, const struct corio__op *op, uint64_t user_data,
                      const struct corio__ts *link_ts, uint64_t link_ud)
{
    struct corio__op faulted;
    op = corio__fault_prep((const struct corio__ring *)(const void *)p, op, user_data, &faulted);
    struct prec *r = rec_alloc(p);
    if (!r)
        corio__panic("epoll backend: out of memory for an op");
    r->op = *op;
    r->ud = user_data;
    r->link_ud = link_ts ? link_ud : 0;
    if (r->ud)
        hash_add(p, r);
    int64_t deadline = -1;
    if (op->opcode == CORIO__OP_TIMEOUT)
        deadline = ts_ns(op->addr);
    else if (link_ts)
        deadline = ts_ns(link_ts);
    if (deadline >= 0) {
        r->timer.deadline = deadline;
        if (corio__heap_push(&p->deadlines, &r->timer) != 0)
            corio__panic("epoll backend: out of memory for a deadline");
        p->attention = 1;
    }
    r->state = R_QUEUED;
    corio__list_push_back(&p->queue, &r->link);
    p->sq_tail++;
}

void corio__poll_cancel(struct corio__poll *p, uint64_t target, uint64_t own)
{
    struct prec *r = hash_find(p, target);
    int32_t res = 0;
    if (!r) {
        res = -ENOENT;
    } else if (r->state == R_WORKING && !corio__pool_withdraw(&p->pool, &r->job)) {
        r->cancelled = true; /* it runs to its end, as io_uring's io-wq does once started */
        res = -EALREADY;
    } else {
        if (r->state == R_WORKING)
            off_pool(p, r);
        finish(p, r, -ECANCELED, -ECANCELED);
    }
    corio__poll_post(p, own, res, 0);
}

/* Tries every queued op. */
static void run_queue(struct corio__poll *p)
{
    struct corio__list *n;
    while ((n = corio__list_pop_front(&p->queue))) {
        struct prec *r = container_of(n, struct prec, link);
        p->stats->sqes++;
        if (r->op.opcode == CORIO__OP_TIMEOUT)
            r->state = R_TIMER;
        else
            attempt(p, r);
    }
    p->sq_head = p->sq_tail;
}

/* Waits in epoll_wait for at most @timeout_ns (-1: no limit, 0: a poll) and handles what it
 * reports. Returns 0 or -errno. */
static int poll_events(struct corio__poll *p, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    p->stats->enters++;
    int n = epoll_pwait2(p->epfd, p->events, POLL_EVENTS, tsp, NULL);
    if (n < 0 && errno == ENOSYS) {
        /* Before 5.11: whole milliseconds, rounded up so that a timer is never early. */
        int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
        n = epoll_wait(p->epfd, p->events, POLL_EVENTS, ms);
    }
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        struct epoll_event *e = &p->events[i];
        if (e->data.ptr == &p->pool) {
            collect(p);
            continue;
        }
        struct pfd *f = e->data.ptr;
        if (!corio__list_empty(&f->waiters[DIR_POLL]))
            tell_pollers(p, f, e->events);
        if (e->events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            f->hup[DIR_IN] = true;
        if (e->events & (EPOLLHUP | EPOLLERR))
            f->hup[DIR_OUT] = true;
        if (e->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            f->ready[DIR_IN] = true;
            drain(p, f, DIR_IN);
        }
        if (e->events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
            f->ready[DIR_OUT] = true;
            drain(p, f, DIR_OUT);
        }
    }
    return 0;
}

int corio__poll_enter(struct corio__poll *p, bool wait, int64_t timeout_ns)
{
    unsigned min = wait ? 1 : 0;
    /* Fault seam: may fail the call, as the ring's enter may fail. */
    int err = corio__fault_enter((const struct corio__ring *)(const void *)p, &min);
    if (err)
        return err == -EINTR || err == -EAGAIN || err == -EBUSY ? 0 : err;
    run_queue(p);
    fire_deadlines(p);
    update_attention(p);
    /* Not waiting: readiness is looked at only when ops wait for it and nothing is posted yet
     * (what is posted is work for the loop; the next wait sees the rest). Completions already
     * there: the same, no sleeping. */
    if (!min || p->cq_tail != p->cq_head) {
        bool look = p->waiting || p->working;
        timeout_ns = look && p->cq_tail == p->cq_head ? 0 : -2;
    } else {
        struct corio__timer *t = corio__heap_top(&p->deadlines);
        if (t) {
            int64_t left = t->deadline - corio__now_real();
            if (left < 0)
                left = 0;
            if (timeout_ns < 0 || left < timeout_ns)
                timeout_ns = left;
        }
    }
    if (timeout_ns == -2)
        return 0;
    err = poll_events(p, timeout_ns);
    fire_deadlines(p);
    update_attention(p);
    return err;
}

unsigned corio__poll_reap(struct corio__poll *p, struct corio__cqe *out, unsigned max)
{
    unsigned n = 0;
    while (n < max && p->cq_head != p->cq_tail) {
        out[n++] = p->cq[p->cq_head & (p->cq_cap - 1)];
        p->cq_head++;
    }
    p->stats->cqes += n;
    /* Fault seam: may rewrite, reorder or hold back, as on the ring. */
    return corio__fault_cqes((const struct corio__ring *)(const void *)p, out, n, max);
}

unsigned corio__poll_working(const struct corio__poll *p)
{
    return p->working;
}

unsigned corio__poll_unsubmitted(const struct corio__poll *p)
{
    return p->sq_tail - p->sq_head;
}

const struct corio__ring_view *corio__poll_view(const struct corio__poll *p)
{
    return &p->view;
}

/* ---- fds ------------------------------------------------------------------------------------- */

struct pfd *corio__pfd_grow(struct corio__poll *p, int fd)
{
    if (fd < 0)
        return NULL;
    unsigned c = (unsigned)fd / CHUNK;
    if (c >= p->fd_chunks) {
        unsigned n = c + 1 > p->fd_chunks * 2 ? c + 1 : p->fd_chunks * 2;
        struct pfd **t = realloc(p->fds, n * sizeof(*t));
        if (!t)
            return NULL;
        memset(t + p->fd_chunks, 0, (n - p->fd_chunks) * sizeof(*t));
        p->fds = t;
        p->fd_chunks = n;
    }
    if (!p->fds[c]) {
        struct pfd *chunk = calloc(CHUNK, sizeof(*chunk));
        if (!chunk)
            return NULL;
        for (unsigned i = 0; i < CHUNK; i++) {
            chunk[i].fd = (int)(c * CHUNK + i);
            for (int d = 0; d < DIR_LISTS; d++)
                corio__list_init(&chunk[i].waiters[d]);
            chunk[i].ready[0] = chunk[i].ready[1] = true;
        }
        p->fds[c] = chunk;
    }
    return &p->fds[c][(unsigned)fd % CHUNK];
}

/* What an fd looks like to the backend before anything is known of it. */
static void pfd_reset(struct pfd *f)
{
    f->registered = false;
    f->listener = false;
    f->owned = false;
    f->kind = K_UNKNOWN;
    f->ready[0] = f->ready[1] = true;
    f->hup[0] = f->hup[1] = false;
}

void corio__poll_check(struct corio__poll *p, struct pfd *f)
{
    /* An fd corio made is closed through corio (corio_close forgets it) or not reused by
     * another file corio makes (adopting resets it): trusted, at no cost. Another program's fd
     * costs this one system call per op. */
    if (!f || !f->registered || f->owned)
        return;
    struct epoll_event ev = {.events = CORIO__PFD_EVENTS, .data.ptr = f};
    if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, f->fd, &ev) != 0)
        pfd_reset(f);
}

void corio__poll_adopt(struct corio__poll *p, int fd)
{
    corio__poll_forget(p, fd, -ECANCELED);
    struct pfd *f = corio__pfd(p, fd);
    if (f)
        f->owned = true;
}

void corio__poll_forget(struct corio__poll *p, int fd, int32_t res)
{
    unsigned c = fd < 0 ? 0 : (unsigned)fd / CHUNK;
    if (fd < 0 || c >= p->fd_chunks || !p->fds[c])
        return;
    struct pfd *f = &p->fds[c][(unsigned)fd % CHUNK];
    for (int d = 0; d < DIR_LISTS; d++)
        while (!corio__list_empty(&f->waiters[d]))
            finish(p, container_of(f->waiters[d].next, struct prec, link), res, -ECANCELED);
    if (f->registered)
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL); /* a dup of it may keep the file open */
    pfd_reset(f);
}

/* ---- driven by another event loop ------------------------------------------------------------ */

/* The epoll instance is itself pollable: readable while its ready list holds events, that is
 * while an fd the backend waits on had an edge (or the pool's eventfd fired) that no
 * corio__poll_enter has taken yet. */
int corio__poll_fd(const struct corio__poll *p)
{
    return p->epfd;
}

bool corio__poll_settled(const struct corio__poll *p)
{
    return p->sq_tail == p->sq_head && p->cq_tail == p->cq_head;
}

int64_t corio__poll_next_deadline(const struct corio__poll *p)
{
    const struct corio__timer *t = corio__heap_top(&p->deadlines);
    return t ? t->deadline : -1;
}
