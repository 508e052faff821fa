/* History, unread state, conversation lists and retention: the read side of
 * the `messages` table that messages.c writes, on both gates (getp2pmsg,
 * getgroupmsg, getroommsg, getbroadcastmsg, getmsg, delmsg, getmsgnum),
 * the client gate's unread and conversation methods over the read markers
 * of `conversation_marks`, and the periodic retention job. Formats and the
 * meaning of "unread" are documented in history.h.
 *
 * Shape: a handler checks arguments and rights on the loop, then queues one
 * job: a read on the store's reader pool that copies what it finds into the
 * job, and, when the method changes state (delmsg, markers), a write on the
 * writer thread. The answer goes out from the last done callback, so a
 * marker moved by a read is on disk before the caller sees the answer. */
#include "history.h"

#include "groups.h"
#include "log.h"
#include "messages.h"
#include "methods.h"
#include "payload.h"
#include "rooms.h"
#include "rtm_errors.h"
#include "services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_COLS "id, from_uid, mtype, mid, deleted, msg, attrs, mtime, is_binary"
#define CHAT_MTYPES_SQL " AND mtype BETWEEN 30 AND 50"
#define MTYPES_SQL_MAX (HISTORY_MTYPES_MAX * 22 + 32)
#define SWEEP_TICK_MS 500
/* The newest message id of the server, the last row in rowid order. Ids are
 * server-wide and increasing, so it bounds every project's ids: "read up to
 * it" marks every message of a project that the snapshot holds. */
#define NEWEST_ID_SQL "SELECT MAX(id) FROM messages"
#define SWEEP_TASKS_MAX 100000
#define STR_(x) #x
#define STR(x) STR_(x)
#define HISTORY_SWEEP_BATCH_SQL STR(HISTORY_SWEEP_BATCH)

struct sweep;

struct history_state {
    rtmd_server *srv;
    uv_timer_t timer;
    bool timer_closed;
    bool swept;                /* the job ran at least once */
    uint64_t last_sweep_ms;
    struct sweep *sweep;       /* the run in progress, or NULL */
    int64_t swept_id;          /* conversations with no message above this were trimmed */
    uint64_t deleted;
    /* per project with history_days: the rows of that project below id were
     * examined by a completed days task (the next run starts there) */
    size_t ndays_done;
    struct {
        int64_t pid, id;
    } days_done[RTMD_MAX_PROJECTS];
};

uint64_t history_retention_deleted(rtmd_server *srv)
{
    return srv->svc && srv->svc->history ? srv->svc->history->deleted : 0;
}

/* ---- messages as read from the store ---- */

typedef struct hmsg {
    int64_t id, from_uid, mid, mtime;
    int64_t mtype;
    bool deleted, binary;
    char *msg, *attrs;
    size_t msg_len, attrs_len;
} hmsg;

static void hmsg_free(hmsg *m)
{
    free(m->msg);
    free(m->attrs);
    m->msg = m->attrs = NULL;
}

static char *copy_col(sqlite3_stmt *st, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    if (n)
        memcpy(out, p, n);
    out[n] = '\0';
    *len = n;
    return out;
}

/* Reads a row selected with MSG_COLS. A deleted message keeps no content. */
static int row_to_msg(sqlite3_stmt *st, hmsg *m)
{
    memset(m, 0, sizeof *m);
    m->id = sqlite3_column_int64(st, 0);
    m->from_uid = sqlite3_column_int64(st, 1);
    m->mtype = sqlite3_column_int64(st, 2);
    m->mid = sqlite3_column_int64(st, 3);
    m->deleted = sqlite3_column_int(st, 4) != 0;
    m->mtime = sqlite3_column_int64(st, 7);
    m->binary = sqlite3_column_int(st, 8) != 0;
    if (m->deleted) {
        m->msg = calloc(1, 1);
        m->attrs = calloc(1, 1);
    } else {
        m->msg = copy_col(st, 5, &m->msg_len);
        m->attrs = copy_col(st, 6, &m->attrs_len);
    }
    if (!m->msg || !m->attrs) {
        hmsg_free(m);
        return SQLITE_NOMEM;
    }
    return SQLITE_OK;
}

static void pack_msg_body(msgpack_packer *pk, const hmsg *m)
{
    if (m->binary) {
        msgpack_pack_bin(pk, m->msg_len);
        msgpack_pack_bin_body(pk, m->msg, m->msg_len);
    } else {
        msgpack_pack_str(pk, m->msg_len);
        msgpack_pack_str_body(pk, m->msg, m->msg_len);
    }
}

/* [id, from | direction, mtype, mid, deleted, msg, attrs, mtime]; with
 * self != 0 (p2p) the second item is 1 if self sent it, else 2. */
static void pack_msg(msgpack_packer *pk, const hmsg *m, bool p2p, int64_t self)
{
    msgpack_pack_array(pk, 8);
    msgpack_pack_int64(pk, m->id);
    if (p2p)
        msgpack_pack_int(pk, m->from_uid == self ? 1 : 2);
    else
        msgpack_pack_int64(pk, m->from_uid);
    msgpack_pack_int64(pk, m->mtype);
    msgpack_pack_int64(pk, m->mid);
    if (m->deleted)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_msg_body(pk, m);
    msgpack_pack_str(pk, m->attrs_len);
    msgpack_pack_str_body(pk, m->attrs, m->attrs_len);
    msgpack_pack_int64(pk, m->mtime);
}

/* ---- jobs ---- */

enum job_kind {
    J_HISTORY,
    J_GETMSG,
    J_DELMSG,
    J_MSGNUM,
    J_UNREAD,       /* getunread */
    J_SESSIONS,     /* getsession */
    J_P2PUNREAD,    /* getp2punread */
    J_GROUPUNREAD,  /* getgroupunread */
    J_CONVLIST,     /* the five conversation lists */
    J_CLEAN,        /* cleanunread */
    J_REMOVESESSION,
};

typedef struct conv_item {
    int64_t xid;
    int64_t last_id;
    int64_t unread;
    bool has_last;
    hmsg last;
} conv_item;

typedef struct conv_list {
    conv_item *v;
    size_t n, cap;
} conv_list;

typedef struct hjob {
    rtmd_request *req;
    enum job_kind kind;
    int64_t pid, uid;          /* uid: the caller, or the user asked about */
    bool client;

    /* one conversation (history, getmsg, delmsg, getmsgnum) */
    int conv_type;
    int64_t conv_a, conv_b;
    bool desc;
    int64_t num, begin, end, lastid;
    int64_t from, mid;         /* getmsg / delmsg */
    char mtypes[MTYPES_SQL_MAX];

    /* unread and lists */
    bool want_p2p, want_group, unread_only, clear, both_lists;
    bool mtime_given;
    int64_t mtime;
    int64_t *ids;              /* asked uids / the caller's gids */
    size_t nids;
    int64_t *gids;             /* getunread / getsession / lists: the caller's groups */
    size_t ngids;

    /* results */
    hmsg *msgs;
    size_t nmsgs;
    conv_list p2p, group;
    int64_t max_id;            /* newest message id of the project (clear) */
    int64_t sender, count;
    bool found;
    hmsg one;

    /* a marker write after the read: (mark_type, mark_xid) read up to mark_id */
    int mark_type;
    int64_t mark_xid, mark_id;
    bool mark_removed;
    msgpack_sbuffer answer;
    bool answer_ready;
    size_t answer_budget;      /* bytes of messages one answer may carry */
} hjob;

