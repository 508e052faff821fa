/* Schema migrations of the rtmd database (see store_schema.h): an ordered
 * list of SQL scripts, migration N taking user_version from N-1 to N. A
 * migration that shipped is never edited; changes go into a new one.
 *
 * On PostgreSQL the schema is store_schema_pg.c's: a database there is
 * created at once at migration 14's schema, with a version table instead
 * of user_version. So migration 15 and every later one is two SQL texts,
 * one per engine: its SQLite text appended to migrations[] here, and its
 * PostgreSQL text as its case in store_schema_pg.c's pg_migration() (same
 * tables, the types of that file). Without the second, a PostgreSQL
 * database refuses to start with this build. */
#include "store_schema.h"

#include <stdio.h>

/*
 * Migration 1: projects known to the server.
 *
 * Migration 2: users, tokens and messages, ready for the next features.
 *   users     a user of a project, with an optional string id unique within
 *             the project (SQLite treats NULLs as distinct in the index).
 *   tokens    login tokens; expires_at in unix seconds.
 *   messages  the history of every conversation. A conversation is
 *             (conv_type, conv_a, conv_b) with the RTM types 1 = P2P
 *             (conv_a < conv_b: the two uids, smaller first), 2 = group
 *             (conv_a = gid), 3 = room (conv_a = rid), 4 = broadcast
 *             (conv_a = 0); conv_b is 0 unless P2P. id increases within a
 *             conversation and is assigned by the server. mtime is in unix
 *             milliseconds. (pid, from_uid, mid) is unique so that a message
 *             resent by a client is recognised as a duplicate.
 *
 * Migration 3: the messaging core.
 *   messages     gains is_binary (msg arrived as msgpack bin and is given
 *                back as bin); id is one server-wide increasing sequence,
 *                so it increases within every conversation; the duplicate
 *                check becomes per conversation, since one sendmsgs stores
 *                the same (from_uid, mid) in each receiver's conversation.
 *   group_members persistent group membership.
 *   bans         kind 1 = group ban (target = gid), 2 = room ban (target =
 *                rid), 3 = project blacklist (target = 0); until is unix
 *                seconds, 0 for ever. A group or room ban with target 0
 *                bans the user in every group or room (bans.c).
 *
 * Migration 4: history reads, unread state and retention (history.c,
 * conversations.c, retention.c).
 *   messages_id        (pid, id): the newest id of a project (unread
 *                      markers) and the conversations touched since the
 *                      last retention run.
 *   messages_p2p_peer  (pid, conv_type, conv_b, conv_a, id): a user's p2p
 *                      conversations where the user is conv_b (the primary
 *                      key serves those where the user is conv_a).
 *   conversation_marks per user and conversation (conv_type 1 = p2p with xid
 *                      the peer uid, 2 = group with xid the gid, 0 with xid 0
 *                      = all conversations of the user): read_id, messages
 *                      with an id up to it are read; removed_id, the p2p
 *                      conversation is hidden (removesession) until a
 *                      message with a larger id arrives.
 *
 * Migration 5: messages keyed by the server-wide message id. The table is
 *   rebuilt with id INTEGER PRIMARY KEY: the row is stored in the rowid
 *   b-tree under its id, and since messages.c hands ids out increasing, a
 *   new message is appended at the end of that b-tree instead of being
 *   placed in the conversation primary key. Indexes kept:
 *   messages_conv      (pid, conv_type, conv_a, conv_b), rowid (= id)
 *                      implied: history pages, a conversation's newest
 *                      message, counts, the per-conversation retention.
 *   messages_dedup     unique (pid, conv_type, conv_a, conv_b, from_uid,
 *                      mid), as in migration 3.
 *   messages_p2p_peer  (pid, conv_type, conv_b, conv_a), id implied, as in
 *                      migration 4.
 *   A rowid table appends the rowid to every index entry, so id is not
 *   named in messages_conv and messages_p2p_peer (it would be stored twice)
 *   and the planner still uses it for `id < ?` and `ORDER BY id`.
 *   messages_mtime and messages_id are gone: mtime never decreases as id
 *   grows (messages.c), so the rows older than a date are a prefix of the
 *   rowid order and the retention deletes by rowid ranges; the rows above
 *   an id are a rowid range too.
 *
 * Migration 6: messages_p2p_peer becomes table p2p_peers (pid, uid, peer):
 *   both users of every p2p conversation, each as uid with the other as
 *   peer, so that a user's conversations are found peer by peer. The index
 *   took a new entry for every message, groups and rooms included, in the
 *   leaf page of its conversation, which made one more page for the WAL
 *   per message; the table is written once per conversation, and a message
 *   of a known conversation only reads it (docs/performance.md). Rows
 *   outlive the messages that retention deletes; readers skip peers whose
 *   conversation is empty.
 *
 * Migration 7: table counters (name, value), values the server must never
 *   hand out again though the rows that held them are gone:
 *   message_id_floor, the newest message id seen before retention deleted
 *   messages (messages.c starts ids above both it and the newest row).
 *
 * Migration 8: table signed_salts (pid, salt, expires_at), the salts of
 *   app-server requests accepted within the signature window, kept until
 *   the request's time has left the window (sign.c), so that a captured
 *   request cannot be replayed after a restart.
 *
 * Migration 9: table storage_usage (pid, bytes), the bytes of msg and attrs
 *   of each project's stored messages up to the message id in counters'
 *   storage_usage_upto (the storage quota, quota.h). quota.c adds the rows
 *   above it once a second and moves the mark; a delete (retention) of a
 *   row at or below the mark takes its bytes off through a trigger. Inserts
 *   fire nothing: a trigger per insert cost p2p 17 % of its throughput
 *   (docs/performance.md). Filled from the messages already stored when the
 *   migration runs. The mark and the catch-up are gone since migration 16.
 *
 * Migration 10: tables friends and blacklists (pid, uid, other,
 *   created_at): other is in uid's friend list, or on uid's blacklist
 *   (friends.c). Lists are one-way: each row belongs to uid's list only.
 *
 * Migration 11: table infos (pid, kind, xid, oinfo, pinfo, updated_at), the
 *   open and private info of users (kind 1, xid = uid), groups (2, gid) and
 *   rooms (3, rid) (info.c). A rowid table with its primary key as an
 *   index: rows may be up to 128 KiB, too large for a WITHOUT ROWID b-tree.
 *   An absent part is the empty blob.
 *
 * Migration 12: per-user state of the app (userdata.c, devices.c).
 *   user_data     the key-value data of dataset/dataget/datadel: key and
 *                 val as the bytes the caller sent, val_binary 1 when val
 *                 arrived as msgpack bin (given back as bin). A rowid
 *                 table: values reach 64 KiB, too large for WITHOUT ROWID.
 *   user_devices  push device tokens (adddevice): apptype as sent ("apns",
 *                 "fcm", ...); added_at (unix ms, refreshed by a repeated
 *                 adddevice) orders a user's devices, the oldest going
 *                 first when the limit is reached. user_devices_token finds
 *                 the user who holds a token, since a token moves to the
 *                 user who added it last.
 *   push_options  per-conversation push mutes (addoption): kind 0 = p2p
 *                 (xid = the peer uid), 1 = group (xid = gid); mtypes the
 *                 muted message types as sorted distinct bytes, empty for
 *                 every type.
 *
 * Migration 13: admin clean-up and project bans (history/cleanup.c, bans.c).
 *   bans     rebuilt to allow kind 4 = project ban (target = 0: the user
 *            may not send messages; kind 3, the blacklist, keeps it from
 *            logging in).
 *   storage_usage_update  editmsg replaces msg and attrs of a stored row:
 *            a row at or below the storage_usage_upto mark changes the
 *            project's bytes by the difference (rows above it are counted
 *            by quota.c's catch-up as they are). Only edits update msg or
 *            attrs, so the trigger costs nothing on the send path.
 *
 * Migration 14: RealTimeCat sessions and tokens (modules/rtcat/).
 *   rtcat_sessions  uuid (lower-case v4), the project, label and data (NULL
 *                   when none), type 0 = p2p / 1 = rel, permanent,
 *                   live_days, created_us (unix microseconds) and expire_us
 *                   (NULL when permanent); the retention purge deletes rows
 *                   whose expire_us passed.
 *   rtcat_tokens    the same for tokens (type 0 = pub / 1 = sub) with their
 *                   session; deleting a session deletes its tokens.
 *
 * Migration 15: indexes counting a project's RealTimeCat sessions and
 *   tokens (the caps across nodes, rtcat/writes.c).
 *
 * Migration 16: storage_usage exact at every commit, with no mark and no
 *   catch-up: the writer's apply of message jobs (messages.c) adds the
 *   bytes it inserted, one upsert per project per run of jobs, in the
 *   transaction of the inserts (no insert trigger). The migration adds the
 *   rows above the storage_usage_upto mark (the last catch-up), makes the
 *   delete and edit triggers count every row, and drops the mark.
 *
 * Migration 17: messages_dedup leads with mid: (mid, from_uid, pid,
 *   conv_type, conv_a, conv_b), the same unique set. Senders derive mid
 *   from their clock (the RTM SDKs' mid generators: milliseconds, then a
 *   counter), so new entries land in the index's last leaf pages instead
 *   of one leaf page per conversation: one page fewer for the WAL per
 *   message (docs/performance.md). Every lookup by it names all six
 *   columns, so it stays one seek whatever the order.
 *
 * Migration 18: the conversation index written in bulk. messages_conv
 *   took one entry per message in its conversation's leaf page, so at a
 *   steady rate every message dirtied a page of its own that the commit
 *   wrote to the WAL (the writer's largest cost, docs/performance.md). It
 *   becomes the table conv_index (pid, conv_type, conv_a, conv_b, id),
 *   WITHOUT ROWID, holding the messages up to counters' conv_indexed_upto;
 *   the writer (messages.c) adds the rows above it in one INSERT once
 *   CONV_INDEX_TAIL rows have gone in, so that a conversation's new
 *   entries share their leaf pages in one commit. The view conv_messages is what readers
 *   query per conversation: conv_index joined to messages, UNION ALL the
 *   rows above the mark (a rowid range of at most about CONV_INDEX_TAIL
 *   rows, scanned); SQLite merges the two in id order for ORDER BY id
 *   LIMIT n. A trigger takes a deleted message's entry away. PostgreSQL
 *   keeps its B-tree index; its conv_messages is messages itself.
 *
 * Migration 21: the conversation chain, in place of migration 18's bulk
 *   index, whose catch-ups wrote a leaf page per conversation and were
 *   half of the answer p99 at 50,000 messages/s (docs/performance.md).
 *   Each message row keeps prev_id, the id of its conversation's previous
 *   message (NULL for the first), indexed (messages_prev: new entries land
 *   near the index's end, as prev_ids are recent) so that a walk goes both
 *   ways; conv_last keeps each conversation's newest id and the count of
 *   its messages since its newest conv_index entry. conv_index keeps
 *   every message stored before this migration and, from then on, every
 *   CHAIN_SPARSE-th message of a conversation (messages.c), where walks
 *   start near an id bound. A trigger splices a deleted message out of
 *   its chain and moves conv_last back. The view conv_messages is the
 *   virtual table conv_chain (conv_chain.c), which walks one conversation
 *   by these, so readers' SQL does not change. Stores are migrated in
 *   place: prev_id of every stored message from its conversation's order.
 */
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE projects ("
    "  pid INTEGER PRIMARY KEY,"
    "  secret TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ");",

    /* 2 */
    "CREATE TABLE users ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  string_id TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, uid)"
    ");"
    "CREATE UNIQUE INDEX users_string_id ON users(pid, string_id);"
    "CREATE TABLE tokens ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  token TEXT NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, token)"
    ");"
    "CREATE INDEX tokens_uid ON tokens(pid, uid);"
    "CREATE INDEX tokens_expiry ON tokens(expires_at);"
    "CREATE TABLE messages ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  conv_type INTEGER NOT NULL CHECK (conv_type BETWEEN 1 AND 4),"
    "  conv_a INTEGER NOT NULL,"
    "  conv_b INTEGER NOT NULL DEFAULT 0,"
    "  id INTEGER NOT NULL,"
    "  from_uid INTEGER NOT NULL,"
    "  mid INTEGER NOT NULL,"
    "  mtype INTEGER NOT NULL,"
    "  msg BLOB NOT NULL,"
    "  attrs TEXT NOT NULL DEFAULT '',"
    "  mtime INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (pid, conv_type, conv_a, conv_b, id)"
    ");"
    "CREATE UNIQUE INDEX messages_dedup ON messages(pid, from_uid, mid);",

    /* 3 */
    "DROP INDEX messages_dedup;"
    "ALTER TABLE messages ADD COLUMN is_binary INTEGER NOT NULL DEFAULT 0;"
    "CREATE UNIQUE INDEX messages_dedup ON messages(pid, conv_type, conv_a, conv_b, from_uid, mid);"
    "CREATE INDEX messages_mtime ON messages(pid, mtime);"
    "CREATE TABLE group_members ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  gid INTEGER NOT NULL,"
    "  uid INTEGER NOT NULL,"
    "  joined_at INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, gid, uid)"
    ");"
    "CREATE INDEX group_members_uid ON group_members(pid, uid);"
    "CREATE TABLE bans ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),"
    "  target INTEGER NOT NULL,"
    "  uid INTEGER NOT NULL,"
    "  until INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, kind, target, uid)"
    ");",

    /* 4 */
    "CREATE INDEX messages_id ON messages(pid, id);"
    "CREATE INDEX messages_p2p_peer ON messages(pid, conv_type, conv_b, conv_a, id);"
    "CREATE TABLE conversation_marks ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  conv_type INTEGER NOT NULL CHECK (conv_type BETWEEN 0 AND 2),"
    "  xid INTEGER NOT NULL,"
    "  read_id INTEGER NOT NULL DEFAULT 0,"
    "  removed_id INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (pid, uid, conv_type, xid)"
    ") WITHOUT ROWID;",

    /* 5 */
    "CREATE TABLE messages_new ("
    "  id INTEGER PRIMARY KEY,"
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  conv_type INTEGER NOT NULL CHECK (conv_type BETWEEN 1 AND 4),"
    "  conv_a INTEGER NOT NULL,"
    "  conv_b INTEGER NOT NULL DEFAULT 0,"
    "  from_uid INTEGER NOT NULL,"
    "  mid INTEGER NOT NULL,"
    "  mtype INTEGER NOT NULL,"
    "  msg BLOB NOT NULL,"
    "  is_binary INTEGER NOT NULL DEFAULT 0,"
    "  attrs TEXT NOT NULL DEFAULT '',"
    "  mtime INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0"
    ");"
    "INSERT INTO messages_new(id, pid, conv_type, conv_a, conv_b, from_uid, mid, mtype, msg, is_binary, attrs,"
    " mtime, deleted)"
    " SELECT id, pid, conv_type, conv_a, conv_b, from_uid, mid, mtype, msg, is_binary, attrs, mtime, deleted"
    " FROM messages ORDER BY id;"
    "DROP TABLE messages;"
    "ALTER TABLE messages_new RENAME TO messages;"
    "CREATE INDEX messages_conv ON messages(pid, conv_type, conv_a, conv_b);"
    "CREATE UNIQUE INDEX messages_dedup ON messages(pid, conv_type, conv_a, conv_b, from_uid, mid);"
    "CREATE INDEX messages_p2p_peer ON messages(pid, conv_type, conv_b, conv_a);",

    /* 6 */
    "CREATE TABLE p2p_peers ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  peer INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, uid, peer)"
    ") WITHOUT ROWID;"
    "INSERT OR IGNORE INTO p2p_peers(pid, uid, peer)"
    " SELECT pid, conv_a, conv_b FROM messages WHERE conv_type = 1"
    " UNION SELECT pid, conv_b, conv_a FROM messages WHERE conv_type = 1;"
    "DROP INDEX messages_p2p_peer;",

    /* 7 */
    "CREATE TABLE counters ("
    "  name TEXT PRIMARY KEY,"
    "  value INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "INSERT INTO counters(name, value) SELECT 'message_id_floor', COALESCE(MAX(id), 0) FROM messages;",

    /* 8 */
    "CREATE TABLE signed_salts ("
    "  pid INTEGER NOT NULL,"
    "  salt INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, salt)"
    ") WITHOUT ROWID;"
    "CREATE INDEX signed_salts_expiry ON signed_salts(expires_at);",

    /* 9 */
    "CREATE TABLE storage_usage ("
    "  pid INTEGER PRIMARY KEY,"
    "  bytes INTEGER NOT NULL"
    ");"
    "INSERT INTO storage_usage(pid, bytes)"
    "  SELECT pid, SUM(length(CAST(msg AS BLOB)) + length(CAST(attrs AS BLOB))) FROM messages GROUP BY pid;"
    "INSERT INTO counters(name, value) SELECT 'storage_usage_upto', COALESCE(MAX(id), 0) FROM messages;"
    "CREATE TRIGGER storage_usage_delete AFTER DELETE ON messages"
    "  WHEN old.id <= (SELECT value FROM counters WHERE name = 'storage_usage_upto') BEGIN"
    "  UPDATE storage_usage SET bytes = bytes - length(CAST(old.msg AS BLOB)) - length(CAST(old.attrs AS BLOB))"
    "    WHERE pid = old.pid;"
    "END;",

    /* 10 */
    "CREATE TABLE friends ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  other INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, uid, other)"
    ") WITHOUT ROWID;"
    "CREATE TABLE blacklists ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  other INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, uid, other)"
    ") WITHOUT ROWID;",

    /* 11 */
    "CREATE TABLE infos ("
    "  pid INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),"
    "  xid INTEGER NOT NULL,"
    "  oinfo BLOB NOT NULL DEFAULT X'',"
    "  pinfo BLOB NOT NULL DEFAULT X'',"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, kind, xid)"
    ");",

    /* 12 */
    "CREATE TABLE user_data ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  key BLOB NOT NULL,"
    "  val BLOB NOT NULL,"
    "  val_binary INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, uid, key)"
    ");"
    "CREATE TABLE user_devices ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  devicetoken BLOB NOT NULL,"
    "  apptype TEXT NOT NULL,"
    "  added_at INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, uid, devicetoken)"
    ");"
    "CREATE INDEX user_devices_token ON user_devices(pid, devicetoken);"
    "CREATE TABLE push_options ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL CHECK (kind IN (0, 1)),"
    "  xid INTEGER NOT NULL,"
    "  mtypes BLOB NOT NULL,"
    "  PRIMARY KEY (pid, uid, kind, xid)"
    ") WITHOUT ROWID;",
    /* 13 */
    "CREATE TABLE bans_new ("
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 4),"
    "  target INTEGER NOT NULL,"
    "  uid INTEGER NOT NULL,"
    "  until INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, kind, target, uid)"
    ");"
    "INSERT INTO bans_new(pid, kind, target, uid, until) SELECT pid, kind, target, uid, until FROM bans;"
    "DROP TABLE bans;"
    "ALTER TABLE bans_new RENAME TO bans;"
    "CREATE TRIGGER storage_usage_update AFTER UPDATE OF msg, attrs ON messages"
    "  WHEN old.id <= (SELECT value FROM counters WHERE name = 'storage_usage_upto') BEGIN"
    "  UPDATE storage_usage SET bytes = bytes - length(CAST(old.msg AS BLOB)) - length(CAST(old.attrs AS BLOB))"
    "    + length(CAST(new.msg AS BLOB)) + length(CAST(new.attrs AS BLOB)) WHERE pid = old.pid;"
    "END;",
    /* 14 */
    "CREATE TABLE rtcat_sessions ("
    "  uuid TEXT PRIMARY KEY,"
    "  pid INTEGER NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  label TEXT,"
    "  data TEXT,"
    "  type INTEGER NOT NULL CHECK (type IN (0, 1)),"
    "  permanent INTEGER NOT NULL CHECK (permanent IN (0, 1)),"
    "  live_days INTEGER NOT NULL,"
    "  created_us INTEGER NOT NULL,"
    "  expire_us INTEGER"
    ");"
    "CREATE INDEX rtcat_sessions_expiry ON rtcat_sessions(expire_us);"
    "CREATE TABLE rtcat_tokens ("
    "  uuid TEXT PRIMARY KEY,"
    "  session_uuid TEXT NOT NULL REFERENCES rtcat_sessions(uuid) ON DELETE CASCADE,"
    "  pid INTEGER NOT NULL,"
    "  label TEXT,"
    "  data TEXT,"
    "  type INTEGER NOT NULL CHECK (type IN (0, 1)),"
    "  permanent INTEGER NOT NULL CHECK (permanent IN (0, 1)),"
    "  live_days INTEGER NOT NULL,"
    "  created_us INTEGER NOT NULL,"
    "  expire_us INTEGER"
    ");"
    "CREATE INDEX rtcat_tokens_session ON rtcat_tokens(session_uuid);"
    "CREATE INDEX rtcat_tokens_expiry ON rtcat_tokens(expire_us);",
    /* 15: a project's RealTimeCat sessions and tokens counted (the caps
     * across nodes, rtcat/writes.c) */
    "CREATE INDEX rtcat_sessions_pid ON rtcat_sessions(pid); CREATE INDEX rtcat_tokens_pid ON rtcat_tokens(pid);",
    /* 16 */
    "INSERT INTO storage_usage(pid, bytes)"
    "  SELECT pid, SUM(length(CAST(msg AS BLOB)) + length(CAST(attrs AS BLOB))) FROM messages"
    "  WHERE id > (SELECT value FROM counters WHERE name = 'storage_usage_upto') GROUP BY pid"
    "  ON CONFLICT(pid) DO UPDATE SET bytes = storage_usage.bytes + excluded.bytes;"
    "DROP TRIGGER storage_usage_delete;"
    "CREATE TRIGGER storage_usage_delete AFTER DELETE ON messages BEGIN"
    "  UPDATE storage_usage SET bytes = bytes - length(CAST(old.msg AS BLOB)) - length(CAST(old.attrs AS BLOB))"
    "    WHERE pid = old.pid;"
    "END;"
    "DROP TRIGGER storage_usage_update;"
    "CREATE TRIGGER storage_usage_update AFTER UPDATE OF msg, attrs ON messages BEGIN"
    "  UPDATE storage_usage SET bytes = bytes - length(CAST(old.msg AS BLOB)) - length(CAST(old.attrs AS BLOB))"
    "    + length(CAST(new.msg AS BLOB)) + length(CAST(new.attrs AS BLOB)) WHERE pid = old.pid;"
    "END;"
    "DELETE FROM counters WHERE name = 'storage_usage_upto';",

    /* 17 */
    "DROP INDEX messages_dedup; CREATE UNIQUE INDEX messages_dedup ON messages(mid, from_uid, pid, conv_type, conv_a, conv_b);",

    /* 18 */
    "CREATE TABLE conv_index ("
    "  pid INTEGER NOT NULL,"
    "  conv_type INTEGER NOT NULL,"
    "  conv_a INTEGER NOT NULL,"
    "  conv_b INTEGER NOT NULL,"
    "  id INTEGER NOT NULL,"
    "  PRIMARY KEY (pid, conv_type, conv_a, conv_b, id)"
    ") WITHOUT ROWID;"
    "INSERT INTO conv_index(pid, conv_type, conv_a, conv_b, id)"
    "  SELECT pid, conv_type, conv_a, conv_b, id FROM messages ORDER BY pid, conv_type, conv_a, conv_b, id;"
    "INSERT INTO counters(name, value) SELECT 'conv_indexed_upto', COALESCE(MAX(id), 0) FROM messages WHERE true"
    "  ON CONFLICT(name) DO UPDATE SET value = excluded.value;"
    "DROP INDEX messages_conv;"
    "CREATE TRIGGER conv_index_delete AFTER DELETE ON messages BEGIN"
    "  DELETE FROM conv_index WHERE pid = old.pid AND conv_type = old.conv_type AND conv_a = old.conv_a"
    "    AND conv_b = old.conv_b AND id = old.id;"
    "END;"
    "CREATE VIEW conv_messages AS"
    "  SELECT c.id AS id, c.pid AS pid, c.conv_type AS conv_type, c.conv_a AS conv_a, c.conv_b AS conv_b,"
    "    m.from_uid AS from_uid, m.mid AS mid, m.mtype AS mtype, m.msg AS msg, m.is_binary AS is_binary,"
    "    m.attrs AS attrs, m.mtime AS mtime, m.deleted AS deleted"
    "  FROM conv_index c JOIN messages m ON m.id = c.id"
    "  UNION ALL"
    "  SELECT id, pid, conv_type, conv_a, conv_b, from_uid, mid, mtype, msg, is_binary, attrs, mtime, deleted"
    "  FROM messages WHERE id > (SELECT value FROM counters WHERE name = 'conv_indexed_upto');",

    /* 19: stored files (modules/files/): one row per upload, its id (128
     * random bits in hex) the name in the URL, its content on disk by
     * sha256 (shared by uploads of the same bytes); file_messages links it
     * to the message rows that refer to it, by their unique key, so that
     * the sweep drops a file with the last of them. */
    "CREATE TABLE files ("
    "  id TEXT PRIMARY KEY,"
    "  pid INTEGER NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  name TEXT,"
    "  ext TEXT,"
    "  created INTEGER NOT NULL"
    ");"
    "CREATE INDEX files_sha256 ON files(sha256);"
    "CREATE INDEX files_created ON files(created);"
    "CREATE TABLE file_messages ("
    "  file_id TEXT NOT NULL,"
    "  pid INTEGER NOT NULL,"
    "  conv_type INTEGER NOT NULL,"
    "  conv_a INTEGER NOT NULL,"
    "  conv_b INTEGER NOT NULL,"
    "  from_uid INTEGER NOT NULL,"
    "  mid INTEGER NOT NULL,"
    "  PRIMARY KEY (file_id, conv_type, conv_a, conv_b)"
    ");",

    /* 20: a user's language (setlang, or auth's lang): what chat pushed to
     * the user is translated into (modules/translate/) */
    "CREATE TABLE user_langs ("
    "  pid INTEGER NOT NULL,"
    "  uid INTEGER NOT NULL,"
    "  lang TEXT NOT NULL,"
    "  PRIMARY KEY (pid, uid)"
    ") WITHOUT ROWID;",

    /* 21 */
    "ALTER TABLE messages ADD COLUMN prev_id INTEGER;"
    "UPDATE messages SET prev_id = p.prev FROM (SELECT id, lag(id) OVER"
    "  (PARTITION BY pid, conv_type, conv_a, conv_b ORDER BY id) AS prev FROM messages) AS p"
    "  WHERE messages.id = p.id AND p.prev IS NOT NULL;"
    "CREATE INDEX messages_prev ON messages(prev_id);"
    "INSERT OR IGNORE INTO conv_index(pid, conv_type, conv_a, conv_b, id)"
    "  SELECT pid, conv_type, conv_a, conv_b, id FROM messages"
    "  WHERE id > (SELECT value FROM counters WHERE name = 'conv_indexed_upto');"
    "DELETE FROM counters WHERE name = 'conv_indexed_upto';"
    "CREATE TABLE conv_last ("
    "  pid INTEGER NOT NULL,"
    "  conv_type INTEGER NOT NULL,"
    "  conv_a INTEGER NOT NULL,"
    "  conv_b INTEGER NOT NULL,"
    "  last_id INTEGER NOT NULL,"
    "  unindexed INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (pid, conv_type, conv_a, conv_b)"
    ") WITHOUT ROWID;"
    "INSERT INTO conv_last(pid, conv_type, conv_a, conv_b, last_id)"
    "  SELECT pid, conv_type, conv_a, conv_b, MAX(id) FROM messages GROUP BY pid, conv_type, conv_a, conv_b;"
    "CREATE TRIGGER messages_chain_delete AFTER DELETE ON messages BEGIN"
    "  UPDATE messages SET prev_id = old.prev_id WHERE prev_id = old.id;"
    "  UPDATE conv_last SET last_id = old.prev_id WHERE old.prev_id IS NOT NULL AND pid = old.pid"
    "    AND conv_type = old.conv_type AND conv_a = old.conv_a AND conv_b = old.conv_b AND last_id = old.id;"
    "  DELETE FROM conv_last WHERE old.prev_id IS NULL AND pid = old.pid AND conv_type = old.conv_type"
    "    AND conv_a = old.conv_a AND conv_b = old.conv_b AND last_id = old.id;"
    "END;"
    "DROP VIEW conv_messages;"
    "CREATE VIEW conv_messages AS"
    "  SELECT id, pid, conv_type, conv_a, conv_b, from_uid, mid, mtype, msg, is_binary, attrs, mtime, deleted"
    "  FROM conv_chain;",
};

