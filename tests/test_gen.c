/* Generators: values both ways through send and yield, iteration to the end, the result, -EBUSY
 * and -EPERM, I/O inside a generator, corio_gen_fini in every state, cancellation of the driver,
 * and a record parser fed chunk by chunk.
 *
 * cmocka's assert_* longjmp off the coroutine's stack, so coroutine bodies record failed checks
 * with T_EXPECT/T_EXPECT_EQ (the first one is printed with file:line) and each test asserts, after
 * the loop has run, that none failed. Every wait that could hang carries a deadline. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Values travel as pointers; small integers ride in them. */
#define IV(x) ((void *)(intptr_t)(x))
#define VI(p) ((int)(intptr_t)(p))

/* ---- values both ways ----------------------------------------------------------------------- */

struct acc_state {
    void *first_in;  /* the body's @in */
    int yields;
    int last_yield;  /* the last corio_gen_yield result */
};

/* Yields the running sum of what it is sent, starting with @in, until sent 0; returns the sum. */
static int accumulator(struct corio_gen *g, void *arg, void *in)
{
    struct acc_state *s = arg;
    s->first_in = in;
    int sum = 0;
    while (VI(in) != 0) {
        sum += VI(in);
        s->last_yield = corio_gen_yield(g, IV(sum), &in);
        if (s->last_yield != 0)
            return s->last_yield;
        s->yields++;
    }
    return 1000 + sum;
}

