/* The cache of translations (translate.c): answers of the translation
 * server kept by (project, key), where the key is translate.c's bytes for
 * (src, dst, text); least recently used first out, bounded by a number of
 * entries and by the bytes they hold. A table whose keys peers choose:
 * its bucket hash is seeded at random, and its size never depends on it. */
#ifndef RTMD_TRANSLATE_CACHE_H
#define RTMD_TRANSLATE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRANSLATE_CACHE_ENTRIES 4096
#define TRANSLATE_CACHE_BYTES (16u * 1024 * 1024)

typedef struct translate_cache translate_cache;

/* A cache of at most max_entries entries and max_bytes bytes (keys, texts
 * and the entries' own size), or NULL (out of memory). */
translate_cache *translate_cache_new(size_t max_entries, size_t max_bytes, uint64_t seed);
void translate_cache_free(translate_cache *c);

/* On a hit: true, the entry becomes the newest, and *source (a language
 * code or "") and *text, *len point into it until the next put or free. */
bool translate_cache_get(translate_cache *c, int64_t pid, const char *key, size_t key_len, const char **source,
                         const char **text, size_t *len);

/* Keeps copies of the answer for (pid, key), replacing one there; the
 * oldest entries go to make room. An entry larger than max_bytes on its
 * own is not kept. source is at most 15 bytes (cut past that). */
void translate_cache_put(translate_cache *c, int64_t pid, const char *key, size_t key_len, const char *source,
                         const char *text, size_t len);

size_t translate_cache_entries(const translate_cache *c);
size_t translate_cache_bytes(const translate_cache *c);

#endif
