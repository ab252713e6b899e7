/* Coroutines: spawn, the handles that name them, join, detach, cancel, and how one ends.
 *
 * A coroutine's struct lives at the top of its own stack, so a spawn allocates nothing once the
 * stack pool is warm. Its handle is a slot index plus the slot's generation: a handle outlives the
 * coroutine (for join) without keeping its stack, and a stale handle is recognised, not followed.
 * A coroutine whose body returns with ops in flight is a zombie: its stack, which those ops may
 * still write into, is kept until their last CQEs are in. */
#include "coro.h"

#include "loop.h"
#include "remote.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifdef CORIO__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CORIO__VALGRIND
#include <valgrind/memcheck.h>
#endif

/* Stack left unused between a coroutine's entry frame and its body (see coro_main). Only the
 * sanitizer builds need it: their switch hooks are C calls that run after the body returns. */
#if defined(CORIO__ASAN) || defined(CORIO__TSAN)
#define EXIT_GAP 4096 /* the sanitizers' switch hooks use ~1 KiB (TSan, measured) */
#else
#define EXIT_GAP 0
#endif

/* What every stack spends before its body runs: the coroutine struct at the top (set off by up to
 * 7 cache lines, see corio__spawn) and the exit gap. */
size_t corio__coro_overhead(void)
{
    return sizeof(struct corio_coro) + 8 * 64 + EXIT_GAP;
}

/* ---- handles ---------------------------------------------------------------------------------- */

static corio_id make_id(uint32_t idx, uint32_t gen)
{
    return ((uint64_t)gen << 32) | (uint64_t)(idx + 1);
}

static struct corio__slot *slot_of(struct corio_loop *l, corio_id id)
{
    uint32_t idx = (uint32_t)(id & 0xffffffffu);
    if (idx == 0 || idx > l->coros.n_slots)
        return NULL;
    struct corio__slot *s = &l->coros.slots[idx - 1];
    if (s->gen != (uint32_t)(id >> 32) || (s->state & ~CORIO__SLOT_DETACHED) == CORIO__SLOT_FREE)
        return NULL;
    return s;
}

