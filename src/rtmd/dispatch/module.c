/* Helpers the service modules share (module.h): the reload walk over the
 * running projects, and for the store expiry purges, start-up loads, the
 * election of a node for periodic jobs, and the answer of a request whose
 * store work failed. */
#include "module.h"

#include "clock.h"
#include "log.h"
#include "rtm_errors.h"

#include <stdlib.h>
#include <string.h>

int module_reload_projects(rtmd_server *srv, module_project_fn fn, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; i < srv->nprojects; i++) {
        rtmd_project *p = &srv->projects[i];
        char why[512];
        if (p->removed || fn(srv, p, why, sizeof why) == 0)
            continue;
        if (rc == 0)
            snprintf(err, errlen, "project %lld: %s", (long long)p->pid, why);
        rc = -1;
    }
    return rc;
}

typedef struct purge {
    const char *sql, *what; /* static strings */
    int64_t now;
} purge;

static int apply_purge(db_conn *db, void *arg)
{
    const purge *p = arg;
    db_stmt_t *st;
    int rc = db_stmt(db, p->sql, &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, p->now);
    return db_step_release(st);
}

static void purge_done(void *arg, int status)
{
    purge *p = arg;
    if (status != DB_OK)
        LOG_WARN("deleting expired %s failed: %s", p->what, db_errstr(status));
    free(p);
}

void module_purge_expired(rtmd_server *srv, const char *delete_sql, const char *what)
{
    purge *p = malloc(sizeof *p);
    if (!p)
        return;
    *p = (purge){delete_sql, what, clock_unix_seconds()};
    if (store_submit(srv->store, apply_purge, purge_done, p) != 0)
        free(p);
}

int module_load(rtmd_server *srv, int (*fn)(db_conn *db, void *arg), void *arg)
{
    return store_run_startup(srv->store, fn, arg);
}

typedef struct leader_ask {
    int key;
    bool leader;
    module_leader_fn fn;
    void *arg;
} leader_ask;

/* 0x72746d64 is "rtmd": the two-key advisory lock space, apart from the
 * one-bigint keys (schema, identity uids). Held already: pg_locks says so
 * (a second pg_try_advisory_lock would stack a count). */
static int apply_leader(db_conn *db, void *arg)
{
    leader_ask *a = arg;
    db_stmt_t *st;
    int rc = db_stmt(db,
                     "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                     "  AND pid = pg_backend_pid() AND classid = 1920232804 AND objid = CAST(?1 AS integer) AND objsubid = 2)"
                     " OR pg_try_advisory_lock(1920232804, CAST(?1 AS integer))",
                     &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int(st, 1, a->key);
    rc = db_step(st);
    a->leader = rc == DB_ROW && db_column_int(st, 0);
    db_release(st);
    return rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
}

static void leader_done(void *arg, int status)
{
    leader_ask *a = arg;
    if (status != DB_OK)
        LOG_WARN("asking for the lead of job %d failed: %s", a->key, db_errstr(status));
    a->fn(a->arg, status == DB_OK && a->leader);
    free(a);
}

int module_job_leader(rtmd_server *srv, int key, module_leader_fn fn, void *arg)
{
    if (strcmp(srv->cfg.store, "postgres") != 0) {
        fn(arg, true);
        return 0;
    }
    leader_ask *a = malloc(sizeof *a);
    if (!a)
        return -1;
    *a = (leader_ask){key, false, fn, arg};
    if (store_submit(srv->store, apply_leader, leader_done, a) != 0) {
        free(a);
        return -1;
    }
    return 0;
}

/* classid 0x726c00xx ("rl" and the domain), apart from the jobs' 'rtmd'. */
int module_limit_lock(db_conn *db, int domain, int64_t a, int64_t b)
{
    if (!db_is_postgres(db))
        return DB_OK;
    uint64_t h = (uint64_t)a * 0x9e3779b97f4a7c15u ^ (uint64_t)b;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 32;
    db_stmt_t *st;
    int rc = db_stmt(db, "SELECT pg_advisory_xact_lock(CAST(?1 AS integer), CAST(?2 AS integer))", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, 0x726c0000 | (domain & 0xff));
    db_bind_int64(st, 2, (int32_t)(uint32_t)h);
    rc = db_step(st);
    db_release(st);
    return rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
}

int module_count(db_conn *db, const char *sql, int64_t a, int64_t b, int64_t *n)
{
    db_stmt_t *st;
    int rc = db_stmt(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, a);
    if (db_bind_count(st) >= 2)
        db_bind_int64(st, 2, b);
    rc = db_step(st);
    *n = rc == DB_ROW ? db_column_int64(st, 0) : 0;
    db_release(st);
    return rc == DB_ROW ? DB_OK : rc == DB_DONE ? DB_ERROR : rc;
}

int module_count_within(db_conn *db, const char *sql, int64_t a, int64_t b, uint64_t limit)
{
    int64_t n;
    int rc = module_count(db, sql, a, b, &n);
    return rc != DB_OK ? rc : (uint64_t)n > limit ? DB_REFUSED : DB_OK;
}

void module_answer_store_failure(rtmd_request *req, int status)
{
    if (status == DB_ABORT)
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    else if (status == DB_IOERR)
        request_error(req, RTM_EC_UNKNOWN_ERROR, "storage unavailable");
    else
        request_error(req, RTM_EC_UNKNOWN_ERROR, "storage error");
}
