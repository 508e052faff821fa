/* PLACEHOLDER: being written. */
#include "services.h"
#include "users.h"
#include "bans.h"
#include "groups.h"
#include "rooms.h"

int messages_init(rtmd_server *srv, char *err, size_t errlen) { return 0; }
void messages_register(struct rtmd_methods *m) {}
void messages_free(rtmd_server *srv) {}
