/* Bans and the project blacklist (see bans.h): the bans table mirrored in
 * memory as, per (pid, uid), the user's short list of bans {kind, target,
 * until}; and the ban methods of the server gate.
 *
 * kind 1 = group ban (target gid), 2 = room ban (target rid), 3 = project
 * blacklist (target 0), 4 = project ban (target 0: may not send anything).
 * A group or room ban with target 0 (BAN_ALL) bans
 * the user in every group or every room: the server SDKs send addgroupban,
 * removegroupban, addroomban and removeroomban without gid or rid for that
 * (the Go SDK for an id <= 0, which its documentation calls all groups or
 * all rooms), so an absent or nil gid or rid, or one <= 0, names it; no
 * group or room has such an id for the ban methods. isbanofgroup and
 * isbanofroom with an id answer whether either ban holds there; without
 * one, whether the ban of all holds. Removing one group's ban leaves a ban
 * of all in force, and the other way round. btime is in seconds; btime <= 0 bans for ever
 * (until 0). A timed ban is stored with until rounded up to the next whole
 * second, so it lasts at least btime seconds, and stops counting once that
 * second has passed: lookups check expiry and drop expired entries on the
 * way (lazily); expired rows are not loaded at start-up and are deleted
 * from the store then.
 *
 * As in groups.c, memory follows the store: a change is applied in the
 * store's done callback after its commit, then answered. Adding a user to
 * the blacklist kicks out its connections once the ban is durable; auth.c
 * refuses the login of a blacklisted user with 200024. Group, room and
 * project bans only forbid sending (checked by messages.c): a project ban
 * (addprojectban, the Go SDK's AddProjectBan, "muted in the project") is
 * not the blacklist (addprojectblack, "may not log in"). */
#include "bans.h"

#include "clock.h"
#include "cluster.h"
#include "grow.h"
#include "log.h"
#include "methods.h"
#include "payload.h"
#include "rtm_errors.h"
#include "module.h"
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BAN_GROUP = 1, BAN_ROOM = 2, BAN_PROJECT = 3, BAN_PROJECT_MUTE = 4 };
/* The target of a group or room ban of every group or room. */
#define BAN_ALL 0

typedef struct ban {
    int64_t target;
    int64_t until; /* unix seconds, 0 = for ever */
    int kind;
} ban;

typedef struct user_bans {
    ban *v;
    uint32_t n, cap;
} user_bans;

struct bans_state {
    pairmap users; /* (pid, uid) -> user_bans */
};

static struct bans_state *state(rtmd_server *srv)
{
    return srv->svc ? srv->svc->bans : NULL;
}

static bool expired(const ban *b, uint64_t now_ms)
{
    return b->until != 0 && (uint64_t)b->until * 1000u <= now_ms;
}

static void user_bans_drop_if_empty(struct bans_state *st, int64_t pid, int64_t uid, user_bans *u)
{
    if (u->n == 0) {
        pairmap_del(&st->users, (uint64_t)pid, (uint64_t)uid);
        free(u->v);
        free(u);
    }
}

/* Whether (kind, target) bans the user now, or for a group or room a ban of
 * them all; drops expired entries. */
static bool banned(rtmd_server *srv, int64_t pid, int64_t uid, int kind, int64_t target)
{
    struct bans_state *st = state(srv);
    user_bans *u = st ? pairmap_get(&st->users, (uint64_t)pid, (uint64_t)uid) : NULL;
    if (!u)
        return false;
    uint64_t now = (uint64_t)clock_unix_ms();
    bool hit = false;
    uint32_t m = 0;
    for (uint32_t i = 0; i < u->n; i++) {
        if (expired(&u->v[i], now))
            continue;
        if (u->v[i].kind == kind && (u->v[i].target == target || (kind != BAN_PROJECT && u->v[i].target == BAN_ALL)))
            hit = true;
        u->v[m++] = u->v[i];
    }
    u->n = m;
    user_bans_drop_if_empty(st, pid, uid, u);
    return hit;
}

