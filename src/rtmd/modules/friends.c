/* Friends and blacklists (see friends.h): tables friends and blacklists,
 * rows (pid, uid, other) meaning "other is in uid's list", mirrored in
 * memory as one sorted idset per (pid, uid) and list kind; the methods
 * addfriends, delfriends, getfriends, addblacks, delblacks, getblacks on
 * both gates and isfriend, isfriends, isblack, isblacks on the server gate;
 * and the p2p rule messages.c asks about (friends_p2p_refusal).
 *
 * Memory follows the store as in groups.c: a change is applied to memory in
 * the store's done callback, once its transaction committed, and only then
 * answered; each list counts the uids reserved by adds in flight, so that
 * concurrent adds cannot overshoot a limit together.
 *
 * Lists are one-way. Each user owns its list of friends and its blacklist,
 * and a change touches only the caller's own list: addfriends(uid, [f])
 * puts f in uid's list and nothing in f's. rtm-doc says the RTM friends are
 * a mirror of the application's own relations and documents every call per
 * user (uid and its friends); it does not say that an add is mutual, and a
 * client that could write into another user's list could make itself the
 * friend of anyone. An application with mutual friendships mirrors each of
 * them as two adds. Hence:
 *   isfriend {uid, fuid}      ok: fuid is in uid's friend list;
 *   isfriends {uid, fuids}    fuids: those of fuids in uid's friend list;
 *   getblacks {uid}           uids: uid's blacklist;
 *   isblack {uid, buid}       ok: uid is on buid's blacklist (the server SDK
 *                             docs: "whether uid is blocked by buid, for
 *                             sending a p2p message");
 *   isblacks {uid, buids}     buids: those of buids whose blacklist holds uid.
 *
 * The p2p rule, for client-gate senders (friends_p2p_refusal): a user on
 * B's blacklist cannot send p2p messages to B (200049), while B can still
 * send to it (the SDK docs of addBlacks); with the project's
 * p2p_require_friend, A may send to B only if A is in B's friend list
 * (200043): the receiver decides who may write to it, as with its
 * blacklist. The app server is subject to neither: the server SDK docs
 * give it isblack/isblacks "for sending p2p and multi-user messages", that
 * is, the app server applies them itself when it wants to.
 *
 * Limits: at most max_friends uids in a friend list (200048) and
 * max_blacks in a blacklist (200032), both per project; at most
 * RTMD_FRIENDS_MAX_UIDS_PER_CALL uids per call (200032), none is 200033.
 * A user is never in its own lists: its own uid in a list is ignored. */
#include "friends.h"

#include "clock.h"
#include "cluster.h"
#include "grow.h"
#include "idset.h"
#include "log.h"
#include "methods.h"
#include "module.h"
#include "pairmap.h"
#include "payload.h"
#include "rtm_errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum list_kind { KIND_FRIENDS, KIND_BLACKS, NKINDS };

/* What differs between the two kinds of lists. */
typedef struct kind_desc {
    const char *name;       /* for logs */
    const char *arg;        /* the payload field of add/del */
    const char *insert_sql, *delete_sql, *load_sql;
    const char *count_sql; /* a user's list size, counted in the store on PostgreSQL */
    int limit_domain;      /* module_limit_lock */
} kind_desc;

static const kind_desc kinds[NKINDS] = {
    {"friends", "friends", "INSERT INTO friends(pid, uid, other, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
     "DELETE FROM friends WHERE pid = ?1 AND uid = ?2 AND other = ?3",
     "SELECT pid, uid, other FROM friends ORDER BY pid, uid, other",
     "SELECT count(*) FROM friends WHERE pid = ?1 AND uid = ?2", MODULE_LIMIT_FRIENDS},
    {"blacklists", "blacks", "INSERT INTO blacklists(pid, uid, other, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
     "DELETE FROM blacklists WHERE pid = ?1 AND uid = ?2 AND other = ?3",
     "SELECT pid, uid, other FROM blacklists ORDER BY pid, uid, other",
     "SELECT count(*) FROM blacklists WHERE pid = ?1 AND uid = ?2", MODULE_LIMIT_BLACKS},
};

typedef struct ulist {
    idset ids;
    uint32_t reserved; /* uids of adds accepted but not yet committed */
} ulist;

struct friends_state {
    pairmap lists[NKINDS]; /* (pid, uid) -> ulist */
};

