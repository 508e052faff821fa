/* The SQL interface of rtmd's store, neutral of the database engine: an
 * opaque connection and statement, cached prepares, binds, steps, column
 * getters and result codes of our own. Modules, the store and the schema
 * use only this; db_sqlite.c implements it on SQLite (plain wrappers, no
 * allocation per call), and db_pg.c implements the same functions on
 * libpq (a connection opened with db_open_postgres; db_backend.h tells
 * how each call finds its backend). SQL text uses 1-based "?N" parameters. Nothing outside
 * src/rtmd/store/ includes <sqlite3.h> (scripts/check-layers.py checks). */
#ifndef RTMD_DB_H
#define RTMD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct db_conn db_conn;
typedef struct db_stmt_t db_stmt_t;

/* Result codes. Steps answer DB_ROW (a row is there) or DB_DONE (no more);
 * everything else answers DB_OK or an error. DB_ABORT is also the status
 * of a store operation given up because the store is closing. */
enum {
    DB_OK = 0,
    DB_ERROR = 1,       /* an SQL error, or any failure without a code below */
    DB_ABORT = 4,       /* given up (store closing, statement interrupted) */
    DB_BUSY = 5,        /* the database is locked by another connection */
    DB_NOMEM = 7,       /* out of memory (also used by callers for their own copies) */
    DB_READONLY = 8,    /* a write on a read-only connection */
    DB_IOERR = 10,      /* the disk failed (read, write, fsync) */
    DB_CORRUPT = 11,    /* the data is not what it must be */
    DB_FULL = 13,       /* disk full, or a range used up */
    DB_CANTOPEN = 14,   /* the database cannot be opened */
    DB_CONSTRAINT = 19, /* a UNIQUE, NOT NULL, CHECK or foreign key constraint failed */
    DB_MISUSE = 21,     /* the API was used wrongly */
    DB_ROW = 100,
    DB_DONE = 101,
    DB_REFUSED = 200,   /* an apply refused its own write (a limit counted in the store): the
                         * store undoes that write alone and reports this status to its done */
};

/* A static text for a result code. */
const char *db_errstr(int code);
/* The message of the last failure on conn (valid until its next call). */
const char *db_errmsg(db_conn *conn);

/* ---- statements ---- */

/* A prepared statement for sql. While the calling thread uses conn's
 * statement cache (db_cache_use: the store does so inside a write and a
 * pooled read) the statement is cached and reused by later calls with the
 * same SQL text, so statements run per message or page are parsed once;
 * elsewhere it is freshly prepared. sql may live in a buffer of the caller
 * (the cache keeps a copy). Hand it back with db_release (reset, or
 * finalized when not cached) before the callback returns. A statement that
 * does not prepare is logged here, with its SQL. */
int db_stmt(db_conn *conn, const char *sql, db_stmt_t **out);
void db_release(db_stmt_t *st);
/* Steps once (a write, or a statement whose first row is not needed) and
 * hands the statement back: DB_OK when it ran, else the error. */
int db_step_release(db_stmt_t *st);

/* A statement prepared for this one use, never cached (start-up loads,
 * statements run once): hand it back with db_finalize. */
int db_prepare(db_conn *conn, const char *sql, db_stmt_t **out);
void db_finalize(db_stmt_t *st);

/* Binds; i is 1-based, the N of "?N". Text and blobs are not copied: they
 * must stay valid until the statement is reset or released. len < 0 for a
 * text means up to its NUL. */
int db_bind_int(db_stmt_t *st, int i, int v);
int db_bind_int64(db_stmt_t *st, int i, int64_t v);
int db_bind_double(db_stmt_t *st, int i, double v);
int db_bind_text(db_stmt_t *st, int i, const char *s, int len);
int db_bind_blob(db_stmt_t *st, int i, const void *p, int len);
int db_bind_null(db_stmt_t *st, int i);
/* The highest parameter number of the statement. */
int db_bind_count(db_stmt_t *st);

/* DB_ROW, DB_DONE or an error. */
int db_step(db_stmt_t *st);
/* Steps once for a read of at most one row: DB_OK with *row telling
 * whether there is one (its columns readable then), or the error. */
int db_step_row(db_stmt_t *st, bool *row);
/* Rewinds the statement to run it again (bindings are kept). */
void db_reset(db_stmt_t *st);

/* Columns of the current row, 0-based. A NULL reads as 0 or NULL. Text and
 * blob pointers are valid until the next step, reset or release. */
