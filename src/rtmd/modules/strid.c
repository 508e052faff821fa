/* String-id clients (strid.h): the online string-id users indexed by name
 * (kept from RTMD_EV_USER_ONLINE/OFFLINE, so that a presence query never
 * creates a mapping), the client gates' edge translation of request
 * arguments, and the methods getonlinestatus (client gates), getuserids
 * and getstringids (server gate).
 *
 * Translation. A request of a string-id session to a method of
 * translated[] whose id argument is a string gets that string resolved
 * (created when new, as a message may go to a user who never logged in);
 * the argument is then replaced by the uid, in the request's own msgpack
 * zone, and the method runs as for a number-id caller. A list argument
 * (sendmsgs' tos, translated_lists[]) gets each of its strings resolved
 * the same way, and the method runs once all are. Requests of number-id
 * sessions go straight to their method. */
#include "strid.h"

#include "cluster.h"
#include "hash.h"
#include "identity.h"
#include "log.h"
#include "methods.h"
#include "module.h"
#include "pairmap.h"
#include "payload.h"
#include "rtm_errors.h"
#include "rtcat.h"
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids one getonlinestatus, getuserids or getstringids may name. */
#define STRID_QUERY_MAX 200

/* An online string-id user. */
typedef struct online_name {
    int64_t pid, uid;
    uint64_t hash;
    struct online_name *next_same_hash;
    size_t len;
    char sid[];
} online_name;

struct strid_state {
    pairmap by_name; /* (pid, hash of the string) -> online_name chain */
    pairmap by_uid;  /* (pid, uid) -> online_name */
};

static struct strid_state *state(rtmd_server *srv)
{
    return srv->svc->strid;
}

/* ---- online string-id users ---- */

static online_name *find_name(struct strid_state *st, int64_t pid, const char *sid, size_t len)
{
    for (online_name *e = pairmap_get(&st->by_name, (uint64_t)pid, rtm_hash64(sid, len)); e; e = e->next_same_hash)
        if (e->len == len && memcmp(e->sid, sid, len) == 0)
            return e;
    return NULL;
}

static void on_user_online(rtmd_server *srv, const rtmd_event *ev)
{
    struct strid_state *st = state(srv);
    const rtmd_user *u = ev->user;
    if (!u || !u->sessions || !u->sessions->string_id)
        return;
    size_t len = strlen(u->sessions->string_id);
    online_name *e = malloc(sizeof *e + len + 1);
    if (!e) {
        LOG_ERROR("strid: out of memory: %s is online but not findable by name", u->sessions->string_id);
        return;
    }
    *e = (online_name){.pid = ev->pid, .uid = ev->uid, .hash = rtm_hash64(u->sessions->string_id, len), .len = len};
    memcpy(e->sid, u->sessions->string_id, len + 1);
    e->next_same_hash = pairmap_get(&st->by_name, (uint64_t)e->pid, e->hash);
    if (pairmap_put(&st->by_name, (uint64_t)e->pid, e->hash, e) != 0 ||
        pairmap_put(&st->by_uid, (uint64_t)e->pid, (uint64_t)e->uid, e) != 0) {
        LOG_ERROR("strid: out of memory: %s is online but not findable by name", e->sid);
        if (pairmap_get(&st->by_name, (uint64_t)e->pid, e->hash) == e) {
            if (e->next_same_hash)
                pairmap_put(&st->by_name, (uint64_t)e->pid, e->hash, e->next_same_hash);
            else
                pairmap_del(&st->by_name, (uint64_t)e->pid, e->hash);
        }
        free(e);
    }
}

static void on_user_offline(rtmd_server *srv, const rtmd_event *ev)
{
    struct strid_state *st = state(srv);
    online_name *e = pairmap_del(&st->by_uid, (uint64_t)ev->pid, (uint64_t)ev->uid);
    if (!e)
        return;
    online_name *head = pairmap_get(&st->by_name, (uint64_t)e->pid, e->hash);
    if (head == e) {
        if (e->next_same_hash)
            pairmap_put(&st->by_name, (uint64_t)e->pid, e->hash, e->next_same_hash);
        else
            pairmap_del(&st->by_name, (uint64_t)e->pid, e->hash);
    } else {
        for (online_name *p = head; p; p = p->next_same_hash)
            if (p->next_same_hash == e) {
                p->next_same_hash = e->next_same_hash;
                break;
            }
    }
    free(e);
}

