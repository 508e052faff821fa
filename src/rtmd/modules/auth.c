/* Identity: login tokens (minted by gettoken, revoked by removetoken, kept
 * in the store and in memory, swept once expired), the client `auth` quest
 * with the multi-login policy, kicking users out, presence queries, and
 * session attributes. App-server signatures are sign.c's.
 *
 * Uids of the string-id range (identity.h, 2^62 and above) belong to users
 * named by strings; a number-id client may not be one of them. The check
 * sits where an identity is granted, here: gettoken mints no token for such
 * a uid and auth refuses one (200001, with a token minted anywhere else). The
 * other server methods that name users act on users that exist (send as, add
 * to a group, kick out) and accept them, so that the app server can manage
 * string-id users it learnt from pushes and events.
 *
 * String-id login (RTS): auth with a string uid and an RTS AccessToken
 * (rtstoken.h) names the project by its app_id; the string is resolved to
 * its uid (identity.h) and the session remembers the string (users.h).
 *
 * RealTimeCat token login: auth with rtcat_token (a token of rtcat.h)
 * makes a string-id session whose string is the token's uuid, bound to
 * the token's rights (rtcat_bind); a second login with the token logs the
 * first out.
 *
 * On PostgreSQL several nodes may share the store: a token minted on one
 * node, or removed through one, is seen by all. There a number-id login
 * reads its token from the store (a primary-key read on the reader pool)
 * whatever memory says; memory keeps the tokens this node minted or
 * loaded, for the rtmd_tokens gauge and the sweep. On SQLite, one node,
 * memory is the answer. */
#include "bans.h"
#include "cluster.h"
#include "identity.h"
#include "clock.h"
#include "hash.h"
#include "log.h"
#include "methods.h"
#include "payload.h"
#include "rtm_errors.h"
#include "rtcat.h"
#include "rtstoken.h"
#include "translate.h"
#include "module.h"
#include "users.h"
#include "utf8.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_HEX 32
#define ONLINE_QUERY_MAX 200
#define AUTH_BUSINESS_ID_MAX RTMD_BUSINESS_ID_MAX
/* Business ids that get their own label in /metrics, per process; the
 * others count under business="other". */
#define AUTH_BUSINESS_LABELS_MAX 100

/* One live token: 80 bytes of heap with malloc's header, kept for every
 * token minted and not yet expired or removed. There is no index by user:
 * only removetoken needs one, and it is rare enough to scan. */
typedef struct token_rec {
    int64_t pid, uid;
    int64_t expires_at;           /* unix seconds */
    struct token_rec *next_same_key; /* tokens whose 64-bit key collides */
    char token[TOKEN_HEX + 1];
} token_rec;

struct auth_state {
    rtmd_server *srv;
    pairmap by_token;  /* (pid, token key) -> token_rec chain */
    size_t ntokens;    /* records in by_token */
    /* Expiry sweep: each tick looks at a slice of by_token, so that one
     * pass over all tokens takes retention_interval seconds; each pass
     * also deletes the expired rows of the store. */
    uv_timer_t timer;
    bool timer_closed;
    size_t sweep_slot;
    uint64_t last_purge_ms;
    /* Logins with a businessid, per business id (rtmd_rts_logins_total). */
    struct business_count {
        char id[AUTH_BUSINESS_ID_MAX + 1];
        uint64_t logins;
    } business[AUTH_BUSINESS_LABELS_MAX];
    size_t nbusiness;
    uint64_t business_other;
    struct attrs_ask *asks; /* getattrs waiting on other nodes */
    size_t nasks;
    uint64_t last_ask;
};

static struct auth_state *state(rtmd_server *srv)
{
    return srv->svc->auth;
}

/* ---- tokens ---- */

static void token_index(struct auth_state *a, token_rec *t)
{
    uint64_t key = rtm_hash64(t->token, strlen(t->token));
    t->next_same_key = pairmap_get(&a->by_token, (uint64_t)t->pid, key);
    pairmap_put(&a->by_token, (uint64_t)t->pid, key, t);
    a->ntokens++;
}

static void token_unindex(struct auth_state *a, token_rec *t)
{
    a->ntokens--;
    uint64_t key = rtm_hash64(t->token, strlen(t->token));
    token_rec *head = pairmap_get(&a->by_token, (uint64_t)t->pid, key);
    if (head == t) {
        if (t->next_same_key)
            pairmap_put(&a->by_token, (uint64_t)t->pid, key, t->next_same_key);
        else
            pairmap_del(&a->by_token, (uint64_t)t->pid, key);
    } else {
        for (token_rec *p = head; p; p = p->next_same_key)
            if (p->next_same_key == t) {
                p->next_same_key = t->next_same_key;
                break;
            }
    }
}

/* Which tokens a scan removes. */
typedef struct token_match {
    int64_t pid, uid;    /* a user's tokens, or */
    int64_t expired_at;  /* (when not 0) the tokens expired at that time */
} token_match;

static bool token_matches(const token_rec *t, const token_match *m)
{
    if (m->expired_at)
        return t->expires_at <= m->expired_at;
    return t->pid == m->pid && t->uid == m->uid;
}

/* Unindexes and frees the matching tokens of slots [from, to) of by_token,
 * collected first since unindexing moves entries of the map. */
static int tokens_remove(struct auth_state *a, const token_match *m, size_t from, size_t to)
{
    size_t n = 0, cap = 0;
    token_rec **found = NULL;
    for (size_t i = from; i < to && i < a->by_token.cap; i++)
        for (token_rec *t = a->by_token.slots[i].value; t; t = t->next_same_key) {
            if (!token_matches(t, m))
                continue;
            if (n == cap) {
                size_t ncap = cap ? 2 * cap : 8;
                token_rec **p = realloc(found, ncap * sizeof *p);
                if (!p) {
                    free(found);
                    return -1;
                }
                found = p;
                cap = ncap;
            }
            found[n++] = t;
        }
    for (size_t i = 0; i < n; i++) {
        token_unindex(a, found[i]);
        free(found[i]);
    }
    free(found);
    return 0;
}

static token_rec *token_find(struct auth_state *a, int64_t pid, const char *token, size_t len)
{
    for (token_rec *t = pairmap_get(&a->by_token, (uint64_t)pid, rtm_hash64(token, len)); t; t = t->next_same_key)
        if (strlen(t->token) == len && memcmp(t->token, token, len) == 0)
            return t;
    return NULL;
}

typedef struct token_write {
    rtmd_request *req;  /* answered once the write committed */
    int64_t pid, uid, expires_at;
    char token[TOKEN_HEX + 1];
    bool remove_all;    /* removetoken: delete every token of uid */
} token_write;

