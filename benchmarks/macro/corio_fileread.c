/*
 * corio_fileread: random 4 KiB reads from a file in the page cache, with N coroutines each keeping
 * one read in flight, for a fixed time. The same-machine baseline is fio with its io_uring engine
 * at the same depth (benchmarks/run --set fastpath runs both, interleaved).
 *
 * Usage: corio_fileread --file PATH [--create SIZE] [--depth N] [--bs N] [--secs S] [--warmup S]
 *                       [--fixed] [--cpu N] [--threads N]
 *   --create SIZE  write PATH first (SIZE bytes, k/m/g suffix), each block starting with its own
 *                  offset as a little-endian uint64, then exit; the reads verify those 8 bytes
 *   --depth N      coroutines, one read in flight each (default 64)
 *   --bs N         bytes per read, a divisor of the file size (default 4096)
 *   --secs S       measured seconds (default 3); --warmup S before them (default 0.2)
 *   --fixed        read into registered buffers (corio_read_fixed) instead of corio_read
 *   --no-verify    do not check the offset stamp at the head of each block
 *   --cpu N        pin to CPU N
 *   --threads N    N loops on N threads (corio_run_threads, pinned one per CPU), each with
 *                  --depth coroutines of its own; the figures are the sums (default 1: one loop
 *                  on the calling thread, as before)
 * Prints one line: name=corio_fileread mode=read|fixed depth= bs= file_bytes= ops= secs= iops=
 * enter_per_op= sqe_per_op= cqe_per_op= cpu_us_per_op= errors= and exits 0, or 1 when a read
 * failed, came back short, or held the wrong block (the work is checked, so none is skipped).
 *
 * Timing: a controller coroutine per loop sleeps through the warm-up, snapshots the loop's op
 * count, its counters (corio_stats) and its thread's CPU time, sleeps through the measured window,
 * snapshots again and stops the loop's workers. The windows of all loops are the same absolute
 * times, set before any loop runs. The figures are the differences, so setup and teardown are not
 * in them.
 */
#include "common.h"

#include <corio.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 4096

static struct {
    const char *file;
    uint64_t create; /* bytes to write, or 0 */
    unsigned depth;
    size_t bs;
    double secs, warmup;
    bool fixed, verify;
    int cpu;
    unsigned threads;
} o = {.depth = 64, .bs = 4096, .secs = 3, .warmup = 0.2, .verify = true, .cpu = -1, .threads = 1};

#define MAX_THREADS 64

static int fd = -1;
static uint64_t nblocks;
static int64_t t_start; /* when every loop's warm-up begins */

struct snap {
    uint64_t ops;
    struct corio_stats st;
    double cpu; /* this thread's utime + stime, seconds */
    int64_t t;
};

/* One loop's part, touched only by its own thread until they have all been joined. */
static struct part {
    unsigned char *bufs; /* depth * bs bytes, page-aligned; registered with --fixed */
    uint64_t ops;        /* reads completed and checked by this loop's workers */
    uint64_t errors;
    bool stop;
    struct snap s0, s1;
} parts[MAX_THREADS];

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void snapshot(const struct part *p, struct snap *s)
{
    s->ops = p->ops;
    s->st = *corio_loop_stats(corio_loop_current());
    s->cpu = cpu_seconds();
    s->t = corio_now();
}

static int worker(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    struct part *p = &parts[corio_thread_index()];
    unsigned char *buf = p->bufs + (size_t)i * o.bs;
    /* xorshift64*, one stream per worker of every loop */
    uint64_t x = 0x9e3779b97f4a7c15ull * ((uint64_t)corio_thread_index() * o.depth + i + 1);
    while (!p->stop) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t off = ((x * 0x2545f4914f6cdd1dull) >> 11) % nblocks * o.bs;
        ssize_t n = o.fixed ? corio_read_fixed(fd, buf, o.bs, (int64_t)off, 0, CORIO_FOREVER)
                            : corio_read(fd, buf, o.bs, (int64_t)off, CORIO_FOREVER);
        if (n == -ECANCELED)
            break;
        uint64_t stamp;
        memcpy(&stamp, buf, sizeof(stamp));
        if (n != (ssize_t)o.bs || (o.verify && stamp != off)) {
            if (p->errors++ < 5)
                fprintf(stderr, "corio_fileread: read at %" PRIu64 ": %s\n", off,
                        n < 0                ? strerror((int)-n)
                        : n != (ssize_t)o.bs ? "short"
                                             : "wrong block");
            p->stop = true;
            break;
        }
        p->ops++;
    }
    return 0;
}