const char *strid_name_of(rtmd_server *srv, int64_t pid, int64_t uid)
{
    if (!identity_is_string_uid(uid))
        return NULL;
    online_name *e = state(srv) ? pairmap_get(&state(srv)->by_uid, (uint64_t)pid, (uint64_t)uid) : NULL;
    return e ? e->sid : identity_peek(identity_of(srv), pid, uid);
}

/* ---- edge translation (client gates) ---- */

/* The methods whose id argument a string-id session may give as a string. */
static const struct {
    const char *method, *key;
} translated[] = {
    {"sendmsg", "to"},
    {"getp2pmsg", "ouid"},
    {"enterroom", "rid"}, /* a room's string id maps like a user's */
    {"leaveroom", "rid"},
    {"sendroommsg", "rid"},
    {"getroommsg", "rid"},
};

/* Replaces args[key] by uid, in a copy of the map made in the request's
 * zone. Returns 0, or -1 when out of memory. */
static int replace_arg(rtmd_request *req, const char *key, int64_t uid)
{
    const msgpack_object_map *m = &req->args->via.map;
    msgpack_object *map = msgpack_zone_malloc(req->payload.zone, sizeof *map);
    msgpack_object_kv *kv = msgpack_zone_malloc(req->payload.zone, (m->size ? m->size : 1) * sizeof *kv);
    if (!map || !kv)
        return -1;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < m->size; i++) {
        kv[i] = m->ptr[i];
        const msgpack_object *k = &m->ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen && memcmp(k->via.str.ptr, key, klen) == 0) {
            kv[i].val.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            kv[i].val.via.u64 = (uint64_t)uid;
        }
    }
    map->type = MSGPACK_OBJECT_MAP;
    map->via.map.size = m->size;
    map->via.map.ptr = kv;
    req->args = map;
    return 0;
}

static void run_translated(rtmd_request *req, rtmd_handler handler, const char *key, int64_t uid)
{
    if (replace_arg(req, key, uid) != 0) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    handler(req);
}

typedef struct pending_translation {
    rtmd_request *req;
    rtmd_handler handler;
    const char *key;
} pending_translation;

static void translation_resolved(void *arg, int status, int64_t uid)
{
    pending_translation *t = arg;
    if (status != 0)
        module_answer_store_failure(t->req, status);
    else
        run_translated(t->req, t->handler, t->key, uid);
    free(t);
}

/* ---- list arguments (sendmsgs tos) ---- */

/* The methods whose list of ids a string-id session may give with strings
 * (and integers, number-id users) mixed. */
static const struct {
    const char *method, *key;
} translated_lists[] = {
    {"sendmsgs", "tos"},
};

/* A list being resolved: one slot per item of the array, the integers
 * copied, the strings filled as their uids come. */
typedef struct list_translation {
    rtmd_request *req;
    rtmd_handler handler;
    const char *key;
    uint32_t n, pending;
    int status;               /* the first failure of a resolution, or 0 */
    struct list_slot {
        struct list_translation *t;
        int64_t uid;
    } slots[];
} list_translation;

/* Replaces args[key] by the array of the slots' uids (in the request's
 * zone) and runs the method, or answers the failure. Frees t. */
static void list_run(list_translation *t)
{
    rtmd_request *req = t->req;
    msgpack_object *items = t->status ? NULL : msgpack_zone_malloc(req->payload.zone, t->n * sizeof *items);
    if (t->status) {
        module_answer_store_failure(req, t->status);
    } else if (!items || replace_arg(req, t->key, 0) != 0) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
    } else {
        for (uint32_t i = 0; i < t->n; i++) {
            int64_t uid = t->slots[i].uid;
            items[i].type = uid < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
            items[i].via.i64 = uid;
        }
        /* replace_arg made the map a copy: its value for key is ours. */
        msgpack_object_map *m = &((msgpack_object *)req->args)->via.map;
        size_t klen = strlen(t->key);
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen && memcmp(k->via.str.ptr, t->key, klen) == 0) {
                m->ptr[i].val.type = MSGPACK_OBJECT_ARRAY;
                m->ptr[i].val.via.array.size = t->n;
                m->ptr[i].val.via.array.ptr = items;
            }
        }
        t->handler(req);
    }
    free(t);
}

static void list_settle(list_translation *t)
{
    if (--t->pending == 0)
        list_run(t);
}

static void list_item_resolved(void *arg, int status, int64_t uid)
{
    struct list_slot *s = arg;
    if (status != 0 && s->t->status == 0)
        s->t->status = status;
    s->uid = uid;
    list_settle(s->t);
}

