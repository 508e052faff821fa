/* hash: the one string hash of rtm, 64-bit FNV-1a, for the keys of
 * in-memory tables (method names, auth tokens, string user ids), and the
 * one hash of a few integer ids (a conversation's key). Neither is keyed: a
 * table whose keys a peer chooses must not depend on them for its bounds.
 * Callers that need fewer bits take the low ones. */
#ifndef RTM_HASH_H
#define RTM_HASH_H

#include <stddef.h>
#include <stdint.h>

#define RTM_FNV64_OFFSET 1469598103934665603ull
#define RTM_FNV64_PRIME 1099511628211ull

static inline uint64_t rtm_hash64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = RTM_FNV64_OFFSET;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= RTM_FNV64_PRIME;
    }
    return h;
}

/* Up to four integer ids mixed into one hash (unused ones 0). */
static inline uint64_t rtm_hash_ids(int64_t a, int64_t b, int64_t c, int64_t d)
{
    uint64_t h = (uint64_t)a * 0x9e3779b97f4a7c15ull ^ (uint64_t)b * 0xc2b2ae3d27d4eb4full ^
                 (uint64_t)c * 0x165667b19e3779f9ull ^ (uint64_t)d;
    return h ^ h >> 29;
}

#endif