int64_t db_column_int64(db_stmt_t *st, int i);
int db_column_int(db_stmt_t *st, int i);
double db_column_double(db_stmt_t *st, int i);
const char *db_column_text(db_stmt_t *st, int i);
const void *db_column_blob(db_stmt_t *st, int i);
/* Bytes of a text or blob column (read after its pointer). */
int db_column_bytes(db_stmt_t *st, int i);
bool db_column_is_null(db_stmt_t *st, int i);

/* ---- connection ---- */

/* Rows changed by the last INSERT, UPDATE or DELETE on conn. */
int64_t db_changes(db_conn *conn);
/* Statements conn has prepared (cached or not) since it was opened: tests
 * and statistics of the statement cache. */
uint64_t db_prepare_count(db_conn *conn);
/* Runs one or more statements without parameters or rows wanted. */
int db_exec(db_conn *conn, const char *sql);
/* Whether a transaction is open on conn (one that an error ended is not). */
bool db_in_transaction(db_conn *conn);
/* Whether conn is a PostgreSQL connection (db_open_postgres): for the few
 * places whose SQL differs by engine (the schema, the batch's BEGIN). */
bool db_is_postgres(db_conn *conn);
/* Whether conn's server connection is gone (PostgreSQL; a SQLite file is
 * never lost); an idle connection reads what the server sent to learn it
 * (non-blocking reads). Its statements are unusable until db_reconnect. */
bool db_connection_lost(db_conn *conn);
/* Connects conn again (PostgreSQL), waiting at most the connection
 * string's connect_timeout (5 s when it sets none); its cached statements
 * are forgotten, since the server dropped them with the session. DB_OK,
 * or DB_IOERR with the reason in db_errmsg. Nothing to do on SQLite. */
int db_reconnect(db_conn *conn);

/* Transactions of conn rolled back since it was opened, by ROLLBACK or by
 * an error that ended one (ROLLBACK TO a savepoint does not count): a
 * writer that remembers what its transactions found in the store forgets
 * it when this moved. SQLite; 0 on PostgreSQL, where nothing uses it. */
uint64_t db_rollbacks(db_conn *conn);
/* Rows of rowid tables deleted on conn since it was opened, by a statement,
 * a trigger or a foreign key's cascade: the same for what a writer
 * remembers of rows that may be gone. SQLite; 0 on PostgreSQL. */
uint64_t db_deletes(db_conn *conn);

/* ---- SQLite's WAL, for the store (DB_MISUSE on PostgreSQL) ---- */

/* Turns SQLite's automatic checkpoint off on conn (its COMMITs no longer
 * checkpoint) and has each of its commits note the WAL's size, which
 * db_wal_frames answers: one store in conn per commit, no other work. */
int db_wal_manual(db_conn *conn);
/* Frames in the WAL after conn's last commit (db_wal_manual); 0 before. */
int db_wal_frames(db_conn *conn);
enum { DB_CKPT_PASSIVE = 0, DB_CKPT_RESTART = 2 };
/* Checkpoints the WAL on conn. PASSIVE copies what it can without waiting
 * for anyone; RESTART waits (up to the lock wait) for other writers and
 * for readers of old frames, so that the next write starts the WAL again
 * from its beginning. *log: frames in the WAL, *done: frames of it now in
 * the database (both -1 when unknown). DB_OK, DB_BUSY (not everything was
 * copied, or another checkpoint runs) or an error. */
int db_wal_checkpoint(db_conn *conn, int mode, int *log, int *done);

/* ---- for the store: opening and the statement cache ---- */

enum { DB_OPEN_CREATE = 1, DB_OPEN_READWRITE = 2, DB_OPEN_READONLY = 3 };
/* Opens path with the settings every connection of the store uses (foreign
 * keys, lock wait). NULL on failure with a message in err. */
db_conn *db_open(const char *path, int mode, char *err, size_t errlen);
/* Connects to PostgreSQL (db_pg.c) with a libpq connection string
 * ("postgresql://user@host:port/db" or "key=value ..."): the same
 * interface on a server; DB_OPEN_READONLY makes its transactions read
 * only. NULL on failure with a message in err (never the string itself,
 * which may hold a password). Not yet chosen by the store's configuration. */
db_conn *db_open_postgres(const char *conninfo, int mode, char *err, size_t errlen);
/* Finalizes the cached statements and closes; DB_OK or the error. */
int db_close(db_conn *conn);
/* Makes the calling thread cache conn's statements (db_stmt, db_release)
 * on conn from now on; NULL stops it. A connection is used by one thread
 * at a time, and its cache with it. */
void db_cache_use(db_conn *conn);

#endif
