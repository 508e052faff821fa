/* Unit tests of the store (src/rtmd/store/store.c, store_schema.c): schema
 * creation and migrations, start-up project helpers, the writer thread's
 * group commit, per-write failure isolation, runs of writes applied
 * together (store_submit_many), durability across reopen, the draining
 * close, the WAL's checkpoints off the writer's COMMIT and kill -9 while
 * the WAL is started again. Each test uses a fresh directory under /tmp and a real
 * libuv loop. With RTMD_TEST_PG set (a PostgreSQL connection string; run
 * so by tests/integration/store-pg.test.js) the tests of the writer and
 * the project helpers run on PostgreSQL instead, each in a fresh database
 * of that server; the SQLite file's own tests (migrations from old
 * versions, the WAL and its sync) need SQLite. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lathist.h"
#include "store.h"
#include "tmpdir.h"

#define SCHEMA_VERSION 21

typedef struct fixture {
    char dir[64];
    char data[128];
    char pg_url[512]; /* PostgreSQL mode: the test's own database */
    uv_loop_t loop;
} fixture;

static const char *pg_base; /* RTMD_TEST_PG: PostgreSQL mode */

/* PostgreSQL mode: a fresh database for one test; its URL in f->pg_url. */
static void create_pg_database(fixture *f)
{
    static int n;
    char err[256], sql[128], name[64];
    snprintf(name, sizeof name, "rtmd_store_%d_%d", (int)getpid(), ++n);
    db_conn *admin = db_open_postgres(pg_base, DB_OPEN_READWRITE, err, sizeof err);
    if (!admin)
        fail_msg("%s", err);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    assert_int_equal(db_exec(admin, sql), DB_OK);
    db_close(admin);
    const char *slash = strrchr(pg_base, '/');
    assert_non_null(slash);
    snprintf(f->pg_url, sizeof f->pg_url, "%.*s/%s", (int)(slash - pg_base), pg_base, name);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/rtmd-test-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    if (pg_base)
        create_pg_database(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    /* Closing the loop fails if a handle (the store's async) leaked. */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    remove_tree(f->dir);
    free(f);
    return 0;
}

static store *open_store(fixture *f, unsigned batch_max)
{
    char err[256] = "";
    store *s = pg_base ? store_open_postgres(&f->loop, f->pg_url, batch_max, err, sizeof err)
                       : store_open(&f->loop, f->data, batch_max, true, err, sizeof err);
    if (!s)
        fail_msg("store_open: %s", err);
    return s;
}

static void close_store(fixture *f, store *s)
{
    store_close(s);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static db_conn *open_raw(fixture *f)
{
    char err[256];
    if (pg_base) {
        db_conn *db = db_open_postgres(f->pg_url, DB_OPEN_READWRITE, err, sizeof err);
        if (!db)
            fail_msg("%s", err);
        return db;
    }
    char path[192];
    snprintf(path, sizeof path, "%s/rtmd.sqlite3", f->data);
    db_conn *db = db_open(path, DB_OPEN_CREATE, err, sizeof err);
    assert_non_null(db);
    /* A bare connection, as the sqlite3 shell would open it. */
    assert_int_equal(db_exec(db, "PRAGMA foreign_keys = OFF"), DB_OK);
    return db;
}

static int64_t query_int(db_conn *db, const char *sql)
{
    db_stmt_t *st = NULL;
    assert_int_equal(db_prepare(db, sql, &st), DB_OK);
    assert_int_equal(db_step(st), DB_ROW);
    int64_t v = db_column_int64(st, 0);
    db_finalize(st);
    return v;
}

/* The text of the first column of the only row of sql, into out. */
static void query_text(db_conn *db, const char *sql, char *out, size_t cap)
{
    db_stmt_t *st = NULL;
    assert_int_equal(db_prepare(db, sql, &st), DB_OK);
    assert_int_equal(db_step(st), DB_ROW);
    const char *v = db_column_text(st, 0);
    snprintf(out, cap, "%s", v ? v : "");
    db_finalize(st);
}

/* Takes a database of the latest version back to what migration 20
 * found: no user_langs. */
/* Takes a database of the latest version back to what migration 21
 * found: the conversation index written in bulk, no chain. */
#define BEFORE_MIGRATION_21                                                                    \
    "DROP VIEW conv_messages; DROP TRIGGER messages_chain_delete; DROP TABLE conv_last;"       \
    "DROP INDEX messages_prev; ALTER TABLE messages DROP COLUMN prev_id;"                      \
    "INSERT INTO counters(name, value) SELECT 'conv_indexed_upto', COALESCE(MAX(id), 0)"       \
    "  FROM messages WHERE true ON CONFLICT(name) DO UPDATE SET value = excluded.value;"       \
    "CREATE VIEW conv_messages AS SELECT c.id AS id, c.pid AS pid, c.conv_type AS conv_type,"  \
    "  c.conv_a AS conv_a, c.conv_b AS conv_b, m.from_uid AS from_uid, m.mid AS mid,"          \
    "  m.mtype AS mtype, m.msg AS msg, m.is_binary AS is_binary, m.attrs AS attrs,"            \
    "  m.mtime AS mtime, m.deleted AS deleted FROM conv_index c JOIN messages m ON m.id = c.id" \
    "  UNION ALL SELECT id, pid, conv_type, conv_a, conv_b, from_uid, mid, mtype, msg,"        \
    "  is_binary, attrs, mtime, deleted FROM messages"                                         \
    "  WHERE id > (SELECT value FROM counters WHERE name = 'conv_indexed_upto');"

#define BEFORE_MIGRATION_20 BEFORE_MIGRATION_21 "DROP TABLE user_langs;"

/* Takes a database of the latest version back to what migration 19
 * found: no stored files. */
#define BEFORE_MIGRATION_19 BEFORE_MIGRATION_20 "DROP TABLE file_messages; DROP TABLE files;"

/* Takes a database of the latest version back to what migration 18
 * found: the conversation index messages_conv. */
#define BEFORE_MIGRATION_18                                                                    \
    BEFORE_MIGRATION_19                                                                        \
    "DROP VIEW conv_messages; DROP TRIGGER conv_index_delete; DROP TABLE conv_index;"          \
    "DELETE FROM counters WHERE name = 'conv_indexed_upto';"                                   \
    "CREATE INDEX messages_conv ON messages(pid, conv_type, conv_a, conv_b);"

/* Opens the store on a database left at version `from`: every later
 * migration runs, and only those. Returns a raw connection to check the
 * result. */

static db_conn *migrate_from(fixture *f, int from)
{
    store *s = open_store(f, 0);
    assert_int_equal(store_schema_version(s), SCHEMA_VERSION);
    assert_int_equal(store_migrations_applied(s), SCHEMA_VERSION - from);
    close_store(f, s);
    return open_raw(f);
}

static size_t count_projects(fixture *f)
{
    db_conn *db = open_raw(f);
    size_t n = (size_t)query_int(db, "SELECT count(*) FROM projects");
    db_close(db);
    return n;
}

/* ---- writes used by the tests ---- */

typedef struct twrite {
    int64_t pid;        /* project row to insert */
    int bad;            /* insert, then run invalid SQL */
    int index;          /* submission order */
    int *next_done;     /* shared counter checking the done order */
    int status;
    int done;
} twrite;

static int apply_insert(db_conn *db, void *arg)
{
    twrite *w = arg;
    db_stmt_t *st = NULL;
    int rc = db_prepare(db, "INSERT INTO projects(pid, secret, created_at) VALUES(?1, 'x', 0)", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, w->pid);
    rc = db_step(st);
    db_finalize(st);
    if (rc != DB_DONE)
        return rc;
    if (w->bad)
        return db_exec(db, "INSERT INTO no_such_table VALUES (1)");
    return DB_OK;
}

static void done_record(void *arg, int status)
{
    twrite *w = arg;
    assert_false(w->done);
    w->done = 1;
    w->status = status;
    if (w->next_done) {
        assert_int_equal(w->index, *w->next_done);
        (*w->next_done)++;
    }
}

/* A write that holds the writer thread until released, so that the test
 * decides what is queued behind it. */
typedef struct gate {
    uv_sem_t started;
    uv_sem_t release;
    int done;
} gate;

static int apply_gate(db_conn *db, void *arg)
{
    (void)db;
    gate *g = arg;
    uv_sem_post(&g->started);
    uv_sem_wait(&g->release);
    return DB_OK;
}

static void done_gate(void *arg, int status)
{
    gate *g = arg;
    assert_int_equal(status, DB_OK);
    g->done = 1;
}

static void gate_init(gate *g)
{
    assert_int_equal(uv_sem_init(&g->started, 0), 0);
    assert_int_equal(uv_sem_init(&g->release, 0), 0);
    g->done = 0;
}

static void gate_destroy(gate *g)
{
    uv_sem_destroy(&g->started);
    uv_sem_destroy(&g->release);
}

/* Submits the gate and waits until the writer thread is inside it. */
static void gate_hold(store *s, gate *g)
{
    assert_int_equal(store_submit(s, apply_gate, done_gate, g), 0);
    store_hand_over(s);
    uv_sem_wait(&g->started);
}

/* ---- tests ---- */

static void test_open_creates_schema(void **state)
{
    fixture *f = *state;
    /* A nested data directory is created, the leaf private. */
    snprintf(f->data, sizeof f->data, "%s/a/b/data", f->dir);
    store *s = open_store(f, 0);
    assert_int_equal(store_schema_version(s), SCHEMA_VERSION);
    assert_int_equal(store_migrations_applied(s), SCHEMA_VERSION);
    assert_int_equal(store_pending(s), 0);
    assert_int_equal(store_commit_count(s), 0);

    struct stat st;
    assert_int_equal(stat(f->data, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    char path[192];
    snprintf(path, sizeof path, "%s/rtmd.sqlite3", f->data);
    assert_int_equal(stat(path, &st), 0);

    db_conn *db = open_raw(f);
    assert_int_equal(query_int(db, "PRAGMA user_version"), SCHEMA_VERSION);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                                   "('projects', 'users', 'tokens', 'messages')"),
                     4);
    assert_int_equal(query_int(db, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
    /* Migration 10: friend lists and blacklists. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                                   "('friends', 'blacklists')"),
                     2);
    /* Migration 5: messages keyed by id; migration 6: the p2p peers in
     * their own table; migration 18: the conversation index a table;
     * migration 21: the chain's index of prev_id beside the dedup one. */
    assert_int_equal(query_int(db, "SELECT pk FROM pragma_table_info('messages') WHERE name = 'id'"), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'messages'"),
                     2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'messages_prev'"),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'messages_dedup'"),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE name IN ('conv_index', 'conv_messages')"),
                     2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'p2p_peers'"),
                     1);
    /* The unique indexes are there: string ids per project, message dedup. */
    assert_int_equal(db_exec(db,
                                  "INSERT INTO projects VALUES (1, 's', 0);"
                                  "INSERT INTO users VALUES (1, 10, 'alice', 0);"
                                  "INSERT INTO users VALUES (1, 11, NULL, 0);"
                                  "INSERT INTO users VALUES (1, 12, NULL, 0);"
                                  "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                                  " msg, mtime) VALUES (1, 1, 10, 11, 1, 10, 777, 30, x'00', 0);"),
                     DB_OK);
    assert_int_equal(db_exec(db, "INSERT INTO users VALUES (1, 13, 'alice', 0)"),
                     DB_CONSTRAINT);
    assert_int_equal(db_exec(db, "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                                  " msg, mtime) VALUES (1, 1, 10, 11, 2, 10, 777, 30, x'00', 0)"),
                     DB_CONSTRAINT);
    /* The same (from, mid) in another conversation: one sendmsgs to two users. */
    assert_int_equal(db_exec(db, "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                                  " msg, mtime) VALUES (1, 1, 10, 12, 3, 10, 777, 30, x'00', 0)"),
                     DB_OK);
    db_close(db);
    close_store(f, s);
}

static void test_reopen_keeps_data(void **state)
{
    fixture *f = *state;
    store *s = open_store(f, 0);
    assert_int_equal(store_ensure_project(s, 42, "secret-42"), 0);
    close_store(f, s);

    /* After a clean close the WAL has been checkpointed and truncated. */
    char wal[192];
    struct stat st;
    snprintf(wal, sizeof wal, "%s/rtmd.sqlite3-wal", f->data);
    assert_true(stat(wal, &st) != 0 || st.st_size == 0);

    s = open_store(f, 0);
    assert_int_equal(store_schema_version(s), SCHEMA_VERSION);
    assert_int_equal(store_migrations_applied(s), 0);
    store_project p[4];
    size_t n = 0;
    assert_int_equal(store_load_projects(s, p, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].pid, 42);
    assert_string_equal(p[0].secret, "secret-42");
    close_store(f, s);
}

/* PostgreSQL: the schema is made once; a second open finds it and the
 * data. */
static void test_pg_reopen_keeps_data(void **state)
{
    fixture *f = *state;
    store *s = open_store(f, 0);
    assert_int_equal(store_schema_version(s), SCHEMA_VERSION);
    assert_int_equal(store_migrations_applied(s), 1);
    assert_int_equal(store_ensure_project(s, 42, "secret-42"), 0);
    close_store(f, s);
    s = open_store(f, 0);
    assert_int_equal(store_migrations_applied(s), 0);
    store_project p[4];
    size_t n = 0;
    assert_int_equal(store_load_projects(s, p, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(p[0].secret, "secret-42");
    close_store(f, s);
}

/* Migrations 6 to 9 on a database of version 5: p2p_peers gets both
 * users of every p2p conversation, the index it replaces is gone, the
 * message id floor starts at the newest message, and the storage count
 * covers the messages already stored. */
static void test_migrations_after_5_on_version_5(void **state)
{
    fixture *f = *state;
    close_store(f, open_store(f, 0));
    db_conn *db = open_raw(f);
    assert_int_equal(db_exec(db,
                                  BEFORE_MIGRATION_18 "DROP TABLE p2p_peers;"
                                  "DROP TABLE counters;"
                                  "DROP TRIGGER storage_usage_delete;"
                                  "DROP TRIGGER storage_usage_update;"
                                  "DROP TABLE storage_usage;"
                                  "DROP TABLE signed_salts;"
                                  "DROP TABLE friends;"
                                  "DROP TABLE blacklists;"
                                  "DROP TABLE infos;"
                                  "DROP TABLE user_data;"
                                  "DROP TABLE user_devices;"
                                  "DROP TABLE push_options;"
                                  "DROP TABLE rtcat_tokens;"
                                  "DROP TABLE rtcat_sessions;"
                                  "CREATE INDEX messages_p2p_peer ON messages(pid, conv_type, conv_b, conv_a);"
                                  "INSERT INTO projects VALUES (1, 's', 0);"
                                  "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                                  " msg, mtime) VALUES (1, 1, 10, 11, 1, 10, 1, 30, x'00', 0),"
                                  " (1, 1, 10, 11, 2, 11, 2, 30, x'00', 0), (1, 1, 10, 12, 3, 12, 3, 30, x'00', 0),"
                                  " (1, 2, 500, 0, 4, 10, 4, 30, x'00', 0);"
                                  "PRAGMA user_version = 5;"),
                     DB_OK);
    db_close(db);

    db = migrate_from(f, 5);
    /* Migration 12: the per-user tables of userdata.c and devices.c. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                                   " ('user_data', 'user_devices', 'push_options')"),
                     3);
    assert_int_equal(query_int(db, "SELECT count(*) FROM signed_salts"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM friends") + query_int(db, "SELECT count(*) FROM blacklists"), 0);
    assert_int_equal(query_int(db, "SELECT value FROM counters WHERE name = 'message_id_floor'"), 4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'messages_p2p_peer'"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM p2p_peers"), 4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM p2p_peers WHERE pid = 1 AND ((uid = 10 AND peer IN (11, 12))"
                                   " OR (uid = 11 AND peer = 10) OR (uid = 12 AND peer = 10))"),
                     4);
    /* Migration 9 counted the bytes stored; since migration 16 there is no
     * mark: an insert fires nothing (the writer's apply adds the bytes it
     * inserts, as done by hand here), a delete takes its row's bytes off. */
    assert_int_equal(query_int(db, "SELECT bytes FROM storage_usage WHERE pid = 1"), 4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM counters WHERE name = 'storage_usage_upto'"), 0);
    assert_int_equal(db_exec(db,
                                  "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                                  " msg, attrs, mtime) VALUES (1, 1, 10, 11, 5, 10, 5, 30, 'abc', 'é', 0);"
                                  "INSERT OR IGNORE INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid,"
                                  " mtype, msg, attrs, mtime) VALUES (1, 1, 10, 11, 6, 10, 5, 30, 'abc', 'é', 0);"),
                     DB_OK);
    assert_int_equal(query_int(db, "SELECT bytes FROM storage_usage WHERE pid = 1"), 4);
    assert_int_equal(db_exec(db, "UPDATE storage_usage SET bytes = bytes + 5 WHERE pid = 1"), DB_OK);
    assert_int_equal(db_exec(db, "DELETE FROM messages WHERE id IN (1, 5)"), DB_OK);
    assert_int_equal(query_int(db, "SELECT bytes FROM storage_usage WHERE pid = 1"), 3);
    /* Migration 13: an edit (editmsg) changes the count by the difference;
     * bans take kind 4 (project ban). */
    assert_int_equal(db_exec(db, "UPDATE messages SET msg = 'abcd', attrs = 'xy' WHERE id = 2"),
                     DB_OK);
    assert_int_equal(query_int(db, "SELECT bytes FROM storage_usage WHERE pid = 1"), 8);
    assert_int_equal(db_exec(db, "UPDATE messages SET msg = '' WHERE id = 6"), DB_OK);
    assert_int_equal(query_int(db, "SELECT bytes FROM storage_usage WHERE pid = 1"), 8);
    assert_int_equal(db_exec(db, "INSERT INTO bans(pid, kind, target, uid, until) VALUES (1, 4, 0, 10, 0)"),
                     DB_OK);
    assert_int_not_equal(db_exec(db, "INSERT INTO bans(pid, kind, target, uid, until) VALUES (1, 5, 0, 10, 0)"),
                         DB_OK);
    db_close(db);
}

/* Migration 16 on a database of version 15: the rows above the
 * storage_usage_upto mark (not yet caught up) are added, the mark is gone,
 * and deletes and edits count every row, above the old mark too. */
static void test_migration_16_counts_rows_above_the_mark(void **state)
{
    fixture *f = *state;
    close_store(f, open_store(f, 0));
    db_conn *db = open_raw(f);
    assert_int_equal(db_exec(db,
                             BEFORE_MIGRATION_18 "DROP TRIGGER storage_usage_delete;"
                             "DROP TRIGGER storage_usage_update;"
                             "CREATE TRIGGER storage_usage_delete AFTER DELETE ON messages"
                             "  WHEN old.id <= (SELECT value FROM counters WHERE name = 'storage_usage_upto') BEGIN"
                             "  UPDATE storage_usage SET bytes = bytes - length(CAST(old.msg AS BLOB))"
                             "    - length(CAST(old.attrs AS BLOB)) WHERE pid = old.pid;"
                             "END;"
                             "CREATE TRIGGER storage_usage_update AFTER UPDATE OF msg, attrs ON messages"
                             "  WHEN old.id <= (SELECT value FROM counters WHERE name = 'storage_usage_upto') BEGIN"
                             "  UPDATE storage_usage SET bytes = bytes - length(CAST(old.msg AS BLOB))"
                             "    - length(CAST(old.attrs AS BLOB)) + length(CAST(new.msg AS BLOB))"
                             "    + length(CAST(new.attrs AS BLOB)) WHERE pid = old.pid;"
                             "END;"
                             "INSERT INTO projects VALUES (1, 's', 0), (2, 't', 0);"
                             "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                             " msg, attrs, mtime) VALUES (1, 1, 10, 11, 1, 10, 1, 30, 'ab', '', 0),"
                             " (1, 1, 10, 11, 2, 10, 2, 30, 'abc', 'd', 0), (2, 2, 5, 0, 3, 10, 3, 30, 'xyz', '', 0),"
                             " (1, 2, 5, 0, 4, 10, 4, 30, 'abcdefg', '', 0);"
                             "INSERT INTO storage_usage(pid, bytes) VALUES (1, 2);"
                             "INSERT INTO counters(name, value) VALUES ('storage_usage_upto', 1);"
                             "PRAGMA user_version = 15;"),
                     DB_OK);
    db_close(db);

    db = migrate_from(f, 15);
    assert_int_equal(query_int(db, "SELECT bytes FROM storage_usage WHERE pid = 1"), 2 + 4 + 7);
    assert_int_equal(query_int(db, "SELECT bytes FROM storage_usage WHERE pid = 2"), 3);
    assert_int_equal(query_int(db, "SELECT count(*) FROM counters WHERE name = 'storage_usage_upto'"), 0);
    assert_int_equal(db_exec(db, "UPDATE messages SET msg = 'a' WHERE id = 4"), DB_OK);
    assert_int_equal(query_int(db, "SELECT bytes FROM storage_usage WHERE pid = 1"), 7);
    assert_int_equal(db_exec(db, "DELETE FROM messages WHERE id IN (2, 3)"), DB_OK);
    assert_int_equal(query_int(db, "SELECT bytes FROM storage_usage WHERE pid = 1"), 3);
    assert_int_equal(query_int(db, "SELECT bytes FROM storage_usage WHERE pid = 2"), 0);
    db_close(db);
}

/* Migration 17 on a database of version 16: messages_dedup leads with mid
 * and still refuses a second (conversation, from, mid). */
static void test_migration_17_dedup_leads_with_mid(void **state)
{
    fixture *f = *state;
    close_store(f, open_store(f, 0));
    db_conn *db = open_raw(f);
    assert_int_equal(db_exec(db,
                             BEFORE_MIGRATION_18 "DROP INDEX messages_dedup;"
                             "CREATE UNIQUE INDEX messages_dedup ON messages(pid, conv_type, conv_a, conv_b,"
                             " from_uid, mid);"
                             "INSERT INTO projects VALUES (1, 's', 0);"
                             "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                             " msg, mtime) VALUES (1, 1, 10, 11, 1, 10, 777, 30, x'00', 0);"
                             "PRAGMA user_version = 16;"),
                     DB_OK);
    db_close(db);

    db = migrate_from(f, 16);
    assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_index_info('messages_dedup')"
                                   " WHERE seqno = 0 AND name = 'mid'"),
                     1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM pragma_index_info('messages_dedup')"), 6);
    assert_int_equal(db_exec(db, "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                                 " msg, mtime) VALUES (1, 1, 10, 11, 2, 10, 777, 30, x'00', 0)"),
                     DB_CONSTRAINT);
    db_close(db);
}

/* Migration 18 on a database of version 17: every stored message is in
 * conv_index and the mark is the newest id; the view conv_messages gives a
 * conversation's rows from the index and from above the mark, merged in id
 * order; a deleted message leaves the index. */
static void test_migration_18_conv_index_in_bulk(void **state)
{
    fixture *f = *state;
    close_store(f, open_store(f, 0));
    db_conn *db = open_raw(f);
    assert_int_equal(db_exec(db, BEFORE_MIGRATION_18
                             "INSERT INTO projects VALUES (1, 's', 0);"
                             "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                             " msg, mtime) VALUES (1, 1, 10, 11, 1, 10, 1, 30, x'00', 0),"
                             " (1, 2, 500, 0, 2, 10, 2, 30, x'00', 0), (1, 1, 10, 11, 3, 11, 3, 30, x'00', 0);"
                             "PRAGMA user_version = 17;"),
                     DB_OK);
    db_close(db);

    db = migrate_from(f, 17);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'messages_conv'"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM conv_index"), 3);
    char got[64];
    query_text(db, "SELECT group_concat(id, ',') FROM (SELECT id FROM conv_messages WHERE pid = 1 AND conv_type = 1"
                   " AND conv_a = 10 AND conv_b = 11 ORDER BY id DESC)", got, sizeof got);
    assert_string_equal(got, "3,1");
    db_close(db);
}

