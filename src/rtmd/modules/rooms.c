/* Live rooms (see rooms.h): per (pid, rid) the sorted set of members, and
 * per (pid, uid) the rooms that online user is in, dropped when it leaves
 * the last one or goes offline. Nothing is stored: a room exists while
 * someone is in it.
 *
 * Only online users are in rooms. enterroom and the app server's
 * addroommember are idempotent and bounded by the project's
 * max_rooms_per_user (200047); addroommember for a user who is not online
 * is refused with 200055 (RTM_EC_NOT_ONLINE of the SDKs). It is not kept
 * for later: RTM rooms are not persistent, a membership ends when the user
 * goes offline, so one made while it is offline would be over before it
 * began (and pending memberships would be state that anyone signed could
 * grow without bound); a silent success would hide that from the app
 * server, which adds the user again once it is online. A user leaves by
 * leaveroom (idempotent), by delroommember (a oneway `kickoutroom` {rid}
 * push to each of its connections, which the SDKs do not answer), or when
 * its last connection ends (RTMD_EV_USER_OFFLINE).
 *
 * String-id (RTS) members. A room whose rid a string-id session gave as a
 * string keeps that string (its name, for pushes). enterroom of a
 * string-id session answers the other members, named by strings where
 * they have one (all members are online, so strid knows them). In rooms
 * of at most the project's room_events_max members, string-id members get
 * pushroomjoined {rid, uid} when another user enters and pushroomleft
 * {rid, uid, reason} when one leaves (reason as users.h USERS_GONE_*:
 * 0 leaveroom or bye, 1 connection lost, 3 kicked by the app server);
 * number-id members get neither, as the RTM SDKs know no such push.
 *
 * In a cluster (docs/cluster.md, "Rooms across nodes") a membership is
 * per user and node: each node keeps the rooms of its own sessions, as
 * alone, and writes them to Redis (cluster_room_changed). The app
 * server's add/del methods apply to this node's sessions and send an
 * acknowledged record to the other nodes, which apply it to the user's
 * sessions there with the same pushes (record_apply) and acknowledge once
 * Redis has published their rooms. A method that changes rooms is answered
 * once Redis has published this node's changes (hold_until_published) and
 * the other nodes have acknowledged (forward_change): the other nodes then
 * route the room's messages to the members, wherever they are. getroommembers and getroomcount
 * answer this node's members merged with the other nodes' read from
 * Redis. Membership pushes reach the other nodes' string-id members
 * through a record to every node (announce_remote, event_apply). */
#include "rooms.h"

#include "idset.h"
#include "cluster.h"
#include "log.h"
#include "methods.h"
#include "payload.h"
#include "push.h"
#include "rtm_errors.h"
#include "module.h"
#include "identity.h"
#include "strid.h"
#include "users.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most rooms one getroomcount call may name. */
#define ROOMCOUNT_MAX_RIDS 100
/* Most uids of addroommembers / delroommembers, rids of adduserrooms /
 * deleteuserrooms. */
#define ROOM_BULK_MAX 100
#define ROOM_RECORD_MAX 4096 /* bytes of a membership record (at most ROOM_BULK_MAX rids) */
/* Most members one enterroom answer of a string-id session lists. */
#define ROOM_MEMBERS_LISTED_MAX 1000

typedef struct room {
    idset members;
    char *name; /* its string id, when known (a string-id rid), else NULL */
} room;

/* The rooms one online user is in, in the order entered. */
typedef struct user_rooms {
    int64_t *rids;
    uint32_t n;
} user_rooms;

struct rooms_state {
    pairmap rooms; /* (pid, rid) -> room */
    pairmap users; /* (pid, uid) -> user_rooms, for users in at least one room */
};

static struct rooms_state *state(rtmd_server *srv)
{
    return srv->svc ? srv->svc->rooms : NULL;
}

static room *room_get(struct rooms_state *st, int64_t pid, int64_t rid)
{
    return st ? pairmap_get(&st->rooms, (uint64_t)pid, (uint64_t)rid) : NULL;
}

static user_rooms *rooms_of(struct rooms_state *st, int64_t pid, int64_t uid)
{
    return st ? pairmap_get(&st->users, (uint64_t)pid, (uint64_t)uid) : NULL;
}

static int user_room_index(const user_rooms *u, int64_t rid)
{
    for (uint32_t i = 0; u && i < u->n; i++)
        if (u->rids[i] == rid)
            return (int)i;
    return -1;
}

static void room_free(room *r)
{
    idset_free(&r->members);
    free(r->name);
    free(r);
}

/* Gives a string-id rid's room its string once it is known. */
static void room_learn_name(rtmd_server *srv, int64_t pid, int64_t rid, room *r)
{
    if (r->name || !identity_is_string_uid(rid))
        return;
    const char *sid = strid_name_of(srv, pid, rid);
    if (sid)
        r->name = strdup(sid); /* out of memory: stays unnamed, pushes name it by its number */
}

static void announce_remote(rtmd_server *srv, int64_t pid, int64_t rid, const room *r, int64_t uid, int reason);

/* Pushes pushroomjoined {rid, uid} (reason < 0) or pushroomleft {rid, uid,
 * reason} about uid to the room's other string-id members (or to member
 * `to` only, when not 0), if the room (uid counted) has at most the
 * project's room_events_max members. uid is named by uid_name when given,
 * else by this node's name for it. */