/* What one message adds to an answer, a generous bound of its packing. */
#define MSG_OVERHEAD 64

static size_t msg_cost(const hmsg *m)
{
    return m->msg_len + m->attrs_len + MSG_OVERHEAD;
}

static void conv_list_free(conv_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        hmsg_free(&l->v[i].last);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static conv_item *conv_list_add(conv_list *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        conv_item *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return NULL;
        l->v = v;
        l->cap = cap;
    }
    conv_item *c = &l->v[l->n++];
    memset(c, 0, sizeof *c);
    return c;
}

static hjob *job_new(rtmd_request *req, enum job_kind kind)
{
    hjob *j = calloc(1, sizeof *j);
    if (!j) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return NULL;
    }
    j->req = req;
    j->kind = kind;
    j->pid = req->project->pid;
    j->client = req->gate != GATE_SERVER_TCP;
    j->uid = j->client ? req->uid : 0;
    /* Answers stay within max_packet: a page of history or a conversation
     * list carries the messages that fit, at least one. */
    uint32_t max_packet = req->srv->cfg.max_packet;
    j->answer_budget = max_packet > 2 * 1024 ? max_packet - 1024 : max_packet / 2;
    msgpack_sbuffer_init(&j->answer);
    return j;
}

static void job_free(hjob *j)
{
    for (size_t i = 0; i < j->nmsgs; i++)
        hmsg_free(&j->msgs[i]);
    free(j->msgs);
    hmsg_free(&j->one);
    conv_list_free(&j->p2p);
    conv_list_free(&j->group);
    free(j->ids);
    free(j->gids);
    msgpack_sbuffer_destroy(&j->answer);
    free(j);
}

static void job_fail(hjob *j, int status)
{
    if (status == SQLITE_ABORT) {
        request_error(j->req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    } else {
        char m[RTM_LOG_STR_SIZE];
        LOG_ERROR("history: %s failed: %s", rtm_log_str(m, j->req->method, strlen(j->req->method)),
                  sqlite3_errstr(status));
        request_error(j->req, RTM_EC_UNKNOWN_ERROR, "storage error");
    }
    job_free(j);
}

static void job_answer(hjob *j)
{
    request_answer(j->req, &j->answer);
    job_free(j);
}

/* ---- argument helpers (answer the request on failure) ---- */

/* An optional integer: absent and nil leave *out as it is. */
static bool opt_i64(rtmd_request *req, const char *key, int64_t *out, bool *given)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    if (given)
        *given = false;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return true;
    if (!mp_obj_int64(o, out)) {
        char ex[80];
        snprintf(ex, sizeof ex, "invalid '%s'", key);
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, ex);
        return false;
    }
    if (given)
        *given = true;
    return true;
}

/* mtypes: an array of integers, at most HISTORY_MTYPES_MAX. Writes the SQL
 * condition into sql: the given types, else the chat types (chat_default)
 * or nothing. */
static bool arg_mtypes(rtmd_request *req, char *sql, size_t cap, bool chat_default)
{
    const msgpack_object *o = mp_map_get(req->args, "mtypes");
    sql[0] = '\0';
    if (!o || o->type == MSGPACK_OBJECT_NIL || (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 0)) {
        if (chat_default)
            snprintf(sql, cap, "%s", CHAT_MTYPES_SQL);
        return true;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid 'mtypes'");
        return false;
    }
    if (o->via.array.size > HISTORY_MTYPES_MAX) {
        request_error(req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, "too many mtypes");
        return false;
    }
    size_t len = (size_t)snprintf(sql, cap, " AND mtype IN (");
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        int64_t t;
        if (!mp_obj_int64(&o->via.array.ptr[i], &t)) {
            request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid 'mtypes'");
            return false;
        }
        len += (size_t)snprintf(sql + len, cap - len, "%s%lld", i ? "," : "", (long long)t);
    }
    snprintf(sql + len, cap - len, ")");
    return true;
}

static void set_conv(hjob *j, int type, int64_t x, int64_t y)
{
    j->conv_type = type;
    if (type == CONV_P2P) {
        j->conv_a = x < y ? x : y;
        j->conv_b = x < y ? y : x;
    } else if (type == CONV_BROADCAST) {
        j->conv_a = j->conv_b = 0;
    } else {
        j->conv_a = x;
        j->conv_b = 0;
    }
}

/* Copies the caller's groups (groups.c keeps them in memory). */
static bool copy_groups(hjob *j)
{
    size_t n = 0;
    const int64_t *g = groups_of_user(j->req->srv, j->pid, j->uid, &n);
    j->gids = calloc(n + 1, sizeof *j->gids);
    if (!j->gids)
        return false;
    if (n)
        memcpy(j->gids, g, n * sizeof *g);
    j->ngids = n;
    return true;
}

/* ---- SQL helpers (reader pool or writer thread) ---- */

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    if (rc != SQLITE_OK)
        LOG_ERROR("history: cannot prepare \"%s\": %s", sql, sqlite3_errmsg(db));
    return rc;
}

/* Binds ?1..?4 to the job's project and a conversation (pid, conv_type,
 * conv_a, conv_b), as every per-conversation query of this file names them. */
static void bind_conv(sqlite3_stmt *st, hjob *j, int type, int64_t a, int64_t b)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, j->pid);
    sqlite3_bind_int(st, 2, type);
    sqlite3_bind_int64(st, 3, a);
    sqlite3_bind_int64(st, 4, b);
}

static int64_t query_i64(sqlite3 *db, const char *sql, int64_t a, int64_t b, int *rc)
{
    sqlite3_stmt *st;
    int64_t v = 0;
    *rc = prep(db, sql, &st);
    if (*rc != SQLITE_OK)
        return 0;
    int np = sqlite3_bind_parameter_count(st);
    if (np >= 1)
        sqlite3_bind_int64(st, 1, a);
    if (np >= 2)
        sqlite3_bind_int64(st, 2, b);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else if (s != SQLITE_DONE)
        *rc = s;
    sqlite3_finalize(st);
    return v;
}

