/* Sending messages: sendmsg, sendmsgs, sendgroupmsg, sendroommsg and
 * broadcastmsg on the server gate (sender `from`) and sendmsg, sendmsgs,
 * sendgroupmsg, sendroommsg on the client gate (sender: the logged-in
 * user); their rules and RTM error codes, admission by the write rates and
 * the storage quota (quota.h), storage
 * in table `messages`, duplicate detection, and the pushes to receivers and
 * to listening app servers (RTMD_EV_MESSAGE, which listen.c observes).
 *
 * Life of a message. A request is checked, its target conversations are
 * computed (one, or one per receiver for sendmsgs), each gets a message id
 * from one server-wide counter and the message one mtime, and the whole job
 * goes to the store's writer thread (store_submit). Once the batch holding
 * it committed, the done callback pushes the message and answers {mtime}.
 * Since the loop is single and the store reports completions in submission
 * order, messages are stored and pushed in the order they were accepted,
 * and an answered message is durable. Pushing after the commit also means
 * that nobody ever sees a message the store then lost.
 *
 * Rooms push before the commit (room_push = before_commit, the default,
 * where the loop hands out ids: SQLite; rooms of at most
 * ROOM_PUSH_EARLY_MAX members on this node): a room message is pushed as
 * soon as it is accepted (checked, admitted, its id and mtime given),
 * before it is submitted, and only the sender's answer waits for the
 * commit (the answer is the durability promise). Receivers may so see a
 * message the store then fails to keep (a failed commit, a kill between
 * push and commit), and a retry of a message pushed before is pushed again
 * (the writer tells it is a duplicate only later): clients drop a repeated
 * push by (from, mid) (docs/performance.md "Push before commit"). On
 * PostgreSQL the ids come from the writer, so rooms push after the commit
 * there too.
 *
 * On PostgreSQL, where several nodes may share the database, the writer
 * takes the ids and the mtime instead, inside the batch transaction
 * (take_ids): ids unique cluster-wide, id order = commit order = mtime
 * order. Jobs go with store_submit_many: on PostgreSQL a run of them is
 * stored by a few statements for all its rows (apply_jobs), not three
 * round trips per target; on both engines the run adds the bytes it
 * inserted to storage_usage (the storage quota) with one upsert per
 * project.
 *
 * Duplicates. A retry (same project, sender, conversation and mid) must be
 * answered with the first mtime and neither stored nor pushed again. The
 * writer inserts with ON CONFLICT DO NOTHING against the unique index
 * messages_dedup and, when the row already exists, reads its mtime back and
 * marks the target as a duplicate. That covers retries after a restart and
 * a retry that arrives while the first is still being committed, since the
 * writer applies writes in submission order: the retry's INSERT runs after
 * the first one's (same transaction or a later one), finds its row and is
 * answered, after it, with its mtime (the retry "waits" by queueing behind
 * it). A retry costs one store round trip; there is no table of recent
 * messages in memory in front of the index: probing one cost about a tenth
 * of the loop's time on every message, for the rare retry
 * (docs/performance.md).
 *
 * Push methods. Every message is pushed as pushmsg, pushgroupmsg,
 * pushroommsg or pushbroadcastmsg, whatever its mtype: the RTM client SDKs
 * (websocket RTMProcessor, Android RTMQuestProcessor) and server SDKs only
 * implement those four quests and turn mtype 30/31/32 and 40-50 into their
 * chat/audio/cmd/file events themselves; the names pushchat, pushgroupcmd,
 * ... in RTMConfig.SERVER_PUSH are those local event names, and an SDK that
 * received a quest by that name would fail to dispatch it (see push_method).
 *
 * String-id receivers. A p2p push to a string-id user (identity.h) names
 * users by strings (push_p2p, with strid.h); everything else, and the
 * packet of RTMD_EV_MESSAGE, carries uids. A message from a session with a
 * business id (users.h) reaches listeners with `businessid` added
 * (listened_packet); receivers never see it.
 *
 * Sensitive words: a chat message (mtype 30) is masked or refused
 * (200054) by its project's list in get_fields, before anything else sees
 * its text (moderation.h), so history and pushes carry what was stored.
 *
 * Other rules: p2p messages to oneself are refused (200052); sendmsgs
 * ignores the sender among its receivers (and repeated receivers), and is
 * refused with 200052 only when nobody else is left. The sender's own other
 * connections get no copy of a p2p message; group and room messages go to
 * every online member but the sender; broadcast to every online user of the
 * project but the sender. Membership applies to client-gate senders only:
 * the app server is trusted and may send to a group or room as any uid (a
 * system or bot account that is not a member). Group and room bans apply
 * on both gates (the app server sets them itself). The write rates apply
 * to client-gate senders only, the storage quota to both gates
 * (quota.h). The friends rules (friends.h) admit client-gate p2p messages
 * only: a receiver's blacklist refuses its blacklisted senders (200049)
 * and, with the project's p2p_require_friend, a receiver who does not
 * count the sender as a friend refuses it (200043); a sendmsgs any
 * receiver refuses is refused whole. The app server is subject to neither
 * (friends.c says why).
 *
 * Across nodes (docs/cluster.md). With a cluster, deliver() also sends the
 * message's fields (not its packet) once to every other node that holds a
 * receiver (for a room: a member) or listens to the project (route); that
 * node pushes it to its own receivers and fires RTMD_EV_MESSAGE for its
 * own listeners (deliver_remote), so each listener gets each message once and string
 * ids are named by the node that knows them. */
#include "messages.h"
#include "msg_chain.h"

#include "bans.h"
#include "clock.h"
#include "cluster.h"
#include "friends.h"
#include "groups.h"
#include "hash.h"
#include "identity.h"
#include "lathist.h"
#include "log.h"
#include "methods.h"
#include "payload.h"
#include "push.h"
#include "quota.h"
#include "rooms.h"
#include "rtm_errors.h"
#include "moderation.h"
#include "translate.h"
#include "utf8.h"
#include "module.h"
#include "strid.h"
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- conversation keys ---- */

conv_key conv_p2p(int64_t uid1, int64_t uid2)
{
    return uid1 < uid2 ? (conv_key){CONV_P2P, uid1, uid2} : (conv_key){CONV_P2P, uid2, uid1};
}

conv_key conv_group(int64_t gid)
{
    return (conv_key){CONV_GROUP, gid, 0};
}

conv_key conv_room(int64_t rid)
{
    return (conv_key){CONV_ROOM, rid, 0};
}

conv_key conv_broadcast(void)
{
    return (conv_key){CONV_BROADCAST, 0, 0};
}

conv_key conv_of(int conv_type, int64_t uid, int64_t xid)
{
    return conv_type == CONV_P2P     ? conv_p2p(uid, xid)
           : conv_type == CONV_GROUP ? conv_group(xid)
           : conv_type == CONV_ROOM  ? conv_room(xid)
                                     : conv_broadcast();
}

/* ---- module state ---- */

/* A p2p conversation known to be in p2p_peers. */
typedef struct peer_pair {
    int64_t pid, a, b; /* pid 0: a free slot (project ids are positive) */
} peer_pair;

#define PEER_CACHE_SLOTS 32768 /* a power of two; emptied when half full */

/* What the message writer knows of the store (SQLite; the writer thread's
 * own, nobody else's):
 * - each conversation's newest message, for the conversation chain
 *   (msg_chain.h);
 * - the p2p conversations that a committed or open transaction of the
 *   writer found in p2p_peers, so that their next messages skip the
 *   INSERT; forgotten when a transaction of the writer was rolled back
 *   (one found in it may be gone). */
typedef struct msg_writer {
    msg_chain *chain;   /* SQLite only */
    peer_pair *peers;   /* PEER_CACHE_SLOTS, open addressing; NULL until used */
    unsigned npeers;
    uint64_t rollbacks; /* db_rollbacks when the cache was last checked */
    uint64_t key;       /* of peer_slot's hash: receivers' uids are peers' choice */
} msg_writer;

struct messages_state {
    int64_t next_id;          /* next message id (server-wide) */
    int64_t last_mtime;       /* mtimes never go backwards, across restarts too:
                               * mtime order is id order (history retention) */
    bool ids_in_store;        /* PostgreSQL: the writer takes ids and mtimes (take_ids) */
    bool room_push_early;     /* room messages pushed before the commit (file comment) */
    msgpack_sbuffer body;     /* push body being encoded */
    rtm_buf packet;           /* push packet being sent */
    rtm_buf named;            /* the same for a string-id receiver (push_p2p) */
    rtm_buf listened;         /* the same with businessid, for listeners (listened_packet) */
    rtm_buf chat;             /* a text chat push in its map form, untranslated (push_chat) */
    bool chat_ready;          /* chat holds the push of the target being delivered */
    rtm_buf translated;       /* a text chat push translated for its waiting receivers (chat_translated) */
    int64_t *uids;            /* receivers of the fan-out being sent */
    size_t uids_cap;
    msgpack_sbuffer record;   /* a message for other nodes (route) */
    msg_writer writer;        /* the writer thread's, nobody else's (SQLite) */
    uint64_t stored[5];       /* messages stored, by conv_type (rtmd_messages_total) */
};

static struct messages_state *state(rtmd_server *srv)
{
    return srv->svc->messages;
}

static int64_t next_mtime(struct messages_state *s)
{
    int64_t now = clock_unix_ms();
    if (now < s->last_mtime)
        now = s->last_mtime;
    s->last_mtime = now;
    return now;
}

/* ---- a message being sent ---- */

typedef struct msg_target {
    conv_key conv;
    int64_t to;               /* receiver (p2p), gid, rid, or 0 (broadcast) */
    int64_t id;
    int64_t mtime;            /* of the stored row: the first one's for a duplicate */
    bool dup;                 /* stored before: neither stored nor pushed again */
} msg_target;

