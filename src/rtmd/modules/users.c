/* Online users and their sessions (see users.h). */
#include "users.h"

#include "clock.h"
#include "methods.h"
#include "module.h"

#include "log.h"
#include "payload.h"
#include "push.h"
#include "rtm_errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct users_state {
    pairmap online; /* (pid, uid) -> rtmd_user */
} users_state;

static pairmap *online(rtmd_server *srv)
{
    return &srv->svc->users->online;
}

rtmd_user *users_get(rtmd_server *srv, int64_t pid, int64_t uid)
{
    return pairmap_get(online(srv), (uint64_t)pid, (uint64_t)uid);
}

size_t users_count(rtmd_server *srv)
{
    return online(srv)->count;
}

size_t users_of_project(rtmd_server *srv, int64_t pid, int64_t *out, size_t cap)
{
    const pairmap *m = online(srv);
    size_t n = 0;
    for (size_t i = 0; i < m->cap && n < cap; i++) {
        const rtmd_user *u = m->slots[i].value;
        if (u && u->pid == pid)
            out[n++] = u->uid;
    }
    return n;
}

bool users_online(rtmd_server *srv, int64_t pid, int64_t uid)
{
    return users_get(srv, pid, uid) != NULL;
}

rtmd_conn *users_newest_conn(rtmd_server *srv, int64_t pid, int64_t uid)
{
    rtmd_user *u = users_get(srv, pid, uid);
    return u && u->sessions ? u->sessions->conn : NULL; /* logins go to the head */
}

rtmd_session *users_login(rtmd_server *srv, rtmd_conn *conn, int64_t pid, int64_t uid)
{
    return users_login_named(srv, conn, pid, uid, NULL, 0);
}

rtmd_session *users_login_named(rtmd_server *srv, rtmd_conn *conn, int64_t pid, int64_t uid, const char *sid,
                                size_t len)
{
    return users_login_business(srv, conn, pid, uid, sid, len, NULL, 0);
}

rtmd_session *users_login_business(rtmd_server *srv, rtmd_conn *conn, int64_t pid, int64_t uid, const char *sid,
                                   size_t len, const char *bid, size_t blen)
{
    rtmd_user *u = users_get(srv, pid, uid);
    bool first = u == NULL;
    if (first) {
        u = calloc(1, sizeof *u);
        if (!u || pairmap_put(online(srv), (uint64_t)pid, (uint64_t)uid, u) != 0) {
            free(u);
            return NULL;
        }
        u->pid = pid;
        u->uid = uid;
        u->online_since_ms = (uint64_t)clock_unix_ms();
    }
    rtmd_session *s = calloc(1, sizeof *s);
    if (!s || (sid && !(s->string_id = malloc(len + 1))) || (blen && !(s->business_id = malloc(blen + 1)))) {
        if (s)
            free(s->string_id);
        free(s);
        if (first) {
            pairmap_del(online(srv), (uint64_t)pid, (uint64_t)uid);
            free(u);
        }
        return NULL;
    }
    if (sid) {
        memcpy(s->string_id, sid, len);
        s->string_id[len] = '\0';
    }
    if (blen) {
        memcpy(s->business_id, bid, blen);
        s->business_id[blen] = '\0';
    }
    s->conn = conn;
    s->user = u;
    s->login_ms = (uint64_t)clock_unix_ms();
    s->next = u->sessions;
    if (u->sessions)
        u->sessions->prev = s;
    u->sessions = s;
    u->nsessions++;
    conn->caller = s;
    if (first) {
        u->event_business_id = s->business_id;
        events_fire(&srv->net.events, srv, &(rtmd_event){.kind = RTMD_EV_USER_ONLINE, .user = u, .pid = pid, .uid = uid, .ms = s->login_ms});
        u->event_business_id = NULL;
    }
    return s;
}

static void free_session(rtmd_session *s)
{
    for (unsigned i = 0; i < s->nattrs; i++) {
        free(s->attrs[i].key);
        free(s->attrs[i].value);
    }
    free(s->attrs);
    free(s->string_id);
    free(s->business_id);
    free(s);
}

