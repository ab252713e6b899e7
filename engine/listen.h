/* The listen and dial helpers (listen.c): corio_listen_tcp, corio_dial_tcp and their Unix
 * forms, and, for the engine and its tests, dialling a list of addresses in order. */
#ifndef CORIO_LISTEN_H
#define CORIO_LISTEN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base.h"

/* Connects a new TCP socket to the first of @addrs[0..@n) (IPv4 or IPv6) that accepts, trying
 * them in order; the caller's cancel or deadline ends the tries. May suspend. Returns the
 * connected fd, or the -errno of the last attempt (-ENOENT when @n is 0). */
int corio__dial_addrs(const struct sockaddr_storage *addrs, size_t n, int64_t deadline);

#endif
