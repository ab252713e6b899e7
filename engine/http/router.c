/* The HTTP server's router: the routes of a server in three tiers (exact paths in a hash table,
 * patterns with parameters, prefixes with rest patterns and mounts), the match of a request
 * against them, its parameters and their decoding, mounts of directories below a prefix, and the
 * hooks that run around every request. Adding routes allocates; matching a request does not, and
 * reads no route's string but the few whose hash or length fits. */
#include "server.h"

#include "parser.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The tiers besides the exact one, in the order they are tried. */
enum { TIER_PATTERN, TIER_PREFIX };

/* The request path split into segments: where each starts in the path, and its length. A path
 * with more segments than patterns may have keeps the first ones and counts one more, so that
 * only a rest pattern can match it. */
struct segs {
    unsigned n;                             /* segments, at most CORIO__HTTP_MAX_SEGS + 1 */
    uint16_t off[CORIO__HTTP_MAX_SEGS + 1]; /* their starts in the path */
    uint16_t len[CORIO__HTTP_MAX_SEGS + 1]; /* their lengths */
};

static inline uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The hash of an exact path (@n >= 1 bytes at @p): its length and its first and last eight bytes
 * (and eight from the middle of a longer one), mixed by one multiply. A hash over every byte
 * would be a chain of multiplies, one per byte, and cost more than the lookup it serves; paths
 * that agree in these bytes only share a probe sequence, and the compare tells them apart. */
static inline uint32_t path_hash(const char *p, size_t n)
{
    uint64_t a, b;
    if (n >= 8) {
        a = load64(p);
        b = load64(p + n - 8);
        if (n > 16)
            a ^= load64(p + n / 2 - 4) * 0xff51afd7ed558ccdull;
    } else if (n >= 4) {
        a = load32(p);
        b = (uint64_t)load32(p + n - 4) << 32;
    } else {
        a = (uint8_t)p[0] | (uint32_t)(uint8_t)p[n / 2] << 8 | (uint32_t)(uint8_t)p[n - 1] << 16;
        b = 0;
    }
    uint64_t h = (a ^ (b << 29 | b >> 35) ^ n) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32);
}

/* Whether the @n bytes at @a and @b are the same. Paths and routes are mostly short strings,
 * where a call to memcmp costs more than the compare: up to 16 bytes are two overlapping loads
 * from each side, from the start and from the end. */
static inline bool same_bytes(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        if (n > 16)
            return memcmp(a, b, n) == 0;
        return ((load64(a) ^ load64(b)) | (load64(a + n - 8) ^ load64(b + n - 8))) == 0;
    }
    if (n >= 4)
        return ((load32(a) ^ load32(b)) | (load32(a + n - 4) ^ load32(b + n - 4))) == 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i])
            return false;
    }
    return true;
}

/* Whether a route for @rm (-1: any) serves @m, a GET route serving HEAD too. */
static inline bool method_ok(int rm, int m)
{
    return rm < 0 || rm == m || (rm == CORIO_HTTP_GET && m == CORIO_HTTP_HEAD);
}

/* The Allow bits a route for @rm (not -1, which would have matched) adds. */
static inline unsigned allow_bits(int rm)
{
    return (1u << rm) | (rm == CORIO_HTTP_GET ? 1u << CORIO_HTTP_HEAD : 0);
}

/* ---- adding routes --------------------------------------------------------------------------- */

static bool name_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Whether the segment @seg of the pattern @r->path is a valid parameter name and differs from
 * those before it. */
static bool name_ok(const struct corio__http_route *r, const struct corio__http_seg *seg,
                    size_t nlen)
{
    if (nlen == 0 || nlen > 31)
        return false;
    for (size_t i = 0; i < nlen; i++) {
        if (!name_byte(r->path[seg->off + i]))
            return false;
    }
    for (const struct corio__http_seg *o = r->segs; o < seg; o++) {
        if (o->param && strcmp(r->path + o->off, r->path + seg->off) == 0)
            return false;
    }
    return true;
}

