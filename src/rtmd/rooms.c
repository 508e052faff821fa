/* PLACEHOLDER: being written. */
#include "services.h"
#include "users.h"
#include "bans.h"
#include "groups.h"
#include "rooms.h"

int rooms_init(rtmd_server *srv, char *err, size_t errlen) { return 0; }
void rooms_register(struct rtmd_methods *m) {}
void rooms_free(rtmd_server *srv) {}
void rooms_user_offline(rtmd_server *srv, rtmd_user *user) {}
