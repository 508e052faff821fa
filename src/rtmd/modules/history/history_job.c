/* The plumbing every method of the history module shares (see
 * history_internal.h): stored messages read from rows and packed for the
 * wire, the job that carries a request to the store and back and answers
 * it, the read-marker write that may follow a read, and the argument and
 * SQL helpers. No method lives here. */
#include "history_internal.h"

#include "log.h"
#include "module.h"
#include "rtm_errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- messages as read from the store ---- */

void hmsg_free(hmsg *m)
{
    free(m->msg);
    free(m->attrs);
    m->msg = m->attrs = NULL;
}

static char *copy_col(db_stmt_t *st, int col, size_t *len)
{
    const void *p = db_column_blob(st, col);
    size_t n = (size_t)db_column_bytes(st, col);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    if (n)
        memcpy(out, p, n);
    out[n] = '\0';
    *len = n;
    return out;
}

int hmsg_from_row(db_stmt_t *st, hmsg *m)
{
    memset(m, 0, sizeof *m);
    m->id = db_column_int64(st, 0);
    m->from_uid = db_column_int64(st, 1);
    m->mtype = db_column_int64(st, 2);
    m->mid = db_column_int64(st, 3);
    m->deleted = db_column_int(st, 4) != 0;
    m->mtime = db_column_int64(st, 7);
    m->binary = db_column_int(st, 8) != 0;
    if (m->deleted) {
        m->msg = calloc(1, 1);
        m->attrs = calloc(1, 1);
    } else {
        m->msg = copy_col(st, 5, &m->msg_len);
        m->attrs = copy_col(st, 6, &m->attrs_len);
    }
    if (!m->msg || !m->attrs) {
        hmsg_free(m);
        return DB_NOMEM;
    }
    return DB_OK;
}

void hmsg_pack_body(msgpack_packer *pk, const hmsg *m)
{
    if (m->binary) {
        msgpack_pack_bin(pk, m->msg_len);
        msgpack_pack_bin_body(pk, m->msg, m->msg_len);
    } else {
        msgpack_pack_str(pk, m->msg_len);
        msgpack_pack_str_body(pk, m->msg, m->msg_len);
    }
}

void hmsg_pack(msgpack_packer *pk, const hmsg *m, bool p2p, int64_t self, const char *from_s)
{
    msgpack_pack_array(pk, 8);
    msgpack_pack_int64(pk, m->id);
    if (from_s)
        mp_pack_cstr(pk, from_s);
    else if (p2p)
        msgpack_pack_int(pk, m->from_uid == self ? 1 : 2);
    else
        msgpack_pack_int64(pk, m->from_uid);
    msgpack_pack_int64(pk, m->mtype);
    msgpack_pack_int64(pk, m->mid);
    if (m->deleted)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    hmsg_pack_body(pk, m);
    msgpack_pack_str(pk, m->attrs_len);
    msgpack_pack_str_body(pk, m->attrs, m->attrs_len);
    msgpack_pack_int64(pk, m->mtime);
}

/* What one message adds to an answer, a generous bound of its packing. */
#define MSG_OVERHEAD 64

size_t hmsg_cost(const hmsg *m)
{
    return m->msg_len + m->attrs_len + MSG_OVERHEAD;
}

/* ---- jobs ---- */