static struct friends_state *state(rtmd_server *srv)
{
    return srv->svc ? srv->svc->friends : NULL;
}

/* ---- memory ---- */

static ulist *list_get(struct friends_state *st, int kind, int64_t pid, int64_t uid, bool create)
{
    ulist *l = pairmap_get(&st->lists[kind], (uint64_t)pid, (uint64_t)uid);
    if (!l && create) {
        l = calloc(1, sizeof *l);
        if (l && pairmap_put(&st->lists[kind], (uint64_t)pid, (uint64_t)uid, l) != 0) {
            free(l);
            l = NULL;
        }
    }
    return l;
}

static void list_maybe_drop(struct friends_state *st, int kind, int64_t pid, int64_t uid, ulist *l)
{
    if (l && l->ids.n == 0 && l->reserved == 0) {
        pairmap_del(&st->lists[kind], (uint64_t)pid, (uint64_t)uid);
        idset_free(&l->ids);
        free(l);
    }
}

static bool list_has(rtmd_server *srv, int kind, int64_t pid, int64_t uid, int64_t other)
{
    struct friends_state *st = state(srv);
    ulist *l = st ? list_get(st, kind, pid, uid, false) : NULL;
    return l && idset_has(&l->ids, other);
}

bool friends_is_friend(rtmd_server *srv, int64_t pid, int64_t uid, int64_t other)
{
    return list_has(srv, KIND_FRIENDS, pid, uid, other);
}

bool friends_is_black(rtmd_server *srv, int64_t pid, int64_t uid, int64_t other)
{
    return list_has(srv, KIND_BLACKS, pid, uid, other);
}

int friends_p2p_refusal(rtmd_server *srv, int64_t pid, int64_t from, int64_t to)
{
    if (friends_is_black(srv, pid, to, from))
        return RTM_EC_BLOCKED_USER;
    const rtmd_project *p = rtmd_server_project(srv, pid);
    if (p && p->limits.p2p_require_friend && !friends_is_friend(srv, pid, to, from))
        return RTM_EC_NOT_FRIEND;
    return 0;
}

const char *friends_refusal_text(int code)
{
    return code == RTM_EC_BLOCKED_USER ? "blocked by the receiver" : code == RTM_EC_NOT_FRIEND ? "not friend" : "refused";
}

/* ---- other nodes (docs/cluster.md) ----
 * After a list write commits, every other node is told which list to
 * reload: a record of three int64s {kind, pid, uid}, acknowledged
 * (cluster_send_all_acked): the write is answered once every other node has
 * reloaded. After this node (re)joins, every list of each project is
 * reloaded. Reloads run on the writer (store_submit): they land in order
 * with this node's own writes, and hold the record's acknowledgement until
 * they are in place. */

typedef struct list_reload {
    rtmd_server *srv;
    cluster_ack_token *hold; /* the acknowledgement it delays */
    int kind;
    int64_t pid, uid;
    bool all; /* both kinds, every user of the project */
    size_t n, cap;
    int64_t (*rows)[3]; /* (kind, uid, other) */
} list_reload;

/* Returns true when done(arg) runs once the other nodes have the change. */
static bool tell_nodes(rtmd_server *srv, int kind, int64_t pid, int64_t uid, cluster_acked_fn done, void *arg)
{
    if (!cluster_enabled(srv))
        return false;
    int64_t v[3] = {kind, pid, uid};
    uint8_t rec[24];
    return cluster_send_all_acked(srv, CLUSTER_REC_INV_FRIENDS, rec, cluster_ids_pack(rec, v, 3), done, arg);
}

