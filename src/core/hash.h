/* hash: the one string hash of rtm, 64-bit FNV-1a, and the one keyed mix
 * of integer ids for in-memory tables. Ids that a peer chooses (uids of
 * receivers, room ids, the FNV hash of a string id) pick slots through the
 * keyed mix with a random key of the process (rtm_hash_key), so that no peer
 * can choose ids that pile into one run of slots: with a fixed function it
 * could, and every lookup in that table would walk the pile. Callers that
 * need fewer bits take the low ones. */
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

/* A random key drawn once per process (getrandom); never 0. */
uint64_t rtm_hash_key(void);

/* The 128-bit product of x and y folded to 64 bits: every bit of each
 * input reaches the low bits, which pick a slot. */
static inline uint64_t rtm_hash_fold(uint64_t x, uint64_t y)
{
    unsigned __int128 p = (unsigned __int128)x * y;
    return (uint64_t)p ^ (uint64_t)(p >> 64);
}

/* Two ids mixed under a key. */
static inline uint64_t rtm_hash_pair(uint64_t key, uint64_t a, uint64_t b)
{
    return rtm_hash_fold(a ^ key ^ 0x9e3779b97f4a7c15ull, b ^ (key >> 32 | key << 32) ^ 0xc2b2ae3d27d4eb4full);
}

/* Up to four ids mixed under a key (unused ones 0). */
static inline uint64_t rtm_hash_ids(uint64_t key, int64_t a, int64_t b, int64_t c, int64_t d)
{
    uint64_t h = rtm_hash_pair(key, (uint64_t)a, (uint64_t)b);
    return c | d ? rtm_hash_pair(key, h ^ (uint64_t)c, (uint64_t)d) : h;
}

#endif
