/* The capability report (corio_report): what this machine gives corio, as JSON: the backend a loop
 * gets and why, the kernel, the io_uring setup flags asked for and granted (and why one was
 * refused), the ops corio uses and whether each is there, the limits that bite (RLIMIT_MEMLOCK
 * against the ring's memory on kernels that count it, RLIMIT_NOFILE against the connections a
 * program means to hold), the io_uring sysctls, and on request the seccomp profile corio needs
 * (corio_seccomp_profile), in the JSON form of Docker's --security-opt seccomp=. */
#include "loop.h"

#include "probe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

/* ---- the seccomp profile ----------------------------------------------------------------------
 */

/* The system calls a corio program makes, by what needs them; found by tracing the tools on both
 * backends (strace -f) and checked by running them under this profile (tests/seccomp_profile.sh).
 * Names a kernel or an architecture does not have are skipped by the runtime that loads them. */

/* A process on glibc: start-up, memory, threads (the blocking pool), signals, time, files. */
static const char *const sys_process[] = {"execve",
                                          "access",
                                          "arch_prctl",
                                          "brk",
                                          "mmap",
                                          "munmap",
                                          "mprotect",
                                          "madvise",
                                          "mremap",
                                          "newfstatat",
                                          "fstat",
                                          "openat",
                                          "close",
                                          "read",
                                          "write",
                                          "pread64",
                                          "lseek",
                                          "prlimit64",
                                          "getrlimit",
                                          "set_tid_address",
                                          "set_robust_list",
                                          "rseq",
                                          "getrandom",
                                          "futex",
                                          "clone",
                                          "clone3",
                                          "exit",
                                          "exit_group",
                                          "rt_sigaction",
                                          "rt_sigprocmask",
                                          "rt_sigreturn",
                                          "sigaltstack",
                                          "getpid",
                                          "gettid",
                                          "tgkill",
                                          "uname",
                                          "clock_gettime",
                                          "clock_nanosleep",
                                          "nanosleep",
                                          "sched_yield",
                                          "sched_getaffinity",
                                          "sched_setaffinity",
                                          "eventfd2",
                                          "fcntl",
                                          "ioctl"};

/* The socket helpers that call the kernel directly on either backend (listen, options, names),
 * and what getaddrinfo needs for host names (corio_resolve, in the blocking pool). */
static const char *const sys_net[] = {
    "socket",  "bind",   "listen",   "setsockopt", "getsockopt", "getsockname", "getpeername",
    "connect", "sendto", "recvfrom", "sendmmsg",   "poll",       "ppoll"};

/* corio_http's bodies from a file (engine/http/sendfile.c), on either backend: file to pipe to
 * socket with splice, and a SIGPIPE that a splice raised taken back (fcntl and rt_sigprocmask
 * are above). */
static const char *const sys_http[] = {"pipe2", "splice", "rt_sigtimedwait"};

/* io_uring: the ops themselves run inside the kernel, where a seccomp filter does not see them. */
static const char *const sys_uring[] = {"io_uring_setup", "io_uring_enter", "io_uring_register"};

/* The epoll backend: every op is a system call of its own. */
static const char *const sys_epoll[] = {
    "epoll_create1", "epoll_ctl", "epoll_pwait2", "epoll_pwait", "epoll_wait", "accept4",
    "recvmsg",       "sendmsg",   "shutdown",     "readv",       "writev",     "preadv2",
    "pwritev2",      "pwrite64",  "fsync",        "fdatasync",   "statx"};

static void names(struct corio__text *t, const char *const *v, size_t n, bool *first)
{
    for (size_t i = 0; i < n; i++) {
        corio__text_put(t, "%s\"%s\"", *first ? "" : ",", v[i]);
        *first = false;
    }
}

