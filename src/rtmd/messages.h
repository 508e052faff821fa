/* Messages: how a conversation is named in the store (conv_type and the
 * conv_a/conv_b key of table `messages`), and the duplicate table of
 * recently accepted (sender, mid) pairs. The sending methods themselves live
 * in messages.c; history reads (history.c) use the conversation helpers so
 * that both agree on how rows are keyed. */
#ifndef RTMD_MESSAGES_H
#define RTMD_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* conv_type of table `messages` (the RTM conversation types). */
#define CONV_P2P 1
#define CONV_GROUP 2
#define CONV_ROOM 3
#define CONV_BROADCAST 4

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

/* Recently accepted messages: (pid, conversation, from, mid) -> mtime, a
 * bounded FIFO (the oldest entry goes when it is full). It only speeds up
 * retries; the store's unique index messages_dedup is the authority. */
typedef struct msg_dedup msg_dedup;

msg_dedup *msg_dedup_new(size_t capacity);
void msg_dedup_free(msg_dedup *d);
/* True and *mtime set if the message is known. */
bool msg_dedup_find(const msg_dedup *d, int64_t pid, conv_key conv, int64_t from, int64_t mid, int64_t *mtime);
/* Remembers a message (replacing an entry with the same key). Returns 0, or
 * -1 when out of memory (the message is then simply not remembered). */
int msg_dedup_add(msg_dedup *d, int64_t pid, conv_key conv, int64_t from, int64_t mid, int64_t mtime);
size_t msg_dedup_count(const msg_dedup *d);

#endif
