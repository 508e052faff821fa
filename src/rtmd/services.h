/* The service layer's modules and their life cycle. Each module owns its
 * state (hung on rtmd_services), loads what it needs from the store at
 * start-up, registers its methods in the method table, and frees its state
 * at exit. Modules talk to each other through their headers, never through
 * each other's state. */
#ifndef RTMD_SERVICES_H
#define RTMD_SERVICES_H

#include "server.h"

struct rtmd_methods;

typedef struct rtmd_services {
    struct identity_state *identity; /* identity.c: string ids <-> uids */
    struct sign_state *sign;         /* sign.c: app-server signatures, replay guard */
    struct auth_state *auth;         /* auth.c: tokens, logins, presence, attributes */
    struct groups_state *groups;     /* groups.c */
    struct rooms_state *rooms;       /* rooms.c */
    struct bans_state *bans;         /* bans.c: group/room bans, project blacklist */
    struct quota_state *quota;       /* quota.c: write rates, storage quota */
    struct messages_state *messages; /* messages.c: sending, pushes, dedup */
    struct history_state *history;   /* history.c: history, unread, conversations */
    struct listen_state *listen;     /* listen.c: app-server monitoring */
} rtmd_services;

/* Starts every module (after the store is open). Returns 0, or -1 with err. */
int services_init(rtmd_server *srv, char *err, size_t errlen);
/* Frees every module's state; the store may already be closed. */
void services_free(rtmd_server *srv);

/* The life cycle of each module, called by services.c in this order. */
#define RTMD_SERVICE(name)                                                                                         \
    int name##_init(rtmd_server *srv, char *err, size_t errlen);                                                   \
    void name##_register(struct rtmd_methods *m);                                                                  \
    void name##_free(rtmd_server *srv);
RTMD_SERVICE(identity)
RTMD_SERVICE(sign)
RTMD_SERVICE(auth)
RTMD_SERVICE(bans)
RTMD_SERVICE(groups)
RTMD_SERVICE(rooms)
RTMD_SERVICE(listen)
RTMD_SERVICE(quota)
RTMD_SERVICE(messages)
RTMD_SERVICE(history)
#undef RTMD_SERVICE

/* Figures for /metrics: live login tokens kept in memory (auth.c). */
size_t auth_token_count(const rtmd_server *srv);

/* Deletes expired rows through the writer: delete_sql is one statement
 * whose ?1 is now in unix seconds (e.g. "DELETE FROM t WHERE expires_at <=
 * ?1"); a failure is logged naming what. */
void services_purge_expired(rtmd_server *srv, const char *delete_sql, const char *what);

/* Start-up reads on the loop thread (before serving): runs fn with the
 * store's reader connection. */
int services_load(rtmd_server *srv, int (*fn)(sqlite3 *db, void *arg), void *arg);

#endif
