/* The cluster module (cluster.h): two hiredis connections on the loop (one
 * for commands, one subscribed to the presence channel), node liveness,
 * presence publishing, reaping of dead nodes, the presence mirror, the
 * records between nodes, and the room memberships of each node in Redis.
 *
 * Redis keys (docs/cluster.md; hash tags so that a Redis Cluster keeps the
 * keys of one node in one slot and each script touches one slot):
 *   rtmd:nodeseq            INCR hands out node ids when node_id is not set
 *   rtmd:nodes              set of the ids of the nodes that joined
 *   rtmd:{n<id>}:alive      the node's start token, EX CLUSTER_NODE_TTL_S
 *   rtmd:{n<id>}:users      set of "pid:uid" online on the node
 *   rtmd:{n<id>}:seq        counter of the node's presence changes
 *   rtmd:{n<id>}:rooms      set of "pid:rid" the node has room members in
 *   rtmd:{n<id>}:r:<pid>:<rid>  set of the uids in that room on the node
 * Channel rtmd:presence, messages "<id> <seq> <op>[ <pid>:<uid>]": op + and
 * - a user online/offline on the node (seq is its counter after the
 * change), j the node (re)joined with a new set, x the node is gone; op >
 * and < with "<pid>:<rid>" a room entered by the node's first member or
 * left by its last (the index rtmd:{n<id>}:rooms, same seq).
 *
 * The mirror keeps, per other node, its users, its rooms and the seq last
 * applied. A node's set and room index are read with its seq in one script
 * (a snapshot); changes that
 * arrive while a snapshot is in flight wait in a bounded buffer and those
 * after its seq are applied once it lands; a gap in a node's seqs (a
 * missed message) takes a new snapshot. Everything from Redis is checked
 * (types, lengths, numbers) and what does not parse is dropped.
 *
 * A node with app servers listening to a project pid has the member
 * "pid:-9223372036854775808" (LISTEN_UID) in its set: the mirror knows
 * the listening nodes the same way it knows users, and never counts it as
 * a user online.
 *
 * Records (cluster.h): each node subscribes rtmd:n:<id> on the subscription
 * connection before it joins (so a node others see is one that hears).
 * Records for a node wait in its mirror entry until the end of the loop
 * turn (a uv_check, with a uv_idle so that the loop does not sleep with
 * records queued), then go as one PUBLISH of the batch: records framed
 * as kind (1 byte), length (4 bytes, big endian), bytes. */
#include "cluster.h"

#include "clock.h"
#include "log.h"
#include "module.h"
#include "pairmap.h"
#include "payload.h"
#include "users.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHANNEL "rtmd:presence"
#define MSG_MAX 128           /* longest channel message we accept */
#define MIRROR_NODES_MAX 1024 /* other nodes the mirror follows */
#define PENDING_MAX 4096      /* changes buffered per node during a snapshot */
#define SNAPSHOT_MAX 16777216 /* users of one node's snapshot */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define LEAVE_WAIT_MS 2000    /* at stop: longest wait for the goodbye */
/* hiredis' libuv adapter drops a socket error (libuv reports POLLERR as a
 * status it ignores), so a refused connect or a reset link is seen only
 * by a timeout: connecting, and the answer to each liveness refresh. */
#define CONNECT_TIMEOUT_MS 2000
#define REPLY_TIMEOUT_MS 3000
#define LISTEN_UID INT64_MIN
#define ROUTED_PREFIX "rtmd:n:"
#define BATCH_MAX (1u << 20)      /* records of a batch, unless one is larger */
#define INFLIGHT_MAX (128u << 20) /* bytes queued or unanswered, all nodes */
#define REC_HEAD 5

/* KEYS: alive, users, seq, room index. ARGV: token, ttl, id, members...
 * 0 when the id is held by another start, else {seq, the members of the
 * node's previous set that are not in the new one} (a previous start not
 * reaped yet, or users who left while this node was not joined). The
 * node's rooms are cleared with its set (rooms.c writes them again after
 * the join), so the snapshot that j asks for has both. */
static const char JOIN_LUA[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur and cur ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "local new = {}\n"
    "for i = 4, #ARGV do new[ARGV[i]] = true end\n"
    "local gone = {}\n"
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do if not new[m] then gone[#gone + 1] = m end end\n"
    "redis.call('DEL', KEYS[2])\n"
    "local p = 'rtmd:{n' .. ARGV[3] .. '}:r:'\n"
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[4])) do redis.call('DEL', p .. m) end\n"
    "redis.call('DEL', KEYS[4])\n"
    "for i = 4, #ARGV, 1000 do redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV))) end\n"
    "local s = redis.call('INCR', KEYS[3])\n"
    "redis.call('PUBLISH', '" CHANNEL "', ARGV[3] .. ' ' .. s .. ' j')\n"
    "return {s, gone}\n";
/* ARGV: token, op (+ or -), member, id. 0: not joined (any more). */
static const char DELTA_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "if ARGV[2] == '+' then redis.call('SADD', KEYS[2], ARGV[3]) else redis.call('SREM', KEYS[2], ARGV[3]) end\n"
    "local s = redis.call('INCR', KEYS[3])\n"
    "redis.call('PUBLISH', '" CHANNEL "', ARGV[4] .. ' ' .. s .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])\n"
    "return s\n";
