/* App-server monitoring: what each server-gate connection listens to
 * (addlisten, removelisten, setlisten), and the delivery to those
 * connections of stored messages (RTMD_EV_MESSAGE, fired by messages.c)
 * and of users' logins and logouts (RTMD_EV_USER_ONLINE/OFFLINE, fired by
 * users.c; in a cluster the cluster's logins and logouts, cluster.h). A message goes to the listeners of its project that want it:
 * a p2p message to those of all p2p traffic or of its sender or receiver,
 * a group or room message to those of all groups or rooms or of its gid or
 * rid; a broadcast to none.
 *
 * Each listening connection has an rtmd_listener_state: "all" flags per
 * kind (p2p, group, room, events) and a set of the uids, gids and rids it
 * named. All states hang in one list; deliveries walk the states of the
 * sender's project, and a connection's state is found by walking it too.
 * App-server connections are few, so a list is the simplest structure that
 * is fast enough.
 *
 * Methods (payloads as the RTM server SDKs send them):
 *   addlisten    {gids?, rids?, uids?, events?, p2p?, group?, room?, ev?}
 *                adds to what the connection listens to; a true flag turns
 *                on the whole kind (older SDKs send p2p: true).
 *   removelisten the same fields, taken away; a true flag turns the whole
 *                kind off.
 *   setlisten    replaces only what it names: each list given (array, or
 *                a map whose keys are the ids, as the Go SDK sends its
 *                record after a reconnect; nil = empty) and each flag
 *                given; absent fields stay. {all: bool} alone decides:
 *                everything on, or nothing at all.
 * Listeners get the pushes the server SDKs handle: pushmsg, pushgroupmsg,
 * pushroommsg (every mtype, as the SDKs dispatch chat and file types by
 * mtype themselves) and pushevent {pid, event, uid, time (unix seconds),
 * endpoint ("ip:port" of the user's connection, "" for logout), data}. */
#include "cluster.h"
#include "log.h"
#include "messages.h"
#include "methods.h"
#include "pairmap.h"
#include "payload.h"
#include "push.h"
#include "rtm_errors.h"
#include "module.h"
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kinds of named ids (first half of the pairmap key). */
enum { ID_UID = 1, ID_GID = 2, ID_RID = 3 };

/* Events by bit. */
#define EV_LOGIN 1u
#define EV_LOGOUT 2u

/* At most this many named ids per connection. */
#define LISTEN_MAX_IDS 100000

typedef struct rtmd_listener_state {
    rtmd_conn *conn;
    int64_t pid;
    bool all_p2p, all_group, all_room, all_events;
    unsigned events;                  /* EV_* named one by one */
    pairmap ids;                      /* (ID_*, id) -> marker */
    struct rtmd_listener_state *prev, *next;
} rtmd_listener_state;

struct listen_state {
    rtmd_listener_state *head;
};

static struct listen_state *state(rtmd_server *srv)
{
    return srv->svc->listen;
}

static void *const MARK = (void *)1;

/* ---- listener states ---- */

static rtmd_listener_state *find_listener(struct listen_state *s, const rtmd_conn *c)
{
    for (rtmd_listener_state *l = s->head; l; l = l->next)
        if (l->conn == c)
            return l;
    return NULL;
}

/* Tells the cluster whether this node has listeners of pid (so that other
 * nodes send it their messages of pid: messages.c route). */
static void listening_changed(rtmd_server *srv, int64_t pid)
{
    if (!cluster_enabled(srv))
        return;
    bool any = false;
    for (rtmd_listener_state *l = state(srv)->head; l && !any; l = l->next)
        any = l->pid == pid;
    cluster_listening(srv, pid, any);
}

static rtmd_listener_state *listener_of(rtmd_request *req)
{
    rtmd_conn *c = req->conn;
    struct listen_state *s = state(req->srv);
    rtmd_listener_state *l = find_listener(s, c);
    if (l) {
        int64_t was = l->pid;
        l->pid = req->project->pid; /* the project it last signed for */
        if (was != l->pid) {
            listening_changed(req->srv, was);
            listening_changed(req->srv, l->pid);
        }
        return l;
    }
    l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->conn = c;
    l->pid = req->project->pid;
    l->next = s->head;
    if (s->head)
        s->head->prev = l;
    s->head = l;
    listening_changed(req->srv, l->pid);
    return l;
}

