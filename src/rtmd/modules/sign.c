/* Signatures of app-server requests (server gate): the current form
 * md5(pid:secret:salt:method:ts), and the older md5(pid:secret:salt) of old
 * server SDKs behind a per-project switch (legacy_sign, off by default); the
 * time window; the replay guard; and closing links that keep failing.
 *
 * Replays. Every accepted request has a time: its signed ts, or for the
 * older form the time in its salt (those SDKs make salts as milliseconds
 * since 1970 x 1000 + a counter), and must lie within sign_window of now
 * (200008 otherwise). Its salt is then remembered until that time has left
 * the window, in memory (a FIFO ring of sign_salts_max in arrival order
 * with a set for lookups) and in the store (table signed_salts, loaded again at start), so
 * neither a restart nor a flood of requests makes a captured request valid
 * again: a salt seen is answered 200006, which tells the server SDKs to sign
 * again with a new salt and makes an identical resend after a lost
 * connection come back as "already done". When the ring is full its oldest
 * salt is forgotten early, and the project's floor rises to that salt's
 * time: from then on nothing at or before that time is accepted (200006),
 * since its salt can no longer be checked.
 *
 * The salt's write goes to the store before the handler's own writes, so
 * whatever the handler stores commits with or after it; the answer of a
 * request that stores nothing is held until the salt is durable.
 *
 * On PostgreSQL several nodes may share the store, and a request refused by
 * no node's memory may have run on another: there the store is the guard.
 * The salt is inserted first and the method runs only once the insert says
 * the salt is new (the authorizer waits: request_authorized); a salt still
 * live in the table answers 200006. Two nodes inserting one salt at once
 * wait on each other's row, so exactly one runs the request. The memory
 * ring stays the fast reject of a replay on the same node. */
#include "log.h"
#include "clock.h"
#include "methods.h"
#include "payload.h"
#include "rtm_errors.h"
#include "module.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SIGN_HEX 32

typedef struct salt_entry {
    int64_t pid, salt;
    int64_t expires_at; /* unix seconds: the request's time + window + 1 */
} salt_entry;

/* The time before which a project's salts may have been forgotten. */
typedef struct salt_floor {
    int64_t pid, floor;
} salt_floor;

struct sign_state {
    rtmd_server *srv;
    pairmap salts;      /* (pid, salt) -> its ring entry */
    pairmap failures;   /* (conn id, 0) -> failed signatures in a row, as a
                         * pointer-sized count; only links with failures */
    salt_entry *ring;   /* sign_salts_max entries */
    size_t ring_cap, ring_head, ring_count;
    salt_floor floors[RTMD_MAX_PROJECTS];
    size_t nfloors;
    uv_timer_t timer;   /* deletes expired salts from the store */
    bool timer_closed;
    uint64_t last_purge_ms;
};

static struct sign_state *state(rtmd_server *srv)
{
    return srv->svc->sign;
}

/* ---- the replay guard ---- */

static int64_t *floor_of(struct sign_state *a, int64_t pid)
{
    for (size_t i = 0; i < a->nfloors; i++)
        if (a->floors[i].pid == pid)
            return &a->floors[i].floor;
    if (a->nfloors == RTMD_MAX_PROJECTS)
        return NULL;
    a->floors[a->nfloors] = (salt_floor){pid, 0};
    return &a->floors[a->nfloors++].floor;
}

static void ring_pop(struct sign_state *a)
{
    salt_entry *e = &a->ring[a->ring_head];
    pairmap_del(&a->salts, (uint64_t)e->pid, (uint64_t)e->salt);
    a->ring_head = (a->ring_head + 1) % a->ring_cap;
    a->ring_count--;
}

static void forget_expired(struct sign_state *a, int64_t now)
{
    while (a->ring_count > 0 && a->ring[a->ring_head].expires_at <= now)
        ring_pop(a);
}

/* Remembers a salt; a full ring forgets its oldest salt and raises that
 * project's floor. Returns 0, or -1 when out of memory. */