/* ARGV: token, ttl. 1 refreshed, 0 gone (rejoin), -1 held by another start. */
static const char REFRESH_LUA[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur == ARGV[1] then redis.call('EXPIRE', KEYS[1], ARGV[2]) return 1 end\n"
    "if cur then return -1 end\n"
    "return 0\n";
/* ARGV: id. The node's users (an array) when the node was dead and is now
 * removed, else 0. */
static const char REAP_LUA[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "local m = redis.call('SMEMBERS', KEYS[2])\n"
    "redis.call('DEL', KEYS[2], KEYS[3])\n"
    "redis.call('PUBLISH', '" CHANNEL "', ARGV[1] .. ' 0 x')\n"
    "return m\n";
/* ARGV: token, id. The goodbye of a stopping node. Its users set stays for
 * the reaper (the users' cluster logouts, "logins" below). */
static const char LEAVE_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', KEYS[1], KEYS[3])\n"
    "redis.call('PUBLISH', '" CHANNEL "', ARGV[2] .. ' 0 x')\n"
    "return 1\n";
/* {seq, members, alive, rooms} of one node, read at once. */
static const char SNAPSHOT_LUA[] =
    "return {redis.call('GET', KEYS[3]) or '0', redis.call('SMEMBERS', KEYS[2]), redis.call('EXISTS', KEYS[1]),\n"
    "        redis.call('SMEMBERS', KEYS[4])}\n";

typedef struct pending_change {
    uint64_t seq;
    int64_t pid, uid;
    char op;
} pending_change;

/* Another node as the mirror knows it. */
typedef struct mirror_node {
    char id[RTMD_NODE_ID_MAX];
    uint64_t serial;     /* this entry's, unique in this process */
    pairmap users;       /* (pid, uid) -> (void *)1 */
    pairmap projects;    /* (pid, 0) -> its users there, as a count (broadcasts) */
    pairmap rooms;       /* (pid, rid) -> (void *)1: it has members there */
    uint64_t seq;        /* last change applied */
    unsigned gen;        /* of the snapshot in flight */
    bool snapping;
    pending_change *pending;
    size_t npending;
    uint8_t *out;        /* records queued for it this turn */
    size_t out_len, out_cap;
} mirror_node;

typedef struct snapshot_req {
    struct cluster_state *cs;
    char id[RTMD_NODE_ID_MAX];
    unsigned gen;
} snapshot_req;

struct logins_state;

typedef struct cluster_state {
    rtmd_server *srv;
    char host[256];
    int port, db;
    char id[RTMD_NODE_ID_MAX]; /* empty until configured or handed out */
    bool id_generated;
    char token[33];            /* this start's value of the alive key */
    redisAsyncContext *cmd, *sub;
    bool cmd_up, sub_up, broken;
    bool joined, joining, waiting_id_logged;
    uint64_t next_connect_ms;
    uint64_t connect_started_ms;
    uint64_t refresh_sent_ms;  /* 0: no refresh awaits its answer */
    unsigned backoff_ms;
    unsigned ticks;
    uv_timer_t timer;
    bool timer_closed;
    bool leaving, left;
    uint64_t leave_started_ms;
    mirror_node **nodes;
    size_t nnodes;
    pairmap online;            /* (pid, uid) -> count of other nodes that hold it */
    pairmap listening;         /* (pid, LISTEN_UID) of this node's listeners */
    cluster_record_fn handlers[CLUSTER_KINDS];
    char routed_asked[RTMD_NODE_ID_MAX]; /* whose channel was subscribed */
    char routed_sub[RTMD_NODE_ID_MAX];   /* ... and confirmed */
    uv_check_t flush_check;
    uv_idle_t flush_idle;
    bool flush_armed, flush_closed;
    uint64_t inflight;         /* bytes queued or published and unanswered */
    uint64_t rec_sent, rec_dropped, rec_received, rec_malformed;
    uint64_t rec_received_kind[CLUSTER_KINDS];
    void (*rooms_joined)(rtmd_server *srv); /* rooms.c: re-add memberships */
    uint64_t room_sent, room_acked;          /* room changes sent, answered */
    struct room_waiter *room_waiters;        /* cluster_room_fence, by target */
    size_t nroom_waiters, room_waiters_cap;
    uint64_t next_serial;                    /* of mirror entries */
    struct room_deferred *deferred_open;     /* cluster_send_room, this turn */
    struct room_deferred *deferred_last;
    struct room_deferred **deferred_batches; /* one per fence in flight, in order */
    size_t ndeferred_batches;
    uint64_t deferred_bytes;
    uint64_t rooms_warned_ms;                /* last "room members not read" line */
    struct logins_state *logins; /* logins across nodes (their section) */
    cluster_rejoin_fn rejoin[CLUSTER_REJOIN_MAX]; /* mirrors' rebuilds */
    size_t nrejoin;
    uint64_t rejoin_due_ms;    /* 0: none due */
    uint64_t rebuilds;
    struct acks_state *acks;   /* acknowledged records (their section) */
} cluster_state;

static cluster_state *state_of(const rtmd_server *srv)
{
    return srv->svc ? srv->svc->cluster : NULL;
}

static void rooms_reap(cluster_state *cs, const char *id);
static void rooms_join(cluster_state *cs);
/* Logins across nodes (their section, below). */
static void logins_reaped(cluster_state *cs, const char *node, const redisReply *members);
static void logins_joined(cluster_state *cs);
/* Acknowledged records (their section, below). */
static void acks_sweep(cluster_state *cs, uint64_t now);
static int acks_init(cluster_state *cs);
static void acks_free(cluster_state *cs);
static void kick_timer(cluster_state *cs);

/* ---- parsing what Redis says ------------------------------------------- */

static bool id_ok(const char *s, size_t n)
{
    if (n == 0 || n >= RTMD_NODE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* A decimal integer of s[0..n) in [min, max]. */
static bool parse_int(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    char buf[24];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    for (size_t i = 0; i < n; i++)
        if (!((buf[i] >= '0' && buf[i] <= '9') || (i == 0 && buf[i] == '-' && n > 1)))
            return false;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* "pid:uid" */
static bool parse_member(const char *s, size_t n, int64_t *pid, int64_t *uid)
{
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return false;
    size_t pn = (size_t)(colon - s);
    return parse_int(s, pn, 1, INT32_MAX, pid) && parse_int(colon + 1, n - pn - 1, INT64_MIN, INT64_MAX, uid);
}

static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str;
}

/* ---- the mirror -------------------------------------------------------- */

static mirror_node *mirror_find(cluster_state *cs, const char *id)
{
    for (size_t i = 0; i < cs->nnodes; i++)
        if (strcmp(cs->nodes[i]->id, id) == 0)
            return cs->nodes[i];
    return NULL;
}

static void online_add(cluster_state *cs, int64_t pid, int64_t uid)
{
    void **slot = pairmap_reserve(&cs->online, (uint64_t)pid, (uint64_t)uid);
    if (!slot)
        return;
    *slot = (void *)((uintptr_t)*slot + 1);
}

static void online_remove(cluster_state *cs, int64_t pid, int64_t uid)
{
    uintptr_t n = (uintptr_t)pairmap_get(&cs->online, (uint64_t)pid, (uint64_t)uid);
    if (n > 1)
        pairmap_put(&cs->online, (uint64_t)pid, (uint64_t)uid, (void *)(n - 1));
    else if (n == 1)
        pairmap_del(&cs->online, (uint64_t)pid, (uint64_t)uid);
}

/* The count of n's users of pid (listeners aren't users) moves by delta. */
static void node_project_count(mirror_node *n, int64_t pid, int delta)
{
    uintptr_t c = (uintptr_t)pairmap_get(&n->projects, (uint64_t)pid, 0) + (uintptr_t)(intptr_t)delta;
    if (c)
        pairmap_put(&n->projects, (uint64_t)pid, 0, (void *)c);
    else
        pairmap_del(&n->projects, (uint64_t)pid, 0);
}

static void node_add_user(cluster_state *cs, mirror_node *n, int64_t pid, int64_t uid)
{
    if (pairmap_get(&n->users, (uint64_t)pid, (uint64_t)uid))
        return;
    if (pairmap_put(&n->users, (uint64_t)pid, (uint64_t)uid, (void *)1) == 0 && uid != LISTEN_UID) {
        online_add(cs, pid, uid);
        node_project_count(n, pid, 1);
    }
}

static void node_remove_user(cluster_state *cs, mirror_node *n, int64_t pid, int64_t uid)
{
    if (pairmap_del(&n->users, (uint64_t)pid, (uint64_t)uid) && uid != LISTEN_UID) {
        online_remove(cs, pid, uid);
        node_project_count(n, pid, -1);
    }
}

static void node_clear(cluster_state *cs, mirror_node *n)
{
    for (size_t i = 0; i < n->users.cap; i++)
        if (n->users.slots[i].value && (int64_t)n->users.slots[i].b != LISTEN_UID)
            online_remove(cs, (int64_t)n->users.slots[i].a, (int64_t)n->users.slots[i].b);
    pairmap_free(&n->users);
    memset(&n->users, 0, sizeof n->users);
    pairmap_free(&n->projects);
    memset(&n->projects, 0, sizeof n->projects);
    pairmap_free(&n->rooms);
    memset(&n->rooms, 0, sizeof n->rooms);
}

static void mirror_drop(cluster_state *cs, const char *which)
{
    char id[RTMD_NODE_ID_MAX];
    snprintf(id, sizeof id, "%s", which); /* which may be the node's own id */
    for (size_t i = 0; i < cs->nnodes; i++) {
        mirror_node *n = cs->nodes[i];
        if (strcmp(n->id, id) != 0)
            continue;
        node_clear(cs, n);
        if (n->out_len)
            cs->rec_dropped++; /* a batch for a node that went */
        cs->inflight -= n->out_len;
        free(n->out);
        free(n->pending);
        free(n);
        cs->nodes[i] = cs->nodes[--cs->nnodes];
        LOG_INFO("cluster: node %s is gone; its users are offline here", id);
        kick_timer(cs); /* the syncs waiting for it end at the tick */
        return;
    }
}

static mirror_node *mirror_add(cluster_state *cs, const char *id)
{
    mirror_node *n = mirror_find(cs, id);
    if (n)
        return n;
    if (cs->nnodes >= MIRROR_NODES_MAX) {
        LOG_WARN("cluster: more than %d other nodes; node %s is not followed", MIRROR_NODES_MAX, id);
        return NULL;
    }
    mirror_node **grown = realloc(cs->nodes, (cs->nnodes + 1) * sizeof *grown);
    n = calloc(1, sizeof *n);
    if (grown)
        cs->nodes = grown;
    if (!grown || !n) {
        free(n);
        return NULL;
    }
    snprintf(n->id, sizeof n->id, "%s", id);
    n->serial = ++cs->next_serial;
    cs->nodes[cs->nnodes++] = n;
    return n;
}

static void on_snapshot(redisAsyncContext *ac, void *r, void *privdata);

static void key_of(char *out, size_t cap, const char *id, const char *what)
{
    snprintf(out, cap, "rtmd:{n%s}:%s", id, what);
}

/* Asks for a node's set; changes wait until it lands. */
static void request_snapshot(cluster_state *cs, mirror_node *n)
{
    n->gen++;
    n->snapping = true;
    n->npending = 0;
    if (!cs->cmd_up)
        return; /* the next connection snapshots every node */
    snapshot_req *q = malloc(sizeof *q);
    if (!q)
        return;
    q->cs = cs;
    q->gen = n->gen;
    memcpy(q->id, n->id, sizeof q->id);
    char k1[64], k2[64], k3[64], k4[64];
    key_of(k1, sizeof k1, n->id, "alive");
    key_of(k2, sizeof k2, n->id, "users");
    key_of(k3, sizeof k3, n->id, "seq");
    key_of(k4, sizeof k4, n->id, "rooms");
    if (redisAsyncCommand(cs->cmd, on_snapshot, q, "EVAL %s 4 %s %s %s %s", SNAPSHOT_LUA, k1, k2, k3, k4) !=
        REDIS_OK)
        free(q);
}

/* Applies one change in order; a gap means a missed message. */
static void apply_change(cluster_state *cs, mirror_node *n, const pending_change *c)
{
    if (c->seq <= n->seq)
        return; /* in the snapshot already */
    if (c->seq != n->seq + 1) {
        request_snapshot(cs, n);
        return;
    }
    n->seq = c->seq;
    if (c->op == '+')
        node_add_user(cs, n, c->pid, c->uid);
    else if (c->op == '-')
        node_remove_user(cs, n, c->pid, c->uid);
    else if (c->op == '>')
        pairmap_put(&n->rooms, (uint64_t)c->pid, (uint64_t)c->uid, (void *)1);
    else
        pairmap_del(&n->rooms, (uint64_t)c->pid, (uint64_t)c->uid);
}

static void on_snapshot(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    snapshot_req *q = privdata;
    cluster_state *cs = q->cs;
    redisReply *reply = r;
    mirror_node *n = reply ? mirror_find(cs, q->id) : NULL;
    if (!n || n->gen != q->gen || !n->snapping) {
        free(q);
        return; /* stale, or the connection went */
    }
    free(q);
    int64_t seq, alive;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 || !is_str(reply->element[0]) ||
        !parse_int(reply->element[0]->str, reply->element[0]->len, 0, INT64_MAX, &seq) ||
        reply->element[1]->type != REDIS_REPLY_ARRAY || reply->element[2]->type != REDIS_REPLY_INTEGER ||
        reply->element[3]->type != REDIS_REPLY_ARRAY) {
        LOG_WARN("cluster: unexpected snapshot reply for node %s", n->id);
        n->snapping = false; /* tried again on its next change or check */
        return;
    }
    alive = reply->element[2]->integer;
    if (!alive) {
        mirror_drop(cs, n->id);
        return;
    }
    node_clear(cs, n);
    const redisReply *m = reply->element[1];
    size_t bad = 0;
    for (size_t i = 0; i < m->elements && i < SNAPSHOT_MAX; i++) {
        int64_t pid, uid;
        if (is_str(m->element[i]) && parse_member(m->element[i]->str, m->element[i]->len, &pid, &uid))
            node_add_user(cs, n, pid, uid);
        else
            bad++;
    }
    const redisReply *rm = reply->element[3];
    for (size_t i = 0; i < rm->elements && i < SNAPSHOT_MAX; i++) {
        int64_t pid, rid;
        if (is_str(rm->element[i]) && parse_member(rm->element[i]->str, rm->element[i]->len, &pid, &rid))
            pairmap_put(&n->rooms, (uint64_t)pid, (uint64_t)rid, (void *)1);
        else
            bad++;
    }
    if (bad)
        LOG_WARN("cluster: node %s: %zu malformed presence entries ignored", n->id, bad);
    n->seq = (uint64_t)seq;
    n->snapping = false;
    unsigned gen = n->gen;
    for (size_t i = 0; i < n->npending && !n->snapping && n->gen == gen; i++)
        apply_change(cs, n, &n->pending[i]);
    if (!n->snapping)
        n->npending = 0;
}

/* One message of the presence channel. */
static void on_presence_message(cluster_state *cs, const char *s, size_t len)
{
    if (len == 0 || len > MSG_MAX)
        return;
    const char *f[4];
    size_t fl[4], nf = 0;
    const char *p = s, *end = s + len;
    while (p < end && nf < 4) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *e = sp ? sp : end;
        f[nf] = p;
        fl[nf++] = (size_t)(e - p);
        p = sp ? sp + 1 : end;
    }
    if (p < end || nf < 3 || fl[2] != 1 || !id_ok(f[0], fl[0]))
        return;
    char id[RTMD_NODE_ID_MAX];
    memcpy(id, f[0], fl[0]);
    id[fl[0]] = 0;
    int64_t seq;
    if (!parse_int(f[1], fl[1], 0, INT64_MAX, &seq))
        return;
    if (cs->id[0] && strcmp(id, cs->id) == 0)
        return; /* our own */
    char op = f[2][0];
    if (op == 'x' && nf == 3) {
        mirror_drop(cs, id);
        return;
    }
    if (op == 'j' && nf == 3) {
        mirror_node *n = mirror_add(cs, id);
        if (n)
            request_snapshot(cs, n);
        return;
    }
    pending_change c = {.seq = (uint64_t)seq, .op = op};
    if ((op != '+' && op != '-' && op != '>' && op != '<') || nf != 4 || !parse_member(f[3], fl[3], &c.pid, &c.uid))
        return;
    mirror_node *n = mirror_find(cs, id);
    if (!n) {
        n = mirror_add(cs, id);
        if (!n)
            return;
        request_snapshot(cs, n);
    }
    if (n->snapping) {
        if (n->npending == PENDING_MAX) {
            request_snapshot(cs, n); /* too many: a fresh snapshot covers them */
            return;
        }
        if (!n->pending) {
            n->pending = malloc(PENDING_MAX * sizeof *n->pending);
            if (!n->pending)
                return;
        }
        n->pending[n->npending++] = c;
        return;
    }
    apply_change(cs, n, &c);
}

/* ---- connections ------------------------------------------------------- */

static void kick_timer(cluster_state *cs);

/* Something went wrong on a connection: the tick drops both and reconnects. */
static void fail(cluster_state *cs, const char *why)
{
    if (!cs->broken && !cs->leaving)
        LOG_WARN("cluster: Redis connection lost (%s); reconnecting", why);
    cs->broken = true;
    kick_timer(cs);
}

static void drop_connections(cluster_state *cs)
{
    redisAsyncContext *a = cs->cmd, *b = cs->sub;
    cs->cmd = cs->sub = NULL;
    cs->cmd_up = cs->sub_up = false;
    cs->joined = cs->joining = false;
    cs->refresh_sent_ms = 0;
    cs->broken = false;
    cs->routed_asked[0] = cs->routed_sub[0] = 0;
    if (a)
        redisAsyncFree(a);
    if (b)
        redisAsyncFree(b);
}

/* hiredis frees ac once the callback that calls this returns: nothing may
 * use it from now on, so every flag that says it is usable goes with it. */
static void forget_context(cluster_state *cs, const redisAsyncContext *ac)
{
    if (cs->cmd == ac) {
        cs->cmd = NULL;
        cs->cmd_up = false;
        cs->joined = cs->joining = false;
        cs->refresh_sent_ms = 0;
    }
    if (cs->sub == ac) {
        cs->sub = NULL;
        cs->sub_up = false;
        cs->routed_asked[0] = cs->routed_sub[0] = 0;
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    cluster_state *cs = ac->data;
    if (status != REDIS_OK) {
        forget_context(cs, ac);
        fail(cs, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    if (ac == cs->cmd)
        cs->cmd_up = true;
    if (ac == cs->sub)
        cs->sub_up = true;
    kick_timer(cs);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    cluster_state *cs = ac->data;
    if (cs->cmd != ac && cs->sub != ac)
        return; /* one we freed */
    forget_context(cs, ac);
    fail(cs, ac->errstr[0] ? ac->errstr : "closed");
}

static redisAsyncContext *open_one(cluster_state *cs)
{
    redisAsyncContext *ac = redisAsyncConnect(cs->host, cs->port);
    if (!ac)
        return NULL;
    if (ac->err || redisLibuvAttach(ac, cs->srv->loop) != REDIS_OK) {
        LOG_WARN("cluster: cannot connect to Redis: %s", ac->err ? ac->errstr : "attach failed");
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = cs;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void on_subscribed(redisAsyncContext *ac, void *r, void *privdata);
static void on_select(redisAsyncContext *ac, void *r, void *privdata);
static void check_nodes(cluster_state *cs);

static void connect_both(cluster_state *cs)
{
    cs->connect_started_ms = uv_now(cs->srv->loop);
    cs->cmd = open_one(cs);
    cs->sub = cs->cmd ? open_one(cs) : NULL;
    if (!cs->cmd || !cs->sub) {
        drop_connections(cs);
        return;
    }
    /* hiredis queues these until the connections are up. */
    if (cs->db && redisAsyncCommand(cs->cmd, on_select, NULL, "SELECT %d", cs->db) != REDIS_OK)
        cs->broken = true;
    if (redisAsyncCommand(cs->sub, on_subscribed, NULL, "SUBSCRIBE " CHANNEL) != REDIS_OK)
        cs->broken = true;
}

static void on_select(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        LOG_ERROR("cluster: Redis refused SELECT: %.100s", reply->str);
        fail(ac->data, "SELECT");
    }
}

enum { cs_cmd, cs_sub };

/* The module's state for a reply on its command (cs_cmd) or subscriber
 * (cs_sub) connection; NULL when there is no reply (the connection went)
 * or the connection is one replaced since the command was sent. */
static cluster_state *reply_state(redisAsyncContext *ac, const redisReply *reply, int which)
{
    cluster_state *cs = ac->data;
    if (!reply || ac != (which == cs_sub ? cs->sub : cs->cmd))
        return NULL;
    return cs;
}

/* The subscription's confirmation, then every message. */
static void on_subscribed(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    cluster_state *cs;
    redisReply *reply = r;
    if (!(cs = reply_state(ac, reply, cs_sub)))
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || !is_str(reply->element[0])) {
        fail(cs, "unexpected reply on the subscription");
        return;
    }
    const redisReply *kind = reply->element[0];
    if (kind->len == 9 && memcmp(kind->str, "subscribe", 9) == 0) {
        /* From now on no change is missed: take every node's set again. */
        LOG_INFO("cluster: connected to Redis %s:%d; rebuilding presence", cs->host, cs->port);
        cs->backoff_ms = 0;
        for (size_t i = 0; i < cs->nnodes; i++)
            request_snapshot(cs, cs->nodes[i]);
        check_nodes(cs);
        return;
    }
    if (kind->len == 7 && memcmp(kind->str, "message", 7) == 0 && is_str(reply->element[2]))
        on_presence_message(cs, reply->element[2]->str, reply->element[2]->len);
}

/* ---- this node: join, changes, refresh, leave -------------------------- */

static void keys3(const char *id, char k[3][64])
{
    key_of(k[0], 64, id, "alive");
    key_of(k[1], 64, id, "users");
    key_of(k[2], 64, id, "seq");
}

static void join(cluster_state *cs);

/* One batch of records on this node's channel: every record is checked
 * against the batch's length before its handler sees it. */
static void on_batch(cluster_state *cs, const uint8_t *p, size_t len)
{
    if (len > CLUSTER_RECORD_MAX + REC_HEAD && len > BATCH_MAX) {
        cs->rec_malformed++;
        return;
    }
    while (len > 0) {
        if (len < REC_HEAD) {
            cs->rec_malformed++;
            return;
        }
        unsigned kind = p[0];
        size_t n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        if (n > len - REC_HEAD) {
            cs->rec_malformed++;
            return;
        }
        cs->rec_received++;
        if (kind < CLUSTER_KINDS)
            cs->rec_received_kind[kind]++;
        if (kind < CLUSTER_KINDS && cs->handlers[kind])
            cs->handlers[kind](cs->srv, p + REC_HEAD, n);
        else
            cs->rec_malformed++;
        p += REC_HEAD + n;
        len -= REC_HEAD + n;
    }
}

/* The subscription of this node's channel: its confirmation, then every
 * batch. */
static void on_routed(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    cluster_state *cs;
    redisReply *reply = r;
    if (!(cs = reply_state(ac, reply, cs_sub)))
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || !is_str(reply->element[0]))
        return;
    const redisReply *kind = reply->element[0], *ch = reply->element[1], *body = reply->element[2];
    size_t plen = sizeof ROUTED_PREFIX - 1;
    if (!is_str(ch) || ch->len <= plen || ch->len - plen >= RTMD_NODE_ID_MAX)
        return;
    bool ours = strlen(cs->routed_asked) == ch->len - plen && memcmp(ch->str + plen, cs->routed_asked, ch->len - plen) == 0;
    if (kind->len == 9 && memcmp(kind->str, "subscribe", 9) == 0) {
        if (ours) {
            memcpy(cs->routed_sub, cs->routed_asked, sizeof cs->routed_sub);
            kick_timer(cs);
        }
        return;
    }
    if (ours && kind->len == 7 && memcmp(kind->str, "message", 7) == 0 && body->type == REDIS_REPLY_STRING)
        on_batch(cs, (const uint8_t *)body->str, body->len);
}

/* Subscribes this node's channel (dropping an older id's). Returns true
 * once it is confirmed. */
static bool routed_subscribed(cluster_state *cs)
{
    if (strcmp(cs->routed_sub, cs->id) == 0)
        return true;
    if (!cs->sub_up || strcmp(cs->routed_asked, cs->id) == 0)
        return false; /* asked: the confirmation kicks the timer */
    if (cs->routed_asked[0])
        redisAsyncCommand(cs->sub, NULL, NULL, "UNSUBSCRIBE " ROUTED_PREFIX "%s", cs->routed_asked);
    cs->routed_sub[0] = 0;
    memcpy(cs->routed_asked, cs->id, sizeof cs->routed_asked);
    if (redisAsyncCommand(cs->sub, on_routed, NULL, "SUBSCRIBE " ROUTED_PREFIX "%s", cs->id) != REDIS_OK)
        fail(cs, "SUBSCRIBE refused");
    return false;
}

static void on_nodeseq(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    cluster_state *cs;
    redisReply *reply = r;
    if (!(cs = reply_state(ac, reply, cs_cmd)))
        return;
    cs->joining = false;
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 1 || reply->integer > INT32_MAX) {
        fail(cs, "unexpected reply to INCR rtmd:nodeseq");
        return;
    }
    snprintf(cs->id, sizeof cs->id, "%lld", (long long)reply->integer);
    join(cs);
}

static void on_joined(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    cluster_state *cs;
    redisReply *reply = r;
    if (!(cs = reply_state(ac, reply, cs_cmd)))
        return;
    cs->joining = false;
    bool joined = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                  reply->element[1]->type == REDIS_REPLY_ARRAY;
    if (!joined && reply->type != REDIS_REPLY_INTEGER) {
        LOG_ERROR("cluster: joining failed: %.100s", reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        return; /* tried again at the next check */
    }
    if (!joined) {
        if (cs->id_generated) {
            cs->id[0] = 0; /* taken: ask for another */
        } else if (!cs->waiting_id_logged) {
            cs->waiting_id_logged = true;
            LOG_WARN("cluster: node_id %s is held by a live node (or this node's previous start, for at most "
                     "%d s); waiting",
                     cs->id, CLUSTER_NODE_TTL_S);
        }
        return;
    }
    cs->joined = true;
    cs->waiting_id_logged = false;
    /* Records for this node were dropped while it was away, and the
     * others learn of it only now: mirrors reload a tick later. */
    cs->rejoin_due_ms = uv_now(cs->srv->loop) + CLUSTER_TICK_MS;
    LOG_INFO("cluster: joined as node %s", cs->id);
    redisAsyncCommand(cs->cmd, NULL, NULL, "SADD rtmd:nodes %s", cs->id);
    rooms_join(cs);
    /* Users the previous set held and this one does not leave their
     * hashes first (the same connection keeps the order), then this
     * node's users are put back. */
    logins_reaped(cs, cs->id, reply->element[1]);
    logins_joined(cs);
}

/* Publishes this node with every local user (first start, Redis restart,
 * or after this node was taken for dead). */
static void join(cluster_state *cs)
{
    if (!cs->cmd_up || cs->joining || cs->joined || cs->leaving)
        return;
    cs->joining = true;
    if (!cs->id[0]) {
        cs->id_generated = true;
        if (redisAsyncCommand(cs->cmd, on_nodeseq, NULL, "INCR rtmd:nodeseq") != REDIS_OK)
            cs->joining = false;
        return;
    }
    if (!routed_subscribed(cs)) {
        cs->joining = false;
        return;
    }
    rtmd_server *srv = cs->srv;
    size_t total = users_count(srv) + cs->listening.count, n = 0;
    int64_t *uids = malloc((total + 1) * sizeof *uids);
    size_t argc = 10 + total;
    char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    char *members = malloc((total + 1) * 48);
    char k[3][64], idx[64], ttl[16];
    if (!uids || !argv || !lens || !members)
        goto out;
    keys3(cs->id, k);
    key_of(idx, sizeof idx, cs->id, "rooms");
    snprintf(ttl, sizeof ttl, "%d", CLUSTER_NODE_TTL_S);
    argv[0] = "EVAL";
    argv[1] = (char *)JOIN_LUA;
    argv[2] = "4";
    argv[3] = k[0];
    argv[4] = k[1];
    argv[5] = k[2];
    argv[6] = idx;
    argv[7] = cs->token;
    argv[8] = ttl;
    argv[9] = cs->id;
    argc = 10;
    for (size_t p = 0; p < srv->nprojects && n < total; p++) {
        size_t got = users_of_project(srv, srv->projects[p].pid, uids, total - n);
        for (size_t i = 0; i < got; i++, n++) {
            char *m = members + n * 48;
            snprintf(m, 48, "%lld:%lld", (long long)srv->projects[p].pid, (long long)uids[i]);
            argv[argc++] = m;
        }
    }
    for (size_t i = 0; i < cs->listening.cap && n < total; i++) {
        if (!cs->listening.slots[i].value)
            continue;
        char *m = members + n++ * 48;
        snprintf(m, 48, "%lld:%lld", (long long)cs->listening.slots[i].a, (long long)LISTEN_UID);
        argv[argc++] = m;
    }
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(cs->cmd, on_joined, NULL, (int)argc, (const char **)argv, lens) != REDIS_OK)
        cs->joining = false;
out:
    if (!uids || !argv || !lens || !members)
        cs->joining = false;
    free(uids);
    free(argv);
    free(lens);
    free(members);
}

static void on_delta(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    cluster_state *cs;
    redisReply *reply = r;
    if (!(cs = reply_state(ac, reply, cs_cmd)))
        return;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && cs->joined) {
        LOG_WARN("cluster: this node was taken for dead; joining again");
        cs->joined = false; /* the next tick publishes every local user */
        kick_timer(cs);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        LOG_WARN("cluster: presence change refused: %.100s", reply->str);
    }
}

static void publish_change(rtmd_server *srv, char op, int64_t pid, int64_t uid)
{
    cluster_state *cs = state_of(srv);
    if (!cs || !cs->joined || !cs->cmd || cs->leaving)
        return; /* a join publishes the whole set */
    char k[3][64], member[48], o[2] = {op, 0};
    keys3(cs->id, k);
    snprintf(member, sizeof member, "%lld:%lld", (long long)pid, (long long)uid);
    if (redisAsyncCommand(cs->cmd, on_delta, NULL, "EVAL %s 3 %s %s %s %s %s %s %s", DELTA_LUA, k[0], k[1], k[2],
                          cs->token, o, member, cs->id) != REDIS_OK)
        fail(cs, "command refused");
}

static void on_user_online(rtmd_server *srv, const rtmd_event *ev)
{
    publish_change(srv, '+', ev->pid, ev->uid);
}

static void on_user_offline(rtmd_server *srv, const rtmd_event *ev)
{
    publish_change(srv, '-', ev->pid, ev->uid);
}

static void on_refresh(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    cluster_state *cs;
    redisReply *reply = r;
    if (!(cs = reply_state(ac, reply, cs_cmd)))
        return;
    cs->refresh_sent_ms = 0;
    if (!cs->joined)
        return;
    if (reply->type != REDIS_REPLY_INTEGER) {
        LOG_WARN("cluster: liveness refresh failed: %.100s", reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
        return;
    }
    if (reply->integer == 1)
        return;
    if (reply->integer == 0) {
        LOG_WARN("cluster: this node's liveness key expired; joining again");
    } else {
        LOG_ERROR("cluster: node id %s is now held by another node", cs->id);
        if (cs->id_generated)
            cs->id[0] = 0;
    }
    cs->joined = false;
    kick_timer(cs);
}

static void on_reap(redisAsyncContext *ac, void *r, void *privdata)
{
    cluster_state *cs = ac->data;
    char *id = privdata;
    redisReply *reply = r;
    if (reply && ac == cs->cmd && reply->type == REDIS_REPLY_ARRAY) {
        LOG_INFO("cluster: reaped dead node %s", id);
        rooms_reap(cs, id);
        redisAsyncCommand(cs->cmd, NULL, NULL, "SREM rtmd:nodes %s", id);
        mirror_drop(cs, id);
        logins_reaped(cs, id, reply);
    }
    free(id);
}

/* The registered nodes: follow the ones the mirror does not know, reap the
 * dead. */
static void on_nodes(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    cluster_state *cs;
    redisReply *reply = r;
    if (!(cs = reply_state(ac, reply, cs_cmd)))
        return;
    if (reply->type != REDIS_REPLY_ARRAY) {
        LOG_WARN("cluster: unexpected reply to SMEMBERS rtmd:nodes");
        return;
    }
    for (size_t i = 0; i < reply->elements && i < 4 * MIRROR_NODES_MAX; i++) {
        const redisReply *e = reply->element[i];
        if (!is_str(e) || !id_ok(e->str, e->len))
            continue;
        char id[RTMD_NODE_ID_MAX];
        memcpy(id, e->str, e->len);
        id[e->len] = 0;
        if (cs->id[0] && strcmp(id, cs->id) == 0)
            continue;
        if (!mirror_find(cs, id)) {
            mirror_node *n = mirror_add(cs, id);
            if (n)
                request_snapshot(cs, n);
        }
        char k[3][64];
        keys3(id, k);
        char *copy = strdup(id);
        if (copy && redisAsyncCommand(cs->cmd, on_reap, copy, "EVAL %s 3 %s %s %s %s", REAP_LUA, k[0], k[1], k[2],
                                      id) != REDIS_OK)
            free(copy);
    }
}

static void check_nodes(cluster_state *cs)
{
    if (cs->cmd_up)
        redisAsyncCommand(cs->cmd, on_nodes, NULL, "SMEMBERS rtmd:nodes");
}

static void on_left(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    (void)r;
    cluster_state *cs = privdata;
    cs->left = true; /* also with no reply: the connection went */
    kick_timer(cs);
}

/* ---- the tick ---------------------------------------------------------- */

static void on_tick(uv_timer_t *t);
static void flush_all(cluster_state *cs);
static void run_rejoin(cluster_state *cs, uint64_t now);

static void kick_timer(cluster_state *cs)
{
    if (!cs->timer_closed)
        uv_timer_start(&cs->timer, on_tick, 0, CLUSTER_TICK_MS);
}

static void on_tick(uv_timer_t *t)
{
    cluster_state *cs = t->data;
    rtmd_server *srv = cs->srv;
    uint64_t now = uv_now(srv->loop);
    acks_sweep(cs, now);
    if (srv->stopping) {
        /* Say goodbye (the other nodes drop our users at once), then let
         * the loop end. */
        if (!cs->leaving) {
            cs->leaving = true;
            cs->leave_started_ms = now;
            char k[3][64];
            keys3(cs->id, k);
            if (!cs->joined || !cs->cmd_up ||
                redisAsyncCommand(cs->cmd, on_left, cs, "EVAL %s 3 %s %s %s %s %s", LEAVE_LUA, k[0], k[1], k[2],
                                  cs->token, cs->id) != REDIS_OK)
                cs->left = true;
        }
        if (cs->left || now - cs->leave_started_ms >= LEAVE_WAIT_MS) {
            flush_all(cs);
            drop_connections(cs);
            uv_timer_stop(t);
            uv_close((uv_handle_t *)t, NULL);
            uv_close((uv_handle_t *)&cs->flush_check, NULL);
            uv_close((uv_handle_t *)&cs->flush_idle, NULL);
            cs->timer_closed = cs->flush_closed = true;
        }
        return;
    }
    if (cs->broken) {
        drop_connections(cs);
        cs->backoff_ms = cs->backoff_ms ? cs->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (cs->backoff_ms > BACKOFF_MAX_MS)
            cs->backoff_ms = BACKOFF_MAX_MS;
        cs->next_connect_ms = now + cs->backoff_ms;
        uv_timer_start(t, on_tick, cs->backoff_ms, CLUSTER_TICK_MS);
        return;
    }
    if (!cs->cmd && !cs->sub) {
        if (now >= cs->next_connect_ms)
            connect_both(cs);
        return;
    }
    if (!cs->cmd_up || !cs->sub_up) {
        if (now - cs->connect_started_ms >= CONNECT_TIMEOUT_MS)
            fail(cs, "connect timed out");
        return;
    }
    if (cs->refresh_sent_ms && now - cs->refresh_sent_ms >= REPLY_TIMEOUT_MS) {
        fail(cs, "no answer");
        return;
    }
    if (!cs->joined) {
        join(cs);
        return;
    }
    run_rejoin(cs, now);
    if (++cs->ticks % 2)
        return;
    char k[3][64], ttl[16];
    keys3(cs->id, k);
    snprintf(ttl, sizeof ttl, "%d", CLUSTER_NODE_TTL_S);
    if (!cs->refresh_sent_ms &&
        redisAsyncCommand(cs->cmd, on_refresh, NULL, "EVAL %s 3 %s %s %s %s %s", REFRESH_LUA, k[0], k[1], k[2],
                          cs->token, ttl) == REDIS_OK)
        cs->refresh_sent_ms = now ? now : 1;
    redisAsyncCommand(cs->cmd, NULL, NULL, "SADD rtmd:nodes %s", cs->id);
    check_nodes(cs);
}

/* ---- reads ------------------------------------------------------------- */

bool cluster_online(rtmd_server *srv, int64_t pid, int64_t uid)
{
    if (users_online(srv, pid, uid))
        return true;
    if (uid == LISTEN_UID)
        return false;
    cluster_state *cs = state_of(srv);
    return cs && pairmap_get(&cs->online, (uint64_t)pid, (uint64_t)uid) != NULL;
}

const char *cluster_node_id(const rtmd_server *srv)
{
    const cluster_state *cs = state_of(srv);
    return cs && cs->joined ? cs->id : NULL;
}

/* ---- records ----------------------------------------------------------- */

bool cluster_enabled(const rtmd_server *srv)
{
    return state_of(srv) != NULL;
}

void cluster_on_record(rtmd_server *srv, unsigned kind, cluster_record_fn fn)
{
    cluster_state *cs = state_of(srv);
    if (cs && kind < CLUSTER_KINDS)
        cs->handlers[kind] = fn;
}

const msgpack_object *cluster_record_fields(msgpack_zone *zone, const uint8_t *data, size_t len, size_t max,
                                            uint32_t n)
{
    size_t off = 0;
    msgpack_object o;
    if (len == 0 || len > max || rtm_msgpack_check(data, len) != 0 ||
        msgpack_unpack((const char *)data, len, &off, zone, &o) != MSGPACK_UNPACK_SUCCESS || off != len ||
        o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != n)
        return NULL;
    return o.via.array.ptr;
}

bool cluster_record_int(const msgpack_object *o, int64_t min, int64_t max, int64_t *out)
{
    return mp_obj_int64(o, out) && *out >= min && *out <= max;
}

static void on_published(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)r; /* also without a reply (the connection went): no longer in flight */
    cluster_state *cs = ac->data;
    cs->inflight -= (uintptr_t)privdata;
}

static void publish_batch(cluster_state *cs, mirror_node *n)
{
    size_t len = n->out_len;
    n->out_len = 0;
    if (!cs->cmd_up || !cs->joined ||
        redisAsyncCommand(cs->cmd, on_published, (void *)(uintptr_t)len, "PUBLISH " ROUTED_PREFIX "%s %b", n->id,
                          n->out, len) != REDIS_OK) {
        cs->inflight -= len;
        cs->rec_dropped++;
        return;
    }
    cs->rec_sent++;
    if (n->out_cap > 2 * BATCH_MAX) { /* give a large batch's memory back */
        free(n->out);
        n->out = NULL;
        n->out_cap = 0;
    }
}

static void room_fence_send(cluster_state *cs);

static void flush_all(cluster_state *cs)
{
    room_fence_send(cs);
    for (size_t i = 0; i < cs->nnodes; i++)
        if (cs->nodes[i]->out_len)
            publish_batch(cs, cs->nodes[i]);
    if (cs->flush_armed) {
        cs->flush_armed = false;
        uv_check_stop(&cs->flush_check);
        uv_idle_stop(&cs->flush_idle);
    }
}

static void on_flush_check(uv_check_t *h)
{
    flush_all(h->data);
}

static void on_flush_idle(uv_idle_t *h)
{
    flush_all(h->data);
}

static void arm_flush(cluster_state *cs)
{
    if (!cs->flush_armed && !cs->flush_closed) {
        cs->flush_armed = true;
        uv_check_start(&cs->flush_check, on_flush_check);
        uv_idle_start(&cs->flush_idle, on_flush_idle);
    }
}

int cluster_send(rtmd_server *srv, const char *node_id, unsigned kind, const void *data, size_t len)
{
    cluster_state *cs = state_of(srv);
    if (!cs)
        return -1;
    mirror_node *n = mirror_find(cs, node_id);
    if (!n || !cs->joined || !cs->cmd_up || kind >= CLUSTER_KINDS || len > CLUSTER_RECORD_MAX ||
        cs->inflight + REC_HEAD + len > INFLIGHT_MAX || cs->flush_closed) {
        cs->rec_dropped++;
        return -1;
    }
    if (n->out_len && n->out_len + REC_HEAD + len > BATCH_MAX)
        publish_batch(cs, n); /* a batch holds at most BATCH_MAX or one record */
    size_t need = n->out_len + REC_HEAD + len;
    if (need > n->out_cap) {
        size_t cap = n->out_cap ? n->out_cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *grown = realloc(n->out, cap);
        if (!grown) {
            cs->rec_dropped++;
            return -1;
        }
        n->out = grown;
        n->out_cap = cap;
    }
    uint8_t *p = n->out + n->out_len;
    p[0] = (uint8_t)kind;
    p[1] = (uint8_t)(len >> 24);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 8);
    p[4] = (uint8_t)len;
    if (len)
        memcpy(p + REC_HEAD, data, len);
    n->out_len = need;
    cs->inflight += REC_HEAD + len;
    if (n->out_len >= BATCH_MAX)
        publish_batch(cs, n);
    else
        arm_flush(cs);
    return 0;
}

void cluster_send_all(rtmd_server *srv, unsigned kind, const void *data, size_t len)
{
    size_t n = cluster_node_count(srv);
    for (size_t i = 0; i < n; i++)
        cluster_send(srv, cluster_node_at(srv, i), kind, data, len);
}

size_t cluster_node_count(const rtmd_server *srv)
{
    const cluster_state *cs = state_of(srv);
    return cs ? cs->nnodes : 0;
}

const char *cluster_node_at(const rtmd_server *srv, size_t i)
{
    const cluster_state *cs = state_of(srv);
    return cs && i < cs->nnodes ? cs->nodes[i]->id : NULL;
}

bool cluster_node_holds(const rtmd_server *srv, size_t i, int64_t pid, int64_t uid)
{
    const cluster_state *cs = state_of(srv);
    return cs && i < cs->nnodes && uid != LISTEN_UID &&
           pairmap_get(&cs->nodes[i]->users, (uint64_t)pid, (uint64_t)uid) != NULL;
}

bool cluster_remote_online(const rtmd_server *srv, int64_t pid, int64_t uid)
{
    const cluster_state *cs = state_of(srv);
    return cs && cs->online.count && pairmap_get(&cs->online, (uint64_t)pid, (uint64_t)uid) != NULL;
}

size_t cluster_holders(const rtmd_server *srv, int64_t pid, int64_t uid)
{
    if (!cluster_remote_online(srv, pid, uid))
        return 0;
    size_t n = 0, count = cluster_node_count(srv);
    for (size_t i = 0; i < count; i++)
        n += cluster_node_holds(srv, i, pid, uid);
    return n;
}

size_t cluster_nodes_of(const rtmd_server *srv, int64_t pid, int64_t uid, size_t *out, size_t cap)
{
    size_t n = 0;
    if (!cluster_remote_online(srv, pid, uid))
        return 0;
    size_t count = cluster_node_count(srv);
    for (size_t i = 0; i < count && n < cap; i++)
        if (cluster_node_holds(srv, i, pid, uid))
            out[n++] = i;
    return n;
}

bool cluster_node_listens(const rtmd_server *srv, size_t i, int64_t pid)
{
    const cluster_state *cs = state_of(srv);
    return cs && i < cs->nnodes && pairmap_get(&cs->nodes[i]->users, (uint64_t)pid, (uint64_t)LISTEN_UID) != NULL;
}

void cluster_listening(rtmd_server *srv, int64_t pid, bool on)
{
    cluster_state *cs = state_of(srv);
    if (!cs)
        return;
    bool was = pairmap_get(&cs->listening, (uint64_t)pid, (uint64_t)LISTEN_UID) != NULL;
    if (on == was)
        return;
    if (on && pairmap_put(&cs->listening, (uint64_t)pid, (uint64_t)LISTEN_UID, (void *)1) != 0)
        return;
    if (!on)
        pairmap_del(&cs->listening, (uint64_t)pid, (uint64_t)LISTEN_UID);
    publish_change(srv, on ? '+' : '-', pid, LISTEN_UID);
}

/* ---- room membership (rooms.c) -----------------------------------------
 * Keys in the node's slot: rtmd:{n<id>}:rooms, the set of "pid:rid" the
 * node has members in, and rtmd:{n<id>}:r:<pid>:<rid>, the set of uids in
 * that room on the node. The scripts name the room keys from the index
 * (same slot). A change is written only with this start's token (as
 * presence changes); a change of the index (the node's first member of a
 * room in, or its last out) takes the node's next presence seq and is
 * published as > or < on the presence channel, so every mirror knows the
 * rooms of every node (cluster_room_nodes) as it knows its users. The
 * join script clears the node's keys, then rooms.c adds its memberships
 * again; a reap clears a dead node's keys unless it is alive again. */

#define ROOMS_READ_MAX 100         /* rooms per read */
#define ROOM_MEMBERS_MAX 16777216  /* uids taken from one node's room */

#define ROOMS_CLEAR_LUA                                                                   \
    "local p = 'rtmd:{n' .. ARGV[2] .. '}:r:'\n"                                          \
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', p .. m) end\n" \
    "redis.call('DEL', KEYS[2])\n"
/* KEYS: alive, index. ARGV: (unused), id. */
static const char ROOMS_REAP_LUA[] = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n" ROOMS_CLEAR_LUA
                                     "return 1\n";
/* KEYS: alive, index, room, seq. ARGV: token, op (+ or -), uid, "pid:rid",
 * id. An index change is published with the node's next seq. */
static const char ROOM_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "local op\n"
    "if ARGV[2] == '+' then redis.call('SADD', KEYS[3], ARGV[3])\n"
    "  if redis.call('SADD', KEYS[2], ARGV[4]) == 1 then op = '>' end\n"
    "elseif redis.call('SREM', KEYS[3], ARGV[3]) == 1 and redis.call('SCARD', KEYS[3]) == 0 then\n"
    "  redis.call('SREM', KEYS[2], ARGV[4]) op = '<' end\n"
    "if op then\n"
    "  local s = redis.call('INCR', KEYS[4])\n"
    "  redis.call('PUBLISH', '" CHANNEL "', ARGV[5] .. ' ' .. s .. ' ' .. op .. ' ' .. ARGV[4])\n"
    "end\n"
    "return 1\n";
/* KEYS: rooms of one node. {members of each}. */
static const char ROOMS_READ_LUA[] =
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do out[i] = redis.call('SMEMBERS', k) end\n"
    "return out\n";

static void room_key(char *out, size_t cap, const char *id, int64_t pid, int64_t rid)
{
    snprintf(out, cap, "rtmd:{n%s}:r:%lld:%lld", id, (long long)pid, (long long)rid);
}

static void rooms_reap(cluster_state *cs, const char *id)
{
    char k[3][64];
    keys3(id, k);
    char idx[64];
    key_of(idx, sizeof idx, id, "rooms");
    redisAsyncCommand(cs->cmd, NULL, NULL, "EVAL %s 2 %s %s - %s", ROOMS_REAP_LUA, k[0], idx, id);
}

/* The join script cleared the node's rooms: write them again. */
static void rooms_join(cluster_state *cs)
{
    if (cs->rooms_joined)
        cs->rooms_joined(cs->srv);
}

typedef struct room_waiter {
    uint64_t target; /* runs once room_acked reaches it */
    void (*fn)(rtmd_server *srv, void *arg);
    void *arg;
} room_waiter;

/* Runs the fences whose room changes Redis has answered (in order). */
static void room_waiters_run(cluster_state *cs)
{
    size_t done = 0;
    while (done < cs->nroom_waiters && cs->room_waiters[done].target <= cs->room_acked)
        done++;
    if (!done)
        return;
    room_waiter run[64];
    if (done > 64)
        done = 64; /* the rest on the next answer */
    memcpy(run, cs->room_waiters, done * sizeof *run);
    cs->nroom_waiters -= done;
    memmove(cs->room_waiters, cs->room_waiters + done, cs->nroom_waiters * sizeof *run);
    for (size_t i = 0; i < done; i++)
        run[i].fn(cs->srv, run[i].arg);
    if (cs->nroom_waiters && cs->room_waiters[0].target <= cs->room_acked)
        room_waiters_run(cs);
}

/* A room change's answer (also none: the connection went, and the join
 * after it writes the rooms again). */
static void on_room_delta(redisAsyncContext *ac, void *r, void *privdata)
{
    cluster_state *cs = ac->data;
    cs->room_acked++;
    on_delta(ac, r, privdata);
    room_waiters_run(cs);
}

void cluster_room_fence(rtmd_server *srv, void (*fn)(rtmd_server *srv, void *arg), void *arg)
{
    cluster_state *cs = state_of(srv);
    if (!cs || cs->room_acked == cs->room_sent) {
        fn(srv, arg);
        return;
    }
    if (cs->nroom_waiters == cs->room_waiters_cap) {
        size_t cap = cs->room_waiters_cap ? cs->room_waiters_cap * 2 : 16;
        room_waiter *grown = realloc(cs->room_waiters, cap * sizeof *grown);
        if (!grown) {
            fn(srv, arg); /* out of memory: answer now, as without a fence */
            return;
        }
        cs->room_waiters = grown;
        cs->room_waiters_cap = cap;
    }
    cs->room_waiters[cs->nroom_waiters++] = (room_waiter){.target = cs->room_sent, .fn = fn, .arg = arg};
}

/* Whether m has members in room rid of pid, or users of pid for
 * CLUSTER_BROADCAST_RID; a node whose snapshot is in flight may have some
 * not applied yet. */
static bool node_has(const mirror_node *m, int64_t pid, int64_t rid)
{
    if (m->snapping)
        return true;
    if (rid == CLUSTER_BROADCAST_RID)
        return pairmap_get(&m->projects, (uint64_t)pid, 0) != NULL;
    return pairmap_get(&m->rooms, (uint64_t)pid, (uint64_t)rid) != NULL;
}

size_t cluster_room_nodes(const rtmd_server *srv, int64_t pid, int64_t rid, size_t *out, size_t cap)
{
    const cluster_state *cs = state_of(srv);
    size_t n = 0;
    for (size_t i = 0; cs && i < cs->nnodes && n < cap; i++)
        if (node_has(cs->nodes[i], pid, rid))
            out[n++] = i;
    return n;
}

/* Room records for the nodes the mirror said had no members: they wait
 * until this node's subscription has read everything Redis published
 * before they were routed (a SUBSCRIBE of the node's fence channel, whose
 * confirmation comes in order with the presence messages), and then go
 * to the nodes that, by then, have members. So a member whose room entry
 * Redis published before the message reached this node gets it. */
#define FENCE_PREFIX "rtmd:fence:"
#define DEFERRED_MAX (32u << 20) /* bytes of records waiting; past it, sent to every node */

typedef struct room_deferred {
    struct room_deferred *next;
    int64_t pid, rid;
    unsigned kind;
    size_t len, nsent;
    uint64_t *sent; /* serials of the nodes it went to already */
    uint8_t data[];
} room_deferred;

static bool deferred_was_sent(const room_deferred *d, uint64_t serial)
{
    for (size_t i = 0; i < d->nsent; i++)
        if (d->sent[i] == serial)
            return true;
    return false;
}

/* Sends a batch of deferred records: to the nodes with members now, or
 * (all) to every node it did not go to. */
static void deferred_release(cluster_state *cs, room_deferred *d, bool all)
{
    while (d) {
        room_deferred *next = d->next;
        for (size_t i = 0; i < cs->nnodes; i++) {
            mirror_node *m = cs->nodes[i];
            if (deferred_was_sent(d, m->serial))
                continue;
            if (all || node_has(m, d->pid, d->rid))
                cluster_send(cs->srv, m->id, d->kind, d->data, d->len);
        }
        cs->deferred_bytes -= d->len;
        free(d->sent);
        free(d);
        d = next;
    }
}

static void on_fence(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    cluster_state *cs = ac->data;
    const redisReply *reply = r;
    if (!reply) { /* the connection went: no order any more, every node */
        for (size_t i = 0; i < cs->ndeferred_batches; i++)
            deferred_release(cs, cs->deferred_batches[i], true);
        cs->ndeferred_batches = 0;
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || !is_str(reply->element[0]) ||
        reply->element[0]->len != 9 || memcmp(reply->element[0]->str, "subscribe", 9) != 0 ||
        cs->ndeferred_batches == 0)
        return; /* a message someone published on the fence channel */
    room_deferred *d = cs->deferred_batches[0];
    memmove(cs->deferred_batches, cs->deferred_batches + 1, --cs->ndeferred_batches * sizeof *cs->deferred_batches);
    deferred_release(cs, d, false);
}

/* End of the loop turn: one fence for the records deferred in it. */
static void room_fence_send(cluster_state *cs)
{
    room_deferred *d = cs->deferred_open;
    if (!d)
        return;
    cs->deferred_open = cs->deferred_last = NULL;
    room_deferred **grown = realloc(cs->deferred_batches, (cs->ndeferred_batches + 1) * sizeof *grown);
    if (grown)
        cs->deferred_batches = grown;
    if (!grown || !cs->sub_up ||
        redisAsyncCommand(cs->sub, on_fence, NULL, "SUBSCRIBE " FENCE_PREFIX "%s", cs->id) != REDIS_OK) {
        deferred_release(cs, d, true);
        return;
    }
    cs->deferred_batches[cs->ndeferred_batches++] = d;
}

void cluster_send_room(rtmd_server *srv, int64_t pid, int64_t rid, unsigned kind, const void *data, size_t len,
                       const bool *want, size_t nodes)
{
    cluster_state *cs = state_of(srv);
    if (!cs)
        return;
    if (nodes > cs->nnodes)
        nodes = cs->nnodes;
    size_t nsent = 0, rest = 0;
    for (size_t i = 0; i < nodes; i++) {
        if (want[i])
            nsent++;
        else
            rest++;
    }
    room_deferred *d = NULL;
    if (rest && cs->joined && cs->sub_up && !cs->leaving && cs->deferred_bytes + len <= DEFERRED_MAX &&
        (d = malloc(sizeof *d + len)) != NULL && !(d->sent = malloc((nsent ? nsent : 1) * sizeof *d->sent))) {
        free(d);
        d = NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < nodes; i++) {
        if (want[i] || (rest && !d)) /* no fence possible: every node */
            cluster_send(srv, cs->nodes[i]->id, kind, data, len);
        if (want[i] && d)
            d->sent[k++] = cs->nodes[i]->serial;
    }
    if (!d)
        return;
    uint64_t *sent = d->sent;
    *d = (room_deferred){.pid = pid, .rid = rid, .kind = kind, .len = len, .nsent = k, .sent = sent};
    memcpy(d->data, data, len);
    cs->deferred_bytes += len;
    if (cs->deferred_open)
        cs->deferred_last->next = d;
    else
        cs->deferred_open = d;
    cs->deferred_last = d;
    arm_flush(cs);
}

void cluster_on_rooms_joined(rtmd_server *srv, void (*fn)(rtmd_server *srv))
{
    cluster_state *cs = state_of(srv);
    if (cs)
        cs->rooms_joined = fn;
}

void cluster_room_changed(rtmd_server *srv, int64_t pid, int64_t rid, int64_t uid, bool in)
{
    cluster_state *cs = state_of(srv);
    if (!cs || !cs->joined || !cs->cmd_up || cs->leaving)
        return; /* a join adds every membership again */
    char k[3][64], idx[64], room[96], member[48];
    keys3(cs->id, k);
    key_of(idx, sizeof idx, cs->id, "rooms");
    room_key(room, sizeof room, cs->id, pid, rid);
    snprintf(member, sizeof member, "%lld:%lld", (long long)pid, (long long)rid);
    if (redisAsyncCommand(cs->cmd, on_room_delta, NULL, "EVAL %s 4 %s %s %s %s %s %s %lld %s %s", ROOM_LUA, k[0],
                          idx, room, k[2], cs->token, in ? "+" : "-", (long long)uid, member, cs->id) == REDIS_OK)
        cs->room_sent++;
}

typedef struct room_read {
    cluster_state *cs;
    cluster_rooms_fn fn;
    void *arg;
    int64_t pid;
    size_t n, pending;
    bool partial;
    int64_t rids[ROOMS_READ_MAX];
    idset sets[ROOMS_READ_MAX];
} room_read;

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void room_read_finish(room_read *q)
{
    for (size_t i = 0; i < q->n; i++) {
        idset *s = &q->sets[i];
        if (s->n > 1)
            qsort(s->v, s->n, sizeof *s->v, cmp_id);
        uint32_t m = 0;
        for (uint32_t j = 0; j < s->n; j++)
            if (m == 0 || s->v[m - 1] != s->v[j])
                s->v[m++] = s->v[j];
        s->n = m;
    }
    uint64_t now = uv_now(q->cs->srv->loop);
    if (q->partial && (!q->cs->rooms_warned_ms || now - q->cs->rooms_warned_ms >= 10000)) {
        q->cs->rooms_warned_ms = now ? now : 1; /* at most one line per 10 s */
        LOG_WARN("cluster: room members of other nodes could not all be read from Redis; answering what was read");
    }
    q->fn(q->cs->srv, q->arg, q->sets, q->partial);
    for (size_t i = 0; i < q->n; i++)
        idset_free(&q->sets[i]);
    free(q);
}

/* Appends a node's members of one room (checked; the sort comes later). */
static bool room_read_take(idset *s, const redisReply *m)
{
    if (m->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t j = 0; j < m->elements; j++) {
        int64_t uid;
        const redisReply *e = m->element[j];
        if (!is_str(e) || !parse_int(e->str, e->len, INT64_MIN, INT64_MAX, &uid))
            return false;
        if (s->n >= ROOM_MEMBERS_MAX)
            return false;
        if (s->n == s->cap) {
            uint32_t cap = s->cap ? s->cap * 2 : 16;
            int64_t *v = realloc(s->v, (size_t)cap * sizeof *v);
            if (!v)
                return false;
            s->v = v;
            s->cap = cap;
        }
        s->v[s->n++] = uid;
    }
    return true;
}

static void on_room_read(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    room_read *q = privdata;
    const redisReply *reply = r;
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == q->n;
    for (size_t i = 0; ok && i < q->n; i++)
        ok = room_read_take(&q->sets[i], reply->element[i]);
    if (!ok)
        q->partial = true;
    if (--q->pending == 0)
        room_read_finish(q);
}

int cluster_room_members(rtmd_server *srv, int64_t pid, const int64_t *rids, size_t n, cluster_rooms_fn fn, void *arg)
{
    cluster_state *cs = state_of(srv);
    if (n > ROOMS_READ_MAX)
        return -1;
    room_read *q = calloc(1, sizeof *q);
    if (!q)
        return -1;
    *q = (room_read){.cs = cs, .fn = fn, .arg = arg, .pid = pid, .n = n};
    memcpy(q->rids, rids, n * sizeof *rids);
    if (!cs) {
        fn(srv, arg, q->sets, false);
        free(q);
        return 0;
    }
    size_t argc = 3 + n;
    const char *argv[3 + ROOMS_READ_MAX];
    size_t lens[3 + ROOMS_READ_MAX];
    char keys[ROOMS_READ_MAX][96];
    q->pending = 1; /* this call's own, so that no reply finishes it early */
    for (size_t i = 0; i < cs->nnodes; i++) {
        if (!cs->cmd_up) {
            q->partial = true;
            break;
        }
        argv[0] = "EVAL";
        argv[1] = ROOMS_READ_LUA;
        char nk[24];
        snprintf(nk, sizeof nk, "%zu", n);
        argv[2] = nk;
        for (size_t j = 0; j < n; j++) {
            room_key(keys[j], sizeof keys[j], cs->nodes[i]->id, pid, rids[j]);
            argv[3 + j] = keys[j];
        }
        for (size_t j = 0; j < argc; j++)
            lens[j] = strlen(argv[j]);
        if (redisAsyncCommandArgv(cs->cmd, on_room_read, q, (int)argc, argv, lens) == REDIS_OK)
            q->pending++;
        else
            q->partial = true;
    }
    if (--q->pending == 0)
        room_read_finish(q);
    return 0;
}

/* ---- logins across nodes: kicks, login sequences, cluster transitions --
 * Keys, one hash tag per user (each script touches one slot):
 *   rtmd:{p<pid>:u<uid>}:lseq  the user's last login sequence, EX LSEQ_TTL_S
 *   rtmd:{p<pid>:u<uid>}:on    hash: node id -> 1 for each node holding it
 * Records: KICK [pid, uid, reason|nil, seq] to every other node;
 * USER_EVENT [pid, uid, online, ms, endpoint, business|nil] to the nodes
 * listening to pid. */

#define LSEQ_TTL_S 60        /* the sequence outlives this by Redis' clock */
#define FLOOR_TTL_MS 10000   /* how long a newer login's seq is remembered */
#define FLOORS_MAX 65536     /* entries of one generation of floors */
#define REASON_MAX 32
#define LOGIN_RECORD_MAX 4096 /* bytes of a kick or login event record */

/* The next login sequence: above the last one, and at least Redis' clock in
 * microseconds, so it grows also after the key expired (exact in a double). */
static const char LSEQ_LUA[] =
    "redis.replicate_commands()\n"
    "local t = redis.call('TIME')\n"
    "local s = math.max(tonumber(redis.call('GET', KEYS[1]) or '0') + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', s), 'EX', ARGV[1])\n"
    "return s\n";
/* ARGV: op (+ or -), node id. 1 when the user's first node came (+) or its
 * last went (-): the cluster login or logout. */
static const char USER_LUA[] =
    "if ARGV[1] == '+' then\n"
    "  if redis.call('HSET', KEYS[1], ARGV[2], 1) == 1 and redis.call('HLEN', KEYS[1]) == 1 then return 1 end\n"
    "  return 0\n"
    "end\n"
    "if redis.call('HDEL', KEYS[1], ARGV[2]) == 1 and redis.call('EXISTS', KEYS[1]) == 0 then return 1 end\n"
    "return 0\n";

struct logins_state {
    pairmap floors[2];       /* (pid, uid) -> seq of a newer login; [0] current */
    uint64_t rotated_ms;
    cluster_user_event_fn on_event;
};
typedef struct logins_state logins_state;

static logins_state *logins_of(cluster_state *cs)
{
    return cs->logins;
}

static void floors_rotate(logins_state *ls, uint64_t now)
{
    if (now - ls->rotated_ms < FLOOR_TTL_MS && ls->floors[0].count < FLOORS_MAX)
        return;
    pairmap_free(&ls->floors[1]);
    ls->floors[1] = ls->floors[0];
    memset(&ls->floors[0], 0, sizeof ls->floors[0]);
    ls->rotated_ms = now;
}

static uint64_t floor_of(logins_state *ls, int64_t pid, int64_t uid)
{
    uint64_t a = (uintptr_t)pairmap_get(&ls->floors[0], (uint64_t)pid, (uint64_t)uid);
    uint64_t b = (uintptr_t)pairmap_get(&ls->floors[1], (uint64_t)pid, (uint64_t)uid);
    return a > b ? a : b;
}

static void floor_raise(cluster_state *cs, int64_t pid, int64_t uid, uint64_t seq)
{
    logins_state *ls = logins_of(cs);
    floors_rotate(ls, uv_now(cs->srv->loop));
    if (seq > floor_of(ls, pid, uid))
        pairmap_put(&ls->floors[0], (uint64_t)pid, (uint64_t)uid, (void *)(uintptr_t)seq);
}

static bool reason_ok(const char *s, size_t n)
{
    if (n == 0 || n > REASON_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
            return false;
    return true;
}

/* users.c kicked the user here: the other nodes kick theirs too. */
static void on_user_kicked(rtmd_server *srv, const rtmd_event *ev)
{
    cluster_state *cs = state_of(srv);
    size_t count = cluster_node_count(srv);
    if (!cs || !cs->joined || !count)
        return;
    size_t rlen = ev->reason ? strlen(ev->reason) : 0;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int64(&pk, ev->pid);
    msgpack_pack_int64(&pk, ev->uid);
    if (ev->reason && reason_ok(ev->reason, rlen)) {
        msgpack_pack_str(&pk, rlen);
        msgpack_pack_str_body(&pk, ev->reason, rlen);
    } else {
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_uint64(&pk, ev->seq);
    cluster_send_all(srv, CLUSTER_REC_KICK, b.data, b.size);
    msgpack_sbuffer_destroy(&b);
}

/* A kick record from another node: hostile, every field checked. */
static void on_kick_record(rtmd_server *srv, const uint8_t *data, size_t len)
{
    cluster_state *cs = state_of(srv);
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 1024))
        return;
    const msgpack_object *f = cluster_record_fields(&zone, data, len, LOGIN_RECORD_MAX, 4);
    int64_t pid, uid, seq;
    char reason[REASON_MAX + 1];
    bool ok = f && cluster_record_int(&f[0], 1, INT64_MAX, &pid) && rtmd_server_project(srv, pid) &&
              cluster_record_int(&f[1], INT64_MIN, INT64_MAX, &uid) && uid != LISTEN_UID &&
              cluster_record_int(&f[3], 0, INT64_MAX, &seq) &&
              (f[2].type == MSGPACK_OBJECT_NIL ||
               (f[2].type == MSGPACK_OBJECT_STR && reason_ok(f[2].via.str.ptr, f[2].via.str.size)));
    if (ok && f[2].type == MSGPACK_OBJECT_STR) {
        memcpy(reason, f[2].via.str.ptr, f[2].via.str.size);
        reason[f[2].via.str.size] = 0;
    }
    if (!ok) {
        cs->rec_malformed++;
    } else {
        if (seq)
            floor_raise(cs, pid, uid, (uint64_t)seq);
        users_kick_local(srv, pid, uid, NULL, f[2].type == MSGPACK_OBJECT_STR ? reason : NULL, (uint64_t)seq);
    }
    msgpack_zone_destroy(&zone);
}

typedef struct login_claim {
    int64_t pid, uid;
    uint64_t conn_id;
} login_claim;

static rtmd_session *claimed_session(rtmd_server *srv, const login_claim *q)
{
    rtmd_user *u = users_get(srv, q->pid, q->uid);
    for (rtmd_session *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->conn->id == q->conn_id)
            return s;
    return NULL;
}

static void on_lseq(redisAsyncContext *ac, void *r, void *privdata)
{
    cluster_state *cs = ac->data;
    login_claim *q = privdata;
    redisReply *reply = r;
    rtmd_server *srv = cs->srv;
    rtmd_session *s = state_of(srv) ? claimed_session(srv, q) : NULL;
    if (s && s->login_seq == USERS_SEQ_PENDING) {
        /* No answer (Redis went): the login stays, with local semantics. */
        s->login_seq = reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0 ? (uint64_t)reply->integer : 0;
        if (s->login_seq && s->login_seq < floor_of(logins_of(cs), q->pid, q->uid))
            users_kick_local(srv, q->pid, q->uid, NULL, USERS_DUPLICATE_LOGIN, s->login_seq + 1);
        else if (s->login_seq)
            users_kickout_older(srv, q->pid, q->uid, s->conn, USERS_DUPLICATE_LOGIN, s->login_seq);
    }
    free(q);
}

void cluster_claim_login(rtmd_server *srv, rtmd_conn *c, int64_t pid, int64_t uid)
{
    cluster_state *cs = state_of(srv);
    rtmd_session *s = users_session(c);
    if (!cs || !s || !cs->joined || !cs->cmd_up || cs->leaving)
        return;
    login_claim *q = malloc(sizeof *q);
    if (!q)
        return;
    *q = (login_claim){pid, uid, c->id};
    s->login_seq = USERS_SEQ_PENDING;
    if (redisAsyncCommand(cs->cmd, on_lseq, q, "EVAL %s 1 rtmd:{p%lld:u%lld}:lseq %d", LSEQ_LUA, (long long)pid,
                          (long long)uid, LSEQ_TTL_S) != REDIS_OK) {
        s->login_seq = 0;
        free(q);
    }
}

void cluster_on_user_event(rtmd_server *srv, cluster_user_event_fn fn)
{
    cluster_state *cs = state_of(srv);
    if (cs)
        logins_of(cs)->on_event = fn;
}

/* A cluster login or logout: to this node's listeners, and to every node
 * listening to the project. */
static void user_event_out(cluster_state *cs, const cluster_user_event *ev, bool routed)
{
    rtmd_server *srv = cs->srv;
    if (logins_of(cs)->on_event)
        logins_of(cs)->on_event(srv, ev);
    if (!routed)
        return;
    size_t count = cluster_node_count(srv), blen = ev->business ? strlen(ev->business) : 0;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    for (size_t i = 0; i < count; i++) {
        if (!cluster_node_listens(srv, i, ev->pid))
            continue;
        if (!b.size) {
            msgpack_pack_array(&pk, 6);
            msgpack_pack_int64(&pk, ev->pid);
            msgpack_pack_int64(&pk, ev->uid);
            if (ev->online)
                msgpack_pack_true(&pk);
            else
                msgpack_pack_false(&pk);
            msgpack_pack_uint64(&pk, ev->ms);
            msgpack_pack_str(&pk, strlen(ev->endpoint));
            msgpack_pack_str_body(&pk, ev->endpoint, strlen(ev->endpoint));
            if (blen) {
                msgpack_pack_str(&pk, blen);
                msgpack_pack_str_body(&pk, ev->business, blen);
            } else {
                msgpack_pack_nil(&pk);
            }
        }
        cluster_send(srv, cluster_node_at(srv, i), CLUSTER_REC_USER_EVENT, b.data, b.size);
    }
    msgpack_sbuffer_destroy(&b);
}

static bool rec_text(const msgpack_object *o, size_t max, char *out)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max || memchr(o->via.str.ptr, 0, o->via.str.size))
        return false;
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
    return true;
}

