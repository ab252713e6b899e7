#include "common.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static int signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    return 0;
}

int tool_block_signals(void)
{
    sigset_t set;
    signal_set(&set);
    /* A shell starts background jobs with SIGINT ignored, and an ignored signal is discarded
     * before it could reach the signalfd: take the default disposition back (blocked, the
     * default action never runs; the signalfd receives it). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int signal_waiter(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct signalfd_siginfo si;
    ssize_t n = corio_read(fd, &si, sizeof(si), -1, CORIO_FOREVER);
    corio_close(fd);
    if (n == (ssize_t)sizeof(si))
        corio_loop_stop(corio_loop_current());
    return 0;
}

int tool_stop_on_signals(struct corio_loop *loop)
{
    sigset_t set;
    signal_set(&set);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int err = corio_spawn(NULL, loop, signal_waiter, (void *)(intptr_t)fd);
    if (err)
        close(fd);
    return err;
}

uint64_t tool_parse_size(const char *opt, const char *val)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1024ull * 1024 * 1024, end++;
    if (errno || end == val || *end || val[0] == '-') {
        fprintf(stderr, "bad value for %s: '%s'\n", opt, val);
        exit(2);
    }
    return (uint64_t)v * mul;
}

int64_t tool_parse_seconds(const char *opt, const char *val)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || v < 0 || v > 1e9) {
        fprintf(stderr, "bad value for %s: '%s'\n", opt, val);
        exit(2);
    }
    return (int64_t)(v * 1e9);
}

int tool_pin_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

void tool_print_stats(const char *who, struct corio_loop *loop)
{
    const struct corio_stats *s = corio_loop_stats(loop);
    fprintf(stderr,
            "%s: sqes=%" PRIu64 " enters=%" PRIu64 " cqes=%" PRIu64 " cq_overflows=%" PRIu64
            " enobufs=%" PRIu64 " switches=%" PRIu64 " spawns=%" PRIu64 " iterations=%" PRIu64
            " rx_pauses=%" PRIu64 "\n",
            who, s->sqes, s->enters, s->cqes, s->cq_overflows, s->enobufs, s->switches, s->spawns,
            s->iterations, s->rx_pauses);
}

int tool_loop_new(const char *who, struct corio_loop **out, const struct corio_loop_opts *opts)
{
    int err = corio_loop_new(out, opts);
    if (err) {
        fprintf(stderr, "%s: %s\n", who, corio_strerror_setup(err));
        return err;
    }
    if (corio_loop_backend(*out) != CORIO_BACKEND_IO_URING)
        fprintf(stderr, "%s: backend %s: %s\n", who, corio_backend_name(corio_loop_backend(*out)),
                corio_loop_backend_reason(*out));
    return 0;
}