static int apply_reload(db_conn *db, void *arg)
{
    static const char *const one[NKINDS] = {
        "SELECT uid, other FROM friends WHERE pid = ?1 AND uid = ?2",
        "SELECT uid, other FROM blacklists WHERE pid = ?1 AND uid = ?2",
    };
    static const char *const all[NKINDS] = {
        "SELECT uid, other FROM friends WHERE pid = ?1",
        "SELECT uid, other FROM blacklists WHERE pid = ?1",
    };
    list_reload *r = arg;
    r->n = 0;
    int rc = DB_OK;
    for (int kind = 0; kind < NKINDS && rc == DB_OK; kind++) {
        if (!r->all && kind != r->kind)
            continue;
        db_stmt_t *st;
        rc = db_prepare(db, r->all ? all[kind] : one[kind], &st);
        if (rc != DB_OK)
            return rc;
        db_bind_int64(st, 1, r->pid);
        if (!r->all)
            db_bind_int64(st, 2, r->uid);
        while ((rc = db_step(st)) == DB_ROW) {
            if (grow_for_one(&r->rows, &r->cap, r->n, sizeof r->rows[0]) != 0) {
                rc = DB_NOMEM;
                break;
            }
            r->rows[r->n][0] = kind;
            r->rows[r->n][1] = db_column_int64(st, 0);
            r->rows[r->n][2] = db_column_int64(st, 1);
            r->n++;
        }
        db_finalize(st);
        rc = rc == DB_DONE ? DB_OK : rc;
    }
    return rc;
}

/* Empties a list (kept while adds are in flight: their reservation). */
static void list_clear(struct friends_state *st, int kind, int64_t pid, int64_t uid)
{
    ulist *l = list_get(st, kind, pid, uid, false);
    if (l) {
        l->ids.n = 0;
        list_maybe_drop(st, kind, pid, uid, l);
    }
}

static void reload_done(void *arg, int status)
{
    list_reload *r = arg;
    struct friends_state *st = state(r->srv);
    for (int kind = 0; st && status == DB_OK && kind < NKINDS; kind++) {
        if (!r->all) {
            if (kind == r->kind)
                list_clear(st, kind, r->pid, r->uid);
            continue;
        }
        pairmap *m = &st->lists[kind];
        int64_t *uids = malloc((m->count ? m->count : 1) * sizeof *uids);
        size_t n = 0;
        if (!uids) {
            status = DB_NOMEM;
            break;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].value && m->slots[i].a == (uint64_t)r->pid)
                uids[n++] = (int64_t)m->slots[i].b;
        for (size_t i = 0; i < n; i++)
            list_clear(st, kind, r->pid, uids[i]);
        free(uids);
    }
    for (size_t i = 0; st && status == DB_OK && i < r->n; i++) {
        ulist *l = list_get(st, (int)r->rows[i][0], r->pid, r->rows[i][1], true);
        if (!l || idset_add(&l->ids, r->rows[i][2]) < 0)
            status = DB_NOMEM;
    }
    if (st && status != DB_OK)
        LOG_ERROR("friends: reloading pid %lld uid %lld for another node's change failed: %s", (long long)r->pid,
                  (long long)r->uid, db_errstr(status));
    cluster_ack_release(r->srv, r->hold);
    free(r->rows);
    free(r);
}

static void reload(rtmd_server *srv, int kind, int64_t pid, int64_t uid, bool all)
{
    list_reload *r = calloc(1, sizeof *r);
    if (!r) {
        LOG_ERROR("friends: out of memory reloading pid %lld", (long long)pid);
        return;
    }
    *r = (list_reload){.srv = srv, .kind = kind, .pid = pid, .uid = uid, .all = all, .hold = cluster_ack_hold(srv)};
    if (store_submit(srv->store, apply_reload, reload_done, r) != 0) {
        cluster_ack_release(srv, r->hold);
        free(r);
    }
}

/* A record from another node: hostile, checked. */
static void on_invalidate(rtmd_server *srv, const uint8_t *data, size_t len)
{
    int64_t v[3];
    if (state(srv) && cluster_ids_unpack(data, len, v, 3) && v[0] >= 0 && v[0] < NKINDS &&
        rtmd_server_project(srv, v[1]))
        reload(srv, (int)v[0], v[1], v[2], false);
}

static void on_rejoin(rtmd_server *srv)
{
    for (size_t p = 0; p < srv->nprojects; p++)
        if (!srv->projects[p].removed)
            reload(srv, 0, srv->projects[p].pid, 0, true);
}

/* ---- writes ---- */

typedef struct list_write {
    rtmd_request *req;
    int kind;
    bool add;
    int64_t pid, uid, created_at;
    uint32_t reserved; /* add: reservation to release when done */
    uint32_t limit;    /* add: the list's limit, counted in the store on PostgreSQL */
    bool oom;          /* stored, but not in memory: answered as an error */
    uint32_t n;
    int64_t others[];
} list_write;

