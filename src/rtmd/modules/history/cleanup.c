/* Admin clean-up of stored messages, on the server gate (a module of its
 * own, history_admin_module, inside the history folder because it works on
 * the same table and helpers):
 *
 *   cleanmsg {from, xid, type, begin, end}   a conversation in a time range
 *   delconversationmsgs {from, xid, type}    what one user sent to one
 *                                            conversation
 *   clearusermsg {uid}                       every message the user sent
 *                                            and its p2p conversations
 *   clearprojectmsg {type}                   a kind of conversation, or all,
 *                                            of the whole project
 *   editmsg {mid, from, xid, type, msg, attrs, timeLimit}
 *   addsessions / removesessions {uid, uids} p2p conversations shown or
 *                                            hidden in the user's lists
 *
 * Deleting many rows never stalls the loop or the writer: a purge is a chain
 * of writes through the store's writer, each deleting the matching rows
 * within a window of at most HISTORY_SWEEP_BATCH messages, the next write
 * submitted from the done callback of the last, so that messages and other
 * writes interleave. A purge covers the messages stored before it started
 * (ids up to the newest one when its first write runs); the answer goes out
 * once the last write is durable. Before each write the newest id is
 * recorded (messages_note_id_floor), so ids are never handed out again,
 * and the storage quota loses the bytes of deleted rows through the delete
 * trigger of migration 9. Deleted rows are gone (unlike delmsg, which marks
 * one message deleted); read markers and unread counts stay consistent
 * since they compare ids. */
#include "history_internal.h"

#include "clock.h"
#include "log.h"
#include "messages.h"
#include "module.h"
#include "quota.h"
#include "rtm_errors.h"

#include <stdlib.h>
#include <string.h>

/* clearprojectmsg types as the Go SDK numbers them (ClearType). */
enum { CLEAR_P2P = 0, CLEAR_ROOM = 1, CLEAR_GROUP = 2, CLEAR_BROADCAST = 3, CLEAR_ALL = 4 };

/* Uids of one addsessions / removesessions. */
#define SESSIONS_UIDS_MAX 100

/* ---- purges ---- */

typedef struct purge {
    rtmd_request *req;
    int64_t pid;
    bool conv;                 /* one conversation (by its index), else rowid windows */
    int conv_type;             /* conv: the conversation; windows: 0 = every type */
    int64_t a, b;
    int64_t from;              /* 0 = any sender */
    int64_t begin, end;        /* mtime bounds, inclusive */
    int64_t user;              /* windows: the user's messages and p2p conversations */
    int64_t cursor;            /* ids up to it are done */
    int64_t stop;              /* newest id when the purge began; -1 before */
    /* results of the write in flight (it may run twice) */
    int64_t batch_stop, batch_end, batch_deleted; /* the window is (cursor, batch_end) */
    uint64_t total;
} purge;

#define STR_(x) #x
#define STR(x) STR_(x)
/* A window ends before the row HISTORY_SWEEP_BATCH rows on. */
#define PURGE_BATCH_SQL STR(HISTORY_SWEEP_BATCH)

