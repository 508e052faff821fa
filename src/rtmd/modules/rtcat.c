/* RealTimeCat (rtcat.h): the REST v0.4 API of sessions and tokens on the
 * HTTP gate (/v0.4/..., X-RTCAT-APIKEY and X-RTCAT-SECRET), the demo
 * backend's three unauthenticated routes for the project with rtcat_demo
 * = 1, and the token logins' rights and kicks.
 *
 * Owns the rtcat_sessions and rtcat_tokens tables, mirrored in memory per
 * project (sessions oldest first, each with its tokens oldest first, and
 * an index of each by uuid). As in groups.c, a change is applied to memory
 * in the store's done callback, after commit, and only then answered (the
 * HTTP answer is deferred, http.h). Creations in flight are counted
 * against rtcat_max_sessions / rtcat_max_tokens so that the limits stay
 * exact.
 *
 * Expiry: an object whose expire_in passed (or a token whose session's
 * did) behaves as deleted: 404, absent from lists, refused at login. Every
 * retention_interval seconds the expired objects leave memory and the
 * store (module_purge_expired). A "day" of live_days is the project's
 * rtcat_day_seconds (86400; shorter only for tests and demos). */
#include "rtcat.h"

#include "clock.h"
#include "http.h"
#include "log.h"
#include "module.h"
#include "pairmap.h"
#include "payload.h"
#include "rtm_errors.h"
#include "users.h"
#include "utf8.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RC_BODY_MAX (16u * 1024)
#define RC_LABEL_MAX 255
#define RC_DATA_MAX 1024
#define RC_NUMBER_MAX 100
#define RC_PAGE_SIZE_MAX 100
#define RC_PAGE_SIZE_DEFAULT 20
#define RC_SESSION_DAYS 30
#define RC_TOKEN_DAYS 15
#define RC_JSON_HEADERS "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"

/* ---- state ---- */

typedef struct rc_obj {
    char uuid[RTCAT_UUID_LEN + 1];
    char *label, *data; /* NULL: null */
    uint8_t type;       /* session 0 p2p / 1 rel; token 0 pub / 1 sub */
    bool permanent;
    uint32_t live_days;
    int64_t created_us, expire_us; /* expire_us 0 when permanent */
} rc_obj;

struct rc_session;

typedef struct rc_token {
    rc_obj o;
    struct rc_session *s;
    struct rc_token *prev, *next;
} rc_token;

struct rc_project;

typedef struct rc_session {
    rc_obj o;
    struct rc_project *rp;
    struct rc_session *prev, *next;
    rc_token *first, *last;
} rc_session;

typedef struct rc_project {
    const rtmd_project *p;
    rc_session *first, *last;
    size_t nsessions, ntokens;           /* in memory */
    uint32_t reserved_sessions, reserved_tokens; /* creations in flight */
} rc_project;

/* A token login. */
typedef struct rc_login {
    int64_t pid, uid;
    char token[RTCAT_UUID_LEN + 1], session[RTCAT_UUID_LEN + 1];
    bool pub;
} rc_login;

struct rtcat_state {
    rtmd_server *srv;
    rc_project *projects; /* one per project with the API */
    size_t nprojects;
    rc_project *demo;     /* the demo backend's project, or NULL */
    pairmap sessions;     /* uuid (two halves) -> rc_session */
    pairmap tokens;       /* uuid -> rc_token */
    pairmap logins;       /* (connection address, 0) -> rc_login */
    uv_timer_t timer;
    bool timer_closed;
    uint64_t last_purge_ms;
};

static struct rtcat_state *state(rtmd_server *srv)
{
    return srv->svc ? srv->svc->rtcat : NULL;
}

bool rtcat_enabled(const rtmd_project *p)
{
    return p && p->limits.rtcat_apikey[0] && p->limits.rtcat_secret[0];
}

static rc_project *project_of(struct rtcat_state *st, int64_t pid)
{
    for (size_t i = 0; st && i < st->nprojects; i++)
        if (st->projects[i].p->pid == pid)
            return &st->projects[i];
    return NULL;
}

/* ---- uuids and times ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The index key of a canonical lower-case uuid s[0..len): false when s is
 * not one. */
static bool uuid_key(const char *s, size_t len, uint64_t *a, uint64_t *b)
{
    if (len != RTCAT_UUID_LEN)
        return false;
    uint64_t v[2] = {0, 0};
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
            continue;
        }
        int h = hexval(s[i]);
        if (h < 0 || (s[i] >= 'A' && s[i] <= 'F'))
            return false;
        v[n / 16] = v[n / 16] << 4 | (uint64_t)h;
        n++;
    }
    *a = v[0];
    *b = v[1];
    return true;
}

static int new_uuid(char out[RTCAT_UUID_LEN + 1])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1)
        return -1;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, RTCAT_UUID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
    return 0;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ISO-8601 UTC with `digits` (3 or 6) fraction digits. */
static void iso_time(int64_t us, int digits, char out[64])
{
    time_t secs = (time_t)(us / 1000000);
    int64_t frac = us % 1000000;
    struct tm tm;
    gmtime_r(&secs, &tm);
    char head[32];
    strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    if (digits == 3)
        snprintf(out, 64, "%s.%03dZ", head, (int)(frac / 1000));
    else
        snprintf(out, 64, "%s.%06dZ", head, (int)frac);
}

static bool obj_expired(const rc_obj *o, int64_t now)
{
    return !o->permanent && o->expire_us <= now;
}

static bool token_expired(const rc_token *t, int64_t now)
{
    return obj_expired(&t->o, now) || obj_expired(&t->s->o, now);
}

static void obj_set_expiry(rc_obj *o, uint32_t day_seconds)
{
    o->expire_us = o->permanent ? 0 : o->created_us + (int64_t)o->live_days * day_seconds * 1000000;
}

static void obj_clear(rc_obj *o)
{
    free(o->label);
    free(o->data);
    o->label = o->data = NULL;
}

/* ---- memory ---- */

static rc_session *session_get(struct rtcat_state *st, const rc_project *rp, const char *uuid, size_t len)
{
    uint64_t a, b;
    if (!uuid_key(uuid, len, &a, &b))
        return NULL;
    rc_session *s = pairmap_get(&st->sessions, a, b);
    return s && s->rp == rp ? s : NULL;
}

static rc_token *token_get(struct rtcat_state *st, const rc_project *rp, const char *uuid, size_t len)
{
    uint64_t a, b;
    if (!uuid_key(uuid, len, &a, &b))
        return NULL;
    rc_token *t = pairmap_get(&st->tokens, a, b);
    return t && t->s->rp == rp ? t : NULL;
}