static void listener_free(struct listen_state *s, rtmd_listener_state *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        s->head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    pairmap_free(&l->ids);
    free(l);
}

static bool listens_id(const rtmd_listener_state *l, int kind, int64_t id)
{
    return l->ids.count && pairmap_get(&l->ids, (uint64_t)kind, (uint64_t)id) != NULL;
}

static unsigned event_bit(const char *name, size_t len)
{
    if (len == 5 && memcmp(name, "login", 5) == 0)
        return EV_LOGIN;
    if (len == 6 && memcmp(name, "logout", 6) == 0)
        return EV_LOGOUT;
    return 0; /* events rtmd never sends are accepted and ignored */
}

/* ---- parsing a listen request ---- */

/* A list field: an array of ids (or event names), or, as the Go SDK sends
 * its record again after every reconnect (a Go map used as a set), a map
 * whose keys are the ids and whose values mean nothing. Present as nil, it
 * is an empty list. */
typedef struct listen_list {
    bool given;
    const msgpack_object *o; /* array or map; NULL when nil or absent */
} listen_list;

typedef struct listen_args {
    listen_list lists[3]; /* uids, gids, rids */
    listen_list events;
    /* Flags: -1 absent, 0 false, 1 true. */
    int p2p, group, room, ev, all;
} listen_args;

static const char *const list_keys[3] = {"uids", "gids", "rids"};
static const int list_kinds[3] = {ID_UID, ID_GID, ID_RID};

static uint32_t list_size(const listen_list *l)
{
    if (!l->o)
        return 0;
    return l->o->type == MSGPACK_OBJECT_ARRAY ? l->o->via.array.size : l->o->via.map.size;
}

static const msgpack_object *list_item(const listen_list *l, uint32_t i)
{
    return l->o->type == MSGPACK_OBJECT_ARRAY ? &l->o->via.array.ptr[i] : &l->o->via.map.ptr[i].key;
}

static bool get_list(rtmd_request *req, const char *key, listen_list *out)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    out->given = o != NULL;
    out->o = NULL;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return true;
    if (o->type != MSGPACK_OBJECT_ARRAY && o->type != MSGPACK_OBJECT_MAP)
        return false;
    out->o = o;
    return true;
}

static bool get_flag(rtmd_request *req, const char *key, int *out)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    *out = -1;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return true;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *out = o->via.boolean ? 1 : 0;
    return true;
}

static bool ids_valid(const listen_list *l)
{
    int64_t id;
    for (uint32_t i = 0; i < list_size(l); i++)
        if (!mp_obj_int64(list_item(l, i), &id))
            return false;
    return true;
}

static bool events_valid(const listen_list *l)
{
    for (uint32_t i = 0; i < list_size(l); i++) {
        msgpack_object_type t = list_item(l, i)->type;
        if (t != MSGPACK_OBJECT_STR && t != MSGPACK_OBJECT_BIN)
            return false;
    }
    return true;
}

/* Reads the request's fields (each optional); answers 10010 and returns
 * false if one is of the wrong type. */
static bool parse_listen_args(rtmd_request *req, listen_args *a)
{
    const char *bad = NULL;
    for (int k = 0; k < 3 && !bad; k++)
        if (!get_list(req, list_keys[k], &a->lists[k]) || !ids_valid(&a->lists[k]))
            bad = list_keys[k];
    if (!bad && (!get_list(req, "events", &a->events) || !events_valid(&a->events)))
        bad = "events";
    if (!bad && !get_flag(req, "p2p", &a->p2p))
        bad = "p2p";
    if (!bad && !get_flag(req, "group", &a->group))
        bad = "group";
    if (!bad && !get_flag(req, "room", &a->room))
        bad = "room";
    if (!bad && !get_flag(req, "ev", &a->ev))
        bad = "ev";
    if (!bad && !get_flag(req, "all", &a->all))
        bad = "all";
    if (bad) {
        char ex[64];
        snprintf(ex, sizeof ex, "invalid '%s'", bad);
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, ex);
        return false;
    }
    return true;
}