typedef struct msg_job {
    rtmd_request *req;
    int64_t pid, from, mid, mtime;
    int mtype;
    bool is_binary;
    size_t ntargets;
    msg_target *targets;
    uint8_t *msg;
    size_t msg_len;
    char *attrs;
    size_t attrs_len;
    uint64_t reserved;        /* bytes admitted by quota_admit */
    bool pushed;              /* pushed before the commit (a room message) */
    msg_writer *writer;       /* SQLite: what the writer knows of the store */
    char business[RTMD_BUSINESS_ID_MAX + 1]; /* the sender session's business id, or "" */
    /* A record from another node: the string ids of from and of the
     * target (user or room) as that node knew them, or NULL. */
    const char *from_name, *to_name;
} msg_job;

/* The fields every send method has. */
typedef struct msg_fields {
    int64_t from, mid;
    int mtype;
    bool is_binary;
    const char *msg, *attrs;
    size_t msg_len, attrs_len;
} msg_fields;

/* msg: str or bin (remembered, and delivered the same way). attrs: str or
 * bin, missing or nil meaning "". */
static bool get_body(rtmd_request *req, msg_fields *f)
{
    const msgpack_object *m = mp_map_get(req->args, "msg");
    if (!m || (m->type != MSGPACK_OBJECT_STR && m->type != MSGPACK_OBJECT_BIN)) {
        req_arg_error(req, "msg");
        return false;
    }
    f->is_binary = m->type == MSGPACK_OBJECT_BIN;
    f->msg = m->type == MSGPACK_OBJECT_BIN ? m->via.bin.ptr : m->via.str.ptr;
    f->msg_len = m->type == MSGPACK_OBJECT_BIN ? m->via.bin.size : m->via.str.size;
    const msgpack_object *a = mp_map_get(req->args, "attrs");
    f->attrs = "";
    f->attrs_len = 0;
    if (!a || a->type == MSGPACK_OBJECT_NIL)
        return true;
    if (a->type != MSGPACK_OBJECT_STR && a->type != MSGPACK_OBJECT_BIN) {
        req_arg_error(req, "attrs");
        return false;
    }
    f->attrs = a->type == MSGPACK_OBJECT_BIN ? a->via.bin.ptr : a->via.str.ptr;
    f->attrs_len = a->type == MSGPACK_OBJECT_BIN ? a->via.bin.size : a->via.str.size;
    return true;
}

/* Reads and checks the common fields; answers an error and returns false
 * on the first problem. */
static bool get_fields(rtmd_request *req, msg_fields *f)
{
    memset(f, 0, sizeof *f);
    if (req->gate == GATE_SERVER_TCP) {
        if (!req_arg_int64(req, "from", &f->from))
            return false;
    } else {
        f->from = req->uid;
    }
    int64_t mtype;
    if (!req_arg_int64(req, "mid", &f->mid) || !req_arg_int64(req, "mtype", &mtype) || !get_body(req, f))
        return false;
    if (mtype < MTYPE_MIN || mtype > MTYPE_MAX) {
        request_error(req, RTM_EC_INVALID_MTYPE, "invalid mtype, should be in [1-127]");
        return false;
    }
    f->mtype = (int)mtype;
    if (bans_project_banned(req->srv, req->project->pid, f->from)) {
        request_error(req, RTM_EC_PERMISSION_DENIED, "banned in project");
        return false;
    }
    const rtmd_project_config *lim = &req->project->limits;
    if (f->msg_len > lim->max_msg_bytes || f->attrs_len > lim->max_attrs_bytes) {
        request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, "too large msg or attrs");
        return false;
    }
    /* Chat text goes through the project's sensitive words (moderation.h)
     * on every send method and gate, before it is admitted, stored and
     * pushed; a masked msg lives in moderation/ until job_new copies it,
     * with no other moderation in between. */
    if (f->mtype == MTYPE_CHAT_TEXT) {
        switch (moderation_chat(req->srv, req->project, &f->msg, &f->msg_len)) {
        case MODERATION_PASS:
        case MODERATION_MASKED:
            break;
        case MODERATION_REFUSE:
            request_error(req, RTM_EC_SENSITIVE_WORDS, "sensitive words matched");
            return false;
        case MODERATION_ERROR:
            request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
            return false;
        }
    }
    return true;
}

static msg_job *job_new(rtmd_request *req, const msg_fields *f, size_t ntargets)
{
    size_t size = sizeof(msg_job) + ntargets * sizeof(msg_target) + f->msg_len + f->attrs_len + 1;
    msg_job *j = calloc(1, size);
    if (!j)
        return NULL;
    j->req = req;
    j->pid = req->project->pid;
    j->from = f->from;
    j->mid = f->mid;
    j->mtype = f->mtype;
    j->is_binary = f->is_binary;
    j->ntargets = ntargets;
    j->targets = (msg_target *)(j + 1);
    j->msg = (uint8_t *)(j->targets + ntargets);
    j->msg_len = f->msg_len;
    if (f->msg_len)
        memcpy(j->msg, f->msg, f->msg_len);
    j->attrs = (char *)j->msg + f->msg_len;
    j->attrs_len = f->attrs_len;
    if (f->attrs_len)
        memcpy(j->attrs, f->attrs, f->attrs_len);
    j->attrs[f->attrs_len] = '\0';
    const rtmd_session *session = req->gate != GATE_SERVER_TCP ? users_session(req->conn) : NULL;
    if (session && session->business_id)
        snprintf(j->business, sizeof j->business, "%s", session->business_id);
    return j;
}

/* Bytes one stored row of the job holds (what storage_usage counts). */
static uint64_t row_bytes(const msg_job *j)
{
    return (uint64_t)j->msg_len + j->attrs_len;
}

/* ---- storage (writer thread) ---- */

static const char *const INSERT_SQL =
    "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype, msg, is_binary,"
    " attrs, mtime) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    " ON CONFLICT (pid, conv_type, conv_a, conv_b, from_uid, mid) DO NOTHING";
/* SQLite's: with the conversation chain's prev_id (msg_chain.h). */
static const char *const INSERT_CHAIN_SQL =
    "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype, msg, is_binary,"
    " attrs, mtime, prev_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    " ON CONFLICT (pid, conv_type, conv_a, conv_b, from_uid, mid) DO NOTHING";
static const char *const PEERS_SQL =
    "INSERT INTO p2p_peers(pid, uid, peer) VALUES (?1, ?2, ?3), (?1, ?3, ?2) ON CONFLICT DO NOTHING";
static const char *const FIND_SQL =
    "SELECT mtime FROM messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
    " AND from_uid = ?5 AND mid = ?6";

static void bind_conv(db_stmt_t *st, const msg_job *j, const msg_target *t)
{
    db_bind_int64(st, 1, j->pid);
    db_bind_int(st, 2, t->conv.conv_type);
    db_bind_int64(st, 3, t->conv.a);
    db_bind_int64(st, 4, t->conv.b);
}

/* The mtime of the row that made the insert of t a duplicate. */
static int find_stored(db_stmt_t *find, const msg_job *j, msg_target *t)
{
    db_reset(find);
    bind_conv(find, j, t);
    db_bind_int64(find, 5, j->from);
    db_bind_int64(find, 6, j->mid);
    int rc = db_step(find);
    if (rc != DB_ROW)
        return rc == DB_DONE ? DB_CORRUPT : rc;
    t->mtime = db_column_int64(find, 0);
    t->dup = true;
    return DB_OK;
}

/* The writer's statements for one job. */
typedef struct msg_stmts {
    db_stmt_t *ins, *find, *peers;
    msg_writer *w; /* NULL on PostgreSQL */
} msg_stmts;

/* ---- p2p conversations known to be in p2p_peers (SQLite, writer) ---- */

static size_t peer_slot(const msg_writer *w, int64_t pid, int64_t a, int64_t b)
{
    return (size_t)rtm_hash_ids(w->key, pid, a, b, 0) & (PEER_CACHE_SLOTS - 1);
}

static bool peer_known(const msg_writer *w, int64_t pid, int64_t a, int64_t b)
{
    if (!w->peers)
        return false;
    for (size_t i = peer_slot(w, pid, a, b);; i = (i + 1) & (PEER_CACHE_SLOTS - 1)) {
        const peer_pair *p = &w->peers[i];
        if (p->pid == 0)
            return false;
        if (p->pid == pid && p->a == a && p->b == b)
            return true;
    }
}

static void peers_forget(msg_writer *w)
{
    if (w->peers)
        memset(w->peers, 0, PEER_CACHE_SLOTS * sizeof *w->peers);
    w->npeers = 0;
}

static void peer_remember(msg_writer *w, int64_t pid, int64_t a, int64_t b)
{
    if (!w->peers && !(w->peers = calloc(PEER_CACHE_SLOTS, sizeof *w->peers)))
        return; /* no memory: the INSERT stays */
    if (w->npeers >= PEER_CACHE_SLOTS / 2)
        peers_forget(w);
    size_t i = peer_slot(w, pid, a, b);
    while (w->peers[i].pid != 0)
        i = (i + 1) & (PEER_CACHE_SLOTS - 1);
    w->peers[i] = (peer_pair){pid, a, b};
    w->npeers++;
}

/* Forgets every pair when a transaction was rolled back since the last
 * look: a pair found in it may be gone with it. */
static void peers_check_rollbacks(db_conn *db, msg_writer *w)
{
    uint64_t n = db_rollbacks(db);
    if (n == w->rollbacks)
        return;
    w->rollbacks = n;
    peers_forget(w);
}

/* Records both users of a new p2p conversation in p2p_peers; a known
 * conversation skips the INSERT (SQLite) or the INSERT only reads. */