static void room_push_event(rtmd_server *srv, int64_t pid, int64_t rid, const room *r, int64_t uid,
                            const char *uid_name, int reason, int64_t to)
{
    const rtmd_project *p = rtmd_server_project(srv, pid);
    uint32_t max = p ? p->limits.room_events_max : 0;
    if (!r || max == 0 || r->members.n > max)
        return;
    bool any = false;
    for (uint32_t i = 0; i < r->members.n && !any; i++)
        any = r->members.v[i] != uid && identity_is_string_uid(r->members.v[i]) && (to == 0 || r->members.v[i] == to);
    if (!any)
        return;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, reason < 0 ? 2 : 3);
    if (r->name)
        mp_pack_kv_str(&pk, "rid", r->name);
    else
        mp_pack_kv_int(&pk, "rid", rid);
    const char *sid = uid_name ? uid_name : strid_name_of(srv, pid, uid);
    if (sid)
        mp_pack_kv_str(&pk, "uid", sid);
    else
        mp_pack_kv_int(&pk, "uid", uid);
    if (reason >= 0)
        mp_pack_kv_int(&pk, "reason", reason);
    rtm_buf packet = {0};
    if (push_encode(&packet, reason < 0 ? "pushroomjoined" : "pushroomleft", &body, true) == 0) {
        /* Pushing changes no room (a slow reader's close is deferred). */
        for (uint32_t i = 0; i < r->members.n; i++)
            if (r->members.v[i] != uid && identity_is_string_uid(r->members.v[i]) && (to == 0 || r->members.v[i] == to))
                users_push(srv, pid, r->members.v[i], packet.data, packet.len);
    } else {
        LOG_ERROR("rooms: cannot encode a membership push of room %lld", (long long)rid);
    }
    rtm_buf_free(&packet);
    msgpack_sbuffer_destroy(&body);
}

/* A change of this node's membership: told to its string-id members here
 * and, in a cluster, to the other nodes' (announce_remote). */
static void room_announce(rtmd_server *srv, int64_t pid, int64_t rid, const room *r, int64_t uid, int reason)
{
    room_push_event(srv, pid, rid, r, uid, NULL, reason, 0);
    if (cluster_enabled(srv))
        announce_remote(srv, pid, rid, r, uid, reason);
}

static void drop_user_rooms(struct rooms_state *st, int64_t pid, int64_t uid)
{
    user_rooms *u = pairmap_del(&st->users, (uint64_t)pid, (uint64_t)uid);
    if (u) {
        free(u->rids);
        free(u);
    }
}

/* Puts the online user in the room. Returns 0 (also when already there),
 * RTM_EC_ENTER_TOO_MANY_ROOMS, or -1 when out of memory. */
static int room_join(rtmd_server *srv, int64_t pid, int64_t uid, int64_t rid, uint32_t max_rooms)
{
    struct rooms_state *st = state(srv);
    user_rooms *u = rooms_of(st, pid, uid);
    if (user_room_index(u, rid) >= 0)
        return 0;
    if (u && u->n >= max_rooms)
        return RTM_EC_ENTER_TOO_MANY_ROOMS;
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u || pairmap_put(&st->users, (uint64_t)pid, (uint64_t)uid, u) != 0) {
            free(u);
            return -1;
        }
    }
    int64_t *rids = realloc(u->rids, ((size_t)u->n + 1) * sizeof *rids);
    if (!rids)
        goto fail;
    u->rids = rids;
    room *r = room_get(st, pid, rid);
    bool created = false;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r || pairmap_put(&st->rooms, (uint64_t)pid, (uint64_t)rid, r) != 0) {
            free(r);
            goto fail;
        }
        created = true;
    }
    if (idset_add(&r->members, uid) < 0) {
        if (created) {
            pairmap_del(&st->rooms, (uint64_t)pid, (uint64_t)rid);
            room_free(r);
        }
        goto fail;
    }
    u->rids[u->n++] = rid;
    cluster_room_changed(srv, pid, rid, uid, true);
    room_learn_name(srv, pid, rid, r);
    room_announce(srv, pid, rid, r, uid, -1);
    return 0;
fail:
    if (u->n == 0)
        drop_user_rooms(st, pid, uid);
    return -1;
}

/* Removes uid from the room's member set, telling the others (reason as
 * room_announce), dropping the room when empty. */
static void room_remove_member(rtmd_server *srv, int64_t pid, int64_t rid, int64_t uid, int reason)
{
    struct rooms_state *st = state(srv);
    room *r = room_get(st, pid, rid);
    if (!r || !idset_has(&r->members, uid))
        return;
    room_announce(srv, pid, rid, r, uid, reason);
    idset_del(&r->members, uid);
    cluster_room_changed(srv, pid, rid, uid, false);
    if (r->members.n == 0) {
        pairmap_del(&st->rooms, (uint64_t)pid, (uint64_t)rid);
        room_free(r);
    }
}

/* Takes the user out of the room (reason as room_announce); returns
 * whether it was in. */