static int send_yield_main(void *arg)
{
    (void)arg;
    struct acc_state s = {0};
    struct corio_gen g;
    T_EXPECT_EQ(corio_gen_init(&g, accumulator, &s), 0);
    T_EXPECT_EQ(corio_gen_result(&g), -EINPROGRESS);
    void *out = IV(-1);
    int want = 0;
    for (int i = 1; i <= 10; i++) {
        T_EXPECT_EQ(corio_gen_send(&g, IV(i), &out, CORIO_FOREVER), 1);
        want += i;
        T_EXPECT_EQ(VI(out), want);
        if (i == 1)
            T_EXPECT(s.first_in == IV(1)); /* the first send's value is the body's @in */
    }
    T_EXPECT_EQ(s.yields, 9); /* the 10th yield has not returned yet */
    T_EXPECT_EQ(corio_gen_result(&g), -EINPROGRESS);
    out = IV(-1);
    T_EXPECT_EQ(corio_gen_send(&g, IV(0), &out, CORIO_FOREVER), 0); /* it ended */
    T_EXPECT_EQ(VI(out), -1);                        /* and *out was left alone */
    T_EXPECT_EQ(corio_gen_result(&g), 1000 + 55);
    T_EXPECT_EQ(s.yields, 10);
    T_EXPECT_EQ(s.last_yield, 0);
    /* After the end: send returns 0, the result stays, fini returns it. */
    T_EXPECT_EQ(corio_gen_send(&g, IV(5), &out, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_gen_next(&g, &out, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_gen_result(&g), 1055);
    T_EXPECT_EQ(corio_gen_fini(&g), 1055);
    T_EXPECT_EQ(corio_gen_fini(&g), 1055);
    T_EXPECT_EQ(corio_gen_send(&g, IV(5), NULL, CORIO_FOREVER), 0);
    return 0;
}

static void test_gen_send_yield_values(void **state)
{
    t_run_checked(state, send_yield_main, NULL);
}

/* Yields 0, 1, ..., n-1 and returns n * 10. */
static int counter(struct corio_gen *g, void *arg, void *in)
{
    (void)in;
    int n = VI(arg);
    for (int i = 0; i < n; i++)
        if (corio_gen_yield(g, IV(i), NULL) != 0)
            return -ECANCELED;
    return n * 10;
}

static int next_main(void *arg)
{
    (void)arg;
    struct corio_gen g;
    T_EXPECT_EQ(corio_gen_init(&g, counter, IV(25)), 0);
    void *v;
    int n = 0, r;
    uint64_t sw0 = corio_loop_stats(corio_loop_current())->switches;
    while ((r = corio_gen_next(&g, &v, CORIO_FOREVER)) > 0) {
        T_EXPECT_EQ(VI(v), n);
        n++;
    }
    uint64_t sw = corio_loop_stats(corio_loop_current())->switches - sw0;
    T_EXPECT_EQ(r, 0);
    T_EXPECT_EQ(n, 25);
    T_EXPECT_EQ(corio_gen_result(&g), 250);
    /* Direct hand-offs: two switches per value, plus the generator's end (to the scheduler and
     * back into the driver): no trip through the loop per value. */
    T_EXPECT(sw <= 2 * 25 + 4);
    T_EXPECT_EQ(corio_gen_next(&g, &v, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_gen_fini(&g), 250);

    /* A generator that ends without yielding at all. */
    T_EXPECT_EQ(corio_gen_init(&g, counter, IV(0)), 0);
    T_EXPECT_EQ(corio_gen_next(&g, &v, CORIO_FOREVER), 0);
    T_EXPECT_EQ(corio_gen_result(&g), 0);
    T_EXPECT_EQ(corio_gen_fini(&g), 0);
    return 0;
}

static void test_gen_next_until_end(void **state)
{
    t_run_checked(state, next_main, NULL);
}

/* ---- -EBUSY, -EDEADLK, -EPERM --------------------------------------------------------------- */

struct busy {
    struct corio_gen g;
    int second_send, second_fini, after_send;
    bool sleeping;
};

/* Sleeps 40 ms before each yield, so that its driver stays parked in send meanwhile. */
static int slow_gen(struct corio_gen *g, void *arg, void *in)
{
    struct busy *b = arg;
    for (int i = 0; i < 3; i++) {
        b->sleeping = true;
        int r = corio_sleep(T_DL(40));
        b->sleeping = false;
        if (r)
            return r;
        if (corio_gen_yield(g, IV(VI(in) + 1), &in) != 0)
            return -ECANCELED;
    }
    return 3;
}

static int busy_intruder(void *arg)
{
    struct busy *b = arg;
    t_settle(2);
    T_EXPECT(b->sleeping);
    void *out = NULL;
    b->second_send = corio_gen_send(&b->g, IV(100), &out, CORIO_FOREVER);
    b->second_fini = corio_gen_fini(&b->g);
    return 0;
}

static int busy_main(void *arg)
{
    struct busy *b = arg;
    T_EXPECT_EQ(corio_gen_init(&b->g, slow_gen, b), 0);
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, busy_intruder, b), 0);
    void *out = NULL;
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_gen_send(&b->g, IV(1), &out, CORIO_FOREVER), 1);
    T_EXPECT(corio_now() - t0 >= CORIO_MS(40) - T_EARLY_NS);
    T_EXPECT_EQ(VI(out), 2);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    T_EXPECT_EQ(b->second_send, -EBUSY);
    T_EXPECT_EQ(b->second_fini, -EPERM);
    /* Once the first send is over, anyone of the loop may drive it. */
    T_EXPECT_EQ(corio_gen_send(&b->g, IV(5), &out, CORIO_FOREVER), 1);
    T_EXPECT_EQ(VI(out), 6);
    T_EXPECT_EQ(corio_gen_fini(&b->g), -ECANCELED);
    return 0;
}

static void test_gen_ebusy_second_sender(void **state)
{
    struct busy b;
    memset(&b, 0, sizeof(b));
    t_run_checked(state, busy_main, &b);
}

static int self_sender(struct corio_gen *g, void *arg, void *in)
{
    (void)in;
    int *res = arg;
    void *out;
    res[0] = corio_gen_send(g, NULL, &out, CORIO_FOREVER);
    res[1] = corio_gen_fini(g);
    return 7;
}

static struct corio_gen outside_gen;

static int deadlk_main(void *arg)
{
    (void)arg;
    int res[2] = {1, 1};
    struct corio_gen g;
    T_EXPECT_EQ(corio_gen_init(&g, self_sender, res), 0);
    T_EXPECT_EQ(corio_gen_next(&g, NULL, CORIO_FOREVER), 0);
    T_EXPECT_EQ(res[0], -EDEADLK);
    T_EXPECT(res[1] < 0); /* finishing itself cannot work */
    T_EXPECT_EQ(corio_gen_result(&g), 7);
    /* A yield on a generator that is not the caller's. */
    T_EXPECT_EQ(corio_gen_yield(&g, NULL, NULL), -EPERM);
    T_EXPECT_EQ(corio_gen_init(&g, NULL, NULL), -EINVAL);

    /* Leave one ended generator for the test to poke at from outside the loop. */
    T_EXPECT_EQ(corio_gen_init(&outside_gen, counter, IV(2)), 0);
    while (corio_gen_next(&outside_gen, NULL, CORIO_FOREVER) > 0)
        ;
    return 0;
}

