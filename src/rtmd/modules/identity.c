/* String ids (see identity.h): validation, the memory cache of string id
 * <-> uid mappings with its LRU bound, resolves shared by every caller of
 * one string while its store write is in flight, the select-or-insert that
 * allocates uids from the reserved range on the store's writer thread (on
 * PostgreSQL safe with other nodes allocating at once), the reverse
 * lookup, and the service-module life cycle. */
#include "identity.h"

#include "clock.h"
#include "hash.h"
#include "log.h"
#include "pairmap.h"
#include "module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A resolved mapping. Indexed by (pid, hash of the string) -> chain and
 * by (pid, uid); on the LRU list, most recently used first. */
typedef struct id_entry {
    int64_t pid, uid;
    uint64_t hash;
    struct id_entry *next_same_hash;
    struct id_entry *lru_prev, *lru_next;
    size_t len;
    char sid[];
} id_entry;

typedef struct id_waiter {
    identity_resolve_cb cb;
    void *arg;
    struct id_waiter *next;
} id_waiter;

/* Operations in flight in the store. owner is NULL once identity_close
 * abandoned them; the completion then only frees them. */
typedef struct id_op {
    identity_state *owner;
    struct id_op *prev, *next;     /* owner's list of ops in flight */
    bool is_lookup;
    int64_t pid, uid;              /* uid: result of a resolve, key of a lookup */
    /* resolve */
    uint64_t hash;
    struct id_op *next_same_hash;  /* pending resolves of one (pid, hash) */
    id_waiter *waiters, **waiters_tail;
    /* lookup */
    identity_lookup_cb lookup_cb;
    void *lookup_arg;
    bool found;
    size_t len;
    char sid[IDENTITY_STRING_MAX + 1];
} id_op;

struct identity_state {
    store *st;
    pairmap by_string;   /* (pid, hash) -> id_entry chain */
    pairmap by_uid;      /* (pid, uid) -> id_entry */
    pairmap pending;     /* (pid, hash) -> id_op chain (resolves in flight) */
    id_entry *lru_head, *lru_tail;
    size_t count, max;
    id_op *ops;          /* every op in flight */
};

/* ---- validation ---- */

