/* Persistent groups (see groups.h): the group_members table mirrored in
 * memory as, per (pid, gid), the sorted member set and, per (pid, uid), the
 * sorted set of the user's groups; and the group methods of both gates.
 *
 * Memory follows the store: a change is applied to memory in the store's
 * done callback, once its transaction committed, and only then answered.
 * Writes are applied and reported in submission order, so memory always
 * equals the committed table. To keep the member limit exact while adds are
 * in flight, each group counts the uids reserved by uncommitted adds.
 *
 * Limits, per project (config.c): max_group_members members in one group,
 * and max_groups groups in the project, counted as the groups held in
 * memory (those with members or with an add in flight), so that a group
 * made by an add not yet committed counts too. Either is refused with
 * 200042. Groups loaded at start count even past a lowered limit.
 *
 * Rights: the app server may do anything. A client may add or remove
 * members only in a group it belongs to (200041 otherwise), so a client
 * cannot create a group: groups mirror the application's own groups and are
 * created by the app server (addgroupmembers on the server gate). A client
 * may remove itself (leave). getgroupmembers and getgroupcount need
 * membership on the client gate; getusergroups lists the caller's groups. */
#include "groups.h"
#include "clock.h"
#include "cluster.h"
#include "grow.h"
#include "idset.h"

#include "log.h"
#include "methods.h"
#include "payload.h"
#include "rtm_errors.h"
#include "module.h"
#include "users.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct group {
    idset members;
    uint32_t reserved; /* uids of adds accepted but not yet committed */
} group;

struct groups_state {
    pairmap groups; /* (pid, gid) -> group */
    pairmap users;  /* (pid, uid) -> idset of gids */
    pairmap counts; /* (pid, 0) -> number of the project's groups, as a pointer-sized integer */
};

static struct groups_state *state(rtmd_server *srv)
{
    return srv->svc ? srv->svc->groups : NULL;
}

/* ---- memory ---- */

static size_t project_groups(struct groups_state *st, int64_t pid)
{
    return (size_t)(uintptr_t)pairmap_get(&st->counts, (uint64_t)pid, 0);
}

/* Adds delta (+1 or -1) to the project's count of groups; the entry goes
 * when it reaches 0. Returns 0, or -1 when memory ran out. */
static int project_groups_add(struct groups_state *st, int64_t pid, int delta)
{
    size_t n = project_groups(st, pid) + (size_t)(ptrdiff_t)delta;
    if (n == 0) {
        pairmap_del(&st->counts, (uint64_t)pid, 0);
        return 0;
    }
    return pairmap_put(&st->counts, (uint64_t)pid, 0, (void *)(uintptr_t)n);
}

static group *group_get(struct groups_state *st, int64_t pid, int64_t gid, bool create)
{
    group *g = pairmap_get(&st->groups, (uint64_t)pid, (uint64_t)gid);
    if (!g && create) {
        g = calloc(1, sizeof *g);
        if (g && project_groups_add(st, pid, 1) != 0) {
            free(g);
            return NULL;
        }
        if (g && pairmap_put(&st->groups, (uint64_t)pid, (uint64_t)gid, g) != 0) {
            project_groups_add(st, pid, -1);
            free(g);
            g = NULL;
        }
    }
    return g;
}

static void group_maybe_drop(struct groups_state *st, int64_t pid, int64_t gid, group *g)
{
    if (g && g->members.n == 0 && g->reserved == 0) {
        pairmap_del(&st->groups, (uint64_t)pid, (uint64_t)gid);
        project_groups_add(st, pid, -1);
        idset_free(&g->members);
        free(g);
    }
}

static int member_add(struct groups_state *st, int64_t pid, int64_t gid, int64_t uid)
{
    group *g = group_get(st, pid, gid, true);
    if (!g)
        return -1;
    idset *u = pairmap_get(&st->users, (uint64_t)pid, (uint64_t)uid);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u || pairmap_put(&st->users, (uint64_t)pid, (uint64_t)uid, u) != 0) {
            free(u);
            group_maybe_drop(st, pid, gid, g);
            return -1;
        }
    }
    if (idset_add(&g->members, uid) < 0 || idset_add(u, gid) < 0) {
        idset_del(&g->members, uid);
        if (u->n == 0) {
            pairmap_del(&st->users, (uint64_t)pid, (uint64_t)uid);
            idset_free(u);
            free(u);
        }
        group_maybe_drop(st, pid, gid, g);
        return -1;
    }
    return 0;
}