/* An add on PostgreSQL, where other nodes add to the same list, runs under
 * the list's advisory lock and is refused (DB_REFUSED, undone) when the
 * stored list ends up past its limit; on SQLite admit_add's count in
 * memory is exact. */
static int apply_list_write(db_conn *db, void *arg)
{
    list_write *w = arg;
    const kind_desc *k = &kinds[w->kind];
    db_stmt_t *st = NULL;
    bool counted = w->add && db_is_postgres(db);
    int rc = counted ? module_limit_lock(db, k->limit_domain, w->pid, w->uid) : DB_OK;
    if (rc == DB_OK)
        rc = db_stmt(db, w->add ? k->insert_sql : k->delete_sql, &st);
    for (uint32_t i = 0; i < w->n && rc == DB_OK; i++) {
        db_reset(st);
        db_bind_int64(st, 1, w->pid);
        db_bind_int64(st, 2, w->uid);
        db_bind_int64(st, 3, w->others[i]);
        if (w->add)
            db_bind_int64(st, 4, w->created_at);
        rc = db_step(st);
        rc = rc == DB_DONE ? DB_OK : rc;
    }
    if (st)
        db_release(st);
    return rc == DB_OK && counted ? module_count_within(db, k->count_sql, w->pid, w->uid, w->limit) : rc;
}

/* Answers an add that would take the list past its limit. */
static void refuse_over_limit(rtmd_request *req, int kind)
{
    if (kind == KIND_FRIENDS)
        request_error(req, RTM_EC_MAX_FRIEND_COUNT, "exceed max friends");
    else
        request_error(req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, "exceed max blacks");
}

/* Gives back the reservation of an add (done, or never submitted). */
static void release_reservation(struct friends_state *st, const list_write *w)
{
    if (!w->add || !st)
        return;
    ulist *l = list_get(st, w->kind, w->pid, w->uid, false);
    if (l) {
        l->reserved -= w->reserved;
        list_maybe_drop(st, w->kind, w->pid, w->uid, l);
    }
}

/* Answers a write once applied here and, on a cluster, on every other node. */
static void list_write_answer(void *arg)
{
    list_write *w = arg;
    if (w->oom)
        request_error(w->req, RTM_EC_UNKNOWN_ERROR, "out of memory");
    else
        request_answer_empty(w->req);
    free(w);
}

static void list_write_done(void *arg, int status)
{
    list_write *w = arg;
    rtmd_request *req = w->req;
    struct friends_state *st = state(req->srv);
    if (!st) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        free(w);
        return;
    }
    release_reservation(st, w);
    if (status == DB_REFUSED) {
        refuse_over_limit(req, w->kind);
        free(w);
        return;
    }
    if (status != DB_OK) {
        LOG_ERROR("%s write for uid %lld failed: %s", kinds[w->kind].name, (long long)w->uid, db_errstr(status));
        module_answer_store_failure(req, status);
        free(w);
        return;
    }
    bool oom = false;
    ulist *l = list_get(st, w->kind, w->pid, w->uid, w->add);
    if (w->add && !l)
        oom = true;
    for (uint32_t i = 0; l && i < w->n; i++) {
        if (w->add)
            oom |= idset_add(&l->ids, w->others[i]) < 0;
        else
            idset_del(&l->ids, w->others[i]);
    }
    list_maybe_drop(st, w->kind, w->pid, w->uid, l);
    if (oom)
        LOG_ERROR("out of memory adding to the %s of uid %lld (stored, visible after a restart)", kinds[w->kind].name,
                  (long long)w->uid);
    w->oom = oom;
    if (!tell_nodes(req->srv, w->kind, w->pid, w->uid, list_write_answer, w))
        list_write_answer(w);
}

/* ---- methods ---- */

static bool caller_is_client(const rtmd_request *req)
{
    return req->gate != GATE_SERVER_TCP;
}

/* The owner of the list a request works on: the caller on the client
 * gates, `uid` on the server gate. Answers and returns false on a bad
 * request. */
static bool owner_arg(rtmd_request *req, int64_t *uid)
{
    if (caller_is_client(req)) {
        *uid = req->uid;
        return true;
    }
    return req_arg_int64(req, "uid", uid);
}

/* Reads a list of uids (1..RTMD_FRIENDS_MAX_UIDS_PER_CALL, sorted and
 * distinct) without `self`. Answers and returns false on a bad request. */
