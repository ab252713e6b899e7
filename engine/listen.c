/* The listen and dial helpers: TCP to numeric addresses or host names (resolve.c), Unix stream
 * sockets, and the local port of a socket. */
#include "listen.h"

#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The addresses of a name that listen and dial try: a name has one or two as a rule (an IPv6 and
 * an IPv4 one), a load-balanced one a few more; 8 of them fill 1 KiB of the caller's stack. */
#define MAX_ADDRS 8

static int bind_listen(int fd, const struct sockaddr *sa, socklen_t len, int backlog)
{
    if (bind(fd, sa, len) != 0 || listen(fd, backlog) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* A listening TCP socket on @ss. Returns it, or -errno. */
static int listen_one(const struct sockaddr_storage *ss, int backlog, unsigned flags)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((flags & CORIO_LISTEN_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (ss->ss_family == AF_INET6) {
        int v6only = (flags & CORIO_LISTEN_V6ONLY) ? 1 : 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    /* Accepted sockets inherit TCP_NODELAY from the listener (Linux copies the listener's TCP
     * state into each child), which matters for direct descriptors that cannot be setsockopt'd:
     * a server answering in pieces must not wait on Nagle for the peer's delayed ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return bind_listen(fd, (const struct sockaddr *)ss, corio__sockaddr_len(ss), backlog);
}

int corio_listen_tcp(const char *host, uint16_t port, int backlog, unsigned flags)
{
    struct sockaddr_storage ss[MAX_ADDRS];
    int n = corio__resolve(host ? host : "0.0.0.0", port, AF_UNSPEC, ss, MAX_ADDRS,
                           CORIO_FOREVER, true);
    /* One socket, on the first address that binds: on a host without IPv6 a name's IPv6 address
     * cannot be bound, and its IPv4 one is taken instead. */
    int fd = n;
    for (int i = 0; i < n; i++)
        if ((fd = listen_one(&ss[i], backlog, flags)) >= 0)
            break;
    return fd;
}

/* Creates a socket of @family and connects it to @sa; closes it on failure. The family is passed,
 * not read back from @sa: gcc 12 at -O2 cannot see through the cast that the caller wrote it.
 * Returns the fd or -errno. */
static int dial(int family, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    int fd = corio_socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int err = corio_connect(fd, sa, len, deadline);
    if (err < 0) {
        corio_close(fd);
        return err;
    }
    return fd;
}

/* How long an attempt has the field alone before the next address is tried beside it: RFC 8305's
 * Connection Attempt Delay, at the value it recommends. An address that refuses at once (nothing
 * listens there, no route) hands over at once instead. */
#define DIAL_STAGGER CORIO_MS(250)

/* RFC 8305's order: taking turns, a broken IPv6 path costs one stagger, not one per IPv6
 * address. */
void corio__dial_order(const struct sockaddr_storage *addrs, size_t n,
                       const struct sockaddr_storage **order)
{
    sa_family_t first = addrs[0].ss_family;
    size_t k = 0, a = 0, b = 0;
    while (k < n) {
        while (a < n && addrs[a].ss_family != first)
            a++;
        if (a < n)
            order[k++] = &addrs[a++];
        while (b < n && addrs[b].ss_family == first)
            b++;
        if (b < n)
            order[k++] = &addrs[b++];
    }
}

/* The attempts of one dial, racing: the connects in flight, their sockets, and the timer that
 * lets the next address in. Lives in the dialling coroutine's frame (about 2 KiB). */
struct dial_race {
    struct corio_future conn[MAX_ADDRS];    /* attempt i's connect */
    struct corio_future timer;              /* ends when the next address is due */
    struct corio_future *fs[MAX_ADDRS + 1]; /* for corio_await_any: the attempts, then the timer */
    int fd[MAX_ADDRS];                      /* attempt i's socket; -1 once closed */
    const struct sockaddr_storage *order[MAX_ADDRS];
    size_t n;                               /* addresses */
    size_t next;                            /* the next address to try */
    size_t tries;                           /* attempts made (each has a socket and a connect) */
    bool timing;                            /* the timer is running */
    int64_t deadline;
    int err;                                /* the last failure: what a dial that fails returns */
};

/* Stops the timer, if it runs. */
static void race_untime(struct dial_race *r)
{
    if (r->timing) {
        corio_future_cancel(&r->timer);
        corio_await(&r->timer, CORIO_FOREVER);
        r->timing = false;
    }
}

/* Starts an attempt on the next address (one whose socket cannot be made fails at once: the
 * one after it is taken) and, while addresses are left, the timer. Returns 0, or -errno: the
 * caller's cancel or deadline. */
static int race_next(struct dial_race *r)
{
    race_untime(r);
    while (r->next < r->n) {
        const struct sockaddr_storage *ss = r->order[r->next++];
        int fd = corio_socket(ss->ss_family, SOCK_STREAM, 0);
        if (fd == -ECANCELED || fd == -ETIMEDOUT || fd == -EPERM)
            return fd;
        if (fd < 0) {
            r->err = fd;
            continue;
        }
        size_t i = r->tries++;
        r->fd[i] = fd;
        r->fs[i] = &r->conn[i];
        /* A connect that cannot start is completed with its error, reported like any other. */
        corio_connect_start(&r->conn[i], fd, (const struct sockaddr *)ss,
                            corio__sockaddr_len(ss), r->deadline);
        break;
    }
    if (r->next == r->n)
        return 0;
    int64_t due = corio_now() + DIAL_STAGGER;
    if (r->deadline >= 0 && due >= r->deadline)
        return 0; /* no attempt could start in time: the deadline ends the ones there are */
    int err = corio_sleep_start(&r->timer, due);
    r->timing = err == 0;
    return err;
}

int corio__dial_addrs(const struct sockaddr_storage *addrs, size_t n, int64_t deadline)
{
    if (n == 0)
        return -ENOENT;
    if (n == 1)
        return dial(addrs[0].ss_family, (const struct sockaddr *)&addrs[0],
                    corio__sockaddr_len(&addrs[0]), deadline);
    if (deadline >= 0 && deadline <= corio_now())
        return -ETIMEDOUT; /* no attempt once the caller's time is up */
    struct dial_race r;
    r.n = n < MAX_ADDRS ? n : MAX_ADDRS;
    r.next = r.tries = 0;
    r.timing = false;
    r.deadline = deadline;
    r.err = -ENOENT;
    corio__dial_order(addrs, r.n, r.order);
    size_t won = MAX_ADDRS;
    int err = race_next(&r);
    while (err == 0) {
        size_t k = r.tries;
        if (r.timing)
            r.fs[k++] = &r.timer;
        int i = k ? corio_await_any(r.fs, k, deadline) : -ENOENT;
        if (i < 0) {
            /* -ENOENT: every attempt failed, and no address is left. */
            err = i == -ENOENT ? r.err : i;
            break;
        }
        if ((size_t)i == r.tries) { /* the timer: the next address joins in */
            r.timing = false;
            err = race_next(&r); /* the caller's cancel, if that ended it, ends this too */
            continue;
        }
        ssize_t res = corio_future_result(&r.conn[i]);
        if (res == 0) {
            won = (size_t)i;
            break;
        }
        corio_close(r.fd[i]);
        r.fd[i] = -1;
        r.err = (int)res;
        /* What ended this attempt ends the others too: the caller's cancel or deadline. (Not
         * the kernel's own refusals, -EPERM from a firewall or -ETIMEDOUT when its SYNs ran out:
         * they are this path's, and another family's path may be fine.) */
        if (res == -ECANCELED || (res == -ETIMEDOUT && deadline >= 0 && corio_now() >= deadline)) {
            err = (int)res;
            break;
        }
        /* It failed: the next address need not wait for the timer. */
        if (r.next < r.n)
            err = race_next(&r);
    }
    /* The losers: cancelled, awaited, closed. */
    for (size_t i = 0; i < r.tries; i++) {
        if (i == won || r.fd[i] < 0)
            continue;
        corio_future_cancel(&r.conn[i]);
        corio_await(&r.conn[i], CORIO_FOREVER);
        corio_close(r.fd[i]);
    }
    race_untime(&r);
    return won < MAX_ADDRS ? r.fd[won] : err;
}

int corio_dial_tcp(const char *host, uint16_t port, int64_t deadline)
{
    struct sockaddr_storage ss[MAX_ADDRS];
    int n = corio__resolve(host, port, AF_UNSPEC, ss, MAX_ADDRS, deadline, false);
    if (n < 0)
        return n;
    int fd = corio__dial_addrs(ss, (size_t)n, deadline);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

static int unix_addr(const char *path, struct sockaddr_un *un)
{
    memset(un, 0, sizeof(*un));
    un->sun_family = AF_UNIX;
    size_t n = path ? strlen(path) : 0;
    if (n == 0)
        return -EINVAL;
    if (n >= sizeof(un->sun_path))
        return -ENAMETOOLONG;
    memcpy(un->sun_path, path, n);
    return (int)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

/* A socket file is stale when nothing listens behind it any more: a connect to it is refused. A
 * live listener accepts the probe (it then sees a connection that closes at once) or, with a full
 * backlog, gives -EAGAIN; either way its file must stay. */
static bool unix_socket_stale(const struct sockaddr_un *un, socklen_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    bool stale = connect(fd, (const struct sockaddr *)un, len) != 0 && errno == ECONNREFUSED;
    close(fd);
    return stale;
}

int corio_listen_unix(const char *path, int backlog)
{
    struct sockaddr_un un;
    int len = unix_addr(path, &un);
    if (len < 0)
        return len;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A socket file left by an earlier run would make bind fail with EADDRINUSE. Only a stale
     * socket is removed: a live listener's file, or any other file at @path, is an error the
     * caller must see. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && unix_socket_stale(&un, (socklen_t)len))
        unlink(path);
    return bind_listen(fd, (struct sockaddr *)&un, (socklen_t)len, backlog);
}

int corio_dial_unix(const char *path, int64_t deadline)
{
    struct sockaddr_un un;
    int len = unix_addr(path, &un);
    if (len < 0)
        return len;
    return dial(AF_UNIX, (struct sockaddr *)&un, (socklen_t)len, deadline);
}

int corio_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

