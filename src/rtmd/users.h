/* Who is online: the users of each project with their authenticated
 * client-gate connections (sessions), presence, per-connection attributes,
 * kicking users out, and pushing an encoded quest to every connection of a
 * user. A user exists here while at least one of its connections is
 * authenticated; other services hang per-user state on it (rooms, rates). */
#ifndef RTMD_USERS_H
#define RTMD_USERS_H

#include "server.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#define RTMD_SESSION_MAX_ATTRS 32

typedef struct rtmd_session rtmd_session;

typedef struct rtmd_user {
    int64_t pid, uid;
    rtmd_session *sessions;     /* this user's authenticated connections */
    unsigned nsessions;
    uint64_t online_since_ms;

    /* Rooms the user is in (rooms.c). */
    int64_t *rids;
    uint32_t nrooms;

    /* Message rate limit (messages.c): a token bucket. */
    double send_tokens;
    uint64_t send_refill_ms;
} rtmd_user;

typedef struct rtmd_session_attr {
    char *key, *value;
} rtmd_session_attr;

struct rtmd_session {
    rtmd_conn *conn;
    rtmd_user *user;
    rtmd_session *prev, *next;  /* the user's sessions */
    uint64_t login_ms;           /* unix milliseconds */
    char lang[16];
    rtmd_session_attr *attrs;    /* grown on demand: most sessions have none */
    unsigned nattrs;
};

/* The online user, or NULL. */
rtmd_user *users_get(rtmd_server *srv, int64_t pid, int64_t uid);
bool users_online(rtmd_server *srv, int64_t pid, int64_t uid);

/* Makes the connection an authenticated session of (pid, uid). Returns the
 * session, or NULL when out of memory. */
rtmd_session *users_login(rtmd_server *srv, rtmd_conn *conn, int64_t pid, int64_t uid);
/* Ends the connection's session, if any (the connection is closing). The
 * user goes offline with its last session. */
void users_logout(rtmd_conn *conn);

/* Sends a `kickout` push (oneway, as the SDKs do not answer it) to every
 * connection of the user except `except`, then closes them. Returns how
 * many connections were kicked. */
unsigned users_kickout(rtmd_server *srv, int64_t pid, int64_t uid, rtmd_conn *except);

/* Sends an encoded quest packet (see push.h) to every connection of the
 * user; twoway packets get a fresh seq on each connection. Returns how
 * many connections it was queued to. */
unsigned users_push(rtmd_server *srv, int64_t pid, int64_t uid, const uint8_t *packet, size_t len);

/* Adds or replaces string attributes of a session. Returns 0, or -1 when
 * the session would hold more than RTMD_SESSION_MAX_ATTRS. */
int session_set_attr(rtmd_session *s, const char *key, size_t klen, const char *value, size_t vlen);

/* Hooks run by users.c; each service that keeps per-user state implements
 * its own (rooms.c leaves every room, listen.c sends the events). */
void rooms_user_offline(rtmd_server *srv, rtmd_user *user);
void auth_session_ended(rtmd_server *srv, int64_t pid);
void listen_user_event(rtmd_server *srv, int64_t pid, int64_t uid, const char *event, uint64_t ms);
/* A server-gate connection closes: listen.c forgets what it listened to. */
void listen_conn_closed(rtmd_conn *conn);

void users_free_all(rtmd_server *srv);

#endif
