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

int corio__dial_addrs(const struct sockaddr_storage *addrs, size_t n, int64_t deadline)
{
    int fd = -ENOENT;
    for (size_t i = 0; i < n; i++) {
        const struct sockaddr_storage *ss = &addrs[i];
        fd = dial(ss->ss_family, (const struct sockaddr *)ss, corio__sockaddr_len(ss), deadline);
        /* What ended this attempt ends the others too: the caller's cancel or deadline. */
        if (fd >= 0 || fd == -ECANCELED || fd == -ETIMEDOUT || fd == -EPERM)
            break;
    }
    return fd;
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