/* One loop's body: its workers in a group, and its two snapshots at the times every loop shares.
 * A loop whose workers end first stops the others (corio_run_threads), possibly a few
 * microseconds before their last snapshot: each loop's rate is over its own window, so that
 * costs nothing but those microseconds. */
static int loop_main(void *arg)
{
    (void)arg;
    struct part *p = &parts[corio_thread_index()];
    struct corio_loop *loop = corio_loop_current();
    int err = 0;
    if (o.fixed) {
        /* One registered buffer holds every worker's slice: read_fixed takes any range in it. */
        struct iovec iov = {.iov_base = p->bufs, .iov_len = (size_t)o.depth * o.bs};
        err = corio_buffers_register(loop, &iov, 1);
        if (err) {
            fprintf(stderr, "corio_fileread: register buffers: %s\n", strerror(-err));
            p->errors++;
            return err;
        }
    }
    struct corio_group workers;
    corio_group_init(&workers, 0);
    for (unsigned i = 0; i < o.depth && !err; i++) {
        err = corio_group_spawn(NULL, &workers, worker, (void *)(uintptr_t)i);
        if (err)
            fprintf(stderr, "corio_fileread: spawn: %s\n", strerror(-err));
    }
    int64_t t0 = t_start + (int64_t)(o.warmup * 1e9);
    if (!err) {
        corio_sleep(t0);
        snapshot(p, &p->s0);
        corio_sleep(t0 + (int64_t)(o.secs * 1e9));
        snapshot(p, &p->s1);
    } else {
        p->errors++;
    }
    p->stop = true;
    corio_group_wait(&workers, CORIO_FOREVER);
    if (o.fixed)
        corio_buffers_unregister(loop);
    return err;
}

/* Writes the file: each block begins with its offset, the rest is a fixed pattern. */
static int create_file(void)
{
    int wfd = open(o.file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (wfd < 0) {
        fprintf(stderr, "corio_fileread: %s: %s\n", o.file, strerror(errno));
        return 1;
    }
    size_t chunk = 1 << 20;
    unsigned char *b = malloc(chunk);
    if (!b)
        return 1;
    memset(b, 0xa5, chunk);
    for (uint64_t at = 0; at < o.create; at += chunk) {
        size_t len = o.create - at < chunk ? (size_t)(o.create - at) : chunk;
        for (size_t k = 0; k + 8 <= len; k += o.bs) {
            uint64_t off = at + k;
            memcpy(b + k, &off, sizeof(off));
        }
        if (write(wfd, b, len) != (ssize_t)len) {
            fprintf(stderr, "corio_fileread: write %s: %s\n", o.file, strerror(errno));
            free(b);
            close(wfd);
            return 1;
        }
    }
    free(b);
    return close(wfd) == 0 ? 0 : 1;
}

static uint64_t parse_size(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1 << 10, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1 << 20, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1 << 30, end++;
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, "corio_fileread: bad value for %s: '%s'\n", opt, s);
        exit(2);
    }
    return (uint64_t)v * mul;
}