/* Takes o (its strings move). NULL when out of memory. */
static rc_session *session_add(struct rtcat_state *st, rc_project *rp, rc_obj *o)
{
    uint64_t a, b;
    rc_session *s = calloc(1, sizeof *s);
    if (!s || !uuid_key(o->uuid, strlen(o->uuid), &a, &b) || pairmap_put(&st->sessions, a, b, s) != 0) {
        free(s);
        return NULL;
    }
    s->o = *o;
    o->label = o->data = NULL;
    s->rp = rp;
    s->prev = rp->last;
    if (rp->last)
        rp->last->next = s;
    else
        rp->first = s;
    rp->last = s;
    rp->nsessions++;
    return s;
}

static rc_token *token_add(struct rtcat_state *st, rc_session *s, rc_obj *o)
{
    uint64_t a, b;
    rc_token *t = calloc(1, sizeof *t);
    if (!t || !uuid_key(o->uuid, strlen(o->uuid), &a, &b) || pairmap_put(&st->tokens, a, b, t) != 0) {
        free(t);
        return NULL;
    }
    t->o = *o;
    o->label = o->data = NULL;
    t->s = s;
    t->prev = s->last;
    if (s->last)
        s->last->next = t;
    else
        s->first = t;
    s->last = t;
    s->rp->ntokens++;
    return t;
}

static void token_free(struct rtcat_state *st, rc_token *t)
{
    uint64_t a, b;
    if (uuid_key(t->o.uuid, RTCAT_UUID_LEN, &a, &b))
        pairmap_del(&st->tokens, a, b);
    rc_session *s = t->s;
    if (t->prev)
        t->prev->next = t->next;
    else
        s->first = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        s->last = t->prev;
    s->rp->ntokens--;
    obj_clear(&t->o);
    free(t);
}

static void session_free(struct rtcat_state *st, rc_session *s)
{
    while (s->first)
        token_free(st, s->first);
    uint64_t a, b;
    if (uuid_key(s->o.uuid, RTCAT_UUID_LEN, &a, &b))
        pairmap_del(&st->sessions, a, b);
    rc_project *rp = s->rp;
    if (s->prev)
        s->prev->next = s->next;
    else
        rp->first = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        rp->last = s->prev;
    rp->nsessions--;
    obj_clear(&s->o);
    free(s);
}

/* Drops the expired sessions and tokens from memory. */
static void sweep_memory(struct rtcat_state *st, int64_t now)
{
    for (size_t i = 0; i < st->nprojects; i++) {
        rc_session *s = st->projects[i].first;
        while (s) {
            rc_session *next = s->next;
            if (obj_expired(&s->o, now)) {
                session_free(st, s);
            } else {
                for (rc_token *t = s->first, *tn; t; t = tn) {
                    tn = t->next;
                    if (obj_expired(&t->o, now))
                        token_free(st, t);
                }
            }
            s = next;
        }
    }
}

/* Kicks the token logins of the session (token NULL) or of one token. */
static void kick_logins(struct rtcat_state *st, const char *session, const char *token, const char *reason)
{
    size_t n = 0;
    for (size_t i = 0; i < st->logins.cap; i++) {
        const rc_login *l = st->logins.slots[i].value;
        if (l && (token ? strcmp(l->token, token) == 0 : strcmp(l->session, session) == 0))
            n++;
    }
    if (!n)
        return;
    int64_t(*who)[2] = malloc(n * sizeof *who);
    if (!who) {
        LOG_ERROR("rtcat: out of memory: connections of a deleted %s stay", token ? "token" : "session");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < st->logins.cap && k < n; i++) {
        const rc_login *l = st->logins.slots[i].value;
        if (l && (token ? strcmp(l->token, token) == 0 : strcmp(l->session, session) == 0)) {
            who[k][0] = l->pid;
            who[k][1] = l->uid;
            k++;
        }
    }
    for (size_t i = 0; i < k; i++)
        users_kickout_why(st->srv, who[i][0], who[i][1], NULL, reason);
    free(who);
}

/* ---- JSON ---- */

static json_t *obj_json(const rc_obj *o, const char *session_id)
{
    char created[64], expire[64];
    iso_time(o->created_us, 6, created);
    json_t *j = json_object();
    if (!j)
        return NULL;
    json_object_set_new(j, "uuid", json_string(o->uuid));
    if (session_id)
        json_object_set_new(j, "session_id", json_string(session_id));
    json_object_set_new(j, "label", o->label ? json_string(o->label) : json_null());
    json_object_set_new(j, "type",
                        json_string(session_id ? (o->type ? "sub" : "pub") : (o->type ? "rel" : "p2p")));
    json_object_set_new(j, "permanent", json_boolean(o->permanent));
    json_object_set_new(j, "data", o->data ? json_string(o->data) : json_null());
    json_object_set_new(j, "time_created", json_string(created));
    json_object_set_new(j, "live_days", json_integer(o->live_days));
    if (o->permanent) {
        json_object_set_new(j, "expire_in", json_null());
    } else {
        iso_time(o->expire_us, 3, expire);
        json_object_set_new(j, "expire_in", json_string(expire));
    }
    return j;
}

/* Answers j (taken) with the status, or 500 when it cannot be encoded. */
static void send_json(rtmd_conn *c, const http_request *req, http_deferred *d, int status, json_t *j,
                      const char *headers)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    char hdr[HTTP_EXTRA_HEADERS_MAX];
    snprintf(hdr, sizeof hdr, "%s%s", RC_JSON_HEADERS, headers ? headers : "");
    static const char oom[] = "{\"error\":\"internal\",\"description\":\"out of memory\"}";
    const char *body = text ? text : oom;
    if (!text)
        status = 500;
    if (d)
        http_deferred_respond(d, status, "application/json", hdr, body, strlen(body));
    else
        http_respond_with(c, req, status, "application/json", hdr, body, strlen(body));
    free(text);
}

static void send_error(rtmd_conn *c, const http_request *req, http_deferred *d, int status, const char *code,
                       const char *description)
{
    json_t *j = json_object();
    if (j) {
        json_object_set_new(j, "error", json_string(code));
        json_object_set_new(j, "description", json_string(description));
    }
    send_json(c, req, d, status, j, NULL);
}

static void bad_param(rtmd_conn *c, const http_request *req, const char *description)
{
    send_error(c, req, NULL, 400, "invalid_parameter", description);
}

static void not_found(rtmd_conn *c, const http_request *req)
{
    send_error(c, req, NULL, 404, "not_found", "no such session or token");
}

/* ---- request bodies and queries ---- */

/* What a POST or PATCH body gives. Strings are NULL for null. */
typedef struct rc_fields {
    bool has_label, has_data, has_live_days, has_type, has_permanent, has_number;
    char *label, *data;
    char type[8];
    uint32_t live_days, number;
    bool permanent;
} rc_fields;

static void fields_clear(rc_fields *f)
{
    free(f->label);
    free(f->data);
}

static bool parse_u32(const char *v, uint32_t max, uint32_t *out)
{
    if (!v || !*v || strlen(v) > 10)
        return false;
    uint64_t n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (n > max)
        return false;
    *out = (uint32_t)n;
    return true;
}

