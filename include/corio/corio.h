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
 * - A call that can wait for something outside the caller's control (I/O, a peer, a lock, another
 *   coroutine) takes a deadline as its last argument. The few calls that suspend only for the
 *   kernel's immediate answer (corio_nop, corio_socket, corio_shutdown, corio_close) take none, and
 *   say so. A coroutine can also bound all its waits at once with corio_set_deadline.
 * - A call that suspends may only be made inside a coroutine; elsewhere it returns -EPERM.
 * - The non-waiting form of a waiting call (corio_mutex_trylock, corio_sem_tryacquire,
 *   corio_chan_trysend, corio_chan_tryrecv) returns -EAGAIN where the waiting form would wait.
 * - Buffers, addresses and futures passed to a call are borrowed until it returns. A call never
 *   returns while the kernel may still touch them, even when it times out or is cancelled.
 * - Cancelling a coroutine (corio_cancel) wakes it from its current wait with -ECANCELED, and every
 *   later call of it that would suspend returns -ECANCELED at once, except corio_close, so that it
 *   can run its clean-up and end.
 * - Threads: a loop, and everything that lives on it (coroutines, futures, groups, sync objects,
 *   channels, generators, buffer rings), belongs to the thread that created the loop; calls on
 *   them are made from that thread. Several loops run side by side on several threads. The calls
 *   that any thread may make say so: corio_loop_post, corio_spawn with a NULL handle,
 *   corio_loop_stop and corio_loop_drain, which hand the loop a message that it runs on its own
 *   thread; and the calls on a corio_xchan, a channel whose ends are on different loops.
 * - Out-parameters come first (corio_loop_new(&loop, ...), corio_spawn(&id, ...)); caller-owned
 *   objects are set up by a _init call that returns 0 or -errno, or by their _INIT macro.
 *
 * ABI: the structs that callers embed (corio_future, corio_group, the sync objects, corio_gen,
 * corio_acceptor, corio_receiver, corio_poller) are opaque storage of a fixed size and alignment,
 * with room reserved inside: every 1.x release keeps their sizes, so code built against an earlier
 * 1.x header keeps working with a later library. corio_loop_opts is read field by field and zero
 * means "the default" for each: fields added in 1.x come out of its reserved room, and a caller
 * that zeroed the struct gets their defaults. Functions are only added in 1.x, never changed.
 */
#ifndef CORIO_H
#define CORIO_H

#include <errno.h>
#include <sys/select.h> /* sigset_t (POSIX puts it there too, and C11 mode hides signal.h's) */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque storage is 8-aligned; the spelling differs between C11 and C++. */
#ifdef __cplusplus
#define CORIO_ALIGN8 alignas(8)
#else
#define CORIO_ALIGN8 _Alignas(8)
#endif

#if defined(CORIO_STATIC_DEFINE)
#define CORIO_API
#elif defined(CORIO_BUILDING)
#define CORIO_API __attribute__((visibility("default")))
#else
#define CORIO_API
#endif

struct statx;
struct signalfd_siginfo;

/* ==== time =================================================================================== */

/* A deadline that never passes. */
#define CORIO_FOREVER ((int64_t)-1)
#define CORIO_NS(n) ((int64_t)(n))
#define CORIO_US(n) ((int64_t)(n)*1000)
#define CORIO_MS(n) ((int64_t)(n)*1000000)
#define CORIO_SEC(n) ((int64_t)(n)*1000000000)

/* Reads CLOCK_MONOTONIC, plus the time that loops on the virtual clock (CORIO_LOOP_VIRTUAL_CLOCK)
 * jumped on the calling thread. Any thread. Returns nanoseconds since an arbitrary point, the base
 * of deadlines. */
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
    /* Operation modes probed by trying them once. */
    CORIO_FEAT_RECV_MULTISHOT,
    CORIO_FEAT_ACCEPT_MULTISHOT,
    CORIO_FEAT_BUF_RING,
    /* Added in 1.x (at the end, so that the values above keep their meaning). */
    CORIO_FEAT_CANCEL_FD,      /* cancelling by fd (5.19): corio_close ends the ops pending on it */
    CORIO_FEAT_POLL,           /* readiness waits: IORING_OP_POLL_ADD (corio_poll) */
    CORIO_FEAT_POLL_MULTISHOT, /* a poll that stays armed (5.13): corio_poller, one SQE */
    CORIO_FEAT_COUNT
};

/* The backends a loop can run on. */
enum corio_backend {
    CORIO_BACKEND_AUTO = 0, /* io_uring when it sets up with the ops corio needs, else epoll */
    CORIO_BACKEND_IO_URING, /* io_uring or nothing: a refusal fails corio_loop_new */
    CORIO_BACKEND_EPOLL,    /* epoll, for sockets and pipes; a worker pool for files */
};

/* Options for corio_loop_new(). Zero means the default for every field. */
struct corio_loop_opts {
    unsigned sq_entries;      /* SQ size, a power of two; default 256. */
    unsigned cq_entries;      /* CQ size; default 4 x sq_entries. */
    size_t stack_size;        /* usable bytes of each coroutine stack; default 64 KiB. */
    unsigned stack_cache;     /* stacks kept for reuse once their coroutines end. Default (0): as
                                 many as were live at once lately (the pool trims what an idle
                                 loop has not needed for a second), so that coroutines coming and
                                 going in thousands map no stack per spawn. */
    unsigned flags;           /* CORIO_LOOP_* below. */
    unsigned sqpoll_idle_ms;  /* with CORIO_LOOP_SQPOLL: poller idle time; default 1000. */
    unsigned sqpoll_cpu;      /* with CORIO_LOOP_SQPOLL | CORIO_LOOP_SQPOLL_PIN: the CPU the
                                 kernel's poller is pinned to. */
    unsigned fixed_files;     /* slots of the fixed file table (direct descriptors); 0: none. */
    size_t zc_threshold;      /* corio_send uses zero-copy send_zc from this many bytes; 0: never.*/
    unsigned batch_wait_us;   /* when busy, an idle wait may hold out this long for more CQEs so
                                 that one wake-up serves several (kernel 6.12+); default 50 when
                                 the thread that makes the loop may run on one CPU only (pinned),
                                 else never: sharing CPUs, the sleep hands the CPU away and costs
                                 more than it saves. CORIO_BATCH_WAIT_OFF: never. */
    unsigned sqpoll_spin_us;  /* with CORIO_LOOP_SQPOLL: how long an idle loop polls the CQ before
                                 it sleeps in io_uring_enter. 0 or CORIO_SQPOLL_SPIN_AWAKE (the
                                 default): for as long as the kernel's poller is awake, so that
                                 completions and timers need no io_uring_enter while it is; the
                                 loop's thread burns its CPU as the poller does, up to
                                 sqpoll_idle_ms after the last work. A number bounds the spin in
                                 microseconds. Either way the spin ends when the poller sleeps or
                                 the CQ overflows: the loop then waits in io_uring_enter. */
    unsigned backend;         /* enum corio_backend. Default (AUTO): the environment variable
                                 CORIO_BACKEND (io_uring, epoll or auto) if set, else io_uring
                                 when the kernel allows it and epoll otherwise. */
    unsigned blocking_threads; /* corio_blocking's worker threads, at most. Default (0): 8. The
                                 calls it serves wait (on a disk, a name server) rather than
                                 compute, so more than the cores; twice libuv's 4, whose pool is
                                 known to starve when a few slow name lookups hold it; and they
                                 start only as calls need them, so a loop that makes none has
                                 none. */
    unsigned blocking_queue;  /* corio_blocking calls that may wait for a worker; one more gets
                                 -EAGAIN. Default (0): 1024, which with 8 workers is a backlog
                                 of seconds for calls of milliseconds: past it, telling the caller
                                 to back off is better than memory that grows without end.
                                 UINT32_MAX: no bound. */
    unsigned stall_ms;        /* the stall detector: a loop iteration that runs longer than this
                                 many milliseconds (a coroutine that computes, or blocks in a
                                 system call, without yielding) is reported on stderr with the
                                 coroutine that ran and its backtrace, at most once a second
                                 (see corio_loop_dump). A watchdog thread runs beside the loop
                                 while it runs, and signals the loop's thread with
                                 CORIO_STALL_SIGNAL to take the backtrace. Default (0): off,
                                 unless the environment's CORIO_STALL_MS is set; off costs the
                                 loop one predicted branch per iteration. */
    unsigned latency_sample;  /* the latency histograms (corio_loop_latency) time one op in
                                 this many, submit to completion: two clock reads per timed op.
                                 Default (0): 64, under 1% of a NOP round trip and still
                                 thousands of samples a second on a busy loop; 1: every op;
                                 CORIO_LATENCY_OFF: none. */
    unsigned char reserved_[44]; /* zero: room for the options of later 1.x releases. */
};

#define CORIO_LATENCY_OFF UINT32_MAX

#define CORIO_SQPOLL_SPIN_AWAKE UINT32_MAX

#define CORIO_BATCH_WAIT_OFF UINT32_MAX

/* An fd with this bit is a direct descriptor: a slot of the loop's fixed file table (see
 * corio_loop_opts.fixed_files and CORIO_ACCEPT_FIXED). Every operation of this header takes one
 * where it takes an fd, except the helpers that call the kernel directly (listen, setsockopt). */
#define CORIO_FD_FIXED 0x40000000

