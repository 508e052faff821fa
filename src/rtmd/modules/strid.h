/* String-id clients (the RTS-style SDK): ids are translated at the edge,
 * so that the services below keep working on 64-bit uids. In: the client
 * gates' translator turns the string ids of a string-id session's request
 * arguments into uids (identity.h) before the method runs. Out: pushes to
 * string-id users name users by strings (strid_name_of). Also the online
 * string-id users by name, getonlinestatus on the client gates, and
 * getuserids / getstringids for app servers. */
#ifndef RTMD_STRID_H
#define RTMD_STRID_H

#include "server_state.h"

#include <stdint.h>

/* The string id of uid in project pid when it is known now (an online
 * string-id user, or the identity cache), else NULL: a number uid, or a
 * string-id uid out of the cache. Valid until the next call into strid or
 * identity. */
const char *strid_name_of(rtmd_server *srv, int64_t pid, int64_t uid);

#endif
