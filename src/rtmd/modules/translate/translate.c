/* Users' languages and translation (see translate.h).
 *
 *   setlang   client {lang} -> {}: the caller's language, "" clears it.
 *             Stored in user_langs (through the writer) and set on the
 *             user's sessions on this node once committed.
 *   translate both gates {text, dst, src?, type?, profanity?,
 *             postProfanity?, uid (server)} -> {source, target,
 *             sourceText, targetText}: POSTs {q, source, target, format,
 *             api_key?} to <translate_url>/translate of the project (a
 *             server speaking the LibreTranslate HTTP API) through
 *             outbound.c and answers from its {translatedText,
 *             detectedLanguage}. type, profanity and postProfanity are
 *             checked and not applied (docs/rtm-methods.md). Without a
 *             translate_url: 200060.
 *
 * The backend's answer is hostile like any peer's: bounded by outbound.c
 * (64 KiB), parsed as JSON, translatedText required to be a UTF-8 string,
 * the detected language checked like a client's. Its failures have codes
 * of their own (rtm_errors.h, 200095-200097).
 *
 * A user's language is stored (user_langs) and, while the user is online,
 * kept on its sessions, where messages.c reads it at push time: a change
 * is set on the sessions here and sent to the nodes that hold other
 * sessions of the user (CLUSTER_REC_LANG); a login without a language
 * reads it from the store.
 *
 * State: per project the one-entry allowlist of its translate URL (built
 * at start; a bad URL stops rtmd) and the requests in flight (cancelled
 * and answered at exit); one LRU cache of answers for every project
 * (translate_cache.h), keyed by (project, src, dst, text), bounded by
 * entries and bytes. */
#include "translate.h"

#include "translate_cache.h"
#include "cluster.h"
#include "hash.h"
#include "log.h"
#include "methods.h"
#include "module.h"
#include "outbound.h"
#include "payload.h"
#include "rtm_errors.h"
#include "store.h"
#include "utf8.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- languages ---- */

bool translate_lang_valid(const char *s, size_t len)
{
    if (len == 0 || len > TRANSLATE_MAX_LANG)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        if (!letter && (i == 0 || (!digit && c != '-')))
            return false;
    }
    return true;
}

/* ---- state ---- */

typedef struct pending pending;

typedef struct project_backend {
    outbound_allowlist *allow; /* the one URL, NULL when off */
    char *url;                 /* <translate_url>/translate */
} project_backend;

struct translate_state {
    project_backend *projects; /* parallel to srv->projects' slots */
    size_t nprojects;
    translate_cache *cache;
    pending *pending;          /* requests waiting for a backend */
    uint64_t requests, failures, joined, hits;
};

static struct translate_state *state(rtmd_server *srv)
{
    return srv->svc->translate;
}

/* The key of (src, dst, text) for the cache and the requests in flight:
 * src NUL dst NUL text (malloc'd), or NULL. */
static char *cache_key(const char *src, size_t src_len, const char *dst, size_t dst_len, const char *text,
                       size_t text_len, size_t *len)
{
    *len = src_len + 1 + dst_len + 1 + text_len;
    char *k = malloc(*len);
    if (!k)
        return NULL;
    memcpy(k, src, src_len);
    k[src_len] = '\0';
    memcpy(k + src_len + 1, dst, dst_len);
    k[src_len + 1 + dst_len] = '\0';
    memcpy(k + src_len + dst_len + 2, text, text_len);
    return k;
}

/* ---- setlang ---- */

typedef struct lang_job {
    rtmd_server *srv;
    rtmd_request *req; /* setlang's; NULL for a login's lang or a login's read */
    int64_t pid, uid;
    uint64_t conn_id;  /* a login's read: the session that waits for it */
    char lang[TRANSLATE_MAX_LANG + 1];
    bool found;
} lang_job;

/* Sets lang on the user's sessions on this node. */
static void set_sessions_lang(rtmd_server *srv, int64_t pid, int64_t uid, const char *lang)
{
    rtmd_user *u = users_get(srv, pid, uid);
    for (rtmd_session *s = u ? u->sessions : NULL; s; s = s->next)
        snprintf(s->lang, sizeof s->lang, "%s", lang);
}

