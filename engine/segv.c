/* The stack-overflow reporter. A coroutine that runs past the end of its stack faults in its guard
 * page; the handler, which runs on an alternate signal stack since the faulting one has no room,
 * says so in words before the default action ends the process. Any other SIGSEGV goes to the
 * handler that was installed before. */
#include "segv.h"

#include "base.h"
#include "scheduler.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Each thread that creates a loop gets an alternate signal stack, so that the SIGSEGV of a
 * coroutine that ran into its guard page can be handled at all: the faulting stack has no room. */
static CORIO__TLS void *tls_altstack;
static CORIO__TLS unsigned tls_altstack_users;
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;
static struct sigaction segv_prev; /* written once under segv_once, read by the handler */

#define ALTSTACK_SIZE (64 * 1024)

static void write_str(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    struct corio__task *t = corio__tls_task;
    if (t && t->stack && corio__stack_in_guard(t->stack, si->si_addr)) {
        /* Only async-signal-safe calls from here on. */
        write_str("corio: coroutine stack overflow: a coroutine ran past the end of its stack "
                  "(raise corio_loop_opts.stack_size)\n");
        signal(SIGSEGV, SIG_DFL);
        return; /* the faulting access repeats and the default action ends the process */
    }
    if (segv_prev.sa_flags & SA_SIGINFO) {
        if (segv_prev.sa_sigaction) {
            segv_prev.sa_sigaction(sig, si, uctx);
            return;
        }
    } else if (segv_prev.sa_handler != SIG_DFL && segv_prev.sa_handler != SIG_IGN) {
        segv_prev.sa_handler(sig);
        return;
    }
    signal(SIGSEGV, SIG_DFL);
}

static void segv_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &segv_prev);
}

void corio__segv_acquire(void)
{
    pthread_once(&segv_once, segv_install);
    if (tls_altstack_users++ > 0)
        return;
    stack_t cur;
    /* Keep an alternate stack the application (or a sanitizer) already installed. */
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return;
    void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                     0);
    if (mem == MAP_FAILED)
        return;
    stack_t ss = {.ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, ALTSTACK_SIZE);
        return;
    }
    tls_altstack = mem;
}

void corio__segv_release(void)
{
    if (tls_altstack_users == 0 || --tls_altstack_users > 0 || !tls_altstack)
        return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(tls_altstack, ALTSTACK_SIZE);
    tls_altstack = NULL;
}