static int apply_purge(db_conn *db, void *arg)
{
    purge *p = arg;
    int rc = messages_note_id_floor(db);
    if (rc != DB_OK)
        return rc;
    p->batch_stop = p->stop;
    if (p->batch_stop < 0) {
        p->batch_stop = hist_query_i64(db, NEWEST_ID_SQL, 0, 0, &rc);
        if (rc != DB_OK)
            return rc;
    }
    db_stmt_t *st;
    if (p->conv) {
        /* The window: the next HISTORY_SWEEP_BATCH rows of the conversation. */
        rc = db_stmt(db,
                       "SELECT COALESCE((SELECT id FROM conv_messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3"
                       " AND conv_b = ?4 AND id > ?5 AND id <= ?6 ORDER BY id LIMIT 1 OFFSET " PURGE_BATCH_SQL "), ?6 + 1)",
                       &st);
        if (rc != DB_OK)
            return rc;
        db_bind_int64(st, 1, p->pid);
        db_bind_int(st, 2, p->conv_type);
        db_bind_int64(st, 3, p->a);
        db_bind_int64(st, 4, p->b);
        db_bind_int64(st, 5, p->cursor);
        db_bind_int64(st, 6, p->batch_stop);
        rc = db_step(st);
        p->batch_end = rc == DB_ROW ? db_column_int64(st, 0) : p->batch_stop + 1;
        db_release(st);
        if (rc != DB_ROW)
            return rc;
        rc = db_stmt(db,
                       "DELETE FROM messages WHERE id IN (SELECT id FROM conv_messages WHERE pid = ?1 AND conv_type = ?2"
                       " AND conv_a = ?3 AND conv_b = ?4 AND id > ?5 AND id < ?6 AND (?7 = 0 OR from_uid = ?7)"
                       " AND mtime >= ?8 AND mtime <= ?9)",
                       &st);
        if (rc != DB_OK)
            return rc;
        db_bind_int64(st, 1, p->pid);
        db_bind_int(st, 2, p->conv_type);
        db_bind_int64(st, 3, p->a);
        db_bind_int64(st, 4, p->b);
    } else {
        /* The window: the next HISTORY_SWEEP_BATCH rows of the server, whatever
         * their project, so a write stays bounded among other projects' rows. */
        p->batch_end = hist_query_i64(db,
                                      "SELECT COALESCE((SELECT id FROM messages WHERE id > ?1 AND id <= ?2"
                                      " ORDER BY id LIMIT 1 OFFSET " PURGE_BATCH_SQL "), ?2 + 1)",
                                      p->cursor, p->batch_stop, &rc);
        if (rc != DB_OK)
            return rc;
        /* +column: by rowid range, never by an index. */
        rc = db_stmt(db,
                       "DELETE FROM messages WHERE id > ?5 AND id < ?6 AND +pid = ?1 AND (?2 = 0 OR +conv_type = ?2)"
                       " AND (?3 = 0 OR +from_uid = ?3 OR (+conv_type = 1 AND (+conv_a = ?3 OR +conv_b = ?3)))"
                       " AND (?7 = 0 OR +from_uid = ?7) AND +mtime >= ?8 AND +mtime <= ?9",
                       &st);
        if (rc != DB_OK)
            return rc;
        db_bind_int64(st, 1, p->pid);
        db_bind_int(st, 2, p->conv_type);
        db_bind_int64(st, 3, p->user);
    }
    db_bind_int64(st, 5, p->cursor);
    db_bind_int64(st, 6, p->batch_end);
    db_bind_int64(st, 7, p->from);
    db_bind_int64(st, 8, p->begin);
    db_bind_int64(st, 9, p->end);
    rc = db_step(st);
    p->batch_deleted = rc == DB_DONE ? db_changes(db) : 0;
    db_release(st);
    return rc == DB_DONE ? DB_OK : rc;
}

static void purge_done(void *arg, int status)
{
    purge *p = arg;
    rtmd_request *req = p->req;
    rtmd_server *srv = req->srv;
    if (status != DB_OK) {
        if (status != DB_ABORT)
            LOG_ERROR("%s: delete failed: %s", req->method, db_errstr(status));
        module_answer_store_failure(req, status);
        free(p);
        return;
    }
    p->stop = p->batch_stop;
    p->cursor = p->batch_end - 1;
    p->total += (uint64_t)p->batch_deleted;
    if (p->cursor >= p->stop) {
        LOG_INFO("%s: %llu messages of project %lld deleted", req->method, (unsigned long long)p->total,
                 (long long)p->pid);
        request_answer_empty(req);
        free(p);
        return;
    }
    if (srv->stopping || !srv->store || store_submit(srv->store, apply_purge, purge_done, p) != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        free(p);
    }
}

static purge *purge_new(rtmd_request *req)
{
    purge *p = calloc(1, sizeof *p);
    if (!p) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return NULL;
    }
    p->req = req;
    p->pid = req->project->pid;
    p->stop = -1;
    p->begin = INT64_MIN;
    p->end = INT64_MAX;
    return p;
}