static int note_peers(db_conn *db, const msg_stmts *q, const msg_job *j, const msg_target *t)
{
    if (q->w && peer_known(q->w, j->pid, t->conv.a, t->conv.b))
        return DB_OK;
    db_reset(q->peers);
    db_bind_int64(q->peers, 1, j->pid);
    db_bind_int64(q->peers, 2, t->conv.a);
    db_bind_int64(q->peers, 3, t->conv.b);
    int rc = db_step(q->peers);
    if (rc != DB_DONE)
        return rc;
    /* Both rows were there before: remember the pair. A pair this
     * transaction inserts is remembered by its next message, once the
     * rows are found there. */
    if (q->w && db_changes(db) == 0)
        peer_remember(q->w, j->pid, t->conv.a, t->conv.b);
    return DB_OK;
}

static int insert_target(db_conn *db, const msg_stmts *q, const msg_job *j, msg_target *t)
{
    db_stmt_t *ins = q->ins;
    db_reset(ins);
    conv_tip *tip = NULL;
    if (q->w) {
        int64_t prev;
        int rc = msg_chain_tip(db, q->w->chain, j->pid, t->conv.conv_type, t->conv.a, t->conv.b, &tip, &prev);
        if (rc != DB_OK)
            return rc;
        if (prev)
            db_bind_int64(ins, 13, prev);
        else
            db_bind_null(ins, 13);
    }
    bind_conv(ins, j, t);
    db_bind_int64(ins, 5, t->id);
    db_bind_int64(ins, 6, j->from);
    db_bind_int64(ins, 7, j->mid);
    db_bind_int(ins, 8, j->mtype);
    db_bind_blob(ins, 9, j->msg_len ? (const void *)j->msg : "", (int)j->msg_len);
    db_bind_int(ins, 10, j->is_binary);
    db_bind_text(ins, 11, j->attrs, (int)j->attrs_len);
    db_bind_int64(ins, 12, t->mtime);
    int rc = db_step(ins);
    if (rc != DB_DONE)
        return rc;
    if (db_changes(db) == 0)
        return find_stored(q->find, j, t);
    if (tip && (rc = msg_chain_append(db, q->w->chain, tip, t->id)) != DB_OK)
        return rc;
    return t->conv.conv_type == CONV_P2P ? note_peers(db, q, j, t) : DB_OK;
}

/* PostgreSQL (nodes sharing the database): ids and the mtime are taken in
 * the batch transaction from counters rows 'message_id' and 'message_mtime'.
 * The id row stays locked until COMMIT, so another node's batch waits: ids
 * are granted in commit order cluster-wide, and the mtime row (only ever
 * updated under the id row's lock, which the join takes first) keeps mtime
 * non-decreasing with id whatever the nodes' clocks say. */
static const char *const TAKE_IDS_SQL =
    "WITH i AS (UPDATE counters SET value = value + ?1 WHERE name = 'message_id' RETURNING value)"
    " UPDATE counters SET value = GREATEST(counters.value, ?2) FROM i WHERE counters.name = 'message_mtime'"
    " RETURNING i.value, counters.value";
/* Creates both rows the first time, from the stored messages. */
static const char *const SEED_IDS_SQL =
    "INSERT INTO counters(name, value)"
    " SELECT 'message_id'::bytea, GREATEST(COALESCE(MAX(id), 0),"
    "   COALESCE((SELECT value FROM counters WHERE name = 'message_id_floor'), 0)) FROM messages"
    " UNION ALL SELECT 'message_mtime'::bytea, COALESCE(MAX(mtime), 0) FROM messages"
    " ON CONFLICT (name) DO NOTHING";

/* Takes count ids and the mtime: *last is the highest id taken. */
static int take_ids_n(db_conn *db, size_t count, int64_t *last, int64_t *mtime)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        db_stmt_t *st;
        int rc = db_stmt(db, TAKE_IDS_SQL, &st);
        if (rc != DB_OK)
            return rc;
        db_bind_int64(st, 1, (int64_t)count);
        db_bind_int64(st, 2, clock_unix_ms());
        rc = db_step(st);
        if (rc == DB_ROW) {
            *last = db_column_int64(st, 0);
            *mtime = db_column_int64(st, 1);
            db_release(st);
            return DB_OK;
        }
        db_release(st);
        if (rc != DB_DONE)
            return rc;
        if ((rc = db_stmt(db, SEED_IDS_SQL, &st)) != DB_OK || (rc = db_step_release(st)) != DB_OK)
            return rc;
    }
    return DB_CORRUPT;
}

/* Gives every target of j an id and j its mtime (a re-run of the apply
 * takes fresh ones; the gaps are harmless). */
static int take_ids(db_conn *db, msg_job *j)
{
    int64_t last;
    int rc = take_ids_n(db, j->ntargets, &last, &j->mtime);
    if (rc != DB_OK)
        return rc;
    for (size_t i = 0; i < j->ntargets; i++) {
        j->targets[i].id = last - (int64_t)j->ntargets + 1 + (int64_t)i;
        j->targets[i].mtime = j->mtime;
    }
    return DB_OK;
}

/* ---- the storage quota's count (storage_usage) ---- */

/* The bytes of what an apply inserted go to the project's storage_usage
 * row in the same transaction, so the count is exact at every commit.
 * Not a trigger per inserted row (one UPDATE per message cost p2p 17 %,
 * docs/performance.md): one upsert per project per run of jobs. */
static const char *const USAGE_SQL =
    "INSERT INTO storage_usage(pid, bytes) VALUES (?1, ?2)"
    " ON CONFLICT(pid) DO UPDATE SET bytes = storage_usage.bytes + excluded.bytes";

static int add_usage(db_conn *db, int64_t pid, uint64_t bytes)
{
    if (!bytes)
        return DB_OK;
    db_stmt_t *st;
    int rc = db_stmt(db, USAGE_SQL, &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, pid);
    db_bind_int64(st, 2, (int64_t)bytes);
    return db_step_release(st);
}

/* Bytes of the rows of j this apply inserted (a duplicate inserts none). */
static uint64_t inserted_bytes(const msg_job *j)
{
    uint64_t rows = 0;
    for (size_t i = 0; i < j->ntargets; i++)
        rows += !j->targets[i].dup;
    return rows * row_bytes(j);
}

typedef struct pid_bytes {
    int64_t pid;
    uint64_t bytes;
} pid_bytes;

static int pid_cmp(const void *a, const void *b)
{
    int64_t x = ((const pid_bytes *)a)->pid, y = ((const pid_bytes *)b)->pid;
    return (x > y) - (x < y);
}

/* Adds what the jobs args[0, n) inserted, one upsert per project, in pid
 * order: on PostgreSQL after the message_id row (take_ids), the order
 * every writer of storage_usage locks them in (migration 16). */
static int add_run_usage(db_conn *db, void *const *args, size_t n)
{
    pid_bytes few[8];
    pid_bytes *v = n <= 8 ? few : malloc(n * sizeof *v);
    if (!v)
        return DB_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const msg_job *j = args[i];
        uint64_t b = inserted_bytes(j);
        size_t at = 0;
        while (at < k && v[at].pid != j->pid)
            at++;
        if (at == k)
            v[k++] = (pid_bytes){j->pid, 0};
        v[at].bytes += b;
    }
    if (k > 1)
        qsort(v, k, sizeof *v, pid_cmp);
    int rc = DB_OK;
    for (size_t i = 0; rc == DB_OK && i < k; i++)
        rc = add_usage(db, v[i].pid, v[i].bytes);
    if (v != few)
        free(v);
    return rc;
}

/* Inserts the rows of j; its bytes are counted by the caller. */
static int store_job(db_conn *db, msg_job *j)
{
    msg_stmts q = {NULL, NULL, NULL, NULL};
    int rc = DB_OK;
    if (db_is_postgres(db)) {
        /* A re-run starts over: what a rolled-back run found is gone. */
        for (size_t i = 0; i < j->ntargets; i++)
            j->targets[i].dup = false;
        rc = take_ids(db, j);
    } else {
        q.w = j->writer;
        peers_check_rollbacks(db, q.w);
        msg_chain_check(db, q.w->chain);
    }
    if (rc == DB_OK)
        rc = db_stmt(db, q.w ? INSERT_CHAIN_SQL : INSERT_SQL, &q.ins);
    if (rc == DB_OK)
        rc = db_stmt(db, FIND_SQL, &q.find);
    if (rc == DB_OK)
        rc = db_stmt(db, PEERS_SQL, &q.peers);
    for (size_t i = 0; rc == DB_OK && i < j->ntargets; i++)
        if (!j->targets[i].dup)
            rc = insert_target(db, &q, j, &j->targets[i]);
    db_stmt_t *all[] = {q.ins, q.find, q.peers};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            db_release(all[i]);
    if (rc == DB_DONE)
        rc = DB_OK;
    if (rc != DB_OK && q.w)
        msg_chain_forget(q.w->chain); /* what it appended may be undone */
    return rc;
}

/* Ends a run of message writes (SQLite): conv_last of the conversations
 * the run appended to. */
static int end_run(db_conn *db, msg_job *j)
{
    return db_is_postgres(db) ? DB_OK : msg_chain_flush(db, j->writer->chain);
}

/* A job applied alone (no neighbour to share a run with, or the replay of
 * a failed run). */
static int apply_job(db_conn *db, void *arg)
{
    msg_job *j = arg;
    int rc = store_job(db, j);
    if (rc == DB_OK)
        rc = end_run(db, j);
    return rc == DB_OK ? add_usage(db, j->pid, inserted_bytes(j)) : rc;
}

/* PostgreSQL: a run of jobs (store_submit_many) in a few statements
 * instead of three round trips per target: the ids and the mtime of the
 * whole run from one take_ids, then one statement per chunk of rows that
 * inserts them (arrays through unnest, one SQL text whatever the count)
 * and records the p2p peers of the rows it inserted, and, only when some
 * rows of the chunk were duplicates, one statement for their stored
 * mtimes. Rows go in
 * in submission order, so ids follow it; a retry inside the run loses
 * against its first (inserted before it by the same statement) and gets
 * its mtime. Arrays are text literals: integers in decimal, bytes as
 * quoted hex bytea. */