/* Splits the pattern in @r->path (a copy of the caller's, @r->len bytes) into segments, making
 * each '/' after the first a NUL. Returns 0, -EINVAL for a pattern that breaks the rules, or
 * -ENOMEM. */
static int compile_pattern(struct corio__http_route *r)
{
    r->segs = calloc(CORIO__HTTP_MAX_SEGS, sizeof(*r->segs));
    if (!r->segs)
        return -ENOMEM;
    size_t i = 1;
    r->nsegs = 0;
    r->nparams = 0;
    while (i <= r->len) {
        size_t end = i;
        while (end < r->len && r->path[end] != '/')
            end++;
        if (end == i || r->nsegs == CORIO__HTTP_MAX_SEGS || end > UINT16_MAX)
            return -EINVAL;
        struct corio__http_seg *seg = &r->segs[r->nsegs++];
        char c = r->path[i];
        bool rest = c == '*';
        /* A rest segment anywhere but last would leave the segments after it nothing. */
        if (rest && end != r->len)
            return -EINVAL;
        seg->param = c == ':' || rest;
        seg->off = (uint16_t)(seg->param ? i + 1 : i);
        seg->len = (uint16_t)(seg->param ? 0 : end - i);
        if (end < r->len)
            r->path[end] = '\0';
        if (seg->param) {
            if (!name_ok(r, seg, end - i - 1) || r->nparams == CORIO__HTTP_MAX_PARAMS)
                return -EINVAL;
            r->nparams++;
        }
        if (rest)
            r->kind = CORIO__HTTP_RT_REST;
        i = end + 1;
    }
    return 0;
}

/* Whether @path is a pattern: a segment starts with ':', or the last one with '*' and a name. */
static bool is_pattern(const char *path, size_t len)
{
    const char *last = strrchr(path, '/');
    if (last[1] == '*' && last[2] != '\0')
        return true;
    for (size_t i = 0; i + 1 < len; i++) {
        if (path[i] == '/' && path[i + 1] == ':')
            return true;
    }
    return false;
}

/* Rebuilds the table of exact paths for @rt's routes, at twice their number or more, so that a
 * probe ends at an empty slot soon. Returns 0 or -ENOMEM. */
static int rebuild_exact(struct corio__http_router *rt)
{
    size_t n = 0;
    for (size_t i = 0; i < rt->n; i++)
        n += rt->routes[i].kind == CORIO__HTTP_RT_EXACT;
    size_t slots = 8;
    while (slots < 2 * n)
        slots *= 2;
    uint32_t *tab = calloc(slots, sizeof(*tab));
    if (!tab)
        return -ENOMEM;
    for (size_t i = 0; i < rt->n; i++) {
        struct corio__http_route *r = &rt->routes[i];
        if (r->kind != CORIO__HTTP_RT_EXACT)
            continue;
        r->next = -1;
        size_t k = r->hash & (slots - 1);
        for (; tab[k] != 0; k = (k + 1) & (slots - 1)) {
            struct corio__http_route *o = &rt->routes[tab[k] - 1];
            if (o->len == r->len && memcmp(o->path, r->path, r->len) == 0) {
                /* Same path: the new route goes to the end of that path's chain. */
                while (o->next >= 0)
                    o = &rt->routes[o->next];
                o->next = (int32_t)i;
                break;
            }
        }
        if (tab[k] == 0)
            tab[k] = (uint32_t)i + 1;
    }
    free(rt->exact);
    rt->exact = tab;
    rt->mask = (uint32_t)(slots - 1);
    return 0;
}

