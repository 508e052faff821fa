/* Store helpers the service modules share (module.h): expiry purges,
 * start-up loads, and the answer of a request whose store work failed. */
#include "module.h"

#include "clock.h"
#include "log.h"
#include "rtm_errors.h"

#include <stdlib.h>

typedef struct purge {
    const char *sql, *what; /* static strings */
    int64_t now;
} purge;

static int apply_purge(db_conn *db, void *arg)
{
    const purge *p = arg;
    db_stmt_t *st;
    int rc = db_stmt(db, p->sql, &st);
    if (rc != DB_OK)
        return rc;
    db_bind_int64(st, 1, p->now);
    return db_step_release(st);
}

static void purge_done(void *arg, int status)
{
    purge *p = arg;
    if (status != DB_OK)
        LOG_WARN("deleting expired %s failed: %s", p->what, db_errstr(status));
    free(p);
}

void module_purge_expired(rtmd_server *srv, const char *delete_sql, const char *what)
{
    purge *p = malloc(sizeof *p);
    if (!p)
        return;
    *p = (purge){delete_sql, what, clock_unix_seconds()};
    if (store_submit(srv->store, apply_purge, purge_done, p) != 0)
        free(p);
}

int module_load(rtmd_server *srv, int (*fn)(db_conn *db, void *arg), void *arg)
{
    return store_run_startup(srv->store, fn, arg);
}

void module_answer_store_failure(rtmd_request *req, int status)
{
    if (status == DB_ABORT)
        request_error(req, FPNN_EC_CORE_SERVER_STOPPING, "server stopping");
    else if (status == DB_IOERR)
        request_error(req, RTM_EC_UNKNOWN_ERROR, "storage unavailable");
    else
        request_error(req, RTM_EC_UNKNOWN_ERROR, "storage error");
}