static void purge_start(purge *p)
{
    rtmd_request *req = p->req;
    if (store_submit(req->srv->store, apply_purge, purge_done, p) != 0) {
        free(p);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

/* Reads type (1 p2p, 2 group, 3 room, 4 broadcast) and, but for broadcast,
 * xid; answers and returns false on a bad request. */
static bool arg_conv_type(rtmd_request *req, int64_t *type, int64_t *xid)
{
    *xid = 0;
    if (!req_arg_int64(req, "type", type))
        return false;
    if (*type < CONV_P2P || *type > CONV_BROADCAST) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid 'type': 1 p2p, 2 group, 3 room or 4 broadcast");
        return false;
    }
    return *type == CONV_BROADCAST || req_arg_int64(req, "xid", xid);
}

static void purge_conv(purge *p, conv_key k)
{
    p->conv = true;
    p->conv_type = k.conv_type;
    p->a = k.a;
    p->b = k.b;
}

/* server: cleanmsg {from, xid, type, begin, end} -> {}. Every message of
 * the conversation with begin <= mtime <= end (0: no bound); p2p is the
 * conversation of from and xid; a broadcast clean with from != 0 takes
 * only that sender's broadcasts. */
static void method_cleanmsg(rtmd_request *req)
{
    int64_t from = 0, type, xid, begin = 0, end = 0;
    if (!arg_conv_type(req, &type, &xid) || !hist_opt_i64(req, "from", &from, NULL) ||
        !hist_opt_i64(req, "begin", &begin, NULL) || !hist_opt_i64(req, "end", &end, NULL))
        return;
    if (type == CONV_P2P && !req_arg_int64(req, "from", &from))
        return;
    purge *p = purge_new(req);
    if (!p)
        return;
    purge_conv(p, conv_of((int)type, from, xid));
    if (type == CONV_BROADCAST)
        p->from = from;
    if (begin > 0)
        p->begin = begin;
    if (end > 0)
        p->end = end;
    purge_start(p);
}

/* server: delconversationmsgs {from, xid, type} -> {}: what from sent to
 * the conversation (p2p: from's messages to xid). */
static void method_delconversationmsgs(rtmd_request *req)
{
    int64_t from, type, xid;
    if (!arg_conv_type(req, &type, &xid) || !req_arg_int64(req, "from", &from))
        return;
    if (from == 0) {
        req_arg_error(req, "from");
        return;
    }
    purge *p = purge_new(req);
    if (!p)
        return;
    purge_conv(p, conv_of((int)type, from, xid));
    p->from = from;
    purge_start(p);
}

/* server: clearusermsg {uid} -> {}: every message the user sent (any
 * conversation) and every message of its p2p conversations. */
static void method_clearusermsg(rtmd_request *req)
{
    int64_t uid;
    if (!req_arg_int64(req, "uid", &uid))
        return;
    if (uid == 0) {
        req_arg_error(req, "uid");
        return;
    }
    purge *p = purge_new(req);
    if (!p)
        return;
    p->user = uid;
    purge_start(p);
}

/* server: clearprojectmsg {type: 0 p2p, 1 room, 2 group, 3 broadcast,
 * 4 all} -> {} */
static void method_clearprojectmsg(rtmd_request *req)
{
    int64_t type;
    if (!req_arg_int64(req, "type", &type))
        return;
    static const int conv_types[] = {[CLEAR_P2P] = CONV_P2P, [CLEAR_ROOM] = CONV_ROOM, [CLEAR_GROUP] = CONV_GROUP,
                                     [CLEAR_BROADCAST] = CONV_BROADCAST, [CLEAR_ALL] = 0};
    if (type < CLEAR_P2P || type > CLEAR_ALL) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid 'type': 0 p2p, 1 room, 2 group, 3 broadcast or 4 all");
        return;
    }
    purge *p = purge_new(req);
    if (!p)
        return;
    p->conv_type = conv_types[type];
    purge_start(p);
}

/* ---- editmsg ---- */

typedef struct edit {
    rtmd_request *req;
    int64_t pid, from, mid;
    conv_key conv;
    int64_t time_limit, now;
    uint64_t reserved;
    bool binary;
    const char *msg, *attrs;   /* in req's payload, alive until the answer */
    size_t msg_len, attrs_len;
    /* results */
    bool found, too_old;
    int64_t old_bytes;
} edit;

