/*
 * corio: stackful coroutines on io_uring.
 *
 * One loop per thread owns one io_uring. Coroutines submit their I/O as SQEs and suspend on
 * futures; the loop submits everything an iteration queued with at most one io_uring_enter, drains
 * the completion queue, resolves the futures and resumes their coroutines.
 *
 * Conventions that hold for every call in this header:
 * - Results are kernel results: >= 0 is success (a count, an fd, or 0), a negative value is -errno.
 *   errno itself is never set.
 * - Deadlines are absolute CLOCK_MONOTONIC nanoseconds (corio_now() + CORIO_MS(100)), or
 *   CORIO_FOREVER. A call whose deadline passes returns -ETIMEDOUT.
 * - A call that suspends may only be made inside a coroutine; elsewhere it returns -EPERM.
 * - Buffers, addresses and futures passed to a call are borrowed until it returns. A call never
 *   returns while the kernel may still touch them, even when it times out or is cancelled.
 * - Cancelling a coroutine (corio_cancel) wakes it from its current wait with -ECANCELED, and every
 *   later call of it that would suspend returns -ECANCELED at once, except corio_close, so that it
 *   can run its clean-up and end.
 */
#ifndef CORIO_H
#define CORIO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "corio/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CORIO_STATIC_DEFINE)
#define CORIO_API
#elif defined(CORIO_BUILDING)
#define CORIO_API __attribute__((visibility("default")))
#else
#define CORIO_API
#endif

struct statx;

/* ==== time =================================================================================== */

/* A deadline that never passes. */
#define CORIO_FOREVER ((int64_t)-1)
#define CORIO_NS(n) ((int64_t)(n))
#define CORIO_US(n) ((int64_t)(n)*1000)
#define CORIO_MS(n) ((int64_t)(n)*1000000)
#define CORIO_SEC(n) ((int64_t)(n)*1000000000)

/* Reads CLOCK_MONOTONIC. Returns nanoseconds since an arbitrary point, the base of deadlines. */
CORIO_API int64_t corio_now(void);

/* ==== loop =================================================================================== */

struct corio_loop;

/* Setup flags, for corio_loop_opts.refuse (a test hook) and corio_loop_has(). */
enum corio_feature {
    /* Operations, probed with IORING_REGISTER_PROBE. */
    CORIO_FEAT_NOP,
    CORIO_FEAT_READ,
    CORIO_FEAT_WRITE,
    CORIO_FEAT_READV,
    CORIO_FEAT_WRITEV,
    CORIO_FEAT_OPENAT,
    CORIO_FEAT_CLOSE,
    CORIO_FEAT_FSYNC,
    CORIO_FEAT_STATX,
    CORIO_FEAT_SOCKET,
    CORIO_FEAT_ACCEPT,
    CORIO_FEAT_CONNECT,
    CORIO_FEAT_SEND,
    CORIO_FEAT_RECV,
    CORIO_FEAT_SENDMSG,
    CORIO_FEAT_RECVMSG,
    CORIO_FEAT_SHUTDOWN,
    CORIO_FEAT_TIMEOUT,
    CORIO_FEAT_LINK_TIMEOUT,
    CORIO_FEAT_ASYNC_CANCEL,
    CORIO_FEAT_MSG_RING,
    CORIO_FEAT_SEND_ZC,
    CORIO_FEAT_READ_FIXED,
    CORIO_FEAT_WRITE_FIXED,
    CORIO_FEAT_PROVIDE_BUFFERS,
    /* Ring setup flags this loop's ring was created with. */
    CORIO_FEAT_SINGLE_ISSUER,
    CORIO_FEAT_DEFER_TASKRUN,
    CORIO_FEAT_COOP_TASKRUN,
    CORIO_FEAT_TASKRUN_FLAG,
    CORIO_FEAT_SUBMIT_ALL,
    CORIO_FEAT_SQPOLL,
    CORIO_FEAT_CQSIZE,
    /* Ring features the kernel reported or corio set up. */
    CORIO_FEAT_REG_RING_FD,
    CORIO_FEAT_EXT_ARG,
    CORIO_FEAT_NODROP,
    CORIO_FEAT_CQE_SKIP,
    CORIO_FEAT_FAST_POLL,
    CORIO_FEAT_RW_CUR_POS,
    CORIO_FEAT_COUNT
};

