/* Unread state and conversation lists of the client gate (history.h
 * documents what "unread" means): getunread, getsession, getp2punread,
 * getgroupunread, the five conversation lists, and the read markers that
 * cleanunread and removesession move (table conversation_marks). The
 * methods are registered by history.c; the job plumbing is history_job.c's. */
#include "history_internal.h"

#include "groups.h"
#include "messages.h"
#include "rtm_errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Statements one conversation scan reuses. */
typedef struct conv_q {
    db_stmt_t *mark, *count, *last, *any;
    int64_t all_mark;          /* the user's marker for all conversations */
} conv_q;

static void conv_q_free(conv_q *q)
{
    db_release(q->mark);
    db_release(q->count);
    db_release(q->last);
    db_release(q->any);
}

static int conv_q_init(db_conn *db, hjob *j, conv_q *q)
{
    char sql[512 + MTYPES_SQL_MAX];
    int rc;
    memset(q, 0, sizeof *q);
    q->all_mark = hist_query_i64(db,
                            "SELECT read_id FROM conversation_marks WHERE pid = ?1 AND uid = ?2 AND conv_type = 0"
                            " AND xid = 0",
                            j->pid, j->uid, &rc);
    if (rc != DB_OK)
        return rc;
    if ((rc = db_stmt(db,
                   "SELECT read_id, removed_id FROM conversation_marks WHERE pid = ?1 AND uid = ?2 AND conv_type = ?3"
                   " AND xid = ?4",
                   &q->mark)) != DB_OK)
        return rc;
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM conv_messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
             " AND id > ?5 AND from_uid <> ?6 AND deleted = 0 AND mtime > ?7%s",
             j->mtypes);
    if ((rc = db_stmt(db, sql, &q->count)) != DB_OK)
        return rc;
    snprintf(sql, sizeof sql,
             "SELECT " MSG_COLS " FROM conv_messages WHERE pid = ?1 AND conv_type = ?2 AND conv_a = ?3 AND conv_b = ?4"
             " AND deleted = 0%s ORDER BY id DESC LIMIT 1",
             j->mtypes);
    if ((rc = db_stmt(db, sql, &q->last)) != DB_OK)
        return rc;
    return db_stmt(db,
                "SELECT " CONV_NEWEST_ID_SQL("?1", "?2", "?3", "?4"),
                &q->any);
}

/* The conversation's markers: read (the effective one) and removed. */
static int conv_marks(conv_q *q, hjob *j, int type, int64_t xid, int64_t *read, int64_t *removed)
{
    db_reset(q->mark);
    db_bind_int64(q->mark, 1, j->pid);
    db_bind_int64(q->mark, 2, j->uid);
    db_bind_int(q->mark, 3, type);
    db_bind_int64(q->mark, 4, xid);
    *read = q->all_mark;
    *removed = 0;
    bool row = false;
    int rc = db_step_row(q->mark, &row);
    if (rc == DB_OK && row) {
        int64_t r = db_column_int64(q->mark, 0);
        if (r > *read)
            *read = r;
        *removed = db_column_int64(q->mark, 1);
    }
    db_reset(q->mark);
    return rc;
}

/* Fills unread (and the last message when with_last) of one conversation. */
static int conv_stats(conv_q *q, hjob *j, int type, int64_t xid, conv_item *c, bool with_last)
{
    int64_t read, removed;
    conv_key k = conv_of(type, j->uid, xid);
    int64_t a = k.a, b = k.b;
    int rc = conv_marks(q, j, type, xid, &read, &removed);
    if (rc != DB_OK)
        return rc;
    hist_bind_conv(q->count, j, type, a, b);
    db_bind_int64(q->count, 5, j->mtime_given ? INT64_MIN : read);
    db_bind_int64(q->count, 6, j->uid);
    db_bind_int64(q->count, 7, j->mtime_given ? j->mtime : INT64_MIN);
    rc = db_step(q->count);
    if (rc != DB_ROW)
        return rc;
    c->xid = xid;
    c->unread = db_column_int64(q->count, 0);
    db_reset(q->count);
    if (!with_last)
        return DB_OK;
    hist_bind_conv(q->last, j, type, a, b);
    bool row = false;
    rc = db_step_row(q->last, &row);
    if (rc == DB_OK && row) {
        rc = hmsg_from_row(q->last, &c->last);
        c->has_last = rc == DB_OK;
    }
    db_reset(q->last);
    return rc;
}

static int cmp_last_desc(const void *x, const void *y)
{
    const conv_item *a = x, *b = y;
    return a->last_id < b->last_id ? 1 : a->last_id > b->last_id ? -1 : 0;
}

