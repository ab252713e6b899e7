/* Metrics: every counter and gauge of corio_loop_metrics moved by what causes it and read from
 * another thread while the loop runs (and sleeps), the sampled latency histograms, and the
 * Prometheus text, read back by a small parser of the exposition format. */
#include "helpers.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The metrics of @l read from a thread that is not @l's, as a monitoring thread would. */
struct reader {
    struct corio_loop *loop;
    struct corio_metrics m;
    int err;
};

static void *read_on_thread(void *arg)
{
    struct reader *r = arg;
    r->err = corio_loop_metrics(r->loop, &r->m);
    return NULL;
}

static struct corio_metrics metrics_from_thread(struct corio_loop *l)
{
    struct reader r = {.loop = l};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_on_thread, &r), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.err, 0);
    return r.m;
}

/* A loop that other threads wake while it sleeps in the kernel. Under valgrind it runs on epoll:
 * there other threads were seen not to run while the loop blocked in io_uring_enter (as
 * test_remote.c found), and the protocol is the same on both backends. */
static struct corio_loop *wakeable_loop(void)
{
    struct corio_loop_opts o = {.backend = t_on_valgrind() ? CORIO_BACKEND_EPOLL : 0};
    return t_mkloop(&o);
}

static int nops(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++)
        if (!T_EXPECT_EQ(corio_nop(), 0))
            return -1;
    return 0;
}

/* NOPs, then a sleep: a wait in the kernel on either backend (epoll completes NOPs at once). */
static int nops_then_sleep(void *arg)
{
    int r = nops(arg);
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(1)), 0);
    return r;
}

/* The op counters move by what one coroutine's NOPs and sleep cause, and another thread reads
 * the same values as the loop's own corio_loop_stats once the loop has stopped. */
static void test_metrics_op_counters(void **state)
{
    struct corio_loop *l = *state;
    assert_int_equal(t_run_checked(state, nops_then_sleep, (void *)(intptr_t)200), 0);
    struct corio_metrics m = metrics_from_thread(l);
    const struct corio_stats *s = corio_loop_stats(l);
    assert_true(m.stats.sqes >= 200);
    assert_true(m.stats.cqes >= 200);
    assert_true(m.stats.enters >= 1);
    assert_true(m.stats.switches >= 400);
    assert_true(m.stats.iterations >= 200);
    assert_int_equal(m.stats.spawns, 1);
    assert_memory_equal(&m.stats, s, sizeof(*s));
    assert_int_equal(m.coroutines, 0);
    assert_int_equal(m.inflight, 0);
}

/* While the loop runs: a reader on another thread sees the counters move (the loop publishes
 * as it goes), and while it sleeps in the kernel the reader's request wakes it for fresh values. */
struct live {
    struct corio_loop *loop;
    _Atomic int phase; /* 0: NOPs until the reader saw them move; 1: sleeping; 2: done */
    uint64_t seen[2];
    int64_t sleep_taken_at, asked_at;
};

static void *watch(void *arg)
{
    struct live *v = arg;
    struct corio_metrics m;
    int64_t end = corio_now() + CORIO_SEC(10);
    T_EXPECT_EQ(corio_loop_metrics(v->loop, &m), 0);
    v->seen[0] = m.stats.sqes;
    do {
        T_EXPECT_EQ(corio_loop_metrics(v->loop, &m), 0);
        v->seen[1] = m.stats.sqes;
    } while (v->seen[1] < v->seen[0] + 1000 && corio_now() < end);
    atomic_store(&v->phase, 1);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
    nanosleep(&ts, NULL); /* the loop is asleep in corio_sleep by now */
    v->asked_at = corio_now();
    /* One request is answered within microseconds; a machine too loaded to schedule the loop's
     * thread within the 10 ms a reader waits gets the old values, and asks again. */
    do {
        T_EXPECT_EQ(corio_loop_metrics(v->loop, &m), 0);
        v->sleep_taken_at = m.taken_at;
    } while (v->sleep_taken_at < v->asked_at && corio_now() < end);
    atomic_store(&v->phase, 2);
    return NULL;
}

static int live_body(void *arg)
{
    struct live *v = arg;
    pthread_t th;
    if (!T_EXPECT_EQ(pthread_create(&th, NULL, watch, v), 0))
        return -1;
    int64_t end = corio_now() + CORIO_SEC(10);
    while (atomic_load(&v->phase) == 0 && corio_now() < end)
        T_EXPECT_EQ(corio_nop(), 0);
    while (atomic_load(&v->phase) == 1 && corio_now() < end)
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(200)), 0);
    pthread_join(th, NULL);
    return 0;
}