/* Options for corio_loop_new(). Zero means the default for every field. */
struct corio_loop_opts {
    unsigned sq_entries;      /* SQ size, a power of two; default 256. */
    unsigned cq_entries;      /* CQ size; default 4 x sq_entries. */
    size_t stack_size;        /* usable bytes of each coroutine stack; default 64 KiB. */
    unsigned stack_cache;     /* stacks kept for reuse once their coroutines end; default 1024. */
    unsigned flags;           /* CORIO_LOOP_* below. */
    unsigned sqpoll_idle_ms;  /* with CORIO_LOOP_SQPOLL: poller idle time; default 1000. */
    int sqpoll_cpu;           /* with CORIO_LOOP_SQPOLL: CPU of the poller + 1; 0: not pinned. */
    uint64_t refuse;          /* test hook: bits (1 << CORIO_FEAT_x) of setup flags to treat as
                                 refused by the kernel, to exercise the fallbacks. */
};

#define CORIO_LOOP_SQPOLL 0x1u        /* a kernel thread polls the SQ: no io_uring_enter to submit. */
#define CORIO_LOOP_NO_SIGSEGV 0x2u    /* do not install the stack-overflow SIGSEGV reporter. */

/* Counters of one loop, read with corio_stats(). */
struct corio_stats {
    uint64_t sqes;          /* SQEs handed to the kernel. */
    uint64_t enters;        /* io_uring_enter system calls. */
    uint64_t cqes;          /* CQEs reaped. */
    uint64_t cq_overflows;  /* times the kernel reported CQ overflow. */
    uint64_t enobufs;       /* -ENOBUFS re-arms of buffer-ring receives. */
    uint64_t switches;      /* coroutine context switches (into or out of a coroutine). */
    uint64_t spawns;        /* coroutines started. */
    uint64_t iterations;    /* loop iterations. */
};

/* Creates a loop with its io_uring, owned by the calling thread: only this thread may run it. The
 * kernel's features are probed once here (corio_loop_has). Returns 0 and sets *out, or -errno:
 * -ENOSYS when the kernel has no io_uring, -EPERM when a sysctl (kernel.io_uring_disabled) or a
 * seccomp filter refuses it, -ENOMEM; corio_strerror_setup() explains the cause in words. */
CORIO_API int corio_loop_new(struct corio_loop **out, const struct corio_loop_opts *opts);

/* Frees a loop that is not running. Coroutines still alive are cancelled and run to their end
 * first, so that no SQE refers to freed memory. NULL is a no-op. Returns nothing. */
CORIO_API void corio_loop_free(struct corio_loop *loop);

/* Runs the loop on the calling thread until no coroutine is left, or until corio_loop_stop() was
 * called and every coroutine has ended. Returns 0, or -errno if the ring failed (-EBUSY if the loop
 * is already running, -EPERM on a thread other than its creator's). */
CORIO_API int corio_loop_run(struct corio_loop *loop);

/* Asks a running loop to stop: every coroutine is cancelled, and corio_loop_run() returns once all
 * have ended. Call it from the loop's thread (from a coroutine or between runs). Returns nothing. */
CORIO_API void corio_loop_stop(struct corio_loop *loop);

/* Returns the loop running on the calling thread, or NULL. */
CORIO_API struct corio_loop *corio_loop_current(void);

/* Returns true if @feat is available on @loop (see enum corio_feature). */
CORIO_API bool corio_loop_has(const struct corio_loop *loop, enum corio_feature feat);

/* Returns the name of a feature ("recv", "defer_taskrun", ...), or "?" for an unknown value. */
CORIO_API const char *corio_feature_name(enum corio_feature feat);

/* Returns the counters of @loop; the pointer stays valid, and current, for the loop's life. */
CORIO_API const struct corio_stats *corio_stats(const struct corio_loop *loop);

/* Explains why corio_loop_new() failed with @err, naming the cause where it can be found
 * (kernel.io_uring_disabled, a seccomp filter, a kernel without io_uring, RLIMIT_MEMLOCK). Returns a
 * static string. */
CORIO_API const char *corio_strerror_setup(int err);

/* ==== coroutines ============================================================================= */

/* A coroutine's body. Its return value is what corio_join() reports, by convention >= 0 or -errno. */
typedef int corio_fn(void *arg);

/* A coroutine handle: unique within its loop, never reused, 0 is never valid. */
typedef uint64_t corio_id;

