/* Seeing inside a loop: the in-flight table, the coroutine dump, and the process's list of loops.
 *
 * The table costs nothing of its own: every op a coroutine waits for is already a record in its
 * pending list (coro.h), which the engine keeps to know when a stack may be freed; each record is
 * stamped with its opcode, fd and tick count when it is submitted (corio__pending_stamp), and the
 * dump walks the lists. The list of loops is there for the gdb script (tools/corio-gdb.py), which
 * finds every loop of a process, or of its core file, from the symbol corio__loops. */
#include "dump.h"

#include "future.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

/* ---- the process's loops --------------------------------------------------------------------- */

/* Every loop made and not yet freed, through corio_loop.registry. Not static: the gdb script
 * reads it by name. */
struct corio__list corio__loops = {&corio__loops, &corio__loops};
static pthread_mutex_t loops_lock = PTHREAD_MUTEX_INITIALIZER;

void corio__loop_register(struct corio_loop *l)
{
    pthread_mutex_lock(&loops_lock);
    corio__list_push_back(&corio__loops, &l->registry);
    pthread_mutex_unlock(&loops_lock);
}

void corio__loop_unregister(struct corio_loop *l)
{
    pthread_mutex_lock(&loops_lock);
    corio__list_remove(&l->registry);
    pthread_mutex_unlock(&loops_lock);
}

/* ---- names ----------------------------------------------------------------------------------- */

static const char *op_name(unsigned opcode)
{
    if (opcode == CORIO__PENDING_BLOCKING)
        return "blocking";
    const char *name = corio_op_name(opcode); /* metrics.c's table, the one list of names */
    return name ? name : "?";
}

/* The fd of op @opcode described with @fd, or -1 for the ops that have none (their fd field is
 * unused, or for socket the domain). Sorted out here, not in the stamp that every op pays for. */
static int op_fd(unsigned opcode, int fd)
{
    switch (opcode) {
    case CORIO__OP_NOP:
    case CORIO__OP_TIMEOUT:
    case CORIO__OP_SOCKET:
    case CORIO__PENDING_BLOCKING:
        return -1;
    default:
        return fd;
    }
}

/* Prints op @opcode on @fd as "recv on fd 5", or "timeout". */
static void print_op(FILE *f, unsigned opcode, int fd)
{
    fputs(op_name(opcode), f);
    if (op_fd(opcode, fd) >= 0)
        fprintf(f, " on fd %d", fd);
}

/* What a coroutine parked with abort function @a waits for. */
static const char *wait_name(corio__abort_fn *a)
{
    typedef const char *namer(corio__abort_fn *);
    static namer *const namers[] = {
        corio__future_wait_name,   corio__coro_wait_name,     corio__waitq_wait_name,
        corio__chan_wait_name,     corio__gen_wait_name,      corio__acceptor_wait_name,
        corio__receiver_wait_name, corio__blocking_wait_name,
    };
    if (!a)
        return "its ops to finish (a wait that cannot be interrupted)";
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(namers); i++) {
        const char *n = namers[i](a);
        if (n)
            return n;
    }
    return "something the dump does not know";
}

/* ---- the in-flight table --------------------------------------------------------------------- */

#ifndef CORIO_NO_INFLIGHT
/* The op of record @p: a future keeps it whole, the other records stamp it. */
static void record_op(const struct corio__pending *p, unsigned *opcode, int *fd)
{
    const struct corio__future *fut = corio__future_of_pending(p);
    *opcode = fut ? fut->op.opcode : p->opcode;
    *fd = fut ? fut->op.fd : p->fd;
}

/* Fills @out[0..@n) with @co's records in flight. Returns how many it has. */
static size_t inflight_of(const struct corio_loop *l, const struct corio_coro *co,
                          const struct corio__tick_ref *now, struct corio_op_info *out, size_t n)
{
    size_t k = 0;
    for (const struct corio__list *i = co->pending.next; i != &co->pending; i = i->next, k++) {
        if (k >= n)
            continue;
        const struct corio__pending *p = container_of(i, struct corio__pending, link);
        out[k].owner = corio__coro_id(co);
        unsigned opcode;
        int fd;
        record_op(p, &opcode, &fd);
        out[k].op = op_name(opcode);
        out[k].fd = op_fd(opcode, fd);
        out[k].age_ns = corio__ticks_to_ns(&l->born, now, p->since);
    }
    return k;
}

#endif

