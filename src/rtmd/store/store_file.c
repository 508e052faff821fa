/* store_file.c — a consistent copy of the SQLite store (store_file.h),
 * through the store's SQL interface (db.h), for `rtmctl backup`. */
#include "store_file.h"

#include "db.h"

#include <stdio.h>
#include <string.h>

/* One integer a statement answers in its first column; -1 when it fails. */
static int64_t query_int(db_conn *db, const char *sql)
{
    db_stmt_t *st = NULL;
    int64_t v = -1;
    if (db_prepare(db, sql, &st) == DB_OK && db_step(st) == DB_ROW)
        v = db_column_int64(st, 0);
    db_finalize(st);
    return v;
}

static int check_copy(const char *copy, int64_t *schema_version, char *err, size_t errlen)
{
    db_conn *db = db_open(copy, DB_OPEN_READONLY, err, errlen);
    if (!db)
        return -1;
    db_stmt_t *st = NULL;
    bool ok = db_prepare(db, "PRAGMA quick_check", &st) == DB_OK && db_step(st) == DB_ROW &&
              strcmp(db_column_text(st, 0), "ok") == 0;
    db_finalize(st);
    *schema_version = query_int(db, "PRAGMA user_version");
    if (!ok)
        snprintf(err, errlen, "the copy %s failed its check: %s", copy, db_errmsg(db));
    db_close(db);
    return ok ? 0 : -1;
}

int store_file_copy(const char *path, const char *copy, int64_t *schema_version, char *err, size_t errlen)
{
    db_conn *db = db_open(path, DB_OPEN_READONLY, err, errlen);
    if (!db)
        return -1;
    int64_t version = query_int(db, "PRAGMA user_version");
    int64_t tables = query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'messages'");
    if (version <= 0 || tables != 1) {
        snprintf(err, errlen, "%s is not an rtmd store (%s)", path,
                 version < 0 || tables < 0 ? db_errmsg(db) : "no schema version or no messages table");
        db_close(db);
        return -1;
    }
    db_stmt_t *st = NULL;
    int rc = db_prepare(db, "VACUUM INTO ?1", &st);
    if (rc == DB_OK)
        rc = db_bind_text(st, 1, copy, -1);
    if (rc == DB_OK)
        rc = db_step(st) == DB_DONE ? DB_OK : DB_ERROR;
    if (rc != DB_OK)
        snprintf(err, errlen, "copying %s: %s", path, db_errmsg(db));
    db_finalize(st);
    db_close(db);
    return rc == DB_OK ? check_copy(copy, schema_version, err, errlen) : -1;
}
