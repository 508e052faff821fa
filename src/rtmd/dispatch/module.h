/* What a service module is made of: the descriptor each one exports (its
 * start and exit, methods, HTTP routes, observed events and metrics), the
 * table of every module's state (rtmd_services, hung on the server), and
 * the helpers modules share for the store. Each module owns its state,
 * loads what it needs from the store at start-up and frees it at exit;
 * modules talk to each other through their headers and events, never
 * through each other's state. services.c lists the modules. */
#ifndef RTMD_MODULE_H
#define RTMD_MODULE_H

#include "events.h"
#include "http.h"
#include "methods.h"
#include "prom.h"
#include "server_state.h"

typedef struct rtmd_services {
    struct users_state *users;       /* users.c: online users and their sessions */
    struct identity_state *identity; /* identity.c: string ids <-> uids */
    struct sign_state *sign;         /* sign.c: app-server signatures, replay guard */
    struct auth_state *auth;         /* auth.c: tokens, logins, presence, attributes */
    struct groups_state *groups;     /* groups.c */
    struct friends_state *friends;   /* friends.c: friend lists and blacklists of users */
    struct rooms_state *rooms;       /* rooms.c */
    struct bans_state *bans;         /* bans.c: group/room bans, project blacklist */
    struct quota_state *quota;       /* quota.c: write rates, storage quota */
    struct messages_state *messages; /* messages.c: sending, pushes, dedup */
    struct history_state *history;   /* history.c: history, unread, conversations */
    struct listen_state *listen;     /* listen.c: app-server monitoring */
    struct compat_state *compat;     /* compat.c: which, adddebuglog (rate per connection) */
    struct outbound_state *outbound; /* outbound.c: outgoing HTTP POSTs (libcurl on the loop) */
    struct p2server_state *p2server; /* p2server.c: app-server URL and signature per connection */
    struct strid_state *strid;       /* strid.c: online string-id users, edge translation */
    struct demo_state *demo;         /* demo.c: the demo web pages' files, the demo project */
    struct admin_state *admin;       /* admin.c: the admin page's files, the token's digest, start time */
    struct rtcat_state *rtcat;       /* rtcat/: RealTimeCat sessions, tokens, token logins */
    struct cluster_state *cluster;   /* cluster/: Redis, node liveness, the presence mirror (NULL: one node) */
    struct moderation_state *moderation; /* moderation/: the projects' sensitive-word lists */
    struct files_state *files;       /* files/: file tokens, uploads, stored files */
    struct translate_state *translate;   /* translate/: translation backends, their cache, setlang */
} rtmd_services;

/* A service module: what it needs at start and exit, the methods it
 * answers and the events it observes. Each module defines one
 * (`const rtmd_module name_module`) and services.c lists them; that list is
 * the only place a new module is added. init runs after the store is open
 * (in list order, after the modules before it), free at exit (in reverse
 * order; the store may be closed by then). */
typedef struct rtmd_module {
    const char *name;
    int (*init)(rtmd_server *srv, char *err, size_t errlen); /* NULL: nothing to set up */
    void (*free)(rtmd_server *srv);                          /* NULL: nothing to free */
    /* SIGHUP (server.c, services_reload): reads again what the module
     * loaded from files at start (NULL: nothing to reload). It logs what
     * changed; when something cannot be loaded it keeps what it had, says
     * why in err and returns -1. Runs on the loop between quests. */
    int (*reload)(rtmd_server *srv, char *err, size_t errlen);
    /* A project a reload adds (server.c), before anything can use it: sets
     * up what the module keeps of p from p->limits (its slot may be one the
     * same pid had before a removal); -1 with the reason in err refuses the
     * project, and the modules before this one get project_removed. NULL:
     * nothing kept per project, or read where it is used. */
    int (*project_added)(rtmd_server *srv, rtmd_project *p, char *err, size_t errlen);
    /* A project a reload removes (p->removed is set: it is no longer found
     * by pid). Modules close and drop what belongs to it; p's slot stays
     * (requests in flight may point at it). NULL: nothing to do. */
    void (*project_removed)(rtmd_server *srv, rtmd_project *p);
    /* Its lines of /metrics (NULL: none). */
    void (*metrics)(const rtmd_server *srv, prom_out *out);
    unsigned authorizes;           /* GATE_BIT mask of gates whose callers it checks */
    rtmd_authorize_fn authorize;   /* (methods.h) */
    unsigned translates;           /* GATE_BIT mask of gates whose arguments it translates */
    rtmd_translate_fn translate;   /* (methods.h) */
    const rtmd_method *methods;
    size_t nmethods;
    const rtmd_observer *observers;
    size_t nobservers;
    const rtmd_http_route *routes; /* of the HTTP gate */
    size_t nroutes;
} rtmd_module;

