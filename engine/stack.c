/* Coroutine stacks: mapping, the guard page, and the pool that keeps them for reuse. */
#include "stack.h"

#include "base.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef CORIO__VALGRIND
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#endif
#ifdef CORIO__ASAN
#include <sanitizer/asan_interface.h>
#endif

size_t corio__page_size(void)
{
    long v = sysconf(_SC_PAGESIZE);
    return v > 0 ? (size_t)v : 4096;
}

void corio__stack_pool_init(struct corio__stack_pool *p, size_t usable, size_t max_free)
{
    p->free = NULL;
    p->usable = usable;
    p->n_free = 0;
    p->max_free = max_free;
    p->n_live = 0;
    p->peak = 0;
    p->page = corio__page_size();
}

static void unmap(struct corio__stack *s)
{
#ifdef CORIO__VALGRIND
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
#ifdef CORIO__ASAN
    /* Frames that never returned (a coroutine's last one) leave poisoned shadow behind. */
    ASAN_UNPOISON_MEMORY_REGION(s->lo, (size_t)(s->hi - s->lo));
#endif
    munmap(s->map, s->map_len);
}

void corio__stack_pool_fini(struct corio__stack_pool *p)
{
    CORIO__ASSERT(p->n_live == 0);
    while (p->free) {
        struct corio__stack *s = p->free;
        p->free = s->next;
        unmap(s);
    }
    p->n_free = 0;
}

struct corio__stack *corio__stack_get(struct corio__stack_pool *p)
{
    struct corio__stack *s = p->free;
    if (s) {
        p->free = s->next;
        p->n_free--;
        if (++p->n_live > p->peak)
            p->peak = p->n_live;
        return s;
    }
    size_t page = p->page;
    size_t hdr = (sizeof(struct corio__stack) + 63) & ~(size_t)63;
    size_t len = (p->usable + hdr + page - 1) / page * page + page;
    /* MAP_NORESERVE: a stack is committed page by page as it is touched, not all at once. */
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    if (mprotect(map, page, PROT_NONE) != 0) {
        munmap(map, len);
        return NULL;
    }
    s = (struct corio__stack *)((char *)map + len - hdr);
    s->map = map;
    s->map_len = len;
    s->lo = (char *)map + page;
    s->hi = (char *)s;
    s->next = NULL;
    s->vg_id = 0;
#ifdef CORIO__VALGRIND
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->hi);
#endif
    if (++p->n_live > p->peak)
        p->peak = p->n_live;
    return s;
}

/* ---- the high-water mark (debug builds) -------------------------------------------------------*/

#ifdef CORIO__STACK_WATERMARK
/* The lowest word that is not zero in [@from, @to), or @to. Not instrumented: it reads below
 * the stack pointer of a suspended coroutine, where ASan may keep the redzones of frames that
 * returned. */
__attribute__((no_sanitize_address)) static char *first_nonzero(const char *from, const char *to)
{
    const uint64_t *w = (const uint64_t *)(const void *)from;
    const uint64_t *end = (const uint64_t *)(const void *)to;
    while (w < end && *w == 0)
        w++;
    return (char *)(uintptr_t)w;
}

/* The lowest word of @s that is not zero, or s->hi. Pages that no coroutine ever touched are not
 * in memory (mincore) and hold zeros: only the others are read, so that the reset at every
 * coroutine's end reads a page or two rather than the whole stack. */
static char *low_water(const struct corio__stack *s)
{
    size_t page = corio__page_size();
    unsigned char vec[64];
    for (char *p = s->lo; p < s->hi; p += sizeof(vec) * page) {
        size_t len =
            (size_t)(s->hi - p) < sizeof(vec) * page ? (size_t)(s->hi - p) : sizeof(vec) * page;
        size_t n = (len + page - 1) / page;
        if (mincore(p, len, vec) != 0)
            memset(vec, 1, n); /* unknown: read them all */
        for (size_t i = 0; i < n; i++) {
            if (!(vec[i] & 1))
                continue;
            char *from = p + i * page, *to = from + page < s->hi ? from + page : s->hi;
            char *w = first_nonzero(from, to);
            if (w < to)
                return w;
        }
    }
    return s->hi;
}

size_t corio__stack_used(const struct corio__stack *s)
{
#ifdef CORIO__VALGRIND
    /* memcheck calls the dead frames below a stack pointer inaccessible: reading them is the
     * point here, not a bug. */
    VALGRIND_DISABLE_ERROR_REPORTING;
#endif
    size_t used = (size_t)(s->hi - low_water(s));
#ifdef CORIO__VALGRIND
    VALGRIND_ENABLE_ERROR_REPORTING;
#endif
    return used;
}

/* Zeroes what the last coroutine on @s wrote, so that the next one's mark starts from nothing. */
static void watermark_reset(struct corio__stack *s)
{
#ifdef CORIO__VALGRIND
    VALGRIND_MAKE_MEM_DEFINED(s->lo, (size_t)(s->hi - s->lo));
#endif
    char *low = low_water(s);
    memset(low, 0, (size_t)(s->hi - low));
}
#else
size_t corio__stack_used(const struct corio__stack *s)
{
    (void)s;
    return 0;
}

static void watermark_reset(struct corio__stack *s)
{
    (void)s;
}
#endif

void corio__stack_put(struct corio__stack_pool *p, struct corio__stack *s)
{
    CORIO__ASSERT(p->n_live > 0);
    p->n_live--;
#ifdef CORIO__ASAN
    ASAN_UNPOISON_MEMORY_REGION(s->lo, (size_t)(s->hi - s->lo));
#endif
    /* Without a fixed bound every stack is kept until a trim: the stacks mapped never exceed
     * the most that were live at once. */
    if (p->max_free && p->n_free >= p->max_free) {
        unmap(s);
        return;
    }
    watermark_reset(s);
#ifdef CORIO__VALGRIND
    /* memcheck marked the frames that ended as inaccessible as the stack pointer rose above
     * them; the next coroutine on this stack builds its frames there (and, on another slot, its
     * struct): make the region ordinary undefined memory again. */
    VALGRIND_MAKE_MEM_UNDEFINED(s->lo, (size_t)(s->hi - s->lo));
#endif
    s->next = p->free;
    p->free = s;
    p->n_free++;
}

void corio__stack_pool_trim(struct corio__stack_pool *p)
{
    if (p->max_free)
        return;
    /* Keep the warmest (the first of the LIFO list): enough for the recent peak. */
    size_t keep = p->peak > p->n_live ? p->peak - p->n_live : 0;
    struct corio__stack **link = &p->free;
    for (size_t i = 0; *link && i < keep; i++)
        link = &(*link)->next;
    while (*link) {
        struct corio__stack *s = *link;
        *link = s->next;
        p->n_free--;
        unmap(s);
    }
    p->peak = p->n_live;
}

bool corio__stack_in_guard(const struct corio__stack *s, const void *addr)
{
    uintptr_t a = (uintptr_t)addr, lo = (uintptr_t)s->map;
    /* A frame larger than a page can jump past the guard into memory below the mapping. Faults
     * within 64 KiB under the guard are reported as overflow too: a best effort, documented. */
    return a < (uintptr_t)s->lo && a + 65536 >= lo;
}
