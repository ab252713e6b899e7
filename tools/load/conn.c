/*
 * The connections and the threads that run them: each worker thread runs its own loop with its
 * share of the connections, and each connection is a coroutine that connects, keeps its messages
 * in flight until the stop, and connects again where HTTP asks it to.
 *
 * A connection keeps `--pipeline` messages in flight: with a depth of 1 (and messages up to
 * 64 KiB) one coroutine sends and then receives; otherwise a sender coroutine (a member of the
 * connection's own group) takes a credit from a semaphore before each send and the receiver gives
 * it back when the message has come back whole. The coordinator stops a worker through its
 * eventfd, and the worker then cancels its connections.
 */
#include "load.h"

#include "../common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Where a connection's run ended. */
enum conn_end {
    END_STOP,      /* cancelled by the stop */
    END_RECONNECT, /* HTTP: the server closed at a response boundary; connect again */
    END_FAILED,    /* an error, already counted */
};

/* An established connection failed with @err (-errno, or 0: the server closed it). */
static enum conn_end conn_failed(struct conn *c, int err)
{
    struct worker *w = c->w;
    if (w->stopping)
        return END_STOP;
    if (err == -ECANCELED)
        return END_STOP; /* cannot happen: only the stop cancels a connection */
    count_error(w);
    if (err == 0)
        w->st.closed_by_peer++;
    else
        load_count_errno(w->st.io_errno, err);
    return END_FAILED;
}

/* ---- one connection ------------------------------------------------------------------------- */

static int send_one(struct conn *c, int64_t deadline)
{
    return cfg.mode == MODE_ECHO ? load_echo_send_one(c, deadline)
                                 : load_http_send_one(c, deadline);
}

/* The sender coroutine of a pipelined connection: a send per credit. */
static int sender_main(void *arg)
{
    struct conn *c = arg;
    int64_t deadline = cfg.t_end + STOP_GRACE;
    for (;;) {
        int r = corio_sem_acquire(&c->credits, deadline);
        if (r == 0)
            r = send_one(c, deadline);
        if (r < 0) {
            if (r != -ECANCELED && !c->w->stopping) {
                /* Wake the receiver through the socket rather than corio_cancel: a cancelled
                 * coroutine stays cancelled, and the receiver must still close, count the error
                 * and, in HTTP mode, maybe connect again. shutdown(2) does not block. */
                c->send_err = r;
                shutdown(c->fd, SHUT_RDWR);
            }
            return 0;
        }
    }
}

/* Receives once into @c and takes what came. Returns 1 to go on, or 0 with the end in *@end. */
static int receive(struct conn *c, int64_t deadline, enum conn_end *end)
{
    if (cfg.mode == MODE_ECHO) {
        ssize_t n = corio_recv(c->fd, c->rbuf, c->rcap, 0, deadline);
        if (c->send_err) {
            *end = conn_failed(c, c->send_err);
            return 0;
        }
        if (n <= 0) {
            *end = conn_failed(c, (int)n);
            return 0;
        }
        if (!load_echo_consume(c, c->rbuf, (size_t)n, corio_now())) {
            *end = END_FAILED;
            return 0;
        }
        return 1;
    }
    if (c->rlen == c->rcap) {
        /* Only a head over HTTP_MAX_HEAD fills the buffer, and that was reported. */
        *end = END_FAILED;
        return 0;
    }
    ssize_t n = corio_recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0, deadline);
    if (c->send_err) {
        *end = conn_failed(c, c->send_err);
        return 0;
    }
    if (n == 0 && !c->in_body && c->rpos == c->rlen) {
        /* Closed between responses: a keep-alive limit, for instance. Connect again. */
        *end = c->w->stopping ? END_STOP : END_RECONNECT;
        return 0;
    }
    if (n <= 0) {
        *end = conn_failed(c, (int)n);
        return 0;
    }
    c->rlen += (size_t)n;
    int r = load_http_consume(c, corio_now());
    if (r <= 0) {
        *end = r == 0 ? (c->w->stopping ? END_STOP : END_RECONNECT) : END_FAILED;
        return 0;
    }
    return 1;
}