static int apply_lang(db_conn *db, void *arg)
{
    lang_job *j = arg;
    db_stmt_t *st;
    int rc = j->lang[0]
                 ? db_stmt(db,
                           "INSERT INTO user_langs(pid, uid, lang) VALUES (?1, ?2, ?3)"
                           " ON CONFLICT(pid, uid) DO UPDATE SET lang = excluded.lang",
                           &st)
                 : db_stmt(db, "DELETE FROM user_langs WHERE pid = ?1 AND uid = ?2", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, j->uid);
    if (j->lang[0])
        db_bind_text(st, 3, j->lang, (int)strlen(j->lang));
    return db_step_release(st);
}

/* Tells the other nodes holding the user's sessions its new language:
 * [pid, uid, lang]. */
static void send_lang_record(rtmd_server *srv, int64_t pid, int64_t uid, const char *lang)
{
    if (!cluster_enabled(srv))
        return;
    size_t idx[64];
    size_t n = cluster_nodes_of(srv, pid, uid, idx, sizeof idx / sizeof idx[0]);
    if (n == 0)
        return;
    msgpack_sbuffer rec;
    msgpack_sbuffer_init(&rec);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &rec, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int64(&pk, pid);
    msgpack_pack_int64(&pk, uid);
    mp_pack_cstr(&pk, lang);
    for (size_t i = 0; i < n; i++) {
        const char *node = cluster_node_at(srv, idx[i]);
        if (node)
            cluster_send(srv, node, CLUSTER_REC_LANG, rec.data, rec.size);
    }
    msgpack_sbuffer_destroy(&rec);
}

/* A language record from another node (hostile bytes: checked). */
static void on_lang_record(rtmd_server *srv, const uint8_t *data, size_t len)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return;
    int64_t pid, uid;
    const char *lang = NULL;
    size_t lang_len = 0;
    char copy[TRANSLATE_MAX_LANG + 1];
    const msgpack_object *f = cluster_record_fields(&zone, data, len, 256, 3);
    bool ok = f && cluster_record_int(&f[0], 1, INT64_MAX, &pid) && rtmd_server_project(srv, pid) &&
              cluster_record_int(&f[1], INT64_MIN, INT64_MAX, &uid) && f[2].type == MSGPACK_OBJECT_STR &&
              mp_obj_str(&f[2], &lang, &lang_len) && (lang_len == 0 || translate_lang_valid(lang, lang_len));
    if (ok) {
        memcpy(copy, lang, lang_len);
        copy[lang_len] = '\0';
    }
    msgpack_zone_destroy(&zone);
    if (!ok) {
        LOG_WARN("translate: a malformed language record from another node was dropped");
        return;
    }
    set_sessions_lang(srv, pid, uid, copy);
}

static void lang_written(void *arg, int status)
{
    lang_job *j = arg;
    if (status != DB_OK) {
        if (status != DB_ABORT)
            LOG_ERROR("translate: storing the language of user %lld failed: %s", (long long)j->uid,
                      db_errstr(status));
        if (j->req)
            module_answer_store_failure(j->req, status);
        free(j);
        return;
    }
    set_sessions_lang(j->srv, j->pid, j->uid, j->lang);
    send_lang_record(j->srv, j->pid, j->uid, j->lang);
    if (j->req)
        request_answer_empty(j->req);
    free(j);
}

static lang_job *lang_job_new(rtmd_server *srv, int64_t pid, int64_t uid, const char *lang, size_t len)
{
    lang_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->srv = srv;
    j->pid = pid;
    j->uid = uid;
    memcpy(j->lang, lang, len);
    j->lang[len] = '\0';
    return j;
}

/* client: setlang {lang} -> {} */
static void method_setlang(rtmd_request *req)
{
    const msgpack_object *o = mp_map_get(req->args, "lang");
    const char *lang;
    size_t len;
    if (!o || !mp_obj_str(o, &lang, &len)) {
        req_arg_error(req, "lang");
        return;
    }
    if (len && !translate_lang_valid(lang, len)) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT,
                      "invalid 'lang': up to 15 letters, digits and '-', starting with a letter (e.g. en, zh-CHS)");
        return;
    }
    lang_job *j = lang_job_new(req->srv, req->project->pid, req->uid, lang, len);
    if (!j) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    j->req = req;
    if (store_submit(req->srv->store, apply_lang, lang_written, j) != 0) {
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
        free(j);
    }
}

