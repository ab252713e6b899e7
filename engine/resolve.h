/* Host names to addresses (resolve.c): a numeric address parsed on the spot, a name looked up
 * with getaddrinfo on the loop's worker pool (corio_blocking), the lookup's errors as -errno. */
#ifndef CORIO_RESOLVE_H
#define CORIO_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base.h"

/* corio_resolve, and with @anywhere, outside a coroutine too: a name is then looked up on the
 * calling thread, which it blocks (the listen helper, which may be called before any loop runs).
 * Returns as corio_resolve. */
int corio__resolve(const char *host, uint16_t port, int family, struct sockaddr_storage *out,
                   size_t max, int64_t deadline, bool anywhere);

/* Maps getaddrinfo's result @eai (and @err, errno right after it, for EAI_SYSTEM) to 0 or -errno,
 * as corio_resolve documents. Returns it. */
int corio__gai_errno(int eai, int err);

/* The length of the IPv4 or IPv6 address in @ss. Returns it, or 0 for another family. */
socklen_t corio__sockaddr_len(const struct sockaddr_storage *ss);

#endif