static void test_metrics_read_while_running(void **state)
{
    (void)state;
    if (t_on_valgrind()) {
        /* valgrind runs one thread at a time and gave the reader no turn in which the loop's
         * snapshot had moved for 10 s once (a CI run; other runs passed): what this test times
         * is the two threads running side by side, which the gcc, ASan and TSan runs check. */
        print_message("skipped: under valgrind the reader and the loop do not run side by side\n");
        skip();
    }
    struct live v = {.loop = wakeable_loop()};
    assert_int_equal(t_run1(v.loop, live_body, &v), 0);
    t_expect_ok();
    print_message("  sqes seen moving %llu -> %llu; asleep: values taken %lld us after asking\n",
                  (unsigned long long)v.seen[0], (unsigned long long)v.seen[1],
                  (long long)(v.sleep_taken_at - v.asked_at) / 1000);
    assert_true(v.seen[1] >= v.seen[0] + 1000);
    /* Taken by the loop after the reader asked, though the loop was asleep in the kernel. */
    assert_true(v.sleep_taken_at >= v.asked_at);
    corio_loop_free(v.loop);
}

/* Gauges: coroutines alive, stacks in use and cached, timers armed (waits with a deadline),
 * completions in flight (a sleep is one: a kernel timeout). */
struct gauges {
    struct corio_metrics during, after;
    struct corio_event go;
    int p[2];
};

static int sleeper(void *arg)
{
    struct gauges *g = arg;
    T_EXPECT_EQ(corio_event_wait(&g->go, T_BOUND), 0);
    return corio_sleep(corio_now() + CORIO_MS(5));
}

static int reader_of_pipe(void *arg)
{
    struct gauges *g = arg;
    char c;
    return (int)corio_read(g->p[0], &c, 1, -1, T_BOUND);
}

static int gauges_body(void *arg)
{
    struct gauges *g = arg;
    corio_id ids[4];
    for (int i = 0; i < 3; i++)
        T_EXPECT_EQ(corio_spawn(&ids[i], NULL, sleeper, g), 0);
    T_EXPECT_EQ(corio_spawn(&ids[3], NULL, reader_of_pipe, g), 0);
    T_EXPECT_EQ(corio_yield(), 0); /* they all wait now */
    T_EXPECT_EQ(corio_loop_metrics(corio_loop_current(), &g->during), 0);
    corio_event_set(&g->go);
    for (int i = 0; i < 3; i++)
        T_EXPECT_EQ(corio_join(ids[i], NULL, T_BOUND), 0);
    T_EXPECT_EQ(write(g->p[1], "x", 1), 1);
    T_EXPECT_EQ(corio_join(ids[3], NULL, T_BOUND), 0);
    T_EXPECT_EQ(corio_loop_metrics(corio_loop_current(), &g->after), 0);
    return 0;
}

static void test_metrics_gauges(void **state)
{
    struct gauges g;
    memset(&g, 0, sizeof(g));
    corio_event_init(&g.go);
    assert_int_equal(t_pipe(g.p, 0), 0);
    assert_int_equal(t_run_checked(state, gauges_body, &g), 0);
    close(g.p[0]);
    close(g.p[1]);
    print_message("  during: coroutines=%llu stacks_in_use=%llu timers=%llu inflight=%llu; "
                  "after: coroutines=%llu stacks_cached=%llu\n",
                  (unsigned long long)g.during.coroutines,
                  (unsigned long long)g.during.stacks_in_use, (unsigned long long)g.during.timers,
                  (unsigned long long)g.during.inflight, (unsigned long long)g.after.coroutines,
                  (unsigned long long)g.after.stacks_cached);
    assert_int_equal(g.during.coroutines, 5);
    assert_int_equal(g.during.stacks_in_use, 5);
    assert_int_equal(g.during.timers, 3);
    assert_true(g.during.inflight >= 1);
    assert_int_equal(g.after.coroutines, 1);
    assert_int_equal(g.after.stacks_in_use, 1);
    assert_true(g.after.stacks_cached >= 4);
    assert_int_equal(g.after.timers, 0);
}

/* CQ overflow: 64 coroutines' NOPs completing into a CQ of 8 entries. */
static int burst_body(void *arg)
{
    (void)arg;
    for (int i = 0; i < 64; i++)
        T_EXPECT_EQ(corio_spawn(NULL, NULL, nops, (void *)(intptr_t)4), 0);
    return 0;
}