#define CORIO_LOOP_SQPOLL 0x1u        /* a kernel thread polls the SQ: no io_uring_enter to submit. */
#define CORIO_LOOP_NO_SIGSEGV 0x2u    /* do not install the stack-overflow SIGSEGV reporter. */
#define CORIO_LOOP_SQPOLL_PIN 0x4u    /* pin the SQPOLL poller to corio_loop_opts.sqpoll_cpu. */
#define CORIO_LOOP_REMOTE 0x8u        /* other threads post work to it: when every coroutine waits
                                         and nothing of the loop's own can wake them, it sleeps
                                         until a message comes instead of reporting -EDEADLK. */
/* The virtual clock, for tests (also CORIO_CLOCK=virtual in the environment): when no coroutine
 * can run, no I/O can complete at once (the loop looks, without waiting) and no call runs on a
 * worker thread, time jumps to the next timer instead of being waited out. Sleeps, deadlines and
 * the HTTP server's timeouts follow; I/O stays real. The time jumped is the thread's: corio_now()
 * on the loop's thread includes it from then on. What it cannot do: a peer outside the loop
 * (another thread or process) keeps real time, so a jump may overtake its answer that is on its
 * way, and its own timers are not virtual. README.md, "Testing a server built on corio". */
#define CORIO_LOOP_VIRTUAL_CLOCK 0x10u
/* The loop runs inside another event loop (corio_loop_fd, corio_loop_step): on io_uring it is set
 * up so that its completions wake the loop's fd (COOP_TASKRUN instead of DEFER_TASKRUN). */
#define CORIO_LOOP_FOREIGN 0x20u

/* Counters of one loop, read with corio_loop_stats(). */
struct corio_stats {
    uint64_t sqes;          /* SQEs handed to the kernel (ops handed to the epoll backend). */
    uint64_t enters;        /* io_uring_enter system calls (epoll_pwait2 calls on epoll). */
    uint64_t cqes;          /* CQEs reaped. */
    uint64_t cq_overflows;  /* times the kernel reported CQ overflow. */
    uint64_t enobufs;       /* -ENOBUFS re-arms of buffer-ring receives. */
    uint64_t switches;      /* coroutine context switches (into or out of a coroutine). */
    uint64_t spawns;        /* coroutines started. */
    uint64_t iterations;    /* loop iterations. */
    uint64_t rx_pauses;     /* receivers paused with a full queue (their coroutine lagged). */
    uint64_t remote_msgs;   /* messages from other threads run (corio_loop_post and the like). */
    uint64_t remote_wakes;  /* times a sender woke the loop from a wait in the kernel with an
                               eventfd write; a loop that is busy is never woken. */
    uint64_t remote_wakes_msg_ring; /* times a sender that is itself a loop on io_uring woke this
                               one (on io_uring too) with an IORING_OP_MSG_RING instead: no
                               system call of its own, its next one carries it. */
};

/* Creates a loop, owned by the calling thread: only this thread may run it. Its backend is
 * io_uring where the kernel allows it, or epoll where io_uring is refused (a container's seccomp
 * profile, kernel.io_uring_disabled, a kernel without io_uring or without an op corio needs): the
 * same API works on both (corio_loop_backend says which runs, corio_loop_backend_reason why not
 * io_uring). The kernel's features are probed once here (corio_loop_has). Returns 0 and sets *out,
 * or -errno: with the backend forced to io_uring, -ENOSYS when the kernel has no io_uring, -EPERM
 * when a sysctl or a seccomp filter refuses it, -EOPNOTSUPP when an op corio needs is missing
 * (corio_strerror_setup() explains the first two in words); -ENOMEM. */
CORIO_API int corio_loop_new(struct corio_loop **out, const struct corio_loop_opts *opts);

/* Frees a loop that is not running. Coroutines still alive are cancelled and run to their end
 * first, so that no SQE refers to freed memory. NULL is a no-op. Returns nothing. */
CORIO_API void corio_loop_free(struct corio_loop *loop);

/* Runs the loop on the calling thread until no coroutine is left, or until corio_loop_stop() was
 * called and every coroutine has ended. When every coroutine left waits on something that nothing
 * can wake (no I/O in flight, no timer: they wait for each other), the loop cancels them all so
 * that they run their clean-up and end, and then returns -EDEADLK: a bug in the program, reported
 * rather than hung on. Returns 0, or -errno: -EDEADLK as said, -EBUSY if the loop is already
 * running, -EPERM on a thread other than its creator's. */
CORIO_API int corio_loop_run(struct corio_loop *loop);

/* Asks a running loop to stop: every coroutine is cancelled, and corio_loop_run() returns once all
 * have ended. Any thread: from another thread it is a message (see corio_loop_post) that the loop
 * acts on at its next iteration, waking it if it sleeps; on the loop's own thread it acts at once.
 * Returns nothing. */
CORIO_API void corio_loop_stop(struct corio_loop *loop);

/* Runs fn(arg) on @loop's thread, from any thread: @loop runs it at the top of its next iteration,
 * between coroutines (not in one: fn may spawn, post, stop, but not wait), in the order each
 * sender posted. A loop that sleeps in the kernel is woken by one eventfd write, or by one
 * IORING_OP_MSG_RING submitted from the caller's ring when the caller is a running loop on
 * io_uring and @loop is on io_uring too (kernel 5.18+); a busy one is not woken at all. No lock is
 * taken on either side. @loop must outlive the call; messages still queued when the loop is freed
 * are dropped, their functions not run. Returns 0, or -errno: -EINVAL, -ENOMEM. */
CORIO_API int corio_loop_post(struct corio_loop *loop, void (*fn)(void *arg), void *arg);

/* Returns the loop running on the calling thread, or NULL. */
CORIO_API struct corio_loop *corio_loop_current(void);

/* ---- inside another event loop ----------------------------------------------------------------
 * A program that already owns an event loop (its own epoll_wait loop, libuv, GLib) runs a corio
 * loop made with CORIO_LOOP_FOREIGN one step at a time instead of calling corio_loop_run: it
 * watches corio_loop_fd() for reading, sleeps no longer than corio_loop_timeout() says, and calls
 * corio_loop_step() when the fd is readable or the time is up (calling it more often does no
 * harm). Every call below is made on the loop's thread, between steps, never from a coroutine;
 * none of them blocks.
 *
 *     int fd = corio_loop_fd(loop);       // EPOLLIN, level-triggered, in the program's own set
 *     for (;;) {
 *         int64_t ns = corio_loop_timeout(loop);
 *         int ms = ns < 0 ? -1 : (int)((ns + 999999) / 1000000);   // rounded up, never early
 *         epoll_wait(ep, events, n, ms);   // EINTR included; then the program's own fds
 *         if (corio_loop_step(loop) <= 0)
 *             break;                       // 0: every coroutine has ended
 *     }
 */

/* Returns an fd that becomes readable (POLLIN, EPOLLIN) whenever @loop has work that it learns
 * of by itself: a completion of its I/O, a message from another thread (corio_loop_post,
 * corio_spawn, corio_loop_stop), a worker's result. It is the ring's own fd on io_uring, the
 * backend's epoll fd on epoll. Watch it level-triggered: it stays readable while completions
 * wait, and a step may leave some it did not get to (more than one step takes), which
 * level-triggered watching reports again and edge-triggered would not. On io_uring a completion
 * may interrupt the embedder's wait (EINTR: the kernel runs completion work on the thread's way
 * back to user space); waiting again then finds the fd readable. The fd belongs to the loop and
 * lives as long as it: do not read it or close it. Only the loop's thread; it does not block.
 * Returns the fd, or -errno: -EINVAL for a loop made without CORIO_LOOP_FOREIGN (on io_uring,
 * its completions would not wake the fd), -EPERM from another thread. */
CORIO_API int corio_loop_fd(struct corio_loop *loop);

/* Returns how long the embedder may sleep (waiting on corio_loop_fd) before the next
 * corio_loop_step must run, in nanoseconds relative to now (the unit of corio_now and of every
 * corio deadline, so that nothing is rounded here: round up to the milliseconds of epoll_wait or
 * libuv, or a timer comes due a little early and the loop spins for the rest of the
 * millisecond): 0 when a step has work now (coroutines ready, ops not yet submitted, completions
 * or messages waiting, a timer due), the time to the earliest timer (a sleep, a deadline)
 * otherwise, -1 when nothing but the fd can bring work. Only the loop's thread; it does not
 * block and makes no system call. */
CORIO_API int64_t corio_loop_timeout(struct corio_loop *loop);

/* Runs one step of @loop on the calling thread without ever blocking: runs the messages from
 * other threads, submits what is queued, takes the completions that are there, fires the timers
 * that are due, and runs one batch of the coroutines that are ready (those ready when the batch
 * began, each until it waits; those they wake run in the next step, so that the embedder's own
 * callbacks get their turn in between), then submits what they started. A stop (corio_loop_stop)
 * cancels every coroutine and the next steps run them to their end. Unlike corio_loop_run, a step
 * never reports -EDEADLK: coroutines that only wait for each other are left waiting (and
 * corio_loop_timeout says -1), since the embedder may still wake them from its own callbacks.
 * Only the loop's thread, outside corio_loop_run and outside every coroutine. Returns 1 while
 * coroutines are alive, 0 when none is left (the loop has finished, as when corio_loop_run
 * returns), or -errno: -EBUSY from inside corio_loop_run, a step or a coroutine, -EPERM from
 * another thread, or the kernel's error for a submission that failed (not a transient one). */
CORIO_API int corio_loop_step(struct corio_loop *loop);

/* Returns the backend @loop runs on: CORIO_BACKEND_IO_URING or CORIO_BACKEND_EPOLL. */
CORIO_API enum corio_backend corio_loop_backend(const struct corio_loop *loop);

/* Returns why @loop does not run on io_uring, in words ("io_uring_setup failed with EPERM under
 * a seccomp filter: ...", "the epoll backend was asked for (CORIO_BACKEND=epoll)"), or "" when it
 * does. The string lives as long as the loop. */