static bool others_arg(rtmd_request *req, const char *key, int64_t self, int64_t **out, uint32_t *n)
{
    if (!req_arg_ids(req, key, RTMD_FRIENDS_MAX_UIDS_PER_CALL, false, out, n))
        return false;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < *n; i++)
        if ((*out)[i] != self)
            (*out)[kept++] = (*out)[i];
    *n = kept;
    return true;
}

/* Refuses an add that would take the list over its limit; else reserves
 * the new uids. Returns false (answered) when refused. */
static bool admit_add(rtmd_request *req, int kind, int64_t uid, list_write *w)
{
    struct friends_state *st = state(req->srv);
    int64_t pid = req->project->pid;
    ulist *l = list_get(st, kind, pid, uid, false);
    uint32_t fresh = 0;
    for (uint32_t i = 0; i < w->n; i++)
        if (!l || !idset_has(&l->ids, w->others[i]))
            fresh++;
    const rtmd_project_config *lim = &req->project->limits;
    uint64_t total = (uint64_t)(l ? l->ids.n + l->reserved : 0) + fresh;
    w->limit = kind == KIND_FRIENDS ? lim->max_friends : lim->max_blacks;
    if (total > w->limit) {
        refuse_over_limit(req, kind);
        return false;
    }
    if (!(l = list_get(st, kind, pid, uid, true))) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return false;
    }
    l->reserved += fresh;
    w->reserved = fresh;
    return true;
}

/* addfriends / delfriends / addblacks / delblacks:
 * server {uid, friends|blacks}, client {friends|blacks} -> {} */