static bool room_leave(rtmd_server *srv, int64_t pid, int64_t uid, int64_t rid, int reason)
{
    struct rooms_state *st = state(srv);
    user_rooms *u = rooms_of(st, pid, uid);
    int i = user_room_index(u, rid);
    if (i < 0)
        return false;
    memmove(u->rids + i, u->rids + i + 1, (size_t)(u->n - (uint32_t)i - 1) * sizeof *u->rids);
    if (--u->n == 0)
        drop_user_rooms(st, pid, uid);
    room_remove_member(srv, pid, rid, uid, reason);
    return true;
}

/* The user's last connection ended: it leaves every room. */
static void on_user_offline(rtmd_server *srv, const rtmd_event *ev)
{
    struct rooms_state *st = state(srv);
    user_rooms *u = rooms_of(st, ev->pid, ev->uid);
    if (!u)
        return;
    int reason = ev->user ? ev->user->gone : USERS_GONE_DROPPED;
    for (uint32_t i = 0; i < u->n; i++)
        room_remove_member(srv, ev->pid, u->rids[i], ev->uid, reason);
    drop_user_rooms(st, ev->pid, ev->uid);
}

bool rooms_is_member(rtmd_server *srv, int64_t pid, int64_t rid, int64_t uid)
{
    room *r = room_get(state(srv), pid, rid);
    return r && idset_has(&r->members, uid);
}

const int64_t *rooms_members(rtmd_server *srv, int64_t pid, int64_t rid, size_t *count)
{
    room *r = room_get(state(srv), pid, rid);
    *count = r ? r->members.n : 0;
    return r && r->members.n ? r->members.v : NULL;
}

const char *rooms_name(rtmd_server *srv, int64_t pid, int64_t rid)
{
    room *r = room_get(state(srv), pid, rid);
    if (r && r->name)
        return r->name;
    return identity_is_string_uid(rid) ? strid_name_of(srv, pid, rid) : NULL;
}

/* Whether a ranks before b in rooms_top. */
static bool ranks_before(const rooms_count *a, const rooms_count *b)
{
    if (a->members != b->members)
        return a->members > b->members;
    return a->pid != b->pid ? a->pid < b->pid : a->rid < b->rid;
}

size_t rooms_top(rtmd_server *srv, rooms_count *out, size_t max)
{
    struct rooms_state *st = state(srv);
    size_t n = 0;
    if (!st || max == 0)
        return 0;
    for (size_t i = 0; i < st->rooms.cap; i++) {
        const pairmap_slot *slot = &st->rooms.slots[i];
        if (!slot->value)
            continue;
        rooms_count c = {(int64_t)slot->a, (int64_t)slot->b, ((const room *)slot->value)->members.n};
        if (n == max && !ranks_before(&c, &out[n - 1]))
            continue;
        /* Insert in order; the last falls off when full. */
        size_t at = n < max ? n++ : max - 1;
        while (at > 0 && ranks_before(&c, &out[at - 1])) {
            out[at] = out[at - 1];
            at--;
        }
        out[at] = c;
    }
    return n;
}

/* ---- methods ---- */

static void answer_join(rtmd_request *req, int rc)
{
    if (rc == 0)
        request_answer_empty(req);
    else if (rc == RTM_EC_ENTER_TOO_MANY_ROOMS)
        request_error(req, RTM_EC_ENTER_TOO_MANY_ROOMS, "enter too many rooms");
    else
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
}

/* Answers a string-id session's enterroom: {members: [the others, string
 * ids where they have one]}, at most ROOM_MEMBERS_LISTED_MAX of them and
 * as many as surely fit in max_packet, and more: true when there are more. */
static void answer_members(rtmd_request *req, int64_t rid)
{
    int64_t pid = req->project->pid;
    const room *r = room_get(state(req->srv), pid, rid);
    uint32_t others = r && r->members.n ? r->members.n - 1 : 0;
    uint32_t max_packet = req->srv->cfg.max_packet;
    uint32_t fit = (max_packet > 2048 ? max_packet - 1024 : max_packet / 2) / (IDENTITY_STRING_MAX + 3);
    uint32_t cap = fit < ROOM_MEMBERS_LISTED_MAX ? fit : ROOM_MEMBERS_LISTED_MAX;
    uint32_t listed = others > cap ? cap : others;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, others > listed ? 2 : 1);
    mp_pack_cstr(&pk, "members");
    msgpack_pack_array(&pk, listed);
    for (uint32_t i = 0, n = 0; r && i < r->members.n && n < listed; i++) {
        int64_t m = r->members.v[i];
        if (m == req->uid)
            continue;
        const char *sid = strid_name_of(req->srv, pid, m);
        if (sid)
            mp_pack_cstr(&pk, sid);
        else
            msgpack_pack_int64(&pk, m);
        n++;
    }
    if (others > listed) {
        mp_pack_cstr(&pk, "more");
        msgpack_pack_true(&pk);
    }
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

static void release_request(rtmd_server *srv, void *req)
{
    (void)srv;
    request_release(req);
}

/* In a cluster, the answer of a method that put users in rooms waits
 * until Redis has published this node's room changes (cluster_room_fence):
 * once it is answered, a room message through any node is routed here. */
static void hold_until_published(rtmd_request *req)
{
    if (!cluster_enabled(req->srv))
        return;
    request_hold(req);
    cluster_room_fence(req->srv, release_request, req);
}

