/* Names of the probed features, and the explanation of a loop that could not be created. The
 * probing itself happens in ring.c, the only file that speaks the kernel's interface. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const names[CORIO_FEAT_COUNT] = {
    [CORIO_FEAT_NOP] = "nop",
    [CORIO_FEAT_READ] = "read",
    [CORIO_FEAT_WRITE] = "write",
    [CORIO_FEAT_READV] = "readv",
    [CORIO_FEAT_WRITEV] = "writev",
    [CORIO_FEAT_OPENAT] = "openat",
    [CORIO_FEAT_CLOSE] = "close",
    [CORIO_FEAT_FSYNC] = "fsync",
    [CORIO_FEAT_STATX] = "statx",
    [CORIO_FEAT_SOCKET] = "socket",
    [CORIO_FEAT_ACCEPT] = "accept",
    [CORIO_FEAT_CONNECT] = "connect",
    [CORIO_FEAT_SEND] = "send",
    [CORIO_FEAT_RECV] = "recv",
    [CORIO_FEAT_SENDMSG] = "sendmsg",
    [CORIO_FEAT_RECVMSG] = "recvmsg",
    [CORIO_FEAT_SHUTDOWN] = "shutdown",
    [CORIO_FEAT_TIMEOUT] = "timeout",
    [CORIO_FEAT_LINK_TIMEOUT] = "link_timeout",
    [CORIO_FEAT_ASYNC_CANCEL] = "async_cancel",
    [CORIO_FEAT_MSG_RING] = "msg_ring",
    [CORIO_FEAT_SEND_ZC] = "send_zc",
    [CORIO_FEAT_READ_FIXED] = "read_fixed",
    [CORIO_FEAT_WRITE_FIXED] = "write_fixed",
    [CORIO_FEAT_PROVIDE_BUFFERS] = "provide_buffers",
    [CORIO_FEAT_SINGLE_ISSUER] = "single_issuer",
    [CORIO_FEAT_DEFER_TASKRUN] = "defer_taskrun",
    [CORIO_FEAT_COOP_TASKRUN] = "coop_taskrun",
    [CORIO_FEAT_TASKRUN_FLAG] = "taskrun_flag",
    [CORIO_FEAT_SUBMIT_ALL] = "submit_all",
    [CORIO_FEAT_SQPOLL] = "sqpoll",
    [CORIO_FEAT_CQSIZE] = "cqsize",
    [CORIO_FEAT_REG_RING_FD] = "registered_ring_fd",
    [CORIO_FEAT_EXT_ARG] = "ext_arg",
    [CORIO_FEAT_NODROP] = "nodrop",
    [CORIO_FEAT_CQE_SKIP] = "cqe_skip",
    [CORIO_FEAT_FAST_POLL] = "fast_poll",
    [CORIO_FEAT_RW_CUR_POS] = "rw_cur_pos",
    [CORIO_FEAT_RECV_MULTISHOT] = "recv_multishot",
    [CORIO_FEAT_ACCEPT_MULTISHOT] = "accept_multishot",
    [CORIO_FEAT_BUF_RING] = "buf_ring",
};

const char *corio_feature_name(enum corio_feature f)
{
    if ((unsigned)f >= CORIO_FEAT_COUNT || !names[f])
        return "?";
    return names[f];
}

/* Reads the first integer of a one-line /proc file. Returns it, or -1. */
static long read_proc_long(const char *path)
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

/* Returns the "Seccomp:" mode of this process (0 none, 1 strict, 2 filter), or -1. */
static long seccomp_mode(void)
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
    long disabled = read_proc_long("/proc/sys/kernel/io_uring_disabled");
    switch (err) {
    case 0:
        return "no error";
    case -ENOSYS:
        if (seccomp_mode() == 2)
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
        if (seccomp_mode() == 2)
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