/* Runs the connected socket c->fd until the stop or an error. */
static enum conn_end conn_run(struct conn *c)
{
    int64_t deadline = cfg.t_end + STOP_GRACE;
    enum conn_end end = END_STOP;
    c->sent = c->done = 0;
    c->roff = c->rlen = c->rpos = c->scan = 0;
    c->bad_msg = c->in_body = false;
    c->send_err = 0;
    /* One coroutine that sends and then receives is the cheapest, but a message larger than the
     * socket buffers would deadlock it: the server blocks sending the echo back while we block
     * sending the rest. Big messages take the sender + receiver pair even at depth 1. */
    if (!cfg.paired) {
        for (;;) {
            int r = send_one(c, deadline);
            if (r < 0)
                return conn_failed(c, r);
            while (c->done < c->sent)
                if (!receive(c, deadline, &end))
                    return end;
        }
    }
    /* A fresh group each time: a cancelled group starts its later members cancelled. */
    struct corio_group g;
    corio_group_init(&g, 0);
    corio_sem_init(&c->credits, cfg.pipeline);
    int err = corio_group_spawn(NULL, &g, sender_main, c);
    if (err < 0)
        return conn_failed(c, err);
    while (receive(c, deadline, &end))
        ;
    corio_group_cancel(&g);
    corio_group_wait(&g, CORIO_FOREVER); /* waits for the sender even when we are cancelled */
    return end;
}

static int conn_main(void *arg)
{
    struct conn *c = arg;
    struct worker *w = c->w;
    bool ever = false;
    for (;;) {
        int64_t deadline = corio_now() + CONNECT_TIMEOUT;
        if (deadline > cfg.t_end + STOP_GRACE)
            deadline = cfg.t_end + STOP_GRACE;
        int fd = corio_dial_tcp(cfg.host, (uint16_t)cfg.port, deadline);
        if (fd < 0) {
            if (w->stopping || fd == -ECANCELED)
                return 0;
            count_error(w);
            if (!ever) {
                w->st.connect_failed++;
                load_count_errno(w->st.connect_errno, fd);
            } else {
                load_count_errno(w->st.io_errno, fd);
            }
            return 0;
        }
        if (ever)
            w->st.reconnects++;
        else
            w->st.connected++;
        ever = true;
        c->fd = fd;
        bump(&w->st.active, 1);
        enum conn_end end = conn_run(c);
        bump(&w->st.active, (uint64_t)-1);
        corio_close(fd);
        c->fd = -1;
        if (end != END_RECONNECT || w->stopping)
            return 0;
    }
}

/* ---- one thread ----------------------------------------------------------------------------- */

/* Waits for the coordinator's stop, then cancels the connections. */
static int control_main(void *arg)
{
    struct worker *w = arg;
    uint64_t v;
    corio_read(w->efd, &v, sizeof(v), -1, cfg.t_end + STOP_GRACE);
    w->stopping = true;
    corio_group_cancel(&w->conns);
    return 0;
}

static int worker_main(void *arg)
{
    struct worker *w = arg;
    corio_id ctl;
    corio_group_init(&w->conns, 0);
    int err = corio_spawn(&ctl, NULL, control_main, w);
    if (err < 0) {
        w->setup_err = err;
        return err;
    }
    for (unsigned i = 0; i < w->nconns; i++) {
        err = corio_group_spawn(NULL, &w->conns, conn_main, &w->conn[i]);
        if (err < 0) {
            count_error(w);
            w->st.connect_failed++;
            load_count_errno(w->st.connect_errno, err);
        }
    }
    corio_group_wait(&w->conns, CORIO_FOREVER);
    atomic_store(&w->finished, true);
    corio_cancel(ctl);
    corio_join(ctl, NULL, CORIO_FOREVER);
    return 0;
}

void *load_worker_thread(void *arg)
{
    struct worker *w = arg;
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (err)
            fprintf(stderr, PROG ": thread %u: cannot pin to CPU %d: %s\n", w->index, w->cpu,
                    strerror(err));
    }
    /* Room for every connection's receive and send without flushing the SQ mid-iteration. */
    unsigned sq = 256;
    while (sq < 2 * w->nconns && sq < 4096)
        sq *= 2;
    struct corio_loop_opts lo = {.sq_entries = sq};
    struct corio_loop *loop = NULL;
    int err = corio_loop_new(&loop, &lo);
    if (err == 0)
        err = corio_spawn(NULL, loop, worker_main, w);
    if (err == 0)
        err = corio_loop_run(loop);
    if (err < 0 && !w->setup_err)
        w->setup_err = err;
    if (loop && cfg.stats) {
        char who[64];
        snprintf(who, sizeof(who), PROG ": thread %u", w->index);
        tool_print_stats(who, loop);
    }
    if (loop)
        corio_loop_free(loop);
    atomic_store(&w->finished, true);
    return NULL;
}