/* The ids of one conversation of test_migration_21_chain through
 * conv_messages, with a condition and an order. */
static void chain_ids(db_conn *db, const char *cond, char *got, size_t cap)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT COALESCE(group_concat(id, ','), '') FROM (SELECT id FROM conv_messages WHERE pid = 1"
             " AND conv_type = 1 AND conv_a = 10 AND conv_b = 11 %s)",
             cond);
    query_text(db, sql, got, cap);
}

/* Migration 21 on a database of version 20: every message gets its
 * conversation's previous id, conv_last the newest, conv_index every
 * message (the rows above the old mark too); conv_messages walks the
 * chain in both directions within id bounds, from any starting point;
 * a deleted message is spliced out, conv_last follows the newest. */
static void test_migration_21_chain(void **state)
{
    fixture *f = *state;
    close_store(f, open_store(f, 0));
    db_conn *db = open_raw(f);
    /* Conversation (10, 11): ids 1, 3, 4, 6, 7; (10, 12): 2, 5. The
     * mark at 3: 4 to 7 were not indexed yet. */
    assert_int_equal(db_exec(db, BEFORE_MIGRATION_20
                             "INSERT INTO projects VALUES (1, 's', 0);"
                             "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                             " msg, mtime) VALUES (1, 1, 10, 11, 1, 10, 1, 30, x'00', 0),"
                             " (1, 1, 10, 12, 2, 10, 2, 30, x'00', 0), (1, 1, 10, 11, 3, 11, 3, 30, x'00', 0),"
                             " (1, 1, 10, 11, 4, 10, 4, 30, x'00', 0), (1, 1, 10, 12, 5, 10, 5, 30, x'00', 0),"
                             " (1, 1, 10, 11, 6, 10, 6, 30, x'00', 0), (1, 1, 10, 11, 7, 10, 7, 30, x'00', 0);"
                             "INSERT INTO conv_index SELECT pid, conv_type, conv_a, conv_b, id FROM messages WHERE id <= 3;"
                             "UPDATE counters SET value = 3 WHERE name = 'conv_indexed_upto';"
                             "PRAGMA user_version = 20;"),
                     DB_OK);
    db_close(db);

    db = migrate_from(f, 20);
    char got[64];
    query_text(db, "SELECT group_concat(id || ':' || COALESCE(prev_id, '-'), ',') FROM (SELECT id, prev_id"
                   " FROM messages ORDER BY id)", got, sizeof got);
    assert_string_equal(got, "1:-,2:-,3:1,4:3,5:2,6:4,7:6");
    query_text(db, "SELECT group_concat(conv_b || ':' || last_id || ':' || unindexed, ',') FROM conv_last",
               got, sizeof got);
    assert_string_equal(got, "11:7:0,12:5:0");
    assert_int_equal(query_int(db, "SELECT count(*) FROM conv_index"), 7);
    assert_int_equal(query_int(db, "SELECT count(*) FROM counters WHERE name = 'conv_indexed_upto'"), 0);

    /* Walks from every starting point: the full index, then a sparse one
     * (only 3 indexed, as the writer leaves it), then none. */
    const char *indexes[] = {"", "DELETE FROM conv_index WHERE id <> 3", "DELETE FROM conv_index"};
    for (size_t i = 0; i < sizeof indexes / sizeof indexes[0]; i++) {
        if (*indexes[i])
            assert_int_equal(db_exec(db, indexes[i]), DB_OK);
        chain_ids(db, "ORDER BY id DESC", got, sizeof got);
        assert_string_equal(got, "7,6,4,3,1");
        chain_ids(db, "ORDER BY id", got, sizeof got);
        assert_string_equal(got, "1,3,4,6,7");
        chain_ids(db, "AND id < 6 ORDER BY id DESC", got, sizeof got);
        assert_string_equal(got, "4,3,1");
        chain_ids(db, "AND id <= 6 AND id > 1 ORDER BY id DESC", got, sizeof got);
        assert_string_equal(got, "6,4,3");
        chain_ids(db, "AND id > 3 ORDER BY id", got, sizeof got);
        assert_string_equal(got, "4,6,7");
        chain_ids(db, "AND id >= 2 AND id < 7 ORDER BY id LIMIT 2", got, sizeof got);
        assert_string_equal(got, "3,4");
        chain_ids(db, "AND id > 7 ORDER BY id", got, sizeof got);
        assert_string_equal(got, "");
        chain_ids(db, "AND id < 1 ORDER BY id DESC", got, sizeof got);
        assert_string_equal(got, "");
        chain_ids(db, "AND id > 4 AND id < 4", got, sizeof got);
        assert_string_equal(got, "");
        chain_ids(db, "AND from_uid = 11", got, sizeof got);
        assert_string_equal(got, "3");
    }
    assert_int_equal(query_int(db, "SELECT count(*) FROM conv_messages WHERE pid = 1 AND conv_type = 1"
                                   " AND conv_a = 10 AND conv_b = 12"),
                     2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM conv_messages WHERE pid = 1 AND conv_type = 1"
                                   " AND conv_a = 10 AND conv_b = 13"),
                     0);

    /* Deletes: in the middle (4), the newest (7), the oldest (1). */
    assert_int_equal(db_exec(db, "INSERT INTO conv_index VALUES (1, 1, 10, 11, 3)"), DB_OK);
    assert_int_equal(db_exec(db, "DELETE FROM messages WHERE id IN (4, 7, 1)"), DB_OK);
    chain_ids(db, "ORDER BY id DESC", got, sizeof got);
    assert_string_equal(got, "6,3");
    chain_ids(db, "ORDER BY id", got, sizeof got);
    assert_string_equal(got, "3,6");
    assert_int_equal(query_int(db, "SELECT prev_id FROM messages WHERE id = 6"), 3);
    assert_int_equal(query_int(db, "SELECT prev_id IS NULL FROM messages WHERE id = 3"), 1);
    assert_int_equal(query_int(db, "SELECT last_id FROM conv_last WHERE conv_b = 11"), 6);
    /* The whole conversation: conv_last's row goes with it. */
    assert_int_equal(db_exec(db, "DELETE FROM messages WHERE conv_b = 11"), DB_OK);
    assert_int_equal(query_int(db, "SELECT count(*) FROM conv_last"), 1);
    chain_ids(db, "ORDER BY id", got, sizeof got);
    assert_string_equal(got, "");
    db_close(db);
}