static int apply_token_write(db_conn *db, void *arg)
{
    token_write *w = arg;
    db_stmt_t *st;
    const char *sql = w->remove_all ? "DELETE FROM tokens WHERE pid = ?1 AND uid = ?2"
                                    : "INSERT INTO tokens(pid, uid, token, expires_at) VALUES (?1, ?2, ?3, ?4)";
    int rc = db_prepare(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, w->pid);
    db_bind_int64(st, 2, w->uid);
    if (!w->remove_all) {
        db_bind_text(st, 3, w->token, -1);
        db_bind_int64(st, 4, w->expires_at);
    }
    return store_step_finalize(st);
}

static void token_write_done(void *arg, int status)
{
    token_write *w = arg;
    rtmd_request *req = w->req;
    if (status != DB_OK) {
        LOG_ERROR("token write for uid %lld failed: %s", (long long)w->uid, db_errstr(status));
        module_answer_store_failure(req, status);
    } else if (w->remove_all) {
        request_answer_empty(req);
    } else {
        /* Usable from now on: the token is durable. */
        token_rec *t = calloc(1, sizeof *t);
        if (!t) {
            request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        } else {
            t->pid = w->pid;
            t->uid = w->uid;
            t->expires_at = w->expires_at;
            memcpy(t->token, w->token, sizeof t->token);
            token_index(state(req->srv), t);
            msgpack_sbuffer body;
            msgpack_sbuffer_init(&body);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 1);
            mp_pack_kv_str(&pk, "token", w->token);
            request_answer(req, &body);
            msgpack_sbuffer_destroy(&body);
        }
    }
    free(w);
}

