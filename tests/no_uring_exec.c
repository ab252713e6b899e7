/* no_uring_exec: runs a command in a process where io_uring_setup fails, as a container's seccomp
 * profile (EPERM) or a kernel without io_uring (ENOSYS) makes it fail, to test the tools there.
 *
 * usage: no_uring_exec EPERM|ENOSYS command [args...]
 * Exits 2 on bad usage, 3 when the filter cannot be installed, 127 when the command cannot be
 * run; otherwise the command's own status (this process becomes it). */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "EPERM") != 0 && strcmp(argv[1], "ENOSYS") != 0)) {
        fprintf(stderr, "usage: no_uring_exec EPERM|ENOSYS command [args...]\n");
        return 2;
    }
    unsigned err = strcmp(argv[1], "EPERM") == 0 ? EPERM : ENOSYS;
    struct sock_filter filt[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filt) / sizeof(filt[0]), .filter = filt};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "no_uring_exec: seccomp: %s\n", strerror(errno));
        return 3;
    }
    execvp(argv[2], argv + 2);
    fprintf(stderr, "no_uring_exec: %s: %s\n", argv[2], strerror(errno));
    return 127;
}