/* client: enterroom {rid} -> {} (a number-id session, as the RTM SDKs
 * expect) or {members, more?} (a string-id session) */
static void method_enterroom(rtmd_request *req)
{
    int64_t rid;
    if (!req_arg_int64(req, "rid", &rid))
        return;
    int rc = room_join(req->srv, req->project->pid, req->uid, rid, req->project->limits.max_rooms_per_user);
    hold_until_published(req);
    const rtmd_session *s = users_session(req->conn);
    if (rc == 0 && s && s->string_id)
        answer_members(req, rid);
    else
        answer_join(req, rc);
}

/* client: leaveroom {rid} -> {} (also when not in the room) */
static void method_leaveroom(rtmd_request *req)
{
    int64_t rid;
    if (!req_arg_int64(req, "rid", &rid))
        return;
    room_leave(req->srv, req->project->pid, req->uid, rid, USERS_GONE_QUIT);
    request_answer_empty(req);
}

/* client: getuserrooms {} -> {rooms: [rid]} */
static void method_getuserrooms(rtmd_request *req)
{
    const user_rooms *u = rooms_of(state(req->srv), req->project->pid, req->uid);
    request_answer_ids(req, "rooms", u ? u->rids : NULL, u ? u->n : 0);
}

/* ---- members across nodes ---- */

/* A getroommembers or getroomcount waiting for the other nodes' members
 * (cluster_room_members). */
typedef struct members_query {
    rtmd_request *req;
    bool count;
    uint32_t n;
    int64_t rids[ROOMCOUNT_MAX_RIDS];
} members_query;

/* This node's members of rid merged with the other nodes' (remote, sorted
 * and distinct) into out (or only counted when out is NULL). */
static size_t merge_members(rtmd_server *srv, int64_t pid, int64_t rid, const idset *remote, int64_t *out)
{
    size_t nl, i = 0, j = 0, n = 0;
    const int64_t *l = rooms_members(srv, pid, rid, &nl);
    while (i < nl || j < remote->n) {
        int64_t v;
        if (j >= remote->n || (i < nl && l[i] < remote->v[j]))
            v = l[i++];
        else if (i >= nl || remote->v[j] < l[i])
            v = remote->v[j++];
        else
            v = l[i++], j++;
        if (out)
            out[n] = v;
        n++;
    }
    return n;
}

static void answer_counts(rtmd_request *req, const int64_t *rids, uint32_t m, const idset *remote);

static void members_answer(rtmd_server *srv, void *arg, const idset *remote, bool partial)
{
    (void)partial; /* logged by the cluster: the answer is what could be read */
    members_query *q = arg;
    rtmd_request *req = q->req;
    if (q->count) {
        answer_counts(req, q->rids, q->n, remote);
    } else {
        int64_t pid = req->project->pid;
        size_t n = merge_members(srv, pid, q->rids[0], &remote[0], NULL);
        int64_t *uids = malloc((n ? n : 1) * sizeof *uids);
        if (uids) {
            merge_members(srv, pid, q->rids[0], &remote[0], uids);
            request_answer_ids(req, "uids", uids, n);
        } else {
            request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        }
        free(uids);
    }
    free(q);
}

/* In a cluster: answers once the other nodes' members are read. Returns
 * false when there is no cluster (the caller answers from this node). */
static bool members_across(rtmd_request *req, bool count, const int64_t *rids, uint32_t n)
{
    if (!cluster_enabled(req->srv) || n == 0)
        return false;
    members_query *q = malloc(sizeof *q);
    if (!q) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return true;
    }
    q->req = req;
    q->count = count;
    q->n = n;
    memcpy(q->rids, rids, n * sizeof *rids);
    if (cluster_room_members(req->srv, req->project->pid, rids, n, members_answer, q) != 0) {
        free(q);
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
    }
    return true;
}

/* both gates: getroommembers {rid} -> {uids}: the members on every node */
static void method_getroommembers(rtmd_request *req)
{
    int64_t rid;
    if (!req_arg_int64(req, "rid", &rid))
        return;
    if (members_across(req, false, &rid, 1))
        return;
    size_t n;
    const int64_t *uids = rooms_members(req->srv, req->project->pid, rid, &n);
    request_answer_ids(req, "uids", uids, n);
}

/* Answers {cn: {"<rid>": count}} of the m distinct rids: this node's
 * members, and the other nodes' (remote, one set per rid) when given. */