enum listen_op { OP_ADD, OP_REMOVE, OP_SET };

/* Builds in *out the named ids the connection will have after the request,
 * leaving l as it is, so that a request that fails changes nothing: the
 * ids of l, without the kinds the request replaces (drop[kind]), then the
 * request's lists added (OP_ADD, OP_SET) or taken away (OP_REMOVE).
 * Returns 0, or -1 when there would be more than LISTEN_MAX_IDS ids or
 * memory ran out (*out is then empty). */
static int build_ids(const rtmd_listener_state *l, const listen_args *a, enum listen_op op, const bool drop[4],
                     pairmap *out)
{
    *out = (pairmap){0};
    for (size_t i = 0; i < l->ids.cap; i++) {
        const pairmap_slot *sl = &l->ids.slots[i];
        if (sl->value && !drop[sl->a] && pairmap_put(out, sl->a, sl->b, MARK) != 0)
            goto fail;
    }
    for (int k = 0; k < 3; k++) {
        const listen_list *list = &a->lists[k];
        for (uint32_t i = 0; i < list_size(list); i++) {
            int64_t id;
            mp_obj_int64(list_item(list, i), &id);
            if (op == OP_REMOVE) {
                pairmap_del(out, (uint64_t)list_kinds[k], (uint64_t)id);
                continue;
            }
            if (out->count >= LISTEN_MAX_IDS || pairmap_put(out, (uint64_t)list_kinds[k], (uint64_t)id, MARK) != 0)
                goto fail;
        }
    }
    return 0;
fail:
    pairmap_free(out);
    return -1;
}

static unsigned list_events(const listen_list *list)
{
    unsigned bits = 0;
    for (uint32_t i = 0; i < list_size(list); i++) {
        const msgpack_object *e = list_item(list, i);
        bits |= event_bit(e->via.str.ptr, e->via.str.size);
    }
    return bits;
}

/* addlisten / removelisten: the lists are added or taken away; a true flag
 * turns its whole kind on (add) or off (remove), false flags mean nothing
 * (the older Go SDK sends p2p: false with its lists). */
static void apply_incremental(rtmd_listener_state *l, const listen_args *a, bool add)
{
    unsigned bits = list_events(&a->events);
    l->events = add ? (l->events | bits) : (l->events & ~bits);
    if (a->p2p == 1)
        l->all_p2p = add;
    if (a->group == 1)
        l->all_group = add;
    if (a->room == 1)
        l->all_room = add;
    if (a->ev == 1)
        l->all_events = add;
    if (a->all == 1)
        l->all_p2p = l->all_group = l->all_room = l->all_events = add;
}

/* setlisten without `all`: each field given replaces what it names, the
 * others stay. The Go SDK sets its lists and its flags in two requests
 * (SetListen, SetListenStatus), again after every reconnect. A flag set
 * true also forgets the ids of its kind (and `ev` the named events),
 * unless the same request gives them: the Go SDK forgets them too, so
 * that rtmd holds what the SDK will send again after a reconnect. */
static void set_flag(bool *flag, int value, bool *drop_kind, bool list_given)
{
    if (value == -1)
        return;
    *flag = value == 1;
    if (value == 1 && !list_given)
        *drop_kind = true;
}

