/* Unit tests of the statement cache (db_stmt, src/rtmd/store/db_sqlite.c): a statement prepared in
 * one write is the one handed out in the next, comes back reset and
 * unbound, and outside the writer and the readers a statement is prepared
 * afresh and finalized on release (LeakSanitizer checks that); a read
 * (store_read) reuses the statements of its pooled connection, keyed by
 * the SQL text even when the caller built it in its own buffer; a
 * statement in use is neither handed out twice nor evicted; and the
 * writer's COMMIT never waits for the disk, whatever the fsync flag (the
 * syncer thread does: test_store.c). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "tmpdir.h"

static const char *const INSERT =
    "INSERT INTO projects(pid, secret, created_at) VALUES (?1, 'secret-stmt', 0)";

typedef struct ctx {
    db_stmt_t *seen[3];
    int writes;
    int done;
} ctx;

static int insert_with_cache(db_conn *db, void *arg)
{
    ctx *c = arg;
    db_stmt_t *st;
    int rc = db_stmt(db, INSERT, &st);
    if (rc != DB_OK)
        return rc;
    c->seen[c->writes] = st;
    db_bind_int64(st, 1, 500 + c->writes);
    rc = db_step(st);
    c->writes++;
    db_release(st);
    return rc == DB_DONE ? DB_OK : rc;
}

static void on_done(void *arg, int status)
{
    ctx *c = arg;
    assert_int_equal(status, DB_OK);
    c->done++;
}

static int outside_writer(db_conn *db, void *arg)
{
    db_stmt_t *a, *b;
    assert_int_equal(db_stmt(db, "SELECT 1", &a), DB_OK);
    assert_int_equal(db_stmt(db, "SELECT 1", &b), DB_OK);
    assert_ptr_not_equal(a, b); /* not cached: each call prepares */
    db_release(a);
    db_release(b);
    return DB_OK;
}

static void writer_reuses_statements(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char dir[] = "/tmp/rtmd-store-stmt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256];
    store *s = store_open(&loop, dir, 1, true, err, sizeof err); /* one write per batch */
    assert_non_null(s);
    ctx c = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(store_submit(s, insert_with_cache, on_done, &c), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.done, 3);
    assert_ptr_equal(c.seen[0], c.seen[1]);
    assert_ptr_equal(c.seen[1], c.seen[2]);
    assert_int_equal(store_run_startup(s, outside_writer, NULL), DB_OK);
    store_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(remove_tree(dir), 0);
}

static int read_synchronous(db_conn *db, void *arg)
{
    db_stmt_t *st;
    int rc = db_stmt(db, "PRAGMA synchronous", &st);
    if (rc != DB_OK)
        return rc;
    if (db_step(st) == DB_ROW)
        *(int *)arg = db_column_int(st, 0);
    db_release(st);
    return DB_OK;
}

/* The writer runs synchronous = NORMAL (1) with fsync on and off: its
 * COMMIT hands the WAL to the OS, and with fsync on the syncer thread
 * flushes it beside the writer instead of inside COMMIT (FULL, 2). */
static void writer_commit_does_not_wait_for_disk(void **state)
{
    for (int fsync = 0; fsync <= 1; fsync++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        char dir[] = "/tmp/rtmd-store-sync-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char err[256];
        store *s = store_open(&loop, dir, 0, fsync == 1, err, sizeof err);
        assert_non_null(s);
        int mode = -1;
        assert_int_equal(store_submit(s, read_synchronous, NULL, &mode), 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(mode, 1);
        store_close(s);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&loop), 0);
        assert_int_equal(remove_tree(dir), 0);
    }
}

/* A store on a fresh directory (dir: a mkdtemp template) and its loop. */
static store *open_test_store(uv_loop_t *loop, char *dir)
{
    uv_loop_init(loop);
    assert_non_null(mkdtemp(dir));
    char err[256];
    store *s = store_open(loop, dir, 0, false, err, sizeof err);
    assert_non_null(s);
    return s;
}