/* The ids of chain_ids and how many message rows the walk read. */
static int64_t chain_walk(db_conn *db, const char *cond, char *got, size_t cap)
{
    int64_t before = query_int(db, "SELECT conv_chain_walked()");
    chain_ids(db, cond, got, cap);
    return query_int(db, "SELECT conv_chain_walked()") - before;
}

/* Bounds on mtime start and end a walk near them: two conversations of
 * 1,000 messages each, interleaved (10, 11 on odd ids, 10, 12 on even
 * ones), mtime 1000 times the id, indexed every 64th message as the writer
 * leaves them. Each walk reads a few dozen rows at most; walked from an
 * end of the conversation, each would read hundreds. */
static void test_chain_time_bounds(void **state)
{
    fixture *f = *state;
    close_store(f, open_store(f, 0));
    db_conn *db = open_raw(f);
    assert_int_equal(db_exec(db, "INSERT INTO projects VALUES (1, 's', 0);"
                                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
                                 " INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, prev_id, from_uid, mid,"
                                 " mtype, msg, mtime) SELECT 1, 1, 10, 11 + (i + 1) % 2, i, NULLIF(max(i - 2, 0), 0),"
                                 " 10, i, 30, x'00', 1000 * i FROM n;"
                                 "INSERT INTO conv_last VALUES (1, 1, 10, 11, 1999, 0), (1, 1, 10, 12, 2000, 0);"
                                 "INSERT INTO conv_index SELECT pid, conv_type, conv_a, conv_b, id FROM messages"
                                 " WHERE (id - 1) / 2 % 64 = 0;"),
                     DB_OK);
    assert_int_equal(query_int(db, "SELECT count(*) FROM conv_index"), 32);
    char got[256];
    /* The window within the conversation, newest first and oldest first. */
    assert_true(chain_walk(db, "AND mtime >= 1001000 AND mtime <= 1019000 ORDER BY id DESC", got, sizeof got) < 30);
    assert_string_equal(got, "1019,1017,1015,1013,1011,1009,1007,1005,1003,1001");
    assert_true(chain_walk(db, "AND mtime >= 1001000 AND mtime <= 1019000 ORDER BY id", got, sizeof got) < 90);
    assert_string_equal(got, "1001,1003,1005,1007,1009,1011,1013,1015,1017,1019");
    assert_true(chain_walk(db, "AND mtime >= 1501000 ORDER BY id LIMIT 5", got, sizeof got) < 90);
    assert_string_equal(got, "1501,1503,1505,1507,1509");
    /* Fewer rows than the limit: the walk ends at the far time bound. */
    assert_true(chain_walk(db, "AND mtime >= 1995000 ORDER BY id DESC LIMIT 20", got, sizeof got) < 10);
    assert_string_equal(got, "1999,1997,1995");
    assert_true(chain_walk(db, "AND mtime <= 5000 ORDER BY id", got, sizeof got) < 10);
    assert_string_equal(got, "1,3,5");
    /* An end past the newest message: the walk starts at the newest. */
    assert_true(chain_walk(db, "AND mtime <= 5000000 ORDER BY id DESC LIMIT 3", got, sizeof got) < 10);
    assert_string_equal(got, "1999,1997,1995");
    /* With id bounds (a page after lastid), exclusive and fractional
     * bounds (SQLite checks mtime as well), and windows with nothing. */
    assert_true(chain_walk(db, "AND id < 1011 AND mtime >= 1001000 ORDER BY id DESC", got, sizeof got) < 30);
    assert_string_equal(got, "1009,1007,1005,1003,1001");
    assert_true(chain_walk(db, "AND id > 1003 AND mtime <= 1011000 ORDER BY id", got, sizeof got) < 90);
    assert_string_equal(got, "1005,1007,1009,1011");
    chain_walk(db, "AND mtime > 1001000 AND mtime < 1007000 ORDER BY id DESC", got, sizeof got);
    assert_string_equal(got, "1005,1003");
    chain_walk(db, "AND mtime >= 1001000.5 AND mtime <= 1005000 ORDER BY id", got, sizeof got);
    assert_string_equal(got, "1003,1005");
    assert_true(chain_walk(db, "AND mtime >= 3000000 ORDER BY id", got, sizeof got) < 10);
    assert_string_equal(got, "");
    assert_true(chain_walk(db, "AND mtime >= 3000000 ORDER BY id DESC", got, sizeof got) < 10);
    assert_string_equal(got, "");
    assert_true(chain_walk(db, "AND mtime <= 0 ORDER BY id DESC", got, sizeof got) < 10);
    assert_string_equal(got, "");
    chain_walk(db, "AND mtime >= 1019000 AND mtime <= 1001000", got, sizeof got);
    assert_string_equal(got, "");
    chain_walk(db, "AND id < 0 ORDER BY id DESC", got, sizeof got); /* the walk ends below every id */
    assert_string_equal(got, "");
    /* Unbounded walks still read the whole conversation. */
    assert_true(chain_walk(db, "ORDER BY id DESC", got, sizeof got) >= 1000);
    assert_int_equal(query_int(db, "SELECT count(*) FROM conv_messages WHERE pid = 1 AND conv_type = 1 AND conv_a = 10"
                                   " AND conv_b = 12 AND mtime >= 1000000 AND mtime < 1100000"),
                     50);
    db_close(db);
}