static void handle_listen(rtmd_request *req, enum listen_op op)
{
    listen_args a;
    if (!parse_listen_args(req, &a))
        return;
    rtmd_listener_state *l = listener_of(req);
    if (!l) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    bool drop[4] = {false};
    rtmd_listener_state next = *l; /* flags and events; ids built below */
    if (op == OP_SET && a.all != -1) {
        /* {all: b}: every kind on (true) or nothing at all (false); the
         * other fields are ignored, as the older Go SDK documents. */
        drop[ID_UID] = drop[ID_GID] = drop[ID_RID] = true;
        next.all_p2p = next.all_group = next.all_room = next.all_events = a.all == 1;
        next.events = 0;
        for (int k = 0; k < 3; k++)
            a.lists[k] = (listen_list){0};
    } else if (op == OP_SET) {
        for (int k = 0; k < 3; k++)
            drop[list_kinds[k]] = a.lists[k].given;
        bool drop_events = a.events.given;
        set_flag(&next.all_p2p, a.p2p, &drop[ID_UID], a.lists[0].given);
        set_flag(&next.all_group, a.group, &drop[ID_GID], a.lists[1].given);
        set_flag(&next.all_room, a.room, &drop[ID_RID], a.lists[2].given);
        set_flag(&next.all_events, a.ev, &drop_events, a.events.given);
        if (drop_events)
            next.events = list_events(&a.events);
    } else {
        apply_incremental(&next, &a, op == OP_ADD);
    }
    pairmap ids;
    if (build_ids(l, &a, op, drop, &ids) != 0) {
        request_error(req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, "too many listened ids");
        return;
    }
    pairmap_free(&l->ids);
    l->ids = ids;
    l->all_p2p = next.all_p2p;
    l->all_group = next.all_group;
    l->all_room = next.all_room;
    l->all_events = next.all_events;
    l->events = next.events;
    request_answer_empty(req);
}

static void method_addlisten(rtmd_request *req)
{
    handle_listen(req, OP_ADD);
}

static void method_removelisten(rtmd_request *req)
{
    handle_listen(req, OP_REMOVE);
}

static void method_setlisten(rtmd_request *req)
{
    handle_listen(req, OP_SET);
}

/* ---- delivery ---- */

static bool wants_message(const rtmd_listener_state *l, int conv_type, int64_t from, int64_t to)
{
    switch (conv_type) {
    case CONV_P2P:
        return l->all_p2p || listens_id(l, ID_UID, from) || listens_id(l, ID_UID, to);
    case CONV_GROUP:
        return l->all_group || listens_id(l, ID_GID, to);
    case CONV_ROOM:
        return l->all_room || listens_id(l, ID_RID, to);
    default:
        return false;
    }
}

/* A stored message was pushed: its push goes to every listener of the
 * project that wants it. */
static void on_message(rtmd_server *srv, const rtmd_event *ev)
{
    for (rtmd_listener_state *l = state(srv)->head; l; l = l->next)
        if (l->pid == ev->pid && wants_message(l, ev->conv_type, ev->uid, ev->to))
            conn_send_push(l->conn, ev->packet, ev->len);
}

static bool wants_event(const rtmd_listener_state *l, int64_t pid, unsigned bit)
{
    return l->pid == pid && (l->all_events || (l->events & bit));
}

static bool anyone_wants_event(rtmd_server *srv, int64_t pid, unsigned bit)
{
    for (rtmd_listener_state *l = state(srv)->head; l; l = l->next)
        if (wants_event(l, pid, bit))
            return true;
    return false;
}

/* "ip:port" of the user's newest connection, or "" once it is offline. */
static const char *user_endpoint(rtmd_server *srv, int64_t pid, int64_t uid, char buf[RTMD_PEER_LEN])
{
    rtmd_conn *c = users_newest_conn(srv, pid, uid);
    return c ? conn_peer(c, buf) : "";
}

static int encode_event(rtm_buf *out, int64_t pid, int64_t uid, const char *event, uint64_t ms,
                        const char *endpoint, const char *business)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    bool with_business = business && business[0];
    msgpack_pack_map(&pk, with_business ? 7 : 6);
    mp_pack_kv_int(&pk, "pid", pid);
    mp_pack_kv_str(&pk, "event", event);
    mp_pack_kv_int(&pk, "uid", uid);
    mp_pack_kv_int(&pk, "time", (int64_t)(ms / 1000u));
    mp_pack_kv_str(&pk, "endpoint", endpoint);
    mp_pack_kv_str(&pk, "data", "");
    if (with_business)
        mp_pack_kv_str(&pk, "businessid", business);
    int rc = push_encode(out, "pushevent", &body, true);
    msgpack_sbuffer_destroy(&body);
    return rc;
}

