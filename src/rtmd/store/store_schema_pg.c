/* The rtmd schema on PostgreSQL (see store_schema.h): store_schema_migrate
 * hands a PostgreSQL connection here.
 *
 * The version lives in the one-row table rtmd_schema (PostgreSQL has no
 * PRAGMA user_version). An empty database is created by pg_base, the
 * tables, indexes, counters and triggers that SQLite has after migration
 * PG_BASE (14), in one transaction with the version row. Each later
 * migration N carries two texts: its SQLite text in store_schema.c's
 * migrations[] and its PostgreSQL text as `case N:` of pg_migration()
 * below. pg_base is never edited: an empty database gets pg_base and then
 * every later migration, all in the same transaction; an older database
 * gets the missing migrations, each in its own transaction with its
 * version bump. A migration without its PostgreSQL text refuses to run.
 *
 * Two nodes starting on one database at once are serialized by an
 * advisory lock taken inside the transaction; the version is read again
 * under it, so the second one finds the work done.
 *
 * Types: INTEGER -> BIGINT (SQLite's integers are 64-bit); every TEXT and
 * BLOB -> BYTEA, since values from peers may be invalid UTF-8 or hold
 * NULs, and bytea compares byte-wise as SQLite's BINARY collation does.
 * INTEGER PRIMARY KEY -> BIGINT PRIMARY KEY; WITHOUT ROWID -> a plain
 * table. An index that SQLite completes with the rowid (messages_conv:
 * rowid = id) names id explicitly. SQLite triggers become plpgsql trigger
 * functions (a trigger's WHEN may not hold a subquery: the condition moves
 * into the function).
 *
 * Shims, so that the modules' SQL runs unchanged on both engines (SQL
 * functions the planner inlines, unless an argument is a subquery):
 *   max(bigint, bigint), min(bigint, bigint)  SQLite's two-argument
 *       scalar forms (NULL when either is NULL, as in SQLite); beside
 *       the one-argument aggregates, which keep their meaning.
 *   DOMAIN blob AS bytea  so that length(CAST(x AS BLOB)), the bytes of
 *       a value in SQLite, is length(bytea), its bytes here; and
 *       CAST('' AS BLOB) is the empty blob on both. */
#include "store_schema.h"

#include <stdio.h>

/* The version pg_base creates (and writes in rtmd_schema). */
#define PG_BASE 14
#define PG_BASE_TEXT "14"

