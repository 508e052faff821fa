/* bench.h — the shared model of rtm-bench: the options every part reads, the
 * target interface a server (rtmd, mosquitto, nats, redis) implements, the
 * calls a target makes back into the scenario engine (main.c), and the
 * message layout.
 *
 * Shape: one libuv loop runs everything. The engine (main.c) owns clients by
 * index 0..nclients-1 and decides who connects, who subscribes to which topic
 * and who publishes when; a target owns the sockets and the per-client state
 * (an array it allocates in init(), sized by nclients) and reports every
 * completion by calling the bench_*() functions below, always on the loop
 * thread. Targets never allocate per message beyond what their client library
 * does, and never block.
 *
 * This header is a contract between engineers: change it only by adding, and
 * say what changed in the CHANGES comment at the end.
 */
#ifndef RTM_BENCH_H
#define RTM_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- message layout ---------------------------------------------------
 * Every payload the engine publishes is exactly opts->size bytes (at least
 * BENCH_HDR_BYTES) and starts with:
 *   [0..8)   send time, ns from uv_hrtime(), little-endian
 *   [8..12)  sender client index, little-endian
 *   [12..16) sender's sequence number, little-endian
 * followed by filler bytes. Targets carry the bytes unchanged (rtmd: msgpack
 * bin `msg`; peers: the raw message body) and hand them back to
 * bench_delivered() as received. The engine drops self-deliveries (a peer
 * broker echoing a client's own publish back to it) and counts them as
 * `echoes`; targets should turn echo off where the protocol allows (NATS
 * NoEcho, MQTT v5 no-local) so that every server does the same work. */
#define BENCH_HDR_BYTES 16

/* ---- options (filled by main.c from the command line; read-only) -------- */
typedef struct bench_opts {
    const char *target;        /* "rtmd", "mosquitto", "nats", "redis" */
    const char *scenario;      /* "p2p", "fanout", "rooms", "idle", "churn" */
    const char *host;          /* server address, loopback only (default 127.0.0.1) */
    int port;                  /* server port; 0 = the target's default
                                  (rtmd 13325 tcp / 13321 ws, mosquitto 1883,
                                  nats 4222, redis 6379) */
    int gate_port;             /* rtmd server gate (default 13315) */
    int ws;                    /* rtmd: 1 = WebSocket client gate, 0 = TCP */
    int64_t pid;               /* rtmd project id */
    const char *secret;        /* rtmd project secret (server gate signing) */
    int64_t uid_base;          /* rtmd: client i is uid uid_base + i */
    int64_t rid_base;          /* rtmd: topic t is rid rid_base + t */
    int connections;           /* receivers (fanout), users (rooms), idle
                                  connections (idle), pairs (p2p), concurrent
                                  slots (churn) */
    int senders;               /* fanout: publishing clients */
    int room_size;             /* rooms: users per room */
    int size;                  /* payload bytes (>= BENCH_HDR_BYTES) */
    int window;                /* in-flight publishes per sender (open loop) */
    double rate;               /* total publishes/s over all senders; 0 = open
                                  loop limited by window (rooms: per user) */
    double warmup;             /* seconds before measuring */
    double duration;           /* measured seconds */
    double drain;              /* max seconds to wait for in-flight at the end */
    int connect_concurrency;   /* connects in flight at once */
    int server_pid;            /* for VmRSS; 0 = unknown */
    int nsource_addrs;         /* --source-addrs, parsed */
    const char *const *source_addrs;
    int verbose;
    const char *json_path;     /* --json FILE (append one line) */
    const char *label;         /* --label, free text copied into the JSON */
    const char *metrics_addr;  /* --metrics HOST:PORT: rtmd's HTTP listener (stages.h) */
    const char *metrics_out;   /* --metrics-out FILE: its stage series over the window */
    /* --nodes (rtmd only): a cluster instead of one server. Client i talks
     * to node bench_node_of(i) (round robin); host/port/gate_port above are
     * then unused. */
    int nnodes;
    const struct bench_node *nodes;
} bench_opts;

/* One node of --nodes HOST:PORT:GATEPORT[:PID]: PORT is the client gate of
 * the transport used (TCP, or WebSocket with --ws); PID (optional) is read
 * for the node's CPU time and memory. */
#define BENCH_MAX_NODES 64
typedef struct bench_node {
    char host[16];
    int port, gate_port, pid;
} bench_node;

/* ---- the target interface ---------------------------------------------- */

/* capability flags */
#define BENCH_CAP_P2P        0x01u  /* send_p2p(): rtmd sendmsg quest/answer */
#define BENCH_CAP_PUB_ACK    0x02u  /* bench_acked() means the server accepted
                                       (stored) the message; without it, acked
                                       means handed to the socket / library */
#define BENCH_CAP_WS         0x04u  /* can use opts->ws */
#define BENCH_CAP_JOIN_TO_PUBLISH 0x08u /* a client must subscribe to a topic
                                       before publishing to it (rtmd rooms):
                                       the engine then subscribes senders to
                                       their topic too. Without the flag,
                                       fanout senders do not subscribe. In
                                       rooms everyone subscribes anyway. */

typedef struct bench_target {
    const char *name;
    unsigned caps;

    /* Allocate per-client state for nclients clients; no I/O yet. 0 or -1. */
    int (*init)(uv_loop_t *loop, const bench_opts *o, int nclients);

    /* Anything before connecting (rtmd: mint tokens for clients
     * [0, nclients) through the server gate, in batches). Completes with
     * bench_prepared(status); may call it from inside prepare(). NULL = none. */
    int (*prepare)(void);

    /* Connect client i (and log in: rtmd auth). Completes with
     * bench_connected(i, status) once the client can subscribe and publish.
     * A slot may be connected again after bench_closed() (churn).
     * Source address: bench_source_addr(i) (NULL = let the kernel choose). */
    int (*connect)(int client);

    /* Subscribe client i to topic t (rtmd: enterroom rid_base + t; peers:
     * topic/subject/channel named bench_topic_name(t)). Completes with
     * bench_subscribed(i, status). */
    int (*subscribe)(int client, uint32_t topic);

    /* Publish len bytes to topic t from client i. The cookie is returned in
     * bench_acked(i, cookie, status) exactly once per successful call
     * (return 0). bench_acked() may be called from inside publish(). A
     * non-zero return means nothing was sent and no ack follows. A client
     * that subscribes and also publishes may need two sockets in some peers
     * (Redis): that is the target's business. */
    int (*publish)(int client, uint32_t topic, const void *data, size_t len,
                   uint64_t cookie);

    /* BENCH_CAP_P2P only: send len bytes from client i to client `to`
     * (rtmd sendmsg); acked like publish; the receiver's push arrives as
     * bench_delivered(to, ...). */
    int (*send_p2p)(int client, int to, const void *data, size_t len,
                    uint64_t cookie);

    /* BENCH_CAP_P2P only, with --nodes: complete bench_subscribed(i, status)
     * once client i's node sees client `peer` online. Presence across nodes
     * is eventually consistent: a message to a user whose login has not
     * reached the sender's node yet is stored but not pushed, so a run that
     * starts before that would count such messages as lost. */
    int (*await_online)(int client, int peer);

    /* Close client i (rtmd: just close the socket). Completes with
     * bench_closed(i, 0). Unacked publishes are acked with a non-zero
     * status before that. */
    void (*close)(int client);

    /* Free everything; the loop has stopped or all clients are closed. */
    void (*shutdown)(void);
} bench_target;

/* Targets known to the engine. */
extern const bench_target bench_target_rtmd;
extern const bench_target bench_target_mosquitto;
extern const bench_target bench_target_nats;
extern const bench_target bench_target_redis;

/* ---- calls from a target into the engine (main.c), loop thread only ----- */
void bench_prepared(int status);
void bench_connected(int client, int status);       /* 0 = ready */
void bench_subscribed(int client, int status);
void bench_acked(int client, uint64_t cookie, int status);
void bench_delivered(int client, const void *data, size_t len);
/* The connection ended: after close(), or by itself (status != 0, e.g. the
 * server closed it or a read failed). No more callbacks for the client until
 * it is connected again. */
void bench_closed(int client, int status);
/* An error not tied to one operation (bad push, protocol error). */
void bench_error(int client, int code, const char *what);

/* ---- helpers provided by main.c ---------------------------------------- */
uint64_t bench_now_ns(void);                  /* uv_hrtime() */
/* Source address for client i from --source-addrs (round robin), or NULL.
 * The sockaddr has port 0; pass it to uv_tcp_bind() before uv_tcp_connect(). */
const struct sockaddr *bench_source_addr(int client);
const char *bench_source_addr_str(int client); /* same, as text, or NULL */
/* The node client i talks to with --nodes: i % nnodes (so the sender 2k
 * and the receiver 2k + 1 of a p2p pair are on different nodes when there
 * are two or more); 0 without --nodes. */
int bench_node_of(int client);
/* "bench.<t>" — topic / subject / channel name for peers. Static buffer per
 * call: copy it if you keep it. */
const char *bench_topic_name(uint32_t topic);
/* Logging: printf-like, to stderr, only with --verbose (level 1+). */
void bench_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* CHANGES
 * v1: first version, including BENCH_CAP_JOIN_TO_PUBLISH (added within
 *     the first quarter hour, before any peer code used the header).
 * v2: bench_opts.nnodes/nodes (--nodes, a cluster of rtmd nodes),
 *     bench_node and bench_node_of().
 * Notes for peers: the engine reads server RSS itself (--server-pid); a
 * target's bench_acked() for a peer without server acks should fire when
 * the library has written the message (or at once), and --rate is then the
 * honest way to load it; per-connection memory for idle is only meaningful
 * on a freshly started server (malloc keeps freed pages).
 */
#endif