/* A cluster login or logout another node saw: to this node's listeners. */
static void on_user_event_record(rtmd_server *srv, const uint8_t *data, size_t len)
{
    cluster_state *cs = state_of(srv);
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 1024))
        return;
    const msgpack_object *f = cluster_record_fields(&zone, data, len, LOGIN_RECORD_MAX, 6);
    int64_t ms;
    char endpoint[RTMD_PEER_LEN], business[RTMD_BUSINESS_ID_MAX + 1];
    cluster_user_event ev = {0};
    bool ok = f && cluster_record_int(&f[0], 1, INT64_MAX, &ev.pid) && rtmd_server_project(srv, ev.pid) &&
              cluster_record_int(&f[1], INT64_MIN, INT64_MAX, &ev.uid) && ev.uid != LISTEN_UID &&
              f[2].type == MSGPACK_OBJECT_BOOLEAN && cluster_record_int(&f[3], 0, INT64_MAX, &ms) &&
              rec_text(&f[4], RTMD_PEER_LEN - 1, endpoint) &&
              (f[5].type == MSGPACK_OBJECT_NIL || rec_text(&f[5], RTMD_BUSINESS_ID_MAX, business));
    if (ok) {
        ev.online = f[2].via.boolean;
        ev.ms = (uint64_t)ms;
        ev.endpoint = endpoint;
        ev.business = f[5].type == MSGPACK_OBJECT_NIL ? NULL : business;
        if (logins_of(cs)->on_event)
            logins_of(cs)->on_event(srv, &ev);
    } else {
        cs->rec_malformed++;
    }
    msgpack_zone_destroy(&zone);
}

