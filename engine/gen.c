/* Generators: a coroutine driven by corio_gen_send, yielding a value back on each resume. The
 * driver and the generator hand the thread to each other directly (corio__park_switch), so a
 * send + yield is two context switches and no trip through the scheduler. Only when the
 * generator itself waits for I/O does the scheduler come in between. */
#include "coro.h"

#include "loop.h"
#include "dump.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

enum { GEN_UNSET = 0, GEN_NEW, GEN_RUNNING, GEN_SUSPENDED, GEN_DONE };

struct corio__gen {
    struct corio__task *co;     /* the generator's coroutine (its task), until it ends */
    struct corio__task *driver; /* the coroutine parked in send (or fini), or NULL */
    corio_gen_fn *fn;          /* body */
    void *arg;                 /* body's argument */
    void *in;                  /* the value of the current send */
    void *out;                 /* the value of the last yield */
    struct corio_loop *loop;   /* the loop it runs on */
    int result;                /* the body's return value, once GEN_DONE */
    uint8_t state;             /* GEN_* */
    int driver_abort;          /* why the driver's send was aborted (send_abort): -ECANCELED,
                                  -ETIMEDOUT; 0 if it was not */
};
_Static_assert(sizeof(struct corio__gen) <= sizeof(struct corio_gen), "grow corio_gen");

static inline struct corio__gen *gen(struct corio_gen *g)
{
    return (struct corio__gen *)(void *)g;
}

static int gen_main(void *p)
{
    struct corio__gen *g = p;
    int r = g->fn((struct corio_gen *)p, g->arg, g->in);
    g->result = r;
    g->state = GEN_DONE;
    g->co = NULL;
    struct corio__task *d = g->driver;
    g->driver = NULL;
    if (d)
        corio__unpark(d, 0); /* 0: the generator ended */
    return r;
}

/* A generator that was never started is cancelled (loop stop, or a deadlock being broken): start
 * it, cancelled, as corio_gen_fini does, so that its body runs to its end like any coroutine
 * cancelled before its first run, instead of ignoring the cancel and never ending. */
static void new_abort(struct corio__task *t, int why)
{
    (void)why;
    struct corio__gen *g = t->wait_obj;
    g->state = GEN_RUNNING;
    corio__unpark(t, 0);
}

int corio_gen_init(struct corio_gen *pub, corio_gen_fn *fn, void *arg)
{
    struct corio__gen *g = gen(pub);
    memset(g, 0, sizeof(*g));
    struct corio__task *self = corio__tls_task;
    if (!self)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    g->fn = fn;
    g->arg = arg;
    g->loop = corio__loop_of(self);
    int err;
    struct corio_coro *co = corio__spawn(g->loop, gen_main, g, NULL, NULL, false, &err);
    if (!co)
        return err;
    g->co = &co->t;
    g->state = GEN_NEW;
    /* Parked until the first send switches to it (which clears this hook). */
    g->co->abort = new_abort;
    g->co->wait_obj = g;
    return 0;
}

/* The driver is cancelled while the generator runs: cancel the generator too and keep waiting
 * until it yields or ends, so that it never runs on without a driver. */
static void send_abort(struct corio__task *t, int why)
{
    struct corio__gen *g = t->wait_obj;
    g->driver_abort = why;
    if (g->co)
        corio__task_cancel(g->co);
}

int corio_gen_send(struct corio_gen *pub, void *in, void **out, int64_t deadline)
{
    struct corio__gen *g = gen(pub);
    struct corio__task *self = corio__tls_task;
    if (!self || g->state == GEN_UNSET || corio__loop_of(self) != g->loop)
        return -EPERM;
    if (g->state == GEN_DONE)
        return 0;
    if (g->co == self)
        return -EDEADLK;
    if (g->driver)
        return -EBUSY;
    int why = self->cancelled ? -ECANCELED
              : self->expired || (deadline >= 0 && deadline <= corio_now()) ? -ETIMEDOUT
                                                                             : 0;
    if (why) {
        corio_gen_fini(pub);
        return why;
    }
    g->in = in;
    g->driver = self;
    g->state = GEN_RUNNING;
    g->co->wake_res = 0; /* its yield returns 0: resumed by a send */
    g->driver_abort = 0;
    int r = corio__park_switch(self, g->co, deadline, send_abort, g);
    if (g->driver_abort) {
        /* The generator was cancelled with us and has ended (a cancelled generator cannot
         * yield): report why, not a normal end. */
        why = g->driver_abort;
        g->driver_abort = 0;
        return why;
    }
    if (r == 1 && out)
        *out = g->out;
    return r;
}

int corio_gen_next(struct corio_gen *g, void **out, int64_t deadline)
{
    return corio_gen_send(g, NULL, out, deadline);
}

/* The generator is cancelled while parked in yield (fini, loop stop): wake it with the error. */
static void yield_abort(struct corio__task *t, int why)
{
    corio__unpark(t, why);
}

int corio_gen_yield(struct corio_gen *pub, void *value, void **in)
{
    struct corio__gen *g = gen(pub);
    struct corio__task *self = corio__tls_task;
    if (!self || self != g->co)
        return -EPERM;
    if (self->cancelled)
        return -ECANCELED;
    struct corio__task *d = g->driver;
    CORIO__ASSERT(d);
    g->out = value;
    g->driver = NULL;
    g->state = GEN_SUSPENDED;
    d->wake_res = 1; /* its send returns 1: a value */
    int r = corio__park_switch(self, d, CORIO_FOREVER, yield_abort, g);
    g->state = GEN_RUNNING;
    if (r < 0)
        return r;
    if (in)
        *in = g->in;
    return 0;
}

int corio_gen_result(const struct corio_gen *pub)
{
    const struct corio__gen *g = (const struct corio__gen *)(const void *)pub;
    return g->state == GEN_DONE ? g->result : -EINPROGRESS;
}

int corio_gen_fini(struct corio_gen *pub)
{
    struct corio__gen *g = gen(pub);
    struct corio__task *self = corio__tls_task;
    if (g->state == GEN_UNSET)
        return -EINVAL;
    if (g->state == GEN_DONE)
        return g->result;
    if (!self || corio__loop_of(self) != g->loop || g->driver)
        return -EPERM;
    struct corio__task *co = g->co;
    g->driver = self;
    corio__task_cancel(co);
    if (g->state == GEN_NEW) {
        /* Never started: it runs, cancelled, so its body sees -ECANCELED at its first wait. */
        g->state = GEN_RUNNING;
        co->wake_res = 0;
        corio__make_ready(co);
    }
    /* Not abortable: the generator's stack may point into frames the caller is about to drop. */
    while (g->state != GEN_DONE)
        corio__park(self, CORIO_FOREVER, NULL, NULL);
    return g->result;
}

/* ---- what a parked coroutine waits for (corio_loop_dump) --------------------------------------*/

const char *corio__gen_wait_name(corio__abort_fn *a)
{
    if (a == send_abort)
        return "a generator to yield";
    return a == yield_abort ? "its generator's driver" : NULL;
}
