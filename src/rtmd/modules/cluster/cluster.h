/* The cluster (docs/cluster.md): this node's place among the rtmd nodes
 * that share one Redis (redis_url). It owns the two Redis connections on
 * the loop, this node's liveness key, the publishing of which local users
 * are online, the reaping of dead nodes, and the node-local presence mirror
 * (the users online on the other nodes) that presence reads consult without
 * waiting for Redis. Without redis_url it does nothing and presence is the
 * local one (users.h). */
#ifndef RTMD_CLUSTER_H
#define RTMD_CLUSTER_H

#include "server_state.h"

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
enum { CLUSTER_REC_MESSAGE = 1, CLUSTER_KINDS };

/* data is hostile (another node, or anyone with Redis): check every byte. */
typedef void (*cluster_record_fn)(rtmd_server *srv, const uint8_t *data, size_t len);

/* true with redis_url (then records and the calls below mean something). */
bool cluster_enabled(const rtmd_server *srv);
/* Registers the handler of a kind; does nothing without a cluster. */
void cluster_on_record(rtmd_server *srv, unsigned kind, cluster_record_fn fn);
/* Queues a record for node_id. Returns 0, or -1 when it is dropped. */
int cluster_send(rtmd_server *srv, const char *node_id, unsigned kind, const void *data, size_t len);

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

#endif
