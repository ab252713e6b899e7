/* The engine's leaf, which every module may use and which uses none of them: assertions and the
 * panic path, branch hints, container_of, sanitizer detection, thread-local storage (base.c holds
 * the functions, the clock and the feature names). */
#ifndef CORIO_BASE_H
#define CORIO_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corio.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A spin-wait hint to the CPU. */
#if defined(__x86_64__) || defined(__i386__)
#define corio__cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define corio__cpu_relax() __asm__ volatile("yield" ::: "memory")
#else
#define corio__cpu_relax() ((void)0)
#endif

#define CORIO__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Aborts with file:line and the failed expression. For broken internal invariants only: never for
 * anything a caller or the kernel can cause. */
#define CORIO__ASSERT(cond)                                                                        \
    do {                                                                                           \
        if (unlikely(!(cond)))                                                                     \
            corio__assert_fail(#cond, __FILE__, __LINE__);                                         \
    } while (0)

_Noreturn void corio__assert_fail(const char *expr, const char *file, int line);

/* Prints "corio: <message>" to stderr and aborts. For kernel failures that cannot happen. */
_Noreturn void corio__panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef CORIO_TESTING
/* Testing builds: run before a panic or a failed assertion aborts (the fault seam prints how to
 * replay the faults that led there). NULL: nothing. */
extern void (*corio__panic_hook)(void);
#endif

/* Sanitizer and valgrind support. */
#if defined(__SANITIZE_ADDRESS__)
#define CORIO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO__ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define CORIO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORIO__TSAN 1
#endif
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#define CORIO__VALGRIND 1
#endif
#endif

#ifdef CORIO__VALGRIND
/* True when the process runs under valgrind: read once at the first loop's creation, since each
 * RUNNING_ON_VALGRIND is a client request of a dozen instructions, too many for the hot path. */
extern bool corio__on_valgrind;
#endif

/* Text written into a caller's buffer, snprintf-like: @pos counts all that was written or would
 * have been, and the buffer stays NUL-terminated where it has room. */
struct corio__text {
    char *buf;  /* the caller's buffer, or NULL with @len 0 */
    size_t len; /* its size */
    size_t pos; /* the length of the text so far, also past @len */
};

/* Appends printf(@fmt, ...) to @t. Returns nothing. */
void corio__text_put(struct corio__text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Thread-local storage for the current loop and coroutine: initial-exec, so that a shared libcorio
 * reads it with one instruction instead of a __tls_get_addr call. */
#define CORIO__TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* ---- the clock --------------------------------------------------------------------------------
 * corio_now() is CLOCK_MONOTONIC plus the calling thread's skew: the time its loops on the virtual
 * clock (CORIO_LOOP_VIRTUAL_CLOCK) skipped by jumping to their next timer instead of waiting for
 * it. The skew only grows, so that the clock stays monotonic, and it is 0 on a thread that never
 * ran such a loop. Times handed to the kernel (absolute timeouts, which run on the real clock) are
 * converted back with corio__ts_from_ns (op.h). */
extern CORIO__TLS int64_t corio__clock_skew;

/* Returns CLOCK_MONOTONIC in nanoseconds, without the skew: the kernel's time. */
int64_t corio__now_real(void);

/* Moves the calling thread's clock forward to @to, if it is later than now. Returns nothing. */
void corio__clock_jump(int64_t to);

#endif