static void user_offline(rtmd_server *srv, rtmd_user *u, int gone)
{
    u->gone = gone;
    pairmap_del(online(srv), (uint64_t)u->pid, (uint64_t)u->uid);
    events_fire(&srv->net.events, srv, &(rtmd_event){.kind = RTMD_EV_USER_OFFLINE, .user = u, .pid = u->pid, .uid = u->uid,
                                   .ms = (uint64_t)clock_unix_ms()});
    free(u);
}

void users_said_bye(rtmd_conn *conn)
{
    if (conn->gate == GATE_CLIENT_TCP || conn->gate == GATE_CLIENT_WS) {
        rtmd_session *s = users_session(conn);
        if (s)
            s->said_bye = true;
    }
}

/* Ends the connection's session; the user goes offline with its last one,
 * for the reason gone (USERS_GONE_*), or -1: quit or dropped, as the
 * session said `bye` or not. */
static void logout_for(rtmd_conn *conn, int gone)
{
    rtmd_session *s = users_session(conn);
    if (!s)
        return;
    if (gone < 0)
        gone = s->said_bye ? USERS_GONE_QUIT : USERS_GONE_DROPPED;
    conn->caller = NULL;
    rtmd_user *u = s->user;
    if (s->prev)
        s->prev->next = s->next;
    else
        u->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    u->nsessions--;
    /* The last session's business id lives on for the offline event. */
    char *business = u->nsessions == 0 ? s->business_id : NULL;
    if (business)
        s->business_id = NULL;
    free_session(s);
    events_fire(&conn->srv->net.events, conn->srv, &(rtmd_event){.kind = RTMD_EV_SESSION_END, .conn = conn, .pid = u->pid, .uid = u->uid});
    if (u->nsessions == 0) {
        u->event_business_id = business;
        user_offline(conn->srv, u, gone);
    }
    free(business);
}

void users_logout(rtmd_conn *conn)
{
    logout_for(conn, -1);
}

/* A connection of the online user other than `except` (and, with below,
 * of a login older than it), or NULL. Looked up afresh for each kick:
 * logging a connection out unlinks its session from the user's list, and
 * the last one frees the user. */
static rtmd_conn *first_conn_except(rtmd_server *srv, int64_t pid, int64_t uid, const rtmd_conn *except,
                                    uint64_t below)
{
    rtmd_user *u = users_get(srv, pid, uid);
    for (rtmd_session *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->conn != except && (!below || s->login_seq < below))
            return s->conn;
    return NULL;
}

unsigned users_kickout(rtmd_server *srv, int64_t pid, int64_t uid, rtmd_conn *except)
{
    return users_kickout_why(srv, pid, uid, except, USERS_KICKED);
}

unsigned users_kick_local(rtmd_server *srv, int64_t pid, int64_t uid, rtmd_conn *except, const char *reason,
                          uint64_t below)
{
    if (!first_conn_except(srv, pid, uid, except, below))
        return 0;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, reason ? 1 : 0);
    if (reason)
        mp_pack_kv_str(&pk, "reason", reason);
    rtm_buf packet = {0};
    unsigned n = 0;
    if (push_encode(&packet, "kickout", &body, false) == 0) {
        /* Each turn ends the victim's session, so the loop ends. */
        rtmd_conn *victim;
        while ((victim = first_conn_except(srv, pid, uid, except, below)) != NULL) {
            conn_send_push(victim, packet.data, packet.len);
            logout_for(victim, USERS_GONE_KICKED);
            conn_close_after_flush(victim);
            n++;
        }
    }
    rtm_buf_free(&packet);
    msgpack_sbuffer_destroy(&body);
    return n;
}

unsigned users_kickout_older(rtmd_server *srv, int64_t pid, int64_t uid, rtmd_conn *except, const char *reason,
                             uint64_t seq)
{
    unsigned n = users_kick_local(srv, pid, uid, except, reason, seq);
    events_fire(&srv->net.events, srv,
                &(rtmd_event){.kind = RTMD_EV_USER_KICKED, .pid = pid, .uid = uid, .reason = reason, .seq = seq});
    return n;
}

