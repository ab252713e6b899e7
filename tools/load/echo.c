/*
 * Echo mode on the wire: the bytes each message carries, sending them, and checking every byte
 * that comes back.
 *
 * Message m of connection i is a 64-bit tag h = mix(i, m) XORed into its first 8 bytes, followed
 * by bytes of a fixed random pool starting at an offset taken from h. A corrupted byte differs
 * from the pool, and a dropped, duplicated or reordered byte or message shifts the stream against
 * its tags, so every one of them is caught; checking is a memcmp against the pool, so it costs the
 * load generator little. A mismatch is reported with its connection, message number and byte
 * offset, counted, and makes the exit status 1.
 */
#include "load.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

int load_echo_setup(void)
{
    cfg.pool = malloc(POOL_SIZE + cfg.size);
    if (!cfg.pool)
        return -1;
    uint64_t x = 0x636f72696f2d6c64ull;
    for (size_t i = 0; i < POOL_SIZE + cfg.size; i += 8) {
        x = splitmix64(x);
        size_t n = POOL_SIZE + cfg.size - i < 8 ? POOL_SIZE + cfg.size - i : 8;
        memcpy(cfg.pool + i, &x, n);
    }
    return 0;
}

/* ---- the echo pattern ----------------------------------------------------------------------- */

struct pattern {
    const uint8_t *base; /* the pool bytes the message is cut from */
    uint64_t tag;        /* XORed into its first 8 bytes */
};

static inline struct pattern pattern_of(uint64_t conn, uint64_t msg)
{
    uint64_t h = splitmix64(splitmix64(conn) ^ msg);
    return (struct pattern){.base = cfg.pool + (h >> (64 - POOL_BITS)), .tag = h};
}

static void pattern_fill(const struct pattern *p, uint8_t *buf, size_t n)
{
    memcpy(buf, p->base, n);
    for (size_t i = 0; i < n && i < 8; i++)
        buf[i] ^= (uint8_t)(p->tag >> (8 * i));
}

static inline uint8_t pattern_byte(const struct pattern *p, size_t at)
{
    return (uint8_t)(p->base[at] ^ (at < 8 ? (uint8_t)(p->tag >> (8 * at)) : 0));
}

/* Checks @n bytes @got against the message's bytes from offset @at. Returns the offset of the
 * first wrong byte, or SIZE_MAX. */
static size_t pattern_check(const struct pattern *p, size_t at, const uint8_t *got, size_t n)
{
    size_t i = 0;
    for (; i < n && at + i < 8; i++)
        if (got[i] != pattern_byte(p, at + i))
            return at + i;
    if (i < n && memcmp(got + i, p->base + at + i, n - i) != 0)
        for (; i < n; i++)
            if (got[i] != p->base[at + i])
                return at + i;
    return SIZE_MAX;
}

/* ---- receiving and sending ------------------------------------------------------------------ */

bool load_echo_consume(struct conn *c, const uint8_t *buf, size_t n, int64_t now)
{
    size_t size = cfg.size;
    while (n > 0) {
        if (c->done >= c->sent) {
            /* Bytes nobody sent: a duplicate, or a server that talks on its own. */
            if (load_may_report())
                fprintf(stderr,
                        PROG ": verify error: connection %" PRIu64 " (thread %u): %zu bytes "
                             "beyond the %" PRIu64 " messages sent\n",
                        c->id, c->w->index, n, c->sent);
            load_verify_error(c);
            c->w->st.desync++;
            return false;
        }
        struct pattern p = pattern_of(c->id, c->done);
        size_t take = size - c->roff < n ? size - c->roff : n;
        size_t bad = pattern_check(&p, c->roff, buf, take);
        if (bad != SIZE_MAX && !c->bad_msg) {
            c->bad_msg = true;
            if (load_may_report())
                fprintf(stderr,
                        PROG ": verify error: connection %" PRIu64 " (thread %u), message %" PRIu64
                             ", byte %zu of %zu: expected 0x%02x, got 0x%02x\n",
                        c->id, c->w->index, c->done, bad, size, pattern_byte(&p, bad),
                        buf[bad - c->roff]);
        }
        c->roff += take;
        buf += take;
        n -= take;
        if (c->roff < size)
            break;
        /* Message `done` is whole. */
        if (c->bad_msg) {
            load_verify_error(c);
            c->bad_msg = false;
        } else {
            record(c->w, c->t_send[c->done % cfg.pipeline], now, size);
        }
        c->done++;
        c->roff = 0;
        if (cfg.paired)
            corio_sem_release(&c->credits);
        if (c->verify_fails >= MAX_VERIFY_PER_CONN) {
            fprintf(stderr, PROG ": connection %" PRIu64 ": %u verify errors, closing it\n", c->id,
                    c->verify_fails);
            c->w->st.desync++;
            return false;
        }
    }
    return true;
}

int load_echo_send_one(struct conn *c, int64_t deadline)
{
    struct pattern p = pattern_of(c->id, c->sent);
    pattern_fill(&p, c->sbuf, cfg.size);
    c->t_send[c->sent % cfg.pipeline] = corio_now();
    c->sent++;
    ssize_t r = corio_send_all(c->fd, c->sbuf, cfg.size, NULL, deadline);
    return r < 0 ? (int)r : 0;
}
