/* The in-memory model of RealTimeCat (rtcat_internal.h): sessions and
 * tokens, mirrored from the rtcat_sessions and rtcat_tokens tables per
 * project (sessions oldest first, each with its tokens oldest first, and
 * an index of each by uuid), their uuids and times, the load at start and
 * the expiry: an object whose expire_in passed (or a token whose session's
 * did) behaves as deleted: 404, absent from lists, refused at login. Every
 * retention_interval seconds the expired objects leave memory and the
 * store (module_purge_expired). A "day" of live_days is the project's
 * rtcat_day_seconds (86400; shorter only for tests and demos). Changes
 * come from the done callbacks of writes.c. */
#include "rtcat_internal.h"

#include "cluster.h"
#include "grow.h"
#include "log.h"
#include "module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rtcat_state *rc_state(rtmd_server *srv)
{
    return srv->svc ? srv->svc->rtcat : NULL;
}

rc_project *rc_project_of(struct rtcat_state *st, int64_t pid)
{
    for (size_t i = 0; st && i < st->nprojects; i++)
        if (st->projects[i].p->pid == pid && st->projects[i].on)
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

int64_t rc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The created_us of a new object of rp: the clock, but past the project's
 * newest, so that created_us alone orders the objects as they were made
 * (the tokens of one request included) when the store loads them. */
int64_t rc_created_us(rc_project *rp)
{
    int64_t now = rc_now_us();
    if (now <= rp->last_created_us)
        now = rp->last_created_us + 1;
    rp->last_created_us = now;
    return now;
}

bool rc_obj_expired(const rc_obj *o, int64_t now)
{
    return !o->permanent && o->expire_us <= now;
}

bool rc_token_expired(const rc_token *t, int64_t now)
{
    return rc_obj_expired(&t->o, now) || rc_obj_expired(&t->s->o, now);
}

void rc_obj_clear(rc_obj *o)
{
    free(o->label);
    free(o->data);
    o->label = o->data = NULL;
}

/* ---- memory ---- */

rc_session *rc_session_get(struct rtcat_state *st, const rc_project *rp, const char *uuid, size_t len)
{
    uint64_t a, b;
    if (!uuid_key(uuid, len, &a, &b))
        return NULL;
    rc_session *s = pairmap_get(&st->sessions, a, b);
    return s && s->rp == rp ? s : NULL;
}

rc_token *rc_token_get(struct rtcat_state *st, const rc_project *rp, const char *uuid, size_t len)
{
    uint64_t a, b;
    if (!uuid_key(uuid, len, &a, &b))
        return NULL;
    rc_token *t = pairmap_get(&st->tokens, a, b);
    return t && t->s->rp == rp ? t : NULL;
}

/* Takes o (its strings move). NULL when out of memory. */
rc_session *rc_session_add(struct rtcat_state *st, rc_project *rp, rc_obj *o)
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

rc_token *rc_token_add(struct rtcat_state *st, rc_session *s, rc_obj *o)
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

void rc_token_free(struct rtcat_state *st, rc_token *t)
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
    rc_obj_clear(&t->o);
    free(t);
}

void rc_session_free(struct rtcat_state *st, rc_session *s)
{
    while (s->first)
        rc_token_free(st, s->first);
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
    rc_obj_clear(&s->o);
    free(s);
}

/* Drops the expired sessions and tokens from memory. */
static void sweep_memory(struct rtcat_state *st, int64_t now)
{
    for (size_t i = 0; i < st->nprojects; i++) {
        rc_session *s = st->projects[i].first;
        while (s) {
            rc_session *next = s->next;
            if (rc_obj_expired(&s->o, now)) {
                rc_session_free(st, s);
            } else {
                for (rc_token *t = s->first, *tn; t; t = tn) {
                    tn = t->next;
                    if (rc_obj_expired(&t->o, now))
                        rc_token_free(st, t);
                }
            }
            s = next;
        }
    }
}

/* ---- expiry ---- */

void rc_on_tick(uv_timer_t *t)
{
    struct rtcat_state *st = t->data;
    rtmd_server *srv = st->srv;
    if (rtmd_timer_end_on_stop(srv, t, &st->timer_closed))
        return;
    uint64_t now_ms = uv_now(srv->loop);
    if (now_ms - st->last_purge_ms < (uint64_t)srv->cfg.retention_interval * 1000u)
        return;
    st->last_purge_ms = now_ms;
    sweep_memory(st, rc_now_us());
    if (srv->store) {
        module_purge_expired(srv, "DELETE FROM rtcat_tokens WHERE expire_us <= ?1 * 1000000", "RealTimeCat tokens");
        module_purge_expired(srv, "DELETE FROM rtcat_sessions WHERE expire_us <= ?1 * 1000000",
                             "RealTimeCat sessions");
    }
}

