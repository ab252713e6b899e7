/* Coroutines: spawn, join, detach, cancel, yield, and the handles that name them.
 *
 * A coroutine's struct lives at the top of its own stack, so a spawn allocates nothing once the
 * stack pool is warm. Its handle is a slot index plus the slot's generation: a handle outlives the
 * coroutine (for join) without keeping its stack, and a stale handle is recognised, not followed. */
#include "coro.h"

#include "future.h"
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifdef CORIO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* ---- handles -------------------------------------------------------------------------------- */

static corio_id make_id(uint32_t idx, uint32_t gen)
{
    return ((uint64_t)gen << 32) | (uint64_t)(idx + 1);
}

static struct corio__slot *slot_of(struct corio_loop *l, corio_id id)
{
    uint32_t idx = (uint32_t)(id & 0xffffffffu);
    if (idx == 0 || idx > l->n_slots)
        return NULL;
    struct corio__slot *s = &l->slots[idx - 1];
    if (s->gen != (uint32_t)(id >> 32) || (s->state & ~CORIO__SLOT_DETACHED) == CORIO__SLOT_FREE)
        return NULL;
    return s;
}

static int slot_alloc(struct corio_loop *l, uint32_t *out)
{
    if (l->free_slot) {
        uint32_t idx = l->free_slot - 1;
        l->free_slot = l->slots[idx].next_free;
        *out = idx;
        return 0;
    }
    if (l->n_slots == l->cap_slots) {
        uint32_t cap = l->cap_slots ? l->cap_slots * 2 : 256;
        struct corio__slot *s = realloc(l->slots, cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        l->slots = s;
        l->cap_slots = cap;
    }
    *out = l->n_slots;
    memset(&l->slots[l->n_slots], 0, sizeof(l->slots[0]));
    l->n_slots++;
    return 0;
}

/* ---- spawn and end -------------------------------------------------------------------------- */

struct corio_coro *corio__spawn(struct corio_loop *l, corio_fn *fn, void *arg, corio_id *out,
                                struct corio__group *g, bool ready, int *err)
{
    struct corio__stack *st = corio__stack_get(&l->stacks);
    if (!st) {
        *err = -ENOMEM;
        return NULL;
    }
    uint32_t idx;
    if (slot_alloc(l, &idx) != 0) {
        corio__stack_put(&l->stacks, st);
        *err = -ENOMEM;
        return NULL;
    }
    /* The coroutine struct takes the top of the usable stack; the stack proper starts below. It
     * is set off by a cache line per slot (of 8): at one offset in every identical stack, the saved
     * contexts of two coroutines would alias in the CPU's store-to-load check (4K aliasing), which
     * measurably slows direct hand-offs (generators). */
    uintptr_t top = ((uintptr_t)st->hi - sizeof(struct corio_coro) - (idx & 7) * 64) &
                    ~(uintptr_t)63;
    struct corio_coro *co = (struct corio_coro *)top;
    memset(co, 0, sizeof(*co));
    co->loop = l;
    co->fn = fn;
    co->arg = arg;
    co->stack = st;
    co->slot = idx;
    co->cancelled = l->stopping || (g && g->cancelling);
    corio__list_init(&co->inflight);
    corio__list_init(&co->handlers);
    corio__list_init(&co->runq);
    corio__list_init(&co->group_link);
    corio__ctx_make(&co->ctx, st->lo, (void *)top, corio__coro_main, co, &l->sched);
#ifdef CORIO__TSAN
    co->tsan_fiber = __tsan_create_fiber(0);
#endif

    struct corio__slot *s = &l->slots[idx];
    s->co = co;
    s->joiner = NULL;
    s->result = 0;
    s->state = CORIO__SLOT_LIVE | (out ? 0 : CORIO__SLOT_DETACHED);
    if (out)
        *out = make_id(idx, s->gen);
    if (g) {
        co->group = g;
        corio__list_push_back(corio__waitq(&g->members), &co->group_link);
        g->n++;
    }

    corio__list_push_back(&l->all, &co->all);
    l->live++;
    l->stats.spawns++;
    if (ready)
        corio__make_ready(co);
    else
        co->state = CORIO__CO_WAITING;
    *err = 0;
    return co;
}

int corio_spawn(struct corio_loop *l, corio_fn *fn, void *arg, corio_id *out)
{
    if (!l)
        l = corio__tls_loop;
    if (!l || !fn)
        return -EINVAL;
    int err;
    corio__spawn(l, fn, arg, out, NULL, true, &err);
    return err;
}

/* ---- join, detach, cancel ------------------------------------------------------------------- */

static void join_abort(struct corio_coro *co, int why)
{
    struct corio__slot *s = &co->loop->slots[(uint32_t)(uintptr_t)co->wait_obj];
    s->joiner = NULL;
    corio__unpark(co, why);
}

int corio_join(corio_id id, int *result, int64_t deadline)
{
    struct corio_coro *self = corio__tls_co;
    if (!self)
        return -EPERM;
    struct corio_loop *l = self->loop;
    struct corio__slot *s = slot_of(l, id);
    if (!s || (s->state & CORIO__SLOT_DETACHED))
        return -ESRCH;
    if (s->co == self)
        return -EDEADLK;
    if (s->state == CORIO__SLOT_LIVE) {
        if (s->joiner)
            return -EINVAL;
        if (self->cancelled)
            return -ECANCELED;
        if (deadline >= 0 && deadline <= corio_now())
            return -ETIMEDOUT;
        uint32_t idx = (uint32_t)(s - l->slots);
        s->joiner = self;
        int r = corio__park(self, deadline, join_abort, (void *)(uintptr_t)idx);
        if (r < 0)
            return r;
        s = &l->slots[idx]; /* the array may have moved while we were parked */
    }
    if (result)
        *result = s->result;
    corio__slot_free(l, (uint32_t)(s - l->slots));
    return 0;
}

int corio_detach(corio_id id)
{
    struct corio_loop *l = corio__tls_loop;
    if (!l)
        return -ESRCH;
    struct corio__slot *s = slot_of(l, id);
    if (!s || (s->state & CORIO__SLOT_DETACHED))
        return -ESRCH;
    if (s->joiner)
        return -EINVAL;
    if (s->state == CORIO__SLOT_ENDED)
        corio__slot_free(l, (uint32_t)(s - l->slots));
    else
        s->state |= CORIO__SLOT_DETACHED;
    return 0;
}

/* Finds a live coroutine by handle; handles of detached coroutines still work here. */
struct corio_coro *corio__coro_lookup(struct corio_loop *l, corio_id id)
{
    struct corio__slot *s = l ? slot_of(l, id) : NULL;
    return s ? s->co : NULL;
}

int corio_cancel(corio_id id)
{
    struct corio_coro *co = corio__coro_lookup(corio__tls_loop, id);
    if (!co)
        return -ESRCH;
    corio__cancel(co);
    return 0;
}

corio_id corio_self(void)
{
    struct corio_coro *co = corio__tls_co;
    return co ? make_id(co->slot, co->loop->slots[co->slot].gen) : 0;
}

bool corio_cancelled(void)
{
    struct corio_coro *co = corio__tls_co;
    return co && co->cancelled;
}

int corio_run(corio_fn *fn, void *arg, const struct corio_loop_opts *opts)
{
    struct corio_loop *l;
    int err = corio_loop_new(&l, opts);
    if (err)
        return err;
    corio_id id;
    int result = 0;
    err = corio_spawn(l, fn, arg, &id);
    if (!err)
        err = corio_loop_run(l);
    if (!err) {
        struct corio__slot *s = slot_of(l, id);
        CORIO__ASSERT(s && s->state == CORIO__SLOT_ENDED);
        result = s->result;
    }
    corio_loop_free(l);
    return err ? err : result;
}

/* ---- groups --------------------------------------------------------------------------------- */

_Static_assert(sizeof(struct corio__group) <= sizeof(struct corio_group), "grow corio_group");

static inline struct corio__group *grp(struct corio_group *g)
{
    return (struct corio__group *)(void *)g;
}

void corio_group_init(struct corio_group *pub, unsigned flags)
{
    struct corio__group *g = grp(pub);
    memset(g, 0, sizeof(*g));
    corio__list_init(&g->members);
    corio__list_init(&g->waiters);
    g->flags = flags;
}

int corio_group_spawn(struct corio_group *pub, corio_fn *fn, void *arg, corio_id *out)
{
    struct corio_loop *l = corio__tls_loop;
    if (!l || !fn)
        return -EINVAL;
    int err;
    corio__spawn(l, fn, arg, out, grp(pub), true, &err);
    return err;
}

int corio_group_cancel(struct corio_group *pub)
{
    return corio__group_cancel(grp(pub));
}

int corio_group_wait(struct corio_group *pub, int64_t deadline)
{
    struct corio__group *g = grp(pub);
    struct corio_coro *co = corio__tls_co;
    if (!co)
        return -EPERM;
    if (co->group == g)
        return -EDEADLK;
    if (g->n == 0)
        return 0;
    int ret = 0;
    if (co->cancelled)
        ret = -ECANCELED;
    else if (deadline >= 0 && deadline <= corio_now())
        ret = -ETIMEDOUT;
    else
        ret = corio__waitq_wait(&g->waiters, co, deadline);
    if (g->n == 0)
        return ret;
    /* Timed out or cancelled: the members go too, and we still wait for every one of them, so
     * that none outlives the group (and the frames it may point into). */
    corio__group_cancel(g);
    while (g->n > 0)
        corio__waitq_wait(&g->waiters, co, CORIO_FOREVER);
    return ret;
}

size_t corio_group_size(const struct corio_group *pub)
{
    return ((const struct corio__group *)(const void *)pub)->n;
}

int corio_group_error(const struct corio_group *pub)
{
    return ((const struct corio__group *)(const void *)pub)->first_error;
}