static void test_gen_eperm_edeadlk(void **state)
{
    t_run_checked(state, deadlk_main, NULL);
    struct corio_gen g;
    void *out;
    assert_int_equal(corio_gen_init(&g, counter, IV(1)), -EPERM);
    assert_int_equal(corio_gen_send(&outside_gen, NULL, &out, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_gen_next(&outside_gen, &out, CORIO_FOREVER), -EPERM);
    assert_int_equal(corio_gen_yield(&outside_gen, NULL, NULL), -EPERM);
    assert_int_equal(corio_gen_result(&outside_gen), 20);
}

/* ---- I/O inside the generator --------------------------------------------------------------- */

struct io_gen {
    int rfd;
    int sleeps;
};

/* Reads one byte from the pipe per value, after a short sleep; yields it; ends at EOF. */
static int pipe_reader_gen(struct corio_gen *g, void *arg, void *in)
{
    (void)in;
    struct io_gen *s = arg;
    for (;;) {
        if (corio_sleep(T_DL(5)) != 0)
            return -ECANCELED;
        s->sleeps++;
        /* Initialised: valgrind does not see io_uring's writes into memory. */
        unsigned char c = 0;
        ssize_t n = corio_read(s->rfd, &c, 1, -1, T_BOUND);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 0;
        if (corio_gen_yield(g, IV(c), NULL) != 0)
            return -ECANCELED;
    }
}

struct pipe_writer {
    int wfd;
    const char *msg;
};

/* Writes the message a byte every 3 ms, then closes the pipe. */
static int pipe_writer(void *arg)
{
    struct pipe_writer *w = arg;
    for (const char *p = w->msg; *p; p++) {
        T_EXPECT_EQ(corio_sleep(T_DL(3)), 0);
        T_EXPECT_EQ(corio_write(w->wfd, p, 1, -1, T_BOUND), 1);
    }
    return corio_close(w->wfd);
}

static int io_main(void *arg)
{
    (void)arg;
    int fds[2];
    T_EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    struct io_gen s = {.rfd = fds[0]};
    struct pipe_writer w = {.wfd = fds[1], .msg = "generators do I/O"};
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, pipe_writer, &w), 0);
    struct corio_gen g;
    T_EXPECT_EQ(corio_gen_init(&g, pipe_reader_gen, &s), 0);
    char got[64];
    size_t n = 0;
    void *v;
    int r;
    int64_t t0 = corio_now();
    while ((r = corio_gen_next(&g, &v, CORIO_FOREVER)) > 0 && n < sizeof(got) - 1)
        got[n++] = (char)VI(v);
    got[n] = '\0';
    T_EXPECT_EQ(r, 0);
    T_EXPECT_EQ(strcmp(got, w.msg), 0);
    T_EXPECT_EQ(corio_gen_result(&g), 0);
    T_EXPECT_EQ(s.sleeps, (int)strlen(w.msg) + 1);
    T_EXPECT(corio_now() - t0 >= (int64_t)strlen(w.msg) * CORIO_MS(5) - T_EARLY_NS);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    close(fds[0]);
    return 0;
}

static void test_gen_io_between_yields(void **state)
{
    t_run_checked(state, io_main, NULL);
}

/* ---- fini ----------------------------------------------------------------------------------- */

struct fin {
    int yield_res;   /* what the interrupted yield returned */
    int sleep_res;   /* what a wait during clean-up returned */
    bool cleaned;    /* the clean-up ran */
    bool started;    /* the body ran at all */
    void *in;        /* the body's @in */
};

/* Yields until told otherwise; its clean-up shows how it was ended. */
static int fin_gen(struct corio_gen *g, void *arg, void *in)
{
    struct fin *f = arg;
    f->started = true;
    f->in = in;
    int r;
    for (int i = 0;; i++) {
        r = corio_gen_yield(g, IV(i), NULL);
        if (r != 0)
            break;
    }
    f->yield_res = r;
    f->sleep_res = corio_sleep(T_DL(1000)); /* cancelled: at once */
    f->cleaned = true;
    return 42;
}

