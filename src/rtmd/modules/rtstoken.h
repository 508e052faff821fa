/* RTS access tokens of a project (the vendor's AccessToken format of
 * core/accesstoken.h, keyed by the project's app_id and app_key settings):
 * the server-gate method getrtstoken that mints them for an app server,
 * and the check that the RTS-style login (string user ids) calls. */
#ifndef RTMD_RTSTOKEN_H
#define RTMD_RTSTOKEN_H

#include "server_state.h"

#include <stddef.h>
#include <stdint.h>

/* Results of rtstoken_check. */
enum {
    RTSTOKEN_OK = 0,
    RTSTOKEN_INVALID = -1,  /* malformed or oversized, another app id, a bad
                             * signature, or made for another user */
    RTSTOKEN_EXPIRED = -2,  /* authentic and for this user, but its expire_at
                             * has passed: the SDK should fetch a new one */
    RTSTOKEN_DISABLED = -3, /* the project has no app_id/app_key */
};

/* Checks token[0..len) for logging in as string user id
 * user_id[0..user_len) to project p at now_s (unix seconds): the token's
 * app id is p's app_id, its signature is HMAC-SHA256 with p's app_key over
 * its message, its user id is exactly user_id (byte for byte), and its
 * expire_at (0 = none) is not before now_s. The room id and the
 * privileges of the token are not looked at (login has no room). Never
 * reports a forged token as expired. Pure: no state, no I/O, any thread. */
int rtstoken_check(const rtmd_project *p, const char *token, size_t len, const char *user_id, size_t user_len,
                   uint64_t now_s);

/* Mints a login token of project p for string user id user_id[0..user_len)
 * (no room, the default privileges of getrtstoken), valid lifetime_s
 * seconds from now_s, into out (cap bytes, at least AT_TOKEN_MAX + 1 of
 * core/accesstoken.h). Returns RTSTOKEN_OK, RTSTOKEN_DISABLED (p has no
 * app_id/app_key) or RTSTOKEN_INVALID (a bad id, or the expiry past 2106). */
int rtstoken_mint(const rtmd_project *p, const char *user_id, size_t user_len, uint32_t lifetime_s, uint64_t now_s,
                  char *out, size_t cap);

#endif
