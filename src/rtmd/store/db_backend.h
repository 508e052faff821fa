/* How db.h's functions choose their backend (inside src/rtmd/store/ only).
 * db_sqlite.c defines the public db_* functions; a connection or statement
 * of the PostgreSQL backend (db_pg.c) is a pointer to its own struct with
 * the lowest bit set (malloc's alignment leaves it free, and SQLite's
 * handles never have it), so each public function tests one bit of its
 * argument and, when set, hands the call to the dbpg_* function of the
 * same name. The SQLite path stays a plain wrapper: no memory read, no
 * allocation, one predictable branch. Both backends can be open in one
 * process (a copy from one to the other, the tests). */
#ifndef RTMD_DB_BACKEND_H
#define RTMD_DB_BACKEND_H

#include <stdint.h>

#include "db.h"

#define DB_PG_TAG ((uintptr_t)1)

static inline bool db_is_pg(const void *p)
{
    return ((uintptr_t)p & DB_PG_TAG) != 0;
}

/* The connection whose statement cache the calling thread uses
 * (db_cache_use), of either backend; defined in db_sqlite.c. */
extern _Thread_local db_conn *db_tls_conn;

const char *dbpg_errmsg(db_conn *conn);
int dbpg_stmt(db_conn *conn, const char *sql, db_stmt_t **out);
void dbpg_release(db_stmt_t *st);
int dbpg_step_release(db_stmt_t *st);
int dbpg_prepare(db_conn *conn, const char *sql, db_stmt_t **out);
void dbpg_finalize(db_stmt_t *st);
int dbpg_bind_int64(db_stmt_t *st, int i, int64_t v);
int dbpg_bind_double(db_stmt_t *st, int i, double v);
int dbpg_bind_text(db_stmt_t *st, int i, const char *s, int len);
int dbpg_bind_blob(db_stmt_t *st, int i, const void *p, int len);
int dbpg_bind_null(db_stmt_t *st, int i);
int dbpg_bind_count(db_stmt_t *st);
int dbpg_step(db_stmt_t *st);
void dbpg_reset(db_stmt_t *st);
int64_t dbpg_column_int64(db_stmt_t *st, int i);
double dbpg_column_double(db_stmt_t *st, int i);
const char *dbpg_column_text(db_stmt_t *st, int i);
const void *dbpg_column_blob(db_stmt_t *st, int i);
int dbpg_column_bytes(db_stmt_t *st, int i);
bool dbpg_column_is_null(db_stmt_t *st, int i);
int64_t dbpg_changes(db_conn *conn);
uint64_t dbpg_prepare_count(db_conn *conn);
int dbpg_exec(db_conn *conn, const char *sql);
bool dbpg_in_transaction(db_conn *conn);
int dbpg_close(db_conn *conn);
bool dbpg_connection_lost(db_conn *conn);
int dbpg_reconnect(db_conn *conn);

#endif