static void answer_counts(rtmd_request *req, const int64_t *ids, uint32_t m, const idset *remote)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "cn");
    msgpack_pack_map(&pk, m);
    for (uint32_t i = 0; i < m; i++) {
        char key[24];
        snprintf(key, sizeof key, "%" PRId64, ids[i]);
        size_t count;
        if (remote)
            count = merge_members(req->srv, req->project->pid, ids[i], &remote[i], NULL);
        else
            rooms_members(req->srv, req->project->pid, ids[i], &count);
        mp_pack_cstr(&pk, key);
        msgpack_pack_int64(&pk, (int64_t)count);
    }
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* both gates: getroomcount {rids} (or {rid}) -> {cn: {"<rid>": count}} */
static void method_getroomcount(rtmd_request *req)
{
    int64_t single;
    const msgpack_object *rids = mp_map_get(req->args, "rids");
    bool one = false;
    if (!rids || rids->type != MSGPACK_OBJECT_ARRAY) {
        if (!mp_get_int64(req->args, "rid", &single)) {
            /* About rids, unless only a mistyped rid was given. */
            const msgpack_object *r = mp_map_get(req->args, "rid");
            bool rid_only = (!rids || rids->type == MSGPACK_OBJECT_NIL) && r && r->type != MSGPACK_OBJECT_NIL;
            req_arg_error(req, rid_only ? "rid" : "rids");
            return;
        }
        one = true;
    } else if (rids->via.array.size > ROOMCOUNT_MAX_RIDS) {
        request_error(req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, "at most 100 rids");
        return;
    }
    uint32_t n = one ? 1 : rids->via.array.size;
    int64_t ids[ROOMCOUNT_MAX_RIDS];
    for (uint32_t i = 0; i < n; i++) {
        if (one) {
            ids[i] = single;
        } else if (!mp_obj_int64(&rids->via.array.ptr[i], &ids[i])) {
            request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "rids must be integers");
            return;
        }
    }
    /* Repeated rids would repeat map keys: count each once. */
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        bool seen = false;
        for (uint32_t j = 0; j < m && !seen; j++)
            seen = ids[j] == ids[i];
        if (!seen)
            ids[m++] = ids[i];
    }
    if (!members_across(req, true, ids, m))
        answer_counts(req, ids, m, NULL);
}

/* ---- membership changes for the user's other nodes ---- */

enum { ROOM_OP_ADD, ROOM_OP_DEL };

static void release_acked(void *req)
{
    request_release(req);
}

/* Sends [pid, op, uid, [rids]] for the user's sessions on other nodes,
 * which apply it to them (record_apply). No cluster, or the user on no
 * other node: nothing. The record goes acknowledged to every other node
 * (those without the user apply nothing), and req's answer waits until
 * each has applied it and Redis has published its rooms (or the
 * acknowledgement bound passed): once answered, getroommembers through
 * any node and room messages see the change. */
static void forward_change(rtmd_request *req, int64_t uid, int op, const int64_t *rids, uint32_t n)
{
    rtmd_server *srv = req->srv;
    int64_t pid = req->project->pid;
    size_t nodes[CLUSTER_NODES_MAX];
    if (cluster_nodes_of(srv, pid, uid, nodes, CLUSTER_NODES_MAX) == 0)
        return;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int64(&pk, pid);
    msgpack_pack_int(&pk, op);
    msgpack_pack_int64(&pk, uid);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_int64(&pk, rids[i]);
    request_hold(req);
    if (!cluster_send_all_acked(srv, CLUSTER_REC_ROOM, buf.data, buf.size, release_acked, req))
        request_release(req);
    msgpack_sbuffer_destroy(&buf);
}

/* Rooms of rids[0..n) the user is not in yet on this node. */
static uint32_t rooms_to_add(struct rooms_state *st, int64_t pid, int64_t uid, const int64_t *rids, uint32_t n)
{
    const user_rooms *u = rooms_of(st, pid, uid);
    uint32_t added = 0;
    for (uint32_t i = 0; i < n; i++)
        if (user_room_index(u, rids[i]) < 0)
            added++;
    return added;
}

/* server: addroommember {rid, uid} -> {}; the user must be online (200055).
 * In a cluster it enters the room on every node holding its sessions; the
 * answer is this node's, or {} when the user is on other nodes only. */
static void method_addroommember(rtmd_request *req)
{
    int64_t rid, uid;
    if (!req_arg_int64(req, "rid", &rid) || !req_arg_int64(req, "uid", &uid))
        return;
    int64_t pid = req->project->pid;
    if (!cluster_online(req->srv, pid, uid)) {
        request_error(req, RTM_EC_NOT_ONLINE, "user is not online");
        return;
    }
    forward_change(req, uid, ROOM_OP_ADD, &rid, 1);
    if (users_online(req->srv, pid, uid)) {
        int rc = room_join(req->srv, pid, uid, rid, req->project->limits.max_rooms_per_user);
        hold_until_published(req);
        answer_join(req, rc);
    } else {
        request_answer_empty(req);
    }
}

/* Takes the user out of the room and, if it was in, sends it a oneway
 * kickoutroom {rid}: rid is the room's string id for a string-id user
 * (the only name its SDK knows the room by), else the number. */
static void kick_from_room(rtmd_server *srv, int64_t pid, int64_t uid, int64_t rid)
{
    char name[IDENTITY_STRING_MAX + 1] = "";
    const char *known = identity_is_string_uid(uid) ? rooms_name(srv, pid, rid) : NULL;
    if (known)
        snprintf(name, sizeof name, "%s", known); /* the room may go with its last member */
    if (!room_leave(srv, pid, uid, rid, USERS_GONE_KICKED))
        return;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    if (name[0])
        mp_pack_kv_str(&pk, "rid", name);
    else
        mp_pack_kv_int(&pk, "rid", rid);
    rtm_buf packet = {0};
    if (push_encode(&packet, "kickoutroom", &body, false) == 0)
        users_push(srv, pid, uid, packet.data, packet.len);
    rtm_buf_free(&packet);
    msgpack_sbuffer_destroy(&body);
}

