/* Mutex, semaphore, wait group and one-shot event. All of them are a FIFO wait queue plus a
 * counter or an owner; none needs an atomic instruction, because a loop's coroutines never run
 * at the same time. Hand-offs are direct: unlock gives the mutex to the first waiter, release
 * gives the permit to the first waiter, so a newcomer cannot barge in ahead of the queue. */
#include "scheduler.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* ---- mutex ---------------------------------------------------------------------------------- */

struct corio__mutex {
    struct corio__list q;    /* waiters */
    struct corio__task *owner; /* the holder, or NULL */
};
_Static_assert(sizeof(struct corio__mutex) <= sizeof(struct corio_mutex), "grow corio_mutex");

int corio_mutex_init(struct corio_mutex *pub)
{
    memset(pub, 0, sizeof(*pub));
    return 0;
}

int corio_mutex_lock(struct corio_mutex *pub, int64_t deadline)
{
    struct corio__mutex *m = (struct corio__mutex *)(void *)pub;
    struct corio__task *t = corio__tls_task;
    if (!t)
        return -EPERM;
    if (m->owner == t)
        return -EDEADLK;
    if (!m->owner) {
        m->owner = t; /* no wait: allowed even when cancelled, e.g. for clean-up */
        return 0;
    }
    int err = corio__wait_check(&t, deadline);
    if (err)
        return err;
    /* Woken with 0 only by unlock, which has already made us the owner. */
    return corio__waitq_wait(&m->q, t, deadline);
}

int corio_mutex_trylock(struct corio_mutex *pub)
{
    struct corio__mutex *m = (struct corio__mutex *)(void *)pub;
    struct corio__task *t = corio__tls_task;
    if (!t)
        return -EPERM;
    if (m->owner)
        return -EAGAIN;
    m->owner = t;
    return 0;
}

int corio_mutex_unlock(struct corio_mutex *pub)
{
    struct corio__mutex *m = (struct corio__mutex *)(void *)pub;
    if (!m->owner || m->owner != corio__tls_task)
        return -EPERM;
    struct corio__list *n = corio__list_pop_front(corio__waitq(&m->q));
    if (!n) {
        m->owner = NULL;
        return 0;
    }
    struct corio__task *next = container_of(n, struct corio__waiter, link)->t;
    m->owner = next;
    corio__unpark(next, 0);
    return 0;
}

/* ---- semaphore ------------------------------------------------------------------------------ */

struct corio__sem {
    struct corio__list q; /* waiters */
    uint64_t count;       /* permits available */
};
_Static_assert(sizeof(struct corio__sem) <= sizeof(struct corio_sem), "grow corio_sem");
/* CORIO_SEM_INIT(n) writes the count where this struct keeps it; the queue starts zeroed, which is
 * an empty, unset queue (corio__waitq). */
_Static_assert(offsetof(struct corio__sem, count) == offsetof(struct corio_sem, count_), "sem");

int corio_sem_init(struct corio_sem *pub, unsigned count)
{
    memset(pub, 0, sizeof(*pub));
    struct corio__sem *s = (struct corio__sem *)(void *)pub;
    corio__list_init(&s->q);
    s->count = count;
    return 0;
}

int corio_sem_acquire(struct corio_sem *pub, int64_t deadline)
{
    struct corio__sem *s = (struct corio__sem *)(void *)pub;
    struct corio__task *t;
    if (s->count > 0 && corio__tls_task) {
        s->count--;
        return 0;
    }
    int err = corio__wait_check(&t, deadline);
    if (err)
        return err;
    return corio__waitq_wait(&s->q, t, deadline); /* 0: release handed us its permit */
}

int corio_sem_tryacquire(struct corio_sem *pub)
{
    struct corio__sem *s = (struct corio__sem *)(void *)pub;
    if (s->count == 0)
        return -EAGAIN;
    s->count--;
    return 0;
}

void corio_sem_release(struct corio_sem *pub)
{
    struct corio__sem *s = (struct corio__sem *)(void *)pub;
    if (!corio__waitq_wake(&s->q, 0))
        s->count++;
}

unsigned corio_sem_value(const struct corio_sem *pub)
{
    const struct corio__sem *s = (const struct corio__sem *)(const void *)pub;
    return (unsigned)s->count;
}

/* ---- wait group ----------------------------------------------------------------------------- */

struct corio__waitgroup {
    struct corio__list q; /* waiters */
    int64_t count;        /* outstanding work */
};
_Static_assert(sizeof(struct corio__waitgroup) <= sizeof(struct corio_waitgroup), "grow wg");

int corio_waitgroup_init(struct corio_waitgroup *pub)
{
    memset(pub, 0, sizeof(*pub));
    return 0;
}

int corio_waitgroup_add(struct corio_waitgroup *pub, int n)
{
    struct corio__waitgroup *wg = (struct corio__waitgroup *)(void *)pub;
    if (wg->count + n < 0)
        return -EINVAL;
    wg->count += n;
    if (wg->count == 0)
        corio__waitq_wake_all(&wg->q, 0);
    return 0;
}

int corio_waitgroup_done(struct corio_waitgroup *wg)
{
    return corio_waitgroup_add(wg, -1);
}

int corio_waitgroup_wait(struct corio_waitgroup *pub, int64_t deadline)
{
    struct corio__waitgroup *wg = (struct corio__waitgroup *)(void *)pub;
    struct corio__task *t;
    if (wg->count == 0)
        return corio__tls_task ? 0 : -EPERM;
    int err = corio__wait_check(&t, deadline);
    if (err)
        return err;
    return corio__waitq_wait(&wg->q, t, deadline);
}

/* ---- event ---------------------------------------------------------------------------------- */

struct corio__event {
    struct corio__list q; /* waiters */
    bool set;             /* once true, stays true */
};
_Static_assert(sizeof(struct corio__event) <= sizeof(struct corio_event), "grow corio_event");

int corio_event_init(struct corio_event *pub)
{
    memset(pub, 0, sizeof(*pub));
    return 0;
}

void corio_event_set(struct corio_event *pub)
{
    struct corio__event *ev = (struct corio__event *)(void *)pub;
    if (ev->set)
        return;
    ev->set = true;
    corio__waitq_wake_all(&ev->q, 0);
}

bool corio_event_is_set(const struct corio_event *pub)
{
    return ((const struct corio__event *)(const void *)pub)->set;
}

int corio_event_wait(struct corio_event *pub, int64_t deadline)
{
    struct corio__event *ev = (struct corio__event *)(void *)pub;
    struct corio__task *t;
    if (ev->set)
        return corio__tls_task ? 0 : -EPERM;
    int err = corio__wait_check(&t, deadline);
    if (err)
        return err;
    return corio__waitq_wait(&ev->q, t, deadline);
}
