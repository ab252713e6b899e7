/* The README's testing example ("Testing a server built on corio"): an echo server with a planted
 * bug, and the integration test its CI runs. The server's handler takes one send for done, which
 * every clean run on loopback lets pass; a short send (CORIO_FAULTS=short=...) loses the rest of
 * the reply, and the test's client, which checks every byte under a deadline, fails. Built with
 * -DFIXED, the handler sends until all is sent, and the same line passes.
 *
 * Usage: short_send. Exits 0 when every reply came back whole, 1 otherwise. */
#include <corio.h>
#include <stdio.h>
#include <string.h>

#define CLIENTS 8
#define MESSAGES 200
#define SIZE 1000

static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = corio_recv(fd, buf, sizeof(buf), 0, CORIO_FOREVER)) > 0) {
#ifdef FIXED
        if (corio_send_all(fd, buf, (size_t)n, NULL, CORIO_FOREVER) < 0)
            break;
#else
        /* The bug: a send may take fewer bytes than it was given, and the rest is lost. */
        if (corio_send(fd, buf, (size_t)n, 0, CORIO_FOREVER) < 0)
            break;
#endif
    }
    corio_close(fd);
    return 0;
}

static int accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = corio_accept(lfd, NULL, NULL, 0, CORIO_FOREVER);
        if (fd < 0)
            return fd == -ECANCELED ? 0 : fd;
        corio_spawn(NULL, NULL, serve, (void *)(intptr_t)fd);
    }
}

/* One client: MESSAGES messages, each echoed whole within 5 seconds, checked byte by byte. */
static int client(void *arg)
{
    int fd = corio_dial_tcp("127.0.0.1", (uint16_t)(intptr_t)arg, CORIO_FOREVER);
    if (fd < 0)
        return fd;
    char out[SIZE], in[SIZE];
    int err = 0;
    for (int m = 0; m < MESSAGES && !err; m++) {
        for (int i = 0; i < SIZE; i++)
            out[i] = (char)(m * 31 + i);
        ssize_t r = corio_send_all(fd, out, SIZE, NULL, CORIO_FOREVER);
        if (r >= 0)
            r = corio_recv_all(fd, in, SIZE, NULL, corio_now() + CORIO_SEC(5));
        if (r != SIZE || memcmp(in, out, SIZE) != 0) {
            fprintf(stderr, "short_send: message %d came back %s\n", m,
                    r < 0 ? strerror((int)-r) : "incomplete or wrong");
            err = -EIO;
        }
    }
    corio_close(fd);
    return err;
}

static int test_main(void *arg)
{
    (void)arg;
    int lfd = corio_listen_tcp("127.0.0.1", 0, 64, 0);
    if (lfd < 0)
        return lfd;
    corio_id server, clients[CLIENTS];
    corio_spawn(&server, NULL, accept_loop, (void *)(intptr_t)lfd);
    intptr_t port = corio_local_port(lfd);
    for (int i = 0; i < CLIENTS; i++)
        corio_spawn(&clients[i], NULL, client, (void *)port);
    int failed = 0;
    for (int i = 0; i < CLIENTS; i++) {
        int r = -1;
        corio_join(clients[i], &r, CORIO_FOREVER);
        failed += r != 0;
    }
    corio_cancel(server);
    corio_join(server, NULL, CORIO_FOREVER);
    corio_close(lfd);
    return failed;
}

int main(void)
{
    int failed = corio_run(test_main, NULL, NULL);
    printf("short_send: %s\n", failed ? "FAILED" : "ok");
    return failed != 0;
}