/* Starts a coroutine on @loop (NULL: the calling thread's running loop). It runs when the loop next
 * schedules it, not during this call. If @out is NULL the coroutine is detached: it is reclaimed
 * when it ends. Otherwise *out is its handle, and it stays joinable until corio_join() or
 * corio_detach(). Returns 0, or -errno: -ENOMEM (no stack), -EINVAL (no loop). */
CORIO_API int corio_spawn(struct corio_loop *loop, corio_fn *fn, void *arg, corio_id *out);

/* Waits until coroutine @co ends and stores its return value in *result (if not NULL); the handle
 * is then spent. May suspend. Returns 0, or -errno: -ESRCH (no such coroutine, or already joined or
 * detached), -EDEADLK (joining itself), -EINVAL (another coroutine is already joining it),
 * -ETIMEDOUT, -ECANCELED (the caller was cancelled; @co runs on and stays joinable). */
CORIO_API int corio_join(corio_id co, int *result, int64_t deadline);

/* Lets coroutine @co be reclaimed when it ends, without a join. Returns 0 or -ESRCH. */
CORIO_API int corio_detach(corio_id co);

/* Cancels coroutine @co: it is woken from its current wait with -ECANCELED (an in-flight op is
 * cancelled in the kernel, and still awaited), and its later waits fail with -ECANCELED. It does not
 * wait for @co to end. Returns 0, or -ESRCH if @co has ended or does not exist. */
CORIO_API int corio_cancel(corio_id co);

/* Lets every other runnable coroutine run once, then resumes the caller. Returns 0, -ECANCELED if
 * the caller is cancelled, or -EPERM outside a coroutine. */
CORIO_API int corio_yield(void);

/* Returns the calling coroutine's handle, or 0 outside a coroutine. */
CORIO_API corio_id corio_self(void);

/* Returns true when the caller is a coroutine that has been cancelled. */
CORIO_API bool corio_cancelled(void);

/* Creates a loop, runs @fn(@arg) in a coroutine on it until every coroutine has ended, and frees
 * the loop. Returns @fn's return value, or -errno if the loop could not be created. */
CORIO_API int corio_run(corio_fn *fn, void *arg, const struct corio_loop_opts *opts);

/* ==== futures ================================================================================ */

/* The state of one started operation. It lives in the caller's frame (no allocation), must not be
 * moved while pending, and belongs to the coroutine that started it: only that coroutine awaits it.
 * A coroutine that ends with futures pending has them cancelled and awaited before its stack is
 * reused. */
struct corio_future {
    _Alignas(8) unsigned char opaque_[64];
};

/* Waits for @f to complete. May suspend. Returns the op's result (>= 0, or -errno, -ETIMEDOUT when
 * its deadline passed, -ECANCELED when it or the caller was cancelled); -EINVAL if @f was never
 * started. Awaiting a completed future again returns the same result. */
CORIO_API ssize_t corio_await(struct corio_future *f);

/* Waits until at least one of @fs[0..n) has completed. May suspend. Returns the index of a
 * completed one (the lowest), or -errno: -ETIMEDOUT, -ECANCELED (the caller was cancelled), -EINVAL.
 * The futures that are still pending stay in flight: await or cancel them. */
CORIO_API int corio_await_any(struct corio_future *const *fs, size_t n, int64_t deadline);

/* Waits until all of @fs[0..n) have completed. May suspend. Returns 0, or -errno: -ETIMEDOUT,
 * -ECANCELED (the caller was cancelled), -EINVAL; the pending ones stay in flight then. */
CORIO_API int corio_await_all(struct corio_future *const *fs, size_t n, int64_t deadline);

/* Returns true if @f has completed (its result is final). */
CORIO_API bool corio_future_done(const struct corio_future *f);

/* Returns the result of a completed future (as corio_await), or -EINPROGRESS if it is pending. */
CORIO_API ssize_t corio_future_result(const struct corio_future *f);

/* Asks the kernel to cancel the op behind @f; the caller must still await it, and the op may
 * complete with its own result if it won the race. Returns 0, or -EALREADY if @f is done. */
CORIO_API int corio_future_cancel(struct corio_future *f);

/* ==== operations =============================================================================
 * Each operation comes as a call that suspends until it completes (corio_read) and as a start form
 * that submits it and returns at once (corio_read_start); corio_await() then gives the same result.
 * A start form returns 0, or -errno if it could not start, in which case @f is already completed
 * with that error. @off of -1 means the file's current position (pipes and sockets need -1). */

