/* App-server monitoring: what each server-gate connection listens to
 * (addlisten, removelisten, setlisten) and the delivery of messages and
 * user events to those connections. Events come from users.c through
 * listen_user_event (users.h); messages from messages.c through
 * listen_push_message. */
#ifndef RTMD_LISTEN_H
#define RTMD_LISTEN_H

#include "server.h"

#include <stddef.h>
#include <stdint.h>

/* Sends an encoded push (see push.h) of a stored message to every listener
 * of project pid that wants it: conv_type CONV_P2P matches listeners of all
 * p2p traffic or of uid `from` or `to`; CONV_GROUP those of gid `to`;
 * CONV_ROOM those of rid `to`. Other conversation types go to nobody. */
void listen_push_message(rtmd_server *srv, int64_t pid, int conv_type, int64_t from, int64_t to,
                         const uint8_t *packet, size_t len);

#endif