static const char pg_base[] =
    /* shims */
    "CREATE DOMAIN blob AS bytea;"
    "CREATE FUNCTION max(bigint, bigint) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE"
    "  AS 'SELECT CASE WHEN $1 IS NULL OR $2 IS NULL THEN NULL ELSE GREATEST($1, $2) END';"
    "CREATE FUNCTION min(bigint, bigint) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE"
    "  AS 'SELECT CASE WHEN $1 IS NULL OR $2 IS NULL THEN NULL ELSE LEAST($1, $2) END';"

    "CREATE TABLE projects ("
    "  pid BIGINT PRIMARY KEY,"
    "  secret BYTEA NOT NULL,"
    "  created_at BIGINT NOT NULL"
    ");"

    "CREATE TABLE users ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid BIGINT NOT NULL,"
    "  string_id BYTEA,"
    "  created_at BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, uid)"
    ");"
    "CREATE UNIQUE INDEX users_string_id ON users(pid, string_id);"

    "CREATE TABLE tokens ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid BIGINT NOT NULL,"
    "  token BYTEA NOT NULL,"
    "  expires_at BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, token)"
    ");"
    "CREATE INDEX tokens_uid ON tokens(pid, uid);"
    "CREATE INDEX tokens_expiry ON tokens(expires_at);"

    "CREATE TABLE messages ("
    "  id BIGINT PRIMARY KEY,"
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  conv_type BIGINT NOT NULL CHECK (conv_type BETWEEN 1 AND 4),"
    "  conv_a BIGINT NOT NULL,"
    "  conv_b BIGINT NOT NULL DEFAULT 0,"
    "  from_uid BIGINT NOT NULL,"
    "  mid BIGINT NOT NULL,"
    "  mtype BIGINT NOT NULL,"
    "  msg BYTEA NOT NULL,"
    "  is_binary BIGINT NOT NULL DEFAULT 0,"
    "  attrs BYTEA NOT NULL DEFAULT '',"
    "  mtime BIGINT NOT NULL,"
    "  deleted BIGINT NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX messages_conv ON messages(pid, conv_type, conv_a, conv_b, id);"
    "CREATE UNIQUE INDEX messages_dedup ON messages(pid, conv_type, conv_a, conv_b, from_uid, mid);"

    "CREATE TABLE group_members ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  gid BIGINT NOT NULL,"
    "  uid BIGINT NOT NULL,"
    "  joined_at BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, gid, uid)"
    ");"
    "CREATE INDEX group_members_uid ON group_members(pid, uid);"

    "CREATE TABLE bans ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  kind BIGINT NOT NULL CHECK (kind BETWEEN 1 AND 4),"
    "  target BIGINT NOT NULL,"
    "  uid BIGINT NOT NULL,"
    "  until BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, kind, target, uid)"
    ");"

    "CREATE TABLE conversation_marks ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid BIGINT NOT NULL,"
    "  conv_type BIGINT NOT NULL CHECK (conv_type BETWEEN 0 AND 2),"
    "  xid BIGINT NOT NULL,"
    "  read_id BIGINT NOT NULL DEFAULT 0,"
    "  removed_id BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (pid, uid, conv_type, xid)"
    ");"

    "CREATE TABLE p2p_peers ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid BIGINT NOT NULL,"
    "  peer BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, uid, peer)"
    ");"

    "CREATE TABLE counters ("
    "  name BYTEA PRIMARY KEY,"
    "  value BIGINT NOT NULL"
    ");"
    /* migrations 7 and 9 on an empty database */
    "INSERT INTO counters(name, value) VALUES ('message_id_floor', 0), ('storage_usage_upto', 0);"

    "CREATE TABLE signed_salts ("
    "  pid BIGINT NOT NULL,"
    "  salt BIGINT NOT NULL,"
    "  expires_at BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, salt)"
    ");"
    "CREATE INDEX signed_salts_expiry ON signed_salts(expires_at);"

    "CREATE TABLE storage_usage ("
    "  pid BIGINT PRIMARY KEY,"
    "  bytes BIGINT NOT NULL"
    ");"
    /* SQLite's storage_usage_delete (migration 9) */
    "CREATE FUNCTION storage_usage_delete() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF old.id <= (SELECT value FROM counters WHERE name = 'storage_usage_upto') THEN"
    "   UPDATE storage_usage SET bytes = bytes - octet_length(old.msg) - octet_length(old.attrs)"
    "    WHERE pid = old.pid;"
    "  END IF;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE TRIGGER storage_usage_delete AFTER DELETE ON messages"
    "  FOR EACH ROW EXECUTE FUNCTION storage_usage_delete();"
    /* SQLite's storage_usage_update (migration 13) */
    "CREATE FUNCTION storage_usage_update() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF old.id <= (SELECT value FROM counters WHERE name = 'storage_usage_upto') THEN"
    "   UPDATE storage_usage SET bytes = bytes - octet_length(old.msg) - octet_length(old.attrs)"
    "    + octet_length(new.msg) + octet_length(new.attrs) WHERE pid = old.pid;"
    "  END IF;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE TRIGGER storage_usage_update AFTER UPDATE OF msg, attrs ON messages"
    "  FOR EACH ROW EXECUTE FUNCTION storage_usage_update();"

    "CREATE TABLE friends ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid BIGINT NOT NULL,"
    "  other BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, uid, other)"
    ");"
    "CREATE TABLE blacklists ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid BIGINT NOT NULL,"
    "  other BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, uid, other)"
    ");"

    "CREATE TABLE infos ("
    "  pid BIGINT NOT NULL,"
    "  kind BIGINT NOT NULL CHECK (kind BETWEEN 1 AND 3),"
    "  xid BIGINT NOT NULL,"
    "  oinfo BYTEA NOT NULL DEFAULT '',"
    "  pinfo BYTEA NOT NULL DEFAULT '',"
    "  updated_at BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, kind, xid)"
    ");"

    "CREATE TABLE user_data ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid BIGINT NOT NULL,"
    "  key BYTEA NOT NULL,"
    "  val BYTEA NOT NULL,"
    "  val_binary BIGINT NOT NULL DEFAULT 0,"
    "  updated_at BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, uid, key)"
    ");"
    "CREATE TABLE user_devices ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid BIGINT NOT NULL,"
    "  devicetoken BYTEA NOT NULL,"
    "  apptype BYTEA NOT NULL,"
    "  added_at BIGINT NOT NULL,"
    "  PRIMARY KEY (pid, uid, devicetoken)"
    ");"
    "CREATE INDEX user_devices_token ON user_devices(pid, devicetoken);"
    "CREATE TABLE push_options ("
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  uid BIGINT NOT NULL,"
    "  kind BIGINT NOT NULL CHECK (kind IN (0, 1)),"
    "  xid BIGINT NOT NULL,"
    "  mtypes BYTEA NOT NULL,"
    "  PRIMARY KEY (pid, uid, kind, xid)"
    ");"

    "CREATE TABLE rtcat_sessions ("
    "  uuid BYTEA PRIMARY KEY,"
    "  pid BIGINT NOT NULL REFERENCES projects(pid) ON DELETE CASCADE,"
    "  label BYTEA,"
    "  data BYTEA,"
    "  type BIGINT NOT NULL CHECK (type IN (0, 1)),"
    "  permanent BIGINT NOT NULL CHECK (permanent IN (0, 1)),"
    "  live_days BIGINT NOT NULL,"
    "  created_us BIGINT NOT NULL,"
    "  expire_us BIGINT"
    ");"
    "CREATE INDEX rtcat_sessions_expiry ON rtcat_sessions(expire_us);"
    "CREATE TABLE rtcat_tokens ("
    "  uuid BYTEA PRIMARY KEY,"
    "  session_uuid BYTEA NOT NULL REFERENCES rtcat_sessions(uuid) ON DELETE CASCADE,"
    "  pid BIGINT NOT NULL,"
    "  label BYTEA,"
    "  data BYTEA,"
    "  type BIGINT NOT NULL CHECK (type IN (0, 1)),"
    "  permanent BIGINT NOT NULL CHECK (permanent IN (0, 1)),"
    "  live_days BIGINT NOT NULL,"
    "  created_us BIGINT NOT NULL,"
    "  expire_us BIGINT"
    ");"
    "CREATE INDEX rtcat_tokens_session ON rtcat_tokens(session_uuid);"
    "CREATE INDEX rtcat_tokens_expiry ON rtcat_tokens(expire_us);"

    /* the version, one row */
    "CREATE TABLE rtmd_schema ("
    "  one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),"
    "  version BIGINT NOT NULL"
    ");"
    "INSERT INTO rtmd_schema(version) VALUES (" PG_BASE_TEXT ");";