/* Runs fn inside one read transaction, so that it sees one snapshot. */
static int in_read_txn(sqlite3 *db, int (*fn)(sqlite3 *, hjob *), hjob *j)
{
    int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = fn(db, j);
    sqlite3_exec(db, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- history pages ---- */

static int read_history_txn(sqlite3 *db, hjob *j)
{
    char sql[512 + MTYPES_SQL_MAX];
    snprintf(sql, sizeof sql,
             "SELECT " MSG_COLS " FROM messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
             " AND mtime >= ?5 AND mtime <= ?6 AND id %s ?7%s ORDER BY id %s LIMIT ?8",
             j->desc ? "<" : ">", j->mtypes, j->desc ? "DESC" : "ASC");
    sqlite3_stmt *st;
    int rc = prep(db, sql, &st);
    if (rc != SQLITE_OK)
        return rc;
    bind_conv(st, j, j->conv_type, j->conv_a, j->conv_b);
    sqlite3_bind_int64(st, 5, j->begin > 0 ? j->begin : INT64_MIN);
    sqlite3_bind_int64(st, 6, j->end > 0 ? j->end : INT64_MAX);
    sqlite3_bind_int64(st, 7, j->lastid > 0 ? j->lastid : (j->desc ? INT64_MAX : INT64_MIN));
    sqlite3_bind_int64(st, 8, j->num);
    j->msgs = calloc((size_t)j->num + 1, sizeof *j->msgs);
    if (!j->msgs) {
        sqlite3_finalize(st);
        return SQLITE_NOMEM;
    }
    size_t bytes = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && j->nmsgs < (size_t)j->num) {
        hmsg *m = &j->msgs[j->nmsgs];
        rc = row_to_msg(st, m);
        if (rc != SQLITE_OK)
            break;
        bytes += msg_cost(m);
        if (j->nmsgs > 0 && bytes > j->answer_budget) {
            /* The page ends here; lastid lets the caller go on. */
            hmsg_free(m);
            break;
        }
        j->nmsgs++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int read_history(sqlite3 *db, void *arg)
{
    return in_read_txn(db, read_history_txn, arg);
}

static int apply_mark(sqlite3 *db, void *arg)
{
    hjob *j = arg;
    sqlite3_stmt *st;
    const char *sql =
        j->mark_removed
            ? "INSERT INTO conversation_marks(pid, uid, conv_type, xid, read_id, removed_id) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
              " ON CONFLICT(pid, uid, conv_type, xid) DO UPDATE SET read_id = MAX(read_id, excluded.read_id),"
              " removed_id = MAX(removed_id, excluded.removed_id)"
            : "INSERT INTO conversation_marks(pid, uid, conv_type, xid, read_id) VALUES (?1, ?2, ?3, ?4, ?5)"
              " ON CONFLICT(pid, uid, conv_type, xid) DO UPDATE SET read_id = MAX(read_id, excluded.read_id)";
    int rc = prep(db, sql, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, j->pid);
    sqlite3_bind_int64(st, 2, j->uid);
    sqlite3_bind_int(st, 3, j->mark_type);
    sqlite3_bind_int64(st, 4, j->mark_xid);
    sqlite3_bind_int64(st, 5, j->mark_id);
    return store_step_finalize(st);
}

/* A history write (read marker, delmsg) committed: answers what the job
 * prepared, or {}. */
static void write_done(void *arg, int status)
{
    hjob *j = arg;
    if (status != SQLITE_OK) {
        job_fail(j, status);
        return;
    }
    if (!j->answer_ready)
        msgpack_sbuffer_write(&j->answer, "\x80", 1);
    job_answer(j);
}

/* Answers now, or after the marker write when the job asks for one. */
static void finish_with_mark(hjob *j)
{
    if (j->mark_type < 0 || (j->mark_id <= 0 && !j->mark_removed)) {
        if (!j->answer_ready)
            msgpack_sbuffer_write(&j->answer, "\x80", 1);
        job_answer(j);
        return;
    }
    if (store_submit(j->req->srv->store, apply_mark, write_done, j) != 0) {
        request_error(j->req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        job_free(j);
    }
}

static void history_done(void *arg, int status)
{
    hjob *j = arg;
    if (status != SQLITE_OK) {
        job_fail(j, status);
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
        pack_msg(&pk, &j->msgs[i], p2p, j->uid);
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
    finish_with_mark(j);
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
    if (!client && type != CONV_P2P && !opt_i64(req, "uid", &uid, NULL))
        return;
    if (!req_arg_int64(req, "num", &num) || !opt_i64(req, "begin", &begin, NULL) || !opt_i64(req, "end", &end, NULL) ||
        !opt_i64(req, "lastid", &lastid, NULL))
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
    if (client && type == CONV_ROOM && !rooms_is_member(req->srv, req->project->pid, x, uid)) {
        request_error(req, RTM_EC_NOT_IN_ROOM, "not in room");
        return;
    }
    hjob *j = job_new(req, J_HISTORY);
    if (!j)
        return;
    if (!arg_mtypes(req, j->mtypes, sizeof j->mtypes, false)) {
        job_free(j);
        return;
    }
    j->uid = uid;
    set_conv(j, type, type == CONV_P2P ? uid : x, x);
    j->desc = desc;
    j->num = num < 0 ? 0 : num > HISTORY_NUM_MAX ? HISTORY_NUM_MAX : num;
    j->begin = begin;
    j->end = end;
    j->lastid = lastid;
    if (store_read(req->srv->store, read_history, history_done, j) != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        job_free(j);
    }
}

/* ---- getmsg, delmsg, getmsgnum ---- */

static int read_getmsg(sqlite3 *db, void *arg)
{
    hjob *j = arg;
    sqlite3_stmt *st;
    int rc = prep(db,
                  "SELECT " MSG_COLS " FROM messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
                  " AND from_uid = ?5 AND mid = ?6 ORDER BY id LIMIT 1",
                  &st);
    if (rc != SQLITE_OK)
        return rc;
    bind_conv(st, j, j->conv_type, j->conv_a, j->conv_b);
    sqlite3_bind_int64(st, 5, j->from);
    sqlite3_bind_int64(st, 6, j->mid);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        rc = row_to_msg(st, &j->one);
        j->found = rc == SQLITE_OK && !j->one.deleted;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static void getmsg_done(void *arg, int status)
{
    hjob *j = arg;
    if (status != SQLITE_OK) {
        job_fail(j, status);
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &j->answer, msgpack_sbuffer_write);
    if (!j->found) {
        msgpack_pack_map(&pk, 0);
    } else {
        msgpack_pack_map(&pk, 5);
        mp_pack_kv_int(&pk, "id", j->one.id);
        mp_pack_kv_int(&pk, "mtype", j->one.mtype);
        mp_pack_cstr(&pk, "msg");
        pack_msg_body(&pk, &j->one);
        mp_pack_cstr(&pk, "attrs");
        msgpack_pack_str(&pk, j->one.attrs_len);
        msgpack_pack_str_body(&pk, j->one.attrs, j->one.attrs_len);
        mp_pack_kv_int(&pk, "mtime", j->one.mtime);
    }
    job_answer(j);
}

static int apply_delmsg(sqlite3 *db, void *arg)
{
    hjob *j = arg;
    sqlite3_stmt *st;
    int rc = prep(db,
                  "UPDATE messages SET deleted = 1 WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
                  " AND from_uid = ?5 AND mid = ?6 AND deleted = 0",
                  &st);
    if (rc != SQLITE_OK)
        return rc;
    bind_conv(st, j, j->conv_type, j->conv_a, j->conv_b);
    sqlite3_bind_int64(st, 5, j->from);
    sqlite3_bind_int64(st, 6, j->mid);
    return store_step_finalize(st);
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
    hjob *j = job_new(req, del ? J_DELMSG : J_GETMSG);
    if (!j)
        return;
    set_conv(j, (int)type, type == CONV_P2P ? from : xid, xid);
    j->from = from;
    j->mid = mid;
    int rc = del ? store_submit(req->srv->store, apply_delmsg, write_done, j)
                 : store_read(req->srv->store, read_getmsg, getmsg_done, j);
    if (rc != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        job_free(j);
    }
}

static int read_msgnum(sqlite3 *db, void *arg)
{
    hjob *j = arg;
    char sql[512 + MTYPES_SQL_MAX];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(DISTINCT from_uid), COUNT(*) FROM messages WHERE pid = ?1 AND conv_type = ?2"
             " AND conv_a = ?3 AND conv_b = ?4 AND deleted = 0 AND mtime >= ?5 AND mtime <= ?6%s",
             j->mtypes);
    sqlite3_stmt *st;
    int rc = prep(db, sql, &st);
    if (rc != SQLITE_OK)
        return rc;
    bind_conv(st, j, j->conv_type, j->conv_a, j->conv_b);
    sqlite3_bind_int64(st, 5, j->begin > 0 ? j->begin : INT64_MIN);
    sqlite3_bind_int64(st, 6, j->end > 0 ? j->end : INT64_MAX);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        j->sender = sqlite3_column_int64(st, 0);
        j->count = sqlite3_column_int64(st, 1);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static void msgnum_done(void *arg, int status)
{
    hjob *j = arg;
    if (status != SQLITE_OK) {
        job_fail(j, status);
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &j->answer, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_int(&pk, "sender", j->sender);
    mp_pack_kv_int(&pk, "num", j->count);
    job_answer(j);
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
    if (!opt_i64(req, "begin", &begin, NULL) || !opt_i64(req, "end", &end, NULL))
        return;
    hjob *j = job_new(req, J_MSGNUM);
    if (!j)
        return;
    if (!arg_mtypes(req, j->mtypes, sizeof j->mtypes, false)) {
        job_free(j);
        return;
    }
    set_conv(j, (int)type, xid, 0);
    j->begin = begin;
    j->end = end;
    if (store_read(req->srv->store, read_msgnum, msgnum_done, j) != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        job_free(j);
    }
}

/* ---- unread and conversations ---- */

/* Statements one conversation scan reuses. */
typedef struct conv_q {
    sqlite3_stmt *mark, *count, *last, *any;
    int64_t all_mark;          /* the user's marker for all conversations */
} conv_q;

static void conv_q_free(conv_q *q)
{
    sqlite3_finalize(q->mark);
    sqlite3_finalize(q->count);
    sqlite3_finalize(q->last);
    sqlite3_finalize(q->any);
}

static int conv_q_init(sqlite3 *db, hjob *j, conv_q *q)
{
    char sql[512 + MTYPES_SQL_MAX];
    int rc;
    memset(q, 0, sizeof *q);
    q->all_mark = query_i64(db,
                            "SELECT read_id FROM conversation_marks WHERE pid = ?1 AND uid = ?2 AND conv_type = 0"
                            " AND xid = 0",
                            j->pid, j->uid, &rc);
    if (rc != SQLITE_OK)
        return rc;
    if ((rc = prep(db,
                   "SELECT read_id, removed_id FROM conversation_marks WHERE pid = ?1 AND uid = ?2 AND conv_type = ?3"
                   " AND xid = ?4",
                   &q->mark)) != SQLITE_OK)
        return rc;
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
             " AND id > ?5 AND from_uid <> ?6 AND deleted = 0 AND mtime > ?7%s",
             j->mtypes);
    if ((rc = prep(db, sql, &q->count)) != SQLITE_OK)
        return rc;
    snprintf(sql, sizeof sql,
             "SELECT " MSG_COLS " FROM messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
             " AND deleted = 0%s ORDER BY id DESC LIMIT 1",
             j->mtypes);
    if ((rc = prep(db, sql, &q->last)) != SQLITE_OK)
        return rc;
    return prep(db,
                "SELECT MAX(id) FROM messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4",
                &q->any);
}

/* The conversation of the calling user with xid (a peer or a gid). */
static conv_key user_conv(const hjob *j, int type, int64_t xid)
{
    return type == CONV_P2P ? conv_p2p(j->uid, xid) : (conv_key){type, xid, 0};
}

/* The conversation's markers: read (the effective one) and removed. */
static int conv_marks(conv_q *q, hjob *j, int type, int64_t xid, int64_t *read, int64_t *removed)
{
    sqlite3_reset(q->mark);
    sqlite3_bind_int64(q->mark, 1, j->pid);
    sqlite3_bind_int64(q->mark, 2, j->uid);
    sqlite3_bind_int(q->mark, 3, type);
    sqlite3_bind_int64(q->mark, 4, xid);
    *read = q->all_mark;
    *removed = 0;
    int rc = sqlite3_step(q->mark);
    if (rc == SQLITE_ROW) {
        int64_t r = sqlite3_column_int64(q->mark, 0);
        if (r > *read)
            *read = r;
        *removed = sqlite3_column_int64(q->mark, 1);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(q->mark);
    return rc;
}

/* Fills unread (and the last message when with_last) of one conversation. */
static int conv_stats(conv_q *q, hjob *j, int type, int64_t xid, conv_item *c, bool with_last)
{
    int64_t read, removed;
    conv_key k = user_conv(j, type, xid);
    int64_t a = k.a, b = k.b;
    int rc = conv_marks(q, j, type, xid, &read, &removed);
    if (rc != SQLITE_OK)
        return rc;
    bind_conv(q->count, j, type, a, b);
    sqlite3_bind_int64(q->count, 5, j->mtime_given ? INT64_MIN : read);
    sqlite3_bind_int64(q->count, 6, j->uid);
    sqlite3_bind_int64(q->count, 7, j->mtime_given ? j->mtime : INT64_MIN);
    rc = sqlite3_step(q->count);
    if (rc != SQLITE_ROW)
        return rc;
    c->xid = xid;
    c->unread = sqlite3_column_int64(q->count, 0);
    sqlite3_reset(q->count);
    if (!with_last)
        return SQLITE_OK;
    bind_conv(q->last, j, type, a, b);
    rc = sqlite3_step(q->last);
    if (rc == SQLITE_ROW) {
        rc = row_to_msg(q->last, &c->last);
        c->has_last = rc == SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(q->last);
    return rc;
}

static int cmp_last_desc(const void *x, const void *y)
{
    const conv_item *a = x, *b = y;
    return a->last_id < b->last_id ? 1 : a->last_id > b->last_id ? -1 : 0;
}

/* The user's p2p conversations (newest first, removed ones skipped) and
 * group conversations with at least one message, as (xid, last_id). */
static int list_convs(sqlite3 *db, hjob *j, conv_q *q, conv_list *p2p, conv_list *group)
{
    int rc = SQLITE_OK;
    if (p2p) {
        sqlite3_stmt *st;
        rc = prep(db,
                  "SELECT peer, last FROM ("
                  " SELECT peer, (SELECT MAX(id) FROM messages WHERE pid = ?1 AND conv_type = 1"
                  " AND conv_a = min(?2, p2p_peers.peer) AND conv_b = max(?2, p2p_peers.peer)) AS last"
                  " FROM p2p_peers WHERE pid = ?1 AND uid = ?2) WHERE last IS NOT NULL ORDER BY last DESC",
                  &st);
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_bind_int64(st, 1, j->pid);
        sqlite3_bind_int64(st, 2, j->uid);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && p2p->n < HISTORY_CONV_MAX) {
            int64_t peer = sqlite3_column_int64(st, 0), last = sqlite3_column_int64(st, 1), read, removed;
            if (peer == j->uid)
                continue;
            if ((rc = conv_marks(q, j, CONV_P2P, peer, &read, &removed)) != SQLITE_OK)
                break;
            if (last <= removed)
                continue;
            conv_item *c = conv_list_add(p2p);
            if (!c) {
                rc = SQLITE_NOMEM;
                break;
            }
            c->xid = peer;
            c->last_id = last;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW && rc != SQLITE_OK)
            return rc;
        rc = SQLITE_OK;
    }
    if (group) {
        for (size_t i = 0; i < j->ngids; i++) {
            bind_conv(q->any, j, CONV_GROUP, j->gids[i], 0);
            rc = sqlite3_step(q->any);
            if (rc != SQLITE_ROW)
                return rc;
            bool has = sqlite3_column_type(q->any, 0) != SQLITE_NULL;
            int64_t last = sqlite3_column_int64(q->any, 0);
            sqlite3_reset(q->any);
            if (!has)
                continue;
            conv_item *c = conv_list_add(group);
            if (!c)
                return SQLITE_NOMEM;
            c->xid = j->gids[i];
            c->last_id = last;
        }
        if (group->n > 1)
            qsort(group->v, group->n, sizeof *group->v, cmp_last_desc);
        if (group->n > HISTORY_CONV_MAX)
            group->n = HISTORY_CONV_MAX;
        rc = SQLITE_OK;
    }
    return rc;
}

/* Keeps the conversations that pass (unread > 0, or a last message). */
static int fill_stats(conv_q *q, hjob *j, int type, conv_list *l, bool with_last, bool unread_only)
{
    size_t kept = 0;
    for (size_t i = 0; i < l->n; i++) {
        conv_item *c = &l->v[i];
        int64_t last_id = c->last_id;
        int rc = conv_stats(q, j, type, c->xid, c, with_last);
        if (rc != SQLITE_OK)
            return rc;
        c->last_id = last_id;
        bool keep = unread_only ? c->unread > 0 : (!with_last || c->has_last);
        if (keep && with_last && !c->has_last)
            keep = false;
        if (keep) {
            if (kept != i)
                l->v[kept] = *c;
            kept++;
        } else {
            hmsg_free(&c->last);
        }
    }
    l->n = kept;
    return SQLITE_OK;
}

static int read_convs_txn(sqlite3 *db, hjob *j)
{
    conv_q q;
    int rc = conv_q_init(db, j, &q);
    if (rc == SQLITE_OK && j->clear)
        j->max_id = query_i64(db, NEWEST_ID_SQL, j->pid, 0, &rc);
    if (rc != SQLITE_OK) {
        conv_q_free(&q);
        return rc;
    }
    switch (j->kind) {
    case J_UNREAD:
    case J_SESSIONS:
    case J_CONVLIST: {
        rc = list_convs(db, j, &q, j->want_p2p ? &j->p2p : NULL, j->want_group ? &j->group : NULL);
        bool with_last = j->kind == J_CONVLIST;
        bool unread_only = j->kind == J_UNREAD || j->unread_only;
        if (rc == SQLITE_OK && j->kind != J_SESSIONS && j->want_p2p)
            rc = fill_stats(&q, j, CONV_P2P, &j->p2p, with_last, unread_only);
        if (rc == SQLITE_OK && j->kind != J_SESSIONS && j->want_group)
            rc = fill_stats(&q, j, CONV_GROUP, &j->group, with_last, unread_only);
        break;
    }
    case J_P2PUNREAD:
    case J_GROUPUNREAD: {
        int type = j->kind == J_P2PUNREAD ? CONV_P2P : CONV_GROUP;
        conv_list *l = type == CONV_P2P ? &j->p2p : &j->group;
        for (size_t i = 0; i < j->nids && rc == SQLITE_OK; i++) {
            if (type == CONV_P2P && j->ids[i] == j->uid)
                continue;
            conv_item *c = conv_list_add(l);
            if (!c) {
                rc = SQLITE_NOMEM;
                break;
            }
            rc = conv_stats(&q, j, type, j->ids[i], c, true);
            if (rc == SQLITE_OK && !c->has_last && c->unread == 0)
                l->n--; /* nothing to report about this conversation */
        }
        break;
    }
    default:
        break;
    }
    conv_q_free(&q);
    return rc;
}

static int read_convs(sqlite3 *db, void *arg)
{
    return in_read_txn(db, read_convs_txn, arg);
}

static void pack_ids(msgpack_packer *pk, const char *key, const conv_list *l)
{
    mp_pack_cstr(pk, key);
    msgpack_pack_array(pk, (uint32_t)l->n);
    for (size_t i = 0; i < l->n; i++)
        msgpack_pack_int64(pk, l->v[i].xid);
}

static void pack_unreads(msgpack_packer *pk, const char *key, const conv_list *l)
{
    mp_pack_cstr(pk, key);
    msgpack_pack_array(pk, (uint32_t)l->n);
    for (size_t i = 0; i < l->n; i++)
        msgpack_pack_int64(pk, l->v[i].unread);
}

static void pack_lasts(msgpack_packer *pk, const char *key, const conv_list *l, bool p2p, int64_t self)
{
    mp_pack_cstr(pk, key);
    msgpack_pack_array(pk, (uint32_t)l->n);
    for (size_t i = 0; i < l->n; i++)
        pack_msg(pk, &l->v[i].last, p2p, self);
}

/* {p2p|group: {xid: unread}, ltime: {xid: mtime of the newest message}} */
static void pack_unread_counts(msgpack_packer *pk, const char *key, const conv_list *l)
{
    uint32_t n = 0, nt = 0;
    for (size_t i = 0; i < l->n; i++) {
        n += l->v[i].unread > 0;
        nt += l->v[i].has_last;
    }
    msgpack_pack_map(pk, 2);
    mp_pack_cstr(pk, key);
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].unread > 0) {
            msgpack_pack_int64(pk, l->v[i].xid);
            msgpack_pack_int64(pk, l->v[i].unread);
        }
    mp_pack_cstr(pk, "ltime");
    msgpack_pack_map(pk, nt);
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].has_last) {
            msgpack_pack_int64(pk, l->v[i].xid);
            msgpack_pack_int64(pk, l->v[i].last.mtime);
        }
}

/* Keeps the newest conversations of l whose last messages fit in budget
 * bytes (at least one). */
static void conv_list_fit(conv_list *l, size_t budget)
{
    size_t bytes = 0, keep = 0;
    for (; keep < l->n; keep++) {
        bytes += msg_cost(&l->v[keep].last) + 2 * sizeof(int64_t) + 2;
        if (keep > 0 && bytes > budget)
            break;
    }
    for (size_t i = keep; i < l->n; i++)
        hmsg_free(&l->v[i].last);
    l->n = keep;
}

static void convs_done(void *arg, int status)
{
    hjob *j = arg;
    if (status != SQLITE_OK) {
        job_fail(j, status);
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &j->answer, msgpack_sbuffer_write);
    switch (j->kind) {
    case J_UNREAD:
    case J_SESSIONS:
        msgpack_pack_map(&pk, 2);
        pack_ids(&pk, "p2p", &j->p2p);
        pack_ids(&pk, "group", &j->group);
        break;
    case J_P2PUNREAD:
        pack_unread_counts(&pk, "p2p", &j->p2p);
        break;
    case J_GROUPUNREAD:
        pack_unread_counts(&pk, "group", &j->group);
        break;
    case J_CONVLIST:
        if (j->both_lists) {
            conv_list_fit(&j->p2p, j->answer_budget / 2);
            conv_list_fit(&j->group, j->answer_budget / 2);
            msgpack_pack_map(&pk, 6);
            pack_ids(&pk, "p2pConversations", &j->p2p);
            pack_unreads(&pk, "p2pUnreads", &j->p2p);
            pack_lasts(&pk, "p2pMsgs", &j->p2p, true, j->uid);
            pack_ids(&pk, "groupConversations", &j->group);
            pack_unreads(&pk, "groupUnreads", &j->group);
            pack_lasts(&pk, "groupMsgs", &j->group, false, 0);
        } else {
            conv_list *l = j->want_p2p ? &j->p2p : &j->group;
            conv_list_fit(l, j->answer_budget);
            msgpack_pack_map(&pk, 3);
            pack_ids(&pk, "conversations", l);
            pack_unreads(&pk, "unreads", l);
            pack_lasts(&pk, "msgs", l, j->want_p2p, j->uid);
        }
        break;
    default:
        msgpack_pack_map(&pk, 0);
        break;
    }
    j->answer_ready = true;
    j->mark_type = -1;
    if (j->clear) {
        j->mark_type = 0;
        j->mark_xid = 0;
        j->mark_id = j->max_id;
    }
    finish_with_mark(j);
}

static void submit_convs(hjob *j)
{
    if (store_read(j->req->srv->store, read_convs, convs_done, j) != 0) {
        request_error(j->req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        job_free(j);
    }
}

static bool arg_clear(rtmd_request *req)
{
    bool clear = false;
    const msgpack_object *o = mp_map_get(req->args, "clear");
    if (o && o->type == MSGPACK_OBJECT_BOOLEAN)
        clear = o->via.boolean;
    else if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        clear = o->via.u64 != 0;
    return clear;
}

/* client: getunread {clear?} -> {p2p: [uid], group: [gid]} */
static void method_getunread(rtmd_request *req)
{
    hjob *j = job_new(req, J_UNREAD);
    if (!j)
        return;
    j->want_p2p = j->want_group = true;
    j->clear = arg_clear(req);
    if (!copy_groups(j)) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        job_free(j);
        return;
    }
    submit_convs(j);
}

/* client: getsession {} -> {p2p: [uid], group: [gid]}, newest first */
static void method_getsession(rtmd_request *req)
{
    hjob *j = job_new(req, J_SESSIONS);
    if (!j)
        return;
    j->want_p2p = j->want_group = true;
    if (!copy_groups(j)) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        job_free(j);
        return;
    }
    submit_convs(j);
}

/* client: getp2punread {uids, mtime?, mtypes?} / getgroupunread {gids,
 * mtime?, mtypes?} -> {p2p|group: {id: n}, ltime: {id: ms}}. Groups the
 * caller is not a member of are left out. */
static void method_unread_counts(rtmd_request *req)
{
    bool p2p = strcmp(req->method, "getp2punread") == 0;
    hjob *j = job_new(req, p2p ? J_P2PUNREAD : J_GROUPUNREAD);
    if (!j)
        return;
    /* The ids come back sorted and without repeats; the answers are maps
     * keyed by id, so the caller's order does not matter. */
    uint32_t nids = 0;
    bool ok = req_arg_ids(req, p2p ? "uids" : "gids", HISTORY_IDS_MAX, true, &j->ids, &nids);
    j->nids = nids;
    if (!ok || !opt_i64(req, "mtime", &j->mtime, &j->mtime_given) ||
        !arg_mtypes(req, j->mtypes, sizeof j->mtypes, true)) {
        job_free(j);
        return;
    }
    if (j->mtime_given && j->mtime <= 0)
        j->mtime_given = false;
    if (!p2p) {
        size_t n = 0;
        for (size_t i = 0; i < j->nids; i++)
            if (groups_is_member(req->srv, j->pid, j->ids[i], j->uid))
                j->ids[n++] = j->ids[i];
        j->nids = n;
    }
    submit_convs(j);
}

/* client: getp2pconversationlist, getp2punreadconversationlist,
 * getgroupconversationlist, getgroupunreadconversationlist {mtime?,
 * mtypes?} -> {conversations, unreads, msgs}; getunreadconversationlist
 * {clear?, mtime?, mtypes?} -> {p2p*, group*} */
static void method_convlist(rtmd_request *req)
{
    const char *m = req->method;
    hjob *j = job_new(req, J_CONVLIST);
    if (!j)
        return;
    j->both_lists = strcmp(m, "getunreadconversationlist") == 0;
    j->want_p2p = j->both_lists || strncmp(m, "getp2p", 6) == 0;
    j->want_group = j->both_lists || strncmp(m, "getgroup", 8) == 0;
    j->unread_only = strstr(m, "unread") != NULL;
    j->clear = j->both_lists && arg_clear(req);
    if (!opt_i64(req, "mtime", &j->mtime, &j->mtime_given) || !arg_mtypes(req, j->mtypes, sizeof j->mtypes, true)) {
        job_free(j);
        return;
    }
    if (j->mtime_given && j->mtime <= 0)
        j->mtime_given = false;
    if (j->want_group && !copy_groups(j)) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        job_free(j);
        return;
    }
    submit_convs(j);
}

/* client: cleanunread {} -> {}: every conversation is read up to now. */
static int apply_clean(sqlite3 *db, void *arg)
{
    hjob *j = arg;
    int rc;
    j->mark_id = query_i64(db, NEWEST_ID_SQL, j->pid, 0, &rc);
    if (rc != SQLITE_OK)
        return rc;
    return apply_mark(db, j);
}

/* client: removesession {to} -> {}: the p2p conversation is read and
 * hidden until a newer message arrives. */
static int apply_removesession(sqlite3 *db, void *arg)
{
    hjob *j = arg;
    int rc;
    int64_t a = j->uid < j->mark_xid ? j->uid : j->mark_xid, b = j->uid < j->mark_xid ? j->mark_xid : j->uid;
    sqlite3_stmt *st;
    rc = prep(db, "SELECT COALESCE(MAX(id), 0) FROM messages WHERE pid = ?1 AND conv_type = 1 AND conv_a = ?2"
                  " AND conv_b = ?3",
              &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, j->pid);
    sqlite3_bind_int64(st, 2, a);
    sqlite3_bind_int64(st, 3, b);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        j->mark_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return rc;
    return apply_mark(db, j);
}

static void method_mark(rtmd_request *req)
{
    bool remove = strcmp(req->method, "removesession") == 0;
    int64_t to = 0;
    if (remove && !req_arg_int64(req, "to", &to))
        return;
    hjob *j = job_new(req, remove ? J_REMOVESESSION : J_CLEAN);
    if (!j)
        return;
    j->mark_type = remove ? CONV_P2P : 0;
    j->mark_xid = to;
    j->mark_removed = remove;
    if (store_submit(req->srv->store, remove ? apply_removesession : apply_clean, write_done, j) != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        job_free(j);
    }
}

/* ---- retention ---- */

enum { TASK_DAYS = 1, TASK_CONV = 2 };

/* TASK_DAYS deletes the rows of a project older than a date without an
 * index on mtime. messages.c never lets mtime decrease as id grows, so the
 * old rows are a prefix of the rowid order, whose end (the first row not
 * older, done_id) a bisection over rowid probes finds. The task walks ids
 * [from_id, to_id) in rowid windows of at most HISTORY_SWEEP_BATCH rows
 * each, whatever their project (so a batch stays bounded among rows that
 * other projects keep), deleting the project's rows with mtime < cutoff.
 * A project's first run since start walks every row (to_id past the newest)
 * so that rows out of mtime order (written before this rule, or edited
 * while rtmd was down) go too; later runs walk from where the previous one
 * ended (done_id) to the new prefix end. */
typedef struct sweep_task {
    int64_t pid;
    int kind;
    int conv_type;
    int64_t a, b;
    int64_t cutoff;            /* TASK_DAYS: mtime below; TASK_CONV: id up to */
    int64_t from_id, to_id;    /* TASK_DAYS: ids left to examine */
    int64_t done_id;           /* TASK_DAYS: the next run starts here */
} sweep_task;

typedef struct sweep {
    struct history_state *h;
    size_t nproj;
    struct {
        int64_t pid;
        uint32_t days, max;
    } proj[RTMD_MAX_PROJECTS];
    int64_t since_id, now_ms;
    sweep_task *tasks;
    size_t ntasks, cap;
    int64_t high_id;
    bool complete;
    size_t cur;
    int64_t batch_deleted;
    int64_t batch_end;         /* TASK_DAYS: the batch examined ids below this */
    uint64_t total;
} sweep;

static int64_t days_done_get(const struct history_state *h, int64_t pid, bool *seen)
{
    for (size_t i = 0; i < h->ndays_done; i++)
        if (h->days_done[i].pid == pid) {
            *seen = true;
            return h->days_done[i].id;
        }
    return 0;
}

static void days_done_set(struct history_state *h, int64_t pid, int64_t id)
{
    size_t i = 0;
    while (i < h->ndays_done && h->days_done[i].pid != pid)
        i++;
    if (i == h->ndays_done) {
        if (i == RTMD_MAX_PROJECTS)
            return;
        h->ndays_done++;
        h->days_done[i].pid = pid;
    }
    h->days_done[i].id = id;
}

static int sweep_add(sweep *sw, sweep_task t)
{
    if (sw->ntasks == SWEEP_TASKS_MAX) {
        sw->complete = false;
        return SQLITE_OK;
    }
    if (sw->ntasks == sw->cap) {
        size_t cap = sw->cap ? sw->cap * 2 : 64;
        sweep_task *v = realloc(sw->tasks, cap * sizeof *v);
        if (!v)
            return SQLITE_NOMEM;
        sw->tasks = v;
        sw->cap = cap;
    }
    sw->tasks[sw->ntasks++] = t;
    return SQLITE_OK;
}

/* The first id (in [lo, hi], hi meaning none) from which on no row is
 * older than cutoff, assuming mtime does not decrease as id grows: a
 * bisection with one rowid probe per step. */
static int first_id_not_older(sqlite3 *db, int64_t lo, int64_t hi, int64_t cutoff, int64_t *out)
{
    sqlite3_stmt *probe;
    int rc = prep(db, "SELECT id, mtime FROM messages WHERE id >= ?1 ORDER BY id LIMIT 1", &probe);
    if (rc != SQLITE_OK)
        return rc;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        sqlite3_reset(probe);
        sqlite3_bind_int64(probe, 1, mid);
        rc = sqlite3_step(probe);
        if (rc == SQLITE_ROW && sqlite3_column_int64(probe, 1) < cutoff) {
            lo = sqlite3_column_int64(probe, 0) + 1;  /* old rows up to this one */
        } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
            hi = mid;
        } else {
            break;
        }
        rc = SQLITE_OK;
    }
    sqlite3_finalize(probe);
    *out = lo;
    return rc;
}

