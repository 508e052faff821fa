/* The changes of RealTimeCat's model: creating sessions and tokens (within
 * rtcat_max_sessions / rtcat_max_tokens, creations in flight counted so
 * that the limits stay exact), changing and deleting them, each one write
 * through the store. As in groups.c, a change is applied to memory in the
 * store's done callback, after commit, and only then answered (the HTTP
 * answer is deferred, http.h; on a cluster, once every other node has
 * reloaded it too); deleting a session or token kicks its token logins
 * (logins.c). Used by the REST routes (rest.c) and the demo
 * backend (demo_backend.c). */
#include "rtcat_internal.h"

#include "log.h"
#include "module.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    uint32_t max_sessions, max_tokens; /* creations on PostgreSQL: the caps counted in the store */
    const char *over;  /* which cap the store's count refused (DB_REFUSED) */
    rc_obj sess;       /* the new or updated session; its uuid for token writes */
    json_t *answer;    /* once applied here: the answer (taken by rc_send_json) */
    int answer_code;   /* its status; 204: no body */
    uint32_t ntok;
    rc_obj tok[];
} rc_write;

static void write_free(rc_write *w)
{
    json_decref(w->answer);
    rc_obj_clear(&w->sess);
    for (uint32_t i = 0; i < w->ntok; i++)
        rc_obj_clear(&w->tok[i]);
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

/* A creation on PostgreSQL, where other nodes create too, runs under the
 * project's advisory lock and counts the project's sessions and tokens
 * after its inserts: past a cap it is refused (w->over, DB_REFUSED: the
 * store undoes it). On SQLite the lock does nothing and the in-memory
 * count of rc_create_* is exact. */
static int count_creation(db_conn *db, rc_write *w)
{
    int rc = DB_OK;
    if (w->reserved_sessions &&
        (rc = module_count_within(db, "SELECT count(*) FROM rtcat_sessions WHERE pid = ?1", w->pid, 0,
                                  w->max_sessions)) == DB_REFUSED)
        w->over = "the project has rtcat_max_sessions sessions";
    if (rc == DB_OK && w->reserved_tokens &&
        (rc = module_count_within(db, "SELECT count(*) FROM rtcat_tokens WHERE pid = ?1", w->pid, 0,
                                  w->max_tokens)) == DB_REFUSED)
        w->over = "the project has rtcat_max_tokens tokens";
    return rc;
}

static int apply_write(db_conn *db, void *arg)
{
    rc_write *w = arg;
    int rc = DB_OK;
    w->over = NULL; /* a replay starts afresh */
    bool counted = db_is_postgres(db) && (w->reserved_sessions || w->reserved_tokens);
    if (counted && (rc = module_limit_lock(db, MODULE_LIMIT_RTCAT, w->pid, 0)) != DB_OK)
        return rc;
    switch (w->op) {
    case W_NEW_SESSION:
        rc = insert_obj(db, &w->sess, NULL, w->pid);
        break;
    case W_NEW_SESSION_TOKEN:
        rc = insert_obj(db, &w->sess, NULL, w->pid);
        /* fall through */
    case W_NEW_TOKENS:
        for (uint32_t i = 0; i < w->ntok && rc == DB_OK; i++)
            rc = insert_obj(db, &w->tok[i], w->sess.uuid, w->pid);
        break;
    case W_SET_SESSION:
        return update_obj(db, &w->sess, false);
    case W_SET_TOKEN:
        return update_obj(db, &w->tok[0], true);
    case W_DEL_SESSION:
        return delete_obj(db, w->sess.uuid, false);
    case W_DEL_TOKEN:
        return delete_obj(db, w->tok[0].uuid, true);
    default:
        return DB_MISUSE;
    }
    return rc == DB_OK && counted ? count_creation(db, w) : rc;
}

/* Sends the answer kept in w: once applied here and, on a cluster, on
 * every other node. */
static void write_answer(void *arg)
{
    rc_write *w = arg;
    if (w->answer_code == 204)
        http_deferred_respond(&w->d, 204, "application/json", RC_JSON_HEADERS, "", 0);
    else
        rc_send_json(NULL, NULL, &w->d, w->answer_code, w->answer, NULL);
    w->answer = NULL;
    write_free(w);
}

static void write_done(void *arg, int status)
{
    rc_write *w = arg;
    struct rtcat_state *st = rc_state(w->srv);
    rc_project *rp = rc_project_of(st, w->pid);
    if (rp) {
        rp->reserved_sessions -= w->reserved_sessions;
        rp->reserved_tokens -= w->reserved_tokens;
    }
    if (!rp) {
        rc_send_error(NULL, NULL, &w->d, 503, "unavailable", "server stopping");
        write_free(w);
        return;
    }
    if (status == DB_REFUSED && w->over) {
        rc_send_error(NULL, NULL, &w->d, 429, "limit_exceeded", w->over);
        write_free(w);
        return;
    }
    if (status != DB_OK) {
        LOG_ERROR("rtcat: a write of project %lld failed: %s", (long long)w->pid, db_errstr(status));
        rc_send_error(NULL, NULL, &w->d, 503, "store_error", "the store failed");
        write_free(w);
        return;
    }
    json_t *j = NULL;
    int code = 200;
    rc_session *s = rc_session_get(st, rp, w->sess.uuid, strlen(w->sess.uuid));
    switch (w->op) {
    case W_NEW_SESSION:
    case W_NEW_SESSION_TOKEN:
        j = w->op == W_NEW_SESSION ? rc_obj_json(&w->sess, NULL) : NULL;
        s = rc_session_add(st, rp, &w->sess);
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
            json_t *o = rc_obj_json(&w->tok[i], w->sess.uuid);
            if (w->array)
                json_array_append_new(j, o);
            else
                j = o;
            if (s && !rc_token_add(st, s, &w->tok[i]))
                LOG_ERROR("rtcat: out of memory: token stored but not loaded until a restart");
        }
        code = w->ok_status;
        break;
    case W_SET_SESSION:
        if (s) {
            rc_obj_clear(&s->o);
            s->o = w->sess;
            w->sess.label = w->sess.data = NULL;
            j = rc_obj_json(&s->o, NULL);
        } else {
            j = rc_obj_json(&w->sess, NULL);
        }
        break;
    case W_SET_TOKEN: {
        rc_token *t = rc_token_get(st, rp, w->tok[0].uuid, RTCAT_UUID_LEN);
        if (t) {
            rc_obj_clear(&t->o);
            t->o = w->tok[0];
            w->tok[0].label = w->tok[0].data = NULL;
            j = rc_obj_json(&t->o, t->s->o.uuid);
        } else {
            j = rc_obj_json(&w->tok[0], w->sess.uuid);
        }
        break;
    }
    case W_DEL_SESSION:
        if (s)
            rc_session_free(st, s);
        rc_kick_logins(st, w->sess.uuid, NULL, RTCAT_SESSION_DELETED);
        code = 204;
        break;
    case W_DEL_TOKEN: {
        rc_token *t = rc_token_get(st, rp, w->tok[0].uuid, RTCAT_UUID_LEN);
        if (t)
            rc_token_free(st, t);
        rc_kick_logins(st, NULL, w->tok[0].uuid, RTCAT_TOKEN_DELETED);
        code = 204;
        break;
    }
    }
    w->answer = j;
    w->answer_code = code;
    if (!rc_tell_nodes(w->srv, w->pid, w->sess.uuid, write_answer, w))
        write_answer(w);
}

