/* A program outside the corio tree, built only against an installed corio (its header, its
 * library, and corio.pc or the CMake package): one coroutine does a corio_nop and a corio_sleep.
 * Prints the header's version and exits 0 on success, 77 when io_uring is unavailable here, and 1
 * on any failure. */
#include <corio.h>

#include <errno.h>
#include <stdio.h>

struct result {
    int nop;
    int sleep;
    int64_t slept_ns;
};

static int body(void *arg)
{
    struct result *r = arg;
    r->nop = corio_nop();
    int64_t t0 = corio_now();
    r->sleep = corio_sleep(t0 + CORIO_MS(10));
    r->slept_ns = corio_now() - t0;
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
    struct result r = {-1, -1, 0};
    int spawned = corio_spawn(NULL, loop, body, &r);
    int ran = spawned == 0 ? corio_loop_run(loop) : -1;
    corio_loop_free(loop);
    if (spawned || ran || r.nop != 0 || r.sleep != 0 || r.slept_ns < CORIO_MS(10)) {
        fprintf(stderr, "consumer failed: spawn %d, run %d, nop %d, sleep %d after %lld ns\n",
                spawned, ran, r.nop, r.sleep, (long long)r.slept_ns);
        return 1;
    }
    printf("corio %s: nop and sleep ok\n", CORIO_VERSION_STRING);
    return 0;
}