/* Sets field key from v (NULL: null). Returns NULL, or what is wrong. */
static const char *field_set(rc_fields *f, const char *key, const char *v)
{
    if (strcmp(key, "label") == 0 || strcmp(key, "data") == 0) {
        bool label = key[0] == 'l';
        size_t max = label ? RC_LABEL_MAX : RC_DATA_MAX;
        char **slot = label ? &f->label : &f->data;
        if (v && strlen(v) > max)
            return label ? "label: at most 255 bytes" : "data: at most 1024 bytes";
        if (v && !rtm_utf8_valid(v, strlen(v)))
            return label ? "label: not UTF-8" : "data: not UTF-8";
        free(*slot);
        *slot = v && *v ? strdup(v) : NULL;
        if (v && *v && !*slot)
            return "out of memory";
        if (label)
            f->has_label = true;
        else
            f->has_data = true;
        return NULL;
    }
    if (strcmp(key, "live_days") == 0) {
        if (!parse_u32(v, UINT32_MAX, &f->live_days) || f->live_days == 0)
            return "live_days: a positive integer";
        f->has_live_days = true;
        return NULL;
    }
    if (strcmp(key, "type") == 0) {
        if (!v || strlen(v) >= sizeof f->type)
            return "type: p2p or rel for a session, pub or sub for a token";
        snprintf(f->type, sizeof f->type, "%s", v);
        f->has_type = true;
        return NULL;
    }
    if (strcmp(key, "permanent") == 0) {
        if (v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0))
            f->permanent = true;
        else if (v && (strcmp(v, "false") == 0 || strcmp(v, "0") == 0))
            f->permanent = false;
        else
            return "permanent: true or false";
        f->has_permanent = true;
        return NULL;
    }
    if (strcmp(key, "number") == 0) {
        if (!parse_u32(v, UINT32_MAX, &f->number) || f->number == 0 || f->number > RC_NUMBER_MAX)
            return "number: 1 to 100";
        f->has_number = true;
        return NULL;
    }
    return NULL; /* other fields are ignored */
}

static const char *parse_form(const char *body, size_t len, rc_fields *f)
{
    static char key[64];
    char *val = malloc(len + 1);
    if (!val)
        return "out of memory";
    const char *err = NULL;
    for (size_t pos = 0; pos < len && !err;) {
        const char *p = body + pos, *amp = memchr(p, '&', len - pos);
        size_t n = amp ? (size_t)(amp - p) : len - pos;
        pos += n + 1;
        if (n == 0)
            continue;
        const char *eq = memchr(p, '=', n);
        size_t kn = eq ? (size_t)(eq - p) : n;
        long klen = http_url_decode(p, kn, key, sizeof key);
        if (klen < 0)
            continue; /* a key longer than any field: not one of ours */
        if (http_url_decode(eq ? eq + 1 : p + n, eq ? n - kn - 1 : 0, val, len + 1) < 0) {
            err = "a form value is badly escaped";
            break;
        }
        err = field_set(f, key, val);
    }
    free(val);
    return err;
}

static const char *parse_json(const char *body, size_t len, rc_fields *f)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return "the body is not a JSON object";
    }
    const char *key, *err = NULL;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (err)
            break;
        char num[32];
        const char *s;
        if (json_is_null(v))
            s = NULL;
        else if (json_is_string(v))
            s = json_string_value(v);
        else if (json_is_integer(v) && json_integer_value(v) >= 0) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            s = num;
        } else if (json_is_boolean(v))
            s = json_is_true(v) ? "true" : "false";
        else {
            if (strcmp(key, "label") == 0 || strcmp(key, "data") == 0 || strcmp(key, "live_days") == 0 ||
                strcmp(key, "type") == 0 || strcmp(key, "permanent") == 0 || strcmp(key, "number") == 0)
                err = "a field has the wrong JSON type";
            continue;
        }
        if (json_is_string(v) && strlen(s) != json_string_length(v))
            err = "a string holds a NUL";
        else
            err = field_set(f, key, s);
    }
    json_decref(root);
    return err;
}

/* Parses the request body into f; answers 400 and returns false when bad. */
static bool parse_body(rtmd_conn *c, const http_request *req, rc_fields *f)
{
    const char *type = http_request_header(req, "content-type");
    const char *err;
    if (type && strncasecmp(type, "application/json", 16) == 0)
        err = parse_json(req->body, req->body_len, f);
    else
        err = parse_form(req->body ? req->body : "", req->body_len, f);
    if (err) {
        bad_param(c, req, err);
        return false;
    }
    return true;
}

/* page and page_size; answers 400 and returns false when bad. */
static bool parse_paging(rtmd_conn *c, const http_request *req, uint32_t *page, uint32_t *size)
{
    char v[32];
    *page = 1;
    *size = RC_PAGE_SIZE_DEFAULT;
    int r = http_query_param(req->query, "page", v, sizeof v);
    if (r < 0 || (r == 1 && (!parse_u32(v, 100000000, page) || *page == 0))) {
        bad_param(c, req, "page: an integer from 1");
        return false;
    }
    r = http_query_param(req->query, "page_size", v, sizeof v);
    if (r < 0 || (r == 1 && (!parse_u32(v, RC_PAGE_SIZE_MAX, size) || *size == 0))) {
        bad_param(c, req, "page_size: an integer from 1 to 100");
        return false;
    }
    return true;
}

/* ---- writes ---- */

typedef enum { W_NEW_SESSION, W_NEW_TOKENS, W_NEW_SESSION_TOKEN, W_SET_SESSION, W_SET_TOKEN, W_DEL_SESSION,
               W_DEL_TOKEN } rc_op;

typedef struct rc_write {
    http_deferred d;
    rtmd_server *srv;
    rc_op op;
    int64_t pid;
    int ok_status;     /* of a creation: 201 (REST) or 200 (demo backend) */
    bool array;        /* answer the tokens as an array */
    uint32_t reserved_sessions, reserved_tokens;
    rc_obj sess;       /* the new or updated session; its uuid for token writes */
    uint32_t ntok;
    rc_obj tok[];
} rc_write;

static void write_free(rc_write *w)
{
    obj_clear(&w->sess);
    for (uint32_t i = 0; i < w->ntok; i++)
        obj_clear(&w->tok[i]);
    free(w);
}

static void bind_text(db_stmt_t *st, int i, const char *s)
{
    if (s)
        db_bind_text(st, i, s, -1);
    else
        db_bind_null(st, i);
}