static void close_test_store(uv_loop_t *loop, store *s, char *dir)
{
    store_close(s);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
    assert_int_equal(remove_tree(dir), 0);
}

typedef struct read_ctx {
    uint64_t prepared;         /* statements the read had to prepare */
    int64_t value;
    int done;
} read_ctx;

/* Builds its SQL in a stack buffer, as history reads do with filters. */
static int read_built_sql(db_conn *db, void *arg)
{
    read_ctx *c = arg;
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT %d + ?1", 40);
    db_stmt_t *st;
    uint64_t before = db_prepare_count(db);
    int rc = db_stmt(db, sql, &st);
    if (rc != DB_OK)
        return rc;
    memset(sql, 'x', sizeof sql - 1); /* the cache must not keep the caller's text */
    c->prepared = db_prepare_count(db) - before;
    db_bind_int64(st, 1, 2);
    if (db_step(st) == DB_ROW)
        c->value = db_column_int64(st, 0);
    db_release(st);
    return DB_OK;
}

static void on_read(void *arg, int status)
{
    read_ctx *c = arg;
    assert_int_equal(status, DB_OK);
    c->done++;
}

static void reads_reuse_statements_of_their_connection(void **state)
{
    uv_loop_t loop;
    char dir[] = "/tmp/rtmd-store-rstmt-XXXXXX";
    store *s = open_test_store(&loop, dir);
    /* One read at a time: each finds the connection the previous one left
     * in the idle pool, with its cache. */
    read_ctx a = {0}, b = {0};
    assert_int_equal(store_read(s, read_built_sql, on_read, &a), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(store_read(s, read_built_sql, on_read, &b), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.done + b.done, 2);
    assert_int_equal(a.value, 42);
    assert_int_equal(b.value, 42);
    assert_int_equal(a.prepared, 1);
    assert_int_equal(b.prepared, 0); /* the statement the first read ran */
    close_test_store(&loop, s, dir);
}

/* Holds one statement while asking for the same SQL again and for more
 * distinct statements than the cache has room for: the held one is not
 * handed out twice, not evicted, and still runs (in a read and a write). */
static int hold_while_churning(db_conn *db, void *arg)
{
    read_ctx *c = arg;
    db_stmt_t *held, *again;
    assert_int_equal(db_stmt(db, "SELECT ?1", &held), DB_OK);
    assert_int_equal(db_stmt(db, "SELECT ?1", &again), DB_OK);
    assert_ptr_not_equal(held, again);
    db_release(again);
    for (int i = 0; i < 100; i++) {
        char sql[32];
        snprintf(sql, sizeof sql, "SELECT %d", i);
        db_stmt_t *st;
        assert_int_equal(db_stmt(db, sql, &st), DB_OK);
        assert_int_equal(db_step(st), DB_ROW);
        assert_int_equal(db_column_int(st, 0), i);
        db_release(st);
    }
    db_bind_int64(held, 1, 7);
    assert_int_equal(db_step(held), DB_ROW);
    c->value = db_column_int64(held, 0);
    db_release(held);
    return DB_OK;
}

static void statements_in_use_are_never_shared_or_evicted(void **state)
{
    uv_loop_t loop;
    char dir[] = "/tmp/rtmd-store-busy-XXXXXX";
    store *s = open_test_store(&loop, dir);
    read_ctx r = {0}, w = {0};
    assert_int_equal(store_read(s, hold_while_churning, on_read, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(store_submit(s, hold_while_churning, on_read, &w), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.done + w.done, 2);
    assert_int_equal(r.value, 7);
    assert_int_equal(w.value, 7);
    close_test_store(&loop, s, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writer_reuses_statements),
        cmocka_unit_test(writer_commit_does_not_wait_for_disk),
        cmocka_unit_test(reads_reuse_statements_of_their_connection),
        cmocka_unit_test(statements_in_use_are_never_shared_or_evicted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
