/* Groups (nurseries): spawning into one, cancelling it, and waiting until it is empty. How a
 * member leaves its group when it ends is part of a coroutine's end of life (coro.c). */
#include "coro.h"

#include "loop.h"

#include <errno.h>
#include <string.h>

_Static_assert(sizeof(struct corio__group) <= sizeof(struct corio_group), "grow corio_group");

static inline struct corio__group *grp(struct corio_group *g)
{
    return (struct corio__group *)(void *)g;
}

int corio_group_init(struct corio_group *pub, unsigned flags)
{
    struct corio__group *g = grp(pub);
    memset(g, 0, sizeof(*g));
    corio__list_init(&g->members);
    corio__list_init(&g->waiters);
    if (flags & ~CORIO_GROUP_CANCEL_ON_ERROR)
        return -EINVAL;
    g->flags = flags;
    return 0;
}

int corio_group_spawn_at(corio_id *out, struct corio_group *pub, corio_fn *fn, void *arg,
                         const char *file, int line)
{
    struct corio_loop *l = corio__tls_loop;
    if (!l || !fn)
        return -EINVAL;
    int err;
    struct corio_coro *co = corio__spawn(l, fn, arg, out, grp(pub), true, &err);
    if (co) {
        co->spawn_file = file;
        co->spawn_line = line;
    }
    return err;
}

/* The function behind the macro of the same name, for callers built without it. */
int(corio_group_spawn)(corio_id *out, struct corio_group *pub, corio_fn *fn, void *arg)
{
    return corio_group_spawn_at(out, pub, fn, arg, NULL, 0);
}

int corio_group_cancel(struct corio_group *pub)
{
    return corio__group_cancel(grp(pub));
}

/* What a wait that saw the group empty reports: under CORIO_GROUP_CANCEL_ON_ERROR a member's
 * failure is the group's (it is why the rest were cancelled); otherwise the wait's own result. */
static int group_result(const struct corio__group *g, int ret)
{
    if ((g->flags & CORIO_GROUP_CANCEL_ON_ERROR) && g->first_error < 0)
        return g->first_error;
    return ret;
}

int corio_group_wait(struct corio_group *pub, int64_t deadline)
{
    struct corio__group *g = grp(pub);
    struct corio_coro *co = corio__self();
    if (!co)
        return -EPERM;
    if (co->group == g)
        return -EDEADLK;
    if (g->n == 0)
        return group_result(g, 0);
    struct corio__task *t;
    int ret = corio__wait_check(&t, deadline);
    if (ret == 0)
        ret = corio__waitq_wait(&g->waiters, &co->t, deadline);
    if (g->n == 0)
        return group_result(g, ret);
    /* Timed out or cancelled: the members go too, and we still wait for every one of them, so
     * that none outlives the group (and the frames it may point into). Their -ECANCELED is our
     * doing, not a failure of theirs: only an error from before counts. */
    int failed = g->first_error;
    corio__group_cancel(g);
    while (g->n > 0)
        corio__waitq_wait(&g->waiters, &co->t, CORIO_FOREVER);
    return (g->flags & CORIO_GROUP_CANCEL_ON_ERROR) && failed < 0 ? failed : ret;
}

size_t corio_group_size(const struct corio_group *pub)
{
    return ((const struct corio__group *)(const void *)pub)->n;
}

int corio_group_error(const struct corio_group *pub)
{
    return ((const struct corio__group *)(const void *)pub)->first_error;
}