/* ---- a login's language ---- */

static int read_lang(db_conn *db, void *arg)
{
    lang_job *j = arg;
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT lang FROM user_langs WHERE pid = ?1 AND uid = ?2", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, j->pid);
    db_bind_int64(st, 2, j->uid);
    bool row = false;
    rc = db_step_row(st, &row);
    if (rc == DB_OK && row) {
        const char *v = db_column_text(st, 0);
        /* what another build or an operator wrote is checked again */
        if (v && translate_lang_valid(v, strlen(v))) {
            snprintf(j->lang, sizeof j->lang, "%s", v);
            j->found = true;
        }
    }
    db_release(st);
    return rc;
}

static void lang_read(void *arg, int status)
{
    lang_job *j = arg;
    if (status != DB_OK && status != DB_ABORT)
        LOG_WARN("translate: reading the language of user %lld failed: %s", (long long)j->uid, db_errstr(status));
    rtmd_user *u = status == DB_OK && j->found ? users_get(j->srv, j->pid, j->uid) : NULL;
    for (rtmd_session *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->conn->id == j->conn_id && !s->lang[0]) /* a setlang since wins */
            snprintf(s->lang, sizeof s->lang, "%s", j->lang);
    free(j);
}

void translate_session_login(rtmd_server *srv, rtmd_session *s, const char *lang, size_t len)
{
    int64_t pid = s->user->pid, uid = s->user->uid;
    if (lang && len && translate_lang_valid(lang, len)) {
        memcpy(s->lang, lang, len);
        s->lang[len] = '\0';
        lang_job *j = lang_job_new(srv, pid, uid, lang, len);
        if (j && store_submit(srv->store, apply_lang, lang_written, j) != 0)
            free(j);
        return;
    }
    s->lang[0] = '\0';
    for (rtmd_session *o = s->user->sessions; o; o = o->next)
        if (o != s && o->lang[0]) {
            snprintf(s->lang, sizeof s->lang, "%s", o->lang);
            return;
        }
    lang_job *j = lang_job_new(srv, pid, uid, "", 0);
    if (!j)
        return;
    j->conn_id = s->conn->id;
    if (store_read(srv->store, read_lang, lang_read, j) != 0)
        free(j);
}

/* ---- translating ---- */

const char *translate_user_lang(rtmd_server *srv, int64_t pid, int64_t uid)
{
    rtmd_user *u = users_get(srv, pid, uid);
    for (rtmd_session *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->lang[0])
            return s->lang;
    return NULL;
}

static const project_backend *backend_of(rtmd_server *srv, int64_t pid)
{
    struct translate_state *s = state(srv);
    rtmd_project *project = rtmd_server_project(srv, pid);
    size_t i = project ? (size_t)(project - srv->projects) : SIZE_MAX;
    return s && i < s->nprojects && s->projects[i].allow ? &s->projects[i] : NULL;
}

bool translate_on(rtmd_server *srv, int64_t pid)
{
    return backend_of(srv, pid) != NULL;
}

typedef struct waiter {
    translate_done_fn done;
    void *arg;
    struct waiter *next;
} waiter;

/* One request to a backend, and who waits for its answer. */
struct pending {
    rtmd_server *srv;
    int64_t id;        /* outbound's */
    int64_t pid;
    char *key;         /* cache_key's */
    size_t key_len;
    char src[TRANSLATE_MAX_LANG + 1];
    waiter *waiters;
    pending *prev, *next;
};