/* Completes at once in the kernel: the cheapest round trip. Returns 0. */
CORIO_API int corio_nop(void);
CORIO_API int corio_nop_start(struct corio_future *f);

/* Suspends the caller until @deadline. Returns 0, or -ECANCELED. */
CORIO_API int corio_sleep(int64_t deadline);
CORIO_API int corio_sleep_start(struct corio_future *f, int64_t deadline);

/* Reads up to @len bytes at @off. Returns bytes read (0 at EOF), or -errno. */
CORIO_API ssize_t corio_read(int fd, void *buf, size_t len, int64_t off, int64_t deadline);
CORIO_API int corio_read_start(struct corio_future *f, int fd, void *buf, size_t len, int64_t off,
                               int64_t deadline);

/* Writes up to @len bytes at @off. Returns bytes written, or -errno. */
CORIO_API ssize_t corio_write(int fd, const void *buf, size_t len, int64_t off, int64_t deadline);
CORIO_API int corio_write_start(struct corio_future *f, int fd, const void *buf, size_t len,
                                int64_t off, int64_t deadline);

/* Vectored read at @off; @iov must stay valid until completion. Returns bytes read, or -errno. */
CORIO_API ssize_t corio_readv(int fd, const struct iovec *iov, int iovcnt, int64_t off,
                              int64_t deadline);
CORIO_API int corio_readv_start(struct corio_future *f, int fd, const struct iovec *iov, int iovcnt,
                                int64_t off, int64_t deadline);

/* Vectored write at @off. Returns bytes written, or -errno. */
CORIO_API ssize_t corio_writev(int fd, const struct iovec *iov, int iovcnt, int64_t off,
                               int64_t deadline);
CORIO_API int corio_writev_start(struct corio_future *f, int fd, const struct iovec *iov,
                                 int iovcnt, int64_t off, int64_t deadline);

/* Reads exactly @len bytes, looping over short reads (advancing @off unless it is -1). Stores the
 * bytes transferred in *done if not NULL, also on error. Returns @len, fewer at EOF, or -errno. */
CORIO_API ssize_t corio_read_all(int fd, void *buf, size_t len, int64_t off, size_t *done,
                                 int64_t deadline);

/* Writes all @len bytes, looping over short writes. Stores the bytes transferred in *done if not
 * NULL, also on error. Returns @len, or -errno. */
CORIO_API ssize_t corio_write_all(int fd, const void *buf, size_t len, int64_t off, size_t *done,
                                  int64_t deadline);

/* Opens @path relative to @dirfd (AT_FDCWD: the working directory); O_CLOEXEC is always added.
 * Returns the new fd, owned by the caller, or -errno. */
CORIO_API int corio_openat(int dirfd, const char *path, int flags, mode_t mode, int64_t deadline);
CORIO_API int corio_openat_start(struct corio_future *f, int dirfd, const char *path, int flags,
                                 mode_t mode, int64_t deadline);

/* Closes @fd. Not affected by cancellation, so that cancelled coroutines can clean up. Returns 0 or
 * -errno (-EBADF). */
CORIO_API int corio_close(int fd);
CORIO_API int corio_close_start(struct corio_future *f, int fd);

/* Flushes @fd to storage; @datasync nonzero is fdatasync. Returns 0 or -errno. */
CORIO_API int corio_fsync(int fd, int datasync, int64_t deadline);
CORIO_API int corio_fsync_start(struct corio_future *f, int fd, int datasync, int64_t deadline);

/* statx(2) of @path relative to @dirfd into *@out. Returns 0 or -errno. */
CORIO_API int corio_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out,
                          int64_t deadline);
CORIO_API int corio_statx_start(struct corio_future *f, int dirfd, const char *path, int flags,
                                unsigned mask, struct statx *out, int64_t deadline);

/* ==== net ==================================================================================== */

/* Creates a socket; SOCK_CLOEXEC is always added. Uses IORING_OP_SOCKET where the kernel has it and
 * socket(2) otherwise. Returns the fd, owned by the caller, or -errno. */
CORIO_API int corio_socket(int domain, int type, int protocol);
CORIO_API int corio_socket_start(struct corio_future *f, int domain, int type, int protocol);

/* Accepts a connection on listener @fd; @flags are accept4's (SOCK_CLOEXEC is always added). @addr
 * and @addrlen may be NULL. Returns the new fd, owned by the caller, or -errno. */