static void send_user_event(rtmd_server *srv, const rtmd_event *ev, const char *event)
{
    int64_t pid = ev->pid, uid = ev->uid;
    if (!srv->svc || !state(srv))
        return;
    unsigned bit = event_bit(event, strlen(event));
    if (!bit || !anyone_wants_event(srv, pid, bit))
        return;
    rtm_buf packet = {0};
    char peer[RTMD_PEER_LEN];
    const char *business = ev->user ? ev->user->event_business_id : NULL;
    if (encode_event(&packet, pid, uid, event, ev->ms, user_endpoint(srv, pid, uid, peer), business) == 0) {
        rtmd_listener_state *next;
        for (rtmd_listener_state *l = state(srv)->head; l; l = next) {
            next = l->next;
            if (wants_event(l, pid, bit))
                conn_send_push(l->conn, packet.data, packet.len);
        }
    }
    rtm_buf_free(&packet);
}

/* In a cluster the events are the cluster's logins and logouts (the
 * user's first node, its last), from cluster.c; else this node's. */
static void on_user_online(rtmd_server *srv, const rtmd_event *ev)
{
    if (!cluster_enabled(srv))
        send_user_event(srv, ev, "login");
}

static void on_user_offline(rtmd_server *srv, const rtmd_event *ev)
{
    if (srv->stopping < 2 && !cluster_enabled(srv)) /* not for the users rtmd logs out as it exits */
        send_user_event(srv, ev, "logout");
}

static void on_cluster_user_event(rtmd_server *srv, const cluster_user_event *ce)
{
    const char *event = ce->online ? "login" : "logout";
    unsigned bit = ce->online ? EV_LOGIN : EV_LOGOUT;
    if (!srv->svc || !state(srv) || srv->stopping >= 2 || !anyone_wants_event(srv, ce->pid, bit))
        return;
    rtm_buf packet = {0};
    if (encode_event(&packet, ce->pid, ce->uid, event, ce->ms, ce->endpoint, ce->business) == 0)
        for (rtmd_listener_state *l = state(srv)->head; l; l = l->next)
            if (wants_event(l, ce->pid, bit))
                conn_send_push(l->conn, packet.data, packet.len);
    rtm_buf_free(&packet);
}

/* A server-gate connection closes: forget what it listened to. */
static void on_conn_closed(rtmd_server *srv, const rtmd_event *ev)
{
    if (ev->conn->gate != GATE_SERVER_TCP)
        return;
    rtmd_listener_state *l = find_listener(state(srv), ev->conn);
    if (l) {
        int64_t pid = l->pid;
        listener_free(state(srv), l);
        listening_changed(srv, pid);
    }
}

/* ---- module life cycle ---- */

static int listen_init(rtmd_server *srv, char *err, size_t errlen)
{
    srv->svc->listen = calloc(1, sizeof *srv->svc->listen);
    if (!srv->svc->listen) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cluster_on_user_event(srv, on_cluster_user_event);
    return 0;
}

static const rtmd_method listen_methods[] = {
    {"addlisten", GATES_SERVER, method_addlisten, 0},
    {"removelisten", GATES_SERVER, method_removelisten, 0},
    {"setlisten", GATES_SERVER, method_setlisten, 0},
};

static void listen_free(rtmd_server *srv)
{
    struct listen_state *s = srv->svc->listen;
    if (!s)
        return;
    while (s->head) {
        listener_free(s, s->head);
    }
    free(s);
    srv->svc->listen = NULL;
}

static const rtmd_observer listen_observers[] = {
    {RTMD_EV_USER_ONLINE, on_user_online},
    {RTMD_EV_USER_OFFLINE, on_user_offline},
    {RTMD_EV_CONN_CLOSED, on_conn_closed},
    {RTMD_EV_MESSAGE, on_message},
};

const rtmd_module listen_module = {
    .name = "listen",
    .init = listen_init,
    .free = listen_free,
    RTMD_MODULE_METHODS(listen_methods),
    RTMD_MODULE_OBSERVERS(listen_observers),
};