static void user_forget_group(struct groups_state *st, int64_t pid, int64_t uid, int64_t gid)
{
    idset *u = pairmap_get(&st->users, (uint64_t)pid, (uint64_t)uid);
    if (u && idset_del(u, gid) && u->n == 0) {
        pairmap_del(&st->users, (uint64_t)pid, (uint64_t)uid);
        idset_free(u);
        free(u);
    }
}

static void member_del(struct groups_state *st, int64_t pid, int64_t gid, int64_t uid)
{
    group *g = group_get(st, pid, gid, false);
    if (!g || !idset_del(&g->members, uid))
        return;
    user_forget_group(st, pid, uid, gid);
    group_maybe_drop(st, pid, gid, g);
}

static void group_drop_all(struct groups_state *st, int64_t pid, int64_t gid)
{
    group *g = group_get(st, pid, gid, false);
    if (!g)
        return;
    for (uint32_t i = 0; i < g->members.n; i++)
        user_forget_group(st, pid, g->members.v[i], gid);
    g->members.n = 0;
    group_maybe_drop(st, pid, gid, g);
}

/* Drops every group of the project; -1 when out of memory (nothing
 * dropped). */
static int project_drop_all(struct groups_state *st, int64_t pid)
{
    size_t n = 0;
    int64_t *gids = malloc((st->groups.count ? st->groups.count : 1) * sizeof *gids);
    if (!gids)
        return -1;
    for (size_t i = 0; i < st->groups.cap; i++)
        if (st->groups.slots[i].value && st->groups.slots[i].a == (uint64_t)pid)
            gids[n++] = (int64_t)st->groups.slots[i].b;
    for (size_t i = 0; i < n; i++)
        group_drop_all(st, pid, gids[i]);
    free(gids);
    return 0;
}

bool groups_is_member(rtmd_server *srv, int64_t pid, int64_t gid, int64_t uid)
{
    struct groups_state *st = state(srv);
    group *g = st ? group_get(st, pid, gid, false) : NULL;
    return g && idset_has(&g->members, uid);
}

const int64_t *groups_members(rtmd_server *srv, int64_t pid, int64_t gid, size_t *count)
{
    struct groups_state *st = state(srv);
    group *g = st ? group_get(st, pid, gid, false) : NULL;
    *count = g ? g->members.n : 0;
    return g && g->members.n ? g->members.v : NULL;
}

const int64_t *groups_of_user(rtmd_server *srv, int64_t pid, int64_t uid, size_t *count)
{
    struct groups_state *st = state(srv);
    idset *u = st ? pairmap_get(&st->users, (uint64_t)pid, (uint64_t)uid) : NULL;
    *count = u ? u->n : 0;
    return u && u->n ? u->v : NULL;
}

/* ---- request helpers ---- */

static void pack_ids(msgpack_packer *pk, const int64_t *v, size_t n)
{
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_int64(pk, v[i]);
}

static bool caller_is_client(const rtmd_request *req)
{
    return req->gate != GATE_SERVER_TCP;
}

/* ---- other nodes (docs/cluster.md) ----
 * After a write commits, every other node is told which group (or which
 * project's groups) to reload: a record of three int64s {what, pid, gid},
 * acknowledged (cluster_send_all_acked): the write is answered once every
 * other node has reloaded. The reload runs on the writer (store_submit),
 * so its result lands in submission order with this node's own writes; it
 * holds the record's acknowledgement until it is in place. */

enum { INV_GROUP = 1, INV_PROJECT = 2 };

