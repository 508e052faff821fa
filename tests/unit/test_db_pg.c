/* Unit tests of db.h on PostgreSQL (src/rtmd/store/db_pg.c) against a real
 * server: the connection string is in RTMD_TEST_PG, and without it the
 * program fails at once, saying so. Not registered with CTest on its own:
 * tests/integration/db-pg.test.js starts PostgreSQL, creates a database
 * and runs this program. Covered: "?N" becoming "$N" outside literals,
 * identifiers and comments; int64 extremes, doubles, UTF-8 text, blobs
 * with zero bytes, NULLs; multi-row results; db_changes; a unique
 * violation giving DB_CONSTRAINT; text bound to bytea parameters kept
 * byte for byte and compared; skipped parameter numbers; integer
 * parameters 64-bit whatever the server infers; the statement cache (prepares counted
 * here and on the server); transactions and a failed one rolled back to a
 * savepoint; a read-only connection; a lost connection; an SQLite
 * connection used beside a PostgreSQL one in the same thread. The schema
 * on PostgreSQL (store_schema_pg.c), each test in a database of its own:
 * created once at the latest version, an older one migrated, a newer one
 * and one older than PostgreSQL databases refused,
 * the same tables, columns, indexes and triggers as a fresh SQLite store,
 * the storage-usage triggers and the max/min/blob shims answering as
 * SQLite does, two nodes migrating at once. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <unistd.h>

#include "db.h"
#include "store_schema.h"
#include "tmpdir.h"

static const char *conninfo;

static db_conn *open_pg(void)
{
    char err[512];
    db_conn *c = db_open_postgres(conninfo, DB_OPEN_READWRITE, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    return c;
}

/* One int64 from a query with no parameters. */
static int64_t query_int(db_conn *c, const char *sql)
{
    db_stmt_t *st;
    assert_int_equal(db_prepare(c, sql, &st), DB_OK);
    assert_int_equal(db_step(st), DB_ROW);
    int64_t v = db_column_int64(st, 0);
    db_finalize(st);
    return v;
}

static int64_t server_prepared(db_conn *c)
{
    /* counts itself while it runs: subtract it */
    return query_int(c, "SELECT count(*) FROM pg_prepared_statements") - 1;
}

static void params_rewritten_outside_literals(void **state)
{
    (void)state;
    db_conn *c = open_pg();
    db_stmt_t *st;
    const char *sql = "SELECT ?2 || '?1 ?'' ?' || ?1 AS \"a?b\" /* ?3 /* ?4 */ */, E'\\'?' -- ?5\n, ?3::int";
    assert_int_equal(db_prepare(c, sql, &st), DB_OK);
    assert_int_equal(db_bind_count(st), 3);
    assert_int_equal(db_bind_text(st, 1, "one", -1), DB_OK);
    assert_int_equal(db_bind_text(st, 2, "two", -1), DB_OK);
    assert_int_equal(db_bind_int(st, 3, 7), DB_OK);
    assert_int_equal(db_bind_int(st, 4, 7), DB_MISUSE); /* no ?4 outside the comment */
    assert_int_equal(db_step(st), DB_ROW);
    assert_string_equal(db_column_text(st, 0), "two?1 ?' ?one");
    assert_string_equal(db_column_text(st, 1), "'?");
    assert_int_equal(db_column_int(st, 2), 7);
    assert_int_equal(db_step(st), DB_DONE);
    db_finalize(st);

    /* Bare "?" are numbered after the highest so far, as in SQLite. */
    assert_int_equal(db_prepare(c, "SELECT ?::int + ?::int, $$?$$", &st), DB_OK);
    assert_int_equal(db_bind_count(st), 2);
    db_bind_int(st, 1, 40);
    db_bind_int(st, 2, 2);
    assert_int_equal(db_step(st), DB_ROW);
    assert_int_equal(db_column_int(st, 0), 42);
    assert_string_equal(db_column_text(st, 1), "?");
    db_finalize(st);

    /* A statement that does not prepare: the code and the message. */
    assert_int_equal(db_prepare(c, "SELEC 1", &st), DB_ERROR);
    assert_null(st);
    assert_non_null(strstr(db_errmsg(c), "syntax error"));
    assert_int_equal(db_close(c), DB_OK);
}

static void integers_doubles_text_and_blobs_round_trip(void **state)
{
    (void)state;
    db_conn *c = open_pg();
    assert_int_equal(db_exec(c, "DROP TABLE IF EXISTS vals; "
                                "CREATE TABLE vals(k INT PRIMARY KEY, i BIGINT, d DOUBLE PRECISION, t TEXT, b BYTEA)"),
                     DB_OK);
    static const unsigned char zeros[] = {0, 1, 0, 0xff, 0, 0x5c, 'x', 0};
    unsigned char big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 8));
    const char *utf8 = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89 'quoted' \\ ?";
    const char cut[] = {'a', 'b', 'c', 'd', 'e', 'f'}; /* no NUL: bound with a length */
    struct {
        int64_t i;
        double d;
        const char *t;
        int tlen;
        const void *b;
        int blen;
    } rows[] = {
        {INT64_MIN, -2.5, utf8, -1, zeros, (int)sizeof zeros},
        {INT64_MAX, 1e300, cut, 3, big, (int)sizeof big},
        {0, 0.1, "", 0, "", 0},
        {-1, -0.0, "plain", -1, "\0", 1},
    };
    db_stmt_t *st;
    assert_int_equal(db_prepare(c, "INSERT INTO vals(k, i, d, t, b) VALUES (?1, ?2, ?3, ?4, ?5)", &st), DB_OK);
    for (int k = 0; k < 4; k++) {
        db_reset(st);
        db_bind_int(st, 1, k);
        db_bind_int64(st, 2, rows[k].i);
        db_bind_double(st, 3, rows[k].d);
        db_bind_text(st, 4, rows[k].t, rows[k].tlen);
        db_bind_blob(st, 5, rows[k].b, rows[k].blen);
        assert_int_equal(db_step(st), DB_DONE);
        assert_int_equal(db_changes(c), 1);
    }
    db_finalize(st);

    assert_int_equal(db_prepare(c, "SELECT i, d, t, b, length(b) FROM vals ORDER BY k", &st), DB_OK);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(db_step(st), DB_ROW);
        assert_true(db_column_int64(st, 0) == rows[k].i);
        assert_true(db_column_double(st, 1) == rows[k].d);
        size_t tlen = rows[k].tlen < 0 ? strlen(rows[k].t) : (size_t)rows[k].tlen;
        /* blob before text: both bytea decodings stay valid together */
        const void *b = db_column_blob(st, 3);
        const char *t = db_column_text(st, 2);
        assert_int_equal(db_column_bytes(st, 2), tlen);
        assert_memory_equal(t, rows[k].t, tlen);
        assert_int_equal(t[tlen], '\0');
        assert_int_equal(db_column_bytes(st, 3), rows[k].blen);
        assert_non_null(b);
        if (rows[k].blen)
            assert_memory_equal(b, rows[k].b, rows[k].blen);
        assert_int_equal(db_column_int(st, 4), rows[k].blen);
        assert_false(db_column_is_null(st, 3));
    }
    assert_int_equal(db_step(st), DB_DONE);
    db_finalize(st);

    /* Extremes through a parameter of its own type and back as text. */
    assert_int_equal(db_prepare(c, "SELECT ?1::bigint, ?2::bigint, (?1::bigint)::text, ?3::float8, true, false", &st),
                     DB_OK);
    db_bind_int64(st, 1, INT64_MIN);
    db_bind_int64(st, 2, INT64_MAX);
    db_bind_double(st, 3, 1.0 / 3.0);
    assert_int_equal(db_step(st), DB_ROW);
    assert_true(db_column_int64(st, 0) == INT64_MIN);
    assert_true(db_column_int64(st, 1) == INT64_MAX);
    assert_string_equal(db_column_text(st, 2), "-9223372036854775808");
    assert_true(db_column_double(st, 3) == 1.0 / 3.0);
    assert_int_equal(db_column_int(st, 4), 1);
    assert_int_equal(db_column_int(st, 5), 0);
    db_finalize(st);
    assert_int_equal(db_close(c), DB_OK);
}

