/* Unit tests of the string-id layer (src/rtmd/modules/identity.c) against a real
 * store in a fresh directory under /tmp and a real libuv loop: validation,
 * stable ids (also after reopening the store), distinct ids, concurrent
 * resolves sharing one write, the reserved range, the reverse lookup, the
 * bounded cache, and project isolation. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "identity.h"
#include "store.h"
#include "tmpdir.h"

#define PID 1000001
#define PID2 1000002

typedef struct fixture {
    char dir[64];
    char data[128];
    uv_loop_t loop;
    store *st;
    identity_state *id;
} fixture;

static void open_all(fixture *f)
{
    char err[256] = "";
    f->st = store_open(&f->loop, f->data, 0, true, err, sizeof err);
    if (!f->st)
        fail_msg("store_open: %s", err);
    assert_int_equal(store_ensure_project(f->st, PID, "secret-1"), 0);
    assert_int_equal(store_ensure_project(f->st, PID2, "secret-2"), 0);
    f->id = identity_open(f->st, err, sizeof err);
    if (!f->id)
        fail_msg("identity_open: %s", err);
}

static void close_all(fixture *f)
{
    identity_close(f->id);
    f->id = NULL;
    store_close(f->st);
    f->st = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/rtmd-test-identity-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    open_all(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->st)
        close_all(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    remove_tree(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ---- */

typedef struct result {
    int calls;
    int status;
    int64_t uid;
    char sid[IDENTITY_STRING_MAX + 1];
    bool sid_null;
} result;

static void on_resolved(void *arg, int status, int64_t uid)
{
    result *r = arg;
    r->calls++;
    r->status = status;
    r->uid = uid;
}

static void on_lookup(void *arg, int status, const char *sid)
{
    result *r = arg;
    r->calls++;
    r->status = status;
    r->sid_null = sid == NULL;
    if (sid)
        snprintf(r->sid, sizeof r->sid, "%s", sid);
}

/* Resolves and waits: returns the uid (the cache or the store). */
static int64_t resolve(fixture *f, int64_t pid, const char *sid, int *from_cache)
{
    result r = {0};
    int64_t uid = -1;
    int rc = identity_resolve(f->id, pid, sid, strlen(sid), &uid, on_resolved, &r);
    assert_in_range(rc, 0, 1);
    if (from_cache)
        *from_cache = rc;
    if (rc == 1) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        assert_int_equal(r.calls, 0); /* never both */
        return uid;
    }
    assert_int_equal(r.calls, 0); /* never inside the call */
    while (r.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    return r.uid;
}

