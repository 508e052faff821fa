/* Storage interface of rtmd, on SQLite (the database in the data directory,
 * WAL) or PostgreSQL: the schema version and migrations applied on open,
 * and a writer thread that applies writes with group commit (many writes,
 * one transaction) and reports completion back on the event loop, so the
 * loop never waits for the disk. Knows nothing about connections. */
#ifndef RTMD_STORE_H
#define RTMD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "db.h"

typedef struct store store;

/* Runs on the writer thread inside the batch transaction with the writer's
 * connection (SQL through db.h); returns DB_OK (DB_DONE counts as such) or
 * a DB_ error code (the batch goes on, this write reports failure).
 * When a write of its batch fails, the batch is rolled back and replayed
 * with a savepoint per write, so an apply may run twice: it must take all
 * it needs from arg and the database, and write its results only to arg. */
typedef int (*store_apply_fn)(db_conn *db, void *arg);
/* Applies n writes at once (args in submission order) where one statement
 * for all of them costs less than one each (on PostgreSQL, a round trip
 * per statement). Same rules as store_apply_fn, for all n together: on
 * success every write succeeded; on failure the batch is rolled back and
 * each of them applied again alone with its store_apply_fn. */
typedef int (*store_apply_many_fn)(db_conn *db, void *const *args, size_t n);
/* Runs on the event loop after the batch holding the write committed
 * (status DB_OK) or failed (a DB_ code; DB_ABORT when the store gave
 * up as it closed). */
typedef void (*store_done_fn)(void *arg, int status);

typedef struct store_project {
    int64_t pid;
    char secret[128];
    int64_t created_at;  /* unix seconds */
} store_project;

/* Opens (creating if needed) <data_dir>/rtmd.sqlite3, applies migrations
 * and starts the writer thread. batch_max bounds the writes of one commit
 * (0 means a default of 256). fsync: a write is reported once the disk has
 * it (survives power loss) or once the OS has it (survives kill -9 of rtmd,
 * not a power cut); see the file comment of store.c. data_dir is created
 * like mkdir -p, the last component with mode 0700. On failure returns NULL with a message in err
 * (a database newer than this build is refused, naming both versions).
 * The store's uv_async handle keeps the loop alive only while writes are
 * pending, so uv_run(loop, UV_RUN_DEFAULT) returns once all are reported. */
store *store_open(uv_loop_t *loop, const char *data_dir, unsigned batch_max, bool fsync, char *err,
                  size_t errlen);
/* Opens the store on PostgreSQL with a libpq connection string
 * ("postgresql://user:pass@host:port/db" or "key=value ..."): the schema
 * is created or checked (store_schema_migrate), the writer and the readers
 * use connections of their own, and a write is reported once its COMMIT
 * is answered (durable as the server's synchronous_commit says). The same
 * interface and semantics as store_open otherwise. On failure NULL with a
 * message in err that never holds the connection string. */
store *store_open_postgres(uv_loop_t *loop, const char *conninfo, unsigned batch_max, char *err, size_t errlen);
int store_schema_version(store *s);
/* fn(arg) runs on the loop after each wake-up that ran done callbacks:
 * the server writes the answers they queued right away instead of at the
 * end of the loop turn. */
void store_on_dispatched(store *s, void (*fn)(void *arg), void *arg);
/* True when the store is on PostgreSQL (store_open_postgres): for the loop
 * side of a module whose strategy differs there; inside an apply use
 * db_is_postgres. */
bool store_is_postgres(const store *s);
/* Migrations applied by this store_open (0 when the schema was current). */
int store_migrations_applied(store *s);

/* Start-up helpers, called on the loop thread before serving. Both return
 * 0 on success and -1 on error (logged). */
/* Stores the projects ordered by pid into out; *count receives how many were
 * stored (never more than cap). Fails if the database holds more than cap. */
int store_load_projects(store *s, store_project *out, size_t cap, size_t *count);
/* Inserts the project if its pid is unknown; an existing one is kept (a
 * different secret is logged as a warning). The secret must fit in
 * store_project.secret. */