static void nulls(void **state)
{
    (void)state;
    db_conn *c = open_pg();
    db_stmt_t *st;
    assert_int_equal(db_prepare(c, "SELECT ?1::bigint, ?2::text, ?3::bytea, ?4::bigint, ?5::text", &st), DB_OK);
    db_bind_null(st, 1);
    db_bind_text(st, 2, NULL, -1);
    db_bind_blob(st, 3, NULL, 0);
    /* ?4 never bound: NULL, as in SQLite */
    db_bind_int(st, 5, 5);
    assert_int_equal(db_step(st), DB_ROW);
    for (int i = 0; i < 4; i++)
        assert_true(db_column_is_null(st, i));
    assert_int_equal(db_column_int64(st, 0), 0);
    assert_null(db_column_text(st, 1));
    assert_null(db_column_blob(st, 2));
    assert_int_equal(db_column_bytes(st, 2), 0);
    assert_false(db_column_is_null(st, 4));
    assert_string_equal(db_column_text(st, 4), "5");
    /* past the columns: as a NULL */
    assert_true(db_column_is_null(st, 9));
    db_finalize(st);
    assert_int_equal(db_close(c), DB_OK);
}

static void rows_and_changes(void **state)
{
    (void)state;
    db_conn *c = open_pg();
    assert_int_equal(db_exec(c, "DROP TABLE IF EXISTS rows_t; CREATE TABLE rows_t(id BIGINT PRIMARY KEY, v BIGINT)"),
                     DB_OK);
    db_stmt_t *st;
    assert_int_equal(db_prepare(c, "INSERT INTO rows_t(id, v) SELECT g, g * 10 FROM generate_series(1, ?1) g", &st),
                     DB_OK);
    db_bind_int(st, 1, 100);
    assert_int_equal(db_step(st), DB_DONE);
    db_finalize(st);
    assert_int_equal(db_changes(c), 100);

    assert_int_equal(db_prepare(c, "SELECT id, v FROM rows_t WHERE id > ?1 ORDER BY id", &st), DB_OK);
    db_bind_int(st, 1, 0);
    int n = 0;
    while (db_step(st) == DB_ROW) {
        n++;
        assert_int_equal(db_column_int64(st, 0), n);
        assert_int_equal(db_column_int64(st, 1), n * 10);
    }
    assert_int_equal(n, 100);
    assert_int_equal(db_step(st), DB_DONE);
    /* reset runs it again with the bindings kept */
    db_reset(st);
    assert_int_equal(db_step(st), DB_ROW);
    assert_int_equal(db_column_int64(st, 0), 1);
    db_reset(st);
    db_bind_int(st, 1, 100);
    assert_int_equal(db_step(st), DB_DONE);
    db_finalize(st);
    assert_int_equal(db_changes(c), 100); /* a SELECT changes nothing */

    assert_int_equal(db_prepare(c, "UPDATE rows_t SET v = v + 1 WHERE id <= ?1", &st), DB_OK);
    db_bind_int(st, 1, 7);
    assert_int_equal(db_step_release(st), DB_OK);
    assert_int_equal(db_changes(c), 7);
    assert_int_equal(db_prepare(c, "UPDATE rows_t SET v = 0 WHERE id < 0", &st), DB_OK);
    assert_int_equal(db_step(st), DB_DONE);
    db_finalize(st);
    assert_int_equal(db_changes(c), 0);
    assert_int_equal(db_prepare(c, "DELETE FROM rows_t WHERE id > ?1 RETURNING id", &st), DB_OK);
    db_bind_int(st, 1, 90);
    n = 0;
    while (db_step(st) == DB_ROW)
        n++;
    db_finalize(st);
    assert_int_equal(n, 10);
    assert_int_equal(db_changes(c), 10);
    assert_int_equal(db_exec(c, "DELETE FROM rows_t"), DB_OK);
    assert_int_equal(db_changes(c), 90);
    assert_int_equal(db_close(c), DB_OK);
}

static void constraint_violations(void **state)
{
    (void)state;
    db_conn *c = open_pg();
    assert_int_equal(db_exec(c, "DROP TABLE IF EXISTS uniq; CREATE TABLE uniq(id BIGINT PRIMARY KEY, name TEXT NOT NULL)"),
                     DB_OK);
    db_stmt_t *st;
    assert_int_equal(db_prepare(c, "INSERT INTO uniq(id, name) VALUES (?1, ?2)", &st), DB_OK);
    db_bind_int(st, 1, 1);
    db_bind_text(st, 2, "a", -1);
    assert_int_equal(db_step(st), DB_DONE);
    db_reset(st);
    assert_int_equal(db_step(st), DB_CONSTRAINT); /* 23505 */
    assert_non_null(strstr(db_errmsg(c), "duplicate key"));
    assert_int_equal(db_step(st), DB_CONSTRAINT); /* stays failed until reset */
    db_reset(st);
    db_bind_int(st, 1, 2);
    db_bind_null(st, 2);
    assert_int_equal(db_step(st), DB_CONSTRAINT); /* 23502 */
    db_reset(st);
    db_bind_text(st, 2, "b", -1);
    assert_int_equal(db_step(st), DB_DONE); /* autocommit: the connection goes on */
    db_finalize(st);
    assert_int_equal(query_int(c, "SELECT count(*) FROM uniq"), 2);
    assert_int_equal(db_exec(c, "INSERT INTO uniq VALUES (1, 'c')"), DB_CONSTRAINT);
    assert_int_equal(db_exec(c, "SELECT * FROM no_such_table"), DB_ERROR);
    assert_non_null(strstr(db_errmsg(c), "no_such_table"));
    assert_int_equal(db_close(c), DB_OK);
}