CORIO_API const char *corio_loop_backend_reason(const struct corio_loop *loop);

/* Returns the name of @b: "auto", "io_uring", "epoll", or "?". */
CORIO_API const char *corio_backend_name(enum corio_backend b);

/* Returns true if @feat is available on @loop (see enum corio_feature). On the epoll backend the
 * ops are all there (their io_uring-only forms emulated), the setup flags and ring features not. */
CORIO_API bool corio_loop_has(const struct corio_loop *loop, enum corio_feature feat);

/* Returns the name of a feature ("recv", "defer_taskrun", ...), or "?" for an unknown value. */
CORIO_API const char *corio_feature_name(enum corio_feature feat);

/* Returns the counters of @loop; the pointer stays valid, and current, for the loop's life. */
CORIO_API const struct corio_stats *corio_loop_stats(const struct corio_loop *loop);

/* Explains why corio_loop_new() failed with @err, naming the cause where it can be found
 * (kernel.io_uring_disabled, a seccomp filter, a kernel without io_uring, RLIMIT_MEMLOCK). Returns a
 * static string. */
CORIO_API const char *corio_strerror_setup(int err);

/* ==== metrics =============================================================================== */

/* What a loop is doing, read with corio_loop_metrics from any thread while it runs. */
struct corio_metrics {
    struct corio_stats stats; /* the counters (see struct corio_stats) */
    uint64_t coroutines;      /* coroutines alive */
    uint64_t stacks_in_use;   /* coroutine stacks handed out (live coroutines and zombies) */
    uint64_t stacks_cached;   /* stacks kept for reuse */
    uint64_t timers;          /* timers armed in the loop's heap: deadlines of waits that are not
                                 ops (locks, channels, joins, events) and coroutines' own
                                 deadlines; a sleep and an op's deadline are kernel timeouts,
                                 counted in inflight */
    uint64_t inflight;        /* completions the loop still expects from the kernel */
    uint64_t latency_skipped; /* ops due to be timed while every sample slot was taken */
    int64_t taken_at;         /* corio_now() when the loop took these values */
    uint64_t reserved_[8];    /* zero: room for the metrics of later 1.x releases */
};

/* Copies @loop's metrics into *out. Any thread, at any time, without stopping the loop: the loop
 * publishes them (under a sequence lock) every 256 iterations, and when a reader finds them older
 * than a millisecond it asks the loop for fresh ones (a message, as corio_loop_post, that wakes a
 * sleeping loop) and waits up to 10 ms for them; a loop stuck in a coroutine that does not yield
 * cannot answer, and then the last values come back, as old as out->taken_at says. A loop that
 * is not running gives the values it published when its last run ended. On the loop's
 * own thread the values are read directly, current. @loop must outlive the call. Returns 0, or
 * -EOPNOTSUPP in a build without metrics (CMake CORIO_METRICS=OFF). */
CORIO_API int corio_loop_metrics(struct corio_loop *loop, struct corio_metrics *out);

/* The buckets of a latency histogram. Bucket 0 counts latencies below 1024 ns, bucket i those in
 * [2^(9+i), 2^(10+i)) ns, and the last also everything longer. */
#define CORIO_LATENCY_BUCKETS 32

/* A latency histogram: one kind of op, submit to completion (the first CQE), sampled. */
struct corio_latency {
    uint64_t samples;                        /* ops timed */
    uint64_t sum_ns;                         /* their latencies added up, in nanoseconds */
    uint64_t buckets[CORIO_LATENCY_BUCKETS]; /* how many fell in each bucket */
};

/* Returns the name of op kind @op ("nop", "read", "recv", ...: 0, 1, 2 ... up to the first that
 * gives NULL), the kinds of corio_loop_latency, or NULL past the last. */
CORIO_API const char *corio_op_name(unsigned op);

/* Copies @loop's latency histogram of op kind @op (see corio_op_name) into *out. Any thread, at
 * any time: the loop's thread writes each counter atomically, so each is exact, though a reader may
 * see one timed op in samples before it shows in its bucket. Returns 0, or -errno: -ENOENT past
 * the last kind, -EOPNOTSUPP in a build without histograms (CMake CORIO_HISTOGRAMS=OFF). */
CORIO_API int corio_loop_latency(const struct corio_loop *loop, unsigned op,
                                 struct corio_latency *out);

/* Returns the upper bound of latency bucket @i in nanoseconds (exclusive), or INT64_MAX for the
 * last bucket and past it. */
CORIO_API int64_t corio_latency_bound(unsigned i);

/* Returns an upper bound of the @q quantile (0 to 1) of @h: the bound of the bucket it falls in
 * (at most twice the true value), or 0 if @h has no samples. */
CORIO_API int64_t corio_latency_quantile(const struct corio_latency *h, double q);

/* Writes the metrics and latency histograms of @loops[0..n) in Prometheus' text format (version
 * 0.0.4) into @buf, each sample labelled loop="i" (and op="..." for the histograms). Any thread.
 * Returns the length of the text (without its terminating NUL, written when @len allows: like
 * snprintf, a result >= @len means @buf was too small), or -errno: -EOPNOTSUPP in a build without
 * metrics. */
CORIO_API ssize_t corio_metrics_prometheus(char *buf, size_t len, struct corio_loop *const *loops,
                                           unsigned n);

/* ==== capability report ===================================================================== */

/* With corio_report: add the seccomp profiles (see corio_seccomp_profile). */
#define CORIO_REPORT_SECCOMP 0x1u

/* Writes a report of what this machine gives corio, as one JSON object, into @buf: the kernel;
 * the backend a loop made with @opts (NULL: defaults) gets, and why not io_uring; what io_uring
 * offers, from a loop forced onto it: the setup flags corio asked for and those granted, with the
 * reason for each refusal, the ops corio uses (each present or not, and whether corio needs it),
 * the ring features and op modes, or why io_uring cannot be had at all; the limits that bite:
 * RLIMIT_MEMLOCK against the rings' memory (counted on kernels before 5.12) and RLIMIT_NOFILE
 * against @max_conns connections (0: 10000); kernel.io_uring_disabled and kernel.io_uring_group;
 * the process's seccomp mode and, with CORIO_REPORT_SECCOMP in @flags, the profiles of both
 * backends. It makes and frees loops on the calling thread, so not inside one of its loops' runs.
 * Returns the length of the text (snprintf-like: a result >= @len means @buf was too small), or
 * -EINVAL for an unknown flag. */
CORIO_API ssize_t corio_report(char *buf, size_t len, const struct corio_loop_opts *opts,
                               uint64_t max_conns, unsigned flags);

/* Writes the seccomp profile that a corio program on @backend needs (CORIO_BACKEND_AUTO: either),
 * in the JSON form that Docker's --security-opt seccomp= (and runc, containerd, podman) accept:
 * every other system call fails with EPERM. It lists what corio and a program on glibc make (the
 * program's own needs come on top); io_uring's ops run inside the kernel, where seccomp does not
 * see them, so its list is the shorter. Returns the length of the text (snprintf-like), or -EINVAL
 * for an unknown backend. */
CORIO_API ssize_t corio_seccomp_profile(char *buf, size_t len, enum corio_backend backend);

/* ==== coroutines ============================================================================= */

/* A coroutine's body. Its return value is what corio_join() reports, by convention >= 0 or -errno. */
typedef int corio_fn(void *arg);

/* A coroutine handle: unique within its loop, never reused, 0 is never valid. */
typedef uint64_t corio_id;

/* Starts fn(arg) as a coroutine on @loop (NULL: the calling thread's running loop). It runs when
 * the loop next schedules it, not during this call. With @out NULL the coroutine is detached: it is
 * reclaimed when it ends. Otherwise *out is its handle, and it stays joinable until corio_join() or
 * corio_detach(). A coroutine's int result is a status, by convention >= 0 or -errno, like every
 * call's: a value it produces travels through memory the caller owns (say, a struct passed as
 * @arg). From a thread other than @loop's, @out must be NULL: the coroutine is spawned by the loop
 * itself (a message, as corio_loop_post), detached, and a failure there (no stack) is not seen by
 * the caller. Returns 0, or -errno: -ENOMEM (no stack), -EINVAL (no loop, or a handle asked for
 * across threads). */
CORIO_API int corio_spawn(corio_id *out, struct corio_loop *loop, corio_fn *fn, void *arg);

/* corio_spawn, recording @file:@line as the coroutine's spawn site for corio_loop_dump and the gdb
 * script (tools/corio-gdb.py); @file is kept as a pointer, so it must be static (__FILE__ is).
 * corio_spawn is a macro that calls it with the caller's __FILE__ and __LINE__; the function
 * corio_spawn, reached as (corio_spawn)(...), records no site. Returns as corio_spawn. */
CORIO_API int corio_spawn_at(corio_id *out, struct corio_loop *loop, corio_fn *fn, void *arg,
                             const char *file, int line);
#define corio_spawn(out, loop, fn, arg) corio_spawn_at(out, loop, fn, arg, __FILE__, __LINE__)

/* Names the calling coroutine for corio_loop_dump, the stall report and the gdb script. The name
 * is copied (cut to 23 bytes), so @name may be a buffer of the caller's; NULL or "" removes it.
 * Does not suspend. Returns 0, or -EPERM outside a coroutine. */
CORIO_API int corio_set_name(const char *name);

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