static void test_metrics_cq_overflows(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.sq_entries = 8, .cq_entries = 8};
    struct corio_loop *l = t_mkloop(&o);
    t_need_uring(l, true, "a CQ that overflows");
    assert_int_equal(t_run1(l, burst_body, NULL), 0);
    t_expect_ok();
    struct corio_metrics m = metrics_from_thread(l);
    print_message("  cq_overflows=%llu cqes=%llu\n", (unsigned long long)m.stats.cq_overflows,
                  (unsigned long long)m.stats.cqes);
    assert_true(m.stats.cq_overflows > 0);
    corio_loop_free(l);
}

/* A receiver whose coroutine holds every buffer (ENOBUFS: the kernel has nowhere to put the
 * data) and one that takes nothing while 64 buffers' worth arrives (it pauses at 32). */
struct rx {
    struct corio_bufring *br;
    int sv[2];
    bool hold; /* true: hold both buffers; false: take nothing for a while */
    size_t got;
};

static int rx_body(void *arg)
{
    struct rx *c = arg;
    struct corio_receiver rx;
    struct corio_buf b[2];
    char data[1024];
    memset(data, 'm', sizeof(data));
    T_EXPECT_EQ(corio_receiver_init(&rx, c->sv[0], c->br), 0);
    T_EXPECT_EQ(write(c->sv[1], data, sizeof(data)), (ssize_t)sizeof(data));
    shutdown(c->sv[1], SHUT_WR);
    ssize_t n;
    if (c->hold) {
        for (int i = 0; i < 2; i++) {
            n = corio_receiver_next(&rx, &b[i], T_BOUND);
            T_EXPECT(n > 0);
            c->got += n > 0 ? (size_t)n : 0;
        }
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(20)), 0);
        corio_buf_release(&b[0]);
        corio_buf_release(&b[1]);
    } else {
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(50)), 0);
    }
    while ((n = corio_receiver_next(&rx, &b[0], T_BOUND)) > 0) {
        c->got += (size_t)n;
        corio_buf_release(&b[0]);
    }
    T_EXPECT_EQ(n, 0);
    corio_receiver_fini(&rx);
    return 0;
}

static struct corio_metrics run_rx(bool hold, unsigned count)
{
    struct corio_loop *l = t_mkloop(NULL);
    t_need_or_free(l, CORIO_FEAT_RECV_MULTISHOT);
    struct rx c = {.hold = hold};
    c.br = t_bufring(l, count, 16);
    assert_int_equal(t_tcp_pair(c.sv), 0);
    assert_int_equal(t_run1(l, rx_body, &c), 0);
    close(c.sv[0]);
    close(c.sv[1]);
    corio_bufring_free(c.br);
    t_expect_ok();
    assert_int_equal(c.got, 1024);
    struct corio_metrics m = metrics_from_thread(l);
    corio_loop_free(l);
    return m;
}

static void test_metrics_enobufs(void **state)
{
    (void)state;
    struct corio_metrics m = run_rx(true, 2);
    print_message("  enobufs=%llu\n", (unsigned long long)m.stats.enobufs);
    assert_true(m.stats.enobufs > 0);
}

static void test_metrics_rx_pauses(void **state)
{
    (void)state;
    struct corio_metrics m = run_rx(false, 128);
    print_message("  rx_pauses=%llu\n", (unsigned long long)m.stats.rx_pauses);
    assert_true(m.stats.rx_pauses > 0);
}

/* Messages from another thread, one of them waking the loop from its sleep in the kernel. */
static _Atomic int posted_ran;

static void posted(void *arg)
{
    (void)arg;
    atomic_fetch_add(&posted_ran, 1);
}

static void *poster(void *arg)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 30 * 1000 * 1000};
    nanosleep(&ts, NULL); /* the loop sleeps in the kernel by now */
    T_EXPECT_EQ(corio_loop_post(arg, posted, NULL), 0);
    return NULL;
}

static int remote_body(void *arg)
{
    pthread_t th;
    if (!T_EXPECT_EQ(pthread_create(&th, NULL, poster, arg), 0))
        return -1;
    int64_t end = corio_now() + CORIO_SEC(10);
    while (atomic_load(&posted_ran) == 0 && corio_now() < end)
        T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(100)), 0);
    pthread_join(th, NULL);
    return 0;
}

