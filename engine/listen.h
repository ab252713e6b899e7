/* The listen and dial helpers (listen.c): corio_listen_tcp, corio_dial_tcp and their Unix
 * forms, and, for the engine and its tests, dialling a list of addresses (racing them). */
#ifndef CORIO_LISTEN_H
#define CORIO_LISTEN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base.h"

/* Connects a new TCP socket to one of @addrs[0..@n) (IPv4 or IPv6), racing them as RFC 8305
 * says: in corio__dial_order's order, each attempt alone for 250 ms before the next joins it (at
 * once when one fails), the first to connect wins and the others are cancelled and closed. The
 * caller's cancel or deadline ends every attempt. May suspend. Returns the connected fd, or the
 * -errno of the last attempt to fail (-ENOENT when @n is 0), -ETIMEDOUT, -ECANCELED. */
int corio__dial_addrs(const struct sockaddr_storage *addrs, size_t n, int64_t deadline);

/* The order corio__dial_addrs tries @addrs[0..@n) in: the resolver's, with the two families
 * taking turns from the first address's. @order gets @n pointers into @addrs. */
void corio__dial_order(const struct sockaddr_storage *addrs, size_t n,
                       const struct sockaddr_storage **order);

#endif