static void statement_cache_prepares_once(void **state)
{
    (void)state;
    db_conn *c = open_pg();
    int64_t base = server_prepared(c);
    db_cache_use(c);
    db_stmt_t *a, *b, *held;
    uint64_t before = db_prepare_count(c);
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT %d + ?1::bigint", 40);
    assert_int_equal(db_stmt(c, sql, &a), DB_OK);
    memset(sql, 'x', sizeof sql - 1); /* the cache keeps its own copy */
    db_bind_int(a, 1, 2);
    assert_int_equal(db_step(a), DB_ROW);
    assert_int_equal(db_column_int(a, 0), 42);
    db_release(a);
    assert_int_equal(db_stmt(c, "SELECT 40 + ?1::bigint", &b), DB_OK);
    assert_ptr_equal(a, b);
    assert_int_equal(db_prepare_count(c) - before, 1);
    /* released: reset and unbound */
    assert_int_equal(db_step(b), DB_ROW);
    assert_true(db_column_is_null(b, 0));
    db_release(b);

    /* In use: not handed out twice, not evicted by a churn of others. */
    assert_int_equal(db_stmt(c, "SELECT ?1::int", &held), DB_OK);
    assert_int_equal(db_stmt(c, "SELECT ?1::int", &a), DB_OK);
    assert_ptr_not_equal(held, a);
    db_release(a);
    for (int i = 0; i < 100; i++) {
        snprintf(sql, sizeof sql, "SELECT %d", i);
        assert_int_equal(db_stmt(c, sql, &a), DB_OK);
        assert_int_equal(db_step(a), DB_ROW);
        assert_int_equal(db_column_int(a, 0), i);
        db_release(a);
    }
    db_bind_int(held, 1, 7);
    assert_int_equal(db_step(held), DB_ROW);
    assert_int_equal(db_column_int(held, 0), 7);
    db_release(held);
    db_cache_use(NULL);
    /* Evicted and uncached statements were deallocated on the server: what
     * is left is the cache (32 entries) and nothing else. */
    assert_int_equal(server_prepared(c) - base, 32);

    /* Outside the cache each db_stmt prepares, and release deallocates. */
    before = db_prepare_count(c);
    assert_int_equal(db_stmt(c, "SELECT 1", &a), DB_OK);
    assert_int_equal(db_stmt(c, "SELECT 1", &b), DB_OK);
    assert_ptr_not_equal(a, b);
    db_release(a);
    db_release(b);
    assert_int_equal(db_prepare_count(c) - before, 2);
    assert_int_equal(server_prepared(c) - base, 32);
    assert_int_equal(db_close(c), DB_OK);
}

static void transactions(void **state)
{
    (void)state;
    db_conn *c = open_pg();
    assert_int_equal(db_exec(c, "DROP TABLE IF EXISTS tx; CREATE TABLE tx(id BIGINT PRIMARY KEY)"), DB_OK);
    int64_t base = server_prepared(c);
    assert_false(db_in_transaction(c));
    assert_int_equal(db_exec(c, "BEGIN"), DB_OK);
    assert_true(db_in_transaction(c));
    assert_int_equal(db_exec(c, "INSERT INTO tx VALUES (1)"), DB_OK);
    assert_int_equal(db_exec(c, "ROLLBACK"), DB_OK);
    assert_false(db_in_transaction(c));
    assert_int_equal(query_int(c, "SELECT count(*) FROM tx"), 0);

    assert_int_equal(db_exec(c, "BEGIN"), DB_OK);
    assert_int_equal(db_exec(c, "INSERT INTO tx VALUES (1)"), DB_OK);
    assert_int_equal(db_exec(c, "COMMIT"), DB_OK);
    assert_false(db_in_transaction(c));
    assert_int_equal(query_int(c, "SELECT count(*) FROM tx"), 1);

    /* The store's replay: a failing write inside a savepoint leaves the
     * transaction open (failed); ROLLBACK TO the savepoint keeps the rest. */
    db_cache_use(c);
    assert_int_equal(db_exec(c, "BEGIN"), DB_OK);
    db_stmt_t *st;
    assert_int_equal(db_stmt(c, "INSERT INTO tx VALUES (?1)", &st), DB_OK);
    db_bind_int(st, 1, 2);
    assert_int_equal(db_step_release(st), DB_OK);
    assert_int_equal(db_exec(c, "SAVEPOINT store_op"), DB_OK);
    assert_int_equal(db_stmt(c, "INSERT INTO tx VALUES (?1)", &st), DB_OK);
    db_bind_int(st, 1, 1);
    assert_int_equal(db_step_release(st), DB_CONSTRAINT);
    assert_true(db_in_transaction(c));
    /* a cached statement is handed out without asking the server */
    assert_int_equal(db_stmt(c, "INSERT INTO tx VALUES (?1)", &st), DB_OK);
    db_release(st);
    db_cache_use(NULL);
    assert_int_equal(db_exec(c, "SELECT 1"), DB_ERROR); /* 25P02: the transaction is failed */
    assert_true(db_in_transaction(c));
    db_cache_use(c);
    assert_int_equal(db_exec(c, "ROLLBACK TO store_op"), DB_OK);
    assert_int_equal(db_stmt(c, "INSERT INTO tx VALUES (?1)", &st), DB_OK);
    db_bind_int(st, 1, 3);
    assert_int_equal(db_step_release(st), DB_OK);
    assert_int_equal(db_exec(c, "COMMIT"), DB_OK);
    db_cache_use(NULL);
    assert_int_equal(query_int(c, "SELECT count(*) FROM tx"), 3);

    /* A statement finalized inside a failed transaction cannot be
     * deallocated there: it is once the transaction is over. */
    db_stmt_t *once;
    assert_int_equal(db_exec(c, "BEGIN"), DB_OK);
    assert_int_equal(db_prepare(c, "SELECT count(*) FROM tx WHERE id = ?1", &once), DB_OK);
    assert_int_equal(db_exec(c, "INSERT INTO tx VALUES (1)"), DB_CONSTRAINT);
    db_finalize(once);
    assert_int_equal(db_exec(c, "ROLLBACK"), DB_OK);
    assert_false(db_in_transaction(c));
    assert_int_equal(server_prepared(c) - base, 1); /* the cached INSERT only */
    assert_int_equal(db_close(c), DB_OK);
}