static int apply_edit(db_conn *db, void *arg)
{
    edit *e = arg;
    db_stmt_t *st;
    e->found = e->too_old = false;
    int rc = db_stmt(db,
                       "SELECT id, mtime, length(CAST(msg AS BLOB)) + length(CAST(attrs AS BLOB)) FROM messages"
                       " WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4 AND from_uid = ?5"
                       " AND mid = ?6 AND deleted = 0 ORDER BY id LIMIT 1",
                       &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, e->pid);
    db_bind_int(st, 2, e->conv.conv_type);
    db_bind_int64(st, 3, e->conv.a);
    db_bind_int64(st, 4, e->conv.b);
    db_bind_int64(st, 5, e->from);
    db_bind_int64(st, 6, e->mid);
    rc = db_step(st);
    int64_t id = 0;
    if (rc == DB_ROW) {
        e->found = true;
        id = db_column_int64(st, 0);
        e->too_old = e->time_limit > 0 && e->now - db_column_int64(st, 1) > e->time_limit;
        e->old_bytes = db_column_int64(st, 2);
    }
    db_release(st);
    if (rc != DB_ROW)
        return rc == DB_DONE ? DB_OK : rc;
    if (e->too_old)
        return DB_OK;
    rc = db_stmt(db, "UPDATE messages SET msg = ?1, attrs = ?2, is_binary = ?3 WHERE id = ?4", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_blob(st, 1, e->msg_len ? (const void *)e->msg : "", (int)e->msg_len);
    db_bind_text(st, 2, e->attrs_len ? e->attrs : "", (int)e->attrs_len);
    db_bind_int(st, 3, e->binary);
    db_bind_int64(st, 4, id);
    return db_step_release(st);
}

static void edit_done(void *arg, int status)
{
    edit *e = arg;
    rtmd_request *req = e->req;
    int64_t grown = (int64_t)(e->msg_len + e->attrs_len) - e->old_bytes;
    bool changed = status == DB_OK && e->found && !e->too_old;
    quota_release(req->srv, e->pid, e->reserved, changed && grown > 0 ? (uint64_t)grown : 0);
    if (status != DB_OK)
        module_answer_store_failure(req, status);
    else if (!e->found)
        request_error(req, RTM_EC_MESSAGE_NOT_FOUND, "message not found");
    else if (e->too_old)
        request_error(req, RTM_EC_PERMISSION_DENIED, "message older than timeLimit");
    else
        request_answer_empty(req);
    free(e);
}

/* A str or bin field; *binary tells which. Missing or nil: "" when
 * optional. Answers and returns false on a wrong type. */
static bool arg_text(rtmd_request *req, const char *key, bool optional, const char **s, size_t *len, bool *binary)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    *s = "";
    *len = 0;
    if (binary)
        *binary = false;
    if (optional && (!o || o->type == MSGPACK_OBJECT_NIL))
        return true;
    if (!o || (o->type != MSGPACK_OBJECT_STR && o->type != MSGPACK_OBJECT_BIN)) {
        req_arg_error(req, key);
        return false;
    }
    if (binary)
        *binary = o->type == MSGPACK_OBJECT_BIN;
    *s = o->type == MSGPACK_OBJECT_BIN ? o->via.bin.ptr : o->via.str.ptr;
    *len = o->type == MSGPACK_OBJECT_BIN ? o->via.bin.size : o->via.str.size;
    return true;
}

/* server: editmsg {mid, from, xid, type, msg, attrs, timeLimit} -> {}: the
 * message keeps its id, mid, mtype and mtime; msg and attrs are replaced.
 * timeLimit (ms) > 0: a message older than that is not edited (200021). */
