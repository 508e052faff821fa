/* Messages: how a conversation is named in the store (conv_type and the
 * conv_a/conv_b key of table `messages`). The sending methods themselves live
 * in messages.c; history reads (history.c) use the conversation helpers so
 * that both agree on how rows are keyed. */
#ifndef RTMD_MESSAGES_H
#define RTMD_MESSAGES_H

#include "db.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* conv_type of table `messages` (the RTM conversation types). */
#define CONV_P2P 1
#define CONV_GROUP 2
#define CONV_ROOM 3
#define CONV_BROADCAST 4

/* Messages stored from this node since start, by conv_type: out[0] p2p,
 * [1] group, [2] room, [3] broadcast (rtmd_messages_total of /metrics). */
struct rtmd_server;
void messages_stored_counts(const struct rtmd_server *srv, uint64_t out[4]);

/* Reserved mtypes (protocol.md 6). */
#define MTYPE_MIN 1
#define MTYPE_MAX 127
#define MTYPE_CHAT_TEXT 30
#define MTYPE_CHAT_AUDIO 31
#define MTYPE_CHAT_CMD 32

typedef struct conv_key {
    int conv_type;
    int64_t a, b;
} conv_key;

/* The key of the p2p conversation between two users: the smaller uid first. */
conv_key conv_p2p(int64_t uid1, int64_t uid2);
/* Group and room conversations: (gid or rid, 0). Broadcast: (0, 0). */
conv_key conv_group(int64_t gid);
conv_key conv_room(int64_t rid);
conv_key conv_broadcast(void);
/* The conversation of conv_type that user uid has with xid: a p2p peer, a
 * gid or a rid; xid is unused for broadcast. */
conv_key conv_of(int conv_type, int64_t uid, int64_t xid);

/* Writer thread, before rows of `messages` are deleted: records the newest
 * message id in table counters, so that ids are never handed out twice
 * (the next start begins above it even if the newest rows are gone).
 * Returns an SQLite code. */
int messages_note_id_floor(db_conn *db);

#endif
