/* A TCP echo server on corio: one coroutine per connection. Usage: echo [port] */
#include <corio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = corio_recv(fd, buf, sizeof(buf), 0, CORIO_FOREVER)) > 0)
        if (corio_send_all(fd, buf, (size_t)n, NULL, CORIO_FOREVER) < 0)
            break;
    corio_close(fd);
    return 0;
}

static int server(void *arg)
{
    int lfd = corio_listen_tcp("0.0.0.0", (uint16_t)atoi(arg), 1024, 0);
    if (lfd < 0)
        return lfd;
    for (;;) {
        int fd = corio_accept(lfd, NULL, NULL, 0, CORIO_FOREVER);
        if (fd >= 0)
            corio_spawn(NULL, NULL, serve, (void *)(intptr_t)fd); /* detached */
        else if (fd == -ECANCELED)
            return corio_close(lfd);
    }
}

int main(int argc, char **argv)
{
    int err = corio_run(server, argc > 1 ? argv[1] : "7000", NULL);
    if (err < 0)
        fprintf(stderr, "echo: %s\n", strerror(-err));
    return err < 0;
}