static const char *const INSERT_MANY_SQL =
    "WITH u AS (SELECT * FROM unnest(?1::bigint[], ?2::bigint[], ?3::bigint[], ?4::bigint[], ?5::bigint[],"
    "   ?6::bigint[], ?7::bigint[], ?8::bytea[], ?9::bigint[], ?10::bytea[]) WITH ORDINALITY"
    "   AS u(pid, conv_type, conv_a, conv_b, from_uid, mid, mtype, msg, is_binary, attrs, ord)),"
    " ins AS (INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype, msg, is_binary,"
    "   attrs, mtime)"
    "   SELECT pid, conv_type, conv_a, conv_b, ?11::bigint + ord - 1, from_uid, mid, mtype, msg, is_binary,"
    "   attrs, ?12::bigint FROM u ORDER BY ord"
    "   ON CONFLICT (pid, conv_type, conv_a, conv_b, from_uid, mid) DO NOTHING"
    "   RETURNING id, pid, conv_type, conv_a, conv_b),"
    " peers AS (INSERT INTO p2p_peers(pid, uid, peer)"
    "   SELECT DISTINCT pid, conv_a, conv_b FROM ins WHERE conv_type = ?13::bigint"
    "   UNION SELECT pid, conv_b, conv_a FROM ins WHERE conv_type = ?13::bigint"
    "   ON CONFLICT DO NOTHING)"
    " SELECT id FROM ins";
static const char *const FIND_MANY_SQL =
    "SELECT u.ord, m.mtime FROM unnest(?1::bigint[], ?2::bigint[], ?3::bigint[], ?4::bigint[], ?5::bigint[],"
    "   ?6::bigint[]) WITH ORDINALITY AS u(pid, conv_type, conv_a, conv_b, from_uid, mid, ord)"
    " JOIN messages m ON m.pid = u.pid AND m.conv_type = u.conv_type AND m.conv_a = u.conv_a"
    " AND m.conv_b = u.conv_b AND m.from_uid = u.from_uid AND m.mid = u.mid";

/* Rows and bytes of array text one statement carries at most. */
#define MANY_MAX_ROWS 4096
#define MANY_MAX_BYTES (4u << 20)

#define MANY_INT_COLS 8   /* pid, conv_type, conv_a, conv_b, from_uid, mid, mtype, is_binary */

/* A growing array literal; oom once an allocation failed. */
typedef struct arr_text {
    char *p;
    size_t len, cap;
    bool oom;
} arr_text;

static void arr_put(arr_text *a, const char *s, size_t n)
{
    if (a->oom)
        return;
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->len + n + 1)
            cap *= 2;
        char *p = realloc(a->p, cap);
        if (!p) {
            a->oom = true;
            return;
        }
        a->p = p;
        a->cap = cap;
    }
    memcpy(a->p + a->len, s, n);
    a->len += n;
    a->p[a->len] = '\0';
}

/* Starts an array ("{"), or puts the separator before its next element. */
static void arr_next(arr_text *a)
{
    arr_put(a, a->len ? "," : "{", 1);
}

static void arr_int(arr_text *a, int64_t v)
{
    char num[24];
    arr_next(a);
    arr_put(a, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)v));
}

/* Bytes as one quoted element "\\x<hex>". */
static void arr_bytes(arr_text *a, const void *data, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *b = data;
    arr_next(a);
    arr_put(a, "\"\\\\x", 4);
    char chunk[128];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        chunk[k++] = hex[b[i] >> 4];
        chunk[k++] = hex[b[i] & 15];
        if (k == sizeof chunk) {
            arr_put(a, chunk, k);
            k = 0;
        }
    }
    arr_put(a, chunk, k);
    arr_put(a, "\"", 1);
}

/* Ends every array of cols (an empty one is "{}"); false when memory ran out. */
static bool arr_close(arr_text *cols, size_t n)
{
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        if (!cols[i].len)
            arr_put(&cols[i], "{", 1);
        arr_put(&cols[i], "}", 1);
        ok = ok && !cols[i].oom;
    }
    return ok;
}

static void arr_free(arr_text *cols, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(cols[i].p);
}

/* One row of a run: its job and target. */
typedef struct many_row {
    msg_job *j;
    msg_target *t;
} many_row;

/* Appends the key columns of row r (pid, conv_type, conv_a, conv_b,
 * from_uid, mid) to cols[0..5]. */
static void put_key(arr_text *cols, const many_row *r)
{
    arr_int(&cols[0], r->j->pid);
    arr_int(&cols[1], r->t->conv.conv_type);
    arr_int(&cols[2], r->t->conv.a);
    arr_int(&cols[3], r->t->conv.b);
    arr_int(&cols[4], r->j->from);
    arr_int(&cols[5], r->j->mid);
}

/* Inserts rows [0, n) (ids first_id on, in order); marks every row the
 * statement did not insert as a duplicate (its mtime read later). */
static int insert_chunk(db_conn *db, many_row *rows, size_t n, int64_t first_id, int64_t mtime)
{
    arr_text cols[MANY_INT_COLS + 2] = {{0}};
    for (size_t i = 0; i < n; i++) {
        const many_row *r = &rows[i];
        put_key(cols, r);
        arr_int(&cols[6], r->j->mtype);
        arr_bytes(&cols[7], r->j->msg, r->j->msg_len);
        arr_int(&cols[8], r->j->is_binary);
        arr_bytes(&cols[9], r->j->attrs, r->j->attrs_len);
        r->t->dup = true; /* until the statement returns its id */
    }
    int rc = arr_close(cols, 10) ? DB_OK : DB_NOMEM;
    db_stmt_t *st = NULL;
    if (rc == DB_OK)
        rc = db_stmt(db, INSERT_MANY_SQL, &st);
    if (rc == DB_OK) {
        for (int c = 0; c < 10; c++)
            db_bind_text(st, c + 1, cols[c].p, (int)cols[c].len);
        db_bind_int64(st, 11, first_id);
        db_bind_int64(st, 12, mtime);
        db_bind_int(st, 13, CONV_P2P);
        while ((rc = db_step(st)) == DB_ROW) {
            int64_t k = db_column_int64(st, 0) - first_id;
            if (k < 0 || (uint64_t)k >= n) {
                rc = DB_CORRUPT;
                break;
            }
            rows[k].t->dup = false;
        }
        rc = rc == DB_DONE ? DB_OK : rc;
        db_release(st);
    }
    arr_free(cols, 10);
    return rc;
}

/* Reads the stored mtime of every duplicate of rows [0, n). */
static int find_dups(db_conn *db, many_row *rows, size_t n)
{
    arr_text cols[6] = {{0}};
    size_t *at = malloc(n * sizeof *at); /* duplicate number -> row */
    if (!at)
        return DB_NOMEM;
    size_t ndup = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].t->dup) {
            put_key(cols, &rows[i]);
            at[ndup++] = i;
        }
    }
    int rc = arr_close(cols, 6) ? DB_OK : DB_NOMEM;
    db_stmt_t *st = NULL;
    if (rc == DB_OK)
        rc = db_stmt(db, FIND_MANY_SQL, &st);
    size_t found = 0;
    if (rc == DB_OK) {
        for (int c = 0; c < 6; c++)
            db_bind_text(st, c + 1, cols[c].p, (int)cols[c].len);
        while ((rc = db_step(st)) == DB_ROW) {
            int64_t ord = db_column_int64(st, 0);
            if (ord < 1 || (uint64_t)ord > ndup) {
                rc = DB_CORRUPT;
                break;
            }
            rows[at[ord - 1]].t->mtime = db_column_int64(st, 1);
            found++;
        }
        rc = rc != DB_DONE ? rc : found == ndup ? DB_OK : DB_CORRUPT;
        db_release(st);
    }
    arr_free(cols, 6);
    free(at);
    return rc;
}

/* The statements' share of rows [0, n): how many rows, from the first, go
 * in one statement (at least one). */
static size_t chunk_rows(const many_row *rows, size_t n)
{
    size_t bytes = 0, k = 0;
    while (k < n && k < MANY_MAX_ROWS) {
        bytes += 2 * (rows[k].j->msg_len + rows[k].j->attrs_len) + 256;
        if (k > 0 && bytes > MANY_MAX_BYTES)
            break;
        k++;
    }
    return k;
}

/* store_apply_many_fn of message jobs. SQLite has no round trip to save:
 * each job's rows are inserted as apply_job would, and the run's bytes
 * counted once per project. */
static int apply_jobs(db_conn *db, void *const *args, size_t n)
{
    if (!db_is_postgres(db)) {
        for (size_t i = 0; i < n; i++) {
            int rc = store_job(db, args[i]);
            if (rc != DB_OK)
                return rc;
        }
        int rc = n ? end_run(db, args[0]) : DB_OK;
        return rc == DB_OK ? add_run_usage(db, args, n) : rc;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ((msg_job *)args[i])->ntargets;
    many_row *rows = malloc((total ? total : 1) * sizeof *rows);
    if (!rows)
        return DB_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        msg_job *j = args[i];
        for (size_t t = 0; t < j->ntargets; t++)
            rows[k++] = (many_row){j, &j->targets[t]};
    }
    int64_t last, mtime;
    int rc = take_ids_n(db, total, &last, &mtime);
    int64_t first = last - (int64_t)total + 1;
    for (size_t i = 0; rc == DB_OK && i < total; i++) {
        rows[i].t->id = first + (int64_t)i;
        rows[i].t->mtime = mtime;
    }
    for (size_t i = 0; rc == DB_OK && i < n; i++)
        ((msg_job *)args[i])->mtime = mtime;
    /* A retry's first row is in its chunk or an earlier one: inserted
     * before the chunk's lookup. */
    for (size_t done = 0; rc == DB_OK && done < total;) {
        size_t c = chunk_rows(rows + done, total - done);
        rc = insert_chunk(db, rows + done, c, first + (int64_t)done, mtime);
        bool dups = false;
        for (size_t i = done; rc == DB_OK && i < done + c; i++)
            dups = dups || rows[i].t->dup;
        if (dups)
            rc = find_dups(db, rows + done, c);
        done += c;
    }
    free(rows);
    return rc == DB_OK ? add_run_usage(db, args, n) : rc;
}