static void submit(rtmd_conn *c, const http_request *req, rc_write *w, rc_project *rp)
{
    w->srv = c->srv;
    w->pid = rp->p->pid;
    w->max_sessions = rp->p->limits.rtcat_max_sessions;
    w->max_tokens = rp->p->limits.rtcat_max_tokens;
    rp->reserved_sessions += w->reserved_sessions;
    rp->reserved_tokens += w->reserved_tokens;
    http_defer(c, req, &w->d);
    if (store_submit(c->srv->store, apply_write, write_done, w) != 0) {
        rp->reserved_sessions -= w->reserved_sessions;
        rp->reserved_tokens -= w->reserved_tokens;
        rc_send_error(NULL, NULL, &w->d, 503, "unavailable", "server stopping");
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

static void obj_set_expiry(rc_obj *o, uint32_t day_seconds)
{
    o->expire_us = o->permanent ? 0 : o->created_us + (int64_t)o->live_days * day_seconds * 1000000;
}

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

/* ---- creations, changes and deletions ---- */

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
    rc_send_error(c, req, NULL, 429, "limit_exceeded", what);
}

/* See rtcat_internal.h. */
void rc_create_session(rtmd_conn *c, const http_request *req, rc_project *rp, const rc_fields *f,
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
        rc_send_error(c, req, NULL, 500, "internal", "out of memory");
        return;
    }
    const char *err = obj_from_fields(&w->sess, f, false, &rp->p->limits, rc_created_us(rp));
    if (!err && token_fields)
        err = obj_from_fields(&w->tok[0], token_fields, true, &rp->p->limits, rc_created_us(rp));
    if (err) {
        write_free(w);
        rc_bad_param(c, req, err);
        return;
    }
    w->ok_status = ok_status;
    w->reserved_sessions = 1;
    w->reserved_tokens = token_fields ? 1 : 0;
    submit(c, req, w, rp);
}

