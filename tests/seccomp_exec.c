/* seccomp_exec: runs a command under an allow-list seccomp filter, as a container runtime runs a
 * process under a --security-opt seccomp= profile whose default action is SCMP_ACT_ERRNO: the
 * system calls numbered in LIST are allowed and every other one fails with EPERM.
 *
 * usage: seccomp_exec NR,NR,... command [args...]
 * Exits 2 on bad usage, 3 when the filter cannot be installed, 127 when the command cannot be
 * run; otherwise the command's own status (this process becomes it). */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define MAX_NR 250 /* a conditional jump reaches at most 255 instructions ahead */

int main(int argc, char **argv)
{
    long nrs[MAX_NR];
    unsigned n = 0;
    char *p = argc >= 3 ? argv[1] : NULL, *end;
    while (p && *p && n < MAX_NR) {
        nrs[n++] = strtol(p, &end, 10);
        if (end == p || (*end && *end != ','))
            p = NULL;
        else
            p = *end ? end + 1 : end;
    }
    if (!p || *p) {
        fprintf(stderr, "usage: seccomp_exec NR,NR,... command [args...]\n");
        return 2;
    }
    /* Load the number; one test per allowed number, jumping to ALLOW; else ERRNO(EPERM). */
    struct sock_filter filt[MAX_NR + 3];
    filt[0] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (unsigned i = 0; i < n; i++)
        filt[1 + i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nrs[i],
                                                   (unsigned char)(n - i), 0);
    filt[n + 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    filt[n + 2] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {.len = (unsigned short)(n + 3), .filter = filt};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "seccomp_exec: seccomp: %s\n", strerror(errno));
        return 3;
    }
    execvp(argv[2], argv + 2);
    fprintf(stderr, "seccomp_exec: %s: %s\n", argv[2], strerror(errno));
    return 127;
}
