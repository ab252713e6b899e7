/* Signals for coroutines: a signalfd, read through the loop like any other fd (through the ring
 * on io_uring, waited for with epoll on the epoll backend), and the signal mask and dispositions
 * that make the kernel queue the signals for it instead of acting on them. */
#include "loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct corio__signals {
    sigset_t set;         /* the signals read */
    sigset_t blocked;     /* those of them that init blocked: fini unblocks them */
    sigset_t reset;       /* those whose ignored disposition init set to the default */
    int fd;               /* the signalfd, or -1 */
    _Atomic int nonblock; /* the fd's O_NONBLOCK, as last set for a loop's backend: loops of
                             several threads may read one set of signals */
};
_Static_assert(sizeof(struct corio__signals) <= sizeof(struct corio_signals), "grow signals");
_Static_assert(_Alignof(struct corio__signals) <= _Alignof(struct corio_signals), "align");

static struct corio__signals *sigs(struct corio_signals *pub)
{
    return (struct corio__signals *)(void *)pub;
}

int corio_signals_init(struct corio_signals *pub, const sigset_t *set)
{
    struct corio__signals *s = sigs(pub);
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    if (!set)
        return -EINVAL;
    s->set = *set;
    sigset_t old;
    int err = pthread_sigmask(SIG_BLOCK, set, &old);
    if (err)
        return -err;
    sigemptyset(&s->blocked);
    sigemptyset(&s->reset);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(set, sig) != 1)
            continue;
        if (!sigismember(&old, sig))
            sigaddset(&s->blocked, sig);
        /* Blocked, the default action never runs; an ignored signal may be discarded when it is
         * sent (POSIX leaves that open), and a shell starts its background jobs with SIGINT
         * ignored. */
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
            sa.sa_handler = SIG_DFL;
            if (sigaction(sig, &sa, NULL) == 0)
                sigaddset(&s->reset, sig);
        }
    }
    /* Blocking, as io_uring wants it (it waits for a blocking fd by itself); the epoll backend
     * makes it non-blocking on first use (corio_signals_next). */
    s->fd = signalfd(-1, set, SFD_CLOEXEC);
    if (s->fd < 0) {
        err = -errno;
        corio_signals_fini(pub);
        return err;
    }
    return 0;
}

/* Gives the fd the O_NONBLOCK the calling loop's backend needs: io_uring waits for a blocking fd
 * itself (a non-blocking one may end at once with -EAGAIN, again and again, on kernels before
 * 6.7, whose signalfd cannot be read without blocking otherwise), while the epoll backend tries
 * the read first and must not block. Returns 0 or -errno. */
static int suit_backend(struct corio__signals *s, struct corio_loop *l)
{
    int want = l->io.ring ? 0 : 1;
    if (atomic_load_explicit(&s->nonblock, memory_order_relaxed) == want)
        return 0;
    int fl = fcntl(s->fd, F_GETFL);
    if (fl < 0 || fcntl(s->fd, F_SETFL, want ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
        return -errno;
    atomic_store_explicit(&s->nonblock, want, memory_order_relaxed);
    return 0;
}

int corio_signals_next(struct corio_signals *pub, struct signalfd_siginfo *info, int64_t deadline)
{
    struct corio__signals *s = sigs(pub);
    struct corio__task *t = corio__tls_task;
    if (!t)
        return -EPERM;
    if (s->fd < 0)
        return -EBADF;
    struct corio_loop *l = corio__loop_of(t);
    int err = suit_backend(s, l);
    if (err)
        return err;
    struct signalfd_siginfo si;
    ssize_t n;
    /* A drain of the loop ends this wait once nothing but such waits is left (coro.c). */
    t->idle = CORIO__IDLE_LAST;
    l->coros.lingering++;
    do {
        n = corio_read(s->fd, &si, sizeof(si), -1, deadline);
    } while (n == -EAGAIN || n == -EINTR);
    l->coros.lingering--;
    t->idle = CORIO__IDLE_NO;
    if (n < 0)
        return (int)n;
    if (n != (ssize_t)sizeof(si))
        return -EIO;
    if (info)
        *info = si;
    return (int)si.ssi_signo;
}

void corio_signals_fini(struct corio_signals *pub)
{
    struct corio__signals *s = sigs(pub);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    /* The dispositions first: an ignored signal still pending is discarded, not delivered. */
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(&s->reset, sig) != 1)
            continue;
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0) {
            sa.sa_handler = SIG_IGN;
            sigaction(sig, &sa, NULL);
        }
    }
    sigemptyset(&s->reset);
    pthread_sigmask(SIG_UNBLOCK, &s->blocked, NULL);
    sigemptyset(&s->blocked);
}