unsigned users_kickout_why(rtmd_server *srv, int64_t pid, int64_t uid, rtmd_conn *except, const char *reason)
{
    return users_kickout_older(srv, pid, uid, except, reason, 0);
}

unsigned users_push(rtmd_server *srv, int64_t pid, int64_t uid, const uint8_t *packet, size_t len)
{
    rtmd_user *u = users_get(srv, pid, uid);
    unsigned n = 0;
    if (!u)
        return 0;
    /* A slow reader dropped here keeps its session until the fan-out is
     * over (conn_close is deferred). */
    for (rtmd_session *s = u->sessions; s; s = s->next)
        if (conn_send_push(s->conn, packet, len) == 0)
            n++;
    return n;
}

static char *dup_n(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static const rtmd_session_attr *attr_find(const rtmd_session *s, const char *key, size_t klen)
{
    for (unsigned i = 0; s && i < s->nattrs; i++)
        if (strlen(s->attrs[i].key) == klen && memcmp(s->attrs[i].key, key, klen) == 0)
            return &s->attrs[i];
    return NULL;
}

/* True if pair i of the map is given again later (the later one wins). */
static bool attr_given_again(const msgpack_object *attrs, uint32_t i)
{
    const msgpack_object *k = &attrs->via.map.ptr[i].key;
    for (uint32_t j = i + 1; j < attrs->via.map.size; j++) {
        const msgpack_object *o = &attrs->via.map.ptr[j].key;
        const char *a, *b;
        size_t an, bn;
        if (mp_obj_str(k, &a, &an) && mp_obj_str(o, &b, &bn) && an == bn && memcmp(a, b, an) == 0)
            return true;
    }
    return false;
}

int session_attrs_check(const rtmd_session *s, const msgpack_object *attrs, const rtmd_project_config *lim,
                        const char **ex)
{
    uint32_t n = attrs->via.map.size;
    for (uint32_t i = 0; i < n; i++) {
        const char *k, *v;
        size_t klen, vlen;
        if (!mp_obj_str(&attrs->via.map.ptr[i].key, &k, &klen) || !mp_obj_str(&attrs->via.map.ptr[i].val, &v, &vlen)) {
            *ex = "attrs: keys and values must be strings";
            return FPNN_EC_PROTO_TYPE_CONVERT;
        }
    }
    /* The map itself is bounded first: the walk below is quadratic in it. */
    if (n > lim->max_session_attrs) {
        *ex = "too many attrs";
        return RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS;
    }
    uint64_t count = s ? s->nattrs : 0, bytes = s ? s->attrs_bytes : 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *k = NULL, *v = NULL;
        size_t klen = 0, vlen = 0;
        mp_obj_str(&attrs->via.map.ptr[i].key, &k, &klen);
        mp_obj_str(&attrs->via.map.ptr[i].val, &v, &vlen);
        if (klen > RTMD_SESSION_ATTR_KEY_MAX || vlen > lim->max_attrs_bytes) {
            *ex = klen > RTMD_SESSION_ATTR_KEY_MAX ? "too large attrs key" : "too large attrs value";
            return RTM_EC_LARGE_MESSAGE_OR_ATTRS;
        }
        if (attr_given_again(attrs, i))
            continue;
        const rtmd_session_attr *old = attr_find(s, k, klen);
        if (old) {
            bytes -= old->value_len;
        } else {
            count++;
            bytes += klen;
        }
        bytes += vlen;
    }
    if (count > lim->max_session_attrs) {
        *ex = "too many attrs";
        return RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS;
    }
    if (bytes > lim->max_session_attrs_bytes) {
        *ex = "too large attrs";
        return RTM_EC_LARGE_MESSAGE_OR_ATTRS;
    }
    return 0;
}

