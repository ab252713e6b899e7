/* An intrusive, circular, doubly linked list (header-only). A node that is not in a list points to
 * itself after corio__list_init, so removal twice is harmless. */
#ifndef CORIO_LIST_H
#define CORIO_LIST_H

#include <stdbool.h>

struct corio__list {
    struct corio__list *next; /* the next node, or the head when this is the last one */
    struct corio__list *prev; /* the previous node, or the head when this is the first one */
};

static inline void corio__list_init(struct corio__list *l)
{
    l->next = l;
    l->prev = l;
}

static inline bool corio__list_empty(const struct corio__list *l)
{
    return l->next == l;
}

/* Inserts @n before @at (at the tail when @at is the head). */
static inline void corio__list_insert_before(struct corio__list *at, struct corio__list *n)
{
    n->next = at;
    n->prev = at->prev;
    at->prev->next = n;
    at->prev = n;
}

static inline void corio__list_push_back(struct corio__list *head, struct corio__list *n)
{
    corio__list_insert_before(head, n);
}

/* Unlinks @n and makes it a lone node again. */
static inline void corio__list_remove(struct corio__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n;
    n->prev = n;
}

/* Removes and returns the first node, or NULL if the list is empty. */
static inline struct corio__list *corio__list_pop_front(struct corio__list *head)
{
    struct corio__list *n = head->next;
    if (n == head)
        return NULL;
    corio__list_remove(n);
    return n;
}

/* Moves every node of @from to the tail of @to; @from is left empty. O(1). */
static inline void corio__list_splice(struct corio__list *to, struct corio__list *from)
{
    if (corio__list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    corio__list_init(from);
}

#endif
