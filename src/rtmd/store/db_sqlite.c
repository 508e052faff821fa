/* The SQLite implementation of db.h: a connection is the sqlite3 handle
 * with its statement cache, a statement is the sqlite3_stmt itself (cast),
 * and every function is a thin wrapper that maps SQLite's result codes to
 * ours. The only file of rtmd that calls SQLite (scripts/check-layers.py
 * keeps it so outside src/rtmd/store/). It also holds the public db_*
 * symbols: a PostgreSQL connection or statement (db_pg.c) carries a tag
 * bit, and each function hands those to its dbpg_* twin (db_backend.h). */
#include "db.h"
#include "db_backend.h"
#include "db_cache.h"
#include "conv_chain.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DB_BUSY_TIMEOUT_MS 5000


struct db_conn {
    sqlite3 *db;
    db_stmt_cache cache; /* db_cache.h */
    uint64_t prepares;
    int wal_frames; /* after the last commit, with db_wal_manual */
    uint64_t rollbacks; /* db_rollbacks */
    uint64_t deletes;   /* db_deletes */
};

_Thread_local db_conn *db_tls_conn;

#define ST(s) ((sqlite3_stmt *)(s))

/* SQLite's (extended) result codes to ours. */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: return DB_OK;
    case SQLITE_ROW: return DB_ROW;
    case SQLITE_DONE: return DB_DONE;
    case SQLITE_ABORT: case SQLITE_INTERRUPT: return DB_ABORT;
    case SQLITE_BUSY: case SQLITE_LOCKED: return DB_BUSY;
    case SQLITE_NOMEM: return DB_NOMEM;
    case SQLITE_READONLY: return DB_READONLY;
    case SQLITE_IOERR: return DB_IOERR;
    case SQLITE_CORRUPT: case SQLITE_NOTADB: return DB_CORRUPT;
    case SQLITE_FULL: return DB_FULL;
    case SQLITE_CANTOPEN: return DB_CANTOPEN;
    case SQLITE_CONSTRAINT: return DB_CONSTRAINT;
    case SQLITE_MISUSE: case SQLITE_RANGE: return DB_MISUSE;
    default: return DB_ERROR;
    }
}

const char *db_errstr(int code)
{
    switch (code) {
    case DB_OK: return "not an error";
    case DB_ROW: return "another row available";
    case DB_DONE: return "no more rows available";
    case DB_ABORT: return "operation aborted";
    case DB_BUSY: return "database is locked";
    case DB_NOMEM: return "out of memory";
    case DB_READONLY: return "attempt to write a readonly database";
    case DB_IOERR: return "disk I/O error";
    case DB_CORRUPT: return "database disk image is malformed";
    case DB_FULL: return "database or disk is full";
    case DB_CANTOPEN: return "unable to open database file";
    case DB_CONSTRAINT: return "constraint failed";
    case DB_MISUSE: return "bad parameter or other API misuse";
    case DB_REFUSED: return "refused by a limit";
    default: return "SQL logic error";
    }
}

const char *db_errmsg(db_conn *conn)
{
    if (db_is_pg(conn))
        return dbpg_errmsg(conn);
    return sqlite3_errmsg(conn->db);
}

/* ---- statement cache ---- */

static void finalize_cached(void *st)
{
    sqlite3_finalize(st);
}

/* A statement that does not prepare is a fault of the code, not of the
 * data: logged here once for every caller, with the SQL that failed. */
static int prepare_failed(sqlite3 *db, const char *sql, int rc)
{
    LOG_ERROR("store: cannot prepare \"%s\": %s", sql, sqlite3_errmsg(db));
    return map_rc(rc);
}

int db_stmt(db_conn *conn, const char *sql, db_stmt_t **out)
{
    if (db_is_pg(conn))
        return dbpg_stmt(conn, sql, out);
    sqlite3_stmt *st;
    if (db_tls_conn != conn) {
        int rc = sqlite3_prepare_v2(conn->db, sql, -1, &st, NULL);
        conn->prepares++;
        *out = (db_stmt_t *)st;
        return rc == SQLITE_OK ? DB_OK : prepare_failed(conn->db, sql, rc);
    }
    size_t len = strlen(sql);
    st = db_stmt_cache_take(&conn->cache, sql, len);
    if (st) {
        *out = (db_stmt_t *)st;
        return DB_OK;
    }
    int rc = sqlite3_prepare_v3(conn->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    conn->prepares++;
    if (rc != SQLITE_OK) {
        *out = NULL;
        return prepare_failed(conn->db, sql, rc);
    }
    *out = (db_stmt_t *)st;
    db_stmt_cache_put(&conn->cache, sql, len, st, finalize_cached); /* not kept: db_release finalizes it */
    return DB_OK;
}

void db_release(db_stmt_t *s)
{
    if (db_is_pg(s)) {
        dbpg_release(s);
        return;
    }
    sqlite3_stmt *st = ST(s);
    db_conn *conn = db_tls_conn;
    int slot = conn && !db_is_pg(conn) ? db_stmt_cache_slot_of(&conn->cache, st) : -1;
    if (slot >= 0) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        db_stmt_cache_idle(&conn->cache, slot);
        return;
    }
    sqlite3_finalize(st);
}

