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
/* True when the 8 words at @w are all zero. */
__attribute__((no_sanitize_address)) static inline bool zero8(const uint64_t *w)
{
    return (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) == 0;
}

/* The lowest word that is not zero in [@from, @to), or @to. Not instrumented, nor memcmp: it
 * reads the redzones ASan keeps between a suspended coroutine's live frames. Eight words a step:
 * debug builds, which keep the mark, are not optimised. */
__attribute__((no_sanitize_address)) static char *first_nonzero(const char *from, const char *to)
{
    const uint64_t *w = (const uint64_t *)(const void *)from;
    const uint64_t *end = (const uint64_t *)(const void *)to;
    while (w + 8 <= end && zero8(w))
        w += 8;
    while (w < end && *w == 0)
        w++;
    return (char *)(uintptr_t)w;
}

/* The lowest word of @s that is not zero, or s->hi, looked for page by page down from the top
 * (where stacks are used) to the first page of zeros only. Reading every page in memory instead
 * (mincore) made 100,000 spawns and joins of test_coro take 230 ms instead of 33 in a debug
 * build; this takes about 110. A frame that holds a page of zeros (a large zeroed buffer) hides
 * what lies below it: the mark then reads low, and the pages below are not reset, so that a
 * later coroutine's mark on this stack may read high. */
static char *low_water(const struct corio__stack *s)
{
    size_t page = corio__page_size();
    char *low = s->hi;
    char *p = (char *)((uintptr_t)(s->hi - 1) & ~(uintptr_t)(page - 1));
    for (;; p -= page) {
        char *from = p > s->lo ? p : s->lo, *to = p + page < s->hi ? p + page : s->hi;
        char *w = first_nonzero(from, to);
        if (w == to)
            break;
        low = w;
        if (from == s->lo)
            break;
    }
    return low;
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