/* A user's transition script in flight, with the event it would make. */
typedef struct transition {
    cluster_user_event ev;
    char endpoint[RTMD_PEER_LEN];
    char business[RTMD_BUSINESS_ID_MAX + 1];
} transition;

static void on_transition(redisAsyncContext *ac, void *r, void *privdata)
{
    cluster_state *cs = ac->data;
    transition *t = privdata;
    redisReply *reply = r;
    if (state_of(cs->srv)) {
        if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
            user_event_out(cs, &t->ev, true);
        else if (!reply || reply->type != REDIS_REPLY_INTEGER)
            user_event_out(cs, &t->ev, false); /* Redis went: as without a cluster */
    }
    free(t);
}

/* Runs the user's transition script for node (this one, or a reaped one);
 * without Redis the event goes to this node's listeners only. */
static void user_transition(cluster_state *cs, const char *node, int64_t pid, int64_t uid, bool online,
                            const char *endpoint, const char *business)
{
    transition *t = calloc(1, sizeof *t);
    if (!t)
        return;
    snprintf(t->endpoint, sizeof t->endpoint, "%s", endpoint ? endpoint : "");
    if (business)
        snprintf(t->business, sizeof t->business, "%s", business);
    t->ev = (cluster_user_event){.pid = pid, .uid = uid, .online = online, .ms = (uint64_t)clock_unix_ms(),
                                 .endpoint = t->endpoint, .business = business ? t->business : NULL};
    if (!cs->joined || !cs->cmd_up ||
        redisAsyncCommand(cs->cmd, on_transition, t, "EVAL %s 1 rtmd:{p%lld:u%lld}:on %s %s", USER_LUA,
                          (long long)pid, (long long)uid, online ? "+" : "-", node) != REDIS_OK) {
        user_event_out(cs, &t->ev, false);
        free(t);
    }
}