static int fini_main(void *arg)
{
    (void)arg;
    /* Suspended in a yield. */
    struct fin f = {0};
    struct corio_gen g;
    T_EXPECT_EQ(corio_gen_init(&g, fin_gen, &f), 0);
    void *v;
    T_EXPECT_EQ(corio_gen_send(&g, IV(9), &v, CORIO_FOREVER), 1);
    T_EXPECT_EQ(corio_gen_next(&g, &v, CORIO_FOREVER), 1);
    T_EXPECT_EQ(VI(v), 1);
    int64_t t0 = corio_now();
    T_EXPECT_EQ(corio_gen_fini(&g), 42);
    T_EXPECT(corio_now() - t0 < CORIO_MS(500));
    T_EXPECT(f.cleaned);
    T_EXPECT_EQ(f.yield_res, -ECANCELED);
    T_EXPECT_EQ(f.sleep_res, -ECANCELED);
    T_EXPECT(f.in == IV(9));
    T_EXPECT_EQ(corio_gen_result(&g), 42);
    T_EXPECT_EQ(corio_gen_send(&g, NULL, &v, CORIO_FOREVER), 0);
    T_EXPECT(!corio_cancelled()); /* the driver itself is not cancelled */

    /* Never started: the body runs cancelled, from its first wait on. */
    f = (struct fin){0};
    T_EXPECT_EQ(corio_gen_init(&g, fin_gen, &f), 0);
    T_EXPECT_EQ(corio_gen_fini(&g), 42);
    T_EXPECT(f.started);
    T_EXPECT(f.cleaned);
    T_EXPECT(f.in == NULL);
    T_EXPECT_EQ(f.yield_res, -ECANCELED);
    T_EXPECT_EQ(f.sleep_res, -ECANCELED);

    /* Finished: fini only reports the result. */
    T_EXPECT_EQ(corio_gen_init(&g, counter, IV(3)), 0);
    while (corio_gen_next(&g, &v, CORIO_FOREVER) > 0)
        ;
    T_EXPECT_EQ(corio_gen_fini(&g), 30);
    T_EXPECT_EQ(corio_gen_fini(&g), 30);
    return 0;
}

static void test_gen_fini(void **state)
{
    t_run_checked(state, fini_main, NULL);
}

/* ---- cancel of the driver ------------------------------------------------------------------- */

struct drv {
    struct corio_gen g;
    struct fin f;
    int send_res;
    int gen_result_at_return;
    int64_t took;
};

/* Yields once, then sleeps 10 s before the next yield, and cleans up whatever happens. */
static int sleepy_gen(struct corio_gen *g, void *arg, void *in)
{
    (void)in;
    struct fin *f = arg;
    f->started = true;
    f->yield_res = corio_gen_yield(g, IV(1), NULL);
    f->sleep_res = corio_sleep(T_DL(10000));
    f->cleaned = true;
    if (f->sleep_res)
        return f->sleep_res;
    return corio_gen_yield(g, IV(2), NULL);
}

static int driver(void *arg)
{
    struct drv *d = arg;
    T_EXPECT_EQ(corio_gen_init(&d->g, sleepy_gen, &d->f), 0);
    void *v = NULL;
    T_EXPECT_EQ(corio_gen_next(&d->g, &v, CORIO_FOREVER), 1);
    T_EXPECT_EQ(VI(v), 1);
    int64_t t0 = corio_now();
    d->send_res = corio_gen_next(&d->g, &v, CORIO_FOREVER); /* parked here while the generator sleeps */
    d->took = corio_now() - t0;
    d->gen_result_at_return = corio_gen_result(&d->g);
    corio_gen_fini(&d->g);
    return 0;
}

static int cancel_driver_main(void *arg)
{
    struct drv *d = arg;
    corio_id id;
    T_EXPECT_EQ(corio_spawn(&id, NULL, driver, d), 0);
    T_EXPECT_EQ(corio_sleep(T_DL(20)), 0);
    T_EXPECT_EQ(corio_cancel(id), 0);
    T_EXPECT_EQ(corio_join(id, NULL, T_BOUND), 0);
    return 0;
}