#define NMIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int store_schema_latest(void)
{
    return NMIGRATIONS;
}

static int read_version(db_conn *db, int *version)
{
    db_stmt_t *st = NULL;
    int rc = db_prepare(db, "PRAGMA user_version", &st);
    if (rc == DB_OK) {
        rc = db_step(st);
        if (rc == DB_ROW) {
            *version = db_column_int(st, 0);
            rc = DB_OK;
        }
    }
    db_finalize(st);
    return rc;
}

static int apply_one(db_conn *db, int to, char *err, size_t errlen)
{
    char bump[64];
    snprintf(bump, sizeof bump, "PRAGMA user_version = %d", to);

    int rc = db_exec(db, "BEGIN IMMEDIATE");
    if (rc == DB_OK)
        rc = db_exec(db, migrations[to - 1]);
    if (rc == DB_OK)
        rc = db_exec(db, bump);
    if (rc == DB_OK)
        rc = db_exec(db, "COMMIT");
    if (rc != DB_OK) {
        snprintf(err, errlen, "schema migration %d failed: %s", to, db_errmsg(db));
        if (db_in_transaction(db))
            db_exec(db, "ROLLBACK");
    }
    return rc == DB_OK ? 0 : -1;
}

int store_schema_migrate(db_conn *db, int *version, int *applied, char *err, size_t errlen)
{
    if (db_is_postgres(db))
        return store_schema_pg_migrate(db, version, applied, err, errlen);
    int cur = 0;
    *applied = 0;
    int rc = read_version(db, &cur);
    if (rc != DB_OK) {
        snprintf(err, errlen, "cannot read schema version: %s", db_errmsg(db));
        return -1;
    }
    if (cur > NMIGRATIONS) {
        snprintf(err, errlen,
                 "database schema version %d is newer than this rtmd supports (%d); upgrade rtmd",
                 cur, NMIGRATIONS);
        return -1;
    }
    if (cur < 0) {
        snprintf(err, errlen, "database schema version %d is invalid (this rtmd supports 0 to %d)", cur,
                 NMIGRATIONS);
        return -1;
    }
    while (cur < NMIGRATIONS) {
        if (apply_one(db, cur + 1, err, errlen) != 0)
            break;
        cur++;
        (*applied)++;
    }
    *version = cur;
    return cur == NMIGRATIONS ? 0 : -1;
}