int db_step_row(db_stmt_t *st, bool *row)
{
    int rc = db_step(st);
    *row = rc == DB_ROW;
    return rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
}

int db_step_release(db_stmt_t *st)
{
    if (db_is_pg(st))
        return dbpg_step_release(st);
    int rc = sqlite3_step(ST(st));
    db_release(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? DB_OK : map_rc(rc);
}

int db_prepare(db_conn *conn, const char *sql, db_stmt_t **out)
{
    if (db_is_pg(conn))
        return dbpg_prepare(conn, sql, out);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn->db, sql, -1, &st, NULL);
    conn->prepares++;
    *out = (db_stmt_t *)st;
    return rc == SQLITE_OK ? DB_OK : prepare_failed(conn->db, sql, rc);
}

void db_finalize(db_stmt_t *st)
{
    if (db_is_pg(st)) {
        dbpg_finalize(st);
        return;
    }
    sqlite3_finalize(ST(st));
}

void db_cache_use(db_conn *conn)
{
    db_tls_conn = conn;
}

/* ---- binds, steps, columns ---- */

int db_bind_int(db_stmt_t *st, int i, int v)
{
    if (db_is_pg(st))
        return dbpg_bind_int64(st, i, v);
    return map_rc(sqlite3_bind_int(ST(st), i, v));
}

int db_bind_int64(db_stmt_t *st, int i, int64_t v)
{
    if (db_is_pg(st))
        return dbpg_bind_int64(st, i, v);
    return map_rc(sqlite3_bind_int64(ST(st), i, v));
}

int db_bind_double(db_stmt_t *st, int i, double v)
{
    if (db_is_pg(st))
        return dbpg_bind_double(st, i, v);
    return map_rc(sqlite3_bind_double(ST(st), i, v));
}

int db_bind_text(db_stmt_t *st, int i, const char *s, int len)
{
    if (db_is_pg(st))
        return dbpg_bind_text(st, i, s, len);
    return map_rc(sqlite3_bind_text(ST(st), i, s, len, SQLITE_STATIC));
}

int db_bind_blob(db_stmt_t *st, int i, const void *p, int len)
{
    if (db_is_pg(st))
        return dbpg_bind_blob(st, i, p, len);
    return map_rc(sqlite3_bind_blob(ST(st), i, p, len, SQLITE_STATIC));
}

int db_bind_null(db_stmt_t *st, int i)
{
    if (db_is_pg(st))
        return dbpg_bind_null(st, i);
    return map_rc(sqlite3_bind_null(ST(st), i));
}

int db_bind_count(db_stmt_t *st)
{
    if (db_is_pg(st))
        return dbpg_bind_count(st);
    return sqlite3_bind_parameter_count(ST(st));
}

int db_step(db_stmt_t *st)
{
    if (db_is_pg(st))
        return dbpg_step(st);
    int rc = sqlite3_step(ST(st));
    return rc == SQLITE_ROW ? DB_ROW : rc == SQLITE_DONE ? DB_DONE : map_rc(rc);
}

void db_reset(db_stmt_t *st)
{
    if (db_is_pg(st)) {
        dbpg_reset(st);
        return;
    }
    sqlite3_reset(ST(st));
}

int64_t db_column_int64(db_stmt_t *st, int i)
{
    if (db_is_pg(st))
        return dbpg_column_int64(st, i);
    return sqlite3_column_int64(ST(st), i);
}

int db_column_int(db_stmt_t *st, int i)
{
    if (db_is_pg(st))
        return (int)dbpg_column_int64(st, i);
    return sqlite3_column_int(ST(st), i);
}

double db_column_double(db_stmt_t *st, int i)
{
    if (db_is_pg(st))
        return dbpg_column_double(st, i);
    return sqlite3_column_double(ST(st), i);
}

const char *db_column_text(db_stmt_t *st, int i)
{
    if (db_is_pg(st))
        return dbpg_column_text(st, i);
    return (const char *)sqlite3_column_text(ST(st), i);
}