/* ---- pushes (loop thread) ---- */

/* The quest a message is pushed as (see the file comment on chat types). */
static const char *push_method(int conv_type)
{
    switch (conv_type) {
    case CONV_P2P:
        return "pushmsg";
    case CONV_GROUP:
        return "pushgroupmsg";
    case CONV_ROOM:
        return "pushroommsg";
    default:
        return "pushbroadcastmsg";
    }
}

/* The key naming the conversation in a push: to, gid, rid, or none. */
static const char *push_target_key(int conv_type)
{
    switch (conv_type) {
    case CONV_P2P:
        return "to";
    case CONV_GROUP:
        return "gid";
    case CONV_ROOM:
        return "rid";
    default:
        return NULL;
    }
}

/* Encodes the push of target t into out. from_s and to_s, when not NULL,
 * replace the uids of from and to by string ids (a push to a string-id
 * user). */
/* A text chat push's msg in the map form the Unity and Android client
 * SDKs read (see push_chat): the text as sent, and its translation when
 * there is one (target and targetText, else ""). */
typedef struct chat_form {
    const char *source, *target; /* "" when unknown / not translated */
    const char *translated;
    size_t translated_len;
} chat_form;

/* Encodes the push of target t into out: msg as sent, or in the map form
 * when chat is given (a text chat message). */
static int encode_push(struct messages_state *s, const msg_job *j, const msg_target *t, rtm_buf *out,
                       const char *from_s, const char *to_s, const chat_form *chat)
{
    const char *key = push_target_key(t->conv.conv_type);
    msgpack_sbuffer_clear(&s->body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, key ? 7 : 6);
    if (from_s)
        mp_pack_kv_str(&pk, "from", from_s);
    else
        mp_pack_kv_int(&pk, "from", j->from);
    if (key && to_s)
        mp_pack_kv_str(&pk, key, to_s);
    else if (key)
        mp_pack_kv_int(&pk, key, t->to);
    mp_pack_kv_int(&pk, "mtype", j->mtype);
    mp_pack_kv_int(&pk, "mid", j->mid);
    mp_pack_cstr(&pk, "msg");
    if (chat) {
        msgpack_pack_map(&pk, 4);
        mp_pack_kv_str(&pk, "source", chat->source);
        mp_pack_kv_str(&pk, "target", chat->target);
        mp_pack_cstr(&pk, "sourceText");
        msgpack_pack_str(&pk, j->msg_len);
        msgpack_pack_str_body(&pk, j->msg, j->msg_len);
        mp_pack_cstr(&pk, "targetText");
        msgpack_pack_str(&pk, chat->translated_len);
        msgpack_pack_str_body(&pk, chat->translated, chat->translated_len);
    } else if (j->is_binary) {
        msgpack_pack_bin(&pk, j->msg_len);
        msgpack_pack_bin_body(&pk, j->msg, j->msg_len);
    } else {
        msgpack_pack_str(&pk, j->msg_len);
        msgpack_pack_str_body(&pk, j->msg, j->msg_len);
    }
    mp_pack_cstr(&pk, "attrs");
    msgpack_pack_str(&pk, j->attrs_len);
    msgpack_pack_str_body(&pk, j->attrs, j->attrs_len);
    mp_pack_kv_int(&pk, "mtime", t->mtime);
    return push_encode(out, push_method(t->conv.conv_type), &s->body, true);
}

static int64_t *uids_reserve(struct messages_state *s, size_t n)
{
    if (n > s->uids_cap) {
        int64_t *p = realloc(s->uids, n * sizeof *p);
        if (!p)
            return NULL;
        s->uids = p;
        s->uids_cap = n;
    }
    return s->uids;
}

/* The receivers of a group, room or broadcast message: the members as
 * groups.c and rooms.c keep them, walked in place (pushing never changes
 * them: a slow reader dropped during the fan-out is torn down after it,
 * conn_close), or the project's online users collected into s->uids. */
static const int64_t *receivers(rtmd_server *srv, const msg_job *j, const msg_target *t, size_t *n)
{
    struct messages_state *s = state(srv);
    *n = 0;
    if (t->conv.conv_type == CONV_GROUP)
        return groups_members(srv, j->pid, t->to, n);
    if (t->conv.conv_type == CONV_ROOM)
        return rooms_members(srv, j->pid, t->to, n);
    size_t online = users_count(srv);
    if (online == 0 || !uids_reserve(s, online))
        return NULL;
    *n = users_of_project(srv, j->pid, s->uids, online);
    return s->uids;
}

/* The string id of uid as this node knows it (strid.h), else the one a
 * record from another node carried (carried), else NULL. */
static const char *name_of(rtmd_server *srv, const msg_job *j, int64_t uid, const char *carried)
{
    const char *n = strid_name_of(srv, j->pid, uid);
    return n ? n : carried;
}

/* ---- text chat to number-id receivers ----
 *
 * The Unity and Android client SDKs read the msg of a text chat push
 * (mtype 30) as a map {source, target, sourceText, targetText}: Unity
 * drops the push when msg is a string, Android fails on it. The WebSocket
 * SDK hands msg over as it is. So number-id receivers get that map:
 * untranslated (source, target and targetText "": the SDKs then show
 * sourceText) unless the receiver has a language (setlang, auth's lang)
 * and the project a translation backend (translate.h); then the push
 * waits for the translation into that language, asked once per message
 * and language on this node, and goes untranslated when it fails.
 * Receivers without a language are pushed at once. String-id (RTS)
 * receivers, listeners and history keep msg a string. */

/* Receivers of one message waiting for its translation into lang. */
typedef struct chat_wait {
    rtmd_server *srv;
    msg_job j;        /* the fields a push needs; msg and attrs point into data */
    msg_target t;
    char lang[TRANSLATE_MAX_LANG + 1];
    int64_t *uids;
    size_t n, cap;
    struct chat_wait *next; /* the other languages of the same delivery */
    char data[];
} chat_wait;

static bool is_text_chat(const msg_job *j)
{
    return j->mtype == MTYPE_CHAT_TEXT && !j->is_binary;
}

/* A text chat message that could be translated for receivers here. */
static bool translatable(rtmd_server *srv, const msg_job *j)
{
    return is_text_chat(j) && j->msg_len > 0 && j->msg_len <= TRANSLATE_MAX_TEXT && translate_on(srv, j->pid) &&
           rtm_utf8_valid(j->msg, j->msg_len) && !memchr(j->msg, 0, j->msg_len);
}

/* Adds uid to the wait of lang in *waits (made when absent). Returns 0,
 * or -1 (out of memory: the caller pushes untranslated). */
static int chat_wait_add(rtmd_server *srv, const msg_job *j, const msg_target *t, const char *lang, int64_t uid,
                         chat_wait **waits)
{
    chat_wait *w = *waits;
    while (w && strcmp(w->lang, lang) != 0)
        w = w->next;
    if (!w) {
        w = calloc(1, sizeof *w + j->msg_len + j->attrs_len);
        if (!w)
            return -1;
        w->srv = srv;
        w->j.pid = j->pid;
        w->j.from = j->from;
        w->j.mid = j->mid;
        w->j.mtime = j->mtime;
        w->j.mtype = j->mtype;
        w->j.msg = (uint8_t *)w->data;
        w->j.msg_len = j->msg_len;
        w->j.attrs = w->data + j->msg_len;
        w->j.attrs_len = j->attrs_len;
        memcpy(w->data, j->msg, j->msg_len);
        memcpy(w->data + j->msg_len, j->attrs, j->attrs_len);
        w->t = *t;
        snprintf(w->lang, sizeof w->lang, "%s", lang);
        w->next = *waits;
        *waits = w;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4;
        int64_t *u = realloc(w->uids, cap * sizeof *u);
        if (!u)
            return -1;
        w->uids = u;
        w->cap = cap;
    }
    w->uids[w->n++] = uid;
    return 0;
}

static void chat_wait_free(chat_wait *w)
{
    free(w->uids);
    free(w);
}

/* The translation of a wait came (or failed): its receivers get the push. */
static void chat_translated(void *arg, const translate_result *r)
{
    chat_wait *w = arg;
    struct messages_state *s = state(w->srv);
    if (r->code == FPNN_EC_CORE_SERVER_STOPPING || !s) {
        chat_wait_free(w);
        return;
    }
    if (r->code)
        LOG_DEBUG("messages: message %lld pushed untranslated into %s: %s", (long long)w->t.id, w->lang, r->ex);
    chat_form form = {.source = "", .target = "", .translated = ""};
    if (r->code == 0)
        form = (chat_form){.source = r->source, .target = w->lang, .translated = r->text, .translated_len = r->len};
    if (encode_push(s, &w->j, &w->t, &s->translated, NULL, NULL, &form) != 0)
        LOG_ERROR("cannot encode the push of message %lld", (long long)w->t.id);
    else
        for (size_t i = 0; i < w->n; i++)
            users_push(w->srv, w->j.pid, w->uids[i], s->translated.data, s->translated.len);
    chat_wait_free(w);
}

/* Asks the translations of a delivery's waits: each is pushed when its
 * translation comes, at once from the cache, or untranslated when it
 * cannot be asked. */
static void chat_waits_start(rtmd_server *srv, chat_wait *waits)
{
    while (waits) {
        chat_wait *w = waits;
        waits = w->next;
        w->next = NULL;
        int64_t rc = translate_text(srv, w->j.pid, "", w->lang, (const char *)w->j.msg, w->j.msg_len,
                                    chat_translated, w);
        if (rc > 1)
            chat_translated(w, &(translate_result){.code = rc, .ex = "not asked"});
    }
}