void conv_list_free(conv_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        hmsg_free(&l->v[i].last);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

hjob *hjob_new(rtmd_request *req, enum job_kind kind)
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

void hjob_free(hjob *j)
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

bool hjob_answer_begin(hjob *j, int status, msgpack_packer *pk)
{
    if (status != DB_OK) {
        hjob_fail(j, status);
        return false;
    }
    msgpack_packer_init(pk, &j->answer, msgpack_sbuffer_write);
    return true;
}

void hjob_fail(hjob *j, int status)
{
    if (status != DB_ABORT) {
        char m[RTM_LOG_STR_SIZE];
        LOG_ERROR("history: %s failed: %s", rtm_log_str(m, j->req->method, strlen(j->req->method)),
                  db_errstr(status));
    }
    module_answer_store_failure(j->req, status);
    hjob_free(j);
}

void hjob_answer(hjob *j)
{
    request_answer(j->req, &j->answer);
    hjob_free(j);
}

/* ---- argument helpers (answer the request on failure) ---- */

/* An optional integer: absent and nil leave *out as it is. */
bool hist_opt_i64(rtmd_request *req, const char *key, int64_t *out, bool *given)
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
bool hist_arg_mtypes(rtmd_request *req, char *sql, size_t cap, bool chat_default)
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

/* ---- SQL helpers (reader pool or writer thread) ---- */

/* Binds ?1..?4 to the job's project and a conversation (pid, conv_type,
 * conv_a, conv_b), as every per-conversation query of this file names them. */
void hist_bind_conv(db_stmt_t *st, hjob *j, int type, int64_t a, int64_t b)
{
    db_reset(st);
    db_bind_int64(st, 1, j->pid);
    db_bind_int(st, 2, type);
    db_bind_int64(st, 3, a);
    db_bind_int64(st, 4, b);
}

int64_t hist_query_i64(db_conn *db, const char *sql, int64_t a, int64_t b, int *rc)
{
    db_stmt_t *st;
    int64_t v = 0;
    *rc = db_stmt(db, sql, &st);
    if (*rc != DB_OK)
        return 0;
    int np = db_bind_count(st);
    if (np >= 1)
        db_bind_int64(st, 1, a);
    if (np >= 2)
        db_bind_int64(st, 2, b);
    int s = db_step(st);
    if (s == DB_ROW)
        v = db_column_int64(st, 0);
    else if (s != DB_DONE)
        *rc = s;
    db_release(st);
    return v;
}

static int exec_one(db_conn *db, const char *sql)
{
    db_stmt_t *st;
    int rc = db_stmt(db, sql, &st);
    return rc == DB_OK ? db_step_release(st) : rc;
}

/* Runs fn inside one read transaction, so that it sees one snapshot. */
int hist_in_read_txn(db_conn *db, int (*fn)(db_conn *, hjob *), hjob *j)
{
    int rc = exec_one(db, "BEGIN");
    if (rc != DB_OK)
        return rc;
    rc = fn(db, j);
    exec_one(db, rc == DB_OK ? "COMMIT" : "ROLLBACK");
    return rc;
}

int hjob_apply_mark(db_conn *db, void *arg)
{
    hjob *j = arg;
    db_stmt_t *st;
    const char *sql =
        j->mark_removed
            ? "INSERT INTO conversation_marks(pid, uid, conv_type, xid, read_id, removed_id) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
              " ON CONFLICT(pid, uid, conv_type, xid) DO UPDATE SET"
              " read_id = MAX(conversation_marks.read_id, excluded.read_id),"
              " removed_id = MAX(conversation_marks.removed_id, excluded.removed_id)"
            : "INSERT INTO conversation_marks(pid, uid, conv_type, xid, read_id) VALUES (?1, ?2, ?3, ?4, ?5)"
              " ON CONFLICT(pid, uid, conv_type, xid) DO UPDATE SET read_id = MAX(conversation_marks.read_id,"
              " excluded.read_id)";
    int rc = db_stmt(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, j->uid);
    db_bind_int(st, 3, j->mark_type);
    db_bind_int64(st, 4, j->mark_xid);
    db_bind_int64(st, 5, j->mark_id);
    return db_step_release(st);
}

/* A history write (read marker, delmsg) committed: answers what the job
 * prepared, or {}. */
void hjob_write_done(void *arg, int status)
{
    hjob *j = arg;
    if (status != DB_OK) {
        hjob_fail(j, status);
        return;
    }
    if (!j->answer_ready)
        msgpack_sbuffer_write(&j->answer, "\x80", 1);
    hjob_answer(j);
}

/* Answers now, or after the marker write when the job asks for one. */
void hjob_finish_with_mark(hjob *j)
{
    if (j->mark_type < 0 || (j->mark_id <= 0 && !j->mark_removed)) {
        if (!j->answer_ready)
            msgpack_sbuffer_write(&j->answer, "\x80", 1);
        hjob_answer(j);
        return;
    }
    if (store_submit(j->req->srv->store, hjob_apply_mark, hjob_write_done, j) != 0) {
        request_error(j->req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        hjob_free(j);
    }
}

