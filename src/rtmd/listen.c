/* PLACEHOLDER: being written. */
#include "services.h"
#include "users.h"
#include "bans.h"
#include "groups.h"
#include "rooms.h"

int listen_init(rtmd_server *srv, char *err, size_t errlen) { return 0; }
void listen_register(struct rtmd_methods *m) {}
void listen_free(rtmd_server *srv) {}
void listen_user_event(rtmd_server *srv, int64_t pid, int64_t uid, const char *event, uint64_t ms) {}
void listen_conn_closed(rtmd_conn *conn) {}