static void pending_unlink(struct translate_state *s, pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        s->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

/* Tells every waiter of p how it ended and frees p. */
static void pending_finish(pending *p, const translate_result *r)
{
    while (p->waiters) {
        waiter *w = p->waiters;
        p->waiters = w->next;
        w->done(w->arg, r);
        free(w);
    }
    free(p->key);
    free(p);
}

/* Reads the backend's {translatedText, detectedLanguage: {language}}:
 * *text points into root; *detected is "" unless a valid code came. */
static bool parse_reply(json_t *root, const char **text, size_t *len, const char **detected)
{
    json_t *t = json_object_get(root, "translatedText");
    if (!json_is_string(t))
        return false;
    *text = json_string_value(t);
    *len = json_string_length(t);
    if (!rtm_utf8_valid(*text, *len) || memchr(*text, '\0', *len))
        return false;
    *detected = "";
    json_t *d = json_object_get(root, "detectedLanguage");
    json_t *l = json_is_object(d) ? json_object_get(d, "language") : NULL;
    if (json_is_string(l) && translate_lang_valid(json_string_value(l), json_string_length(l)))
        *detected = json_string_value(l);
    return true;
}

static void on_backend_reply(void *arg, const outbound_reply *r)
{
    pending *p = arg;
    struct translate_state *s = state(p->srv);
    pending_unlink(s, p);
    char ex[200];
    translate_result res = {.code = RTM_EC_TRANSLATE_FAILED, .ex = ex};
    json_t *root = NULL;
    if (r->result == OUTBOUND_OK && r->status == 200) {
        json_error_t jerr;
        root = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &jerr);
        const char *detected;
        if (json_is_object(root) && parse_reply(root, &res.text, &res.len, &detected)) {
            res.code = 0;
            res.ex = NULL;
            res.source = p->src[0] ? p->src : detected;
            translate_cache_put(s->cache, p->pid, p->key, p->key_len, res.source, res.text, res.len);
        } else {
            snprintf(ex, sizeof ex, "the translation server's answer is not {translatedText: string, ...}");
        }
    } else if (r->result == OUTBOUND_OK) {
        snprintf(ex, sizeof ex, "the translation server answered HTTP %ld", r->status);
    } else if (r->result == OUTBOUND_TIMEOUT) {
        res.code = RTM_EC_TRANSLATE_TIMEOUT;
        snprintf(ex, sizeof ex, "the translation server did not answer in time");
    } else if (r->result == OUTBOUND_REFUSED || r->result == OUTBOUND_CONNECT_FAILED) {
        res.code = RTM_EC_TRANSLATE_UNREACHABLE;
        snprintf(ex, sizeof ex, "the translation server is unreachable: %s", r->error ? r->error : "");
    } else {
        snprintf(ex, sizeof ex, "the request to the translation server failed: %s", r->error ? r->error : "");
    }
    if (res.code)
        s->failures++;
    pending_finish(p, &res);
    json_decref(root);
}