/* Gives the calling coroutine a deadline of its own: every wait it makes (an operation, a lock, a
 * channel, a join, a sleep) ends with -ETIMEDOUT at @deadline at the latest, whatever deadline
 * the call itself takes, and once @deadline has passed its waits fail at once with -ETIMEDOUT
 * (corio_close still works) until the deadline is set again. CORIO_FOREVER removes it. It is
 * armed once, however many calls it covers: cheaper than a deadline on each call of a sequence
 * (a request read in several receives), and a call's own deadline that comes later needs no
 * timer at all. An operation it interrupts is cancelled and still awaited, as for any deadline.
 * Nesting: save *prev and set it back. Returns 0 with the previous deadline in *prev (if not
 * NULL; CORIO_FOREVER if there was none), or -EPERM outside a coroutine. */
CORIO_API int corio_set_deadline(int64_t deadline, int64_t *prev);

/* Creates a loop, runs @fn(@arg) in a coroutine on it until every coroutine has ended, and frees
 * the loop. Returns @fn's return value once every coroutine has ended, also when coroutines it
 * left behind deadlocked after it returned (they are cancelled, as corio_loop_run does); -EDEADLK
 * if @fn itself was caught in a deadlock (it was cancelled to end it); or -errno if the loop could
 * not be created. */
CORIO_API int corio_run(corio_fn *fn, void *arg, const struct corio_loop_opts *opts);

/* Runs fn(arg) as the first coroutine of each of @n loops, one per thread (the calling thread runs
 * the first; the others are started here), and returns when all have ended. Each loop has its own
 * ring, stacks and pools, made with @opts (NULL: defaults) plus CORIO_LOOP_REMOTE: the loops wait
 * for each other's messages rather than report a deadlock. With CORIO_THREADS_PIN in @flags,
 * thread i is pinned to the i-th CPU the process may use (wrapping around). Every loop exists
 * before any runs, so fn may address any of them at once (corio_thread_loop). When one loop ends
 * (its coroutines all ended) the others are stopped, unless the group drains (corio_threads_drain:
 * each loop then ends when it has drained), and every loop stops running before any is freed. Returns 0, or the first of: a loop's creation error, a function's nonzero result other
 * than -ECANCELED (which a stop makes it return), corio_loop_run's error; -EINVAL (@n 0 or over
 * 4096, no @fn, or called from a loop it runs); -ENOMEM; a thread's creation error. */
CORIO_API int corio_run_threads(unsigned n, corio_fn *fn, void *arg,
                                const struct corio_loop_opts *opts, unsigned flags);
#define CORIO_THREADS_PIN 0x1u /* pin each loop's thread to its own CPU */

/* Within corio_run_threads: the calling thread's loop's index (0 to n - 1), the number of loops,
 * and loop @i (NULL past the last), to post or spawn onto. Outside: 0, 1, and the calling thread's
 * running loop for @i 0. Any thread of the group. */
CORIO_API unsigned corio_thread_index(void);
CORIO_API unsigned corio_thread_count(void);
CORIO_API struct corio_loop *corio_thread_loop(unsigned i);

/* Stops every loop of the calling thread's corio_run_threads (corio_loop_stop on each; the running
 * loop outside one). From a thread of the group. Returns nothing. */
CORIO_API void corio_threads_stop(void);

/* ==== stopping: drains and signals ===========================================================
 * A stop (corio_loop_stop) cancels every coroutine at once. A drain is the graceful stop: the loop
 * stops accepting, lets its coroutines finish what they are doing, ends the waits of those that
 * have nothing to do, and stops for good at a deadline. What a drain does to each kind of wait:
 * - an accept (corio_accept, corio_accept_start) pending on the loop is cancelled in the kernel
 *   and ends with -ESHUTDOWN (a connection that raced the cancel is returned as usual), and one
 *   started during the drain ends with -ESHUTDOWN at once;
 * - an acceptor's multishot accept is ended in the kernel; corio_acceptor_next hands out the
 *   connections the kernel had accepted before, then returns -ESHUTDOWN (at once, or ending the
 *   wait it is in);
 * - the current wait of a coroutine marked idle (corio_set_idle) ends with -ESHUTDOWN, and the
 *   mark is cleared: the wake-up is once;
 * - a wait for signals (corio_signals_next) ends with -ESHUTDOWN once every other coroutine of
 *   the loop has ended, so that a coroutine that waits for the next stop signal does not keep a
 *   drained loop running; until then it goes on waiting, and can hear a second signal;
 * - every other wait (a receive, a send, a sleep, a lock, a join) goes on as it was.
 * A drain does not close listening sockets: their owner does, once its accept loop has ended.
 * Connections the kernel completed but nobody accepted (the listen backlog) are reset by that
 * close, as the kernel resets them for any listener closed with a backlog; a client sees
 * ECONNRESET on its first read. To keep them, hand the listening socket itself to the process
 * that takes over (SCM_RIGHTS) instead of closing it.
 * -ESHUTDOWN, not -ECANCELED: the coroutine is not cancelled (its later calls work, its clean-up
 * and the end of its connection need them), and a server tells "stop accepting" from "stop now".
 * When the deadline passes, every coroutine left is cancelled as corio_loop_stop does; the loop's
 * run returns once every coroutine has ended, either way. A drain lasts until corio_loop_run
 * returns (a loop run again starts afresh). A second drain keeps the earlier of the two
 * deadlines; a stop during a drain cancels everything at once. */

/* Starts a drain of @loop (see above) that ends at @deadline (CORIO_FOREVER: when every coroutine
 * has ended, however long that takes; a deadline already past: a stop). Any thread: from another
 * thread it is a message (see corio_loop_post) that the loop acts on at its next iteration,
 * waking it if it sleeps; on the loop's own thread it acts at once. Does not suspend. Returns 0,
 * or -errno: -EINVAL (no loop), -ENOMEM (the message, from another thread). */
CORIO_API int corio_loop_drain(struct corio_loop *loop, int64_t deadline);

/* Drains every loop of the calling thread's corio_run_threads (corio_loop_drain on each; the
 * running loop outside one), each until @deadline: a loop that has drained ends without stopping
 * the others, which go on draining (without a drain, one loop's end stops them all). From a
 * thread of the group. Does not suspend. Returns 0, or the first error of corio_loop_drain; -EPERM
 * outside a group with no running loop. */
CORIO_API int corio_threads_drain(int64_t deadline);

/* Returns true when the calling thread's running loop drains: a server's code between two units
 * of work (requests) asks it to end its connection instead of waiting for the next. Any thread;
 * false outside a running loop. Does not suspend. */
CORIO_API bool corio_draining(void);

/* Marks the calling coroutine idle (@idle true: between units of work, as a keep-alive connection
 * waiting for its next request) or busy again (@idle false). While it is marked, a drain of its
 * loop ends its current wait with -ESHUTDOWN and clears the mark. A coroutine that is busy goes on
 * when a drain starts: mark only the waits that may be cut short. Does not suspend. Returns 0, or
 * -errno: -ESHUTDOWN (@idle true while the loop drains: the mark is not set, the caller should end
 * its work instead of waiting), -EPERM outside a coroutine. */
CORIO_API int corio_set_idle(bool idle);

/* Signals that coroutines wait for: a signalfd, read through the loop (through the ring on
 * io_uring, waited for with epoll on the epoll backend), so that a signal is a wake-up like any
 * I/O and its handler is ordinary code in a coroutine. Lives in caller storage. */
struct corio_signals {
    CORIO_ALIGN8 unsigned char opaque_[512];
};

/* Prepares @s to receive the signals of @set: blocks them in the calling thread (so that the
 * kernel queues them for the signalfd instead of acting on them) and creates the signalfd. Every
 * other thread of the process must block them too, or the kernel may deliver one to a thread that
 * does not (its default action, for SIGINT or SIGTERM, ends the process): a thread inherits the
 * mask of the thread that creates it, and corio_run_threads' threads are made by the thread that
 * calls it, so calling this before corio_run_threads (or before creating any thread) is enough.
 * A signal of @set whose disposition is to ignore it is given back its default disposition, which
 * never runs while it is blocked: an ignored signal may be discarded as it is sent (POSIX leaves
 * that open), and a shell starts its background jobs with SIGINT ignored, where a program that
 * asks for SIGINT wants it anyway. Any thread, no coroutine needed; does not suspend. Returns 0,
 * or -errno: -EINVAL (no @set), signalfd(2)'s (-EMFILE, -ENOMEM). */
CORIO_API int corio_signals_init(struct corio_signals *s, const sigset_t *set);

/* Waits for the next signal of @s's set, and stores what the kernel says of it in *@info (if not
 * NULL). Coroutines of several loops may wait on one @s at once (each signal wakes one of them;
 * a signal sent to the process reaches any of them, one sent to a thread only a coroutine of that
 * thread's loop). In a drain of the loop, this wait ends with -ESHUTDOWN once it is all that is
 * left (see the drain above). May suspend. Returns the signal's number, or -errno: -ETIMEDOUT,
 * -ECANCELED, -ESHUTDOWN, -EPERM outside a coroutine, -EBADF after corio_signals_fini. */
CORIO_API int corio_signals_next(struct corio_signals *s, struct signalfd_siginfo *info,
                                 int64_t deadline);

/* Closes @s's signalfd and restores what corio_signals_init changed: the ignored dispositions it
 * reset, then the calling thread's mask for the signals that init blocked (those blocked before
 * stay blocked). A signal still pending is then acted on as the restored disposition says (an
 * ignored one is discarded, SIGTERM's default ends the process). On the thread that called init,
 * with no coroutine waiting on @s. Does not suspend. Returns nothing. */
CORIO_API void corio_signals_fini(struct corio_signals *s);

/* ==== futures ================================================================================ */

