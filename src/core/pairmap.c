/* Pair-keyed hash map (see pairmap.h). */
#include "pairmap.h"

#include <stdlib.h>

#include "hash.h"

static size_t find(const pairmap *m, uint64_t a, uint64_t b)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)rtm_hash_pair(m->key, a, b) & mask;
    while (m->slots[i].value && (m->slots[i].a != a || m->slots[i].b != b))
        i = (i + 1) & mask;
    return i;
}

void *pairmap_get(const pairmap *m, uint64_t a, uint64_t b)
{
    if (m->cap == 0)
        return NULL;
    return m->slots[find(m, a, b)].value;
}

static int grow(pairmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    pairmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    pairmap old = *m;
    if (!m->key)
        m->key = rtm_hash_key();
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].value)
            m->slots[find(m, old.slots[i].a, old.slots[i].b)] = old.slots[i];
    free(old.slots);
    return 0;
}

void **pairmap_reserve(pairmap *m, uint64_t a, uint64_t b)
{
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) != 0)
        return NULL;
    size_t i = find(m, a, b);
    if (!m->slots[i].value) {
        m->count++;
        m->slots[i].a = a;
        m->slots[i].b = b;
    }
    return &m->slots[i].value;
}

int pairmap_put(pairmap *m, uint64_t a, uint64_t b, void *value)
{
    void **slot = pairmap_reserve(m, a, b);
    if (!slot)
        return -1;
    *slot = value;
    return 0;
}

/* Removes the entry at slot i (which holds a value) by backward shift. */
static void remove_at(pairmap *m, size_t i)
{
    size_t mask = m->cap - 1;
    m->count--;
    /* Backward-shift: move later entries of the probe run into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].value; j = (j + 1) & mask) {
        size_t home = (size_t)rtm_hash_pair(m->key, m->slots[j].a, m->slots[j].b) & mask;
        /* Entry j may fill the hole if its home is not in (hole, j]. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].value = NULL;
}

void *pairmap_del(pairmap *m, uint64_t a, uint64_t b)
{
    if (m->cap == 0)
        return NULL;
    size_t i = find(m, a, b);
    void *value = m->slots[i].value;
    if (value)
        remove_at(m, i);
    return value;
}

void pairmap_free(pairmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}
