/* The conversation chain's upkeep by the message writer (SQLite; the
 * schema is migration 21 in store_schema.c): each stored message gets the
 * id of its conversation's previous message, conv_last the newest id, and
 * conv_index every CHAIN_SPARSE-th message. The writer thread's only. */
#ifndef RTMD_MSG_CHAIN_H
#define RTMD_MSG_CHAIN_H

#include "store/db.h"

#include <stdint.h>

/* Messages of a conversation between two of its conv_index entries. */
#define CHAIN_SPARSE 64

typedef struct msg_chain msg_chain;
/* A conversation's newest message as the writer knows it. */
typedef struct conv_tip conv_tip;

msg_chain *msg_chain_new(void);
void msg_chain_free(msg_chain *c);

/* Forgets what the writer knew when a transaction of db was rolled back
 * or rows were deleted since the last look: a newest id may be gone. */
void msg_chain_check(db_conn *db, msg_chain *c);
/* The conversation's newest message (*prev 0: none), read from conv_last
 * the first time; *tip is for msg_chain_append. */
int msg_chain_tip(db_conn *db, msg_chain *c, int64_t pid, int conv_type, int64_t a, int64_t b, conv_tip **tip,
                  int64_t *prev);
/* Message id was inserted as the conversation's newest: indexes it when
 * its turn came, and notes conv_last to be written (msg_chain_flush). */
int msg_chain_append(db_conn *db, msg_chain *c, conv_tip *tip, int64_t id);
/* Writes conv_last for the conversations appended to since the last
 * flush: once per run of message writes. */
int msg_chain_flush(db_conn *db, msg_chain *c);
/* After a failed write: what it appended may be rolled back. */
void msg_chain_forget(msg_chain *c);

#endif
