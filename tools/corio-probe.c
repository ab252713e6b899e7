/* corio-probe: which backend corio's default loop gets here and why, what the running kernel's
 * io_uring offers, and what corio uses of it. */
#include "common.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: corio-probe [--help]\n"
               "Prints the kernel, the backend a default loop gets here (io_uring, or epoll and\n"
               "why), the io_uring operations the kernel offers, the ring setup flags and features\n"
               "corio uses, and whether SQPOLL mode is available. CORIO_BACKEND is honoured.\n"
               "Exits 1 when no loop can be made at all, naming the cause.\n");
}

static void row(const char *name, bool yes, const char *note)
{
    printf("  %-22s %-4s %s\n", name, yes ? "yes" : "no", note ? note : "");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        usage(stderr);
        return 2;
    }
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
