/* Channels and select. A channel is a ring buffer of fixed-size values plus two FIFO queues of
 * parked coroutines, senders and receivers. A value goes straight from a sender to a parked
 * receiver's destination (and from a parked sender into the buffer, or straight to the receiver
 * when unbuffered), so a hand-off is one copy and one wake-up. Single-loop: no atomics.
 *
 * corio_select parks one waiter per channel case, all pointing at a shared struct sel; the first
 * case to fire unlinks its siblings at once, so no second case can take or deliver a value. A
 * select can also be woken by a future; its channel waiters are then stale until it runs, and the
 * matching code skips waiters whose coroutine is no longer parked. */
#include "future.h"
#include "dump.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct corio_chan {
    size_t elem_size;       /* bytes per value */
    size_t cap;             /* values the buffer holds; 0 = unbuffered */
    size_t head;            /* index of the oldest buffered value */
    size_t len;             /* values buffered */
    bool closed;            /* corio_chan_close was called */
    struct corio__list sendq; /* parked senders (struct chan_waiter) */
    struct corio__list recvq; /* parked receivers */
    unsigned char buf[];    /* cap * elem_size bytes */
};

struct sel;

struct chan_waiter {
    struct corio__list link; /* in the channel's sendq or recvq */
    struct corio__task *t;   /* the parked coroutine's task */
    void *elem;              /* send: the value to take; recv: where to put one */
    struct sel *sel;         /* the select it belongs to, or NULL */
    int idx;                 /* its case index in that select */
};

struct sel {
    struct chan_waiter *w; /* one waiter per case (unused for future cases) */
    size_t n;              /* cases */
    int fired;             /* the case that fired, or -1 */
    int64_t res;           /* its result */
};

/* ---- channel core --------------------------------------------------------------------------- */

int corio_chan_new(struct corio_chan **out, size_t elem_size, size_t capacity)
{
    if (elem_size == 0 || elem_size > 65536 || capacity > (SIZE_MAX / 2) / elem_size)
        return -EINVAL;
    struct corio_chan *ch = malloc(sizeof(*ch) + capacity * elem_size);
    if (!ch)
        return -ENOMEM;
    ch->elem_size = elem_size;
    ch->cap = capacity;
    ch->head = 0;
    ch->len = 0;
    ch->closed = false;
    corio__list_init(&ch->sendq);
    corio__list_init(&ch->recvq);
    *out = ch;
    return 0;
}

void corio_chan_free(struct corio_chan *ch)
{
    if (!ch)
        return;
    CORIO__ASSERT(corio__list_empty(&ch->sendq) && corio__list_empty(&ch->recvq));
    free(ch);
}

size_t corio_chan_len(const struct corio_chan *ch)
{
    return ch->len;
}

static void unlink_siblings(struct sel *s)
{
    for (size_t i = 0; i < s->n; i++)
        corio__list_remove(&s->w[i].link);
}

/* Completes waiter @w with @res (its value already moved) and wakes its coroutine. */
static void waiter_fire(struct chan_waiter *w, int res)
{
    corio__list_remove(&w->link);
    if (w->sel) {
        w->sel->fired = w->idx;
        w->sel->res = res;
        unlink_siblings(w->sel);
        corio__unpark(w->t, 0);
    } else {
        corio__unpark(w->t, res);
    }
}

/* Returns the first waiter of @q that can still be served, dropping stale select waiters. */
static struct chan_waiter *first_live(struct corio__list *q)
{
    while (!corio__list_empty(q)) {
        struct chan_waiter *w = container_of(q->next, struct chan_waiter, link);
        if (!w->sel || w->t->state == CORIO__T_WAITING)
            return w;
        corio__list_remove(&w->link);
    }
    return NULL;
}

/* The i-th buffered value. A compare instead of a modulo: a division costs more than the copy. */
static inline void *slot(struct corio_chan *ch, size_t i)
{
    size_t k = ch->head + i;
    if (k >= ch->cap)
        k -= ch->cap;
    return ch->buf + k * ch->elem_size;
}

/* Sends without waiting. Returns 0, -EPIPE, or -EAGAIN. */
static int try_send(struct corio_chan *ch, const void *elem)
{
    if (ch->closed)
        return -EPIPE;
    struct chan_waiter *r = first_live(&ch->recvq);
    if (r) {
        memcpy(r->elem, elem, ch->elem_size);
        waiter_fire(r, 1);
        return 0;
    }
    if (ch->len < ch->cap) {
        memcpy(slot(ch, ch->len), elem, ch->elem_size);
        ch->len++;
        return 0;
    }
    return -EAGAIN;
}

/* Receives without waiting. Returns 1, 0 (closed and drained), or -EAGAIN. */
static int try_recv(struct corio_chan *ch, void *elem)
{
    if (ch->len > 0) {
        memcpy(elem, slot(ch, 0), ch->elem_size);
        if (++ch->head == ch->cap)
            ch->head = 0;
        ch->len--;
        /* A parked sender's value takes the freed place, keeping FIFO order. */
        struct chan_waiter *s = first_live(&ch->sendq);
        if (s) {
            memcpy(slot(ch, ch->len), s->elem, ch->elem_size);
            ch->len++;
            waiter_fire(s, 0);
        }
        return 1;
    }
    struct chan_waiter *s = first_live(&ch->sendq);
    if (s) {
        memcpy(elem, s->elem, ch->elem_size);
        waiter_fire(s, 0);
        return 1;
    }
    return ch->closed ? 0 : -EAGAIN;
}