static double parse_secs(const char *opt, const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < 0 || v > 3600) {
        fprintf(stderr, "corio_fileread: bad value for %s: '%s'\n", opt, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    enum {
        O_FILE = 256,
        O_CREATE,
        O_DEPTH,
        O_BS,
        O_SECS,
        O_WARM,
        O_FIXED,
        O_NOVERIFY,
        O_CPU,
        O_THREADS
    };
    static const struct option longopts[] = {{"file", required_argument, NULL, O_FILE},
                                             {"create", required_argument, NULL, O_CREATE},
                                             {"depth", required_argument, NULL, O_DEPTH},
                                             {"bs", required_argument, NULL, O_BS},
                                             {"secs", required_argument, NULL, O_SECS},
                                             {"warmup", required_argument, NULL, O_WARM},
                                             {"fixed", no_argument, NULL, O_FIXED},
                                             {"no-verify", no_argument, NULL, O_NOVERIFY},
                                             {"cpu", required_argument, NULL, O_CPU},
                                             {"threads", required_argument, NULL, O_THREADS},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_FILE:
            o.file = optarg;
            break;
        case O_CREATE:
            o.create = parse_size("--create", optarg);
            break;
        case O_DEPTH:
            o.depth = (unsigned)parse_size("--depth", optarg);
            break;
        case O_BS:
            o.bs = (size_t)parse_size("--bs", optarg);
            break;
        case O_SECS:
            o.secs = parse_secs("--secs", optarg);
            break;
        case O_WARM:
            o.warmup = parse_secs("--warmup", optarg);
            break;
        case O_FIXED:
            o.fixed = true;
            break;
        case O_NOVERIFY:
            o.verify = false;
            break;
        case O_CPU:
            o.cpu = (int)parse_size("--cpu", optarg);
            break;
        case O_THREADS:
            o.threads = (unsigned)parse_size("--threads", optarg);
            break;
        case 'h':
            printf("usage: corio_fileread --file PATH [--create SIZE] [--depth N] [--bs N] "
                   "[--secs S] [--warmup S] [--fixed] [--no-verify] [--cpu N] [--threads N]\n");
            return 0;
        default:
            return 2;
        }
    }
    if (!o.file || optind != argc || o.depth == 0 || o.depth > MAX_DEPTH || o.bs < 8 ||
        o.bs > (1 << 20) || o.secs <= 0 || o.threads == 0 || o.threads > MAX_THREADS) {
        fprintf(stderr, "corio_fileread: bad usage (see --help)\n");
        return 2;
    }
    if (o.create)
        return create_file();
    if (o.cpu >= 0 && bench_pin_cpu(o.cpu) != 0)
        fprintf(stderr, "corio_fileread: cannot pin to CPU %d\n", o.cpu);
    fd = open(o.file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "corio_fileread: %s: %s\n", o.file, strerror(errno));
        return 1;
    }
    nblocks = (uint64_t)st.st_size / o.bs;
    if (nblocks == 0) {
        fprintf(stderr, "corio_fileread: %s is smaller than one block\n", o.file);
        return 1;
    }
    size_t blen = (size_t)o.depth * o.bs;
    for (unsigned t = 0; t < o.threads; t++) {
        parts[t].bufs =
            mmap(NULL, blen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (parts[t].bufs == MAP_FAILED) {
            fprintf(stderr, "corio_fileread: out of memory\n");
            return 1;
        }
        memset(parts[t].bufs, 0, blen);
    }

    /* Every loop is made before any runs, so the shared start needs only a small margin. */
    t_start = corio_now() + CORIO_MS(20);
    int err =
        corio_run_threads(o.threads, loop_main, NULL, NULL, o.threads > 1 ? CORIO_THREADS_PIN : 0);
    if (err)
        fprintf(stderr, "corio_fileread: %s\n",
                err == -ENOSYS || err == -EPERM ? corio_strerror_setup(err) : strerror(-err));
    close(fd);

    uint64_t n = 0, errors = err ? 1 : 0, enters = 0, sqes = 0, cqes = 0;
    double rate = 0, cpu = 0, secs = 0;
    for (unsigned t = 0; t < o.threads; t++) {
        const struct part *p = &parts[t];
        uint64_t k = p->s1.ops - p->s0.ops;
        double w = (double)(p->s1.t - p->s0.t) / 1e9;
        n += k;
        rate += w > 0 ? (double)k / w : 0;
        secs = w > secs ? w : secs;
        cpu += p->s1.cpu - p->s0.cpu;
        enters += p->s1.st.enters - p->s0.st.enters;
        sqes += p->s1.st.sqes - p->s0.st.sqes;
        cqes += p->s1.st.cqes - p->s0.st.cqes;
        errors += p->errors;
        munmap(p->bufs, blen);
    }
    double per = n ? 1.0 / (double)n : 0;
    printf("name=corio_fileread mode=%s threads=%u depth=%u bs=%zu file_bytes=%lld ops=%" PRIu64
           " secs=%.3f iops=%.0f enter_per_op=%.4f sqe_per_op=%.3f cqe_per_op=%.3f"
           " cpu_us_per_op=%.3f errors=%" PRIu64 "\n",
           o.fixed ? "fixed" : "read", o.threads, o.depth, o.bs, (long long)st.st_size, n, secs,
           rate, (double)enters * per, (double)sqes * per, (double)cqes * per, cpu * 1e6 * per,
           errors);
    return errors || n == 0 ? 1 : 0;
}