static void test_gen_cancel_driver(void **state)
{
    struct drv d;
    memset(&d, 0, sizeof(d));
    t_run_checked(state, cancel_driver_main, &d);
    assert_true(d.f.cleaned);
    assert_int_equal(d.f.yield_res, 0);
    assert_int_equal(d.f.sleep_res, -ECANCELED);
    /* The generator was cancelled too, and had ended when the send returned. */
    assert_int_equal(d.gen_result_at_return, -ECANCELED);
    assert_true(d.took < CORIO_MS(2000));
    assert_int_equal(d.send_res, -ECANCELED);
}

/* The generator ends on its own and wakes its driver through the run queue; the driver is
 * cancelled in that window, before it runs again. The generator was not cancelled, so the send
 * reports its end (0), not -ECANCELED. */
struct late {
    struct corio_gen g;
    corio_id driver;
    int send_res, cancel_res;
    void *out;
};

static int late_canceller(void *arg)
{
    struct late *l = arg;
    l->cancel_res = corio_cancel(l->driver);
    return 0;
}

static int ending_gen(struct corio_gen *g, void *arg, void *in)
{
    (void)g;
    (void)in;
    struct late *l = arg;
    T_EXPECT_EQ(corio_sleep(T_DL(10)), 0); /* back from the scheduler, driver parked in send */
    /* Queued now, the canceller runs before the driver, which the end of this body queues. */
    T_EXPECT_EQ(corio_spawn(NULL, NULL, late_canceller, l), 0);
    return 77;
}

static int late_driver(void *arg)
{
    struct late *l = arg;
    T_EXPECT_EQ(corio_gen_init(&l->g, ending_gen, l), 0);
    l->out = IV(-1);
    l->send_res = corio_gen_next(&l->g, &l->out, CORIO_FOREVER);
    T_EXPECT(corio_cancelled());
    T_EXPECT_EQ(corio_gen_fini(&l->g), 77);
    return 0;
}

static int late_cancel_main(void *arg)
{
    struct late *l = arg;
    T_EXPECT_EQ(corio_spawn(&l->driver, NULL, late_driver, l), 0);
    T_EXPECT_EQ(corio_join(l->driver, NULL, T_BOUND), 0);
    return 0;
}

static void test_gen_cancel_driver_after_end(void **state)
{
    struct late l;
    memset(&l, 0, sizeof(l));
    t_run_checked(state, late_cancel_main, &l);
    assert_int_equal(l.cancel_res, 0);
    assert_int_equal(l.send_res, 0);
    assert_int_equal(VI(l.out), -1);
    assert_int_equal(corio_gen_result(&l.g), 77);
}

/* ---- loop stop and a generator nobody finished ---------------------------------------------- */

static struct corio_gen stop_gens[2];
static struct fin stop_fin[2];

static int stop_main(void *arg)
{
    (void)arg;
    void *v;
    /* One suspended in a yield, one never started; neither is finished by its driver. */
    T_EXPECT_EQ(corio_gen_init(&stop_gens[0], fin_gen, &stop_fin[0]), 0);
    T_EXPECT_EQ(corio_gen_next(&stop_gens[0], &v, CORIO_FOREVER), 1);
    T_EXPECT_EQ(corio_gen_init(&stop_gens[1], fin_gen, &stop_fin[1]), 0);
    corio_loop_stop(corio_loop_current());
    return 0;
}

static void test_gen_loop_stop(void **state)
{
    memset(stop_fin, 0, sizeof(stop_fin));
    t_run_checked(state, stop_main, NULL);
    assert_true(stop_fin[0].cleaned);
    assert_int_equal(stop_fin[0].yield_res, -ECANCELED);
    assert_int_equal(corio_gen_result(&stop_gens[0]), 42);
    /* The never-started one ran cancelled to its end as well. */
    assert_int_equal(corio_gen_result(&stop_gens[1]), 42);
    assert_true(stop_fin[1].cleaned);
}

/* ---- a record parser fed through send ------------------------------------------------------- */

/* Chunks go in; complete '\n'-terminated records come out, one per yield; a NULL yield asks for
 * the next chunk. A chunk with len 0 ends the input: the body returns the number of records, or
 * -EINVAL if an unterminated record is left over. */