static void submit_token_write(rtmd_request *req, token_write *w)
{
    w->req = req;
    if (store_submit(req->srv->store, apply_token_write, token_write_done, w) != 0) {
        free(w);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

/* Answers 200001 and returns false when uid is in the string-id range. */
static bool number_uid(rtmd_request *req, int64_t uid)
{
    if (!identity_is_string_uid(uid))
        return true;
    request_error(req, RTM_EC_INVALID_PID_OR_UID, "invalid uid: 2^62 and above are string-id uids");
    return false;
}

/* server: gettoken {uid} -> {token} */
static void method_gettoken(rtmd_request *req)
{
    int64_t uid;
    if (!req_arg_int64(req, "uid", &uid) || !number_uid(req, uid))
        return;
    token_write *w = calloc(1, sizeof *w);
    uint8_t r[TOKEN_HEX / 2];
    if (!w || RAND_bytes(r, sizeof r) != 1) {
        free(w);
        request_error(req, RTM_EC_UNKNOWN_ERROR, "cannot make a token");
        return;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(w->token + 2 * i, 3, "%02x", r[i]);
    w->pid = req->project->pid;
    w->uid = uid;
    w->expires_at = clock_unix_seconds() + req->project->limits.token_ttl_seconds;
    submit_token_write(req, w);
}

/* server: removetoken {uid} -> {}; the user's tokens stop working at once. */
static void method_removetoken(rtmd_request *req)
{
    int64_t uid;
    if (!req_arg_int64(req, "uid", &uid))
        return;
    token_write *w = calloc(1, sizeof *w);
    struct auth_state *a = state(req->srv);
    token_match user = {req->project->pid, uid, 0};
    if (!w || tokens_remove(a, &user, 0, a->by_token.cap) != 0) {
        free(w);
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    w->pid = req->project->pid;
    w->uid = uid;
    w->remove_all = true;
    submit_token_write(req, w);
}

typedef struct token_load {
    struct auth_state *a;
    int64_t now;
    size_t count;
} token_load;

static int load_tokens(db_conn *db, void *arg)
{
    token_load *l = arg;
    db_stmt_t *st;
    int rc = db_prepare(db, "SELECT pid, uid, token, expires_at FROM tokens WHERE expires_at > ?1", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, l->now);
    while ((rc = db_step(st)) == DB_ROW) {
        const char *text = (const char *)db_column_text(st, 2);
        if (!text || strlen(text) != TOKEN_HEX)
            continue;
        token_rec *t = calloc(1, sizeof *t);
        if (!t) {
            rc = DB_NOMEM;
            break;
        }
        t->pid = db_column_int64(st, 0);
        t->uid = db_column_int64(st, 1);
        t->expires_at = db_column_int64(st, 3);
        memcpy(t->token, text, TOKEN_HEX + 1);
        token_index(l->a, t);
        l->count++;
    }
    db_finalize(st);
    return rc == DB_DONE ? DB_OK : rc;
}

/* ---- logins per business id ---- */

/* Counts a login with business id bid[0..len) (1..128 bytes). An id gets
 * its own label when it is among the first AUTH_BUSINESS_LABELS_MAX seen,
 * is UTF-8 without control characters and is not "other"; anything else
 * counts under "other", so the label set stays bounded whatever clients
 * send. */
static void count_business_login(struct auth_state *a, const char *bid, size_t len)
{
    for (size_t i = 0; i < a->nbusiness; i++)
        if (strlen(a->business[i].id) == len && memcmp(a->business[i].id, bid, len) == 0) {
            a->business[i].logins++;
            return;
        }
    bool labelled = a->nbusiness < AUTH_BUSINESS_LABELS_MAX && rtm_utf8_valid(bid, len) &&
                    !(len == 5 && memcmp(bid, "other", 5) == 0);
    for (size_t i = 0; labelled && i < len; i++)
        if ((unsigned char)bid[i] < 0x20 || bid[i] == 0x7f)
            labelled = false;
    if (!labelled) {
        a->business_other++;
        return;
    }
    struct business_count *b = &a->business[a->nbusiness++];
    memcpy(b->id, bid, len);
    b->id[len] = '\0';
    b->logins = 1;
}

/* One sample of rtmd_rts_logins_total, the label value escaped as the
 * text format wants (backslash and double quote). */
static void business_sample(prom_out *out, const char *id, uint64_t logins)
{
    char esc[2 * AUTH_BUSINESS_ID_MAX + 1];
    size_t n = 0;
    for (const char *p = id; *p; p++) {
        if (*p == '\\' || *p == '"')
            esc[n++] = '\\';
        esc[n++] = *p;
    }
    esc[n] = '\0';
    prom_text(out, "rtmd_rts_logins_total{business=\"%s\"} %llu\n", esc, (unsigned long long)logins);
}

/* ---- client login ---- */

/* The attrs of an auth or addattrs quest, checked against the project's
 * limits: true with *out (NULL when absent and may_be_absent), or false
 * once the request is answered with the error. */
static bool get_session_attrs(rtmd_request *req, const rtmd_project *p, const rtmd_session *s, bool may_be_absent,
                              const msgpack_object **out)
{
    const msgpack_object *attrs = mp_map_get(req->args, "attrs");
    *out = NULL;
    if (may_be_absent && (!attrs || attrs->type == MSGPACK_OBJECT_NIL))
        return true;
    if (!attrs || attrs->type != MSGPACK_OBJECT_MAP) {
        req_arg_error(req, "attrs");
        return false;
    }
    const char *ex = NULL;
    int code = session_attrs_check(s, attrs, &p->limits, &ex);
    if (code != 0) {
        request_error(req, code, ex);
        return false;
    }
    *out = attrs;
    return true;
}

/* The end of every login, once the token is good and the uid known: the
 * project's connection limit, attrs and lang, the multi-login policy, then
 * the session (a string-id one when sid is given). Answers {ok: true}. */
static void answer_granted(rtmd_request *req, const rtcat_grant *g);

static void login_finish(rtmd_request *req, rtmd_project *p, int64_t uid, const char *sid, size_t sid_len,
                         const char *bid, size_t bid_len, const rtcat_grant *grant)
{
    rtmd_server *srv = req->srv;
    rtmd_conn *c = req->conn;
    int64_t pid = p->pid;
    if (p->limits.max_connections && p->nsessions >= p->limits.max_connections) {
        request_error(req, FPNN_EC_CORE_FORBIDDEN, "project connection limit reached");
        return;
    }
    const msgpack_object *attrs;
    if (!get_session_attrs(req, p, NULL, true, &attrs))
        return;
    bool single = !p->limits.multi_login || grant; /* a RealTimeCat token logs in once */
    if (single) /* here; the other nodes by the login's sequence (cluster.h) */
        users_kick_local(srv, pid, uid, c, USERS_DUPLICATE_LOGIN, 0);
    rtmd_session *s = users_login_business(srv, c, pid, uid, sid, sid_len, bid, bid_len);
    if (!s) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    if (single && cluster_enabled(srv))
        cluster_claim_login(srv, c, pid, uid);
    p->nsessions++;
    conn_authenticated(c);
    const char *lang = NULL;
    size_t lang_len = 0;
    if (!mp_get_str(req->args, "lang", &lang, &lang_len))
        lang = NULL;
    translate_session_login(srv, s, lang, lang_len); /* an invalid lang is ignored: the login goes on */
    if (attrs && session_attrs_set(s, attrs) != 0) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    if (bid_len)
        count_business_login(state(srv), bid, bid_len);
    if (grant) {
        if (rtcat_bind(srv, c, pid, uid, grant) != 0) {
            request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
            conn_close(c, "out of memory");
            return;
        }
        answer_granted(req, grant);
        return;
    }
    request_answer_bool(req, "ok", true);
}

/* ---- string-id login (RTS) ---- */

/* The project whose app_id is id[0..len), or NULL. */
static rtmd_project *project_by_app_id(rtmd_server *srv, const char *id, size_t len)
{
    if (len != RTMD_APP_ID_LEN)
        return NULL;
    for (size_t i = 0; i < srv->nprojects; i++)
        if (!srv->projects[i].removed && memcmp(srv->projects[i].limits.app_id, id, len) == 0 &&
            srv->projects[i].limits.app_id[len] == '\0')
            return &srv->projects[i];
    return NULL;
}

/* A string-id login waiting for its uid (identity_resolve). */
typedef struct string_login {
    rtmd_request *req;
    int64_t pid;
    size_t len, business_len;
    char sid[IDENTITY_STRING_MAX + 1];
    char business[AUTH_BUSINESS_ID_MAX + 1];
} string_login;

/* The checks that depend on the uid, then the session. */
static void string_login_resolved(rtmd_request *req, int64_t pid, int64_t uid, const string_login *l)
{
    rtmd_project *p = rtmd_server_project(req->srv, pid);
    if (req->conn->closing) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "connection closed");
        return;
    }
    if (users_session(req->conn)) { /* a second auth won the race */
        request_error(req, RTM_EC_DUPLICATED_AUTH, "auth already");
        return;
    }
    if (bans_blacklisted(req->srv, pid, uid)) {
        request_error(req, RTM_EC_AUTH_DENIED, "auth denied");
        return;
    }
    login_finish(req, p, uid, l->sid, l->len, l->business, l->business_len, NULL);
}

static void string_login_done(void *arg, int status, int64_t uid)
{
    string_login *l = arg;
    if (status != 0)
        module_answer_store_failure(l->req, status);
    else
        string_login_resolved(l->req, l->pid, uid, l);
    free(l);
}

static void answer_refused(rtmd_request *req, const char *reason)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    mp_pack_cstr(&pk, "ok");
    msgpack_pack_false(&pk);
    mp_pack_kv_str(&pk, "reason", reason);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* client: auth {appid or pid, uid: str, token: RTS AccessToken, businessid?,
 * version?, attrs?, lang?} -> {ok: true} or {ok: false, reason: "invalid" |
 * "expired"}. The uid is resolved (created when new) without blocking the
 * loop: the answer waits for it. */
static void auth_string(rtmd_request *req, const char *sid, size_t sid_len)
{
    rtmd_server *srv = req->srv;
    const char *appid, *token, *business = NULL;
    size_t appid_len, token_len, business_len = 0;
    int64_t pid;
    rtmd_project *p = NULL;
    if (mp_get_str(req->args, "appid", &appid, &appid_len))
        p = project_by_app_id(srv, appid, appid_len);
    else if (mp_get_int64(req->args, "pid", &pid))
        p = rtmd_server_project(srv, pid);
    if (!p || !identity_validate(sid, sid_len)) {
        request_error(req, RTM_EC_INVALID_PID_OR_UID, "invalid appid, pid or uid");
        return;
    }
    if (!p->limits.app_id[0] || !p->limits.app_key[0]) {
        request_error(req, RTM_EC_NO_CONFIG_IN_CONSOLE, "string uids need the project's app_id and app_key");
        return;
    }
    const msgpack_object *b = mp_map_get(req->args, "businessid");
    if (b && b->type != MSGPACK_OBJECT_NIL &&
        (!mp_get_str(req->args, "businessid", &business, &business_len) || business_len > AUTH_BUSINESS_ID_MAX)) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "businessid: a string of at most 128 bytes");
        return;
    }
    if (!mp_get_str(req->args, "token", &token, &token_len)) {
        answer_refused(req, "invalid");
        return;
    }
    int r = rtstoken_check(p, token, token_len, sid, sid_len, (uint64_t)clock_unix_seconds());
    if (r != RTSTOKEN_OK) {
        if (r == RTSTOKEN_DISABLED)
            request_error(req, RTM_EC_NO_CONFIG_IN_CONSOLE, "string uids need the project's app_id and app_key");
        else
            answer_refused(req, r == RTSTOKEN_EXPIRED ? "expired" : "invalid");
        return;
    }
    string_login *l = calloc(1, sizeof *l);
    if (!l) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    *l = (string_login){.req = req, .pid = p->pid, .len = sid_len, .business_len = business_len};
    memcpy(l->sid, sid, sid_len);
    if (business_len)
        memcpy(l->business, business, business_len);
    int64_t uid;
    int rc = identity_resolve(identity_of(srv), p->pid, sid, sid_len, &uid, string_login_done, l);
    if (rc == 0)
        return;
    if (rc == 1)
        string_login_resolved(req, p->pid, uid, l);
    else
        request_error(req, RTM_EC_UNKNOWN_ERROR, "cannot resolve the uid");
    free(l);
}