static int remember(struct sign_state *a, int64_t pid, int64_t salt, int64_t expires_at)
{
    if (a->ring_count == a->ring_cap) {
        salt_entry *old = &a->ring[a->ring_head];
        int64_t *floor = floor_of(a, old->pid);
        int64_t when = old->expires_at - a->srv->cfg.sign_window - 1;
        if (floor && *floor < when)
            *floor = when;
        ring_pop(a);
    }
    size_t at = (a->ring_head + a->ring_count) % a->ring_cap;
    if (pairmap_put(&a->salts, (uint64_t)pid, (uint64_t)salt, &a->ring[at]) != 0)
        return -1;
    a->ring[at] = (salt_entry){pid, salt, expires_at};
    a->ring_count++;
    return 0;
}

static bool seen(struct sign_state *a, int64_t pid, int64_t salt, int64_t when)
{
    int64_t *floor = floor_of(a, pid);
    if (floor && when <= *floor)
        return true;
    return pairmap_get(&a->salts, (uint64_t)pid, (uint64_t)salt) != NULL;
}

/* ---- salts in the store ---- */

typedef struct salt_write {
    rtmd_request *req; /* held until the write is done (SQLite), or waiting
                        * for it to run (PostgreSQL) */
    int64_t pid, salt, expires_at;
    int64_t now;       /* PostgreSQL: a row expired by then may be taken again */
    bool fresh;        /* PostgreSQL: the insert stored the salt */
} salt_write;

static int apply_salt_write(db_conn *db, void *arg)
{
    salt_write *w = arg;
    db_stmt_t *st;
    bool pg = db_is_postgres(db);
    /* PostgreSQL: no row changed means another request holds the salt (on
     * any node); a row only expired and not yet purged is taken over. */
    int rc = db_stmt(db,
                     pg ? "INSERT INTO signed_salts(pid, salt, expires_at) VALUES (?1, ?2, ?3)"
                          " ON CONFLICT(pid, salt) DO UPDATE SET expires_at = excluded.expires_at"
                          " WHERE signed_salts.expires_at <= ?4"
                        : "INSERT INTO signed_salts(pid, salt, expires_at) VALUES (?1, ?2, ?3)"
                          " ON CONFLICT(pid, salt) DO UPDATE SET expires_at = excluded.expires_at",
                     &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, w->pid);
    db_bind_int64(st, 2, w->salt);
    db_bind_int64(st, 3, w->expires_at);
    if (pg)
        db_bind_int64(st, 4, w->now);
    rc = db_step_release(st);
    if (pg && rc == DB_OK)
        w->fresh = db_changes(db) > 0;
    return rc;
}

static void sign_refuse(rtmd_request *req, int code);

static void salt_write_done(void *arg, int status)
{
    salt_write *w = arg;
    if (status != DB_OK)
        LOG_ERROR("sign: storing a salt of project %lld failed: %s", (long long)w->pid, db_errstr(status));
    request_release(w->req);
    free(w);
}

/* PostgreSQL: the method runs only now, and only for a new salt. */
static void salt_claim_done(void *arg, int status)
{
    salt_write *w = arg;
    rtmd_request *req = w->req;
    bool fresh = w->fresh;
    free(w);
    if (status != DB_OK) {
        LOG_ERROR("sign: storing a salt of project %lld failed: %s", (long long)req->project->pid,
                  db_errstr(status));
        module_answer_store_failure(req, status);
    } else if (!fresh) {
        sign_refuse(req, RTM_EC_SAME_SIGN);
    } else {
        conn_authenticated(req->conn);
        request_authorized(req);
    }
}

static void on_purge_tick(uv_timer_t *t)
{
    struct sign_state *a = t->data;
    rtmd_server *srv = a->srv;
    if (rtmd_timer_end_on_stop(srv, t, &a->timer_closed))
        return;
    forget_expired(a, clock_unix_seconds());
    uint64_t now_ms = uv_now(srv->loop);
    if (!srv->store || now_ms - a->last_purge_ms < (uint64_t)srv->cfg.retention_interval * 1000u)
        return;
    a->last_purge_ms = now_ms;
    module_purge_expired(srv, "DELETE FROM signed_salts WHERE expires_at <= ?1", "signature salts");
}