static int ban_set(struct bans_state *st, int64_t pid, int64_t uid, int kind, int64_t target, int64_t until)
{
    user_bans *u = pairmap_get(&st->users, (uint64_t)pid, (uint64_t)uid);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u || pairmap_put(&st->users, (uint64_t)pid, (uint64_t)uid, u) != 0) {
            free(u);
            return -1;
        }
    }
    for (uint32_t i = 0; i < u->n; i++) {
        if (u->v[i].kind == kind && u->v[i].target == target) {
            u->v[i].until = until;
            return 0;
        }
    }
    if (u->n == u->cap) {
        uint32_t cap = u->cap ? u->cap * 2 : 2;
        ban *v = realloc(u->v, (size_t)cap * sizeof *v);
        if (!v) {
            user_bans_drop_if_empty(st, pid, uid, u);
            return -1;
        }
        u->v = v;
        u->cap = cap;
    }
    u->v[u->n++] = (ban){target, until, kind};
    return 0;
}

static void ban_clear(struct bans_state *st, int64_t pid, int64_t uid, int kind, int64_t target)
{
    user_bans *u = pairmap_get(&st->users, (uint64_t)pid, (uint64_t)uid);
    if (!u)
        return;
    for (uint32_t i = 0; i < u->n; i++) {
        if (u->v[i].kind == kind && u->v[i].target == target) {
            u->v[i] = u->v[--u->n];
            break;
        }
    }
    user_bans_drop_if_empty(st, pid, uid, u);
}

bool bans_group_banned(rtmd_server *srv, int64_t pid, int64_t gid, int64_t uid)
{
    return banned(srv, pid, uid, BAN_GROUP, gid);
}

bool bans_room_banned(rtmd_server *srv, int64_t pid, int64_t rid, int64_t uid)
{
    return banned(srv, pid, uid, BAN_ROOM, rid);
}

bool bans_blacklisted(rtmd_server *srv, int64_t pid, int64_t uid)
{
    return banned(srv, pid, uid, BAN_PROJECT, 0);
}

bool bans_project_banned(rtmd_server *srv, int64_t pid, int64_t uid)
{
    return banned(srv, pid, uid, BAN_PROJECT_MUTE, 0);
}

/* ---- other nodes (docs/cluster.md) ----
 * After a ban write commits, every other node is told whose bans to reload:
 * a record of two int64s {pid, uid}, acknowledged (cluster_send_all_acked):
 * the write is answered once every other node has reloaded. After this
 * node (re)joins, each project's bans are reloaded whole. Reloads run on
 * the writer (store_submit): they land in order with this node's own
 * writes, and hold the record's acknowledgement until they are in place. */

typedef struct ban_row {
    int64_t uid, target, until;
    int kind;
} ban_row;

typedef struct ban_reload {
    rtmd_server *srv;
    cluster_ack_token *hold; /* the acknowledgement it delays */
    int64_t pid, uid;
    bool all; /* every user of the project */
    int64_t now;
    size_t n, cap;
    ban_row *rows;
} ban_reload;

/* Returns true when done(arg) runs once the other nodes have the change. */
static bool tell_nodes(rtmd_server *srv, int64_t pid, int64_t uid, cluster_acked_fn done, void *arg)
{
    if (!cluster_enabled(srv))
        return false;
    int64_t v[2] = {pid, uid};
    uint8_t rec[16];
    return cluster_send_all_acked(srv, CLUSTER_REC_INV_BANS, rec, cluster_ids_pack(rec, v, 2), done, arg);
}

static int apply_reload(db_conn *db, void *arg)
{
    ban_reload *r = arg;
    r->n = 0;
    db_stmt_t *st;
    int rc = db_prepare(db,
                        r->all ? "SELECT uid, kind, target, until FROM bans WHERE pid = ?1 AND (until = 0 OR until > ?2)"
                               : "SELECT uid, kind, target, until FROM bans WHERE pid = ?1 AND (until = 0 OR until > ?2)"
                                 " AND uid = ?3",
                        &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, r->pid);
    db_bind_int64(st, 2, r->now);
    if (!r->all)
        db_bind_int64(st, 3, r->uid);
    while ((rc = db_step(st)) == DB_ROW) {
        if (grow_for_one(&r->rows, &r->cap, r->n, sizeof r->rows[0]) != 0) {
            rc = DB_NOMEM;
            break;
        }
        r->rows[r->n++] = (ban_row){db_column_int64(st, 0), db_column_int64(st, 2), db_column_int64(st, 3),
                                    db_column_int(st, 1)};
    }
    db_finalize(st);
    return rc == DB_DONE ? DB_OK : rc;
}