/* ---- RealTimeCat token login ---- */

/* {ok: true, uid: token, session, type: "pub" | "sub"} */
static void answer_granted(rtmd_request *req, const rtcat_grant *g)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    mp_pack_cstr(&pk, "ok");
    msgpack_pack_true(&pk);
    mp_pack_kv_str(&pk, "uid", g->token);
    mp_pack_kv_str(&pk, "session", g->session);
    mp_pack_kv_str(&pk, "type", g->pub ? "pub" : "sub");
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

/* A token login waiting for the uid of the token's string. */
typedef struct rtcat_login {
    rtmd_request *req;
    int64_t pid;
    rtcat_grant grant;
} rtcat_login;

static void rtcat_login_resolved(rtmd_request *req, int64_t pid, int64_t uid, const rtcat_grant *g)
{
    rtmd_project *p = rtmd_server_project(req->srv, pid);
    if (req->conn->closing) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "connection closed");
        return;
    }
    if (users_session(req->conn)) {
        request_error(req, RTM_EC_DUPLICATED_AUTH, "auth already");
        return;
    }
    /* The token may have gone while the uid was looked up. */
    rtcat_grant now;
    int r = rtcat_token_check(req->srv, pid, g->token, strlen(g->token), &now);
    if (r != RTCAT_TOKEN_OK) {
        answer_refused(req, r == RTCAT_TOKEN_EXPIRED ? "expired" : "invalid");
        return;
    }
    login_finish(req, p, uid, now.token, strlen(now.token), NULL, 0, &now);
}

static void rtcat_login_done(void *arg, int status, int64_t uid)
{
    rtcat_login *l = arg;
    if (status != 0)
        request_error(l->req, RTM_EC_UNKNOWN_ERROR, "storage error");
    else
        rtcat_login_resolved(l->req, l->pid, uid, &l->grant);
    free(l);
}

static void rtcat_login_check(rtmd_request *req, rtmd_project *p, const char *token, size_t len, bool may_fetch);

/* client: auth {appid or pid, rtcat_token: token uuid, version?} -> {ok:
 * true, uid, session, type} or {ok: false, reason: "invalid" | "expired"};
 * 200060 when the project has no RealTimeCat API. The token's uuid is the
 * session's string id (resolved without blocking the loop). */
static void auth_rtcat(rtmd_request *req, const msgpack_object *token)
{
    rtmd_server *srv = req->srv;
    const char *appid;
    size_t appid_len;
    int64_t pid;
    rtmd_project *p = NULL;
    if (mp_get_str(req->args, "appid", &appid, &appid_len))
        p = project_by_app_id(srv, appid, appid_len);
    else if (mp_get_int64(req->args, "pid", &pid))
        p = rtmd_server_project(srv, pid);
    if (!p) {
        request_error(req, RTM_EC_INVALID_PID_OR_UID, "invalid appid or pid");
        return;
    }
    if (!rtcat_enabled(p)) {
        request_error(req, RTM_EC_NO_CONFIG_IN_CONSOLE, "RealTimeCat tokens need the project's rtcat_apikey");
        return;
    }
    if (token->type != MSGPACK_OBJECT_STR) {
        answer_refused(req, "invalid");
        return;
    }
    rtcat_login_check(req, p, token->via.str.ptr, token->via.str.size, true);
}

/* A token login waiting for its token's session from the store. */
typedef struct rtcat_fetch {
    rtmd_request *req;
    int64_t pid;
    char token[RTCAT_UUID_LEN + 1];
} rtcat_fetch;

static void rtcat_fetched(void *arg)
{
    rtcat_fetch *f = arg;
    rtmd_project *p = rtmd_server_project(f->req->srv, f->pid);
    if (f->req->conn->closing || !p)
        request_error(f->req, RTM_EC_UNKNOWN_ERROR, "connection closed");
    else
        rtcat_login_check(f->req, p, f->token, strlen(f->token), false);
    free(f);
}

/* Checks the token and logs in. A token this node does not hold may be
 * one another node has just made: with may_fetch, its session is read
 * from the store (rtcat_token_fetch) and the token checked again. */
static void rtcat_login_check(rtmd_request *req, rtmd_project *p, const char *token, size_t len, bool may_fetch)
{
    rtmd_server *srv = req->srv;
    rtcat_login *l = calloc(1, sizeof *l);
    if (!l) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    int r = rtcat_token_check(srv, p->pid, token, len, &l->grant);
    if (r == RTCAT_TOKEN_INVALID && may_fetch && len == RTCAT_UUID_LEN) {
        rtcat_fetch *f = calloc(1, sizeof *f);
        if (f) {
            f->req = req;
            f->pid = p->pid;
            memcpy(f->token, token, len);
            if (rtcat_token_fetch(srv, p->pid, token, len, rtcat_fetched, f) == 0) {
                free(l);
                return;
            }
            free(f);
        }
    }
    if (r != RTCAT_TOKEN_OK) {
        free(l);
        answer_refused(req, r == RTCAT_TOKEN_EXPIRED ? "expired" : "invalid");
        return;
    }
    l->req = req;
    l->pid = p->pid;
    int64_t uid;
    int rc = identity_resolve(identity_of(srv), p->pid, l->grant.token, strlen(l->grant.token), &uid,
                              rtcat_login_done, l);
    if (rc == 0)
        return;
    if (rc == 1)
        rtcat_login_resolved(req, p->pid, uid, &l->grant);
    else
        request_error(req, RTM_EC_UNKNOWN_ERROR, "cannot resolve the uid");
    free(l);
}