/* ---- the load at start ---- */

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

int rc_load_all(db_conn *db, void *arg)
{
    rc_load *l = arg;
    struct rtcat_state *st = l->st;
    db_stmt_t *q;
    int rc = db_prepare(db, "SELECT uuid, pid, label, data, type, permanent, live_days, created_us, expire_us "
                                "FROM rtcat_sessions WHERE permanent = 1 OR expire_us > ?1 ORDER BY created_us, uuid", &q);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(q, 1, l->now);
    while ((rc = db_step(q)) == DB_ROW) {
        rc_project *rp = rc_project_of(st, db_column_int64(q, 1));
        if (!rp)
            continue;
        rc_obj o = {0};
        col_obj(q, 2, &o);
        if (o.created_us > rp->last_created_us)
            rp->last_created_us = o.created_us;
        if (!rc_session_add(st, rp, &o)) {
            rc_obj_clear(&o);
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
                            "ORDER BY created_us, uuid", &q);
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
        if (o.created_us > s->rp->last_created_us)
            s->rp->last_created_us = o.created_us;
        if (!rc_token_add(st, s, &o)) {
            rc_obj_clear(&o);
            rc = DB_NOMEM;
            break;
        }
        l->tokens++;
    }
    db_finalize(q);
    return rc == DB_DONE ? DB_OK : rc;
}

/* ---- other nodes ----
 * A record {pid (8 bytes, big endian), session uuid (36 bytes)} after a
 * write of the session or its tokens; the receiver reads the session and
 * its live tokens on the writer (store_submit, in order with its own
 * writes), replaces its copy (in created_us order), and kicks its own token
 * logins of what went; the reload holds the record's acknowledgement (the
 * write is answered once every node has its copy). After a rejoin each
 * project is reloaded whole. */

#define RC_REC_LEN (8 + RTCAT_UUID_LEN)

typedef struct rc_reload {
    rtmd_server *srv;
    cluster_ack_token *hold; /* the acknowledgement it delays */
    int64_t pid, now;
    char uuid[RTCAT_UUID_LEN + 1]; /* empty: the whole project */
    rc_obj *sess, *tok;
    char (*tok_session)[RTCAT_UUID_LEN + 1];
    size_t nsess, ntok, capsess, captok;
    /* rtcat_token_fetch: the token whose session to read (uuid is then
     * found on the writer, or stays empty: nothing to read), and whom to
     * call once the copy is in place. */
    char token[RTCAT_UUID_LEN + 1];
    rtcat_fetch_cb cb;
    void *arg;
} rc_reload;

bool rc_tell_nodes(rtmd_server *srv, int64_t pid, const char *session_uuid, cluster_acked_fn done, void *arg)
{
    if (!cluster_enabled(srv) || strlen(session_uuid) != RTCAT_UUID_LEN)
        return false;
    uint8_t rec[RC_REC_LEN];
    cluster_ids_pack(rec, &pid, 1);
    memcpy(rec + 8, session_uuid, RTCAT_UUID_LEN);
    return cluster_send_all_acked(srv, CLUSTER_REC_INV_RTCAT, rec, sizeof rec, done, arg);
}

static void reload_free(rc_reload *r)
{
    cluster_ack_release(r->srv, r->hold);
    if (r->cb)
        r->cb(r->arg);
    for (size_t i = 0; i < r->nsess; i++)
        rc_obj_clear(&r->sess[i]);
    for (size_t i = 0; i < r->ntok; i++)
        rc_obj_clear(&r->tok[i]);
    free(r->sess);
    free(r->tok);
    free(r->tok_session);
    free(r);
}