/* Pushes target t to the number-id receiver uid: msg as sent, or for a
 * text chat message the map form, translated later when the receiver has
 * a language (added to *waits). */
static void push_number(rtmd_server *srv, const msg_job *j, const msg_target *t, int64_t uid, bool translate,
                        chat_wait **waits)
{
    struct messages_state *s = state(srv);
    if (!is_text_chat(j)) {
        users_push(srv, j->pid, uid, s->packet.data, s->packet.len);
        return;
    }
    const char *lang = translate ? translate_user_lang(srv, j->pid, uid) : NULL;
    if (lang && chat_wait_add(srv, j, t, lang, uid, waits) == 0)
        return;
    if (!s->chat_ready) {
        if (encode_push(s, j, t, &s->chat, NULL, NULL, &(chat_form){.source = "", .target = "", .translated = ""}) != 0) {
            LOG_ERROR("cannot encode the push of message %lld", (long long)t->id);
            return;
        }
        s->chat_ready = true;
    }
    users_push(srv, j->pid, uid, s->chat.data, s->chat.len);
}

/* A p2p push goes to a string-id receiver named by strings (strid.h): its
 * own string id as `to` and the sender's as `from` when the sender has one
 * (a number-id sender stays an integer). Everything else gets s->packet. */
static void push_p2p(rtmd_server *srv, const msg_job *j, const msg_target *t, bool translate, chat_wait **waits)
{
    struct messages_state *s = state(srv);
    const char *name = identity_is_string_uid(t->to) ? name_of(srv, j, t->to, j->to_name) : NULL;
    if (!name) {
        if (identity_is_string_uid(t->to)) /* a string-id user whose name is not known: as before */
            users_push(srv, j->pid, t->to, s->packet.data, s->packet.len);
        else
            push_number(srv, j, t, t->to, translate, waits);
        return;
    }
    /* Copied: a name is valid only until the next strid/identity call. */
    char to_s[IDENTITY_STRING_MAX + 1];
    snprintf(to_s, sizeof to_s, "%s", name);
    if (encode_push(s, j, t, &s->named, name_of(srv, j, j->from, j->from_name), to_s, NULL) != 0) {
        LOG_ERROR("cannot encode the push of message %lld", (long long)t->id);
        return;
    }
    users_push(srv, j->pid, t->to, s->named.data, s->named.len);
}

/* Encodes into s->named the pushroommsg of target t to string-id members:
 * from the sender's string id and rid the room's when they have one (a
 * number-id sender stays an integer). Returns 0, or -1 logged. */
static int encode_room_named(rtmd_server *srv, const msg_job *j, const msg_target *t)
{
    struct messages_state *s = state(srv);
    /* Copied: each name is valid only until the next strid/identity call. */
    char from_s[IDENTITY_STRING_MAX + 1], rid_s[IDENTITY_STRING_MAX + 1];
    const char *f = name_of(srv, j, j->from, j->from_name);
    snprintf(from_s, sizeof from_s, "%s", f ? f : "");
    const char *r = rooms_name(srv, j->pid, t->to);
    if (!r && identity_is_string_uid(t->to))
        r = j->to_name;
    snprintf(rid_s, sizeof rid_s, "%s", r ? r : "");
    if (encode_push(s, j, t, &s->named, f ? from_s : NULL, r ? rid_s : NULL, NULL) != 0) {
        LOG_ERROR("cannot encode the push of message %lld", (long long)t->id);
        return -1;
    }
    return 0;
}

/* The packet listening app servers get (RTMD_EV_MESSAGE): s->packet, or,
 * for a sender whose session has a business id, the same push with
 * `businessid` added as its last key. The body's map is a fixmap (at most
 * 8 keys), so the copy bumps its first byte and appends the pair. */
static const rtm_buf *listened_packet(struct messages_state *s, const msg_job *j, const msg_target *t)
{
    if (s->body.size == 0 || (s->body.data[0] & 0xf0) != 0x80 || (s->body.data[0] & 0x0f) == 0x0f)
        return &s->packet;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_sbuffer_write(&body, s->body.data, s->body.size);
    body.data[0]++;
    mp_pack_kv_str(&pk, "businessid", j->business);
    const char *method = push_method(t->conv.conv_type);
    int rc = push_encode(&s->listened, method, &body, true);
    msgpack_sbuffer_destroy(&body);
    return rc == 0 ? &s->listened : &s->packet;
}

static void deliver_local(rtmd_server *srv, const msg_job *j, const msg_target *t)
{
    struct messages_state *s = state(srv);
    if (encode_push(s, j, t, &s->packet, NULL, NULL, NULL) != 0) {
        LOG_ERROR("cannot encode the push of message %lld", (long long)t->id);
        return;
    }
    s->chat_ready = false;
    bool translate = translatable(srv, j);
    chat_wait *waits = NULL;
    if (t->conv.conv_type == CONV_P2P) {
        push_p2p(srv, j, t, translate, &waits);
    } else {
        size_t n;
        const int64_t *uids = receivers(srv, j, t, &n);
        bool named = false; /* s->named holds the push for string-id room members */
        for (size_t i = 0; i < n; i++) {
            if (uids[i] == j->from)
                continue;
            if (t->conv.conv_type == CONV_ROOM && identity_is_string_uid(uids[i])) {
                if (!named && encode_room_named(srv, j, t) != 0)
                    continue;
                named = true;
                users_push(srv, j->pid, uids[i], s->named.data, s->named.len);
            } else if (identity_is_string_uid(uids[i])) {
                users_push(srv, j->pid, uids[i], s->packet.data, s->packet.len);
            } else {
                push_number(srv, j, t, uids[i], translate, &waits);
            }
        }
    }
    const rtm_buf *listened = &s->packet;
    /* s->body back to s->packet's (push_p2p or encode_room_named may have encoded another). */
    if (j->business[0] && encode_push(s, j, t, &s->packet, NULL, NULL, NULL) == 0)
        listened = listened_packet(s, j, t);
    events_fire(&srv->net.events, srv,
                &(rtmd_event){.kind = RTMD_EV_MESSAGE, .pid = j->pid, .uid = j->from, .conv_type = t->conv.conv_type,
                              .to = t->to, .packet = listened->data, .len = listened->len});
    chat_waits_start(srv, waits);
}

/* ---- across nodes ---- */

/* Fields of a message record, in this order (a msgpack array). */
enum {
    R_PID, R_CONV, R_TO, R_ID, R_MTIME, R_FROM, R_MID, R_MTYPE, R_BINARY, R_MSG, R_ATTRS, R_BUSINESS,
    R_FROM_NAME, R_TO_NAME, /* string ids of from and to (user or room) known here, or "" */
    R_N
};

static void pack_name(msgpack_packer *pk, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, name ? name : "", n);
}

/* The string id of the target of t (a user or a room) known here, or NULL. */
static const char *target_name(rtmd_server *srv, const msg_job *j, const msg_target *t)
{
    if (!identity_is_string_uid(t->to))
        return NULL;
    if (t->conv.conv_type == CONV_P2P)
        return name_of(srv, j, t->to, j->to_name);
    return t->conv.conv_type == CONV_ROOM ? rooms_name(srv, j->pid, t->to) : NULL;
}

/* The receiving node names string-id users by what it knows, and by the
 * names the record carries when it does not know them (a sender online
 * on this node only, a name out of the receiver's cache). */
static void encode_record(rtmd_server *srv, msgpack_sbuffer *b, const msg_job *j, const msg_target *t)
{
    msgpack_sbuffer_clear(b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, R_N);
    msgpack_pack_int64(&pk, j->pid);
    msgpack_pack_int(&pk, t->conv.conv_type);
    msgpack_pack_int64(&pk, t->to);
    msgpack_pack_int64(&pk, t->id);
    msgpack_pack_int64(&pk, t->mtime);
    msgpack_pack_int64(&pk, j->from);
    msgpack_pack_int64(&pk, j->mid);
    msgpack_pack_int(&pk, j->mtype);
    if (j->is_binary)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    msgpack_pack_bin(&pk, j->msg_len);
    msgpack_pack_bin_body(&pk, j->msg, j->msg_len);
    msgpack_pack_bin(&pk, j->attrs_len);
    msgpack_pack_bin_body(&pk, j->attrs, j->attrs_len);
    size_t bl = strlen(j->business);
    msgpack_pack_str(&pk, bl);
    msgpack_pack_str_body(&pk, j->business, bl);
    /* Each name is valid until the next strid/identity call: packed at once. */
    pack_name(&pk, identity_is_string_uid(j->from) ? name_of(srv, j, j->from, j->from_name) : NULL);
    pack_name(&pk, target_name(srv, j, t));
}

/* Marks in want[] the other nodes holding an online member of the group
 * but the sender; returns how many are marked. */
static size_t want_group(rtmd_server *srv, const msg_job *j, const msg_target *t, bool *want, size_t nodes)
{
    size_t n, marked = 0;
    const int64_t *uids = groups_members(srv, j->pid, t->to, &n);
    for (size_t i = 0; i < n && marked < nodes; i++) {
        if (uids[i] == j->from || !cluster_remote_online(srv, j->pid, uids[i]))
            continue;
        for (size_t k = 0; k < nodes; k++)
            if (!want[k] && cluster_node_holds(srv, k, j->pid, uids[i])) {
                want[k] = true;
                marked++;
            }
    }
    return marked;
}

/* Sends the message once to each other node that has a receiver of it
 * (p2p: the receiver's nodes; group: the nodes of its online members;
 * room: the nodes with members in the room, by the mirror, and those
 * that have one once the mirror caught up (cluster_send_room); broadcast:
 * the same, with the nodes holding users of the project) or an app server
 * listening to the project. */