static void read_only_connection(void **state)
{
    (void)state;
    char err[512];
    db_conn *w = open_pg();
    assert_int_equal(db_exec(w, "DROP TABLE IF EXISTS ro; CREATE TABLE ro(id BIGINT)"), DB_OK);
    db_conn *r = db_open_postgres(conninfo, DB_OPEN_READONLY, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(query_int(r, "SELECT count(*) FROM ro"), 0);
    assert_int_equal(db_exec(r, "INSERT INTO ro VALUES (1)"), DB_READONLY);
    assert_int_equal(db_close(r), DB_OK);
    assert_int_equal(db_close(w), DB_OK);
}

static void lost_connection_and_bad_conninfo(void **state)
{
    (void)state;
    char err[512];
    db_conn *victim = open_pg();
    db_conn *killer = open_pg();
    int64_t pid = query_int(victim, "SELECT pg_backend_pid()");
    db_stmt_t *st;
    assert_int_equal(db_prepare(killer, "SELECT pg_terminate_backend(?1::int)", &st), DB_OK);
    db_stmt_t *kill = st;
    db_bind_int64(kill, 1, pid);
    assert_int_equal(db_step(kill), DB_ROW);
    assert_int_equal(db_column_int(kill, 0), 1);
    db_finalize(kill);
    int rc = db_exec(victim, "SELECT 1");
    assert_true(rc == DB_IOERR);
    assert_true(strlen(db_errmsg(victim)) > 0);
    assert_int_equal(db_close(victim), DB_OK);
    assert_int_equal(db_close(killer), DB_OK);

    assert_null(db_open_postgres("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", DB_OPEN_READWRITE, err,
                                 sizeof err));
    assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
}

/* Peer strings live in bytea columns: db_bind_text to a bytea parameter
 * sends the bytes as they are (binary format), db_column_text and
 * db_column_bytes give them back. */
static void text_bound_to_bytea_keeps_its_bytes(void **state)
{
    (void)state;
    db_conn *c = open_pg();
    assert_int_equal(db_exec(c, "DROP TABLE IF EXISTS bt; CREATE TABLE bt(k BIGINT PRIMARY KEY, v BYTEA NOT NULL, "
                                "t TEXT)"),
                     DB_OK);
    static char big[100 * 1024];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 13 + (i >> 9)); /* NULs, backslashes, bytes >= 0x80 */
    const struct {
        const char *v;
        int len; /* -1: up to the NUL */
    } vals[] = {
        {"\xff\xfe not \xc3( utf-8 \xed\xa0\x80", -1},
        {"ab\0cd", 5}, /* an embedded NUL, with its length */
        {"", 0},
        {"\\x41 and \\\\ 'q' \\000", -1}, /* backslashes, not escapes */
        {big, (int)sizeof big},
        {"ab", 2}, /* a prefix of the one with the NUL */
    };
    enum { NVALS = sizeof vals / sizeof vals[0] };
    db_stmt_t *st;
    db_cache_use(c); /* the second use of the INSERT comes from the cache: the types stay */
    uint64_t prepares = db_prepare_count(c);
    for (int k = 0; k < NVALS; k++) {
        assert_int_equal(db_stmt(c, "INSERT INTO bt(k, v) VALUES (?1, ?2)", &st), DB_OK);
        db_bind_int(st, 1, k);
        assert_int_equal(db_bind_text(st, 2, vals[k].v, vals[k].len), DB_OK);
        assert_int_equal(db_step_release(st), DB_OK);
    }
    assert_int_equal(db_prepare_count(c) - prepares, 1);

    assert_int_equal(db_prepare(c, "SELECT k, v, octet_length(v) FROM bt ORDER BY k", &st), DB_OK);
    for (int k = 0; k < NVALS; k++) {
        size_t len = vals[k].len < 0 ? strlen(vals[k].v) : (size_t)vals[k].len;
        assert_int_equal(db_step(st), DB_ROW);
        assert_int_equal(db_column_int(st, 0), k);
        const char *t = db_column_text(st, 1);
        assert_non_null(t);
        assert_int_equal(db_column_bytes(st, 1), len);
        assert_int_equal(db_column_int(st, 2), len);
        if (len)
            assert_memory_equal(t, vals[k].v, len);
        assert_int_equal(t[len], '\0');
        assert_ptr_equal(db_column_blob(st, 1), t);
    }
    assert_int_equal(db_step(st), DB_DONE);
    db_finalize(st);

    /* Equality with text bound finds exactly its row (the prefix "ab" is
     * not "ab\0cd"). */
    for (int k = 0; k < NVALS; k++) {
        assert_int_equal(db_stmt(c, "SELECT k FROM bt WHERE v = ?1", &st), DB_OK);
        db_bind_text(st, 1, vals[k].v, vals[k].len);
        assert_int_equal(db_step(st), DB_ROW);
        assert_int_equal(db_column_int(st, 0), k);
        assert_int_equal(db_step(st), DB_DONE);
        db_release(st);
    }
    db_cache_use(NULL);

    /* Numbers bound to a bytea parameter are their text; to other types
     * they are unchanged. */
    assert_int_equal(db_prepare(c, "INSERT INTO bt(k, v, t) VALUES (?1, ?2, ?3)", &st), DB_OK);
    db_bind_int(st, 1, 100);
    db_bind_int64(st, 2, INT64_MIN);
    db_bind_text(st, 3, "plain text", -1);
    assert_int_equal(db_step(st), DB_DONE);
    db_reset(st);
    db_bind_int(st, 1, 101);
    db_bind_double(st, 2, 0.5);
    db_bind_int64(st, 3, 42);
    assert_int_equal(db_step(st), DB_DONE);
    /* text bound to a TEXT parameter is still text: not UTF-8, refused */
    db_reset(st);
    db_bind_int(st, 1, 102);
    db_bind_text(st, 2, "x", -1);
    db_bind_text(st, 3, "\xff", -1);
    assert_int_equal(db_step(st), DB_ERROR);
    db_finalize(st);
    assert_int_equal(db_prepare(c, "SELECT v, t FROM bt WHERE k >= 100 ORDER BY k", &st), DB_OK);
    assert_int_equal(db_step(st), DB_ROW);
    assert_string_equal(db_column_text(st, 0), "-9223372036854775808");
    assert_string_equal(db_column_text(st, 1), "plain text");
    assert_int_equal(db_step(st), DB_ROW);
    assert_string_equal(db_column_text(st, 0), "0.5");
    assert_string_equal(db_column_text(st, 1), "42");
    assert_int_equal(db_step(st), DB_DONE);
    db_finalize(st);
    assert_int_equal(db_prepare(c, "SELECT ?1::numeric + 1, ?2::float8 * 2, ?3::text", &st), DB_OK);
    db_bind_int64(st, 1, INT64_MAX);
    db_bind_double(st, 2, 1.25);
    db_bind_double(st, 3, -3.5);
    assert_int_equal(db_step(st), DB_ROW);
    assert_string_equal(db_column_text(st, 0), "9223372036854775808");
    assert_true(db_column_double(st, 1) == 2.5);
    assert_string_equal(db_column_text(st, 2), "-3.5");
    db_finalize(st);
    assert_int_equal(db_close(c), DB_OK);
}

/* SQLite allows a statement to skip numbers ("?1, ?3"); so does this
 * backend: the skipped one takes any bind and is ignored. */
static void skipped_parameter_numbers(void **state)
{
    (void)state;
    db_conn *c = open_pg();
    db_stmt_t *st;
    assert_int_equal(db_prepare(c, "SELECT ?1::int + ?4::int, ?3 || 'x'", &st), DB_OK);
    assert_int_equal(db_bind_count(st), 4);
    for (int round = 0; round < 3; round++) {
        db_reset(st);
        db_bind_int(st, 1, 40);
        if (round == 0)
            db_bind_blob(st, 2, "\0\xff", 2);
        else if (round == 1)
            db_bind_text(st, 2, "\xff\\", -1);
        else
            db_bind_int64(st, 2, 7);
        db_bind_text(st, 3, "a", -1);
        db_bind_int(st, 4, 2);
        assert_int_equal(db_step(st), DB_ROW);
        assert_int_equal(db_column_int(st, 0), 42);
        assert_string_equal(db_column_text(st, 1), "ax");
    }
    db_finalize(st);
    assert_int_equal(db_close(c), DB_OK);
}

/* A parameter the server would type as a 32-bit integer (beside an
 * integer literal) is 64-bit, as every SQLite integer: no overflow. */
static void narrow_integer_parameters_are_64_bit(void **state)
{
    (void)state;
    db_conn *c = open_pg();
    uint64_t before = db_prepare_count(c);
    db_stmt_t *st;
    assert_int_equal(db_prepare(c, "SELECT ?1 * 1000000, ?2 + 1, 5000000000 >= ?1 * 1000000", &st), DB_OK);
    assert_int_equal(db_prepare_count(c) - before, 2); /* typed again once */
    db_bind_int64(st, 1, 1764710000);
    db_bind_int64(st, 2, INT64_C(9000000000));
    assert_int_equal(db_step(st), DB_ROW);
    assert_true(db_column_int64(st, 0) == INT64_C(1764710000000000));
    assert_true(db_column_int64(st, 1) == INT64_C(9000000001));
    assert_int_equal(db_column_int(st, 2), 0);
    db_finalize(st);
    assert_int_equal(db_close(c), DB_OK);
}