/* Appends index @i to tier @t. Returns 0 or -ENOMEM. */
static int tier_add(struct corio__http_router *rt, int t, size_t i)
{
    uint32_t *v = realloc(rt->tiers[t], (rt->ntier[t] + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    rt->tiers[t] = v;
    v[rt->ntier[t]++] = (uint32_t)i;
    return 0;
}

/* Files route @r, already stored as routes[n - 1], into its tier. Returns 0 or -ENOMEM. */
static int file_route(struct corio__http_router *rt, struct corio__http_route *r)
{
    switch (r->kind) {
    case CORIO__HTTP_RT_EXACT:
        return rebuild_exact(rt);
    case CORIO__HTTP_RT_PATTERN:
        return tier_add(rt, TIER_PATTERN, rt->n - 1);
    default:
        return tier_add(rt, TIER_PREFIX, rt->n - 1);
    }
}

int corio__http_router_add(struct corio__http_router *rt, int method, const char *path,
                           corio_http_handler *h, void *arg)
{
    size_t len = strlen(path);
    if (len >= UINT16_MAX || rt->n >= UINT32_MAX - 1)
        return -EINVAL;
    struct corio__http_route r = {.method = method, .next = -1, .h = h, .arg = arg};
    if (is_pattern(path, len)) {
        r.kind = CORIO__HTTP_RT_PATTERN;
    } else if (path[len - 1] == '*') {
        r.kind = CORIO__HTTP_RT_PREFIX;
        len--;
    }
    r.len = len;
    r.path = strndup(path, len);
    if (!r.path)
        return -ENOMEM;
    int err = r.kind == CORIO__HTTP_RT_PATTERN ? compile_pattern(&r) : 0;
    struct corio__http_route *v = NULL;
    if (!err) {
        v = realloc(rt->routes, (rt->n + 1) * sizeof(*v));
        err = v ? 0 : -ENOMEM;
    }
    if (err) {
        free(r.segs);
        free(r.path);
        return err;
    }
    r.hash = path_hash(r.path, r.len);
    rt->routes = v;
    rt->routes[rt->n++] = r;
    if (r.nparams > rt->max_params)
        rt->max_params = r.nparams;
    err = file_route(rt, &rt->routes[rt->n - 1]);
    if (err) {
        /* Out of memory: the route goes again, and the table is as it was. */
        rt->n--;
        free(r.segs);
        free(r.path);
    }
    return err;
}

void corio__http_router_free(struct corio__http_router *rt)
{
    for (size_t i = 0; i < rt->n; i++) {
        free(rt->routes[i].path);
        free(rt->routes[i].segs);
    }
    free(rt->routes);
    free(rt->exact);
    free(rt->tiers[0]);
    free(rt->tiers[1]);
    free(rt->hooks);
    for (size_t i = 0; i < rt->nmounts; i++) {
        close(rt->mounts[i]->fd);
        free(rt->mounts[i]);
    }
    free(rt->mounts);
    memset(rt, 0, sizeof(*rt));
}

/* ---- matching -------------------------------------------------------------------------------- */

/* The path of the target @t (@tl bytes): the absolute form (a proxy-style target) routes by its
 * path. Sets *@pl to the path's length, up to its query, and *@hash to its hash. Returns the
 * path, or NULL for an absolute form without one. */
static const char *target_path(const char *t, size_t tl, size_t *pl, uint32_t *hash)
{
    if (tl > 0 && t[0] != '/') {
        const char *sep = memmem(t, tl, "://", 3);
        const char *slash = sep ? memchr(sep + 3, '/', tl - (size_t)(sep + 3 - t)) : NULL;
        if (!slash)
            return NULL;
        tl -= (size_t)(slash - t);
        t = slash;
    }
    /* A loop where the target is short, as most are: a call to memchr costs more there. */
    size_t n = 0;
    if (tl > 16) {
        const char *q = memchr(t, '?', tl);
        n = q ? (size_t)(q - t) : tl;
    } else {
        while (n < tl && t[n] != '?')
            n++;
    }
    *pl = n;
    *hash = n ? path_hash(t, n) : 0;
    return t;
}

/* Looks the path @p (@pl bytes, hash @hash) up among the exact routes. Returns the index of the
 * first route for it, or -1. */
static int32_t exact_find(const struct corio__http_router *rt, const char *p, size_t pl,
                          uint32_t hash)
{
    if (!rt->exact)
        return -1;
    for (uint32_t k = hash & rt->mask; rt->exact[k] != 0; k = (k + 1) & rt->mask) {
        const struct corio__http_route *r = &rt->routes[rt->exact[k] - 1];
        if (r->hash == hash && r->len == pl && same_bytes(p, r->path, pl))
            return (int32_t)(rt->exact[k] - 1);
    }
    return -1;
}

/* Ends the segment that started at @s's *@start at the '/' at @slash: records it, and starts the
 * next after the slash. Returns false once @s is full (it then counts one segment more). */
static inline bool seg_end(struct segs *s, size_t *start, size_t slash)
{
    if (s->n == CORIO__HTTP_MAX_SEGS || slash > UINT16_MAX) {
        s->n = CORIO__HTTP_MAX_SEGS + 1;
        return false;
    }
    s->off[s->n] = (uint16_t)*start;
    s->len[s->n++] = (uint16_t)(slash - *start);
    *start = slash + 1;
    return true;
}

/* Splits the path @p (@pl bytes, starting with '/') into @s. The slashes are found eight bytes at
 * a time: a byte loop over a path spends most of a pattern match on this. */
static void split(const char *p, size_t pl, struct segs *s)
{
    const uint64_t ones7 = 0x7f7f7f7f7f7f7f7full, slashes = 0x2f2f2f2f2f2f2f2full;
    size_t start = 1, i = 1;
    s->n = 0;
    for (; i + 8 <= pl; i += 8) {
        uint64_t x = load64(p + i) ^ slashes;
        /* A high bit for each byte of x that is 0, that is each '/', and no other (no carry
         * between bytes, unlike the shorter (x - 0x01..) & ~x form). */
        uint64_t m = ~(((x & ones7) + ones7) | x | ones7);
        while (m) {
            if (!seg_end(s, &start, i + (size_t)__builtin_ctzll(m) / 8))
                return;
            m &= m - 1;
        }
    }
    for (; i < pl; i++) {
        if (p[i] == '/' && !seg_end(s, &start, i))
            return;
    }
    seg_end(s, &start, pl);
}

/* Whether the pattern @r matches the path @p split into @s. */
static inline bool pattern_matches(const struct corio__http_route *r, const char *p,
                                   const struct segs *s)
{
    bool rest = r->kind == CORIO__HTTP_RT_REST;
    if (rest ? s->n < r->nsegs : s->n != r->nsegs)
        return false;
    unsigned fixed = rest ? r->nsegs - 1u : r->nsegs;
    for (unsigned i = 0; i < fixed; i++) {
        const struct corio__http_seg *g = &r->segs[i];
        if (g->param ? s->len[i] == 0
                     : s->len[i] != g->len || !same_bytes(p + s->off[i], r->path + g->off, g->len))
            return false;
    }
    return true;
}

/* Fills @m's parameters from the pattern @r matched on the path @m->path split into @s. */
static void capture(const struct corio__http_route *r, const struct segs *s,
                    struct corio__http_match *m)
{
    unsigned k = 0;
    for (unsigned i = 0; i < r->nsegs; i++) {
        if (!r->segs[i].param)
            continue;
        m->params[k].p = m->path + s->off[i];
        /* A rest parameter takes everything from its segment on. */
        m->params[k].len = r->kind == CORIO__HTTP_RT_REST && i + 1u == r->nsegs
                               ? m->path_len - s->off[i]
                               : s->len[i];
        k++;
    }
}

/* Whether route @r of the prefix tier matches the path @p (@pl bytes, split into @s). */
static bool prefix_matches(const struct corio__http_route *r, const char *p, size_t pl,
                           const struct segs *s)
{
    if (r->kind == CORIO__HTTP_RT_PREFIX)
        return pl >= r->len && same_bytes(p, r->path, r->len);
    return pattern_matches(r, p, s);
}

/* Tries the tier @t for @method: the first route that matches path and method, or NULL with the
 * methods of those that matched the path only added to *@allow. */
static const struct corio__http_route *tier_find(const struct corio__http_router *rt, int t,
                                                 int method, struct corio__http_match *m,
                                                 const struct segs *s, unsigned *allow)
{
    for (size_t i = 0; i < rt->ntier[t]; i++) {
        const struct corio__http_route *r = &rt->routes[rt->tiers[t][i]];
        bool hit = t == TIER_PATTERN ? pattern_matches(r, m->path, s)
                                     : prefix_matches(r, m->path, m->path_len, s);
        if (!hit)
            continue;
        if (method_ok(r->method, method)) {
            capture(r, s, m);
            return r;
        }
        *allow |= allow_bits(r->method);
    }
    return NULL;
}

/* corio__http_router_find past a first exact route that does not take @method (@i, or -1 for
 * none): the rest of the exact routes of the path, then the patterns and prefixes. Out of line,
 * so that the common case, an exact route that takes the request, saves no registers for it. */
static __attribute__((noinline)) const struct corio__http_route *
find_rest(const struct corio__http_router *rt, int method, int32_t i, struct corio__http_match *m,
          unsigned *allowed)
{
    unsigned allow = 0;
    for (; i >= 0; i = rt->routes[i].next) {
        const struct corio__http_route *r = &rt->routes[i];
        if (method_ok(r->method, method))
            return m->r = r;
        allow |= allow_bits(r->method);
    }
    if (rt->ntier[TIER_PATTERN] + rt->ntier[TIER_PREFIX] > 0) {
        struct segs s;
        split(m->path, m->path_len, &s);
        for (int tier = TIER_PATTERN; tier <= TIER_PREFIX; tier++) {
            const struct corio__http_route *r = tier_find(rt, tier, method, m, &s, &allow);
            if (r)
                return m->r = r;
        }
    }
    *allowed = allow;
    return NULL;
}

const struct corio__http_route *corio__http_router_find(const struct corio__http_router *rt,
                                                        int method, const char *t, size_t tl,
                                                        struct corio__http_match *m,
                                                        unsigned *allowed)
{
    uint32_t hash;
    m->r = NULL;
    *allowed = 0;
    m->path = target_path(t, tl, &m->path_len, &hash);
    if (!m->path)
        return NULL;
    int32_t i = exact_find(rt, m->path, m->path_len, hash);
    if (i >= 0 && method_ok(rt->routes[i].method, method))
        return m->r = &rt->routes[i];
    return find_rest(rt, method, i, m, allowed);
}

int corio_http_route_find(const struct corio_http_server *s, enum corio_http_method method,
                          const char *t, size_t tl, unsigned *allowed)
{
    struct corio__http_match m;
    unsigned allow;
    const struct corio__http_route *r =
        corio__http_router_find(&s->router, (int)method, t, tl, &m, &allow);
    if (allowed)
        *allowed = allow;
    return r ? (int)(r - s->router.routes) : -ENOENT;
}

/* ---- parameters ------------------------------------------------------------------------------ */

/* Decodes the %-escapes of @in (@len bytes) into @out. Returns the decoded length, or -EBADMSG
 * for a bad escape or a NUL, -EACCES for an encoded '/'. */
static ssize_t pct_decode(const char *in, size_t len, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3 || (hi = hex_digit(in[i + 1])) < 0 || (lo = hex_digit(in[i + 2])) < 0)
                return -EBADMSG;
            c = (char)(hi << 4 | lo);
            i += 2;
            if (c == '/')
                return -EACCES;
            if (c == '\0')
                return -EBADMSG;
        }
        out[w++] = c;
    }
    return (ssize_t)w;
}

