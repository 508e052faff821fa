/* Persistent groups: membership kept in memory for fan-out and in the
 * store for restarts, with the group methods of both gates. */
#ifndef RTMD_GROUPS_H
#define RTMD_GROUPS_H

#include "server_state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most uids one add/del call names. The members of one group and the
 * groups of a project are bounded per project (max_group_members,
 * max_groups). */
#define RTMD_GROUP_MAX_UIDS_PER_CALL 100

bool groups_is_member(rtmd_server *srv, int64_t pid, int64_t gid, int64_t uid);
/* The members of a group (NULL and 0 if the group has none), ascending. The
 * array is owned by groups.c and valid until the next change of that group. */
const int64_t *groups_members(rtmd_server *srv, int64_t pid, int64_t gid, size_t *count);
/* The groups of a user (NULL and 0 if none), ascending; valid until the next
 * change of that user's groups. */
const int64_t *groups_of_user(rtmd_server *srv, int64_t pid, int64_t uid, size_t *count);

#endif