typedef struct salt_load {
    struct sign_state *a;
    int64_t now;
    size_t count;
} salt_load;

static int load_salts(db_conn *db, void *arg)
{
    salt_load *l = arg;
    db_stmt_t *st;
    int rc = db_prepare(
        db, "SELECT pid, salt, expires_at FROM signed_salts WHERE expires_at > ?1 ORDER BY expires_at", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, l->now);
    while ((rc = db_step(st)) == DB_ROW) {
        if (remember(l->a, db_column_int64(st, 0), db_column_int64(st, 1), db_column_int64(st, 2)) !=
            0) {
            rc = DB_NOMEM;
            break;
        }
        l->count++;
    }
    db_finalize(st);
    return rc == DB_DONE ? DB_OK : rc;
}

/* ---- verification ---- */

static bool sign_matches(const char *text, const char *sign)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char hex[SIGN_HEX + 1];
    EVP_Digest(text, strlen(text), digest, &len, EVP_md5(), NULL);
    for (unsigned i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02X", digest[i]);
    return strncasecmp(hex, sign, SIGN_HEX) == 0;
}

/* sign_verify's answer when the store decides (PostgreSQL). */
#define SIGN_PENDING 1

/* Checks the signature of a server-gate request (pid, salt, sign, and ts
 * for the current form). On success sets req->project, remembers the salt
 * in memory at once and in the store through the writer, and holds the
 * request's answer until that write committed (request_hold), so that
 * nothing answered can be replayed after a crash. Returns 0, or the code
 * to answer: 200002 bad signature or unknown project, 200006 salt already
 * seen (or older than what the replay guard can still tell apart), 200008
 * time outside sign_window. On PostgreSQL a request that passes memory
 * returns SIGN_PENDING: salt_claim_done decides once the salt is stored. */
static int sign_verify(rtmd_request *req)
{
    rtmd_server *srv = req->srv;
    int64_t pid, salt, ts = 0;
    const char *sign;
    size_t sign_len;
    if (!mp_get_int64(req->args, "pid", &pid) || !mp_get_int64(req->args, "salt", &salt) ||
        !mp_get_str(req->args, "sign", &sign, &sign_len) || sign_len != SIGN_HEX)
        return RTM_EC_INVALID_PID_OR_SIGN;
    rtmd_project *p = rtmd_server_project(srv, pid);
    if (!p)
        return RTM_EC_INVALID_PID_OR_SIGN;

    /* The request's time, in unix seconds, as its signature covers it. */
    char text[512];
    int64_t when;
    if (mp_get_int64(req->args, "ts", &ts) &&
        (snprintf(text, sizeof text, "%lld:%s:%lld:%s:%lld", (long long)pid, p->secret, (long long)salt, req->method,
                  (long long)ts),
         sign_matches(text, sign))) {
        when = ts;
    } else if (p->limits.legacy_sign &&
               (snprintf(text, sizeof text, "%lld:%s:%lld", (long long)pid, p->secret, (long long)salt),
                sign_matches(text, sign))) {
        when = salt / 1000000; /* milliseconds x 1000 + counter */
    } else {
        return RTM_EC_INVALID_PID_OR_SIGN;
    }

    int64_t now = clock_unix_seconds();
    int64_t window = srv->cfg.sign_window;
    if (when < now - window || when > now + window)
        return RTM_EC_INVALID_SERVER_TIME;
    struct sign_state *a = state(srv);
    forget_expired(a, now);
    if (seen(a, pid, salt, when))
        return RTM_EC_SAME_SIGN;
    salt_write *w = malloc(sizeof *w);
    if (!w || remember(a, pid, salt, when + window + 1) != 0) {
        free(w);
        return RTM_EC_UNKNOWN_ERROR;
    }
    *w = (salt_write){.req = req, .pid = pid, .salt = salt, .expires_at = when + window + 1, .now = now};
    bool pg = store_is_postgres(srv->store);
    if (store_submit(srv->store, apply_salt_write, pg ? salt_claim_done : salt_write_done, w) != 0) {
        free(w);
        return FPNN_EC_CORE_SERVER_STOPPING;
    }
    if (!pg)
        request_hold(req);
    if (a->failures.count)
        pairmap_del(&a->failures, req->conn->id, 0);
    req->project = p;
    return pg ? SIGN_PENDING : 0;
}

