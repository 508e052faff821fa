/* The history module (history.h): its life cycle and method table, and
 * the history of one conversation on both gates: pages (getp2pmsg,
 * getgroupmsg, getroommsg, getbroadcastmsg), single messages (getmsg,
 * delmsg) and counts (getmsgnum). Unread state and conversation lists are
 * conversations.c's, the retention job retention.c's, the shared job
 * plumbing history_job.c's.
 *
 * Shape: a handler checks arguments and rights on the loop, then queues one
 * job: a read on the store's reader pool that copies what it finds into the
 * job, and, when the method changes state (delmsg, markers), a write on the
 * writer thread. The answer goes out from the last done callback, so a
 * marker moved by a read is on disk before the caller sees the answer. */
#include "history_internal.h"

#include "cluster.h"
#include "groups.h"
#include "messages.h"
#include "identity.h"
#include "rooms.h"
#include "strid.h"
#include "users.h"
#include "rtm_errors.h"
#include "module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- history pages ---- */

static void set_conv(hjob *j, conv_key k)
{
    j->conv_type = k.conv_type;
    j->conv_a = k.a;
    j->conv_b = k.b;
}

static int read_history_txn(db_conn *db, hjob *j)
{
    char sql[512 + MTYPES_SQL_MAX];
    snprintf(sql, sizeof sql,
             "SELECT " MSG_COLS " FROM conv_messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
             " AND mtime >= ?5 AND mtime <= ?6 AND id %s ?7%s ORDER BY id %s LIMIT ?8",
             j->desc ? "<" : ">", j->mtypes, j->desc ? "DESC" : "ASC");
    db_stmt_t *st;
    int rc = db_stmt(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    hist_bind_conv(st, j, j->conv_type, j->conv_a, j->conv_b);
    db_bind_int64(st, 5, j->begin > 0 ? j->begin : INT64_MIN);
    db_bind_int64(st, 6, j->end > 0 ? j->end : INT64_MAX);
    db_bind_int64(st, 7, j->lastid > 0 ? j->lastid : (j->desc ? INT64_MAX : INT64_MIN));
    db_bind_int64(st, 8, j->num);
    j->msgs = calloc((size_t)j->num + 1, sizeof *j->msgs);
    if (!j->msgs) {
        db_release(st);
        return DB_NOMEM;
    }
    size_t bytes = 0;
    while ((rc = db_step(st)) == DB_ROW && j->nmsgs < (size_t)j->num) {
        hmsg *m = &j->msgs[j->nmsgs];
        rc = hmsg_from_row(st, m);
        if (rc != DB_OK)
            break;
        bytes += hmsg_cost(m) + (j->named_from ? IDENTITY_STRING_MAX : 0);
        if (j->nmsgs > 0 && bytes > j->answer_budget) {
            /* The page ends here; lastid lets the caller go on. */
            hmsg_free(m);
            break;
        }
        j->nmsgs++;
    }
    db_release(st);
    return rc == DB_DONE || rc == DB_ROW ? DB_OK : rc;
}

static int read_history(db_conn *db, void *arg)
{
    return hist_in_read_txn(db, read_history_txn, arg);
}

static void history_done(void *arg, int status)
{
    hjob *j = arg;
    if (status != DB_OK) {
        hjob_fail(j, status);
        return;
    }
    bool p2p = j->conv_type == CONV_P2P;
    int64_t lastid = j->lastid, begin = j->begin, end = j->end, max_id = 0;
    if (j->nmsgs > 0) {
        const hmsg *last = &j->msgs[j->nmsgs - 1];
        lastid = last->id;
        if (j->desc)
            end = last->mtime;
        else
            begin = last->mtime;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &j->answer, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    mp_pack_kv_int(&pk, "num", (int64_t)j->nmsgs);
    mp_pack_kv_int(&pk, "lastid", lastid);
    mp_pack_kv_int(&pk, "begin", begin);
    mp_pack_kv_int(&pk, "end", end);
    mp_pack_cstr(&pk, "msgs");
    msgpack_pack_array(&pk, (uint32_t)j->nmsgs);
    for (size_t i = 0; i < j->nmsgs; i++) {
        const char *from_s = j->named_from ? strid_name_of(j->req->srv, j->pid, j->msgs[i].from_uid) : NULL;
        hmsg_pack(&pk, &j->msgs[i], p2p, j->uid, from_s);
        if (j->msgs[i].id > max_id)
            max_id = j->msgs[i].id;
    }
    j->answer_ready = true;
    /* Reading a page of one's own p2p or group history reads it. */
    j->mark_type = -1;
    if (j->client && (p2p || j->conv_type == CONV_GROUP) && max_id > 0) {
        j->mark_type = j->conv_type;
        j->mark_xid = p2p ? (j->conv_a == j->uid ? j->conv_b : j->conv_a) : j->conv_a;
        j->mark_id = max_id;
    }
    hjob_finish_with_mark(j);
}

static void history_read(hjob *j)
{
    if (store_read(j->req->srv->store, read_history, history_done, j) != 0) {
        request_error(j->req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        hjob_free(j);
    }
}

/* A client's getroommsg of a room it is in on no session of this node: it
 * reads the history when it is in the room through another node (rooms are
 * per user and node, docs/cluster.md "Rooms across nodes"). */
static void history_room_checked(rtmd_server *srv, void *arg, const idset *per_rid, bool partial)
{
    (void)srv;
    (void)partial; /* a node that could not be read counts as "not in it" */
    hjob *j = arg;
    if (!idset_has(&per_rid[0], j->uid)) {
        request_error(j->req, RTM_EC_NOT_IN_ROOM, "not in room");
        hjob_free(j);
        return;
    }
    history_read(j);
}

/* getp2pmsg / getgroupmsg / getroommsg / getbroadcastmsg on both gates:
 * server {uid, ouid} / {gid, uid?} / {rid, uid?} / {uid?}; client {ouid} /
 * {gid} / {rid} / {}; plus {desc, num, begin?, end?, lastid?, mtypes?}. */
static void method_history(rtmd_request *req)
{
    int type = strcmp(req->method, "getp2pmsg") == 0     ? CONV_P2P
               : strcmp(req->method, "getgroupmsg") == 0 ? CONV_GROUP
               : strcmp(req->method, "getroommsg") == 0  ? CONV_ROOM
                                                         : CONV_BROADCAST;
    bool client = req->gate != GATE_SERVER_TCP;
    int64_t uid = client ? req->uid : 0, x = 0, num, begin = 0, end = 0, lastid = 0;
    bool desc = false;
    if (type == CONV_P2P) {
        if ((!client && !req_arg_int64(req, "uid", &uid)) || !req_arg_int64(req, "ouid", &x))
            return;
    } else if (type == CONV_GROUP) {
        if (!req_arg_int64(req, "gid", &x))
            return;
    } else if (type == CONV_ROOM) {
        if (!req_arg_int64(req, "rid", &x))
            return;
    }
    if (!client && type != CONV_P2P && !hist_opt_i64(req, "uid", &uid, NULL))
        return;
    if (!req_arg_int64(req, "num", &num) || !hist_opt_i64(req, "begin", &begin, NULL) || !hist_opt_i64(req, "end", &end, NULL) ||
        !hist_opt_i64(req, "lastid", &lastid, NULL))
        return;
    const msgpack_object *d = mp_map_get(req->args, "desc");
    if (d && d->type == MSGPACK_OBJECT_BOOLEAN)
        desc = d->via.boolean;
    else if (d && d->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        desc = d->via.u64 != 0;
    if (client && type == CONV_GROUP && !groups_is_member(req->srv, req->project->pid, x, uid)) {
        request_error(req, RTM_EC_NOT_GROUP_MEMBER, "not group member");
        return;
    }
    bool ask_nodes = false; /* in the room on no node? the other nodes may know */
    if (client && type == CONV_ROOM && !rooms_is_member(req->srv, req->project->pid, x, uid)) {
        if (!cluster_enabled(req->srv)) {
            request_error(req, RTM_EC_NOT_IN_ROOM, "not in room");
            return;
        }
        ask_nodes = true;
    }
    hjob *j = hjob_new(req, J_HISTORY);
    if (!j)
        return;
    if (!hist_arg_mtypes(req, j->mtypes, sizeof j->mtypes, false)) {
        hjob_free(j);
        return;
    }
    j->uid = uid;
    const rtmd_session *s = client ? users_session(req->conn) : NULL;
    j->named_from = type == CONV_ROOM && s && s->string_id;
    set_conv(j, conv_of(type, uid, x));
    j->desc = desc;
    j->num = num < 0 ? 0 : num > HISTORY_NUM_MAX ? HISTORY_NUM_MAX : num;
    j->begin = begin;
    j->end = end;
    j->lastid = lastid;
    if (ask_nodes) {
        if (cluster_room_members(req->srv, req->project->pid, &x, 1, history_room_checked, j) != 0) {
            request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
            hjob_free(j);
        }
        return;
    }
    history_read(j);
}

/* ---- getmsg, delmsg, getmsgnum ---- */

static int read_getmsg(db_conn *db, void *arg)
{
    hjob *j = arg;
    db_stmt_t *st;
    int rc = db_stmt(db,
                  "SELECT " MSG_COLS " FROM messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
                  " AND from_uid = ?5 AND mid = ?6 ORDER BY id LIMIT 1",
                  &st);
    if (rc != DB_OK)
        return rc;
    hist_bind_conv(st, j, j->conv_type, j->conv_a, j->conv_b);
    db_bind_int64(st, 5, j->from);
    db_bind_int64(st, 6, j->mid);
    bool row = false;
    rc = db_step_row(st, &row);
    if (rc == DB_OK && row) {
        rc = hmsg_from_row(st, &j->one);
        j->found = rc == DB_OK && !j->one.deleted;
    }
    db_release(st);
    return rc;
}

static void getmsg_done(void *arg, int status)
{
    hjob *j = arg;
    msgpack_packer pk;
    if (status == DB_OK && !j->found) {
        /* An absent or deleted message is the SDKs' error 200070: the Go
         * SDK reads id, mtype, msg, ... from any successful answer, and
         * an empty map fails there instead of naming what happened. */
        request_error(j->req, RTM_EC_MESSAGE_NOT_FOUND, "message not found");
        hjob_free(j);
        return;
    }
    if (!hjob_answer_begin(j, status, &pk))
        return;
    msgpack_pack_map(&pk, 5);
    mp_pack_kv_int(&pk, "id", j->one.id);
    mp_pack_kv_int(&pk, "mtype", j->one.mtype);
    mp_pack_cstr(&pk, "msg");
    hmsg_pack_body(&pk, &j->one);
    mp_pack_cstr(&pk, "attrs");
    msgpack_pack_str(&pk, j->one.attrs_len);
    msgpack_pack_str_body(&pk, j->one.attrs, j->one.attrs_len);
    mp_pack_kv_int(&pk, "mtime", j->one.mtime);
    hjob_answer(j);
}

static int apply_delmsg(db_conn *db, void *arg)
{
    hjob *j = arg;
    db_stmt_t *st;
    int rc = db_stmt(db,
                  "UPDATE messages SET deleted = 1 WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
                  " AND from_uid = ?5 AND mid = ?6 AND deleted = 0",
                  &st);
    if (rc != DB_OK)
        return rc;
    hist_bind_conv(st, j, j->conv_type, j->conv_a, j->conv_b);
    db_bind_int64(st, 5, j->from);
    db_bind_int64(st, 6, j->mid);
    return db_step_release(st);
}

/* getmsg / delmsg {mid, from, xid, type} on both gates. A client may read a
 * message of a conversation it is part of, and delete only its own. */
static void method_getmsg_delmsg(rtmd_request *req)
{
    bool del = strcmp(req->method, "delmsg") == 0;
    int64_t mid, from, xid = 0, type;
    if (!req_arg_int64(req, "mid", &mid) || !req_arg_int64(req, "from", &from) || !req_arg_int64(req, "type", &type))
        return;
    if (type != CONV_BROADCAST && !req_arg_int64(req, "xid", &xid))
        return;
    if (type < CONV_P2P || type > CONV_BROADCAST) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid 'type'");
        return;
    }
    if (req->gate != GATE_SERVER_TCP) {
        int64_t me = req->uid, pid = req->project->pid;
        if (del && from != me) {
            request_error(req, RTM_EC_PERMISSION_DENIED, "only the sender may delete a message");
            return;
        }
        if (!del && type == CONV_P2P && from != me && xid != me) {
            request_error(req, RTM_EC_PERMISSION_DENIED, "not a message of this user");
            return;
        }
        if (!del && type == CONV_GROUP && !groups_is_member(req->srv, pid, xid, me)) {
            request_error(req, RTM_EC_NOT_GROUP_MEMBER, "not group member");
            return;
        }
        if (!del && type == CONV_ROOM && !rooms_is_member(req->srv, pid, xid, me)) {
            request_error(req, RTM_EC_NOT_IN_ROOM, "not in room");
            return;
        }
    }
    hjob *j = hjob_new(req, del ? J_DELMSG : J_GETMSG);
    if (!j)
        return;
    set_conv(j, conv_of((int)type, from, xid));
    j->from = from;
    j->mid = mid;
    int rc = del ? store_submit(req->srv->store, apply_delmsg, hjob_write_done, j)
                 : store_read(req->srv->store, read_getmsg, getmsg_done, j);
    if (rc != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        hjob_free(j);
    }
}

static int read_msgnum(db_conn *db, void *arg)
{
    hjob *j = arg;
    char sql[512 + MTYPES_SQL_MAX];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(DISTINCT from_uid), COUNT(*) FROM conv_messages WHERE pid = ?1 AND conv_type = ?2"
             " AND conv_a = ?3 AND conv_b = ?4 AND deleted = 0 AND mtime >= ?5 AND mtime <= ?6%s",
             j->mtypes);
    db_stmt_t *st;
    int rc = db_stmt(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    hist_bind_conv(st, j, j->conv_type, j->conv_a, j->conv_b);
    db_bind_int64(st, 5, j->begin > 0 ? j->begin : INT64_MIN);
    db_bind_int64(st, 6, j->end > 0 ? j->end : INT64_MAX);
    rc = db_step(st);
    if (rc == DB_ROW) {
        j->sender = db_column_int64(st, 0);
        j->count = db_column_int64(st, 1);
        rc = DB_OK;
    }
    db_release(st);
    return rc;
}

static void msgnum_done(void *arg, int status)
{
    hjob *j = arg;
    msgpack_packer pk;
    if (!hjob_answer_begin(j, status, &pk))
        return;
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_int(&pk, "sender", j->sender);
    mp_pack_kv_int(&pk, "num", j->count);
    hjob_answer(j);
}

/* server: getmsgnum {type: 2 group | 3 room | 4 broadcast, xid, mtypes?,
 * begin?, end?} -> {sender, num} */
static void method_getmsgnum(rtmd_request *req)
{
    int64_t type, xid = 0, begin = 0, end = 0;
    if (!req_arg_int64(req, "type", &type))
        return;
    if (type < CONV_GROUP || type > CONV_BROADCAST) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid 'type': 2 group, 3 room or 4 broadcast");
        return;
    }
    if (type != CONV_BROADCAST && !req_arg_int64(req, "xid", &xid))
        return;
    if (!hist_opt_i64(req, "begin", &begin, NULL) || !hist_opt_i64(req, "end", &end, NULL))
        return;
    hjob *j = hjob_new(req, J_MSGNUM);
    if (!j)
        return;
    if (!hist_arg_mtypes(req, j->mtypes, sizeof j->mtypes, false)) {
        hjob_free(j);
        return;
    }
    set_conv(j, conv_of((int)type, 0, xid));
    j->begin = begin;
    j->end = end;
    if (store_read(req->srv->store, read_msgnum, msgnum_done, j) != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        hjob_free(j);
    }
}

/* ---- module life cycle ---- */

static int history_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct history_state *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->retention = history_retention_start(srv);
    if (!h->retention) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->history = h;
    return 0;
}

static const rtmd_method history_methods[] = {
    {"getp2pmsg", GATES_SERVER | GATES_CLIENT, method_history, 0},
    {"getgroupmsg", GATES_SERVER | GATES_CLIENT, method_history, 0},
    {"getroommsg", GATES_SERVER | GATES_CLIENT, method_history, 0},
    {"getbroadcastmsg", GATES_SERVER | GATES_CLIENT, method_history, 0},
    {"getmsg", GATES_SERVER | GATES_CLIENT, method_getmsg_delmsg, 0},
    {"delmsg", GATES_SERVER | GATES_CLIENT, method_getmsg_delmsg, 0},
    {"getmsgnum", GATES_SERVER, method_getmsgnum, 0},
    {"getunread", GATES_CLIENT, conv_method_getunread, 0},
    {"cleanunread", GATES_CLIENT, conv_method_mark, 0},
    {"getsession", GATES_CLIENT, conv_method_getsession, 0},
    {"removesession", GATES_CLIENT, conv_method_mark, 0},
    {"getp2punread", GATES_CLIENT, conv_method_unread_counts, 0},
    {"getgroupunread", GATES_CLIENT, conv_method_unread_counts, 0},
    {"getp2pconversationlist", GATES_CLIENT, conv_method_convlist, 0},
    {"getp2punreadconversationlist", GATES_CLIENT, conv_method_convlist, 0},
    {"getgroupconversationlist", GATES_CLIENT, conv_method_convlist, 0},
    {"getgroupunreadconversationlist", GATES_CLIENT, conv_method_convlist, 0},
    {"getunreadconversationlist", GATES_CLIENT, conv_method_convlist, 0},
};

static void history_free(rtmd_server *srv)
{
    struct history_state *h = srv->svc->history;
    if (!h)
        return;
    srv->svc->history = NULL;
    history_retention_stop(h->retention);
    free(h);
}

const rtmd_module history_module = {
    .name = "history",
    .init = history_init,
    .free = history_free,
    RTMD_MODULE_METHODS(history_methods),
};
