#include "helpers.h"

#include "loop.h" /* corio__loop_new: the refuse hook */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/seccomp.h>
#include <linux/filter.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

bool t_uring_unavailable(void)
{
    struct corio_loop *l;
    int err = corio_loop_new(&l, NULL);
    if (err == -ENOSYS || err == -EPERM) {
        printf("SKIP: io_uring unavailable: %s\n", corio_strerror_setup(err));
        return true;
    }
    if (err) {
        fprintf(stderr, "corio_loop_new failed: %s\n", strerror(-err));
        abort();
    }
    corio_loop_free(l);
    return false;
}

int t_loop_setup(void **state)
{
    struct corio_loop *l;
    int err = corio_loop_new(&l, NULL);
    if (err)
        return -1;
    *state = l;
    return 0;
}

int t_loop_teardown(void **state)
{
    struct corio_loop *l = *state;
    corio_loop_free(l);
    return 0;
}

struct run1 {
    corio_fn *fn;
    void *arg;
    int result;
    int64_t watchdog_ms; /* 0: none */
};

static int run1_body(void *p)
{
    struct run1 *r = p;
    corio_id wd = r->watchdog_ms ? t_watchdog_spawn(r->watchdog_ms) : 0;
    r->result = r->fn(r->arg);
    t_watchdog_end(wd);
    return r->result;
}

int t_run1_watched(struct corio_loop *loop, corio_fn *fn, void *arg, int64_t watchdog_ms)
{
    struct run1 r = {fn, arg, -12345, watchdog_ms};
    assert_int_equal(corio_spawn(NULL, loop, run1_body, &r), 0);
    assert_int_equal(corio_loop_run(loop), 0);
    return r.result;
}

int t_run1(struct corio_loop *loop, corio_fn *fn, void *arg)
{
    return t_run1_watched(loop, fn, arg, 0);
}

int t_run2(struct corio_loop *loop, corio_fn *fa, corio_fn *fb, void *arg)
{
    struct run1 a = {fa, arg, -12345, 0}, b = {fb, arg, -12345, 0};
    assert_int_equal(corio_spawn(NULL, loop, run1_body, &a), 0);
    assert_int_equal(corio_spawn(NULL, loop, run1_body, &b), 0);
    assert_int_equal(corio_loop_run(loop), 0);
    return a.result ? a.result : b.result;
}

int t_tcp_pair(int sv[2])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &len)) {
        close(l);
        return -errno;
    }
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a))) {
        int err = -errno;
        close(l);
        if (c >= 0)
            close(c);
        return err;
    }
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    int err = s < 0 ? -errno : 0;
    close(l);
    if (err) {
        close(c);
        return err;
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sv[0] = s;
    sv[1] = c;
    return 0;
}

int t_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

int t_tmpfile(void)
{
    const char *dir = getenv("TMPDIR");
    int fd = open(dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        char path[] = "/tmp/corio-test-XXXXXX";
        fd = mkstemp(path);
        if (fd >= 0)
            unlink(path);
    }
    return fd;
}

static inline uint8_t pattern(uint64_t seed, uint64_t pos)
{
    uint64_t x = (pos >> 3) * 0x9e3779b97f4a7c15ull + seed;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 32;
    return (uint8_t)(x >> ((pos & 7) * 8));
}

void t_fill(void *buf, size_t len, uint64_t seed, uint64_t pos0)
{
    uint8_t *b = buf;
    for (size_t i = 0; i < len; i++)
        b[i] = pattern(seed, pos0 + i);
}

long t_check(const void *buf, size_t len, uint64_t seed, uint64_t pos0)
{
    const uint8_t *b = buf;
    for (size_t i = 0; i < len; i++)
        if (b[i] != pattern(seed, pos0 + i))
            return (long)i;
    return -1;
}

/* ---- expectations inside coroutines, pipes, temp dirs ---------------------------------------- */

#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define T_HAVE_VALGRIND 1
#endif
#endif

static pthread_mutex_t expect_mu = PTHREAD_MUTEX_INITIALIZER;
static char expect_msg[512];
static unsigned expect_failures;

static void (*expect_ctx_fn)(void *arg);
static void *expect_ctx_arg;

/* Counts a failure; returns true for the first one since the last t_expect_ok(), after calling the
 * context function. Called with expect_mu held. */
static bool first_failure(void)
{
    if (expect_failures++ != 0)
        return false;
    if (expect_ctx_fn)
        expect_ctx_fn(expect_ctx_arg);
    return true;
}

bool t_expect_(bool ok, const char *expr, const char *file, int line)
{
    if (ok)
        return true;
    pthread_mutex_lock(&expect_mu);
    if (first_failure())
        snprintf(expect_msg, sizeof(expect_msg), "%s:%d: expectation failed: %s", file, line, expr);
    pthread_mutex_unlock(&expect_mu);
    return false;
}

bool t_expect_eq_(long long a, long long b, const char *expr, const char *file, int line)
{
    if (a == b)
        return true;
    pthread_mutex_lock(&expect_mu);
    if (first_failure())
        snprintf(expect_msg, sizeof(expect_msg), "%s:%d: expectation failed: %s (%lld != %lld)",
                 file, line, expr, a, b);
    pthread_mutex_unlock(&expect_mu);
    return false;
}