/* Migration 19 on a database of version 18: the tables of stored files,
 * an upload's id unique, a file linked once per conversation, and the
 * messages left as they were. */
static void test_migration_19_files(void **state)
{
    fixture *f = *state;
    close_store(f, open_store(f, 0));
    db_conn *db = open_raw(f);
    assert_int_equal(db_exec(db, BEFORE_MIGRATION_19
                             "INSERT INTO projects VALUES (1, 's', 0);"
                             "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                             " msg, mtime) VALUES (1, 1, 10, 11, 1, 10, 1, 30, x'00', 0);"
                             "PRAGMA user_version = 18;"),
                     DB_OK);
    db_close(db);

    db = migrate_from(f, 18);
    assert_int_equal(query_int(db, "SELECT count(*) FROM messages"), 1);
    assert_int_equal(db_exec(db, "INSERT INTO files(id, pid, sha256, size, content_type, name, ext, created)"
                                 " VALUES ('f1', 1, 'abc', 3, 'image/png', 'a.png', 'png', 100),"
                                 " ('f2', 1, 'abc', 3, 'application/octet-stream', NULL, NULL, 101);"
                                 "INSERT INTO file_messages VALUES ('f1', 1, 1, 10, 11, 10, 7), ('f1', 1, 1, 10, 12, 10, 7)"),
                     DB_OK);
    assert_int_equal(query_int(db, "SELECT count(*) FROM files WHERE sha256 = 'abc'"), 2);
    assert_int_equal(db_exec(db, "INSERT INTO files(id, pid, sha256, size, content_type, created)"
                                 " VALUES ('f1', 2, 'def', 1, 'x', 0)"),
                     DB_CONSTRAINT);
    assert_int_equal(db_exec(db, "INSERT INTO file_messages VALUES ('f1', 1, 1, 10, 11, 10, 8)"), DB_CONSTRAINT);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN"
                                   " ('files_sha256', 'files_created')"),
                     2);
    db_close(db);
}