/* The days task of project p: ids from where its last completed task
 * stopped (or the first row) up to the first row that is not too old. */
static int sweep_scan_days(sqlite3 *db, sweep *sw, size_t p, int64_t first_id)
{
    int64_t pid = sw->proj[p].pid;
    int64_t cutoff = sw->now_ms - (int64_t)sw->proj[p].days * 86400000;
    bool seen = false;
    int64_t from = days_done_get(sw->h, pid, &seen), end = 0;
    if (from < first_id)
        from = first_id;
    int rc = first_id_not_older(db, from, sw->high_id + 1, cutoff, &end);
    int64_t to = seen ? end : sw->high_id + 1;
    if (rc != SQLITE_OK || from >= to)
        return rc;
    return sweep_add(sw, (sweep_task){pid, TASK_DAYS, 0, 0, 0, cutoff, from, to, end});
}

static size_t sweep_find_project(const sweep *sw, int64_t pid)
{
    for (size_t p = 0; p < sw->nproj; p++)
        if (sw->proj[p].pid == pid)
            return p;
    return sw->nproj;
}

/* The conversations with a message since the last complete run (a rowid
 * range, every project at once) that hold more than their project's
 * history_max_per_conversation messages. */
static int sweep_scan_convs(sqlite3 *db, sweep *sw)
{
    sqlite3_stmt *convs, *nth;
    int rc;
    if ((rc = prep(db,
                   "SELECT pid, conv_type, conv_a, conv_b FROM messages WHERE id > ?1 AND id <= ?2"
                   " GROUP BY pid, conv_type, conv_a, conv_b",
                   &convs)) != SQLITE_OK)
        return rc;
    if ((rc = prep(db,
                   "SELECT id FROM messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
                   " ORDER BY id DESC LIMIT 1 OFFSET ?5",
                   &nth)) != SQLITE_OK) {
        sqlite3_finalize(convs);
        return rc;
    }
    sqlite3_bind_int64(convs, 1, sw->since_id);
    sqlite3_bind_int64(convs, 2, sw->high_id);
    while ((rc = sqlite3_step(convs)) == SQLITE_ROW) {
        int64_t pid = sqlite3_column_int64(convs, 0);
        size_t p = sweep_find_project(sw, pid);
        if (p == sw->nproj || !sw->proj[p].max)
            continue;
        int type = sqlite3_column_int(convs, 1);
        int64_t a = sqlite3_column_int64(convs, 2), b = sqlite3_column_int64(convs, 3);
        sqlite3_reset(nth);
        sqlite3_bind_int64(nth, 1, pid);
        sqlite3_bind_int(nth, 2, type);
        sqlite3_bind_int64(nth, 3, a);
        sqlite3_bind_int64(nth, 4, b);
        sqlite3_bind_int64(nth, 5, sw->proj[p].max);
        int s = sqlite3_step(nth);
        if (s == SQLITE_ROW) {
            rc = sweep_add(sw, (sweep_task){pid, TASK_CONV, type, a, b, sqlite3_column_int64(nth, 0), 0, 0, 0});
            if (rc != SQLITE_OK)
                break;
        } else if (s != SQLITE_DONE) {
            rc = s;
            break;
        }
    }
    sqlite3_finalize(nth);
    sqlite3_finalize(convs);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sweep_scan(sqlite3 *db, void *arg)
{
    sweep *sw = arg;
    int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    /* Ids are server-wide: the newest bounds what this snapshot holds for
     * every project. */
    sw->high_id = query_i64(db, NEWEST_ID_SQL, 0, 0, &rc);
    int64_t first_id = rc == SQLITE_OK ? query_i64(db, "SELECT MIN(id) FROM messages", 0, 0, &rc) : 0;
    sw->complete = true;
    bool any_max = false;
    for (size_t p = 0; p < sw->nproj && rc == SQLITE_OK; p++) {
        any_max |= sw->proj[p].max != 0;
        if (sw->proj[p].days && sw->high_id)
            rc = sweep_scan_days(db, sw, p, first_id);
    }
    if (rc == SQLITE_OK && any_max)
        rc = sweep_scan_convs(db, sw);
    sqlite3_exec(db, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sweep_apply(sqlite3 *db, void *arg)
{
    sweep *sw = arg;
    const sweep_task *t = &sw->tasks[sw->cur];
    sqlite3_stmt *st;
    int rc = messages_note_id_floor(db);
    if (rc != SQLITE_OK)
        return rc;
    if (t->kind == TASK_DAYS) {
        /* The window: from from_id up to the id of the row HISTORY_SWEEP_BATCH
         * rows on (any project), or to to_id. Reads t, writes only
         * sw->batch_*: the done callback moves the task on. */
        sw->batch_end = query_i64(db,
                                  "SELECT COALESCE((SELECT id FROM messages WHERE id >= ?1 AND id < ?2"
                                  " ORDER BY id LIMIT 1 OFFSET " HISTORY_SWEEP_BATCH_SQL "), ?2)",
                                  t->from_id, t->to_id, &rc);
        if (rc != SQLITE_OK)
            return rc;
        /* +pid: by rowid range, never by an index on pid. */
        rc = prep(db, "DELETE FROM messages WHERE id >= ?1 AND id < ?2 AND +pid = ?3 AND mtime < ?4", &st);
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_bind_int64(st, 1, t->from_id);
        sqlite3_bind_int64(st, 2, sw->batch_end);
        sqlite3_bind_int64(st, 3, t->pid);
        sqlite3_bind_int64(st, 4, t->cutoff);
    } else {
        rc = prep(db,
                  "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE pid = ?1 AND conv_type = ?2"
                  " AND conv_a = ?3 AND conv_b = ?4 AND id <= ?5 ORDER BY id LIMIT ?6)",
                  &st);
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_bind_int64(st, 1, t->pid);
        sqlite3_bind_int(st, 2, t->conv_type);
        sqlite3_bind_int64(st, 3, t->a);
        sqlite3_bind_int64(st, 4, t->b);
        sqlite3_bind_int64(st, 5, t->cutoff);
        sqlite3_bind_int(st, 6, HISTORY_SWEEP_BATCH);
    }
    rc = sqlite3_step(st);
    sw->batch_deleted = rc == SQLITE_DONE ? sqlite3_changes(db) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void sweep_finish(sweep *sw, bool ok)
{
    struct history_state *h = sw->h;
    if (ok && sw->complete)
        h->swept_id = sw->high_id;
    h->deleted += sw->total;
    if (sw->total)
        LOG_INFO("history retention: %llu messages deleted", (unsigned long long)sw->total);
    h->sweep = NULL;
    free(sw->tasks);
    free(sw);
}

static void sweep_step(sweep *sw);

static void sweep_batch_done(void *arg, int status)
{
    sweep *sw = arg;
    if (status != SQLITE_OK) {
        if (status != SQLITE_ABORT)
            LOG_ERROR("history retention: delete failed: %s", sqlite3_errstr(status));
        sweep_finish(sw, false);
        return;
    }
    sw->total += (uint64_t)sw->batch_deleted;
    sweep_task *t = &sw->tasks[sw->cur];
    if (t->kind == TASK_DAYS) {
        t->from_id = sw->batch_end;
        if (t->from_id >= t->to_id) {
            days_done_set(sw->h, t->pid, t->done_id);
            sw->cur++;
        }
    } else if (sw->batch_deleted < HISTORY_SWEEP_BATCH) {
        sw->cur++;
    }
    sweep_step(sw);
}

/* Submits the next batch, one at a time, so that the writer stays free for
 * messages between batches. */
static void sweep_step(sweep *sw)
{
    rtmd_server *srv = sw->h->srv;
    if (sw->cur >= sw->ntasks) {
        sweep_finish(sw, true);
        return;
    }
    if (srv->stopping || !srv->store || store_submit(srv->store, sweep_apply, sweep_batch_done, sw) != 0)
        sweep_finish(sw, false);
}

static void sweep_scanned(void *arg, int status)
{
    sweep *sw = arg;
    if (status != SQLITE_OK) {
        if (status != SQLITE_ABORT)
            LOG_ERROR("history retention: scan failed: %s", sqlite3_errstr(status));
        sweep_finish(sw, false);
        return;
    }
    LOG_DEBUG("history retention: %zu tasks for messages up to id %lld", sw->ntasks, (long long)sw->high_id);
    sweep_step(sw);
}

static void sweep_start(struct history_state *h)
{
    rtmd_server *srv = h->srv;
    sweep *sw = calloc(1, sizeof *sw);
    if (!sw)
        return;
    sw->h = h;
    sw->since_id = h->swept_id;
    sw->now_ms = rtmd_unix_ms();
    for (size_t i = 0; i < srv->nprojects && sw->nproj < RTMD_MAX_PROJECTS; i++) {
        const rtmd_project *p = &srv->projects[i];
        if (!p->limits.history_days && !p->limits.history_max_per_conversation)
            continue;
        sw->proj[sw->nproj].pid = p->pid;
        sw->proj[sw->nproj].days = p->limits.history_days;
        sw->proj[sw->nproj].max = p->limits.history_max_per_conversation;
        sw->nproj++;
    }
    if (!sw->nproj) {
        free(sw);
        return;
    }
    h->sweep = sw;
    if (store_read(srv->store, sweep_scan, sweep_scanned, sw) != 0) {
        h->sweep = NULL;
        free(sw);
    }
}

static void on_sweep_tick(uv_timer_t *t)
{
    struct history_state *h = t->data;
    rtmd_server *srv = h->srv;
    /* On stop, a sweep in progress gives up at its next step. */
    if (rtmd_timer_end_on_stop(srv, t, &h->timer_closed))
        return;
    uint64_t now = uv_now(srv->loop);
    if (h->sweep || !srv->store)
        return;
    if (h->swept && now - h->last_sweep_ms < (uint64_t)srv->cfg.retention_interval * 1000u)
        return;
    h->swept = true;
    h->last_sweep_ms = now;
    sweep_start(h);
}

/* ---- module life cycle ---- */

static int history_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct history_state *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->srv = srv;
    srv->svc->history = h;
    uv_timer_init(srv->loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, on_sweep_tick, 0, SWEEP_TICK_MS);
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
    {"getunread", GATES_CLIENT, method_getunread, 0},
    {"cleanunread", GATES_CLIENT, method_mark, 0},
    {"getsession", GATES_CLIENT, method_getsession, 0},
    {"removesession", GATES_CLIENT, method_mark, 0},
    {"getp2punread", GATES_CLIENT, method_unread_counts, 0},
    {"getgroupunread", GATES_CLIENT, method_unread_counts, 0},
    {"getp2pconversationlist", GATES_CLIENT, method_convlist, 0},
    {"getp2punreadconversationlist", GATES_CLIENT, method_convlist, 0},
    {"getgroupconversationlist", GATES_CLIENT, method_convlist, 0},
    {"getgroupunreadconversationlist", GATES_CLIENT, method_convlist, 0},
    {"getunreadconversationlist", GATES_CLIENT, method_convlist, 0},
};

static void history_free(rtmd_server *srv)
{
    struct history_state *h = srv->svc->history;
    if (!h)
        return;
    if (h->sweep) {
        free(h->sweep->tasks);
        free(h->sweep);
    }
    srv->svc->history = NULL;
    if (rtmd_timer_release(&h->timer, h->timer_closed))
        free(h);
}

const rtmd_module history_module = {
    .name = "history",
    .init = history_init,
    .free = history_free,
    RTMD_MODULE_METHODS(history_methods),
};