static void change_list(rtmd_request *req, int kind, bool add)
{
    int64_t uid, *others;
    uint32_t n;
    if (!owner_arg(req, &uid) || !others_arg(req, kinds[kind].arg, uid, &others, &n))
        return;
    if (n == 0) { /* only the caller itself: nothing to store */
        free(others);
        request_answer_empty(req);
        return;
    }
    list_write *w = calloc(1, sizeof *w + (size_t)n * sizeof w->others[0]);
    if (!w) {
        free(others);
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    *w = (list_write){.req = req, .kind = kind, .add = add, .pid = req->project->pid, .uid = uid,
                      .created_at = clock_unix_seconds(), .n = n};
    memcpy(w->others, others, (size_t)n * sizeof others[0]);
    free(others);
    if (add && !admit_add(req, kind, uid, w)) {
        free(w);
        return;
    }
    if (store_submit(req->srv->store, apply_list_write, list_write_done, w) != 0) {
        release_reservation(state(req->srv), w);
        free(w);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

static void method_addfriends(rtmd_request *req)
{
    change_list(req, KIND_FRIENDS, true);
}

static void method_delfriends(rtmd_request *req)
{
    change_list(req, KIND_FRIENDS, false);
}

static void method_addblacks(rtmd_request *req)
{
    change_list(req, KIND_BLACKS, true);
}

static void method_delblacks(rtmd_request *req)
{
    change_list(req, KIND_BLACKS, false);
}

/* getfriends / getblacks: server {uid}, client {} -> {uids} */
static void get_list(rtmd_request *req, int kind)
{
    int64_t uid;
    if (!owner_arg(req, &uid))
        return;
    struct friends_state *st = state(req->srv);
    ulist *l = list_get(st, kind, req->project->pid, uid, false);
    request_answer_ids(req, "uids", l ? l->ids.v : NULL, l ? l->ids.n : 0);
}

static void method_getfriends(rtmd_request *req)
{
    get_list(req, KIND_FRIENDS);
}

static void method_getblacks(rtmd_request *req)
{
    get_list(req, KIND_BLACKS);
}

/* server: isfriend {uid, fuid} -> {ok}: fuid is in uid's friend list */
static void method_isfriend(rtmd_request *req)
{
    int64_t uid, fuid;
    if (!req_arg_int64(req, "uid", &uid) || !req_arg_int64(req, "fuid", &fuid))
        return;
    request_answer_bool(req, "ok", friends_is_friend(req->srv, req->project->pid, uid, fuid));
}

/* server: isblack {uid, buid} -> {ok}: uid is on buid's blacklist */
static void method_isblack(rtmd_request *req)
{
    int64_t uid, buid;
    if (!req_arg_int64(req, "uid", &uid) || !req_arg_int64(req, "buid", &buid))
        return;
    request_answer_bool(req, "ok", friends_is_black(req->srv, req->project->pid, buid, uid));
}

/* server: isfriends {uid, fuids} -> {fuids}: those in uid's friend list;
 * isblacks {uid, buids} -> {buids}: those whose blacklist holds uid. */
static void filter_list(rtmd_request *req, const char *key, bool blacks)
{
    int64_t uid, *others;
    uint32_t n;
    if (!req_arg_int64(req, "uid", &uid) ||
        !req_arg_ids(req, key, RTMD_FRIENDS_MAX_UIDS_PER_CALL, false, &others, &n))
        return;
    int64_t pid = req->project->pid;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        bool yes = blacks ? friends_is_black(req->srv, pid, others[i], uid)
                          : friends_is_friend(req->srv, pid, uid, others[i]);
        if (yes)
            others[kept++] = others[i];
    }
    request_answer_ids(req, key, others, kept);
    free(others);
}

static void method_isfriends(rtmd_request *req)
{
    filter_list(req, "fuids", false);
}

static void method_isblacks(rtmd_request *req)
{
    filter_list(req, "buids", true);
}

/* ---- start-up load ---- */

typedef struct list_load {
    struct friends_state *st;
    size_t rows[NKINDS];
} list_load;

static int load_lists(db_conn *db, void *arg)
{
    list_load *ld = arg;
    int rc = DB_OK;
    for (int kind = 0; kind < NKINDS && rc == DB_OK; kind++) {
        db_stmt_t *st;
        rc = db_prepare(db, kinds[kind].load_sql, &st);
        if (rc != DB_OK)
            return rc;
        while ((rc = db_step(st)) == DB_ROW) {
            ulist *l = list_get(ld->st, kind, db_column_int64(st, 0), db_column_int64(st, 1), true);
            if (!l || idset_add(&l->ids, db_column_int64(st, 2)) < 0) {
                rc = DB_NOMEM;
                break;
            }
            ld->rows[kind]++;
        }
        db_finalize(st);
        rc = rc == DB_DONE ? DB_OK : rc;
    }
    return rc;
}

/* ---- module life cycle ---- */

static void friends_free(rtmd_server *srv)
{
    struct friends_state *st = state(srv);
    if (!st)
        return;
    for (int kind = 0; kind < NKINDS; kind++) {
        pairmap *m = &st->lists[kind];
        for (size_t i = 0; i < m->cap; i++) {
            ulist *l = m->slots[i].value;
            if (l) {
                idset_free(&l->ids);
                free(l);
            }
        }
        pairmap_free(m);
    }
    free(st);
    srv->svc->friends = NULL;
}

static int friends_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct friends_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->friends = st;
    list_load ld = {st, {0, 0}};
    if (module_load(srv, load_lists, &ld) != DB_OK) {
        snprintf(err, errlen, "cannot load friends and blacklists from the store");
        return -1;
    }
    LOG_INFO("friends: %zu friend and %zu blacklist entries loaded", ld.rows[KIND_FRIENDS], ld.rows[KIND_BLACKS]);
    cluster_on_record(srv, CLUSTER_REC_INV_FRIENDS, on_invalidate);
    cluster_on_rejoin(srv, on_rejoin);
    return 0;
}

static const rtmd_method friends_methods[] = {
    {"addfriends", GATES_SERVER | GATES_CLIENT, method_addfriends, 0},
    {"delfriends", GATES_SERVER | GATES_CLIENT, method_delfriends, 0},
    {"getfriends", GATES_SERVER | GATES_CLIENT, method_getfriends, 0},
    {"isfriend", GATES_SERVER, method_isfriend, 0},
    {"isfriends", GATES_SERVER, method_isfriends, 0},
    {"addblacks", GATES_SERVER | GATES_CLIENT, method_addblacks, 0},
    {"delblacks", GATES_SERVER | GATES_CLIENT, method_delblacks, 0},
    {"getblacks", GATES_SERVER | GATES_CLIENT, method_getblacks, 0},
    {"isblack", GATES_SERVER, method_isblack, 0},
    {"isblacks", GATES_SERVER, method_isblacks, 0},
};

const rtmd_module friends_module = {
    .name = "friends",
    .init = friends_init,
    .free = friends_free,
    RTMD_MODULE_METHODS(friends_methods),
};