int store_ensure_project(store *s, int64_t pid, const char *secret);

/* Statements: db_stmt (cached inside a write or a read, see db.h),
 * db_release, db_step_release; db_prepare and db_finalize for statements
 * run once. */
/* Steps a statement that returns no rows (INSERT, UPDATE, DELETE) to its
 * end and finalizes it (db_prepare's): DB_OK when it ran, else the error. */
int store_step_finalize(db_stmt_t *st);

/* Runs fn with the reader connection on the calling (loop) thread; for
 * start-up loads only, before serving. Returns fn's status. */
int store_run_startup(store *s, store_apply_fn fn, void *arg);

/* Queues a write for the writer thread; done (may be NULL) runs on the loop,
 * in submission order. Loop thread only. The writes of a loop turn are
 * handed to the writer together, before the loop waits for events again. Returns 0, or -1 if the store is
 * closing or memory ran out (then neither callback will run). */
int store_submit(store *s, store_apply_fn apply, store_done_fn done, void *arg);
/* store_submit for a write that may be applied together with the writes
 * submitted right before or after it with the same apply_many: the writer
 * hands a run of such consecutive writes of one batch to apply_many in
 * one call, and uses apply alone for a write with no such neighbour or
 * when the run failed. */
int store_submit_many(store *s, store_apply_fn apply, store_apply_many_fn apply_many, store_done_fn done,
                      void *arg);
/* store_submit_many for a patient write: one whose effects were already
 * seen (a room message pushed before its commit), so that only its done
 * callback waits for the commit. While every write queued is patient, the
 * writer starts a batch at most once per patient interval, and more writes
 * share a commit and a sync. */
int store_submit_patient(store *s, store_apply_fn apply, store_apply_many_fn apply_many, store_done_fn done,
                         void *arg);
/* The patient interval in microseconds (0, the default: none). Before the
 * store's first write. */
void store_set_patient_interval(store *s, uint64_t us);
/* Runs fn on a thread of libuv's pool with a read-only connection of its
 * own (WAL: reads see every committed write and never wait for the
 * writer); done runs on the loop with fn's status. Everything fn reads must
 * be copied into arg before it returns. */
int store_read(store *s, store_apply_fn fn, store_done_fn done, void *arg);
/* Hands the writes submitted so far to the writer now rather than before
 * the loop next waits for events: for a caller about to wait for the writer
 * without returning to the loop. Loop thread only. */
void store_hand_over(store *s);
/* Number of writes and reads queued and not yet reported. */
size_t store_pending(store *s);
/* SQLite: the bytes of the database file and its WAL on disk; -1 on
 * PostgreSQL (its size is the server's to report). */
int64_t store_disk_bytes(const store *s);
/* Transactions committed by the writer thread since store_open: with group
 * commit this stays below the number of writes (tests and statistics). */
uint64_t store_commit_count(store *s);
/* fdatasyncs of the WAL done so far (fsync on): every write reported with
 * DB_OK was committed before one of them began. */
uint64_t store_sync_count(store *s);
/* SQLite's WAL checkpoints since store_open (all 0 on PostgreSQL): see
 * the file comment of store.c. */
typedef struct store_wal_stats {
    uint64_t checkpoints_thread;  /* run by the checkpointer thread */
    uint64_t checkpoints_writer;  /* run by the writer to restart the WAL */
    uint64_t frames_checkpointed; /* frames copied into the database */
    uint64_t restarts;            /* times the WAL started again from its beginning */
    uint64_t wal_frames;          /* frames in the WAL after the last commit */
} store_wal_stats;
void store_wal_stats_get(store *s, store_wal_stats *out);
/* Finishes every queued write (their done callbacks run synchronously on
 * this, the loop's, thread before it returns), stops the thread, checkpoints
 * the WAL and closes the database. Loop thread only; may be called from a
 * done callback. The uv_async handle is closed with uv_close: the loop must
 * run once more (e.g. uv_run(loop, UV_RUN_NOWAIT)) to release it before
 * uv_loop_close. */
void store_close(store *s);

#endif
