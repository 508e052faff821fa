/* The cluster (docs/cluster.md): this node's place among the rtmd nodes
 * that share one Redis (redis_url). It owns the two Redis connections on
 * the loop, this node's liveness key, the publishing of which local users
 * are online, the reaping of dead nodes, and the node-local presence mirror
 * (the users online on the other nodes) that presence reads consult without
 * waiting for Redis. Without redis_url it does nothing and presence is the
 * local one (users.h). */
#ifndef RTMD_CLUSTER_H
#define RTMD_CLUSTER_H

#include "idset.h"
#include "server_state.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Liveness: a node refreshes its key every CLUSTER_TICK_MS * 2 and the key
 * lives CLUSTER_NODE_TTL_S; every node checks the others as often. A node
 * killed without a goodbye has its users offline on every other node within
 * CLUSTER_NODE_TTL_S + 2 * CLUSTER_TICK_MS / 1000 seconds (plus one Redis
 * round trip): CLUSTER_DEAD_BOUND_S. */
#define CLUSTER_TICK_MS 500
#define CLUSTER_NODE_TTL_S 5
#define CLUSTER_DEAD_BOUND_S 6

/* The user is online on this node or, by the presence mirror, on another
 * node of the cluster. Without a cluster: users_online. */
bool cluster_online(rtmd_server *srv, int64_t pid, int64_t uid);

/* This node's id in the cluster, or NULL (no cluster, or not joined yet). */
const char *cluster_node_id(const rtmd_server *srv);

/* ---- records between nodes --------------------------------------------
 * A record is (kind, bytes) for another node. Records queued for one node
 * in one loop turn go out together, as one PUBLISH on the channel
 * rtmd:n:<node>, at the end of the turn; each node subscribes its own
 * channel before it joins and hands every record to the function
 * registered for its kind. Pub/sub is at most once: a record is dropped
 * (and counted in /metrics) when Redis is away or too much is in flight. */
#define CLUSTER_NODES_MAX 1024 /* other nodes followed */
#define CLUSTER_RECORD_MAX (48u << 20) /* above two 16 MiB fields (msg, attrs) */

/* Kinds, one per user of the seam. */
enum {
    CLUSTER_REC_MESSAGE = 1,
    CLUSTER_REC_ROOM, /* rooms.c: a membership change for the user's node */
    CLUSTER_REC_KICK, CLUSTER_REC_USER_EVENT, /* logins across nodes (cluster.c "logins") */
    /* mirrors (groups.c, friends.c, bans.c, rtcat/): "reload this from the store" */
    CLUSTER_REC_INV_GROUPS, CLUSTER_REC_INV_FRIENDS, CLUSTER_REC_INV_BANS, CLUSTER_REC_INV_RTCAT,
    /* auth.c: getattrs across nodes (ask, answer), kickout {ce} of a session on another node */
    CLUSTER_REC_ATTRS_ASK, CLUSTER_REC_ATTRS_ANSWER, CLUSTER_REC_CE_KICK,
    CLUSTER_REC_ROOM_EVENT, /* rooms.c: pushroomjoined/pushroomleft for the other nodes' members */
    /* cluster.c "acknowledged records": a record to acknowledge, its acknowledgement */
    CLUSTER_REC_SYNC, CLUSTER_REC_ACK,
    CLUSTER_REC_LANG, /* translate/: a user's new language, for its sessions on the other nodes */
    CLUSTER_KINDS
};

/* data is hostile (another node, or anyone with Redis): check every byte. */
typedef void (*cluster_record_fn)(rtmd_server *srv, const uint8_t *data, size_t len);

/* true with redis_url (then records and the calls below mean something). */
bool cluster_enabled(const rtmd_server *srv);
/* Registers the handler of a kind; does nothing without a cluster. */
void cluster_on_record(rtmd_server *srv, unsigned kind, cluster_record_fn fn);
/* Queues a record for node_id. Returns 0, or -1 when it is dropped. */
int cluster_send(rtmd_server *srv, const char *node_id, unsigned kind, const void *data, size_t len);

/* Reading a record of msgpack fields (a handler's data): the fields of
 * an array of exactly n, when data is at most max bytes of exactly one
 * well-formed object (rtm_msgpack_check), unpacked into zone; else NULL. */
const msgpack_object *cluster_record_fields(msgpack_zone *zone, const uint8_t *data, size_t len, size_t max,
                                            uint32_t n);
