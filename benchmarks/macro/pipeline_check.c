/*
 * pipeline_check: sends N pipelined requests in one write and checks that the server answers each,
 * in order, as TechEmpower's plaintext and JSON tests specify. The requests alternate between
 * GET /plaintext and GET /json, so a response that came out of order has the wrong body. Each
 * response must be "HTTP/1.1 200 OK" with Date and Server fields, the test's Content-Type, and a
 * Content-Length that frames exactly the expected body; nothing may follow the N-th.
 *
 * Usage: pipeline_check PORT [N] (N defaults to 16; the server listens on 127.0.0.1). Prints
 * "pipeline_check: N responses in order" and exits 0, or prints what was wrong and exits 1.
 * It needs nothing but libc: it checks the epoll baseline and corio-httpd alike.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_REQS 256
/* Room for every response: each is under 256 bytes. */
#define IN_SIZE (MAX_REQS * 512)

struct expect {
    const char *path;
    const char *type;
    const char *body;
};

static const struct expect tests[2] = {
    {"/plaintext", "text/plain", "Hello, World!"},
    {"/json", "application/json", "{\"message\":\"Hello, World!\"}"},
};

static int fail(const char *what, int i)
{
    fprintf(stderr, "pipeline_check: response %d: %s\n", i, what);
    return 1;
}

/* The value of header @name in the head [@head, @end), without its OWS, into @out; false if the
 * head has no such field. */
static bool header(const char *head, const char *end, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *l = strstr(head, "\r\n") + 2; l < end; l = strstr(l, "\r\n") + 2) {
        if (strncasecmp(l, name, n) != 0 || l[n] != ':')
            continue;
        const char *v = l + n + 1;
        while (*v == ' ')
            v++;
        size_t len = (size_t)(strstr(v, "\r\n") - v);
        if (len >= cap)
            len = cap - 1;
        memcpy(out, v, len);
        out[len] = '\0';
        return true;
    }
    return false;
}

/* Checks the response at @p (NUL-terminated input) against @e; sets *@used to its length.
 * Returns 0, 1 when it is wrong, or -1 when it is not all here yet. */
static int check_one(const char *p, const struct expect *e, int i, size_t *used)
{
    const char *end = strstr(p, "\r\n\r\n");
    if (!end)
        return -1;
    char v[128];
    if (strncmp(p, "HTTP/1.1 200 OK\r\n", 17) != 0)
        return fail("status line is not HTTP/1.1 200 OK", i);
    if (!header(p, end + 2, "Date", v, sizeof(v)) || strlen(v) != 29)
        return fail("no Date field of 29 bytes", i);
    if (!header(p, end + 2, "Server", v, sizeof(v)) || v[0] == '\0')
        return fail("no Server field", i);
    if (!header(p, end + 2, "Content-Type", v, sizeof(v)) || strcmp(v, e->type) != 0)
        return fail(e->type[0] == 't' ? "Content-Type is not text/plain"
                                      : "Content-Type is not application/json",
                    i);
    if (!header(p, end + 2, "Content-Length", v, sizeof(v)) ||
        strtoul(v, NULL, 10) != strlen(e->body))
        return fail("Content-Length is not the body's", i);
    const char *body = end + 4;
    size_t blen = strlen(e->body);
    if (strlen(body) < blen)
        return -1;
    if (memcmp(body, e->body, blen) != 0)
        return fail(i % 2 ? "body is not the JSON hello (out of order?)"
                          : "body is not Hello, World! (out of order?)",
                    i);
    *used = (size_t)(body + blen - p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: pipeline_check PORT [N]\n");
        return 2;
    }
    int port = atoi(argv[1]), n = argc > 2 ? atoi(argv[2]) : 16;
    if (port <= 0 || port > 65535 || n <= 0 || n > MAX_REQS) {
        fprintf(stderr, "pipeline_check: bad port or N (1..%d)\n", MAX_REQS);
        return 2;
    }
    char req[MAX_REQS * 64];
    size_t rlen = 0;
    for (int i = 0; i < n; i++)
        rlen += (size_t)snprintf(req + rlen, sizeof(req) - rlen,
                                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", tests[i % 2].path);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("pipeline_check: connect");
        return 1;
    }
    /* One write: the server sees every request in what one read returns. */
    if (send(fd, req, rlen, MSG_NOSIGNAL) != (ssize_t)rlen) {
        perror("pipeline_check: send (not all in one write)");
        return 1;
    }
    static char in[IN_SIZE + 1];
    size_t have = 0, off = 0;
    int done = 0;
    while (done < n) {
        in[have] = '\0';
        size_t used;
        int r = check_one(in + off, &tests[done % 2], done, &used);
        if (r > 0)
            return 1;
        if (r == 0) {
            off += used;
            done++;
            continue;
        }
        ssize_t got = recv(fd, in + have, IN_SIZE - have, 0);
        if (got <= 0) {
            fprintf(stderr, "pipeline_check: %d of %d responses, then %s\n", done, n,
                    got == 0 ? "EOF" : strerror(errno));
            return 1;
        }
        have += (size_t)got;
    }
    /* Nothing more: a short wait for bytes that should not come. */
    tv = (struct timeval){.tv_usec = 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t extra = have > off ? (ssize_t)(have - off) : recv(fd, in, IN_SIZE, 0);
    if (extra > 0) {
        fprintf(stderr, "pipeline_check: %zd bytes after the %d-th response\n", extra, n);
        return 1;
    }
    close(fd);
    printf("pipeline_check: %d responses in order\n", n);
    return 0;
}