/* The state of one started operation. It lives in the caller's frame (no allocation), must not be
 * moved while pending, and belongs to the coroutine that started it: only that coroutine awaits it.
 * A coroutine that ends with futures pending has them cancelled and awaited before its stack is
 * reused. */
struct corio_future {
    CORIO_ALIGN8 unsigned char opaque_[192];
};

/* Waits for @f to complete. If @deadline passes first, the op is cancelled and still awaited (its
 * buffers are the caller's again when this returns), as if it had been started with that
 * deadline. May suspend. Returns the op's result (>= 0, or -errno; -ETIMEDOUT when its deadline
 * or @deadline passed, -ECANCELED when it or the caller was cancelled), or -EINVAL if @f was never
 * started, -EPERM if another coroutine started it. Awaiting a completed future again returns the
 * same result. To wait without ending the op, use corio_await_any. */
CORIO_API ssize_t corio_await(struct corio_future *f, int64_t deadline);

/* Waits until one of @fs[0..n) has completed that no earlier corio_await_any reported, and reports
 * it: the natural loop `while ((i = corio_await_any(fs, n, dl)) >= 0) use(fs[i]);` sees each
 * future once, in the order they complete (the lowest index first among those done together).
 * Starting a future again makes it reportable again. May suspend. Returns the index, or -errno:
 * -ENOENT when every future has been reported, -ETIMEDOUT, -ECANCELED (the caller was
 * cancelled), -EINVAL, -EPERM. The futures that are still pending stay in flight: await or cancel
 * them. */
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

/* Completes at once in the kernel: the cheapest round trip. Suspends only for that answer: no
 * deadline. Returns 0, -ECANCELED or -ETIMEDOUT (the caller's state), -EPERM outside a coroutine. */
CORIO_API int corio_nop(void);
CORIO_API int corio_nop_start(struct corio_future *f);

/* Suspends the caller until @deadline. Returns 0, or -ECANCELED, or -ETIMEDOUT if the caller's
 * own earlier deadline (corio_set_deadline) ended it. */
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

/* Closes @fd. Works anywhere: in a coroutine through the ring (not affected by cancellation or a
 * passed deadline, so that clean-up always runs; it suspends only for the kernel's immediate
 * answer: no deadline), outside one with close(2), so that clean-up after corio_run or after a
 * loop's end closes what is left. In a coroutine, the operations of this loop still pending on @fd
 * (a receive, an accept, a poll, an acceptor, receiver or poller, in any coroutine) end first with
 * -ECANCELED, so that none waits on a file that is gone nor takes data sent after the close. On
 * io_uring that takes cancelling by fd (kernel 5.19, CORIO_FEAT_CANCEL_FD; without it they are not
 * woken and wait for their deadlines), and it ends the ops on the same open file under another
 * number too (a dup of @fd); the epoll backend ends those waiting on the number @fd. Cost on
 * io_uring: the kernel looks through every op the loop has waiting to find those on @fd, about
 * 20 ns each (a close in a loop with 8000 receives waiting took 150 us instead of 5 us, 6.18). A
 * direct descriptor (CORIO_FD_FIXED) exists only in its loop's ring: closing one outside a
 * coroutine of that loop gives -EPERM. Returns 0 or -errno (-EBADF). */
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

/* ==== blocking calls =========================================================================
 * A function that blocks its thread (a library call without an asynchronous form, a name lookup)
 * would stop every coroutine of the loop. corio_blocking runs it on a worker thread of a pool the
 * loop owns instead: corio_loop_opts.blocking_threads workers at most, started as calls need them
 * and joined by corio_loop_free, and at most blocking_queue calls waiting for one. */

/* A function for corio_blocking, run on a worker thread with @arg. Its result is an int status,
 * >= 0 or -errno by convention, as a coroutine body's is: a value it produces travels through
 * @arg. It must not call corio: it runs in no coroutine, and the loop belongs to another thread. */
typedef int corio_blocking_fn(void *arg);

/* Runs fn(arg) on a worker thread of the calling coroutine's loop and suspends the caller until
 * it returns; the loop's other coroutines run meanwhile. The result is an int, not a pointer, for
 * the reason corio_spawn's is: one convention for every call's result, with -errno for errors.
 * Cancel and deadline: a call that no worker has taken yet is withdrawn, and fn never runs; fn
 * that runs cannot be interrupted, so the caller gets -ECANCELED or -ETIMEDOUT at once, fn runs
 * to its end and its result is discarded. @arg must stay valid until fn returns, which can then
 * be after this call has returned: the calling coroutine's stack is kept until fn returns even if
 * the coroutine ends first (as for an op in flight: corio_join, corio_group_wait and
 * corio_loop_run wait for it), so memory in the coroutine's body's frame stays valid, but memory
 * in the frame of a function that returns meanwhile is reused. corio_loop_free waits for every fn
 * still running. May suspend. Returns fn's result, or -errno: -ETIMEDOUT, -ECANCELED, -EPERM
 * outside a coroutine, -EAGAIN when blocking_queue calls wait already (or no worker thread could
 * be started), -EINVAL for a NULL @fn, -ENOMEM, -EMFILE (the pool's eventfd). */
CORIO_API int corio_blocking(corio_blocking_fn *fn, void *arg, int64_t deadline);

/* ==== net ==================================================================================== */

/* Creates a socket; SOCK_CLOEXEC is always added. Uses IORING_OP_SOCKET where the kernel has it and
 * socket(2) otherwise; suspends only for the kernel's immediate answer: no deadline. Returns the
 * fd, owned by the caller, or -errno. */
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

/* shutdown(2) with @how SHUT_RD, SHUT_WR or SHUT_RDWR. Suspends only for the kernel's immediate
 * answer (a shutdown does not wait for the peer): no deadline. Returns 0 or -errno. */
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

/* Binds and listens on a TCP socket. @host is a numeric IPv4 or IPv6 address ("127.0.0.1", "::1",
 * "fe80::1%eth0"), NULL for all IPv4 addresses, or a host name, resolved as corio_resolve does;
 * the socket is bound to the first of the name's addresses that binds (one socket: a name with an
 * IPv6 and an IPv4 address gets the first in the resolver's order). @port 0 picks a free port
 * (read it with corio_local_port). Sets SO_REUSEADDR, and TCP_NODELAY, which the accepted
 * connections inherit. Usable outside coroutines: there a name is looked up on the calling
 * thread, which waits for the resolver; inside one the lookup runs on the loop's workers
 * (corio_blocking) and the call suspends for it. A numeric address never suspends. Returns the
 * listening fd, or -errno (-EINVAL for an address that does not parse, the errors of
 * corio_resolve for a name, -EADDRINUSE, ...). */
CORIO_API int corio_listen_tcp(const char *host, uint16_t port, int backlog, unsigned flags);

/* Connects a new TCP socket to @host:@port and sets TCP_NODELAY. @host is a numeric IPv4 or IPv6
 * address or a host name, resolved as corio_resolve does (within @deadline). A name's addresses
 * race as RFC 8305 ("happy eyeballs") says: they are tried in the resolver's order with the two
 * families taking turns (IPv6, IPv4, IPv6, ... when the first is IPv6); each attempt has 250 ms
 * alone before the next joins it, or less when it fails (refused, unreachable: the next starts
 * at once); the first to connect wins, and the others are cancelled and their sockets closed. So
 * an address whose path drops the attempt without an answer costs 250 ms, not the whole
 * @deadline. At most 8 addresses are tried. May suspend. Returns the connected fd, owned by the
 * caller, or -errno: the last failed attempt's (-ECONNREFUSED, -ENETUNREACH), -ETIMEDOUT,
 * -ECANCELED, or corio_resolve's. */
CORIO_API int corio_dial_tcp(const char *host, uint16_t port, int64_t deadline);

/* Resolves @host to at most @max addresses with @port, stored in @out[0..) as struct sockaddr_in
 * or sockaddr_in6 (connect them with the length of their family), for @family AF_UNSPEC (both),
 * AF_INET or AF_INET6. A numeric address ("127.0.0.1", "::1", "fe80::1%eth0") is parsed without a
 * lookup and without suspending, also outside a coroutine; a host that can only be meant as an
 * address (it has a ':', or only digits and dots) and does not parse is -EINVAL, not looked up. A
 * name is looked up with getaddrinfo (/etc/hosts, DNS, as nsswitch.conf says) on the loop's
 * worker threads (corio_blocking), for stream sockets, in the resolver's order (RFC 6724 and
 * /etc/gai.conf), without AI_ADDRCONFIG (so "localhost" resolves on a host that has only loopback
 * addresses). Cancel or @deadline return at once; a lookup that has begun goes on in its worker
 * and its answer is dropped. May suspend. Returns the number of addresses stored (>= 1; a name
 * may have more than @max), or -errno. getaddrinfo's errors map to: EAI_NONAME, EAI_NODATA,
 * EAI_ADDRFAMILY (no such name, or no address of @family) -ENOENT; EAI_AGAIN (the name server
 * could not be reached, or said to try again) -EAGAIN; EAI_MEMORY -ENOMEM; EAI_FAIL (the name
 * server failed for good) -EIO; EAI_FAMILY -EAFNOSUPPORT; EAI_SYSTEM the errno it left; any other
 * -EINVAL. Also: -ENOENT for a numeric address of the other family, -EAFNOSUPPORT for another
 * @family, -EINVAL for a NULL @host or @out or a @max of 0, -EPERM for a name outside a
 * coroutine, and corio_blocking's -ETIMEDOUT, -ECANCELED, -EAGAIN (its queue full), -ENOMEM. */
CORIO_API int corio_resolve(const char *host, uint16_t port, int family,
                            struct sockaddr_storage *out, size_t max, int64_t deadline);

