/* Persistent groups: membership kept in memory for fan-out and in the
 * store for restarts, with the group methods of both gates. */
#ifndef RTMD_GROUPS_H
#define RTMD_GROUPS_H

#include "server.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool groups_is_member(rtmd_server *srv, int64_t pid, int64_t gid, int64_t uid);
/* The members of a group (NULL and 0 if the group has none). The array is
 * owned by groups.c and valid until the next change of that group. */
const int64_t *groups_members(rtmd_server *srv, int64_t pid, int64_t gid, size_t *count);

#endif