/* An integer field within [min, max]. */
bool cluster_record_int(const msgpack_object *o, int64_t min, int64_t max, int64_t *out);

/* The live other nodes, by index 0..count-1; indexes hold until the loop
 * turns (a node may go between two turns). */
size_t cluster_node_count(const rtmd_server *srv);
const char *cluster_node_at(const rtmd_server *srv, size_t i);
/* The user has a session on node i, by the mirror. */
bool cluster_node_holds(const rtmd_server *srv, size_t i, int64_t pid, int64_t uid);
/* The user has a session on another node (one lookup). */
bool cluster_remote_online(const rtmd_server *srv, int64_t pid, int64_t uid);
/* How many other nodes hold a session of the user. */
size_t cluster_holders(const rtmd_server *srv, int64_t pid, int64_t uid);
/* Indexes of the other nodes holding the user into out (at most cap);
 * returns how many. */
size_t cluster_nodes_of(const rtmd_server *srv, int64_t pid, int64_t uid, size_t *out, size_t cap);
/* Node i has at least one app server listening to project pid. */
bool cluster_node_listens(const rtmd_server *srv, size_t i, int64_t pid);
/* This node has (or no longer has) app servers listening to pid. */
void cluster_listening(rtmd_server *srv, int64_t pid, bool on);

/* ---- room membership in Redis (rooms.c) -------------------------------
 * Each node writes the room memberships of its own sessions to its own
 * keys (rtmd:{n<id>}:r:<pid>:<rid>, a set of uids, and the index
 * rtmd:{n<id>}:rooms of "pid:rid"); a reaped node's keys go with it. Reads
 * of members ask every live other node's keys; which nodes have members
 * in a room is in the mirror (cluster_room_nodes). Without a cluster these
 * do nothing. */

/* uid entered (in) or left (!in) room rid on this node. The node's first
 * member of a room (or its last gone) reaches every other node's mirror
 * with the node's presence changes. */
void cluster_room_changed(rtmd_server *srv, int64_t pid, int64_t rid, int64_t uid, bool in);
/* fn(srv, arg) runs once Redis has run (and published) every room change
 * this node sent before the call: at once when none is in flight or
 * without a cluster, else when Redis answers (or the connection goes). */
void cluster_room_fence(rtmd_server *srv, void (*fn)(rtmd_server *srv, void *arg), void *arg);
/* Indexes of the other nodes with members in room rid of pid, by the
 * mirror (also a node whose snapshot is in flight), into out (at most
 * cap); returns how many. For rid CLUSTER_BROADCAST_RID, here and in
 * cluster_send_room: the nodes with users of pid (a broadcast's). */
#define CLUSTER_BROADCAST_RID INT64_MIN
size_t cluster_room_nodes(const rtmd_server *srv, int64_t pid, int64_t rid, size_t *out, size_t cap);
/* Queues a room's record (as cluster_send) now for the nodes want[i]
 * (indexes 0..nodes-1, those with members and listeners), and for each
 * other node once this node's subscription has read what Redis published
 * before this call, if that node then has members in the room: a member
 * whose entry was published before the message reached this node is not
 * missed. Without a fence (Redis away, too much waiting) every node gets
 * it at once. */
void cluster_send_room(rtmd_server *srv, int64_t pid, int64_t rid, unsigned kind, const void *data, size_t len,
                       const bool *want, size_t nodes);
/* fn runs each time this node (re)joins, after its room keys were
 * cleared: it re-adds every membership of the node (cluster_room_changed). */
void cluster_on_rooms_joined(rtmd_server *srv, void (*fn)(rtmd_server *srv));

/* The answer of cluster_room_members: per rid asked, the sorted distinct
 * uids in the room on the other nodes (arrays owned by the call). partial:
 * some node could not be read (Redis away). */
typedef void (*cluster_rooms_fn)(rtmd_server *srv, void *arg, const idset *per_rid, bool partial);
/* Reads the members on the other nodes of the n rooms rids (at most 100)
 * of pid; fn runs once, now (no other node, Redis away) or when Redis
 * answered. Returns -1 (fn not called) when out of memory. */
int cluster_room_members(rtmd_server *srv, int64_t pid, const int64_t *rids, size_t n, cluster_rooms_fn fn, void *arg);

