/* Bans and the project blacklist: group bans and room bans (a banned user
 * may not send to that group or room; a ban may name every group or every
 * room, which the two queries below count), project bans (may not send at
 * all), and the project blacklist (a blacklisted user may not log in, and
 * is kicked out when added). Each has a duration or lasts for ever, and is
 * persisted. */
#ifndef RTMD_BANS_H
#define RTMD_BANS_H

#include "server_state.h"

#include <stdbool.h>
#include <stdint.h>

bool bans_group_banned(rtmd_server *srv, int64_t pid, int64_t gid, int64_t uid);
bool bans_room_banned(rtmd_server *srv, int64_t pid, int64_t rid, int64_t uid);
bool bans_blacklisted(rtmd_server *srv, int64_t pid, int64_t uid);
/* A project ban (addprojectban): the user may send nothing, on any gate. */
bool bans_project_banned(rtmd_server *srv, int64_t pid, int64_t uid);

#endif
