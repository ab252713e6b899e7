/* Host names to addresses. A numeric IPv4 or IPv6 address is parsed on the spot: no lookup, no
 * suspension. A name goes to the system's resolver (getaddrinfo: /etc/hosts, DNS, whatever
 * nsswitch.conf says), which blocks its thread, so it runs on the loop's worker pool through
 * corio_blocking. A lookup whose caller is cancelled or times out goes on in its worker: its
 * request is allocated, and freed by whoever is done with it last (corio__blocking_run's retire
 * hook), never written by a worker into a frame that has returned. */
#include "resolve.h"

#include "blocking.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int corio__gai_errno(int eai, int err)
{
    switch (eai) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_FAIL:
        return -EIO;
    case EAI_FAMILY:
        return -EAFNOSUPPORT;
    case EAI_SYSTEM:
        return err > 0 ? -err : -EIO;
    default:
        return -EINVAL;
    }
}

socklen_t corio__sockaddr_len(const struct sockaddr_storage *ss)
{
    switch (ss->ss_family) {
    case AF_INET:
        return sizeof(struct sockaddr_in);
    case AF_INET6:
        return sizeof(struct sockaddr_in6);
    default:
        return 0;
    }
}

/* ---- numeric addresses ------------------------------------------------------------------------
 */

/* A scoped IPv6 address ("fe80::1%eth0"), which inet_pton does not take: getaddrinfo with
 * AI_NUMERICHOST parses it (the scope by interface name or number) and looks nothing up. Returns
 * 1, or -EINVAL. */
static int numeric_scoped(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    const struct addrinfo hints = {.ai_family = AF_INET6,
                                   .ai_socktype = SOCK_STREAM,
                                   .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res;
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return -EINVAL;
    int r = -EINVAL;
    if (res->ai_addrlen <= sizeof(*ss)) {
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        r = 1;
    }
    freeaddrinfo(res);
    return r;
}

/* Parses @host into *@ss if it is a numeric address of @family (AF_UNSPEC: either). A host with a
 * ':' (no name has one) or of digits and dots only (no top-level domain is all digits, RFC 3696)
 * can only be meant as an address: one that does not parse is refused, not looked up. Returns 1,
 * 0 for a name, or -errno: -EINVAL, -ENOENT for an address of the other family (as getaddrinfo's
 * EAI_ADDRFAMILY maps). */
static int numeric(const char *host, uint16_t port, int family, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    int got = 0;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        got = AF_INET;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        got = AF_INET6;
    } else if (strchr(host, ':')) {
        if (numeric_scoped(host, port, ss) < 0)
            return -EINVAL;
        got = AF_INET6;
    } else if (strspn(host, "0123456789.") == strlen(host)) {
        return -EINVAL; /* the empty string too */
    } else {
        return 0;
    }
    return family == AF_UNSPEC || family == got ? 1 : -ENOENT;
}

/* ---- names ------------------------------------------------------------------------------------
 */

/* One lookup, allocated: a worker may still be in getaddrinfo after its caller has gone. */
struct lookup {
    struct addrinfo hints;
    struct addrinfo *res; /* the answer, once the lookup succeeded */
    char service[8];      /* the port, in decimal */
    char host[];          /* a copy: the caller's string may be gone before the worker is done */
};

/* On a worker: the lookup. Returns 0 or -errno. */
static int lookup_run(void *p)
{
    struct lookup *q = p;
    int eai = getaddrinfo(q->host, q->service, &q->hints, &q->res);
    int r = corio__gai_errno(eai, errno); /* errno is the worker's own, read before any call */
    if (eai)
        q->res = NULL;
    return r;
}

/* Frees a lookup and its answer (the retire hook, for a caller that left). */
static void lookup_free(void *p)
{
    struct lookup *q = p;
    if (q->res)
        freeaddrinfo(q->res);
    free(q);
}

/* Copies the IPv4 and IPv6 addresses of @q's answer, in the resolver's order, into
 * @out[0..@max). Returns how many, or -ENOENT when there were none. */
static int copy_out(const struct lookup *q, struct sockaddr_storage *out, size_t max)
{
    int n = 0;
    for (const struct addrinfo *ai = q->res; ai && (size_t)n < max && n < INT_MAX;
         ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(*out))
            continue;
        memset(&out[n], 0, sizeof(out[n]));
        memcpy(&out[n], ai->ai_addr, ai->ai_addrlen);
        n++;
    }
    return n > 0 ? n : -ENOENT;
}

/* Looks the name @host up: on the loop's workers inside a coroutine, on the calling thread
 * otherwise. Returns as corio_resolve. */
static int lookup(const char *host, uint16_t port, int family, struct sockaddr_storage *out,
                  size_t max, int64_t deadline)
{
    size_t len = strlen(host);
    struct lookup *q = malloc(sizeof(*q) + len + 1);
    if (!q)
        return -ENOMEM;
    memset(q, 0, sizeof(*q));
    memcpy(q->host, host, len + 1);
    snprintf(q->service, sizeof(q->service), "%u", port);
    /* Stream sockets only, or every address would come once per socket type. No AI_ADDRCONFIG:
     * glibc ignores loopback addresses for it, so "localhost" would not resolve on a host whose
     * only addresses are loopback ones; an address the host cannot reach fails at connect, and
     * the next one is tried. */
    q->hints.ai_family = family;
    q->hints.ai_socktype = SOCK_STREAM;
    q->hints.ai_flags = AI_NUMERICSERV;
    bool ran = true;
    int r = corio__tls_task ? corio__blocking_run(lookup_run, q, deadline, lookup_free, &ran)
                            : lookup_run(q);
    if (!ran)
        return r; /* the lookup is lookup_free's now */
    if (r == 0)
        r = copy_out(q, out, max);
    lookup_free(q);
    return r;
}

int corio__resolve(const char *host, uint16_t port, int family, struct sockaddr_storage *out,
                   size_t max, int64_t deadline, bool anywhere)
{
    if (!host || !out || max == 0)
        return -EINVAL;
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
        return -EAFNOSUPPORT;
    int r = numeric(host, port, family, out);
    if (r != 0)
        return r;
    if (!corio__tls_task && !anywhere)
        return -EPERM;
    return lookup(host, port, family, out, max, deadline);
}

int corio_resolve(const char *host, uint16_t port, int family, struct sockaddr_storage *out,
                  size_t max, int64_t deadline)
{
    return corio__resolve(host, port, family, out, max, deadline, false);
}