/* Returns true when done(arg) runs once the other nodes have the change. */
static bool tell_nodes(rtmd_server *srv, int64_t what, int64_t pid, int64_t gid, cluster_acked_fn done, void *arg)
{
    if (!cluster_enabled(srv))
        return false;
    int64_t v[3] = {what, pid, gid};
    uint8_t rec[24];
    return cluster_send_all_acked(srv, CLUSTER_REC_INV_GROUPS, rec, cluster_ids_pack(rec, v, 3), done, arg);
}

typedef struct group_reload {
    rtmd_server *srv;
    cluster_ack_token *hold; /* the acknowledgement it delays */
    int64_t what, pid, gid;
    size_t n, cap;
    int64_t (*rows)[2]; /* (gid, uid) */
} group_reload;

static int apply_reload(db_conn *db, void *arg)
{
    group_reload *r = arg;
    r->n = 0;
    db_stmt_t *st;
    int rc = db_prepare(db,
                        r->what == INV_GROUP ? "SELECT gid, uid FROM group_members WHERE pid = ?1 AND gid = ?2"
                                               " ORDER BY uid"
                                             : "SELECT gid, uid FROM group_members WHERE pid = ?1 ORDER BY gid, uid",
                        &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, r->pid);
    if (r->what == INV_GROUP)
        db_bind_int64(st, 2, r->gid);
    while ((rc = db_step(st)) == DB_ROW) {
        if (grow_for_one(&r->rows, &r->cap, r->n, sizeof r->rows[0]) != 0) {
            rc = DB_NOMEM;
            break;
        }
        r->rows[r->n][0] = db_column_int64(st, 0);
        r->rows[r->n][1] = db_column_int64(st, 1);
        r->n++;
    }
    db_finalize(st);
    return rc == DB_DONE ? DB_OK : rc;
}

static void reload_done(void *arg, int status)
{
    group_reload *r = arg;
    struct groups_state *st = state(r->srv);
    if (st && status == DB_OK) {
        if (r->what == INV_GROUP)
            group_drop_all(st, r->pid, r->gid);
        else if (project_drop_all(st, r->pid) != 0)
            status = DB_NOMEM;
        for (size_t i = 0; status == DB_OK && i < r->n; i++)
            if (member_add(st, r->pid, r->rows[i][0], r->rows[i][1]) != 0)
                status = DB_NOMEM;
    }
    if (st && status != DB_OK)
        LOG_ERROR("groups: reloading pid %lld gid %lld for another node's change failed: %s", (long long)r->pid,
                  (long long)r->gid, db_errstr(status));
    cluster_ack_release(r->srv, r->hold);
    free(r->rows);
    free(r);
}

static void reload(rtmd_server *srv, int64_t what, int64_t pid, int64_t gid)
{
    group_reload *r = calloc(1, sizeof *r);
    if (!r) {
        LOG_ERROR("groups: out of memory reloading pid %lld gid %lld", (long long)pid, (long long)gid);
        return;
    }
    *r = (group_reload){.srv = srv, .what = what, .pid = pid, .gid = gid, .hold = cluster_ack_hold(srv)};
    if (store_submit(srv->store, apply_reload, reload_done, r) != 0) {
        cluster_ack_release(srv, r->hold);
        free(r);
    }
}

/* A record from another node: hostile, checked. */
static void on_invalidate(rtmd_server *srv, const uint8_t *data, size_t len)
{
    int64_t v[3];
    if (!state(srv) || !cluster_ids_unpack(data, len, v, 3) || (v[0] != INV_GROUP && v[0] != INV_PROJECT) ||
        !rtmd_server_project(srv, v[1]))
        return;
    reload(srv, v[0], v[1], v[2]);
}

static void on_rejoin(rtmd_server *srv)
{
    for (size_t p = 0; p < srv->nprojects; p++)
        if (!srv->projects[p].removed)
            reload(srv, INV_PROJECT, srv->projects[p].pid, 0);
}

/* ---- writes ---- */

typedef enum { GW_ADD, GW_DEL, GW_DROP, GW_CLEAR } group_write_op;