static void drop_user(struct bans_state *st, int64_t pid, int64_t uid)
{
    user_bans *u = pairmap_get(&st->users, (uint64_t)pid, (uint64_t)uid);
    if (u) {
        u->n = 0;
        user_bans_drop_if_empty(st, pid, uid, u);
    }
}

static void reload_done(void *arg, int status)
{
    ban_reload *r = arg;
    struct bans_state *st = state(r->srv);
    if (st && status == DB_OK) {
        if (r->all) {
            int64_t *uids = malloc((st->users.count ? st->users.count : 1) * sizeof *uids);
            size_t n = 0;
            if (!uids)
                status = DB_NOMEM;
            for (size_t i = 0; uids && i < st->users.cap; i++)
                if (st->users.slots[i].value && st->users.slots[i].a == (uint64_t)r->pid)
                    uids[n++] = (int64_t)st->users.slots[i].b;
            for (size_t i = 0; i < n; i++)
                drop_user(st, r->pid, uids[i]);
            free(uids);
        } else {
            drop_user(st, r->pid, r->uid);
        }
        for (size_t i = 0; status == DB_OK && i < r->n; i++)
            if (ban_set(st, r->pid, r->rows[i].uid, r->rows[i].kind, r->rows[i].target, r->rows[i].until) != 0)
                status = DB_NOMEM;
    }
    if (st && status != DB_OK)
        LOG_ERROR("bans: reloading pid %lld uid %lld for another node's change failed: %s", (long long)r->pid,
                  (long long)r->uid, db_errstr(status));
    cluster_ack_release(r->srv, r->hold);
    free(r->rows);
    free(r);
}

static void reload(rtmd_server *srv, int64_t pid, int64_t uid, bool all)
{
    ban_reload *r = calloc(1, sizeof *r);
    if (!r) {
        LOG_ERROR("bans: out of memory reloading pid %lld", (long long)pid);
        return;
    }
    *r = (ban_reload){.srv = srv, .pid = pid, .uid = uid, .all = all,
                      .now = (int64_t)((uint64_t)clock_unix_ms() / 1000u), .hold = cluster_ack_hold(srv)};
    if (store_submit(srv->store, apply_reload, reload_done, r) != 0) {
        cluster_ack_release(srv, r->hold);
        free(r);
    }
}

/* A record from another node: hostile, checked. */
static void on_invalidate(rtmd_server *srv, const uint8_t *data, size_t len)
{
    int64_t v[2];
    if (state(srv) && cluster_ids_unpack(data, len, v, 2) && rtmd_server_project(srv, v[0]))
        reload(srv, v[0], v[1], false);
}

static void on_rejoin(rtmd_server *srv)
{
    for (size_t p = 0; p < srv->nprojects; p++)
        if (!srv->projects[p].removed)
            reload(srv, srv->projects[p].pid, 0, true);
}

/* ---- writes ---- */

typedef struct ban_write {
    rtmd_request *req;
    bool add;
    int kind;
    int64_t pid, uid, target, until;
    bool oom; /* stored, but not in memory: answered as an error */
} ban_write;

static int apply_ban_write(db_conn *db, void *arg)
{
    ban_write *w = arg;
    const char *sql = w->add ? "INSERT INTO bans(pid, kind, target, uid, until) VALUES (?1, ?2, ?3, ?4, ?5)"
                               " ON CONFLICT(pid, kind, target, uid) DO UPDATE SET until = excluded.until"
                             : "DELETE FROM bans WHERE pid = ?1 AND kind = ?2 AND target = ?3 AND uid = ?4";
    db_stmt_t *st;
    int rc = db_prepare(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, w->pid);
    db_bind_int(st, 2, w->kind);
    db_bind_int64(st, 3, w->target);
    db_bind_int64(st, 4, w->uid);
    if (w->add)
        db_bind_int64(st, 5, w->until);
    return store_step_finalize(st);
}

/* Answers a write once applied here and, on a cluster, on every other node. */
static void ban_write_answer(void *arg)
{
    ban_write *w = arg;
    if (w->oom)
        request_error(w->req, RTM_EC_UNKNOWN_ERROR, "out of memory");
    else
        request_answer_empty(w->req);
    free(w);
}

