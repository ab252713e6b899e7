/* The epoll backend's set-up: creating and freeing it (the epoll set, the completion queue, the
 * worker pool and its eventfd), the ops and features it reports, and the provided-buffer groups
 * it emulates for buffer-ring receives. The hot path is in epoll.c and epoll_ops.c. */
#include "epoll_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "fault.h"

/* ---- lifetime and features ------------------------------------------------------------------------ */

int corio__poll_new(struct corio__poll **out, const struct corio_loop_opts *opts,
                    struct corio_stats *stats)
{
    (void)opts;
    struct corio__poll *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->cq_cap = 256;
    p->cq = malloc(p->cq_cap * sizeof(*p->cq));
    p->hash_cap = 256;
    p->hash = calloc(p->hash_cap, sizeof(*p->hash));
    if (p->epfd < 0 || !p->cq || !p->hash) {
        int err = p->epfd < 0 ? -errno : -ENOMEM;
        if (p->epfd >= 0)
            close(p->epfd);
        free(p->cq);
        free(p->hash);
        free(p);
        return err;
    }
    p->stats = stats;
    corio__list_init(&p->queue);
    /* The pool's eventfd now, its threads on first use: an fd that appears later would take the
     * number of one the program just closed, and an op on that stale number would reach it. */
    int err = corio__pool_init(&p->pool, 4);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->pool};
    if (!err && epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->pool.efd, &ev) != 0) {
        err = -errno;
        corio__pool_fini(&p->pool);
    }
    if (err) {
        close(p->epfd);
        free(p->cq);
        free(p->hash);
        free(p);
        return err;
    }
    /* The loop's inline checks read the ring's layout: point them at the same counters here.
     * Quiet means nothing queued, nothing posted, and (attention) no op waiting for readiness,
     * which only an epoll_wait can tell about: a loop busy with runnable coroutines then still
     * polls for it each iteration. */
    p->view.sqe_tail = &p->sq_tail;
    p->view.sq_khead = &p->sq_head;
    p->view.cq_khead = &p->cq_head;
    p->view.cq_ktail = &p->cq_tail;
    p->view.kflags = &p->attention;
    p->view.spill_n = &p->zero;
    p->view.attention = ~0u;
    *out = p;
    return 0;
}

void corio__poll_free(struct corio__poll *p)
{
    if (!p)
        return;
    corio__pool_fini(&p->pool);
    corio__fault_ring_free((const struct corio__ring *)(const void *)p);
    for (unsigned i = 0; i < p->n_chunks; i++)
        free(p->chunks[i]);
    free(p->chunks);
    for (unsigned i = 0; i < p->fd_chunks; i++)
        free(p->fds[i]);
    free(p->fds);
    while (p->bufs) {
        struct corio__poll_buf *b = p->bufs;
        p->bufs = b->next;
        free(b->iov);
        free(b->bid);
        free(b);
    }
    corio__heap_fini(&p->deadlines);
    free(p->hash);
    free(p->cq);
    close(p->epfd);
    free(p);
}

uint64_t corio__poll_features(void)
{
    static const enum corio_feature f[] = {
        CORIO_FEAT_NOP,           CORIO_FEAT_READ,          CORIO_FEAT_WRITE,
        CORIO_FEAT_READV,         CORIO_FEAT_WRITEV,        CORIO_FEAT_OPENAT,
        CORIO_FEAT_CLOSE,         CORIO_FEAT_FSYNC,         CORIO_FEAT_STATX,
        CORIO_FEAT_SOCKET,        CORIO_FEAT_ACCEPT,        CORIO_FEAT_CONNECT,
        CORIO_FEAT_SEND,          CORIO_FEAT_RECV,          CORIO_FEAT_SENDMSG,
        CORIO_FEAT_RECVMSG,       CORIO_FEAT_SHUTDOWN,      CORIO_FEAT_TIMEOUT,
        CORIO_FEAT_LINK_TIMEOUT,  CORIO_FEAT_ASYNC_CANCEL,  CORIO_FEAT_SEND_ZC,
        CORIO_FEAT_READ_FIXED,    CORIO_FEAT_WRITE_FIXED,   CORIO_FEAT_EXT_ARG,
        CORIO_FEAT_RECV_MULTISHOT, CORIO_FEAT_ACCEPT_MULTISHOT, CORIO_FEAT_BUF_RING,
        CORIO_FEAT_CANCEL_FD,     CORIO_FEAT_POLL,          CORIO_FEAT_POLL_MULTISHOT,
    };
    uint64_t bits = 0;
    for (size_t i = 0; i < CORIO__ARRAY_SIZE(f); i++)
        bits |= 1ull << f[i];
    return bits & ~corio__fault_hidden_ops();
}

/* ---- provided buffers ------------------------------------------------------------------------------- */

struct corio__poll_buf *corio__poll_buf_find(struct corio__poll *p, uint16_t bgid)
{
    for (struct corio__poll_buf *b = p->bufs; b; b = b->next)
        if (b->bgid == bgid)
            return b;
    return NULL;
}

int corio__poll_buf_new(struct corio__poll *p, uint16_t bgid, unsigned entries,
                        struct corio__poll_buf **out)
{
    if (entries == 0 || entries > 32768 || (entries & (entries - 1)))
        return -EINVAL;
    if (corio__poll_buf_find(p, bgid))
        return -EEXIST;
    struct corio__poll_buf *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->iov = calloc(entries, sizeof(*b->iov));
    b->bid = calloc(entries, sizeof(*b->bid));
    if (!b->iov || !b->bid) {
        free(b->iov);
        free(b->bid);
        free(b);
        return -ENOMEM;
    }
    b->mask = entries - 1;
    b->bgid = bgid;
    b->next = p->bufs;
    p->bufs = b;
    *out = b;
    return 0;
}

void corio__poll_buf_free(struct corio__poll *p, uint16_t bgid, struct corio__poll_buf *b)
{
    (void)bgid;
    for (struct corio__poll_buf **pp = &p->bufs; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    free(b->iov);
    free(b->bid);
    free(b);
}

void corio__poll_buf_put(struct corio__poll_buf *b, void *addr, unsigned len, uint16_t bid)
{
    unsigned i = b->tail++ & b->mask;
    b->iov[i] = (struct iovec){addr, len};
    b->bid[i] = bid;
}