/* A number-id login waiting for its token's row (PostgreSQL). */
typedef struct token_login {
    rtmd_request *req;
    int64_t pid, uid;
    int64_t now;
    char token[TOKEN_HEX + 1];
    bool found;           /* a live row of the token, owned by uid */
} token_login;

static int read_token(db_conn *db, void *arg)
{
    token_login *l = arg;
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT uid, expires_at FROM tokens WHERE pid = ?1 AND token = ?2", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, l->pid);
    db_bind_text(st, 2, l->token, TOKEN_HEX);
    bool row = false;
    rc = db_step_row(st, &row);
    if (rc == DB_OK && row) {
        l->found = db_column_int64(st, 0) == l->uid && db_column_int64(st, 1) > l->now;
    }
    db_release(st);
    return rc;
}

static void token_read_done(void *arg, int status)
{
    token_login *l = arg;
    rtmd_request *req = l->req;
    rtmd_server *srv = req->srv;
    rtmd_project *p = rtmd_server_project(srv, l->pid);
    bool found = l->found;
    int64_t uid = l->uid;
    free(l);
    if (status != DB_OK) {
        LOG_ERROR("auth: reading a token of uid %lld failed: %s", (long long)uid, db_errstr(status));
        module_answer_store_failure(req, status);
    } else if (req->conn->closing) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "connection closed");
    } else if (users_session(req->conn)) {
        request_error(req, RTM_EC_DUPLICATED_AUTH, "auth already");
    } else if (bans_blacklisted(srv, p->pid, uid)) { /* banned while the row was read */
        request_error(req, RTM_EC_AUTH_DENIED, "auth denied");
    } else if (!found) {
        request_answer_bool(req, "ok", false);
    } else {
        login_finish(req, p, uid, NULL, 0, NULL, 0, NULL);
    }
}

/* PostgreSQL: answers a login by the token's row in the store. */
static void auth_token_read(rtmd_request *req, int64_t pid, int64_t uid, const char *token, size_t token_len)
{
    if (token_len != TOKEN_HEX) { /* no token minted has another length */
        request_answer_bool(req, "ok", false);
        return;
    }
    token_login *l = calloc(1, sizeof *l);
    if (!l) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    *l = (token_login){.req = req, .pid = pid, .uid = uid, .now = clock_unix_seconds()};
    memcpy(l->token, token, TOKEN_HEX);
    if (store_read(req->srv->store, read_token, token_read_done, l) != 0) {
        free(l);
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    }
}

/* client: auth {pid, uid, token, version, attrs?, lang?} -> {ok} */
static void method_auth(rtmd_request *req)
{
    rtmd_server *srv = req->srv;
    rtmd_conn *c = req->conn;
    if (users_session(c)) {
        request_error(req, RTM_EC_DUPLICATED_AUTH, "auth already");
        return;
    }
    int64_t pid, uid;
    const char *token;
    size_t token_len;
    const msgpack_object *rt = mp_map_get(req->args, "rtcat_token");
    if (rt && rt->type != MSGPACK_OBJECT_NIL) {
        auth_rtcat(req, rt);
        return;
    }
    const msgpack_object *u = mp_map_get(req->args, "uid");
    if (u && u->type == MSGPACK_OBJECT_STR) {
        auth_string(req, u->via.str.ptr, u->via.str.size);
        return;
    }
    if (!mp_get_int64(req->args, "pid", &pid) || !mp_get_int64(req->args, "uid", &uid)) {
        request_error(req, RTM_EC_INVALID_PID_OR_UID, "invalid pid or uid");
        return;
    }
    rtmd_project *p = rtmd_server_project(srv, pid);
    if (!p) {
        request_error(req, RTM_EC_INVALID_PID_OR_UID, "invalid pid or uid");
        return;
    }
    if (!number_uid(req, uid))
        return;
    if (bans_blacklisted(srv, pid, uid)) {
        request_error(req, RTM_EC_AUTH_DENIED, "auth denied");
        return;
    }
    if (!mp_get_str(req->args, "token", &token, &token_len)) {
        request_answer_bool(req, "ok", false);
        return;
    }
    if (store_is_postgres(srv->store)) {
        auth_token_read(req, pid, uid, token, token_len);
        return;
    }
    token_rec *t = token_find(state(srv), pid, token, token_len);
    if (t && t->expires_at <= clock_unix_seconds()) {
        token_unindex(state(srv), t);
        free(t);
        t = NULL;
    }
    if (!t || t->uid != uid) {
        request_answer_bool(req, "ok", false);
        return;
    }
    login_finish(req, p, uid, NULL, 0, NULL, 0, NULL);
}

/* A session ended: the project has one authenticated connection less
 * (also a removed project, whose slot keeps the count if it comes back). */
static void on_session_end(rtmd_server *srv, const rtmd_event *ev)
{
    rtmd_project *p = rtmd_server_project_slot(srv, ev->pid);
    if (p && p->nsessions > 0)
        p->nsessions--;
}

/* client: addattrs {attrs: {string: string}} -> {}; all pairs or none,
 * within the project's limits (see session_attrs_check). */
static void method_addattrs(rtmd_request *req)
{
    const msgpack_object *attrs;
    if (!get_session_attrs(req, req->project, users_session(req->conn), false, &attrs))
        return;
    if (session_attrs_set(users_session(req->conn), attrs) != 0) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    request_answer_empty(req);
}

/* client: getattrs {} -> {attrs: [{ce, login, my, ...}]}, one map per
 * connection of the calling user; my is "1" for the calling connection. */
/* ---- getattrs and kickout {ce} across nodes ----
 * In a cluster, getattrs also lists the user's sessions on the other nodes
 * holding the user (cluster_nodes_of): it sends each an ask
 * (CLUSTER_REC_ATTRS_ASK [pid, uid, ask id, this node]), each answers with
 * its sessions (CLUSTER_REC_ATTRS_ANSWER [ask id, its node, [[conn id,
 * login ms, {attrs}], ...]], at most max_packet bytes), and the request is
 * answered when every node asked did, or at the first token tick
 * ATTRS_WAIT_MS after the ask (a lost record, a node gone). A session on
 * another node has the ce "<node>:<conn id>"; kickout {ce} of one sends
 * CLUSTER_REC_CE_KICK [pid, uid, conn id] to that node, which ends that
 * connection when it is a session of the user. */
#define ATTRS_WAIT_MS 1000
#define ATTRS_ASKS_MAX 256    /* getattrs waiting at once; then this node's sessions only */
#define ATTRS_NODES_MAX 16    /* other nodes asked per getattrs */
#define ATTRS_REMOTE_MAX 1024 /* sessions listed from the other nodes */
#define ATTRS_ASK_RECORD_MAX 128