static int apply_reload(db_conn *db, void *arg)
{
    rc_reload *r = arg;
    for (size_t i = 0; i < r->nsess; i++)
        rc_obj_clear(&r->sess[i]);
    for (size_t i = 0; i < r->ntok; i++)
        rc_obj_clear(&r->tok[i]);
    r->nsess = r->ntok = 0;
    db_stmt_t *q;
    int rc;
    if (r->token[0]) { /* rtcat_token_fetch: the token's session first */
        rc = db_prepare(db, "SELECT session_uuid FROM rtcat_tokens WHERE pid = ?1 AND uuid = ?2", &q);
        if (rc != DB_OK)
            return rc;
        db_bind_int64(q, 1, r->pid);
        db_bind_text(q, 2, r->token, RTCAT_UUID_LEN);
        rc = db_step(q);
        const char *su = rc == DB_ROW ? db_column_text(q, 0) : NULL;
        if (su && strlen(su) == RTCAT_UUID_LEN)
            memcpy(r->uuid, su, RTCAT_UUID_LEN + 1);
        db_finalize(q);
        if (rc != DB_ROW && rc != DB_DONE)
            return rc;
        if (!r->uuid[0])
            return DB_OK; /* no such token: nothing to read */
    }
    bool one = r->uuid[0] != 0;
    rc = db_prepare(db,
                        one ? "SELECT uuid, pid, label, data, type, permanent, live_days, created_us, expire_us FROM "
                              "rtcat_sessions WHERE pid = ?2 AND uuid = ?3 AND (permanent = 1 OR expire_us > ?1)"
                            : "SELECT uuid, pid, label, data, type, permanent, live_days, created_us, expire_us FROM "
                              "rtcat_sessions WHERE pid = ?2 AND (permanent = 1 OR expire_us > ?1) "
                              "ORDER BY created_us, uuid",
                        &q);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(q, 1, r->now);
    db_bind_int64(q, 2, r->pid);
    if (one)
        db_bind_text(q, 3, r->uuid, RTCAT_UUID_LEN);
    while ((rc = db_step(q)) == DB_ROW) {
        if (grow_for_one(&r->sess, &r->capsess, r->nsess, sizeof *r->sess) != 0) {
            rc = DB_NOMEM;
            break;
        }
        r->sess[r->nsess] = (rc_obj){0};
        col_obj(q, 2, &r->sess[r->nsess++]);
    }
    db_finalize(q);
    if (rc != DB_DONE)
        return rc;
    rc = db_prepare(db,
                    one ? "SELECT uuid, session_uuid, label, data, type, permanent, live_days, created_us, expire_us "
                          "FROM rtcat_tokens WHERE pid = ?2 AND session_uuid = ?3 AND (permanent = 1 OR expire_us > ?1) "
                          "ORDER BY created_us, uuid"
                        : "SELECT uuid, session_uuid, label, data, type, permanent, live_days, created_us, expire_us "
                          "FROM rtcat_tokens WHERE pid = ?2 AND (permanent = 1 OR expire_us > ?1) "
                          "ORDER BY created_us, uuid",
                    &q);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(q, 1, r->now);
    db_bind_int64(q, 2, r->pid);
    if (one)
        db_bind_text(q, 3, r->uuid, RTCAT_UUID_LEN);
    while ((rc = db_step(q)) == DB_ROW) {
        size_t cap_session = r->captok;
        if (grow_for_one(&r->tok_session, &cap_session, r->ntok, sizeof *r->tok_session) != 0 ||
            grow_for_one(&r->tok, &r->captok, r->ntok, sizeof *r->tok) != 0) {
            rc = DB_NOMEM;
            break;
        }
        const char *su = db_column_text(q, 1);
        snprintf(r->tok_session[r->ntok], RTCAT_UUID_LEN + 1, "%s", su ? su : "");
        r->tok[r->ntok] = (rc_obj){0};
        col_obj(q, 2, &r->tok[r->ntok++]);
    }
    db_finalize(q);
    return rc == DB_DONE ? DB_OK : rc;
}

/* Moves s (the project's last) back to its place by created_us, uuid. */
static void session_place(rc_project *rp, rc_session *s)
{
    rc_session *after = s->prev;
    while (after && (after->o.created_us > s->o.created_us ||
                     (after->o.created_us == s->o.created_us && strcmp(after->o.uuid, s->o.uuid) > 0)))
        after = after->prev;
    if (after == s->prev)
        return;
    /* unlink from the tail */
    rp->last = s->prev;
    rp->last->next = NULL;
    s->prev = after;
    s->next = after ? after->next : rp->first;
    if (after)
        after->next = s;
    else
        rp->first = s;
    s->next->prev = s;
}

/* Whether the reload kept a token of that uuid. */
static bool reload_has_token(const rc_reload *r, const char *uuid)
{
    for (size_t i = 0; i < r->ntok; i++)
        if (strcmp(r->tok[i].uuid, uuid) == 0)
            return true;
    return false;
}

