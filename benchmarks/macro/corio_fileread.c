/*
 * corio_fileread: random 4 KiB reads from a file in the page cache, with N coroutines each keeping
 * one read in flight, for a fixed time. The same-machine baseline is fio with its io_uring engine
 * at the same depth (benchmarks/run --set fastpath runs both, interleaved).
 *
 * Usage: corio_fileread --file PATH [--create SIZE] [--depth N] [--bs N] [--secs S] [--warmup S]
 *                       [--fixed] [--cpu N]
 *   --create SIZE  write PATH first (SIZE bytes, k/m/g suffix), each block starting with its own
 *                  offset as a little-endian uint64, then exit; the reads verify those 8 bytes
 *   --depth N      coroutines, one read in flight each (default 64)
 *   --bs N         bytes per read, a divisor of the file size (default 4096)
 *   --secs S       measured seconds (default 3); --warmup S before them (default 0.2)
 *   --fixed        read into registered buffers (corio_read_fixed) instead of corio_read
 *   --no-verify    do not check the offset stamp at the head of each block
 *   --cpu N        pin to CPU N
 * Prints one line: name=corio_fileread mode=read|fixed depth= bs= file_bytes= ops= secs= iops=
 * enter_per_op= sqe_per_op= cqe_per_op= cpu_us_per_op= errors= and exits 0, or 1 when a read
 * failed, came back short, or held the wrong block (the work is checked, so none is skipped).
 *
 * Timing: a controller coroutine sleeps through the warm-up, snapshots the op count, the loop's
 * counters (corio_stats) and getrusage, sleeps through the measured window, snapshots again and
 * stops the workers. The figures are the differences, so setup and teardown are not in them.
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
} o = {.depth = 64, .bs = 4096, .secs = 3, .warmup = 0.2, .verify = true, .cpu = -1};

static int fd = -1;
static uint64_t nblocks;
static unsigned char *bufs; /* depth * bs bytes, page-aligned; registered with --fixed */
static uint64_t ops;        /* reads completed and checked, all workers */
static uint64_t errors;
static bool stop;
static struct snap {
    uint64_t ops;
    struct corio_stats st;
    double cpu; /* utime + stime, seconds */
    int64_t t;
} s0, s1;

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void snapshot(struct snap *s)
{
    s->ops = ops;
    s->st = *corio_loop_stats(corio_loop_current());
    s->cpu = cpu_seconds();
    s->t = corio_now();
}

static int worker(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    unsigned char *buf = bufs + (size_t)i * o.bs;
    uint64_t x = 0x9e3779b97f4a7c15ull * (i + 1); /* xorshift64*, one stream per worker */
    while (!stop) {
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
            if (errors++ < 5)
                fprintf(stderr, "corio_fileread: read at %" PRIu64 ": %s\n", off,
                        n < 0                ? strerror((int)-n)
                        : n != (ssize_t)o.bs ? "short"
                                             : "wrong block");
            stop = true;
            break;
        }
        ops++;
    }
    return 0;
}

static int controller(void *arg)
{
    (void)arg;
    int64_t t = corio_now();
    for (unsigned i = 0; i < o.depth; i++) {
        int err = corio_spawn(NULL, NULL, worker, (void *)(uintptr_t)i);
        if (err) {
            fprintf(stderr, "corio_fileread: spawn: %s\n", strerror(-err));
            errors++;
            stop = true;
            return err;
        }
    }
    corio_sleep(t + (int64_t)(o.warmup * 1e9));
    snapshot(&s0);
    corio_sleep(s0.t + (int64_t)(o.secs * 1e9));
    snapshot(&s1);
    stop = true;
    return 0;
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
    enum { O_FILE = 256, O_CREATE, O_DEPTH, O_BS, O_SECS, O_WARM, O_FIXED, O_NOVERIFY, O_CPU };
    static const struct option longopts[] = {{"file", required_argument, NULL, O_FILE},
                                             {"create", required_argument, NULL, O_CREATE},
                                             {"depth", required_argument, NULL, O_DEPTH},
                                             {"bs", required_argument, NULL, O_BS},
                                             {"secs", required_argument, NULL, O_SECS},
                                             {"warmup", required_argument, NULL, O_WARM},
                                             {"fixed", no_argument, NULL, O_FIXED},
                                             {"no-verify", no_argument, NULL, O_NOVERIFY},
                                             {"cpu", required_argument, NULL, O_CPU},
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
        case 'h':
            printf("usage: corio_fileread --file PATH [--create SIZE] [--depth N] [--bs N] "
                   "[--secs S] [--warmup S] [--fixed] [--no-verify] [--cpu N]\n");
            return 0;
        default:
            return 2;
        }
    }
    if (!o.file || optind != argc || o.depth == 0 || o.depth > MAX_DEPTH || o.bs < 8 ||
        o.bs > (1 << 20) || o.secs <= 0) {
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
    bufs = mmap(NULL, blen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bufs == MAP_FAILED) {
        fprintf(stderr, "corio_fileread: out of memory\n");
        return 1;
    }
    memset(bufs, 0, blen);

    struct corio_loop *loop;
    int err = corio_loop_new(&loop, NULL);
    if (err) {
        fprintf(stderr, "corio_fileread: %s\n", corio_strerror_setup(err));
        return 1;
    }
    if (o.fixed) {
        /* One registered buffer holds every worker's slice: read_fixed takes any range in it. */
        struct iovec iov = {.iov_base = bufs, .iov_len = blen};
        err = corio_buffers_register(loop, &iov, 1);
        if (err) {
            fprintf(stderr, "corio_fileread: register buffers: %s\n", strerror(-err));
            corio_loop_free(loop);
            return 1;
        }
    }
    err = corio_spawn(NULL, loop, controller, NULL);
    if (!err)
        err = corio_loop_run(loop);
    if (err) {
        fprintf(stderr, "corio_fileread: %s\n", strerror(-err));
        errors++;
    }
    if (o.fixed)
        corio_buffers_unregister(loop);
    corio_loop_free(loop);
    close(fd);
    munmap(bufs, blen);

    uint64_t n = s1.ops - s0.ops;
    double secs = (double)(s1.t - s0.t) / 1e9;
    double per = n ? 1.0 / (double)n : 0;
    printf("name=corio_fileread mode=%s depth=%u bs=%zu file_bytes=%lld ops=%" PRIu64
           " secs=%.3f iops=%.0f enter_per_op=%.4f sqe_per_op=%.3f cqe_per_op=%.3f"
           " cpu_us_per_op=%.3f errors=%" PRIu64 "\n",
           o.fixed ? "fixed" : "read", o.depth, o.bs, (long long)st.st_size, n, secs,
           secs > 0 ? (double)n / secs : 0, (double)(s1.st.enters - s0.st.enters) * per,
           (double)(s1.st.sqes - s0.st.sqes) * per, (double)(s1.st.cqes - s0.st.cqes) * per,
           (s1.cpu - s0.cpu) * 1e6 * per, errors);
    return errors || n == 0 ? 1 : 0;
}