/* The PostgreSQL text of migration `to` (> PG_BASE), or NULL when this
 * build has none. */
static const char *pg_migration(int to)
{
    switch (to) {
    case 15:
        return "CREATE INDEX rtcat_sessions_pid ON rtcat_sessions(pid);"
               "CREATE INDEX rtcat_tokens_pid ON rtcat_tokens(pid);";
    case 16:
        /* As SQLite's, and deadlock-free across nodes: every transaction
         * that changes storage_usage or deletes or rewrites messages locks
         * the message_id row first (a batch that sends messages takes it
         * in take_ids; a delete or an edit of messages in the statement
         * trigger storage_usage_lock, before its first row), so no two
         * wait on each other over storage_usage rows or over a messages
         * row that one deletes and the other inserts again. A delete
         * counts once per statement (retention and clean-ups delete many
         * rows): a statement trigger over the deleted rows. The edit
         * trigger stays per row (PostgreSQL allows no transition table
         * with a column list; editmsg edits one row). */
        return "SELECT value FROM counters WHERE name = 'message_id' FOR UPDATE;"
               "INSERT INTO storage_usage(pid, bytes)"
               "  SELECT pid, SUM(length(msg) + length(attrs)) FROM messages"
               "  WHERE id > (SELECT value FROM counters WHERE name = 'storage_usage_upto') GROUP BY pid"
               "  ON CONFLICT(pid) DO UPDATE SET bytes = storage_usage.bytes + excluded.bytes;"
               "CREATE OR REPLACE FUNCTION storage_usage_lock() RETURNS trigger LANGUAGE plpgsql AS $$"
               " BEGIN"
               "  PERFORM 1 FROM counters WHERE name = 'message_id' FOR UPDATE;"
               "  RETURN NULL;"
               " END $$;"
               "DROP TRIGGER IF EXISTS storage_usage_lock ON messages;"
               "CREATE TRIGGER storage_usage_lock BEFORE DELETE OR UPDATE OF msg, attrs ON messages"
               "  FOR EACH STATEMENT EXECUTE FUNCTION storage_usage_lock();"
               "DROP TRIGGER storage_usage_delete ON messages;"
               "CREATE OR REPLACE FUNCTION storage_usage_delete() RETURNS trigger LANGUAGE plpgsql AS $$"
               " BEGIN"
               "  UPDATE storage_usage SET bytes = storage_usage.bytes - d.bytes"
               "   FROM (SELECT pid, SUM(octet_length(msg) + octet_length(attrs)) AS bytes FROM old_rows"
               "   GROUP BY pid) d WHERE storage_usage.pid = d.pid;"
               "  RETURN NULL;"
               " END $$;"
               "CREATE TRIGGER storage_usage_delete AFTER DELETE ON messages"
               "  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION storage_usage_delete();"
               "CREATE OR REPLACE FUNCTION storage_usage_update() RETURNS trigger LANGUAGE plpgsql AS $$"
               " BEGIN"
               "  UPDATE storage_usage SET bytes = bytes - octet_length(old.msg) - octet_length(old.attrs)"
               "   + octet_length(new.msg) + octet_length(new.attrs) WHERE pid = old.pid;"
               "  RETURN NULL;"
               " END $$;"
               "DELETE FROM counters WHERE name = 'storage_usage_upto';";
    case 17:
        /* As SQLite's: B-tree inserts at the right edge of the index. */
        return "DROP INDEX messages_dedup;"
               "CREATE UNIQUE INDEX messages_dedup ON messages(mid, from_uid, pid, conv_type, conv_a, conv_b);";
    case 18:
        /* SQLite's conv_index is written in bulk by one writer in id
         * order; nodes here commit ids out of order, so the B-tree index
         * messages_conv stays and the view readers query is the table. */
        return "CREATE OR REPLACE VIEW conv_messages AS SELECT id, pid, conv_type, conv_a, conv_b, from_uid, mid, mtype, msg,"
               " is_binary, attrs, mtime, deleted FROM messages;";
    case 19:
        /* As SQLite's; again on a database that has it does nothing (the
         * tests take the version back without dropping what came later). */
        return "CREATE TABLE IF NOT EXISTS files ("
               "  id BYTEA PRIMARY KEY,"
               "  pid BIGINT NOT NULL,"
               "  sha256 BYTEA NOT NULL,"
               "  size BIGINT NOT NULL,"
               "  content_type BYTEA NOT NULL,"
               "  name BYTEA,"
               "  ext BYTEA,"
               "  created BIGINT NOT NULL"
               ");"
               "CREATE INDEX IF NOT EXISTS files_sha256 ON files(sha256);"
               "CREATE INDEX IF NOT EXISTS files_created ON files(created);"
               "CREATE TABLE IF NOT EXISTS file_messages ("
               "  file_id BYTEA NOT NULL,"
               "  pid BIGINT NOT NULL,"
               "  conv_type BIGINT NOT NULL,"
               "  conv_a BIGINT NOT NULL,"
               "  conv_b BIGINT NOT NULL,"
               "  from_uid BIGINT NOT NULL,"
               "  mid BIGINT NOT NULL,"
               "  PRIMARY KEY (file_id, conv_type, conv_a, conv_b)"
               ");";
    case 20:
        /* IF NOT EXISTS: like 17 and 18 it may run again on a database
         * whose version was set back (test_db_pg.c). */
        return "CREATE TABLE IF NOT EXISTS user_langs (pid BIGINT NOT NULL, uid BIGINT NOT NULL, lang TEXT NOT NULL,"
               " PRIMARY KEY (pid, uid));";
    case 21:
        /* SQLite's conversation chain: here the B-tree index stays (18),
         * nothing changes. */
        return "SELECT 1;";
    default:
        return NULL;
    }
}