/* The LibreTranslate request body (JSON), or NULL. */
static char *backend_body(const rtmd_project_config *lim, const char *src, const char *dst, const char *text,
                          size_t len)
{
    json_t *o = json_object();
    char *out = NULL;
    if (o && json_object_set_new(o, "q", json_stringn(text, len)) == 0 &&
        json_object_set_new(o, "source", json_string(src[0] ? src : "auto")) == 0 &&
        json_object_set_new(o, "target", json_string(dst)) == 0 &&
        json_object_set_new(o, "format", json_string("text")) == 0 &&
        (!lim->translate_api_key[0] ||
         json_object_set_new(o, "api_key", json_string(lim->translate_api_key)) == 0))
        out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

static pending *pending_find(struct translate_state *s, int64_t pid, const char *key, size_t len)
{
    for (pending *p = s->pending; p; p = p->next)
        if (p->pid == pid && p->key_len == len && memcmp(p->key, key, len) == 0)
            return p;
    return NULL;
}

int64_t translate_text(rtmd_server *srv, int64_t pid, const char *src, const char *dst, const char *text, size_t len,
                       translate_done_fn done, void *arg)
{
    struct translate_state *s = state(srv);
    const project_backend *b = backend_of(srv, pid);
    if (!b)
        return RTM_EC_NO_CONFIG_IN_CONSOLE;
    if (len > TRANSLATE_MAX_TEXT)
        return RTM_EC_LARGE_MESSAGE_OR_ATTRS;
    s->requests++;
    size_t key_len;
    char *key = cache_key(src, strlen(src), dst, strlen(dst), text, len, &key_len);
    waiter *w = malloc(sizeof *w);
    if (!key || !w) {
        free(key);
        free(w);
        return RTM_EC_UNKNOWN_ERROR;
    }
    w->done = done;
    w->arg = arg;
    w->next = NULL;
    const char *cached_source, *cached;
    size_t cached_len;
    if (translate_cache_get(s->cache, pid, key, key_len, &cached_source, &cached, &cached_len)) {
        s->hits++;
        free(key);
        free(w);
        done(arg, &(translate_result){.source = cached_source, .text = cached, .len = cached_len});
        return 1;
    }
    pending *p = pending_find(s, pid, key, key_len);
    if (p) { /* the same translation is on its way: wait for it */
        s->joined++;
        free(key);
        w->next = p->waiters;
        p->waiters = w;
        return 0;
    }
    const rtmd_project_config *lim = &rtmd_server_project(srv, pid)->limits;
    char *body = backend_body(lim, src, dst, text, len);
    p = calloc(1, sizeof *p);
    if (!body || !p) {
        free(body);
        free(p);
        free(key);
        free(w);
        return RTM_EC_UNKNOWN_ERROR;
    }
    p->srv = srv;
    p->pid = pid;
    p->key = key;
    p->key_len = key_len;
    p->waiters = w;
    snprintf(p->src, sizeof p->src, "%s", src);
    outbound_post_args a = {
        .pid = pid,
        .uid = 0, /* the project's bound is the one that counts */
        .allow = b->allow,
        .url = b->url,
        .url_len = strlen(b->url),
        .content_type = "application/json",
        .body = body,
        .len = strlen(body),
        .timeout_ms = lim->translate_timeout_ms,
        .max_project = lim->translate_max_inflight,
        .max_user = lim->translate_max_inflight,
    };
    int64_t id = outbound_post(srv, &a, on_backend_reply, p);
    free(body);
    if (id <= 0) {
        p->waiters = NULL;
        free(w);
        free(p->key);
        free(p);
        s->failures++;
        return id == OUTBOUND_E_PROJECT_BUSY || id == OUTBOUND_E_USER_BUSY ? RTM_EC_API_FREQUENCY_LIMITED
                                                                            : RTM_EC_TRANSLATE_FAILED;
    }
    p->id = id;
    p->next = s->pending;
    if (s->pending)
        s->pending->prev = p;
    s->pending = p;
    return 0;
}

/* ---- the translate method ---- */

/* An optional language field: absent, nil or "" gives "". */
static bool arg_lang(rtmd_request *req, const char *key, bool required, char *out)
{
    const msgpack_object *o = mp_map_get(req->args, key);
    const char *v;
    size_t len;
    out[0] = '\0';
    if ((!o || o->type == MSGPACK_OBJECT_NIL) && !required)
        return true;
    if (!o || !mp_obj_str(o, &v, &len)) {
        req_arg_error(req, key);
        return false;
    }
    if ((len || required) && !translate_lang_valid(v, len)) {
        char ex[96];
        snprintf(ex, sizeof ex, "invalid '%s': a language code such as en or zh-CHS", key);
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, ex);
        return false;
    }
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
}

/* The fields the SDKs send that rtmd checks and does not apply. */
static bool check_unapplied(rtmd_request *req)
{
    return req_arg_optional(req, "type", REQ_TEXT) && req_arg_optional(req, "profanity", REQ_TEXT) &&
           req_arg_optional(req, "postProfanity", REQ_BOOL) &&
           (req->gate != GATE_SERVER_TCP || req_arg_optional(req, "uid", REQ_INT64));
}

/* A translate request waiting for its answer. */
typedef struct method_wait {
    rtmd_request *req;
    char dst[TRANSLATE_MAX_LANG + 1];
} method_wait;