/* Binds and listens on a Unix stream socket at @path, unlinking a stale socket file first. Does not
 * suspend. Returns the listening fd, or -errno (-ENAMETOOLONG for a path that does not fit). */
CORIO_API int corio_listen_unix(const char *path, int backlog);

/* Connects a new Unix stream socket to @path. May suspend. Returns the fd, or -errno. */
CORIO_API int corio_dial_unix(const char *path, int64_t deadline);

/* Returns the local port of socket @fd (after a bind to port 0), or -errno. */
CORIO_API int corio_local_port(int fd);

/* Zero-copy send (IORING_OP_SEND_ZC, 6.0): the kernel sends from @buf without copying it and the
 * call returns only once the kernel has let go of @buf (its notification CQE), so @buf may be
 * reused at once. Worth it for large messages; corio_send does it by itself from
 * corio_loop_opts.zc_threshold bytes. -EOPNOTSUPP where the kernel lacks it. Returns bytes sent or
 * -errno. */
CORIO_API ssize_t corio_send_zc(int fd, const void *buf, size_t len, int flags, int64_t deadline);

/* A listener with a multishot accept armed (5.19): one SQE accepts many connections, which queue
 * here until corio_acceptor_next takes them. Lives in caller storage; single coroutine use. */
struct corio_acceptor {
    CORIO_ALIGN8 unsigned char opaque_[128];
};

/* Accept into the fixed file table: corio_acceptor_next returns direct descriptors
 * (CORIO_FD_FIXED | slot), which need corio_loop_opts.fixed_files. The kernel accepts before it
 * takes a slot and resets the connection when the table is full, so a fixed acceptor accepts one
 * connection at a time and only with a slot free; while none is, corio_acceptor_next returns
 * -ENFILE (close direct descriptors with corio_close, which frees their slots). */
#define CORIO_ACCEPT_FIXED 0x1u

/* Arms a multishot accept on listener @fd (the accepted sockets get SOCK_CLOEXEC). Must be called
 * in a coroutine. Returns 0 or -errno (-EOPNOTSUPP without multishot accept). */
CORIO_API int corio_acceptor_init(struct corio_acceptor *a, int fd, unsigned flags);

/* Takes the next accepted connection, waiting for one. When the kernel ends the multishot (a CQE
 * without IORING_CQE_F_MORE, e.g. at EMFILE) it is armed again on the next call; -EMFILE and
 * -ENFILE are returned so that the caller backs off instead of spinning. May suspend. Returns the
 * new fd, owned by the caller, or -errno (-ETIMEDOUT, -ECANCELED). */
CORIO_API int corio_acceptor_next(struct corio_acceptor *a, int64_t deadline);

/* Disarms the multishot accept, waits for its last CQE, and closes connections still queued.
 * May suspend. Returns nothing. */
CORIO_API void corio_acceptor_fini(struct corio_acceptor *a);

/* ==== readiness ==============================================================================
 * For a library that does its own non-blocking I/O (a TLS or protocol library that says "want
 * read" or "want write", a resolver, a database client) and only needs to be told when to try
 * again: the coroutine waits for readiness, the library makes the calls. @events are <poll.h>'s
 * POLLIN, POLLOUT, POLLPRI and POLLRDHUP, or'd; other bits are ignored. POLLERR and POLLHUP are
 * reported whether asked for or not, and so is POLLRDHUP (the peer shut down its side) once it
 * happens. Any fd that can be polled works (sockets, pipes, eventfds, timerfds); a regular file
 * is always ready. On io_uring a wait for POLLPRI alone is not woken by TCP urgent data: the
 * kernel's poll leaves POLLPRI out when it matches a wake-up against the events asked for
 * (io_uring/poll.c, IO_ASYNC_POLL_COMMON; so on 6.18), so ask for POLLIN | POLLPRI. A wait that
 * is ready when it starts, and wake-ups that name no event (a sysfs attribute's), are seen
 * either way. */

/* Waits until @fd is ready for @events, or already is. May suspend. Returns the ready events
 * (> 0), or -errno: -ETIMEDOUT, -ECANCELED (the caller was cancelled, or @fd was closed with
 * corio_close), -EBADF, -EPERM outside a coroutine. */
CORIO_API int corio_poll(int fd, unsigned events, int64_t deadline);
CORIO_API int corio_poll_start(struct corio_future *f, int fd, unsigned events, int64_t deadline);

/* A watch kept on one fd for a long time (a TLS connection, a resolver's socket): one poll stays
 * armed for every wake-up of the fd (multishot, 5.13: one SQE in all, where corio_poll costs one
 * per wait; without CORIO_FEAT_POLL_MULTISHOT it is armed again for each wait), and the events
 * that come while its coroutine is busy are kept, or'd together, until corio_poller_next returns
 * them: nothing is lost. Events are reported when they happen, as by epoll's edge-triggered mode,
 * not again while they last: call corio_poller_next once the library's call would block (EAGAIN,
 * SSL_ERROR_WANT_READ), not while data it has not read may wait. It may return an event that is
 * over by then (what came was read meanwhile): the library's next call says it would block, and
 * the wait after that waits. Lives in caller storage; one coroutine, the one that called
 * corio_poller_init, uses it, on its loop's thread. */
struct corio_poller {
    CORIO_ALIGN8 unsigned char opaque_[128];
};

/* Prepares a poller of @fd for @events (as corio_poll's); the poll is armed on the first
 * corio_poller_next. Does not suspend. Returns 0, or -errno: -EPERM outside a coroutine,
 * -EOPNOTSUPP without readiness waits (CORIO_FEAT_POLL). */
CORIO_API int corio_poller_init(struct corio_poller *p, int fd, unsigned events);

/* Returns the events kept since the last call, or waits for the next. It returns all it kept,
 * whichever the caller waits for now: one that waits for POLLOUT and is given POLLIN keeps that
 * for its next wait, as it is not reported again. A deadline or a cancel ends the wait, not the
 * watch: events that come afterwards are kept for the next call. May suspend. Returns the ready
 * events (> 0), or -errno: -ETIMEDOUT, -ECANCELED (the caller was cancelled, or, from then on,
 * @fd was closed with corio_close), -EBADF (from then on), -EPERM outside the coroutine that
 * owns @p, -EINVAL for a poller not prepared or finished. */
CORIO_API int corio_poller_next(struct corio_poller *p, int64_t deadline);

/* Disarms the poll and waits for its last CQE, so that @p's storage may go; works in a cancelled
 * coroutine too. May suspend (while the poll is armed), in the owning coroutine only. A poller
 * whose owner returns without this call is disarmed then, and the owner's stack is kept until
 * the last CQE is in. Returns nothing. */
CORIO_API void corio_poller_fini(struct corio_poller *p);

/* ==== buffers ================================================================================
 * Provided buffer rings (5.19): the kernel picks a buffer from the ring when data arrives, so a
 * connection parked in a receive owns no buffer. A multishot receive keeps one SQE armed per
 * connection for every arrival. The coroutine borrows each filled buffer and gives it back with
 * corio_buf_release; when the ring runs dry the kernel stops the multishot (-ENOBUFS) and corio
 * re-arms it once buffers come back: data waits in the socket, nothing is dropped. */

struct corio_bufring;

/* A buffer borrowed from a ring: @len bytes at @data. Give it back with corio_buf_release. */
struct corio_buf {
    void *data;                 /* the received bytes */
    size_t len;                 /* how many */
    struct corio_bufring *ring; /* the ring it returns to */
    uint32_t id;                /* its id in the ring */
};

/* Creates a ring of @count buffers (a power of two, at most 32768) of @size bytes each on @loop
 * (NULL: the running loop), registered with the kernel as a new buffer group. Returns 0 and sets
 * *out, or -errno (-EINVAL, -ENOMEM, -EOPNOTSUPP before 5.19). */
CORIO_API int corio_bufring_new(struct corio_bufring **out, struct corio_loop *loop,
                                unsigned count, size_t size);

/* Frees a ring whose buffers are all back and that no receiver uses. NULL is a no-op. Returns
 * nothing. */
CORIO_API void corio_bufring_free(struct corio_bufring *br);

/* Returns the number of buffers not borrowed: in the kernel's ring, or free and ready to go there
 * (the ring holds a working set of the warmest buffers and grows when the kernel runs dry). */
CORIO_API unsigned corio_bufring_available(const struct corio_bufring *br);

/* Gives a borrowed buffer back to its ring (no system call). Returns nothing. */
CORIO_API void corio_buf_release(struct corio_buf *b);

/* A multishot receive on one socket into a buffer ring. Caller storage; one coroutine uses it.
 * It queues what arrives until its coroutine takes it; past 32 queued buffers it pauses (the
 * socket holds the rest, and TCP pushes back on the peer) until the queue is taken, so that a
 * connection that is not read cannot drain a ring that others share. */
struct corio_receiver {
    CORIO_ALIGN8 unsigned char opaque_[128];
};

/* Prepares a receiver of socket @fd into @br; the multishot recv is armed on the first
 * corio_receiver_next. Returns 0, or -EPERM outside a coroutine. */
CORIO_API int corio_receiver_init(struct corio_receiver *rx, int fd, struct corio_bufring *br);

/* Takes the next received buffer into *out (borrowed: release it). May suspend. Returns its length
 * (> 0), 0 when the peer has shut down, or -errno (-ECONNRESET, -ETIMEDOUT, -ECANCELED). */
CORIO_API ssize_t corio_receiver_next(struct corio_receiver *rx, struct corio_buf *out,
                                      int64_t deadline);

/* Disarms the receive, waits for its last CQE and releases the buffers still queued. May
 * suspend. Returns nothing. */