typedef struct attrs_ask {
    struct attrs_ask *next;
    uint64_t id, asked_ms;
    rtmd_request *req;
    unsigned waiting; /* nodes yet to answer */
    char nodes[ATTRS_NODES_MAX][RTMD_NODE_ID_MAX]; /* "" once answered */
    msgpack_sbuffer remote; /* the other nodes' sessions, as answer maps */
    uint32_t nremote;
} attrs_ask;

/* This node's sessions of the user, as getattrs lists them. */
static void pack_local_sessions(msgpack_packer *pk, const rtmd_user *u, const rtmd_conn *me)
{
    for (const rtmd_session *s = u ? u->sessions : NULL; s; s = s->next) {
        char ce[32], login[32];
        snprintf(ce, sizeof ce, "%llu", (unsigned long long)s->conn->id);
        snprintf(login, sizeof login, "%llu", (unsigned long long)(s->login_ms / 1000u));
        msgpack_pack_map(pk, 3 + s->nattrs);
        mp_pack_kv_str(pk, "ce", ce);
        mp_pack_kv_str(pk, "login", login);
        mp_pack_kv_str(pk, "my", s->conn == me ? "1" : "0");
        for (unsigned i = 0; i < s->nattrs; i++) {
            mp_pack_cstr(pk, s->attrs[i].key);
            msgpack_pack_str(pk, s->attrs[i].value_len);
            msgpack_pack_str_body(pk, s->attrs[i].value, s->attrs[i].value_len);
        }
    }
}

/* Answers getattrs: this node's sessions (read now), then the others'. */
static void attrs_answer(rtmd_request *req, const attrs_ask *q)
{
    const rtmd_user *u = users_get(req->srv, req->project->pid, req->uid);
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    mp_pack_cstr(&pk, "attrs");
    msgpack_pack_array(&pk, (u ? u->nsessions : 0) + (q ? q->nremote : 0));
    pack_local_sessions(&pk, u, req->conn);
    if (q && q->remote.size)
        msgpack_sbuffer_write(&body, q->remote.data, q->remote.size);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
}

static void attrs_ask_done(struct auth_state *a, attrs_ask *q)
{
    for (attrs_ask **pp = &a->asks; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            a->nasks--;
            break;
        }
    attrs_answer(q->req, q);
    msgpack_sbuffer_destroy(&q->remote);
    free(q);
}

/* The token tick: answers the asks older than ATTRS_WAIT_MS (all: stop). */
static void attrs_expire(struct auth_state *a, bool all)
{
    uint64_t now = uv_now(a->srv->loop);
    attrs_ask *q = a->asks;
    while (q) {
        attrs_ask *next = q->next;
        if (all || now - q->asked_ms >= ATTRS_WAIT_MS)
            attrs_ask_done(a, q);
        q = next;
    }
}

/* Sends the asks; false when no other node is asked (answer from here). */
static bool attrs_ask_nodes(rtmd_request *req)
{
    rtmd_server *srv = req->srv;
    struct auth_state *a = state(srv);
    const char *me = cluster_node_id(srv);
    size_t idx[ATTRS_NODES_MAX];
    size_t n = 0;
    if (cluster_enabled(srv) && me && a->nasks < ATTRS_ASKS_MAX)
        n = cluster_nodes_of(srv, req->project->pid, req->uid, idx, ATTRS_NODES_MAX);
    if (n == 0)
        return false;
    attrs_ask *q = calloc(1, sizeof *q);
    if (!q)
        return false;
    q->id = ++a->last_ask;
    q->asked_ms = uv_now(srv->loop);
    q->req = req;
    msgpack_sbuffer_init(&q->remote);
    msgpack_sbuffer rec;
    msgpack_sbuffer_init(&rec);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &rec, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int64(&pk, req->project->pid);
    msgpack_pack_int64(&pk, req->uid);
    msgpack_pack_uint64(&pk, q->id);
    mp_pack_cstr(&pk, me);
    for (size_t i = 0; i < n; i++) {
        const char *node = cluster_node_at(srv, idx[i]);
        if (node && strlen(node) < RTMD_NODE_ID_MAX &&
            cluster_send(srv, node, CLUSTER_REC_ATTRS_ASK, rec.data, rec.size) == 0)
            strcpy(q->nodes[q->waiting++], node);
    }
    msgpack_sbuffer_destroy(&rec);
    if (q->waiting == 0) {
        msgpack_sbuffer_destroy(&q->remote);
        free(q);
        return false;
    }
    q->next = a->asks;
    a->asks = q;
    a->nasks++;
    return true;
}

/* A node id of a record: id characters (cluster.c), copied NUL-terminated. */
static bool record_node(const msgpack_object *o, char out[RTMD_NODE_ID_MAX])
{
    const char *p;
    size_t n;
    if (!mp_obj_str(o, &p, &n) || n == 0 || n >= RTMD_NODE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') ||
              p[i] == '_' || p[i] == '-'))
            return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* Another node asks for this node's sessions of a user. */
static void on_attrs_ask(rtmd_server *srv, const uint8_t *data, size_t len)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return;
    int64_t pid, uid, id;
    char from[RTMD_NODE_ID_MAX];
    const msgpack_object *f = cluster_record_fields(&zone, data, len, ATTRS_ASK_RECORD_MAX, 4);
    bool ok = f && cluster_record_int(&f[0], 0, INT64_MAX, &pid) && cluster_record_int(&f[1], INT64_MIN, INT64_MAX, &uid) &&
              cluster_record_int(&f[2], 1, INT64_MAX, &id) && record_node(&f[3], from);
    msgpack_zone_destroy(&zone);
    const char *me = cluster_node_id(srv);
    if (!ok || !me) {
        if (!ok)
            LOG_WARN("auth: a malformed getattrs ask from another node was dropped");
        return;
    }
    const rtmd_user *u = users_get(srv, pid, uid);
    msgpack_sbuffer rec;
    msgpack_sbuffer_init(&rec);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &rec, msgpack_sbuffer_write);
    /* At most max_packet bytes of sessions: more would not fit the answer. */
    size_t budget = srv->cfg.max_packet, used = 0;
    uint32_t n = 0;
    for (const rtmd_session *s = u ? u->sessions : NULL; s && n < ATTRS_REMOTE_MAX; s = s->next, n++) {
        used += 64 + s->attrs_bytes + 16u * s->nattrs;
        if (used > budget)
            break;
    }
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, (uint64_t)id);
    mp_pack_cstr(&pk, me);
    msgpack_pack_array(&pk, n);
    const rtmd_session *s = u ? u->sessions : NULL;
    for (uint32_t i = 0; i < n; i++, s = s->next) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, s->conn->id);
        msgpack_pack_uint64(&pk, s->login_ms);
        msgpack_pack_map(&pk, s->nattrs);
        for (unsigned k = 0; k < s->nattrs; k++) {
            mp_pack_cstr(&pk, s->attrs[k].key);
            msgpack_pack_str(&pk, s->attrs[k].value_len);
            msgpack_pack_str_body(&pk, s->attrs[k].value, s->attrs[k].value_len);
        }
    }
    cluster_send(srv, from, CLUSTER_REC_ATTRS_ANSWER, rec.data, rec.size);
    msgpack_sbuffer_destroy(&rec);
}