static void answer_translation(void *arg, const translate_result *r)
{
    method_wait *m = arg;
    rtmd_request *req = m->req;
    if (r->code) {
        request_error(req, r->code, r->ex);
        free(m);
        return;
    }
    const msgpack_object *t = mp_map_get(req->args, "text");
    const char *text;
    size_t text_len;
    mp_obj_str(t, &text, &text_len); /* checked by method_translate */
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    mp_pack_kv_str(&pk, "source", r->source);
    mp_pack_kv_str(&pk, "target", m->dst);
    mp_pack_cstr(&pk, "sourceText");
    msgpack_pack_str(&pk, text_len);
    msgpack_pack_str_body(&pk, text, text_len);
    mp_pack_cstr(&pk, "targetText");
    msgpack_pack_str(&pk, r->len);
    msgpack_pack_str_body(&pk, r->text, r->len);
    request_answer(req, &body);
    msgpack_sbuffer_destroy(&body);
    free(m);
}

/* both gates: translate {text, dst, src?, type?, profanity?, postProfanity?,
 * uid (server)} -> {source, target, sourceText, targetText} */
static void method_translate(rtmd_request *req)
{
    const msgpack_object *t = mp_map_get(req->args, "text");
    const char *text;
    size_t text_len;
    char src[TRANSLATE_MAX_LANG + 1], dst[TRANSLATE_MAX_LANG + 1];
    if (!t || !mp_obj_str(t, &text, &text_len)) {
        req_arg_error(req, "text");
        return;
    }
    if (!arg_lang(req, "dst", true, dst) || !arg_lang(req, "src", false, src) || !check_unapplied(req))
        return;
    if (!rtm_utf8_valid(text, text_len) || memchr(text, '\0', text_len)) {
        request_error(req, FPNN_EC_PROTO_TYPE_CONVERT, "'text' is not UTF-8 text");
        return;
    }
    if (text_len > TRANSLATE_MAX_TEXT) {
        request_error(req, RTM_EC_LARGE_MESSAGE_OR_ATTRS, "'text' is over 16384 bytes");
        return;
    }
    method_wait *m = calloc(1, sizeof *m);
    if (!m) {
        request_error(req, RTM_EC_UNKNOWN_ERROR, "out of memory");
        return;
    }
    m->req = req;
    snprintf(m->dst, sizeof m->dst, "%s", dst);
    int64_t rc = translate_text(req->srv, req->project->pid, src, dst, text, text_len, answer_translation, m);
    if (rc <= 1)
        return; /* answered, or will be */
    free(m);
    if (rc == RTM_EC_NO_CONFIG_IN_CONSOLE)
        request_error(req, rc, "translate is not enabled on this server (no translate_url for the project)");
    else if (rc == RTM_EC_API_FREQUENCY_LIMITED)
        request_error(req, rc, "too many translations of the project in flight");
    else if (rc == RTM_EC_TRANSLATE_FAILED)
        request_error(req, rc, "cannot start the request to the translation server");
    else
        request_error(req, rc, "out of memory");
}

/* ---- module life cycle ---- */

/* The backend that p's translate_url names into *b (zeroed: none when
 * empty); on failure err says why and *b is none. */
static int backend_build(const rtmd_project *p, project_backend *b, char *err, size_t errlen)
{
    *b = (project_backend){0};
    const char *base = p->limits.translate_url;
    size_t n = strlen(base);
    if (!n)
        return 0;
    while (n && base[n - 1] == '/')
        n--;
    char *url = malloc(n + sizeof "/translate");
    if (!url) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(url, n + sizeof "/translate", "%.*s/translate", (int)n, base);
    char why[300] = "not a URL";
    if (strpbrk(url, " \t,")) /* the allowlist's separators: one URL only */
        snprintf(why, sizeof why, "one URL, without spaces or commas");
    else if (outbound_allowlist_parse(url, &b->allow, why, sizeof why) == 0 && b->allow) {
        b->url = url;
        return 0;
    }
    free(url);
    snprintf(err, errlen, "translate_url: %s", why);
    return -1;
}

static void backend_clear(project_backend *b)
{
    outbound_allowlist_free(b->allow);
    free(b->url);
    *b = (project_backend){0};
}

/* The backend of p's slot (a slot the same pid had before a removal gets
 * the URL configured now). Requests in flight copied the URL they use. */
