/* A program outside the corio tree, built only against an installed corio (its headers, its
 * libraries, and the .pc files or the CMake package) with a strict consumer's flags
 * (-std=c11 -pedantic -Wall -Wextra -Werror): one coroutine does a corio_nop and a corio_sleep and,
 * built with -DCONSUMER_HTTP (and linked to libcorio_http), parses a small HTTP request too.
 * Prints "corio <version>: <what> ok" and exits 0 on success, 77 when io_uring is unavailable
 * here, and 1 on any failure. */
#include <corio.h>
#ifdef CONSUMER_HTTP
#include <corio/http.h>
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct result {
    int nop;
    int sleep;
    int64_t slept_ns;
    int http;
};

#ifdef CONSUMER_HTTP
/* Parses a whole GET head. Returns 0 when its length, method, target and Host came out right. */
static int parse_get(void)
{
    static const char head[] = "GET /hello HTTP/1.1\r\nHost: example\r\n\r\n";
    struct corio_http_parser p = CORIO_HTTP_PARSER_INIT;
    struct corio_http_request req;
    struct corio_http_header headers[4];
    ssize_t n = corio_http_parse_request(&p, head, sizeof(head) - 1, NULL, &req, headers, 4);
    if (n != (ssize_t)sizeof(head) - 1 || req.method != CORIO_HTTP_GET || req.target_len != 6 ||
        memcmp(req.target, "/hello", 6) != 0 || req.host_len != 7)
        return -1;
    return 0;
}
#define CONSUMER_WHAT "nop, sleep and http parse"
#else
static int parse_get(void)
{
    return 0;
}
#define CONSUMER_WHAT "nop and sleep"
#endif

static int body(void *arg)
{
    struct result *r = arg;
    r->nop = corio_nop();
    int64_t t0 = corio_now();
    r->sleep = corio_sleep(t0 + CORIO_MS(10));
    r->slept_ns = corio_now() - t0;
    r->http = parse_get();
    return 0;
}

int main(void)
{
    struct corio_loop *loop;
    int err = corio_loop_new(&loop, NULL);
    if (err == -ENOSYS || err == -EPERM) {
        printf("SKIP: io_uring unavailable: %s\n", corio_strerror_setup(err));
        return 77;
    }
    if (err) {
        fprintf(stderr, "corio_loop_new: %d: %s\n", err, corio_strerror_setup(err));
        return 1;
    }
    struct result r = {-1, -1, 0, -1};
    int spawned = corio_spawn(NULL, loop, body, &r);
    int ran = spawned == 0 ? corio_loop_run(loop) : -1;
    corio_loop_free(loop);
    if (spawned || ran || r.nop != 0 || r.sleep != 0 || r.slept_ns < CORIO_MS(10) || r.http) {
        fprintf(stderr,
                "consumer failed: spawn %d, run %d, nop %d, sleep %d after %lld ns, http %d\n",
                spawned, ran, r.nop, r.sleep, (long long)r.slept_ns, r.http);
        return 1;
    }
    printf("corio %s: %s ok\n", CORIO_VERSION_STRING, CONSUMER_WHAT);
    return 0;
}