static void test_metrics_remote(void **state)
{
    (void)state;
    struct corio_loop *l = wakeable_loop();
    assert_int_equal(t_run1(l, remote_body, l), 0);
    t_expect_ok();
    struct corio_metrics m = metrics_from_thread(l);
    print_message("  remote_msgs=%llu remote_wakes=%llu\n", (unsigned long long)m.stats.remote_msgs,
                  (unsigned long long)m.stats.remote_wakes);
    assert_int_equal(atomic_load(&posted_ran), 1);
    assert_true(m.stats.remote_msgs >= 1);
    assert_true(m.stats.remote_wakes >= 1);
    corio_loop_free(l);
}

/* ---- latency histograms ---------------------------------------------------------------------- */

/* Skips the calling test, saying why, in a build without histograms (CORIO_HISTOGRAMS=OFF). */
static void need_histograms(struct corio_loop *l)
{
    struct corio_latency h;
    if (corio_loop_latency(l, 0, &h) == -EOPNOTSUPP) {
        print_message("SKIP: built without latency histograms (CORIO_HISTOGRAMS=OFF)\n");
        corio_loop_free(l);
        skip();
    }
}

static unsigned op_index(const char *name)
{
    const char *n;
    for (unsigned i = 0; (n = corio_op_name(i)) != NULL; i++)
        if (strcmp(n, name) == 0)
            return i;
    fail_msg("no op kind %s", name);
    return 0;
}

static struct corio_latency latency(struct corio_loop *l, const char *op)
{
    struct corio_latency h;
    assert_int_equal(corio_loop_latency(l, op_index(op), &h), 0);
    uint64_t sum = 0;
    for (unsigned i = 0; i < CORIO_LATENCY_BUCKETS; i++)
        sum += h.buckets[i];
    assert_int_equal(sum, h.samples);
    return h;
}

/* One op in latency_sample is timed: every one, one in 64 (the default), or none. */
static void nop_samples(unsigned every, uint64_t expect)
{
    struct corio_loop_opts o = {.latency_sample = every};
    struct corio_loop *l = t_mkloop(&o);
    need_histograms(l);
    assert_int_equal(t_run1(l, nops, (void *)(intptr_t)640), 0);
    t_expect_ok();
    struct corio_latency h = latency(l, "nop");
    print_message("  latency_sample=%u: %llu of 640 NOPs timed, p50 < %lld ns\n", every,
                  (unsigned long long)h.samples, (long long)corio_latency_quantile(&h, 0.5));
    assert_int_equal(h.samples, expect);
    if (expect)
        assert_true(h.sum_ns > 0);
    corio_loop_free(l);
}

static void test_metrics_latency_sampling(void **state)
{
    (void)state;
    nop_samples(1, 640);
    nop_samples(0, 640 / 64);
    nop_samples(CORIO_LATENCY_OFF, 0);
}

/* A read that waits 30 ms for its data lands in the bucket of 30 ms; a timed op that is
 * cancelled (its cancel must carry the timed op's tag) and one that times out end as they
 * should. */
struct slow {
    int p[2];
    ssize_t cancelled, timed_out;
};

static int slow_writer(void *arg)
{
    struct slow *s = arg;
    T_EXPECT_EQ(corio_sleep(corio_now() + CORIO_MS(30)), 0);
    return (int)corio_write(s->p[1], "y", 1, -1, T_BOUND);
}

static int blocked_reader(void *arg)
{
    struct slow *s = arg;
    char c;
    s->cancelled = corio_read(s->p[0], &c, 1, -1, T_BOUND);
    return 0;
}

static int slow_body(void *arg)
{
    struct slow *s = arg;
    char c;
    corio_id w, r;
    T_EXPECT_EQ(corio_spawn(&w, NULL, slow_writer, s), 0);
    T_EXPECT_EQ(corio_read(s->p[0], &c, 1, -1, T_BOUND), 1);
    T_EXPECT_EQ(corio_join(w, NULL, T_BOUND), 0);
    s->timed_out = corio_read(s->p[0], &c, 1, -1, corio_now() + CORIO_MS(5));
    T_EXPECT_EQ(corio_spawn(&r, NULL, blocked_reader, s), 0);
    T_EXPECT_EQ(corio_yield(), 0);
    T_EXPECT_EQ(corio_cancel(r), 0);
    T_EXPECT_EQ(corio_join(r, NULL, T_BOUND), 0);
    return 0;
}