/* server: delroommember {rid, uid} -> {}; the user gets a kickoutroom push. */
static void method_delroommember(rtmd_request *req)
{
    int64_t rid, uid;
    if (!req_arg_int64(req, "rid", &rid) || !req_arg_int64(req, "uid", &uid))
        return;
    forward_change(req, uid, ROOM_OP_DEL, &rid, 1);
    kick_from_room(req->srv, req->project->pid, uid, rid);
    hold_until_published(req);
    request_answer_empty(req);
}

/* server: addroommembers {rid, uids} -> {successedUids}: the users now in
 * the room. A user who is not online, or already in max_rooms_per_user
 * other rooms, is left out (as addroommember would refuse it). */
static void method_addroommembers(rtmd_request *req)
{
    int64_t rid, *uids;
    uint32_t n, ok = 0;
    if (!req_arg_int64(req, "rid", &rid) || !req_arg_ids(req, "uids", ROOM_BULK_MAX, false, &uids, &n))
        return;
    int64_t pid = req->project->pid;
    for (uint32_t i = 0; i < n; i++) {
        if (!cluster_online(req->srv, pid, uids[i]))
            continue;
        forward_change(req, uids[i], ROOM_OP_ADD, &rid, 1);
        if (!users_online(req->srv, pid, uids[i])) {
            uids[ok++] = uids[i]; /* on other nodes only: they add it */
            continue;
        }
        int rc = room_join(req->srv, pid, uids[i], rid, req->project->limits.max_rooms_per_user);
        if (rc < 0) {
            free(uids);
            request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
            return;
        }
        if (rc == 0)
            uids[ok++] = uids[i];
    }
    hold_until_published(req);
    request_answer_ids(req, "successedUids", uids, ok);
    free(uids);
}

/* server: delroommembers {rid, uids} -> {successedUids}: every uid given is
 * out of the room; those that were in get a kickoutroom push. */
static void method_delroommembers(rtmd_request *req)
{
    int64_t rid, *uids;
    uint32_t n;
    if (!req_arg_int64(req, "rid", &rid) || !req_arg_ids(req, "uids", ROOM_BULK_MAX, false, &uids, &n))
        return;
    for (uint32_t i = 0; i < n; i++) {
        forward_change(req, uids[i], ROOM_OP_DEL, &rid, 1);
        kick_from_room(req->srv, req->project->pid, uids[i], rid);
    }
    hold_until_published(req);
    request_answer_ids(req, "successedUids", uids, n);
    free(uids);
}

/* server: adduserrooms {rids, uid} -> {}: the user (online, else 200001)
 * enters every room, or none when that would take it over
 * max_rooms_per_user (200047). */
static void method_adduserrooms(rtmd_request *req)
{
    int64_t uid, *rids;
    uint32_t n;
    if (!req_arg_int64(req, "uid", &uid) || !req_arg_ids(req, "rids", ROOM_BULK_MAX, false, &rids, &n))
        return;
    rtmd_server *srv = req->srv;
    int64_t pid = req->project->pid;
    if (!cluster_online(srv, pid, uid)) {
        free(rids);
        request_error(req, RTM_EC_INVALID_PID_OR_UID, "user is not online");
        return;
    }
    forward_change(req, uid, ROOM_OP_ADD, rids, n);
    if (!users_online(srv, pid, uid)) {
        free(rids);
        request_answer_empty(req); /* on other nodes only: they add it */
        return;
    }
    user_rooms *u = rooms_of(state(srv), pid, uid);
    uint32_t now = u ? u->n : 0, added = rooms_to_add(state(srv), pid, uid, rids, n);
    if ((uint64_t)now + added > req->project->limits.max_rooms_per_user) {
        free(rids);
        request_error(req, RTM_EC_ENTER_TOO_MANY_ROOMS, "enter too many rooms");
        return;
    }
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = room_join(srv, pid, uid, rids[i], req->project->limits.max_rooms_per_user);
    free(rids);
    hold_until_published(req);
    answer_join(req, rc);
}

/* server: deleteuserrooms {rids, uid} -> {}: the user leaves every room
 * named, with a kickoutroom push for each it was in. */
static void method_deleteuserrooms(rtmd_request *req)
{
    int64_t uid, *rids;
    uint32_t n;
    if (!req_arg_int64(req, "uid", &uid) || !req_arg_ids(req, "rids", ROOM_BULK_MAX, false, &rids, &n))
        return;
    forward_change(req, uid, ROOM_OP_DEL, rids, n);
    for (uint32_t i = 0; i < n; i++)
        kick_from_room(req->srv, req->project->pid, uid, rids[i]);
    free(rids);
    hold_until_published(req);
    request_answer_empty(req);
}