/* Both backends in one thread: each call finds its own. */
static void sqlite_and_postgres_side_by_side(void **state)
{
    (void)state;
    char dir[] = "/tmp/rtmd-db-both-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/x.sqlite3", dir);
    db_conn *lite = db_open(path, DB_OPEN_CREATE, err, sizeof err);
    assert_non_null(lite);
    db_conn *pg = open_pg();
    db_stmt_t *a, *b;
    db_cache_use(pg);
    assert_int_equal(db_stmt(pg, "SELECT ?1::text || 'pg'", &a), DB_OK);
    assert_int_equal(db_stmt(lite, "SELECT ?1 || 'lite'", &b), DB_OK); /* not lite's cache: fresh */
    db_bind_text(a, 1, "from ", -1);
    db_bind_text(b, 1, "from ", -1);
    assert_int_equal(db_step(a), DB_ROW);
    assert_int_equal(db_step(b), DB_ROW);
    assert_string_equal(db_column_text(a, 0), "from pg");
    assert_string_equal(db_column_text(b, 0), "from lite");
    db_release(b);
    db_release(a);
    db_cache_use(lite);
    assert_int_equal(db_stmt(lite, "SELECT 1", &b), DB_OK);
    assert_int_equal(db_stmt(pg, "SELECT 2", &a), DB_OK);
    assert_int_equal(db_step(b), DB_ROW);
    assert_int_equal(db_step(a), DB_ROW);
    assert_int_equal(db_column_int(b, 0) + db_column_int(a, 0), 3);
    db_release(a);
    db_release(b);
    db_cache_use(NULL);
    assert_int_equal(db_close(pg), DB_OK);
    assert_int_equal(db_close(lite), DB_OK);
    assert_int_equal(remove_tree(dir), 0);
}

/* ---- the schema (store_schema_pg.c) ---- */

/* A connection string for database name, made empty: conninfo with its
 * database replaced (a URL's path, else a later dbname= keyword). */
static void fresh_database(const char *name, char *out, size_t outlen)
{
    db_conn *c = open_pg();
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
    assert_int_equal(db_exec(c, sql), DB_OK);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    assert_int_equal(db_exec(c, sql), DB_OK);
    assert_int_equal(db_close(c), DB_OK);
    if (strncmp(conninfo, "postgres", 8) == 0 && strstr(conninfo, "://")) {
        const char *q = strchr(conninfo, '?');
        size_t base = q ? (size_t)(q - conninfo) : strlen(conninfo);
        const char *slash = conninfo + base;
        while (slash > conninfo && *slash != '/')
            slash--;
        assert_true(slash > strstr(conninfo, "://") + 2); /* a URL with a path */
        snprintf(out, outlen, "%.*s/%s%s", (int)(slash - conninfo), conninfo, name, q ? q : "");
    } else {
        snprintf(out, outlen, "%s dbname=%s", conninfo, name);
    }
}

static db_conn *open_url(const char *url)
{
    char err[512];
    db_conn *c = db_open_postgres(url, DB_OPEN_READWRITE, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    return c;
}

/* A fresh SQLite store's database in dir (store_schema_migrate). */
static db_conn *fresh_sqlite(char *dir)
{
    assert_non_null(mkdtemp(dir));
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/rtmd.sqlite3", dir);
    db_conn *c = db_open(path, DB_OPEN_CREATE, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    int version, applied;
    if (store_schema_migrate(c, &version, &applied, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(version, store_schema_latest());
    return c;
}

static db_conn *fresh_pg(const char *name)
{
    char url[1024], err[512];
    fresh_database(name, url, sizeof url);
    db_conn *c = open_url(url);
    int version, applied;
    if (store_schema_migrate(c, &version, &applied, err, sizeof err) != 0)
        fail_msg("%s", err);
    return c;
}

/* The rows of a query as one text: its ncols columns joined by '|', rows
 * ended by '\n'. */
static void query_rows(db_conn *c, const char *sql, int ncols, char *out, size_t outlen)
{
    db_stmt_t *st;
    size_t n = 0;
    out[0] = '\0';
    if (db_prepare(c, sql, &st) != DB_OK)
        fail_msg("%s: %s", sql, db_errmsg(c));
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        for (int i = 0; i < ncols; i++) {
            const char *t = db_column_text(st, i);
            n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? "|" : "", t ? t : "NULL");
            assert_true(n < outlen);
        }
        n += (size_t)snprintf(out + n, outlen - n, "\n");
        assert_true(n < outlen);
    }
    assert_int_equal(rc, DB_DONE);
    db_finalize(st);
}

static void schema_created_once_at_latest(void **state)
{
    (void)state;
    char url[1024], err[512];
    fresh_database("rtmd_schema_once", url, sizeof url);
    db_conn *c = open_url(url);
    int version = -1, applied = -1;
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), 0);
    assert_int_equal(version, store_schema_latest());
    assert_int_equal(applied, 1);
    assert_false(db_in_transaction(c));
    assert_int_equal(query_int(c, "SELECT version FROM rtmd_schema"), store_schema_latest());
    assert_int_equal(query_int(c, "SELECT count(*) FROM rtmd_schema"), 1);
    assert_int_equal(db_exec(c, "INSERT INTO rtmd_schema(version) VALUES (1)"), DB_CONSTRAINT); /* one row */

    version = applied = -1;
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), 0);
    assert_int_equal(version, store_schema_latest());
    assert_int_equal(applied, 0);
    assert_int_equal(db_close(c), DB_OK);

    /* A new connection finds it as well. */
    c = open_url(url);
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(db_close(c), DB_OK);
}

/* Migration 16 on a database of version 15 (the mark and its triggers of
 * pg_base): the rows above the storage_usage_upto mark are added, the mark
 * is gone, and a delete of several projects' rows in one statement and an
 * edit count every row, above the old mark too. */