/* Migration 20 on a database of version 19: user_langs, one language per
 * user of a project. */
static void test_migration_20_user_langs(void **state)
{
    fixture *f = *state;
    close_store(f, open_store(f, 0));
    db_conn *db = open_raw(f);
    assert_int_equal(db_exec(db, BEFORE_MIGRATION_20 "PRAGMA user_version = 19;"), DB_OK);
    db_close(db);

    db = migrate_from(f, 19);
    assert_int_equal(db_exec(db, "INSERT INTO user_langs(pid, uid, lang) VALUES (1, 10, 'en'), (1, 11, 'zh-CHS'),"
                                 " (2, 10, 'pt-BR')"),
                     DB_OK);
    assert_int_equal(db_exec(db, "INSERT INTO user_langs(pid, uid, lang) VALUES (1, 10, 'fr')"), DB_CONSTRAINT);
    assert_int_equal(query_int(db, "SELECT count(*) FROM user_langs"), 3);
    db_close(db);
}

/* db_rollbacks counts the transactions rolled back, by ROLLBACK or by an
 * error that ended one, and not a rollback to a savepoint. */
static void test_rollbacks_counted(void **state)
{
    fixture *f = *state;
    close_store(f, open_store(f, 0));
    db_conn *db = open_raw(f);
    assert_int_equal(db_rollbacks(db), 0);
    assert_int_equal(db_exec(db, "BEGIN; INSERT INTO projects VALUES (1, 's', 0); ROLLBACK"), DB_OK);
    assert_int_equal(db_rollbacks(db), 1);
    assert_int_equal(db_exec(db, "BEGIN; SAVEPOINT op; INSERT INTO projects VALUES (1, 's', 0); ROLLBACK TO op;"
                                 " RELEASE op; COMMIT"),
                     DB_OK);
    assert_int_equal(db_rollbacks(db), 1);
    assert_int_equal(db_exec(db, "BEGIN; INSERT INTO projects VALUES (2, 's', 0)"), DB_OK);
    assert_int_equal(db_exec(db, "INSERT OR ROLLBACK INTO projects VALUES (2, 't', 0)"), DB_CONSTRAINT);
    assert_false(db_in_transaction(db));
    assert_int_equal(db_rollbacks(db), 2);
    assert_int_equal(query_int(db, "SELECT count(*) FROM projects"), 0);
    db_close(db);
}

static void test_newer_version_refused(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->data, 0700), 0);
    db_conn *db = open_raw(f);
    assert_int_equal(db_exec(db, "CREATE TABLE future (x); PRAGMA user_version = 99"),
                     DB_OK);
    db_close(db);

    char err[256] = "";
    store *s = store_open(&f->loop, f->data, 0, true, err, sizeof err);
    assert_null(s);
    assert_non_null(strstr(err, "99"));
    assert_non_null(strstr(err, "newer"));
    char known[16];
    snprintf(known, sizeof known, "(%d)", SCHEMA_VERSION);
    assert_non_null(strstr(err, known));

    /* The database was left as it was. */
    db = open_raw(f);
    assert_int_equal(query_int(db, "PRAGMA user_version"), 99);
    assert_int_equal(query_int(db, "SELECT journal_mode = 'delete' FROM pragma_journal_mode"), 1);
    db_close(db);
}