void t_expect_context(void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&expect_mu);
    expect_ctx_fn = fn;
    expect_ctx_arg = arg;
    pthread_mutex_unlock(&expect_mu);
}

bool t_expect_elapsed_(int64_t t0, int64_t ms, const char *file, int line)
{
    int64_t dt = corio_now() - t0;
    char expr[96];
    snprintf(expr, sizeof(expr), "%lld ns elapsed >= %lld ms - T_EARLY_NS", (long long)dt,
             (long long)ms);
    bool ok = t_expect_(dt >= CORIO_MS(ms) - T_EARLY_NS, expr, file, line);
    snprintf(expr, sizeof(expr), "%lld ns elapsed <= %lld ms + T_LATE_NS", (long long)dt,
             (long long)ms);
    return t_expect_(dt <= CORIO_MS(ms) + T_LATE_NS, expr, file, line) && ok;
}

unsigned t_expect_take(char *msg, size_t len)
{
    pthread_mutex_lock(&expect_mu);
    unsigned n = expect_failures;
    if (len)
        snprintf(msg, len, "%s", expect_msg);
    expect_failures = 0;
    expect_msg[0] = '\0';
    pthread_mutex_unlock(&expect_mu);
    return n;
}

void t_expect_ok(void)
{
    char msg[sizeof(expect_msg)];
    unsigned n = t_expect_take(msg, sizeof(msg));
    if (n)
        fail_msg("%s (%u failed expectation(s) in all)", msg, n);
}

int t_pipe(int fds[2], int flags)
{
    return pipe2(fds, O_CLOEXEC | flags) == 0 ? 0 : -errno;
}

int t_readable(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -errno;
}

bool t_on_valgrind(void)
{
#ifdef T_HAVE_VALGRIND
    return RUNNING_ON_VALGRIND != 0;
#else
    return false;
#endif
}

int t_mkdtemp(char *buf, size_t len)
{
    const char *dir = getenv("TMPDIR");
    int n = snprintf(buf, len, "%s/corio-test-XXXXXX", dir ? dir : "/tmp");
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    return mkdtemp(buf) ? 0 : -errno;
}

void t_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
}

double t_ms_since(int64_t t0)
{
    return (double)(corio_now() - t0) / 1e6;
}

int t_run_checked(void **state, corio_fn *fn, void *arg)
{
    int r = t_run1(*state, fn, arg);
    t_expect_ok();
    return r;
}

unsigned t_slowdown(void)
{
    return t_on_valgrind() ? 10 : 1;
}

static int guard_fds;

static void guard_fired(int sig)
{
    (void)sig;
    static const char msg[] = "watchdog: a test hung; aborting\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)r;
    _exit(70);
}

void t_alarm(unsigned seconds)
{
    signal(SIGALRM, guard_fired);
    alarm(seconds * t_slowdown());
}

int t_guard_setup(void **state)
{
    (void)state;
    t_alarm(30);
    guard_fds = t_count_fds();
    return 0;
}

/* Lists this process's fds and what they are, to name a leaked one. */
static void print_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char link[300], target[256];
        if (e->d_name[0] == '.')
            continue;
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        target[n < 0 ? 0 : n] = '\0';
        print_error("  fd %s -> %s\n", e->d_name, target);
    }
    closedir(d);
}

/* 0 if the fd count is back to @before; else says so, lists the fds and returns -1. */
static int fds_back_to(int before)
{
    int now = t_count_fds();
    if (now == before)
        return 0;
    print_error("fd leak: %d fds open before the test, %d after it:\n", before, now);
    print_fds();
    return -1;
}

int t_guard_teardown(void **state)
{
    (void)state;
    alarm(0);
    return fds_back_to(guard_fds);
}

static int loop_fds;

int t_loop_fds_setup(void **state)
{
    loop_fds = t_count_fds();
    return t_loop_setup(state);
}

int t_loop_fds_teardown(void **state)
{
    int r = t_loop_teardown(state);
    return fds_back_to(loop_fds) ? -1 : r;
}

void t_need_uring(struct corio_loop *loop, bool own, const char *what)
{
    if (corio_loop_backend(loop) == CORIO_BACKEND_IO_URING)
        return;
    print_message("SKIP: %s is io_uring's; this loop runs on %s (%s)\n", what,
                  corio_backend_name(corio_loop_backend(loop)), corio_loop_backend_reason(loop));
    if (own)
        corio_loop_free(loop);
    skip();
}

int t_refuse_uring(int err)
{
    struct sock_filter filt[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filt) / sizeof(filt[0]), .filter = filt};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return -errno;
    return 0;
}