static void route(rtmd_server *srv, const msg_job *j, const msg_target *t)
{
    size_t nodes = cluster_node_count(srv);
    if (nodes == 0)
        return;
    if (nodes > CLUSTER_NODES_MAX)
        nodes = CLUSTER_NODES_MAX;
    bool want[CLUSTER_NODES_MAX];
    memset(want, 0, nodes);
    bool scoped = t->conv.conv_type == CONV_ROOM || t->conv.conv_type == CONV_BROADCAST;
    int64_t rid = t->conv.conv_type == CONV_ROOM ? t->to : CLUSTER_BROADCAST_RID;
    if (t->conv.conv_type == CONV_P2P && cluster_remote_online(srv, j->pid, t->to)) {
        for (size_t k = 0; k < nodes; k++)
            want[k] = cluster_node_holds(srv, k, j->pid, t->to);
    } else if (t->conv.conv_type == CONV_GROUP) {
        want_group(srv, j, t, want, nodes);
    } else if (scoped) {
        size_t in[CLUSTER_NODES_MAX];
        size_t n = cluster_room_nodes(srv, j->pid, rid, in, nodes);
        for (size_t k = 0; k < n; k++)
            want[in[k]] = true;
    }
    struct messages_state *s = state(srv);
    if (scoped) {
        for (size_t k = 0; k < nodes; k++)
            want[k] = want[k] || cluster_node_listens(srv, k, j->pid);
        encode_record(srv, &s->record, j, t);
        cluster_send_room(srv, j->pid, rid, CLUSTER_REC_MESSAGE, s->record.data, s->record.size, want, nodes);
        return;
    }
    bool encoded = false;
    for (size_t k = 0; k < nodes; k++) {
        if (!want[k] && !cluster_node_listens(srv, k, j->pid))
            continue;
        if (!encoded) {
            encode_record(srv, &s->record, j, t);
            encoded = true;
        }
        cluster_send(srv, cluster_node_at(srv, k), CLUSTER_REC_MESSAGE, s->record.data, s->record.size);
    }
}

static void deliver(rtmd_server *srv, const msg_job *j, const msg_target *t)
{
    deliver_local(srv, j, t);
    if (cluster_enabled(srv))
        route(srv, j, t);
}

/* A name field of a record into out (NUL-terminated, "" for none): a
 * string, empty or a valid string id of a string-id uid. */
static bool record_name(const msgpack_object *o, int64_t uid, char out[IDENTITY_STRING_MAX + 1])
{
    const char *p;
    size_t n;
    if (o->type != MSGPACK_OBJECT_STR || !mp_obj_str(o, &p, &n))
        return false;
    if (n > 0 && (!identity_is_string_uid(uid) || !identity_validate(p, n)))
        return false;
    memcpy(out, p, n); /* identity_validate bounds n to IDENTITY_STRING_MAX */
    out[n] = 0;
    return true;
}

/* A message record from another node (route): pushed to this node's
 * receivers and listeners. Hostile bytes: every field is checked, the
 * project must be one of ours, and the record is dropped otherwise. */
static void deliver_remote(rtmd_server *srv, const uint8_t *data, size_t len)
{
    if (len == 0 || data[0] != (0x90 | R_N)) /* before a zone of len bytes */
        goto bad;
    msgpack_zone *zone = msgpack_zone_new(len + 256);
    if (!zone)
        return;
    msg_job j = {0};
    msg_target t = {0};
    int64_t pid, conv, mtype;
    const char *msg, *attrs, *business;
    size_t business_len;
    char from_name[IDENTITY_STRING_MAX + 1], to_name[IDENTITY_STRING_MAX + 1];
    const msgpack_object *f = cluster_record_fields(zone, data, len, CLUSTER_RECORD_MAX, R_N);
    bool ok = f && cluster_record_int(&f[R_PID], 1, INT64_MAX, &pid) && rtmd_server_project(srv, pid) &&
              cluster_record_int(&f[R_CONV], CONV_P2P, CONV_BROADCAST, &conv) &&
              cluster_record_int(&f[R_TO], INT64_MIN, INT64_MAX, &t.to) &&
              cluster_record_int(&f[R_ID], 0, INT64_MAX, &t.id) &&
              cluster_record_int(&f[R_MTIME], 0, INT64_MAX, &t.mtime) &&
              cluster_record_int(&f[R_FROM], INT64_MIN, INT64_MAX, &j.from) &&
              cluster_record_int(&f[R_MID], INT64_MIN, INT64_MAX, &j.mid) &&
              cluster_record_int(&f[R_MTYPE], MTYPE_MIN, MTYPE_MAX, &mtype) &&
              f[R_BINARY].type == MSGPACK_OBJECT_BOOLEAN && mp_obj_str(&f[R_MSG], &msg, &j.msg_len) &&
              mp_obj_str(&f[R_ATTRS], &attrs, &j.attrs_len) && f[R_BUSINESS].type == MSGPACK_OBJECT_STR &&
              mp_obj_str(&f[R_BUSINESS], &business, &business_len) && business_len <= RTMD_BUSINESS_ID_MAX &&
              !memchr(business, 0, business_len) && record_name(&f[R_FROM_NAME], j.from, from_name) &&
              record_name(&f[R_TO_NAME], t.to, to_name);
    if (ok) {
        j.from_name = from_name[0] ? from_name : NULL;
        j.to_name = to_name[0] ? to_name : NULL;
        j.pid = pid;
        j.mtype = (int)mtype;
        j.mtime = t.mtime;
        j.is_binary = f[R_BINARY].via.boolean;
        j.msg = (uint8_t *)msg;
        j.attrs = (char *)attrs;
        memcpy(j.business, business, business_len);
        j.business[business_len] = 0;
        j.ntargets = 1;
        j.targets = &t;
        t.conv = conv_of((int)conv, j.from, t.to);
        if (conv == CONV_BROADCAST)
            t.to = 0;
        deliver_local(srv, &j, &t);
    }
    msgpack_zone_free(zone);
    if (ok)
        return;
bad:
    LOG_WARN("messages: a malformed message record from another node was dropped");
}

static void answer_mtime(rtmd_request *req, int64_t mtime)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    mp_pack_kv_int(&pk, "mtime", mtime);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* The mtime a job is answered with: its own if any target was new, else
 * the first one's. */
static int64_t job_answer_mtime(const msg_job *j)
{
    for (size_t i = 0; i < j->ntargets; i++)
        if (!j->targets[i].dup)
            return j->mtime;
    return j->targets[0].mtime;
}

static void job_done(void *arg, int status)
{
    msg_job *j = arg;
    rtmd_server *srv = j->req->srv;
    if (status != DB_OK) {
        LOG_ERROR("storing message %lld from %lld failed%s: %s", (long long)j->mid, (long long)j->from,
                  j->pushed ? " (pushed already)" : "", db_errstr(status));
        module_answer_store_failure(j->req, status);
        quota_release(srv, j->pid, j->reserved, 0);
        free(j);
        return;
    }
    uint64_t t_done = lat_now(), t_recv = j->req->t_recv;
    uint64_t stored = 0;
    for (size_t i = 0; i < j->ntargets; i++) {
        const msg_target *t = &j->targets[i];
        if (!t->dup) {
            stored += row_bytes(j);
            state(srv)->stored[t->conv.conv_type]++;
            if (!j->pushed)
                deliver(srv, j, t);
        }
    }
    quota_release(srv, j->pid, j->reserved, stored);
    answer_mtime(j->req, job_answer_mtime(j));
    uint64_t t_queued = lat_now();
    lat_since(LAT_DELIVER, t_done, t_queued);
    lat_note_queued(t_recv, t_queued);
    free(j);
}

/* Whether a room message is pushed before its commit: only in rooms of at
 * most ROOM_PUSH_EARLY_MAX members on this node. After the commit the
 * pushes of a whole batch go out together, one write per member for many
 * messages; pushed early, each message costs every member a write of its
 * own, which in a large room costs more than it saves (fanout to 1,000
 * members: 20 % fewer deliveries a second, docs/performance.md). */
#define ROOM_PUSH_EARLY_MAX 100
static bool room_pushes_early(rtmd_server *srv, int64_t pid, int64_t rid)
{
    size_t members = 0;
    rooms_members(srv, pid, rid, &members);
    return members <= ROOM_PUSH_EARLY_MAX;
}

/* Admits the job by the write rates and the storage quota (quota.h), gives
 * every target an id and the job's mtime, pushes a room message at once
 * when rooms push before the commit, and submits the job; the writer tells
 * duplicates apart. Takes ownership of j. */