static void chan_abort(struct corio__task *t, int why)
{
    struct chan_waiter *w = t->wait_obj;
    corio__list_remove(&w->link);
    corio__unpark(t, why);
}

/* Parks the caller on @q with @elem until a peer serves it. Returns the result it was given. */
static int chan_wait(struct corio__list *q, void *elem, int64_t deadline)
{
    struct corio__task *t;
    int err = corio__wait_check(&t, deadline);
    if (err)
        return err;
    struct chan_waiter w = {.t = t, .elem = elem, .sel = NULL, .idx = 0};
    corio__list_push_back(q, &w.link);
    int r = corio__park(t, deadline, chan_abort, &w);
    corio__list_remove(&w.link);
    return r;
}

int corio_chan_send(struct corio_chan *ch, const void *elem, int64_t deadline)
{
    int r = try_send(ch, elem);
    if (r != -EAGAIN)
        return r;
    return chan_wait(&ch->sendq, (void *)elem, deadline);
}

int corio_chan_recv(struct corio_chan *ch, void *elem, int64_t deadline)
{
    int r = try_recv(ch, elem);
    if (r != -EAGAIN)
        return r;
    return chan_wait(&ch->recvq, elem, deadline);
}

int corio_chan_trysend(struct corio_chan *ch, const void *elem)
{
    return try_send(ch, elem);
}

int corio_chan_tryrecv(struct corio_chan *ch, void *elem)
{
    return try_recv(ch, elem);
}

int corio_chan_close(struct corio_chan *ch)
{
    if (ch->closed)
        return -EALREADY;
    ch->closed = true;
    struct chan_waiter *w;
    /* Receivers wait only when the buffer is empty, so they are at the end of the stream. */
    while ((w = first_live(&ch->recvq)))
        waiter_fire(w, 0);
    while ((w = first_live(&ch->sendq)))
        waiter_fire(w, -EPIPE);
    return 0;
}

/* ---- select --------------------------------------------------------------------------------- */

/* Performs case @c if it can proceed now. Returns true with c->result set, or false. */
static bool try_case(struct corio_select_case *c)
{
    int r;
    switch (c->op) {
    case CORIO_SELECT_SEND:
        r = try_send(c->ch, c->elem);
        break;
    case CORIO_SELECT_RECV:
        r = try_recv(c->ch, c->elem);
        break;
    case CORIO_SELECT_FUTURE:
        if (!corio_future_done(c->f))
            return false;
        c->result = corio_future_result(c->f);
        return true;
    default:
        return false;
    }
    if (r == -EAGAIN)
        return false;
    c->result = r;
    return true;
}

static void sel_abort(struct corio__task *t, int why)
{
    unlink_siblings(t->wait_obj);
    corio__unpark(t, why);
}

static int check_cases(struct corio__task *t, struct corio_select_case *cases, size_t n)
{
    if (!t)
        return -EPERM;
    if (!cases || n == 0 || n > INT32_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        struct corio_select_case *c = &cases[i];
        if (c->op == CORIO_SELECT_FUTURE) {
            int err = corio__future_check(c->f, t);
            if (err)
                return err;
        } else if ((c->op != CORIO_SELECT_SEND && c->op != CORIO_SELECT_RECV) || !c->ch ||
                   !c->elem) {
            return -EINVAL;
        }
    }
    return 0;
}

int corio_select(struct corio_select_case *cases, size_t n, int64_t deadline)
{
    struct corio__task *t = corio__tls_task;
    int err = check_cases(t, cases, n);
    if (err)
        return err;
    struct chan_waiter local[8];
    struct chan_waiter *w = n <= 8 ? local : malloc(n * sizeof(*w));
    if (!w)
        return -ENOMEM;
    int ret;
    for (;;) {
        ret = -1;
        for (size_t i = 0; i < n && ret < 0; i++)
            if (try_case(&cases[i]))
                ret = (int)i;
        if (ret >= 0)
            break;
        ret = corio__wait_check(&t, deadline);
        if (ret)
            break;
        struct sel s = {.w = w, .n = n, .fired = -1, .res = 0};
        uint32_t futures = 0;
        for (size_t i = 0; i < n; i++) {
            w[i] = (struct chan_waiter){.t = t, .elem = cases[i].elem, .sel = &s, .idx = (int)i};
            corio__list_init(&w[i].link);
            if (cases[i].op == CORIO_SELECT_SEND) {
                corio__list_push_back(&cases[i].ch->sendq, &w[i].link);
            } else if (cases[i].op == CORIO_SELECT_RECV) {
                corio__list_push_back(&cases[i].ch->recvq, &w[i].link);
            } else {
                futures += corio__future_watch(cases[i].f, true);
            }
        }
        t->wait_need = futures ? 1 : 0;
        int r = corio__park(t, deadline, sel_abort, &s);
        unlink_siblings(&s);
        t->wait_need = 0;
        for (size_t i = 0; i < n; i++)
            if (cases[i].op == CORIO_SELECT_FUTURE)
                corio__future_watch(cases[i].f, false);
        if (s.fired >= 0) {
            cases[s.fired].result = s.res;
            ret = s.fired;
            break;
        }
        if (r < 0) {
            ret = r;
            break;
        }
        /* A future completed: the next pass finds it done. */
    }
    if (w != local)
        free(w);
    return ret;
}

/* ---- what a parked coroutine waits for (corio_loop_dump) --------------------------------------*/

const char *corio__chan_wait_name(corio__abort_fn *a)
{
    if (a == chan_abort)
        return "a channel";
    return a == sel_abort ? "a channel select" : NULL;
}