const void *db_column_blob(db_stmt_t *st, int i)
{
    if (db_is_pg(st))
        return dbpg_column_blob(st, i);
    return sqlite3_column_blob(ST(st), i);
}

int db_column_bytes(db_stmt_t *st, int i)
{
    if (db_is_pg(st))
        return dbpg_column_bytes(st, i);
    return sqlite3_column_bytes(ST(st), i);
}

bool db_column_is_null(db_stmt_t *st, int i)
{
    if (db_is_pg(st))
        return dbpg_column_is_null(st, i);
    return sqlite3_column_type(ST(st), i) == SQLITE_NULL;
}

/* ---- connection ---- */

int64_t db_changes(db_conn *conn)
{
    if (db_is_pg(conn))
        return dbpg_changes(conn);
    return sqlite3_changes64(conn->db);
}

uint64_t db_prepare_count(db_conn *conn)
{
    if (db_is_pg(conn))
        return dbpg_prepare_count(conn);
    return conn->prepares;
}

int db_exec(db_conn *conn, const char *sql)
{
    if (db_is_pg(conn))
        return dbpg_exec(conn, sql);
    return map_rc(sqlite3_exec(conn->db, sql, NULL, NULL, NULL));
}

bool db_is_postgres(db_conn *conn)
{
    return db_is_pg(conn);
}

bool db_connection_lost(db_conn *conn)
{
    return db_is_pg(conn) && dbpg_connection_lost(conn);
}

int db_reconnect(db_conn *conn)
{
    return db_is_pg(conn) ? dbpg_reconnect(conn) : DB_OK;
}

static void rollback_noted(void *arg)
{
    ((db_conn *)arg)->rollbacks++;
}

uint64_t db_rollbacks(db_conn *conn)
{
    return db_is_pg(conn) ? 0 : conn->rollbacks;
}

static void change_noted(void *arg, int op, const char *db, const char *table, sqlite3_int64 rowid)
{
    (void)db;
    (void)table;
    (void)rowid;
    if (op == SQLITE_DELETE)
        ((db_conn *)arg)->deletes++;
}

uint64_t db_deletes(db_conn *conn)
{
    return db_is_pg(conn) ? 0 : conn->deletes;
}

bool db_in_transaction(db_conn *conn)
{
    if (db_is_pg(conn))
        return dbpg_in_transaction(conn);
    return !sqlite3_get_autocommit(conn->db);
}

/* SQLite's WAL hook: called after each commit of the connection, in
 * place of the automatic checkpoint (which is itself this hook). */
static int wal_noted(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    ((db_conn *)arg)->wal_frames = frames;
    return SQLITE_OK;
}

int db_wal_manual(db_conn *conn)
{
    if (db_is_pg(conn))
        return DB_MISUSE;
    sqlite3_wal_hook(conn->db, wal_noted, conn);
    return DB_OK;
}

int db_wal_frames(db_conn *conn)
{
    return db_is_pg(conn) ? 0 : conn->wal_frames;
}

int db_wal_checkpoint(db_conn *conn, int mode, int *log, int *done)
{
    *log = *done = -1;
    if (db_is_pg(conn))
        return DB_MISUSE;
    int m = mode == DB_CKPT_RESTART ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE;
    return map_rc(sqlite3_wal_checkpoint_v2(conn->db, NULL, m, log, done));
}

db_conn *db_open(const char *path, int mode, char *err, size_t errlen)
{
    int flags = mode == DB_OPEN_CREATE     ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                : mode == DB_OPEN_READONLY ? SQLITE_OPEN_READONLY
                                           : SQLITE_OPEN_READWRITE;
    db_conn *conn = calloc(1, sizeof *conn);
    if (!conn) {
        snprintf(err, errlen, "cannot open %s: out of memory", path);
        return NULL;
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        free(conn);
        return NULL;
    }
    sqlite3_busy_timeout(db, DB_BUSY_TIMEOUT_MS);
    const char *pragmas = "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";
    rc = sqlite3_exec(db, pragmas, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = conv_chain_register(db);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot configure %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        free(conn);
        return NULL;
    }
    conn->db = db;
    sqlite3_rollback_hook(db, rollback_noted, conn);
    sqlite3_update_hook(db, change_noted, conn);
    return conn;
}

int db_close(db_conn *conn)
{
    if (db_is_pg(conn))
        return dbpg_close(conn);
    if (!conn)
        return DB_OK;
    if (db_tls_conn == conn)
        db_tls_conn = NULL;
    db_stmt_cache_clear(&conn->cache, finalize_cached);
    int rc = sqlite3_close(conn->db);
    free(conn);
    return map_rc(rc);
}