static void test_metrics_latency_buckets(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.latency_sample = 1};
    struct corio_loop *l = t_mkloop(&o);
    need_histograms(l);
    struct slow s = {0};
    assert_int_equal(t_pipe(s.p, 0), 0);
    assert_int_equal(t_run1(l, slow_body, &s), 0);
    close(s.p[0]);
    close(s.p[1]);
    t_expect_ok();
    assert_int_equal(s.timed_out, -ETIMEDOUT);
    assert_int_equal(s.cancelled, -ECANCELED);
    struct corio_latency h = latency(l, "read");
    int64_t p0 = corio_latency_quantile(&h, 0), p100 = corio_latency_quantile(&h, 1);
    print_message("  read: %llu timed, fastest < %lld us, slowest < %lld us\n",
                  (unsigned long long)h.samples, (long long)p0 / 1000, (long long)p100 / 1000);
    assert_int_equal(h.samples, 3);
    /* The 30 ms read: the slowest bucket's bound is above 30 ms and at most twice the wait. */
    assert_true(p100 > CORIO_MS(30));
    assert_true(p100 <= CORIO_MS(30) * 2 * (int64_t)t_slowdown() * 4);
    assert_int_equal(corio_latency_bound(0), 1024);
    assert_int_equal(corio_latency_bound(CORIO_LATENCY_BUCKETS - 1), INT64_MAX);
    corio_loop_free(l);
}

/* ---- Prometheus text ------------------------------------------------------------------------- */

/* A small parser of the text exposition format (0.0.4): comment lines "# HELP name text" and
 * "# TYPE name type", sample lines "name{label="value",...} number". It checks what a scraper
 * relies on: valid names, a TYPE before a family's samples, each family's samples together,
 * numbers that parse, and histograms whose buckets grow up to le="+Inf", which equals _count. */
struct sample {
    char name[96];
    char labels[256];
    double value;
};

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

/* Parses one sample line. Returns true if it is well formed. */
static bool parse_sample(const char *line, struct sample *s)
{
    size_t n = strcspn(line, "{ ");
    if (!name_ok(line, n) || n >= sizeof(s->name))
        return false;
    memcpy(s->name, line, n);
    s->name[n] = '\0';
    const char *p = line + n;
    s->labels[0] = '\0';
    if (*p == '{') {
        const char *end = strchr(p, '}');
        if (!end || (size_t)(end - p) >= sizeof(s->labels))
            return false;
        memcpy(s->labels, p + 1, (size_t)(end - p - 1));
        s->labels[end - p - 1] = '\0';
        /* label="value" pairs, comma-separated */
        for (const char *q = s->labels; *q;) {
            size_t k = strcspn(q, "=");
            if (!name_ok(q, k) || q[k] != '=' || q[k + 1] != '"')
                return false;
            const char *close = strchr(q + k + 2, '"');
            if (!close)
                return false;
            q = close + 1;
            if (*q == ',')
                q++;
            else if (*q)
                return false;
        }
        p = end + 1;
    }
    if (*p != ' ')
        return false;
    char *endv;
    s->value = strtod(p + 1, &endv);
    return endv != p + 1 && *endv == '\0';
}

/* The family a sample belongs to: its name less a histogram's suffix. */
static void family_of(const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s", name);
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(out), k = strlen(sfx[i]);
        if (n > k && strcmp(out + n - k, sfx[i]) == 0 && strstr(out, "latency")) {
            out[n - k] = '\0';
            return;
        }
    }
}

struct parsed {
    unsigned samples, families, histograms;
    double sqes0; /* corio_sqes_total{loop="0"} */
};

/* The labels of a bucket line without its le: the histogram it belongs to. */
static void series_of(const char *labels, char *out, size_t len)
{
    snprintf(out, len, "%s", labels);
    char *le = strstr(out, ",le=");
    if (le)
        *le = '\0';
}