/* A string-id session's list argument: every string resolved (created when
 * new), 200001 for an invalid one. A list that is not an array, has no
 * string, or is longer than max_receivers goes to the method as it is (it
 * answers the error, or takes the integers). */
static void translate_list(rtmd_request *req, rtmd_handler handler, const char *key)
{
    const msgpack_object *v = mp_map_get(req->args, key);
    if (!v || v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > req->project->limits.max_receivers) {
        handler(req);
        return;
    }
    const msgpack_object_array *a = &v->via.array;
    bool strings = false;
    for (uint32_t i = 0; i < a->size; i++) {
        const msgpack_object *o = &a->ptr[i];
        if (o->type == MSGPACK_OBJECT_STR) {
            strings = true;
            if (!identity_validate(o->via.str.ptr, o->via.str.size)) {
                char ex[64];
                snprintf(ex, sizeof ex, "invalid string id in '%s'", key);
                request_error(req, RTM_EC_INVALID_PID_OR_UID, ex);
                return;
            }
        } else if (o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER &&
                   (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > (uint64_t)INT64_MAX)) {
            handler(req); /* the method answers the type error */
            return;
        }
    }
    if (!strings) {
        handler(req);
        return;
    }
    list_translation *t = calloc(1, sizeof *t + a->size * sizeof t->slots[0]);
    if (!t) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    *t = (list_translation){.req = req, .handler = handler, .key = key, .n = a->size, .pending = 1};
    identity_state *id = identity_of(req->srv);
    for (uint32_t i = 0; i < a->size; i++) {
        const msgpack_object *o = &a->ptr[i];
        struct list_slot *s = &t->slots[i];
        s->t = t;
        if (o->type != MSGPACK_OBJECT_STR) {
            s->uid = o->via.i64;
            continue;
        }
        int rc = identity_resolve(id, req->project->pid, o->via.str.ptr, o->via.str.size, &s->uid,
                                  list_item_resolved, s);
        if (rc == 0)
            t->pending++;
        else if (rc < 0 && t->status == 0)
            t->status = -1;
    }
    list_settle(t);
}

static void strid_translate(rtmd_request *req, rtmd_handler handler)
{
    if (!rtcat_gate(req)) /* a RealTimeCat token login: its rights first */
        return;
    const rtmd_session *s = users_session(req->conn);
    const char *key = NULL;
    if (s && s->string_id)
        for (size_t i = 0; i < sizeof translated_lists / sizeof translated_lists[0]; i++)
            if (strcmp(req->method, translated_lists[i].method) == 0) {
                translate_list(req, handler, translated_lists[i].key);
                return;
            }
    if (s && s->string_id)
        for (size_t i = 0; i < sizeof translated / sizeof translated[0]; i++)
            if (strcmp(req->method, translated[i].method) == 0)
                key = translated[i].key;
    const msgpack_object *v = key ? mp_map_get(req->args, key) : NULL;
    if (!v || v->type != MSGPACK_OBJECT_STR) {
        handler(req); /* a number id (a number-id user) or a number-id caller */
        return;
    }
    if (!identity_validate(v->via.str.ptr, v->via.str.size)) {
        char ex[64];
        snprintf(ex, sizeof ex, "invalid string id in '%s'", key);
        request_error(req, RTM_EC_INVALID_PID_OR_UID, ex);
        return;
    }
    pending_translation *t = malloc(sizeof *t);
    if (!t) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    *t = (pending_translation){req, handler, key};
    int64_t uid;
    int rc = identity_resolve(identity_of(req->srv), req->project->pid, v->via.str.ptr, v->via.str.size, &uid,
                              translation_resolved, t);
    if (rc == 0)
        return;
    free(t);
    if (rc == 1)
        run_translated(req, handler, key, uid);
    else
        request_error(req, RTM_EC_UNKNOWN_ERROR, "cannot resolve the string id");
}

/* ---- methods ---- */

/* The array args[key] of at most STRID_QUERY_MAX items, or NULL once the
 * request is answered with the error. */
static const msgpack_object_array *query_list(rtmd_request *req, const char *key)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    if (!o || o->type != MSGPACK_OBJECT_ARRAY) {
        req_arg_error(req, key);
        return NULL;
    }
    if (o->via.array.size > STRID_QUERY_MAX) {
        char ex[64];
        snprintf(ex, sizeof ex, "at most %d '%s' per call", STRID_QUERY_MAX, key);
        request_error(req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, ex);
        return NULL;
    }
    return &o->via.array;
}