static void reload_done(void *arg, int status)
{
    rc_reload *r = arg;
    struct rtcat_state *st = rc_state(r->srv);
    rc_project *rp = rc_project_of(st, r->pid);
    if (!rp || status != DB_OK) {
        if (rp)
            LOG_ERROR("rtcat: reloading project %lld for another node's change failed: %s", (long long)r->pid,
                      db_errstr(status));
        reload_free(r);
        return;
    }
    if (r->token[0] && !r->uuid[0]) { /* a token the store does not hold either */
        reload_free(r);
        return;
    }
    /* What goes: the old copy; logins of what is not in the reload are kicked. */
    if (r->uuid[0]) {
        rc_session *s = rc_session_get(st, rp, r->uuid, RTCAT_UUID_LEN);
        if (s) {
            bool gone = r->nsess == 0;
            for (rc_token *t = s->first; t && !gone; t = t->next)
                if (!reload_has_token(r, t->o.uuid))
                    rc_kick_logins(st, NULL, t->o.uuid, RTCAT_TOKEN_DELETED);
            if (gone)
                rc_kick_logins(st, r->uuid, NULL, RTCAT_SESSION_DELETED);
            rc_session_free(st, s);
        }
    } else {
        while (rp->first)
            rc_session_free(st, rp->first);
    }
    for (size_t i = 0; i < r->nsess; i++) {
        if (r->sess[i].created_us > rp->last_created_us)
            rp->last_created_us = r->sess[i].created_us;
        rc_session *s = rc_session_add(st, rp, &r->sess[i]);
        if (!s) {
            LOG_ERROR("rtcat: out of memory reloading a session of project %lld", (long long)r->pid);
            continue;
        }
        if (r->uuid[0])
            session_place(rp, s);
    }
    for (size_t i = 0; i < r->ntok; i++) {
        rc_session *s = rc_session_get(st, rp, r->tok_session[i], strlen(r->tok_session[i]));
        if (r->tok[i].created_us > rp->last_created_us)
            rp->last_created_us = r->tok[i].created_us;
        if (s && !rc_token_add(st, s, &r->tok[i]))
            LOG_ERROR("rtcat: out of memory reloading a token of project %lld", (long long)r->pid);
    }
    reload_free(r);
}

static void reload(rtmd_server *srv, int64_t pid, const char *uuid)
{
    rc_reload *r = calloc(1, sizeof *r);
    if (!r) {
        LOG_ERROR("rtcat: out of memory reloading project %lld", (long long)pid);
        return;
    }
    r->srv = srv;
    r->pid = pid;
    r->now = rc_now_us();
    if (uuid)
        memcpy(r->uuid, uuid, RTCAT_UUID_LEN);
    r->hold = cluster_ack_hold(srv);
    if (store_submit(srv->store, apply_reload, reload_done, r) != 0)
        reload_free(r);
}

int rtcat_token_fetch(rtmd_server *srv, int64_t pid, const char *token, size_t len, rtcat_fetch_cb cb, void *arg)
{
    struct rtcat_state *st = rc_state(srv);
    uint64_t a, b;
    if (!st || !cluster_enabled(srv) || cluster_node_count(srv) == 0 || !rc_project_of(st, pid) ||
        !uuid_key(token, len, &a, &b))
        return -1;
    rc_reload *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->srv = srv;
    r->pid = pid;
    r->now = rc_now_us();
    memcpy(r->token, token, RTCAT_UUID_LEN);
    if (store_submit(srv->store, apply_reload, reload_done, r) != 0) {
        reload_free(r);
        return -1;
    }
    r->cb = cb; /* from here on reload_free calls it */
    r->arg = arg;
    return 0;
}

/* A record from another node: hostile, checked (a project with the API,
 * a canonical uuid). */
static void on_invalidate(rtmd_server *srv, const uint8_t *data, size_t len)
{
    struct rtcat_state *st = rc_state(srv);
    int64_t pid;
    uint64_t a, b;
    if (!st || len != RC_REC_LEN || !cluster_ids_unpack(data, 8, &pid, 1) || !rc_project_of(st, pid) ||
        !uuid_key((const char *)data + 8, RTCAT_UUID_LEN, &a, &b))
        return;
    char uuid[RTCAT_UUID_LEN + 1];
    memcpy(uuid, data + 8, RTCAT_UUID_LEN);
    uuid[RTCAT_UUID_LEN] = 0;
    reload(srv, pid, uuid);
}

static void on_rejoin(rtmd_server *srv)
{
    struct rtcat_state *st = rc_state(srv);
    for (size_t i = 0; st && i < st->nprojects; i++)
        if (st->projects[i].on)
            reload(srv, st->projects[i].p->pid, NULL);
}

void rc_project_reload(rtmd_server *srv, int64_t pid)
{
    reload(srv, pid, NULL);
}

void rc_cluster_init(rtmd_server *srv)
{
    struct rtcat_state *st = rc_state(srv);
    if (st->cluster_hooked)
        return;
    st->cluster_hooked = true;
    cluster_on_record(srv, CLUSTER_REC_INV_RTCAT, on_invalidate);
    cluster_on_rejoin(srv, on_rejoin);
}