static void profile(struct corio__text *t, enum corio_backend b)
{
    bool first = true;
    corio__text_put(t, "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":1,"
                       "\"syscalls\":[{\"names\":[");
    names(t, sys_process, CORIO__ARRAY_SIZE(sys_process), &first);
    names(t, sys_net, CORIO__ARRAY_SIZE(sys_net), &first);
    names(t, sys_http, CORIO__ARRAY_SIZE(sys_http), &first);
    if (b != CORIO_BACKEND_EPOLL)
        names(t, sys_uring, CORIO__ARRAY_SIZE(sys_uring), &first);
    if (b != CORIO_BACKEND_IO_URING)
        names(t, sys_epoll, CORIO__ARRAY_SIZE(sys_epoll), &first);
    corio__text_put(t, "],\"action\":\"SCMP_ACT_ALLOW\"}]}");
}

ssize_t corio_seccomp_profile(char *buf, size_t len, enum corio_backend backend)
{
    if ((unsigned)backend > CORIO_BACKEND_EPOLL)
        return -EINVAL;
    struct corio__text t = {.buf = buf, .len = len};
    if (len)
        buf[0] = '\0';
    profile(&t, backend);
    return (ssize_t)t.pos;
}

/* ---- the report -------------------------------------------------------------------------------
 */

/* A JSON string: @s with quotes, backslashes and control characters escaped. */
static void str(struct corio__text *t, const char *s)
{
    corio__text_put(t, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            corio__text_put(t, "\\%c", c);
        else if (c < 0x20)
            corio__text_put(t, "\\u%04x", c);
        else
            corio__text_put(t, "%c", c);
    }
    corio__text_put(t, "\"");
}

/* The reason a setup flag was refused, in words. */
static const char *refusal(int err)
{
    switch (err) {
    case 0:
        return "";
    case -EINVAL:
        return "io_uring_setup refused the flags with EINVAL: a kernel without this flag (or "
               "without this combination); corio dropped it and tried again";
    case -EPERM:
        return "io_uring_setup refused with EPERM: the flag needs a privilege (SQPOLL before "
               "5.11 needs CAP_SYS_ADMIN)";
    default:
        return strerror(-err);
    }
}

static void feature_list(struct corio__text *t, const char *key, uint64_t features, int from,
                         int to, bool ops)
{
    corio__text_put(t, ",\"%s\":[", key);
    for (int f = from; f <= to; f++) {
        corio__text_put(t, "%s{\"name\":", f == from ? "" : ",");
        str(t, corio_feature_name((enum corio_feature)f));
        corio__text_put(t, ",\"present\":%s", features & (1ull << f) ? "true" : "false");
        if (ops)
            corio__text_put(t, ",\"needed\":%s",
                            corio__op_needed((enum corio_feature)f) ? "true" : "false");
        corio__text_put(t, "}");
    }
    corio__text_put(t, "]");
}

static void setup_flags(struct corio__text *t, const struct corio__ring *r, uint64_t features)
{
    corio__text_put(t, ",\"setup_flags\":[");
    for (int f = CORIO_FEAT_SINGLE_ISSUER; f <= CORIO_FEAT_CQSIZE; f++) {
        bool asked = corio__ring_setup_asked(r) & (1ull << f);
        bool granted = features & (1ull << f);
        corio__text_put(t, "%s{\"name\":", f == CORIO_FEAT_SINGLE_ISSUER ? "" : ",");
        str(t, corio_feature_name((enum corio_feature)f));
        corio__text_put(t, ",\"asked\":%s,\"granted\":%s,\"refused\":", asked ? "true" : "false",
                        granted ? "true" : "false");
        str(t, granted ? "" : refusal(corio__ring_setup_refusal(r, (enum corio_feature)f)));
        corio__text_put(t, "}");
    }
    corio__text_put(t, "]");
}

