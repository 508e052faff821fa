/* PLACEHOLDER: being written. */
#include "services.h"
#include "users.h"
#include "bans.h"
#include "groups.h"
#include "rooms.h"

int bans_init(rtmd_server *srv, char *err, size_t errlen) { return 0; }
void bans_register(struct rtmd_methods *m) {}
void bans_free(rtmd_server *srv) {}
bool bans_group_banned(rtmd_server *srv, int64_t pid, int64_t gid, int64_t uid) { return false; }
bool bans_room_banned(rtmd_server *srv, int64_t pid, int64_t rid, int64_t uid) { return false; }
bool bans_blacklisted(rtmd_server *srv, int64_t pid, int64_t uid) { return false; }
