/* corio-probe: which backend corio's default loop gets here and why, what the running kernel's
 * io_uring offers, and what corio uses of it. */
#include "common.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: corio-probe [--json [--seccomp] [--max-conns N]] [--seccomp-profile B]\n"
               "Prints the kernel, the backend a default loop gets here (io_uring, or epoll and\n"
               "why), the io_uring operations the kernel offers, the ring setup flags and features\n"
               "corio uses, and whether SQPOLL mode is available. CORIO_BACKEND is honoured.\n"
               "Exits 1 when no loop can be made at all, naming the cause.\n"
               "  --json               the capability report as JSON (corio_report): also the\n"
               "                       setup flags asked for and refused (why), the limits that\n"
               "                       bite, kernel.io_uring_disabled and io_uring_group\n"
               "  --seccomp            with --json: add the seccomp profiles of both backends\n"
               "  --max-conns N        with --json: check RLIMIT_NOFILE against N connections\n"
               "                       (default 10000, corio-httpd's)\n"
               "  --seccomp-profile B  print only the seccomp profile corio needs on backend B\n"
               "                       (io_uring, epoll or auto: both), in the JSON form of\n"
               "                       docker run --security-opt seccomp=FILE\n");
}

static void row(const char *name, bool yes, const char *note)
{
    printf("  %-22s %-4s %s\n", name, yes ? "yes" : "no", note ? note : "");
}

/* Prints text that a corio call writes snprintf-like: measured once, then written. Returns 0, or
 * 1 when it could not be had. */
static int print_text(ssize_t (*write_fn)(char *buf, size_t len, void *arg), void *arg)
{
    ssize_t n = write_fn(NULL, 0, arg);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || write_fn(buf, (size_t)n + 1, arg) < 0) {
        fprintf(stderr, "corio-probe: %s\n", n < 0 ? strerror((int)-n) : "no memory");
        free(buf);
        return 1;
    }
    fputs(buf, stdout);
    free(buf);
    return 0;
}

struct report_args {
    uint64_t max_conns;
    unsigned flags;
    enum corio_backend backend;
};

static ssize_t write_report(char *buf, size_t len, void *arg)
{
    const struct report_args *a = arg;
    return corio_report(buf, len, NULL, a->max_conns, a->flags);
}

static ssize_t write_profile(char *buf, size_t len, void *arg)
{
    const struct report_args *a = arg;
    ssize_t n = corio_seccomp_profile(buf, len, a->backend);
    if (n >= 0 && (size_t)n + 1 < len) /* a newline after the JSON */
        strcpy(buf + n, "\n");
    return n < 0 ? n : n + 1;
}

int main(int argc, char **argv)
{
    enum { O_JSON = 256, O_SECCOMP, O_MAXCONNS, O_PROFILE };
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"json", no_argument, NULL, O_JSON},
                                             {"seccomp", no_argument, NULL, O_SECCOMP},
                                             {"max-conns", required_argument, NULL, O_MAXCONNS},
                                             {"seccomp-profile", required_argument, NULL, O_PROFILE},
                                             {NULL, 0, NULL, 0}};
    int c;
    bool json = false;
    const char *profile = NULL;
    struct report_args ra = {0};
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case O_JSON: json = true; break;
        case O_SECCOMP: ra.flags |= CORIO_REPORT_SECCOMP; break;
        case O_MAXCONNS: ra.max_conns = tool_parse_size("--max-conns", optarg); break;
        case O_PROFILE: profile = optarg; break;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (profile) {
        if (strcmp(profile, "io_uring") == 0)
            ra.backend = CORIO_BACKEND_IO_URING;
        else if (strcmp(profile, "epoll") == 0)
            ra.backend = CORIO_BACKEND_EPOLL;
        else if (strcmp(profile, "auto") == 0)
            ra.backend = CORIO_BACKEND_AUTO;
        else {
            usage(stderr);
            return 2;
        }
        return print_text(write_profile, &ra);
    }
    if (json)
        return print_text(write_report, &ra);
    struct utsname u;
    if (uname(&u) == 0)
        printf("kernel: %s %s %s\n", u.sysname, u.release, u.machine);
    printf("corio: %s\n", CORIO_VERSION_STRING);
    struct corio_loop *loop;
    int err = corio_loop_new(&loop, NULL);
    if (err) {
        printf("backend: none: %s\n", corio_strerror_setup(err));
        return 1;
    }
    if (corio_loop_backend(loop) != CORIO_BACKEND_IO_URING) {
        /* The epoll backend serves every op; say why io_uring is not used, and what it would
         * have offered if it was only the environment that chose epoll. */
        printf("backend: %s: %s\n", corio_backend_name(corio_loop_backend(loop)),
               corio_loop_backend_reason(loop));
        corio_loop_free(loop);
        struct corio_loop_opts uo = {.backend = CORIO_BACKEND_IO_URING};
        err = corio_loop_new(&loop, &uo);
        if (err) {
            printf("io_uring: unavailable: %s\n", corio_strerror_setup(err));
            return 0;
        }
    } else {
        printf("backend: io_uring\n");
    }
    printf("operations (IORING_REGISTER_PROBE):\n");
    for (int f = CORIO_FEAT_NOP; f <= CORIO_FEAT_PROVIDE_BUFFERS; f++)
        row(corio_feature_name((enum corio_feature)f), corio_loop_has(loop, (enum corio_feature)f),
            NULL);
    printf("ring setup of the default loop (what corio uses):\n");
    for (int f = CORIO_FEAT_SINGLE_ISSUER; f <= CORIO_FEAT_CQSIZE; f++) {
        if (f == CORIO_FEAT_SQPOLL)
            continue;
        row(corio_feature_name((enum corio_feature)f), corio_loop_has(loop, (enum corio_feature)f),
            NULL);
    }
    printf("ring features:\n");
    for (int f = CORIO_FEAT_REG_RING_FD; f < CORIO_FEAT_COUNT; f++)
        row(corio_feature_name((enum corio_feature)f), corio_loop_has(loop, (enum corio_feature)f),
            NULL);
    corio_loop_free(loop);
    struct corio_loop_opts so = {.flags = CORIO_LOOP_SQPOLL};
    err = corio_loop_new(&loop, &so);
    bool sq = err == 0 && corio_loop_has(loop, CORIO_FEAT_SQPOLL);
    printf("optional modes:\n");
    row("sqpoll", sq, sq ? "(corio-echo/corio-httpd --sqpoll)" : "(refused: needs privileges?)");
    if (err == 0)
        corio_loop_free(loop);
    return 0;
}