CORIO_API void corio_receiver_fini(struct corio_receiver *rx);

/* Registers @n buffers with the kernel for corio_read_fixed / corio_write_fixed on @loop (NULL:
 * the running loop); they stay pinned until corio_buffers_unregister or the loop's end. Returns 0
 * or -errno (-EBUSY if buffers are registered already). */
CORIO_API int corio_buffers_register(struct corio_loop *loop, const struct iovec *iov, unsigned n);

/* Unregisters the buffers of corio_buffers_register. Returns 0 or -errno. */
CORIO_API int corio_buffers_unregister(struct corio_loop *loop);

/* Reads into registered buffer @index ([@buf, @buf + @len) must lie inside it) at @off. Returns
 * bytes read or -errno. */
CORIO_API ssize_t corio_read_fixed(int fd, void *buf, size_t len, int64_t off, unsigned index,
                                   int64_t deadline);

/* Writes from registered buffer @index at @off. Returns bytes written or -errno. */
CORIO_API ssize_t corio_write_fixed(int fd, const void *buf, size_t len, int64_t off,
                                    unsigned index, int64_t deadline);

/* ==== groups ================================================================================= */

/* A group (a nursery): coroutines spawned into it are its members. Cancelling the group cancels
 * every member; its owner waits for all of them, and corio_group_wait never returns while a member
 * is alive, so no coroutine outlives its group. Lives in caller storage: zero it or use
 * CORIO_GROUP_INIT, or corio_group_init for flags. Single-loop: no atomics, no locks. */
struct corio_group {
    CORIO_ALIGN8 unsigned char opaque_[96];
};
#define CORIO_GROUP_INIT {{0}}

/* When a member returns a negative value, cancel the rest of the group (fail fast). */
#define CORIO_GROUP_CANCEL_ON_ERROR 0x1u

/* Initializes @g with CORIO_GROUP_* @flags. Returns 0, or -EINVAL for an unknown flag. */
CORIO_API int corio_group_init(struct corio_group *g, unsigned flags);

/* Spawns fn(arg) as a member of @g on the calling thread's running loop, as corio_spawn does. A
 * group that is being cancelled starts new members cancelled. Returns 0 or -errno (-ENOMEM,
 * -EINVAL outside a running loop). */
CORIO_API int corio_group_spawn(corio_id *out, struct corio_group *g, corio_fn *fn, void *arg);

/* corio_group_spawn with a spawn site, as corio_spawn_at; corio_group_spawn is a macro that
 * passes the caller's __FILE__ and __LINE__. Returns as corio_group_spawn. */
CORIO_API int corio_group_spawn_at(corio_id *out, struct corio_group *g, corio_fn *fn, void *arg,
                                   const char *file, int line);
#define corio_group_spawn(out, g, fn, arg) corio_group_spawn_at(out, g, fn, arg, __FILE__, __LINE__)

/* Cancels every member of @g, now and spawned later, without waiting. Returns the number of
 * members that were cancelled. */
CORIO_API int corio_group_cancel(struct corio_group *g);

/* Waits until every member of @g has ended. If @deadline passes or the caller is cancelled, the
 * members are cancelled and still waited for, then -ETIMEDOUT or -ECANCELED is returned; so when
 * this returns, the group is empty. With CORIO_GROUP_CANCEL_ON_ERROR, a member's failure is the
 * group's: the first negative result of a member is returned (the others were cancelled because
 * of it); without it, members' results are theirs (corio_group_error shows the first failure).
 * May suspend. Returns 0, or -errno (also -EPERM outside a coroutine, -EDEADLK when called by a
 * member of @g). */
CORIO_API int corio_group_wait(struct corio_group *g, int64_t deadline);

/* Returns the number of members alive. */
CORIO_API size_t corio_group_size(const struct corio_group *g);

/* Returns the first negative value a member returned, or 0. */
CORIO_API int corio_group_error(const struct corio_group *g);

/* ==== sync ===================================================================================
 * Mutex, semaphore, wait group and event for coroutines of one loop. Waiting suspends the
 * coroutine, never the thread; waiters are served in FIFO order; no atomic instruction is used.
 * Each lives in caller storage, zero-initialized (the _INIT macros) or set up by its _init. A
 * wait returns 0, -ETIMEDOUT when @deadline passes, -ECANCELED if the caller is cancelled, or
 * -EPERM outside a coroutine. */

struct corio_mutex {
    CORIO_ALIGN8 unsigned char opaque_[48];
};
#define CORIO_MUTEX_INIT {{0}}

/* Initializes @m unlocked (as CORIO_MUTEX_INIT does). Returns 0. */
CORIO_API int corio_mutex_init(struct corio_mutex *m);
/* Locks @m; ownership passes to waiters in FIFO order. May suspend. Returns 0 or -errno
 * (-EDEADLK if the caller already holds it). */
CORIO_API int corio_mutex_lock(struct corio_mutex *m, int64_t deadline);
/* Returns 0 if @m was locked for the caller, or -EAGAIN (-EPERM outside a coroutine). */
CORIO_API int corio_mutex_trylock(struct corio_mutex *m);
/* Unlocks @m, handing it to the first waiter. Returns 0, or -EPERM if the caller does not hold it. */
CORIO_API int corio_mutex_unlock(struct corio_mutex *m);

struct corio_sem {
    CORIO_ALIGN8 unsigned char opaque_[16];
    uint64_t count_;  /* the permits: set by CORIO_SEM_INIT, private otherwise */
    unsigned char reserved_[24];
};
#define CORIO_SEM_INIT(count) {{0}, (count), {0}}

/* Initializes @s with @count permits (as CORIO_SEM_INIT(count) does). Returns 0. */
CORIO_API int corio_sem_init(struct corio_sem *s, unsigned count);
/* Takes a permit. May suspend. Returns 0 or -errno. */
CORIO_API int corio_sem_acquire(struct corio_sem *s, int64_t deadline);
/* Returns 0 if a permit was taken, or -EAGAIN. */
CORIO_API int corio_sem_tryacquire(struct corio_sem *s);
/* Returns a permit, handing it to the first waiter if there is one. Returns nothing. */
CORIO_API void corio_sem_release(struct corio_sem *s);
/* Returns the permits available now. */
CORIO_API unsigned corio_sem_value(const struct corio_sem *s);

struct corio_waitgroup {
    CORIO_ALIGN8 unsigned char opaque_[48];
};
#define CORIO_WAITGROUP_INIT {{0}}

/* Initializes @wg with a zero counter (as CORIO_WAITGROUP_INIT does). Returns 0. */
CORIO_API int corio_waitgroup_init(struct corio_waitgroup *wg);

/* Adds @n (may be negative) to the counter; at zero the waiters wake. Returns 0, or -EINVAL if
 * the counter would go below zero (it is then left unchanged). */
CORIO_API int corio_waitgroup_add(struct corio_waitgroup *wg, int n);
/* corio_waitgroup_add(wg, -1). Returns 0 or -EINVAL. */
CORIO_API int corio_waitgroup_done(struct corio_waitgroup *wg);
/* Waits until the counter is zero. May suspend. Returns 0 or -errno. */
CORIO_API int corio_waitgroup_wait(struct corio_waitgroup *wg, int64_t deadline);

struct corio_event {
    CORIO_ALIGN8 unsigned char opaque_[48];
};
#define CORIO_EVENT_INIT {{0}}

/* Initializes @ev unset (as CORIO_EVENT_INIT does). Returns 0. */
CORIO_API int corio_event_init(struct corio_event *ev);

/* Sets the one-shot event @ev: every waiter wakes, and later waits return at once. Returns
 * nothing. */
CORIO_API void corio_event_set(struct corio_event *ev);
/* Returns true once @ev is set. */
CORIO_API bool corio_event_is_set(const struct corio_event *ev);
/* Waits until @ev is set. May suspend. Returns 0 or -errno. */
CORIO_API int corio_event_wait(struct corio_event *ev, int64_t deadline);

/* ==== channels =============================================================================== */

/* A channel of fixed-size values between coroutines of one loop: bounded (capacity > 0) or
 * unbuffered (capacity 0: a send waits for a receiver and hands the value over directly). Values
 * are copied in and out; many senders and receivers wait in FIFO order. */
struct corio_chan;

/* Creates a channel of values of @elem_size bytes (1 to 65536) holding up to @capacity. The only
 * allocation is here. Returns 0 and sets *out, or -errno (-EINVAL, -ENOMEM). */
CORIO_API int corio_chan_new(struct corio_chan **out, size_t elem_size, size_t capacity);

/* Frees @ch. It must have no waiters: close it and let them run first. NULL is a no-op. Returns
 * nothing. */
CORIO_API void corio_chan_free(struct corio_chan *ch);

/* Sends the value at @elem. May suspend. Returns 0, -EPIPE if the channel is (or gets) closed,
 * -ETIMEDOUT, -ECANCELED, or -EPERM outside a coroutine when it would have to wait. */
CORIO_API int corio_chan_send(struct corio_chan *ch, const void *elem, int64_t deadline);

/* Receives a value into @elem. May suspend. Returns 1 when a value was received, 0 at the end of
 * the stream (closed and drained), or -errno (-ETIMEDOUT, -ECANCELED, -EPERM). */
CORIO_API int corio_chan_recv(struct corio_chan *ch, void *elem, int64_t deadline);

/* Non-waiting forms. Return as above, or -EAGAIN instead of waiting. */
CORIO_API int corio_chan_trysend(struct corio_chan *ch, const void *elem);
CORIO_API int corio_chan_tryrecv(struct corio_chan *ch, void *elem);

