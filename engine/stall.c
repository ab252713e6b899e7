/* The stall detector. A watchdog thread wakes four times per threshold and reads the loop's
 * progress counter; when it has not moved for the threshold while the loop was not waiting in
 * the kernel, the loop's thread is running something that does not yield (a computation, a
 * blocking system call). The watchdog then sends that thread a signal, whose handler runs on it,
 * in the middle of the stall, and so can name the running coroutine (its thread-local) and take
 * its backtrace, as Seastar's --blocked-reactor-notify-ms does. At most one report a second per
 * loop, and one per stall, however long it lasts.
 *
 * The handler makes only async-signal-safe calls (write), plus backtrace(), which glibc makes
 * safe enough once it has been called before (its first call loads libgcc's unwinder, with
 * malloc): corio__stall_start calls it once, on the loop's thread. */
#include "stall.h"

#include "loop.h"

#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The signal that asks the loop's thread for a report: a real-time one, which nothing else of
 * the process is likely to use, and which is queued rather than merged. */
#define STALL_SIGNAL (SIGRTMIN + 6)

/* The least time between two reports of one loop. */
#define REPORT_EVERY CORIO_SEC(1)

#define MAX_FRAMES 48

/* ---- the report, on the loop's thread, in the signal handler ----------------------------------*/

/* A line being built without snprintf, which is not async-signal-safe. */
struct line {
    char buf[256];
    size_t n;
};

static void put(struct line *b, const char *s)
{
    while (*s && b->n < sizeof(b->buf) - 1)
        b->buf[b->n++] = *s++;
}

static void put_u64(struct line *b, uint64_t v, unsigned base)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v && n < sizeof(tmp));
    if (base == 16)
        put(b, "0x");
    while (n > 0 && b->n < sizeof(b->buf) - 1)
        b->buf[b->n++] = tmp[--n];
}

static void flush(struct line *b)
{
    size_t off = 0;
    while (off < b->n) {
        ssize_t r = write(STDERR_FILENO, b->buf + off, b->n - off);
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    b->n = 0;
}

/* Names the coroutine @co: its number, name and spawn site. */
static void put_coro(struct line *b, const struct corio_coro *co)
{
    put(b, "coroutine ");
    put_u64(b, co->slot + 1, 10);
    if (co->name[0]) {
        put(b, " \"");
        put(b, co->name);
        put(b, "\"");
    }
    put(b, " (id ");
    put_u64(b, corio__coro_id(co), 16);
    put(b, ")");
    if (co->spawn_file) {
        put(b, ", spawned at ");
        put(b, co->spawn_file);
        put(b, ":");
        put_u64(b, (uint64_t)co->spawn_line, 10);
    }
}

static void report(struct corio__stall *s)
{
    struct line b = {.n = 0};
    int64_t ran = atomic_load_explicit(&s->ran_ns, memory_order_relaxed);
    put(&b, "corio: stall: loop ");
    put_u64(&b, (uint64_t)(uintptr_t)s->loop, 16);
    put(&b, ": an iteration has run for ");
    put_u64(&b, (uint64_t)(ran / 1000000), 10);
    put(&b, " ms (threshold ");
    put_u64(&b, s->threshold_ms, 10);
    put(&b, " ms) in ");
    struct corio_coro *co = corio__self();
    if (co)
        put_coro(&b, co);
    else
        put(&b, "the loop itself, outside any coroutine (a posted function, or the engine)");
    uint64_t missed = atomic_exchange_explicit(&s->suppressed, 0, memory_order_relaxed);
    if (missed) {
        put(&b, "; ");
        put_u64(&b, missed, 10);
        put(&b, " more not reported (at most one a second)");
    }
    put(&b, "; backtrace:\n");
    flush(&b);
    void *frames[MAX_FRAMES];
    int n = backtrace(frames, MAX_FRAMES);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
}

static void stall_handler(int sig, siginfo_t *si, void *uctx)
{
    (void)sig;
    (void)si;
    (void)uctx;
    int saved = errno;
    struct corio_loop *l = corio__tls_loop;
    struct corio__stall *s = l ? l->stall : NULL;
    /* A signal that arrives after the loop stopped running, or for a stall that ended, finds
     * nothing asked. */
    if (s && atomic_exchange_explicit(&s->asked, false, memory_order_acquire))
        report(s);
    errno = saved;
}

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

static void handler_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = stall_handler;
    /* On the alternate stack where the thread has one (segv.c's): a coroutine's stack may be
     * short. Restarted: the system call a stalled coroutine is blocked in goes on. */
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(STALL_SIGNAL, &sa, NULL);
}

/* ---- the watchdog -----------------------------------------------------------------------------*/

/* Sleeps @ns unless told to stop. Returns true to go on. */
static bool nap(struct corio__stall *s, int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + ns;
    ts.tv_sec = until / 1000000000;
    ts.tv_nsec = until % 1000000000;
    pthread_mutex_lock(&s->lock);
    while (!s->stop && pthread_cond_timedwait(&s->cond, &s->lock, &ts) != ETIMEDOUT)
        ;
    bool go_on = !s->stop;
    pthread_mutex_unlock(&s->lock);
    return go_on;
}

static void *watchdog_main(void *arg)
{
    struct corio__stall *s = arg;
    int64_t threshold = CORIO_MS(s->threshold_ms);
    int64_t period = threshold / 4 > CORIO_MS(1) ? threshold / 4 : CORIO_MS(1);
    uint64_t seen = atomic_load_explicit(&s->seq, memory_order_relaxed);
    uint64_t reported_seq = seen - 1; /* the stall last reported, by its counter value */
    int64_t since = corio_now(), last_report = since - REPORT_EVERY;
    while (nap(s, period)) {
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
        int64_t now = corio_now();
        if (seq != seen || atomic_load_explicit(&s->idle, memory_order_relaxed)) {
            seen = seq;
            since = now;
            continue;
        }
        if (now - since < threshold || seq == reported_seq)
            continue;
        reported_seq = seq; /* once per stall, however long it lasts */
        if (now - last_report < REPORT_EVERY) {
            atomic_fetch_add_explicit(&s->suppressed, 1, memory_order_relaxed);
            continue;
        }
        last_report = now;
        atomic_store_explicit(&s->ran_ns, now - since + period, memory_order_relaxed);
        /* Release: the handler that takes the request sees ran_ns. */
        atomic_store_explicit(&s->asked, true, memory_order_release);
        pthread_kill(s->loop_thread, STALL_SIGNAL);
    }
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------------------------*/

int corio__stall_start(struct corio_loop *l, struct corio__stall **out, unsigned threshold_ms)
{
    struct corio__stall *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->threshold_ms = threshold_ms;
    s->loop = l;
    s->loop_thread = pthread_self();
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_once(&handler_once, handler_install);
    void *prime[1];
    backtrace(prime, 1); /* loads the unwinder now, not in the handler */
    /* Published before the watchdog can signal: the handler finds it through l->stall. */
    *out = s;
    int err = pthread_create(&s->watchdog, NULL, watchdog_main, s);
    if (err) {
        *out = NULL;
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return -err;
    }
    return 0;
}

void corio__stall_stop(struct corio__stall *s)
{
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->watchdog, NULL);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