void rc_create_tokens(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, const rc_fields *f,
                      int ok_status)
{
    uint32_t n = f->has_number ? f->number : 1;
    if (over_tokens(rp, n)) {
        limit_exceeded(c, req, "the project has rtcat_max_tokens tokens");
        return;
    }
    rc_write *w = new_write(W_NEW_TOKENS, n);
    if (!w) {
        rc_send_error(c, req, NULL, 500, "internal", "out of memory");
        return;
    }
    memcpy(w->sess.uuid, s->o.uuid, sizeof w->sess.uuid);
    for (uint32_t i = 0; i < n; i++) {
        const char *err = obj_from_fields(&w->tok[i], f, true, &rp->p->limits, rc_created_us(rp));
        if (err) {
            write_free(w);
            rc_bad_param(c, req, err);
            return;
        }
    }
    w->array = n > 1;
    w->ok_status = ok_status;
    w->reserved_tokens = n;
    submit(c, req, w, rp);
}

void rc_patch_object(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, rc_token *t)
{
    rc_fields f = {0};
    if (!rc_parse_body(c, req, &f)) {
        rc_fields_clear(&f);
        return;
    }
    rc_write *w = new_write(t ? W_SET_TOKEN : W_SET_SESSION, t ? 1 : 0);
    const char *err = w ? obj_patch(t ? &w->tok[0] : &w->sess, t ? &t->o : &s->o, &f, &rp->p->limits) : NULL;
    rc_fields_clear(&f);
    if (!w || err) {
        if (w) {
            write_free(w);
            rc_bad_param(c, req, err);
        } else {
            rc_send_error(c, req, NULL, 500, "internal", "out of memory");
        }
        return;
    }
    if (t)
        memcpy(w->sess.uuid, t->s->o.uuid, sizeof w->sess.uuid);
    submit(c, req, w, rp);
}

void rc_delete_object(rtmd_conn *c, const http_request *req, rc_project *rp, rc_session *s, rc_token *t)
{
    rc_write *w = new_write(t ? W_DEL_TOKEN : W_DEL_SESSION, t ? 1 : 0);
    if (!w) {
        rc_send_error(c, req, NULL, 500, "internal", "out of memory");
        return;
    }
    if (t)
        memcpy(w->tok[0].uuid, t->o.uuid, sizeof w->tok[0].uuid);
    memcpy(w->sess.uuid, t ? t->s->o.uuid : s->o.uuid, sizeof w->sess.uuid);
    submit(c, req, w, rp);
}