struct chunk {
    const char *p;
    size_t len;
};

struct record {
    char text[128];
    size_t len;
};

static int line_parser(struct corio_gen *g, void *arg, void *in)
{
    (void)arg;
    struct record rec = {.len = 0};
    int records = 0;
    const struct chunk *c = in;
    while (c && c->len > 0) {
        for (size_t i = 0; i < c->len; i++) {
            char ch = c->p[i];
            if (ch != '\n') {
                if (rec.len >= sizeof(rec.text) - 1)
                    return -EMSGSIZE;
                rec.text[rec.len++] = ch;
                continue;
            }
            rec.text[rec.len] = '\0';
            records++;
            void *next = NULL;
            if (corio_gen_yield(g, &rec, &next) != 0)
                return -ECANCELED;
            if (next != NULL)
                return -EPROTO; /* records are acknowledged with NULL */
            rec.len = 0;
        }
        void *next = NULL;
        if (corio_gen_yield(g, NULL, &next) != 0)
            return -ECANCELED;
        c = next;
    }
    return rec.len ? -EINVAL : records;
}

struct parse_case {
    const char *input;
    size_t len;
    const char *expect[64]; /* the records, in order */
    int n_expect;
};

/* Feeds @chunks to a fresh parser and checks the records. Returns the parser's result. */
static int parse_chunks(const struct parse_case *pc, const struct chunk *chunks, size_t n_chunks)
{
    struct corio_gen g;
    T_EXPECT_EQ(corio_gen_init(&g, line_parser, NULL), 0);
    int got = 0;
    for (size_t k = 0; k <= n_chunks; k++) {
        struct chunk end = {.p = NULL, .len = 0};
        const struct chunk *c = k < n_chunks ? &chunks[k] : &end;
        void *out;
        int r = corio_gen_send(&g, (void *)c, &out, CORIO_FOREVER);
        while (r == 1 && out != NULL) {
            const struct record *rec = out;
            if (got < pc->n_expect) {
                if (strcmp(rec->text, pc->expect[got]) != 0 || rec->len != strlen(pc->expect[got])) {
                    T_EXPECT_EQ(strcmp(rec->text, pc->expect[got]), 0);
                    corio_gen_fini(&g);
                    return -1;
                }
            }
            got++;
            r = corio_gen_send(&g, NULL, &out, CORIO_FOREVER);
        }
        if (k < n_chunks)
            T_EXPECT_EQ(r, 1); /* asking for more */
        else
            T_EXPECT_EQ(r, 0); /* the end chunk ended it */
    }
    T_EXPECT_EQ(got, pc->n_expect);
    return corio_gen_fini(&g);
}

static int parser_main(void *arg)
{
    (void)arg;
    /* A few hundred bytes: short, long, empty and repeated records. */
    static char input[1024];
    static struct parse_case pc;
    memset(&pc, 0, sizeof(pc));
    static const char *lines[] = {
        "GET / HTTP/1.1", "Host: example.org", "", "x", "a much longer record with spaces",
        "", "", "key=value;other=thing", "0123456789abcdefghijklmnopqrstuvwxyz", "tail",
        "Content-Length: 12", "Connection: keep-alive", "ok", "\tindented\t", "last record!",
    };
    size_t len = 0;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        size_t l = strlen(lines[i]);
        memcpy(input + len, lines[i], l);
        input[len + l] = '\n';
        len += l + 1;
        pc.expect[pc.n_expect++] = lines[i];
    }
    pc.input = input;
    pc.len = len;
    T_EXPECT(len >= 200);

    /* Two chunks, split at every point (including the empty first and last chunk). */
    for (size_t k = 0; k <= len; k++) {
        struct chunk ch[2] = {{input, k}, {input + k, len - k}};
        /* A zero-length chunk would mean the end: leave it out. */
        struct chunk nz[2];
        size_t n = 0;
        for (int i = 0; i < 2; i++)
            if (ch[i].len)
                nz[n++] = ch[i];
        int r = parse_chunks(&pc, nz, n);
        T_EXPECT_EQ(r, pc.n_expect);
        if (r != pc.n_expect)
            return -1;
    }
    /* Fixed chunk sizes from 1 byte (every byte its own chunk) up to the whole input. */
    static struct chunk many[1024];
    for (size_t size = 1; size <= len; size++) {
        size_t n = 0;
        for (size_t off = 0; off < len; off += size)
            many[n++] = (struct chunk){input + off, off + size <= len ? size : len - off};
        int r = parse_chunks(&pc, many, n);
        T_EXPECT_EQ(r, pc.n_expect);
        if (r != pc.n_expect)
            return -1;
    }
    /* Three chunks at every pair of split points, over a shorter prefix of whole records. */
    size_t short_len = 0;
    int short_n = 0;
    while (short_n < 6) {
        short_len += strlen(lines[short_n]) + 1;
        short_n++;
    }
    struct parse_case sc = pc;
    sc.len = short_len;
    sc.n_expect = short_n;
    for (size_t a = 1; a < short_len; a++)
        for (size_t b = a + 1; b < short_len; b++) {
            struct chunk ch[3] = {{input, a}, {input + a, b - a}, {input + b, short_len - b}};
            int r = parse_chunks(&sc, ch, 3);
            T_EXPECT_EQ(r, short_n);
            if (r != short_n)
                return -1;
        }
    /* An unterminated record is reported at the end. */
    struct chunk bad = {"abc\ndef", 7};
    struct parse_case bc = {.input = bad.p, .len = 7, .expect = {"abc"}, .n_expect = 1};
    T_EXPECT_EQ(parse_chunks(&bc, &bad, 1), -EINVAL);
    return 0;
}