/* 0 for a database without rtmd_schema; -1 with err set on failure. */
static int read_version(db_conn *db, int64_t *version, char *err, size_t errlen)
{
    db_stmt_t *st = NULL;
    *version = 0;
    /* pg_class through the statement's snapshot, not the relation cache,
     * which may not have seen a table another node just committed */
    int rc = db_prepare(db,
                        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                        " ON n.oid = c.relnamespace WHERE c.relname = 'rtmd_schema' AND n.nspname = current_schema())",
                        &st);
    int exists = 0;
    if (rc == DB_OK && (rc = db_step(st)) == DB_ROW) {
        exists = db_column_int(st, 0);
        rc = DB_OK;
    }
    db_finalize(st);
    if (rc == DB_OK && exists) {
        st = NULL;
        rc = db_prepare(db, "SELECT version FROM rtmd_schema", &st);
        if (rc == DB_OK) {
            rc = db_step(st);
            if (rc == DB_ROW) {
                *version = db_column_int64(st, 0);
                rc = DB_OK;
            } else if (rc == DB_DONE) {
                snprintf(err, errlen, "cannot read schema version: table rtmd_schema has no row");
                db_finalize(st);
                return -1;
            }
        }
        db_finalize(st);
    }
    if (rc != DB_OK) {
        snprintf(err, errlen, "cannot read schema version: %s", db_errmsg(db));
        return -1;
    }
    return 0;
}