void t_fork_report(void (*child)(int err, int out), int err, char *buf, size_t len)
{
    int p[2];
    assert_int_equal(t_pipe(p, 0), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child(err, p[1]);
        _exit(4); /* a child that returns instead of reporting */
    }
    close(p[1]);
    size_t got = 0;
    ssize_t n;
    while (got < len - 1 && (n = read(p[0], buf + got, len - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(p[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    print_message("child (%s): %s\n", strerror(err), buf);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

bool t_on_epoll(void)
{
    static int epoll = -1;
    if (epoll < 0) {
        struct corio_loop *l = NULL;
        if (corio_loop_new(&l, NULL) != 0)
            fail_msg("corio_loop_new failed");
        epoll = corio_loop_backend(l) == CORIO_BACKEND_EPOLL;
        corio_loop_free(l);
    }
    return epoll;
}

void t_skip_on_epoll(const char *what)
{
    if (!t_on_epoll())
        return;
    print_message("SKIP: %s is io_uring's; loops run on epoll here\n", what);
    skip();
}

struct corio_loop *t_mkloop(const struct corio_loop_opts *o)
{
    return t_mkloop_refusing(o, 0);
}

struct corio_loop *t_mkloop_refusing(const struct corio_loop_opts *o, uint64_t refuse)
{
    struct corio_loop *l = NULL;
    int err = corio__loop_new(&l, o, refuse);
    if (err)
        fail_msg("corio_loop_new: %s (%s)", strerror(-err), corio_strerror_setup(err));
    return l;
}

struct corio_bufring *t_bufring(struct corio_loop *l, unsigned count, size_t size)
{
    struct corio_bufring *br = NULL;
    int err = corio_bufring_new(&br, l, count, size);
    if (err)
        fail_msg("corio_bufring_new(%u, %zu): %s", count, size, strerror(-err));
    return br;
}

/* ---- deadlines, waits and watchdogs ---------------------------------------------------------- */

void t_settle(int n)
{
    for (int i = 0; i < n; i++)
        corio_yield();
}

void t_sleep_ms(int64_t ms)
{
    corio_sleep(T_DL(ms));
}

static int watchdog_main(void *arg)
{
    int64_t ms = (int64_t)(intptr_t)arg;
    if (corio_sleep(T_DL(ms)) == -ECANCELED)
        return 0;
    T_EXPECT(!"watchdog: the scenario did not end in time");
    corio_loop_stop(corio_loop_current());
    return -ETIMEDOUT;
}

corio_id t_watchdog_spawn(int64_t ms)
{
    corio_id wd = 0;
    T_EXPECT_EQ(corio_spawn(&wd, NULL, watchdog_main, (void *)(intptr_t)ms), 0);
    return wd;
}

void t_watchdog_end(corio_id id)
{
    if (id) {
        corio_cancel(id);
        corio_join(id, NULL, CORIO_FOREVER);
    }
}

/* ---- kernel features, sockets, process state ------------------------------------------------- */

void t_need(struct corio_loop *loop, enum corio_feature feat)
{
    if (!corio_loop_has(loop, feat)) {
        print_message("SKIP: the kernel lacks %s\n", corio_feature_name(feat));
        skip();
    }
}

void t_need_or_free(struct corio_loop *loop, enum corio_feature feat)
{
    if (!corio_loop_has(loop, feat)) {
        corio_loop_free(loop);
        print_message("SKIP: the kernel lacks %s\n", corio_feature_name(feat));
        skip();
    }
}

int t_set_linger0(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0 ? 0 : -errno;
}

bool t_accept_queue_full(int lfd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return false;
    /* For a listener, tcpi_unacked is the accept queue's length and tcpi_sacked its backlog. */
    return ti.tcpi_unacked > ti.tcpi_sacked;
}

void t_assert_sigpipe_default(void)
{
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_DFL);
    sigset_t mask;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
    assert_false(sigismember(&mask, SIGPIPE));
}

bool t_sigpipe_pending(void)
{
    sigset_t set;
    sigemptyset(&set);
    return sigpending(&set) == 0 && sigismember(&set, SIGPIPE);
}

void t_count_end(struct t_ends *e, ssize_t r)
{
    if (r == 0)
        e->eof++;
    else if (r == -ECONNRESET)
        e->reset++;
    else if (r == -EPIPE)
        e->pipe++;
    else if (r == -ECANCELED)
        e->cancelled++;
    else if (e->other++ == 0)
        e->other_err = (int)r;
}

void t_serve_byte(int fd, unsigned *served)
{
    char b = 0;
    T_EXPECT_EQ(corio_recv(fd, &b, 1, 0, T_BOUND), 1);
    T_EXPECT_EQ(corio_send(fd, &b, 1, 0, T_BOUND), 1);
    T_EXPECT_EQ(corio_close(fd), 0);
    (*served)++;
}

long t_rss_kib(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

uint64_t t_xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

#if defined(__x86_64__)
uint32_t t_get_mxcsr(void)
{
    uint32_t v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

void t_set_mxcsr(uint32_t v)
{
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
}

uint16_t t_get_fpcw(void)
{
    uint16_t v;
    __asm__ volatile("fnstcw %0" : "=m"(v));
    return v;
}

void t_set_fpcw(uint16_t v)
{
    __asm__ volatile("fldcw %0" : : "m"(v));
}
#endif