static void method_editmsg(rtmd_request *req)
{
    int64_t mid, from, type, xid, limit = 0;
    edit *e = calloc(1, sizeof *e);
    if (!e) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    if (!req_arg_int64(req, "mid", &mid) || !req_arg_int64(req, "from", &from) || !arg_conv_type(req, &type, &xid) ||
        !arg_text(req, "msg", false, &e->msg, &e->msg_len, &e->binary) ||
        !arg_text(req, "attrs", true, &e->attrs, &e->attrs_len, NULL) || !hist_opt_i64(req, "timeLimit", &limit, NULL)) {
        free(e);
        return;
    }
    const rtmd_project_config *lim = &req->project->limits;
    if (e->msg_len > lim->max_msg_bytes || e->attrs_len > lim->max_attrs_bytes) {
        free(e);
        request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, "too large msg or attrs");
        return;
    }
    e->reserved = e->msg_len + e->attrs_len;
    if (quota_admit(req, 0, e->reserved) != 0) {
        free(e);
        return;
    }
    e->req = req;
    e->pid = req->project->pid;
    e->from = from;
    e->mid = mid;
    e->conv = conv_of((int)type, from, xid);
    e->time_limit = limit;
    e->now = clock_unix_ms();
    if (store_submit(req->srv->store, apply_edit, edit_done, e) != 0) {
        quota_release(req->srv, e->pid, e->reserved, 0);
        free(e);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

/* ---- addsessions / removesessions ---- */

typedef struct sessions_write {
    rtmd_request *req;
    bool add;
    int64_t pid, uid;
    uint32_t n;
    int64_t *uids;
} sessions_write;

static int apply_sessions(db_conn *db, void *arg)
{
    sessions_write *w = arg;
    db_stmt_t *peer = NULL, *mark = NULL, *last = NULL;
    int rc;
    if (w->add) {
        /* Known to both users; shown again if it was removed. */
        if ((rc = db_stmt(db, "INSERT INTO p2p_peers(pid, uid, peer) VALUES (?1, ?2, ?3), (?1, ?3, ?2)"
                                " ON CONFLICT DO NOTHING",
                            &peer)) != DB_OK)
            return rc;
        rc = db_stmt(db,
                       "UPDATE conversation_marks SET removed_id = 0 WHERE pid = ?1 AND uid = ?2 AND conv_type = 1"
                       " AND xid = ?3",
                       &mark);
    } else {
        /* As removesession: read and hidden until a newer message. */
        if ((rc = db_stmt(db,
                            "SELECT COALESCE(" CONV_NEWEST_ID_SQL("?1", "1", "min(?2, ?3)", "max(?2, ?3)") ", 0)",
                            &last)) != DB_OK)
            return rc;
        rc = db_stmt(db,
                       "INSERT INTO conversation_marks(pid, uid, conv_type, xid, read_id, removed_id)"
                       " VALUES (?1, ?2, 1, ?3, ?4, ?4) ON CONFLICT(pid, uid, conv_type, xid) DO UPDATE SET"
                       " read_id = MAX(conversation_marks.read_id, excluded.read_id),"
                       " removed_id = MAX(conversation_marks.removed_id, excluded.removed_id)",
                       &mark);
    }
    for (uint32_t i = 0; i < w->n && rc == DB_OK; i++) {
        int64_t other = w->uids[i];
        if (other == w->uid)
            continue;
        int64_t last_id = 0;
        if (peer) {
            db_reset(peer);
            db_bind_int64(peer, 1, w->pid);
            db_bind_int64(peer, 2, w->uid);
            db_bind_int64(peer, 3, other);
            rc = db_step(peer);
            if (rc != DB_DONE)
                break;
        }
        if (last) {
            db_reset(last);
            db_bind_int64(last, 1, w->pid);
            db_bind_int64(last, 2, w->uid);
            db_bind_int64(last, 3, other);
            rc = db_step(last);
            if (rc != DB_ROW)
                break;
            last_id = db_column_int64(last, 0);
        }
        db_reset(mark);
        db_bind_int64(mark, 1, w->pid);
        db_bind_int64(mark, 2, w->uid);
        db_bind_int64(mark, 3, other);
        if (!w->add)
            db_bind_int64(mark, 4, last_id);
        rc = db_step(mark);
        rc = rc == DB_DONE ? DB_OK : rc;
    }
    if (peer)
        db_release(peer);
    if (last)
        db_release(last);
    db_release(mark);
    return rc == DB_DONE || rc == DB_ROW ? DB_OK : rc;
}

static void sessions_done(void *arg, int status)
{
    sessions_write *w = arg;
    if (status != DB_OK)
        module_answer_store_failure(w->req, status);
    else
        request_answer_empty(w->req);
    free(w->uids);
    free(w);
}

/* server: addsessions / removesessions {uid, uids} -> {} */
static void method_sessions(rtmd_request *req)
{
    int64_t uid;
    if (!req_arg_int64(req, "uid", &uid))
        return;
    sessions_write *w = calloc(1, sizeof *w);
    if (!w) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    if (!req_arg_ids(req, "uids", SESSIONS_UIDS_MAX, false, &w->uids, &w->n)) {
        free(w);
        return;
    }
    w->req = req;
    w->add = strcmp(req->method, "addsessions") == 0;
    w->pid = req->project->pid;
    w->uid = uid;
    if (store_submit(req->srv->store, apply_sessions, sessions_done, w) != 0) {
        free(w->uids);
        free(w);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

static const rtmd_method history_admin_methods[] = {
    {"cleanmsg", GATES_SERVER, method_cleanmsg, 0},
    {"delconversationmsgs", GATES_SERVER, method_delconversationmsgs, 0},
    {"clearusermsg", GATES_SERVER, method_clearusermsg, 0},
    {"clearprojectmsg", GATES_SERVER, method_clearprojectmsg, 0},
    {"editmsg", GATES_SERVER, method_editmsg, 0},
    {"addsessions", GATES_SERVER, method_sessions, 0},
    {"removesessions", GATES_SERVER, method_sessions, 0},
};

const rtmd_module history_admin_module = {
    .name = "history_admin",
    RTMD_MODULE_METHODS(history_admin_methods),
};
