/* User, group and room info: the open (public) part `oinfo` and the private
 * part `pinfo` that applications keep on a user, a group or a room, and the
 * methods of both gates that set and read them (setuserinfo, getuserinfo,
 * getuseropeninfo, setgroupinfo, getgroupinfo, getgroupopeninfo,
 * getgroupsopeninfo, setroominfo, getroominfo, getroomopeninfo,
 * getroomsopeninfo). Owns the table `infos` (migration 11).
 *
 * Nothing is held in memory: info may be up to max_oinfo_bytes +
 * max_pinfo_bytes for each of millions of users, so every read goes to the
 * store's reader pool (store_read, statements cached per connection by
 * db_stmt) and copies only what its answer carries; a read of many ids
 * stops copying once its answer would exceed max_packet. A write goes
 * through the writer (store_submit) and is answered once committed, so a
 * read that follows an answered write sees it.
 *
 * Rights: the app server may read and write anything. A client writes its
 * own user info, the info of a group it belongs to (else 200041) and of a
 * room it is in (else 200040); it reads its own private info only (its
 * getuserinfo names nobody), a group's or room's private info only as a
 * member (200041 / 200040), and anyone's open info. Membership is asked
 * from groups.h and rooms.h; neither knows this module. */
#include "groups.h"
#include "log.h"
#include "methods.h"
#include "module.h"
#include "payload.h"
#include "rooms.h"
#include "rtm_errors.h"
#include "store.h"

#include "clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kinds of `infos` rows. */
enum { INFO_USER = 1, INFO_GROUP = 2, INFO_ROOM = 3 };

/* Most ids one getuseropeninfo / getgroupsopeninfo / getroomsopeninfo may
 * name (the SDKs' documented 100). */
#define INFO_MAX_IDS 100

static bool is_client(const rtmd_request *req)
{
    return req->gate != GATE_SERVER_TCP;
}

/* The kind a method works on, from its name ("...user...", "...group...",
 * "...room..."). */
static int method_kind(const rtmd_request *req)
{
    if (strstr(req->method, "user"))
        return INFO_USER;
    if (strstr(req->method, "group"))
        return INFO_GROUP;
    return INFO_ROOM;
}

/* The one user, group or room of a request and the caller's right to it.
 * User: on the client gate the caller itself, whatever the payload says;
 * on the server gate {uid}. Group / room: {gid} / {rid}; on the client gate
 * membership is required when need_member. Answers the request and returns
 * false on a bad request. */
static bool info_target(rtmd_request *req, int kind, bool need_member, int64_t *xid)
{
    if (kind == INFO_USER) {
        if (is_client(req)) {
            *xid = req->uid;
            return true;
        }
        return req_arg_int64(req, "uid", xid);
    }
    if (!req_arg_int64(req, kind == INFO_GROUP ? "gid" : "rid", xid))
        return false;
    if (!is_client(req) || !need_member)
        return true;
    int64_t pid = req->project->pid;
    if (kind == INFO_GROUP && !groups_is_member(req->srv, pid, *xid, req->uid)) {
        request_error(req, RTM_EC_NOT_GROUP_MEMBER, "not group member");
        return false;
    }
    if (kind == INFO_ROOM && !rooms_is_member(req->srv, pid, *xid, req->uid)) {
        request_error(req, RTM_EC_NOT_IN_ROOM, "not in room");
        return false;
    }
    return true;
}

/* ---- writes: setuserinfo, setgroupinfo, setroominfo ---- */

typedef struct info_write {
    rtmd_request *req;
    int64_t pid, xid, now;
    int kind;
    bool has_o, has_p;
    size_t olen, plen;
    char bytes[]; /* oinfo then pinfo */
} info_write;