/* Fills .methods/.nmethods, .observers/.nobservers or .routes/.nroutes
 * from a static array. */
#define RTMD_MODULE_METHODS(a) .methods = (a), .nmethods = sizeof(a) / sizeof((a)[0])
#define RTMD_MODULE_OBSERVERS(a) .observers = (a), .nobservers = sizeof(a) / sizeof((a)[0])
#define RTMD_MODULE_ROUTES(a) .routes = (a), .nroutes = sizeof(a) / sizeof((a)[0])

/* A module's reload of what it keeps per project: fn for every running
 * project (removed ones skipped); fn logs what it did, and when it keeps
 * what it had returns -1 with the reason in why. err gets the first of
 * those as "project N: <why>". Returns 0, or -1 when any kept its old. */
typedef int (*module_project_fn)(rtmd_server *srv, rtmd_project *p, char *why, size_t whylen);
int module_reload_projects(rtmd_server *srv, module_project_fn fn, char *err, size_t errlen);

/* Deletes expired rows through the writer: delete_sql is one statement
 * whose ?1 is now in unix seconds (e.g. "DELETE FROM t WHERE expires_at <=
 * ?1"); a failure is logged naming what. */
void module_purge_expired(rtmd_server *srv, const char *delete_sql, const char *what);

/* Start-up reads on the loop thread (before serving): runs fn with the
 * store's reader connection. */
int module_load(rtmd_server *srv, int (*fn)(db_conn *db, void *arg), void *arg);

/* Periodic jobs that one node at a time runs when nodes share a
 * PostgreSQL store (retention). Keys name the jobs. */
enum { MODULE_JOB_RETENTION = 1, MODULE_JOB_FILES };
typedef void (*module_leader_fn)(void *arg, bool leader);
/* Calls fn(arg, leader) on the loop: whether this node runs job `key` now.
 * SQLite (one node): true, at once. PostgreSQL: a write takes the session
 * advisory lock (classid 'rtmd', objid key) on the writer's connection
 * with pg_try_advisory_lock (kept once held; never waits): true for the
 * node holding it. Asked again each run, so when the holder dies or its
 * connection is lost another node takes the job over at its next run.
 * Returns 0, or -1 (fn will not run) when the store refuses the write. */
int module_job_leader(rtmd_server *srv, int key, module_leader_fn fn, void *arg);

/* Limits counted across nodes that share a PostgreSQL store (a cap on
 * members, list entries, keys, ...): an apply that adds takes the
 * transaction's advisory lock of what it counts (classid 'rl' + domain,
 * objid a hash of a and b), then counts the table, so that adds through
 * all nodes to one group, list or user run one at a time and see each
 * other's committed rows. On SQLite the lock does nothing: the writer runs
 * one write at a time. Both return a DB_* status. */
enum { MODULE_LIMIT_GROUP = 1, MODULE_LIMIT_PROJECT_GROUPS, MODULE_LIMIT_FRIENDS, MODULE_LIMIT_BLACKS,
       MODULE_LIMIT_USER_DATA, MODULE_LIMIT_DEVICES, MODULE_LIMIT_PUSH_OPTIONS, MODULE_LIMIT_RTCAT };
int module_limit_lock(db_conn *db, int domain, int64_t a, int64_t b);
/* *n = the one integer the SELECT sql answers with ?1 = a, ?2 = b bound. */
int module_count(db_conn *db, const char *sql, int64_t a, int64_t b, int64_t *n);
/* After an apply's inserts: DB_REFUSED (the store undoes the write) when
 * module_count(sql, a, b) is past limit, else DB_OK or the count's error. */
int module_count_within(db_conn *db, const char *sql, int64_t a, int64_t b, uint64_t limit);

/* Answers a request whose store work failed with SQLite status: a read the
 * store gave up as it closed (DB_ABORT) is "server stopping", anything
 * else "storage error". Logging what failed is the caller's. */
void module_answer_store_failure(rtmd_request *req, int status);

#endif