/* Closes @ch: waiting receivers get 0 (end of stream) once the buffer is drained, waiting and
 * later senders get -EPIPE. Values already buffered can still be received. Returns 0, or
 * -EALREADY if it was closed before. */
CORIO_API int corio_chan_close(struct corio_chan *ch);

/* Returns the number of values buffered. */
CORIO_API size_t corio_chan_len(const struct corio_chan *ch);

/* One case of corio_select. */
enum corio_select_op {
    CORIO_SELECT_SEND,  /* send *elem on ch */
    CORIO_SELECT_RECV,  /* receive into *elem from ch */
    CORIO_SELECT_FUTURE /* wait for future f (started by the caller) */
};

struct corio_select_case {
    enum corio_select_op op;
    struct corio_chan *ch;  /* SEND, RECV */
    void *elem;             /* SEND: the value; RECV: where to store it */
    struct corio_future *f; /* FUTURE */
    int64_t result;         /* out: the chosen case's result, as its own call would return it */
};

/* Waits until one of @cases[0..n) can proceed, performs it (only that one), and stores its result
 * in cases[i].result. Cases are tried in order when several are ready at once. May suspend.
 * Returns the index i, or -errno: -ETIMEDOUT, -ECANCELED, -EINVAL, -EPERM. */
CORIO_API int corio_select(struct corio_select_case *cases, size_t n, int64_t deadline);

/* ==== channels between loops ================================================================= */

/* A channel of fixed-size values between coroutines on different loops, on different threads
 * (the loops of corio_run_threads, or loops of the program's own): bounded, first in first out
 * (values from one sender reach one receiver in the order sent), any number of senders and
 * receivers on any loops. A separate type rather than a flag of corio_chan: corio_chan's hand-off
 * within one loop (a value copied straight into a parked receiver's frame, one wake-up, no atomic
 * instruction) is what a flag would tax with a test or a fence on every call; here every send and
 * receive pays one compare-and-swap on a lock-free queue (Vyukov's bounded MPMC array), and a
 * waiting side is woken through its loop's mailbox only when it actually waits: no lock is taken
 * while nobody waits, and a loop that sleeps is woken as by corio_loop_post. A coroutine that waits
 * on it keeps its loop waiting for a message: the loops need CORIO_LOOP_REMOTE (corio_run_threads
 * sets it), or a loop whose every coroutine waits would report a deadlock. */
struct corio_xchan;

/* Creates a channel of values of @elem_size bytes (1 to 65536) holding up to @capacity (>= 1,
 * rounded up to a power of two, at least 2: corio_xchan_cap). Any thread. The only allocation is
 * here. Returns 0 and sets *out, or -errno (-EINVAL, -ENOMEM). */
CORIO_API int corio_xchan_new(struct corio_xchan **out, size_t elem_size, size_t capacity);

/* Frees @ch once no thread uses it any more and nobody waits on it (close it, and let the waiters
 * return first). NULL is a no-op. Any thread. Returns nothing. */
CORIO_API void corio_xchan_free(struct corio_xchan *ch);

/* Sends a copy of the value at @elem, waiting while the channel is full. May suspend; a coroutine
 * on any loop. A cancel or a deadline while it waits loses nothing: the value was not sent.
 * Returns 0, or -errno: -EPIPE if the channel is (or gets) closed, -ETIMEDOUT, -ECANCELED, -EPERM
 * outside a coroutine when it would have to wait. */
CORIO_API int corio_xchan_send(struct corio_xchan *ch, const void *elem, int64_t deadline);

/* Receives the oldest value into @elem, waiting while the channel is empty. May suspend; a
 * coroutine on any loop. A cancel or a deadline while it waits takes no value. Returns 1 when a
 * value was received, 0 at the end of the stream (closed and every value sent before the close
 * received), or -errno (-ETIMEDOUT, -ECANCELED, -EPERM). */
CORIO_API int corio_xchan_recv(struct corio_xchan *ch, void *elem, int64_t deadline);

/* Non-waiting forms, from any thread (also one that runs no loop). Return as above, or -EAGAIN
 * where the waiting form would wait. */
CORIO_API int corio_xchan_trysend(struct corio_xchan *ch, const void *elem);
CORIO_API int corio_xchan_tryrecv(struct corio_xchan *ch, void *elem);

/* Closes @ch, from any thread: waiting and later senders get -EPIPE; receivers get the values sent
 * before the close, then 0. A send that races with the close either took its place before it (its
 * value is received) or fails. Returns 0, or -EALREADY if it was closed before. */
CORIO_API int corio_xchan_close(struct corio_xchan *ch);

/* Returns the number of values buffered: a snapshot, which other threads may change at once. */
CORIO_API size_t corio_xchan_len(const struct corio_xchan *ch);

/* Returns how many values @ch holds when full: the capacity asked for, rounded up to a power of
 * two, at least 2. */
CORIO_API size_t corio_xchan_cap(const struct corio_xchan *ch);

/* ==== generators ============================================================================= */

/* A generator: a coroutine that yields values out and receives a value back on each resume, like
 * a Python generator driven by send(). It runs on the loop of the coroutine that creates it, and
 * only coroutines of that loop drive it. Lives in caller storage. */
struct corio_gen {
    CORIO_ALIGN8 unsigned char opaque_[96];
};

/* A generator's body. @in is the value of the first corio_gen_send. Its return value ends the
 * generator and is kept for corio_gen_result. */
typedef int corio_gen_fn(struct corio_gen *g, void *arg, void *in);

/* Prepares generator @g to run fn(g, arg, in) on the first send. Returns 0, or -errno (-ENOMEM,
 * -EPERM outside a coroutine). */
CORIO_API int corio_gen_init(struct corio_gen *g, corio_gen_fn *fn, void *arg);

/* Resumes @g with @in and waits until it yields or ends. The hand-off is a direct switch between
 * the two coroutines. If @deadline passes while the generator runs (it waits on I/O, say), the
 * generator is cancelled as for a cancel of the caller: it never runs on without its driver. May
 * suspend. Returns 1 with the yielded value in *out, 0 when the generator has ended (see
 * corio_gen_result), or -errno: -EPERM (not a coroutine of its loop), -EBUSY (another coroutine is
 * sending), -EDEADLK (the generator sending to itself), -ECANCELED (the caller is cancelled) or
 * -ETIMEDOUT (@deadline passed); after those two the generator is cancelled and has ended. */
CORIO_API int corio_gen_send(struct corio_gen *g, void *in, void **out, int64_t deadline);

/* corio_gen_send(g, NULL, out, deadline): the iterator form,
 * `while (corio_gen_next(&g, &v, CORIO_FOREVER) > 0)`. */
CORIO_API int corio_gen_next(struct corio_gen *g, void **out, int64_t deadline);

/* Inside the generator: hands @value to the sender and suspends until the next send, whose value
 * is stored in *in (if not NULL). Returns 0, or -ECANCELED when the generator is being finished
 * or its driver was cancelled: the body should then return. */
CORIO_API int corio_gen_yield(struct corio_gen *g, void *value, void **in);

/* Returns the generator's return value once it has ended, or -EINPROGRESS. */
CORIO_API int corio_gen_result(const struct corio_gen *g);

/* Finishes @g: a generator that has not ended is cancelled and run to its end. It takes no
 * deadline: a cancelled generator's waits fail at once, so it only runs its clean-up. May
 * suspend. Returns its result (as corio_gen_result), or -EPERM outside a coroutine. */
CORIO_API int corio_gen_fini(struct corio_gen *g);

/* ==== introspection ========================================================================== */

/* One operation in flight, as corio_loop_inflight reports it. */
struct corio_op_info {
    corio_id owner; /* the coroutine that started it and waits for it */
    const char *op; /* what it is: "recv", "accept_multishot", "timeout" (a sleep), "blocking" (a
                       corio_blocking call on the loop's workers), ...: a static string */
    int fd;         /* its fd, or -1 (and for "socket", the domain) */
    int64_t age_ns; /* how long ago it was submitted */
};

/* The in-flight table: fills @out[0..@n) with the operations in flight that @loop's coroutines
 * (zombies included) started, coroutine by coroutine in the order they were spawned. Ops of the
 * loop's own (its wake-up read, its timers) are not listed. The table is always kept, at the
 * cost of a time stamp per op, unless the library was built with CORIO_INFLIGHT=OFF. On @loop's
 * thread only (from one of its coroutines, a function posted to it, or while it does not run).
 * Does not suspend. Returns how many are in flight (more than @n when @out was too short), or
 * -errno: -EPERM on another thread, -EINVAL, -EOPNOTSUPP when the table is compiled out. */
CORIO_API int corio_loop_inflight(const struct corio_loop *loop, struct corio_op_info *out,
                                  size_t n);

/* The coroutine dump: writes to @f a line on @loop (backend, coroutines, completions in flight,
 * iterations) and one per coroutine: its number and id, its name (corio_set_name), its state
 * (running; ready; waiting, and for what: an op and its fd, a channel, a lock, a join...; ended
 * with ops still in flight), whether it is cancelled and its deadline, its spawn site (the
 * corio_spawn macro's __FILE__:__LINE__), its body's address, and, in debug builds (no NDEBUG),
 * its stack's high-water mark; under it, a line for each of its ops in flight, with opcode, fd
 * and age. The format is for people, not parsers. On @loop's thread only (another thread posts
 * a function that calls it: corio_loop_post). Does not suspend. Returns 0, or -errno: -EPERM on
 * another thread, -EINVAL. */
CORIO_API int corio_loop_dump(const struct corio_loop *loop, FILE *f);

#ifdef __cplusplus
}
#endif

#endif /* CORIO_H */