static int apply_info_write(db_conn *db, void *arg)
{
    info_write *w = arg;
    db_stmt_t *st;
    /* ?4 / ?5 NULL: that part is kept (or '' for a new row). */
    int rc = db_stmt(db,
                        "INSERT INTO infos(pid, kind, xid, oinfo, pinfo, updated_at)"
                        " VALUES (?1, ?2, ?3, COALESCE(?4, CAST('' AS BLOB)), COALESCE(?5, CAST('' AS BLOB)), ?6)"
                        " ON CONFLICT(pid, kind, xid) DO UPDATE SET oinfo = COALESCE(?4, infos.oinfo),"
                        " pinfo = COALESCE(?5, infos.pinfo), updated_at = ?6",
                        &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, w->pid);
    db_bind_int(st, 2, w->kind);
    db_bind_int64(st, 3, w->xid);
    /* A zero-length blob needs a non-NULL pointer, or SQLite binds NULL. */
    if (w->has_o)
        db_bind_blob(st, 4, w->olen ? w->bytes : "", (int)w->olen);
    if (w->has_p)
        db_bind_blob(st, 5, w->plen ? w->bytes + w->olen : "", (int)w->plen);
    db_bind_int64(st, 6, w->now);
    return db_step_release(st);
}

static void info_write_done(void *arg, int status)
{
    info_write *w = arg;
    if (status != DB_OK) {
        LOG_ERROR("info write (kind %d, id %" PRId64 ") failed: %s", w->kind, w->xid, db_errstr(status));
        module_answer_store_failure(w->req, status);
    } else {
        request_answer_empty(w->req);
    }
    free(w);
}

/* An optional oinfo / pinfo field: absent or nil is not given; str or bin
 * up to max bytes; another type 10010, longer 200030. Answers the request
 * and returns false on a bad field. */
static bool info_field(rtmd_request *req, const char *key, uint32_t max, bool *given, const char **s, size_t *len)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    *given = false;
    *s = NULL;
    *len = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return true;
    if (!mp_obj_str(o, s, len)) {
        req_arg_error(req, key);
        return false;
    }
    if (*len > max) {
        char ex[96];
        snprintf(ex, sizeof ex, "%s larger than %" PRIu32 " bytes", key, max);
        request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, ex);
        return false;
    }
    *given = true;
    return true;
}

/* setuserinfo: server {uid, oinfo?, pinfo?}, client {oinfo?, pinfo?} (its
 * own); setgroupinfo {gid, oinfo?, pinfo?}; setroominfo {rid, oinfo?,
 * pinfo?} → {}. A part not given is kept. */
static void method_setinfo(rtmd_request *req)
{
    int kind = method_kind(req);
    int64_t xid;
    if (!info_target(req, kind, true, &xid))
        return;
    const rtmd_project_config *lim = &req->project->limits;
    bool has_o, has_p;
    const char *o, *p;
    size_t olen, plen;
    if (!info_field(req, "oinfo", lim->max_oinfo_bytes, &has_o, &o, &olen) ||
        !info_field(req, "pinfo", lim->max_pinfo_bytes, &has_p, &p, &plen))
        return;
    if (!has_o && !has_p) {
        request_answer_empty(req); /* nothing to change */
        return;
    }
    info_write *w = malloc(sizeof *w + olen + plen);
    if (!w) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    *w = (info_write){.req = req, .pid = req->project->pid, .xid = xid, .now = clock_unix_seconds(), .kind = kind,
                      .has_o = has_o, .has_p = has_p, .olen = olen, .plen = plen};
    if (olen)
        memcpy(w->bytes, o, olen);
    if (plen)
        memcpy(w->bytes + olen, p, plen);
    if (store_submit(req->srv->store, apply_info_write, info_write_done, w) != 0) {
        free(w);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

/* ---- reads of one: getuserinfo, getgroupinfo, getroominfo and the open
 * forms getuseropeninfo (never one), getgroupopeninfo, getroomopeninfo ---- */

typedef struct info_read {
    rtmd_request *req;
    int64_t pid, xid;
    int kind;
    bool private_too; /* answer pinfo as well */
    char *o, *p;
    size_t olen, plen;
} info_read;

static void info_read_free(info_read *r)
{
    free(r->o);
    free(r->p);
    free(r);
}

static char *copy_blob(db_stmt_t *st, int col, size_t *len)
{
    const void *src = db_column_blob(st, col);
    size_t n = (size_t)db_column_bytes(st, col);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    if (n)
        memcpy(out, src, n);
    *len = n;
    return out;
}

static int read_one(db_conn *db, void *arg)
{
    info_read *r = arg;
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT oinfo, pinfo FROM infos WHERE pid = ?1 AND kind = ?2 AND xid = ?3", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, r->pid);
    db_bind_int(st, 2, r->kind);
    db_bind_int64(st, 3, r->xid);
    bool row = false;
    rc = db_step_row(st, &row);
    if (rc == DB_OK && row) {
        r->o = copy_blob(st, 0, &r->olen);
        if (r->private_too)
            r->p = copy_blob(st, 1, &r->plen);
        rc = !r->o || (r->private_too && !r->p) ? DB_NOMEM : DB_OK;
    }
    db_release(st);
    return rc;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, (uint32_t)len);
    msgpack_pack_str_body(pk, s ? s : "", len);
}

static void read_one_done(void *arg, int status)
{
    info_read *r = arg;
    if (status != DB_OK) {
        LOG_ERROR("info read (kind %d, id %" PRId64 ") failed: %s", r->kind, r->xid, db_errstr(status));
        module_answer_store_failure(r->req, status);
        info_read_free(r);
        return;
    }
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, r->private_too ? 2 : 1);
    mp_pack_cstr(&pk, "oinfo");
    pack_str(&pk, r->o, r->olen);
    if (r->private_too) {
        mp_pack_cstr(&pk, "pinfo");
        pack_str(&pk, r->p, r->plen);
    }
    request_answer(r->req, &body);
    msgpack_sbuffer_destroy(&body);
    info_read_free(r);
}