static int slot_alloc(struct corio__coros *cs, uint32_t *out)
{
    if (cs->free_slot) {
        uint32_t idx = cs->free_slot - 1;
        cs->free_slot = cs->slots[idx].next_free;
        *out = idx;
        return 0;
    }
    if (cs->n_slots == cs->cap_slots) {
        uint32_t cap = cs->cap_slots ? cs->cap_slots * 2 : 256;
        struct corio__slot *s = realloc(cs->slots, cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        cs->slots = s;
        cs->cap_slots = cap;
    }
    *out = cs->n_slots;
    memset(&cs->slots[cs->n_slots], 0, sizeof(cs->slots[0]));
    cs->n_slots++;
    return 0;
}

/* Returns slot @idx to the free list, bumping its generation. */
static void slot_free(struct corio__coros *cs, uint32_t idx)
{
    struct corio__slot *s = &cs->slots[idx];
    s->state = CORIO__SLOT_FREE;
    s->co = NULL;
    s->joiner = NULL;
    s->gen++;
    s->next_free = cs->free_slot;
    cs->free_slot = idx + 1;
}

struct corio_coro *corio__coro_lookup(struct corio_loop *l, corio_id id)
{
    struct corio__slot *s = l ? slot_of(l, id) : NULL;
    return s ? s->co : NULL;
}

/* ---- the body --------------------------------------------------------------------------------- */

/* When the body returns, its frames (and the buffers and futures in them, which pending ops may
 * still reference) must stay intact until the scheduler has dealt with them (corio__coro_finish).
 * So nothing may be written below this function's frame after the body returns: here the final
 * switch is the tail of corio__ctx_start, which pops the scheduler's context without pushing
 * anything. In the sanitizer builds the final switch must go through the scheduler's do_switch, a
 * C call chain that needs stack: there the body runs below a gap of EXIT_GAP unused bytes, which
 * that chain uses instead. */
#if EXIT_GAP
/* Not instrumented by ASan: its epilogue would write shadow bytes from below the gap, over the
 * top of the body's dead frame. (With ASan's detect_stack_use_after_return the body's locals live
 * on ASan's heap-backed fake stack, which this scheme cannot protect: leave that option off.) */
__attribute__((no_sanitize_address)) __attribute__((noinline)) static int run_body(
    struct corio_coro *co)
{
    char gap[EXIT_GAP];
    __asm__ volatile("" : : "r"(gap) : "memory"); /* reserved, never written */
    return co->fn(co->arg);
}
#endif

static void coro_main(void *arg)
{
    struct corio_coro *co = arg;
#ifdef CORIO__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
#if EXIT_GAP
    co->result = run_body(co);
    co->t.state = CORIO__T_DONE;
    corio__suspend(&co->t);
    corio__panic("a finished coroutine was resumed");
#else
    co->result = co->fn(co->arg);
    co->t.state = CORIO__T_DONE;
    (*co->t.sched->switches)++;
    /* Returning to corio__ctx_start, which resumes the scheduler. */
#endif
}

/* ---- spawn ------------------------------------------------------------------------------------ */

struct corio_coro *corio__spawn(struct corio_loop *l, corio_fn *fn, void *arg, corio_id *out,
                                struct corio__group *g, bool ready, int *err)
{
    struct corio__stack *st = corio__stack_get(&l->stacks);
    if (!st) {
        *err = -ENOMEM;
        return NULL;
    }
    uint32_t idx;
    if (slot_alloc(&l->coros, &idx) != 0) {
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
    corio__task_init(&co->t, &l->sched, st, (void *)top, coro_main, co);
    co->loop = l;
    co->fn = fn;
    co->arg = arg;
    co->slot = idx;
    co->t.cancelled = l->coros.stopping || (g && g->cancelling);
    corio__list_init(&co->pending);
    corio__list_init(&co->group_link);

    struct corio__slot *s = &l->coros.slots[idx];
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
    corio__list_push_back(&l->coros.all, &co->all);
    l->coros.live++;
    l->stats.spawns++;
    if (ready)
        corio__make_ready(&co->t);
    *err = 0;
    return co;
}

static void run_remote_spawn(struct corio_loop *l, struct corio__msg *m)
{
    int err;
    /* A failure (no memory for a stack) has nobody to tell: the sender has moved on. */
    corio__spawn(l, m->body, m->arg, NULL, NULL, true, &err);
}

/* corio_spawn from a thread that is not @l's: a detached coroutine that @l spawns itself. */
static int remote_spawn(struct corio_loop *l, corio_id *out, corio_fn *fn, void *arg)
{
    if (out)
        return -EINVAL; /* a handle lives on its loop's thread */
    struct corio__msg *m = corio__msg_new(run_remote_spawn);
    if (!m)
        return -ENOMEM;
    m->body = fn;
    m->arg = arg;
    corio__remote_send(l, m);
    return 0;
}

int corio_spawn_at(corio_id *out, struct corio_loop *l, corio_fn *fn, void *arg, const char *file,
                   int line)
{
    if (!l)
        l = corio__tls_loop;
    if (!l || !fn)
        return -EINVAL;
    if (unlikely(!pthread_equal(l->owner, pthread_self())))
        return remote_spawn(l, out, fn, arg);
    int err;
    struct corio_coro *co = corio__spawn(l, fn, arg, out, NULL, true, &err);
    if (co) {
        co->spawn_file = file;
        co->spawn_line = line;
    }
    return err;
}

/* The function behind the macro of the same name, for callers built without it. */
int(corio_spawn)(corio_id *out, struct corio_loop *l, corio_fn *fn, void *arg)
{
    return corio_spawn_at(out, l, fn, arg, NULL, 0);
}

int corio_set_name(const char *name)
{
    struct corio_coro *co = corio__self();
    if (!co)
        return -EPERM;
    if (!name)
        name = "";
    size_t n = strlen(name);
    if (n >= sizeof(co->name))
        n = sizeof(co->name) - 1;
    memcpy(co->name, name, n);
    co->name[n] = '\0';
    return 0;
}

/* ---- join, detach, cancel --------------------------------------------------------------------- */

static void join_abort(struct corio__task *t, int why)
{
    struct corio_loop *l = corio__loop_of(t);
    l->coros.slots[(uint32_t)(uintptr_t)t->wait_obj].joiner = NULL;
    corio__unpark(t, why);
}

int corio_join(corio_id id, int *result, int64_t deadline)
{
    struct corio_coro *self = corio__self();
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
        struct corio__task *t;
        int err = corio__wait_check(&t, deadline);
        if (err)
            return err;
        uint32_t idx = (uint32_t)(s - l->coros.slots);
        s->joiner = self;
        err = corio__park(t, deadline, join_abort, (void *)(uintptr_t)idx);
        if (err < 0)
            return err;
        s = &l->coros.slots[idx]; /* the array may have moved while we were parked */
    }
    if (result)
        *result = s->result;
    slot_free(&l->coros, (uint32_t)(s - l->coros.slots));
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
        slot_free(&l->coros, (uint32_t)(s - l->coros.slots));
    else
        s->state |= CORIO__SLOT_DETACHED;
    return 0;
}

int corio_cancel(corio_id id)
{
    struct corio_coro *co = corio__coro_lookup(corio__tls_loop, id);
    if (!co)
        return -ESRCH;
    corio__task_cancel(&co->t);
    return 0;
}

corio_id corio__coro_id(const struct corio_coro *co)
{
    return make_id(co->slot, co->loop->coros.slots[co->slot].gen);
}

corio_id corio_self(void)
{
    struct corio_coro *co = corio__self();
    return co ? corio__coro_id(co) : 0;
}

bool corio_cancelled(void)
{
    struct corio__task *t = corio__tls_task;
    return t && t->cancelled;
}

int corio_set_deadline(int64_t deadline, int64_t *prev)
{
    struct corio__task *t = corio__tls_task;
    if (!t)
        return -EPERM;
    if (prev)
        *prev = t->deadline_at;
    corio__task_set_deadline(t, deadline < 0 ? CORIO_FOREVER : deadline);
    return 0;
}

void corio__coro_shutdown_idle(struct corio_loop *l, uint8_t kind)
{
    struct corio__list *n = l->coros.all.next;
    while (n != &l->coros.all) {
        struct corio__task *t = &container_of(n, struct corio_coro, all)->t;
        n = n->next;
        if (t->idle != kind)
            continue;
        t->idle = CORIO__IDLE_NO;
        if (t->state == CORIO__T_WAITING && t->abort)
            t->abort(t, -ESHUTDOWN);
    }
}

void corio__coro_cancel_all(struct corio_loop *l)
{
    l->coros.stopping = true;
    struct corio__list *n = l->coros.all.next;
    while (n != &l->coros.all) {
        struct corio_coro *co = container_of(n, struct corio_coro, all);
        n = n->next;
        corio__task_cancel(&co->t);
    }
}

/* ---- the end of a coroutine (on the scheduler's stack) ---------------------------------------- */

int corio__group_cancel(struct corio__group *g)
{
    int n = 0;
    g->cancelling = true;
    struct corio__list *m = corio__waitq(&g->members);
    for (struct corio__list *i = m->next; i != m; i = i->next) {
        corio__task_cancel(&container_of(i, struct corio_coro, group_link)->t);
        n++;
    }
    return n;
}

/* A member ended: record its error, fail fast if asked, and wake the waiters when it was the
 * last one. */
static void group_left(struct corio_coro *co, int result)
{
    struct corio__group *g = co->group;
    corio__list_remove(&co->group_link);
    co->group = NULL;
    g->n--;
    if (result < 0 && g->first_error == 0) {
        g->first_error = result;
        if (g->flags & CORIO_GROUP_CANCEL_ON_ERROR)
            corio__group_cancel(g);
    }
    if (g->n == 0)
        corio__waitq_wake_all(&g->waiters, 0);
}

/* The coroutine is over and the kernel holds nothing of its stack: report its result (to its
 * joiner, its group) and give the stack back. Only now, so that a joiner or group owner never
 * sees it end while an op of it may still write into memory they handed it. */
static void finalize(struct corio_coro *co)
{
    struct corio_loop *l = co->loop;
    int result = co->result;
    corio__list_remove(&co->all);
    l->coros.live--;
    /* In a drain, the last coroutine that was not waiting for a signal ends: so do those waits. */
    if (unlikely(l->coros.draining) && l->coros.lingering && l->coros.live == l->coros.lingering)
        corio__coro_shutdown_idle(l, CORIO__IDLE_LAST);
    if (co->group)
        group_left(co, result);
    struct corio__slot *s = &l->coros.slots[co->slot];
    s->co = NULL;
    s->result = result;
    if (s->state & CORIO__SLOT_DETACHED) {
        slot_free(&l->coros, co->slot);
    } else {
        s->state = CORIO__SLOT_ENDED;
        if (s->joiner)
            corio__unpark(&s->joiner->t, 0);
    }
    corio__task_fini(&co->t);
    corio__stack_put(&l->stacks, co->t.stack);
}

void corio__coro_finish(struct corio_coro *co)
{
    if (corio__list_empty(&co->pending)) {
        finalize(co);
        return;
    }
    /* Its own deadline can no longer abort anything. */
    corio__task_set_deadline(&co->t, CORIO_FOREVER);
#ifdef CORIO__VALGRIND
    /* memcheck made the body's frames inaccessible as its stack pointer rose above them, but the
     * scheduler still reads and completes the futures and handlers left there. */
    VALGRIND_MAKE_MEM_DEFINED(co->t.stack->lo, (size_t)((char *)co - co->t.stack->lo));
#endif
    /* Each cancel may unlink its record (one that holds nothing in the kernel any more), so step
     * to the next one first. The coroutine becomes a zombie only afterwards, so that no unlink
     * ends it in the middle of this walk. */
    struct corio__list *i = co->pending.next;
    while (i != &co->pending) {
        struct corio__pending *p = container_of(i, struct corio__pending, link);
        i = i->next;
        p->cancel(p);
    }
    co->t.state = CORIO__T_ZOMBIE;
    if (corio__list_empty(&co->pending))
        finalize(co);
}

static void waiter_abort(struct corio__task *t, int why)
{
    struct corio__task **waiter = t->wait_obj;
    *waiter = NULL;
    corio__unpark(t, why);
}

int corio__pending_park(struct corio__task **waiter, struct corio__task *t, int64_t deadline,
                        bool abortable)
{
    *waiter = t;
    int res = corio__park(t, deadline, abortable ? waiter_abort : NULL, waiter);
    *waiter = NULL;
    return res;
}

void corio__coro_zombie_check(struct corio_coro *co)
{
    if (corio__list_empty(&co->pending))
        finalize(co);
}

void corio__coro_reclaim_all(struct corio_loop *l)
{
    while (!corio__list_empty(&l->coros.all)) {
        struct corio_coro *co = container_of(l->coros.all.next, struct corio_coro, all);
        corio__list_remove(&co->all);
        corio__task_fini(&co->t);
        corio__stack_put(&l->stacks, co->t.stack);
    }
    l->coros.live = 0;
}

void corio__coros_fini(struct corio__coros *cs)
{
    free(cs->slots);
    cs->slots = NULL;
}

/* ---- what a parked coroutine waits for (corio_loop_dump) --------------------------------------*/

const char *corio__coro_wait_name(corio__abort_fn *a)
{
    return a == join_abort ? "a coroutine to end (join)" : NULL;
}