bool identity_validate(const char *s, size_t len)
{
    if (!s || len == 0 || len > IDENTITY_STRING_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '@' || c == '-' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

bool identity_is_string_uid(int64_t uid)
{
    return uid >= IDENTITY_UID_BASE;
}

/* ---- cache ---- */

static void lru_unlink(identity_state *id, id_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        id->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        id->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(identity_state *id, id_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = id->lru_head;
    if (id->lru_head)
        id->lru_head->lru_prev = e;
    id->lru_head = e;
    if (!id->lru_tail)
        id->lru_tail = e;
}

static void touch(identity_state *id, id_entry *e)
{
    if (id->lru_head != e) {
        lru_unlink(id, e);
        lru_push_front(id, e);
    }
}

static id_entry *cache_find_string(identity_state *id, int64_t pid, const char *sid, size_t len, uint64_t hash)
{
    for (id_entry *e = pairmap_get(&id->by_string, (uint64_t)pid, hash); e; e = e->next_same_hash)
        if (e->len == len && memcmp(e->sid, sid, len) == 0)
            return e;
    return NULL;
}

static void cache_remove(identity_state *id, id_entry *e)
{
    id_entry *head = pairmap_get(&id->by_string, (uint64_t)e->pid, e->hash);
    if (head == e) {
        if (e->next_same_hash)
            pairmap_put(&id->by_string, (uint64_t)e->pid, e->hash, e->next_same_hash);
        else
            pairmap_del(&id->by_string, (uint64_t)e->pid, e->hash);
    } else {
        for (id_entry *p = head; p; p = p->next_same_hash)
            if (p->next_same_hash == e) {
                p->next_same_hash = e->next_same_hash;
                break;
            }
    }
    if (pairmap_get(&id->by_uid, (uint64_t)e->pid, (uint64_t)e->uid) == e)
        pairmap_del(&id->by_uid, (uint64_t)e->pid, (uint64_t)e->uid);
    lru_unlink(id, e);
    id->count--;
    free(e);
}

static void cache_trim(identity_state *id)
{
    while (id->count > id->max && id->lru_tail)
        cache_remove(id, id->lru_tail);
}

/* Adds a mapping read from or written to the store (already cached ones are
 * only touched). Out of memory just leaves it uncached. */
static void cache_add(identity_state *id, int64_t pid, int64_t uid, const char *sid, size_t len)
{
    uint64_t hash = rtm_hash64(sid, len);
    id_entry *e = cache_find_string(id, pid, sid, len, hash);
    if (e) {
        touch(id, e);
        return;
    }
    e = malloc(sizeof *e + len + 1);
    if (!e)
        return;
    *e = (id_entry){.pid = pid, .uid = uid, .hash = hash, .len = len};
    memcpy(e->sid, sid, len);
    e->sid[len] = '\0';
    e->next_same_hash = pairmap_get(&id->by_string, (uint64_t)pid, hash);
    if (pairmap_put(&id->by_string, (uint64_t)pid, hash, e) != 0) {
        free(e);
        return;
    }
    if (pairmap_put(&id->by_uid, (uint64_t)pid, (uint64_t)uid, e) != 0) {
        /* Undo the string index. */
        if (e->next_same_hash)
            pairmap_put(&id->by_string, (uint64_t)pid, hash, e->next_same_hash);
        else
            pairmap_del(&id->by_string, (uint64_t)pid, hash);
        free(e);
        return;
    }
    lru_push_front(id, e);
    id->count++;
    cache_trim(id);
}

/* ---- ops in flight ---- */

static void op_link(identity_state *id, id_op *op)
{
    op->owner = id;
    op->prev = NULL;
    op->next = id->ops;
    if (id->ops)
        id->ops->prev = op;
    id->ops = op;
}

static void op_unlink(identity_state *id, id_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        id->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
}

static void free_waiters(id_waiter *w)
{
    while (w) {
        id_waiter *next = w->next;
        free(w);
        w = next;
    }
}

static id_op *pending_find(identity_state *id, int64_t pid, const char *sid, size_t len, uint64_t hash)
{
    for (id_op *op = pairmap_get(&id->pending, (uint64_t)pid, hash); op; op = op->next_same_hash)
        if (op->len == len && memcmp(op->sid, sid, len) == 0)
            return op;
    return NULL;
}

static void pending_remove(identity_state *id, id_op *op)
{
    id_op *head = pairmap_get(&id->pending, (uint64_t)op->pid, op->hash);
    if (head == op) {
        if (op->next_same_hash)
            pairmap_put(&id->pending, (uint64_t)op->pid, op->hash, op->next_same_hash);
        else
            pairmap_del(&id->pending, (uint64_t)op->pid, op->hash);
    } else {
        for (id_op *p = head; p; p = p->next_same_hash)
            if (p->next_same_hash == op) {
                p->next_same_hash = op->next_same_hash;
                break;
            }
    }
    op->next_same_hash = NULL;
}

/* ---- store side (writer thread / thread pool: op fields only) ---- */

static int select_uid(db_conn *db, const id_op *op, int64_t *uid)
{
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT uid FROM users WHERE pid = ?1 AND string_id = ?2", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, op->pid);
    db_bind_text(st, 2, op->sid, (int)op->len);
    bool row = false;
    rc = db_step_row(st, &row);
    *uid = rc == DB_OK && row ? db_column_int64(st, 0) : 0;
    db_release(st);
    return rc;
}

/* The next free uid of the project's reserved range. max() with the pid
 * fixed walks the primary key (pid, uid) index: no scan. */
static int next_uid(db_conn *db, int64_t pid, int64_t *uid)
{
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT max(uid) FROM users WHERE pid = ?1 AND uid >= ?2", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, pid);
    db_bind_int64(st, 2, IDENTITY_UID_BASE);
    rc = db_step(st);
    if (rc == DB_ROW) {
        rc = DB_OK;
        if (db_column_is_null(st, 0)) {
            *uid = IDENTITY_UID_BASE;
        } else {
            int64_t max = db_column_int64(st, 0);
            if (max == INT64_MAX)
                rc = DB_FULL; /* the range is used up */
            else
                *uid = max + 1;
        }
    }
    db_release(st);
    return rc;
}

/* PostgreSQL, nodes sharing the database: the first uid from *uid on that
 * no other transaction is inserting right now, claimed with a transaction
 * advisory lock keyed by the uid (try only: never waits). A window of
 * candidates per round trip, which stops at the first claimed; the
 * function scan builds the whole window, so the first one is small. */
static int claim_uid(db_conn *db, int64_t *uid)
{
    db_stmt_t *st = NULL;
    int rc = db_stmt(db,
                     "SELECT u FROM generate_series(?1::bigint, ?1::bigint + ?2::bigint - 1) u"
                     " WHERE pg_try_advisory_xact_lock(u) LIMIT 1",
                     &st);
    for (int i = 0; rc == DB_OK && i < 64; i++) {
        int64_t span = i == 0 ? 16 : 1024;
        if (*uid > INT64_MAX - span) {
            rc = DB_FULL;
            break;
        }
        db_reset(st);
        db_bind_int64(st, 1, *uid);
        db_bind_int64(st, 2, span);
        rc = db_step(st);
        if (rc == DB_ROW) {
            *uid = db_column_int64(st, 0);
            db_release(st);
            return DB_OK;
        }
        if (rc == DB_DONE) {
            *uid += span;
            rc = DB_OK;
        }
    }
    if (rc == DB_OK)
        rc = DB_BUSY;
    if (st)
        db_release(st);
    return rc;
}

#define INSERT_USER_SQL "INSERT INTO users(pid, uid, string_id, created_at) VALUES (?1, ?2, ?3, ?4)"

/* Inserts op's string id as uid with sql (INSERT_USER_SQL, with a tail on
 * PostgreSQL); the step's code: DB_DONE, DB_ROW (RETURNING) or an error. */
static int insert_user(db_conn *db, const id_op *op, int64_t uid, const char *sql)
{
    db_stmt_t *st;
    int rc = db_stmt(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, op->pid);
    db_bind_int64(st, 2, uid);
    db_bind_text(st, 3, op->sid, (int)op->len);
    db_bind_int64(st, 4, clock_unix_seconds());
    rc = db_step(st);
    db_release(st);
    return rc;
}

/* Select-or-insert on PostgreSQL, where another node may allocate at the
 * same time: a claimed uid, inserted with ON CONFLICT DO NOTHING. No row
 * back: either the same string was inserted by another node (its insert
 * waited for that commit; the next select sees it) or the uid was taken
 * meanwhile (try the next). */
static int resolve_shared(db_conn *db, id_op *op)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        int64_t uid = 0;
        int rc = next_uid(db, op->pid, &uid);
        if (rc == DB_OK)
            rc = claim_uid(db, &uid);
        if (rc == DB_OK)
            rc = insert_user(db, op, uid, INSERT_USER_SQL " ON CONFLICT DO NOTHING RETURNING uid");
        if (rc == DB_ROW) {
            op->uid = uid;
            return DB_OK;
        }
        if (rc != DB_DONE)
            return rc;
        if ((rc = select_uid(db, op, &uid)) != DB_OK)
            return rc;
        if (uid != 0) {
            op->uid = uid;
            return DB_OK;
        }
    }
    return DB_BUSY;
}

/* Select-or-insert, atomic because the writer thread runs one write at a
 * time inside its transaction (resolve_shared on PostgreSQL). */
static int apply_resolve(db_conn *db, void *arg)
{
    id_op *op = arg;
    int64_t uid = 0;
    int rc = select_uid(db, op, &uid);
    if (rc != DB_OK)
        return rc;
    if (uid != 0) {
        op->uid = uid;
        return DB_OK;
    }
    if (db_is_postgres(db))
        return resolve_shared(db, op);
    rc = next_uid(db, op->pid, &uid);
    if (rc == DB_OK)
        rc = insert_user(db, op, uid, INSERT_USER_SQL);
    if (rc != DB_DONE)
        return rc;
    op->uid = uid;
    return DB_OK;
}

static int read_lookup(db_conn *db, void *arg)
{
    id_op *op = arg;
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT string_id FROM users WHERE pid = ?1 AND uid = ?2", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, op->pid);
    db_bind_int64(st, 2, op->uid);
    bool row = false;
    rc = db_step_row(st, &row);
    if (rc == DB_OK && row) {
        const char *text = (const char *)db_column_text(st, 0);
        size_t len = text ? (size_t)db_column_bytes(st, 0) : 0;
        if (text && identity_validate(text, len)) {
            memcpy(op->sid, text, len);
            op->sid[len] = '\0';
            op->len = len;
            op->found = true;
        }
    }
    db_release(st);
    return rc;
}

/* ---- completions on the loop ---- */

static void resolve_done(void *arg, int status)
{
    id_op *op = arg;
    identity_state *id = op->owner;
    id_waiter *waiters = op->waiters;
    op->waiters = NULL;
    if (!id) {
        free_waiters(waiters);
        free(op);
        return;
    }
    op_unlink(id, op);
    pending_remove(id, op);
    if (status == DB_OK)
        cache_add(id, op->pid, op->uid, op->sid, op->len);
    else {
        char sid[RTM_LOG_STR_SIZE];
        LOG_ERROR("identity: resolving '%s' of project %lld failed: %s", rtm_log_str(sid, op->sid, op->len),
                  (long long)op->pid, db_errstr(status));
    }
    int64_t uid = status == DB_OK ? op->uid : 0;
    free(op);
    /* The waiters may resolve again: the op is gone from every index. */
    while (waiters) {
        id_waiter *w = waiters;
        waiters = w->next;
        w->cb(w->arg, status, uid);
        free(w);
    }
}

static void lookup_done(void *arg, int status)
{
    id_op *op = arg;
    identity_state *id = op->owner;
    if (!id) {
        free(op);
        return;
    }
    op_unlink(id, op);
    if (status == DB_OK && op->found)
        cache_add(id, op->pid, op->uid, op->sid, op->len);
    op->lookup_cb(op->lookup_arg, status, status == DB_OK && op->found ? op->sid : NULL);
    free(op);
}

/* ---- API ---- */

int identity_resolve(identity_state *id, int64_t pid, const char *sid, size_t len, int64_t *uid,
                     identity_resolve_cb cb, void *arg)
{
    if (!id || !uid || !cb || !identity_validate(sid, len))
        return -1;
    uint64_t hash = rtm_hash64(sid, len);
    id_entry *e = cache_find_string(id, pid, sid, len, hash);
    if (e) {
        touch(id, e);
        *uid = e->uid;
        return 1;
    }
    id_waiter *w = malloc(sizeof *w);
    if (!w)
        return -1;
    *w = (id_waiter){cb, arg, NULL};
    id_op *op = pending_find(id, pid, sid, len, hash);
    if (op) {
        *op->waiters_tail = w;
        op->waiters_tail = &w->next;
        return 0;
    }
    op = calloc(1, sizeof *op);
    if (!op) {
        free(w);
        return -1;
    }
    op->pid = pid;
    op->hash = hash;
    op->len = len;
    memcpy(op->sid, sid, len);
    op->sid[len] = '\0';
    op->waiters = w;
    op->waiters_tail = &w->next;
    op->next_same_hash = pairmap_get(&id->pending, (uint64_t)pid, hash);
    if (pairmap_put(&id->pending, (uint64_t)pid, hash, op) != 0) {
        free(w);
        free(op);
        return -1;
    }
    op_link(id, op);
    if (store_submit(id->st, apply_resolve, resolve_done, op) != 0) {
        op_unlink(id, op);
        pending_remove(id, op);
        free(w);
        free(op);
        return -1;
    }
    return 0;
}

int identity_lookup(identity_state *id, int64_t pid, int64_t uid, const char **sid, identity_lookup_cb cb,
                    void *arg)
{
    if (!id || !sid || !cb)
        return -1;
    if (!identity_is_string_uid(uid)) {
        *sid = NULL;
        return 1;
    }
    id_entry *e = pairmap_get(&id->by_uid, (uint64_t)pid, (uint64_t)uid);
    if (e) {
        touch(id, e);
        *sid = e->sid;
        return 1;
    }
    id_op *op = calloc(1, sizeof *op);
    if (!op)
        return -1;
    op->is_lookup = true;
    op->pid = pid;
    op->uid = uid;
    op->lookup_cb = cb;
    op->lookup_arg = arg;
    op_link(id, op);
    if (store_read(id->st, read_lookup, lookup_done, op) != 0) {
        op_unlink(id, op);
        free(op);
        return -1;
    }
    return 0;
}

const char *identity_peek(identity_state *id, int64_t pid, int64_t uid)
{
    id_entry *e = id ? pairmap_get(&id->by_uid, (uint64_t)pid, (uint64_t)uid) : NULL;
    if (!e)
        return NULL;
    touch(id, e);
    return e->sid;
}

static int count_string_ids(db_conn *db, void *arg)
{
    int64_t *count = arg;
    db_stmt_t *st;
    int rc = db_prepare(db, "SELECT count(*) FROM users WHERE string_id IS NOT NULL", &st);
    if (rc != DB_OK)
        return rc;
    rc = db_step(st);
    if (rc == DB_ROW) {
        *count = db_column_int64(st, 0);
        rc = DB_OK;
    }
    db_finalize(st);
    return rc;
}

identity_state *identity_open(store *st, char *err, size_t errlen)
{
    int64_t known = 0;
    if (!st || store_run_startup(st, count_string_ids, &known) != DB_OK) {
        snprintf(err, errlen, "identity: cannot read the users table");
        return NULL;
    }
    identity_state *id = calloc(1, sizeof *id);
    if (!id) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    id->st = st;
    id->max = IDENTITY_CACHE_DEFAULT_MAX;
    LOG_INFO("identity: %lld string ids known", (long long)known);
    return id;
}

void identity_close(identity_state *id)
{
    if (!id)
        return;
    /* Abandon the ops in flight: their completions see owner == NULL. */
    for (id_op *op = id->ops, *next; op; op = next) {
        next = op->next;
        op->owner = NULL;
        op->prev = op->next = NULL;
    }
    while (id->lru_head)
        cache_remove(id, id->lru_head);
    pairmap_free(&id->by_string);
    pairmap_free(&id->by_uid);
    pairmap_free(&id->pending);
    free(id);
}

void identity_set_cache_max(identity_state *id, size_t max)
{
    id->max = max ? max : 1;
    cache_trim(id);
}

size_t identity_cache_count(const identity_state *id)
{
    return id->count;
}

/* ---- service module ---- */

identity_state *identity_of(rtmd_server *srv)
{
    return srv->svc ? srv->svc->identity : NULL;
}

static int identity_init(rtmd_server *srv, char *err, size_t errlen)
{
    srv->svc->identity = identity_open(srv->store, err, errlen);
    return srv->svc->identity ? 0 : -1;
}

static void identity_free(rtmd_server *srv)
{
    identity_close(srv->svc->identity);
    srv->svc->identity = NULL;
}

const rtmd_module identity_module = {
    .name = "identity",
    .init = identity_init,
    .free = identity_free,
};