static void test_gen_record_parser(void **state)
{
    t_run_checked(state, parser_main, NULL);
}

/* A generator that sleeps 10 s before each yield. */
static int yield_every_10s(struct corio_gen *g, void *arg, void *in)
{
    int *cleanups = arg;
    (void)in;
    for (;;) {
        int r = corio_sleep(corio_now() + CORIO_SEC(10));
        if (r == 0)
            r = corio_gen_yield(g, NULL, NULL);
        if (r < 0) {
            (*cleanups)++;
            return r;
        }
    }
}

/* A send's deadline ends a generator that is slow to yield as a cancel of the driver would: the
 * generator is cancelled and has ended when the send returns -ETIMEDOUT. */
static int send_deadline_main(void *arg)
{
    int *cleanups = arg;
    struct corio_gen g;
    T_EXPECT_EQ(corio_gen_init(&g, yield_every_10s, cleanups), 0);
    int64_t t0 = corio_now();
    void *out;
    T_EXPECT_EQ(corio_gen_send(&g, NULL, &out, t0 + CORIO_MS(30)), -ETIMEDOUT);
    T_EXPECT_ELAPSED(t0, 30);
    T_EXPECT_EQ(*cleanups, 1);
    T_EXPECT_EQ(corio_gen_result(&g), -ECANCELED);
    T_EXPECT_EQ(corio_gen_send(&g, NULL, &out, CORIO_FOREVER), 0); /* it has ended */
    T_EXPECT_EQ(corio_gen_fini(&g), -ECANCELED);
    /* A deadline already past: finished at once. */
    struct corio_gen h;
    T_EXPECT_EQ(corio_gen_init(&h, yield_every_10s, cleanups), 0);
    T_EXPECT_EQ(corio_gen_next(&h, &out, corio_now() - 1), -ETIMEDOUT);
    T_EXPECT(corio_gen_result(&h) != -EINPROGRESS);
    corio_gen_fini(&h);
    return 0;
}

static void test_gen_send_deadline(void **state)
{
    int cleanups = 0;
    t_run_checked(state, send_deadline_main, &cleanups);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_TEST(test_gen_send_yield_values),   T_LOOP_TEST(test_gen_next_until_end),
        T_LOOP_TEST(test_gen_ebusy_second_sender), T_LOOP_TEST(test_gen_eperm_edeadlk),
        T_LOOP_TEST(test_gen_io_between_yields),
        T_LOOP_TEST(test_gen_send_deadline),   T_LOOP_TEST(test_gen_fini),
        T_LOOP_TEST(test_gen_cancel_driver),       T_LOOP_TEST(test_gen_cancel_driver_after_end),
        T_LOOP_TEST(test_gen_loop_stop),           T_LOOP_TEST(test_gen_record_parser),
    };
    return T_RUN_TESTS(tests);
}