static void job_submit(msg_job *j)
{
    rtmd_request *req = j->req;
    struct messages_state *s = state(req->srv);
    uint64_t bytes = j->ntargets * row_bytes(j);
    if (quota_admit(req, j->ntargets, bytes) != 0) {
        free(j);
        return;
    }
    j->reserved = bytes;
    lat_since(LAT_HANDLER, req->t_recv, lat_now());
    if (!s->ids_in_store) {
        j->mtime = next_mtime(s);
        for (size_t i = 0; i < j->ntargets; i++) {
            j->targets[i].id = s->next_id++;
            j->targets[i].mtime = j->mtime;
        }
        j->writer = &s->writer;
    }
    /* Before the submit: from then on the writer may write the targets. */
    if (s->room_push_early && j->ntargets == 1 && j->targets[0].conv.conv_type == CONV_ROOM &&
        room_pushes_early(req->srv, j->pid, j->targets[0].to)) {
        deliver(req->srv, j, &j->targets[0]);
        j->pushed = true;
    }
    /* A run of jobs shares its storage_usage upserts (and on PostgreSQL
     * its statements). A job already pushed waits for its commit only for
     * the sender's answer: patient. */
    if ((j->pushed ? store_submit_patient : store_submit_many)(req->srv->store, apply_job, apply_jobs, job_done, j) != 0) {
        quota_release(req->srv, j->pid, j->reserved, 0);
        free(j);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

/* Builds a one-target job and submits it. */
static void send_one(rtmd_request *req, const msg_fields *f, conv_key conv, int64_t to)
{
    msg_job *j = job_new(req, f, 1);
    if (!j) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    j->targets[0] = (msg_target){.conv = conv, .to = to};
    job_submit(j);
}

/* ---- methods ---- */

/* Whether every receiver admits a client's p2p message (friends.h); the
 * app server is not asked. Answers the refusal and returns false. */
static bool p2p_admitted(rtmd_request *req, int64_t from, const int64_t *tos, size_t n)
{
    if (req->gate == GATE_SERVER_TCP)
        return true;
    for (size_t i = 0; i < n; i++) {
        int code = friends_p2p_refusal(req->srv, req->project->pid, from, tos[i]);
        if (code) {
            request_error(req, code, friends_refusal_text(code));
            return false;
        }
    }
    return true;
}

/* sendmsg {from (server gate), to, mid, mtype, msg, attrs} -> {mtime} */
static void method_sendmsg(rtmd_request *req)
{
    msg_fields f;
    int64_t to;
    if (!get_fields(req, &f) || !req_arg_int64(req, "to", &to))
        return;
    if (to == f.from) {
        request_error(req, RTM_EC_SEND_TO_SELF, "can not send to myself");
        return;
    }
    if (!p2p_admitted(req, f.from, &to, 1))
        return;
    send_one(req, &f, conv_p2p(f.from, to), to);
}

/* The receivers of sendmsgs, sorted, without repeats and without the
 * sender, into *out (malloc'd). Answers an error and returns -1, or
 * returns how many. */
static long get_receivers(rtmd_request *req, int64_t from, int64_t **out)
{
    int64_t *uids;
    uint32_t n;
    if (!req_arg_ids(req, "tos", req->project->limits.max_receivers, false, &uids, &n))
        return -1;
    uint32_t unique = 0;
    for (uint32_t i = 0; i < n; i++)
        if (uids[i] != from)
            uids[unique++] = uids[i];
    if (unique == 0) {
        free(uids);
        request_error(req, RTM_EC_SEND_TO_SELF, "can not send to myself");
        return -1;
    }
    *out = uids;
    return (long)unique;
}

/* sendmsgs {from (server gate), tos, mid, mtype, msg, attrs} -> {mtime};
 * one stored row and one push per receiver. */
static void method_sendmsgs(rtmd_request *req)
{
    msg_fields f;
    int64_t *tos = NULL;
    if (!get_fields(req, &f))
        return;
    long n = get_receivers(req, f.from, &tos);
    if (n < 0)
        return;
    if (!p2p_admitted(req, f.from, tos, (size_t)n)) {
        free(tos);
        return;
    }
    msg_job *j = job_new(req, &f, (size_t)n);
    if (j) {
        for (long i = 0; i < n; i++)
            j->targets[i] = (msg_target){.conv = conv_p2p(f.from, tos[i]), .to = tos[i]};
        job_submit(j);
    } else {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
    }
    free(tos);
}

/* sendgroupmsg {from (server gate), gid, mid, mtype, msg, attrs} -> {mtime} */
static void method_sendgroupmsg(rtmd_request *req)
{
    msg_fields f;
    int64_t gid;
    if (!get_fields(req, &f) || !req_arg_int64(req, "gid", &gid))
        return;
    int64_t pid = req->project->pid;
    if (req->gate != GATE_SERVER_TCP && !groups_is_member(req->srv, pid, gid, f.from)) {
        request_error(req, RTM_EC_NOT_GROUP_MEMBER, "not group member");
        return;
    }
    if (bans_group_banned(req->srv, pid, gid, f.from)) {
        request_error(req, RTM_EC_BANNED_IN_GROUP, "banned in group");
        return;
    }
    send_one(req, &f, conv_group(gid), gid);
}

/* sendroommsg {from (server gate), rid, mid, mtype, msg, attrs} -> {mtime} */
static void method_sendroommsg(rtmd_request *req)
{
    msg_fields f;
    int64_t rid;
    if (!get_fields(req, &f) || !req_arg_int64(req, "rid", &rid))
        return;
    int64_t pid = req->project->pid;
    if (req->gate != GATE_SERVER_TCP && !rooms_is_member(req->srv, pid, rid, f.from)) {
        request_error(req, RTM_EC_NOT_IN_ROOM, "not in room");
        return;
    }
    if (bans_room_banned(req->srv, pid, rid, f.from)) {
        request_error(req, RTM_EC_BANNED_IN_ROOM, "banned in room");
        return;
    }
    send_one(req, &f, conv_room(rid), rid);
}

/* server: broadcastmsg {from, mid, mtype, msg, attrs} -> {mtime} */
static void method_broadcastmsg(rtmd_request *req)
{
    msg_fields f;
    if (!get_fields(req, &f))
        return;
    send_one(req, &f, conv_broadcast(), 0);
}

/* ---- module life cycle ---- */

/* The newest stored message: the next id follows it, and mtimes continue
 * from its mtime even if the clock went back while rtmd was down. */
typedef struct newest_msg {
    int64_t id, mtime;
    bool postgres;
} newest_msg;

#define ID_FLOOR_COUNTER "'message_id_floor'"

int messages_note_id_floor(db_conn *db)
{
    db_stmt_t *st;
    int rc = db_stmt(db,
                        "INSERT INTO counters(name, value) SELECT " ID_FLOOR_COUNTER ", COALESCE(MAX(id), 0)"
                        " FROM messages WHERE true"
                        " ON CONFLICT(name) DO UPDATE SET value = max(counters.value, excluded.value)",
                        &st);
    return rc == DB_OK ? db_step_release(st) : rc;
}

/* The newest row's id and mtime; the id is raised to the recorded floor,
 * so that no id is handed out twice when retention deleted the newest
 * messages. */
static int load_newest(db_conn *db, void *arg)
{
    newest_msg *max = arg;
    max->postgres = db_is_postgres(db);
    if (max->postgres)
        return DB_OK; /* the writer takes ids (take_ids) */
    db_stmt_t *st;
    int rc = db_prepare(db, "SELECT MAX(COALESCE((SELECT MAX(id) FROM messages), 0),"
                                " COALESCE((SELECT value FROM counters WHERE name = " ID_FLOOR_COUNTER "), 0)),"
                                " COALESCE((SELECT mtime FROM messages WHERE id = (SELECT MAX(id) FROM messages)), 0)",
                    &st);
    if (rc != DB_OK)
        return rc;
    rc = db_step(st);
    if (rc == DB_ROW) {
        max->id = db_column_int64(st, 0);
        max->mtime = db_column_int64(st, 1);
        rc = DB_OK;
    }
    db_finalize(st);
    return rc;
}

static int messages_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct messages_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    msgpack_sbuffer_init(&s->body);
    msgpack_sbuffer_init(&s->record);
    srv->svc->messages = s;
    cluster_on_record(srv, CLUSTER_REC_MESSAGE, deliver_remote);
    newest_msg max = {0, 0, false};
    if (module_load(srv, load_newest, &max) != DB_OK) {
        snprintf(err, errlen, "cannot read the last message id from the store");
        return -1;
    }
    s->next_id = max.id + 1;
    s->last_mtime = max.mtime;
    s->ids_in_store = max.postgres;
    s->writer.key = rtm_hash_key();
    if (!s->ids_in_store && !(s->writer.chain = msg_chain_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->room_push_early = !s->ids_in_store && strcmp(srv->cfg.room_push, "before_commit") == 0;
    if (s->ids_in_store)
        LOG_INFO("messages: message ids from the store's counter");
    else
        LOG_INFO("messages: next message id %lld", (long long)s->next_id);
    LOG_INFO("messages: room messages pushed %s the commit", s->room_push_early ? "before" : "after");
    return 0;
}

static const rtmd_method messages_methods[] = {
    {"sendmsg", GATES_SERVER | GATES_CLIENT, method_sendmsg, 0},
    {"sendmsgs", GATES_SERVER | GATES_CLIENT, method_sendmsgs, 0},
    {"sendgroupmsg", GATES_SERVER | GATES_CLIENT, method_sendgroupmsg, 0},
    {"sendroommsg", GATES_SERVER | GATES_CLIENT, method_sendroommsg, 0},
    {"broadcastmsg", GATES_SERVER, method_broadcastmsg, 0},
};

static void messages_free(rtmd_server *srv)
{
    struct messages_state *s = srv->svc->messages;
    if (!s)
        return;
    msgpack_sbuffer_destroy(&s->body);
    msgpack_sbuffer_destroy(&s->record);
    rtm_buf_free(&s->packet);
    rtm_buf_free(&s->named);
    rtm_buf_free(&s->listened);
    rtm_buf_free(&s->chat);
    rtm_buf_free(&s->translated);
    free(s->uids);
    free(s->writer.peers);
    msg_chain_free(s->writer.chain);
    free(s);
    srv->svc->messages = NULL;
}

void messages_stored_counts(const rtmd_server *srv, uint64_t out[4])
{
    const struct messages_state *s = srv->svc->messages;
    memset(out, 0, 4 * sizeof *out);
    if (s)
        memcpy(out, s->stored + CONV_P2P, 4 * sizeof *out);
}

static void messages_metrics(const rtmd_server *srv, prom_out *out)
{
    static const char *const kinds[] = {"p2p", "group", "room", "broadcast"};
    uint64_t stored[4];
    messages_stored_counts(srv, stored);
    prom_labelled(out, "rtmd_messages_total", "counter",
                  "Messages stored (and so delivered) from this node, by kind; a sendmsgs counts each receiver.",
                  "kind", kinds, stored, 4);
}

const rtmd_module messages_module = {
    .name = "messages",
    .init = messages_init,
    .free = messages_free,
    .metrics = messages_metrics,
    RTMD_MODULE_METHODS(messages_methods),
};