typedef struct group_write {
    rtmd_request *req;
    group_write_op op;
    int64_t pid, gid, joined_at;
    uint32_t reserved; /* GW_ADD: reservation to release when done */
    uint32_t max_members, max_groups; /* GW_ADD on PostgreSQL: the limits counted in the store */
    const char *over;  /* GW_ADD on PostgreSQL: why the store's count refused it (DB_REFUSED) */
    bool oom;          /* stored, but not in memory: answered as an error */
    uint32_t n;
    int64_t uids[];
} group_write;

/* Runs sql once per uid of w (once for GW_DROP and GW_CLEAR), binding
 * ?1 pid, ?2 gid (not GW_CLEAR), ?3 the uid and ?4 joined_at (GW_ADD). */
static int apply_rows(db_conn *db, group_write *w, const char *sql)
{
    db_stmt_t *st;
    int rc = db_stmt(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    uint32_t rounds = w->op == GW_DROP || w->op == GW_CLEAR ? 1 : w->n;
    for (uint32_t i = 0; i < rounds && rc == DB_OK; i++) {
        db_reset(st);
        db_bind_int64(st, 1, w->pid);
        if (w->op != GW_CLEAR)
            db_bind_int64(st, 2, w->gid);
        if (w->op != GW_DROP && w->op != GW_CLEAR)
            db_bind_int64(st, 3, w->uids[i]);
        if (w->op == GW_ADD)
            db_bind_int64(st, 4, w->joined_at);
        rc = db_step(st);
        rc = rc == DB_DONE ? DB_OK : rc;
    }
    db_release(st);
    return rc;
}

/* An add on PostgreSQL, where other nodes add too: under the project's
 * advisory lock (module_limit_lock) the project's groups are counted
 * before a new group's first members go in, and the group's members after
 * the insert; past a limit the add is refused (w->over, DB_REFUSED: the
 * store undoes it). One lock per project: the count of its groups needs
 * it, and two locks could deadlock. */
static int apply_add_counted(db_conn *db, group_write *w)
{
    int64_t members, groups = 0;
    int rc = module_limit_lock(db, MODULE_LIMIT_PROJECT_GROUPS, w->pid, 0);
    if (rc == DB_OK)
        rc = module_count(db, "SELECT count(*) FROM group_members WHERE pid = ?1 AND gid = ?2", w->pid, w->gid,
                          &members);
    if (rc == DB_OK && members == 0)
        rc = module_count(db, "SELECT count(DISTINCT gid) FROM group_members WHERE pid = ?1", w->pid, 0, &groups);
    if (rc != DB_OK)
        return rc;
    if (members == 0 && (uint64_t)groups >= w->max_groups) {
        w->over = "exceed max groups of the project";
        return DB_REFUSED;
    }
    rc = apply_rows(db, w, "INSERT INTO group_members(pid, gid, uid, joined_at) VALUES (?1, ?2, ?3, ?4)"
                           " ON CONFLICT DO NOTHING");
    if (rc == DB_OK)
        rc = module_count_within(db, "SELECT count(*) FROM group_members WHERE pid = ?1 AND gid = ?2", w->pid,
                                 w->gid, w->max_members);
    if (rc == DB_REFUSED)
        w->over = "exceed max group members";
    return rc;
}

static int apply_group_write(db_conn *db, void *arg)
{
    group_write *w = arg;
    w->over = NULL; /* a replay starts afresh */
    if (w->op == GW_ADD && db_is_postgres(db))
        return apply_add_counted(db, w);
    return apply_rows(db, w, w->op == GW_ADD   ? "INSERT INTO group_members(pid, gid, uid, joined_at) VALUES (?1, ?2, ?3, ?4)"
                                                 " ON CONFLICT DO NOTHING"
                             : w->op == GW_DEL  ? "DELETE FROM group_members WHERE pid = ?1 AND gid = ?2 AND uid = ?3"
                             : w->op == GW_DROP ? "DELETE FROM group_members WHERE pid = ?1 AND gid = ?2"
                                                : "DELETE FROM group_members WHERE pid = ?1");
}

/* Answers a write once applied here and, on a cluster, on every other node. */
static void group_write_answer(void *arg)
{
    group_write *w = arg;
    if (w->oom)
        request_error(w->req, RTM_EC_UNKNOWN_ERROR, "out of memory");
    else
        request_answer_empty(w->req);
    free(w);
}

static void group_write_done(void *arg, int status)
{
    group_write *w = arg;
    rtmd_request *req = w->req;
    struct groups_state *st = state(req->srv);
    if (!st) {
        /* The module is gone (exit): nothing to update. */
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        free(w);
        return;
    }
    group *g = group_get(st, w->pid, w->gid, false);
    if (w->op == GW_ADD && g) {
        g->reserved -= w->reserved;
        group_maybe_drop(st, w->pid, w->gid, g);
    }
    if (status == DB_REFUSED && w->over) {
        request_error(req, RTM_EC_MAX_GROUP_MEMBER_COUNT, w->over);
        free(w);
        return;
    }
    if (status != DB_OK) {
        LOG_ERROR("group write for gid %lld failed: %s", (long long)w->gid, db_errstr(status));
        module_answer_store_failure(req, status);
        free(w);
        return;
    }
    bool oom = false;
    switch (w->op) {
    case GW_ADD:
        for (uint32_t i = 0; i < w->n; i++)
            if (member_add(st, w->pid, w->gid, w->uids[i]) != 0)
                oom = true;
        break;
    case GW_DEL:
        for (uint32_t i = 0; i < w->n; i++)
            member_del(st, w->pid, w->gid, w->uids[i]);
        break;
    case GW_DROP:
        group_drop_all(st, w->pid, w->gid);
        break;
    case GW_CLEAR:
        if (project_drop_all(st, w->pid) != 0)
            oom = true;
        break;
    }
    if (oom)
        LOG_ERROR("out of memory adding members to gid %lld (stored, visible after a restart)", (long long)w->gid);
    w->oom = oom;
    if (!tell_nodes(req->srv, w->op == GW_CLEAR ? INV_PROJECT : INV_GROUP, w->pid, w->gid, group_write_answer, w))
        group_write_answer(w);
}

static void submit(rtmd_request *req, group_write *w)
{
    w->req = req;
    if (store_submit(req->srv->store, apply_group_write, group_write_done, w) != 0) {
        if (w->op == GW_ADD) {
            struct groups_state *st = state(req->srv);
            group *g = group_get(st, w->pid, w->gid, false);
            if (g) {
                g->reserved -= w->reserved;
                group_maybe_drop(st, w->pid, w->gid, g);
            }
        }
        free(w);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

static group_write *new_write(group_write_op op, int64_t pid, int64_t gid, const int64_t *uids, uint32_t n)
{
    group_write *w = calloc(1, sizeof *w + (size_t)n * sizeof w->uids[0]);
    if (!w)
        return NULL;
    w->op = op;
    w->pid = pid;
    w->gid = gid;
    w->joined_at = clock_unix_seconds();
    w->n = n;
    if (n)
        memcpy(w->uids, uids, (size_t)n * sizeof uids[0]);
    return w;
}

/* ---- methods ---- */

/* The gid of a request that works on one group: on the client gate only a
 * member may name it (200041). Answers the request and returns false on a
 * bad request. */
static bool group_arg(rtmd_request *req, int64_t *gid)
{
    if (!req_arg_int64(req, "gid", gid))
        return false;
    if (caller_is_client(req) && !groups_is_member(req->srv, req->project->pid, *gid, req->uid)) {
        request_error(req, RTM_EC_NOT_GROUP_MEMBER, "not group member");
        return false;
    }
    return true;
}

/* both gates: addgroupmembers {gid, uids} -> {} */
static void method_addgroupmembers(rtmd_request *req)
{
    int64_t gid, *uids;
    uint32_t n;
    if (!group_arg(req, &gid))
        return;
    int64_t pid = req->project->pid;
    if (!req_arg_ids(req, "uids", RTMD_GROUP_MAX_UIDS_PER_CALL, false, &uids, &n))
        return;
    struct groups_state *st = state(req->srv);
    group *g = group_get(st, pid, gid, false);
    uint32_t fresh = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!g || !idset_has(&g->members, uids[i]))
            fresh++;
    const rtmd_project_config *lim = &req->project->limits;
    uint64_t total = (uint64_t)(g ? g->members.n + g->reserved : 0) + fresh;
    const char *over = NULL;
    if (total > lim->max_group_members)
        over = "exceed max group members";
    else if (!g && project_groups(st, pid) >= lim->max_groups)
        over = "exceed max groups of the project";
    if (over) {
        free(uids);
        request_error(req, RTM_EC_MAX_GROUP_MEMBER_COUNT, over);
        return;
    }
    group_write *w = new_write(GW_ADD, pid, gid, uids, n);
    free(uids);
    if (!w || !(g = group_get(st, pid, gid, true))) {
        free(w);
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    g->reserved += fresh;
    w->reserved = fresh;
    w->max_members = lim->max_group_members;
    w->max_groups = lim->max_groups;
    submit(req, w);
}

/* both gates: delgroupmembers {gid, uids} -> {} */
static void method_delgroupmembers(rtmd_request *req)
{
    int64_t gid, *uids;
    uint32_t n;
    if (!group_arg(req, &gid))
        return;
    int64_t pid = req->project->pid;
    if (!req_arg_ids(req, "uids", RTMD_GROUP_MAX_UIDS_PER_CALL, false, &uids, &n))
        return;
    group_write *w = new_write(GW_DEL, pid, gid, uids, n);
    free(uids);
    if (!w) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    submit(req, w);
}

/* server: delgroup {gid} -> {} */
static void method_delgroup(rtmd_request *req)
{
    int64_t gid;
    if (!req_arg_int64(req, "gid", &gid))
        return;
    group_write *w = new_write(GW_DROP, req->project->pid, gid, NULL, 0);
    if (!w) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    submit(req, w);
}

/* server: clearprojectgroup {} -> {}: every group of the project loses
 * all its members (group messages stay: clearprojectmsg removes them). */
static void method_clearprojectgroup(rtmd_request *req)
{
    group_write *w = new_write(GW_CLEAR, req->project->pid, 0, NULL, 0);
    if (!w) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    submit(req, w);
}

static size_t count_online(rtmd_server *srv, int64_t pid, const int64_t *members, size_t n)
{
    size_t on = 0;
    for (size_t i = 0; i < n; i++)
        on += cluster_online(srv, pid, members[i]);
    return on;
}

/* The opening of getgroupmembers and getgroupcount: {gid, online?}, and on
 * the client gate only for a group the caller belongs to. Answers the
 * request and returns false on a bad request. */
static bool read_members(rtmd_request *req, const int64_t **members, size_t *n, bool *online)
{
    int64_t gid;
    if (!group_arg(req, &gid))
        return false;
    int64_t pid = req->project->pid;
    *online = false;
    mp_get_bool(req->args, "online", online);
    *members = groups_members(req->srv, pid, gid, n);
    return true;
}

/* both gates: getgroupmembers {gid, online?} -> {uids, onlines?} */
static void method_getgroupmembers(rtmd_request *req)
{
    const int64_t *members;
    size_t n;
    bool online;
    if (!read_members(req, &members, &n, &online))
        return;
    int64_t pid = req->project->pid;
    if (!online) {
        request_answer_ids(req, "uids", members, n);
        return;
    }
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    mp_pack_cstr(&pk, "uids");
    pack_ids(&pk, members, n);
    size_t on = count_online(req->srv, pid, members, n);
    mp_pack_cstr(&pk, "onlines");
    msgpack_pack_array(&pk, (uint32_t)on);
    for (size_t i = 0; i < n; i++)
        if (cluster_online(req->srv, pid, members[i]))
            msgpack_pack_int64(&pk, members[i]);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* both gates: getgroupcount {gid, online?} -> {cn, online?} */
static void method_getgroupcount(rtmd_request *req)
{
    const int64_t *members;
    size_t n;
    bool online;
    if (!read_members(req, &members, &n, &online))
        return;
    int64_t pid = req->project->pid;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, online ? 2 : 1);
    mp_pack_kv_int(&pk, "cn", (int64_t)n);
    if (online)
        mp_pack_kv_int(&pk, "online", (int64_t)count_online(req->srv, pid, members, n));
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* server: isgroupmember {gid, uid} -> {ok} */
static void method_isgroupmember(rtmd_request *req)
{
    int64_t gid, uid;
    if (!req_arg_int64(req, "gid", &gid) || !req_arg_int64(req, "uid", &uid))
        return;
    request_answer_bool(req, "ok", groups_is_member(req->srv, req->project->pid, gid, uid));
}

/* server: getusergroups {uid} -> {gids}; client: getusergroups {} -> {gids}
 * of the caller. */
static void method_getusergroups(rtmd_request *req)
{
    int64_t uid = req->uid;
    if (!caller_is_client(req) && !req_arg_int64(req, "uid", &uid))
        return;
    size_t n;
    const int64_t *gids = groups_of_user(req->srv, req->project->pid, uid, &n);
    request_answer_ids(req, "gids", gids, n);
}

/* ---- start-up load ---- */

typedef struct group_load {
    struct groups_state *st;
    size_t rows;
} group_load;

static int load_groups(db_conn *db, void *arg)
{
    group_load *l = arg;
    db_stmt_t *st;
    int rc = db_prepare(db, "SELECT pid, gid, uid FROM group_members ORDER BY pid, gid, uid", &st);
    if (rc != DB_OK)
        return rc;
    while ((rc = db_step(st)) == DB_ROW) {
        if (member_add(l->st, db_column_int64(st, 0), db_column_int64(st, 1), db_column_int64(st, 2)) !=
            0) {
            rc = DB_NOMEM;
            break;
        }
        l->rows++;
    }
    db_finalize(st);
    return rc == DB_DONE ? DB_OK : rc;
}

/* ---- module life cycle ---- */

static int groups_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct groups_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->groups = st;
    group_load l = {st, 0};
    if (module_load(srv, load_groups, &l) != DB_OK) {
        snprintf(err, errlen, "cannot load groups from the store");
        return -1;
    }
    LOG_INFO("groups: %zu groups, %zu memberships loaded", st->groups.count, l.rows);
    cluster_on_record(srv, CLUSTER_REC_INV_GROUPS, on_invalidate);
    cluster_on_rejoin(srv, on_rejoin);
    return 0;
}

static const rtmd_method groups_methods[] = {
    {"addgroupmembers", GATES_SERVER | GATES_CLIENT, method_addgroupmembers, 0},
    {"delgroupmembers", GATES_SERVER | GATES_CLIENT, method_delgroupmembers, 0},
    {"delgroup", GATES_SERVER, method_delgroup, 0},
    {"clearprojectgroup", GATES_SERVER, method_clearprojectgroup, 0},
    {"getgroupmembers", GATES_SERVER | GATES_CLIENT, method_getgroupmembers, 0},
    {"getgroupcount", GATES_SERVER | GATES_CLIENT, method_getgroupcount, 0},
    {"isgroupmember", GATES_SERVER, method_isgroupmember, 0},
    {"getusergroups", GATES_SERVER | GATES_CLIENT, method_getusergroups, 0},
};

static void groups_free(rtmd_server *srv)
{
    struct groups_state *st = state(srv);
    if (!st)
        return;
    for (size_t i = 0; i < st->groups.cap; i++) {
        group *g = st->groups.slots[i].value;
        if (g) {
            idset_free(&g->members);
            free(g);
        }
    }
    for (size_t i = 0; i < st->users.cap; i++) {
        idset *u = st->users.slots[i].value;
        if (u) {
            idset_free(u);
            free(u);
        }
    }
    pairmap_free(&st->groups);
    pairmap_free(&st->users);
    pairmap_free(&st->counts);
    free(st);
    srv->svc->groups = NULL;
}

const rtmd_module groups_module = {
    .name = "groups",
    .init = groups_init,
    .free = groups_free,
    RTMD_MODULE_METHODS(groups_methods),
};
