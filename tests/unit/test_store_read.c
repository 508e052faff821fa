/* Unit tests of store_read: reads run off the loop on pooled read-only
 * connections, see every write whose done callback has run, report SQLite
 * errors, and keep the store alive until they finish. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"
#include "tmpdir.h"

typedef struct ctx {
    store *s;
    int64_t count;
    int status;
    int reads_done;
    int writes_done;
} ctx;

static int insert_project(db_conn *db, void *arg)
{
    ctx *c = arg;
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO projects(pid, secret, created_at) VALUES (%d, 'secret-xyz', 0)",
             100 + c->writes_done);
    return db_exec(db, sql);
}

static int count_projects(db_conn *db, void *arg)
{
    ctx *c = arg;
    db_stmt_t *st;
    int rc = db_prepare(db, "SELECT count(*) FROM projects", &st);
    if (rc != DB_OK)
        return rc;
    if (db_step(st) == DB_ROW)
        c->count = db_column_int64(st, 0);
    db_finalize(st);
    return DB_OK;
}

static int bad_read(db_conn *db, void *arg)
{
    return db_exec(db, "SELECT * FROM no_such_table");
}

static int write_in_read(db_conn *db, void *arg)
{
    return db_exec(db, "INSERT INTO projects(pid, secret, created_at) VALUES (9, 'secret-xyz', 0)");
}

static void on_read(void *arg, int status)
{
    ctx *c = arg;
    c->status = status;
    c->reads_done++;
}

static void on_write_then_read(void *arg, int status)
{
    ctx *c = arg;
    assert_int_equal(status, DB_OK);
    c->writes_done++;
    /* A read started from the done callback sees the committed write. */
    assert_int_equal(store_read(c->s, count_projects, on_read, c), 0);
}

static store *open_tmp(uv_loop_t *loop, char *dir)
{
    strcpy(dir, "/tmp/rtmd-store-read-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char err[256];
    store *s = store_open(loop, dir, 16, true, err, sizeof err);
    assert_non_null(s);
    return s;
}

static void reads_see_committed_writes(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char dir[64];
    ctx c = {0};
    c.s = open_tmp(&loop, dir);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(store_submit(c.s, insert_project, on_write_then_read, &c), 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(c.reads_done, i + 1);
        assert_int_equal(c.status, DB_OK);
        assert_int_equal(c.count, i + 1);
    }
    assert_int_equal(store_pending(c.s), 0);
    store_close(c.s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(remove_tree(dir), 0);
}

static void errors_and_read_only(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char dir[64];
    ctx c = {0};
    c.s = open_tmp(&loop, dir);
    assert_int_equal(store_read(c.s, bad_read, on_read, &c), 0);
    assert_int_equal(store_pending(c.s), 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.status, DB_ERROR);
    assert_int_equal(store_read(c.s, write_in_read, on_read, &c), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.status, DB_READONLY);
    store_close(c.s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(remove_tree(dir), 0);
}

static void close_with_reads_in_flight(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char dir[64];
    ctx c = {0};
    c.s = open_tmp(&loop, dir);
    for (int i = 0; i < 50; i++)
        assert_int_equal(store_read(c.s, count_projects, on_read, &c), 0);
    store_close(c.s); /* the reads finish, report, then the store is freed */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.reads_done, 50);
    assert_int_equal(c.status, DB_OK);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(remove_tree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_see_committed_writes),
        cmocka_unit_test(errors_and_read_only),
        cmocka_unit_test(close_with_reads_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
