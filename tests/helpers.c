#include "helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

bool t_uring_unavailable(void)
{
    struct corio_loop *l;
    int err = corio_loop_new(&l, NULL);
    if (err == -ENOSYS || err == -EPERM) {
        printf("SKIP: io_uring unavailable: %s\n", corio_strerror_setup(err));
        return true;
    }
    if (err) {
        fprintf(stderr, "corio_loop_new failed: %s\n", strerror(-err));
        abort();
    }
    corio_loop_free(l);
    return false;
}

int t_loop_setup(void **state)
{
    struct corio_loop *l;
    int err = corio_loop_new(&l, NULL);
    if (err)
        return -1;
    *state = l;
    return 0;
}

int t_loop_teardown(void **state)
{
    struct corio_loop *l = *state;
    corio_loop_free(l);
    return 0;
}

struct run1 {
    corio_fn *fn;
    void *arg;
    int result;
};

static int run1_body(void *p)
{
    struct run1 *r = p;
    r->result = r->fn(r->arg);
    return r->result;
}

int t_run1(struct corio_loop *loop, corio_fn *fn, void *arg)
{
    struct run1 r = {fn, arg, -12345};
    assert_int_equal(corio_spawn(loop, run1_body, &r, NULL), 0);
    assert_int_equal(corio_loop_run(loop), 0);
    return r.result;
}

int t_tcp_pair(int sv[2])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &len)) {
        close(l);
        return -errno;
    }
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a))) {
        int err = -errno;
        close(l);
        if (c >= 0)
            close(c);
        return err;
    }
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    int err = s < 0 ? -errno : 0;
    close(l);
    if (err) {
        close(c);
        return err;
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sv[0] = s;
    sv[1] = c;
    return 0;
}

int t_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

int t_tmpfile(void)
{
    const char *dir = getenv("TMPDIR");
    int fd = open(dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        char path[] = "/tmp/corio-test-XXXXXX";
        fd = mkstemp(path);
        if (fd >= 0)
            unlink(path);
    }
    return fd;
}

static inline uint8_t pattern(uint64_t seed, uint64_t pos)
{
    uint64_t x = (pos >> 3) * 0x9e3779b97f4a7c15ull + seed;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 32;
    return (uint8_t)(x >> ((pos & 7) * 8));
}

void t_fill(void *buf, size_t len, uint64_t seed, uint64_t pos0)
{
    uint8_t *b = buf;
    for (size_t i = 0; i < len; i++)
        b[i] = pattern(seed, pos0 + i);
}

long t_check(const void *buf, size_t len, uint64_t seed, uint64_t pos0)
{
    const uint8_t *b = buf;
    for (size_t i = 0; i < len; i++)
        if (b[i] != pattern(seed, pos0 + i))
            return (long)i;
    return -1;
}