/* One session of an answer, [conn id, login ms, {str: str}], appended to
 * q->remote as a getattrs map; false when malformed. */
static bool attrs_take_session(attrs_ask *q, const char *node, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
        return false;
    const msgpack_object *e = o->via.array.ptr;
    if (e[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || e[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        e[2].type != MSGPACK_OBJECT_MAP)
        return false;
    const msgpack_object_map *m = &e[2].via.map;
    const char *p;
    size_t n;
    for (uint32_t i = 0; i < m->size; i++)
        if (!mp_obj_str(&m->ptr[i].key, &p, &n) || !mp_obj_str(&m->ptr[i].val, &p, &n))
            return false;
    char ce[RTMD_NODE_ID_MAX + 24], login[32];
    snprintf(ce, sizeof ce, "%s:%llu", node, (unsigned long long)e[0].via.u64);
    snprintf(login, sizeof login, "%llu", (unsigned long long)(e[1].via.u64 / 1000u));
    msgpack_packer pk;
    msgpack_packer_init(&pk, &q->remote, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + m->size);
    mp_pack_kv_str(&pk, "ce", ce);
    mp_pack_kv_str(&pk, "login", login);
    mp_pack_kv_str(&pk, "my", "0");
    for (uint32_t i = 0; i < m->size; i++)
        for (int kv = 0; kv < 2; kv++) {
            mp_obj_str(kv ? &m->ptr[i].val : &m->ptr[i].key, &p, &n);
            msgpack_pack_str(&pk, n);
            msgpack_pack_str_body(&pk, p, n);
        }
    q->nremote++;
    return true;
}

/* A node's answer to one of this node's asks. */
static void on_attrs_answer(rtmd_server *srv, const uint8_t *data, size_t len)
{
    struct auth_state *a = state(srv);
    msgpack_zone zone;
    if (!a || !msgpack_zone_init(&zone, 4096))
        return;
    int64_t id;
    char node[RTMD_NODE_ID_MAX];
    const msgpack_object *f = cluster_record_fields(&zone, data, len, (size_t)srv->cfg.max_packet + 4096, 3);
    bool ok = f && cluster_record_int(&f[0], 1, INT64_MAX, &id) && record_node(&f[1], node) &&
              f[2].type == MSGPACK_OBJECT_ARRAY && f[2].via.array.size <= ATTRS_REMOTE_MAX;
    attrs_ask *q = a->asks;
    while (ok && q && q->id != (uint64_t)id)
        q = q->next;
    unsigned slot = ATTRS_NODES_MAX;
    for (unsigned i = 0; ok && q && i < ATTRS_NODES_MAX; i++)
        if (strcmp(q->nodes[i], node) == 0)
            slot = i;
    if (ok && q && slot < ATTRS_NODES_MAX) { /* an ask of ours, that node's first answer */
        q->nodes[slot][0] = '\0';
        size_t before = q->remote.size;
        uint32_t nbefore = q->nremote;
        for (uint32_t i = 0; ok && i < f[2].via.array.size && q->nremote < ATTRS_REMOTE_MAX; i++)
            ok = attrs_take_session(q, node, &f[2].via.array.ptr[i]);
        if (!ok) { /* all of that node's sessions or none */
            q->remote.size = before;
            q->nremote = nbefore;
        }
        if (--q->waiting == 0)
            attrs_ask_done(a, q);
    }
    msgpack_zone_destroy(&zone);
    if (!ok)
        LOG_WARN("auth: a malformed getattrs answer from another node was dropped");
}

/* Ends this node's connection conn_id when it is a session of (pid, uid). */
static void kick_conn(rtmd_server *srv, int64_t pid, int64_t uid, uint64_t conn_id, const rtmd_conn *except)
{
    const rtmd_user *u = users_get(srv, pid, uid);
    for (const rtmd_session *s = u ? u->sessions : NULL; s; s = s->next) {
        if (s->conn->id == conn_id && s->conn != except) {
            rtmd_conn *victim = s->conn;
            users_logout(victim);
            conn_close_after_flush(victim);
            return;
        }
    }
}

static void on_ce_kick(rtmd_server *srv, const uint8_t *data, size_t len)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return;
    int64_t pid, uid, id;
    const msgpack_object *f = cluster_record_fields(&zone, data, len, ATTRS_ASK_RECORD_MAX, 3);
    bool ok = f && cluster_record_int(&f[0], 0, INT64_MAX, &pid) && cluster_record_int(&f[1], INT64_MIN, INT64_MAX, &uid) &&
              cluster_record_int(&f[2], 0, INT64_MAX, &id);
    msgpack_zone_destroy(&zone);
    if (!ok) {
        LOG_WARN("auth: a malformed kickout record from another node was dropped");
        return;
    }
    kick_conn(srv, pid, uid, (uint64_t)id, NULL);
}

/* client gate: getattrs -> {attrs: [{ce, login, my, ...attrs}]}, the
 * user's sessions on every node (above). */
static void method_getattrs(rtmd_request *req)
{
    if (!attrs_ask_nodes(req))
        attrs_answer(req, NULL);
}

/* kickout {ce} of the user's session on node (ignored for a node not live). */
static void kickout_other_node(rtmd_request *req, const char *node, uint64_t id)
{
    if (!cluster_enabled(req->srv) || id > INT64_MAX)
        return;
    msgpack_sbuffer rec;
    msgpack_sbuffer_init(&rec);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &rec, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int64(&pk, req->project->pid);
    msgpack_pack_int64(&pk, req->uid);
    msgpack_pack_uint64(&pk, id);
    cluster_send(req->srv, node, CLUSTER_REC_CE_KICK, rec.data, rec.size);
    msgpack_sbuffer_destroy(&rec);
}

static void method_kickout(rtmd_request *req)
{
    if (req->gate == GATE_SERVER_TCP) {
        int64_t uid;
        if (!req_arg_int64(req, "uid", &uid))
            return;
        users_kickout(req->srv, req->project->pid, uid, NULL);
        request_answer_empty(req);
        return;
    }
    const msgpack_object *ce = mp_map_get(req->args, "ce");
    uint64_t id = 0;
    if (ce && (ce->type == MSGPACK_OBJECT_STR || ce->type == MSGPACK_OBJECT_BIN)) {
        char text[RTMD_NODE_ID_MAX + 24];
        size_t n = ce->via.str.size < sizeof text - 1 ? ce->via.str.size : sizeof text - 1;
        memcpy(text, ce->via.str.ptr, n);
        text[n] = '\0';
        char *colon = strchr(text, ':');
        const char *me = cluster_node_id(req->srv);
        if (colon) { /* "<node>:<conn id>", a session on another node (getattrs) */
            *colon = '\0';
            id = strtoull(colon + 1, NULL, 10);
            if (!me || strcmp(text, me) != 0) {
                kickout_other_node(req, text, id);
                request_answer_empty(req);
                return;
            }
        } else {
            id = strtoull(text, NULL, 10);
        }
    } else if (ce && ce->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        id = ce->via.u64;
    } else {
        req_arg_error(req, "ce");
        return;
    }
    kick_conn(req->srv, req->project->pid, req->uid, id, req->conn);
    request_answer_empty(req);
}

/* both gates: getonlineusers {uids} -> {uids}: the online ones, at most 200 asked */
static void method_getonlineusers(rtmd_request *req)
{
    const msgpack_object *uids = mp_map_get(req->args, "uids");
    if (!uids || uids->type != MSGPACK_OBJECT_ARRAY) {
        req_arg_error(req, "uids");
        return;
    }
    if (uids->via.array.size > ONLINE_QUERY_MAX) {
        request_error(req, RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS, "at most 200 uids");
        return;
    }
    int64_t online[ONLINE_QUERY_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < uids->via.array.size; i++) {
        int64_t uid;
        if (mp_obj_int64(&uids->via.array.ptr[i], &uid) && cluster_online(req->srv, req->project->pid, uid))
            online[n++] = uid;
    }
    request_answer_ids(req, "uids", online, n);
}

/* ---- token expiry ---- */

static void on_token_tick(uv_timer_t *t)
{
    struct auth_state *a = t->data;
    rtmd_server *srv = a->srv;
    if (rtmd_timer_end_on_stop(srv, t, &a->timer_closed)) {
        attrs_expire(a, true);
        return;
    }
    attrs_expire(a, false);
    int64_t now = clock_unix_seconds();
    uint32_t interval = srv->cfg.retention_interval;
    size_t slice = a->by_token.cap / interval + 1;
    token_match expired = {0, 0, now};
    if (a->by_token.cap > 0 && tokens_remove(a, &expired, a->sweep_slot, a->sweep_slot + slice) != 0)
        return; /* out of memory: the next tick tries again */
    a->sweep_slot += slice;
    if (a->sweep_slot >= a->by_token.cap)
        a->sweep_slot = 0;
    uint64_t now_ms = uv_now(srv->loop);
    if (srv->store && now_ms - a->last_purge_ms >= (uint64_t)interval * 1000u) {
        a->last_purge_ms = now_ms;
        module_purge_expired(srv, "DELETE FROM tokens WHERE expires_at <= ?1", "tokens");
    }
}

static void auth_metrics(const rtmd_server *srv, prom_out *out)
{
    prom_metric(out, "rtmd_tokens", "gauge", "Login tokens minted and not yet expired, removed or swept.",
                srv->svc->auth ? srv->svc->auth->ntokens : 0);
    const struct auth_state *a = srv->svc->auth;
    if (!a)
        return;
    prom_text(out, "# HELP rtmd_rts_logins_total String-id logins that gave a businessid, per business id (the "
                   "first %d ids; the rest under \"other\").\n# TYPE rtmd_rts_logins_total counter\n",
              AUTH_BUSINESS_LABELS_MAX);
    for (size_t i = 0; i < a->nbusiness; i++)
        business_sample(out, a->business[i].id, a->business[i].logins);
    business_sample(out, "other", a->business_other);
}

/* ---- module life cycle ---- */

static int auth_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct auth_state *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->srv = srv;
    srv->svc->auth = a;
    uv_timer_init(srv->loop, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, on_token_tick, 1000, 1000);
    a->last_purge_ms = uv_now(srv->loop);
    token_load l = {a, clock_unix_seconds(), 0};
    if (module_load(srv, load_tokens, &l) != DB_OK) {
        snprintf(err, errlen, "cannot load tokens from the store");
        return -1;
    }
    LOG_INFO("auth: %zu live tokens loaded", l.count);
    cluster_on_record(srv, CLUSTER_REC_ATTRS_ASK, on_attrs_ask);
    cluster_on_record(srv, CLUSTER_REC_ATTRS_ANSWER, on_attrs_answer);
    cluster_on_record(srv, CLUSTER_REC_CE_KICK, on_ce_kick);
    return 0;
}