static void logins_user_online(rtmd_server *srv, const rtmd_event *ev)
{
    cluster_state *cs = state_of(srv);
    if (!cs)
        return;
    char peer[RTMD_PEER_LEN];
    rtmd_conn *c = users_newest_conn(srv, ev->pid, ev->uid);
    user_transition(cs, cs->id, ev->pid, ev->uid, true, c ? conn_peer(c, peer) : "",
                    ev->user ? ev->user->event_business_id : NULL);
}

static void logins_user_offline(rtmd_server *srv, const rtmd_event *ev)
{
    cluster_state *cs = state_of(srv);
    if (cs)
        user_transition(cs, cs->id, ev->pid, ev->uid, false, "", ev->user ? ev->user->event_business_id : NULL);
}

/* Joined (again): this node's users are on their hashes again. A user
 * that the cluster had let go logs in again. */
static void logins_joined(cluster_state *cs)
{
    rtmd_server *srv = cs->srv;
    size_t total = users_count(srv);
    int64_t *uids = total ? malloc(total * sizeof *uids) : NULL;
    if (!uids)
        return;
    for (size_t p = 0; p < srv->nprojects; p++) {
        size_t got = users_of_project(srv, srv->projects[p].pid, uids, total);
        for (size_t i = 0; i < got; i++) {
            char peer[RTMD_PEER_LEN];
            rtmd_conn *c = users_newest_conn(srv, srv->projects[p].pid, uids[i]);
            user_transition(cs, cs->id, srv->projects[p].pid, uids[i], true, c ? conn_peer(c, peer) : "", NULL);
        }
    }
    free(uids);
}