static struct parsed parse_text(char *text)
{
    struct parsed r = {0};
    char typed[64][96], current[96] = "", series[256] = "";
    unsigned ntyped = 0;
    double last_cum = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') {
            char kw[8], name[96], rest[160];
            assert_int_equal(sscanf(line, "# %7s %95s %159[^\n]", kw, name, rest), 3);
            assert_true(strcmp(kw, "HELP") == 0 || strcmp(kw, "TYPE") == 0);
            if (strcmp(kw, "TYPE") == 0) {
                assert_true(strcmp(rest, "counter") == 0 || strcmp(rest, "gauge") == 0 ||
                            strcmp(rest, "histogram") == 0);
                for (unsigned i = 0; i < ntyped; i++)
                    assert_string_not_equal(typed[i], name); /* one TYPE per family */
                assert_true(ntyped < 64);
                snprintf(typed[ntyped++], sizeof(typed[0]), "%s", name);
                snprintf(current, sizeof(current), "%s", name);
                r.families++;
            }
            continue;
        }
        struct sample s;
        if (!parse_sample(line, &s))
            fail_msg("not a sample line: '%s'", line);
        char fam[96];
        family_of(s.name, fam, sizeof(fam));
        /* Its family's TYPE came last: the family's samples are together. */
        if (strcmp(fam, current) != 0)
            fail_msg("sample '%s' outside its family (current: %s)", line, current);
        r.samples++;
        if (strcmp(s.name, "corio_sqes_total") == 0 && strcmp(s.labels, "loop=\"0\"") == 0)
            r.sqes0 = s.value;
        if (strstr(s.name, "_bucket")) {
            char ser[256];
            series_of(s.labels, ser, sizeof(ser));
            if (strcmp(ser, series) != 0) {
                snprintf(series, sizeof(series), "%s", ser);
                last_cum = 0;
                r.histograms++;
            }
            assert_true(s.value >= last_cum); /* cumulative */
            last_cum = s.value;
        } else if (strstr(s.name, "latency_seconds_count")) {
            assert_true(strstr(line, series) != NULL);
            assert_true(s.value == last_cum); /* _count is the +Inf bucket */
        }
    }
    return r;
}

static void test_metrics_prometheus(void **state)
{
    (void)state;
    struct corio_loop_opts o = {.latency_sample = 1};
    struct corio_loop *loops[2] = {t_mkloop(&o), t_mkloop(NULL)};
    struct corio_latency h;
    bool hist = corio_loop_latency(loops[0], 0, &h) != -EOPNOTSUPP; /* CORIO_HISTOGRAMS=OFF */
    assert_int_equal(t_run1(loops[0], nops, (void *)(intptr_t)50), 0);
    t_expect_ok();
    char small[16];
    ssize_t need = corio_metrics_prometheus(small, sizeof(small), loops, 2);
    assert_true(need > (ssize_t)sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1); /* cut, and terminated */
    char *text = malloc((size_t)need + 1);
    assert_non_null(text);
    assert_int_equal(corio_metrics_prometheus(text, (size_t)need + 1, loops, 2), need);
    assert_int_equal(strlen(text), (size_t)need);
    if (hist)
        assert_non_null(strstr(text, "corio_op_latency_seconds_count{loop=\"0\",op=\"nop\"} 50\n"));
    assert_non_null(strstr(text, "corio_coroutines{loop=\"1\"} 0\n"));
    struct parsed p = parse_text(text);
    print_message("  %zd bytes: %u families, %u samples, %u histograms\n", need, p.families,
                  p.samples, p.histograms);
    assert_true(p.families >= (hist ? 19u : 18u));
    assert_true(p.histograms >= (hist ? 1u : 0u));
    assert_true(p.sqes0 >= 50 && p.sqes0 == (double)corio_loop_stats(loops[0])->sqes);
    free(text);
    corio_loop_free(loops[0]);
    corio_loop_free(loops[1]);
}

/* Returns true (after saying why) in a build without metrics (CORIO_METRICS=OFF). */
static bool metrics_compiled_out(void)
{
    struct corio_loop *l;
    struct corio_metrics m;
    if (corio_loop_new(&l, NULL) != 0)
        return false; /* T_RUN_TESTS says why */
    bool out = corio_loop_metrics(l, &m) == -EOPNOTSUPP;
    corio_loop_free(l);
    if (out)
        printf("SKIP: built without metrics (CORIO_METRICS=OFF)\n");
    return out;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_LOOP_TEST(test_metrics_op_counters),
        cmocka_unit_test(test_metrics_read_while_running),
        T_LOOP_TEST(test_metrics_gauges),
        cmocka_unit_test(test_metrics_cq_overflows),
        cmocka_unit_test(test_metrics_enobufs),
        cmocka_unit_test(test_metrics_rx_pauses),
        cmocka_unit_test(test_metrics_remote),
        cmocka_unit_test(test_metrics_latency_sampling),
        cmocka_unit_test(test_metrics_latency_buckets),
        cmocka_unit_test(test_metrics_prometheus),
    };
    if (metrics_compiled_out())
        return T_EXIT_SKIP;
    return T_RUN_TESTS(tests);
}
