/* Server-to-client quests (pushes): a push is encoded once, whatever the
 * number of receivers, and each connection only gets its own seq patched in
 * (conn_send_push). */
#ifndef RTMD_PUSH_H
#define RTMD_PUSH_H

#include "buf.h"

#include <msgpack.h>
#include <stdbool.h>

/* Encodes a quest with a msgpack body into out (reset first): twoway with
 * seq 0, to be patched per connection, or oneway. Returns 0 or -1. */
int push_encode(rtm_buf *out, const char *method, const msgpack_sbuffer *body, bool twoway);

#endif
