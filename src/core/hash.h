/* hash: the one string hash of rtm, 64-bit FNV-1a, for the keys of
 * in-memory tables (method names, auth tokens, string user ids). It is not
 * keyed: a table whose keys a peer chooses must not depend on it for its
 * bounds. Callers that need fewer bits take the low ones. */
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

#endif
