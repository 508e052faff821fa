/* Starting and stopping the service modules (see services.h). */
#include "services.h"

#include "log.h"
#include "methods.h"
#include "users.h"

#include <stdlib.h>

typedef struct module {
    const char *name;
    int (*init)(rtmd_server *, char *, size_t);
    void (*reg)(struct rtmd_methods *);
    void (*free)(rtmd_server *);
} module;

#define MODULE(n) {#n, n##_init, n##_register, n##_free}
static const module modules[] = {
    MODULE(identity), /* first: the others may resolve string ids */
    MODULE(sign), MODULE(auth), MODULE(bans), MODULE(groups), MODULE(rooms), MODULE(listen), MODULE(quota),
    MODULE(messages), MODULE(history),
};
#undef MODULE
#define NMODULES (sizeof modules / sizeof modules[0])

int services_init(rtmd_server *srv, char *err, size_t errlen)
{
    srv->svc = calloc(1, sizeof *srv->svc);
    if (!srv->svc)
        return -1;
    for (size_t i = 0; i < NMODULES; i++) {
        if (modules[i].init(srv, err, errlen) != 0)
            return -1;
        modules[i].reg(srv->methods);
    }
    return 0;
}

void services_free(rtmd_server *srv)
{
    if (!srv->svc)
        return;
    users_free_all(srv);
    for (size_t i = NMODULES; i-- > 0;)
        modules[i].free(srv);
    free(srv->svc);
    srv->svc = NULL;
}

typedef struct purge {
    const char *sql, *what; /* static strings */
    int64_t now;
} purge;

static int apply_purge(sqlite3 *db, void *arg)
{
    const purge *p = arg;
    sqlite3_stmt *st;
    int rc = store_stmt(db, p->sql, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, p->now);
    return store_step_release(st);
}

static void purge_done(void *arg, int status)
{
    purge *p = arg;
    if (status != SQLITE_OK)
        LOG_WARN("deleting expired %s failed: %s", p->what, sqlite3_errstr(status));
    free(p);
}

void services_purge_expired(rtmd_server *srv, const char *delete_sql, const char *what)
{
    purge *p = malloc(sizeof *p);
    if (!p)
        return;
    *p = (purge){delete_sql, what, rtmd_unix_seconds()};
    if (store_submit(srv->store, apply_purge, purge_done, p) != 0)
        free(p);
}

int services_load(rtmd_server *srv, int (*fn)(sqlite3 *db, void *arg), void *arg)
{
    return store_run_startup(srv->store, fn, arg);
}