static int insert_obj(db_conn *db, const rc_obj *o, const char *session, int64_t pid)
{
    db_stmt_t *st;
    int rc = db_stmt(db,
                        session ? "INSERT INTO rtcat_tokens(uuid, session_uuid, pid, label, data, type, permanent, "
                                  "live_days, created_us, expire_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                                : "INSERT INTO rtcat_sessions(uuid, pid, label, data, type, permanent, live_days, "
                                  "created_us, expire_us) VALUES (?1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        &st);
    if (rc != DB_OK)
        return rc;
    db_bind_text(st, 1, o->uuid, -1);
    if (session)
        db_bind_text(st, 2, session, -1);
    db_bind_int64(st, 3, pid);
    bind_text(st, 4, o->label);
    bind_text(st, 5, o->data);
    db_bind_int(st, 6, o->type);
    db_bind_int(st, 7, o->permanent);
    db_bind_int64(st, 8, o->live_days);
    db_bind_int64(st, 9, o->created_us);
    if (o->permanent)
        db_bind_null(st, 10);
    else
        db_bind_int64(st, 10, o->expire_us);
    return db_step_release(st);
}

static int update_obj(db_conn *db, const rc_obj *o, bool token)
{
    db_stmt_t *st;
    int rc = db_stmt(db,
                        token ? "UPDATE rtcat_tokens SET label = ?2, data = ?3, permanent = ?4, live_days = ?5, "
                                "expire_us = ?6 WHERE uuid = ?1"
                              : "UPDATE rtcat_sessions SET label = ?2, data = ?3, permanent = ?4, live_days = ?5, "
                                "expire_us = ?6 WHERE uuid = ?1",
                        &st);
    if (rc != DB_OK)
        return rc;
    db_bind_text(st, 1, o->uuid, -1);
    bind_text(st, 2, o->label);
    bind_text(st, 3, o->data);
    db_bind_int(st, 4, o->permanent);
    db_bind_int64(st, 5, o->live_days);
    if (o->permanent)
        db_bind_null(st, 6);
    else
        db_bind_int64(st, 6, o->expire_us);
    return db_step_release(st);
}

static int delete_obj(db_conn *db, const char *uuid, bool token)
{
    db_stmt_t *st;
    int rc = db_stmt(db, token ? "DELETE FROM rtcat_tokens WHERE uuid = ?1" : "DELETE FROM rtcat_sessions WHERE uuid = ?1",
                        &st);
    if (rc != DB_OK)
        return rc;
    db_bind_text(st, 1, uuid, -1);
    return db_step_release(st);
}

static int apply_write(db_conn *db, void *arg)
{
    rc_write *w = arg;
    int rc = DB_OK;
    switch (w->op) {
    case W_NEW_SESSION:
        return insert_obj(db, &w->sess, NULL, w->pid);
    case W_NEW_SESSION_TOKEN:
        rc = insert_obj(db, &w->sess, NULL, w->pid);
        /* fall through */
    case W_NEW_TOKENS:
        for (uint32_t i = 0; i < w->ntok && rc == DB_OK; i++)
            rc = insert_obj(db, &w->tok[i], w->sess.uuid, w->pid);
        return rc;
    case W_SET_SESSION:
        return update_obj(db, &w->sess, false);
    case W_SET_TOKEN:
        return update_obj(db, &w->tok[0], true);
    case W_DEL_SESSION:
        return delete_obj(db, w->sess.uuid, false);
    case W_DEL_TOKEN:
        return delete_obj(db, w->tok[0].uuid, true);
    }
    return DB_MISUSE;
}

static void write_done(void *arg, int status)
{
    rc_write *w = arg;
    struct rtcat_state *st = state(w->srv);
    rc_project *rp = project_of(st, w->pid);
    if (rp) {
        rp->reserved_sessions -= w->reserved_sessions;
        rp->reserved_tokens -= w->reserved_tokens;
    }
    if (!rp) {
        send_error(NULL, NULL, &w->d, 503, "unavailable", "server stopping");
        write_free(w);
        return;
    }
    if (status != DB_OK) {
        LOG_ERROR("rtcat: a write of project %lld failed: %s", (long long)w->pid, db_errstr(status));
        send_error(NULL, NULL, &w->d, 503, "store_error", "the store failed");
        write_free(w);
        return;
    }
    json_t *j = NULL;
    int code = 200;
    rc_session *s = session_get(st, rp, w->sess.uuid, strlen(w->sess.uuid));
    switch (w->op) {
    case W_NEW_SESSION:
    case W_NEW_SESSION_TOKEN:
        j = w->op == W_NEW_SESSION ? obj_json(&w->sess, NULL) : NULL;
        s = session_add(st, rp, &w->sess);
        if (!s)
            LOG_ERROR("rtcat: out of memory: session stored but not loaded until a restart");
        if (w->op == W_NEW_SESSION) {
            code = w->ok_status;
            break;
        }
        /* fall through */
    case W_NEW_TOKENS:
        j = w->array ? json_array() : NULL;
        for (uint32_t i = 0; i < w->ntok; i++) {
            json_t *o = obj_json(&w->tok[i], w->sess.uuid);
            if (w->array)
                json_array_append_new(j, o);
            else
                j = o;
            if (s && !token_add(st, s, &w->tok[i]))
                LOG_ERROR("rtcat: out of memory: token stored but not loaded until a restart");
        }
        code = w->ok_status;
        break;
    case W_SET_SESSION:
        if (s) {
            obj_clear(&s->o);
            s->o = w->sess;
            w->sess.label = w->sess.data = NULL;
            j = obj_json(&s->o, NULL);
        } else {
            j = obj_json(&w->sess, NULL);
        }
        break;
    case W_SET_TOKEN: {
        rc_token *t = token_get(st, rp, w->tok[0].uuid, RTCAT_UUID_LEN);
        if (t) {
            obj_clear(&t->o);
            t->o = w->tok[0];
            w->tok[0].label = w->tok[0].data = NULL;
            j = obj_json(&t->o, t->s->o.uuid);
        } else {
            j = obj_json(&w->tok[0], w->sess.uuid);
        }
        break;
    }
    case W_DEL_SESSION:
        if (s)
            session_free(st, s);
        kick_logins(st, w->sess.uuid, NULL, RTCAT_SESSION_DELETED);
        http_deferred_respond(&w->d, 204, "application/json", RC_JSON_HEADERS, "", 0);
        write_free(w);
        return;
    case W_DEL_TOKEN: {
        rc_token *t = token_get(st, rp, w->tok[0].uuid, RTCAT_UUID_LEN);
        if (t)
            token_free(st, t);
        kick_logins(st, NULL, w->tok[0].uuid, RTCAT_TOKEN_DELETED);
        http_deferred_respond(&w->d, 204, "application/json", RC_JSON_HEADERS, "", 0);
        write_free(w);
        return;
    }
    }
    send_json(NULL, NULL, &w->d, code, j, NULL);
    write_free(w);
}

static void submit(rtmd_conn *c, const http_request *req, rc_write *w, rc_project *rp)
{
    w->srv = c->srv;
    w->pid = rp->p->pid;
    rp->reserved_sessions += w->reserved_sessions;
    rp->reserved_tokens += w->reserved_tokens;
    http_defer(c, req, &w->d);
    if (store_submit(c->srv->store, apply_write, write_done, w) != 0) {
        rp->reserved_sessions -= w->reserved_sessions;
        rp->reserved_tokens -= w->reserved_tokens;
        send_error(NULL, NULL, &w->d, 503, "unavailable", "server stopping");
        write_free(w);
    }
}

static rc_write *new_write(rc_op op, uint32_t ntok)
{
    rc_write *w = calloc(1, sizeof *w + (size_t)ntok * sizeof w->tok[0]);
    if (w) {
        w->op = op;
        w->ntok = ntok;
        w->ok_status = 201;
    }
    return w;
}

/* ---- building objects ---- */

/* Fills o from the fields of a creation (defaults for the rest). Returns
 * NULL, or what is wrong. */
static const char *obj_from_fields(rc_obj *o, const rc_fields *f, bool token, const rtmd_project_config *lim,
                                   int64_t created)
{
    if (new_uuid(o->uuid) != 0)
        return "cannot make a uuid";
    o->type = 0;
    if (f->has_type) {
        if (strcmp(f->type, token ? "pub" : "p2p") == 0)
            o->type = 0;
        else if (strcmp(f->type, token ? "sub" : "rel") == 0)
            o->type = 1;
        else
            return token ? "type: pub or sub" : "type: p2p or rel";
    }
    uint32_t def = token ? RC_TOKEN_DAYS : RC_SESSION_DAYS;
    o->live_days = f->has_live_days ? f->live_days : (def < lim->rtcat_max_live_days ? def : lim->rtcat_max_live_days);
    if (o->live_days > lim->rtcat_max_live_days)
        return "live_days: over the project's rtcat_max_live_days";
    o->permanent = f->has_permanent && f->permanent;
    o->label = f->label ? strdup(f->label) : NULL;
    o->data = f->data ? strdup(f->data) : NULL;
    if ((f->label && !o->label) || (f->data && !o->data))
        return "out of memory";
    o->created_us = created;
    obj_set_expiry(o, lim->rtcat_day_seconds);
    return NULL;
}

/* o updated by the fields of a PATCH: a copy of cur with them applied. */
static const char *obj_patch(rc_obj *o, const rc_obj *cur, const rc_fields *f, const rtmd_project_config *lim)
{
    *o = *cur;
    o->label = o->data = NULL;
    if (f->has_live_days && f->live_days > lim->rtcat_max_live_days)
        return "live_days: over the project's rtcat_max_live_days";
    const char *label = f->has_label ? f->label : cur->label, *data = f->has_data ? f->data : cur->data;
    o->label = label ? strdup(label) : NULL;
    o->data = data ? strdup(data) : NULL;
    if ((label && !o->label) || (data && !o->data))
        return "out of memory";
    if (f->has_permanent)
        o->permanent = f->permanent;
    if (f->has_live_days)
        o->live_days = f->live_days;
    obj_set_expiry(o, lim->rtcat_day_seconds);
    return NULL;
}

/* ---- handlers ---- */

static bool over_sessions(const rc_project *rp, uint32_t n)
{
    return (uint64_t)rp->nsessions + rp->reserved_sessions + n > rp->p->limits.rtcat_max_sessions;
}

static bool over_tokens(const rc_project *rp, uint32_t n)
{
    return (uint64_t)rp->ntokens + rp->reserved_tokens + n > rp->p->limits.rtcat_max_tokens;
}

static void limit_exceeded(rtmd_conn *c, const http_request *req, const char *what)
{
    send_error(c, req, NULL, 429, "limit_exceeded", what);
}

/* Creates a session from f (label forced when label is not NULL), with a
 * first token when with_token. */
static void create_session(rtmd_conn *c, const http_request *req, rc_project *rp, const rc_fields *f,
                           int ok_status, const rc_fields *token_fields)
{
    if (over_sessions(rp, 1)) {
        limit_exceeded(c, req, "the project has rtcat_max_sessions sessions");
        return;
    }
    if (token_fields && over_tokens(rp, 1)) {
        limit_exceeded(c, req, "the project has rtcat_max_tokens tokens");
        return;
    }
    rc_write *w = new_write(token_fields ? W_NEW_SESSION_TOKEN : W_NEW_SESSION, token_fields ? 1 : 0);
    if (!w) {
        send_error(c, req, NULL, 500, "internal", "out of memory");
        return;
    }
    int64_t now = now_us();
    const char *err = obj_from_fields(&w->sess, f, false, &rp->p->limits, now);
    if (!err && token_fields)
        err = obj_from_fields(&w->tok[0], token_fields, true, &rp->p->limits, now);
    if (err) {
        write_free(w);
        bad_param(c, req, err);
        return;
    }
    w->ok_status = ok_status;
    w->reserved_sessions = 1;
    w->reserved_tokens = token_fields ? 1 : 0;
    submit(c, req, w, rp);
}

static void create_tokens(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, const rc_fields *f,
                          int ok_status)
{
    uint32_t n = f->has_number ? f->number : 1;
    if (over_tokens(rp, n)) {
        limit_exceeded(c, req, "the project has rtcat_max_tokens tokens");
        return;
    }
    rc_write *w = new_write(W_NEW_TOKENS, n);
    if (!w) {
        send_error(c, req, NULL, 500, "internal", "out of memory");
        return;
    }
    memcpy(w->sess.uuid, s->o.uuid, sizeof w->sess.uuid);
    int64_t now = now_us();
    for (uint32_t i = 0; i < n; i++) {
        const char *err = obj_from_fields(&w->tok[i], f, true, &rp->p->limits, now);
        if (err) {
            write_free(w);
            bad_param(c, req, err);
            return;
        }
    }
    w->array = n > 1;
    w->ok_status = ok_status;
    w->reserved_tokens = n;
    submit(c, req, w, rp);
}

typedef enum { F_ALL, F_PERMANENT, F_NONPERMANENT } list_filter;

static bool filter_ok(const rc_obj *o, list_filter f)
{
    return f == F_ALL || (f == F_PERMANENT) == o->permanent;
}

/* One page of the sessions of rp (s NULL) or of the tokens of s. */
static void list_objects(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, list_filter filter)
{
    uint32_t page, size;
    if (!parse_paging(c, req, &page, &size))
        return;
    int64_t now = now_us();
    uint64_t skip = (uint64_t)(page - 1) * size, total = 0;
    json_t *arr = json_array();
    if (!s) {
        for (rc_session *x = rp->first; x; x = x->next) {
            if (obj_expired(&x->o, now) || !filter_ok(&x->o, filter))
                continue;
            if (total >= skip && total < skip + size)
                json_array_append_new(arr, obj_json(&x->o, NULL));
            total++;
        }
    } else {
        for (rc_token *t = s->first; t; t = t->next) {
            if (obj_expired(&t->o, now) || !filter_ok(&t->o, filter))
                continue;
            if (total >= skip && total < skip + size)
                json_array_append_new(arr, obj_json(&t->o, s->o.uuid));
            total++;
        }
    }
    char hdr[64];
    snprintf(hdr, sizeof hdr, "X-Total-Count: %llu\r\n", (unsigned long long)total);
    send_json(c, req, NULL, 200, arr, hdr);
}

static void method_not_allowed(rtmd_conn *c, const http_request *req)
{
    send_error(c, req, NULL, 405, "method_not_allowed", "this resource does not answer that method");
}

static bool is(const http_request *req, const char *m)
{
    if (strcmp(m, "GET") == 0 && strcmp(req->method, "HEAD") == 0)
        return true;
    return strcmp(req->method, m) == 0;
}

static void patch_object(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, rc_token *t)
{
    rc_fields f = {0};
    if (!parse_body(c, req, &f)) {
        fields_clear(&f);
        return;
    }
    rc_write *w = new_write(t ? W_SET_TOKEN : W_SET_SESSION, t ? 1 : 0);
    const char *err = w ? obj_patch(t ? &w->tok[0] : &w->sess, t ? &t->o : &s->o, &f, &rp->p->limits) : NULL;
    fields_clear(&f);
    if (!w || err) {
        if (w)
            write_free(w);
        if (w)
            bad_param(c, req, err);
        else
            send_error(c, req, NULL, 500, "internal", "out of memory");
        return;
    }
    if (t)
        memcpy(w->sess.uuid, t->s->o.uuid, sizeof w->sess.uuid);
    submit(c, req, w, rp);
}

static void delete_object(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, rc_token *t)
{
    rc_write *w = new_write(t ? W_DEL_TOKEN : W_DEL_SESSION, t ? 1 : 0);
    if (!w) {
        send_error(c, req, NULL, 500, "internal", "out of memory");
        return;
    }
    if (t)
        memcpy(w->tok[0].uuid, t->o.uuid, sizeof w->tok[0].uuid);
    else
        memcpy(w->sess.uuid, s->o.uuid, sizeof w->sess.uuid);
    submit(c, req, w, rp);
}

/* The project whose API key and secret the request carries, or NULL. */
static rc_project *authenticate(struct rtcat_state *st, const http_request *req)
{
    const char *key = http_request_header(req, "x-rtcat-apikey");
    const char *secret = http_request_header(req, "x-rtcat-secret");
    if (!key || !secret)
        return NULL;
    for (size_t i = 0; i < st->nprojects; i++) {
        const rtmd_project_config *l = &st->projects[i].p->limits;
        if (strcmp(l->rtcat_apikey, key) != 0)
            continue;
        size_t n = strlen(l->rtcat_secret);
        if (strlen(secret) == n && CRYPTO_memcmp(l->rtcat_secret, secret, n) == 0)
            return &st->projects[i];
        return NULL;
    }
    return NULL;
}

/* Every path under /v0.4/. */
static void route_api(rtmd_conn *c, const http_request *req)
{
    struct rtcat_state *st = state(c->srv);
    if (req->body_len > RC_BODY_MAX) {
        send_error(c, req, NULL, 413, "body_too_large", "the body is over 16 KiB");
        return;
    }
    rc_project *rp = st ? authenticate(st, req) : NULL;
    if (!rp) {
        send_error(c, req, NULL, 401, "unauthorized", "missing or wrong X-RTCAT-APIKEY / X-RTCAT-SECRET");
        return;
    }
    /* Up to five segments after /v0.4/. */
    char path[sizeof req->path];
    snprintf(path, sizeof path, "%s", req->path + strlen("/v0.4/"));
    const char *seg[6] = {0};
    size_t nseg = 0;
    for (char *p = path, *save = NULL, *tok; (tok = strtok_r(p, "/", &save)) != NULL; p = NULL) {
        if (nseg == 6) {
            not_found(c, req);
            return;
        }
        seg[nseg++] = tok;
    }
    int64_t now = now_us();
    if (nseg >= 1 && strcmp(seg[0], "sessions") == 0) {
        if (nseg == 1) {
            if (is(req, "GET"))
                list_objects(c, req, rp, NULL, F_ALL);
            else if (is(req, "POST")) {
                rc_fields f = {0};
                if (parse_body(c, req, &f))
                    create_session(c, req, rp, &f, 201, NULL);
                fields_clear(&f);
            } else
                method_not_allowed(c, req);
            return;
        }
        if (nseg == 2 && (strcmp(seg[1], "permanent") == 0 || strcmp(seg[1], "nonpermanent") == 0)) {
            if (is(req, "GET"))
                list_objects(c, req, rp, NULL, seg[1][0] == 'p' ? F_PERMANENT : F_NONPERMANENT);
            else
                method_not_allowed(c, req);
            return;
        }
        rc_session *s = session_get(st, rp, seg[1], strlen(seg[1]));
        if (s && obj_expired(&s->o, now))
            s = NULL;
        if (nseg == 2) {
            if (!is(req, "GET") && !is(req, "PATCH") && !is(req, "DELETE"))
                method_not_allowed(c, req);
            else if (!s)
                not_found(c, req);
            else if (is(req, "GET"))
                send_json(c, req, NULL, 200, obj_json(&s->o, NULL), NULL);
            else if (is(req, "PATCH"))
                patch_object(c, req, rp, s, NULL);
            else
                delete_object(c, req, rp, s, NULL);
            return;
        }
        if (strcmp(seg[2], "tokens") == 0 && nseg == 3) {
            if (!is(req, "GET") && !is(req, "POST"))
                method_not_allowed(c, req);
            else if (!s)
                not_found(c, req);
            else if (is(req, "GET"))
                list_objects(c, req, rp, s, F_ALL);
            else {
                rc_fields f = {0};
                if (parse_body(c, req, &f))
                    create_tokens(c, req, rp, s, &f, 201);
                fields_clear(&f);
            }
            return;
        }
        if (strcmp(seg[2], "tokens") == 0 && nseg == 4 &&
            (strcmp(seg[3], "permanent") == 0 || strcmp(seg[3], "nonpermanent") == 0)) {
            if (!is(req, "GET"))
                method_not_allowed(c, req);
            else if (!s)
                not_found(c, req);
            else
                list_objects(c, req, rp, s, seg[3][0] == 'p' ? F_PERMANENT : F_NONPERMANENT);
            return;
        }
    } else if (nseg == 2 && strcmp(seg[0], "tokens") == 0) {
        rc_token *t = token_get(st, rp, seg[1], strlen(seg[1]));
        if (t && token_expired(t, now))
            t = NULL;
        if (!is(req, "GET") && !is(req, "PATCH") && !is(req, "DELETE"))
            method_not_allowed(c, req);
        else if (!t)
            not_found(c, req);
        else if (is(req, "GET"))
            send_json(c, req, NULL, 200, obj_json(&t->o, t->s->o.uuid), NULL);
        else if (is(req, "PATCH"))
            patch_object(c, req, rp, t->s, t);
        else
            delete_object(c, req, rp, t->s, t);
        return;
    }
    send_error(c, req, NULL, 404, "not_found", "no such resource");
}

/* ---- the demo backend (unauthenticated, rtcat_demo = 1) ---- */

static rc_project *demo_project(rtmd_conn *c)
{
    struct rtcat_state *st = state(c->srv);
    return st ? st->demo : NULL;
}

/* GET /sessions: a new session labelled "demo". */
static void route_demo_sessions(rtmd_conn *c, const http_request *req)
{
    rc_project *rp = demo_project(c);
    if (!rp) {
        send_error(c, req, NULL, 404, "not_found", "no such resource");
        return;
    }
    rc_fields f = {.label = "demo"};
    create_session(c, req, rp, &f, 200, NULL);
}

/* GET /:sessionId/tokens: a new pub token in that session. */
static void route_demo_session_tokens(rtmd_conn *c, const http_request *req)
{
    rc_project *rp = demo_project(c);
    const char *id = req->path + 1, *slash = strchr(id, '/');
    rc_session *s = rp && slash ? session_get(state(c->srv), rp, id, (size_t)(slash - id)) : NULL;
    if (!s || obj_expired(&s->o, now_us())) {
        send_error(c, req, NULL, 404, "not_found", rp ? "no such session" : "no such resource");
        return;
    }
    rc_fields f = {0};
    create_tokens(c, req, rp, s, &f, 200);
}

/* GET /tokens/:sessionName: a new pub token in the oldest live session
 * labelled sessionName, made when there is none. */
static void route_demo_named_tokens(rtmd_conn *c, const http_request *req)
{
    rc_project *rp = demo_project(c);
    if (!rp) {
        send_error(c, req, NULL, 404, "not_found", "no such resource");
        return;
    }
    const char *raw = req->path + strlen("/tokens/");
    char name[RC_LABEL_MAX + 1];
    long n = http_url_decode(raw, strlen(raw), name, sizeof name);
    if (n <= 0 || strchr(name, '/') || !rtm_utf8_valid(name, (size_t)n)) {
        bad_param(c, req, "sessionName: 1 to 255 bytes of UTF-8");
        return;
    }
    int64_t now = now_us();
    rc_fields none = {0};
    for (rc_session *s = rp->first; s; s = s->next)
        if (!obj_expired(&s->o, now) && s->o.label && strcmp(s->o.label, name) == 0) {
            create_tokens(c, req, rp, s, &none, 200);
            return;
        }
    rc_fields f = {.label = name};
    create_session(c, req, rp, &f, 200, &none);
}

static const rtmd_http_route demo_routes[] = {
    {"GET", "/sessions", route_demo_sessions},
    {"GET", "/tokens/*", route_demo_named_tokens},
    {"GET", "/*/tokens", route_demo_session_tokens},
};

/* ---- the client gate ---- */

int rtcat_token_check(rtmd_server *srv, int64_t pid, const char *token, size_t len, rtcat_grant *out)
{
    struct rtcat_state *st = state(srv);
    rc_project *rp = project_of(st, pid);
    rc_token *t = rp ? token_get(st, rp, token, len) : NULL;
    if (!t)
        return RTCAT_TOKEN_INVALID;
    if (token_expired(t, now_us()))
        return RTCAT_TOKEN_EXPIRED;
    memcpy(out->token, t->o.uuid, sizeof out->token);
    memcpy(out->session, t->s->o.uuid, sizeof out->session);
    out->pub = t->o.type == 0;
    return RTCAT_TOKEN_OK;
}

int rtcat_bind(rtmd_server *srv, rtmd_conn *c, int64_t pid, int64_t uid, const rtcat_grant *g)
{
    struct rtcat_state *st = state(srv);
    rc_login *l = st ? malloc(sizeof *l) : NULL;
    if (!l)
        return -1;
    *l = (rc_login){.pid = pid, .uid = uid, .pub = g->pub};
    memcpy(l->token, g->token, sizeof l->token);
    memcpy(l->session, g->session, sizeof l->session);
    rc_login *old = pairmap_get(&st->logins, (uint64_t)(uintptr_t)c, 0);
    if (pairmap_put(&st->logins, (uint64_t)(uintptr_t)c, 0, l) != 0) {
        free(l);
        return -1;
    }
    free(old);
    return 0;
}

bool rtcat_gate(rtmd_request *req)
{
    struct rtcat_state *st = state(req->srv);
    const rc_login *l = st ? pairmap_get(&st->logins, (uint64_t)(uintptr_t)req->conn, 0) : NULL;
    if (!l)
        return true;
    bool send = strcmp(req->method, "sendroommsg") == 0;
    if (!send && strcmp(req->method, "enterroom") != 0 && strcmp(req->method, "leaveroom") != 0 &&
        strcmp(req->method, "getroommsg") != 0) {
        request_error(req, RTM_EC_FORBIDDEN_METHOD, "a RealTimeCat token may not call this method");
        return false;
    }
    const msgpack_object *rid = mp_map_get(req->args, "rid");
    if (!rid || rid->type != MSGPACK_OBJECT_STR || rid->via.str.size != RTCAT_UUID_LEN ||
        memcmp(rid->via.str.ptr, l->session, RTCAT_UUID_LEN) != 0) {
        request_error(req, RTM_EC_PERMISSION_DENIED, "a RealTimeCat token may use only its session's room");
        return false;
    }
    if (send && !l->pub) {
        request_error(req, RTM_EC_PERMISSION_DENIED, "sub token: receive only");
        return false;
    }
    return true;
}

static void on_session_end(rtmd_server *srv, const rtmd_event *ev)
{
    struct rtcat_state *st = state(srv);
    if (st && ev->conn)
        free(pairmap_del(&st->logins, (uint64_t)(uintptr_t)ev->conn, 0));
}

/* ---- expiry ---- */

static void on_tick(uv_timer_t *t)
{
    struct rtcat_state *st = t->data;
    rtmd_server *srv = st->srv;
    if (rtmd_timer_end_on_stop(srv, t, &st->timer_closed))
        return;
    uint64_t now_ms = uv_now(srv->loop);
    if (now_ms - st->last_purge_ms < (uint64_t)srv->cfg.retention_interval * 1000u)
        return;
    st->last_purge_ms = now_ms;
    sweep_memory(st, now_us());
    if (srv->store) {
        module_purge_expired(srv, "DELETE FROM rtcat_tokens WHERE expire_us <= ?1 * 1000000", "RealTimeCat tokens");
        module_purge_expired(srv, "DELETE FROM rtcat_sessions WHERE expire_us <= ?1 * 1000000",
                             "RealTimeCat sessions");
    }
}

/* ---- start and exit ---- */

typedef struct rc_load {
    struct rtcat_state *st;
    int64_t now;
    size_t sessions, tokens;
} rc_load;

static char *col_text(db_stmt_t *q, int i)
{
    const char *s = db_column_text(q, i);
    return s && *s ? strdup((const char *)s) : NULL;
}

static void col_obj(db_stmt_t *q, int first, rc_obj *o)
{
    const char *u = db_column_text(q, 0);
    snprintf(o->uuid, sizeof o->uuid, "%s", u ? (const char *)u : "");
    o->label = col_text(q, first);
    o->data = col_text(q, first + 1);
    o->type = (uint8_t)db_column_int(q, first + 2);
    o->permanent = db_column_int(q, first + 3) != 0;
    o->live_days = (uint32_t)db_column_int64(q, first + 4);
    o->created_us = db_column_int64(q, first + 5);
    o->expire_us = o->permanent ? 0 : db_column_int64(q, first + 6);
}

static int load_all(db_conn *db, void *arg)
{
    rc_load *l = arg;
    struct rtcat_state *st = l->st;
    db_stmt_t *q;
    int rc = db_prepare(db, "SELECT uuid, pid, label, data, type, permanent, live_days, created_us, expire_us "
                                "FROM rtcat_sessions WHERE permanent = 1 OR expire_us > ?1 ORDER BY created_us, rowid", &q);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(q, 1, l->now);
    while ((rc = db_step(q)) == DB_ROW) {
        rc_project *rp = project_of(st, db_column_int64(q, 1));
        if (!rp)
            continue;
        rc_obj o = {0};
        col_obj(q, 2, &o);
        if (!session_add(st, rp, &o)) {
            obj_clear(&o);
            rc = DB_NOMEM;
            break;
        }
        l->sessions++;
    }
    db_finalize(q);
    if (rc != DB_DONE)
        return rc;
    rc = db_prepare(db, "SELECT uuid, session_uuid, label, data, type, permanent, live_days, created_us, "
                            "expire_us FROM rtcat_tokens WHERE permanent = 1 OR expire_us > ?1 "
                            "ORDER BY created_us, rowid", &q);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(q, 1, l->now);
    while ((rc = db_step(q)) == DB_ROW) {
        const char *su = db_column_text(q, 1);
        uint64_t a, b;
        rc_session *s = su && uuid_key((const char *)su, strlen((const char *)su), &a, &b)
                            ? pairmap_get(&st->sessions, a, b)
                            : NULL;
        if (!s)
            continue;
        rc_obj o = {0};
        col_obj(q, 2, &o);
        if (!token_add(st, s, &o)) {
            obj_clear(&o);
            rc = DB_NOMEM;
            break;
        }
        l->tokens++;
    }
    db_finalize(q);
    return rc == DB_DONE ? DB_OK : rc;
}

/* The demo backend's project: the one with rtcat_demo = 1, or, when the
 * configuration names no projects and demo_dir is set, the demo project of
 * the store (server.c derives its API key), as demo.c picks it. */
static int pick_demo(struct rtcat_state *st, rtmd_server *srv, char *err, size_t errlen)
{
    const rtmd_project *found = NULL;
    for (size_t i = 0; i < srv->nprojects; i++) {
        const rtmd_project *p = &srv->projects[i];
        if (!p->limits.rtcat_demo)
            continue;
        if (found) {
            snprintf(err, errlen, "rtcat_demo = 1 is set for projects %lld and %lld: at most one project",
                     (long long)found->pid, (long long)p->pid);
            return -1;
        }
        if (!rtcat_enabled(p)) {
            snprintf(err, errlen, "project %lld has rtcat_demo = 1 but no rtcat_apikey and rtcat_secret",
                     (long long)p->pid);
            return -1;
        }
        found = p;
    }
    if (!found && srv->cfg.nprojects == 0 && srv->nprojects == 1 && srv->cfg.demo_dir[0] &&
        rtcat_enabled(&srv->projects[0]))
        found = &srv->projects[0];
    st->demo = found ? project_of(st, found->pid) : NULL;
    return 0;
}

static int rtcat_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct rtcat_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    st->srv = srv;
    srv->svc->rtcat = st;
    uv_timer_init(srv->loop, &st->timer);
    st->timer.data = st;
    uv_timer_start(&st->timer, on_tick, 1000, 1000);
    st->last_purge_ms = uv_now(srv->loop);
    st->projects = calloc(srv->nprojects ? srv->nprojects : 1, sizeof *st->projects);
    if (!st->projects) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < srv->nprojects; i++) {
        const rtmd_project *p = &srv->projects[i];
        if (!rtcat_enabled(p))
            continue;
        for (size_t k = 0; k < st->nprojects; k++)
            if (strcmp(st->projects[k].p->limits.rtcat_apikey, p->limits.rtcat_apikey) == 0) {
                snprintf(err, errlen, "projects %lld and %lld have the same rtcat_apikey: it names the project",
                         (long long)st->projects[k].p->pid, (long long)p->pid);
                return -1;
            }
        st->projects[st->nprojects++].p = p;
    }
    if (pick_demo(st, srv, err, errlen) != 0)
        return -1;
    if (st->demo && http_register(srv->http, demo_routes, sizeof demo_routes / sizeof demo_routes[0]) != 0) {
        snprintf(err, errlen, "rtcat: too many HTTP routes");
        return -1;
    }
    if (st->nprojects) {
        rc_load l = {st, now_us(), 0, 0};
        if (module_load(srv, load_all, &l) != DB_OK) {
            snprintf(err, errlen, "cannot load RealTimeCat sessions and tokens from the store");
            return -1;
        }
        LOG_INFO("rtcat: %zu sessions and %zu tokens loaded%s", l.sessions, l.tokens,
                 st->demo ? "; demo backend at /sessions, /:sessionId/tokens, /tokens/:sessionName" : "");
    }
    return 0;
}