/* ---- logins across nodes ----------------------------------------------
 * Kicks: every RTMD_EV_USER_KICKED (users.c) goes as a kick record to
 * every other node, which kicks its own sessions of the user (all of
 * them, or those of a login older than the record's seq).
 * Single login: cluster_claim_login takes the user's next login sequence
 * from Redis for the connection's session (asked, never waited for: the
 * login is answered at once); when it lands, the session's older logins
 * are kicked here and on every other node, and a session whose sequence
 * is below one a newer login already announced is kicked itself. Without
 * a joined cluster it does nothing (the local kick of login_finish is all).
 * Cluster logins and logouts: each local online/offline runs a script on
 * the user's Redis hash of nodes; the one node that sees the first node
 * come or the last go hands a cluster_user_event to the function
 * registered here, and sends it to every node with app servers listening
 * to the project, which hand it to theirs. A reaped node's users get
 * their logout from the reaper. Redis away: the event is handed on
 * locally, as without a cluster. */
void cluster_claim_login(rtmd_server *srv, rtmd_conn *c, int64_t pid, int64_t uid);

typedef struct cluster_user_event {
    int64_t pid, uid;
    bool online;      /* login, else logout */
    uint64_t ms;      /* unix milliseconds */
    const char *endpoint; /* "ip:port", "" for a logout */
    const char *business; /* business id of the login or logout, or NULL */
} cluster_user_event;
typedef void (*cluster_user_event_fn)(rtmd_server *srv, const cluster_user_event *ev);
/* Registers who gets cluster logins and logouts (listen.c). */
void cluster_on_user_event(rtmd_server *srv, cluster_user_event_fn fn);


/* ---- mirrors: invalidations and rebuilds ------------------------------
 * A module that mirrors a table in memory tells every other live node,
 * after its write committed, what to reload (cluster_send_all with ids
 * packed by cluster_ids_pack); the receivers reload it from the store.
 * Records may be lost (Redis away, this node taken for dead): each time
 * this node (re)joins, one loop tick later, every function registered
 * with cluster_on_rejoin runs and reloads its whole mirror. */
#define CLUSTER_REJOIN_MAX 8

/* Queues the record for every live other node (nothing without a cluster). */
void cluster_send_all(rtmd_server *srv, unsigned kind, const void *data, size_t len);
typedef void (*cluster_rejoin_fn)(rtmd_server *srv);
void cluster_on_rejoin(rtmd_server *srv, cluster_rejoin_fn fn);
/* n int64s as 8 bytes each, big endian; returns 8 * n. */
size_t cluster_ids_pack(uint8_t *out, const int64_t *v, size_t n);
/* The reverse, only when len is exactly 8 * n. */
bool cluster_ids_unpack(const uint8_t *p, size_t len, int64_t *v, size_t n);

/* ---- acknowledged records --------------------------------------------
 * A mirror change is answered once every live other node has applied it.
 * cluster_send_all_acked sends the record to every live other node,
 * wrapped with this node's id and a sync id; a receiver runs the handler
 * of its kind as for a plain record and acknowledges when the handler
 * returns, or, when the handler took a hold (cluster_ack_hold) for work
 * that ends later (a reload through the writer), when the last hold is
 * released. done(arg) runs once, from the loop, when every node the record
 * went to has acknowledged, or a node went, or Redis went away, or
 * CLUSTER_ACK_BOUND_MS passed (checked each tick: at most one tick later;
 * logged at most once per 10 s, counted in /metrics). */
#define CLUSTER_ACK_BOUND_MS 2000
#define CLUSTER_ACKS_MAX 4096     /* syncs waiting on this node; beyond, sent unacknowledged */
#define CLUSTER_ACK_HOLDS_MAX 65536 /* holds alive on this node; beyond, acknowledged at once */

typedef void (*cluster_acked_fn)(void *arg);
/* Returns true when done will run later. False when there is nothing to
 * wait for (no cluster, no other node, Redis away, CLUSTER_ACKS_MAX
 * waiting): the record went plain where it could, done is not called, and
 * the caller goes on at once. */
bool cluster_send_all_acked(rtmd_server *srv, unsigned kind, const void *data, size_t len, cluster_acked_fn done,
                            void *arg);
typedef struct cluster_ack_token cluster_ack_token;
/* In a handler run for an acknowledged record: delays its acknowledgement
 * until cluster_ack_release of the token. Elsewhere (a plain record, a
 * rebuild, no cluster): NULL. */
cluster_ack_token *cluster_ack_hold(rtmd_server *srv);
/* Releases a hold (NULL: nothing); the last one sends the acknowledgement. */
void cluster_ack_release(rtmd_server *srv, cluster_ack_token *t);

#endif
