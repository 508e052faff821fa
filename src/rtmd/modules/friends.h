/* Friends and blacklists of users (friends.c): each user's own list of
 * friends and own blacklist, kept in memory and in the store, with the
 * methods of both gates, and the one rule messages.c asks about before a
 * client's p2p message is admitted. */
#ifndef RTMD_FRIENDS_H
#define RTMD_FRIENDS_H

#include "server_state.h"

#include <stdbool.h>
#include <stdint.h>

/* Most uids one addfriends/delfriends/isfriends/addblacks/delblacks/
 * isblacks call names (rtm-doc's limit for adding friends: 100). */
#define RTMD_FRIENDS_MAX_UIDS_PER_CALL 100

/* Whether other is in uid's friend list (lists are one-way: see friends.c). */
bool friends_is_friend(rtmd_server *srv, int64_t pid, int64_t uid, int64_t other);
/* Whether other is in uid's blacklist. */
bool friends_is_black(rtmd_server *srv, int64_t pid, int64_t uid, int64_t other);

/* Whether a client-gate user `from` may send a p2p message to `to`: 0 if
 * it may, else the RTM error code to answer: RTM_EC_BLOCKED_USER (200049)
 * when `to` has `from` on its blacklist, RTM_EC_NOT_FRIEND (200043) when
 * the project sets p2p_require_friend and `to` does not count `from` among
 * its friends. */
int friends_p2p_refusal(rtmd_server *srv, int64_t pid, int64_t from, int64_t to);
/* The ex text of a code friends_p2p_refusal returned. */
const char *friends_refusal_text(int code);

#endif