/* What a ring @r offers (@features), whether or not corio can use it. */
static void uring_caps(struct corio__text *t, const struct corio__ring *r, uint64_t features)
{
    setup_flags(t, r, features);
    feature_list(t, "ops", features, CORIO_FEAT_NOP, CORIO_FEAT_PROVIDE_BUFFERS, true);
    feature_list(t, "features", features, CORIO_FEAT_REG_RING_FD, CORIO_FEAT_RW_CUR_POS, false);
    feature_list(t, "modes", features, CORIO_FEAT_RECV_MULTISHOT, CORIO_FEAT_BUF_RING, false);
}

/* What io_uring offers, from a loop forced onto it with @o, or why corio cannot use it: a ring
 * that sets up but lacks an op corio needs is still asked what it has. */
static void uring(struct corio__text *t, const struct corio_loop_opts *o)
{
    struct corio_loop_opts uo = o ? *o : (struct corio_loop_opts){0};
    uo.backend = CORIO_BACKEND_IO_URING;
    struct corio_loop *l;
    int err = corio_loop_new(&l, &uo);
    corio__text_put(t, ",\"io_uring\":{\"available\":%s,\"error\":", err ? "false" : "true");
    if (!err) {
        str(t, "");
        uring_caps(t, l->io.ring, l->features);
        corio_loop_free(l);
    } else if (err != -EOPNOTSUPP) {
        str(t, corio_strerror_setup(err));
        corio__text_put(t, ",\"errno\":%d", -err);
    } else {
        struct corio_stats stats;
        struct corio__ring *r;
        if (corio__ring_new(&r, &uo, &stats, 0) != 0) {
            str(t, corio_strerror_setup(err));
        } else {
            uint64_t f = corio__probe_uring(r);
            char why[128] = "io_uring lacks an op corio needs";
            for (int op = CORIO_FEAT_NOP; op <= CORIO_FEAT_PROVIDE_BUFFERS; op++)
                if (corio__op_needed((enum corio_feature)op) && !(f & (1ull << op))) {
                    snprintf(why, sizeof(why), "io_uring lacks IORING_OP_%s (older kernel?)",
                             corio_feature_name((enum corio_feature)op));
                    break;
                }
            str(t, why);
            uring_caps(t, r, f);
            corio__ring_free(r);
        }
        corio__text_put(t, ",\"errno\":%d", -err);
    }
    corio__text_put(t, "}");
}