CORIO_API int corio_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                           int64_t deadline);
CORIO_API int corio_accept_start(struct corio_future *f, int fd, struct sockaddr *addr,
                                 socklen_t *addrlen, int flags, int64_t deadline);

/* Connects @fd to @addr. Returns 0 or -errno (-ECONNREFUSED, -ETIMEDOUT, ...). */
CORIO_API int corio_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
                            int64_t deadline);
CORIO_API int corio_connect_start(struct corio_future *f, int fd, const struct sockaddr *addr,
                                  socklen_t addrlen, int64_t deadline);

/* Sends up to @len bytes; MSG_NOSIGNAL is always added, so a closed peer gives -EPIPE, never
 * SIGPIPE. Returns bytes sent, or -errno. */
CORIO_API ssize_t corio_send(int fd, const void *buf, size_t len, int flags, int64_t deadline);
CORIO_API int corio_send_start(struct corio_future *f, int fd, const void *buf, size_t len,
                               int flags, int64_t deadline);

/* Receives up to @len bytes. Returns bytes received, 0 when the peer has shut down, or -errno. */
CORIO_API ssize_t corio_recv(int fd, void *buf, size_t len, int flags, int64_t deadline);
CORIO_API int corio_recv_start(struct corio_future *f, int fd, void *buf, size_t len, int flags,
                               int64_t deadline);

/* sendmsg(2); MSG_NOSIGNAL is always added. Returns bytes sent, or -errno. */
CORIO_API ssize_t corio_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline);
CORIO_API int corio_sendmsg_start(struct corio_future *f, int fd, const struct msghdr *msg,
                                  int flags, int64_t deadline);

/* recvmsg(2). Returns bytes received, 0 at shutdown, or -errno. */
CORIO_API ssize_t corio_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline);
CORIO_API int corio_recvmsg_start(struct corio_future *f, int fd, struct msghdr *msg, int flags,
                                  int64_t deadline);

/* shutdown(2) with @how SHUT_RD, SHUT_WR or SHUT_RDWR. Returns 0 or -errno. */
CORIO_API int corio_shutdown(int fd, int how);
CORIO_API int corio_shutdown_start(struct corio_future *f, int fd, int how);

/* Sends all @len bytes, looping over short sends; *done (if not NULL) gets the bytes sent, also on
 * error. Returns @len or -errno. */
CORIO_API ssize_t corio_send_all(int fd, const void *buf, size_t len, size_t *done,
                                 int64_t deadline);

/* Receives exactly @len bytes unless the peer shuts down first; *done as above. Returns @len, fewer
 * when the peer shut down, or -errno. */
CORIO_API ssize_t corio_recv_all(int fd, void *buf, size_t len, size_t *done, int64_t deadline);

/* Flags for the listen helpers. */
#define CORIO_LISTEN_REUSEPORT 0x1u /* SO_REUSEPORT, for one listener per thread. */
#define CORIO_LISTEN_V6ONLY 0x2u    /* IPV6_V6ONLY on an IPv6 listener. */

/* Binds and listens on a TCP socket. @host is a numeric IPv4 or IPv6 address ("127.0.0.1", "::1"),
 * or NULL for all IPv4 addresses; @port 0 picks a free port (read it with corio_local_port). Sets
 * SO_REUSEADDR. Does not suspend: usable outside coroutines. Returns the listening fd, or -errno
 * (-EINVAL for an address that is not numeric, -EADDRINUSE, ...). */
CORIO_API int corio_listen_tcp(const char *host, uint16_t port, int backlog, unsigned flags);

/* Connects a new TCP socket to @host:@port (numeric IPv4 or IPv6) and sets TCP_NODELAY. May
 * suspend. Returns the connected fd, owned by the caller, or -errno (-ECONNREFUSED, -ETIMEDOUT). */
CORIO_API int corio_dial_tcp(const char *host, uint16_t port, int64_t deadline);

/* Binds and listens on a Unix stream socket at @path, unlinking a stale socket file first. Does not
 * suspend. Returns the listening fd, or -errno (-ENAMETOOLONG for a path that does not fit). */
CORIO_API int corio_listen_unix(const char *path, int backlog);

/* Connects a new Unix stream socket to @path. May suspend. Returns the fd, or -errno. */
CORIO_API int corio_dial_unix(const char *path, int64_t deadline);

/* Returns the local port of socket @fd (after a bind to port 0), or -errno. */
CORIO_API int corio_local_port(int fd);

#ifdef __cplusplus
}
#endif

#endif /* CORIO_H */
