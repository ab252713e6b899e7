/* corrupt_echo: a TCP echo server that corrupts exactly one byte, for tests/load_corrupt.sh.
 *
 * It echoes every connection like corio-echo, except that the byte at offset --at of the first
 * accepted connection's stream is XORed with 0x5a on its way back; every other byte, and every
 * other connection, is echoed unchanged. A load generator that verifies what comes back must
 * report exactly that byte. Prints "ready port=N" once listening (--port 0 picks a free port),
 * and exits by itself after --lifetime seconds so that a test that dies cannot leave it behind;
 * otherwise it ends with the signal that stops it. */
#include <corio.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t port;
static uint64_t at = 1000;
static int64_t lifetime_s = 60;
static bool claimed; /* the corrupted connection has been picked */

static int echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    bool victim = !claimed;
    claimed = true;
    size_t cap = 16384;
    char *buf = malloc(cap);
    uint64_t off = 0;
    ssize_t n;
    while (buf && (n = corio_recv(fd, buf, cap, 0, CORIO_FOREVER)) > 0) {
        if (victim && at >= off && at < off + (uint64_t)n)
            buf[at - off] ^= 0x5a;
        off += (uint64_t)n;
        if (corio_send_all(fd, buf, (size_t)n, NULL, CORIO_FOREVER) < 0)
            break;
    }
    free(buf);
    corio_close(fd);
    return 0;
}

static int lifetime(void *arg)
{
    (void)arg;
    if (corio_sleep(corio_now() + CORIO_SEC(lifetime_s)) == 0) {
        fprintf(stderr, "corrupt_echo: lifetime of %lld s is over\n", (long long)lifetime_s);
        corio_loop_stop(corio_loop_current());
    }
    return 0;
}

static int server(void *arg)
{
    (void)arg;
    int lfd = corio_listen_tcp("127.0.0.1", port, 128, 0);
    if (lfd < 0) {
        fprintf(stderr, "corrupt_echo: listen: %s\n", strerror(-lfd));
        corio_loop_stop(corio_loop_current());
        return lfd;
    }
    printf("ready port=%d\n", corio_local_port(lfd));
    fflush(stdout);
    for (;;) {
        int fd = corio_accept(lfd, NULL, NULL, 0, CORIO_FOREVER);
        if (fd == -ECANCELED)
            break;
        if (fd < 0)
            continue;
        if (corio_spawn(NULL, NULL, echo_conn, (void *)(intptr_t)fd) != 0)
            corio_close(fd);
    }
    corio_close(lfd);
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = (uint16_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--at") == 0 && i + 1 < argc) {
            at = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--lifetime") == 0 && i + 1 < argc) {
            lifetime_s = strtoll(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: corrupt_echo [--port N] [--at OFFSET] [--lifetime SECS]\n");
            return 2;
        }
    }
    struct corio_loop *loop;
    int err = corio_loop_new(&loop, NULL);
    if (err) {
        fprintf(stderr, "corrupt_echo: %s\n", corio_strerror_setup(err));
        return err == -ENOSYS || err == -EPERM ? 77 : 1;
    }
    err = corio_spawn(NULL, loop, server, NULL);
    if (!err)
        err = corio_spawn(NULL, loop, lifetime, NULL);
    if (!err)
        err = corio_loop_run(loop);
    corio_loop_free(loop);
    return err ? 1 : 0;
}