/* getuserinfo: server {uid}, client {} (its own) → {oinfo, pinfo};
 * getgroupinfo {gid} / getroominfo {rid} → {oinfo, pinfo} (a client must
 * be a member); getgroupopeninfo {gid} / getroomopeninfo {rid} → {oinfo}.
 * Nothing stored answers "". */
static void method_getinfo(rtmd_request *req)
{
    int kind = method_kind(req);
    bool open = strstr(req->method, "openinfo") != NULL;
    int64_t xid;
    if (!info_target(req, kind, !open, &xid))
        return;
    info_read *r = calloc(1, sizeof *r);
    if (!r) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    *r = (info_read){.req = req, .pid = req->project->pid, .xid = xid, .kind = kind, .private_too = !open};
    if (store_read(req->srv->store, read_one, read_one_done, r) != 0) {
        info_read_free(r);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

/* ---- reads of many: getuseropeninfo, getgroupsopeninfo, getroomsopeninfo ---- */

typedef struct info_many {
    rtmd_request *req;
    int64_t pid;
    int kind;
    size_t budget;         /* bytes the entries may take */
    bool too_large;
    uint32_t found;        /* entries packed */
    msgpack_sbuffer entries; /* "id": oinfo pairs, packed on the pool thread */
    uint32_t n;
    int64_t ids[];
} info_many;

static void info_many_free(info_many *m)
{
    msgpack_sbuffer_destroy(&m->entries);
    free(m);
}

static int exec_one(db_conn *db, const char *sql)
{
    return db_exec(db, sql);
}

static int read_many_txn(db_conn *db, info_many *m)
{
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT oinfo FROM infos WHERE pid = ?1 AND kind = ?2 AND xid = ?3", &st);
    if (rc != DB_OK)
        return rc;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &m->entries, msgpack_sbuffer_write);
    for (uint32_t i = 0; i < m->n && rc == DB_OK; i++) {
        db_reset(st);
        db_bind_int64(st, 1, m->pid);
        db_bind_int(st, 2, m->kind);
        db_bind_int64(st, 3, m->ids[i]);
        rc = db_step(st);
        if (rc == DB_DONE) {
            rc = DB_OK;
            continue;
        }
        if (rc != DB_ROW)
            break;
        rc = DB_OK;
        const void *o = db_column_blob(st, 0);
        size_t olen = (size_t)db_column_bytes(st, 0);
        if (olen == 0)
            continue; /* no open info: left out */
        if (m->entries.size + olen + 32 > m->budget) {
            m->too_large = true;
            break;
        }
        char key[24];
        int klen = snprintf(key, sizeof key, "%" PRId64, m->ids[i]);
        msgpack_pack_str(&pk, (uint32_t)klen);
        msgpack_pack_str_body(&pk, key, (size_t)klen);
        msgpack_pack_str(&pk, (uint32_t)olen);
        msgpack_pack_str_body(&pk, o, olen);
        m->found++;
    }
    db_release(st);
    return rc;
}

static int read_many(db_conn *db, void *arg)
{
    /* One transaction: every id is read from the same snapshot. */
    int rc = exec_one(db, "BEGIN");
    if (rc != DB_OK)
        return rc;
    rc = read_many_txn(db, arg);
    exec_one(db, rc == DB_OK ? "COMMIT" : "ROLLBACK");
    return rc;
}

static void read_many_done(void *arg, int status)
{
    info_many *m = arg;
    if (status != DB_OK) {
        LOG_ERROR("info read of %" PRIu32 " ids (kind %d) failed: %s", m->n, m->kind, db_errstr(status));
        module_answer_store_failure(m->req, status);
    } else if (m->too_large) {
        request_error(m->req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, "answer larger than max_packet");
    } else {
        msgpack_sbuffer body;
        msgpack_sbuffer_init(&body);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_cstr(&pk, "info");
        msgpack_pack_map(&pk, m->found);
        if (m->entries.size)
            msgpack_sbuffer_write(&body, m->entries.data, m->entries.size);
        request_answer(m->req, &body);
        msgpack_sbuffer_destroy(&body);
    }
    info_many_free(m);
}

/* getuseropeninfo {uids} / getgroupsopeninfo {gids} / getroomsopeninfo
 * {rids} → {info: {"<id>": oinfo}}: at most 100 ids (200032), none 200033;
 * ids without open info are left out. Anyone may ask. */
static void method_getmanyopeninfo(rtmd_request *req)
{
    int kind = method_kind(req);
    const char *key = kind == INFO_USER ? "uids" : kind == INFO_GROUP ? "gids" : "rids";
    int64_t *ids;
    uint32_t n;
    if (!req_arg_ids(req, key, INFO_MAX_IDS, false, &ids, &n))
        return;
    info_many *m = calloc(1, sizeof *m + (size_t)n * sizeof m->ids[0]);
    if (!m) {
        free(ids);
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    m->req = req;
    m->pid = req->project->pid;
    m->kind = kind;
    size_t max_packet = req->srv->cfg.max_packet;
    m->budget = max_packet > 2048 ? max_packet - 1024 : max_packet / 2;
    msgpack_sbuffer_init(&m->entries);
    m->n = n;
    memcpy(m->ids, ids, (size_t)n * sizeof ids[0]);
    free(ids);
    if (store_read(req->srv->store, read_many, read_many_done, m) != 0) {
        info_many_free(m);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

static const rtmd_method info_methods[] = {
    {"setuserinfo", GATES_SERVER | GATES_CLIENT, method_setinfo, 0},
    {"getuserinfo", GATES_SERVER | GATES_CLIENT, method_getinfo, 0},
    {"getuseropeninfo", GATES_SERVER | GATES_CLIENT, method_getmanyopeninfo, 0},
    {"setgroupinfo", GATES_SERVER | GATES_CLIENT, method_setinfo, 0},
    {"getgroupinfo", GATES_SERVER | GATES_CLIENT, method_getinfo, 0},
    {"getgroupopeninfo", GATES_CLIENT, method_getinfo, 0},
    {"getgroupsopeninfo", GATES_CLIENT, method_getmanyopeninfo, 0},
    {"setroominfo", GATES_SERVER | GATES_CLIENT, method_setinfo, 0},
    {"getroominfo", GATES_SERVER | GATES_CLIENT, method_getinfo, 0},
    {"getroomopeninfo", GATES_CLIENT, method_getinfo, 0},
    {"getroomsopeninfo", GATES_CLIENT, method_getmanyopeninfo, 0},
};

const rtmd_module info_module = {
    .name = "info",
    RTMD_MODULE_METHODS(info_methods),
};