/* A dead node was reaped: its users leave its hashes, and those it was
 * the last node of log out, once (only the reaper gets the members). */
static void logins_reaped(cluster_state *cs, const char *node, const redisReply *members)
{
    for (size_t i = 0; i < members->elements && i < SNAPSHOT_MAX; i++) {
        int64_t pid, uid;
        const redisReply *m = members->element[i];
        if (is_str(m) && parse_member(m->str, m->len, &pid, &uid) && uid != LISTEN_UID)
            user_transition(cs, node, pid, uid, false, "", NULL);
    }
}

static int logins_init(cluster_state *cs)
{
    cs->logins = calloc(1, sizeof *cs->logins);
    if (!cs->logins)
        return -1;
    cs->handlers[CLUSTER_REC_KICK] = on_kick_record;
    cs->handlers[CLUSTER_REC_USER_EVENT] = on_user_event_record;
    return 0;
}

static void logins_free(cluster_state *cs)
{
    if (!cs->logins)
        return;
    pairmap_free(&cs->logins->floors[0]);
    pairmap_free(&cs->logins->floors[1]);
    free(cs->logins);
    cs->logins = NULL;
}

/* ---- mirrors: invalidations and rebuilds ------------------------------- */

void cluster_on_rejoin(rtmd_server *srv, cluster_rejoin_fn fn)
{
    cluster_state *cs = state_of(srv);
    if (cs && cs->nrejoin < CLUSTER_REJOIN_MAX)
        cs->rejoin[cs->nrejoin++] = fn;
}

