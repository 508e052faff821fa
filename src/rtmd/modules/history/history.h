/* History, unread state, conversation lists and retention: one module in
 * four files, history.c (life cycle, pages, single messages),
 * conversations.c (unread, conversation lists, read markers), retention.c
 * (the retention job) and history_job.c (what they share, declared in
 * history_internal.h).
 *
 * Reads of stored messages (table `messages`, written by messages.c) on
 * both gates, the per-user read markers and hidden conversations (table
 * `conversation_marks`, migration 4) on the client gate, and the periodic
 * retention job that trims history per project. Every read runs on the
 * store's reader pool (store_read); every write goes through the writer
 * thread (store_submit); the loop never waits for the disk.
 *
 * Wire formats (as the RTM SDKs parse them):
 *   history answer  {num, lastid, begin, end, msgs: [[id, from, mtype, mid,
 *                   deleted, msg, attrs, mtime], ...]}; in getp2pmsg the
 *                   second item is the direction instead of from: 1 = sent
 *                   by the user asked about (uid on the server gate, the
 *                   caller on the client gate), 2 = received by that user.
 *                   msg is bin when the message arrived as bin, else str.
 *                   A deleted message stays in history with deleted = true
 *                   and an empty msg and attrs. lastid is the id of the last
 *                   message returned (the lastid asked for when none);
 *                   begin/end are the values for the next page: desc moves
 *                   end to the mtime of the last message returned, asc moves
 *                   begin to it. Next page: id < lastid (desc) or > lastid
 *                   (asc), begin <= mtime <= end (0 = no bound). num above
 *                   20 is clamped to 20, and a page ends early (after at
 *                   least one message) where the next message would take
 *                   the answer over max_packet.
 *   getmsg          {id, mtype, msg, attrs, mtime}, or {} when the message
 *                   does not exist or was deleted (the server SDKs read {}
 *                   as "no message").
 *   getmsgnum       {sender: distinct senders, num: messages} (not deleted).
 *   conversations   {conversations: [xid], unreads: [n], msgs: [message]}
 *                   with message in the history form above (p2p: direction);
 *                   getunreadconversationlist answers p2pConversations,
 *                   p2pUnreads, p2pMsgs, groupConversations, groupUnreads,
 *                   groupMsgs. Newest conversation first, at most 500,
 *                   and only those whose last messages fit in max_packet
 *                   (half of it for each list of getunreadconversationlist).
 *
 * Unread. A message of conversation C is unread for user U when another
 * user sent it, it is not deleted, and its id is above U's read marker of C.
 * The read marker of C is the larger of U's marker for C and U's marker for
 * all conversations. Markers only move forward:
 *   - cleanunread, and getunread / getunreadconversationlist with clear,
 *     move the all-conversations marker to the newest message id;
 *   - getp2pmsg / getgroupmsg on the client gate move the marker of that
 *     conversation to the largest id they returned (reading a page reads
 *     it and everything older);
 *   - removesession {to} moves the p2p marker to the newest message and
 *     hides the conversation from getsession and the conversation lists
 *     until a newer message arrives.
 * The methods taking mtime (getp2punread, getgroupunread, conversation
 * lists) count instead the messages from others newer than mtime when
 * mtime is given. Without mtypes they count mtypes 30-50 (chat and file
 * messages); getunread and getsession consider every mtype. Group
 * conversations are those of groups the user is a member of (table
 * group_members); rooms and broadcasts have no unread state.
 *
 * Retention. Per project, limits.history_days (messages older than that)
 * and limits.history_max_per_conversation (oldest beyond that count) are
 * deleted by a job that runs once at start and then every
 * cfg.retention_interval seconds: a scan on the reader pool finds the work,
 * then deletes run through the writer in batches of at most
 * HISTORY_SWEEP_BATCH rows, one batch in flight at a time. 0 = no limit.
 */
#ifndef RTMD_HISTORY_H
#define RTMD_HISTORY_H

#include "server_state.h"

#define HISTORY_NUM_MAX 20          /* messages per history page */
#define HISTORY_MTYPES_MAX 64       /* entries of an mtypes filter */
#define HISTORY_IDS_MAX 200         /* uids / gids of one unread query */
#define HISTORY_CONV_MAX 500        /* conversations in one list */
#define HISTORY_SWEEP_BATCH 2000    /* rows deleted by one retention write */

/* Rows deleted by the retention job since start (tests, metrics). */
uint64_t history_retention_deleted(rtmd_server *srv);

#endif