/* The user's p2p conversations (newest first, removed ones skipped) and
 * group conversations with at least one message, as (xid, last_id). */
static int list_convs(db_conn *db, hjob *j, conv_q *q, conv_list *p2p, conv_list *group)
{
    int rc = DB_OK;
    if (p2p) {
        db_stmt_t *st;
        rc = db_stmt(db,
                  "SELECT peer, last FROM ("
                  " SELECT peer, " CONV_NEWEST_ID_SQL("?1", "1", "min(?2, p2p_peers.peer)", "max(?2, p2p_peers.peer)")
                  " AS last"
                  " FROM p2p_peers WHERE pid = ?1 AND uid = ?2) AS convs WHERE last IS NOT NULL ORDER BY last DESC",
                  &st);
        if (rc != DB_OK)
            return rc;
        db_bind_int64(st, 1, j->pid);
        db_bind_int64(st, 2, j->uid);
        while ((rc = db_step(st)) == DB_ROW && p2p->n < HISTORY_CONV_MAX) {
            int64_t peer = db_column_int64(st, 0), last = db_column_int64(st, 1), read, removed;
            if (peer == j->uid)
                continue;
            if ((rc = conv_marks(q, j, CONV_P2P, peer, &read, &removed)) != DB_OK)
                break;
            if (last <= removed)
                continue;
            conv_item *c = conv_list_add(p2p);
            if (!c) {
                rc = DB_NOMEM;
                break;
            }
            c->xid = peer;
            c->last_id = last;
        }
        db_release(st);
        if (rc != DB_DONE && rc != DB_ROW && rc != DB_OK)
            return rc;
        rc = DB_OK;
    }
    if (group) {
        for (size_t i = 0; i < j->ngids; i++) {
            hist_bind_conv(q->any, j, CONV_GROUP, j->gids[i], 0);
            rc = db_step(q->any);
            if (rc != DB_ROW)
                return rc;
            bool has = !db_column_is_null(q->any, 0);
            int64_t last = db_column_int64(q->any, 0);
            db_reset(q->any);
            if (!has)
                continue;
            conv_item *c = conv_list_add(group);
            if (!c)
                return DB_NOMEM;
            c->xid = j->gids[i];
            c->last_id = last;
        }
        if (group->n > 1)
            qsort(group->v, group->n, sizeof *group->v, cmp_last_desc);
        if (group->n > HISTORY_CONV_MAX)
            group->n = HISTORY_CONV_MAX;
        rc = DB_OK;
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
        if (rc != DB_OK)
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
    return DB_OK;
}

static int read_convs_txn(db_conn *db, hjob *j)
{
    conv_q q;
    int rc = conv_q_init(db, j, &q);
    if (rc == DB_OK && j->clear)
        j->max_id = hist_query_i64(db, NEWEST_ID_SQL, j->pid, 0, &rc);
    if (rc != DB_OK) {
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
        if (rc == DB_OK && j->kind != J_SESSIONS && j->want_p2p)
            rc = fill_stats(&q, j, CONV_P2P, &j->p2p, with_last, unread_only);
        if (rc == DB_OK && j->kind != J_SESSIONS && j->want_group)
            rc = fill_stats(&q, j, CONV_GROUP, &j->group, with_last, unread_only);
        break;
    }
    case J_P2PUNREAD:
    case J_GROUPUNREAD: {
        int type = j->kind == J_P2PUNREAD ? CONV_P2P : CONV_GROUP;
        conv_list *l = type == CONV_P2P ? &j->p2p : &j->group;
        for (size_t i = 0; i < j->nids && rc == DB_OK; i++) {
            if (type == CONV_P2P && j->ids[i] == j->uid)
                continue;
            conv_item *c = conv_list_add(l);
            if (!c) {
                rc = DB_NOMEM;
                break;
            }
            rc = conv_stats(&q, j, type, j->ids[i], c, true);
            if (rc == DB_OK && !c->has_last && c->unread == 0)
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

static int read_convs(db_conn *db, void *arg)
{
    return hist_in_read_txn(db, read_convs_txn, arg);
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
        hmsg_pack(pk, &l->v[i].last, p2p, self, NULL);
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
        bytes += hmsg_cost(&l->v[keep].last) + 2 * sizeof(int64_t) + 2;
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
    msgpack_packer pk;
    if (!hjob_answer_begin(j, status, &pk))
        return;
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
    hjob_finish_with_mark(j);
}

static void submit_convs(hjob *j)
{
    if (store_read(j->req->srv->store, read_convs, convs_done, j) != 0) {
        request_error(j->req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        hjob_free(j);
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
void conv_method_getunread(rtmd_request *req)
{
    hjob *j = hjob_new(req, J_UNREAD);
    if (!j)
        return;
    j->want_p2p = j->want_group = true;
    j->clear = arg_clear(req);
    if (!copy_groups(j)) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        hjob_free(j);
        return;
    }
    submit_convs(j);
}

/* client: getsession {} -> {p2p: [uid], group: [gid]}, newest first */
void conv_method_getsession(rtmd_request *req)
{
    hjob *j = hjob_new(req, J_SESSIONS);
    if (!j)
        return;
    j->want_p2p = j->want_group = true;
    if (!copy_groups(j)) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        hjob_free(j);
        return;
    }
    submit_convs(j);
}

/* client: getp2punread {uids, mtime?, mtypes?} / getgroupunread {gids,
 * mtime?, mtypes?} -> {p2p|group: {id: n}, ltime: {id: ms}}. Groups the
 * caller is not a member of are left out. */
void conv_method_unread_counts(rtmd_request *req)
{
    bool p2p = strcmp(req->method, "getp2punread") == 0;
    hjob *j = hjob_new(req, p2p ? J_P2PUNREAD : J_GROUPUNREAD);
    if (!j)
        return;
    /* The ids come back sorted and without repeats; the answers are maps
     * keyed by id, so the caller's order does not matter. */
    uint32_t nids = 0;
    bool ok = req_arg_ids(req, p2p ? "uids" : "gids", HISTORY_IDS_MAX, true, &j->ids, &nids);
    j->nids = nids;
    if (!ok || !hist_opt_i64(req, "mtime", &j->mtime, &j->mtime_given) ||
        !hist_arg_mtypes(req, j->mtypes, sizeof j->mtypes, true)) {
        hjob_free(j);
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
void conv_method_convlist(rtmd_request *req)
{
    const char *m = req->method;
    hjob *j = hjob_new(req, J_CONVLIST);
    if (!j)
        return;
    j->both_lists = strcmp(m, "getunreadconversationlist") == 0;
    j->want_p2p = j->both_lists || strncmp(m, "getp2p", 6) == 0;
    j->want_group = j->both_lists || strncmp(m, "getgroup", 8) == 0;
    j->unread_only = strstr(m, "unread") != NULL;
    j->clear = j->both_lists && arg_clear(req);
    if (!hist_opt_i64(req, "mtime", &j->mtime, &j->mtime_given) || !hist_arg_mtypes(req, j->mtypes, sizeof j->mtypes, true)) {
        hjob_free(j);
        return;
    }
    if (j->mtime_given && j->mtime <= 0)
        j->mtime_given = false;
    if (j->want_group && !copy_groups(j)) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        hjob_free(j);
        return;
    }
    submit_convs(j);
}

/* client: cleanunread {} -> {}: every conversation is read up to now. */
static int apply_clean(db_conn *db, void *arg)
{
    hjob *j = arg;
    int rc;
    j->mark_id = hist_query_i64(db, NEWEST_ID_SQL, j->pid, 0, &rc);
    if (rc != DB_OK)
        return rc;
    return hjob_apply_mark(db, j);
}

/* client: removesession {to} -> {}: the p2p conversation is read and
 * hidden until a newer message arrives. */
static int apply_removesession(db_conn *db, void *arg)
{
    hjob *j = arg;
    int rc;
    conv_key k = conv_p2p(j->uid, j->mark_xid);
    int64_t a = k.a, b = k.b;
    db_stmt_t *st;
    rc = db_stmt(db, "SELECT COALESCE(" CONV_NEWEST_ID_SQL("?1", "1", "?2", "?3") ", 0)",
              &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, a);
    db_bind_int64(st, 3, b);
    rc = db_step(st);
    if (rc == DB_ROW)
        j->mark_id = db_column_int64(st, 0);
    db_release(st);
    if (rc != DB_ROW)
        return rc;
    return hjob_apply_mark(db, j);
}

void conv_method_mark(rtmd_request *req)
{
    bool remove = strcmp(req->method, "removesession") == 0;
    int64_t to = 0;
    if (remove && !req_arg_int64(req, "to", &to))
        return;
    hjob *j = hjob_new(req, remove ? J_REMOVESESSION : J_CLEAN);
    if (!j)
        return;
    j->mark_type = remove ? CONV_P2P : 0;
    j->mark_xid = to;
    j->mark_removed = remove;
    if (store_submit(req->srv->store, remove ? apply_removesession : apply_clean, hjob_write_done, j) != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        hjob_free(j);
    }
}

