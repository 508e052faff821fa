/* A hash map from a pair of 64-bit integers to a pointer: (pid, uid) to a
 * user, (pid, gid) to a group, (pid, salt) to a replay record. Open
 * addressing with linear probing and backward-shift deletion, so lookups
 * touch one cache line in the common case and deletions leave no tombstones.
 * Slots are picked by the keyed mix of hash.h: peers choose uids and room ids. */
#ifndef RTM_PAIRMAP_H
#define RTM_PAIRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct pairmap_slot {
    uint64_t a, b;
    void *value; /* NULL marks an empty slot */
} pairmap_slot;

typedef struct pairmap {
    pairmap_slot *slots;
    size_t cap;   /* power of two, or 0 */
    size_t count;
    uint64_t key; /* of the slots' hash: rtm_hash_key(), taken at the first insert */
} pairmap;

void *pairmap_get(const pairmap *m, uint64_t a, uint64_t b);
/* Inserts or replaces; value must not be NULL. Returns 0, or -1 when out of memory. */
int pairmap_put(pairmap *m, uint64_t a, uint64_t b, void *value);
/* Removes the entry and returns its value, or NULL if absent. */
void *pairmap_del(pairmap *m, uint64_t a, uint64_t b);
/* The value slot of (a, b), inserted empty (*slot == NULL) if absent, in one
 * probe sequence: the caller stores a non-NULL value in it before any other
 * call on the map. Returns NULL when out of memory. */
void **pairmap_reserve(pairmap *m, uint64_t a, uint64_t b);
void pairmap_free(pairmap *m);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].value) ...
 * The map must not change during iteration. */

#endif