static void rlim(struct corio__text *t, int res)
{
    struct rlimit rl;
    if (getrlimit(res, &rl) != 0) {
        corio__text_put(t, "\"soft\":null,\"hard\":null");
        return;
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        corio__text_put(t, "\"soft\":\"unlimited\"");
    else
        corio__text_put(t, "\"soft\":%llu", (unsigned long long)rl.rlim_cur);
    if (rl.rlim_max == RLIM_INFINITY)
        corio__text_put(t, ",\"hard\":\"unlimited\"");
    else
        corio__text_put(t, ",\"hard\":%llu", (unsigned long long)rl.rlim_max);
}

static uint64_t page_round(uint64_t n)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

/* RLIMIT_MEMLOCK against the rings' memory, which kernels before 5.12 charge to it (later ones
 * charge the memory cgroup instead); RLIMIT_NOFILE against @max_conns connections and the few fds
 * a loop holds (its ring or epoll set, eventfds, a listener). */
static void limits(struct corio__text *t, const struct corio_loop_opts *o, int major, int minor,
                   uint64_t max_conns)
{
    uint64_t sq = o && o->sq_entries ? o->sq_entries : 256;
    uint64_t cq = o && o->cq_entries ? o->cq_entries : sq * 4;
    /* The SQE array, and one mapping for the SQ and CQ rings (IORING_FEAT_SINGLE_MMAP). */
    uint64_t ring = page_round(sq * 64) + page_round(cq * 16 + sq * 4 + 256);
    bool counts = major > 0 && (major < 5 || (major == 5 && minor < 12));
    struct rlimit ml = {0}, nf = {0};
    bool ml_ok = !counts || (getrlimit(RLIMIT_MEMLOCK, &ml) == 0 &&
                             (ml.rlim_cur == RLIM_INFINITY || ml.rlim_cur >= ring));
    corio__text_put(t, ",\"limits\":{\"memlock\":{");
    rlim(t, RLIMIT_MEMLOCK);
    corio__text_put(t, ",\"ring_bytes\":%llu,\"counted\":%s,\"ok\":%s}", (unsigned long long)ring,
                    counts ? "true" : "false", ml_ok ? "true" : "false");
    uint64_t need = max_conns + 16;
    bool nf_ok =
        getrlimit(RLIMIT_NOFILE, &nf) == 0 && (nf.rlim_cur == RLIM_INFINITY || nf.rlim_cur >= need);
    corio__text_put(t, ",\"nofile\":{");
    rlim(t, RLIMIT_NOFILE);
    corio__text_put(t, ",\"max_conns\":%llu,\"needed\":%llu,\"ok\":%s}}",
                    (unsigned long long)max_conns, (unsigned long long)need,
                    nf_ok ? "true" : "false");
}

/* A sysctl's value, or null where the kernel has none (io_uring_disabled came in 6.6) or it
 * cannot be read; io_uring_group is -1 when no group is named. */
static void sysctl(struct corio__text *t, const char *name, const char *path)
{
    corio__text_put(t, "\"%s\":", name);
    if (access(path, R_OK) == 0)
        corio__text_put(t, "%ld", corio__read_proc_long(path));
    else
        corio__text_put(t, "null");
}

static void sysctls(struct corio__text *t, unsigned flags)
{
    long mode = corio__seccomp_mode();
    corio__text_put(t, ",\"sysctl\":{");
    sysctl(t, "kernel.io_uring_disabled", "/proc/sys/kernel/io_uring_disabled");
    corio__text_put(t, ",");
    sysctl(t, "kernel.io_uring_group", "/proc/sys/kernel/io_uring_group");
    corio__text_put(t, "},\"seccomp\":{\"mode\":");
    corio__text_put(t, mode >= 0 ? "%ld" : "null", mode);
    if (flags & CORIO_REPORT_SECCOMP) {
        corio__text_put(t, ",\"profile_io_uring\":");
        profile(t, CORIO_BACKEND_IO_URING);
        corio__text_put(t, ",\"profile_epoll\":");
        profile(t, CORIO_BACKEND_EPOLL);
    }
    corio__text_put(t, "}");
}

/* The backend a loop made with @o gets, and why not io_uring. */
static void backend(struct corio__text *t, const struct corio_loop_opts *o)
{
    struct corio_loop *l = NULL;
    int err = corio_loop_new(&l, o);
    corio__text_put(t, ",\"backend\":{\"name\":");
    str(t, err ? "none" : corio_backend_name(corio_loop_backend(l)));
    corio__text_put(t, ",\"reason\":");
    str(t, err ? corio_strerror_setup(err) : corio_loop_backend_reason(l));
    corio__text_put(t, "}");
    corio_loop_free(l);
}

ssize_t corio_report(char *buf, size_t len, const struct corio_loop_opts *opts, uint64_t max_conns,
                     unsigned flags)
{
    if (flags & ~CORIO_REPORT_SECCOMP)
        return -EINVAL;
    struct corio__text t = {.buf = buf, .len = len};
    if (len)
        buf[0] = '\0';
    struct utsname u;
    int major = 0, minor = 0;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof(u));
    sscanf(u.release, "%d.%d", &major, &minor);
    corio__text_put(&t, "{\"corio\":\"%s\",\"kernel\":{\"release\":", CORIO_VERSION_STRING);
    str(&t, u.release);
    corio__text_put(&t, ",\"machine\":");
    str(&t, u.machine);
    corio__text_put(&t, "}");
    backend(&t, opts);
    uring(&t, opts);
    limits(&t, opts, major, minor, max_conns ? max_conns : 10000);
    sysctls(&t, flags);
    corio__text_put(&t, "}\n");
    return (ssize_t)t.pos;
}