static void test_ensure_and_load_projects(void **state)
{
    fixture *f = *state;
    store *s = open_store(f, 0);
    store_project p[8];
    size_t n = 99;
    assert_int_equal(store_load_projects(s, p, 8, &n), 0);
    assert_int_equal(n, 0);

    assert_int_equal(store_ensure_project(s, 30, "thirty"), 0);
    assert_int_equal(store_ensure_project(s, 10, "ten"), 0);
    assert_int_equal(store_ensure_project(s, 20, "twenty"), 0);
    /* An existing project keeps its secret. */
    assert_int_equal(store_ensure_project(s, 10, "other"), 0);

    assert_int_equal(store_load_projects(s, p, 8, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(p[0].pid, 10);
    assert_string_equal(p[0].secret, "ten");
    assert_int_equal(p[1].pid, 20);
    assert_string_equal(p[1].secret, "twenty");
    assert_int_equal(p[2].pid, 30);
    assert_string_equal(p[2].secret, "thirty");
    assert_true(p[0].created_at > 1600000000);

    /* Too small an array is an error, never an overrun. */
    assert_int_equal(store_load_projects(s, p, 2, &n), -1);
    assert_int_equal(n, 2);

    /* A secret that could not be loaded back is refused. */
    char longsecret[200];
    memset(longsecret, 'k', sizeof longsecret - 1);
    longsecret[sizeof longsecret - 1] = '\0';
    assert_int_equal(store_ensure_project(s, 40, longsecret), -1);
    assert_int_equal(store_ensure_project(s, 40, NULL), -1);
    close_store(f, s);
}

#define NWRITES 1000
#define BATCH 64

typedef struct burst {
    store *s;
    gate g;
    twrite w[NWRITES];
    int next_done;
} burst;

/* Submits from a loop callback, as the server does. */
static void on_burst_timer(uv_timer_t *t)
{
    burst *b = t->data;
    gate_hold(b->s, &b->g);
    for (int i = 0; i < NWRITES; i++) {
        b->w[i] = (twrite){.pid = 1000 + i, .index = i, .next_done = &b->next_done, .status = -1};
        assert_int_equal(store_submit(b->s, apply_insert, done_record, &b->w[i]), 0);
    }
    assert_int_equal(store_pending(b->s), NWRITES + 1);
    uv_sem_post(&b->g.release);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_group_commit_in_order(void **state)
{
    fixture *f = *state;
    burst *b = calloc(1, sizeof *b);
    assert_non_null(b);
    gate_init(&b->g);
    b->s = open_store(f, BATCH);

    uv_timer_t t;
    assert_int_equal(uv_timer_init(&f->loop, &t), 0);
    t.data = b;
    assert_int_equal(uv_timer_start(&t, on_burst_timer, 0, 0), 0);
    /* Returns once the timer is closed and every write is reported. */
    uv_run(&f->loop, UV_RUN_DEFAULT);

    assert_true(b->g.done);
    assert_int_equal(b->next_done, NWRITES);
    for (int i = 0; i < NWRITES; i++) {
        assert_true(b->w[i].done);
        assert_int_equal(b->w[i].status, DB_OK);
    }
    assert_int_equal(store_pending(b->s), 0);
    /* The gate alone, then the 1000 writes in batches of at most 64. */
    assert_int_equal(store_commit_count(b->s), 1 + (NWRITES + BATCH - 1) / BATCH);
    assert_true(store_commit_count(b->s) < NWRITES);
    close_store(f, b->s);
    assert_int_equal(count_projects(f), NWRITES);
    gate_destroy(&b->g);
    free(b);
}

/* Threads of this process whose scheduling policy (field 41 of
 * /proc/self/task/TID/stat) is p; *others counts the rest. */
static int threads_with_policy(int p, int *others)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    *others = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], line[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *fp = fopen(path, "r");
        if (!fp)
            continue; /* a thread that just ended */
        size_t len = fread(line, 1, sizeof line - 1, fp);
        fclose(fp);
        line[len] = '\0';
        char *rest = strrchr(line, ')'); /* after the name, which may hold spaces */
        assert_non_null(rest);
        int field = 2, policy = -1;
        for (char *tok = strtok(rest + 1, " "); tok; tok = strtok(NULL, " "))
            if (++field == 41) {
                policy = atoi(tok);
                break;
            }
        if (policy == p)
            n++;
        else
            (*others)++;
    }
    closedir(d);
    return n;
}

/* The writer, the syncer and the checkpointer do not preempt the loop:
 * they run as SCHED_BATCH (3), the loop keeps its policy. */
static void test_threads_beside_the_loop_run_as_batch(void **state)
{
    fixture *f = *state;
    store *s = open_store(f, 0);
    int others = 0, batch = 0;
    for (int i = 0; i < 200 && (batch = threads_with_policy(3, &others)) < 3; i++)
        usleep(10 * 1000); /* each thread sets its policy as it starts */
    assert_int_equal(batch, 3);
    assert_true(others >= 1); /* this (the loop's) thread among them */
    close_store(f, s);
}

/* The writes of one loop turn reach the writer together, after the turn:
 * a write submitted early in a long turn does not start a batch of its own. */
typedef struct turn {
    store *s;
    twrite w[2];
    int next_done;
    size_t pending_in_turn;
} turn;

static void on_turn_timer(uv_timer_t *t)
{
    turn *tn = t->data;
    for (int i = 0; i < 2; i++) {
        tn->w[i] = (twrite){.pid = 500 + i, .index = i, .next_done = &tn->next_done, .status = -1};
        assert_int_equal(store_submit(tn->s, apply_insert, done_record, &tn->w[i]), 0);
        if (i == 0)
            usleep(50 * 1000); /* the rest of a long turn */
    }
    tn->pending_in_turn = store_pending(tn->s);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_turn_writes_handed_over_together(void **state)
{
    fixture *f = *state;
    turn tn = {.s = open_store(f, 0)};
    uv_timer_t t;
    assert_int_equal(uv_timer_init(&f->loop, &t), 0);
    t.data = &tn;
    assert_int_equal(uv_timer_start(&t, on_turn_timer, 0, 0), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(tn.pending_in_turn, 2);
    assert_int_equal(tn.next_done, 2);
    assert_int_equal(tn.w[0].status, DB_OK);
    assert_int_equal(tn.w[1].status, DB_OK);
    assert_int_equal(store_commit_count(tn.s), 1);
    close_store(f, tn.s);
}

/* Runs the loop until every write of w[0..n) is done. */
static void run_until_done(fixture *f, twrite *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        while (!w[i].done)
            uv_run(&f->loop, UV_RUN_ONCE);
}

/* Patient writes (store_submit_patient): while only they are queued, the
 * writer starts a batch at most once per patient interval, so that the
 * writes of several loop turns share one commit; an urgent write ends the
 * wait at once. */
static void test_patient_writes_share_a_commit(void **state)
{
    fixture *f = *state;
    store *s = open_store(f, 0);
    const uint64_t interval_ms = 1000;
    store_set_patient_interval(s, interval_ms * 1000);
    twrite w[5];
    for (int i = 0; i < 5; i++)
        w[i] = (twrite){.pid = 701 + i};

    /* Nothing taken before: the first is committed at once. */
    uint64_t t0 = uv_hrtime();
    assert_int_equal(store_submit_patient(s, apply_insert, NULL, done_record, &w[0]), 0);
    store_hand_over(s);
    run_until_done(f, w, 1);
    uint64_t commits = store_commit_count(s);

    /* Two turns 100 ms apart: one commit, a full interval after the first. */
    assert_int_equal(store_submit_patient(s, apply_insert, NULL, done_record, &w[1]), 0);
    store_hand_over(s);
    uv_sleep(100);
    assert_int_equal(store_submit_patient(s, apply_insert, NULL, done_record, &w[2]), 0);
    store_hand_over(s);
    run_until_done(f, w + 1, 2);
    assert_true(uv_hrtime() - t0 >= (interval_ms - 50) * 1000000);
    assert_int_equal(store_commit_count(s), commits + 1);

    /* An urgent write 50 ms after a patient one: both committed together,
     * long before the interval is out. */
    uint64_t t1 = uv_hrtime();
    assert_int_equal(store_submit_patient(s, apply_insert, NULL, done_record, &w[3]), 0);
    store_hand_over(s);
    uv_sleep(50);
    assert_int_equal(store_submit(s, apply_insert, done_record, &w[4]), 0);
    store_hand_over(s);
    run_until_done(f, w + 3, 2);
    assert_true(uv_hrtime() - t1 < (interval_ms - 100) * 1000000);
    assert_int_equal(store_commit_count(s), commits + 2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(w[i].status, DB_OK);
    close_store(f, s);
}

/* With fsync on, a write is reported only after the syncer's fdatasync of
 * the WAL; with fsync off nothing waits for one. */
typedef struct synced_write {
    twrite w;
    store *s;
    uint64_t syncs_seen;
} synced_write;

static void done_note_syncs(void *arg, int status)
{
    synced_write *sw = arg;
    done_record(&sw->w, status);
    sw->syncs_seen = store_sync_count(sw->s);
}

static void test_reported_after_wal_sync(void **state)
{
    fixture *f = *state;
    for (int fsync = 1; fsync >= 0; fsync--) {
        char err[256] = "";
        synced_write sw = {.w = {.pid = 900 + fsync}};
        sw.s = store_open(&f->loop, f->data, 0, fsync, err, sizeof err);
        assert_non_null(sw.s);
        assert_int_equal(store_sync_count(sw.s), 0);
        assert_int_equal(store_submit(sw.s, apply_insert, done_note_syncs, &sw), 0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_true(sw.w.done);
        assert_int_equal(sw.w.status, DB_OK);
        if (fsync)
            assert_true(sw.syncs_seen >= 1);
        else
            assert_int_equal(sw.syncs_seen, 0);
        close_store(f, sw.s);
    }
    assert_int_equal(count_projects(f), 2);
}

/* Writes submitted with an apply_many: a run of consecutive ones is applied
 * in one call; a run that fails is applied again write by write. */
static int many_calls;

static int apply_insert_many(db_conn *db, void *const *args, size_t n)
{
    many_calls++;
    for (size_t i = 0; i < n; i++) {
        int rc = apply_insert(db, args[i]);
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

static void test_apply_many_runs(void **state)
{
    fixture *f = *state;
    store *s = open_store(f, 0);
    gate g;
    gate_init(&g);
    int next = 0;
    twrite w[7];
    for (int i = 0; i < 7; i++)
        w[i] = (twrite){.pid = 10 + i, .index = i, .next_done = &next};
    many_calls = 0;
    gate_hold(s, &g);
    /* runs: 0-3, then 4 alone (plain), then 5-6 */
    for (int i = 0; i < 7; i++)
        assert_int_equal(store_submit_many(s, apply_insert, i == 4 ? NULL : apply_insert_many, done_record, &w[i]), 0);
    uv_sem_post(&g.release);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(next, 7);
    for (int i = 0; i < 7; i++)
        assert_int_equal(w[i].status, DB_OK);
    assert_int_equal(many_calls, 2);

    /* A run with a duplicate fails as a whole and is replayed write by
     * write: only the duplicate fails. */
    twrite d[5];
    next = 0;
    for (int i = 0; i < 5; i++)
        d[i] = (twrite){.pid = 30 + i, .index = i, .next_done = &next};
    d[2].pid = 10; /* stored above */
    many_calls = 0;
    gate_hold(s, &g);
    for (int i = 0; i < 5; i++)
        assert_int_equal(store_submit_many(s, apply_insert, apply_insert_many, done_record, &d[i]), 0);
    uv_sem_post(&g.release);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(next, 5);
    assert_int_equal(many_calls, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(d[i].status, i == 2 ? DB_CONSTRAINT : DB_OK);
    close_store(f, s);
    assert_int_equal(count_projects(f), 7 + 4);
    gate_destroy(&g);
}

static void test_failing_write_isolated(void **state)
{
    fixture *f = *state;
    store *s = open_store(f, 0);
    gate g;
    gate_init(&g);
    int next = 0;
    /* 0 ok, 1 bad SQL after an insert, 2 ok, 3 duplicate of 0, 4 ok */
    twrite w[5] = {
        {.pid = 1, .index = 0},
        {.pid = 2, .index = 1, .bad = 1},
        {.pid = 3, .index = 2},
        {.pid = 1, .index = 3},
        {.pid = 5, .index = 4},
    };
    gate_hold(s, &g);
    for (int i = 0; i < 5; i++) {
        w[i].next_done = &next;
        assert_int_equal(store_submit(s, apply_insert, done_record, &w[i]), 0);
    }
    uv_sem_post(&g.release);
    uv_run(&f->loop, UV_RUN_DEFAULT);

    assert_int_equal(next, 5);
    assert_int_equal(w[0].status, DB_OK);
    assert_int_equal(w[1].status, DB_ERROR);
    assert_int_equal(w[2].status, DB_OK);
    assert_int_equal(w[3].status, DB_CONSTRAINT);
    assert_int_equal(w[4].status, DB_OK);
    /* The gate's transaction, then the five writes in one. */
    assert_int_equal(store_commit_count(s), 2);
    close_store(f, s);

    s = open_store(f, 0);
    store_project p[8];
    size_t n = 0;
    assert_int_equal(store_load_projects(s, p, 8, &n), 0);
    /* The failed write's own insert (pid 2) was rolled back. */
    assert_int_equal(n, 3);
    assert_int_equal(p[0].pid, 1);
    assert_int_equal(p[1].pid, 3);
    assert_int_equal(p[2].pid, 5);
    close_store(f, s);
    gate_destroy(&g);
}

#define NQUEUED 200

typedef struct closing {
    store *s;
    twrite w[NQUEUED];
    int next_done;
    int resubmit_refused;
} closing;

static closing *the_closing;

static void done_while_closing(void *arg, int status)
{
    done_record(arg, status);
    /* The store no longer takes writes once closing. */
    if (store_submit(the_closing->s, apply_insert, NULL, arg) == -1)
        the_closing->resubmit_refused++;
}

static void release_later(void *arg)
{
    uv_sleep(50);
    uv_sem_post(&((gate *)arg)->release);
}

static void test_close_drains_queue(void **state)
{
    fixture *f = *state;
    closing *c = calloc(1, sizeof *c);
    assert_non_null(c);
    the_closing = c;
    c->s = open_store(f, 16);
    gate g;
    gate_init(&g);
    gate_hold(c->s, &g);
    for (int i = 0; i < NQUEUED; i++) {
        c->w[i] = (twrite){.pid = 500 + i, .index = i, .next_done = &c->next_done, .status = -1};
        assert_int_equal(store_submit(c->s, apply_insert, done_while_closing, &c->w[i]), 0);
    }
    assert_int_equal(store_pending(c->s), NQUEUED + 1);

    /* The writer is still held when store_close starts, so every write is
     * queued at that moment. */
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, release_later, &g), 0);
    store_close(c->s);
    uv_thread_join(&t);

    /* Every callback ran before store_close returned. */
    assert_true(g.done);
    assert_int_equal(c->next_done, NQUEUED);
    for (int i = 0; i < NQUEUED; i++)
        assert_int_equal(c->w[i].status, DB_OK);
    assert_int_equal(c->resubmit_refused, NQUEUED);
    uv_run(&f->loop, UV_RUN_NOWAIT);

    assert_int_equal(count_projects(f), NQUEUED);
    gate_destroy(&g);
    free(c);
}

/* A done callback may submit the next write, and the last one may close
 * the store from inside the completion dispatch. */
typedef struct chain {
    store *s;
    twrite w[5];
    int n;
    int closed;
} chain;

static int apply_chain(db_conn *db, void *arg)
{
    chain *c = arg;
    return apply_insert(db, &c->w[c->n]);
}

static void done_chain(void *arg, int status);

static void submit_chain(chain *c)
{
    c->w[c->n].pid = 900 + c->n;
    assert_int_equal(store_submit(c->s, apply_chain, done_chain, c), 0);
}

static void done_chain(void *arg, int status)
{
    chain *c = arg;
    assert_int_equal(status, DB_OK);
    c->n++;
    if (c->n < 5)
        submit_chain(c);
    else {
        store_close(c->s);
        c->closed = 1;
    }
}

static void test_done_may_submit_and_close(void **state)
{
    fixture *f = *state;
    chain c = {0};
    c.s = open_store(f, 0);
    submit_chain(&c);
    /* Runs until the last callback closed the store and its handle. */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.n, 5);
    assert_true(c.closed);
    assert_int_equal(count_projects(f), 5);
}

/* Continuous writes for a few seconds: the WAL is checkpointed by the
 * checkpointer thread, started again by the writer when it reaches 8000
 * frames (store.c's STORE_CKPT_RESTART), and so stays bounded; the
 * writer's COMMIT no longer checkpoints every 1000 frames. */
#define WAL_ROWS 20000
#define WAL_INFLIGHT 512
#define WAL_RESTART 8000                /* STORE_CKPT_RESTART */
#define WAL_HARD (4 * WAL_RESTART)      /* STORE_CKPT_HARD */
#define WAL_FRAME_BYTES (4096 + 24)

typedef struct wal_load {
    store *s;
    char wal_path[192];
    uint64_t deadline_ns;
    uint64_t frames_goal;
    int inflight;
    int failed;
    uint64_t done;
    off_t max_wal;
} wal_load;

static int apply_fill(db_conn *db, void *arg)
{
    (void)arg;
    return db_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"
                       "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
                       "INSERT INTO t SELECT i, randomblob(1000) FROM n");
}

/* One row rewritten at random: about one WAL frame per write. */
static int apply_update(db_conn *db, void *arg)
{
    (void)arg;
    db_stmt_t *st;
    int rc = db_stmt(db, "UPDATE t SET v = randomblob(1000) WHERE id = 1 + abs(random()) % 20000", &st);
    return rc == DB_OK ? db_step_release(st) : rc;
}

static void done_update(void *arg, int status);

static void submit_update(wal_load *l)
{
    assert_int_equal(store_submit(l->s, apply_update, done_update, l), 0);
    l->inflight++;
}

static void done_update(void *arg, int status)
{
    wal_load *l = arg;
    l->inflight--;
    l->done++;
    if (status != DB_OK)
        l->failed++;
    if (l->done % 64 == 0) {
        struct stat st;
        if (stat(l->wal_path, &st) == 0 && st.st_size > l->max_wal)
            l->max_wal = st.st_size;
    }
    store_wal_stats w;
    store_wal_stats_get(l->s, &w);
    if (uv_hrtime() < l->deadline_ns && w.frames_checkpointed < l->frames_goal)
        submit_update(l);
}

static void test_wal_checkpoints_off_commit(void **state)
{
    fixture *f = *state;
    wal_load l = {.frames_goal = 6 * WAL_RESTART};
    l.s = open_store(f, 0);
    snprintf(l.wal_path, sizeof l.wal_path, "%s/rtmd.sqlite3-wal", f->data);
    twrite fill = {0};
    assert_int_equal(store_submit(l.s, apply_fill, done_record, &fill), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(fill.status, DB_OK);
    struct stat before;
    assert_int_equal(stat(l.wal_path, &before), 0);
    uint64_t syncs = store_sync_count(l.s);

    l.deadline_ns = uv_hrtime() + 8000000000ull;
    for (int i = 0; i < WAL_INFLIGHT; i++)
        submit_update(&l);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(l.inflight, 0);
    assert_int_equal(l.failed, 0);

    store_wal_stats w;
    store_wal_stats_get(l.s, &w);
    print_message("wal: %llu writes, %llu frames copied, %llu by the checkpointer, %llu by the writer, "
                  "%llu restarts, largest WAL %lld bytes\n",
                  (unsigned long long)l.done, (unsigned long long)w.frames_checkpointed,
                  (unsigned long long)w.checkpoints_thread, (unsigned long long)w.checkpoints_writer,
                  (unsigned long long)w.restarts, (long long)l.max_wal);
    /* Enough written that an unbounded WAL would pass the restart bound
     * twice over. */
    assert_true(w.frames_checkpointed >= 2 * WAL_RESTART);
    assert_true(w.restarts >= 1);
    assert_true(l.max_wal < (off_t)WAL_HARD * WAL_FRAME_BYTES);
    assert_true(w.wal_frames < WAL_HARD);
    /* The copying is the checkpointer's; the writer checkpoints about once
     * a restart, far from once every 1000 frames. */
    assert_true(w.checkpoints_thread >= 2);
    assert_true(w.checkpoints_writer * 3 <= w.frames_checkpointed / 1000);
    /* Restarted in place: the syncer's descriptor names the same file, and
     * it went on syncing. */
    struct stat after;
    assert_int_equal(stat(l.wal_path, &after), 0);
    assert_true(after.st_ino == before.st_ino && after.st_dev == before.st_dev);
    assert_true(store_sync_count(l.s) > syncs);
    close_store(f, l.s);
    /* Both kinds are timed in the stage histograms (/metrics). */
    static char text[256 * 1024];
    prom_out o = {text, sizeof text, 0};
    lat_prom(&o);
    text[o.len < sizeof text ? o.len : sizeof text - 1] = '\0';
    assert_non_null(strstr(text, "rtmd_stage_seconds_sum{stage=\"checkpoint\"}"));
    assert_non_null(strstr(text, "rtmd_stage_seconds_sum{stage=\"writer_checkpoint\"}"));
}

/* kill -9 while the WAL is checkpointed and started again: every write
 * reported with DB_OK (the syncer's fdatasync, then the checkpoints'
 * syncs of the WAL and the database) is in the database afterwards. A
 * child process writes; each acknowledged id goes to the parent through a
 * pipe with the WAL restarts so far, and the parent kills the child once
 * the WAL was started again twice. */
typedef struct ack_rec {
    int64_t id;
    uint64_t restarts;
} ack_rec;

typedef struct kill_load {
    store *s;
    int fd;
    int64_t next_id;
} kill_load;

typedef struct kill_write {
    kill_load *l;
    int64_t id;
} kill_write;

static int apply_fill_acked(db_conn *db, void *arg)
{
    int rc = apply_fill(db, arg);
    return rc == DB_OK ? db_exec(db, "CREATE TABLE acked(id INTEGER PRIMARY KEY)") : rc;
}

static int apply_acked(db_conn *db, void *arg)
{
    kill_write *w = arg;
    db_stmt_t *st;
    int rc = db_stmt(db, "INSERT INTO acked(id) VALUES(?1)", &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, w->id);
    rc = db_step_release(st);
    return rc == DB_OK ? apply_update(db, NULL) : rc;
}

static void submit_acked(kill_load *l);

static void done_acked(void *arg, int status)
{
    kill_write *w = arg;
    kill_load *l = w->l;
    if (status == DB_OK) {
        store_wal_stats ws;
        store_wal_stats_get(l->s, &ws);
        ack_rec r = {w->id, ws.restarts};
        if (write(l->fd, &r, sizeof r) != (ssize_t)sizeof r)
            _exit(3);
    }
    free(w);
    submit_acked(l);
}

static void submit_acked(kill_load *l)
{
    kill_write *w = malloc(sizeof *w);
    if (!w)
        _exit(4);
    *w = (kill_write){l, ++l->next_id};
    if (store_submit(l->s, apply_acked, done_acked, w) != 0)
        _exit(5);
}

static void kill9_child(const char *data, int fd)
{
    uv_loop_t loop;
    char err[256];
    if (uv_loop_init(&loop) != 0)
        _exit(1);
    kill_load l = {.fd = fd};
    l.s = store_open(&loop, data, 0, true, err, sizeof err);
    if (!l.s)
        _exit(2);
    twrite fill = {0};
    store_submit(l.s, apply_fill_acked, done_record, &fill);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (fill.status != DB_OK)
        _exit(6);
    for (int i = 0; i < WAL_INFLIGHT; i++)
        submit_acked(&l);
    uv_run(&loop, UV_RUN_DEFAULT); /* until killed */
    _exit(7);
}

static void test_wal_restart_survives_kill9(void **state)
{
    fixture *f = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        kill9_child(f->data, p[1]);
    }
    close(p[1]);
    size_t cap = 1 << 20, n = 0;
    int64_t *acked = malloc(cap * sizeof *acked);
    assert_non_null(acked);
    uint64_t deadline = uv_hrtime() + 20000000000ull;
    int killed = 0;
    ack_rec r;
    ssize_t got;
    while ((got = read(p[0], &r, sizeof r)) == (ssize_t)sizeof r) {
        if (n < cap)
            acked[n++] = r.id;
        if (!killed && (r.restarts >= 2 || uv_hrtime() > deadline)) {
            assert_int_equal(kill(pid, SIGKILL), 0);
            killed = 1;
            assert_true(r.restarts >= 2);
        }
    }
    close(p[0]);
    int wst;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
    assert_true(n > 0 && n < cap);

    db_conn *db = open_raw(f);
    db_stmt_t *st = NULL;
    assert_int_equal(db_prepare(db, "SELECT count(*) FROM acked WHERE id = ?1", &st), DB_OK);
    for (size_t i = 0; i < n; i++) {
        db_bind_int64(st, 1, acked[i]);
        assert_int_equal(db_step(st), DB_ROW);
        if (db_column_int64(st, 0) != 1)
            fail_msg("acknowledged write %lld lost", (long long)acked[i]);
        db_reset(st);
    }
    db_finalize(st);
    print_message("kill -9: %zu acknowledged writes all kept\n", n);
    db_close(db);
    free(acked);
}

int main(void)
{
    pg_base = getenv("RTMD_TEST_PG");
    if (pg_base) {
        const struct CMUnitTest on_postgres[] = {
            cmocka_unit_test_setup_teardown(test_pg_reopen_keeps_data, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ensure_and_load_projects, setup, teardown),
            cmocka_unit_test_setup_teardown(test_group_commit_in_order, setup, teardown),
            cmocka_unit_test_setup_teardown(test_failing_write_isolated, setup, teardown),
            cmocka_unit_test_setup_teardown(test_apply_many_runs, setup, teardown),
            cmocka_unit_test_setup_teardown(test_close_drains_queue, setup, teardown),
            cmocka_unit_test_setup_teardown(test_done_may_submit_and_close, setup, teardown),
        };
        return cmocka_run_group_tests(on_postgres, NULL, NULL);
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations_after_5_on_version_5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_16_counts_rows_above_the_mark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_17_dedup_leads_with_mid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_18_conv_index_in_bulk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_19_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_21_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_time_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_20_user_langs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollbacks_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_and_load_projects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_turn_writes_handed_over_together, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patient_writes_share_a_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_beside_the_loop_run_as_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reported_after_wal_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_checkpoints_off_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_restart_survives_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_write_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_many_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_may_submit_and_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