/* Applies a change from another node to this node's sessions of uid. */
static void apply_change(rtmd_server *srv, const rtmd_project *p, int op, int64_t uid, const int64_t *rids,
                         uint32_t n)
{
    int64_t pid = p->pid;
    if (op == ROOM_OP_DEL) {
        for (uint32_t i = 0; i < n; i++)
            kick_from_room(srv, pid, uid, rids[i]);
        return;
    }
    if (!users_online(srv, pid, uid))
        return; /* gone from this node meanwhile */
    const user_rooms *u = rooms_of(state(srv), pid, uid);
    uint32_t max = p->limits.max_rooms_per_user;
    if ((uint64_t)(u ? u->n : 0) + rooms_to_add(state(srv), pid, uid, rids, n) > max) {
        LOG_INFO("rooms: user %lld of project %lld would be in more than %u rooms on this node; not added",
                 (long long)uid, (long long)pid, max);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        if (room_join(srv, pid, uid, rids[i], max) < 0)
            LOG_ERROR("rooms: out of memory adding user %lld to room %lld", (long long)uid, (long long)rids[i]);
}

static void release_ack(rtmd_server *srv, void *token)
{
    cluster_ack_release(srv, token);
}

/* A membership change from another node (forward_change) for this node's
 * sessions of the user. Hostile bytes: every field is checked, the project
 * must be ours; adds apply only to a user online here, all rooms or none
 * (max_rooms_per_user of this node), as adduserrooms. */
static void record_apply(rtmd_server *srv, const uint8_t *data, size_t len)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 1024))
        return;
    int64_t pid, op, uid, rids[ROOM_BULK_MAX];
    uint32_t n = 0;
    const rtmd_project *p = NULL;
    const msgpack_object *f = cluster_record_fields(&zone, data, len, ROOM_RECORD_MAX, 4);
    bool ok = f && mp_obj_int64(&f[0], &pid) && (p = rtmd_server_project(srv, pid)) && mp_obj_int64(&f[1], &op) &&
              (op == ROOM_OP_ADD || op == ROOM_OP_DEL) && mp_obj_int64(&f[2], &uid) &&
              f[3].type == MSGPACK_OBJECT_ARRAY && f[3].via.array.size >= 1 && f[3].via.array.size <= ROOM_BULK_MAX;
    for (uint32_t i = 0; ok && i < f[3].via.array.size; i++)
        ok = mp_obj_int64(&f[3].via.array.ptr[i], &rids[n++]);
    msgpack_zone_destroy(&zone);
    if (!ok) {
        LOG_WARN("rooms: a malformed membership record from another node was dropped");
        return;
    }
    apply_change(srv, p, (int)op, uid, rids, n);
    /* Acknowledged once Redis has published this node's rooms. */
    cluster_ack_token *t = cluster_ack_hold(srv);
    if (t)
        cluster_room_fence(srv, release_ack, t);
}

/* The node (re)joined the cluster with its room keys cleared: every
 * membership of its sessions goes back. */
static void rooms_joined(rtmd_server *srv)
{
    struct rooms_state *st = state(srv);
    for (size_t i = 0; st && i < st->users.cap; i++) {
        const user_rooms *u = st->users.slots[i].value;
        for (uint32_t j = 0; u && j < u->n; j++)
            cluster_room_changed(srv, (int64_t)st->users.slots[i].a, u->rids[j], (int64_t)st->users.slots[i].b, true);
    }
}

/* ---- membership pushes across nodes ---- */

/* A record CLUSTER_REC_ROOM_EVENT: [op, pid, rid, uid, uid name or "",
 * arg, node]. EV_CHANGE: uid joined (arg -1) or left (arg the reason) the
 * room on node `node`; each other node pushes it to its own string-id
 * members (room_push_event) and, for a string-id joiner, answers `node`
 * with one EV_MEMBER per member of its own (uid is in the room; arg the
 * joiner, who alone is told; node ""), as the joiner's enterroom answer
 * lists its own node's. A user in the room through the receiving node too
 * is not announced there. */
enum { EV_CHANGE = 1, EV_MEMBER = 2, EV_FIELDS = 7 };
#define EV_NODE_MAX 64

static void send_event(rtmd_server *srv, const char *node, int op, int64_t pid, int64_t rid, int64_t uid, int64_t arg,
                       const char *origin)
{
    const char *uname = strid_name_of(srv, pid, uid);
    uname = uname ? uname : "";
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, EV_FIELDS);
    msgpack_pack_int(&pk, op);
    msgpack_pack_int64(&pk, pid);
    msgpack_pack_int64(&pk, rid);
    msgpack_pack_int64(&pk, uid);
    mp_pack_cstr(&pk, uname);
    msgpack_pack_int64(&pk, arg);
    mp_pack_cstr(&pk, origin);
    if (node)
        cluster_send(srv, node, CLUSTER_REC_ROOM_EVENT, buf.data, buf.size);
    else
        cluster_send_all(srv, CLUSTER_REC_ROOM_EVENT, buf.data, buf.size);
    msgpack_sbuffer_destroy(&buf);
}

/* Tells every other node of a change of this node's membership, when the
 * project has membership pushes (room_events_max). */
static void announce_remote(rtmd_server *srv, int64_t pid, int64_t rid, const room *r, int64_t uid, int reason)
{
    (void)r;
    const rtmd_project *p = rtmd_server_project(srv, pid);
    const char *self = cluster_node_id(srv);
    if (!p || p->limits.room_events_max == 0 || !self || strlen(self) > EV_NODE_MAX)
        return;
    send_event(srv, NULL, EV_CHANGE, pid, rid, uid, reason, self);
}

/* A name field: "" (none) or a string id of string-id uid, copied into out
 * (IDENTITY_STRING_MAX + 1 bytes). */
