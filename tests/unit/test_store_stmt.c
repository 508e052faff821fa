/* Unit tests of the writer connection's statement cache (store_stmt): a
 * statement prepared in one write is the one handed out in the next, comes
 * back reset and unbound, and outside the writer a statement is prepared
 * afresh and finalized on release (LeakSanitizer checks that); and the
 * writer's COMMIT never waits for the disk, whatever the fsync flag (the
 * syncer thread does: test_store.c). */
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

static const char *const INSERT =
    "INSERT INTO projects(pid, secret, created_at) VALUES (?1, 'secret-stmt', 0)";

typedef struct ctx {
    sqlite3_stmt *seen[3];
    int writes;
    int done;
} ctx;

static int insert_with_cache(sqlite3 *db, void *arg)
{
    ctx *c = arg;
    sqlite3_stmt *st;
    int rc = store_stmt(db, INSERT, &st);
    if (rc != SQLITE_OK)
        return rc;
    c->seen[c->writes] = st;
    sqlite3_bind_int64(st, 1, 500 + c->writes);
    rc = sqlite3_step(st);
    c->writes++;
    store_stmt_release(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void on_done(void *arg, int status)
{
    ctx *c = arg;
    assert_int_equal(status, SQLITE_OK);
    c->done++;
}

static int outside_writer(sqlite3 *db, void *arg)
{
    sqlite3_stmt *a, *b;
    assert_int_equal(store_stmt(db, "SELECT 1", &a), SQLITE_OK);
    assert_int_equal(store_stmt(db, "SELECT 1", &b), SQLITE_OK);
    assert_ptr_not_equal(a, b); /* not cached: each call prepares */
    store_stmt_release(a);
    store_stmt_release(b);
    return SQLITE_OK;
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
    assert_int_equal(store_run_startup(s, outside_writer, NULL), SQLITE_OK);
    store_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(remove_tree(dir), 0);
}

static int read_synchronous(sqlite3 *db, void *arg)
{
    sqlite3_stmt *st;
    int rc = store_stmt(db, "PRAGMA synchronous", &st);
    if (rc != SQLITE_OK)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *(int *)arg = sqlite3_column_int(st, 0);
    store_stmt_release(st);
    return SQLITE_OK;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writer_reuses_statements),
        cmocka_unit_test(writer_commit_does_not_wait_for_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