static void schema_16_counts_rows_above_the_mark(void **state)
{
    (void)state;
    char url[1024], err[512];
    fresh_database("rtmd_schema_16", url, sizeof url);
    db_conn *c = open_url(url);
    int version, applied;
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), 0);
    assert_int_equal(db_exec(c,
                             "DROP TRIGGER storage_usage_lock ON messages;"
                             "DROP FUNCTION storage_usage_lock();"
                             "DROP TRIGGER storage_usage_delete ON messages;"
                             "CREATE OR REPLACE FUNCTION storage_usage_delete() RETURNS trigger LANGUAGE plpgsql AS $$"
                             " BEGIN"
                             "  IF old.id <= (SELECT value FROM counters WHERE name = 'storage_usage_upto') THEN"
                             "   UPDATE storage_usage SET bytes = bytes - octet_length(old.msg) - octet_length(old.attrs)"
                             "    WHERE pid = old.pid;"
                             "  END IF;"
                             "  RETURN NULL;"
                             " END $$;"
                             "CREATE TRIGGER storage_usage_delete AFTER DELETE ON messages"
                             "  FOR EACH ROW EXECUTE FUNCTION storage_usage_delete();"
                             "CREATE OR REPLACE FUNCTION storage_usage_update() RETURNS trigger LANGUAGE plpgsql AS $$"
                             " BEGIN"
                             "  IF old.id <= (SELECT value FROM counters WHERE name = 'storage_usage_upto') THEN"
                             "   UPDATE storage_usage SET bytes = bytes - octet_length(old.msg) - octet_length(old.attrs)"
                             "    + octet_length(new.msg) + octet_length(new.attrs) WHERE pid = old.pid;"
                             "  END IF;"
                             "  RETURN NULL;"
                             " END $$;"
                             "INSERT INTO projects VALUES (1, 's', 0), (2, 't', 0);"
                             "INSERT INTO messages(pid, conv_type, conv_a, conv_b, id, from_uid, mid, mtype,"
                             " msg, attrs, mtime) VALUES (1, 1, 10, 11, 1, 10, 1, 30, 'ab', '', 0),"
                             " (1, 1, 10, 11, 2, 10, 2, 30, 'abc', 'd', 0), (2, 2, 5, 0, 3, 10, 3, 30, 'xyz', '', 0),"
                             " (1, 2, 5, 0, 4, 10, 4, 30, 'abcdefg', '', 0);"
                             "INSERT INTO storage_usage(pid, bytes) VALUES (1, 2);"
                             "INSERT INTO counters(name, value) VALUES ('storage_usage_upto', 1);"
                             "UPDATE rtmd_schema SET version = 15"),
                     DB_OK);
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), 0);
    assert_int_equal(applied, store_schema_latest() - 15);
    assert_int_equal(query_int(c, "SELECT bytes FROM storage_usage WHERE pid = 1"), 2 + 4 + 7);
    assert_int_equal(query_int(c, "SELECT bytes FROM storage_usage WHERE pid = 2"), 3);
    assert_int_equal(query_int(c, "SELECT count(*) FROM counters WHERE name = 'storage_usage_upto'"), 0);
    assert_int_equal(db_exec(c, "UPDATE messages SET msg = 'a' WHERE id = 4"), DB_OK);
    assert_int_equal(query_int(c, "SELECT bytes FROM storage_usage WHERE pid = 1"), 7);
    assert_int_equal(db_exec(c, "DELETE FROM messages WHERE id IN (2, 3)"), DB_OK);
    assert_int_equal(query_int(c, "SELECT bytes FROM storage_usage WHERE pid = 1"), 3);
    assert_int_equal(query_int(c, "SELECT bytes FROM storage_usage WHERE pid = 2"), 0);
    /* A delete or an edit of messages, even of no row, holds the message_id
     * row (what a message batch of another node locks first). */
    assert_int_equal(db_exec(c, "INSERT INTO counters(name, value) VALUES ('message_id', 10)"), DB_OK);
    db_conn *other = open_url(url);
    static const char *const writes[] = {"DELETE FROM messages WHERE id = 99", "UPDATE messages SET msg = 'b' WHERE id = 4"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(db_exec(c, "BEGIN"), DB_OK);
        assert_int_equal(db_exec(c, writes[i]), DB_OK);
        assert_int_not_equal(db_exec(other, "SELECT value FROM counters WHERE name = 'message_id' FOR UPDATE NOWAIT"),
                             DB_OK);
        assert_int_equal(db_exec(c, "ROLLBACK"), DB_OK);
        assert_int_equal(db_exec(other, "SELECT value FROM counters WHERE name = 'message_id' FOR UPDATE NOWAIT"),
                         DB_OK);
    }
    assert_int_equal(db_close(other), DB_OK);
    assert_int_equal(db_close(c), DB_OK);
}

static void schema_older_migrated_newer_refused(void **state)
{
    (void)state;
    char url[1024], err[512], sql[96], want[64];
    fresh_database("rtmd_schema_versions", url, sizeof url);
    db_conn *c = open_url(url);
    int version, applied;
    int latest = store_schema_latest();
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), 0);

    snprintf(sql, sizeof sql, "UPDATE rtmd_schema SET version = %d", latest + 1);
    assert_int_equal(db_exec(c, sql), DB_OK);
    err[0] = '\0';
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), -1);
    assert_int_equal(applied, 0);
    snprintf(want, sizeof want, "version %d is newer", latest + 1);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof want, "(%d)", latest);
    assert_non_null(strstr(err, want));
    assert_int_equal(query_int(c, "SELECT version FROM rtmd_schema"), latest + 1);

    /* Older, with the PostgreSQL text of the migrations after it (15 and
     * later): brought to the latest, the migration's indexes there. */
    assert_int_equal(db_exec(c, "DROP INDEX rtcat_sessions_pid; DROP INDEX rtcat_tokens_pid;"
                                "UPDATE rtmd_schema SET version = 14"),
                     DB_OK);
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), 0);
    assert_int_equal(version, latest);
    assert_int_equal(applied, latest - 14);
    assert_int_equal(query_int(c, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('rtcat_sessions_pid',"
                                  " 'rtcat_tokens_pid')"),
                     2);

    /* A version before PostgreSQL databases existed: older as well. */
    assert_int_equal(db_exec(c, "UPDATE rtmd_schema SET version = 3"), DB_OK);
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), -1);
    assert_non_null(strstr(err, "version 3 is older"));
    assert_non_null(strstr(err, "migration 4"));
    assert_int_equal(db_exec(c, "UPDATE rtmd_schema SET version = -1"), DB_OK);
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), -1);
    assert_non_null(strstr(err, "version -1 is invalid"));

    /* A version table without its row. */
    assert_int_equal(db_exec(c, "DELETE FROM rtmd_schema"), DB_OK);
    assert_int_equal(store_schema_migrate(c, &version, &applied, err, sizeof err), -1);
    assert_non_null(strstr(err, "no row"));
    assert_false(db_in_transaction(c));
    assert_int_equal(db_close(c), DB_OK);
}

/* Same tables (with their columns and NOT NULLs), indexes, triggers and
 * counters as a fresh SQLite store. */