static void ban_write_done(void *arg, int status)
{
    ban_write *w = arg;
    rtmd_request *req = w->req;
    rtmd_server *srv = req->srv;
    struct bans_state *st = state(srv);
    if (!st) {
        /* The module is gone (exit): nothing to update. */
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        free(w);
        return;
    }
    if (status != DB_OK) {
        LOG_ERROR("ban write for uid %lld failed: %s", (long long)w->uid, db_errstr(status));
        module_answer_store_failure(req, status);
        free(w);
        return;
    }
    if (!w->add) {
        ban_clear(st, w->pid, w->uid, w->kind, w->target);
    } else if (ban_set(st, w->pid, w->uid, w->kind, w->target, w->until) != 0) {
        LOG_ERROR("out of memory recording a ban of uid %lld (stored, effective after a restart)", (long long)w->uid);
        w->oom = true;
    }
    bool kick = w->add && !w->oom && w->kind == BAN_PROJECT;
    int64_t pid = w->pid, uid = w->uid;
    if (tell_nodes(srv, pid, uid, ban_write_answer, w)) {
        if (kick) /* the answer waits for the other nodes; the kick need not */
            users_kickout(srv, pid, uid, NULL);
        return;
    }
    ban_write_answer(w);
    if (kick)
        users_kickout(srv, pid, uid, NULL);
}

/* The target key of each kind: "gid", "rid", or none for the blacklist. */
static const char *target_key(int kind)
{
    return kind == BAN_GROUP ? "gid" : kind == BAN_ROOM ? "rid" : NULL;
}

/* The target of a request: its gid or rid, BAN_ALL when that is absent,
 * nil or <= 0, or 0 for the blacklist. Answers 10010 and returns false when
 * the id is not an integer. */
static bool target_arg(rtmd_request *req, int kind, int64_t *target)
{
    const char *tk = target_key(kind);
    *target = BAN_ALL;
    if (!tk)
        return true;
    const msgpack_object *o = mp_map_get(req->args, tk);
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return true;
    if (!mp_obj_int64(o, target)) {
        req_arg_error(req, tk);
        return false;
    }
    if (*target <= 0)
        *target = BAN_ALL;
    return true;
}

