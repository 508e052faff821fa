/* The cache of translations (see translate_cache.h): a chained hash table of a
 * fixed number of buckets for lookups and a doubly linked list from the
 * oldest use to the newest for eviction. Each entry is one allocation
 * with its key and text after it. */
#include "translate_cache.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

#define BUCKETS 8192 /* a power of two; chains stay short at TRANSLATE_CACHE_ENTRIES */

typedef struct entry {
    uint64_t hash;
    int64_t pid;
    size_t key_len, text_len;
    size_t bytes;                /* counted against max_bytes */
    char source[16];
    struct entry *older, *newer; /* the use order */
    struct entry *chain;         /* the bucket's */
    char data[];                 /* key, then text */
} entry;

struct translate_cache {
    entry *buckets[BUCKETS];
    entry *oldest, *newest;
    size_t entries, bytes;
    size_t max_entries, max_bytes;
    uint64_t seed;
};

translate_cache *translate_cache_new(size_t max_entries, size_t max_bytes, uint64_t seed)
{
    translate_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->max_entries = max_entries;
        c->max_bytes = max_bytes;
        c->seed = seed;
    }
    return c;
}

static uint64_t hash_of(const translate_cache *c, int64_t pid, const char *key, size_t len)
{
    return rtm_hash_pair(c->seed, (uint64_t)pid, rtm_hash64(key, len));
}

static void unlink_use(translate_cache *c, entry *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    e->older = e->newer = NULL;
}

static void push_newest(translate_cache *c, entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
}

static entry *find(const translate_cache *c, int64_t pid, const char *key, size_t len, uint64_t h)
{
    for (entry *e = c->buckets[h & (BUCKETS - 1)]; e; e = e->chain)
        if (e->hash == h && e->pid == pid && e->key_len == len && memcmp(e->data, key, len) == 0)
            return e;
    return NULL;
}

static void drop(translate_cache *c, entry *e)
{
    entry **p = &c->buckets[e->hash & (BUCKETS - 1)];
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    unlink_use(c, e);
    c->entries--;
    c->bytes -= e->bytes;
    free(e);
}

void translate_cache_free(translate_cache *c)
{
    if (!c)
        return;
    while (c->oldest)
        drop(c, c->oldest);
    free(c);
}

bool translate_cache_get(translate_cache *c, int64_t pid, const char *key, size_t key_len, const char **source,
                         const char **text, size_t *len)
{
    entry *e = find(c, pid, key, key_len, hash_of(c, pid, key, key_len));
    if (!e)
        return false;
    unlink_use(c, e);
    push_newest(c, e);
    *source = e->source;
    *text = e->data + e->key_len;
    *len = e->text_len;
    return true;
}

void translate_cache_put(translate_cache *c, int64_t pid, const char *key, size_t key_len, const char *source,
                         const char *text, size_t len)
{
    uint64_t h = hash_of(c, pid, key, key_len);
    entry *old = find(c, pid, key, key_len, h);
    if (old)
        drop(c, old);
    size_t bytes = sizeof(entry) + key_len + len;
    if (bytes > c->max_bytes || c->max_entries == 0)
        return;
    entry *e = malloc(bytes);
    if (!e)
        return;
    while (c->oldest && (c->entries >= c->max_entries || c->bytes + bytes > c->max_bytes))
        drop(c, c->oldest);
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->pid = pid;
    e->key_len = key_len;
    e->text_len = len;
    e->bytes = bytes;
    size_t n = strnlen(source, sizeof e->source - 1);
    memcpy(e->source, source, n);
    memcpy(e->data, key, key_len);
    memcpy(e->data + key_len, text, len);
    entry **b = &c->buckets[h & (BUCKETS - 1)];
    e->chain = *b;
    *b = e;
    push_newest(c, e);
    c->entries++;
    c->bytes += bytes;
}

size_t translate_cache_entries(const translate_cache *c)
{
    return c->entries;
}

size_t translate_cache_bytes(const translate_cache *c)
{
    return c->bytes;
}