static void schema_matches_sqlite(void **state)
{
    (void)state;
    char dir[] = "/tmp/rtmd-schema-XXXXXX";
    db_conn *lite = fresh_sqlite(dir);
    db_conn *pg = fresh_pg("rtmd_schema_match");
    static char a[16384], b[16384];

    /* The conversation index: on SQLite the chain (migration 21: prev_id,
     * its index and trigger, conv_last) and the sparse table conv_index
     * (migration 18) with its trigger; the B-tree index messages_conv on
     * PostgreSQL. Readers use the view conv_messages on both. */
    query_rows(lite,
               "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
               " AND name NOT IN ('conv_index', 'conv_last') ORDER BY name",
               1, a, sizeof a);
    query_rows(pg,
               "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
               " AND table_type = 'BASE TABLE' AND table_name <> 'rtmd_schema' ORDER BY table_name COLLATE \"C\"",
               1, b, sizeof b);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "rtcat_tokens\n")); /* the list is not empty */
    query_rows(lite, "SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name", 1, a, sizeof a);
    query_rows(pg,
               "SELECT table_name FROM information_schema.views WHERE table_schema = current_schema()"
               " ORDER BY table_name COLLATE \"C\"",
               1, b, sizeof b);
    assert_string_equal(a, b);
    assert_string_equal(a, "conv_messages\n");

    /* a key column is NOT NULL on PostgreSQL; SQLite takes a NULL in a
     * TEXT PRIMARY KEY of a rowid table, which rtmd never writes */
    query_rows(lite,
               "SELECT m.name, c.name, c.\"notnull\" OR c.pk > 0 FROM sqlite_master m,"
               " pragma_table_info(m.name) c WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite%'"
               " AND m.name NOT IN ('conv_index', 'conv_last') AND NOT (m.name = 'messages' AND c.name = 'prev_id')"
               " ORDER BY m.name, c.cid",
               3, a, sizeof a);
    query_rows(pg,
               "SELECT table_name, column_name, CASE is_nullable WHEN 'NO' THEN 1 ELSE 0 END"
               " FROM information_schema.columns WHERE table_schema = current_schema()"
               " AND table_name <> 'rtmd_schema' ORDER BY table_name COLLATE \"C\", ordinal_position",
               3, b, sizeof b);
    assert_string_equal(a, b);

    query_rows(lite,
               "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND name <> 'messages_prev'"
               " ORDER BY name",
               1, a, sizeof a);
    query_rows(pg,
               "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
               " AND indexname NOT LIKE '%\\_pkey' AND indexname <> 'messages_conv' ORDER BY indexname COLLATE \"C\"",
               1, b, sizeof b);
    assert_string_equal(a, b);

    /* the columns of every index, in order */
    query_rows(lite,
               "SELECT m.name, i.seqno, i.name FROM sqlite_master m, pragma_index_info(m.name) i"
               " WHERE m.type = 'index' AND m.sql IS NOT NULL AND m.name <> 'messages_prev' ORDER BY m.name, i.seqno",
               3, a, sizeof a);
    query_rows(pg,
               "SELECT c.relname, k.n - 1, a.attname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
               " CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)"
               " JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum"
               " WHERE c.relnamespace = current_schema()::regnamespace AND NOT x.indisprimary"
               " AND c.relname <> 'messages_conv'"
               " ORDER BY c.relname COLLATE \"C\", k.n",
               3, b, sizeof b);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "messages_dedup|0|mid\n"));

    query_rows(lite,
               "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'"
               " AND name NOT IN ('conv_index_delete', 'messages_chain_delete')"
               " ORDER BY name",
               2, a, sizeof a);
    query_rows(pg,
               "SELECT trigger_name, event_object_table FROM information_schema.triggers"
               " WHERE trigger_schema = current_schema()"
               " AND trigger_name <> 'storage_usage_lock'" /* PostgreSQL's lock order (migration 16) */
               " GROUP BY 1, 2 ORDER BY trigger_name COLLATE \"C\"",
               2, b, sizeof b);
    assert_string_equal(a, b);

    query_rows(lite, "SELECT name, value FROM counters WHERE name <> 'conv_indexed_upto' ORDER BY name", 2, a,
               sizeof a);
    query_rows(pg, "SELECT name, value FROM counters ORDER BY name", 2, b, sizeof b);
    assert_string_equal(a, b);
    assert_null(strstr(a, "storage_usage_upto"));

    assert_int_equal(db_close(pg), DB_OK);
    assert_int_equal(db_close(lite), DB_OK);
    assert_int_equal(remove_tree(dir), 0);
}

static void exec_bind(db_conn *c, const char *sql, const void *blob, int len)
{
    db_stmt_t *st;
    if (db_prepare(c, sql, &st) != DB_OK)
        fail_msg("%s: %s", sql, db_errmsg(c));
    if (blob)
        assert_int_equal(db_bind_blob(st, 1, blob, len), DB_OK);
    assert_int_equal(db_step(st), DB_DONE);
    db_finalize(st);
}

/* Writes messages, edits and deletes them (one row, several rows of two
 * projects in one statement, none), and reads project 1's usage after each
 * step (project 2's after the last). Inserts fire nothing: the writer's
 * apply counts what it inserts (messages.c). */
static void usage_steps(db_conn *c, int64_t *usage, int *n)
{
    static const unsigned char m7[] = {'h', 0, 0xff, 'i', 0, '\\', 'x'};
    static const unsigned char m20[20] = {1, 2, 3, 0, 5};
#define INS "INSERT INTO messages(id, pid, conv_type, conv_a, conv_b, from_uid, mid, mtype, msg, attrs, mtime)" \
            " VALUES (%d, %d, 1, 2, 3, 2, %d, 30, ?1, %s, 0)"
    char sql[256];
    *n = 0;
    exec_bind(c, "INSERT INTO projects(pid, secret, created_at) VALUES (1, ?1, 0), (2, ?1, 0)", "s", 1);
    exec_bind(c, "INSERT INTO storage_usage(pid, bytes) VALUES (1, 1000), (2, 500)", NULL, 0);
#define READ() (usage[(*n)++] = query_int(c, "SELECT bytes FROM storage_usage WHERE pid = 1"))
    snprintf(sql, sizeof sql, INS, 5, 1, 1, "'abc'");
    exec_bind(c, sql, m7, (int)sizeof m7); /* inserts fire nothing */
    READ();
    snprintf(sql, sizeof sql, INS, 50, 1, 2, "''");
    exec_bind(c, sql, m7, 4);
    READ();
    exec_bind(c, "UPDATE messages SET msg = ?1 WHERE id = 5", m20, (int)sizeof m20); /* +13 */
    READ();
    exec_bind(c, "UPDATE messages SET attrs = ?1 WHERE id = 5", "", 0); /* -3 */
    READ();
    exec_bind(c, "UPDATE messages SET deleted = 1 WHERE id = 5", NULL, 0); /* neither msg nor attrs */
    READ();
    exec_bind(c, "UPDATE messages SET msg = ?1 WHERE id = 50", m20, (int)sizeof m20); /* +16 */
    READ();
    exec_bind(c, "UPDATE messages SET msg = msg, attrs = attrs WHERE id = 5", NULL, 0); /* same bytes */
    READ();
    exec_bind(c, "DELETE FROM messages WHERE id = 5", NULL, 0); /* -20 */
    READ();
    exec_bind(c, "DELETE FROM messages WHERE id = 50", NULL, 0); /* -20 */
    READ();
    exec_bind(c, "DELETE FROM messages WHERE id = 50", NULL, 0); /* nothing */
    READ();
    snprintf(sql, sizeof sql, INS, 60, 1, 3, "'de'");
    exec_bind(c, sql, m7, (int)sizeof m7);
    snprintf(sql, sizeof sql, INS, 61, 2, 4, "'d'");
    exec_bind(c, sql, m7, (int)sizeof m7);
    snprintf(sql, sizeof sql, INS, 62, 1, 5, "''");
    exec_bind(c, sql, m7, 1);
    exec_bind(c, "DELETE FROM messages WHERE id IN (60, 61, 62)", NULL, 0); /* 1: -10, 2: -8 */
    READ();
    usage[(*n)++] = query_int(c, "SELECT bytes FROM storage_usage WHERE pid = 2");
#undef READ
#undef INS
}

static void storage_usage_triggers_count_as_sqlite(void **state)
{
    (void)state;
    char dir[] = "/tmp/rtmd-schema-XXXXXX";
    db_conn *lite = fresh_sqlite(dir);
    db_conn *pg = fresh_pg("rtmd_schema_usage");
    int64_t ul[16], up[16];
    int nl, np;
    usage_steps(lite, ul, &nl);
    usage_steps(pg, up, &np);
    static const int64_t want[] = {1000, 1000, 1013, 1010, 1010, 1026, 1026, 1006, 986, 986, 976, 492};
    assert_int_equal(nl, (int)(sizeof want / sizeof want[0]));
    assert_int_equal(np, nl);
    for (int i = 0; i < nl; i++) {
        assert_int_equal(ul[i], want[i]);
        assert_int_equal(up[i], want[i]);
    }
    assert_int_equal(db_close(pg), DB_OK);
    assert_int_equal(db_close(lite), DB_OK);
    assert_int_equal(remove_tree(dir), 0);
}