int corio__http_router_decode(struct corio_http_conn *c)
{
    const struct corio__http_route *r = c->m.r;
    size_t used = 0;
    if (r->nparams == 0)
        return 0;
    /* No room: a route with parameters was added while the connection was served, which the
     * header forbids; refuse the request rather than write anywhere. */
    if (!c->pscratch)
        return -ENOMEM;
    for (unsigned i = 0; i < r->nparams; i++) {
        struct corio__http_param *p = &c->m.params[i];
        if (!memchr(p->p, '%', p->len))
            continue;
        /* The decoded values are never longer than the raw ones, which together are no longer
         * than the target, and the scratch room has max_target_bytes. */
        ssize_t n = pct_decode(p->p, p->len, c->pscratch + used);
        if (n < 0)
            return (int)n;
        p->p = c->pscratch + used;
        p->len = (size_t)n;
        used += (size_t)n;
    }
    return 0;
}

const char *corio_http_param(struct corio_http_conn *c, const char *name, size_t *len)
{
    const struct corio__http_route *r = c->m.r;
    if (!r || !name)
        return NULL;
    unsigned k = 0;
    for (unsigned i = 0; i < r->nsegs; i++) {
        if (!r->segs[i].param)
            continue;
        if (strcmp(r->path + r->segs[i].off, name) == 0) {
            *len = c->m.params[k].len;
            return c->m.params[k].p;
        }
        k++;
    }
    return NULL;
}