static void run_rejoin(cluster_state *cs, uint64_t now)
{
    if (!cs->rejoin_due_ms || now < cs->rejoin_due_ms)
        return;
    cs->rejoin_due_ms = 0;
    cs->rebuilds++;
    LOG_INFO("cluster: reloading the mirrors of groups, friends, bans and RealTimeCat");
    for (size_t i = 0; i < cs->nrejoin; i++)
        cs->rejoin[i](cs->srv);
}

size_t cluster_ids_pack(uint8_t *out, const int64_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (uint64_t)v[i];
        for (int b = 0; b < 8; b++)
            out[i * 8 + (size_t)b] = (uint8_t)(x >> (56 - 8 * b));
    }
    return n * 8;
}

bool cluster_ids_unpack(const uint8_t *p, size_t len, int64_t *v, size_t n)
{
    if (len != n * 8)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = 0;
        for (int b = 0; b < 8; b++)
            x = x << 8 | p[i * 8 + (size_t)b];
        v[i] = (int64_t)x;
    }
    return true;
}

/* ---- acknowledged records ----------------------------------------------
 * A record to acknowledge goes as CLUSTER_REC_SYNC:
 *   origin id length (1 byte), origin id, sync id (8 bytes, big endian),
 *   inner kind (1 byte), inner record
 * and its acknowledgement comes back to the origin as CLUSTER_REC_ACK:
 *   sync id (8 bytes), the acknowledging node's id (1..32 characters).
 * The origin keeps each sync (the ids of the nodes it waits for) in a list
 * in order of start, so the oldest deadlines come first, and a map by id;
 * the tick ends the syncs past CLUSTER_ACK_BOUND_MS, those waiting for a
 * node the mirror no longer follows, and all of them when Redis is away or
 * the node stops. A receiver keeps no table: a hold is a token naming the
 * origin and the sync, counted (CLUSTER_ACK_HOLDS_MAX) and freed by its
 * last release. */

#define ACK_LOG_EVERY_MS 10000

typedef struct ack_sync {
    struct ack_sync *prev, *next;
    uint64_t id, deadline;
    cluster_acked_fn done;
    void *arg;
    uint32_t nwait;
    char wait[][RTMD_NODE_ID_MAX]; /* the nodes that have not acknowledged */
} ack_sync;

struct cluster_ack_token {
    uint64_t id;
    unsigned refs;
    char origin[RTMD_NODE_ID_MAX];
};

typedef struct acks_state {
    ack_sync *head, *tail;
    pairmap by_id; /* (0, sync id) -> ack_sync */
    size_t n;
    uint64_t next_id;
    cluster_ack_token *running; /* the token of the synced handler running */
    size_t holds;
    uint64_t waited, timed_out, overflow, warned_ms;
} acks_state;

static void ack_unlink(acks_state *as, ack_sync *y)
{
    if (y->prev)
        y->prev->next = y->next;
    else
        as->head = y->next;
    if (y->next)
        y->next->prev = y->prev;
    else
        as->tail = y->prev;
    pairmap_del(&as->by_id, 0, y->id);
    as->n--;
}

/* Ends a sync: out of the tables first, so that done may do anything. */
static void ack_finish(acks_state *as, ack_sync *y)
{
    ack_unlink(as, y);
    cluster_acked_fn done = y->done;
    void *arg = y->arg;
    free(y);
    done(arg);
}

/* Drops the nodes the mirror no longer follows from y's wait list. */
static void ack_forget_gone(cluster_state *cs, ack_sync *y)
{
    for (uint32_t i = 0; i < y->nwait;)
        if (!mirror_find(cs, y->wait[i]))
            memcpy(y->wait[i], y->wait[--y->nwait], RTMD_NODE_ID_MAX);
        else
            i++;
}

static void acks_sweep(cluster_state *cs, uint64_t now)
{
    acks_state *as = cs->acks;
    if (!as || !as->head)
        return;
    bool all = cs->srv->stopping || cs->broken || !cs->joined || !cs->cmd_up;
    char late[RTMD_NODE_ID_MAX] = "";
    size_t nlate = 0;
    /* The syncs that end are taken out first, then their done run: done
     * may start others. */
    ack_sync *ended = NULL, **tail = &ended;
    for (ack_sync *y = as->head, *next; y; y = next) {
        next = y->next;
        ack_forget_gone(cs, y);
        if (!all && y->nwait > 0 && now < y->deadline)
            continue;
        if (!all && y->nwait > 0) {
            nlate++;
            memcpy(late, y->wait[0], sizeof late);
        }
        ack_unlink(as, y);
        y->next = NULL;
        *tail = y;
        tail = &y->next;
    }
    as->timed_out += nlate;
    if (nlate && (!as->warned_ms || now - as->warned_ms >= ACK_LOG_EVERY_MS)) {
        as->warned_ms = now ? now : 1;
        LOG_WARN("cluster: %zu mirror change(s) answered after %d ms without the acknowledgement of node %s (maybe "
                 "of others too); at most one such line per %d s",
                 nlate, CLUSTER_ACK_BOUND_MS, late, ACK_LOG_EVERY_MS / 1000);
    }
    while (ended) {
        ack_sync *y = ended;
        ended = y->next;
        cluster_acked_fn done = y->done;
        void *arg = y->arg;
        free(y);
        done(arg);
    }
}

bool cluster_send_all_acked(rtmd_server *srv, unsigned kind, const void *data, size_t len, cluster_acked_fn done,
                            void *arg)
{
    cluster_state *cs = state_of(srv);
    if (!cs)
        return false;
    acks_state *as = cs->acks;
    size_t nn = cs->nnodes;
    size_t idlen = strlen(cs->id);
    ack_sync *y = NULL;
    uint8_t small[256], *rec = small;
    size_t rlen = 1 + idlen + 8 + 1 + len;
    bool wait = nn > 0 && cs->joined && cs->cmd_up && !cs->leaving && !cs->broken && kind < CLUSTER_KINDS &&
                idlen > 0 && len <= CLUSTER_RECORD_MAX - (1 + RTMD_NODE_ID_MAX + 9);
    if (wait && as->n >= CLUSTER_ACKS_MAX) {
        as->overflow++;
        wait = false;
    }
    if (wait && rlen > sizeof small && !(rec = malloc(rlen)))
        wait = false;
    if (wait && !(y = calloc(1, sizeof *y + nn * sizeof y->wait[0]))) {
        wait = false;
    }
    if (!wait) {
        if (rec != small)
            free(rec);
        cluster_send_all(srv, kind, data, len);
        return false;
    }
    y->id = ++as->next_id;
    rec[0] = (uint8_t)idlen;
    memcpy(rec + 1, cs->id, idlen);
    int64_t sid = (int64_t)y->id;
    cluster_ids_pack(rec + 1 + idlen, &sid, 1);
    rec[1 + idlen + 8] = (uint8_t)kind;
    if (len)
        memcpy(rec + 1 + idlen + 9, data, len);
    for (size_t i = 0; i < nn; i++) {
        const char *node = cs->nodes[i]->id; /* read before cluster_send: no call below changes the mirror */
        if (cluster_send(srv, node, CLUSTER_REC_SYNC, rec, rlen) == 0)
            memcpy(y->wait[y->nwait++], node, RTMD_NODE_ID_MAX);
    }
    if (rec != small)
        free(rec);
    if (y->nwait == 0 || pairmap_put(&as->by_id, 0, y->id, y) != 0) {
        free(y); /* sent to none (or out of memory): nothing to wait for */
        return false;
    }
    y->deadline = uv_now(srv->loop) + CLUSTER_ACK_BOUND_MS;
    y->done = done;
    y->arg = arg;
    y->prev = as->tail;
    if (as->tail)
        as->tail->next = y;
    else
        as->head = y;
    as->tail = y;
    as->n++;
    as->waited++;
    return true;
}