int corio_loop_inflight(const struct corio_loop *l, struct corio_op_info *out, size_t n)
{
#ifdef CORIO_NO_INFLIGHT
    (void)l;
    (void)out;
    (void)n;
    return -EOPNOTSUPP;
#else
    if (!l || (n && !out))
        return -EINVAL;
    if (!pthread_equal(l->owner, pthread_self()))
        return -EPERM;
    struct corio__tick_ref now;
    corio__tick_ref_take(&now);
    size_t k = 0;
    for (const struct corio__list *i = l->coros.all.next; i != &l->coros.all; i = i->next) {
        const struct corio_coro *co = container_of(i, struct corio_coro, all);
        k += inflight_of(l, co, &now, k < n ? out + k : NULL, k < n ? n - k : 0);
    }
    return k > INT32_MAX ? INT32_MAX : (int)k;
#endif
}

/* ---- the dump -------------------------------------------------------------------------------- */

/* Prints @ns as a short duration. */
static void print_age(FILE *f, int64_t ns)
{
    if (ns >= CORIO_SEC(1))
        fprintf(f, "%.3f s", (double)ns / 1e9);
    else if (ns >= CORIO_MS(1))
        fprintf(f, "%.3f ms", (double)ns / 1e6);
    else
        fprintf(f, "%.1f us", (double)ns / 1e3);
}

static void print_state(FILE *f, const struct corio_coro *co)
{
    const struct corio__task *t = &co->t;
    switch (t->state) {
    case CORIO__T_READY:
        fputs("ready", f);
        break;
    case CORIO__T_RUNNING:
        fputs("running", f);
        break;
    case CORIO__T_WAITING: {
        const char *what = wait_name(t->abort);
        fprintf(f, "waiting for %s", what);
        const struct corio__future *fut = corio__future_awaited(t);
        if (fut) {
            fputs(" (", f);
            print_op(f, fut->op.opcode, fut->op.fd);
            fputc(')', f);
        }
        break;
    }
    case CORIO__T_DONE:
        fputs("returned", f);
        break;
    case CORIO__T_ZOMBIE:
        fputs("ended; its stack is kept until its ops in flight complete", f);
        break;
    default:
        fprintf(f, "state %u", t->state);
    }
    if (t->cancelled)
        fputs(", cancelled", f);
    if (t->deadline_at >= 0) {
        fputs(", deadline in ", f);
        int64_t left = t->deadline_at - corio_now();
        print_age(f, left > 0 ? left : 0);
    }
}

static void dump_coro(FILE *f, const struct corio_loop *l, const struct corio_coro *co,
                      const struct corio__tick_ref *now)
{
    fprintf(f, "  coroutine %" PRIu32, co->slot + 1);
    if (co->name[0])
        fprintf(f, " \"%s\"", co->name);
    fprintf(f, " (id %#" PRIx64 "): ", (uint64_t)corio__coro_id(co));
    print_state(f, co);
    if (co->spawn_file)
        fprintf(f, "; spawned at %s:%d", co->spawn_file, co->spawn_line);
    fprintf(f, "; body %p", (void *)(uintptr_t)co->fn);
    const struct corio__stack *st = co->t.stack;
    size_t used = corio__stack_used(st);
    if (used)
        fprintf(f, "; stack %zu of %zu bytes used at most", used, (size_t)(st->hi - st->lo));
    fputc('\n', f);
    size_t k = 0;
    for (const struct corio__list *i = co->pending.next; i != &co->pending; i = i->next, k++) {
#ifndef CORIO_NO_INFLIGHT
        const struct corio__pending *p = container_of(i, struct corio__pending, link);
        unsigned opcode;
        int fd;
        record_op(p, &opcode, &fd);
        fputs("    in flight: ", f);
        print_op(f, opcode, fd);
        fputs(", for ", f);
        print_age(f, corio__ticks_to_ns(&l->born, now, p->since));
        fputc('\n', f);
#endif
    }
#ifdef CORIO_NO_INFLIGHT
    (void)l;
    (void)now;
    if (k)
        fprintf(f, "    in flight: %zu (the table is compiled out: CORIO_INFLIGHT=OFF)\n", k);
#endif
}

int corio_loop_dump(const struct corio_loop *l, FILE *f)
{
    if (!l || !f)
        return -EINVAL;
    if (!pthread_equal(l->owner, pthread_self()))
        return -EPERM;
    struct corio__tick_ref now;
    corio__tick_ref_take(&now);
    fprintf(
        f, "corio loop %p: %s, %zu coroutines, %zu completions in flight, %" PRIu64 " iterations\n",
        (const void *)l, l->io.ring ? "io_uring" : "epoll", l->coros.live, l->io.inflight,
        l->stats.iterations);
    for (const struct corio__list *i = l->coros.all.next; i != &l->coros.all; i = i->next)
        dump_coro(f, l, container_of(i, struct corio_coro, all), &now);
    fflush(f);
    return 0;
}