/* Answers {online: [the ids of a online[i], as given]}. */
static void answer_status(rtmd_request *req, const msgpack_object_array *a, const bool *online)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->size; i++)
        n += online[i];
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "online");
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < a->size; i++)
        if (online[i])
            msgpack_pack_object(&pk, a->ptr[i]);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* A getonlinestatus waiting for string ids to be resolved (a cluster). */
typedef struct status_query {
    rtmd_request *req;
    const msgpack_object_array *a;
    uint32_t pending;
    bool online[STRID_QUERY_MAX];
    struct status_slot {
        struct status_query *q;
        uint32_t i;
    } slots[STRID_QUERY_MAX];
} status_query;

static void status_settle(status_query *q)
{
    if (--q->pending == 0) {
        answer_status(q->req, q->a, q->online);
        free(q);
    }
}

static void status_resolved(void *arg, int status, int64_t uid)
{
    struct status_slot *s = arg;
    status_query *q = s->q;
    q->online[s->i] = status == 0 && cluster_online(q->req->srv, q->req->project->pid, uid);
    status_settle(q);
}

/* client: getonlinestatus {uids: [string or integer ids]} -> {online: [the
 * ones online, as given]}; a string names a string-id user, an integer a
 * number-id user. Alone, never creates a mapping. In a cluster a string
 * not online on this node is resolved (identity; created when new, as a
 * message to it would) and asked of the presence mirror. */
static void method_getonlinestatus(rtmd_request *req)
{
    const msgpack_object_array *a = query_list(req, "uids");
    if (!a)
        return;
    int64_t pid = req->project->pid;
    bool across = cluster_node_count(req->srv) > 0;
    status_query *q = NULL;
    bool online[STRID_QUERY_MAX];
    for (uint32_t i = 0; i < a->size; i++) {
        const msgpack_object *o = &a->ptr[i];
        int64_t uid;
        online[i] = false;
        if (o->type == MSGPACK_OBJECT_STR) {
            online[i] = find_name(state(req->srv), pid, o->via.str.ptr, o->via.str.size) != NULL;
            if (online[i] || !across || !identity_validate(o->via.str.ptr, o->via.str.size))
                continue;
            if (!q && !(q = calloc(1, sizeof *q))) {
                request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
                return;
            }
            q->slots[i] = (struct status_slot){q, i};
            int rc = identity_resolve(identity_of(req->srv), pid, o->via.str.ptr, o->via.str.size, &uid,
                                      status_resolved, &q->slots[i]);
            if (rc == 1)
                online[i] = cluster_online(req->srv, pid, uid);
            q->pending += rc == 0;
        } else if (mp_obj_int64(o, &uid)) {
            online[i] = !identity_is_string_uid(uid) && cluster_online(req->srv, pid, uid);
        }
    }
    if (!q || q->pending == 0) {
        free(q);
        answer_status(req, a, online);
        return;
    }
    /* Resolves run on the loop later: the answer goes with the last one. */
    q->req = req;
    q->a = a;
    for (uint32_t i = 0; i < a->size; i++)
        q->online[i] = q->online[i] || online[i];
    q->pending++;
    status_settle(q);
}

/* A getuserids or getstringids in progress: one slot per item asked. */
typedef struct id_query {
    rtmd_request *req;
    bool to_uids;          /* getuserids */
    uint32_t n, pending;
    struct id_slot {
        struct id_query *q;
        bool found;
        int64_t uid;
        char sid[IDENTITY_STRING_MAX + 1];
    } slots[];
} id_query;

/* An id asked twice is answered once: the map has no repeated key. */
static void drop_repeats(id_query *q)
{
    for (uint32_t i = 1; i < q->n; i++)
        for (uint32_t k = 0; k < i && q->slots[i].found; k++)
            if (q->slots[k].found && q->slots[k].uid == q->slots[i].uid)
                q->slots[i].found = false;
}

static void query_answer(id_query *q)
{
    drop_repeats(q);
    uint32_t found = 0;
    for (uint32_t i = 0; i < q->n; i++)
        found += q->slots[i].found;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, q->to_uids ? "uids" : "ids");
    msgpack_pack_map(&pk, found);
    for (uint32_t i = 0; i < q->n; i++) {
        const struct id_slot *s = &q->slots[i];
        if (!s->found)
            continue;
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)s->uid);
        if (q->to_uids) {
            mp_pack_cstr(&pk, s->sid);
            msgpack_pack_int64(&pk, s->uid);
        } else {
            mp_pack_cstr(&pk, num);
            mp_pack_cstr(&pk, s->sid);
        }
    }
    request_answer(q->req, &body);
    msgpack_sbuffer_destroy(&body);
    free(q);
}

