/* grow: room for one more element in a malloc'd array that doubles, for
 * the rows a reader collects before it knows how many there are. */
#ifndef RTM_GROW_H
#define RTM_GROW_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* *array (a pointer to the array's pointer, of elements of size elem)
 * holds n elements in room for *cap: makes room for n + 1. Returns 0, or
 * -1 when out of memory (the array unchanged). */
static inline int grow_for_one(void *array, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t more = *cap ? *cap * 2 : 16;
    if (more > SIZE_MAX / elem)
        return -1;
    void *old;
    memcpy(&old, array, sizeof old);
    void *p = realloc(old, more * elem);
    if (!p)
        return -1;
    memcpy(array, &p, sizeof p);
    *cap = more;
    return 0;
}

#endif