static const rtmd_method auth_methods[] = {
    {"auth", GATES_CLIENT, method_auth, RTMD_M_OPEN | RTMD_M_LOGIN},
    {"gettoken", GATES_SERVER, method_gettoken, 0},
    {"removetoken", GATES_SERVER, method_removetoken, 0},
    {"kickout", GATES_SERVER | GATES_CLIENT, method_kickout, 0},
    {"getonlineusers", GATES_SERVER | GATES_CLIENT, method_getonlineusers, 0},
    {"addattrs", GATES_CLIENT, method_addattrs, 0},
    {"getattrs", GATES_CLIENT, method_getattrs, 0},
};

static void auth_free(rtmd_server *srv)
{
    struct auth_state *a = srv->svc->auth;
    if (!a)
        return;
    for (size_t i = 0; i < a->by_token.cap; i++) {
        token_rec *t = a->by_token.slots[i].value;
        while (t) {
            token_rec *next = t->next_same_key;
            free(t);
            t = next;
        }
    }
    pairmap_free(&a->by_token);
    attrs_expire(a, true);
    srv->svc->auth = NULL;
    if (rtmd_timer_release(&a->timer, a->timer_closed))
        free(a);
}

static const rtmd_observer auth_observers[] = {
    {RTMD_EV_SESSION_END, on_session_end},
};

const rtmd_module auth_module = {
    .name = "auth",
    .init = auth_init,
    .free = auth_free,
    .metrics = auth_metrics,
    RTMD_MODULE_METHODS(auth_methods),
    RTMD_MODULE_OBSERVERS(auth_observers),
};