/* ---- mounts ---------------------------------------------------------------------------------- */

/* The handler of a mount: the file named by the path after the prefix, from the prefix's last
 * '/' so that the rest is a path of its own and is cleaned as one. */
static int mount_serve(struct corio_http_conn *c, const struct corio_http_request *req, void *arg)
{
    const struct corio__http_mount *mt = arg;
    const char *t = c->m.path + mt->len - 1;
    size_t tl = (size_t)(req->target + req->target_len - t);
    corio__http_serve_file_at(c, req, mt->fd, t, tl, mt->prefix, mt->len - 1);
    return 0;
}

int corio_http_mount(struct corio_http_server *s, const char *prefix, const char *dir)
{
    size_t len = prefix ? strlen(prefix) : 0;
    if (!s || !dir || len == 0 || prefix[0] != '/' || prefix[len - 1] != '/' ||
        strchr(prefix, '*') || strstr(prefix, "/:") || len > CORIO__HTTP_MOUNT_PREFIX_MAX)
        return -EINVAL;
    struct corio__http_router *rt = &s->router;
    struct corio__http_mount **v = realloc(rt->mounts, (rt->nmounts + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    rt->mounts = v;
    struct corio__http_mount *mt = malloc(sizeof(*mt) + len + 2);
    if (!mt)
        return -ENOMEM;
    mt->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mt->fd < 0) {
        int err = -errno;
        free(mt);
        return err;
    }
    mt->len = len;
    memcpy(mt->prefix, prefix, len);
    /* The route's path: the prefix with the '*' that makes it one. */
    mt->prefix[len] = '*';
    mt->prefix[len + 1] = '\0';
    int err = corio__http_router_add(rt, CORIO_HTTP_GET, mt->prefix, mount_serve, mt);
    mt->prefix[len] = '\0';
    if (err) {
        close(mt->fd);
        free(mt);
        return err;
    }
    rt->mounts[rt->nmounts++] = mt;
    return 0;
}

/* ---- hooks ----------------------------------------------------------------------------------- */

int corio_http_hook(struct corio_http_server *s, corio_http_handler *before,
                    corio_http_after_hook *after, void *arg)
{
    if (!s || (!before && !after))
        return -EINVAL;
    struct corio__http_router *rt = &s->router;
    struct corio__http_hook *v = realloc(rt->hooks, (rt->nhooks + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    rt->hooks = v;
    v[rt->nhooks++] = (struct corio__http_hook){before, after, arg};
    return 0;
}

int corio__http_hooks_before(struct corio_http_conn *c, const struct corio_http_request *req)
{
    const struct corio__http_router *rt = &c->s->router;
    for (size_t i = 0; i < rt->nhooks; i++) {
        const struct corio__http_hook *k = &rt->hooks[i];
        if (!k->before)
            continue;
        int err = k->before(c, req, k->arg);
        if (err < 0)
            return err;
        if (c->resp != CORIO__HTTP_RESP_NONE)
            return 1;
    }
    return 0;
}

void corio__http_hooks_after(struct corio_http_conn *c, const struct corio_http_request *req,
                             uint64_t start)
{
    const struct corio__http_router *rt = &c->s->router;
    if (rt->nhooks == 0)
        return;
    uint64_t bytes = c->out_bytes + c->wlen - start;
    for (size_t i = rt->nhooks; i-- > 0;) {
        const struct corio__http_hook *k = &rt->hooks[i];
        if (k->after)
            k->after(c, req, c->status, bytes, k->arg);
    }
}