static int translate_project_added(rtmd_server *srv, rtmd_project *p, char *err, size_t errlen)
{
    project_backend *b = &state(srv)->projects[p - srv->projects];
    char why[400];
    backend_clear(b);
    if (backend_build(p, b, why, sizeof why) == 0)
        return 0;
    snprintf(err, errlen, "project %lld: %s", (long long)p->pid, why);
    return -1;
}

/* SIGHUP: a running project's translate_url again; one that does not
 * check keeps the backend it had. */
static int reload_project(rtmd_server *srv, rtmd_project *p, char *why, size_t whylen)
{
    project_backend *b = &state(srv)->projects[p - srv->projects];
    project_backend next;
    if (backend_build(p, &next, why, whylen) != 0) {
        LOG_ERROR("translate: project %lld: %s; keeping %s", (long long)p->pid, why, b->url ? b->url : "no backend");
        return -1;
    }
    if ((!b->url && !next.url) || (b->url && next.url && strcmp(b->url, next.url) == 0)) {
        backend_clear(&next);
        return 0;
    }
    LOG_INFO("translate: project %lld: backend %s", (long long)p->pid, next.url ? next.url : "none");
    backend_clear(b);
    *b = next;
    return 0;
}

static int translate_reload(rtmd_server *srv, char *err, size_t errlen)
{
    return state(srv) ? module_reload_projects(srv, reload_project, err, errlen) : 0;
}

static int translate_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct translate_state *s = calloc(1, sizeof *s);
    if (!s || !(s->projects = calloc(RTMD_MAX_PROJECTS, sizeof *s->projects))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->svc->translate = s;
    s->nprojects = RTMD_MAX_PROJECTS;
    cluster_on_record(srv, CLUSTER_REC_LANG, on_lang_record);
    if (!(s->cache = translate_cache_new(TRANSLATE_CACHE_ENTRIES, TRANSLATE_CACHE_BYTES, rtm_hash_key()))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < srv->nprojects; i++)
        if (translate_project_added(srv, &srv->projects[i], err, errlen) != 0)
            return -1;
    return 0;
}

static void translate_free(rtmd_server *srv)
{
    struct translate_state *s = srv->svc->translate;
    if (!s)
        return;
    while (s->pending) {
        pending *p = s->pending;
        s->pending = p->next;
        outbound_cancel(srv, p->id);
        pending_finish(p, &(translate_result){.code = FPNN_EC_CORE_SERVER_STOPPING, .ex = "server stopping"});
    }
    translate_cache_free(s->cache);
    for (size_t i = 0; i < s->nprojects; i++)
        backend_clear(&s->projects[i]);
    free(s->projects);
    free(s);
    srv->svc->translate = NULL;
}

static void translate_metrics(const rtmd_server *srv, prom_out *out)
{
    const struct translate_state *s = srv->svc->translate;
    if (!s)
        return;
    prom_metric(out, "rtmd_translate_requests_total", "counter",
                "Translations asked for (translate, and chat pushed to users with a language).",
                s->requests);
    prom_metric(out, "rtmd_translate_failures_total", "counter",
                "Translations the translation server did not give (errors, timeouts, refusals).", s->failures);
    prom_metric(out, "rtmd_translate_cache_hits_total", "counter", "Translations answered from the cache.",
                s->hits);
    prom_metric(out, "rtmd_translate_joined_total", "counter",
                "Translations that waited for the same translation already in flight.", s->joined);
    prom_metric(out, "rtmd_translate_cache_entries", "gauge", "Answers in the translation cache.",
                s->cache ? translate_cache_entries(s->cache) : 0);
    prom_metric(out, "rtmd_translate_cache_bytes", "gauge", "Bytes of the translation cache.",
                s->cache ? translate_cache_bytes(s->cache) : 0);
}

static const rtmd_method translate_methods[] = {
    {"setlang", GATES_CLIENT, method_setlang, 0},
    {"translate", GATES_CLIENT | GATES_SERVER, method_translate, 0},
};

const rtmd_module translate_module = {
    .name = "translate",
    .init = translate_init,
    .free = translate_free,
    .reload = translate_reload,
    .project_added = translate_project_added,
    .metrics = translate_metrics,
    RTMD_MODULE_METHODS(translate_methods),
};
