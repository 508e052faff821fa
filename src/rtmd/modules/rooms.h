/* Live rooms: who is in which room right now (in memory only). A user
 * leaves a room by leaveroom, by delroommember from the app server (with a
 * kickoutroom push), or by going offline. */
#ifndef RTMD_ROOMS_H
#define RTMD_ROOMS_H

#include "server_state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool rooms_is_member(rtmd_server *srv, int64_t pid, int64_t rid, int64_t uid);
/* The members of a room (NULL and 0 if empty). The array is owned by
 * rooms.c and valid until the next change of that room. */
const int64_t *rooms_members(rtmd_server *srv, int64_t pid, int64_t rid, size_t *count);
/* The room's string id (a room a string-id session entered by a string),
 * or NULL: pushes to string-id members name the room by it. Valid until
 * the next change of that room, or call into strid or identity. */
const char *rooms_name(rtmd_server *srv, int64_t pid, int64_t rid);

/* A room and how many members it has now. */
typedef struct rooms_count {
    int64_t pid, rid;
    size_t members;
} rooms_count;
/* The rooms with the most members, most first (ties: lower pid, then rid
 * first), at most max of them into out; returns how many. Walks every
 * room: for the admin page's poll, not the message path. */
size_t rooms_top(rtmd_server *srv, rooms_count *out, size_t max);

#endif
