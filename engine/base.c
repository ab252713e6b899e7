/* The leaf of the engine: the panic and assertion paths, the clock, and the names of the probed
 * features. It depends on nothing but libc, so the ring, the stacks and the fault seam link with
 * it alone. */
#include "base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef CORIO__VALGRIND
#include <valgrind/valgrind.h>

bool corio__on_valgrind;

/* Runs before main: valgrind is there from the first instruction or not at all. */
__attribute__((constructor)) static void detect_valgrind(void)
{
    corio__on_valgrind = RUNNING_ON_VALGRIND;
}
#endif

#ifdef CORIO_TESTING
void (*corio__panic_hook)(void);

static void before_abort(void)
{
    if (corio__panic_hook)
        corio__panic_hook();
}
#else
static inline void before_abort(void)
{
}
#endif

_Noreturn void corio__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "corio: assertion failed: %s (%s:%d)\n", expr, file, line);
    before_abort();
    abort();
}

_Noreturn void corio__panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("corio: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    before_abort();
    abort();
}

CORIO__TLS int64_t corio__clock_skew;

int64_t corio__now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The skew is added without a test: it is 0 on every thread that never ran a loop on the virtual
 * clock, and one load and one add cost less than a branch on whether it is in use. */
int64_t corio_now(void)
{
    return corio__now_real() + corio__clock_skew;
}

void corio__clock_jump(int64_t to)
{
    int64_t now = corio_now();
    if (to > now)
        corio__clock_skew += to - now;
}

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
    [CORIO_FEAT_CANCEL_FD] = "cancel_fd",
    [CORIO_FEAT_POLL] = "poll",
    [CORIO_FEAT_POLL_MULTISHOT] = "poll_multishot",
};

const char *corio_backend_name(enum corio_backend b)
{
    switch (b) {
    case CORIO_BACKEND_AUTO:
        return "auto";
    case CORIO_BACKEND_IO_URING:
        return "io_uring";
    case CORIO_BACKEND_EPOLL:
        return "epoll";
    }
    return "?";
}

const char *corio_feature_name(enum corio_feature f)
{
    if ((unsigned)f >= CORIO_FEAT_COUNT || !names[f])
        return "?";
    return names[f];
}

void corio__text_put(struct corio__text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->pos < t->len ? t->len - t->pos : 0;
    int n = vsnprintf(room ? t->buf + t->pos : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->pos += (size_t)n;
}