static void rtcat_free(rtmd_server *srv)
{
    struct rtcat_state *st = state(srv);
    if (!st)
        return;
    for (size_t i = 0; i < st->nprojects; i++)
        while (st->projects[i].first)
            session_free(st, st->projects[i].first);
    for (size_t i = 0; i < st->logins.cap; i++)
        free(st->logins.slots[i].value);
    pairmap_free(&st->logins);
    pairmap_free(&st->sessions);
    pairmap_free(&st->tokens);
    free(st->projects);
    srv->svc->rtcat = NULL;
    if (rtmd_timer_release(&st->timer, st->timer_closed))
        free(st);
}

static void rtcat_metrics(const rtmd_server *srv, prom_out *out)
{
    const struct rtcat_state *st = srv->svc->rtcat;
    prom_metric(out, "rtmd_rtcat_sessions", "gauge", "RealTimeCat sessions held in memory.",
                st ? st->sessions.count : 0);
    prom_metric(out, "rtmd_rtcat_tokens", "gauge", "RealTimeCat tokens held in memory.", st ? st->tokens.count : 0);
}

static const rtmd_http_route rtcat_routes[] = {
    {NULL, "/v0.4/*", route_api},
};

static const rtmd_observer rtcat_observers[] = {
    {RTMD_EV_SESSION_END, on_session_end},
};

const rtmd_module rtcat_module = {
    .name = "rtcat",
    .init = rtcat_init,
    .free = rtcat_free,
    .metrics = rtcat_metrics,
    RTMD_MODULE_ROUTES(rtcat_routes),
    RTMD_MODULE_OBSERVERS(rtcat_observers),
};