/* Reverse lookup and wait; returns NULL when there is no string id. */
static const char *lookup(fixture *f, int64_t pid, int64_t uid, char *buf, size_t len)
{
    result r = {0};
    const char *sid = NULL;
    int rc = identity_lookup(f->id, pid, uid, &sid, on_lookup, &r);
    assert_in_range(rc, 0, 1);
    if (rc == 1) {
        if (!sid)
            return NULL;
        snprintf(buf, len, "%s", sid);
        return buf;
    }
    assert_int_equal(r.calls, 0);
    while (r.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    if (r.sid_null)
        return NULL;
    snprintf(buf, len, "%s", r.sid);
    return buf;
}

static int64_t count_rows(fixture *f, const char *sql)
{
    char path[192];
    snprintf(path, sizeof path, "%s/rtmd.sqlite3", f->data);
    char err[256];
    db_conn *db = db_open(path, DB_OPEN_READONLY, err, sizeof err);
    assert_non_null(db);
    db_stmt_t *st = NULL;
    assert_int_equal(db_prepare(db, sql, &st), DB_OK);
    assert_int_equal(db_step(st), DB_ROW);
    int64_t n = db_column_int64(st, 0);
    db_finalize(st);
    db_close(db);
    return n;
}

/* ---- tests ---- */

static void test_validate(void **state)
{
    (void)state;
    assert_true(identity_validate("a", 1));
    assert_true(identity_validate("alice", 5));
    assert_true(identity_validate("Bob_2@example.com", 17));
    assert_true(identity_validate("x-y.z_@", 7));
    assert_true(identity_validate("0123456789", 10));
    char max[IDENTITY_STRING_MAX + 2];
    memset(max, 'a', sizeof max);
    assert_true(identity_validate(max, IDENTITY_STRING_MAX));
    assert_false(identity_validate(max, IDENTITY_STRING_MAX + 1));
    assert_false(identity_validate("", 0));
    assert_false(identity_validate(NULL, 0));
    assert_false(identity_validate("a b", 3));
    assert_false(identity_validate("a/b", 3));
    assert_false(identity_validate("a+b", 3));
    assert_false(identity_validate("caf\xc3\xa9", 5));
    assert_false(identity_validate("a\0b", 3)); /* the length counts, not the NUL */
    assert_false(identity_validate("a\n", 2));
    assert_false(identity_validate("a#", 2));
}

static void test_reserved_range(void **state)
{
    (void)state;
    assert_int_equal(IDENTITY_UID_BASE, (int64_t)4611686018427387904LL);
    assert_false(identity_is_string_uid(0));
    assert_false(identity_is_string_uid(-1));
    assert_false(identity_is_string_uid(IDENTITY_UID_BASE - 1));
    assert_true(identity_is_string_uid(IDENTITY_UID_BASE));
    assert_true(identity_is_string_uid(INT64_MAX));
}

static void test_invalid_resolve_refused(void **state)
{
    fixture *f = *state;
    result r = {0};
    int64_t uid = 0;
    assert_int_equal(identity_resolve(f->id, PID, "bad id", 6, &uid, on_resolved, &r), -1);
    assert_int_equal(identity_resolve(f->id, PID, "", 0, &uid, on_resolved, &r), -1);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(r.calls, 0);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM users"), 0);
}

static void test_same_string_same_id(void **state)
{
    fixture *f = *state;
    int cached = -1;
    int64_t alice = resolve(f, PID, "alice", &cached);
    assert_int_equal(cached, 0); /* first time: through the store */
    assert_true(identity_is_string_uid(alice));
    assert_int_equal(alice, IDENTITY_UID_BASE); /* the first of the project */
    int64_t again = resolve(f, PID, "alice", &cached);
    assert_int_equal(cached, 1);
    assert_int_equal(again, alice);
    int64_t bob = resolve(f, PID, "bob", NULL);
    assert_true(identity_is_string_uid(bob));
    assert_int_not_equal(bob, alice);
    assert_int_equal(bob, alice + 1); /* sequential */
    /* Case matters: different strings. */
    int64_t alice_upper = resolve(f, PID, "Alice", NULL);
    assert_int_not_equal(alice_upper, alice);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM users"), 3);

    /* After reopening the store (empty cache), the same ids come back and
     * new ones continue after the largest. */
    close_all(f);
    open_all(f);
    assert_int_equal(identity_cache_count(f->id), 0);
    assert_int_equal(resolve(f, PID, "bob", &cached), bob);
    assert_int_equal(cached, 0);
    assert_int_equal(resolve(f, PID, "alice", NULL), alice);
    assert_int_equal(resolve(f, PID, "Alice", NULL), alice_upper);
    int64_t carol = resolve(f, PID, "carol", NULL);
    assert_true(carol > alice && carol > bob && carol > alice_upper);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM users"), 4);
}

static void test_reverse_lookup(void **state)
{
    fixture *f = *state;
    char buf[IDENTITY_STRING_MAX + 1];
    int64_t dave = resolve(f, PID, "dave@example.org", NULL);
    assert_string_equal(lookup(f, PID, dave, buf, sizeof buf), "dave@example.org");
    /* Numeric ids have no string id; unknown reserved ids neither. */
    assert_null(lookup(f, PID, 12345, buf, sizeof buf));
    assert_null(lookup(f, PID, dave + 1000, buf, sizeof buf));
    /* Another project does not see it. */
    assert_null(lookup(f, PID2, dave, buf, sizeof buf));
    /* From the store after a reopen, then cached. */
    close_all(f);
    open_all(f);
    assert_string_equal(lookup(f, PID, dave, buf, sizeof buf), "dave@example.org");
    assert_int_equal(identity_cache_count(f->id), 1);
    int cached = 0;
    assert_int_equal(resolve(f, PID, "dave@example.org", &cached), dave);
    assert_int_equal(cached, 1); /* the lookup filled the cache both ways */
}

#define CONCURRENT 1000
#define DISTINCT 100

typedef struct many {
    result r[CONCURRENT];
    int64_t immediate[CONCURRENT];
    int rc[CONCURRENT];
} many;

static void test_concurrent_resolves(void **state)
{
    fixture *f = *state;
    many *m = calloc(1, sizeof *m);
    assert_non_null(m);
    char sid[32];
    for (int i = 0; i < CONCURRENT; i++) {
        snprintf(sid, sizeof sid, "user.%03d", i % DISTINCT);
        m->rc[i] = identity_resolve(f->id, PID, sid, strlen(sid), &m->immediate[i], on_resolved, &m->r[i]);
        assert_int_equal(m->rc[i], 0); /* nothing is cached yet */
    }
    uint64_t commits_before = store_commit_count(f->st);
    for (;;) {
        int done = 0;
        for (int i = 0; i < CONCURRENT; i++)
            done += m->r[i].calls;
        if (done == CONCURRENT)
            break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    int64_t ids[DISTINCT];
    for (int i = 0; i < CONCURRENT; i++) {
        assert_int_equal(m->r[i].calls, 1);
        assert_int_equal(m->r[i].status, 0);
        assert_true(identity_is_string_uid(m->r[i].uid));
        if (i < DISTINCT)
            ids[i] = m->r[i].uid;
        else
            assert_int_equal(m->r[i].uid, ids[i % DISTINCT]);
    }
    for (int i = 0; i < DISTINCT; i++)
        for (int j = i + 1; j < DISTINCT; j++)
            assert_int_not_equal(ids[i], ids[j]);
    /* One row (and one store write) per distinct string. */
    assert_int_equal(count_rows(f, "SELECT count(*) FROM users"), DISTINCT);
    assert_int_equal(count_rows(f, "SELECT count(DISTINCT uid) FROM users WHERE uid >= 4611686018427387904"),
                     DISTINCT);
    assert_true(store_commit_count(f->st) - commits_before <= DISTINCT);
    assert_int_equal(identity_cache_count(f->id), DISTINCT);
    free(m);
}

static void test_bounded_cache(void **state)
{
    fixture *f = *state;
    identity_set_cache_max(f->id, 10);
    int64_t ids[50];
    char sid[32];
    for (int i = 0; i < 50; i++) {
        snprintf(sid, sizeof sid, "u%d", i);
        ids[i] = resolve(f, PID, sid, NULL);
    }
    assert_int_equal(identity_cache_count(f->id), 10);
    /* Evicted entries come back from the store, unchanged. */
    for (int i = 0; i < 50; i++) {
        snprintf(sid, sizeof sid, "u%d", i);
        assert_int_equal(resolve(f, PID, sid, NULL), ids[i]);
    }
    assert_int_equal(identity_cache_count(f->id), 10);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM users"), 50);
    /* The most recent one is a cache hit. */
    int cached = 0;
    assert_int_equal(resolve(f, PID, "u49", &cached), ids[49]);
    assert_int_equal(cached, 1);
}

static void test_projects_isolated(void **state)
{
    fixture *f = *state;
    int64_t a1 = resolve(f, PID, "shared", NULL);
    int64_t b1 = resolve(f, PID, "only-in-1", NULL);
    int64_t a2 = resolve(f, PID2, "shared", NULL);
    assert_true(identity_is_string_uid(a2));
    /* Each project numbers its own string ids from the base. */
    assert_int_equal(a1, IDENTITY_UID_BASE);
    assert_int_equal(a2, IDENTITY_UID_BASE);
    assert_int_equal(b1, IDENTITY_UID_BASE + 1);
    char buf[IDENTITY_STRING_MAX + 1];
    assert_null(lookup(f, PID2, b1, buf, sizeof buf));
    assert_int_equal(count_rows(f, "SELECT count(*) FROM users"), 3);
}

static void test_close_with_pending(void **state)
{
    fixture *f = *state;
    result r = {0};
    int64_t uid = 0;
    assert_int_equal(identity_resolve(f->id, PID, "late", 4, &uid, on_resolved, &r), 0);
    const char *sid = NULL;
    assert_int_equal(identity_lookup(f->id, PID, IDENTITY_UID_BASE, &sid, on_lookup, &r), 0);
    /* Abandoned: the store still finishes the write, no callback runs. */
    identity_close(f->id);
    f->id = NULL;
    store_close(f->st);
    f->st = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 0);
    open_all(f);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM users WHERE string_id = 'late'"), 1);
    assert_int_equal(resolve(f, PID, "late", NULL), IDENTITY_UID_BASE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_reserved_range),
        cmocka_unit_test_setup_teardown(test_invalid_resolve_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_string_same_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reverse_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_resolves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_projects_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