static void query_settle(id_query *q)
{
    if (--q->pending == 0)
        query_answer(q);
}

static void slot_resolved(void *arg, int status, int64_t uid)
{
    struct id_slot *s = arg;
    if (status == 0) {
        s->found = true;
        s->uid = uid;
    }
    query_settle(s->q);
}

static void slot_looked_up(void *arg, int status, const char *sid)
{
    struct id_slot *s = arg;
    if (status == 0 && sid) {
        s->found = true;
        snprintf(s->sid, sizeof s->sid, "%s", sid);
    }
    query_settle(s->q);
}

/* One item: filled now, or pending (counted in q->pending). */
static void query_item(id_query *q, struct id_slot *s, const msgpack_object *o)
{
    identity_state *id = identity_of(q->req->srv);
    int64_t pid = q->req->project->pid;
    s->q = q;
    if (q->to_uids) {
        if (o->type != MSGPACK_OBJECT_STR || !identity_validate(o->via.str.ptr, o->via.str.size))
            return; /* not a string id: left out */
        memcpy(s->sid, o->via.str.ptr, o->via.str.size);
        s->sid[o->via.str.size] = '\0';
        int rc = identity_resolve(id, pid, o->via.str.ptr, o->via.str.size, &s->uid, slot_resolved, s);
        s->found = rc == 1;
        q->pending += rc == 0;
        return;
    }
    if (!mp_obj_int64(o, &s->uid) || !identity_is_string_uid(s->uid))
        return;
    const char *sid = NULL;
    int rc = identity_lookup(id, pid, s->uid, &sid, slot_looked_up, s);
    if (rc == 1 && sid) {
        s->found = true;
        snprintf(s->sid, sizeof s->sid, "%s", sid);
    }
    q->pending += rc == 0;
}

static void run_query(rtmd_request *req, bool to_uids)
{
    const msgpack_object_array *a = query_list(req, to_uids ? "ids" : "uids");
    if (!a)
        return;
    id_query *q = calloc(1, sizeof *q + a->size * sizeof q->slots[0]);
    if (!q) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    q->req = req;
    q->to_uids = to_uids;
    q->n = a->size;
    q->pending = 1; /* held until every item is started */
    for (uint32_t i = 0; i < a->size; i++)
        query_item(q, &q->slots[i], &a->ptr[i]);
    query_settle(q);
}

/* server: getuserids {ids: [string ids]} -> {uids: {string id: uid}}; a
 * new string id gets its uid now; what is not a valid string id is left
 * out. */
static void method_getuserids(rtmd_request *req)
{
    run_query(req, true);
}

/* server: getstringids {uids: [uids]} -> {ids: {"uid": string id}}; uids
 * that have no string id are left out. */
static void method_getstringids(rtmd_request *req)
{
    run_query(req, false);
}

/* ---- module life cycle ---- */

static int strid_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct strid_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->strid = st;
    return 0;
}

static void strid_free(rtmd_server *srv)
{
    struct strid_state *st = srv->svc->strid;
    if (!st)
        return;
    for (size_t i = 0; i < st->by_uid.cap; i++)
        free(st->by_uid.slots[i].value);
    pairmap_free(&st->by_uid);
    pairmap_free(&st->by_name);
    free(st);
    srv->svc->strid = NULL;
}

static const rtmd_method strid_methods[] = {
    {"getonlinestatus", GATES_CLIENT, method_getonlinestatus, 0},
    {"getuserids", GATES_SERVER, method_getuserids, 0},
    {"getstringids", GATES_SERVER, method_getstringids, 0},
};

static const rtmd_observer strid_observers[] = {
    {RTMD_EV_USER_ONLINE, on_user_online},
    {RTMD_EV_USER_OFFLINE, on_user_offline},
};

const rtmd_module strid_module = {
    .name = "strid",
    .init = strid_init,
    .free = strid_free,
    .translates = GATES_CLIENT,
    .translate = strid_translate,
    RTMD_MODULE_METHODS(strid_methods),
    RTMD_MODULE_OBSERVERS(strid_observers),
};