static bool event_name(const msgpack_object *o, int64_t uid, char *out)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > IDENTITY_STRING_MAX)
        return false;
    size_t n = o->via.str.size;
    if (n > 0 && (!identity_is_string_uid(uid) || !identity_validate(o->via.str.ptr, n)))
        return false;
    memcpy(out, o->via.str.ptr, n);
    out[n] = 0;
    return true;
}

/* A record of another node's announce_remote or EV_MEMBER answer. Hostile
 * bytes: every field is checked, the project must be ours. */
static void event_apply(rtmd_server *srv, const uint8_t *data, size_t len)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 1024))
        return;
    int64_t op = 0, pid, rid, uid, arg;
    char uname[IDENTITY_STRING_MAX + 1], node[EV_NODE_MAX + 1];
    const rtmd_project *p = NULL;
    const msgpack_object *f = cluster_record_fields(&zone, data, len, ROOM_RECORD_MAX, EV_FIELDS);
    bool ok = f && cluster_record_int(&f[0], EV_CHANGE, EV_MEMBER, &op) &&
              cluster_record_int(&f[1], 1, INT64_MAX, &pid) && (p = rtmd_server_project(srv, pid)) &&
              cluster_record_int(&f[2], INT64_MIN, INT64_MAX, &rid) &&
              cluster_record_int(&f[3], INT64_MIN, INT64_MAX, &uid) && event_name(&f[4], uid, uname) &&
              cluster_record_int(&f[5], op == EV_CHANGE ? -1 : INT64_MIN, op == EV_CHANGE ? INT32_MAX : INT64_MAX,
                                 &arg) &&
              f[6].type == MSGPACK_OBJECT_STR && f[6].via.str.size <= EV_NODE_MAX &&
              !memchr(f[6].via.str.ptr, 0, f[6].via.str.size) && (op == EV_MEMBER) == (f[6].via.str.size == 0);
    if (ok) {
        memcpy(node, f[6].via.str.ptr, f[6].via.str.size);
        node[f[6].via.str.size] = 0;
    }
    msgpack_zone_destroy(&zone);
    if (!ok) {
        LOG_WARN("rooms: a malformed membership event from another node was dropped");
        return;
    }
    room *r = room_get(state(srv), pid, rid);
    if (!r)
        return; /* no member here */
    const char *un = uname[0] ? uname : NULL;
    bool here = idset_has(&r->members, uid); /* in the room through this node too: not announced */
    if (op == EV_MEMBER) {
        if (!here && identity_is_string_uid(arg) && idset_has(&r->members, arg))
            room_push_event(srv, pid, rid, r, uid, un, -1, arg);
        return;
    }
    if (!here)
        room_push_event(srv, pid, rid, r, uid, un, (int)arg, 0);
    if (arg >= 0 || !identity_is_string_uid(uid) || r->members.n > p->limits.room_events_max)
        return;
    for (uint32_t i = 0; i < r->members.n; i++)
        send_event(srv, node, EV_MEMBER, pid, rid, r->members.v[i], uid, "");
}

/* ---- module life cycle ---- */

static int rooms_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct rooms_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->rooms = st;
    cluster_on_record(srv, CLUSTER_REC_ROOM, record_apply);
    cluster_on_record(srv, CLUSTER_REC_ROOM_EVENT, event_apply);
    cluster_on_rooms_joined(srv, rooms_joined);
    return 0;
}

static const rtmd_method rooms_methods[] = {
    {"enterroom", GATES_CLIENT, method_enterroom, 0},
    {"leaveroom", GATES_CLIENT, method_leaveroom, 0},
    {"getuserrooms", GATES_CLIENT, method_getuserrooms, 0},
    {"getroommembers", GATES_CLIENT | GATES_SERVER, method_getroommembers, 0},
    {"getroomcount", GATES_CLIENT | GATES_SERVER, method_getroomcount, 0},
    {"addroommember", GATES_SERVER, method_addroommember, 0},
    {"delroommember", GATES_SERVER, method_delroommember, 0},
    {"addroommembers", GATES_SERVER, method_addroommembers, 0},
    {"delroommembers", GATES_SERVER, method_delroommembers, 0},
    {"adduserrooms", GATES_SERVER, method_adduserrooms, 0},
    {"deleteuserrooms", GATES_SERVER, method_deleteuserrooms, 0},
};

static void rooms_free(rtmd_server *srv)
{
    struct rooms_state *st = state(srv);
    if (!st)
        return;
    for (size_t i = 0; i < st->rooms.cap; i++) {
        room *r = st->rooms.slots[i].value;
        if (r)
            room_free(r);
    }
    for (size_t i = 0; i < st->users.cap; i++) {
        user_rooms *u = st->users.slots[i].value;
        if (u) {
            free(u->rids);
            free(u);
        }
    }
    pairmap_free(&st->rooms);
    pairmap_free(&st->users);
    free(st);
    srv->svc->rooms = NULL;
}

static const rtmd_observer rooms_observers[] = {
    {RTMD_EV_USER_OFFLINE, on_user_offline},
};

const rtmd_module rooms_module = {
    .name = "rooms",
    .init = rooms_init,
    .free = rooms_free,
    RTMD_MODULE_METHODS(rooms_methods),
    RTMD_MODULE_OBSERVERS(rooms_observers),
};