static const char *refusal_text(int code)
{
    switch (code) {
    case RTM_EC_SAME_SIGN:
        return "salt already used: sign again with a new salt";
    case RTM_EC_INVALID_SERVER_TIME:
        return "request time outside the signature window";
    case RTM_EC_INVALID_PID_OR_SIGN:
        return "invalid pid or sign";
    default:
        return "cannot check the signature now";
    }
}

/* Answers a refused request with its code. A link whose signatures failed
 * (200002, 200008) sign_fail_max times in a row is closed once the answer
 * is written. */
static void sign_refuse(rtmd_request *req, int code)
{
    rtmd_conn *c = req->conn;
    bool failed = code == RTM_EC_INVALID_PID_OR_SIGN || code == RTM_EC_INVALID_SERVER_TIME;
    request_error(req, code, refusal_text(code));
    if (!failed)
        return;
    void **slot = pairmap_reserve(&state(c->srv)->failures, c->id, 0);
    if (!slot)
        return;
    uintptr_t failures = (uintptr_t)*slot + 1;
    *slot = (void *)failures;
    uint32_t max = c->srv->cfg.sign_fail_max;
    if (max != 0 && failures >= max && !c->closing) {
        char peer[RTMD_PEER_LEN];
        LOG_WARN("conn %llu %s: %u failed signatures in a row, closing the link", (unsigned long long)c->id,
                 conn_peer(c, peer), (unsigned)failures);
        conn_close_after_flush(c);
    }
}

/* ---- module life cycle ---- */

static int sign_init(rtmd_server *srv, char *err, size_t errlen)
{
    struct sign_state *a = calloc(1, sizeof *a);
    if (!a || !(a->ring = calloc(srv->cfg.sign_salts_max, sizeof *a->ring))) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->srv = srv;
    a->ring_cap = srv->cfg.sign_salts_max;
    srv->svc->sign = a;
    uv_timer_init(srv->loop, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, on_purge_tick, 1000, 1000);
    a->last_purge_ms = uv_now(srv->loop);
    salt_load l = {a, clock_unix_seconds(), 0};
    if (module_load(srv, load_salts, &l) != DB_OK) {
        snprintf(err, errlen, "cannot load signature salts from the store");
        return -1;
    }
    LOG_INFO("sign: %zu salts within the signature window loaded", l.count);
    return 0;
}

static void sign_free(rtmd_server *srv)
{
    struct sign_state *a = srv->svc->sign;
    if (!a)
        return;
    pairmap_free(&a->salts);
    pairmap_free(&a->failures);
    free(a->ring);
    srv->svc->sign = NULL;
    if (rtmd_timer_release(&a->timer, a->timer_closed))
        free(a);
}

/* The server gate's authorizer: a valid signature makes the link
 * authenticated; a refusal is answered (and may close the link). On
 * PostgreSQL a good signature waits for the store (salt_claim_done). */
static bool sign_authorize(rtmd_request *req)
{
    int code = sign_verify(req);
    if (code == SIGN_PENDING)
        return false;
    if (code != 0) {
        sign_refuse(req, code);
        return false;
    }
    conn_authenticated(req->conn);
    return true;
}

/* A server-gate link closes: its count of failures goes with it. */
static void on_conn_closed(rtmd_server *srv, const rtmd_event *ev)
{
    struct sign_state *a = state(srv);
    if (ev->conn->gate == GATE_SERVER_TCP && a->failures.count)
        pairmap_del(&a->failures, ev->conn->id, 0);
}

static const rtmd_observer sign_observers[] = {{RTMD_EV_CONN_CLOSED, on_conn_closed}};

const rtmd_module sign_module = {
    .name = "sign",
    .init = sign_init,
    .free = sign_free,
    .authorizes = GATES_SERVER,
    .authorize = sign_authorize,
    RTMD_MODULE_OBSERVERS(sign_observers),
};