/* Sends the acknowledgement of a sync to its origin: batched like any
 * record when the mirror follows the origin, else published at once (a
 * node that learnt of this one before this one learnt of it). */
static void ack_send(cluster_state *cs, const cluster_ack_token *t)
{
    size_t idlen = strlen(cs->id);
    if (idlen == 0)
        return;
    uint8_t rec[8 + RTMD_NODE_ID_MAX];
    int64_t sid = (int64_t)t->id;
    cluster_ids_pack(rec, &sid, 1);
    memcpy(rec + 8, cs->id, idlen);
    size_t len = 8 + idlen;
    if (mirror_find(cs, t->origin)) {
        cluster_send(cs->srv, t->origin, CLUSTER_REC_ACK, rec, len);
        return;
    }
    uint8_t frame[REC_HEAD + sizeof rec];
    frame[0] = CLUSTER_REC_ACK;
    frame[1] = frame[2] = frame[3] = 0;
    frame[4] = (uint8_t)len;
    memcpy(frame + REC_HEAD, rec, len);
    size_t flen = REC_HEAD + len;
    if (!cs->joined || !cs->cmd_up || cs->flush_closed || cs->inflight + flen > INFLIGHT_MAX ||
        redisAsyncCommand(cs->cmd, on_published, (void *)(uintptr_t)flen, "PUBLISH " ROUTED_PREFIX "%s %b", t->origin,
                          frame, flen) != REDIS_OK) {
        cs->rec_dropped++;
        return;
    }
    cs->inflight += flen;
    cs->rec_sent++;
}

cluster_ack_token *cluster_ack_hold(rtmd_server *srv)
{
    cluster_state *cs = state_of(srv);
    if (!cs || !cs->acks || !cs->acks->running)
        return NULL;
    cs->acks->running->refs++;
    return cs->acks->running;
}

void cluster_ack_release(rtmd_server *srv, cluster_ack_token *t)
{
    if (!t || --t->refs > 0)
        return;
    cluster_state *cs = state_of(srv); /* NULL once the module is gone: then only freed */
    if (cs && cs->acks) {
        cs->acks->holds--;
        ack_send(cs, t);
    }
    free(t);
}

/* A record to acknowledge (hostile: every field checked). */
static void on_sync_record(rtmd_server *srv, const uint8_t *data, size_t len)
{
    cluster_state *cs = state_of(srv);
    acks_state *as = cs->acks;
    size_t idlen = len ? data[0] : 0;
    if (idlen == 0 || len < 1 + idlen + 8 + 1 || !id_ok((const char *)data + 1, idlen)) {
        cs->rec_malformed++;
        return;
    }
    unsigned kind = data[1 + idlen + 8];
    if (kind >= CLUSTER_KINDS || kind == CLUSTER_REC_SYNC || kind == CLUSTER_REC_ACK || !cs->handlers[kind]) {
        cs->rec_malformed++;
        return;
    }
    int64_t id;
    cluster_ids_unpack(data + 1 + idlen, 8, &id, 1);
    cluster_ack_token *t = as->holds < CLUSTER_ACK_HOLDS_MAX ? calloc(1, sizeof *t) : NULL;
    if (t) {
        t->id = (uint64_t)id;
        t->refs = 1; /* the handler's own, released when it returns */
        memcpy(t->origin, data + 1, idlen);
        as->holds++;
        as->running = t;
    }
    cs->handlers[kind](srv, data + 1 + idlen + 9, len - (1 + idlen + 9));
    as->running = NULL;
    if (t) {
        cluster_ack_release(srv, t);
    } else { /* too many holds alive, or out of memory: acknowledged now */
        cluster_ack_token now = {.id = (uint64_t)id};
        memcpy(now.origin, data + 1, idlen);
        ack_send(cs, &now);
    }
}

/* An acknowledgement of one of this node's syncs (hostile: checked). */
static void on_ack_record(rtmd_server *srv, const uint8_t *data, size_t len)
{
    cluster_state *cs = state_of(srv);
    acks_state *as = cs->acks;
    int64_t id;
    if (len <= 8 || !id_ok((const char *)data + 8, len - 8) || !cluster_ids_unpack(data, 8, &id, 1)) {
        cs->rec_malformed++;
        return;
    }
    ack_sync *y = pairmap_get(&as->by_id, 0, (uint64_t)id);
    if (!y)
        return; /* ended already (the bound, a node gone) or not ours */
    for (uint32_t i = 0; i < y->nwait; i++)
        if (strlen(y->wait[i]) == len - 8 && memcmp(y->wait[i], data + 8, len - 8) == 0) {
            memcpy(y->wait[i], y->wait[--y->nwait], RTMD_NODE_ID_MAX);
            break;
        }
    if (y->nwait == 0)
        ack_finish(as, y);
}

static int acks_init(cluster_state *cs)
{
    cs->acks = calloc(1, sizeof *cs->acks);
    if (!cs->acks)
        return -1;
    /* Sync ids start anywhere, so that an acknowledgement meant for an
     * earlier start of this node's id matches nothing. */
    cs->acks->next_id = clock_monotonic_ms() << 24 ^ (uint64_t)clock_unix_ms() << 8 ^ (uint64_t)getpid();
    cs->handlers[CLUSTER_REC_SYNC] = on_sync_record;
    cs->handlers[CLUSTER_REC_ACK] = on_ack_record;
    return 0;
}

/* At exit: syncs still waiting (the tick ends them all when the node
 * stops, so only when the loop did not run to its end) are ended too. */
static void acks_free(cluster_state *cs)
{
    acks_state *as = cs->acks;
    if (!as)
        return;
    while (as->head)
        ack_finish(as, as->head);
    pairmap_free(&as->by_id);
    free(as);
    cs->acks = NULL;
}

/* ---- module ------------------------------------------------------------ */

static int cluster_init(rtmd_server *srv, char *err, size_t errlen)
{
    if (!srv->cfg.redis_url[0])
        return 0;
    cluster_state *cs = calloc(1, sizeof *cs);
    if (!cs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->cluster = cs;
    cs->srv = srv;
    if (logins_init(cs) != 0 || acks_init(cs) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char host[256];
    if (rtmd_redis_url_parse(srv->cfg.redis_url, host, sizeof host, &cs->port, &cs->db) != 0) {
        snprintf(err, errlen, "redis_url: not redis://host[:port][/db]");
        return -1;
    }
    /* Resolved once, here at start, so that no reconnect blocks the loop
     * on a name lookup. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, errlen, "redis_url: cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    const void *addr = ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                                                 : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
    inet_ntop(ai->ai_family, addr, cs->host, sizeof cs->host);
    freeaddrinfo(ai);
    snprintf(cs->id, sizeof cs->id, "%s", srv->cfg.node_id);
    uint64_t a = clock_monotonic_ms() ^ ((uint64_t)clock_unix_ms() << 20), b = (uint64_t)getpid();
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&a, sizeof a, 1, f) != 1 || fread(&b, sizeof b, 1, f) != 1)
            b ^= (uint64_t)clock_unix_ms();
        fclose(f);
    }
    snprintf(cs->token, sizeof cs->token, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
    uv_timer_init(srv->loop, &cs->timer);
    cs->timer.data = cs;
    uv_check_init(srv->loop, &cs->flush_check);
    uv_idle_init(srv->loop, &cs->flush_idle);
    cs->flush_check.data = cs->flush_idle.data = cs;
    uv_timer_start(&cs->timer, on_tick, 0, CLUSTER_TICK_MS);
    return 0;
}

static void cluster_free(rtmd_server *srv)
{
    cluster_state *cs = state_of(srv);
    if (!cs)
        return;
    srv->svc->cluster = NULL;
    drop_connections(cs);
    for (size_t i = 0; i < cs->nnodes; i++) {
        pairmap_free(&cs->nodes[i]->users);
        pairmap_free(&cs->nodes[i]->projects);
        pairmap_free(&cs->nodes[i]->rooms);
        free(cs->nodes[i]->pending);
        free(cs->nodes[i]->out);
        free(cs->nodes[i]);
    }
    free(cs->nodes);
    pairmap_free(&cs->online);
    pairmap_free(&cs->listening);
    free(cs->room_waiters);
    while (cs->deferred_open) {
        room_deferred *d = cs->deferred_open;
        cs->deferred_open = d->next;
        free(d->sent);
        free(d);
    }
    for (size_t i = 0; i < cs->ndeferred_batches; i++)
        for (room_deferred *d = cs->deferred_batches[i], *next; d; d = next) {
            next = d->next;
            free(d->sent);
            free(d);
        }
    free(cs->deferred_batches);
    logins_free(cs);
    acks_free(cs);
    if (!cs->flush_closed) {
        uv_close((uv_handle_t *)&cs->flush_check, NULL);
        uv_close((uv_handle_t *)&cs->flush_idle, NULL);
    }
    if (rtmd_timer_release(&cs->timer, cs->timer_closed))
        free(cs);
    /* else the loop never closed the timer: its memory stays linked */
}

static void cluster_metrics(const rtmd_server *srv, prom_out *out)
{
    const cluster_state *cs = state_of(srv);
    if (!cs)
        return;
    prom_metric(out, "rtmd_cluster_joined", "gauge", "1 while this node is joined to the cluster's Redis.",
                cs->joined ? 1 : 0);
    prom_metric(out, "rtmd_cluster_other_nodes", "gauge", "Other nodes the presence mirror follows.", cs->nnodes);
    prom_metric(out, "rtmd_cluster_remote_online_users", "gauge", "Users online on other nodes, by the presence mirror.",
                cs->online.count);
    prom_metric(out, "rtmd_cluster_batches_sent_total", "counter",
                "Batches of records published to other nodes (one per node and loop turn).", cs->rec_sent);
    prom_metric(out, "rtmd_cluster_records_dropped_total", "counter",
                "Records or batches for other nodes dropped: Redis away, a node gone, or too much in flight.",
                cs->rec_dropped);
    prom_metric(out, "rtmd_cluster_records_received_total", "counter", "Records received from other nodes.",
                cs->rec_received);
    {
        char names[CLUSTER_KINDS][8];
        const char *labels[CLUSTER_KINDS];
        for (unsigned k = 0; k < CLUSTER_KINDS; k++) {
            snprintf(names[k], sizeof names[k], "%u", k);
            labels[k] = names[k];
        }
        /* Kind 0 is none: from 1, the numbers of cluster.h's enum. */
        prom_labelled(out, "rtmd_cluster_records_received_by_kind_total", "counter",
                      "Records received from other nodes, by kind (the number of cluster.h's enum).", "kind",
                      labels + 1, cs->rec_received_kind + 1, CLUSTER_KINDS - 1);
    }
    prom_metric(out, "rtmd_cluster_records_malformed_total", "counter",
                "Records received that did not parse or had no handler.", cs->rec_malformed);
    prom_metric(out, "rtmd_cluster_mirror_rebuilds_total", "counter",
                "Reloads of the groups, friends, bans and RealTimeCat mirrors after (re)joining.", cs->rebuilds);
    prom_metric(out, "rtmd_cluster_acks_waited_total", "counter",
                "Mirror changes whose answer waited for the other nodes' acknowledgements.", cs->acks->waited);
    prom_metric(out, "rtmd_cluster_acks_timed_out_total", "counter",
                "Mirror changes answered after the bound without every node's acknowledgement.",
                cs->acks->timed_out);
    prom_metric(out, "rtmd_cluster_acks_overflow_total", "counter",
                "Mirror changes sent without waiting: too many were waiting already.", cs->acks->overflow);
}

static const rtmd_observer cluster_observers[] = {
    {RTMD_EV_USER_ONLINE, on_user_online},
    {RTMD_EV_USER_OFFLINE, on_user_offline},
    {RTMD_EV_USER_ONLINE, logins_user_online},
    {RTMD_EV_USER_OFFLINE, logins_user_offline},
    {RTMD_EV_USER_KICKED, on_user_kicked},
};

/* Its state lives only with redis_url; presence reads go through
 * cluster_online. */
const rtmd_module cluster_module = {
    .name = "cluster",
    .init = cluster_init,
    .free = cluster_free,
    .metrics = cluster_metrics,
    RTMD_MODULE_OBSERVERS(cluster_observers),
};