/* One row of the shims' answers, for parameters a and b. */
static void shim_row(db_conn *c, int64_t a, int64_t b, char *out, size_t outlen)
{
    db_stmt_t *st;
    const char *sql = "SELECT max(?1, ?2), min(?1, ?2), max(?2, 3), min(3, ?1), max(?1, NULL) IS NULL,"
                      " min(NULL, ?2) IS NULL, max(mtime, ?1), min(id, ?2), max(max(id), ?1), min(min(id), ?2),"
                      " length(CAST(msg AS BLOB)), length(CAST(attrs AS BLOB)), length(CAST(NULL AS BLOB)) IS NULL,"
                      " length(CAST('' AS BLOB))"
                      " FROM messages GROUP BY id, mtime, msg, attrs ORDER BY id";
    if (db_prepare(c, sql, &st) != DB_OK)
        fail_msg("%s", db_errmsg(c));
    db_bind_int64(st, 1, a);
    db_bind_int64(st, 2, b);
    size_t n = 0;
    int rc;
    out[0] = '\0';
    while ((rc = db_step(st)) == DB_ROW) {
        for (int i = 0; i < 14; i++)
            n += (size_t)snprintf(out + n, outlen - n, "%s%lld", i ? "|" : "", (long long)db_column_int64(st, i));
        n += (size_t)snprintf(out + n, outlen - n, "\n");
        assert_true(n < outlen);
    }
    if (rc != DB_DONE)
        fail_msg("%s", db_errmsg(c));
    db_finalize(st);
}

static void shims_answer_as_sqlite(void **state)
{
    (void)state;
    char dir[] = "/tmp/rtmd-schema-XXXXXX";
    db_conn *lite = fresh_sqlite(dir);
    db_conn *pg = fresh_pg("rtmd_schema_shims");
    static const unsigned char bytes[] = {0, 0xc3, 0x28, 0, 'a'}; /* NULs, invalid UTF-8 */
    for (int k = 0; k < 2; k++) {
        db_conn *c = k ? pg : lite;
        exec_bind(c, "INSERT INTO projects(pid, secret, created_at) VALUES (1, ?1, 0)", "s", 1);
        exec_bind(c,
                  "INSERT INTO messages(id, pid, conv_type, conv_a, from_uid, mid, mtype, msg, attrs, mtime)"
                  " VALUES (7, 1, 2, 9, 1, 1, 30, ?1, ?1, 4000000000000)",
                  bytes, (int)sizeof bytes);
        exec_bind(c,
                  "INSERT INTO messages(id, pid, conv_type, conv_a, from_uid, mid, mtype, msg, mtime)"
                  " VALUES (-3, 1, 2, 9, 1, 2, 30, ?1, -5)",
                  "", 0);
    }
    static const int64_t args[][2] = {{-5, 2}, {INT64_MAX, INT64_MIN}, {10, 10}, {0, -1}};
    char a[1024], b[1024];
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
        shim_row(lite, args[i][0], args[i][1], a, sizeof a);
        shim_row(pg, args[i][0], args[i][1], b, sizeof b);
        assert_string_equal(a, b);
    }
    shim_row(pg, -5, 2, b, sizeof b);
    assert_string_equal(b, "2|-5|3|-5|1|1|-5|-3|-3|-3|0|0|1|0\n"
                           "2|-5|3|-5|1|1|4000000000000|2|7|2|5|5|1|0\n");
    assert_int_equal(db_close(pg), DB_OK);
    assert_int_equal(db_close(lite), DB_OK);
    assert_int_equal(remove_tree(dir), 0);
}

struct migrate_arg {
    const char *url;
    int rc, version, applied;
    char err[512];
};

static void *migrate_thread(void *p)
{
    struct migrate_arg *m = p;
    db_conn *c = db_open_postgres(m->url, DB_OPEN_READWRITE, m->err, sizeof m->err);
    m->rc = -2;
    if (c) {
        m->rc = store_schema_migrate(c, &m->version, &m->applied, m->err, sizeof m->err);
        db_close(c);
    }
    return NULL;
}

/* Two nodes starting at once on an empty database: both find it empty,
 * one creates the schema under the lock, the other finds it done. */
static void concurrent_migrations_serialized(void **state)
{
    (void)state;
    char url[1024];
    fresh_database("rtmd_schema_race", url, sizeof url);
    db_conn *holder = open_url(url);
    assert_int_equal(db_exec(holder, "BEGIN; SELECT pg_advisory_xact_lock(" STORE_SCHEMA_PG_LOCK_KEY ")"), DB_OK);
    struct migrate_arg m[2] = {{.url = url}, {.url = url}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, &m[i]), 0);
    /* both wait for the lock: they have read version 0 already */
    int waiting = 0;
    for (int tries = 0; tries < 1000 && waiting < 2; tries++) {
        waiting = (int)query_int(holder, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted");
        if (waiting < 2)
            usleep(10000);
    }
    assert_int_equal(waiting, 2);
    assert_int_equal(db_exec(holder, "COMMIT"), DB_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        if (m[i].rc != 0)
            fail_msg("node %d: %s", i, m[i].err);
        assert_int_equal(m[i].version, store_schema_latest());
    }
    assert_int_equal(m[0].applied + m[1].applied, 1);
    assert_int_equal(query_int(holder, "SELECT version FROM rtmd_schema"), store_schema_latest());
    assert_int_equal(db_close(holder), DB_OK);
}

int main(void)
{
    conninfo = getenv("RTMD_TEST_PG");
    if (!conninfo || !*conninfo) {
        fprintf(stderr, "test_db_pg: RTMD_TEST_PG is not set: give it a PostgreSQL connection string "
                        "(tests/integration/db-pg.test.js starts a server and sets it)\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(params_rewritten_outside_literals),
        cmocka_unit_test(integers_doubles_text_and_blobs_round_trip),
        cmocka_unit_test(nulls),
        cmocka_unit_test(rows_and_changes),
        cmocka_unit_test(constraint_violations),
        cmocka_unit_test(statement_cache_prepares_once),
        cmocka_unit_test(transactions),
        cmocka_unit_test(read_only_connection),
        cmocka_unit_test(lost_connection_and_bad_conninfo),
        cmocka_unit_test(sqlite_and_postgres_side_by_side),
        cmocka_unit_test(text_bound_to_bytea_keeps_its_bytes),
        cmocka_unit_test(skipped_parameter_numbers),
        cmocka_unit_test(narrow_integer_parameters_are_64_bit),
        cmocka_unit_test(schema_created_once_at_latest),
        cmocka_unit_test(schema_older_migrated_newer_refused),
        cmocka_unit_test(schema_16_counts_rows_above_the_mark),
        cmocka_unit_test(schema_matches_sqlite),
        cmocka_unit_test(storage_usage_triggers_count_as_sqlite),
        cmocka_unit_test(shims_answer_as_sqlite),
        cmocka_unit_test(concurrent_migrations_serialized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
