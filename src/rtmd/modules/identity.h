/* String ids: maps a string user id (as the RTS-style SDK uses, matching
 * [a-zA-Z0-9_@.-]{1,128}) to one stable 64-bit uid per project and back.
 *
 * Numbering. String-id uids are allocated sequentially per project from a
 * reserved range starting at IDENTITY_UID_BASE (2^62) up to INT64_MAX, so
 * they never meet the numeric uids that number-id clients use (below 2^62).
 * The next value of a project is max(uid in the range) + 1, read from the
 * store at start-up (and on the writer thread for a project first seen
 * later). A uid is never reused.
 *
 * Persistence. The mapping lives in the store's users table (pid, uid,
 * string_id UNIQUE per pid). A resolve that misses the memory cache is one
 * store write whose select-or-insert runs atomically on the writer thread;
 * concurrent resolves of one string share that write. Reverse lookups that
 * miss the cache read the store on libuv's thread pool.
 *
 * Callbacks run on the loop and never inside the call that registered
 * them: a cache hit is answered through the return value instead. Loop
 * thread only. */
#ifndef RTMD_IDENTITY_H
#define RTMD_IDENTITY_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rtmd_server;

#define IDENTITY_UID_BASE ((int64_t)1 << 62)
#define IDENTITY_STRING_MAX 128
/* Resolved mappings kept in memory (least recently used ones go first). */
#define IDENTITY_CACHE_DEFAULT_MAX (1u << 18)

typedef struct identity_state identity_state;

/* True when s[0..len) is a valid string id: 1 to 128 characters from
 * a-z, A-Z, 0-9, '_', '@', '-', '.'. */
bool identity_validate(const char *s, size_t len);
/* True when uid lies in the reserved range of string-id uids. */
bool identity_is_string_uid(int64_t uid);

/* Opens the identity layer on an open store (start-up, loop thread): reads
 * the next uid of every project from the store. Returns NULL with err. */
identity_state *identity_open(store *st, char *err, size_t errlen);
/* Frees the cache. Pending resolves and lookups are abandoned: their
 * callbacks are not called (the store still finishes their writes). */
void identity_close(identity_state *id);
/* Bounds the cache to max resolved entries (at least 1). */
void identity_set_cache_max(identity_state *id, size_t max);
/* Entries in the cache now (tests and statistics). */
size_t identity_cache_count(const identity_state *id);

/* status is 0 on success, otherwise an SQLite error code. */
typedef void (*identity_resolve_cb)(void *arg, int status, int64_t uid);

/* Resolves string id sid of project pid to its uid, creating the mapping
 * when it is new. Returns
 *   1  answered from the cache: *uid is set, cb will not be called;
 *   0  pending: cb(arg, status, uid) will be called once, on the loop;
 *  -1  invalid string id, store closing or out of memory (cb not called). */
int identity_resolve(identity_state *id, int64_t pid, const char *sid, size_t len, int64_t *uid,
                     identity_resolve_cb cb, void *arg);

/* sid is NUL-terminated, or NULL when uid has no string id. Valid only
 * during the call. */
typedef void (*identity_lookup_cb)(void *arg, int status, const char *sid);

/* Reverse lookup uid -> string id. Returns
 *   1  answered now: *sid is the string id, or NULL when uid is outside the
 *      reserved range (a numeric id); valid until the next identity call;
 *   0  pending: cb(arg, status, sid or NULL if unknown) will be called once;
 *  -1  store closing or out of memory (cb not called). */
int identity_lookup(identity_state *id, int64_t pid, int64_t uid, const char **sid, identity_lookup_cb cb,
                    void *arg);

/* The string id of uid if the cache holds it now (no store read), else
 * NULL; valid until the next identity call. */
const char *identity_peek(identity_state *id, int64_t pid, int64_t uid);

/* The server's identity layer (a service module, see module.h). */
identity_state *identity_of(struct rtmd_server *srv);

#endif
