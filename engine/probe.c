/* Probing: which kernel features a loop can use (asked of the ring once, at loop creation), and
 * why a loop could not be created at all. ring.c answers the raw questions, since it is the only
 * file that speaks the kernel's interface; this file decides what the answers mean. */
#include "probe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Modes of operations that IORING_REGISTER_PROBE cannot show. A buffer ring is tried for real.
 * Multishot accept and cancelling by fd (IORING_ASYNC_CANCEL_FD and _ALL) came with
 * IORING_OP_SOCKET (5.19) and multishot recv with IORING_OP_SEND_ZC (6.0): their opcodes stand in
 * for a version check. */
static uint64_t probe_modes(struct corio__ring *r, uint64_t f)
{
    struct corio__pbuf *p;
    if (corio__ring_pbuf_new(r, 0xffff, 1, &p) == 0) {
        corio__ring_pbuf_free(r, 0xffff, p);
        f |= 1ull << CORIO_FEAT_BUF_RING;
    }
    if (f & (1ull << CORIO_FEAT_SOCKET))
        f |= 1ull << CORIO_FEAT_ACCEPT_MULTISHOT;
    if ((f & (1ull << CORIO_FEAT_SOCKET)) && (f & (1ull << CORIO_FEAT_ASYNC_CANCEL)))
        f |= 1ull << CORIO_FEAT_CANCEL_FD;
    if ((f & (1ull << CORIO_FEAT_SEND_ZC)) && (f & (1ull << CORIO_FEAT_BUF_RING)))
        f |= 1ull << CORIO_FEAT_RECV_MULTISHOT;
    return f;
}

uint64_t corio__probe_uring(struct corio__ring *r)
{
    uint64_t f = corio__ring_setup_feats(r) | corio__ring_kernel_feats(r) | corio__ring_probe_ops(r);
    return probe_modes(r, f);
}

long corio__read_proc_long(const char *path)
{
    FILE *fp = fopen(path, "re");
    if (!fp)
        return -1;
    long v = -1;
    if (fscanf(fp, "%ld", &v) != 1)
        v = -1;
    fclose(fp);
    return v;
}

long corio__seccomp_mode(void)
{
    FILE *fp = fopen("/proc/self/status", "re");
    if (!fp)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "Seccomp: %ld", &v) == 1)
            break;
    fclose(fp);
    return v;
}

const char *corio_strerror_setup(int err)
{
    long disabled = corio__read_proc_long("/proc/sys/kernel/io_uring_disabled");
    switch (err) {
    case 0:
        return "no error";
    case -ENOSYS:
        if (corio__seccomp_mode() == 2)
            return "io_uring_setup failed with ENOSYS under a seccomp filter: the container's "
                   "seccomp profile blocks io_uring (allow io_uring_setup/enter/register)";
        return "io_uring_setup failed with ENOSYS: this kernel has no io_uring (needs Linux 5.10+"
               " built with CONFIG_IO_URING)";
    case -EPERM:
        if (disabled == 2)
            return "io_uring_setup failed with EPERM: io_uring is disabled by the sysctl "
                   "kernel.io_uring_disabled=2";
        if (disabled == 1)
            return "io_uring_setup failed with EPERM: the sysctl kernel.io_uring_disabled=1 "
                   "allows io_uring only to the group in kernel.io_uring_group and CAP_SYS_ADMIN";
        if (corio__seccomp_mode() == 2)
            return "io_uring_setup failed with EPERM under a seccomp filter: the container's "
                   "seccomp profile blocks io_uring";
        /* Name the sysctl even when it is not the cause, so that the reader can rule it out. */
        if (disabled == 0)
            return "io_uring_setup failed with EPERM: a security policy (seccomp, LSM) refuses "
                   "io_uring (the sysctl kernel.io_uring_disabled is 0: not the cause)";
        return "io_uring_setup failed with EPERM: a security policy refuses io_uring: the sysctl "
               "kernel.io_uring_disabled (unreadable here), a seccomp filter or an LSM";
    case -ENOMEM:
        return "io_uring_setup failed with ENOMEM: no memory for the rings (on kernels before "
               "5.12 they count against RLIMIT_MEMLOCK: raise it with ulimit -l)";
    case -EMFILE:
    case -ENFILE:
        return "io_uring_setup failed: no file descriptor left for the ring (RLIMIT_NOFILE)";
    case -EINVAL:
        return "io_uring_setup failed with EINVAL: the kernel rejects every ring configuration "
               "corio tried (kernel too old?)";
    default:
        return "io_uring_setup failed (see the errno value)";
    }
}