static void ban_request(rtmd_request *req, int kind, bool add)
{
    int64_t target, uid, btime = 0;
    if (!target_arg(req, kind, &target) || !req_arg_int64(req, "uid", &uid) ||
        (add && !req_arg_int64(req, "btime", &btime)))
        return;
    ban_write *w = calloc(1, sizeof *w);
    if (!w) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    w->req = req;
    w->add = add;
    w->kind = kind;
    w->pid = req->project->pid;
    w->uid = uid;
    w->target = target;
    if (add && btime > 0) {
        /* At least btime seconds: round the end up to a whole second. */
        if (btime > INT64_MAX / 2000)
            btime = INT64_MAX / 2000;
        w->until = (int64_t)(((uint64_t)clock_unix_ms() + (uint64_t)btime * 1000u + 999u) / 1000u);
    }
    if (store_submit(req->srv->store, apply_ban_write, ban_write_done, w) != 0) {
        free(w);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

static void ban_query(rtmd_request *req, int kind)
{
    int64_t target, uid;
    if (!target_arg(req, kind, &target) || !req_arg_int64(req, "uid", &uid))
        return;
    request_answer_bool(req, "ok", banned(req->srv, req->project->pid, uid, kind, target));
}

/* server: addgroupban {gid?, uid, btime} -> {}; no gid: every group */
static void method_addgroupban(rtmd_request *req) { ban_request(req, BAN_GROUP, true); }
/* server: removegroupban {gid?, uid} -> {} */
static void method_removegroupban(rtmd_request *req) { ban_request(req, BAN_GROUP, false); }
/* server: isbanofgroup {gid?, uid} -> {ok} */
static void method_isbanofgroup(rtmd_request *req) { ban_query(req, BAN_GROUP); }
/* server: addroomban {rid?, uid, btime} -> {}; no rid: every room */
static void method_addroomban(rtmd_request *req) { ban_request(req, BAN_ROOM, true); }
/* server: removeroomban {rid?, uid} -> {} */
static void method_removeroomban(rtmd_request *req) { ban_request(req, BAN_ROOM, false); }
/* server: isbanofroom {rid?, uid} -> {ok} */
static void method_isbanofroom(rtmd_request *req) { ban_query(req, BAN_ROOM); }
/* server: addprojectblack {uid, btime} -> {}; kicks the user out */
static void method_addprojectblack(rtmd_request *req) { ban_request(req, BAN_PROJECT, true); }
/* server: removeprojectblack {uid} -> {} */
static void method_removeprojectblack(rtmd_request *req) { ban_request(req, BAN_PROJECT, false); }
/* server: isprojectblack {uid} -> {ok} */
static void method_isprojectblack(rtmd_request *req) { ban_query(req, BAN_PROJECT); }

/* server: addprojectban {uid, btime} -> {}: the user may not send */
static void method_addprojectban(rtmd_request *req) { ban_request(req, BAN_PROJECT_MUTE, true); }
/* server: removeprojectban {uid} -> {} */
static void method_removeprojectban(rtmd_request *req) { ban_request(req, BAN_PROJECT_MUTE, false); }
/* server: isprojectban {uid} -> {ok} */
static void method_isprojectban(rtmd_request *req) { ban_query(req, BAN_PROJECT_MUTE); }

/* ---- start-up ---- */

typedef struct ban_load {
    struct bans_state *st;
    int64_t now;
    size_t count;
} ban_load;

static int load_bans(db_conn *db, void *arg)
{
    ban_load *l = arg;
    db_stmt_t *st;
    int rc = db_prepare(db, "SELECT pid, kind, target, uid, until FROM bans WHERE until = 0 OR until > ?1", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, l->now);
    while ((rc = db_step(st)) == DB_ROW) {
        if (ban_set(l->st, db_column_int64(st, 0), db_column_int64(st, 3), db_column_int(st, 1),
                    db_column_int64(st, 2), db_column_int64(st, 4)) != 0) {
            rc = DB_NOMEM;
            break;
        }
        l->count++;
    }
    db_finalize(st);
    return rc == DB_DONE ? DB_OK : rc;
}

static int apply_purge(db_conn *db, void *arg)
{
    const int64_t *now = arg;
    db_stmt_t *st;
    int rc = db_prepare(db, "DELETE FROM bans WHERE until != 0 AND until <= ?1", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, *now);
    return store_step_finalize(st);
}

static void purge_done(void *arg, int status)
{
    if (status != DB_OK)
        LOG_WARN("purging expired bans failed: %s", db_errstr(status));
    free(arg);
}

/* ---- module life cycle ---- */

static int bans_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct bans_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->bans = st;
    ban_load l = {st, (int64_t)((uint64_t)clock_unix_ms() / 1000u), 0};
    if (module_load(srv, load_bans, &l) != DB_OK) {
        snprintf(err, errlen, "cannot load bans from the store");
        return -1;
    }
    int64_t *now = malloc(sizeof *now);
    if (now) {
        *now = l.now;
        if (store_submit(srv->store, apply_purge, purge_done, now) != 0)
            free(now);
    }
    LOG_INFO("bans: %zu bans loaded", l.count);
    cluster_on_record(srv, CLUSTER_REC_INV_BANS, on_invalidate);
    cluster_on_rejoin(srv, on_rejoin);
    return 0;
}

static const rtmd_method bans_methods[] = {
    {"addgroupban", GATES_SERVER, method_addgroupban, 0},
    {"removegroupban", GATES_SERVER, method_removegroupban, 0},
    {"isbanofgroup", GATES_SERVER, method_isbanofgroup, 0},
    {"addroomban", GATES_SERVER, method_addroomban, 0},
    {"removeroomban", GATES_SERVER, method_removeroomban, 0},
    {"isbanofroom", GATES_SERVER, method_isbanofroom, 0},
    {"addprojectblack", GATES_SERVER, method_addprojectblack, 0},
    {"removeprojectblack", GATES_SERVER, method_removeprojectblack, 0},
    {"isprojectblack", GATES_SERVER, method_isprojectblack, 0},
    {"addprojectban", GATES_SERVER, method_addprojectban, 0},
    {"removeprojectban", GATES_SERVER, method_removeprojectban, 0},
    {"isprojectban", GATES_SERVER, method_isprojectban, 0},
};

static void bans_free(rtmd_server *srv)
{
    struct bans_state *st = state(srv);
    if (!st)
        return;
    for (size_t i = 0; i < st->users.cap; i++) {
        user_bans *u = st->users.slots[i].value;
        if (u) {
            free(u->v);
            free(u);
        }
    }
    pairmap_free(&st->users);
    free(st);
    srv->svc->bans = NULL;
}

const rtmd_module bans_module = {
    .name = "bans",
    .init = bans_init,
    .free = bans_free,
    RTMD_MODULE_METHODS(bans_methods),
};