/* Adds or replaces one attribute. */
static int attr_set(rtmd_session *s, const char *key, size_t klen, const char *value, size_t vlen)
{
    rtmd_session_attr *old = (rtmd_session_attr *)attr_find(s, key, klen);
    char *v = dup_n(value, vlen);
    if (!v)
        return -1;
    if (old) {
        s->attrs_bytes = s->attrs_bytes - old->value_len + vlen;
        free(old->value);
        old->value = v;
        old->value_len = vlen;
        return 0;
    }
    rtmd_session_attr *grown = realloc(s->attrs, (s->nattrs + 1) * sizeof *grown);
    char *k = grown ? dup_n(key, klen) : NULL;
    if (!k) {
        if (grown)
            s->attrs = grown;
        free(v);
        return -1;
    }
    s->attrs = grown;
    s->attrs[s->nattrs++] = (rtmd_session_attr){k, v, vlen};
    s->attrs_bytes += klen + vlen;
    return 0;
}

int session_attrs_set(rtmd_session *s, const msgpack_object *attrs)
{
    for (uint32_t i = 0; i < attrs->via.map.size; i++) {
        const char *k, *v;
        size_t klen, vlen;
        if (mp_obj_str(&attrs->via.map.ptr[i].key, &k, &klen) && mp_obj_str(&attrs->via.map.ptr[i].val, &v, &vlen) &&
            attr_set(s, k, klen, v, vlen) != 0)
            return -1;
    }
    return 0;
}

static int users_init(rtmd_server *srv, char *err, size_t errlen)
{
    srv->svc->users = calloc(1, sizeof *srv->svc->users);
    if (!srv->svc->users) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void users_free_all(rtmd_server *srv)
{
    if (!srv->svc->users)
        return;
    pairmap *m = online(srv);
    for (size_t i = 0; i < m->cap; i++) {
        rtmd_user *u = m->slots[i].value;
        if (!u)
            continue;
        for (rtmd_session *s = u->sessions, *next; s; s = next) {
            next = s->next;
            s->conn->caller = NULL;
            free_session(s);
        }
        free(u);
    }
    pairmap_free(m);
    free(srv->svc->users);
    srv->svc->users = NULL;
}

static void on_conn_closed(rtmd_server *srv, const rtmd_event *ev)
{
    (void)srv;
    users_logout(ev->conn);
}

static const rtmd_observer users_observers[] = {
    {RTMD_EV_CONN_CLOSED, on_conn_closed},
};

/* The client gates' authorizer: the caller is the session's user. */
static bool users_authorize(rtmd_request *req)
{
    rtmd_session *s = users_session(req->conn);
    if (!s) {
        request_error(req, RTM_EC_UNAUTHORIZED, "unauthorized");
        return false;
    }
    req->project = rtmd_server_project(req->srv, s->user->pid);
    if (!req->project) { /* removed by a reload; its sessions are closing */
        request_error(req, RTM_EC_UNAUTHORIZED, "unauthorized");
        return false;
    }
    req->uid = s->user->uid;
    return true;
}

/* A project removed by a reload: each of its users here gets a kickout
 * and its connections close (no other node is told: each node reloads its
 * own configuration). */
static void users_project_removed(rtmd_server *srv, rtmd_project *p)
{
    size_t cap = users_count(srv);
    int64_t *uids = malloc((cap + 1) * sizeof *uids);
    if (!uids) {
        LOG_ERROR("users: out of memory closing the sessions of removed project %lld", (long long)p->pid);
        return;
    }
    size_t n = users_of_project(srv, p->pid, uids, cap);
    unsigned closed = 0;
    for (size_t i = 0; i < n; i++)
        closed += users_kick_local(srv, p->pid, uids[i], NULL, USERS_KICKED, 0);
    free(uids);
    LOG_INFO("users: project %lld removed: %u sessions closed", (long long)p->pid, closed);
}

/* Online users are a module too: a closing connection ends its session
 * through an event, the client gates' callers are its sessions' users, and
 * what they hold is freed at exit. */
const rtmd_module users_module = {
    .name = "users",
    .init = users_init,
    .free = users_free_all,
    .authorizes = GATES_CLIENT,
    .authorize = users_authorize,
    .project_removed = users_project_removed,
    RTMD_MODULE_OBSERVERS(users_observers),
};
