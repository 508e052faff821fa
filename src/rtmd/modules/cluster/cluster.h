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

#endif