/* Refuses a version this build cannot bring to the latest. */
static int check_version(int64_t cur, char *err, size_t errlen)
{
    int latest = store_schema_latest();
    if (cur > latest) {
        snprintf(err, errlen, "database schema version %lld is newer than this rtmd supports (%d); upgrade rtmd",
                 (long long)cur, latest);
        return -1;
    }
    if (cur < 0) {
        snprintf(err, errlen, "database schema version %lld is invalid (this rtmd supports 0 to %d)", (long long)cur,
                 latest);
        return -1;
    }
    /* below PG_BASE: versions PostgreSQL databases never had, refused here */
    for (int to = cur > 0 ? (int)cur + 1 : PG_BASE + 1; to <= latest; to++) {
        if (!pg_migration(to)) {
            snprintf(err, errlen,
                     "database schema version %lld is older than this rtmd (%d), which has no PostgreSQL "
                     "text for schema migration %d",
                     (long long)cur, latest, to);
            return -1;
        }
    }
    return 0;
}

/* Inside an open transaction: takes the schema lock and reads the version
 * again under it. */
static int lock_and_reread(db_conn *db, int64_t *cur, char *err, size_t errlen)
{
    if (db_exec(db, "SELECT pg_advisory_xact_lock(" STORE_SCHEMA_PG_LOCK_KEY ")") != DB_OK) {
        snprintf(err, errlen, "cannot lock the schema: %s", db_errmsg(db));
        return -1;
    }
    if (read_version(db, cur, err, errlen) != 0)
        return -1;
    return check_version(*cur, err, errlen);
}

static int set_version(db_conn *db, int to)
{
    char sql[64];
    snprintf(sql, sizeof sql, "UPDATE rtmd_schema SET version = %d", to);
    return db_exec(db, sql);
}

/* One transaction: the base schema and every later migration when the
 * database is empty, else migration cur + 1 alone. *cur moves to the
 * version reached; *applied counts the steps (creating counts one). */
static int apply_step(db_conn *db, int64_t *cur, int *applied, char *err, size_t errlen)
{
    int latest = store_schema_latest();
    int rc = db_exec(db, "BEGIN");
    if (rc != DB_OK) {
        snprintf(err, errlen, "cannot begin the schema transaction: %s", db_errmsg(db));
        return -1;
    }
    int64_t now;
    if (lock_and_reread(db, &now, err, errlen) != 0)
        goto fail;
    if (now != *cur) { /* another node moved it: go on from there */
        db_exec(db, "COMMIT");
        *cur = now;
        return 0;
    }
    int to;
    if (now == 0) {
        if (db_exec(db, pg_base) != DB_OK) {
            snprintf(err, errlen, "creating the PostgreSQL schema failed: %s", db_errmsg(db));
            goto fail;
        }
        for (to = PG_BASE + 1; to <= latest; to++) {
            if (db_exec(db, pg_migration(to)) != DB_OK || set_version(db, to) != DB_OK) {
                snprintf(err, errlen, "schema migration %d failed: %s", to, db_errmsg(db));
                goto fail;
            }
        }
        to = latest;
    } else {
        to = (int)now + 1;
        if (db_exec(db, pg_migration(to)) != DB_OK || set_version(db, to) != DB_OK) {
            snprintf(err, errlen, "schema migration %d failed: %s", to, db_errmsg(db));
            goto fail;
        }
    }
    if (db_exec(db, "COMMIT") != DB_OK) {
        snprintf(err, errlen, "schema migration to %d failed at commit: %s", to, db_errmsg(db));
        goto fail;
    }
    *cur = to;
    (*applied)++;
    return 0;
fail:
    if (db_in_transaction(db))
        db_exec(db, "ROLLBACK");
    return -1;
}

int store_schema_pg_migrate(db_conn *db, int *version, int *applied, char *err, size_t errlen)
{
    int latest = store_schema_latest();
    int64_t cur = 0;
    *applied = 0;
    if (read_version(db, &cur, err, errlen) != 0 || check_version(cur, err, errlen) != 0)
        return -1;
    while (cur < latest) {
        if (apply_step(db, &cur, applied, err, errlen) != 0) {
            *version = (int)cur;
            return -1;
        }
    }
    *version = (int)cur;
    return 0;
}
