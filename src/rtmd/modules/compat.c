/* Client methods that older RTM client SDKs send and that have no service
 * of their own in rtmd:
 *
 *   which        {what: "rtmGated", pid?, uid?, addrType?|iptype?, proto?,
 *                version?} -> {endpoint, server}: the dispatch question of
 *                the WebSocket SDKs of 2018 (and rtm-doc's `which`), asked
 *                on a link of its own before logging in. rtmd is its own
 *                dispatcher: the answer is the host:port this link reached,
 *                so the client logs in on the same gate (WebSocket when it
 *                asked over WebSocket, wss over wss). `endpoint` is what the
 *                SDK reads, `server` what rtm-doc names. Open (no login).
 *   adddebuglog  {msg, attrs} -> {}: a client's debug text, written to the
 *                log at info level, escaped (rtm_log_str). Bounded: msg and
 *                attrs at most DEBUGLOG_MAX_BYTES each (200030), and per
 *                connection a token bucket of DEBUGLOG_BURST lines refilled
 *                at DEBUGLOG_PER_SECOND (200010), so that no client floods
 *                the log.
 *
 * State: the debug-log bucket of each connection that used adddebuglog,
 * keyed by connection id and dropped when the connection closes. */
#include "clock.h"
#include "log.h"
#include "methods.h"
#include "module.h"
#include "pairmap.h"
#include "payload.h"
#include "rtm_errors.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEBUGLOG_MAX_BYTES 4096
#define DEBUGLOG_BURST 10
#define DEBUGLOG_PER_SECOND 1

typedef struct debuglog_bucket {
    double tokens;
    uint64_t last_ms;
} debuglog_bucket;

struct compat_state {
    pairmap buckets; /* (0, connection id) -> debuglog_bucket */
};

static struct compat_state *state(rtmd_server *srv)
{
    return srv->svc->compat;
}

/* ---- which ---- */

/* "host:port" of the local end of c (IPv6 in brackets, IPv4-mapped IPv6
 * as IPv4), or NULL. */
static const char *local_endpoint(rtmd_conn *c, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return NULL;
    char host[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        if (!inet_ntop(AF_INET, &a->sin_addr, host, sizeof host))
            return NULL;
        snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(a->sin_port));
        return buf;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            if (!inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], host, sizeof host))
                return NULL;
            snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(a->sin6_port));
        } else {
            if (!inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host))
                return NULL;
            snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
        }
        return buf;
    }
    return NULL;
}

static bool is_text(const msgpack_object *o)
{
    return o && (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN);
}

static void method_which(rtmd_request *req)
{
    const msgpack_object *what = mp_map_get(req->args, "what");
    if (!is_text(what)) {
        req_arg_error(req, "what");
        return;
    }
    const char *w = what->type == MSGPACK_OBJECT_STR ? what->via.str.ptr : what->via.bin.ptr;
    uint32_t wlen = what->type == MSGPACK_OBJECT_STR ? what->via.str.size : what->via.bin.size;
    if (wlen != 8 || memcmp(w, "rtmGated", 8) != 0) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "invalid 'what': only rtmGated is served here");
        return;
    }
    char ep[INET6_ADDRSTRLEN + 16];
    if (!local_endpoint(req->conn, ep, sizeof ep)) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "cannot tell the local address");
        return;
    }
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    mp_pack_kv_str(&pk, "endpoint", ep);
    mp_pack_kv_str(&pk, "server", ep);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* ---- adddebuglog ---- */

/* Takes one line from c's bucket; false when it is empty. */
static bool debuglog_admit(rtmd_server *srv, const rtmd_conn *c)
{
    struct compat_state *s = state(srv);
    uint64_t now = clock_monotonic_ms();
    debuglog_bucket *b = pairmap_get(&s->buckets, 0, c->id);
    if (!b) {
        b = malloc(sizeof *b);
        if (!b || pairmap_put(&s->buckets, 0, c->id, b) != 0) {
            free(b);
            return false;
        }
        b->tokens = DEBUGLOG_BURST;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) * DEBUGLOG_PER_SECOND / 1000.0;
    if (b->tokens > DEBUGLOG_BURST)
        b->tokens = DEBUGLOG_BURST;
    b->last_ms = now;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

static void method_adddebuglog(rtmd_request *req)
{
    const msgpack_object *msg = mp_map_get(req->args, "msg");
    const msgpack_object *attrs = mp_map_get(req->args, "attrs");
    if (!is_text(msg)) {
        req_arg_error(req, "msg");
        return;
    }
    if (!is_text(attrs)) {
        req_arg_error(req, "attrs");
        return;
    }
    /* str and bin share their layout in msgpack_object */
    if (msg->via.str.size > DEBUGLOG_MAX_BYTES || attrs->via.str.size > DEBUGLOG_MAX_BYTES) {
        request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, "too large msg or attrs");
        return;
    }
    if (!debuglog_admit(req->srv, req->conn)) {
        request_error(req, RTM_EC_API_FREQUENCY_LIMITED, "frequency limited");
        return;
    }
    char m[RTM_LOG_STR_SIZE], a[RTM_LOG_STR_SIZE], peer[RTMD_PEER_LEN];
    LOG_INFO("debuglog pid %lld uid %lld from %s: %s (attrs %s)", (long long)req->project->pid, (long long)req->uid,
             conn_peer(req->conn, peer), rtm_log_str(m, msg->via.str.ptr, msg->via.str.size),
             rtm_log_str(a, attrs->via.str.ptr, attrs->via.str.size));
    request_answer_empty(req);
}

/* A client connection closes: forget its bucket. */
static void on_conn_closed(rtmd_server *srv, const rtmd_event *ev)
{
    if (ev->conn->gate == GATE_SERVER_TCP || !state(srv))
        return;
    free(pairmap_del(&state(srv)->buckets, 0, ev->conn->id));
}

/* ---- module life cycle ---- */

static int compat_init(rtmd_server *srv, char *err, size_t errlen)
{
    srv->svc->compat = calloc(1, sizeof *srv->svc->compat);
    if (!srv->svc->compat) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void compat_free(rtmd_server *srv)
{
    struct compat_state *s = srv->svc->compat;
    if (!s)
        return;
    for (size_t i = 0; i < s->buckets.cap; i++)
        free(s->buckets.slots[i].value);
    pairmap_free(&s->buckets);
    free(s);
    srv->svc->compat = NULL;
}

static const rtmd_method compat_methods[] = {
    {"which", GATES_CLIENT, method_which, RTMD_M_OPEN},
    {"adddebuglog", GATES_CLIENT, method_adddebuglog, 0},
};

static const rtmd_observer compat_observers[] = {{RTMD_EV_CONN_CLOSED, on_conn_closed}};

const rtmd_module compat_module = {
    .name = "compat",
    .init = compat_init,
    .free = compat_free,
    RTMD_MODULE_METHODS(compat_methods),
    RTMD_MODULE_OBSERVERS(compat_observers),
};
