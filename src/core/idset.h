/* idset: a sorted array of distinct 64-bit ids, the member lists of groups
 * and rooms. Lookups are a binary search and the members are a plain array
 * that fan-out can walk; inserts and deletes move the tail, which is cheap
 * at the sizes groups and rooms have (thousands). */
#ifndef RTM_IDSET_H
#define RTM_IDSET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct idset {
    int64_t *v;
    uint32_t n, cap;
} idset;

/* Index of the first element >= x. */
static inline uint32_t idset_lower(const idset *s, int64_t x)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline bool idset_has(const idset *s, int64_t x)
{
    uint32_t i = idset_lower(s, x);
    return i < s->n && s->v[i] == x;
}

/* Returns 1 when added, 0 when already present, -1 when out of memory. */
static inline int idset_add(idset *s, int64_t x)
{
    uint32_t i = idset_lower(s, x);
    if (i < s->n && s->v[i] == x)
        return 0;
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 4;
        int64_t *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    memmove(s->v + i + 1, s->v + i, (size_t)(s->n - i) * sizeof *s->v);
    s->v[i] = x;
    s->n++;
    return 1;
}

/* Returns true when x was present. */
static inline bool idset_del(idset *s, int64_t x)
{
    uint32_t i = idset_lower(s, x);
    if (i >= s->n || s->v[i] != x)
        return false;
    memmove(s->v + i, s->v + i + 1, (size_t)(s->n - i - 1) * sizeof *s->v);
    s->n--;
    return true;
}

static inline void idset_free(idset *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

#endif
